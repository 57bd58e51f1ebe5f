//! Writing new migration files (`new`, `merge`): `<UTC timestamp>_<slug>.sql` with
//! `-- migrate:revises` always written, so a team gets Alembic's branch detection from
//! its first file on, and two developers' migrations made at once show up as two heads.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::files::graph::Graph;
use crate::files::migration::{compare_revisions, is_valid_revision};

const SLUG_MAX: usize = 60;

/// `Add phone to Users!` -> `add_phone_to_users`.
pub fn slug(message: &str) -> Result<String> {
    let mut slug = String::new();
    for c in message.trim().chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('_') && !slug.is_empty() {
            slug.push('_');
        }
    }
    while slug.ends_with('_') {
        slug.pop();
    }
    if slug.len() > SLUG_MAX {
        slug.truncate(SLUG_MAX);
        while slug.ends_with('_') {
            slug.pop();
        }
    }
    if slug.is_empty() {
        return Err(Error::Usage(format!(
            "the message `{message}` has no letters or digits to name the file with: describe the change, e.g. \"add phone to users\""
        )));
    }
    Ok(slug)
}

/// `YYYYMMDDHHMMSS` in UTC.
fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at)
        .to_string()
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

/// The revision for a new file: `explicit` if given, else the UTC time of `now`, moved
/// past the newest existing revision when that one is a timestamp from the same second
/// or the future (so the new file sorts last and implicit parents stay as they were).
pub fn revision(graph: &Graph, now: SystemTime, explicit: Option<&str>) -> Result<String> {
    if let Some(revision) = explicit {
        if !is_valid_revision(revision) {
            return Err(Error::Usage(format!(
                "--revision `{revision}` is not a revision id: use letters and digits only"
            )));
        }
        if let Some(existing) = graph
            .migrations()
            .iter()
            .find(|m| compare_revisions(&m.revision, revision).is_eq())
        {
            return Err(Error::Usage(format!(
                "revision {revision} is taken by {}: choose another",
                existing.path
            )));
        }
        return Ok(revision.to_string());
    }
    let taken = |r: &str| {
        graph
            .migrations()
            .iter()
            .any(|m| compare_revisions(&m.revision, r).is_eq())
    };
    // A folder of Alembic's random ids (kept as the README suggests) gets one more of them.
    if alembic_style(graph) {
        let mut salt = 0u32;
        loop {
            let id = random_hex_id(now, salt);
            if !taken(&id) {
                return Ok(id);
            }
            salt += 1;
        }
    }
    let mut candidate = timestamp(now);
    // Only a file without `-- migrate:revises` depends on sorting after its parent: when
    // one sorts after the current time, the new file must sort after the newest.
    let implicit_after = graph
        .migrations()
        .iter()
        .any(|m| m.revises.is_none() && compare_revisions(&m.revision, &candidate).is_ge());
    let newest = graph
        .migrations()
        .iter()
        .map(|m| m.revision.as_str())
        .max_by(|a, b| compare_revisions(a, b));
    if implicit_after
        && let Some(newest) = newest
        && compare_revisions(newest, &candidate).is_ge()
    {
        candidate = next_second(newest).ok_or_else(|| {
            Error::Usage(format!(
                "revision {newest} sorts after the current time ({candidate}), so a timestamped \
                 file would not come last: pass --revision with an id that sorts after {newest}"
            ))
        })?;
    }
    // Two files written in one second.
    while taken(&candidate) {
        candidate = next_second(&candidate)
            .ok_or_else(|| Error::Internal(format!("timestamp {candidate} has no next second")))?;
    }
    Ok(candidate)
}

/// Whether every revision looks like Alembic's: 12 lowercase hex digits.
fn alembic_style(graph: &Graph) -> bool {
    !graph.is_empty()
        && graph.migrations().iter().all(|m| {
            m.revision.len() == 12
                && m.revision
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// 12 hex digits from the clock, the process and `salt`, as Alembic's `uuid4().hex[-12:]`.
fn random_hex_id(now: SystemTime, salt: u32) -> String {
    use sha2::{Digest, Sha256};
    let nanos = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let digest = Sha256::digest(format!("{nanos}:{}:{salt}", std::process::id()).as_bytes());
    digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
}

/// The timestamp one second after `revision`, if it is a `YYYYMMDDHHMMSS` timestamp.
fn next_second(revision: &str) -> Option<String> {
    if revision.len() != 14 || !revision.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let r = revision;
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &r[0..4],
        &r[4..6],
        &r[6..8],
        &r[8..10],
        &r[10..12],
        &r[12..14]
    );
    let at = humantime::parse_rfc3339(&text).ok()?;
    Some(timestamp(at + Duration::from_secs(1)))
}

/// The first line: the message, never read as a directive.
fn title(message: &str) -> String {
    let message = message.trim().replace(['\r', '\n'], " ");
    // A message starting with `migrate:` (any case or spacing) would read as a directive.
    if crate::files::migration::looks_like_directive(&format!("-- {message}")) {
        format!("-- Message: {message}\n")
    } else {
        format!("-- {message}\n")
    }
}

fn revises(parents: &[&str]) -> String {
    if parents.is_empty() {
        "base".to_string()
    } else {
        parents.join(", ")
    }
}

/// The text of a generated migration: each section's SQL and whether it must run
/// outside a transaction.
pub fn generated(
    message: &str,
    parents: &[&str],
    origin: &str,
    up: (&str, bool),
    down: (&str, bool),
) -> String {
    let options = |outside: bool| if outside { " transaction:false" } else { "" };
    format!(
        "{}-- {origin}\n-- migrate:revises {}\n-- migrate:up{}\n{}\n-- migrate:down{}\n{}",
        title(message),
        revises(parents),
        options(up.1),
        up.0,
        options(down.1),
        down.0
    )
}

/// The text of a new migration revising `parents`.
pub fn content(message: &str, parents: &[&str], merge: bool) -> String {
    let title = title(message);
    let revises = revises(parents);
    let up = if merge {
        format!(
            "-- Merge point of {}: nothing to run. Add SQL here if the branches need reconciling.\n",
            parents.join(" and ")
        )
    } else {
        "\n".to_string()
    };
    format!("{title}-- migrate:revises {revises}\n-- migrate:up\n{up}\n-- migrate:down\n\n")
}

/// Writes `<revision>_<slug>.sql` into `dir` (created if missing), never over a file.
pub fn write(dir: &Path, revision: &str, slug: &str, content: &str) -> Result<PathBuf> {
    fs::create_dir_all(dir).map_err(|e| {
        Error::Usage(format!(
            "cannot create the migrations folder {}: {e}",
            dir.display()
        ))
    })?;
    let path = dir.join(format!("{revision}_{slug}.sql"));
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| Error::Usage(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(content.as_bytes())
        .map_err(|e| Error::Usage(format!("cannot write {}: {e}", path.display())))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::graph::tests::graph;
    use crate::files::migration;

    #[test]
    fn slugs() {
        assert_eq!(
            slug("Add phone to Users!").ok().as_deref(),
            Some("add_phone_to_users")
        );
        assert_eq!(slug("  --x--  y ").ok().as_deref(), Some("x_y"));
        assert_eq!(slug(&"ab ".repeat(40)).map(|s| s.len()).ok(), Some(59));
        assert!(slug("!!!").is_err());
    }

    #[test]
    fn timestamps_come_after_every_existing_revision() {
        let at = humantime::parse_rfc3339("2025-12-15T09:30:00Z").expect("time");
        let empty = graph(&[]);
        assert_eq!(
            revision(&empty, at, None).ok().as_deref(),
            Some("20251215093000")
        );
        let same_second = graph(&[("20251215093000", None)]);
        assert_eq!(
            revision(&same_second, at, None).ok().as_deref(),
            Some("20251215093001")
        );
        let end_of_day = graph(&[("20251231235959", None)]);
        assert_eq!(
            revision(&end_of_day, at, None).ok().as_deref(),
            Some("20260101000000")
        );
        let letters = graph(&[("v2", None)]);
        let e = revision(&letters, at, None).expect_err("v2 sorts after digits");
        assert!(e.to_string().contains("pass --revision"), "{e}");
        assert_eq!(
            revision(&letters, at, Some("v3")).ok().as_deref(),
            Some("v3")
        );
        assert!(revision(&letters, at, Some("v-3")).is_err());
        assert!(revision(&letters, at, Some("v2")).is_err());
    }

    #[test]
    fn folders_whose_revisions_are_not_timestamps_still_get_new_files() {
        let at = humantime::parse_rfc3339("2025-12-15T09:30:00Z").expect("time");
        // Every file names its parent: a timestamp that sorts first changes nothing.
        let explicit = graph(&[("v1", Some(&[])), ("v2", Some(&["v1"]))]);
        assert_eq!(
            revision(&explicit, at, None).ok().as_deref(),
            Some("20251215093000")
        );
        // Alembic's random ids, kept: one more of them, never one that is taken.
        let alembic = graph(&[
            ("ae1027a6acf0", Some(&[])),
            ("1975ea83b712", Some(&["ae1027a6acf0"])),
        ]);
        let id = revision(&alembic, at, None).expect("an id");
        assert_eq!(id.len(), 12, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        assert_ne!(
            id,
            revision(&alembic, at + Duration::from_nanos(1), None).expect("id")
        );
    }

    #[test]
    fn new_and_merge_files_parse_back() {
        let text = content("add phone", &["20251215093000"], false);
        assert_eq!(
            text,
            "-- add phone\n-- migrate:revises 20251215093000\n-- migrate:up\n\n\n-- migrate:down\n\n"
        );
        let merge = content("merge heads", &["2", "3"], true);
        let m = migration::parse("m/4_merge_heads.sql", "4_merge_heads.sql", merge.as_bytes())
            .expect("a merge file is valid as written");
        assert_eq!(m.revises, Some(vec!["2".to_string(), "3".to_string()]));
        let first = content("migrate:up the users", &[], false);
        assert!(
            first.starts_with("-- Message: migrate:up the users\n-- migrate:revises base\n"),
            "{first}"
        );
        let other = content("Migrate : down the users", &[], false);
        assert!(other.starts_with("-- Message: Migrate : down"), "{other}");
        let m = migration::parse(
            "m/1_first.sql",
            "1_first.sql",
            first.replace("\n\n\n", "\nSELECT 1;\n").as_bytes(),
        )
        .expect("valid");
        assert_eq!(m.revises, Some(Vec::new()));
    }
}
