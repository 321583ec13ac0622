//! The SQLite files a running server writes, watched for being replaced or removed
//! under it.
//!
//! Every connection keeps the files it opened. A database file renamed over, or
//! deleted, while the server runs leaves the server writing to a file no path names
//! any more: every alert answered 201 afterwards was gone at the next restart, and an
//! old write-ahead log left beside a new file was applied to it, corrupting it. A
//! deleted write-ahead log likewise keeps taking commits that only its next checkpoint
//! saves. So before each batch the writer checks that the paths still name the files
//! it opened, and readiness does too; while they do not, writes are refused.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// What a write refused because the files changed is answered (and readiness logs).
pub const REPLACED: &str = "the database's files were replaced or removed while Vigil ran";

/// The database file (and its write-ahead log) as the server opened them.
#[derive(Debug)]
pub struct WatchedFiles {
    database: PathBuf,
    /// Device and inode of the database file when the server opened it.
    identity: (u64, u64),
    wal: PathBuf,
    /// Device and inode of the write-ahead log once the writer's connection has committed
    /// on it: while that connection lives, the log gone, or another file in its place (a
    /// connection opened after the removal creates a fresh one), means it was removed
    /// (SQLite removes it only when the last connection to the database closes).
    wal_held: Mutex<Option<(u64, u64)>>,
}

/// Device and inode of the file at `path`, if there is one: what stays the same while
/// the same file is there, whatever is written to it.
fn file_identity(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

impl WatchedFiles {
    /// Watches `database` as it is now; `None` when it cannot be read (an in-memory
    /// database has no file).
    pub fn new(database: &Path) -> Option<Self> {
        let metadata = std::fs::metadata(database).ok()?;
        Some(Self {
            database: database.to_path_buf(),
            identity: (metadata.dev(), metadata.ino()),
            wal: PathBuf::from(format!("{}-wal", database.display())),
            wal_held: Mutex::new(None),
        })
    }

    /// The writer's connection is open and about to write (and, after a batch, has
    /// committed): from now on, while it lives, it holds the write-ahead log open (when
    /// the database has one). Called before a batch answers its callers, so that a log
    /// removed right after an answer is not the one recorded.
    pub fn committed(&self) {
        let mut held = self.held();
        if held.is_none() {
            *held = file_identity(&self.wal);
        }
    }

    /// The writer's connection is gone: with no connection left, SQLite may remove the
    /// write-ahead log itself.
    pub fn connection_closed(&self) {
        *self.held() = None;
    }

    /// At a stop after the database file was replaced under the server: the write-ahead
    /// log at its path is the old file's, and SQLite would apply it to the new file when
    /// it is next opened, damaging it (an outside audit: a restored file corrupted at the
    /// next start). Moved aside, with the shared-memory index, nothing deleted; `Ok(None)`
    /// when the file was not replaced or no log is there, `Err` (with what to do) when the
    /// log there cannot be told to be the old one.
    pub fn set_aside_stale_log(&self) -> Result<Option<PathBuf>, String> {
        if file_identity(&self.database) == Some(self.identity) {
            return Ok(None);
        }
        let Some(at_path) = file_identity(&self.wal) else {
            return Ok(None);
        };
        let shm = PathBuf::from(format!("{}-shm", self.database.display()));
        if *self.held() != Some(at_path) {
            return Err(format!(
                "if {} and {} belong to the file that was replaced, remove them before Vigil \
                 starts on the new one (docs/deployment.md, restoring a backup)",
                self.wal.display(),
                shm.display()
            ));
        }
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let aside = PathBuf::from(format!("{}.replaced-{stamp}", self.wal.display()));
        std::fs::rename(&self.wal, &aside).map_err(|e| {
            format!(
                "{} could not be moved aside ({e}); remove it and {} before Vigil starts on \
                 the new file",
                self.wal.display(),
                shm.display()
            )
        })?;
        // Only an index of the log: SQLite rebuilds it.
        let _ = std::fs::rename(&shm, format!("{}.replaced-{stamp}", shm.display()));
        Ok(Some(aside))
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<(u64, u64)>> {
        self.wal_held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Err` says what changed, for the log: the database file replaced or removed, or
    /// its write-ahead log removed under the writer's connection. One or two `stat`s.
    pub fn check(&self) -> Result<(), String> {
        match std::fs::metadata(&self.database) {
            Ok(now) if (now.dev(), now.ino()) == self.identity => {}
            Ok(_) => {
                return Err(format!(
                    "{REPLACED}: {} is another file now; restart Vigil",
                    self.database.display()
                ));
            }
            Err(e) => {
                return Err(format!(
                    "{REPLACED}: {} ({e}); restart Vigil",
                    self.database.display()
                ));
            }
        }
        let held = *self.held();
        if held.is_some() && file_identity(&self.wal) != held {
            return Err(format!(
                "{REPLACED}: its write-ahead log {} was removed; restart Vigil",
                self.wal.display()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::WatchedFiles;

    /// A file renamed over the database, the database removed, and its log removed are
    /// each seen; the same files are not.
    #[test]
    fn replaced_or_removed_files_are_seen() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let database = dir.path().join("a.db");
        let wal = dir.path().join("a.db-wal");
        std::fs::write(&database, b"db")?;
        std::fs::write(&wal, b"wal")?;
        let watched = WatchedFiles::new(&database).ok_or(std::io::ErrorKind::NotFound)?;
        assert_eq!(watched.check(), Ok(()));

        // Removed by SQLite when no connection is left (the writer's closed): expected.
        std::fs::remove_file(&wal)?;
        assert_eq!(watched.check(), Ok(()));
        std::fs::write(&wal, b"wal")?;
        watched.committed();
        std::fs::remove_file(&wal)?;
        assert!(
            watched
                .check()
                .is_err_and(|e| e.contains("write-ahead log"))
        );
        watched.connection_closed();
        assert_eq!(watched.check(), Ok(()));
        // Removed, and a fresh log created in its place by a connection opened after.
        std::fs::write(&wal, b"wal")?;
        watched.committed();
        let moved = dir.path().join("moved-wal");
        std::fs::rename(&wal, &moved)?;
        std::fs::write(&wal, b"fresh")?;
        assert!(
            watched
                .check()
                .is_err_and(|e| e.contains("write-ahead log"))
        );
        watched.connection_closed();

        let other = dir.path().join("other.db");
        std::fs::write(&other, b"other")?;
        std::fs::rename(&other, &database)?;
        assert!(watched.check().is_err_and(|e| e.contains("another file")));

        std::fs::remove_file(&database)?;
        assert!(watched.check().is_err_and(|e| e.contains("restart Vigil")));
        Ok(())
    }
}
