//! The commands. Each turns its arguments into a decision over the history (what the
//! database should end up with) and leaves the phases of PRODUCT.md section 3 (wait, look,
//! lock, reconcile, apply, exit) to `migrator`, or reads the history and prints a `report`.
//! Every command first reads and validates the files, so a bad file never reaches a
//! database.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use crate::cli::autogenerate;
use crate::cli::config::{
    self, CheckArgs, Command, DownArgs, MergeArgs, NewArgs, OutputFormat, ReconcileArgs,
    RepairArgs, ResetArgs, ResolveArgs, StampArgs, StatusArgs, UpArgs,
};
use crate::cli::context::Context;
use crate::cli::fleet::{self, Show};
use crate::cli::migrator::{self, Decision, Migrator};
use crate::cli::report;
use crate::db::history::{self, Tables};
use crate::db::{script, wait};
use crate::error::{Error, FileProblem, Result};
use crate::files::graph::Graph;
use crate::files::migration::{compare_revisions, same_revision};
use crate::files::{scaffold, source};
use crate::output;
use crate::plan::reconcile::{self, AppliedRow, DownTo, Options, RowStatus, Step};
use crate::plan::target::{self, Target};
use crate::text::plural;

/// What `main` does once a command succeeded.
#[derive(Debug)]
pub enum Finish {
    Exit,
    /// `up --exec -- CMD ARGS`: replace the process with CMD.
    Exec(Vec<OsString>),
}

pub async fn run(command: &Command, ctx: &Context<'_>) -> Result<Finish> {
    match command {
        Command::Up(args) => return up(ctx, args).await,
        Command::Down(args) => down(ctx, args).await,
        Command::Redo(args) => redo(ctx, args).await,
        Command::Reset(args) => reset(ctx, args).await,
        Command::Status(args) => status(ctx, args).await,
        Command::Current(args) => current(ctx, args.verbose).await,
        Command::History(args) => history(ctx, args.verbose.verbose, args.offline).await,
        Command::Heads(args) => output::print(&report::heads(&load_any(ctx).await?, args.verbose)),
        Command::New(args) => new(ctx, args).await,
        Command::Merge(args) => merge(ctx, args).await,
        Command::Stamp(args) => stamp(ctx, args).await,
        Command::Check(args) if (args.against_schema || args.drift) && args.fleet.is_fleet() => {
            Err(Error::Usage(
                "check --against-schema and --drift compare one database: run them on one target                  with --database-url"
                    .into(),
            ))
        }
        Command::Check(args) if args.against_schema => {
            autogenerate::against_schema(ctx, &args.scratch).await
        }
        Command::Check(args) if args.drift => autogenerate::drift(ctx, &args.scratch).await,
        Command::Check(args) => check(ctx, args).await,
        Command::Diff(args) => autogenerate::diff(ctx, args).await,
        Command::Validate {
            strict,
            lint,
            format,
            scratch,
        } => {
            validate(ctx, *strict, *lint && *format != config::LintFormat::Text).await?;
            if *lint {
                let graph = load(ctx).await?;
                crate::cli::lint::lint_heads(ctx, &graph, *format, scratch).await
            } else {
                Ok(())
            }
        }
        Command::Lint(args) => crate::cli::lint::lint(ctx, args).await,
        Command::Resolve(args) => resolve(ctx, args).await,
        Command::Repair(args) => repair(ctx, args).await,
        Command::Wait => wait_only(ctx).await,
        Command::Adopt(args) => adopt(ctx, args).await,
    }?;
    Ok(Finish::Exit)
}

/// The files, for a command that gates or changes a database (up, check, validate, down,
/// redo, reset, stamp): an empty or missing folder is then almost always a mistake
/// (a volume not mounted, an image without its migrations), never "nothing to do",
/// unless `--allow-empty` says it is intended.
async fn load(ctx: &Context<'_>) -> Result<Graph> {
    let dir = &ctx.global.migrations;
    let missing = !dir.is_dir();
    if missing && ctx.global.allow_empty {
        return Graph::build(Vec::new()).map_err(Error::InvalidFiles);
    }
    if missing {
        return Err(no_migrations(dir, "does not exist (or is not a folder)"));
    }
    let graph = load_any(ctx).await?;
    if graph.is_empty() && !ctx.global.allow_empty {
        return Err(no_migrations(dir, "holds no <revision>_<slug>.sql file"));
    }
    let unfinished = graph.unfinished();
    if !unfinished.is_empty() {
        return Err(Error::InvalidFiles(unfinished));
    }
    Ok(graph)
}

fn no_migrations(dir: &Path, what: &str) -> Error {
    Error::NoMigrations(format!(
        "the migrations folder {} {what}: the likely mistake is a volume not mounted there, \
         or an image built FROM schemagate without COPY of the migrations; point --migrations \
         (SCHEMAGATE_MIGRATIONS) at the folder that holds them, or pass --allow-empty \
         (SCHEMAGATE_ALLOW_EMPTY=true) if an empty folder is intended",
        dir.display()
    ))
}

/// The files, whatever there are (heads, history, status, merge). Read on a thread of
/// its own so that SIGTERM/SIGINT ends a load that blocks or takes long; a plain thread,
/// not `spawn_blocking`, because dropping the runtime would wait for a blocked one.
async fn load_any(ctx: &Context<'_>) -> Result<Graph> {
    let dir = ctx.global.migrations.clone();
    let layout = ctx.global.layout;
    let (done, loaded) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("load".into())
        .spawn(move || {
            let _ = done.send(source::load(&dir, layout));
        })
        .map_err(|e| Error::Internal(format!("cannot start a thread to read the files: {e}")))?;
    tokio::select! {
        biased;
        signal = ctx.interrupt.wait() => Err(Error::Interrupted(signal)),
        loaded = loaded => loaded.unwrap_or_else(|_| {
            Err(Error::Internal("reading the files stopped without an answer".into()))
        }),
    }
}

impl ReconcileArgs {
    fn options(&self) -> Options {
        Options {
            allow_changed: self.allow_changed,
            allow_out_of_order: self.allow_out_of_order,
            strict: self.strict,
            allow_renamed: self.allow_renamed,
            allow_unknown: self.allow_unknown,
        }
    }
}

fn revisions(graph: &Graph, nodes: &[usize]) -> String {
    nodes
        .iter()
        .map(|&n| graph.migration(n).revision.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Several heads where one is needed (`validate --strict`, `new`): exit 3, on each head.
fn several_heads(graph: &Graph, heads: &[usize], advice: &str) -> Error {
    Error::InvalidFiles(
        heads
            .iter()
            .map(|&h| {
                FileProblem::new(
                    &graph.migration(h).path,
                    None,
                    format!(
                        "revision {} is one of {} heads ({}): {advice}",
                        graph.migration(h).revision,
                        heads.len(),
                        revisions(graph, heads)
                    ),
                )
            })
            .collect(),
    )
}

/// `quiet`: the summary goes to the log, leaving stdout to a JSON or SARIF lint report.
async fn validate(ctx: &Context<'_>, strict: bool, quiet: bool) -> Result<()> {
    let graph = load(ctx).await?;
    let heads = graph.heads();
    if strict && heads.len() > 1 {
        return Err(several_heads(
            &graph,
            &heads,
            "join them with `schemagate merge \"merge heads\"`",
        ));
    }
    let summary = format!(
        "ok: {}, {} ({})",
        plural(graph.len(), "migration"),
        plural(heads.len(), "head"),
        revisions(&graph, &heads)
    );
    if quiet {
        tracing::info!("{summary}");
        return Ok(());
    }
    output::print_line(&summary)
}

async fn wait_only(ctx: &Context<'_>) -> Result<()> {
    let connection = config::connection(ctx.global, ctx.env)?;
    let mut budget = wait::Budget::new(ctx.global.wait_timeout);
    let session = wait::connect(&connection, &mut budget, ctx.interrupt).await?;
    session.close().await;
    tracing::info!(
        waited_ms = ctx.started.elapsed().as_millis() as u64,
        "database {} accepts connections",
        connection.describe()
    );
    Ok(())
}

/// `adopt`: take over the history of the tool that managed this database (see `adopt.rs`).
async fn adopt(ctx: &Context<'_>, args: &config::AdoptArgs) -> Result<()> {
    let graph = load(ctx).await?;
    let request = crate::cli::adopt::Request {
        from: args.from,
        dry_run: args.dry_run,
        before_up: false,
    };
    crate::cli::adopt::adopt(ctx, &graph, request).await
}

/// `up`: bring the database to every head, a revision, or N steps further.
async fn up(ctx: &Context<'_>, args: &UpArgs) -> Result<Finish> {
    let graph = load(ctx).await?;
    let options = args.reconcile.options();
    let words = args.target.as_deref().unwrap_or("heads");
    if args.fleet.is_fleet() {
        let refused = [
            (args.sql, "--sql"),
            (args.dry_run, "--dry-run"),
            (args.exec, "--exec"),
            (args.adopt.is_some(), "--adopt"),
        ];
        if let Some((_, option)) = refused.iter().find(|(given, _)| *given) {
            return Err(Error::Usage(format!(
                "{option} works on one database, not a fleet: run it with --database-url on one                  target, or drop it"
            )));
        }
        let to = target::parse(&graph, words)?;
        let show = Show {
            command: "up",
            format: args.rollout.format,
            stream: true,
            canary: args.rollout.canary as usize,
            max_failures: args.rollout.max_failures.map(|k| k as usize),
        };
        let single_transaction = args.single_transaction;
        fleet::run(ctx, &args.fleet, show, async |ctx, target| {
            fleet::up_target(
                ctx,
                &graph,
                target,
                options,
                single_transaction,
                |g, rows| decide_up(g, rows, to, options),
            )
            .await
        })
        .await?;
        return Ok(Finish::Exit);
    }
    not_a_fleet(&args.fleet)?;
    if args.rollout.canary > 0 || args.rollout.max_failures.is_some() {
        return Err(Error::Usage(
            "--canary and --max-failures roll out over a fleet: name its targets with --targets,              --targets-query or --tenant-schemas-query"
                .into(),
        ));
    }
    if args.sql || args.dry_run {
        let preview = preview(ctx, &graph, words, options, true, |rows, to| {
            decide_up(&graph, rows, to, options)
        })
        .await?;
        let title = format!("up {words}");
        show(
            ctx,
            &graph,
            preview,
            args.sql,
            args.single_transaction,
            &title,
        )?;
        return Ok(Finish::Exit);
    }
    let to = target::parse(&graph, words)?;
    let heads = graph.heads();
    if heads.len() > 1 && to == Target::Heads {
        tracing::warn!(
            "{} heads ({}): every branch is applied, in revision order; join them with `schemagate merge`",
            heads.len(),
            revisions(&graph, &heads)
        );
    }
    if let Some(from) = args.adopt {
        let request = crate::cli::adopt::Request {
            from,
            dry_run: false,
            before_up: true,
        };
        crate::cli::adopt::adopt(ctx, &graph, request).await?;
    }
    let mut migrator = Migrator::new(ctx, &graph, options)?;
    migrator.single_transaction = args.single_transaction;
    migrator
        .converge(true, |graph, rows| decide_up(graph, rows, to, options))
        .await?;
    Ok(if args.exec {
        Finish::Exec(args.command.clone())
    } else {
        Finish::Exit
    })
}

/// What `--sql` and `--dry-run` show: a decision and the history it was made on.
struct Preview {
    rows: Vec<AppliedRow>,
    options: Options,
    decision: Decision,
}

/// Reads the history without the lock and decides on it, or, for a `FROM:TO` range,
/// assumes the history from FROM with no database at all.
async fn preview(
    ctx: &Context<'_>,
    graph: &Graph,
    words: &str,
    options: Options,
    forward: bool,
    decide: impl Fn(&[AppliedRow], Target) -> Result<Decision>,
) -> Result<Preview> {
    let (rows, to) = if words.contains(':') {
        let (from, to) = target::parse_range(graph, words, forward)?;
        (assumed_history(graph, from)?, to)
    } else {
        // Parsed first: a mistyped target fails before any waiting for a database.
        let to = target::parse(graph, words)?;
        let rows = Migrator::new(ctx, graph, options)?
            .read_history(false)
            .await?;
        (rows, to)
    };
    let decision = decide(&rows, to)?;
    Ok(Preview {
        rows,
        options,
        decision,
    })
}

fn decide_up(graph: &Graph, rows: &[AppliedRow], to: Target, options: Options) -> Result<Decision> {
    let mut plan = match to {
        Target::Heads => reconcile::plan_up(graph, rows, None, options),
        Target::Revision(node) => reconcile::plan_up(graph, rows, Some(&[node]), options),
        Target::Relative(steps) if steps > 0 => reconcile::plan_up(graph, rows, None, options),
        Target::Base | Target::Relative(_) => {
            return Err(Error::Usage(
                "`up` goes forward (head, a revision, +N); to go back use `schemagate down`".into(),
            ));
        }
    };
    migrator::conflicts(&plan)?;
    if let Target::Relative(steps) = to {
        let steps = steps as usize;
        let pending = plan.pending.len();
        if pending < steps {
            return Err(Error::Usage(format!(
                "cannot go up {steps}: only {pending} migration{} pending",
                if pending == 1 { " is" } else { "s are" }
            )));
        }
        plan.pending.truncate(steps);
    }
    Ok(Decision {
        goals: vec![plan.goal(false)],
        warnings: plan.warnings,
    })
}

/// `down`: revert the last N, back to a revision, or to base.
async fn down(ctx: &Context<'_>, args: &DownArgs) -> Result<()> {
    let graph = load(ctx).await?;
    let options = Options {
        allow_changed: args.allow_changed,
        ..Options::default()
    };
    let decide = |rows: &[AppliedRow], to: Target| decide_down(&graph, rows, down_to(to)?, options);
    if args.sql || args.dry_run {
        let preview = preview(ctx, &graph, &args.target, options, false, decide).await?;
        let title = format!("down {}", args.target);
        return show(ctx, &graph, preview, args.sql, false, &title);
    }
    let to = target::parse(&graph, &args.target)?;
    let mut migrator = Migrator::new(ctx, &graph, strict(options))?;
    migrator
        .converge(false, |_, rows| decide(rows, to))
        .await
        .map(drop)
}

fn down_to(target: Target) -> Result<DownTo> {
    match target {
        Target::Base => Ok(DownTo::Base),
        Target::Revision(node) => Ok(DownTo::Revision(node)),
        Target::Relative(steps) if steps < 0 => Ok(DownTo::Steps(steps.unsigned_abs() as usize)),
        Target::Heads | Target::Relative(_) => Err(Error::Usage(
            "`down` goes back (-N, a revision, base); to go forward use `schemagate up`".into(),
        )),
    }
}

/// Reverting never goes beneath revisions the files do not know.
fn strict(options: Options) -> Options {
    Options {
        strict: true,
        ..options
    }
}

fn decide_down(
    graph: &Graph,
    rows: &[AppliedRow],
    to: DownTo,
    options: Options,
) -> Result<Decision> {
    let plan = reconcile::plan_down(graph, rows, to, options).map_err(Error::Usage)?;
    migrator::conflicts(&plan)?;
    Ok(Decision {
        goals: vec![plan.goal(true)],
        warnings: plan.warnings,
    })
}

/// `redo`: revert the last migration, then apply it again.
async fn redo(ctx: &Context<'_>, args: &ReconcileArgs) -> Result<()> {
    let graph = load(ctx).await?;
    let options = args.options();
    let mut migrator = Migrator::new(ctx, &graph, strict(options))?;
    migrator
        .converge(false, |graph, rows| {
            let plan = reconcile::plan_down(graph, rows, DownTo::Steps(1), options)
                .map_err(Error::Usage)?;
            migrator::conflicts(&plan)?;
            Ok(Decision {
                goals: vec![plan.goal(true), plan.applied.clone()],
                warnings: plan.warnings,
            })
        })
        .await
        .map(drop)
}

/// `reset --yes`: revert everything, then apply everything.
async fn reset(ctx: &Context<'_>, args: &ResetArgs) -> Result<()> {
    if !args.yes {
        return Err(Error::Usage(
            "reset reverts every migration (what their tables hold is lost) and applies them again: \
             pass --yes if that is what you want"
                .into(),
        ));
    }
    let graph = load(ctx).await?;
    let options = args.reconcile.options();
    let mut migrator = Migrator::new(ctx, &graph, strict(options))?;
    migrator
        .converge(false, |graph, rows| {
            let plan =
                reconcile::plan_down(graph, rows, DownTo::Base, options).map_err(Error::Usage)?;
            migrator::conflicts(&plan)?;
            Ok(Decision {
                goals: vec![vec![false; graph.len()], vec![true; graph.len()]],
                warnings: plan.warnings,
            })
        })
        .await
        .map(drop)
}

/// Offline `--sql FROM:TO`: the history as if FROM and its ancestors were applied.
fn assumed_history(graph: &Graph, from: Target) -> Result<Vec<AppliedRow>> {
    let nodes = target::nodes(graph, from, "FROM")?;
    let applied = graph.ancestors_inclusive(&nodes);
    Ok(graph
        .topological_order()
        .iter()
        .filter(|&&n| applied[n])
        .map(|&n| {
            let m = graph.migration(n);
            AppliedRow {
                revision: m.revision.clone(),
                checksum: m.checksum.clone(),
                status: RowStatus::Applied,
                recorded: Default::default(),
            }
        })
        .collect())
}

/// Every step of a decision, from the history it was made on.
fn steps(graph: &Graph, rows: &[AppliedRow], options: Options, decision: &Decision) -> Vec<Step> {
    let mut applied = reconcile::reconcile(graph, rows, options).applied;
    let mut steps = Vec::new();
    for goal in &decision.goals {
        steps.extend(reconcile::converge(graph, &applied, goal));
        applied.clone_from(goal);
    }
    steps
}

/// Prints what a decision would run: the SQL script (`--sql`) or one line a step.
fn show(
    ctx: &Context<'_>,
    graph: &Graph,
    preview: Preview,
    sql: bool,
    single_transaction: bool,
    title: &str,
) -> Result<()> {
    let Preview {
        rows,
        options,
        decision,
    } = preview;
    decision.warnings.iter().for_each(|w| tracing::warn!("{w}"));
    let steps = steps(graph, &rows, options, &decision);
    if !sql {
        return output::print(&report::dry_run(graph, &steps));
    }
    if single_transaction
        && let Some(m) = steps
            .iter()
            .map(|&(Step::Up(n) | Step::Down(n))| graph.migration(n))
            .find(|m| !m.up.transactional)
    {
        return Err(Error::Usage(format!(
            "--single-transaction cannot include {} ({}), which is transaction:false",
            m.revision, m.path
        )));
    }
    let tables = Tables::new(&ctx.global.schema);
    let key = ctx.global.lock_key.unwrap_or_else(|| tables.lock_key());
    let title = format!("{title}, {}", plural(steps.len(), "step"));
    output::print(&script::render(
        &tables,
        graph,
        &steps,
        key,
        single_transaction,
        ctx.global.ddl_lock.timeout,
        &title,
    )?)
}

/// Fleet options given without any targets: surely a mistake (a variable not set).
fn not_a_fleet(args: &config::FleetArgs) -> Result<()> {
    let given = [
        (
            args.shard.is_some() || args.shard_count.is_some(),
            "--shard",
        ),
        (args.report.is_some(), "--report"),
    ];
    match given.iter().find(|(g, _)| *g) {
        Some((_, option)) => Err(Error::Usage(format!(
            "{option} is for a fleet, and no targets are named: add --targets FILE,              --targets-query SQL or --tenant-schemas-query SQL"
        ))),
        None => Ok(()),
    }
}

async fn status(ctx: &Context<'_>, args: &StatusArgs) -> Result<()> {
    let graph = load_any(ctx).await?;
    if args.fleet.is_fleet() {
        let show = Show {
            command: "status",
            format: args.format,
            stream: false,
            canary: 0,
            max_failures: None,
        };
        return fleet::run(ctx, &args.fleet, show, async |ctx, target| {
            fleet::standing_of(ctx, &graph, target, Options::default(), false).await
        })
        .await;
    }
    not_a_fleet(&args.fleet)?;
    let mut migrator = Migrator::new(ctx, &graph, Options::default())?;
    let rows = migrator.read_history(true).await?;
    let database = migrator.connection.describe();
    match args.format {
        OutputFormat::Text => output::print(&report::status_text(&graph, &rows, &database)),
        OutputFormat::Json => output::print_line(
            &report::status_json(&graph, &rows, &database, &ctx.global.schema).to_string(),
        ),
    }
}

async fn current(ctx: &Context<'_>, verbose: bool) -> Result<()> {
    let graph = load_any(ctx).await?;
    let mut migrator = Migrator::new(ctx, &graph, Options::default())?;
    let rows = migrator.read_history(verbose).await?;
    let text = report::current_text(&graph, &rows, verbose);
    if text.is_empty() {
        tracing::info!("nothing applied (base)");
    }
    output::print(&text)
}

async fn history(ctx: &Context<'_>, verbose: bool, offline: bool) -> Result<()> {
    let graph = load_any(ctx).await?;
    if offline || !config::is_configured(ctx.global, ctx.env) {
        return output::print(&report::history(&graph, None, verbose));
    }
    let mut migrator = Migrator::new(ctx, &graph, Options::default())?;
    let rows = migrator.read_history(true).await?;
    output::print(&report::history(&graph, Some(&rows), verbose))
}

async fn new(ctx: &Context<'_>, args: &NewArgs) -> Result<()> {
    let dir = &ctx.global.migrations;
    let graph = source::load_or_empty(dir, ctx.global.layout)?;
    let message = args
        .message
        .as_deref()
        .or(args.message_flag.as_deref())
        .unwrap_or_default();
    let parents: Vec<&str> = match &args.revises {
        Some(word) => vec![
            graph
                .migration(target::find(&graph, word)?)
                .revision
                .as_str(),
        ],
        None => {
            let heads = graph.heads();
            if heads.len() > 1 {
                return Err(several_heads(
                    &graph,
                    &heads,
                    "a new migration would revise only one of them: run `schemagate merge \"merge heads\"` first, or choose with --revises",
                ));
            }
            heads
                .iter()
                .map(|&h| graph.migration(h).revision.as_str())
                .collect()
        }
    };
    for parent in &parents {
        if let Some(m) = graph.find(parent).map(|n| graph.migration(n))
            && m.unfinished
        {
            tracing::warn!(
                "{} ({}) is unfinished (its up section is empty): write it before `up`",
                m.revision,
                m.path
            );
        }
    }
    if args.autogenerate {
        return autogenerate::new(ctx, args, &graph, &parents, message).await;
    }
    let revision = scaffold::revision(&graph, SystemTime::now(), args.revision.as_deref())?;
    keeps_implicit_parents(&graph, &revision)?;
    let slug = scaffold::slug(message)?;
    let path = scaffold::write(
        dir,
        &revision,
        &slug,
        &scaffold::content(message, &parents, false),
    )?;
    output::print_line(&path.display().to_string())?;
    tracing::info!(
        "wrote {}{}: put the change below `-- migrate:up` and its undo below `-- migrate:down`",
        path.display(),
        match parents.as_slice() {
            [] => " (the first migration)".to_string(),
            p => format!(", revising {}", p.join(", ")),
        }
    );
    Ok(())
}

/// A file without `-- migrate:revises` revises the one before it, so a new revision that
/// sorts before such a file would change its parent: refuse.
fn keeps_implicit_parents(graph: &Graph, revision: &str) -> Result<()> {
    match graph
        .migrations()
        .iter()
        .find(|m| m.revises.is_none() && compare_revisions(&m.revision, revision).is_gt())
    {
        Some(m) => Err(Error::Usage(format!(
            "revision {revision} sorts before {} ({}), which has no `-- migrate:revises` and would then revise the new file: choose a revision that sorts after {}",
            m.revision, m.path, m.revision
        ))),
        None => Ok(()),
    }
}

async fn merge(ctx: &Context<'_>, args: &MergeArgs) -> Result<()> {
    let dir = &ctx.global.migrations;
    let graph = load_any(ctx).await?;
    let mut parents: Vec<usize> = if args.revisions.is_empty() {
        graph.heads()
    } else {
        args.revisions
            .iter()
            .map(|word| target::find(&graph, word))
            .collect::<Result<_>>()?
    };
    parents.sort_unstable();
    parents.dedup();
    if parents.len() < 2 {
        return Err(Error::Usage(format!(
            "nothing to merge: {} ({}); a merge joins two or more heads",
            if args.revisions.is_empty() {
                "the files have one head"
            } else {
                "one revision given"
            },
            revisions(&graph, &parents)
        )));
    }
    let revision = scaffold::revision(&graph, SystemTime::now(), args.revision.as_deref())?;
    keeps_implicit_parents(&graph, &revision)?;
    let slug = scaffold::slug(&args.message)?;
    let names: Vec<&str> = parents
        .iter()
        .map(|&n| graph.migration(n).revision.as_str())
        .collect();
    let path = scaffold::write(
        dir,
        &revision,
        &slug,
        &scaffold::content(&args.message, &names, true),
    )?;
    output::print_line(&path.display().to_string())?;
    tracing::info!("wrote {}, joining {}", path.display(), names.join(", "));
    Ok(())
}

/// `stamp`: make the history say TARGET and its ancestors, running no migration SQL.
async fn stamp(ctx: &Context<'_>, args: &StampArgs) -> Result<()> {
    let graph = load(ctx).await?;
    let mut nodes = Vec::new();
    for word in &args.targets {
        let target = target::parse(&graph, word)?;
        nodes.extend(target::nodes(&graph, target, word)?);
    }
    let wanted = graph.ancestors_inclusive(&nodes);
    let purge = args.purge;
    let mut migrator = Migrator::new(ctx, &graph, Options::default())?;
    let tables = migrator.tables.clone();
    let (stamped, removed, standing) = migrator
        .with_lock(async |session, rows| {
            let mut sql = String::from("BEGIN;\n");
            let mut has_row = vec![false; graph.len()];
            let mut unknown = Vec::new();
            let (mut stamped, mut removed) = (0, 0);
            for row in &rows {
                let revision = &row.revision;
                match graph.find(revision) {
                    Some(n) if wanted[n] => {
                        has_row[n] = true;
                        if row.status != RowStatus::Applied {
                            let was = format!("was {}", row.status.as_str());
                            sql += &history::set_status(&tables, revision, RowStatus::Applied);
                            sql +=
                                &history::event(&tables, "stamp", revision, "applied", Some(&was));
                        }
                    }
                    None if !purge => unknown.push(revision.as_str()),
                    _ => {
                        sql += &history::delete_row(&tables, revision);
                        sql += &history::event(&tables, "stamp", revision, "removed", None);
                        removed += 1;
                    }
                }
            }
            if !unknown.is_empty() {
                return Err(Error::Conflict(vec![format!(
                    "the database has revisions no file has ({}): stamp would leave them in place; \
                     pass --purge to delete their history rows too",
                    unknown.join(", ")
                )]));
            }
            for &n in graph.topological_order() {
                if wanted[n] && !has_row[n] {
                    let m = graph.migration(n);
                    sql += &history::insert_row(&tables, m, RowStatus::Applied, "stamped", "0");
                    sql += &history::event(&tables, "stamp", &m.revision, "stamped", None);
                    stamped += 1;
                }
            }
            sql.push_str("COMMIT;\n");
            session.execute(&sql).await?;
            let rows = history::read(session, &tables).await?.unwrap_or_default();
            Ok((stamped, removed, report::standing(&graph, &rows)))
        })
        .await?;
    tracing::info!(
        stamped,
        removed,
        "stamped {}, removed {} (no migration SQL ran); database at {standing}",
        plural(stamped, "revision"),
        plural(removed, "revision")
    );
    Ok(())
}

/// How often `check --wait` looks again, and how often it says it is still waiting.
const CHECK_EVERY: Duration = Duration::from_secs(1);
const CHECK_REPORT_EVERY: Duration = Duration::from_secs(15);

/// `check`: exit 0 at head, 9 with migrations pending; `--wait` until at head.
async fn check(ctx: &Context<'_>, args: &CheckArgs) -> Result<()> {
    let graph = load(ctx).await?;
    let options = Options {
        strict: args.strict,
        allow_unknown: args.allow_unknown,
        ..Options::default()
    };
    if args.fleet.is_fleet() {
        if args.wait {
            return Err(Error::Usage(
                "check --wait waits for one database: on a fleet, run `check` again (it exits 9                  while any target is behind)"
                    .into(),
            ));
        }
        let show = Show {
            command: "check",
            format: args.format,
            stream: false,
            canary: 0,
            max_failures: None,
        };
        return fleet::run(ctx, &args.fleet, show, async |ctx, target| {
            fleet::standing_of(ctx, &graph, target, options, true).await
        })
        .await;
    }
    not_a_fleet(&args.fleet)?;
    let mut migrator = Migrator::new(ctx, &graph, options)?;
    let deadline = Instant::now() + args.timeout;
    let mut session = migrator.connect().await?;
    let mut reported: Option<Instant> = None;
    loop {
        let rows = match history::read(&session, &migrator.tables).await {
            Ok(rows) => rows.unwrap_or_default(),
            Err(Error::ConnectionLost(reason)) => {
                tracing::warn!("connection lost ({reason}); reconnecting");
                session = migrator.connect().await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let plan = reconcile::plan_up(&graph, &rows, None, options);
        migrator::conflicts(&plan)?;
        if plan.pending.is_empty() {
            session.close().await;
            plan.warnings.iter().for_each(|w| tracing::warn!("{w}"));
            return output::print_line(&format!(
                "at head: database at {}",
                report::standing(&graph, &rows)
            ));
        }
        let pending = format!(
            "{} pending ({})",
            plural(plan.pending.len(), "migration"),
            revisions(&graph, &plan.pending[..plan.pending.len().min(5)])
                + if plan.pending.len() > 5 { ", ..." } else { "" }
        );
        if !args.wait {
            session.close().await;
            output::print_line(&pending)?;
            return Err(Error::Pending(format!(
                "not at head: {pending}; run `schemagate up`"
            )));
        }
        if Instant::now() >= deadline {
            session.close().await;
            return Err(Error::Pending(format!(
                "still not at head after {}: {pending}",
                crate::text::duration(args.timeout)
            )));
        }
        if reported.is_none_or(|at| at.elapsed() >= CHECK_REPORT_EVERY) {
            tracing::info!(
                "waiting for the database to reach head (up to {}): {pending}",
                crate::text::duration(deadline.saturating_duration_since(Instant::now()))
            );
            reported = Some(Instant::now());
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_EVERY.min(deadline.saturating_duration_since(Instant::now()))) => {}
            signal = ctx.interrupt.wait() => return Err(Error::Interrupted(signal)),
        }
    }
}

/// `resolve`: settle a dirty `transaction:false` migration after a person checked it.
async fn resolve(ctx: &Context<'_>, args: &ResolveArgs) -> Result<()> {
    let graph = load_any(ctx).await?;
    let mut migrator = Migrator::new(ctx, &graph, Options::default())?;
    let tables = migrator.tables.clone();
    let typed = args.revision.as_str();
    let outcome = if args.applied {
        "applied"
    } else {
        "rolled-back"
    };
    let revision = migrator
        .with_lock(async |session, rows| {
            // By identity; the statements name the row as it is stored.
            let row = rows.iter().find(|r| same_revision(&r.revision, typed));
            let revision = row.map_or(typed, |r| r.revision.as_str());
            let status = match row {
                Some(r) if r.status != RowStatus::Applied => r.status,
                Some(_) => {
                    return Err(Error::Usage(format!(
                        "revision {revision} is applied, not dirty: nothing to resolve"
                    )));
                }
                None => {
                    return Err(Error::Usage(format!(
                        "revision {revision} has no history row: nothing to resolve"
                    )));
                }
            };
            let row = if args.applied {
                history::set_status(&tables, revision, RowStatus::Applied)
            } else {
                history::delete_row(&tables, revision)
            };
            let detail = format!("was {}", status.as_str());
            let event = history::event(&tables, "resolve", revision, outcome, Some(&detail));
            session
                .execute(&format!("BEGIN;\n{row}{event}COMMIT;"))
                .await?;
            Ok(revision.to_string())
        })
        .await?;
    tracing::info!("resolved {revision} as {outcome}");
    Ok(())
}

/// `repair`: the applied migrations whose files were edited get their new checksums
/// recorded, each printed with what changed and logged as an event. Dirty rows are left to
/// `resolve`, which needs a person's look at the database.
async fn repair(ctx: &Context<'_>, args: &RepairArgs) -> Result<()> {
    let graph = load(ctx).await?;
    let options = Options {
        allow_changed: true,
        ..Options::default()
    };
    let mut migrator = Migrator::new(ctx, &graph, options)?;
    let tables = migrator.tables.clone();
    let dry_run = args.dry_run;
    let repaired = migrator
        .with_lock(async |session, rows| {
            let mut sql = String::from("BEGIN;\n");
            let mut repaired = Vec::new();
            for row in rows.iter().filter(|r| r.status == RowStatus::Applied) {
                let Some(node) = graph.find(&row.revision) else {
                    continue;
                };
                let m = graph.migration(node);
                if m.checksum == row.checksum {
                    continue;
                }
                let detail = format!(
                    "checksum {} -> {}",
                    short_checksum(&row.checksum),
                    short_checksum(&m.checksum)
                );
                sql += &history::set_checksum(&tables, &row.revision, &m.checksum);
                sql += &history::event(&tables, "repair", &row.revision, "repaired", Some(&detail));
                repaired.push(format!("{} ({}): {detail}", m.revision, m.path));
            }
            sql.push_str("COMMIT;\n");
            if !repaired.is_empty() && !dry_run {
                session.execute(&sql).await?;
            }
            Ok(repaired)
        })
        .await?;
    let verb = if dry_run {
        "would re-record"
    } else {
        "re-recorded"
    };
    let mut out = String::new();
    for line in &repaired {
        out.push_str(&format!("{verb} {line}\n"));
    }
    output::print(&out)?;
    tracing::info!(
        repaired = repaired.len(),
        "{}",
        if repaired.is_empty() {
            "nothing to repair: every applied migration's file matches its recorded checksum"
                .to_string()
        } else {
            format!(
                "{verb} the checksum of {}",
                plural(repaired.len(), "migration")
            )
        }
    );
    Ok(())
}

/// The first 12 hex digits, enough to tell two checksums apart in a message.
fn short_checksum(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}
