//! schemagate against the physical limit: plain `psql` running the same SQL with the
//! same number of transactions, on the same throwaway cluster, in the same run,
//! alternating the two. Prints medians, the ratio schemagate / baseline, and peak RSS.
//!
//!   cargo bench --bench schemagate                          # the full benchmark
//!   SCHEMAGATE_BENCH=short cargo bench --bench schemagate   # a quick one (CI)
//!
//! Not a test: it fails only if a run fails, never on a figure.
//!
//! Each timed command is started by a small copy of this program (`SHIM`): Linux carries
//! the high-water RSS of the process that spawns a command into the command's own peak
//! RSS, and this benchmark holds a 50 MB migration in memory.

#[path = "../tests/support/mod.rs"]
mod support;
#[path = "support/timing.rs"]
mod timing;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Cluster;
use support::run::Folder;
use timing::{Sample, median, time};

/// The sizes of one benchmark run.
struct Sizes {
    runs: usize,
    many: usize,
    very_many: usize,
    big_file_mb: usize,
}

const FULL: Sizes = Sizes {
    runs: 5,
    many: 1000,
    very_many: 10_000,
    big_file_mb: 50,
};
const SHORT: Sizes = Sizes {
    runs: 3,
    many: 200,
    very_many: 1000,
    big_file_mb: 5,
};

/// Starts 16 of `command` at once; the wall time until the last one is done.
fn at_once(command: impl Fn() -> Command) -> Sample {
    let started = Instant::now();
    let children: Vec<_> = (0..16)
        .map(|_| {
            command()
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success(), "a racing run failed");
    }
    Sample {
        wall: started.elapsed(),
        rss_kb: 0,
    }
}

/// The bench's own cluster, and commands against it over TCP, as a container would.
struct Bench {
    cluster: Cluster,
    sizes: Sizes,
    rows: Vec<String>,
}

impl Bench {
    fn url(&self, db: &str) -> String {
        self.cluster.url(db)
    }

    fn schemagate(&self, db: &str, folder: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_schemagate"));
        command
            .env_clear()
            .env("DATABASE_URL", self.url(db))
            .env("SCHEMAGATE_MIGRATIONS", folder)
            .env("SCHEMAGATE_LOG", "warn")
            .args(args);
        command
    }

    fn psql(&self, db: &str, args: &[&str]) -> Command {
        let mut command = Command::new(support::pg_bin("psql"));
        command
            .env_clear()
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.url(db)])
            .args(args);
        command
    }

    /// Warm-up, then `runs` alternating pairs; each side gets `prepare` before it.
    fn compare(
        &mut self,
        case: &str,
        target: &str,
        mut prepare: impl FnMut(&Bench),
        ours: impl Fn(&Bench) -> Command,
        theirs: impl Fn(&Bench) -> Command,
    ) -> f64 {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for run in 0..=self.sizes.runs {
            prepare(self);
            let ours_sample = time(&mut ours(self));
            prepare(self);
            let theirs_sample = time(&mut theirs(self));
            if run > 0 {
                a.push(ours_sample);
                b.push(theirs_sample);
            }
        }
        self.row(case, median(&a), median(&b), target)
    }

    fn row(&mut self, case: &str, ours: Sample, theirs: Sample, target: &str) -> f64 {
        let ratio = ours.wall.as_secs_f64() / theirs.wall.as_secs_f64();
        let line = format!(
            "| {case} | {:.1} ms | {:.1} ms | {ratio:.2}x | {target} | {:.1} MB |",
            ours.wall.as_secs_f64() * 1000.0,
            theirs.wall.as_secs_f64() * 1000.0,
            ours.rss_kb as f64 / 1024.0
        );
        println!("{line}");
        self.rows.push(line);
        ratio
    }
}

/// Migration i: `CREATE TABLE t_i (id bigint PRIMARY KEY, v text NOT NULL DEFAULT '')`
/// and `CREATE INDEX ON t_i (v)`; down drops the table.
fn up_sql(i: usize) -> String {
    format!(
        "CREATE TABLE t_{i} (id bigint PRIMARY KEY, v text NOT NULL DEFAULT '');\nCREATE INDEX ON t_{i} (v);\n"
    )
}

/// A folder of `count` migrations, and the baseline's script of the same SQL: each
/// migration in its own BEGIN/COMMIT with an INSERT into a version table.
fn workload(count: usize) -> (Folder, PathBuf) {
    let folder = Folder::new();
    let mut script = String::from("CREATE TABLE versions (version text PRIMARY KEY);\n");
    for i in 1..=count {
        let up = up_sql(i);
        folder.write(
            &format!("{:06}_t{i}.sql", i),
            &format!("-- migrate:up\n{up}\n-- migrate:down\nDROP TABLE t_{i};\n"),
        );
        let _ = write!(
            script,
            "BEGIN;\n{up}INSERT INTO versions VALUES ('{i:06}');\nCOMMIT;\n"
        );
    }
    let path = std::env::temp_dir().join(format!(
        "schemagate-bench-{count}-{}.sql",
        std::process::id()
    ));
    fs::write(&path, script).expect("write the baseline script");
    (folder, path)
}

/// Whether the case named `case` runs: all of them unless `SCHEMAGATE_BENCH_ONLY` names
/// a part of some.
fn selected(case: &str) -> bool {
    std::env::var("SCHEMAGATE_BENCH_ONLY").map_or(true, |only| case.contains(&only))
}

fn main() {
    timing::shim_if_asked();
    let short = std::env::var("SCHEMAGATE_BENCH").is_ok_and(|v| v == "short");
    let sizes = if short { SHORT } else { FULL };
    let mut bench = Bench {
        cluster: Cluster::start(),
        sizes,
        rows: Vec::new(),
    };
    let (many, very_many, runs) = (bench.sizes.many, bench.sizes.very_many, bench.sizes.runs);
    println!(
        "schemagate benchmark ({}): {runs} runs after a warm-up, alternating with the baseline; medians; \
         peak RSS is schemagate's",
        if short { "short" } else { "full" }
    );
    println!("| case | schemagate | baseline | ratio | target | peak RSS |");
    println!("| --- | --- | --- | --- | --- | --- |");

    // fresh-N: N migrations onto an empty database, recreated before each run.
    for (count, target) in [(many, "<= 1.05x"), (10, "<= 1.10x")] {
        if !selected("fresh") {
            continue;
        }
        let (folder, script) = workload(count);
        let script = script.to_str().expect("utf-8").to_string();
        bench.compare(
            &format!("fresh-{count}"),
            target,
            |b| b.cluster.recreate_database("bench_fresh"),
            |b| b.schemagate("bench_fresh", folder.path(), &["up"]),
            |b| b.psql("bench_fresh", &["-f", &script]),
        );
    }

    // The runtime cost of --ddl-lock-timeout: fresh-N with its default (5 s: a SET in
    // every migration's round trip, and a timer while its SQL runs) against it turned off.
    if selected("fresh") {
        let (folder, _script) = workload(many);
        bench.compare(
            &format!("fresh-{many}: --ddl-lock-timeout 5s (default) vs 0"),
            "<= 1.05x",
            |b| b.cluster.recreate_database("bench_fresh"),
            |b| b.schemagate("bench_fresh", folder.path(), &["up"]),
            |b| {
                b.schemagate(
                    "bench_fresh",
                    folder.path(),
                    &["up", "--ddl-lock-timeout", "0"],
                )
            },
        );
    }

    // noop-N and status-N: the database at head with N applied.
    let mut noop_many = 0.0;
    for count in [many, very_many] {
        if !selected("noop") {
            continue;
        }
        let (folder, _) = workload(count);
        let db = format!("bench_noop_{count}");
        bench.cluster.recreate_database(&db);
        time(&mut bench.schemagate(&db, folder.path(), &["up"]));
        let ours = |b: &Bench| b.schemagate(&db, folder.path(), &["up"]);
        let select_1 = |b: &Bench| b.psql(&db, &["-c", "SELECT 1"]);
        if count == many {
            bench.compare(&format!("noop-{count}"), "<= 1.5x", |_| {}, ours, select_1);
            noop_many = median(
                &(0..runs)
                    .map(|_| time(&mut bench.schemagate(&db, folder.path(), &["up"])))
                    .collect::<Vec<_>>(),
            )
            .wall
            .as_secs_f64();
            bench.compare(
                &format!("status-{count}"),
                "<= 2x",
                |_| {},
                |b| b.schemagate(&db, folder.path(), &["status"]),
                select_1,
            );
        } else {
            let samples: Vec<Sample> = (0..=runs)
                .map(|_| time(&mut ours(&bench)))
                .skip(1)
                .collect();
            let ours = median(&samples);
            let reference = Sample {
                wall: Duration::from_secs_f64(noop_many),
                rss_kb: 0,
            };
            bench.row(
                &format!("noop-{count} (baseline: noop-{many})"),
                ours,
                reference,
                "<= 2x",
            );
        }
    }

    // big-file: one migration of INSERTs, in a transaction and statement by statement.
    let mb = bench.sizes.big_file_mb;
    let big = Folder::new();
    let mut inserts = String::from("CREATE TABLE big (id bigint PRIMARY KEY, v text NOT NULL);\n");
    let mut id = 0;
    while inserts.len() < mb << 20 {
        id += 1;
        let _ = writeln!(
            inserts,
            "INSERT INTO big (id, v) VALUES ({id}, 'row {id} of the big migration, some text to make it realistic');"
        );
    }
    let script =
        std::env::temp_dir().join(format!("schemagate-bench-big-{}.sql", std::process::id()));
    fs::write(&script, &inserts).expect("write the big script");
    let script = script.to_str().expect("utf-8").to_string();
    for (transactional, psql_args, case) in [
        (true, vec!["-1", "-f", &script], format!("big-file-{mb}MB")),
        (
            false,
            vec!["-f", &script],
            format!("big-file-{mb}MB transaction:false"),
        ),
    ] {
        let marker = if transactional {
            "-- migrate:up\n"
        } else {
            "-- migrate:up transaction:false\n"
        };
        if !selected("big") {
            continue;
        }
        big.write("1_big.sql", &format!("{marker}{inserts}"));
        bench.compare(
            &case,
            "<= 1.10x",
            |b| b.cluster.recreate_database("bench_big"),
            |b| b.schemagate("bench_big", big.path(), &["up"]),
            |b| b.psql("bench_big", &psql_args),
        );
    }

    // racing-16: 16 runners at once on an empty database with fresh-10; the slowest. And
    // the floor of this machine for it: 16 psql sessions started at once.
    let (ten, _) = workload(10);
    let (mut alone, mut racing) = (Vec::new(), Vec::new());
    let (mut psql_alone, mut psql_racing) = (Vec::new(), Vec::new());
    for run in 0..=if selected("racing") { runs } else { 0 } {
        bench.cluster.recreate_database("bench_race");
        let one = time(&mut bench.schemagate("bench_race", ten.path(), &["up"]));
        bench.cluster.recreate_database("bench_race");
        let slowest = at_once(|| bench.schemagate("bench_race", ten.path(), &["up"]));
        let psql_one = time(&mut bench.psql("bench_race", &["-c", "SELECT 1"]));
        let psql_slowest = at_once(|| bench.psql("bench_race", &["-c", "SELECT 1"]));
        if run > 0 {
            alone.push(one);
            racing.push(slowest);
            psql_alone.push(psql_one);
            psql_racing.push(psql_slowest);
        }
    }
    if selected("racing") {
        bench.row(
            "racing-16 (baseline: one runner)",
            median(&racing),
            median(&alone),
            "<= 1.5x",
        );
        bench.row(
            "floor: 16 psql -c 'SELECT 1' at once (baseline: one)",
            median(&psql_racing),
            median(&psql_alone),
            "-",
        );
    }

    // The binary itself.
    let binary = Path::new(env!("CARGO_BIN_EXE_schemagate"));
    let size = fs::metadata(binary).expect("the binary").len();
    let version: Vec<Sample> = (0..=runs * 4)
        .map(|_| time(Command::new(binary).arg("--version")))
        .skip(1)
        .collect();
    let version = median(&version);
    println!(
        "\nbinary: {:.2} MB ({}; target < 8 MB stripped, static); `schemagate --version`: {:.2} ms, {:.1} MB peak RSS",
        size as f64 / 1e6,
        binary.display(),
        version.wall.as_secs_f64() * 1000.0,
        version.rss_kb as f64 / 1024.0
    );
    let _ = fs::remove_file(&script);
}
