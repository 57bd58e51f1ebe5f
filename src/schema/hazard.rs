//! What a generated statement can do to a running database, said as data: the diff
//! attaches these to statements, the file writer turns each into a `-- hazard:` line
//! above its statement, and the command warns once per hazard.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HazardKind {
    /// Data goes: a table, a column, a materialized view, a type or a sequence dropped.
    Drop,
    /// A column's type changes: the table may be rewritten under an exclusive lock, and
    /// values the new type cannot hold fail or are cut.
    TypeChange,
    /// NOT NULL on an existing column (or a new NOT NULL column with no default).
    NotNull,
    /// An enum loses a value (or its values are reordered): the type is rebuilt.
    EnumValueRemoved,
    /// An index built without CONCURRENTLY on a table that exists: writes wait for it.
    BlockingIndex,
}

impl HazardKind {
    pub fn word(self) -> &'static str {
        match self {
            HazardKind::Drop => "drop",
            HazardKind::TypeChange => "type_change",
            HazardKind::NotNull => "not_null",
            HazardKind::EnumValueRemoved => "enum_value_removed",
            HazardKind::BlockingIndex => "blocking_index",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hazard {
    pub kind: HazardKind,
    pub why: String,
}

impl Hazard {
    pub fn new(kind: HazardKind, why: impl Into<String>) -> Hazard {
        Hazard {
            kind,
            why: why.into(),
        }
    }

    /// The line written above the statement.
    pub fn line(&self) -> String {
        format!("-- hazard: {}: {}", self.kind.word(), self.why)
    }
}

/// Whether changing a column from `old` to `new` (as `format_type` spells them) keeps
/// the stored bytes, so PostgreSQL neither rewrites nor checks the table: a longer or
/// unlimited `varchar`, `varchar` to `text`, more precision at the same numeric scale.
pub fn keeps_bytes(old: &str, new: &str) -> bool {
    let (old_base, old_mod) = split_modifier(old);
    let (new_base, new_mod) = split_modifier(new);
    let text_like = |base: &str| base == "text" || base == "character varying";
    match (old_base, new_base) {
        ("character varying", "text") => true,
        ("text", "character varying") => new_mod.is_none(),
        ("character varying", "character varying") => match (old_mod, new_mod) {
            (_, None) => true,
            (Some(a), Some(b)) => number(b) >= number(a),
            (None, Some(_)) => false,
        },
        ("numeric", "numeric") => match (old_mod, new_mod) {
            (_, None) => true,
            (Some(a), Some(b)) => {
                let (pa, sa) = precision_scale(a);
                let (pb, sb) = precision_scale(b);
                sa == sb && pb >= pa
            }
            (None, Some(_)) => false,
        },
        (a, b) if a == b && text_like(a) => old_mod == new_mod,
        _ => false,
    }
}

fn split_modifier(text: &str) -> (&str, Option<&str>) {
    match text.find('(') {
        Some(at) if text.ends_with(')') => (&text[..at], Some(&text[at + 1..text.len() - 1])),
        _ => (text, None),
    }
}

fn number(text: &str) -> u64 {
    text.trim().parse().unwrap_or(0)
}

fn precision_scale(text: &str) -> (u64, u64) {
    let mut parts = text.split(',');
    let precision = parts.next().map(number).unwrap_or(0);
    let scale = parts.next().map(number).unwrap_or(0);
    (precision, scale)
}

#[cfg(test)]
mod tests {
    use super::keeps_bytes;

    #[test]
    fn widening_changes_keep_the_bytes_and_others_do_not() {
        assert!(keeps_bytes(
            "character varying(10)",
            "character varying(20)"
        ));
        assert!(keeps_bytes("character varying(10)", "text"));
        assert!(keeps_bytes("character varying(10)", "character varying"));
        assert!(keeps_bytes("numeric(10,2)", "numeric(12,2)"));
        assert!(!keeps_bytes(
            "character varying(20)",
            "character varying(10)"
        ));
        assert!(!keeps_bytes("numeric(10,2)", "numeric(10,3)"));
        assert!(!keeps_bytes("integer", "bigint"));
        assert!(!keeps_bytes("text", "integer"));
        assert!(!keeps_bytes("text", "character varying(5)"));
    }
}
