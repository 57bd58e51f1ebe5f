//! `schemagate lint` through the built binary, on the test cluster as the scratch server:
//! one fixture migration per hazard class observation can judge (each must be found, by
//! the rule and with the lock really held), the safe patterns (each must pass), the JSON
//! and SARIF reports, excuses, the exit codes 0 and 11, pending-by-history and
//! `validate --lint`.

mod support;

use serde_json::Value;
use support::Cluster;
use support::project::Project;
use support::run::Outcome;

const BASE: &str = "-- migrate:up
CREATE TABLE a (id int PRIMARY KEY, note text);
CREATE TABLE b (id int PRIMARY KEY, n int);
CREATE TABLE c (id int PRIMARY KEY, a_id int);
CREATE TABLE d (id int PRIMARY KEY, n int);
CREATE TABLE e (id int PRIMARY KEY, email text);
CREATE TABLE f (id int PRIMARY KEY, n int);
CREATE TABLE g (id int PRIMARY KEY, name text);
CREATE TABLE h (id int PRIMARY KEY, old text);
CREATE TABLE i (id int PRIMARY KEY, n int);
CREATE TABLE j (id int PRIMARY KEY, n int);
INSERT INTO a VALUES (1, 'x');
-- migrate:down
";

/// (file, up section, the rule it must give). Every one but the last sets lock_timeout, so
/// the lock-timeout rule is seen on its own.
const HAZARDS: [(&str, &str, &str); 9] = [
    (
        "002_not_null_column.sql",
        "SET lock_timeout = '1s';\nALTER TABLE b ADD COLUMN m int NOT NULL;\n",
        "validating-scan",
    ),
    (
        "003_type.sql",
        "SET lock_timeout = '1s';\nALTER TABLE b ALTER COLUMN n TYPE bigint;\n",
        "rewrite",
    ),
    (
        "004_fk.sql",
        "SET lock_timeout = '1s';\nALTER TABLE c ADD CONSTRAINT c_a FOREIGN KEY (a_id) REFERENCES a (id);\n",
        "validating-scan",
    ),
    (
        "005_index.sql",
        "SET lock_timeout = '1s';\nCREATE INDEX d_n ON d (n);\n",
        "index-not-concurrent",
    ),
    (
        "006_set_not_null.sql",
        "SET lock_timeout = '1s';\nALTER TABLE e ALTER COLUMN email SET NOT NULL;\n",
        "validating-scan",
    ),
    (
        "007_check.sql",
        "SET lock_timeout = '1s';\nALTER TABLE f ADD CONSTRAINT f_n CHECK (n > 0);\n",
        "validating-scan",
    ),
    (
        "008_rename.sql",
        "SET lock_timeout = '1s';\nALTER TABLE g RENAME COLUMN name TO full_name;\n",
        "rename",
    ),
    (
        "009_drop.sql",
        "SET lock_timeout = '1s';\nALTER TABLE h DROP COLUMN old;\n",
        "drop",
    ),
    (
        "010_no_timeout.sql",
        "ALTER TABLE i ADD COLUMN extra text;\n",
        "lock-timeout",
    ),
];

/// The safe way to do each: nothing to report.
const SAFE: [(&str, &str); 4] = [
    (
        "011_index_concurrently.sql",
        "-- migrate:up transaction:false\nSET lock_timeout = '1s';\nCREATE INDEX CONCURRENTLY j_n ON j (n);\n-- migrate:down\n",
    ),
    (
        "012_not_valid.sql",
        "-- migrate:up\nSET lock_timeout = '1s';\nALTER TABLE j ADD CONSTRAINT j_n CHECK (n > 0) NOT VALID;\n-- migrate:down\n",
    ),
    (
        "013_validate.sql",
        "-- migrate:up\nSET lock_timeout = '1s';\nALTER TABLE j VALIDATE CONSTRAINT j_n;\n-- migrate:down\n",
    ),
    (
        "014_check_then_not_null.sql",
        "-- migrate:up transaction:false\nSET lock_timeout = '1s';\nALTER TABLE j ADD CONSTRAINT j_n_nn CHECK (n IS NOT NULL) NOT VALID;\nALTER TABLE j VALIDATE CONSTRAINT j_n_nn;\nALTER TABLE j ALTER COLUMN n SET NOT NULL;\nALTER TABLE j DROP CONSTRAINT j_n_nn;\n-- migrate:down\n",
    ),
];

/// A project whose first migration creates the tables the others change.
fn project() -> Project {
    let project = Project::new();
    project.write("001_base.sql", BASE);
    project
}

/// With a migration for each hazard of `HAZARDS`.
fn with_hazards(project: Project) -> Project {
    for (name, up, _) in HAZARDS {
        project.write(name, &format!("-- migrate:up\n{up}-- migrate:down\n"));
    }
    project
}

fn json(out: &Outcome) -> Value {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", out.stdout))
}

/// (file name, rule) of every finding.
fn found(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            let file = f["file"].as_str().expect("file");
            let name = file.rsplit('/').next().unwrap_or(file).to_string();
            (name, f["rule"].as_str().expect("rule").to_string())
        })
        .collect()
}

#[test]
fn every_hazard_class_is_observed_with_its_lock_and_the_safe_patterns_pass() {
    let project = with_hazards(project());
    for (name, text) in SAFE {
        project.write(name, text);
    }
    let out = project.run(None, &["lint", "--all", "--format", "json"]);
    out.expect(11);
    let report = json(&out);
    let got = found(&report);
    for (name, _, rule) in HAZARDS {
        let rules: Vec<&str> = got
            .iter()
            .filter(|(f, _)| f == name)
            .map(|(_, r)| r.as_str())
            .collect();
        assert_eq!(rules, vec![rule], "{name}: {got:?}");
    }
    for (name, _) in SAFE {
        assert!(
            !got.iter().any(|(f, _)| f == name),
            "{name} is the safe pattern: {got:?}"
        );
    }
    assert!(
        !got.iter().any(|(f, _)| f == "001_base.sql"),
        "new tables are no hazard: {got:?}"
    );
    assert_eq!(report["migrations"], 14);
    let linted = report["linted"].as_array().expect("linted");
    assert_eq!(linted.len(), 14);
    let index_statement = &linted[4]["statements"][1];
    assert_eq!(index_statement["line"], 3);
    assert!(
        index_statement["locks"]
            .as_array()
            .expect("locks")
            .iter()
            .any(|l| l["object"] == "public.d" && l["mode"] == "SHARE"),
        "{index_statement}"
    );
    let by_file = |name: &str| {
        report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .find(|f| f["file"].as_str().is_some_and(|p| p.ends_with(name)))
            .cloned()
            .unwrap_or_else(|| panic!("no finding for {name}"))
    };
    let rewrite = by_file("003_type.sql");
    assert_eq!(rewrite["line"], 3);
    assert_eq!(rewrite["object"], "public.b");
    assert_eq!(rewrite["lock"], "ACCESS EXCLUSIVE");
    assert_eq!(rewrite["blocks"], "reads and writes");
    let index = by_file("005_index.sql");
    assert_eq!(index["lock"], "SHARE");
    assert_eq!(index["blocks"], "writes");
    assert!(
        index["safe"]
            .as_str()
            .is_some_and(|s| s.contains("CONCURRENTLY"))
    );
    let fk = by_file("004_fk.sql");
    assert_eq!(fk["lock"], "SHARE ROW EXCLUSIVE");
    assert!(fk["safe"].as_str().is_some_and(|s| s.contains("NOT VALID")));
    let not_null = by_file("006_set_not_null.sql");
    assert!(
        not_null["safe"]
            .as_str()
            .is_some_and(|s| s.contains("CHECK (column IS NOT NULL)"))
    );
    let rename = by_file("008_rename.sql");
    assert_eq!(rename["object"], "public.g.name");
    assert_eq!(rename["locked"], "public.g");
    assert!(
        rename["safe"]
            .as_str()
            .is_some_and(|s| s.contains("expand and contract"))
    );
}

#[test]
fn text_report_names_file_line_lock_and_fix_and_a_clean_run_exits_0() {
    let project = project();
    project.write(
        "002_type.sql",
        "-- migrate:up\nSET lock_timeout = '1s';\nALTER TABLE b ALTER COLUMN n TYPE bigint;\n-- migrate:down\n",
    );
    let out = project.run(None, &["lint", "002"]);
    out.expect(11)
        .stdout_has("002_type.sql:3: rewrite: rewrites public.b")
        .stdout_has("lock: ACCESS EXCLUSIVE on public.b (blocks reads and writes)")
        .stdout_has("safe: expand and contract")
        .stderr_has("1 finding in 1 migration");
    // No database configured: the heads' migrations by default, here the same one.
    project.run(None, &["lint"]).expect(11);
    // The base alone creates tables: nothing existed before it.
    let out = project.run(None, &["lint", "001"]);
    out.expect(0);
    assert_eq!(out.stdout, "", "{}", out.stdout);
}

#[test]
fn sarif_is_a_valid_2_1_0_log_with_located_results() {
    let project = project();
    project.write(
        "002_index.sql",
        "-- migrate:up\nCREATE INDEX d_n ON d (n);\n-- migrate:down\n",
    );
    let out = project.run(None, &["lint", "--format", "sarif"]);
    out.expect(11);
    let log = json(&out);
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "schemagate");
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    let results = run["results"].as_array().expect("results");
    let ids: Vec<&str> = results
        .iter()
        .map(|r| r["ruleId"].as_str().expect("ruleId"))
        .collect();
    assert_eq!(ids, vec!["index-not-concurrent", "lock-timeout"]);
    for result in results {
        let index = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(rules[index]["id"], result["ruleId"]);
        let location = &result["locations"][0]["physicalLocation"];
        assert!(
            location["artifactLocation"]["uri"]
                .as_str()
                .is_some_and(|u| u.ends_with("002_index.sql"))
        );
        assert_eq!(location["region"]["startLine"], 2);
        assert!(
            result["message"]["text"]
                .as_str()
                .is_some_and(|t| t.contains("SHARE"))
        );
    }
}

#[test]
fn an_allow_comment_with_a_reason_excuses_its_statement_and_one_without_is_an_error() {
    let project = project();
    project.write(
        "002_excused.sql",
        "-- migrate:up\nSET lock_timeout = '1s';\n-- schemagate:allow rewrite b has three rows\nALTER TABLE b ALTER COLUMN n TYPE bigint;\nALTER TABLE d ALTER COLUMN n TYPE bigint;\n-- migrate:down\n",
    );
    let out = project.run(None, &["lint", "--format", "json"]);
    out.expect(11);
    let report = json(&out);
    let findings = report["findings"].as_array().expect("findings");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0]["line"], 5);

    project.write(
        "002_excused.sql",
        "-- migrate:up\nSET lock_timeout = '1s';\n-- schemagate:allow rewrite b has three rows\nALTER TABLE b ALTER COLUMN n TYPE bigint;\n-- schemagate:allow rewrite\nALTER TABLE d ALTER COLUMN n TYPE bigint;\n-- migrate:down\n",
    );
    project
        .run(None, &["lint"])
        .expect(3)
        .stderr_has("002_excused.sql:5")
        .stderr_has("needs a reason");

    project.write(
        "002_excused.sql",
        "-- migrate:up\nSET lock_timeout = '1s';\n-- schemagate:allow rewrite b has three rows\nALTER TABLE b ALTER COLUMN n TYPE bigint;\n-- schemagate:allow rewrite d is new in this release\nALTER TABLE d ALTER COLUMN n TYPE bigint;\n-- migrate:down\n",
    );
    project.run(None, &["lint"]).expect(0);
}

#[test]
fn with_a_database_the_pending_migrations_are_linted() {
    let project = project();
    project.write(
        "002_type.sql",
        "-- migrate:up\nSET lock_timeout = '1s';\nALTER TABLE b ALTER COLUMN n TYPE bigint;\n-- migrate:down\n",
    );
    let db = Cluster::shared().create_database("lint_pending");
    // Nothing applied: both pending, the base clean, the second found.
    let out = project.run(Some(&db), &["lint", "--format", "json"]);
    out.expect(11);
    assert_eq!(json(&out)["migrations"], 2);
    project.run(Some(&db), &["up"]).expect(0);
    let out = project.run(Some(&db), &["lint", "--format", "json"]);
    out.expect(0);
    assert_eq!(json(&out)["migrations"], 0);
}

#[test]
fn validate_lint_fails_ci_on_a_hazard_in_a_head_and_passes_a_safe_one() {
    let project = project();
    project.write(
        "002_index.sql",
        "-- migrate:up\nSET lock_timeout = '1s';\nCREATE INDEX d_n ON d (n);\n-- migrate:down\n",
    );
    project
        .run(None, &["validate", "--lint"])
        .expect(11)
        .stdout_has("ok: 2 migrations")
        .stdout_has("002_index.sql:3: index-not-concurrent");
    let out = project.run(None, &["validate", "--lint", "--format", "json"]);
    out.expect(11);
    assert_eq!(json(&out)["findings"][0]["rule"], "index-not-concurrent");
    project.write(
        "002_index.sql",
        "-- migrate:up transaction:false\nSET lock_timeout = '1s';\nCREATE INDEX CONCURRENTLY d_n ON d (n);\n-- migrate:down\n",
    );
    project.run(None, &["validate", "--lint"]).expect(0);
    project.run(None, &["validate"]).expect(0);
}
