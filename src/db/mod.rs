//! Persistence: the pool, embedded migrations, and composable query functions that take
//! `&mut AnyConnection` so a service can run several inside one transaction.
//! All calls go through [`run`], which moves them off the actix worker threads.

pub mod acks;
pub mod alerts;
pub mod care_team;
pub mod chunked;
pub mod deployment;
pub mod events;
pub mod files;
pub mod fixed;
pub mod integrity;
pub mod migrate;
pub mod models;
pub mod pool;
pub mod retention;
pub mod schema;
pub mod writer;

pub use pool::{AnyConnection, DbPool};
pub use writer::Writer;

use std::time::Duration;

use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::error::ApiError;

/// How long a request waits for the database in all, connection and work: a database
/// that takes requests but never answers (a frozen host, a network that drops packets)
/// held every request, readiness included, until it came back — or for the kernel's
/// quarter of an hour of TCP retries.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// Runs blocking database work on actix's blocking pool. A pool timeout (database
/// unreachable) becomes 503, and so does no answer within [`DEADLINE`]; the closure's
/// own errors pass through.
pub async fn run<F, T>(pool: &DbPool, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    bounded(pool, pool.connection_timeout(), DEADLINE, work).await
}

/// [`run`] answered within `limit` in all: a readiness probe must answer within the
/// probe's own timeout (Kubernetes' default is one second), not the pool's five.
pub async fn run_within<F, T>(pool: &DbPool, limit: Duration, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    bounded(pool, limit, limit, work).await
}

/// Waits `checkout` for a connection and `deadline` for the answer. Past the deadline the
/// work goes on on its blocking thread (a thread cannot be stopped inside a query): a
/// write may still commit, which is why [`ApiError::DatabaseTimeout`] does not say
/// "nothing was changed".
async fn bounded<F, T>(
    pool: &DbPool,
    checkout: Duration,
    deadline: Duration,
    work: F,
) -> Result<T, ApiError>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    let pool = pool.clone();
    let blocking = actix_web::web::block(move || {
        let mut conn = pool
            .get_timeout(checkout)
            .map_err(|e| ApiError::DatabaseUnavailable(Box::new(e)))?;
        work(&mut conn)
    });
    match tokio::time::timeout(deadline, blocking).await {
        Ok(answer) => {
            answer.map_err(|e| ApiError::Internal(format!("blocking task failed: {e}")))?
        }
        Err(_) => Err(ApiError::DatabaseTimeout(deadline)),
    }
}

/// Runs several reads on one snapshot of the database: an answer built from several
/// queries (a list, the acknowledgments of its alerts, the log's head) then describes one
/// moment. Read separately, an alert could show `open` beside an acknowledgment that
/// already made it `acknowledged`, or a `last_seq` past the envelope's head. SQLite: a
/// deferred transaction reads one snapshot from its first query; PostgreSQL: repeatable
/// read (read committed takes a new snapshot per statement).
pub fn on_one_snapshot<T>(
    conn: &mut AnyConnection,
    work: impl FnOnce(&mut AnyConnection) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    use diesel::{Connection, RunQueryDsl};
    conn.transaction(|c| {
        if matches!(c, AnyConnection::Postgresql(_)) {
            diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(c)?;
        }
        work(c)
    })
}

/// Whether `cause` is a database connection that broke while a request was in it
/// (closed, terminated by the server, a command that could not be sent). A commit may
/// have reached the database before the break: unlike a connection that could not be
/// had, such a write may have been stored (an outside audit: PostgreSQL stopped during a
/// commit, the alert was stored and streamed, and its producer was told "nothing was
/// changed").
pub fn connection_broke(cause: &(dyn std::error::Error + 'static)) -> bool {
    match cause.downcast_ref::<DieselError>() {
        Some(
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _)
            | DieselError::DatabaseError(DatabaseErrorKind::UnableToSendCommand, _)
            | DieselError::BrokenTransactionManager,
        ) => true,
        Some(DieselError::DatabaseError(_, info)) => {
            info.message().contains("terminating connection")
        }
        _ => false,
    }
}

impl From<DieselError> for ApiError {
    fn from(err: DieselError) -> Self {
        let locked = matches!(&err, DieselError::DatabaseError(_, info)
            if info.message().contains("database is locked"));
        let unavailable = locked || connection_broke(&err);
        if unavailable {
            ApiError::DatabaseUnavailable(Box::new(err))
        } else {
            ApiError::Database(Box::new(err))
        }
    }
}
