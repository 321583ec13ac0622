//! Legacy WebSocket transport (`GET /ws`), phase-gated by `VIGIL_WS_MODE`. Everything
//! deprecated lives in this module so phase 3 can delete it. The session actor writes
//! the manager's events, answers `subscribe` and in-socket `ack` (through the same
//! service as HTTP), pings, and closes sessions silent for too long. A bad frame gets
//! an `error` frame; the session stays up. A dashboard that reconnects with
//! `last_event_id` is replayed what it missed first, as SSE clients are.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use actix_web_actors::ws;
use prometheus::Histogram;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::{
    ConnectionGuard, ReplayRange, StreamParams, connected_payload, last_event_id,
    open_subscription, reset_payload,
};
use crate::auth::Principal;
use crate::config::WsMode;
use crate::db;
use crate::domain::AckStatus;
use crate::domain::alert::parse_ack_body;
use crate::error::ApiError;
use crate::hub::messages::{CloseReason, Outbound, Resubscribe, Transport};
use crate::scope::Requested;
use crate::service::acks::{AckRequest, Acked, acknowledge};
use crate::service::scope::allowed_in;
use crate::state::AppState;
use crate::transport::frames::{EncodedEvent, scope_changed};
use crate::transport::ws_fragments::{Assembled, Fragments};

/// Largest text frame the protocol accepts; larger ones get an `error` frame.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Largest frame the codec reads at all (beyond it the connection is closed, 1009).
const CODEC_MAX_FRAME: usize = 1024 * 1024;
/// Where dashboard owners read about the move to SSE.
pub const MIGRATION_GUIDE: &str = "/docs/migration";

/// The `/ws` endpoint.
#[utoipa::path(
    get,
    path = "/ws",
    tag = "streams",
    description = "Legacy WebSocket (JSON text frames; see docs/protocol.md). Phase-gated by VIGIL_WS_MODE: `deprecated` adds `Deprecation`/`Sunset` headers and a `deprecation` frame, `off` answers 410.",
    params(
        ("patient_id" = Option<Vec<String>>, Query, style = Form, explode, pattern = r"^\s*(\*|(?!\.\.?\s*(,|$))[A-Za-z0-9_.-]{1,64})?\s*(,\s*(\*|(?!\.\.?\s*(,|$))[A-Za-z0-9_.-]{1,64})?\s*)*$", description = "Repeatable or comma list of patient ids (1-64 of `[A-Za-z0-9_.-]`; empty items skipped); `*` (admin) for all"),
        ("role" = Option<crate::openapi::Role>, Query, description = "May only name the token's own role"),
        ("last_event_id" = Option<String>, Query, description = "Resume: the missed events in scope (at most VIGIL_WS_REPLAY_MAX_KIB, 1 MiB, of frames, else a `reset` frame) as `alert`/`alert_updated` frames, in order, then live; the header wins"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume, for clients that can set headers"),
    ),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol",
            headers(
                ("Deprecation" = String, description = "`@` and the Unix time of `VIGIL_WS_DEPRECATED_SINCE` (RFC 9745), only while `VIGIL_WS_MODE=deprecated`"),
                ("Sunset" = String, description = "`VIGIL_WS_SUNSET` as an HTTP date, only while deprecated"),
                ("Link" = String, description = "The migration guide (`rel=\"deprecation\"`) and the SSE stream (`rel=\"successor-version\"`), only while deprecated"),
            )),
        (status = 400, description = "Not a WebSocket handshake, or an unparseable query", body = crate::openapi::Problem, content_type = "application/problem+json"),
        crate::openapi::Unauthorized,
        (status = 403, description = "Out of scope, or a cookie handshake without an allowed Origin", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 410, description = "VIGIL_WS_MODE=off: use the SSE stream", body = crate::openapi::Problem, content_type = "application/problem+json", headers(("Link" = String, description = "The migration guide and the successor"))),
        (status = 422, description = "Invalid `patient_id` or `role`, or `role`, `token`, `last_event_id` or `Last-Event-ID` given twice", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 426, description = "A `Sec-WebSocket-Version` other than 13 (RFC 6455 §4.4)", body = crate::openapi::Problem, content_type = "application/problem+json", headers(("Sec-WebSocket-Version" = String, description = "`13`, the version this server speaks"), ("Upgrade" = String, description = "`websocket`"))),
        (status = 429, description = "The user already holds VIGIL_MAX_STREAMS_PER_USER open streams", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "The instance holds VIGIL_MAX_CONNECTIONS streams, or is shutting down", body = crate::openapi::Problem, content_type = "application/problem+json", headers(("Retry-After" = u64, description = "Seconds to wait before retrying"))),
    ),
    security(("bearer" = []), ("cookie" = []), ("query_token" = []))
)]
pub async fn ws_endpoint(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if state.config.ws_mode == WsMode::Off {
        let mut response = ApiError::Gone(format!(
            "the WebSocket transport has been retired; use the SSE stream /api/v1/alerts/stream (guide: {MIGRATION_GUIDE})"
        ))
        .error_response();
        response.headers_mut().insert(
            header::LINK,
            HeaderValue::from_static("</docs/migration>; rel=\"help\", </api/v1/alerts/stream>; rel=\"successor-version\""),
        );
        return Ok(response);
    }
    check_version(&req)?;
    ws::handshake(&req)
        .map_err(|e| ApiError::BadRequest(format!("not a WebSocket handshake: {e}")))?;
    check_handshake_form(&req)?;
    let params = StreamParams::parse(req.query_string())?;
    let last_event_id = last_event_id(&req, &params)?;
    let sub = open_subscription(
        &req,
        &state,
        Transport::Ws,
        &params,
        last_event_id.is_some(),
    )
    .await?;
    let deprecated = state.config.ws_mode == WsMode::Deprecated;
    // A WebSocket's heartbeat is the server's ping, not the SSE heartbeat event.
    let mut hello = vec![typed_frame(
        "connected",
        None,
        connected_payload(&sub, state.config.ws_ping.as_secs()),
    )];
    if deprecated {
        state.metrics.ws_deprecated_connections.inc();
        hello.push(
            json!({
                "type": "deprecation",
                "message": "The WebSocket alert feed is deprecated; move to Server-Sent Events.",
                "sunset": state.config.ws_sunset.to_string(),
                "migrate_to": "/api/v1/alerts/stream",
            })
            .to_string(),
        );
    }
    let plan = sub.resume_plan(last_event_id.as_deref(), &state.metrics);
    if let Some(data) = plan.reset {
        hello.push(reset_frame(data, plan.seam));
    }
    let replay = plan.replay.map(|range| PendingReplay {
        range,
        oldest: sub.log.oldest,
        max_bytes: state.config.ws_replay_max_bytes.get(),
    });
    let session = WsSession {
        guard: Some(sub.guard),
        conn_id: sub.connected.conn_id,
        principal: sub.principal,
        state: state.clone(),
        rx: Some(sub.rx),
        hello,
        replay,
        last_sent: plan.last_sent,
        last_heard: Instant::now(),
        last_ping: Instant::now(),
        request_id: crate::request_id::of(&req),
        delivered: state.metrics.delivery_seconds.with_label_values(&["ws"]),
        subscribing: false,
        next_subscribe: None,
        named: None,
        frame_window: (Instant::now(), 0),
        fragments: Fragments::default(),
    };
    let mut response = ws::WsResponseBuilder::new(session, &req, frames_then_end(payload))
        .frame_size(CODEC_MAX_FRAME)
        .start()
        .map_err(|e| ApiError::BadRequest(format!("WebSocket handshake failed: {e}")))?;
    if deprecated {
        let midnight = |date: chrono::NaiveDate| date.and_time(chrono::NaiveTime::MIN).and_utc();
        let sunset = midnight(state.config.ws_sunset)
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        // RFC 9745: a structured-field date, `@` and Unix seconds (`true` was a draft's).
        let deprecation = format!(
            "@{}",
            midnight(state.config.ws_deprecated_since).timestamp()
        );
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&deprecation) {
            headers.insert(header::HeaderName::from_static("deprecation"), value);
        }
        if let Ok(value) = HeaderValue::from_str(&sunset) {
            headers.insert(header::HeaderName::from_static("sunset"), value);
        }
        headers.insert(
            header::LINK,
            HeaderValue::from_static("</docs/migration>; rel=\"deprecation\", </api/v1/alerts/stream>; rel=\"successor-version\""),
        );
    }
    Ok(response)
}

/// The connection's bytes, ending where the connection does. actix-web-actors turns a
/// read error (the client's FIN arrives as "payload reached EOF": half-closed clients
/// are treated as gone) into a protocol error at once, dropping the frames it had read
/// but not yet decoded: an `ack` sent just before a dashboard's process exited was lost
/// about half the time. Ended instead, the stream decodes and hands over every complete
/// frame first, then ends the session.
fn frames_then_end(
    payload: web::Payload,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, actix_web::error::PayloadError>> + 'static
{
    use futures_util::StreamExt;
    payload.scan((), |(), chunk| {
        std::future::ready(match chunk {
            Ok(bytes) => Some(Ok(bytes)),
            Err(e) => {
                log::debug!("websocket connection ended: {e}");
                None
            }
        })
    })
}

/// What actix's handshake check lets through and RFC 6455 §4.2.1 refuses: a request
/// older than HTTP/1.1, and a `Sec-WebSocket-Key` that is not the base64 of 16 bytes
/// (24 characters, the last two `==`). actix checks only that a key is there.
fn check_handshake_form(req: &HttpRequest) -> Result<(), ApiError> {
    if req.version() < actix_web::http::Version::HTTP_11 {
        return Err(ApiError::BadRequest(
            "not a WebSocket handshake: it needs HTTP/1.1 or later (RFC 6455 §4.1)".to_owned(),
        ));
    }
    let key = req
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let base64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    let well_formed = key.len() == 24 && key.ends_with(b"==") && key[..22].iter().all(base64);
    if !well_formed {
        return Err(ApiError::BadRequest(
            "not a WebSocket handshake: Sec-WebSocket-Key must be 16 random bytes in base64 \
             (24 characters; RFC 6455 §4.1)"
                .to_owned(),
        ));
    }
    Ok(())
}

/// The one WebSocket version spoken here (RFC 6455).
pub const WS_VERSION: &str = "13";

/// Refuses a handshake offering a `Sec-WebSocket-Version` other than 13 with 426 and
/// `Sec-WebSocket-Version: 13` (RFC 6455 §4.2.2, §4.4), so the client can retry with a
/// version it shares. actix's own check accepts the hybi drafts 7 and 8 and refuses the
/// rest with a bare 400, which tells the client nothing. A missing header is left to
/// the handshake (400: not a WebSocket handshake).
fn check_version(req: &HttpRequest) -> Result<(), ApiError> {
    let offered: Vec<&str> = req
        .headers()
        .get_all(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.to_str().map(str::trim).unwrap_or("?"))
        .collect();
    match offered.as_slice() {
        [] | [WS_VERSION] => Ok(()),
        _ => Err(ApiError::UpgradeRequired(format!(
            "unsupported Sec-WebSocket-Version {}; this server speaks version {WS_VERSION} (RFC 6455)",
            offered.join(", ")
        ))),
    }
}

/// The missed events a resuming session sends before it goes live: `(after, upto]` in
/// its scope at connect time.
struct PendingReplay {
    range: ReplayRange,
    oldest: Option<i64>,
    /// `VIGIL_WS_REPLAY_MAX_KIB` in bytes. The session actor writes into a buffer with no
    /// backpressure (unlike the SSE body, read as the socket drains), so a longer gap gets
    /// a `reset` and the dashboard reloads through `GET /api/v1/alerts`: never a partial
    /// replay, and never more than this held for a dashboard that does not read.
    max_bytes: usize,
}

/// Rows read per query of a WebSocket replay: with alerts of up to ~18 KiB, one batch
/// stays well under a MiB however large the budget.
const WS_REPLAY_BATCH: i64 = 50;

/// One missed event, encoded: its `seq`, its patient and the frame.
type ReplayFrame = (i64, String, bytestring::ByteString);

/// Reads and encodes `range` as WebSocket frames; `None` as soon as the frames pass
/// `max_bytes`.
fn read_replay(
    conn: &mut db::AnyConnection,
    range: ReplayRange,
    max_bytes: usize,
) -> diesel::QueryResult<Option<Vec<ReplayFrame>>> {
    let mut frames = Vec::new();
    let mut bytes = 0usize;
    let mut next = Some(range);
    while let Some(range) = next {
        let (events, rest) = range.read_batch(conn, WS_REPLAY_BATCH)?;
        for event in events {
            let (seq, patient) = (event.seq, event.patient_id.clone());
            let frame = EncodedEvent::new(event).ws().clone();
            bytes += frame.len();
            if bytes > max_bytes {
                return Ok(None);
            }
            frames.push((seq, patient, frame));
        }
        next = rest;
    }
    Ok(Some(frames))
}

/// The `reset` frame: the SSE `event: reset` as a WebSocket frame, `id` the head the
/// client continues from.
fn reset_frame(payload: Value, head: i64) -> String {
    typed_frame("reset", Some(head), payload)
}

/// A frame built from an SSE event's data: `type` first and then `id`, as DESIGN.md
/// writes every frame (`{"type":"connected",…}`), so a dashboard reading frames by eye
/// or matching their start sees the kind first.
fn typed_frame(kind: &str, id: Option<i64>, payload: Value) -> String {
    let mut frame = serde_json::Map::new();
    frame.insert("type".to_owned(), kind.into());
    if let Some(id) = id {
        frame.insert("id".to_owned(), id.into());
    }
    if let Value::Object(fields) = payload {
        frame.extend(fields);
    }
    Value::Object(frame).to_string()
}

/// One legacy dashboard connection.
pub struct WsSession {
    guard: Option<ConnectionGuard>,
    conn_id: u64,
    principal: Principal,
    state: web::Data<AppState>,
    rx: Option<mpsc::Receiver<Outbound>>,
    hello: Vec<String>,
    /// What a resume still has to send before the live queue is read.
    replay: Option<PendingReplay>,
    /// The newest event sent; live events at or below it were replayed already.
    last_sent: i64,
    last_heard: Instant,
    /// When the last ping went out (the shared tick sends the next one when it is due).
    last_ping: Instant,
    /// `X-Request-Id` of the handshake, logged with in-socket acknowledgments.
    request_id: Option<String>,
    /// `vigil_delivery_seconds{transport="ws"}`, looked up once.
    delivered: Histogram,
    /// A `subscribe` is being applied (its care-team read and the manager's answer).
    subscribing: bool,
    /// The `subscribe` that arrived meanwhile, applied next; any earlier one waiting is
    /// answered `superseded` (a subscribe replaces the subscription, so only the last
    /// counts). One at a time per session: a token flooding `subscribe` frames had every
    /// one read the database and queue for the manager, and alerts for everyone waited
    /// seconds behind them.
    next_subscribe: Option<Requested>,
    /// The patients the last applied `subscribe` named (`None`: it named none, and the
    /// manager's scope alone decides). After `subscribed` a dashboard takes every frame to
    /// be for these patients, but events for the previous set can still be on their way:
    /// queued before the manager applied the change, or in a resume's replay read before
    /// it. Those are not sent.
    named: Option<BTreeSet<String>>,
    /// The current one-second window of [`MAX_FRAMES_PER_SECOND`]: when it began, and the
    /// frames received in it.
    frame_window: (Instant, u32),
    /// A message arriving in fragments, joined before it is read.
    fragments: Fragments,
}

/// Frames a dashboard may send in one second before its session is closed (1008). A
/// person acknowledges a few alerts a minute; a client sending more is broken or hostile,
/// and every frame it sends is work on the worker thread its connection shares with
/// other clients' requests and streams: one session flooding `ack` frames delayed alerts
/// for everyone on that thread by seconds.
pub const MAX_FRAMES_PER_SECOND: u32 = 100;

/// A client text frame that [`parse_client_frame`] accepted: its `type` is known. Its
/// other fields are checked when it is handled (a bad one gets an `error` frame then).
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// `{"type":"subscribe","patient_ids":[…]}` (the whole frame).
    Subscribe(Value),
    /// `{"type":"ack","alert_id":"…",…}` (the whole frame).
    Ack(Value),
    /// `{"type":"ping"}`, answered with `{"type":"pong"}`.
    Ping,
}

impl ClientFrame {
    /// The `type` label counted in `vigil_ws_frames_total`.
    pub fn label(&self) -> &'static str {
        match self {
            ClientFrame::Subscribe(_) => "subscribe",
            ClientFrame::Ack(_) => "ack",
            ClientFrame::Ping => "ping",
        }
    }
}

/// The refusal of text over [`MAX_FRAME_BYTES`], in one frame or in fragments (`what`
/// says which: "frames", "messages").
fn too_large(what: &str) -> FrameRejection {
    FrameRejection {
        label: "oversize",
        error_frame: error_frame(
            "too_large",
            &format!("{what} are limited to {MAX_FRAME_BYTES} bytes"),
        ),
    }
}

/// A client text frame that [`parse_client_frame`] refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameRejection {
    /// The `type` label counted in `vigil_ws_frames_total` (`oversize`, `malformed`, `unknown`).
    pub label: &'static str,
    /// The JSON `{"type":"error","code":…,"message":…}` frame the session answers with.
    pub error_frame: String,
}

/// Parses one client text frame of the legacy protocol. Pure and total: any text gives
/// either a [`ClientFrame`] or the `error` frame to answer with, never a panic
/// (`tests/properties.rs` checks this on arbitrary input).
pub fn parse_client_frame(text: &str) -> Result<ClientFrame, FrameRejection> {
    let reject = |label, code: &str, message: &str| FrameRejection {
        label,
        error_frame: error_frame(code, message),
    };
    if text.len() > MAX_FRAME_BYTES {
        return Err(too_large("frames"));
    }
    let value = crate::strict_json::parse(text.as_bytes()).map_err(|e| {
        // Only a repeated key is a data error here; say which. Syntax errors stay generic.
        let message = if e.is_data() {
            format!("the frame is ambiguous JSON: {e}")
        } else {
            "the frame is not valid JSON".to_owned()
        };
        reject("malformed", "bad_json", &message)
    })?;
    let kind = value
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    match kind.as_str() {
        "subscribe" => Ok(ClientFrame::Subscribe(value)),
        "ack" => Ok(ClientFrame::Ack(value)),
        "ping" => Ok(ClientFrame::Ping),
        "" => Err(reject(
            "unknown",
            "invalid",
            "every frame needs a string `type`",
        )),
        other => Err(reject(
            "unknown",
            "unknown_type",
            &format!("unknown frame type `{other}`; expected subscribe, ack or ping"),
        )),
    }
}

fn error_frame(code: &str, message: &str) -> String {
    json!({"type": "error", "code": code, "message": message}).to_string()
}

impl WsSession {
    /// Starts reading the manager's queue (events that arrived meanwhile wait in it).
    fn go_live(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if let Some(mut rx) = self.rx.take() {
            ctx.add_stream(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        }
    }

    /// Sends the missed events, then goes live. They are read in small batches and
    /// encoded until the byte budget runs out, so a longer gap is known (and answered
    /// with `reset`) before anything is sent, and no more than the budget is ever held.
    fn replay_then_go_live(&mut self, plan: PendingReplay, ctx: &mut ws::WebsocketContext<Self>) {
        let pool = self.state.pool.clone();
        let PendingReplay {
            range,
            oldest,
            max_bytes,
        } = plan;
        let upto = range.upto;
        let load =
            async move { db::run(&pool, move |c| Ok(read_replay(c, range, max_bytes)?)).await };
        ctx.spawn(load.into_actor(self).map(move |result, act, ctx| {
            match result {
                Ok(Some(frames)) => {
                    let mut sent = 0u64;
                    for (seq, patient, frame) in frames {
                        act.last_sent = act.last_sent.max(seq);
                        if act.wants(&patient) {
                            ctx.text(frame);
                            sent += 1;
                        }
                    }
                    act.state.metrics.replayed_events.inc_by(sent);
                }
                Ok(None) => {
                    let reason = format!(
                        "the missed events exceed the {} KiB a WebSocket resume replays (VIGIL_WS_REPLAY_MAX_KIB); reload",
                        max_bytes / 1024
                    );
                    ctx.text(reset_frame(reset_payload(&reason, oldest, upto), upto));
                    act.last_sent = act.last_sent.max(upto);
                }
                Err(e) => {
                    // Closing makes the dashboard reconnect and resume: nothing lost.
                    log::warn!("replay failed, closing connection_id={}: {e}", act.conn_id);
                    end_session(
                        ctx,
                        Some(error_frame(
                            "unavailable",
                            "the missed events could not be read; reconnect with the same last_event_id",
                        )),
                        ws::CloseCode::Again,
                        "replay failed",
                    );
                    return;
                }
            }
            act.go_live(ctx);
        }));
    }

    /// One fragment of a message sent in pieces; the message is read once it is whole.
    fn on_fragment(&mut self, item: actix_http::ws::Item, ctx: &mut ws::WebsocketContext<Self>) {
        if matches!(
            item,
            actix_http::ws::Item::FirstText(_) | actix_http::ws::Item::FirstBinary(_)
        ) {
            // Which dashboards fragment their messages, for the migration's record.
            self.count("fragment");
        }
        match self.fragments.push(item) {
            Assembled::Pending => {}
            Assembled::Text(text) => self.on_text(&text, ctx),
            Assembled::Binary => self.on_binary(ctx),
            Assembled::Oversize => self.refuse(too_large("messages"), ctx),
            Assembled::NotUtf8 => self.fragment_error(
                ctx,
                "the message is not valid utf-8 text",
                ws::CloseCode::Invalid,
            ),
            // The codec refuses a fragment out of order before it gets here.
            Assembled::Stray => self.fragment_error(
                ctx,
                "a continuation frame with no message begun",
                ws::CloseCode::Protocol,
            ),
        }
    }

    /// A fragmented message that breaks the protocol ends the session, as a single
    /// frame that does would (see `close_code_for`).
    fn fragment_error(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        what: &str,
        code: ws::CloseCode,
    ) {
        log::info!(
            "websocket protocol error connection_id={}: {what}",
            self.conn_id
        );
        end_session(
            ctx,
            Some(error_frame("protocol", &format!("protocol error: {what}"))),
            code,
            "protocol error",
        );
    }

    /// A refused frame: counted, and answered with its `error` frame.
    fn refuse(&mut self, rejection: FrameRejection, ctx: &mut ws::WebsocketContext<Self>) {
        self.count(rejection.label);
        ctx.text(rejection.error_frame);
    }

    fn on_binary(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        self.count("binary");
        ctx.text(error_frame(
            "unsupported",
            "binary frames are not supported; send JSON text frames",
        ));
    }

    fn on_text(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        match parse_client_frame(text) {
            Ok(frame) => {
                self.count(frame.label());
                match frame {
                    ClientFrame::Subscribe(value) => self.on_subscribe(&value, ctx),
                    ClientFrame::Ack(value) => self.on_ack(&value, ctx),
                    ClientFrame::Ping => ctx.text(json!({"type": "pong"}).to_string()),
                }
            }
            Err(rejection) => self.refuse(rejection, ctx),
        }
    }

    /// Whether an event for `patient` may follow the last `subscribed` (see `named`).
    fn wants(&self, patient: &str) -> bool {
        self.named
            .as_ref()
            .is_none_or(|named| named.contains(patient))
    }

    fn count(&self, kind: &str) {
        self.state
            .metrics
            .ws_frames
            .with_label_values(&[kind])
            .inc();
    }

    fn on_subscribe(&mut self, value: &Value, ctx: &mut ws::WebsocketContext<Self>) {
        let ids: Option<Vec<&str>> = value
            .get("patient_ids")
            .and_then(Value::as_array)
            .and_then(|items| items.iter().map(Value::as_str).collect());
        let Some(ids) = ids else {
            ctx.text(error_frame(
                "invalid",
                "`patient_ids` must be an array of strings",
            ));
            return;
        };
        // As strict as `ack` (and the HTTP bodies): a misspelt field is not dropped, and
        // each element is one patient id — the query's comma lists are not a frame's.
        if let Some(extra) = value.as_object().and_then(|o| {
            o.keys()
                .find(|k| !matches!(k.as_str(), "type" | "patient_ids"))
        }) {
            ctx.text(error_frame(
                "invalid",
                &format!("unknown field `{extra}`: a subscribe frame has `type` and `patient_ids`"),
            ));
            return;
        }
        // A blank element would be dropped as an empty query value is, and `[""]` would
        // then widen the subscription to every patient in scope.
        if ids
            .iter()
            .any(|id| id.contains(',') || id.trim().is_empty())
        {
            ctx.text(error_frame(
                "invalid",
                "each `patient_ids` element is one patient id (not blank, no commas); `[]` means every patient in scope",
            ));
            return;
        }
        let requested = match Requested::parse(ids) {
            Ok(r) => r,
            Err(e) => {
                ctx.text(error_frame(e.code(), &e.client_detail()));
                return;
            }
        };
        if self.subscribing {
            if self.next_subscribe.replace(requested).is_some() {
                ctx.text(error_frame(
                    "superseded",
                    "a later subscribe replaced this one before it was applied",
                ));
            }
            return;
        }
        self.apply_subscribe(requested, ctx);
    }

    /// Checks `requested` against a fresh read of the caller's scope and has the manager
    /// apply it; then applies the subscribe that arrived meanwhile, if any.
    fn apply_subscribe(&mut self, requested: Requested, ctx: &mut ws::WebsocketContext<Self>) {
        self.subscribing = true;
        let state = self.state.clone();
        let principal = self.principal.clone();
        let conn_id = self.conn_id;
        let named = match &requested {
            Requested::Patients(patients) => Some(patients.clone()),
            Requested::Everything | Requested::Wildcard => None,
        };
        // Until the answer, the events of both sets pass: the manager may already be
        // sending the new set's while the old set's are still queued.
        let previous = self.named.clone();
        self.named = match (&previous, &named) {
            (Some(old), Some(new)) => Some(old.union(new).cloned().collect()),
            _ => None,
        };
        let work = async move {
            let who = principal.clone();
            let allowed_at = Instant::now();
            let allowed = db::run(&state.pool, move |c| Ok(allowed_in(c, &who)?)).await?;
            requested.authorize(principal.role, &allowed)?;
            state
                .manager
                .send(Resubscribe {
                    conn_id,
                    requested,
                    allowed,
                    allowed_at,
                })
                .await
                .map_err(|_| ApiError::ManagerUnavailable)
        };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| {
            match result {
                Ok(patients) => {
                    act.named = named;
                    let patients = patients.unwrap_or_else(|| vec!["*".to_owned()]);
                    ctx.text(json!({"type": "subscribed", "patient_ids": patients}).to_string());
                }
                Err(e) => {
                    act.named = previous;
                    ctx.text(error_frame(e.code(), &e.client_detail()));
                }
            }
            act.subscribing = false;
            if let Some(next) = act.next_subscribe.take() {
                act.apply_subscribe(next, ctx);
            }
        }));
    }

    fn on_ack(&mut self, value: &Value, ctx: &mut ws::WebsocketContext<Self>) {
        let alert_id = value
            .get("alert_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        if alert_id.is_empty() {
            ctx.text(error_frame("invalid", "`alert_id` is required"));
            return;
        }
        let mut body = value.clone();
        if let Some(obj) = body.as_object_mut() {
            obj.remove("type");
            obj.remove("alert_id");
        }
        if let Err(e) = self.state.write_limiter.check(&self.principal) {
            ctx.text(ack_failure(&alert_id, &e));
            return;
        }
        let (status, note): (AckStatus, Option<String>) = match parse_ack_body(&body) {
            Ok(parsed) => parsed,
            Err(e) => {
                ctx.text(ack_failure(&alert_id, &e));
                return;
            }
        };
        let state = self.state.clone();
        let principal = self.principal.clone();
        let request = AckRequest {
            alert_id: alert_id.clone(),
            status,
            note,
            expected_patient: None,
            request_id: self.request_id.clone(),
            idempotency_key: None,
        };
        // The acknowledgment runs as a task of its own, not on the session: a dashboard
        // that sends `ack` and closes at once (`ws.send(ack); ws.close()`), or whose
        // session ends on a protocol error or a dropped connection right after, stopped
        // the actor and, with it, every future spawned on it — the ack was never stored.
        // The session only waits for the answer; if it is gone, nobody is told, but the
        // ack is stored and broadcast all the same.
        let conn_id = self.conn_id;
        let task = actix_web::rt::spawn(async move {
            let result = acknowledge(&state, &principal, request).await;
            if let Err(e) = &result {
                log::debug!("in-socket ack refused connection_id={conn_id}: {e}");
            }
            result
        });
        ctx.spawn(
            actix::fut::wrap_future::<_, Self>(task).map(move |joined, _, ctx| {
                let result = joined.unwrap_or_else(|e| {
                    log::error!("in-socket ack task failed connection_id={conn_id}: {e}");
                    Err(ApiError::Internal(format!("acknowledgment task failed: {e}")))
                });
                match result {
                    Ok(Acked::Recorded(outcome)) => ctx.text(json!({"type": "ack_result", "alert_id": alert_id, "ok": true, "alert": outcome.alert}).to_string()),
                    // Not sent without a key (the in-socket ack has none); said all the same.
                    Ok(Acked::Replayed(answer)) => {
                        let alert = serde_json::from_str::<Value>(&answer)
                            .ok()
                            .and_then(|mut answer| answer.get_mut("alert").map(Value::take))
                            .unwrap_or(Value::Null);
                        ctx.text(json!({"type": "ack_result", "alert_id": alert_id, "ok": true, "alert": alert}).to_string());
                    }
                    Err(e) => ctx.text(ack_failure(&alert_id, &e)),
                }
            }),
        );
    }
}

fn ack_failure(alert_id: &str, e: &ApiError) -> String {
    json!({
        "type": "ack_result",
        "alert_id": alert_id,
        "ok": false,
        "status": e.status_code().as_u16(),
        "code": e.code(),
        "message": e.client_detail(),
    })
    .to_string()
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        for frame in std::mem::take(&mut self.hello) {
            ctx.text(frame);
        }
        match self.replay.take() {
            Some(plan) => self.replay_then_go_live(plan, ctx),
            None => self.go_live(ctx),
        }
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        self.guard.take();
        Running::Stop
    }
}

impl WsSession {
    /// Counts a received frame; `false` once the session has sent more than
    /// [`MAX_FRAMES_PER_SECOND`] in the current second.
    fn within_frame_budget(&mut self, now: Instant) -> bool {
        let (started, count) = &mut self.frame_window;
        if now.duration_since(*started) >= Duration::from_secs(1) {
            *started = now;
            *count = 0;
        }
        *count = count.saturating_add(1);
        *count <= MAX_FRAMES_PER_SECOND
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        let now = Instant::now();
        self.last_heard = now;
        if !self.within_frame_budget(now) {
            // Closed at the first frame over; the rest that were already read are dropped.
            if self.frame_window.1 == MAX_FRAMES_PER_SECOND + 1 {
                log::info!(
                    "websocket session sent more than {MAX_FRAMES_PER_SECOND} frames in a second, closing connection_id={}",
                    self.conn_id
                );
                self.count("flood");
                end_session(
                    ctx,
                    Some(error_frame(
                        "too_many_frames",
                        &format!(
                            "more than {MAX_FRAMES_PER_SECOND} frames in a second; reconnect and send fewer"
                        ),
                    )),
                    ws::CloseCode::Policy,
                    "too many frames",
                );
            }
            return;
        }
        match msg {
            Ok(ws::Message::Text(text)) => self.on_text(&text, ctx),
            Ok(ws::Message::Binary(_)) => self.on_binary(ctx),
            Ok(ws::Message::Continuation(item)) => self.on_fragment(item, ctx),
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Pong(_)) | Ok(ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Err(e) => {
                log::info!(
                    "websocket protocol error connection_id={}: {e}",
                    self.conn_id
                );
                end_session(
                    ctx,
                    Some(error_frame("protocol", &format!("protocol error: {e}"))),
                    close_code_for(&e),
                    "protocol error",
                );
            }
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

/// Ends a session: its last `error` frame when there is something to tell the dashboard,
/// then the close frame (`code`, `why`).
fn end_session(
    ctx: &mut ws::WebsocketContext<WsSession>,
    last_frame: Option<String>,
    code: ws::CloseCode,
    why: &str,
) {
    if let Some(frame) = last_frame {
        ctx.text(frame);
    }
    ctx.close(Some(ws::CloseReason {
        code,
        description: Some(why.to_owned()),
    }));
    ctx.stop();
}

/// How often the manager ticks each WebSocket session (its ping and silence checks): a quarter
/// of the silence timeout, between 250 ms and 5 s, so a silent session is closed at most
/// that long after its timeout and a ping goes out at most that long after it is due.
pub fn tick_period(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(250), Duration::from_secs(5))
}

impl WsSession {
    /// The shared tick (one manager timer for every session, none per session): ping if
    /// one is due, close if the dashboard has been silent past the timeout.
    fn on_tick(&mut self, ctx: &mut ws::WebsocketContext<Self>) {
        if self.last_heard.elapsed() > self.state.config.ws_timeout {
            log::info!(
                "websocket silent too long, closing connection_id={}",
                self.conn_id
            );
            end_session(ctx, None, ws::CloseCode::Policy, "no traffic for too long");
            return;
        }
        if self.last_ping.elapsed() >= self.state.config.ws_ping {
            self.last_ping = Instant::now();
            ctx.ping(b"vigil");
        }
    }
}

/// The close code RFC 6455 gives a broken frame: 1009 for one too big to read, 1007 for
/// text that is not UTF-8, 1002 for the rest. actix-web-actors reports bad UTF-8 only as
/// an I/O error carrying `str::Utf8Error`'s text ("invalid utf-8 sequence …").
fn close_code_for(error: &ws::ProtocolError) -> ws::CloseCode {
    match error {
        ws::ProtocolError::Overflow => ws::CloseCode::Size,
        ws::ProtocolError::Io(e) if e.to_string().contains("utf-8") => ws::CloseCode::Invalid,
        _ => ws::CloseCode::Protocol,
    }
}

impl StreamHandler<Outbound> for WsSession {
    fn handle(&mut self, item: Outbound, ctx: &mut Self::Context) {
        match item {
            Outbound::Event(event) if event.seq() <= self.last_sent => {}
            Outbound::Event(event) if !self.wants(&event.event.patient_id) => {}
            Outbound::Event(event) => {
                self.last_sent = event.seq();
                ctx.text(event.ws().clone());
                self.delivered
                    .observe(event.published.elapsed().as_secs_f64());
            }
            Outbound::Heartbeat(_) => {}
            Outbound::Tick => self.on_tick(ctx),
            Outbound::Scope(change) => {
                let body = Value::Object(scope_changed(&change));
                ctx.text(typed_frame("scope_changed", None, body));
            }
            Outbound::Close(CloseReason::AuthExpired) => {
                end_session(
                    ctx,
                    Some(error_frame(
                        "auth_expired",
                        "your token expired; reconnect with a new one",
                    )),
                    ws::CloseCode::Policy,
                    "token expired",
                );
            }
            Outbound::Close(CloseReason::Shutdown) => {
                end_session(ctx, None, ws::CloseCode::Away, "server shutting down");
            }
        }
    }

    /// The manager dropped our queue: it overflowed (we were too slow) or was removed.
    fn finished(&mut self, ctx: &mut Self::Context) {
        end_session(
            ctx,
            Some(error_frame(
                "overflow",
                "you fell too far behind; reconnect with last_event_id=<last id> to be sent what you missed",
            )),
            ws::CloseCode::Again,
            "queue overflow",
        );
    }
}
