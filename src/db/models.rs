//! Row types: `XRow` is read (`Queryable`), `NewXRow` is written (`Insertable`).

use diesel::prelude::*;

use super::schema::{acknowledgments, alerts, care_team, events};

/// One event-log row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    /// Sequence number (SSE `id:`).
    pub seq: i64,
    /// `alert` or `alert_updated`.
    pub kind: String,
    /// The alert concerned.
    pub alert_id: String,
    /// Its patient (for scope filtering).
    pub patient_id: String,
    /// The event's `data:` JSON.
    pub payload: String,
    /// Epoch ms.
    pub created_at: i64,
}

/// An event to append.
#[derive(Debug, Insertable)]
#[diesel(table_name = events)]
pub struct NewEventRow<'a> {
    /// Allocated by [`super::events::next_seq`].
    pub seq: i64,
    /// `alert` or `alert_updated`.
    pub kind: &'a str,
    /// Alert id.
    pub alert_id: &'a str,
    /// Patient id.
    pub patient_id: &'a str,
    /// Event data JSON.
    pub payload: &'a str,
    /// Epoch ms.
    pub created_at: i64,
}

/// One alert row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = alerts)]
pub struct AlertRow {
    /// UUID v7.
    pub id: String,
    /// Creating event.
    pub seq: i64,
    /// Latest event.
    pub last_seq: i64,
    /// Patient.
    pub patient_id: String,
    /// Severity.
    pub severity: String,
    /// Kind.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Message.
    pub message: String,
    /// Data JSON.
    pub data: String,
    /// Source.
    pub source: String,
    /// Status.
    pub status: String,
    /// `sub` of the creator.
    pub created_by: String,
    /// `X-Request-Id` of the creating request.
    pub request_id: Option<String>,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
}

/// An alert to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = alerts)]
pub struct NewAlertRow<'a> {
    /// UUID v7.
    pub id: &'a str,
    /// Creating event.
    pub seq: i64,
    /// Same as `seq` at creation.
    pub last_seq: i64,
    /// Patient.
    pub patient_id: &'a str,
    /// Severity.
    pub severity: &'a str,
    /// Kind.
    pub kind: &'a str,
    /// Title.
    pub title: &'a str,
    /// Message.
    pub message: &'a str,
    /// Data JSON.
    pub data: &'a str,
    /// Source.
    pub source: &'a str,
    /// `open`.
    pub status: &'a str,
    /// Creator's `sub`.
    pub created_by: &'a str,
    /// Request id.
    pub request_id: Option<&'a str>,
    /// Epoch ms.
    pub created_at: i64,
    /// Epoch ms.
    pub updated_at: i64,
}

/// One acknowledgment row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = acknowledgments)]
pub struct AckRow {
    /// Event it produced.
    pub seq: i64,
    /// Alert.
    pub alert_id: String,
    /// Who.
    pub user_id: String,
    /// Their role.
    pub role: String,
    /// Status set.
    pub status: String,
    /// Note (never logged).
    pub note: Option<String>,
    /// Epoch ms.
    pub created_at: i64,
}

/// An acknowledgment to insert.
#[derive(Debug, Insertable)]
#[diesel(table_name = acknowledgments)]
pub struct NewAckRow<'a> {
    /// Event it produces.
    pub seq: i64,
    /// Alert.
    pub alert_id: &'a str,
    /// Who.
    pub user_id: &'a str,
    /// Role.
    pub role: &'a str,
    /// Status.
    pub status: &'a str,
    /// Note.
    pub note: Option<&'a str>,
    /// Epoch ms.
    pub created_at: i64,
}

/// One care-team assignment.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = care_team)]
pub struct CareTeamRow {
    /// Patient.
    pub patient_id: String,
    /// User (`sub`).
    pub user_id: String,
    /// Epoch ms.
    pub created_at: i64,
}
