//! Property tests of the statement splitter and the migration file parser: they never
//! panic, and what they return keeps its invariants, on arbitrary input, on soup made of
//! SQL's lexical pieces, and on valid input whose statements are known.
//!
//! Cases per property: `PROPTEST_CASES` if set (raise it for a long run), else
//! `DEFAULT_CASES`, which keeps this file at a few seconds in a debug build.

#[path = "support/sqlgen.rs"]
mod sqlgen;

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;

use schemagate::files::migration;
use schemagate::files::split::{self, Statement};

const DEFAULT_CASES: u32 = 2000;

fn config() -> Config {
    Config {
        cases: sqlgen::cases(DEFAULT_CASES),
        // Failures are reported with their shrunk input; no files written.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Lexical pieces of SQL, the tricky ones many times over.
const PIECES: [&str; 52] = [
    "'", "''", "\"", "\"\"", "$", "$$", "$a$", "$A$", "$_1$", "$1", "$1a", ";", ";;", "--", "/*",
    "*/", "/**/", "\n", "\r\n", "\r", " ", "\t", "\x0c", "\x0b", "(", ")", "E'", "e'", "\\", "\\'",
    "U&'", "U&\"", "u&", "B'", "X'", "N'", "x", "1", "1e", "1e-", "1.", "..", ".5", "-", "/", "*",
    "begin", "atomic", "end", "case", "é", "\0",
];

/// Words that steer psql's BEGIN ATOMIC heuristic.
const WORDS: [&str; 13] = [
    "create ",
    "or ",
    "replace ",
    "function ",
    "procedure ",
    "CREATE FUNCTION f() ",
    "BEGIN ATOMIC ",
    "END",
    "CASE ",
    "SELECT ",
    "COPY t FROM stdin;\n",
    "\n\\.\n",
    "\n\\restrict k\n",
];

fn soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => select(&PIECES[..]).prop_map(str::to_string),
        1 => select(&WORDS[..]).prop_map(str::to_string),
        1 => "[a-z]{1,4}",
    ];
    prop::collection::vec(piece, 0..60).prop_map(|v| v.concat())
}

/// Checks everything `split` promises about a successful result, and returns the pieces.
fn check_split(sql: &str) -> Result<Vec<Statement<'_>>, TestCaseError> {
    let Ok(statements) = split::split(sql) else {
        return Ok(Vec::new());
    };
    let mut end = 0;
    let mut rebuilt = String::new();
    for s in &statements {
        prop_assert!(s.offset >= end, "statements overlap or go backwards");
        prop_assert!(!s.sql.is_empty());
        prop_assert_eq!(&sql[s.offset..s.offset + s.sql.len()], s.sql);
        prop_assert_eq!(s.line, sql[..s.offset].matches('\n').count() + 1);
        // Between statements: only whitespace, comments and empty statements.
        let gap = &sql[end..s.offset];
        prop_assert!(
            split::split(gap).is_ok_and(|v| v.is_empty()),
            "gap {:?} holds a statement",
            gap
        );
        // Sent alone, as the runner sends it, a piece is one statement: itself (a COPY
        // FROM stdin needs its data after it, which is not SQL).
        if s.copy.is_none() {
            let alone = split::split(s.sql).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(alone.len(), 1, "{:?} splits again", s.sql);
            prop_assert_eq!(alone[0].sql, s.sql);
        }
        let _ = s.first_keyword();
        let _ = s.transaction_control();
        let _ = s.copy_to_stdout();
        rebuilt.push_str(gap);
        rebuilt.push_str(s.sql);
        end = s.offset + s.sql.len();
        if let Some(copy) = s.copy {
            prop_assert!(copy.end >= end && copy.end <= sql.len());
            rebuilt.push_str(&sql[end..copy.end]);
            end = copy.end;
        }
    }
    let tail = &sql[end..];
    prop_assert!(split::split(tail).is_ok_and(|v| v.is_empty()));
    rebuilt.push_str(tail);
    prop_assert_eq!(rebuilt, sql);
    for s in &statements[..statements.len().saturating_sub(1)] {
        prop_assert!(
            s.sql.ends_with(';'),
            "{:?} is not the last yet has no `;`",
            s.sql
        );
    }
    Ok(statements)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn splitter_on_arbitrary_strings(sql in any::<String>()) {
        check_split(&sql)?;
        if let Err(e) = split::split(&sql) {
            prop_assert!(e.line >= 1 && e.line <= sql.matches('\n').count() + 1);
        }
    }

    #[test]
    fn splitter_on_sql_soup(sql in soup()) {
        check_split(&sql)?;
    }

    /// The other readings (server cut, scs off) never panic, and their statements lie in
    /// order inside the input.
    #[test]
    fn other_readings_on_sql_soup(sql in soup(), server: bool, backslash_quotes: bool) {
        let rules = split::Rules { server, backslash_quotes };
        if let Ok(split) = split::split_as(&sql, rules) {
            let mut end = 0;
            for s in &split.statements {
                prop_assert!(s.offset >= end);
                prop_assert_eq!(&sql[s.offset..s.offset + s.sql.len()], s.sql);
                end = s.copy.map_or(s.offset + s.sql.len(), |c| c.end);
                let _ = s.transaction_control();
            }
            for range in split.meta_lines {
                prop_assert!(sql[range].starts_with('\\'));
            }
        }
    }

    #[test]
    fn splitter_finds_exactly_the_statements_of_valid_sql(script in sqlgen::script(6)) {
        let statements = check_split(&script.text)?;
        let pieces: Vec<&str> = statements.iter().map(|s| s.sql).collect();
        prop_assert_eq!(pieces, script.statements.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn parser_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check_parse(&bytes)?;
    }

    #[test]
    fn parser_on_mutated_valid_files(
        file in valid_file(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let mut bytes = file.into_bytes();
        for edit in edits {
            edit.apply(&mut bytes);
        }
        check_parse(&bytes)?;
    }

    #[test]
    fn checksum_ignores_line_endings_bom_and_the_down_section(
        file in valid_file(),
        down in sqlgen::script(2),
    ) {
        let parsed = migration::parse("m/1_a.sql", "1_a.sql", file.as_bytes());
        let Ok(m) = parsed else { return Ok(()); };
        prop_assert_eq!(m.checksum.len(), 64);
        if !file.contains('\r') {
            let crlf = format!("\u{feff}{}", file.replace('\n', "\r\n"));
            let other = migration::parse("m/1_a.sql", "1_a.sql", crlf.as_bytes())
                .map_err(|p| TestCaseError::fail(format!("{p:?}")))?;
            prop_assert_eq!(&other.checksum, &m.checksum);
        }
        if m.down.is_some() {
            let changed = format!("{file}\n{}\n", down.text);
            if let Ok(other) = migration::parse("m/1_a.sql", "1_a.sql", changed.as_bytes()) {
                prop_assert_eq!(&other.checksum, &m.checksum);
            }
        }
    }
}

/// The parser never panics; problems name a line inside the file.
fn check_parse(bytes: &[u8]) -> Result<(), TestCaseError> {
    let lines = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
    match migration::parse("m/1_a.sql", "1_a.sql", bytes) {
        Ok(m) => {
            prop_assert_eq!(m.checksum.len(), 64);
            prop_assert!(m.up.first_line >= 1 && m.up.first_line <= lines + 1);
        }
        Err(problems) => {
            prop_assert!(!problems.is_empty());
            for p in problems {
                if let Some(line) = p.line {
                    prop_assert!(
                        line >= 1 && line <= lines + 1,
                        "line {} of {}: {}",
                        line,
                        lines,
                        p
                    );
                }
            }
        }
    }
    Ok(())
}

/// A valid migration file: markers, options, a revises header, SQL with known statements.
fn valid_file() -> impl Strategy<Value = String> {
    (
        sqlgen::script(4),
        prop::option::of(sqlgen::script(2)),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(up, down, markers, revises, no_transaction)| {
            let mut file = String::new();
            if revises {
                file.push_str("-- migrate:revises 20250101, 7\n");
            }
            if !markers && !revises {
                return up.text;
            }
            file.push_str("-- header comment\n-- migrate:up");
            if no_transaction {
                file.push_str(" transaction:false");
            }
            file.push('\n');
            file.push_str(&up.text);
            if let Some(down) = down {
                file.push_str("\n-- migrate:down\n");
                file.push_str(&down.text);
            }
            file
        })
}

/// One change to a file's bytes, at a position given as a fraction of its length.
#[derive(Debug, Clone)]
enum Edit {
    Insert(f64, Vec<u8>),
    Delete(f64, usize),
    DuplicateLine(f64),
    Truncate(f64),
}

impl Edit {
    fn apply(self, bytes: &mut Vec<u8>) {
        let at = |f: f64, bytes: &Vec<u8>| ((bytes.len() as f64) * f) as usize;
        match self {
            Edit::Insert(f, piece) => {
                let i = at(f, bytes).min(bytes.len());
                bytes.splice(i..i, piece);
            }
            Edit::Delete(f, n) => {
                let i = at(f, bytes).min(bytes.len());
                let j = (i + n).min(bytes.len());
                bytes.drain(i..j);
            }
            Edit::DuplicateLine(f) => {
                let i = at(f, bytes).min(bytes.len());
                let start = bytes[..i]
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(0, |p| p + 1);
                let end = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
                let line = bytes[start..end].to_vec();
                bytes.splice(start..start, line);
            }
            Edit::Truncate(f) => {
                let i = at(f, bytes).min(bytes.len());
                bytes.truncate(i);
            }
        }
    }
}

const INSERTS: [&str; 16] = [
    "-- migrate:up\n",
    "-- migrate:down\n",
    "-- migrate:up transaction:false\n",
    "-- migrate:revises a-b\n",
    "-- migrate:nope\n",
    "--migrate:down transaction:maybe\n",
    "BEGIN;\n",
    "COMMIT;\n",
    "'",
    "$$",
    "/*",
    "\"",
    "\u{feff}",
    "\r\n",
    "\0",
    "\u{fffd}",
];

fn edit() -> impl Strategy<Value = Edit> {
    let fraction = 0.0..=1.0f64;
    prop_oneof![
        (fraction.clone(), select(&INSERTS[..]))
            .prop_map(|(f, s)| Edit::Insert(f, s.as_bytes().to_vec())),
        (fraction.clone(), prop::collection::vec(any::<u8>(), 1..4))
            .prop_map(|(f, b)| Edit::Insert(f, b)),
        (fraction.clone(), 1usize..20).prop_map(|(f, n)| Edit::Delete(f, n)),
        fraction.clone().prop_map(Edit::DuplicateLine),
        fraction.prop_map(Edit::Truncate),
    ]
}
