//! Reading schemagate's state and the migrated objects back from the database, for tests
//! that break runs on purpose and then check nothing was lost or done twice.

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::Cluster;
use super::run::Folder;

/// Polls `condition` every 20 ms until it holds or `timeout` passes; the last answer.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

pub fn count(cluster: &Cluster, db: &str, sql: &str) -> usize {
    cluster.psql(db, sql).parse().expect("a count")
}

/// Advisory locks in `db`, granted or awaited (other tests' locks do not count).
pub fn advisory_locks(cluster: &Cluster, db: &str) -> usize {
    count(
        cluster,
        db,
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
}

pub fn schemagate_backends(cluster: &Cluster, db: &str) -> usize {
    count(
        cluster,
        db,
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'schemagate'",
    )
}

/// Whether schemagate has a backend in `db` that is waiting on `wait_event`
/// (`PgSleep` while a migration sleeps).
pub fn backend_waiting(cluster: &Cluster, db: &str, wait_event: &str) -> bool {
    let sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
         AND application_name = 'schemagate' AND state = 'active' AND wait_event = '{wait_event}'"
    );
    count(cluster, db, &sql) > 0
}

/// Every history row as `revision:status`, in revision order: "1:applied 2:applied".
pub fn history(cluster: &Cluster, db: &str) -> String {
    cluster.psql(
        db,
        "SELECT coalesce(string_agg(revision || ':' || status, ' ' ORDER BY revision), '') \
         FROM schemagate_history",
    )
}

/// `revision:count` of 'ok' events, in revision order.
pub fn ok_events(cluster: &Cluster, db: &str) -> String {
    cluster.psql(
        db,
        "SELECT coalesce(string_agg(revision || ':' || n, ' ' ORDER BY revision), '') \
         FROM (SELECT revision, count(*) AS n FROM schemagate_events \
               WHERE outcome = 'ok' GROUP BY revision) e",
    )
}

pub fn tables_exist(cluster: &Cluster, db: &str, names: &[&str]) -> bool {
    names
        .iter()
        .all(|t| cluster.psql(db, &format!("SELECT to_regclass('public.{t}') IS NOT NULL")) == "t")
}

/// Migration `i` creates table `t{i}` and inserts `i` into it, for i in 1..=count.
pub fn tables(count: usize) -> Folder {
    let folder = Folder::new();
    for i in 1..=count {
        folder.write(
            &format!("{i}_t{i}.sql"),
            &format!("CREATE TABLE t{i} (id int);\nINSERT INTO t{i} VALUES ({i});\n"),
        );
    }
    folder
}

/// Migration `1000 + i` creates table `t_i` and inserts `i` into it, for i in 1..=count.
/// The up marker varies (none, plain, explicit `transaction:true`); `slow` makes that
/// migration sleep a second first, so a fault can be aimed at it, and `pause_ms` makes
/// every one sleep that long, so a run lasts long enough to be hit at random.
pub fn numbered(count: usize, slow: Option<usize>, pause_ms: u32) -> Folder {
    let folder = Folder::new();
    for i in 1..=count {
        let marker = ["", "-- migrate:up\n", "-- migrate:up transaction:true\n"][i % 3];
        let sleep = if slow == Some(i) {
            "SELECT pg_sleep(1);\n".to_string()
        } else if pause_ms > 0 {
            format!("SELECT pg_sleep({});\n", f64::from(pause_ms) / 1000.0)
        } else {
            String::new()
        };
        folder.write(
            &format!("{}_t{i}.sql", 1000 + i),
            &format!(
                "{marker}{sleep}CREATE TABLE t_{i} (id int);\nINSERT INTO t_{i} VALUES ({i});\n"
            ),
        );
    }
    folder
}

/// The invariant of a `numbered` folder after any fault: history revisions = existing
/// `t_i` tables, each table holds exactly its one row, no revision twice, no row that is
/// not `applied`, exactly one 'ok' event per applied revision. Returns how many are
/// applied, or what is wrong.
pub fn consistent(cluster: &Cluster, db: &str) -> Result<usize, String> {
    let tables: BTreeSet<usize> = cluster
        .psql(
            db,
            "SELECT substr(relname, 3) FROM pg_class \
             WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace AND relname ~ '^t_[0-9]+$'",
        )
        .lines()
        .map(|n| n.parse().expect("table number"))
        .collect();
    if cluster.psql(db, "SELECT to_regclass('schemagate_history') IS NULL") == "t" {
        return if tables.is_empty() {
            Ok(0)
        } else {
            Err(format!("tables {tables:?} without a history"))
        };
    }
    let counted = |sql: &str| -> BTreeMap<usize, usize> {
        cluster
            .psql(db, sql)
            .lines()
            .map(|line| {
                let (revision, n) = line.split_once('|').expect("revision|count");
                let i = revision.parse::<usize>().expect("numeric revision") - 1000;
                (i, n.parse().expect("count"))
            })
            .collect()
    };
    let history = counted(
        "SELECT revision, count(*) FROM schemagate_history WHERE status = 'applied' GROUP BY revision",
    );
    let all_rows = cluster.psql(db, "SELECT count(*) FROM schemagate_history");
    if all_rows != history.len().to_string() {
        return Err(format!(
            "history rows that are not 'applied': {}",
            cluster.psql(
                db,
                "SELECT revision, status FROM schemagate_history WHERE status <> 'applied'"
            )
        ));
    }
    if history.values().any(|&n| n != 1) {
        return Err(format!("a revision recorded twice: {history:?}"));
    }
    let revisions: BTreeSet<usize> = history.keys().copied().collect();
    if revisions != tables {
        return Err(format!(
            "history {revisions:?} and tables {tables:?} disagree"
        ));
    }
    let events = counted(
        "SELECT revision, count(*) FROM schemagate_events WHERE outcome = 'ok' GROUP BY revision",
    );
    let ok: BTreeSet<usize> = events.keys().copied().collect();
    if ok != revisions || events.values().any(|&n| n != 1) {
        return Err(format!(
            "'ok' events {events:?} do not match the history {revisions:?} once each"
        ));
    }
    if !tables.is_empty() {
        let rows = tables
            .iter()
            .map(|i| format!("SELECT {i}, count(*), min(id) FROM t_{i}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        for line in cluster.psql(db, &rows).lines() {
            let fields: Vec<&str> = line.split('|').collect();
            if (fields[1], fields[2]) != ("1", fields[0]) {
                return Err(format!("t_{} does not hold exactly its one row", fields[0]));
            }
        }
    }
    Ok(revisions.len())
}

/// A small xorshift generator seeded from the clock: no rand crate for a few delays.
pub struct Jitter(u64);

impl Jitter {
    pub fn from_clock() -> Jitter {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64;
        Jitter(nanos | 1)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}
