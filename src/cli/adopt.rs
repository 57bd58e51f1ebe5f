//! Taking over a database another migration tool managed (PRODUCT.md section 9, issue 11
//! item 8): `schemagate adopt` and `up --adopt`.
//!
//! A team switches tools only if the database it already has is not a problem. So the
//! other tool's own history table is read as that tool means it, the revisions it applied
//! are recorded in schemagate's history (no migration SQL runs), and the table itself is
//! only ever read: going back to the old tool stays possible.
//!
//! Three parts, so that each can be tested on its own: reading each tool's table into
//! plain data (`read`), a pure function deciding what to record (`decide`), and the
//! recording, under schemagate's advisory lock (`adopt`).
//!
//! The rows are `stamped` (recorded without schemagate running their SQL, which is what
//! happened), each with an event `adopt`/`adopted` whose detail names the tool and its
//! table. So the history table keeps its definition: no schema change of schemagate's own
//! state, and older runners read it unchanged.

use std::collections::{BTreeMap, HashMap};

use crate::cli::tool::Tool;

use crate::cli::context::Context;
use crate::cli::migrator::Migrator;
use crate::cli::report;
use crate::db::history::{self, Tables, quote_ident, quote_literal};
use crate::db::session::Session;
use crate::error::{Error, Result};
use crate::files::graph::Graph;
use crate::output;
use crate::plan::reconcile::{AppliedRow, Options, RowStatus};
use crate::text::plural;

/// One tool's history table, as found in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub tool: Tool,
    pub schema: String,
    pub table: String,
}

impl Found {
    fn qualified(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.table))
    }

    /// `tool (schema.table)`, for messages and the events' detail.
    pub fn describe(&self) -> String {
        format!("{} ({}.{})", self.tool.name(), self.schema, self.table)
    }
}

/// A goose row: the latest row of a version decides (pressly/goose
/// internal/dialect/dialectquery/postgres.go: `ListMigrations ... ORDER BY id DESC`, a
/// down inserts nothing but deletes, older goose inserted `is_applied = false`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GooseRow {
    pub id: i64,
    pub version_id: i64,
    pub is_applied: bool,
}

/// A `flyway_schema_history` row (Flyway's createMetaDataTable.sql; `type` is Flyway's
/// MigrationType: SCHEMA, BASELINE, SQL, JDBC, SCRIPT, UNDO_SQL, UNDO_JDBC, UNDO_SCRIPT,
/// DELETE...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlywayRow {
    pub installed_rank: i64,
    /// NULL for a repeatable migration (`R__name.sql`).
    pub version: Option<String>,
    pub kind: String,
    pub script: String,
    pub success: bool,
}

/// What a tool's history table says, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// At most one row: every version up to it is applied.
    GolangMigrate {
        version: Option<(i64, bool)>,
    },
    /// One row per applied version.
    Dbmate {
        versions: Vec<String>,
    },
    /// (version, success) per row (launchbadge/sqlx sqlx-postgres/src/migrate.rs:
    /// `dirty_version` is a row with `success = false`).
    Sqlx {
        rows: Vec<(i64, bool)>,
    },
    Goose {
        rows: Vec<GooseRow>,
    },
    Flyway {
        rows: Vec<FlywayRow>,
    },
    /// `id` is the file name (rubenv/sql-migrate migrate.go: `MigrationRecord{Id,
    /// AppliedAt}` in table `gorp_migrations`).
    SqlMigrate {
        ids: Vec<String>,
    },
    /// One row per head: every ancestor of those heads is applied.
    Alembic {
        heads: Vec<String>,
    },
}

/// What adopting would record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adoption {
    /// Nodes to record as applied, parents first.
    pub record: Vec<usize>,
    /// Nodes the tool applied that schemagate's history already has.
    pub already: usize,
    /// Said once (rows adopt leaves aside on purpose).
    pub notes: Vec<String>,
}

/// The revision spellings under which `id`, as `tool` stores it, may be in the files:
/// first the id itself (what the readers of the tools' own folder layouts give as the
/// revision), then the spelling a native schemagate folder can have, where a revision is
/// `[0-9A-Za-z]+`:
/// - Flyway `1.1` (from `V1_1__x.sql`): the dots dropped, `11`;
/// - sql-migrate `1_init.sql` (the file name): the revision of that name, `1` (the leading
///   letters and digits, as `<revision>_<slug>.sql` reads it).
///
/// Two ids that end on one file are a conflict (`decide`).
pub fn spellings(tool: Tool, id: &str) -> Vec<String> {
    let mut all = vec![id.to_string()];
    let native = match tool {
        Tool::Flyway => id.replace('.', ""),
        Tool::SqlMigrate => id
            .strip_suffix(".sql")
            .unwrap_or(id)
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect(),
        _ => id.to_string(),
    };
    if native != id && !native.is_empty() {
        all.push(native);
    }
    all
}

fn find(graph: &Graph, tool: Tool, id: &str) -> Option<usize> {
    spellings(tool, id).iter().find_map(|s| graph.find(s))
}

/// The tool's own fix for a dirty or failed state, or `None` when the state is clean.
fn dirty(found: &Found, state: &State) -> Option<String> {
    let table = format!("{}.{}", found.schema, found.table);
    match state {
        State::GolangMigrate {
            version: Some((version, true)),
        } => Some(format!(
            "golang-migrate marks version {version} dirty in {table}: a migration failed part-way \
             and golang-migrate does not know what it left. Check the database by hand, finish or \
             undo that migration, then run `migrate -path <folder> -database <url> force {version}` \
             (it is complete) or `force` to the version before it (it is undone), and adopt again"
        )),
        State::Sqlx { rows } => {
            let failed: Vec<String> = rows
                .iter()
                .filter(|(_, ok)| !ok)
                .map(|(v, _)| v.to_string())
                .collect();
            (!failed.is_empty()).then(|| {
                format!(
                    "sqlx marks version {} as partially applied (success = false) in {table}: \
                     check the database by hand and fix what the migration left, then remove the \
                     row (`DELETE FROM {table} WHERE version = {}`) and let `sqlx migrate run` \
                     apply it again (or `sqlx migrate revert` what came before), and adopt again",
                    failed.join(", "),
                    failed[0]
                )
            })
        }
        State::Flyway { rows } => {
            let failed: Vec<String> = rows
                .iter()
                .filter(|r| !r.success)
                .map(|r| {
                    format!(
                        "{} ({})",
                        r.version.as_deref().unwrap_or("repeatable"),
                        r.script
                    )
                })
                .collect();
            (!failed.is_empty()).then(|| {
                format!(
                    "Flyway records {} as failed (success = false) in {table}: clean up what it \
                     left by hand, then run `flyway repair` (it removes the failed rows) and \
                     adopt again",
                    failed.join(", ")
                )
            })
        }
        _ => None,
    }
}

/// Which of the tool's ids are applied: `exact` ids each stand for themselves, `closed`
/// ones for themselves and their ancestors in the files' graph; `baseline` (Flyway) for
/// every file at or below that version.
#[derive(Debug, Default)]
struct Claim {
    exact: Vec<String>,
    closed: Vec<String>,
    baseline: Option<String>,
    notes: Vec<String>,
}

fn claim(state: &State) -> Claim {
    let mut claim = Claim::default();
    match state {
        State::GolangMigrate { version } => {
            // NilVersion (-1) means nothing applied (golang-migrate database/driver.go).
            if let Some((v, _)) = version.filter(|(v, _)| *v >= 0) {
                claim.closed.push(v.to_string());
            }
        }
        State::Dbmate { versions } => claim.exact.clone_from(versions),
        State::Sqlx { rows } => claim.exact = rows.iter().map(|(v, _)| v.to_string()).collect(),
        State::Goose { rows } => {
            let mut latest: BTreeMap<i64, (i64, bool)> = BTreeMap::new();
            for r in rows {
                let entry = latest.entry(r.version_id).or_insert((r.id, r.is_applied));
                if r.id >= entry.0 {
                    *entry = (r.id, r.is_applied);
                }
            }
            // Version 0 is goose's own first row, not a migration.
            claim.exact = latest
                .into_iter()
                .filter(|&(v, (_, applied))| v != 0 && applied)
                .map(|(v, _)| v.to_string())
                .collect();
        }
        State::Flyway { rows } => {
            let mut rows: Vec<&FlywayRow> = rows.iter().collect();
            rows.sort_by_key(|r| r.installed_rank);
            let mut applied: Vec<String> = Vec::new();
            let mut repeatables = 0;
            for r in rows {
                let Some(version) = &r.version else {
                    repeatables += 1;
                    continue;
                };
                match r.kind.as_str() {
                    // The schema Flyway created, not a migration.
                    "SCHEMA" => {}
                    "BASELINE" => claim.baseline = Some(version.clone()),
                    // An undo, or a row `repair` marked deleted, takes the version back.
                    kind if kind.starts_with("UNDO") || kind == "DELETE" => {
                        applied.retain(|v| v != version)
                    }
                    _ => {
                        if !applied.contains(version) {
                            applied.push(version.clone());
                        }
                    }
                }
            }
            if repeatables > 0 {
                claim.notes.push(format!(
                    "{} of Flyway's repeatable migrations (R__, no version) are not recorded: \
                     schemagate's files have no such kind today",
                    plural(repeatables, "row")
                ));
            }
            claim.exact = applied;
        }
        State::SqlMigrate { ids } => claim.exact.clone_from(ids),
        State::Alembic { heads } => claim.closed.clone_from(heads),
    }
    claim
}

/// Flyway's version order: dot-separated numbers (`1.10` after `1.9`, `1.0` equals `1`).
fn flyway_le(a: &str, b: &str) -> bool {
    let parts = |v: &str| -> Vec<String> {
        let mut parts: Vec<String> = v
            .split(['.', '_'])
            .map(|p| p.trim_start_matches('0').to_string())
            .collect();
        while parts.last().is_some_and(|p| p.is_empty()) {
            parts.pop();
        }
        parts
    };
    let (a, b) = (parts(a), parts(b));
    for i in 0..a.len().max(b.len()) {
        let (x, y) = (
            a.get(i).map_or("", String::as_str),
            b.get(i).map_or("", String::as_str),
        );
        let order = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
        if order.is_ne() {
            return order.is_lt();
        }
    }
    true
}

/// What to record: the revisions the tool applied that schemagate's history lacks.
/// Refuses (exit 8) a dirty or failed state, and revisions the tool applied that no file
/// has. A pure function of the files, the tool's table and schemagate's history.
pub fn decide(
    graph: &Graph,
    found: &Found,
    state: &State,
    rows: &[AppliedRow],
) -> Result<Adoption> {
    if let Some(message) = dirty(found, state) {
        return Err(Error::Conflict(vec![message]));
    }
    let tool = found.tool;
    let claim = claim(state);
    let mut unknown = Vec::new();
    let mut by_node: HashMap<usize, &str> = HashMap::new();
    let mut problems = Vec::new();
    let mut exact = Vec::new();
    let mut closed = Vec::new();
    for (ids, into) in [(&claim.exact, &mut exact), (&claim.closed, &mut closed)] {
        for id in ids {
            match find(graph, tool, id) {
                Some(node) => {
                    if let Some(other) = by_node.insert(node, id).filter(|o| *o != id) {
                        problems.push(format!(
                            "{} has both {other} and {id}, and both name revision {} ({}): \
                             rename one of the files so that each of the tool's ids has its own",
                            found.describe(),
                            graph.migration(node).revision,
                            graph.migration(node).path
                        ));
                    }
                    into.push(node);
                }
                None => unknown.push(id.as_str()),
            }
        }
    }
    if !unknown.is_empty() {
        problems.push(format!(
            "{} applied {} that no migration file has: {}. Point --migrations at the folder {} \
             ran (with the files named as it names them), or add the missing files; nothing was \
             recorded",
            found.describe(),
            plural(unknown.len(), "revision"),
            unknown.join(", "),
            tool.name()
        ));
    }
    if !problems.is_empty() {
        return Err(Error::Conflict(problems));
    }
    let mut wanted = graph.ancestors_inclusive(&closed);
    for node in exact {
        wanted[node] = true;
    }
    if let Some(baseline) = &claim.baseline {
        for (node, m) in graph.migrations().iter().enumerate() {
            if flyway_le(&m.revision, baseline) {
                wanted[node] = true;
            }
        }
    }
    let mut has_row = vec![false; graph.len()];
    for row in rows {
        if let Some(node) = graph.find(&row.revision) {
            has_row[node] = true;
        }
    }
    let record: Vec<usize> = graph
        .topological_order()
        .iter()
        .copied()
        .filter(|&n| wanted[n] && !has_row[n])
        .collect();
    let already = (0..graph.len())
        .filter(|&n| wanted[n] && has_row[n])
        .count();
    Ok(Adoption {
        record,
        already,
        notes: claim.notes,
    })
}

/// Schemas searched for the tools' tables: the session's search_path, as the tools
/// themselves look there by default, and schemagate's own schema.
fn schemas(tables: &Tables) -> String {
    format!(
        "current_schemas(false) || ARRAY[{}]::name[]",
        quote_literal(&tables.schema)
    )
}

/// Every tool history table visible to this session, in search_path order.
pub async fn detect(session: &Session, tables: &Tables) -> Result<Vec<Found>> {
    let names: Vec<String> = Tool::ALL.iter().map(|t| quote_literal(t.table())).collect();
    let sql = format!(
        "SELECT n.nspname, c.relname, \
           array_to_string(ARRAY(SELECT a.attname FROM pg_attribute a \
             WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum), ',') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v') AND c.relname IN ({}) AND n.nspname = ANY ({}) \
         ORDER BY array_position({}, n.nspname), c.relname",
        names.join(", "),
        schemas(tables),
        schemas(tables),
    );
    let mut found: Vec<Found> = Vec::new();
    for row in session.rows(&sql).await? {
        let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        let columns: Vec<String> = text(2).split(',').map(str::to_string).collect();
        let Some(tool) = Tool::of(&text(1), &columns) else {
            tracing::warn!(
                "{}.{} is not laid out as any tool's history table schemagate knows (columns {}): left aside",
                text(0),
                text(1),
                text(2)
            );
            continue;
        };
        // The first in search_path order is the one the tool itself uses.
        if !found.iter().any(|f| f.tool == tool) {
            found.push(Found {
                tool,
                schema: text(0),
                table: text(1),
            });
        }
    }
    found.sort_by_key(|f| f.tool);
    Ok(found)
}

/// The one table to adopt from: the only one present, or the one `--from` names. `None`
/// when there is none.
pub fn choose(found: &[Found], from: Option<Tool>, flag: &str) -> Result<Option<Found>> {
    let list = || {
        found
            .iter()
            .map(Found::describe)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match from {
        Some(tool) => match found.iter().find(|f| f.tool == tool) {
            Some(f) => Ok(Some(f.clone())),
            None => Err(Error::Usage(format!(
                "no history table of {} ({}, with columns {}) in the database{}: check the \
                 database URL, or choose another tool with {flag}",
                tool.name(),
                tool.table(),
                tool.columns().join(", "),
                if found.is_empty() {
                    String::new()
                } else {
                    format!("; found {}", list())
                }
            ))),
        },
        None => match found {
            [] => Ok(None),
            [one] => Ok(Some(one.clone())),
            several => Err(Error::Usage(format!(
                "several tools' history tables are in the database: {}; choose the one that \
                 manages it with {flag} (one of {})",
                list(),
                several
                    .iter()
                    .map(|f| f.tool.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        },
    }
}

/// What no table found says: which tables were looked for, and where.
fn none_found(tables: &Tables) -> Error {
    let looked: Vec<String> = [
        "schema_migrations (golang-migrate, dbmate)",
        "_sqlx_migrations (sqlx)",
        "goose_db_version (goose)",
        "flyway_schema_history (flyway)",
        "gorp_migrations (sql-migrate)",
        "alembic_version (alembic)",
    ]
    .map(String::from)
    .to_vec();
    Error::Usage(format!(
        "no other tool's history table in the database: looked for {} in the search_path and \
         schema {}. Check the database URL (and its search_path), or, for a database no tool \
         managed, baseline it with `schemagate stamp`",
        looked.join(", "),
        tables.schema
    ))
}

/// Reads a tool's table into plain data. Only SELECTs: the table is left as it is.
pub async fn read(session: &Session, found: &Found) -> Result<State> {
    let table = found.qualified();
    let rows = |sql: String| async move { session.rows(&sql).await };
    let bad = |what: &str, value: &str| {
        Error::Conflict(vec![format!(
            "{} holds {what} `{value}`, which {} never writes: fix the row, or choose another \
             tool with --from",
            found.describe(),
            found.tool.name()
        )])
    };
    let text = |row: &[Option<String>], i: usize| row.get(i).cloned().flatten();
    let number = |value: Option<String>| -> Result<i64> {
        let value = value.unwrap_or_default();
        value.parse().map_err(|_| bad("the number", &value))
    };
    let boolean = |value: Option<String>| -> Result<bool> {
        match value.as_deref() {
            Some("t" | "true") => Ok(true),
            Some("f" | "false") => Ok(false),
            other => Err(bad("the boolean", other.unwrap_or("NULL"))),
        }
    };
    Ok(match found.tool {
        Tool::GolangMigrate => {
            // As golang-migrate reads it (Version(): `SELECT version, dirty ... LIMIT 1`).
            let all = rows(format!(
                "SELECT version::text, dirty::text FROM {table} LIMIT 1"
            ))
            .await?;
            let version = match all.first() {
                Some(row) => Some((number(text(row, 0))?, boolean(text(row, 1))?)),
                None => None,
            };
            State::GolangMigrate { version }
        }
        Tool::Dbmate => State::Dbmate {
            versions: rows(format!(
                "SELECT version::text FROM {table} WHERE version IS NOT NULL ORDER BY version"
            ))
            .await?
            .iter()
            .filter_map(|r| text(r, 0))
            .collect(),
        },
        Tool::Sqlx => {
            let mut out = Vec::new();
            for row in rows(format!(
                "SELECT version::text, success::text FROM {table} ORDER BY version"
            ))
            .await?
            {
                out.push((number(text(&row, 0))?, boolean(text(&row, 1))?));
            }
            State::Sqlx { rows: out }
        }
        Tool::Goose => {
            let mut out = Vec::new();
            for row in rows(format!(
                "SELECT id::text, version_id::text, is_applied::text FROM {table} ORDER BY id"
            ))
            .await?
            {
                out.push(GooseRow {
                    id: number(text(&row, 0))?,
                    version_id: number(text(&row, 1))?,
                    is_applied: boolean(text(&row, 2))?,
                });
            }
            State::Goose { rows: out }
        }
        Tool::Flyway => {
            let mut out = Vec::new();
            for row in rows(format!(
                "SELECT installed_rank::text, version::text, type::text, script::text, success::text \
                 FROM {table} ORDER BY installed_rank"
            ))
            .await?
            {
                out.push(FlywayRow {
                    installed_rank: number(text(&row, 0))?,
                    version: text(&row, 1),
                    kind: text(&row, 2).unwrap_or_default(),
                    script: text(&row, 3).unwrap_or_default(),
                    success: boolean(text(&row, 4))?,
                });
            }
            State::Flyway { rows: out }
        }
        Tool::SqlMigrate => State::SqlMigrate {
            ids: rows(format!(
                "SELECT id::text FROM {table} WHERE id IS NOT NULL ORDER BY id"
            ))
            .await?
            .iter()
            .filter_map(|r| text(r, 0))
            .collect(),
        },
        Tool::Alembic => State::Alembic {
            heads: rows(format!(
                "SELECT version_num::text FROM {table} WHERE version_num IS NOT NULL ORDER BY 1"
            ))
            .await?
            .iter()
            .filter_map(|r| text(r, 0))
            .collect(),
        },
    })
}

/// The statements recording an adoption: one stamped row and one event per revision.
pub fn statements(tables: &Tables, graph: &Graph, found: &Found, record: &[usize]) -> String {
    let detail = format!("from {}", found.describe());
    let mut sql = String::from("BEGIN;\n");
    for &n in record {
        let m = graph.migration(n);
        sql += &history::insert_row(tables, m, RowStatus::Applied, "stamped", "0");
        sql += &history::event(tables, "adopt", &m.revision, "adopted", Some(&detail));
    }
    sql.push_str("COMMIT;\n");
    sql
}

/// How `adopt` was asked for.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub from: Option<Tool>,
    pub dry_run: bool,
    /// `up --adopt`: only while schemagate's history is empty, and no table is no error.
    pub before_up: bool,
}

impl Request {
    fn flag(&self) -> &'static str {
        if self.before_up {
            "--adopt=TOOL"
        } else {
            "--from TOOL"
        }
    }
}

/// What one adoption did.
struct Done {
    found: Found,
    adoption: Adoption,
    standing: String,
}

/// `schemagate adopt` and the first step of `up --adopt`.
pub async fn adopt(ctx: &Context<'_>, graph: &Graph, request: Request) -> Result<()> {
    let mut migrator = Migrator::new(ctx, graph, Options::default())?;
    let tables = migrator.tables.clone();
    // Looked at without the lock first: fifty pods of `up --adopt` on a database that is
    // already schemagate's never queue for the lock here.
    let session = migrator.connect().await?;
    let looked = async {
        let rows = history::read(&session, &tables).await?.unwrap_or_default();
        let found = detect(&session, &tables).await?;
        Ok::<_, Error>((rows, found))
    }
    .await;
    session.close().await;
    let (rows, found) = looked?;
    if request.before_up && !rows.is_empty() {
        tracing::debug!("--adopt: schemagate's history is not empty, nothing to adopt");
        return Ok(());
    }
    let Some(source) = choose(&found, request.from, request.flag())? else {
        if request.before_up {
            tracing::debug!("--adopt: no other tool's history table, nothing to adopt");
            return Ok(());
        }
        return Err(none_found(&tables));
    };
    if request.dry_run {
        let session = migrator.connect().await?;
        let state = read(&session, &source).await;
        session.close().await;
        let adoption = decide(graph, &source, &state?, &rows)?;
        return dry_run(graph, &source, &adoption);
    }
    let done = migrator
        .with_lock(async |session, rows| {
            if request.before_up && !rows.is_empty() {
                return Ok(None);
            }
            // Again under the lock: the one that counts.
            let found = detect(session, &tables).await?;
            let Some(source) = choose(&found, request.from, request.flag())? else {
                return Ok(None);
            };
            let state = read(session, &source).await?;
            let adoption = decide(graph, &source, &state, &rows)?;
            if !adoption.record.is_empty() {
                session
                    .execute(&statements(&tables, graph, &source, &adoption.record))
                    .await?;
            }
            let rows = history::read(session, &tables).await?.unwrap_or_default();
            Ok(Some(Done {
                found: source,
                adoption,
                standing: report::standing(graph, &rows),
            }))
        })
        .await?;
    let Some(done) = done else {
        return Ok(());
    };
    done.adoption
        .notes
        .iter()
        .for_each(|n| tracing::warn!("{n}"));
    let recorded = done.adoption.record.len();
    tracing::info!(
        adopted = recorded,
        already = done.adoption.already,
        "adopted {} from {} ({} already recorded; no migration SQL ran, its table is unchanged); database at {}",
        plural(recorded, "revision"),
        done.found.describe(),
        done.adoption.already,
        done.standing
    );
    Ok(())
}

fn dry_run(graph: &Graph, found: &Found, adoption: &Adoption) -> Result<()> {
    adoption.notes.iter().for_each(|n| tracing::warn!("{n}"));
    let mut text = String::new();
    for &n in &adoption.record {
        let m = graph.migration(n);
        text += &format!("would record {} ({}) as applied\n", m.revision, m.path);
    }
    text += &format!(
        "would adopt {} from {} ({} already recorded); nothing was recorded (--dry-run)\n",
        plural(adoption.record.len(), "revision"),
        found.describe(),
        adoption.already
    );
    output::print(&text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::migration;

    /// A graph of native files `(revision, revises)`.
    fn graph(files: &[(&str, Option<&str>)]) -> Graph {
        let migrations = files
            .iter()
            .map(|(rev, revises)| {
                let name = format!("{rev}_m.sql");
                let text = match revises {
                    Some(p) => format!("-- migrate:revises {p}\n-- migrate:up\nSELECT 1;\n"),
                    None => "SELECT 1;\n".to_string(),
                };
                migration::parse(&name, &name, text.as_bytes()).expect("valid file")
            })
            .collect();
        Graph::build(migrations).expect("valid graph")
    }

    fn found(tool: Tool) -> Found {
        Found {
            tool,
            schema: "public".into(),
            table: tool.table().into(),
        }
    }

    fn revisions(graph: &Graph, nodes: &[usize]) -> Vec<String> {
        nodes
            .iter()
            .map(|&n| graph.migration(n).revision.clone())
            .collect()
    }

    fn row(revision: &str) -> AppliedRow {
        AppliedRow {
            revision: revision.into(),
            checksum: String::new(),
            status: RowStatus::Applied,
            recorded: Default::default(),
        }
    }

    fn adopt(g: &Graph, tool: Tool, state: State, rows: &[AppliedRow]) -> Result<Vec<String>> {
        decide(g, &found(tool), &state, rows).map(|a| revisions(g, &a.record))
    }

    fn conflict(result: Result<Vec<String>>) -> String {
        match result {
            Err(Error::Conflict(messages)) => messages.join("\n"),
            other => panic!("expected a conflict, got {other:?}"),
        }
    }

    #[test]
    fn golang_migrate_version_means_it_and_everything_before() {
        let g = graph(&[("1", None), ("2", None), ("3", None)]);
        let state = State::GolangMigrate {
            version: Some((2, false)),
        };
        assert_eq!(
            adopt(&g, Tool::GolangMigrate, state, &[]).unwrap(),
            ["1", "2"]
        );
        let none = State::GolangMigrate { version: None };
        assert!(
            adopt(&g, Tool::GolangMigrate, none, &[])
                .unwrap()
                .is_empty()
        );
        let nil = State::GolangMigrate {
            version: Some((-1, false)),
        };
        assert!(adopt(&g, Tool::GolangMigrate, nil, &[]).unwrap().is_empty());
    }

    #[test]
    fn dirty_and_failed_states_name_the_tools_own_fix() {
        let g = graph(&[("1", None), ("2", None)]);
        let golang = State::GolangMigrate {
            version: Some((2, true)),
        };
        let text = conflict(adopt(&g, Tool::GolangMigrate, golang, &[]));
        assert!(
            text.contains("migrate -path <folder> -database <url> force 2"),
            "{text}"
        );
        let sqlx = State::Sqlx {
            rows: vec![(1, true), (2, false)],
        };
        let text = conflict(adopt(&g, Tool::Sqlx, sqlx, &[]));
        assert!(text.contains("version 2 as partially applied"), "{text}");
        assert!(
            text.contains("DELETE FROM public._sqlx_migrations WHERE version = 2"),
            "{text}"
        );
        let flyway = State::Flyway {
            rows: vec![flyway_row(1, Some("1"), "SQL", false)],
        };
        let text = conflict(adopt(&g, Tool::Flyway, flyway, &[]));
        assert!(text.contains("flyway repair"), "{text}");
        assert!(text.contains("1 (V1__m.sql)"), "{text}");
    }

    #[test]
    fn goose_latest_row_per_version_decides_and_version_zero_is_its_root() {
        let g = graph(&[("1", None), ("2", None), ("3", None)]);
        let r = |id, version_id, is_applied| GooseRow {
            id,
            version_id,
            is_applied,
        };
        let state = State::Goose {
            rows: vec![
                r(1, 0, true),
                r(2, 1, true),
                r(3, 2, true),
                r(4, 3, true),
                r(5, 3, false),
            ],
        };
        assert_eq!(adopt(&g, Tool::Goose, state, &[]).unwrap(), ["1", "2"]);
    }

    fn flyway_row(rank: i64, version: Option<&str>, kind: &str, success: bool) -> FlywayRow {
        FlywayRow {
            installed_rank: rank,
            version: version.map(String::from),
            kind: kind.into(),
            script: match version {
                Some(v) if kind.starts_with("UNDO") => format!("U{v}__m.sql"),
                Some(v) => format!("V{v}__m.sql"),
                None => "R__m.sql".into(),
            },
            success,
        }
    }

    #[test]
    fn flyway_undo_schema_repeatable_and_baseline_rows() {
        let g = graph(&[("1", None), ("2", None), ("3", None), ("11", None)]);
        let state = State::Flyway {
            rows: vec![
                flyway_row(0, Some("0"), "SCHEMA", true),
                flyway_row(1, Some("1"), "SQL", true),
                flyway_row(2, Some("1.1"), "SQL", true),
                flyway_row(3, None, "SQL", true),
                flyway_row(4, Some("2"), "JDBC", true),
                flyway_row(5, Some("2"), "UNDO_SQL", true),
            ],
        };
        let adoption = decide(&g, &found(Tool::Flyway), &state, &[]).unwrap();
        // `1.1` is the native file `11`; 2 was undone.
        assert_eq!(revisions(&g, &adoption.record), ["1", "11"]);
        assert!(
            adoption.notes[0].contains("1 row of Flyway's repeatable"),
            "{:?}",
            adoption.notes
        );
        let baseline = State::Flyway {
            rows: vec![
                flyway_row(1, Some("2"), "BASELINE", true),
                flyway_row(2, Some("3"), "SQL", true),
            ],
        };
        assert_eq!(
            adopt(&g, Tool::Flyway, baseline, &[]).unwrap(),
            ["1", "2", "3"]
        );
    }

    #[test]
    fn flyway_versions_order_as_numbers() {
        assert!(flyway_le("1.9", "1.10"));
        assert!(!flyway_le("1.10", "1.9"));
        assert!(flyway_le("1.0", "1"));
        assert!(flyway_le("1", "1.0"));
        assert!(flyway_le("2", "10"));
        assert!(!flyway_le("11", "2"));
    }

    #[test]
    fn tool_ids_map_to_native_revisions() {
        assert_eq!(spellings(Tool::Flyway, "1.1"), ["1.1", "11"]);
        assert_eq!(spellings(Tool::Flyway, "3"), ["3"]);
        assert_eq!(
            spellings(Tool::SqlMigrate, "1_init.sql"),
            ["1_init.sql", "1"]
        );
        assert_eq!(
            spellings(Tool::SqlMigrate, "20190101-add.sql"),
            ["20190101-add.sql", "20190101"]
        );
        assert_eq!(spellings(Tool::GolangMigrate, "7"), ["7"]);
    }

    #[test]
    fn two_ids_on_one_file_are_a_conflict() {
        let g = graph(&[("11", None)]);
        let state = State::Flyway {
            rows: vec![
                flyway_row(1, Some("1.1"), "SQL", true),
                flyway_row(2, Some("11"), "SQL", true),
            ],
        };
        let text = conflict(adopt(&g, Tool::Flyway, state, &[]));
        assert!(text.contains("both 1.1 and 11"), "{text}");
    }

    #[test]
    fn alembic_heads_bring_their_ancestors_and_not_other_branches() {
        let g = graph(&[
            ("a1", Some("base")),
            ("b2", Some("a1")),
            ("c3", Some("a1")),
            ("d4", Some("b2")),
        ]);
        let state = State::Alembic {
            heads: vec!["d4".into()],
        };
        assert_eq!(
            adopt(&g, Tool::Alembic, state, &[]).unwrap(),
            ["a1", "b2", "d4"]
        );
    }

    #[test]
    fn unknown_revisions_are_listed_and_nothing_is_decided() {
        let g = graph(&[("1", None)]);
        let state = State::Dbmate {
            versions: vec!["1".into(), "20240101".into(), "20240102".into()],
        };
        let text = conflict(adopt(&g, Tool::Dbmate, state, &[]));
        assert!(
            text.contains("applied 2 revisions that no migration file has: 20240101, 20240102"),
            "{text}"
        );
        assert!(text.contains("--migrations"), "{text}");
    }

    #[test]
    fn what_is_recorded_already_is_not_recorded_again() {
        let g = graph(&[("1", None), ("2", None), ("3", None)]);
        let state = State::SqlMigrate {
            ids: vec!["1_m.sql".into(), "2_m.sql".into()],
        };
        let adoption = decide(&g, &found(Tool::SqlMigrate), &state, &[row("1")]).unwrap();
        assert_eq!(revisions(&g, &adoption.record), ["2"]);
        assert_eq!(adoption.already, 1);
        let again = decide(&g, &found(Tool::SqlMigrate), &state, &[row("1"), row("2")]).unwrap();
        assert!(again.record.is_empty());
        assert_eq!(again.already, 2);
    }

    #[test]
    fn tables_are_told_apart_by_their_columns() {
        let cols = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            Tool::of("schema_migrations", &cols(&["version", "dirty"])),
            Some(Tool::GolangMigrate)
        );
        assert_eq!(
            Tool::of("schema_migrations", &cols(&["version"])),
            Some(Tool::Dbmate)
        );
        assert_eq!(Tool::of("schema_migrations", &cols(&["id"])), None);
        assert_eq!(
            Tool::of(
                "flyway_schema_history",
                &cols(&[
                    "installed_rank",
                    "version",
                    "description",
                    "type",
                    "script",
                    "checksum",
                    "installed_by",
                    "installed_on",
                    "execution_time",
                    "success"
                ])
            ),
            Some(Tool::Flyway)
        );
        assert_eq!(
            Tool::of("alembic_version", &cols(&["version_num"])),
            Some(Tool::Alembic)
        );
    }

    #[test]
    fn the_source_is_the_one_table_or_the_one_named() {
        let both = [found(Tool::GolangMigrate), found(Tool::Flyway)];
        match choose(&both, None, "--from TOOL") {
            Err(Error::Usage(text)) => {
                assert!(text.contains("golang-migrate (public.schema_migrations), flyway (public.flyway_schema_history)"), "{text}");
                assert!(text.contains("--from TOOL"), "{text}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            choose(&both, Some(Tool::Flyway), "--from TOOL").unwrap(),
            Some(found(Tool::Flyway))
        );
        assert_eq!(choose(&[], None, "--from TOOL").unwrap(), None);
        assert!(matches!(
            choose(&both, Some(Tool::Goose), "--from TOOL"),
            Err(Error::Usage(_))
        ));
    }
}
