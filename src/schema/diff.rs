//! The difference of two schemas as SQL: a pure function of two [`Schema`]s.
//!
//! Each object that differs becomes a change: created, dropped, altered in place, or
//! dropped and created again (and then so are the objects that depend on it). The
//! changes are nodes of a graph whose edges come from both schemas' dependencies
//! (create what an object needs first, drop what depends on an object first), sorted
//! so that drops come as early and creates in kind order as the edges allow.
//!
//! Where PostgreSQL offers a way that keeps a live table working it is taken: indexes
//! (and primary keys and unique constraints, through `USING INDEX`) built `CONCURRENTLY`,
//! a changed index built beside the old one and swapped in, checks `NOT VALID` then
//! validated, a renamed constraint or index renamed. Where it cannot do a change in place
//! the object is dropped and created again with its dependants, or the change is refused
//! by name; never written wrong.

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
    /// A column whose default calls a function that is dropped and created again: the
    /// default goes before the function does, and these statements (its new default
    /// among them) come after the function is back.
    DefaultAround(Vec<Statement>),
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
    for (old, new, statement) in renames(from, to, &changes) {
        changes.remove(&old);
        changes.insert(new, Change::Alter(vec![statement]));
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
    commit_new_labels(&mut plan);
    Ok(plan)
}

/// A label added by `ALTER TYPE ... ADD VALUE` cannot be used in the transaction that
/// adds it (a default, a view, a check naming it): then the section runs outside a
/// transaction, so it is committed first.
fn commit_new_labels(plan: &mut Plan) {
    for at in 0..plan.statements.len() {
        let sql = plan.statements[at].sql.clone();
        let Some(rest) = sql.strip_prefix("ALTER TYPE ") else {
            continue;
        };
        let Some((type_name, label)) = rest.split_once(" ADD VALUE ") else {
            continue;
        };
        let literal = label.split(" BEFORE ").next().unwrap_or(label);
        let used = format!("{literal}::{type_name}");
        if plan.statements[at + 1..]
            .iter()
            .any(|later| later.sql.contains(&used))
        {
            let statement = &mut plan.statements[at];
            statement.outside_transaction = true;
            statement.notes.push(format!(
                "{literal} is used below, and a new enum value must be committed before it is used: this section runs outside a transaction"
            ));
        }
    }
}

/// A constraint or index that goes and one that comes on the same table with the same
/// definition under another name (a table renamed keeps its old `_pkey`): renamed, not
/// dropped and built again. Only a one-to-one match is taken.
fn renames(
    from: &Schema,
    to: &Schema,
    changes: &BTreeMap<Key, Change>,
) -> Vec<(Key, Key, Statement)> {
    // What an object is, its own name left out.
    let shape = |object: &Object| -> Option<(Kind, Key, String)> {
        match &object.detail {
            Detail::Constraint(c) => Some((
                object.key.kind,
                c.table.clone(),
                format!("{} {}", c.kind, c.definition),
            )),
            Detail::OnTable(table) if object.key.kind == Kind::Index => {
                let (_, name) = split_qualified(&object.key.name);
                let own = format!(" INDEX {} ON ", quote_ident(&name));
                let definition = object.create.first()?;
                Some((
                    Kind::Index,
                    table.clone(),
                    definition.replacen(&own, " INDEX ON ", 1),
                ))
            }
            _ => None,
        }
    };
    let gone: Vec<(&Key, (Kind, Key, String))> = changes
        .iter()
        .filter(|(_, c)| **c == Change::Drop)
        .filter_map(|(k, _)| Some((k, shape(from.get(k)?)?)))
        .collect();
    let come: Vec<(&Key, (Kind, Key, String))> = changes
        .iter()
        .filter(|(_, c)| **c == Change::Create)
        .filter_map(|(k, _)| Some((k, shape(to.get(k)?)?)))
        .collect();
    let mut found = Vec::new();
    for (old, old_shape) in &gone {
        let matches: Vec<&&Key> = come
            .iter()
            .filter(|(_, s)| s == old_shape)
            .map(|(k, _)| k)
            .collect();
        let twins = gone.iter().filter(|(_, s)| s == old_shape).count();
        let [new] = matches.as_slice() else {
            continue;
        };
        if twins != 1 || !from.objects.contains_key(&old_shape.1) {
            continue;
        }
        let statement = match (
            from.get(old).map(|o| &o.detail),
            to.get(new).map(|o| &o.detail),
        ) {
            (Some(Detail::Constraint(a)), Some(Detail::Constraint(b))) => format!(
                "ALTER TABLE {} RENAME CONSTRAINT {} TO {}",
                a.table.name, a.name, b.name
            ),
            _ => {
                let (_, name) = split_qualified(&new.name);
                format!("ALTER INDEX {} RENAME TO {}", old.name, quote_ident(&name))
            }
        };
        found.push(((*old).clone(), (**new).clone(), Statement::new(statement)));
    }
    found
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
                let said = |shape: &str| match shape.trim() {
                    "" => "none".to_string(),
                    shape => format!("`{shape}`"),
                };
                return Err(format!(
                    "its partitioning, persistence or storage options change ({} to {}); \
                     schemagate does not rebuild tables: write this step by hand",
                    said(&a.shape),
                    said(&b.shape)
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
        (Detail::Trigger(a), Detail::Trigger(b)) if a.definition == b.definition => {
            let verb = match b.enabled.as_str() {
                "D" => "DISABLE",
                "R" => "ENABLE REPLICA",
                "A" => "ENABLE ALWAYS",
                _ => "ENABLE",
            };
            Ok(Some(vec![Statement::new(format!(
                "ALTER TABLE {} {verb} TRIGGER {}",
                b.table.name, b.name
            ))]))
        }
        // ALTER POLICY sets roles, USING and WITH CHECK, but cannot take a clause away.
        (Detail::Policy(a), Detail::Policy(b))
            if a.shape == b.shape
                && (b.using.is_some() || a.using.is_none())
                && (b.with_check.is_some() || a.with_check.is_none()) =>
        {
            let mut sql = format!("ALTER POLICY {} ON {}", b.name, b.table.name);
            if a.roles != b.roles {
                sql.push_str(&format!(" TO {}", b.roles));
            }
            if let Some(using) = &b.using
                && a.using != b.using
            {
                sql.push_str(&format!(" USING ({using})"));
            }
            if let Some(check) = &b.with_check
                && a.with_check != b.with_check
            {
                sql.push_str(&format!(" WITH CHECK ({check})"));
            }
            Ok(Some(vec![Statement::new(sql)]))
        }
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
                    // As on a table: NOT VALID takes a brief lock, VALIDATE checks the
                    // columns of the domain without blocking writes.
                    statements.push(Statement::new(format!(
                        "ALTER DOMAIN {q} ADD CONSTRAINT {name} {definition} NOT VALID"
                    )));
                    statements.push(Statement::new(format!(
                        "ALTER DOMAIN {q} VALIDATE CONSTRAINT {name}"
                    )));
                }
            }
            Ok(Some(statements))
        }
        (Detail::Composite(a), Detail::Composite(b)) => {
            let q = &new.key.name;
            if composite_rebuilt(old, a, b, from) {
                return rebuild_composite(old, b, from, to).map(Some);
            }
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
    let prefix = format!("ALTER TABLE {} ALTER COLUMN {}", b.qualified_table, b.name);
    let mut statements = Vec::new();
    match (&a.generated, &b.generated) {
        // The values computed so far stay, as plain ones.
        (Some(_), None) => statements.push(Statement::new(format!("{prefix} DROP EXPRESSION"))),
        (x, y) if x != y => return None,
        _ => {}
    }
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
    let options = if b.identity_options.is_empty() {
        String::new()
    } else {
        format!(" ({})", b.identity_options.join(" "))
    };
    // The new sequence knows nothing of the values already there.
    let restart_note = format!(
        "the identity's sequence starts afresh: if {} already holds values, follow with ALTER TABLE {} ALTER COLUMN {} RESTART WITH (its maximum + 1)",
        b.name, b.qualified_table, b.name
    );
    match (a.identity.as_str(), b.identity.as_str()) {
        ("", "a") => {
            let mut statement = Statement::new(format!(
                "{prefix} ADD GENERATED ALWAYS AS IDENTITY{options}"
            ));
            statement.notes.push(restart_note);
            statements.push(statement);
        }
        ("", "d") => {
            let mut statement = Statement::new(format!(
                "{prefix} ADD GENERATED BY DEFAULT AS IDENTITY{options}"
            ));
            statement.notes.push(restart_note);
            statements.push(statement);
        }
        ("a", "d") => statements.push(Statement::new(format!("{prefix} SET GENERATED BY DEFAULT"))),
        ("d", "a") => statements.push(Statement::new(format!("{prefix} SET GENERATED ALWAYS"))),
        _ => {}
    }
    if !a.identity.is_empty() && !b.identity.is_empty() && a.identity_options != b.identity_options
    {
        statements.push(Statement::new(format!(
            "{prefix} {}",
            identity_changes(&a.identity_options, &b.identity_options)
        )));
    }
    Some(statements)
}

/// `SET ...` for each identity sequence option that changes; one that goes back to its
/// default is set to it. The sequence's current value is left alone (no `RESTART`).
fn identity_changes(a: &[String], b: &[String]) -> String {
    let word = |option: &str| {
        option
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    let value = |options: &[String], name: &str| {
        options
            .iter()
            .find(|o| word(o) == name)
            .and_then(|o| o.split_whitespace().last().map(str::to_string))
    };
    // Unsaid, START is the minimum (the maximum counting down): it moves with them.
    let start = |options: &[String]| {
        value(options, "START").unwrap_or_else(|| {
            if value(options, "INCREMENT").is_some_and(|v| v.starts_with('-')) {
                value(options, "MAXVALUE").unwrap_or_else(|| "-1".to_string())
            } else {
                value(options, "MINVALUE").unwrap_or_else(|| "1".to_string())
            }
        })
    };
    let mut sets = Vec::new();
    for name in ["INCREMENT", "MINVALUE", "MAXVALUE", "CACHE", "CYCLE"] {
        let old = a.iter().find(|o| word(o) == name);
        let new = b.iter().find(|o| word(o) == name);
        if old == new {
            continue;
        }
        sets.push(match (new, name) {
            (Some(option), _) => format!("SET {option}"),
            (None, "INCREMENT") => "SET INCREMENT BY 1".to_string(),
            (None, "MINVALUE") => "SET NO MINVALUE".to_string(),
            (None, "MAXVALUE") => "SET NO MAXVALUE".to_string(),
            (None, "CACHE") => "SET CACHE 1".to_string(),
            _ => "SET NO CYCLE".to_string(),
        });
    }
    if start(a) != start(b) {
        sets.push(format!("SET START WITH {}", start(b)));
    }
    sets.join(" ")
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
    if !enum_rebuilt(a, b) {
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

/// Whether an enum changes by more than new labels: then it is rebuilt.
fn enum_rebuilt(a: &crate::schema::model::Enum, b: &crate::schema::model::Enum) -> bool {
    let kept: Vec<&String> = b.labels.iter().filter(|l| a.labels.contains(l)).collect();
    !(kept.len() == a.labels.len() && kept.iter().zip(&a.labels).all(|(x, y)| *x == y))
}

/// The columns of tables whose type is `type_key` (or an array of it).
fn columns_of_type<'a>(schema: &'a Schema, type_key: &Key) -> Vec<&'a Object> {
    schema
        .objects
        .values()
        .filter(|o| matches!(o.detail, Detail::Column(_)) && o.deps.contains(type_key))
        .collect()
}

/// Whether a composite type is rebuilt: PostgreSQL will not change an attribute's type
/// while a table column holds values of it.
fn composite_rebuilt(
    old: &Object,
    a: &[(String, String)],
    b: &[(String, String)],
    from: &Schema,
) -> bool {
    let retyped = a
        .iter()
        .any(|(name, t)| b.iter().any(|(n, u)| n == name && u != t));
    retyped && !columns_of_type(from, &old.key).is_empty()
}

/// The name an object takes among a schema's relations and types (`s.name`), which two
/// objects cannot share: a table, view, sequence, index or type by its key, and a key
/// or exclusion constraint by its index (a check's name is taken as well: harmless).
fn relation_name(key: &Key) -> Option<String> {
    match key.kind {
        Kind::Table
        | Kind::View
        | Kind::MaterializedView
        | Kind::Sequence
        | Kind::Index
        | Kind::Enum
        | Kind::Domain
        | Kind::Composite => Some(key.name.clone()),
        Kind::Constraint => {
            let (table, constraint) = split_qualified(&key.name);
            let (schema, _) = split_qualified(&table);
            Some(format!("{schema}.{}", quote_ident(&constraint)))
        }
        _ => None,
    }
}

/// `s.t` split into the quoted schema and the type's own name, unquoted.
fn split_qualified(qualified: &str) -> (String, String) {
    let (schema, name) = if let Some(stripped) = qualified.strip_suffix('"') {
        // `s."a.b"`: the name is the last quoted part.
        let mut start = stripped.len();
        let bytes = stripped.as_bytes();
        while start > 0 {
            start -= 1;
            if bytes[start] == b'"' {
                if start > 0 && bytes[start - 1] == b'"' {
                    start -= 1;
                    continue;
                }
                break;
            }
        }
        let name = stripped[start + 1..].replace("\"\"", "\"");
        (qualified[..start.saturating_sub(1)].to_string(), name)
    } else {
        match qualified.rsplit_once('.') {
            Some((schema, name)) => (schema.to_string(), name.to_string()),
            None => (String::new(), qualified.to_string()),
        }
    };
    (schema, name)
}

/// A composite type whose attribute changes type under a column that uses it: renamed
/// aside, created again, every column converted attribute by attribute, the old one
/// dropped.
fn rebuild_composite(
    old: &Object,
    b: &[(String, String)],
    from: &Schema,
    to: &Schema,
) -> Result<Vec<Statement>, String> {
    let q = &old.key.name;
    let (schema, name) = split_qualified(q);
    let old_name = quote_ident(&format!("{name}__old"));
    let Some(create) = to.get(&old.key).and_then(|o| o.create.first()) else {
        return Err("it is missing from the second schema".into());
    };
    let Detail::Composite(a) = &old.detail else {
        return Err("it is not a composite type".into());
    };
    if let Some(user) = from
        .objects
        .values()
        .find(|o| o.key.kind == Kind::Composite && o.deps.contains(&old.key))
    {
        return Err(format!(
            "an attribute changes type while {} has an attribute of it, which PostgreSQL cannot \
             convert; write this step by hand",
            user.key
        ));
    }
    let mut statements = vec![
        Statement::new(format!("ALTER TYPE {q} RENAME TO {old_name}")).hazard(
            HazardKind::TypeChange,
            format!(
                "an attribute changes type while columns hold {q}: it is rebuilt, every column of it \
                 rewritten under an ACCESS EXCLUSIVE lock, and the rewrite fails for values the new \
                 attribute types cannot hold"
            ),
        ),
        Statement::new(create.clone()),
    ];
    for object in columns_of_type(from, &old.key) {
        let Detail::Column(column) = &object.detail else {
            continue;
        };
        let Some(Detail::Column(target)) = to.get(&object.key).map(|o| &o.detail) else {
            continue;
        };
        if column.data_type.ends_with("[]") {
            return Err(format!(
                "an attribute changes type while column {} is an array of it, which PostgreSQL \
                 cannot convert; write this step by hand",
                object.key.name
            ));
        }
        let fields: Vec<String> = b
            .iter()
            .map(|(n, t)| {
                if a.iter().any(|(m, _)| m == n) {
                    format!("({}).{n}::{t}", column.name)
                } else {
                    format!("NULL::{t}")
                }
            })
            .collect();
        let prefix = format!(
            "ALTER TABLE {} ALTER COLUMN {}",
            column.qualified_table, column.name
        );
        if column.default.is_some() {
            statements.push(Statement::new(format!("{prefix} DROP DEFAULT")));
        }
        statements.push(Statement::new(format!(
            "{prefix} TYPE {} USING CASE WHEN ({c})::text IS NULL THEN NULL ELSE ROW({})::{} END",
            target.data_type,
            fields.join(", "),
            target.data_type,
            c = column.name,
        )));
        if let Some(default) = &target.default {
            statements.push(Statement::new(format!("{prefix} SET DEFAULT {default}")));
        }
    }
    statements.push(Statement::new(format!("DROP TYPE {schema}.{old_name}")));
    Ok(statements)
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
    let rebuilt_type = |key: &Key| match (from.get(key), to.get(key)) {
        (Some(old), Some(new)) => match (&old.detail, &new.detail) {
            (Detail::Enum(a), Detail::Enum(b)) => enum_rebuilt(a, b),
            (Detail::Composite(a), Detail::Composite(b)) => composite_rebuilt(old, a, b, from),
            _ => false,
        },
        _ => false,
    };
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
                (Some(Detail::Enum(_) | Detail::Composite(_)), _) => rebuilt_type(key),
                _ => false,
            },
            _ => false,
        })
        .map(|(key, _)| key.clone())
        .collect();
    // A rebuilt type converts its columns in place: what reads those columns (a view)
    // must be dropped around it, as around any change of a column's type.
    let mut converted: BTreeSet<Key> = BTreeSet::new();
    for key in work.clone() {
        if rebuilt_type(&key) && matches!(changes.get(&key), Some(Change::Alter(_))) {
            for column in columns_of_type(from, &key) {
                converted.insert(column.key.clone());
                work.push(column.key.clone());
            }
        }
    }
    // A function dropped and created again: a column default that calls it is taken
    // off first and set again after.
    for key in work.clone() {
        if key.kind != Kind::Function || !matches!(changes.get(&key), Some(Change::Recreate)) {
            continue;
        }
        for object in from.objects.values() {
            let (Detail::Column(a), Some(Detail::Column(b))) =
                (&object.detail, to.get(&object.key).map(|o| &o.detail))
            else {
                continue;
            };
            if !object.deps.contains(&key) || a.default.is_none() || a.generated.is_some() {
                continue;
            }
            let statements = match changes.get(&object.key) {
                Some(Change::Recreate | Change::Drop | Change::DefaultAround(_)) => continue,
                _ => {
                    let without_default = Column {
                        default: None,
                        ..a.clone()
                    };
                    alter_column(&without_default, b).unwrap_or_default()
                }
            };
            changes.insert(object.key.clone(), Change::DefaultAround(statements));
        }
    }
    let mut seen: BTreeSet<Key> = work.iter().cloned().collect();
    while let Some(key) = work.pop() {
        let altered_in_place =
            matches!(changes.get(&key), Some(Change::Alter(_))) || converted.contains(&key);
        for dependent in dependents.get(&key).into_iter().flatten() {
            // A generated column is computed again from what it reads: no data is lost.
            let generated = |schema: &Schema| {
                matches!(schema.get(dependent).map(|o| &o.detail),
                    Some(Detail::Column(c)) if c.generated.is_some())
            };
            let regenerated = key.kind == Kind::Column && generated(from) && generated(to);
            if !to.objects.contains_key(*dependent) || !(rebuildable(dependent.kind) || regenerated)
            {
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
        Detail::Constraint(c) => Some(&c.table),
        Detail::Trigger(t) => Some(&t.table),
        Detail::Policy(p) => Some(&p.table),
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
        if matches!(
            change,
            Change::Drop | Change::Recreate | Change::DefaultAround(_)
        ) {
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
            Change::Create
                | Change::Recreate
                | Change::Alter(_)
                | Change::DefaultAround(_)
                | Change::Comment
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
                // It stops needing something that goes, or changes: it lets go first (a
                // generated column made plain before the column it read changes type).
                // (An object dropped and created again let go with its drop.)
                let needs_now = to.get(&node.key).map(|o| o.deps.as_slice()).unwrap_or(&[]);
                let recreated = matches!(changes.get(&node.key), Some(Change::Recreate));
                for dep in from
                    .get(&node.key)
                    .map(|o| o.deps.as_slice())
                    .unwrap_or(&[])
                    .iter()
                    .filter(|_| !recreated)
                {
                    match changes.get(dep) {
                        Some(Change::Drop) => add(Some(own.clone()), doer(Step::Drop, dep)),
                        Some(Change::Alter(_)) if !needs_now.contains(dep) => {
                            add(Some(own.clone()), doer(Step::Change, dep))
                        }
                        _ => {}
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
    // A name that goes and comes back on another object (a renamed table's new copy
    // keeps its primary key's name): the old one goes first.
    let mut going: BTreeMap<String, Vec<&Node>> = BTreeMap::new();
    for node in nodes.keys().filter(|n| n.step == Step::Drop) {
        if let Some(name) = relation_name(&node.key) {
            going.entry(name).or_default().push(node);
        }
    }
    for node in nodes.keys().filter(|n| n.step == Step::Change) {
        if !matches!(
            changes.get(&node.key),
            Some(Change::Create | Change::Recreate)
        ) {
            continue;
        }
        let Some(name) = relation_name(&node.key) else {
            continue;
        };
        for old in going.get(&name).into_iter().flatten() {
            if old.key != node.key {
                add(doer(Step::Drop, &old.key), doer(Step::Change, &node.key));
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
        // A table's columns in the order they stand in it: one added again goes last
        // in its table, where it stands in the new schema if that is where it was written.
        let name = match to.get(&node.key).map(|o| &o.detail) {
            Some(Detail::Column(c)) if node.step == Step::Change => {
                format!("{}\u{0}{:08}", c.qualified_table, c.position)
            }
            _ => node.key.name.clone(),
        };
        Reverse((order, name, node.clone()))
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

/// An index whose own definition changes on a table that stays: the new one is built
/// `CONCURRENTLY` under a name of its own, the old one dropped `CONCURRENTLY`, the new one
/// renamed, so the table is never without it (nor, for a unique index, without its
/// guarantee). `None` where that cannot be done (a partitioned table, something the
/// index uses goes too, a name too long for a suffix).
fn swapped_index(
    key: &Key,
    from: &Schema,
    to: &Schema,
    changes: &BTreeMap<Key, Change>,
    options: Options,
) -> Option<Vec<Statement>> {
    if key.kind != Kind::Index || !options.concurrently {
        return None;
    }
    let (old, new) = (from.get(key)?, to.get(key)?);
    if !matches!(changes.get(key), Some(Change::Recreate)) || old.fingerprint == new.fingerprint {
        return None;
    }
    let table = owner(new)?;
    if owner(old) != Some(table)
        || !from.objects.contains_key(table)
        || matches!(changes.get(table), Some(Change::Drop | Change::Recreate))
        || table_is_partitioned(from, table)
        || table_is_partitioned(to, table)
        || old
            .deps
            .iter()
            .any(|d| matches!(changes.get(d), Some(Change::Drop | Change::Recreate)))
    {
        return None;
    }
    let (schema, name) = split_qualified(&key.name);
    let temporary = format!("{name}__new");
    if temporary.len() > 63 {
        return None;
    }
    let definition = new.create.first()?;
    let own = format!(" INDEX {} ON ", quote_ident(&name));
    if !definition.contains(&own) {
        return None;
    }
    let temporary = quote_ident(&temporary);
    let mut build = Statement::new(definition.replacen(
        &own,
        &format!(" INDEX CONCURRENTLY {temporary} ON "),
        1,
    ));
    build.outside_transaction = true;
    let mut drop = Statement::new(format!("DROP INDEX CONCURRENTLY {}", key.name));
    drop.outside_transaction = true;
    Some(vec![
        build,
        drop,
        Statement::new(format!(
            "ALTER INDEX {schema}.{temporary} RENAME TO {}",
            quote_ident(&name)
        )),
    ])
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
            if swapped_index(key, from, to, changes, options).is_some() {
                // Dropped once its replacement is built (below, in its Change step).
                return Vec::new();
            }
            let mut statement = Statement::new(object.drop.clone());
            if let (Change::DefaultAround(_), Detail::Column(c)) = (&change, &object.detail) {
                statement.sql = format!(
                    "ALTER TABLE {} ALTER COLUMN {} DROP DEFAULT",
                    c.qualified_table, c.name
                );
            }
            if let (Change::Recreate, Detail::Column(c)) = (&change, &object.detail)
                && c.generated.is_none()
            {
                statement = statement.hazard(
                    HazardKind::Drop,
                    format!(
                        "column {} becomes generated: it is dropped with its values and added again computed",
                        key.name
                    ),
                );
            }
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
                Change::Alter(statements) | Change::DefaultAround(statements) => statements.clone(),
                Change::Comment => Vec::new(),
                Change::Create | Change::Recreate | Change::Drop => {
                    let mut statements: Vec<Statement> =
                        object.create.iter().map(Statement::new).collect();
                    let on_existing = owner(object).is_some_and(existed);
                    match key.kind {
                        Kind::Index if swapped_index(key, from, to, changes, options).is_some() => {
                            statements =
                                swapped_index(key, from, to, changes, options).unwrap_or_default();
                        }
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
                                    let why = if table_is_partitioned(to, &table) {
                                        format!(
                                            "builds the index on every partition under a SHARE lock: writes to {} wait until it is built; on big partitions create it ON ONLY the parent, each partition's CONCURRENTLY, and ALTER INDEX ... ATTACH PARTITION them",
                                            table.name
                                        )
                                    } else {
                                        format!(
                                            "builds the index under a SHARE lock: writes to {} wait until it is built",
                                            table.name
                                        )
                                    };
                                    statement
                                        .hazards
                                        .push(Hazard::new(HazardKind::BlockingIndex, why));
                                }
                            }
                        }
                        Kind::Constraint if on_existing && options.concurrently => {
                            statements = match index_first(object, to) {
                                Some(built) => built,
                                None => blocking_constraint(object, statements),
                            };
                        }
                        Kind::Constraint if on_existing => {
                            statements = blocking_constraint(object, statements);
                        }
                        Kind::Constraint | Kind::ForeignKey if on_existing => {
                            statements = not_valid_then_validate(object, statements);
                        }
                        Kind::Column if on_existing => {
                            if let Detail::Column(c) = &object.detail
                                && c.generated.is_some()
                            {
                                for statement in &mut statements {
                                    statement.hazards.push(Hazard::new(
                                        HazardKind::TypeChange,
                                        format!("a stored generated column: rewrites {} under an ACCESS EXCLUSIVE lock to compute it", c.qualified_table),
                                    ));
                                }
                            }
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
    let Detail::Constraint(constraint) = &object.detail else {
        return statements;
    };
    vec![
        Statement::new(format!("{} NOT VALID", first.sql)),
        Statement::new(format!(
            "ALTER TABLE {} VALIDATE CONSTRAINT {}",
            constraint.table.name, constraint.name
        )),
    ]
}

/// A constraint added to a table that exists: a check validated apart; one that builds
/// an index where that cannot be done first (an exclusion constraint, a partitioned
/// table) says that it blocks the table while it builds.
fn blocking_constraint(object: &Object, statements: Vec<Statement>) -> Vec<Statement> {
    let Detail::Constraint(constraint) = &object.detail else {
        return statements;
    };
    if !matches!(constraint.kind.as_str(), "p" | "u" | "x") {
        return not_valid_then_validate(object, statements);
    }
    statements
        .into_iter()
        .map(|s| {
            s.hazard(
                HazardKind::BlockingIndex,
                format!(
                    "builds the constraint's index under an ACCESS EXCLUSIVE lock: reads and writes of {} wait until it is built",
                    constraint.table.name
                ),
            )
        })
        .collect()
}

/// A primary key or unique constraint added to a table that exists: its index built
/// `CONCURRENTLY` first (writes go on), then the constraint takes it over, a brief lock.
/// `None` where `USING INDEX` cannot be used (a partitioned table, an index with
/// `INCLUDE` or options).
fn index_first(object: &Object, to: &Schema) -> Option<Vec<Statement>> {
    let Detail::Constraint(constraint) = &object.detail else {
        return None;
    };
    let word = match constraint.kind.as_str() {
        "p" => "PRIMARY KEY",
        "u" => "UNIQUE",
        _ => return None,
    };
    let index = constraint.index.as_ref()?;
    if table_is_partitioned(to, &constraint.table)
        || index.contains(" INCLUDE (")
        || index.contains(" WITH (")
        || index.contains(" NULLS NOT DISTINCT")
    {
        return None;
    }
    let mut build = Statement::new(index.replacen(" INDEX ", " INDEX CONCURRENTLY ", 1));
    build.outside_transaction = true;
    let deferrable = if constraint.deferrable.is_empty() {
        String::new()
    } else {
        format!(" {}", constraint.deferrable)
    };
    Some(vec![
        build,
        Statement::new(format!(
            "ALTER TABLE {} ADD CONSTRAINT {} {word} USING INDEX {}{deferrable}",
            constraint.table.name, constraint.name, constraint.name
        )),
    ])
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

#[cfg(test)]
mod tests {
    use super::{identity_changes, split_qualified};

    #[test]
    fn qualified_names_split_at_the_last_dot_outside_quotes() {
        assert_eq!(
            split_qualified("public.docs_idx"),
            ("public".to_string(), "docs_idx".to_string())
        );
        assert_eq!(
            split_qualified("\"My Schema\".\"a.b \"\"c\"\"\""),
            ("\"My Schema\"".to_string(), "a.b \"c\"".to_string())
        );
        assert_eq!(
            split_qualified("app.\"Index\""),
            ("app".to_string(), "Index".to_string())
        );
    }

    #[test]
    fn identity_options_back_to_their_defaults_are_set_to_them() {
        let options = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            identity_changes(&options(&["INCREMENT BY 10", "CACHE 20"]), &options(&[])),
            "SET INCREMENT BY 1 SET CACHE 1"
        );
        // START follows MINVALUE when it is not said.
        assert_eq!(
            identity_changes(&options(&[]), &options(&["MINVALUE 0"])),
            "SET MINVALUE 0 SET START WITH 0"
        );
        assert_eq!(
            identity_changes(
                &options(&["MINVALUE 5", "START WITH 5"]),
                &options(&["START WITH 5"])
            ),
            "SET NO MINVALUE"
        );
    }
}
