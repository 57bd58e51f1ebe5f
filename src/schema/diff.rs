//! The difference of two schemas as SQL: a pure function of two [`Schema`]s.
//!
//! Each object that differs becomes a change: created, dropped, altered in place, or
//! dropped and created again (and then so are the objects that depend on it). The
//! changes are nodes of a graph whose edges come from both schemas' dependencies
//! (create what an object needs first, drop what depends on an object first), sorted
//! so that drops come as early and creates in kind order as the edges allow.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use crate::schema::hazard::{Hazard, HazardKind, keeps_bytes};
use crate::schema::model::{Column, Detail, Key, Kind, Object, Schema, quote_ident, quote_literal};

#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Build indexes on tables that already exist with `CONCURRENTLY` (and drop them so).
    pub concurrently: bool,
}

/// One generated statement, without its `;`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sql: String,
    pub hazards: Vec<Hazard>,
    /// Said above the statement as `-- schemagate: ...` (a probable rename).
    pub notes: Vec<String>,
    /// `CREATE INDEX CONCURRENTLY` and its kin: the section must run outside a transaction.
    pub outside_transaction: bool,
}

impl Statement {
    fn new(sql: impl Into<String>) -> Statement {
        Statement {
            sql: sql.into(),
            hazards: Vec::new(),
            notes: Vec::new(),
            outside_transaction: false,
        }
    }

    fn hazard(mut self, kind: HazardKind, why: impl Into<String>) -> Statement {
        self.hazards.push(Hazard::new(kind, why));
        self
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub statements: Vec<Statement>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }

    pub fn outside_transaction(&self) -> bool {
        self.statements.iter().any(|s| s.outside_transaction)
    }

    /// The plan as SQL text: notes and hazard lines above their statements.
    pub fn sql(&self) -> String {
        let mut text = String::new();
        for statement in &self.statements {
            for note in &statement.notes {
                text.push_str(&format!("-- schemagate: {note}\n"));
            }
            for hazard in &statement.hazards {
                text.push_str(&hazard.line());
                text.push('\n');
            }
            text.push_str(&statement.sql);
            text.push_str(";\n");
        }
        text
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Change {
    Create,
    Drop,
    /// Dropped and created again.
    Recreate,
    Alter(Vec<Statement>),
    /// Only the comment differs.
    Comment,
}

/// The statements that turn `from` into `to`, or the objects it cannot express.
pub fn diff(from: &Schema, to: &Schema, options: Options) -> Result<Plan, Vec<String>> {
    let mut changes: BTreeMap<Key, Change> = BTreeMap::new();
    let mut cannot = Vec::new();
    for (key, old) in &from.objects {
        match to.get(key) {
            None if key.kind == Kind::Unsupported => {
                cannot.push(format!("{}: only in the first schema", key.name))
            }
            None => {
                changes.insert(key.clone(), Change::Drop);
            }
            Some(new) if new.fingerprint != old.fingerprint => {
                if key.kind == Kind::Unsupported {
                    cannot.push(format!("{}: differs", key.name));
                    continue;
                }
                match alter(old, new, from, to) {
                    Ok(Some(statements)) => {
                        changes.insert(key.clone(), Change::Alter(statements));
                    }
                    Ok(None) => {
                        changes.insert(key.clone(), Change::Recreate);
                    }
                    Err(reason) => cannot.push(format!("{key}: {reason}")),
                }
            }
            Some(new) if new.comment != old.comment => {
                changes.insert(key.clone(), Change::Comment);
            }
            Some(_) => {}
        }
    }
    for key in to.objects.keys() {
        if !from.objects.contains_key(key) {
            if key.kind == Kind::Unsupported {
                cannot.push(format!("{}: only in the second schema", key.name));
            } else {
                changes.insert(key.clone(), Change::Create);
            }
        }
    }
    if !cannot.is_empty() {
        return Err(cannot);
    }
    recreate_dependents(from, to, &mut changes);
    let nodes = nodes(from, to, &changes);
    let order = sort(&nodes, from, to, &changes)?;
    let mut plan = Plan::default();
    let creates_functions = changes.iter().any(|(k, c)| {
        k.kind == Kind::Function
            && matches!(c, Change::Create | Change::Recreate | Change::Alter(_))
    });
    if creates_functions {
        // pg_dump's setting: a SQL function's body may name a table created after it.
        plan.statements
            .push(Statement::new("SET check_function_bodies = false"));
    }
    for node in order {
        plan.statements
            .extend(statements(&node, from, to, &changes, options));
    }
    rename_notes(from, to, &changes, &mut plan);
    Ok(plan)
}

/// How `old` becomes `new` without dropping it; `None` to drop and create it again.
fn alter(
    old: &Object,
    new: &Object,
    from: &Schema,
    to: &Schema,
) -> Result<Option<Vec<Statement>>, String> {
    match (&old.detail, &new.detail) {
        (Detail::Column(a), Detail::Column(b)) => Ok(alter_column(a, b)),
        (Detail::Table(a), Detail::Table(b)) => {
            if a.shape != b.shape {
                return Err(format!(
                    "its partitioning, persistence or storage options change (`{}` to `{}`); \
                     schemagate does not rebuild tables: write this step by hand",
                    a.shape.trim(),
                    b.shape.trim()
                ));
            }
            let mut statements = Vec::new();
            if a.row_security != b.row_security {
                let verb = if b.row_security { "ENABLE" } else { "DISABLE" };
                statements.push(Statement::new(format!(
                    "ALTER TABLE {} {verb} ROW LEVEL SECURITY",
                    b.qualified
                )));
            }
            if a.force_row_security != b.force_row_security {
                let verb = if b.force_row_security {
                    "FORCE"
                } else {
                    "NO FORCE"
                };
                statements.push(Statement::new(format!(
                    "ALTER TABLE {} {verb} ROW LEVEL SECURITY",
                    b.qualified
                )));
            }
            Ok(Some(statements))
        }
        (Detail::Enum(a), Detail::Enum(b)) => Ok(Some(alter_enum(a, b, from, to))),
        (Detail::Sequence(_), Detail::Sequence(b)) => Ok(Some(vec![Statement::new(format!(
            "ALTER SEQUENCE {} {}",
            b.qualified, b.options
        ))])),
        (Detail::Function(a), Detail::Function(b)) => {
            if a.result == b.result && a.arguments == b.arguments {
                Ok(Some(new.create.iter().map(Statement::new).collect()))
            } else {
                Ok(None)
            }
        }
        (Detail::Domain(a), Detail::Domain(b)) => {
            if a.base != b.base {
                return Err(format!(
                    "its base type changes from {} to {}; write this step by hand",
                    a.base, b.base
                ));
            }
            let q = &b.qualified;
            let mut statements = Vec::new();
            if a.default != b.default {
                statements.push(Statement::new(match &b.default {
                    Some(d) => format!("ALTER DOMAIN {q} SET DEFAULT {d}"),
                    None => format!("ALTER DOMAIN {q} DROP DEFAULT"),
                }));
            }
            if a.not_null != b.not_null {
                let verb = if b.not_null { "SET" } else { "DROP" };
                let mut statement = Statement::new(format!("ALTER DOMAIN {q} {verb} NOT NULL"));
                if b.not_null {
                    statement = statement.hazard(
                        HazardKind::NotNull,
                        format!("checks every column of type {q} and fails if one holds NULL"),
                    );
                }
                statements.push(statement);
            }
            for (name, definition) in &a.checks {
                if !b.checks.contains(&(name.clone(), definition.clone())) {
                    statements.push(Statement::new(format!(
                        "ALTER DOMAIN {q} DROP CONSTRAINT {name}"
                    )));
                }
            }
            for (name, definition) in &b.checks {
                if !a.checks.contains(&(name.clone(), definition.clone())) {
                    statements.push(Statement::new(format!(
                        "ALTER DOMAIN {q} ADD CONSTRAINT {name} {definition}"
                    )));
                }
            }
            Ok(Some(statements))
        }
        (Detail::Composite(a), Detail::Composite(b)) => {
            let q = &new.key.name;
            let mut statements = Vec::new();
            for (name, data_type) in a {
                match b.iter().find(|(n, _)| n == name) {
                    None => statements.push(Statement::new(format!(
                        "ALTER TYPE {q} DROP ATTRIBUTE {name}"
                    ))),
                    Some((_, t)) if t != data_type => statements.push(Statement::new(format!(
                        "ALTER TYPE {q} ALTER ATTRIBUTE {name} TYPE {t}"
                    ))),
                    Some(_) => {}
                }
            }
            for (name, data_type) in b {
                if !a.iter().any(|(n, _)| n == name) {
                    statements.push(Statement::new(format!(
                        "ALTER TYPE {q} ADD ATTRIBUTE {name} {data_type}"
                    )));
                }
            }
            let order_a: Vec<&String> = a
                .iter()
                .map(|(n, _)| n)
                .filter(|n| b.iter().any(|(m, _)| m == *n))
                .collect();
            let order_b: Vec<&String> = b
                .iter()
                .map(|(n, _)| n)
                .filter(|n| a.iter().any(|(m, _)| m == *n))
                .collect();
            if order_a != order_b {
                return Err("its attributes are reordered; write this step by hand".into());
            }
            Ok(Some(statements))
        }
        (_, _) if old.key.kind == Kind::SequenceOwner => {
            Ok(Some(new.create.iter().map(Statement::new).collect()))
        }
        (_, _) if old.key.kind == Kind::Extension => {
            let schema = new
                .deps
                .iter()
                .find(|d| d.kind == Kind::Schema)
                .map(|d| d.name.clone())
                .unwrap_or_default();
            Ok(Some(vec![Statement::new(format!(
                "ALTER EXTENSION {} SET SCHEMA {schema}",
                new.key.name
            ))]))
        }
        _ => Ok(None),
    }
}

/// A column altered in place, in the order PostgreSQL needs: identity and default off,
/// the type, the default and NOT NULL, identity on. `None` when only dropping and adding
/// it again can do it (a generated column's expression).
fn alter_column(a: &Column, b: &Column) -> Option<Vec<Statement>> {
    if a.generated != b.generated {
        return None;
    }
    let prefix = format!("ALTER TABLE {} ALTER COLUMN {}", b.qualified_table, b.name);
    let mut statements = Vec::new();
    let type_changes = a.data_type != b.data_type || a.collation != b.collation;
    if !a.identity.is_empty() && b.identity.is_empty() {
        statements.push(Statement::new(format!("{prefix} DROP IDENTITY")));
    }
    if a.default.is_some() && (a.default != b.default || type_changes) {
        statements.push(Statement::new(format!("{prefix} DROP DEFAULT")));
    }
    if type_changes {
        let collate = b
            .collation
            .as_ref()
            .map(|c| format!(" COLLATE {c}"))
            .unwrap_or_default();
        let mut statement = Statement::new(format!(
            "{prefix} TYPE {}{collate} USING {}::{}",
            b.data_type, b.name, b.data_type
        ));
        if !keeps_bytes(&a.data_type, &b.data_type) {
            statement = statement.hazard(
                HazardKind::TypeChange,
                format!(
                    "{} to {} rewrites {} and its indexes under an ACCESS EXCLUSIVE lock, and fails for values {} cannot hold",
                    a.data_type, b.data_type, b.qualified_table, b.data_type
                ),
            );
        }
        statements.push(statement);
    }
    if let Some(default) = &b.default
        && (a.default != b.default || type_changes)
    {
        statements.push(Statement::new(format!("{prefix} SET DEFAULT {default}")));
    }
    if a.not_null && !b.not_null {
        statements.push(Statement::new(format!("{prefix} DROP NOT NULL")));
    }
    if !a.not_null && b.not_null {
        statements.push(Statement::new(format!("{prefix} SET NOT NULL")).hazard(
            HazardKind::NotNull,
            format!(
                "scans {} under an ACCESS EXCLUSIVE lock and fails if a row holds NULL; on a big table add CHECK ({} IS NOT NULL) NOT VALID and VALIDATE it first",
                b.qualified_table, b.name
            ),
        ));
    }
    match (a.identity.as_str(), b.identity.as_str()) {
        ("", "a") => statements.push(Statement::new(format!(
            "{prefix} ADD GENERATED ALWAYS AS IDENTITY"
        ))),
        ("", "d") => statements.push(Statement::new(format!(
            "{prefix} ADD GENERATED BY DEFAULT AS IDENTITY"
        ))),
        ("a", "d") => statements.push(Statement::new(format!("{prefix} SET GENERATED BY DEFAULT"))),
        ("d", "a") => statements.push(Statement::new(format!("{prefix} SET GENERATED ALWAYS"))),
        _ => {}
    }
    Some(statements)
}

/// New labels in place (`ADD VALUE ... BEFORE`); a removed or moved label rebuilds the
/// type and converts every column of it through text.
fn alter_enum(
    a: &crate::schema::model::Enum,
    b: &crate::schema::model::Enum,
    from: &Schema,
    to: &Schema,
) -> Vec<Statement> {
    let q = format!("{}.{}", a.schema, quote_ident(&b.name));
    let kept: Vec<&String> = b.labels.iter().filter(|l| a.labels.contains(l)).collect();
    let in_order = kept.len() == a.labels.len() && kept.iter().zip(&a.labels).all(|(x, y)| *x == y);
    if in_order {
        let mut present: Vec<String> = a.labels.clone();
        let mut statements = Vec::new();
        for (i, label) in b.labels.iter().enumerate() {
            if present.contains(label) {
                continue;
            }
            let next = b.labels[i + 1..].iter().find(|l| present.contains(l));
            let position = match next {
                Some(next) => format!(" BEFORE {}", quote_literal(next)),
                None => String::new(),
            };
            statements.push(Statement::new(format!(
                "ALTER TYPE {q} ADD VALUE {}{position}",
                quote_literal(label)
            )));
            present.push(label.clone());
        }
        return statements;
    }
    let old_name = quote_ident(&format!("{}__old", b.name));
    let old = format!("{}.{old_name}", a.schema);
    let removed: Vec<String> = a
        .labels
        .iter()
        .filter(|l| !b.labels.contains(l))
        .map(|l| quote_literal(l))
        .collect();
    let why = if removed.is_empty() {
        format!("its values are reordered, so {q} is rebuilt and every column of it rewritten")
    } else {
        format!(
            "{} removed: {q} is rebuilt, every column of it rewritten, and the rewrite fails if a row still holds {}",
            removed.join(", "),
            if removed.len() == 1 {
                "it"
            } else {
                "one of them"
            }
        )
    };
    let listed: Vec<String> = b.labels.iter().map(|l| quote_literal(l)).collect();
    let mut statements = vec![
        Statement::new(format!("ALTER TYPE {q} RENAME TO {old_name}"))
            .hazard(HazardKind::EnumValueRemoved, why),
        Statement::new(format!("CREATE TYPE {q} AS ENUM ({})", listed.join(", "))),
    ];
    let enum_key = Key::new(Kind::Enum, &q);
    for object in from.objects.values() {
        let Detail::Column(column) = &object.detail else {
            continue;
        };
        if !object.deps.contains(&enum_key) {
            continue;
        }
        let Some(Detail::Column(target)) = to.get(&object.key).map(|o| &o.detail) else {
            continue;
        };
        let prefix = format!(
            "ALTER TABLE {} ALTER COLUMN {}",
            column.qualified_table, column.name
        );
        if column.default.is_some() {
            statements.push(Statement::new(format!("{prefix} DROP DEFAULT")));
        }
        let array = if column.data_type.ends_with("[]") {
            "[]"
        } else {
            ""
        };
        statements.push(Statement::new(format!(
            "{prefix} TYPE {} USING {}::text{array}::{}",
            target.data_type, column.name, target.data_type
        )));
        if let Some(default) = &target.default {
            statements.push(Statement::new(format!("{prefix} SET DEFAULT {default}")));
        }
    }
    statements.push(Statement::new(format!("DROP TYPE {old}")));
    statements
}

/// Kinds PostgreSQL will not keep across a change of what they use, and that can be
/// dropped and created again without losing data.
fn rebuildable(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::View
            | Kind::MaterializedView
            | Kind::Trigger
            | Kind::Policy
            | Kind::Index
            | Kind::Constraint
            | Kind::ForeignKey
            | Kind::Function
            | Kind::SequenceOwner
    )
}

/// An object dropped and created again takes its dependents with it; a column whose type
/// changes (or an enum rebuilt) takes the views, policies and triggers that read it, which
/// PostgreSQL refuses to keep across the change.
fn recreate_dependents(from: &Schema, to: &Schema, changes: &mut BTreeMap<Key, Change>) {
    let mut dependents: BTreeMap<&Key, Vec<&Key>> = BTreeMap::new();
    for object in from.objects.values() {
        for dep in &object.deps {
            dependents.entry(dep).or_default().push(&object.key);
        }
    }
    let mut work: Vec<Key> = changes
        .iter()
        .filter(|(key, change)| match change {
            Change::Recreate | Change::Drop => true,
            Change::Alter(_) => match (
                &from.get(key).map(|o| &o.detail),
                &to.get(key).map(|o| &o.detail),
            ) {
                (Some(Detail::Column(a)), Some(Detail::Column(b))) => {
                    a.data_type != b.data_type || a.collation != b.collation
                }
                (Some(Detail::Enum(_)), _) => true,
                _ => false,
            },
            _ => false,
        })
        .map(|(key, _)| key.clone())
        .collect();
    let mut seen: BTreeSet<Key> = work.iter().cloned().collect();
    while let Some(key) = work.pop() {
        let altered_in_place = matches!(changes.get(&key), Some(Change::Alter(_)));
        for dependent in dependents.get(&key).into_iter().flatten() {
            if !to.objects.contains_key(*dependent) || !rebuildable(dependent.kind) {
                continue;
            }
            // A column altered in place keeps its indexes and constraints (PostgreSQL
            // rebuilds those itself); a rebuilt enum takes constraints and functions too.
            if altered_in_place
                && key.kind == Kind::Column
                && matches!(
                    dependent.kind,
                    Kind::Index | Kind::Constraint | Kind::ForeignKey
                )
            {
                continue;
            }
            match changes.get(*dependent) {
                None | Some(Change::Comment) | Some(Change::Alter(_)) => {
                    changes.insert((*dependent).clone(), Change::Recreate);
                }
                _ => {}
            }
            if seen.insert((*dependent).clone()) {
                work.push((*dependent).clone());
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Step {
    Drop,
    Change,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Node {
    step: Step,
    key: Key,
}

/// The table (or view) an object lives on, in one schema.
fn owner(object: &Object) -> Option<&Key> {
    match &object.detail {
        Detail::Column(c) => Some(&c.table),
        Detail::OnTable(t) => Some(t),
        Detail::Table(t) => t.partition_of.as_ref(),
        _ => None,
    }
}

/// The graph's nodes: every drop and every create or alter, except those another
/// statement already does (a new table's columns, a dropped table's indexes). Each maps
/// to the node that does its work.
fn nodes(from: &Schema, to: &Schema, changes: &BTreeMap<Key, Change>) -> BTreeMap<Node, Node> {
    let dropped = |key: &Key| matches!(changes.get(key), Some(Change::Drop | Change::Recreate));
    let created = |key: &Key| matches!(changes.get(key), Some(Change::Create | Change::Recreate));
    let mut nodes = BTreeMap::new();
    for (key, change) in changes {
        if matches!(change, Change::Drop | Change::Recreate) {
            let node = Node {
                step: Step::Drop,
                key: key.clone(),
            };
            // Dropping the table drops its columns, indexes, constraints, triggers,
            // policies and partitions.
            let mut doer = node.clone();
            let mut current = from.get(key).and_then(owner).cloned();
            while let Some(table) = current {
                if dropped(&table) {
                    doer = Node {
                        step: Step::Drop,
                        key: table.clone(),
                    };
                }
                current = from.get(&table).and_then(owner).cloned();
            }
            nodes.insert(node, doer);
        }
        if matches!(
            change,
            Change::Create | Change::Recreate | Change::Alter(_) | Change::Comment
        ) {
            let node = Node {
                step: Step::Change,
                key: key.clone(),
            };
            let mut doer = node.clone();
            // A new table's columns are in its CREATE TABLE.
            if key.kind == Kind::Column
                && let Some(table) = to.get(key).and_then(owner)
                && created(table)
            {
                doer = Node {
                    step: Step::Change,
                    key: table.clone(),
                };
            }
            nodes.insert(node, doer);
        }
    }
    nodes
}

/// Orders the nodes that do work: Kahn's algorithm, drops first, then by kind.
fn sort(
    nodes: &BTreeMap<Node, Node>,
    from: &Schema,
    to: &Schema,
    changes: &BTreeMap<Key, Change>,
) -> Result<Vec<Node>, Vec<String>> {
    let doer = |step: Step, key: &Key| {
        nodes
            .get(&Node {
                step,
                key: key.clone(),
            })
            .cloned()
    };
    let mut edges: BTreeMap<Node, BTreeSet<Node>> = BTreeMap::new();
    let mut add = |before: Option<Node>, after: Option<Node>| {
        if let (Some(before), Some(after)) = (before, after)
            && before != after
        {
            edges.entry(before).or_default().insert(after);
        }
    };
    for (node, own) in nodes {
        match node.step {
            Step::Change => {
                // What it needs in the new schema is created or altered first.
                for dep in to.get(&node.key).map(|o| o.deps.as_slice()).unwrap_or(&[]) {
                    add(doer(Step::Change, dep), Some(own.clone()));
                }
                // Dropped and created again: the drop first.
                add(doer(Step::Drop, &node.key), Some(own.clone()));
                // It stops needing something that goes.
                for dep in from
                    .get(&node.key)
                    .map(|o| o.deps.as_slice())
                    .unwrap_or(&[])
                {
                    if matches!(changes.get(dep), Some(Change::Drop)) {
                        add(Some(own.clone()), doer(Step::Drop, dep));
                    }
                }
            }
            Step::Drop => {
                for dep in from
                    .get(&node.key)
                    .map(|o| o.deps.as_slice())
                    .unwrap_or(&[])
                {
                    // Dependents go before what they depend on, and before it changes.
                    add(Some(own.clone()), doer(Step::Drop, dep));
                    if matches!(changes.get(dep), Some(Change::Alter(_))) {
                        add(Some(own.clone()), doer(Step::Change, dep));
                    }
                }
            }
        }
    }
    let doers: BTreeSet<Node> = nodes.values().cloned().collect();
    let mut incoming: BTreeMap<&Node, usize> = doers.iter().map(|n| (n, 0)).collect();
    for targets in edges.values() {
        for target in targets {
            if let Some(count) = incoming.get_mut(target) {
                *count += 1;
            }
        }
    }
    // Drops first, dependents' kinds before what they use; then creates in kind order.
    let priority = |node: &Node| {
        let order = match node.step {
            Step::Drop => (0, 100 - node.key.kind as usize),
            Step::Change => (1, node.key.kind as usize),
        };
        Reverse((order, node.key.name.clone(), node.clone()))
    };
    let mut ready: BinaryHeap<_> = incoming
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(node, _)| priority(node))
        .collect();
    let mut order = Vec::new();
    while let Some(Reverse((_, _, node))) = ready.pop() {
        for next in edges.get(&node).into_iter().flatten() {
            if let Some(count) = incoming.get_mut(next) {
                *count -= 1;
                if *count == 0 {
                    ready.push(priority(next));
                }
            }
        }
        order.push(node);
    }
    if order.len() < doers.len() {
        let stuck: Vec<String> = doers
            .iter()
            .filter(|n| !order.contains(n))
            .map(|n| {
                format!(
                    "{} (to {})",
                    n.key,
                    if n.step == Step::Drop {
                        "drop"
                    } else {
                        "create or alter"
                    }
                )
            })
            .collect();
        return Err(vec![format!(
            "these changes depend on each other in a circle, so no order of statements can make them: {}",
            stuck.join(", ")
        )]);
    }
    Ok(order)
}

fn table_is_partitioned(schema: &Schema, table: &Key) -> bool {
    matches!(schema.get(table).map(|o| &o.detail), Some(Detail::Table(t)) if t.shape.contains("PARTITION BY"))
}

/// The SQL of one node.
fn statements(
    node: &Node,
    from: &Schema,
    to: &Schema,
    changes: &BTreeMap<Key, Change>,
    options: Options,
) -> Vec<Statement> {
    let key = &node.key;
    let change = changes.get(key).cloned().unwrap_or(Change::Comment);
    match node.step {
        Step::Drop => {
            let Some(object) = from.get(key) else {
                return Vec::new();
            };
            let mut statement = Statement::new(object.drop.clone());
            let stays = |table: &Key| {
                to.objects.contains_key(table)
                    && !matches!(changes.get(table), Some(Change::Recreate))
            };
            if key.kind == Kind::Index
                && options.concurrently
                && let Some(table) = owner(object)
                && stays(table)
                && !table_is_partitioned(from, table)
            {
                statement.sql =
                    statement
                        .sql
                        .replacen("DROP INDEX ", "DROP INDEX CONCURRENTLY ", 1);
                statement.outside_transaction = true;
            }
            if change == Change::Drop {
                let why = match key.kind {
                    Kind::Table => Some(format!("deletes {} and every row in it", key.name)),
                    Kind::Column => Some(format!("deletes column {} and its data", key.name)),
                    Kind::MaterializedView => Some(format!("deletes {} and its rows", key.name)),
                    Kind::Schema
                    | Kind::Enum
                    | Kind::Domain
                    | Kind::Composite
                    | Kind::Sequence
                    | Kind::Extension => Some(format!("deletes {key}; what uses it stops working")),
                    _ => None,
                };
                if let Some(why) = why {
                    statement = statement.hazard(HazardKind::Drop, why);
                }
            }
            if statement.sql.is_empty() {
                Vec::new()
            } else {
                vec![statement]
            }
        }
        Step::Change => {
            let Some(object) = to.get(key) else {
                return Vec::new();
            };
            let existed = |table: &Key| {
                from.objects.contains_key(table)
                    && !matches!(changes.get(table), Some(Change::Recreate))
            };
            let mut statements: Vec<Statement> = match &change {
                Change::Alter(statements) => statements.clone(),
                Change::Comment => Vec::new(),
                Change::Create | Change::Recreate | Change::Drop => {
                    let mut statements: Vec<Statement> =
                        object.create.iter().map(Statement::new).collect();
                    let on_existing = owner(object).is_some_and(existed);
                    match key.kind {
                        Kind::Index if on_existing => {
                            let table = owner(object).cloned().unwrap_or_else(|| key.clone());
                            for statement in &mut statements {
                                if options.concurrently && !table_is_partitioned(to, &table) {
                                    statement.sql = statement.sql.replacen(
                                        " INDEX ",
                                        " INDEX CONCURRENTLY ",
                                        1,
                                    );
                                    statement.outside_transaction = true;
                                } else {
                                    statement.hazards.push(Hazard::new(
                                        HazardKind::BlockingIndex,
                                        format!("builds the index under a SHARE lock: writes to {} wait until it is built", table.name),
                                    ));
                                }
                            }
                        }
                        Kind::Constraint | Kind::ForeignKey if on_existing => {
                            statements = not_valid_then_validate(object, statements);
                        }
                        Kind::Column if on_existing => {
                            if let Detail::Column(c) = &object.detail
                                && c.not_null
                                && c.default.is_none()
                                && c.identity.is_empty()
                                && c.generated.is_none()
                            {
                                for statement in &mut statements {
                                    statement.hazards.push(Hazard::new(
                                        HazardKind::NotNull,
                                        format!("a NOT NULL column with no default: fails if {} has rows", c.qualified_table),
                                    ));
                                }
                            }
                        }
                        _ => {}
                    }
                    statements
                }
            };
            // Comments: a new object's, a changed one, or one taken away.
            let old_comment = match &change {
                Change::Create | Change::Recreate => None,
                _ => from.get(key).and_then(|o| o.comment.clone()),
            };
            if let Some(target) = &object.comment_target
                && object.comment != old_comment
            {
                // A new table's column comments follow its CREATE TABLE.
                let value = object
                    .comment
                    .as_deref()
                    .map(quote_literal)
                    .unwrap_or_else(|| "NULL".to_string());
                statements.push(Statement::new(format!("COMMENT ON {target} IS {value}")));
            }
            if key.kind == Kind::Table && matches!(change, Change::Create | Change::Recreate) {
                // Its columns' comments, since their nodes are folded into this one.
                for column in to.objects.values() {
                    if let Detail::Column(c) = &column.detail
                        && &c.table == key
                        && let (Some(target), Some(comment)) =
                            (&column.comment_target, &column.comment)
                    {
                        statements.push(Statement::new(format!(
                            "COMMENT ON {target} IS {}",
                            quote_literal(comment)
                        )));
                    }
                }
            }
            statements
        }
    }
}

/// A check or foreign key added to a table that exists: `NOT VALID` takes a brief lock,
/// `VALIDATE` scans without blocking writes.
fn not_valid_then_validate(object: &Object, statements: Vec<Statement>) -> Vec<Statement> {
    let is_check_or_fk = object.key.kind == Kind::ForeignKey
        || statements.iter().any(|s| s.sql.contains(" CHECK ("));
    let Some(first) = statements.first() else {
        return statements;
    };
    if !is_check_or_fk || first.sql.ends_with(" NOT VALID") {
        return statements;
    }
    let Detail::OnTable(table) = &object.detail else {
        return statements;
    };
    let name = object
        .key
        .name
        .rsplit_once('.')
        .map(|(_, n)| n)
        .unwrap_or(&object.key.name);
    let name = if object.key.name.ends_with('"') {
        // A quoted name may hold dots: take it from the statement instead.
        first
            .sql
            .split(" ADD CONSTRAINT ")
            .nth(1)
            .and_then(|rest| quoted_prefix(rest))
            .unwrap_or(name)
    } else {
        name
    };
    vec![
        Statement::new(format!("{} NOT VALID", first.sql)),
        Statement::new(format!(
            "ALTER TABLE {} VALIDATE CONSTRAINT {name}",
            table.name
        )),
    ]
}

fn quoted_prefix(text: &str) -> Option<&str> {
    let mut chars = text.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        if c == '"' {
            if text[i + 1..].starts_with('"') {
                chars.next();
                continue;
            }
            return Some(&text[..=i]);
        }
    }
    None
}

/// Alembic sees a drop and an add; so does this diff, but it says when the two have the
/// same shape, and how to make it a rename.
fn rename_notes(from: &Schema, to: &Schema, changes: &BTreeMap<Key, Change>, plan: &mut Plan) {
    let shape = |schema: &Schema, table: &Key| -> Vec<String> {
        schema
            .objects
            .values()
            .filter_map(|o| match &o.detail {
                Detail::Column(c) if &c.table == table => {
                    Some(format!("{} {}", c.name, c.data_type))
                }
                _ => None,
            })
            .collect()
    };
    let dropped: Vec<&Key> = changes
        .iter()
        .filter(|(_, c)| **c == Change::Drop)
        .map(|(k, _)| k)
        .collect();
    let created: Vec<&Key> = changes
        .iter()
        .filter(|(_, c)| **c == Change::Create)
        .map(|(k, _)| k)
        .collect();
    let mut notes: Vec<(String, String)> = Vec::new();
    for new in created.iter().filter(|k| k.kind == Kind::Table) {
        let new_shape = shape(to, new);
        for old in dropped.iter().filter(|k| k.kind == Kind::Table) {
            if !new_shape.is_empty() && shape(from, old) == new_shape {
                notes.push((
                    format!("CREATE TABLE {} ", new.name),
                    format!(
                        "probable rename of table {} to {}: if so, add `-- schemagate:renamed-from {}` to the CREATE TABLE line of {} in the schema file and generate again, or the rows of {} are lost",
                        old.name, new.name, old.name, new.name, old.name
                    ),
                ));
            }
        }
    }
    for new in created.iter().filter(|k| k.kind == Kind::Column) {
        let Some(Detail::Column(b)) = to.get(new).map(|o| &o.detail) else {
            continue;
        };
        if !from.objects.contains_key(&b.table) {
            continue;
        }
        for old in dropped.iter().filter(|k| k.kind == Kind::Column) {
            let Some(Detail::Column(a)) = from.get(old).map(|o| &o.detail) else {
                continue;
            };
            if a.table == b.table && a.data_type == b.data_type {
                notes.push((
                    format!("ALTER TABLE {} ADD COLUMN {} ", b.qualified_table, b.name),
                    format!(
                        "probable rename of column {} to {} in {}: if so, add `-- schemagate:renamed-from {}` to the line of column {} in the schema file and generate again, or its data is lost",
                        a.name, b.name, b.qualified_table, a.name, b.name
                    ),
                ));
            }
        }
    }
    for (prefix, note) in notes {
        if let Some(statement) = plan
            .statements
            .iter_mut()
            .find(|s| s.sql.starts_with(&prefix) || s.sql.starts_with(prefix.trim_end()))
        {
            statement.notes.push(note);
        }
    }
}
