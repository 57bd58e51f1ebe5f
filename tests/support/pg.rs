//! Finding the PostgreSQL binaries, running them as the right OS user, and
//! watching processes through /proc (Linux only; std has no kill/getuid).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

/// Every binary the harness runs; all must come from one installation.
pub const REQUIRED: [&str; 5] = ["initdb", "postgres", "pg_ctl", "psql", "pg_dump"];

pub struct PgBins {
    pub dir: PathBuf,
    /// Major version ("15"): clusters and templates only work with the same major.
    pub major: String,
}

impl PgBins {
    /// The installation used by this test process, located once.
    pub fn get() -> &'static PgBins {
        static BINS: OnceLock<PgBins> = OnceLock::new();
        BINS.get_or_init(|| PgBins::locate(pg_config_bindir(), Path::new("/usr/lib/postgresql")))
    }

    /// Uses `pg_config_dir` if it has every binary, else the newest
    /// `<fallback_root>/<version>/bin` that does. Panics instead of skipping:
    /// a green run that tested nothing is worse than a red one.
    pub fn locate(pg_config_dir: Option<PathBuf>, fallback_root: &Path) -> PgBins {
        let mut candidates: Vec<PathBuf> = pg_config_dir.into_iter().collect();
        candidates.extend(versioned_bindirs(fallback_root));
        if let Some(dir) = candidates.iter().find(|dir| missing(dir).is_empty()) {
            let major = major_version(&dir.join("postgres"));
            return PgBins {
                dir: dir.clone(),
                major,
            };
        }
        let found = match candidates.first() {
            Some(dir) => format!("missing {} in {}", missing(dir).join(", "), dir.display()),
            None => format!(
                "no pg_config on PATH and no {}/*/bin",
                fallback_root.display()
            ),
        };
        panic!(
            "PostgreSQL server binaries not found ({found}). The schemagate tests need \
             {}; install them with `apt-get install postgresql`.",
            REQUIRED.join(", ")
        );
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

fn missing(dir: &Path) -> Vec<&'static str> {
    REQUIRED
        .into_iter()
        .filter(|name| !dir.join(name).is_file())
        .collect()
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !dir.trim().is_empty()).then(|| PathBuf::from(dir.trim()))
}

/// `<root>/<version>/bin` directories, newest version first (Debian layout).
fn versioned_bindirs(root: &Path) -> Vec<PathBuf> {
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
                .collect::<Option<_>>()?;
            Some((version, entry.path().join("bin")))
        })
        .collect();
    versions.sort();
    versions.into_iter().rev().map(|(_, dir)| dir).collect()
}

/// "postgres (PostgreSQL) 15.18 (Debian ...)" -> "15".
fn major_version(postgres: &Path) -> String {
    let out = run(Command::new(postgres).arg("--version"));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .and_then(|version| version.split('.').next())
        .unwrap_or_else(|| panic!("cannot parse `{} --version`: {text}", postgres.display()))
        .to_string()
}

/// initdb and postgres refuse to run as root, and CI runs as root.
pub fn running_as_root() -> bool {
    static ROOT: OnceLock<bool> = OnceLock::new();
    *ROOT.get_or_init(|| effective_uid() == 0)
}

/// The effective uid, from the "Uid: real effective saved fs" line.
pub fn effective_uid() -> u32 {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
        .expect("no Uid line in /proc/self/status")
}

/// A command for server-side programs (initdb, postgres, pg_ctl, and the
/// shell that launches postgres): as the `postgres` OS user when we are root.
pub fn server_command(program: &Path) -> Command {
    let mut cmd = if running_as_root() {
        check_postgres_user();
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    };
    hermetic(&mut cmd);
    cmd
}

/// A command for client programs (psql, pg_dump), run as ourselves.
pub fn client_command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    hermetic(&mut cmd);
    cmd
}

/// Drops PG* variables and locale settings inherited from the developer's
/// shell so results (and error texts) are the same everywhere; "/" as cwd
/// because the postgres user may not be allowed into ours.
fn hermetic(cmd: &mut Command) {
    cmd.env_clear().current_dir("/").stdin(Stdio::null());
    if let Some(path) = env::var_os("PATH") {
        cmd.env("PATH", path);
    }
}

fn check_postgres_user() {
    static CHECKED: OnceLock<()> = OnceLock::new();
    CHECKED.get_or_init(|| {
        let ok = Command::new("runuser")
            .args(["-u", "postgres", "--", "true"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            ok,
            "running as root, so PostgreSQL must run as the `postgres` OS user via `runuser` \
             (util-linux), but `runuser -u postgres -- true` failed. \
             `apt-get install postgresql` creates that user."
        );
    });
}

/// Gives `path` to the postgres user when we are root (it runs the server).
pub fn chown_to_postgres(path: &Path) {
    if running_as_root() {
        let mut cmd = Command::new("chown");
        cmd.args(["-R", "postgres:postgres"]).arg(path);
        run_ok(&mut cmd);
    }
}

/// Runs `cmd`, panicking only if it cannot be started at all.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|err| panic!("cannot run {cmd:?}: {err}"))
}

/// Runs `cmd` and panics with its output unless it succeeds.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Sends a signal by name ("INT", "QUIT", "KILL"). Root may signal the
/// postgres user's processes, so no runuser is needed.
pub fn signal(pid: u32, name: &str) {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "kill -s \"$1\" \"$2\" 2>/dev/null", "sh", name])
        .arg(pid.to_string());
    run(&mut cmd);
}

/// The process state letter from /proc/<pid>/stat, if the process exists.
fn state(pid: u32) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may contain spaces: split after it.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// A zombie counts as gone: it holds nothing and its parent (often PID 1 in
/// a container) may never reap it, yet `kill -0` would still succeed.
pub fn process_alive(pid: u32) -> bool {
    state(pid).is_some_and(|s| s != 'Z' && s != 'X')
}

/// Direct children of `pid` (the postmaster's backends and workers).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            let stat = fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1));
            ppid == Some(pid.to_string().as_str())
        })
        .collect()
}

/// Polls until none of `pids` is alive; false on timeout.
pub fn wait_gone(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while pids.iter().any(|&pid| process_alive(pid)) {
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(5));
    }
    true
}
