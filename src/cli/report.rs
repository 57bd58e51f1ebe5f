//! What the read-only commands print on stdout (`status`, `current`, `history`, `heads`,
//! `--dry-run`): pure functions of the files' graph and the history rows, so every format
//! is unit-tested and the commands only fetch and print.

use serde_json::{Value, json};

use crate::files::graph::Graph;
use crate::files::migration::same_revision;
use crate::plan::reconcile::{AppliedRow, RowStatus, Step};

/// Where one migration stands, as `status` says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Applied,
    Pending,
    /// Pending, and its up section is still empty (a draft `new` wrote).
    Unfinished,
    /// Applied, but its file was edited since (checksum differs).
    Changed,
    /// A `transaction:false` migration that did not finish (`running` or `failed`).
    Dirty,
    /// Applied, but no file has it (the database is ahead of these files).
    Unknown,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Applied => "applied",
            State::Pending => "pending",
            State::Unfinished => "unfinished",
            State::Changed => "changed",
            State::Dirty => "dirty",
            State::Unknown => "unknown",
        }
    }
}

/// One line of `status`: a migration of the files or a row no file has.
pub struct Entry<'a> {
    pub node: Option<usize>,
    pub revision: &'a str,
    pub state: State,
    pub row: Option<&'a AppliedRow>,
}

/// Every migration in topological order (oldest first), then the rows no file has.
pub fn entries<'a>(graph: &'a Graph, rows: &'a [AppliedRow]) -> Vec<Entry<'a>> {
    let mut by_node: Vec<Option<&AppliedRow>> = vec![None; graph.len()];
    let mut unknown = Vec::new();
    for row in rows {
        match graph.find(&row.revision) {
            Some(n) => by_node[n] = Some(row),
            None => unknown.push(row),
        }
    }
    let mut entries: Vec<Entry> = graph
        .topological_order()
        .iter()
        .map(|&n| {
            let m = graph.migration(n);
            let row = by_node[n];
            let state = match row {
                None if m.unfinished => State::Unfinished,
                None => State::Pending,
                Some(r) if r.status != RowStatus::Applied => State::Dirty,
                // A Flyway repeatable edited since it ran is due again, not in conflict.
                Some(r) if r.checksum != m.checksum && m.is_repeatable() => State::Pending,
                Some(r) if r.checksum != m.checksum => State::Changed,
                Some(_) => State::Applied,
            };
            Entry {
                node: Some(n),
                revision: &m.revision,
                state,
                row,
            }
        })
        .collect();
    entries.extend(unknown.into_iter().map(|row| Entry {
        node: None,
        revision: &row.revision,
        state: if row.status == RowStatus::Applied {
            State::Unknown
        } else {
            State::Dirty
        },
        row: Some(row),
    }));
    entries
}

/// The applied revisions that no applied revision revises (Alembic's "current"), and the
/// applied revisions no file has.
pub fn current(graph: &Graph, rows: &[AppliedRow]) -> (Vec<usize>, Vec<String>) {
    let mut applied = vec![false; graph.len()];
    let mut unknown = Vec::new();
    for row in rows.iter().filter(|r| r.status == RowStatus::Applied) {
        match graph.find(&row.revision) {
            Some(n) => applied[n] = true,
            None => unknown.push(row.revision.clone()),
        }
    }
    let tips = (0..graph.len())
        .filter(|&n| applied[n] && !graph.children(n).iter().any(|&c| applied[c]))
        .collect();
    (tips, unknown)
}

/// "3 (head)", "2, 5 (heads)", "base (nothing applied)": for summary lines.
pub fn standing(graph: &Graph, rows: &[AppliedRow]) -> String {
    let (tips, unknown) = current(graph, rows);
    if tips.is_empty() && unknown.is_empty() {
        return "base (nothing applied)".into();
    }
    let mut parts: Vec<String> = tips
        .iter()
        .map(|&n| graph.migration(n).revision.clone())
        .collect();
    if !unknown.is_empty() {
        parts.push(format!("{} (unknown to these files)", unknown.join(", ")));
    }
    let mut text = parts.join(", ");
    if !tips.is_empty() && tips == graph.heads() && unknown.is_empty() {
        text.push_str(if tips.len() == 1 {
            " (head)"
        } else {
            " (heads)"
        });
    }
    text
}

/// The `status` table.
pub fn status_text(graph: &Graph, rows: &[AppliedRow], database: &str) -> String {
    let entries = entries(graph, rows);
    let width = entries
        .iter()
        .map(|e| e.revision.len())
        .max()
        .unwrap_or(0)
        .max("REVISION".len());
    let mut out = format!(
        "{:<8}  {:<width$}  {:<19}  DESCRIPTION\n",
        "STATE", "REVISION", "APPLIED AT (UTC)"
    );
    for e in &entries {
        let applied_at = e
            .row
            .map(|r| r.recorded.applied_at.as_str())
            .filter(|t| !t.is_empty())
            .unwrap_or("-");
        let description = match e.node {
            Some(n) => graph.migration(n).description.as_str(),
            None => "(no file has this revision)",
        };
        out.push_str(&format!(
            "{:<8}  {:<width$}  {:<19}  {description}\n",
            e.state.as_str(),
            e.revision,
            applied_at
        ));
    }
    let mut counts: Vec<String> = Vec::new();
    for state in [
        State::Applied,
        State::Pending,
        State::Unfinished,
        State::Changed,
        State::Dirty,
        State::Unknown,
    ] {
        let n = entries.iter().filter(|e| e.state == state).count();
        if n > 0 {
            counts.push(format!("{n} {}", state.as_str()));
        }
    }
    if counts.is_empty() {
        counts.push("no migrations".into());
    }
    out.push_str(&format!(
        "\n{}; {database} at {}\n",
        counts.join(", "),
        standing(graph, rows)
    ));
    out
}

/// `status --format json`: one object, stable keys.
pub fn status_json(graph: &Graph, rows: &[AppliedRow], database: &str, schema: &str) -> Value {
    let entries = entries(graph, rows);
    let (tips, unknown) = current(graph, rows);
    let heads = graph.heads();
    let count = |state: State| entries.iter().filter(|e| e.state == state).count();
    let migrations: Vec<Value> = entries
        .iter()
        .map(|e| {
            let m = e.node.map(|n| graph.migration(n));
            json!({
                "revision": e.revision,
                "state": e.state.as_str(),
                "description": m.map(|m| m.description.as_str()),
                "file": m.map(|m| m.path.as_str()),
                "parents": e.node.map(|n| revisions(graph, graph.parents(n))),
                "reversible": m.map(|m| m.down.is_some()),
                "transactional": m.map(|m| m.up.transactional),
                "status": e.row.map(|r| r.status.as_str()),
                "applied_at": e.row.map(|r| format!("{}Z", r.recorded.applied_at.replacen(' ', "T", 1))),
                "method": e.row.map(|r| r.recorded.method.as_str()),
                "execution_ms": e.row.map(|r| r.recorded.execution_ms),
                "applied_by": e.row.map(|r| r.recorded.applied_by.as_str()),
            })
        })
        .collect();
    let mut current_revisions = revisions(graph, &tips);
    current_revisions.extend(unknown);
    json!({
        "database": database,
        "schema": schema,
        "heads": revisions(graph, &heads),
        "current": current_revisions,
        "at_head": !tips.is_empty() && tips == heads && count(State::Unknown) == 0
            && count(State::Pending) == 0 && count(State::Unfinished) == 0,
        "counts": {
            "applied": count(State::Applied),
            "pending": count(State::Pending),
            "unfinished": count(State::Unfinished),
            "changed": count(State::Changed),
            "dirty": count(State::Dirty),
            "unknown": count(State::Unknown),
        },
        "migrations": migrations,
    })
}

fn revisions(graph: &Graph, nodes: &[usize]) -> Vec<String> {
    nodes
        .iter()
        .map(|&n| graph.migration(n).revision.clone())
        .collect()
}

/// Alembic's marks after a revision: ` (head)`, ` (branchpoint)`, ` (mergepoint)`,
/// ` (current)` when it is one of the database's current revisions, and ` (unfinished)`
/// for a draft.
fn marks(graph: &Graph, node: usize, current: &[usize]) -> String {
    let mut marks = String::new();
    if graph.children(node).is_empty() {
        marks.push_str(" (head)");
    }
    if graph.is_branch_point(node) {
        marks.push_str(" (branchpoint)");
    }
    if graph.is_merge_point(node) {
        marks.push_str(" (mergepoint)");
    }
    if current.contains(&node) {
        marks.push_str(" (current)");
    }
    if graph.migration(node).unfinished {
        marks.push_str(" (unfinished: its up section is empty)");
    }
    marks
}

fn parents_text(graph: &Graph, node: usize) -> String {
    match graph.parents(node) {
        [] => "<base>".into(),
        [one] => graph.migration(*one).revision.clone(),
        many => format!("({})", revisions(graph, many).join(", ")),
    }
}

/// `history`: newest first, Alembic's `parent -> revision (marks), description`, with each
/// line's state in front when the database was read (`rows` is `Some`).
pub fn history(graph: &Graph, rows: Option<&[AppliedRow]>, verbose: bool) -> String {
    let states: Option<Vec<Entry>> = rows.map(|rows| entries(graph, rows));
    let current = rows.map(|r| current(graph, r).0).unwrap_or_default();
    let state_of = |node: usize| {
        states.as_ref().and_then(|entries| {
            entries
                .iter()
                .find(|e| e.node == Some(node))
                .map(|e| (e.state, e.row))
        })
    };
    let mut out = String::new();
    if let Some(entries) = &states {
        for e in entries.iter().filter(|e| e.node.is_none()) {
            out.push_str(&format!(
                "{:<8} ? -> {} (not in these files)\n",
                e.state.as_str(),
                e.revision
            ));
        }
    }
    for &node in graph.topological_order().iter().rev() {
        let m = graph.migration(node);
        let state = state_of(node);
        if verbose {
            out.push_str(&format!(
                "Rev: {}{}\nParent: {}\nPath: {}\nUp: {}; down: {}\n",
                m.revision,
                marks(graph, node, &current),
                parents_text(graph, node),
                m.path,
                if m.up.transactional {
                    "in a transaction"
                } else {
                    "transaction:false"
                },
                match &m.down {
                    None => "none (irreversible)",
                    Some(d) if d.transactional => "in a transaction",
                    Some(_) => "transaction:false",
                }
            ));
            if let Some((state, row)) = state {
                out.push_str(&format!("State: {}", state.as_str()));
                if let Some(r) = row {
                    out.push_str(&format!(
                        " ({} {} UTC by {} in {} ms)",
                        r.recorded.method,
                        r.recorded.applied_at,
                        r.recorded.applied_by,
                        r.recorded.execution_ms
                    ));
                }
                out.push('\n');
            }
            out.push_str(&format!("\n    {}\n\n", m.description));
        } else {
            if let Some((state, _)) = state {
                out.push_str(&format!("{:<8} ", state.as_str()));
            }
            out.push_str(&format!(
                "{} -> {}{}, {}\n",
                parents_text(graph, node),
                m.revision,
                marks(graph, node, &current),
                m.description
            ));
        }
    }
    out
}

/// `heads`: each head of the files, Alembic's way.
pub fn heads(graph: &Graph, verbose: bool) -> String {
    graph
        .heads()
        .iter()
        .map(|&n| {
            let m = graph.migration(n);
            let mut line = format!("{}{}, {}", m.revision, marks(graph, n, &[]), m.description);
            if verbose {
                line.push_str(&format!(
                    "\n    parent: {}\n    path: {}",
                    parents_text(graph, n),
                    m.path
                ));
            }
            line + "\n"
        })
        .collect()
}

/// `current`: the database's current revisions, one a line; nothing for base.
pub fn current_text(graph: &Graph, rows: &[AppliedRow], verbose: bool) -> String {
    let (tips, unknown) = current(graph, rows);
    let mut out = String::new();
    for &n in &tips {
        let m = graph.migration(n);
        out.push_str(&format!(
            "{}{}, {}\n",
            m.revision,
            if graph.children(n).is_empty() {
                " (head)"
            } else {
                ""
            },
            m.description
        ));
        if verbose
            && let Some(row) = rows
                .iter()
                .find(|r| same_revision(&r.revision, &m.revision))
        {
            out.push_str(&format!(
                "    {} {} UTC by {}; file {}\n",
                row.recorded.method, row.recorded.applied_at, row.recorded.applied_by, m.path
            ));
        }
    }
    for revision in unknown {
        out.push_str(&format!("{revision} (unknown to these files)\n"));
    }
    out
}

/// `--dry-run`: what would run, one step a line.
pub fn dry_run(graph: &Graph, steps: &[Step]) -> String {
    if steps.is_empty() {
        return "nothing to do\n".into();
    }
    steps
        .iter()
        .map(|&step| {
            let (verb, n) = match step {
                Step::Up(n) => ("apply", n),
                Step::Down(n) => ("revert", n),
            };
            let m = graph.migration(n);
            format!(
                "would {verb} {} {} ({})\n",
                m.revision, m.description, m.path
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::graph::tests::graph;
    use crate::plan::reconcile::Recorded;

    fn row(revision: &str, checksum: &str, status: RowStatus) -> AppliedRow {
        AppliedRow {
            revision: revision.into(),
            checksum: checksum.into(),
            status,
            recorded: Recorded {
                applied_at: "2026-01-02 03:04:05".into(),
                method: "applied".into(),
                execution_ms: 7,
                applied_by: "pod-1".into(),
            },
        }
    }

    /// 1 -> 2 -> 4 (merge of 2 and 3), 1 -> 3.
    fn diamond() -> Graph {
        graph(&[
            ("1", None),
            ("2", Some(&["1"])),
            ("3", Some(&["1"])),
            ("4", Some(&["2", "3"])),
        ])
    }

    #[test]
    fn every_state_is_told_apart() {
        let g = diamond();
        let rows = [
            row("1", "sum-1", RowStatus::Applied),
            row("2", "edited", RowStatus::Applied),
            row("3", "sum-3", RowStatus::Running),
            row("9", "sum-9", RowStatus::Applied),
        ];
        let states: Vec<(String, &str)> = entries(&g, &rows)
            .iter()
            .map(|e| (e.revision.to_string(), e.state.as_str()))
            .collect();
        assert_eq!(
            states,
            [
                ("1".to_string(), "applied"),
                ("2".to_string(), "changed"),
                ("3".to_string(), "dirty"),
                ("4".to_string(), "pending"),
                ("9".to_string(), "unknown"),
            ]
        );
        let text = status_text(&g, &rows, "app@db:5432/app");
        assert!(
            text.starts_with("STATE     REVISION  APPLIED AT (UTC)     DESCRIPTION\n"),
            "{text}"
        );
        assert!(
            text.contains("changed   2         2026-01-02 03:04:05  test\n"),
            "{text}"
        );
        assert!(
            text.contains("pending   4         -                    test\n"),
            "{text}"
        );
        assert!(text.contains("1 applied, 1 pending, 1 changed, 1 dirty, 1 unknown; app@db:5432/app at 2, 9 (unknown to these files)"), "{text}");
    }

    #[test]
    fn json_status_has_stable_keys() {
        let g = diamond();
        let rows = [row("1", "sum-1", RowStatus::Applied)];
        let v = status_json(&g, &rows, "db", "public");
        assert_eq!(v["heads"], json!(["4"]));
        assert_eq!(v["current"], json!(["1"]));
        assert_eq!(v["at_head"], json!(false));
        assert_eq!(v["counts"]["pending"], json!(3));
        assert_eq!(v["migrations"][0]["state"], json!("applied"));
        assert_eq!(
            v["migrations"][0]["applied_at"],
            json!("2026-01-02T03:04:05Z")
        );
        assert_eq!(v["migrations"][3]["parents"], json!(["2", "3"]));
        assert_eq!(v["migrations"][3]["applied_at"], Value::Null);
    }

    #[test]
    fn history_marks_heads_branch_and_merge_points_and_current() {
        let g = diamond();
        let offline = history(&g, None, false);
        assert_eq!(
            offline,
            "(2, 3) -> 4 (head) (mergepoint), test\n\
             1 -> 3, test\n\
             1 -> 2, test\n\
             <base> -> 1 (branchpoint), test\n"
        );
        let rows = [
            row("1", "sum-1", RowStatus::Applied),
            row("2", "sum-2", RowStatus::Applied),
        ];
        let online = history(&g, Some(&rows), false);
        assert!(
            online.starts_with("pending  (2, 3) -> 4 (head) (mergepoint), test\n"),
            "{online}"
        );
        assert!(
            online.contains("applied  1 -> 2 (current), test\n"),
            "{online}"
        );
        let verbose = history(&g, Some(&rows), true);
        assert!(
            verbose.contains("Rev: 2 (current)\nParent: 1\nPath: m/2_test.sql\n"),
            "{verbose}"
        );
        assert!(
            verbose.contains("State: applied (applied 2026-01-02 03:04:05 UTC by pod-1 in 7 ms)"),
            "{verbose}"
        );
    }

    #[test]
    fn current_and_standing() {
        let g = diamond();
        assert_eq!(standing(&g, &[]), "base (nothing applied)");
        assert_eq!(current_text(&g, &[], false), "");
        let all: Vec<AppliedRow> = ["1", "2", "3", "4"]
            .iter()
            .map(|r| row(r, &format!("sum-{r}"), RowStatus::Applied))
            .collect();
        assert_eq!(standing(&g, &all), "4 (head)");
        assert_eq!(current_text(&g, &all, false), "4 (head), test\n");
        let branches = [
            row("1", "sum-1", RowStatus::Applied),
            row("2", "sum-2", RowStatus::Applied),
            row("3", "sum-3", RowStatus::Applied),
        ];
        assert_eq!(standing(&g, &branches), "2, 3");
        assert_eq!(heads(&g, false), "4 (head) (mergepoint), test\n");
    }

    #[test]
    fn dry_run_lists_steps() {
        let g = diamond();
        assert_eq!(dry_run(&g, &[]), "nothing to do\n");
        assert_eq!(
            dry_run(&g, &[Step::Down(3), Step::Up(3)]),
            "would revert 4 test (m/4_test.sql)\nwould apply 4 test (m/4_test.sql)\n"
        );
    }
}
