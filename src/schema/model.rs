//! A database schema as plain data: every object under a key, with the SQL that creates
//! and drops it as PostgreSQL itself spells it (`pg_get_*def`), what it depends on, and
//! the few facts the diff alters in place rather than by dropping and creating.
//!
//! Nothing here talks to a server, so the diff over two of these is a pure function.

use std::collections::BTreeMap;

/// What an object is. The order is the creation order among objects that do not depend
/// on each other (and so the order of a generated file, read top to bottom).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Schema,
    Extension,
    Enum,
    Domain,
    Composite,
    Sequence,
    Function,
    Table,
    Column,
    Constraint,
    Index,
    ForeignKey,
    SequenceOwner,
    View,
    MaterializedView,
    Trigger,
    Policy,
    /// An object schemagate reads but cannot write (an aggregate, a rule, a grant...):
    /// equal on both sides it is fine, different it is named and nothing is written.
    Unsupported,
}

impl Kind {
    pub fn word(self) -> &'static str {
        match self {
            Kind::Schema => "schema",
            Kind::Extension => "extension",
            Kind::Enum => "enum",
            Kind::Domain => "domain",
            Kind::Composite => "type",
            Kind::Sequence => "sequence",
            Kind::Function => "function",
            Kind::Table => "table",
            Kind::Column => "column",
            Kind::Constraint => "constraint",
            Kind::Index => "index",
            Kind::ForeignKey => "foreign key",
            Kind::SequenceOwner => "sequence owner",
            Kind::View => "view",
            Kind::MaterializedView => "materialized view",
            Kind::Trigger => "trigger",
            Kind::Policy => "policy",
            Kind::Unsupported => "object",
        }
    }
}

/// An object's identity: its kind and a name unique among that kind, qualified the way
/// a person reads it (`public.users`, `public.users.email`, `public.f(integer)`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: Kind,
    pub name: String,
}

impl Key {
    pub fn new(kind: Kind, name: impl Into<String>) -> Key {
        Key {
            kind,
            name: name.into(),
        }
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind.word(), self.name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: Key,
    /// The statements that create it, in order.
    pub create: Vec<String>,
    /// The statement that drops it; empty when dropping its parent drops it (a
    /// partition's inherited parts).
    pub drop: String,
    /// Equal when the object is the same on both sides; the create text, plus what it
    /// leaves out (a comment is compared on its own).
    pub fingerprint: String,
    /// Objects it needs, in its own schema's state.
    pub deps: Vec<Key>,
    /// `COMMENT ON <target>`; `None` for objects that cannot carry one.
    pub comment_target: Option<String>,
    pub comment: Option<String>,
    pub detail: Detail,
}

/// The facts the diff can change without dropping the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Detail {
    None,
    Table(Table),
    Column(Column),
    Enum(Enum),
    Sequence(Sequence),
    /// An index: the table (or materialized view) it belongs to.
    OnTable(Key),
    Constraint(Constraint),
    Trigger(Trigger),
    Policy(Policy),
    Function(Function),
    Composite(Vec<(String, String)>),
    Domain(Domain),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// `s.t`, quoted as needed.
    pub qualified: String,
    pub row_security: bool,
    pub force_row_security: bool,
    /// `PARTITION BY ...`, the parent of a partition, and the rest of what only a
    /// rebuild changes (persistence, storage options).
    pub shape: String,
    /// A partition: it gets its columns from its parent.
    pub partition_of: Option<Key>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub table: Key,
    /// The table, quoted.
    pub qualified_table: String,
    /// The column name, quoted.
    pub name: String,
    pub position: i32,
    /// `format_type`, with `COLLATE` when not the type's default.
    pub data_type: String,
    pub type_name: String,
    pub collation: Option<String>,
    pub not_null: bool,
    pub default: Option<String>,
    /// `a` (ALWAYS), `d` (BY DEFAULT) or empty.
    pub identity: String,
    /// The identity sequence's options that are not its defaults (`INCREMENT BY 10`).
    pub identity_options: Vec<String>,
    /// `GENERATED ALWAYS AS (expr) STORED`.
    pub generated: Option<String>,
    /// Created with its table (a partition's column comes from its parent).
    pub inherited: bool,
}

impl Column {
    /// The column as `CREATE TABLE` and `ADD COLUMN` write it.
    pub fn definition(&self) -> String {
        let mut text = format!("{} {}", self.name, self.data_type);
        if let Some(collation) = &self.collation {
            text.push_str(&format!(" COLLATE {collation}"));
        }
        if let Some(expression) = &self.generated {
            text.push_str(&format!(" GENERATED ALWAYS AS ({expression}) STORED"));
        }
        if let Some(default) = &self.default {
            text.push_str(&format!(" DEFAULT {default}"));
        }
        match self.identity.as_str() {
            "a" => text.push_str(" GENERATED ALWAYS AS IDENTITY"),
            "d" => text.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
            _ => {}
        }
        if !self.identity.is_empty() && !self.identity_options.is_empty() {
            text.push_str(&format!(" ({})", self.identity_options.join(" ")));
        }
        if self.not_null {
            text.push_str(" NOT NULL");
        }
        text
    }
}

/// A table's constraint (a foreign key too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub table: Key,
    /// The constraint's own name, quoted.
    pub name: String,
    /// `pg_constraint.contype`: `p`, `u`, `c`, `f` or `x`.
    pub kind: String,
    /// `pg_get_constraintdef`, which leaves the name out: two alike are one renamed.
    pub definition: String,
    /// A primary key or unique constraint's index as `pg_get_indexdef` spells it: on a
    /// table that exists it is built `CONCURRENTLY` first and the constraint takes it
    /// over (`USING INDEX`), so writes are not blocked while it builds.
    pub index: Option<String>,
    /// `DEFERRABLE ...` as the definition ends, which `USING INDEX` must say again.
    pub deferrable: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub table: Key,
    /// The trigger's own name, quoted.
    pub name: String,
    /// `pg_get_triggerdef`: what only dropping and creating it changes.
    pub definition: String,
    /// `pg_trigger.tgenabled`: `O` (on), `D`, `R` or `A`, which `ALTER TABLE` sets.
    pub enabled: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub table: Key,
    /// The policy's own name, quoted.
    pub name: String,
    /// `AS PERMISSIVE FOR ALL`: what `ALTER POLICY` cannot change.
    pub shape: String,
    /// `PUBLIC` or the roles, quoted.
    pub roles: String,
    pub using: Option<String>,
    pub with_check: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enum {
    /// The schema, quoted.
    pub schema: String,
    /// The type's own name, unquoted.
    pub name: String,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub qualified: String,
    /// `AS bigint INCREMENT BY 1 ...`: what `ALTER SEQUENCE` can set again.
    pub options: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// `s.f(integer, text)`.
    pub signature: String,
    /// The result type, or empty for a procedure: `CREATE OR REPLACE` cannot change it.
    pub result: String,
    /// Argument names and defaults, which `CREATE OR REPLACE` cannot change either.
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub qualified: String,
    pub base: String,
    pub default: Option<String>,
    pub not_null: bool,
    /// Named constraints: (quoted name, definition).
    pub checks: Vec<(String, String)>,
}

/// A whole schema: what `catalog::read` found in one database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schema {
    pub objects: BTreeMap<Key, Object>,
}

impl Schema {
    pub fn insert(&mut self, object: Object) {
        self.objects.insert(object.key.clone(), object);
    }

    pub fn get(&self, key: &Key) -> Option<&Object> {
        self.objects.get(key)
    }

    /// The keys of the objects that differ between two schemas (a fingerprint or a
    /// comment), or exist on one side only: what the self-check shows.
    pub fn differences(&self, other: &Schema) -> Vec<String> {
        let mut found = Vec::new();
        for (key, object) in &self.objects {
            match other.objects.get(key) {
                None => found.push(format!("{key}: only in the first")),
                Some(theirs) if theirs.fingerprint != object.fingerprint => {
                    found.push(format!(
                        "{key}: differs\n    {}\n    {}",
                        object.fingerprint.replace('\n', " "),
                        theirs.fingerprint.replace('\n', " ")
                    ));
                }
                Some(theirs) if theirs.comment != object.comment => {
                    found.push(format!("{key}: its comment differs"))
                }
                Some(_) => {}
            }
        }
        for key in other.objects.keys() {
            if !self.objects.contains_key(key) {
                found.push(format!("{key}: only in the second"));
            }
        }
        found
    }
}

/// `name` as PostgreSQL needs it in SQL: bare when it is a plain lower-case identifier
/// that is not a keyword, else double-quoted (what `quote_ident` does).
pub fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain && !is_reserved(name) {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A string literal, with `E''` never needed: standard_conforming_strings is on.
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Keywords that cannot be bare identifiers (the server's reserved list, plus the
/// type-function names that are reserved as column names).
fn is_reserved(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "authorization",
        "binary",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "collation",
        "column",
        "concurrently",
        "constraint",
        "create",
        "cross",
        "current_catalog",
        "current_date",
        "current_role",
        "current_schema",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "freeze",
        "from",
        "full",
        "grant",
        "group",
        "having",
        "ilike",
        "in",
        "initially",
        "inner",
        "intersect",
        "into",
        "is",
        "isnull",
        "join",
        "lateral",
        "leading",
        "left",
        "like",
        "limit",
        "localtime",
        "localtimestamp",
        "natural",
        "not",
        "notnull",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "outer",
        "overlaps",
        "placing",
        "primary",
        "references",
        "returning",
        "right",
        "select",
        "session_user",
        "similar",
        "some",
        "symmetric",
        "system_user",
        "table",
        "tablesample",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "verbose",
        "when",
        "where",
        "window",
        "with",
    ];
    RESERVED.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_only_when_needed() {
        assert_eq!(quote_ident("users"), "users");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("Users"), "\"Users\"");
        assert_eq!(quote_ident("a b"), "\"a b\"");
        assert_eq!(quote_ident("9lives"), "\"9lives\"");
        assert_eq!(quote_ident("say\"hi"), "\"say\"\"hi\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
