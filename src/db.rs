//! One dedicated connection, held from lock to exit.
//!
//! No pool: a session-level advisory lock belongs to a connection, and a pool's recycling
//! would hand that connection back still holding it. Server notices (`RAISE NOTICE` in a
//! migration) are forwarded to the log.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, Client, SimpleQueryMessage};

use crate::config::Connection;
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::tls;

pub struct Session {
    pub client: Client,
    driver: tokio::task::JoinHandle<()>,
    /// Signalled on every `NOTIFY` to a channel this session listens on.
    notified: Arc<Notify>,
}

impl Session {
    /// Opens one connection (no retry: that is `wait`'s job, except for the second
    /// attempt of sslmode prefer and allow, which libpq makes within one connect).
    pub async fn open(
        connection: &Connection,
        interrupt: &Interrupt,
    ) -> std::result::Result<Session, ConnectError> {
        let (make_tls, attempts) = tls::connector(connection).map_err(ConnectError::Setup)?;
        let connect = |mode| {
            let mut config = connection.config.clone();
            config.ssl_mode(mode);
            let make_tls = make_tls.clone();
            async move { config.connect(make_tls).await }
        };
        let connected = match (connect(attempts.first).await, attempts.fallback) {
            (Err(first), Some(fallback)) if tls::worth_second_attempt(&first) => {
                tracing::debug!(
                    "sslmode {:?}: first attempt failed ({}), trying again {}",
                    connection.ssl_mode,
                    describe(&first),
                    if fallback == SslMode::Disable {
                        "without TLS"
                    } else {
                        "with TLS"
                    }
                );
                connect(fallback)
                    .await
                    .map_err(|second| tls::more_telling(first, second))
            }
            (outcome, _) => outcome,
        };
        let (client, mut conn) = connected.map_err(ConnectError::Postgres)?;
        interrupt.watch_connection(client.cancel_token(), make_tls);
        let notified = Arc::new(Notify::new());
        let notify = Arc::clone(&notified);
        let driver = tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notice(n)) => {
                        tracing::info!(target: "postgres", "{}: {}", n.severity(), n.message())
                    }
                    Ok(AsyncMessage::Notification(_)) => notify.notify_one(),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!("connection ended: {e}");
                        break;
                    }
                }
            }
        });
        Ok(Session {
            client,
            driver,
            notified,
        })
    }

    /// Completes at the next `NOTIFY` on a channel this session listens on (or at once if
    /// one came since the last call).
    pub async fn notification(&self) {
        self.notified.notified().await
    }

    /// Runs SQL through the simple-query protocol and returns its rows as text.
    pub async fn rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let messages = self.client.simple_query(sql).await.map_err(classify)?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                ),
                _ => None,
            })
            .collect())
    }

    pub async fn execute(&self, sql: &str) -> Result<()> {
        self.client.batch_execute(sql).await.map_err(classify)
    }

    /// Ends the session cleanly: the server gets a Terminate message, not a reset socket.
    pub async fn close(self) {
        drop(self.client);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.driver).await;
    }
}

/// Why a connection attempt failed.
#[derive(Debug)]
pub enum ConnectError {
    /// Our own configuration could not be turned into a connector (exit 2).
    Setup(Error),
    Postgres(tokio_postgres::Error),
}

/// Turns an error from a statement of schemagate's own into the crate error: a lost
/// connection is `ConnectionLost` (the caller reconnects), a read-only database `Refused`,
/// anything else `Database`.
pub fn classify(error: tokio_postgres::Error) -> Error {
    if is_connection_lost(&error) {
        Error::ConnectionLost(describe(&error))
    } else if let Some(refused) = read_only(&error) {
        refused
    } else {
        Error::Database(describe(&error))
    }
}

/// SQLSTATE 25006: a hot standby, or `default_transaction_read_only`. No migration is at
/// fault, and waiting will not help (exit 5).
pub fn read_only(error: &tokio_postgres::Error) -> Option<Error> {
    let db = error.as_db_error()?;
    (db.code().code() == "25006").then(|| {
        Error::Refused(format!(
            "the database is read-only: {} (SQLSTATE 25006). It is a standby, or \
             default_transaction_read_only is on: point DATABASE_URL at the primary, or turn the setting off",
            db.message()
        ))
    })
}

/// Closed socket, I/O error, or the server going away (shutdown, terminate, crash).
pub fn is_connection_lost(error: &tokio_postgres::Error) -> bool {
    if let Some(db) = error.as_db_error() {
        return matches!(db.code().code(), "57P01" | "57P02" | "57P03")
            || db.code().code().starts_with("08");
    }
    // An InvalidInput I/O error is tokio-postgres refusing to encode our message (a NUL
    // in the SQL): the connection is fine, and reconnecting would only fail the same way.
    error.is_closed()
        || io_error(error).is_some_and(|io| io.kind() != std::io::ErrorKind::InvalidInput)
}

pub fn io_error(error: &tokio_postgres::Error) -> Option<&std::io::Error> {
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = e.source();
    }
    None
}

/// The server's message with its SQLSTATE, or the client error's chain, in one line.
pub fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
}
