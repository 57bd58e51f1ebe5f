//! The command line itself: every command's help has an example, and `up --exec` becomes
//! the app after a successful run (and only then).

mod support;

use support::Cluster;
use support::run::{Folder, Run};

const COMMANDS: [&str; 15] = [
    "up", "down", "redo", "reset", "status", "current", "history", "heads", "new", "merge",
    "stamp", "check", "validate", "resolve", "wait",
];

#[test]
fn every_command_has_help_with_an_example() {
    for command in COMMANDS {
        let out = Run::new(&[command, "--help"]).run();
        out.expect(0);
        assert!(
            out.stdout.contains("Example"),
            "`schemagate {command} --help` has no example:\n{}",
            out.stdout
        );
    }
    // Alembic's words lead to the same commands.
    for (alias, command) in [
        ("upgrade", "up"),
        ("downgrade", "down"),
        ("revision", "new"),
    ] {
        let out = Run::new(&[alias, "--help"]).run();
        out.expect(0)
            .stdout_has(&format!("Usage: schemagate {command}"));
    }
}

#[test]
fn up_exec_becomes_the_command_after_a_successful_run() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("exec");
    let folder = Folder::example();
    // The shell prints its own pid: the same process as schemagate, replaced.
    let mut run = Run::on(
        &cluster.url(&db),
        &folder,
        &[
            "up",
            "--exec",
            "--",
            "sh",
            "-c",
            "echo \"pid=$$ args=$0,$1\"",
            "first",
            "second",
        ],
    );
    let child = run.spawn();
    let pid = child.id();
    let outcome = support::run::finish(child, std::time::Instant::now());
    outcome
        .expect(0)
        .stdout_has(&format!("pid={pid} args=first,second"))
        .stderr_has("applied 4 migrations");
    assert_eq!(
        cluster.psql(&db, "SELECT count(*) FROM schemagate_history"),
        "4"
    );

    // The app's exit code is the container's.
    Run::on(
        &cluster.url(&db),
        &folder,
        &["up", "--exec", "--", "sh", "-c", "exit 42"],
    )
    .run()
    .expect(42);
}

#[test]
fn up_exec_does_not_run_the_command_after_a_failure() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("exec_fail");
    let folder = Folder::with(&[("1_broken.sql", "CREATE TABLE t (id nope);\n")]);
    let marker = folder.path().join("started");
    let touch = format!("touch {}", marker.display());
    Run::on(
        &cluster.url(&db),
        &folder,
        &["up", "--exec", "--", "sh", "-c", &touch],
    )
    .run()
    .expect(7);
    assert!(!marker.exists(), "the command ran after a failed migration");

    let folder = Folder::example();
    Run::on(
        &cluster.url(&db),
        &folder,
        &["up", "--exec", "--", "/nonexistent/app"],
    )
    .run()
    .expect(2)
    .stderr_has("cannot run /nonexistent/app");
    for args in [&["up", "--exec"][..], &["up", "--", "sh"][..]] {
        Run::on(&cluster.url(&db), &folder, args).run().expect(2);
    }
}

/// `schemagate COMMAND --help`.
fn help(command: &str) -> String {
    let out = Run::new(&[command, "--help"]).run();
    out.expect(0);
    out.stdout
}

#[test]
fn each_command_lists_only_the_options_it_uses() {
    // Offline: no connection, no lock.
    for command in ["validate", "heads", "new", "merge"] {
        let text = help(command);
        for option in [
            "--database-url",
            "--wait-timeout",
            "--lock-timeout",
            "--lock-mode",
        ] {
            assert!(
                !text.contains(option),
                "`{command} --help` lists {option}:\n{text}"
            );
        }
        assert!(text.contains("--migrations"), "{command}:\n{text}");
        assert!(text.contains("--log-format"), "{command}:\n{text}");
    }
    // They connect and take the lock.
    for command in ["up", "down", "redo", "reset", "stamp", "resolve"] {
        let text = help(command);
        for option in ["--database-url", "--schema", "--lock-timeout", "--lock-key"] {
            assert!(
                text.contains(option),
                "`{command} --help` lacks {option}:\n{text}"
            );
        }
    }
    // They connect but take no lock.
    for command in ["status", "current", "history", "check", "wait"] {
        let text = help(command);
        assert!(text.contains("--database-url"), "{command}:\n{text}");
        for option in ["--lock-timeout", "--lock-mode", "--lock-key"] {
            assert!(
                !text.contains(option),
                "`{command} --help` lists {option}:\n{text}"
            );
        }
    }
    // `wait` reads no files; only the commands that gate on files know --allow-empty.
    assert!(!help("wait").contains("--migrations"));
    assert!(help("check").contains("--allow-empty"));
    assert!(!help("status").contains("--allow-empty"));
}

#[test]
fn an_option_where_it_means_nothing_is_a_clear_usage_error() {
    let out = Run::new(&["validate", "--database-url", "postgres://u@h/d"]).run();
    out.expect(2).stderr_has("--database-url");
    Run::new(&["status", "--lock-timeout", "5s"])
        .run()
        .expect(2)
        .stderr_has("--lock-timeout");
    // The environment variables stay harmless where they mean nothing.
    let folder = Folder::with(&[("1_a.sql", "SELECT 1;\n")]);
    Run::on("postgres://u@h/d", &folder, &["validate"])
        .env("SCHEMAGATE_LOCK_TIMEOUT", "5s")
        .run()
        .expect(0);
    // Logging options work on every command, before or after its name.
    Run::on(
        "postgres://u@h/d",
        &folder,
        &["--log-format", "json", "validate"],
    )
    .run()
    .expect(0);
    Run::on(
        "postgres://u@h/d",
        &folder,
        &["heads", "--log-level", "debug"],
    )
    .run()
    .expect(0);
}
