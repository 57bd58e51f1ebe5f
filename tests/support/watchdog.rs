//! Cleanup that survives the test process. Drop does not run for statics
//! (the shared cluster) nor for a process that is killed or aborts, so every
//! cluster gets a small shell loop that outlives us and cleans up after us.

use super::pg::{self, PgBins};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{self, Child, Command, Stdio};

/// Waits for process $1 to be gone (a zombie counts as gone), then runs the
/// stop command in "$@" and removes directory $2.
const SCRIPT: &str = r#"
pid=$1 dir=$2
shift 2
alive() {
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || return 1
    case $state in Z*|X*|'') return 1 ;; esac
}
while alive; do sleep 1; done
"$@" >/dev/null 2>&1
rm -rf "$dir"
"#;

/// Starts the watchdog for a cluster living in `dir` with data in `data`.
/// The caller kills it once it has cleaned up by itself.
pub fn spawn(dir: &Path, data: &Path) -> Child {
    let pg_ctl = PgBins::get().path("pg_ctl");
    let mut stop = pg::server_command(&pg_ctl);
    stop.arg("stop")
        .arg("-D")
        .arg(data)
        .args(["-m", "immediate", "-w"]);
    spawn_with(dir, &stop)
}

/// A watchdog that runs `stop` and removes `dir` once this process is gone.
pub fn spawn_with(dir: &Path, stop: &Command) -> Child {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", SCRIPT, "sh"])
        .arg(process::id().to_string())
        .arg(dir)
        .arg(stop.get_program())
        .args(stop.get_args())
        .env_clear()
        .envs(std::env::var_os("PATH").map(|path| ("PATH", path)))
        .current_dir("/")
        // No inherited pipes (cargo would wait for them to close), and its
        // own process group so a Ctrl-C aimed at the tests does not reach it.
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    cmd.spawn()
        .unwrap_or_else(|err| panic!("cannot spawn the cluster watchdog: {err}"))
}
