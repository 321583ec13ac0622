//! The database settings `serve` and `migrate` share: which store, how durable, how
//! many connections, how far the write-ahead log may grow.

use super::values::{MAX_POOL, at_most};
use super::{ConfigError, NO_TLS};
use crate::cli::DatabaseArgs;

/// SQLite durability level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    /// `synchronous=NORMAL`: survives a process crash.
    Normal,
    /// `synchronous=FULL`: survives power loss.
    Full,
}

/// Database settings shared by `serve` and `migrate`.
#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// `sqlite://…` or `postgres://…`.
    pub url: String,
    /// SQLite durability.
    pub sqlite_sync: SqliteSync,
    /// Pool size.
    pub pool_size: u32,
    /// Bytes the SQLite write-ahead log may reach before the writer starts it over
    /// (see `db::writer`); without a bound, sustained writes grow it for ever.
    pub wal_limit_bytes: u64,
}

/// Default for [`DatabaseConfig::wal_limit_bytes`]: 64 MiB.
pub const DEFAULT_WAL_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

/// The `sslmode` a PostgreSQL URL (or else `PGSSLMODE`, which libpq reads) sets when it is
/// one that insists on TLS, with the variable that set it: libpq built without TLS
/// refuses it with words that do not say how to get a build that has it.
fn tls_sslmode(url: &str) -> Option<(&'static str, String)> {
    crate::db::pool::libpq_setting(url, "sslmode", "PGSSLMODE")
        .filter(|(_, mode)| matches!(mode.as_str(), "require" | "verify-ca" | "verify-full"))
}

/// Refuses what neither backend can open: another database's scheme (it would have been
/// taken for a SQLite file name) or a SQLite URL naming no file (SQLite would open a
/// temporary database and lose everything at exit).
fn check_database_url(url: &str) -> Result<(), ConfigError> {
    if crate::db::pool::is_postgres(url) {
        return match tls_sslmode(url) {
            Some((variable, mode)) if !cfg!(feature = "tls") => Err(ConfigError::new(
                variable,
                format!("sslmode={mode} {NO_TLS}"),
            )),
            _ => Ok(()),
        };
    }
    if let Some((scheme, _)) = url.split_once("://")
        && !matches!(scheme, "sqlite" | "file")
    {
        return Err(ConfigError::new(
            "DATABASE_URL",
            format!("unsupported scheme `{scheme}` (expected sqlite://… or postgres://…)"),
        ));
    }
    let path = crate::db::pool::sqlite_path(url);
    let no_file = || {
        ConfigError::new(
            "DATABASE_URL",
            "names no database file (e.g. sqlite://vigil.db): an in-memory or temporary \
             SQLite database loses every alert when the process ends",
        )
    };
    if let Some(uri) = path.strip_prefix("file:") {
        // A SQLite URI: `file:/path?options`. Its file part must name a file, and no
        // option may make it a memory database.
        let (file, options) = uri.split_once('?').unwrap_or((uri, ""));
        let file = file
            .trim_start_matches("//localhost")
            .trim_start_matches("//");
        let memory = options
            .split('&')
            .any(|o| o.eq_ignore_ascii_case("mode=memory"));
        if file.trim().is_empty() || file == ":memory:" || memory {
            return Err(no_file());
        }
        return Ok(());
    }
    if path.trim().is_empty() || path == ":memory:" {
        return Err(no_file());
    }
    if path.contains('?') {
        return Err(ConfigError::new(
            "DATABASE_URL",
            "has a query string, which SQLite would take as part of the file name; for \
             SQLite options use a file: URI (file:/var/lib/vigil/vigil.db?mode=rwc)",
        ));
    }
    Ok(())
}

/// Validates the database flags (also used by `vigil migrate`).
pub fn database_config(args: &DatabaseArgs) -> Result<DatabaseConfig, ConfigError> {
    let url = args.database_url.trim();
    if url.is_empty() {
        return Err(ConfigError::new("DATABASE_URL", "must not be empty"));
    }
    check_database_url(url)?;
    let sqlite_sync = match args.sqlite_sync.trim().to_ascii_lowercase().as_str() {
        "normal" => SqliteSync::Normal,
        "full" => SqliteSync::Full,
        _ => {
            return Err(ConfigError::new(
                "VIGIL_SQLITE_SYNC",
                "expected `normal` or `full`",
            ));
        }
    };
    let pool_size = at_most(&args.db_pool_size, "VIGIL_DB_POOL_SIZE", MAX_POOL, "")?;
    let pool_size = u32::try_from(pool_size)
        .map_err(|_| ConfigError::new("VIGIL_DB_POOL_SIZE", format!("at most {MAX_POOL}")))?;
    // SQLite takes the limit as a signed 64-bit byte count.
    const MAX_WAL_MB: u64 = (i64::MAX as u64) / (1024 * 1024);
    let wal_limit_mb = at_most(
        &args.sqlite_wal_limit_mb,
        "VIGIL_SQLITE_WAL_LIMIT_MB",
        MAX_WAL_MB,
        " MiB",
    )?;
    let wal_limit_bytes = wal_limit_mb * 1024 * 1024;
    Ok(DatabaseConfig {
        url: url.to_owned(),
        sqlite_sync,
        pool_size,
        wal_limit_bytes,
    })
}
