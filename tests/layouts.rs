//! Other tools' folders, read unchanged, against a real PostgreSQL: for each tool a small
//! folder written as its documentation shows it (a no-transaction `CREATE INDEX
//! CONCURRENTLY`, a down section, a function body), detected, validated, applied, reverted
//! where the tool has downs, a second `up` that does nothing, and `--layout` forcing the
//! reading. Flyway's repeatable migrations run again when edited.

mod support;

use support::Cluster;
use support::fresh_database;
use support::run::{Folder, Run};

fn psql(db: &str, sql: &str) -> String {
    Cluster::shared().psql(db, sql)
}

fn revisions(db: &str) -> String {
    psql(
        db,
        "SELECT string_agg(revision, ' ' ORDER BY applied_at, revision) FROM schemagate_history",
    )
}

fn exists(db: &str, what: &str) -> bool {
    psql(db, &format!("SELECT to_regclass('{what}') IS NOT NULL")) == "t"
}

fn function_exists(db: &str, name: &str) -> bool {
    psql(
        db,
        &format!("SELECT count(*) FROM pg_proc WHERE proname = '{name}'"),
    ) == "1"
}

/// A valid index built by CREATE INDEX CONCURRENTLY (outside a transaction).
fn index_is_valid(db: &str, name: &str) -> bool {
    psql(
        db,
        &format!("SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass('{name}')"),
    ) == "t"
}

/// validate (detecting `layout`), up, a second up that does nothing.
fn validate_up_noop(folder: &Folder, layout: &str, url: &str, migrations: usize) {
    Run::on(url, folder, &["validate"])
        .run()
        .expect(0)
        .stderr_has(&format!("as a {layout} folder"))
        .stdout_has(&format!("ok: {migrations} migrations, 1 head"));
    Run::on(url, folder, &["up"])
        .run()
        .expect(0)
        .stderr_has(&format!("applied {migrations} migrations"));
    Run::on(url, folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("nothing to do");
}

const FUNCTION: &str = "CREATE FUNCTION touch_updated_at() RETURNS trigger AS $$\nBEGIN\n  NEW.updated_at = now();\n  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\n";

#[test]
fn golang_migrate_folder() {
    let (db, url) = fresh_database("golang_migrate");
    // As golang-migrate's MIGRATIONS.md shows: one pair per version, an explicit
    // transaction in the file, a lone CREATE INDEX CONCURRENTLY.
    let folder = Folder::with(&[
        (
            "000001_create_users_table.up.sql",
            "BEGIN;\n\nCREATE TABLE IF NOT EXISTS users (\n  id serial PRIMARY KEY,\n  email text NOT NULL,\n  updated_at timestamptz\n);\n\nCOMMIT;\n",
        ),
        (
            "000001_create_users_table.down.sql",
            "DROP TABLE IF EXISTS users;\n",
        ),
        (
            "000002_users_email_index.up.sql",
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);\n",
        ),
        (
            "000002_users_email_index.down.sql",
            "DROP INDEX CONCURRENTLY IF EXISTS users_email;\n",
        ),
        ("000003_touch.up.sql", FUNCTION),
        (
            "000003_touch.down.sql",
            "DROP FUNCTION touch_updated_at();\n",
        ),
    ]);
    validate_up_noop(&folder, "golang-migrate", &url, 3);
    assert_eq!(revisions(&db), "1 2 3");
    assert!(exists(&db, "users") && index_is_valid(&db, "users_email"));
    assert!(function_exists(&db, "touch_updated_at"));

    Run::on(&url, &folder, &["down", "-2"]).run().expect(0);
    assert_eq!(revisions(&db), "1");
    assert!(!function_exists(&db, "touch_updated_at") && !exists(&db, "users_email"));
    Run::on(&url, &folder, &["up"]).run().expect(0);
    assert_eq!(revisions(&db), "1 2 3");

    // Forced: as sqlx, the file's own BEGIN/COMMIT is transaction control in a
    // transactional migration, and the fix is sqlx's marker.
    Run::on(&url, &folder, &["validate", "--layout", "sqlx"])
        .run()
        .expect(3)
        .stderr_has("000001_create_users_table.up.sql:1:")
        .stderr_has("-- no-transaction");
}

#[test]
fn sqlx_folder() {
    let (db, url) = fresh_database("sqlx");
    let folder = Folder::with(&[
        (
            "20240101000000_users.sql",
            "-- Add users\nCREATE TABLE users (id bigserial PRIMARY KEY, email text NOT NULL, updated_at timestamptz);\n",
        ),
        (
            "20240102000000_users_email.up.sql",
            "-- no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n",
        ),
        (
            "20240102000000_users_email.down.sql",
            "-- no-transaction\nDROP INDEX CONCURRENTLY users_email;\n",
        ),
        ("20240103000000_touch.up.sql", FUNCTION),
        (
            "20240103000000_touch.down.sql",
            "DROP FUNCTION touch_updated_at();\n",
        ),
    ]);
    validate_up_noop(&folder, "sqlx", &url, 3);
    assert_eq!(
        revisions(&db),
        "20240101000000 20240102000000 20240103000000"
    );
    assert!(index_is_valid(&db, "users_email"));

    Run::on(&url, &folder, &["down", "-2"]).run().expect(0);
    assert!(!exists(&db, "users_email") && !function_exists(&db, "touch_updated_at"));
    // The first one is sqlx's irreversible kind: down refuses up front.
    Run::on(&url, &folder, &["down", "base"])
        .run()
        .expect(2)
        .stderr_has("20240101000000");
    Run::on(&url, &folder, &["up"]).run().expect(0);

    // Forced: golang-migrate reads only pairs, and says how to rename the plain file.
    Run::on(&url, &folder, &["validate"])
        .env("SCHEMAGATE_LAYOUT", "golang-migrate")
        .run()
        .expect(3)
        .stderr_has("20240101000000_users.up.sql");
}

#[test]
fn goose_folder() {
    let (db, url) = fresh_database("goose");
    // As goose's README shows its annotations.
    let folder = Folder::with(&[
        (
            "00001_create_users.sql",
            "-- +goose Up\nCREATE TABLE users (\n  id serial PRIMARY KEY,\n  email text NOT NULL,\n  updated_at timestamptz\n);\n\n-- +goose Down\nDROP TABLE users;\n",
        ),
        (
            "00002_users_email.sql",
            "-- +goose NO TRANSACTION\n-- +goose Up\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n\n-- +goose Down\nDROP INDEX CONCURRENTLY users_email;\n",
        ),
        (
            "00003_touch.sql",
            "-- +goose Up\n-- +goose StatementBegin\nCREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger AS $$\nBEGIN\n  NEW.updated_at = now();\n  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\n-- +goose StatementEnd\n\n-- +goose Down\n-- +goose StatementBegin\nDROP FUNCTION touch_updated_at();\n-- +goose StatementEnd\n",
        ),
    ]);
    validate_up_noop(&folder, "goose", &url, 3);
    assert_eq!(revisions(&db), "1 2 3");
    assert!(index_is_valid(&db, "users_email") && function_exists(&db, "touch_updated_at"));

    Run::on(&url, &folder, &["down", "-1"]).run().expect(0);
    assert!(!function_exists(&db, "touch_updated_at"));
    Run::on(&url, &folder, &["down", "base"]).run().expect(0);
    assert!(!exists(&db, "users"));
    Run::on(&url, &folder, &["up"]).run().expect(0);
    assert_eq!(revisions(&db), "1 2 3");

    // Forced: as sql-migrate, no file has its Up annotation.
    Run::on(&url, &folder, &["validate", "--layout", "sql-migrate"])
        .run()
        .expect(3)
        .stderr_has("without `-- +migrate Up`");

    // goose's own rules, as file errors with the fix.
    let broken = Folder::with(&[
        ("00001_a.sql", "CREATE TABLE a (x int);\n"),
        (
            "00002_b.sql",
            "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n",
        ),
    ]);
    Run::on(&url, &broken, &["validate", "--layout", "goose"])
        .run()
        .expect(3)
        .stderr_has("00001_a.sql: a goose migration without `-- +goose Up`")
        .stderr_has("00002_b.sql:2: `-- +goose StatementBegin` is never closed");
}

#[test]
fn sql_migrate_folder() {
    let (db, url) = fresh_database("sql_migrate");
    // As rubenv/sql-migrate's README shows them.
    let folder = Folder::with(&[
        (
            "1_initial.sql",
            "-- +migrate Up\nCREATE TABLE people (id int PRIMARY KEY, name text);\n\n-- +migrate Down\nDROP TABLE people;\n",
        ),
        (
            "2_people_name.sql",
            "-- +migrate Up notransaction\nCREATE INDEX CONCURRENTLY people_name ON people (name);\n\n-- +migrate Down notransaction\nDROP INDEX CONCURRENTLY people_name;\n",
        ),
        (
            "10_touch.sql",
            "-- +migrate Up\n-- +migrate StatementBegin\nCREATE FUNCTION touch_updated_at() RETURNS trigger AS $$\nBEGIN\n  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\n-- +migrate StatementEnd\n\n-- +migrate Down\nDROP FUNCTION touch_updated_at();\n",
        ),
    ]);
    validate_up_noop(&folder, "sql-migrate", &url, 3);
    // The ids are the file names, in sql-migrate's order (numeric prefix first).
    assert_eq!(
        revisions(&db),
        "1_initial.sql 2_people_name.sql 10_touch.sql"
    );
    assert!(index_is_valid(&db, "people_name") && function_exists(&db, "touch_updated_at"));

    Run::on(&url, &folder, &["down", "-2"]).run().expect(0);
    assert_eq!(revisions(&db), "1_initial.sql");
    assert!(!exists(&db, "people_name"));
    Run::on(&url, &folder, &["up"]).run().expect(0);
    Run::on(&url, &folder, &["status"])
        .run()
        .expect(0)
        .stdout_has("10_touch.sql");

    // Forced: as goose, no file has goose's Up annotation.
    Run::on(&url, &folder, &["validate", "--layout", "goose"])
        .run()
        .expect(3)
        .stderr_has("without `-- +goose Up`");
}

#[test]
fn flyway_folder_with_undo_repeatable_and_conf() {
    let (db, url) = fresh_database("flyway");
    let folder = Folder::with(&[
        (
            "V1__create_person.sql",
            "CREATE TABLE person (id int PRIMARY KEY, name varchar(100) NOT NULL);\n",
        ),
        (
            "V1.1__person_name_index.sql",
            "CREATE INDEX CONCURRENTLY person_name ON person (name);\n",
        ),
        (
            "V1.1__person_name_index.sql.conf",
            "executeInTransaction=false\n",
        ),
        (
            "V2__add_email.sql",
            "ALTER TABLE person ADD COLUMN email text;\n",
        ),
        (
            "U2__add_email.sql",
            "ALTER TABLE person DROP COLUMN email;\n",
        ),
        (
            "R__person_view.sql",
            "CREATE OR REPLACE VIEW person_view AS SELECT id, name FROM person;\n",
        ),
    ]);
    validate_up_noop(&folder, "flyway", &url, 4);
    assert_eq!(revisions(&db), "1 1.1 2 R__person_view");
    assert!(index_is_valid(&db, "person_name") && exists(&db, "person_view"));

    // Edited repeatable: the next up applies only it, and records the new checksum.
    folder.write(
        "R__person_view.sql",
        "CREATE OR REPLACE VIEW person_view AS SELECT id, name, upper(name) AS shout FROM person;\n",
    );
    Run::on(&url, &folder, &["status"])
        .run()
        .expect(0)
        .stdout_has("pending");
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("applied R__person_view")
        .stderr_has("applied 1 migration");
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'person_view'"
        ),
        "3"
    );
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM schemagate_events WHERE revision = 'R__person_view' AND outcome = 'ok'"
        ),
        "2",
        "an event each time it runs"
    );
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("nothing to do");

    // The undo script is the down section; repeatables are not reverted.
    Run::on(&url, &folder, &["down", "-1"])
        .run()
        .expect(0)
        .stderr_has("reverted 2");
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'person' AND column_name = 'email'"
        ),
        "0"
    );
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("applied 2");

    // A .conf key schemagate does not know is a file error with its line.
    folder.write(
        "V1.1__person_name_index.sql.conf",
        "executeInTransaction=false\nmixed=true\n",
    );
    Run::on(&url, &folder, &["validate"])
        .run()
        .expect(3)
        .stderr_has("V1.1__person_name_index.sql.conf:2: unknown key `mixed`");
}

#[test]
fn a_folder_mixing_two_tools_is_exit_3_naming_both_and_the_fix() {
    let (_db, url) = fresh_database("mixed");
    let folder = Folder::with(&[
        ("V1__init.sql", "SELECT 1;\n"),
        ("2_more.up.sql", "SELECT 2;\n"),
    ]);
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(3)
        .stderr_has("V1__init.sql")
        .stderr_has("2_more.up.sql")
        .stderr_has("--layout");
    let folder = Folder::with(&[
        ("1_a.sql", "-- +goose Up\nSELECT 1;\n"),
        ("2_b.sql", "-- migrate:up\nSELECT 2;\n"),
    ]);
    Run::on(&url, &folder, &["validate"])
        .run()
        .expect(3)
        .stderr_has("1_a.sql is a goose migration and 2_b.sql a schemagate one")
        .stderr_has("--layout");
}

#[test]
fn dbmate_markers_with_layout_dbmate() {
    let (db, url) = fresh_database("dbmate");
    let folder = Folder::with(&[(
        "20240101120000_create_users.sql",
        "--migrate:up\nCREATE TABLE users (id int);\n\n--migrate:down\nDROP TABLE users;\n",
    )]);
    // schemagate's own reading is strict about the spelling...
    Run::on(&url, &folder, &["validate"])
        .run()
        .expect(3)
        .stderr_has("mistyped `-- migrate:up` marker");
    // ...and dbmate's is dbmate's.
    Run::on(&url, &folder, &["up", "--layout", "dbmate"])
        .run()
        .expect(0);
    assert_eq!(revisions(&db), "20240101120000");
    Run::on(&url, &folder, &["down", "-1", "--layout", "dbmate"])
        .run()
        .expect(0);
    assert!(!exists(&db, "users"));
}

#[test]
fn a_real_world_shaped_golang_migrate_folder() {
    let (db, url) = fresh_database("golang_real");
    // Comments, several statements, an enum, data, a README beside the files.
    let folder = Folder::with(&[
        (
            "README.md",
            "# migrations\nRun with migrate -path db/migrations up\n",
        ),
        (
            "20230101120000_init.up.sql",
            "-- Initial schema\nCREATE TYPE status AS ENUM ('active', 'inactive');\nCREATE TABLE accounts (\n  id bigserial PRIMARY KEY,\n  status status NOT NULL DEFAULT 'active',\n  note text -- free text; may hold ; and '\n);\nINSERT INTO accounts (note) VALUES ('semi;colon'), ('it''s');\n",
        ),
        (
            "20230101120000_init.down.sql",
            "DROP TABLE accounts;\nDROP TYPE status;\n",
        ),
        (
            "20230215090000_add_index.up.sql",
            "CREATE INDEX CONCURRENTLY accounts_status ON accounts (status);\n",
        ),
        (
            "20230215090000_add_index.down.sql",
            "DROP INDEX CONCURRENTLY accounts_status;\n",
        ),
    ]);
    validate_up_noop(&folder, "golang-migrate", &url, 2);
    assert_eq!(revisions(&db), "20230101120000 20230215090000");
    assert_eq!(psql(&db, "SELECT count(*) FROM accounts"), "2");
    Run::on(&url, &folder, &["down", "base"]).run().expect(0);
    assert!(!exists(&db, "accounts"));
}
