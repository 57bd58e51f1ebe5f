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

/// Replaces every occurrence of `secret` with `***`.
pub fn redact(text: &str, secret: Option<&str>) -> String {
    match secret {
        Some(s) if s.len() >= MIN_REDACTED_LEN => text.replace(s, "***"),
        _ => text.to_string(),
    }
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
}
