//! `up` towards a target, `--dry-run` and `--sql`: what schemagate says would run is
//! what runs. Piping `--sql` into psql must leave the same schema and the same history
//! as `up` itself.

mod support;

use support::Cluster;
use support::run::{Folder, Run};

const FIRST: &str = "20251201090000";
const SECOND: &str = "20251201091500";
const THIRD: &str = "20251205120000";

fn history_rows(cluster: &Cluster, db: &str) -> String {
    cluster.psql(
        db,
        "SELECT revision, description, checksum, status, method, applied_by, runner_version \
         FROM schemagate_history ORDER BY revision",
    )
}

fn events(cluster: &Cluster, db: &str) -> String {
    cluster.psql(
        db,
        "SELECT action, revision, outcome, coalesce(detail, ''), actor, runner_version \
         FROM schemagate_events ORDER BY id",
    )
}

fn no_history(cluster: &Cluster, db: &str) -> bool {
    cluster.psql(db, "SELECT to_regclass('schemagate_history') IS NULL") == "t"
}

/// The example folder's schema and history, from a real `up`.
fn reference(cluster: &Cluster, folder: &Folder) -> String {
    let db = cluster.create_database("sql_ref");
    Run::on(&cluster.url(&db), folder, &["up"]).run().expect(0);
    db
}

#[test]
fn piping_sql_into_psql_equals_running_up() {
    let cluster = Cluster::shared();
    let folder = Folder::example();
    let ran = reference(cluster, &folder);

    let piped = cluster.create_database("sql_piped");
    let out = Run::on(&cluster.url(&piped), &folder, &["up", "--sql"]).run();
    out.expect(0);
    assert!(no_history(cluster, &piped), "--sql itself changes nothing");

    // One transaction for the state tables and one per transactional migration; the
    // transaction:false index is built between two of them, outside any.
    let script = &out.stdout;
    assert_eq!(script.matches("BEGIN;\n").count(), 4, "{script}");
    assert_eq!(script.matches("COMMIT;\n").count(), 4, "{script}");
    let index = script.find("CREATE INDEX CONCURRENTLY").expect("the index");
    let before = &script[..index];
    assert!(
        before.rfind("COMMIT;") > before.rfind("BEGIN;"),
        "CONCURRENTLY must run outside a transaction:\n{script}"
    );
    assert!(script.contains("SELECT pg_advisory_lock("));

    cluster.psql(&piped, script);
    assert_eq!(cluster.pg_dump_schema(&piped), cluster.pg_dump_schema(&ran));
    assert_eq!(history_rows(cluster, &piped), history_rows(cluster, &ran));
    assert_eq!(events(cluster, &piped), events(cluster, &ran));
    Run::on(&cluster.url(&piped), &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("nothing to do");
}

#[test]
fn sql_continues_from_where_the_database_stands() {
    let cluster = Cluster::shared();
    let folder = Folder::example();
    let ran = reference(cluster, &folder);
    let db = cluster.create_database("sql_partial");
    let url = cluster.url(&db);
    Run::on(&url, &folder, &["up", "+1"]).run().expect(0);
    let out = Run::on(&url, &folder, &["up", "--sql"]).run();
    out.expect(0);
    assert!(
        !out.stdout.contains(&format!("-- up {FIRST}")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&format!("-- up {SECOND}")));
    cluster.psql(&db, &out.stdout);
    assert_eq!(cluster.pg_dump_schema(&db), cluster.pg_dump_schema(&ran));
    assert_eq!(history_rows(cluster, &db), history_rows(cluster, &ran));
}

#[test]
fn a_range_needs_no_database_at_all() {
    let cluster = Cluster::shared();
    let folder = Folder::example();
    let ran = reference(cluster, &folder);
    let offline = |args: &[&str]| {
        let mut run = Run::new(args);
        run.env(
            "SCHEMAGATE_MIGRATIONS",
            folder.path().to_str().expect("utf-8"),
        );
        let outcome = run.run();
        outcome.expect(0);
        outcome.stdout
    };

    let full = offline(&["up", "base:head", "--sql"]);
    let db = cluster.create_database("sql_offline");
    cluster.psql(&db, &full);
    assert_eq!(cluster.pg_dump_schema(&db), cluster.pg_dump_schema(&ran));
    assert_eq!(history_rows(cluster, &db), history_rows(cluster, &ran));

    // From a revision: the database is assumed to have it and its ancestors.
    let db = cluster.create_database("sql_offline_from");
    Run::on(&cluster.url(&db), &folder, &["up", SECOND])
        .run()
        .expect(0);
    cluster.psql(&db, &offline(&["up", &format!("{SECOND}:head"), "--sql"]));
    assert_eq!(history_rows(cluster, &db), history_rows(cluster, &ran));

    // And back down, offline too: every revision reverted, every table gone.
    let down = offline(&["downgrade", &format!("{SECOND}:base"), "--sql"]);
    assert!(down.contains(&format!("-- down {SECOND}")), "{down}");
    let db = cluster.create_database("sql_offline_down");
    Run::on(&cluster.url(&db), &folder, &["up", SECOND])
        .run()
        .expect(0);
    cluster.psql(&db, &down);
    assert_eq!(
        cluster.psql(&db, "SELECT count(*) FROM schemagate_history"),
        "0"
    );
    assert_eq!(
        cluster.psql(&db, "SELECT to_regclass('users') IS NULL"),
        "t"
    );

    // A range without --sql, or a reversed one, is a usage error.
    let mut run = Run::new(&["up", "base:head"]);
    run.env(
        "SCHEMAGATE_MIGRATIONS",
        folder.path().to_str().expect("utf-8"),
    );
    run.run()
        .expect(2)
        .stderr_has("only --sql and --dry-run take");
}

#[test]
fn dry_run_says_what_would_run_and_changes_nothing() {
    let cluster = Cluster::shared();
    let folder = Folder::example();
    let db = cluster.create_database("dry_run");
    let url = cluster.url(&db);
    let out = Run::on(&url, &folder, &["up", "--dry-run"]).run();
    out.expect(0)
        .stdout_has(&format!("would apply {FIRST} create users ("));
    assert_eq!(out.stdout.lines().count(), 4, "{}", out.stdout);
    assert!(no_history(cluster, &db));

    Run::on(&url, &folder, &["up"]).run().expect(0);
    Run::on(&url, &folder, &["down", "-2", "--dry-run"])
        .run()
        .expect(0)
        .stdout_has("would revert 20251210080000")
        .stdout_has(&format!("would revert {THIRD}"));
    Run::on(&url, &folder, &["up", "--dry-run"])
        .run()
        .expect(0)
        .stdout_has("nothing to do");
    assert_eq!(
        cluster.psql(&db, "SELECT count(*) FROM schemagate_history"),
        "4"
    );
}

#[test]
fn up_to_a_revision_or_by_steps() {
    let cluster = Cluster::shared();
    let folder = Folder::example();
    let db = cluster.create_database("targets");
    let url = cluster.url(&db);
    let applied = || cluster.psql(&db, "SELECT count(*) FROM schemagate_history");

    // A unique prefix names a revision, as in Alembic.
    Run::on(&url, &folder, &["up", "202512010915"])
        .run()
        .expect(0)
        .stderr_has("applied 2 migrations");
    assert_eq!(applied(), "2");
    Run::on(&url, &folder, &["upgrade", "+1"])
        .run()
        .expect(0)
        .stderr_has(&format!("applied {THIRD}"));
    assert_eq!(applied(), "3");

    // Asking for more than is pending applies nothing.
    Run::on(&url, &folder, &["up", "+2"])
        .run()
        .expect(2)
        .stderr_has("only 1 migration is pending");
    assert_eq!(applied(), "3");
    for (args, says) in [
        (&["up", "2025120"][..], "start of 3 revisions"),
        (&["up", "1999"][..], "no migration has revision `1999`"),
        (&["up", "base"][..], "to go back use `schemagate down`"),
        (&["up", "-1"][..], "to go back use `schemagate down`"),
    ] {
        Run::on(&url, &folder, args)
            .run()
            .expect(2)
            .stderr_has(says);
    }
    Run::on(&url, &folder, &["up", "head"]).run().expect(0);
    assert_eq!(applied(), "4");
}
