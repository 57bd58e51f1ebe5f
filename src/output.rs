//! Logs on stderr (text or one JSON object per line); command output goes to stdout.
//!
//! Every log line passes through a redactor that replaces the database password, as a
//! last line of defence: messages are written never to contain it, and this makes sure.
//!
//! Log lines that mark a step of a run carry an `event` field from [`event`], the
//! vocabulary machines read (`--log-format json`); people read the message.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

use clap::ValueEnum;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The `event` field of log lines: a stable interface (README, "Logs for machines").
/// Add names here, never change one. Each is listed with the fields its lines carry;
/// in JSON, numbers are numbers (`duration_ms`, `attempt`, `index`, `total`, `line`,
/// `exit_code`, `applied`, `reverted`, `delay_ms`), everything else a string.
///
/// Log them as `tracing::info!(event = event::LOCK_ACQUIRED, duration_ms, "...")`.
pub mod event {
    /// A connection attempt failed with what time can fix: `attempt`, `error`.
    /// The first at info, later ones at debug (every 5 s at info).
    pub const WAIT_RETRY: &str = "wait.retry";
    /// Connected after retries: `attempt`, `duration_ms`.
    pub const WAIT_READY: &str = "wait.ready";
    /// `--wait-timeout` ran out (exit 4): `duration_ms`, `error`.
    pub const WAIT_TIMEOUT: &str = "wait.timeout";
    /// The server refused for good: wrong password, no database, TLS (exit 5): `error`.
    pub const CONNECTION_REFUSED: &str = "connection.refused";
    /// Another runner holds the lock: `holder`, `duration_ms` (waited so far).
    pub const LOCK_WAITING: &str = "lock.waiting";
    /// The advisory lock is held: `duration_ms` (the wait for it), `key` (a string:
    /// a bigint is past what JSON readers hold exactly).
    pub const LOCK_ACQUIRED: &str = "lock.acquired";
    /// A replaced runner's last statement, waited for before working, is done:
    /// `duration_ms`.
    pub const LOCK_DRAINED: &str = "lock.drained";
    /// The advisory lock was let go at the end of the work.
    pub const LOCK_RELEASED: &str = "lock.released";
    /// `--lock-timeout` ran out (exit 6): `duration_ms`, `holder`.
    pub const LOCK_TIMEOUT: &str = "lock.timeout";
    /// One of schemagate's own statements waited past `--lock-timeout` (exit 6):
    /// `duration_ms`, `blocker`.
    pub const STATEMENT_BLOCKED: &str = "statement.blocked";
    /// A migration starts: `revision`, `file`, `index` (1-based), `total`.
    pub const MIGRATION_APPLYING: &str = "migration.applying";
    /// A migration committed: `revision`, `file`, `duration_ms`.
    pub const MIGRATION_APPLIED: &str = "migration.applied";
    /// A migration's down section committed: `revision`, `file`, `duration_ms`.
    pub const MIGRATION_REVERTED: &str = "migration.reverted";
    /// Heartbeat of a long statement: `revision`, `file`, `duration_ms`, `wait_event`,
    /// `blocker`.
    pub const MIGRATION_RUNNING: &str = "migration.running";
    /// A migration statement waited past `--ddl-lock-timeout` for a lock: it was rolled
    /// back and is tried after a backoff (warn): `attempt`, `duration_ms` (since the
    /// step's first timeout), `delay_ms` (the backoff), `blocker`.
    pub const MIGRATION_LOCK_RETRY: &str = "migration.lock_retry";
    /// A migration failed (exit 7): `revision`, `file`, `line`, `sqlstate`.
    pub const MIGRATION_FAILED: &str = "migration.failed";
    /// The files are invalid (exit 3); `file` and `line` when there is one problem.
    pub const FILES_INVALID: &str = "files.invalid";
    /// The database's history and the files disagree (exit 8).
    pub const STATE_CONFLICT: &str = "state.conflict";
    /// `check`: migrations are pending (exit 9).
    pub const CHECK_PENDING: &str = "check.pending";
    /// A signal stopped the run (exit 129/130/131/143).
    pub const RUN_INTERRUPTED: &str = "run.interrupted";
    /// Any other failure: usage (exit 2), database errors, internal errors.
    pub const RUN_FAILED: &str = "run.failed";
    /// `up --exec`: the process becomes `program`; `exec.failed` (exit 2) if it cannot.
    pub const EXEC: &str = "exec";
    pub const EXEC_FAILED: &str = "exec.failed";
    /// A fleet target finished, in its span (`span.target`): `outcome`, `exit_code`,
    /// `applied`, `duration_ms`. A success at info, a failure as a warning.
    pub const FLEET_TARGET: &str = "fleet.target";
    /// A fleet finished: `targets`, `failed`, `skipped`, `exit_code`, `duration_ms`.
    pub const FLEET_FINISHED: &str = "fleet.finished";
    /// The last line of every run that got as far as logging: `exit_code`,
    /// `duration_ms`, `applied`, `reverted` (the `migration.applied` and
    /// `migration.reverted` lines of this run, so they agree even after a failure).
    pub const RUN_FINISHED: &str = "run.finished";

    /// Every name, for tests and the README table.
    pub const ALL: &[&str] = &[
        WAIT_RETRY,
        WAIT_READY,
        WAIT_TIMEOUT,
        CONNECTION_REFUSED,
        LOCK_WAITING,
        LOCK_ACQUIRED,
        LOCK_DRAINED,
        LOCK_RELEASED,
        LOCK_TIMEOUT,
        STATEMENT_BLOCKED,
        MIGRATION_APPLYING,
        MIGRATION_APPLIED,
        MIGRATION_REVERTED,
        MIGRATION_RUNNING,
        MIGRATION_LOCK_RETRY,
        MIGRATION_FAILED,
        FILES_INVALID,
        STATE_CONFLICT,
        CHECK_PENDING,
        RUN_INTERRUPTED,
        RUN_FAILED,
        EXEC,
        EXEC_FAILED,
        FLEET_TARGET,
        FLEET_FINISHED,
        RUN_FINISHED,
    ];
}

/// Passwords shorter than this are too likely to be ordinary words to blank out.
const MIN_REDACTED_LEN: usize = 4;

/// Whether text logs are coloured, as no-color.org and bixense.com/clicolors say:
/// a non-empty `NO_COLOR` never, a `CLICOLOR_FORCE` other than `0` always, `CLICOLOR=0`
/// never, otherwise only on a terminal (not a dumb one).
pub fn color(terminal: bool, env: crate::env::Env<'_>) -> bool {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if set("NO_COLOR").is_some() {
        return false;
    }
    if set("CLICOLOR_FORCE").is_some_and(|v| v != "0") {
        return true;
    }
    if set("CLICOLOR").is_some_and(|v| v == "0") || set("TERM").as_deref() == Some("dumb") {
        return false;
    }
    terminal
}

/// Whether stderr is a terminal, for [`color`].
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// The span a fleet runs each target in (`tracing::info_span!(output::TARGET_SPAN, target = ..)`):
/// JSON lines carry it as `span.target`; text lines show only its warnings and errors,
/// since the target's result line says the rest, unless the log level is debug or finer.
pub const TARGET_SPAN: &str = "target";

pub fn init(format: LogFormat, filter: &str, secret: Option<String>, color: bool) -> Result<()> {
    let filter = EnvFilter::try_new(filter).map_err(|e| {
        Error::Usage(format!(
            "--log-level / SCHEMAGATE_LOG `{filter}` is not a log filter ({e}); try info or debug"
        ))
    })?;
    if let Some(secret) = secret {
        add_secret(&secret);
    }
    let writer = Redacting;
    let verbose = filter
        .max_level_hint()
        .is_some_and(|level| level >= LevelFilter::DEBUG);
    let quiet_targets = tracing_subscriber::filter::DynFilterFn::new(
        move |meta: &tracing::Metadata<'_>, cx: &Context<'_, Registry>| {
            verbose
                || !meta.is_event()
                || *meta.level() <= tracing::Level::WARN
                || !cx
                    .lookup_current()
                    .is_some_and(|span| span.scope().any(|s| s.name() == TARGET_SPAN))
        },
    );
    let lines: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_target(false)
            .with_ansi(color)
            .fmt_fields(TextFields)
            .with_filter(quiet_targets)
            .boxed(),
        // Flat: the event's fields beside timestamp, level and message (and, in a fleet,
        // the target's span).
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .with_target(false)
            .with_ansi(false)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        // Counts whatever the log filter shows.
        .with(Tally.with_filter(LevelFilter::INFO))
        .try_init()
        .map_err(|e| Error::Internal(format!("logging: {e}")))
}

static APPLIED: AtomicU64 = AtomicU64::new(0);
static REVERTED: AtomicU64 = AtomicU64::new(0);

/// Migrations applied and reverted so far in this run, as its `migration.applied` and
/// `migration.reverted` lines said: what `run.finished` reports, however the run ended.
pub fn tally() -> (u64, u64) {
    (
        APPLIED.load(Ordering::Relaxed),
        REVERTED.load(Ordering::Relaxed),
    )
}

/// Counts the `migration.applied` / `migration.reverted` events, at whatever log level
/// the lines themselves are shown.
struct Tally;

impl<S: tracing::Subscriber> Layer<S> for Tally {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut name = EventName(None);
        event.record(&mut name);
        let counter = match name.0.as_deref() {
            Some(event::MIGRATION_APPLIED) => &APPLIED,
            Some(event::MIGRATION_REVERTED) => &REVERTED,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

struct EventName(Option<String>);

impl Visit for EventName {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "event" {
            self.0 = Some(value.to_string());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "event" {
            self.0 = Some(format!("{value:?}").trim_matches('"').to_string());
        }
    }
}

/// Text lines: the message, then `key=value` fields; `event` is left to JSON, as the
/// message already says it to a person.
struct TextFields;

impl<'w> FormatFields<'w> for TextFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'w>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = TextVisitor {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct TextVisitor<'a, 'w> {
    writer: &'a mut Writer<'w>,
    first: bool,
    result: std::fmt::Result,
}

impl Visit for TextVisitor<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if self.result.is_err() || field.name() == "event" {
            return;
        }
        let space = if self.first { "" } else { " " };
        self.first = false;
        self.result = match field.name() {
            "message" => write!(self.writer, "{space}{value:?}"),
            name => write!(self.writer, "{space}{name}={value:?}"),
        };
    }
}

/// Every password known to this run: the configured database's and each fleet target's.
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Adds a password to what every log line, result line and report is cleared of.
pub fn add_secret(secret: &str) {
    if secret.len() < MIN_REDACTED_LEN {
        return;
    }
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    if !secrets.iter().any(|s| s == secret) {
        secrets.push(secret.to_string());
    }
}

/// `text` with every known password replaced (see [`add_secret`]).
pub fn redact_known(text: &str) -> String {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    secrets
        .iter()
        .fold(text.to_string(), |text, s| redact(&text, Some(s)))
}

/// Replaces every occurrence of `secret` with `***`: as it is, and as JSON logs and URLs
/// escape it (a server message quoting it comes out as `\"pa\\ss\"` in a JSON line).
pub fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if s.len() >= MIN_REDACTED_LEN => {
            let mut text = text.to_string();
            for form in [s.to_string(), json_escaped(s), percent_encoded(s)] {
                text = text.replace(&form, "***");
            }
            text
        }
        _ => text.to_string(),
    }
}

/// `text` inside a JSON string, escaped as serde_json (and so tracing's JSON) writes it.
fn json_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `text` as a URL writes it, every byte but the unreserved ones as `%XX`.
pub fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Writes command output to stdout: the only way commands print, so that no write can
/// panic as `print!` does. A reader that went away (`| head`) is `StdoutClosed`, which
/// ends the command quietly with exit 0; any other failure (a full disk) is exit 1.
pub fn print(text: &str) -> Result<()> {
    let write = || {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes()).and_then(|()| out.flush())
    };
    suspending_progress(write).map_err(|e| match e.kind() {
        std::io::ErrorKind::BrokenPipe => Error::StdoutClosed,
        _ => Error::Stdout(e.to_string()),
    })
}

/// The progress line on stderr while a fleet runs, if stderr is a terminal.
static PROGRESS: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Shows `bar` as the progress line: cleared around every log and output line, so they
/// never land in the middle of it. `None` takes it away.
pub fn set_progress(bar: Option<indicatif::ProgressBar>) {
    let mut shown = PROGRESS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(old) = shown.take() {
        old.finish_and_clear();
    }
    *shown = bar;
}

/// Runs `write` with the progress line (if any) cleared, and draws it again after.
fn suspending_progress<T>(write: impl FnOnce() -> T) -> T {
    let shown = PROGRESS.lock().unwrap_or_else(|e| e.into_inner());
    match shown.as_ref() {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// `print` with a newline.
pub fn print_line(text: &str) -> Result<()> {
    print(&format!("{text}\n"))
}

/// Writes to stderr outside logging (before it starts, the panic hook), ignoring a closed
/// or full stderr: there is nowhere left to report that, and it must not panic.
pub fn print_error(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

#[derive(Clone)]
struct Redacting;

/// Collects one event and writes it, redacted, when dropped.
struct EventBuffer {
    buffer: Vec<u8>,
}

impl<'a> MakeWriter<'a> for Redacting {
    type Writer = EventBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        EventBuffer {
            buffer: Vec::with_capacity(256),
        }
    }
}

impl Write for EventBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        let text = redact_known(&String::from_utf8_lossy(&self.buffer));
        suspending_progress(|| {
            let _ = std::io::stderr().write_all(text.as_bytes());
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_as_no_color_org_says() {
        let with = |vars: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(color(true, &with(&[])));
        assert!(!color(false, &with(&[])));
        assert!(!color(true, &with(&[("NO_COLOR", "1")])));
        assert!(color(true, &with(&[("NO_COLOR", "")])));
        assert!(color(false, &with(&[("CLICOLOR_FORCE", "1")])));
        assert!(!color(false, &with(&[("CLICOLOR_FORCE", "0")])));
        assert!(!color(
            false,
            &with(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "x")])
        ));
        assert!(!color(true, &with(&[("CLICOLOR", "0")])));
        assert!(!color(true, &with(&[("TERM", "dumb")])));
        assert!(color(
            false,
            &with(&[("CLICOLOR_FORCE", "yes"), ("TERM", "dumb")])
        ));
    }

    #[test]
    fn event_names_are_unique_and_dotted() {
        let mut seen = std::collections::HashSet::new();
        for name in event::ALL {
            assert!(seen.insert(name), "{name} twice");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'),
                "{name}"
            );
        }
    }

    #[test]
    fn redacts_long_enough_secrets_only() {
        assert_eq!(
            redact("url with hunter2 inside", Some("hunter2")),
            "url with *** inside"
        );
        assert_eq!(redact("a b c", Some("b")), "a b c");
        assert_eq!(redact("nothing", None), "nothing");
    }

    #[test]
    fn redacts_escaped_copies_too() {
        let secret = Some("pa\"ss\\wd/1\n");
        // As a JSON log line quotes it.
        assert_eq!(
            redact(r#"{"message":"bad: \"pa\"ss\\wd/1\n\""}"#, secret),
            r#"{"message":"bad: \"***\""}"#
        );
        // As a URL writes it.
        assert_eq!(
            redact("postgres://u:pa%22ss%5Cwd%2F1%0A@h/d", secret),
            "postgres://u:***@h/d"
        );
        assert_eq!(redact("raw pa\"ss\\wd/1\n end", secret), "raw *** end");
    }

    #[test]
    fn a_panic_message_is_redacted() {
        // What the panic hook in main.rs prints goes through the same function.
        let secret = Some("hunter2-secret");
        let message = "panicked at src/x.rs:1:1:\nbad URL postgres://u:hunter2-secret@h/d";
        assert!(!redact(message, secret).contains("hunter2"));
    }
}
