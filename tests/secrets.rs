//! A password never appears in any output: every way a run can end, with the password in
//! the URL, a URL file, PGPASSWORD or a password file, in text and JSON logs, at info
//! and at debug level (which logs every connection attempt).

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::OnceLock;

use support::run::{Folder, Outcome, Run};
use support::tls::TestCa;
use support::{Cluster, LockHolder};

/// Recognisable, and with the characters that URL, JSON and pgpass each escape, so an
/// escaped copy cannot slip past the check either.
const PASSWORD: &str = "Sekr1t\"Pa55\\w0rd/q7z";
const WRONG: &str = "Wr0ng\"Pa55\\w0rd/k3x";

/// Pieces that show up in any copy of either password, escaped or not.
const FRAGMENTS: [&str; 5] = ["Sekr1t", "Wr0ng", "Pa55", "q7z", "k3x"];

#[track_caller]
fn assert_no_secret(scenario: &str, outcome: &Outcome) {
    for secret in FRAGMENTS {
        assert!(
            !outcome.stdout.contains(secret) && !outcome.stderr.contains(secret),
            "{scenario}: output shows {secret:?}\n--- stdout\n{}\n--- stderr\n{}",
            outcome.stdout,
            outcome.stderr
        );
    }
}

/// Password authentication over TCP; the TLS cluster wants TLS as well.
struct Servers {
    plain: Cluster,
    tls: Cluster,
    right_ca: TestCa,
    wrong_ca: TestCa,
}

fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(|| {
        let right_ca = TestCa::new("secrets test CA");
        let wrong_ca = TestCa::new("secrets other CA");
        let tls = Cluster::start_with_tls(
            &right_ca.server_cert("IP:127.0.0.1"),
            "local all postgres trust\nhostssl all all 127.0.0.1/32 scram-sha-256\n",
        );
        let plain = Cluster::start_with_password_auth();
        for cluster in [&plain, &tls] {
            cluster.create_role("app", PASSWORD);
        }
        Servers {
            plain,
            tls,
            right_ca,
            wrong_ca,
        }
    })
}

/// A database of app's own, so each test's scenarios do not meet another's.
fn database(cluster: &Cluster) -> String {
    let db = cluster.create_database("secrets");
    cluster.psql("postgres", &format!("ALTER DATABASE {db} OWNER TO app"));
    db
}

/// pgpass escapes `:` and `\`.
fn pgpass_line(port: u16, db: &str) -> String {
    let password = PASSWORD.replace('\\', "\\\\").replace(':', "\\:");
    format!("127.0.0.1:{port}:{db}:app:{password}\n")
}

fn at_info_and_debug(format: &str) {
    for level in ["info", "debug"] {
        every_path(format, level);
    }
}

#[test]
fn no_password_in_text_logs() {
    at_info_and_debug("text");
}

#[test]
fn no_password_in_json_logs() {
    at_info_and_debug("json");
}

fn every_path(format: &str, level: &str) {
    let s = servers();
    let cluster = &s.plain;
    let port = cluster.port();
    let db = database(cluster);
    let good = cluster.url_for("app", PASSWORD, &db);
    let wrong = cluster.url_for("app", WRONG, &db);
    let at = |port: &str| {
        good.replace(
            &format!("@127.0.0.1:{}/", cluster.port()),
            &format!("@127.0.0.1:{port}/"),
        )
    };
    let closed = at(&support::free_port().to_string());
    let bad_url = at("notaport");
    let tls_db = database(&s.tls);
    let tls_url = |params: &str| format!("{}?{params}", s.tls.url_for("app", PASSWORD, &tls_db));
    let right_ca = s.right_ca.cert_path_str();
    let wrong_ca = s.wrong_ca.cert_path_str();

    let ok = Folder::with(&[("1_a.sql", "CREATE TABLE a (id int);\n")]);
    // The server's error message echoes the text, password included.
    let failing = Folder::with(&[
        ("1_a.sql", "CREATE TABLE a (id int);\n"),
        ("2_b.sql", &format!("SELECT '{PASSWORD}'::int;\n")),
    ]);
    let changed = Folder::with(&[("1_a.sql", "CREATE TABLE a (id bigint);\n")]);
    let invalid = Folder::with(&[("1_a.sql", "-- migrate:nope\nSELECT 1;\n")]);
    ok.write("url", &format!("{good}\n"));
    ok.write("pgpass", &pgpass_line(port, &db));
    fs::set_permissions(ok.path().join("pgpass"), fs::Permissions::from_mode(0o600))
        .expect("chmod pgpass");
    let migrations = ok.path().to_str().expect("utf-8");

    let without_url = |vars: &[(&str, &str)]| {
        let mut run = Run::new(&["up"]);
        run.env("SCHEMAGATE_MIGRATIONS", migrations);
        for (key, value) in vars {
            run.env(key, value);
        }
        run
    };
    let port_text = port.to_string();
    let pg_vars = [
        ("PGHOST", "127.0.0.1"),
        ("PGPORT", port_text.as_str()),
        ("PGUSER", "app"),
        ("PGDATABASE", db.as_str()),
    ];
    let with_pg_vars = |extra: (&str, &str)| {
        let mut vars = pg_vars.to_vec();
        vars.push(extra);
        without_url(&vars)
    };

    let scenarios: Vec<(&str, Run, i32)> = vec![
        ("success", Run::on(&good, &ok, &["up"]), 0),
        (
            "url file",
            without_url(&[("DATABASE_URL_FILE", &ok.shown("url"))]),
            0,
        ),
        ("PGPASSWORD", with_pg_vars(("PGPASSWORD", PASSWORD)), 0),
        (
            "PGPASSFILE",
            with_pg_vars(("PGPASSFILE", &ok.shown("pgpass"))),
            0,
        ),
        (
            "TLS verify-full",
            Run::on(
                &tls_url(&format!("sslmode=verify-full&sslrootcert={right_ca}")),
                &ok,
                &["up"],
            ),
            0,
        ),
        ("wrong password", Run::on(&wrong, &ok, &["up"]), 5),
        (
            "wrong password, PGPASSWORD",
            with_pg_vars(("PGPASSWORD", WRONG)),
            5,
        ),
        (
            "unreachable",
            Run::on(&closed, &ok, &["up", "--wait-timeout", "1s"]),
            4,
        ),
        ("invalid url", Run::on(&bad_url, &ok, &["up"]), 2),
        (
            "invalid url in a url file",
            {
                ok.write("bad-url", &bad_url);
                without_url(&[("DATABASE_URL_FILE", &ok.shown("bad-url"))])
            },
            2,
        ),
        ("invalid files", Run::on(&good, &invalid, &["up"]), 3),
        ("failing migration", Run::on(&good, &failing, &["up"]), 7),
        ("changed checksum", Run::on(&good, &changed, &["up"]), 8),
        (
            "missing database",
            Run::on(&cluster.url_for("app", PASSWORD, "nope"), &ok, &["up"]),
            5,
        ),
        (
            "TLS: certificate from another CA",
            Run::on(
                &tls_url(&format!("sslmode=verify-full&sslrootcert={wrong_ca}")),
                &ok,
                &["up"],
            ),
            5,
        ),
        (
            "TLS: server without TLS",
            Run::on(&format!("{good}?sslmode=require"), &ok, &["up"]),
            5,
        ),
        (
            "TLS: unreadable sslrootcert",
            Run::on(
                &tls_url("sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
                &ok,
                &["up"],
            ),
            2,
        ),
        (
            "bad log filter",
            Run::on(&good, &ok, &["up", "--log-level", "[[["]),
            2,
        ),
    ];
    for (name, mut run, code) in scenarios {
        run.arg("--log-format").arg(format);
        if name != "bad log filter" {
            run.arg("--log-level").arg(level);
        }
        let outcome = run.run();
        let scenario = format!("{name} ({format}, {level})");
        assert_eq!(outcome.code, code, "{scenario}\n{}", outcome.stderr);
        assert_no_secret(&scenario, &outcome);
    }

    // Lock timeout, while another session holds the lock.
    // Its own key per test: the two tests share the cluster.
    let key = if format == "json" { 7002 } else { 7001 };
    let holder = LockHolder::take(cluster, &db, key);
    let pending = Folder::with(&[
        ("1_a.sql", "CREATE TABLE a (id int);\n"),
        ("2_c.sql", "CREATE TABLE c (id int);\n"),
    ]);
    let outcome = Run::on(
        &good,
        &pending,
        &[
            "up",
            "--lock-key",
            &key.to_string(),
            "--lock-timeout",
            "1s",
            "--log-format",
            format,
            "--log-level",
            level,
        ],
    )
    .run();
    drop(holder);
    outcome.expect(6);
    assert_no_secret(&format!("lock timeout ({format}, {level})"), &outcome);
}
