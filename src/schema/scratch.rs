//! A scratch PostgreSQL: a server where schemagate may create and drop throwaway
//! databases, to apply migrations and the desired schema and read what they produce.
//!
//! - `--dev-url` (`SCHEMAGATE_DEV_URL`) names one; every database made on it is called
//!   `schemagate_scratch_<pid>_<n>` and dropped again at `close`, on `Drop`, and by
//!   [`cleanup_all`] on main's exit paths.
//! - Without it, schemagate runs a cluster of its own when PostgreSQL's server binaries are
//!   installed (`--pg-bin`, else `pg_config --bindir`, else the newest Debian
//!   `/usr/lib/postgresql/*/bin`, else `initdb` on PATH): `initdb` into a fresh temp dir
//!   (`schemagate-scratch-<pid>-<n>`), durability off, trust auth, no TCP
//!   (`listen_addresses=''`), its unix socket in that dir. As root it runs as the
//!   `postgres` OS user through `runuser` (initdb and postgres refuse root).
//!
//! `postgres` is started directly as a child (not through `pg_ctl start -w`): readiness is
//! seen within a few milliseconds from `postmaster.pid`'s status line instead of
//! pg_ctl's 100 ms polling, and the child can be reaped. Stopping is what
//! `pg_ctl stop -m immediate` does, a SIGQUIT to the postmaster, then the dir is removed.
//!
//! Cleanup on every exit path:
//! - `close` and `Drop` stop the cluster and remove its dir (and drop dev-URL databases).
//! - main's `std::process::exit` paths (the signal grace period) skip destructors, so
//!   every cluster and dev database is also in a process-wide registry that
//!   [`cleanup_all`] empties.
//! - A SIGKILLed schemagate runs no code at all. So each cluster has a watchdog: a small
//!   `sh` reading a pipe whose only writer is schemagate. A clean stop writes `done`; end of
//!   file without it means schemagate died, and the watchdog SIGQUITs the postmaster and
//!   removes the dir at once. (`PR_SET_PDEATHSIG` would not survive `runuser`'s change of
//!   user, and would fire when the spawning thread, not the process, ends.)
//! - Should the watchdog die too (a `kill -9` of the process group, a reboot), the next
//!   `Scratch::start` removes `schemagate-scratch-*` dirs whose owner pid (recorded in the
//!   dir with its pid namespace) is gone, stopping their postmaster first if it still runs
//!   there.
//!
//! Scratch sessions are opened with their own [`Interrupt`], so they never take the place
//! of the run's main connection as the one a signal cancels; long waits here check the
//! run's interrupt themselves.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::db::connection::{Connection, SslMode};
use crate::db::guard::Guard;
use crate::db::history::{self, Tables};
use crate::db::interrupt::Interrupt;
use crate::db::session::{self, Session};
use crate::db::wait::{self, Budget};
use crate::error::{Error, Result};

/// What every scratch dir's name starts with, in the temp dir.
pub const DIR_PREFIX: &str = "schemagate-scratch-";
/// What every scratch database's name starts with.
pub const DATABASE_PREFIX: &str = "schemagate_scratch_";

/// How long a dev server may take to accept a connection.
const DEV_WAIT: Duration = Duration::from_secs(10);
/// How long the own server may take to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping postmaster may take to exit before its dir is removed anyway.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// The port in the socket's name; nothing listens on TCP, and the socket is in our dir.
const PORT: u16 = 5432;
/// A unix socket path is at most 107 bytes on Linux.
const SOCKET_PATH_MAX: usize = 107;

/// Server settings: nothing here must survive a crash, so durability is off; small, and
/// quiet in the background.
const SETTINGS: [&str; 9] = [
    "listen_addresses=",
    "fsync=off",
    "synchronous_commit=off",
    "full_page_writes=off",
    "autovacuum=off",
    "shared_buffers=32MB",
    "max_connections=50",
    "dynamic_shared_memory_type=mmap",
    "log_min_messages=warning",
];

/// The watchdog: $1 is the cluster's dir. A line `done` on stdin means schemagate cleaned
/// up itself; end of file without it means schemagate is gone.
const WATCHDOG: &str = r#"
dir=$1
read -r word
[ "$word" = done ] && exit 0
pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)
case $pid in
''|*[!0-9]*) ;;
*)
    kill -QUIT "$pid" 2>/dev/null
    i=0
    while [ $i -lt 100 ] && [ -e "/proc/$pid" ] && ! grep -q '^State:[[:space:]]*[ZX]' "/proc/$pid/status" 2>/dev/null; do
        sleep 0.05
        i=$((i + 1))
    done
    ;;
esac
rm -rf "$dir"
"#;

/// A scratch PostgreSQL: a dev server's databases, or a cluster of our own.
pub struct Scratch {
    /// On the maintenance database; `None` only once closed.
    admin: Option<Session>,
    server: Server,
    version: u32,
    /// The registry entry of what to clean up.
    id: u64,
}

/// The `<n>` of database names.
static DATABASE_COUNTER: AtomicUsize = AtomicUsize::new(0);

enum Server {
    Dev(Box<Connection>),
    Own(Own),
}

/// A running cluster of our own.
struct Own {
    dir: PathBuf,
    /// `postgres` (or `runuser` running it as the postgres user), to reap.
    process: Option<Child>,
    watchdog: Option<Watchdog>,
}

impl Scratch {
    /// With `dev`: connect to it (the maintenance database its URL names) and check that
    /// CREATE DATABASE is allowed. Without: start a cluster of our own (see the module doc).
    pub async fn start(
        dev: Option<&Connection>,
        pg_bin: Option<&Path>,
        interrupt: &Interrupt,
    ) -> Result<Scratch> {
        match dev {
            Some(dev) => Scratch::on_dev(dev, interrupt).await,
            None => Scratch::own(pg_bin, interrupt).await,
        }
    }

    async fn on_dev(dev: &Connection, interrupt: &Interrupt) -> Result<Scratch> {
        let mut budget = Budget::new(DEV_WAIT);
        let quiet = Interrupt::default();
        let admin = tokio::select! {
            admin = wait::connect(dev, &mut budget, &quiet) => admin?,
            signal = interrupt.wait() => return Err(Error::Interrupted(signal)),
        };
        let rows = admin
            .rows(
                "SELECT current_setting('server_version_num'), \
                 (SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user), \
                 current_user",
            )
            .await?;
        let row = rows.first();
        let field = |i: usize| row.and_then(|r| r.get(i)).cloned().flatten();
        let version = parse_version(field(0).as_deref())?;
        if field(1).as_deref() != Some("t") {
            let user = field(2).unwrap_or_else(|| "?".to_string());
            admin.close().await;
            return Err(Error::Usage(format!(
                "the dev database {} does not let role {user} create databases, and schemagate \
                 creates and drops throwaway ones there: ALTER ROLE {user} CREATEDB, or point \
                 --dev-url (SCHEMAGATE_DEV_URL) at a server where it may",
                dev.describe()
            )));
        }
        let id = register(Leftover::Databases {
            connection: Box::new(dev.clone()),
            names: Vec::new(),
        });
        Ok(Scratch {
            admin: Some(admin),
            server: Server::Dev(Box::new(dev.clone())),
            version,
            id,
        })
    }

    async fn own(pg_bin: Option<&Path>, interrupt: &Interrupt) -> Result<Scratch> {
        let bin = find_binaries(pg_bin)?;
        let user = if running_as_root() {
            Some(postgres_user()?)
        } else {
            None
        };
        sweep_stale_dirs();
        let (dir, id) = make_dir(user.as_ref())?;
        // From here on, leaving early (an error, a signal) removes the dir through `guard`.
        let mut guard = StartGuard {
            id,
            watchdog: None,
            process: None,
            armed: true,
        };
        guard.watchdog = Some(Watchdog::spawn(&dir)?);
        let data = dir.join("data");
        let mut initdb = server_command(&bin.join("initdb"), user.is_some());
        initdb
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let initdb = initdb.spawn().map_err(|e| {
            Error::Usage(format!(
                "cannot run {}: {e}; pass --pg-bin with the folder of PostgreSQL's server binaries, or --dev-url",
                bin.join("initdb").display()
            ))
        })?;
        let output = finish(initdb, interrupt).await?;
        if !output.status.success() {
            return Err(Error::Usage(format!(
                "initdb of the scratch PostgreSQL failed ({}): {}; pass --dev-url \
                 (SCHEMAGATE_DEV_URL) to use a server of yours instead",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        interrupt.check()?;

        let log_path = dir.join("server.log");
        let log = fs::File::create(&log_path)
            .map_err(|e| Error::Usage(format!("cannot write {}: {e}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|e| Error::Usage(format!("cannot write {}: {e}", log_path.display())))?;
        let mut postgres = server_command(&bin.join("postgres"), user.is_some());
        postgres.arg("-D").arg(&data);
        postgres
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.display()))
            .arg("-c")
            .arg(format!("port={PORT}"));
        for setting in SETTINGS {
            postgres.args(["-c", setting]);
        }
        // Its own process group: a Ctrl-C at the terminal is schemagate's to handle.
        postgres
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0);
        let process = postgres.spawn().map_err(|e| {
            Error::Usage(format!(
                "cannot run {}: {e}; pass --pg-bin, or --dev-url",
                bin.join("postgres").display()
            ))
        })?;
        let process = guard.process.insert(process);
        let pid = wait_ready(&data, process, &log_path, interrupt).await?;
        set_postmaster(id, pid);

        let connection = own_connection(&dir, "postgres");
        let admin = Session::open(&connection, &Interrupt::default())
            .await
            .map_err(|e| match e {
                session::ConnectError::Setup(e) => e,
                session::ConnectError::Postgres(e) => Error::Usage(format!(
                    "the scratch PostgreSQL started but refuses connections: {}",
                    session::describe(&e)
                )),
            })?;
        let rows = admin
            .rows("SELECT current_setting('server_version_num')")
            .await?;
        let version = parse_version(
            rows.first()
                .and_then(|r| r.first())
                .cloned()
                .flatten()
                .as_deref(),
        )?;
        let (process, watchdog) = guard.disarm();
        Ok(Scratch {
            admin: Some(admin),
            server: Server::Own(Own {
                dir,
                process,
                watchdog,
            }),
            version,
            id,
        })
    }

    /// A fresh database named `schemagate_scratch_<pid>_<n>`: empty (from template0), or a
    /// copy of `template`, which must have no sessions connected to it.
    pub async fn create(&self, template: Option<&str>) -> Result<String> {
        let admin = self.admin()?;
        let source = template.unwrap_or("template0");
        loop {
            // Process-wide: two scratch servers of one process may share a dev server.
            let n = DATABASE_COUNTER.fetch_add(1, Ordering::Relaxed);
            let name = format!("{DATABASE_PREFIX}{}_{n}", std::process::id());
            let sql = format!(
                "CREATE DATABASE {} TEMPLATE {}{}",
                quote_ident(&name),
                quote_ident(source),
                // A small template copies faster file by file than through the WAL.
                if self.version >= 15 {
                    " STRATEGY FILE_COPY"
                } else {
                    ""
                }
            );
            match admin.client.simple_query(&sql).await {
                Ok(_) => {
                    add_database(self.id, &name);
                    return Ok(name);
                }
                Err(e) => {
                    let code = e.as_db_error().map(|db| db.code().code().to_string());
                    match code.as_deref() {
                        // Another process has that name (on a dev server shared by
                        // containers, pids repeat); 23505 when both create it at once.
                        Some("42P04" | "23505") => continue,
                        Some("55006") => {
                            return Err(Error::Database(format!(
                                "cannot copy the scratch database {source}: other sessions are \
                                 connected to it, and CREATE DATABASE ... TEMPLATE needs none: \
                                 close them first ({})",
                                session::describe(&e)
                            )));
                        }
                        _ => return Err(session::classify(e)),
                    }
                }
            }
        }
    }

    /// How to connect to one of its databases.
    pub fn connection(&self, database: &str) -> Connection {
        match &self.server {
            Server::Dev(dev) => {
                let mut connection = Connection::clone(dev);
                connection.config.dbname(database);
                connection
            }
            Server::Own(own) => own_connection(&own.dir, database),
        }
    }

    /// A session on one of its databases. `interrupt` is the one whose signals cancel
    /// its statements (pass the run's, or `Interrupt::default()` for none).
    pub async fn open(&self, database: &str, interrupt: &Interrupt) -> Result<Session> {
        let connection = self.connection(database);
        Session::open(&connection, interrupt)
            .await
            .map_err(|e| match e {
                session::ConnectError::Setup(e) => e,
                session::ConnectError::Postgres(e) => Error::Refused(format!(
                    "cannot connect to the scratch database {}: {}",
                    connection.describe(),
                    session::describe(&e)
                )),
            })
    }

    /// A session on `database` as the runner's apply code expects it: schemagate's history
    /// tables there, and the advisory lock held (by this session) that its proofs check.
    pub async fn open_locked(
        &self,
        database: &str,
        tables: &Tables,
        interrupt: &Interrupt,
    ) -> Result<(Session, Guard)> {
        let session = self.open(database, interrupt).await?;
        history::ensure_tables(&session, tables).await?;
        let guard = Guard {
            key: tables.lock_key(),
            session_lock: true,
        };
        session
            .execute(&format!("SELECT pg_advisory_lock({})", guard.key))
            .await?;
        Ok((session, guard))
    }

    /// Drops one of its databases, disconnecting whoever is still on it.
    pub async fn drop_database(&self, database: &str) -> Result<()> {
        self.admin()?
            .execute(&drop_sql(database, self.version))
            .await?;
        forget_database(self.id, database);
        Ok(())
    }

    /// Drops every database it created (dev URL) or stops and removes its own cluster.
    pub async fn close(mut self) {
        if let (Some(admin), Server::Dev(_)) = (&self.admin, &self.server) {
            for name in databases(self.id) {
                match admin.execute(&drop_sql(&name, self.version)).await {
                    Ok(()) => forget_database(self.id, &name),
                    Err(e) => tracing::warn!("could not drop the scratch database {name}: {e}"),
                }
            }
        }
        if let Some(admin) = self.admin.take() {
            admin.close().await;
        }
        // The rest (the cluster, databases left over) is Drop's.
    }

    /// The server's major version, e.g. 15.
    pub fn server_version(&self) -> u32 {
        self.version
    }

    /// The own cluster's temp dir (`None` on a dev server).
    pub fn dir(&self) -> Option<&Path> {
        match &self.server {
            Server::Own(own) => Some(&own.dir),
            Server::Dev(_) => None,
        }
    }

    fn admin(&self) -> Result<&Session> {
        self.admin
            .as_ref()
            .ok_or_else(|| Error::Internal("the scratch PostgreSQL is already closed".into()))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The admin session's socket goes first, so a dev database can be dropped.
        drop(self.admin.take());
        if let Some(leftover) = take(self.id) {
            leftover.clean();
        }
        if let Server::Own(own) = &mut self.server {
            if let Some(process) = &mut own.process {
                reap(process);
            }
            if let Some(watchdog) = own.watchdog.take() {
                watchdog.done();
            }
        }
    }
}

/// Stops and removes every cluster, and drops every dev database, that this process's
/// scratch servers still have: for exit paths that skip destructors. Best effort.
pub fn cleanup_all() {
    let all: Vec<Leftover> = match REGISTRY.lock() {
        Ok(mut registry) => std::mem::take(&mut *registry).into_values().collect(),
        Err(_) => return,
    };
    for leftover in all {
        leftover.clean();
    }
}

/// What must not outlive the process.
enum Leftover {
    Cluster {
        dir: PathBuf,
        postmaster: Option<u32>,
    },
    Databases {
        connection: Box<Connection>,
        names: Vec<String>,
    },
}

static REGISTRY: Mutex<BTreeMap<u64, Leftover>> = Mutex::new(BTreeMap::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn register(leftover: Leftover) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut registry) = REGISTRY.lock() {
        registry.insert(id, leftover);
    }
    id
}

fn take(id: u64) -> Option<Leftover> {
    REGISTRY.lock().ok()?.remove(&id)
}

fn set_postmaster(id: u64, pid: u32) {
    if let Ok(mut registry) = REGISTRY.lock() {
        if let Some(Leftover::Cluster { postmaster, .. }) = registry.get_mut(&id) {
            *postmaster = Some(pid);
        }
    }
}

fn add_database(id: u64, name: &str) {
    if let Ok(mut registry) = REGISTRY.lock() {
        if let Some(Leftover::Databases { names, .. }) = registry.get_mut(&id) {
            names.push(name.to_string());
        }
    }
}

fn forget_database(id: u64, name: &str) {
    if let Ok(mut registry) = REGISTRY.lock() {
        if let Some(Leftover::Databases { names, .. }) = registry.get_mut(&id) {
            names.retain(|n| n != name);
        }
    }
}

fn databases(id: u64) -> Vec<String> {
    match REGISTRY.lock() {
        Ok(registry) => match registry.get(&id) {
            Some(Leftover::Databases { names, .. }) => names.clone(),
            _ => Vec::new(),
        },
        Err(_) => Vec::new(),
    }
}

impl Leftover {
    fn clean(self) {
        match self {
            Leftover::Cluster { dir, postmaster } => stop_cluster(&dir, postmaster),
            Leftover::Databases { names, .. } if names.is_empty() => {}
            Leftover::Databases { connection, names } => drop_aside(connection, names),
        }
    }
}

/// SIGQUIT to the postmaster (`pg_ctl stop -m immediate`), a wait for it to go, and the
/// dir removed.
fn stop_cluster(dir: &Path, postmaster: Option<u32>) {
    let pid = postmaster.or_else(|| pid_file(&dir.join("data")).first()?.parse().ok());
    if let Some(pid) = pid {
        if process_alive(pid) {
            signal(pid, "QUIT");
            let deadline = Instant::now() + STOP_TIMEOUT;
            while process_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }
    if let Err(e) = fs::remove_dir_all(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("could not remove the scratch dir {}: {e}", dir.display());
        }
    }
}

/// Drops dev databases from a destructor or exit path: on a thread of its own with its
/// own runtime (the caller may be inside one), within a second or two.
fn drop_aside(connection: Box<Connection>, names: Vec<String>) {
    let work = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let drop_all = async {
                let session = Session::open(&connection, &Interrupt::default())
                    .await
                    .ok()?;
                let version = session
                    .rows("SELECT current_setting('server_version_num')")
                    .await
                    .ok()
                    .and_then(|rows| parse_version(rows.first()?.first()?.as_deref()).ok())
                    .unwrap_or(13);
                for name in &names {
                    if let Err(e) = session.execute(&drop_sql(name, version)).await {
                        tracing::warn!("could not drop the scratch database {name}: {e}");
                    }
                }
                session.close().await;
                Some(())
            };
            if tokio::time::timeout(Duration::from_secs(2), drop_all)
                .await
                .is_err()
            {
                tracing::warn!(
                    "could not drop the scratch databases {} in time",
                    names.join(", ")
                );
            }
        });
    });
    let _ = work.join();
}

fn drop_sql(database: &str, version: u32) -> String {
    if version >= 13 {
        format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(database)
        )
    } else {
        format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = {}; \
             DROP DATABASE IF EXISTS {}",
            quote_literal(database),
            quote_ident(database)
        )
    }
}

/// Until the cluster is handed over to a `Scratch`: removes it on an early return.
struct StartGuard {
    id: u64,
    watchdog: Option<Watchdog>,
    process: Option<Child>,
    armed: bool,
}

impl StartGuard {
    fn disarm(mut self) -> (Option<Child>, Option<Watchdog>) {
        self.armed = false;
        (self.process.take(), self.watchdog.take())
    }
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(leftover) = take(self.id) {
            leftover.clean();
        }
        if let Some(process) = &mut self.process {
            reap(process);
        }
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.done();
        }
    }
}

/// The `sh` that cleans up after a SIGKILLed schemagate (see the module doc).
struct Watchdog {
    child: Child,
    pipe: ChildStdin,
}

impl Watchdog {
    fn spawn(dir: &Path) -> Result<Watchdog> {
        let mut child = Command::new("sh")
            .args(["-c", WATCHDOG, "sh"])
            .arg(dir)
            .env_clear()
            .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                Error::Usage(format!(
                    "cannot start sh to watch the scratch PostgreSQL: {e}; pass --dev-url instead"
                ))
            })?;
        let pipe = child
            .stdin
            .take()
            .ok_or_else(|| Error::Internal("the scratch watchdog has no stdin pipe".to_string()))?;
        Ok(Watchdog { child, pipe })
    }

    /// Cleanup is done: the watchdog exits without touching anything.
    fn done(mut self) {
        let _ = self.pipe.write_all(b"done\n");
        drop(self.pipe);
        let _ = self.child.wait();
    }
}

/// Waits for a child that runs to completion (initdb), checking for signals; a signal
/// stops it.
async fn finish(mut child: Child, interrupt: &Interrupt) -> Result<std::process::Output> {
    let mut stderr = child.stderr.take();
    // initdb's stderr is small, but read it on a thread so a chatty one cannot block.
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(stderr) = &mut stderr {
            let _ = stderr.read_to_end(&mut text);
        }
        text
    });
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let stderr = reader.join().unwrap_or_default();
                return Ok(std::process::Output {
                    status,
                    stdout: Vec::new(),
                    stderr,
                });
            }
            Ok(None) => {}
            Err(e) => return Err(Error::Usage(format!("cannot wait for initdb: {e}"))),
        }
        if let Some(signal) = interrupt.received() {
            // runuser passes SIGTERM on to its child.
            signal_child(&child, "TERM");
            reap(&mut child);
            return Err(Error::Interrupted(signal));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the postmaster says `ready` in postmaster.pid; returns its pid.
async fn wait_ready(
    data: &Path,
    process: &mut Child,
    log: &Path,
    interrupt: &Interrupt,
) -> Result<u32> {
    let started = Instant::now();
    loop {
        let status = pid_file(data);
        if status.get(7).is_some_and(|s| s == "ready") {
            if let Some(pid) = status.first().and_then(|p| p.parse().ok()) {
                return Ok(pid);
            }
        }
        if let Ok(Some(exit)) = process.try_wait() {
            return Err(Error::Usage(format!(
                "the scratch PostgreSQL exited at start ({exit}): {}; pass --dev-url \
                 (SCHEMAGATE_DEV_URL) to use a server of yours instead",
                log_tail(log)
            )));
        }
        interrupt.check()?;
        if started.elapsed() > READY_TIMEOUT {
            return Err(Error::Usage(format!(
                "the scratch PostgreSQL was not ready within {}: {}",
                crate::text::duration(READY_TIMEOUT),
                log_tail(log)
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// postmaster.pid's lines (pid, data dir, start time, port, socket dir, listen address,
/// shared memory key, status).
fn pid_file(data: &Path) -> Vec<String> {
    fs::read_to_string(data.join("postmaster.pid"))
        .unwrap_or_default()
        .lines()
        .map(|line| line.trim().to_string())
        .collect()
}

/// The server log's last lines, for a message.
fn log_tail(log: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut file) = fs::File::open(log) {
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(2000)));
        let mut bytes = Vec::new();
        let _ = file.read_to_end(&mut bytes);
        text = String::from_utf8_lossy(&bytes).into_owned();
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines
        .get(lines.len().saturating_sub(5)..)
        .unwrap_or_default();
    if tail.is_empty() {
        "the server log is empty".to_string()
    } else {
        tail.join(" / ")
    }
}

/// Reaps a child that should be ending; kills it if it has not within a second.
fn reap(child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// The folder holding initdb and postgres: `pg_bin`, else `pg_config --bindir`, else the
/// newest `/usr/lib/postgresql/*/bin`, else where `initdb` is on PATH.
fn find_binaries(pg_bin: Option<&Path>) -> Result<PathBuf> {
    let complete = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Some(dir) = pg_bin {
        if complete(dir) {
            return Ok(dir.to_path_buf());
        }
        return Err(Error::Usage(format!(
            "--pg-bin {} does not hold PostgreSQL's initdb and postgres: name the folder \
             `pg_config --bindir` prints (e.g. /usr/lib/postgresql/16/bin), or pass --dev-url \
             (SCHEMAGATE_DEV_URL)",
            dir.display()
        )));
    }
    let mut candidates = Vec::new();
    if let Ok(out) = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !dir.is_empty() {
            candidates.push(PathBuf::from(dir));
        }
    }
    candidates.extend(debian_bindirs(Path::new("/usr/lib/postgresql")));
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    candidates
        .into_iter()
        .find(|dir| complete(dir))
        .ok_or_else(|| {
            Error::Usage(
                "no scratch PostgreSQL: pass --dev-url (or SCHEMAGATE_DEV_URL) naming a server \
             where schemagate may create and drop throwaway databases, or install PostgreSQL's \
             server binaries (`apt-get install postgresql`; initdb and postgres, found through \
             `pg_config --bindir`) or pass --pg-bin with their folder"
                    .to_string(),
            )
        })
}

/// `<root>/<version>/bin`, newest version first (Debian's layout).
fn debian_bindirs(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(root) else {
        return Vec::new();
    };
    let mut versions: Vec<(Vec<u32>, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version = name
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions.into_iter().rev().map(|(_, dir)| dir).collect()
}

/// The OS user the server runs as when schemagate runs as root.
struct OsUser {
    uid: u32,
    gid: u32,
}

fn postgres_user() -> Result<OsUser> {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres")).then(|| {
                Some(OsUser {
                    uid: fields.get(2)?.parse().ok()?,
                    gid: fields.get(3)?.parse().ok()?,
                })
            })?
        })
        .ok_or_else(|| {
            Error::Usage(
                "schemagate runs as root, and PostgreSQL refuses to: the scratch PostgreSQL runs \
                 as the `postgres` OS user, but there is none. Create it (`useradd --system \
                 postgres`; the postgresql package does), run schemagate as another user, or \
                 pass --dev-url (SCHEMAGATE_DEV_URL)"
                    .to_string(),
            )
        })
}

/// initdb and postgres refuse root: as root they run as the postgres user.
fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1)?.parse::<u32>().ok())
        })
        == Some(0)
}

/// A server-side program, as the postgres user when we are root; environment cleared
/// (a PGPORT or PGDATA of the user's must not reach it), "/" as its working directory
/// (the postgres user may not be allowed into ours).
fn server_command(program: &Path, as_postgres: bool) -> Command {
    let mut command = if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    command
        .env_clear()
        .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
        .current_dir("/")
        .stdin(Stdio::null());
    command
}

/// A fresh `schemagate-scratch-<pid>-<n>` dir with its owner recorded, registered for
/// cleanup; given to the postgres user when we are root.
fn make_dir(user: Option<&OsUser>) -> Result<(PathBuf, u64)> {
    let mut base = std::env::temp_dir();
    // The socket's path must fit: `<dir>/.s.PGSQL.5432`.
    if base.as_os_str().len() + DIR_PREFIX.len() + 40 > SOCKET_PATH_MAX {
        base = PathBuf::from("/tmp");
    }
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = loop {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("{DIR_PREFIX}{}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => break dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Error::Usage(format!(
                    "cannot create the scratch PostgreSQL's dir {}: {e}; set TMPDIR to a \
                     writable folder, or pass --dev-url",
                    dir.display()
                )));
            }
        }
    };
    let id = register(Leftover::Cluster {
        dir: dir.clone(),
        postmaster: None,
    });
    let failed = |e: std::io::Error| {
        if let Some(leftover) = take(id) {
            leftover.clean();
        }
        Error::Usage(format!(
            "cannot prepare the scratch PostgreSQL's dir {}: {e}",
            dir.display()
        ))
    };
    fs::write(
        dir.join("owner"),
        format!("{} {}\n", std::process::id(), pid_namespace()),
    )
    .map_err(failed)?;
    if let Some(user) = user {
        std::os::unix::fs::chown(&dir, Some(user.uid), Some(user.gid)).map_err(failed)?;
    }
    Ok((dir, id))
}

/// Which pid namespace a pid means something in ("pid:[4026531836]"): a dir made in
/// another container that shares our /tmp names a pid of its own.
fn pid_namespace() -> String {
    fs::read_link("/proc/self/ns/pid")
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// Removes the scratch dirs of schemagate processes that are gone (SIGKILLed with their
/// watchdog), stopping a postmaster still running in one.
fn sweep_stale_dirs() {
    let base = std::env::temp_dir();
    let namespace = pid_namespace();
    for base in [base.as_path(), Path::new("/tmp")] {
        let Ok(entries) = fs::read_dir(base) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with(DIR_PREFIX) {
                continue;
            }
            let dir = entry.path();
            let owner = fs::read_to_string(dir.join("owner")).unwrap_or_default();
            let mut fields = owner.split_whitespace();
            let pid: Option<u32> = fields.next().and_then(|p| p.parse().ok());
            let same_namespace = fields.next().unwrap_or_default() == namespace;
            let stale = match pid {
                Some(pid) => {
                    same_namespace
                        && pid != std::process::id()
                        && proc_known()
                        && !process_alive(pid)
                }
                // The owner file is written right after the dir is made: long ago means killed
                // in between.
                None => entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age > Duration::from_secs(600)),
            };
            if !stale {
                continue;
            }
            let data = dir.join("data");
            let postmaster = pid_file(&data)
                .first()
                .and_then(|p| p.parse::<u32>().ok())
                // Only a process that runs in that data dir: the pid may have been reused.
                .filter(|&pid| {
                    fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == data)
                });
            tracing::debug!("removing the stale scratch dir {}", dir.display());
            stop_cluster(&dir, postmaster);
        }
        if base == Path::new("/tmp") {
            break;
        }
    }
}

/// Without /proc (not Linux) nothing is known to be dead, so nothing is swept.
fn proc_known() -> bool {
    Path::new("/proc/self/stat").exists()
}

/// A zombie counts as gone: it holds nothing, and a container's PID 1 may never reap it.
fn process_alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
            Some(state != 'Z' && state != 'X')
        })
        .unwrap_or(false)
}

/// `kill -s NAME pid`; root may signal the postgres user's processes.
fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args(["-s", name])
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn signal_child(child: &Child, name: &str) {
    signal(child.id(), name);
}

/// The own cluster's socket, as the superuser, without TLS.
fn own_connection(dir: &Path, database: &str) -> Connection {
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(dir)
        .port(PORT)
        .user("postgres")
        .dbname(database)
        .application_name("schemagate-scratch")
        .ssl_mode(tokio_postgres::config::SslMode::Disable);
    Connection {
        config,
        ssl_mode: SslMode::Disable,
        ssl_root_cert: None,
    }
}

/// `server_version_num` (150004) to the major version (15).
fn parse_version(num: Option<&str>) -> Result<u32> {
    num.and_then(|n| n.trim().parse::<u32>().ok())
        .map(|n| n / 10000)
        .ok_or_else(|| {
            Error::Database(format!(
                "the scratch server answered server_version_num with {num:?}, not a number"
            ))
        })
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_quoting() {
        assert_eq!(parse_version(Some("150004")).unwrap(), 15);
        assert_eq!(parse_version(Some("90624")).unwrap(), 9);
        assert!(parse_version(Some("x")).is_err());
        assert!(parse_version(None).is_err());
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert!(drop_sql("d", 15).contains("WITH (FORCE)"));
        assert!(drop_sql("d", 12).contains("pg_terminate_backend"));
    }

    #[test]
    fn missing_pg_bin_says_what_to_do() {
        let message = match find_binaries(Some(Path::new("/nonexistent/bin"))) {
            Err(Error::Usage(message)) => message,
            other => panic!("expected Usage, got {:?}", other.map(|_| ())),
        };
        assert!(message.contains("--pg-bin /nonexistent/bin"), "{message}");
        assert!(message.contains("--dev-url"), "{message}");
    }

    #[test]
    fn debian_bindirs_newest_first() {
        let root = std::env::temp_dir().join(format!("schemagate-bindirs-{}", std::process::id()));
        for v in ["9.6", "13", "16", "x"] {
            fs::create_dir_all(root.join(v).join("bin")).unwrap();
        }
        let found = debian_bindirs(&root);
        let _ = fs::remove_dir_all(&root);
        assert_eq!(
            found,
            ["16", "13", "9.6"]
                .map(|v| root.join(v).join("bin"))
                .to_vec()
        );
    }
}
