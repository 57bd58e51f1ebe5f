//! A real PgBouncer (Debian's `pgbouncer` package) in front of a test cluster, for the
//! lock modes that must work behind a connection pooler.
//!
//! `server_round_robin = 1` makes PgBouncer hand out its idle server connections in turn,
//! so once `warm` has opened several of them, consecutive transactions land on different
//! PostgreSQL backends, as they do behind a busy production pooler.

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::{Cluster, HOST, free_port, pg, unique_dir, watchdog};

const READY_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Bouncer {
    dir: PathBuf,
    port: u16,
    pid: u32,
    watchdog: Option<Child>,
}

/// The pgbouncer binary: on PATH, or where Debian puts it.
fn binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin")]);
    for dir in candidates {
        let path = dir.join("pgbouncer");
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "PgBouncer is needed for these tests and was not found on PATH or in /usr/sbin: \
         install it with `apt-get install pgbouncer`"
    );
}

impl Bouncer {
    /// Starts PgBouncer in `pool_mode` ("transaction" or "session") in front of `cluster`.
    pub fn start(cluster: &Cluster, pool_mode: &str) -> Bouncer {
        Bouncer::start_ignoring(cluster, pool_mode, "extra_float_digits")
    }

    /// As `start`, with PgBouncer's `ignore_startup_parameters` set to `ignored`.
    pub fn start_ignoring(cluster: &Cluster, pool_mode: &str, ignored: &str) -> Bouncer {
        let dir = unique_dir();
        let port = free_port();
        let config = format!(
            "[databases]\n\
             * = host={HOST} port={server}\n\
             [pgbouncer]\n\
             listen_addr = {HOST}\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {users}\n\
             pool_mode = {pool_mode}\n\
             server_round_robin = 1\n\
             default_pool_size = 20\n\
             max_client_conn = 200\n\
             logfile = {log}\n\
             ignore_startup_parameters = {ignored}\n",
            server = cluster.port(),
            users = dir.join("users.txt").display(),
            log = dir.join("pgbouncer.log").display(),
        );
        fs::write(dir.join("pgbouncer.ini"), config).expect("write pgbouncer.ini");
        fs::write(dir.join("users.txt"), "\"postgres\" \"\"\n").expect("write users.txt");
        pg::chown_to_postgres(&dir);

        // PgBouncer refuses to run as root: as the postgres user, like the server.
        let mut cmd = pg::server_command(Path::new("sh"));
        cmd.args(["-c", r#""$@" >/dev/null 2>&1 & echo $!"#, "sh"])
            .arg(binary())
            .arg(dir.join("pgbouncer.ini"));
        let out = pg::run_ok(&mut cmd);
        let pid: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pid of pgbouncer");
        let mut stop = Command::new("kill");
        stop.arg(pid.to_string());
        let bouncer = Bouncer {
            watchdog: Some(watchdog::spawn_with(&dir, &stop)),
            dir,
            port,
            pid,
        };
        bouncer.wait_ready();
        bouncer
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        while TcpStream::connect((HOST, self.port)).is_err() {
            assert!(
                pg::process_alive(self.pid) && Instant::now() < deadline,
                "pgbouncer did not start listening on port {}; its log:\n{}",
                self.port,
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// `postgres://postgres@127.0.0.1:PORT/DB` through PgBouncer.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@{HOST}:{}/{db}", self.port)
    }

    /// Opens `n` server connections to `db` at once, so the pool has that many idle.
    pub fn warm(&self, db: &str, n: usize) {
        let clients: Vec<Child> = (0..n)
            .map(|_| {
                let mut cmd = pg::client_command(&super::pg_bin("psql"));
                cmd.args([
                    "-X",
                    "-q",
                    "-d",
                    &self.url(db),
                    "-c",
                    "SELECT pg_sleep(0.3)",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn psql")
            })
            .collect();
        for mut client in clients {
            let status = client.wait().expect("wait for psql");
            assert!(
                status.success(),
                "psql through pgbouncer failed; log:\n{}",
                self.log()
            );
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("pgbouncer.log")).unwrap_or_default()
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        pg::signal(self.pid, "TERM");
        pg::wait_gone(&[self.pid], Duration::from_secs(5));
        let _ = fs::remove_dir_all(&self.dir);
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = watchdog.kill();
            let _ = watchdog.wait();
        }
    }
}
