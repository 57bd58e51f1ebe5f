//! Running the built `schemagate` binary the way a container would, and a throwaway
//! migrations folder to run it on.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    fn from_output(output: Output, elapsed: Duration) -> Outcome {
        use std::os::unix::process::ExitStatusExt;
        let code = output
            .status
            .code()
            .unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0));
        Outcome {
            code,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            elapsed,
        }
    }

    /// Panics with everything printed unless the exit code is `code`.
    #[track_caller]
    pub fn expect(&self, code: i32) -> &Outcome {
        assert_eq!(
            self.code, code,
            "expected exit {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Outcome {
        assert!(
            self.stderr.contains(text),
            "stderr lacks {text:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }

    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Outcome {
        assert!(
            self.stdout.contains(text),
            "stdout lacks {text:?}\n--- stdout\n{}",
            self.stdout
        );
        self
    }
}

/// A `schemagate` command line under construction. The process environment is cleared,
/// so nothing from the machine running the tests leaks in.
pub struct Run {
    command: Command,
}

impl Run {
    pub fn new(args: &[&str]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_schemagate"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        command.args(args);
        Run { command }
    }

    /// `up` (or any command) against `url` with migrations from `folder`.
    pub fn on(url: &str, folder: &Folder, args: &[&str]) -> Run {
        let mut run = Run::new(args);
        run.env("DATABASE_URL", url).env(
            "SCHEMAGATE_MIGRATIONS",
            folder.path().to_str().expect("utf-8 path"),
        );
        run
    }

    pub fn env(&mut self, key: &str, value: &str) -> &mut Run {
        self.command.env(key, value);
        self
    }

    pub fn arg(&mut self, arg: &str) -> &mut Run {
        self.command.arg(arg);
        self
    }

    /// Runs to completion (at most two minutes).
    pub fn run(&mut self) -> Outcome {
        let started = Instant::now();
        let child = self.spawn();
        let output = wait_with_timeout(child, Duration::from_secs(120));
        Outcome::from_output(output, started.elapsed())
    }

    pub fn spawn(&mut self) -> Child {
        self.command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the schemagate binary starts")
    }
}

/// Waits for a spawned run, killing it after `limit`.
pub fn wait_with_timeout(mut child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!(
                "schemagate still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Collects a spawned run's outcome.
pub fn finish(child: Child, started: Instant) -> Outcome {
    let output = wait_with_timeout(child, Duration::from_secs(120));
    Outcome::from_output(output, started.elapsed())
}

/// A temporary migrations folder, removed on drop.
pub struct Folder {
    path: PathBuf,
}

impl Folder {
    pub fn new() -> Folder {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "schemagate-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create migrations folder");
        Folder { path }
    }

    /// A folder holding `files` (name, content).
    pub fn with(files: &[(&str, &str)]) -> Folder {
        let folder = Folder::new();
        for (name, content) in files {
            folder.write(name, content);
        }
        folder
    }

    /// A copy of the repository's example `migrations/` folder.
    pub fn example() -> Folder {
        let folder = Folder::new();
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        for entry in fs::read_dir(&example).expect("read migrations/") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .expect("utf-8 name");
            folder.write(name, &fs::read_to_string(&path).expect("read migration"));
        }
        folder
    }

    /// The file names in the folder, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.path)
            .expect("read folder")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    pub fn read(&self, name: &str) -> String {
        fs::read_to_string(self.path.join(name)).expect("read migration")
    }

    pub fn write(&self, name: &str, content: &str) -> &Folder {
        fs::write(self.path.join(name), content).expect("write migration");
        self
    }

    pub fn remove(&self, name: &str) -> &Folder {
        fs::remove_file(self.path.join(name)).expect("remove migration");
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of a file, as schemagate prints it.
    pub fn shown(&self, name: &str) -> String {
        self.path.join(name).display().to_string()
    }
}

impl Default for Folder {
    fn default() -> Self {
        Folder::new()
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}
