//! `AlertConnectionManager`: one actor per instance that owns the subscription table
//! and the client queues, and delivers every committed event exactly once, in sequence
//! order, to exactly the matching clients. It never awaits a client: queues are bounded
//! and a full one cuts that client off (it resumes with `Last-Event-ID`).

mod care_teams;

use care_teams::{CareTeamVersions, Unsettled};
mod sequence;
#[cfg(test)]
mod tests;
mod ticks;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::mpsc::error::TrySendError;

use super::care_team_memory::CareTeamMemory;
use super::event::{CareTeamChange, StoredEvent};
use super::messages::*;
use super::subscriptions::{ConnId, Entry, Subscriptions};
use crate::db::DbPool;
use crate::db::events::{CareTeamVersionsSeen, IssuedIds};
use crate::domain::Role;
use crate::memory::ClosedStreams;
use crate::metrics::Metrics;
use crate::scope::Allowed;

/// How long an out-of-order event waits for its predecessors before the gap is read
/// from the event log (in-process publishers are microseconds apart).
const GAP_WAIT: Duration = Duration::from_millis(25);
/// Largest batch read from the log at once.
const LOG_BATCH: i64 = 1000;
/// How soon the log is read again after a poll found events no broker message brought
/// (Redis down, or another instance unable to publish): at the usual period (1 s) each
/// poll handed every stream a second's events at once, and a stream of a busy ward
/// overflowed its queue (100) however fast its screen read.
const CATCH_UP_POLL: Duration = Duration::from_millis(50);
/// Every this many event-log polls, the care teams of the open streams are read back from
/// the database: a change this instance did not hear of (another instance's, while Redis
/// was away) or heard of out of order (two instances changing one team at once) is put
/// right within seconds instead of lasting until the client reconnects.
const CARE_TEAM_POLLS: u32 = 5;
/// How often token expiry is checked.
const EXPIRY_TICK: Duration = Duration::from_secs(1);
/// At most this long an event waits for the care teams to reach the version it was
/// stamped with (one read of the database, normally milliseconds); past it, with the
/// database not answering, it goes out under the care teams as the streams have them:
/// an alert held back indefinitely would be worse than one matched under the old team.
const CARE_TEAM_WAIT: Duration = Duration::from_secs(2);
/// At most this many announced care-team changes wait for their confirming read; past
/// it the oldest are dropped and the care teams are read back whole instead.
const MAX_CLAIMS_WAITING: usize = 10_000;
/// SSE streams get their heartbeat in this many groups, one group per tick, spread over
/// the heartbeat period. All at once, 10,000 streams meant 10,000 socket writes in one
/// burst, and alerts raised during it waited 60–80 ms behind them.
const HEARTBEAT_GROUPS: u32 = 32;
/// WebSocket sessions get their tick in this many groups, one per tick, for the same
/// reason: pings written to every session at once would hold up alerts behind them.
const WS_TICK_GROUPS: u32 = 8;

struct Client {
    tx: ClientTx,
    transport: Transport,
    role: Role,
    user_id: String,
    expires_at: i64,
}

/// Limits and periods the manager enforces.
#[derive(Debug, Clone)]
pub struct ManagerSettings {
    /// SSE heartbeat period.
    pub heartbeat: Duration,
    /// Event-log poll period (catches events a broker lost).
    pub tail_poll: Duration,
    /// Streams per user.
    pub max_streams_per_user: usize,
    /// Streams per instance.
    pub max_connections: Option<usize>,
    /// How often each WebSocket session is ticked (its ping and silence checks).
    pub ws_tick: Duration,
    /// The Redis link, when there is one: while it is down, other instances' events
    /// come only through the event log, which is then read every 50 ms.
    pub broker_link: Option<crate::hub::redis::RedisLink>,
}

#[cfg(test)]
impl ManagerSettings {
    /// For a unit test: timers an hour apart, so that nothing the test awaits comes from
    /// a tick (a heartbeat, a poll, a read-back) rather than from what it checks.
    pub(crate) fn quiet() -> Self {
        Self {
            heartbeat: Duration::from_secs(3600),
            tail_poll: Duration::from_secs(3600),
            max_streams_per_user: 10,
            max_connections: None,
            ws_tick: Duration::from_secs(3600),
            broker_link: None,
        }
    }
}

/// The fan-out actor.
pub struct AlertConnectionManager {
    subscriptions: Subscriptions,
    clients: HashMap<ConnId, Client>,
    /// Open streams per user, kept alongside `clients` so the per-user limit costs a
    /// lookup, not a scan of every connection (which made connecting quadratic).
    streams_per_user: HashMap<String, usize>,
    head: i64,
    pending: BTreeMap<i64, (StoredEvent, Instant)>,
    recent_care_team: CareTeamMemory,
    reading_log: bool,
    /// The largest event number another instance announced that no log read has covered
    /// yet (read as soon as the log read in flight, if any, is done).
    announced: Option<i64>,
    /// Care-team changes other instances announced, with when each arrived, waiting to be
    /// confirmed by the database (one read at a time, in arrival order); and this
    /// instance's own, applied at once and checked the same way (`true`: applied).
    care_team_claims: VecDeque<(Instant, CareTeamChange, bool)>,
    /// A confirmation read of `care_team_claims` is in flight.
    confirming_care_teams: bool,
    /// What the announced claims of the confirmation read in flight hold back (see
    /// [`Self::drain`]).
    confirming: Unsettled,
    /// Announced changes the database confirmed, in order of their place in the event
    /// log (`after_seq`), waiting for the events before them to be delivered.
    confirmed_claims: VecDeque<(Instant, CareTeamChange)>,
    /// A care-team read-back is in flight.
    reading_care_teams: bool,
    /// How far the streams follow the care teams; events stamped past it wait.
    care_team_versions: CareTeamVersions,
    /// A stream registered while a read-back was under way, with a care team older than
    /// the streams follow: read them back once more when it ends.
    read_back_again: bool,
    shutting_down: bool,
    /// The group of streams the next heartbeat tick serves.
    heartbeat_group: u64,
    /// The group of WebSocket sessions the next tick serves.
    ws_tick_group: u64,
    /// When enough streams have closed to give their memory back.
    closed_streams: ClosedStreams,
    /// The highest event id seen committed, shared with every event write.
    issued: IssuedIds,
    /// The log head a read last found below `head` (reported once, not every poll).
    log_behind_reported: Option<i64>,
    /// When the event log was last polled for events no broker message announced.
    last_tail_poll: Instant,
    /// The last such poll found some: poll again at the next tick.
    catching_up: bool,
    pool: DbPool,
    metrics: Arc<Metrics>,
    settings: ManagerSettings,
}

impl AlertConnectionManager {
    /// A manager that starts delivering after the highest id `issued` holds (the log's
    /// head at startup), and raises it with every event it delivers; its streams follow
    /// the care teams at the version `care_teams_seen` holds (the database's at startup),
    /// and it raises that as they follow later ones.
    pub fn new(
        pool: DbPool,
        metrics: Arc<Metrics>,
        settings: ManagerSettings,
        issued: IssuedIds,
        care_teams_seen: CareTeamVersionsSeen,
    ) -> Self {
        Self {
            head: issued.highest(),
            issued,
            log_behind_reported: None,
            last_tail_poll: Instant::now(),
            catching_up: false,
            subscriptions: Subscriptions::default(),
            clients: HashMap::new(),
            streams_per_user: HashMap::new(),
            pending: BTreeMap::new(),
            recent_care_team: CareTeamMemory::default(),
            reading_log: false,
            announced: None,
            care_team_claims: VecDeque::new(),
            confirming_care_teams: false,
            confirming: Unsettled::default(),
            confirmed_claims: VecDeque::new(),
            reading_care_teams: false,
            care_team_versions: CareTeamVersions::following(care_teams_seen),
            read_back_again: false,
            shutting_down: false,
            heartbeat_group: 0,
            ws_tick_group: 0,
            closed_streams: ClosedStreams::default(),
            pool,
            metrics,
            settings,
        }
    }

    fn connect(
        &mut self,
        msg: Connect,
        ctx: &mut Context<Self>,
    ) -> Result<Connected, ConnectRefused> {
        if self.shutting_down {
            return Err(ConnectRefused::ShuttingDown);
        }
        if let Some(max) = self.settings.max_connections
            && self.clients.len() >= max
        {
            return Err(ConnectRefused::InstanceLimit(max));
        }
        let per_user = self
            .streams_per_user
            .get(&msg.user_id)
            .copied()
            .unwrap_or(0);
        if per_user >= self.settings.max_streams_per_user {
            return Err(ConnectRefused::PerUserLimit(
                self.settings.max_streams_per_user,
            ));
        }
        let conn_id = msg.conn_id;
        let mut allowed = msg.allowed;
        self.catch_up(&msg.user_id, msg.role, &mut allowed, msg.allowed_at);
        let entry = Entry {
            user_id: msg.user_id.clone(),
            role: msg.role,
            requested: msg.requested,
            allowed,
        };
        let patients = entry.effective().map(|s| s.into_iter().collect());
        self.subscriptions.insert(conn_id, entry);
        self.metrics
            .connections
            .with_label_values(&[msg.transport.as_str(), msg.role.as_str()])
            .inc();
        *self
            .streams_per_user
            .entry(msg.user_id.clone())
            .or_default() += 1;
        self.clients.insert(
            conn_id,
            Client {
                tx: msg.tx,
                transport: msg.transport,
                role: msg.role,
                user_id: msg.user_id,
                expires_at: msg.expires_at,
            },
        );
        self.closed_streams.opened(self.clients.len());
        self.check_registration_version(msg.allowed_version, ctx);
        Ok(Connected {
            conn_id,
            head: self.head,
            patients,
        })
    }

    /// Applies the care-team changes received since `since` to a scope read from the
    /// database at `since`: a change that committed after that read was already applied
    /// to the open streams and would otherwise never reach this one.
    fn catch_up(&self, user_id: &str, role: Role, allowed: &mut Allowed, since: Instant) {
        let Allowed::Patients(set) = allowed else {
            return;
        };
        if !role.uses_care_team() {
            return;
        }
        for change in self.recent_care_team.of_user_since(user_id, since) {
            if change.assigned {
                set.insert(change.patient_id.clone());
            } else {
                set.remove(&change.patient_id);
            }
        }
    }

    fn remove(&mut self, conn_id: ConnId) {
        self.subscriptions.remove(conn_id);
        if let Some(client) = self.clients.remove(&conn_id) {
            if let Some(open) = self.streams_per_user.get_mut(&client.user_id) {
                *open = open.saturating_sub(1);
                if *open == 0 {
                    self.streams_per_user.remove(&client.user_id);
                }
            }
            self.metrics
                .connections
                .with_label_values(&[client.transport.as_str(), client.role.as_str()])
                .dec();
        }
    }

    fn snapshot(&self) -> StatsSnapshot {
        let mut snapshot = StatsSnapshot {
            head: self.head,
            ..StatsSnapshot::default()
        };
        let mut by_role: BTreeMap<Role, usize> = Role::all().into_iter().map(|r| (r, 0)).collect();
        for client in self.clients.values() {
            match client.transport {
                Transport::Sse => snapshot.sse += 1,
                Transport::Ws => snapshot.ws += 1,
            }
            *by_role.entry(client.role).or_default() += 1;
        }
        snapshot.by_role = by_role.into_iter().collect();
        snapshot
    }
}

/// Queues `item` for a client without waiting; `false` when the client must be removed:
/// its queue is closed, or full — it fell behind, and is cut off (counted) to resume with
/// `Last-Event-ID`. `at` says what it missed, for the log.
fn enqueue(
    metrics: &Metrics,
    conn_id: ConnId,
    tx: &ClientTx,
    item: Outbound,
    at: &dyn std::fmt::Display,
) -> bool {
    match tx.try_send(item) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) => {
            log::warn!("client queue full, cutting off connection_id={conn_id} {at}");
            metrics.queue_overflows.inc();
            false
        }
        Err(TrySendError::Closed(_)) => false,
    }
}

impl Actor for AlertConnectionManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        let tick = (self.settings.heartbeat / HEARTBEAT_GROUPS).max(Duration::from_millis(1));
        ctx.run_interval(tick, |act, _| act.heartbeat());
        let ws_tick = (self.settings.ws_tick / WS_TICK_GROUPS).max(Duration::from_millis(1));
        ctx.run_interval(ws_tick, |act, _| act.tick_websockets());
        ctx.run_interval(EXPIRY_TICK, |act, _| {
            act.expire_tokens();
            act.release_memory();
        });
        let tick = CATCH_UP_POLL.min(self.settings.tail_poll);
        ctx.run_interval(tick, |act, ctx| act.tail_tick(ctx));
        ctx.run_interval(self.settings.tail_poll * CARE_TEAM_POLLS, |act, ctx| {
            act.read_back_care_teams(ctx)
        });
    }
}

impl Handler<Connect> for AlertConnectionManager {
    type Result = Result<Connected, ConnectRefused>;
    fn handle(&mut self, msg: Connect, ctx: &mut Context<Self>) -> Self::Result {
        self.connect(msg, ctx)
    }
}

impl Handler<Disconnect> for AlertConnectionManager {
    type Result = ();
    fn handle(&mut self, msg: Disconnect, _: &mut Context<Self>) {
        self.remove(msg.conn_id);
    }
}

impl Handler<Publish> for AlertConnectionManager {
    type Result = ();
    fn handle(&mut self, msg: Publish, ctx: &mut Context<Self>) {
        self.accept(msg.0, ctx);
    }
}

impl Handler<Announced> for AlertConnectionManager {
    type Result = ();
    fn handle(&mut self, msg: Announced, ctx: &mut Context<Self>) {
        self.read_log_upto(msg.0, ctx);
    }
}

impl Handler<CareTeamChanged> for AlertConnectionManager {
    type Result = ();
    fn handle(&mut self, msg: CareTeamChanged, ctx: &mut Context<Self>) {
        // Applied at once (an alert raised right after a removal's 204 must not reach
        // the removed user), then checked against the database: the writer hands changes
        // over in commit order, but two PostgreSQL transactions publish from two threads.
        let received = Instant::now();
        self.apply_care_team_change(msg.0.clone(), received);
        // Events of this instance's that committed after it and reached the manager first
        // (PostgreSQL: a concurrent request) waited for it.
        self.drain();
        self.claim_care_team(msg.0, received, true, ctx);
    }
}

impl Handler<CareTeamAnnounced> for AlertConnectionManager {
    type Result = ();
    fn handle(&mut self, msg: CareTeamAnnounced, ctx: &mut Context<Self>) {
        self.claim_care_team(msg.0, Instant::now(), false, ctx);
    }
}

impl Handler<Resubscribe> for AlertConnectionManager {
    type Result = Option<Vec<String>>;
    fn handle(&mut self, msg: Resubscribe, ctx: &mut Context<Self>) -> Self::Result {
        let mut allowed = msg.allowed;
        if let Some(entry) = self.subscriptions.get(msg.conn_id) {
            let (user_id, role) = (entry.user_id.clone(), entry.role);
            self.catch_up(&user_id, role, &mut allowed, msg.allowed_at);
        }
        self.subscriptions
            .resubscribe(msg.conn_id, msg.requested, allowed);
        self.check_registration_version(msg.allowed_version, ctx);
        self.subscriptions
            .get(msg.conn_id)
            .and_then(|e| e.effective())
            .map(|s| s.into_iter().collect())
    }
}

impl Handler<GetStats> for AlertConnectionManager {
    type Result = MessageResult<GetStats>;
    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.snapshot())
    }
}

impl Handler<Shutdown> for AlertConnectionManager {
    type Result = ();
    fn handle(&mut self, _: Shutdown, _: &mut Context<Self>) {
        self.shutting_down = true;
        let ids: Vec<ConnId> = self.clients.keys().copied().collect();
        for id in ids {
            if let Some(client) = self.clients.get(&id) {
                let _ = client.tx.try_send(Outbound::Close(CloseReason::Shutdown));
            }
            self.remove(id);
        }
    }
}
