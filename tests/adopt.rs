//! `schemagate adopt` and `up --adopt` against a real PostgreSQL: the other tool applies
//! the first migrations (the real tool where it installs here: sql-migrate, Alembic,
//! sqlx-cli; the tool's documented table and rows otherwise), schemagate adopts and
//! applies the rest, and the schema equals a straight `schemagate up` of the same files.
//!
//! A missing tool fails its test, naming the install step (.ci/run installs them all).

mod support;

use std::process::Command;

use support::Cluster;
use support::fresh_database as db;
use support::run::{Folder, Run};

fn psql(db: &str, sql: &str) -> String {
    Cluster::shared().psql(db, sql)
}

/// The migrations every scenario uses, as native schemagate files.
const FILES: [(&str, &str, &str); 4] = [
    (
        "1",
        "init",
        "CREATE TABLE users (id bigint PRIMARY KEY, email text NOT NULL UNIQUE);",
    ),
    (
        "2",
        "orders",
        "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id), total numeric(12, 2) DEFAULT 0);",
    ),
    (
        "3",
        "index",
        "CREATE INDEX orders_user_idx ON orders (user_id);",
    ),
    (
        "4",
        "view",
        "CREATE VIEW user_totals AS SELECT u.email, sum(o.total) AS total FROM users u LEFT JOIN orders o ON o.user_id = u.id GROUP BY u.email;",
    ),
];

/// A native folder of `FILES`, each revision as given by `revision(i)` and revising the
/// one before when `chain`.
fn native(revision: impl Fn(usize) -> String, chain: bool) -> Folder {
    let folder = Folder::new();
    for (i, (_, slug, sql)) in FILES.iter().enumerate() {
        let header = match (chain, i) {
            (false, _) => String::new(),
            (true, 0) => "-- migrate:revises base\n".into(),
            (true, _) => format!("-- migrate:revises {}\n", revision(i - 1)),
        };
        folder.write(
            &format!("{}_{slug}.sql", revision(i)),
            &format!("{header}-- migrate:up\n{sql}\n\n-- migrate:down\n"),
        );
    }
    folder
}

fn numbered() -> Folder {
    native(|i| FILES[i].0.to_string(), false)
}

/// Runs the first `n` migrations' SQL by hand, as the other tool did.
fn apply_by_hand(db: &str, n: usize) {
    for (_, _, sql) in &FILES[..n] {
        psql(db, sql);
    }
}

/// The schema without the history tables of schemagate and of the tools.
fn schema(db: &str) -> String {
    let mut args = vec!["--schema-only", "--no-owner"];
    for table in [
        "schemagate_*",
        "schema_migrations",
        "_sqlx_migrations",
        "goose_db_version*",
        "flyway_schema_history",
        "gorp_migrations",
        "alembic_version",
    ] {
        args.extend(["-T", table]);
    }
    Cluster::shared()
        .pg_dump(db, &args)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The schema a straight `schemagate up` of `folder` makes.
fn straight(folder: &Folder) -> String {
    let (db, url) = db("adopt_straight");
    Run::on(&url, folder, &["up"]).run().expect(0);
    schema(&db)
}

fn history(db: &str) -> String {
    psql(
        db,
        "SELECT string_agg(revision || ':' || method, ' ' ORDER BY applied_at, revision) FROM schemagate_history",
    )
}

/// How many rows schemagate's history has (none when it was never created).
fn recorded(db: &str) -> usize {
    psql(
        db,
        "SELECT CASE WHEN to_regclass('schemagate_history') IS NULL THEN 0 \
         ELSE (xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM schemagate_history', false, true, '')))[1]::text::int END",
    )
    .parse()
    .expect("a count")
}

fn adopted_events(db: &str) -> String {
    psql(
        db,
        "SELECT string_agg(revision || ' ' || detail, '; ' ORDER BY id) FROM schemagate_events WHERE action = 'adopt' AND outcome = 'adopted'",
    )
}

/// The whole of a table, to show it unchanged.
fn table(db: &str, name: &str) -> String {
    psql(
        db,
        &format!("SELECT coalesce(string_agg(t::text, ' ' ORDER BY t::text), '') FROM {name} t"),
    )
}

/// The tail every scenario shares: adopt, the tool's table unchanged, a second adopt
/// records nothing, `up` applies the rest, and the schema is a straight run's.
fn adopt_then_up(db: &str, url: &str, folder: &Folder, tool_table: &str, tool: &str, n: usize) {
    let before = table(db, tool_table);
    let recorded = Run::on(url, folder, &["adopt"]).run();
    recorded.expect(0).stderr_has(&format!(
        "adopted {n} revisions from {tool} (public.{tool_table})"
    ));
    let revisions: Vec<String> = FILES[..n]
        .iter()
        .map(|(r, _, _)| format!("{r}:stamped"))
        .collect();
    assert_eq!(history(db), revisions.join(" "));
    assert!(
        adopted_events(db).contains(&format!("from {tool} (public.{tool_table})")),
        "{}",
        adopted_events(db)
    );
    Run::on(url, folder, &["adopt"])
        .run()
        .expect(0)
        .stderr_has(&format!("adopted 0 revisions from {tool}"))
        .stderr_has(&format!("({n} already recorded"));
    assert_eq!(
        psql(
            db,
            "SELECT count(*) FROM schemagate_events WHERE action = 'adopt'"
        ),
        n.to_string(),
        "a second adopt records nothing"
    );
    Run::on(url, folder, &["up"])
        .run()
        .expect(0)
        .stderr_has(&format!("applied {} migration", FILES.len() - n));
    assert_eq!(
        table(db, tool_table),
        before,
        "the tool's table is unchanged"
    );
    assert_eq!(schema(db), straight(folder));
}

/// `program` runs, or the test fails saying how to install it.
fn require(program: &str, args: &[&str], install: &str) {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{program} {} failed: {}; install it with: {install} (.ci/run does)",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            panic!("{program} is not installed ({e}): install it with: {install} (.ci/run does)")
        }
    }
}

fn run_tool(command: &mut Command) {
    let out = command.output().expect("the tool starts");
    assert!(
        out.status.success(),
        "{command:?} failed\n--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sql_migrate_applies_two_schemagate_adopts_and_applies_the_rest() {
    require("sql-migrate", &["--version"], "apt-get install sql-migrate");
    let (db, url) = db("adopt_sqlmigrate");
    // sql-migrate's own folder (its markers), holding the first two files only.
    let theirs = Folder::new();
    for (rev, slug, sql) in &FILES[..2] {
        theirs.write(
            &format!("{rev}_{slug}.sql"),
            &format!("-- +migrate Up\n{sql}\n\n-- +migrate Down\n"),
        );
    }
    let cluster = Cluster::shared();
    let config = theirs.path().join("dbconfig.yml");
    std::fs::write(
        &config,
        format!(
            "test:\n  dialect: postgres\n  datasource: host={} port={} user=postgres dbname={db} sslmode=disable\n  dir: {}\n",
            cluster.host(),
            cluster.port(),
            theirs.path().display()
        ),
    )
    .expect("write dbconfig.yml");
    run_tool(
        Command::new("sql-migrate")
            .arg("up")
            .arg(format!("-config={}", config.display()))
            .arg("-env=test"),
    );
    assert_eq!(
        psql(
            &db,
            "SELECT string_agg(id, ' ' ORDER BY id) FROM gorp_migrations"
        ),
        "1_init.sql 2_orders.sql",
        "sql-migrate stores the file names"
    );
    adopt_then_up(&db, &url, &numbered(), "gorp_migrations", "sql-migrate", 2);
}

/// Alembic hex revision ids, kept as schemagate revisions.
const ALEMBIC: [&str; 4] = [
    "ae1027a6acf",
    "27c6a30d7c24",
    "3f2b9d0c1e55",
    "1975ea83b712",
];

#[test]
fn alembic_applies_three_schemagate_adopts_and_applies_the_rest() {
    require(
        "python3",
        &["-c", "import alembic, sqlalchemy, psycopg2"],
        "pip install alembic psycopg2-binary",
    );
    let (db, url) = db("adopt_alembic");
    let project = Folder::new();
    let versions = project.path().join("versions");
    std::fs::create_dir_all(&versions).expect("versions folder");
    let cluster = Cluster::shared();
    std::fs::write(
        project.path().join("alembic.ini"),
        format!(
            "[alembic]\nscript_location = {}\nsqlalchemy.url = postgresql+psycopg2://postgres@{}:{}/{db}\n",
            project.path().display(),
            cluster.host(),
            cluster.port()
        ),
    )
    .expect("alembic.ini");
    std::fs::write(
        project.path().join("env.py"),
        "from alembic import context\n\
         from sqlalchemy import create_engine\n\
         engine = create_engine(context.config.get_main_option('sqlalchemy.url'))\n\
         with engine.connect() as connection:\n\
         \x20   context.configure(connection=connection)\n\
         \x20   with context.begin_transaction():\n\
         \x20       context.run_migrations()\n",
    )
    .expect("env.py");
    for (i, (_, slug, sql)) in FILES.iter().enumerate() {
        let down = if i == 0 {
            "None".to_string()
        } else {
            format!("'{}'", ALEMBIC[i - 1])
        };
        std::fs::write(
            versions.join(format!("{}_{slug}.py", ALEMBIC[i])),
            format!(
                "from alembic import op\n\nrevision = '{}'\ndown_revision = {down}\nbranch_labels = None\ndepends_on = None\n\n\
                 def upgrade():\n    op.execute(\"\"\"{sql}\"\"\")\n\n\ndef downgrade():\n    pass\n",
                ALEMBIC[i]
            ),
        )
        .expect("alembic revision");
    }
    run_tool(
        Command::new("python3")
            .args(["-m", "alembic", "-c"])
            .arg(project.path().join("alembic.ini"))
            .args(["upgrade", ALEMBIC[2]]),
    );
    assert_eq!(
        psql(&db, "SELECT version_num FROM alembic_version"),
        ALEMBIC[2]
    );
    let folder = native(|i| ALEMBIC[i].to_string(), true);
    let before = table(&db, "alembic_version");
    Run::on(&url, &folder, &["adopt"])
        .run()
        .expect(0)
        .stderr_has("adopted 3 revisions from alembic (public.alembic_version)");
    // Recorded parents first (the events' order), not in revision order.
    assert_eq!(
        psql(
            &db,
            "SELECT string_agg(revision, ' ' ORDER BY id) FROM schemagate_events WHERE action = 'adopt'"
        ),
        ALEMBIC[..3].join(" ")
    );
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("applied 1 migration");
    assert_eq!(table(&db, "alembic_version"), before);
    assert_eq!(schema(&db), straight(&folder));
}

#[test]
fn sqlx_cli_applies_two_schemagate_adopts_and_applies_the_rest() {
    require(
        "sqlx",
        &["--version"],
        "cargo install sqlx-cli --locked --no-default-features --features postgres,rustls",
    );
    let (db, url) = db("adopt_sqlx");
    // sqlx's simple files are plain SQL: the same files as schemagate's, first two only.
    let theirs = Folder::new();
    for (rev, slug, sql) in &FILES[..2] {
        theirs.write(&format!("{rev}_{slug}.sql"), &format!("{sql}\n"));
    }
    run_tool(
        Command::new("sqlx")
            .args(["migrate", "run", "--no-dotenv", "--source"])
            .arg(theirs.path())
            .args(["--database-url", &url])
            .current_dir(theirs.path()),
    );
    assert_eq!(
        psql(
            &db,
            "SELECT string_agg(version::text || ':' || success, ' ' ORDER BY version) FROM _sqlx_migrations"
        ),
        "1:true 2:true"
    );
    adopt_then_up(&db, &url, &numbered(), "_sqlx_migrations", "sqlx", 2);
}

/// golang-migrate's table as its postgres driver creates it (database/postgres/postgres.go).
const GOLANG_MIGRATE: &str =
    "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, dirty boolean NOT NULL);";

#[test]
fn golang_migrate_version_two_adopts_one_and_two() {
    let (db, url) = db("adopt_golang");
    apply_by_hand(&db, 2);
    psql(
        &db,
        &format!("{GOLANG_MIGRATE} INSERT INTO schema_migrations VALUES (2, false);"),
    );
    adopt_then_up(
        &db,
        &url,
        &numbered(),
        "schema_migrations",
        "golang-migrate",
        2,
    );
}

#[test]
fn dbmate_rows_are_adopted_and_told_apart_from_golang_migrate() {
    let (db, url) = db("adopt_dbmate");
    apply_by_hand(&db, 3);
    // dbmate's postgres driver: `(version varchar(128) primary key)`.
    psql(
        &db,
        "CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY); \
         INSERT INTO schema_migrations VALUES ('1'), ('2'), ('3');",
    );
    adopt_then_up(&db, &url, &numbered(), "schema_migrations", "dbmate", 3);
}

#[test]
fn goose_latest_rows_are_adopted() {
    let (db, url) = db("adopt_goose");
    apply_by_hand(&db, 2);
    // goose's postgres dialect (internal/dialect/dialectquery/postgres.go); version 0 is its
    // own first row, and version 3 went up and down again.
    psql(
        &db,
        "CREATE TABLE goose_db_version (id serial NOT NULL, version_id bigint NOT NULL, \
           is_applied boolean NOT NULL, tstamp timestamp NULL DEFAULT now(), PRIMARY KEY (id)); \
         INSERT INTO goose_db_version (version_id, is_applied) VALUES \
           (0, true), (1, true), (2, true), (3, true), (3, false);",
    );
    adopt_then_up(&db, &url, &numbered(), "goose_db_version", "goose", 2);
}

/// Flyway's history table on PostgreSQL (createMetaDataTable.sql).
const FLYWAY: &str = "CREATE TABLE flyway_schema_history (
    installed_rank integer NOT NULL PRIMARY KEY,
    version varchar(50),
    description varchar(200) NOT NULL,
    type varchar(20) NOT NULL,
    script varchar(1000) NOT NULL,
    checksum integer,
    installed_by varchar(100) NOT NULL,
    installed_on timestamp NOT NULL DEFAULT now(),
    execution_time integer NOT NULL,
    success boolean NOT NULL
);";

#[test]
fn flyway_versions_undo_and_repeatable_rows_are_read_as_flyway_means_them() {
    let (db, url) = db("adopt_flyway");
    apply_by_hand(&db, 2);
    // Versions 1 and 1.1 (native file 11); 3 applied and undone; a repeatable.
    psql(
        &db,
        &format!(
            "{FLYWAY} INSERT INTO flyway_schema_history VALUES \
             (1, '1', 'init', 'SQL', 'V1__init.sql', 1, 'me', now(), 5, true), \
             (2, '1.1', 'orders', 'SQL', 'V1_1__orders.sql', 2, 'me', now(), 5, true), \
             (3, NULL, 'views', 'SQL', 'R__views.sql', 3, 'me', now(), 5, true), \
             (4, '3', 'index', 'SQL', 'V3__index.sql', 4, 'me', now(), 5, true), \
             (5, '3', 'index', 'UNDO_SQL', 'U3__index.sql', 5, 'me', now(), 5, true);"
        ),
    );
    psql(&db, "DROP INDEX IF EXISTS orders_user_idx");
    let folder = native(|i| ["1", "11", "3", "4"][i].to_string(), true);
    let before = table(&db, "flyway_schema_history");
    Run::on(&url, &folder, &["adopt"])
        .run()
        .expect(0)
        .stderr_has("adopted 2 revisions from flyway (public.flyway_schema_history)")
        .stderr_has("1 row of Flyway's repeatable migrations");
    assert_eq!(history(&db), "1:stamped 11:stamped");
    Run::on(&url, &folder, &["up"]).run().expect(0);
    assert_eq!(table(&db, "flyway_schema_history"), before);
    assert_eq!(schema(&db), straight(&folder));
}

#[test]
fn dirty_or_failed_states_exit_8_naming_the_tools_own_fix_and_record_nothing() {
    let cases = [
        (
            format!("{GOLANG_MIGRATE} INSERT INTO schema_migrations VALUES (2, true);"),
            "schema_migrations",
            "golang-migrate marks version 2 dirty in public.schema_migrations",
            "force 2",
        ),
        (
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
               installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), success BOOLEAN NOT NULL, \
               checksum BYTEA NOT NULL, execution_time BIGINT NOT NULL); \
             INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
               VALUES (1, 'init', true, '\\x00', 1), (2, 'orders', false, '\\x00', 1);"
                .to_string(),
            "_sqlx_migrations",
            "sqlx marks version 2 as partially applied",
            "DELETE FROM public._sqlx_migrations WHERE version = 2",
        ),
        (
            format!(
                "{FLYWAY} INSERT INTO flyway_schema_history VALUES \
                 (1, '1', 'init', 'SQL', 'V1__init.sql', 1, 'me', now(), 5, true), \
                 (2, '2', 'orders', 'SQL', 'V2__orders.sql', 2, 'me', now(), 5, false);"
            ),
            "flyway_schema_history",
            "Flyway records 2 (V2__orders.sql) as failed",
            "`flyway repair`",
        ),
    ];
    for (setup, tool_table, what, fix) in cases {
        let (db, url) = db("adopt_dirty");
        psql(&db, &setup);
        let before = table(&db, tool_table);
        Run::on(&url, &numbered(), &["adopt"])
            .run()
            .expect(8)
            .stderr_has(what)
            .stderr_has(fix);
        Run::on(&url, &numbered(), &["up", "--adopt"])
            .run()
            .expect(8)
            .stderr_has(fix);
        assert_eq!(recorded(&db), 0, "{what}");
        assert_eq!(table(&db, tool_table), before);
    }
}

#[test]
fn two_tool_tables_exit_2_naming_both_until_one_is_chosen() {
    let (db, url) = db("adopt_two");
    apply_by_hand(&db, 1);
    psql(
        &db,
        &format!(
            "{GOLANG_MIGRATE} INSERT INTO schema_migrations VALUES (1, false); \
             CREATE TABLE gorp_migrations (id text PRIMARY KEY, applied_at timestamptz); \
             INSERT INTO gorp_migrations VALUES ('1_init.sql', now());"
        ),
    );
    let folder = numbered();
    Run::on(&url, &folder, &["adopt"])
        .run()
        .expect(2)
        .stderr_has(
            "golang-migrate (public.schema_migrations), sql-migrate (public.gorp_migrations)",
        )
        .stderr_has("--from TOOL");
    Run::on(&url, &folder, &["up", "--adopt"])
        .run()
        .expect(2)
        .stderr_has("--adopt=TOOL");
    assert_eq!(recorded(&db), 0);
    Run::on(&url, &folder, &["adopt", "--from", "sql-migrate"])
        .run()
        .expect(0)
        .stderr_has("adopted 1 revision from sql-migrate");
    Run::on(&url, &folder, &["adopt", "--from", "goose"])
        .run()
        .expect(2)
        .stderr_has("no history table of goose (goose_db_version");
}

#[test]
fn no_tool_table_exits_2_saying_what_was_looked_for() {
    let (_db, url) = db("adopt_none");
    Run::on(&url, &numbered(), &["adopt"])
        .run()
        .expect(2)
        .stderr_has("no other tool's history table")
        .stderr_has("schema_migrations (golang-migrate, dbmate), _sqlx_migrations (sqlx), goose_db_version (goose), flyway_schema_history (flyway), gorp_migrations (sql-migrate), alembic_version (alembic)");
}

#[test]
fn revisions_no_file_has_exit_8_listing_them() {
    let (db, url) = db("adopt_unknown");
    psql(
        &db,
        "CREATE TABLE schema_migrations (version varchar(128) PRIMARY KEY); \
         INSERT INTO schema_migrations VALUES ('1'), ('20240101000000'), ('20240102000000');",
    );
    Run::on(&url, &numbered(), &["adopt"])
        .run()
        .expect(8)
        .stderr_has("dbmate (public.schema_migrations) applied 2 revisions that no migration file has: 20240101000000, 20240102000000")
        .stderr_has("--migrations");
    assert_eq!(recorded(&db), 0);
}

#[test]
fn dry_run_prints_what_would_be_recorded_and_records_nothing() {
    let (db, url) = db("adopt_dry");
    psql(
        &db,
        &format!("{GOLANG_MIGRATE} INSERT INTO schema_migrations VALUES (3, false);"),
    );
    let folder = numbered();
    let out = Run::on(&url, &folder, &["adopt", "--dry-run"]).run();
    out.expect(0)
        .stdout_has(&format!(
            "would record 1 ({}) as applied",
            folder.shown("1_init.sql")
        ))
        .stdout_has(&format!(
            "would record 3 ({}) as applied",
            folder.shown("3_index.sql")
        ))
        .stdout_has("would adopt 3 revisions from golang-migrate (public.schema_migrations)");
    assert!(!out.stdout.contains("would record 4"), "{}", out.stdout);
    assert_eq!(
        psql(&db, "SELECT to_regclass('schemagate_history') IS NULL"),
        "t",
        "a dry run creates nothing"
    );
}

#[test]
fn up_adopt_takes_over_an_empty_history_then_applies_the_rest() {
    let (db, url) = db("adopt_up");
    apply_by_hand(&db, 2);
    psql(
        &db,
        &format!("{GOLANG_MIGRATE} INSERT INTO schema_migrations VALUES (2, false);"),
    );
    let folder = numbered();
    Run::on(&url, &folder, &["up", "--adopt"])
        .run()
        .expect(0)
        .stderr_has("adopted 2 revisions from golang-migrate")
        .stderr_has("applied 2 migrations");
    assert_eq!(history(&db), "1:stamped 2:stamped 3:applied 4:applied");
    // Once the history is schemagate's, --adopt does nothing more (and a tool that
    // later writes its table again is not followed).
    psql(&db, "UPDATE schema_migrations SET version = 4");
    Run::on(&url, &folder, &["up", "--adopt=golang-migrate"])
        .run()
        .expect(0)
        .stderr_has("nothing to do");
    assert_eq!(
        psql(
            &db,
            "SELECT count(*) FROM schemagate_events WHERE action = 'adopt'"
        ),
        "2"
    );
    assert_eq!(schema(&db), straight(&folder));
}

#[test]
fn up_adopt_without_a_tool_table_is_a_plain_up() {
    let (db, url) = db("adopt_up_plain");
    Run::on(&url, &numbered(), &["up", "--adopt"])
        .run()
        .expect(0)
        .stderr_has("applied 4 migrations");
    assert_eq!(history(&db), "1:applied 2:applied 3:applied 4:applied");
}

#[test]
fn a_partly_recorded_history_gets_only_what_it_lacks() {
    let (db, url) = db("adopt_partly");
    apply_by_hand(&db, 3);
    psql(
        &db,
        &format!("{GOLANG_MIGRATE} INSERT INTO schema_migrations VALUES (3, false);"),
    );
    let folder = numbered();
    Run::on(&url, &folder, &["stamp", "1"]).run().expect(0);
    Run::on(&url, &folder, &["adopt"])
        .run()
        .expect(0)
        .stderr_has("adopted 2 revisions from golang-migrate (public.schema_migrations) (1 already recorded");
    assert_eq!(history(&db), "1:stamped 2:stamped 3:stamped");
    assert_eq!(
        adopted_events(&db).matches("from golang-migrate").count(),
        2
    );
}

#[test]
fn adopt_help_names_the_tools() {
    let out = Run::new(&["adopt", "--help"]).run();
    out.expect(0)
        .stdout_has("--from <TOOL>")
        .stdout_has("golang-migrate, dbmate, sqlx, goose, flyway, sql-migrate, alembic")
        .stdout_has("--dry-run");
}
