//! The tools schemagate adopts a history from (`adopt --from`, `up --adopt`).

use clap::ValueEnum;

/// The tools whose history tables `adopt` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Tool {
    #[value(name = "golang-migrate")]
    GolangMigrate,
    Dbmate,
    Sqlx,
    Goose,
    Flyway,
    #[value(name = "sql-migrate")]
    SqlMigrate,
    Alembic,
}

impl Tool {
    pub const ALL: [Tool; 7] = [
        Tool::GolangMigrate,
        Tool::Dbmate,
        Tool::Sqlx,
        Tool::Goose,
        Tool::Flyway,
        Tool::SqlMigrate,
        Tool::Alembic,
    ];

    /// The name on the command line (`--from`).
    pub fn name(self) -> &'static str {
        match self {
            Tool::GolangMigrate => "golang-migrate",
            Tool::Dbmate => "dbmate",
            Tool::Sqlx => "sqlx",
            Tool::Goose => "goose",
            Tool::Flyway => "flyway",
            Tool::SqlMigrate => "sql-migrate",
            Tool::Alembic => "alembic",
        }
    }

    /// The tool's default history table.
    pub fn table(self) -> &'static str {
        match self {
            // golang-migrate and dbmate share the name; their columns tell them apart.
            Tool::GolangMigrate | Tool::Dbmate => "schema_migrations",
            Tool::Sqlx => "_sqlx_migrations",
            Tool::Goose => "goose_db_version",
            Tool::Flyway => "flyway_schema_history",
            Tool::SqlMigrate => "gorp_migrations",
            Tool::Alembic => "alembic_version",
        }
    }

    /// Columns the table must have to be this tool's, and that `read` selects.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Tool::GolangMigrate => &["version", "dirty"],
            Tool::Dbmate => &["version"],
            Tool::Sqlx => &["version", "success"],
            Tool::Goose => &["id", "version_id", "is_applied"],
            Tool::Flyway => &["installed_rank", "version", "type", "script", "success"],
            Tool::SqlMigrate => &["id"],
            Tool::Alembic => &["version_num"],
        }
    }

    /// Which tool a table of this name and these columns belongs to.
    pub fn of(table: &str, columns: &[String]) -> Option<Tool> {
        let has = |tool: Tool| {
            tool.columns()
                .iter()
                .all(|c| columns.iter().any(|k| k == c))
        };
        let tool = match table {
            // golang-migrate: `(version bigint not null primary key, dirty boolean not null)`
            // (golang-migrate/migrate database/postgres/postgres.go, ensureVersionTable);
            // dbmate: `(version varchar(128) primary key)` (amacneil/dbmate
            // pkg/driver/postgres/postgres.go, CreateMigrationsTable).
            "schema_migrations" if columns.iter().any(|c| c == "dirty") => Tool::GolangMigrate,
            "schema_migrations" => Tool::Dbmate,
            _ => *Tool::ALL.iter().find(|t| t.table() == table)?,
        };
        has(tool).then_some(tool)
    }
}
