//! Why writes fail, as readiness, `vigil_write_failures_total` and the writer thread
//! report it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use prometheus::IntCounterVec;

use crate::db::files;

/// Why writes fail, as readiness and `vigil_write_failures_total` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failing {
    /// Another process holds SQLite's write lock.
    Locked,
    /// The disk (or the file's quota) is full.
    Full,
    /// The database's files cannot be written (read-only file, directory or mount).
    ReadOnly,
    /// The database file was replaced or removed, or its write-ahead log removed, under
    /// the running server (see [`crate::db::files`]).
    Replaced,
    /// Any other commit failure.
    Other,
    /// The database cannot be reached at all (PostgreSQL down, no pool connection).
    Unreachable,
}

impl Failing {
    /// The label and readiness `database` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Failing::Locked => "locked",
            Failing::Full => "full",
            Failing::ReadOnly => "read_only",
            Failing::Replaced => "replaced",
            Failing::Other => "failing",
            Failing::Unreachable => "unreachable",
        }
    }

    /// What readiness tells a client about it.
    pub fn detail(self) -> &'static str {
        match self {
            Failing::Locked => "the database is locked by another process: writes fail",
            Failing::Full => "the database's disk is full: writes fail",
            Failing::ReadOnly => "the database's files cannot be written: writes fail",
            Failing::Replaced => {
                "the database's files were replaced or removed while the server ran: writes fail until it is restarted"
            }
            Failing::Other => "the database does not take writes",
            Failing::Unreachable => "the database is unreachable",
        }
    }

    /// What a database error's text says went wrong (SQLite's and the writer's own words).
    pub fn of_error(text: &str) -> Self {
        if text.contains("locked") {
            Failing::Locked
        } else if text.contains("full") {
            Failing::Full
        } else if text.contains("readonly") || text.contains("read-only") {
            Failing::ReadOnly
        } else if text.starts_with(files::REPLACED) {
            Failing::Replaced
        } else {
            Failing::Other
        }
    }
}

/// How the writer thread reports its batches.
pub(super) struct Outcome {
    /// `vigil_write_failures_total`.
    pub(super) failures: IntCounterVec,
    /// Shared with [`Writer::check_writable`].
    pub(super) disk_full: Arc<AtomicBool>,
    /// Shared with [`Writer::check_writable`].
    pub(super) writer_failing: Arc<std::sync::Mutex<Option<Failing>>>,
}

impl Outcome {
    /// A batch of `writes` failed for `cause`: counted, and kept for readiness.
    pub(super) fn failed(&self, cause: Failing, writes: usize) {
        self.failures
            .with_label_values(&[cause.as_str()])
            .inc_by(writes as u64);
        match cause {
            Failing::Full => self.disk_full.store(true, Ordering::Relaxed),
            // Readiness sees a lock itself, and files replaced, with its own checks.
            Failing::Locked | Failing::Replaced | Failing::Unreachable => {}
            Failing::ReadOnly | Failing::Other => *failing_slot(&self.writer_failing) = Some(cause),
        }
    }

    /// A batch committed: whatever failed before is over.
    pub(super) fn committed(&self) {
        self.disk_full.store(false, Ordering::Relaxed);
        *failing_slot(&self.writer_failing) = None;
    }
}

/// The writer's failing cause, shared by the writer thread and readiness (a panic while
/// it was held leaves the value as good as before).
pub(super) fn failing_slot(
    slot: &std::sync::Mutex<Option<Failing>>,
) -> std::sync::MutexGuard<'_, Option<Failing>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::Failing;

    /// The causes SQLite reports, as readiness and `vigil_write_failures_total` name them.
    #[test]
    fn a_commit_error_is_named_by_its_cause() {
        assert_eq!(Failing::of_error("database is locked"), Failing::Locked);
        assert_eq!(Failing::of_error("database or disk is full"), Failing::Full);
        assert_eq!(Failing::of_error("disk I/O error"), Failing::Other);
    }
}
