//! One revision identity (issue 10, item 1) and the wrong folder (item 11b), against a
//! real PostgreSQL: a renamed or re-spelled file is never applied twice, and a database
//! none of whose revisions is in the folder is not migrated by accident.

mod support;

use support::Cluster;
use support::fresh_database as db;
use support::run::{Folder, Run};

fn psql(db: &str, sql: &str) -> String {
    Cluster::shared().psql(db, sql)
}

fn revisions(db: &str) -> String {
    psql(
        db,
        "SELECT string_agg(revision, ' ' ORDER BY revision) FROM schemagate_history",
    )
}

fn ok_ups(db: &str) -> String {
    psql(
        db,
        "SELECT count(*) FROM schemagate_events WHERE action = 'up' AND outcome = 'ok'",
    )
}

const A: &str = "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n";

#[test]
fn a_file_renamed_with_leading_zeros_is_the_same_migration() {
    let (db, url) = db("zeros");
    let folder = Folder::with(&[("7_x.sql", A)]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    folder.remove("7_x.sql");
    folder.write("007_x.sql", A);

    Run::on(&url, &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("nothing to do");
    assert_eq!(ok_ups(&db), "1", "migration 7 ran again");
    Run::on(&url, &folder, &["check"]).run().expect(0);
    Run::on(&url, &folder, &["status"])
        .run()
        .expect(0)
        .stdout_has("applied");

    Run::on(&url, &folder, &["down", "-1"]).run().expect(0);
    assert_eq!(revisions(&db), "", "down -1 left the row");
    assert_eq!(psql(&db, "SELECT to_regclass('a') IS NULL"), "t");
}

#[test]
fn a_row_spelled_differently_takes_the_files_spelling_under_the_lock() {
    let (db, url) = db("respell");
    let folder = Folder::with(&[
        ("7_x.sql", A),
        (
            "8_y.sql",
            "-- migrate:up\nCREATE TABLE y ();\n-- migrate:down\nDROP TABLE y;\n",
        ),
    ]);
    Run::on(&url, &folder, &["up", "7"]).run().expect(0);
    folder.remove("7_x.sql");
    folder.write("007_x.sql", A);
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("applied 1 migration");
    assert_eq!(revisions(&db), "007 8");
    assert_eq!(
        psql(
            &db,
            "SELECT detail FROM schemagate_events WHERE action = 'respelled'"
        ),
        "from 7"
    );
    // Targets and resolve compare identities too.
    Run::on(&url, &folder, &["down", "7"]).run().expect(0);
    assert_eq!(revisions(&db), "007");
}

#[test]
fn a_renamed_file_is_a_conflict_until_recorded() {
    let (db, url) = db("renamed");
    let folder = Folder::with(&[("1_a.sql", A)]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    folder.remove("1_a.sql");
    folder.write("2_a.sql", A);

    let out = Run::on(&url, &folder, &["up"]).run();
    out.expect(8)
        .stderr_has("renamed")
        .stderr_has("schemagate up --allow-renamed")
        .stderr_has(&folder.shown("2_a.sql"))
        .stderr_has("nothing was applied");
    assert!(out.stderr.contains(" 1 ") || out.stderr.contains(" 1,"));
    assert_eq!(revisions(&db), "1", "history changed");
    assert_eq!(ok_ups(&db), "1");
    Run::on(&url, &folder, &["check"]).run().expect(8);

    Run::on(&url, &folder, &["up"])
        .env("SCHEMAGATE_ALLOW_RENAMED", "true")
        .run()
        .expect(0);
    assert_eq!(revisions(&db), "2");
    assert_eq!(ok_ups(&db), "1", "the renamed file ran again");
    assert_eq!(
        psql(
            &db,
            "SELECT revision || ' ' || detail FROM schemagate_events WHERE action = 'renamed'"
        ),
        "2 from 1"
    );
    Run::on(&url, &folder, &["check"]).run().expect(0);
}

#[test]
fn allow_renamed_is_a_flag_too() {
    let (db, url) = db("renamed_flag");
    let folder = Folder::with(&[("1_a.sql", A)]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    folder.remove("1_a.sql");
    folder.write("2_b.sql", A);
    Run::on(&url, &folder, &["up", "--allow-renamed"])
        .run()
        .expect(0);
    assert_eq!(
        psql(
            &db,
            "SELECT revision || ':' || description FROM schemagate_history"
        ),
        "2:b"
    );
}

#[test]
fn a_database_with_none_of_the_folders_revisions_is_the_wrong_folder() {
    let (db, url) = db("wrong_folder");
    let first = Folder::with(&[
        ("1_a.sql", "CREATE TABLE a ();\n"),
        ("2_b.sql", "CREATE TABLE b ();\n"),
    ]);
    Run::on(&url, &first, &["up"]).run().expect(0);
    let other = Folder::with(&[("20250101000000_other.sql", "CREATE TABLE other ();\n")]);

    let folder_name = other.path().display().to_string();
    Run::on(&url, &other, &["up"])
        .run()
        .expect(8)
        .stderr_has("wrong folder")
        .stderr_has(&folder_name)
        .stderr_has("2 applied revisions")
        .stderr_has("--allow-unknown");
    assert_eq!(psql(&db, "SELECT to_regclass('other') IS NULL"), "t");
    Run::on(&url, &other, &["check"]).run().expect(8);

    Run::on(&url, &other, &["up"])
        .env("SCHEMAGATE_ALLOW_UNKNOWN", "1")
        .run()
        .expect(0)
        .stderr_has("ahead");
    assert_eq!(revisions(&db), "1 2 20250101000000");
}
