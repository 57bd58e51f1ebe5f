//! What a migration's own transaction control can and cannot do to schemagate's: against a
//! real PostgreSQL, through the library (to run SQL that validation would refuse) and
//! through the binary.
//!
//! The promise: a migration's history row says the truth. A transactional migration either
//! commits whole with its row or leaves nothing (or a dirty row when it committed part of
//! itself behind schemagate's back); a `transaction:false` one is never called "applied"
//! or "rolled back" when it is not.

mod support;

use clap::Parser;
use schemagate::cli::config;
use schemagate::cli::config::Cli;
use schemagate::db::guard::Guard;
use schemagate::db::history::{self, Tables};
use schemagate::db::interrupt::Interrupt;
use schemagate::db::{apply, session};
use schemagate::error::{Error, Outcome};
use schemagate::files::migration::{Migration, Section};
use schemagate::plan::reconcile::Step;

use support::Cluster;
use support::fresh_database as db;
use support::run::{Folder, Run};
use support::state::{history as rows, tables_exist, wait_until};
use support::watched::Watched;

use std::time::Duration;

fn psql(db: &str, sql: &str) -> String {
    Cluster::shared().psql(db, sql)
}

/// A transactional migration as the runner receives it, without validation.
fn unvalidated(sql: &str) -> Migration {
    Migration {
        revision: "1".into(),
        description: "hidden".into(),
        path: "m/1_hidden.sql".into(),
        revises: None,
        revises_line: None,
        up: Section {
            sql: sql.into(),
            first_line: 1,
            transactional: true,
        },
        down: None,
        checksum: "0".repeat(64),
        unfinished: false,
    }
}

/// Applies `migration` with the runner's own code, holding the session lock as `up` does.
fn apply_unvalidated(url: &str, migration: &Migration) -> schemagate::Result<Duration> {
    let cli =
        Cli::try_parse_from(["schemagate", "status", "--database-url", url]).expect("arguments");
    let connection = config::connection(&cli.global, &|_| None).expect("connection");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let interrupt = Interrupt::default();
        let session = match session::Session::open(&connection, &interrupt).await {
            Ok(session) => session,
            Err(e) => panic!("connect: {e:?}"),
        };
        let tables = Tables::new("public");
        history::ensure_tables(&session, &tables).await?;
        let guard = Guard {
            key: tables.lock_key(),
            session_lock: true,
        };
        session
            .execute(&format!("SELECT pg_advisory_lock({})", guard.key))
            .await?;
        let outcome = apply::step(
            &session,
            &tables,
            migration,
            Step::Up(0),
            guard,
            apply::DdlLock::OFF,
            &interrupt,
        )
        .await;
        session.close().await;
        outcome
    })
}

#[test]
fn a_hidden_rollback_commits_nothing_not_even_the_rest() {
    let (db, url) = db("hiddenrollback");
    let m = unvalidated("CREATE TABLE first (a int);\nROLLBACK;\nCREATE TABLE second (a int);\n");
    let error = apply_unvalidated(&url, &m).expect_err("the proof fails");
    assert!(matches!(error, Error::MigrationFailed(_)), "{error}");
    assert!(
        error.to_string().contains("nothing of it was committed"),
        "{error}"
    );
    assert_eq!(error.exit_code(), 7);
    assert!(!tables_exist(Cluster::shared(), &db, &["first"]));
    assert!(
        !tables_exist(Cluster::shared(), &db, &["second"]),
        "the statements after the ROLLBACK ran outside any transaction of schemagate's"
    );
    assert_eq!(rows(Cluster::shared(), &db), "", "no history row");
}

#[test]
fn a_hidden_commit_leaves_a_dirty_row_never_an_applied_one() {
    let (db, url) = db("hiddencommit");
    let m = unvalidated("CREATE TABLE first (a int);\nCOMMIT;\nCREATE TABLE second (a int);\n");
    let error = apply_unvalidated(&url, &m).expect_err("the proof fails");
    let Error::MigrationFailed(failure) = &error else {
        panic!("{error}");
    };
    assert_eq!(failure.outcome, Outcome::EndedEarly, "{error}");
    assert!(
        error.to_string().contains("schemagate resolve 1"),
        "{error}"
    );
    // What the COMMIT committed stays, with the running row it took along; the rest not.
    assert!(tables_exist(Cluster::shared(), &db, &["first"]));
    assert!(!tables_exist(Cluster::shared(), &db, &["second"]));
    assert_eq!(rows(Cluster::shared(), &db), "1:failed");
}

#[test]
fn a_hidden_commit_before_a_failure_is_not_called_rolled_back() {
    let (db, url) = db("hiddencommitfail");
    let m = unvalidated("CREATE TABLE first (a int);\nCOMMIT;\nSELECT 1/0;\n");
    let error = apply_unvalidated(&url, &m).expect_err("fails");
    let Error::MigrationFailed(failure) = &error else {
        panic!("{error}");
    };
    assert_eq!(failure.outcome, Outcome::EndedEarly, "{error}");
    assert!(!error.to_string().contains("rolled back:"), "{error}");
    assert_eq!(rows(Cluster::shared(), &db), "1:failed");
}

#[test]
fn a_transaction_false_section_that_leaves_a_transaction_open_fails() {
    let (db, url) = db("leftopen");
    let folder = Folder::with(&[(
        "1_open.sql",
        "-- migrate:up transaction:false\nSELECT 1;\nBEGIN;\nCREATE TABLE t (a int);\n",
    )]);
    let out = Run::on(&url, &folder, &["up"]).run();
    out.expect(7)
        .stderr_has("left a transaction open")
        .stderr_has("at line 3")
        .stderr_has("1_open.sql:3");
    assert!(!out.stderr.contains("applied 1"), "{}", out.stderr);
    assert!(!tables_exist(Cluster::shared(), &db, &["t"]));
    // SELECT 1 committed (as a statement of its own), so the row is dirty.
    assert_eq!(rows(Cluster::shared(), &db), "1:failed");
}

#[test]
fn a_failure_inside_an_explicit_block_reports_the_real_error() {
    let (db, url) = db("blockfail");
    let folder = Folder::with(&[(
        "1_block.sql",
        "-- migrate:up transaction:false\nBEGIN;\nCREATE TABLE t (a int);\nSELECT 1/0;\nCOMMIT;\n",
    )]);
    let out = Run::on(&url, &folder, &["up"]).run();
    out.expect(7)
        .stderr_has("SQLSTATE 22012")
        .stderr_has("1_block.sql:4")
        .stderr_has("failed before any of it was committed");
    assert!(!out.stderr.contains("25P02"), "{}", out.stderr);
    assert!(!out.stderr.contains("rolled back:"), "{}", out.stderr);
    assert!(!tables_exist(Cluster::shared(), &db, &["t"]));
    assert_eq!(
        rows(Cluster::shared(), &db),
        "",
        "nothing committed: no dirty row"
    );
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM schemagate_events WHERE outcome = 'failed' AND detail LIKE '%22012%'"
        ),
        "1"
    );
    // Fixed, it simply runs.
    folder.write(
        "1_block.sql",
        "-- migrate:up transaction:false\nBEGIN;\nCREATE TABLE t (a int);\nCOMMIT;\n",
    );
    Run::on(&url, &folder, &["up"]).run().expect(0);
}

#[test]
fn part_way_failures_say_what_was_committed() {
    let (db, url) = db("partway");
    let folder = Folder::with(&[(
        "1_partway.sql",
        "-- migrate:up transaction:false\nCREATE TABLE kept (a int);\nBEGIN;\nCREATE TABLE lost (a int);\nSELECT 1/0;\nCOMMIT;\n",
    )]);
    let out = Run::on(&url, &folder, &["up"]).run();
    out.expect(7)
        .stderr_has("stopped part-way; the statements before line 3 were committed")
        .stderr_has("SQLSTATE 22012")
        .stderr_has("schemagate resolve 1 --applied");
    assert!(!out.stderr.contains("rolled back:"), "{}", out.stderr);
    assert!(tables_exist(Cluster::shared(), &db, &["kept"]));
    assert!(!tables_exist(Cluster::shared(), &db, &["lost"]));
    assert_eq!(rows(Cluster::shared(), &db), "1:failed");
}

#[test]
fn sigterm_in_a_transaction_false_section_says_what_was_committed() {
    let (db, url) = db("termpartway");
    let folder = Folder::with(&[(
        "1_slow.sql",
        "-- migrate:up transaction:false\nCREATE TABLE kept (a int);\nSELECT pg_sleep(30);\n",
    )]);
    let mut run = Run::on(&url, &folder, &["up"]);
    let watched = Watched::spawn(&mut run);
    assert!(wait_until(Duration::from_secs(10), || {
        support::state::backend_waiting(Cluster::shared(), &db, "PgSleep")
    }));
    watched.signal("TERM");
    let out = watched.finish();
    out.expect(143)
        .stderr_has("interrupted by SIGTERM")
        .stderr_has("the statements before line 3 were committed");
    assert!(!out.stderr.contains("rolled back"), "{}", out.stderr);
    assert_eq!(rows(Cluster::shared(), &db), "1:failed");
}

#[test]
fn set_transaction_read_only_is_the_migration_s_failure() {
    let (db, url) = db("readonlytxn");
    let folder = Folder::with(&[("1_ro.sql", "SET TRANSACTION READ ONLY;\nSELECT 1;\n")]);
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(7)
        .stderr_has("SQLSTATE 25006")
        .stderr_has("SET TRANSACTION READ ONLY");
    assert_eq!(rows(Cluster::shared(), &db), "");
}

#[test]
fn a_migration_s_role_does_not_reach_schemagate_s_own_statements() {
    let (db, url) = db("setrole");
    psql(
        &db,
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nobody_special') \
         THEN CREATE ROLE nobody_special; END IF; END $$",
    );
    let folder = Folder::with(&[
        ("1_role.sql", "SET ROLE nobody_special;\nSELECT 1;\n"),
        (
            "2_auth.sql",
            "SET SESSION AUTHORIZATION nobody_special;\nSELECT 2;\n",
        ),
        ("3_after.sql", "CREATE TABLE owned (a int);\n"),
    ]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    assert_eq!(
        psql(
            &db,
            "SELECT tableowner FROM pg_tables WHERE tablename = 'owned'"
        ),
        "postgres",
        "the next migration runs as the connecting role again"
    );
}
