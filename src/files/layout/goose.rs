//! goose SQL migrations: `{version}_{name}.sql` (the revision is the version's decimal
//! string, as in `goose_db_version.version_id`) with `-- +goose Up`, `-- +goose Down`,
//! `-- +goose StatementBegin` / `StatementEnd` around one statement and
//! `-- +goose NO TRANSACTION` for the whole file. Annotations are read as goose reads them:
//! after `--`, any case. goose's Go migrations (`.go` files) are not SQL and not read.

use super::{File, decode, duplicates, numbered};
use crate::error::FileProblem;
use crate::files::migration::{self, Migration, Section, Spelling};
use crate::files::split;

const SPELLING: Spelling = Spelling {
    no_transaction: "add `-- +goose NO TRANSACTION` to the file",
};

pub fn read(files: &[&File]) -> (Vec<Migration>, Vec<FileProblem>) {
    let mut problems = Vec::new();
    let mut migrations = Vec::new();
    for file in files {
        let stem = file.name.strip_suffix(".sql").unwrap_or(&file.name);
        let Some((version, description)) = numbered(stem) else {
            problems.push(FileProblem::new(
                &file.path,
                None,
                "the file name has no version: goose names SQL migrations <version>_<name>.sql \
                 with a number as the version, for example 00001_create_users.sql",
            ));
            continue;
        };
        let Some(text) = decode(file, &mut problems) else {
            continue;
        };
        let parsed = annotated(&file.path, &text, &GOOSE).and_then(|(up, down)| {
            migration::foreign(&file.path, None, version, description, up, down, &SPELLING)
        });
        match parsed {
            Ok(m) => migrations.push(m),
            Err(mut p) => problems.append(&mut p),
        }
    }
    duplicates(&mut migrations, &mut problems);
    (migrations, problems)
}

/// What an annotation line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Word {
    /// `true`: this section runs outside a transaction (sql-migrate's `notransaction`).
    Up(bool),
    Down(bool),
    Begin,
    End,
    NoTransaction,
}

/// How one tool writes its annotations.
pub(crate) struct Dialect {
    pub tool: &'static str,
    pub up: &'static str,
    pub begin: &'static str,
    pub end: &'static str,
    /// `None`: a plain line; `Some(Err)`: an annotation that is wrong, with the fix.
    pub classify: fn(&str) -> Option<Result<Word, String>>,
}

const GOOSE: Dialect = Dialect {
    tool: "goose",
    up: "-- +goose Up",
    begin: "-- +goose StatementBegin",
    end: "-- +goose StatementEnd",
    classify: goose_word,
};

fn goose_word(line: &str) -> Option<Result<Word, String>> {
    let rest = line
        .strip_prefix("--")?
        .trim_start()
        .strip_prefix("+goose")?;
    let word = rest.split_whitespace().collect::<Vec<_>>().join(" ");
    Some(match word.to_ascii_uppercase().as_str() {
        "UP" => Ok(Word::Up(false)),
        "DOWN" => Ok(Word::Down(false)),
        "STATEMENTBEGIN" => Ok(Word::Begin),
        "STATEMENTEND" => Ok(Word::End),
        "NO TRANSACTION" => Ok(Word::NoTransaction),
        "ENVSUB ON" | "ENVSUB OFF" => Err(
            "goose's ENVSUB (environment variables in the SQL) is not supported by \
             schemagate: write the values into the SQL, or keep this migration with goose"
                .into(),
        ),
        _ => Err(format!(
            "unknown goose annotation `-- +goose {word}` (known: Up, Down, StatementBegin, \
             StatementEnd, NO TRANSACTION); if it is a plain comment, do not start it with +goose"
        )),
    })
}

/// Parses a file of annotated sections into its up and down sections, with every problem.
pub(crate) fn annotated(
    path: &str,
    text: &str,
    dialect: &Dialect,
) -> Result<(Section, Option<Section>), Vec<FileProblem>> {
    let problem = |line: Option<usize>, message: String| FileProblem::new(path, line, message);
    let mut problems = Vec::new();
    let mut blank = Vec::new();
    let mut up: Option<(usize, bool)> = None;
    let mut down: Option<(usize, bool)> = None;
    let mut no_transaction = false;
    let mut open: Option<usize> = None;
    let mut header = String::new();
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let classified = (dialect.classify)(line);
        if up.is_none() && down.is_none() {
            // Annotations are not SQL, but their lines count.
            if classified.is_none() {
                header.push_str(line);
            }
            header.push('\n');
        }
        let Some(word) = classified else {
            continue;
        };
        blank.push(number);
        let word = match word {
            Ok(word) => word,
            Err(message) => {
                problems.push(problem(Some(number), message));
                continue;
            }
        };
        match word {
            Word::Up(_) | Word::Down(_) => {
                if let Some(begin) = open.take() {
                    problems.push(unclosed(path, begin, dialect));
                }
                let is_up = matches!(word, Word::Up(_));
                let off = matches!(word, Word::Up(true) | Word::Down(true));
                let up_missing = up.is_none();
                let (slot, name) = if is_up {
                    (&mut up, "Up")
                } else {
                    (&mut down, "Down")
                };
                if let Some((first, _)) = slot {
                    problems.push(problem(
                        Some(number),
                        format!(
                            "second {name} annotation (the first is on line {first}): a {} file \
                             has one up and at most one down section",
                            dialect.tool
                        ),
                    ));
                } else if !is_up && up_missing {
                    problems.push(problem(
                        Some(number),
                        format!(
                            "a Down section before `{}`: put the up SQL first, below `{}`",
                            dialect.up, dialect.up
                        ),
                    ));
                    *slot = Some((number, off));
                } else {
                    *slot = Some((number, off));
                }
            }
            Word::Begin => {
                if let Some(begin) = open {
                    problems.push(problem(
                        Some(number),
                        format!(
                            "`{}` inside the statement opened on line {begin}: close that one \
                             with `{}` first",
                            dialect.begin, dialect.end
                        ),
                    ));
                }
                open = Some(number);
            }
            Word::End => {
                if open.take().is_none() {
                    problems.push(problem(
                        Some(number),
                        format!(
                            "`{}` without a `{}` above it: add the begin marker before the \
                             statement, or remove this line",
                            dialect.end, dialect.begin
                        ),
                    ));
                }
            }
            Word::NoTransaction => no_transaction = true,
        }
    }
    if let Some(begin) = open {
        problems.push(unclosed(path, begin, dialect));
    }
    let Some((up_line, up_off)) = up else {
        problems.push(problem(
            None,
            format!(
                "a {} migration without `{}`: add that line above the migration's SQL",
                dialect.tool, dialect.up
            ),
        ));
        return Err(problems);
    };
    if let Ok(statements) = split::split(&header)
        && let Some(first) = statements.first()
    {
        problems.push(problem(
            Some(first.line),
            format!(
                "SQL above `{}` would never run: move it below the annotation",
                dialect.up
            ),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let end = super::end_line(text);
    let down_line = down.map_or(end, |(line, _)| line);
    let up = super::section_of(
        text,
        up_line + 1,
        down_line,
        &blank,
        !(no_transaction || up_off),
    );
    let down = down.map(|(line, off)| {
        super::section_of(text, line + 1, end, &blank, !(no_transaction || off))
    });
    Ok((up, down))
}

fn unclosed(path: &str, begin: usize, dialect: &Dialect) -> FileProblem {
    FileProblem::new(
        path,
        Some(begin),
        format!(
            "`{}` is never closed: add `{}` after the statement's last line",
            dialect.begin, dialect.end
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(Section, Option<Section>), Vec<FileProblem>> {
        annotated("m/1_a.sql", text, &GOOSE)
    }

    #[test]
    fn up_down_and_a_statement_block() {
        let text = "-- +goose Up\n-- +goose StatementBegin\nCREATE FUNCTION f() RETURNS int AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$ LANGUAGE plpgsql;\n-- +goose StatementEnd\n\n-- +goose Down\nDROP FUNCTION f();\n";
        let (up, down) = parse(text).expect("valid");
        assert_eq!(up.first_line, 2);
        assert!(!up.sql.contains("+goose"), "{}", up.sql);
        assert_eq!(
            up.sql.lines().nth(1),
            Some("CREATE FUNCTION f() RETURNS int AS $$")
        );
        assert!(up.transactional);
        let down = down.expect("down");
        assert_eq!(down.first_line, 11);
        assert_eq!(down.sql, "DROP FUNCTION f();\n\n");
    }

    #[test]
    fn no_transaction_applies_to_both_sections_and_any_case() {
        let (up, down) =
            parse("-- +goose NO TRANSACTION\n-- +goose up\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- +goose down\nDROP INDEX CONCURRENTLY i;\n")
                .expect("valid");
        assert!(!up.transactional);
        assert!(!down.expect("down").transactional);
    }

    #[test]
    fn problems_have_lines_and_fixes() {
        let p = parse("CREATE TABLE t (a int);\n").expect_err("no up");
        assert!(p[0].message.contains("without `-- +goose Up`"), "{p:?}");
        let p = parse("-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n").expect_err("unclosed");
        assert_eq!(p[0].line, Some(2));
        assert!(p[0].message.contains("never closed"));
        let p = parse("-- +goose Up\nSELECT 1;\n-- +goose StatementEnd\n").expect_err("stray end");
        assert_eq!(p[0].line, Some(3));
        let p = parse("-- +goose Up\nSELECT 1;\n-- +goose Sideways\n").expect_err("unknown");
        assert!(p[0].message.contains("unknown goose annotation"));
        let p = parse("SELECT 0;\n-- +goose Up\nSELECT 1;\n").expect_err("above");
        assert_eq!(p[0].line, Some(1));
        // Comments above the annotation are fine.
        parse("-- a comment\n\n-- +goose Up\nSELECT 1;\n").expect("comment");
    }
}
