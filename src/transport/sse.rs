//! `GET /api/v1/alerts/stream`: authenticate → scope → register (the manager buffers
//! live events in the client's queue) → replay `(Last-Event-ID, seam]` from the log →
//! live, skipping anything already sent → heartbeats from the manager's shared tick.

use std::collections::VecDeque;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use futures_util::stream;
use prometheus::Histogram;
use tokio::sync::mpsc;

use super::frames::{scope_changed, sse_control, sse_frame};
use super::{
    Batch, ConnectionGuard, OVERTAKEN_BY_PRUNER, ReplayRange, StreamParams, connected_payload,
    last_event_id, open_subscription, reset_payload,
};
use crate::db::{self, DbPool};
use crate::error::ApiError;
use crate::hub::messages::{CloseReason, Outbound, Transport};
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::transport::frames::EncodedEvent;

/// Replay batch size.
const REPLAY_BATCH: i64 = 100;
/// Client reconnection delay announced with `retry:`.
const RETRY_MS: u32 = 3000;

struct StreamState {
    prelude: VecDeque<Bytes>,
    replay: Option<ReplayRange>,
    rx: mpsc::Receiver<Outbound>,
    last_sent: i64,
    finished: bool,
    pool: DbPool,
    metrics: Arc<Metrics>,
    /// `vigil_delivery_seconds{transport="sse"}`, looked up once.
    delivered: Histogram,
    /// The token's expiry (seconds since the epoch). The manager ends a live stream then;
    /// a replay reads the database, not the queue, so it checks this itself before every
    /// batch — a slow reader could otherwise pull the whole history on an expired token.
    expires_at: i64,
    _guard: ConnectionGuard,
}

/// The stream's last frame when its token has expired.
fn auth_expired_frame() -> Bytes {
    sse_control(
        "auth_expired",
        &serde_json::json!({"reason": "token expired; sign in again"}),
    )
}

/// Live alerts for a dashboard, resumable with `Last-Event-ID`; new clients use this, not `/ws`.
#[utoipa::path(
    get,
    path = "/api/v1/alerts/stream",
    tag = "streams",
    description = "WHATWG Server-Sent Events. Opens with `retry: 3000` and `event: connected`; then `alert` and `alert_updated` events whose `id:` is the event's sequence number, `heartbeat` events, `reset` when a Last-Event-ID cannot be honoured, and a final `auth_expired` when the token expires. Every role but service. See docs/protocol.md.",
    params(
        ("patient_id" = Option<Vec<String>>, Query, style = Form, explode, pattern = r"^\s*(\*|(?!\.\.?\s*(,|$))[A-Za-z0-9_.-]{1,64})?\s*(,\s*(\*|(?!\.\.?\s*(,|$))[A-Za-z0-9_.-]{1,64})?\s*)*$", description = "Repeatable or comma list of patient ids (1-64 of `[A-Za-z0-9_.-]`; empty items skipped); `*` (admin) for all; default: every patient in scope, following care-team changes"),
        ("role" = Option<crate::openapi::Role>, Query, description = "Seed-era clients: may only name the token's own role"),
        ("last_event_id" = Option<String>, Query, description = "For clients that cannot set headers; the header wins"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume: every missed event in scope, exactly once, in order, then live"),
    ),
    responses(
        (status = 200, description = "The event stream", content_type = "text/event-stream", body = String,
            headers(("Cache-Control" = String, description = "`no-cache`"), ("X-Accel-Buffering" = String, description = "`no`"))),
        (status = 400, description = "Unparseable query string", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 401, description = "No or bad credentials; `?token=` is refused here", body = crate::openapi::Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer realm=\"vigil\"` (RFC 6750)"))),
        (status = 403, description = "The role may not subscribe, a requested patient is out of scope, or `role` is not the token's", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid `patient_id` or `role`, or `role`, `last_event_id` or `Last-Event-ID` given twice", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 429, description = "The user already holds VIGIL_MAX_STREAMS_PER_USER open streams (SSE and WebSocket together)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The instance holds VIGIL_MAX_CONNECTIONS streams, or is shutting down", body = crate::openapi::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub async fn stream_alerts(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let params = StreamParams::parse(req.query_string())?;
    let last_event_id = last_event_id(&req, &params)?;
    let sub = open_subscription(
        &req,
        &state,
        Transport::Sse,
        &params,
        last_event_id.is_some(),
    )
    .await?;

    let mut prelude = VecDeque::new();
    let connected = connected_payload(&sub, state.config.heartbeat.as_secs());
    let mut opening = format!("retry: {RETRY_MS}\n\n");
    opening.push_str(&sse_frame(None, Some("connected"), &connected.to_string()));
    prelude.push_back(Bytes::from(opening));

    let plan = sub.resume_plan(last_event_id.as_deref(), &state.metrics);
    if let Some(data) = &plan.reset {
        let seam_id = plan.seam.to_string();
        prelude.push_back(Bytes::from(sse_frame(
            Some(&seam_id),
            Some("reset"),
            &data.to_string(),
        )));
    }

    let state_machine = StreamState {
        prelude,
        replay: plan.replay,
        rx: sub.rx,
        last_sent: plan.last_sent,
        finished: false,
        pool: state.pool.clone(),
        metrics: Arc::clone(&state.metrics),
        delivered: state.metrics.delivery_seconds.with_label_values(&["sse"]),
        expires_at: sub.principal.expires_at,
        _guard: sub.guard,
    };
    let body = stream::unfold(state_machine, next_chunk);
    let mut response = HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/event-stream"))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body);
    if req.version() == actix_web::http::Version::HTTP_10 {
        // HTTP/1.0 has no chunked encoding (RFC 9112 §7.1): a 1.0 client (or a proxy
        // that speaks 1.0 to its backends) would read the chunk sizes as events. The
        // stream is sent as it is and ends with the connection.
        response.head_mut().no_chunking(true);
        response
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(response)
}

async fn next_chunk(mut st: StreamState) -> Option<(Result<Bytes, actix_web::Error>, StreamState)> {
    if let Some(chunk) = st.prelude.pop_front() {
        return Some((Ok(chunk), st));
    }
    if st.finished {
        return None;
    }
    while let Some(range) = st.replay.take() {
        if crate::auth::token_expired(st.expires_at) {
            return auth_expired(st);
        }
        // Cut off by the manager meanwhile (the server shutting down, live events
        // overflowing the queue during a long replay): the rest of the replay only held
        // the connection open — a shutdown waited its whole grace period on one slow
        // reader (an outside audit) — and the client resumes from its last id either way.
        if st.rx.is_closed() {
            return None;
        }
        let pool = st.pool.clone();
        let upto = range.upto;
        match db::run(&pool, move |c| Ok(range.read_batch(c, REPLAY_BATCH)?)).await {
            Ok(Batch::Pruned { oldest }) => {
                // What the replay sent so far stands; the client reloads for the rest and
                // goes on live from the seam, as after a `reset` at the start.
                st.last_sent = st.last_sent.max(upto);
                let data = reset_payload(OVERTAKEN_BY_PRUNER, oldest, upto);
                let frame = sse_frame(Some(&upto.to_string()), Some("reset"), &data.to_string());
                return Some((Ok(Bytes::from(frame)), st));
            }
            Ok(Batch::Read(batch, rest)) => {
                st.replay = rest;
                st.metrics
                    .replayed_events
                    .inc_by(u64::try_from(batch.len()).unwrap_or(0));
                let mut chunk = String::new();
                for event in batch {
                    st.last_sent = st.last_sent.max(event.seq);
                    chunk.push_str(
                        std::str::from_utf8(EncodedEvent::new(event).sse()).unwrap_or_default(),
                    );
                }
                if !chunk.is_empty() {
                    return Some((Ok(Bytes::from(chunk)), st));
                }
            }
            Err(e) => {
                // Ending the stream makes the client reconnect and resume: nothing lost.
                log::warn!("replay failed, ending stream: {e}");
                return None;
            }
        }
    }
    loop {
        // A closed queue: the stream was cut off (it fell behind, or the server is
        // shutting down); it ends as a shutdown does.
        let Some(item) = st.rx.recv().await else {
            return cut_off(st);
        };
        match item {
            Outbound::Event(event) if event.seq() <= st.last_sent => continue,
            Outbound::Event(event) => {
                st.last_sent = event.seq();
                // The frame goes to the connection's write buffer as this returns.
                st.delivered
                    .observe(event.published.elapsed().as_secs_f64());
                return Some((Ok(event.sse().clone()), st));
            }
            Outbound::Heartbeat(frame) => return Some((Ok(Bytes::clone(&frame)), st)),
            Outbound::Tick => continue,
            Outbound::Scope(change) => {
                let body = serde_json::Value::Object(scope_changed(&change));
                return Some((Ok(sse_control("scope_changed", &body)), st));
            }
            Outbound::Close(CloseReason::AuthExpired) => return auth_expired(st),
            Outbound::Close(CloseReason::Shutdown) => return cut_off(st),
        }
    }
}

/// The end of a stream the server cut off: nothing more, unless its token has expired
/// meanwhile — reconnecting with it could only get a 401, and a queue that was full at
/// the expiry had no room for the `Close` that says so.
fn cut_off(st: StreamState) -> Option<(Result<Bytes, actix_web::Error>, StreamState)> {
    if crate::auth::token_expired(st.expires_at) {
        return auth_expired(st);
    }
    None
}

/// The stream's last frame: its token has expired.
fn auth_expired(mut st: StreamState) -> Option<(Result<Bytes, actix_web::Error>, StreamState)> {
    st.finished = true;
    Some((Ok(auth_expired_frame()), st))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use std::collections::VecDeque;
    use std::sync::Arc;

    use actix::Actor;
    use tokio::sync::mpsc;

    use super::{StreamState, next_chunk};
    use crate::config::Config;
    use crate::db::DbPool;
    use crate::hub::manager::{AlertConnectionManager, ManagerSettings};
    use crate::hub::messages::Outbound;
    use crate::metrics::Metrics;
    use crate::transport::{ConnectionGuard, ReplayRange};

    /// A pool on a new SQLite file.
    fn pool(dir: &tempfile::TempDir) -> DbPool {
        let url = format!("sqlite://{}", dir.path().join("v.db").display());
        let config = Config::new(&url, "0123456789abcdef0123456789abcdef");
        crate::db::pool::build_pool(&config.database).expect("pool")
    }

    /// A stream about to replay `(0, upto]` on a token expiring at `expires_at`, its
    /// queue `rx`, registered with a manager of its own.
    fn replaying(
        pool: DbPool,
        upto: i64,
        rx: mpsc::Receiver<Outbound>,
        expires_at: i64,
    ) -> StreamState {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        let manager = AlertConnectionManager::new(
            pool.clone(),
            Arc::clone(&metrics),
            ManagerSettings::quiet(),
            crate::db::events::IssuedIds::default(),
            crate::db::events::CareTeamVersionsSeen::default(),
        )
        .start();
        StreamState {
            prelude: VecDeque::new(),
            replay: Some(ReplayRange {
                after: 0,
                upto,
                patients: None,
                care_team_of: None,
            }),
            rx,
            last_sent: 0,
            finished: false,
            pool,
            metrics: Arc::clone(&metrics),
            delivered: metrics.delivery_seconds.with_label_values(&["sse"]),
            expires_at,
            _guard: ConnectionGuard::new(1, manager),
        }
    }

    /// A replay reads the database, not the queue where the manager puts the expiry: it
    /// must check the token itself, or a slow reader pulls the whole history on an
    /// expired token. (Black-box, the kernel's socket buffers take a whole test replay
    /// before any expiry, so the check is shown here.)
    #[actix_web::test]
    async fn a_replay_on_an_expired_token_ends_with_auth_expired_before_reading_anything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_tx, rx) = mpsc::channel(8);
        let expired = chrono::Utc::now().timestamp() - 1;
        let state = replaying(pool(&dir), 100, rx, expired);
        let (frame, state) = next_chunk(state).await.expect("a last frame");
        let frame = frame.expect("bytes");
        assert!(
            String::from_utf8_lossy(&frame).starts_with("event: auth_expired\n"),
            "{frame:?}"
        );
        assert!(next_chunk(state).await.is_none(), "and nothing after it");
    }

    /// A live stream the server shuts down ends without a frame, unless its token has
    /// expired by then: reconnecting with it could only get a 401.
    #[actix_web::test]
    async fn a_shutdown_after_the_token_expired_ends_with_auth_expired() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (expires_at, said) in [
            (chrono::Utc::now().timestamp() - 1, true),
            (chrono::Utc::now().timestamp() + 3600, false),
        ] {
            let (tx, rx) = mpsc::channel(8);
            let mut state = replaying(pool(&dir), 0, rx, expires_at);
            state.replay = None;
            tx.try_send(Outbound::Close(crate::hub::messages::CloseReason::Shutdown))
                .expect("queued");
            let last = next_chunk(state).await;
            assert_eq!(last.is_some(), said, "expired: {said}");
            if let Some((frame, _)) = last {
                let frame = frame.expect("bytes");
                assert!(
                    String::from_utf8_lossy(&frame).starts_with("event: auth_expired\n"),
                    "{frame:?}"
                );
            }
        }
    }

    /// A stream the manager has cut off (shutdown, overflow) stops its replay at the next
    /// batch rather than reading the rest of the log for a client that will resume.
    #[actix_web::test]
    async fn a_replay_cut_off_by_the_manager_stops_at_the_next_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = pool(&dir);
        {
            let mut conn = pool.get().expect("connection");
            crate::db::migrate::run_pending(&mut conn).expect("migrations");
            let row = crate::db::models::NewEventRow {
                seq: 1,
                kind: "alert",
                alert_id: "x",
                patient_id: "a",
                payload: "{}",
                created_at: 0,
                care_team_version: 0,
            };
            crate::db::events::insert(&mut conn, &row).expect("event");
        }
        let later = chrono::Utc::now().timestamp() + 3600;
        let (registered, rx) = mpsc::channel(8);
        let (frame, _) = next_chunk(replaying(pool.clone(), 1, rx, later))
            .await
            .expect("the replay, while registered");
        assert!(
            String::from_utf8_lossy(&frame.expect("bytes")).contains("id: 1\n"),
            "the event is replayed"
        );
        drop(registered);
        let (cut_off, rx) = mpsc::channel(8);
        drop(cut_off);
        assert!(
            next_chunk(replaying(pool, 1, rx, later)).await.is_none(),
            "cut off: no replay"
        );
    }

    /// A replay the retention pruner overtakes (events it had still to send deleted
    /// while it ran) ends in a `reset` naming the oldest id held, then goes live from
    /// its seam: never on past the gap as if nothing were missing.
    #[actix_web::test]
    async fn a_replay_overtaken_by_the_pruner_ends_in_a_reset_then_goes_live() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = crate::transport::test_support::migrated_pool(&dir);
        {
            let mut conn = pool.get().expect("connection");
            for seq in 1..=3 {
                crate::transport::test_support::insert_event(&mut conn, seq, seq);
            }
            // Events 1 and 2 pruned after the stream decided to replay from 0.
            crate::db::retention::prune_before(&mut conn, 3, 100).expect("prune");
        }
        let later = chrono::Utc::now().timestamp() + 3600;
        let (tx, rx) = mpsc::channel(8);
        let (frame, state) = next_chunk(replaying(pool, 3, rx, later))
            .await
            .expect("a frame");
        let frame = String::from_utf8_lossy(&frame.expect("bytes")).into_owned();
        assert!(frame.starts_with("id: 3\nevent: reset\n"), "{frame:?}");
        assert!(frame.contains(r#""oldest_id":3"#), "{frame:?}");
        assert!(
            frame.contains("fell behind the retained history"),
            "{frame:?}"
        );
        assert_eq!(state.last_sent, 3, "live events up to the seam are skipped");
        assert!(state.replay.is_none(), "nothing more is replayed");
        drop(tx);
    }
}
