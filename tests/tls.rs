//! TLS as libpq's `sslmode` and `sslrootcert` mean it, against real servers with a
//! certificate from a CA made by the test: what succeeds, what fails at once (exit 5)
//! with a message that says what to fix, and that encryption is really on or off.

mod support;

use std::sync::OnceLock;
use std::time::Duration;

use support::Cluster;
use support::run::{Folder, Outcome, Run};
use support::tls::TestCa;

/// TLS is required over TCP; the harness's psql uses the unix socket.
const HOSTSSL_ONLY: &str = "local all all trust\nhostssl all all 127.0.0.1/32 trust\n";
/// TLS is on, but pg_hba.conf only lets unencrypted connections in.
const HOSTNOSSL_ONLY: &str = "local all all trust\nhostnossl all all 127.0.0.1/32 trust\n";

/// A failure that waiting cannot fix must not wait: far under the 60 s budget.
const AT_ONCE: Duration = Duration::from_secs(3);

/// The CA that signed the servers' certificate (valid for IP 127.0.0.1 only),
/// another CA that did not, and the servers.
struct Fixture {
    right: TestCa,
    wrong: TestCa,
    /// ssl=on, hostssl only.
    tls: Cluster,
    /// ssl=on, hostnossl only.
    tls_refused: Cluster,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let right = TestCa::new("schemagate test CA");
        let wrong = TestCa::new("some other CA");
        let cert = right.server_cert("IP:127.0.0.1");
        Fixture {
            tls: Cluster::start_with_tls(&cert, HOSTSSL_ONLY),
            tls_refused: Cluster::start_with_tls(&cert, HOSTNOSSL_ONLY),
            right,
            wrong,
        }
    })
}

/// One migration that records whether its own connection is encrypted.
fn probe() -> Folder {
    Folder::with(&[(
        "1_probe.sql",
        "CREATE TABLE tls_probe AS SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid();\n",
    )])
}

/// A fresh database on `cluster` and the URL to it through `host`, with `params`.
fn target(cluster: &Cluster, host: &str, params: &str) -> (String, String) {
    let db = cluster.create_database("tls");
    let url = format!(
        "postgres://postgres@{host}:{}/{db}?{params}",
        cluster.port()
    );
    (db, url)
}

fn up(url: &str, env: &[(&str, &str)]) -> Outcome {
    let folder = probe();
    let mut run = Run::on(url, &folder, &["up", "--wait-timeout", "60s"]);
    for (key, value) in env {
        run.env(key, value);
    }
    run.run()
}

/// `up` through `host` with `params` succeeds, encrypted or not as `encrypted` says.
#[track_caller]
fn assert_connects(cluster: &Cluster, host: &str, params: &str, encrypted: bool) {
    let (db, url) = target(cluster, host, params);
    assert_applied(cluster, &db, &up(&url, &[]), encrypted);
}

/// `up` succeeded, and its connection was encrypted or not as `encrypted` says.
#[track_caller]
fn assert_applied(cluster: &Cluster, db: &str, outcome: &Outcome, encrypted: bool) {
    outcome.expect(0);
    let ssl = cluster.psql(db, "SELECT ssl FROM tls_probe");
    assert_eq!(ssl, if encrypted { "t" } else { "f" }, "encrypted?");
}

/// Exit 5, at once, with every one of `texts` in the message.
#[track_caller]
fn assert_refused_at_once(outcome: &Outcome, texts: &[&str]) {
    outcome.expect(5);
    for text in texts {
        outcome.stderr_has(text);
    }
    assert!(
        outcome.elapsed < AT_ONCE,
        "took {:?}: a TLS failure must not be retried\n{}",
        outcome.elapsed,
        outcome.stderr
    );
    assert!(
        !outcome.stderr.contains("waiting for database"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn verify_full_with_the_right_ca_and_host_is_encrypted() {
    let f = fixture();
    let params = format!(
        "sslmode=verify-full&sslrootcert={}",
        f.right.cert_path_str()
    );
    assert_connects(&f.tls, "127.0.0.1", &params, true);
}

#[test]
fn a_certificate_from_another_ca_fails_at_once() {
    let f = fixture();
    let wrong = f.wrong.cert_path_str();
    // require with a root certificate checks the chain, as in libpq.
    for mode in ["verify-full", "verify-ca", "require"] {
        let params = format!("sslmode={mode}&sslrootcert={wrong}");
        let (_, url) = target(&f.tls, "127.0.0.1", &params);
        assert_refused_at_once(
            &up(&url, &[]),
            &[
                "TLS",
                "certificate",
                "not signed by a CA",
                &wrong,
                "sslrootcert",
            ],
        );
    }
    // No sslrootcert: the system's CAs, which do not know the test CA either;
    // on a machine without any (no ca-certificates package) that is exit 2.
    let (_, url) = target(&f.tls, "127.0.0.1", "sslmode=verify-full");
    let outcome = up(&url, &[]);
    if outcome.code == 2 {
        outcome.stderr_has("needs a CA").stderr_has("sslrootcert");
    } else {
        assert_refused_at_once(&outcome, &["not signed by a CA", "system's CA"]);
    }
}

#[test]
fn a_host_name_the_certificate_does_not_name() {
    let f = fixture();
    let right = f.right.cert_path_str();
    // The certificate names IP 127.0.0.1; `localhost` reaches the same server.
    let (_, url) = target(
        &f.tls,
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={right}"),
    );
    assert_refused_at_once(
        &up(&url, &[]),
        &["certificate", "not valid for", "localhost", "verify-ca"],
    );
    // verify-ca checks the chain only, so the same connection is fine.
    assert_connects(
        &f.tls,
        "localhost",
        &format!("sslmode=verify-ca&sslrootcert={right}"),
        true,
    );
}

#[test]
fn require_encrypts_without_a_ca() {
    let f = fixture();
    assert_connects(&f.tls, "localhost", "sslmode=require", true);
}

#[test]
fn require_against_a_server_without_tls_fails_at_once() {
    let cluster = Cluster::shared();
    let (_, url) = target(cluster, "127.0.0.1", "sslmode=require");
    assert_refused_at_once(&up(&url, &[]), &["does not accept TLS", "sslmode=prefer"]);
}

#[test]
fn prefer_encrypts_when_it_can_and_falls_back_when_it_cannot() {
    let f = fixture();
    assert_connects(&f.tls, "127.0.0.1", "sslmode=prefer", true);

    // The server answers the TLS request with "no".
    let shared = Cluster::shared();
    assert_connects(shared, "127.0.0.1", "sslmode=prefer", false);

    // The server does TLS, but pg_hba.conf turns encrypted connections away.
    assert_connects(&f.tls_refused, "127.0.0.1", "sslmode=prefer", false);

    // No sslmode at all is prefer, as in libpq.
    assert_connects(&f.tls_refused, "127.0.0.1", "", false);
}

#[test]
fn allow_tries_without_tls_first_then_with_it() {
    let f = fixture();
    assert_connects(&f.tls_refused, "127.0.0.1", "sslmode=allow", false);
    assert_connects(&f.tls, "127.0.0.1", "sslmode=allow", true);
}

#[test]
fn disable_against_a_server_that_requires_tls_fails_at_once() {
    let f = fixture();
    let (_, url) = target(&f.tls, "127.0.0.1", "sslmode=disable");
    assert_refused_at_once(
        &up(&url, &[]),
        &["28000", "no encryption", "sslmode=require"],
    );
    // And require against a server that refuses TLS in pg_hba.conf.
    let (_, url) = target(&f.tls_refused, "127.0.0.1", "sslmode=require");
    assert_refused_at_once(&up(&url, &[]), &["28000", "SSL encryption", "sslmode"]);
}

#[test]
fn pgsslmode_and_pgsslrootcert_from_the_environment() {
    let f = fixture();
    let right = f.right.cert_path_str();
    let wrong = f.wrong.cert_path_str();
    let (db, url) = target(&f.tls, "127.0.0.1", "");
    let env = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", right.as_str()),
    ];
    assert_applied(&f.tls, &db, &up(&url, &env), true);

    let env = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", wrong.as_str()),
    ];
    assert_refused_at_once(&up(&url, &env), &["not signed by a CA", &wrong]);
    let (_, localhost) = target(&f.tls, "localhost", "");
    let env = [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", right.as_str()),
    ];
    assert_refused_at_once(&up(&localhost, &env), &["not valid for"]);

    // The URL wins over the environment, as in libpq.
    let (db, url) = target(
        &f.tls,
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={right}"),
    );
    let env = [("PGSSLMODE", "disable"), ("PGSSLROOTCERT", wrong.as_str())];
    assert_applied(&f.tls, &db, &up(&url, &env), true);

    // All from PG* variables, no URL at all.
    let db = f.tls.create_database("tls");
    let folder = probe();
    let port = f.tls.port().to_string();
    let outcome = Run::new(&["up"])
        .env("PGHOST", "127.0.0.1")
        .env("PGPORT", &port)
        .env("PGUSER", "postgres")
        .env("PGDATABASE", &db)
        .env("PGSSLMODE", "verify-full")
        .env("PGSSLROOTCERT", &right)
        .env(
            "SCHEMAGATE_MIGRATIONS",
            folder.path().to_str().expect("utf-8"),
        )
        .run();
    assert_applied(&f.tls, &db, &outcome, true);
}

#[test]
fn an_unreadable_sslrootcert_is_a_configuration_error() {
    let f = fixture();
    let folder = Folder::with(&[("garbage.pem", "not a certificate\n")]);
    let missing = folder.shown("missing.pem");
    let garbage = folder.shown("garbage.pem");
    let broken = folder.shown("broken.pem");
    folder.write(
        "broken.pem",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n",
    );
    for (file, message) in [
        (&missing, "cannot read sslrootcert"),
        (&garbage, "holds no certificate"),
        (&broken, "sslrootcert"),
    ] {
        for mode in ["verify-full", "verify-ca", "require"] {
            let (_, url) = target(
                &f.tls,
                "127.0.0.1",
                &format!("sslmode={mode}&sslrootcert={file}"),
            );
            let outcome = up(&url, &[]);
            outcome.expect(2).stderr_has(message).stderr_has(file);
            assert!(outcome.elapsed < AT_ONCE, "{:?}", outcome.elapsed);
        }
    }
}

#[test]
fn sslmode_does_not_apply_to_unix_sockets() {
    // libpq ignores sslmode on a unix socket, where PostgreSQL never does TLS.
    let f = fixture();
    let db = f.tls.create_database("tls");
    let url = format!(
        "postgres://postgres@/{db}?host={}&port={}&sslmode=require",
        f.tls.socket_dir().display(),
        f.tls.port()
    );
    assert_applied(&f.tls, &db, &up(&url, &[]), false);
}
