//! The work guard: what every piece of a run's work takes first and proves before it
//! commits, as SQL text (pure, so `--sql` prints exactly what the runner sends).
//!
//! - Every transaction takes `pg_advisory_xact_lock_shared` on the key's two-int form. A
//!   runner taking over the lock waits until no backend holds it (`lock::acquire`), so it
//!   never reads the history while a batch of a runner it replaced still runs on the server
//!   (its client may be gone; its backend is not). A `transaction:false` statement runs in
//!   no transaction of ours, and a session-level lock would stay behind on a pooled server
//!   connection, so for those the taker looks at `pg_stat_activity` instead
//!   (`Migrator::wait_for_running`).
//! - A transactional migration's closing history statement proves the transaction is still
//!   the one schemagate opened: the shared lock is held by this backend (a `COMMIT` or
//!   `ROLLBACK` hidden in the migration would have released it) and, in session lock mode,
//!   that the session still holds the advisory lock (`pg_advisory_unlock_all()` in the
//!   migration would have released it). If not, the row's status becomes `lost`, which the
//!   table's CHECK refuses: the error aborts the rest, so nothing commits without its proof.

/// The advisory lock key and what the closing check must prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    pub key: i64,
    /// In session lock mode the session itself must still hold the advisory lock.
    pub session_lock: bool,
}

/// The history status no row may have (the table's CHECK refuses it): what the closing
/// statement writes when the proof fails.
pub const LOST: &str = "lost";

impl Guard {
    /// A bigint key as the two int4 halves `pg_locks` shows (classid, objid).
    pub fn halves(&self) -> (i32, i32) {
        ((self.key >> 32) as i32, self.key as i32)
    }

    /// First statement of every transaction of the run.
    pub fn take_in_transaction(&self) -> String {
        let (high, low) = self.halves();
        format!("SELECT pg_advisory_xact_lock_shared({high}, {low});\n")
    }

    /// An SQL condition: this backend holds the advisory lock in `objsubid` space (1: the
    /// run's bigint key, 2: the guard's two-int form). A backend's advisory locks are all in
    /// its own database, so the pid alone says whose.
    fn held(&self, objsubid: u8) -> String {
        format!(
            "EXISTS (SELECT FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted \
             AND pid = pg_catalog.pg_backend_pid() AND {})",
            self.space(objsubid)
        )
    }

    fn space(&self, objsubid: u8) -> String {
        let (high, low) = match objsubid {
            1 => ((self.key >> 32) as u32, self.key as u32),
            _ => {
                let (high, low) = self.halves();
                (high as u32, low as u32)
            }
        };
        format!("objsubid = {objsubid} AND classid = {high} AND objid = {low}")
    }

    /// An SQL condition: the transaction is still schemagate's and the lock still ours
    /// (one pass over `pg_locks`, which every closing row pays for).
    pub fn intact(&self) -> String {
        if self.session_lock {
            format!(
                "((SELECT count(*) FROM pg_catalog.pg_locks WHERE locktype = 'advisory' AND granted \
                 AND pid = pg_catalog.pg_backend_pid() AND (({}) OR ({}))) = 2)",
                self.space(2),
                self.space(1)
            )
        } else {
            self.held(2)
        }
    }

    /// A query of one row: whether this session still holds the advisory lock (always true
    /// when the lock is not a session lock), and whether a transaction block is open (in a
    /// block, `now()` is the block's start, earlier than this statement's).
    pub fn probe(&self) -> String {
        let lock = if self.session_lock {
            self.held(1)
        } else {
            "true".to_string()
        };
        format!("SELECT {lock}, now() <> statement_timestamp()")
    }

    /// Whether no backend holds the guard in this database: a runner taking over waits for
    /// this before it reads the history.
    pub fn drained(&self) -> String {
        let (high, low) = self.halves();
        let (high, low) = (high as u32, low as u32);
        format!(
            "SELECT (NOT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted \
             AND objsubid = 2 AND classid = {high} AND objid = {low} \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())))::text"
        )
    }
}

/// Statements that drop schemagate's session advisory lock, named for the message that
/// says why the run stopped: `pg_advisory_unlock_all()`, `DISCARD ALL`, ...
pub fn lock_dropping_statement(sql: &str) -> Option<&'static str> {
    // Asked of every statement of a `transaction:false` section: no copies.
    let has = |needle: &str| {
        sql.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    };
    if has("pg_advisory_unlock_all") {
        Some("pg_advisory_unlock_all()")
    } else if has("discard")
        && sql
            .split_whitespace()
            .any(|w| w.trim_end_matches(';').eq_ignore_ascii_case("all"))
    {
        Some("DISCARD ALL")
    } else if has("pg_advisory_unlock") {
        Some("pg_advisory_unlock()")
    } else if has("pg_terminate_backend") {
        Some("pg_terminate_backend()")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_match_what_pg_locks_shows() {
        let guard = Guard {
            key: -2,
            session_lock: true,
        };
        assert_eq!(guard.halves(), (-1, -2));
        assert!(guard.intact().contains("classid = 4294967295"));
        assert!(guard.intact().contains("objsubid = 1"));
        assert!(guard.intact().contains("= 2)"), "one pass, both locks");
        let transaction_mode = Guard {
            key: -2,
            session_lock: false,
        };
        assert!(!transaction_mode.intact().contains("objsubid = 1"));
        assert!(transaction_mode.probe().starts_with("SELECT true,"));
    }

    #[test]
    fn lock_dropping_statements_are_named() {
        assert_eq!(
            lock_dropping_statement("SELECT pg_advisory_unlock_all();"),
            Some("pg_advisory_unlock_all()")
        );
        assert_eq!(
            lock_dropping_statement("discard\n  ALL;"),
            Some("DISCARD ALL")
        );
        assert_eq!(lock_dropping_statement("CREATE TABLE t (a int);"), None);
    }
}
