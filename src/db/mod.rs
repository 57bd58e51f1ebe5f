//! Everything that talks to PostgreSQL: sessions, TLS, waiting, the advisory lock, the
//! history tables and applying migrations.

pub mod apply;
pub mod connection;
pub mod guard;
pub mod history;
pub mod identity;
pub mod interrupt;
pub mod lock;
pub mod pgpass;
pub mod script;
pub mod session;
pub mod tls;
pub mod wait;
