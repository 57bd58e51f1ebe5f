//! Running steps: the SQL of `script` sent to the server, and failures turned into
//! located errors (SQLSTATE, message, file and line).
//!
//! When a statement fails, the server's error position (or, when it gives none, the
//! number of statements that had completed) points at the file and line.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::ErrorPosition;

use crate::db::{self, Session};
use crate::error::{Error, MigrationFailure, Result};
use crate::history::{self, Tables};
use crate::interrupt::Interrupt;
use crate::migration::Migration;
use crate::plan::Step;
use crate::script::{self, Batch};

/// A migration still running after this long is reported, and again at this interval.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Runs one step (apply or revert one migration); returns how long it took. `guard` is
/// the lock's first statement for every transaction (see `lock::work_guard`).
pub async fn step(
    session: &Session,
    tables: &Tables,
    migration: &Migration,
    step: Step,
    guard: Option<&str>,
    interrupt: &Interrupt,
) -> Result<Duration> {
    if script::section(migration, step)?.transactional {
        let batch = script::transaction(tables, migration, step, guard)?;
        run_transaction(session, tables, &batch, step, interrupt).await
    } else {
        statement_by_statement(session, tables, migration, step, interrupt).await
    }
}

/// Applies several transactional migrations in one transaction: all or nothing.
pub async fn in_one_transaction(
    session: &Session,
    tables: &Tables,
    migrations: &[&Migration],
    guard: Option<&str>,
    interrupt: &Interrupt,
) -> Result<Duration> {
    let batch = script::one_transaction(tables, migrations, guard);
    run_transaction(session, tables, &batch, Step::Up(0), interrupt).await
}

async fn run_transaction(
    session: &Session,
    tables: &Tables,
    batch: &Batch<'_>,
    step: Step,
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
    if let Some(refused) = db::read_only(&error) {
        return Err(refused);
    }
    let (migration, line) = batch.locate(original_position(&error), completed)?;
    let failure = failure(migration, step, line, &error);
    let detail = format!("SQLSTATE {}: {}", failure.sqlstate, failure.message);
    session
        .execute(&history::event(
            tables,
            action(step),
            &failure.revision,
            "failed",
            Some(&detail),
        ))
        .await?;
    Err(Error::MigrationFailed(Box::new(failure)))
}

/// Runs a `transaction:false` section statement by statement.
async fn statement_by_statement(
    session: &Session,
    tables: &Tables,
    migration: &Migration,
    step: Step,
    interrupt: &Interrupt,
) -> Result<Duration> {
    let started = Instant::now();
    let parts = script::statement_by_statement(tables, migration, step)?;
    let section = script::section(migration, step)?;
    session.execute(&parts.before).await?;
    let label = format!("{} ({})", migration.revision, migration.path);
    for (index, statement) in parts.statements.iter().enumerate() {
        if let Err(signal) = interrupt.check() {
            let undo = script::failed(tables, migration, step, index, "interrupted");
            session.execute(&undo).await?;
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
        if let Some(refused) = db::read_only(&error) {
            return Err(refused);
        }
        let line = section.file_line(statement.line)
            + original_position(&error)
                .map(|p| lines_before(statement.sql, p))
                .unwrap_or(0);
        let mut failure = failure(migration, step, Some(line), &error);
        if index > 0 {
            failure.hint = Some(format!(
                "this transaction:false migration stopped part-way: the statements before line {line} were run. \
                 Complete or undo them by hand, then run `schemagate resolve {rev} --applied` if its changes are \
                 in the database, or `schemagate resolve {rev} --rolled-back` if they are not",
                rev = migration.revision
            ));
        }
        let undo = script::failed(tables, migration, step, index, &failure.message);
        session.execute(&undo).await?;
        return Err(Error::MigrationFailed(Box::new(failure)));
    }
    session.execute(&parts.after).await?;
    Ok(started.elapsed())
}

fn action(step: Step) -> &'static str {
    match step {
        Step::Up(_) => "up",
        Step::Down(_) => "down",
    }
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
    step: Step,
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
            "this statement cannot run inside a transaction: mark the section `-- migrate:{} transaction:false` in {}",
            action(step),
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
        reverting: matches!(step, Step::Down(_)),
    }
}
