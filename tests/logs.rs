//! Logs for machines and for people: `--log-format json` lines carry the documented
//! `event` vocabulary with typed fields, every run ends with `run.finished` and its exit
//! code, colour follows NO_COLOR / CLICOLOR_FORCE, and durations read like `1.5s`.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use support::run::{Folder, Outcome, Run, finish};
use support::state::tables;
use support::{Cluster, LockHolder, free_port, fresh_database};

type Line = Map<String, Value>;

/// Every stderr line, parsed; panics on a line that is not one flat JSON object.
#[track_caller]
fn json_lines(outcome: &Outcome) -> Vec<Line> {
    outcome
        .stderr
        .lines()
        .map(|line| {
            let value: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {line}\n{}", outcome.stderr));
            let Value::Object(object) = value else {
                panic!("not an object: {line}");
            };
            for key in ["timestamp", "level", "message"] {
                assert!(object[key].is_string(), "{key} is not a string: {line}");
            }
            // Flat: fields at the top level, never under "fields" or "span".
            for (key, value) in &object {
                assert!(
                    !value.is_object() && !value.is_array(),
                    "{key} is nested: {line}"
                );
            }
            object
        })
        .collect()
}

fn events<'a>(lines: &'a [Line], event: &str) -> Vec<&'a Line> {
    lines
        .iter()
        .filter(|l| l.get("event").and_then(Value::as_str) == Some(event))
        .collect()
}

#[track_caller]
fn one<'a>(lines: &'a [Line], event: &str) -> &'a Line {
    let found = events(lines, event);
    assert_eq!(found.len(), 1, "{event} lines: {lines:#?}");
    found[0]
}

#[track_caller]
fn number(line: &Line, key: &str) -> u64 {
    line.get(key)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{key} is not a number: {line:?}"))
}

#[track_caller]
fn string<'a>(line: &'a Line, key: &str) -> &'a str {
    line.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{key} is not a string: {line:?}"))
}

/// `run.finished` is the last line, with the exit code and counts as numbers; its
/// counts agree with the `migration.applied` / `migration.reverted` lines.
#[track_caller]
fn finished(lines: &[Line], code: u64) -> &Line {
    let last = lines.last().expect("some log line");
    assert_eq!(string(last, "event"), "run.finished", "{lines:#?}");
    assert_eq!(number(last, "exit_code"), code);
    number(last, "duration_ms");
    let applied = events(lines, "migration.applied").len() as u64;
    let reverted = events(lines, "migration.reverted").len() as u64;
    assert_eq!(number(last, "applied"), applied, "{lines:#?}");
    assert_eq!(number(last, "reverted"), reverted, "{lines:#?}");
    last
}

#[test]
fn json_up_of_three_migrations_has_typed_events_and_run_finished() {
    let (db, url) = fresh_database("json_up");
    let folder = tables(3);
    let outcome = Run::on(&url, &folder, &["up", "--log-format", "json"]).run();
    outcome.expect(0);
    let lines = json_lines(&outcome);
    number(one(&lines, "lock.acquired"), "duration_ms");
    one(&lines, "lock.released");
    let applying = events(&lines, "migration.applying");
    assert_eq!(applying.len(), 3, "{lines:#?}");
    assert_eq!(number(applying[2], "index"), 3);
    assert_eq!(number(applying[2], "total"), 3);
    let applied = events(&lines, "migration.applied");
    assert_eq!(applied.len(), 3, "{lines:#?}");
    for line in applied {
        string(line, "revision");
        string(line, "file");
        number(line, "duration_ms");
    }
    assert_eq!(number(finished(&lines, 0), "applied"), 3);
    assert_eq!(
        Cluster::shared().psql(&db, "SELECT count(*) FROM schemagate_history"),
        "3"
    );

    // Nothing to do is a finished run too.
    let again = Run::on(&url, &folder, &["up", "--log-format", "json"]).run();
    again.expect(0);
    let lines = json_lines(&again);
    assert_eq!(number(finished(&lines, 0), "applied"), 0);
}

#[test]
fn json_failing_migration_names_revision_file_line_and_sqlstate() {
    let (_db, url) = fresh_database("json_fail");
    let folder = Folder::with(&[
        ("1_ok.sql", "CREATE TABLE ok (id int);\n"),
        (
            "2_bad.sql",
            "-- migrate:up\nCREATE TABLE fine (id int);\nCREATE TABLE bad (id nope);\n",
        ),
    ]);
    let outcome = Run::on(&url, &folder, &["up", "--log-format", "json"]).run();
    outcome.expect(7);
    let lines = json_lines(&outcome);
    let failed = one(&lines, "migration.failed");
    assert_eq!(string(failed, "revision"), "2");
    assert!(string(failed, "file").ends_with("2_bad.sql"), "{failed:?}");
    assert_eq!(number(failed, "line"), 3);
    assert_eq!(string(failed, "sqlstate"), "42704");
    assert_eq!(string(failed, "level"), "ERROR");
    finished(&lines, 7);
}

#[test]
fn json_lock_wait_says_who_holds_it_then_how_long_it_took() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("json_lock");
    let folder = tables(1);
    let holder = LockHolder::take(cluster, &db, 4301);
    let started = Instant::now();
    let child = Run::on(
        &cluster.url(&db),
        &folder,
        &["up", "--lock-key", "4301", "--log-format", "json"],
    )
    .spawn();
    thread::sleep(Duration::from_millis(1200));
    drop(holder);
    let outcome = finish(child, started);
    outcome.expect(0);
    let lines = json_lines(&outcome);
    let waiting = &events(&lines, "lock.waiting")[0];
    assert!(
        string(waiting, "holder").contains("lock-holder-test"),
        "{waiting:?}"
    );
    let acquired = one(&lines, "lock.acquired");
    assert!(number(acquired, "duration_ms") >= 1000, "{acquired:?}");
    finished(&lines, 0);

    // Timing out is exit 6, with the holder and the time waited.
    let _holder = LockHolder::take(cluster, &db, 4302);
    let outcome = Run::on(
        &cluster.url(&db),
        &tables(2),
        &[
            "up",
            "--lock-key",
            "4302",
            "--lock-timeout",
            "2s",
            "--log-format",
            "json",
        ],
    )
    .run();
    outcome.expect(6);
    let lines = json_lines(&outcome);
    let timeout = one(&lines, "lock.timeout");
    assert_eq!(number(timeout, "duration_ms"), 2000);
    assert!(string(timeout, "holder").contains("lock-holder-test"));
    let message = string(timeout, "message");
    assert!(message.contains("not acquired within 2s;"), "{message}");
    finished(&lines, 6);
}

#[test]
fn json_wait_retries_count_attempts_and_the_budget_reads_rounded() {
    let folder = tables(1);
    let url = format!("postgres://nobody@127.0.0.1:{}/db", free_port());
    let outcome = Run::on(
        &url,
        &folder,
        &[
            "up",
            "--wait-timeout",
            "1500ms",
            "--log-format",
            "json",
            "--log-level",
            "debug",
        ],
    )
    .run();
    outcome.expect(4);
    let lines = json_lines(&outcome);
    let retries = events(&lines, "wait.retry");
    assert!(retries.len() >= 2, "{lines:#?}");
    for (i, retry) in retries.iter().enumerate() {
        assert_eq!(number(retry, "attempt"), i as u64 + 1);
        assert!(string(retry, "error").contains("refused"), "{retry:?}");
    }
    let timeout = one(&lines, "wait.timeout");
    assert!(number(timeout, "duration_ms") >= 1500);
    finished(&lines, 4);

    // For people: `after 1.5s`, never `1s 500ms 213us`.
    let text = Run::on(&url, &folder, &["up", "--wait-timeout", "1500ms"]).run();
    text.expect(4).stderr_has("(up to 1.5s)");
    let line = text
        .stderr
        .lines()
        .find(|l| l.contains("not reachable after"))
        .expect("the error line");
    let shown = line
        .split("not reachable after ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .expect("a duration");
    assert!(
        ["1.5s", "1.6s", "1.7s"].contains(&shown),
        "not rounded: {shown:?} in {line}"
    );
}

#[test]
fn every_ending_logs_run_finished_even_before_a_database_is_asked() {
    // Exit 3, before any connection.
    let folder = Folder::with(&[("1_bad.sql", "-- migrate:up\n-- migrate:up\n")]);
    let outcome = Run::on(
        "postgres://u@127.0.0.1:1/d",
        &folder,
        &["up", "--log-format", "json"],
    )
    .run();
    outcome.expect(3);
    let lines = json_lines(&outcome);
    finished(&lines, 3);
    // An offline command's success.
    let outcome = Run::on(
        "postgres://u@127.0.0.1:1/d",
        &tables(2),
        &["validate", "--log-format", "json"],
    )
    .run();
    outcome.expect(0);
    finished(&json_lines(&outcome), 0);
}

#[test]
fn text_logs_stay_for_people() {
    let (_db, url) = fresh_database("text_logs");
    let outcome = Run::on(&url, &tables(2), &["up"]).run();
    outcome
        .expect(0)
        .stderr_has("advisory lock acquired duration_ms=");
    assert!(!outcome.stderr.contains("event="), "{}", outcome.stderr);
    // The exit code is the shell's to show; `run.finished` is for machines and debug.
    assert!(
        !outcome.stderr.contains("run finished"),
        "{}",
        outcome.stderr
    );
    let debug = Run::on(&url, &tables(2), &["up", "--log-level", "debug"]).run();
    debug
        .expect(0)
        .stderr_has("run finished with exit code 0 in ");
    assert!(!outcome.stderr.contains('\u{1b}'), "colour on a pipe");
}

/// A run that logs an error line (a missing folder) with the colour variables set.
fn colour_run(vars: &[(&str, &str)]) -> Outcome {
    let mut run = Run::new(&["validate", "--migrations", "/nonexistent/migrations"]);
    for (key, value) in vars {
        run.env(key, value);
    }
    let outcome = run.run();
    outcome.expect(3);
    outcome
}

#[test]
fn colour_follows_no_color_and_clicolor_force() {
    let coloured = |vars: &[(&str, &str)]| colour_run(vars).stderr.contains('\u{1b}');
    assert!(!coloured(&[]), "no colour on a pipe by default");
    assert!(coloured(&[("CLICOLOR_FORCE", "1")]));
    assert!(!coloured(&[("CLICOLOR_FORCE", "0")]));
    assert!(!coloured(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]));
    // An empty NO_COLOR is as if unset.
    assert!(coloured(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "")]));
    // JSON is never coloured.
    let json = colour_run(&[("CLICOLOR_FORCE", "1"), ("SCHEMAGATE_LOG_FORMAT", "json")]);
    assert!(!json.stderr.contains('\u{1b}'), "{}", json.stderr);
}

#[test]
fn every_event_name_is_in_the_readme_logs_table() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let rows: Vec<&str> = readme.lines().filter(|l| l.starts_with("| `")).collect();
    for name in schemagate::output::event::ALL {
        let quoted = format!("`{name}`");
        assert!(
            rows.iter().any(|row| row.contains(&quoted)),
            "event {name} is not documented in README's Logs table"
        );
    }
}
