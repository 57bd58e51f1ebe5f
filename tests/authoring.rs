//! Writing migrations: `new` (Alembic's `revision -m`) and `merge`, and what `validate`
//! says of the result. No database is involved until the last step of each test.

mod support;

use support::Cluster;
use support::run::{Folder, Outcome, Run};

fn offline(folder: &Folder, args: &[&str]) -> Outcome {
    let mut run = Run::new(args);
    run.env(
        "SCHEMAGATE_MIGRATIONS",
        folder.path().to_str().expect("utf-8"),
    );
    run.run()
}

/// The file name `new` printed, checked to be `<14 digits>_<slug>.sql` in the folder.
fn written(folder: &Folder, outcome: &Outcome, slug: &str) -> String {
    outcome.expect(0);
    let path = outcome.stdout.trim();
    let name = path
        .strip_prefix(&format!("{}/", folder.path().display()))
        .unwrap_or_else(|| panic!("{path} is not in the folder"));
    let (revision, rest) = name.split_once('_').expect("revision_slug.sql");
    assert_eq!(revision.len(), 14, "{name}");
    assert!(revision.bytes().all(|b| b.is_ascii_digit()), "{name}");
    assert_eq!(rest, format!("{slug}.sql"));
    name.to_string()
}

#[test]
fn new_writes_a_timestamped_file_revising_the_head() {
    let folder = Folder::example();
    let out = offline(&folder, &["new", "Add phone to users!"]);
    let name = written(&folder, &out, "add_phone_to_users");
    assert_eq!(
        folder.read(&name),
        "-- Add phone to users!\n-- migrate:revises 20251210080000\n-- migrate:up\n\n\n-- migrate:down\n\n"
    );
    // Until its SQL is written, the new file is an empty migration: validation says so.
    offline(&folder, &["validate"])
        .expect(3)
        .stderr_has(&format!("{}:3: empty up section", folder.shown(&name)));

    folder.write(
        &name,
        "-- migrate:revises 20251210080000\n-- migrate:up\nALTER TABLE users ADD COLUMN phone text;\n-- migrate:down\nALTER TABLE users DROP COLUMN phone;\n",
    );
    // Alembic's spelling works too, and the second file revises the first.
    let out = offline(&folder, &["revision", "-m", "index phones"]);
    let second = written(&folder, &out, "index_phones");
    assert!(second > name, "{second} sorts after {name}");
    let revision = name.split('_').next().expect("revision");
    assert!(
        folder
            .read(&second)
            .contains(&format!("-- migrate:revises {revision}\n"))
    );
    folder.write(
        &second,
        &format!("-- migrate:revises {revision}\n-- migrate:up\nCREATE INDEX ON users (phone);\n"),
    );
    offline(&folder, &["validate", "--strict"])
        .expect(0)
        .stdout_has("6 migrations, 1 head");

    let cluster = Cluster::shared();
    let db = cluster.create_database("new");
    Run::on(&cluster.url(&db), &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("applied 6 migrations");
    assert_eq!(
        cluster.psql(
            &db,
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'phone'"
        ),
        "1"
    );
}

#[test]
fn the_first_migration_of_a_new_project() {
    let folder = Folder::new();
    let dir = folder.path().join("db").join("migrations");
    let mut run = Run::new(&["new", "create users"]);
    run.env("SCHEMAGATE_MIGRATIONS", dir.to_str().expect("utf-8"));
    let out = run.run();
    out.expect(0);
    let path = std::path::PathBuf::from(out.stdout.trim());
    let text = std::fs::read_to_string(&path).expect("the file exists");
    assert!(
        text.starts_with("-- create users\n-- migrate:revises base\n-- migrate:up\n"),
        "{text}"
    );
}

#[test]
fn new_refuses_several_heads_and_merge_joins_them() {
    let folder = Folder::with(&[
        ("1_base.sql", "CREATE TABLE base ();\n"),
        (
            "2_alice.sql",
            "-- migrate:revises 1\n-- migrate:up\nCREATE TABLE alice ();\n",
        ),
        (
            "3_bob.sql",
            "-- migrate:revises 1\n-- migrate:up\nCREATE TABLE bob ();\n",
        ),
    ]);
    offline(&folder, &["new", "more"])
        .expect(3)
        .stderr_has("one of 2 heads (2, 3)")
        .stderr_has("run `schemagate merge \"merge heads\"` first");
    assert_eq!(folder.names().len(), 3, "nothing was written");
    offline(&folder, &["validate", "--strict"]).expect(3);

    let out = offline(&folder, &["merge", "merge heads"]);
    let name = written(&folder, &out, "merge_heads");
    assert!(
        folder
            .read(&name)
            .contains("-- migrate:revises 2, 3\n-- migrate:up\n"),
        "{}",
        folder.read(&name)
    );
    offline(&folder, &["validate", "--strict"])
        .expect(0)
        .stdout_has("4 migrations, 1 head");
    offline(&folder, &["heads"])
        .expect(0)
        .stdout_has("(head) (mergepoint), merge heads\n");
    offline(&folder, &["merge", "again"])
        .expect(2)
        .stderr_has("nothing to merge: the files have one head");

    // A new migration now revises the merge, and everything applies in order.
    let out = offline(&folder, &["new", "after the merge"]);
    let after = written(&folder, &out, "after_the_merge");
    let merge_revision = name.split('_').next().expect("revision");
    assert!(
        folder
            .read(&after)
            .contains(&format!("-- migrate:revises {merge_revision}\n"))
    );
    folder.remove(&after);
    let cluster = Cluster::shared();
    let db = cluster.create_database("merge");
    Run::on(&cluster.url(&db), &folder, &["up"])
        .run()
        .expect(0)
        .stderr_has("applied 4 migrations");
}

#[test]
fn new_with_an_explicit_revision_or_parent() {
    let folder = Folder::with(&[
        ("0001_a.sql", "CREATE TABLE a ();\n"),
        ("0002_b.sql", "CREATE TABLE b ();\n"),
    ]);
    offline(
        &folder,
        &["new", "c", "--revision", "0003", "--revises", "0002"],
    )
    .expect(0)
    .stdout_has("0003_c.sql");
    assert!(
        folder
            .read("0003_c.sql")
            .contains("-- migrate:revises 0002\n")
    );
    // A draft on top of a draft is allowed, with a word about the unfinished one.
    let out = offline(&folder, &["new", "d"]);
    out.expect(0).stderr_has("0003 (");
    out.stderr_has("is unfinished");
    let d = out
        .stdout
        .trim()
        .rsplit('/')
        .next()
        .expect("name")
        .to_string();
    folder.remove(&d);
    folder.write(
        "0003_c.sql",
        "-- migrate:revises 0002\n-- migrate:up\nCREATE TABLE c ();\n",
    );
    for (args, says) in [
        (&["new", "x", "--revision", "0002"][..], "is taken by"),
        (
            &["new", "x", "--revision", "0001a"][..],
            "would then revise the new file",
        ),
        (
            &["new", "x", "--revision", "a-b"][..],
            "letters and digits only",
        ),
        (&["new", "!!!"][..], "no letters or digits"),
        (
            &["new", "x", "--revises", "9"][..],
            "no migration has revision `9`",
        ),
    ] {
        offline(&folder, args).expect(2).stderr_has(says);
    }
}

#[test]
fn a_file_just_written_by_new_is_unfinished_not_broken() {
    let cluster = support::Cluster::shared();
    let db = cluster.create_database("draft");
    let url = cluster.url(&db);
    let folder = Folder::with(&[("1_first.sql", "CREATE TABLE first (a int);\n")]);
    Run::on(&url, &folder, &["up"]).run().expect(0);
    Run::on(&url, &folder, &["new", "add phone"])
        .run()
        .expect(0);
    Run::on(&url, &folder, &["status"])
        .run()
        .expect(0)
        .stdout_has("unfinished")
        .stdout_has("1 applied, 1 unfinished");
    Run::on(&url, &folder, &["history"])
        .run()
        .expect(0)
        .stdout_has("(unfinished: its up section is empty)");
    Run::on(&url, &folder, &["current"])
        .run()
        .expect(0)
        .stdout_has("1");
    Run::on(&url, &folder, &["heads"]).run().expect(0);
    // The gates still refuse to run it.
    Run::on(&url, &folder, &["up"])
        .run()
        .expect(3)
        .stderr_has("empty up section")
        .stderr_has("unfinished");
    Run::on(&url, &folder, &["validate"]).run().expect(3);
}

#[test]
fn new_works_in_a_folder_of_alembic_ids() {
    let folder = Folder::with(&[
        (
            "ae1027a6acf0_first.sql",
            "-- migrate:revises base\n-- migrate:up\nCREATE TABLE a (id int);\n",
        ),
        (
            "1975ea83b712_second.sql",
            "-- migrate:revises ae1027a6acf0\n-- migrate:up\nCREATE TABLE b (id int);\n",
        ),
    ]);
    let out = Run::new(&["new", "third"])
        .env(
            "SCHEMAGATE_MIGRATIONS",
            folder.path().to_str().expect("utf-8"),
        )
        .run();
    out.expect(0);
    let written = folder
        .names()
        .into_iter()
        .find(|n| n.ends_with("_third.sql"))
        .expect("the new file");
    assert_eq!(written.len(), "1975ea83b712_third.sql".len(), "{written}");
    assert!(
        folder
            .read(&written)
            .contains("-- migrate:revises 1975ea83b712")
    );
}
