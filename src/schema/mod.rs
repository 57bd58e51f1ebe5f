//! The schema engine (PRODUCT.md section 10): a database's schema read into plain data,
//! the difference of two as a pure function ordered by dependencies, hazards as data, and
//! the scratch PostgreSQL that the states are built on from migrations or the desired
//! schema files.

pub mod autogen;
pub mod catalog;
pub mod desired;
pub mod diff;
pub mod hazard;
pub mod model;
pub mod scratch;
