//! The commands that change the database (`up`, `down`, `redo`, `reset`, `stamp`,
//! `resolve`) share one run: wait for the server, look, lock, reconcile, act, release.
//!
//! A command decides, from the history it reads under the lock, a list of *goals*: the
//! set of applied migrations it wants, in turn (`redo` is "without the last one", then
//! "as before"). Relative requests such as `+1` or `-2` are thus fixed once, under the
//! lock. The runner then converges to each goal one step at a time. If the connection is
//! lost, it reconnects within what is left of the wait budget, takes the lock again, reads
//! the history again and converges from there to the same goal: a step whose commit raced
//! the disconnect is neither lost nor repeated.

use std::time::{Duration, Instant};

use crate::cli::config;
use crate::cli::context::Context;
use crate::cli::report;
use crate::db::connection::Connection;
use crate::db::guard::Guard;
use crate::db::history::{self, Tables};
use crate::db::lock::{Acquired, Lock};
use crate::db::session::Session;
use crate::db::{apply, identity, lock, wait};
use crate::error::{Error, Result};
use crate::files::graph::Graph;
use crate::files::migration::Migration;
use crate::output::event;
use crate::plan::reconcile::{self, AppliedRow, Options, Step};
use crate::text::plural;

/// What a command wants, decided from the history.
pub struct Decision {
    /// Applied sets (indexed by node) to reach in turn.
    pub goals: Vec<Vec<bool>>,
    /// Let through by an option or by default; logged once.
    pub warnings: Vec<String>,
}

/// Counts of a finished run, for its summary line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub applied: usize,
    pub reverted: usize,
}

pub struct Migrator<'a> {
    ctx: &'a Context<'a>,
    pub connection: Connection,
    pub graph: &'a Graph,
    pub tables: Tables,
    pub key: i64,
    /// Reconciling after a reconnection uses these, as the command's decision did.
    pub options: Options,
    /// Apply every up step of a goal in one transaction.
    pub single_transaction: bool,
    budget: wait::Budget,
}

impl<'a> Migrator<'a> {
    pub fn new(ctx: &'a Context<'a>, graph: &'a Graph, options: Options) -> Result<Self> {
        let connection = config::connection(ctx.global, ctx.env)?;
        Ok(Migrator::for_target(
            ctx,
            graph,
            options,
            connection,
            &ctx.global.schema,
        ))
    }

    /// A migrator for one database (and the schema of its history tables) of a fleet,
    /// with a wait budget of its own.
    pub fn for_target(
        ctx: &'a Context<'a>,
        graph: &'a Graph,
        options: Options,
        connection: Connection,
        schema: &str,
    ) -> Self {
        let tables = Tables::new(schema);
        Migrator {
            ctx,
            connection,
            graph,
            key: ctx.global.lock_key.unwrap_or_else(|| tables.lock_key()),
            tables,
            options,
            single_transaction: false,
            budget: wait::Budget::new(ctx.global.wait_timeout),
        }
    }

    /// Connects within what is left of the wait budget. schemagate's own statements on it
    /// wait for table locks no longer than the lock timeout.
    pub async fn connect(&mut self) -> Result<Session> {
        let session = wait::connect(&self.connection, &mut self.budget, self.ctx.interrupt).await?;
        Ok(session.limit_own_statements(self.ctx.global.lock_timeout))
    }

    /// Reads the history without the lock (empty for a fresh database), with when, how
    /// and by whom each row was recorded if `recorded`.
    pub async fn read_history(&mut self, recorded: bool) -> Result<Vec<AppliedRow>> {
        loop {
            let session = self.connect().await?;
            let rows = if recorded {
                history::read_recorded(&session, &self.tables).await
            } else {
                history::read(&session, &self.tables).await
            };
            match rows {
                Err(Error::ConnectionLost(reason)) => self.reconnecting(&reason),
                other => {
                    session.close().await;
                    return other.map(Option::unwrap_or_default);
                }
            }
        }
    }

    /// Decides and converges. With `look_first`, the history is first read without the
    /// lock, and a run with nothing to do ends there: fifty pods starting at once never
    /// queue behind each other.
    pub async fn converge(
        &mut self,
        look_first: bool,
        decide: impl Fn(&Graph, &[AppliedRow]) -> Result<Decision>,
    ) -> Result<Tally> {
        let mut run = Run {
            goals: None,
            phase: 0,
            tally: Tally::default(),
        };
        let mut look = look_first;
        loop {
            let session = self.connect().await?;
            let outcome = self.converge_once(&session, look, &decide, &mut run).await;
            look = false;
            match outcome {
                Err(Error::ConnectionLost(reason)) => self.reconnecting(&reason),
                other => {
                    session.close().await;
                    return other.map(|()| run.tally);
                }
            }
        }
    }

    async fn converge_once(
        &self,
        session: &Session,
        look: bool,
        decide: &impl Fn(&Graph, &[AppliedRow]) -> Result<Decision>,
        run: &mut Run,
    ) -> Result<()> {
        let deadline = Instant::now() + self.ctx.global.lock_timeout;
        let held = loop {
            if look && self.nothing_to_do(session, decide, run).await? {
                return Ok(());
            }
            // Woken when a holder lets go: the work waited for may be done, so look again.
            match self.lock(session, deadline, look).await? {
                Acquired::Held(lock) => break lock,
                Acquired::Woken => {}
            }
        };
        let outcome = self.converge_locked(session, decide, run, &held).await;
        if outcome.is_ok() {
            // On an error the connection is closed right after, which frees the lock; an
            // unlock there could only fail inside an aborted transaction and hide the cause.
            lock::release(session, held).await?;
        }
        outcome
    }

    /// The look phase: whether, read without the lock, the history needs nothing done.
    async fn nothing_to_do(
        &self,
        session: &Session,
        decide: &impl Fn(&Graph, &[AppliedRow]) -> Result<Decision>,
        run: &Run,
    ) -> Result<bool> {
        let rows = history::read(session, &self.tables)
            .await?
            .unwrap_or_default();
        // A respelling or an allowed rename is recorded under the lock.
        if !identity::rekeys(self.graph, &rows, self.options).is_empty() {
            return Ok(false);
        }
        // A conflict or an impossible request is confirmed under the lock.
        let Ok(decision) = decide(self.graph, &rows) else {
            return Ok(false);
        };
        let mut applied = reconcile::reconcile(self.graph, &rows, self.options).applied;
        let nothing = decision.goals.iter().all(|goal| {
            let nothing = reconcile::converge(self.graph, &applied, goal).is_empty();
            applied.clone_from(goal);
            nothing
        });
        if nothing {
            decision.warnings.iter().for_each(|w| tracing::warn!("{w}"));
            self.summary(&rows, run.tally);
        }
        Ok(nothing)
    }

    async fn converge_locked(
        &self,
        session: &Session,
        decide: &impl Fn(&Graph, &[AppliedRow]) -> Result<Decision>,
        run: &mut Run,
        held: &Lock,
    ) -> Result<()> {
        let interrupt = self.ctx.interrupt;
        history::ensure_tables(session, &self.tables).await?;
        let rows = self.settled_history(session).await?;
        // Rows take their files' spelling before any step.
        let rows = identity::record(session, &self.tables, self.graph, rows, self.options).await?;
        let state = reconcile::reconcile(self.graph, &rows, self.options);
        let goals = match &run.goals {
            Some(goals) => {
                // Reconnected: an interrupted transaction:false step is dirty now.
                conflicts(&state)?;
                goals.clone()
            }
            None => {
                let decision = decide(self.graph, &rows)?;
                decision.warnings.iter().for_each(|w| tracing::warn!("{w}"));
                run.goals = Some(decision.goals.clone());
                decision.goals
            }
        };
        let mut applied = state.applied;
        let guard = lock::guard(held, self.key);
        while let Some(goal) = goals.get(run.phase) {
            let steps = reconcile::converge(self.graph, &applied, goal);
            if self.single_transaction && steps.iter().all(|s| matches!(s, Step::Up(_))) {
                lock::check(held)?;
                self.all_or_nothing(session, &steps, guard, &mut run.tally)
                    .await?;
            } else {
                let total = steps.len();
                for (index, step) in steps.into_iter().enumerate() {
                    interrupt.check()?;
                    lock::check(held)?;
                    self.step(session, step, (index + 1, total), guard, &mut run.tally)
                        .await?;
                }
            }
            applied.clone_from(goal);
            run.phase += 1;
        }
        let rows = history::read(session, &self.tables)
            .await?
            .unwrap_or_default();
        self.summary(&rows, run.tally);
        Ok(())
    }

    async fn step(
        &self,
        session: &Session,
        step: Step,
        (index, total): (usize, usize),
        guard: Guard,
        tally: &mut Tally,
    ) -> Result<()> {
        let (Step::Up(node) | Step::Down(node)) = step;
        let m = self.graph.migration(node);
        let (doing, done) = match step {
            Step::Up(_) => ("applying", "applied"),
            Step::Down(_) => ("reverting", "reverted"),
        };
        tracing::info!(
            event = event::MIGRATION_APPLYING,
            revision = %m.revision,
            file = %m.path,
            index,
            total,
            "{doing} {} {} [{index}/{total}]",
            m.revision,
            m.path
        );
        if let Step::Up(_) = step {
            self.rerun_repeatables(session, &[m]).await?;
        }
        if let Ok(section) = crate::db::script::section(m, step) {
            tracing::debug!(
                "{} {}: {} bytes of SQL from line {}, {}",
                m.revision,
                m.path,
                section.sql.len(),
                section.first_line,
                if section.transactional {
                    "in one transaction"
                } else {
                    "transaction:false, statement by statement"
                }
            );
        }
        let took = apply::step(
            session,
            &self.tables,
            m,
            step,
            guard,
            self.ctx.global.ddl_lock,
            self.ctx.interrupt,
        )
        .await?;
        match step {
            Step::Up(_) => tally.applied += 1,
            Step::Down(_) => tally.reverted += 1,
        }
        let finished = match step {
            Step::Up(_) => event::MIGRATION_APPLIED,
            Step::Down(_) => event::MIGRATION_REVERTED,
        };
        tracing::info!(
            event = finished,
            revision = %m.revision,
            file = %m.path,
            duration_ms = took.as_millis() as u64,
            "{done} {} {} in {}",
            m.revision,
            m.description,
            crate::text::duration(took)
        );
        Ok(())
    }

    async fn all_or_nothing(
        &self,
        session: &Session,
        steps: &[Step],
        guard: Guard,
        tally: &mut Tally,
    ) -> Result<()> {
        if steps.is_empty() {
            return Ok(());
        }
        let migrations: Vec<_> = steps
            .iter()
            .map(|&(Step::Up(n) | Step::Down(n))| self.graph.migration(n))
            .collect();
        if let Some(m) = migrations.iter().find(|m| !m.up.transactional) {
            return Err(Error::Usage(format!(
                "--single-transaction cannot include {} ({}), which is transaction:false: run without --single-transaction",
                m.revision, m.path
            )));
        }
        self.ctx.interrupt.check()?;
        self.rerun_repeatables(session, &migrations).await?;
        tracing::info!(
            "applying {} migrations in one transaction",
            migrations.len()
        );
        let took = apply::in_one_transaction(
            session,
            &self.tables,
            &migrations,
            guard,
            self.ctx.global.ddl_lock,
            self.ctx.interrupt,
        )
        .await?;
        tally.applied += migrations.len();
        for m in &migrations {
            tracing::info!(
                event = event::MIGRATION_APPLIED,
                revision = %m.revision,
                file = %m.path,
                duration_ms = took.as_millis() as u64,
                "applied {} {} (in the one transaction)",
                m.revision,
                m.description
            );
        }
        tracing::info!(
            duration_ms = took.as_millis() as u64,
            "committed {} migrations in {}",
            migrations.len(),
            crate::text::duration(took)
        );
        Ok(())
    }

    /// A Flyway repeatable migration due again loses its old row first (under the lock),
    /// so applying it records the new checksum; if that apply fails, it is simply due.
    async fn rerun_repeatables(&self, session: &Session, migrations: &[&Migration]) -> Result<()> {
        for m in migrations.iter().filter(|m| m.is_repeatable()) {
            session
                .execute(&history::delete_row(&self.tables, &m.revision))
                .await?;
        }
        Ok(())
    }

    /// Runs `work` on a locked session with the current history (the state tables
    /// exist), and releases the lock. A lost connection is retried within the wait
    /// budget, so `work` must decide from the history it is given.
    pub async fn with_lock<T>(
        &mut self,
        work: impl AsyncFn(&Session, Vec<AppliedRow>) -> Result<T>,
    ) -> Result<T> {
        loop {
            let session = self.connect().await?;
            let outcome = async {
                let deadline = Instant::now() + self.ctx.global.lock_timeout;
                let Acquired::Held(held) = self.lock(&session, deadline, false).await? else {
                    return Err(Error::Internal("woken without asking to be".into()));
                };
                history::ensure_tables(&session, &self.tables).await?;
                let rows = self.settled_history(&session).await?;
                // Rows take their files' spelling first.
                let rows = identity::record(&session, &self.tables, self.graph, rows, self.options)
                    .await?;
                let value = work(&session, rows).await?;
                lock::release(&session, held).await?;
                Ok(value)
            }
            .await;
            match outcome {
                Err(Error::ConnectionLost(reason)) => self.reconnecting(&reason),
                other => {
                    session.close().await;
                    return other;
                }
            }
        }
    }

    /// The history under the lock, once no `running` row's statement is still active on
    /// the server. Such a row belongs to a runner that lost its lock connection but not its
    /// backend (a `transaction:false` statement runs on, client or not): calling it dirty,
    /// or letting `resolve` settle it, while the statement runs would be a lie. Asked of
    /// `pg_stat_activity` by the statements' text, which works behind a pooler too.
    async fn settled_history(&self, session: &Session) -> Result<Vec<AppliedRow>> {
        let started = Instant::now();
        let mut reported: Option<Instant> = None;
        loop {
            let rows = history::read(session, &self.tables)
                .await?
                .unwrap_or_default();
            let Some(sql) = self.running_statements(&rows) else {
                return Ok(rows);
            };
            let active = session.rows(&sql).await?;
            let Some(first) = active.first() else {
                if reported.is_some() {
                    tracing::info!(
                        event = event::LOCK_DRAINED,
                        duration_ms = started.elapsed().as_millis() as u64,
                        "the interrupted run's last statement is done"
                    );
                }
                return Ok(rows);
            };
            let field = |i: usize| first.get(i).cloned().flatten().unwrap_or_default();
            let holder = format!("pid {} (migration {}, `{}`)", field(0), field(1), field(2));
            if started.elapsed() >= self.ctx.global.lock_timeout {
                return Err(Error::LockTimeout {
                    waited: self.ctx.global.lock_timeout,
                    holder: Some(holder),
                });
            }
            if reported.is_none_or(|at| at.elapsed() >= Duration::from_secs(5)) {
                tracing::info!(
                    "waiting for the last statement of an interrupted run: {holder} is still running"
                );
                reported = Some(Instant::now());
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                signal = self.ctx.interrupt.wait() => return Err(Error::Interrupted(signal)),
            }
        }
    }

    /// A query of the backends running a statement of a `running` row's
    /// `transaction:false` section (or what follows its last one), or between two of them
    /// (idle for a moment, its last query one of those), or `None` when there is no such
    /// row. A backend idle for longer is not a runner at work: behind a pooler it may keep
    /// such a last query for ever.
    fn running_statements(&self, rows: &[AppliedRow]) -> Option<String> {
        // pg_stat_activity keeps the first 1023 bytes of a query: compare 200 characters.
        let mut candidates = Vec::new();
        for row in rows
            .iter()
            .filter(|r| r.status == reconcile::RowStatus::Running)
        {
            let Some(m) = self
                .graph
                .find(&row.revision)
                .map(|n| self.graph.migration(n))
            else {
                continue;
            };
            let mut texts: Vec<String> = Vec::new();
            for section in [Some(&m.up), m.down.as_ref()].into_iter().flatten() {
                if section.transactional {
                    continue;
                }
                for statement in crate::files::split::split(&section.sql).unwrap_or_default() {
                    texts.push(statement.sql.to_string());
                }
            }
            if texts.is_empty() {
                continue;
            }
            // And what its runner sends right after the last one, before the row says so:
            // the probe of its session (in either lock mode), the reset, the closing row.
            for session_lock in [true, false] {
                texts.push(
                    Guard {
                        key: self.key,
                        session_lock,
                    }
                    .probe(),
                );
            }
            texts.push(crate::db::script::RESET_SESSION.to_string());
            texts.push(history::finish_row(&self.tables, &m.revision));
            texts.push(history::delete_running_row(&self.tables, &m.revision));
            for text in texts {
                let start: String = text.chars().take(200).collect();
                candidates.push(format!(
                    "({}, {})",
                    history::quote_literal(&start),
                    history::quote_literal(&m.revision)
                ));
            }
        }
        if candidates.is_empty() {
            return None;
        }
        Some(format!(
            "SELECT a.pid::text, c.revision, left(regexp_replace(a.query, '\\s+', ' ', 'g'), 120) \
             FROM pg_stat_activity a JOIN (VALUES {}) AS c (start, revision) \
             ON left(a.query, 200) = c.start \
             WHERE a.pid <> pg_backend_pid() AND (a.state = 'active' \
                OR (a.state LIKE 'idle%' AND a.state_change > now() - interval '2 seconds'))",
            candidates.join(", ")
        ))
    }

    async fn lock(&self, session: &Session, deadline: Instant, wake: bool) -> Result<Acquired> {
        let request = lock::Request {
            session,
            connection: &self.connection,
            key: self.key,
            timeout: self.ctx.global.lock_timeout,
            deadline,
            wake,
            interrupt: self.ctx.interrupt,
            wait_timeout: self.ctx.global.wait_timeout,
        };
        lock::acquire(self.ctx.global.lock_mode, &request).await
    }

    fn reconnecting(&self, reason: &str) {
        tracing::warn!(
            "connection lost ({reason}); reconnecting within the remaining {} of --wait-timeout",
            crate::text::duration(Duration::from_secs(self.budget.remaining.as_secs()))
        );
    }

    fn summary(&self, rows: &[AppliedRow], tally: Tally) {
        let standing = report::standing(self.graph, rows);
        let elapsed = self.ctx.started.elapsed().as_millis() as u64;
        let mut done = Vec::new();
        if tally.applied > 0 {
            done.push(format!("applied {}", plural(tally.applied, "migration")));
        }
        if tally.reverted > 0 {
            done.push(format!("reverted {}", plural(tally.reverted, "migration")));
        }
        if done.is_empty() {
            tracing::info!(
                elapsed_ms = elapsed,
                "nothing to do; database at {standing}"
            );
        } else {
            tracing::info!(
                applied = tally.applied,
                reverted = tally.reverted,
                elapsed_ms = elapsed,
                "{} in {elapsed} ms; database at {standing}",
                done.join(", ")
            );
        }
    }
}

/// Progress of a converging run, kept across reconnections.
struct Run {
    goals: Option<Vec<Vec<bool>>>,
    /// Index of the goal being reached.
    phase: usize,
    tally: Tally,
}

/// The conflicts of a plan as the error that stops the run (exit 8), if any.
pub fn conflicts(plan: &reconcile::Plan) -> Result<()> {
    if plan.conflicts.is_empty() {
        Ok(())
    } else {
        Err(Error::Conflict(
            plan.conflicts.iter().map(|c| c.message()).collect(),
        ))
    }
}
