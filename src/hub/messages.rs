//! The manager's protocol: one message per operation, each saying who sends it, what it
//! answers, and what ordering it guarantees.

use std::sync::Arc;
use std::time::Instant;

use actix::Message;
use bytes::Bytes;
use tokio::sync::mpsc;

use super::event::{CareTeamChange, StoredEvent};
use super::subscriptions::{ConnId, ScopeChange};
use crate::domain::Role;
use crate::scope::{Allowed, Requested};
use crate::transport::frames::EncodedEvent;

/// Which transport a client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Server-Sent Events.
    Sse,
    /// Legacy WebSocket.
    Ws,
}

impl Transport {
    /// The `transport` label of `vigil_connections` and the stream log lines; dashboards
    /// and log queries match on it, so it must not change.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Sse => "sse",
            Transport::Ws => "ws",
        }
    }
}

/// Why the manager ends a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The token's `exp` passed.
    AuthExpired,
    /// The server is shutting down.
    Shutdown,
}

/// What the manager pushes into a client's bounded queue. Every variant is one pointer
/// at most: the queue's first block of slots is allocated with each stream, so an item
/// the size of `Bytes` (32) instead of 8 cost every stream, even an idle one, 0.75 KiB
/// (B5 in docs/performance.md).
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An event, encoded once and shared.
    Event(Arc<EncodedEvent>),
    /// An SSE heartbeat frame, shared by the streams of a tick (WebSocket sessions
    /// ignore it).
    Heartbeat(Arc<Bytes>),
    /// A care-team change altered the stream's patients (`scope_changed`).
    Scope(Box<ScopeChange>),
    /// The shared WebSocket tick: the session pings if its ping is due and closes if the
    /// dashboard has been silent too long (one timer for all sessions, not two each).
    Tick,
    /// The last item: end the stream for this reason.
    Close(CloseReason),
}

/// A client's queue; the manager only ever uses `try_send` on it.
pub type ClientTx = mpsc::Sender<Outbound>;

/// Sent by a transport after authentication and scope checks. Answers the connection
/// id and the sequence number of the last event delivered before registration: every
/// later event in scope will arrive through the queue, in order, so the transport
/// replays `(Last-Event-ID, head]` from the database and the seam has no gap.
#[derive(Message)]
#[rtype(result = "Result<Connected, ConnectRefused>")]
pub struct Connect {
    /// The stream's id, taken by the transport before sending this (`state::ConnIds`).
    pub conn_id: ConnId,
    /// The token's `sub`: the per-user stream limit and care-team changes are keyed by it.
    pub user_id: String,
    /// Labels the connection gauge and stats, and says whether care-team changes rescope
    /// the stream (only care-team roles follow them).
    pub role: Role,
    /// What the client asked for.
    pub requested: Requested,
    /// What it may see now.
    pub allowed: Allowed,
    /// When the transport started reading `allowed`: care-team changes the manager
    /// received since then are applied on top, so one racing the registration is not lost.
    pub allowed_at: Instant,
    /// The care teams' version read just before `allowed`, when it came from the care
    /// team: one older than the streams follow may lack a change the manager covered with
    /// a read rather than applied (and so does not remember), and has the care teams read
    /// back.
    pub allowed_version: Option<i64>,
    /// Decides what the manager's shared timers send the stream (SSE heartbeat frames or
    /// WebSocket ticks), and labels the connection gauge.
    pub transport: Transport,
    /// Token expiry (seconds since the epoch); the stream ends with `auth_expired` then.
    pub expires_at: i64,
    /// The client's queue.
    pub tx: ClientTx,
}

/// What a transport needs from registration: the `connected` frame's contents, and the
/// seam (`head`) where its replay stops and live delivery takes over.
#[derive(Debug, Clone)]
pub struct Connected {
    /// Id for later messages.
    pub conn_id: ConnId,
    /// Last event delivered before this client was registered.
    pub head: i64,
    /// Effective patients (`None` = every patient).
    pub patients: Option<Vec<String>>,
}

/// Why a registration was refused (issue limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectRefused {
    /// This user already holds the maximum number of streams.
    PerUserLimit(usize),
    /// The instance holds the maximum number of streams.
    InstanceLimit(usize),
    /// The server is shutting down.
    ShuttingDown,
}

/// Sent by a transport when its client goes away (SSE stream dropped, WS `stopping`).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Disconnect {
    /// The id the stream registered under; one the manager does not hold (already
    /// removed, or its registration never finished) is ignored.
    pub conn_id: ConnId,
}

/// Sent for each event this instance committed. Events may arrive out of order (several
/// writers); the manager delivers each exactly once, in sequence order, filling gaps from
/// the event log.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Publish(pub StoredEvent);

/// Sent by the Redis bridge when another instance says it committed event `seq`. A hint,
/// never content: the manager reads the event from its own database. A copy of this
/// database running on the same Redis (a staging clone keeps the deployment id), or
/// anyone able to publish there, would otherwise put foreign alerts on screens, or
/// announce a number past the log's head and have the real events below it skipped.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Announced(pub i64);

/// Sent when this instance changed a care-team assignment.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CareTeamChanged(pub CareTeamChange);

/// Sent by the Redis bridge when another instance says it changed a care-team
/// assignment. Applied only once the database confirms it (see [`Announced`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CareTeamAnnounced(pub CareTeamChange);

/// Sent by a WebSocket session on `subscribe`, after checking the request against a
/// fresh allowed set. Answers the effective patients (`None` = every patient).
#[derive(Message)]
#[rtype(result = "Option<Vec<String>>")]
pub struct Resubscribe {
    /// The session's registered id; one the manager does not hold answers `None`.
    pub conn_id: ConnId,
    /// Replaces what the client asked for at connect time (not merged with it).
    pub requested: Requested,
    /// Re-read for this request (the care team may have changed since the connect), and
    /// already checked against `requested` by the session.
    pub allowed: Allowed,
    /// When the session started reading `allowed` (see [`Connect::allowed_at`]).
    pub allowed_at: Instant,
    /// See [`Connect::allowed_version`].
    pub allowed_version: Option<i64>,
}

/// Sent by the stats endpoint.
#[derive(Message)]
#[rtype(result = "StatsSnapshot")]
pub struct GetStats;

/// Live connection counts.
#[derive(Debug, Clone, Default)]
pub struct StatsSnapshot {
    /// SSE streams.
    pub sse: usize,
    /// WebSocket sessions.
    pub ws: usize,
    /// Streams per role.
    pub by_role: Vec<(Role, usize)>,
    /// Last event delivered.
    pub head: i64,
}

/// Sent once at shutdown: every stream gets a final close, new ones are refused.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

#[cfg(test)]
mod tests {
    /// Each stream's queue allocates its first block of 32 slots when the stream opens:
    /// an item of 40 bytes made that 1.3 KiB for every stream, idle or not.
    #[test]
    fn a_queued_item_is_at_most_one_pointer_and_its_tag() {
        assert!(
            std::mem::size_of::<super::Outbound>() <= 16,
            "{} bytes",
            std::mem::size_of::<super::Outbound>()
        );
    }
}
