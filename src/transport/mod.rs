//! Transports: thin adapters that authenticate, register with the manager, and write
//! frames. Both share [`open_subscription`], so SSE and WebSocket apply the same rules.

pub mod frames;
pub mod replay;
pub mod sse;
pub mod ws;

use actix_web::HttpRequest;
use tokio::sync::mpsc;

use crate::auth::{Credential, Principal, authenticate, origin};
use crate::db::{self, events};
use crate::error::ApiError;
use crate::hub::event::StoredEvent;
use crate::hub::messages::{Connect, ConnectRefused, Connected, Outbound, Transport};
use crate::metrics::Metrics;
use crate::scope::{Allowed, Requested};
use crate::service::scope::allowed_by_token;
use crate::state::AppState;

/// Stream query parameters shared by `/api/v1/alerts/stream` and `/ws`.
#[derive(Debug, Clone)]
pub struct StreamParams {
    /// `patient_id` (repeatable, comma lists, `*`).
    pub requested: Requested,
    /// Seed-era `role`: may only name the token's own role.
    pub role: Option<String>,
    /// `last_event_id` query (the header wins when both are present).
    pub last_event_id: Option<String>,
}

impl StreamParams {
    /// One parser for both transports, so SSE and `/ws` refuse the same malformed or
    /// repeated parameters with the same errors.
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let pairs = crate::query::QueryPairs::parse(query)?;
        Ok(Self {
            requested: pairs.requested()?,
            role: pairs.single("role")?.map(str::to_owned),
            last_event_id: pairs.raw_single("last_event_id")?.map(str::to_owned),
        })
    }
}

/// The `Last-Event-ID` a client resumes from: the header, else the `last_event_id` query
/// (for clients that cannot set headers). A header that is not text still counts as
/// given, so the client gets a `reset` rather than a silent live-only stream; one given
/// twice is a 422, as the query parameter is, not one of two resume points picked.
pub fn last_event_id(req: &HttpRequest, params: &StreamParams) -> Result<Option<String>, ApiError> {
    let mut headers = req.headers().get_all("Last-Event-ID");
    let header = headers.next();
    if headers.next().is_some() {
        return Err(ApiError::invalid("Last-Event-ID", "give it at most once"));
    }
    Ok(header
        .map(|v| {
            // A field value's surrounding whitespace is not part of it (RFC 9110 §5.5).
            v.to_str()
                .map(|s| s.trim_matches([' ', '\t']).to_owned())
                .unwrap_or_else(|_| "invalid".to_owned())
        })
        .or_else(|| params.last_event_id.clone()))
}

/// What a `reset` tells the client, on either transport: why its `Last-Event-ID` could
/// not be honoured, the oldest id still held, the head it continues from, and where to
/// reload.
pub fn reset_payload(reason: &str, oldest: Option<i64>, head: i64) -> serde_json::Value {
    serde_json::json!({
        "reason": reason,
        "oldest_id": oldest.unwrap_or(0),
        "head": head,
        "reload": "/api/v1/alerts",
    })
}

/// Bytes of event payload one replay batch loads at most (past its first event): each
/// `alert_updated` carries its alert's whole acknowledgment trail, so a count alone did
/// not bound a batch — 100 events of an alert acknowledged hundreds of times held
/// 240 MB for one stream that did not read (an outside audit). A batch is sized first
/// ([`events::range_sizes`]) and only what fits is loaded.
const REPLAY_BATCH_BYTES: usize = 1024 * 1024;

/// How many of the events sized `(seq, bytes)`, from the first, fit in `budget` bytes;
/// at least one, so that a replay always moves on.
fn within_bytes(sizes: &[(i64, i64)], budget: usize) -> usize {
    let budget = i64::try_from(budget).unwrap_or(i64::MAX);
    let mut used = 0i64;
    sizes
        .iter()
        .position(|&(_, bytes)| {
            used = used.saturating_add(bytes);
            used > budget
        })
        .map_or(sizes.len(), |over| over.max(1))
}

/// One step of a replay ([`ReplayRange::read_batch`]).
#[derive(Debug)]
pub enum Batch {
    /// The batch's events, and what is left of the range after them.
    Read(Vec<StoredEvent>, Option<ReplayRange>),
    /// The retention pruner deleted events past the replay's cursor while it ran (it
    /// began within the retained history, and is slower than the retention): the screen
    /// must reload, as a resume from a pruned id does.
    Pruned {
        /// The oldest event still held, for the `reset`.
        oldest: Option<i64>,
    },
}

/// Why a replay ended in a `reset` because the pruner overtook it.
pub const OVERTAKEN_BY_PRUNER: &str =
    "the replay fell behind the retained history (VIGIL_EVENT_RETENTION_DAYS) while it ran";

/// Events `(after, upto]` of the log in a stream's scope (`None`: every patient).
#[derive(Debug, Clone)]
pub struct ReplayRange {
    /// The last id the client saw.
    pub after: i64,
    /// The seam: the manager's head when the stream registered.
    pub upto: i64,
    /// The stream's patients when it registered.
    pub patients: Option<Vec<String>>,
    /// The user whose care team decides the stream's scope (`None` when the token
    /// does). Each batch is narrowed to the team as it is then: a replay can run for
    /// minutes for a slow reader, and a patient removed from the team stops at once, as
    /// it does for live events.
    pub care_team_of: Option<String>,
}

impl ReplayRange {
    /// Reads the next `limit` rows of the range: their events, and what is left of the
    /// range after them (`None` once a batch comes back short). Both transports page
    /// their replays with it; the cursor moves by rows read, not by events kept.
    pub fn read_batch(
        &self,
        conn: &mut db::AnyConnection,
        limit: i64,
    ) -> diesel::QueryResult<Batch> {
        let read = self.read_rows(conn, limit)?;
        // Read after the rows: a deletion past the cursor commits with the mark's move,
        // so a mark still at or below the cursor now means none had touched the rows.
        if crate::db::retention::pruned_through(conn)? > self.after {
            return Ok(Batch::Pruned {
                oldest: events::oldest(conn)?,
            });
        }
        let (events, rest) = read;
        Ok(Batch::Read(events, rest))
    }

    fn read_rows(
        &self,
        conn: &mut db::AnyConnection,
        limit: i64,
    ) -> diesel::QueryResult<(Vec<StoredEvent>, Option<ReplayRange>)> {
        let narrowed = match &self.care_team_of {
            Some(user) => {
                let team = crate::db::care_team::patients_of(conn, user)?;
                Some(match &self.patients {
                    Some(registered) => {
                        let registered: std::collections::HashSet<&String> =
                            registered.iter().collect();
                        team.into_iter()
                            .filter(|p| registered.contains(p))
                            .collect()
                    }
                    None => team,
                })
            }
            None => self.patients.clone(),
        };
        let sizes = events::range_sizes(conn, self.after, self.upto, narrowed.as_deref(), limit)?;
        let full = i64::try_from(sizes.len()).unwrap_or(i64::MAX) >= limit;
        let kept = within_bytes(&sizes, REPLAY_BATCH_BYTES);
        let Some(&(last, _)) = sizes[..kept].last() else {
            return Ok((Vec::new(), None));
        };
        // The rows sized, and only those: the log below the seam does not change (but
        // for the pruner, which `read_batch` checks for).
        let rows = events::range(conn, self.after, last, narrowed.as_deref(), limit)?;
        let rest = (full || kept < sizes.len()).then(|| ReplayRange {
            after: last,
            ..self.clone()
        });
        let events = rows.into_iter().filter_map(StoredEvent::from_row).collect();
        Ok((events, rest))
    }
}

/// How a new stream starts from its `Last-Event-ID`, the same on both transports.
#[derive(Debug)]
pub struct ResumePlan {
    /// The seam (the id a `reset` moves the client to).
    pub seam: i64,
    /// Live events at or below this were sent or seen already, and are skipped.
    pub last_sent: i64,
    /// What to replay before going live.
    pub replay: Option<ReplayRange>,
    /// The `reset` payload to send first instead, when the id cannot be honoured.
    pub reset: Option<serde_json::Value>,
}

impl Subscription {
    /// Decides replay or reset for `last_event_id` ([`replay::decide`]) and counts the
    /// resume.
    pub fn resume_plan(&self, last_event_id: Option<&str>, metrics: &Metrics) -> ResumePlan {
        let seam = self.connected.head;
        let mut plan = ResumePlan {
            seam,
            last_sent: seam,
            replay: None,
            reset: None,
        };
        if last_event_id.is_some() {
            metrics.resumes.inc();
        }
        match replay::decide(last_event_id, &self.log) {
            replay::Resume::Live => {}
            replay::Resume::Replay { after } => {
                // Live events up to `after` were already seen (also when `after` is past
                // the seam because an event was committed but not yet delivered).
                plan.last_sent = after;
                if after < seam {
                    plan.replay = Some(ReplayRange {
                        // 0 is "from the oldest retained": the replay starts at the
                        // pruner's mark, so its guard sees any deletion from now on.
                        after: after.max(self.log.pruned_through),
                        upto: seam,
                        patients: self.connected.patients.clone(),
                        care_team_of: allowed_by_token(&self.principal)
                            .is_none()
                            .then(|| self.principal.user_id.clone()),
                    });
                }
            }
            replay::Resume::Reset { reason } => {
                plan.reset = Some(reset_payload(reason, self.log.oldest, seam));
            }
        }
        plan
    }
}

/// A registered subscription, ready for a transport to serve.
pub struct Subscription {
    /// The authenticated caller: `connected` reports its user and role, a care-team
    /// role's replay follows its team, and WebSocket requests are checked against it.
    pub principal: Principal,
    /// Registration (id, seam head, patients).
    pub connected: Connected,
    /// The client's queue.
    pub rx: mpsc::Receiver<Outbound>,
    /// The event log's bounds, read when resuming (default otherwise).
    pub log: replay::LogBounds,
    /// Unregisters the stream when dropped: the transport keeps it as long as the stream.
    pub guard: ConnectionGuard,
}

/// Authenticates, checks role and scope, and registers with the manager. `resuming`
/// (a `Last-Event-ID` was given) also reads the log's bounds for [`replay::decide`].
pub async fn open_subscription(
    req: &HttpRequest,
    state: &AppState,
    transport: Transport,
    params: &StreamParams,
    resuming: bool,
) -> Result<Subscription, ApiError> {
    let principal = authenticate(req, state, transport == Transport::Ws)?;
    if transport == Transport::Ws && principal.credential == Credential::Cookie {
        origin::check(req, &state.config.cors_origins)?;
    }
    if !principal.role.may_subscribe() {
        return Err(ApiError::Forbidden(format!(
            "role {} may not subscribe to alerts",
            principal.role
        )));
    }
    crate::scope::check_role_param(principal.role, params.role.as_deref())?;
    let allowed_at = std::time::Instant::now();
    // The log's bounds matter only to a resume; the scope needs the database only for
    // care-team roles. Everyone else opens without a database round trip.
    let (allowed, allowed_version, log): (Allowed, Option<i64>, replay::LogBounds) =
        match (resuming, allowed_by_token(&principal)) {
            (false, Some(allowed)) => (allowed, None, replay::LogBounds::default()),
            _ => {
                let who = principal.clone();
                db::run(&state.pool, move |c| {
                    let (allowed, version) = crate::service::scope::allowed_with_version(c, &who)?;
                    let log = if resuming {
                        replay::LogBounds::read(c)?
                    } else {
                        replay::LogBounds::default()
                    };
                    Ok((allowed, version, log))
                })
                .await?
            }
        };
    params.requested.authorize(principal.role, &allowed)?;
    let (tx, rx) = mpsc::channel(state.config.client_queue.get());
    // The guard first: if the client goes away while the manager answers, dropping it
    // unregisters the stream the manager is registering (its Disconnect follows the
    // Connect in the manager's mailbox).
    let conn_id = state.conn_ids.next();
    let mut guard = ConnectionGuard::new(conn_id, state.manager.clone());
    let connected = state
        .manager
        .send(Connect {
            conn_id,
            user_id: principal.user_id.clone(),
            role: principal.role,
            requested: params.requested.clone(),
            allowed,
            allowed_at,
            allowed_version,
            transport,
            expires_at: principal.expires_at,
            tx,
        })
        .await
        .map_err(|_| ApiError::ManagerUnavailable)?
        .map_err(|refused| refused_error(state, refused))?;
    guard.opened = true;
    // The request id joins this line to the stream's access line, which is written only
    // when the stream ends.
    log::info!(
        "stream opened transport={} connection_id={} user_id={} role={} request_id={}",
        transport.as_str(),
        connected.conn_id,
        crate::log_value::quoted_if_needed(&principal.user_id),
        principal.role,
        crate::request_id::of(req).as_deref().unwrap_or("-")
    );
    Ok(Subscription {
        principal,
        connected,
        rx,
        log,
        guard,
    })
}

fn refused_error(state: &AppState, refused: ConnectRefused) -> ApiError {
    let label = match refused {
        ConnectRefused::PerUserLimit(_) => "per_user",
        ConnectRefused::InstanceLimit(_) => "instance",
        ConnectRefused::ShuttingDown => "shutdown",
    };
    state
        .metrics
        .limit_rejections
        .with_label_values(&[label])
        .inc();
    match refused {
        ConnectRefused::PerUserLimit(n) => ApiError::TooManyRequests {
            detail: format!(
                "at most {n} open streams per user (VIGIL_MAX_STREAMS_PER_USER); close one first"
            ),
            retry_after: None,
        },
        ConnectRefused::InstanceLimit(n) => ApiError::Unavailable {
            detail: format!(
                "this instance holds its maximum of {n} streams (VIGIL_MAX_CONNECTIONS)"
            ),
            retry_after: 5,
        },
        ConnectRefused::ShuttingDown => ApiError::Unavailable {
            detail: "the server is shutting down".to_owned(),
            retry_after: 3,
        },
    }
}

/// The `connected` payload shared by both transports.
pub fn connected_payload(sub: &Subscription, heartbeat_secs: u64) -> serde_json::Value {
    let patients = sub
        .connected
        .patients
        .clone()
        .unwrap_or_else(|| vec!["*".to_owned()]);
    serde_json::json!({
        "connection_id": sub.connected.conn_id.to_string(),
        "user_id": sub.principal.user_id,
        "role": sub.principal.role.as_str(),
        "patients": patients,
        "heartbeat_seconds": heartbeat_secs,
        "server_time": crate::domain::format_millis(crate::domain::now_millis()),
    })
}

/// Tells the manager a connection is gone when its stream or session is dropped.
pub struct ConnectionGuard {
    conn_id: u64,
    manager: actix::Addr<crate::hub::manager::AlertConnectionManager>,
    /// The manager accepted the stream (only then is its end logged).
    opened: bool,
}

impl ConnectionGuard {
    /// Guards one registration, from before it is asked for.
    pub fn new(
        conn_id: u64,
        manager: actix::Addr<crate::hub::manager::AlertConnectionManager>,
    ) -> Self {
        Self {
            conn_id,
            manager,
            opened: false,
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.opened {
            log::info!("stream closed connection_id={}", self.conn_id);
        }
        // Also for a registration whose answer never arrived (the client left): the
        // manager ignores an id it does not hold.
        #[expect(
            clippy::disallowed_methods,
            reason = "`drop` cannot await a `send`; the manager's mailbox is the sanctioned target"
        )]
        self.manager.do_send(crate::hub::messages::Disconnect {
            conn_id: self.conn_id,
        });
    }
}

/// Fixtures the replay tests of both transports share.
#[cfg(test)]
pub(crate) mod test_support {
    #![allow(clippy::expect_used)]

    use crate::config::Config;
    use crate::db::models::NewEventRow;
    use crate::db::{AnyConnection, DbPool, events, migrate};

    /// A pool on a new, migrated SQLite file in `dir`.
    pub(crate) fn migrated_pool(dir: &tempfile::TempDir) -> DbPool {
        let url = format!("sqlite://{}", dir.path().join("v.db").display());
        let config = Config::new(&url, "0123456789abcdef0123456789abcdef");
        let pool = crate::db::pool::build_pool(&config.database).expect("pool");
        migrate::run_pending(&mut pool.get().expect("connection")).expect("migrations");
        pool
    }

    /// Appends event `seq` (an `alert` of alert "x" for patient "a", payload `{}`), written
    /// at `created_at` (epoch ms).
    pub(crate) fn insert_event(conn: &mut AnyConnection, seq: i64, created_at: i64) {
        let row = NewEventRow {
            seq,
            kind: "alert",
            alert_id: "x",
            patient_id: "a",
            payload: "{}",
            created_at,
            care_team_version: 0,
        };
        events::insert(conn, &row).expect("event");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::test_support::{insert_event, migrated_pool};
    use super::{Batch, ReplayRange};
    use crate::db::models::{CareTeamRow, NewEventRow};
    use crate::db::{care_team, events};
    use crate::hub::event::StoredEvent;

    /// A batch that must have been read (no pruner runs in these tests but where said).
    fn read(
        range: &ReplayRange,
        conn: &mut crate::db::AnyConnection,
        limit: i64,
    ) -> (Vec<StoredEvent>, Option<ReplayRange>) {
        match range.read_batch(conn, limit).expect("batch") {
            Batch::Read(events, rest) => (events, rest),
            Batch::Pruned { .. } => panic!("the replay was overtaken by the pruner"),
        }
    }
    /// A slow reader's replay runs batch after batch long after it began; the care team
    /// is read again for each, so a patient removed meanwhile stops at the next batch.
    /// (Black-box, the kernel's socket buffers take hundreds of events before the server
    /// reads its second batch, so the batch boundary is shown here.)
    #[test]
    fn each_replay_batch_follows_the_care_team_as_it_is_then() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = migrated_pool(&dir);
        let mut conn = pool.get().expect("connection");
        for patient in ["a", "b"] {
            let row = CareTeamRow {
                patient_id: patient.to_owned(),
                user_id: "alice".to_owned(),
                created_at: 0,
            };
            care_team::assign(&mut conn, &row).expect("assign");
        }
        for seq in 1..=8 {
            let patient = if seq % 2 == 0 { "a" } else { "b" };
            let row = NewEventRow {
                seq,
                kind: "alert",
                alert_id: "x",
                patient_id: patient,
                payload: "{}",
                created_at: 0,
                care_team_version: 0,
            };
            events::insert(&mut conn, &row).expect("event");
        }
        let range = ReplayRange {
            after: 0,
            upto: 8,
            patients: Some(vec!["a".to_owned(), "b".to_owned()]),
            care_team_of: Some("alice".to_owned()),
        };
        let (first, rest) = read(&range, &mut conn, 4);
        let seqs: Vec<i64> = first.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            [1, 2, 3, 4],
            "both patients while both are on the team"
        );

        care_team::unassign(&mut conn, "b", "alice").expect("unassign");
        let (second, rest) = read(&rest.expect("more to read"), &mut conn, 4);
        let seqs: Vec<i64> = second.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [6, 8], "b's events stop once b has left the team");
        assert!(rest.is_none());
    }

    /// A care team longer than one statement may bind (SQLite: 32,766 parameters) is
    /// queried a chunk at a time: the replay and the alert list of its user worked, not a
    /// "too many SQL variables" error.
    #[test]
    fn a_care_team_too_long_for_one_statement_replays_and_lists() {
        use crate::db::alerts::{ListFilter, insert, list};
        use crate::db::models::NewAlertRow;
        use diesel::Connection;

        let dir = tempfile::tempdir().expect("tempdir");
        let pool = migrated_pool(&dir);
        let mut conn = pool.get().expect("connection");
        let team: Vec<String> = (0..35_000).map(|n| format!("p{n:05}")).collect();
        conn.transaction(|conn| {
            for patient in &team {
                let row = CareTeamRow {
                    patient_id: patient.clone(),
                    user_id: "alice".to_owned(),
                    created_at: 0,
                };
                care_team::assign(conn, &row)?;
            }
            diesel::QueryResult::Ok(())
        })
        .expect("care team");
        let patients = [
            "p00001", "p34998", "outsider", "p20000", "p34999", "outsider",
        ];
        for (seq, patient) in (1..).zip(patients) {
            let id = format!("alert-{seq}");
            let event = NewEventRow {
                seq,
                kind: "alert",
                alert_id: &id,
                patient_id: patient,
                payload: "{}",
                created_at: 0,
                care_team_version: 0,
            };
            events::insert(&mut conn, &event).expect("event");
            let alert = NewAlertRow {
                id: &id,
                seq,
                last_seq: seq,
                patient_id: patient,
                severity: "high",
                kind: "k",
                title: "t",
                message: "",
                data: "{}",
                source: "s",
                status: "open",
                created_by: "s",
                request_id: None,
                created_at: 0,
                updated_at: 0,
            };
            insert(&mut conn, &alert).expect("alert");
        }

        let range = ReplayRange {
            after: 0,
            upto: 6,
            patients: Some(team.clone()),
            care_team_of: Some("alice".to_owned()),
        };
        let (replayed, rest) = read(&range, &mut conn, 3);
        let seqs: Vec<i64> = replayed.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 4], "the team's first three events, in order");
        let (replayed, _) = read(&rest.expect("more to read"), &mut conn, 3);
        assert_eq!(replayed.iter().map(|e| e.seq).collect::<Vec<_>>(), [5]);

        let mut filter = ListFilter {
            patients: Some(team),
            limit: 2,
            ..ListFilter::default()
        };
        let newest: Vec<i64> = list(&mut conn, &filter)
            .expect("list")
            .iter()
            .map(|a| a.seq)
            .collect();
        assert_eq!(newest, [5, 4], "newest first");
        filter.after = Some(1);
        let changed: Vec<i64> = list(&mut conn, &filter)
            .expect("list")
            .iter()
            .map(|a| a.last_seq)
            .collect();
        assert_eq!(changed, [2, 4], "oldest change first");
    }

    /// A batch stops at [`super::REPLAY_BATCH_BYTES`] of payload, whatever its count, and
    /// the next one starts right after; an event bigger than the whole budget still goes
    /// alone, so the replay moves on.
    #[test]
    fn a_replay_batch_is_bounded_in_bytes_as_well_as_in_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = migrated_pool(&dir);
        let mut conn = pool.get().expect("connection");
        let quarter = "x".repeat(super::REPLAY_BATCH_BYTES / 4);
        let whole = "x".repeat(super::REPLAY_BATCH_BYTES + 1);
        for seq in 1..=7 {
            let payload = if seq == 6 { &whole } else { &quarter };
            let row = NewEventRow {
                seq,
                kind: "alert",
                alert_id: "x",
                patient_id: "a",
                payload,
                created_at: 0,
                care_team_version: 0,
            };
            events::insert(&mut conn, &row).expect("event");
        }
        let mut range = Some(ReplayRange {
            after: 0,
            upto: 7,
            patients: None,
            care_team_of: None,
        });
        let mut batches = Vec::new();
        while let Some(next) = range {
            let (events, rest) = read(&next, &mut conn, 100);
            batches.push(events.iter().map(|e| e.seq).collect::<Vec<i64>>());
            range = rest;
        }
        assert_eq!(batches, [vec![1, 2, 3, 4], vec![5], vec![6], vec![7]]);
    }

    /// The retention pruner deleting events a replay has still to send: the replay's next
    /// batch says so (the screen is then told to reload) instead of skipping them. A
    /// deletion that stops at the replay's cursor changes nothing for it.
    #[test]
    fn a_replay_overtaken_by_the_pruner_says_so_instead_of_skipping_events() {
        use crate::db::retention;

        let dir = tempfile::tempdir().expect("tempdir");
        let pool = migrated_pool(&dir);
        let mut conn = pool.get().expect("connection");
        for seq in 1..=6 {
            // Written at second `seq` of the epoch; event 4 late (another instance's
            // clock): the pruner stops at it, never passing a kept event.
            insert_event(&mut conn, seq, if seq == 4 { 9_000 } else { seq * 1000 });
        }
        let range = ReplayRange {
            after: 1,
            upto: 6,
            patients: None,
            care_team_of: None,
        };
        let (first, rest) = read(&range, &mut conn, 2);
        assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [2, 3]);
        let rest = rest.expect("more to read");

        // Everything before second 6 is due, but event 4 is not: 1 to 3 go.
        assert_eq!(
            retention::prune_before(&mut conn, 5_500, 100).expect("prune"),
            3
        );
        assert_eq!(retention::pruned_through(&mut conn).expect("mark"), 3);
        let (next, _) = read(&rest, &mut conn, 2);
        assert_eq!(
            next.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [4, 5],
            "the cursor (3) was not passed: the replay goes on"
        );

        assert_eq!(
            retention::prune_before(&mut conn, 9_500, 1).expect("prune"),
            1
        );
        assert!(
            matches!(
                rest.read_batch(&mut conn, 2).expect("batch"),
                Batch::Pruned { oldest: Some(5) }
            ),
            "event 4 is gone, and the replay had still to send it"
        );
        assert_eq!(
            retention::prune_before(&mut conn, 9_500, 100).expect("prune"),
            2
        );
        assert_eq!(
            retention::prune_before(&mut conn, 9_500, 100).expect("prune"),
            0
        );
        let after_the_mark = ReplayRange { after: 6, ..range };
        assert!(read(&after_the_mark, &mut conn, 2).0.is_empty());
    }
}
