//! The splitter against PostgreSQL itself. For each script:
//! (a) the whole text, sent as one simple query, completes exactly as many statements as
//!     schemagate splits it into;
//! (b) each piece, sent alone, completes exactly one statement, with the same rows as the
//!     matching statement of (a), and what lies between pieces completes none;
//! (c) the pieces and what lies between them, put back together, are the input;
//! (d) the server-rules split (`split::Rules::server`) finds as many statements as (a).
//! `COPY ... FROM stdin` data and psql meta-commands are outside this: they are not SQL
//! the server parses (unit tests in src/files/split.rs cover them).
//!
//! The scripts are random valid SQL from `support/sqlgen.rs` (`DEFAULT_CASES`, or
//! `PROPTEST_CASES`), the splitter's own unit-test inputs that are valid SQL, and the
//! TRICKY migration of tests/up.rs. Everything but TRICKY runs in a transaction that is
//! rolled back, so the cases leave nothing behind.

#[path = "support/sqlgen.rs"]
mod sqlgen;
mod support;

use proptest::test_runner::{Config, TestCaseError, TestRunner};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use schemagate::files::split;
use support::Cluster;
use support::sql::TRICKY;

const DEFAULT_CASES: u32 = 500;

/// The rows each completed statement returned, in order.
type Results = Vec<Vec<Vec<Option<String>>>>;

/// Runs `sql` as one simple query; `Err` carries the server's message.
async fn run(client: &Client, sql: &str) -> Result<Results, String> {
    let messages = client
        .simple_query(sql)
        .await
        .map_err(|e| match e.as_db_error() {
            Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
            None => e.to_string(),
        })?;
    let mut results = Vec::new();
    let mut rows = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::Row(row) => {
                rows.push(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_string))
                        .collect(),
                );
            }
            SimpleQueryMessage::CommandComplete(_) => results.push(std::mem::take(&mut rows)),
            _ => {}
        }
    }
    Ok(results)
}

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(connection);
    client
}

/// Checks (a), (b) and (c) for `sql`, each phase in a transaction rolled back after it.
async fn differential(client: &Client, sql: &str) -> Result<usize, String> {
    let pieces = split::split(sql).map_err(|e| format!("split failed: {e}"))?;
    let fail = |what: String| Err(format!("{what}\n--- input\n{sql}"));

    // (c)
    let mut rebuilt = String::new();
    let mut end = 0;
    for piece in &pieces {
        rebuilt.push_str(&sql[end..piece.offset]);
        rebuilt.push_str(piece.sql);
        end = piece.offset + piece.sql.len();
    }
    rebuilt.push_str(&sql[end..]);
    if rebuilt != sql {
        return fail("the pieces do not put back together into the input".into());
    }

    // (a)
    run(client, "BEGIN").await?;
    let whole = with_marker(client, sql).await;
    run(client, "ROLLBACK").await?;
    let whole = match whole {
        Ok(whole) => whole,
        Err(e) => return fail(format!("the server rejects the whole script: {e}")),
    };
    // The server's own cut, used to find transaction control in a transactional
    // migration, agrees with the server on valid SQL.
    let server = split::split_as(
        sql,
        split::Rules {
            server: true,
            backslash_quotes: false,
        },
    )
    .map_err(|e| format!("server-rules split failed: {e}"))?;
    if whole.len() != server.statements.len() {
        return fail(format!(
            "the server completed {} statements, the server-rules split found {}",
            whole.len(),
            server.statements.len()
        ));
    }
    if whole.len() != pieces.len() {
        return fail(format!(
            "the server completed {} statements, the splitter found {}: {:#?}",
            whole.len(),
            pieces.len(),
            pieces.iter().map(|p| p.sql).collect::<Vec<_>>()
        ));
    }

    // (b)
    run(client, "BEGIN").await?;
    let mut end = 0;
    let mut outcome = Ok(pieces.len());
    for (i, piece) in pieces.iter().enumerate() {
        let gap = &sql[end..piece.offset];
        end = piece.offset + piece.sql.len();
        if let Err(e) = nothing_in(client, gap).await {
            outcome = fail(e);
            break;
        }
        match run(client, piece.sql).await {
            Ok(alone) if alone.len() == 1 && alone[0] == whole[i] => {}
            other => {
                outcome = fail(format!(
                    "piece {i} {:?} alone gives {other:?}, in the whole script {:?}",
                    piece.sql, whole[i]
                ));
                break;
            }
        }
    }
    if outcome.is_ok()
        && let Err(e) = nothing_in(client, &sql[end..]).await
    {
        outcome = fail(e);
    }
    run(client, "ROLLBACK").await?;
    outcome
}

/// Appended by `with_marker`: tokio-postgres reports an empty query as a completed
/// statement, so a text that holds none is only told apart by what follows it.
const MARKER: &str = "\n;SELECT 'end of text'";

/// Runs `sql` and the marker; returns the results of `sql`'s own statements.
async fn with_marker(client: &Client, sql: &str) -> Result<Results, String> {
    let mut results = run(client, &format!("{sql}{MARKER}")).await?;
    let marker = [vec![Some("end of text".to_string())]];
    if results.pop().as_deref() != Some(&marker[..]) {
        return Err(format!("the marker after {sql:?} did not come back last"));
    }
    Ok(results)
}

/// What lies between pieces is nothing to the server: no statement at all.
async fn nothing_in(client: &Client, gap: &str) -> Result<(), String> {
    match with_marker(client, gap).await {
        Ok(results) if results.is_empty() => Ok(()),
        other => Err(format!("the gap {gap:?} holds a statement: {other:?}")),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn random_valid_scripts_split_where_postgres_ends_statements() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("split_diff");
    let rt = runtime();
    let client = rt.block_on(connect(&cluster.url(&db)));
    let cases = sqlgen::cases(DEFAULT_CASES);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let statements = std::cell::Cell::new(0);
    let result = runner.run(&sqlgen::script(6), |script| {
        let n = rt
            .block_on(differential(&client, &script.text))
            .map_err(TestCaseError::fail)?;
        if n != script.statements.len() {
            return Err(TestCaseError::fail(format!(
                "{n} statements, the generator wrote {}",
                script.statements.len()
            )));
        }
        statements.set(statements.get() + n);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    println!(
        "{cases} random scripts, {} statements, all as PostgreSQL reads them",
        statements.get()
    );
}

/// The splitter's unit-test inputs that are valid SQL, some made valid: `xE'\'` needs a
/// type `xe`, and two literals side by side need a comma (which shows the server agrees
/// they are two: one continued literal would have needed none).
const KNOWN: &[&str] = &[
    "CREATE TABLE t (a int);\nINSERT INTO t VALUES (1);\n",
    "SELECT 1;SELECT 2;",
    "SELECT 1;\nSELECT 2",
    "SELECT 2 -- done\n/* x */\n",
    "SELECT 'a'",
    ";; /* c */ ; -- d\n;",
    "SELECT 1;;\n;SELECT 2;",
    "-- header; not a statement\n/* lead; */ SELECT 1 /* mid; */ -- tail;\n + 2; -- after;\n",
    "SELECT 'a;b', 'it''s; ok';SELECT ';';",
    "SELECT 'a\\'; SELECT 2;",
    "SELECT '--;', '/*;';",
    "SELECT ''; SELECT '''';",
    "SELECT E'\\';'; SELECT 2;",
    "SELECT e'\\\\'; SELECT 2;",
    "SELECT E'it''s; \\n';",
    "CREATE DOMAIN xe AS text; SELECT xE'\\'; SELECT 2;",
    "SELECT E'a'\n'\\' ;';",
    "SELECT E'a' -- c\n  -- d\r\n '\\';';",
    "SELECT E'a', '\\'; SELECT 1;",
    "SELECT E'a' /**/,\n'\\'; SELECT 1;",
    "SELECT 'a;'\n'b;' AS c;",
    "SELECT U&'d\\0061t;a', N'n;', B'1', X'f';SELECT 2;",
    "SELECT u&'\\0061'; SELECT 2;",
    "SELECT b'10', x'1f';",
    "CREATE TABLE \"a;b\"\"c\" (\"x;\" int); SELECT 1 AS U&\"a;b\";",
    "SELECT 1 AS \"\"\";\";",
    "SELECT 1 AS \"--\", 2 AS \"/*\";SELECT 3;",
    "/* a /* b; */ c; */ SELECT 1 /* x /* y */ ; */;",
    "/*/ ; */ SELECT 1;",
    "/**/SELECT 1;/***/",
    "/* -- ; */ SELECT 1;",
    "-- /* \nSELECT 1;",
    "SELECT 2 *--c;\n3;",
    "SELECT 1 +/*;*/ 2;",
    "SELECT 4 - 2 / 1;",
    "SELECT $$;$$; SELECT 2;",
    "SELECT $A$ $a$; $A$;",
    "SELECT $_t1$;$_t1$;",
    "SELECT $ü$;$ü$ AS é;",
    "SELECT $q$x$q$;",
    "SELECT $d$ ; $junk$d$;",
    "DO $$ BEGIN PERFORM 1; END $$;",
    "PREPARE q(int, int) AS SELECT $1 + $2; EXECUTE q(1, 2); DEALLOCATE q;",
    "SELECT a$b$ FROM (SELECT 1 AS a$b$) t$; SELECT $b$;$b$;",
    "SELECT 1e-5--x ;\n;",
    "SELECT 1.5e3, .5, 1., 1e-3;",
    "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT 1;\n  SELECT CASE WHEN x > 0 THEN 1 ELSE 2 END;\n  SELECT CASE x WHEN 1 THEN 2 END;\nEND;\nSELECT f(1);",
    "CREATE TABLE t (a int); create or replace procedure p() language sql begin atomic insert into t values (1); insert into t values (2); end; call p(); SELECT count(*) FROM t;",
    "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\nSELECT 2;",
    "CREATE PROCEDURE p() BEGIN ATOMIC SELECT 1; END; SELECT 2;",
    "CREATE FUNCTION s(x int) RETURNS int LANGUAGE sql RETURN CASE WHEN x > 0 THEN 1 END; SELECT 1;",
    "CREATE FUNCTION f(begin int) RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql; SELECT 1 AS \"begin\";",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT (CASE WHEN true THEN 1 END); SELECT 1 AS \"end\"; END; SELECT 3;",
    "BEGIN; SELECT 1; END;",
    "CREATE TABLE begin (a int); CREATE OR REPLACE VIEW v AS SELECT 1 AS begin; SELECT 1;",
    "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; SELECT 2; SELECT 3;",
    "CREATE TABLE t (a int); CREATE TABLE l (a int); CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO l VALUES (1); INSERT INTO l VALUES (2)); INSERT INTO t VALUES (0); SELECT count(*) FROM l;",
    "SELECT (1); SELECT (2);",
    "SELECT 1;\r\n-- c\r\nSELECT\r\n 2 -- x\r\n;\r\n\r\nSELECT 3",
    "CREATE TEMP TABLE x (a int); CREATE INDEX i ON x (a);",
];

#[test]
fn known_tricky_inputs_split_where_postgres_ends_statements() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("split_known");
    let rt = runtime();
    let client = rt.block_on(connect(&cluster.url(&db)));
    let mut failures = Vec::new();
    for sql in KNOWN {
        if let Err(e) = rt.block_on(differential(&client, sql)) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// TRICKY has CREATE INDEX CONCURRENTLY, which refuses a transaction, so (a) runs it
/// without CONCURRENTLY in one database and (b) runs the pieces in another.
#[test]
fn the_tricky_migration_splits_where_postgres_ends_statements() {
    let cluster = Cluster::shared();
    let rt = runtime();
    let pieces = split::split(TRICKY).expect("TRICKY splits");
    let whole_db = cluster.create_database("tricky_whole");
    let pieces_db = cluster.create_database("tricky_pieces");
    let whole = rt.block_on(async {
        let client = connect(&cluster.url(&whole_db)).await;
        with_marker(&client, &TRICKY.replace("CONCURRENTLY ", "")).await
    });
    let whole = whole.unwrap_or_else(|e| panic!("the server rejects TRICKY: {e}"));
    assert_eq!(whole.len(), pieces.len(), "statements: server vs splitter");
    rt.block_on(async {
        let client = connect(&cluster.url(&pieces_db)).await;
        for (i, piece) in pieces.iter().enumerate() {
            let alone = run(&client, piece.sql)
                .await
                .unwrap_or_else(|e| panic!("piece {i} {:?} fails alone: {e}", piece.sql));
            assert_eq!(alone, [whole[i].clone()], "piece {i} {:?}", piece.sql);
        }
    });
    assert_eq!(
        cluster.pg_dump_schema(&whole_db),
        cluster.pg_dump_schema(&pieces_db),
        "both ways make the same schema"
    );
}
