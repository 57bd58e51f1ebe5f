//! `lint`: what a migration does to objects that existed before it, seen by running it
//! on a scratch database at its parent state rather than guessed from its text.
//!
//! `observe` runs and reads (pure data out), `rules` turns observations into findings
//! (pure functions), `report` writes them for people and for CI (text, JSON, SARIF).

pub mod lock;
pub mod observe;
pub mod report;
pub mod rules;
