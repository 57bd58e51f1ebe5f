//! What a command needs beyond its own arguments.

use std::time::Instant;

use crate::cli::config::Global;
use crate::db::interrupt::Interrupt;
use crate::env::Env;

/// What every command needs: the settings and the signal watcher.
pub struct Context<'a> {
    pub global: &'a Global,
    pub interrupt: &'a Interrupt,
    pub env: Env<'a>,
    /// When the process started, for the summary line's elapsed time.
    pub started: Instant,
}
