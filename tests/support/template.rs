//! A machine-wide cache of one freshly initdb'ed data directory. initdb
//! takes about a second; copying its result takes a tenth of that.

use super::pg::{self, PgBins};
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, SystemTime};

/// Bump when the initdb flags change, so old caches are not reused.
const REVISION: u32 = 1;
/// Give up waiting for another process's initdb after this long.
const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// The template data directory, built on first use on this machine.
pub fn template_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let bins = PgBins::get();
        // Per uid too: a root-built template is unreadable to other users.
        let name = format!(
            "schemagate-pg-template-{}-r{REVISION}-uid{}",
            bins.major,
            pg::effective_uid()
        );
        let dir = std::env::temp_dir().join(name);
        ensure_built(&dir);
        dir
    })
}

/// Builds `dir` unless it exists. A lock directory keeps concurrent test
/// processes from all running initdb; building in a temp dir and renaming
/// makes a half-built template impossible to see, even if the lock is broken.
fn ensure_built(dir: &Path) {
    let lock = sibling(dir, "lock");
    let started = SystemTime::now();
    loop {
        if is_complete(dir) {
            return;
        }
        match fs::create_dir(&lock) {
            Ok(()) => {
                fs::write(lock.join("pid"), process::id().to_string()).expect("write lock pid");
                let result = std::panic::catch_unwind(|| build(dir));
                let _ = fs::remove_dir_all(&lock);
                if let Err(panic) = result {
                    std::panic::resume_unwind(panic);
                }
                return;
            }
            Err(err) if err.kind() == ErrorKind::AlreadyExists => {
                if lock_is_stale(&lock) {
                    let _ = fs::remove_dir_all(&lock);
                    continue;
                }
                let waited = started.elapsed().unwrap_or_default();
                assert!(
                    waited < WAIT_LIMIT,
                    "waited {waited:?} for another process to build {}; remove {} if stale",
                    dir.display(),
                    lock.display()
                );
                thread::sleep(Duration::from_millis(50));
            }
            Err(err) => panic!("cannot create {}: {err}", lock.display()),
        }
    }
}

fn build(dir: &Path) {
    remove_dead_builds(dir);
    let tmp = sibling(dir, &format!("tmp-{}", process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir(&tmp).unwrap_or_else(|err| panic!("create {}: {err}", tmp.display()));
    pg::chown_to_postgres(&tmp);

    let initdb = PgBins::get().path("initdb");
    let mut cmd = pg::server_command(&initdb);
    cmd.arg("-D").arg(&tmp);
    cmd.args([
        "-A",
        "trust",
        "-U",
        "postgres",
        "-N",
        "-E",
        "UTF8",
        "--locale=C",
    ]);
    pg::run_ok(&mut cmd);

    if let Err(err) = fs::rename(&tmp, dir) {
        let _ = fs::remove_dir_all(&tmp);
        // Losing a race against a process that ignored a stale-looking lock is fine.
        assert!(
            is_complete(dir),
            "rename template into {}: {err}",
            dir.display()
        );
    }
}

/// PG_VERSION is written by initdb, and the directory only appears by rename.
fn is_complete(dir: &Path) -> bool {
    dir.join("PG_VERSION").is_file()
}

/// Stale if its owner died (Ctrl-C during initdb) or it is implausibly old.
fn lock_is_stale(lock: &Path) -> bool {
    let owner = fs::read_to_string(lock.join("pid"))
        .ok()
        .and_then(|pid| pid.trim().parse().ok());
    let age = fs::metadata(lock)
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .unwrap_or_default();
    match owner {
        Some(pid) => !pg::process_alive(pid) || age > WAIT_LIMIT,
        // Just created, pid not written yet, unless it has been a while.
        None => age > Duration::from_secs(10),
    }
}

/// Removes `<dir>.tmp-<pid>` left by builders that were killed.
fn remove_dead_builds(dir: &Path) {
    let Some(parent) = dir.parent() else { return };
    let prefix = format!("{}.tmp-", dir.file_name().unwrap().to_string_lossy());
    for entry in fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name.strip_prefix(&prefix).and_then(|pid| pid.parse().ok());
        if pid.is_some_and(|pid| !pg::process_alive(pid)) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

fn sibling(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap().to_os_string();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}
