//! A spawned run whose stderr is read as it comes, so a test can wait for a log line and
//! send it a signal at the right moment.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::run::{Outcome, Run, finish};

/// Sends `signal` ("TERM", "INT", "KILL") to a process, as an orchestrator would.
pub fn send(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {} failed", child.id());
}

/// A spawned run whose stderr is read as it comes, so a test can wait for a log line.
pub struct Watched {
    child: Child,
    started: Instant,
    stderr: Arc<Mutex<String>>,
    reader: JoinHandle<()>,
}

impl Watched {
    pub fn spawn(run: &mut Run) -> Watched {
        let started = Instant::now();
        let mut child = run.spawn();
        let pipe = child.stderr.take().expect("stderr is piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        Watched {
            child,
            started,
            stderr,
            reader,
        }
    }

    pub fn logged(&self, text: &str) -> bool {
        self.stderr.lock().unwrap().contains(text)
    }

    /// Sends `signal` and returns when it was sent.
    pub fn signal(&self, signal: &str) -> Instant {
        send(&self.child, signal);
        Instant::now()
    }

    pub fn finish(self) -> Outcome {
        let mut outcome = finish(self.child, self.started);
        self.reader.join().expect("stderr reader");
        outcome.stderr = Arc::try_unwrap(self.stderr)
            .expect("reader is done")
            .into_inner()
            .unwrap();
        outcome
    }
}
