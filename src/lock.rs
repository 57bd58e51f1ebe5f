//! The session-level advisory lock that makes any number of concurrent runners safe.
//!
//! It is taken on the very connection that applies the migrations, so it lives exactly as
//! long as that connection: a runner that dies, is killed or loses its network frees it,
//! and no pool can hand it on.
//!
//! A runner that finds it taken asks again (`pg_try_advisory_lock`) until it gets it,
//! rather than blocking in `pg_advisory_lock`: a blocked statement holds a snapshot, and
//! the holder's `CREATE INDEX CONCURRENTLY` waits for every older snapshot to go away, so
//! the two would wait for each other until PostgreSQL's deadlock detector killed one of
//! them, often the index. Between two tries the connection is idle, so it can also say,
//! every few seconds, who holds the lock (from `pg_locks` and `pg_stat_activity`).

use std::time::{Duration, Instant};

use crate::db::Session;
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;

const REPORT_EVERY: Duration = Duration::from_secs(5);
/// A waiting runner asks again soon at first, then every half second.
const FIRST_RETRY: Duration = Duration::from_millis(25);
const MAX_RETRY: Duration = Duration::from_millis(500);

/// Takes the lock, waiting at most `timeout`.
pub async fn acquire(
    session: &Session,
    key: i64,
    timeout: Duration,
    interrupt: &Interrupt,
) -> Result<()> {
    if try_lock(session, key, interrupt).await? {
        return Ok(());
    }

    let started = Instant::now();
    let mut holder = describe_holder(session, key).await;
    tracing::info!(
        "waiting for the advisory lock (key {key}, up to {}), held by {}",
        humantime::format_duration(timeout),
        holder
            .as_deref()
            .unwrap_or("a session that just released it")
    );
    let mut reported = started;
    let mut pause = FIRST_RETRY;
    loop {
        let left = timeout.saturating_sub(started.elapsed());
        if left.is_zero() {
            return Err(Error::LockTimeout {
                waited: Duration::from_secs(started.elapsed().as_secs()),
                holder: describe_holder(session, key).await.or(holder),
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(pause.min(left)) => {}
            signal = interrupt.wait() => return Err(Error::Interrupted(signal)),
        }
        if try_lock(session, key, interrupt).await? {
            tracing::info!(
                waited_ms = started.elapsed().as_millis() as u64,
                "advisory lock acquired"
            );
            return Ok(());
        }
        if reported.elapsed() >= REPORT_EVERY {
            holder = describe_holder(session, key).await;
            tracing::info!(
                waited_s = started.elapsed().as_secs(),
                "still waiting for the advisory lock, held by {}",
                holder.as_deref().unwrap_or("(unknown)")
            );
            reported = Instant::now();
        }
        pause = (pause * 2).min(MAX_RETRY);
    }
}

/// One short statement: the lock now, or `false` at once.
async fn try_lock(session: &Session, key: i64, interrupt: &Interrupt) -> Result<bool> {
    let rows = session
        .rows(&format!("SELECT pg_try_advisory_lock({key})"))
        .await;
    // A signal cancels the running statement: report the signal, not the cancellation.
    interrupt.check()?;
    Ok(rows?
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .as_deref()
        == Some("t"))
}

pub async fn release(session: &Session, key: i64) -> Result<()> {
    session
        .execute(&format!("SELECT pg_advisory_unlock({key})"))
        .await
}

/// "pid 4242 (application_name schemagate, client 10.0.0.7, connected 2026-11-23 10:00:01 UTC, 12 s ago, state idle)"
pub async fn describe_holder(session: &Session, key: i64) -> Option<String> {
    let bits = key as u64;
    let (high, low) = (bits >> 32, bits & 0xffff_ffff);
    let sql = format!(
        "SELECT a.pid, a.application_name, coalesce(host(a.client_addr), 'local socket'), \
                to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ'), \
                extract(epoch FROM now() - a.backend_start)::bigint, coalesce(a.state, '?') \
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
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
