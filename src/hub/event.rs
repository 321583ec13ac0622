//! What travels from a committed write to the clients.

use serde::{Deserialize, Serialize};

/// The two kinds of fan-out event (the SSE `event:` name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// An alert was raised.
    Alert,
    /// An alert changed (acknowledged, escalated, resolved).
    AlertUpdated,
}

impl EventKind {
    /// Both the SSE `event:` name clients listen for and the event log's `kind` column,
    /// so renaming one would orphan stored events.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Alert => "alert",
            EventKind::AlertUpdated => "alert_updated",
        }
    }

    /// Reads the event log's `kind` column back; `None` for a name this build does not
    /// know, which the reader skips rather than failing the whole batch.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "alert" => Some(EventKind::Alert),
            "alert_updated" => Some(EventKind::AlertUpdated),
            _ => None,
        }
    }
}

/// A committed event-log row, as published and replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Sequence number (SSE `id:`).
    pub seq: i64,
    /// Picks the SSE `event:` name and the WebSocket frame's `type`.
    pub kind: EventKind,
    /// The alert the event is about, for the delivery log line (clients read it from
    /// `payload`).
    pub alert_id: String,
    /// Its patient, for scope matching.
    pub patient_id: String,
    /// The `data:` JSON, frozen at commit.
    pub payload: String,
    /// The care teams' version its write saw: the manager matches it to streams only
    /// once it has applied that version (`db::events::NextEvent`).
    #[serde(default)]
    pub care_team_version: i64,
}

impl StoredEvent {
    /// From a database row; `None` for an unknown kind.
    pub fn from_row(row: crate::db::models::EventRow) -> Option<Self> {
        Some(Self {
            seq: row.seq,
            kind: EventKind::parse(&row.kind)?,
            alert_id: row.alert_id,
            patient_id: row.patient_id,
            payload: row.payload,
            care_team_version: row.care_team_version,
        })
    }
}

/// A care-team assignment changed; open streams of that user rescope at once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CareTeamChange {
    /// The team member (`sub`) whose open streams gain or lose the patient.
    pub user_id: String,
    /// The patient whose alerts that user's streams start or stop receiving.
    pub patient_id: String,
    /// Added (`true`) or removed.
    pub assigned: bool,
    /// The event log's head when the change was written: the events up to it came
    /// before the change, every later one after it, and another instance applies the
    /// change to its streams between the two. 0 from an instance older than the field.
    #[serde(default)]
    pub after_seq: i64,
    /// The care teams' version this change moved them to (`db::events::NextEvent`):
    /// an instance counts the changes it has applied by it. 0 from an instance older
    /// than the field.
    #[serde(default)]
    pub version: i64,
}
