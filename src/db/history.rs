//! schemagate's state in the database: `schemagate_history` (one row per applied revision)
//! and `schemagate_events` (an append-only log of every up, down, stamp and resolve).
//!
//! Statements are built as text with quoted literals, so a transactional migration, its
//! history row and its event travel in one simple-query round trip. Literals use the
//! `E'...'` form, which means the same whatever `standard_conforming_strings` says.

use sha2::{Digest, Sha256};

use crate::db::session::Session;
use crate::error::{Error, Result};
use crate::files::migration::Migration;
use crate::plan::reconcile::{AppliedRow, Recorded, RowStatus};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The qualified, quoted names of the state tables.
#[derive(Debug, Clone)]
pub struct Tables {
    pub schema: String,
    pub history: String,
    pub events: String,
}

impl Tables {
    pub fn new(schema: &str) -> Tables {
        let quoted = quote_ident(schema);
        Tables {
            schema: schema.to_string(),
            history: format!("{quoted}.{}", quote_ident("schemagate_history")),
            events: format!("{quoted}.{}", quote_ident("schemagate_events")),
        }
    }

    /// The advisory lock key: stable, and different for each history table.
    pub fn lock_key(&self) -> i64 {
        let digest = Sha256::digest(format!("schemagate:{}", self.history).as_bytes());
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        i64::from_be_bytes(bytes)
    }
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub fn quote_literal(text: &str) -> String {
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// The history rows, or `None` when the table does not exist yet (a fresh database). Only
/// what planning needs: a no-op run at 10 000 migrations reads little.
pub async fn read(session: &Session, tables: &Tables) -> Result<Option<Vec<AppliedRow>>> {
    read_rows(session, tables, None).await
}

/// The history rows with when, how and by whom each was recorded (`status`, `history`).
pub async fn read_recorded(session: &Session, tables: &Tables) -> Result<Option<Vec<AppliedRow>>> {
    read_rows(
        session,
        tables,
        Some("to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), method, execution_ms, applied_by"),
    )
    .await
}

async fn read_rows(
    session: &Session,
    tables: &Tables,
    recorded: Option<&str>,
) -> Result<Option<Vec<AppliedRow>>> {
    let sql = format!(
        "SELECT revision, checksum, status{}{} FROM {} ORDER BY applied_at, revision",
        if recorded.is_some() { ", " } else { "" },
        recorded.unwrap_or_default(),
        tables.history
    );
    match session.simple_query(&sql).await {
        Ok(messages) => {
            let mut rows = Vec::new();
            for message in messages {
                let tokio_postgres::SimpleQueryMessage::Row(row) = message else {
                    continue;
                };
                let text = |i| row.get(i).unwrap_or_default().to_string();
                let status = RowStatus::parse(&text(2)).ok_or_else(|| {
                    Error::Conflict(vec![format!(
                        "the history table {} is corrupted: revision {} has status `{}`, and the \
                         valid statuses are applied, running, failed. Fix the row (UPDATE {} SET \
                         status = 'applied' WHERE revision = '{}', if its migration is complete), \
                         or point --schema at the schema that holds schemagate's history",
                        tables.history,
                        text(0),
                        text(2).escape_debug(),
                        tables.history,
                        text(0)
                    )])
                })?;
                let recorded = if recorded.is_some() {
                    Recorded {
                        applied_at: text(3),
                        method: text(4),
                        execution_ms: text(5).parse().unwrap_or_default(),
                        applied_by: text(6),
                    }
                } else {
                    Recorded::default()
                };
                rows.push(AppliedRow {
                    revision: text(0),
                    checksum: text(1),
                    status,
                    recorded,
                });
            }
            Ok(Some(rows))
        }
        // Undefined table or schema: nothing was ever applied here.
        Err(crate::db::session::StatementError::Postgres(e))
            if e.as_db_error()
                .is_some_and(|db| matches!(db.code().code(), "42P01" | "3F000")) =>
        {
            Ok(None)
        }
        // Undefined column: someone altered the table; waiting or retrying cannot help.
        Err(crate::db::session::StatementError::Postgres(e))
            if e.as_db_error()
                .is_some_and(|db| db.code().code() == "42703") =>
        {
            let cause = e.as_db_error().map(|db| db.message()).unwrap_or_default();
            Err(Error::Conflict(vec![format!(
                "the history table {} is corrupted: {cause} (SQLSTATE 42703), and schemagate \
                 needs its columns revision, checksum, status, applied_at, method, execution_ms \
                 and applied_by. Restore the column (`schemagate up base:head --sql` prints the \
                 table's definition), or point --schema at the schema that holds schemagate's history",
                tables.history
            )]))
        }
        Err(e) => Err(crate::db::session::classify(e)),
    }
}

/// Which of `revisions` have a `running` row: after a failed transactional batch, one the
/// migration committed itself (a hidden COMMIT took the row with it).
pub async fn running(
    session: &Session,
    tables: &Tables,
    revisions: &[&str],
) -> Result<Vec<String>> {
    if revisions.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<String> = revisions.iter().map(|r| quote_literal(r)).collect();
    let rows = session
        .rows(&format!(
            "SELECT revision FROM {} WHERE status = 'running' AND revision IN ({})",
            tables.history,
            list.join(", ")
        ))
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| row.into_iter().next().flatten())
        .collect())
}

/// Both tables (and the schema, when `with_schema`), idempotently, in their own
/// transaction: what the runner sends on first use and what `--sql` prints first.
pub fn create_tables(tables: &Tables, with_schema: bool) -> String {
    let schema = if with_schema {
        format!(
            "CREATE SCHEMA IF NOT EXISTS {};\n",
            quote_ident(&tables.schema)
        )
    } else {
        String::new()
    };
    format!(
        "BEGIN;
{schema}CREATE TABLE IF NOT EXISTS {history} (
    revision text PRIMARY KEY,
    description text NOT NULL,
    checksum text NOT NULL,
    status text NOT NULL CHECK (status IN ('applied', 'running', 'failed')),
    method text NOT NULL CHECK (method IN ('applied', 'stamped')),
    applied_at timestamptz NOT NULL DEFAULT now(),
    execution_ms bigint NOT NULL DEFAULT 0,
    applied_by text NOT NULL,
    runner_version text NOT NULL
);
CREATE TABLE IF NOT EXISTS {events} (
    id bigserial PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    action text NOT NULL,
    revision text NOT NULL,
    outcome text NOT NULL,
    detail text,
    actor text NOT NULL,
    runner_version text NOT NULL
);
COMMIT;
",
        history = tables.history,
        events = tables.events,
    )
}

/// Creates the schema and tables if missing. Called only by the runner that holds the
/// lock, so `IF NOT EXISTS` never races. PostgreSQL checks the CREATE privilege before
/// `IF NOT EXISTS`, so existing objects are looked up first: a role without CREATE keeps
/// working once they exist.
pub async fn ensure_tables(session: &Session, tables: &Tables) -> Result<()> {
    let check = format!(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = {schema}), \
         to_regclass({history}) IS NOT NULL AND to_regclass({events}) IS NOT NULL",
        schema = quote_literal(&tables.schema),
        history = quote_literal(&tables.history),
        events = quote_literal(&tables.events),
    );
    let rows = session.rows(&check).await?;
    let exists = |i: usize| {
        rows.first()
            .and_then(|r| r.get(i).cloned().flatten())
            .is_some_and(|v| v == "t")
    };
    if exists(1) {
        return Ok(());
    }
    let created = session.execute(&create_tables(tables, !exists(0))).await;
    if let Err(Error::Database(_)) = &created {
        session.execute("ROLLBACK").await?;
    }
    created.map_err(|e| match e {
        Error::Database(message) => Error::Database(format!(
            "cannot create schemagate's tables in schema {}: {message}; grant the user CREATE on it, or choose another with --schema",
            tables.schema
        )),
        other => other,
    })
}

/// The host name, for `applied_by` (a pod name in Kubernetes).
pub fn host_name() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown".into())
    })
}

/// `INSERT` of a history row. `execution_ms` is an SQL expression.
pub fn insert_row(
    tables: &Tables,
    migration: &Migration,
    status: RowStatus,
    method: &str,
    execution_ms: &str,
) -> String {
    format!(
        "INSERT INTO {} (revision, description, checksum, status, method, execution_ms, applied_by, runner_version) \
         VALUES ({}, {}, {}, '{}', '{}', {execution_ms}, {}, '{VERSION}');\n",
        tables.history,
        quote_literal(&migration.revision),
        quote_literal(&migration.description),
        quote_literal(&migration.checksum),
        status.as_str(),
        method,
        quote_literal(host_name()),
    )
}

/// `UPDATE` of a history row's checksum (`repair`).
pub fn set_checksum(tables: &Tables, revision: &str, checksum: &str) -> String {
    format!(
        "UPDATE {} SET checksum = {} WHERE revision = {};\n",
        tables.history,
        quote_literal(checksum),
        quote_literal(revision),
    )
}

/// `UPDATE` of a history row's status.
pub fn set_status(tables: &Tables, revision: &str, status: RowStatus) -> String {
    format!(
        "UPDATE {} SET status = '{}' WHERE revision = {};\n",
        tables.history,
        status.as_str(),
        quote_literal(revision),
    )
}

/// A `transaction:false` migration finished: `applied`, timed from its `running` row. It
/// changes no row if someone else settled or removed the row meanwhile: the caller checks.
pub fn finish_row(tables: &Tables, revision: &str) -> String {
    format!(
        "UPDATE {} SET status = 'applied', \
         execution_ms = (extract(epoch FROM clock_timestamp() - applied_at) * 1000)::bigint \
         WHERE revision = {} AND status = 'running';\n",
        tables.history,
        quote_literal(revision),
    )
}

/// A `transaction:false` down section finished: its `running` row goes (the caller checks
/// that one did).
pub fn delete_running_row(tables: &Tables, revision: &str) -> String {
    format!(
        "DELETE FROM {} WHERE revision = {} AND status = 'running';\n",
        tables.history,
        quote_literal(revision)
    )
}

/// A transactional migration's closing row: `applied` when `intact` (an SQL condition, see
/// `guard`) holds, else a status the table refuses, so the transaction cannot commit.
pub fn seal_applied(tables: &Tables, migration: &Migration, intact: &str) -> String {
    format!(
        "INSERT INTO {} (revision, description, checksum, status, method, execution_ms, applied_by, runner_version) \
         VALUES ({}, {}, {}, CASE WHEN {intact} THEN 'applied' ELSE '{lost}' END, 'applied', {ELAPSED_MS}, {}, '{VERSION}') \
         ON CONFLICT (revision) DO UPDATE SET status = EXCLUDED.status, execution_ms = EXCLUDED.execution_ms;\n",
        tables.history,
        quote_literal(&migration.revision),
        quote_literal(&migration.description),
        quote_literal(&migration.checksum),
        quote_literal(host_name()),
        lost = crate::db::guard::LOST,
    )
}

/// The same proof for a row about to be deleted (a transactional down step).
pub fn seal_status(tables: &Tables, revision: &str, intact: &str) -> String {
    format!(
        "UPDATE {} SET status = CASE WHEN {intact} THEN status ELSE '{lost}' END WHERE revision = {};\n",
        tables.history,
        quote_literal(revision),
        lost = crate::db::guard::LOST,
    )
}

/// Whether an error is the history table refusing the `lost` status: the proof failed.
pub fn is_lost_proof(error: &tokio_postgres::Error) -> bool {
    error
        .as_db_error()
        .is_some_and(|db| db.code().code() == "23514" && db.table() == Some("schemagate_history"))
}

pub fn delete_row(tables: &Tables, revision: &str) -> String {
    format!(
        "DELETE FROM {} WHERE revision = {};\n",
        tables.history,
        quote_literal(revision)
    )
}

/// `INSERT` of an event.
pub fn event(
    tables: &Tables,
    action: &str,
    revision: &str,
    outcome: &str,
    detail: Option<&str>,
) -> String {
    format!(
        "INSERT INTO {} (action, revision, outcome, detail, actor, runner_version) VALUES ('{action}', {}, '{outcome}', {}, {}, '{VERSION}');\n",
        tables.events,
        quote_literal(revision),
        detail.map(quote_literal).unwrap_or_else(|| "NULL".into()),
        quote_literal(host_name()),
    )
}

/// Milliseconds since the current transaction began: in a transactional migration, the
/// time its statements took, whether sent as one batch or by psql one by one.
pub const ELAPSED_MS: &str = "(extract(epoch FROM clock_timestamp() - now()) * 1000)::bigint";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(quote_ident("my\"schema"), "\"my\"\"schema\"");
        assert_eq!(quote_literal("it's a \\ test"), "E'it''s a \\\\ test'");
        let t = Tables::new("Odd Schema");
        assert_eq!(t.history, "\"Odd Schema\".\"schemagate_history\"");
    }

    #[test]
    fn lock_key_depends_on_the_schema() {
        assert_eq!(
            Tables::new("public").lock_key(),
            Tables::new("public").lock_key()
        );
        assert_ne!(
            Tables::new("public").lock_key(),
            Tables::new("other").lock_key()
        );
    }
}
