//! What `up` must do, as a pure function of the files' graph and the history rows.
//!
//! Keeping this free of I/O is what lets every reconcile rule (changed checksum, dirty
//! row, out-of-order, database ahead) be unit-tested, and lets the look phase and the
//! locked phase run the very same logic.

use std::collections::HashMap;

use crate::files::graph::Graph;
use crate::files::migration::Migration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowStatus {
    Applied,
    /// A `transaction:false` migration started and has not finished (or its runner died).
    Running,
    /// A `transaction:false` migration failed part-way.
    Failed,
}

impl RowStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Applied => "applied",
            RowStatus::Running => "running",
            RowStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<RowStatus> {
        match text {
            "applied" => Some(RowStatus::Applied),
            "running" => Some(RowStatus::Running),
            "failed" => Some(RowStatus::Failed),
            _ => None,
        }
    }
}

/// One row of `schemagate_history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedRow {
    pub revision: String,
    pub checksum: String,
    pub status: RowStatus,
    /// Not used for planning, and only read for the commands that show it.
    pub recorded: Recorded,
}

/// When, how and by whom a row was recorded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    pub applied_at: String,
    /// `applied` or `stamped`.
    pub method: String,
    pub execution_ms: i64,
    pub applied_by: String,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub allow_changed: bool,
    pub allow_out_of_order: bool,
    /// Applied revisions unknown to the files are an error rather than a warning.
    pub strict: bool,
    /// A pending file with the checksum of an applied row no file has is that row,
    /// renamed: record it instead of stopping.
    pub allow_renamed: bool,
    /// Apply even when none of the database's revisions is in the folder.
    pub allow_unknown: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    Changed {
        revision: String,
        path: String,
    },
    Dirty {
        revision: String,
        status: RowStatus,
        path: Option<String>,
    },
    OutOfOrder {
        revision: String,
        path: String,
        applied_descendant: String,
    },
    Unknown {
        revision: String,
    },
    /// `down` with applied revisions no file has.
    AheadOfDown {
        revision: String,
    },
    /// A pending file whose up section is an applied row's, and that row's revision
    /// matches no file: the file was renamed.
    Renamed {
        from: String,
        to: String,
        path: String,
    },
    /// The database has applied revisions and none of them is in the folder.
    WrongFolder {
        folder: String,
        files: usize,
        applied: Vec<String>,
    },
}

impl Conflict {
    /// The message a person reads, with what to do about it.
    pub fn message(&self) -> String {
        match self {
            Conflict::Changed { revision, path } => format!(
                "migration {revision} ({path}) was edited after it was applied (checksum differs): \
                 restore the file and put the change in a new migration, or pass --allow-changed \
                 if the edit is harmless"
            ),
            Conflict::Dirty {
                revision,
                status,
                path,
            } => format!(
                "migration {revision}{} is marked '{}': a transaction:false migration was \
                 interrupted or failed part-way. Check the database by hand, then run \
                 `schemagate resolve {revision} --applied` if its changes are complete, or \
                 `schemagate resolve {revision} --rolled-back` if they are not",
                path.as_deref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default(),
                status.as_str()
            ),
            Conflict::OutOfOrder {
                revision,
                path,
                applied_descendant,
            } => format!(
                "migration {revision} ({path}) is pending but its descendant {applied_descendant} \
                 is already applied (a migration merged late under an older revision id): give it \
                 a newer revision id, or pass --allow-out-of-order to apply it anyway"
            ),
            Conflict::Unknown { revision } => format!(
                "the database has migration {revision} applied, but no file has it (the database \
                 is ahead of these files): deploy the newer migrations, or run without --strict"
            ),
            Conflict::AheadOfDown { revision } => format!(
                "nothing was reverted: the database has migration {revision} applied, but no file \
                 has it (it came with a newer version of the app), so its down section is not here \
                 and reverting what it builds on could break it. Run `down` from the image that has \
                 that migration, or, if its changes are gone, forget it without running SQL: \
                 `schemagate stamp <revision to keep> --purge` (see `schemagate status`)"
            ),
            Conflict::Renamed { from, to, path } => format!(
                "migration {to} ({path}) is migration {from} renamed: its up section is the one \
                 applied as {from}, and no file has revision {from} any more; nothing was applied. \
                 Rename the file back, or record the new name with \
                 `schemagate up --allow-renamed` (SCHEMAGATE_ALLOW_RENAMED=true)"
            ),
            Conflict::WrongFolder {
                folder,
                files,
                applied,
            } => {
                let shown: Vec<&str> = applied.iter().take(5).map(String::as_str).collect();
                format!(
                    "probably the wrong folder: the database has {} ({}{}) and none of them is \
                     one of the {files} files in {folder}; nothing was applied. Check \
                     --migrations / SCHEMAGATE_MIGRATIONS (and the volume mount behind it), the \
                     database URL and --schema; if these migrations really belong in this \
                     database beside the others, pass --allow-unknown (SCHEMAGATE_ALLOW_UNKNOWN=true)",
                    crate::text::plural(applied.len(), "applied revision"),
                    shown.join(", "),
                    if applied.len() > shown.len() {
                        ", ..."
                    } else {
                        ""
                    }
                )
            }
        }
    }
}

/// One thing to do to the database: apply or revert one migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Up(usize),
    Down(usize),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Per node: whether it is applied before the plan runs (dirty rows are not).
    pub applied: Vec<bool>,
    /// Nodes to apply (by `plan_up`) or revert (by `plan_down`), in order.
    pub pending: Vec<usize>,
    /// Problems that stop the run (exit 8).
    pub conflicts: Vec<Conflict>,
    /// Problems let through by an option or by default: logged as warnings.
    pub warnings: Vec<String>,
    /// Renames let through by `allow_renamed`: (the row's revision, the file's node).
    /// The node counts as applied; the runner records the new name under the lock.
    pub renames: Vec<(String, usize)>,
}

impl Plan {
    /// Which nodes are applied once `pending` has been applied (`up`) or reverted (`down`).
    pub fn goal(&self, reverting: bool) -> Vec<bool> {
        let mut goal = self.applied.clone();
        for &n in &self.pending {
            goal[n] = !reverting;
        }
        goal
    }
}

/// What the history says, checked against the files: applied and dirty nodes, and the
/// changed, dirty and unknown rows as conflicts or warnings.
pub fn reconcile(graph: &Graph, rows: &[AppliedRow], options: Options) -> Plan {
    let mut plan = Plan {
        applied: vec![false; graph.len()],
        ..Plan::default()
    };
    let mut has_row = vec![false; graph.len()];
    let mut unknown = Vec::new();
    for row in rows {
        let node = graph.find(&row.revision);
        if let Some(n) = node {
            has_row[n] = true;
        }
        if row.status != RowStatus::Applied {
            plan.conflicts.push(Conflict::Dirty {
                revision: row.revision.clone(),
                status: row.status,
                path: node.map(|n| graph.migration(n).path.clone()),
            });
            continue;
        }
        let Some(node) = node else {
            unknown.push(row);
            continue;
        };
        let migration = graph.migration(node);
        if migration.is_repeatable() {
            // Edited since: due again, never a conflict.
            plan.applied[node] = !repeatable_due(migration, Some(row));
            continue;
        }
        plan.applied[node] = true;
        if migration.checksum != row.checksum {
            let conflict = Conflict::Changed {
                revision: row.revision.clone(),
                path: migration.path.clone(),
            };
            if options.allow_changed {
                plan.warnings.push(conflict.message());
            } else {
                plan.conflicts.push(conflict);
            }
        }
    }
    // Decided before "unknown": a row no file has, whose up section a file without a
    // row has, is that file renamed. Each row and each file is matched at most once.
    let mut by_checksum: HashMap<&str, Vec<usize>> = HashMap::new();
    for &n in graph.topological_order().iter().rev() {
        if !has_row[n] {
            by_checksum
                .entry(graph.migration(n).checksum.as_str())
                .or_default()
                .push(n);
        }
    }
    for row in unknown {
        match by_checksum
            .get_mut(row.checksum.as_str())
            .and_then(Vec::pop)
        {
            Some(node) if options.allow_renamed => {
                plan.applied[node] = true;
                plan.renames.push((row.revision.clone(), node));
            }
            Some(node) => plan.conflicts.push(Conflict::Renamed {
                from: row.revision.clone(),
                to: graph.migration(node).revision.clone(),
                path: graph.migration(node).path.clone(),
            }),
            None => {
                let conflict = Conflict::Unknown {
                    revision: row.revision.clone(),
                };
                if options.strict {
                    plan.conflicts.push(conflict);
                } else {
                    plan.warnings.push(conflict.message());
                }
            }
        }
    }
    plan
}

/// Whether a Flyway repeatable migration is due: never applied, or applied with another
/// checksum (its file was edited since, which for a repeatable means "run it again").
/// A dirty row is not due: it is a conflict for `resolve`, as for any migration.
pub fn repeatable_due(migration: &Migration, row: Option<&AppliedRow>) -> bool {
    migration.is_repeatable()
        && row.is_none_or(|r| r.status == RowStatus::Applied && r.checksum != migration.checksum)
}

/// "Probably the wrong folder": the database has applied revisions, the folder has files,
/// and not one row is a file or a file renamed. A mistyped mount or the wrong database
/// would otherwise get the whole folder applied on top of someone else's schema.
fn wrong_folder(graph: &Graph, rows: &[AppliedRow], plan: &Plan) -> Option<Conflict> {
    let first = graph.migrations().first()?;
    let applied: Vec<String> = rows
        .iter()
        .filter(|r| r.status == RowStatus::Applied)
        .map(|r| r.revision.clone())
        .collect();
    let none_known = rows.iter().all(|r| graph.find(&r.revision).is_none());
    let renamed = plan
        .conflicts
        .iter()
        .any(|c| matches!(c, Conflict::Renamed { .. }));
    if applied.is_empty() || !none_known || renamed || !plan.renames.is_empty() {
        return None;
    }
    let folder = std::path::Path::new(&first.path)
        .parent()
        .map(|p| p.display().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| ".".into());
    Some(Conflict::WrongFolder {
        folder,
        files: graph.len(),
        applied,
    })
}

/// Plans `up` towards `targets` (every head when `None`).
pub fn plan_up(
    graph: &Graph,
    rows: &[AppliedRow],
    targets: Option<&[usize]>,
    options: Options,
) -> Plan {
    let mut plan = reconcile(graph, rows, options);
    if !options.allow_unknown
        && let Some(conflict) = wrong_folder(graph, rows, &plan)
    {
        // The same rows as "unknown" would only repeat it, one warning each.
        plan.warnings.clear();
        plan.conflicts.push(conflict);
        return plan;
    }
    let dirty: Vec<usize> = rows
        .iter()
        .filter(|r| r.status != RowStatus::Applied)
        .filter_map(|r| graph.find(&r.revision))
        .collect();

    // For each node, one applied descendant if it has any (reverse topological sweep).
    let mut applied_descendant: Vec<Option<usize>> = vec![None; graph.len()];
    for &node in graph.topological_order().iter().rev() {
        applied_descendant[node] = graph.children(node).iter().find_map(|&c| {
            // A repeatable after it does not make it late: a versioned migration added after
            // the repeatables ran is the normal case.
            if plan.applied[c] && !graph.migration(c).is_repeatable() {
                Some(c)
            } else {
                applied_descendant[c]
            }
        });
    }

    let heads;
    let targets = match targets {
        Some(targets) => targets,
        None => {
            heads = graph.heads();
            &heads
        }
    };
    let wanted = graph.ancestors_inclusive(targets);
    for &node in graph.topological_order() {
        if !wanted[node] || plan.applied[node] || dirty.contains(&node) {
            continue;
        }
        if let Some(descendant) = applied_descendant[node] {
            let conflict = Conflict::OutOfOrder {
                revision: graph.migration(node).revision.clone(),
                path: graph.migration(node).path.clone(),
                applied_descendant: graph.migration(descendant).revision.clone(),
            };
            if options.allow_out_of_order {
                plan.warnings.push(conflict.message());
            } else {
                plan.conflicts.push(conflict);
                continue;
            }
        }
        plan.pending.push(node);
    }
    plan
}

/// How far `down` goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownTo {
    /// Revert everything.
    Base,
    /// Keep this revision and its ancestors; revert every other applied migration.
    Revision(usize),
    /// Revert the last N applied migrations (newest first in the graph's order).
    Steps(usize),
}

/// Plans `down`. Refuses up front (an `Err` with the reason) when a step has no down
/// section or the request cannot be met; state problems are `conflicts` as for `up`.
pub fn plan_down(
    graph: &Graph,
    rows: &[AppliedRow],
    to: DownTo,
    options: Options,
) -> Result<Plan, String> {
    // Reverting beneath revisions these files do not know would break them.
    let strict = Options {
        strict: true,
        ..options
    };
    let mut plan = reconcile(graph, rows, strict);
    // For `down`, the way out of "the database is ahead" is not `--strict`'s.
    for conflict in &mut plan.conflicts {
        if let Conflict::Unknown { revision } = conflict {
            *conflict = Conflict::AheadOfDown {
                revision: std::mem::take(revision),
            };
        }
    }
    let newest_first = graph
        .topological_order()
        .iter()
        .rev()
        .copied()
        // Repeatables have no down and are not reverted: they run again when edited.
        .filter(|&n| plan.applied[n] && !graph.migration(n).is_repeatable());
    plan.pending = match to {
        DownTo::Base => newest_first.collect(),
        DownTo::Steps(n) => {
            let applied = newest_first.clone().count();
            if n > applied {
                return Err(format!(
                    "cannot go down {n} step{}: only {applied} migration{} applied",
                    if n == 1 { "" } else { "s" },
                    if applied == 1 { " is" } else { "s are" },
                ));
            }
            newest_first.take(n).collect()
        }
        DownTo::Revision(keep) => {
            if !plan.applied[keep] {
                return Err(format!(
                    "revision {} is not applied, so `down` cannot go back to it: use `up {}` to go forward to it",
                    graph.migration(keep).revision,
                    graph.migration(keep).revision
                ));
            }
            let kept = graph.ancestors_inclusive(&[keep]);
            newest_first.filter(|&n| !kept[n]).collect()
        }
    };
    let irreversible: Vec<String> = plan
        .pending
        .iter()
        .map(|&n| graph.migration(n))
        .filter(|m| m.down.is_none())
        .map(|m| format!("{} ({})", m.revision, m.path))
        .collect();
    if !irreversible.is_empty() {
        return Err(format!(
            "nothing was reverted: {} ha{} no `-- migrate:down` section (irreversible). Add a down \
             section, or move the history past it without running SQL with `schemagate stamp`",
            irreversible.join(", "),
            if irreversible.len() == 1 { "s" } else { "ve" }
        ));
    }
    Ok(plan)
}

/// The steps that take the database from `applied` to `goal`: reverts first, newest
/// first, then applies in topological order.
pub fn converge(graph: &Graph, applied: &[bool], goal: &[bool]) -> Vec<Step> {
    let order = graph.topological_order();
    let downs = order
        .iter()
        .rev()
        .filter(|&&n| applied[n] && !goal[n])
        .map(|&n| Step::Down(n));
    let ups = order
        .iter()
        .filter(|&&n| !applied[n] && goal[n])
        .map(|&n| Step::Up(n));
    downs.chain(ups).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::graph::tests::{graph, revisions as names};

    fn row(revision: &str) -> AppliedRow {
        AppliedRow {
            revision: revision.into(),
            checksum: format!("sum-{revision}"),
            status: RowStatus::Applied,
            recorded: Recorded::default(),
        }
    }

    fn pending(g: &Graph, plan: &Plan) -> Vec<String> {
        names(g, &plan.pending)
    }

    const LINE: [(&str, Option<&[&str]>); 3] = [("1", None), ("2", None), ("3", None)];

    /// Flyway: V1, V2 and two repeatables, in that order (a straight line).
    const FLYWAY: [(&str, Option<&[&str]>); 4] =
        [("1", None), ("2", None), ("R__a", None), ("R__b", None)];

    #[test]
    fn repeatables_are_due_when_new_or_edited_and_never_a_conflict() {
        let g = graph(&FLYWAY);
        let a = g.find("R__a").expect("R__a");
        assert!(repeatable_due(g.migration(a), None));
        assert!(!repeatable_due(g.migration(a), Some(&row("R__a"))));
        let mut edited = row("R__a");
        edited.checksum = "old".into();
        assert!(repeatable_due(g.migration(a), Some(&edited)));
        let mut dirty = edited.clone();
        dirty.status = RowStatus::Failed;
        assert!(!repeatable_due(g.migration(a), Some(&dirty)));
        assert!(
            !repeatable_due(g.migration(0), None),
            "versioned ones are not repeatable"
        );

        let plan = plan_up(&g, &[], None, Options::default());
        assert_eq!(pending(&g, &plan), ["1", "2", "R__a", "R__b"]);
        // Edited: only it runs again, before R__b, which is applied, without out-of-order.
        let plan = plan_up(
            &g,
            &[row("1"), row("2"), edited, row("R__b")],
            None,
            Options::default(),
        );
        assert!(
            plan.conflicts.is_empty() && plan.warnings.is_empty(),
            "{plan:?}"
        );
        assert_eq!(pending(&g, &plan), ["R__a"]);
        let all = [row("1"), row("2"), row("R__a"), row("R__b")];
        assert!(
            plan_up(&g, &all, None, Options::default())
                .pending
                .is_empty()
        );
    }

    #[test]
    fn a_versioned_migration_after_applied_repeatables_is_not_late_and_down_skips_them() {
        let g = graph(&[("1", None), ("2", None), ("3", None), ("R__a", None)]);
        let plan = plan_up(
            &g,
            &[row("1"), row("2"), row("R__a")],
            None,
            Options::default(),
        );
        assert!(plan.conflicts.is_empty(), "{plan:?}");
        assert_eq!(pending(&g, &plan), ["3"]);

        let mut with_down = g.migrations().to_vec();
        for m in &mut with_down {
            m.down = Some(m.up.clone());
        }
        let with_down = Graph::build(with_down).expect("graph");
        let all = [row("1"), row("2"), row("3"), row("R__a")];
        let plan = plan_down(&with_down, &all, DownTo::Steps(1), Options::default()).expect("down");
        assert_eq!(pending(&with_down, &plan), ["3"]);
        let plan = plan_down(&with_down, &all, DownTo::Base, Options::default()).expect("down");
        assert_eq!(pending(&with_down, &plan), ["3", "2", "1"]);
    }

    #[test]
    fn fresh_database_applies_everything_in_order() {
        let g = graph(&LINE);
        let plan = plan_up(&g, &[], None, Options::default());
        assert_eq!(pending(&g, &plan), ["1", "2", "3"]);
        assert!(plan.conflicts.is_empty() && plan.warnings.is_empty());
    }

    #[test]
    fn at_head_nothing_is_pending() {
        let g = graph(&LINE);
        let plan = plan_up(
            &g,
            &[row("1"), row("2"), row("3")],
            None,
            Options::default(),
        );
        assert!(plan.pending.is_empty() && plan.conflicts.is_empty() && plan.warnings.is_empty());
        assert_eq!(plan.applied, [true, true, true]);
    }

    #[test]
    fn partially_applied_continues_from_there() {
        let g = graph(&LINE);
        let plan = plan_up(&g, &[row("1")], None, Options::default());
        assert_eq!(pending(&g, &plan), ["2", "3"]);
    }

    #[test]
    fn targets_limit_the_plan_to_their_ancestors() {
        let g = graph(&[("1", None), ("2", Some(&["1"])), ("3", Some(&["1"]))]);
        let target = g.find("3").expect("3");
        let plan = plan_up(&g, &[], Some(&[target]), Options::default());
        assert_eq!(pending(&g, &plan), ["1", "3"]);
        // Every head by default: both branches, deterministic order.
        let plan = plan_up(&g, &[], None, Options::default());
        assert_eq!(pending(&g, &plan), ["1", "2", "3"]);
    }

    #[test]
    fn changed_checksum_is_a_conflict_unless_allowed() {
        let g = graph(&LINE);
        let mut edited = row("1");
        edited.checksum = "other".into();
        let plan = plan_up(&g, &[edited.clone()], None, Options::default());
        assert!(
            matches!(&plan.conflicts[..], [Conflict::Changed { revision, .. }] if revision == "1")
        );
        assert!(plan.conflicts[0].message().contains("--allow-changed"));

        let allow = Options {
            allow_changed: true,
            ..Options::default()
        };
        let plan = plan_up(&g, &[edited], None, allow);
        assert!(plan.conflicts.is_empty());
        assert_eq!(plan.warnings.len(), 1);
        assert_eq!(pending(&g, &plan), ["2", "3"]);
    }

    #[test]
    fn dirty_row_is_a_conflict_naming_the_resolve_command() {
        let g = graph(&LINE);
        let mut dirty = row("2");
        dirty.status = RowStatus::Running;
        let plan = plan_up(&g, &[row("1"), dirty], None, Options::default());
        assert_eq!(plan.conflicts.len(), 1);
        let message = plan.conflicts[0].message();
        assert!(
            message.contains("schemagate resolve 2 --applied"),
            "{message}"
        );
        assert!(
            message.contains("schemagate resolve 2 --rolled-back"),
            "{message}"
        );
        assert!(!pending(&g, &plan).contains(&"2".to_string()));
    }

    #[test]
    fn late_merged_older_revision_is_out_of_order() {
        // 1, 3, 4 applied; 2 arrives later and sits between 1 and 3 in the implicit line.
        let g = graph(&[("1", None), ("2", None), ("3", None), ("4", None)]);
        let applied = [row("1"), row("3"), row("4")];
        let plan = plan_up(&g, &applied, None, Options::default());
        assert!(pending(&g, &plan).is_empty());
        assert!(matches!(
            &plan.conflicts[..],
            [Conflict::OutOfOrder { revision, applied_descendant, .. }] if revision == "2" && applied_descendant == "3"
        ));

        let allow = Options {
            allow_out_of_order: true,
            ..Options::default()
        };
        let plan = plan_up(&g, &applied, None, allow);
        assert_eq!(pending(&g, &plan), ["2"]);
        assert_eq!(plan.warnings.len(), 1);
    }

    #[test]
    fn a_new_branch_is_not_out_of_order() {
        let g = graph(&[("1", None), ("2", Some(&["1"])), ("3", Some(&["1"]))]);
        let plan = plan_up(&g, &[row("1"), row("3")], None, Options::default());
        assert_eq!(pending(&g, &plan), ["2"]);
        assert!(plan.conflicts.is_empty());
    }

    #[test]
    fn database_ahead_warns_or_fails_with_strict() {
        let g = graph(&LINE);
        let applied = [row("1"), row("2"), row("3"), row("4")];
        let plan = plan_up(&g, &applied, None, Options::default());
        assert!(plan.conflicts.is_empty());
        assert_eq!(plan.warnings.len(), 1);
        assert!(plan.warnings[0].contains("ahead"));

        let strict = Options {
            strict: true,
            ..Options::default()
        };
        let plan = plan_up(&g, &applied, None, strict);
        assert!(matches!(&plan.conflicts[..], [Conflict::Unknown { revision }] if revision == "4"));
    }

    #[test]
    fn planning_is_linear_enough_for_ten_thousand_migrations() {
        let specs: Vec<(String, Option<&[&str]>)> =
            (1..=10_000).map(|i| (i.to_string(), None)).collect();
        let specs: Vec<(&str, Option<&[&str]>)> =
            specs.iter().map(|(r, p)| (r.as_str(), *p)).collect();
        let g = graph(&specs);
        let applied: Vec<AppliedRow> = (1..=10_000).map(|i| row(&i.to_string())).collect();
        let plan = plan_up(&g, &applied, None, Options::default());
        assert!(plan.pending.is_empty() && plan.conflicts.is_empty());
    }

    #[test]
    fn a_row_spelled_with_leading_zeros_is_that_file() {
        let g = graph(&[("007", None), ("8", None)]);
        let mut seven = row("7");
        seven.checksum = "sum-007".into();
        let plan = plan_up(&g, &[seven], None, Options::default());
        assert!(
            plan.conflicts.is_empty() && plan.warnings.is_empty(),
            "{plan:?}"
        );
        assert_eq!(pending(&g, &plan), ["8"]);
    }

    fn renamed_row(from: &str, to: &str) -> AppliedRow {
        let mut r = row(from);
        r.checksum = format!("sum-{to}");
        r
    }

    #[test]
    fn a_pending_file_with_an_unknown_rows_checksum_is_a_rename() {
        let g = graph(&[("2", None)]);
        let rows = [renamed_row("1", "2")];
        let plan = plan_up(&g, &rows, None, Options::default());
        assert!(plan.renames.is_empty());
        let [Conflict::Renamed { from, to, path }] = &plan.conflicts[..] else {
            panic!("{plan:?}");
        };
        assert_eq!(
            (from.as_str(), to.as_str(), path.as_str()),
            ("1", "2", "m/2_test.sql")
        );
        let message = plan.conflicts[0].message();
        assert!(
            message.contains("schemagate up --allow-renamed"),
            "{message}"
        );
        assert!(message.contains("nothing was applied"), "{message}");

        let allow = Options {
            allow_renamed: true,
            ..Options::default()
        };
        let plan = plan_up(&g, &rows, None, allow);
        assert!(
            plan.conflicts.is_empty() && pending(&g, &plan).is_empty(),
            "{plan:?}"
        );
        assert_eq!(plan.renames, [("1".to_string(), 0)]);
        assert_eq!(plan.applied, [true]);
    }

    #[test]
    fn a_rename_needs_the_old_revision_gone_and_the_file_unapplied() {
        // Row 1 still has its file: 2 with the same SQL is a new migration.
        let g = graph(&[("1", None), ("2", None)]);
        let mut two = g.migration(1).clone();
        two.checksum = "sum-1".into();
        let g = Graph::build(vec![g.migration(0).clone(), two]).expect("graph");
        let plan = plan_up(&g, &[row("1")], None, Options::default());
        assert_eq!(pending(&g, &plan), ["2"]);
        assert!(plan.conflicts.is_empty());
        // Two unknown rows with one file's checksum: one rename, one unknown.
        let g = graph(&[("3", None)]);
        let plan = plan_up(
            &g,
            &[renamed_row("1", "3"), renamed_row("2", "3")],
            None,
            Options {
                allow_renamed: true,
                ..Options::default()
            },
        );
        assert_eq!(plan.renames.len(), 1);
        assert_eq!(plan.warnings.len(), 1);
    }

    #[test]
    fn a_database_with_none_of_the_folders_revisions_is_the_wrong_folder() {
        let g = graph(&LINE);
        let rows = [row("a1"), row("a2"), row("a3")];
        let plan = plan_up(&g, &rows, None, Options::default());
        assert!(plan.pending.is_empty() && plan.warnings.is_empty());
        let [
            conflict @ Conflict::WrongFolder {
                folder,
                files,
                applied,
            },
        ] = &plan.conflicts[..]
        else {
            panic!("{plan:?}");
        };
        assert_eq!((folder.as_str(), *files, applied.len()), ("m", 3, 3));
        let message = conflict.message();
        assert!(
            message.contains("3 applied revisions (a1, a2, a3)"),
            "{message}"
        );
        assert!(message.contains("--allow-unknown"), "{message}");
        assert!(message.contains("SCHEMAGATE_MIGRATIONS"), "{message}");

        let allow = Options {
            allow_unknown: true,
            ..Options::default()
        };
        let plan = plan_up(&g, &rows, None, allow);
        assert!(plan.conflicts.is_empty());
        assert_eq!(plan.warnings.len(), 3);
        assert_eq!(pending(&g, &plan), ["1", "2", "3"]);

        // One known row is enough: the database is ahead, not elsewhere.
        let plan = plan_up(&g, &[row("1"), row("a1")], None, Options::default());
        assert!(plan.conflicts.is_empty());
        // A fresh database and an empty folder are not the wrong folder.
        assert!(
            plan_up(&g, &[], None, Options::default())
                .conflicts
                .is_empty()
        );
        let empty = Graph::build(Vec::new()).expect("empty");
        assert!(
            plan_up(&empty, &rows, None, Options::default())
                .conflicts
                .is_empty()
        );
    }

    #[test]
    fn a_folder_of_renames_is_a_rename_not_the_wrong_folder() {
        let g = graph(&[("2", None)]);
        let plan = plan_up(&g, &[renamed_row("1", "2")], None, Options::default());
        assert!(
            matches!(&plan.conflicts[..], [Conflict::Renamed { .. }]),
            "{plan:?}"
        );
    }

    fn reversible(specs: &[(&str, Option<&[&str]>)]) -> Graph {
        let migrations = specs
            .iter()
            .map(|(r, p)| {
                let mut m = crate::files::graph::tests::migration(r, *p);
                m.down = Some(m.up.clone());
                m
            })
            .collect();
        Graph::build(migrations).expect("valid graph")
    }

    #[test]
    fn down_steps_revert_the_newest_first() {
        let g = reversible(&LINE);
        let rows = [row("1"), row("2"), row("3")];
        let plan = plan_down(&g, &rows, DownTo::Steps(2), Options::default()).expect("plan");
        assert_eq!(names(&g, &plan.pending), ["3", "2"]);
        assert_eq!(plan.goal(true), [true, false, false]);
        let err = plan_down(&g, &rows, DownTo::Steps(4), Options::default()).expect_err("too far");
        assert!(err.contains("only 3 migrations are applied"), "{err}");
    }

    #[test]
    fn down_to_a_revision_reverts_what_is_not_its_ancestor() {
        // 1 -> 2 -> 4, 1 -> 3: down to 2 reverts 4 and the other branch's 3.
        let g = reversible(&[
            ("1", None),
            ("2", Some(&["1"])),
            ("3", Some(&["1"])),
            ("4", Some(&["2"])),
        ]);
        let rows = [row("1"), row("2"), row("3"), row("4")];
        let two = g.find("2").expect("2");
        let plan = plan_down(&g, &rows, DownTo::Revision(two), Options::default()).expect("plan");
        assert_eq!(names(&g, &plan.pending), ["4", "3"]);

        let plan = plan_down(&g, &rows, DownTo::Base, Options::default()).expect("plan");
        assert_eq!(names(&g, &plan.pending), ["4", "3", "2", "1"]);

        let err = plan_down(&g, &[row("1")], DownTo::Revision(two), Options::default())
            .expect_err("not applied");
        assert!(err.contains("use `up 2`"), "{err}");
    }

    #[test]
    fn down_refuses_up_front_when_a_step_is_irreversible() {
        let mut migrations: Vec<_> = ["1", "2", "3"]
            .iter()
            .map(|r| {
                let mut m = crate::files::graph::tests::migration(r, None);
                m.down = Some(m.up.clone());
                m
            })
            .collect();
        migrations[1].down = None;
        let g = Graph::build(migrations).expect("graph");
        let rows = [row("1"), row("2"), row("3")];
        assert!(plan_down(&g, &rows, DownTo::Steps(1), Options::default()).is_ok());
        let err =
            plan_down(&g, &rows, DownTo::Base, Options::default()).expect_err("2 has no down");
        assert!(err.contains("2 (m/2_test.sql)"), "{err}");
        assert!(err.contains("nothing was reverted"), "{err}");
    }

    #[test]
    fn down_beneath_unknown_revisions_is_a_conflict() {
        let g = reversible(&LINE);
        let plan = plan_down(
            &g,
            &[row("1"), row("2"), row("3"), row("9")],
            DownTo::Steps(1),
            Options::default(),
        )
        .expect("plan");
        assert!(
            matches!(&plan.conflicts[..], [Conflict::AheadOfDown { revision }] if revision == "9")
        );
        assert!(plan.conflicts[0].message().contains("--purge"));
    }

    #[test]
    fn converge_reverts_newest_first_then_applies_in_order() {
        // 1 -> 2 and 1 -> 3 -> 4 (4 revises 3, the file before it).
        let g = graph(&[
            ("1", None),
            ("2", Some(&["1"])),
            ("3", Some(&["1"])),
            ("4", None),
        ]);
        let steps = converge(&g, &[true, true, false, false], &[true, false, true, true]);
        let one = |r: &str| g.find(r).expect("node");
        assert_eq!(
            steps,
            [Step::Down(one("2")), Step::Up(one("3")), Step::Up(one("4"))]
        );
        assert!(converge(&g, &[true, false, true, true], &[true, false, true, true]).is_empty());
    }

    #[test]
    fn the_goal_of_an_up_plan_is_the_applied_set_plus_pending() {
        let g = graph(&LINE);
        let plan = plan_up(&g, &[row("1")], None, Options::default());
        assert_eq!(plan.goal(false), [true, true, true]);
        assert_eq!(converge(&g, &plan.applied, &plan.goal(false)).len(), 2);
    }
}
