//! The commands. Each is the phases of PRODUCT.md section 3 in order: files, wait, look,
//! lock, reconcile, apply, exit.

use std::time::{Duration, Instant};

use crate::config::{self, Command, Global, ResolveArgs, UpArgs};
use crate::db::Session;
use crate::error::{Error, FileProblem, Result};
use crate::graph::Graph;
use crate::history::{self, Tables};
use crate::interrupt::Interrupt;
use crate::plan::{self, AppliedRow, Options, RowStatus};
use crate::{apply, lock, source, wait};

/// What every command needs: the settings and the signal watcher.
pub struct Context<'a> {
    pub global: &'a Global,
    pub interrupt: &'a Interrupt,
    pub env: config::Env<'a>,
}

pub async fn run(command: &Command, ctx: &Context<'_>) -> Result<()> {
    match command {
        Command::Up(args) => up(ctx, args).await,
        Command::Validate { strict } => validate(ctx, *strict),
        Command::Wait => wait_only(ctx).await,
        Command::Resolve(args) => resolve(ctx, args).await,
    }
}

/// Reads and validates the files; several heads are a warning here.
fn load(ctx: &Context<'_>) -> Result<Graph> {
    let graph = source::load(&ctx.global.migrations)?;
    let heads = graph.heads();
    if heads.len() > 1 {
        tracing::warn!(
            "{} heads ({}): every branch is applied, in revision order; join them with a merge migration that revises all of them",
            heads.len(),
            revisions(&graph, &heads)
        );
    }
    Ok(graph)
}

fn revisions(graph: &Graph, nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|&n| graph.migration(n).revision.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn validate(ctx: &Context<'_>, strict: bool) -> Result<()> {
    let graph = source::load(&ctx.global.migrations)?;
    let heads = graph.heads();
    if strict && heads.len() > 1 {
        return Err(Error::InvalidFiles(
            heads
                .iter()
                .map(|&h| {
                    FileProblem::new(
                        &graph.migration(h).path,
                        None,
                        format!(
                            "revision {} is one of {} heads: write a merge migration whose `-- migrate:revises` names {}",
                            graph.migration(h).revision,
                            heads.len(),
                            revisions(&graph, &heads)
                        ),
                    )
                })
                .collect(),
        ));
    }
    println!(
        "ok: {} migration{}, {} head{} ({})",
        graph.len(),
        if graph.len() == 1 { "" } else { "s" },
        heads.len(),
        if heads.len() == 1 { "" } else { "s" },
        revisions(&graph, &heads)
    );
    Ok(())
}

async fn wait_only(ctx: &Context<'_>) -> Result<()> {
    let connection = config::connection(ctx.global, ctx.env)?;
    let started = Instant::now();
    let mut budget = wait::Budget::new(ctx.global.wait_timeout);
    let session = wait::connect(&connection, &mut budget, ctx.interrupt).await?;
    session.close().await;
    tracing::info!(
        waited_ms = started.elapsed().as_millis() as u64,
        "database {} accepts connections",
        connection.describe()
    );
    Ok(())
}

/// `up`: bring the database to every head.
async fn up(ctx: &Context<'_>, args: &UpArgs) -> Result<()> {
    let started = Instant::now();
    let connection = config::connection(ctx.global, ctx.env)?;
    let graph = load(ctx)?;
    let tables = Tables::new(&ctx.global.schema);
    let run = UpRun {
        ctx,
        args,
        graph: &graph,
        key: ctx.global.lock_key.unwrap_or_else(|| tables.lock_key()),
        tables,
    };
    let mut budget = wait::Budget::new(ctx.global.wait_timeout);
    let mut applied = 0;
    loop {
        let session = wait::connect(&connection, &mut budget, ctx.interrupt).await?;
        let outcome = run.once(&session, &mut applied).await;
        match outcome {
            Err(Error::ConnectionLost(reason)) => {
                tracing::warn!(
                    "connection lost ({reason}); reconnecting within the remaining {} of --wait-timeout",
                    humantime::format_duration(Duration::from_secs(budget.remaining.as_secs()))
                );
            }
            Ok(standing) => {
                session.close().await;
                let elapsed = started.elapsed().as_millis() as u64;
                if applied == 0 {
                    tracing::info!(
                        elapsed_ms = elapsed,
                        "nothing to apply; database at {standing}"
                    );
                } else {
                    tracing::info!(
                        applied,
                        elapsed_ms = elapsed,
                        "applied {applied} migration{} in {elapsed} ms; database at {standing}",
                        if applied == 1 { "" } else { "s" }
                    );
                }
                return Ok(());
            }
            Err(e) => {
                session.close().await;
                return Err(e);
            }
        }
    }
}

struct UpRun<'a> {
    ctx: &'a Context<'a>,
    args: &'a UpArgs,
    graph: &'a Graph,
    tables: Tables,
    key: i64,
}

impl UpRun<'_> {
    fn options(&self) -> Options {
        Options {
            allow_changed: self.args.allow_changed,
            allow_out_of_order: self.args.allow_out_of_order,
            strict: self.args.strict,
        }
    }

    /// One connection's worth of `up`; returns where the database stands.
    async fn once(&self, session: &Session, applied: &mut usize) -> Result<String> {
        // Look without the lock: with nothing to do, never queue behind other runners.
        let rows = history::read(session, &self.tables)
            .await?
            .unwrap_or_default();
        let plan = plan::plan_up(self.graph, &rows, None, self.options());
        if plan.pending.is_empty() && plan.conflicts.is_empty() {
            plan.warnings.iter().for_each(|w| tracing::warn!("{w}"));
            return Ok(standing(self.graph, &rows, &[]));
        }

        let interrupt = self.ctx.interrupt;
        lock::acquire(session, self.key, self.ctx.global.lock_timeout, interrupt).await?;
        let standing = self.locked(session, applied).await?;
        // On an error the connection is closed right after, which frees the lock; an
        // unlock there could only fail inside an aborted transaction and hide the cause.
        lock::release(session, self.key).await?;
        Ok(standing)
    }

    async fn locked(&self, session: &Session, applied: &mut usize) -> Result<String> {
        let interrupt = self.ctx.interrupt;
        history::ensure_tables(session, &self.tables).await?;
        let rows = history::read(session, &self.tables)
            .await?
            .unwrap_or_default();
        let plan = plan::plan_up(self.graph, &rows, None, self.options());
        plan.warnings.iter().for_each(|w| tracing::warn!("{w}"));
        if !plan.conflicts.is_empty() {
            return Err(Error::Conflict(
                plan.conflicts.iter().map(|c| c.message()).collect(),
            ));
        }
        let migrations: Vec<_> = plan
            .pending
            .iter()
            .map(|&n| self.graph.migration(n))
            .collect();

        if self.args.single_transaction && !migrations.is_empty() {
            if let Some(m) = migrations.iter().find(|m| !m.up.transactional) {
                return Err(Error::Usage(format!(
                    "--single-transaction cannot include {} ({}), which is transaction:false: run without --single-transaction",
                    m.revision, m.path
                )));
            }
            interrupt.check()?;
            tracing::info!(
                "applying {} migrations in one transaction",
                migrations.len()
            );
            let took =
                apply::apply_all_in_one_transaction(session, &self.tables, &migrations, interrupt)
                    .await?;
            *applied += migrations.len();
            tracing::info!(
                took_ms = took.as_millis() as u64,
                "committed {} migrations",
                migrations.len()
            );
        } else {
            for m in &migrations {
                interrupt.check()?;
                tracing::debug!("applying {} {}", m.revision, m.description);
                let took = if m.up.transactional {
                    apply::apply_transactional(session, &self.tables, m, interrupt).await?
                } else {
                    apply::apply_non_transactional(session, &self.tables, m, interrupt).await?
                };
                *applied += 1;
                tracing::info!(
                    took_ms = took.as_millis() as u64,
                    "applied {} {}",
                    m.revision,
                    m.description
                );
            }
        }
        Ok(standing(self.graph, &rows, &plan.pending))
    }
}

/// "3 (head)", "2, 5 (2 heads)", "nothing applied": the applied revisions that no applied
/// revision revises.
fn standing(graph: &Graph, rows: &[AppliedRow], newly: &[usize]) -> String {
    let mut applied = vec![false; graph.len()];
    let mut unknown = Vec::new();
    for row in rows.iter().filter(|r| r.status == RowStatus::Applied) {
        match graph.find(&row.revision) {
            Some(n) => applied[n] = true,
            None => unknown.push(row.revision.clone()),
        }
    }
    for &n in newly {
        applied[n] = true;
    }
    let tips: Vec<usize> = (0..graph.len())
        .filter(|&n| applied[n] && !graph.children(n).iter().any(|&c| applied[c]))
        .collect();
    if tips.is_empty() && unknown.is_empty() {
        return "base (nothing applied)".into();
    }
    let heads = graph.heads();
    let at_head = !tips.is_empty() && tips == heads;
    let mut text = revisions(graph, &tips);
    if !unknown.is_empty() {
        if !text.is_empty() {
            text.push_str(", ");
        }
        text.push_str(&format!("{} (unknown to these files)", unknown.join(", ")));
    }
    if at_head {
        text.push_str(if tips.len() == 1 {
            " (head)"
        } else {
            " (heads)"
        });
    }
    text
}

/// `resolve`: settle a dirty `transaction:false` migration after a person checked it.
async fn resolve(ctx: &Context<'_>, args: &ResolveArgs) -> Result<()> {
    let connection = config::connection(ctx.global, ctx.env)?;
    let tables = Tables::new(&ctx.global.schema);
    let key = ctx.global.lock_key.unwrap_or_else(|| tables.lock_key());
    let mut budget = wait::Budget::new(ctx.global.wait_timeout);
    let session = wait::connect(&connection, &mut budget, ctx.interrupt).await?;
    lock::acquire(&session, key, ctx.global.lock_timeout, ctx.interrupt).await?;
    let rows = history::read(&session, &tables).await?.unwrap_or_default();
    let row = rows.iter().find(|r| r.revision == args.revision);
    let status = match row {
        Some(r) if r.status != RowStatus::Applied => r.status,
        Some(_) => {
            return Err(Error::Usage(format!(
                "revision {} is applied, not dirty: nothing to resolve",
                args.revision
            )));
        }
        None => {
            return Err(Error::Usage(format!(
                "revision {} has no history row: nothing to resolve",
                args.revision
            )));
        }
    };
    let (sql, outcome) = if args.applied {
        (
            history::set_status(&tables, &args.revision, RowStatus::Applied, "execution_ms"),
            "applied",
        )
    } else {
        (history::delete_row(&tables, &args.revision), "rolled-back")
    };
    let detail = format!("was {}", status.as_str());
    session
        .execute(&format!(
            "BEGIN;\n{sql}{}COMMIT;",
            history::event(&tables, "resolve", &args.revision, outcome, Some(&detail))
        ))
        .await?;
    lock::release(&session, key).await?;
    session.close().await;
    tracing::info!("resolved {} as {outcome}", args.revision);
    Ok(())
}
