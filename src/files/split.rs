//! Splitting a migration file into top-level statements, the way psql does.
//!
//! A migration marked `transaction: false` (for `CREATE INDEX CONCURRENTLY`,
//! `VACUUM`, `ALTER SYSTEM`, ...) cannot be sent as one multi-statement
//! simple query: the server runs such a query as one implicit transaction
//! block, and those commands refuse to run inside one. So the runner sends
//! the statements one by one, and it must cut the file exactly where psql
//! would: a `;` inside a string, quoted identifier, comment, dollar quote,
//! parentheses or a `BEGIN ATOMIC` body must not end a statement.
//!
//! The lexical rules are PostgreSQL 15's (`src/backend/parser/scan.l`, and
//! psql's `psqlscan.l` for the statement-ending rules), assuming the default
//! `standard_conforming_strings = on`. Deliberate differences from psql:
//! - psql backslash commands (`\i`, `\;`, `COPY ... FROM stdin` data) and
//!   `:variable` interpolation are not supported: `\` is an ordinary
//!   character outside strings.
//! - An unterminated quote, dollar quote or block comment is an error
//!   (psql would send the rest of the file); in a migration it is a bug.
//! - Empty statements (a `;` with only whitespace or comments before it) are
//!   skipped; psql sends them and the server ignores them.
//! - String continuation (`E'a'` newline `'b'`) follows the server. psql
//!   reads its input line by line and never sees a continuation, so for
//!   `E'x'` newline `'\';'` psql cuts inside the literal and the server then
//!   rejects what psql sent.

use std::fmt;
use std::ops::Range;

/// One top-level statement of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement<'a> {
    /// From the statement's first token through its terminating `;`, or
    /// through its last token when the input ends without `;`. Comments
    /// inside the statement are kept; those before and after are not.
    pub sql: &'a str,
    /// 1-based line (counting `\n`) of the first token in the input.
    pub line: usize,
    /// Byte offset of the first token in the input.
    pub offset: usize,
    /// The inline data of a `COPY ... FROM STDIN` statement.
    pub copy: Option<CopyData<'a>>,
}

/// The data lines after a `COPY ... FROM STDIN;` (what pg_dump writes), never lexed:
/// they may hold quotes, `;` and `--`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyData<'a> {
    /// From the line after the statement's `;` up to, not including, the `\.` line;
    /// each data line keeps its `\n`.
    pub data: &'a str,
    /// Byte offset just after the `\.` line and its newline.
    pub end: usize,
}

impl Statement<'_> {
    /// The first token, uppercased, if it is an identifier or keyword
    /// (`BEGIN`, `COMMIT`, `START`, `CREATE`, ...). Lets a caller spot
    /// transaction control in a transactional migration. Comments are
    /// skipped, and a quoted identifier such as `"begin"` gives `None`.
    pub fn first_keyword(&self) -> Option<String> {
        let mut lexer = Lexer::new(self.sql.as_bytes(), false);
        match lexer.next_token() {
            Ok(Some(Token {
                kind: Kind::Ident,
                start,
                end,
            })) => self.sql.get(start..end).map(str::to_ascii_uppercase),
            _ => None,
        }
    }

    /// The command, if this statement ends, prepares or opens a transaction: BEGIN,
    /// START TRANSACTION, COMMIT, END, ROLLBACK, ABORT, PREPARE TRANSACTION, COMMIT
    /// PREPARED, ROLLBACK PREPARED (with WORK, TRANSACTION, AND [NO] CHAIN or not).
    /// `ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] x`, SAVEPOINT, RELEASE and
    /// `PREPARE name AS ...` stay inside the transaction: `None`. Words are read as the
    /// server reads them: any case, comments between them.
    pub fn transaction_control(&self) -> Option<&'static str> {
        let b = self.sql.as_bytes();
        let mut lexer = Lexer::new(b, false);
        let mut word = || -> Option<(Kind, &[u8])> {
            let tok = lexer.next_token().ok()??;
            Some((tok.kind, b.get(tok.start..tok.end)?))
        };
        let is = |t: Option<(Kind, &[u8])>, w: &str| {
            t.is_some_and(|(k, text)| k == Kind::Ident && text.eq_ignore_ascii_case(w.as_bytes()))
        };
        let first = word();
        let second = word();
        let keyword = |w: &str| is(first, w);
        if keyword("BEGIN") {
            Some("BEGIN")
        } else if keyword("START") && is(second, "TRANSACTION") {
            Some("START TRANSACTION")
        } else if keyword("COMMIT") {
            Some(if is(second, "PREPARED") {
                "COMMIT PREPARED"
            } else {
                "COMMIT"
            })
        } else if keyword("END") {
            Some("END")
        } else if keyword("ABORT") {
            Some("ABORT")
        } else if keyword("ROLLBACK") {
            if is(second, "PREPARED") {
                return Some("ROLLBACK PREPARED");
            }
            let next = if is(second, "WORK") || is(second, "TRANSACTION") {
                word()
            } else {
                second
            };
            (!is(next, "TO")).then_some("ROLLBACK")
        } else if keyword("PREPARE") && is(second, "TRANSACTION") {
            // `PREPARE transaction AS ...` or `PREPARE transaction (int) AS ...`
            // names a prepared statement.
            let third = word();
            let statement = is(third, "AS") || third.is_some_and(|(k, _)| k == Kind::OpenParen);
            (!statement).then_some("PREPARE TRANSACTION")
        } else {
            None
        }
    }

    /// Whether this is `COPY ... TO STDOUT` (also `COPY (query) TO STDOUT`), which needs
    /// a client to receive the rows.
    pub fn copy_to_stdout(&self) -> bool {
        let b = self.sql.as_bytes();
        let mut lexer = Lexer::new(b, false);
        let mut state = StatementState::default();
        while let Ok(Some(tok)) = lexer.next_token() {
            state.token(tok.kind, b.get(tok.start..tok.end).unwrap_or_default());
            match state.copy {
                CopyState::ToStdout => return true,
                CopyState::No | CopyState::FromStdin => return false,
                _ => {}
            }
        }
        false
    }
}

/// Why the input could not be split, with the line where the offending
/// construct opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitError {
    pub line: usize,
    pub message: String,
    /// An unterminated quote, dollar quote, identifier or comment: everything after its
    /// opening became part of it.
    pub unclosed: bool,
}

impl fmt::Display for SplitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for SplitError {}

/// How to cut the input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rules {
    /// Cut as the server cuts a multi-statement simple query, not as psql does: a
    /// SQL-standard body opens only at the two keywords `BEGIN ATOMIC` (psql counts any
    /// `BEGIN` after CREATE FUNCTION, a function *named* begin included).
    pub server: bool,
    /// Read `'...'` as `standard_conforming_strings = off` does: backslash escapes the
    /// next byte, as in `E'...'`.
    pub backslash_quotes: bool,
}

/// A split: the statements, and the lines of psql meta-commands that were skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split<'a> {
    pub statements: Vec<Statement<'a>>,
    /// `\restrict KEY` / `\unrestrict KEY` (pg_dump writes them to protect psql; they
    /// mean nothing to a migration): from the backslash to the end of its line, without
    /// the newline.
    pub meta_lines: Vec<Range<usize>>,
}

/// Splits `sql` into its top-level statements, in input order, as psql does.
///
/// Input with no statement (only whitespace, comments and empty `;`)
/// gives an empty `Vec`.
pub fn split(sql: &str) -> Result<Vec<Statement<'_>>, SplitError> {
    split_as(sql, Rules::default()).map(|s| s.statements)
}

/// The byte ranges of the `\restrict` / `\unrestrict` lines that [`split`] skips, so a
/// runner sending the text as one query can blank them out. Empty if `sql` does not split.
pub fn meta_command_lines(sql: &str) -> Vec<Range<usize>> {
    split_as(sql, Rules::default())
        .map(|s| s.meta_lines)
        .unwrap_or_default()
}

/// The psql meta-commands that pg_dump writes and that are skipped.
const SKIPPED_META: [&[u8]; 2] = [b"restrict", b"unrestrict"];

/// Splits `sql` under `rules`.
pub fn split_as(sql: &str, rules: Rules) -> Result<Split<'_>, SplitError> {
    let bytes = sql.as_bytes();
    let mut lexer = Lexer::new(bytes, rules.backslash_quotes);
    let mut lines = LineCounter::default();
    let mut out = Split::default();
    let mut state = StatementState {
        server: rules.server,
        ..StatementState::default()
    };
    // Offset of the current statement's first token, once it has one.
    let mut current: Option<usize> = None;
    let mut last_end = 0;

    loop {
        let tok = match lexer.next_token() {
            Ok(Some(tok)) => tok,
            Ok(None) => break,
            Err(unclosed) => return Err(unclosed.into_error(bytes)),
        };
        if current.is_none() && bytes.get(tok.start) == Some(&b'\\') {
            let line_end = find(bytes, tok.start, |c| c == b'\n').unwrap_or(bytes.len());
            let name_end = skip_while(bytes, tok.start + 1, |c| !c.is_ascii_whitespace());
            let name = bytes.get(tok.start + 1..name_end).unwrap_or_default();
            if SKIPPED_META.contains(&name) {
                out.meta_lines.push(tok.start..line_end);
                lexer.pos = line_end;
                continue;
            }
            return Err(SplitError {
                line: lines.line_at(bytes, tok.start),
                message: format!(
                    "psql meta-command `\\{}` at the start of a statement: psql meta-commands \
                     are not SQL; schemagate sends SQL to the server, so remove it (for \\i, \
                     put the file's SQL here; for \\copy, COPY to or from a server file)",
                    String::from_utf8_lossy(name)
                ),
                unclosed: false,
            });
        }
        let start = *current.get_or_insert(tok.start);
        last_end = tok.end;
        match tok.kind {
            Kind::Semicolon if state.ends_statement() => {
                if start < tok.start {
                    let mut statement = statement(sql, &mut lines, start, tok.end)?;
                    if state.copy == CopyState::FromStdin {
                        let data = copy_data(sql, &mut lines, &statement, tok.end)?;
                        lexer.pos = data.end;
                        last_end = data.end;
                        statement.copy = Some(data);
                    }
                    out.statements.push(statement);
                }
                current = None;
                state = StatementState {
                    server: rules.server,
                    ..StatementState::default()
                };
            }
            kind => state.token(kind, bytes.get(tok.start..tok.end).unwrap_or_default()),
        }
    }
    if let Some(start) = current {
        out.statements
            .push(statement(sql, &mut lines, start, last_end)?);
    }
    Ok(out)
}

/// The inline data after a `COPY ... FROM STDIN` statement ending at `after`: the rest
/// of its line must be empty, and a line `\.` must end the data.
fn copy_data<'a>(
    sql: &'a str,
    lines: &mut LineCounter,
    statement: &Statement<'a>,
    after: usize,
) -> Result<CopyData<'a>, SplitError> {
    let b = sql.as_bytes();
    let line_end = find(b, after, |c| c == b'\n');
    let rest = b
        .get(after..line_end.unwrap_or(b.len()))
        .unwrap_or_default();
    if !rest.iter().all(|c| matches!(c, b' ' | b'\t' | b'\r')) {
        return Err(SplitError {
            line: statement.line + count_newlines(statement.sql.as_bytes()),
            message: "text after `COPY ... FROM stdin;` on the same line: its data starts on the \
                      next line and ends at a line `\\.`, so move that text to a line of its own \
                      after the `\\.` line"
                .to_string(),
            unclosed: false,
        });
    }
    let data_start = line_end.map_or(b.len(), |e| e + 1);
    let mut at = data_start;
    while at < b.len() {
        let end = find(b, at, |c| c == b'\n').unwrap_or(b.len());
        let line = b.get(at..end).unwrap_or_default();
        if line == b"\\." || line == b"\\.\r" {
            return Ok(CopyData {
                data: sql.get(data_start..at).unwrap_or_default(),
                end: (end + 1).min(b.len()),
            });
        }
        at = end + 1;
    }
    Err(SplitError {
        line: lines.line_at(b, statement.offset),
        message: "`COPY ... FROM stdin` with no line `\\.` ending its data: the rest of the \
                  file would be read as rows; add a line holding only `\\.` after the data"
            .to_string(),
        unclosed: false,
    })
}

fn statement<'a>(
    sql: &'a str,
    lines: &mut LineCounter,
    start: usize,
    end: usize,
) -> Result<Statement<'a>, SplitError> {
    let line = lines.line_at(sql.as_bytes(), start);
    // Tokens start and end on ASCII bytes or after whole runs of non-ASCII
    // bytes, so this cannot fail; report it rather than panic if it ever does.
    let text = sql.get(start..end).ok_or_else(|| SplitError {
        line,
        message: "internal error: statement boundary inside a UTF-8 character".to_string(),
        unclosed: false,
    })?;
    Ok(Statement {
        sql: text,
        line,
        offset: start,
        copy: None,
    })
}

/// Counts lines incrementally; statements come in order, so the whole
/// input is counted once.
#[derive(Default)]
struct LineCounter {
    pos: usize,
    newlines: usize,
}

impl LineCounter {
    fn line_at(&mut self, bytes: &[u8], offset: usize) -> usize {
        if let Some(seen) = bytes.get(self.pos..offset) {
            self.newlines += count_newlines(seen);
            self.pos = offset;
        }
        self.newlines + 1
    }
}

fn count_newlines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&c| c == b'\n').count()
}

/// Per-statement state: parenthesis depth, SQL-standard function bodies (PG14+), and
/// whether the statement is a COPY with inline data.
///
/// psql's rule (psqlscan.l): when a statement starts with CREATE [OR REPLACE]
/// FUNCTION|PROCEDURE, then at parenthesis depth 0 `BEGIN` opens a block, `CASE` opens one
/// only inside a block and `END` closes one; `;` inside a block does not end the
/// statement. The quirks (first letters only, all identifiers counted) are psql's own and
/// kept so that we cut exactly where psql does. The server's rule (`server`): a body
/// opens only at `BEGIN ATOMIC`, and CASE ... END nests inside it.
#[derive(Default)]
struct StatementState {
    server: bool,
    paren_depth: usize,
    begin_depth: usize,
    identifier_count: usize,
    /// First letter of each of the first four identifiers, when that
    /// identifier is one of CREATE, OR, REPLACE, FUNCTION, PROCEDURE.
    leading: [u8; 4],
    /// The previous token was the identifier BEGIN (server rule).
    after_begin: bool,
    copy: CopyState,
}

/// Reading `COPY ... FROM STDIN` / `TO STDOUT` off the tokens: the first word at depth 0
/// that is FROM or TO, then the word after it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum CopyState {
    #[default]
    First,
    No,
    Direction,
    AfterFrom,
    AfterTo,
    FromStdin,
    ToStdout,
}

impl StatementState {
    fn ends_statement(&self) -> bool {
        self.paren_depth == 0 && self.begin_depth == 0
    }

    fn token(&mut self, kind: Kind, text: &[u8]) {
        let word = |w: &[u8]| kind == Kind::Ident && text.eq_ignore_ascii_case(w);
        self.copy = match self.copy {
            CopyState::First if word(b"copy") => CopyState::Direction,
            CopyState::First => CopyState::No,
            CopyState::Direction if self.paren_depth == 0 && word(b"from") => CopyState::AfterFrom,
            CopyState::Direction if self.paren_depth == 0 && word(b"to") => CopyState::AfterTo,
            CopyState::AfterFrom if word(b"stdin") => CopyState::FromStdin,
            CopyState::AfterTo if word(b"stdout") => CopyState::ToStdout,
            CopyState::AfterFrom | CopyState::AfterTo => CopyState::No,
            other => other,
        };
        match kind {
            Kind::OpenParen => self.paren_depth += 1,
            Kind::CloseParen => self.paren_depth = self.paren_depth.saturating_sub(1),
            Kind::Ident if self.server => self.server_identifier(text),
            Kind::Ident => self.identifier(text),
            Kind::Semicolon | Kind::Other => {}
        }
        if kind != Kind::Ident {
            self.after_begin = false;
        }
    }

    fn server_identifier(&mut self, word: &[u8]) {
        let opens = (word.eq_ignore_ascii_case(b"atomic") && self.after_begin)
            || (self.begin_depth >= 1 && word.eq_ignore_ascii_case(b"case"));
        if opens {
            self.begin_depth += 1;
        } else if self.begin_depth >= 1 && word.eq_ignore_ascii_case(b"end") {
            self.begin_depth -= 1;
        }
        self.after_begin = word.eq_ignore_ascii_case(b"begin");
    }

    fn identifier(&mut self, word: &[u8]) {
        const LEAD_WORDS: [&str; 5] = ["create", "function", "procedure", "or", "replace"];
        if LEAD_WORDS
            .iter()
            .any(|w| word.eq_ignore_ascii_case(w.as_bytes()))
        {
            if let (Some(slot), Some(first)) =
                (self.leading.get_mut(self.identifier_count), word.first())
            {
                *slot = first.to_ascii_lowercase();
            }
        }
        self.identifier_count += 1;

        let l = self.leading;
        let routine = l[0] == b'c'
            && (l[1] == b'f'
                || l[1] == b'p'
                || (l[1] == b'o' && l[2] == b'r' && (l[3] == b'f' || l[3] == b'p')));
        if !routine || self.paren_depth != 0 {
            return;
        }
        if word.eq_ignore_ascii_case(b"begin") {
            self.begin_depth += 1;
        } else if word.eq_ignore_ascii_case(b"case") {
            // CASE also ends with END; it only matters inside a block.
            if self.begin_depth >= 1 {
                self.begin_depth += 1;
            }
        } else if word.eq_ignore_ascii_case(b"end") {
            self.begin_depth = self.begin_depth.saturating_sub(1);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    Semicolon,
    OpenParen,
    CloseParen,
    /// Anything else the splitter need not tell apart: literals, quoted
    /// identifiers, numbers, parameters, operators, punctuation.
    Other,
}

#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// A construct that was opened at byte `at` and never closed.
#[derive(Debug)]
struct Unclosed {
    at: usize,
    what: What,
}

#[derive(Debug)]
enum What {
    String(StrKind),
    QuotedIdent,
    /// The delimiter is `bytes[at..delim_end]`.
    DollarQuote {
        delim_end: usize,
    },
    Comment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrKind {
    /// '...', N'...' and U&'...': only `''` is special.
    Plain,
    /// E'...': backslash escapes the next byte.
    Escape,
    Bit,
    Hex,
}

impl Unclosed {
    fn into_error(self, bytes: &[u8]) -> SplitError {
        let line = count_newlines(bytes.get(..self.at).unwrap_or_default()) + 1;
        let what = match self.what {
            What::String(StrKind::Plain) => "unterminated quoted string".to_string(),
            What::String(StrKind::Escape) => "unterminated escape string E'...'".to_string(),
            What::String(StrKind::Bit) => "unterminated bit-string literal B'...'".to_string(),
            What::String(StrKind::Hex) => {
                "unterminated hexadecimal string literal X'...'".to_string()
            }
            What::QuotedIdent => "unterminated quoted identifier".to_string(),
            What::DollarQuote { delim_end } => format!(
                "unterminated dollar-quoted string {}",
                String::from_utf8_lossy(bytes.get(self.at..delim_end).unwrap_or_default())
            ),
            What::Comment => "unterminated /* comment".to_string(),
        };
        SplitError {
            line,
            message: format!("{what} (opened here)"),
            unclosed: true,
        }
    }
}

/// Yields the tokens that matter for splitting, skipping whitespace and
/// comments. Works on bytes: every delimiter is ASCII, and non-ASCII bytes
/// only ever occur inside identifiers, literals and comments.
struct Lexer<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// `'...'` under `standard_conforming_strings = off`.
    backslash_quotes: bool,
}

impl<'a> Lexer<'a> {
    fn new(bytes: &'a [u8], backslash_quotes: bool) -> Self {
        Lexer {
            bytes,
            pos: 0,
            backslash_quotes,
        }
    }

    fn next_token(&mut self) -> Result<Option<Token>, Unclosed> {
        let b = self.bytes;
        let start = skip_trivia(b, self.pos)?;
        let Some(&c) = b.get(start) else {
            self.pos = start;
            return Ok(None);
        };
        let next = b.get(start + 1).copied();
        let (kind, end) = match c {
            b';' => (Kind::Semicolon, start + 1),
            b'(' => (Kind::OpenParen, start + 1),
            b')' => (Kind::CloseParen, start + 1),
            b'\'' => (Kind::Other, scan_string(b, start, start + 1, self.plain())?),
            b'"' => (Kind::Other, scan_quoted_ident(b, start, start + 1)?),
            b'$' => (Kind::Other, scan_dollar(b, start)?),
            b'0'..=b'9' => (Kind::Other, scan_number(b, start)),
            b'.' if next.is_some_and(|n| n.is_ascii_digit()) => {
                (Kind::Other, scan_number(b, start))
            }
            _ if is_ident_start(c) => scan_word(b, start, c, next)?,
            // Operators and punctuation: one byte at a time, so that `--` or
            // `/*` inside an operator starts a comment, as scan.l cuts them.
            _ => (Kind::Other, start + 1),
        };
        self.pos = end;
        Ok(Some(Token { kind, start, end }))
    }

    fn plain(&self) -> StrKind {
        if self.backslash_quotes {
            StrKind::Escape
        } else {
            StrKind::Plain
        }
    }
}

/// An identifier or keyword, or a literal with a letter prefix.
fn scan_word(b: &[u8], start: usize, c: u8, next: Option<u8>) -> Result<(Kind, usize), Unclosed> {
    let quote = Some(b'\'');
    Ok(match c.to_ascii_lowercase() {
        b'e' if next == quote => (
            Kind::Other,
            scan_string(b, start, start + 2, StrKind::Escape)?,
        ),
        b'b' if next == quote => (Kind::Other, scan_string(b, start, start + 2, StrKind::Bit)?),
        b'x' if next == quote => (Kind::Other, scan_string(b, start, start + 2, StrKind::Hex)?),
        // psql eats only the N of N'...'; the quote then starts a plain string.
        b'n' if next == quote => (Kind::Other, start + 1),
        b'u' if next == Some(b'&') => match b.get(start + 2) {
            Some(b'\'') => (
                Kind::Other,
                scan_string(b, start, start + 3, StrKind::Plain)?,
            ),
            Some(b'"') => (Kind::Other, scan_quoted_ident(b, start, start + 3)?),
            // scan.l gives back all but the U, which is then not an identifier.
            _ => (Kind::Other, start + 1),
        },
        _ => (Kind::Ident, skip_while(b, start + 1, is_ident_cont)),
    })
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_cont(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// Dollar-quote tags are identifiers without `$`.
fn is_tag_cont(c: u8) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

fn skip_while(b: &[u8], mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
    while b.get(i).is_some_and(|&c| pred(c)) {
        i += 1;
    }
    i
}

/// Finds the first byte at or after `from` matching `pred`.
fn find(b: &[u8], from: usize, pred: impl Fn(u8) -> bool) -> Option<usize> {
    b.get(from..)?
        .iter()
        .position(|&c| pred(c))
        .map(|rel| from + rel)
}

/// Skips whitespace and comments. Whitespace is scan.l's `[ \t\n\r\f]`
/// (PG15: no `\v`); `--` runs to `\n` or `\r`; `/* */` nests.
fn skip_trivia(b: &[u8], mut i: usize) -> Result<usize, Unclosed> {
    loop {
        match b.get(i) {
            Some(b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') => i += 1,
            Some(b'-') if b.get(i + 1) == Some(&b'-') => {
                i = find(b, i + 2, |c| c == b'\n' || c == b'\r').unwrap_or(b.len());
            }
            Some(b'/') if b.get(i + 1) == Some(&b'*') => i = skip_block_comment(b, i)?,
            _ => return Ok(i),
        }
    }
}

fn skip_block_comment(b: &[u8], open: usize) -> Result<usize, Unclosed> {
    let mut depth = 0usize;
    let mut i = open + 2;
    loop {
        let Some(at) = find(b, i, |c| c == b'*' || c == b'/') else {
            return Err(Unclosed {
                at: open,
                what: What::Comment,
            });
        };
        match (b.get(at), b.get(at + 1)) {
            (Some(b'/'), Some(b'*')) => {
                depth += 1;
                i = at + 2;
            }
            (Some(b'*'), Some(b'/')) => {
                if depth == 0 {
                    return Ok(at + 2);
                }
                depth -= 1;
                i = at + 2;
            }
            _ => i = at + 1,
        }
    }
}

/// Scans a quoted string whose body starts at `body`, including any
/// continuation (closing quote, whitespace with a newline, opening quote),
/// which keeps the string's kind. Returns the end of the literal.
fn scan_string(b: &[u8], open: usize, body: usize, kind: StrKind) -> Result<usize, Unclosed> {
    let escapes = kind == StrKind::Escape;
    let mut i = body;
    loop {
        let Some(at) = find(b, i, |c| c == b'\'' || (escapes && c == b'\\')) else {
            return Err(Unclosed {
                at: open,
                what: What::String(kind),
            });
        };
        if b.get(at) == Some(&b'\\') {
            // The escaped byte is never the closing quote.
            i = at + 2;
        } else if b.get(at + 1) == Some(&b'\'') {
            i = at + 2;
        } else if let Some(reopen) = quote_continuation(b, at + 1) {
            i = reopen + 1;
        } else {
            return Ok(at + 1);
        }
    }
}

/// scan.l's `{quotecontinue}`: after a closing quote, whitespace and `--`
/// comments containing at least one newline, then a quote, continue the
/// literal. Returns the position of that quote.
fn quote_continuation(b: &[u8], mut i: usize) -> Option<usize> {
    let mut newline = false;
    loop {
        match b.get(i)? {
            b' ' | b'\t' | b'\x0c' => i += 1,
            b'\n' | b'\r' => {
                newline = true;
                i += 1;
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = find(b, i + 2, |c| c == b'\n' || c == b'\r')?;
            }
            b'\'' if newline => return Some(i),
            _ => return None,
        }
    }
}

fn scan_quoted_ident(b: &[u8], open: usize, body: usize) -> Result<usize, Unclosed> {
    let mut i = body;
    loop {
        let Some(at) = find(b, i, |c| c == b'"') else {
            return Err(Unclosed {
                at: open,
                what: What::QuotedIdent,
            });
        };
        if b.get(at + 1) == Some(&b'"') {
            i = at + 2;
        } else {
            return Ok(at + 1);
        }
    }
}

/// `$n` parameter, `$tag$ ... $tag$` dollar quote, or a lone `$`.
fn scan_dollar(b: &[u8], start: usize) -> Result<usize, Unclosed> {
    if b.get(start + 1).is_some_and(u8::is_ascii_digit) {
        let i = skip_while(b, start + 1, |c| c.is_ascii_digit());
        return Ok(skip_junk(b, i));
    }
    let Some(delim_end) = dollar_delimiter(b, start) else {
        // scan.l gives back all but the `$`; what follows is lexed afresh.
        return Ok(start + 1);
    };
    let delim = b.get(start..delim_end).unwrap_or_default();
    // Every `$` in the body may start the closing delimiter; the tag holds
    // no `$`, so the comparisons add up to linear time.
    let mut i = delim_end;
    loop {
        let Some(at) = find(b, i, |c| c == b'$') else {
            return Err(Unclosed {
                at: start,
                what: What::DollarQuote { delim_end },
            });
        };
        if b.get(at..).is_some_and(|rest| rest.starts_with(delim)) {
            return Ok(at + delim.len());
        }
        i = at + 1;
    }
}

/// End of a `$tag$` or `$$` delimiter starting at `start`, if there is one.
/// The tag cannot start with a digit.
fn dollar_delimiter(b: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if b.get(i).is_some_and(|&c| is_ident_start(c)) {
        i = skip_while(b, i + 1, is_tag_cont);
    }
    (b.get(i) == Some(&b'$')).then_some(i + 1)
}

/// PG15 numbers: integer, decimal or real, plus the error tokens that
/// decide where the next token starts: `1..` is `1` then `..`; `1e+`
/// without digits is one token; letters glued to a number or parameter
/// (`1abc`, `1e'`, `$1a$$`) are "trailing junk" that swallows an
/// identifier, `$` included.
fn scan_number(b: &[u8], start: usize) -> usize {
    let mut i = skip_while(b, start, |c| c.is_ascii_digit());
    let has_int = i > start;
    if b.get(i) == Some(&b'.') {
        if has_int && b.get(i + 1) == Some(&b'.') {
            return i;
        }
        i = skip_while(b, i + 1, |c| c.is_ascii_digit());
    }
    if matches!(b.get(i), Some(b'e' | b'E')) && matches!(b.get(i + 1), Some(b'+' | b'-')) {
        if !b.get(i + 2).is_some_and(u8::is_ascii_digit) {
            return i + 2;
        }
        i = skip_while(b, i + 2, |c| c.is_ascii_digit());
    }
    // An unsigned exponent (`1e5`) spans the same bytes as junk would.
    skip_junk(b, i)
}

fn skip_junk(b: &[u8], i: usize) -> usize {
    if b.get(i).is_some_and(|&c| is_ident_start(c)) {
        skip_while(b, i + 1, is_ident_cont)
    } else {
        i
    }
}

/// What a [`Lexeme`] is, for callers that look inside statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LexemeKind {
    /// An identifier or keyword, unquoted.
    Word,
    /// `"..."` (not `U&"..."`, which is `Other`).
    QuotedIdent,
    Semicolon,
    OpenParen,
    CloseParen,
    Comma,
    Dot,
    /// A `--` comment, from the dashes to the end of its line (without the newline).
    LineComment,
    /// Literals, numbers, parameters, operators and other punctuation.
    Other,
}

/// One token or `--` comment of the input, as byte offsets into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexeme {
    pub kind: LexemeKind,
    pub start: usize,
    pub end: usize,
}

/// Every token and `--` comment of `sql`, in order, read with the same rules as
/// [`split`] (block comments and whitespace are skipped; backslash is an ordinary byte).
/// For code that needs to see the words of a statement and the comments beside them,
/// such as the desired schema's `-- schemagate:renamed-from` hints.
pub fn lexemes(sql: &str) -> Result<Vec<Lexeme>, SplitError> {
    let bytes = sql.as_bytes();
    let mut lexer = Lexer::new(bytes, false);
    let mut out = Vec::new();
    let mut trivia_start = 0;
    loop {
        let tok = lexer
            .next_token()
            .map_err(|unclosed| unclosed.into_error(bytes))?;
        let trivia_end = tok.map_or(bytes.len(), |t| t.start);
        line_comments(bytes, trivia_start, trivia_end, &mut out);
        let Some(tok) = tok else { break };
        let text = bytes.get(tok.start..tok.end).unwrap_or_default();
        let kind = match tok.kind {
            Kind::Ident => LexemeKind::Word,
            Kind::Semicolon => LexemeKind::Semicolon,
            Kind::OpenParen => LexemeKind::OpenParen,
            Kind::CloseParen => LexemeKind::CloseParen,
            Kind::Other => match text {
                [b'"', ..] => LexemeKind::QuotedIdent,
                b"," => LexemeKind::Comma,
                b"." => LexemeKind::Dot,
                _ => LexemeKind::Other,
            },
        };
        out.push(Lexeme {
            kind,
            start: tok.start,
            end: tok.end,
        });
        trivia_start = tok.end;
    }
    Ok(out)
}

/// The `--` comments in `b[from..to]`, which holds only whitespace and comments (the
/// lexer skipped it): a block comment may hold `--` and is stepped over whole.
fn line_comments(b: &[u8], from: usize, to: usize, out: &mut Vec<Lexeme>) {
    let mut i = from;
    while i < to {
        match (b.get(i), b.get(i + 1)) {
            (Some(b'-'), Some(b'-')) => {
                let end = find(b, i + 2, |c| c == b'\n' || c == b'\r')
                    .unwrap_or(b.len())
                    .min(to);
                out.push(Lexeme {
                    kind: LexemeKind::LineComment,
                    start: i,
                    end,
                });
                i = end;
            }
            (Some(b'/'), Some(b'*')) => match skip_block_comment(b, i) {
                Ok(end) => i = end,
                Err(_) => return,
            },
            _ => i += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(sql: &str) -> Vec<&str> {
        let stmts = split(sql).unwrap_or_else(|e| panic!("split failed: {e}\ninput: {sql:?}"));
        check_invariants(sql, &stmts);
        stmts.iter().map(|s| s.sql).collect()
    }

    fn err(sql: &str) -> SplitError {
        match split(sql) {
            Ok(stmts) => panic!("expected an error, got {stmts:?}"),
            Err(e) => e,
        }
    }

    /// Offsets, lines and slices agree with the input, in order.
    fn check_invariants(sql: &str, stmts: &[Statement<'_>]) {
        let mut prev_end = 0;
        for s in stmts {
            assert!(s.offset >= prev_end, "overlap in {sql:?}");
            assert_eq!(&sql[s.offset..s.offset + s.sql.len()], s.sql);
            assert_eq!(s.line, sql[..s.offset].matches('\n').count() + 1);
            assert!(!s.sql.is_empty());
            prev_end = s.offset + s.sql.len();
        }
    }

    fn first_keywords(sql: &str) -> Vec<Option<String>> {
        split(sql)
            .expect("split")
            .iter()
            .map(Statement::first_keyword)
            .collect()
    }

    #[test]
    fn lexemes_give_words_quoted_names_punctuation_and_line_comments() {
        let sql = "CREATE TABLE s.\"T\" ( -- one\n a int, /* -- not */ b 'x;--' ); -- two";
        let found: Vec<(LexemeKind, &str)> = lexemes(sql)
            .unwrap()
            .iter()
            .map(|l| (l.kind, &sql[l.start..l.end]))
            .collect();
        use LexemeKind::*;
        assert_eq!(
            found,
            [
                (Word, "CREATE"),
                (Word, "TABLE"),
                (Word, "s"),
                (Dot, "."),
                (QuotedIdent, "\"T\""),
                (OpenParen, "("),
                (LineComment, "-- one"),
                (Word, "a"),
                (Word, "int"),
                (Comma, ","),
                (Word, "b"),
                (Other, "'x;--'"),
                (CloseParen, ")"),
                (Semicolon, ";"),
                (LineComment, "-- two"),
            ]
        );
        assert!(lexemes("SELECT 'open").unwrap_err().unclosed);
    }

    #[test]
    fn plain_statements() {
        assert_eq!(
            pieces("CREATE TABLE t (a int);\nINSERT INTO t VALUES (1);\n"),
            ["CREATE TABLE t (a int);", "INSERT INTO t VALUES (1);"]
        );
        assert_eq!(pieces("SELECT 1;SELECT 2;"), ["SELECT 1;", "SELECT 2;"]);
    }

    #[test]
    fn no_trailing_semicolon() {
        assert_eq!(pieces("SELECT 1;\nSELECT 2"), ["SELECT 1;", "SELECT 2"]);
        assert_eq!(pieces("SELECT 2  \n\n"), ["SELECT 2"]);
        // Trailing comments are not part of the last statement.
        assert_eq!(pieces("SELECT 2 -- done\n/* x */\n"), ["SELECT 2"]);
        assert_eq!(pieces("SELECT 'a'"), ["SELECT 'a'"]);
    }

    #[test]
    fn comments_and_whitespace_only() {
        for sql in [
            "",
            " \n\t\r\n\x0c",
            "-- only a comment",
            "-- a\n-- b\n",
            "/* a /* nested */ still */",
            "-- a\n/* b; */\n  -- c;\n",
        ] {
            assert_eq!(pieces(sql), Vec::<&str>::new(), "{sql:?}");
        }
    }

    #[test]
    fn empty_statements_are_skipped() {
        assert_eq!(pieces(";"), Vec::<&str>::new());
        assert_eq!(pieces(";; /* c */ ; -- d\n;"), Vec::<&str>::new());
        assert_eq!(pieces("SELECT 1;;\n;SELECT 2;"), ["SELECT 1;", "SELECT 2;"]);
    }

    #[test]
    fn comments_between_excluded_inside_kept() {
        let sql = "-- header; not a statement\n/* lead; */ SELECT 1 /* mid; */ -- tail;\n + 2; -- after;\n";
        let stmts = split(sql).expect("split");
        assert_eq!(stmts.len(), 1);
        assert_eq!(stmts[0].sql, "SELECT 1 /* mid; */ -- tail;\n + 2;");
        assert_eq!(stmts[0].line, 2);
        assert_eq!(stmts[0].offset, sql.find("SELECT").expect("present"));
    }

    #[test]
    fn single_quotes() {
        assert_eq!(
            pieces("SELECT 'a;b', 'it''s; ok';SELECT ';';"),
            ["SELECT 'a;b', 'it''s; ok';", "SELECT ';';"]
        );
        // Standard-conforming strings: backslash is not an escape.
        assert_eq!(
            pieces("SELECT 'a\\'; SELECT 2;"),
            ["SELECT 'a\\';", "SELECT 2;"]
        );
        assert_eq!(pieces("SELECT '--;', '/*;';"), ["SELECT '--;', '/*;';"]);
        assert_eq!(
            pieces("SELECT ''; SELECT '''';"),
            ["SELECT '';", "SELECT '''';"]
        );
    }

    #[test]
    fn escape_strings() {
        assert_eq!(
            pieces("SELECT E'\\';'; SELECT 2;"),
            ["SELECT E'\\';';", "SELECT 2;"]
        );
        assert_eq!(
            pieces("SELECT e'\\\\'; SELECT 2;"),
            ["SELECT e'\\\\';", "SELECT 2;"]
        );
        assert_eq!(pieces("SELECT E'it''s; \\n';"), ["SELECT E'it''s; \\n';"]);
        // A letter before E makes it an identifier, not a prefix.
        assert_eq!(
            pieces("SELECT xE'\\'; SELECT 2;"),
            ["SELECT xE'\\';", "SELECT 2;"]
        );
    }

    #[test]
    fn string_continuation_follows_the_server() {
        // The continued part is still an E string, so \' does not close it.
        assert_eq!(pieces("SELECT E'a'\n'\\' ;';"), ["SELECT E'a'\n'\\' ;';"]);
        assert_eq!(
            pieces("SELECT E'a' -- c\n  -- d\r\n '\\';';"),
            ["SELECT E'a' -- c\n  -- d\r\n '\\';';"]
        );
        // Without a newline there is no continuation: '\' is a plain string.
        assert_eq!(
            pieces("SELECT E'a' '\\'; SELECT 1;"),
            ["SELECT E'a' '\\';", "SELECT 1;"]
        );
        // A block comment does not allow continuation either.
        assert_eq!(
            pieces("SELECT E'a' /**/\n'\\'; SELECT 1;"),
            ["SELECT E'a' /**/\n'\\';", "SELECT 1;"]
        );
        assert_eq!(
            pieces("SELECT 'a;'\n'b;' AS c;"),
            ["SELECT 'a;'\n'b;' AS c;"]
        );
    }

    #[test]
    fn prefixed_literals() {
        assert_eq!(
            pieces("SELECT U&'d\\0061t;a', N'n;', B'1;', X'f;';SELECT 2;"),
            ["SELECT U&'d\\0061t;a', N'n;', B'1;', X'f;';", "SELECT 2;"]
        );
        assert_eq!(
            pieces("SELECT u&'\\'; SELECT 2;"),
            ["SELECT u&'\\';", "SELECT 2;"]
        );
        assert_eq!(pieces("SELECT b'1''0;';"), ["SELECT b'1''0;';"]);
        // U& without a quote is just U, then an operator.
        assert_eq!(
            pieces("SELECT U&1; SELECT 2;"),
            ["SELECT U&1;", "SELECT 2;"]
        );
    }

    #[test]
    fn double_quoted_identifiers() {
        assert_eq!(
            pieces("CREATE TABLE \"a;b\"\"c\" (\"x;\" int); SELECT U&\"a;b\";"),
            [
                "CREATE TABLE \"a;b\"\"c\" (\"x;\" int);",
                "SELECT U&\"a;b\";"
            ]
        );
        assert_eq!(pieces("SELECT \"\"\";\";"), ["SELECT \"\"\";\";"]);
        assert_eq!(
            pieces("SELECT \"--\", \"/*\";x;"),
            ["SELECT \"--\", \"/*\";", "x;"]
        );
    }

    #[test]
    fn block_comments_nest() {
        assert_eq!(
            pieces("/* a /* b; */ c; */ SELECT 1 /* x /* y */ ; */;"),
            ["SELECT 1 /* x /* y */ ; */;"]
        );
        assert_eq!(pieces("/*/ ; */ SELECT 1;"), ["SELECT 1;"]);
        assert_eq!(pieces("/**/SELECT 1;/***/"), ["SELECT 1;"]);
        assert_eq!(pieces("/* -- ; */ SELECT 1;"), ["SELECT 1;"]);
        assert_eq!(pieces("-- /* \nSELECT 1;"), ["SELECT 1;"]);
    }

    #[test]
    fn comment_starts_inside_operators() {
        assert_eq!(pieces("SELECT 2 *--c;\n3;"), ["SELECT 2 *--c;\n3;"]);
        assert_eq!(pieces("SELECT 1 +/*;*/ 2;"), ["SELECT 1 +/*;*/ 2;"]);
        assert_eq!(pieces("SELECT 1 <@-- x;\n;"), ["SELECT 1 <@-- x;\n;"]);
        // `*/` outside a comment is just an operator.
        assert_eq!(
            pieces("SELECT 1 */ 2; SELECT 3;"),
            ["SELECT 1 */ 2;", "SELECT 3;"]
        );
        // A lone `-` or `/` is not a comment.
        assert_eq!(pieces("SELECT 4 - 2 / 1; x"), ["SELECT 4 - 2 / 1;", "x"]);
    }

    #[test]
    fn dollar_quotes() {
        let sql = "CREATE FUNCTION f() RETURNS text AS $fn$\n\
                   BEGIN RETURN $$a;b$$ || $other$ $$ ; $fn $other$ || $fnx$ $fn;\n\
                   END; $fn$ LANGUAGE plpgsql;\nSELECT f();";
        assert_eq!(pieces(sql).len(), 2);
        assert!(pieces(sql)[0].ends_with("$fn$ LANGUAGE plpgsql;"));
        assert_eq!(
            pieces("SELECT $$;$$; SELECT 2;"),
            ["SELECT $$;$$;", "SELECT 2;"]
        );
        // Tags are case-sensitive; `$a$` does not close `$A$`.
        assert_eq!(pieces("SELECT $A$ $a$; $A$;"), ["SELECT $A$ $a$; $A$;"]);
        assert_eq!(pieces("SELECT $_t1$;$_t1$;"), ["SELECT $_t1$;$_t1$;"]);
        // Non-ASCII tags.
        assert_eq!(pieces("SELECT $ü$;$ü$ AS é;"), ["SELECT $ü$;$ü$ AS é;"]);
        // A closing tag may follow letters directly: `x$q$`.
        assert_eq!(pieces("SELECT $q$x$q$;y;"), ["SELECT $q$x$q$;", "y;"]);
        // `$junk$delim$`: the second `$` of the junk starts the real delimiter.
        assert_eq!(pieces("SELECT $d$ ; $junk$d$;"), ["SELECT $d$ ; $junk$d$;"]);
        assert_eq!(
            pieces("DO $$ BEGIN PERFORM 1; END $$;"),
            ["DO $$ BEGIN PERFORM 1; END $$;"]
        );
    }

    #[test]
    fn dollar_signs_that_are_not_quotes() {
        // Parameters.
        assert_eq!(
            pieces("PREPARE q(int) AS SELECT $1 + $2; EXECUTE q(1);"),
            ["PREPARE q(int) AS SELECT $1 + $2;", "EXECUTE q(1);"]
        );
        assert_eq!(pieces("SELECT $1$$;$$;"), ["SELECT $1$$;$$;"]);
        // PG15 swallows an identifier glued to a parameter, `$` included.
        assert_eq!(
            pieces("SELECT $9tag$ ; SELECT 2;"),
            ["SELECT $9tag$ ;", "SELECT 2;"]
        );
        // `$` inside an identifier.
        assert_eq!(
            pieces("SELECT a$b$ FROM t$; SELECT $b$;$b$;"),
            ["SELECT a$b$ FROM t$;", "SELECT $b$;$b$;"]
        );
        // `$tag` not followed by `$`: a lone `$`, then an identifier.
        assert_eq!(
            pieces("SELECT $abc ; SELECT $;"),
            ["SELECT $abc ;", "SELECT $;"]
        );
        assert_eq!(pieces("SELECT $"), ["SELECT $"]);
    }

    #[test]
    fn numbers_pg15() {
        // `1e` is trailing junk, so the quote opens a plain string.
        assert_eq!(
            pieces("SELECT 1e'\\'; SELECT 2;"),
            ["SELECT 1e'\\';", "SELECT 2;"]
        );
        // `1..` is 1 then `..`, so `e'` opens an E string.
        assert_eq!(pieces("SELECT 1..e'\\';' ;"), ["SELECT 1..e'\\';' ;"]);
        // `1e-` is one token, so the following `-` starts no comment.
        assert_eq!(
            pieces("SELECT 1e--x ;\nSELECT 2;"),
            ["SELECT 1e--x ;", "SELECT 2;"]
        );
        assert_eq!(pieces("SELECT 1e-5--x ;\n;"), ["SELECT 1e-5--x ;\n;"]);
        // Junk swallows `$`, so no dollar quote starts here...
        assert_eq!(
            pieces("SELECT 1a$$ ; SELECT 2;"),
            ["SELECT 1a$$ ;", "SELECT 2;"]
        );
        // ...but after a plain number it does.
        assert_eq!(pieces("SELECT 1$$ ; $$;"), ["SELECT 1$$ ; $$;"]);
        assert_eq!(
            pieces("SELECT 1.5e3, .5, 1., 1e-3, 0.5e+2x;"),
            ["SELECT 1.5e3, .5, 1., 1e-3, 0.5e+2x;"]
        );
        // Junk also hides keywords from the BEGIN ... END heuristic.
        assert_eq!(
            pieces("CREATE FUNCTION f() 1begin; SELECT 1;"),
            ["CREATE FUNCTION f() 1begin;", "SELECT 1;"]
        );
    }

    #[test]
    fn begin_atomic_bodies() {
        let sql = "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 2 END;\n  SELECT CASE x WHEN 1 THEN 2 END;\nEND;\nSELECT f(1);";
        assert_eq!(
            pieces(sql),
            [
                "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 2 END;\n  SELECT CASE x WHEN 1 THEN 2 END;\nEND;",
                "SELECT f(1);"
            ]
        );
        let sql = "create or replace procedure p() language sql begin atomic insert into t values (1); insert into t values (2); end; call p();";
        assert_eq!(pieces(sql).len(), 2);
        let sql = "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\nSELECT 2;";
        assert_eq!(pieces(sql).len(), 2);
        let sql = "CREATE PROCEDURE p() BEGIN ATOMIC SELECT 1; END; SELECT 2;";
        assert_eq!(pieces(sql).len(), 2);
    }

    #[test]
    fn begin_end_heuristic_details() {
        // CASE ... END outside a BEGIN block is not counted.
        assert_eq!(
            pieces(
                "CREATE FUNCTION s(x int) RETURNS int LANGUAGE sql RETURN CASE WHEN x > 0 THEN 1 END; SELECT 1;"
            ),
            [
                "CREATE FUNCTION s(x int) RETURNS int LANGUAGE sql RETURN CASE WHEN x > 0 THEN 1 END;",
                "SELECT 1;"
            ]
        );
        // Keywords inside parentheses, quotes and dollar quotes do not count.
        assert_eq!(
            pieces(
                "CREATE FUNCTION f(begin int) RETURNS int AS $$ BEGIN $$ LANGUAGE sql; SELECT \"begin\";"
            ),
            [
                "CREATE FUNCTION f(begin int) RETURNS int AS $$ BEGIN $$ LANGUAGE sql;",
                "SELECT \"begin\";"
            ]
        );
        assert_eq!(
            pieces(
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT (CASE WHEN true THEN 1 END); SELECT \"end\"; END; SELECT 3;"
            ),
            [
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT (CASE WHEN true THEN 1 END); SELECT \"end\"; END;",
                "SELECT 3;"
            ]
        );
        // Only statements starting CREATE [OR REPLACE] FUNCTION|PROCEDURE.
        assert_eq!(
            pieces("BEGIN; SELECT 1; END;"),
            ["BEGIN;", "SELECT 1;", "END;"]
        );
        assert_eq!(
            pieces(
                "CREATE TABLE begin (a int); CREATE OR REPLACE VIEW v AS SELECT 1 AS begin; SELECT 1;"
            ),
            [
                "CREATE TABLE begin (a int);",
                "CREATE OR REPLACE VIEW v AS SELECT 1 AS begin;",
                "SELECT 1;"
            ]
        );
        // psql matches first letters only and counts every identifier.
        assert_eq!(
            pieces("create or replace procedure begin; x; end; y;"),
            ["create or replace procedure begin; x; end;", "y;"]
        );
        assert_eq!(
            pieces("create x function begin; y;"),
            ["create x function begin;", "y;"]
        );
        // The state resets after each statement.
        assert_eq!(
            pieces(
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; BEGIN; COMMIT;"
            ),
            [
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;",
                "BEGIN;",
                "COMMIT;"
            ]
        );
        // An unclosed BEGIN keeps the rest of the input in one statement.
        assert_eq!(
            pieces("CREATE FUNCTION f() BEGIN ATOMIC SELECT 1; SELECT 2;"),
            ["CREATE FUNCTION f() BEGIN ATOMIC SELECT 1; SELECT 2;"]
        );
    }

    #[test]
    fn parentheses() {
        assert_eq!(
            pieces(
                "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO l VALUES (1); INSERT INTO l VALUES (2)); SELECT 1;"
            ),
            [
                "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO l VALUES (1); INSERT INTO l VALUES (2));",
                "SELECT 1;"
            ]
        );
        // A stray `)` does not make the depth negative.
        assert_eq!(
            pieces("SELECT 1); SELECT (2);"),
            ["SELECT 1);", "SELECT (2);"]
        );
        // Unbalanced `(` keeps the rest in one statement, as psql does.
        assert_eq!(pieces("SELECT (1; SELECT 2;"), ["SELECT (1; SELECT 2;"]);
    }

    #[test]
    fn psql_backslash_inside_a_statement_is_ordinary() {
        assert_eq!(
            pieces("SELECT 1 \\; SELECT 2;"),
            ["SELECT 1 \\;", "SELECT 2;"]
        );
    }

    #[test]
    fn meta_commands_at_a_statement_boundary() {
        let sql = "\\restrict abc123\nSELECT 1;\n\\unrestrict abc123\n";
        assert_eq!(pieces(sql), ["SELECT 1;"]);
        let lines = meta_command_lines(sql);
        assert_eq!(lines.len(), 2);
        assert_eq!(&sql[lines[0].clone()], "\\restrict abc123");
        assert_eq!(&sql[lines[1].clone()], "\\unrestrict abc123");
        assert_eq!(
            pieces("SELECT 1; \\restrict k\nSELECT 2;"),
            ["SELECT 1;", "SELECT 2;"]
        );
        for (sql, name) in [
            ("\\set x 1\nSELECT 1;", "\\set"),
            ("SELECT 1;\n\\connect other\n", "\\connect"),
            ("SELECT 1;\n  \\i other.sql\n", "\\i"),
            ("\\copy t from 'f'\n", "\\copy"),
            ("SELECT 1;\n\\.\n", "\\."),
        ] {
            let e = err(sql);
            assert!(
                e.message.contains(&format!("psql meta-command `{name}`"))
                    && e.message.contains(
                        "psql meta-commands are not SQL; schemagate sends SQL to the server"
                    ),
                "{sql:?}: {e}"
            );
            assert_eq!(
                e.line,
                sql[..sql.find('\\').unwrap()].matches('\n').count() + 1
            );
        }
    }

    #[test]
    fn copy_from_stdin_with_inline_data() {
        let sql = "CREATE TABLE t (a text);\nCOPY public.t (a) FROM stdin;\nit's; -- not\n'x'\t\\N\n\\.\nSELECT 1;\n";
        let stmts = split(sql).expect("split");
        check_invariants(sql, &stmts);
        assert_eq!(stmts.len(), 3);
        assert_eq!(stmts[1].sql, "COPY public.t (a) FROM stdin;");
        let copy = stmts[1].copy.expect("copy data");
        assert_eq!(copy.data, "it's; -- not\n'x'\t\\N\n");
        assert_eq!(&sql[copy.end..], "SELECT 1;\n");
        assert_eq!((stmts[2].sql, stmts[2].line), ("SELECT 1;", 6));
        assert_eq!(stmts[0].copy, None);
        // No rows, the `\.` line at the very end, options, comments, any case.
        let sql = "copy t from STDIN;\n\\.";
        let stmts = split(sql).expect("split");
        assert_eq!(
            stmts[0].copy.map(|c| (c.data, c.end)),
            Some(("", sql.len()))
        );
        for sql in [
            "COPY t /* c */ FROM -- x\n Stdin WITH (FORMAT csv);\n1,2\n\\.\n",
            "COPY t(a, b) FROM STDIN (FORMAT text);   \n1\n\\.\n",
            "COPY BINARY t FROM stdin;\n\\.\n",
        ] {
            let stmts = split(sql).expect(sql);
            assert!(stmts[0].copy.is_some(), "{sql:?}");
        }
        // Only STDIN has inline data.
        for sql in [
            "COPY t FROM '/tmp/f';\nSELECT 1;",
            "COPY t FROM PROGRAM 'cat f';\nSELECT 1;",
            "COPY t TO STDOUT;\nSELECT 1;",
            "COPY (SELECT 'from' FROM stdin) TO '/tmp/x';\nSELECT 1;",
            "SELECT 1 FROM stdin;\nSELECT 1;",
        ] {
            let stmts = split(sql).expect(sql);
            assert_eq!(stmts.len(), 2, "{sql:?}");
            assert!(stmts.iter().all(|s| s.copy.is_none()), "{sql:?}");
        }
    }

    #[test]
    fn copy_errors() {
        let e = err("SELECT 1;\nCOPY t FROM stdin;\n1\n2\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("no line `\\.`"), "{e}");
        let e = err("SELECT 1;\nCOPY t FROM stdin; 1\n\\.\n");
        assert_eq!(e.line, 2);
        assert!(
            e.message
                .contains("text after `COPY ... FROM stdin;` on the same line"),
            "{e}"
        );
        // A `\.` inside a line is data, not the end.
        assert!(split("COPY t FROM stdin;\na\\.\n").is_err());
    }

    #[test]
    fn copy_to_stdout() {
        let yes = [
            "COPY t TO STDOUT;",
            "copy t (a, b) to stdout with (format csv);",
            "COPY (SELECT * FROM t) TO /* c */ Stdout;",
            "COPY t TO STDOUT",
        ];
        for sql in yes {
            assert!(split(sql).expect(sql)[0].copy_to_stdout(), "{sql:?}");
        }
        let no = [
            "COPY t TO '/tmp/x';",
            "COPY (SELECT 'stdout' AS to) TO PROGRAM 'cat';",
            "SELECT 1 AS stdout;",
            "COPY t FROM stdin;\n\\.\n",
        ];
        for sql in no {
            assert!(!split(sql).expect(sql)[0].copy_to_stdout(), "{sql:?}");
        }
    }

    fn control(sql: &str) -> Vec<Option<&'static str>> {
        split(sql)
            .expect("split")
            .iter()
            .map(Statement::transaction_control)
            .collect()
    }

    #[test]
    fn transaction_control_statements() {
        let sql = "begin; Begin Work; START /* x */ TRANSACTION ISOLATION LEVEL SERIALIZABLE; \
                   commit; COMMIT AND CHAIN; commit and no chain; end transaction; abort; \
                   ROLLBACK; rollback work; ROLLBACK AND CHAIN; \
                   PREPARE TRANSACTION 'x'; prepare -- c\n transaction 'y'; \
                   COMMIT PREPARED 'x'; rollback prepared 'y';";
        assert_eq!(
            control(sql),
            [
                Some("BEGIN"),
                Some("BEGIN"),
                Some("START TRANSACTION"),
                Some("COMMIT"),
                Some("COMMIT"),
                Some("COMMIT"),
                Some("END"),
                Some("ABORT"),
                Some("ROLLBACK"),
                Some("ROLLBACK"),
                Some("ROLLBACK"),
                Some("PREPARE TRANSACTION"),
                Some("PREPARE TRANSACTION"),
                Some("COMMIT PREPARED"),
                Some("ROLLBACK PREPARED"),
            ]
        );
        let allowed = "ROLLBACK TO a; rollback work to savepoint a; ROLLBACK TRANSACTION /**/ TO a; \
                       SAVEPOINT a; RELEASE a; RELEASE SAVEPOINT a; PREPARE q AS SELECT 1; \
                       PREPARE transaction AS SELECT 1; PREPARE transaction (int) AS SELECT $1; \
                       START x; \"begin\"; SELECT 'commit'; DO $$ BEGIN COMMIT; END $$;";
        assert!(
            control(allowed).iter().all(Option::is_none),
            "{:?}",
            control(allowed)
        );
    }

    fn server(sql: &str, backslash_quotes: bool) -> Result<Vec<&str>, SplitError> {
        let rules = Rules {
            server: true,
            backslash_quotes,
        };
        split_as(sql, rules).map(|s| s.statements.iter().map(|s| s.sql).collect())
    }

    #[test]
    fn server_rules_open_a_body_only_at_begin_atomic() {
        // psql counts the function name `begin`, and swallows the next `;`.
        let sql = "CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1;\nCOMMIT;\nSELECT 1;";
        assert_eq!(pieces(sql).len(), 1);
        assert_eq!(
            server(sql, false).expect("split"),
            [
                "CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1;",
                "COMMIT;",
                "SELECT 1;"
            ]
        );
        let body = "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 2 END;\nEND;\nSELECT f(1);";
        assert_eq!(server(body, false).expect("split"), pieces(body));
        assert_eq!(
            server(
                "CREATE PROCEDURE p() begin /* c */ atomic SELECT 1; end; SELECT 2;",
                false
            )
            .expect("split")
            .len(),
            2
        );
    }

    #[test]
    fn backslash_quotes_read_strings_as_scs_off() {
        let sql = "SELECT 'a\\''; COMMIT; --';\nSELECT 2;";
        // scs on: `''` is a quote, and COMMIT is inside the string.
        assert_eq!(pieces(sql), ["SELECT 'a\\''; COMMIT; --';", "SELECT 2;"]);
        let off = split_as(
            sql,
            Rules {
                server: false,
                backslash_quotes: true,
            },
        )
        .expect("split");
        let off: Vec<_> = off.statements.iter().map(|s| s.sql).collect();
        assert_eq!(off, ["SELECT 'a\\'';", "COMMIT;", "SELECT 2;"]);
        let sql = "SELECT 'a\\\\'; COMMIT;";
        assert_eq!(pieces(sql), ["SELECT 'a\\\\';", "COMMIT;"]);
        assert_eq!(
            server(sql, true).expect("split"),
            ["SELECT 'a\\\\';", "COMMIT;"]
        );
        // A lone backslash before the closing quote leaves it open under scs off.
        assert!(server("SELECT 'a\\'; SELECT 2;", true).is_err());
    }

    #[test]
    fn vertical_tab_is_not_whitespace_in_pg15() {
        assert_eq!(pieces("\x0b;SELECT 1;"), ["\x0b;", "SELECT 1;"]);
    }

    #[test]
    fn create_index_concurrently() {
        let sql = "CREATE INDEX CONCURRENTLY i ON t (a);\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS j ON t (lower(b));\n";
        assert_eq!(
            pieces(sql),
            [
                "CREATE INDEX CONCURRENTLY i ON t (a);",
                "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS j ON t (lower(b));"
            ]
        );
        assert_eq!(
            first_keywords(sql),
            [Some("CREATE".into()), Some("CREATE".into())]
        );
    }

    #[test]
    fn line_numbers_and_offsets() {
        let sql = "\n-- c\nSELECT 1;\n\n  SELECT\n2; SELECT 3;\n/* a\nb */ SELECT 4";
        let stmts = split(sql).expect("split");
        let got: Vec<_> = stmts.iter().map(|s| (s.line, s.offset, s.sql)).collect();
        assert_eq!(
            got,
            [
                (3, 6, "SELECT 1;"),
                (5, 19, "SELECT\n2;"),
                (6, 29, "SELECT 3;"),
                (8, 49, "SELECT 4")
            ]
        );
    }

    #[test]
    fn crlf_line_endings() {
        let sql = "SELECT 1;\r\n-- c\r\nSELECT\r\n 2 -- x\r\n;\r\n\r\nSELECT 3";
        let stmts = split(sql).expect("split");
        let got: Vec<_> = stmts.iter().map(|s| (s.line, s.sql)).collect();
        assert_eq!(
            got,
            [
                (1, "SELECT 1;"),
                (3, "SELECT\r\n 2 -- x\r\n;"),
                (7, "SELECT 3")
            ]
        );
    }

    #[test]
    fn unterminated_constructs_report_the_opening_line() {
        let cases: [(&str, usize, &str); 12] = [
            (
                "SELECT 1;\nSELECT 'abc;\n\n",
                2,
                "unterminated quoted string (opened here)",
            ),
            (
                "SELECT 1;\n\nSELECT E'a\\';\n",
                3,
                "unterminated escape string E'...' (opened here)",
            ),
            (
                "SELECT E'a\\",
                1,
                "unterminated escape string E'...' (opened here)",
            ),
            (
                "SELECT\nU&'a",
                2,
                "unterminated quoted string (opened here)",
            ),
            ("SELECT N'a", 1, "unterminated quoted string (opened here)"),
            (
                "SELECT B'1",
                1,
                "unterminated bit-string literal B'...' (opened here)",
            ),
            (
                "SELECT X'1",
                1,
                "unterminated hexadecimal string literal X'...' (opened here)",
            ),
            (
                "SELECT 1;\nSELECT \"a;\n",
                2,
                "unterminated quoted identifier (opened here)",
            ),
            (
                "SELECT U&\"a",
                1,
                "unterminated quoted identifier (opened here)",
            ),
            (
                "SELECT 1;\nCREATE FUNCTION f() AS $fn$\nBEGIN $$ $$ END;\n$fn $Fn$\n",
                2,
                "unterminated dollar-quoted string $fn$ (opened here)",
            ),
            (
                "SELECT 1;\n/* a\n/* b */\n",
                2,
                "unterminated /* comment (opened here)",
            ),
            (
                "SELECT 'a'\n'b",
                1,
                "unterminated quoted string (opened here)",
            ),
        ];
        for (sql, line, message) in cases {
            let e = err(sql);
            assert_eq!((e.line, e.message.as_str()), (line, message), "{sql:?}");
        }
        assert_eq!(
            err("\n$$").to_string(),
            "line 2: unterminated dollar-quoted string $$ (opened here)"
        );
    }

    #[test]
    fn first_keyword() {
        let sql = "-- c\n/* d */ begin; Commit;START TRANSACTION; end; abort;\nrollback;\n\
                   (SELECT 1); \"begin\"; E'x'; U&\"x\"; 1; create index concurrently i on t (a);";
        assert_eq!(
            first_keywords(sql),
            [
                Some("BEGIN".into()),
                Some("COMMIT".into()),
                Some("START".into()),
                Some("END".into()),
                Some("ABORT".into()),
                Some("ROLLBACK".into()),
                None,
                None,
                None,
                None,
                None,
                Some("CREATE".into()),
            ]
        );
        // Comments before the keyword are skipped even in a hand-made statement.
        let s = Statement {
            sql: "/* x */ -- y\n BEGIN;",
            line: 1,
            offset: 0,
            copy: None,
        };
        assert_eq!(s.first_keyword().as_deref(), Some("BEGIN"));
        let s = Statement {
            sql: "/* never closed",
            line: 1,
            offset: 0,
            copy: None,
        };
        assert_eq!(s.first_keyword(), None);
    }

    /// Random splices of tricky fragments: never panics, and on success the
    /// statements tile the input with only whitespace, comments and empty
    /// statements between them.
    #[test]
    fn random_inputs_keep_invariants() {
        const FRAGS: [&str; 40] = [
            "'",
            "\"",
            "$",
            "$$",
            "$a$",
            "$1",
            ";",
            "--",
            "/*",
            "*/",
            "\n",
            "\r\n",
            " ",
            "(",
            ")",
            "E'",
            "e",
            "\\",
            "U&",
            "B'",
            "x",
            "1",
            "1e",
            ".",
            "-",
            "/",
            "*",
            "begin",
            "end",
            "case",
            "create",
            "function",
            "or replace",
            "procedure",
            "atomic",
            "é",
            "a$b",
            "''",
            "\"\"",
            "\x0c",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let sql: String = (0..len)
                .map(|_| FRAGS[(next() % FRAGS.len() as u64) as usize])
                .collect();
            if let Ok(stmts) = split(&sql) {
                check_invariants(&sql, &stmts);
                let mut gap_start = 0;
                for s in &stmts {
                    assert!(
                        split(&sql[gap_start..s.offset]).is_ok_and(|v| v.is_empty()),
                        "gap before {s:?} in {sql:?}"
                    );
                    gap_start = s.offset + s.sql.len();
                    let _ = s.first_keyword();
                }
                assert!(split(&sql[gap_start..]).is_ok_and(|v| v.is_empty()));
            }
        }
    }

    #[test]
    fn large_input_is_linear() {
        let mut sql = String::with_capacity(21 << 20);
        let mut n = 0;
        while sql.len() < 20 << 20 {
            sql.push_str(&format!(
                "INSERT INTO t (id, name) VALUES ({n}, 'name {n}; it''s'); -- row {n}\n"
            ));
            n += 1;
        }
        let started = std::time::Instant::now();
        let stmts = split(&sql).expect("split");
        let took = started.elapsed();
        println!(
            "split {:.1} MB into {} statements in {:?}",
            sql.len() as f64 / (1 << 20) as f64,
            stmts.len(),
            took
        );
        assert_eq!(stmts.len(), n);
        assert_eq!(stmts[n - 1].line, n);

        // Worst cases for the inner loops: one huge literal, comment, dollar quote.
        for (open, body, close) in [
            ("SELECT '", "a;''", "';"),
            ("SELECT E'", "\\';", "';"),
            ("/*", "/**/;", "*/ SELECT 1;"),
            ("SELECT $t$", "$x$;$tx", "$t$;"),
            ("SELECT \"", "a;\"\"", "\";"),
        ] {
            let big = format!("{open}{}{close}", body.repeat((4 << 20) / body.len()));
            let started = std::time::Instant::now();
            assert_eq!(split(&big).expect("split").len(), 1, "{open}");
            println!(
                "{open}...: {} MB in {:?}",
                big.len() >> 20,
                started.elapsed()
            );
        }
    }
}
