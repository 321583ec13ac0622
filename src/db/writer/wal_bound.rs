//! The write-ahead log kept near its limit: the companion checkpoint thread, and the
//! writer's own checkpoint when the companion falls behind (see the parent module).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use diesel::RunQueryDsl;

use super::CHECKPOINT_EVERY;
use crate::db::{AnyConnection, DbPool, pool};
use crate::log_throttle::Throttle;

/// Keeps the WAL file near its limit under sustained writes (see the module
/// documentation). Lives on the writer thread.
pub(super) struct WalBound {
    /// Where SQLite keeps the log; `None` for an in-memory database, which has no file.
    pub(super) path: Option<PathBuf>,
    /// `VIGIL_SQLITE_WAL_LIMIT_MB` in bytes.
    pub(super) limit: u64,
    /// Asks the checkpointer for a checkpoint now.
    pub(super) poke: mpsc::Sender<()>,
    /// Set by the checkpointer when the checkpoint asked for is done.
    pub(super) copied: Arc<AtomicBool>,
    /// A checkpoint was asked for and the writer has not finished it yet.
    pub(super) asked: bool,
    /// The writer has had to checkpoint on its own since the log was last within its
    /// limit (said once in the log, not after every batch).
    pub(super) took_over: bool,
}

/// A checkpoint run by the writer itself, between two batches; a failure is logged (the
/// log is then copied by the next checkpoint, the writer's or the companion's).
fn checkpoint_on_the_writer(conn: &mut AnyConnection) {
    if let Err(e) = checkpoint(conn) {
        log::warn!("WAL checkpoint on the writer failed: {e}");
    }
}

impl WalBound {
    /// Runs after each committed batch, before the next one starts.
    pub(super) fn after_batch(&mut self, conn: &mut AnyConnection) {
        if self.copied.swap(false, Ordering::AcqRel) {
            // The checkpointer copied what was there when it began; the frames
            // committed since are few. Nothing commits while this runs, so it copies
            // the whole log and the next commit starts it over.
            checkpoint_on_the_writer(conn);
            self.asked = false;
            return;
        }
        let Some(len) = self.path.as_deref().map(pool::sqlite_wal_len) else {
            return;
        };
        if len <= self.limit {
            self.took_over = false;
        }
        if !self.asked && len > self.limit {
            log::debug!("WAL over {} bytes; asking for a checkpoint", self.limit);
            self.asked = self.poke.send(()).is_ok();
        } else if self.asked && len > self.limit.saturating_mul(2) {
            // The checkpointer has fallen behind: copy the whole log here, between two
            // batches, and the next commit starts it over. Its own checkpoint, when it
            // comes, finds little left.
            if !self.took_over {
                log::warn!(
                    "WAL at {len} bytes, over twice its limit: the writer checkpoints it itself"
                );
                self.took_over = true;
            }
            checkpoint_on_the_writer(conn);
        }
    }
}

/// How often a checkpoint that keeps failing (a full disk) is said again: it is tried
/// every [`CHECKPOINT_EVERY`].
const CHECKPOINT_ERROR_EVERY: Duration = Duration::from_secs(60);

fn checkpoint(conn: &mut AnyConnection) -> Result<(), String> {
    diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(conn)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// How long the last checkpoint waits for other connections. While it waits, SQLite
/// holds back their writes: another instance on the same file must not stall for the
/// pool's 10 s because this one is stopping.
const FOLD_BUSY_MS: u64 = 1_000;

/// Copies the whole log into the database file and empties it (`TRUNCATE`), waiting
/// [`FOLD_BUSY_MS`] at most; `false` when another connection's read or write kept it
/// from finishing.
pub(super) fn fold_and_empty(conn: &mut AnyConnection) -> diesel::QueryResult<bool> {
    #[derive(diesel::QueryableByName)]
    struct Checkpointed {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        busy: i32,
    }
    pool::busy_timeout(FOLD_BUSY_MS).execute(conn)?;
    let row = diesel::sql_query("PRAGMA wal_checkpoint(TRUNCATE)").get_result::<Checkpointed>(conn);
    pool::busy_timeout(pool::BUSY_TIMEOUT_MS).execute(conn)?;
    Ok(row?.busy == 0)
}

/// Checkpoints every [`CHECKPOINT_EVERY`], or at once when the writer asks; ends when
/// the writer does.
pub(super) fn checkpoint_loop(pool: &DbPool, pokes: &mpsc::Receiver<()>, copied: &AtomicBool) {
    let failures = Throttle::new(CHECKPOINT_ERROR_EVERY);
    loop {
        let asked = match pokes.recv_timeout(CHECKPOINT_EVERY) {
            Ok(()) => true,
            Err(mpsc::RecvTimeoutError::Timeout) => false,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let result = pool
            .get()
            .map_err(|e| e.to_string())
            .and_then(|mut c| checkpoint(&mut c));
        match result {
            Err(e) if failures.due() => log::warn!(
                "WAL checkpoint failed: {e} (said again in {} s if it lasts)",
                failures.every().as_secs()
            ),
            Err(_) => {}
            Ok(()) => {
                if failures.clear() {
                    log::info!("WAL checkpoints succeed again");
                }
            }
        }
        if asked {
            // Even after a failure: the writer then checkpoints the whole log itself.
            copied.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, mpsc};

    use diesel::RunQueryDsl;

    use super::WalBound;
    use crate::config::{DatabaseConfig, SqliteSync};
    use crate::db::pool::{self, AnyManager};
    use crate::db::writer::batch::open_writer;

    /// A checkpointer that never gets to run (starved of CPU, or waiting for a pooled
    /// connection) used to leave the log growing by every commit: the writer now does the
    /// checkpoint itself once the file passes twice its limit.
    #[test]
    fn a_checkpointer_fallen_behind_does_not_let_the_log_grow_past_twice_its_limit()
    -> Result<(), Box<dyn std::error::Error>> {
        const LIMIT: u64 = 64 * 1024;
        let dir = tempfile::tempdir()?;
        let database = dir.path().join("w.db");
        let manager = AnyManager::new(&DatabaseConfig {
            url: format!("sqlite://{}", database.display()),
            sqlite_sync: SqliteSync::Normal,
            pool_size: 1,
            wal_limit_bytes: LIMIT,
        });
        // The checkpointer's end of the channel is held and never read.
        let (poke, _never_read) = mpsc::channel();
        let mut wal = WalBound {
            path: None,
            limit: LIMIT,
            poke,
            copied: Arc::default(),
            asked: false,
            took_over: false,
        };
        let mut conn = open_writer(&manager, &mut wal)?;
        let wal_path = wal.path.clone().ok_or("a file database has a log")?;
        diesel::sql_query("CREATE TABLE t (x BLOB)").execute(&mut conn)?;
        let mut largest = 0;
        for _ in 0..300 {
            diesel::sql_query("INSERT INTO t VALUES (randomblob(4000))").execute(&mut conn)?;
            wal.after_batch(&mut conn);
            largest = largest.max(pool::sqlite_wal_len(&wal_path));
        }
        assert!(wal.asked, "a checkpoint was asked for and never came");
        // 300 commits of ~8 KiB of frames each: ~2.4 MiB without the writer's own checkpoint.
        assert!(
            largest <= 2 * LIMIT + 32 * 1024,
            "the log reached {largest} bytes with a limit of {LIMIT}"
        );
        Ok(())
    }
}
