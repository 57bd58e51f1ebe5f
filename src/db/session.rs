//! One dedicated connection, held from lock to exit.
//!
//! No pool: a session-level advisory lock belongs to a connection, and a pool's recycling
//! would hand that connection back still holding it. Server notices (`RAISE NOTICE` in a
//! migration) are forwarded to the log.
//!
//! schemagate's own statements (`rows`, `execute`, `count`) never wait forever: a table
//! lock on the history table, taken by someone's `LOCK TABLE` or a maintenance job, would
//! otherwise hang a deployment with no word. They are limited by `own_timeout` (the
//! run's `--lock-timeout`), and while one is blocked a second, short-lived connection asks
//! the server who blocks it, so the log names the session to end. Migration SQL is not
//! limited here: it runs as long as it needs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, Client, SimpleQueryMessage};

use crate::db::connection::Connection;
use crate::db::interrupt::Interrupt;
use crate::db::tls;
use crate::error::{Error, Result};

pub struct Session {
    pub client: Client,
    driver: tokio::task::JoinHandle<()>,
    /// Signalled on every `NOTIFY` to a channel this session listens on.
    notified: Arc<Notify>,
    /// The server process serving this session, for questions asked about it from aside.
    pub pid: Option<i32>,
    /// How long one of schemagate's own statements may wait (see the module doc).
    own_timeout: Duration,
    /// For a second connection (who blocks us?) and for cancelling a blocked statement.
    connection: Connection,
    tls: tls::MakeTls,
    /// A signal cancels this session's statement while it is open.
    _watched: crate::db::interrupt::Watched,
}

/// A blocked own statement is first reported after this long, then again this often.
const BLOCKED_REPORT_EVERY: Duration = Duration::from_secs(5);

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
        let watched = interrupt.watch_connection(client.cancel_token(), make_tls.clone());
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
        let mut session = Session {
            client,
            driver,
            notified,
            pid: None,
            own_timeout: crate::text::FOREVER,
            connection: connection.clone(),
            tls: make_tls,
            _watched: watched,
        };
        // A role's short idle_session_timeout (PostgreSQL 14+) would end this session while
        // it waits for the lock, and every reconnection costs the wait budget. The RESET ALL
        // after each migration brings the role's value back, but a runner is idle only
        // before its first migration, never between two. (Not a startup option: PgBouncer
        // refuses those.)
        let setup = "SELECT pg_backend_pid(), \
             (SELECT set_config('idle_session_timeout', '0', false) \
              WHERE current_setting('server_version_num')::int >= 140000)";
        match session.client.simple_query(setup).await {
            Ok(messages) => {
                session.pid = messages.iter().find_map(|m| match m {
                    SimpleQueryMessage::Row(row) => row.get(0).and_then(|p| p.parse().ok()),
                    _ => None,
                })
            }
            Err(e) => return Err(ConnectError::Postgres(e)),
        }
        Ok(session)
    }

    /// The role this session logged in as, for messages that say what to grant it.
    pub fn user(&self) -> &str {
        self.connection
            .config
            .get_user()
            .unwrap_or("the migrating role")
    }

    /// Limits how long each of schemagate's own statements may wait (the run's lock timeout).
    pub fn limit_own_statements(mut self, timeout: Duration) -> Session {
        self.own_timeout = timeout;
        self
    }

    /// Completes at the next `NOTIFY` on a channel this session listens on (or at once if
    /// one came since the last call).
    pub async fn notification(&self) {
        self.notified.notified().await
    }

    /// Runs SQL through the simple-query protocol and returns its rows as text.
    pub async fn rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>> {
        let messages = self.simple_query(sql).await.map_err(classify)?;
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
        self.simple_query(sql).await.map(drop).map_err(classify)
    }

    /// Rows changed by each statement of `sql` that reports a count (INSERT, UPDATE, ...).
    pub async fn counts(&self, sql: &str) -> Result<Vec<u64>> {
        let messages = self.simple_query(sql).await.map_err(classify)?;
        Ok(messages
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::CommandComplete(n) => Some(n),
                _ => None,
            })
            .collect())
    }

    /// One of schemagate's own statements, within `own_timeout`, saying who blocks it.
    pub async fn simple_query(
        &self,
        sql: &str,
    ) -> std::result::Result<Vec<SimpleQueryMessage>, StatementError> {
        let started = Instant::now();
        let work = self.client.simple_query(sql);
        tokio::pin!(work);
        let mut report_at = started + BLOCKED_REPORT_EVERY;
        loop {
            let give_up_at = started + self.own_timeout;
            tokio::select! {
                outcome = &mut work => return outcome.map_err(StatementError::Postgres),
                _ = tokio::time::sleep_until(report_at.min(give_up_at).into()) => {}
            }
            let blockers = self.blockers().await;
            let statement = first_line(sql);
            if Instant::now() >= give_up_at {
                // Cancelled, so the server forgets it; the run ends here anyway.
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    self.client.cancel_token().cancel_query(self.tls.clone()),
                )
                .await;
                return Err(StatementError::Blocked(Error::Blocked {
                    waited: Duration::from_secs(started.elapsed().as_secs()),
                    statement,
                    blockers,
                }));
            }
            tracing::warn!(
                waited_s = started.elapsed().as_secs(),
                "schemagate's own statement `{statement}` is waiting, blocked by {}",
                blockers
                    .as_deref()
                    .unwrap_or("a session that could not be identified")
            );
            report_at += BLOCKED_REPORT_EVERY;
        }
    }

    /// What the server says this session is doing, asked on a second connection: its
    /// wait event (`Lock: relation`, `IO: DataFileRead`; `None` when it is busy on the
    /// CPU) and, when it waits for a lock, who holds it.
    pub async fn activity(&self) -> Option<(Option<String>, Option<String>)> {
        let pid = self.pid?;
        let messages = self
            .ask_aside(&format!(
                "SELECT wait_event_type || ': ' || wait_event FROM pg_stat_activity WHERE pid = {pid}; {}",
                blockers_query(pid)
            ))
            .await?;
        let mut rows = messages.iter().filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        });
        let wait = rows.next().and_then(|row| row.get(0)).map(str::to_string);
        let blockers: Vec<String> = rows.map(describe_blocker).collect();
        Some((wait, (!blockers.is_empty()).then(|| blockers.join("; "))))
    }

    /// "pid 42 (application_name psql, state idle in transaction, for 12 s, query `LOCK ...`)"
    /// for each session blocking this one, asked on a second connection.
    pub async fn blockers(&self) -> Option<String> {
        let rows = self.ask_aside(&blockers_query(self.pid?)).await?;
        let found: Vec<String> = rows
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(describe_blocker(row)),
                _ => None,
            })
            .collect();
        (!found.is_empty()).then(|| found.join("; "))
    }

    /// Runs `sql` on a second, short-lived connection (this one may be blocked), giving up
    /// after a few seconds: the answer only ever goes into a message.
    async fn ask_aside(&self, sql: &str) -> Option<Vec<SimpleQueryMessage>> {
        let aside = async {
            let session = Session::open(&self.connection, &Interrupt::default())
                .await
                .ok()?;
            let messages = session.client.simple_query(sql).await.ok()?;
            session.close().await;
            Some(messages)
        };
        tokio::time::timeout(Duration::from_secs(3), aside)
            .await
            .ok()
            .flatten()
    }

    /// Ends the session cleanly: the server gets a Terminate message, not a reset socket.
    pub async fn close(self) {
        drop(self.client);
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), self.driver).await;
    }
}

/// Who blocks the backend `pid`: each blocking session's pid, application name, state, how
/// long it has been in its transaction (or statement), and its last query.
pub fn blockers_query(pid: i32) -> String {
    format!(
        "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, '?'), \
                coalesce(extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::bigint, 0), \
                left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 200) \
         FROM pg_stat_activity a WHERE a.pid = ANY (pg_blocking_pids({pid})) ORDER BY a.pid"
    )
}

/// One row of `blockers_query`, for a person.
pub fn describe_blocker(row: &tokio_postgres::SimpleQueryRow) -> String {
    let field = |i: usize| row.get(i).unwrap_or("?").to_string();
    format!(
        "pid {} (application_name {}, state {}, for {} s, query `{}`)",
        field(0),
        if field(1).is_empty() {
            "''".to_string()
        } else {
            field(1)
        },
        field(2),
        field(3),
        field(4)
    )
}

/// The first line of a statement, for messages.
pub fn first_line(sql: &str) -> String {
    let line = sql.trim_start().lines().next().unwrap_or_default();
    let mut shown: String = line.chars().take(120).collect();
    if shown.len() < line.len() || sql.trim().lines().nth(1).is_some() {
        shown.push_str(" ...");
    }
    shown
}

/// Why one of schemagate's own statements failed.
#[derive(Debug)]
pub enum StatementError {
    Postgres(tokio_postgres::Error),
    /// Blocked past `own_timeout` (`Error::Blocked`).
    Blocked(Error),
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
pub fn classify(error: impl Into<StatementError>) -> Error {
    let error = match error.into() {
        StatementError::Blocked(blocked) => return blocked,
        StatementError::Postgres(error) => error,
    };
    if is_connection_lost(&error) {
        Error::ConnectionLost(describe(&error))
    } else if let Some(refused) = read_only(&error) {
        refused
    } else {
        Error::Database(describe(&error))
    }
}

impl From<tokio_postgres::Error> for StatementError {
    fn from(error: tokio_postgres::Error) -> Self {
        StatementError::Postgres(error)
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
        // 57P05 and 25P03: ended by idle_session_timeout / idle_in_transaction_session_timeout.
        return matches!(
            db.code().code(),
            "57P01" | "57P02" | "57P03" | "57P05" | "25P03"
        ) || db.code().code().starts_with("08");
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
