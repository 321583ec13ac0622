//! Legacy WebSocket transport (`GET /ws`), phase-gated by `VIGIL_WS_MODE`. Everything
//! deprecated lives in this module so phase 3 can delete it. The session actor writes
//! the manager's events, answers `subscribe` and in-socket `ack` (through the same
//! service as HTTP), pings, and closes sessions silent for too long. A bad frame gets
//! an `error` frame; the session stays up. A dashboard that reconnects with
//! `last_event_id` is replayed what it missed first, as SSE clients are.

mod client_frame;
pub mod fragments;
mod replay;
mod server_frame;
mod session;

pub use client_frame::{ClientFrame, FrameRejection, parse_client_frame};
pub use session::{MAX_FRAMES_PER_SECOND, WsSession, tick_period};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_web_actors::ws;
use serde_json::json;

use super::{StreamParams, connected_payload, last_event_id, open_subscription};
use crate::config::WsMode;
use crate::error::ApiError;
use crate::hub::messages::Transport;
use crate::state::AppState;
use replay::PendingReplay;
use server_frame::{reset_frame, typed_frame};

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
        return Err(ApiError::Gone(format!(
            "the WebSocket transport has been retired; use the SSE stream /api/v1/alerts/stream (guide: {MIGRATION_GUIDE})"
        )));
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
    let request_id = crate::request_id::of(&req);
    let session = WsSession::new(
        state.clone(),
        sub,
        hello,
        replay,
        plan.last_sent,
        request_id,
    );
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
