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
    /// What of the migration is left in the database.
    pub outcome: Outcome,
}

/// What a failed migration left behind, said as it is: a `transaction:false` section is
/// never "rolled back".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its transaction was rolled back: nothing of it remains.
    RolledBack,
    /// `transaction:false`: nothing of it had been committed when it stopped.
    NothingCommitted,
    /// `transaction:false`: the statements before this file line were committed.
    PartWay(usize),
    /// It ended schemagate's transaction itself, so part of it may have been committed.
    EndedEarly,
}

/// The signal that interrupted a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Interrupt,
    Terminate,
    /// SIGHUP: a closed terminal or a supervisor's stop, handled as SIGTERM.
    Hangup,
    /// SIGQUIT: handled as SIGTERM (no core dump: the lock and transaction come first).
    Quit,
}

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::Interrupt => "SIGINT",
            Signal::Terminate => "SIGTERM",
            Signal::Hangup => "SIGHUP",
            Signal::Quit => "SIGQUIT",
        }
    }

    /// The exit code of a process ended by this signal: 128 + its number.
    pub fn exit_code(self) -> i32 {
        128 + match self {
            Signal::Hangup => 1,
            Signal::Interrupt => 2,
            Signal::Quit => 3,
            Signal::Terminate => 15,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),

    #[error("{} invalid migration file{}:\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, list(.0))]
    InvalidFiles(Vec<FileProblem>),

    /// A schema file (`schema.sql`) that cannot be read or fails on a scratch database.
    #[error("{} invalid schema file{}:\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, list(.0))]
    InvalidSchema(Vec<FileProblem>),

    /// An empty or missing migrations folder where migrations are expected (exit 3).
    #[error("no migrations: {0}")]
    NoMigrations(String),

    #[error("database not reachable after {}: {last} (raise --wait-timeout, or check the host and port)", crate::text::duration(*.waited))]
    Unreachable { waited: Duration, last: String },

    #[error("database refused the connection: {0}")]
    Refused(String),

    #[error("advisory lock not acquired within {}{}", crate::text::duration(*.waited), holder.as_deref().map(|h| format!("; held by {h}")).unwrap_or_default())]
    LockTimeout {
        waited: Duration,
        holder: Option<String>,
    },

    /// One of schemagate's own statements waited past --lock-timeout for a table lock.
    #[error("schemagate's own statement `{statement}` waited {} for a lock{}: end that session, or raise --lock-timeout", crate::text::duration(*.waited), blockers.as_deref().map(|b| format!(", blocked by {b}")).unwrap_or_default())]
    Blocked {
        waited: Duration,
        statement: String,
        blockers: Option<String>,
    },

    #[error("{}", failure_message(.0))]
    MigrationFailed(Box<MigrationFailure>),

    #[error("{}", .0.join("\n"))]
    Conflict(Vec<String>),

    /// `check`: the database is not at head.
    #[error("{0}")]
    Pending(String),

    /// `check --against-schema` / `check --drift`: the two schemas differ (exit 10), or
    /// autogenerate met a difference it cannot write.
    #[error("{0}")]
    SchemaDiffers(String),

    /// `lint`: what the migrations do to existing objects needs a look (exit 11); the
    /// findings are on stdout.
    #[error("{0}")]
    LintFindings(String),

    /// A fleet in which some target did not succeed: the most severe target's exit code
    /// (PRODUCT.md section 12), with what the results and the summary said.
    #[error("{message}")]
    Fleet { code: i32, message: String },

    /// A generated migration did not reproduce the schema on a scratch database: a
    /// limit of schemagate's, never written to a file.
    #[error("autogenerate's self-check failed (please report it with the schema): {0}")]
    SelfCheck(String),

    /// The connection dropped mid-run; `up` reconnects and re-plans on this one.
    #[error("connection to the database lost: {0}")]
    ConnectionLost(String),

    /// The server answered one of schemagate's own statements with an error.
    #[error("database error: {0}")]
    Database(String),

    #[error("interrupted by {}", .0.name())]
    Interrupted(Signal),

    /// Interrupted in a `transaction:false` section: `detail` says what was committed.
    #[error("{}: {detail}", Error::Interrupted(*.signal))]
    Stopped { signal: Signal, detail: String },

    /// Standard output was closed by its reader (`| head`): the command ends quietly.
    #[error("standard output closed by its reader")]
    StdoutClosed,

    /// Standard output cannot be written (a full disk): exit 1.
    #[error("cannot write to standard output: {0}")]
    Stdout(String),

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
    let what = if f.reverting {
        "reverting migration"
    } else {
        "migration"
    };
    let outcome = match f.outcome {
        Outcome::RolledBack => "failed and was rolled back".to_string(),
        Outcome::NothingCommitted => "failed before any of it was committed".to_string(),
        Outcome::PartWay(line) => {
            format!("stopped part-way; the statements before line {line} were committed")
        }
        Outcome::EndedEarly => "ended schemagate's transaction itself (a COMMIT, ROLLBACK or END \
             that validation did not find), so part of it may have been committed"
            .to_string(),
    };
    let sqlstate = if f.sqlstate.is_empty() {
        String::new()
    } else {
        format!(" (SQLSTATE {})", f.sqlstate)
    };
    let mut text = format!(
        "{what} {} {outcome}: {}{sqlstate} at {place}",
        f.revision, f.message,
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
            Error::StdoutClosed => 0,
            Error::Internal(_) | Error::Stdout(_) | Error::SelfCheck(_) => 1,
            Error::Usage(_) => 2,
            Error::InvalidFiles(_) | Error::InvalidSchema(_) | Error::NoMigrations(_) => 3,
            Error::Unreachable { .. } | Error::ConnectionLost(_) => 4,
            Error::Refused(_) | Error::Database(_) => 5,
            Error::LockTimeout { .. } | Error::Blocked { .. } => 6,
            Error::MigrationFailed(_) => 7,
            Error::Conflict(_) => 8,
            Error::Pending(_) => 9,
            Error::SchemaDiffers(_) => 10,
            Error::LintFindings(_) => 11,
            Error::Fleet { code, .. } => *code,
            Error::Interrupted(signal) | Error::Stopped { signal, .. } => signal.exit_code(),
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
            outcome: Outcome::RolledBack,
        };
        let cases = [
            (Error::Internal("x".into()), 1),
            (Error::Usage("x".into()), 2),
            (Error::InvalidFiles(vec![]), 3),
            (Error::InvalidSchema(vec![]), 3),
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
            (Error::SchemaDiffers("x".into()), 10),
            (Error::LintFindings("x".into()), 11),
            (
                Error::Fleet {
                    code: 7,
                    message: "x".into(),
                },
                7,
            ),
            (Error::SelfCheck("x".into()), 1),
            (Error::Interrupted(Signal::Interrupt), 130),
            (Error::Interrupted(Signal::Terminate), 143),
            (Error::Interrupted(Signal::Hangup), 129),
            (Error::Interrupted(Signal::Quit), 131),
            (Error::StdoutClosed, 0),
            (Error::Stdout("x".into()), 1),
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
            outcome: Outcome::RolledBack,
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
