//! The schema engine: a database's schema read into plain data, the difference of two
//! as a pure function, and the SQL plan ordered by dependencies.

pub mod catalog;
pub mod diff;
pub mod hazard;
pub mod model;
