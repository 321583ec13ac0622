//! Acknowledging an alert — the one rule set shared by HTTP and the in-socket ack.

use diesel::Connection;
use serde::Serialize;

use super::KeyedWriteStop;
use super::alerts::load_alert;
use super::scope::allowed_in;
use crate::auth::Principal;
use crate::db::models::{NewAckRow, NewEventRow};
use crate::db::{acks, alerts, events};
use crate::domain::alert::{check_ack_permission, check_trail_room, check_transition};
use crate::domain::{AckStatus, Acknowledgment, Alert, AlertStatus, PatientId, now_millis};
use crate::error::ApiError;
use crate::hub::event::{EventKind, StoredEvent};
use crate::state::AppState;

/// The result of an acknowledgment; also the `data:` of the `alert_updated` event.
#[derive(Debug, Clone, Serialize)]
pub struct AckOutcome {
    /// The alert's state after the acknowledgment.
    pub alert: Alert,
    /// The acknowledgment just recorded.
    pub acknowledgment: Acknowledgment,
}

/// What is being acknowledged.
#[derive(Debug, Clone)]
pub struct AckRequest {
    /// As the caller gave it: anything but a UUID is a 404 before any query is made.
    pub alert_id: String,
    /// Checked against the caller's role (only some may resolve) and the alert's current
    /// status (`resolved` is final).
    pub status: AckStatus,
    /// Optional note (never logged).
    pub note: Option<String>,
    /// Seed-era `?patient_id=`: must match the alert's patient.
    pub expected_patient: Option<PatientId>,
    /// `X-Request-Id` of the HTTP request (or of the WebSocket handshake), for the log.
    pub request_id: Option<String>,
    /// The caller's `Idempotency-Key` (HTTP only): a retry of the acknowledgment it
    /// recorded is answered as the first time, and nothing is stored again.
    pub idempotency_key: Option<String>,
}

/// What an acknowledgment came to.
#[derive(Debug)]
pub enum Acked {
    /// Recorded now, and published.
    Recorded(Box<AckOutcome>),
    /// A retry of one the caller's `Idempotency-Key` recorded before: the answer it got
    /// then (the JSON of its `alert_updated` event's data); nothing stored.
    Replayed(String),
}

/// Records an acknowledgment and its `alert_updated` event in one transaction, then
/// publishes. Order of checks: role (403), alert in scope (404), a retry under the same
/// `Idempotency-Key` (answered as the first time, or 422 for another acknowledgment),
/// resolve right (403), `resolved` is final (409), room in the trail (409).
pub async fn acknowledge(
    state: &AppState,
    principal: &Principal,
    request: AckRequest,
) -> Result<Acked, ApiError> {
    if !principal.role.may_acknowledge() {
        return Err(ApiError::Forbidden(format!(
            "role {} may not acknowledge alerts",
            principal.role
        )));
    }
    // Not an id any alert can have: 404 without a query (PostgreSQL refuses a NUL in a
    // text parameter with an error, not an empty result).
    if uuid::Uuid::parse_str(&request.alert_id).is_err() {
        return Err(super::alerts::no_alert(&request.alert_id));
    }
    let who = principal.clone();
    let req = request.clone();
    let issued = state.issued.clone();
    let outcome = state
        .writer
        .write_event(&state.broker, move |conn| {
            let result = conn.transaction::<_, KeyedWriteStop<String>, _>(|c| {
                let next = events::next_seq(c, &issued)?;
                let seq = next.seq;
                let allowed = allowed_in(c, &who)?;
                let not_found = || super::alerts::no_alert(&req.alert_id);
                let row = alerts::get(c, &req.alert_id)?.ok_or_else(not_found)?;
                if !allowed.contains(&row.patient_id) {
                    return Err(not_found().into());
                }
                if let Some(expected) = &req.expected_patient
                    && expected.as_str() != row.patient_id
                {
                    return Err(ApiError::NotFound(format!(
                        "alert {} does not belong to patient {expected}",
                        req.alert_id
                    ))
                    .into());
                }
                if let Some(key) = &req.idempotency_key
                    && let Some(earlier) = acks::find_idempotent(c, &who.user_id, key)?
                {
                    return Err(replay(c, &earlier, &req)
                        .map_or_else(KeyedWriteStop::Api, KeyedWriteStop::Replay));
                }
                check_ack_permission(who.role, req.status)?;
                let current: AlertStatus = row.status.parse().map_err(ApiError::Internal)?;
                check_transition(current)?;
                let (all, mine) = acks::trail_size(c, &row.id, &who.user_id)?;
                check_trail_room(req.status, all, mine, req.note.as_deref())?;
                let now = now_millis();
                if let Some(key) = &req.idempotency_key {
                    acks::remember_idempotent(c, &who.user_id, key, seq, now)?;
                }
                acks::insert(
                    c,
                    &NewAckRow {
                        seq,
                        alert_id: &row.id,
                        user_id: &who.user_id,
                        role: who.role.as_str(),
                        status: req.status.as_str(),
                        note: req.note.as_deref(),
                        created_at: now,
                    },
                )?;
                alerts::set_status(c, &row.id, req.status.as_str(), seq, now)?;
                let alert = load_alert(c, &row.id)?.ok_or_else(not_found)?;
                let acknowledgment = Acknowledgment::from_parts(
                    who.user_id.clone(),
                    who.role.as_str().to_owned(),
                    req.status.as_str().to_owned(),
                    req.note.clone(),
                    now,
                );
                let outcome = AckOutcome {
                    alert,
                    acknowledgment,
                };
                let payload = serde_json::to_string(&outcome)
                    .map_err(|e| ApiError::Internal(e.to_string()))?;
                events::insert(
                    c,
                    &NewEventRow {
                        seq,
                        kind: EventKind::AlertUpdated.as_str(),
                        alert_id: &row.id,
                        patient_id: &row.patient_id,
                        payload: &payload,
                        created_at: now,
                        care_team_version: next.care_team_version,
                    },
                )?;
                let event = StoredEvent {
                    seq,
                    kind: EventKind::AlertUpdated,
                    alert_id: row.id.clone(),
                    patient_id: row.patient_id.clone(),
                    payload,
                    care_team_version: next.care_team_version,
                };
                Ok((outcome, event))
            });
            match result {
                Ok((outcome, event)) => Ok((Acked::Recorded(Box::new(outcome)), Some(event))),
                Err(KeyedWriteStop::Replay(answer)) => Ok((Acked::Replayed(answer), None)),
                Err(KeyedWriteStop::Api(e)) => Err(e),
            }
        })
        .await?;
    let outcome = match outcome {
        Acked::Recorded(outcome) => outcome,
        replayed @ Acked::Replayed(_) => return Ok(replayed),
    };
    log::info!(
        "alert acknowledged alert_id={} patient_id={} status={} user_id={} seq={} request_id={}",
        outcome.alert.id,
        outcome.alert.patient_id,
        outcome.alert.status,
        crate::log_value::quoted_if_needed(&principal.user_id),
        outcome.alert.last_seq,
        request.request_id.as_deref().unwrap_or("-")
    );
    Ok(Acked::Recorded(outcome))
}

/// The answer to a request under a key that already recorded `earlier`: the same
/// acknowledgment (alert, status and note) is a retry, answered with what it recorded;
/// another is refused, as a raise under a reused key is (answering the old one would drop
/// the new one unseen).
fn replay(
    c: &mut crate::db::AnyConnection,
    earlier: &crate::db::models::AckRow,
    req: &AckRequest,
) -> Result<String, ApiError> {
    // The alert is found in any case (`alerts::get`); its stored id is lower case.
    if !earlier.alert_id.eq_ignore_ascii_case(&req.alert_id)
        || earlier.status != req.status.as_str()
        || earlier.note != req.note
    {
        return Err(ApiError::invalid(
            "Idempotency-Key",
            format!(
                "already used for a different acknowledgment ({} of alert {}); a retry must \
                 repeat the same one, a new acknowledgment needs a new key",
                earlier.status, earlier.alert_id
            ),
        ));
    }
    if let Some(answer) = events::payload(c, earlier.seq)? {
        return Ok(answer);
    }
    // Its event was pruned (VIGIL_EVENT_RETENTION_DAYS): the acknowledgment as recorded,
    // with the alert as it is now.
    let alert = load_alert(c, &earlier.alert_id)?.ok_or_else(|| {
        ApiError::Internal("idempotency key points at a missing alert".to_owned())
    })?;
    let acknowledgment = Acknowledgment::from_parts(
        earlier.user_id.clone(),
        earlier.role.clone(),
        earlier.status.clone(),
        earlier.note.clone(),
        earlier.created_at,
    );
    serde_json::to_string(&AckOutcome {
        alert,
        acknowledgment,
    })
    .map_err(|e| ApiError::Internal(e.to_string()))
}
