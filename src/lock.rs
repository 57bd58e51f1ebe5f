//! The session-level advisory lock that makes any number of concurrent runners safe.
//!
//! It is taken on the very connection that applies the migrations, so it lives exactly as
//! long as that connection: a runner that dies, is killed or loses its network frees it,
//! and no pool can hand it on. While waiting we say who holds it, every few seconds, from
//! `pg_locks` and `pg_stat_activity` (read on a second, short-lived connection, since the
//! first one is blocked in `pg_advisory_lock`).

use std::time::{Duration, Instant};

use crate::config::Connection;
use crate::db::{self, Session};
use crate::error::{Error, Result};
use crate::interrupt::Interrupt;
use crate::tls;

const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Takes the lock, waiting at most `timeout`.
pub async fn acquire(
    session: &Session,
    connection: &Connection,
    key: i64,
    timeout: Duration,
    interrupt: &Interrupt,
) -> Result<()> {
    let tried = session
        .rows(&format!("SELECT pg_try_advisory_lock({key})"))
        .await?;
    if tried
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .as_deref()
        == Some("t")
    {
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

    let lock_sql = format!("SELECT pg_advisory_lock({key})");
    let query = session.client.simple_query(&lock_sql);
    tokio::pin!(query);
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut report =
        tokio::time::interval_at(tokio::time::Instant::now() + REPORT_EVERY, REPORT_EVERY);
    let mut monitor: Option<Session> = None;

    loop {
        tokio::select! {
            result = &mut query => {
                if let Some(m) = monitor { m.close().await; }
                return match result {
                    Ok(_) => {
                        tracing::info!(waited_ms = started.elapsed().as_millis() as u64, "advisory lock acquired");
                        Ok(())
                    }
                    Err(e) => {
                        interrupt.check()?;
                        Err(db::classify(e))
                    }
                };
            }
            _ = report.tick() => {
                if monitor.is_none() {
                    // A fresh Interrupt: a signal must cancel the lock wait, not the monitor.
                    monitor = Session::open(connection, &Interrupt::default()).await.ok();
                }
                if let Some(m) = &monitor {
                    holder = describe_holder(m, key).await;
                }
                tracing::info!(
                    waited_s = started.elapsed().as_secs(),
                    "still waiting for the advisory lock, held by {}",
                    holder.as_deref().unwrap_or("(unknown)")
                );
            }
            _ = &mut deadline => {
                if let Some(m) = &monitor {
                    holder = describe_holder(m, key).await;
                }
                if let Ok((tls, _)) = tls::connector(connection) {
                    let _ = session.client.cancel_token().cancel_query(tls).await;
                }
                // Let the cancelled statement finish; if the lock came in the same instant,
                // it is freed when the connection closes.
                let _ = tokio::time::timeout(Duration::from_secs(1), &mut query).await;
                if let Some(m) = monitor { m.close().await; }
                return Err(Error::LockTimeout {
                    waited: Duration::from_secs(started.elapsed().as_secs()),
                    holder,
                });
            }
        }
    }
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
