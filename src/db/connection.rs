//! Everything needed to open a connection, as the command line and libpq's environment
//! settle it: the driver's config plus the TLS choices tokio-postgres does not keep.

use std::path::PathBuf;
use std::str::FromStr;

/// How to use TLS, as libpq's `sslmode` means it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = String;
    fn from_str(text: &str) -> std::result::Result<Self, String> {
        Ok(match text {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }
}

/// Everything needed to open a connection.
#[derive(Clone)]
pub struct Connection {
    pub config: tokio_postgres::Config,
    pub ssl_mode: SslMode,
    pub ssl_root_cert: Option<PathBuf>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.describe())
    }
}

impl Connection {
    /// `user@host:port/db`: what messages say, never with the password.
    /// Every host with its port (`u@h1:5432,h2:5433/db`): tokio-postgres tries them in
    /// turn, and a log line must name the one that failed among them.
    pub fn describe(&self) -> String {
        format!(
            "{}@{}",
            self.config.get_user().unwrap_or("?"),
            self.address()
        )
    }

    /// `host:port/db`: where the database is, whoever logs in (a fleet target's identity).
    pub fn address(&self) -> String {
        let ports = self.config.get_ports();
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let host = match host {
                    tokio_postgres::config::Host::Tcp(h) if h.contains(':') => format!("[{h}]"),
                    tokio_postgres::config::Host::Tcp(h) => h.clone(),
                    #[cfg(unix)]
                    tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
                };
                // One port for every host, or one each, as tokio-postgres reads them.
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                format!("{host}:{port}")
            })
            .collect();
        let hosts = if hosts.is_empty() {
            "localhost:5432".to_string()
        } else {
            hosts.join(",")
        };
        format!("{hosts}/{}", self.config.get_dbname().unwrap_or("?"))
    }

    pub fn password(&self) -> Option<String> {
        self.config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }
}
