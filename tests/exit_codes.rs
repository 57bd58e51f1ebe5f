//! Exit codes and output that cannot panic (issue 10, items 10 and 7b): an empty schema,
//! a corrupted history table, SIGHUP and SIGQUIT, a closed or full standard output.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Cluster;
use support::fresh_database as db;
use support::run::{Folder, Run};
use support::state::{backend_waiting, wait_until};

fn psql(db: &str, sql: &str) -> String {
    Cluster::shared().psql(db, sql)
}

fn one() -> Folder {
    Folder::with(&[("1_a.sql", "CREATE TABLE a ();\n")])
}

#[test]
fn an_empty_schema_is_a_usage_error() {
    let folder = one();
    let url = "postgres://u@127.0.0.1:1/d";
    Run::on(url, &folder, &["up", "--schema", ""])
        .run()
        .expect(2)
        .stderr_has("--schema");
    Run::on(url, &folder, &["up"])
        .env("SCHEMAGATE_SCHEMA", "")
        .run()
        .expect(2)
        .stderr_has("SCHEMAGATE_SCHEMA");
}

#[test]
fn a_dropped_history_column_is_a_conflict_naming_the_table() {
    let (db, url) = db("dropped_col");
    let folder = one();
    Run::on(&url, &folder, &["up"]).run().expect(0);
    psql(&db, "ALTER TABLE schemagate_history DROP COLUMN checksum");
    folder.write("2_b.sql", "CREATE TABLE b ();\n");
    for command in [&["up"][..], &["status"], &["check"]] {
        Run::on(&url, &folder, command)
            .run()
            .expect(8)
            .stderr_has("schemagate_history")
            .stderr_has("--schema");
    }
    assert_eq!(psql(&db, "SELECT to_regclass('b') IS NULL"), "t");
}

#[test]
fn an_unknown_status_is_a_conflict_naming_the_valid_ones() {
    let (db, url) = db("bad_status");
    let folder = one();
    Run::on(&url, &folder, &["up"]).run().expect(0);
    psql(
        &db,
        "ALTER TABLE schemagate_history DROP CONSTRAINT schemagate_history_status_check; \
         UPDATE schemagate_history SET status = 'done'",
    );
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(8)
        .stderr_has("schemagate_history")
        .stderr_has("applied, running, failed");
}

#[test]
fn a_missing_events_table_is_created_not_corruption() {
    let (db, url) = db("no_events");
    let folder = one();
    Run::on(&url, &folder, &["up"]).run().expect(0);
    psql(&db, "DROP TABLE schemagate_events");
    folder.write("2_b.sql", "CREATE TABLE b ();\n");
    Run::on(&url, &folder, &["up"]).run().expect(0);
    assert_eq!(psql(&db, "SELECT count(*) FROM schemagate_events"), "1");
}

fn signal_during_a_slow_migration(signal: &str, code: i32, name: &str) {
    let cluster = Cluster::shared();
    let (db, url) = db(&format!("sig_{}", signal.to_lowercase()));
    let folder = Folder::with(&[
        ("1_a.sql", "CREATE TABLE a ();\n"),
        ("2_slow.sql", "CREATE TABLE b ();\nSELECT pg_sleep(30);\n"),
    ]);
    let started = Instant::now();
    let child = Run::on(&url, &folder, &["up"]).spawn();
    assert!(
        wait_until(Duration::from_secs(10), || backend_waiting(
            cluster, &db, "PgSleep"
        )),
        "migration 2 never started sleeping"
    );
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let signalled = Instant::now();
    let outcome = support::run::finish(child, started);
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "took {:?}",
        signalled.elapsed()
    );
    outcome
        .expect(code)
        .stderr_has(&format!("interrupted by {name}"));
    assert_eq!(
        psql(
            &db,
            "SELECT string_agg(revision, ' ' ORDER BY revision) FROM schemagate_history"
        ),
        "1"
    );
    assert_eq!(psql(&db, "SELECT to_regclass('b') IS NULL"), "t");
}

#[test]
fn sighup_during_a_slow_migration_rolls_back_and_exits_129() {
    signal_during_a_slow_migration("HUP", 129, "SIGHUP");
}

#[test]
fn sigquit_during_a_slow_migration_rolls_back_and_exits_131() {
    signal_during_a_slow_migration("QUIT", 131, "SIGQUIT");
}

fn long_folder() -> Folder {
    let folder = Folder::new();
    for i in 1..=200 {
        folder.write(
            &format!("{i}_table_{i}.sql"),
            &format!("CREATE TABLE t{i} ();\n"),
        );
    }
    folder
}

#[test]
fn a_closed_stdout_pipe_ends_quietly_with_exit_0() {
    let folder = long_folder();
    // The reader is gone before the first write: what `| head -1` does to a long history.
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let output = Command::new(env!("CARGO_BIN_EXE_schemagate"))
        .env_clear()
        .args(["history", "--offline", "-v"])
        .env("SCHEMAGATE_MIGRATIONS", folder.path())
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("panic"), "{stderr}");
    assert!(stderr.trim().is_empty(), "not quiet: {stderr}");
}

#[test]
fn a_full_stdout_is_a_one_line_error_and_exit_1() {
    let folder = long_folder();
    for args in [&["validate"][..], &["history", "--offline"]] {
        let devfull = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let output = Command::new(env!("CARGO_BIN_EXE_schemagate"))
            .env_clear()
            .args(args)
            .env("SCHEMAGATE_MIGRATIONS", folder.path())
            .stdin(Stdio::null())
            .stdout(devfull)
            .stderr(Stdio::piped())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("panic"), "{stderr}");
        assert!(
            stderr.contains("error: cannot write to standard output:"),
            "{stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}

#[test]
fn a_closed_or_full_stderr_does_not_panic() {
    let folder = Folder::with(&[("1_a.sql", "-- migrate:bogus\nCREATE TABLE a ();\n")]);
    for (args, code) in [("validate", 3), ("--log-level '[[bad' validate", 2)] {
        for redirect in ["2>&-", "2>/dev/full"] {
            let output = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "{} {args} {redirect}; echo \"code=$?\"",
                    env!("CARGO_BIN_EXE_schemagate")
                ))
                .env_clear()
                .env("SCHEMAGATE_MIGRATIONS", folder.path())
                .output()
                .expect("sh");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                stdout.contains(&format!("code={code}")),
                "{args} {redirect}: {stdout}"
            );
        }
    }
}
