//! Runs each migration on a scratch database at its parent state, statement by statement,
//! and reads after every statement what it did to the objects that existed before the
//! migration: the locks its own backend holds (`pg_locks`), relfilenodes that changed (a
//! rewrite), sequential scans counted in the transaction (`pg_stat_get_xact_numscans`: a
//! validating scan, verified to count even on an empty table), constraints that became
//! valid, columns that became NOT NULL, names that changed, objects that went away.
//!
//! Transactional sections run inside one transaction that is rolled back, so the state
//! database is untouched and then gets the migration applied by the runner's own code for
//! the next one. `transaction:false` sections run on a throwaway copy, each statement in
//! its own transaction (so its locks can be read before COMMIT) unless it is
//! `CONCURRENTLY`, which cannot run in one: its locks are not observed.
//!
//! The state before a migration is its ancestors applied. For a linear history that is
//! what the previous step left; where branches meet, the state is built afresh.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::db::apply;
use crate::db::guard::Guard;
use crate::db::history::Tables;
use crate::db::interrupt::Interrupt;
use crate::db::session::Session;
use crate::error::{Error, FileProblem, Result};
use crate::files::graph::Graph;
use crate::files::migration::Migration;
use crate::files::split;
use crate::lint::lock::{Blocks, LockMode};
use crate::plan::reconcile::Step;
use crate::schema::scratch::Scratch;

/// The runner's history tables on the state database; never an object of a migration.
const STATE_HISTORY: &str = "schemagate_lint_history";

/// What one migration did, statement by statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationObservation {
    pub revision: String,
    pub path: String,
    pub transactional: bool,
    pub statements: Vec<StatementObservation>,
}

/// What one statement did to objects that existed before its migration. Names are
/// qualified (`public.users`; columns `public.users.email`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementObservation {
    /// 1-based line in the file.
    pub line: usize,
    pub sql: String,
    /// Ran outside a transaction (`CONCURRENTLY`): its locks could not be read.
    pub concurrently: bool,
    /// The strongest lock held on each existing relation right after the statement.
    pub locks: Vec<(String, LockMode)>,
    pub rewritten_tables: Vec<String>,
    pub rewritten_indexes: Vec<String>,
    /// (index, table) built on an existing table.
    pub new_indexes: Vec<(String, String)>,
    /// Existing tables it read from start to end.
    pub scanned: Vec<String>,
    /// (constraint, table): CHECK or FOREIGN KEY constraints that became valid.
    pub validated: Vec<(String, String)>,
    /// Existing columns that became NOT NULL.
    pub set_not_null: Vec<String>,
    /// (old, new) names of existing tables, indexes and columns.
    pub renamed: Vec<(String, String)>,
    pub dropped: Vec<String>,
}

impl StatementObservation {
    pub fn new(line: usize, sql: &str) -> StatementObservation {
        StatementObservation {
            line,
            sql: sql.to_string(),
            concurrently: false,
            locks: Vec::new(),
            rewritten_tables: Vec::new(),
            rewritten_indexes: Vec::new(),
            new_indexes: Vec::new(),
            scanned: Vec::new(),
            validated: Vec::new(),
            set_not_null: Vec::new(),
            renamed: Vec::new(),
            dropped: Vec::new(),
        }
    }

    /// The lock held on `object`, or on the table a column name (`table.column`) is in,
    /// with the relation that holds it.
    pub fn lock_on(&self, object: &str) -> Option<(String, LockMode)> {
        self.locks
            .iter()
            .filter(|(name, _)| {
                name == object
                    || object
                        .strip_prefix(name.as_str())
                        .is_some_and(|rest| rest.starts_with('.'))
            })
            .max_by_key(|(_, mode)| *mode)
            .cloned()
    }

    /// The strongest lock that stops the app's reads or writes, if any.
    pub fn strongest_blocking_lock(&self) -> Option<(String, LockMode)> {
        self.locks
            .iter()
            .filter(|(_, mode)| mode.blocks() != Blocks::Neither)
            .max_by_key(|(_, mode)| *mode)
            .cloned()
    }
}

#[derive(Debug, Clone)]
struct Relation {
    name: String,
    kind: char,
    filenode: String,
    /// For an index, its table's oid.
    table: u32,
    scans: i64,
}

#[derive(Debug, Clone)]
struct Constraint {
    name: String,
    table: u32,
    validated: bool,
    kind: char,
}

/// The catalog as one session sees it at one moment.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    relations: BTreeMap<u32, Relation>,
    /// (table, attnum) → (name, NOT NULL).
    columns: BTreeMap<(u32, i32), (String, bool)>,
    constraints: BTreeMap<u32, Constraint>,
    locks: BTreeMap<u32, LockMode>,
}

const SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema', 'schemagate_lint_history') AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'";

async fn snapshot(session: &Session) -> Result<Snapshot> {
    let mut snap = Snapshot::default();
    let rows = session
        .rows(&format!(
            "SELECT c.oid, c.relkind, c.relfilenode, format('%I.%I', n.nspname, c.relname), \
             COALESCE(i.indrelid, 0), COALESCE(pg_stat_get_xact_numscans(c.oid), 0) \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_index i ON i.indexrelid = c.oid \
             WHERE c.relkind IN ('r', 'p', 'm', 'i', 'I') AND {SCHEMAS}"
        ))
        .await?;
    for row in rows {
        let oid = number(&row, 0)? as u32;
        snap.relations.insert(
            oid,
            Relation {
                kind: text(&row, 1).chars().next().unwrap_or('r'),
                filenode: text(&row, 2),
                name: text(&row, 3),
                table: number(&row, 4)? as u32,
                scans: number(&row, 5)?,
            },
        );
    }
    let rows = session
        .rows(&format!(
            "SELECT a.attrelid, a.attnum, a.attname, a.attnotnull FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND {SCHEMAS}"
        ))
        .await?;
    for row in rows {
        snap.columns.insert(
            (number(&row, 0)? as u32, number(&row, 1)? as i32),
            (text(&row, 2), text(&row, 3) == "t"),
        );
    }
    let rows = session
        .rows(
            "SELECT oid, conrelid, conname, convalidated, contype FROM pg_constraint WHERE conrelid <> 0",
        )
        .await?;
    for row in rows {
        snap.constraints.insert(
            number(&row, 0)? as u32,
            Constraint {
                table: number(&row, 1)? as u32,
                name: text(&row, 2),
                validated: text(&row, 3) == "t",
                kind: text(&row, 4).chars().next().unwrap_or('c'),
            },
        );
    }
    let rows = session
        .rows(
            "SELECT relation, mode FROM pg_locks WHERE pid = pg_backend_pid() AND granted \
             AND locktype = 'relation' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        )
        .await?;
    for row in rows {
        if let Some(mode) = LockMode::parse(&text(&row, 1)) {
            let entry = snap.locks.entry(number(&row, 0)? as u32).or_insert(mode);
            *entry = (*entry).max(mode);
        }
    }
    Ok(snap)
}

fn text(row: &[Option<String>], i: usize) -> String {
    row.get(i).cloned().flatten().unwrap_or_default()
}

fn number(row: &[Option<String>], i: usize) -> Result<i64> {
    let value = text(row, i);
    value.parse().map_err(|_| {
        Error::Internal(format!(
            "the scratch server answered `{value}` where a catalog number was expected"
        ))
    })
}

/// What changed between `before` and `after` (one statement) on what `base` (the state
/// before the migration) had.
fn compare(
    base: &Snapshot,
    before: &Snapshot,
    after: &Snapshot,
    statement: &mut StatementObservation,
) {
    let existed = |oid: &u32| base.relations.contains_key(oid);
    let name_of = |oid: u32| {
        after
            .relations
            .get(&oid)
            .or_else(|| before.relations.get(&oid))
            .or_else(|| base.relations.get(&oid))
            .map(|r| r.name.clone())
            .unwrap_or_else(|| oid.to_string())
    };
    for (oid, mode) in &after.locks {
        if existed(oid) {
            statement.locks.push((name_of(*oid), *mode));
        }
    }
    let mut rewritten: Vec<u32> = Vec::new();
    for (oid, was) in before.relations.iter().filter(|(o, _)| existed(o)) {
        let Some(now) = after.relations.get(oid) else {
            continue;
        };
        if was.filenode != now.filenode && was.filenode != "0" && matches!(now.kind, 'r' | 'm') {
            rewritten.push(*oid);
            statement.rewritten_tables.push(now.name.clone());
        }
        if was.name != now.name {
            statement.renamed.push((was.name.clone(), now.name.clone()));
        }
        if matches!(now.kind, 'r' | 'm' | 'p') && now.scans > was.scans {
            statement.scanned.push(now.name.clone());
        }
    }
    for (oid, was) in before.relations.iter().filter(|(o, _)| existed(o)) {
        let Some(now) = after.relations.get(oid) else {
            continue;
        };
        if now.kind == 'i' && was.filenode != now.filenode && !rewritten.contains(&now.table) {
            statement.rewritten_indexes.push(now.name.clone());
        }
    }
    // A table rewrite builds its indexes again under new oids: not drops, not new indexes.
    for (oid, now) in &after.relations {
        if now.kind == 'i'
            && !before.relations.contains_key(oid)
            && existed(&now.table)
            && !rewritten.contains(&now.table)
        {
            statement
                .new_indexes
                .push((now.name.clone(), name_of(now.table)));
        }
    }
    for (oid, was) in before.relations.iter().filter(|(o, _)| existed(o)) {
        if after.relations.contains_key(oid) {
            continue;
        }
        let table_gone = was.kind == 'i'
            && (!after.relations.contains_key(&was.table) || rewritten.contains(&was.table));
        if !table_gone {
            statement.dropped.push(was.name.clone());
        }
    }
    for (key, (name, not_null)) in &before.columns {
        if !existed(&key.0) || !base.columns.contains_key(key) {
            continue;
        }
        let table = name_of(key.0);
        match after.columns.get(key) {
            Some((new_name, now_not_null)) => {
                if new_name != name {
                    statement
                        .renamed
                        .push((format!("{table}.{name}"), format!("{table}.{new_name}")));
                }
                if *now_not_null && !not_null {
                    statement.set_not_null.push(format!("{table}.{new_name}"));
                }
            }
            None if after.relations.contains_key(&key.0) => {
                statement.dropped.push(format!("{table}.{name}"));
            }
            None => {}
        }
    }
    for (oid, now) in &after.constraints {
        if !existed(&now.table) || !now.validated || !matches!(now.kind, 'c' | 'f') {
            continue;
        }
        if before.constraints.get(oid).is_some_and(|c| c.validated) {
            continue;
        }
        statement
            .validated
            .push((now.name.clone(), name_of(now.table)));
    }
}

/// Can this statement run inside a transaction block?
fn outside_transaction(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    upper.split_whitespace().any(|w| w == "CONCURRENTLY")
        || upper.trim_start().starts_with("VACUUM")
}

fn failed(migration: &Migration, line: usize, error: Error) -> Error {
    Error::InvalidFiles(vec![FileProblem::new(
        migration.path.clone(),
        Some(line),
        format!("fails on a scratch database at its parent state, so it cannot be linted: {error}"),
    )])
}

/// Runs `migration`'s up section on `session` (a database at its parent state),
/// observing each statement. `commit`: each statement in its own committed transaction
/// (transaction:false, on a copy); otherwise all in one that is rolled back.
async fn run(
    session: &Session,
    migration: &Migration,
    commit: bool,
) -> Result<Vec<StatementObservation>> {
    let section = &migration.up;
    let statements = split::split(&section.sql).map_err(|e| {
        Error::InvalidFiles(vec![FileProblem::new(
            migration.path.clone(),
            Some(section.file_line(e.line)),
            e.message,
        )])
    })?;
    let base = snapshot(session).await?;
    let mut out = Vec::new();
    if !commit {
        session.execute("BEGIN").await?;
    }
    for statement in statements {
        if statement.copy.is_some() || statement.transaction_control().is_some() {
            continue;
        }
        let line = section.file_line(statement.line);
        let mut observed = StatementObservation::new(line, statement.sql);
        let bare = commit && outside_transaction(statement.sql);
        observed.concurrently = outside_transaction(statement.sql);
        if commit && !bare {
            session.execute("BEGIN").await?;
        }
        let before = snapshot(session).await?;
        if let Err(e) = session.execute(statement.sql).await {
            let _ = session.execute("ROLLBACK").await;
            return Err(failed(migration, line, e));
        }
        let mut after = snapshot(session).await?;
        if bare {
            // Its locks are gone by now; ours (the snapshot's) are not its own.
            after.locks.clear();
        }
        compare(&base, &before, &after, &mut observed);
        if commit && !bare {
            session.execute("COMMIT").await?;
        }
        out.push(observed);
    }
    if !commit {
        session.execute("ROLLBACK").await?;
    }
    Ok(out)
}

/// One migration observed, and how long that took.
pub struct Observed {
    pub observation: MigrationObservation,
    pub elapsed: Duration,
}

/// Observes every migration marked in `targets` (by node), in topological order.
pub async fn observe(
    scratch: &Scratch,
    graph: &Graph,
    targets: &[bool],
    interrupt: &Interrupt,
) -> Result<Vec<Observed>> {
    let tables = Tables::new(STATE_HISTORY);
    let target_nodes: Vec<usize> = (0..graph.len())
        .filter(|&n| targets.get(n).copied().unwrap_or(false))
        .collect();
    let wanted = graph.ancestors_inclusive(&target_nodes);
    let mut database = scratch.create(None).await?;
    let (mut session, mut guard) = scratch.open_locked(&database, &tables, interrupt).await?;
    let mut applied = vec![false; graph.len()];
    let mut out = Vec::new();
    for &node in graph.topological_order() {
        if !wanted.get(node).copied().unwrap_or(false) {
            continue;
        }
        let migration = graph.migration(node);
        let parents: Vec<usize> = graph.parents(node).to_vec();
        let mut parent_state = graph.ancestors_inclusive(&parents);
        if parents.is_empty() {
            parent_state = vec![false; graph.len()];
        }
        if parent_state != applied {
            // Branches meet or diverge here: build the parent state afresh.
            session.close().await;
            scratch.drop_database(&database).await?;
            database = scratch.create(None).await?;
            (session, guard) = scratch.open_locked(&database, &tables, interrupt).await?;
            for &earlier in graph.topological_order() {
                if parent_state[earlier] {
                    apply_one(&session, &tables, graph, earlier, guard, interrupt).await?;
                }
            }
            applied = parent_state;
        }
        if targets.get(node).copied().unwrap_or(false) {
            let started = Instant::now();
            let statements = if migration.up.transactional {
                run(&session, migration, false).await?
            } else {
                session.close().await;
                let copy = scratch.create(Some(&database)).await?;
                let on_copy = scratch.open(&copy, interrupt).await?;
                let outcome = run(&on_copy, migration, true).await;
                on_copy.close().await;
                scratch.drop_database(&copy).await?;
                (session, guard) = scratch.open_locked(&database, &tables, interrupt).await?;
                outcome?
            };
            out.push(Observed {
                observation: MigrationObservation {
                    revision: migration.revision.clone(),
                    path: migration.path.clone(),
                    transactional: migration.up.transactional,
                    statements,
                },
                elapsed: started.elapsed(),
            });
        }
        apply_one(&session, &tables, graph, node, guard, interrupt).await?;
        applied[node] = true;
    }
    session.close().await;
    scratch.drop_database(&database).await?;
    Ok(out)
}

async fn apply_one(
    session: &Session,
    tables: &Tables,
    graph: &Graph,
    node: usize,
    guard: Guard,
    interrupt: &Interrupt,
) -> Result<()> {
    apply::step(
        session,
        tables,
        graph.migration(node),
        Step::Up(node),
        guard,
        // A scratch database nobody else uses: nothing to wait for.
        apply::DdlLock::OFF,
        interrupt,
    )
    .await?;
    session
        .execute("RESET ALL; RESET SESSION AUTHORIZATION; RESET ROLE")
        .await
}
