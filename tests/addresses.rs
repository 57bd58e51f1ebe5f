//! Malformed addresses fail at once (exit 2) and never echo a piece of the password
//! (issue 10, item 9).

mod support;

use std::time::Duration;

use support::run::{Folder, Run};

/// Every 3-character piece of `secret`.
fn fragments(secret: &str) -> Vec<&str> {
    (0..=secret.len().saturating_sub(3))
        .map(|i| &secret[i..i + 3])
        .collect()
}

#[track_caller]
fn fails_at_once_without_fragments(url: &str, secret: &str) {
    let folder = Folder::with(&[("1_a.sql", "CREATE TABLE a ();\n")]);
    let out = Run::on(url, &folder, &["up"])
        .env("SCHEMAGATE_WAIT_TIMEOUT", "60s")
        .run();
    out.expect(2);
    assert!(
        out.elapsed < Duration::from_secs(1),
        "took {:?}: {}",
        out.elapsed,
        out.stderr
    );
    for piece in fragments(secret) {
        assert!(
            !out.stderr.contains(piece) && !out.stdout.contains(piece),
            "{url}: `{piece}` echoed:\n{}",
            out.stderr
        );
    }
}

#[test]
fn an_unencoded_at_in_the_password_fails_at_once() {
    fails_at_once_without_fragments(
        "postgres://app:Wq9@Zk7!vB@db.internal:5432/app",
        "Wq9@Zk7!vB",
    );
}

#[test]
fn a_space_in_a_key_value_password_names_the_key_not_the_text() {
    let folder = Folder::with(&[("1_a.sql", "CREATE TABLE a ();\n")]);
    let out = Run::on("host=db.internal password=Wq9xyz Zk7vBq", &folder, &["up"]).run();
    out.expect(2).stderr_has("password='");
    for piece in fragments("Wq9xyz Zk7vBq") {
        assert!(
            !out.stderr.contains(piece),
            "`{piece}` echoed:\n{}",
            out.stderr
        );
    }
}

#[test]
fn a_host_with_a_bad_character_fails_at_once() {
    fails_at_once_without_fragments("postgres://app:Wq9Zk7vB@db!internal:5432/app", "Wq9Zk7vB");
}
