//! Throwaway PostgreSQL clusters for schemagate's integration tests.
//!
//! ```ignore
//! mod support;
//! use support::Cluster;
//!
//! #[test]
//! fn applies_migrations() {
//!     let cluster = Cluster::shared();
//!     let db = cluster.create_database("applies");
//!     // run schemagate against cluster.url(&db) ...
//!     assert_eq!(cluster.psql(&db, "SELECT count(*) FROM t"), "1");
//! }
//! ```
//!
//! Needs the PostgreSQL server binaries (`apt-get install postgresql`) and
//! panics without them. Linux only: it reads /proc instead of using libc.
#![allow(dead_code)]

pub mod bouncer;
pub mod pg;
pub mod project;
pub mod run;
pub mod sql;
pub mod state;
pub mod template;
pub mod tls;
pub mod watchdog;
pub mod watched;

use pg::PgBins;
use std::fs;
use std::io::{ErrorKind, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{self, Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

const HOST: &str = "127.0.0.1";
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Attempts when a just-freed port was grabbed by someone else meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// Server settings for tests: durability off (nothing here must survive a
/// crash of the machine), small memory, TCP on loopback only.
const SETTINGS: [&str; 6] = [
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "shared_buffers=16MB",
    "max_connections=100",
    "listen_addresses=127.0.0.1",
];

/// Used by `start_with_password_auth`: passwords over TCP, while the harness
/// itself stays superuser through the unix socket.
const PASSWORD_HBA: &str = "\
local all postgres trust
host  all all 127.0.0.1/32 scram-sha-256
";

/// How a cluster of your own differs from the default one (`Cluster::start_custom`).
#[derive(Clone, Default)]
pub struct Setup {
    /// Replaces pg_hba.conf.
    pub hba: Option<String>,
    /// Files (name, content) written into the data directory, readable by
    /// the server only: certificates and keys.
    pub files: Vec<(String, Vec<u8>)>,
    /// More `name=value` settings, after SETTINGS.
    pub settings: Vec<String>,
}

/// A PostgreSQL server with its own data directory, port and socket
/// directory. Dropping it kills the server and removes the directory.
pub struct Cluster {
    server: Server,
    /// Alive until we have cleaned up ourselves; see `watchdog`.
    watchdog: Mutex<Option<Child>>,
    /// The background start of `start_later`, if any.
    pending: Mutex<Option<JoinHandle<Result<(), String>>>>,
    /// Set when dropped; the delayed start checks it under the same lock.
    dropped: Arc<Mutex<bool>>,
}

impl Cluster {
    /// One cluster per test process, started on first use and shared by all
    /// its tests; give each test its own database (`create_database`).
    /// Never stop or restart it: other tests are using it.
    pub fn shared() -> &'static Cluster {
        static SHARED: OnceLock<Cluster> = OnceLock::new();
        SHARED.get_or_init(Cluster::start)
    }

    /// A new cluster of your own, running and accepting connections.
    pub fn start() -> Cluster {
        Cluster::start_custom(Setup::default())
    }

    /// Like `start`, but TCP connections need a password (scram-sha-256);
    /// only the harness's psql/pg_dump (unix socket) bypass it. `url()` as
    /// postgres will therefore fail over TCP: use `create_role` + `url_for`.
    pub fn start_with_password_auth() -> Cluster {
        Cluster::start_custom(Setup {
            hba: Some(PASSWORD_HBA.to_string()),
            ..Setup::default()
        })
    }

    /// Allocates port and data directory now and starts the server in the
    /// background after `delay`, so a test can launch a client first.
    /// `wait_started` waits for the server to accept connections.
    pub fn start_later(delay: Duration) -> Cluster {
        let cluster = Cluster::prepare(Setup::default());
        let server = cluster.server.clone();
        let dropped = Arc::clone(&cluster.dropped);
        let handle = thread::spawn(move || {
            thread::sleep(delay);
            let dropped = lock(&dropped);
            if *dropped {
                return Ok(());
            }
            server.launch().map_err(|err| {
                eprintln!("{}", err.message);
                err.message
            })
        });
        *lock(&cluster.pending) = Some(handle);
        cluster
    }

    /// A new cluster of your own with `setup` applied, running.
    pub fn start_custom(setup: Setup) -> Cluster {
        let mut cluster = Cluster::prepare(setup);
        for attempt in 1..=PORT_ATTEMPTS {
            match cluster.server.launch() {
                Ok(()) => return cluster,
                Err(err) if err.port_in_use && attempt < PORT_ATTEMPTS => {
                    cluster.server.port = free_port();
                }
                // `cluster` is dropped while unwinding, which cleans up.
                Err(err) => panic!("{}", err.message),
            }
        }
        unreachable!()
    }

    /// Copies the template into a fresh directory; does not start the server.
    fn prepare(setup: Setup) -> Cluster {
        let template = template::template_dir();
        let root = unique_dir();
        let server = Server {
            root: root.clone(),
            port: free_port(),
            settings: setup.settings,
        };
        // Watchdog first: from here on, nothing can leak the directory.
        let watchdog = watchdog::spawn(&root, &server.data_dir());
        let cluster = Cluster {
            server,
            watchdog: Mutex::new(Some(watchdog)),
            pending: Mutex::new(None),
            dropped: Arc::new(Mutex::new(false)),
        };
        let mut cp = process::Command::new("cp");
        cp.arg("-a").arg(template).arg(cluster.data_dir());
        pg::run_ok(&mut cp);
        fs::create_dir(cluster.socket_dir()).expect("create socket dir");
        if let Some(hba) = &setup.hba {
            fs::write(cluster.data_dir().join("pg_hba.conf"), hba).expect("write pg_hba.conf");
        }
        for (name, content) in &setup.files {
            let path = cluster.data_dir().join(name);
            fs::write(&path, content).unwrap_or_else(|err| panic!("write {name}: {err}"));
            // The server refuses a private key that others can read.
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .unwrap_or_else(|err| panic!("chmod {name}: {err}"));
        }
        pg::chown_to_postgres(&root);
        cluster
    }

    /// Waits for the background start of `start_later`; panics if it failed.
    pub fn wait_started(&self) {
        if let Some(handle) = lock(&self.pending).take() {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(message)) => panic!("delayed start failed: {message}"),
                Err(_) => panic!("delayed start panicked"),
            }
        }
    }

    pub fn host(&self) -> &'static str {
        HOST
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB`, as the superuser over TCP.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@{HOST}:{}/{db}", self.port())
    }

    /// A URL for `user` with `password` (percent-encoded) over TCP.
    pub fn url_for(&self, user: &str, password: &str, db: &str) -> String {
        let (user, password) = (percent_encode(user), percent_encode(password));
        format!("postgres://{user}:{password}@{HOST}:{}/{db}", self.port())
    }

    pub fn data_dir(&self) -> PathBuf {
        self.server.data_dir()
    }

    pub fn socket_dir(&self) -> PathBuf {
        self.server.socket_dir()
    }

    /// The postmaster's pid while the server runs (first line of postmaster.pid).
    pub fn pid(&self) -> Option<u32> {
        self.server.pid().filter(|&pid| pg::process_alive(pid))
    }

    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// A new, empty database named `<prefix>_<counter>_<pid>`: unique across
    /// the tests of this process and the processes sharing a cluster.
    pub fn create_database(&self, prefix: &str) -> String {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}_{n}_{}", process::id());
        // Longer names are silently truncated by the server.
        assert!(name.len() <= 63, "database name too long: {name}");
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {}", quote_ident(&name)),
        );
        name
    }

    /// An empty database named `name`, dropped first (and its sessions ended) if it exists.
    pub fn recreate_database(&self, name: &str) {
        self.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name)),
        );
        self.psql(
            "postgres",
            &format!("CREATE DATABASE {}", quote_ident(name)),
        );
    }

    /// A role that can log in with `password`. Roles are cluster-wide, so
    /// parallel tests on the shared cluster need distinct names.
    pub fn create_role(&self, name: &str, password: &str) {
        let sql = format!(
            "CREATE ROLE {} LOGIN PASSWORD {}",
            quote_ident(name),
            quote_literal(password)
        );
        self.psql("postgres", &sql);
    }

    /// Runs `sql` as a script in `db` as the superuser; returns the rows
    /// (unaligned, `|`-separated, no headers) without the final newline.
    /// Panics with psql's error output on failure.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.psql_result(db, sql)
            .unwrap_or_else(|err| panic!("psql on {db} failed: {err}\nSQL: {sql}"))
    }

    /// Like `psql`, but returns psql's error output for expected failures.
    /// Stops at the first failing statement.
    pub fn psql_result(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut cmd = pg::client_command(&PgBins::get().path("psql"));
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(self.socket_args(db))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn psql");
        // Feed stdin from another thread: psql may fill its stdout pipe
        // before it has read all of a long script.
        let mut stdin = child.stdin.take().unwrap();
        let script = sql.to_owned();
        let writer = thread::spawn(move || stdin.write_all(script.as_bytes()));
        let out = child.wait_with_output().expect("wait for psql");
        let _ = writer.join(); // psql may stop reading early on an error
        if out.status.success() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            Ok(stdout.strip_suffix('\n').unwrap_or(&stdout).to_string())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim_end().to_string())
        }
    }

    /// The schema of `db` as SQL, comparable between runs: pg_dump's random
    /// `\restrict` / `\unrestrict` lines are removed.
    pub fn pg_dump_schema(&self, db: &str) -> String {
        let mut cmd = pg::client_command(&PgBins::get().path("pg_dump"));
        cmd.args(["--schema-only", "--no-owner"])
            .args(self.socket_args(db));
        let out = pg::run_ok(&mut cmd);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|line| !line.starts_with("\\restrict") && !line.starts_with("\\unrestrict"))
            .map(|line| format!("{line}\n"))
            .collect()
    }

    /// `pg_dump` of `db` with `args`, as written (with its `\restrict` lines).
    pub fn pg_dump(&self, db: &str, args: &[&str]) -> String {
        let mut cmd = pg::client_command(&PgBins::get().path("pg_dump"));
        cmd.args(args).args(self.socket_args(db));
        let out = pg::run_ok(&mut cmd);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Fast shutdown: disconnects clients, then checkpoints.
    pub fn stop(&self) {
        self.server.shutdown("INT");
    }

    /// Starts a stopped (or killed) server again: same port, same data.
    pub fn start_again(&self) {
        if let Err(err) = self.server.launch() {
            panic!("{}", err.message);
        }
    }

    pub fn restart(&self) {
        self.stop();
        self.start_again();
    }

    /// SIGKILLs the postmaster, as a crash would, and waits until it and its
    /// backends are gone. `start_again` then runs crash recovery.
    pub fn kill(&self) {
        let pid = self.pid().expect("kill(): the server is not running");
        let children = pg::children_of(pid);
        pg::signal(pid, "KILL");
        // Backends exit by themselves once they notice; until then they keep
        // the old shared memory attached and a new postmaster refuses to start.
        let mut all = children;
        all.push(pid);
        assert!(
            pg::wait_gone(&all, STOP_TIMEOUT),
            "postgres survived SIGKILL"
        );
        // The dead postmaster leaves its lock files. Postgres ignores them if
        // their pid is gone, but an unreaped zombie (PID 1 here reaps lazily)
        // still answers kill(pid, 0) and blocks the next start.
        if Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_file(self.data_dir().join("postmaster.pid"));
            let lock = format!(".s.PGSQL.{}.lock", self.port());
            let _ = fs::remove_file(self.socket_dir().join(lock));
        }
    }

    /// The last `n` lines of the server log (all starts of this cluster).
    pub fn log_tail(&self, n: usize) -> String {
        self.server.log_tail(n)
    }

    pub fn socket_args(&self, db: &str) -> Vec<String> {
        let socket_dir = self.socket_dir().to_string_lossy().into_owned();
        let port = self.port().to_string();
        ["-h", &socket_dir, "-p", &port, "-U", "postgres", "-d", db]
            .map(String::from)
            .to_vec()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Holding this lock also waits out a delayed start that is running.
        let mut dropped = lock(&self.dropped);
        *dropped = true;
        self.server.stop_quietly("QUIT");
        let _ = fs::remove_dir_all(&self.server.root);
        if let Some(mut watchdog) = lock(&self.watchdog).take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}

/// A new database on the shared cluster, for one test: its name and URL.
pub fn fresh_database(prefix: &str) -> (String, String) {
    let cluster = Cluster::shared();
    let db = cluster.create_database(prefix);
    let url = cluster.url(&db);
    (db, url)
}

/// Holds advisory lock `key` in `db` from a psql session (as the superuser,
/// over the unix socket) until dropped.
pub struct LockHolder {
    psql: Child,
    cluster: &'static Cluster,
    db: String,
}

/// What the holder's session calls itself, so Drop finds its backend.
const HOLDER_APP: &str = "lock-holder-test";

impl LockHolder {
    /// Returns once the lock is granted.
    pub fn take(cluster: &'static Cluster, db: &str, key: i64) -> LockHolder {
        let mut cmd = pg::client_command(&PgBins::get().path("psql"));
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
            .args(cluster.socket_args(db))
            .args([
                "-c",
                &format!("SELECT pg_advisory_lock({key})"),
                "-c",
                "SELECT pg_sleep(60)",
            ])
            .env("PGAPPNAME", HOLDER_APP)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("psql starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        let held = format!(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = {key} AND granted"
        );
        while cluster.psql(db, &held) != "1" {
            assert!(Instant::now() < deadline, "the holder never got the lock");
            thread::sleep(Duration::from_millis(20));
        }
        LockHolder {
            psql: child,
            cluster,
            db: db.to_string(),
        }
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        // Killing psql is not enough: its backend sits in pg_sleep until the sleep ends.
        self.cluster.psql(
            &self.db,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = '{HOLDER_APP}' AND datname = current_database()"
            ),
        );
        let _ = self.psql.kill();
        let _ = self.psql.wait();
    }
}

/// Paths, port and settings of one server; cloned into `start_later`'s thread.
#[derive(Clone)]
struct Server {
    root: PathBuf,
    port: u16,
    /// `Setup::settings`.
    settings: Vec<String>,
}

struct StartError {
    port_in_use: bool,
    message: String,
}

impl Server {
    fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    fn socket_dir(&self) -> PathBuf {
        self.root.join("sock")
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("server.log")
    }

    fn pid_file(&self) -> Vec<String> {
        let text = fs::read_to_string(self.data_dir().join("postmaster.pid")).unwrap_or_default();
        text.lines().map(|line| line.trim().to_string()).collect()
    }

    fn pid(&self) -> Option<u32> {
        self.pid_file().first()?.parse().ok()
    }

    /// Starts postgres and waits until it accepts connections.
    fn launch(&self) -> Result<(), StartError> {
        let log_start = fs::metadata(self.log_path()).map_or(0, |meta| meta.len() as usize);
        let mut cmd = pg::server_command(Path::new("sh"));
        // postgres in the background of a shell that exits at once: the server
        // is nobody's child of ours to reap, and `$!` tells us its pid.
        cmd.args(["-c", r#"log=$1; shift; "$@" >>"$log" 2>&1 & echo $!"#, "sh"])
            .arg(self.log_path())
            .arg(PgBins::get().path("postgres"))
            .arg("-D")
            .arg(self.data_dir())
            .args(["-c", &format!("port={}", self.port)])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.socket_dir().display()
            ));
        for setting in SETTINGS
            .iter()
            .copied()
            .chain(self.settings.iter().map(String::as_str))
        {
            cmd.args(["-c", setting]);
        }
        // Out of the test's process group: Ctrl-C is the watchdog's business.
        cmd.process_group(0);
        let out = pg::run_ok(&mut cmd);
        let pid: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pid of postgres");

        // pg_ctl -w polls the same "ready" line, but only every 100 ms.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let status = self.pid_file();
            if status.first() == Some(&pid.to_string())
                && status.get(7).is_some_and(|s| s == "ready")
            {
                return Ok(());
            }
            let died = !pg::process_alive(pid);
            if died || Instant::now() > deadline {
                let log = fs::read(self.log_path()).unwrap_or_default();
                let new_log = String::from_utf8_lossy(log.get(log_start..).unwrap_or_default());
                let what = if died {
                    "exited"
                } else {
                    "was not ready in time"
                };
                return Err(StartError {
                    port_in_use: died && new_log.contains("could not bind"),
                    message: format!(
                        "postgres on port {} {what}; server log:\n{}",
                        self.port,
                        self.log_tail(30)
                    ),
                });
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Signals the postmaster ("INT" fast, "QUIT" immediate) and waits for it.
    fn shutdown(&self, signal: &str) {
        let stopped = self.stop_quietly(signal);
        assert!(
            stopped,
            "postgres did not stop; log:\n{}",
            self.log_tail(30)
        );
    }

    /// Like `shutdown`, but reports instead of panicking (for Drop).
    fn stop_quietly(&self, signal: &str) -> bool {
        let Some(pid) = self.pid().filter(|&pid| pg::process_alive(pid)) else {
            return true;
        };
        pg::signal(pid, signal);
        // The postmaster exits only after all its children have.
        pg::wait_gone(&[pid], STOP_TIMEOUT)
    }

    fn log_tail(&self, n: usize) -> String {
        let log = fs::read(self.log_path()).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// A port that was free a moment ago on 127.0.0.1. Another process may take
/// it before you bind it; `Cluster::start` retries in that case. Within this
/// process it never returns the same port twice.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind((HOST, 0))
            .and_then(|listener| listener.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        let mut handed_out = lock(&HANDED_OUT);
        if !handed_out.contains(&port) {
            handed_out.push(port);
            return port;
        }
    }
}

/// Path of a binary from the PostgreSQL installation in use (e.g. "psql").
pub fn pg_bin(name: &str) -> PathBuf {
    PgBins::get().path(name)
}

/// `temp_dir()/schemagate-pg-<pid>-<n>`, newly created.
fn unique_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("schemagate-pg-{}-{n}", process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return dir,
            // Left by an earlier process that had our pid; skip it.
            Err(err) if err.kind() == ErrorKind::AlreadyExists => continue,
            Err(err) => panic!("create {}: {err}", dir.display()),
        }
    }
}

/// A poisoned lock only means another test panicked; the data is still fine.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The same encoding schemagate's redactor knows.
fn percent_encode(text: &str) -> String {
    schemagate::output::percent_encoded(text)
}
