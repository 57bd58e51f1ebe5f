//! The wait phase: retry what time fixes, fail fast on what it cannot.

mod support;

use std::time::{Duration, Instant};

use support::Cluster;
use support::run::{Folder, Run, finish};

fn one_table() -> Folder {
    Folder::with(&[("1_a.sql", "CREATE TABLE a (id int);\n")])
}

#[test]
fn a_server_that_starts_late_is_waited_for_and_migrated() {
    let cluster = Cluster::start_later(Duration::from_secs(3));
    let folder = one_table();
    let started = Instant::now();
    let child = Run::on(
        &cluster.url("postgres"),
        &folder,
        &["up", "--wait-timeout", "30s"],
    )
    .spawn();
    cluster.wait_started();
    let outcome = finish(child, started);
    outcome
        .expect(0)
        .stderr_has("waiting for database")
        .stderr_has("is ready")
        .stderr_has("applied 1 migration");
    assert!(
        outcome.elapsed >= Duration::from_secs(3),
        "{:?}",
        outcome.elapsed
    );
    assert_eq!(
        cluster.psql("postgres", "SELECT count(*) FROM schemagate_history"),
        "1"
    );
}

#[test]
fn the_wait_command_waits_for_a_late_server() {
    let cluster = Cluster::start_later(Duration::from_secs(2));
    let started = Instant::now();
    let mut run = Run::new(&["wait", "--wait-timeout", "30s"]);
    run.env("DATABASE_URL", &cluster.url("postgres"));
    let child = run.spawn();
    cluster.wait_started();
    let outcome = finish(child, started);
    outcome.expect(0).stderr_has("accepts connections");
    assert!(outcome.elapsed >= Duration::from_secs(2));
}

#[test]
fn a_wrong_password_fails_at_once_with_exit_5() {
    let cluster = Cluster::start_with_password_auth();
    cluster.create_role("app", "right-password");
    let folder = one_table();
    let outcome = Run::on(
        &cluster.url_for("app", "wrong-password", "postgres"),
        &folder,
        &["up", "--wait-timeout", "60s"],
    )
    .run();
    outcome
        .expect(5)
        .stderr_has("password authentication failed")
        .stderr_has("28P01");
    assert!(
        outcome.elapsed < Duration::from_secs(5),
        "{:?}",
        outcome.elapsed
    );

    // No password at all, while the server asks for one.
    let outcome = Run::on(
        &format!("postgres://app@127.0.0.1:{}/postgres", cluster.port()),
        &folder,
        &["up", "--wait-timeout", "60s"],
    )
    .run();
    outcome.expect(5).stderr_has("asks for a password");
    assert!(outcome.elapsed < Duration::from_secs(5));

    // The right one gets in; without CREATE on the schema it is told what to grant.
    let url = cluster.url_for("app", "right-password", "postgres");
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(5)
        .stderr_has("cannot create schemagate's tables in schema public")
        .stderr_has("42501")
        .stderr_has("grant the user CREATE");
    cluster.psql("postgres", "GRANT CREATE ON SCHEMA public TO app");
    Run::on(&url, &folder, &["up"]).run().expect(0);
}

#[test]
fn a_missing_database_or_role_fails_at_once_with_exit_5() {
    let cluster = Cluster::shared();
    let folder = one_table();
    let outcome = Run::on(
        &cluster.url("no_such_database"),
        &folder,
        &["up", "--wait-timeout", "60s"],
    )
    .run();
    outcome
        .expect(5)
        .stderr_has("3D000")
        .stderr_has("create the database");
    assert!(outcome.elapsed < Duration::from_secs(5));

    let url = format!("postgres://nobody@127.0.0.1:{}/postgres", cluster.port());
    let outcome = Run::on(&url, &folder, &["up", "--wait-timeout", "60s"]).run();
    outcome.expect(5).stderr_has("28000");
    assert!(outcome.elapsed < Duration::from_secs(5));
}

#[test]
fn an_invalid_url_is_exit_2() {
    let folder = one_table();
    for (url, message) in [
        ("mysql://u:p@h/d", "use postgres://"),
        ("postgres://u@h:notaport/d", "database URL is not valid"),
        ("postgres://u@h/d?sslmode=sometimes", "sslmode `sometimes`"),
        (
            "postgres://u@h/d?no_such_option=1",
            "database URL is not valid",
        ),
    ] {
        Run::on(url, &folder, &["up"])
            .run()
            .expect(2)
            .stderr_has(message);
    }
}

#[test]
fn a_host_that_does_not_resolve_is_waited_for() {
    // Compose starts services before their DNS names exist: waiting is right.
    let folder = one_table();
    let outcome = Run::on(
        "postgres://u@no-such-host.invalid:5432/d",
        &folder,
        &["up", "--wait-timeout", "2s"],
    )
    .run();
    outcome.expect(4).stderr_has("not reachable after 2s");
}

#[test]
fn timeouts_too_long_for_the_clock_mean_forever() {
    // `Instant + u64::MAX seconds` once panicked (exit 1).
    let cluster = Cluster::shared();
    let db = cluster.create_database("forever");
    let folder = one_table();
    let huge = u64::MAX.to_string();
    Run::on(
        &cluster.url(&db),
        &folder,
        &["up", "--wait-timeout", &huge, "--lock-timeout", &huge],
    )
    .run()
    .expect(0);
}
