//! One error type for the whole crate, so `main` can map every failure to exactly one
//! documented exit code (PRODUCT.md section 6) in one place.

use std::fmt;
use std::time::Duration;

/// A problem in one migration file, located as precisely as we can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl FileProblem {
    pub fn new(file: impl Into<String>, line: Option<usize>, message: impl Into<String>) -> Self {
        FileProblem {
            file: file.into(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// A failing statement of a migration, as the server reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFailure {
    pub revision: String,
    pub file: String,
    pub line: Option<usize>,
    pub sqlstate: String,
    pub message: String,
    pub hint: Option<String>,
    /// The down section failed (`down`, `redo`, `reset`).
    pub reverting: bool,
}

/// The signal that interrupted a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),

    #[error("{} invalid migration file{}:\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, list(.0))]
    InvalidFiles(Vec<FileProblem>),

    /// An empty or missing migrations folder where migrations are expected (exit 3).
    #[error("no migrations: {0}")]
    NoMigrations(String),

    #[error("database not reachable after {}: {last} (raise --wait-timeout, or check the host and port)", humantime::format_duration(*.waited))]
    Unreachable { waited: Duration, last: String },

    #[error("database refused the connection: {0}")]
    Refused(String),

    #[error("advisory lock not acquired within {}{}", humantime::format_duration(*.waited), holder.as_deref().map(|h| format!("; held by {h}")).unwrap_or_default())]
    LockTimeout {
        waited: Duration,
        holder: Option<String>,
    },

    #[error("{}", failure_message(.0))]
    MigrationFailed(Box<MigrationFailure>),

    #[error("{}", .0.join("\n"))]
    Conflict(Vec<String>),

    /// `check`: the database is not at head.
    #[error("{0}")]
    Pending(String),

    /// The connection dropped mid-run; `up` reconnects and re-plans on this one.
    #[error("connection to the database lost: {0}")]
    ConnectionLost(String),

    /// The server answered one of schemagate's own statements with an error.
    #[error("database error: {0}")]
    Database(String),

    #[error("interrupted by {}", match .0 { Signal::Interrupt => "SIGINT", Signal::Terminate => "SIGTERM" })]
    Interrupted(Signal),

    #[error("internal error (a bug in schemagate, please report it): {0}")]
    Internal(String),
}

fn list(problems: &[FileProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn failure_message(f: &MigrationFailure) -> String {
    let place = match f.line {
        Some(line) => format!("{}:{}", f.file, line),
        None => f.file.clone(),
    };
    let mut text = format!(
        "{} {} failed and was rolled back: {} (SQLSTATE {}) at {}",
        if f.reverting {
            "reverting migration"
        } else {
            "migration"
        },
        f.revision,
        f.message,
        f.sqlstate,
        place
    );
    if let Some(hint) = &f.hint {
        text.push_str("\nhint: ");
        text.push_str(hint);
    }
    text
}

impl Error {
    /// The process exit code for this error: PRODUCT.md section 6.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Internal(_) => 1,
            Error::Usage(_) => 2,
            Error::InvalidFiles(_) | Error::NoMigrations(_) => 3,
            Error::Unreachable { .. } | Error::ConnectionLost(_) => 4,
            Error::Refused(_) | Error::Database(_) => 5,
            Error::LockTimeout { .. } => 6,
            Error::MigrationFailed(_) => 7,
            Error::Conflict(_) => 8,
            Error::Pending(_) => 9,
            Error::Interrupted(Signal::Interrupt) => 130,
            Error::Interrupted(Signal::Terminate) => 143,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_its_documented_exit_code() {
        let failure = MigrationFailure {
            revision: "1".into(),
            file: "1_a.sql".into(),
            line: Some(3),
            sqlstate: "42P01".into(),
            message: "relation does not exist".into(),
            hint: None,
            reverting: false,
        };
        let cases = [
            (Error::Internal("x".into()), 1),
            (Error::Usage("x".into()), 2),
            (Error::InvalidFiles(vec![]), 3),
            (Error::NoMigrations("x".into()), 3),
            (
                Error::Unreachable {
                    waited: Duration::from_secs(1),
                    last: "x".into(),
                },
                4,
            ),
            (Error::ConnectionLost("x".into()), 4),
            (Error::Refused("x".into()), 5),
            (Error::Database("x".into()), 5),
            (
                Error::LockTimeout {
                    waited: Duration::from_secs(1),
                    holder: None,
                },
                6,
            ),
            (Error::MigrationFailed(Box::new(failure)), 7),
            (Error::Conflict(vec![]), 8),
            (Error::Pending("x".into()), 9),
            (Error::Interrupted(Signal::Interrupt), 130),
            (Error::Interrupted(Signal::Terminate), 143),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error:?}");
        }
    }

    #[test]
    fn migration_failure_names_revision_file_line_and_sqlstate() {
        let error = Error::MigrationFailed(Box::new(MigrationFailure {
            revision: "20250101000000".into(),
            file: "migrations/20250101000000_add.sql".into(),
            line: Some(7),
            sqlstate: "42P01".into(),
            message: "relation \"nope\" does not exist".into(),
            hint: Some("check the table name".into()),
            reverting: false,
        }));
        let text = error.to_string();
        assert!(text.contains("20250101000000"), "{text}");
        assert!(
            text.contains("migrations/20250101000000_add.sql:7"),
            "{text}"
        );
        assert!(text.contains("SQLSTATE 42P01"), "{text}");
        assert!(text.contains("hint: check the table name"), "{text}");
    }

    #[test]
    fn file_problems_are_listed_with_file_and_line() {
        let error = Error::InvalidFiles(vec![
            FileProblem::new("m/1_a.sql", Some(2), "unknown directive"),
            FileProblem::new("m/x.sql", None, "bad name"),
        ]);
        let text = error.to_string();
        assert!(text.starts_with("2 invalid migration files:"), "{text}");
        assert!(text.contains("  m/1_a.sql:2: unknown directive"), "{text}");
        assert!(text.contains("  m/x.sql: bad name"), "{text}");
    }
}
