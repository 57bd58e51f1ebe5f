//! What to run, as pure functions of the files' graph and the history rows.

pub mod fleet;
pub mod reconcile;
pub mod target;
