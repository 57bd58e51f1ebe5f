//! Messages a new user's first hour found wrong or missing: each says the cause and the
//! command or grant that fixes it.

mod support;

use support::Cluster;
use support::fresh_database as db;
use support::run::{Folder, Run};

fn psql(db: &str, sql: &str) -> String {
    Cluster::shared().psql(db, sql)
}

fn two_reversible() -> Folder {
    Folder::with(&[
        (
            "1_a.sql",
            "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
        ),
        (
            "2_b.sql",
            "-- migrate:up\nCREATE TABLE b (id int);\n-- migrate:down\nDROP TABLE b;\n",
        ),
    ])
}

#[test]
fn a_permission_error_names_the_missing_grant_and_object() {
    let (db, _) = db("grants");
    psql(
        &db,
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'limited') \
         THEN CREATE ROLE limited LOGIN; END IF; END $$; \
         CREATE SCHEMA sg AUTHORIZATION limited; \
         CREATE TABLE owned_elsewhere (a int);",
    );
    let url = Cluster::shared().url_for("limited", "x", &db);
    let create = Folder::with(&[("1_create.sql", "CREATE TABLE public.t (a int);\n")]);
    Run::on(&url, &create, &["up", "--schema", "sg"])
        .run()
        .expect(7)
        .stderr_has("SQLSTATE 42501")
        .stderr_has("GRANT CREATE ON SCHEMA public TO limited");
    let insert = Folder::with(&[(
        "1_insert.sql",
        "INSERT INTO public.owned_elsewhere VALUES (1);\n",
    )]);
    Run::on(&url, &insert, &["up", "--schema", "sg"])
        .run()
        .expect(7)
        .stderr_has("GRANT INSERT ON TABLE owned_elsewhere TO limited");
    let alter = Folder::with(&[(
        "1_alter.sql",
        "-- migrate:up transaction:false\nALTER TABLE public.owned_elsewhere ADD COLUMN b int;\n",
    )]);
    Run::on(&url, &alter, &["up", "--schema", "sg"])
        .run()
        .expect(7)
        .stderr_has("only the owner of table owned_elsewhere")
        .stderr_has("OWNER TO limited");
}

#[test]
fn down_past_revisions_no_file_has_says_how_to_go_on() {
    let (_db, url) = db("downahead");
    let folder = two_reversible();
    Run::on(&url, &folder, &["up"]).run().expect(0);
    folder.remove("2_b.sql");
    let out = Run::on(&url, &folder, &["down", "-1"]).run();
    out.expect(8)
        .stderr_has("no file has it")
        .stderr_has("--purge");
    assert!(!out.stderr.contains("without --strict"), "{}", out.stderr);
}

#[test]
fn offline_ranges_go_each_way_and_say_which_command_goes_the_other() {
    let folder = two_reversible();
    let offline = "postgres://nobody@127.0.0.1:1/none";
    let down = Run::on(offline, &folder, &["down", "head:base", "--sql"]).run();
    down.expect(0)
        .stdout_has("DROP TABLE b;")
        .stdout_has("DROP TABLE a;");
    let b = down.stdout.find("DROP TABLE b;").expect("b");
    let a = down.stdout.find("DROP TABLE a;").expect("a");
    assert!(b < a, "newest first:\n{}", down.stdout);
    Run::on(offline, &folder, &["up", "2:1", "--sql"])
        .run()
        .expect(2)
        .stderr_has("goes backwards")
        .stderr_has("schemagate down 2:1 --sql");
    Run::on(offline, &folder, &["down", "1:2", "--sql"])
        .run()
        .expect(2)
        .stderr_has("schemagate up 1:2 --sql");
}

#[test]
fn files_that_look_like_migrations_but_are_skipped_get_a_warning_each() {
    let folder = Folder::with(&[
        ("1_a.sql", "CREATE TABLE a (id int);\n"),
        ("2_b.SQL", "CREATE TABLE b (id int);\n"),
        ("3_c.sql.txt", "CREATE TABLE c (id int);\n"),
        ("README.md", "notes\n"),
    ]);
    std::fs::create_dir(folder.path().join("old")).expect("subfolder");
    let out = Run::new(&["validate"])
        .env(
            "SCHEMAGATE_MIGRATIONS",
            folder.path().to_str().expect("utf-8"),
        )
        .run();
    out.expect(0)
        .stdout_has("ok: 1 migration")
        .stderr_has(&format!(
            "skipped {}: only the lower-case `.sql` ending",
            folder.shown("2_b.SQL")
        ))
        .stderr_has(&format!(
            "skipped {}: its name does not end in `.sql`",
            folder.shown("3_c.sql.txt")
        ))
        .stderr_has(&format!("skipped {}: a folder", folder.shown("old")));
    assert!(!out.stderr.contains("README"), "{}", out.stderr);
    assert_eq!(out.stderr.matches("skipped ").count(), 3, "{}", out.stderr);
}
