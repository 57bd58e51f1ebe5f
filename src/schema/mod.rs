//! The schema as data: the scratch PostgreSQL that states are built on, and the desired
//! schema files they are built from (for `new --autogenerate`, `diff` and `check
//! --against-schema/--drift`, PRODUCT.md section 10).

pub mod desired;
pub mod scratch;
