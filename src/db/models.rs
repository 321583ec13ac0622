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
    /// The care-team version its write saw (see [`super::events::next_seq`]).
    pub care_team_version: i64,
}

/// An event to append.
#[derive(Debug, Insertable)]
#[diesel(table_name = events)]
pub struct NewEventRow<'a> {
    /// Allocated by [`super::events::next_seq`].
    pub seq: i64,
    /// `alert` or `alert_updated`.
    pub kind: &'a str,
    /// The alert the event is about, outside `payload` so logs and queries can name it
    /// without parsing JSON.
    pub alert_id: &'a str,
    /// Copied from the alert, so replays and the manager match events to streams
    /// without reading the alert.
    pub patient_id: &'a str,
    /// The `data:` clients receive, frozen now: a replay sends what live clients got.
    pub payload: &'a str,
    /// Epoch ms.
    pub created_at: i64,
    /// The care teams' version as the write saw it: an instance that has not applied
    /// that version yet holds the event back until it has.
    pub care_team_version: i64,
}

/// One alert row.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = alerts)]
pub struct AlertRow {
    /// UUID v7.
    pub id: String,
    /// Creating event.
    pub seq: i64,
    /// Latest event: `?after=` compares it, so a polling client sees every change.
    pub last_seq: i64,
    /// Decides who may see the alert: every read and every stream is scoped by it.
    pub patient_id: String,
    /// The wire name (`info` … `critical`); `?severity=` filters on it as text.
    pub severity: String,
    /// The producer's own label (e.g. `heart_rate_high`), unrelated to the event kind.
    pub kind: String,
    /// The headline consoles show for the alert.
    pub title: String,
    /// Free text under the title, possibly empty.
    pub message: String,
    /// The producer's JSON object as text; read back as `{}` if it no longer parses.
    pub data: String,
    /// The producer as it names itself (its `sub` when not given); `created_by` is the
    /// verified one.
    pub source: String,
    /// The current status, updated by each acknowledgment; `?status=` filters on it, and
    /// `resolved` is final.
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
    /// Checked only for form: producers raise alerts for any patient.
    pub patient_id: &'a str,
    /// The wire name (see [`AlertRow::severity`]).
    pub severity: &'a str,
    /// As the producer sent it (see [`AlertRow::kind`]).
    pub kind: &'a str,
    /// As the producer sent it.
    pub title: &'a str,
    /// As the producer sent it, possibly empty.
    pub message: &'a str,
    /// The `data` object, serialised.
    pub data: &'a str,
    /// The producer's name for itself, defaulting to its `sub`.
    pub source: &'a str,
    /// `open`.
    pub status: &'a str,
    /// Creator's `sub`.
    pub created_by: &'a str,
    /// `X-Request-Id` of the creating request, to find its log lines from the alert.
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
    /// The acknowledged alert: an alert's audit trail is loaded by it.
    pub alert_id: String,
    /// The acknowledger's `sub`, for the audit trail.
    pub user_id: String,
    /// The role at the time: the trail stays true if the user's role changes later.
    pub role: String,
    /// What this acknowledgment set the alert's status to.
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
    /// See [`AckRow::alert_id`].
    pub alert_id: &'a str,
    /// See [`AckRow::user_id`].
    pub user_id: &'a str,
    /// See [`AckRow::role`].
    pub role: &'a str,
    /// See [`AckRow::status`].
    pub status: &'a str,
    /// Free text for the team; never logged.
    pub note: Option<&'a str>,
    /// Epoch ms.
    pub created_at: i64,
}

/// One care-team assignment.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = care_team)]
pub struct CareTeamRow {
    /// A patient whose alerts `user_id` sees while this row exists.
    pub patient_id: String,
    /// The member's `sub`, matched against tokens to scope care-team roles.
    pub user_id: String,
    /// Epoch ms.
    pub created_at: i64,
}
