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

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use diesel::r2d2::ManageConnection;
use diesel::{Connection, RunQueryDsl};
use prometheus::IntCounterVec;
use tokio::sync::oneshot;

use super::files::{self, WatchedFiles};
use super::pool::AnyManager;
use super::{AnyConnection, DbPool, pool};
use crate::config::DatabaseConfig;
use crate::error::ApiError;
use crate::hub::Broker;
use crate::hub::event::{CareTeamChange, StoredEvent};

/// Most writes committed together; bounds the time the first caller of a batch waits.
const MAX_BATCH: usize = 64;
/// How often the WAL is checkpointed (off the commit path).
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// Takes SQLite's write lock at the start of a batch, changing nothing. Without it each
/// write of a batch met a lock held by another process on its own and waited out the
/// busy timeout (10 s) in turn: four writes, forty seconds.
const TAKE_WRITE_LOCK: &str = "UPDATE event_head SET seq = seq WHERE 0";
/// Readiness's test write: one page rewritten as it was.
const REWRITE_HEAD: &str = "UPDATE event_head SET seq = seq WHERE id = 1";
/// How long readiness's test write waits for SQLite's write lock.
const PROBE_BUSY_MS: u64 = 500;
/// A write still queued after this long is answered 503 without being run: its caller
/// has waited a busy timeout already, and the writer is stuck behind a lock.
const STALE_AFTER: Duration = Duration::from_millis(pool::BUSY_TIMEOUT_MS);
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
    /// PostgreSQL: care-team writes take turns (see [`Writer::write_care_team`]).
    care_team_order: Arc<std::sync::Mutex<()>>,
}

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
    /// the running server (see [`super::files`]).
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
                care_team_order: Arc::default(),
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
            care_team_order: Arc::default(),
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
    /// "ready" while every alert was refused), and turns ready again as soon as space is
    /// freed, without waiting for a write to prove it. The pool's connections are not
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
        if let Some(cause) = failing {
            let through_writer = self.write(|conn| {
                diesel::sql_query(REWRITE_HEAD).execute(conn)?;
                Ok(())
            });
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
            let set_busy = |c: &mut diesel::SqliteConnection, ms: u64| {
                diesel::sql_query(format!("PRAGMA busy_timeout = {ms}")).execute(c)
            };
            set_busy(c, PROBE_BUSY_MS)?;
            let wrote = c.immediate_transaction(|c| diesel::sql_query(REWRITE_HEAD).execute(c));
            set_busy(c, pool::BUSY_TIMEOUT_MS)?;
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
        work: F,
    ) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<(T, Vec<CareTeamChange>), ApiError>
            + Send
            + 'static,
        T: Send + 'static,
    {
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
            let order = Arc::clone(&self.care_team_order);
            let serial = move |conn: &mut AnyConnection| {
                let _turn = order
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
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
        let (reply, answer) = oneshot::channel();
        queue
            .send(Box::new(WriteJob {
                work,
                after_commit,
                reply,
                queued: Instant::now(),
            }))
            .map_err(|_| ApiError::Internal("the SQLite writer thread is gone".to_owned()))?;
        answer.await.map_err(|_| {
            ApiError::Internal("the SQLite writer dropped a write (it panicked)".to_owned())
        })?
    }
}

/// Runs once a write is durable, before its caller hears of it.
type AfterCommit<T> = Box<dyn FnOnce(&mut T) + Send>;

/// A queued write, its result type erased so one queue carries every kind.
trait Job: Send {
    /// Runs inside a savepoint; what it returns is sent once the batch's fate is known.
    fn run(self: Box<Self>, conn: &mut AnyConnection) -> Box<dyn Finish>;
    /// Answers without running (no connection or no lock could be had).
    fn abandon(self: Box<Self>, why: &str);
    /// When it was queued.
    fn queued(&self) -> Instant;
}

/// A ran write waiting for its batch's commit.
trait Finish: Send {
    /// Sends the result if the batch committed, else the commit failure.
    fn finish(self: Box<Self>, committed: Result<(), &str>);
}

struct WriteJob<F, T> {
    work: F,
    after_commit: Option<AfterCommit<T>>,
    reply: oneshot::Sender<Result<T, ApiError>>,
    queued: Instant,
}

impl<F, T> Job for WriteJob<F, T>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut AnyConnection) -> Box<dyn Finish> {
        let WriteJob {
            work,
            after_commit,
            reply,
            ..
        } = *self;
        // Nested in the batch's transaction, this is a savepoint: an error undoes
        // this write alone.
        let result = conn.transaction(work);
        Box::new(Ran {
            result,
            after_commit,
            reply,
        })
    }

    fn abandon(self: Box<Self>, why: &str) {
        let _ = self.reply.send(Err(unavailable(why)));
    }

    fn queued(&self) -> Instant {
        self.queued
    }
}

struct Ran<T> {
    result: Result<T, ApiError>,
    after_commit: Option<AfterCommit<T>>,
    reply: oneshot::Sender<Result<T, ApiError>>,
}

impl<T: Send> Finish for Ran<T> {
    fn finish(self: Box<Self>, committed: Result<(), &str>) {
        let Ran {
            result,
            after_commit,
            reply,
        } = *self;
        let outcome = match committed {
            Ok(()) => result.map(|mut value| {
                if let Some(after_commit) = after_commit {
                    after_commit(&mut value);
                }
                value
            }),
            // What it wrote was rolled back with the batch: never report it stored.
            Err(why) => Err(unavailable(why)),
        };
        let _ = reply.send(outcome);
    }
}

fn unavailable(why: &str) -> ApiError {
    ApiError::DatabaseUnavailable(why.to_owned().into())
}

/// How the writer thread reports its batches.
struct Outcome {
    failures: IntCounterVec,
    /// Shared with [`Writer::check_writable`].
    disk_full: Arc<AtomicBool>,
    /// Shared with [`Writer::check_writable`].
    writer_failing: Arc<std::sync::Mutex<Option<Failing>>>,
}

impl Outcome {
    fn failed(&self, cause: Failing, writes: usize) {
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

    fn committed(&self) {
        self.disk_full.store(false, Ordering::Relaxed);
        *failing_slot(&self.writer_failing) = None;
    }
}

/// The writer's failing cause, shared by the writer thread and readiness (a panic while
/// it was held leaves the value as good as before).
fn failing_slot(
    slot: &std::sync::Mutex<Option<Failing>>,
) -> std::sync::MutexGuard<'_, Option<Failing>> {
    slot.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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

fn write_loop(
    manager: &AnyManager,
    jobs: &mpsc::Receiver<Box<dyn Job>>,
    wal: &mut WalBound,
    outcome: &Outcome,
    files: Option<&WatchedFiles>,
) {
    let mut conn: Option<AnyConnection> = None;
    let mut files_changed = false;
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (stale, fresh): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|job| job.queued().elapsed() >= STALE_AFTER);
        if !stale.is_empty() {
            outcome.failed(Failing::Locked, stale.len());
        }
        for job in stale {
            job.abandon(LOCKED);
        }
        let batch = fresh;
        if batch.is_empty() {
            continue;
        }
        if let Some(Err(why)) = files.map(WatchedFiles::check) {
            if !files_changed {
                log::error!("writes refused: {why}");
                files_changed = true;
            }
            outcome.failed(Failing::Replaced, batch.len());
            for job in batch {
                job.abandon(&why);
            }
            continue;
        }
        files_changed = false;
        let mut open = match conn.take() {
            Some(open) => open,
            None => match open_writer(manager, wal) {
                Ok(open) => open,
                Err(why) => {
                    for job in batch {
                        job.abandon(&why);
                    }
                    continue;
                }
            },
        };
        // A panicking write (a bug) unwinds out of here and the connection goes with
        // it, so its open transaction is rolled back; the callers of the batch get an
        // error (their replies are dropped), none a false success, and the thread
        // lives on with a fresh connection for the next batch.
        let writes = batch.len();
        match catch_unwind(AssertUnwindSafe(|| commit_batch(&mut open, batch))) {
            Ok(Batch::Committed) => {
                outcome.committed();
                if let Some(files) = files {
                    files.committed();
                }
                wal.after_batch(&mut open);
                conn = Some(open);
            }
            Ok(Batch::Locked) => {
                outcome.failed(Failing::Locked, writes);
                conn = Some(open);
            }
            // Commit failed: start the next batch on a fresh connection.
            Ok(Batch::Failed(why)) => outcome.failed(Failing::of_error(&why), writes),
            Err(_) => log::error!("a write panicked; its batch was rolled back"),
        }
        if conn.is_none()
            && let Some(files) = files
        {
            files.connection_closed();
        }
    }
}

fn open_writer(manager: &AnyManager, wal: &mut WalBound) -> Result<AnyConnection, String> {
    let mut conn = manager.connect().map_err(|e| e.to_string())?;
    diesel::sql_query("PRAGMA wal_autocheckpoint = 0")
        .execute(&mut conn)
        .map_err(|e| e.to_string())?;
    wal.path = pool::sqlite_wal_path(&mut conn).map_err(|e| e.to_string())?;
    Ok(conn)
}

/// How a batch ended.
enum Batch {
    Committed,
    /// The write lock could not be had (another process holds it): nothing ran, every
    /// caller was answered 503; the connection is fine.
    Locked,
    /// The write lock or the commit failed otherwise (the error's text): every caller
    /// was answered 503, and the next batch starts on a fresh connection (one opened
    /// while the files could not be written stays read-only for good).
    Failed(String),
}

/// How long a batch may wait for SQLite's write lock, when less than the connection's
/// usual busy timeout: what is left of its oldest write's. A write queued behind a batch
/// that waited out the lock would otherwise wait a whole busy timeout again — twice as
/// long as a caller is told it waits.
fn lock_budget(batch: &[Box<dyn Job>]) -> Option<u64> {
    let oldest = batch.iter().map(|job| job.queued()).min()?;
    let left = STALE_AFTER.saturating_sub(oldest.elapsed());
    // Fresh writes (all of them, but behind a lock) keep the usual timeout, unchanged:
    // no statement is added to a batch's path.
    (left < STALE_AFTER - Duration::from_millis(100)).then(|| left.as_millis().max(1) as u64)
}

fn set_busy_timeout(conn: &mut AnyConnection, ms: u64) {
    if let Err(e) = diesel::sql_query(format!("PRAGMA busy_timeout = {ms}")).execute(conn) {
        log::warn!("could not set the writer's busy timeout to {ms} ms: {e}");
    }
}

/// Runs every job in one transaction, once it holds the write lock.
fn commit_batch(conn: &mut AnyConnection, mut batch: Vec<Box<dyn Job>>) -> Batch {
    let started = Instant::now();
    let mut ran: Vec<Box<dyn Finish>> = Vec::with_capacity(batch.len());
    let mut lock_error: Option<String> = None;
    let budget = lock_budget(&batch);
    if let Some(ms) = budget {
        set_busy_timeout(conn, ms);
    }
    let committed = conn.transaction::<_, diesel::result::Error, _>(|c| {
        // One wait for the lock for the whole batch (see TAKE_WRITE_LOCK).
        diesel::sql_query(TAKE_WRITE_LOCK)
            .execute(c)
            .inspect_err(|e| lock_error = Some(e.to_string()))?;
        for job in batch.drain(..) {
            ran.push(job.run(c));
        }
        Ok(())
    });
    if budget.is_some() {
        set_busy_timeout(conn, pool::BUSY_TIMEOUT_MS);
    }
    if let Some(why) = lock_error {
        log::warn!("{} writes refused: the write lock: {why}", batch.len());
        if Failing::of_error(&why) == Failing::Locked {
            for job in batch {
                job.abandon(LOCKED);
            }
            return Batch::Locked;
        }
        for job in batch {
            job.abandon(&why);
        }
        return Batch::Failed(why);
    }
    let committed = committed.map_err(|e| {
        log::error!("group commit of {} writes failed: {e}", ran.len());
        e.to_string()
    });
    log::debug!(
        "group commit writes={} took_us={}",
        ran.len(),
        started.elapsed().as_micros()
    );
    for finish in ran {
        finish.finish(committed.as_ref().map(|_| ()).map_err(String::as_str));
    }
    match committed {
        Ok(()) => Batch::Committed,
        Err(why) => Batch::Failed(why),
    }
}

/// Keeps the WAL file near its limit under sustained writes (see the module
/// documentation). Lives on the writer thread.
struct WalBound {
    /// Where SQLite keeps the log; `None` for an in-memory database, which has no file.
    path: Option<PathBuf>,
    limit: u64,
    /// Asks the checkpointer for a checkpoint now.
    poke: mpsc::Sender<()>,
    /// Set by the checkpointer when the checkpoint asked for is done.
    copied: Arc<AtomicBool>,
    /// A checkpoint was asked for and the writer has not finished it yet.
    asked: bool,
    /// The writer has had to checkpoint on its own since the log was last within its
    /// limit (said once in the log, not after every batch).
    took_over: bool,
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
    fn after_batch(&mut self, conn: &mut AnyConnection) {
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

fn checkpoint(conn: &mut AnyConnection) -> Result<(), String> {
    diesel::sql_query("PRAGMA wal_checkpoint(PASSIVE)")
        .execute(conn)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checkpoints every [`CHECKPOINT_EVERY`], or at once when the writer asks; ends when
/// the writer does.
fn checkpoint_loop(pool: &DbPool, pokes: &mpsc::Receiver<()>, copied: &AtomicBool) {
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
        if let Err(e) = result {
            log::warn!("WAL checkpoint failed: {e}");
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

    use super::{Failing, WalBound, open_writer};
    use crate::config::{DatabaseConfig, SqliteSync};
    use crate::db::pool::{self, AnyManager};

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

    /// The causes SQLite reports, as readiness and `vigil_write_failures_total` name them.
    #[test]
    fn a_commit_error_is_named_by_its_cause() {
        assert_eq!(Failing::of_error("database is locked"), Failing::Locked);
        assert_eq!(Failing::of_error("database or disk is full"), Failing::Full);
        assert_eq!(Failing::of_error("disk I/O error"), Failing::Other);
    }
}
