//! Running steps: the SQL of `script` sent to the server, and failures turned into
//! located errors (SQLSTATE, message, file and line).
//!
//! When a statement fails, the server's error position (or, when it gives none, the
//! number of statements that had completed) points at the file and line.
//!
//! `--ddl-lock-timeout` (`DdlLock`): a migration statement that waits for a table lock
//! longer than that fails with SQLSTATE 55P03 instead of queueing every reader of the table
//! behind it. Only that is retried, after a backoff with jitter, until `--ddl-retry-timeout`:
//! the whole transaction of a transactional section (a fresh one, with its history row
//! again: nothing of the failed attempt committed), or the one statement of a
//! `transaction:false` section (those before it committed already). SQLSTATE cannot tell
//! our lock_timeout from a `NOWAIT` the migration wrote itself; retrying that is harmless,
//! as it is the same condition. A 55P03 of schemagate's own statements is not retried, nor
//! one inside a transaction block a `transaction:false` section opened itself (the block's
//! earlier statements are gone with it). While a migration statement runs, who blocks it
//! is asked aside every half lock timeout, so the retry's log line can name the blocker.

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::StreamExt;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::ErrorPosition;

use crate::db::guard::Guard;
use crate::db::history::{self, Tables};
use crate::db::interrupt::Interrupt;
use crate::db::script::{self, Batch, Own, Piece};
use crate::db::session::{self, Session};
use crate::error::{Error, MigrationFailure, Outcome, Result};
use crate::files::migration::Migration;
use crate::plan::reconcile::{RowStatus, Step};

/// A statement still running after this long is reported, with what the server says it
/// waits for, and again at this interval (PRODUCT.md section 11).
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// `--ddl-lock-timeout` and `--ddl-retry-timeout`: the `lock_timeout` of migration
/// statements (zero: none, and no retry) and how long a step retries after one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DdlLock {
    pub timeout: Duration,
    pub retry_for: Duration,
    /// Behind a transaction pooler (`--lock-mode transaction`): a `transaction:false`
    /// section gets no session `SET lock_timeout`, which could land on another server
    /// connection and stay there for the pool's other clients.
    pub pooled: bool,
}

impl DdlLock {
    /// No lock_timeout, no retry (scratch databases nobody else uses).
    pub const OFF: DdlLock = DdlLock {
        timeout: Duration::ZERO,
        retry_for: Duration::ZERO,
        pooled: false,
    };

    /// Whether `error` is the lock timeout this retries (see the module doc).
    fn retries(&self, error: &tokio_postgres::Error) -> bool {
        !self.timeout.is_zero() && error.code().is_some_and(|c| c.code() == "55P03")
    }

    /// Who blocks a migration statement is asked this often while it runs.
    fn watch_every(&self) -> Option<Duration> {
        (!self.timeout.is_zero()).then(|| (self.timeout / 2).max(Duration::from_millis(50)))
    }
}

/// The retries of one step: the budget's end and the backoff.
struct Retrying {
    ddl: DdlLock,
    /// The budget runs from the step's first lock timeout.
    started: Option<Instant>,
    delays: backon::ExponentialBackoff,
    /// Attempts that ended in a lock timeout.
    timed_out: u32,
}

impl Retrying {
    fn new(ddl: DdlLock) -> Retrying {
        // backon's jitter adds up to one more delay: 200-400 ms at first, 5-10 s at most.
        let delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(Duration::from_secs(5))
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build();
        Retrying {
            ddl,
            started: None,
            delays,
            timed_out: 0,
        }
    }

    /// After a lock timeout: the sleep before the next attempt (cut to what is left of the
    /// budget), or `None` when `--ddl-retry-timeout` is spent. The last attempt may end up
    /// to one lock timeout past the budget.
    fn next(&mut self) -> Option<Duration> {
        self.timed_out += 1;
        let started = *self.started.get_or_insert_with(Instant::now);
        let left = self.ddl.retry_for.checked_sub(started.elapsed())?;
        if left.is_zero() {
            return None;
        }
        let delay = self.delays.next().unwrap_or(Duration::from_secs(5));
        Some(delay.min(left))
    }

    /// Logs the retry (warn) and sleeps; a signal ends the sleep and the run at once.
    async fn back_off(
        &self,
        label: &str,
        delay: Duration,
        blocker: Option<&str>,
        interrupt: &Interrupt,
    ) -> std::result::Result<(), crate::error::Signal> {
        tracing::warn!(
            event = crate::output::event::MIGRATION_LOCK_RETRY,
            attempt = u64::from(self.timed_out),
            duration_ms = self.started.map_or(0, |at| at.elapsed().as_millis() as u64),
            delay_ms = delay.as_millis() as u64,
            blocker = blocker.unwrap_or(""),
            "migration {label} waited longer than --ddl-lock-timeout {} for a lock (attempt {}), \
             blocked by {}; rolled back, trying again in {} ms",
            crate::text::duration(self.ddl.timeout),
            self.timed_out,
            blocker.unwrap_or("a session that could not be identified"),
            delay.as_millis()
        );
        tokio::select! {
            _ = tokio::time::sleep(delay) => Ok(()),
            signal = interrupt.wait() => Err(signal),
        }
    }

    /// Exit 7 at the budget: who blocked it, how to find and end that, what is left.
    fn exhausted(&self, failure: &mut MigrationFailure, blocker: Option<&str>) {
        let pid = blocker
            .and_then(|b| b.strip_prefix("pid "))
            .and_then(|b| b.split(' ').next())
            .unwrap_or("<pid>");
        let left = match failure.outcome {
            Outcome::PartWay(_) => "the blocked statement and those after it were not applied",
            _ => "nothing of it was applied",
        };
        failure.message = format!(
            "its statement waited longer than --ddl-lock-timeout {} for a lock on each of {} \
             attempts within --ddl-retry-timeout {}, blocked by {}; {left} ({})",
            crate::text::duration(self.ddl.timeout),
            self.timed_out,
            crate::text::duration(self.ddl.retry_for),
            blocker.unwrap_or("a session that could not be identified"),
            failure.message
        );
        failure.hint = Some(format!(
            "let the blocking session finish, or end it with `SELECT pg_terminate_backend({pid})` \
             (see it with `SELECT pid, application_name, state, xact_start, query FROM \
             pg_stat_activity WHERE pid = {pid}`), then run again; or raise --ddl-retry-timeout"
        ));
        if matches!(failure.outcome, Outcome::PartWay(_)) {
            let resolve = resolve_hint(&failure.revision);
            failure.hint = failure.hint.take().map(|h| format!("{h}; {resolve}"));
        }
    }
}

/// Runs one step (apply or revert one migration); returns how long it took.
pub async fn step(
    session: &Session,
    tables: &Tables,
    migration: &Migration,
    step: Step,
    guard: Guard,
    ddl: DdlLock,
    interrupt: &Interrupt,
) -> Result<Duration> {
    if script::section(migration, step)?.transactional {
        let batch = script::transaction(tables, migration, step, guard, ddl.timeout)?;
        run_transaction(session, tables, &batch, step, guard, ddl, interrupt).await
    } else {
        statement_by_statement(session, tables, migration, step, guard, ddl, interrupt).await
    }
}

/// Applies several transactional migrations in one transaction: all or nothing.
pub async fn in_one_transaction(
    session: &Session,
    tables: &Tables,
    migrations: &[&Migration],
    guard: Guard,
    ddl: DdlLock,
    interrupt: &Interrupt,
) -> Result<Duration> {
    let batch = script::one_transaction(tables, migrations, guard, ddl.timeout);
    run_transaction(session, tables, &batch, Step::Up(0), guard, ddl, interrupt).await
}

async fn run_transaction(
    session: &Session,
    tables: &Tables,
    batch: &Batch<'_>,
    step: Step,
    guard: Guard,
    ddl: DdlLock,
    interrupt: &Interrupt,
) -> Result<Duration> {
    let started = Instant::now();
    let label = batch.label();
    let mut retrying = Retrying::new(ddl);
    let (error, place, blocker) = loop {
        let mut watch = Watch::new(ddl);
        let Err((error, completed, position)) =
            run_pieces(session, batch, &label, &mut watch).await
        else {
            return Ok(started.elapsed());
        };
        if session::is_connection_lost(&error) {
            // The server rolls back an open transaction when its connection goes (a `running`
            // row the migration committed early stays, and the next run finds it dirty).
            return Err(Error::ConnectionLost(session::describe(&error)));
        }
        session.execute("ROLLBACK").await?;
        let place = batch.locate(position, completed)?;
        // A lock timeout of the migration's SQL, in the transaction schemagate opened (a
        // hidden COMMIT before it is found below, and not retried).
        if place.own.is_none() && ddl.retries(&error) {
            let revisions: Vec<&str> = batch.migrations().map(|m| m.revision.as_str()).collect();
            if history::running(session, tables, &revisions)
                .await?
                .is_empty()
            {
                if let Some(delay) = retrying.next() {
                    if let Err(signal) = retrying
                        .back_off(&label, delay, watch.blocker.as_deref(), interrupt)
                        .await
                    {
                        return Err(Error::Interrupted(signal));
                    }
                    continue;
                }
                break (error, place, Some(watch.blocker));
            }
        }
        break (error, place, None);
    };
    // A `running` row still there was committed by the migration itself (a hidden COMMIT).
    let revisions: Vec<&str> = batch.migrations().map(|m| m.revision.as_str()).collect();
    let early = history::running(session, tables, &revisions).await?;
    if let Some(revision) = early.first() {
        let migration = batch
            .migrations()
            .find(|m| &m.revision == revision)
            .unwrap_or(place.migration);
        let mut failure = failure(migration, step, None, &error, Outcome::EndedEarly);
        failure.hint = Some(resolve_hint(&migration.revision));
        let detail = format!("ended the transaction early: {}", failure.message);
        for revision in &early {
            session
                .execute(
                    &(history::set_status(tables, revision, RowStatus::Failed)
                        + &history::event(tables, action(step), revision, "failed", Some(&detail))),
                )
                .await?;
        }
        interrupt.check()?;
        return Err(Error::MigrationFailed(Box::new(failure)));
    }
    interrupt.check()?;
    let migration = place.migration;
    if history::is_lost_proof(&error) {
        // The closing row's proof failed, so nothing committed: the lock or the
        // transaction was gone by the end of the migration's SQL.
        let lock_held = probe(session, guard).await?.lock_held;
        let section = script::section(migration, step)?;
        let (detail, result) = if !lock_held {
            let message = lost_lock(migration, &section.sql, Left::Nothing);
            (message.clone(), Error::Conflict(vec![message]))
        } else {
            let mut failure = failure(migration, step, None, &error, Outcome::RolledBack);
            failure.message = "it ended schemagate's transaction itself (a COMMIT, ROLLBACK or \
                END that validation did not find), and nothing of it was committed"
                .into();
            failure.sqlstate = String::new();
            failure.hint = Some(format!(
                "remove the statement that ends the transaction, or mark the section `-- migrate:{} transaction:false` in {}",
                action(step),
                migration.path
            ));
            (
                failure.message.clone(),
                Error::MigrationFailed(Box::new(failure)),
            )
        };
        session
            .execute(&history::event(
                tables,
                action(step),
                &migration.revision,
                "failed",
                Some(&detail),
            ))
            .await?;
        return Err(result);
    }
    if place.own == Some(Own::Opening)
        && let Some(refused) = session::read_only(&error)
    {
        // schemagate's own first write failed: the database itself is read-only.
        return Err(refused);
    }
    let mut failure = failure(migration, step, place.line, &error, Outcome::RolledBack);
    if let Some(line) = place.line {
        let statement = statement_at(script::section(migration, step)?, line);
        permission_hint(&mut failure, statement, session.user());
    }
    if let Some(blocker) = &blocker {
        retrying.exhausted(&mut failure, blocker.as_deref());
    }
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

/// What the server says about the session after a statement.
struct Probe {
    /// This session still holds the advisory lock (always, when it is not a session lock).
    lock_held: bool,
    block: Block,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Block {
    /// No transaction block is open: what ran is committed.
    None,
    Open,
    /// An open block in which a statement failed: only ROLLBACK gets out.
    Failed,
}

async fn probe(session: &Session, guard: Guard) -> Result<Probe> {
    match session.simple_query(&guard.probe()).await {
        Ok(messages) => {
            let row = messages.iter().find_map(|m| match m {
                SimpleQueryMessage::Row(row) => {
                    Some((row.get(0) == Some("t"), row.get(1) == Some("t")))
                }
                _ => None,
            });
            let (lock_held, open) =
                row.ok_or_else(|| Error::Database("the session probe returned no row".into()))?;
            Ok(Probe {
                lock_held,
                block: if open { Block::Open } else { Block::None },
            })
        }
        Err(session::StatementError::Postgres(e))
            if e.code().is_some_and(|c| c.code() == "25P02") =>
        {
            Ok(Probe {
                lock_held: true,
                block: Block::Failed,
            })
        }
        Err(e) => Err(session::classify(e)),
    }
}

/// Why a `transaction:false` section stopped before its end.
enum Stop {
    Failed(tokio_postgres::Error, usize),
    /// The statement at this index opened a transaction block that was still open at the end.
    LeftOpen(usize),
    /// The statement at this index dropped the session's advisory lock.
    LostLock(usize),
    Interrupted(crate::error::Signal),
}

/// Runs a `transaction:false` section statement by statement. After each statement that
/// can change it, and after the last, the server is asked whether a transaction block is
/// open and the lock still held, so what is committed is known, and the history says the
/// truth when it stops.
async fn statement_by_statement(
    session: &Session,
    tables: &Tables,
    migration: &Migration,
    step: Step,
    guard: Guard,
    ddl: DdlLock,
    interrupt: &Interrupt,
) -> Result<Duration> {
    let started = Instant::now();
    let parts = script::statement_by_statement(tables, migration, step, ddl.timeout)?;
    let section = script::section(migration, step)?;
    session.execute(&parts.before).await?;
    if let Some(limit) = parts.limit.as_ref().filter(|_| !ddl.pooled) {
        session.execute(limit).await?;
    }
    let label = format!("{} ({})", migration.revision, migration.path);
    // Statements known committed (a prefix), and the first of an open block's statements.
    let mut committed = 0;
    let mut open_since = None;
    let mut stop = None;
    let mut block = Block::None;
    let mut lock_lost_by = None;
    let mut retrying = Retrying::new(ddl);
    // Set when the retries of a blocked statement ran out: who blocked it last.
    let mut exhausted = None;
    'statements: for (index, statement) in parts.statements.iter().enumerate() {
        if let Err(Error::Interrupted(signal)) = interrupt.check() {
            stop = Some(Stop::Interrupted(signal));
            break;
        }
        let (outcome, probe) = loop {
            let mut watch = Watch::new(ddl);
            let outcome = match &statement.copy {
                None => run_batch(session, statement.sql, &label, &mut watch)
                    .await
                    .map(drop),
                Some(copy) => copy_on_its_own(session, statement.sql, copy.data, block)
                    .await
                    .map_err(|e| (e, 0)),
            };
            if let Err((error, _)) = &outcome
                && session::is_connection_lost(error)
            {
                // The row stays `running`: the next run reports it as dirty.
                return Err(Error::ConnectionLost(session::describe(error)));
            }
            // Asking the server costs a round trip and its work, as much as a tiny statement:
            // only where the answer can have changed. A transaction block opens or closes only
            // at top-level transaction control, which the statement's own words show (each
            // statement is sent alone, so they are the server's words); the lock can only go
            // where a statement drops it, and is checked at the end anyway.
            let last = index + 1 == parts.statements.len();
            let ask = outcome.is_err()
                || last
                || statement.transaction_control().is_some()
                || crate::db::guard::lock_dropping_statement(statement.sql).is_some();
            let probe = if ask {
                self::probe(session, guard).await?
            } else {
                Probe {
                    lock_held: true,
                    block,
                }
            };
            block = probe.block;
            if let Err((error, _)) = &outcome
                && block == Block::None
                && interrupt.received().is_none()
                && ddl.retries(error)
            {
                // Only this statement is sent again: those before it are committed.
                match retrying.next() {
                    Some(delay) => {
                        if let Err(signal) = retrying
                            .back_off(&label, delay, watch.blocker.as_deref(), interrupt)
                            .await
                        {
                            stop = Some(Stop::Interrupted(signal));
                            break 'statements;
                        }
                        continue;
                    }
                    None => exhausted = Some(watch.blocker.take()),
                }
            }
            break (outcome, probe);
        };
        if let Err((error, _)) = outcome {
            stop = Some(match interrupt.received() {
                Some(signal) => Stop::Interrupted(signal),
                None => Stop::Failed(error, index),
            });
            break;
        }
        if block == Block::None {
            committed = index + 1;
            open_since = None;
        } else {
            open_since.get_or_insert(index);
        }
        if !probe.lock_held {
            if index + 1 < parts.statements.len() || block != Block::None {
                stop = Some(Stop::LostLock(index));
                break;
            }
            // The last statement dropped the lock: the migration is complete and recorded
            // as such; the run stops before the next one.
            lock_lost_by = Some(index);
        }
    }
    if stop.is_none()
        && let Some(open) = open_since
    {
        stop = Some(Stop::LeftOpen(open));
    }
    let Some(stop) = stop else {
        session.execute(parts.reset).await?;
        let changed = session.counts(&parts.finish).await?;
        if changed.first() != Some(&1) {
            let message = format!(
                "the history row of migration {rev} ({path}) was changed by someone else while its \
                 statements ran (a `schemagate resolve`, or a runner without the lock): its statements \
                 all ran, but schemagate could not record that. Check the database, then record the \
                 truth with `schemagate resolve {rev} --applied` or `schemagate stamp`",
                rev = migration.revision,
                path = migration.path
            );
            session
                .execute(
                    &(history::event(
                        tables,
                        action(step),
                        &migration.revision,
                        "failed",
                        Some(&message),
                    )),
                )
                .await?;
            return Err(Error::Conflict(vec![message]));
        }
        session.execute(&parts.after).await?;
        if let Some(index) = lock_lost_by {
            return Err(Error::Conflict(vec![lost_lock(
                migration,
                parts.statements[index].sql,
                Left::Completed,
            )]));
        }
        return Ok(started.elapsed());
    };

    if block != Block::None {
        session.execute("ROLLBACK").await?;
    }
    let line_of = |index: usize| {
        parts
            .statements
            .get(index)
            .map(|s| section.file_line(s.line))
    };
    let outcome = match line_of(committed) {
        Some(line) if committed > 0 => Outcome::PartWay(line),
        _ if committed > 0 => Outcome::PartWay(section.first_line + section.sql.lines().count()),
        _ => Outcome::NothingCommitted,
    };
    let said = match outcome {
        Outcome::PartWay(line) => format!(
            "migration {} stopped part-way; the statements before line {line} were committed",
            migration.revision
        ),
        _ => format!(
            "migration {} stopped before any of it was committed",
            migration.revision
        ),
    };
    let (detail, error) = match stop {
        Stop::Interrupted(signal) => {
            let mut detail = said.clone();
            if committed > 0 {
                detail.push_str(&format!(". {}", resolve_hint(&migration.revision)));
            }
            (said, Error::Stopped { signal, detail })
        }
        Stop::LostLock(index) => {
            let left = if committed > 0 {
                Left::PartWay(said)
            } else {
                Left::Nothing
            };
            let message = lost_lock(migration, parts.statements[index].sql, left);
            (message.clone(), Error::Conflict(vec![message]))
        }
        Stop::LeftOpen(index) => {
            let line = line_of(index);
            let mut failure = MigrationFailure {
                revision: migration.revision.clone(),
                file: migration.path.clone(),
                line,
                sqlstate: String::new(),
                message: format!(
                    "it left a transaction open (the transaction begun at line {} has no COMMIT), \
                     so schemagate rolled that transaction back",
                    line.unwrap_or(section.first_line)
                ),
                hint: Some("end the transaction with COMMIT in the migration".into()),
                reverting: matches!(step, Step::Down(_)),
                outcome,
            };
            if committed > 0 {
                failure.hint = Some(format!(
                    "end the transaction with COMMIT; {}",
                    resolve_hint(&migration.revision)
                ));
            }
            (
                failure.message.clone(),
                Error::MigrationFailed(Box::new(failure)),
            )
        }
        Stop::Failed(error, index) => {
            let statement = &parts.statements[index];
            let line = section.file_line(statement.line)
                + match (&statement.copy, copy_line(&error)) {
                    // Data line N comes N lines after the statement's last line.
                    (Some(_), Some(n)) => statement.sql.matches('\n').count() + n,
                    _ => original_position(&error)
                        .map(|p| lines_before(statement.sql, p))
                        .unwrap_or(0),
                };
            let mut failure = failure(migration, step, Some(line), &error, outcome);
            permission_hint(&mut failure, Some(statement.sql), session.user());
            if committed > 0 {
                failure.hint = Some(format!(
                    "complete or undo the committed statements by hand; {}",
                    resolve_hint(&migration.revision)
                ));
            }
            if let Some(blocker) = &exhausted {
                retrying.exhausted(&mut failure, blocker.as_deref());
            }
            (
                format!("SQLSTATE {}: {}", failure.sqlstate, failure.message),
                Error::MigrationFailed(Box::new(failure)),
            )
        }
    };
    let undo = script::failed(tables, migration, step, committed, &detail);
    session.execute(&undo).await?;
    Err(error)
}

/// The statement of `section` that the file line `line` falls in.
fn statement_at(section: &crate::files::migration::Section, line: usize) -> Option<&str> {
    let statements = crate::files::split::split(&section.sql).ok()?;
    statements
        .iter()
        .rev()
        .find(|s| section.file_line(s.line) <= line)
        .map(|s| s.sql)
}

/// SQLSTATE 42501: say which grant is missing on which object, and who can give it.
fn permission_hint(failure: &mut MigrationFailure, statement: Option<&str>, role: &str) {
    if failure.sqlstate != "42501" || failure.hint.is_some() {
        return;
    }
    failure.hint = Some(permission_fix(&failure.message, statement, role));
}

/// The fix for a "permission denied" or "must be owner" message (pure, for tests).
pub fn permission_fix(message: &str, statement: Option<&str>, role: &str) -> String {
    let verb = statement
        .and_then(|s| s.split_whitespace().next())
        .map(|w| w.trim_end_matches(';').to_ascii_uppercase())
        .unwrap_or_default();
    let after = |prefix: &str| {
        message.find(prefix).map(|at| {
            let rest = &message[at + prefix.len()..];
            let mut words = rest.splitn(2, ' ');
            let kind = words.next().unwrap_or_default().to_string();
            let object = words
                .next()
                .unwrap_or_default()
                .split([' ', '(', ';'])
                .next()
                .unwrap_or_default()
                .to_string();
            (kind, object)
        })
    };
    if let Some((kind, object)) = after("must be owner of ") {
        return format!(
            "only the owner of {kind} {object} (or a member of its owning role) may do this: run the \
             migration as that role, or have it run `ALTER {} {object} OWNER TO {role}`",
            kind.to_ascii_uppercase()
        );
    }
    if let Some((kind, object)) = after("permission denied for ") {
        let privilege = match (kind.as_str(), verb.as_str()) {
            ("schema", "CREATE" | "ALTER") => "CREATE",
            ("schema", _) => "USAGE",
            ("database", _) => "CREATE",
            ("sequence", _) => "USAGE, SELECT",
            ("function" | "procedure" | "routine", _) => "EXECUTE",
            (
                "table" | "relation" | "view",
                v @ ("SELECT" | "INSERT" | "UPDATE" | "DELETE" | "TRUNCATE"),
            ) => v,
            ("table" | "relation" | "view", "COPY") => "INSERT",
            ("type" | "domain" | "language", _) => "USAGE",
            _ => "<privilege>",
        };
        let on = match kind.as_str() {
            "relation" | "view" => "TABLE".to_string(),
            other => other.to_ascii_uppercase(),
        };
        let lacks = if privilege == "<privilege>" {
            "a privilege this statement needs".to_string()
        } else {
            privilege.to_string()
        };
        return format!(
            "the role {role} lacks {lacks} on {kind} {object}: its owner (or a superuser) can \
             grant it with `GRANT {privilege} ON {on} {object} TO {role}`, or run the migrations \
             as a role that has it"
        );
    }
    format!(
        "the role {role} is not allowed to do this: run the migrations as a role that owns the \
         objects they change, or grant {role} what the statement needs"
    )
}

fn resolve_hint(revision: &str) -> String {
    format!(
        "then run `schemagate resolve {revision} --applied` if its changes are in the database, \
         or `schemagate resolve {revision} --rolled-back` if they are not"
    )
}

/// What a migration that lost the lock left behind.
enum Left {
    Nothing,
    /// All of it ran and its row says applied.
    Completed,
    /// What was committed, said for a person.
    PartWay(String),
}

/// Exit 8: a migration dropped the session's advisory lock, so another runner could start.
fn lost_lock(migration: &Migration, sql: &str, left: Left) -> String {
    let class = crate::db::guard::lock_dropping_statement(sql)
        .map(|name| format!("it runs {name}, which"))
        .unwrap_or_else(|| "a statement in it".to_string());
    let done = match left {
        Left::Nothing => "nothing of it was committed".to_string(),
        Left::Completed => "it completed and is recorded as applied".to_string(),
        Left::PartWay(said) => format!("{said}; {}", resolve_hint(&migration.revision)),
    };
    format!(
        "the advisory lock was lost during migration {} ({}): {class} releases schemagate's \
         session lock, so another runner could have started. schemagate stopped; {done}. Remove \
         that statement from the migration",
        migration.revision, migration.path
    )
}

fn action(step: Step) -> &'static str {
    match step {
        Step::Up(_) => "up",
        Step::Down(_) => "down",
    }
}

/// What failed in a batch: the error, the statements completed before it, and the
/// 1-based character position in the batch it points at, when known.
type PieceError = (tokio_postgres::Error, usize, Option<usize>);

/// Sends a batch piece by piece (`Batch::pieces`: COPY data goes by the COPY protocol).
async fn run_pieces(
    session: &Session,
    batch: &Batch<'_>,
    label: &str,
    watch: &mut Watch,
) -> std::result::Result<(), PieceError> {
    let mut completed = 0;
    for piece in batch.pieces() {
        match piece {
            Piece::Query { start, sql } => match run_batch(session, sql, label, watch).await {
                Ok(done) => completed += done,
                Err((error, done)) => {
                    let position =
                        original_position(&error).map(|p| batch.sql[..start].chars().count() + p);
                    return Err((error, completed + done, position));
                }
            },
            Piece::Copy {
                statement,
                data,
                data_start,
            } => match copy_in(session, statement, data).await {
                Ok(_) => completed += 1,
                Err(error) => {
                    // The server counts data lines from 1: point at that line of the file.
                    let position = copy_line(&error).and_then(|n| {
                        let offset = match n {
                            1 => 0,
                            n => data.match_indices('\n').nth(n - 2)?.0 + 1,
                        };
                        Some(batch.sql[..data_start + offset].chars().count() + 1)
                    });
                    return Err((error, completed, position));
                }
            },
        }
    }
    Ok(())
}

/// Sends COPY data at most this much at a time.
const COPY_CHUNK: usize = 1 << 20;

/// `COPY ... FROM stdin` by the COPY protocol, with its inline data.
async fn copy_in(
    session: &Session,
    statement: &str,
    data: &str,
) -> std::result::Result<u64, tokio_postgres::Error> {
    use futures_util::SinkExt;
    let sink = session.client.copy_in::<_, bytes::Bytes>(statement).await?;
    futures_util::pin_mut!(sink);
    for chunk in data.as_bytes().chunks(COPY_CHUNK) {
        sink.send(bytes::Bytes::copy_from_slice(chunk)).await?;
    }
    sink.finish().await
}

/// A COPY in a `transaction:false` section. Outside a block it gets one of its own, so
/// its messages stay on one backend behind a transaction pooler; it is one statement
/// either way.
async fn copy_on_its_own(
    session: &Session,
    statement: &str,
    data: &str,
    block: Block,
) -> std::result::Result<(), tokio_postgres::Error> {
    if block != Block::None {
        return copy_in(session, statement, data).await.map(drop);
    }
    session.client.batch_execute("BEGIN").await?;
    match copy_in(session, statement, data).await {
        Ok(_) => session.client.batch_execute("COMMIT").await,
        Err(error) => {
            let _ = session.client.batch_execute("ROLLBACK").await;
            Err(error)
        }
    }
}

/// The data line a COPY error names (`COPY t, line 3, column a: ...`).
fn copy_line(error: &tokio_postgres::Error) -> Option<usize> {
    let context = error.as_db_error()?.where_()?;
    let rest = &context[context.find(", line ")? + ", line ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|&n| n > 0)
}

/// Sends a batch and counts the statements that completed (before an error), reporting a
/// long-running batch every few seconds.
async fn run_batch(
    session: &Session,
    sql: &str,
    label: &str,
    watch: &mut Watch,
) -> std::result::Result<usize, (tokio_postgres::Error, usize)> {
    let started = Instant::now();
    let mut completed = 0;
    let mut progress =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    let every = watch.every.unwrap_or(PROGRESS_EVERY);
    let mut look = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let watching = watch.every.is_some();
    let stream = session.client.simple_query_raw(sql);
    tokio::pin!(stream);
    let stream = loop {
        tokio::select! {
            s = &mut stream => break s.map_err(|e| (e, 0))?,
            _ = progress.tick() => report(session, label, started).await,
            _ = look.tick(), if watching => watch.look(session).await,
        }
    };
    tokio::pin!(stream);
    loop {
        tokio::select! {
            message = stream.next() => match message {
                None => return Ok(completed),
                Some(Ok(SimpleQueryMessage::CommandComplete(_))) => completed += 1,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err((e, completed)),
            },
            _ = progress.tick() => report(session, label, started).await,
            _ = look.tick(), if watching => watch.look(session).await,
        }
    }
}

/// Who was last seen blocking a migration statement (asked only with a DDL lock timeout:
/// the statement that times out is no longer blocked, so it must be asked before).
struct Watch {
    every: Option<Duration>,
    blocker: Option<String>,
}

impl Watch {
    fn new(ddl: DdlLock) -> Watch {
        Watch {
            every: ddl.watch_every(),
            blocker: None,
        }
    }

    async fn look(&mut self, session: &Session) {
        if let Some(blocker) = session.blockers().await {
            self.blocker = Some(blocker);
        }
    }
}

/// The heartbeat of a long statement: how long, what it waits for, who blocks it. An init
/// container stuck behind a lock is otherwise the most confusing outage there is.
async fn report(session: &Session, label: &str, started: Instant) {
    let elapsed = started.elapsed();
    let (wait, blocker) = session.activity().await.unwrap_or_default();
    let doing = match (&wait, &blocker) {
        (_, Some(blocker)) => format!(
            "waiting for a lock ({}), blocked by {blocker}",
            wait.as_deref().unwrap_or("Lock")
        ),
        (Some(wait), None) => format!("waiting on {wait}"),
        (None, None) => "working (no wait event)".to_string(),
    };
    tracing::info!(
        event = crate::output::event::MIGRATION_RUNNING,
        duration_ms = elapsed.as_millis() as u64,
        wait_event = wait.as_deref().unwrap_or(""),
        blocker = blocker.as_deref().unwrap_or(""),
        "migration {label} still running after {}: {doing}",
        crate::text::duration(Duration::from_secs(elapsed.as_secs()))
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
    outcome: Outcome,
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
        None => (String::new(), session::describe(error), None),
    };
    if let Some(context) = error.as_db_error().and_then(|db| db.where_()) {
        message.push_str(&format!("; context: {}", context.replace('\n', "; ")));
    }
    let hint = match sqlstate.as_str() {
        "25001" => Some(format!(
            "this statement cannot run inside a transaction: mark the section `-- migrate:{} transaction:false` in {}",
            action(step),
            migration.path
        )),
        // schemagate's own first write worked, so the migration made its transaction read-only.
        "25006" => Some(
            "the migration made its own transaction read-only (SET TRANSACTION READ ONLY or \
             default_transaction_read_only): remove that, schemagate must write its history row"
                .into(),
        ),
        _ => server_hint,
    };
    MigrationFailure {
        revision: migration.revision.clone(),
        file: migration.path.clone(),
        line,
        sqlstate,
        message,
        hint,
        reverting: matches!(step, Step::Down(_)),
        outcome,
    }
}
