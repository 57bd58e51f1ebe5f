//! Timing one command for the benchmarks: wall time and peak RSS.
//!
//! Each timed command is started by a small copy of the bench itself (the *shim*, chosen
//! by `SHIM` in its environment): Linux carries the high-water RSS of the process that
//! spawns a command into the command's own peak RSS, and a bench may hold a lot in
//! memory. Every bench's `main` starts with [`shim_if_asked`].
#![allow(dead_code)]

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One timed process: wall time and peak resident set (of the largest process in its
/// tree: wait4 folds the reaped children's peak into the command's).
#[derive(Clone, Copy)]
pub struct Sample {
    pub wall: Duration,
    pub rss_kb: u64,
}

/// Set in the environment of the shim that starts one timed command.
const SHIM: &str = "SCHEMAGATE_BENCH_SHIM";

/// In the shim, runs the command and exits; in the bench itself, returns.
pub fn shim_if_asked() {
    if std::env::var_os(SHIM).is_some() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        shim(&args);
    }
}

/// Runs `command` to completion through the shim; panics with the end of its stderr
/// unless it exits 0.
pub fn time(command: &mut Command) -> Sample {
    try_time(command, &[0]).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `command` through the shim; its sample if it exited with one of `ok`, else
/// what it said on stderr.
pub fn try_time(command: &mut Command, ok: &[i32]) -> Result<Sample, String> {
    let mut shim = Command::new(std::env::current_exe().expect("the bench's own path"));
    shim.env_clear()
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env(SHIM, "1")
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null());
    let out = shim.output().expect("start the shim");
    let report = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<i64> = report
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    match fields[..] {
        [wall_ns, rss_kb, code] if ok.contains(&(code as i32)) => Ok(Sample {
            wall: Duration::from_nanos(wall_ns as u64),
            rss_kb: rss_kb as u64,
        }),
        _ => Err(format!(
            "{command:?} failed ({}):\n{}",
            report.trim(),
            tail(&String::from_utf8_lossy(&out.stderr), 30)
        )),
    }
}

/// The shim: runs the command in its arguments (stdout to /dev/null, stderr passed
/// through), prints its wall time (ns), peak RSS (KB) and exit code.
// The child is reaped by wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn shim(args: &[String]) -> ! {
    let started = Instant::now();
    let child = Command::new(&args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child and is waited for once, here.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(waited, pid, "wait4 failed");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    println!("{} {} {code}", wall.as_nanos(), usage.ru_maxrss);
    std::process::exit(0)
}

/// The median wall time, and the largest peak RSS, of some samples.
pub fn median(samples: &[Sample]) -> Sample {
    let mut walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
    walls.sort();
    Sample {
        wall: walls[walls.len() / 2],
        rss_kb: samples.iter().map(|s| s.rss_kb).max().unwrap_or(0),
    }
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The 1, 5 and 15 minute load averages: on a shared machine the figures mean little
/// without them.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|err| format!("unknown ({err})"))
}
