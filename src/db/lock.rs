//! The advisory lock that makes any number of concurrent runners safe, in three modes.
//!
//! - `session` (default): `pg_advisory_lock` on the very connection that applies the
//!   migrations, so it lives exactly as long as that connection: a runner that dies, is
//!   killed or loses its network frees it, and no pool can hand it on.
//! - `transaction`: `pg_advisory_xact_lock` in a transaction held open on a second
//!   connection for the whole run. It is what works behind a transaction-pooling proxy
//!   (PgBouncer `pool_mode = transaction`): an open transaction pins one server
//!   connection, and when the runner dies the proxy closes that server connection, which
//!   frees the lock. A session lock there would be left on a pooled server connection,
//!   blocking every later run until the proxy recycles it (an hour by default). Both
//!   modes use the same key, so runners in either mode exclude each other.
//!   The lock's backend is not the one that works, so a killed runner frees the lock
//!   while its last batch may still be running on the server (a backend notices a lost
//!   client only when it next talks to it). So each batch also takes a shared lock on
//!   the key's two-int form, and a new holder waits for that one before it starts.
//! - `none`: no lock, with a loud warning.
//!
//! A session lock behind transaction pooling cannot always be detected (an idle pool may
//! hand back the same server connection every time), but what can be is: the lock is only
//! taken if the statement runs on the backend the previous one ran on, that is checked
//! again after locking, and the unlock's answer is checked.
//!
//! A runner that finds the lock taken asks again (`pg_try_advisory_lock`, every 25 to
//! 500 ms) rather than blocking in `pg_advisory_lock`: a blocked statement holds a
//! snapshot, and the holder's `CREATE INDEX CONCURRENTLY` waits for every older snapshot.
//! In session mode the two would wait for each other until PostgreSQL's deadlock
//! detector killed one; in transaction mode the lock is on another backend, so PostgreSQL
//! would not even see the cycle. Between two tries the connection is idle and says,
//! every few seconds, who holds the lock (from `pg_locks` and `pg_stat_activity`). A
//! waiter also listens on a channel the holder notifies when it lets go, so sixteen pods
//! started together do not each sleep out their backoff (behind a transaction pooler,
//! where LISTEN does not reach us, the tries alone do the work).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::ValueEnum;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::connection::Connection;
use crate::db::guard::Guard;
use crate::db::interrupt::Interrupt;
use crate::db::session::Session;
use crate::error::{Error, Result};
use crate::output::event;

const REPORT_EVERY: Duration = Duration::from_secs(5);
/// A waiting runner asks again soon at first, then every half second.
const FIRST_RETRY: Duration = Duration::from_millis(25);
const MAX_RETRY: Duration = Duration::from_millis(500);
/// The transaction holding a `transaction` lock says a word this often, so neither the
/// server's nor a proxy's idle-in-transaction timeout ends it, and a lost connection is
/// noticed between migrations.
const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LockMode {
    Session,
    Transaction,
    None,
}

/// A lock this runner holds, until `release`.
pub enum Lock {
    Session { key: i64, backend: String },
    Transaction(Heartbeat),
    Nothing,
}

/// The task that keeps a `transaction` lock's connection busy and tells if it is lost.
pub struct Heartbeat {
    /// `None` once stopped.
    holder: Option<Arc<Session>>,
    task: JoinHandle<()>,
    stop: watch::Sender<bool>,
    lost: watch::Receiver<Option<String>>,
}

/// What acquiring needs besides the mode.
pub struct Request<'a> {
    pub session: &'a Session,
    /// For the second connection of `transaction` mode.
    pub connection: &'a Connection,
    pub key: i64,
    /// `--lock-timeout`, for messages; `deadline` is when it runs out.
    pub timeout: Duration,
    pub deadline: Instant,
    /// Come back without the lock when a holder lets go, so the caller can look at the
    /// history again: the work it waited for may be done.
    pub wake: bool,
    pub interrupt: &'a Interrupt,
    /// `--wait-timeout`, for the second connection of `transaction` mode.
    pub wait_timeout: Duration,
}

/// How acquiring ended.
pub enum Acquired {
    Held(Lock),
    /// A holder let go (only with `Request::wake`); the lock was not taken.
    Woken,
}

pub async fn acquire(mode: LockMode, request: &Request<'_>) -> Result<Acquired> {
    match mode {
        LockMode::Session => acquire_session(request).await,
        LockMode::Transaction => acquire_transaction(request).await,
        LockMode::None => {
            tracing::warn!(
                "--lock-mode none: no lock is taken, so runners started together may race; \
                 the history's primary key stops a second copy of a migration, which then fails with exit 7"
            );
            Ok(Acquired::Held(Lock::Nothing))
        }
    }
}

const POOLED: &str = "connected through a transaction-pooling proxy (PgBouncer pool_mode = transaction?): \
    consecutive statements ran on different PostgreSQL backends, so a session advisory lock would protect \
    nothing and stay behind on a pooled connection. Run with --lock-mode transaction, or point DATABASE_URL \
    past the pooler at PostgreSQL itself";

async fn acquire_session(request: &Request<'_>) -> Result<Acquired> {
    let Request { session, key, .. } = *request;
    let backend = first_value(session, "SELECT pg_backend_pid()").await?;
    // Only lock on the backend that answered just now: behind transaction pooling this
    // statement may land on another one, and a lock taken there would be lost to us.
    let attempt = format!(
        "SELECT CASE WHEN pg_backend_pid() = {backend} THEN pg_try_advisory_lock({key})::text ELSE 'pooled' END"
    );
    if let Polled::Woken = poll(request, session, &attempt, Space::Run).await? {
        return Ok(Acquired::Woken);
    }
    let lock = Lock::Session { key, backend };
    verify(session, &lock).await?;
    // A runner replaced mid-step (its lock connection gone in transaction mode) may still
    // have a statement running on the server: wait for it, whatever our mode.
    let work = Request {
        wake: false,
        ..*request
    };
    poll(&work, session, &guard(&lock, key).drained(), Space::Work).await?;
    Ok(Acquired::Held(lock))
}

async fn acquire_transaction(request: &Request<'_>) -> Result<Acquired> {
    let Request {
        connection, key, ..
    } = *request;
    // Its own Interrupt: a signal must cancel the main connection's statement; this one
    // only ever runs short tries. Transient refusals (53300, too many connections) are
    // retried as for the first connection.
    let mut budget = crate::db::wait::Budget::new(request.wait_timeout);
    let holder = crate::db::wait::connect(connection, &mut budget, &Interrupt::default()).await?;
    // Each try is a transaction of its own, rolled back at once when it fails: a
    // CREATE INDEX CONCURRENTLY waits for every transaction that held a snapshot when it
    // looked, and a waiter's transaction must not outlive one try.
    let attempt = format!("BEGIN; SELECT pg_try_advisory_xact_lock({key})::text");
    if let Polled::Woken = poll(request, &holder, &attempt, Space::Run).await? {
        return Ok(Acquired::Woken);
    }
    holder
        .execute(
            "SET LOCAL idle_in_transaction_session_timeout = 0; \
             SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0;",
        )
        .await?;
    // Wait until no batch or transaction:false step of an interrupted run holds the guard.
    let work = Request {
        wake: false,
        ..*request
    };
    let drained = Guard {
        key,
        session_lock: false,
    }
    .drained();
    poll(&work, &holder, &drained, Space::Work).await?;
    Ok(Acquired::Held(Lock::Transaction(Heartbeat::start(
        holder, key,
    ))))
}

/// What every piece of work under `lock` takes first and proves before it commits.
pub fn guard(lock: &Lock, key: i64) -> Guard {
    Guard {
        key,
        session_lock: matches!(lock, Lock::Session { .. }),
    }
}

/// Which advisory lock a wait is for: the run's (the bigint key, `objsubid` 1) or the
/// work guard (its two-int form, `objsubid` 2).
#[derive(Clone, Copy)]
enum Space {
    Run,
    Work,
}

/// Confirms a session lock is held by the backend this session now talks to.
pub async fn verify(session: &Session, lock: &Lock) -> Result<()> {
    if let Lock::Session { backend, .. } = lock {
        let now = first_value(session, "SELECT pg_backend_pid()").await?;
        if &now != backend {
            return Err(Error::Usage(POOLED.into()));
        }
    }
    Ok(())
}

/// `Err(ConnectionLost)` if the connection holding a `transaction` lock is gone: the
/// lock is gone with it, and the run must take it again before going on.
pub fn check(lock: &Lock) -> Result<()> {
    match lock {
        Lock::Transaction(heartbeat) => match heartbeat.lost.borrow().as_ref() {
            Some(reason) => Err(Error::ConnectionLost(format!(
                "the connection holding the lock: {reason}"
            ))),
            // Closed as soon as its socket is, between two heartbeats too.
            None if heartbeat
                .holder
                .as_ref()
                .is_none_or(|holder| holder.client.is_closed()) =>
            {
                Err(Error::ConnectionLost(
                    "the connection holding the lock was closed".into(),
                ))
            }
            None => Ok(()),
        },
        Lock::Session { .. } | Lock::Nothing => Ok(()),
    }
}

pub async fn release(session: &Session, lock: Lock) -> Result<()> {
    let released = match lock {
        Lock::Session { key, .. } => {
            let released = first_value(
                session,
                &format!("SELECT pg_advisory_unlock({key}); NOTIFY {}", channel(key)),
            )
            .await?;
            if released != "t" {
                tracing::warn!(
                    "the advisory lock was not held by this connection at the end of the run: {POOLED}"
                );
            }
            Ok(())
        }
        Lock::Transaction(heartbeat) => heartbeat.stop().await,
        Lock::Nothing => return Ok(()),
    };
    if released.is_ok() {
        tracing::info!(event = event::LOCK_RELEASED, "advisory lock released");
    }
    released
}

/// ` after 1.2s`, or nothing when there was no wait to speak of.
fn waited_for(waited: Duration) -> String {
    if waited < Duration::from_millis(100) {
        String::new()
    } else {
        format!(" after {}", crate::text::duration(waited))
    }
}

/// The channel waiters listen on and a holder notifies when it lets go.
fn channel(key: i64) -> String {
    format!("\"schemagate_lock_{:x}\"", key as u64)
}

impl Heartbeat {
    fn start(holder: Session, key: i64) -> Heartbeat {
        let (stop, mut stopped) = watch::channel(false);
        let (report_lost, lost) = watch::channel(None);
        let holder = Arc::new(holder);
        let beating = Arc::clone(&holder);
        let task = tokio::spawn(async move {
            let holder = beating;
            let mut beat = tokio::time::interval_at(
                tokio::time::Instant::now() + HEARTBEAT_EVERY,
                HEARTBEAT_EVERY,
            );
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    _ = beat.tick() => {
                        // SHOW takes no snapshot: one that did could make this run's own
                        // CREATE INDEX CONCURRENTLY wait for the end of this transaction.
                        if let Err(e) = holder.execute("SHOW lock_timeout").await {
                            report_lost.send_replace(Some(e.to_string()));
                            return;
                        }
                    }
                }
            }
            // Ending the transaction frees the lock; the connection closes with the last
            // reference to it.
            if let Err(e) = holder
                .execute(&format!("ROLLBACK; NOTIFY {}", channel(key)))
                .await
            {
                report_lost.send_replace(Some(e.to_string()));
            }
        });
        Heartbeat {
            holder: Some(holder),
            task,
            stop,
            lost,
        }
    }

    async fn stop(mut self) -> Result<()> {
        self.stop.send_replace(true);
        let _ = (&mut self.task).await;
        let lost = self.lost.borrow().clone();
        // The task is done: this is the last reference, so the connection closes cleanly.
        if let Some(Ok(holder)) = self.holder.take().map(Arc::try_unwrap) {
            holder.close().await;
        }
        match lost.as_ref() {
            Some(reason) => Err(Error::ConnectionLost(format!(
                "the connection holding the lock: {reason}"
            ))),
            None => Ok(()),
        }
    }
}

/// On an error path the lock goes with its connection: the task, and so the connection,
/// ends here.
impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How a wait ended, when it did not fail.
enum Polled {
    Done,
    Woken,
}

/// Runs `attempt` on `waiter` until it answers `true`, idle in between, reporting who
/// holds the lock every few seconds; gives up at the deadline (exit 6) or on a signal.
async fn poll(
    request: &Request<'_>,
    waiter: &Session,
    attempt: &str,
    space: Space,
) -> Result<Polled> {
    let Request {
        key,
        timeout,
        deadline,
        wake,
        interrupt,
        ..
    } = *request;
    let started = Instant::now();
    let (what, done) = match space {
        Space::Run => ("the advisory lock", "advisory lock acquired"),
        Space::Work => (
            "the last statement of an interrupted run",
            "the interrupted run's last statement is done",
        ),
    };
    let mut retry = FIRST_RETRY;
    let mut reported: Option<Instant> = None;
    let mut listening = false;
    loop {
        match first_value(waiter, attempt).await?.as_str() {
            "true" => {
                let waited = started.elapsed();
                let duration_ms = waited.as_millis() as u64;
                match space {
                    // Always: machines follow the phases (lock.acquired), people see how long.
                    Space::Run => tracing::info!(
                        event = event::LOCK_ACQUIRED,
                        duration_ms,
                        // A string: a bigint is past what JSON readers hold exactly.
                        key = %key,
                        "{done}{}",
                        waited_for(waited)
                    ),
                    Space::Work if reported.is_some() => tracing::info!(
                        event = event::LOCK_DRAINED,
                        duration_ms,
                        "{done}{}",
                        waited_for(waited)
                    ),
                    Space::Work => {}
                }
                return Ok(Polled::Done);
            }
            "pooled" => return Err(Error::Usage(POOLED.into())),
            // A failed try that opened a transaction ends it at once (see above).
            _ if attempt.starts_with("BEGIN") => waiter.execute("ROLLBACK").await?,
            _ => {}
        }
        let waited = started.elapsed();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Error::LockTimeout {
                waited: timeout,
                holder: describe_holder(waiter, key, space).await,
            });
        }
        if !listening {
            request
                .session
                .execute(&format!("LISTEN {}", channel(key)))
                .await?;
            listening = true;
            // The holder may have let go before we listened: try once more at once.
            continue;
        }
        if reported.is_none_or(|at| at.elapsed() >= REPORT_EVERY) {
            let holder = describe_holder(waiter, key, space).await;
            let holder = holder
                .as_deref()
                .unwrap_or("a session that just released it");
            let duration_ms = waited.as_millis() as u64;
            if reported.is_none() {
                tracing::info!(
                    event = event::LOCK_WAITING,
                    holder,
                    duration_ms,
                    "waiting for {what} (key {key}, up to {}), held by {holder}",
                    crate::text::duration(left)
                );
            } else {
                tracing::info!(
                    event = event::LOCK_WAITING,
                    holder,
                    duration_ms,
                    "still waiting for {what} after {}, held by {holder}",
                    crate::text::duration(waited)
                );
            }
            reported = Some(Instant::now());
        }
        tokio::select! {
            _ = tokio::time::sleep(retry.min(left)) => {}
            _ = request.session.notification() => {
                if wake {
                    return Ok(Polled::Woken);
                }
            }
            signal = interrupt.wait() => return Err(Error::Interrupted(signal)),
        }
        retry = (retry * 2).min(MAX_RETRY);
    }
}

async fn first_value(session: &Session, sql: &str) -> Result<String> {
    let rows = session.rows(sql).await?;
    Ok(rows
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_default())
}

/// "pid 4242 (application_name schemagate, client 10.0.0.7, connected 2026-11-23 10:00:01 UTC, 12 s ago, state idle)"
async fn describe_holder(session: &Session, key: i64, space: Space) -> Option<String> {
    let bits = key as u64;
    let (high, low) = (bits >> 32, bits & 0xffff_ffff);
    let subid = match space {
        Space::Run => 1,
        Space::Work => 2,
    };
    let sql = format!(
        "SELECT a.pid, a.application_name, coalesce(host(a.client_addr), 'local socket'), \
                to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ'), \
                extract(epoch FROM now() - a.backend_start)::bigint, coalesce(a.state, '?') \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = {subid} \
           AND l.classid = {high} AND l.objid = {low} \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    );
    let rows = session.rows(&sql).await.ok()?;
    let row = rows.first()?;
    let field = |i: usize| row.get(i).cloned().flatten().unwrap_or_else(|| "?".into());
    Some(format!(
        "pid {} (application_name {}, client {}, connected {}, {} s ago, state {})",
        field(0),
        field(1),
        field(2),
        field(3),
        field(4),
        field(5)
    ))
}
