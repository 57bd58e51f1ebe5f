//! The command line: options, and the commands built from the layers below.

pub mod adopt;
pub mod autogenerate;
pub mod commands;
pub mod config;
pub mod context;
pub mod fleet;
pub mod lint;
pub mod migrator;
pub mod report;
pub mod tool;
