//! `lint` and `validate --lint`: choose the migrations, observe them on a scratch server
//! (closed on every path out), turn what was seen into findings, drop the excused ones,
//! print the report, and exit 11 when anything is left.
//!
//! Which migrations by default: the pending ones when a database is configured (its
//! history says which); with none configured there is no "pending", so the heads'
//! migrations (what a branch usually adds last). `--all` or `REV...` for others.

use crate::cli::config::{self, LintArgs, LintFormat, ScratchArgs};
use crate::cli::context::Context;
use crate::cli::migrator::Migrator;
use crate::error::{Error, Result};
use crate::files::graph::Graph;
use crate::lint::observe::{self, Observed};
use crate::lint::report;
use crate::lint::rules::{self, Finding};
use crate::output;
use crate::plan::reconcile::{self, Options as PlanOptions};
use crate::plan::target;
use crate::schema::scratch::Scratch;
use crate::text::plural;

pub async fn lint(ctx: &Context<'_>, args: &LintArgs) -> Result<()> {
    let graph = crate::files::source::load(&ctx.global.migrations, ctx.global.layout)?;
    let targets = if args.all {
        vec![true; graph.len()]
    } else if !args.revisions.is_empty() {
        let mut marked = vec![false; graph.len()];
        for word in &args.revisions {
            marked[target::find(&graph, word)?] = true;
        }
        marked
    } else if config::is_configured(ctx.global, ctx.env) {
        let rows = Migrator::new(ctx, &graph, PlanOptions::default())?
            .read_history(false)
            .await?;
        let applied = reconcile::reconcile(&graph, &rows, PlanOptions::default()).applied;
        applied.iter().map(|a| !a).collect()
    } else {
        heads(&graph)
    };
    run(ctx, &graph, &targets, args.format, &args.scratch).await
}

/// `validate --lint`: the heads' migrations (validate never connects to a database).
pub async fn lint_heads(
    ctx: &Context<'_>,
    graph: &Graph,
    format: LintFormat,
    scratch: &ScratchArgs,
) -> Result<()> {
    run(ctx, graph, &heads(graph), format, scratch).await
}

fn heads(graph: &Graph) -> Vec<bool> {
    let mut marked = vec![false; graph.len()];
    for head in graph.heads() {
        marked[head] = true;
    }
    marked
}

async fn run(
    ctx: &Context<'_>,
    graph: &Graph,
    targets: &[bool],
    format: LintFormat,
    args: &ScratchArgs,
) -> Result<()> {
    let count = targets.iter().filter(|t| **t).count();
    let observed: Vec<Observed> = if count == 0 {
        tracing::info!("nothing to lint: no pending migration");
        Vec::new()
    } else {
        let dev = match &args.dev_url {
            Some(url) => Some(config::url_connection(url, ctx.env)?),
            None => None,
        };
        let scratch = Scratch::start(dev.as_ref(), args.pg_bin.as_deref(), ctx.interrupt).await?;
        let outcome = observe::observe(&scratch, graph, targets, ctx.interrupt).await;
        scratch.close().await;
        outcome?
    };
    for o in &observed {
        tracing::debug!(
            revision = o.observation.revision,
            elapsed_ms = o.elapsed.as_millis() as u64,
            "linted"
        );
    }
    let findings = findings(graph, &observed)?;
    let statements: usize = observed
        .iter()
        .map(|o| o.observation.statements.len())
        .sum();
    match format {
        LintFormat::Text => output::print(&report::text(&findings))?,
        LintFormat::Json => output::print_line(&report::json(&findings, &observed).to_string())?,
        LintFormat::Sarif => output::print_line(&report::sarif(&findings).to_string())?,
    }
    let summary = format!(
        "{} in {}, {}",
        plural(findings.len(), "finding"),
        plural(observed.len(), "migration"),
        plural(statements, "statement")
    );
    if findings.is_empty() {
        tracing::info!("lint: {summary}");
        Ok(())
    } else {
        Err(Error::LintFindings(format!(
            "lint: {summary}: fix them the safe way shown, or excuse a statement with `-- schemagate:allow <rule> <reason>` on the line above it"
        )))
    }
}

/// Every finding minus the excused ones; a bad excuse is an invalid file.
fn findings(graph: &Graph, observed: &[Observed]) -> Result<Vec<Finding>> {
    let mut all = Vec::new();
    let mut allows = Vec::new();
    let mut problems = Vec::new();
    for o in observed {
        let migration = graph
            .migrations()
            .iter()
            .find(|m| m.revision == o.observation.revision)
            .ok_or_else(|| Error::Internal("a linted migration is not in the graph".into()))?;
        // The up section's lines; a statement's file line less the offset is its line there.
        let section = &migration.up;
        let lines: Vec<&str> = section.sql.lines().collect();
        let offset = section.first_line.saturating_sub(1);
        for statement in &o.observation.statements {
            let in_section = statement.line.saturating_sub(offset);
            match rules::allowances(&migration.path, &lines, in_section) {
                Ok(list) => allows.push((migration.path.clone(), statement.line, list)),
                Err(mut problem) => {
                    problem.line = problem.line.map(|l| l + offset);
                    problems.push(problem);
                }
            }
        }
        all.extend(rules::findings(&o.observation));
    }
    if !problems.is_empty() {
        return Err(Error::InvalidFiles(problems));
    }
    Ok(rules::excuse(all, &allows))
}
