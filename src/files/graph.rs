//! The revision graph: who revises whom, heads, branch and merge points, and one
//! deterministic topological order.
//!
//! A file without `-- migrate:revises` revises the file before it in revision order, so a
//! plain numbered folder is a straight line with no headers. Everything here is linear or
//! `n log n` in the number of migrations: a no-op run at 10 000 migrations must stay cheap.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use crate::error::FileProblem;
use crate::files::migration::{Migration, compare_revisions, revision_key};

#[derive(Debug)]
pub struct Graph {
    /// Sorted by revision order; a node is its index here.
    migrations: Vec<Migration>,
    /// By `revision_key`: `7` finds the file `007`.
    index: HashMap<String, usize>,
    parents: Vec<Vec<usize>>,
    children: Vec<Vec<usize>>,
    /// Parents before children, ties broken by revision order.
    topological: Vec<usize>,
}

impl Graph {
    pub fn build(mut migrations: Vec<Migration>) -> Result<Graph, Vec<FileProblem>> {
        migrations.sort_by(|a, b| {
            compare_revisions(&a.revision, &b.revision).then_with(|| a.path.cmp(&b.path))
        });
        let mut problems = Vec::new();
        let mut index = HashMap::with_capacity(migrations.len());
        for (i, m) in migrations.iter().enumerate() {
            let duplicate_of =
                if i > 0 && compare_revisions(&migrations[i - 1].revision, &m.revision).is_eq() {
                    Some(&migrations[i - 1])
                } else {
                    None
                };
            if let Some(first) = duplicate_of {
                problems.push(FileProblem::new(
                    &m.path,
                    None,
                    format!(
                        "duplicate revision {}: {} already has it; give one of them a new revision id",
                        m.revision, first.path
                    ),
                ));
            } else {
                index.insert(revision_key(&m.revision), i);
            }
        }

        let mut parents = vec![Vec::new(); migrations.len()];
        let mut children = vec![Vec::new(); migrations.len()];
        for (i, m) in migrations.iter().enumerate() {
            let named: Vec<usize> = match &m.revises {
                None if i == 0 => Vec::new(),
                None => vec![i - 1],
                Some(revises) => revises
                    .iter()
                    .filter_map(|parent| match index.get(&revision_key(parent)) {
                        Some(&p) => Some(p),
                        None => {
                            problems.push(FileProblem::new(
                                &m.path,
                                m.revises_line,
                                format!(
                                    "revises {parent}, but no migration file has that revision"
                                ),
                            ));
                            None
                        }
                    })
                    .collect(),
            };
            for &p in &named {
                if !children[p].contains(&i) {
                    children[p].push(i);
                }
            }
            parents[i] = named;
        }

        let topological = topological_order(&parents, &children);
        if topological.len() < migrations.len() {
            let mut in_order = vec![false; migrations.len()];
            for &i in &topological {
                in_order[i] = true;
            }
            for (i, m) in migrations.iter().enumerate() {
                if !in_order[i] {
                    problems.push(FileProblem::new(
                        &m.path,
                        m.revises_line,
                        format!(
                            "revision {} is in, or descends from, a cycle of `-- migrate:revises` (a revision that is its own ancestor)",
                            m.revision
                        ),
                    ));
                }
            }
        }

        if problems.is_empty() {
            Ok(Graph {
                migrations,
                index,
                parents,
                children,
                topological,
            })
        } else {
            Err(problems)
        }
    }

    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// Drafts (an empty up section, as `new` writes them): the gates refuse to run with any.
    pub fn unfinished(&self) -> Vec<FileProblem> {
        self.migrations
            .iter()
            .filter(|m| m.unfinished)
            .map(crate::files::migration::unfinished_problem)
            .collect()
    }

    pub fn migration(&self, node: usize) -> &Migration {
        &self.migrations[node]
    }

    pub fn len(&self) -> usize {
        self.migrations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.migrations.is_empty()
    }

    /// The node of a revision, by identity: `7` and `007` are one revision.
    pub fn find(&self, revision: &str) -> Option<usize> {
        self.index.get(&revision_key(revision)).copied()
    }

    pub fn parents(&self, node: usize) -> &[usize] {
        &self.parents[node]
    }

    pub fn children(&self, node: usize) -> &[usize] {
        &self.children[node]
    }

    /// Nodes nothing revises, in revision order.
    pub fn heads(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.children[i].is_empty())
            .collect()
    }

    pub fn is_branch_point(&self, node: usize) -> bool {
        self.children[node].len() > 1
    }

    pub fn is_merge_point(&self, node: usize) -> bool {
        self.parents[node].len() > 1
    }

    /// Every node, parents before children, ties broken by revision order.
    pub fn topological_order(&self) -> &[usize] {
        &self.topological
    }

    /// Marks the targets and all their ancestors.
    pub fn ancestors_inclusive(&self, targets: &[usize]) -> Vec<bool> {
        let mut marked = vec![false; self.len()];
        let mut stack: Vec<usize> = targets.to_vec();
        while let Some(node) = stack.pop() {
            if !std::mem::replace(&mut marked[node], true) {
                stack.extend(&self.parents[node]);
            }
        }
        marked
    }
}

/// Kahn's algorithm with a min-heap, so the order is deterministic.
fn topological_order(parents: &[Vec<usize>], children: &[Vec<usize>]) -> Vec<usize> {
    let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
    let mut ready: BinaryHeap<Reverse<usize>> = waiting
        .iter()
        .enumerate()
        .filter(|&(_, &n)| n == 0)
        .map(|(i, _)| Reverse(i))
        .collect();
    let mut order = Vec::with_capacity(parents.len());
    while let Some(Reverse(node)) = ready.pop() {
        order.push(node);
        for &child in &children[node] {
            waiting[child] -= 1;
            if waiting[child] == 0 {
                ready.push(Reverse(child));
            }
        }
    }
    order
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::files::migration::Section;

    pub(crate) fn migration(revision: &str, revises: Option<&[&str]>) -> Migration {
        Migration {
            revision: revision.into(),
            description: "test".into(),
            path: format!("m/{revision}_test.sql"),
            revises: revises.map(|r| r.iter().map(|s| s.to_string()).collect()),
            revises_line: revises.map(|_| 1),
            up: Section {
                sql: format!("SELECT {revision:?};"),
                first_line: 2,
                transactional: true,
            },
            down: None,
            checksum: format!("sum-{revision}"),
            unfinished: false,
        }
    }

    pub(crate) fn graph(specs: &[(&str, Option<&[&str]>)]) -> Graph {
        Graph::build(specs.iter().map(|(r, p)| migration(r, *p)).collect()).expect("valid graph")
    }

    pub(crate) fn revisions(g: &Graph, nodes: &[usize]) -> Vec<String> {
        nodes
            .iter()
            .map(|&n| g.migration(n).revision.clone())
            .collect()
    }

    #[test]
    fn plain_folder_is_a_line_in_numeric_order() {
        let g = graph(&[("10", None), ("9", None), ("1", None)]);
        assert_eq!(revisions(&g, g.topological_order()), ["1", "9", "10"]);
        assert_eq!(revisions(&g, &g.heads()), ["10"]);
        assert_eq!(
            g.parents(g.find("10").expect("10")),
            [g.find("9").expect("9")]
        );
    }

    #[test]
    fn branches_merges_and_deterministic_order() {
        let g = graph(&[
            ("1", None),
            ("2", Some(&["1"])),
            ("3", Some(&["1"])),
            ("4", Some(&["3", "2"])),
            ("5", Some(&["1"])),
        ]);
        let one = g.find("1").expect("1");
        assert!(g.is_branch_point(one));
        assert!(g.is_merge_point(g.find("4").expect("4")));
        assert_eq!(revisions(&g, &g.heads()), ["4", "5"]);
        assert_eq!(
            revisions(&g, g.topological_order()),
            ["1", "2", "3", "4", "5"]
        );
    }

    #[test]
    fn topological_order_puts_parents_first_even_with_older_ids() {
        // "a" revises "b" although it sorts first.
        let g = graph(&[("1", None), ("b", Some(&["1"])), ("a", Some(&["b"]))]);
        assert_eq!(revisions(&g, g.topological_order()), ["1", "b", "a"]);
    }

    #[test]
    fn ancestors_inclusive_follows_every_parent() {
        let g = graph(&[
            ("1", None),
            ("2", Some(&["1"])),
            ("3", Some(&["1"])),
            ("4", Some(&["2"])),
        ]);
        let marked = g.ancestors_inclusive(&[g.find("4").expect("4")]);
        let names: Vec<_> = (0..g.len())
            .filter(|&i| marked[i])
            .map(|i| g.migration(i).revision.clone())
            .collect();
        assert_eq!(names, ["1", "2", "4"]);
    }

    #[test]
    fn duplicates_missing_parents_and_cycles_are_reported() {
        let problems = Graph::build(vec![migration("1", None), migration("001", None)])
            .expect_err("duplicate");
        assert!(
            problems[0].message.contains("duplicate revision"),
            "{problems:?}"
        );

        let problems = Graph::build(vec![migration("1", None), migration("2", Some(&["9"]))])
            .expect_err("missing parent");
        assert!(
            problems[0]
                .message
                .contains("revises 9, but no migration file")
        );
        assert_eq!(problems[0].line, Some(1));

        let problems = Graph::build(vec![
            migration("1", Some(&["2"])),
            migration("2", Some(&["1"])),
            migration("3", None),
        ])
        .expect_err("cycle");
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems.iter().all(|p| p.message.contains("cycle")));
    }

    #[test]
    fn an_explicit_root_revises_nothing_whatever_sorts_before_it() {
        // Alembic's random ids: "c0ffee" is the root although "1a2b" sorts first.
        let g = graph(&[("c0ffee", Some(&[])), ("1a2b", Some(&["c0ffee"]))]);
        assert_eq!(revisions(&g, g.topological_order()), ["c0ffee", "1a2b"]);
        assert!(g.parents(g.find("c0ffee").expect("root")).is_empty());
    }

    #[test]
    fn find_compares_identities_not_spellings() {
        let g = graph(&[("007", None), ("a0b", None), ("ab", None)]);
        assert_eq!(g.find("7"), g.find("007"));
        assert_eq!(g.find("0007"), g.find("007"));
        assert!(g.find("7").is_some());
        assert_ne!(g.find("a0b"), g.find("ab"));
        assert_eq!(g.find("a00b"), g.find("a0b"));
        let g = graph(&[("1", None), ("2", Some(&["001"]))]);
        assert_eq!(
            g.parents(g.find("2").expect("2")),
            [g.find("1").expect("1")]
        );
    }

    #[test]
    fn revision_keys() {
        for (id, key) in [
            ("007", "7"),
            ("0", "0"),
            ("000", "0"),
            ("a0b", "a0b"),
            ("a00b", "a0b"),
            ("ab", "ab"),
            ("v010x02", "v10x2"),
            ("20251215093000", "20251215093000"),
        ] {
            assert_eq!(revision_key(id), key, "{id}");
        }
    }

    proptest::proptest! {
        /// The key is the identity `compare_revisions` defines, exactly.
        #[test]
        fn key_equality_is_compare_equality(a in "[0ab1]{0,6}", b in "[0ab1]{0,6}") {
            proptest::prop_assert_eq!(
                revision_key(&a) == revision_key(&b),
                compare_revisions(&a, &b).is_eq(),
                "{} vs {}", a, b
            );
        }

        #[test]
        fn key_equality_is_compare_equality_on_any_id(a in "[0-9A-Za-z]{1,12}", b in "[0-9A-Za-z]{1,12}") {
            proptest::prop_assert_eq!(revision_key(&a) == revision_key(&b), compare_revisions(&a, &b).is_eq());
            proptest::prop_assert!(compare_revisions(&a, &revision_key(&a)).is_eq());
        }
    }

    #[test]
    fn empty_folder_is_an_empty_graph() {
        let g = Graph::build(Vec::new()).expect("empty");
        assert!(g.is_empty());
        assert!(g.heads().is_empty());
    }
}
