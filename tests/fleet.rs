//! Fleets (PRODUCT.md section 12): `up`, `status` and `check` over many databases and
//! tenant schemas of one cluster, run as the built binary.
//!
//! "Migrated once" is checked by the migrations themselves: one of them inserts a row,
//! so a second apply would show as a second row, beside the history's own events.

mod support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::run::{Folder, Outcome, Run, finish};
use support::{Cluster, Setup};

/// A cluster of this file's own, with room for many connections at once.
fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        Cluster::start_custom(Setup {
            settings: vec!["max_connections=300".into()],
            ..Setup::default()
        })
    })
}

/// Three migrations; the second records that it ran, the third names its table without a
/// schema (so, for a tenant, it lands in the tenant's schema).
fn migrations() -> Folder {
    Folder::with(&[
        (
            "20250101000000_runs.sql",
            "-- migrate:up\nCREATE TABLE runs (at timestamptz DEFAULT now());\n-- migrate:down\nDROP TABLE runs;\n",
        ),
        (
            "20250102000000_record.sql",
            "-- migrate:up\nINSERT INTO runs DEFAULT VALUES;\n-- migrate:down\nDELETE FROM runs;\n",
        ),
        (
            "20250103000000_things.sql",
            "-- migrate:up\nCREATE TABLE things (id int PRIMARY KEY);\nCREATE INDEX things_id ON things (id);\n-- migrate:down\nDROP TABLE things;\n",
        ),
    ])
}

/// `n` new databases, created in one psql script.
fn databases(prefix: &str, n: usize) -> Vec<String> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let batch = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let names: Vec<String> = (0..n)
        .map(|i| format!("{prefix}_{batch}_{i:03}_{}", std::process::id()))
        .collect();
    let script: String = names
        .iter()
        .map(|n| format!("CREATE DATABASE {n};\n"))
        .collect();
    cluster().psql("postgres", &script);
    names
}

/// A `--targets` file of these databases' URLs, with a comment and a blank line.
fn targets_file(folder: &Folder, dbs: &[String]) -> String {
    let mut text = String::from("# the fleet\n\n");
    for db in dbs {
        text.push_str(&cluster().url(db));
        text.push('\n');
    }
    folder.write("targets.txt", &text);
    folder.shown("targets.txt")
}

fn fleet(migrations: &Folder, args: &[&str]) -> Run {
    let mut run = Run::new(args);
    run.env(
        "SCHEMAGATE_MIGRATIONS",
        migrations.path().to_str().expect("utf-8"),
    );
    run
}

fn report(path: &str) -> Value {
    let text = std::fs::read_to_string(path).expect("the report is written");
    serde_json::from_str(&text).expect("the report is JSON")
}

/// The report's targets, as (target, outcome, exit code).
fn results(report: &Value) -> Vec<(String, String, i64)> {
    report["targets"]
        .as_array()
        .expect("targets[]")
        .iter()
        .map(|t| {
            (
                t["target"].as_str().expect("target").to_string(),
                t["outcome"].as_str().expect("outcome").to_string(),
                t["exit_code"].as_i64().expect("exit_code"),
            )
        })
        .collect()
}

/// The count the summary table gives `key` (`migrated`, `failed (exit 7)`).
fn summary_count(stdout: &str, key: &str) -> Option<usize> {
    stdout.lines().find_map(|line| {
        let rest = line.strip_prefix("  ")?.strip_prefix(key)?;
        rest.trim().parse().ok()
    })
}

/// Whether schemagate never ran on `db` (it has no history table).
fn untouched(db: &str) -> bool {
    !has_table(db, "schemagate_history")
}

/// Whether `db` has the table `name` (schema-qualified).
fn has_table(db: &str, name: &str) -> bool {
    cluster().psql(db, &format!("SELECT to_regclass('{name}') IS NOT NULL")) == "t"
}

fn identity(db: &str) -> String {
    format!("127.0.0.1:{}/{db}", cluster().port())
}

/// `applied-rows|ok-events|runs` of a database (or a schema of one).
fn once(db: &str, schema: &str) -> String {
    cluster().psql(
        db,
        &format!(
            "SELECT (SELECT count(*) FROM {schema}.schemagate_history WHERE status = 'applied') || '|' || \
             (SELECT count(*) FROM {schema}.schemagate_events WHERE outcome = 'ok') || '|' || \
             (SELECT count(*) FROM {schema}.runs)"
        ),
    )
}

#[test]
fn two_hundred_databases_and_a_hundred_tenant_schemas_are_each_migrated_once() {
    let files = migrations();
    let dbs = databases("many", 200);
    let list = targets_file(&files, &dbs);
    let report_path = files.shown("report.json");
    let out = fleet(
        &files,
        &[
            "up",
            "--targets",
            &list,
            "--parallel",
            "16",
            "--report",
            &report_path,
        ],
    )
    .run();
    out.expect(0)
        .stdout_has("up 200 targets in")
        .stdout_has("--parallel 16");
    assert_eq!(
        out.stdout
            .lines()
            .filter(|l| l.starts_with("migrated "))
            .count(),
        200,
        "{}",
        out.stdout
    );
    let r = report(&report_path);
    assert_eq!(r["exit_code"], 0);
    assert_eq!(r["summary"]["outcomes"]["migrated"], 200);
    let order: Vec<String> = results(&r).into_iter().map(|(t, _, _)| t).collect();
    let given: Vec<String> = dbs.iter().map(|d| identity(d)).collect();
    assert_eq!(order, given, "the report keeps the file's order");
    for db in &dbs {
        assert_eq!(once(db, "public"), "3|3|1", "{db}");
    }

    // A hundred tenants in one database, each with its own history, lock and search_path.
    let app = cluster().create_database("tenants");
    let schemas: String = (0..100)
        .map(|i| format!("CREATE SCHEMA tenant_{i:03};\n"))
        .collect();
    cluster().psql(&app, &schemas);
    let query = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_%' ORDER BY 1";
    let mut tenants = fleet(
        &files,
        &[
            "up",
            "--tenant-schemas-query",
            query,
            "--parallel",
            "16",
            "--format",
            "json",
        ],
    );
    tenants.env("DATABASE_URL", &cluster().url(&app));
    let out = tenants.run();
    out.expect(0);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object a line"))
        .collect();
    assert_eq!(lines.len(), 101, "a line a tenant and the summary");
    assert_eq!(lines[100]["summary"]["outcomes"]["migrated"], 100);
    let migrated: BTreeSet<String> = lines[..100]
        .iter()
        .map(|l| l["schema"].as_str().expect("schema").to_string())
        .collect();
    assert_eq!(migrated.len(), 100);
    for i in 0..100 {
        assert_eq!(
            once(&app, &format!("tenant_{i:03}")),
            "3|3|1",
            "tenant_{i:03}"
        );
    }
    assert_eq!(
        cluster().psql(
            &app,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'things' AND schemaname LIKE 'tenant%'"
        ),
        "100",
        "each tenant's unqualified CREATE TABLE landed in its own schema"
    );
    assert!(!has_table(&app, "public.things"));

    // Again: nothing to do anywhere; and status and check agree.
    let again = tenants.run();
    again.expect(0);
    assert_eq!(again.stdout.matches("\"outcome\":\"current\"").count(), 100);
    let status = fleet(&files, &["status", "--targets", &list, "--parallel", "16"]).run();
    status.expect(0).stdout_has("TARGET").stdout_has("at_head");
    assert_eq!(
        status
            .stdout
            .lines()
            .filter(|l| l.starts_with("127.0.0.1:") && l.contains(" at_head "))
            .count(),
        200,
        "{}",
        status.stdout
    );
    assert_eq!(summary_count(&status.stdout, "at_head"), Some(200));
    fleet(&files, &["check", "--targets", &list, "--parallel", "16"])
        .run()
        .expect(0);
}

#[test]
fn four_shards_at_once_take_every_target_exactly_once() {
    let files = migrations();
    let dbs = databases("shard", 40);
    let list = targets_file(&files, &dbs);
    let started = Instant::now();
    let children: Vec<_> = (0..4)
        .map(|i| {
            let report = files.shown(&format!("shard{i}.json"));
            let mut run = fleet(&files, &["up", "--targets", &list, "--report", &report]);
            // Shard 3 as a Kubernetes Indexed Job gets it; the others by flag.
            if i == 3 {
                run.env("JOB_COMPLETION_INDEX", "3")
                    .env("SCHEMAGATE_SHARD_COUNT", "4");
            } else {
                run.arg("--shard").arg(&format!("{i}/4"));
            }
            run.spawn()
        })
        .collect();
    let mut taken: Vec<Vec<String>> = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        finish(child, started).expect(0);
        let r = report(&files.shown(&format!("shard{i}.json")));
        assert_eq!(r["shard"]["index"], i as u64);
        assert_eq!(r["shard"]["count"], 4);
        assert_eq!(r["listed"], 40);
        taken.push(results(&r).into_iter().map(|(t, _, _)| t).collect());
    }
    let all: Vec<&String> = taken.iter().flatten().collect();
    let unique: BTreeSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), 40, "each target in one shard only: {taken:?}");
    assert_eq!(unique.len(), 40);
    assert!(taken.iter().all(|t| !t.is_empty()), "{taken:?}");
    for db in &dbs {
        assert_eq!(once(db, "public"), "3|3|1", "{db}");
    }
    // A retried pod takes the same targets (and finds nothing to do).
    let report1 = files.shown("again.json");
    fleet(
        &files,
        &[
            "up",
            "--targets",
            &list,
            "--shard",
            "1/4",
            "--report",
            &report1,
        ],
    )
    .run()
    .expect(0);
    let again: Vec<String> = results(&report(&report1))
        .into_iter()
        .map(|(t, outcome, _)| {
            assert_eq!(outcome, "current");
            t
        })
        .collect();
    assert_eq!(again, taken[1]);
}

#[test]
fn a_broken_tenant_gets_its_code_and_the_others_are_migrated() {
    let files = migrations();
    let app = cluster().create_database("broken");
    cluster().psql(
        &app,
        "CREATE SCHEMA t1; CREATE SCHEMA t2; CREATE SCHEMA t3; CREATE SCHEMA t4; \
         CREATE TABLE t3.things (oops text);",
    );
    let report_path = files.shown("report.json");
    let mut run = fleet(
        &files,
        &[
            "up",
            "--tenant-schemas-query",
            "SELECT unnest(ARRAY['t1', 't2', 't3', 't4'])",
            "--report",
            &report_path,
        ],
    );
    run.env("DATABASE_URL", &cluster().url(&app));
    let out = run.run();
    out.expect(7)
        .stdout_has(&format!("failed 7      {}#t3  ", identity(&app)))
        .stdout_has("20250103000000")
        .stderr_has("1 target of 4 did not succeed; exit 7");
    assert_eq!(
        summary_count(&out.stdout, "migrated"),
        Some(3),
        "{}",
        out.stdout
    );
    assert_eq!(summary_count(&out.stdout, "failed (exit 7)"), Some(1));
    let r = report(&report_path);
    assert_eq!(r["exit_code"], 7);
    assert_eq!(r["summary"]["succeeded"], 3);
    assert_eq!(r["summary"]["failed"], 1);
    let t3 = &r["targets"][2];
    assert_eq!(t3["schema"], "t3");
    assert_eq!(t3["outcome"], "failed");
    assert!(
        t3["error"].as_str().unwrap().contains("already exists"),
        "{t3}"
    );
    for schema in ["t1", "t2", "t4"] {
        assert_eq!(once(&app, schema), "3|3|1", "{schema}");
    }
    assert_eq!(
        cluster().psql(
            &app,
            "SELECT count(*) FROM t3.schemagate_history WHERE status = 'applied'"
        ),
        "2",
        "t3 keeps the two migrations before the broken one"
    );
}

#[test]
fn canaries_go_first_and_a_failed_one_stops_the_rollout() {
    let files = migrations();
    let dbs = databases("canary", 6);
    cluster().psql(&dbs[0], "CREATE TABLE things (oops text)");
    let list = targets_file(&files, &dbs);
    let report_path = files.shown("report.json");
    let out = fleet(
        &files,
        &[
            "up",
            "--targets",
            &list,
            "--canary",
            "2",
            "--parallel",
            "4",
            "--report",
            &report_path,
        ],
    )
    .run();
    out.expect(7)
        .stdout_has("not started: a canary failed (--canary 2)");
    let r = results(&report(&report_path));
    assert_eq!(r[0].1, "failed");
    assert_eq!(r[1].1, "migrated", "the other canary ran beside it");
    for (target, outcome, _) in &r[2..] {
        assert_eq!(outcome, "skipped", "{target}");
    }
    for db in &dbs[2..] {
        assert!(untouched(db), "{db} untouched");
    }
    // Fixed, the rollout goes on from where it stopped.
    cluster().psql(&dbs[0], "DROP TABLE things");
    fleet(&files, &["up", "--targets", &list, "--canary", "2"])
        .run()
        .expect(0);
    for db in &dbs {
        assert_eq!(once(db, "public"), "3|3|1", "{db}");
    }
}

#[test]
fn max_failures_stops_starting_new_targets() {
    let files = migrations();
    let dbs = databases("maxfail", 6);
    for db in &dbs[..2] {
        cluster().psql(db, "CREATE TABLE things (oops text)");
    }
    let list = targets_file(&files, &dbs);
    let report_path = files.shown("report.json");
    fleet(
        &files,
        &[
            "up",
            "--targets",
            &list,
            "--parallel",
            "1",
            "--max-failures",
            "2",
            "--report",
            &report_path,
        ],
    )
    .run()
    .expect(7)
    .stdout_has("not started: 2 targets failed, which is --max-failures 2");
    let r = report(&report_path);
    let outcomes: Vec<String> = results(&r).into_iter().map(|(_, o, _)| o).collect();
    assert_eq!(
        outcomes,
        [
            "failed", "failed", "skipped", "skipped", "skipped", "skipped"
        ]
    );
    assert_eq!(r["summary"]["skipped"], 4);
}

#[test]
fn a_fleet_killed_mid_way_converges_when_run_again() {
    let files = Folder::with(&[
        (
            "20250101000000_runs.sql",
            "-- migrate:up\nCREATE TABLE runs (at timestamptz DEFAULT now());\nSELECT pg_sleep(0.25);\n-- migrate:down\nDROP TABLE runs;\n",
        ),
        (
            "20250102000000_record.sql",
            "-- migrate:up\nINSERT INTO runs DEFAULT VALUES;\nSELECT pg_sleep(0.25);\n-- migrate:down\nDELETE FROM runs;\n",
        ),
    ]);
    let dbs = databases("killed", 12);
    let list = targets_file(&files, &dbs);
    let mut child = fleet(&files, &["up", "--targets", &list, "--parallel", "2"]).spawn();
    // Killed once the first database is at head, with most still to go.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster().psql(
        &dbs[0],
        "SELECT count(*) FROM pg_tables WHERE tablename = 'schemagate_history'",
    ) != "1"
        || cluster().psql(
            &dbs[0],
            "SELECT count(*) FROM schemagate_history WHERE status = 'applied'",
        ) != "2"
    {
        assert!(Instant::now() < deadline, "the fleet never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    let behind = dbs
        .iter()
        .filter(|db| {
            cluster().psql(
                db,
                "SELECT count(*) FROM pg_tables WHERE tablename = 'runs' AND schemaname = 'public'",
            ) == "0"
        })
        .count();
    assert!(behind > 0, "killed after the whole fleet was done");
    fleet(&files, &["up", "--targets", &list, "--parallel", "2"])
        .run()
        .expect(0);
    for db in &dbs {
        let state = cluster().psql(
            db,
            "SELECT (SELECT count(*) FROM schemagate_history WHERE status = 'applied') || '|' || \
             (SELECT count(*) FROM schemagate_events WHERE outcome = 'ok') || '|' || (SELECT count(*) FROM runs)",
        );
        assert_eq!(state, "2|2|1", "{db}");
    }
}

#[test]
fn an_unreachable_target_waits_on_its_own_budget_and_stalls_no_one() {
    let files = migrations();
    let dbs = databases("unreachable", 6);
    let port = support::free_port();
    let gone = format!("postgres://postgres:hunter2-secret@127.0.0.1:{port}/nowhere");
    let mut text = format!("{gone}\n");
    for db in &dbs {
        text.push_str(&format!("{}\n", cluster().url(db)));
    }
    files.write("targets.txt", &text);
    let report_path = files.shown("report.json");
    let out = fleet(
        &files,
        &[
            "up",
            "--targets",
            &files.shown("targets.txt"),
            "--parallel",
            "2",
            "--wait-timeout",
            "4s",
            "--report",
            &report_path,
            "--log-format",
            "json",
        ],
    )
    .run();
    out.expect(4)
        .stdout_has(&format!("unreachable 4 127.0.0.1:{port}/nowhere"));
    let r = report(&report_path);
    let unreachable = &r["targets"][0];
    assert_eq!(unreachable["outcome"], "unreachable");
    let gave_up = unreachable["duration_ms"].as_u64().unwrap();
    assert!(gave_up >= 3900, "waited its own 4 s: {unreachable}");
    for t in r["targets"].as_array().unwrap()[1..].iter() {
        assert_eq!(t["outcome"], "migrated", "{t}");
        let finished = t["started_ms"].as_u64().unwrap() + t["duration_ms"].as_u64().unwrap();
        assert!(
            finished < gave_up,
            "{t} finished after the unreachable target gave up ({gave_up} ms)"
        );
    }
    // The target's password is in no output.
    let written = std::fs::read_to_string(&report_path).unwrap();
    for text in [&out.stdout, &out.stderr, &written] {
        assert!(!text.contains("hunter2-secret"), "{text}");
    }
    // In JSON logs, each target's lines carry its span, its result among them.
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("\"event\":\"fleet.target\"")
                && l.contains("\"outcome\":\"migrated\"")
                && l.contains(&format!("\"target\":\"{}\"", identity(&dbs[0])))),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .lines()
            .any(|l| l.contains("\"event\":\"wait.retry\"")
                && l.contains(&format!("\"target\":\"127.0.0.1:{port}/nowhere\""))),
        "{}",
        out.stderr
    );
}

#[test]
fn status_and_check_say_where_each_target_stands() {
    let files = migrations();
    let dbs = databases("standing", 4);
    let list = targets_file(&files, &dbs);
    fleet(&files, &["up", "--targets", &list]).run().expect(0);
    // One behind (never migrated), one dirty (a transaction:false migration's row left
    // running), two at head.
    cluster().psql(
        &dbs[1],
        "DROP TABLE schemagate_history, schemagate_events, runs, things",
    );
    let out = fleet(&files, &["check", "--targets", &list]).run();
    out.expect(9)
        .stdout_has(&format!("{}  behind 9", identity(&dbs[1])))
        .stderr_has("1 target of 4 did not succeed; exit 9");
    cluster().psql(
        &dbs[2],
        "UPDATE schemagate_history SET status = 'running' WHERE revision = '20250103000000'",
    );
    let out = fleet(&files, &["check", "--targets", &list, "--format", "json"]).run();
    out.expect(8);
    let v: Value = serde_json::from_str(out.stdout.trim()).expect("one JSON document");
    let states: Vec<String> = results(&v).into_iter().map(|(_, o, _)| o).collect();
    assert_eq!(states, ["at_head", "behind", "dirty", "at_head"]);
    assert_eq!(v["targets"][1]["pending"], 3);
    // status reports the same, and exits 0: nothing is unreachable.
    let out = fleet(&files, &["status", "--targets", &list]).run();
    out.expect(0);
    let rows: Vec<&str> = out.stdout.lines().skip(1).take(4).collect();
    assert!(
        rows[0].contains(" at_head ") && rows[0].contains("20250103000000 (head)"),
        "{rows:?}"
    );
    assert!(
        rows[1].contains(" behind ") && rows[1].contains("base (nothing applied)"),
        "{rows:?}"
    );
    assert!(rows[2].contains(" dirty "), "{rows:?}");
    let json = fleet(&files, &["status", "--targets", &list, "--format", "json"]).run();
    let v: Value = serde_json::from_str(json.expect(0).stdout.trim()).expect("JSON");
    assert_eq!(v["summary"]["outcomes"]["at_head"], 2);
}

#[test]
fn bad_fleet_input_is_exit_2_naming_the_fix_before_any_target_is_touched() {
    let files = migrations();
    let dbs = databases("badinput", 2);
    let url = cluster().url(&dbs[0]);
    files.write(
        "bad.txt",
        &format!(
            "{url}\n# fine\npostgres://u@h:notaport/x\n{}\n",
            cluster().url(&dbs[1])
        ),
    );
    files.write("empty.txt", "# nobody\n\n");
    let bad = files.shown("bad.txt");
    let empty = files.shown("empty.txt");
    /// Arguments, environment, what stderr says.
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["up", "--targets", &bad], vec![], "bad.txt line 3"),
        (vec!["up", "--targets", &empty], vec![], "lists no target"),
        (
            vec!["up", "--targets", &bad, "--shard", "4/4"],
            vec![],
            "not below the shard count 4",
        ),
        (
            vec!["up", "--targets", &bad],
            vec![("SCHEMAGATE_SHARD_COUNT", "4")],
            "JOB_COMPLETION_INDEX",
        ),
        (
            vec!["up", "--targets", &bad, "--targets-query", "SELECT 1"],
            vec![],
            "give one of them",
        ),
        (
            vec!["up", "--canary", "2"],
            vec![("DATABASE_URL", &url)],
            "--canary and --max-failures",
        ),
        (
            vec!["up", "--shard", "0/2"],
            vec![("DATABASE_URL", &url)],
            "no targets are named",
        ),
        (
            vec!["up", "--targets", &bad, "--sql"],
            vec![],
            "--sql works on one database",
        ),
        (
            vec!["up", "--targets-query", "SELEC datname"],
            vec![("DATABASE_URL", &url)],
            "the --targets-query failed",
        ),
        (
            vec!["up", "--targets-query", "SELECT 'x' WHERE false"],
            vec![("DATABASE_URL", &url)],
            "returned no rows",
        ),
        (
            vec![
                "up",
                "--targets",
                &bad,
                "--report",
                "/nonexistent-dir/r.json",
            ],
            vec![],
            "cannot write the --report file",
        ),
        (
            vec![
                "up",
                "--tenant-schemas-query",
                "SELECT 'a'",
                "--lock-key",
                "7",
            ],
            vec![("DATABASE_URL", &url)],
            "drop --lock-key",
        ),
        (
            vec!["up", "--targets", &bad, "--parallel", "0"],
            vec![],
            "--parallel",
        ),
        (
            vec!["check", "--targets", &bad, "--wait"],
            vec![],
            "check --wait waits for one database",
        ),
    ];
    for (args, env, says) in cases {
        let mut run = fleet(&files, &args);
        for (k, v) in env {
            run.env(k, v);
        }
        run.run().expect(2).stderr_has(says);
    }
    for db in &dbs {
        assert!(untouched(db), "{db} untouched");
    }
}

#[test]
fn targets_from_stdin_and_from_a_query_of_database_names() {
    let files = migrations();
    let dbs = databases("query", 3);
    let names: Vec<String> = dbs.iter().map(|d| format!("'{d}'")).collect();
    let query = format!("SELECT unnest(ARRAY[{}])", names.join(", "));
    let mut run = fleet(&files, &["up", "--targets-query", &query]);
    // The configured database is a target only if a row names it.
    run.env("DATABASE_URL", &cluster().url("postgres"));
    run.run().expect(0).stdout_has("up 3 targets");
    for db in &dbs {
        assert_eq!(once(db, "public"), "3|3|1", "{db}");
    }
    assert!(
        untouched("postgres"),
        "the configured database is no target"
    );
    // `--targets -`: the list on stdin, in key=value form.
    let more = databases("stdin", 2);
    let lines: String = more
        .iter()
        .map(|d| {
            format!(
                "host=127.0.0.1 port={} user=postgres dbname={d}\n",
                cluster().port()
            )
        })
        .collect();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_schemagate"))
        .args(["up", "--targets", "-", "--migrations"])
        .arg(files.path())
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for db in &more {
        assert_eq!(once(db, "public"), "3|3|1", "{db}");
    }
}

#[test]
fn sigterm_stops_a_fleet_rolls_back_what_runs_and_reports_the_rest_skipped() {
    let files = Folder::with(&[(
        "20250101000000_slow.sql",
        "-- migrate:up\nCREATE TABLE slow (id int);\nSELECT pg_sleep(30);\n-- migrate:down\nDROP TABLE slow;\n",
    )]);
    let dbs = databases("sigterm", 5);
    let list = targets_file(&files, &dbs);
    let report_path = files.shown("report.json");
    let started = Instant::now();
    let child = fleet(
        &files,
        &[
            "up",
            "--targets",
            &list,
            "--parallel",
            "2",
            "--report",
            &report_path,
        ],
    )
    .spawn();
    let pid = child.id();
    // Both first targets are in their pg_sleep.
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster().psql(
        "postgres",
        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()",
    ) != "2"
    {
        assert!(Instant::now() < deadline, "the fleet never got going");
        std::thread::sleep(Duration::from_millis(20));
    }
    support::pg::signal(pid, "TERM");
    let out: Outcome = finish(child, started);
    out.expect(143);
    assert!(out.elapsed < Duration::from_secs(25), "{:?}", out.elapsed);
    let r = report(&report_path);
    let outcomes: Vec<String> = results(&r).into_iter().map(|(_, o, _)| o).collect();
    assert_eq!(
        outcomes,
        ["failed", "failed", "skipped", "skipped", "skipped"]
    );
    assert_eq!(r["targets"][0]["exit_code"], 143);
    assert!(
        out.stdout.contains("not started: interrupted by SIGTERM"),
        "{}",
        out.stdout
    );
    for db in &dbs {
        assert!(
            !has_table(db, "public.slow"),
            "{db}: the interrupted migration was rolled back"
        );
    }
}

#[test]
fn a_terminal_gets_a_progress_line() {
    let files = migrations();
    let dbs = databases("progress", 3);
    let list = targets_file(&files, &dbs);
    // `script` gives the run a terminal for stdout and stderr.
    let command = format!(
        "{} up --targets {list} --migrations {}",
        env!("CARGO_BIN_EXE_schemagate"),
        files.path().display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .output()
        .expect("script(1) from util-linux runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("done, "), "{text}");
    assert!(text.contains(" left, "), "{text}");
    assert!(text.contains("ETA"), "{text}");
    assert!(text.contains("up 3 targets in"), "{text}");
}

#[test]
fn the_documented_severity_order_is_the_one_the_code_uses() {
    let order: Vec<String> = schemagate::plan::fleet::SEVERITY_ORDER
        .iter()
        .map(|c| c.to_string())
        .collect();
    let written = order.join(" > ");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    assert!(readme.contains(&written), "README lacks {written}");
    let help = Run::new(&["--help"]).run();
    help.expect(0).stdout_has(&written);
}

/// `| head -1`: the reader goes away after the first result line; the fleet still runs
/// every target to the end (a dropped target would be a run cut short), and exits 0.
#[test]
fn a_closed_stdout_stops_the_lines_not_the_fleet() {
    let files = Folder::with(&[(
        "20250101000000_slow.sql",
        "-- migrate:up\nCREATE TABLE slow (id int);\nSELECT pg_sleep(0.2);\n-- migrate:down\nDROP TABLE slow;\n",
    )]);
    let dbs = databases("headpipe", 5);
    let list = targets_file(&files, &dbs);
    let mut child = fleet(&files, &["up", "--targets", &list, "--parallel", "1"]).spawn();
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first)
        .expect("a first line");
    assert!(first.starts_with("migrated "), "{first}");
    // The reader is gone now.
    let out = finish(child, Instant::now());
    out.expect(0);
    for db in &dbs {
        assert!(has_table(db, "public.slow"), "{db} migrated");
    }
}

/// Schemas per tenant in several databases: the tenant query runs on each listed database.
/// A database that cannot be read is one failed target; the shards split the tenants.
#[test]
fn tenant_schemas_of_each_listed_database() {
    let files = migrations();
    let dbs = databases("tenantdbs", 3);
    cluster().psql(&dbs[0], "CREATE SCHEMA tn_a; CREATE SCHEMA tn_b");
    cluster().psql(&dbs[1], "CREATE SCHEMA tn_c");
    let gone = format!(
        "postgres://postgres@127.0.0.1:{}/nowhere",
        support::free_port()
    );
    let mut text = String::new();
    for db in &dbs[..2] {
        text.push_str(&format!("{}\n", cluster().url(db)));
    }
    text.push_str(&format!("{gone}\n{}\n", cluster().url(&dbs[2])));
    files.write("targets.txt", &text);
    let list = files.shown("targets.txt");
    let query = "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tn\\_%' ORDER BY 1";
    let report_path = files.shown("report.json");
    let args = |extra: &[&str]| {
        let mut args = vec![
            "up",
            "--targets",
            &list,
            "--tenant-schemas-query",
            query,
            "--wait-timeout",
            "2s",
        ];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let args = args(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fleet(&files, &args).run()
    };
    run(&["--report", &report_path])
        .expect(4)
        .stdout_has("cannot read its tenant schemas");
    let r = results(&report(&report_path));
    let port = cluster().port();
    let gone_id = gone.trim_start_matches("postgres://postgres@").to_string();
    assert_eq!(
        r,
        vec![
            (
                format!("127.0.0.1:{port}/{}#tn_a", dbs[0]),
                "migrated".into(),
                0
            ),
            (
                format!("127.0.0.1:{port}/{}#tn_b", dbs[0]),
                "migrated".into(),
                0
            ),
            (
                format!("127.0.0.1:{port}/{}#tn_c", dbs[1]),
                "migrated".into(),
                0
            ),
            (gone_id.clone(), "unreachable".into(), 4),
        ],
        "in the order listed; the database without tenants adds none"
    );
    for (db, schema) in [(&dbs[0], "tn_a"), (&dbs[0], "tn_b"), (&dbs[1], "tn_c")] {
        assert_eq!(once(db, schema), "3|3|1", "{db}#{schema}");
    }
    assert!(untouched(&dbs[2]));
    // Two shards take each tenant (and the unreadable database) once between them.
    let mut taken = Vec::new();
    for shard in ["0/2", "1/2"] {
        let path = files.shown(&format!("shard{}.json", &shard[..1]));
        let out = run(&["--shard", shard, "--report", &path]);
        assert!([0, 4].contains(&out.code), "{out:?}");
        taken.extend(results(&report(&path)).into_iter().map(|(t, _, _)| t));
    }
    taken.sort();
    let mut all: Vec<String> = r.into_iter().map(|(t, _, _)| t).collect();
    all.sort();
    assert_eq!(taken, all);
}
