//! Command line: every `serve` flag doubles as a `VIGIL_*` environment variable, so
//! `vigil serve --help` is the configuration reference (DESIGN.md, "Configuration").

use clap::{Args, Parser, Subcommand};

/// `VIGIL_WS_SUNSET`'s default; configuration blames the setting of a pair that was
/// changed when the two disagree.
pub const WS_SUNSET: &str = "2027-06-30";
/// `VIGIL_WS_DEPRECATED_SINCE`'s default.
pub const WS_DEPRECATED_SINCE: &str = "2026-11-23";
/// `VIGIL_WS_PING_SECS`'s default.
pub const WS_PING_SECS: &str = "30";
/// `VIGIL_WS_TIMEOUT_SECS`'s default.
pub const WS_TIMEOUT_SECS: &str = "60";

/// `--version`: the package's, and whether this build can reach PostgreSQL and Redis over
/// TLS, which an operator must know before pointing it at servers on other hosts.
const VERSION: &str = if cfg!(feature = "tls") {
    concat!(env!("CARGO_PKG_VERSION"), " (TLS to PostgreSQL and Redis)")
} else {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (no TLS to PostgreSQL and Redis: build with --features tls)"
    )
};

/// Vigil: real-time clinical alert hub.
#[derive(Debug, Parser)]
#[command(
    name = "vigil",
    version = VERSION,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Log filter, e.g. `info` or `warn,vigil=debug`; replaces RUST_LOG when given.
    #[arg(
        long = "log",
        global = true,
        value_name = "FILTER",
        display_order = 1000
    )]
    pub log: Option<String>,
    /// `serve`'s flags, for `vigil` without a subcommand (`vigil --dev` = `vigil serve --dev`).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The binary's subcommands.
#[derive(Debug, Subcommand)]
#[expect(
    clippy::large_enum_variant,
    reason = "parsed once per process; boxing buys nothing"
)]
pub enum Command {
    /// Run the HTTP/SSE/WebSocket server (the default).
    Serve(ServeArgs),
    /// Apply pending database migrations and exit.
    Migrate(MigrateArgs),
    /// Mint a JWT for development and tests; prints it on stdout.
    Token(TokenArgs),
    /// Terminal client: list the unresolved alerts, stream new ones, optionally acknowledge.
    Watch(WatchArgs),
    /// Load generator: N subscribers, K alerts at R/s; reports loss, duplicates, latency.
    Bench(BenchArgs),
}

/// Where the database is; shared by `serve` and `migrate`.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// `sqlite://vigil.db` (default; created if missing) or `postgres://user@host/db`.
    // Its value may hold a password: `--help` must not print it.
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        default_value = "sqlite://vigil.db"
    )]
    pub database_url: String,
    /// `normal` (survives a process crash) or `full` (survives power loss; slower).
    #[arg(long, env = "VIGIL_SQLITE_SYNC", default_value = "normal")]
    pub sqlite_sync: String,
    /// Connections in the database pool.
    #[arg(long, env = "VIGIL_DB_POOL_SIZE", default_value = "8")]
    pub db_pool_size: String,
    /// MiB the SQLite write-ahead log may grow to under sustained writes before it is
    /// started over (and the file cut back to this size).
    #[arg(long, env = "VIGIL_SQLITE_WAL_LIMIT_MB", default_value = "64")]
    pub sqlite_wal_limit_mb: String,
}

/// `vigil migrate`: the schema, and the one repair a restored backup needs.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// The database.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// After restoring a backup, with every instance stopped: move the event log's head
    /// this many ids on, past every id issued since the backup (screens resume from
    /// those ids; reissued, they would skip the alerts that reuse them). Generous is
    /// fine (1 to 4,294,967,295; the log's ids are 64-bit). docs/deployment.md,
    /// "Restoring a backup".
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub skip_ids: Option<u32>,
}

/// How tokens are verified (and, for `token`, signed).
#[derive(Debug, Clone, Args)]
pub struct JwtArgs {
    /// Shared secret for HS256. Never printed or logged.
    #[arg(long, env = "VIGIL_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM public key file for RS256/ES256 verification.
    #[arg(long, env = "VIGIL_JWT_PUBLIC_KEY_FILE")]
    pub jwt_public_key_file: Option<String>,
    /// Pinned algorithm: HS256, RS256 or ES256 (HS256 when a secret is given).
    #[arg(long, env = "VIGIL_JWT_ALG")]
    pub jwt_alg: Option<String>,
    /// The `iss` claim: required by `serve` when set; written into tokens by `token`.
    #[arg(long, env = "VIGIL_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The `aud` claim: required by `serve` when set; written into tokens by `token`.
    #[arg(long, env = "VIGIL_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
}

/// Flags of `vigil serve`; all validated into a [`crate::config::Config`].
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "VIGIL_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub jwt: JwtArgs,
    /// Seconds between SSE heartbeats.
    #[arg(long, env = "VIGIL_HEARTBEAT_SECS", default_value = "30")]
    pub heartbeat_secs: String,
    /// Events buffered per client before a slow client is cut off (it then resumes).
    #[arg(long, env = "VIGIL_CLIENT_QUEUE", default_value = "100")]
    pub client_queue: String,
    /// Redis URL for several instances (`redis://`, or `rediss://` in a build with
    /// `--features tls`); unset means one instance, in-process broker.
    #[arg(long, env = "VIGIL_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// PEM file of the certificate authority a `rediss://` server's certificate is checked
    /// against, when the system's trust store does not hold it (builds with `--features tls`).
    #[arg(long, env = "VIGIL_REDIS_CA_FILE")]
    pub redis_ca_file: Option<String>,
    /// Legacy WebSocket phase: `on`, `deprecated` or `off`.
    #[arg(long, env = "VIGIL_WS_MODE", default_value = "on")]
    pub ws_mode: String,
    /// Sunset date announced while `VIGIL_WS_MODE=deprecated` (YYYY-MM-DD).
    #[arg(long, env = "VIGIL_WS_SUNSET", default_value = WS_SUNSET)]
    pub ws_sunset: String,
    /// Date the legacy WebSocket was (or will be) deprecated, sent as the `Deprecation`
    /// header while `VIGIL_WS_MODE=deprecated` (YYYY-MM-DD, not after the sunset).
    #[arg(long, env = "VIGIL_WS_DEPRECATED_SINCE", default_value = WS_DEPRECATED_SINCE)]
    pub ws_deprecated_since: String,
    /// KiB of missed events a WebSocket resume (`last_event_id`) replays; a longer gap gets
    /// a `reset` frame and the dashboard reloads over HTTP.
    #[arg(long, env = "VIGIL_WS_REPLAY_MAX_KIB", default_value = "1024")]
    pub ws_replay_max_kib: String,
    /// Seconds between WebSocket pings.
    #[arg(long, env = "VIGIL_WS_PING_SECS", default_value = WS_PING_SECS)]
    pub ws_ping_secs: String,
    /// Seconds of silence after which a WebSocket session is closed.
    #[arg(long, env = "VIGIL_WS_TIMEOUT_SECS", default_value = WS_TIMEOUT_SECS)]
    pub ws_timeout_secs: String,
    /// Comma-separated origins allowed for CORS and cookie-authenticated writes.
    #[arg(long, env = "VIGIL_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// Open streams (SSE + WebSocket) one user may hold.
    #[arg(long, env = "VIGIL_MAX_STREAMS_PER_USER", default_value = "10")]
    pub max_streams_per_user: String,
    /// Open streams one instance accepts; unset means unlimited.
    #[arg(long, env = "VIGIL_MAX_CONNECTIONS")]
    pub max_connections: Option<String>,
    /// Writes (raise, acknowledge) per second per token subject; bursts of twice that.
    #[arg(long, env = "VIGIL_RATE_LIMIT", default_value = "200")]
    pub rate_limit: String,
    /// Seconds a client has to send a complete request head, and then its body
    /// (slowloris defence).
    #[arg(long, env = "VIGIL_REQUEST_TIMEOUT_SECS", default_value = "10")]
    pub request_timeout_secs: String,
    /// Days the event log keeps an event for resumes (0: for ever); alerts are kept.
    /// A screen away longer gets `reset` and reloads.
    #[arg(long, env = "VIGIL_EVENT_RETENTION_DAYS", default_value = "7")]
    pub event_retention_days: String,
    /// Development mode: invent a secret if none is set, print an admin token and the console URL.
    #[arg(long)]
    pub dev: bool,
}

/// Flags of `vigil token`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// The user id (`sub` claim).
    #[arg(long)]
    pub sub: String,
    /// One of admin, doctor, nurse, caregiver, dispatcher, patient, service.
    #[arg(long)]
    pub role: String,
    /// The `patient_id` claim (required for role `patient`).
    #[arg(long)]
    pub patient: Option<String>,
    /// Lifetime, e.g. `30m`, `8h`, `2d`, or plain seconds.
    #[arg(long, default_value = "8h")]
    pub ttl: String,
    /// PEM private key for RS256/ES256 signing (HS256 uses the secret).
    #[arg(long, env = "VIGIL_JWT_PRIVATE_KEY_FILE")]
    pub private_key_file: Option<String>,
    #[command(flatten)]
    pub jwt: JwtArgs,
}

/// Flags of `vigil watch`.
#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Base URL of a running Vigil.
    #[arg(long, env = "VIGIL_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Bearer token to authenticate with.
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Patients to watch (repeatable); all in scope when omitted.
    #[arg(long = "patient")]
    pub patients: Vec<String>,
    /// Acknowledge from stdin: a line is `<short id> [acknowledged|escalated|resolved] [note]`.
    #[arg(long)]
    pub ack: bool,
    /// Disable ANSI colours (also off when stdout is not a terminal or NO_COLOR is set).
    #[arg(long)]
    pub no_color: bool,
}

/// Flags of `vigil bench`. Every count that cannot be zero is refused at zero as a usage
/// error, before a single connection is opened.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Base URL of a running Vigil.
    #[arg(long, env = "VIGIL_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The server's HS256 secret; the bench mints its own tokens with it.
    #[arg(long, env = "VIGIL_JWT_SECRET", hide_env_values = true, value_parser = non_blank)]
    pub secret: String,
    /// The `iss` claim of the minted tokens, for a server that requires one.
    #[arg(long, env = "VIGIL_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,
    /// The `aud` claim of the minted tokens, for a server that requires one.
    #[arg(long, env = "VIGIL_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,
    /// Number of subscribers (0: ingest only); a multiple of --patients.
    #[arg(long, default_value = "200")]
    pub subscribers: usize,
    /// Transport of the subscribers; `mix` alternates SSE and WebSocket on every patient
    /// (half each; SSE has the odd one when --subscribers / --patients is odd).
    #[arg(long, value_enum, default_value = "sse")]
    pub transport: BenchTransport,
    /// Number of patients; each has --subscribers / --patients subscribers.
    #[arg(long, default_value = "1", value_parser = at_least_one)]
    pub patients: usize,
    /// Alerts to raise (spread round-robin over the patients).
    #[arg(long, default_value = "50")]
    pub alerts: usize,
    /// Alerts per second (at least 0.001).
    #[arg(long, default_value = "20", allow_negative_numbers = true, value_parser = alert_rate)]
    pub rate: f64,
    /// Concurrent producers.
    #[arg(long, default_value = "4", value_parser = at_least_one)]
    pub producers: usize,
    /// Subscribers connecting at once.
    #[arg(long, default_value = "256", value_parser = at_least_one)]
    pub connect_concurrency: usize,
    /// Seconds a subscriber may take to see `connected`, and an HTTP call to be answered,
    /// before it counts as failed.
    #[arg(long, default_value = "30", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub timeout_secs: u64,
    /// Seconds to wait for stragglers after the last alert (the wait ends as soon as
    /// every delivery is in).
    #[arg(long, default_value = "10", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub drain_secs: u64,
    /// Hold the connections this many seconds after connecting, raising nothing (B5).
    #[arg(long, default_value = "0", value_parser = clap::value_parser!(u64).range(..=86_400))]
    pub hold_secs: u64,
    /// Threads the bench itself runs on (default: all cores; 1 = one core; at most 1024).
    #[arg(long, value_parser = thread_count)]
    pub threads: Option<usize>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `vigil bench --transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchTransport {
    /// Server-Sent Events only.
    Sse,
    /// The legacy WebSocket only.
    Ws,
    /// Half each, alternating on every patient.
    Mix,
}

fn at_least_one(raw: &str) -> Result<usize, String> {
    match raw.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// A thread count the machine can start: each thread takes a stack, and a hundred
/// thousand of them aborted the bench instead of a usage error.
fn thread_count(raw: &str) -> Result<usize, String> {
    match at_least_one(raw)? {
        n if n > 1024 => Err("must be at most 1024".to_owned()),
        n => Ok(n),
    }
}

/// A rate the producers can pace: finite, and not so small that the interval between
/// two alerts overflows.
fn alert_rate(raw: &str) -> Result<f64, String> {
    match raw.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.001 => Ok(r),
        Ok(_) => Err("must be a number of alerts per second, at least 0.001".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

fn non_blank(raw: &str) -> Result<String, String> {
    if raw.trim().is_empty() {
        Err("is empty: give the server's HS256 secret".to_owned())
    } else {
        Ok(raw.to_owned())
    }
}
