//! What `up` must do, as a pure function of the files' graph and the history rows.
//!
//! Keeping this free of I/O is what lets every reconcile rule (changed checksum, dirty
//! row, out-of-order, database ahead) be unit-tested, and lets the look phase and the
//! locked phase run the very same logic.

use crate::graph::Graph;

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

/// One row of `schemagate_history`, as far as planning cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedRow {
    pub revision: String,
    pub checksum: String,
    pub status: RowStatus,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub allow_changed: bool,
    pub allow_out_of_order: bool,
    /// Applied revisions unknown to the files are an error rather than a warning.
    pub strict: bool,
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
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Nodes to apply, in order.
    pub pending: Vec<usize>,
    /// Problems that stop the run (exit 8).
    pub conflicts: Vec<Conflict>,
    /// Problems let through by an option or by default: logged as warnings.
    pub warnings: Vec<String>,
}

/// Plans `up` towards `targets` (every head when `None`).
pub fn plan_up(
    graph: &Graph,
    applied: &[AppliedRow],
    targets: Option<&[usize]>,
    options: Options,
) -> Plan {
    let mut plan = Plan::default();
    let mut is_applied = vec![false; graph.len()];
    let mut is_dirty = vec![false; graph.len()];

    for row in applied {
        let node = graph.find(&row.revision);
        if row.status != RowStatus::Applied {
            plan.conflicts.push(Conflict::Dirty {
                revision: row.revision.clone(),
                status: row.status,
                path: node.map(|n| graph.migration(n).path.clone()),
            });
            if let Some(n) = node {
                is_dirty[n] = true;
            }
            continue;
        }
        let Some(node) = node else {
            let conflict = Conflict::Unknown {
                revision: row.revision.clone(),
            };
            if options.strict {
                plan.conflicts.push(conflict);
            } else {
                plan.warnings.push(conflict.message());
            }
            continue;
        };
        is_applied[node] = true;
        let migration = graph.migration(node);
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

    // For each node, one applied descendant if it has any (reverse topological sweep).
    let mut applied_descendant: Vec<Option<usize>> = vec![None; graph.len()];
    for &node in graph.topological_order().iter().rev() {
        applied_descendant[node] = graph.children(node).iter().find_map(|&c| {
            if is_applied[c] {
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
        if !wanted[node] || is_applied[node] || is_dirty[node] {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::graph;

    fn row(revision: &str) -> AppliedRow {
        AppliedRow {
            revision: revision.into(),
            checksum: format!("sum-{revision}"),
            status: RowStatus::Applied,
        }
    }

    fn pending(g: &Graph, plan: &Plan) -> Vec<String> {
        plan.pending
            .iter()
            .map(|&n| g.migration(n).revision.clone())
            .collect()
    }

    const LINE: [(&str, Option<&[&str]>); 3] = [("1", None), ("2", None), ("3", None)];

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
        assert_eq!(plan, Plan::default());
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
}
