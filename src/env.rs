//! The process environment as a function, so tests can supply their own.

/// Where configuration values come from; a trait object so tests can supply a fake environment.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;
