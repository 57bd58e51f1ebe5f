//! A password never appears in any output, on any path, in text or JSON logs.

mod support;

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::Cluster;
use support::run::{Folder, Outcome, Run};

const PASSWORD: &str = "Sekr1t-Pa55w0rd-q7z";
const WRONG: &str = "Wr0ng-Pa55w0rd-k3x";

#[track_caller]
fn assert_no_secret(scenario: &str, outcome: &Outcome) {
    for secret in [PASSWORD, WRONG, "Sekr1t", "Wr0ng"] {
        assert!(
            !outcome.stdout.contains(secret) && !outcome.stderr.contains(secret),
            "{scenario}: output shows {secret:?}\n--- stdout\n{}\n--- stderr\n{}",
            outcome.stdout,
            outcome.stderr
        );
    }
}

#[test]
fn no_password_in_any_output() {
    let cluster = Cluster::start_with_password_auth();
    cluster.create_role("app", PASSWORD);
    cluster.psql("postgres", "CREATE DATABASE app OWNER app");
    let good = cluster.url_for("app", PASSWORD, "app");
    let wrong = cluster.url_for("app", WRONG, "app");
    let closed = format!(
        "postgres://app:{PASSWORD}@127.0.0.1:{}/app",
        support::free_port()
    );
    let bad_url = format!("postgres://app:{PASSWORD}@127.0.0.1:notaport/app");

    let ok = Folder::with(&[("1_a.sql", "CREATE TABLE a (id int);\n")]);
    let failing = Folder::with(&[
        ("1_a.sql", "CREATE TABLE a (id int);\n"),
        ("2_b.sql", &format!("SELECT '{PASSWORD}'::int;\n")),
    ]);
    let changed = Folder::with(&[("1_a.sql", "CREATE TABLE a (id bigint);\n")]);
    let invalid = Folder::with(&[("1_a.sql", "-- migrate:nope\nSELECT 1;\n")]);
    let url_file = ok.path().join("url");
    std::fs::write(&url_file, &good).expect("url file");

    for format in ["text", "json"] {
        let scenarios: Vec<(&str, Run, i32)> = vec![
            ("success", Run::on(&good, &ok, &["up"]), 0),
            (
                "debug logs",
                Run::on(&good, &ok, &["up", "--log-level", "trace"]),
                0,
            ),
            (
                "url file",
                {
                    let mut run = Run::new(&["up"]);
                    run.env("DATABASE_URL_FILE", url_file.to_str().expect("utf-8"))
                        .env("SCHEMAGATE_MIGRATIONS", ok.path().to_str().expect("utf-8"));
                    run
                },
                0,
            ),
            (
                "PGPASSWORD",
                {
                    let mut run = Run::new(&["up"]);
                    run.env("PGHOST", "127.0.0.1")
                        .env("PGPORT", &cluster.port().to_string())
                        .env("PGUSER", "app")
                        .env("PGPASSWORD", PASSWORD)
                        .env("SCHEMAGATE_MIGRATIONS", ok.path().to_str().expect("utf-8"));
                    run
                },
                0,
            ),
            ("wrong password", Run::on(&wrong, &ok, &["up"]), 5),
            (
                "unreachable",
                Run::on(&closed, &ok, &["up", "--wait-timeout", "1s"]),
                4,
            ),
            ("invalid url", Run::on(&bad_url, &ok, &["up"]), 2),
            ("invalid files", Run::on(&good, &invalid, &["up"]), 3),
            ("failing migration", Run::on(&good, &failing, &["up"]), 7),
            ("changed checksum", Run::on(&good, &changed, &["up"]), 8),
            (
                "missing database",
                Run::on(&cluster.url_for("app", PASSWORD, "nope"), &ok, &["up"]),
                5,
            ),
            (
                "bad log filter",
                Run::on(&good, &ok, &["up", "--log-level", "[[["]),
                2,
            ),
        ];
        for (name, mut run, code) in scenarios {
            run.arg("--log-format").arg(format);
            let outcome = run.run();
            outcome.expect(code);
            assert_no_secret(&format!("{name} ({format})"), &outcome);
        }

        // Lock timeout, while another session holds the lock.
        let mut holder = Command::new(support::pg_bin("psql"))
            .args(["-X", "-q", "-d", &cluster.url_for("app", PASSWORD, "app")])
            .args([
                "-c",
                "SELECT pg_advisory_lock(777)",
                "-c",
                "SELECT pg_sleep(30)",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql");
        let deadline = Instant::now() + Duration::from_secs(10);
        while cluster.psql(
            "app",
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 777",
        ) != "1"
        {
            assert!(Instant::now() < deadline, "holder never got the lock");
            thread::sleep(Duration::from_millis(20));
        }
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
                "777",
                "--lock-timeout",
                "1s",
                "--log-format",
                format,
            ],
        )
        .run();
        outcome.expect(6);
        assert_no_secret(&format!("lock timeout ({format})"), &outcome);
        cluster.psql("app", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()");
        let _ = holder.kill();
        let _ = holder.wait();
        cluster.psql(
            "app",
            "DROP TABLE IF EXISTS a, c; DROP TABLE IF EXISTS schemagate_history, schemagate_events",
        );
    }
}
