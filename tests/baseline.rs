//! `stamp` (baseline a database made before migrations, or forget revisions) and
//! `check` (exit 0 at head, 9 pending; `--wait` for an app's init container).

mod support;

use std::time::{Duration, Instant};

use support::Cluster;
use support::run::{Folder, Run, finish};

const FIRST: &str = "20251201090000";
const SECOND: &str = "20251201091500";

fn history(cluster: &Cluster, db: &str) -> String {
    cluster.psql(
        db,
        "SELECT coalesce(string_agg(revision || ':' || method, ' ' ORDER BY revision), '') \
         FROM schemagate_history",
    )
}

#[test]
fn stamp_baselines_a_database_created_without_migrations() {
    // Seed 004, scenario 2: the schema exists (made by create_all() or by hand); tell
    // schemagate which revision it matches, then migrate on from there.
    let cluster = Cluster::shared();
    let db = cluster.create_database("baseline");
    let url = cluster.url(&db);
    let folder = Folder::example();
    for name in &folder.names()[..2] {
        let text = folder.read(name);
        let up = text
            .split("-- migrate:up\n")
            .nth(1)
            .and_then(|rest| rest.split("-- migrate:down").next())
            .expect("an up section");
        cluster.psql(&db, up);
    }
    Run::on(&url, &folder, &["stamp", SECOND])
        .run()
        .expect(0)
        .stderr_has("stamped 2 revisions, removed 0 revisions (no migration SQL ran)")
        .stderr_has(&format!("database at {SECOND}"));
    assert_eq!(
        history(cluster, &db),
        format!("{FIRST}:stamped {SECOND}:stamped")
    );
    Run::on(&url, &folder, &["current"])
        .run()
        .expect(0)
        .stdout_has(&format!("{SECOND}, create orders\n"));
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("applied 2 migrations");
    Run::on(&url, &folder, &["check"]).run().expect(0);
}

#[test]
fn stamp_moves_the_history_both_ways_and_keeps_unknown_rows_unless_purged() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("stamp");
    let url = cluster.url(&db);
    let folder = Folder::example();
    Run::on(&url, &folder, &["stamp", "head"]).run().expect(0);
    assert_eq!(
        cluster.psql(&db, "SELECT count(*) FROM schemagate_history"),
        "4"
    );
    assert_eq!(
        cluster.psql(&db, "SELECT to_regclass('users') IS NULL"),
        "t",
        "stamp ran no migration SQL"
    );
    Run::on(&url, &folder, &["stamp", FIRST])
        .run()
        .expect(0)
        .stderr_has("stamped 0 revisions, removed 3 revisions");
    assert_eq!(history(cluster, &db), format!("{FIRST}:stamped"));

    cluster.psql(
        &db,
        "INSERT INTO schemagate_history (revision, description, checksum, status, method, applied_by, runner_version) \
         VALUES ('99', 'newer', 'x', 'applied', 'applied', 'elsewhere', '0')",
    );
    Run::on(&url, &folder, &["stamp", "base"])
        .run()
        .expect(8)
        .stderr_has("no file has (99)")
        .stderr_has("--purge");
    assert_eq!(history(cluster, &db), format!("{FIRST}:stamped 99:applied"));
    Run::on(&url, &folder, &["stamp", "base", "--purge"])
        .run()
        .expect(0)
        .stderr_has("removed 2 revisions")
        .stderr_has("database at base");
    assert_eq!(history(cluster, &db), "");
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT string_agg(outcome, ' ' ORDER BY id) FROM schemagate_events WHERE action = 'stamp'"
        ),
        "stamped stamped stamped stamped removed removed removed removed removed"
    );
}

#[test]
fn check_is_0_at_head_9_when_pending_and_8_on_a_conflict() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("check");
    let url = cluster.url(&db);
    let folder = Folder::example();
    Run::on(&url, &folder, &["check"])
        .run()
        .expect(9)
        .stdout_has("4 migrations pending (20251201090000, ")
        .stderr_has("run `schemagate up`");
    Run::on(&url, &folder, &["up"]).run().expect(0);
    Run::on(&url, &folder, &["check"])
        .run()
        .expect(0)
        .stdout_has("at head: database at 20251210080000 (head)");
    folder.write(
        "20251201090000_create_users.sql",
        "CREATE TABLE users (id int);\n",
    );
    Run::on(&url, &folder, &["check"])
        .run()
        .expect(8)
        .stderr_has("was edited after it was applied");
}

#[test]
fn check_wait_blocks_until_another_process_migrates() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("check_wait");
    let url = cluster.url(&db);
    let folder = Folder::example();

    let started = Instant::now();
    let waiting = Run::on(&url, &folder, &["check", "--wait", "--timeout", "60s"]).spawn();
    std::thread::sleep(Duration::from_millis(1500));
    let migrated_at = Instant::now();
    Run::on(&url, &folder, &["up"]).run().expect(0);
    let outcome = finish(waiting, started);
    outcome
        .expect(0)
        .stdout_has("at head")
        .stderr_has("waiting for the database to reach head");
    let after = migrated_at.elapsed();
    println!("check --wait saw head {after:?} after the migration started");
    assert!(
        outcome.elapsed >= Duration::from_millis(1500),
        "check --wait returned before the migration: {:?}",
        outcome.elapsed
    );

    // Nobody migrates: it gives up at its own timeout with exit 9.
    let db = cluster.create_database("check_timeout");
    let outcome = Run::on(
        &cluster.url(&db),
        &folder,
        &["check", "--wait", "--timeout", "2s"],
    )
    .run();
    outcome.expect(9).stderr_has("still not at head after 2s");
    assert!(
        outcome.elapsed >= Duration::from_secs(2) && outcome.elapsed < Duration::from_secs(10),
        "{:?}",
        outcome.elapsed
    );
}
