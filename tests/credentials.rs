//! Credentials kept out of the URL: libpq's password file (PGPASSFILE, ~/.pgpass) and
//! DATABASE_URL_FILE (Docker and Kubernetes secrets).

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::OnceLock;

use support::Cluster;
use support::run::{Folder, Outcome, Run};

/// A password with the characters the file format escapes.
const PASSWORD: &str = "pg:pass\\file-7Qw";

/// One cluster with password authentication and a role `app` owning database `app`.
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        let cluster = Cluster::start_with_password_auth();
        cluster.create_role("app", PASSWORD);
        cluster.psql("postgres", "CREATE DATABASE app OWNER app");
        cluster
    })
}

/// `hostname:port:database:username:password` with `:` and `\` escaped.
fn pgpass_line(host: &str, port: &str, password: &str) -> String {
    let password = password.replace('\\', "\\\\").replace(':', "\\:");
    format!("{host}:{port}:app:app:{password}\n")
}

/// A folder with one migration and a password file `pgpass` with `lines` and `mode`.
fn folder_with_pgpass(lines: &str, mode: u32) -> Folder {
    let folder = Folder::with(&[("1_a.sql", "SELECT 1;\n")]);
    folder.write("pgpass", lines);
    fs::set_permissions(
        folder.path().join("pgpass"),
        fs::Permissions::from_mode(mode),
    )
    .expect("chmod pgpass");
    folder
}

/// `up` as app without a password in the URL, with `env`.
fn up_without_password(folder: &Folder, env: &[(&str, &str)]) -> Outcome {
    let url = format!("postgres://app@127.0.0.1:{}/app", cluster().port());
    let mut run = Run::on(&url, folder, &["up", "--log-level", "debug"]);
    for (key, value) in env {
        run.env(key, value);
    }
    run.run()
}

fn pgpass_env(folder: &Folder) -> String {
    folder.shown("pgpass")
}

#[test]
fn a_password_from_pgpassfile_logs_in() {
    let port = cluster().port().to_string();
    let folder = folder_with_pgpass(
        &format!(
            "# comment\n127.0.0.1:{port}:app:other:nope\n{}",
            pgpass_line("127.0.0.1", &port, PASSWORD)
        ),
        0o600,
    );
    up_without_password(&folder, &[("PGPASSFILE", &pgpass_env(&folder))]).expect(0);

    // Wildcards, and ~/.pgpass when PGPASSFILE is not set.
    let home = folder_with_pgpass(&pgpass_line("*", "*", PASSWORD), 0o600);
    fs::rename(home.path().join("pgpass"), home.path().join(".pgpass")).expect("rename");
    let home_dir = home.path().to_str().expect("utf-8").to_string();
    up_without_password(&home, &[("HOME", &home_dir)]).expect(0);
}

#[test]
fn the_url_and_pgpassword_win_over_the_file() {
    let port = cluster().port().to_string();
    let folder = folder_with_pgpass(&pgpass_line("*", &port, PASSWORD), 0o600);
    let file = pgpass_env(&folder);
    let url = format!("postgres://app:wrong-one@127.0.0.1:{port}/app");
    Run::on(&url, &folder, &["up"])
        .env("PGPASSFILE", &file)
        .run()
        .expect(5)
        .stderr_has("28P01");
    up_without_password(
        &folder,
        &[("PGPASSFILE", &file), ("PGPASSWORD", "wrong-one")],
    )
    .expect(5)
    .stderr_has("28P01");
}

#[test]
fn a_file_others_can_read_is_ignored_with_a_warning() {
    let port = cluster().port().to_string();
    let folder = folder_with_pgpass(&pgpass_line("*", &port, PASSWORD), 0o644);
    let outcome = up_without_password(&folder, &[("PGPASSFILE", &pgpass_env(&folder))]);
    outcome
        .expect(5)
        .stderr_has("can be read by the group or others")
        .stderr_has("chmod 0600")
        .stderr_has("asks for a password");
}

#[test]
fn a_missing_password_file_is_skipped() {
    let folder = Folder::with(&[("1_a.sql", "SELECT 1;\n")]);
    let missing = folder.shown("no-such-pgpass");
    up_without_password(&folder, &[("PGPASSFILE", &missing)])
        .expect(5)
        .stderr_has("asks for a password")
        .stderr_has("not used");
}

#[test]
fn database_url_file_with_a_trailing_newline() {
    let port = cluster().port();
    let folder = Folder::with(&[("1_a.sql", "SELECT 1;\n")]);
    let password = PASSWORD.replace('\\', "%5C").replace(':', "%3A");
    folder.write(
        "url",
        &format!("postgres://app:{password}@127.0.0.1:{port}/app\r\n\n"),
    );
    let outcome = Run::new(&["up"])
        .env("DATABASE_URL_FILE", &folder.shown("url"))
        .env(
            "SCHEMAGATE_MIGRATIONS",
            folder.path().to_str().expect("utf-8"),
        )
        .run();
    outcome.expect(0);
}

#[test]
fn a_missing_database_url_file_is_exit_2_and_named() {
    let folder = Folder::with(&[("1_a.sql", "SELECT 1;\n")]);
    let missing = folder.shown("no-such-url-file");
    let outcome = Run::new(&["up"])
        .env("DATABASE_URL_FILE", &missing)
        .env(
            "SCHEMAGATE_MIGRATIONS",
            folder.path().to_str().expect("utf-8"),
        )
        .run();
    outcome
        .expect(2)
        .stderr_has("DATABASE_URL_FILE")
        .stderr_has(&missing);
}
