//! Bad migration files fail with exit 3, naming file and line, before any connection:
//! the database URL points at a port nobody listens on with a long wait timeout, so a run
//! that tried to connect would wait instead of failing at once.

mod support;

use std::time::Duration;

use support::run::{Folder, Run};

const NOBODY_LISTENS: &str = "postgres://postgres@127.0.0.1:1/none";

fn up(folder: &Folder) -> support::run::Outcome {
    let outcome = Run::on(NOBODY_LISTENS, folder, &["up", "--wait-timeout", "60s"]).run();
    assert!(
        outcome.elapsed < Duration::from_secs(5),
        "invalid files must fail before waiting for the database: took {:?}",
        outcome.elapsed
    );
    outcome
}

const GOOD: (&str, &str) = ("1_first.sql", "-- migrate:up\nCREATE TABLE a (id int);\n");

#[test]
fn each_validation_error_names_file_and_line() {
    let cases: &[(&str, &str, usize, &str)] = &[
        (
            "2_typo.sql",
            "-- migrate:up\nSELECT 1;\n-- migrate:dwon\nSELECT 2;\n",
            3,
            "unknown directive `-- migrate:dwon`",
        ),
        (
            "2_commit.sql",
            "-- migrate:up\nCREATE TABLE b (id int);\nCOMMIT;\n",
            3,
            "top-level COMMIT",
        ),
        (
            "2_begin.sql",
            "-- migrate:up\nBEGIN;\nCREATE TABLE b (id int);\n",
            2,
            "transaction:false",
        ),
        (
            "2_dollar.sql",
            "-- migrate:up\nSELECT 1;\nCREATE FUNCTION f() RETURNS int AS $fn$\nSELECT 1;\n$f$ LANGUAGE sql;\n",
            3,
            "unterminated",
        ),
        (
            "2_comment.sql",
            "-- migrate:up\nSELECT 1; /* outer /* inner */\nSELECT 2;\n",
            2,
            "unterminated",
        ),
        (
            "2_quote.sql",
            "-- migrate:up\nSELECT 'it''s;\n",
            2,
            "unterminated",
        ),
        (
            "2_ident.sql",
            "-- migrate:up\nSELECT 1 AS \"oops;\n",
            2,
            "unterminated",
        ),
        (
            "2_empty.sql",
            "-- migrate:up\n-- nothing yet\n\n-- migrate:down\nDROP TABLE b;\n",
            1,
            "empty up section",
        ),
        (
            "2_parent.sql",
            "-- migrate:revises 99\n-- migrate:up\nSELECT 1;\n",
            1,
            "revises 99, but no migration file has that revision",
        ),
        (
            "2_option.sql",
            "-- migrate:up transaction:maybe\nSELECT 1;\n",
            1,
            "unknown option `transaction:maybe`",
        ),
        // It once passed validation, and the runner then reconnected forever.
        (
            "2_nul.sql",
            "-- migrate:up transaction:false\nSELECT 1;\nSELECT 'a\0b';\n",
            3,
            "NUL byte",
        ),
    ];
    for (name, content, line, message) in cases {
        let folder = Folder::with(&[GOOD, (name, content)]);
        let outcome = up(&folder);
        outcome
            .expect(3)
            .stderr_has(&format!("{}:{line}: ", folder.shown(name)))
            .stderr_has(message);
    }
}

fn validate(folder: &Folder) -> support::run::Outcome {
    let mut run = Run::new(&["validate"]);
    run.env(
        "SCHEMAGATE_MIGRATIONS",
        folder.path().to_str().expect("utf-8"),
    );
    run.run()
}

/// Transaction control in a transactional section is an error however it is hidden: the
/// server runs the section as one query, so it would commit half a migration.
#[test]
fn transaction_control_is_found_however_it_is_hidden() {
    let cases: &[(&str, usize, &str)] = &[
        ("CREATE TABLE b (id int);\ncommit;\n", 3, "COMMIT"),
        (
            "CREATE TABLE b (id int);\nCOMMIT /* now */ AND -- really\n CHAIN;\n",
            3,
            "COMMIT",
        ),
        (
            "CREATE TABLE b (id int);\nPREPARE TRANSACTION 'x';\n",
            3,
            "PREPARE TRANSACTION",
        ),
        ("CREATE TABLE b (id int);\nEND;\n", 3, "END"),
        (
            "CREATE TABLE b (id int);\nstart\n  transaction;\n",
            3,
            "START TRANSACTION",
        ),
        (
            "CREATE TABLE b (id int);\nCOMMIT PREPARED 'x';\n",
            3,
            "COMMIT PREPARED",
        ),
        ("CREATE TABLE b (id int);\nABORT;\n", 3, "ABORT"),
        // psql's BEGIN ATOMIC heuristic counts a function named begin and swallows
        // the next `;`: the server does not.
        (
            "CREATE FUNCTION begin() RETURNS int LANGUAGE sql RETURN 1;\nCOMMIT;\nCREATE TABLE b (id int);\n",
            3,
            "COMMIT",
        ),
        // Written for standard_conforming_strings = off: `\'` is a quote there.
        ("SELECT 'it\\'s';\nCOMMIT;\nSELECT 'x';\n", 3, "COMMIT"),
        (
            "SELECT 'a\\''; COMMIT; --';\nCREATE TABLE b (id int);\n",
            2,
            "COMMIT",
        ),
    ];
    for (sql, line, keyword) in cases {
        let folder = Folder::with(&[GOOD, ("2_b.sql", &format!("-- migrate:up\n{sql}"))]);
        validate(&folder)
            .expect(3)
            .stderr_has(&format!("{}:{line}: ", folder.shown("2_b.sql")))
            .stderr_has(&format!("top-level {keyword} in a transactional migration"))
            .stderr_has("-- migrate:up transaction:false");
        // The same in a transaction:false section is allowed.
        let folder = Folder::with(&[
            GOOD,
            (
                "2_b.sql",
                &format!("-- migrate:up transaction:false\n{sql}"),
            ),
        ]);
        let outcome = validate(&folder);
        if !sql.contains("it\\'s") {
            outcome.expect(0);
        }
    }
    // Savepoints and prepared statements stay inside the transaction.
    let folder = Folder::with(&[
        GOOD,
        (
            "2_b.sql",
            "-- migrate:up\nSAVEPOINT x;\nCREATE TABLE b (id int);\nROLLBACK WORK TO x;\nrollback to savepoint x;\nRELEASE x;\nPREPARE q AS SELECT 1;\n",
        ),
    ]);
    validate(&folder).expect(0);
}

#[test]
fn copy_and_meta_command_errors_name_the_line_and_the_fix() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "-- migrate:up\nCREATE TABLE b (a int);\nCOPY b (a) FROM stdin;\n1\n2\n",
            3,
            "no line `\\.`",
        ),
        (
            "-- migrate:up\nCREATE TABLE b (a int);\nCOPY b FROM STDIN; SELECT 1;\n1\n\\.\n",
            3,
            "text after `COPY ... FROM stdin;` on the same line",
        ),
        (
            "-- migrate:up\nCOPY (SELECT 1) TO STDOUT;\n",
            2,
            "a migration has no client to receive it: COPY to a server file, or remove it",
        ),
        (
            "-- migrate:up transaction:false\nSELECT 1;\ncopy pg_class to stdout;\n",
            3,
            "a migration has no client to receive it",
        ),
        (
            "-- migrate:up\nSELECT 1;\n-- migrate:down\nCOPY b TO STDOUT WITH (FORMAT csv);\n",
            4,
            "a migration has no client to receive it",
        ),
        (
            "-- migrate:up\nSELECT 1;\n\\connect other\nSELECT 2;\n",
            3,
            "psql meta-commands are not SQL; schemagate sends SQL to the server",
        ),
        (
            "-- migrate:up\n\\set ON_ERROR_STOP on\nSELECT 2;\n",
            2,
            "`\\set`",
        ),
    ];
    for (content, line, message) in cases {
        let folder = Folder::with(&[GOOD, ("2_b.sql", content)]);
        validate(&folder)
            .expect(3)
            .stderr_has(&format!("{}:{line}: ", folder.shown("2_b.sql")))
            .stderr_has(message);
    }
    // What pg_dump writes validates: COPY data with quotes, `;` and `--`, \restrict lines.
    let folder = Folder::with(&[
        GOOD,
        (
            "2_b.sql",
            "-- migrate:up\n\\restrict k3y\nCREATE TABLE b (a text);\nCOPY public.b (a) FROM stdin;\nit's; -- COMMIT;\n\\N\n\\.\n\nSELECT 1;\n\\unrestrict k3y\n",
        ),
    ]);
    validate(&folder).expect(0);
}

/// A mistyped marker once read as a comment: the down SQL then ran as part of the up.
#[test]
fn a_mistyped_marker_is_an_error_with_the_right_spelling() {
    for marker in ["--migrate:down", "-- Migrate:Down", "-- migrate: down"] {
        let folder = Folder::with(&[
            GOOD,
            (
                "2_b.sql",
                &format!("-- migrate:up\nCREATE TABLE b (id int);\n{marker}\nDROP TABLE b;\n"),
            ),
        ]);
        up(&folder)
            .expect(3)
            .stderr_has(&format!("{}:3: ", folder.shown("2_b.sql")))
            .stderr_has("line looks like a mistyped `-- migrate:down` marker: write it exactly so");
    }
}

#[test]
fn problems_without_a_line_name_the_file() {
    type Files<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(Files, &str, &str)] = &[
        (
            &[GOOD, ("01_again.sql", "SELECT 2;\n")],
            "01_again.sql",
            "duplicate revision",
        ),
        (
            &[GOOD, ("2-bad-name.sql", "SELECT 2;\n")],
            "2-bad-name.sql",
            "<revision>_<slug>.sql",
        ),
        (
            &[GOOD, ("2.sql", "SELECT 2;\n")],
            "2.sql",
            "add a description",
        ),
    ];
    for (files, name, message) in cases {
        let folder = Folder::with(files);
        up(&folder)
            .expect(3)
            .stderr_has(&folder.shown(name))
            .stderr_has(message);
    }
}

#[test]
fn a_cycle_is_reported_on_every_file_in_it() {
    let folder = Folder::with(&[
        (
            "1_a.sql",
            "-- migrate:revises 2\n-- migrate:up\nSELECT 1;\n",
        ),
        (
            "2_b.sql",
            "-- migrate:revises 1\n-- migrate:up\nSELECT 2;\n",
        ),
    ]);
    up(&folder)
        .expect(3)
        .stderr_has(&format!("{}:1: ", folder.shown("1_a.sql")))
        .stderr_has(&format!("{}:1: ", folder.shown("2_b.sql")))
        .stderr_has("cycle");
}

#[test]
fn all_problems_are_reported_at_once() {
    let folder = Folder::with(&[
        GOOD,
        ("2_x.sql", "-- migrate:nope\n-- migrate:up\nSELECT 1;\n"),
        ("3_y.sql", "-- migrate:up\nCOMMIT;\n"),
    ]);
    up(&folder)
        .expect(3)
        .stderr_has("2 invalid migration files")
        .stderr_has("2_x.sql:1:")
        .stderr_has("3_y.sql:2:");
}

/// Exit 3 since issue 10 (it was 2): a gate must never pass, or look like a
/// configuration slip, on a folder that is not there (tests/validation.rs has the rest).
#[test]
fn a_missing_folder_is_exit_3_and_named() {
    let mut run = Run::new(&["up", "--migrations", "/nonexistent/migrations"]);
    run.env("DATABASE_URL", NOBODY_LISTENS);
    run.run()
        .expect(3)
        .stderr_has("/nonexistent/migrations")
        .stderr_has("--migrations");
}

#[test]
fn validate_reports_heads_and_strict_rejects_several() {
    let folder = Folder::with(&[
        GOOD,
        (
            "2_left.sql",
            "-- migrate:revises 1\n-- migrate:up\nSELECT 2;\n",
        ),
        (
            "3_right.sql",
            "-- migrate:revises 1\n-- migrate:up\nSELECT 3;\n",
        ),
    ]);
    let mut run = Run::new(&["validate"]);
    run.env(
        "SCHEMAGATE_MIGRATIONS",
        folder.path().to_str().expect("utf-8"),
    );
    run.run()
        .expect(0)
        .stdout_has("3 migrations, 2 heads (2, 3)");
    run.arg("--strict");
    run.run()
        .expect(3)
        .stderr_has("one of 2 heads (2, 3): join them with `schemagate merge");

    folder.write(
        "4_merge.sql",
        "-- migrate:revises 2, 3\n-- migrate:up\nSELECT 4;\n",
    );
    let mut run = Run::new(&["validate", "--strict"]);
    run.env(
        "SCHEMAGATE_MIGRATIONS",
        folder.path().to_str().expect("utf-8"),
    );
    run.run().expect(0).stdout_has("1 head (4)");
}

#[test]
fn usage_errors_exit_2() {
    Run::new(&["up", "--wait-timeout", "soon"])
        .run()
        .expect(2)
        .stderr_has("not a duration");
    Run::new(&["frobnicate"]).run().expect(2);
    let folder = Folder::with(&[GOOD]);
    let mut run = Run::new(&["up"]);
    run.env(
        "SCHEMAGATE_MIGRATIONS",
        folder.path().to_str().expect("utf-8"),
    );
    run.run().expect(2).stderr_has("no database configured");
}

#[test]
fn help_and_version_exit_0() {
    Run::new(&["--help"])
        .run()
        .expect(0)
        .stdout_has("Exit codes");
    Run::new(&["up", "--help"])
        .run()
        .expect(0)
        .stdout_has("DATABASE_URL")
        .stdout_has("Example");
    Run::new(&["--version"])
        .run()
        .expect(0)
        .stdout_has("schemagate");
}
