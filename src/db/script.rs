//! The SQL of every step as text. What the runner sends and what `--sql` prints are built
//! by the same functions, so a DBA reviews exactly what would run, and piping `--sql` into
//! psql leaves the same schema and history rows as `up`.
//!
//! A transactional step is one batch: `BEGIN; <section>; RESET ALL; <history row>;
//! <event>; COMMIT;`, sent as one simple query (one round trip; change and row commit
//! together). A `transaction:false` step is a `running` row committed first, the
//! section's statements one by one, then the finished row: an interruption leaves a
//! visible dirty row, never a half-applied change nobody knows about.
//!
//! `RESET ALL` right after a migration's SQL keeps its `SET timezone`, `SET search_path`,
//! `SET statement_timeout` or `SET ROLE` away from schemagate's own statements and from
//! the next migration (never `DISCARD ALL`, which would also drop the advisory lock).
//!
//! `--ddl-lock-timeout` is a `SET lock_timeout` sent right before each migration's SQL,
//! after schemagate's own opening statements, so it limits the migration's statements
//! only: the `RESET ALL` after them takes it away again, and the next step sets it anew.
//! A migration's own `SET lock_timeout` comes later and wins for what follows it.

use std::time::Duration;

use crate::db::guard::Guard;
use crate::db::history::{self, Tables, VERSION};
use crate::error::{Error, Result};
use crate::files::graph::Graph;
use crate::files::migration::{Migration, Section};
use crate::files::split::{self, Statement};
use crate::plan::reconcile::{RowStatus, Step};

/// The section a step runs: the up section, or the down section when reverting.
pub fn section(migration: &Migration, step: Step) -> Result<&Section> {
    match step {
        Step::Up(_) => Ok(&migration.up),
        Step::Down(_) => migration.down.as_ref().ok_or_else(|| {
            Error::Internal(format!(
                "planned to revert {}, which has no down section",
                migration.revision
            ))
        }),
    }
}

fn action(step: Step) -> &'static str {
    match step {
        Step::Up(_) => "up",
        Step::Down(_) => "down",
    }
}

/// A transactional step as one batch: the guard, a `running` row, the section, the
/// session put back, the row made `applied` only if the guard's proof holds (see
/// `guard`), the event, `COMMIT`. A hidden `COMMIT` in the section would commit the
/// `running` row with what came before it, so the next run finds the step dirty instead of
/// running it again.
pub fn transaction<'a>(
    tables: &Tables,
    migration: &'a Migration,
    step: Step,
    guard: Guard,
    ddl_lock_timeout: Duration,
) -> Result<Batch<'a>> {
    let mut batch = Batch::begin(guard);
    batch.opening(migration, step, tables);
    batch.limit(ddl_lock_timeout);
    batch.section(migration, section(migration, step)?);
    batch.closing(migration, step, tables, guard);
    batch.own("COMMIT;\n", 1, Own::Closing);
    Ok(batch)
}

/// Several transactional up steps in one transaction: all or nothing.
pub fn one_transaction<'a>(
    tables: &Tables,
    migrations: &[&'a Migration],
    guard: Guard,
    ddl_lock_timeout: Duration,
) -> Batch<'a> {
    let mut batch = Batch::begin(guard);
    for migration in migrations {
        batch.opening(migration, Step::Up(0), tables);
        batch.limit(ddl_lock_timeout);
        batch.section(migration, &migration.up);
        batch.closing(migration, Step::Up(0), tables, guard);
    }
    batch.own("COMMIT;\n", 1, Own::Closing);
    batch
}

/// The `SET lock_timeout` of `--ddl-lock-timeout` before a migration's SQL (none when 0).
pub fn limit_statements(ddl_lock_timeout: Duration) -> Option<String> {
    (!ddl_lock_timeout.is_zero())
        .then(|| format!("SET lock_timeout = '{}ms';\n", ddl_lock_timeout.as_millis()))
}

/// Puts the session back after a migration's SQL: `RESET ALL` does not reset the role.
pub const RESET_SESSION: &str = "RESET ALL;\nRESET SESSION AUTHORIZATION;\nRESET ROLE;\n";
const RESET_STATEMENTS: usize = 3;

/// A `transaction:false` step: what runs before, the statements, what runs after. Each
/// piece of `before` and `after` is sent on its own, so `after`'s row count can be checked.
pub struct Statements<'a> {
    pub before: String,
    /// The `SET lock_timeout` of `--ddl-lock-timeout`, sent after `before`.
    pub limit: Option<String>,
    pub statements: Vec<Statement<'a>>,
    /// Puts the session back.
    pub reset: &'static str,
    /// Finishes the row; must change exactly one row (else someone else changed it).
    pub finish: String,
    /// The event and the guard's release.
    pub after: String,
}

pub fn statement_by_statement<'a>(
    tables: &Tables,
    migration: &'a Migration,
    step: Step,
    ddl_lock_timeout: Duration,
) -> Result<Statements<'a>> {
    let section = section(migration, step)?;
    let statements = split::split(&section.sql).map_err(|e| {
        Error::Internal(format!(
            "validated migration {} no longer splits: {e}",
            migration.revision
        ))
    })?;
    let revision = &migration.revision;
    let (before, finish) = match step {
        Step::Up(_) => (
            history::insert_row(tables, migration, RowStatus::Running, "applied", "0"),
            history::finish_row(tables, revision),
        ),
        Step::Down(_) => (
            history::set_status(tables, revision, RowStatus::Running),
            history::delete_running_row(tables, revision),
        ),
    };
    Ok(Statements {
        before: before + &history::event(tables, action(step), revision, "started", None),
        limit: limit_statements(ddl_lock_timeout),
        statements,
        reset: RESET_SESSION,
        finish,
        after: history::event(tables, action(step), revision, "ok", None),
    })
}

/// After a `transaction:false` step stopped with `committed` statements committed: if none
/// was, the row goes back to what it was (so a fixed file simply runs again); otherwise it
/// is marked `failed` for a person to resolve.
pub fn failed(
    tables: &Tables,
    migration: &Migration,
    step: Step,
    committed: usize,
    detail: &str,
) -> String {
    let revision = &migration.revision;
    let row = match (committed, step) {
        (0, Step::Up(_)) => history::delete_row(tables, revision),
        (0, Step::Down(_)) => history::set_status(tables, revision, RowStatus::Applied),
        _ => history::set_status(tables, revision, RowStatus::Failed),
    };
    String::from(RESET_SESSION)
        + &row
        + &history::event(tables, action(step), revision, "failed", Some(detail))
}

/// What `--sql` prints: a psql script of `steps`, under the same advisory lock as a run.
pub fn render(
    tables: &Tables,
    graph: &Graph,
    steps: &[Step],
    lock_key: i64,
    single_transaction: bool,
    ddl_lock_timeout: Duration,
    title: &str,
) -> Result<String> {
    // psql cannot retry: the script says so, as the runner's retries are not in it.
    let limited = if ddl_lock_timeout.is_zero() {
        String::new()
    } else {
        format!(
            "-- Each migration's SQL runs under SET lock_timeout ({}, --ddl-lock-timeout). \
             schemagate retries a\n-- migration whose statement times out on a lock; psql \
             cannot: the script stops there, run it again.\n",
            crate::text::duration(ddl_lock_timeout)
        )
    };
    let mut out = format!(
        "-- schemagate {VERSION}: {title}\n\
         -- Run it with: psql -v ON_ERROR_STOP=1 -f <this file>\n{limited}\n\
         SELECT pg_advisory_lock({lock_key});\n\n{}",
        history::create_tables(tables, true)
    );
    let migration = |step: Step| match step {
        Step::Up(n) | Step::Down(n) => graph.migration(n),
    };
    // psql holds the session lock the script takes above.
    let guard = Guard {
        key: lock_key,
        session_lock: true,
    };
    if single_transaction {
        let migrations: Vec<&Migration> = steps.iter().map(|&s| migration(s)).collect();
        out.push_str(&format!(
            "\n-- {} migrations in one transaction\n",
            migrations.len()
        ));
        out.push_str(&one_transaction(tables, &migrations, guard, ddl_lock_timeout).sql);
    } else {
        for &step in steps {
            let m = migration(step);
            let section = section(m, step)?;
            out.push_str(&format!(
                "\n-- {} {} {} ({}){}\n",
                action(step),
                m.revision,
                m.description,
                m.path,
                if section.transactional {
                    ""
                } else {
                    ", transaction:false: statement by statement"
                }
            ));
            if section.transactional {
                out.push_str(&transaction(tables, m, step, guard, ddl_lock_timeout)?.sql);
            } else {
                let parts = statement_by_statement(tables, m, step, ddl_lock_timeout)?;
                out.push_str(&parts.before);
                out.push_str(parts.limit.as_deref().unwrap_or_default());
                for statement in &parts.statements {
                    out.push_str(statement.sql);
                    if !statement.sql.ends_with(';') {
                        out.push(';');
                    }
                    out.push('\n');
                    if let Some(copy) = &statement.copy {
                        out.push_str(copy.data);
                        out.push_str("\\.\n");
                    }
                }
                out.push_str(parts.reset);
                out.push_str(&parts.finish);
                out.push_str(&parts.after);
            }
        }
    }
    out.push_str(&format!("\nSELECT pg_advisory_unlock({lock_key});\n"));
    Ok(out)
}

/// SQL sent as one simple query, and which migration each stretch of it came from, so an
/// error can be traced to a file and line.
#[derive(Default)]
pub struct Batch<'a> {
    pub sql: String,
    /// (byte offset where the part starts, the part)
    parts: Vec<(usize, Part<'a>)>,
    /// `COPY ... FROM stdin` statements with inline data, which the simple-query protocol
    /// cannot carry: the batch is sent in pieces around them (`pieces`).
    copies: Vec<CopyCut>,
}

/// Where a `COPY ... FROM stdin` and its data sit in a batch's SQL (byte ranges).
#[derive(Debug, Clone)]
struct CopyCut {
    statement: std::ops::Range<usize>,
    data: std::ops::Range<usize>,
    /// Just after the `\.` line.
    resume: usize,
}

/// One message of a batch: a simple query, or a COPY with the data to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'b> {
    /// `start` is its byte offset in the batch, to map the server's error positions back.
    Query { start: usize, sql: &'b str },
    Copy {
        statement: &'b str,
        data: &'b str,
        /// Byte offset of the data in the batch.
        data_start: usize,
    },
}

/// Which of schemagate's own statements a stretch of a batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Own {
    /// `BEGIN`, the guard, the `running` row: before any migration SQL ran.
    Opening,
    /// After a migration's SQL: the reset, the row's proof, the event, `COMMIT`.
    Closing,
}

enum Part<'a> {
    /// schemagate's own statements, counted.
    Own(usize, Own),
    Section(&'a Migration, &'a Section),
}

/// Where in a batch an error happened.
pub struct Place<'a> {
    /// The migration the failing statement belongs to, or the one just before it.
    pub migration: &'a Migration,
    /// The file line, when the failing statement is the migration's.
    pub line: Option<usize>,
    /// Set when the failing statement is one of schemagate's own.
    pub own: Option<Own>,
}

impl<'a> Batch<'a> {
    fn begin(guard: Guard) -> Batch<'a> {
        let mut batch = Batch::default();
        batch.own("BEGIN;\n", 1, Own::Opening);
        batch.own(&guard.take_in_transaction(), 1, Own::Opening);
        batch
    }

    fn own(&mut self, sql: &str, statements: usize, own: Own) {
        self.parts
            .push((self.sql.len(), Part::Own(statements, own)));
        self.sql.push_str(sql);
    }

    /// The `running` row (up) or status (down), before the migration's SQL.
    fn opening(&mut self, migration: &Migration, step: Step, tables: &Tables) {
        let row = match step {
            Step::Up(_) => {
                history::insert_row(tables, migration, RowStatus::Running, "applied", "0")
            }
            Step::Down(_) => history::set_status(tables, &migration.revision, RowStatus::Running),
        };
        self.own(&row, 1, Own::Opening);
    }

    /// `--ddl-lock-timeout` for the migration's SQL that follows.
    fn limit(&mut self, ddl_lock_timeout: Duration) {
        if let Some(set) = limit_statements(ddl_lock_timeout) {
            self.own(&set, 1, Own::Opening);
        }
    }

    /// The reset, the row made final under the guard's proof, and the event.
    fn closing(&mut self, migration: &Migration, step: Step, tables: &Tables, guard: Guard) {
        let intact = guard.intact();
        let (row, statements) = match step {
            Step::Up(_) => (history::seal_applied(tables, migration, &intact), 1),
            Step::Down(_) => (
                history::seal_status(tables, &migration.revision, &intact)
                    + &history::delete_row(tables, &migration.revision),
                2,
            ),
        };
        self.own(
            &(String::from(RESET_SESSION)
                + &row
                + &history::event(tables, action(step), &migration.revision, "ok", None)),
            RESET_STATEMENTS + statements + 1,
            Own::Closing,
        );
    }

    fn section(&mut self, migration: &'a Migration, section: &'a Section) {
        let start = self.sql.len();
        self.parts.push((start, Part::Section(migration, section)));
        self.sql.push_str(&section.sql);
        // COPY data and psql meta-commands both need a backslash: most files have none.
        if section.sql.contains('\\')
            && let Ok(split) = split::split_as(&section.sql, split::Rules::default())
        {
            // `\restrict KEY` becomes `--estrict KEY`: a comment of the same length, so
            // the server's error positions still point at the right line.
            for line in &split.meta_lines {
                self.sql
                    .replace_range(start + line.start..start + line.start + 2, "--");
            }
            let base = section.sql.as_ptr() as usize;
            for statement in &split.statements {
                if let Some(copy) = &statement.copy {
                    let data = copy.data.as_ptr() as usize - base;
                    self.copies.push(CopyCut {
                        statement: start + statement.offset
                            ..start + statement.offset + statement.sql.len(),
                        data: start + data..start + data + copy.data.len(),
                        resume: start + copy.end,
                    });
                }
            }
        }
        // A last statement without `;`, or ending in a `--` comment, is closed here.
        self.sql.push_str("\n;\n");
    }

    /// The messages that send this batch: one simple query, or, around each
    /// `COPY ... FROM stdin`, the SQL before it, the COPY and its data, and so on.
    pub fn pieces(&self) -> Vec<Piece<'_>> {
        let mut pieces = Vec::with_capacity(1 + 2 * self.copies.len());
        let mut cursor = 0;
        for copy in &self.copies {
            let before = &self.sql[cursor..copy.statement.start];
            if !before.trim().is_empty() {
                pieces.push(Piece::Query {
                    start: cursor,
                    sql: before,
                });
            }
            pieces.push(Piece::Copy {
                statement: &self.sql[copy.statement.clone()],
                data: &self.sql[copy.data.clone()],
                data_start: copy.data.start,
            });
            cursor = copy.resume;
        }
        pieces.push(Piece::Query {
            start: cursor,
            sql: &self.sql[cursor..],
        });
        pieces
    }

    /// The migrations of the batch, in order.
    pub fn migrations(&self) -> impl Iterator<Item = &'a Migration> + '_ {
        self.parts.iter().filter_map(|(_, p)| match p {
            Part::Section(m, _) => Some(*m),
            Part::Own(..) => None,
        })
    }

    /// The revision, or "N migrations in one transaction", for progress messages.
    pub fn label(&self) -> String {
        let revisions: Vec<&str> = self.migrations().map(|m| m.revision.as_str()).collect();
        match revisions.as_slice() {
            [one] => one.to_string(),
            many => format!("{} migrations in one transaction", many.len()),
        }
    }

    /// Where an error points: the server's 1-based character `position` in the batch when
    /// it gives one, else the statement after the `completed` ones.
    pub fn locate(&self, position: Option<usize>, completed: usize) -> Result<Place<'a>> {
        if let Some(position) = position
            && let Some(byte) = self
                .sql
                .char_indices()
                .nth(position.saturating_sub(1))
                .map(|(b, _)| b)
        {
            let at = self
                .parts
                .partition_point(|(start, _)| *start <= byte)
                .saturating_sub(1);
            if let Some((start, Part::Section(m, s))) = self.parts.get(at) {
                let lines = self.sql[*start..byte].matches('\n').count();
                return Ok(Place {
                    migration: m,
                    line: Some(s.first_line + lines),
                    own: None,
                });
            }
        }
        let mut remaining = completed;
        let mut last = None;
        for (_, part) in &self.parts {
            let statements = match part {
                Part::Own(n, own) => {
                    if remaining < *n {
                        let migration = last
                            .or_else(|| self.migrations().next())
                            .ok_or_else(|| Error::Internal("a batch without a migration".into()))?;
                        return Ok(Place {
                            migration,
                            line: None,
                            own: Some(*own),
                        });
                    }
                    *n
                }
                Part::Section(m, s) => {
                    last = Some(*m);
                    let statements = split::split(&s.sql).unwrap_or_default();
                    if let Some(statement) = statements.get(remaining) {
                        return Ok(Place {
                            migration: m,
                            line: Some(s.file_line(statement.line)),
                            own: None,
                        });
                    }
                    statements.len()
                }
            };
            remaining -= statements;
        }
        let migration = last
            .or_else(|| self.migrations().next())
            .ok_or_else(|| Error::Internal("a batch without a migration".into()))?;
        Ok(Place {
            migration,
            line: None,
            own: Some(Own::Closing),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::migration;

    fn parsed(name: &str, text: &str) -> Migration {
        migration::parse(&format!("m/{name}"), name, text.as_bytes()).expect("valid migration")
    }

    const GUARD: Guard = Guard {
        key: 42,
        session_lock: true,
    };

    #[test]
    fn a_transactional_step_is_one_batch_with_its_row() {
        let tables = Tables::new("public");
        let m = parsed(
            "1_a.sql",
            "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
        );
        let up = transaction(&tables, &m, Step::Up(0), GUARD, Duration::ZERO).expect("up");
        assert!(
            up.sql.starts_with(
                "BEGIN;\nSELECT pg_advisory_xact_lock_shared(0, 42);\nINSERT INTO \"public\".\"schemagate_history\""
            ),
            "{}",
            up.sql
        );
        assert!(up.sql.contains("'running', 'applied', 0,"), "{}", up.sql);
        assert!(up.sql.contains("E'host'") || up.sql.contains("applied_by"));
        assert!(
            up.sql.contains(
                "CREATE TABLE a (id int);\n\n;\nRESET ALL;\nRESET SESSION AUTHORIZATION;\nRESET ROLE;\nINSERT INTO"
            ),
            "{}",
            up.sql
        );
        assert!(up.sql.contains("ELSE 'lost' END"), "{}", up.sql);
        assert!(up.sql.contains("ON CONFLICT (revision) DO UPDATE"));
        assert!(up.sql.ends_with("COMMIT;\n"));
        let down = transaction(&tables, &m, Step::Down(0), GUARD, Duration::ZERO).expect("down");
        assert!(down.sql.contains("SET status = 'running'"), "{}", down.sql);
        assert!(down.sql.contains("DROP TABLE a;"));
        assert!(down.sql.contains("THEN status ELSE 'lost' END"));
        assert!(
            down.sql
                .contains("DELETE FROM \"public\".\"schemagate_history\"")
        );
        assert!(down.sql.contains("VALUES ('down', E'1', 'ok'"));
    }

    #[test]
    fn the_ddl_lock_timeout_comes_after_the_opening_and_before_the_migration() {
        let tables = Tables::new("public");
        let m = parsed("1_a.sql", "-- migrate:up\nALTER TABLE a ADD b int;\n");
        let up =
            transaction(&tables, &m, Step::Up(0), GUARD, Duration::from_millis(1500)).expect("up");
        let set = up.sql.find("SET lock_timeout = '1500ms';\n").expect("set");
        assert!(up.sql.find("'running'").expect("row") < set, "{}", up.sql);
        assert!(
            up.sql[set..].starts_with("SET lock_timeout = '1500ms';\nALTER TABLE a"),
            "{}",
            up.sql
        );
        // The SET counts as an opening statement: a failing ALTER is still line 2.
        let place = up.locate(None, 4).expect("located");
        assert_eq!((place.line, place.own), (Some(2), None));
        assert_eq!(up.locate(None, 3).expect("set").own, Some(Own::Opening));
        let off = transaction(&tables, &m, Step::Up(0), GUARD, Duration::ZERO).expect("off");
        assert!(!off.sql.contains("lock_timeout"));
    }

    #[test]
    fn errors_are_located_by_position_or_by_statement() {
        let tables = Tables::new("public");
        let m = parsed("1_a.sql", "-- migrate:up\nSELECT 1;\n\nSELECT nope;\n");
        let batch = transaction(&tables, &m, Step::Up(0), GUARD, Duration::ZERO).expect("batch");
        let position = batch.sql.find("nope").expect("nope") + 1;
        let place = batch.locate(Some(position), 0).expect("located");
        assert_eq!(
            (place.migration.revision.as_str(), place.line, place.own),
            ("1", Some(4), None)
        );
        // No position: BEGIN, the guard, the running row and SELECT 1 completed.
        let place = batch.locate(None, 4).expect("located");
        assert_eq!((place.line, place.own), (Some(4), None));
        // The running row is schemagate's own opening statement; the proof a closing one.
        assert_eq!(
            batch.locate(None, 2).expect("opening").own,
            Some(Own::Opening)
        );
        assert_eq!(
            batch.locate(None, 8).expect("closing").own,
            Some(Own::Closing)
        );
    }

    #[test]
    fn the_script_runs_each_step_as_the_runner_would() {
        let tables = Tables::new("public");
        let a = parsed("1_a.sql", "CREATE TABLE a (id int);\n");
        let b = parsed(
            "2_b.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON a (id)\n",
        );
        let graph = Graph::build(vec![a, b]).expect("graph");
        let script = render(
            &tables,
            &graph,
            &[Step::Up(0), Step::Up(1)],
            42,
            false,
            Duration::ZERO,
            "up",
        )
        .expect("script");
        assert!(script.contains("SELECT pg_advisory_lock(42);"));
        assert!(script.contains("CREATE TABLE IF NOT EXISTS"));
        assert!(script.contains(
            "-- up 1 a (m/1_a.sql)\nBEGIN;\nSELECT pg_advisory_xact_lock_shared(0, 42);\nINSERT"
        ));
        assert!(script.contains(
            "transaction:false: statement by statement\nINSERT INTO \"public\".\"schemagate_history\""
        ));
        assert!(script.contains(
            "CREATE INDEX CONCURRENTLY i ON a (id);\nRESET ALL;\nRESET SESSION AUTHORIZATION;\nRESET ROLE;\nUPDATE"
        ));
        assert!(script.ends_with("SELECT pg_advisory_unlock(42);\n"));
        assert_eq!(
            script.matches("BEGIN;").count(),
            2,
            "tables, then migration 1"
        );
    }
}
