//! `repair` (Flyway's word): after a harmless edit to applied files, their checksums are
//! re-recorded, each printed with what changed and logged as an event.

mod support;

use support::Cluster;
use support::fresh_database as db;
use support::run::{Folder, Run};

fn psql(db: &str, sql: &str) -> String {
    Cluster::shared().psql(db, sql)
}

#[test]
fn repair_re_records_edited_checksums_one_event_each() {
    let (db, url) = db("repair");
    let folder = Folder::with(&[
        ("1_a.sql", "CREATE TABLE a (id int);\n"),
        ("2_b.sql", "CREATE TABLE b (id int);\n"),
    ]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    let before = psql(
        &db,
        "SELECT checksum FROM schemagate_history WHERE revision = '1'",
    );
    folder.write(
        "1_a.sql",
        "-- a comment added after the fact\nCREATE TABLE a (id int); -- and here\n",
    );
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(8)
        .stderr_has("checksum differs");

    let dry = Run::on(&url, &folder, &["repair", "--dry-run"]).run();
    dry.expect(0).stdout_has(&format!(
        "would re-record 1 ({}): checksum {}",
        folder.shown("1_a.sql"),
        &before[..12]
    ));
    assert!(!dry.stdout.contains("2 ("), "{}", dry.stdout);
    assert_eq!(
        psql(
            &db,
            "SELECT checksum FROM schemagate_history WHERE revision = '1'"
        ),
        before,
        "a dry run records nothing"
    );

    Run::on(&url, &folder, &["repair"])
        .run()
        .expect(0)
        .stdout_has("re-recorded 1 (")
        .stderr_has("re-recorded the checksum of 1 migration");
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM schemagate_events WHERE action = 'repair' AND revision = '1' \
             AND outcome = 'repaired' AND detail LIKE 'checksum % -> %'"
        ),
        "1"
    );
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("nothing to do");
    Run::on(&url, &folder, &["repair"])
        .run()
        .expect(0)
        .stderr_has("nothing to repair");
}

#[test]
fn allow_changed_also_comes_from_the_environment() {
    let (_db, url) = db("allowchangedenv");
    let folder = Folder::with(&[("1_a.sql", "CREATE TABLE a (id int);\n")]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    folder.write("1_a.sql", "CREATE TABLE a (id int); -- edited\n");
    Run::on(&url, &folder, &["up"])
        .env("SCHEMAGATE_ALLOW_CHANGED", "true")
        .run()
        .expect(0)
        .stderr_has("checksum differs");
}
