//! Validated configuration. Raw strings from the CLI/environment become typed values
//! here, once; a bad value is a [`ConfigError`] naming the variable, never a panic.

mod database;
mod jwt;
mod redis;
#[cfg(test)]
mod tests;
mod values;

pub use database::{DEFAULT_WAL_LIMIT_BYTES, DatabaseConfig, SqliteSync, database_config};
pub use jwt::{JwtConfig, JwtKey, jwt_config, set_value};
pub use values::parse_ttl;

use std::fmt;
use std::num::NonZeroUsize;
use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::cli::ServeArgs;
use redis::redis_config;
use values::{MAX_COUNT, MAX_QUEUE, at_most, non_zero, non_zero_in, seconds};

/// What a TLS setting gets from a build without the `tls` feature, where it would
/// otherwise fail later with the TLS library's words, or not at all.
pub(crate) const NO_TLS: &str = "needs TLS, which this build leaves out: build Vigil with \
     `cargo build --release --features tls` (needs libssl-dev), see docs/deployment.md";

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

/// Of two settings that disagree, whether only the second was changed from its default
/// (each given as its raw value and its default): the message then names the second.
fn only_the_second_set(first: (&str, &str), second: (&str, &str)) -> bool {
    first.0.trim() == first.1 && second.0.trim() != second.1
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
    /// The certificate authority (PEM) a `rediss://` server is checked against, besides
    /// the system's trust store: a private Redis rarely has a public certificate.
    pub redis_ca_pem: Option<Vec<u8>>,
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
    /// How long a connection's sent data may go unacknowledged, or its receive window
    /// stay shut, before the kernel drops it (`TCP_USER_TIMEOUT`): a screen that stopped
    /// reading (or vanished) in the middle of a replay is not polled for its close, and
    /// held its stream slot until its queue filled with heartbeats, most of an hour.
    pub stalled_connection_timeout: Duration,
    /// How long the event log keeps an event (`None`: for ever). The log holds a full
    /// copy of the alert per event and is only the resume history: kept for ever it
    /// fills the disk, and a full disk refuses alerts.
    pub event_retention: Option<Duration>,
    /// How often the pruner looks for events past `event_retention`.
    pub prune_every: Duration,
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
            redis_ca_pem: None,
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
            stalled_connection_timeout: Duration::from_secs(60),
            event_retention: Some(Duration::from_secs(DEFAULT_RETENTION_DAYS * 86_400)),
            prune_every: Duration::from_secs(60),
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
        (config.redis_url, config.redis_ca_pem) = redis_config(args)?;
        config.ws_mode = parse_ws_mode(&args.ws_mode)?;
        config.ws_sunset = chrono::NaiveDate::parse_from_str(args.ws_sunset.trim(), "%Y-%m-%d")
            .map_err(|_| ConfigError::new("VIGIL_WS_SUNSET", "expected a date YYYY-MM-DD"))?;
        config.ws_deprecated_since =
            chrono::NaiveDate::parse_from_str(args.ws_deprecated_since.trim(), "%Y-%m-%d")
                .map_err(|_| {
                    ConfigError::new("VIGIL_WS_DEPRECATED_SINCE", "expected a date YYYY-MM-DD")
                })?;
        if config.ws_deprecated_since > config.ws_sunset {
            // The one of the pair that was set is at fault: a sunset set before the
            // default deprecation date blamed the date nobody had touched.
            let (variable, message) = if only_the_second_set(
                (&args.ws_deprecated_since, crate::cli::WS_DEPRECATED_SINCE),
                (&args.ws_sunset, crate::cli::WS_SUNSET),
            ) {
                (
                    "VIGIL_WS_SUNSET",
                    format!(
                        "must not be before VIGIL_WS_DEPRECATED_SINCE ({}, its default): an \
                         interface is deprecated before it goes; set both",
                        config.ws_deprecated_since
                    ),
                )
            } else {
                (
                    "VIGIL_WS_DEPRECATED_SINCE",
                    format!(
                        "must not be after VIGIL_WS_SUNSET ({}): an interface is deprecated \
                         before it goes",
                        config.ws_sunset
                    ),
                )
            };
            return Err(ConfigError::new(variable, message));
        }
        config.ws_ping = Duration::from_secs(seconds(&args.ws_ping_secs, "VIGIL_WS_PING_SECS")?);
        config.ws_timeout =
            Duration::from_secs(seconds(&args.ws_timeout_secs, "VIGIL_WS_TIMEOUT_SECS")?);
        if config.ws_timeout <= config.ws_ping {
            let (variable, message) = if only_the_second_set(
                (&args.ws_timeout_secs, crate::cli::WS_TIMEOUT_SECS),
                (&args.ws_ping_secs, crate::cli::WS_PING_SECS),
            ) {
                (
                    "VIGIL_WS_PING_SECS",
                    format!(
                        "must be shorter than VIGIL_WS_TIMEOUT_SECS ({} s, its default), or a \
                         quiet, healthy session is closed before its first ping; raise both",
                        config.ws_timeout.as_secs()
                    ),
                )
            } else {
                (
                    "VIGIL_WS_TIMEOUT_SECS",
                    format!(
                        "must be longer than VIGIL_WS_PING_SECS ({} s), or a quiet, healthy \
                         session is closed before its first ping",
                        config.ws_ping.as_secs()
                    ),
                )
            };
            return Err(ConfigError::new(variable, message));
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
        config.event_retention = retention(&args.event_retention_days)?;
        Ok(config)
    }
}

/// `VIGIL_EVENT_RETENTION_DAYS`'s default: a week covers any screen's weekend away.
const DEFAULT_RETENTION_DAYS: u64 = 7;

/// `VIGIL_EVENT_RETENTION_DAYS`: whole days, `0` for ever.
fn retention(raw: &str) -> Result<Option<Duration>, ConfigError> {
    const VARIABLE: &str = "VIGIL_EVENT_RETENTION_DAYS";
    const MAX_DAYS: u64 = 36_500;
    let too_long = || {
        ConfigError::new(
            VARIABLE,
            format!("at most {MAX_DAYS} days (a hundred years); 0 keeps events for ever"),
        )
    };
    match raw.trim().parse::<u64>() {
        Ok(0) => Ok(None),
        Ok(days) if days <= MAX_DAYS => Ok(Some(Duration::from_secs(days * 86_400))),
        Ok(_) => Err(too_long()),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => Err(too_long()),
        Err(_) => Err(ConfigError::new(
            VARIABLE,
            "expected a whole number of days (0 keeps events for ever)",
        )),
    }
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

/// `scheme://host[:port]` as browsers send it in `Origin` (lower case, no default port),
/// or `None` for anything a browser's `Origin` can never equal (a path, a query,
/// credentials, another scheme), so a mistyped entry stops the server instead of
/// matching nothing.
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
    if !host_ok {
        return None;
    }
    if port.is_empty() {
        return Some(lower);
    }
    let number = port
        .strip_prefix(':')?
        .parse::<u16>()
        .ok()
        .filter(|n| *n > 0)?;
    // A browser's `Origin` leaves the scheme's default port out (and writes the number
    // plainly): `https://b.example:443` listed as such matched no request at all.
    let default = if lower.starts_with("https://") {
        443
    } else {
        80
    };
    let without_port = &lower[..lower.len() - port.len()];
    Some(if number == default {
        without_port.to_owned()
    } else {
        format!("{without_port}:{number}")
    })
}
