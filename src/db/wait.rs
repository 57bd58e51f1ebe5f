//! Waiting for the database: retry what time can fix, fail fast on what it cannot.
//!
//! In a compose stack or a pod the database is often still starting when we are, so
//! refused connections, DNS names that do not resolve yet, `57P03` (starting up) and
//! `53300` (too many connections) are retried with exponential backoff and jitter until
//! the budget is spent (exit 4). A wrong password, a missing role or database, or a TLS
//! failure will not fix themselves: they fail at once (exit 5).

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::db::connection::{Connection, SslMode};
use crate::db::interrupt::Interrupt;
use crate::db::session::{self, ConnectError, Session};
use crate::db::tls;
use crate::error::{Error, Result};
use crate::output::event;

/// The time a run may spend waiting for connections, shared by the first connection and
/// any reconnection after the server went away mid-run.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub remaining: Duration,
    /// Connections made so far; every one after the first is a reconnection.
    connections: u32,
}

impl Budget {
    pub fn new(total: Duration) -> Budget {
        Budget {
            remaining: total,
            connections: 0,
        }
    }
}

/// What each reconnection costs the budget even when it succeeds at once, so a connection
/// that is lost again and again (or an error mistaken for a loss) cannot loop forever.
const RECONNECT_COST: Duration = Duration::from_secs(1);

/// While retrying, people are told every this often that it is still waiting.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// One attempt is never allowed to hang longer than this, so the loop keeps its rhythm.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects, retrying transient failures until the budget runs out.
pub async fn connect(
    connection: &Connection,
    budget: &mut Budget,
    interrupt: &Interrupt,
) -> Result<Session> {
    let target = connection.describe();
    if budget.connections > 0 {
        if budget.remaining.is_zero() {
            return Err(Error::Unreachable {
                waited: Duration::ZERO,
                last: format!(
                    "{target}: the connection was lost {} times and --wait-timeout is used up",
                    budget.connections
                ),
            });
        }
        budget.remaining = budget.remaining.saturating_sub(RECONNECT_COST);
    }
    let started = Instant::now();
    // Durations are cut to config::FOREVER when parsed, so this cannot overflow.
    let deadline = started + budget.remaining;
    // backon's jitter adds up to one more delay: sleeps of 50-100 ms at first, 1-2 s at most.
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(50))
        .with_max_delay(Duration::from_secs(1))
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    let mut attempts = 0u32;
    let mut reported = started;
    loop {
        interrupt.check()?;
        attempts += 1;
        let attempt_timeout = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(100), ATTEMPT_TIMEOUT);
        let outcome =
            tokio::time::timeout(attempt_timeout, Session::open(connection, interrupt)).await;
        let failure = match outcome {
            Ok(Ok(session)) => {
                budget.connections += 1;
                let waited = started.elapsed();
                budget.remaining = budget.remaining.saturating_sub(waited);
                let ready = format!(
                    "database {target} is ready after {} ({})",
                    crate::text::duration(waited),
                    crate::text::plural(attempts as usize, "attempt")
                );
                // After a wait it is news; otherwise only for debugging.
                if attempts > 1 {
                    tracing::info!(
                        event = event::WAIT_READY,
                        attempt = attempts,
                        duration_ms = waited.as_millis() as u64,
                        "{ready}"
                    );
                } else {
                    tracing::debug!(
                        event = event::WAIT_READY,
                        attempt = attempts,
                        duration_ms = waited.as_millis() as u64,
                        "{ready}"
                    );
                }
                return Ok(session);
            }
            Ok(Err(ConnectError::Setup(e))) => return Err(e),
            Ok(Err(ConnectError::Postgres(e))) => match classify(&e, connection) {
                Attempt::Retry(reason) => reason,
                Attempt::GiveUp(error) => return Err(error),
            },
            Err(_) => format!(
                "no answer within {}",
                crate::text::duration(attempt_timeout)
            ),
        };
        // Every retry is an event; people see the first and one every few seconds.
        if attempts == 1 {
            tracing::info!(
                event = event::WAIT_RETRY,
                attempt = attempts,
                error = %failure,
                "waiting for database {target} (up to {}): {failure}",
                crate::text::duration(budget.remaining)
            );
            reported = Instant::now();
        } else if reported.elapsed() >= REPORT_EVERY {
            tracing::info!(
                event = event::WAIT_RETRY,
                attempt = attempts,
                error = %failure,
                "still waiting for database {target} after {} (attempt {attempts}): {failure}",
                crate::text::duration(started.elapsed())
            );
            reported = Instant::now();
        } else {
            tracing::debug!(
                event = event::WAIT_RETRY,
                attempt = attempts,
                error = %failure,
                "database {target} not ready (attempt {attempts}): {failure}"
            );
        }
        let now = Instant::now();
        if now >= deadline {
            let waited = started.elapsed();
            budget.remaining = Duration::ZERO;
            return Err(Error::Unreachable {
                waited: Duration::from_millis(waited.as_millis() as u64),
                last: format!("{target}: {failure}"),
            });
        }
        let delay = delays.next().unwrap_or(Duration::from_secs(1));
        let sleep = delay.min(deadline - now);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            signal = interrupt.wait() => return Err(Error::Interrupted(signal)),
        }
    }
}

enum Attempt {
    Retry(String),
    GiveUp(Error),
}

fn classify(error: &tokio_postgres::Error, connection: &Connection) -> Attempt {
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        let message = format!("{} (SQLSTATE {code})", db.message());
        return match code {
            "57P03" | "53300" | "57P01" | "57P02" => Attempt::Retry(message),
            "28P01" => Attempt::GiveUp(Error::Refused(format!(
                "{message}: check the password in the database URL, PGPASSWORD or the password file"
            ))),
            "3D000" => Attempt::GiveUp(Error::Refused(format!(
                "{message}: create the database first, or fix its name in the database URL"
            ))),
            "28000" => Attempt::GiveUp(Error::Refused(format!(
                "{message}: {}",
                hba_fix(db.message(), connection.ssl_mode)
            ))),
            _ => Attempt::GiveUp(Error::Refused(message)),
        };
    }
    let text = session::describe(error);
    if tls::is_tls_failure(error) {
        return Attempt::GiveUp(Error::Refused(tls::explain(error, connection, &text)));
    }
    if text.contains("password missing") {
        return Attempt::GiveUp(Error::Refused(
            "the server asks for a password and none is configured: put it in the database URL, PGPASSWORD or the password file (PGPASSFILE, ~/.pgpass)".into(),
        ));
    }
    if session::is_connection_lost(error) {
        Attempt::Retry(text)
    } else {
        Attempt::GiveUp(Error::Refused(text))
    }
}

/// What to change after "no pg_hba.conf entry": the server's message ends in how the
/// connection was encrypted, which tells whether sslmode is the problem.
fn hba_fix(message: &str, mode: SslMode) -> &'static str {
    if message.ends_with("no encryption") && mode != SslMode::Prefer && mode != SslMode::Allow {
        "the server accepts this user only over TLS: use sslmode=require (or verify-full with sslrootcert)"
    } else if message.ends_with("SSL encryption") {
        "the server accepts this user only without TLS (hostnossl): use sslmode=prefer or disable, or add a hostssl line to pg_hba.conf"
    } else {
        "check the user name, and that pg_hba.conf lets it in"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reconnections_use_up_the_budget_and_then_stop() {
        let connection = Connection {
            config: "postgres://u@127.0.0.1:1/d".parse().expect("valid url"),
            ssl_mode: SslMode::Prefer,
            ssl_root_cert: None,
        };
        let mut budget = Budget {
            remaining: Duration::ZERO,
            connections: 3,
        };
        let started = Instant::now();
        let error = connect(&connection, &mut budget, &Interrupt::default())
            .await
            .err()
            .expect("no budget left");
        assert_eq!(error.exit_code(), 4);
        assert!(error.to_string().contains("lost 3 times"), "{error}");
        assert!(started.elapsed() < Duration::from_millis(500));
    }
}
