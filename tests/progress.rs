//! Long migrations speak: each migration is announced with its place in the run and timed,
//! and a statement that runs past 10 s is reported every 10 s with what the server says it
//! waits for, naming the session that blocks it.

mod support;

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use support::Cluster;
use support::fresh_database as db;
use support::pg::{PgBins, client_command};
use support::run::{Folder, Run};
use support::state::wait_until;
use support::watched::Watched;

#[test]
fn each_migration_is_announced_and_timed() {
    let (_db, url) = db("announce");
    let folder = Folder::with(&[
        ("1_a.sql", "CREATE TABLE a (id int);\n"),
        ("2_b.sql", "CREATE TABLE b (id int);\n"),
    ]);
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has(&format!("applying 1 {} [1/2]", folder.shown("1_a.sql")))
        .stderr_has(&format!("applying 2 {} [2/2]", folder.shown("2_b.sql")))
        .stderr_has("applied 2 b in ");
}

#[test]
fn a_statement_blocked_past_10_s_says_who_blocks_it() {
    let cluster = Cluster::shared();
    let (db, url) = db("heartbeat");
    let folder = Folder::with(&[("1_t.sql", "CREATE TABLE t (id int);\n")]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    folder.write("2_alter.sql", "ALTER TABLE t ADD COLUMN b int;\n");

    let mut blocker = client_command(&PgBins::get().path("psql"))
        .args(["-X", "-q"])
        .args(cluster.socket_args(&db))
        .env("PGAPPNAME", "blocker-app")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("psql");
    let mut stdin = blocker.stdin.take().expect("stdin");
    writeln!(stdin, "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE;").expect("write");
    assert!(wait_until(Duration::from_secs(10), || {
        cluster.psql(
            &db,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'blocker-app' \
             AND state = 'idle in transaction'",
        ) == "1"
    }));

    // Without --ddl-lock-timeout (its default would give way at 5 s and retry): the
    // statement waits, and the heartbeat says for whom.
    let mut run = Run::on(&url, &folder, &["up", "--ddl-lock-timeout", "0"]);
    let watched = Watched::spawn(&mut run);
    let reported = wait_until(Duration::from_secs(25), || {
        watched.logged("still running after 10s")
    });
    drop(stdin);
    let _ = blocker.kill();
    let _ = blocker.wait();
    cluster.psql(
        &db,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'blocker-app'",
    );
    let out = watched.finish();
    assert!(reported, "no heartbeat:\n{}", out.stderr);
    out.expect(0)
        .stderr_has("waiting for a lock (Lock: relation), blocked by pid ")
        .stderr_has("application_name blocker-app, state idle in transaction")
        .stderr_has("query `LOCK TABLE t IN ACCESS EXCLUSIVE MODE;`")
        .stderr_has("applied 2 alter in ");
}
