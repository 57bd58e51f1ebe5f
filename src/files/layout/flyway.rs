//! Flyway SQL migrations: `V<version>__<desc>.sql` (versioned), `U<version>__<desc>.sql`
//! (its undo, the down section), `R__<desc>.sql` (repeatable: after every versioned one,
//! again whenever its checksum changes) and `<script>.conf` beside a script
//! (`executeInTransaction=false` runs it outside a transaction).
//!
//! The version is Flyway's: `_` is read as `.`, so `V1_1__x.sql` is `1.1`, the string
//! `flyway_schema_history.version` holds; versions compare part by part as numbers
//! (`1.2` < `1.10`). A repeatable's revision is `R__<desc>` as in its file name. Flyway
//! placeholders (`${...}`) are not replaced.

use std::collections::BTreeMap;

use super::{File, decode, duplicates};
use crate::error::FileProblem;
use crate::files::migration::{self, Migration, REPEATABLE_PREFIX, Section, Spelling};

const SPELLING: Spelling = Spelling {
    no_transaction: "write `executeInTransaction=false` in a <script>.conf file beside it",
};

/// What a Flyway script name says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Script {
    Versioned {
        version: String,
        description: String,
    },
    Undo {
        version: String,
    },
    Repeatable {
        description: String,
    },
}

/// Whether a name is one of Flyway's script names (for detection).
pub fn is_flyway_name(name: &str) -> bool {
    script(name).is_some()
}

fn script(name: &str) -> Option<Script> {
    let stem = name.strip_suffix(".sql")?;
    if let Some(description) = stem.strip_prefix(REPEATABLE_PREFIX) {
        return Some(Script::Repeatable {
            description: description.to_string(),
        });
    }
    let (kind, rest) = stem.split_at_checked(1)?;
    if kind != "V" && kind != "U" {
        return None;
    }
    let (version, description) = rest.split_once("__")?;
    let valid = version.starts_with(|c: char| c.is_ascii_digit())
        && version
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '_')
        && !version.ends_with(['.', '_']);
    if !valid {
        return None;
    }
    let version = version.replace('_', ".");
    Some(if kind == "V" {
        Script::Versioned {
            version,
            description: description.replace('_', " "),
        }
    } else {
        Script::Undo { version }
    })
}

pub fn read(dir: &str, sql: &[&File], conf: &[&File]) -> (Vec<Migration>, Vec<FileProblem>) {
    let mut problems = Vec::new();
    let mut transactional: BTreeMap<&str, bool> = BTreeMap::new();
    for c in conf {
        let script_name = c.name.trim_end_matches(".conf");
        if !sql.iter().any(|f| f.name == script_name) {
            problems.push(FileProblem::new(
                &c.path,
                None,
                format!(
                    "a .conf file without its script: {dir}/{script_name} does not exist; \
                     rename it after the script it configures, or remove it"
                ),
            ));
            continue;
        }
        if let Some(t) = parse_conf(c, &mut problems) {
            transactional.insert(script_name, t);
        }
    }
    let section = |file: &File, text: &str| Section {
        sql: text.to_string(),
        first_line: 1,
        transactional: transactional
            .get(file.name.as_str())
            .copied()
            .unwrap_or(true),
    };

    let mut undos: BTreeMap<String, &File> = BTreeMap::new();
    let mut ups = Vec::new();
    for file in sql {
        match script(&file.name) {
            None => problems.push(FileProblem::new(
                &file.path,
                None,
                "not a Flyway script name, so Flyway would not run it: name it \
                 V<version>__<description>.sql (versioned), U<version>__<description>.sql \
                 (undo) or R__<description>.sql (repeatable), or move it out of the folder",
            )),
            Some(Script::Undo { version }) => {
                let key = migration::revision_key(&version);
                if let Some(first) = undos.insert(key, file) {
                    problems.push(FileProblem::new(
                        &file.path,
                        None,
                        format!(
                            "two undo scripts for version {version}: {} is one too; keep one",
                            first.name
                        ),
                    ));
                }
            }
            Some(s) => ups.push((file, s)),
        }
    }

    let mut migrations = Vec::new();
    let mut matched = Vec::new();
    for (file, s) in ups {
        let Some(text) = decode(file, &mut problems) else {
            continue;
        };
        let (revision, description, undo) = match s {
            Script::Versioned {
                version,
                description,
            } => {
                let undo = undos.get(&migration::revision_key(&version)).copied();
                (version, description, undo)
            }
            Script::Repeatable { description } => (
                format!("{REPEATABLE_PREFIX}{description}"),
                description.replace('_', " "),
                None,
            ),
            Script::Undo { .. } => continue,
        };
        let down = undo.and_then(|u| {
            matched.push(u.name.as_str());
            decode(u, &mut problems).map(|text| section(u, &text))
        });
        match migration::foreign(
            &file.path,
            undo.map(|u| u.path.as_str()),
            revision,
            description,
            section(file, &text),
            down,
            &SPELLING,
        ) {
            Ok(m) => migrations.push(m),
            Err(mut p) => problems.append(&mut p),
        }
    }
    for (version, undo) in &undos {
        if !matched.contains(&undo.name.as_str()) {
            problems.push(FileProblem::new(
                &undo.path,
                None,
                format!(
                    "an undo script without its versioned migration: no V{version}__*.sql is \
                     in the folder; add it, or remove the undo script"
                ),
            ));
        }
    }
    duplicates(&mut migrations, &mut problems);
    (migrations, problems)
}

/// A script's `.conf`: `executeInTransaction` (and `encoding`, UTF-8 only). Returns
/// whether the script runs in a transaction.
fn parse_conf(file: &File, problems: &mut Vec<FileProblem>) -> Option<bool> {
    let text = decode(file, problems)?;
    let mut transactional = true;
    for (index, line) in text.split('\n').enumerate() {
        let number = Some(index + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            problems.push(FileProblem::new(
                &file.path,
                number,
                "not a key=value line: write executeInTransaction=false",
            ));
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "executeInTransaction" => match value.to_ascii_lowercase().as_str() {
                "true" => transactional = true,
                "false" => transactional = false,
                _ => problems.push(FileProblem::new(
                    &file.path,
                    number,
                    format!("executeInTransaction is true or false, not `{value}`"),
                )),
            },
            "encoding" if value.eq_ignore_ascii_case("UTF-8") || value.eq_ignore_ascii_case("UTF8") => {}
            "encoding" => problems.push(FileProblem::new(
                &file.path,
                number,
                format!("schemagate reads scripts as UTF-8, not {value}: convert the script to UTF-8 and remove this line"),
            )),
            other => problems.push(FileProblem::new(
                &file.path,
                number,
                format!(
                    "unknown key `{other}` (schemagate knows executeInTransaction and encoding): \
                     remove it, or keep this migration with Flyway"
                ),
            )),
        }
    }
    Some(transactional)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::layout::tests::file;
    use crate::files::migration::compare_revisions;

    #[test]
    fn names() {
        assert_eq!(
            script("V1_1__add_users.sql"),
            Some(Script::Versioned {
                version: "1.1".into(),
                description: "add users".into()
            })
        );
        assert!(script("V2__x.sql").is_some());
        assert_eq!(
            script("U2__x.sql"),
            Some(Script::Undo {
                version: "2".into()
            })
        );
        assert_eq!(
            script("R__views.sql"),
            Some(Script::Repeatable {
                description: "views".into()
            })
        );
        for no in [
            "V__x.sql",
            "Vx__y.sql",
            "1_x.sql",
            "V1_x.sql",
            "v1__x.sql",
            "V1.__x.sql",
        ] {
            assert_eq!(script(no), None, "{no}");
        }
    }

    #[test]
    fn versions_order_as_flyway_orders() {
        let mut v = vec!["1.10", "2", "1.2", "1", "1.1", "R__b", "R__a", "10"];
        v.sort_by(|a, b| compare_revisions(a, b));
        assert_eq!(v, ["1", "1.1", "1.2", "1.10", "2", "10", "R__a", "R__b"]);
    }

    #[test]
    fn undo_repeatable_and_conf() {
        let sql = [
            file("V1__init.sql", "CREATE TABLE t (a int);\n"),
            file("V1_1__idx.sql", "CREATE INDEX CONCURRENTLY i ON t (a);\n"),
            file("V2__b.sql", "ALTER TABLE t ADD b int;\n"),
            file("U2__b.sql", "ALTER TABLE t DROP b;\n"),
            file(
                "R__view.sql",
                "CREATE OR REPLACE VIEW v AS SELECT a FROM t;\n",
            ),
        ];
        let conf = [file(
            "V1_1__idx.sql.conf",
            "# no transaction\nexecuteInTransaction=false\n",
        )];
        let (m, p) = read(
            "m",
            &sql.iter().collect::<Vec<_>>(),
            &conf.iter().collect::<Vec<_>>(),
        );
        assert!(p.is_empty(), "{p:?}");
        let ids: Vec<&str> = m.iter().map(|m| m.revision.as_str()).collect();
        assert_eq!(ids, ["1", "1.1", "2", "R__view"]);
        assert!(!m[1].up.transactional);
        assert!(m[2].down.is_some() && m[0].down.is_none());
        assert!(m[3].is_repeatable() && !m[2].is_repeatable());
    }

    #[test]
    fn problems() {
        let sql = [
            file("V1__a.sql", "SELECT 1;\n"),
            file("U3__c.sql", "SELECT 1;\n"),
            file("V01__b.sql", "SELECT 1;\n"),
        ];
        let conf = [
            file("V1__a.sql.conf", "executeInTransaction=false\nmixed=true\n"),
            file("V9__gone.sql.conf", "executeInTransaction=false\n"),
        ];
        let (_, p) = read(
            "m",
            &sql.iter().collect::<Vec<_>>(),
            &conf.iter().collect::<Vec<_>>(),
        );
        let all: Vec<String> = p.iter().map(|p| p.to_string()).collect();
        assert_eq!(p.len(), 4, "{all:#?}");
        assert!(
            all.iter()
                .any(|m| m.contains("V1__a.sql.conf:2") && m.contains("unknown key `mixed`"))
        );
        assert!(
            all.iter()
                .any(|m| m.contains("V9__gone.sql.conf") && m.contains("without its script"))
        );
        assert!(
            all.iter()
                .any(|m| m.contains("U3__c.sql") && m.contains("without its versioned"))
        );
        assert!(all.iter().any(|m| m.contains("two files with version")));
    }
}
