//! Fleets: one command on many databases, or many tenant schemas of one (PRODUCT.md
//! section 12).
//!
//! Each target is a whole run of its own, as if `schemagate up` had been started for it
//! alone: its own connection, wait budget, lock key, history and reconnections. What a
//! fleet adds is only around them: the list of targets (a file, a query, the tenant
//! schemas), this process's shard of it, how many run at once and when to stop starting
//! more (`plan::fleet`), and what is said at the end. One target's failure is its own
//! result line, never the others' stop.
//!
//! Everything runs on the one thread of the runtime: the work is waiting on servers.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::{Value, json};
use tracing::Instrument;

use crate::cli::config::{self, FleetArgs, OutputFormat};
use crate::cli::context::Context;
use crate::cli::migrator::Migrator;
use crate::cli::report;
use crate::db::connection::Connection;
use crate::db::history::quote_ident;
use crate::db::wait;
use crate::error::{Error, Result};
use crate::files::graph::Graph;
use crate::output::{self, event};
use crate::plan::fleet::{self as plan, Next, Rollout, Shard};
use crate::plan::reconcile::{self, Options, RowStatus};
use crate::text::{duration, plural};

/// One database, or one tenant schema of one, to run on.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port/db`, and `#schema` for a tenant schema: what result lines and the report
    /// call it, what duplicates are found by, and what shards hash.
    pub identity: String,
    pub connection: Connection,
    /// The tenant schema: its history tables are there, and it is the search_path.
    pub schema: Option<String>,
    /// A listed database whose tenant schemas could not be read: its exit code and why.
    /// It is reported as one failed target, and the others go on.
    unlisted: Option<(i32, String)>,
}

impl Target {
    fn database(&self) -> &str {
        self.connection.config.get_dbname().unwrap_or("?")
    }
}

/// A fleet: this shard's targets, in the order given.
struct Fleet {
    targets: Vec<Target>,
    /// Targets in the whole list, before sharding.
    listed: usize,
    shard: Option<Shard>,
}

/// How a target's command ended, short of an error.
pub struct Done {
    /// `migrated`, `current` (up); `at_head`, `behind`, `dirty`, `conflict` (status, check).
    /// An error is `failed`, `refused` (exit 5) or `unreachable` (exit 4).
    pub outcome: &'static str,
    /// Not 0 for what is not an error of the run but fails the command (check: behind).
    pub exit_code: i32,
    pub applied: usize,
    pub pending: usize,
    /// Where the database stands (`report::standing`).
    pub current: Option<String>,
    /// The result line's words.
    pub detail: String,
}

/// A target's result, for its line, the summary and the report.
struct Outcome {
    index: usize,
    done: Done,
    /// What went wrong, when the target's command failed.
    error: Option<String>,
    started: Duration,
    took: Duration,
}

/// What the command is, and how its results are shown.
pub struct Show {
    pub command: &'static str,
    pub format: OutputFormat,
    /// `up`: a line per target as it finishes (and the progress line). `status` and
    /// `check`: one table, in the order given, at the end.
    pub stream: bool,
    pub canary: usize,
    pub max_failures: Option<usize>,
}

/// Reads the targets and keeps this shard's. Every problem is found before any target is
/// touched: a bad line, a bad shard, an unwritable report.
async fn targets(ctx: &Context<'_>, args: &FleetArgs) -> Result<Fleet> {
    let shard = plan::shard(
        args.shard.as_deref(),
        args.shard_count,
        (ctx.env)("JOB_COMPLETION_INDEX").as_deref(),
    )
    .map_err(Error::Usage)?;
    if args.targets.is_some() && args.targets_query.is_some() {
        return Err(Error::Usage(
            "--targets and --targets-query each list the whole fleet's databases: give one of \
             them (--tenant-schemas-query may go with either)"
                .into(),
        ));
    }
    if args.tenant_schemas_query.is_some() && ctx.global.lock_key.is_some() {
        return Err(Error::Usage(
            "--lock-key names one lock, and each tenant schema takes its own (derived from its \
             history table): drop --lock-key with --tenant-schemas-query"
                .into(),
        ));
    }
    if let Some(path) = &args.report {
        // Found unwritable now, not after a thousand targets.
        std::fs::write(path, b"").map_err(|e| {
            Error::Usage(format!(
                "cannot write the --report file {}: {e}; give a path in a writable folder",
                path.display()
            ))
        })?;
    }
    let databases = if let Some(path) = &args.targets {
        Some(from_file(ctx, path)?)
    } else if let Some(sql) = &args.targets_query {
        let configured = config::connection(ctx.global, ctx.env)?;
        let found = from_query(
            ctx,
            &configured,
            sql,
            "--targets-query",
            |row, configured| {
                if row.contains("://") || row.contains('=') {
                    config::url_connection(row, ctx.env).map(|c| (c, None))
                } else {
                    let mut connection = configured.clone();
                    connection.config.dbname(row);
                    Ok((connection, None))
                }
            },
        )
        .await?;
        Some(nonempty(found, "--targets-query", &configured)?)
    } else {
        None
    };
    let listed = match (&args.tenant_schemas_query, databases) {
        (None, Some(databases)) => databases,
        (Some(sql), None) => {
            let configured = config::connection(ctx.global, ctx.env)?;
            let found = from_query(ctx, &configured, sql, "--tenant-schemas-query", tenant).await?;
            let tenants = nonempty(found, "--tenant-schemas-query", &configured)?;
            if let Some((_, first)) = tenants.first() {
                search_path_taken(ctx, first).await?;
            }
            tenants
        }
        (Some(sql), Some(databases)) => {
            tenants_of_each(ctx, databases, sql, args.parallel.max(1) as usize).await?
        }
        (None, None) => return Err(Error::Internal("a fleet without targets".into())),
    };
    let mut seen = std::collections::HashSet::new();
    let mut unique = Vec::with_capacity(listed.len());
    for (origin, target) in listed {
        if let Some(password) = target.connection.password() {
            output::add_secret(&password);
        }
        if seen.insert(target.identity.clone()) {
            unique.push(target);
        } else {
            tracing::warn!("{origin} names {} again: it is run once", target.identity);
        }
    }
    let listed = unique.len();
    let targets: Vec<Target> = match shard {
        Some(shard) => unique
            .into_iter()
            .filter(|t| shard.takes(&t.identity))
            .collect(),
        None => unique,
    };
    if let Some(shard) = shard {
        tracing::info!(
            "shard {}/{}: {} of the {}",
            shard.index,
            shard.count,
            plural(targets.len(), "target"),
            plural(listed, "target")
        );
    }
    Ok(Fleet {
        targets,
        listed,
        shard,
    })
}

/// The startup option that sets a tenant's search_path: PostgreSQL splits `options` at
/// spaces unless escaped by a backslash, and the schema is quoted as an identifier. A
/// startup option, not a `SET`, because the `RESET ALL` after each migration returns to it.
fn search_path_option(schema: &str) -> String {
    let quoted = quote_ident(schema);
    let mut escaped = String::with_capacity(quoted.len());
    for c in quoted.chars() {
        if c == '\\' || c.is_whitespace() {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    format!("-c search_path={escaped}")
}

/// Whether the server took a tenant's search_path from the startup options: a pooler that
/// drops them (PgBouncer's `ignore_startup_parameters`) would have every tenant's
/// migrations run in the default schema. Asked once, of the first tenant.
async fn search_path_taken(ctx: &Context<'_>, target: &Target) -> Result<()> {
    let Some(schema) = &target.schema else {
        return Ok(());
    };
    let mut budget = wait::Budget::new(ctx.global.wait_timeout);
    let session = wait::connect(&target.connection, &mut budget, ctx.interrupt).await?;
    let rows = session.rows("SELECT current_setting('search_path')").await;
    session.close().await;
    let got = rows?
        .first()
        .and_then(|r| r.first().cloned().flatten())
        .unwrap_or_default();
    if got == quote_ident(schema) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{} does not take search_path from the startup options (it is `{got}` there, not `{}`):          a connection pooler in between drops them, so every tenant's migrations would run in          the same schema. Point DATABASE_URL at PostgreSQL itself for --tenant-schemas-query",
        target.connection.describe(),
        quote_ident(schema)
    )))
}

fn identity(connection: &Connection, schema: Option<&str>) -> String {
    match schema {
        Some(schema) => format!("{}#{schema}", connection.address()),
        None => connection.address(),
    }
}

/// `--targets FILE` (or `-`, stdin): a URL or key=value string a line.
fn from_file(ctx: &Context<'_>, path: &Path) -> Result<Vec<(String, Target)>> {
    let (name, text) = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::Usage(format!("cannot read the targets from stdin: {e}")))?;
        ("stdin".to_string(), text)
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::Usage(format!(
                "cannot read the --targets file {}: {e}",
                path.display()
            ))
        })?;
        (path.display().to_string(), text)
    };
    let lines = plan::target_lines(&text);
    if lines.is_empty() {
        return Err(Error::Usage(format!(
            "{name} lists no target (only blank lines and # comments): put one postgres:// URL \
             or key=value string a line"
        )));
    }
    let mut targets = Vec::with_capacity(lines.len());
    let mut problems = Vec::new();
    for line in lines {
        let origin = format!("{name} line {}", line.line);
        match config::url_connection(&line.text, ctx.env) {
            Ok(connection) => targets.push((
                origin,
                Target {
                    identity: identity(&connection, None),
                    connection,
                    schema: None,
                    unlisted: None,
                },
            )),
            Err(e) => problems.push(format!("{origin}: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Usage(format!(
            "{} in the targets: {}; each line is a postgres://user@host:port/db URL or a \
             key=value string such as `host=db dbname=tenant_1`",
            plural(problems.len(), "problem"),
            output::redact_known(&problems.join("; "))
        )));
    }
    Ok(targets)
}

/// A query run on `on`, a target a row (its first column).
async fn from_query(
    ctx: &Context<'_>,
    on: &Connection,
    sql: &str,
    option: &str,
    target: impl Fn(&str, &Connection) -> Result<(Connection, Option<String>)>,
) -> Result<Vec<(String, Target)>> {
    let mut budget = wait::Budget::new(ctx.global.wait_timeout);
    let session = wait::connect(on, &mut budget, ctx.interrupt).await?;
    let rows = session.rows(sql).await;
    session.close().await;
    let rows = rows.map_err(|e| match e {
        Error::Database(message) => Error::Usage(format!(
            "the {option} failed on {}: {message}; it must be a query whose first column is \
             each target",
            on.describe()
        )),
        other => other,
    })?;
    let mut targets = Vec::with_capacity(rows.len());
    let mut problems = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let origin = format!("row {} of the {option}", i + 1);
        let value = row
            .first()
            .cloned()
            .flatten()
            .map(|v| v.trim().to_string())
            .unwrap_or_default();
        if value.is_empty() {
            problems.push(format!("{origin} is empty or NULL"));
            continue;
        }
        match target(&value, on) {
            Ok((connection, schema)) => targets.push((
                origin,
                Target {
                    identity: identity(&connection, schema.as_deref()),
                    connection,
                    schema,
                    unlisted: None,
                },
            )),
            Err(e) => problems.push(format!("{origin}: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Usage(output::redact_known(&format!(
            "{} in the targets: {}",
            plural(problems.len(), "problem"),
            problems.join("; ")
        ))));
    }
    Ok(targets)
}

/// A query's targets, or exit 2 when it found none: a fleet needs one.
fn nonempty(
    targets: Vec<(String, Target)>,
    option: &str,
    on: &Connection,
) -> Result<Vec<(String, Target)>> {
    if targets.is_empty() {
        return Err(Error::Usage(format!(
            "the {option} returned no rows on {}: check the query (a fleet needs at least one \
             target)",
            on.describe()
        )));
    }
    Ok(targets)
}

/// A row of `--tenant-schemas-query`: the schema on the database it was read from.
fn tenant(schema: &str, on: &Connection) -> Result<(Connection, Option<String>)> {
    let mut connection = on.clone();
    let options = match connection.config.get_options() {
        Some(given) => format!("{given} {}", search_path_option(schema)),
        None => search_path_option(schema),
    };
    connection.config.options(&options);
    Ok((connection, Some(schema.to_string())))
}

/// `--tenant-schemas-query` with `--targets` or `--targets-query`: the schemas of each
/// listed database, read `parallel` databases at a time, in the order listed. A database
/// that cannot be read is one failed target; a query the server rejects is exit 2.
async fn tenants_of_each(
    ctx: &Context<'_>,
    databases: Vec<(String, Target)>,
    sql: &str,
    parallel: usize,
) -> Result<Vec<(String, Target)>> {
    let count = databases.len();
    let read: Vec<_> =
        futures_util::stream::iter(databases.into_iter().map(|(origin, db)| async {
            let found =
                from_query(ctx, &db.connection, sql, "--tenant-schemas-query", tenant).await;
            (origin, db, found)
        }))
        .buffered(parallel)
        .collect()
        .await;
    let mut tenants = Vec::new();
    let mut servers_checked = std::collections::HashSet::new();
    for (origin, db, found) in read {
        match found {
            Ok(found) => {
                let server = db
                    .connection
                    .address()
                    .rsplit_once('/')
                    .map(|(s, _)| s.to_string());
                if let Some((_, first)) = found.first()
                    && servers_checked.insert(server)
                {
                    search_path_taken(ctx, first).await?;
                }
                tenants.extend(
                    found
                        .into_iter()
                        .map(|(row, t)| (format!("{row} on {}", db.identity), t)),
                );
            }
            Err(e @ (Error::Usage(_) | Error::Interrupted(_))) => return Err(e),
            Err(e) => {
                let why = format!("cannot read its tenant schemas ({origin}): {e}");
                tenants.push((
                    origin,
                    Target {
                        unlisted: Some((e.exit_code(), output::redact_known(&why))),
                        ..db
                    },
                ));
            }
        }
    }
    if tenants.is_empty() {
        return Err(Error::Usage(format!(
            "the --tenant-schemas-query returned no rows on any of the {}: check the query (a \
             fleet needs at least one target)",
            plural(count, "database")
        )));
    }
    Ok(tenants)
}

/// Runs `work` on every target of the fleet (at most `--parallel` at once, in the order
/// given, as the rollout allows), says each result and a summary, writes the report, and
/// ends with the most severe target's exit code.
pub async fn run(
    ctx: &Context<'_>,
    args: &FleetArgs,
    show: Show,
    work: impl AsyncFn(&Context<'_>, &Target) -> Result<Done>,
) -> Result<()> {
    let fleet = targets(ctx, args).await?;
    let started = Instant::now();
    let total = fleet.targets.len();
    let parallel = args.parallel.max(1) as usize;
    let mut rollout = Rollout::new(total, show.canary, show.max_failures);
    let mut outcomes: Vec<Option<Outcome>> = (0..total).map(|_| None).collect();
    let mut running = FuturesUnordered::new();
    let mut stopped: Option<String> = None;
    let progress = Progress::start(total, show.stream);
    let mut stdout = Stdout::default();
    loop {
        while running.len() < parallel && stopped.is_none() {
            if let Some(signal) = ctx.interrupt.received() {
                stopped = Some(format!("interrupted by {}", signal.name()));
                break;
            }
            match rollout.next() {
                Next::Start(index) => {
                    rollout.started();
                    let target = &fleet.targets[index];
                    let span = tracing::info_span!(output::TARGET_SPAN, target = %target.identity);
                    let work = &work;
                    let result_span = span.clone();
                    running.push(
                        async move {
                            let at = Instant::now();
                            let target_ctx = Context {
                                global: ctx.global,
                                interrupt: ctx.interrupt,
                                env: ctx.env,
                                started: at,
                            };
                            let result = match &target.unlisted {
                                Some((code, message)) => Err(Error::Fleet {
                                    code: *code,
                                    message: message.clone(),
                                }),
                                None => work(&target_ctx, target).await,
                            };
                            (index, at, result, result_span)
                        }
                        .instrument(span),
                    );
                }
                Next::Wait => break,
                Next::Stop(why) => {
                    stopped = why.or(Some(String::new()));
                    break;
                }
            }
        }
        let Some((index, at, result, span)) = running.next().await else {
            break;
        };
        let outcome = outcome(index, at.duration_since(started), at.elapsed(), result);
        rollout.finished(index, outcome.done.exit_code != 0);
        progress.finished(&outcome);
        let target = &fleet.targets[index];
        span.in_scope(|| log_result(&outcome));
        if show.stream {
            stdout.line(&result_line(target, &outcome, show.format));
        }
        outcomes[index] = Some(outcome);
    }
    progress.done();
    let why_skipped = stopped.filter(|s| !s.is_empty());
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .enumerate()
        .map(|(index, o)| {
            o.unwrap_or_else(|| Outcome {
                index,
                done: Done {
                    outcome: "skipped",
                    exit_code: 0,
                    applied: 0,
                    pending: 0,
                    current: None,
                    detail: format!(
                        "not started: {}",
                        why_skipped.as_deref().unwrap_or("the rollout stopped")
                    ),
                },
                error: None,
                started: Duration::ZERO,
                took: Duration::ZERO,
            })
        })
        .collect();
    if show.stream {
        for o in outcomes.iter().filter(|o| o.done.outcome == "skipped") {
            stdout.line(&result_line(&fleet.targets[o.index], o, show.format));
        }
    }
    let took = started.elapsed();
    let code = plan::most_severe(outcomes.iter().map(|o| o.done.exit_code));
    let document = report_json(&show, &fleet, &outcomes, code, took, parallel);
    if let Some(path) = &args.report {
        write_report(path, &document)?;
    }
    let summary = summary(&show, &fleet, &outcomes, code, took, parallel);
    match (show.stream, show.format) {
        (true, OutputFormat::Json) => {
            stdout.line(&json!({"summary": document["summary"], "exit_code": code}).to_string())
        }
        (false, OutputFormat::Json) => stdout.line(&document.to_string()),
        (false, OutputFormat::Text) => stdout.text(&table(&fleet, &outcomes)),
        (true, OutputFormat::Text) => {}
    }
    if show.format == OutputFormat::Text {
        stdout.text(&summary.table);
    }
    tracing::info!(
        event = event::FLEET_FINISHED,
        targets = total as u64,
        failed = summary.failed as u64,
        skipped = summary.skipped as u64,
        exit_code = code,
        duration_ms = took.as_millis() as u64,
        "{}",
        summary.line
    );
    if let Some(signal) = ctx.interrupt.received() {
        return Err(Error::Interrupted(signal));
    }
    if code == 0 {
        return match stdout.failed {
            // `| head` took what it wanted; the fleet was still run to the end.
            None | Some(Error::StdoutClosed) => Ok(()),
            Some(e) => Err(e),
        };
    }
    Err(Error::Fleet {
        code,
        message: summary.failure,
    })
}

/// Stdout for result lines: a write that fails (a reader gone, a full disk) ends the
/// writing, never the fleet, whose targets would be dropped mid-run.
#[derive(Default)]
struct Stdout {
    failed: Option<Error>,
}

impl Stdout {
    fn line(&mut self, line: &str) {
        self.text(&format!("{line}\n"));
    }

    fn text(&mut self, text: &str) {
        if self.failed.is_none()
            && let Err(e) = output::print(text)
        {
            self.failed = Some(e);
        }
    }
}

/// `fleet.target`, logged in the target's span: a success at info (JSON logs have it;
/// text logs leave it to the result line), a failure as a warning (in both).
fn log_result(o: &Outcome) {
    macro_rules! at {
        ($level:expr) => {
            tracing::event!(
                $level,
                event = event::FLEET_TARGET,
                outcome = %o.done.outcome,
                exit_code = o.done.exit_code,
                applied = o.done.applied as u64,
                duration_ms = o.took.as_millis() as u64,
                "{}: {}",
                o.done.outcome,
                o.error.as_deref().unwrap_or(&o.done.detail)
            )
        };
    }
    if o.done.exit_code == 0 {
        at!(tracing::Level::INFO)
    } else {
        at!(tracing::Level::WARN)
    }
}

fn outcome(index: usize, started: Duration, took: Duration, result: Result<Done>) -> Outcome {
    let (done, error) = match result {
        Ok(done) => (done, None),
        Err(e) => {
            let exit_code = e.exit_code();
            let outcome = match exit_code {
                4 => "unreachable",
                5 => "refused",
                _ => "failed",
            };
            let done = Done {
                outcome,
                exit_code,
                applied: 0,
                pending: 0,
                current: None,
                detail: String::new(),
            };
            (done, Some(output::redact_known(&e.to_string())))
        }
    };
    Outcome {
        index,
        done,
        error,
        started,
        took,
    }
}

fn target_json(target: &Target, o: &Outcome) -> Value {
    json!({
        "target": target.identity,
        "database": target.database(),
        "schema": target.schema,
        "outcome": o.done.outcome,
        "exit_code": o.done.exit_code,
        "applied": o.done.applied,
        "pending": o.done.pending,
        "current": o.done.current,
        "error": o.error,
        "started_ms": o.started.as_millis() as u64,
        "duration_ms": o.took.as_millis() as u64,
    })
}

/// `migrated  127.0.0.1:5432/db_1  applied 10 migrations in 120 ms`.
fn result_line(target: &Target, o: &Outcome, format: OutputFormat) -> String {
    if format == OutputFormat::Json {
        return target_json(target, o).to_string();
    }
    let what = match o.done.exit_code {
        0 => o.done.outcome.to_string(),
        code => format!("{} {code}", o.done.outcome),
    };
    let words = o.error.as_deref().unwrap_or(&o.done.detail);
    // One line each: a multi-line error (invalid files, several conflicts) is joined.
    let words = words.lines().collect::<Vec<_>>().join(" / ");
    format!("{what:<13} {}  {words}", target.identity)
}

/// `status` and `check`: one row a target, in the order given.
fn table(fleet: &Fleet, outcomes: &[Outcome]) -> String {
    let width = fleet
        .targets
        .iter()
        .map(|t| t.identity.len())
        .max()
        .unwrap_or(0)
        .max("TARGET".len());
    let mut out = format!(
        "{:<width$}  {:<13}  {:>7}  CURRENT\n",
        "TARGET", "STATE", "PENDING"
    );
    for (target, o) in fleet.targets.iter().zip(outcomes) {
        let state = match o.done.exit_code {
            0 => o.done.outcome.to_string(),
            code => format!("{} {code}", o.done.outcome),
        };
        let current = match &o.error {
            Some(e) => e.lines().collect::<Vec<_>>().join(" / "),
            None => o.done.current.clone().unwrap_or_default(),
        };
        out.push_str(&format!(
            "{:<width$}  {state:<13}  {:>7}  {current}\n",
            target.identity, o.done.pending
        ));
    }
    out
}

struct Summary {
    /// The table of outcomes, for people.
    table: String,
    /// One line, for the log.
    line: String,
    /// The error's message when the fleet did not succeed.
    failure: String,
    failed: usize,
    skipped: usize,
}

fn summary(
    show: &Show,
    fleet: &Fleet,
    outcomes: &[Outcome],
    code: i32,
    took: Duration,
    parallel: usize,
) -> Summary {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for o in outcomes {
        let key = match o.done.exit_code {
            0 => o.done.outcome.to_string(),
            c => format!("{} (exit {c})", o.done.outcome),
        };
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }
    counts.sort_by_key(|(k, _)| order_of(k));
    let failed = outcomes.iter().filter(|o| o.done.exit_code != 0).count();
    let skipped = outcomes
        .iter()
        .filter(|o| o.done.outcome == "skipped")
        .count();
    let rate = if took.as_secs_f64() > 0.0 {
        outcomes.len().saturating_sub(skipped) as f64 / took.as_secs_f64()
    } else {
        0.0
    };
    let shard = fleet
        .shard
        .map(|s| {
            format!(
                ", shard {}/{} of {}",
                s.index,
                s.count,
                plural(fleet.listed, "target")
            )
        })
        .unwrap_or_default();
    let head = format!(
        "{} {} in {} ({rate:.1}/s, --parallel {parallel}{shard})",
        show.command,
        plural(outcomes.len(), "target"),
        duration(took),
    );
    let width = counts.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut table = format!("{head}\n");
    for (key, n) in &counts {
        table.push_str(&format!("  {key:<width$}  {n:>6}\n"));
    }
    let line = format!(
        "{head}: {}",
        counts
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let failure = match outcomes
        .iter()
        .filter(|o| o.done.exit_code != 0)
        .max_by_key(|o| (plan::severity(o.done.exit_code), std::cmp::Reverse(o.index)))
    {
        Some(worst) => format!(
            "{} of {} did not succeed; exit {code}, the most severe, from {}: {}",
            plural(failed, "target"),
            outcomes.len(),
            fleet.targets[worst.index].identity,
            worst
                .error
                .as_deref()
                .unwrap_or(&worst.done.detail)
                .lines()
                .next()
                .unwrap_or_default()
        ),
        None => String::new(),
    };
    Summary {
        table,
        line,
        failure,
        failed,
        skipped,
    }
}

/// Successes first, then failures, skipped last.
fn order_of(key: &str) -> u8 {
    match key.split(' ').next().unwrap_or_default() {
        "migrated" | "at_head" => 0,
        "current" => 1,
        "behind" => 2,
        "dirty" => 3,
        "conflict" => 4,
        "failed" => 5,
        "refused" => 6,
        "unreachable" => 7,
        _ => 8,
    }
}

fn report_json(
    show: &Show,
    fleet: &Fleet,
    outcomes: &[Outcome],
    code: i32,
    took: Duration,
    parallel: usize,
) -> Value {
    let mut by_outcome = serde_json::Map::new();
    for o in outcomes {
        let n = by_outcome
            .get(o.done.outcome)
            .and_then(Value::as_u64)
            .unwrap_or(0);
        by_outcome.insert(o.done.outcome.to_string(), json!(n + 1));
    }
    let failed = outcomes.iter().filter(|o| o.done.exit_code != 0).count();
    let skipped = outcomes
        .iter()
        .filter(|o| o.done.outcome == "skipped")
        .count();
    json!({
        "command": show.command,
        "exit_code": code,
        "duration_ms": took.as_millis() as u64,
        "parallel": parallel,
        "shard": fleet.shard.map(|s| json!({"index": s.index, "count": s.count})),
        "listed": fleet.listed,
        "summary": {
            "targets": outcomes.len(),
            "succeeded": outcomes.len() - failed - skipped,
            "failed": failed,
            "skipped": skipped,
            "outcomes": by_outcome,
        },
        "targets": fleet
            .targets
            .iter()
            .zip(outcomes)
            .map(|(t, o)| target_json(t, o))
            .collect::<Vec<_>>(),
    })
}

/// Written beside, then renamed over: a reader never sees half a report.
fn write_report(path: &Path, document: &Value) -> Result<()> {
    let text = format!("{document:#}\n");
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| {
            Error::Internal(format!(
                "cannot write the --report file {}: {e}",
                path.display()
            ))
        })
}

/// The progress line: on a terminal only, and only while results stream.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    failed: std::cell::Cell<usize>,
}

impl Progress {
    fn start(total: usize, stream: bool) -> Progress {
        let target = indicatif::ProgressDrawTarget::stderr();
        if !stream || target.is_hidden() {
            return Progress {
                bar: None,
                failed: 0.into(),
            };
        }
        let bar = indicatif::ProgressBar::with_draw_target(Some(total as u64), target);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{pos}/{len} done, {msg}, ETA {eta} {wide_bar}")
        {
            bar.set_style(style);
        }
        bar.set_message(format!("0 failed, {total} left, 0.0/s"));
        bar.enable_steady_tick(Duration::from_millis(500));
        output::set_progress(Some(bar.clone()));
        Progress {
            bar: Some(bar),
            failed: 0.into(),
        }
    }

    fn finished(&self, o: &Outcome) {
        let Some(bar) = &self.bar else { return };
        if o.done.exit_code != 0 {
            self.failed.set(self.failed.get() + 1);
        }
        bar.inc(1);
        let left = bar.length().unwrap_or(0).saturating_sub(bar.position());
        let rate = bar.position() as f64 / bar.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!(
            "{} failed, {left} left, {rate:.1}/s",
            self.failed.get()
        ));
    }

    fn done(&self) {
        if self.bar.is_some() {
            output::set_progress(None);
        }
    }
}

/// `up` on one target: the whole run, converging to `decide`'s goals.
pub async fn up_target(
    ctx: &Context<'_>,
    graph: &Graph,
    target: &Target,
    options: Options,
    single_transaction: bool,
    decide: impl Fn(&Graph, &[reconcile::AppliedRow]) -> Result<crate::cli::migrator::Decision>,
) -> Result<Done> {
    let schema = target.schema.as_deref().unwrap_or(&ctx.global.schema);
    let mut migrator = Migrator::for_target(ctx, graph, options, target.connection.clone(), schema);
    migrator.single_transaction = single_transaction;
    let tally = migrator.converge(true, decide).await?;
    let heads: Vec<&str> = graph
        .heads()
        .iter()
        .map(|&h| graph.migration(h).revision.as_str())
        .collect();
    let took = ctx.started.elapsed();
    Ok(Done {
        outcome: if tally.applied > 0 {
            "migrated"
        } else {
            "current"
        },
        exit_code: 0,
        applied: tally.applied,
        pending: 0,
        current: Some(heads.join(", ")),
        detail: if tally.applied > 0 {
            format!(
                "applied {} in {}, at {}",
                plural(tally.applied, "migration"),
                duration(took),
                heads.join(", ")
            )
        } else {
            format!("nothing to do, at {}", heads.join(", "))
        },
    })
}

/// `status` and `check` on one target: where it stands against the files. `check` makes
/// `behind` exit 9 and a dirty or conflicting history exit 8, as on one database.
pub async fn standing_of(
    ctx: &Context<'_>,
    graph: &Graph,
    target: &Target,
    options: Options,
    check: bool,
) -> Result<Done> {
    let schema = target.schema.as_deref().unwrap_or(&ctx.global.schema);
    let mut migrator = Migrator::for_target(ctx, graph, options, target.connection.clone(), schema);
    let rows = migrator.read_history(false).await?;
    let plan = reconcile::plan_up(graph, &rows, None, options);
    let dirty: Vec<&str> = rows
        .iter()
        .filter(|r| r.status != RowStatus::Applied)
        .map(|r| r.revision.as_str())
        .collect();
    let current = Some(report::standing(graph, &rows));
    let pending = plan.pending.len();
    let (outcome, exit_code, detail) = if !dirty.is_empty() {
        (
            "dirty",
            8,
            format!(
                "{} dirty ({}): see `schemagate status` on it, then `schemagate resolve`",
                plural(dirty.len(), "migration"),
                dirty.join(", ")
            ),
        )
    } else if !plan.conflicts.is_empty() {
        let first = plan.conflicts[0].message();
        ("conflict", 8, first)
    } else if pending > 0 {
        (
            "behind",
            9,
            format!("{} pending", plural(pending, "migration")),
        )
    } else {
        ("at_head", 0, "at head".to_string())
    };
    Ok(Done {
        outcome,
        exit_code: if check { exit_code } else { 0 },
        applied: 0,
        pending,
        current,
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_search_path_survives_options_splitting() {
        assert_eq!(
            search_path_option("tenant_1"),
            r#"-c search_path="tenant_1""#
        );
        assert_eq!(
            search_path_option("Tenant A"),
            r#"-c search_path="Tenant\ A""#
        );
        assert_eq!(
            search_path_option(r#"we\ird"q"#),
            r#"-c search_path="we\\ird""q""#
        );
    }
}
