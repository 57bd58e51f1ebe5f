//! `down`, `redo` and `reset` against a real PostgreSQL: reverting in order, refusing up
//! front what cannot be reverted, and a full round trip that leaves the schema as it was.

mod support;

use support::Cluster;
use support::run::{Folder, Run};

const FIRST: &str = "20251201090000";
const SECOND: &str = "20251201091500";
const THIRD: &str = "20251205120000";
const FOURTH: &str = "20251210080000";

fn applied(cluster: &Cluster, db: &str) -> String {
    cluster.psql(
        db,
        "SELECT coalesce(string_agg(revision, ' ' ORDER BY revision), '') FROM schemagate_history",
    )
}

fn events(cluster: &Cluster, db: &str) -> String {
    cluster.psql(
        db,
        "SELECT string_agg(action || ':' || revision || ':' || outcome, ' ' ORDER BY id) \
         FROM schemagate_events",
    )
}

fn up(cluster: &Cluster, folder: &Folder, prefix: &str) -> (String, String) {
    let db = cluster.create_database(prefix);
    let url = cluster.url(&db);
    Run::on(&url, folder, &["up"]).run().expect(0);
    (db, url)
}

#[test]
fn down_by_steps_to_a_revision_and_to_base() {
    let cluster = Cluster::shared();
    let folder = Folder::example();
    let (db, url) = up(cluster, &folder, "down");

    Run::on(&url, &folder, &["down", "-1"])
        .run()
        .expect(0)
        .stderr_has(&format!("reverted {FOURTH}"))
        .stderr_has(&format!("database at {THIRD}"));
    assert_eq!(applied(cluster, &db), format!("{FIRST} {SECOND} {THIRD}"));
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT count(*) FROM pg_proc WHERE proname = 'touch_updated_at'"
        ),
        "0"
    );

    // Back to a revision: it stays applied. The transaction:false index goes with
    // DROP INDEX CONCURRENTLY, statement by statement.
    Run::on(&url, &folder, &["downgrade", FIRST])
        .run()
        .expect(0);
    assert_eq!(applied(cluster, &db), FIRST);
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT to_regclass('orders') IS NULL AND to_regclass('users') IS NOT NULL"
        ),
        "t"
    );
    assert!(
        events(cluster, &db).ends_with(&format!(
            "down:{THIRD}:started down:{THIRD}:ok down:{SECOND}:ok"
        )),
        "{}",
        events(cluster, &db)
    );

    Run::on(&url, &folder, &["down", "base"]).run().expect(0);
    assert_eq!(applied(cluster, &db), "");
    assert_eq!(
        cluster.psql(&db, "SELECT to_regclass('users') IS NULL"),
        "t"
    );

    for (args, says) in [
        (&["down", "-1"][..], "only 0 migrations are applied"),
        (&["down", "+1"][..], "to go forward use `schemagate up`"),
        (&["down", "head"][..], "to go forward use `schemagate up`"),
        (&["down", SECOND][..], "is not applied"),
    ] {
        Run::on(&url, &folder, args)
            .run()
            .expect(2)
            .stderr_has(says);
    }
}

#[test]
fn up_down_base_up_leaves_the_same_schema() {
    let cluster = Cluster::shared();
    let folder = Folder::example();
    let (db, url) = up(cluster, &folder, "round_trip");
    let first = cluster.pg_dump_schema(&db);
    Run::on(&url, &folder, &["down", "base"]).run().expect(0);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    assert_eq!(cluster.pg_dump_schema(&db), first);
}

#[test]
fn down_refuses_up_front_when_a_step_is_irreversible() {
    let cluster = Cluster::shared();
    let folder = Folder::with(&[
        (
            "1_a.sql",
            "-- migrate:up\nCREATE TABLE a ();\n-- migrate:down\nDROP TABLE a;\n",
        ),
        ("2_b.sql", "CREATE TABLE b ();\n"),
        (
            "3_c.sql",
            "-- migrate:up\nCREATE TABLE c ();\n-- migrate:down\nDROP TABLE c;\n",
        ),
    ]);
    let (db, url) = up(cluster, &folder, "irreversible");
    Run::on(&url, &folder, &["down", "base"])
        .run()
        .expect(2)
        .stderr_has("nothing was reverted")
        .stderr_has(&format!(
            "2 ({}) has no `-- migrate:down` section",
            folder.shown("2_b.sql")
        ));
    assert_eq!(applied(cluster, &db), "1 2 3", "nothing was reverted");
    assert_eq!(
        cluster.psql(&db, "SELECT to_regclass('c') IS NOT NULL"),
        "t"
    );
    // What does not cross the irreversible step still works.
    Run::on(&url, &folder, &["down", "-1"]).run().expect(0);
    assert_eq!(applied(cluster, &db), "1 2");
}

#[test]
fn a_failing_down_section_rolls_back_and_names_the_line() {
    let cluster = Cluster::shared();
    let folder = Folder::with(&[(
        "1_a.sql",
        "-- migrate:up\nCREATE TABLE a ();\n-- migrate:down\nDROP TABLE a;\nDROP TABLE nope;\n",
    )]);
    let (db, url) = up(cluster, &folder, "failing_down");
    Run::on(&url, &folder, &["down", "-1"])
        .run()
        .expect(7)
        .stderr_has("reverting migration 1 failed and was rolled back")
        .stderr_has("SQLSTATE 42P01")
        .stderr_has(&format!("{}:5", folder.shown("1_a.sql")));
    assert_eq!(applied(cluster, &db), "1");
    assert_eq!(
        cluster.psql(&db, "SELECT to_regclass('a') IS NOT NULL"),
        "t"
    );
    assert!(events(cluster, &db).ends_with("down:1:failed"));
}

#[test]
fn redo_reverts_and_reapplies_the_last_migration() {
    let cluster = Cluster::shared();
    let folder = Folder::example();
    let (db, url) = up(cluster, &folder, "redo");
    Run::on(&url, &folder, &["redo"])
        .run()
        .expect(0)
        .stderr_has("applied 1 migration, reverted 1 migration");
    assert_eq!(
        applied(cluster, &db),
        format!("{FIRST} {SECOND} {THIRD} {FOURTH}")
    );
    assert!(events(cluster, &db).ends_with(&format!("down:{FOURTH}:ok up:{FOURTH}:ok")));
}

#[test]
fn reset_needs_yes_then_reverts_and_reapplies_everything() {
    let cluster = Cluster::shared();
    let folder = Folder::example();
    let (db, url) = up(cluster, &folder, "reset");
    cluster.psql(&db, "INSERT INTO users (email) VALUES ('a@example.com')");
    Run::on(&url, &folder, &["reset"])
        .run()
        .expect(2)
        .stderr_has("pass --yes");
    assert_eq!(cluster.psql(&db, "SELECT count(*) FROM users"), "1");
    Run::on(&url, &folder, &["reset", "--yes"])
        .run()
        .expect(0)
        .stderr_has("applied 4 migrations, reverted 4 migrations");
    assert_eq!(cluster.psql(&db, "SELECT count(*) FROM users"), "0");
    assert_eq!(
        applied(cluster, &db),
        format!("{FIRST} {SECOND} {THIRD} {FOURTH}")
    );
}
