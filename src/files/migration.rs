//! One migration file: its name, directives, up and down sections and checksum.
//!
//! The format is dbmate's (`-- migrate:up` / `-- migrate:down`) plus `-- migrate:revises`
//! for Alembic-style graphs, so existing dbmate folders run unchanged. Every problem is
//! reported with its line, and all problems of a file are reported at once.

use std::borrow::Cow;
use std::cmp::Ordering;

use sha2::{Digest, Sha256};

use crate::error::FileProblem;
use crate::files::split;

/// The SQL of an up or down section, with where it sits in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub sql: String,
    /// 1-based line of the section's first line in the file.
    pub first_line: usize,
    /// `false` for `transaction:false`: run statement by statement, outside a transaction.
    pub transactional: bool,
}

impl Section {
    /// The file line of a 1-based line within this section.
    pub fn file_line(&self, section_line: usize) -> usize {
        self.first_line + section_line.saturating_sub(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub revision: String,
    pub description: String,
    /// The path as the user gave it, for messages.
    pub path: String,
    /// Parents named by `-- migrate:revises`; `None` means "the file before this one".
    pub revises: Option<Vec<String>>,
    /// Line of the `-- migrate:revises` directive, for messages about parents.
    pub revises_line: Option<usize>,
    pub up: Section,
    /// `None`: no down marker, the migration is irreversible.
    pub down: Option<Section>,
    /// Hex SHA-256 of the up section and its options.
    pub checksum: String,
    /// Its up section is empty (and it is no merge point): a draft, as `new` writes it.
    pub unfinished: bool,
}

/// Splits `<revision>_<slug>.sql` into revision and description.
pub fn parse_file_name(name: &str) -> Result<(String, String), String> {
    let stem = name
        .strip_suffix(".sql")
        .ok_or_else(|| "a migration file name must end in .sql".to_string())?;
    let (revision, slug) = stem.split_once('_').unwrap_or((stem, ""));
    if revision.is_empty() || !revision.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "file name must be <revision>_<slug>.sql with a revision of letters and digits \
             (for example 20251215093000_add_users.sql); `{revision}` is not a valid revision"
        ));
    }
    if RESERVED.contains(&revision.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "`{revision}` is a reserved word (head, heads and base name places on the command line), \
             not usable as a revision: rename the file"
        ));
    }
    if slug.is_empty() {
        return Err(format!(
            "file name must be <revision>_<slug>.sql: add a description after the revision, \
             for example {revision}_add_users.sql"
        ));
    }
    Ok((revision.to_string(), slug.replace('_', " ")))
}

/// Words the command line gives a meaning, so no revision may be called that.
const RESERVED: [&str; 3] = ["base", "head", "heads"];

/// Whether a revision id has the shape of `[0-9A-Za-z]+`.
pub fn is_valid_revision(revision: &str) -> bool {
    !revision.is_empty() && revision.chars().all(|c| c.is_ascii_alphanumeric())
}

/// Revision order: natural order, so runs of digits compare as numbers (`9` before `10`,
/// `v2` before `v10`) and timestamps compare as expected. Ids that compare equal but
/// differ (`007` and `7`) are duplicates.
pub fn compare_revisions(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (da, ra) = split_run(a, true);
                let (db, rb) = split_run(b, true);
                let (da, db) = (trim_zeros(da), trim_zeros(db));
                let order = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if order.is_ne() {
                    return order;
                }
                (a, b) = (ra, rb);
            }
            // A number sorts before letters, as in `1` < `a`.
            (Some(x), Some(_)) if x.is_ascii_digit() => return Ordering::Less,
            (Some(_), Some(y)) if y.is_ascii_digit() => return Ordering::Greater,
            (Some(_), Some(_)) => {
                let (ta, ra) = split_run(a, false);
                let (tb, rb) = split_run(b, false);
                let order = ta.cmp(tb);
                if order.is_ne() {
                    return order;
                }
                (a, b) = (ra, rb);
            }
        }
    }
}

/// The one identity of a revision: digit runs without leading zeros (but at least one
/// digit, so `a0b` stays apart from `ab`), letter runs unchanged. Two ids have the same
/// key exactly when `compare_revisions` calls them equal, so `7` and `007` are one
/// revision in the graph, the history and on the command line alike.
pub fn revision_key(revision: &str) -> String {
    let mut key = String::with_capacity(revision.len());
    let mut rest = revision.as_bytes();
    while let Some(first) = rest.first() {
        let digits = first.is_ascii_digit();
        let (run, tail) = split_run(rest, digits);
        let run = if digits {
            match trim_zeros(run) {
                [] => b"0".as_slice(),
                trimmed => trimmed,
            }
        } else {
            run
        };
        key.push_str(&String::from_utf8_lossy(run));
        rest = tail;
    }
    key
}

/// Whether two ids name the same revision.
pub fn same_revision(a: &str, b: &str) -> bool {
    compare_revisions(a, b).is_eq()
}

fn split_run(text: &[u8], digits: bool) -> (&[u8], &[u8]) {
    let end = text
        .iter()
        .position(|c| c.is_ascii_digit() != digits)
        .unwrap_or(text.len());
    text.split_at(end)
}

fn trim_zeros(digits: &[u8]) -> &[u8] {
    let start = digits
        .iter()
        .position(|&c| c != b'0')
        .unwrap_or(digits.len());
    &digits[start..]
}

enum Part {
    Header,
    Up,
    Down,
}

/// Parses one migration file. `path` is only used in messages.
pub fn parse(path: &str, file_name: &str, bytes: &[u8]) -> Result<Migration, Vec<FileProblem>> {
    let problem = |line: Option<usize>, message: String| FileProblem::new(path, line, message);
    let (revision, description) =
        parse_file_name(file_name).map_err(|message| vec![problem(None, message)])?;

    let text = decode(path, bytes).map_err(|p| vec![p])?;

    let mut problems = Vec::new();
    let mut revises = None;
    let mut revises_line = None;
    let mut header = String::new();
    let mut up: Option<(Section, usize)> = None;
    let mut down: Option<(Section, usize)> = None;
    let mut part = Part::Header;

    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        let directive = match classify(line) {
            Line::Directive(directive) => Some(directive),
            Line::Mistyped(right) => {
                problems.push(problem(
                    Some(number),
                    format!(
                        "line looks like a mistyped `{right}` marker: write it exactly so \
                         (at the start of the line, one space after `--`, lower case); \
                         if it is a plain comment, do not write `migrate:` in it"
                    ),
                ));
                None
            }
            Line::Plain => None,
        };
        let Some(directive) = directive else {
            let target = match part {
                Part::Header => &mut header,
                Part::Up => &mut up.as_mut().expect("in up part").0.sql,
                Part::Down => &mut down.as_mut().expect("in down part").0.sql,
            };
            target.push_str(line);
            target.push('\n');
            continue;
        };
        let (word, args) = directive
            .split_once(char::is_whitespace)
            .map(|(w, a)| (w, a.trim()))
            .unwrap_or((directive.trim(), ""));
        match word {
            "up" | "down" => {
                let transactional = match parse_options(args) {
                    Ok(t) => t,
                    Err(message) => {
                        problems.push(problem(Some(number), message));
                        true
                    }
                };
                let section = Section {
                    sql: String::new(),
                    first_line: number + 1,
                    transactional,
                };
                let slot = if word == "up" { &mut up } else { &mut down };
                if let Some((_, first)) = slot {
                    problems.push(problem(
                        Some(number),
                        format!("second `-- migrate:{word}` marker (the first is on line {first}): a file has one up and at most one down section"),
                    ));
                } else {
                    *slot = Some((section, number));
                }
                part = if word == "up" { Part::Up } else { Part::Down };
            }
            "revises" => {
                if !matches!(part, Part::Header) {
                    problems.push(problem(
                        Some(number),
                        "`-- migrate:revises` must come before `-- migrate:up`".to_string(),
                    ));
                } else if let Some(first) = revises_line {
                    problems.push(problem(
                        Some(number),
                        format!("second `-- migrate:revises` (the first is on line {first}): name every parent in one, separated by commas"),
                    ));
                } else {
                    match parse_revises(args) {
                        Ok(parents) => revises = Some(parents),
                        Err(message) => problems.push(problem(Some(number), message)),
                    }
                    revises_line = Some(number);
                }
            }
            other => problems.push(problem(
                Some(number),
                format!(
                    "unknown directive `-- migrate:{other}` (known: up, down, revises); \
                     if this is a plain comment, write it without `migrate:`"
                ),
            )),
        }
    }

    let up = match up {
        Some((section, _)) => {
            if let Ok(statements) = split::split(&header)
                && let Some(first) = statements.first()
            {
                problems.push(problem(
                    Some(first.line),
                    "SQL above `-- migrate:up` would never run: move it below the marker"
                        .to_string(),
                ));
            }
            section
        }
        None => {
            if let Some((_, line)) = &down {
                problems.push(problem(
                    Some(*line),
                    "a `-- migrate:down` section without `-- migrate:up`: add the up marker above the up SQL".to_string(),
                ));
            }
            Section {
                sql: header,
                first_line: 1,
                transactional: true,
            }
        }
    };
    let down = down.map(|(section, _)| section);

    // A merge point may have nothing to run, as an Alembic merge has an empty upgrade().
    let merge_point = revises.as_ref().is_some_and(|parents| parents.len() > 1);
    // An empty up section is a draft (what `new` just wrote): read commands show it as
    // unfinished, the gates refuse it (`Graph::unfinished`).
    let unfinished = check_section(path, "up", &up, &mut problems) && !merge_point;
    if let Some(down) = &down {
        check_section(path, "down", down, &mut problems);
    }
    if !problems.is_empty() {
        return Err(problems);
    }

    let checksum = checksum(&up);
    Ok(Migration {
        revision,
        description,
        path: path.to_string(),
        revises,
        revises_line,
        up,
        down,
        checksum,
        unfinished,
    })
}

const EMPTY_UP: &str = "empty up section";

/// The file problem of an unfinished migration (an empty up section), for the gates.
pub fn unfinished_problem(m: &Migration) -> FileProblem {
    FileProblem::new(
        &m.path,
        Some(m.up.first_line.saturating_sub(1).max(1)),
        format!(
            "{EMPTY_UP}: write the migration's SQL below `-- migrate:up` (the file is unfinished)"
        ),
    )
}

/// A file's text as every layout reads it: UTF-8 without NUL bytes, a BOM dropped and
/// CRLF read as LF (so a checksum does not depend on the editor).
pub fn decode<'a>(path: &str, bytes: &'a [u8]) -> Result<Cow<'a, str>, FileProblem> {
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            return Err(FileProblem::new(
                path,
                Some(line),
                "the file is not valid UTF-8: save it as UTF-8",
            ));
        }
    };
    // The protocol sends SQL as C strings: the server could never receive this file.
    if let Some(at) = text.find('\0') {
        let line = text[..at].matches('\n').count() + 1;
        return Err(FileProblem::new(
            path,
            Some(line),
            "the file contains a NUL byte, which PostgreSQL cannot receive in SQL: remove it",
        ));
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    // Copied only when there is something to change: a migration may be tens of MB.
    Ok(if text.contains("\r\n") {
        Cow::Owned(text.replace("\r\n", "\n"))
    } else {
        Cow::Borrowed(text)
    })
}

/// How another tool's layout spells what a message tells the user to write.
#[derive(Debug, Clone, Copy)]
pub struct Spelling {
    /// How to run a section outside a transaction, e.g. "add `-- +goose NO TRANSACTION`".
    pub no_transaction: &'static str,
}

/// A migration read from another tool's layout (`crate::files::layout`): the same checks as a
/// native file's sections, with that tool's spelling in the messages. It revises the
/// migration before it: those tools have no graph.
pub fn foreign(
    path: &str,
    down_path: Option<&str>,
    revision: String,
    description: String,
    up: Section,
    down: Option<Section>,
    spelling: &Spelling,
) -> Result<Migration, Vec<FileProblem>> {
    let mut problems = Vec::new();
    // Those tools run an empty file as a no-op, so it is not an error here.
    check_hinted(path, &up, spelling.no_transaction, &mut problems);
    if let Some(down) = &down {
        let down_path = down_path.unwrap_or(path);
        check_hinted(down_path, down, spelling.no_transaction, &mut problems);
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let checksum = checksum(&up);
    Ok(Migration {
        revision,
        description,
        path: path.to_string(),
        revises: None,
        revises_line: None,
        up,
        down,
        checksum,
        unfinished: false,
    })
}

impl Migration {
    /// A Flyway repeatable migration (`R__<desc>.sql`, revision `R__<desc>`): applied
    /// after the versioned ones and again whenever its checksum changes. No native or
    /// other layout's revision can start so (`_` is not allowed in native ids, the
    /// sql-migrate layout refuses such names).
    pub fn is_repeatable(&self) -> bool {
        self.revision.starts_with(REPEATABLE_PREFIX)
    }
}

/// The revision prefix of Flyway's repeatable migrations.
pub const REPEATABLE_PREFIX: &str = "R__";

/// Whether `line` is a directive or would be read as a mistyped one.
pub fn looks_like_directive(line: &str) -> bool {
    !matches!(classify(line), Line::Plain)
}

enum Line<'a> {
    Plain,
    /// What follows `-- migrate:`.
    Directive(&'a str),
    /// Looks like a directive written another way; holds the right spelling.
    Mistyped(String),
}

const DIRECTIVES: [&str; 3] = ["up", "down", "revises"];

/// A directive is exactly `-- migrate:WORD ...` at the start of a line. Anything that
/// reads as one with other spacing or case (`--migrate:down`, `-- Migrate: Down`, an
/// indented marker) would silently be a comment, and a down section would run as part of
/// the up one, so it is an error. Stricter than dbmate on purpose.
fn classify(line: &str) -> Line<'_> {
    if let Some(rest) = line.strip_prefix("-- migrate:")
        && !rest.starts_with(char::is_whitespace)
    {
        let word = rest.split(char::is_whitespace).next().unwrap_or_default();
        let lower = word.to_ascii_lowercase();
        // Unknown words are reported as unknown directives by the caller.
        if word != lower && DIRECTIVES.contains(&lower.as_str()) {
            return Line::Mistyped(format!("-- migrate:{lower}"));
        }
        return Line::Directive(rest);
    }
    let Some(rest) = line.trim_start().strip_prefix("--") else {
        return Line::Plain;
    };
    let rest = rest.trim_start();
    let Some(after) = rest
        .get(..7)
        .filter(|w| w.eq_ignore_ascii_case("migrate"))
        .and_then(|_| rest.get(7..))
    else {
        return Line::Plain;
    };
    let Some(after) = after.trim_start().strip_prefix(':') else {
        return Line::Plain;
    };
    let word: String = after
        .trim_start()
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    Line::Mistyped(format!("-- migrate:{}", word.to_ascii_lowercase()))
}

/// Options of an up/down marker; returns whether the section is transactional.
fn parse_options(args: &str) -> Result<bool, String> {
    let mut transactional = true;
    for option in args.split_whitespace() {
        match option {
            "transaction:false" => transactional = false,
            "transaction:true" => transactional = true,
            other => {
                return Err(format!(
                    "unknown option `{other}` (known: transaction:false, transaction:true)"
                ));
            }
        }
    }
    Ok(transactional)
}

fn parse_revises(args: &str) -> Result<Vec<String>, String> {
    let parents: Vec<String> = args
        .split([',', ' ', '\t'])
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect();
    if parents.is_empty() {
        return Err(
            "`-- migrate:revises` names no revision: write `-- migrate:revises <revision>[, <revision>...]`, \
             `-- migrate:revises base` for a first migration, or remove it to revise the previous file"
                .to_string(),
        );
    }
    // `base`: a root, whatever sorts before it (Alembic's down_revision = None).
    if parents.iter().any(|p| p.eq_ignore_ascii_case("base")) {
        return match parents.as_slice() {
            [_] => Ok(Vec::new()),
            _ => Err(
                "`base` means \"revises nothing\": it cannot be combined with other parents".into(),
            ),
        };
    }
    if let Some(bad) = parents.iter().find(|p| !is_valid_revision(p)) {
        return Err(format!(
            "`{bad}` is not a revision id (letters and digits only)"
        ));
    }
    Ok(parents)
}

/// Checks a native section; true when it splits into no statement at all.
fn check_section(
    path: &str,
    name: &str,
    section: &Section,
    problems: &mut Vec<FileProblem>,
) -> bool {
    let no_transaction = format!("mark the section `-- migrate:{name} transaction:false`");
    check_hinted(path, section, &no_transaction, problems)
}

/// `no_transaction`: how to mark the section to run outside a transaction, in the
/// section's own spelling. True when the section splits into no statement at all.
fn check_hinted(
    path: &str,
    section: &Section,
    no_transaction: &str,
    problems: &mut Vec<FileProblem>,
) -> bool {
    let statements = match split::split(&section.sql) {
        Ok(statements) => statements,
        Err(e) => {
            let message = if e.unclosed {
                format!(
                    "{}: close it, or the rest of the file becomes part of it",
                    e.message
                )
            } else {
                e.message
            };
            problems.push(FileProblem::new(
                path,
                Some(section.file_line(e.line)),
                message,
            ));
            // A string written for standard_conforming_strings = off may be what broke
            // this reading; the other readings still show what the server would run.
            if section.transactional {
                control_problems(path, no_transaction, section, &[], problems);
            }
            return false;
        }
    };
    for statement in statements.iter().filter(|s| s.copy_to_stdout()) {
        problems.push(FileProblem::new(
            path,
            Some(section.file_line(statement.line)),
            "COPY ... TO STDOUT in a migration: a migration has no client to receive it: \
             COPY to a server file, or remove it",
        ));
    }
    if section.transactional {
        control_problems(path, no_transaction, section, &statements, problems);
    }
    statements.is_empty()
}

fn control_problems(
    path: &str,
    no_transaction: &str,
    section: &Section,
    statements: &[split::Statement<'_>],
    problems: &mut Vec<FileProblem>,
) {
    for (line, command) in transaction_control(&section.sql, statements) {
        problems.push(FileProblem::new(
            path,
            Some(section.file_line(line)),
            format!(
                "top-level {command} in a transactional migration: schemagate runs each migration \
                 in its own transaction, as one query, and this would end, prepare or open a \
                 transaction there, separating the history row from the change. Remove it, or \
                 {no_transaction}"
            ),
        ));
    }
}

/// The lines of every statement that ends, prepares or opens a transaction, by section
/// line. The server, not psql, cuts a transactional section (it is sent as one query), so
/// besides psql's cut (`statements`) this looks at the server's (a body opens only at
/// `BEGIN ATOMIC`), and, where a backslash could make the difference, at both read with
/// `standard_conforming_strings = off`, which a database may have set: what any of them
/// finds is reported. A cut that fails only under another reading is ignored.
fn transaction_control(
    sql: &str,
    statements: &[split::Statement<'_>],
) -> Vec<(usize, &'static str)> {
    let mut found = std::collections::BTreeMap::new();
    let mut note = |statements: &[split::Statement<'_>]| {
        for s in statements {
            if let Some(command) = s.transaction_control() {
                found.entry(s.line).or_insert(command);
            }
        }
    };
    note(statements);
    let mut readings = vec![split::Rules {
        server: true,
        backslash_quotes: false,
    }];
    if sql.contains('\\') {
        for server in [false, true] {
            readings.push(split::Rules {
                server,
                backslash_quotes: true,
            });
        }
    }
    for rules in readings {
        if let Ok(other) = split::split_as(sql, rules) {
            note(&other.statements);
        }
    }
    found.into_iter().collect()
}

fn checksum(up: &Section) -> String {
    let mut hasher = Sha256::new();
    hasher.update(up.sql.as_bytes());
    if !up.transactional {
        hasher.update(b"\0transaction:false");
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in hasher.finalize() {
        hex.push(HEX[usize::from(byte >> 4)] as char);
        hex.push(HEX[usize::from(byte & 0xf)] as char);
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Migration {
        parse("m/1_test.sql", "1_test.sql", text.as_bytes())
            .unwrap_or_else(|problems| panic!("unexpected problems: {problems:?}"))
    }

    fn parse_err(text: &str) -> Vec<FileProblem> {
        match parse("m/1_test.sql", "1_test.sql", text.as_bytes()) {
            Ok(m) => panic!("expected problems, parsed {m:?}"),
            Err(problems) => problems,
        }
    }

    #[test]
    fn file_names() {
        assert_eq!(
            parse_file_name("20251215093000_add_users.sql"),
            Ok(("20251215093000".into(), "add users".into()))
        );
        assert_eq!(
            parse_file_name("0001_init.sql"),
            Ok(("0001".into(), "init".into()))
        );
        assert!(
            parse_file_name("add_users.sql").is_ok(),
            "letters are a revision"
        );
        assert!(parse_file_name("2025-12-15_add.sql").is_err());
        assert!(parse_file_name("_add.sql").is_err());
        assert!(parse_file_name("123.sql").is_err());
        assert!(parse_file_name("123_add.txt").is_err());
    }

    #[test]
    fn revisions_compare_numerically_when_both_are_numbers() {
        assert_eq!(compare_revisions("9", "10"), Ordering::Less);
        assert_eq!(compare_revisions("007", "7"), Ordering::Equal);
        assert_eq!(
            compare_revisions("20251215093000", "20251215093001"),
            Ordering::Less
        );
        assert_eq!(compare_revisions("a1", "a2"), Ordering::Less);
        assert_eq!(compare_revisions("v2", "v10"), Ordering::Less);
        assert_eq!(compare_revisions("b", "a"), Ordering::Greater);
        assert_eq!(compare_revisions("9", "a"), Ordering::Less);
    }

    #[test]
    fn revision_order_is_a_total_order() {
        // Mixed ids once made a plain numeric/text comparison cyclic (9 < 10 < 1a < 9).
        let mut ids = vec![
            "10", "9", "1a", "9a", "a", "007", "20250101", "v10", "v2", "b2c", "b10",
        ];
        ids.sort_by(|a, b| compare_revisions(a, b));
        for (i, a) in ids.iter().enumerate() {
            for b in &ids[i + 1..] {
                assert_ne!(compare_revisions(a, b), Ordering::Greater, "{a} vs {b}");
                assert_eq!(compare_revisions(a, b), compare_revisions(b, a).reverse());
            }
        }
    }

    #[test]
    fn dbmate_file_with_up_and_down() {
        let m =
            parse_ok("-- migrate:up\nCREATE TABLE t (id int);\n\n-- migrate:down\nDROP TABLE t;\n");
        assert_eq!(m.revision, "1");
        assert_eq!(m.description, "test");
        assert_eq!(m.up.sql, "CREATE TABLE t (id int);\n\n");
        assert_eq!(m.up.first_line, 2);
        assert!(m.up.transactional);
        let down = m.down.expect("down section");
        assert_eq!(down.sql, "DROP TABLE t;\n\n");
        assert_eq!(down.first_line, 5);
        assert_eq!(m.revises, None);
    }

    #[test]
    fn file_without_markers_is_an_irreversible_up() {
        let m = parse_ok("-- a comment\nCREATE TABLE t (id int);\n");
        assert_eq!(m.up.first_line, 1);
        assert!(m.up.sql.contains("CREATE TABLE"));
        assert!(m.down.is_none());
    }

    #[test]
    fn revises_and_options() {
        let m = parse_ok(
            "-- migrate:revises 20250101, abc\n-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY i;\n",
        );
        assert_eq!(m.revises, Some(vec!["20250101".into(), "abc".into()]));
        assert_eq!(m.revises_line, Some(1));
        assert!(!m.up.transactional);
        assert!(!m.down.expect("down").transactional);
    }

    #[test]
    fn each_section_has_its_own_options() {
        let m = parse_ok(
            "-- migrate:up\nCREATE TABLE t (a int);\n-- migrate:down transaction:false\nDROP TABLE t;\n",
        );
        assert!(m.up.transactional);
        assert!(!m.down.expect("down").transactional);
    }

    #[test]
    fn checksum_ignores_down_and_header_comments_and_line_endings() {
        let base =
            parse_ok("-- migrate:up\nCREATE TABLE t (a int);\n-- migrate:down\nDROP TABLE t;\n");
        let other_down = parse_ok(
            "-- header comment\n-- migrate:up\nCREATE TABLE t (a int);\n-- migrate:down\nDROP TABLE t CASCADE;\n",
        );
        let crlf = parse_ok(
            "\u{feff}-- migrate:up\r\nCREATE TABLE t (a int);\r\n-- migrate:down\r\nDROP TABLE t;\r\n",
        );
        assert_eq!(base.checksum, other_down.checksum);
        assert_eq!(base.checksum, crlf.checksum);
        assert_eq!(base.checksum.len(), 64);

        let changed = parse_ok("-- migrate:up\nCREATE TABLE t (a bigint);\n");
        assert_ne!(base.checksum, changed.checksum);
        let option = parse_ok(
            "-- migrate:up transaction:false\nCREATE TABLE t (a int);\n-- migrate:down\nDROP TABLE t;\n",
        );
        assert_ne!(
            base.checksum, option.checksum,
            "options are part of the checksum"
        );
    }

    #[test]
    fn unknown_directive_and_option_are_errors_with_lines() {
        let problems = parse_err("-- migrate:up\nSELECT 1;\n-- migrate:dwon\nSELECT 2;\n");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].line, Some(3));
        assert!(
            problems[0]
                .message
                .contains("unknown directive `-- migrate:dwon`")
        );

        let problems = parse_err("-- migrate:up transaction:nope\nSELECT 1;\n");
        assert_eq!(problems[0].line, Some(1));
        assert!(
            problems[0]
                .message
                .contains("unknown option `transaction:nope`")
        );
    }

    #[test]
    fn an_empty_up_section_is_an_unfinished_draft() {
        let m = parse_ok("-- migrate:up\n-- nothing here\n\n-- migrate:down\nDROP TABLE t;\n");
        assert!(m.unfinished);
        let problem = unfinished_problem(&m);
        assert!(problem.message.contains("empty up section"), "{problem:?}");
        assert_eq!(problem.line, Some(1));
        assert!(parse_ok("").unfinished);
        assert!(!parse_ok("SELECT 1;\n").unfinished);
        // With another problem too, it is just invalid.
        parse_err("-- migrate:up\n-- migrate:dwon\n");
    }

    #[test]
    fn comment_only_down_is_a_valid_noop() {
        let m = parse_ok("-- migrate:up\nSELECT 1;\n-- migrate:down\n-- nothing to undo\n");
        assert!(m.down.is_some());
    }

    #[test]
    fn unterminated_quote_is_reported_where_it_opens() {
        let problems = parse_err("-- migrate:up\nSELECT 1;\nSELECT 'oops;\nSELECT 2;\n");
        assert_eq!(problems[0].line, Some(3), "{problems:?}");
    }

    #[test]
    fn top_level_transaction_control_in_transactional_migration() {
        let problems = parse_err("-- migrate:up\nBEGIN;\nCREATE TABLE t (a int);\nCOMMIT;\n");
        assert_eq!(problems.len(), 2);
        assert_eq!(problems[0].line, Some(2));
        assert!(problems[0].message.contains("transaction:false"));
        assert_eq!(problems[1].line, Some(4));

        // Fine: inside function bodies, savepoint rollbacks, and transaction:false sections.
        parse_ok(
            "-- migrate:up\nDO $$ BEGIN PERFORM 1; END $$;\nSAVEPOINT a;\nROLLBACK TO a;\nRELEASE a;\n",
        );
        parse_ok("-- migrate:up transaction:false\nBEGIN;\nSELECT 1;\nCOMMIT;\n");
    }

    #[test]
    fn mistyped_markers_are_errors_with_the_right_spelling() {
        let cases = [
            ("-- migrate :down", "-- migrate:down"),
            ("-- Migrate:Down", "-- migrate:down"),
            ("--migrate:down", "-- migrate:down"),
            ("-- migrate: down", "-- migrate:down"),
            ("  -- migrate:up", "-- migrate:up"),
            ("-- MIGRATE:UP", "-- migrate:up"),
            ("-- migrate:Up", "-- migrate:up"),
            ("--  migrate:down transaction:false", "-- migrate:down"),
            ("\t-- migrate:revises 1", "-- migrate:revises"),
        ];
        for (line, right) in cases {
            let text = format!("-- migrate:up\nSELECT 1;\n{line}\nSELECT 2;\n");
            let problems = parse_err(&text);
            assert_eq!(problems.len(), 1, "{line:?}: {problems:?}");
            assert_eq!(problems[0].line, Some(3), "{line:?}");
            assert!(
                problems[0].message.contains(&format!(
                    "line looks like a mistyped `{right}` marker: write it exactly so"
                )),
                "{line:?}: {}",
                problems[0].message
            );
        }
        // Plain comments that mention migrating stay comments.
        for line in [
            "-- migrate the users table",
            "-- this migrates data",
            "-- migrates: nothing",
            "-- migration: users",
            "SELECT 1; -- migrate:down",
        ] {
            let m = parse_ok(&format!("-- migrate:up\nSELECT 1;\n{line}\nSELECT 2;\n"));
            assert!(m.down.is_none(), "{line:?}");
        }
        // The one accepted spelling, options included.
        let m =
            parse_ok("-- migrate:up\nSELECT 1;\n-- migrate:down transaction:false\nSELECT 2;\n");
        assert!(m.down.is_some());
    }

    #[test]
    fn sql_above_the_up_marker_is_an_error() {
        let problems = parse_err("CREATE TABLE lost (a int);\n-- migrate:up\nSELECT 1;\n");
        assert_eq!(problems[0].line, Some(1));
    }

    #[test]
    fn revises_placement_and_duplicates() {
        let problems = parse_err("-- migrate:up\n-- migrate:revises 1\nSELECT 1;\n");
        assert!(problems[0].message.contains("before `-- migrate:up`"));
        let problems = parse_err("-- migrate:revises\n-- migrate:up\nSELECT 1;\n");
        assert!(problems[0].message.contains("names no revision"));
        let problems = parse_err("-- migrate:revises a-b\n-- migrate:up\nSELECT 1;\n");
        assert!(problems[0].message.contains("`a-b` is not a revision id"));
    }

    #[test]
    fn only_a_merge_point_may_have_an_empty_up_section() {
        let merge = parse_ok(
            "-- migrate:revises 1, 2\n-- migrate:up\n-- nothing to run\n-- migrate:down\n",
        );
        assert!(!merge.unfinished);
        assert!(parse_ok("-- migrate:revises 1\n-- migrate:up\n\n-- migrate:down\n").unfinished);
    }

    #[test]
    fn revises_base_makes_a_root_and_reserved_words_are_no_revisions() {
        let m = parse_ok("-- migrate:revises base\n-- migrate:up\nSELECT 1;\n");
        assert_eq!(m.revises, Some(Vec::new()));
        let problems = parse_err("-- migrate:revises base, 2\n-- migrate:up\nSELECT 1;\n");
        assert!(
            problems[0].message.contains("cannot be combined"),
            "{problems:?}"
        );
        for name in ["head_x.sql", "base_x.sql", "HEADS_x.sql"] {
            let e = parse_file_name(name).expect_err(name);
            assert!(e.contains("reserved word"), "{e}");
        }
    }

    #[test]
    fn duplicate_markers() {
        let problems = parse_err("-- migrate:up\nSELECT 1;\n-- migrate:up\nSELECT 2;\n");
        assert_eq!(problems[0].line, Some(3));
    }

    #[test]
    fn a_nul_byte_is_an_error_with_its_line() {
        let problems = parse(
            "m/1_a.sql",
            "1_a.sql",
            b"-- migrate:up\nSELECT 1;\nSELECT 'a\0b';\n",
        )
        .expect_err("NUL");
        assert_eq!(problems[0].line, Some(3));
        assert!(problems[0].message.contains("NUL byte"), "{problems:?}");
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let problems = parse("m/1_a.sql", "1_a.sql", b"-- migrate:up\nSELECT '\xff';\n")
            .expect_err("invalid utf-8");
        assert_eq!(problems[0].line, Some(2));
    }
}
