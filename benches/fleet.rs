//! A fleet: N databases, each migrated from empty to 10 small migrations, three ways on
//! the same throwaway cluster in the same run:
//!
//! 1. `schemagate up --targets FILE --parallel 8`, one process for the whole fleet;
//! 2. the limit: the same SQL (each up section in its own BEGIN/COMMIT, nothing else)
//!    sent by one psql per database through `xargs -P 8`;
//! 3. a serial shell loop of single `schemagate up` runs, DATABASE_URL per run.
//!
//! Every way starts on fresh databases (dropped and created again, untimed). Prints the
//! medians, targets per second and the ratios schemagate / psql-xargs and serial loop /
//! schemagate.
//!
//!   cargo bench --bench fleet                          # 1,000 databases, 3 runs
//!   SCHEMAGATE_BENCH=short cargo bench --bench fleet   # 100 databases, 1 run (CI)
//!
//! Not a test: it fails only if a run fails (or a database lacks its 10 history rows
//! after schemagate), never on a figure.

#[path = "../tests/support/mod.rs"]
mod support;
#[path = "support/timing.rs"]
mod timing;

use std::fmt::Write as _;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::run::Folder;
use support::{Cluster, Setup};
use timing::{Sample, load_average, median, tail, time};

struct Sizes {
    runs: usize,
    databases: usize,
}

const FULL: Sizes = Sizes {
    runs: 3,
    databases: 1000,
};
const SHORT: Sizes = Sizes {
    runs: 1,
    databases: 100,
};

/// Targets in flight, for schemagate and for xargs alike.
const PARALLEL: usize = 8;

/// The serial loop is timed on this many databases first; if the whole fleet would take
/// longer than `LOOP_LIMIT` at that pace, the rest is extrapolated instead of run.
const LOOP_HEAD: usize = 100;
const LOOP_LIMIT: Duration = Duration::from_secs(180);

/// The migrations every database gets: (slug, up, down). Small DDL with a little DML,
/// the shape of a young app's first weeks.
const MIGRATIONS: [(&str, &str, &str); 10] = [
    (
        "create_accounts",
        "CREATE TABLE accounts (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
",
        "DROP TABLE accounts;\n",
    ),
    (
        "create_plans",
        "CREATE TABLE plans (
    code          text PRIMARY KEY,
    name          text NOT NULL,
    monthly_cents integer NOT NULL CHECK (monthly_cents >= 0)
);
INSERT INTO plans (code, name, monthly_cents) VALUES
    ('free', 'Free', 0),
    ('team', 'Team', 2900),
    ('business', 'Business', 9900);
",
        "DROP TABLE plans;\n",
    ),
    (
        "add_plan_to_accounts",
        "ALTER TABLE accounts ADD COLUMN plan_code text NOT NULL DEFAULT 'free' REFERENCES plans (code);\n",
        "ALTER TABLE accounts DROP COLUMN plan_code;\n",
    ),
    (
        "create_projects",
        "CREATE TABLE projects (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
",
        "DROP TABLE projects;\n",
    ),
    (
        "index_projects_by_account",
        "CREATE INDEX projects_account_id_idx ON projects (account_id);\n",
        "DROP INDEX projects_account_id_idx;\n",
    ),
    (
        "create_tasks",
        "CREATE TYPE task_state AS ENUM ('open', 'doing', 'done');
CREATE TABLE tasks (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title      text NOT NULL,
    state      task_state NOT NULL DEFAULT 'open',
    due_on     date
);
",
        "DROP TABLE tasks;\nDROP TYPE task_state;\n",
    ),
    (
        "index_open_tasks",
        "CREATE INDEX tasks_open_idx ON tasks (project_id, due_on) WHERE state <> 'done';\n",
        "DROP INDEX tasks_open_idx;\n",
    ),
    (
        "add_display_names",
        "ALTER TABLE accounts ADD COLUMN display_name text;
UPDATE accounts SET display_name = split_part(email, '@', 1);
ALTER TABLE projects ADD COLUMN archived_at timestamptz;
",
        "ALTER TABLE projects DROP COLUMN archived_at;\nALTER TABLE accounts DROP COLUMN display_name;\n",
    ),
    (
        "create_settings",
        "CREATE TABLE settings (
    key   text PRIMARY KEY,
    value jsonb NOT NULL
);
INSERT INTO settings (key, value) VALUES
    ('retention_days', '30'),
    ('features', '{\"exports\": true, \"audit_log\": false}');
",
        "DROP TABLE settings;\n",
    ),
    (
        "create_active_projects",
        "CREATE VIEW active_projects AS
    SELECT p.id, p.name, a.email AS owner
    FROM projects p JOIN accounts a ON a.id = p.account_id
    WHERE p.archived_at IS NULL;
",
        "DROP VIEW active_projects;\n",
    ),
];

/// The bench's cluster, its databases and the files every way reads.
struct Fleet {
    cluster: Cluster,
    names: Vec<String>,
    migrations: Folder,
    /// Targets files, the psql script; removed on drop.
    work: Folder,
    /// `STRATEGY FILE_COPY` where the server has it (15+): about four times faster to
    /// create than the default WAL_LOG, whose whole-template WAL also has to be
    /// checkpointed away.
    create_suffix: &'static str,
}

impl Fleet {
    fn new(databases: usize) -> Fleet {
        let cluster = Cluster::start_custom(Setup {
            // 8 runners of each way plus the harness's own sessions, with room for a
            // runner that holds a second session per target.
            settings: vec!["max_connections=200".to_string()],
            ..Setup::default()
        });
        let version: u32 = cluster
            .psql("postgres", "SHOW server_version_num")
            .parse()
            .expect("server_version_num");
        let fleet = Fleet {
            names: (1..=databases).map(|i| format!("fleet_{i:04}")).collect(),
            migrations: Folder::new(),
            work: Folder::new(),
            create_suffix: if version >= 150_000 {
                " STRATEGY FILE_COPY"
            } else {
                ""
            },
            cluster,
        };
        let mut script = String::new();
        for (i, (slug, up, down)) in MIGRATIONS.iter().enumerate() {
            fleet.migrations.write(
                &format!("2026010100{:02}00_{slug}.sql", i + 1),
                &format!("-- migrate:up\n{up}\n-- migrate:down\n{down}"),
            );
            let _ = write!(script, "BEGIN;\n{up}COMMIT;\n");
        }
        fleet.work.write("all.sql", &script);
        fleet.write_targets("targets.txt", &fleet.names);
        fleet
    }

    /// A targets file of `names`, one URL a line.
    fn write_targets(&self, file: &str, names: &[String]) -> PathBuf {
        let lines: String = names
            .iter()
            .map(|name| format!("{}\n", self.cluster.url(name)))
            .collect();
        self.work.write(file, &lines);
        self.work.path().join(file)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// Every database dropped and created again, empty, in one psql script; then a
    /// checkpoint, so no flush of the creation's pages lands in the timed run.
    fn recreate(&self) {
        let mut script = String::new();
        for name in &self.names {
            let _ = writeln!(script, "DROP DATABASE IF EXISTS {name} WITH (FORCE);");
        }
        for name in &self.names {
            let _ = writeln!(script, "CREATE DATABASE {name}{};", self.create_suffix);
        }
        script.push_str("CHECKPOINT;\n");
        self.cluster.psql("postgres", &script);
    }

    /// Panics unless each of `names` has exactly 10 applied rows in schemagate_history.
    /// One psql for all of them, `\c` from one database to the next.
    fn verify(&self, names: &[String], after: &str) {
        let mut script = String::new();
        for name in names {
            let _ = writeln!(
                script,
                "\\c {name}\nSELECT current_database(), count(*) FROM schemagate_history WHERE status = 'applied';"
            );
        }
        let rows = self
            .cluster
            .psql_result("postgres", &script)
            .unwrap_or_else(|err| panic!("after {after}: reading the history: {}", tail(&err, 10)));
        let good = rows.lines().filter(|row| row.ends_with("|10")).count();
        let wrong: Vec<&str> = rows.lines().filter(|row| !row.ends_with("|10")).collect();
        assert!(
            good == names.len(),
            "after {after}: {} of {} databases lack their 10 applied migrations: {}",
            names.len() - good,
            names.len(),
            wrong[..wrong.len().min(10)].join(", ")
        );
    }

    /// A command with nothing from the bench's environment but PATH (for sh and xargs).
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command.env_clear();
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command
            .env("SCHEMAGATE_MIGRATIONS", self.migrations.path())
            .env("SCHEMAGATE_LOG", "warn");
        command
    }

    fn schemagate_fleet(&self) -> Command {
        let mut command = self.command(Path::new(env!("CARGO_BIN_EXE_schemagate")));
        command
            .arg("up")
            .arg("--targets")
            .arg(self.file("targets.txt"))
            .args(["--parallel", &PARALLEL.to_string()]);
        command
    }

    fn psql_xargs(&self) -> Command {
        let mut command = self.command(Path::new("sh"));
        command
            .arg("-c")
            .arg(format!(
                r#"xargs -P {PARALLEL} -I{{}} "$0" -X -q -v ON_ERROR_STOP=1 -d {{}} -f "$1" < "$2""#
            ))
            .arg(support::pg_bin("psql"))
            .arg(self.file("all.sql"))
            .arg(self.file("targets.txt"));
        command
    }

    /// The serial loop over the URLs in `targets`.
    fn serial_loop(&self, targets: &Path) -> Command {
        let mut command = self.command(Path::new("sh"));
        command
            .arg("-c")
            .arg(r#"for url in $(cat "$1"); do DATABASE_URL=$url "$0" up || exit 1; done"#)
            .arg(env!("CARGO_BIN_EXE_schemagate"))
            .arg(targets);
        command
    }
}

fn main() {
    timing::shim_if_asked();
    let short = std::env::var("SCHEMAGATE_BENCH").is_ok_and(|v| v == "short");
    let Sizes { runs, databases } = if short { SHORT } else { FULL };
    let fleet = Fleet::new(databases);
    let head = LOOP_HEAD.min(databases);
    let head_file = fleet.write_targets("head.txt", &fleet.names[..head]);
    let rest_file = fleet.write_targets("rest.txt", &fleet.names[head..]);
    println!(
        "fleet benchmark ({}): {databases} databases x {} migrations, {PARALLEL} in flight, \
         median of {runs} run(s), fresh databases for every way; peak RSS is the largest \
         process's",
        if short { "short" } else { "full" },
        MIGRATIONS.len()
    );
    println!("load average at the start: {}", load_average());
    println!("binary: {}", env!("CARGO_BIN_EXE_schemagate"));

    let (mut ours, mut limit, mut serial) = (Vec::new(), Vec::new(), Vec::new());
    let mut extrapolated = false;
    for run in 1..=runs {
        fleet.recreate();
        ours.push(time(&mut fleet.schemagate_fleet()));
        fleet.verify(&fleet.names, "schemagate up --targets");

        fleet.recreate();
        limit.push(time(&mut fleet.psql_xargs()));

        // The first databases, then the rest unless that would take too long.
        fleet.recreate();
        let first = time(&mut fleet.serial_loop(&head_file));
        let pace = first.wall.div_f64(head as f64);
        let (whole, covered) = if head == databases {
            (first, head)
        } else if pace.mul_f64(databases as f64) <= LOOP_LIMIT {
            let rest = time(&mut fleet.serial_loop(&rest_file));
            let both = Sample {
                wall: first.wall + rest.wall,
                rss_kb: first.rss_kb.max(rest.rss_kb),
            };
            (both, databases)
        } else {
            extrapolated = true;
            let estimate = Sample {
                wall: pace.mul_f64(databases as f64),
                rss_kb: first.rss_kb,
            };
            (estimate, head)
        };
        fleet.verify(&fleet.names[..covered], "the serial loop");
        serial.push(whole);
        eprintln!(
            "fleet bench: run {run}/{runs}: schemagate {:.2} s, psql-xargs {:.2} s, serial loop {:.2} s",
            ours[run - 1].wall.as_secs_f64(),
            limit[run - 1].wall.as_secs_f64(),
            whole.wall.as_secs_f64()
        );
    }

    let (ours, limit, serial) = (median(&ours), median(&limit), median(&serial));
    let migrations = MIGRATIONS.len();
    println!("| way | targets | migrations each | wall | targets/s | peak RSS |");
    println!("| --- | --- | --- | --- | --- | --- |");
    let row = |way: &str, targets: String, sample: Sample| {
        println!(
            "| {way} | {targets} | {migrations} | {:.2} s | {:.1} | {:.1} MB |",
            sample.wall.as_secs_f64(),
            databases as f64 / sample.wall.as_secs_f64(),
            sample.rss_kb as f64 / 1024.0
        );
    };
    row(
        &format!("schemagate up --targets FILE --parallel {PARALLEL}"),
        databases.to_string(),
        ours,
    );
    row(
        &format!("psql via xargs -P {PARALLEL} (the limit)"),
        databases.to_string(),
        limit,
    );
    row(
        "serial loop of schemagate up",
        if extrapolated {
            format!("{databases} (the first {head} timed, extrapolated)")
        } else {
            databases.to_string()
        },
        serial,
    );
    println!(
        "\nschemagate / psql-xargs: {:.2}x; serial loop / schemagate: {:.2}x{}",
        ours.wall.as_secs_f64() / limit.wall.as_secs_f64(),
        serial.wall.as_secs_f64() / ours.wall.as_secs_f64(),
        if extrapolated {
            " (the loop extrapolated)"
        } else {
            ""
        }
    );
    println!("load average at the end: {}", load_average());
}
