//! Everything a request handler needs, in one value registered with `app_data` — no
//! process-global state, so several servers can run in one process (tests do).

use std::sync::Arc;

use actix::Addr;

use crate::auth::Verifier;
use crate::config::Config;
use crate::db::{DbPool, Writer};
use crate::hub::Broker;
use crate::hub::manager::AlertConnectionManager;
use crate::metrics::Metrics;
use crate::rate_limit::WriteLimiter;

/// Shared application state.
pub struct AppState {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// Database pool.
    pub pool: DbPool,
    /// Write transactions (group commit on SQLite).
    pub writer: Writer,
    /// Token verifier (pinned algorithm).
    pub verifier: Verifier,
    /// This instance's fan-out actor.
    pub manager: Addr<AlertConnectionManager>,
    /// Where committed events are published.
    pub broker: Arc<dyn Broker>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Per-subject write rate.
    pub write_limiter: WriteLimiter,
}
