//! The only place events become bytes on the wire: SSE text (WHATWG "Server-sent
//! events") and legacy WebSocket JSON. Ids and event names are stripped of CR, LF and
//! NUL (they would end a field early — CWE-93); data is split into one `data:` line per
//! line, which a WHATWG parser joins back with `\n`.

use std::sync::OnceLock;
use std::time::Instant;

use bytes::Bytes;
use bytestring::ByteString;

use crate::hub::event::{EventKind, StoredEvent};
use crate::hub::subscriptions::ScopeChange;

/// One SSE frame. `data` may contain any text; `id`/`event` are sanitised.
pub fn sse_frame(id: Option<&str>, event: Option<&str>, data: &str) -> String {
    let mut out = String::with_capacity(data.len() + 48);
    if let Some(id) = id {
        out.push_str("id: ");
        out.extend(id.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')));
        out.push('\n');
    }
    if let Some(event) = event {
        out.push_str("event: ");
        out.extend(event.chars().filter(|c| !matches!(c, '\r' | '\n' | '\0')));
        out.push('\n');
    }
    let normalised = data.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalised.split('\n') {
        out.push_str("data: ");
        out.push_str(line);
        out.push('\n');
    }
    out.push('\n');
    out
}

/// A named SSE event without id (connected, heartbeat, reset, auth_expired).
pub fn sse_control(event: &str, data: &serde_json::Value) -> Bytes {
    Bytes::from(sse_frame(None, Some(event), &data.to_string()))
}

/// The body of a `scope_changed` event (SSE) or frame (WebSocket, plus its `type`).
pub fn scope_changed(change: &ScopeChange) -> serde_json::Map<String, serde_json::Value> {
    let mut body = serde_json::Map::new();
    body.insert("patients".to_owned(), change.patients.clone().into());
    body.insert("added".to_owned(), change.added.clone().into());
    body.insert("removed".to_owned(), change.removed.clone().into());
    body
}

/// An event encoded at most once per transport and shared by every recipient.
#[derive(Debug)]
pub struct EncodedEvent {
    /// The event.
    pub event: StoredEvent,
    /// When the manager took the committed event in: where `vigil_delivery_seconds`
    /// (publish → write) starts.
    pub published: Instant,
    sse: OnceLock<Bytes>,
    ws: OnceLock<ByteString>,
}

impl EncodedEvent {
    /// Wraps an event published now; nothing is encoded until a transport asks.
    pub fn new(event: StoredEvent) -> Self {
        Self::published_at(event, Instant::now())
    }

    /// Wraps an event the manager took in at `published`.
    pub fn published_at(event: StoredEvent, published: Instant) -> Self {
        Self {
            event,
            published,
            sse: OnceLock::new(),
            ws: OnceLock::new(),
        }
    }

    /// Sequence number.
    pub fn seq(&self) -> i64 {
        self.event.seq
    }

    /// `id: N / event: kind / data: payload`.
    pub fn sse(&self) -> &Bytes {
        self.sse.get_or_init(|| {
            let seq = self.event.seq.to_string();
            Bytes::from(sse_frame(
                Some(&seq),
                Some(self.event.kind.as_str()),
                &self.event.payload,
            ))
        })
    }

    /// `{"type":"alert","id":N,"alert":{…}}` or `{"type":"alert_updated","id":N,"alert":{…},"acknowledgment":{…}}`.
    pub fn ws(&self) -> &ByteString {
        self.ws
            .get_or_init(|| ByteString::from(ws_event_json(&self.event)))
    }
}

fn ws_event_json(event: &StoredEvent) -> String {
    match event.kind {
        EventKind::Alert => format!(
            r#"{{"type":"alert","id":{},"alert":{}}}"#,
            event.seq, event.payload
        ),
        EventKind::AlertUpdated => {
            // The payload is `{"alert":…,"acknowledgment":…}`: splice the type and id in.
            let inner = event.payload.trim().strip_prefix('{').unwrap_or("}");
            let sep = if inner.trim_start().starts_with('}') {
                ""
            } else {
                ","
            };
            format!(r#"{{"type":"alert_updated","id":{}{sep}{inner}"#, event.seq)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_line_data_becomes_several_data_lines() {
        assert_eq!(
            sse_frame(Some("1"), Some("alert"), "a\nb\r\nc\rd"),
            "id: 1\nevent: alert\ndata: a\ndata: b\ndata: c\ndata: d\n\n"
        );
        assert_eq!(sse_frame(None, None, ""), "data: \n\n");
    }

    #[test]
    fn line_breaks_cannot_be_injected_into_id_or_event() {
        let frame = sse_frame(Some("1\r\nevent: evil"), Some("x\ny"), "{}");
        assert_eq!(frame, "id: 1event: evil\nevent: xy\ndata: {}\n\n");
    }

    #[test]
    fn ws_frames_are_valid_json_with_type_and_id() {
        let ev = StoredEvent {
            seq: 43,
            kind: EventKind::AlertUpdated,
            alert_id: "a".into(),
            patient_id: "p".into(),
            payload: r#"{"alert":{"id":"a"},"acknowledgment":{"status":"acknowledged"}}"#.into(),
            care_team_version: 0,
        };
        let v: serde_json::Value = serde_json::from_str(EncodedEvent::new(ev).ws()).expect("json");
        assert_eq!(v["type"], "alert_updated");
        assert_eq!(v["id"], 43);
        assert_eq!(v["acknowledgment"]["status"], "acknowledged");
    }
}
