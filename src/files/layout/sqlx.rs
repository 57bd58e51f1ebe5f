//! sqlx: `{version}_{description}.sql` (irreversible), or `.up.sql` + `.down.sql`
//! (reversible); the version is an i64 (the revision is its decimal string, as in
//! `_sqlx_migrations.version`). A file whose first line is `-- no-transaction` runs
//! outside a transaction, as sqlx runs it.

use super::File;
use super::golang_migrate::read_pairs;
use crate::error::FileProblem;
use crate::files::migration::{Migration, Section, Spelling};

const SPELLING: Spelling = Spelling {
    no_transaction: "make `-- no-transaction` the file's first line",
};

pub fn read(files: &[&File]) -> (Vec<Migration>, Vec<FileProblem>) {
    read_pairs(files, true, "sqlx", &SPELLING, section)
}

fn section(text: &str) -> Section {
    Section {
        sql: text.to_string(),
        first_line: 1,
        transactional: !text.starts_with("-- no-transaction"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::layout::tests::file;

    #[test]
    fn simple_and_reversible_files_and_no_transaction() {
        let files = [
            file("20240101000000_users.sql", "CREATE TABLE u (id int);\n"),
            file(
                "20240102000000_idx.up.sql",
                "-- no-transaction\nCREATE INDEX CONCURRENTLY i ON u (id);\n",
            ),
            file(
                "20240102000000_idx.down.sql",
                "-- no-transaction\nDROP INDEX CONCURRENTLY i;\n",
            ),
        ];
        let (m, p) = read(&files.iter().collect::<Vec<_>>());
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(m[0].revision, "20240101000000");
        assert!(m[0].up.transactional && m[0].down.is_none());
        assert_eq!(m[1].revision, "20240102000000");
        assert!(!m[1].up.transactional);
        assert!(!m[1].down.as_ref().is_some_and(|d| d.transactional));
    }

    #[test]
    fn transaction_control_points_at_sqlx_marker() {
        let files = [file("1_a.sql", "BEGIN;\nSELECT 1;\nCOMMIT;\n")];
        let (_, p) = read(&files.iter().collect::<Vec<_>>());
        assert!(p[0].message.contains("-- no-transaction"), "{p:?}");
        assert_eq!(p[0].line, Some(1));
    }
}
