//! Group commit for SQLite. SQLite admits one writer at a time; concurrent writers
//! would otherwise sleep in its busy handler (1, 2, 5, 10 … ms steps) and each pay a
//! whole commit. Here one thread owns the writing: it takes every write waiting in its
//! queue, runs each inside its own savepoint of one transaction, commits once, and only
//! then answers each caller — so a 201 still means "stored", but four producers share
//! one commit instead of queueing for four. One failing write rolls back only its own
//! savepoint. PostgreSQL handles concurrent writers itself: there a write is a plain
//! [`super::run`].
//!
//! The writer keeps a connection of its own (its page cache stays warm) with SQLite's
//! automatic checkpoint off: a checkpoint copies the WAL back into the database file and
//! syncs it, which made every few hundredth commit wait milliseconds. A companion thread
//! runs a passive checkpoint every [`CHECKPOINT_EVERY`] instead, beside the writer.
//!
//! The WAL starts over only when a write begins after a checkpoint has copied all of
//! it. Under sustained writes the companion never gets there (a commit always lands
//! while it copies), and the file grew for ever: 540 MB after 20,000 alerts. So once
//! the file passes its limit (`VIGIL_SQLITE_WAL_LIMIT_MB`) the writer asks the
//! companion for a checkpoint at once and, when it is done, checkpoints the few frames
//! committed meanwhile itself, between two batches, where no commit can slip in. The
//! next commit then starts the log over and SQLite cuts the file back to the limit
//! (`journal_size_limit`). Should the companion fall behind — starved of CPU, or waiting
//! for a pooled connection while readers hold them all — and the file pass twice its
//! limit, the writer does the whole checkpoint itself: a few milliseconds of writes wait,
//! rather than the log growing with no bound.

mod batch;
mod failing;
mod jobs;
mod wal_bound;

pub use failing::Failing;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use diesel::{Connection, RunQueryDsl};
use prometheus::IntCounterVec;
use tokio::sync::oneshot;

use super::files::WatchedFiles;
use super::pool::AnyManager;
use super::{AnyConnection, DbPool, pool};
use crate::config::DatabaseConfig;
use crate::error::ApiError;
use crate::hub::Broker;
use crate::hub::event::{CareTeamChange, StoredEvent};
use batch::write_loop;
use failing::{Outcome, failing_slot};
use jobs::{AfterCommit, Job, WriteJob};
use wal_bound::{WalBound, checkpoint_loop};

/// How often the WAL is checkpointed (off the commit path).
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// Readiness's test write: one page rewritten as it was.
const REWRITE_HEAD: &str = "UPDATE event_head SET seq = seq WHERE id = 1";
/// How long readiness's test write waits for SQLite's write lock.
const PROBE_BUSY_MS: u64 = 500;
/// What a caller hears when the database is locked by someone else.
pub const LOCKED: &str = "database is locked by another process";

/// Where write transactions go (see the module documentation).
#[derive(Clone)]
pub struct Writer {
    pool: DbPool,
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
    /// SQLite: the last batch failed because the disk is full (cleared by a commit, or by
    /// readiness finding room again), and the directory the database grows in.
    disk_full: Option<(Arc<AtomicBool>, PathBuf)>,
    /// `vigil_write_failures_total`, counted here for PostgreSQL's writes (the SQLite
    /// writer thread counts its own).
    failures: IntCounterVec,
    /// SQLite: the database's files as the server opened them, checked by readiness.
    files: Option<Arc<WatchedFiles>>,
    /// SQLite: the writer's last batch failed otherwise than on a lock or a full disk
    /// (cleared by a commit); see [`Writer::check_writable`].
    writer_failing: Arc<std::sync::Mutex<Option<Failing>>>,
    /// PostgreSQL: care-team writes take turns (see [`Writer::write_care_team`]),
    /// awaited before a pooled connection is taken.
    care_team_turn: Arc<tokio::sync::Mutex<()>>,
}

impl Writer {
    /// A group-committing writer thread for SQLite; direct writes for PostgreSQL.
    pub fn new(
        pool: DbPool,
        database: &DatabaseConfig,
        failures: IntCounterVec,
    ) -> std::io::Result<Self> {
        if pool::is_postgres(&database.url) {
            return Ok(Self {
                pool,
                queue: None,
                disk_full: None,
                failures,
                files: None,
                writer_failing: Arc::default(),
                care_team_turn: Arc::default(),
            });
        }
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        // The writer asks the checkpointer for an early checkpoint through `poke`;
        // dropped when the writer thread ends (every `Writer` is gone), it stops the
        // checkpointer too, and with it the last use of the pool.
        let (poke, pokes) = mpsc::channel::<()>();
        let copied = Arc::new(AtomicBool::new(false));
        let checkpoint_pool = pool.clone();
        let checkpoint_copied = Arc::clone(&copied);
        std::thread::Builder::new()
            .name("vigil-sqlite-checkpoint".to_owned())
            .spawn(move || checkpoint_loop(&checkpoint_pool, &pokes, &checkpoint_copied))?;
        let manager = AnyManager::new(database);
        let mut wal = WalBound {
            path: None,
            limit: database.wal_limit_bytes,
            poke,
            copied,
            asked: false,
            took_over: false,
        };
        let disk_full = Arc::new(AtomicBool::new(false));
        let writer_failing = Arc::default();
        let outcome = Outcome {
            failures: failures.clone(),
            disk_full: Arc::clone(&disk_full),
            writer_failing: Arc::clone(&writer_failing),
        };
        let files = watch_files(&pool).map(Arc::new);
        let watched = files.clone();
        let directory = std::path::Path::new(pool::sqlite_path(&database.url))
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf);
        std::thread::Builder::new()
            .name("vigil-sqlite-writer".to_owned())
            .spawn(move || write_loop(&manager, &jobs, &mut wal, &outcome, watched.as_deref()))?;
        Ok(Self {
            pool,
            queue: Some(queue),
            disk_full: Some((disk_full, directory)),
            failures,
            files,
            writer_failing,
            care_team_turn: Arc::default(),
        })
    }

    /// Whether a write goes through now, for readiness; `Err` names why not. SQLite: a
    /// real one-page write (the event-log head rewritten unchanged) from a pooled
    /// connection that waits 0.5 s for the write lock — the writer's own
    /// batches last milliseconds, so a longer wait means another process holds it — so a
    /// lock or a full disk shows before any alert meets it. That page's rewrite needs no
    /// new space (the log reuses its file after a checkpoint), so once a batch has failed
    /// on a full disk, readiness also checks the database's directory still has room to
    /// grow (`room_to_grow`): the instance stays unready until it has (it had answered
    /// "ready" while every alert was refused), or until a batch commits (a small one
    /// fits in less), and turns ready again as soon as space is freed, without waiting
    /// for a write to prove it. The pool's connections are not
    /// the writer's: once the writer's batch has failed otherwise (files it could not
    /// write while the pool's older connections still could), the test write goes
    /// through the writer itself until one commits. PostgreSQL: nothing to add to the
    /// read readiness has made.
    pub async fn check_writable(&self, within: Duration) -> Result<(), (Failing, String)> {
        if self.queue.is_none() {
            // PostgreSQL: readiness's own read has just had a connection from the pool.
            return Ok(());
        }
        if let Some(Err(why)) = self.files.as_deref().map(WatchedFiles::check) {
            return Err((Failing::Replaced, why));
        }
        let failing = *failing_slot(&self.writer_failing);
        if let (Some(cause), Some(queue)) = (failing, &self.queue) {
            let test_write = |conn: &mut AnyConnection| {
                diesel::sql_query(REWRITE_HEAD).execute(conn)?;
                Ok(())
            };
            let through_writer = enqueue(queue, test_write, None, false);
            return match actix_web::rt::time::timeout(within, through_writer).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => {
                    let why = e.internal_chain().unwrap_or_else(|| e.to_string());
                    Err((Failing::of_error(&why), why))
                }
                Err(_) => Err((cause, "the writer's test write did not finish".to_owned())),
            };
        }
        let disk_full = self.disk_full.clone();
        let probe = super::run_within(&self.pool, within, move |conn| {
            let AnyConnection::Sqlite(c) = conn else {
                return Ok(Ok(()));
            };
            pool::busy_timeout(PROBE_BUSY_MS).execute(c)?;
            let wrote = c.immediate_transaction(|c| diesel::sql_query(REWRITE_HEAD).execute(c));
            pool::busy_timeout(pool::BUSY_TIMEOUT_MS).execute(c)?;
            if let Err(e) = wrote {
                let why = e.to_string();
                return Ok(Err((Failing::of_error(&why), why)));
            }
            if let Some((flag, directory)) = disk_full
                && flag.load(Ordering::Relaxed)
            {
                if let Err(why) = room_to_grow(&directory) {
                    return Ok(Err((Failing::Full, why)));
                }
                flag.store(false, Ordering::Relaxed);
            }
            Ok(Ok(()))
        });
        probe.await.unwrap_or_else(|e| {
            Err((
                Failing::Unreachable,
                e.internal_chain().unwrap_or_else(|| e.to_string()),
            ))
        })
    }

    /// At a clean stop (SQLite): has the write-ahead log copied into the database file
    /// and emptied, so that the file alone holds every commit. The checkpointer copies
    /// the log every 0.5 s but never empties it, so a copy of `vigil.db` taken after a
    /// stop (a backup) missed the last commits, and an old log left beside a restored
    /// file was applied to it. Skipped when the files were replaced under the server:
    /// the log is not the new file's.
    pub async fn fold_log_at_stop(&self) {
        if self.queue.is_none() {
            return;
        }
        if let Some(files) = self.files.as_deref()
            && let Err(why) = files.check()
        {
            match files.set_aside_stale_log() {
                Ok(Some(aside)) => log::warn!(
                    "{why}: the write-ahead log, which belongs to the replaced file, is moved \
                     aside to {} so that it is not applied to the new one",
                    aside.display()
                ),
                Ok(None) => log::warn!("{why}"),
                Err(todo) => log::warn!("{why}; {todo}"),
            }
            return;
        }
        let folded = super::run(&self.pool, |conn| Ok(wal_bound::fold_and_empty(conn)?)).await;
        match folded {
            Ok(true) => log::info!(
                "write-ahead log copied into the database file and emptied: the file alone holds every commit"
            ),
            Ok(false) => log::warn!(
                "write-ahead log not emptied at stop: another connection to the database (a second \
                 instance, a sqlite3 shell) was using it; keep the -wal file with the database file"
            ),
            Err(e) => log::warn!(
                "write-ahead log not emptied at stop: {}; keep the -wal file with the database file",
                e.internal_chain().unwrap_or_else(|| e.to_string())
            ),
        }
    }

    /// Runs `work` in a transaction of its own (PostgreSQL) or in a savepoint of the
    /// next group commit (SQLite); returns once its outcome is durable.
    pub async fn write<F, T>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        self.submit(work, None).await
    }

    /// [`Self::write`] for a write that appends to the event log: the event `work`
    /// returns goes to `broker` as soon as its commit is known, from the writer thread
    /// itself. Handing it back to the caller first would add a thread hop (wake the
    /// worker, which then wakes the manager) to every delivery's latency.
    pub async fn write_event<F, T>(&self, broker: &Arc<dyn Broker>, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<(T, Option<StoredEvent>), ApiError>
            + Send
            + 'static,
        T: Send + 'static,
    {
        let broker = Arc::clone(broker);
        let publish: AfterCommit<(T, Option<StoredEvent>)> = Box::new(move |(_, event)| {
            if let Some(event) = event.take() {
                broker.publish_event(event);
            }
        });
        self.submit(work, Some(publish))
            .await
            .map(|(value, _)| value)
    }

    /// [`Self::write`] for a care-team write: the changes `work` returns go to `broker`
    /// as its commit is known, from the writer thread, so they reach the manager in
    /// commit order. Published by the request handlers after their await, two changes of
    /// one membership made at once (add and remove) could arrive reversed, and the
    /// streams followed the first commit for seconds while the database held the second.
    pub async fn write_care_team<F, T>(
        &self,
        broker: &Arc<dyn Broker>,
        seen: &super::events::CareTeamVersionsSeen,
        work: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<(T, Vec<CareTeamChange>), ApiError>
            + Send
            + 'static,
        T: Send + 'static,
    {
        // Each change moves the care teams' version on, in the write's own transaction
        // and under the event log's head lock, and carries it with the head as the write
        // saw it: another instance delivers the events up to the head before applying
        // the change, and the later ones after; and an event stamped with a version it
        // has not applied yet waits until it has (`hub::manager::care_teams`). In one
        // transaction with the change (on PostgreSQL a membership's insert or delete is
        // otherwise a transaction of its own), so that an event sees the version only
        // with the change, and the change is handed over only once both committed.
        let seen = seen.clone();
        let work = move |conn: &mut AnyConnection| {
            conn.transaction::<_, ApiError, _>(|c| {
                let (value, mut changes) = work(c)?;
                for change in &mut changes {
                    let (head, version) = super::events::bump_care_team_version(c, &seen)?;
                    change.after_seq = head;
                    change.version = version;
                }
                Ok((value, changes))
            })
        };
        let broker = Arc::clone(broker);
        let publish: AfterCommit<(T, Vec<CareTeamChange>)> = Box::new(move |(_, changes)| {
            for change in changes.drain(..) {
                log::info!(
                    "care team changed patient_id={} user_id={} assigned={}",
                    crate::log_value::quoted_if_needed(&change.patient_id),
                    crate::log_value::quoted_if_needed(&change.user_id),
                    change.assigned
                );
                broker.publish_care_team(change);
            }
        });
        if self.queue.is_none() {
            // PostgreSQL: each write commits on its own pool thread; two that commit back
            // to back could publish in the other order. One care-team write at a time
            // per instance, commit and publication together (they are rare, and take no
            // lock another writer could be holding while it waits for this one).
            // The turn is awaited before a pooled connection is taken (writes queued
            // behind a slow one held a connection each and left reads none), within the
            // deadline a write is answered in, and it goes with the work: a write that
            // outlives its caller (past the deadline, a client gone) keeps its turn until
            // it has committed and published.
            let turn = tokio::time::timeout(
                super::DEADLINE,
                Arc::clone(&self.care_team_turn).lock_owned(),
            )
            .await
            .map_err(|_| ApiError::DatabaseTimeout(super::DEADLINE))?;
            let serial = move |conn: &mut AnyConnection| {
                let _turn = turn;
                let mut value = work(conn)?;
                publish(&mut value);
                Ok(value)
            };
            return self.submit(serial, None).await.map(|(value, _)| value);
        }
        self.submit(work, Some(publish))
            .await
            .map(|(value, _)| value)
    }

    async fn submit<F, T>(
        &self,
        work: F,
        after_commit: Option<AfterCommit<T>>,
    ) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let Some(queue) = &self.queue else {
            // Published from the blocking thread as the commit returns: a caller that
            // stopped waiting (the database answered past the deadline) does not keep a
            // committed event from its screens.
            return super::run(&self.pool, move |conn| {
                let mut value = work(conn)?;
                if let Some(after_commit) = after_commit {
                    after_commit(&mut value);
                }
                Ok(value)
            })
            .await
            .inspect_err(|e| {
                if matches!(
                    e,
                    ApiError::DatabaseUnavailable(_) | ApiError::DatabaseTimeout(_)
                ) {
                    self.failures
                        .with_label_values(&[Failing::Unreachable.as_str()])
                        .inc();
                }
            });
        };
        enqueue(queue, work, after_commit, true).await
    }
}

/// Queues `work` for the SQLite writer thread and waits for its outcome. `counted`:
/// whether its failure counts in `vigil_write_failures_total`. Readiness's own test write
/// does not: while the writer was failing, probes alone made the counter climb with no
/// write refused (an outside audit), where operators read it as alerts being refused.
async fn enqueue<F, T>(
    queue: &mpsc::Sender<Box<dyn Job>>,
    work: F,
    after_commit: Option<AfterCommit<T>>,
    counted: bool,
) -> Result<T, ApiError>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    queue
        .send(Box::new(WriteJob {
            work,
            after_commit,
            reply,
            queued: Instant::now(),
            counted,
        }))
        .map_err(|_| ApiError::Internal("the SQLite writer thread is gone".to_owned()))?;
    answer.await.map_err(|_| {
        ApiError::Internal("the SQLite writer dropped a write (it panicked)".to_owned())
    })?
}

/// The database file the pool's connections are open on, to be watched; `None` for an
/// in-memory database, or when it cannot be found out (then nothing is watched).
fn watch_files(pool: &DbPool) -> Option<WatchedFiles> {
    let mut conn = pool
        .get()
        .inspect_err(|e| log::warn!("the database file is not watched: {e}"))
        .ok()?;
    let file = pool::sqlite_file(&mut conn)
        .inspect_err(|e| log::warn!("the database file is not watched: {e}"))
        .ok()??;
    WatchedFiles::new(&file)
}

/// How much room readiness wants to see before it calls a full disk free again: a few
/// dozen alerts' worth of log, enough that the next write is not refused at once.
const ROOM_TO_GROW: usize = 1024 * 1024;

/// Whether [`ROOM_TO_GROW`] bytes can be written in `directory` now (a scratch file,
/// written, synced and removed); `Err` says why not.
fn room_to_grow(directory: &std::path::Path) -> Result<(), String> {
    use std::io::Write;
    let path = directory.join(format!(".vigil-readyz-{}", std::process::id()));
    let tried = std::fs::File::create(&path).and_then(|mut file| {
        file.write_all(&vec![0u8; ROOM_TO_GROW])?;
        file.sync_data()
    });
    let _ = std::fs::remove_file(&path);
    tried.map_err(|e| {
        format!(
            "database or disk is full: no room for {} KiB more in {} ({e})",
            ROOM_TO_GROW / 1024,
            directory.display()
        )
    })
}
