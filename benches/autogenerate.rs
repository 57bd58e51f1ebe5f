//! Autogenerate and diff on a large schema, beside migra doing the same job on the same
//! machine in the same run, alternating the two. Prints medians and the ratio.
//!
//!   cargo bench --bench autogenerate                          # 1,000 tables, 5 runs
//!   SCHEMAGATE_BENCH=short cargo bench --bench autogenerate   # 200 tables, 3 runs
//!   SCHEMAGATE_MIGRA=/path/to/migra cargo bench --bench autogenerate
//!
//! Not a test: it fails only if a run fails, never on a figure. migra (PyPI; see
//! scripts/autogenerate_history.py for the recipe that installs it) is looked for in
//! `SCHEMAGATE_MIGRA`, then on PATH; without it the migra column says so loudly and the
//! schemagate figures are printed alone.
//!
//! The cases:
//! - `new --autogenerate` on a folder whose one migration creates the tables, with a
//!   schema file equal to it but for one column's type; the whole command, scratch
//!   cluster start included (no `--dev-url`), and again with `--dev-url` so the start's
//!   share shows. migra's column is the same job done by hand around migra: (initdb and
//!   start a cluster,) two databases, the migration on one, the schema file on the
//!   other, migra between them, (stop the cluster).
//! - `diff` alone between two databases on the bench's cluster, the same two for both
//!   (`diff --from URL --to URL` starts no scratch server).

#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Cluster;
use support::run::Folder;

/// The 1, 5 and 15 minute load averages: on a shared machine the figures mean little
/// without them.
fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|err| format!("unknown ({err})"))
}

struct Sizes {
    runs: usize,
    tables: usize,
}

const FULL: Sizes = Sizes {
    runs: 5,
    tables: 1000,
};
const SHORT: Sizes = Sizes {
    runs: 3,
    tables: 200,
};

/// Set in the environment of the shim that starts one timed command.
const SHIM: &str = "SCHEMAGATE_BENCH_SHIM";

/// One timed process: wall time and peak resident set.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    rss_kb: u64,
}

/// Runs `command` through the shim; its sample if it exited with one of `ok`, else
/// what it said on stderr.
fn time(command: &mut Command, ok: &[i32]) -> Result<Sample, String> {
    let mut shim = Command::new(std::env::current_exe().expect("the bench's own path"));
    shim.env_clear()
        .envs(command.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env(SHIM, "1")
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null());
    let out = shim.output().expect("start the shim");
    let report = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<i64> = report
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    match fields[..] {
        [wall_ns, rss_kb, code] if ok.contains(&(code as i32)) => Ok(Sample {
            wall: Duration::from_nanos(wall_ns as u64),
            rss_kb: rss_kb as u64,
        }),
        _ => Err(format!(
            "{:?} failed ({}):\n{}",
            command.get_program(),
            report.trim(),
            tail(&String::from_utf8_lossy(&out.stderr), 15)
        )),
    }
}

/// The shim: runs the command in its arguments (stdout to /dev/null, stderr passed
/// through), prints its wall time (ns), peak RSS (KB) and exit code. A separate process,
/// so that the bench's own memory is not counted in the command's peak RSS.
// The child is reaped by wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn shim(args: &[String]) -> ! {
    let started = Instant::now();
    let child = Command::new(&args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid, and wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `pid` is our child and is waited for once, here.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    assert_eq!(waited, pid, "wait4 failed");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    println!("{} {} {code}", wall.as_nanos(), usage.ru_maxrss);
    std::process::exit(0)
}

fn median(samples: &[Sample]) -> Sample {
    let mut walls: Vec<Duration> = samples.iter().map(|s| s.wall).collect();
    walls.sort();
    Sample {
        wall: walls[walls.len() / 2],
        rss_kb: samples.iter().map(|s| s.rss_kb).max().unwrap_or(0),
    }
}

/// Table i of the schema: a few columns of varied types, a primary key; every third
/// references the one before, every other has an index, every fifth a unique pair.
/// `widened` is the one table whose `score` is bigint instead of integer.
fn schema_sql(tables: usize, widened: Option<usize>) -> String {
    let mut sql = String::new();
    for i in 1..=tables {
        let score = if widened == Some(i) {
            "bigint"
        } else {
            "integer"
        };
        let _ = write!(
            sql,
            "CREATE TABLE t_{i} (\n    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,\n    \
             name text NOT NULL DEFAULT '',\n    score {score},\n    \
             created_at timestamptz NOT NULL DEFAULT now(),\n    price numeric(12,2)"
        );
        if i % 3 == 0 {
            let _ = write!(sql, ",\n    parent_id bigint REFERENCES t_{}(id)", i - 1);
        }
        if i % 5 == 0 {
            let _ = write!(
                sql,
                ",\n    CONSTRAINT t_{i}_name_score UNIQUE (name, score)"
            );
        }
        sql.push_str("\n);\n");
        if i % 2 == 0 {
            let _ = writeln!(sql, "CREATE INDEX t_{i}_created_at ON t_{i} (created_at);");
        }
        if i % 3 == 0 {
            let _ = writeln!(sql, "CREATE INDEX t_{i}_parent_id ON t_{i} (parent_id);");
        }
    }
    sql
}

/// The one migration that creates the schema (schemagate's own file format).
const MIGRATION: &str = "000001_tables.sql";

/// The file the scripted baselines run.
fn script_file(name: &str, body: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "schemagate-bench-autogen-{name}-{}.sh",
        std::process::id()
    ));
    fs::write(&path, body).expect("write a baseline script");
    path
}

/// SQLAlchemy 1.x, under migra, knows only the `postgresql://` spelling of the scheme.
fn for_migra(url: &str) -> String {
    match url.strip_prefix("postgres://") {
        Some(rest) => format!("postgresql://{rest}"),
        None => url.to_string(),
    }
}

/// The last lines of a failure's stderr: a traceback's cause is at its end.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.trim().lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// migra, if it is here and runs: `SCHEMAGATE_MIGRA`, else `migra` on PATH.
fn find_migra() -> Result<PathBuf, String> {
    let candidate = std::env::var_os("SCHEMAGATE_MIGRA")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("migra"))
                    .find(|p| p.is_file())
            })
        })
        .ok_or("not in SCHEMAGATE_MIGRA nor on PATH")?;
    let out = Command::new(&candidate)
        .arg("--help")
        .output()
        .map_err(|err| format!("{} does not start: {err}", candidate.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} --help failed: {}",
            candidate.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(candidate)
}

/// One side of a comparison: the command of one run.
type Side<'a> = &'a dyn Fn(&Bench) -> Command;

struct Bench {
    cluster: Cluster,
    runs: usize,
    failures: Vec<String>,
}

impl Bench {
    fn url(&self, db: &str) -> String {
        self.cluster.url(db)
    }

    fn schemagate(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_schemagate"));
        command
            .env_clear()
            // Its own scratch cluster needs the server binaries and runuser from PATH.
            .envs(std::env::var_os("PATH").map(|p| ("PATH", p)))
            .env("SCHEMAGATE_LOG", "warn")
            .args(args);
        command
    }

    fn fresh(&self, name: &str) {
        self.cluster.psql(
            "postgres",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
        self.cluster
            .psql("postgres", &format!("CREATE DATABASE {name}"));
    }

    /// Warm-up, then `runs` alternating pairs, `prepare` before each side; one side's
    /// first failure ends that side (reported, and the bench exits non-zero).
    fn compare(
        &mut self,
        case: &str,
        prepare: impl Fn(),
        ours: impl Fn(&Bench) -> Command,
        theirs: Option<(Side<'_>, &[i32])>,
    ) {
        let (mut a, mut b): (Result<Vec<Sample>, String>, Result<Vec<Sample>, String>) =
            (Ok(Vec::new()), Ok(Vec::new()));
        for run in 0..=self.runs {
            if let Ok(samples) = &mut a {
                prepare();
                match time(&mut ours(self), &[0]) {
                    Ok(sample) if run > 0 => samples.push(sample),
                    Ok(_) => {}
                    Err(err) => a = Err(err),
                }
            }
            if let (Ok(samples), Some((theirs, ok))) = (&mut b, theirs) {
                prepare();
                match time(&mut theirs(self), ok) {
                    Ok(sample) if run > 0 => samples.push(sample),
                    Ok(_) => {}
                    Err(err) => b = Err(err),
                }
            }
        }
        let ours = a.map(|s| median(&s));
        let theirs = match theirs {
            None => Err("MIGRA MISSING".to_string()),
            Some(_) => b.map(|s| median(&s)),
        };
        let cell = |side: &Result<Sample, String>| match side {
            Ok(s) => format!("{:.1} ms", s.wall.as_secs_f64() * 1000.0),
            Err(err) if err == "MIGRA MISSING" => "MIGRA MISSING".to_string(),
            Err(_) => "FAILED (below)".to_string(),
        };
        let ratio = match (&ours, &theirs) {
            (Ok(a), Ok(b)) => format!("{:.2}x", a.wall.as_secs_f64() / b.wall.as_secs_f64()),
            _ => "-".to_string(),
        };
        let rss = match &ours {
            Ok(s) => format!("{:.1} MB", s.rss_kb as f64 / 1024.0),
            Err(_) => "-".to_string(),
        };
        println!(
            "| {case} | {} | {} | {ratio} | {rss} |",
            cell(&ours),
            cell(&theirs)
        );
        for (side, result) in [("schemagate", &ours), ("migra", &theirs)] {
            if let Err(err) = result
                && err != "MIGRA MISSING"
            {
                self.failures.push(format!("{case}, {side}: {err}"));
            }
        }
    }
}

fn main() {
    if std::env::var_os(SHIM).is_some() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        shim(&args);
    }
    let short = std::env::var("SCHEMAGATE_BENCH").is_ok_and(|v| v == "short");
    let sizes = if short { SHORT } else { FULL };
    let migra = find_migra();
    let mut bench = Bench {
        cluster: Cluster::start(),
        runs: sizes.runs,
        failures: Vec::new(),
    };
    let tables = sizes.tables;
    let widened = tables / 2;

    let folder = Folder::new();
    let head = schema_sql(tables, None);
    folder.write(
        MIGRATION,
        &format!("-- migrate:up\n{head}\n-- migrate:down\nDROP SCHEMA public CASCADE;\nCREATE SCHEMA public;\n"),
    );
    let schema_dir = Folder::new();
    let desired = schema_sql(tables, Some(widened));
    schema_dir.write("schema.sql", &desired);
    let schema_file = schema_dir.path().join("schema.sql");
    let head_file = schema_dir.path().join("head.sql");
    fs::write(&head_file, &head).expect("write head.sql");

    println!(
        "autogenerate benchmark ({}): {tables} tables, t_{widened}.score integer -> bigint; \
         {} runs after a warm-up, alternating with migra; medians; peak RSS is schemagate's",
        if short { "short" } else { "full" },
        sizes.runs
    );
    println!("load average at the start: {}", load_average());
    match &migra {
        Ok(path) => println!("migra: {}", path.display()),
        Err(why) => println!(
            "\n!!! MIGRA IS MISSING ({why}): only schemagate's figures below, no ratios. \
             Install it (pip install migra psycopg2-binary 'sqlalchemy<2' setuptools) or \
             set SCHEMAGATE_MIGRA. !!!\n"
        ),
    }
    println!("| case | schemagate | migra | ratio | peak RSS |");
    println!("| --- | --- | --- | --- | --- |");

    // Case a: `new --autogenerate`, whole command; the file it writes is removed before
    // each run so every run does the same work.
    let generated_cleanup = || {
        for entry in fs::read_dir(folder.path()).expect("read the migrations folder") {
            let path = entry.expect("entry").path();
            if path.file_name().and_then(|n| n.to_str()) != Some(MIGRATION) {
                fs::remove_file(&path).expect("remove the generated migration");
            }
        }
    };
    let migrations = folder.path().to_str().expect("utf-8 path").to_string();
    let schema = schema_file.to_str().expect("utf-8 path").to_string();
    let head_path = head_file.to_str().expect("utf-8 path").to_string();
    let dev_url = bench.url("postgres");

    // migra's side of case a: the same job by hand, on a cluster of its own (as
    // schemagate without --dev-url) or on the bench's cluster (as with --dev-url).
    let psql = support::pg_bin("psql");
    let bin = |name: &str| support::pg_bin(name).display().to_string();
    let as_postgres = if support::pg::running_as_root() {
        "runuser -u postgres --"
    } else {
        ""
    };
    let migra_job = |url_of: &dyn Fn(&str) -> String, migra: &Path| {
        format!(
            "{psql} -X -q -v ON_ERROR_STOP=1 -d {postgres} -c 'CREATE DATABASE bench_head' -c 'CREATE DATABASE bench_want'\n\
             {psql} -X -q -v ON_ERROR_STOP=1 -d {head_db} -f {head_path} >/dev/null\n\
             {psql} -X -q -v ON_ERROR_STOP=1 -d {want_db} -f {schema} >/dev/null\n\
             {migra} --unsafe {migra_head} {migra_want} >/dev/null || test $? -eq 2\n\
             {psql} -X -q -v ON_ERROR_STOP=1 -d {postgres} -c 'DROP DATABASE bench_head' -c 'DROP DATABASE bench_want'\n",
            psql = psql.display(),
            postgres = shell_quote(&url_of("postgres")),
            head_db = shell_quote(&url_of("bench_head")),
            want_db = shell_quote(&url_of("bench_want")),
            migra_head = shell_quote(&for_migra(&url_of("bench_head"))),
            migra_want = shell_quote(&for_migra(&url_of("bench_want"))),
            head_path = shell_quote(&head_path),
            schema = shell_quote(&schema),
            migra = shell_quote(&migra.display().to_string()),
        )
    };
    let own_cluster_script = migra.as_ref().ok().map(|migra| {
        let port = support::free_port();
        let url_of = |db: &str| format!("postgres://postgres@127.0.0.1:{port}/{db}");
        script_file(
            "own-cluster",
            &format!(
                "set -e\ndir=$(mktemp -d)\n{chown}\
                 trap '{as_postgres} {pg_ctl} -D \"$dir/data\" -m immediate -w stop >/dev/null 2>&1; rm -rf \"$dir\"' EXIT\n\
                 {as_postgres} {initdb} -D \"$dir/data\" -U postgres -A trust --no-sync >/dev/null\n\
                 {as_postgres} {pg_ctl} -D \"$dir/data\" -w -l \"$dir/log\" -o \"-c port={port} -c listen_addresses=127.0.0.1 \
                 -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off\" start >/dev/null\n{job}",
                chown = if as_postgres.is_empty() {
                    ""
                } else {
                    "chown postgres \"$dir\"\n"
                },
                initdb = bin("initdb"),
                pg_ctl = bin("pg_ctl"),
                job = migra_job(&url_of, migra),
            ),
        )
    });
    let dev_url_script = migra.as_ref().ok().map(|migra| {
        script_file(
            "dev-url",
            &format!("set -e\n{}", migra_job(&|db| bench.url(db), migra)),
        )
    });
    let sh = |script: &Path| {
        let mut command = Command::new("sh");
        command.arg(script);
        command
    };

    let own = own_cluster_script.clone();
    let own_side = own.as_ref().map(|s| move |_: &Bench| sh(s));
    bench.compare(
        "new --autogenerate, own scratch cluster (migra: initdb + start + 2 databases + migra)",
        generated_cleanup,
        |b| {
            b.schemagate(&[
                "new",
                "--autogenerate",
                "widen score",
                "--migrations",
                &migrations,
                "--schema-file",
                &schema,
            ])
        },
        own_side.as_ref().map(|f| (f as Side<'_>, &[0][..])),
    );
    let dev = dev_url_script.clone();
    let dev_side = dev.as_ref().map(|s| move |_: &Bench| sh(s));
    bench.compare(
        "new --autogenerate --dev-url (migra: 2 databases + migra)",
        generated_cleanup,
        |b| {
            b.schemagate(&[
                "new",
                "--autogenerate",
                "widen score",
                "--migrations",
                &migrations,
                "--schema-file",
                &schema,
                "--dev-url",
                &dev_url,
            ])
        },
        dev_side.as_ref().map(|f| (f as Side<'_>, &[0][..])),
    );
    generated_cleanup();

    // Case b: the diff alone, between the same two databases for both tools.
    bench.fresh("bench_s");
    bench.fresh("bench_s2");
    bench.cluster.psql("bench_s", &head);
    bench.cluster.psql("bench_s2", &desired);
    let (url_s, url_s2) = (bench.url("bench_s"), bench.url("bench_s2"));
    let migra_diff = migra.as_ref().ok().map(|migra| {
        let (migra, url_s, url_s2) = (migra.clone(), for_migra(&url_s), for_migra(&url_s2));
        move |_: &Bench| {
            let mut command = Command::new(&migra);
            command.args(["--unsafe", &url_s, &url_s2]);
            command
        }
    });
    bench.compare(
        "diff --from URL_S --to URL_S' (migra --unsafe URL_S URL_S')",
        || {},
        // Two databases are read as they are: no scratch server, so no --dev-url.
        |b| b.schemagate(&["diff", "--from", &url_s, "--to", &url_s2]),
        // migra exits 2 when it found differences, as here.
        migra_diff.as_ref().map(|f| (f as Side<'_>, &[0, 2][..])),
    );

    println!("load average at the end: {}", load_average());
    for script in [own_cluster_script, dev_url_script].into_iter().flatten() {
        let _ = fs::remove_file(script);
    }
    if !bench.failures.is_empty() {
        println!("\nFAILED RUNS:");
        for failure in &bench.failures {
            println!("- {failure}");
        }
        std::process::exit(1);
    }
}
