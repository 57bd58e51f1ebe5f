//! The read-only commands against a real PostgreSQL: `status` (text and JSON),
//! `current`, `history` and `heads`.

mod support;

use serde_json::Value;
use support::Cluster;
use support::run::{Folder, Run};

/// 1 -> 2 -> 4 (merges 2 and 3), 1 -> 3: a branch point, a merge point, one head.
fn diamond() -> Folder {
    Folder::with(&[
        (
            "1_base.sql",
            "-- migrate:up\nCREATE TABLE t1 ();\n-- migrate:down\nDROP TABLE t1;\n",
        ),
        (
            "2_left.sql",
            "-- migrate:revises 1\n-- migrate:up\nCREATE TABLE t2 ();\n-- migrate:down\nDROP TABLE t2;\n",
        ),
        (
            "3_right.sql",
            "-- migrate:revises 1\n-- migrate:up transaction:false\nCREATE TABLE t3 ();\n",
        ),
        (
            "4_join.sql",
            "-- migrate:revises 2, 3\n-- migrate:up\n-- nothing to run\n-- migrate:down\n",
        ),
    ])
}

fn offline(folder: &Folder, args: &[&str]) -> support::run::Outcome {
    let mut run = Run::new(args);
    run.env(
        "SCHEMAGATE_MIGRATIONS",
        folder.path().to_str().expect("utf-8"),
    );
    run.run()
}

#[test]
fn status_tells_all_five_states_apart_in_text_and_json() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("status");
    let url = cluster.url(&db);
    let folder = Folder::with(&[
        ("1_applied.sql", "CREATE TABLE a ();\n"),
        ("2_changed.sql", "CREATE TABLE b ();\n"),
        (
            "3_dirty.sql",
            "-- migrate:up transaction:false\nCREATE TABLE c ();\n",
        ),
        ("4_pending.sql", "CREATE TABLE d ();\n"),
    ]);

    // A fresh database: everything pending, and status creates nothing.
    Run::on(&url, &folder, &["status"])
        .run()
        .expect(0)
        .stdout_has("pending   1         -                    applied\n")
        .stdout_has("4 pending;");
    assert_eq!(
        cluster.psql(&db, "SELECT to_regclass('schemagate_history') IS NULL"),
        "t"
    );

    Run::on(&url, &folder, &["up", "2"]).run().expect(0);
    folder.write("2_changed.sql", "CREATE TABLE b (edited int);\n");
    cluster.psql(
        &db,
        "INSERT INTO schemagate_history (revision, description, checksum, status, method, applied_by, runner_version) \
         VALUES ('3', 'dirty', 'x', 'running', 'applied', 'elsewhere', '0'), \
                ('9', 'from a newer image', 'y', 'applied', 'applied', 'elsewhere', '0')",
    );
    let text = Run::on(&url, &folder, &["status"]).run();
    text.expect(0);
    let states: Vec<(&str, &str)> = text
        .stdout
        .lines()
        .skip(1)
        .take(5)
        .map(|l| {
            let mut words = l.split_whitespace();
            (words.next().unwrap_or(""), words.next().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        states,
        [
            ("applied", "1"),
            ("changed", "2"),
            ("dirty", "3"),
            ("pending", "4"),
            ("unknown", "9")
        ],
        "{}",
        text.stdout
    );
    text.stdout_has("1 applied, 1 pending, 1 changed, 1 dirty, 1 unknown;");

    let json = Run::on(&url, &folder, &["status", "--format", "json"]).run();
    json.expect(0);
    let v: Value = serde_json::from_str(json.stdout.trim()).expect("status --format json is JSON");
    assert_eq!(v["counts"]["changed"], 1);
    assert_eq!(v["counts"]["unknown"], 1);
    assert_eq!(v["heads"], serde_json::json!(["4"]));
    assert_eq!(v["at_head"], false);
    let m = &v["migrations"][0];
    assert_eq!(m["revision"], "1");
    assert_eq!(m["state"], "applied");
    assert_eq!(m["method"], "applied");
    assert!(
        m["applied_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{m}"
    );
    assert_eq!(v["migrations"][2]["status"], "running");
    assert_eq!(v["migrations"][4]["revision"], "9");
    assert_eq!(v["migrations"][4]["file"], Value::Null);
}

#[test]
fn current_shows_where_the_database_stands() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("current");
    let url = cluster.url(&db);
    let folder = diamond();
    let out = Run::on(&url, &folder, &["current"]).run();
    out.expect(0).stderr_has("nothing applied (base)");
    assert_eq!(out.stdout, "");

    Run::on(&url, &folder, &["up", "2"]).run().expect(0);
    Run::on(&url, &folder, &["current"])
        .run()
        .expect(0)
        .stdout_has("2, left\n");
    Run::on(&url, &folder, &["up"]).run().expect(0);
    let out = Run::on(&url, &folder, &["current", "-v"]).run();
    out.expect(0).stdout_has("4 (head), join\n");
    assert!(out.stdout.contains("    applied "), "{}", out.stdout);
}

#[test]
fn history_draws_the_graph_with_marks_and_states() {
    let cluster = Cluster::shared();
    let folder = diamond();
    let out = offline(&folder, &["history"]);
    out.expect(0);
    assert_eq!(
        out.stdout,
        "(2, 3) -> 4 (head) (mergepoint), join\n\
         1 -> 3, right\n\
         1 -> 2, left\n\
         <base> -> 1 (branchpoint), base\n"
    );

    let db = cluster.create_database("history");
    let url = cluster.url(&db);
    Run::on(&url, &folder, &["up", "2"]).run().expect(0);
    let out = Run::on(&url, &folder, &["history"]).run();
    out.expect(0);
    assert_eq!(
        out.stdout,
        "pending  (2, 3) -> 4 (head) (mergepoint), join\n\
         pending  1 -> 3, right\n\
         applied  1 -> 2 (current), left\n\
         applied  <base> -> 1 (branchpoint), base\n"
    );
    Run::on(&url, &folder, &["log", "--offline"])
        .run()
        .expect(0)
        .stdout_has("1 -> 2, left\n");
    let verbose = Run::on(&url, &folder, &["history", "-v"]).run();
    verbose
        .expect(0)
        .stdout_has(&format!(
            "Rev: 3\nParent: 1\nPath: {}\n",
            folder.shown("3_right.sql")
        ))
        .stdout_has("Up: transaction:false; down: none (irreversible)\nState: pending\n")
        .stdout_has("State: applied (applied ");
}

#[test]
fn heads_lists_each_unmerged_branch() {
    let folder = diamond();
    offline(&folder, &["heads"])
        .expect(0)
        .stdout_has("4 (head) (mergepoint), join\n");
    folder.remove("4_join.sql");
    let out = offline(&folder, &["heads", "-v"]);
    out.expect(0)
        .stdout_has("2 (head), left\n    parent: 1\n")
        .stdout_has("3 (head), right\n");
}
