//! schemagate: a PostgreSQL migration runner for containers.
//!
//! One run reads and validates the migration files, waits for the database, takes an
//! advisory lock, applies what is pending and exits with a code an orchestrator can act
//! on. `main.rs` only parses the command line and maps [`Error`] to an exit code.

pub mod adopt;
pub mod apply;
pub mod commands;
pub mod config;
pub mod db;
pub mod error;
pub mod graph;
pub mod guard;
pub mod history;
pub mod identity;
pub mod interrupt;
pub mod layout;
pub mod lock;
pub mod migration;
pub mod migrator;
pub mod output;
pub mod pgpass;
pub mod plan;
pub mod report;
pub mod scaffold;
pub mod script;
pub mod source;
pub mod split;
pub mod target;
pub mod tls;
pub mod wait;

pub use error::{Error, Result};
