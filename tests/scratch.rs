//! The scratch PostgreSQL for real: a cluster of its own (started, used, stopped and
//! removed on close, on Drop, by `cleanup_all`, after a SIGKILL, and by the next start
//! after its owner and watchdog are gone), a dev URL (the harness's cluster: the
//! databases made there are dropped), and the desired schema applied to it.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use schemagate::db::connection::{Connection, SslMode};
use schemagate::db::interrupt::Interrupt;
use schemagate::error::Error;
use schemagate::schema::desired::{self, SchemaFile};
use schemagate::schema::scratch::{self, Scratch};
use support::Cluster;
use support::pg;

/// The postmaster's pid, from the first line of `<dir>/data/postmaster.pid`.
fn postmaster(dir: &Path) -> u32 {
    let text = std::fs::read_to_string(dir.join("data/postmaster.pid"))
        .unwrap_or_else(|e| panic!("no postmaster.pid in {}: {e}", dir.display()));
    text.lines().next().unwrap().trim().parse().unwrap()
}

/// Polls until the dir is gone and the process is dead, or panics after `limit`.
fn assert_cleaned(dir: &Path, pid: u32, limit: Duration) {
    let deadline = Instant::now() + limit;
    while dir.exists() || pg::process_alive(pid) {
        assert!(
            Instant::now() < deadline,
            "after {limit:?}: dir {} exists: {}, postmaster {pid} alive: {}",
            dir.display(),
            dir.exists(),
            pg::process_alive(pid)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

async fn start_own() -> Scratch {
    match Scratch::start(None, None, &Interrupt::default()).await {
        Ok(scratch) => scratch,
        Err(e) => panic!("the scratch cluster did not start: {e}"),
    }
}

async fn one_value(scratch: &Scratch, db: &str, sql: &str) -> String {
    let session = scratch.open(db, &Interrupt::default()).await.expect("open");
    let rows = session.rows(sql).await.expect("query");
    session.close().await;
    rows[0][0].clone().unwrap_or_default()
}

async fn databases(scratch: &Scratch) -> Vec<String> {
    let session = scratch
        .open("postgres", &Interrupt::default())
        .await
        .expect("open");
    let rows = session
        .rows(
            "SELECT datname FROM pg_database WHERE datname LIKE 'schemagate_scratch_%' ORDER BY 1",
        )
        .await
        .expect("list");
    session.close().await;
    rows.into_iter().map(|r| r[0].clone().unwrap()).collect()
}

#[tokio::test]
async fn own_cluster_creates_copies_drops_and_is_gone_after_close() {
    let started = Instant::now();
    let scratch = start_own().await;
    eprintln!("own scratch cluster ready in {:?}", started.elapsed());
    let dir = scratch
        .dir()
        .expect("an own cluster has a dir")
        .to_path_buf();
    assert!(
        dir.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(scratch::DIR_PREFIX)
    );
    let pid = postmaster(&dir);
    assert!(pg::process_alive(pid));
    assert!(
        scratch.server_version() >= 9,
        "{}",
        scratch.server_version()
    );

    let empty = scratch.create(None).await.expect("create");
    let prefix = format!("schemagate_scratch_{}_", std::process::id());
    assert!(empty.starts_with(&prefix), "{empty}");
    let session = scratch
        .open(&empty, &Interrupt::default())
        .await
        .expect("open");
    session
        .execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
        .await
        .expect("write");
    session.close().await;

    let copy = scratch.create(Some(&empty)).await.expect("copy");
    assert_ne!(copy, empty);
    assert_eq!(
        one_value(&scratch, &copy, "SELECT count(*) FROM t").await,
        "2"
    );
    assert_eq!(databases(&scratch).await, {
        let mut both = vec![empty.clone(), copy.clone()];
        both.sort();
        both
    });
    // The connection names the socket in the cluster's dir, as the superuser.
    let described = scratch.connection(&copy).describe();
    assert!(
        described.starts_with("postgres@") && described.contains(&dir.display().to_string()),
        "{described}"
    );

    scratch.drop_database(&copy).await.expect("drop");
    assert_eq!(databases(&scratch).await, std::slice::from_ref(&empty));

    scratch.close().await;
    assert_cleaned(&dir, pid, Duration::from_secs(5));
}

#[tokio::test]
async fn a_template_in_use_is_a_clear_error() {
    let scratch = start_own().await;
    let template = scratch.create(None).await.expect("create");
    let holder = scratch
        .open(&template, &Interrupt::default())
        .await
        .expect("open");
    let error = scratch.create(Some(&template)).await.unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("other sessions are connected") && text.contains("close them first"),
        "{text}"
    );
    holder.close().await;
    scratch
        .create(Some(&template))
        .await
        .expect("copy once closed");
    // Dropping works with sessions on it (WITH (FORCE)).
    let _on_it = scratch
        .open(&template, &Interrupt::default())
        .await
        .expect("open");
    scratch.drop_database(&template).await.expect("forced drop");
    scratch.close().await;
}

#[tokio::test]
async fn drop_stops_and_removes_the_cluster() {
    let scratch = start_own().await;
    let dir = scratch.dir().unwrap().to_path_buf();
    let pid = postmaster(&dir);
    drop(scratch);
    // Drop is synchronous: gone when it returns.
    assert!(!dir.exists(), "{} still exists after Drop", dir.display());
    assert!(!pg::process_alive(pid), "postmaster {pid} alive after Drop");
}

/// The dead pid of a process that just ran.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().expect("true runs");
    let pid = child.id();
    child.wait().expect("true ends");
    pid
}

#[tokio::test]
async fn the_next_start_removes_the_dir_of_a_dead_owner_and_stops_its_postmaster() {
    let lost = start_own().await;
    let dir = lost.dir().unwrap().to_path_buf();
    let pid = postmaster(&dir);
    // As if its schemagate and watchdog had been SIGKILLed together: no cleanup ran,
    // and the owner recorded in the dir is gone.
    std::mem::forget(lost);
    let owner = std::fs::read_to_string(dir.join("owner")).unwrap();
    let namespace = owner.split_whitespace().nth(1).unwrap_or_default();
    std::fs::write(dir.join("owner"), format!("{} {namespace}\n", dead_pid())).unwrap();

    let next = start_own().await;
    assert!(!dir.exists(), "stale {} not removed", dir.display());
    assert!(!pg::process_alive(pid), "stale postmaster {pid} still runs");
    // A live owner's dir (the new one) is left alone by a further start.
    let third = start_own().await;
    assert!(next.dir().unwrap().exists());
    third.close().await;
    next.close().await;
}

/// Runs the ignored test `name` of this binary in a child process (for what acts on the
/// whole process: `cleanup_all`, a SIGKILL), returning it once it printed
/// `SCRATCH_DIR=` and `POSTMASTER=`, with those two.
fn child_with_scratch(name: &str) -> (std::process::Child, PathBuf, u32) {
    let log = std::env::temp_dir().join(format!(
        "schemagate-scratch-test-{}-{name}.log",
        std::process::id()
    ));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("the test binary runs");
    let stdout = child.stdout.take().unwrap();
    let mut dir = None;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        // libtest may have written `test NAME ... ` on the same line first.
        if let Some((_, d)) = line.split_once("SCRATCH_DIR=") {
            dir = Some(PathBuf::from(d));
        }
        if let Some((_, p)) = line.split_once("POSTMASTER=") {
            let pid = p.parse::<u32>().unwrap();
            let _ = std::fs::remove_file(&log);
            // The rest of its output is not needed; let it write freely.
            std::thread::spawn(move || lines.for_each(drop));
            return (child, dir.expect("SCRATCH_DIR before POSTMASTER"), pid);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!(
        "the child {name} never reported its scratch cluster:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

async fn report_scratch() -> Scratch {
    let scratch = start_own().await;
    let dir = scratch.dir().unwrap();
    println!("SCRATCH_DIR={}", dir.display());
    println!("POSTMASTER={}", postmaster(dir));
    scratch
}

/// Run by `a_sigkilled_owner_is_cleaned_up_by_its_watchdog` in a child process.
#[tokio::test]
#[ignore = "a child process of a_sigkilled_owner_is_cleaned_up_by_its_watchdog, not a test of its own"]
async fn child_holds_a_scratch_until_killed() {
    let scratch = report_scratch().await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    drop(scratch);
}

#[test]
fn a_sigkilled_owner_is_cleaned_up_by_its_watchdog() {
    let (mut child, dir, pid) = child_with_scratch("child_holds_a_scratch_until_killed");
    assert!(dir.exists() && pg::process_alive(pid));
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    assert_cleaned(&dir, pid, Duration::from_secs(10));
}

/// Run by `cleanup_all_stops_every_cluster_and_a_drop_after_it_is_harmless`.
#[tokio::test]
#[ignore = "a child process of cleanup_all_stops_every_cluster_and_a_drop_after_it_is_harmless"]
async fn child_cleans_up_all() {
    let scratch = report_scratch().await;
    let dir = scratch.dir().unwrap().to_path_buf();
    let pid = postmaster(&dir);
    // What main does before std::process::exit.
    scratch::cleanup_all();
    assert!(!dir.exists(), "cleanup_all left {}", dir.display());
    assert!(!pg::process_alive(pid), "cleanup_all left postmaster {pid}");
    drop(scratch);
}

#[test]
fn cleanup_all_stops_every_cluster_and_a_drop_after_it_is_harmless() {
    let (mut child, dir, pid) = child_with_scratch("child_cleans_up_all");
    let status = child.wait().unwrap();
    assert!(status.success(), "the child failed: {status}");
    assert!(!dir.exists() && !pg::process_alive(pid));
}

/// The harness's shared cluster as a dev server, its maintenance database as given.
fn dev_connection(user: &str) -> Connection {
    let cluster = Cluster::shared();
    let url = format!("postgres://{user}@127.0.0.1:{}/postgres", cluster.port());
    Connection {
        config: url.parse().expect("url"),
        ssl_mode: SslMode::Disable,
        ssl_root_cert: None,
    }
}

fn dev_databases(prefix: &str) -> Vec<String> {
    let listed = Cluster::shared().psql(
        "postgres",
        &format!("SELECT datname FROM pg_database WHERE datname LIKE '{prefix}%' ORDER BY 1"),
    );
    listed.lines().map(str::to_string).collect()
}

#[tokio::test]
async fn dev_url_databases_are_dropped_at_close() {
    let dev = dev_connection("postgres");
    let scratch = Scratch::start(Some(&dev), None, &Interrupt::default())
        .await
        .expect("dev scratch");
    assert!(scratch.dir().is_none());
    assert!(scratch.server_version() >= 9);
    let first = scratch.create(None).await.expect("create");
    let session = scratch
        .open(&first, &Interrupt::default())
        .await
        .expect("open");
    session
        .execute("CREATE TABLE dev_t (a int); INSERT INTO dev_t VALUES (7)")
        .await
        .unwrap();
    session.close().await;
    let second = scratch.create(Some(&first)).await.expect("copy");
    assert_eq!(
        one_value(&scratch, &second, "SELECT a FROM dev_t").await,
        "7"
    );
    let third = scratch.create(None).await.expect("create");
    scratch.drop_database(&third).await.expect("drop");
    let mine: Vec<String> = [&first, &second].iter().map(|s| s.to_string()).collect();
    for name in &mine {
        assert!(dev_databases(name).contains(name), "{name} missing");
    }
    assert!(dev_databases(&third).is_empty());
    // A session left open on one of them does not stop close (WITH (FORCE)).
    let _left_open = scratch.open(&second, &Interrupt::default()).await.unwrap();
    scratch.close().await;
    for name in &mine {
        assert!(dev_databases(name).is_empty(), "{name} left behind");
    }
}

#[tokio::test]
async fn dev_url_databases_are_dropped_by_drop() {
    let dev = dev_connection("postgres");
    let scratch = Scratch::start(Some(&dev), None, &Interrupt::default())
        .await
        .expect("dev scratch");
    let name = scratch.create(None).await.expect("create");
    assert_eq!(dev_databases(&name), std::slice::from_ref(&name));
    drop(scratch);
    assert!(
        dev_databases(&name).is_empty(),
        "{name} left behind by Drop"
    );
}

#[tokio::test]
async fn a_dev_role_that_cannot_create_databases_is_told_the_fix() {
    let role = format!("scratch_nocreatedb_{}", std::process::id());
    Cluster::shared().psql("postgres", &format!("CREATE ROLE {role} LOGIN"));
    let mut dev = dev_connection(&role);
    dev.config.password("not-shown-anywhere");
    let error = match Scratch::start(Some(&dev), None, &Interrupt::default()).await {
        Ok(_) => panic!("a role without CREATEDB was accepted"),
        Err(e) => e,
    };
    let text = error.to_string();
    assert!(matches!(error, Error::Usage(_)), "{error:?}");
    assert!(
        text.contains(&format!("ALTER ROLE {role} CREATEDB")),
        "{text}"
    );
    assert!(
        text.contains("--dev-url") && text.contains("SCHEMAGATE_DEV_URL"),
        "{text}"
    );
    assert!(text.contains(&format!("{role}@127.0.0.1:")), "{text}");
    assert!(!text.contains("not-shown-anywhere"), "{text}");
}

#[tokio::test]
async fn a_pg_bin_without_the_binaries_names_both_ways_out() {
    let error = match Scratch::start(
        None,
        Some(Path::new("/nonexistent/bin")),
        &Interrupt::default(),
    )
    .await
    {
        Ok(_) => panic!("started without binaries"),
        Err(e) => e,
    };
    let text = error.to_string();
    assert!(
        text.contains("--pg-bin") && text.contains("--dev-url"),
        "{text}"
    );
    assert_eq!(error.exit_code(), 2);
}

#[tokio::test]
async fn the_desired_schema_applies_file_by_file_and_failures_name_file_and_line() {
    let scratch = start_own().await;
    let files = vec![
        SchemaFile {
            path: PathBuf::from("schema/01_types.sql"),
            // pg_dump's search_path reset must not reach the next file.
            text: "SELECT pg_catalog.set_config('search_path', '', false);\n\
                   CREATE TYPE public.mood AS ENUM ('ok', 'sad');\n"
                .into(),
        },
        SchemaFile {
            path: PathBuf::from("schema/02_tables.sql"),
            text: "CREATE TABLE people (\n  id int PRIMARY KEY,\n  m mood\n);\n\
                   CREATE INDEX CONCURRENTLY people_m ON people (m);\n"
                .into(),
        },
    ];
    let db = scratch.create(None).await.unwrap();
    let session = scratch.open(&db, &Interrupt::default()).await.unwrap();
    desired::apply_files(&session, &files)
        .await
        .expect("applies");
    let count = session
        .rows("SELECT count(*) FROM pg_indexes WHERE indexname = 'people_m'")
        .await
        .unwrap();
    assert_eq!(count[0][0].as_deref(), Some("1"));
    session.close().await;

    let db = scratch.create(None).await.unwrap();
    let session = scratch.open(&db, &Interrupt::default()).await.unwrap();
    let broken = vec![SchemaFile {
        path: PathBuf::from("schema.sql"),
        text: "CREATE TABLE a (id int);\n\nCREATE TABLE b (\n  id int,\n  x nosuchtype\n);\n"
            .into(),
    }];
    let error = desired::apply_files(&session, &broken).await.unwrap_err();
    let text = error.to_string();
    assert_eq!(error.exit_code(), 3, "{text}");
    assert!(
        text.contains("the schema file schema.sql:5 fails on a scratch database: type \"nosuchtype\" does not exist"),
        "{text}"
    );

    let copy = vec![SchemaFile {
        path: PathBuf::from("schema.sql"),
        text: "CREATE TABLE c (id int);\nCOPY c (id) FROM stdin;\n1\n\\.\n".into(),
    }];
    let text = desired::apply_files(&session, &copy)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("schema.sql:2") && text.contains("COPY"),
        "{text}"
    );
    session.close().await;
    scratch.close().await;
}

/// Not part of the suite (five cluster starts); run it for the figure:
/// `cargo test --test scratch start_time -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement: run with --ignored --nocapture for the median start time"]
async fn start_time() {
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let scratch = start_own().await;
        let ready = started.elapsed();
        let db = scratch.create(None).await.unwrap();
        let created = started.elapsed();
        scratch.close().await;
        let closed = started.elapsed();
        eprintln!("start {ready:?}, + create database {created:?}, + close {closed:?}");
        times.push(ready);
        drop(db);
    }
    times.sort();
    eprintln!("median start: {:?}", times[2]);
}
