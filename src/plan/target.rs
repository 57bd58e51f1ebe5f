//! Naming revisions on the command line the way Alembic users type them: a full revision
//! or an unambiguous prefix of one, `head`/`heads`, `base`, `+N`, `-N`, and `FROM:TO`
//! ranges for offline SQL.
//!
//! Every mistake is a usage error (exit 2) that says what would have been accepted.

use crate::error::{Error, Result};
use crate::files::graph::Graph;

/// A place in the graph, as one command-line word names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `head` or `heads`: every head of the files.
    Heads,
    /// `base`: before the first migration.
    Base,
    Revision(usize),
    /// `+N` or `-N`.
    Relative(i64),
}

/// Parses one target word.
pub fn parse(graph: &Graph, word: &str) -> Result<Target> {
    let word = word.trim();
    match word {
        "head" | "heads" => return Ok(Target::Heads),
        "base" => return Ok(Target::Base),
        _ => {}
    }
    if word.contains(':') {
        return Err(Error::Usage(format!(
            "`{word}` is a range, which only --sql and --dry-run take (they need no database then): \
             add --sql, or name one target"
        )));
    }
    if let Some(digits) = word.strip_prefix(['+', '-']) {
        let steps: i64 = digits.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
            Error::Usage(format!(
                "`{word}` is not a step count: write +1, +2, -1 ... (a positive number after the sign)"
            ))
        })?;
        return Ok(Target::Relative(if word.starts_with('-') {
            -steps
        } else {
            steps
        }));
    }
    find(graph, word).map(Target::Revision)
}

/// A revision by its full id, or by a prefix that only one revision has.
pub fn find(graph: &Graph, word: &str) -> Result<usize> {
    if let Some(node) = graph.find(word) {
        return Ok(node);
    }
    let matches: Vec<&str> = graph
        .migrations()
        .iter()
        .map(|m| m.revision.as_str())
        .filter(|r| r.starts_with(word))
        .collect();
    match matches.as_slice() {
        [one] => graph
            .find(one)
            .ok_or_else(|| Error::Internal(format!("revision {one} vanished from the graph"))),
        [] => Err(Error::Usage(format!(
            "no migration has revision `{word}`: see `schemagate history` for the revisions, \
             or use head, base, +N or -N"
        ))),
        many => Err(Error::Usage(format!(
            "`{word}` is the start of {} revisions ({}): type more of it",
            many.len(),
            many.iter().take(5).copied().collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The nodes a target stands for, for commands that take a set (`stamp`): the heads, no
/// node for `base`, or the one revision.
pub fn nodes(graph: &Graph, target: Target, word: &str) -> Result<Vec<usize>> {
    match target {
        Target::Heads => Ok(graph.heads()),
        Target::Base => Ok(Vec::new()),
        Target::Revision(node) => Ok(vec![node]),
        Target::Relative(_) => Err(Error::Usage(format!(
            "`{word}` is relative; name a revision, head or base here"
        ))),
    }
}

/// `FROM:TO` of offline `--sql`: FROM is where the database is assumed to stand (`base`,
/// a revision, or `head` for `down`), TO a revision, `head(s)` or `base`. `forward` is
/// `up`'s direction: a range the other way round is an error naming the other command.
pub fn parse_range(graph: &Graph, range: &str, forward: bool) -> Result<(Target, Target)> {
    let (from, to) = range.split_once(':').ok_or_else(|| {
        Error::Usage(format!(
            "`{range}` is not a range: write FROM:TO, for example base:head or 20251201090000:head"
        ))
    })?;
    let default_from = if forward { "base" } else { "heads" };
    let default_to = if forward { "heads" } else { "base" };
    let from = match parse(graph, if from.is_empty() { default_from } else { from })? {
        Target::Heads if forward => {
            return Err(Error::Usage(format!(
                "`up {range}` starts at head, so there is nothing to go up to; to go back from head use `schemagate down {range} --sql`"
            )));
        }
        Target::Relative(_) => {
            return Err(Error::Usage(
                "a range starts at base, a revision or head, not at a relative step".into(),
            ));
        }
        from => from,
    };
    let to = match parse(graph, if to.is_empty() { default_to } else { to })? {
        Target::Relative(_) => {
            return Err(Error::Usage(
                "a range ends at a revision, head or base, not at a relative step".into(),
            ));
        }
        to => to,
    };
    if behind(graph, from, to) && forward {
        return Err(Error::Usage(format!(
            "`up {range}` goes backwards (its end comes before its start): use `schemagate down {range} --sql`"
        )));
    }
    if behind(graph, to, from) && !forward {
        return Err(Error::Usage(format!(
            "`down {range}` goes forwards (its end comes after its start): use `schemagate up {range} --sql`"
        )));
    }
    Ok((from, to))
}

/// Whether `to` lies strictly behind `from`: reaching it means reverting.
fn behind(graph: &Graph, from: Target, to: Target) -> bool {
    let nodes = |t: Target| match t {
        Target::Heads => graph.heads(),
        Target::Revision(n) => vec![n],
        Target::Base | Target::Relative(_) => Vec::new(),
    };
    let (from_nodes, to_nodes) = (nodes(from), nodes(to));
    if from_nodes.is_empty() {
        return false;
    }
    let reached = graph.ancestors_inclusive(&from_nodes);
    let wanted = graph.ancestors_inclusive(&to_nodes);
    // Everything `to` needs is already there, and `from` has more.
    wanted.iter().zip(&reached).all(|(&w, &r)| !w || r) && wanted != reached
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::graph::tests::graph;

    fn line() -> Graph {
        graph(&[
            ("20251201090000", None),
            ("20251201091500", None),
            ("20251205120000", None),
        ])
    }

    #[test]
    fn words_and_steps() {
        let g = line();
        assert_eq!(parse(&g, "head").ok(), Some(Target::Heads));
        assert_eq!(parse(&g, "heads").ok(), Some(Target::Heads));
        assert_eq!(parse(&g, "base").ok(), Some(Target::Base));
        assert_eq!(parse(&g, "+2").ok(), Some(Target::Relative(2)));
        assert_eq!(parse(&g, "-1").ok(), Some(Target::Relative(-1)));
        for bad in ["+0", "-x", "+", "--1"] {
            let e = parse(&g, bad).expect_err(bad);
            assert_eq!(e.exit_code(), 2, "{bad}");
        }
    }

    #[test]
    fn revisions_by_id_or_unique_prefix() {
        let g = line();
        assert_eq!(parse(&g, "20251205120000").ok(), Some(Target::Revision(2)));
        assert_eq!(parse(&g, "202512051").ok(), Some(Target::Revision(2)));
        let e = parse(&g, "2025120109").expect_err("ambiguous");
        assert!(e.to_string().contains("start of 2 revisions"), "{e}");
        let e = parse(&g, "1999").expect_err("unknown");
        assert!(
            e.to_string().contains("no migration has revision `1999`"),
            "{e}"
        );
    }

    #[test]
    fn a_revision_is_found_by_identity_before_any_prefix() {
        let g = graph(&[("007", None), ("70", None), ("7a", None)]);
        // `7` is 007 itself, although it is also the start of 70 and 7a.
        assert_eq!(parse(&g, "7").ok(), Some(Target::Revision(0)));
        assert_eq!(parse(&g, "0007").ok(), Some(Target::Revision(0)));
        // A prefix compares on the typed text: `00` starts only `007`.
        assert_eq!(parse(&g, "00").ok(), Some(Target::Revision(0)));
        assert!(parse(&g, "7b").is_err());
    }

    #[test]
    fn ranges() {
        let g = line();
        assert_eq!(
            parse_range(&g, "base:head", true).ok(),
            Some((Target::Base, Target::Heads))
        );
        assert_eq!(
            parse_range(&g, "20251201091500:", true).ok(),
            Some((Target::Revision(1), Target::Heads))
        );
        assert_eq!(
            parse_range(&g, ":20251201091500", true).ok(),
            Some((Target::Base, Target::Revision(1)))
        );
        assert!(parse_range(&g, "base:+1", true).is_err());
        assert!(parse_range(&g, "20251201091500", true).is_err());
        // Each direction refuses the other's ranges, naming the other command.
        let e = parse_range(&g, "head:base", true).expect_err("up from head");
        assert!(e.to_string().contains("schemagate down"), "{e}");
        let e = parse_range(&g, "20251205120000:20251201090000", true).expect_err("reversed");
        assert!(e.to_string().contains("goes backwards"), "{e}");
        assert_eq!(
            parse_range(&g, "head:base", false).ok(),
            Some((Target::Heads, Target::Base))
        );
        assert_eq!(
            parse_range(&g, "20251205120000:20251201090000", false).ok(),
            Some((Target::Revision(2), Target::Revision(0)))
        );
        let e = parse_range(&g, "base:head", false).expect_err("down forwards");
        assert!(e.to_string().contains("schemagate up"), "{e}");
    }
}
