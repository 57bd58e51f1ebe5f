//! How reading a huge migration scales: builds migration files of 5 MB and 50 MB of
//! several shapes and times the whole offline path of `up` on each (read the folder,
//! check UTF-8, parse the markers, split into statements, validate, checksum), then the
//! split that a `transaction:false` run does again.
//!
//! ```sh
//! cargo run --release --example large_migration            # all shapes, 5 and 50 MB
//! cargo run --release --example large_migration -- 20       # 2 and 20 MB instead
//! ```
//!
//! Linear work makes the 50 MB time about ten times the 5 MB time; the ratio is printed.
//! Exits non-zero if a ratio exceeds `MAX_RATIO` (superlinear) or anything fails.
//! `.ci/run` runs it, so a quadratic change to that path fails CI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use schemagate::files::{source, split};

/// Ten times the input in at most this many times the time. Linear work measures 10 to 20
/// here: buffers over glibc's 32 MB mmap threshold get fresh pages from the kernel on every
/// run, the 5 MB ones are reused (with `MALLOC_MMAP_THRESHOLD_=4000000000` every shape
/// measures 10 +- 0.5). Quadratic work would measure about 100.
const MAX_RATIO: f64 = 40.0;

/// One kind of file: a header, a body repeated to size, a footer.
struct Shape {
    name: &'static str,
    head: &'static str,
    body: fn(usize) -> String,
    tail: &'static str,
    /// Kept out of a transaction, so the runner splits it again at apply time.
    transaction_false: bool,
}

const SHAPES: [Shape; 6] = [
    Shape {
        name: "INSERT statements",
        head: "-- migrate:up\n",
        body: |n| format!("INSERT INTO t (id, name) VALUES ({n}, 'name {n}; it''s'); -- row {n}\n"),
        tail: "-- migrate:down\nDELETE FROM t;\n",
        transaction_false: false,
    },
    Shape {
        name: "tiny statements",
        head: "-- migrate:up transaction:false\n",
        body: |_| "SELECT 1;".to_string(),
        tail: "\n",
        transaction_false: true,
    },
    Shape {
        name: "one dollar-quoted body",
        head: "-- migrate:up\nDO $body$ BEGIN\n",
        body: |n| format!("  PERFORM 'x; $$ $b$ {n}';\n"),
        tail: "END $body$;\n",
        transaction_false: false,
    },
    Shape {
        name: "deep comment nesting",
        head: "-- migrate:up\nSELECT 1 ",
        body: |_| "/* ; ".to_string(),
        tail: "",
        transaction_false: false,
    },
    Shape {
        name: "one huge string, no newline",
        head: "-- migrate:up\nSELECT '",
        body: |_| "ab;''--/*$$".to_string(),
        tail: "';\n",
        transaction_false: false,
    },
    Shape {
        name: "BEGIN ATOMIC body",
        head: "-- migrate:up transaction:false\nCREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC\n",
        body: |n| format!("  SELECT CASE WHEN {n} > 0 THEN 1 END;\n"),
        tail: "END;\n",
        transaction_false: true,
    },
];

fn build(shape: &Shape, bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 4096);
    text.push_str(shape.head);
    let mut n = 0;
    let mut nesting = 0;
    while text.len() < bytes {
        text.push_str(&(shape.body)(n));
        n += 1;
        nesting += 1;
    }
    if shape.name == "deep comment nesting" {
        // Close every comment that was opened, then end the statement.
        text.push_str(&" */".repeat(nesting));
        text.push_str(";\n");
    }
    text.push_str(shape.tail);
    text
}

/// Loads the folder holding only `text` and splits its up section; returns the time.
fn measure(dir: &Path, shape: &Shape, text: &str) -> Result<(Duration, usize), String> {
    fs::write(dir.join("1_big.sql"), text).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let graph = source::load(dir, None).map_err(|e| format!("{}: {e}", shape.name))?;
    let up = &graph.migration(0).up;
    let statements = if shape.transaction_false {
        split::split(&up.sql).map_err(|e| e.to_string())?.len()
    } else {
        0
    };
    Ok((started.elapsed(), statements))
}

fn main() -> ExitCode {
    let large_mb: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(50);
    let small_mb = (large_mb / 10).max(1);
    let dir: PathBuf =
        std::env::temp_dir().join(format!("schemagate-large-{}", std::process::id()));
    if let Err(e) = fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return ExitCode::FAILURE;
    }
    let mut ok = true;
    println!("| shape | {small_mb} MB | {large_mb} MB | MB/s at {large_mb} MB | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for shape in &SHAPES {
        let mut times = Vec::new();
        for mb in [small_mb, large_mb] {
            let text = build(shape, mb << 20);
            // Best of three, so a busy machine does not make a line look superlinear.
            let best = (0..3)
                .map(|_| measure(&dir, shape, &text))
                .collect::<Result<Vec<_>, _>>();
            match best {
                Ok(runs) => {
                    let time = runs.iter().map(|r| r.0).min().unwrap_or_default();
                    times.push((time, text.len()));
                }
                Err(e) => {
                    eprintln!("{e}");
                    ok = false;
                    times.push((Duration::ZERO, text.len()));
                }
            }
        }
        let (small, large) = (times[0], times[1]);
        let ratio = large.0.as_secs_f64() / small.0.as_secs_f64().max(1e-9);
        let rate = large.1 as f64 / (1 << 20) as f64 / large.0.as_secs_f64().max(1e-9);
        println!(
            "| {} | {:.0} ms | {:.0} ms | {rate:.0} | {ratio:.1} |",
            shape.name,
            small.0.as_secs_f64() * 1000.0,
            large.0.as_secs_f64() * 1000.0,
        );
        if ratio > MAX_RATIO {
            eprintln!(
                "{}: {ratio:.1} times the time for ten times the input",
                shape.name
            );
            ok = false;
        }
    }
    let _ = fs::remove_dir_all(&dir);
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
