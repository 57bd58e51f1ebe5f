//! The fault suite: each fault repeated many times against a real PostgreSQL, the
//! invariant checked after every trial, and one `FAULT|...` line of figures per fault.
//!
//! The invariant (`state::consistent`): every history row's table exists and holds its
//! one row, no table without its row, no migration applied twice, one 'ok' event each.
//!
//! `cargo test` runs a reduced count; `scripts/fault-suite.sh` (`SCHEMAGATE_FAULTS=full`)
//! runs the full one and prints the table the README reports.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use support::Cluster;
use support::run::{Folder, Run, finish};
use support::state::{
    Jitter, advisory_locks, backend_waiting, consistent, numbered, schemagate_backends, wait_until,
};

/// How long a run may take to reach a point, on a loaded machine.
const REACH: Duration = Duration::from_secs(10);

fn full() -> bool {
    std::env::var("SCHEMAGATE_FAULTS").is_ok_and(|v| v == "full")
}

/// `ci` trials in `cargo test`, `full` with `SCHEMAGATE_FAULTS=full`.
fn trials(ci: usize, full_count: usize) -> usize {
    if full() { full_count } else { ci }
}

/// Alternating lock modes, so every fault is tried under both.
fn mode(trial: usize) -> &'static str {
    if trial % 2 == 0 {
        "session"
    } else {
        "transaction"
    }
}

/// Trials and failures of one fault, printed as one line and then asserted.
struct Tally {
    fault: &'static str,
    invariant: &'static str,
    trials: usize,
    failures: Vec<String>,
    started: Instant,
    /// Said after the fault's name, e.g. how many kills landed mid-run.
    note: String,
}

impl Tally {
    fn new(fault: &'static str, invariant: &'static str) -> Tally {
        Tally {
            fault,
            invariant,
            trials: 0,
            failures: Vec::new(),
            started: Instant::now(),
            note: String::new(),
        }
    }

    fn trial(&mut self, outcome: Result<(), String>) {
        self.trials += 1;
        if let Err(e) = outcome {
            self.failures.push(format!("trial {}: {e}", self.trials));
        }
    }

    fn report(self) {
        println!(
            "FAULT|{}{}|{}|{}|{}|{:.1}",
            self.fault,
            self.note,
            self.trials,
            self.failures.len(),
            self.invariant,
            self.started.elapsed().as_secs_f64()
        );
        assert!(
            self.failures.is_empty(),
            "{}: {} of {} trials failed:\n{}",
            self.fault,
            self.failures.len(),
            self.trials,
            self.failures.join("\n")
        );
    }
}

/// The run's exit code and stderr as a trial's error, unless it is `code`.
fn expect(outcome: &support::run::Outcome, code: i32) -> Result<(), String> {
    if outcome.code == code {
        Ok(())
    } else {
        Err(format!(
            "exit {} instead of {code}; stderr:\n{}",
            outcome.code, outcome.stderr
        ))
    }
}

fn all_applied(cluster: &Cluster, db: &str, count: usize) -> Result<(), String> {
    match consistent(cluster, db)? {
        n if n == count => Ok(()),
        n => Err(format!("{n} of {count} migrations applied")),
    }
}

#[test]
fn sixteen_racing_runners() {
    let cluster = Cluster::shared();
    let folder = numbered(10, None, 0);
    // And a transaction:false index, which must not deadlock with waiting runners.
    folder.write(
        "1011_t11.sql",
        "-- migrate:up transaction:false\nCREATE TABLE t_11 (id int);\nINSERT INTO t_11 VALUES (11);\n\
         CREATE INDEX CONCURRENTLY t_11_id ON t_11 (id);\n",
    );
    let mut tally = Tally::new(
        "16 runners racing (half session, half transaction lock)",
        "all exit 0; each migration applied once; history = tables = ok events",
    );
    for _ in 0..trials(2, 20) {
        let db = cluster.create_database("race");
        let url = cluster.url(&db);
        let started = Instant::now();
        let runners: Vec<_> = (0..16)
            .map(|i| Run::on(&url, &folder, &["up", "--lock-mode", mode(i)]).spawn())
            .collect();
        let outcomes: Vec<_> = runners.into_iter().map(|r| finish(r, started)).collect();
        tally.trial((|| {
            for outcome in &outcomes {
                expect(outcome, 0)?;
            }
            all_applied(cluster, &db, 11)?;
            let valid = cluster.psql(
                &db,
                "SELECT indisvalid FROM pg_index WHERE indexrelid = 't_11_id'::regclass",
            );
            if valid != "t" {
                return Err("the concurrent index is not valid".into());
            }
            Ok(())
        })());
    }
    tally.report();
}

#[test]
fn sigkill_at_random_moments() {
    let cluster = Cluster::shared();
    let folder = numbered(30, None, 5);
    // A kill after the run has exited tests nothing: aim within one full run's time here
    // (each migration pauses 5 ms, so most of it is applying; it varies with the load).
    let reference = cluster.create_database("kill_ref");
    let full_run = Run::on(&cluster.url(&reference), &folder, &["up"]).run();
    full_run.expect(0);
    let window = full_run.elapsed.as_millis().clamp(50, 1000) as u64;
    let mut jitter = Jitter::from_clock();
    let mut tally = Tally::new(
        "SIGKILL of the runner at a random moment, then a re-run",
        "after the kill and after the re-run: history = tables = ok events, each once; the re-run exits 0",
    );
    let mut killed_mid_run = 0;
    for trial in 0..trials(10, 50) {
        let db = cluster.create_database("kill");
        let url = cluster.url(&db);
        let lock_mode = mode(trial);
        let mut child = Run::on(&url, &folder, &["up", "--lock-mode", lock_mode]).spawn();
        std::thread::sleep(Duration::from_millis(jitter.below(window)));
        let _ = child.kill();
        let status = child.wait().expect("wait for the killed run");
        tally.trial((|| {
            if status.signal() == Some(9) {
                killed_mid_run += 1;
            } else if !status.success() {
                return Err(format!("the run exited with {status} before the kill"));
            }
            // The killed run's backends finish the batch they were given, then notice.
            if !wait_until(REACH, || schemagate_backends(cluster, &db) == 0) {
                return Err("the killed run's backends linger".into());
            }
            consistent(cluster, &db).map_err(|e| format!("after the kill ({lock_mode}): {e}"))?;
            let rerun = Run::on(&url, &folder, &["up", "--lock-timeout", "30s"]).run();
            expect(&rerun, 0)?;
            all_applied(cluster, &db, 30).map_err(|e| format!("after the re-run: {e}"))
        })());
    }
    tally.note = format!(" ({killed_mid_run} landed mid-run, within {window} ms)");
    tally.report();
}

/// A run whose migration 5 sleeps; `fault` breaks its connection while it does.
fn connection_fault(cluster: &Cluster, tally: &mut Tally, trial: usize, fault: impl FnOnce(&str)) {
    let db = cluster.create_database("fault");
    let url = cluster.url(&db);
    let folder = numbered(10, Some(5), 0);
    let started = Instant::now();
    let child = Run::on(
        &url,
        &folder,
        &["up", "--wait-timeout", "60s", "--lock-mode", mode(trial)],
    )
    .spawn();
    if !wait_until(REACH, || backend_waiting(cluster, &db, "PgSleep")) {
        let outcome = finish(child, started);
        tally.trial(Err(format!(
            "migration 5 never started sleeping; stderr:\n{}",
            outcome.stderr
        )));
        return;
    }
    fault(&db);
    let outcome = finish(child, started);
    tally.trial((|| {
        expect(&outcome, 0)?;
        if !outcome.stderr.contains("connection lost") {
            return Err(format!("no reconnection was logged:\n{}", outcome.stderr));
        }
        all_applied(cluster, &db, 10)?;
        if !wait_until(REACH, || advisory_locks(cluster, &db) == 0) {
            return Err("an advisory lock was left behind".into());
        }
        Ok(())
    })());
}

/// The transaction lock's connection cut while one of the holder's `transaction:false`
/// statements still runs on the server: a second runner must wait for that statement, never
/// call its row dirty, and nothing may be applied twice.
#[test]
fn lock_connection_cut_during_a_transaction_false_statement() {
    let cluster = Cluster::shared();
    let mut tally = Tally::new(
        "transaction lock's connection cut during a transaction:false statement, a second runner started at once",
        "both exit 0 (never a dirty verdict while the statement runs); history = tables = ok events, each once",
    );
    let mut jitter = Jitter::from_clock();
    for trial in 0..trials(2, 20) {
        let db = cluster.create_database("cutlock");
        let url = cluster.url(&db);
        let folder = numbered(6, None, 0);
        let sleep_ms = 300 + jitter.below(700);
        folder.write(
            "1003_t3.sql",
            &format!(
                "-- migrate:up transaction:false\nSELECT pg_sleep({});\nCREATE TABLE t_3 (id int);\nINSERT INTO t_3 VALUES (3);\n",
                sleep_ms as f64 / 1000.0
            ),
        );
        let started = Instant::now();
        let first = Run::on(&url, &folder, &["up", "--lock-mode", "transaction"]).spawn();
        if !wait_until(REACH, || backend_waiting(cluster, &db, "PgSleep")) {
            let outcome = finish(first, started);
            tally.trial(Err(format!(
                "the slow statement never started:\n{}",
                outcome.stderr
            )));
            continue;
        }
        cluster.psql(
            &db,
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' \
             AND granted AND objsubid = 1 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        );
        let second = Run::on(&url, &folder, &["up", "--lock-mode", mode(trial + 1)]).spawn();
        let second = finish(second, started);
        let first = finish(first, started);
        tally.trial((|| {
            expect(&second, 0).map_err(|e| format!("second runner: {e}"))?;
            expect(&first, 0).map_err(|e| format!("first runner: {e}"))?;
            all_applied(cluster, &db, 6)
        })());
    }
    tally.report();
}

#[test]
fn server_restarted_mid_run() {
    let cluster = Cluster::start();
    let mut tally = Tally::new(
        "server restarted mid-migration (fast shutdown, or SIGKILL and crash recovery)",
        "the runner reconnects within --wait-timeout and exits 0; history = tables = ok events, each once",
    );
    for trial in 0..trials(2, 10) {
        connection_fault(&cluster, &mut tally, trial, |_| {
            if trial % 4 < 2 {
                cluster.restart();
            } else {
                cluster.kill();
                cluster.start_again();
            }
        });
    }
    tally.report();
}

#[test]
fn backend_terminated_mid_migration() {
    let cluster = Cluster::shared();
    let mut tally = Tally::new(
        "pg_terminate_backend of the runner's connections mid-migration",
        "the runner reconnects and exits 0; history = tables = ok events, each once",
    );
    for trial in 0..trials(2, 10) {
        connection_fault(cluster, &mut tally, trial, |db| {
            cluster.psql(
                db,
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name = 'schemagate'",
            );
        });
    }
    tally.report();
}

#[test]
fn a_read_only_database_is_a_clear_error() {
    let cluster = Cluster::shared();
    let mut tally = Tally::new(
        "read-only database (default_transaction_read_only = on), fresh and with a pending migration",
        "exit 5 naming the read-only database and the fix; nothing applied, nothing recorded",
    );
    let read_only = |db: &str| {
        cluster.psql(
            "postgres",
            &format!("ALTER DATABASE \"{db}\" SET default_transaction_read_only = on"),
        );
    };
    // A fresh database: schemagate's own tables cannot be created.
    let db = cluster.create_database("read_only");
    read_only(&db);
    let outcome = Run::on(&cluster.url(&db), &numbered(2, None, 0), &["up"]).run();
    tally.trial((|| {
        expect(&outcome, 5)?;
        for needed in [
            "the database is read-only",
            "SQLSTATE 25006",
            "point DATABASE_URL at the primary",
        ] {
            if !outcome.stderr.contains(needed) {
                return Err(format!("stderr lacks {needed:?}:\n{}", outcome.stderr));
            }
        }
        consistent(cluster, &db).map(drop)
    })());

    // A database that was migrated before: the pending migration is not blamed (exit 7).
    let db = cluster.create_database("read_only_later");
    let folder = numbered(1, None, 0);
    Run::on(&cluster.url(&db), &folder, &["up"]).run().expect(0);
    read_only(&db);
    let folder2: Folder = numbered(2, None, 0);
    let outcome = Run::on(&cluster.url(&db), &folder2, &["up"]).run();
    tally.trial((|| {
        expect(&outcome, 5)?;
        if !outcome.stderr.contains("the database is read-only") {
            return Err(format!("not named read-only:\n{}", outcome.stderr));
        }
        match consistent(cluster, &db)? {
            1 => Ok(()),
            n => Err(format!("{n} applied, expected the 1 from before")),
        }
    })());
    tally.report();
}
