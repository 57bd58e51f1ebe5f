//! Running migrations.
//!
//! A transactional migration, its history row and its event go to the server as one
//! simple-query batch (`BEGIN; <sql>; INSERT ...; COMMIT; RESET ALL`): one round trip, and
//! the change and its row commit or roll back together. When a statement fails, the
//! server's error position (or, when it gives none, the number of statements that had
//! completed) points at the file and line.
//!
//! A `transaction:false` migration is split into statements that run one by one; its
//! history row is committed as `running` first, so an interruption leaves a visible
//! dirty row rather than a half-applied change nobody knows about.
//!
//! `RESET ALL` after each migration keeps `SET timezone`/`SET search_path` from leaking
//! into the next one (never `DISCARD ALL`, which would also drop the advisory lock).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::ErrorPosition;

use crate::db::{self, Session};
use crate::error::{Error, MigrationFailure, Result};
use crate::history::{self, ELAPSED_MS, Tables};
use crate::interrupt::Interrupt;
use crate::migration::{Migration, Section};
use crate::plan::RowStatus;
use crate::split;

/// A migration still running after this long is reported, and again at this interval.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Applies one transactional migration; returns how long it took.
pub async fn apply_transactional(
    session: &Session,
    tables: &Tables,
    migration: &Migration,
    interrupt: &Interrupt,
) -> Result<Duration> {
    let mut batch = Batch::default();
    batch.own("BEGIN;\n", 1);
    batch.section(migration, &migration.up);
    batch.own(
        &(history::insert_row(tables, migration, RowStatus::Applied, "applied", ELAPSED_MS)
            + &history::event(tables, "up", &migration.revision, "ok", None)),
        2,
    );
    batch.own("COMMIT;\nRESET ALL;\n", 2);
    run_transaction(session, tables, &batch, interrupt).await
}

/// Applies several transactional migrations in one transaction: all or nothing.
pub async fn apply_all_in_one_transaction(
    session: &Session,
    tables: &Tables,
    migrations: &[&Migration],
    interrupt: &Interrupt,
) -> Result<Duration> {
    let mut batch = Batch::default();
    batch.own("BEGIN;\n", 1);
    for migration in migrations {
        batch.section(migration, &migration.up);
        batch.own(
            &(history::insert_row(tables, migration, RowStatus::Applied, "applied", ELAPSED_MS)
                + &history::event(tables, "up", &migration.revision, "ok", None)
                + "RESET ALL;\n"),
            3,
        );
    }
    batch.own("COMMIT;\nRESET ALL;\n", 2);
    run_transaction(session, tables, &batch, interrupt).await
}

async fn run_transaction(
    session: &Session,
    tables: &Tables,
    batch: &Batch<'_>,
    interrupt: &Interrupt,
) -> Result<Duration> {
    let started = Instant::now();
    let label = batch.label();
    let Err((error, completed)) = run_batch(session, &batch.sql, &label).await else {
        return Ok(started.elapsed());
    };
    if db::is_connection_lost(&error) {
        // The server rolls back an open transaction when its connection goes.
        return Err(Error::ConnectionLost(db::describe(&error)));
    }
    session.execute("ROLLBACK").await?;
    interrupt.check()?;
    let (migration, line) = batch.locate(&error, completed);
    let failure = failure(migration, line, &error);
    record_failure(session, tables, &failure).await?;
    Err(Error::MigrationFailed(Box::new(failure)))
}

/// Applies a `transaction:false` migration statement by statement.
pub async fn apply_non_transactional(
    session: &Session,
    tables: &Tables,
    migration: &Migration,
    interrupt: &Interrupt,
) -> Result<Duration> {
    let started = Instant::now();
    let statements = split::split(&migration.up.sql)
        .map_err(|e| Error::Internal(format!("validated migration no longer splits: {e}")))?;
    session
        .execute(
            &(history::insert_row(tables, migration, RowStatus::Running, "applied", "0")
                + &history::event(tables, "up", &migration.revision, "started", None)),
        )
        .await?;
    let label = format!("{} ({})", migration.revision, migration.path);
    for (index, statement) in statements.iter().enumerate() {
        if let Err(signal) = interrupt.check() {
            mark_failed(session, tables, migration, index, "interrupted").await?;
            return Err(signal);
        }
        let Err((error, _)) = run_batch(session, statement.sql, &label).await else {
            continue;
        };
        if db::is_connection_lost(&error) {
            // The row stays `running`: the next run reports it as dirty.
            return Err(Error::ConnectionLost(db::describe(&error)));
        }
        interrupt.check()?;
        let line = migration.up.file_line(statement.line)
            + original_position(&error)
                .map(|p| lines_before(statement.sql, p))
                .unwrap_or(0);
        let mut failure = failure(migration, Some(line), &error);
        if index > 0 {
            failure.hint = Some(format!(
                "this transaction:false migration stopped part-way: the statements before line {line} were applied. \
                 Complete or undo them by hand, then run `schemagate resolve {rev} --applied` or `schemagate resolve {rev} --rolled-back`",
                rev = migration.revision
            ));
        }
        mark_failed(session, tables, migration, index, &failure.message).await?;
        return Err(Error::MigrationFailed(Box::new(failure)));
    }
    let elapsed_ms = started.elapsed().as_millis().to_string();
    session
        .execute(
            &(history::set_status(tables, &migration.revision, RowStatus::Applied, &elapsed_ms)
                + &history::event(tables, "up", &migration.revision, "ok", None)
                + "RESET ALL;\n"),
        )
        .await?;
    Ok(started.elapsed())
}

/// A failed `transaction:false` migration: if nothing ran, forget the row so a fixed file
/// simply runs again; otherwise mark it `failed` for a person to resolve.
async fn mark_failed(
    session: &Session,
    tables: &Tables,
    migration: &Migration,
    completed: usize,
    detail: &str,
) -> Result<()> {
    let row = if completed == 0 {
        history::delete_row(tables, &migration.revision)
    } else {
        history::set_status(tables, &migration.revision, RowStatus::Failed, "0")
    };
    session
        .execute(
            &(row
                + &history::event(tables, "up", &migration.revision, "failed", Some(detail))
                + "RESET ALL;\n"),
        )
        .await
}

async fn record_failure(
    session: &Session,
    tables: &Tables,
    failure: &MigrationFailure,
) -> Result<()> {
    let detail = format!("SQLSTATE {}: {}", failure.sqlstate, failure.message);
    session
        .execute(&history::event(
            tables,
            "up",
            &failure.revision,
            "failed",
            Some(&detail),
        ))
        .await
}

/// Sends a batch and counts the statements that completed before an error, reporting a
/// long-running batch every few seconds.
async fn run_batch(
    session: &Session,
    sql: &str,
    label: &str,
) -> std::result::Result<(), (tokio_postgres::Error, usize)> {
    let started = Instant::now();
    let mut completed = 0;
    let mut progress =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let stream = session.client.simple_query_raw(sql);
    tokio::pin!(stream);
    let stream = loop {
        tokio::select! {
            s = &mut stream => break s.map_err(|e| (e, 0))?,
            _ = progress.tick() => report(label, started),
        }
    };
    tokio::pin!(stream);
    loop {
        tokio::select! {
            message = stream.next() => match message {
                None => return Ok(()),
                Some(Ok(SimpleQueryMessage::CommandComplete(_))) => completed += 1,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err((e, completed)),
            },
            _ = progress.tick() => report(label, started),
        }
    }
}

fn report(label: &str, started: Instant) {
    tracing::info!(
        elapsed_s = started.elapsed().as_secs(),
        "migration {label} still running"
    );
}

fn original_position(error: &tokio_postgres::Error) -> Option<usize> {
    match error.as_db_error()?.position()? {
        ErrorPosition::Original(p) => Some(*p as usize),
        ErrorPosition::Internal { .. } => None,
    }
}

/// Newlines before the 1-based character position `position` of `text`.
fn lines_before(text: &str, position: usize) -> usize {
    text.chars()
        .take(position.saturating_sub(1))
        .filter(|&c| c == '\n')
        .count()
}

fn failure(
    migration: &Migration,
    line: Option<usize>,
    error: &tokio_postgres::Error,
) -> MigrationFailure {
    let (sqlstate, mut message, server_hint) = match error.as_db_error() {
        Some(db) => (
            db.code().code().to_string(),
            match db.detail() {
                Some(detail) => format!("{} ({detail})", db.message()),
                None => db.message().to_string(),
            },
            db.hint().map(str::to_string),
        ),
        None => (String::new(), db::describe(error), None),
    };
    if let Some(context) = error.as_db_error().and_then(|db| db.where_()) {
        message.push_str(&format!("; context: {}", context.replace('\n', "; ")));
    }
    let hint = if sqlstate == "25001" {
        Some(format!(
            "this statement cannot run inside a transaction: mark the section `-- migrate:up transaction:false` in {}",
            migration.path
        ))
    } else {
        server_hint
    };
    MigrationFailure {
        revision: migration.revision.clone(),
        file: migration.path.clone(),
        line,
        sqlstate,
        message,
        hint,
    }
}

/// SQL sent as one simple query, and which migration each stretch of it came from.
#[derive(Default)]
struct Batch<'a> {
    sql: String,
    /// (byte offset where the part starts, the part)
    parts: Vec<(usize, Part<'a>)>,
}

enum Part<'a> {
    /// schemagate's own statements, counted.
    Own(usize),
    Section(&'a Migration, &'a Section),
}

impl<'a> Batch<'a> {
    fn own(&mut self, sql: &str, statements: usize) {
        self.parts.push((self.sql.len(), Part::Own(statements)));
        self.sql.push_str(sql);
    }

    fn section(&mut self, migration: &'a Migration, section: &'a Section) {
        self.parts
            .push((self.sql.len(), Part::Section(migration, section)));
        self.sql.push_str(&section.sql);
        // A last statement without `;`, or ending in a `--` comment, is closed here.
        self.sql.push_str("\n;\n");
    }

    fn label(&self) -> String {
        let revisions: Vec<&str> = self
            .parts
            .iter()
            .filter_map(|(_, p)| match p {
                Part::Section(m, _) => Some(m.revision.as_str()),
                Part::Own(_) => None,
            })
            .collect();
        match revisions.as_slice() {
            [one] => one.to_string(),
            many => format!("{} migrations in one transaction", many.len()),
        }
    }

    /// The migration and file line an error points at.
    fn locate(
        &self,
        error: &tokio_postgres::Error,
        completed: usize,
    ) -> (&'a Migration, Option<usize>) {
        if let Some(position) = original_position(error)
            && let Some(byte) = self
                .sql
                .char_indices()
                .nth(position.saturating_sub(1))
                .map(|(b, _)| b)
        {
            let at = self
                .parts
                .partition_point(|(start, _)| *start <= byte)
                .saturating_sub(1);
            if let Some((start, Part::Section(m, s))) = self.parts.get(at) {
                let lines = self.sql[*start..byte].matches('\n').count();
                return (m, Some(s.first_line + lines));
            }
        }
        let mut remaining = completed;
        let mut last = None;
        for (_, part) in &self.parts {
            let statements = match part {
                Part::Own(n) => *n,
                Part::Section(m, s) => {
                    last = Some(*m);
                    let statements = split::split(&s.sql).unwrap_or_default();
                    if remaining < statements.len() {
                        return (m, Some(s.file_line(statements[remaining].line)));
                    }
                    statements.len()
                }
            };
            if remaining < statements {
                break;
            }
            remaining -= statements;
        }
        let migration = last
            .or_else(|| {
                self.parts.iter().find_map(|(_, p)| match p {
                    Part::Section(m, _) => Some(*m),
                    Part::Own(_) => None,
                })
            })
            .expect("a batch holds at least one migration");
        (migration, None)
    }
}
