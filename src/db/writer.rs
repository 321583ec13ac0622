//! Group commit for SQLite. SQLite admits one writer at a time; concurrent writers
//! would otherwise sleep in its busy handler (1, 2, 5, 10 … ms steps) and each pay a
//! whole commit. Here one thread owns the writing: it takes every write waiting in its
//! queue, runs each inside its own savepoint of one transaction, commits once, and only
//! then answers each caller — so a 201 still means "stored", but four producers share
//! one commit instead of queueing for four. One failing write rolls back only its own
//! savepoint. PostgreSQL handles concurrent writers itself: there a write is a plain
//! [`super::run`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;

use diesel::Connection;
use tokio::sync::oneshot;

use super::{AnyConnection, DbPool, pool};
use crate::error::ApiError;

/// Most writes committed together; bounds the time the first caller of a batch waits.
const MAX_BATCH: usize = 64;

/// Where write transactions go (see the module documentation).
#[derive(Clone)]
pub struct Writer {
    pool: DbPool,
    queue: Option<mpsc::Sender<Box<dyn Job>>>,
}

impl Writer {
    /// A group-committing writer thread for SQLite; direct writes for PostgreSQL.
    pub fn new(pool: DbPool, database_url: &str) -> std::io::Result<Self> {
        if pool::is_postgres(database_url) {
            return Ok(Self { pool, queue: None });
        }
        let (queue, jobs) = mpsc::channel::<Box<dyn Job>>();
        let thread_pool = pool.clone();
        std::thread::Builder::new()
            .name("vigil-sqlite-writer".to_owned())
            .spawn(move || write_loop(&thread_pool, &jobs))?;
        Ok(Self {
            pool,
            queue: Some(queue),
        })
    }

    /// Runs `work` in a transaction of its own (PostgreSQL) or in a savepoint of the
    /// next group commit (SQLite); returns once its outcome is durable.
    pub async fn write<F, T>(&self, work: F) -> Result<T, ApiError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let Some(queue) = &self.queue else {
            return super::run(&self.pool, work).await;
        };
        let (reply, answer) = oneshot::channel();
        queue
            .send(Box::new(WriteJob { work, reply }))
            .map_err(|_| ApiError::Internal("the SQLite writer thread is gone".to_owned()))?;
        answer.await.map_err(|_| {
            ApiError::Internal("the SQLite writer dropped a write (it panicked)".to_owned())
        })?
    }
}

/// A queued write, its result type erased so one queue carries every kind.
trait Job: Send {
    /// Runs inside a savepoint; what it returns is sent once the batch's fate is known.
    fn run(self: Box<Self>, conn: &mut AnyConnection) -> Box<dyn Finish>;
    /// Answers without running (no connection could be had).
    fn abandon(self: Box<Self>, why: &str);
}

/// A ran write waiting for its batch's commit.
trait Finish: Send {
    /// Sends the result if the batch committed, else the commit failure.
    fn finish(self: Box<Self>, committed: Result<(), &str>);
}

struct WriteJob<F, T> {
    work: F,
    reply: oneshot::Sender<Result<T, ApiError>>,
}

impl<F, T> Job for WriteJob<F, T>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut AnyConnection) -> Box<dyn Finish> {
        let WriteJob { work, reply } = *self;
        // Nested in the batch's transaction, this is a savepoint: an error undoes
        // this write alone.
        let result = conn.transaction(work);
        Box::new(Ran { result, reply })
    }

    fn abandon(self: Box<Self>, why: &str) {
        let _ = self.reply.send(Err(unavailable(why)));
    }
}

struct Ran<T> {
    result: Result<T, ApiError>,
    reply: oneshot::Sender<Result<T, ApiError>>,
}

impl<T: Send> Finish for Ran<T> {
    fn finish(self: Box<Self>, committed: Result<(), &str>) {
        let outcome = match committed {
            Ok(()) => self.result,
            // What it wrote was rolled back with the batch: never report it stored.
            Err(why) => Err(unavailable(why)),
        };
        let _ = self.reply.send(outcome);
    }
}

fn unavailable(why: &str) -> ApiError {
    ApiError::DatabaseUnavailable(why.to_owned().into())
}

fn write_loop(pool: &DbPool, jobs: &mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // A panicking write (a bug) unwinds out of the pooled connection, which r2d2
        // then discards, so its open transaction is rolled back with it; the callers of
        // the batch get an error (their replies are dropped), none a false success, and
        // the thread lives on for the next batch.
        if catch_unwind(AssertUnwindSafe(|| commit_batch(pool, batch))).is_err() {
            log::error!("a write panicked; its batch was rolled back");
        }
    }
}

fn commit_batch(pool: &DbPool, batch: Vec<Box<dyn Job>>) {
    let mut conn = match pool.get() {
        Ok(conn) => conn,
        Err(e) => {
            let why = e.to_string();
            for job in batch {
                job.abandon(&why);
            }
            return;
        }
    };
    let mut ran: Vec<Box<dyn Finish>> = Vec::with_capacity(batch.len());
    let committed = conn.transaction::<_, diesel::result::Error, _>(|c| {
        for job in batch {
            ran.push(job.run(c));
        }
        Ok(())
    });
    let committed = committed.map_err(|e| {
        log::error!("group commit of {} writes failed: {e}", ran.len());
        e.to_string()
    });
    for finish in ran {
        finish.finish(committed.as_ref().map(|_| ()).map_err(String::as_str));
    }
}
