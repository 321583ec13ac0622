//! The connection pool over either backend. The backend is chosen from the URL scheme
//! explicitly: diesel's derived `establish` would try each backend in turn and hide the
//! real error (and SQLite accepts any string as a path).

use std::path::PathBuf;
use std::time::Duration;

use diesel::r2d2::{ManageConnection, Pool, R2D2Connection};
use diesel::sql_types::Text;
use diesel::{
    Connection, PgConnection, QueryResult, QueryableByName, RunQueryDsl, SqliteConnection,
};

use crate::config::{DatabaseConfig, SqliteSync};
use crate::log_throttle::Throttle;

/// Either backend, behind one type so queries are written once.
#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    /// PostgreSQL (production, several instances).
    Postgresql(PgConnection),
    /// SQLite (default, embedded).
    Sqlite(SqliteConnection),
}

/// The shared pool.
pub type DbPool = Pool<AnyManager>;

/// Whether a URL names PostgreSQL.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// The last value a PostgreSQL URL's query gives `key`, as libpq takes it (the last of
/// several wins); undecoded.
pub fn url_option<'a>(url: &'a str, key: &str) -> Option<&'a str> {
    url.split_once('?')?
        .1
        .split('&')
        .filter_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .next_back()
}

/// A libpq setting as libpq reads it: the URL's `key` option, else the environment
/// variable `variable`; with where it came from (`DATABASE_URL` or the variable), for a
/// message that names what to change.
pub fn libpq_setting(
    url: &str,
    key: &str,
    variable: &'static str,
) -> Option<(&'static str, String)> {
    url_option(url, key)
        .map(|value| ("DATABASE_URL", value.to_owned()))
        .or_else(|| Some((variable, std::env::var(variable).ok()?)))
}

/// Sets how long SQLite waits for another connection's lock on this connection: the
/// writer shortens it for a step that must not stall other processes (its test write, a
/// batch behind a held lock, the last checkpoint) and sets [`BUSY_TIMEOUT_MS`] back after.
pub fn busy_timeout(ms: u64) -> diesel::query_builder::SqlQuery {
    diesel::sql_query(format!("PRAGMA busy_timeout = {ms}"))
}

/// The SQLite filename for a `sqlite://` URL (`sqlite://vigil.db` is relative,
/// `sqlite:///abs/vigil.db` absolute); other strings pass through unchanged.
pub fn sqlite_path(url: &str) -> &str {
    url.strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url)
}

/// The write-ahead log of the SQLite database `conn` is open on, watched to keep it
/// bounded (`db::writer`) and exported as a metric. `None` on PostgreSQL and for an
/// in-memory database, which have no such file.
pub fn sqlite_wal_path(conn: &mut AnyConnection) -> QueryResult<Option<PathBuf>> {
    Ok(sqlite_file(conn)?.map(|file| format!("{}-wal", file.display()).into()))
}

/// The SQLite database file `conn` is open on, as SQLite resolved it (a `file:` URI or a
/// relative path included): what the startup log names, so a backup copies the right
/// file. `None` on PostgreSQL and for an in-memory database.
pub fn sqlite_file(conn: &mut AnyConnection) -> QueryResult<Option<PathBuf>> {
    /// A row of `PRAGMA database_list`.
    #[derive(QueryableByName)]
    struct Database {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = Text)]
        file: String,
    }
    let AnyConnection::Sqlite(conn) = conn else {
        return Ok(None);
    };
    let databases: Vec<Database> = diesel::sql_query("PRAGMA database_list").load(conn)?;
    Ok(databases
        .into_iter()
        .find(|database| database.name == "main")
        .filter(|main| !main.file.is_empty())
        .map(|main| main.file.into()))
}

/// libpq's refusal, without its trailing line break, and what libpq's own words do not
/// say: that a "timeout expired" is Vigil's default bound, and where the cause may be TLS
/// this build leaves out ("SSL support is not compiled in", a server's "no encryption"),
/// how to get a build that has it.
fn with_hint(error: diesel::ConnectionError) -> diesel::ConnectionError {
    let diesel::ConnectionError::BadConnection(message) = error else {
        return error;
    };
    let message = message.trim_end();
    let hint = if message.contains("timeout expired") {
        Some(format!(
            "no answer within the connect timeout, {PG_CONNECT_TIMEOUT_SECS} s unless the URL's \
             `connect_timeout` or PGCONNECT_TIMEOUT sets another"
        ))
    } else if cfg!(feature = "tls") {
        None
    } else if message.contains("SSL support is not compiled in") {
        Some(format!("this setting {}", crate::config::NO_TLS))
    } else if message.contains("no encryption") {
        Some(format!(
            "a server that takes TLS connections only {}",
            crate::config::NO_TLS
        ))
    } else {
        None
    };
    diesel::ConnectionError::BadConnection(match hint {
        Some(hint) => format!("{message} ({hint})"),
        None => message.to_owned(),
    })
}

/// How `conn`'s PostgreSQL server is reached: the hosts `url` names, and whether the
/// server saw the connection encrypted (`None` on SQLite). Asked of the server, as
/// `sslmode=prefer` falls back to plain TCP without a word.
pub fn postgres_link(
    conn: &mut AnyConnection,
    url: &str,
) -> QueryResult<Option<crate::link_security::Link>> {
    /// This backend's row of `pg_stat_ssl`.
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        ssl: bool,
    }
    let AnyConnection::Postgresql(conn) = conn else {
        return Ok(None);
    };
    let row: Row = diesel::sql_query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .get_result(conn)?;
    Ok(Some(crate::link_security::postgres_link(url, row.ssl)))
}

/// The length of the write-ahead log at `path`: 0 while there is none (nothing written
/// yet, or an in-memory database).
pub fn sqlite_wal_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// r2d2 manager that keeps the real connection error and sets SQLite pragmas.
#[derive(Debug, Clone)]
pub struct AnyManager {
    url: String,
    sqlite_sync: SqliteSync,
    wal_limit_bytes: u64,
}

/// How long a PostgreSQL connection may take to open when neither the URL's
/// `connect_timeout` nor `PGCONNECT_TIMEOUT` says: libpq's own default is to wait for ever,
/// and a server that accepts the connection and never answers (a frozen host, a stuck
/// proxy) held `vigil serve` and `vigil migrate` silent at start, and a pool's
/// connecting thread for good. The same bound as a request's ([`crate::db::DEADLINE`]).
pub const PG_CONNECT_TIMEOUT_SECS: u64 = 10;

/// `url` with [`PG_CONNECT_TIMEOUT_SECS`] as its `connect_timeout` when it is PostgreSQL's
/// and neither the URL nor the environment sets one.
fn with_connect_timeout(url: &str) -> String {
    if !is_postgres(url) || libpq_setting(url, "connect_timeout", "PGCONNECT_TIMEOUT").is_some() {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout={PG_CONNECT_TIMEOUT_SECS}")
}

impl AnyManager {
    /// A manager for the configured database.
    pub fn new(config: &DatabaseConfig) -> Self {
        Self {
            url: with_connect_timeout(&config.url),
            sqlite_sync: config.sqlite_sync,
            wal_limit_bytes: config.wal_limit_bytes,
        }
    }
}

impl ManageConnection for AnyManager {
    type Connection = AnyConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<AnyConnection, Self::Error> {
        if is_postgres(&self.url) {
            let mut conn = PgConnection::establish(&self.url)
                .map_err(|e| diesel::r2d2::Error::ConnectionError(with_hint(e)))?;
            // A 201 means committed: a server (or role) set to `synchronous_commit = off`
            // answers a commit before it is on disk, and a crash then loses alerts
            // already announced. Only `off` is raised; `local`, `on`, `remote_write` and
            // `remote_apply` all wait for the local flush, and stay as configured.
            diesel::sql_query(
                "SELECT set_config('synchronous_commit', 'on', false) \
                 WHERE current_setting('synchronous_commit') = 'off'",
            )
            .execute(&mut conn)
            .map_err(diesel::r2d2::Error::QueryError)?;
            Ok(AnyConnection::Postgresql(conn))
        } else {
            let mut conn = SqliteConnection::establish(sqlite_path(&self.url))
                .map_err(diesel::r2d2::Error::ConnectionError)?;
            let sync = match self.sqlite_sync {
                SqliteSync::Normal => "NORMAL",
                SqliteSync::Full => "FULL",
            };
            // busy_timeout first: the pool opens connections in parallel and the WAL
            // switch itself needs the lock. journal_size_limit: when the log starts
            // over, a file grown past the limit is cut back to it.
            for pragma in [
                format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}"),
                "PRAGMA journal_mode = WAL".to_owned(),
                format!("PRAGMA synchronous = {sync}"),
                "PRAGMA foreign_keys = ON".to_owned(),
                format!("PRAGMA journal_size_limit = {}", self.wal_limit_bytes),
            ] {
                diesel::sql_query(pragma)
                    .execute(&mut conn)
                    .map_err(diesel::r2d2::Error::QueryError)?;
            }
            Ok(AnyConnection::Sqlite(conn))
        }
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        std::thread::panicking() || conn.is_broken()
    }
}

/// How often a pool that keeps failing to connect says so.
const CONNECTION_ERROR_EVERY: Duration = Duration::from_secs(30);

/// r2d2's own handler logs every failed connection attempt at error level, and the pool
/// keeps trying in the background: with PostgreSQL down, about 250 `ERROR r2d2` lines in
/// 20 s per instance (chaos audit), burying everything else. Requests refused meanwhile
/// are answered 503 and counted (`vigil_write_failures_total`), and readiness says
/// `unreachable`; the cause is logged once, then at most every
/// [`CONNECTION_ERROR_EVERY`] while it lasts.
#[derive(Debug)]
struct QuietConnectionErrors(Throttle);

impl<E: std::fmt::Display> r2d2::HandleError<E> for QuietConnectionErrors {
    fn handle_error(&self, error: E) {
        if self.0.due() {
            log::warn!(
                "database connection failed: {error} (said again in {} s if it lasts)",
                self.0.every().as_secs()
            );
        }
    }
}

/// How long a SQLite connection waits for a lock another connection holds.
pub const BUSY_TIMEOUT_MS: u64 = 10_000;

/// Builds the pool; fails at once (with the real cause) if the database is unreachable.
pub fn build_pool(config: &DatabaseConfig) -> Result<DbPool, r2d2::Error> {
    Pool::builder()
        .error_handler(Box::new(QuietConnectionErrors(Throttle::new(
            CONNECTION_ERROR_EVERY,
        ))))
        .max_size(config.pool_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(5))
        .test_on_check_out(is_postgres(&config.url))
        .build(AnyManager::new(config))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use std::path::PathBuf;

    use diesel::r2d2::ManageConnection;

    use super::{AnyManager, sqlite_wal_path, with_connect_timeout};
    use crate::config::Config;

    fn wal_of(url: &str) -> Option<PathBuf> {
        let config = Config::new(url, "secret");
        let mut conn = AnyManager::new(&config.database)
            .connect()
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
        sqlite_wal_path(&mut conn).expect("PRAGMA database_list")
    }

    /// The WAL bound and the metric find the log however the database was named, not
    /// only for `sqlite://` URLs: SQLite reports the file it opened.
    #[test]
    fn the_write_ahead_log_is_found_for_every_way_of_naming_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dir = dir.path().canonicalize().expect("canonical tempdir");
        let file = |name: &str| dir.join(name).display().to_string();
        for (url, db) in [
            (format!("sqlite://{}", file("plain.db")), "plain.db"),
            (format!("sqlite:{}", file("short.db")), "short.db"),
            (file("bare.db"), "bare.db"),
            (
                format!("file:{}?mode=rwc&cache=private", file("uri.db")),
                "uri.db",
            ),
            (format!("file://{}", file("authority.db")), "authority.db"),
            (
                format!("sqlite://file:{}?mode=rwc", file("both.db")),
                "both.db",
            ),
        ] {
            assert_eq!(
                wal_of(&url),
                Some(dir.join(format!("{db}-wal"))),
                "the log of {url}"
            );
        }
    }

    #[test]
    fn an_in_memory_database_has_no_write_ahead_log_file() {
        for url in [
            ":memory:",
            "file::memory:",
            "file:shared?mode=memory&cache=shared",
        ] {
            assert_eq!(wal_of(url), None, "{url}");
        }
    }

    /// libpq waits for ever to connect unless told: the URL's own `connect_timeout` is
    /// kept, otherwise 10 s is added, after the query the URL has or as its first.
    #[test]
    fn a_postgresql_url_gets_a_connect_timeout_unless_it_sets_one() {
        assert_eq!(
            with_connect_timeout("postgres://v@db/v"),
            "postgres://v@db/v?connect_timeout=10"
        );
        assert_eq!(
            with_connect_timeout("postgresql://v@db/v?sslmode=require"),
            "postgresql://v@db/v?sslmode=require&connect_timeout=10"
        );
        let own = "postgres://v@db/v?connect_timeout=3";
        assert_eq!(with_connect_timeout(own), own);
        assert_eq!(with_connect_timeout("sqlite://v.db"), "sqlite://v.db");
    }
}
