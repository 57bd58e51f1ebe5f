//! schemagate: a PostgreSQL migration runner for containers.
//!
//! One run reads and validates the migration files, waits for the database, takes an
//! advisory lock, applies what is pending and exits with a code an orchestrator can act
//! on. `main.rs` only parses the command line and maps [`Error`] to an exit code.
//!
//! The folders are layers, each using only the ones before it:
//! the crate root (errors, wording, logging), `files` (the migration folder read into a
//! graph), `plan` (what to run, as pure functions), `db` (sessions, the lock, the history
//! tables, applying), `schema` (states on a scratch server), `lint` (what a migration
//! locks, observed there), and `cli` (options and the commands built from the rest).

pub mod cli;
pub mod db;
pub mod env;
pub mod error;
pub mod files;
pub mod lint;
pub mod output;
pub mod plan;
pub mod schema;
pub mod text;

pub use error::{Error, Result};
