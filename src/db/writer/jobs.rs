//! The writes queued for the writer thread, their result types erased, and how each
//! caller is answered once its batch's fate is known.

use std::time::Instant;

use diesel::Connection;
use tokio::sync::oneshot;

use crate::db::AnyConnection;
use crate::error::ApiError;

/// Runs once a write is durable, before its caller hears of it.
pub(super) type AfterCommit<T> = Box<dyn FnOnce(&mut T) + Send>;

/// A queued write, its result type erased so one queue carries every kind.
pub(super) trait Job: Send {
    /// Runs inside a savepoint; what it returns is sent once the batch's fate is known.
    fn run(self: Box<Self>, conn: &mut AnyConnection) -> Box<dyn Finish>;
    /// Answers without running (no connection or no lock could be had).
    fn abandon(self: Box<Self>, why: &str);
    /// When it was queued.
    fn queued(&self) -> Instant;
    /// Whether its failure counts in `vigil_write_failures_total` (see
    /// [`super::Writer::check_writable`]).
    fn counted(&self) -> bool;
}

/// How many of `jobs` count in `vigil_write_failures_total`.
pub(super) fn counted(jobs: &[Box<dyn Job>]) -> usize {
    jobs.iter().filter(|job| job.counted()).count()
}

/// A ran write waiting for its batch's commit.
pub(super) trait Finish: Send {
    /// Sends the result if the batch committed, else the commit failure.
    fn finish(self: Box<Self>, committed: Result<(), &str>);
}

/// A write and how its caller is answered.
pub(super) struct WriteJob<F, T> {
    /// The write, run inside its savepoint.
    pub(super) work: F,
    /// Runs once the commit is known, before the caller hears (publication).
    pub(super) after_commit: Option<AfterCommit<T>>,
    /// Where the caller waits.
    pub(super) reply: oneshot::Sender<Result<T, ApiError>>,
    /// When it was queued (a write queued too long is answered without running).
    pub(super) queued: Instant,
    /// Whether its failure counts in `vigil_write_failures_total`.
    pub(super) counted: bool,
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

    fn counted(&self) -> bool {
        self.counted
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
