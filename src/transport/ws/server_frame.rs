//! The frames the session builds itself (the manager's events come encoded).

use actix_web::ResponseError;
use serde_json::{Value, json};

use crate::error::ApiError;

/// The `reset` frame: the SSE `event: reset` as a WebSocket frame, `id` the head the
/// client continues from.
pub(super) fn reset_frame(payload: Value, head: i64) -> String {
    typed_frame("reset", Some(head), payload)
}

/// A frame built from an SSE event's data: `type` first and then `id`, as DESIGN.md
/// writes every frame (`{"type":"connected",…}`), so a dashboard reading frames by eye
/// or matching their start sees the kind first.
pub(super) fn typed_frame(kind: &str, id: Option<i64>, payload: Value) -> String {
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

/// `{"type":"error",…}`: what a dashboard is told about a frame or a session that failed.
pub(super) fn error_frame(code: &str, message: &str) -> String {
    json!({"type": "error", "code": code, "message": message}).to_string()
}

/// A refused in-socket acknowledgment, with the status and code HTTP would have answered.
pub(super) fn ack_failure(alert_id: &str, e: &ApiError) -> String {
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
