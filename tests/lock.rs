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
