//! golang-migrate: `{version}_{title}.up.sql` and `{version}_{title}.down.sql`, version an
//! unsigned number (the revision is its decimal string, as in `schema_migrations.version`).
//!
//! golang-migrate sends each file as one query and has no transaction rule of its own; see
//! the module doc of `layout` for how schemagate runs such a file honestly.

use std::collections::BTreeMap;

use super::{File, decode, duplicates, numbered};
use crate::error::FileProblem;
use crate::files::migration::{self, Migration, Section, Spelling};
use crate::files::split;

const SPELLING: Spelling = Spelling {
    no_transaction: "wrap the whole file in one BEGIN; ... COMMIT; pair, or make the \
                     statement that needs no transaction the file's only statement",
};

pub fn read(files: &[&File]) -> (Vec<Migration>, Vec<FileProblem>) {
    read_pairs(files, false, "golang-migrate", &SPELLING, as_sent)
}

/// golang-migrate's and sqlx's reading: group the files by version (`plain`: a lone
/// `N_x.sql` is an irreversible migration, as sqlx has them), then make each group's up
/// and down files into sections with `section`.
pub(crate) fn read_pairs(
    files: &[&File],
    plain: bool,
    tool: &str,
    spelling: &Spelling,
    section: fn(&str) -> Section,
) -> (Vec<Migration>, Vec<FileProblem>) {
    let mut problems = Vec::new();
    let groups = group(files, plain, tool, &mut problems);
    let mut migrations = Vec::new();
    for g in groups {
        let Some(up) = g.up else { continue };
        let Some(up_text) = decode(up, &mut problems) else {
            continue;
        };
        let down = g
            .down
            .and_then(|d| decode(d, &mut problems).map(|text| section(&text)));
        match migration::foreign(
            &up.path,
            g.down.map(|d| d.path.as_str()),
            g.version,
            g.description,
            section(&up_text),
            down,
            spelling,
        ) {
            Ok(m) => migrations.push(m),
            Err(mut p) => problems.append(&mut p),
        }
    }
    duplicates(&mut migrations, &mut problems);
    (migrations, problems)
}

/// One version's files.
pub(crate) struct Group<'a> {
    pub version: String,
    pub description: String,
    pub up: Option<&'a File>,
    pub down: Option<&'a File>,
}

/// Groups `.up.sql`/`.down.sql` pairs (and, with `plain`, `N_x.sql` files as ups without a
/// down, as sqlx has) by version; names that fit nothing are problems.
pub(crate) fn group<'a>(
    files: &[&'a File],
    plain: bool,
    tool: &str,
    problems: &mut Vec<FileProblem>,
) -> Vec<Group<'a>> {
    let mut by_version: BTreeMap<String, Group<'a>> = BTreeMap::new();
    let mut sorted: Vec<&&File> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for file in sorted {
        let (stem, is_up) = if let Some(stem) = file.name.strip_suffix(".up.sql") {
            (stem, true)
        } else if let Some(stem) = file.name.strip_suffix(".down.sql") {
            (stem, false)
        } else if plain {
            (file.name.strip_suffix(".sql").unwrap_or(&file.name), true)
        } else {
            problems.push(FileProblem::new(
                &file.path,
                None,
                format!(
                    "{tool} reads only <version>_<title>.up.sql and .down.sql files, so this \
                     file would never run: rename it to {}.up.sql, or move it out of the folder",
                    file.name.trim_end_matches(".sql")
                ),
            ));
            continue;
        };
        let Some((version, description)) = numbered(stem) else {
            problems.push(FileProblem::new(
                &file.path,
                None,
                format!(
                    "the file name has no version: {tool} names files \
                     <version>_<title>{} with a number as the version, for example \
                     1_create_users{}",
                    if is_up { ".up.sql" } else { ".down.sql" },
                    if is_up { ".up.sql" } else { ".down.sql" },
                ),
            ));
            continue;
        };
        let key = migration::revision_key(&version);
        let entry = by_version.entry(key).or_insert_with(|| Group {
            version: version.clone(),
            description: description.clone(),
            up: None,
            down: None,
        });
        let slot = if is_up {
            &mut entry.up
        } else {
            &mut entry.down
        };
        match slot {
            Some(first) => problems.push(FileProblem::new(
                &file.path,
                None,
                format!(
                    "two {} files with version {version}: {} has it too; give one of them a new \
                     version",
                    if is_up { "up" } else { "down" },
                    first.name
                ),
            )),
            None => *slot = Some(file),
        }
    }
    for g in by_version.values() {
        if let (None, Some(down)) = (g.up, g.down) {
            problems.push(FileProblem::new(
                &down.path,
                None,
                format!(
                    "a down file without its up file: add {}.up.sql with the change this \
                     reverts, or remove it",
                    down.name.trim_end_matches(".down.sql")
                ),
            ));
        }
    }
    by_version.into_values().collect()
}

/// The whole file as golang-migrate sends it, and whether schemagate can run it in its
/// own transaction: an outer `BEGIN; ... COMMIT;` pair is blanked (the same effect); other
/// transaction control, or one lone statement PostgreSQL refuses in a transaction block,
/// makes it `transaction:false` (statement by statement, as the server would run it).
pub(crate) fn as_sent(text: &str) -> Section {
    let whole = Section {
        sql: text.to_string(),
        first_line: 1,
        transactional: true,
    };
    // A file that does not split is reported by the section checks.
    let Ok(statements) = split::split(text) else {
        return whole;
    };
    let control: Vec<usize> = statements
        .iter()
        .enumerate()
        .filter(|(_, s)| s.transaction_control().is_some())
        .map(|(i, _)| i)
        .collect();
    let last = statements.len().saturating_sub(1);
    let opens = |s: &split::Statement<'_>| {
        matches!(s.transaction_control(), Some("BEGIN" | "START TRANSACTION"))
    };
    let closes =
        |s: &split::Statement<'_>| matches!(s.transaction_control(), Some("COMMIT" | "END"));
    if control.len() == 2
        && control == [0, last]
        && opens(&statements[0])
        && closes(&statements[last])
    {
        let mut sql = text.to_string();
        for s in [&statements[0], &statements[last]] {
            let range = s.offset..s.offset + s.sql.len();
            // Blanked, not removed: error positions and file lines stay right.
            let blank: String = sql[range.clone()]
                .chars()
                .map(|c| if c == '\n' { '\n' } else { ' ' })
                .collect();
            sql.replace_range(range, &blank);
        }
        return Section { sql, ..whole };
    }
    let lone_refused = statements.len() == 1 && refuses_transaction_block(statements[0].sql);
    if !control.is_empty() || lone_refused {
        return Section {
            transactional: false,
            ..whole
        };
    }
    whole
}

/// Statements PostgreSQL runs only outside a transaction block.
pub(crate) fn refuses_transaction_block(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split(|c: char| c.is_whitespace() || c == ';' || c == '(')
        .filter(|w| !w.is_empty())
        .take(5)
        .map(str::to_ascii_uppercase)
        .collect();
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match w.as_slice() {
        ["VACUUM", ..] | ["ALTER", "SYSTEM", ..] => true,
        ["CREATE" | "DROP", "DATABASE" | "TABLESPACE", ..] => true,
        ["REINDEX", ..] => w.contains(&"CONCURRENTLY"),
        ["CREATE", "INDEX", "CONCURRENTLY", ..]
        | ["CREATE", "UNIQUE", "INDEX", "CONCURRENTLY", ..]
        | ["DROP", "INDEX", "CONCURRENTLY", ..] => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::layout::tests::file;

    fn read_all(files: &[File]) -> (Vec<Migration>, Vec<FileProblem>) {
        read(&files.iter().collect::<Vec<_>>())
    }

    #[test]
    fn pairs_become_reversible_migrations_with_decimal_versions() {
        let (m, p) = read_all(&[
            file("000010_b.up.sql", "SELECT 10;\n"),
            file("000002_add_users.up.sql", "CREATE TABLE u (id int);\n"),
            file("000002_add_users.down.sql", "DROP TABLE u;\n"),
        ]);
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(m[0].revision, "2");
        assert_eq!(m[0].description, "add users");
        assert!(m[0].down.as_ref().is_some_and(|d| d.sql.contains("DROP")));
        assert_eq!(m[1].revision, "10");
        assert!(m[1].down.is_none());
    }

    #[test]
    fn an_outer_begin_commit_pair_runs_in_schemagates_transaction() {
        let s = as_sent("BEGIN;\nCREATE TABLE t (a int);\nCOMMIT;\n");
        assert!(s.transactional);
        assert!(!s.sql.contains("BEGIN") && !s.sql.contains("COMMIT"));
        assert_eq!(s.sql.lines().nth(1), Some("CREATE TABLE t (a int);"));
        let s = as_sent("CREATE INDEX CONCURRENTLY i ON t (a);\n");
        assert!(!s.transactional);
        let s = as_sent("BEGIN;\nSELECT 1;\nCOMMIT;\nBEGIN;\nSELECT 2;\nCOMMIT;\n");
        assert!(!s.transactional, "its own transactions are honoured");
        assert!(as_sent("CREATE TABLE a (x int);\nCREATE TABLE b (x int);\n").transactional);
    }

    #[test]
    fn file_problems_name_the_fix() {
        let (_, p) = read_all(&[
            file("init.up.sql", "SELECT 1;\n"),
            file("3_x.down.sql", "SELECT 1;\n"),
            file("4_x.sql", "SELECT 1;\n"),
            file("5_a.up.sql", "SELECT 1;\n"),
            file("05_b.up.sql", "SELECT 1;\n"),
        ]);
        let all: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        assert_eq!(p.len(), 4, "{all:#?}");
        assert!(
            all.iter()
                .any(|m| m.contains("init.up.sql") && m.contains("no version"))
        );
        assert!(
            all.iter()
                .any(|m| m.contains("3_x.down.sql") && m.contains("without its up"))
        );
        assert!(
            all.iter()
                .any(|m| m.contains("4_x.sql") && m.contains("4_x.up.sql"))
        );
        assert!(
            all.iter()
                .any(|m| m.contains("two up files with version 5"))
        );
    }
}
