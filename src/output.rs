//! Logs on stderr (text or one JSON object per line); command output goes to stdout.
//!
//! Every log line passes through a redactor that replaces the database password, as a
//! last line of defence: messages are written never to contain it, and this makes sure.

use std::io::{IsTerminal, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::LogFormat;
use crate::error::{Error, Result};

/// Passwords shorter than this are too likely to be ordinary words to blank out.
const MIN_REDACTED_LEN: usize = 4;

pub fn init(format: LogFormat, filter: &str, secret: Option<String>) -> Result<()> {
    let filter = EnvFilter::try_new(filter).map_err(|e| {
        Error::Usage(format!(
            "--log-level / SCHEMAGATE_LOG `{filter}` is not a log filter ({e}); try info or debug"
        ))
    })?;
    let writer = Redacting {
        secret: secret.filter(|s| s.len() >= MIN_REDACTED_LEN),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    let installed = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|e| Error::Internal(format!("logging: {e}")))
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
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::BrokenPipe => Error::StdoutClosed,
            _ => Error::Stdout(e.to_string()),
        })
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
struct Redacting {
    secret: Option<String>,
}

/// Collects one event and writes it, redacted, when dropped.
struct EventBuffer<'a> {
    secret: Option<&'a str>,
    buffer: Vec<u8>,
}

impl<'a> MakeWriter<'a> for Redacting {
    type Writer = EventBuffer<'a>;
    fn make_writer(&'a self) -> Self::Writer {
        EventBuffer {
            secret: self.secret.as_deref(),
            buffer: Vec::with_capacity(256),
        }
    }
}

impl Write for EventBuffer<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer<'_> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buffer);
        let _ = std::io::stderr().write_all(redact(&text, self.secret).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
