//! Alerts and acknowledgments as clients see them, and the validated input for a new
//! alert. Validation of a create body happens here, field by field, so a 422 names the
//! exact field that is wrong.

use serde::Serialize;
use serde_json::{Map, Value};

use super::{AckStatus, AlertStatus, PatientId, Role, Severity, format_millis};
use crate::error::{ApiError, FieldError};

/// Longest `kind`.
pub const MAX_KIND: usize = 64;
/// Longest `title`.
pub const MAX_TITLE: usize = 200;
/// Longest `message` and acknowledgment `note`.
pub const MAX_TEXT: usize = 2000;
/// Longest `source`.
pub const MAX_SOURCE: usize = 128;
/// Largest serialised `data` object.
pub const MAX_DATA_BYTES: usize = 16 * 1024;
/// Most acknowledgments an alert keeps before `resolved`. Every `alert_updated` event
/// and answer carries the whole trail, so without a bound each acknowledgment made every
/// later one bigger (an outside audit: 400 acknowledgments made one event 2.4 MB, and
/// one screen was sent 654 MB). Far past any ward's use (an alert acknowledged every
/// shift for two months), so that an escalation is never refused in practice.
pub const MAX_ACKNOWLEDGMENTS: i64 = 200;
/// Most bytes the notes of an alert's acknowledgments take together before `resolved`,
/// as `data` is bounded: the trail is part of every event for the alert. An
/// acknowledgment without a note is never refused by it.
pub const MAX_TRAIL_NOTE_BYTES: i64 = 32 * 1024;
/// Most acknowledgments one user adds to an alert's trail before `resolved`, and most
/// bytes of notes: a tenth of the trail and a quarter of its notes. With the trail's
/// bounds alone, one user — a caregiver, the least trusted role that may act — filled a
/// critical alert's trail in 3 s (an outside audit), after which nobody could escalate
/// it and a dispatcher could do nothing with it at all.
pub const MAX_ACKNOWLEDGMENTS_PER_USER: i64 = 20;
/// See [`MAX_ACKNOWLEDGMENTS_PER_USER`]: four notes of the longest kind.
pub const MAX_NOTE_BYTES_PER_USER: i64 = 8 * 1024;

/// How much of an alert's trail there is: entries and the bytes of their notes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrailSize {
    /// Acknowledgments recorded.
    pub entries: i64,
    /// Bytes of their notes together.
    pub note_bytes: i64,
}

/// One acknowledgment in an alert's audit trail.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Acknowledgment {
    /// Who acknowledged (`sub`).
    pub user_id: String,
    /// Their role at the time.
    pub role: String,
    /// What they set.
    pub status: String,
    /// Optional free text; never logged.
    pub note: Option<String>,
    /// When (RFC 3339).
    pub created_at: String,
}

/// An alert with its acknowledgments: the JSON of every API answer and event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Alert {
    /// UUID v7.
    pub id: String,
    /// Sequence number of the event that raised it (fixed).
    pub seq: i64,
    /// Sequence number of its latest change.
    pub last_seq: i64,
    /// Patient.
    pub patient_id: String,
    /// Severity.
    pub severity: String,
    /// Kind, e.g. `heart_rate_high`.
    pub kind: String,
    /// Short title.
    pub title: String,
    /// Longer message.
    pub message: String,
    /// Producer-defined JSON object.
    pub data: Value,
    /// Who raised it.
    pub source: String,
    /// Current status.
    pub status: String,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Last change (RFC 3339).
    pub updated_at: String,
    /// Audit trail, oldest first.
    pub acknowledgments: Vec<Acknowledgment>,
}

/// A validated request to raise an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert {
    /// Patient.
    pub patient_id: PatientId,
    /// Severity.
    pub severity: Severity,
    /// Kind.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Message (may be empty).
    pub message: String,
    /// Data object, serialised.
    pub data: String,
    /// Source (defaults to the caller's `sub`).
    pub source: String,
}

const KNOWN_FIELDS: [&str; 7] = [
    "patient_id",
    "severity",
    "kind",
    "title",
    "message",
    "data",
    "source",
];

impl NewAlert {
    /// Validates a create body. Every problem is collected so the caller can fix all
    /// fields at once; `default_source` is used when `source` is absent.
    pub fn from_json(body: &Value, default_source: &str) -> Result<Self, ApiError> {
        let Some(obj) = body.as_object() else {
            return Err(ApiError::invalid("body", "expected a JSON object"));
        };
        let mut errors = Vec::new();
        for key in obj.keys() {
            if !KNOWN_FIELDS.contains(&key.as_str()) {
                errors.push(field_error(key, "unknown field"));
            }
        }
        let patient_id = required_str(obj, "patient_id", &mut errors).and_then(|raw| {
            PatientId::parse(raw)
                .map_err(|m| errors.push(field_error("patient_id", &m)))
                .ok()
        });
        let severity = required_str(obj, "severity", &mut errors).and_then(|raw| {
            raw.parse::<Severity>()
                .map_err(|m| errors.push(field_error("severity", &m)))
                .ok()
        });
        let kind = required_str(obj, "kind", &mut errors).and_then(|raw| {
            let ok = !raw.is_empty()
                && raw.len() <= MAX_KIND
                && raw
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b':'));
            if ok {
                Some(raw.to_owned())
            } else {
                errors.push(field_error(
                    "kind",
                    &format!(
                        "must be 1-{MAX_KIND} characters of A-Z, a-z, 0-9, '_', '.', '-', ':'"
                    ),
                ));
                None
            }
        });
        let title = required_str(obj, "title", &mut errors)
            .and_then(|raw| bounded_text("title", raw, 1, MAX_TITLE, &mut errors));
        let message = optional_str(obj, "message", &mut errors)
            .and_then(|raw| bounded_text("message", raw.unwrap_or(""), 0, MAX_TEXT, &mut errors));
        let source = optional_str(obj, "source", &mut errors).and_then(|raw| {
            bounded_text(
                "source",
                raw.unwrap_or(default_source),
                1,
                MAX_SOURCE,
                &mut errors,
            )
        });
        let data = match obj.get("data") {
            None | Some(Value::Null) => Some("{}".to_owned()),
            Some(v @ Value::Object(_)) => {
                let text = v.to_string();
                if text.len() > MAX_DATA_BYTES {
                    errors.push(field_error(
                        "data",
                        &format!("must serialise to at most {MAX_DATA_BYTES} bytes"),
                    ));
                    None
                } else {
                    Some(text)
                }
            }
            Some(_) => {
                errors.push(field_error("data", "must be a JSON object"));
                None
            }
        };
        match (patient_id, severity, kind, title, message, data, source) {
            (
                Some(patient_id),
                Some(severity),
                Some(kind),
                Some(title),
                Some(message),
                Some(data),
                Some(source),
            ) if errors.is_empty() => Ok(NewAlert {
                patient_id,
                severity,
                kind,
                title,
                message,
                data,
                source,
            }),
            _ => Err(validation(errors)),
        }
    }
}

/// Parses an acknowledgment body: `status` (default `acknowledged`) and optional `note`.
pub fn parse_ack_body(body: &Value) -> Result<(AckStatus, Option<String>), ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::invalid("body", "expected a JSON object"));
    };
    let mut errors = Vec::new();
    for key in obj.keys() {
        if key != "status" && key != "note" {
            errors.push(field_error(key, "unknown field"));
        }
    }
    let status = match optional_str(obj, "status", &mut errors) {
        Some(None) => Some(AckStatus::Acknowledged),
        Some(Some(raw)) => raw
            .parse::<AckStatus>()
            .map_err(|m| errors.push(field_error("status", &m)))
            .ok(),
        None => None,
    };
    let note = match optional_str(obj, "note", &mut errors) {
        Some(Some(raw)) => bounded_text("note", raw, 0, MAX_TEXT, &mut errors).map(Some),
        Some(None) => Some(None),
        None => None,
    };
    match (status, note) {
        (Some(status), Some(note)) if errors.is_empty() => {
            Ok((status, note.filter(|n| !n.is_empty())))
        }
        _ => Err(validation(errors)),
    }
}

/// An acknowledgment's role and status, checked against the permission table.
pub fn check_ack_permission(role: Role, status: AckStatus) -> Result<(), ApiError> {
    if !role.may_acknowledge() {
        return Err(ApiError::Forbidden(format!(
            "role {role} may not acknowledge alerts"
        )));
    }
    if !role.may_set(status) {
        return Err(ApiError::Forbidden(format!(
            "role {role} may not set status {}",
            status.as_str()
        )));
    }
    Ok(())
}

/// Whether a status transition is allowed (`resolved` is final).
pub fn check_transition(current: AlertStatus) -> Result<(), ApiError> {
    if current.accepts_acknowledgment() {
        Ok(())
    } else {
        Err(ApiError::Conflict(
            "the alert is resolved; resolved is final".to_owned(),
        ))
    }
}

/// Whether an alert's trail has room for one more acknowledgment, given its size in
/// `all` and the share of it added by the acknowledging user in `mine` (see
/// [`MAX_ACKNOWLEDGMENTS`], [`MAX_ACKNOWLEDGMENTS_PER_USER`]). `resolved` always has: an
/// alert must never be left impossible to close, and after it the trail is final.
pub fn check_trail_room(
    status: AckStatus,
    all: TrailSize,
    mine: TrailSize,
    note: Option<&str>,
) -> Result<(), ApiError> {
    if status == AckStatus::Resolved {
        return Ok(());
    }
    if all.entries >= MAX_ACKNOWLEDGMENTS {
        return Err(ApiError::Conflict(format!(
            "the alert already has {MAX_ACKNOWLEDGMENTS} acknowledgments, the most it keeps \
             before it is resolved: it can only be resolved now (by a role that may \
             resolve), and a new alert raised if the condition goes on"
        )));
    }
    if mine.entries >= MAX_ACKNOWLEDGMENTS_PER_USER {
        return Err(ApiError::Conflict(format!(
            "you have added {MAX_ACKNOWLEDGMENTS_PER_USER} acknowledgments to this alert, the \
             most one user adds before it is resolved: the rest of the care team can still \
             act on it"
        )));
    }
    let adding = note.map_or(0, |n| i64::try_from(n.len()).unwrap_or(i64::MAX));
    if adding > 0 && all.note_bytes.saturating_add(adding) > MAX_TRAIL_NOTE_BYTES {
        return Err(ApiError::Conflict(format!(
            "the notes of the alert's acknowledgments would pass {MAX_TRAIL_NOTE_BYTES} bytes \
             together ({} so far, this note {adding}): send it with a shorter note or none",
            all.note_bytes
        )));
    }
    if adding > 0 && mine.note_bytes.saturating_add(adding) > MAX_NOTE_BYTES_PER_USER {
        return Err(ApiError::Conflict(format!(
            "your notes on this alert would pass {MAX_NOTE_BYTES_PER_USER} bytes together ({} \
             so far, this note {adding}), the most one user adds before it is resolved: send \
             it with a shorter note or none",
            mine.note_bytes
        )));
    }
    Ok(())
}

fn field_error(field: &str, message: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

fn validation(errors: Vec<FieldError>) -> ApiError {
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    ApiError::Validation { detail, errors }
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<&'a str> {
    match obj.get(field) {
        Some(Value::String(s)) => Some(s),
        None | Some(Value::Null) => {
            errors.push(field_error(field, "is required"));
            None
        }
        Some(_) => {
            errors.push(field_error(field, "must be a string"));
            None
        }
    }
}

/// `Some(None)` when absent, `Some(Some(s))` when a string, `None` (error recorded) otherwise.
fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    errors: &mut Vec<FieldError>,
) -> Option<Option<&'a str>> {
    match obj.get(field) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s)),
        Some(_) => {
            errors.push(field_error(field, "must be a string"));
            None
        }
    }
}

fn bounded_text(
    field: &str,
    raw: &str,
    min: usize,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let len = raw.chars().count();
    if len < min || len > max {
        let message = if min > 0 {
            format!("must be {min}-{max} characters")
        } else {
            format!("must be at most {max} characters")
        };
        errors.push(field_error(field, &message));
        return None;
    }
    // Control characters are refused, tab and line breaks aside: none means anything in
    // clinical text, NUL cannot be stored, and JSON writes each of the others as six
    // bytes (`\u0001`), which made a trail's 16 KiB of notes 96 KiB on the wire and on
    // disk in every event that carried it (an outside audit).
    if let Some(c) = raw
        .chars()
        .find(|&c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        errors.push(field_error(
            field,
            &format!(
                "must not contain control characters (here U+{:04X}); tab and line breaks are allowed",
                u32::from(c)
            ),
        ));
        return None;
    }
    Some(raw.to_owned())
}

impl Acknowledgment {
    /// Builds the wire form from stored values.
    pub fn from_parts(
        user_id: String,
        role: String,
        status: String,
        note: Option<String>,
        created_at: i64,
    ) -> Self {
        Self {
            user_id,
            role,
            status,
            note,
            created_at: format_millis(created_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn valid() -> Value {
        json!({"patient_id": "123", "severity": "critical", "kind": "heart_rate_high", "title": "HR 148"})
    }

    #[test]
    fn a_minimal_alert_gets_defaults() {
        let alert = NewAlert::from_json(&valid(), "analyser-1").expect("valid");
        assert_eq!(alert.message, "");
        assert_eq!(alert.data, "{}");
        assert_eq!(alert.source, "analyser-1");
    }

    #[test]
    fn each_invalid_field_is_named() {
        let cases: Vec<(&str, Value, &str)> = vec![
            ("patient_id", json!("a b"), "patient id with a space"),
            ("patient_id", json!(123), "patient id as a number"),
            ("severity", json!("urgent"), "unknown severity"),
            ("kind", json!("x".repeat(65)), "65-char kind"),
            ("title", json!(""), "empty title"),
            ("title", json!("t".repeat(201)), "201-char title"),
            ("message", json!("m".repeat(2001)), "2001-char message"),
            ("source", json!("s".repeat(129)), "129-char source"),
            ("data", json!([1, 2]), "data as an array"),
            (
                "data",
                json!({"blob": "x".repeat(17 * 1024)}),
                "data over 16 KiB",
            ),
            ("colour", json!("red"), "unknown field"),
        ];
        for (field, value, why) in cases {
            let mut body = valid();
            body[field] = value;
            match NewAlert::from_json(&body, "svc") {
                Err(ApiError::Validation { errors, .. }) => {
                    assert!(
                        errors.iter().any(|e| e.field == field),
                        "{why}: errors {errors:?} must name {field}"
                    );
                }
                other => panic!("{why}: expected a validation error, got {other:?}"),
            }
        }
    }

    #[test]
    fn missing_required_fields_are_all_reported() {
        match NewAlert::from_json(&json!({}), "svc") {
            Err(ApiError::Validation { errors, .. }) => {
                let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
                assert_eq!(fields, ["patient_id", "severity", "kind", "title"]);
            }
            other => panic!("expected validation error, got {other:?}"),
        }
    }

    #[test]
    fn ack_body_defaults_to_acknowledged() {
        assert_eq!(
            parse_ack_body(&json!({})).ok(),
            Some((AckStatus::Acknowledged, None))
        );
        assert_eq!(
            parse_ack_body(&json!({"status": "resolved", "note": "done"})).ok(),
            Some((AckStatus::Resolved, Some("done".to_owned())))
        );
        assert!(
            parse_ack_body(&json!({"status": "open"})).is_err(),
            "open is not an ack status"
        );
        assert!(
            parse_ack_body(&json!({"note": 5})).is_err(),
            "note must be text"
        );
    }
}
