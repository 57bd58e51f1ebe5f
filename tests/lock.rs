//! The advisory lock: concurrent runners are safe, idle runners never queue.

mod support;

use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

use support::run::{Folder, Run, finish};
use support::state::tables as migrations;
use support::{Cluster, LockHolder};

#[test]
fn with_nothing_to_do_a_held_lock_does_not_block() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("idle");
    let folder = migrations(3);
    let url = cluster.url(&db);
    Run::on(&url, &folder, &["up", "--lock-key", "4243"])
        .run()
        .expect(0);
    let _holder = LockHolder::take(cluster, &db, 4243);
    let outcome = Run::on(
        &url,
        &folder,
        &["up", "--lock-key", "4243", "--lock-timeout", "30s"],
    )
    .run();
    outcome.expect(0).stderr_has("nothing to do");
    assert!(
        outcome.elapsed < Duration::from_secs(3),
        "{:?}",
        outcome.elapsed
    );
}

#[test]
fn a_held_lock_times_out_with_exit_6_naming_the_holder() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("held");
    let folder = migrations(1);
    let _holder = LockHolder::take(cluster, &db, 4244);
    let outcome = Run::on(
        &cluster.url(&db),
        &folder,
        &["up", "--lock-key", "4244", "--lock-timeout", "6s"],
    )
    .run();
    outcome
        .expect(6)
        .stderr_has("waiting for the advisory lock")
        .stderr_has("application_name lock-holder-test")
        .stderr_has("still waiting for the advisory lock")
        .stderr_has("not acquired within 6s");
    assert!(
        outcome.elapsed >= Duration::from_secs(6) && outcome.elapsed < Duration::from_secs(9),
        "{:?}",
        outcome.elapsed
    );
    assert_eq!(
        cluster.psql(&db, "SELECT to_regclass('schemagate_history') IS NULL"),
        "t",
        "nothing was touched"
    );
}

#[test]
fn a_runner_waits_for_the_lock_and_then_finds_the_work_done() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("queue");
    let folder = migrations(2);
    let holder = LockHolder::take(cluster, &db, 4245);
    let started = Instant::now();
    let child = Run::on(&cluster.url(&db), &folder, &["up", "--lock-key", "4245"]).spawn();
    thread::sleep(Duration::from_millis(500));
    drop(holder);
    let outcome = finish(child, started);
    outcome.expect(0).stderr_has("advisory lock acquired");
    assert!(
        outcome.elapsed < Duration::from_secs(5),
        "{:?}",
        outcome.elapsed
    );
}

#[test]
fn eight_runners_at_once_apply_every_migration_exactly_once() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("race");
    let folder = migrations(20);
    let url = cluster.url(&db);
    let started = Instant::now();
    let children: Vec<Child> = (0..8)
        .map(|_| Run::on(&url, &folder, &["up"]).spawn())
        .collect();
    let outcomes: Vec<_> = children.into_iter().map(|c| finish(c, started)).collect();
    let mut applied = 0;
    for outcome in &outcomes {
        outcome.expect(0);
        if outcome.stderr.contains("applied 20 migrations") {
            applied += 1;
        }
    }
    assert_eq!(applied, 1, "exactly one runner applies everything");
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT count(*), count(DISTINCT revision) FROM schemagate_history"
        ),
        "20|20"
    );
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT count(*) FROM schemagate_events WHERE action = 'up' AND outcome = 'ok'"
        ),
        "20"
    );
    let rows: Vec<String> = (1..=20)
        .map(|i| format!("(SELECT count(*) FROM t{i})"))
        .collect();
    assert_eq!(
        cluster.psql(&db, &format!("SELECT {}", rows.join(" + "))),
        "20"
    );
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        "0",
        "every runner released the lock"
    );
}

/// The holder's `CREATE INDEX CONCURRENTLY` waits for every transaction with an older
/// snapshot, so a runner blocked inside `pg_advisory_lock` would make the two wait for each
/// other until PostgreSQL's deadlock detector killed one (a `--scale 3` compose run hit
/// it); in transaction mode the lock is on another backend and nothing would break the
/// wait before --lock-timeout.
#[test]
fn a_waiting_runner_does_not_deadlock_with_create_index_concurrently() {
    for mode in ["session", "transaction"] {
        waiting_next_to_create_index_concurrently(mode);
    }
}

fn waiting_next_to_create_index_concurrently(mode: &str) {
    let cluster = Cluster::shared();
    let db = cluster.create_database("concurrently");
    let folder = Folder::new();
    folder.write("1_items.sql", "CREATE TABLE items (id int);\n");
    folder.write(
        "2_items_id.sql",
        "-- migrate:up transaction:false\nSELECT pg_sleep(2);\nCREATE INDEX CONCURRENTLY items_id ON items (id);\n",
    );
    let url = cluster.url(&db);
    let started = Instant::now();
    let holder = Run::on(&url, &folder, &["up", "--lock-mode", mode]).spawn();
    // The second arrives while the first holds the lock and sleeps before its index.
    thread::sleep(Duration::from_millis(500));
    let waiter = Run::on(&url, &folder, &["up", "--lock-mode", mode]).spawn();
    let (holder, waiter) = (finish(holder, started), finish(waiter, started));
    holder.expect(0).stderr_has("applied 2 migrations");
    // Woken when the holder let go, it looked again and found the work done.
    waiter
        .expect(0)
        .stderr_has("waiting for the advisory lock")
        .stderr_has("nothing to do");
    assert!(
        waiter.elapsed < Duration::from_secs(20),
        "{mode}: the waiter took {:?}",
        waiter.elapsed
    );
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT count(*) FROM pg_index WHERE indexrelid = 'items_id'::regclass AND indisvalid"
        ),
        "1"
    );
}

/// The backends of `db` holding schemagate's run lock (the bigint key, objsubid 1).
fn lock_holders(cluster: &Cluster, db: &str) -> String {
    cluster.psql(
        db,
        "SELECT coalesce(string_agg(pid::text, ','), '') FROM pg_locks WHERE locktype = 'advisory' \
         AND granted AND objsubid = 1 \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
}

#[test]
fn a_migration_that_drops_the_lock_commits_nothing_and_stops_with_exit_8() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("unlockall");
    let folder = Folder::with(&[
        (
            "1_unlock.sql",
            "CREATE TABLE t (a int);\nSELECT pg_advisory_unlock_all();\n",
        ),
        ("2_next.sql", "CREATE TABLE n (a int);\n"),
    ]);
    Run::on(&cluster.url(&db), &folder, &["up"])
        .run()
        .expect(8)
        .stderr_has("the advisory lock was lost during migration 1")
        .stderr_has("pg_advisory_unlock_all()")
        .stderr_has("nothing of it was committed");
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT to_regclass('t') IS NULL AND to_regclass('n') IS NULL"
        ),
        "t"
    );
    assert_eq!(support::state::history(cluster, &db), "");
}

#[test]
fn discard_all_in_a_transaction_false_section_stops_before_the_next_migration() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("discardall");
    let folder = Folder::with(&[
        (
            "1_discard.sql",
            "-- migrate:up transaction:false\nCREATE TABLE t (a int);\nDISCARD ALL;\n",
        ),
        ("2_next.sql", "CREATE TABLE n (a int);\n"),
    ]);
    let out = Run::on(&cluster.url(&db), &folder, &["up"]).run();
    out.expect(8)
        .stderr_has("DISCARD ALL")
        .stderr_has("it completed and is recorded as applied");
    assert!(
        !out.stderr.to_lowercase().contains("run discard"),
        "{}",
        out.stderr
    );
    assert_eq!(support::state::history(cluster, &db), "1:applied");
    assert_eq!(cluster.psql(&db, "SELECT to_regclass('n') IS NULL"), "t");
}

#[test]
fn a_finished_step_whose_row_was_settled_meanwhile_fails_loudly() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("rowgone");
    let folder = Folder::with(&[(
        "1_slow.sql",
        "-- migrate:up transaction:false\nSELECT pg_sleep(1.5);\n",
    )]);
    let mut run = Run::on(&cluster.url(&db), &folder, &["up"]);
    let child = run.spawn();
    let started = Instant::now();
    assert!(support::state::wait_until(Duration::from_secs(10), || {
        support::state::backend_waiting(cluster, &db, "PgSleep")
    }));
    // What `resolve --rolled-back` does to the row, done behind the runner's back.
    cluster.psql(&db, "DELETE FROM schemagate_history WHERE revision = '1'");
    finish(child, started)
        .expect(8)
        .stderr_has("was changed by someone else while its statements ran");
}

/// Runner A applies a slow `transaction:false` statement in transaction lock mode; its
/// lock connection is cut; runner B (or `resolve`) must wait for A's statement, not call
/// the row dirty while it still runs on the server.
fn lock_connection_cut_mid_statement(
    then: &[&str],
) -> (support::run::Outcome, support::run::Outcome, String, String) {
    let cluster = Cluster::shared();
    let db = cluster.create_database("cut");
    let folder = Folder::with(&[
        (
            "1_slow.sql",
            "-- migrate:up transaction:false\nSELECT pg_sleep(1.5);\nCREATE TABLE after_sleep (a int);\n",
        ),
        ("2_next.sql", "CREATE TABLE next_one (a int);\n"),
    ]);
    let url = cluster.url(&db);
    let mut a = Run::on(&url, &folder, &["up", "--lock-mode", "transaction"]);
    let a_child = a.spawn();
    let a_started = Instant::now();
    assert!(support::state::wait_until(Duration::from_secs(10), || {
        support::state::backend_waiting(cluster, &db, "PgSleep")
    }));
    let holder = lock_holders(cluster, &db);
    assert!(
        !holder.is_empty() && !holder.contains(','),
        "one lock holder: {holder}"
    );
    cluster.psql(&db, &format!("SELECT pg_terminate_backend({holder})"));
    let b_started = Instant::now();
    let b = Run::on(&url, &folder, then).spawn();
    let b_out = finish(b, b_started);
    let a_out = finish(a_child, a_started);
    (
        a_out,
        b_out,
        support::state::history(cluster, &db),
        support::state::ok_events(cluster, &db),
    )
}

#[test]
fn a_runner_taking_over_waits_for_the_statement_still_running() {
    let (a, b, history, events) =
        lock_connection_cut_mid_statement(&["up", "--lock-mode", "transaction"]);
    b.expect(0)
        .stderr_has("waiting for the last statement of an interrupted run");
    assert_eq!(
        a.code, 0,
        "A reconnects and finds the work done\n{}",
        a.stderr
    );
    assert_eq!(history, "1:applied 2:applied");
    assert_eq!(events, "1:1 2:1", "each migration applied once");
}

#[test]
fn resolve_does_not_settle_a_row_whose_statement_still_runs() {
    let (_, resolve, history, _) =
        lock_connection_cut_mid_statement(&["resolve", "1", "--rolled-back"]);
    resolve.expect(2).stderr_has("is applied, not dirty");
    assert!(history.starts_with("1:applied"), "{history}");
}

#[test]
fn a_table_lock_on_the_history_ends_in_exit_6_naming_who_holds_it() {
    use std::io::Write;
    let cluster = Cluster::shared();
    let db = cluster.create_database("tablelock");
    let folder = migrations(1);
    let url = cluster.url(&db);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    folder.write("2_more.sql", "CREATE TABLE more (a int);\n");
    let mut locker = support::pg::client_command(&support::pg::PgBins::get().path("psql"))
        .args(["-X", "-q"])
        .args(cluster.socket_args(&db))
        .env("PGAPPNAME", "table-locker")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("psql");
    let mut stdin = locker.stdin.take().expect("stdin");
    writeln!(
        stdin,
        "BEGIN; LOCK TABLE schemagate_history IN ACCESS EXCLUSIVE MODE;"
    )
    .expect("write");
    assert!(support::state::wait_until(Duration::from_secs(10), || {
        cluster.psql(
            &db,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'table-locker' \
             AND state = 'idle in transaction'",
        ) == "1"
    }));
    let outcome = Run::on(&url, &folder, &["up", "--lock-timeout", "3s"]).run();
    drop(stdin);
    let _ = locker.kill();
    let _ = locker.wait();
    outcome
        .expect(6)
        .stderr_has("application_name table-locker")
        .stderr_has("LOCK TABLE schemagate_history")
        .stderr_has("raise --lock-timeout");
    assert!(
        outcome.elapsed < Duration::from_secs(8),
        "{:?}",
        outcome.elapsed
    );
}

#[test]
fn a_short_idle_session_timeout_does_not_use_up_the_wait_budget() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("idletimeout");
    cluster.psql(
        &db,
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'impatient') \
         THEN CREATE ROLE impatient LOGIN SUPERUSER; END IF; END $$; \
         ALTER ROLE impatient SET idle_session_timeout = '300ms'",
    );
    let folder = migrations(1);
    let key = 4251;
    let holder = LockHolder::take(cluster, &db, key);
    let release = thread::spawn(move || {
        thread::sleep(Duration::from_millis(2500));
        drop(holder);
    });
    let outcome = Run::on(
        &cluster.url_for("impatient", "x", &db),
        &folder,
        &["up", "--lock-key", &key.to_string(), "--wait-timeout", "1s"],
    )
    .run();
    release.join().expect("release");
    outcome.expect(0).stderr_has("applied 1 migration");
}

#[test]
fn the_transaction_lock_s_own_connection_waits_out_too_many_connections() {
    let cluster = Cluster::start_custom(support::Setup {
        settings: vec![
            "max_connections=4".into(),
            "superuser_reserved_connections=0".into(),
        ],
        ..support::Setup::default()
    });
    let db = cluster.create_database("full");
    let folder = migrations(1);
    // Three of the four slots taken; one frees itself after a second and a half. The
    // runner's first connection takes the last slot, so its lock connection meets 53300.
    let fillers: Vec<Child> = [30.0, 30.0, 1.5]
        .iter()
        .map(|seconds| {
            support::pg::client_command(&support::pg::PgBins::get().path("psql"))
                .args(["-X", "-q"])
                .args(cluster.socket_args(&db))
                .args(["-c", &format!("SELECT pg_sleep({seconds})")])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("psql")
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let outcome = Run::on(
        &cluster.url(&db),
        &folder,
        &["up", "--lock-mode", "transaction", "--wait-timeout", "20s"],
    )
    .run();
    for mut filler in fillers {
        let _ = filler.kill();
        let _ = filler.wait();
    }
    outcome.expect(0).stderr_has("applied 1 migration");
}
