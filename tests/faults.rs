//! Signals and faults against a real PostgreSQL: SIGTERM/SIGINT mid-statement, while
//! waiting for the lock or for the server; a server restart and a terminated backend
//! mid-run; SIGKILL at random moments; a server that never comes.
//!
//! After every fault the database must be in a state a plain re-run can finish from: no
//! advisory lock left behind, no half-applied migration, each revision applied once.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use support::Cluster;
use support::run::{Folder, Outcome, Run, finish};

/// PRODUCT: a signal ends the run within this.
const SIGNAL_DEADLINE: Duration = Duration::from_secs(2);
/// How long the server may take to drop a backend whose client went away.
const SETTLE: Duration = Duration::from_secs(1);
/// Generous, for a loaded machine: how long a run may take to reach a given point.
const REACH: Duration = Duration::from_secs(10);

/// Polls `condition` every 20 ms until it holds or `timeout` passes; the last answer.
fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` ("TERM", "INT", "KILL") to a process, as an orchestrator would.
fn send(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {} failed", child.id());
}

/// Whether schemagate has a backend in `db` that is waiting on `wait_event` (`PgSleep`
/// while a migration sleeps).
fn backend_waiting(cluster: &Cluster, db: &str, wait_event: &str) -> bool {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'schemagate' AND state = 'active' AND wait_event = '{wait_event}'"
    );
    count(cluster, db, &sql) > 0
}

fn count(cluster: &Cluster, db: &str, sql: &str) -> usize {
    cluster.psql(db, sql).parse().expect("a count")
}

/// Advisory locks in `db`, granted or awaited (the cluster may be shared: other tests'
/// locks do not count).
fn advisory_locks(cluster: &Cluster, db: &str) -> usize {
    count(
        cluster,
        db,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
}

fn schemagate_backends(cluster: &Cluster, db: &str) -> usize {
    count(
        cluster,
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'schemagate'",
    )
}

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

/// Every history row as `revision:status`, in revision order: "1:applied 2:applied".
fn history(cluster: &Cluster, db: &str) -> String {
    cluster.psql(
        db,
        "SELECT coalesce(string_agg(revision || ':' || status, ' ' ORDER BY revision), '') \
         FROM schemagate_history",
    )
}

/// `revision:count` of 'ok' events, in revision order.
fn ok_events(cluster: &Cluster, db: &str) -> String {
    cluster.psql(
        db,
        "SELECT coalesce(string_agg(revision || ':' || n, ' ' ORDER BY revision), '') \
         FROM (SELECT revision, count(*) AS n FROM schemagate_events \
               WHERE outcome = 'ok' GROUP BY revision) e",
    )
}

fn tables_exist(cluster: &Cluster, db: &str, names: &[&str]) -> bool {
    names
        .iter()
        .all(|t| cluster.psql(db, &format!("SELECT to_regclass('public.{t}') IS NOT NULL")) == "t")
}

/// A spawned run whose stderr is read as it comes, so a test can wait for a log line.
struct Watched {
    child: Child,
    started: Instant,
    stderr: Arc<Mutex<String>>,
    reader: JoinHandle<()>,
}

impl Watched {
    fn spawn(run: &mut Run) -> Watched {
        let started = Instant::now();
        let mut child = run.spawn();
        let pipe = child.stderr.take().expect("stderr is piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Watched {
            child,
            started,
            stderr,
            reader,
        }
    }

    fn logged(&self, text: &str) -> bool {
        self.stderr.lock().unwrap().contains(text)
    }

    /// Sends `signal` and returns when it was sent.
    fn signal(&self, signal: &str) -> Instant {
        send(&self.child, signal);
        Instant::now()
    }

    fn finish(self) -> Outcome {
        let mut outcome = finish(self.child, self.started);
        self.reader.join().expect("stderr reader");
        outcome.stderr = Arc::try_unwrap(self.stderr)
            .expect("reader is done")
            .into_inner()
            .unwrap();
        outcome
    }
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

/// Migration 2 sleeps 2 s; while it does, `fault` breaks the connection. The runner must
/// reconnect, re-plan and finish: each migration applied exactly once.
fn survives_connection_loss(cluster: &Cluster, db: &str, fault: impl FnOnce()) {
    let folder = three_migrations("SELECT pg_sleep(2);\nCREATE TABLE b (id int);\n");
    let started = Instant::now();
    let child = Run::on(&cluster.url(db), &folder, &["up", "--wait-timeout", "30s"]).spawn();
    assert!(
        wait_until(REACH, || backend_waiting(cluster, db, "PgSleep")),
        "migration 2 never started sleeping"
    );
    fault();
    let outcome = finish(child, started);
    outcome.expect(0).stderr_has("connection lost");
    assert!(tables_exist(cluster, db, &["a", "b", "c"]));
    assert_eq!(history(cluster, db), "1:applied 2:applied 3:applied");
    assert_eq!(ok_events(cluster, db), "1:1 2:1 3:1");
    assert_nothing_left(cluster, db);
}

#[test]
fn a_server_restart_mid_migration_is_survived() {
    let cluster = Cluster::start();
    let db = cluster.create_database("restart");
    survives_connection_loss(&cluster, &db, || cluster.restart());
}

#[test]
fn a_terminated_backend_mid_migration_is_survived() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("terminate");
    survives_connection_loss(cluster, &db, || {
        let killed = cluster.psql(
            &db,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'schemagate'",
        );
        assert_eq!(killed, "1", "exactly the runner's backend is terminated");
    });
}

/// A small xorshift generator seeded from the clock: no rand crate for a few delays.
struct Jitter(u64);

impl Jitter {
    fn from_clock() -> Jitter {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64;
        Jitter(nanos | 1)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

const KILL_MIGRATIONS: usize = 30;

/// 30 migrations `t_i`, each creating its table and inserting `i`; the up marker varies
/// (none, plain, explicit `transaction:true`) but every one is transactional.
fn kill_folder() -> Folder {
    let folder = Folder::new();
    for i in 1..=KILL_MIGRATIONS {
        let marker = ["", "-- migrate:up\n", "-- migrate:up transaction:true\n"][i % 3];
        folder.write(
            &format!("{}_t{i}.sql", 1000 + i),
            &format!("{marker}CREATE TABLE t_{i} (id int);\nINSERT INTO t_{i} VALUES ({i});\n"),
        );
    }
    folder
}

/// The consistency invariant; returns how many migrations are applied.
/// History revisions = existing t_i tables, each table holds exactly its one row, no
/// revision twice, exactly one 'ok' event per applied revision.
fn check_invariant(cluster: &Cluster, db: &str, when: &str) -> usize {
    let tables: BTreeSet<usize> = cluster
        .psql(
            db,
            "SELECT substr(relname, 3) FROM pg_class \
             WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace AND relname ~ '^t_[0-9]+$'",
        )
        .lines()
        .map(|n| n.parse().expect("table number"))
        .collect();
    if cluster.psql(db, "SELECT to_regclass('schemagate_history') IS NULL") == "t" {
        assert!(
            tables.is_empty(),
            "{when}: tables {tables:?} without a history"
        );
        return 0;
    }
    let counted = |sql: &str| -> BTreeMap<usize, usize> {
        cluster
            .psql(db, sql)
            .lines()
            .map(|line| {
                let (revision, n) = line.split_once('|').expect("revision|count");
                let i = revision.parse::<usize>().expect("numeric revision") - 1000;
                (i, n.parse().expect("count"))
            })
            .collect()
    };
    let history = counted(
        "SELECT revision, count(*) FROM schemagate_history WHERE status = 'applied' GROUP BY revision",
    );
    let all_rows = cluster.psql(db, "SELECT count(*) FROM schemagate_history");
    assert_eq!(
        all_rows,
        history.len().to_string(),
        "{when}: history rows that are not 'applied'"
    );
    assert!(
        history.values().all(|&n| n == 1),
        "{when}: a revision recorded twice: {history:?}"
    );
    let revisions: BTreeSet<usize> = history.keys().copied().collect();
    assert_eq!(revisions, tables, "{when}: history and tables disagree");

    let events = counted(
        "SELECT revision, count(*) FROM schemagate_events WHERE outcome = 'ok' GROUP BY revision",
    );
    let ok: BTreeSet<usize> = events.keys().copied().collect();
    assert_eq!(ok, revisions, "{when}: 'ok' events and history disagree");
    assert!(
        events.values().all(|&n| n == 1),
        "{when}: more than one 'ok' event for a revision: {events:?}"
    );

    if !tables.is_empty() {
        let rows = tables
            .iter()
            .map(|i| format!("SELECT {i}, count(*), min(id) FROM t_{i}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        for line in cluster.psql(db, &rows).lines() {
            let fields: Vec<&str> = line.split('|').collect();
            assert_eq!(
                (fields[1], fields[2]),
                ("1", fields[0]),
                "{when}: t_{} must hold exactly its one row",
                fields[0]
            );
        }
    }
    revisions.len()
}

#[test]
fn sigkill_at_random_moments_never_breaks_the_history() {
    let trials: usize = std::env::var("SCHEMAGATE_FAULT_TRIALS")
        .ok()
        .map(|n| n.parse().expect("SCHEMAGATE_FAULT_TRIALS is a number"))
        .unwrap_or(10);
    let cluster = Cluster::shared();
    let folder = kill_folder();
    // A kill after the run has exited tests nothing: aim within one full run's time here
    // (it varies with the machine's load), at most 300 ms.
    let reference = cluster.create_database("kill_ref");
    let full_run = Run::on(&cluster.url(&reference), &folder, &["up"]).run();
    full_run.expect(0);
    assert_eq!(
        check_invariant(cluster, &reference, "reference run"),
        KILL_MIGRATIONS
    );
    let window = full_run.elapsed.as_millis().clamp(50, 300) as u64;
    let mut jitter = Jitter::from_clock();
    let mut landed = Vec::new();
    for trial in 1..=trials {
        let db = cluster.create_database("kill");
        let url = cluster.url(&db);
        let delay = Duration::from_millis(jitter.below(window));
        let spawned = Instant::now();
        let mut child = Run::on(&url, &folder, &["up"]).spawn();
        std::thread::sleep(delay);
        send(&child, "KILL");
        // Under load, spawning `kill` adds to the planned delay.
        let landed_at = spawned.elapsed();
        let status = child.wait().expect("wait for the killed run");
        let killed = status.signal() == Some(9);
        assert!(
            killed || status.success(),
            "trial {trial}: the run exited with {status} before the kill"
        );
        // The killed run's backend finishes the batch it was given, then notices.
        assert!(
            wait_until(REACH, || schemagate_backends(cluster, &db) == 0),
            "trial {trial}: the killed run's backend lingers"
        );
        let when = format!("trial {trial}, killed at {landed_at:?}");
        let applied = check_invariant(cluster, &db, &when);
        landed.push(format!(
            "{}ms:{}",
            landed_at.as_millis(),
            if killed {
                format!("{applied} applied")
            } else {
                "finished first".to_string()
            }
        ));

        Run::on(&url, &folder, &["up", "--lock-timeout", "30s"])
            .run()
            .expect(0);
        let after = format!("{when}, then re-run");
        assert_eq!(check_invariant(cluster, &db, &after), KILL_MIGRATIONS);
    }
    println!(
        "{trials} SIGKILL trials (a full run took {:?}, kills within {window} ms); \
         when the kill landed:state: {}",
        full_run.elapsed,
        landed.join(", ")
    );
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
