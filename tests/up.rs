//! `schemagate up` against a real PostgreSQL: applying, failing, reconciling, configuring.

mod support;

use support::Cluster;
use support::fresh_database as db;
use support::run::{Folder, Run};
use support::sql::TRICKY;

fn psql(db: &str, sql: &str) -> String {
    Cluster::shared().psql(db, sql)
}

fn history(db: &str) -> String {
    psql(
        db,
        "SELECT string_agg(revision || ':' || status || ':' || method, ' ' ORDER BY revision) FROM schemagate_history",
    )
}

#[test]
fn applies_the_example_folder_and_then_has_nothing_to_do() {
    let (db, url) = db("example");
    let mut run = Run::new(&["up"]);
    run.env("DATABASE_URL", &url).env(
        "SCHEMAGATE_MIGRATIONS",
        concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"),
    );
    run.run()
        .expect(0)
        .stderr_has("applied 4 migrations in")
        .stderr_has("database at 20251210080000 (head)");
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM schemagate_history WHERE status = 'applied'"
        ),
        "4"
    );
    assert_eq!(
        psql(
            &db,
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_user_id_idx'::regclass"
        ),
        "t",
        "CREATE INDEX CONCURRENTLY ran outside a transaction and finished"
    );
    let again = run.run();
    again
        .expect(0)
        .stderr_has("nothing to do; database at 20251210080000 (head)");
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM schemagate_events WHERE outcome = 'ok'"
        ),
        "4"
    );
}

#[test]
fn history_rows_record_how_when_and_by_whom() {
    let (db, url) = db("rows");
    let folder = Folder::with(&[("1_create_things.sql", "CREATE TABLE things (id int);\n")]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    let row = psql(
        &db,
        "SELECT revision, description, length(checksum), status, method, applied_at <= now(), \
         execution_ms >= 0, applied_by <> '', runner_version FROM schemagate_history",
    );
    assert_eq!(
        row,
        format!(
            "1|create things|64|applied|applied|t|t|t|{}",
            env!("CARGO_PKG_VERSION")
        )
    );
}

#[test]
fn branches_are_applied_in_topological_order_with_ties_by_revision() {
    let (db, url) = db("topo");
    let folder = Folder::with(&[
        ("1_root.sql", "CREATE TABLE log (n text, at serial);\n"),
        (
            "3_left.sql",
            "-- migrate:revises 1\n-- migrate:up\nINSERT INTO log VALUES ('3');\n",
        ),
        (
            "2_right.sql",
            "-- migrate:revises 5\n-- migrate:up\nINSERT INTO log VALUES ('2');\n",
        ),
        (
            "5_early.sql",
            "-- migrate:revises 1\n-- migrate:up\nINSERT INTO log VALUES ('5');\n",
        ),
        (
            "9_merge.sql",
            "-- migrate:revises 3, 2\n-- migrate:up\nINSERT INTO log VALUES ('9');\n",
        ),
    ]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    // 2 revises 5, so 5 must come first although 2 < 3 < 5.
    assert_eq!(
        psql(&db, "SELECT string_agg(n, ',' ORDER BY at) FROM log"),
        "3,5,2,9"
    );
}

#[test]
fn several_heads_are_all_applied_with_a_warning() {
    let (db, url) = db("heads");
    let folder = Folder::with(&[
        ("1_root.sql", "CREATE TABLE a (id int);\n"),
        (
            "2_left.sql",
            "-- migrate:revises 1\n-- migrate:up\nCREATE TABLE b (id int);\n",
        ),
        (
            "3_right.sql",
            "-- migrate:revises 1\n-- migrate:up\nCREATE TABLE c (id int);\n",
        ),
    ]);
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("2 heads (2, 3)")
        .stderr_has("database at 2, 3 (heads)");
    assert_eq!(
        history(&db),
        "1:applied:applied 2:applied:applied 3:applied:applied"
    );
}

/// Every lexical trap at once, in a transaction:false migration that must be split.

#[test]
fn transaction_false_splits_statements_exactly_like_postgres() {
    let (db, url) = db("tricky");
    let folder = Folder::with(&[("1_tricky.sql", TRICKY)]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    assert_eq!(
        psql(
            &db,
            "SELECT string_agg(\"it's\" || '|' || \"a\"\"b\", ',' ORDER BY \"it's\") FROM \"semi;colon\""
        ),
        "five; six| $$ seven; ,one; two|three'; four"
    );
    assert_eq!(psql(&db, "SELECT tricky(), atomic_add(2, 3)"), "x;y|5");
    assert_eq!(
        psql(
            &db,
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'semi_idx'::regclass"
        ),
        "t"
    );
    assert_eq!(history(&db), "1:applied:applied");
}

#[test]
fn a_failing_migration_rolls_back_reports_and_a_fixed_rerun_continues() {
    let (db, url) = db("failing");
    let folder = Folder::with(&[
        ("1_first.sql", "CREATE TABLE first (id int);\n"),
        (
            "2_broken.sql",
            "-- migrate:up\nCREATE TABLE second (id int);\n\nINSERT INTO second\n  VALUES ('not a number');\n",
        ),
        ("3_third.sql", "CREATE TABLE third (id int);\n"),
    ]);
    let outcome = Run::on(&url, &folder, &["up"]).run();
    outcome
        .expect(7)
        .stderr_has("migration 2 failed and was rolled back")
        .stderr_has("SQLSTATE 22P02")
        .stderr_has("invalid input syntax for type integer")
        .stderr_has(&format!("{}:5", folder.shown("2_broken.sql")));
    assert_eq!(history(&db), "1:applied:applied");
    assert_eq!(
        psql(&db, "SELECT to_regclass('second') IS NULL"),
        "t",
        "rolled back"
    );
    assert_eq!(
        psql(
            &db,
            "SELECT outcome FROM schemagate_events WHERE revision = '2'"
        ),
        "failed"
    );

    folder.write(
        "2_broken.sql",
        "-- migrate:up\nCREATE TABLE second (id int);\nINSERT INTO second VALUES (2);\n",
    );
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("applied 2 migrations");
    assert_eq!(
        history(&db),
        "1:applied:applied 2:applied:applied 3:applied:applied"
    );
}

#[test]
fn an_error_without_a_position_is_located_by_statement() {
    let (_db, url) = db("noposition");
    let folder = Folder::with(&[(
        "1_dup.sql",
        "-- migrate:up\nCREATE TABLE t (id int);\nSELECT 1;\n\nCREATE TABLE t (id int);\n",
    )]);
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(7)
        .stderr_has("SQLSTATE 42P07")
        .stderr_has(&format!("{}:5", folder.shown("1_dup.sql")));
}

#[test]
fn concurrently_in_a_transactional_migration_says_to_mark_it() {
    let (_db, url) = db("concurrently");
    let folder = Folder::with(&[
        ("1_t.sql", "CREATE TABLE t (id int);\n"),
        ("2_idx.sql", "CREATE INDEX CONCURRENTLY t_idx ON t (id);\n"),
    ]);
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(7)
        .stderr_has("SQLSTATE 25001")
        .stderr_has("transaction:false");
}

#[test]
fn a_failing_transaction_false_statement_is_located_and_resolvable() {
    let (db, url) = db("nontx");
    let folder = Folder::with(&[
        ("1_t.sql", "CREATE TABLE t (id int);\n"),
        (
            "2_idx.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY t_a ON t (id);\nCREATE INDEX CONCURRENTLY t_b\n  ON t (missing);\n",
        ),
    ]);
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(7)
        // CREATE INDEX errors carry no position: the failing statement's first line.
        .stderr_has(&format!("{}:3", folder.shown("2_idx.sql")))
        .stderr_has("schemagate resolve 2");
    assert_eq!(history(&db), "1:applied:applied 2:failed:applied");

    // The dirty row stops every later run until a person resolves it.
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(8)
        .stderr_has("marked 'failed'")
        .stderr_has("schemagate resolve 2 --rolled-back");

    psql(&db, "DROP INDEX t_a");
    folder.write(
        "2_idx.sql",
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY t_a ON t (id);\n",
    );
    Run::on(&url, &folder, &["resolve", "2", "--rolled-back"])
        .run()
        .expect(0);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    assert_eq!(history(&db), "1:applied:applied 2:applied:applied");
    assert_eq!(
        psql(
            &db,
            "SELECT string_agg(outcome, ',' ORDER BY id) FROM schemagate_events WHERE revision = '2'"
        ),
        "started,failed,rolled-back,started,ok"
    );
}

#[test]
fn a_transaction_false_failure_before_any_statement_ran_leaves_nothing_dirty() {
    let (db, url) = db("nontx_first");
    let folder = Folder::with(&[(
        "1_idx.sql",
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY t_a ON missing (id);\n",
    )]);
    Run::on(&url, &folder, &["up"]).run().expect(7);
    assert_eq!(psql(&db, "SELECT count(*) FROM schemagate_history"), "0");
}

#[test]
fn single_transaction_is_all_or_nothing() {
    let (db, url) = db("single");
    let folder = Folder::with(&[
        ("1_a.sql", "CREATE TABLE a (id int);\n"),
        ("2_b.sql", "CREATE TABLE b (id int);\n"),
        ("3_c.sql", "CREATE TABLE c (id int);\nSELECT 1/0;\n"),
    ]);
    Run::on(&url, &folder, &["up", "--single-transaction"])
        .run()
        .expect(7)
        .stderr_has("migration 3 failed")
        .stderr_has(&format!("{}:2", folder.shown("3_c.sql")));
    assert_eq!(psql(&db, "SELECT count(*) FROM schemagate_history"), "0");
    assert_eq!(psql(&db, "SELECT to_regclass('a') IS NULL"), "t");

    folder.write("3_c.sql", "CREATE TABLE c (id int);\n");
    Run::on(&url, &folder, &["up", "--single-transaction"])
        .run()
        .expect(0)
        .stderr_has("applied 3 migrations");

    folder.write("4_d.sql", "-- migrate:up transaction:false\nVACUUM a;\n");
    Run::on(&url, &folder, &["up", "--single-transaction"])
        .run()
        .expect(2)
        .stderr_has("transaction:false");
}

#[test]
fn session_settings_do_not_leak_into_the_next_migration() {
    let (db, url) = db("leak");
    let default_timezone = psql(&db, "SHOW timezone");
    let folder = Folder::with(&[
        (
            "1_set.sql",
            "CREATE SCHEMA elsewhere;\nSET search_path = elsewhere;\nSET timezone = 'Asia/Tokyo';\nCREATE TABLE inside (id int);\n",
        ),
        (
            "2_nontx.sql",
            "-- migrate:up transaction:false\nSET statement_timeout = '1ms';\nSET search_path = elsewhere;\n",
        ),
        (
            "3_check.sql",
            "CREATE TABLE public.seen AS SELECT current_setting('timezone') AS tz, current_setting('search_path') AS path, current_setting('statement_timeout') AS st;\nSELECT pg_sleep(0.05);\n",
        ),
    ]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    assert_eq!(
        psql(&db, "SELECT to_regclass('elsewhere.inside') IS NOT NULL"),
        "t"
    );
    assert_eq!(
        psql(&db, "SELECT tz, path, st FROM seen"),
        format!("{default_timezone}|\"$user\", public|0")
    );
}

#[test]
fn notices_from_migrations_reach_the_log() {
    let (_db, url) = db("notice");
    let folder = Folder::with(&[(
        "1_n.sql",
        "DO $$ BEGIN RAISE NOTICE 'hello from the migration'; END $$;\n",
    )]);
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("hello from the migration");
}

// --- reconcile ---------------------------------------------------------------------

#[test]
fn an_edited_applied_migration_is_a_conflict_unless_allowed() {
    let (_db, url) = db("changed");
    let folder = Folder::with(&[
        (
            "1_a.sql",
            "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
        ),
        ("2_b.sql", "CREATE TABLE b (id int);\n"),
    ]);
    Run::on(&url, &folder, &["up"]).run().expect(0);

    // Editing the down section or a comment above the markers changes nothing.
    folder.write(
        "1_a.sql",
        "-- a note\n-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a CASCADE;\n",
    );
    Run::on(&url, &folder, &["up"]).run().expect(0);

    folder.write("1_a.sql", "-- migrate:up\nCREATE TABLE a (id bigint);\n");
    folder.write("3_c.sql", "CREATE TABLE c (id int);\n");
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(8)
        .stderr_has("migration 1")
        .stderr_has("edited after it was applied")
        .stderr_has("--allow-changed");
    Run::on(&url, &folder, &["up", "--allow-changed"])
        .run()
        .expect(0)
        .stderr_has("applied 1 migration ");
}

#[test]
fn a_late_merged_older_revision_is_out_of_order() {
    let (db, url) = db("order");
    let folder = Folder::with(&[
        ("20250101_a.sql", "CREATE TABLE a (id int);\n"),
        ("20250103_c.sql", "CREATE TABLE c (id int);\n"),
    ]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    folder.write("20250102_b.sql", "CREATE TABLE b (id int);\n");
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(8)
        .stderr_has("migration 20250102")
        .stderr_has("20250103 is already applied")
        .stderr_has("--allow-out-of-order");
    Run::on(&url, &folder, &["up", "--allow-out-of-order"])
        .run()
        .expect(0);
    assert_eq!(psql(&db, "SELECT to_regclass('b') IS NOT NULL"), "t");
}

#[test]
fn a_database_ahead_of_the_files_warns_or_fails_with_strict() {
    let (_db, url) = db("ahead");
    let folder = Folder::with(&[
        ("1_a.sql", "CREATE TABLE a (id int);\n"),
        ("2_b.sql", "CREATE TABLE b (id int);\n"),
    ]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    folder.remove("2_b.sql");
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("ahead of these files");
    Run::on(&url, &folder, &["up", "--strict"])
        .run()
        .expect(8)
        .stderr_has("migration 2 applied");
}

#[test]
fn a_dirty_row_is_reported_with_the_resolve_command() {
    let (db, url) = db("dirty");
    let folder = Folder::with(&[
        ("1_a.sql", "CREATE TABLE a (id int);\n"),
        (
            "2_b.sql",
            "-- migrate:up transaction:false\nCREATE TABLE b (id int);\n",
        ),
    ]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    psql(
        &db,
        "UPDATE schemagate_history SET status = 'running' WHERE revision = '2'",
    );
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(8)
        .stderr_has("migration 2")
        .stderr_has("marked 'running'")
        .stderr_has("schemagate resolve 2 --applied");
    Run::on(&url, &folder, &["resolve", "2", "--applied"])
        .run()
        .expect(0);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    Run::on(&url, &folder, &["resolve", "2", "--applied"])
        .run()
        .expect(2)
        .stderr_has("not dirty");
}

// --- configuration and output --------------------------------------------------------

#[test]
fn database_url_file_and_pg_variables() {
    let cluster = Cluster::shared();
    let (db, url) = db("config");
    let folder = Folder::with(&[("1_a.sql", "CREATE TABLE a (id int);\n")]);
    let url_file = folder.path().join("url.secret");
    std::fs::write(&url_file, format!("{url}\n")).expect("write url file");
    let mut run = Run::new(&["up"]);
    run.env("DATABASE_URL_FILE", url_file.to_str().expect("utf-8"))
        .env(
            "SCHEMAGATE_MIGRATIONS",
            folder.path().to_str().expect("utf-8"),
        );
    run.run().expect(0).stderr_has("applied 1 migration");

    folder.write("2_b.sql", "CREATE TABLE b (id int);\n");
    let mut run = Run::new(&["up"]);
    run.env("PGHOST", cluster.host())
        .env("PGPORT", &cluster.port().to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", &db)
        .env("PGAPPNAME", "deploy-job")
        .env(
            "SCHEMAGATE_MIGRATIONS",
            folder.path().to_str().expect("utf-8"),
        );
    run.run().expect(0).stderr_has("applied 1 migration");

    let mut both = Run::new(&["up"]);
    both.env("DATABASE_URL", &url)
        .env("DATABASE_URL_FILE", url_file.to_str().expect("utf-8"))
        .env(
            "SCHEMAGATE_MIGRATIONS",
            folder.path().to_str().expect("utf-8"),
        );
    both.run().expect(2).stderr_has("keep one");
}

#[test]
fn flags_beat_environment() {
    let (db, url) = db("precedence");
    let folder = Folder::with(&[("1_a.sql", "CREATE TABLE a (id int);\n")]);
    let mut run = Run::on(&url, &folder, &["up", "--schema", "from_flag"]);
    run.env("SCHEMAGATE_SCHEMA", "from_env");
    run.run().expect(0);
    assert_eq!(
        psql(
            &db,
            "SELECT to_regclass('from_flag.schemagate_history') IS NOT NULL, to_regclass('from_env.schemagate_history') IS NULL"
        ),
        "t|t"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let (_db, url) = db("json");
    let folder = Folder::with(&[("1_a.sql", "CREATE TABLE a (id int);\n")]);
    let mut run = Run::on(&url, &folder, &["up", "--log-format", "json"]);
    let outcome = run.run();
    outcome.expect(0);
    assert!(
        outcome.stdout.is_empty(),
        "logs go to stderr: {}",
        outcome.stdout
    );
    let lines: Vec<&str> = outcome.stderr.lines().collect();
    assert!(!lines.is_empty());
    for line in &lines {
        assert!(
            line.starts_with('{') && line.ends_with('}') && line.contains("\"level\":"),
            "not a JSON log line: {line}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"applied\":1") && l.contains("applied 1 migration")),
        "{}",
        outcome.stderr
    );
    assert!(
        lines.last().is_some_and(|l| l.contains("\"run.finished\"")),
        "{}",
        outcome.stderr
    );
}

#[test]
fn text_logs_have_time_level_and_fields() {
    let (_db, url) = db("text");
    let folder = Folder::with(&[("1_a.sql", "CREATE TABLE a (id int);\n")]);
    let outcome = Run::on(&url, &folder, &["up", "--log-level", "debug"]).run();
    outcome.expect(0);
    let summary = outcome
        .stderr
        .lines()
        .find(|l| l.contains("applied 1 migration"))
        .unwrap_or_default();
    assert!(summary.contains(" INFO "), "{summary}");
    assert!(summary.contains("elapsed_ms="), "{summary}");
    assert!(summary.starts_with("20"), "timestamp first: {summary}");
    outcome.stderr_has("DEBUG");
}
