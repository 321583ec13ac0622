//! The frames a dashboard sends: parsed once, refused with the `error` frame to answer.

use serde_json::Value;

use super::MAX_FRAME_BYTES;
use super::server_frame::error_frame;

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
pub(super) fn too_large(what: &str) -> FrameRejection {
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
