//! Other tools' migration folders, read unchanged (`--layout`, detected by default).
//!
//! A team moving to schemagate keeps its folder: each layout turns that tool's files into
//! the same [`Migration`] the runner executes (an up section, an optional down section,
//! transactional or not, a checksum), so everything `up` promises holds for every layout.
//! Those tools have no graph: each migration revises the one before it.
//!
//! # Revision ids
//!
//! A revision id is the tool's own version string, exactly as that tool writes it into its
//! history table, so adopting a database that tool managed matches rows to files:
//!
//! | layout | file | revision | that tool's history column |
//! | --- | --- | --- | --- |
//! | schemagate, dbmate | `20240101120000_add_users.sql` | `20240101120000` (the prefix as written) | dbmate `schema_migrations.version` |
//! | golang-migrate | `0001_init.up.sql` + `.down.sql` | `1` (decimal of the number) | `schema_migrations.version` |
//! | sqlx | `20240101120000_init.sql`, or `.up.sql` + `.down.sql` | `20240101120000` (decimal) | `_sqlx_migrations.version` |
//! | goose | `00001_init.sql` | `1` (decimal) | `goose_db_version.version_id` |
//! | Flyway | `V1_1__init.sql` (+ `U1_1__init.sql`) | `1.1` (`_` read as `.`, as Flyway does) | `flyway_schema_history.version` |
//! | Flyway repeatable | `R__views.sql` | `R__views` | `version` NULL, `description` `views` |
//! | sql-migrate | `1_init.sql` | `1_init.sql` (the whole file name) | `gorp_migrations.id` |
//!
//! Ordering is the revision order (`migration::compare_revisions`): numbers compare as
//! numbers, so `9` < `10`, Flyway's `1.2` < `1.10` < `2`, sql-migrate's `2_a.sql` <
//! `10_a.sql` (numeric prefix, then name). Flyway repeatables sort after every versioned
//! migration (a letter after digits), among themselves by description.
//!
//! # Transactions
//!
//! - golang-migrate has no rule of its own: it sends each file as one query. A file
//!   wrapped in `BEGIN; ... COMMIT;` has that outer pair blanked and runs in schemagate's
//!   transaction (the same effect, and the history row commits with it). A file with other
//!   transaction control of its own, or made of one statement that PostgreSQL refuses in a
//!   transaction block (`CREATE INDEX CONCURRENTLY`, `VACUUM`, ...), runs outside a
//!   transaction, statement by statement, as `transaction:false`. Every other file runs in
//!   one transaction, as the server runs a multi-statement query.
//! - sqlx: `-- no-transaction` on the first line of a file.
//! - goose: `-- +goose NO TRANSACTION` anywhere in the file (both sections).
//! - sql-migrate: `-- +migrate Up notransaction` / `-- +migrate Down notransaction`.
//! - Flyway: `executeInTransaction=false` in `V1__x.sql.conf` beside the script.
//!
//! goose's and sql-migrate's `StatementBegin`/`StatementEnd` mark one statement (a function
//! body). schemagate's splitter already keeps dollar-quoted bodies whole, so the marker
//! lines are blanked (they are not SQL and never reach the server) and line numbers stay.
//!
//! # Detection
//!
//! Without `--layout`, from the folder alone, names first (free), markers only when names
//! leave it open (the files are read anyway):
//! - `*.up.sql` / `*.down.sql` pairs: golang-migrate, or sqlx when any file starts with
//!   `-- no-transaction` or a plain `N_x.sql` sits beside the pairs (golang-migrate knows
//!   neither). Otherwise the tie goes to golang-migrate; the revision ids are the same
//!   either way, and `--layout sqlx` decides.
//! - `V<version>__*.sql`, `U<version>__*.sql`, `R__*.sql`: Flyway.
//! - plain `<rev>_<slug>.sql`: goose with `-- +goose` markers, sql-migrate with
//!   `-- +migrate` markers, else schemagate (dbmate folders are the same format).
//!
//! A folder mixing two conventions is an error naming one file of each, fixed by removing
//! the stray file or naming the layout with `--layout`.

use std::borrow::Cow;
use std::fmt;

use crate::error::FileProblem;
use crate::files::migration::{self, Migration, Section};

mod flyway;
mod golang_migrate;
mod goose;
mod sql_migrate;
mod sqlx;

/// Whose conventions a migrations folder follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Layout {
    /// `<rev>_<slug>.sql` with `-- migrate:up` / `-- migrate:down` markers, strictly spelled.
    Schemagate,
    /// The same files, with dbmate's looser markers (`--migrate:up` is accepted).
    Dbmate,
    /// `N_name.up.sql` + `N_name.down.sql`.
    GolangMigrate,
    /// `N_name.sql`, or `N_name.up.sql` + `N_name.down.sql`; `-- no-transaction`.
    Sqlx,
    /// `N_name.sql` with `-- +goose Up` / `-- +goose Down`.
    Goose,
    /// `V1__x.sql`, `U1__x.sql`, `R__x.sql`, `V1__x.sql.conf`.
    Flyway,
    /// `name.sql` with `-- +migrate Up` / `-- +migrate Down`.
    SqlMigrate,
}

impl Layout {
    pub fn name(self) -> &'static str {
        match self {
            Layout::Schemagate => "schemagate",
            Layout::Dbmate => "dbmate",
            Layout::GolangMigrate => "golang-migrate",
            Layout::Sqlx => "sqlx",
            Layout::Goose => "goose",
            Layout::Flyway => "flyway",
            Layout::SqlMigrate => "sql-migrate",
        }
    }

    /// Whether files of this layout are read by `migration::parse`, one at a time.
    pub fn is_native(self) -> bool {
        matches!(self, Layout::Schemagate | Layout::Dbmate)
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `name` (a file in the folder) is one the loader reads: every `.sql` file,
/// and Flyway's per-script `.sql.conf`.
pub fn is_candidate(name: &str) -> bool {
    name.ends_with(".sql") || name.ends_with(".sql.conf")
}

/// One file of the folder, read.
#[derive(Debug)]
pub struct File {
    /// The file name in the folder.
    pub name: String,
    /// The path as shown in messages.
    pub path: String,
    pub bytes: Vec<u8>,
}

/// What a folder's names say, before any file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ByNames {
    /// Only plain `<rev>_<slug>.sql` names: the markers decide.
    Plain,
    /// `.up.sql`/`.down.sql` pairs: golang-migrate or sqlx (`plain` is one non-paired name).
    Pairs {
        plain: Option<String>,
    },
    Flyway,
    /// Two conventions: the error.
    Mixed(FileProblem),
}

/// Which convention a name follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameKind {
    Plain,
    Pair,
    Flyway,
}

fn name_kind(name: &str) -> NameKind {
    if name.ends_with(".up.sql") || name.ends_with(".down.sql") {
        NameKind::Pair
    } else if flyway::is_flyway_name(name) {
        NameKind::Flyway
    } else {
        NameKind::Plain
    }
}

/// The first decision, from the names alone (free: they were listed anyway).
pub fn by_names(dir: &str, names: &[String]) -> ByNames {
    let mut first: [Option<&str>; 3] = [None; 3];
    for name in names.iter().filter(|n| n.ends_with(".sql")) {
        let slot = match name_kind(name) {
            NameKind::Plain => 0,
            NameKind::Pair => 1,
            NameKind::Flyway => 2,
        };
        if first[slot].is_none_or(|f| name.as_str() < f) {
            first[slot] = Some(name);
        }
    }
    match first {
        [_, None, None] => ByNames::Plain,
        [plain, Some(_), None] => ByNames::Pairs {
            plain: plain.map(str::to_string),
        },
        [None, None, Some(_)] => ByNames::Flyway,
        [plain, pair, Some(flyway)] => {
            let (other, other_layout) = match (plain, pair) {
                (_, Some(pair)) => (pair, "golang-migrate"),
                (Some(plain), None) => (plain, "schemagate"),
                (None, None) => unreachable!("matched above"),
            };
            ByNames::Mixed(mixed(dir, flyway, "flyway", other, other_layout))
        }
    }
}

/// A folder that mixes two tools' conventions.
pub fn mixed(dir: &str, a: &str, a_layout: &str, b: &str, b_layout: &str) -> FileProblem {
    FileProblem::new(
        format!("{dir}/{a}"),
        None,
        format!(
            "this folder mixes two tools' conventions: {a} is a {a_layout} migration and {b} a \
             {b_layout} one, so which files are migrations, and in what order, is unclear; \
             remove or rename the stray files, or name the layout with --layout \
             (SCHEMAGATE_LAYOUT={a_layout} or {b_layout})"
        ),
    )
}

/// What a file's text says about its tool, found cheaply (a substring search).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    pub goose: bool,
    pub sql_migrate: bool,
    pub native: bool,
    /// sqlx's `-- no-transaction` on the first line.
    pub no_transaction: bool,
}

pub fn marks(bytes: &[u8]) -> Marks {
    // Most files hold no `+` at all: one byte scan settles goose and sql-migrate.
    let plus = bytes.contains(&b'+');
    let bytes = bytes.strip_prefix("\u{feff}".as_bytes()).unwrap_or(bytes);
    let marked = |word: &[u8]| {
        bytes.split(|&b| b == b'\n').any(|l| {
            l.strip_prefix(b"--")
                .is_some_and(|rest| rest.trim_ascii_start().starts_with(word))
        })
    };
    let native = marked(b"migrate:");
    let text = bytes;
    Marks {
        goose: plus && marked(b"+goose"),
        sql_migrate: plus && marked(b"+migrate"),
        native,
        no_transaction: text.starts_with(b"-- no-transaction"),
    }
}

/// The layout of a folder whose names left it open, from each file's marks.
pub fn by_marks(
    dir: &str,
    names: &ByNames,
    files: &[(&str, Marks)],
) -> Result<Layout, FileProblem> {
    let first =
        |pick: fn(&Marks) -> bool| files.iter().filter(|(_, m)| pick(m)).map(|(n, _)| *n).min();
    match names {
        ByNames::Mixed(problem) => Err(problem.clone()),
        ByNames::Flyway => Ok(Layout::Flyway),
        ByNames::Pairs { plain } => {
            if plain.is_some() || first(|m| m.no_transaction).is_some() {
                Ok(Layout::Sqlx)
            } else {
                Ok(Layout::GolangMigrate)
            }
        }
        ByNames::Plain => {
            let found = [
                (first(|m| m.goose), Layout::Goose),
                (first(|m| m.sql_migrate), Layout::SqlMigrate),
                (first(|m| m.native), Layout::Schemagate),
            ];
            let mut present = found.iter().filter_map(|(f, l)| f.map(|f| (f, *l)));
            match (present.next(), present.next()) {
                (Some((a, la)), Some((b, lb))) => Err(mixed(dir, a, la.name(), b, lb.name())),
                (Some((_, layout)), None) => Ok(layout),
                _ => Ok(Layout::Schemagate),
            }
        }
    }
}

/// Reads a folder's files the way `layout` says (not a native one: those are parsed file
/// by file by the loader). Every problem of every file is returned.
pub fn read(layout: Layout, dir: &str, files: &[File]) -> (Vec<Migration>, Vec<FileProblem>) {
    let (sql, conf): (Vec<&File>, Vec<&File>) =
        files.iter().partition(|f| f.name.ends_with(".sql"));
    let mut problems = Vec::new();
    if layout != Layout::Flyway {
        for f in &conf {
            problems.push(FileProblem::new(
                &f.path,
                None,
                format!(
                    "a .sql.conf file is Flyway's, and this folder is read as {layout}: remove \
                     it, or pass --layout flyway"
                ),
            ));
        }
    }
    let (migrations, mut more) = match layout {
        Layout::GolangMigrate => golang_migrate::read(&sql),
        Layout::Sqlx => sqlx::read(&sql),
        Layout::Goose => goose::read(&sql),
        Layout::Flyway => flyway::read(dir, &sql, &conf),
        Layout::SqlMigrate => sql_migrate::read(&sql),
        Layout::Schemagate | Layout::Dbmate => (Vec::new(), Vec::new()),
    };
    problems.append(&mut more);
    (migrations, problems)
}

/// dbmate's marker rule: `--\s*migrate:up` and `--\s*migrate:down` are markers. Such lines
/// are respelled `-- migrate:...` for the native parser (markers are not part of a section,
/// so no checksum changes). Copies only when a line needs it.
pub fn dbmate_markers(bytes: &[u8]) -> Cow<'_, [u8]> {
    let loose = |line: &[u8]| {
        line.strip_prefix(b"--")
            .is_some_and(|rest| rest.trim_ascii_start().starts_with(b"migrate:"))
    };
    let respell = |line: &[u8]| loose(line) && !line.starts_with(b"-- migrate:");
    if !bytes.split(|&b| b == b'\n').any(respell) {
        return Cow::Borrowed(bytes);
    }
    let mut out = Vec::with_capacity(bytes.len() + 16);
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        match line.strip_prefix(b"--").filter(|_| loose(line)) {
            Some(rest) => {
                out.extend_from_slice(b"-- ");
                out.extend_from_slice(rest.trim_ascii_start());
            }
            None => out.extend_from_slice(line),
        }
    }
    Cow::Owned(out)
}

/// A decimal version as the Go and Rust tools parse it (`0001` is `1`), or why not.
pub(crate) fn decimal_version(digits: &str) -> Option<String> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: i64 = digits.parse().ok()?;
    Some(value.to_string())
}

/// A section made of the given lines of `text` (1-based, inclusive start, exclusive end),
/// with the listed lines blanked (markers that are not SQL), so file lines stay right.
pub(crate) fn section_of(
    text: &str,
    from: usize,
    to: usize,
    blank: &[usize],
    transactional: bool,
) -> Section {
    let mut sql = String::new();
    for (index, line) in text.split('\n').enumerate() {
        let number = index + 1;
        if number < from || number >= to {
            continue;
        }
        if !blank.contains(&number) {
            sql.push_str(line);
        }
        sql.push('\n');
    }
    Section {
        sql,
        first_line: from,
        transactional,
    }
}

/// The number of lines of `text` plus one: the end of a section that runs to the end.
pub(crate) fn end_line(text: &str) -> usize {
    text.split('\n').count() + 1
}

/// `<digits>_<description>` of a stem, for the numbered layouts.
pub(crate) fn numbered(stem: &str) -> Option<(String, String)> {
    let (digits, rest) = stem.split_once('_').unwrap_or((stem, ""));
    let version = decimal_version(digits)?;
    Some((version, rest.replace('_', " ")))
}

/// Every file's text, or its problem.
pub(crate) fn decode<'a>(file: &'a File, problems: &mut Vec<FileProblem>) -> Option<Cow<'a, str>> {
    match migration::decode(&file.path, &file.bytes) {
        Ok(text) => Some(text),
        Err(problem) => {
            problems.push(problem);
            None
        }
    }
}

/// Two files with one revision: the second is reported.
pub(crate) fn duplicates(migrations: &mut Vec<Migration>, problems: &mut Vec<FileProblem>) {
    migrations.sort_by(|a, b| {
        migration::compare_revisions(&a.revision, &b.revision).then_with(|| a.path.cmp(&b.path))
    });
    let mut kept: Vec<Migration> = Vec::with_capacity(migrations.len());
    for m in migrations.drain(..) {
        match kept.last() {
            Some(last) if migration::same_revision(&last.revision, &m.revision) => {
                problems.push(FileProblem::new(
                    &m.path,
                    None,
                    format!(
                        "two files with version {}: {} has it too; give one of them a new version",
                        m.revision, last.path
                    ),
                ));
            }
            _ => kept.push(m),
        }
    }
    *migrations = kept;
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A file of a folder, as the layouts read it.
    pub(crate) fn file(name: &str, text: &str) -> File {
        File {
            name: name.into(),
            path: format!("m/{name}"),
            bytes: text.as_bytes().to_vec(),
        }
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_decide_what_they_can() {
        assert_eq!(
            by_names("m", &names(&["1_a.sql", "2_b.sql"])),
            ByNames::Plain
        );
        assert_eq!(
            by_names("m", &names(&["1_a.up.sql", "1_a.down.sql"])),
            ByNames::Pairs { plain: None }
        );
        assert_eq!(
            by_names("m", &names(&["1_a.up.sql", "1_a.down.sql", "2_b.sql"])),
            ByNames::Pairs {
                plain: Some("2_b.sql".into())
            }
        );
        assert_eq!(
            by_names(
                "m",
                &names(&["V1__a.sql", "U1__a.sql", "R__v.sql", "V1__a.sql.conf"])
            ),
            ByNames::Flyway
        );
        let ByNames::Mixed(problem) = by_names("m", &names(&["V1__a.sql", "2_b.up.sql"])) else {
            panic!("mixed")
        };
        assert!(problem.message.contains("V1__a.sql"), "{problem}");
        assert!(problem.message.contains("2_b.up.sql"), "{problem}");
        assert!(problem.message.contains("--layout"), "{problem}");
    }

    #[test]
    fn markers_decide_plain_folders() {
        let goose = marks(b"-- +goose Up\nSELECT 1;\n");
        let sqlmig = marks(b"-- +migrate Up\nSELECT 1;\n");
        let native = marks(b"-- migrate:up\nSELECT 1;\n");
        let none = marks(b"SELECT 1;\n");
        assert!(goose.goose && !goose.sql_migrate && !goose.native);
        assert!(sqlmig.sql_migrate && !sqlmig.native);
        assert!(native.native && !native.sql_migrate);
        assert_eq!(none, Marks::default());
        let plain = ByNames::Plain;
        assert_eq!(
            by_marks("m", &plain, &[("1_a.sql", goose), ("2_b.sql", none)]),
            Ok(Layout::Goose)
        );
        assert_eq!(
            by_marks("m", &plain, &[("1_a.sql", sqlmig)]),
            Ok(Layout::SqlMigrate)
        );
        assert_eq!(
            by_marks("m", &plain, &[("1_a.sql", none)]),
            Ok(Layout::Schemagate)
        );
        let problem =
            by_marks("m", &plain, &[("1_a.sql", goose), ("2_b.sql", native)]).expect_err("mixed");
        assert!(problem.message.contains("1_a.sql") && problem.message.contains("2_b.sql"));
        // The sqlx tie-break.
        let pairs = ByNames::Pairs { plain: None };
        let no_tx = marks(b"-- no-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);\n");
        assert_eq!(
            by_marks("m", &pairs, &[("1_a.up.sql", none)]),
            Ok(Layout::GolangMigrate)
        );
        assert_eq!(
            by_marks("m", &pairs, &[("1_a.up.sql", no_tx)]),
            Ok(Layout::Sqlx)
        );
    }

    #[test]
    fn dbmate_accepts_its_loose_markers() {
        assert_eq!(
            dbmate_markers(b"--migrate:up\nSELECT 1;\n--   migrate:down\nSELECT 2;\n").as_ref(),
            b"-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n"
        );
        let strict = b"-- migrate:up\nSELECT 1;\n";
        assert!(matches!(dbmate_markers(strict), Cow::Borrowed(_)));
    }

    #[test]
    fn decimal_versions_are_the_tools_own() {
        assert_eq!(decimal_version("0001").as_deref(), Some("1"));
        assert_eq!(
            decimal_version("20240101120000").as_deref(),
            Some("20240101120000")
        );
        assert_eq!(decimal_version("1a"), None);
        assert_eq!(decimal_version(""), None);
        assert_eq!(decimal_version("99999999999999999999"), None);
    }
}
