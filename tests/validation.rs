//! What the folder holds, before any SQL is read: files that are no regular files (FIFOs,
//! sockets, devices, symlinks to them) are refused without being opened, a load that
//! takes long still ends at once on SIGTERM, and an empty or missing folder never lets a
//! deployment gate pass.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::Cluster;
use support::run::{Folder, Outcome, Run, finish};

/// Nobody listens there; a run that tried to connect would wait a minute, not fail fast.
const NOBODY_LISTENS: &str = "postgres://postgres@127.0.0.1:1/none";

const GOOD: (&str, &str) = ("1_first.sql", "-- migrate:up\nCREATE TABLE a (id int);\n");

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

fn validate_fast(folder: &Folder) -> Outcome {
    let outcome = Run::on(NOBODY_LISTENS, folder, &["up", "--wait-timeout", "60s"]).run();
    assert!(
        outcome.elapsed < Duration::from_secs(1),
        "a special file must be refused at once: took {:?}\n{}",
        outcome.elapsed,
        outcome.stderr
    );
    outcome
}

#[test]
fn a_fifo_named_like_a_migration_is_refused_at_once() {
    let folder = Folder::with(&[GOOD]);
    mkfifo(&folder.path().join("2_x.sql"));
    validate_fast(&folder)
        .expect(3)
        .stderr_has(&format!("{}: a FIFO", folder.shown("2_x.sql")))
        .stderr_has("not a regular file");
}

#[test]
fn a_symlink_to_a_fifo_a_socket_or_a_device_is_refused_at_once() {
    let elsewhere = Folder::new();
    let fifo = elsewhere.path().join("pipe");
    mkfifo(&fifo);
    let socket = elsewhere.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind a socket");

    let folder = Folder::with(&[GOOD]);
    std::os::unix::fs::symlink(&fifo, folder.path().join("2_x.sql")).expect("symlink");
    validate_fast(&folder)
        .expect(3)
        .stderr_has(&format!("{}: a FIFO", folder.shown("2_x.sql")));

    let folder = Folder::with(&[GOOD]);
    std::os::unix::fs::symlink(&socket, folder.path().join("2_x.sql")).expect("symlink");
    validate_fast(&folder)
        .expect(3)
        .stderr_has(&format!("{}: a unix socket", folder.shown("2_x.sql")));

    let folder = Folder::with(&[GOOD]);
    std::os::unix::fs::symlink("/dev/null", folder.path().join("2_x.sql")).expect("symlink");
    validate_fast(&folder)
        .expect(3)
        .stderr_has(&format!("{}: a character device", folder.shown("2_x.sql")));

    // A socket in the folder itself, seen from readdir's type alone.
    let folder = Folder::with(&[GOOD]);
    let _in_folder =
        std::os::unix::net::UnixListener::bind(folder.path().join("3_s.sql")).expect("bind");
    validate_fast(&folder)
        .expect(3)
        .stderr_has(&format!("{}: a unix socket", folder.shown("3_s.sql")));
}

/// SIGTERM while the files load ends the run at once: here the load is slow because one
/// file is huge (a 2 GiB sparse file: no disk used, seconds of reading).
#[test]
fn sigterm_while_the_files_load_exits_143_at_once() {
    let folder = Folder::with(&[GOOD]);
    let big = std::fs::File::create(folder.path().join("2_big.sql")).expect("create");
    big.set_len(2 << 30).expect("a sparse 2 GiB file");
    drop(big);

    let started = Instant::now();
    let child = Run::on(NOBODY_LISTENS, &folder, &["validate"]).spawn();
    std::thread::sleep(Duration::from_millis(400));
    let pid = i32::try_from(child.id()).expect("pid fits");
    // SAFETY: kill(2) on the child this test spawned and has not reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "send SIGTERM");
    let signalled = Instant::now();
    let outcome = finish(child, started);
    let after_signal = signalled.elapsed();
    outcome.expect(143).stderr_has("interrupted by SIGTERM");
    assert!(
        after_signal < Duration::from_secs(2),
        "exit 143 came {after_signal:?} after SIGTERM: the load did not listen for it"
    );
}

/// (args, the commands that must refuse an empty folder)
const GATES: &[&[&str]] = &[
    &["up"],
    &["check"],
    &["check", "--wait", "--timeout", "5s"],
    &["validate"],
    &["down", "base"],
    &["redo"],
    &["reset", "--yes"],
    &["stamp", "head"],
];

fn expect_no_migrations(outcome: &Outcome, folder: &Path, args: &[&str]) {
    assert_eq!(outcome.code, 3, "{args:?}: {}", outcome.stderr);
    outcome
        .stderr_has(&folder.display().to_string())
        .stderr_has("SCHEMAGATE_MIGRATIONS")
        .stderr_has("a volume not mounted there, or an image built FROM schemagate without COPY of the migrations")
        .stderr_has("--allow-empty");
    assert!(
        outcome.elapsed < Duration::from_secs(5),
        "{args:?} waited for the database before refusing: {:?}",
        outcome.elapsed
    );
}

#[test]
fn an_empty_or_missing_folder_fails_every_gate_with_exit_3() {
    let empty = Folder::new();
    let readme_only = Folder::with(&[("README.md", "# migrations\n")]);
    let missing = Folder::new();
    let missing_path = missing.path().join("not-there");
    for args in GATES {
        // A long wait, from the environment: `validate` has no --wait-timeout.
        for folder in [&empty, &readme_only] {
            let outcome = Run::on(NOBODY_LISTENS, folder, args)
                .env("SCHEMAGATE_WAIT_TIMEOUT", "60s")
                .run();
            expect_no_migrations(&outcome, folder.path(), args);
        }
        let outcome = Run::new(args)
            .env("SCHEMAGATE_WAIT_TIMEOUT", "60s")
            .env("DATABASE_URL", NOBODY_LISTENS)
            .env(
                "SCHEMAGATE_MIGRATIONS",
                missing_path.to_str().expect("utf-8"),
            )
            .run();
        expect_no_migrations(&outcome, &missing_path, args);
    }
}

#[test]
fn new_heads_and_offline_history_still_work_in_an_empty_folder() {
    let folder = Folder::new();
    Run::on(NOBODY_LISTENS, &folder, &["heads"]).run().expect(0);
    Run::on(NOBODY_LISTENS, &folder, &["history", "--offline"])
        .run()
        .expect(0);
    Run::on(NOBODY_LISTENS, &folder, &["new", "first"])
        .run()
        .expect(0);
    assert_eq!(folder.names().len(), 1, "{:?}", folder.names());
}

#[test]
fn allow_empty_and_its_variable_let_up_pass_on_nothing() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("allow_empty");
    let url = cluster.url(&db);
    let empty = Folder::new();
    Run::on(&url, &empty, &["up", "--allow-empty"])
        .run()
        .expect(0)
        .stderr_has("nothing to do");
    Run::on(&url, &empty, &["up"])
        .env("SCHEMAGATE_ALLOW_EMPTY", "true")
        .run()
        .expect(0)
        .stderr_has("nothing to do");
    // A missing folder too, and validate says what it found.
    Run::new(&["validate", "--allow-empty"])
        .env("SCHEMAGATE_MIGRATIONS", "/nonexistent/migrations")
        .run()
        .expect(0)
        .stdout_has("ok: 0 migrations");
    // A false value is no permission.
    Run::on(&url, &empty, &["up"])
        .env("SCHEMAGATE_ALLOW_EMPTY", "false")
        .run()
        .expect(3);
}

/// What `pg_dump` writes of a database with data (COPY ... FROM stdin with inline rows,
/// `\\restrict` lines, BEGIN ATOMIC bodies) is a valid baseline migration as it is.
#[test]
fn a_pg_dump_with_data_validates_unchanged() {
    let cluster = Cluster::shared();
    let db = cluster.create_database("dump_src");
    cluster.psql(&db, support::sql::DATA_FOR_DUMP);
    let dump = cluster.pg_dump(&db, &["--no-owner"]);
    assert!(
        dump.contains("FROM stdin;"),
        "the dump has inline data:\n{dump}"
    );
    // pg_dump 15.14 and later (what this machine has) protect psql with these lines.
    assert!(dump.contains("\n\\restrict "), "no \\restrict:\n{dump}");
    assert_eq!(schemagate::files::split::meta_command_lines(&dump).len(), 2);

    let statements = schemagate::files::split::split(&dump).expect("the dump splits");
    let copies: Vec<_> = statements.iter().filter_map(|s| s.copy).collect();
    assert_eq!(copies.len(), 3, "one COPY per table");
    let rows: usize = copies.iter().map(|c| c.data.lines().count()).sum();
    assert_eq!(rows, 7, "every row is data: {copies:?}");

    let folder = Folder::with(&[("1_baseline.sql", &dump)]);
    Run::on(NOBODY_LISTENS, &folder, &["validate"])
        .run()
        .expect(0)
        .stdout_has("ok: 1 migration");
}
