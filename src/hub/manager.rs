//! `AlertConnectionManager`: one actor per instance that owns the subscription table
//! and the client queues, and delivers every committed event exactly once, in sequence
//! order, to exactly the matching clients. It never awaits a client: queues are bounded
//! and a full one cuts that client off (it resumes with `Last-Event-ID`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::mpsc::error::TrySendError;

use super::care_team_memory::CareTeamMemory;
use super::event::{CareTeamChange, StoredEvent};
use super::messages::*;
use super::subscriptions::{ConnId, Entry, ScopeChange, Subscriptions};
use crate::db::{self, DbPool, care_team, events};
use crate::domain::Role;
use crate::memory::{self, ClosedStreams};
use crate::metrics::Metrics;
use crate::scope::Allowed;
use crate::transport::frames::{EncodedEvent, sse_control};

/// How long an out-of-order event waits for its predecessors before the gap is read
/// from the event log (in-process publishers are microseconds apart).
const GAP_WAIT: Duration = Duration::from_millis(25);
/// Largest batch read from the log at once.
const LOG_BATCH: i64 = 1000;
/// Every this many event-log polls, the care teams of the open streams are read back from
/// the database: a change this instance did not hear of (another instance's, while Redis
/// was away) or heard of out of order (two instances changing one team at once) is put
/// right within seconds instead of lasting until the client reconnects.
const CARE_TEAM_POLLS: u32 = 5;
/// How often token expiry is checked.
const EXPIRY_TICK: Duration = Duration::from_secs(1);
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
    /// When the oldest announced (not yet applied) claim of the confirmation read in
    /// flight arrived: events accepted after it wait for that read (see [`Self::drain`]).
    confirming_since: Option<Instant>,
    /// A care-team read-back is in flight.
    reading_care_teams: bool,
    shutting_down: bool,
    /// The group of streams the next heartbeat tick serves.
    heartbeat_group: u64,
    /// The group of WebSocket sessions the next tick serves.
    ws_tick_group: u64,
    /// When enough streams have closed to give their memory back.
    closed_streams: ClosedStreams,
    pool: DbPool,
    metrics: Arc<Metrics>,
    settings: ManagerSettings,
}

impl AlertConnectionManager {
    /// A manager that starts delivering after `head` (the log's head at startup).
    pub fn new(pool: DbPool, metrics: Arc<Metrics>, settings: ManagerSettings, head: i64) -> Self {
        Self {
            subscriptions: Subscriptions::default(),
            clients: HashMap::new(),
            streams_per_user: HashMap::new(),
            head,
            pending: BTreeMap::new(),
            recent_care_team: CareTeamMemory::default(),
            reading_log: false,
            announced: None,
            care_team_claims: VecDeque::new(),
            confirming_care_teams: false,
            confirming_since: None,
            reading_care_teams: false,
            shutting_down: false,
            heartbeat_group: 0,
            ws_tick_group: 0,
            closed_streams: ClosedStreams::default(),
            pool,
            metrics,
            settings,
        }
    }

    fn connect(&mut self, msg: Connect) -> Result<Connected, ConnectRefused> {
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

    /// Accepts an event from any source; delivers whatever is now contiguous.
    fn accept(&mut self, event: StoredEvent, ctx: &mut Context<Self>) {
        if event.seq <= self.head || self.pending.contains_key(&event.seq) {
            return;
        }
        self.pending.insert(event.seq, (event, Instant::now()));
        self.drain();
        if !self.pending.is_empty() {
            ctx.run_later(GAP_WAIT, |act, ctx| act.fill_gap(ctx));
        }
    }

    /// Delivers the pending events that are next in sequence, but none accepted after a
    /// care-team change another instance announced that no database read has settled
    /// yet. That instance published the change before any event it committed later, so
    /// such an event may be one the change applies to: an alert raised on another
    /// instance right after a nurse's removal had its 204 reached her when the log read
    /// finished before the change's confirmation, and an added nurse missed one.
    fn drain(&mut self) {
        let unsettled_since = self.unsettled_claims_since();
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() <= self.head {
                // Already delivered or skipped: never let it block the ones after it.
                entry.remove();
                continue;
            }
            if *entry.key() != self.head + 1 {
                break;
            }
            if unsettled_since.is_some_and(|since| entry.get().1 >= since) {
                break;
            }
            let (event, received) = entry.remove();
            self.head = event.seq;
            self.deliver(event, received);
        }
    }

    fn deliver(&mut self, event: StoredEvent, received: Instant) {
        let encoded = Arc::new(EncodedEvent::published_at(event, received));
        let mut cut_off = Vec::new();
        let mut delivered = 0u64;
        for conn_id in self.subscriptions.matching(&encoded.event.patient_id) {
            let Some(client) = self.clients.get(&conn_id) else {
                continue;
            };
            let item = Outbound::Event(Arc::clone(&encoded));
            let at = format_args!("seq={}", encoded.seq());
            if enqueue(&self.metrics, conn_id, &client.tx, item, &at) {
                delivered += 1;
            } else {
                cut_off.push(conn_id);
            }
        }
        for conn_id in cut_off {
            self.remove(conn_id);
        }
        self.metrics.events_published.inc();
        self.metrics.deliveries.inc_by(delivered);
        self.metrics
            .fanout_seconds
            .observe(received.elapsed().as_secs_f64());
        log::debug!(
            "event delivered seq={} alert_id={} recipients={delivered}",
            encoded.seq(),
            encoded.event.alert_id
        );
    }

    /// A gap that outlived [`GAP_WAIT`]: read it from the event log.
    fn fill_gap(&mut self, ctx: &mut Context<Self>) {
        let Some((&first, (_, since))) = self.pending.first_key_value() else {
            return;
        };
        if first == self.head + 1 {
            self.drain();
            return;
        }
        if since.elapsed() < GAP_WAIT {
            return;
        }
        self.read_log(self.head, first - 1, ctx);
    }

    /// Reads `(after, upto]` from the log and feeds it through [`Self::accept`]. Under
    /// the write lock every number up to a committed one is committed too, so what the
    /// read does not find at or below the log's head never will exist: the manager then
    /// skips it. A number past the head (announced, not this database's) is not skipped
    /// to: the real events below it would be lost.
    fn read_log(&mut self, after: i64, upto: i64, ctx: &mut Context<Self>) {
        if self.reading_log {
            return;
        }
        self.reading_log = true;
        let pool = self.pool.clone();
        let read = async move {
            db::run(&pool, move |c| {
                // The head first: every number up to it is committed before the range
                // is read, so the range holds all of them that exist.
                let log_head = events::head(c)?;
                let rows = events::range(c, after, upto.min(log_head), None, LOG_BATCH)?;
                Ok((rows, log_head))
            })
            .await
        };
        ctx.spawn(read.into_actor(self).map(move |result, act, ctx| {
            act.reading_log = false;
            match result {
                Ok((rows, log_head)) => {
                    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= LOG_BATCH;
                    let first_found = rows.first().map(|row| row.seq);
                    for row in rows {
                        if let Some(event) = StoredEvent::from_row(row) {
                            act.accept(event, ctx);
                        }
                    }
                    if upto != i64::MAX && upto > log_head {
                        log::warn!(
                            "event {upto} was announced but this database's event log ends at \
                             {log_head}: ignored (another deployment publishing on this Redis \
                             channel, e.g. a copy of this database, or a forged message)"
                        );
                    }
                    // Numbers between the head and the first row read (or the end of the
                    // range, when the read found none) were never issued (`vigil migrate
                    // --skip-ids`): skip them, and no further — the rows read are
                    // delivered by the drain.
                    let skip_to = first_found.map_or(upto.min(log_head), |seq| seq - 1);
                    if !full && upto != i64::MAX && act.head < skip_to {
                        log::warn!(
                            "event log has no rows in ({}, {skip_to}]; skipping",
                            act.head
                        );
                        act.head = skip_to;
                        act.drain();
                    }
                    if full || !act.pending.is_empty() {
                        ctx.run_later(GAP_WAIT, |act, ctx| act.poll_log(ctx));
                    }
                }
                Err(e) => log::warn!("reading the event log failed: {e}"),
            }
            act.read_announced(ctx);
        }));
    }

    /// Reads up to the largest number other instances announced, unless a read is under
    /// way (its end calls this again).
    fn read_announced(&mut self, ctx: &mut Context<Self>) {
        if self.reading_log {
            return;
        }
        if let Some(upto) = self.announced.take()
            && upto > self.head
        {
            self.read_log(self.head, upto, ctx);
        }
    }

    /// Catches up with events no broker message announced (e.g. Redis was down).
    fn poll_log(&mut self, ctx: &mut Context<Self>) {
        match self.pending.first_key_value() {
            Some((&first, _)) if first > self.head + 1 => self.read_log(self.head, first - 1, ctx),
            _ => self.read_log(self.head, i64::MAX, ctx),
        }
    }

    /// Applies a care-team change to the open streams (telling each altered one) and
    /// remembers it, from `received`, for registrations whose scope was read before it.
    fn apply_care_team_change(&mut self, change: CareTeamChange, received: Instant) {
        let altered = self.subscriptions.care_team_changed(
            &change.user_id,
            &change.patient_id,
            change.assigned,
        );
        self.tell_scope_changes(altered);
        self.recent_care_team.remember(received, change);
    }

    /// When the oldest care-team change announced by another instance and not yet
    /// settled by a database read arrived (this instance's own are applied at once).
    fn unsettled_claims_since(&self) -> Option<Instant> {
        oldest_announced(&self.care_team_claims)
            .into_iter()
            .chain(self.confirming_since)
            .min()
    }

    /// Queues a care-team change for [`Self::confirm_care_team_claims`].
    fn claim_care_team(
        &mut self,
        change: CareTeamChange,
        received: Instant,
        applied: bool,
        ctx: &mut Context<Self>,
    ) {
        if self.care_team_claims.len() >= MAX_CLAIMS_WAITING {
            // A flood (real changes do not come by the ten thousand): the read-back puts
            // the streams right from the database whatever was dropped.
            self.care_team_claims.pop_front();
            self.read_back_care_teams(ctx);
        }
        self.care_team_claims.push_back((received, change, applied));
        self.confirm_care_team_claims(ctx);
    }

    /// Applies the care-team changes other instances announced that the database
    /// confirms, in arrival order, one read at a time. A claim the database contradicts
    /// is dropped: either a later change, announced too, undid it (reads run in order, so
    /// the last one read wins, as in the database), or it is not this deployment's.
    fn confirm_care_team_claims(&mut self, ctx: &mut Context<Self>) {
        if self.confirming_care_teams || self.care_team_claims.is_empty() {
            return;
        }
        self.confirming_care_teams = true;
        let claims: Vec<(Instant, CareTeamChange, bool)> =
            self.care_team_claims.drain(..).collect();
        self.confirming_since = oldest_announced(&claims);
        let mut users: Vec<String> = claims.iter().map(|(_, c, _)| c.user_id.clone()).collect();
        users.sort();
        users.dedup();
        let pool = self.pool.clone();
        let started = Instant::now();
        let read = async move {
            db::run(&pool, move |c| Ok(care_team::patients_of_users(c, &users)?)).await
        };
        ctx.spawn(read.into_actor(self).map(move |result, act, ctx| {
            act.confirming_care_teams = false;
            act.confirming_since = None;
            match result {
                Ok(teams) => {
                    for (received, mut claim, applied) in claims {
                        let holds = teams
                            .get(&claim.user_id)
                            .is_some_and(|team| team.contains(&claim.patient_id));
                        if applied {
                            // Our own change. If the database holds the opposite, one that
                            // committed after it reached us first: the database's state
                            // holds — unless a change of that membership arrived while
                            // the read ran (the read may predate it; its own check follows).
                            let since_read = act
                                .recent_care_team
                                .of_user_since(&claim.user_id, started)
                                .any(|c| c.patient_id == claim.patient_id);
                            if holds != claim.assigned && !since_read {
                                claim.assigned = holds;
                                act.apply_care_team_change(claim, Instant::now());
                            }
                        } else if holds == claim.assigned {
                            act.apply_care_team_change(claim, received);
                        } else {
                            log::debug!(
                                "announced care-team change not in the database, ignored user_id={} patient_id={}",
                                crate::log_value::quoted_if_needed(&claim.user_id),
                                crate::log_value::quoted_if_needed(&claim.patient_id)
                            );
                        }
                    }
                }
                // The periodic read-back puts the streams right once the database answers.
                Err(e) => log::warn!("confirming announced care-team changes failed: {e}"),
            }
            // The events these claims held back (see `drain`), now matched under them.
            act.drain();
            act.confirm_care_team_claims(ctx);
        }));
    }

    /// Reads back the care teams of every user with a care-team-scoped stream and puts the
    /// streams right where they differ (changes received since the read began are applied
    /// on top, as for a registration), telling each altered stream (`scope_changed`).
    fn read_back_care_teams(&mut self, ctx: &mut Context<Self>) {
        if self.reading_care_teams {
            return;
        }
        let users = self.subscriptions.care_team_users();
        if users.is_empty() {
            return;
        }
        self.reading_care_teams = true;
        let started = Instant::now();
        let pool = self.pool.clone();
        let names: Vec<String> = users.iter().map(|(user, _)| user.clone()).collect();
        let read = async move {
            db::run(&pool, move |c| Ok(care_team::patients_of_users(c, &names)?)).await
        };
        ctx.spawn(read.into_actor(self).map(move |result, act, _| {
            act.reading_care_teams = false;
            let mut teams = match result {
                Ok(teams) => teams,
                Err(e) => {
                    log::warn!("reading care teams back failed: {e}");
                    return;
                }
            };
            let mut altered = Vec::new();
            for (user, role) in users {
                let mut allowed = Allowed::Patients(teams.remove(&user).unwrap_or_default());
                act.catch_up(&user, role, &mut allowed, started);
                if let Allowed::Patients(patients) = allowed {
                    let changed = act.subscriptions.care_team_is(&user, &patients);
                    if !changed.is_empty() {
                        log::info!(
                            "care team read back differs from the streams', corrected user_id={} streams={}",
                            crate::log_value::quoted_if_needed(&user),
                            changed.len()
                        );
                    }
                    altered.extend(changed);
                }
            }
            act.tell_scope_changes(altered);
        }));
    }

    /// Tells each stream whose patients a care-team change altered (`scope_changed`), in
    /// its queue after every event before the change and before every event after it. A
    /// stream whose queue is full is cut off like one that misses an event: it resumes
    /// and its `connected` names its patients.
    fn tell_scope_changes(&mut self, altered: Vec<(ConnId, ScopeChange)>) {
        let mut cut_off = Vec::new();
        for (conn_id, change) in altered {
            let Some(client) = self.clients.get(&conn_id) else {
                continue;
            };
            let item = Outbound::Scope(Box::new(change));
            if !enqueue(
                &self.metrics,
                conn_id,
                &client.tx,
                item,
                &"at a care-team change",
            ) {
                cut_off.push(conn_id);
            }
        }
        for conn_id in cut_off {
            self.remove(conn_id);
        }
    }

    /// Sends the heartbeat to one group of SSE streams ([`HEARTBEAT_GROUPS`]); each
    /// stream still gets one per heartbeat period.
    fn heartbeat(&mut self) {
        let group = self.heartbeat_group;
        self.heartbeat_group = (group + 1) % u64::from(HEARTBEAT_GROUPS);
        let frame = sse_control(
            "heartbeat",
            &serde_json::json!({ "timestamp": crate::domain::format_millis(crate::domain::now_millis()) }),
        );
        self.offer_to_group(Transport::Sse, HEARTBEAT_GROUPS, group, || {
            Outbound::Heartbeat(frame.clone())
        });
    }

    /// Ticks one group of WebSocket sessions ([`WS_TICK_GROUPS`]): each session is ticked
    /// once per `ws_tick` and does its own ping and silence checks then. A session whose
    /// queue is full misses a tick; one whose queue is closed is gone.
    fn tick_websockets(&mut self) {
        let group = self.ws_tick_group;
        self.ws_tick_group = (group + 1) % u64::from(WS_TICK_GROUPS);
        self.offer_to_group(Transport::Ws, WS_TICK_GROUPS, group, || Outbound::Tick);
    }

    /// Offers `item()` to the clients of `transport` in `group` of `groups` (by id). A
    /// full queue skips this one (a heartbeat or tick is not worth cutting a client off
    /// for); a closed one means the client is gone.
    fn offer_to_group(
        &mut self,
        transport: Transport,
        groups: u32,
        group: u64,
        item: impl Fn() -> Outbound,
    ) {
        let mut gone = Vec::new();
        for (id, client) in &self.clients {
            if client.transport == transport
                && id % u64::from(groups) == group
                && let Err(TrySendError::Closed(_)) = client.tx.try_send(item())
            {
                gone.push(*id);
            }
        }
        for id in gone {
            self.remove(id);
        }
    }

    fn expire_tokens(&mut self) {
        let now = chrono::Utc::now().timestamp();
        let expired: Vec<ConnId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.expires_at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(client) = self.clients.get(&id) {
                log::info!(
                    "token expired, ending stream connection_id={id} user_id={}",
                    crate::log_value::quoted_if_needed(&client.user_id)
                );
                let _ = client
                    .tx
                    .try_send(Outbound::Close(CloseReason::AuthExpired));
            }
            self.remove(id);
        }
    }

    /// Once a wave of streams has closed, shrinks the tables they were in and has the
    /// allocator return their freed memory (see [`memory`]).
    fn release_memory(&mut self) {
        if !self.closed_streams.trim_due(self.clients.len()) {
            return;
        }
        self.clients.shrink_to_fit();
        self.streams_per_user.shrink_to_fit();
        self.subscriptions.shrink_to_fit();
        memory::release_free_memory();
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

/// When the oldest of `claims` announced by another instance (not applied at once, as this
/// instance's own are) arrived.
fn oldest_announced<'a>(
    claims: impl IntoIterator<Item = &'a (Instant, CareTeamChange, bool)>,
) -> Option<Instant> {
    claims
        .into_iter()
        .filter(|(_, _, applied)| !applied)
        .map(|(received, _, _)| *received)
        .min()
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
        ctx.run_interval(self.settings.tail_poll, |act, ctx| act.poll_log(ctx));
        ctx.run_interval(self.settings.tail_poll * CARE_TEAM_POLLS, |act, ctx| {
            act.read_back_care_teams(ctx)
        });
    }
}

impl Handler<Connect> for AlertConnectionManager {
    type Result = Result<Connected, ConnectRefused>;
    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) -> Self::Result {
        self.connect(msg)
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
        if msg.0 > self.head {
            self.announced = Some(self.announced.map_or(msg.0, |a| a.max(msg.0)));
            self.read_announced(ctx);
        }
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
    fn handle(&mut self, msg: Resubscribe, _: &mut Context<Self>) -> Self::Result {
        let mut allowed = msg.allowed;
        if let Some(entry) = self.subscriptions.get(msg.conn_id) {
            let (user_id, role) = (entry.user_id.clone(), entry.role);
            self.catch_up(&user_id, role, &mut allowed, msg.allowed_at);
        }
        self.subscriptions
            .resubscribe(msg.conn_id, msg.requested, allowed);
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
