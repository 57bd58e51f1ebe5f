//! `COPY ... FROM stdin` with inline data, as pg_dump writes it, through the COPY protocol:
//! in both section kinds, in `--sql`, and when the data is bad (a clear exit 7 at the data
//! line, never a reconnect loop, never "rolled back" for what committed).

mod support;

use std::time::Duration;

use support::Cluster;
use support::fresh_database as db;
use support::run::{Folder, Run};
use support::state::{history, tables_exist};

/// A database's schema and data without schemagate's tables, comparable between databases.
fn dump_without_history(db: &str) -> String {
    Cluster::shared()
        .pg_dump(
            db,
            &[
                "--no-owner",
                "--exclude-table=schemagate_history",
                "--exclude-table=schemagate_events",
                "--exclude-table=schemagate_events_id_seq",
            ],
        )
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn source_with_data() -> String {
    let cluster = Cluster::shared();
    let db = cluster.create_database("copy_src");
    cluster.psql(&db, support::sql::DATA_FOR_DUMP);
    db
}

#[test]
fn a_pg_dump_baseline_with_data_applies_unchanged_in_both_section_kinds() {
    let source = source_with_data();
    let dump = Cluster::shared().pg_dump(&source, &["--no-owner"]);
    assert!(dump.contains("FROM stdin;") && dump.contains("\n\\restrict "));
    let expected = dump_without_history(&source);
    for marker in ["", "-- migrate:up transaction:false\n"] {
        let (db, url) = db("copy_baseline");
        let folder = Folder::with(&[("1_baseline.sql", &format!("{marker}{dump}"))]);
        let out = Run::on(&url, &folder, &["up"]).run();
        out.expect(0).stderr_has("applied 1 migration");
        assert!(!out.stderr.contains("connection lost"), "{}", out.stderr);
        assert_eq!(dump_without_history(&db), expected, "marker {marker:?}");
        assert_eq!(history(Cluster::shared(), &db), "1:applied");
        Run::on(&url, &folder, &["up"])
            .run()
            .expect(0)
            .stderr_has("nothing to do");
    }
}

#[test]
fn the_sql_script_carries_copy_data_for_psql() {
    let cluster = Cluster::shared();
    let folder = Folder::with(&[
        (
            "1_rows.sql",
            "CREATE TABLE t (a int, b text);\nCOPY t (a, b) FROM stdin;\n1\tone\n2\ttwo\n\\.\nINSERT INTO t VALUES (3, 'three');\n",
        ),
        (
            "2_more.sql",
            "-- migrate:up transaction:false\nCOPY t FROM STDIN WITH (FORMAT csv);\n4,four\n\\.\n",
        ),
    ]);
    let (ran, url) = db("copy_ran");
    Run::on(&url, &folder, &["up"]).run().expect(0);
    let (piped, piped_url) = db("copy_piped");
    let out = Run::on(&piped_url, &folder, &["up", "--sql"]).run();
    out.expect(0);
    cluster.psql(&piped, &out.stdout);
    let rows = "SELECT string_agg(a || ':' || b, ' ' ORDER BY a) FROM t";
    assert_eq!(cluster.psql(&ran, rows), "1:one 2:two 3:three 4:four");
    assert_eq!(cluster.psql(&piped, rows), cluster.psql(&ran, rows));
    assert_eq!(history(cluster, &piped), history(cluster, &ran));
}

#[test]
fn bad_copy_data_is_exit_7_at_its_line_in_a_transactional_section() {
    let (db, url) = db("copy_bad");
    let folder = Folder::with(&[(
        "1_copy.sql",
        "CREATE TABLE t (a int);\nCOPY t FROM stdin;\n1\n2\nthree\n\\.\n",
    )]);
    let out = Run::on(&url, &folder, &["up", "--wait-timeout", "5s"]).run();
    out.expect(7)
        .stderr_has("failed and was rolled back")
        .stderr_has("SQLSTATE 22P02")
        .stderr_has("1_copy.sql:5");
    assert!(!out.stderr.contains("connection lost"), "{}", out.stderr);
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
    assert!(!tables_exist(Cluster::shared(), &db, &["t"]));
    assert_eq!(history(Cluster::shared(), &db), "");
}

#[test]
fn bad_copy_data_in_a_transaction_false_section_says_what_was_committed() {
    let (db, url) = db("copy_bad_nt");
    let folder = Folder::with(&[(
        "1_copy.sql",
        "-- migrate:up transaction:false\nCREATE TABLE t (a int);\nCOPY t FROM stdin;\n1\nthree\n\\.\n",
    )]);
    let out = Run::on(&url, &folder, &["up", "--wait-timeout", "5s"]).run();
    out.expect(7)
        .stderr_has("stopped part-way; the statements before line 3 were committed")
        .stderr_has("SQLSTATE 22P02")
        .stderr_has("1_copy.sql:5");
    assert!(!out.stderr.contains("rolled back:"), "{}", out.stderr);
    assert!(!out.stderr.contains("connection lost"), "{}", out.stderr);
    assert_eq!(
        Cluster::shared().psql(&db, "SELECT count(*) FROM t"),
        "0",
        "the failed COPY committed nothing"
    );
    assert_eq!(history(Cluster::shared(), &db), "1:failed");
}
