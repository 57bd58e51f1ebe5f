//! The migration folder: files read, split into sections and statements, and ordered
//! into a graph, with no database in sight.

pub mod graph;
pub mod layout;
pub mod migration;
pub mod scaffold;
pub mod source;
pub mod split;
