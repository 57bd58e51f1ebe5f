//! Signals against a real PostgreSQL: SIGTERM/SIGINT mid-statement, while waiting for
//! the lock or for the server, and a server that never comes. Faults repeated many times
//! (SIGKILL, restarts, terminated backends, racing runners) are in `fault_suite.rs`.
//!
//! After every signal the database must be in a state a plain re-run can finish from: no
//! advisory lock left behind, no half-applied migration, each revision applied once.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::Cluster;
use support::run::{Folder, Outcome, Run};
use support::state::{
    advisory_locks, backend_waiting, history, ok_events, schemagate_backends, tables_exist,
    wait_until,
};
use support::watched::Watched;

/// PRODUCT: a signal ends the run within this.
const SIGNAL_DEADLINE: Duration = Duration::from_secs(2);
/// How long the server may take to drop a backend whose client went away.
const SETTLE: Duration = Duration::from_secs(1);
/// Generous, for a loaded machine: how long a run may take to reach a given point.
const REACH: Duration = Duration::from_secs(10);

/// After an interruption: the lock is released and the connection closed (the server may
/// take a moment to clean up a backend whose client went away).
fn assert_nothing_left(cluster: &Cluster, db: &str) {
    assert!(
        wait_until(SETTLE, || advisory_locks(cluster, db) == 0),
        "an advisory lock is still held in {db}: {}",
        cluster.psql(
            db,
            "SELECT pid, objid, granted FROM pg_locks WHERE locktype = 'advisory'"
        )
    );
    assert!(
        wait_until(SETTLE, || schemagate_backends(cluster, db) == 0),
        "schemagate backends left in {db}"
    );
}

/// Waits for a signalled run and checks it ended in time with `code`.
#[track_caller]
fn finish_signalled(run: Watched, signalled: Instant, code: i32) -> Outcome {
    let outcome = run.finish();
    let after_signal = signalled.elapsed();
    outcome.expect(code);
    println!("exit {code} {after_signal:?} after the signal");
    assert!(
        after_signal < SIGNAL_DEADLINE,
        "exit {code} came {after_signal:?} after the signal (limit {SIGNAL_DEADLINE:?})\n--- stderr\n{}",
        outcome.stderr
    );
    outcome
}

/// Sleeps 30 s only while the table `go_slow` exists, so the same file runs fast on the
/// re-run once the test drops it (an edited file would be a checksum conflict).
const SLOW: &str = "-- migrate:up\n\
    SELECT pg_sleep(CASE WHEN to_regclass('public.go_slow') IS NULL THEN 0 ELSE 30 END);\n\
    CREATE TABLE b (id int);\n";

fn three_migrations(second: &str) -> Folder {
    Folder::with(&[
        ("1_a.sql", "CREATE TABLE a (id int);\n"),
        ("2_b.sql", second),
        ("3_c.sql", "CREATE TABLE c (id int);\n"),
    ])
}

/// A signal while migration 2 sleeps: it is cancelled and rolled back, the lock freed at
/// once, and a second runner that was queued behind it proceeds and applies 2 and 3.
fn signal_during_long_statement(signal: &str, code: i32, name: &str) {
    let cluster = Cluster::shared();
    let db = cluster.create_database(&format!("sig_{}", signal.to_lowercase()));
    cluster.psql(&db, "CREATE TABLE go_slow ()");
    let folder = three_migrations(SLOW);

    let first = Watched::spawn(&mut Run::on(&cluster.url(&db), &folder, &["up"]));
    assert!(
        wait_until(REACH, || backend_waiting(cluster, &db, "PgSleep")),
        "migration 2 never started sleeping"
    );
    let second = Watched::spawn(&mut Run::on(&cluster.url(&db), &folder, &["up"]));
    assert!(
        wait_until(REACH, || second.logged("waiting for the advisory lock")),
        "the second runner never queued for the lock"
    );
    // The first runner already chose to sleep; the second will not.
    cluster.psql(&db, "DROP TABLE go_slow");

    let signalled = first.signal(signal);
    let outcome = finish_signalled(first, signalled, code);
    outcome.stderr_has(&format!("interrupted by {name}"));
    assert!(
        !outcome.stderr.contains("applied 2"),
        "the interrupted runner claims work: {}",
        outcome.stderr
    );

    second.finish().expect(0).stderr_has("applied 2 migrations");
    assert_nothing_left(cluster, &db);
    assert_eq!(history(cluster, &db), "1:applied 2:applied 3:applied");
    assert_eq!(ok_events(cluster, &db), "1:1 2:1 3:1");
    assert!(tables_exist(cluster, &db, &["a", "b", "c"]));
}

#[test]
fn sigterm_during_a_long_statement_rolls_back_and_exits_143() {
    signal_during_long_statement("TERM", 143, "SIGTERM");
}

#[test]
fn sigint_during_a_long_statement_rolls_back_and_exits_130() {
    signal_during_long_statement("INT", 130, "SIGINT");
}

/// A psql session holding advisory lock 4242 in `db` until dropped.
struct LockHolder<'a> {
    cluster: &'a Cluster,
    db: String,
    psql: Child,
}

impl<'a> LockHolder<'a> {
    fn take(cluster: &'a Cluster, db: &str, key: i64) -> LockHolder<'a> {
        let psql = Command::new(support::pg_bin("psql"))
            .args(["-X", "-q", "-h", cluster.host(), "-U", "postgres", "-d", db])
            .args(["-p", &cluster.port().to_string()])
            .args(["-c", &format!("SELECT pg_advisory_lock({key})")])
            .args(["-c", "SELECT pg_sleep(60)"])
            .env_clear()
            .env("PGAPPNAME", "lock_holder")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn psql");
        let holder = LockHolder {
            cluster,
            db: db.to_string(),
            psql,
        };
        assert!(
            wait_until(REACH, || advisory_locks(cluster, db) == 1),
            "the lock holder never got lock {key}"
        );
        holder
    }
}

impl Drop for LockHolder<'_> {
    fn drop(&mut self) {
        // Killing psql is not enough: its backend sleeps on, holding the lock.
        let _ = self.cluster.psql_result(
            &self.db,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'lock_holder'",
        );
        let _ = self.psql.kill();
        let _ = self.psql.wait();
    }
}

#[test]
fn sigterm_while_waiting_for_the_lock_exits_143() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("sig_lock");
    let _holder = LockHolder::take(cluster, &db, 4242);
    let folder = three_migrations("CREATE TABLE b (id int);\n");

    let run = Watched::spawn(&mut Run::on(
        &cluster.url(&db),
        &folder,
        &["up", "--lock-key", "4242"],
    ));
    assert!(
        wait_until(REACH, || run.logged("waiting for the advisory lock")),
        "the runner never queued for the lock"
    );
    let signalled = run.signal("TERM");
    finish_signalled(run, signalled, 143).stderr_has("interrupted by SIGTERM");

    // Its connection is gone; the holder still has the lock.
    assert!(
        wait_until(SETTLE, || schemagate_backends(cluster, &db) == 0),
        "schemagate backends left in {db}"
    );
    assert_eq!(advisory_locks(cluster, &db), 1);
    assert_eq!(
        cluster.psql(&db, "SELECT to_regclass('schemagate_history') IS NULL"),
        "t",
        "nothing was done without the lock"
    );
}

#[test]
fn sigterm_while_waiting_for_the_server_exits_143() {
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/none",
        support::free_port()
    );
    let folder = three_migrations("CREATE TABLE b (id int);\n");
    let run = Watched::spawn(&mut Run::on(
        &url,
        &folder,
        &["up", "--wait-timeout", "60s"],
    ));
    // Logged after the first refused attempt; then a few retries into the backoff loop.
    assert!(
        wait_until(REACH, || run.logged("waiting for database")),
        "the runner never started waiting"
    );
    std::thread::sleep(Duration::from_millis(500));
    let signalled = run.signal("TERM");
    finish_signalled(run, signalled, 143).stderr_has("interrupted by SIGTERM");
}

#[test]
fn a_server_that_never_comes_exits_4_at_the_deadline() {
    let url = format!(
        "postgres://postgres@127.0.0.1:{}/none",
        support::free_port()
    );
    let folder = three_migrations("CREATE TABLE b (id int);\n");
    let outcome = Run::on(&url, &folder, &["up", "--wait-timeout", "3s"]).run();
    outcome.expect(4).stderr_has("not reachable");
    println!("exit 4 after {:?}", outcome.elapsed);
    assert!(
        outcome.elapsed >= Duration::from_secs(3) && outcome.elapsed <= Duration::from_millis(4500),
        "exit 4 after {:?}, expected between 3 s and 4.5 s",
        outcome.elapsed
    );
}
