//! Command line and environment, one definition each (clap's `env` feature), and turning
//! them into a connection configuration the way libpq would.
//!
//! Precedence is flag > environment > default. The database URL may also come from
//! `DATABASE_URL_FILE` (Docker and Kubernetes secrets) or from libpq's `PG*` variables,
//! which, as in libpq, also fill in whatever the URL leaves out; a password missing from
//! both may come from libpq's password file (`pgpass`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, FromArgMatches, Parser, Subcommand, ValueEnum};

use crate::db::connection::{Connection, SslMode};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::output::LogFormat;
use crate::text::FOREVER;

/// The command line. `Cli::parse_args` (what `main` uses) also says where a misplaced
/// option belongs; clap's `Cli::try_parse_from` works too.
#[derive(Debug)]
pub struct Cli {
    pub global: Global,
    pub command: Command,
}

/// What clap derives; [`Cli`] adds each command's option groups to it.
#[derive(Debug, Parser)]
#[command(
    name = "schemagate",
    version,
    about = "Waits for PostgreSQL, takes an advisory lock, applies pending SQL migrations, exits with a code your orchestrator understands.",
    after_help = "Exit codes: 0 ok, 2 usage/config, 3 invalid files, 4 database unreachable, 5 refused (auth/TLS/missing db), 6 lock timeout, 7 migration failed, 8 state conflict, 9 pending (check), 10 schemas differ, 11 lint findings, 129/130/131/143 interrupted (SIGHUP/SIGINT/SIGQUIT/SIGTERM). A fleet (--targets, --targets-query, --tenant-schemas-query) exits with its most severe target's code: 8 > 7 > 1 > 5 > 3 > 2 > 10 > 11 > 6 > 4 > 9.\n\nExample: DATABASE_URL=postgres://app@db:5432/app schemagate up"
)]
struct Derived {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Every setting a command may read, as one struct (`ctx.global.X`). Only the logging
/// options are options of every command; the others come from the groups below, which
/// are options only of the commands that use them (see [`uses`]), so `validate --help`
/// lists no connection option. A command without a group gets that group's defaults.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Logging")]
pub struct Global {
    /// Log format on stderr.
    #[arg(
        long,
        env = "SCHEMAGATE_LOG_FORMAT",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub log_format: LogFormat,

    /// Log filter (tracing syntax: info, debug, schemagate=debug).
    #[arg(long, env = "SCHEMAGATE_LOG", default_value = "info", global = true)]
    pub log_level: String,

    // From DatabaseArgs.
    #[arg(skip)]
    pub database_url: Option<String>,
    #[arg(skip)]
    pub database_url_file: Option<PathBuf>,
    #[arg(skip = String::from(DEFAULT_SCHEMA))]
    pub schema: String,
    #[arg(skip = DEFAULT_WAIT_TIMEOUT)]
    pub wait_timeout: Duration,
    /// Whether the command has the database options: only then may it connect.
    #[arg(skip)]
    pub connects: bool,

    // From LockArgs. `lock_timeout` also bounds how long schemagate's own statements
    // wait for a table lock, with this default for commands that take no advisory lock.
    #[arg(skip = DEFAULT_LOCK_TIMEOUT)]
    pub lock_timeout: Duration,
    #[arg(skip)]
    pub lock_key: Option<i64>,
    #[arg(skip = crate::db::lock::LockMode::Session)]
    pub lock_mode: crate::db::lock::LockMode,
    /// The `lock_timeout` of migration statements (zero: none) and how long a blocked
    /// migration is retried.
    #[arg(skip = DEFAULT_DDL_LOCK)]
    pub ddl_lock: crate::db::apply::DdlLock,

    // From FilesArgs and EmptyArgs.
    #[arg(skip = PathBuf::from(DEFAULT_MIGRATIONS))]
    pub migrations: PathBuf,
    #[arg(skip)]
    pub layout: Option<crate::files::layout::Layout>,
    #[arg(skip)]
    pub allow_empty: bool,
}

const DEFAULT_SCHEMA: &str = "public";
const DEFAULT_MIGRATIONS: &str = "./migrations";
const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(60);
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(15 * 60);
const DEFAULT_DDL_LOCK: crate::db::apply::DdlLock = crate::db::apply::DdlLock {
    timeout: Duration::from_secs(5),
    retry_for: Duration::from_secs(10 * 60),
    pooled: false,
};

/// The options of commands that connect.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Database")]
pub struct DatabaseArgs {
    /// PostgreSQL URL (postgres://user:password@host:5432/db?sslmode=require) or key=value string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// File holding the database URL (Docker/Kubernetes secrets).
    #[arg(long, env = "DATABASE_URL_FILE")]
    pub database_url_file: Option<PathBuf>,

    /// Schema that holds schemagate_history and schemagate_events.
    #[arg(
        long,
        env = "SCHEMAGATE_SCHEMA",
        default_value = DEFAULT_SCHEMA,
        value_parser = parse_schema
    )]
    pub schema: String,

    /// How long to wait for the database to accept connections (90s, 2m).
    #[arg(long, env = "SCHEMAGATE_WAIT_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub wait_timeout: Duration,
}

/// The options of commands that take the advisory lock.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Lock")]
pub struct LockArgs {
    /// How long to wait for another runner's advisory lock.
    #[arg(long, env = "SCHEMAGATE_LOCK_TIMEOUT", default_value = "15m", value_parser = parse_duration)]
    pub lock_timeout: Duration,

    /// Advisory lock key [default: derived from the history table's qualified name].
    #[arg(long, env = "SCHEMAGATE_LOCK_KEY", allow_negative_numbers = true)]
    pub lock_key: Option<i64>,

    /// session: pg_advisory_lock on the applying connection; transaction: held in an open
    /// transaction on a second connection (works behind PgBouncer pool_mode=transaction);
    /// none: no lock.
    #[arg(
        long,
        env = "SCHEMAGATE_LOCK_MODE",
        value_enum,
        default_value = "session"
    )]
    pub lock_mode: crate::db::lock::LockMode,

    /// PostgreSQL lock_timeout of every migration statement, so a blocked ALTER does not
    /// queue every reader of its table behind it; on a timeout the migration is rolled
    /// back and retried. 0 turns it off (statements wait as long as they must).
    #[arg(long, env = "SCHEMAGATE_DDL_LOCK_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub ddl_lock_timeout: Duration,

    /// How long a migration blocked by --ddl-lock-timeout is retried before exit 7.
    #[arg(long, env = "SCHEMAGATE_DDL_RETRY_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub ddl_retry_timeout: Duration,
}

/// The options of commands that read the migration files.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Files")]
pub struct FilesArgs {
    /// Folder of <revision>_<slug>.sql files.
    #[arg(long, env = "SCHEMAGATE_MIGRATIONS", default_value = DEFAULT_MIGRATIONS)]
    pub migrations: PathBuf,

    /// Whose folder layout to read: schemagate, dbmate, golang-migrate, sqlx, goose, flyway,
    /// sql-migrate [default: detected from the folder].
    #[arg(long, env = "SCHEMAGATE_LAYOUT", value_enum)]
    pub layout: Option<crate::files::layout::Layout>,
}

/// The option of commands that refuse an empty folder.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Files")]
pub struct EmptyArgs {
    /// Run on an empty or missing migrations folder (by default that is exit 3: usually
    /// a volume not mounted there).
    #[arg(long, env = "SCHEMAGATE_ALLOW_EMPTY")]
    pub allow_empty: bool,
}

/// Which option groups a command has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uses {
    pub database: bool,
    pub lock: bool,
    pub files: bool,
    /// `--allow-empty`: the commands that gate on the files (`commands::load`).
    pub allow_empty: bool,
}

/// The option groups of each command (by its name). A command not named here has them
/// all, so a new command can connect and lock before anyone lists it.
pub fn uses(command: &str) -> Uses {
    let all = Uses {
        database: true,
        lock: true,
        files: true,
        allow_empty: true,
    };
    let offline = Uses {
        database: false,
        lock: false,
        allow_empty: false,
        ..all
    };
    match command {
        "validate" => Uses {
            allow_empty: true,
            ..offline
        },
        "heads" | "new" | "merge" => offline,
        "diff" => Uses {
            lock: false,
            allow_empty: false,
            ..all
        },
        "check" => Uses { lock: false, ..all },
        "lint" => Uses {
            lock: false,
            allow_empty: false,
            ..all
        },
        "status" | "current" | "history" => Uses {
            lock: false,
            allow_empty: false,
            ..all
        },
        "wait" => Uses {
            lock: false,
            files: false,
            allow_empty: false,
            ..all
        },
        "resolve" => Uses {
            allow_empty: false,
            ..all
        },
        _ => all,
    }
}

/// The arguments of a group, to attach to a command.
fn group_args<T: Args>() -> Vec<clap::Arg> {
    T::augment_args(clap::Command::new("group"))
        .get_arguments()
        .cloned()
        .collect()
}

impl clap::CommandFactory for Cli {
    /// The derived command line with each command's option groups attached.
    fn command() -> clap::Command {
        let mut cli = Derived::command();
        let names: Vec<String> = cli
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        for name in names {
            let uses = uses(&name);
            cli = cli.mut_subcommand(&name, |mut command| {
                for (wanted, args) in [
                    (uses.database, group_args::<DatabaseArgs>()),
                    (uses.lock, group_args::<LockArgs>()),
                    (uses.files, group_args::<FilesArgs>()),
                    (uses.allow_empty, group_args::<EmptyArgs>()),
                ] {
                    if wanted {
                        command = command.args(args);
                    }
                }
                command
            });
        }
        cli
    }

    fn command_for_update() -> clap::Command {
        Self::command()
    }
}

impl FromArgMatches for Cli {
    fn from_arg_matches(matches: &clap::ArgMatches) -> std::result::Result<Self, clap::Error> {
        let Derived {
            mut global,
            command,
        } = Derived::from_arg_matches(matches)?;
        if let Some((name, sub)) = matches.subcommand() {
            global.fill(uses(name), sub)?;
        }
        Ok(Cli { global, command })
    }

    fn update_from_arg_matches(
        &mut self,
        matches: &clap::ArgMatches,
    ) -> std::result::Result<(), clap::Error> {
        *self = Cli::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Parser for Cli {}

impl Cli {
    /// Parses the process's command line and environment.
    pub fn parse_args() -> std::result::Result<Cli, clap::Error> {
        Cli::parse_args_from(std::env::args_os())
    }

    /// As `try_parse_from`, with a message naming the commands a misplaced option
    /// belongs to.
    pub fn parse_args_from<I, T>(args: I) -> std::result::Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        let mut command = <Cli as clap::CommandFactory>::command();
        let matches = command
            .try_get_matches_from_mut(&args)
            .map_err(|e| explain_misplaced(e, &mut command, &args))?;
        Cli::from_arg_matches(&matches)
    }
}

impl Global {
    fn fill(
        &mut self,
        uses: Uses,
        matches: &clap::ArgMatches,
    ) -> std::result::Result<(), clap::Error> {
        if uses.database {
            let d = DatabaseArgs::from_arg_matches(matches)?;
            self.database_url = d.database_url;
            self.database_url_file = d.database_url_file;
            self.schema = d.schema;
            self.wait_timeout = d.wait_timeout;
            self.connects = true;
        }
        if uses.lock {
            let l = LockArgs::from_arg_matches(matches)?;
            self.lock_timeout = l.lock_timeout;
            self.lock_key = l.lock_key;
            self.lock_mode = l.lock_mode;
            self.ddl_lock = crate::db::apply::DdlLock {
                timeout: l.ddl_lock_timeout,
                retry_for: l.ddl_retry_timeout,
                pooled: l.lock_mode == crate::db::lock::LockMode::Transaction,
            };
        }
        if uses.files {
            let f = FilesArgs::from_arg_matches(matches)?;
            self.migrations = f.migrations;
            self.layout = f.layout;
        }
        if uses.allow_empty {
            self.allow_empty = EmptyArgs::from_arg_matches(matches)?.allow_empty;
        }
        Ok(())
    }
}

/// `validate --database-url x`: clap's "unexpected argument", saying why and which
/// commands take it.
fn explain_misplaced(
    error: clap::Error,
    command: &mut clap::Command,
    args: &[std::ffi::OsString],
) -> clap::Error {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if error.kind() != ErrorKind::UnknownArgument {
        return error;
    }
    let Some(ContextValue::String(given)) = error.get(ContextKind::InvalidArg) else {
        return error;
    };
    let flag = given.split('=').next().unwrap_or_default().to_string();
    let takes = |c: &clap::Command| {
        c.get_arguments()
            .any(|a| a.get_long().is_some_and(|long| format!("--{long}") == flag))
    };
    let users: Vec<String> = command
        .get_subcommands()
        .filter(|c| takes(c))
        .map(|c| c.get_name().to_string())
        .collect();
    let Some(name) = args
        .iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find_map(|a| command.find_subcommand(a).map(|c| c.get_name().to_string()))
    else {
        return error;
    };
    if users.is_empty() {
        return error;
    }
    let what = match flag.as_str() {
        "--lock-timeout" | "--lock-key" | "--lock-mode" => "takes no advisory lock",
        "--migrations" | "--allow-empty" => "does not use it",
        _ => "does not connect to a database",
    };
    let message = format!(
        "`{name}` {what}, so {flag} means nothing here; it is an option of {}",
        users.join(", ")
    );
    match command.find_subcommand_mut(&name) {
        Some(sub) => sub.error(ErrorKind::UnknownArgument, message),
        None => command.error(ErrorKind::UnknownArgument, message),
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations: every head, up to a revision, or the next N (Alembic: upgrade).
    #[command(
        visible_alias = "upgrade",
        after_help = "Examples:\n  schemagate up                     every head (the container job)\n  schemagate up +1                  the next migration only\n  schemagate up 20251215093000      up to that revision (a unique prefix is enough)\n  schemagate up --dry-run           say what would run\n  schemagate up --sql > deploy.sql  the SQL that would run, for review\n  schemagate up base:head --sql     the same with no database (offline)\n  schemagate up --exec -- uvicorn main:app   migrate, then become the app"
    )]
    Up(UpArgs),
    /// Revert migrations: -N, back to a revision, or base (Alembic: downgrade).
    #[command(
        visible_alias = "downgrade",
        after_help = "Examples:\n  schemagate down -1                the last migration\n  schemagate down 20251215093000    back to that revision (it stays applied)\n  schemagate down base              everything\n  schemagate down 20251215093000:base --sql   offline SQL for review\n\nRefuses up front, reverting nothing, if a migration on the way has no `-- migrate:down` section."
    )]
    Down(DownArgs),
    /// Revert the last migration and apply it again (test a down section).
    #[command(after_help = "Example: schemagate redo")]
    Redo(ReconcileArgs),
    /// Revert every migration, then apply every migration (development only).
    #[command(after_help = "Example: schemagate reset --yes")]
    Reset(ResetArgs),
    /// Each migration and its state: applied, pending, changed, dirty or unknown.
    #[command(
        after_help = "Examples:\n  schemagate status\n  schemagate status --format json | jq '.counts'"
    )]
    Status(StatusArgs),
    /// The database's current revision(s) (Alembic: current).
    #[command(after_help = "Example: schemagate current -v")]
    Current(VerboseArgs),
    /// The revision graph, newest first, with heads, branch and merge points (Alembic: history).
    #[command(
        visible_alias = "log",
        after_help = "Examples:\n  schemagate history        with each migration's state when a database is configured\n  schemagate history -v     with files, parents and when each was applied\n  schemagate history --offline"
    )]
    History(HistoryArgs),
    /// The heads of the files' graph: migrations nothing revises yet (Alembic: heads).
    #[command(after_help = "Example: schemagate heads -v")]
    Heads(VerboseArgs),
    /// Write a new, empty migration file revising the current head (Alembic: revision -m).
    #[command(
        visible_alias = "revision",
        after_help = "Examples:\n  schemagate new \"add phone to users\"\n  schemagate new -m \"add phone to users\"   (Alembic's spelling)\n  schemagate new --autogenerate \"add phone to users\"   written from schema.sql\n\nWrites migrations/<UTC timestamp>_add_phone_to_users.sql with `-- migrate:revises <head>`.\nRefuses when the files have several heads: run `schemagate merge` first."
    )]
    New(NewArgs),
    /// Write a migration that joins several heads into one (Alembic: merge).
    #[command(
        after_help = "Examples:\n  schemagate merge \"merge heads\"              every head\n  schemagate merge \"merge heads\" 2025121 2025122   the heads named"
    )]
    Merge(MergeArgs),
    /// Record revisions as applied without running their SQL (Alembic: stamp).
    #[command(
        after_help = "Examples:\n  schemagate stamp 20251201090000   baseline a database that already has this schema\n  schemagate stamp head             everything is already there\n  schemagate stamp base             forget every revision (runs no SQL)"
    )]
    Stamp(StampArgs),
    /// Exit 0 when the database is at head, 9 when migrations are pending (Alembic: check).
    #[command(
        after_help = "Examples:\n  schemagate check                  in CI: fail when a deploy forgot to migrate\n  schemagate check --wait --timeout 10m   an app's init container while a Job migrates\n  schemagate check --against-schema      in CI: exit 10 when schema.sql has changes no migration has\n  schemagate check --drift               exit 10 when the database was changed by hand"
    )]
    Check(CheckArgs),
    /// Print the SQL that takes one schema state to another.
    #[command(
        after_help = "States: migrations (every head), migrations@REV, schema (the schema file), database (the configured one, read only), or a postgres:// URL.\n\nExamples:\n  schemagate diff --from migrations --to schema      what autogenerate would write\n  schemagate diff --from migrations --to database    hand edits in production\n  schemagate diff --from migrations@20251201090000 --to migrations"
    )]
    Diff(DiffArgs),
    /// Validate the migration files without touching the database.
    #[command(after_help = "Example: schemagate validate --strict")]
    #[command(
        after_help = "Examples:\n  schemagate validate --strict\n  schemagate validate --lint     in CI: also lint the heads' migrations (exit 11 on findings)"
    )]
    Validate {
        /// Several heads (unmerged branches) are an error.
        #[arg(long)]
        strict: bool,
        /// Also lint the heads' migrations on a scratch database (see `lint`): exit 11
        /// when something is found.
        #[arg(long)]
        lint: bool,
        /// The lint report's format, with --lint.
        #[arg(long, value_enum, default_value = "text", requires = "lint")]
        format: LintFormat,
        #[command(flatten)]
        scratch: ScratchArgs,
    },
    /// Run migrations on a scratch database and report what they lock, rewrite and scan on
    /// existing tables (exit 11 when something is found).
    #[command(
        after_help = "Examples:\n  schemagate lint                   the pending migrations (the heads' migrations with no database configured)\n  schemagate lint --all             every migration\n  schemagate lint 20251215093000    that one\n  schemagate lint --format sarif > lint.sarif   for GitHub code scanning\n\nExcuse one statement with `-- schemagate:allow <rule> <reason>` on the line above it.\nRules: rewrite, validating-scan, index-not-concurrent, rename, drop, lock-timeout."
    )]
    Lint(LintArgs),
    /// Clear a dirty transaction:false migration after checking the database by hand.
    #[command(after_help = "Example: schemagate resolve 20251215093000 --applied")]
    Resolve(ResolveArgs),
    /// Re-record the checksums of applied migrations whose files had a harmless edit (Flyway: repair).
    #[command(
        after_help = "Examples:\n  schemagate repair --dry-run   what would be re-recorded\n  schemagate repair             re-record them, one event each\n\nOnly for edits that change nothing the database has (a comment, formatting): a real\nchange belongs in a new migration."
    )]
    Repair(RepairArgs),
    /// Wait until the database accepts connections, then exit 0.
    #[command(after_help = "Example: schemagate wait --wait-timeout 30s")]
    Wait,
    /// Take over a database another tool managed: record what its history table says is applied.
    #[command(
        after_help = "Examples:\n  schemagate adopt                  the one tool table present (golang-migrate, dbmate, sqlx, goose, flyway, sql-migrate, alembic)\n  schemagate adopt --from flyway    when several are present\n  schemagate adopt --dry-run        say what would be recorded\n\nRuns no migration SQL and leaves the tool's table unchanged. Refuses (exit 8) while the tool's state is dirty or failed, or when it applied revisions no file has."
    )]
    Adopt(AdoptArgs),
}

/// `adopt` (PRODUCT.md section 9).
#[derive(Debug, Clone, Args)]
pub struct AdoptArgs {
    /// The tool whose history table to read, when several are present.
    #[arg(long, value_enum, value_name = "TOOL")]
    pub from: Option<crate::cli::tool::Tool>,
    /// Say what would be recorded, without recording it.
    #[arg(long)]
    pub dry_run: bool,
}

/// How an edited or unknown migration is treated (PRODUCT.md section 3, reconcile).
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// Go on when an applied migration's file was edited (checksum differs).
    #[arg(long, env = "SCHEMAGATE_ALLOW_CHANGED", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_changed: bool,
    /// Apply pending migrations that are older than applied descendants.
    #[arg(long)]
    pub allow_out_of_order: bool,
    /// Fail when the database has migrations these files do not know.
    #[arg(long)]
    pub strict: bool,
    /// Record a renamed file (same up section as an applied revision no file has) as
    /// that revision, instead of stopping.
    #[arg(long, env = "SCHEMAGATE_ALLOW_RENAMED", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_renamed: bool,
    /// Apply even when none of the database's applied revisions is in the folder
    /// (otherwise "probably the wrong folder", exit 8).
    #[arg(long, env = "SCHEMAGATE_ALLOW_UNKNOWN", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_unknown: bool,
}

/// Many databases, or many tenant schemas of one, in one run (PRODUCT.md section 12).
/// With none of the three target options, the command runs on the one configured database.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Fleet")]
pub struct FleetArgs {
    /// Run on every target in FILE, one postgres:// URL or key=value string a line (`#`
    /// comments; `-` reads stdin). PG* variables and .pgpass fill in what a line leaves out.
    #[arg(long, env = "SCHEMAGATE_TARGETS", value_name = "FILE")]
    pub targets: Option<PathBuf>,
    /// Run on every row of this query, run on the configured database: a URL, a key=value
    /// string, or a database name on the same server.
    #[arg(long, env = "SCHEMAGATE_TARGETS_QUERY", value_name = "SQL")]
    pub targets_query: Option<String>,
    /// Run on every schema this query returns (on the configured database, or on each
    /// database of --targets / --targets-query): each gets its own history tables and lock,
    /// and its migrations run with search_path set to it.
    #[arg(long, env = "SCHEMAGATE_TENANT_SCHEMAS_QUERY", value_name = "SQL")]
    pub tenant_schemas_query: Option<String>,
    /// Targets in flight at once, one connection each.
    #[arg(long, env = "SCHEMAGATE_PARALLEL", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub parallel: u32,
    /// Take only this shard's targets: INDEX/COUNT, INDEX from 0 [default: INDEX from
    /// JOB_COMPLETION_INDEX, a Kubernetes Indexed Job's, when a shard count is set].
    #[arg(long, env = "SCHEMAGATE_SHARD", value_name = "INDEX/COUNT")]
    pub shard: Option<String>,
    /// The number of shards, for --shard INDEX or JOB_COMPLETION_INDEX.
    #[arg(long, env = "SCHEMAGATE_SHARD_COUNT", value_name = "COUNT")]
    pub shard_count: Option<u32>,
    /// Write every target's outcome to FILE as one JSON document.
    #[arg(long, env = "SCHEMAGATE_REPORT", value_name = "FILE")]
    pub report: Option<PathBuf>,
}

impl FleetArgs {
    /// Whether targets are named: the command then runs on them, not on the one database.
    pub fn is_fleet(&self) -> bool {
        self.targets.is_some()
            || self.targets_query.is_some()
            || self.tenant_schemas_query.is_some()
    }
}

/// How a fleet's `up` rolls out.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Fleet")]
pub struct RolloutArgs {
    /// Start no new target after K have failed (those running finish).
    #[arg(long, env = "SCHEMAGATE_MAX_FAILURES", value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_failures: Option<u32>,
    /// Migrate the first N targets first, and stop if any of them fails.
    #[arg(long, env = "SCHEMAGATE_CANARY", value_name = "N", default_value_t = 0)]
    pub canary: u32,
    /// A fleet's result lines on stdout: text, or one JSON object a target.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// Every head when omitted; head(s), a revision (or unique prefix), +N; FROM:TO with --sql.
    #[arg(value_name = "TARGET", allow_negative_numbers = true)]
    pub target: Option<String>,
    /// Print the SQL instead of running it (with a FROM:TO target, no database is needed).
    #[arg(long, conflicts_with_all = ["dry_run", "exec"])]
    pub sql: bool,
    /// Say what would be applied, without applying it.
    #[arg(long, conflicts_with = "exec")]
    pub dry_run: bool,
    /// Run every pending migration in one transaction: all or nothing.
    #[arg(long)]
    pub single_transaction: bool,
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
    /// After a successful run, replace this process with the command after `--`.
    #[arg(long, requires = "command")]
    pub exec: bool,
    /// The command for --exec, with its arguments.
    #[arg(last = true, value_name = "CMD", requires = "exec")]
    pub command: Vec<std::ffi::OsString>,
    /// While schemagate's history is empty, first adopt the history of the tool that managed
    /// this database (see `adopt`); --adopt=TOOL when several tools' tables are present.
    #[arg(long, value_name = "TOOL", num_args = 0..=1, require_equals = true, conflicts_with_all = ["sql", "dry_run"])]
    pub adopt: Option<Option<crate::cli::tool::Tool>>,
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub rollout: RolloutArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DownArgs {
    /// -N, a revision (or unique prefix) to go back to, or base; FROM:TO with --sql.
    #[arg(value_name = "TARGET", allow_hyphen_values = true)]
    pub target: String,
    /// Print the SQL instead of running it (with a FROM:TO target, no database is needed).
    #[arg(long, conflicts_with = "dry_run")]
    pub sql: bool,
    /// Say what would be reverted, without reverting it.
    #[arg(long)]
    pub dry_run: bool,
    /// Go on when a migration's file was edited after it was applied.
    #[arg(long, env = "SCHEMAGATE_ALLOW_CHANGED", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_changed: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ResetArgs {
    /// Yes, revert every migration (losing what their tables hold) and apply them again.
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub reconcile: ReconcileArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Output format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Debug, Clone, Args)]
pub struct VerboseArgs {
    /// More detail: files, parents, when and by whom.
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub verbose: VerboseArgs,
    /// Do not read the database, even when one is configured.
    #[arg(long)]
    pub offline: bool,
}

#[derive(Debug, Clone, Args)]
pub struct NewArgs {
    /// What the migration does; becomes the file name's slug.
    #[arg(required_unless_present = "message_flag")]
    pub message: Option<String>,
    /// The message, as Alembic's `revision -m` spells it.
    #[arg(
        short = 'm',
        long = "message",
        id = "message_flag",
        conflicts_with = "message"
    )]
    pub message_flag: Option<String>,
    /// The revision id [default: the current UTC time, YYYYMMDDHHMMSS].
    #[arg(long)]
    pub revision: Option<String>,
    /// The parent revision [default: the single head].
    #[arg(long)]
    pub revises: Option<String>,
    /// Write the migration from the difference between the migrations' head and the
    /// schema file (Alembic: revision --autogenerate), checked on a scratch database.
    #[arg(long)]
    pub autogenerate: bool,
    #[command(flatten)]
    pub scratch: ScratchArgs,
}

/// Where autogenerate, `diff` and `check --against-schema/--drift` build and compare states.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Schema")]
pub struct ScratchArgs {
    /// A server where schemagate may create and drop throwaway databases [default: a
    /// throwaway cluster of its own, from PostgreSQL's server binaries].
    #[arg(long, env = "SCHEMAGATE_DEV_URL", hide_env_values = true)]
    pub dev_url: Option<String>,
    /// Folder of PostgreSQL's server binaries (initdb, postgres) for the throwaway
    /// cluster [default: `pg_config --bindir`].
    #[arg(long, env = "SCHEMAGATE_PG_BIN")]
    pub pg_bin: Option<PathBuf>,
    /// The desired schema: a .sql file or a folder of them applied in name order
    /// [default: schema.sql, else schema/, beside the migrations folder].
    #[arg(long, env = "SCHEMAGATE_SCHEMA_FILE")]
    pub schema_file: Option<PathBuf>,
    /// Build indexes on existing tables without CONCURRENTLY (in the migration's
    /// transaction, blocking writes while they build).
    #[arg(long)]
    pub no_concurrently: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    Text,
    Json,
    /// SARIF 2.1.0, for GitHub code scanning.
    Sarif,
}

/// `lint` (PRODUCT.md section 11).
#[derive(Debug, Clone, Args)]
pub struct LintArgs {
    /// Revisions (or unique prefixes) to lint [default: the pending ones when a database is
    /// configured, else the heads' migrations].
    #[arg(value_name = "REV")]
    pub revisions: Vec<String>,
    /// Lint every migration.
    #[arg(long, conflicts_with = "revisions")]
    pub all: bool,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub format: LintFormat,
    #[command(flatten)]
    pub scratch: ScratchArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DiffArgs {
    /// The state to start from: migrations, migrations@REV, schema, database, or a
    /// postgres:// URL (read only).
    #[arg(long)]
    pub from: String,
    /// The state to reach (the same words).
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub scratch: ScratchArgs,
}

#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// What the merge is; becomes the file name's slug.
    pub message: String,
    /// The revisions to join [default: every head].
    #[arg(value_name = "REVISION")]
    pub revisions: Vec<String>,
    /// The merge migration's revision id [default: the current UTC time].
    #[arg(long)]
    pub revision: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct StampArgs {
    /// head, base, or revision(s): they and their ancestors become the history.
    #[arg(value_name = "TARGET", required = true)]
    pub targets: Vec<String>,
    /// Also delete history rows of revisions no file has.
    #[arg(long)]
    pub purge: bool,
}

#[derive(Debug, Clone, Args)]
pub struct CheckArgs {
    /// Block until the database is at head (for an app's init container).
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits for the database to reach head.
    #[arg(long, env = "SCHEMAGATE_CHECK_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Fail when the database has migrations these files do not know.
    #[arg(long)]
    pub strict: bool,
    /// Pass even when none of the database's applied revisions is in the folder.
    #[arg(long, env = "SCHEMAGATE_ALLOW_UNKNOWN", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_unknown: bool,
    /// Instead: exit 10 unless the migrations' head equals the schema file (Alembic's
    /// check), printing the SQL between them. Needs no database.
    #[arg(long, conflicts_with_all = ["wait", "drift"])]
    pub against_schema: bool,
    /// Instead: exit 10 unless the database equals what its applied migrations make
    /// (hand edits show up), printing the SQL from what they make to what is there.
    #[arg(long, conflicts_with_all = ["wait"])]
    pub drift: bool,
    #[command(flatten)]
    pub scratch: ScratchArgs,
    /// A fleet's result on stdout: a text table, or JSON.
    #[arg(long, value_enum, default_value = "text")]
    pub format: OutputFormat,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Debug, Clone, Args)]
pub struct RepairArgs {
    /// Say what would be re-recorded, without recording it.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("outcome").required(true).args(["applied", "rolled_back"])))]
pub struct ResolveArgs {
    /// The dirty revision.
    pub revision: String,
    /// Its changes are in the database: mark it applied.
    #[arg(long)]
    pub applied: bool,
    /// Its changes are not in the database: forget it, so `up` runs it again.
    #[arg(long)]
    pub rolled_back: bool,
}

/// An empty schema name is never what was meant (a variable set to nothing); PostgreSQL
/// would reject the quoted `""` only once connected.
fn parse_schema(text: &str) -> std::result::Result<String, String> {
    if text.is_empty() {
        return Err(
            "the schema name is empty (--schema or SCHEMAGATE_SCHEMA): give a schema, \
             for example public, or unset SCHEMAGATE_SCHEMA for the default"
                .into(),
        );
    }
    Ok(text.to_string())
}

fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let duration = match text.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => humantime::parse_duration(text).map_err(|e| {
            format!("`{text}` is not a duration ({e}); write it like 90s, 2m or 1h")
        })?,
    };
    Ok(duration.min(FOREVER))
}

/// Whether any database is named at all: a URL, a URL file, or libpq's PGHOST, PGUSER or
/// PGDATABASE. Commands that can work without one (`history`) then stay offline.
pub fn is_configured(global: &Global, env: Env<'_>) -> bool {
    global.database_url.is_some()
        || global.database_url_file.is_some()
        || ["PGHOST", "PGUSER", "PGDATABASE"]
            .iter()
            .any(|name| env(name).is_some_and(|v| !v.is_empty()))
}

/// The database password, to keep out of every log line, also for commands that do not
/// connect (their environment may still hold `DATABASE_URL`).
pub fn secret(global: &Global, env: Env<'_>) -> Option<String> {
    let mut global = global.clone();
    if !global.connects {
        global.database_url = env("DATABASE_URL");
        global.database_url_file = env("DATABASE_URL_FILE").map(PathBuf::from);
        global.connects = true;
    }
    connection(&global, env).ok().and_then(|c| c.password())
}

/// Resolves the connection from the flags and the environment.
pub fn connection(global: &Global, env: Env<'_>) -> Result<Connection> {
    if !global.connects {
        return Err(Error::Internal(
            "a command without the database options tried to connect: list it in config::uses"
                .into(),
        ));
    }
    let url = match (&global.database_url, &global.database_url_file) {
        (Some(url), None) => Some(url.trim().to_string()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                Error::Usage(format!(
                    "cannot read DATABASE_URL_FILE {}: {e}",
                    path.display()
                ))
            })?;
            Some(text.trim().to_string())
        }
        (Some(_), Some(_)) => {
            return Err(Error::Usage(
                "both a database URL (--database-url / DATABASE_URL) and a URL file \
                 (--database-url-file / DATABASE_URL_FILE) are set: keep one"
                    .into(),
            ));
        }
        (None, None) => None,
    };
    let configured = is_configured(global, env);
    connection_for(url, configured, env)
}

/// A connection for a URL given by another option (`--dev-url`), read as libpq reads
/// `--database-url`: PG* variables fill in what it leaves out, `.pgpass` the password.
pub fn url_connection(url: &str, env: Env<'_>) -> Result<Connection> {
    connection_for(Some(url.trim().to_string()), true, env)
}

fn connection_for(url: Option<String>, configured: bool, env: Env<'_>) -> Result<Connection> {
    let pg = |name: &str| env(name).filter(|v| !v.is_empty());

    let env_port = match pg("PGPORT") {
        Some(port) => Some(
            port.parse::<u16>()
                .map_err(|_| Error::Usage(format!("PGPORT `{port}` is not a port number")))?,
        ),
        None => None,
    };
    let port_given = url.as_deref().is_some_and(names_port);
    // tokio-postgres fills in 5432 for a URL without a port, so PGPORT goes into the text.
    let url = match (url, env_port) {
        (Some(url), Some(port)) if !port_given && !url.is_empty() => Some(with_port(&url, port)),
        (url, _) => url,
    };
    let port_given = port_given || url.is_some();
    let (mut config, url_ssl_mode, url_root_cert) = match url.as_deref() {
        Some("") => {
            return Err(Error::Usage(
                "the database URL is empty: set DATABASE_URL to postgres://user:password@host:5432/db".into(),
            ));
        }
        Some(url) => parse_url(url)?,
        None => {
            if !configured {
                return Err(Error::Usage(
                    "no database configured: set DATABASE_URL (postgres://user:password@host:5432/db), \
                     DATABASE_URL_FILE, --database-url, or libpq's PGHOST/PGUSER/PGDATABASE"
                        .into(),
                ));
            }
            (tokio_postgres::Config::new(), None, None)
        }
    };

    // As in libpq, PG* variables fill in what the URL leaves out.
    if config.get_hosts().is_empty() {
        let hosts = pg("PGHOST").unwrap_or_else(|| "localhost".into());
        for host in hosts.split(',') {
            config.host(host);
        }
    }
    if !port_given && let Some(port) = env_port {
        config.port(port);
    }
    if config.get_user().is_none() {
        let user = pg("PGUSER")
            .or_else(|| env("USER"))
            .unwrap_or_else(|| "postgres".into());
        config.user(user);
    }
    if config.get_password().is_none()
        && let Some(password) = env("PGPASSWORD")
    {
        config.password(password);
    }
    if config.get_dbname().is_none() {
        let db = pg("PGDATABASE").or_else(|| config.get_user().map(str::to_string));
        if let Some(db) = db {
            config.dbname(db);
        }
    }
    // Last, as in libpq: the file is keyed by host, port, database and user.
    if config.get_password().is_none()
        && let Some(password) = crate::db::pgpass::find(&config, env)
    {
        config.password(password);
    }
    if config.get_application_name().is_none() {
        config.application_name(pg("PGAPPNAME").as_deref().unwrap_or("schemagate"));
    }
    let ssl_mode = match url_ssl_mode.or_else(|| pg("PGSSLMODE")) {
        Some(mode) => mode.parse::<SslMode>().map_err(Error::Usage)?,
        None => SslMode::Prefer,
    };
    // libpq's default, ~/.postgresql/root.crt, counts only when it exists; without it
    // verify-ca/verify-full use the system's CAs (tls.rs).
    let ssl_root_cert = url_root_cert
        .or_else(|| pg("PGSSLROOTCERT"))
        .map(PathBuf::from)
        .or_else(|| {
            let default = PathBuf::from(pg("HOME")?).join(".postgresql/root.crt");
            default.is_file().then_some(default)
        });
    Ok(Connection {
        config,
        ssl_mode,
        ssl_root_cert,
    })
}

/// Whether a URL or key=value string names a port (tokio-postgres fills in 5432 itself,
/// so the parsed config cannot tell).
fn names_port(url: &str) -> bool {
    match url.split_once("://") {
        Some((_, rest)) => {
            let authority = rest.split(['/', '?']).next().unwrap_or_default();
            let hosts = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            hosts.split(',').any(|host| match host.rsplit_once(']') {
                Some((_, after)) => after.starts_with(':'),
                None => host.contains(':'),
            })
        }
        None => key_values(url).is_ok_and(|pairs| pairs.iter().any(|(k, _)| k == "port")),
    }
}

/// Adds `port` to a URL or key=value string that names none.
fn with_port(url: &str, port: u16) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return format!("{url} port={port}");
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, hosts) = match authority.rsplit_once('@') {
        Some((user, hosts)) => (format!("{user}@"), hosts),
        None => (String::new(), authority),
    };
    if hosts.is_empty() {
        let separator = if tail.contains('?') { '&' } else { '?' };
        return format!("{url}{separator}port={port}");
    }
    let hosts: Vec<String> = hosts.split(',').map(|h| format!("{h}:{port}")).collect();
    format!("{scheme}://{user}{}{tail}", hosts.join(","))
}

/// Parses a URL or key=value string. `sslmode` and `sslrootcert` are taken out first:
/// tokio-postgres rejects `verify-ca`/`verify-full` and does not know `sslrootcert`.
fn parse_url(url: &str) -> Result<(tokio_postgres::Config, Option<String>, Option<String>)> {
    let mut ssl_mode = None;
    let mut root_cert = None;
    let rest = if let Some(after) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        check_url_shape(after)?;
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => ssl_mode = Some(percent_decode(value)),
                "sslrootcert" => root_cert = Some(percent_decode(value)),
                _ => kept.push(pair),
            }
        }
        if kept.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", kept.join("&"))
        }
    } else if url.contains("://") {
        let scheme = url.split("://").next().unwrap_or_default();
        return Err(Error::Usage(format!(
            "the database URL has scheme `{scheme}://`: use postgres://user:password@host:5432/db"
        )));
    } else {
        let mut kept = Vec::new();
        let pairs = key_values(url)?;
        for (i, (key, value)) in pairs.iter().enumerate() {
            if !KEYS.contains(&key.as_str()) {
                // The key may be the second half of a value with a space: never echo it.
                return Err(match i.checked_sub(1).map(|p| &pairs[p].0) {
                    Some(before) => unquoted_space(before),
                    None => Error::Usage(
                        "the database connection string starts with an unknown key: check its \
                         spelling (known: host, port, user, password, dbname, sslmode, ...)"
                            .into(),
                    ),
                });
            }
            if key == "host" {
                check_hosts(value.split(','), "the value of `host`")?;
            }
            let (key, value) = (key.clone(), value.clone());
            match key.as_str() {
                "sslmode" => ssl_mode = Some(value),
                "sslrootcert" => root_cert = Some(value),
                _ => kept.push(format!(
                    "{key}='{}'",
                    value.replace('\\', "\\\\").replace('\'', "\\'")
                )),
            }
        }
        kept.join(" ")
    };
    // tokio-postgres's messages name the offending option but never echo values.
    let config = rest.parse::<tokio_postgres::Config>().map_err(|e| {
        Error::Usage(format!(
            "the database URL is not valid: {e}; expected postgres://user:password@host:5432/db"
        ))
    })?;
    Ok((config, ssl_mode, root_cert))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The keys of a key=value string: tokio-postgres's, plus `sslrootcert`, which
/// `parse_url` takes out.
const KEYS: [&str; 20] = [
    "host",
    "hostaddr",
    "port",
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslmode",
    "sslnegotiation",
    "sslrootcert",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// A word that is not `key=value` after `key=`: most likely a value with a space in it.
fn unquoted_space(key: &str) -> Error {
    Error::Usage(format!(
        "the database connection string is not valid after `{key}=`: a word there is not \
         key=value, so the value of `{key}` probably contains a space. Quote the value \
         ({key}='my secret', with \\' for a quote inside), or percent-encode it in a URL"
    ))
}

/// What is wrong with a URL before any parser sees it: tokio-postgres ends the user
/// and password at the first `@` and the host at the next `/` or `?`, so an unencoded
/// `@` in a password makes the rest of it a host name (retried as a DNS failure for the
/// whole wait, and logged). Messages name the part and the fix, never its text.
fn check_url_shape(rest: &str) -> Result<()> {
    let encode = |what: &str, c: char, code: &str| {
        Error::Usage(format!(
            "the database URL has {what}: percent-encode `{c}` in the user or password as {code}"
        ))
    };
    let hosts_start = match rest.find('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            for (c, code) in [('/', "%2F"), ('?', "%3F"), ('#', "%23"), (' ', "%20")] {
                if userinfo.contains(c) {
                    return Err(encode(
                        &format!("an unencoded `{c}` before the host"),
                        c,
                        code,
                    ));
                }
            }
            at + 1
        }
        None => 0,
    };
    let after = &rest[hosts_start..];
    let hosts_end = after.find(['/', '?']).unwrap_or(after.len());
    let path_end = after.find('?').unwrap_or(after.len());
    if after[..path_end].contains('@') {
        return Err(encode("more than one `@` before the host", '@', "%40"));
    }
    if after[..hosts_end].contains([' ', '#']) {
        return Err(Error::Usage(
            "the database URL has a space or `#` in its host part: percent-encode them \
             (%20, %23) in the user or password, and check the host name"
                .into(),
        ));
    }
    let hosts = &after[..hosts_end];
    if hosts.is_empty() {
        return Ok(());
    }
    let mut names = Vec::new();
    for (i, chunk) in hosts.split(',').enumerate() {
        let (host, port) = match chunk.strip_prefix('[') {
            Some(inner) => {
                let Some((ip, after)) = inner.split_once(']') else {
                    return Err(Error::Usage(format!(
                        "host {} of the database URL opens `[` without `]`: write an IPv6 address as [::1]:5432",
                        i + 1
                    )));
                };
                if ip.is_empty()
                    || !ip
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || ":.%".contains(c))
                {
                    return Err(Error::Usage(format!(
                        "host {} of the database URL is not an IPv6 address inside [ ]",
                        i + 1
                    )));
                }
                (
                    None,
                    after
                        .strip_prefix(':')
                        .or_else(|| (!after.is_empty()).then_some(after)),
                )
            }
            None => match chunk.rsplit_once(':') {
                Some((host, port)) => (Some(host), Some(port)),
                None => (Some(chunk), None),
            },
        };
        if let Some(port) = port
            && (port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(Error::Usage(format!(
                "the database URL is not valid: the port of host {} is not a number: write \
                 host:5432, and percent-encode `:` or `@` in the user or password",
                i + 1
            )));
        }
        names.extend(host);
    }
    check_hosts(names.into_iter(), "the database URL")
}

/// Each host must be a host name, an IP address or a socket directory (a path, in a URL
/// percent-encoded as %2F...): anything else would only be retried as a DNS failure.
fn check_hosts<'a>(hosts: impl Iterator<Item = &'a str>, place: &str) -> Result<()> {
    for (i, host) in hosts.enumerate() {
        if host.is_empty() || host.starts_with('/') || host.to_ascii_lowercase().starts_with("%2f")
        {
            continue;
        }
        if let Some(bad) = host
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || ".-_:%".contains(*c)))
        {
            let shown = if bad.is_ascii_graphic() {
                format!("`{bad}`")
            } else {
                "a space or control character".into()
            };
            return Err(Error::Usage(format!(
                "host {} in {place} is not a valid host name, IP address or socket directory: \
                 it contains {shown}. Fix the host; if that part is really the end of a \
                 password, percent-encode the password's special characters (@ as %40)",
                i + 1
            )));
        }
    }
    Ok(())
}

/// libpq's `key=value key='quoted \' value'` form.
fn key_values(text: &str) -> Result<Vec<(String, String)>> {
    let invalid = |what: &str| {
        Error::Usage(format!(
            "the database connection string is not valid: {what}; expected key=value pairs or postgres://user:password@host:5432/db"
        ))
    };
    let mut pairs = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(pairs);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // The word may be the rest of the previous value: name that key, not the word.
            return Err(match pairs.last() {
                Some((before, _)) => unquoted_space(before),
                None => invalid("the first word has no `=value`"),
            });
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => {
                        return Err(invalid(&format!(
                            "the value of `{key}` has no closing quote"
                        )));
                    }
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        pairs.push((key, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn global(url: Option<&str>) -> Global {
        let mut args = vec!["schemagate", "status"];
        if let Some(url) = url {
            args.extend(["--database-url", url]);
        }
        let cli = Cli::parse_args_from(args).expect("valid args");
        cli.global
    }

    fn resolve(url: Option<&str>, vars: &[(&str, &str)]) -> Result<Connection> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        connection(&global(url), &|name| vars.get(name).cloned())
    }

    #[test]
    fn url_with_everything() {
        let c = resolve(Some("postgres://app:s3cret@db.internal:6543/appdb"), &[]).expect("ok");
        assert_eq!(c.describe(), "app@db.internal:6543/appdb");
        assert_eq!(c.password().as_deref(), Some("s3cret"));
        assert_eq!(c.config.get_application_name(), Some("schemagate"));
        assert_eq!(c.ssl_mode, SslMode::Prefer);
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn pg_variables_fill_what_the_url_leaves_out() {
        let c = resolve(
            Some("postgres://db/app"),
            &[
                ("PGUSER", "u"),
                ("PGPASSWORD", "pw"),
                ("PGPORT", "5433"),
                ("PGAPPNAME", "deploy"),
            ],
        )
        .expect("ok");
        assert_eq!(c.describe(), "u@db:5433/app");
        assert_eq!(c.password().as_deref(), Some("pw"));
        assert_eq!(c.config.get_application_name(), Some("deploy"));
    }

    #[test]
    fn pgport_goes_to_every_host_that_has_none() {
        assert_eq!(
            with_port("postgres://u:p@a,b/d?x=1", 7),
            "postgres://u:p@a:7,b:7/d?x=1"
        );
        assert_eq!(with_port("postgres:///d", 7), "postgres:///d?port=7");
        assert_eq!(with_port("host=h", 7), "host=h port=7");
        assert!(names_port("postgres://u@[::1]:5433/d"));
        assert!(!names_port("postgres://u@[::1]/d"));
        assert!(!names_port("postgres://u:pa:ss@h/d"));
        assert!(names_port("host=h port=1"));
    }

    #[test]
    fn pg_variables_alone() {
        let c = resolve(
            None,
            &[
                ("PGHOST", "h"),
                ("PGUSER", "u"),
                ("PGDATABASE", "d"),
                ("PGSSLMODE", "disable"),
            ],
        )
        .expect("ok");
        assert_eq!(c.describe(), "u@h:5432/d");
        assert_eq!(c.ssl_mode, SslMode::Disable);
    }

    #[test]
    fn nothing_configured_is_a_usage_error() {
        let e = resolve(None, &[]).expect_err("no database");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn ssl_parameters_are_taken_out_of_the_url() {
        let c = resolve(
            Some("postgres://u@h/d?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&connect_timeout=5"),
            &[],
        )
        .expect("ok");
        assert_eq!(c.ssl_mode, SslMode::VerifyFull);
        assert_eq!(c.ssl_root_cert, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(
            c.config.get_connect_timeout(),
            Some(&Duration::from_secs(5))
        );
    }

    #[test]
    fn key_value_strings() {
        let c = resolve(
            Some("host=h port=5499 user=u password='a \\'b' dbname=d sslmode=verify-ca"),
            &[],
        )
        .expect("ok");
        assert_eq!(c.describe(), "u@h:5499/d");
        assert_eq!(c.password().as_deref(), Some("a 'b"));
        assert_eq!(c.ssl_mode, SslMode::VerifyCa);
    }

    #[test]
    fn bad_urls_are_usage_errors_without_the_password() {
        for url in [
            "mysql://u:hunter2secret@h/d",
            "postgres://u:hunter2secret@h:notaport/d",
            "postgres://u:hunter2secret@h/d?sslmode=sometimes",
            "host=h password=hunter2secret bogus",
        ] {
            let e = resolve(Some(url), &[]).expect_err(url);
            assert_eq!(e.exit_code(), 2, "{url}: {e}");
            assert!(!e.to_string().contains("hunter2secret"), "{url}: {e}");
        }
    }

    /// Exit 2, and no 3-character piece of `secret` in the message.
    #[track_caller]
    fn refused_without_fragments(url: &str, secret: &str, says: &str) {
        let e = resolve(Some(url), &[]).expect_err(url);
        assert_eq!(e.exit_code(), 2, "{url}: {e}");
        let text = e.to_string();
        for i in 0..=secret.len() - 3 {
            let piece = &secret[i..i + 3];
            assert!(!text.contains(piece), "{url}: `{piece}` in: {text}");
        }
        assert!(text.contains(says), "{url}: {text}");
    }

    #[test]
    fn unencoded_characters_in_a_password_are_named_never_echoed() {
        for (url, secret, says) in [
            (
                "postgres://u:p@ss@host/db",
                "p@ss",
                "more than one `@` before the host: percent-encode `@` in the user or password as %40",
            ),
            (
                "postgres://app:Wq9@Zk7!vB@db.internal:5432/app",
                "Wq9@Zk7!vB",
                "%40",
            ),
            ("postgres://u:Wq9/Zk7vB@h/db", "Wq9/Zk7vB", "%2F"),
            ("postgres://u:Wq9?Zk7vB@h/db", "Wq9?Zk7vB", "%3F"),
            ("postgres://u:Wq9#Zk7vB@h/db", "Wq9#Zk7vB", "%23"),
            ("postgres://u:Wq9 Zk7vB@h/db", "Wq9 Zk7vB", "%20"),
            // Both `@` and `/`: the host looks fine, the path has the `@`.
            ("postgres://u:Wq9@Zk/7vB@h/db", "Wq9@Zk/7vB", "%40"),
        ] {
            refused_without_fragments(url, secret, says);
        }
    }

    #[test]
    fn a_colon_in_a_password_is_valid() {
        // RFC 3986 allows `:` in the password; libpq and tokio-postgres read it so.
        let c = resolve(Some("postgres://u:pa:ss@h:5433/d"), &[]).expect("valid");
        assert_eq!(c.password().as_deref(), Some("pa:ss"));
        assert_eq!(c.describe(), "u@h:5433/d");
    }

    #[test]
    fn invalid_hosts_and_ports_fail_at_once() {
        for (url, secret) in [
            ("postgres://u:Wq9Zk7vB@db!internal:5432/app", "Wq9Zk7vB"),
            ("postgres://u:Wq9Zk7vB@db:54x2/app", "Wq9Zk7vB"),
            ("postgres://u:Wq9Zk7vB@[::1/app", "Wq9Zk7vB"),
            ("postgres://u:Wq9Zk7vB@h1,h$2/app", "Wq9Zk7vB"),
            ("host=db!x password=Wq9Zk7vB", "Wq9Zk7vB"),
        ] {
            refused_without_fragments(url, secret, "host");
        }
        for url in [
            "postgres://u@db_1.internal-2:5432/d",
            "postgres://u@[::1]:5432/d",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/d",
            "postgres://u@a:1,b:2/d",
            "postgres:///d",
            "postgres://u@h/d?application_name=a@b",
            "host=/var/run/postgresql dbname=d",
            "host=::1 dbname=d",
        ] {
            resolve(Some(url), &[]).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn a_space_in_a_key_value_password_names_the_key() {
        for url in [
            "host=h password=Wq9xyz Zk7vBq",
            "host=h password=Wq9xyz Zk7vBq dbname=d",
            "host=h password=Wq9xyz Zk7vB=q",
        ] {
            refused_without_fragments(url, "Wq9xyz Zk7vBq", "password='");
        }
        refused_without_fragments("Wq9xyzZk7 host=h", "Wq9xyzZk7", "first word");
    }

    #[test]
    fn describe_lists_every_host_and_port() {
        let c = resolve(Some("postgres://u@h1:5432,h2:5433/db"), &[]).expect("ok");
        assert_eq!(c.describe(), "u@h1:5432,h2:5433/db");
        let c = resolve(Some("host=h1,h2 port=6000 user=u dbname=db"), &[]).expect("ok");
        assert_eq!(c.describe(), "u@h1:6000,h2:6000/db");
    }

    #[test]
    fn an_empty_schema_is_a_usage_error() {
        let e = Cli::parse_args_from(["schemagate", "up", "--schema", ""]).expect_err("empty");
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("SCHEMAGATE_SCHEMA"), "{e}");
    }

    #[test]
    fn each_command_gets_its_groups_and_the_defaults_of_the_others() {
        let parse = |args: &[&str]| {
            let mut all = vec!["schemagate"];
            all.extend(args);
            Cli::parse_args_from(all).expect("valid").global
        };
        let up = parse(&[
            "up",
            "--database-url",
            "postgres://u@h/d",
            "--lock-timeout",
            "5s",
        ]);
        assert!(up.connects);
        assert_eq!(up.lock_timeout, Duration::from_secs(5));
        assert_eq!(up.database_url.as_deref(), Some("postgres://u@h/d"));
        // The skipped fields' defaults are the groups' defaults.
        let defaults = parse(&["up"]);
        let status = parse(&["status", "--log-level", "debug"]);
        let validate = parse(&["--log-format", "json", "validate"]);
        for g in [&status, &validate] {
            assert_eq!(g.lock_timeout, defaults.lock_timeout);
            assert_eq!(g.lock_mode, defaults.lock_mode);
            assert_eq!(g.ddl_lock, defaults.ddl_lock);
            assert_eq!(g.migrations, defaults.migrations);
        }
        assert_eq!(
            (defaults.ddl_lock.timeout, defaults.ddl_lock.retry_for),
            (Duration::from_secs(5), Duration::from_secs(600))
        );
        let off = parse(&[
            "down",
            "base",
            "--ddl-lock-timeout",
            "0",
            "--ddl-retry-timeout",
            "3s",
        ]);
        assert_eq!(
            (off.ddl_lock.timeout, off.ddl_lock.retry_for),
            (Duration::ZERO, Duration::from_secs(3))
        );
        assert_eq!(validate.schema, defaults.schema);
        assert_eq!(validate.wait_timeout, defaults.wait_timeout);
        assert!(status.connects && !validate.connects);
        assert_eq!(status.log_level, "debug");
        assert_eq!(validate.log_format, LogFormat::Json);
        // An offline command never connects, whatever the environment says.
        let e = connection(&validate, &|_| Some("postgres://u@h/d".into())).expect_err("offline");
        assert_eq!(e.exit_code(), 1);
    }

    #[test]
    fn an_option_of_other_commands_says_which() {
        let e = Cli::parse_args_from(["schemagate", "validate", "--database-url=x"])
            .expect_err("offline");
        assert_eq!(e.exit_code(), 2);
        let text = e.to_string();
        assert!(
            text.contains("`validate` does not connect to a database, so --database-url"),
            "{text}"
        );
        assert!(text.contains("up, down"), "{text}");
        let e = Cli::parse_args_from(["schemagate", "status", "--lock-mode", "none"])
            .expect_err("no lock");
        assert!(e.to_string().contains("takes no advisory lock"), "{e}");
        // Anything else stays clap's own message.
        let e = Cli::parse_args_from(["schemagate", "up", "--bogus"]).expect_err("bogus");
        assert!(
            e.to_string().contains("unexpected argument '--bogus'"),
            "{e}"
        );
    }

    #[test]
    fn url_and_url_file_together_is_an_error() {
        let mut g = global(Some("postgres://u@h/d"));
        g.database_url_file = Some(PathBuf::from("/nonexistent"));
        let e = connection(&g, &|_| None).expect_err("both");
        assert_eq!(e.exit_code(), 2);
    }

    #[test]
    fn durations_are_humane() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration(&u64::MAX.to_string()), Ok(FOREVER));
    }
}
