//! The diff engine on fixture pairs, the way migra and pg-schema-diff test theirs: each
//! `tests/schema/<case>/` holds `a.sql` and `b.sql`; the generated up (a → b) and down
//! (b → a) must equal `expected.sql`, and applied to a database built from `a.sql` the up
//! gives exactly `b.sql`'s schema (read again, and by `pg_dump`), and the down gives `a`
//! back. `SCHEMAGATE_BLESS=1` writes `expected.sql` from what is generated, for review.
//! A case with `refused.txt` instead is a known limitation: both diffs must refuse, naming
//! the objects, exactly as the file says.

mod support;

use std::path::{Path, PathBuf};

use schemagate::db::connection::{Connection, SslMode};
use schemagate::db::interrupt::Interrupt;
use schemagate::db::session::Session;
use schemagate::schema::catalog;
use schemagate::schema::diff::{Options, Plan, diff};
use schemagate::schema::model::Schema;
use support::Cluster;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn read(cluster: &Cluster, db: &str) -> Schema {
    let connection = Connection {
        config: cluster.url(db).parse().expect("url"),
        ssl_mode: SslMode::Disable,
        ssl_root_cert: None,
    };
    let session = Session::open(&connection, &Interrupt::default())
        .await
        .unwrap_or_else(|e| panic!("connect to {db}: {e:?}"));
    let schema = catalog::read(&session, &[]).await.expect("catalog read");
    session.close().await;
    schema
}

fn dump(cluster: &Cluster, db: &str) -> String {
    cluster
        .pg_dump_schema(db)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A plan as a migration runs it: in one transaction unless it says it cannot be.
fn as_applied(plan: &Plan) -> String {
    if plan.outside_transaction() {
        plan.sql()
    } else {
        format!("BEGIN;\n{}COMMIT;\n", plan.sql())
    }
}

/// A case that creates an extension needs its contrib files on this server: said, not
/// skipped.
fn require_extensions(cluster: &Cluster, name: &str, sql: &str) {
    for line in sql.lines() {
        let Some(rest) = line.trim().strip_prefix("CREATE EXTENSION ") else {
            continue;
        };
        let extension = rest
            .trim_start_matches("IF NOT EXISTS ")
            .split([' ', ';'])
            .next()
            .unwrap_or_default();
        let found = cluster.psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_available_extensions WHERE name = '{extension}'"),
        );
        assert_eq!(
            found, "1",
            "{name}: extension {extension} is not installed on this server (its control file is \
             missing from `pg_config --sharedir`/extension): install the PostgreSQL contrib package"
        );
    }
}

fn case(name: &str) {
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schema")
        .join(name);
    let a = std::fs::read_to_string(dir.join("a.sql")).expect("a.sql");
    let b = std::fs::read_to_string(dir.join("b.sql")).expect("b.sql");
    let cluster = Cluster::shared();
    require_extensions(cluster, name, &format!("{a}\n{b}"));
    let db_a = cluster.create_database("a");
    let db_b = cluster.create_database("b");
    cluster.psql(&db_a, &a);
    cluster.psql(&db_b, &b);
    let rt = runtime();
    let (schema_a, schema_b) =
        rt.block_on(async { (read(cluster, &db_a).await, read(cluster, &db_b).await) });
    let options = Options { concurrently: true };
    let refused_path = dir.join("refused.txt");
    if refused_path.exists() {
        // A limitation: the engine must name what it cannot do, both ways, and write
        // nothing.
        let said = |result: Result<Plan, Vec<String>>, way: &str| match result {
            Ok(plan) => panic!(
                "{name}: the {way} diff should be refused, but it gives:\n{}",
                plan.sql()
            ),
            Err(reasons) => reasons.join("\n"),
        };
        let refused = format!(
            "-- up\n{}\n-- down\n{}\n",
            said(diff(&schema_a, &schema_b, options), "up"),
            said(diff(&schema_b, &schema_a, options), "down")
        );
        if std::env::var_os("SCHEMAGATE_BLESS").is_some() {
            std::fs::write(&refused_path, &refused).expect("bless");
        }
        let expected = std::fs::read_to_string(&refused_path).unwrap_or_default();
        assert_eq!(
            refused, expected,
            "{name}: the refusal differs from refused.txt (SCHEMAGATE_BLESS=1 rewrites it)"
        );
        return;
    }
    let up = diff(&schema_a, &schema_b, options).unwrap_or_else(|e| panic!("{name}: up: {e:#?}"));
    let down =
        diff(&schema_b, &schema_a, options).unwrap_or_else(|e| panic!("{name}: down: {e:#?}"));
    let generated = format!("-- up\n{}\n-- down\n{}", up.sql(), down.sql());
    let expected_path = dir.join("expected.sql");
    if std::env::var_os("SCHEMAGATE_BLESS").is_some() {
        std::fs::write(&expected_path, &generated).expect("bless");
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    // Applied: up takes a to b, down takes it back.
    let db_c = cluster.create_database("c");
    cluster.psql(&db_c, &a);
    if let Err(e) = cluster.psql_result(&db_c, &as_applied(&up)) {
        panic!("{name}: the up section fails on a: {e}\n{}", up.sql());
    }
    let after_up = rt.block_on(read(cluster, &db_c));
    let differences = after_up.differences(&schema_b);
    assert!(
        differences.is_empty(),
        "{name}: up does not give b:\n{}\n{}",
        differences.join("\n"),
        up.sql()
    );
    assert_eq!(
        dump(cluster, &db_c),
        dump(cluster, &db_b),
        "{name}: pg_dump after up differs from b"
    );
    assert!(
        diff(&after_up, &schema_b, options)
            .expect("re-diff")
            .is_empty(),
        "{name}: a re-diff after up is not empty"
    );
    if let Err(e) = cluster.psql_result(&db_c, &as_applied(&down)) {
        panic!("{name}: the down section fails on b: {e}\n{}", down.sql());
    }
    let after_down = rt.block_on(read(cluster, &db_c));
    let differences = after_down.differences(&schema_a);
    assert!(
        differences.is_empty(),
        "{name}: down does not give a back:\n{}\n{}",
        differences.join("\n"),
        down.sql()
    );
    assert_eq!(
        dump(cluster, &db_c),
        dump(cluster, &db_a),
        "{name}: pg_dump after down differs from a"
    );
    assert_eq!(
        generated, expected,
        "{name}: generated SQL differs from expected.sql (SCHEMAGATE_BLESS=1 rewrites it)"
    );
}

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { case(stringify!($name)); })*
    };
}

cases!(
    tables_and_columns,
    reused_names,
    schemas,
    extensions,
    enums,
    domains,
    composite_types,
    sequences,
    table_columns,
    constraints,
    indexes,
    views,
    functions,
    triggers,
    row_security,
    comments,
    partitioning,
    refusals,
);
