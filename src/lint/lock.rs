//! Table lock modes and what each stops the application doing: the words every finding
//! uses for the lock it observed.

/// A table lock mode, weakest first (PostgreSQL's order of conflict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LockMode {
    AccessShare,
    RowShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    Exclusive,
    AccessExclusive,
}

/// What a lock stops other sessions doing while it is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocks {
    /// Plain reads and writes go on (only DDL, VACUUM and the like wait).
    Neither,
    Writes,
    ReadsAndWrites,
}

impl LockMode {
    /// From `pg_locks.mode` (`AccessExclusiveLock`).
    pub fn parse(mode: &str) -> Option<LockMode> {
        Some(match mode {
            "AccessShareLock" => LockMode::AccessShare,
            "RowShareLock" => LockMode::RowShare,
            "RowExclusiveLock" => LockMode::RowExclusive,
            "ShareUpdateExclusiveLock" => LockMode::ShareUpdateExclusive,
            "ShareLock" => LockMode::Share,
            "ShareRowExclusiveLock" => LockMode::ShareRowExclusive,
            "ExclusiveLock" => LockMode::Exclusive,
            "AccessExclusiveLock" => LockMode::AccessExclusive,
            _ => return None,
        })
    }

    /// As the documentation spells it: `ACCESS EXCLUSIVE`.
    pub fn name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// SELECT takes ACCESS SHARE, INSERT/UPDATE/DELETE take ROW EXCLUSIVE: what conflicts
    /// with those is what the application feels.
    pub fn blocks(self) -> Blocks {
        match self {
            LockMode::AccessExclusive => Blocks::ReadsAndWrites,
            LockMode::Share | LockMode::ShareRowExclusive | LockMode::Exclusive => Blocks::Writes,
            _ => Blocks::Neither,
        }
    }
}

impl Blocks {
    pub fn words(self) -> &'static str {
        match self {
            Blocks::Neither => "neither reads nor writes",
            Blocks::Writes => "writes",
            Blocks::ReadsAndWrites => "reads and writes",
        }
    }
}
