//! Validated configuration. Raw strings from the CLI/environment become typed values
//! here, once; a bad value is a [`ConfigError`] naming the variable, never a panic.

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::cli::{DatabaseArgs, JwtArgs, ServeArgs};

/// A configuration value that cannot be used; the message names the variable.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    /// The environment variable (or flag) at fault.
    pub variable: &'static str,
    /// What was expected.
    pub message: String,
}

impl ConfigError {
    fn new(variable: &'static str, message: impl Into<String>) -> Self {
        Self {
            variable,
            message: message.into(),
        }
    }
}

/// A secret whose `Debug`/`Display` never show the value, so `{:?}` cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The value, for the few places that must use it (signing, verifying).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Verification key material; the algorithm is pinned alongside it.
#[derive(Debug, Clone)]
pub enum JwtKey {
    /// HS256 shared secret.
    Secret(Secret),
    /// PEM public key (RS256 or ES256).
    PublicPem(Vec<u8>),
}

/// Everything needed to verify a token.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The key.
    pub key: JwtKey,
    /// The only algorithm accepted (prevents algorithm confusion).
    pub algorithm: Algorithm,
    /// Required `iss`, when configured.
    pub issuer: Option<String>,
    /// Required `aud`, when configured.
    pub audience: Option<String>,
}

/// Phase of the WebSocket migration (DESIGN.md, "Migration phases").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WsMode {
    /// Phase 1: both transports.
    On,
    /// Phase 2: still served, with deprecation headers, frame and metrics.
    Deprecated,
    /// Phase 3: `/ws` answers 410 Gone.
    Off,
}

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

/// The whole validated server configuration. Tests build it with [`Config::new`] and
/// adjust fields directly.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address; port 0 picks a free port.
    pub bind: String,
    /// Database.
    pub database: DatabaseConfig,
    /// Token verification.
    pub jwt: JwtConfig,
    /// SSE heartbeat period.
    pub heartbeat: Duration,
    /// Bounded per-client queue length.
    pub client_queue: NonZeroUsize,
    /// Redis for multi-instance fan-out.
    pub redis_url: Option<String>,
    /// WebSocket phase.
    pub ws_mode: WsMode,
    /// Sunset date (YYYY-MM-DD) announced in deprecated mode.
    pub ws_sunset: chrono::NaiveDate,
    /// The `Deprecation` header's date in deprecated mode (RFC 9745 wants a date, not
    /// `true`); never after the sunset.
    pub ws_deprecated_since: chrono::NaiveDate,
    /// Most bytes of frames a WebSocket resume replays before it answers `reset` instead.
    pub ws_replay_max_bytes: NonZeroUsize,
    /// WebSocket ping period.
    pub ws_ping: Duration,
    /// WebSocket silence limit.
    pub ws_timeout: Duration,
    /// Extra allowed origins (CORS and cookie Origin check).
    pub cors_origins: Vec<String>,
    /// Streams per user.
    pub max_streams_per_user: usize,
    /// Streams per instance.
    pub max_connections: Option<usize>,
    /// How often the manager checks the event log for events it did not hear about.
    pub tail_poll: Duration,
    /// Writes (raise, acknowledge) per second per token subject.
    pub rate_limit: std::num::NonZeroU32,
    /// Time a client has to send a complete request head, and again its body once the
    /// head is in (slowloris defence).
    pub request_timeout: Duration,
}

impl Config {
    /// Defaults from DESIGN.md with the given database and HS256 secret; binds an
    /// ephemeral port on loopback. Used by tests and by `--dev`.
    pub fn new(database_url: impl Into<String>, jwt_secret: impl Into<String>) -> Self {
        Self {
            bind: "127.0.0.1:0".to_owned(),
            database: DatabaseConfig {
                url: database_url.into(),
                sqlite_sync: SqliteSync::Normal,
                pool_size: 8,
                wal_limit_bytes: DEFAULT_WAL_LIMIT_BYTES,
            },
            jwt: JwtConfig {
                key: JwtKey::Secret(Secret::new(jwt_secret)),
                algorithm: Algorithm::HS256,
                issuer: None,
                audience: None,
            },
            heartbeat: Duration::from_secs(30),
            client_queue: NonZeroUsize::new(100).unwrap_or(NonZeroUsize::MIN),
            redis_url: None,
            ws_mode: WsMode::On,
            ws_sunset: chrono::NaiveDate::from_ymd_opt(2027, 6, 30).unwrap_or_default(),
            ws_deprecated_since: chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap_or_default(),
            ws_replay_max_bytes: NonZeroUsize::new(1024 * 1024).unwrap_or(NonZeroUsize::MIN),
            ws_ping: Duration::from_secs(30),
            ws_timeout: Duration::from_secs(60),
            cors_origins: Vec::new(),
            max_streams_per_user: 10,
            max_connections: None,
            tail_poll: Duration::from_secs(1),
            rate_limit: std::num::NonZeroU32::new(200).unwrap_or(std::num::NonZeroU32::MIN),
            request_timeout: Duration::from_secs(10),
        }
    }

    /// Validates `serve` flags. `dev_secret` is used when no key is configured (`--dev`).
    pub fn from_args(args: &ServeArgs, dev_secret: Option<&str>) -> Result<Self, ConfigError> {
        let jwt = jwt_config(&args.jwt, dev_secret)?;
        let database = database_config(&args.database)?;
        let mut config = Config::new(database.url.clone(), "");
        config.database = database;
        config.jwt = jwt;
        config.bind = parse_bind(&args.bind)?;
        config.heartbeat =
            Duration::from_secs(seconds(&args.heartbeat_secs, "VIGIL_HEARTBEAT_SECS")?);
        config.client_queue = non_zero(&args.client_queue, "VIGIL_CLIENT_QUEUE", MAX_QUEUE)?;
        config.ws_replay_max_bytes = ws_replay_bytes(&args.ws_replay_max_kib)?;
        config.redis_url = match args.redis_url.as_deref().map(str::trim) {
            None | Some("") => None,
            // Parsed now (no connection), as Redis will take it: a bad one was found only
            // after the database had been opened and migrated.
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                redis::Client::open(url).map_err(|e| {
                    ConfigError::new(
                        "VIGIL_REDIS_URL",
                        format!("{e} (expected redis://host:port/; TLS is not built in)"),
                    )
                })?;
                Some(url.to_owned())
            }
            Some(_) => {
                return Err(ConfigError::new(
                    "VIGIL_REDIS_URL",
                    "expected a redis:// URL",
                ));
            }
        };
        config.ws_mode = parse_ws_mode(&args.ws_mode)?;
        config.ws_sunset = chrono::NaiveDate::parse_from_str(args.ws_sunset.trim(), "%Y-%m-%d")
            .map_err(|_| ConfigError::new("VIGIL_WS_SUNSET", "expected a date YYYY-MM-DD"))?;
        config.ws_deprecated_since =
            chrono::NaiveDate::parse_from_str(args.ws_deprecated_since.trim(), "%Y-%m-%d")
                .map_err(|_| {
                    ConfigError::new("VIGIL_WS_DEPRECATED_SINCE", "expected a date YYYY-MM-DD")
                })?;
        if config.ws_deprecated_since > config.ws_sunset {
            return Err(ConfigError::new(
                "VIGIL_WS_DEPRECATED_SINCE",
                format!(
                    "must not be after VIGIL_WS_SUNSET ({}): an interface is deprecated before it goes",
                    config.ws_sunset
                ),
            ));
        }
        config.ws_ping = Duration::from_secs(seconds(&args.ws_ping_secs, "VIGIL_WS_PING_SECS")?);
        config.ws_timeout =
            Duration::from_secs(seconds(&args.ws_timeout_secs, "VIGIL_WS_TIMEOUT_SECS")?);
        if config.ws_timeout <= config.ws_ping {
            return Err(ConfigError::new(
                "VIGIL_WS_TIMEOUT_SECS",
                format!(
                    "must be longer than VIGIL_WS_PING_SECS ({} s), or a quiet, healthy \
                     session is closed before its first ping",
                    config.ws_ping.as_secs()
                ),
            ));
        }
        config.cors_origins = parse_origins(&args.cors_origins)?;
        config.max_streams_per_user = non_zero(
            &args.max_streams_per_user,
            "VIGIL_MAX_STREAMS_PER_USER",
            MAX_COUNT,
        )?
        .get();
        config.max_connections = match args.max_connections.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(raw) => Some(non_zero(raw, "VIGIL_MAX_CONNECTIONS", MAX_COUNT)?.get()),
        };
        let rate_limit = at_most(&args.rate_limit, "VIGIL_RATE_LIMIT", u32::MAX.into(), "")?;
        config.rate_limit = u32::try_from(rate_limit)
            .ok()
            .and_then(std::num::NonZeroU32::new)
            .unwrap_or(std::num::NonZeroU32::MAX);
        config.request_timeout = Duration::from_secs(seconds(
            &args.request_timeout_secs,
            "VIGIL_REQUEST_TIMEOUT_SECS",
        )?);
        Ok(config)
    }
}

/// Refuses what neither backend can open: another database's scheme (it would have been
/// taken for a SQLite file name) or a SQLite URL naming no file (SQLite would open a
/// temporary database and lose everything at exit).
fn check_database_url(url: &str) -> Result<(), ConfigError> {
    if crate::db::pool::is_postgres(url) {
        return Ok(());
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

/// A setting without a default: `None` when absent, empty or only spaces (README: an
/// empty variable means "not set"), else its value without surrounding spaces. A blank
/// `VIGIL_JWT_ISSUER` had become a required `iss` of " " that no token carries.
pub fn set_value(raw: Option<&str>) -> Option<String> {
    raw.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Validates the JWT flags. Exactly one key source; the algorithm must fit the key.
pub fn jwt_config(args: &JwtArgs, dev_secret: Option<&str>) -> Result<JwtConfig, ConfigError> {
    // Blank is "not set" (README); a real secret is used as given, spaces and all.
    let secret = args.jwt_secret.as_deref().filter(|s| !s.trim().is_empty());
    let key_file = args
        .jwt_public_key_file
        .as_deref()
        .filter(|s| !s.trim().is_empty());
    let alg = match args
        .jwt_alg
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(raw) => Some(match raw.to_ascii_uppercase().as_str() {
            "HS256" => Algorithm::HS256,
            "RS256" => Algorithm::RS256,
            "ES256" => Algorithm::ES256,
            _ => {
                return Err(ConfigError::new(
                    "VIGIL_JWT_ALG",
                    "expected HS256, RS256 or ES256",
                ));
            }
        }),
    };
    let (key, algorithm) = match (secret, key_file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "VIGIL_JWT_SECRET",
                "set either VIGIL_JWT_SECRET (--jwt-secret) or VIGIL_JWT_PUBLIC_KEY_FILE \
                 (--jwt-public-key-file), not both; unset the environment variable of the one \
                 you do not use",
            ));
        }
        (Some(secret), None) => {
            if secret.len() < 32 {
                return Err(ConfigError::new(
                    "VIGIL_JWT_SECRET",
                    "expected at least 32 bytes (32 ASCII characters): HS256 needs a key as \
                     long as its 256-bit hash (RFC 7518 §3.2)",
                ));
            }
            match alg {
                None | Some(Algorithm::HS256) => {}
                Some(_) => {
                    return Err(ConfigError::new(
                        "VIGIL_JWT_ALG",
                        "a shared secret only works with HS256",
                    ));
                }
            }
            (JwtKey::Secret(Secret::new(secret)), Algorithm::HS256)
        }
        (None, Some(path)) => {
            let pem = std::fs::read(path).map_err(|e| {
                ConfigError::new(
                    "VIGIL_JWT_PUBLIC_KEY_FILE",
                    format!("cannot read {path}: {e}"),
                )
            })?;
            let algorithm = match alg {
                Some(a @ (Algorithm::RS256 | Algorithm::ES256)) => a,
                _ => {
                    return Err(ConfigError::new(
                        "VIGIL_JWT_ALG",
                        "a public key needs VIGIL_JWT_ALG=RS256 or ES256",
                    ));
                }
            };
            (JwtKey::PublicPem(pem), algorithm)
        }
        (None, None) => match dev_secret {
            Some(secret) => (JwtKey::Secret(Secret::new(secret)), Algorithm::HS256),
            None => {
                return Err(ConfigError::new(
                    "VIGIL_JWT_SECRET",
                    "set VIGIL_JWT_SECRET (or VIGIL_JWT_PUBLIC_KEY_FILE), or run `vigil serve --dev`",
                ));
            }
        },
    };
    let config = JwtConfig {
        key,
        algorithm,
        issuer: set_value(args.jwt_issuer.as_deref()),
        audience: set_value(args.jwt_audience.as_deref()),
    };
    crate::auth::keys::Verifier::new(&config)
        .map_err(|e| ConfigError::new("VIGIL_JWT_PUBLIC_KEY_FILE", e.to_string()))?;
    Ok(config)
}

fn parse_bind(raw: &str) -> Result<String, ConfigError> {
    let raw = raw.trim();
    match raw.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(raw.to_owned()),
        _ => Err(ConfigError::new(
            "VIGIL_BIND",
            "expected host:port, e.g. 127.0.0.1:8080",
        )),
    }
}

/// A positive integer up to `max` (`unit` follows the number in the message). Beyond it,
/// whether it still fits in 64 bits or not, the message names the limit: "expected a
/// positive integer" for a number too large to hold misled.
fn at_most(raw: &str, variable: &'static str, max: u64, unit: &str) -> Result<u64, ConfigError> {
    match raw.trim().parse::<u64>() {
        Ok(n) if n > max => Err(ConfigError::new(variable, format!("at most {max}{unit}"))),
        Ok(n) if n > 0 => Ok(n),
        Ok(_) => Err(ConfigError::new(variable, "expected a positive integer")),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
            Err(ConfigError::new(variable, format!("at most {max}{unit}")))
        }
        Err(_) => Err(ConfigError::new(variable, "expected a positive integer")),
    }
}

/// The longest period or timeout a setting may name: beyond a day, a heartbeat or a
/// ping no longer does its job, and far beyond it the clock arithmetic overflows.
const MAX_SECONDS: u64 = 86_400;
/// Largest client queue: tokio's channels hold at most about 2^61 permits (more panics
/// at the first stream), and a million events per client is far beyond any use.
const MAX_QUEUE: u64 = 1_000_000;
/// Largest stream count a limit may name.
const MAX_COUNT: u64 = 100_000_000;
/// Largest database pool (each connection is a server process on PostgreSQL).
const MAX_POOL: u64 = 10_000;

fn seconds(raw: &str, variable: &'static str) -> Result<u64, ConfigError> {
    at_most(raw, variable, MAX_SECONDS, " seconds (one day)")
}

fn non_zero(raw: &str, variable: &'static str, max: u64) -> Result<NonZeroUsize, ConfigError> {
    non_zero_in(raw, variable, max, "")
}

/// [`at_most`] as a `NonZeroUsize` (a limit above `usize::MAX` is that on 32-bit targets).
fn non_zero_in(
    raw: &str,
    variable: &'static str,
    max: u64,
    unit: &str,
) -> Result<NonZeroUsize, ConfigError> {
    let n = at_most(raw, variable, max, unit)?;
    usize::try_from(n)
        .ok()
        .and_then(NonZeroUsize::new)
        .ok_or_else(|| ConfigError::new(variable, format!("at most {max}{unit}")))
}

/// `VIGIL_WS_REPLAY_MAX_KIB` in bytes; at most 1 GiB (each resuming session may hold that
/// much until its dashboard reads it).
fn ws_replay_bytes(raw: &str) -> Result<NonZeroUsize, ConfigError> {
    const VARIABLE: &str = "VIGIL_WS_REPLAY_MAX_KIB";
    let kib = non_zero_in(raw, VARIABLE, 1024 * 1024, " (1 GiB)")?;
    // At most 2^30 after the check above: no overflow, even on 32-bit targets.
    Ok(kib.saturating_mul(NonZeroUsize::new(1024).unwrap_or(NonZeroUsize::MIN)))
}

fn parse_ws_mode(raw: &str) -> Result<WsMode, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "on" => Ok(WsMode::On),
        "deprecated" => Ok(WsMode::Deprecated),
        "off" => Ok(WsMode::Off),
        _ => Err(ConfigError::new(
            "VIGIL_WS_MODE",
            "expected on, deprecated or off",
        )),
    }
}

fn parse_origins(raw: &str) -> Result<Vec<String>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|origin| {
            as_origin(origin).ok_or_else(|| {
                ConfigError::new(
                    "VIGIL_CORS_ORIGINS",
                    format!("`{origin}` is not an origin like https://host[:port] (no path)"),
                )
            })
        })
        .collect()
}

/// `scheme://host[:port]` in the lower case browsers send in `Origin`, or `None` for
/// anything a browser's `Origin` can never equal (a path, a query, credentials, another
/// scheme), so a mistyped entry stops the server instead of matching nothing.
fn as_origin(raw: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    let authority = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))?;
    // `[v6 address]` or a name/IPv4 address, then an optional `:port`.
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (address, rest) = bracketed.split_once(']')?;
            let ok = !address.is_empty()
                && address
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || matches!(c, ':' | '.'));
            (ok, rest)
        }
        None => {
            let end = authority.find(':').unwrap_or(authority.len());
            let (host, rest) = authority.split_at(end);
            let ok = !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
            (ok, rest)
        }
    };
    let port_ok = port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    (host_ok && port_ok).then_some(lower)
}

/// Parses a lifetime such as `90`, `30m`, `8h`, `2d` (used by `vigil token --ttl`).
pub fn parse_ttl(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let (digits, unit) = match raw.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (raw.get(..i)?, c),
        _ => (raw, 's'),
    };
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        'd' => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_units_are_understood() {
        assert_eq!(parse_ttl("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("8h"), Some(Duration::from_secs(28_800)));
        assert_eq!(parse_ttl("2d"), Some(Duration::from_secs(172_800)));
        assert_eq!(parse_ttl("0"), None, "a zero lifetime is useless");
        assert_eq!(parse_ttl("h"), None, "a unit without a number");
        assert_eq!(parse_ttl("5y"), None, "unknown unit");
    }

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("super-secret-value");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
    }

    fn db_args(url: &str, wal_limit_mb: &str) -> DatabaseArgs {
        DatabaseArgs {
            database_url: url.to_owned(),
            sqlite_sync: "normal".to_owned(),
            db_pool_size: "8".to_owned(),
            sqlite_wal_limit_mb: wal_limit_mb.to_owned(),
        }
    }

    #[test]
    fn the_wal_limit_is_in_mebibytes_and_must_fit() {
        let limit = |mb: &str| {
            database_config(&db_args("sqlite://vigil.db", mb)).map(|c| c.wal_limit_bytes)
        };
        let error = |mb: &str| limit(mb).err().map(|e| e.to_string());
        assert_eq!(limit("64").ok(), Some(DEFAULT_WAL_LIMIT_BYTES));
        assert_eq!(limit(" 1 ").ok(), Some(1024 * 1024));
        assert_eq!(
            error("0").as_deref(),
            Some("VIGIL_SQLITE_WAL_LIMIT_MB: expected a positive integer")
        );
        assert_eq!(
            error("99999999999999").as_deref(),
            Some("VIGIL_SQLITE_WAL_LIMIT_MB: at most 8796093022207 MiB"),
            "SQLite takes the limit as a signed 64-bit byte count"
        );
    }

    #[test]
    fn a_database_url_neither_backend_opens_is_refused_naming_the_variable() {
        let args = |url: &str| db_args(url, "64");
        for url in [
            "sqlite://vigil.db",
            "sqlite:///var/lib/vigil/vigil.db",
            "vigil.db",
            "file:vigil.db?mode=rwc",
            "file:///var/lib/vigil/vigil.db?mode=rwc&cache=private",
            "postgres://vigil@db/vigil",
            "postgresql://vigil@db/vigil",
        ] {
            assert!(database_config(&args(url)).is_ok(), "{url}");
        }
        for (url, why) in [
            ("mysql://x/y", "unsupported scheme `mysql`"),
            ("redis://localhost/", "unsupported scheme `redis`"),
            ("sqlite://", "names no database file"),
            ("sqlite:", "names no database file"),
            // Each pooled connection would get a database of its own, and all is lost at
            // exit: the server started, and every write failed.
            (":memory:", "names no database file"),
            ("sqlite::memory:", "names no database file"),
            ("sqlite://:memory:", "names no database file"),
            ("file::memory:", "names no database file"),
            ("file:", "names no database file"),
            ("file:/x.db?mode=memory", "names no database file"),
            (
                "file:x.db?cache=shared&MODE=memory",
                "names no database file",
            ),
            // Not a URI: the options would be part of the file's name.
            ("sqlite:///var/lib/vigil/vigil.db?mode=rwc", "file: URI"),
            ("/var/lib/vigil/plain.db?cache=shared", "file: URI"),
        ] {
            let error = database_config(&args(url)).err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("DATABASE_URL: ") && e.contains(why)),
                "{url}: {error:?}"
            );
        }
    }

    #[test]
    fn periods_are_at_most_a_day_and_the_websocket_timeout_outlasts_its_ping() {
        assert_eq!(seconds("86400", "VIGIL_HEARTBEAT_SECS").ok(), Some(86_400));
        assert_eq!(
            seconds("99999999999", "VIGIL_HEARTBEAT_SECS")
                .err()
                .map(|e| e.to_string())
                .as_deref(),
            Some("VIGIL_HEARTBEAT_SECS: at most 86400 seconds (one day)")
        );
        let serve = |ping: &str, timeout: &str| {
            let mut args = <crate::cli::Cli as clap::Parser>::parse_from(["vigil"]).serve;
            args.jwt.jwt_secret = Some("0123456789abcdef0123456789abcdef".to_owned());
            args.ws_ping_secs = ping.to_owned();
            args.ws_timeout_secs = timeout.to_owned();
            Config::from_args(&args, None).map(|c| (c.ws_ping, c.ws_timeout))
        };
        assert!(serve("30", "60").is_ok());
        for (ping, timeout) in [("100", "5"), ("30", "30")] {
            let error = serve(ping, timeout).err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("VIGIL_WS_TIMEOUT_SECS: must be longer")),
                "ping {ping}, timeout {timeout}: {error:?}"
            );
        }
    }

    #[test]
    fn the_websocket_replay_limit_is_a_positive_number_of_kibibytes_up_to_a_gibibyte() {
        let replay_max = |raw: &str| {
            let mut args = <crate::cli::Cli as clap::Parser>::parse_from(["vigil"]).serve;
            args.jwt.jwt_secret = Some("0123456789abcdef0123456789abcdef".to_owned());
            args.ws_replay_max_kib = raw.to_owned();
            Config::from_args(&args, None)
                .map(|c| c.ws_replay_max_bytes.get())
                .map_err(|e| e.to_string())
        };
        assert_eq!(replay_max("1024"), Ok(1024 * 1024));
        assert_eq!(replay_max("1048576"), Ok(1 << 30));
        assert_eq!(
            replay_max("1048577"),
            Err("VIGIL_WS_REPLAY_MAX_KIB: at most 1048576 (1 GiB)".to_owned())
        );
        for bad in ["0", "-1", "lots", ""] {
            assert_eq!(
                replay_max(bad),
                Err("VIGIL_WS_REPLAY_MAX_KIB: expected a positive integer".to_owned()),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn cors_origins_are_origins_a_browser_can_send() {
        assert_eq!(
            parse_origins(
                " https://Console.Example , http://localhost:5173,http://[::1]:8080,http://[::1]"
            )
            .ok(),
            Some(vec![
                "https://console.example".to_owned(),
                "http://localhost:5173".to_owned(),
                "http://[::1]:8080".to_owned(),
                "http://[::1]".to_owned(),
            ]),
            "trimmed and lower-cased, as browsers send them"
        );
        for bad in [
            "http://a.com/path",
            "https://a.com/",
            "https://a.com?x=1",
            "https://user@a.com",
            "https://a.com:99999",
            "https://a.com:",
            "ftp://a.com",
            "notaurl",
            "*",
            "https://",
            "http://[::1",
            "http://[zz]:80",
        ] {
            let error = parse_origins(bad).err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("VIGIL_CORS_ORIGINS: ")),
                "{bad}: {error:?}"
            );
        }
    }

    #[test]
    fn a_number_too_large_to_hold_says_the_largest_allowed_and_a_blank_secret_is_refused() {
        let serve = |tweak: &dyn Fn(&mut crate::cli::ServeArgs)| {
            let mut args = <crate::cli::Cli as clap::Parser>::parse_from(["vigil"]).serve;
            args.jwt.jwt_secret = Some("0123456789abcdef0123456789abcdef".to_owned());
            tweak(&mut args);
            Config::from_args(&args, None).err().map(|e| e.to_string())
        };
        assert_eq!(
            serve(&|a| a.rate_limit = "99999999999".to_owned()).as_deref(),
            Some("VIGIL_RATE_LIMIT: at most 4294967295")
        );
        assert_eq!(
            serve(&|a| a.rate_limit = "-5".to_owned()).as_deref(),
            Some("VIGIL_RATE_LIMIT: expected a positive integer")
        );
        for queue in ["1000001", "18446744073709551615", "99999999999999999999999"] {
            assert_eq!(
                serve(&|a| a.client_queue = queue.to_owned()).as_deref(),
                Some("VIGIL_CLIENT_QUEUE: at most 1000000"),
                "{queue}: more panics in tokio at the first stream"
            );
        }
        assert_eq!(
            serve(&|a| a.heartbeat_secs = "99999999999999999999999".to_owned()).as_deref(),
            Some("VIGIL_HEARTBEAT_SECS: at most 86400 seconds (one day)"),
            "the setting's own limit, not the parser's"
        );
        // Only spaces is "not set" (README), whatever its length.
        for spaces in [4, 40] {
            let blank = serve(&|a| a.jwt.jwt_secret = Some(" ".repeat(spaces)));
            assert!(
                blank
                    .as_deref()
                    .is_some_and(|e| e.starts_with("VIGIL_JWT_SECRET: set VIGIL_JWT_SECRET")),
                "{blank:?}"
            );
        }
    }

    /// RFC 9745: a deprecation date, never after the sunset it leads to.
    #[test]
    fn the_deprecation_date_is_a_date_not_after_the_sunset() {
        let serve = |since: &str, sunset: &str| {
            let mut args = <crate::cli::Cli as clap::Parser>::parse_from(["vigil"]).serve;
            args.jwt.jwt_secret = Some("0123456789abcdef0123456789abcdef".to_owned());
            args.ws_deprecated_since = since.to_owned();
            args.ws_sunset = sunset.to_owned();
            Config::from_args(&args, None).map_err(|e| e.to_string())
        };
        assert!(
            serve("2027-06-30", "2027-06-30")
                .is_ok_and(|c| c.ws_deprecated_since.to_string() == "2027-06-30")
        );
        assert_eq!(
            serve("soon", "2027-06-30").err().as_deref(),
            Some("VIGIL_WS_DEPRECATED_SINCE: expected a date YYYY-MM-DD")
        );
        assert!(
            serve("2027-07-01", "2027-06-30")
                .err()
                .is_some_and(|e| e.starts_with(
                    "VIGIL_WS_DEPRECATED_SINCE: must not be after VIGIL_WS_SUNSET (2027-06-30)"
                )),
        );
    }

    /// A blank issuer or audience is "not set", as README says of empty settings: it had
    /// become a required claim of " " that no token carries, so every token got 401.
    #[test]
    fn a_blank_issuer_or_audience_is_not_set_and_others_lose_their_surrounding_spaces() {
        let mut args = <crate::cli::Cli as clap::Parser>::parse_from(["vigil"]).serve;
        args.jwt.jwt_secret = Some("0123456789abcdef0123456789abcdef".to_owned());
        args.jwt.jwt_issuer = Some("  ".to_owned());
        args.jwt.jwt_audience = Some(" vigil ".to_owned());
        args.jwt.jwt_public_key_file = Some(" ".to_owned());
        let jwt = jwt_config(&args.jwt, None).expect("valid");
        assert_eq!((jwt.issuer, jwt.audience), (None, Some("vigil".to_owned())));
    }

    /// A Redis URL Redis cannot use is refused with the other settings, before the
    /// database is created and migrated.
    #[test]
    fn a_redis_url_redis_cannot_use_is_refused_naming_the_variable() {
        for (url, says) in [
            ("redis://", "Missing hostname"),
            ("redis://h:99999/", "did not parse"),
            ("rediss://h/", "TLS"),
            ("http://h/", "expected a redis:// URL"),
        ] {
            let mut args = <crate::cli::Cli as clap::Parser>::parse_from(["vigil"]).serve;
            args.jwt.jwt_secret = Some("0123456789abcdef0123456789abcdef".to_owned());
            args.redis_url = Some(url.to_owned());
            let error = Config::from_args(&args, None).err().map(|e| e.to_string());
            assert!(
                error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("VIGIL_REDIS_URL: ") && e.contains(says)),
                "{url}: {error:?}"
            );
        }
    }

    #[test]
    fn bad_numbers_name_their_variable() {
        let e = seconds("0", "VIGIL_HEARTBEAT_SECS")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("VIGIL_HEARTBEAT_SECS: expected a positive integer")
        );
    }
}
