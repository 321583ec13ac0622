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

/// One per server, handed to handlers through `app_data`; transports and services take
/// what they need from it instead of from globals.
pub struct AppState {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// For reads (scope, lists, replays, readiness) via `db::run`; event writes go
    /// through `writer` instead so they share commits.
    pub pool: DbPool,
    /// Write transactions (group commit on SQLite).
    pub writer: Writer,
    /// Token verifier (pinned algorithm).
    pub verifier: Verifier,
    /// This instance's fan-out actor.
    pub manager: Addr<AlertConnectionManager>,
    /// Where committed events are published.
    pub broker: Arc<dyn Broker>,
    /// The same registry the manager counts into: `/metrics` and the stats endpoint
    /// report one set of numbers.
    pub metrics: Arc<Metrics>,
    /// Per-subject write rate.
    pub write_limiter: WriteLimiter,
    /// Stream ids, handed out before a stream registers (see [`ConnIds`]).
    pub conn_ids: ConnIds,
    /// The highest event id seen committed, which every event write checks the log
    /// against (see [`crate::db::events::next_seq`]).
    pub issued: crate::db::events::IssuedIds,
    /// The highest care-team version this instance counts, shared by the manager (what
    /// its streams follow) and care-team writes, which check the version they are handed
    /// against it (see [`crate::db::events::bump_care_team_version`]).
    pub care_teams_seen: crate::db::events::CareTeamVersionsSeen,
}

/// This instance's stream ids (from 1). The transport takes one *before* it asks the
/// manager to register the stream, so the guard that unregisters it exists while the
/// request waits for the answer: a client that went away in that moment left a
/// registered stream behind (its slot under the per-user limit and its gauge held until
/// the next heartbeat found the queue closed).
#[derive(Debug, Default)]
pub struct ConnIds(std::sync::atomic::AtomicU64);

impl ConnIds {
    /// From 1 and never reused in this process, so a late `Disconnect` cannot
    /// unregister some other stream.
    pub fn next(&self) -> crate::hub::subscriptions::ConnId {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }
}
