//! `--ddl-lock-timeout`: a migration blocked on a table lock gives way to the table's
//! readers, is retried with backoff, and stops at `--ddl-retry-timeout` with exit 7 naming
//! its blocker. Against a real PostgreSQL: a session idle in transaction holds the lock,
//! another reads the table the whole time, and its worst latency is measured.

mod support;

use std::io::Write;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use support::Cluster;
use support::pg::{self, PgBins};
use support::run::{Folder, Outcome, Run, finish};
use support::watched::Watched;

/// A psql session that read `table` in an open transaction and sits idle in it, holding
/// its ACCESS SHARE lock until `commit` (or drop, which ends its backend).
struct Holder {
    psql: Child,
    stdin: Option<ChildStdin>,
    cluster: &'static Cluster,
    db: String,
    app: String,
    pid: String,
}

impl Holder {
    fn take(cluster: &'static Cluster, db: &str, table: &str) -> Holder {
        let app = format!("ddl-holder-{db}");
        let mut psql = pg::client_command(&PgBins::get().path("psql"))
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(cluster.socket_args(db))
            .env("PGAPPNAME", &app)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql starts");
        let mut stdin = psql.stdin.take().expect("piped stdin");
        writeln!(stdin, "BEGIN;\nSELECT count(*) FROM {table};").expect("write to psql");
        stdin.flush().expect("flush psql");
        let find = format!(
            "SELECT pid FROM pg_stat_activity WHERE application_name = '{app}' \
             AND state = 'idle in transaction'"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid = loop {
            let pid = cluster.psql(db, &find);
            if !pid.is_empty() {
                break pid;
            }
            assert!(
                Instant::now() < deadline,
                "the holder never sat idle in transaction"
            );
            thread::sleep(Duration::from_millis(20));
        };
        Holder {
            psql,
            stdin: Some(stdin),
            cluster,
            db: db.to_string(),
            app,
            pid,
        }
    }

    /// Commits after `delay`, from a thread.
    fn commit_after(mut self, delay: Duration) -> JoinHandle<()> {
        thread::spawn(move || {
            thread::sleep(delay);
            let mut stdin = self.stdin.take().expect("stdin still open");
            writeln!(stdin, "COMMIT;").expect("write COMMIT");
            drop(stdin);
            let _ = self.psql.wait();
        })
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.cluster.psql_result(
            &self.db,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = '{}' AND datname = current_database()",
                self.app
            ),
        );
        let _ = self.psql.kill();
        let _ = self.psql.wait();
    }
}

/// Reads `table` over and over on its own connection until stopped, keeping the worst
/// latency of one read.
struct Reader {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Duration, usize)>,
}

impl Reader {
    fn start(url: &str, table: &str) -> Reader {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let (url, sql) = (url.to_string(), format!("SELECT count(*) FROM {table}"));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("the reader connects");
                tokio::spawn(connection);
                client.simple_query(&sql).await.expect("first read");
                ready_tx.send(()).expect("ready");
                let (mut worst, mut reads) = (Duration::ZERO, 0);
                while !stopped.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    client.simple_query(&sql).await.expect("a read");
                    worst = worst.max(started.elapsed());
                    reads += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                (worst, reads)
            })
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the reader started");
        Reader { stop, thread }
    }

    /// The worst latency of one read, and how many reads there were.
    fn stop(self) -> (Duration, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the reader ran")
    }
}

/// A database with table `t` (one row) and table `log`.
fn database(prefix: &str) -> (&'static Cluster, String, String) {
    let cluster = Cluster::shared();
    let db = cluster.create_database(prefix);
    cluster.psql(
        &db,
        "CREATE TABLE t (id int); INSERT INTO t VALUES (1); CREATE TABLE log (what text);",
    );
    let url = cluster.url(&db);
    (cluster, db, url)
}

fn alter_t() -> Folder {
    Folder::with(&[(
        "1_alter_t.sql",
        "-- migrate:up\nALTER TABLE t ADD COLUMN c int;\n-- migrate:down\nALTER TABLE t DROP COLUMN c;\n",
    )])
}

fn has_column_c(cluster: &Cluster, db: &str) -> bool {
    cluster.psql(
        db,
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 't' AND column_name = 'c'",
    ) == "1"
}

/// The `event` lines of a JSON log that are lock retries.
fn retries(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains("\"event\":\"migration.lock_retry\""))
        .count()
}

/// Runs schemagate with `args` on `url` while `holder` keeps its table locked, and has it
/// commit after `hold`.
fn run_while_held(
    holder: Holder,
    url: &str,
    folder: &Folder,
    args: &[&str],
    hold: Duration,
) -> Outcome {
    let started = Instant::now();
    let child = Run::on(url, folder, args).spawn();
    let committed = holder.commit_after(hold);
    let outcome = finish(child, started);
    committed.join().expect("the holder committed");
    outcome
}

#[test]
fn a_blocked_migration_gives_way_to_readers_and_applies_once_the_holder_commits() {
    let (cluster, db, url) = database("ddl_gives_way");
    let folder = alter_t();
    let holder = Holder::take(cluster, &db, "t");
    let holder_pid = holder.pid.clone();
    let reader = Reader::start(&url, "t");
    let outcome = run_while_held(
        holder,
        &url,
        &folder,
        &["up", "--ddl-lock-timeout", "1s", "--log-format", "json"],
        Duration::from_secs(4),
    );
    let (worst, reads) = reader.stop();
    println!(
        "worst read latency {worst:?} over {reads} reads while up retried (--ddl-lock-timeout 1s)"
    );
    outcome.expect(0);
    assert!(
        worst < Duration::from_secs(3),
        "a reader waited {worst:?}: longer than the lock timeout + 2 s\n{}",
        outcome.stderr
    );
    assert!(
        outcome.elapsed >= Duration::from_secs(4),
        "{:?}",
        outcome.elapsed
    );
    let tries = retries(&outcome.stderr);
    assert!(tries >= 2, "expected retries:\n{}", outcome.stderr);
    assert!(
        outcome.stderr.contains(&format!("pid {holder_pid} ")),
        "the retries name the holder {holder_pid}:\n{}",
        outcome.stderr
    );
    assert!(has_column_c(cluster, &db));
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT revision || ':' || status FROM schemagate_history"
        ),
        "1:applied"
    );
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT count(*) FROM schemagate_events WHERE revision = '1' AND outcome = 'ok'"
        ),
        "1",
        "committed once"
    );
    assert_eq!(
        outcome
            .stderr
            .matches("\"event\":\"migration.applied\"")
            .count(),
        1
    );
}

#[test]
fn a_holder_that_never_leaves_ends_in_exit_7_naming_it_with_nothing_applied() {
    let (cluster, db, url) = database("ddl_budget");
    let folder = alter_t();
    let holder = Holder::take(cluster, &db, "t");
    let outcome = Run::on(
        &url,
        &folder,
        &[
            "up",
            "--ddl-lock-timeout",
            "1s",
            "--ddl-retry-timeout",
            "3s",
        ],
    )
    .run();
    outcome
        .expect(7)
        .stderr_has(&format!("blocked by pid {} ", holder.pid))
        .stderr_has("nothing of it was applied")
        .stderr_has(&format!("pg_terminate_backend({})", holder.pid))
        .stderr_has("SQLSTATE 55P03");
    assert!(
        outcome.elapsed >= Duration::from_secs(3) && outcome.elapsed < Duration::from_secs(8),
        "{:?}",
        outcome.elapsed
    );
    assert!(!has_column_c(cluster, &db));
    assert_eq!(
        cluster.psql(&db, "SELECT count(*) FROM schemagate_history"),
        "0",
        "no history row"
    );
    drop(holder);
}

#[test]
fn a_transaction_false_migration_retries_only_the_blocked_statement() {
    let (cluster, db, url) = database("ddl_notx");
    let folder = Folder::with(&[(
        "1_alter_t.sql",
        "-- migrate:up transaction:false\n\
         INSERT INTO log VALUES ('before');\n\
         ALTER TABLE t ADD COLUMN c int;\n\
         INSERT INTO log VALUES ('after');\n",
    )]);
    let holder = Holder::take(cluster, &db, "t");
    let outcome = run_while_held(
        holder,
        &url,
        &folder,
        &["up", "--ddl-lock-timeout", "500ms", "--log-format", "json"],
        Duration::from_secs(3),
    );
    outcome.expect(0);
    assert!(
        retries(&outcome.stderr) >= 2,
        "expected retries:\n{}",
        outcome.stderr
    );
    assert!(has_column_c(cluster, &db));
    assert_eq!(
        cluster.psql(&db, "SELECT string_agg(what, ',' ORDER BY what) FROM log"),
        "after,before",
        "the statement before the blocked one ran once"
    );
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT revision || ':' || status FROM schemagate_history"
        ),
        "1:applied"
    );
}

#[test]
fn zero_turns_it_off_and_the_migration_waits_blocking_readers() {
    let (cluster, db, url) = database("ddl_off");
    let folder = alter_t();
    let holder = Holder::take(cluster, &db, "t");
    let reader = Reader::start(&url, "t");
    let outcome = run_while_held(
        holder,
        &url,
        &folder,
        &["up", "--ddl-lock-timeout", "0", "--log-format", "json"],
        Duration::from_secs(2),
    );
    let (worst, reads) = reader.stop();
    println!("worst read latency {worst:?} over {reads} reads with --ddl-lock-timeout 0");
    outcome.expect(0);
    assert_eq!(retries(&outcome.stderr), 0, "{}", outcome.stderr);
    assert!(
        worst >= Duration::from_millis(1500),
        "without a lock timeout the waiting ALTER queues the reader: worst {worst:?}"
    );
    assert!(has_column_c(cluster, &db));
}

#[test]
fn sigterm_during_the_backoff_ends_the_run_at_once() {
    let (cluster, db, url) = database("ddl_sigterm");
    let folder = alter_t();
    let _holder = Holder::take(cluster, &db, "t");
    let run = Watched::spawn(&mut Run::on(
        &url,
        &folder,
        &["up", "--ddl-lock-timeout", "1s", "--log-format", "json"],
    ));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !run.logged("migration.lock_retry") {
        assert!(Instant::now() < deadline, "no retry was logged");
        thread::sleep(Duration::from_millis(10));
    }
    let signalled = run.signal("TERM");
    let outcome = run.finish();
    let after = signalled.elapsed();
    println!("exit {} {after:?} after SIGTERM", outcome.code);
    outcome.expect(143);
    assert!(after < Duration::from_secs(2), "{after:?}");
    assert!(!has_column_c(cluster, &db));
    assert_eq!(
        cluster.psql(&db, "SELECT count(*) FROM schemagate_history"),
        "0"
    );
}

#[test]
fn the_sql_script_sets_the_lock_timeout_and_says_psql_cannot_retry() {
    let (_cluster, _db, url) = database("ddl_sql");
    let folder = Folder::with(&[
        (
            "1_alter_t.sql",
            "-- migrate:up\nALTER TABLE t ADD COLUMN c int;\n",
        ),
        (
            "2_index.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (id);\n",
        ),
    ]);
    let script = Run::on(&url, &folder, &["up", "--sql"]).run();
    script.expect(0).stdout_has("psql cannot");
    assert_eq!(
        script
            .stdout
            .matches("SET lock_timeout = '5000ms';\n")
            .count(),
        2,
        "{}",
        script.stdout
    );
    assert!(
        script
            .stdout
            .contains("SET lock_timeout = '5000ms';\nALTER TABLE t ADD COLUMN c int;"),
        "{}",
        script.stdout
    );
    let off = Run::on(&url, &folder, &["up", "--sql", "--ddl-lock-timeout", "0"]).run();
    off.expect(0);
    assert!(!off.stdout.contains("lock_timeout"), "{}", off.stdout);
}

#[test]
fn each_migration_sets_it_again_after_the_reset_of_the_one_before() {
    let (cluster, db, url) = database("ddl_second");
    let folder = Folder::with(&[
        ("1_u.sql", "-- migrate:up\nCREATE TABLE u (id int);\n"),
        (
            "2_alter_t.sql",
            "-- migrate:up\nALTER TABLE t ADD COLUMN c int;\n",
        ),
    ]);
    let holder = Holder::take(cluster, &db, "t");
    let outcome = run_while_held(
        holder,
        &url,
        &folder,
        &["up", "--ddl-lock-timeout", "500ms", "--log-format", "json"],
        Duration::from_secs(2),
    );
    outcome.expect(0);
    assert!(
        retries(&outcome.stderr) >= 2 && outcome.stderr.contains("migration 2 waited longer"),
        "the second migration ran under the lock timeout too:\n{}",
        outcome.stderr
    );
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT string_agg(revision || ':' || status, ' ' ORDER BY revision) FROM schemagate_history"
        ),
        "1:applied 2:applied"
    );
}

#[test]
fn a_migration_that_sets_its_own_lock_timeout_keeps_it() {
    let (cluster, db, url) = database("ddl_own");
    let folder = Folder::with(&[(
        "1_alter_t.sql",
        "-- migrate:up\nSET lock_timeout = 0;\nALTER TABLE t ADD COLUMN c int;\n",
    )]);
    let holder = Holder::take(cluster, &db, "t");
    let outcome = run_while_held(
        holder,
        &url,
        &folder,
        &["up", "--ddl-lock-timeout", "500ms", "--log-format", "json"],
        Duration::from_secs(2),
    );
    outcome.expect(0);
    assert_eq!(retries(&outcome.stderr), 0, "{}", outcome.stderr);
    assert!(
        outcome.elapsed >= Duration::from_secs(2),
        "it waited behind the holder: {:?}",
        outcome.elapsed
    );
    assert!(has_column_c(cluster, &db));
    // The RESET ALL after it: schemagate's session is back to the server's default.
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT count(*) FROM schemagate_events WHERE outcome = 'ok'"
        ),
        "1"
    );
}

#[test]
fn behind_a_pooler_a_transaction_false_section_gets_no_session_set() {
    let (cluster, db, url) = database("ddl_pooled");
    let folder = Folder::with(&[(
        "1_alter_t.sql",
        "-- migrate:up transaction:false\nALTER TABLE t ADD COLUMN c int;\n",
    )]);
    let holder = Holder::take(cluster, &db, "t");
    let outcome = run_while_held(
        holder,
        &url,
        &folder,
        &[
            "up",
            "--lock-mode",
            "transaction",
            "--ddl-lock-timeout",
            "500ms",
            "--log-format",
            "json",
        ],
        Duration::from_millis(1500),
    );
    outcome.expect(0);
    assert_eq!(retries(&outcome.stderr), 0, "{}", outcome.stderr);
    assert!(has_column_c(cluster, &db));
}
