//! Random SQL scripts whose statements are known: valid, side-effect free statements
//! full of what makes splitting hard (`;` inside strings, `E'\''`, `$tag$` bodies holding
//! `$$`, nested comments, `--` comments, `U&''`, string continuation, BEGIN ATOMIC bodies,
//! CRLF), joined by whitespace, comments and empty statements.
//!
//! A `Script` knows where each statement is, so a test can compare the splitter's pieces
//! with the truth, and the differential test can ask PostgreSQL itself.
//! Not in `support/mod.rs`: only the tests that use proptest include it
//! (`#[path = "support/sqlgen.rs"] mod sqlgen;`).
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::sample::select;

/// Cases per property: `PROPTEST_CASES` if set (a long run), else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// A script and the exact text of each statement in it, in order.
#[derive(Debug, Clone)]
pub struct Script {
    pub text: String,
    pub statements: Vec<String>,
}

/// Runs of characters for the inside of a plain `'...'` string (quotes doubled).
const PLAIN_BODY: [&str; 16] = [
    "a", "; ", "''", "--", "/*", "*/", "$$", "$t$", "\"", "\\", "\n", "\r\n", "é", "日本", " ",
    "E''",
];

/// ... of an `E'...'` string: backslash escapes that the server accepts.
const ESCAPE_BODY: [&str; 14] = [
    "a", ";", "\\'", "''", "\\\\", "\\n", "\\t", "\\;", "--", "/*", "$$", "\"", " ", "ü",
];

/// ... of a `U&'...'` string.
const UNICODE_BODY: [&str; 8] = ["d", "\\0061", "\\+000062", ";", "''", "--", " ", "/*"];

/// ... of a dollar-quoted body (the delimiter is kept out by a filter).
const DOLLAR_BODY: [&str; 14] = [
    "x", ";", "'", "\"", "$$", "$", "$a$", "--", "/*", "*/", "\n", "\r\n", "E'\\'", " ",
];

/// ... of a comment.
const COMMENT_BODY: [&str; 10] = ["c", ";", "'", "\"", "$$", "--", " ", "é", "*", "/"];

/// Whitespace between tokens.
const SPACE: [&str; 6] = [" ", "\n", "\r\n", "\t", "\x0c", "  "];

fn run_of(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(select(pieces), 0..max).prop_map(|v| v.concat())
}

/// A comment: `-- ...` up to a newline, or a block comment, maybe nested.
fn comment() -> impl Strategy<Value = String> {
    let line = run_of(&COMMENT_BODY, 6).prop_map(|b| format!("--{}\n", b.replace('\n', " ")));
    let block = (
        run_of(&COMMENT_BODY, 6),
        run_of(&COMMENT_BODY, 4),
        any::<bool>(),
    )
        .prop_map(|(a, b, nested)| {
            // `/` next to `*` could open or close a comment early.
            let (a, b) = (a.replace(['/', '*'], "x"), b.replace(['/', '*'], "x"));
            if nested {
                format!("/* {a} /* {b}; */ {a} */")
            } else {
                format!("/*{a}*/")
            }
        });
    prop_oneof![line, block]
}

/// What separates two tokens inside a statement.
fn gap() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(&SPACE[..]).prop_map(str::to_string),
        1 => (select(&SPACE[..]), comment(), select(&SPACE[..]))
            .prop_map(|(a, c, b)| format!("{a}{c}{b}")),
    ]
}

/// A dollar quote with a tag of 0-3 letters whose body does not close it early.
fn dollar_quoted() -> impl Strategy<Value = String> {
    ("[a-z_]{0,3}", run_of(&DOLLAR_BODY, 8))
        .prop_filter("body holds the delimiter", |(tag, body)| {
            let delim = format!("${tag}$");
            // Nor may the body's end and the delimiter make one: `...$` + `$t$`.
            !format!("{body}{delim}").contains(&format!("{delim}{delim}"))
                && !body.contains(&delim)
                && !body.ends_with('$')
        })
        .prop_map(|(tag, body)| format!("${tag}${body}${tag}$"))
}

/// A literal the server accepts, with its type decided by the literal itself.
fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        run_of(&PLAIN_BODY, 8).prop_map(|b| format!("'{b}'")),
        run_of(&ESCAPE_BODY, 8).prop_map(|b| format!("E'{b}'")),
        run_of(&ESCAPE_BODY, 4).prop_map(|b| format!("e'{b}'")),
        run_of(&UNICODE_BODY, 6).prop_map(|b| format!("U&'{b}'")),
        dollar_quoted(),
        // A string continued on the next line is one literal.
        (run_of(&PLAIN_BODY, 4), run_of(&PLAIN_BODY, 4))
            .prop_map(|(a, b)| format!("'{a}'\n  '{b}'")),
        (run_of(&ESCAPE_BODY, 4), run_of(&ESCAPE_BODY, 4))
            .prop_map(|(a, b)| format!("E'{a}' -- c;\n'{b}'")),
        "[01]{0,8}".prop_map(|b| format!("B'{b}'")),
        "[0-9a-f]{0,8}".prop_map(|b| format!("X'{b}'")),
        select(&["1", "1.5", ".5", "1e3", "2.5e-3", "0", "42"][..]).prop_map(str::to_string),
    ]
}

/// A column alias: plain, or double-quoted with `;` and `""` inside.
fn alias() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_]{0,5}".prop_map(|a| format!("c_{a}")),
        run_of(&["a", ";", "\"\"", " ", "--", "/*", "'", "$$"], 5)
            .prop_map(|a| format!("\"x{a}\"")),
    ]
}

/// `SELECT lit AS alias, (lit) AS alias ...` with gaps between the tokens.
fn select_statement() -> impl Strategy<Value = String> {
    let item = (literal(), alias(), any::<bool>(), gap(), gap()).prop_map(
        |(lit, alias, paren, g1, g2)| {
            let value = if paren { format!("({g1}{lit})") } else { lit };
            format!("{value}{g2}AS {alias}")
        },
    );
    (prop::collection::vec(item, 1..4), gap())
        .prop_map(|(items, g)| format!("SELECT{g}{};", items.join(", ")))
}

/// A DO block whose PL/pgSQL body holds statements, strings and comments.
fn do_statement() -> impl Strategy<Value = String> {
    (literal(), comment(), "[a-z]{0,3}").prop_map(|(lit, c, tag)| {
        let body = format!("BEGIN {c} PERFORM {lit}; PERFORM 1; END");
        // The body's own dollar quotes must not contain the delimiter.
        let tag = if body.contains(&format!("${tag}$")) {
            "outer_do".to_string()
        } else {
            tag
        };
        format!("DO ${tag}$ {body} ${tag}$;")
    })
}

/// A SQL-standard function body (PG14+), in the session's temporary schema.
fn atomic_function() -> impl Strategy<Value = String> {
    (0u32..1000, literal(), gap()).prop_map(|(n, lit, g)| {
        format!(
            "CREATE OR REPLACE FUNCTION pg_temp.f{n}() RETURNS int LANGUAGE sql{g}BEGIN ATOMIC\n  \
             SELECT {lit};\n  SELECT CASE WHEN true THEN 1 ELSE 2 END;\nEND;"
        )
    })
}

fn statement() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => select_statement(),
        2 => do_statement(),
        1 => atomic_function(),
    ]
}

/// What lies between statements: whitespace, comments and empty statements.
fn between() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => select(&SPACE[..]).prop_map(str::to_string),
            2 => comment(),
            1 => Just(";".to_string()),
        ],
        1..4,
    )
    .prop_map(|v| v.concat())
}

/// 1 to `max` statements; the last one may lack its `;`.
pub fn script(max: usize) -> impl Strategy<Value = Script> {
    (
        between(),
        prop::collection::vec((statement(), between()), 1..=max),
        any::<bool>(),
    )
        .prop_map(|(lead, parts, drop_last_semicolon)| {
            let mut text = lead;
            let mut statements = Vec::new();
            let last = parts.len() - 1;
            for (i, (mut statement, after)) in parts.into_iter().enumerate() {
                let mut after = after;
                if i == last && drop_last_semicolon {
                    statement.pop();
                    // What follows must not add to it: only whitespace and comments.
                    after = after.replace(';', "");
                    if after.is_empty() {
                        after.push('\n');
                    }
                }
                text.push_str(&statement);
                statements.push(statement);
                // Two gaps never glue into a `--` or `/*` that was not meant.
                text.push_str(&after);
            }
            Script { text, statements }
        })
}
