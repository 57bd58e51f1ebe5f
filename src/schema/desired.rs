//! The desired schema: the SQL a developer keeps as the truth (`schema.sql`, or a
//! `schema/` folder of `.sql` files), read, checked and applied to a scratch database.
//!
//! - Where: `--schema-file` / `SCHEMAGATE_SCHEMA_FILE` (a file or a folder), else
//!   `schema.sql` beside the migrations folder, else a `schema/` folder beside it.
//! - A folder is read flat: its `*.sql` files in byte order of their names. A subfolder
//!   is an error, not skipped: a desired schema missing a folder's tables would make
//!   autogenerate write their `DROP TABLE`s, so nothing of the schema may be silently
//!   left out. (Atlas reads folders the same flat way; number the files to order them.)
//!   Other files (a README) and hidden files are ignored.
//! - A file is only read if it is a regular file (a FIFO would block forever), and must
//!   be UTF-8 without NUL bytes (the server refuses both).
//! - `-- schemagate:renamed-from old` on a table's line or a column's line turns the
//!   engine's drop and add into a rename. Hints are read with the migration lexer, so one
//!   inside a string or a dollar-quoted body is no hint; a hint anywhere else is an error,
//!   never ignored, as a misplaced hint would mean data lost.
//! - Applying runs statement by statement, so a failure names its file and line; the
//!   session is reset between files as if each ran in a session of its own (pg_dump's
//!   `set_config('search_path', '', false)` must not reach the next file).
//!
//! Problems in the files are [`Error::InvalidSchema`] (exit 3, as for a migration file:
//! the file is wrong, including when the server rejects its SQL); not finding the schema
//! at all is [`Error::Usage`] (exit 2, as for an unreadable migrations folder: the
//! configuration points at the wrong place).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path, PathBuf};

use crate::db::session::{self, Session};
use crate::error::{Error, FileProblem, Result};
use crate::files::split::{self, Lexeme, LexemeKind};

/// One file of the desired schema: its path (for messages) and text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaFile {
    pub path: PathBuf,
    pub text: String,
}

/// The default file, beside the migrations folder.
pub const DEFAULT_FILE: &str = "schema.sql";
/// The default folder, beside the migrations folder, when there is no `schema.sql`.
pub const DEFAULT_FOLDER: &str = "schema";

/// Reads the desired schema: `explicit` (from --schema-file / SCHEMAGATE_SCHEMA_FILE), a
/// file or a folder; else `schema.sql` beside `migrations_dir`, else a `schema/` folder
/// beside it. A folder gives its `*.sql` files in byte order of their names.
pub fn load(explicit: Option<&Path>, migrations_dir: &Path) -> Result<Vec<SchemaFile>> {
    let path = match explicit {
        Some(path) => {
            if fs::metadata(path).is_err() {
                return Err(Error::Usage(format!(
                    "the schema file {} does not exist (or cannot be read): set --schema-file \
                     or SCHEMAGATE_SCHEMA_FILE to your schema.sql or schema folder",
                    path.display()
                )));
            }
            path.to_path_buf()
        }
        None => {
            let beside = beside(migrations_dir);
            let file = beside.join(DEFAULT_FILE);
            let folder = beside.join(DEFAULT_FOLDER);
            if fs::metadata(&file).is_ok() {
                file
            } else if fs::metadata(&folder).is_ok() {
                folder
            } else {
                return Err(Error::Usage(format!(
                    "no desired schema: neither {} nor the folder {} exists (they are looked \
                     for beside the migrations folder {}); write one, or set --schema-file or \
                     SCHEMAGATE_SCHEMA_FILE to where it is",
                    file.display(),
                    folder.display(),
                    migrations_dir.display()
                )));
            }
        }
    };
    let is_dir = fs::metadata(&path).is_ok_and(|m| m.is_dir());
    let files = if is_dir {
        load_folder(&path)?
    } else {
        vec![read(&path).map_err(|p| Error::InvalidSchema(vec![p]))?]
    };
    Ok(files)
}

/// The folder holding `migrations_dir`: its parent, or `..` of it when it ends in `.`
/// or `..` (whose textual parent would be wrong).
fn beside(migrations_dir: &Path) -> PathBuf {
    match migrations_dir.components().next_back() {
        Some(Component::Normal(_)) => match migrations_dir.parent() {
            Some(parent) if parent.as_os_str().is_empty() => PathBuf::from("."),
            Some(parent) => parent.to_path_buf(),
            None => migrations_dir.join(".."),
        },
        _ => migrations_dir.join(".."),
    }
}

fn load_folder(dir: &Path) -> Result<Vec<SchemaFile>> {
    let entries = fs::read_dir(dir).map_err(|e| {
        Error::Usage(format!(
            "cannot read the schema folder {}: {e}; set --schema-file or SCHEMAGATE_SCHEMA_FILE",
            dir.display()
        ))
    })?;
    let mut names = Vec::new();
    let mut problems = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            Error::Usage(format!(
                "cannot list the schema folder {}: {e}",
                dir.display()
            ))
        })?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            let shown = name.to_string_lossy().into_owned();
            if shown.ends_with(".sql") {
                problems.push(FileProblem::new(
                    dir.join(&shown).display().to_string(),
                    None,
                    "the file name is not valid UTF-8: rename it",
                ));
            }
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let path = dir.join(name);
        // Follows a symlink: a link to a folder is a folder.
        if fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            problems.push(FileProblem::new(
                path.display().to_string(),
                None,
                format!(
                    "a folder inside the schema folder: only the .sql files directly in {} \
                     are read, and a schema left out would be dropped; move its files up \
                     (names sort in the order they are applied)",
                    dir.display()
                ),
            ));
            continue;
        }
        if name.ends_with(".sql") {
            names.push(name.to_string());
        } else if name.to_ascii_lowercase().ends_with(".sql") {
            tracing::warn!(
                "skipped {}: schema files end in .sql (lower case)",
                path.display()
            );
        }
    }
    if !problems.is_empty() {
        problems.sort_by(|a, b| a.file.cmp(&b.file));
        return Err(Error::InvalidSchema(problems));
    }
    if names.is_empty() {
        return Err(Error::InvalidSchema(vec![FileProblem::new(
            dir.display().to_string(),
            None,
            "the schema folder has no .sql files: put the desired schema in it (files are \
             applied in name order), or set --schema-file or SCHEMAGATE_SCHEMA_FILE to a schema.sql",
        )]));
    }
    // Byte order of the names, which for UTF-8 is the order of the code points.
    names.sort();
    let mut files = Vec::with_capacity(names.len());
    for name in names {
        match read(&dir.join(&name)) {
            Ok(file) => files.push(file),
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(Error::InvalidSchema(problems))
    }
}

/// One regular file as UTF-8 text without NUL bytes.
fn read(path: &Path) -> std::result::Result<SchemaFile, FileProblem> {
    let shown = path.display().to_string();
    let problem = |line: Option<usize>, message: String| FileProblem::new(&shown, line, message);
    let meta = fs::metadata(path)
        .map_err(|e| problem(None, format!("cannot read the schema file: {e}")))?;
    if !meta.is_file() {
        return Err(problem(
            None,
            "not a regular file (a FIFO, socket or device): reading it could block forever, so \
             it was not opened; put the schema in a regular file"
                .to_string(),
        ));
    }
    let bytes =
        fs::read(path).map_err(|e| problem(None, format!("cannot read the schema file: {e}")))?;
    let line_of = |offset: usize| {
        bytes
            .get(..offset)
            .unwrap_or_default()
            .iter()
            .filter(|&&c| c == b'\n')
            .count()
            + 1
    };
    if let Some(at) = bytes.iter().position(|&c| c == 0) {
        return Err(problem(
            Some(line_of(at)),
            "a NUL byte: PostgreSQL cannot take it in SQL text; is this a binary file, or \
             UTF-16? Save the schema as UTF-8"
                .to_string(),
        ));
    }
    match String::from_utf8(bytes.clone()) {
        Ok(text) => Ok(SchemaFile {
            path: path.to_path_buf(),
            text,
        }),
        Err(e) => Err(problem(
            Some(line_of(e.utf8_error().valid_up_to())),
            "not valid UTF-8: save the schema as UTF-8".to_string(),
        )),
    }
}

/// Whether a hint names a table's old name or a column's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RenameKind {
    Table,
    Column,
}

/// One `-- schemagate:renamed-from <old>` hint, names folded as PostgreSQL folds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenameHint {
    pub kind: RenameKind,
    /// The table's schema as the CREATE TABLE names it (`None`: unqualified).
    pub schema: Option<String>,
    /// The new table name (the table the hint is in, for a column).
    pub table: String,
    /// The new column name (`Column` hints only).
    pub column: Option<String>,
    /// The old name: of the table (`Table`) or of the column (`Column`).
    pub from: String,
    /// The old table's schema, when the hint names one (`Table` hints only).
    pub from_schema: Option<String>,
    pub file: PathBuf,
    pub line: usize,
}

/// The directive, spelled exactly.
const HINT: &str = "schemagate:renamed-from";

/// Every rename hint of `files`. A hint that is not on a table's or a column's line, names
/// no old name or a malformed one, or repeats another is an error naming file:line.
pub fn rename_hints(files: &[SchemaFile]) -> Result<Vec<RenameHint>> {
    let mut hints = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        match file_hints(file) {
            Ok(mut found) => hints.append(&mut found),
            Err(mut more) => problems.append(&mut more),
        }
    }
    duplicates(&hints, &mut problems);
    if problems.is_empty() {
        Ok(hints)
    } else {
        problems.sort_by(|a, b| a.file.cmp(&b.file).then(a.line.cmp(&b.line)));
        Err(Error::InvalidSchema(problems))
    }
}

/// Where a hint may go: a table's header lines or one column's lines.
struct Target {
    kind: RenameKind,
    schema: Option<String>,
    table: String,
    column: Option<String>,
    lines: std::ops::RangeInclusive<usize>,
}

impl Target {
    fn describe(&self) -> String {
        match &self.column {
            Some(column) => format!("column {column} of table {}", self.table),
            None => format!("table {}", self.table),
        }
    }
}

fn file_hints(file: &SchemaFile) -> std::result::Result<Vec<RenameHint>, Vec<FileProblem>> {
    let shown = file.path.display().to_string();
    let text = file.text.as_str();
    let lines = LineIndex::new(text);
    let split_problem =
        |e: split::SplitError| vec![FileProblem::new(&shown, Some(e.line), e.message)];
    // Only files that mention the directive pay for lexing.
    if !text.to_ascii_lowercase().contains("schemagate") {
        return Ok(Vec::new());
    }
    let comments: Vec<Lexeme> = split::lexemes(text)
        .map_err(split_problem)?
        .into_iter()
        .filter(|l| l.kind == LexemeKind::LineComment)
        .collect();
    let mut targets = Vec::new();
    for statement in split::split(text).map_err(split_problem)? {
        let tokens: Vec<Lexeme> = split::lexemes(statement.sql)
            .map_err(split_problem)?
            .into_iter()
            .filter(|l| l.kind != LexemeKind::LineComment)
            .map(|l| Lexeme {
                start: l.start + statement.offset,
                end: l.end + statement.offset,
                ..l
            })
            .collect();
        table_targets(text, &tokens, &lines, &mut targets);
    }

    let mut hints = Vec::new();
    let mut problems = Vec::new();
    for comment in comments {
        let body = text
            .get(comment.start + 2..comment.end)
            .unwrap_or_default()
            .trim();
        let line = lines.line(comment.start);
        let problem = |message: String| FileProblem::new(&shown, Some(line), message);
        let argument = match body.strip_prefix(HINT) {
            Some(rest) if rest.is_empty() || rest.starts_with(char::is_whitespace) => rest.trim(),
            _ if near_miss(body) => {
                problems.push(problem(format!(
                    "`-- {body}` reads as a misspelled rename hint: write it exactly \
                     `-- {HINT} <old name>`"
                )));
                continue;
            }
            _ => continue,
        };
        let on: Vec<&Target> = targets.iter().filter(|t| t.lines.contains(&line)).collect();
        let target = match on.as_slice() {
            [one] => *one,
            [] => {
                problems.push(problem(
                    "a renamed-from hint must be on a table's or a column's line (`CREATE TABLE \
                     name (` for the table's old name, a column's definition for its old name)"
                        .to_string(),
                ));
                continue;
            }
            several => {
                let names: Vec<String> = several.iter().map(|t| t.describe()).collect();
                problems.push(problem(format!(
                    "this renamed-from hint is on the line of {}: put each column on a line of \
                     its own, so the hint says which one it is for",
                    names.join(" and ")
                )));
                continue;
            }
        };
        let names = match old_name(argument) {
            Ok(names) => names,
            Err(why) => {
                problems.push(problem(format!(
                    "`-- {HINT} {argument}`: {why}; write `-- {HINT} <old name>`"
                )));
                continue;
            }
        };
        let (from_schema, from) = match (target.kind, names.as_slice()) {
            (_, [name]) => (None, name.clone()),
            (RenameKind::Table, [schema, name]) => (Some(schema.clone()), name.clone()),
            (RenameKind::Column, _) => {
                problems.push(problem(format!(
                    "`-- {HINT} {argument}` on a column's line: a column's old name is one name, \
                     not qualified"
                )));
                continue;
            }
            (RenameKind::Table, _) => {
                problems.push(problem(format!(
                    "`-- {HINT} {argument}`: a table's old name is `name` or `schema.name`"
                )));
                continue;
            }
        };
        let same = match target.kind {
            RenameKind::Table => {
                from == target.table && (from_schema.is_none() || from_schema == target.schema)
            }
            RenameKind::Column => Some(&from) == target.column.as_ref(),
        };
        if same {
            problems.push(problem(format!(
                "{} is renamed from its own name: remove the hint, or name the old one",
                target.describe()
            )));
            continue;
        }
        hints.push(RenameHint {
            kind: target.kind,
            schema: target.schema.clone(),
            table: target.table.clone(),
            column: target.column.clone(),
            from,
            from_schema,
            file: file.path.clone(),
            line,
        });
    }
    if problems.is_empty() {
        Ok(hints)
    } else {
        Err(problems)
    }
}

/// `-- schemagate: renamed-from`, `-- Schemagate:Renamed_From`, `-- schemagate:renamedfrom`:
/// a hint a person meant to write; ignoring it would lose the column's data.
fn near_miss(body: &str) -> bool {
    let squeezed: String = body
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '-' | '_'))
        .flat_map(char::to_lowercase)
        .collect();
    squeezed.starts_with("schemagate:renamedfrom") || squeezed.starts_with("schemagaterenamedfrom")
}

/// The old name of a hint: one identifier, or two joined by `.`, folded.
fn old_name(argument: &str) -> std::result::Result<Vec<String>, String> {
    if argument.is_empty() {
        return Err("the hint names no old name".to_string());
    }
    let lexemes = split::lexemes(argument).map_err(|e| e.message)?;
    let mut names = Vec::new();
    let mut expect_name = true;
    for lexeme in &lexemes {
        let text = argument.get(lexeme.start..lexeme.end).unwrap_or_default();
        match (expect_name, lexeme.kind) {
            (true, LexemeKind::Word | LexemeKind::QuotedIdent) => {
                names.push(identifier(lexeme.kind, text));
                expect_name = false;
            }
            (false, LexemeKind::Dot) => expect_name = true,
            _ => return Err(format!("`{text}` is not part of a name")),
        }
    }
    if expect_name {
        return Err("the name ends in `.`".to_string());
    }
    Ok(names)
}

/// An identifier as PostgreSQL reads it: unquoted folded to lower case (ASCII letters
/// only, as the server does for UTF-8), quoted taken as written with `""` as `"`.
fn identifier(kind: LexemeKind, text: &str) -> String {
    match kind {
        LexemeKind::QuotedIdent => text
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(text)
            .replace("\"\"", "\""),
        _ => text.to_ascii_lowercase(),
    }
}

/// Column-definition lines start with a name; these words start table constraints.
const CONSTRAINT_WORDS: [&str; 7] = [
    "constraint",
    "primary",
    "unique",
    "check",
    "foreign",
    "exclude",
    "like",
];

/// The targets of one statement if it is `CREATE [UNLOGGED] TABLE [IF NOT EXISTS] name (`:
/// the table (from `CREATE` to the `(`) and each of its columns (its tokens' lines, and
/// the line of the `,` after it).
fn table_targets(text: &str, tokens: &[Lexeme], lines: &LineIndex, targets: &mut Vec<Target>) {
    let word = |i: usize, w: &str| {
        tokens.get(i).is_some_and(|t| {
            t.kind == LexemeKind::Word
                && text
                    .get(t.start..t.end)
                    .is_some_and(|s| s.eq_ignore_ascii_case(w))
        })
    };
    let kind = |i: usize| tokens.get(i).map(|t| t.kind);
    let name_at = |i: usize| {
        let t = tokens.get(i)?;
        matches!(t.kind, LexemeKind::Word | LexemeKind::QuotedIdent)
            .then(|| identifier(t.kind, text.get(t.start..t.end).unwrap_or_default()))
    };
    if !word(0, "create") {
        return;
    }
    let mut i = 1;
    if word(i, "unlogged") {
        i += 1;
    }
    if !word(i, "table") {
        return;
    }
    i += 1;
    if word(i, "if") && word(i + 1, "not") && word(i + 2, "exists") {
        i += 3;
    }
    let Some(first) = name_at(i) else { return };
    let (schema, table) = if kind(i + 1) == Some(LexemeKind::Dot) {
        let Some(second) = name_at(i + 2) else { return };
        i += 3;
        (Some(first), second)
    } else {
        i += 1;
        (None, first)
    };
    let Some(open) = tokens.get(i).filter(|t| t.kind == LexemeKind::OpenParen) else {
        return;
    };
    let (Some(create), Some(_)) = (tokens.first(), tokens.get(i)) else {
        return;
    };
    targets.push(Target {
        kind: RenameKind::Table,
        schema: schema.clone(),
        table: table.clone(),
        column: None,
        lines: lines.line(create.start)..=lines.line(open.start),
    });

    // The elements between the parentheses, cut at depth-1 commas.
    let mut depth = 1usize;
    let mut element: Vec<&Lexeme> = Vec::new();
    for token in tokens.get(i + 1..).unwrap_or_default() {
        let ends = match token.kind {
            LexemeKind::OpenParen => {
                depth += 1;
                false
            }
            LexemeKind::CloseParen => {
                depth -= 1;
                depth == 0
            }
            LexemeKind::Comma => depth == 1,
            _ => false,
        };
        if !ends {
            element.push(token);
            continue;
        }
        if let (Some(first), Some(last)) = (element.first(), element.last()) {
            let name = (first.kind == LexemeKind::QuotedIdent
                || (first.kind == LexemeKind::Word
                    && !CONSTRAINT_WORDS.iter().any(|w| {
                        text.get(first.start..first.end)
                            .is_some_and(|s| s.eq_ignore_ascii_case(w))
                    })))
            .then(|| {
                identifier(
                    first.kind,
                    text.get(first.start..first.end).unwrap_or_default(),
                )
            });
            if let Some(column) = name {
                // `a int, -- hint` is a's line; `); -- hint` is no column's.
                let last_line = if token.kind == LexemeKind::Comma {
                    lines.line(token.start)
                } else {
                    lines.line(last.start)
                };
                targets.push(Target {
                    kind: RenameKind::Column,
                    schema: schema.clone(),
                    table: table.clone(),
                    column: Some(column),
                    lines: lines.line(first.start)..=last_line,
                });
            }
        }
        element.clear();
        if depth == 0 {
            break;
        }
    }
}

/// Two hints for one table or column, or two naming the same old table or column.
fn duplicates(hints: &[RenameHint], problems: &mut Vec<FileProblem>) {
    let mut seen_target: BTreeMap<(Option<&str>, &str, Option<&str>), &RenameHint> =
        BTreeMap::new();
    let mut seen_from: BTreeMap<(RenameKind, Option<&str>, &str, &str), &RenameHint> =
        BTreeMap::new();
    let problem = |hint: &RenameHint, message: String| {
        FileProblem::new(hint.file.display().to_string(), Some(hint.line), message)
    };
    for hint in hints {
        let target = (
            hint.schema.as_deref(),
            hint.table.as_str(),
            hint.column.as_deref(),
        );
        if let Some(first) = seen_target.insert(target, hint) {
            problems.push(problem(
                hint,
                format!(
                    "a second renamed-from hint for the same {} (the first is at {}:{}): keep one",
                    if hint.column.is_some() {
                        "column"
                    } else {
                        "table"
                    },
                    first.file.display(),
                    first.line
                ),
            ));
            continue;
        }
        // A column's old name is unique within its table; a table's within the schema.
        let table_key = match hint.kind {
            RenameKind::Column => hint.table.as_str(),
            RenameKind::Table => "",
        };
        let from_schema = match hint.kind {
            RenameKind::Column => hint.schema.as_deref(),
            RenameKind::Table => hint.from_schema.as_deref().or(hint.schema.as_deref()),
        };
        let from = (hint.kind, from_schema, table_key, hint.from.as_str());
        if let Some(first) = seen_from.insert(from, hint) {
            problems.push(problem(
                hint,
                format!(
                    "{} is named as the old name twice (also at {}:{}): only one can have been renamed from it",
                    hint.from,
                    first.file.display(),
                    first.line
                ),
            ));
        }
    }
}

/// Byte offset to 1-based line, by binary search over the line starts.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|(_, c)| *c == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex { starts }
    }

    fn line(&self, offset: usize) -> usize {
        self.starts.partition_point(|&start| start <= offset)
    }
}

/// Runs the files' statements on `session` (a scratch database), one by one, so a failure
/// names its file and line. The session is reset between files. A `COPY ... FROM stdin`
/// (or `TO STDOUT`) is refused: a schema holds no rows, and there is no client to
/// stream them.
pub async fn apply_files(session: &Session, files: &[SchemaFile]) -> Result<()> {
    for (n, file) in files.iter().enumerate() {
        let shown = file.path.display().to_string();
        let split = split::split_as(&file.text, split::Rules::default()).map_err(|e| {
            Error::InvalidSchema(vec![FileProblem::new(&shown, Some(e.line), e.message)])
        })?;
        if n > 0 {
            session
                .execute("RESET ALL; RESET SESSION AUTHORIZATION; RESET ROLE")
                .await?;
        }
        for statement in &split.statements {
            let problem = |line: usize, message: String| {
                Error::InvalidSchema(vec![FileProblem::new(&shown, Some(line), message)])
            };
            if statement.copy.is_some() || statement.copy_to_stdout() {
                return Err(problem(
                    statement.line,
                    "COPY with stdin or stdout in a schema file: the desired schema is DDL, its \
                     rows are not compared; remove the COPY (and its data)"
                        .to_string(),
                ));
            }
            if let Err(e) = session.client.simple_query(statement.sql).await {
                let Some(db) = e.as_db_error() else {
                    return Err(session::classify(e));
                };
                if session::is_connection_lost(&e) {
                    return Err(session::classify(e));
                }
                // The server's position (in characters) refines the line.
                let line = match db.position() {
                    Some(tokio_postgres::error::ErrorPosition::Original(at)) => {
                        statement.line
                            + statement
                                .sql
                                .chars()
                                .take((*at as usize).saturating_sub(1))
                                .filter(|&c| c == '\n')
                                .count()
                    }
                    _ => statement.line,
                };
                let mut message = format!(
                    "the schema file {shown}:{line} fails on a scratch database: {} (SQLSTATE {})",
                    db.message(),
                    db.code().code()
                );
                if let Some(hint) = db.hint() {
                    message.push_str("; hint: ");
                    message.push_str(hint);
                }
                return Err(problem(line, message));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "schemagate-desired-test-{}-{n}-{name}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("migrations")).unwrap();
            TempDir(dir)
        }
        fn migrations(&self) -> PathBuf {
            self.0.join("migrations")
        }
        fn write(&self, name: &str, text: &[u8]) -> PathBuf {
            let path = self.0.join(name);
            if let Some(parent) = path.parent() {
                fs::create_dir_all(parent).unwrap();
            }
            fs::write(&path, text).unwrap();
            path
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn problems(error: Error) -> Vec<FileProblem> {
        match error {
            Error::InvalidSchema(problems) => problems,
            other => panic!("expected InvalidSchema, got {other:?}"),
        }
    }

    fn usage(error: Error) -> String {
        match error {
            Error::Usage(message) => message,
            other => panic!("expected Usage, got {other:?}"),
        }
    }

    #[test]
    fn default_is_schema_sql_beside_the_migrations() {
        let dir = TempDir::new("default-file");
        dir.write("schema.sql", b"CREATE TABLE a (id int);\n");
        dir.write("schema/01.sql", b"CREATE TABLE b (id int);\n");
        let files = load(None, &dir.migrations()).unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].path, dir.0.join("schema.sql"));
        assert_eq!(files[0].text, "CREATE TABLE a (id int);\n");
    }

    #[test]
    fn default_folder_gives_its_sql_files_in_byte_order() {
        let dir = TempDir::new("default-folder");
        dir.write("schema/b.sql", b"-- b\n");
        dir.write("schema/A.sql", b"-- A\n");
        dir.write("schema/a.sql", b"-- a\n");
        dir.write("schema/10_x.sql", b"-- 10\n");
        dir.write("schema/README.md", b"not sql");
        dir.write("schema/.hidden.sql", b"-- hidden");
        dir.write("schema/upper.SQL", b"-- skipped");
        let files = load(None, &dir.migrations()).unwrap();
        let names: Vec<String> = files
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["10_x.sql", "A.sql", "a.sql", "b.sql"]);
    }

    #[test]
    fn explicit_file_or_folder_wins() {
        let dir = TempDir::new("explicit");
        dir.write("schema.sql", b"-- default\n");
        let other = dir.write("elsewhere/desired.sql", b"-- explicit\n");
        let files = load(Some(&other), &dir.migrations()).unwrap();
        assert_eq!(files[0].text, "-- explicit\n");
        dir.write("folder/1.sql", b"-- one\n");
        let files = load(Some(&dir.0.join("folder")), &dir.migrations()).unwrap();
        assert_eq!(files[0].text, "-- one\n");
    }

    #[test]
    fn beside_handles_relative_and_dot_paths() {
        assert_eq!(beside(Path::new("migrations")), PathBuf::from("."));
        assert_eq!(beside(Path::new("db/migrations")), PathBuf::from("db"));
        assert_eq!(beside(Path::new("/srv/migrations/")), PathBuf::from("/srv"));
        assert_eq!(beside(Path::new(".")), PathBuf::from("./.."));
        assert_eq!(beside(Path::new("a/..")), PathBuf::from("a/../.."));
    }

    #[test]
    fn missing_names_both_defaults_and_the_setting() {
        let dir = TempDir::new("missing");
        let message = usage(load(None, &dir.migrations()).unwrap_err());
        assert!(
            message.contains(&dir.0.join("schema.sql").display().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&dir.0.join("schema").display().to_string()),
            "{message}"
        );
        assert!(message.contains("--schema-file"), "{message}");
        assert!(message.contains("SCHEMAGATE_SCHEMA_FILE"), "{message}");
        let message = usage(load(Some(&dir.0.join("nope.sql")), &dir.migrations()).unwrap_err());
        assert!(
            message.contains("nope.sql") && message.contains("--schema-file"),
            "{message}"
        );
        assert_eq!(Error::Usage(message).exit_code(), 2);
    }

    #[test]
    fn empty_folder_is_an_error() {
        let dir = TempDir::new("empty");
        dir.write("schema/README", b"x");
        let found = problems(load(None, &dir.migrations()).unwrap_err());
        assert_eq!(found.len(), 1);
        assert!(found[0].message.contains("no .sql files"), "{found:?}");
    }

    #[test]
    fn subfolder_is_an_error() {
        let dir = TempDir::new("subfolder");
        dir.write("schema/1.sql", b"-- 1\n");
        dir.write("schema/tables/users.sql", b"-- users\n");
        let found = problems(load(None, &dir.migrations()).unwrap_err());
        assert!(found[0].file.ends_with("tables"), "{found:?}");
        assert!(found[0].message.contains("move its files up"), "{found:?}");
    }

    #[test]
    fn not_utf8_and_nul_name_their_line() {
        let dir = TempDir::new("bytes");
        let latin1 = dir.write("latin1.sql", b"-- ok\n-- caf\xe9\n");
        let found = problems(load(Some(&latin1), &dir.migrations()).unwrap_err());
        assert_eq!(found[0].line, Some(2));
        assert!(found[0].message.contains("not valid UTF-8"), "{found:?}");
        let nul = dir.write("nul.sql", b"SELECT 1;\n\nSELECT '\0';\n");
        let found = problems(load(Some(&nul), &dir.migrations()).unwrap_err());
        assert_eq!(found[0].line, Some(3));
        assert!(found[0].message.contains("NUL"), "{found:?}");
        assert_eq!(Error::InvalidSchema(found).exit_code(), 3);
    }

    #[test]
    fn unreadable_file_is_an_error() {
        let dir = TempDir::new("unreadable");
        // A dangling symlink in a folder: listed, but it cannot be read.
        fs::create_dir_all(dir.0.join("schema")).unwrap();
        std::os::unix::fs::symlink(dir.0.join("gone.sql"), dir.0.join("schema/1.sql")).unwrap();
        let found = problems(load(None, &dir.migrations()).unwrap_err());
        assert!(found[0].message.contains("cannot read"), "{found:?}");
    }

    #[test]
    fn fifo_is_refused_without_opening_it() {
        let dir = TempDir::new("fifo");
        let fifo = dir.0.join("schema.sql");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo runs");
        assert!(made.success());
        let found = problems(load(None, &dir.migrations()).unwrap_err());
        assert!(found[0].message.contains("not a regular file"), "{found:?}");
    }

    fn hints_of(text: &str) -> Result<Vec<RenameHint>> {
        rename_hints(&[SchemaFile {
            path: PathBuf::from("schema.sql"),
            text: text.to_string(),
        }])
    }

    fn hint_problems(text: &str) -> Vec<FileProblem> {
        problems(hints_of(text).unwrap_err())
    }

    #[test]
    fn table_and_column_hints() {
        let text = "\
CREATE TABLE app.Users ( -- schemagate:renamed-from people
    id bigint PRIMARY KEY,
    \"Full Name\" text NOT NULL, -- schemagate:renamed-from \"Name\"
    email text -- schemagate:renamed-from Mail
        CHECK (email <> ''),
    CONSTRAINT users_email UNIQUE (email)
);
CREATE UNLOGGED TABLE IF NOT EXISTS \"Log\" -- schemagate:renamed-from old.\"Events\"
(
    at timestamptz
);
";
        let hints = hints_of(text).unwrap();
        let summary: Vec<_> = hints
            .iter()
            .map(|h| {
                (
                    h.kind,
                    h.schema.as_deref(),
                    h.table.as_str(),
                    h.column.as_deref(),
                    h.from_schema.as_deref(),
                    h.from.as_str(),
                    h.line,
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    RenameKind::Table,
                    Some("app"),
                    "users",
                    None,
                    None,
                    "people",
                    1
                ),
                (
                    RenameKind::Column,
                    Some("app"),
                    "users",
                    Some("Full Name"),
                    None,
                    "Name",
                    3
                ),
                (
                    RenameKind::Column,
                    Some("app"),
                    "users",
                    Some("email"),
                    None,
                    "mail",
                    4
                ),
                (
                    RenameKind::Table,
                    None,
                    "Log",
                    None,
                    Some("old"),
                    "Events",
                    8
                ),
            ]
        );
    }

    #[test]
    fn hints_in_strings_and_bodies_are_text() {
        let text = "\
CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$
  SELECT '-- schemagate:renamed-from x'
  -- schemagate:renamed-from y
$$;
SELECT '-- schemagate:renamed-from z';
/* -- schemagate:renamed-from w */
";
        assert_eq!(hints_of(text).unwrap(), []);
        assert_eq!(hints_of("CREATE TABLE t (a int);").unwrap(), []);
    }

    #[test]
    fn a_hint_elsewhere_is_an_error_naming_file_and_line() {
        for (text, line) in [
            ("-- schemagate:renamed-from x\nCREATE TABLE t (a int);\n", 1),
            (
                "CREATE TABLE t (\n  a int\n); -- schemagate:renamed-from x\n",
                3,
            ),
            ("CREATE INDEX i ON t (a); -- schemagate:renamed-from j\n", 1),
            (
                "CREATE TABLE t (\n  a int,\n  CONSTRAINT c CHECK (a > 0) -- schemagate:renamed-from x\n);\n",
                3,
            ),
            (
                "CREATE TABLE p PARTITION OF q -- schemagate:renamed-from x\nFOR VALUES IN (1);\n",
                1,
            ),
            (
                "CREATE VIEW v AS -- schemagate:renamed-from w\nSELECT 1;\n",
                1,
            ),
        ] {
            let found = hint_problems(text);
            assert_eq!(found.len(), 1, "{text}: {found:?}");
            assert_eq!(found[0].file, "schema.sql");
            assert_eq!(found[0].line, Some(line), "{text}");
            assert!(
                found[0]
                    .message
                    .contains("a renamed-from hint must be on a table's or a column's line"),
                "{found:?}"
            );
        }
    }

    #[test]
    fn malformed_hints_are_errors() {
        for (text, expected) in [
            (
                "CREATE TABLE t ( -- schemagate:renamed-from\n a int);",
                "names no old name",
            ),
            (
                "CREATE TABLE t ( -- schemagate:renamed-from a b\n a int);",
                "not part of a name",
            ),
            (
                "CREATE TABLE t ( -- schemagate:renamed-from a.\n a int);",
                "ends in `.`",
            ),
            (
                "CREATE TABLE t ( -- schemagate:renamed-from a.b.c\n a int);",
                "`schema.name`",
            ),
            (
                "CREATE TABLE t (\n a int -- schemagate:renamed-from s.b\n);",
                "not qualified",
            ),
            (
                "CREATE TABLE t ( -- schemagate:renamed-from T\n a int);",
                "its own name",
            ),
            (
                "CREATE TABLE t (\n a int -- schemagate:renamed-from A\n);",
                "its own name",
            ),
            (
                "CREATE TABLE t ( -- schemagate: renamed-from x\n a int);",
                "misspelled",
            ),
            (
                "CREATE TABLE t ( -- Schemagate:Renamed_From x\n a int);",
                "misspelled",
            ),
            (
                "CREATE TABLE t (a int, -- schemagate:renamed-from x\n b int);",
                "put each column",
            ),
            (
                "CREATE TABLE t (\n a int, b int -- schemagate:renamed-from x\n);",
                "put each column",
            ),
        ] {
            let found = hint_problems(text);
            assert_eq!(found.len(), 1, "{text}: {found:?}");
            assert!(found[0].message.contains(expected), "{text}: {found:?}");
        }
    }

    #[test]
    fn duplicate_hints_are_errors() {
        let found = hint_problems(
            "CREATE TABLE t (\n a int, -- schemagate:renamed-from x\n b int -- schemagate:renamed-from x\n);",
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].line, Some(3));
        assert!(
            found[0].message.contains("named as the old name twice"),
            "{found:?}"
        );
        // Across files of a folder: two tables renamed from one.
        let files = [
            SchemaFile {
                path: PathBuf::from("schema/1.sql"),
                text: "CREATE TABLE a ( -- schemagate:renamed-from old\n id int);".into(),
            },
            SchemaFile {
                path: PathBuf::from("schema/2.sql"),
                text: "CREATE TABLE b ( -- schemagate:renamed-from old\n id int);".into(),
            },
        ];
        let found = problems(rename_hints(&files).unwrap_err());
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].file, "schema/2.sql");
        assert!(found[0].message.contains("schema/1.sql:1"), "{found:?}");
    }

    #[test]
    fn unsplittable_file_is_an_error() {
        let found = hint_problems("-- schemagate:renamed-from x\nSELECT 'open;\n");
        assert_eq!(found[0].line, Some(2));
        assert!(found[0].message.contains("unterminated"), "{found:?}");
    }

    #[test]
    fn line_index_maps_offsets_to_lines() {
        let index = LineIndex::new("a\nbc\n\nd");
        assert_eq!(
            [0, 1, 2, 4, 5, 6].map(|o| index.line(o)),
            [1, 1, 2, 2, 3, 4]
        );
    }
}
