//! Building states on the scratch server and turning the difference of two into a
//! migration that has been tried: what `new --autogenerate`, `diff` and `check` share.
//!
//! A state is a scratch database: the migrations applied by the runner's own code (so
//! `transaction:false`, COPY and every rule of `up` hold), or the schema files applied in
//! name order. Renames named by `-- schemagate:renamed-from` are made on a copy of the head
//! state first, so PostgreSQL itself rewrites every index, constraint and view that names
//! the old name, and the diff that follows sees no drop. Before anything is written the
//! up section is run on a fresh copy of the head state and read again: it must equal the
//! desired state; then the down section must give the head state back.

use crate::db::apply;
use crate::db::history::{self, Tables};
use crate::db::interrupt::Interrupt;
use crate::db::session::Session;
use crate::error::{Error, Result};
use crate::files::graph::Graph;
use crate::plan::reconcile::Step;
use crate::schema::catalog;
use crate::schema::desired::{self, RenameHint, RenameKind, SchemaFile};
use crate::schema::diff::{self, Options, Plan};
use crate::schema::model::{Key, Kind, Schema};
use crate::schema::scratch::Scratch;

/// Where the runner's history tables go on a scratch database; dropped before reading.
const SCRATCH_HISTORY: &str = "schemagate_scratch_history";

/// The migrations of `graph` marked in `wanted` (by node), applied in order.
pub async fn migrations_state(
    scratch: &Scratch,
    graph: &Graph,
    wanted: &[bool],
    interrupt: &Interrupt,
) -> Result<String> {
    let database = scratch.create(None).await?;
    let tables = Tables::new(SCRATCH_HISTORY);
    let (session, guard) = scratch.open_locked(&database, &tables, interrupt).await?;
    for &node in graph.topological_order() {
        if !wanted.get(node).copied().unwrap_or(false) {
            continue;
        }
        let migration = graph.migration(node);
        apply::step(
            &session,
            &tables,
            migration,
            Step::Up(node),
            guard,
            // A scratch database nobody else uses: nothing to wait for.
            apply::DdlLock::OFF,
            interrupt,
        )
        .await
        .map_err(|e| on_scratch(e, "the migrations"))?;
        session
            .execute("RESET ALL; RESET SESSION AUTHORIZATION; RESET ROLE")
            .await?;
    }
    session
        .execute(&format!(
            "SET client_min_messages = warning; DROP SCHEMA {} CASCADE",
            history::quote_ident(SCRATCH_HISTORY)
        ))
        .await?;
    session.close().await;
    tracing::debug!("built the migrations' state in {database}");
    Ok(database)
}

/// The schema files applied to a fresh scratch database.
pub async fn schema_state(
    scratch: &Scratch,
    files: &[SchemaFile],
    interrupt: &Interrupt,
) -> Result<String> {
    let database = scratch.create(None).await?;
    let session = scratch.open(&database, interrupt).await?;
    desired::apply_files(&session, files).await?;
    session.close().await;
    tracing::debug!("built the schema files' state in {database}");
    Ok(database)
}

fn on_scratch(error: Error, what: &str) -> Error {
    match error {
        Error::MigrationFailed(mut failure) => {
            failure.message = format!(
                "{} (while applying {what} to a scratch database to read the schema they make)",
                failure.message
            );
            Error::MigrationFailed(failure)
        }
        other => other,
    }
}

/// One scratch database's schema.
pub async fn read(scratch: &Scratch, database: &str, interrupt: &Interrupt) -> Result<Schema> {
    let session = scratch.open(database, interrupt).await?;
    let schema = catalog::read(&session, &[]).await?;
    session.close().await;
    tracing::debug!("read {} objects from {database}", schema.objects.len());
    Ok(schema)
}

/// A live database's schema, read in a read-only session, without schemagate's own
/// history tables (and their schema, when nothing else is in it).
pub async fn read_live(session: &Session, tables: &Tables) -> Result<Schema> {
    session
        .execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        .await?;
    let own = Key::new(Kind::Schema, quote_server_style(&tables.schema));
    let leave_out = [
        format!("{}.schemagate_history", own.name),
        format!("{}.schemagate_events", own.name),
    ];
    let mut schema = catalog::read(session, &leave_out).await?;
    // The events table's id sequence goes with it.
    let owned: Vec<Key> = schema
        .objects
        .values()
        .filter(|o| {
            o.key.kind == Kind::SequenceOwner
                && o.deps.iter().any(|d| {
                    d.kind == Kind::Column
                        && leave_out
                            .iter()
                            .any(|t| d.name.starts_with(&format!("{t}.")))
                })
        })
        .map(|o| o.key.clone())
        .collect();
    for owner in owned {
        schema
            .objects
            .remove(&Key::new(Kind::Sequence, &owner.name));
        schema.objects.remove(&owner);
    }
    if own.name != "public"
        && !schema
            .objects
            .keys()
            .any(|k| k.kind != Kind::Schema && k.name.starts_with(&format!("{}.", own.name)))
    {
        schema.objects.remove(&own);
    }
    Ok(schema)
}

/// The history schema as `quote_ident` spells it (bare when it can be).
fn quote_server_style(name: &str) -> String {
    crate::schema::model::quote_ident(name)
}

/// A generated migration: the renames, then the diff, each way.
#[derive(Debug, Clone)]
pub struct Generated {
    pub up: Plan,
    pub down: Plan,
}

impl Generated {
    pub fn is_empty(&self) -> bool {
        self.up.is_empty()
    }
}

/// The objects `diff` could not express, as one error (exit 10).
fn cannot(list: Vec<String>) -> Error {
    Error::SchemaDiffers(format!(
        "schemagate cannot write this change, so it wrote nothing:\n{}\nwrite these steps by hand in a migration (`schemagate new`), then generate again for the rest",
        list.iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    ))
}

/// The plain diff of two schemas, for `diff` and `check`.
pub fn between(from: &Schema, to: &Schema, options: Options) -> Result<Plan> {
    diff::diff(from, to, options).map_err(cannot)
}

/// The migration from the `head` state to the `desired` one (scratch databases), with the
/// renames hinted, tried on a copy of `head` before it is returned.
pub async fn generate(
    scratch: &Scratch,
    head: &str,
    desired_db: &str,
    hints: &[RenameHint],
    options: Options,
    interrupt: &Interrupt,
) -> Result<Generated> {
    let head_schema = read(scratch, head, interrupt).await?;
    let desired_schema = read(scratch, desired_db, interrupt).await?;
    let session = scratch.open(head, interrupt).await?;
    let (renames, reverse) = renames(&session, &head_schema, &desired_schema, hints).await?;
    session.close().await;
    let mut up = if renames.is_empty() {
        between(&head_schema, &desired_schema, options)?
    } else {
        let renamed = scratch.create(Some(head)).await?;
        run(scratch, &renamed, &renames.join(";\n"), false, interrupt).await?;
        let renamed_schema = read(scratch, &renamed, interrupt).await?;
        scratch.drop_database(&renamed).await?;
        between(&renamed_schema, &desired_schema, options)?
    };
    let mut down = if reverse.is_empty() {
        between(&desired_schema, &head_schema, options)?
    } else {
        let renamed = scratch.create(Some(desired_db)).await?;
        run(scratch, &renamed, &reverse.join(";\n"), false, interrupt).await?;
        let renamed_schema = read(scratch, &renamed, interrupt).await?;
        scratch.drop_database(&renamed).await?;
        between(&renamed_schema, &head_schema, options)?
    };
    prepend(&mut up, renames);
    prepend(&mut down, reverse);
    let generated = Generated { up, down };
    check(
        scratch,
        head,
        &head_schema,
        &desired_schema,
        &generated,
        interrupt,
    )
    .await?;
    Ok(generated)
}

fn prepend(plan: &mut Plan, statements: Vec<String>) {
    let mut first: Vec<diff::Statement> = statements
        .into_iter()
        .map(|sql| diff::Statement {
            sql,
            hazards: Vec::new(),
            notes: Vec::new(),
            outside_transaction: false,
        })
        .collect();
    first.append(&mut plan.statements);
    plan.statements = first;
}

/// The rename statements the hints call for, each way. A hint whose old name the head
/// state no longer has (the rename was generated before) is done and ignored.
async fn renames(
    session: &Session,
    head: &Schema,
    desired: &Schema,
    hints: &[RenameHint],
) -> Result<(Vec<String>, Vec<String>)> {
    let quote = |name: String| async move {
        let rows = session
            .rows(&format!(
                "SELECT quote_ident({})",
                history::quote_literal(&name)
            ))
            .await?;
        Ok::<String, Error>(
            rows.first()
                .and_then(|r| r.first().cloned().flatten())
                .unwrap_or(name),
        )
    };
    let mut up = Vec::new();
    let mut down = Vec::new();
    let mut table_renames: Vec<(String, String)> = Vec::new();
    for hint in hints.iter().filter(|h| h.kind == RenameKind::Table) {
        let schema = quote(hint.schema.clone().unwrap_or_else(|| "public".into())).await?;
        let from_schema = match &hint.from_schema {
            Some(s) => quote(s.clone()).await?,
            None => schema.clone(),
        };
        let new_name = quote(hint.table.clone()).await?;
        let old_name = quote(hint.from.clone()).await?;
        let new = format!("{schema}.{new_name}");
        let old = format!("{from_schema}.{old_name}");
        let table = |name: &str| Key::new(Kind::Table, name);
        if !head.objects.contains_key(&table(&old)) || head.objects.contains_key(&table(&new)) {
            continue;
        }
        if !desired.objects.contains_key(&table(&new)) {
            return Err(Error::Usage(format!(
                "{}:{}: the hint renames {old} to {new}, but the schema has no table {new}",
                hint.file.display(),
                hint.line
            )));
        }
        if from_schema != schema {
            up.push(format!("ALTER TABLE {old} SET SCHEMA {schema}"));
            down.push(format!(
                "ALTER TABLE {schema}.{old_name} SET SCHEMA {from_schema}"
            ));
        }
        if old_name != new_name {
            up.push(format!(
                "ALTER TABLE {schema}.{old_name} RENAME TO {new_name}"
            ));
            down.insert(0, format!("ALTER TABLE {new} RENAME TO {old_name}"));
        }
        table_renames.push((old, new));
    }
    for hint in hints.iter().filter(|h| h.kind == RenameKind::Column) {
        let schema = quote(hint.schema.clone().unwrap_or_else(|| "public".into())).await?;
        let table = format!("{schema}.{}", quote(hint.table.clone()).await?);
        let head_table = table_renames
            .iter()
            .find(|(_, new)| *new == table)
            .map(|(old, _)| old.clone())
            .unwrap_or_else(|| table.clone());
        let Some(new_column) = hint.column.clone() else {
            continue;
        };
        let new_column = quote(new_column).await?;
        let old_column = quote(hint.from.clone()).await?;
        let column = |t: &str, c: &str| Key::new(Kind::Column, format!("{t}.{c}"));
        if !head.objects.contains_key(&column(&head_table, &old_column))
            || head.objects.contains_key(&column(&head_table, &new_column))
        {
            continue;
        }
        if !desired.objects.contains_key(&column(&table, &new_column)) {
            return Err(Error::Usage(format!(
                "{}:{}: the hint renames column {old_column} of {table} to {new_column}, but the schema's {table} has no column {new_column}",
                hint.file.display(),
                hint.line
            )));
        }
        up.push(format!(
            "ALTER TABLE {table} RENAME COLUMN {old_column} TO {new_column}"
        ));
        down.insert(
            0,
            format!("ALTER TABLE {table} RENAME COLUMN {new_column} TO {old_column}"),
        );
    }
    // Down: columns back first (under the new table name), then the tables.
    let (columns, tables): (Vec<String>, Vec<String>) = down
        .into_iter()
        .partition(|s| s.contains(" RENAME COLUMN "));
    Ok((up, columns.into_iter().chain(tables).collect()))
}

/// Runs SQL on a scratch database: in one transaction, or statement by statement.
async fn run(
    scratch: &Scratch,
    database: &str,
    sql: &str,
    outside_transaction: bool,
    interrupt: &Interrupt,
) -> Result<()> {
    if sql.trim().is_empty() {
        return Ok(());
    }
    let session = scratch.open(database, interrupt).await?;
    let outcome = if outside_transaction {
        let mut outcome = Ok(());
        let split = crate::files::split::split(sql).map_err(|e| Error::Internal(e.message))?;
        for statement in &split {
            if let Err(e) = session.execute(statement.sql).await {
                outcome = Err(e);
                break;
            }
        }
        outcome
    } else {
        session.execute(&format!("BEGIN;\n{sql};\nCOMMIT")).await
    };
    session.close().await;
    outcome
}

/// The self-check: up on a copy of head gives desired, down gives head back.
async fn check(
    scratch: &Scratch,
    head: &str,
    head_schema: &Schema,
    desired_schema: &Schema,
    generated: &Generated,
    interrupt: &Interrupt,
) -> Result<()> {
    let copy = scratch.create(Some(head)).await?;
    tracing::debug!("copied the head state to {copy} for the self-check");
    let outcome = async {
        let failed = |direction: &str, detail: String| {
            Error::SelfCheck(format!(
                "the generated {direction} section {detail}, so nothing was written"
            ))
        };
        run(
            scratch,
            &copy,
            &generated.up.sql(),
            generated.up.outside_transaction(),
            interrupt,
        )
        .await
        .map_err(|e| failed("up", format!("fails on a copy of the head state: {e}")))?;
        let after_up = read(scratch, &copy, interrupt).await?;
        let differences = after_up.differences(desired_schema);
        if !differences.is_empty() {
            return Err(failed(
                "up",
                format!(
                    "does not give the schema file's state; these objects differ (after up, then desired):\n{}",
                    indent(&differences)
                ),
            ));
        }
        run(
            scratch,
            &copy,
            &generated.down.sql(),
            generated.down.outside_transaction(),
            interrupt,
        )
        .await
        .map_err(|e| failed("down", format!("fails after the up section: {e}")))?;
        let after_down = read(scratch, &copy, interrupt).await?;
        let differences = after_down.differences(head_schema);
        if !differences.is_empty() {
            return Err(failed(
                "down",
                format!(
                    "does not give the head state back; these objects differ (after down, then head):\n{}",
                    indent(&differences)
                ),
            ));
        }
        Ok(())
    }
    .await;
    scratch.drop_database(&copy).await?;
    outcome
}

fn indent(lines: &[String]) -> String {
    lines
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
