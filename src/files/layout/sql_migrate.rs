//! sql-migrate (rubenv): any `*.sql` name, `-- +migrate Up` / `-- +migrate Down` with an
//! optional `notransaction` per section, and `-- +migrate StatementBegin` /
//! `StatementEnd`. The revision is the whole file name, as in `gorp_migrations.id`;
//! the order is sql-migrate's: numeric prefix, then name. Annotations are case-sensitive
//! and begin `-- +migrate ` exactly, as sql-migrate reads them; a line that reads as one
//! written another way is an error rather than a comment that hides a section.

use super::goose::{Dialect, Word, annotated};
use super::{File, decode, duplicates};
use crate::error::FileProblem;
use crate::files::migration::{self, Migration, REPEATABLE_PREFIX, Spelling};

const SPELLING: Spelling = Spelling {
    no_transaction: "write the section's marker `-- +migrate Up notransaction` (or Down)",
};

const DIALECT: Dialect = Dialect {
    tool: "sql-migrate",
    up: "-- +migrate Up",
    begin: "-- +migrate StatementBegin",
    end: "-- +migrate StatementEnd",
    classify: word,
};

pub fn read(files: &[&File]) -> (Vec<Migration>, Vec<FileProblem>) {
    let mut problems = Vec::new();
    let mut migrations = Vec::new();
    for file in files {
        if file.name.starts_with(REPEATABLE_PREFIX) {
            problems.push(FileProblem::new(
                &file.path,
                None,
                format!(
                    "names starting with {REPEATABLE_PREFIX} are Flyway's repeatable migrations \
                     in schemagate: rename the file"
                ),
            ));
            continue;
        }
        let Some(text) = decode(file, &mut problems) else {
            continue;
        };
        let stem = file.name.strip_suffix(".sql").unwrap_or(&file.name);
        let description = stem
            .split_once('_')
            .filter(|(n, _)| n.bytes().all(|b| b.is_ascii_digit()))
            .map_or(stem, |(_, rest)| rest)
            .replace('_', " ");
        let parsed = annotated(&file.path, &text, &DIALECT).and_then(|(up, down)| {
            migration::foreign(
                &file.path,
                None,
                file.name.clone(),
                description,
                up,
                down,
                &SPELLING,
            )
        });
        match parsed {
            Ok(m) => migrations.push(m),
            Err(mut p) => problems.append(&mut p),
        }
    }
    duplicates(&mut migrations, &mut problems);
    (migrations, problems)
}

fn word(line: &str) -> Option<Result<Word, String>> {
    let Some(rest) = line.strip_prefix("-- +migrate ") else {
        let loose = line.trim_start().strip_prefix("--")?.trim_start();
        return loose
            .get(..8)
            .filter(|w| w.eq_ignore_ascii_case("+migrate"))
            .map(|_| {
                Err(
                    "line looks like a mistyped sql-migrate annotation: write it exactly \
                     `-- +migrate Up` (or Down, StatementBegin, StatementEnd) at the start of \
                     the line"
                        .into(),
                )
            });
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let options = |fields: &[&str]| -> Result<bool, String> {
        let mut off = false;
        for o in fields {
            match *o {
                "notransaction" => off = true,
                other => return Err(format!("unknown option `{other}` (known: notransaction)")),
            }
        }
        Ok(off)
    };
    Some(match fields.as_slice() {
        ["Up", rest @ ..] => options(rest).map(Word::Up),
        ["Down", rest @ ..] => options(rest).map(Word::Down),
        ["StatementBegin"] => Ok(Word::Begin),
        ["StatementEnd"] => Ok(Word::End),
        _ => Err(format!(
            "unknown sql-migrate annotation `{}` (known: Up, Down, StatementBegin, StatementEnd)",
            line.trim_end()
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::layout::tests::file;

    #[test]
    fn ids_are_file_names_in_sql_migrates_order() {
        let files = [
            file("10_later.sql", "-- +migrate Up\nSELECT 10;\n"),
            file(
                "2_idx.sql",
                "-- +migrate Up notransaction\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- +migrate Down\nDROP INDEX i;\n",
            ),
            file(
                "1_init.sql",
                "-- +migrate Up\nCREATE TABLE t (a int);\n-- +migrate Down\nDROP TABLE t;\n",
            ),
        ];
        let (m, p) = read(&files.iter().collect::<Vec<_>>());
        assert!(p.is_empty(), "{p:?}");
        let ids: Vec<&str> = m.iter().map(|m| m.revision.as_str()).collect();
        assert_eq!(ids, ["1_init.sql", "2_idx.sql", "10_later.sql"]);
        assert_eq!(m[0].description, "init");
        assert!(!m[1].up.transactional);
        assert!(m[1].down.as_ref().is_some_and(|d| d.transactional));
    }

    #[test]
    fn mistyped_and_unknown_annotations() {
        for line in [
            "--+migrate Up",
            "-- +Migrate Up",
            "-- +migrate up",
            "-- +migrate Up sometimes",
        ] {
            let files = [file("1_a.sql", &format!("{line}\nSELECT 1;\n"))];
            let (_, p) = read(&files.iter().collect::<Vec<_>>());
            assert!(!p.is_empty(), "{line}");
            assert_eq!(p[0].line, Some(1), "{line}: {p:?}");
        }
    }
}
