//! The writer thread: takes the queued writes, commits them in one transaction (each in
//! its own savepoint) and answers every caller after the commit.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use diesel::r2d2::ManageConnection;
use diesel::{Connection, RunQueryDsl};

use super::LOCKED;
use super::failing::{Failing, Outcome};
use super::jobs::{Finish, Job, counted};
use super::wal_bound::WalBound;
use crate::db::AnyConnection;
use crate::db::files::WatchedFiles;
use crate::db::fixed::TakeWriteLock;
use crate::db::pool::{self, AnyManager};

/// Most writes committed together; bounds the time the first caller of a batch waits.
const MAX_BATCH: usize = 64;
/// A write still queued after this long is answered 503 without being run: its caller
/// has waited a busy timeout already, and the writer is stuck behind a lock.
const STALE_AFTER: Duration = Duration::from_millis(pool::BUSY_TIMEOUT_MS);

/// The writer thread's life: a batch of what is queued, committed on the writer's own
/// connection (opened again after a failed commit), until every [`super::Writer`] is gone.
pub(super) fn write_loop(
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
            outcome.failed(Failing::Locked, counted(&stale));
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
            outcome.failed(Failing::Replaced, counted(&batch));
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
        // The log the connection writes to, recorded before the batch answers anyone: a
        // caller answered 201 could remove it before a record made after the commit, and
        // the removal then went unseen for good (the test that removes it, under load).
        if let Some(files) = files {
            files.committed();
        }
        // A panicking write (a bug) unwinds out of here and the connection goes with
        // it, so its open transaction is rolled back; the callers of the batch get an
        // error (their replies are dropped), none a false success, and the thread
        // lives on with a fresh connection for the next batch.
        match catch_unwind(AssertUnwindSafe(|| commit_batch(&mut open, batch, outcome))) {
            Ok(Batch::Committed) => {
                if let Some(files) = files {
                    files.committed();
                }
                wal.after_batch(&mut open);
                conn = Some(open);
            }
            Ok(Batch::Locked) => conn = Some(open),
            // Commit failed: start the next batch on a fresh connection.
            Ok(Batch::Failed) => {}
            Err(_) => log::error!("a write panicked; its batch was rolled back"),
        }
        if conn.is_none()
            && let Some(files) = files
        {
            files.connection_closed();
        }
    }
}

/// The writer's connection, with SQLite's own checkpoints off (see [`WalBound`]).
pub(super) fn open_writer(
    manager: &AnyManager,
    wal: &mut WalBound,
) -> Result<AnyConnection, String> {
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
    /// The write lock or the commit failed otherwise: every caller was answered 503,
    /// and the next batch starts on a fresh connection (one opened while the files
    /// could not be written stays read-only for good).
    Failed,
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
    if let Err(e) = pool::busy_timeout(ms).execute(conn) {
        log::warn!("could not set the writer's busy timeout to {ms} ms: {e}");
    }
}

/// Runs every job in one transaction, once it holds the write lock. The outcome is
/// recorded before any caller is answered: a client that reads `/metrics` or `/readyz`
/// right after its 503 sees its refusal counted.
fn commit_batch(
    conn: &mut AnyConnection,
    mut batch: Vec<Box<dyn Job>>,
    outcome: &Outcome,
) -> Batch {
    let started = Instant::now();
    let writes = counted(&batch);
    let mut ran: Vec<Box<dyn Finish>> = Vec::with_capacity(batch.len());
    let mut lock_error: Option<String> = None;
    let budget = lock_budget(&batch);
    if let Some(ms) = budget {
        set_busy_timeout(conn, ms);
    }
    let committed = conn.transaction::<_, diesel::result::Error, _>(|c| {
        // One wait for the lock for the whole batch. Without it each write of a batch
        // met a lock held by another process on its own and waited out the busy
        // timeout (10 s) in turn: four writes, forty seconds.
        TakeWriteLock
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
    // Nothing ran while the batch is still whole: the write lock could not be had, or
    // the transaction did not even begin (BEGIN failed, e.g. on a connection whose
    // rollback failed before). Every caller is refused with the cause, counted, never
    // left to a dropped reply ("the writer panicked").
    if !batch.is_empty() {
        let (what, why) = match lock_error {
            Some(why) => ("the write lock", why),
            None => (
                "the transaction did not begin",
                committed
                    .as_ref()
                    .err()
                    .map(ToString::to_string)
                    .unwrap_or_default(),
            ),
        };
        log::warn!("{} writes refused: {what}: {why}", batch.len());
        let cause = Failing::of_error(&why);
        outcome.failed(cause, writes);
        let locked = cause == Failing::Locked;
        for job in batch {
            job.abandon(if locked { LOCKED } else { &why });
        }
        return if locked { Batch::Locked } else { Batch::Failed };
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
    match &committed {
        Ok(()) => outcome.committed(),
        Err(why) => outcome.failed(Failing::of_error(why), writes),
    }
    for finish in ran {
        finish.finish(committed.as_ref().map(|_| ()).map_err(String::as_str));
    }
    match committed {
        Ok(()) => Batch::Committed,
        Err(_) => Batch::Failed,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use diesel::{Connection, RunQueryDsl, SqliteConnection};
    use prometheus::{IntCounterVec, Opts};
    use tokio::sync::oneshot;

    use super::{Batch, Job, commit_batch};
    use crate::db::AnyConnection;
    use crate::db::writer::failing::Outcome;
    use crate::db::writer::jobs::WriteJob;
    use crate::error::ApiError;

    /// A batch whose transaction cannot begin answers each caller with the cause and
    /// counts it; its replies had been dropped, which callers read as a panic (500).
    /// Readiness's test write is answered too, but not counted as a refused write.
    #[test]
    fn a_batch_whose_transaction_cannot_begin_refuses_every_caller() {
        let mut conn = AnyConnection::Sqlite(
            SqliteConnection::establish(":memory:").expect("an in-memory database"),
        );
        // SQLite is inside a transaction diesel does not know of: its BEGIN fails.
        diesel::sql_query("BEGIN")
            .execute(&mut conn)
            .expect("BEGIN");
        let failures =
            IntCounterVec::new(Opts::new("failures", "test"), &["cause"]).expect("a counter");
        let outcome = Outcome {
            failures: failures.clone(),
            disk_full: Arc::new(AtomicBool::new(false)),
            writer_failing: Arc::new(std::sync::Mutex::new(None)),
        };
        let mut answers = Vec::new();
        let mut batch: Vec<Box<dyn Job>> = Vec::new();
        for counted in [true, true, false] {
            let (reply, answer) = oneshot::channel::<Result<(), ApiError>>();
            answers.push(answer);
            batch.push(Box::new(WriteJob {
                work: |_: &mut AnyConnection| Ok(()),
                after_commit: None,
                reply,
                queued: std::time::Instant::now(),
                counted,
            }));
        }
        assert!(matches!(
            commit_batch(&mut conn, batch, &outcome),
            Batch::Failed
        ));
        for mut answer in answers {
            match answer.try_recv() {
                Ok(Err(ApiError::DatabaseUnavailable(_))) => {}
                Ok(other) => panic!("expected a 503, got {other:?}"),
                Err(e) => panic!("the caller was not answered: {e}"),
            }
        }
        let counted: u64 = prometheus::core::Collector::collect(&failures)
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|metric| metric.get_counter().get_value() as u64)
            .sum();
        assert_eq!(
            counted, 2,
            "both refused writes are counted, the test write not"
        );
    }
}
