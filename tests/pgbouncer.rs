//! Through a real PgBouncer: what a session advisory lock cannot do behind transaction
//! pooling, and `--lock-mode transaction`, which works there.

mod support;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use support::bouncer::Bouncer;
use support::run::{Folder, Run, finish};
use support::state::{advisory_locks, history, ok_events, tables as migrations};
use support::{Cluster, pg_bin};

#[test]
fn a_session_lock_behind_transaction_pooling_is_refused_and_leaves_nothing_behind() {
    let cluster = Cluster::start();
    let bouncer = Bouncer::start(&cluster, "transaction");
    let db = cluster.create_database("pooled_session");
    bouncer.warm(&db, 3);
    let folder = migrations(3);
    Run::on(&bouncer.url(&db), &folder, &["up"])
        .run()
        .expect(2)
        .stderr_has("transaction-pooling proxy")
        .stderr_has("--lock-mode transaction");
    assert_eq!(
        advisory_locks(&cluster, &db),
        0,
        "no lock is left on a pooled connection"
    );
    assert_eq!(
        cluster.psql(&db, "SELECT to_regclass('t1') IS NULL"),
        "t",
        "nothing was applied without a lock"
    );
}

#[test]
fn transaction_locks_keep_racing_runners_safe_behind_pgbouncer() {
    let cluster = Cluster::start();
    let bouncer = Bouncer::start(&cluster, "transaction");
    let db = cluster.create_database("pooled_race");
    bouncer.warm(&db, 4);
    let folder = migrations(10);
    let started = Instant::now();
    let runners: Vec<_> = (0..8)
        .map(|_| {
            Run::on(
                &bouncer.url(&db),
                &folder,
                &["up", "--lock-mode", "transaction"],
            )
            .spawn()
        })
        .collect();
    for runner in runners {
        finish(runner, started).expect(0);
    }
    // In the text order the queries use: 1, 10, 2, ...
    let mut revisions: Vec<String> = (1..=10).map(|i| i.to_string()).collect();
    revisions.sort();
    let each = |suffix: &str| {
        revisions
            .iter()
            .map(|r| format!("{r}:{suffix}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(history(&cluster, &db), each("applied"));
    assert_eq!(
        ok_events(&cluster, &db),
        each("1"),
        "each migration applied exactly once"
    );
    assert_eq!(advisory_locks(&cluster, &db), 0);
}

#[test]
fn a_killed_runner_frees_its_lock_once_its_last_batch_is_done() {
    let cluster = Cluster::start();
    let bouncer = Bouncer::start(&cluster, "transaction");
    let db = cluster.create_database("pooled_kill");
    bouncer.warm(&db, 3);
    cluster.psql(&db, "CREATE TABLE go_slow ()");
    let folder = Folder::with(&[
        ("1_a.sql", "CREATE TABLE a ();\n"),
        (
            "2_b.sql",
            "SELECT pg_sleep(CASE WHEN to_regclass('public.go_slow') IS NULL THEN 0 ELSE 3 END);\nCREATE TABLE b ();\n",
        ),
        ("3_c.sql", "CREATE TABLE c ();\n"),
    ]);
    let url = bouncer.url(&db);
    let mut first = Run::on(&url, &folder, &["up", "--lock-mode", "transaction"]).spawn();
    let sleeping = "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'";
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.psql(&db, sleeping) != "1" {
        assert!(
            Instant::now() < deadline,
            "migration 2 never started sleeping"
        );
        thread::sleep(Duration::from_millis(20));
    }
    first.kill().expect("SIGKILL the first runner");
    let status = first.wait().expect("reap it");
    assert_eq!(status.signal(), Some(9));
    cluster.psql(&db, "DROP TABLE go_slow");

    // Its lock is gone at once, but its batch sleeps on and will commit migration 2: the
    // next runner must wait for that batch, then find 2 applied.
    let outcome = Run::on(
        &url,
        &folder,
        &["up", "--lock-mode", "transaction", "--lock-timeout", "30s"],
    )
    .run();
    outcome
        .expect(0)
        .stderr_has("applied 1 migration")
        .stderr_has("waiting for the last statement of an interrupted run");
    assert_eq!(history(&cluster, &db), "1:applied 2:applied 3:applied");
    assert_eq!(ok_events(&cluster, &db), "1:1 2:1 3:1");
}

#[test]
fn session_pooling_keeps_session_locks_working() {
    let cluster = Cluster::start();
    let bouncer = Bouncer::start(&cluster, "session");
    let db = cluster.create_database("pooled_sessions");
    bouncer.warm(&db, 3);
    let folder = migrations(5);
    let started = Instant::now();
    let runners: Vec<_> = (0..4)
        .map(|_| Run::on(&bouncer.url(&db), &folder, &["up"]).spawn())
        .collect();
    for runner in runners {
        finish(runner, started).expect(0);
    }
    assert_eq!(
        history(&cluster, &db),
        "1:applied 2:applied 3:applied 4:applied 5:applied"
    );
    assert_eq!(ok_events(&cluster, &db), "1:1 2:1 3:1 4:1 5:1");
    // A session lock held through PgBouncer is released with the client's session.
    let holder = Command::new(pg_bin("psql"))
        .args(["-X", "-q", "-d", &bouncer.url(&db)])
        .args([
            "-c",
            "SELECT pg_advisory_lock(4242)",
            "-c",
            "SELECT pg_sleep(0.2)",
        ])
        .status()
        .expect("psql");
    assert!(holder.success());
    assert_eq!(advisory_locks(&cluster, &db), 0);
}

#[test]
fn lock_mode_none_warns_loudly() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("no_lock");
    Run::on(
        &cluster.url(&db),
        &migrations(2),
        &["up", "--lock-mode", "none"],
    )
    .run()
    .expect(0)
    .stderr_has("WARN")
    .stderr_has("no lock is taken");
}

/// transaction:false statements behind transaction pooling leave nothing on a pooled
/// server connection that could make the next run wait (a session-level lock would).
#[test]
fn transaction_false_migrations_behind_transaction_pooling_never_wedge_the_next_run() {
    let cluster = Cluster::shared();
    let bouncer = Bouncer::start(cluster, "transaction");
    let db = cluster.create_database("pooled_nontx");
    let folder = Folder::with(&[
        ("1_t.sql", "CREATE TABLE t (id int);\n"),
        (
            "2_idx.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY t_id ON t (id);\nSELECT 1;\n",
        ),
    ]);
    let url = bouncer.url(&db);
    let args = ["up", "--lock-mode", "transaction", "--lock-timeout", "10s"];
    Run::on(&url, &folder, &args).run().expect(0);
    folder.write(
        "3_more.sql",
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY t_id2 ON t (id);\n",
    );
    let second = Run::on(&url, &folder, &args).run();
    second.expect(0).stderr_has("applied 1 migration");
    assert!(
        second.elapsed < std::time::Duration::from_secs(8),
        "{:?}\n{}",
        second.elapsed,
        second.stderr
    );
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        "0",
        "no guard left behind"
    );
}

/// A tenant's search_path travels as a startup option, which PgBouncer refuses, or drops
/// when told to ignore it: then every tenant would be migrated in one schema. Both are
/// refused before any tenant is touched.
#[test]
fn tenant_schemas_behind_a_pooler_are_refused_before_any_is_touched() {
    let cluster = Cluster::start();
    let db = cluster.create_database("pooled_tenants");
    cluster.psql(&db, "CREATE SCHEMA t1; CREATE SCHEMA t2");
    let folder = migrations(2);
    let query = "SELECT unnest(ARRAY['t1', 't2'])";
    let refusing = Bouncer::start(&cluster, "session");
    Run::on(
        &refusing.url(&db),
        &folder,
        &["up", "--tenant-schemas-query", query],
    )
    .run()
    .expect(5)
    .stderr_has("unsupported startup parameter");
    let dropping = Bouncer::start_ignoring(&cluster, "session", "extra_float_digits,options");
    Run::on(
        &dropping.url(&db),
        &folder,
        &["up", "--tenant-schemas-query", query],
    )
    .run()
    .expect(2)
    .stderr_has("does not take search_path from the startup options")
    .stderr_has("Point DATABASE_URL at PostgreSQL itself");
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'schemagate%' OR tablename LIKE 't_'"
        ),
        "0",
        "no tenant touched"
    );
    // Straight to the server, both are migrated.
    Run::on(
        &cluster.url(&db),
        &folder,
        &["up", "--tenant-schemas-query", query],
    )
    .run()
    .expect(0);
}

/// A fleet of databases behind transaction pooling: each target takes its lock in a
/// transaction of a second connection, as a single run would; two fleets racing over the
/// same targets apply each migration once.
#[test]
fn a_fleet_behind_transaction_pooling_migrates_each_database_once() {
    let cluster = Cluster::start();
    let bouncer = Bouncer::start(&cluster, "transaction");
    let dbs: Vec<String> = (0..4)
        .map(|_| cluster.create_database("pooled_fleet"))
        .collect();
    let folder = migrations(3);
    let list: String = dbs
        .iter()
        .map(|db| format!("{}\n", bouncer.url(db)))
        .collect();
    let lists = Folder::with(&[("targets.txt", &list)]);
    let targets = lists.shown("targets.txt");
    let started = Instant::now();
    let fleets: Vec<_> = (0..2)
        .map(|_| {
            let mut run = Run::new(&[
                "up",
                "--targets",
                &targets,
                "--lock-mode",
                "transaction",
                "--parallel",
                "2",
            ]);
            run.env("SCHEMAGATE_MIGRATIONS", folder.path().to_str().unwrap());
            run.spawn()
        })
        .collect();
    for fleet in fleets {
        finish(fleet, started).expect(0);
    }
    for db in &dbs {
        assert_eq!(
            history(&cluster, db),
            "1:applied 2:applied 3:applied",
            "{db}"
        );
        assert_eq!(
            ok_events(&cluster, db),
            "1:1 2:1 3:1",
            "{db}: each applied once"
        );
        assert_eq!(advisory_locks(&cluster, db), 0);
    }
}
