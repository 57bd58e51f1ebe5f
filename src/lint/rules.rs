//! Findings from observations, plus the text rules observation cannot see (a missing
//! `lock_timeout`), and the `-- schemagate:allow <rule> <reason>` excuses. Pure functions:
//! the server's answers are already in [`StatementObservation`].

use crate::error::FileProblem;
pub use crate::lint::lock::{Blocks, LockMode};
use crate::lint::observe::{MigrationObservation, StatementObservation};

/// The rules, by the name `-- schemagate:allow` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rule {
    /// A table or index existing before was rewritten (its relfilenode changed).
    Rewrite,
    /// A constraint or NOT NULL was checked by scanning an existing table while writes wait.
    ValidatingScan,
    /// An index was built on an existing table without CONCURRENTLY.
    IndexNotConcurrent,
    /// An existing table or column got another name: the running app still uses the old one.
    Rename,
    /// An existing table, index or column is gone: the running app may still use it.
    Drop,
    /// A lock that blocks the app is taken with no `lock_timeout` set by the migration.
    LockTimeout,
}

pub const RULES: [Rule; 6] = [
    Rule::Rewrite,
    Rule::ValidatingScan,
    Rule::IndexNotConcurrent,
    Rule::Rename,
    Rule::Drop,
    Rule::LockTimeout,
];

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::Rewrite => "rewrite",
            Rule::ValidatingScan => "validating-scan",
            Rule::IndexNotConcurrent => "index-not-concurrent",
            Rule::Rename => "rename",
            Rule::Drop => "drop",
            Rule::LockTimeout => "lock-timeout",
        }
    }

    pub fn parse(name: &str) -> Option<Rule> {
        RULES.into_iter().find(|r| r.name() == name)
    }

    /// One line for SARIF's rule list and `--help`.
    pub fn summary(self) -> &'static str {
        match self {
            Rule::Rewrite => "rewrites an existing table or index while holding its lock",
            Rule::ValidatingScan => {
                "validates a constraint or NOT NULL by scanning an existing table while writes wait"
            }
            Rule::IndexNotConcurrent => "builds an index on an existing table without CONCURRENTLY",
            Rule::Rename => "renames an existing table or column the running app still uses",
            Rule::Drop => "drops an existing table, index or column the running app may still use",
            Rule::LockTimeout => {
                "takes a lock that blocks the app with no lock_timeout set by the migration"
            }
        }
    }
}

/// One thing found, at one statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: Rule,
    pub file: String,
    pub line: usize,
    pub revision: String,
    /// The existing object it concerns, qualified (`public.users`, `public.users.email`).
    pub object: String,
    /// The strongest lock the migration holds on that object (or its table) at that point.
    pub lock: Option<LockMode>,
    /// The relation that lock is on (the table, for a column).
    pub locked: String,
    pub message: String,
    /// The safe way to do the same.
    pub fix: String,
    /// The statement's first line, for reading the report without the file.
    pub statement: String,
}

impl Finding {
    pub fn blocks(&self) -> Blocks {
        self.lock.map(LockMode::blocks).unwrap_or(Blocks::Neither)
    }
}

/// `-- schemagate:allow <rule> <reason>`: excuses `rule` on the statement below.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allow {
    pub rule: Rule,
    /// 1-based file line of the comment.
    pub line: usize,
}

const ALLOW: &str = "-- schemagate:allow";

/// The excuses in the comment lines right above the statement starting at file line
/// `statement_line` (`lines` is the whole file). A missing reason or an unknown rule is a
/// problem of the file, reported rather than ignored.
pub fn allowances(
    path: &str,
    lines: &[&str],
    statement_line: usize,
) -> Result<Vec<Allow>, FileProblem> {
    let mut allows = Vec::new();
    let mut index = statement_line.saturating_sub(1);
    while index > 0 {
        let line = lines.get(index - 1).map(|l| l.trim()).unwrap_or("");
        if !line.starts_with("--") {
            break;
        }
        if let Some(rest) = line.strip_prefix(ALLOW) {
            let mut words = rest.split_whitespace();
            let name = words.next().unwrap_or("");
            let reason: Vec<&str> = words.collect();
            let rule = Rule::parse(name).ok_or_else(|| {
                FileProblem::new(
                    path,
                    Some(index),
                    format!(
                        "`{ALLOW} {name}`: no such rule; the rules are {}",
                        RULES.map(Rule::name).join(", ")
                    ),
                )
            })?;
            if reason.is_empty() {
                return Err(FileProblem::new(
                    path,
                    Some(index),
                    format!(
                        "`{ALLOW} {name}` needs a reason after the rule, e.g. `{ALLOW} {name} the table has 40 rows`"
                    ),
                ));
            }
            allows.push(Allow { rule, line: index });
        }
        index -= 1;
    }
    Ok(allows)
}

/// Does `sql` (a statement's text) set lock_timeout?
pub fn sets_lock_timeout(sql: &str) -> bool {
    let upper = sql.to_ascii_uppercase();
    let words: Vec<&str> = upper.split_whitespace().collect();
    words.first() == Some(&"SET")
        && words
            .iter()
            .skip(1)
            .take(2)
            .any(|w| w.starts_with("LOCK_TIMEOUT"))
        || upper.contains("SET_CONFIG('LOCK_TIMEOUT'")
}

/// Every finding of one migration's observation, before excuses.
pub fn findings(migration: &MigrationObservation) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut lock_timeout_set = false;
    let mut lock_timeout_reported = false;
    for statement in &migration.statements {
        if sets_lock_timeout(&statement.sql) {
            lock_timeout_set = true;
        }
        let finding = |rule: Rule, object: &str, message: String, fix: &str| Finding {
            rule,
            file: migration.path.clone(),
            line: statement.line,
            revision: migration.revision.clone(),
            object: object.to_string(),
            lock: statement.lock_on(object).map(|(_, mode)| mode),
            locked: statement
                .lock_on(object)
                .map(|(name, _)| name)
                .unwrap_or_else(|| object.to_string()),
            message,
            fix: fix.to_string(),
            statement: first_line(&statement.sql),
        };
        statement_findings(statement, &finding, &mut out);
        if !lock_timeout_set && !lock_timeout_reported {
            if let Some((object, mode)) = statement.strongest_blocking_lock() {
                lock_timeout_reported = true;
                out.push(Finding {
                    lock: Some(mode),
                    ..finding(
                        Rule::LockTimeout,
                        &object,
                        format!(
                            "takes {} on {object} with no lock_timeout set: behind a long query it waits, and every query after it waits behind it",
                            mode.name()
                        ),
                        "start the migration with `SET lock_timeout = '5s';` (schemagate up sets --ddl-lock-timeout itself; other runners do not)",
                    )
                });
            }
        }
    }
    out
}

fn statement_findings(
    statement: &StatementObservation,
    finding: &dyn Fn(Rule, &str, String, &str) -> Finding,
    out: &mut Vec<Finding>,
) {
    for table in &statement.rewritten_tables {
        out.push(finding(
            Rule::Rewrite,
            table,
            format!("rewrites {table} (its file changed) and every index on it"),
            "expand and contract: add a new column, backfill it in batches, switch the app, then drop the old one",
        ));
    }
    for index in &statement.rewritten_indexes {
        out.push(finding(
            Rule::Rewrite,
            index,
            format!("rebuilds the index {index}"),
            "build a new index with CREATE INDEX CONCURRENTLY, then drop the old one (DROP INDEX CONCURRENTLY)",
        ));
    }
    for (index, table) in &statement.new_indexes {
        if statement.concurrently {
            continue;
        }
        let mut f = finding(
            Rule::IndexNotConcurrent,
            table,
            format!("builds the index {index} on the existing table {table} without CONCURRENTLY"),
            "CREATE INDEX CONCURRENTLY in a `-- migrate:up transaction:false` migration (for a key or unique constraint: build the unique index concurrently, then ADD CONSTRAINT ... USING INDEX)",
        );
        f.object = table.clone();
        out.push(f);
    }
    for table in &statement.scanned {
        // A scan under a lock that lets writes go on (VALIDATE CONSTRAINT) is the safe pattern.
        let blocks = statement.lock_on(table).map(|(_, mode)| mode.blocks());
        if !matches!(blocks, Some(Blocks::Writes | Blocks::ReadsAndWrites)) {
            continue;
        }
        if statement.rewritten_tables.contains(table)
            || statement.new_indexes.iter().any(|(_, t)| t == table)
        {
            continue;
        }
        let columns: Vec<&String> = statement
            .set_not_null
            .iter()
            .filter(|c| c.starts_with(&format!("{table}.")))
            .collect();
        let constraints: Vec<&String> = statement
            .validated
            .iter()
            .filter(|(_, t)| t == table)
            .map(|(c, _)| c)
            .collect();
        // A full UPDATE reads every row too, but validates nothing: only DDL is judged here.
        let ddl = statement
            .sql
            .split_whitespace()
            .next()
            .is_some_and(|w| w.eq_ignore_ascii_case("ALTER"));
        if columns.is_empty() && constraints.is_empty() && !ddl {
            continue;
        }
        let (what, fix) = if !columns.is_empty() {
            (
                format!(
                    "SET NOT NULL on {} scans every row of {table}",
                    join(&columns)
                ),
                "first ADD CONSTRAINT ... CHECK (column IS NOT NULL) NOT VALID, then VALIDATE CONSTRAINT (writes go on), then SET NOT NULL (no scan), then drop the check",
            )
        } else if !constraints.is_empty() {
            (
                format!(
                    "the constraint {} is validated by scanning every row of {table}",
                    join(&constraints)
                ),
                "ADD CONSTRAINT ... NOT VALID, then ALTER TABLE ... VALIDATE CONSTRAINT in a later statement (it takes SHARE UPDATE EXCLUSIVE: writes go on)",
            )
        } else {
            (
                format!("scans every row of {table} to check it"),
                "for a NOT NULL column: add it nullable (or with a constant DEFAULT), backfill, then add the NOT NULL by the NOT VALID check pattern",
            )
        };
        out.push(finding(Rule::ValidatingScan, table, what, fix));
    }
    for (old, new) in &statement.renamed {
        out.push(finding(
            Rule::Rename,
            old,
            format!("renames {old} to {new}: the running version of the app still uses {old}"),
            "expand and contract: add the new name (a new column kept in sync, or a view), switch the app, then drop the old name in a later release",
        ));
    }
    for object in &statement.dropped {
        out.push(finding(
            Rule::Drop,
            object,
            format!("drops {object}: the running version of the app may still use it"),
            "expand and contract: release an app that no longer uses it first, then drop it in a later migration",
        ));
    }
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn first_line(sql: &str) -> String {
    let line = sql.lines().next().unwrap_or("").trim();
    if line.len() < sql.trim().len() {
        format!("{line} …")
    } else {
        line.to_string()
    }
}

/// Findings minus those excused; the excuses that excused nothing come back as problems
/// too, so a stale `allow` is noticed.
pub fn excuse(findings: Vec<Finding>, allows: &[(String, usize, Vec<Allow>)]) -> Vec<Finding> {
    findings
        .into_iter()
        .filter(|f| {
            !allows.iter().any(|(file, line, list)| {
                *file == f.file && *line == f.line && list.iter().any(|a| a.rule == f.rule)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_modes_block_what_the_documentation_says() {
        assert_eq!(
            LockMode::parse("AccessExclusiveLock").map(LockMode::blocks),
            Some(Blocks::ReadsAndWrites)
        );
        for mode in ["ShareLock", "ShareRowExclusiveLock", "ExclusiveLock"] {
            assert_eq!(
                LockMode::parse(mode).map(LockMode::blocks),
                Some(Blocks::Writes)
            );
        }
        for mode in [
            "AccessShareLock",
            "RowShareLock",
            "RowExclusiveLock",
            "ShareUpdateExclusiveLock",
        ] {
            assert_eq!(
                LockMode::parse(mode).map(LockMode::blocks),
                Some(Blocks::Neither)
            );
        }
        assert_eq!(LockMode::parse("SIReadLock"), None);
        assert!(LockMode::Share < LockMode::AccessExclusive);
    }

    #[test]
    fn allow_needs_a_known_rule_and_a_reason() {
        let file = "-- migrate:up\n-- schemagate:allow rewrite the table has 3 rows\n-- other\nALTER TABLE t ALTER a TYPE bigint;\n-- schemagate:allow rewrite\nSELECT 1;\n-- schemagate:allow nonsense why\nSELECT 2;";
        let lines: Vec<&str> = file.lines().collect();
        let allows = allowances("f.sql", &lines, 4).unwrap();
        assert_eq!(
            allows,
            vec![Allow {
                rule: Rule::Rewrite,
                line: 2
            }]
        );
        let missing = allowances("f.sql", &lines, 6).unwrap_err();
        assert_eq!(missing.line, Some(5));
        assert!(missing.message.contains("needs a reason"), "{missing}");
        let unknown = allowances("f.sql", &lines, 8).unwrap_err();
        assert!(unknown.message.contains("no such rule"), "{unknown}");
        assert!(allowances("f.sql", &lines, 1).unwrap().is_empty());
    }

    #[test]
    fn lock_timeout_is_seen_in_set_statements() {
        assert!(sets_lock_timeout("SET lock_timeout = '5s';"));
        assert!(sets_lock_timeout("set local lock_timeout to 1000;"));
        assert!(sets_lock_timeout(
            "SELECT set_config('lock_timeout', '2s', false);"
        ));
        assert!(!sets_lock_timeout("SET statement_timeout = 0;"));
    }

    fn observed(statements: Vec<StatementObservation>) -> MigrationObservation {
        MigrationObservation {
            revision: "1".into(),
            path: "m/1_x.sql".into(),
            transactional: true,
            statements,
        }
    }

    #[test]
    fn findings_follow_the_observation() {
        let mut rewrite = StatementObservation::new(3, "ALTER TABLE t ALTER a TYPE bigint;");
        rewrite.rewritten_tables.push("public.t".into());
        rewrite
            .locks
            .push(("public.t".into(), LockMode::AccessExclusive));
        let mut validate = StatementObservation::new(5, "ALTER TABLE t VALIDATE CONSTRAINT c;");
        validate.scanned.push("public.t".into());
        validate.validated.push(("c".into(), "public.t".into()));
        validate
            .locks
            .push(("public.t".into(), LockMode::ShareUpdateExclusive));
        let found = findings(&observed(vec![rewrite, validate]));
        let rules: Vec<Rule> = found.iter().map(|f| f.rule).collect();
        // VALIDATE under SHARE UPDATE EXCLUSIVE is the safe pattern: no finding.
        assert_eq!(rules, vec![Rule::Rewrite, Rule::LockTimeout]);
        assert_eq!(found[0].lock, Some(LockMode::AccessExclusive));
        assert_eq!(found[0].line, 3);

        let mut timed = StatementObservation::new(2, "SET lock_timeout = '1s';");
        timed.locks.clear();
        let mut check = StatementObservation::new(3, "ALTER TABLE t ADD CHECK (a > 0);");
        check.scanned.push("public.t".into());
        check
            .validated
            .push(("t_a_check".into(), "public.t".into()));
        check
            .locks
            .push(("public.t".into(), LockMode::AccessExclusive));
        let found = findings(&observed(vec![timed, check]));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rule, Rule::ValidatingScan);
        assert!(found[0].fix.contains("NOT VALID"));
    }

    #[test]
    fn a_full_update_under_a_lock_is_no_validating_scan() {
        let mut update = StatementObservation::new(2, "UPDATE t SET a = 1;");
        update.scanned.push("public.t".into());
        update
            .locks
            .push(("public.t".into(), LockMode::AccessExclusive));
        let found = findings(&observed(vec![update]));
        let rules: Vec<Rule> = found.iter().map(|f| f.rule).collect();
        assert_eq!(rules, vec![Rule::LockTimeout]);
    }

    #[test]
    fn excused_findings_are_left_out() {
        let mut s = StatementObservation::new(4, "DROP TABLE t;");
        s.dropped.push("public.t".into());
        s.locks.push(("public.t".into(), LockMode::AccessExclusive));
        let found = findings(&observed(vec![s]));
        assert_eq!(found.len(), 2);
        let allows = vec![(
            "m/1_x.sql".to_string(),
            4,
            vec![Allow {
                rule: Rule::Drop,
                line: 3,
            }],
        )];
        let left = excuse(found, &allows);
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].rule, Rule::LockTimeout);
    }
}
