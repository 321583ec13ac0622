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
use std::sync::atomic::{AtomicBool, Ordering};

/// What a write refused because the files changed is answered (and readiness logs).
pub const REPLACED: &str = "the database's files were replaced or removed while Vigil ran";

/// The database file (and its write-ahead log) as the server opened them.
#[derive(Debug)]
pub struct WatchedFiles {
    database: PathBuf,
    /// Device and inode of the database file when the server opened it.
    identity: (u64, u64),
    wal: PathBuf,
    /// The write-ahead log has existed since: its disappearance means it was removed
    /// (SQLite removes it only when the last connection closes, and the pool keeps
    /// connections open).
    wal_seen: AtomicBool,
}

impl WatchedFiles {
    /// Watches `database` as it is now; `None` when it cannot be read (an in-memory
    /// database has no file).
    pub fn new(database: &Path) -> Option<Self> {
        let metadata = std::fs::metadata(database).ok()?;
        let wal = PathBuf::from(format!("{}-wal", database.display()));
        let wal_seen = AtomicBool::new(wal.exists());
        Some(Self {
            database: database.to_path_buf(),
            identity: (metadata.dev(), metadata.ino()),
            wal,
            wal_seen,
        })
    }

    /// `Err` says what changed, for the log: the database file replaced or removed, or
    /// its write-ahead log removed. Two `stat`s.
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
        if self.wal.exists() {
            self.wal_seen.store(true, Ordering::Relaxed);
        } else if self.wal_seen.load(Ordering::Relaxed) {
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

        std::fs::remove_file(&wal)?;
        assert!(
            watched
                .check()
                .is_err_and(|e| e.contains("write-ahead log"))
        );
        std::fs::write(&wal, b"wal")?;
        assert_eq!(watched.check(), Ok(()));

        let other = dir.path().join("other.db");
        std::fs::write(&other, b"other")?;
        std::fs::rename(&other, &database)?;
        assert!(watched.check().is_err_and(|e| e.contains("another file")));

        std::fs::remove_file(&database)?;
        assert!(watched.check().is_err_and(|e| e.contains("restart Vigil")));
        Ok(())
    }
}
