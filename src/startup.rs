//! The one startup seam: builds the pool, migrates, starts the manager and binds the
//! listener (port 0 works, and [`Application::port`] tells which port was chosen).

use std::io;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, AsyncContext};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{DefaultHeaders, ErrorHandlers, Logger, from_fn};
use actix_web::{App, HttpServer, web};

use crate::auth::Verifier;
use crate::config::Config;
use crate::db::{self, events, migrate, pool};
use crate::error::handlers;
use crate::hub::manager::{AlertConnectionManager, ManagerSettings};
use crate::hub::messages::Shutdown;
use crate::hub::redis::RedisBroker;
use crate::hub::{Broker, InProcessBroker};
use crate::metrics::Metrics;
use crate::rate_limit::WriteLimiter;
use crate::routes::{self, MAX_BODY_BYTES};
use crate::state::AppState;

/// Blocking threads per actix worker (actix's default is 512 / workers). Twice a
/// typical pool: enough to keep every pooled connection busy, few enough to stay small.
const BLOCKING_THREADS_PER_WORKER: usize = 16;
/// Pending-connection queue of the listening socket (capped by `net.core.somaxconn`).
const LISTEN_BACKLOG: u32 = 4096;
/// How long an idle keep-alive connection is kept. A second more than the `Keep-Alive`
/// header promises: actix-http's timer runs on a clock updated in steps and closed idle
/// connections up to half a second before its nominal 5 s.
const KEEP_ALIVE: Duration = Duration::from_secs(KEEP_ALIVE_PROMISED_SECS + 1);
/// The idle time every response promises (`Keep-Alive: timeout=5`). Clients that read it
/// (Node's agent, undici) stop reusing a connection a second before, instead of sending a
/// request on one the server is closing at that moment — a POST lost to "socket hang up".
const KEEP_ALIVE_PROMISED_SECS: u64 = 5;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The database opened but could not be prepared (read-only, full, not Vigil's).
    #[error("DATABASE_URL: cannot use the database: {0}")]
    Database(String),
    /// The database named by `DATABASE_URL` cannot be opened at all.
    #[error("DATABASE_URL: cannot open the database: {0}")]
    Connect(String),
    /// Migrations failed.
    #[error("DATABASE_URL: cannot migrate the database: {0}")]
    Migrations(String),
    /// SQLite's `quick_check` found the file damaged.
    #[error(
        "DATABASE_URL: the database is damaged (SQLite's quick_check: {0}); nothing was \
         changed. Restore it from a backup; after restoring, remove the -wal and -shm files \
         beside the database (a crashed server's log is replayed onto the backup) and copy \
         the backup again, or restore with sqlite3's .restore (docs/deployment.md)"
    )]
    Damaged(String),
    /// The JWT key did not load.
    #[error("JWT key: {0}")]
    Key(String),
    /// Redis URL unusable.
    #[error("VIGIL_REDIS_URL: {0}")]
    Redis(String),
    /// Metrics registry.
    #[error("metrics: {0}")]
    Metrics(String),
    /// Binding failed; the address is named (a port in use says only "Address already in
    /// use").
    #[error("VIGIL_BIND: {address}: {source}")]
    Bind {
        /// What was to be bound.
        address: String,
        /// Why it could not be.
        source: io::Error,
    },
}

/// A built, bound, not yet awaited server.
pub struct Application {
    port: u16,
    server: Server,
    stopper: Stopper,
    /// For the write-ahead log's last checkpoint once the server has stopped.
    writer: db::Writer,
}

/// Stops an application gracefully: streams get their final frame, in-flight requests
/// finish, then the server exits.
#[derive(Clone)]
pub struct Stopper {
    manager: Addr<AlertConnectionManager>,
    server: ServerHandle,
}

impl Stopper {
    /// Ends every stream, then stops the server (gracefully, or at once).
    pub async fn stop(&self, graceful: bool) {
        if self.manager.send(Shutdown).await.is_err() {
            log::warn!("connection manager already stopped");
        }
        self.server.stop(graceful).await;
    }
}

/// Opens the pool and applies migrations (also used by `vigil migrate`).
pub async fn open_database(
    config: &crate::config::DatabaseConfig,
) -> Result<(db::DbPool, Vec<String>), StartupError> {
    let config = config.clone();
    web::block(move || {
        if !pool::is_postgres(&config.url) {
            migrate::refuse_foreign_sqlite_file(pool::sqlite_path(&config.url))
                .map_err(|e| StartupError::Migrations(e.to_string()))?;
            // A damaged file (a live copy taken without its log, a backup under a crashed
            // server's log) opened, answered readiness and took its test write, while
            // every alert's write failed and the list answered 500 (an outside audit).
            // Said at the start, before migrations write to it: one read of the file.
            crate::db::integrity::check_before_use(&config.url).map_err(StartupError::Damaged)?;
        }
        // One connection first, so a database that cannot be opened (a missing directory,
        // a server that is down) is reported at once with its cause and the variable to
        // fix, not after the pool's 5 s wait as "timed out waiting for connection".
        diesel::r2d2::ManageConnection::connect(&pool::AnyManager::new(&config)).map_err(|e| {
            // SQLite's "unable to open database file" names no file: the path is added
            // (a PostgreSQL URL is not repeated, it may hold a password).
            StartupError::Connect(if pool::is_postgres(&config.url) {
                e.to_string()
            } else {
                let path = pool::sqlite_path(&config.url);
                let error = e.to_string();
                let hint = sqlite_open_hint(path, &error);
                format!("{error} ({path}{hint})")
            })
        })?;
        let pool = pool::build_pool(&config).map_err(|e| StartupError::Database(e.to_string()))?;
        let mut conn = pool
            .get()
            .map_err(|e| StartupError::Database(e.to_string()))?;
        let applied =
            migrate::run_pending(&mut conn).map_err(|e| StartupError::Migrations(e.to_string()))?;
        drop(conn);
        Ok((pool, applied))
    })
    .await
    .map_err(|e| StartupError::Database(e.to_string()))?
}

impl Application {
    /// Builds everything; must run inside an actix system (`#[actix_web::main]` or
    /// `#[actix_web::test]`), because the manager is an actor.
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        // The port first: one in use (or an address not on this machine) stops the start
        // before the database is created or migrated, leaving nothing behind.
        let bind = config.bind.clone();
        let listener = listen(&bind).map_err(|source| StartupError::Bind {
            address: bind.clone(),
            source,
        })?;
        let (pool, applied) = open_database(&config.database).await?;
        for version in applied {
            log::info!("migration applied version={version}");
        }
        let head_pool = pool.clone();
        let database_url = config.database.url.clone();
        let (head, care_team_version, deployment_id, sqlite_wal) = web::block(move || {
            let mut c = head_pool.get().map_err(|e| e.to_string())?;
            let head = events::head(&mut c).map_err(|e| e.to_string())?;
            let care_team_version = events::care_team_version(&mut c).map_err(|e| e.to_string())?;
            let deployment = db::deployment::get_or_create(&mut c).map_err(|e| e.to_string())?;
            let file = db::pool::sqlite_file(&mut c).map_err(|e| e.to_string())?;
            if let Some(file) = &file {
                log::info!("database: SQLite file {}", file.display());
            }
            // Said, not required: a server without `pg_stat_ssl` still serves alerts.
            match db::pool::postgres_link(&mut c, &database_url) {
                Ok(Some(link)) => link.report(),
                Ok(None) => {}
                Err(e) => {
                    log::warn!("PostgreSQL: cannot tell whether it is reached over TLS ({e})")
                }
            }
            let wal = file.map(|f| std::path::PathBuf::from(format!("{}-wal", f.display())));
            Ok::<_, String>((head, care_team_version, deployment, wal))
        })
        .await
        .map_err(|e| StartupError::Database(e.to_string()))?
        .map_err(StartupError::Database)?;
        let mut metrics = Metrics::new().map_err(|e| StartupError::Metrics(e.to_string()))?;
        if let Some(wal) = sqlite_wal {
            metrics
                .watch_sqlite_wal(wal)
                .map_err(|e| StartupError::Metrics(e.to_string()))?;
        }
        if config.redis_url.is_some() {
            metrics
                .watch_broker()
                .map_err(|e| StartupError::Metrics(e.to_string()))?;
        }
        let metrics = Arc::new(metrics);
        let mut settings = ManagerSettings {
            heartbeat: config.heartbeat,
            tail_poll: config.tail_poll,
            max_streams_per_user: config.max_streams_per_user,
            max_connections: config.max_connections,
            ws_tick: crate::transport::ws::tick_period(config.ws_timeout),
            broker_link: None,
        };
        // The manager starts last, once everything it serves exists: an actor dropped
        // before its first poll (a later step failed, e.g. the port is taken) runs its
        // `started` as the runtime goes away, and panics there. Messages sent to it
        // meanwhile wait in its mailbox.
        let manager_context: actix::Context<AlertConnectionManager> = actix::Context::new();
        let manager = manager_context.address();
        let manager_parts = (pool.clone(), Arc::clone(&metrics));
        let (broker, broker_link): (Arc<dyn Broker>, _) = match &config.redis_url {
            Some(url) => {
                let redis = RedisBroker::start(
                    url,
                    config.redis_ca_pem.as_deref(),
                    &deployment_id,
                    manager.clone(),
                    &metrics.broker_failures,
                )
                .map_err(|e| StartupError::Redis(e.to_string()))?;
                let link = redis.link();
                (Arc::new(redis), Some(link))
            }
            None => (Arc::new(InProcessBroker::new(manager.clone())), None),
        };
        settings.broker_link = broker_link;
        let verifier = Verifier::new(&config.jwt).map_err(|e| StartupError::Key(e.to_string()))?;
        let write_limiter = WriteLimiter::new(
            config.rate_limit,
            metrics.limit_rejections.with_label_values(&["write_rate"]),
        );
        let idle_keys = write_limiter.clone();
        actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                idle_keys.shrink();
            }
        });
        let request_timeout = config.request_timeout;
        let stalled_connection_timeout = config.stalled_connection_timeout;
        let cors_origins = config.cors_origins.clone();
        let writer = db::Writer::new(
            pool.clone(),
            &config.database,
            metrics.write_failures.clone(),
        )
        .map_err(|e| StartupError::Database(format!("cannot start its writer thread: {e}")))?;
        match config.event_retention {
            Some(keep) => {
                log::info!(
                    "event log: events kept {} for resumes (VIGIL_EVENT_RETENTION_DAYS), then pruned; alerts are kept",
                    db::retention::describe(keep)
                );
                db::retention::spawn_pruner(
                    writer.clone(),
                    keep,
                    config.prune_every,
                    metrics.events_pruned.clone(),
                );
            }
            None => log::info!("event log: events kept for ever (VIGIL_EVENT_RETENTION_DAYS=0)"),
        }
        let issued = events::IssuedIds::starting_at(head);
        let care_teams_seen = events::CareTeamVersionsSeen::starting_at(care_team_version);
        let last_writer = writer.clone();
        let state = web::Data::new(AppState {
            config: Arc::new(config),
            pool,
            writer,
            verifier,
            manager: manager.clone(),
            broker,
            metrics,
            write_limiter,
            conn_ids: crate::state::ConnIds::default(),
            issued: issued.clone(),
            care_teams_seen: care_teams_seen.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
                .app_data(
                    web::JsonConfig::default()
                        .limit(MAX_BODY_BYTES)
                        .error_handler(handlers::json_error),
                )
                .app_data(web::QueryConfig::default().error_handler(handlers::query_error))
                .app_data(web::PathConfig::default().error_handler(handlers::path_error))
                .wrap(ErrorHandlers::new().default_handler(handlers::plain_to_problem))
                .wrap(cors(&cors_origins))
                // actix-cors answers a refused preflight itself, in plain text: make it a
                // problem too (this outer layer sees nothing else that is not one already).
                .wrap(ErrorHandlers::new().default_handler(handlers::cors_refusal_to_problem))
                // The id comes from the request's extensions: the request-id middleware
                // wraps this one, so its response header does not exist yet when the
                // logger renders the line. Path only: a query may hold `?token=`, and a
                // token put in the path by mistake is replaced too.
                .wrap(
                    Logger::new("%a %{method}xi %{path}xi %s %b %Dms request_id=%{request_id}xi")
                        .custom_request_replace("method", |req| req.method().to_string())
                        .custom_request_replace("path", |req| {
                            crate::log_value::path_without_credentials(req.path()).into_owned()
                        })
                        .custom_request_replace("request_id", |req| {
                            crate::request_id::of(req.request()).unwrap_or_else(|| "-".to_owned())
                        }),
                )
                .wrap(from_fn(crate::request_id::middleware))
                // Never framed, never sniffed, whatever answers: the console pages set
                // their own policy (kept, as these only fill what is missing), and the
                // Swagger UI under /api/docs/, whose "Try it out" sends the session cookie,
                // and the migration guide had none (an outside audit).
                .wrap(
                    DefaultHeaders::new()
                        .add(("Keep-Alive", format!("timeout={KEEP_ALIVE_PROMISED_SECS}")))
                        .add(("X-Frame-Options", "DENY"))
                        .add(("X-Content-Type-Options", "nosniff"))
                        .add(("Content-Security-Policy", "frame-ancestors 'none'")),
                )
                .configure(routes::configure)
        })
        // Streams write small frames one after another: Nagle's algorithm would hold
        // each behind the client's delayed ACK (up to 40 ms).
        .tcp_nodelay(true)
        .keep_alive(KEEP_ALIVE)
        // A screen that closes its event stream sends FIN and nothing more: by default
        // actix-http treats that as a half-close and keeps the stream (its per-user slot and
        // the gauges) until a write fails, i.e. the next heartbeat, up to 30 s later. Clients
        // of this API do not half-close while awaiting an answer.
        .h1_allow_half_closed(false)
        // Blocking work is database work, and the pool bounds it anyway; more threads
        // would only cost stacks and malloc arenas.
        .worker_max_blocking_threads(BLOCKING_THREADS_PER_WORKER)
        .on_connect(move |io, _| drop_when_stalled(io, stalled_connection_timeout))
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            address: bind,
            source,
        })?;
        let (manager_pool, manager_metrics) = manager_parts;
        manager_context.run(AlertConnectionManager::new(
            manager_pool,
            manager_metrics,
            settings,
            issued,
            care_teams_seen,
        ));
        let port = server.addrs().first().map_or(0, |addr| addr.port());
        let server = server
            .disable_signals()
            .client_request_timeout(request_timeout)
            .client_disconnect_timeout(Duration::from_secs(2))
            .shutdown_timeout(10)
            .run();
        let stopper = Stopper {
            manager,
            server: server.handle(),
        };
        Ok(Self {
            port,
            server,
            stopper,
            writer: last_writer,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops this instance (tests, signals).
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Serves until stopped; SIGINT/SIGTERM/SIGHUP stop gracefully, and a second one
    /// at once (an operator pressing Ctrl-C again does not want to wait out a stalled
    /// upload for the 10 s grace).
    /// A graceful stop ends with SQLite's write-ahead log copied into the
    /// database file, so the file alone can be copied as a backup.
    pub async fn run_until_stopped(self) -> io::Result<()> {
        let stopper = self.stopper.clone();
        actix_web::rt::spawn(async move {
            wait_for_signal().await;
            log::info!(
                "shutdown signal received; closing streams and finishing requests (a second signal stops at once)"
            );
            actix_web::rt::spawn(async move { stopper.stop(true).await });
            wait_for_signal().await;
            // Nothing is lost that was answered: a write is committed before its 201,
            // and SQLite and PostgreSQL roll back a transaction cut off by the exit.
            log::warn!("second shutdown signal: exiting without waiting for requests in flight");
            std::process::exit(FORCED_EXIT);
        });
        self.server.await?;
        self.writer.fold_log_at_stop().await;
        Ok(())
    }

    /// Serves until stopped, without installing signal handlers (tests).
    pub async fn run_without_signals(self) -> io::Result<()> {
        self.server.await
    }
}

/// Why SQLite may not have opened `path`, which its own message does not say: a missing
/// directory and one the server may not write in read alike.
fn sqlite_open_hint(path: &str, error: &str) -> &'static str {
    // SQLite's own words are enough there; a hint on permissions would mislead.
    if error.contains("file is not a database") {
        return ": a file that is not an SQLite database; DATABASE_URL must name Vigil's \
                database, or a path where none exists yet";
    }
    let path = std::path::Path::new(path);
    let directory = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => std::path::Path::new("."),
    };
    match std::fs::metadata(directory) {
        Err(_) => ": its directory does not exist",
        Ok(meta) if !meta.is_dir() => ": its directory is not a directory",
        Ok(_) if path.is_dir() => ": it is a directory",
        Ok(_) => ": check that this user may create and write files in its directory",
    }
}

/// The listening socket for `bind`. The standard library listens with a backlog of 128:
/// a crowd of screens reconnecting at once (after a restart) would see SYNs dropped and
/// retried only after a second, hence `LISTEN_BACKLOG`.
fn listen(bind: &str) -> io::Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let addr = bind.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{bind} names no address"),
        )
    })?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)?.into_std()
}

/// CORS for the listed origins only: credentials allowed for them, nothing for others
/// (same-origin pages need no CORS at all).
fn cors(origins: &[String]) -> actix_cors::Cors {
    use actix_web::http::header;
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("last-event-id"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .expose_headers([
            header::LOCATION,
            header::HeaderName::from_static("x-request-id"),
            header::HeaderName::from_static("idempotent-replayed"),
        ])
        .supports_credentials()
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}

/// The exit status after a second signal: 128 + SIGINT, as a shell reports an
/// interrupted program (a graceful stop exits 0).
const FORCED_EXIT: i32 = 130;

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // SIGHUP too (a closed terminal, `vigil serve &` included): it killed the process
        // at once, without closing a stream; now it stops like SIGTERM.
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(mut term), Ok(mut hangup)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = hangup.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Has the kernel drop a connection whose sent data stays unacknowledged, or whose
/// receive window stays shut, for `timeout` (`TCP_USER_TIMEOUT`). actix-http does not
/// read a connection while a write to it is stalled, so a client that stopped reading
/// in the middle of a long answer (a resume's replay) was not seen to close or leave,
/// and kept its stream slot until its queue filled with heartbeats. A screen reading
/// slowly is not affected: each window it opens restarts the count.
fn drop_when_stalled(io: &dyn std::any::Any, timeout: Duration) {
    #[cfg(target_os = "linux")]
    if let Some(tcp) = io.downcast_ref::<actix_web::rt::net::TcpStream>()
        && let Err(e) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(timeout))
    {
        log::warn!("cannot set TCP_USER_TIMEOUT on a connection: {e}");
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (io, timeout);
}
