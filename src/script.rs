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

use crate::error::{Error, Result};
use crate::graph::Graph;
use crate::history::{self, ELAPSED_MS, Tables, VERSION};
use crate::migration::{Migration, Section};
use crate::plan::{RowStatus, Step};
use crate::split::{self, Statement};

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

/// A transactional step as one batch. `guard` (a statement of the lock's) runs first
/// inside the transaction.
pub fn transaction<'a>(
    tables: &Tables,
    migration: &'a Migration,
    step: Step,
    guard: Option<&str>,
) -> Result<Batch<'a>> {
    let mut batch = Batch::begin(guard);
    batch.section(migration, section(migration, step)?);
    let row = match step {
        Step::Up(_) => {
            history::insert_row(tables, migration, RowStatus::Applied, "applied", ELAPSED_MS)
        }
        Step::Down(_) => history::delete_row(tables, &migration.revision),
    };
    batch.own(
        &(String::from("RESET ALL;\n")
            + &row
            + &history::event(tables, action(step), &migration.revision, "ok", None)),
        3,
    );
    batch.own("COMMIT;\n", 1);
    Ok(batch)
}

/// Several transactional up steps in one transaction: all or nothing.
pub fn one_transaction<'a>(
    tables: &Tables,
    migrations: &[&'a Migration],
    guard: Option<&str>,
) -> Batch<'a> {
    let mut batch = Batch::begin(guard);
    for migration in migrations {
        batch.section(migration, &migration.up);
        batch.own(
            &(String::from("RESET ALL;\n")
                + &history::insert_row(
                    tables,
                    migration,
                    RowStatus::Applied,
                    "applied",
                    ELAPSED_MS,
                )
                + &history::event(tables, "up", &migration.revision, "ok", None)),
            3,
        );
    }
    batch.own("COMMIT;\n", 1);
    batch
}

/// A `transaction:false` step: what runs before, the statements, what runs after.
pub struct Statements<'a> {
    pub before: String,
    pub statements: Vec<Statement<'a>>,
    pub after: String,
}

pub fn statement_by_statement<'a>(
    tables: &Tables,
    migration: &'a Migration,
    step: Step,
) -> Result<Statements<'a>> {
    let section = section(migration, step)?;
    let statements = split::split(&section.sql).map_err(|e| {
        Error::Internal(format!(
            "validated migration {} no longer splits: {e}",
            migration.revision
        ))
    })?;
    let revision = &migration.revision;
    let (before, after) = match step {
        Step::Up(_) => (
            history::insert_row(tables, migration, RowStatus::Running, "applied", "0"),
            history::finish_row(tables, revision),
        ),
        Step::Down(_) => (
            history::set_status(tables, revision, RowStatus::Running),
            history::delete_row(tables, revision),
        ),
    };
    Ok(Statements {
        before: before + &history::event(tables, action(step), revision, "started", None),
        statements,
        after: String::from("RESET ALL;\n")
            + &after
            + &history::event(tables, action(step), revision, "ok", None),
    })
}

/// After a `transaction:false` step failed with `completed` statements done: if none ran,
/// the row goes back to what it was (so a fixed file simply runs again); otherwise it is
/// marked `failed` for a person to resolve.
pub fn failed(
    tables: &Tables,
    migration: &Migration,
    step: Step,
    completed: usize,
    detail: &str,
) -> String {
    let revision = &migration.revision;
    let row = match (completed, step) {
        (0, Step::Up(_)) => history::delete_row(tables, revision),
        (0, Step::Down(_)) => history::set_status(tables, revision, RowStatus::Applied),
        _ => history::set_status(tables, revision, RowStatus::Failed),
    };
    String::from("RESET ALL;\n")
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
    title: &str,
) -> Result<String> {
    let mut out = format!(
        "-- schemagate {VERSION}: {title}\n\
         -- Run it with: psql -v ON_ERROR_STOP=1 -f <this file>\n\n\
         SELECT pg_advisory_lock({lock_key});\n\n{}",
        history::create_tables(tables, true)
    );
    let migration = |step: Step| match step {
        Step::Up(n) | Step::Down(n) => graph.migration(n),
    };
    if single_transaction {
        let migrations: Vec<&Migration> = steps.iter().map(|&s| migration(s)).collect();
        out.push_str(&format!(
            "\n-- {} migrations in one transaction\n",
            migrations.len()
        ));
        out.push_str(&one_transaction(tables, &migrations, None).sql);
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
                out.push_str(&transaction(tables, m, step, None)?.sql);
            } else {
                let parts = statement_by_statement(tables, m, step)?;
                out.push_str(&parts.before);
                for statement in &parts.statements {
                    out.push_str(statement.sql);
                    if !statement.sql.ends_with(';') {
                        out.push(';');
                    }
                    out.push('\n');
                }
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
}

enum Part<'a> {
    /// schemagate's own statements, counted.
    Own(usize),
    Section(&'a Migration, &'a Section),
}

impl<'a> Batch<'a> {
    fn begin(guard: Option<&str>) -> Batch<'a> {
        let mut batch = Batch::default();
        batch.own("BEGIN;\n", 1);
        if let Some(guard) = guard {
            batch.own(guard, 1);
        }
        batch
    }

    fn own(&mut self, sql: &str, statements: usize) {
        self.parts.push((self.sql.len(), Part::Own(statements)));
        self.sql.push_str(sql);
    }

    fn section(&mut self, migration: &'a Migration, section: &'a Section) {
        self.parts
            .push((self.sql.len(), Part::Section(migration, section)));
        self.sql.push_str(&section.sql);
        // A last statement without `;`, or ending in a `--` comment, is closed here.
        self.sql.push_str("\n;\n");
    }

    fn migrations(&self) -> impl Iterator<Item = &'a Migration> + '_ {
        self.parts.iter().filter_map(|(_, p)| match p {
            Part::Section(m, _) => Some(*m),
            Part::Own(_) => None,
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

    /// The migration and file line an error points at: the server's 1-based character
    /// `position` in the batch when it gives one, else the statement after the
    /// `completed` ones.
    pub fn locate(
        &self,
        position: Option<usize>,
        completed: usize,
    ) -> Result<(&'a Migration, Option<usize>)> {
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
                return Ok((m, Some(s.first_line + lines)));
            }
        }
        let mut remaining = completed;
        let mut last = None;
        for (_, part) in &self.parts {
            let statements = match part {
                Part::Own(n) => *n,
                Part::Section(m, s) => {
                    last = Some(*m);
                    let statements = split::split(&s.sql).unwrap_or_default();
                    if let Some(statement) = statements.get(remaining) {
                        return Ok((m, Some(s.file_line(statement.line))));
                    }
                    statements.len()
                }
            };
            if remaining < statements {
                break;
            }
            remaining -= statements;
        }
        let migration = last
            .or_else(|| self.migrations().next())
            .ok_or_else(|| Error::Internal("a batch without a migration".into()))?;
        Ok((migration, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration;

    fn parsed(name: &str, text: &str) -> Migration {
        migration::parse(&format!("m/{name}"), name, text.as_bytes()).expect("valid migration")
    }

    #[test]
    fn a_transactional_step_is_one_batch_with_its_row() {
        let tables = Tables::new("public");
        let m = parsed(
            "1_a.sql",
            "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
        );
        let up = transaction(&tables, &m, Step::Up(0), None).expect("up");
        assert!(
            up.sql.starts_with("BEGIN;\nCREATE TABLE a (id int);\n"),
            "{}",
            up.sql
        );
        assert!(
            up.sql
                .contains("\n;\nRESET ALL;\nINSERT INTO \"public\".\"schemagate_history\"")
        );
        assert!(up.sql.ends_with("COMMIT;\n"));
        let down = transaction(&tables, &m, Step::Down(0), None).expect("down");
        assert!(down.sql.contains("DROP TABLE a;"));
        assert!(
            down.sql
                .contains("DELETE FROM \"public\".\"schemagate_history\"")
        );
        assert!(down.sql.contains("VALUES ('down', E'1', 'ok'"));
    }

    #[test]
    fn errors_are_located_by_position_or_by_statement() {
        let tables = Tables::new("public");
        let m = parsed("1_a.sql", "-- migrate:up\nSELECT 1;\n\nSELECT nope;\n");
        let batch = transaction(&tables, &m, Step::Up(0), None).expect("batch");
        // "BEGIN;\n" is 7 characters; `nope` starts on the section's third line.
        let position = batch.sql.find("nope").expect("nope") + 1;
        let (found, line) = batch.locate(Some(position), 0).expect("located");
        assert_eq!((found.revision.as_str(), line), ("1", Some(4)));
        // No position: BEGIN and SELECT 1 completed, so the third statement failed.
        let (_, line) = batch.locate(None, 2).expect("located");
        assert_eq!(line, Some(4));
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
            "up",
        )
        .expect("script");
        assert!(script.contains("SELECT pg_advisory_lock(42);"));
        assert!(script.contains("CREATE TABLE IF NOT EXISTS"));
        assert!(script.contains("-- up 1 a (m/1_a.sql)\nBEGIN;\nCREATE TABLE a (id int);"));
        assert!(script.contains(
            "transaction:false: statement by statement\nINSERT INTO \"public\".\"schemagate_history\""
        ));
        assert!(script.contains("CREATE INDEX CONCURRENTLY i ON a (id);\nRESET ALL;\nUPDATE"));
        assert!(script.ends_with("SELECT pg_advisory_unlock(42);\n"));
        assert_eq!(
            script.matches("BEGIN;").count(),
            2,
            "tables, then migration 1"
        );
    }
}
