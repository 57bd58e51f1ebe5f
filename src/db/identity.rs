//! Making the history spell each revision as its file does, under the lock.
//!
//! A revision's identity is `migration::revision_key`, so a row `7` already counts as the
//! file `007`. But statements that target a row (down's DELETE, resolve, stamp) name it
//! by its text, and the primary key compares text: so the runner that holds the lock
//! rewrites the row to the file's spelling first, once, with an event. A rename allowed
//! by `--allow-renamed` is recorded the same way, taking the file's description too.

use crate::db::history::{self, Tables, quote_literal};
use crate::db::session::Session;
use crate::error::Result;
use crate::files::graph::Graph;
use crate::plan::reconcile::{self, AppliedRow, Options};

/// One history row to re-key: from the row's revision to the file's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rekey {
    pub from: String,
    pub node: usize,
    /// A rename (another id, same up section), not just another spelling of the same id.
    pub renamed: bool,
}

/// What the history needs rewritten before anything targets its rows.
pub fn rekeys(graph: &Graph, rows: &[AppliedRow], options: Options) -> Vec<Rekey> {
    let spelled = |revision: &str| rows.iter().any(|r| r.revision == revision);
    let mut rekeys: Vec<Rekey> = rows
        .iter()
        .filter_map(|row| {
            let node = graph.find(&row.revision)?;
            let file = &graph.migration(node).revision;
            // Two rows of one identity: leave both; the primary key would refuse.
            (*file != row.revision && !spelled(file)).then(|| Rekey {
                from: row.revision.clone(),
                node,
                renamed: false,
            })
        })
        .collect();
    if options.allow_renamed {
        let renames = reconcile::reconcile(graph, rows, options).renames;
        rekeys.extend(renames.into_iter().map(|(from, node)| Rekey {
            from,
            node,
            renamed: true,
        }));
    }
    rekeys
}

/// Rewrites what `rekeys` finds, in one transaction, and returns the history read again.
/// Call only while holding the lock.
pub async fn record(
    session: &Session,
    tables: &Tables,
    graph: &Graph,
    rows: Vec<AppliedRow>,
    options: Options,
) -> Result<Vec<AppliedRow>> {
    let rekeys = rekeys(graph, &rows, options);
    if rekeys.is_empty() {
        return Ok(rows);
    }
    let mut sql = String::from("BEGIN;\n");
    for rekey in &rekeys {
        let m = graph.migration(rekey.node);
        let description = if rekey.renamed {
            format!(", description = {}", quote_literal(&m.description))
        } else {
            String::new()
        };
        sql += &format!(
            "UPDATE {} SET revision = {}{description} WHERE revision = {};\n",
            tables.history,
            quote_literal(&m.revision),
            quote_literal(&rekey.from)
        );
        let action = if rekey.renamed {
            "renamed"
        } else {
            "respelled"
        };
        let detail = format!("from {}", rekey.from);
        sql += &history::event(tables, action, &m.revision, "ok", Some(&detail));
    }
    sql.push_str("COMMIT;\n");
    session.execute(&sql).await?;
    for rekey in &rekeys {
        let m = graph.migration(rekey.node);
        if rekey.renamed {
            tracing::info!(
                "recorded migration {} as renamed to {} ({}); it is not run again",
                rekey.from,
                m.revision,
                m.path
            );
        } else {
            tracing::info!(
                "the history now spells revision {} as its file does: {} ({})",
                rekey.from,
                m.revision,
                m.path
            );
        }
    }
    Ok(history::read(session, tables).await?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::graph::tests::graph;
    use crate::plan::reconcile::{Recorded, RowStatus};

    fn row(revision: &str, checksum: &str) -> AppliedRow {
        AppliedRow {
            revision: revision.into(),
            checksum: checksum.into(),
            status: RowStatus::Applied,
            recorded: Recorded::default(),
        }
    }

    #[test]
    fn other_spellings_and_allowed_renames_are_rekeyed() {
        let g = graph(&[("007", None), ("8", None), ("9", None)]);
        let rows = [row("7", "sum-007"), row("8", "sum-8"), row("1", "sum-9")];
        let found = rekeys(&g, &rows, Options::default());
        assert_eq!(
            found,
            [Rekey {
                from: "7".into(),
                node: 0,
                renamed: false
            }]
        );
        let allow = Options {
            allow_renamed: true,
            ..Options::default()
        };
        let found = rekeys(&g, &rows, allow);
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[1],
            Rekey {
                from: "1".into(),
                node: 2,
                renamed: true
            }
        );
        // Both spellings present: the key would collide, nothing is rewritten.
        let rows = [row("7", "sum-007"), row("007", "sum-007")];
        assert!(rekeys(&g, &rows, Options::default()).is_empty());
    }
}
