//! Raising, reading and listing alerts.

use std::collections::HashMap;

use diesel::Connection;
use serde::Serialize;

use super::KeyedWriteStop;
use super::scope::allowed_in;
use crate::auth::Principal;
use crate::db::models::{AckRow, AlertRow, NewAlertRow, NewEventRow};
use crate::db::{self, AnyConnection, acks, alerts, events};
use crate::domain::{Acknowledgment, Alert, AlertStatus, NewAlert, format_millis, now_millis};
use crate::error::ApiError;
use crate::hub::event::{EventKind, StoredEvent};
use crate::scope::Requested;
use crate::state::AppState;

/// Largest `limit` on list.
pub const MAX_LIST_LIMIT: i64 = 500;
/// `limit` when none is given.
pub const DEFAULT_LIST_LIMIT: i64 = 100;
/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// The answer of `GET /api/v1/alerts`.
#[derive(Debug, Serialize)]
pub struct AlertList {
    /// Matching alerts.
    pub alerts: Vec<Alert>,
    /// Head of the event log when the query ran.
    pub last_seq: i64,
}

/// Validated list parameters.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// The `patient_id` parameters as given; narrowed to the caller's scope, and a 403 if
    /// they name a patient outside it.
    pub requested: Requested,
    /// `?status=`, already parsed, so an unknown status is a 422 rather than an empty list.
    pub status: Option<AlertStatus>,
    /// `?severity=`, parsed for the same reason as `status`.
    pub severity: Option<crate::domain::Severity>,
    /// Only changes after this sequence number.
    pub after: Option<i64>,
    /// At most this many alerts, 1 to [`MAX_LIST_LIMIT`] ([`DEFAULT_LIST_LIMIT`] when not
    /// given): bounds the rows one request can read.
    pub limit: i64,
}

/// Persists a new alert and its `alert` event in one transaction, then publishes.
/// Returns the alert and whether it is an idempotent replay of an earlier request.
pub async fn raise_alert(
    state: &AppState,
    principal: &Principal,
    new: NewAlert,
    idempotency_key: Option<String>,
    request_id: Option<String>,
) -> Result<(Alert, bool), ApiError> {
    if !principal.role.may_create() {
        return Err(ApiError::Forbidden(format!(
            "role {} may not raise alerts",
            principal.role
        )));
    }
    let creator = principal.user_id.clone();
    let logged_request_id = request_id.clone().unwrap_or_else(|| "-".to_owned());
    let issued = state.issued.clone();
    let outcome = state
        .writer
        .write_event(&state.broker, move |conn| {
            let result = conn.transaction::<_, KeyedWriteStop<String>, _>(|c| {
                let next = events::next_seq(c, &issued)?;
                let seq = next.seq;
                if let Some(key) = &idempotency_key
                    && let Some(existing) = alerts::find_idempotent(c, &creator, key)?
                {
                    return Err(KeyedWriteStop::Replay(existing));
                }
                let now = now_millis();
                let id = uuid::Uuid::now_v7().to_string();
                let row = NewAlertRow {
                    id: &id,
                    seq,
                    last_seq: seq,
                    patient_id: new.patient_id.as_str(),
                    severity: new.severity.as_str(),
                    kind: &new.kind,
                    title: &new.title,
                    message: &new.message,
                    data: &new.data,
                    source: &new.source,
                    status: AlertStatus::Open.as_str(),
                    created_by: &creator,
                    request_id: request_id.as_deref(),
                    created_at: now,
                    updated_at: now,
                };
                alerts::insert(c, &row)?;
                if let Some(key) = &idempotency_key {
                    alerts::remember_idempotent(c, &creator, key, &id, now)?;
                }
                let alert = to_alert(&stored_row(&row), Vec::new());
                let payload =
                    serde_json::to_string(&alert).map_err(|e| ApiError::Internal(e.to_string()))?;
                events::insert(
                    c,
                    &NewEventRow {
                        seq,
                        kind: EventKind::Alert.as_str(),
                        alert_id: &id,
                        patient_id: new.patient_id.as_str(),
                        payload: &payload,
                        created_at: now,
                        care_team_version: next.care_team_version,
                    },
                )?;
                let event = StoredEvent {
                    seq,
                    kind: EventKind::Alert,
                    alert_id: id.clone(),
                    patient_id: alert.patient_id.clone(),
                    payload,
                    care_team_version: next.care_team_version,
                };
                Ok((alert, event))
            });
            match result {
                Ok((alert, event)) => Ok((Raised::Created(alert), Some(event))),
                Err(KeyedWriteStop::Replay(existing)) => {
                    let raised = match alerts::get(conn, &existing)? {
                        Some(row) if same_request(&row, &new) => Raised::Replayed(as_created(&row)),
                        Some(row) => Raised::KeyReused(row.id),
                        None => Raised::KeyDangling,
                    };
                    Ok((raised, None))
                }
                Err(KeyedWriteStop::Api(e)) => Err(e),
            }
        })
        .await?;
    match outcome {
        Raised::Created(alert) => {
            log::info!(
                "alert raised alert_id={} patient_id={} severity={} seq={} user_id={} request_id={logged_request_id}",
                alert.id,
                alert.patient_id,
                alert.severity,
                alert.seq,
                crate::log_value::quoted_if_needed(&principal.user_id)
            );
            Ok((alert, false))
        }
        Raised::Replayed(existing) => Ok((existing, true)),
        Raised::KeyReused(existing) => Err(ApiError::invalid(
            "Idempotency-Key",
            format!(
                "already used for a different alert ({existing}); a retry must repeat the same \
                 alert, a new alert needs a new key"
            ),
        )),
        Raised::KeyDangling => Err(ApiError::Internal(
            "idempotency key points at a missing alert".to_owned(),
        )),
    }
}

/// JSON equality as a producer means it: objects by key whatever their order, numbers by
/// value (`1`, `1.0` and `1e0` are one number; serde_json's `==` tells them apart).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => same_number(x, y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Numbers by exact value. An integer and a decimal are compared without going through a
/// double for the integer: `9007199254740993` and `9007199254740992.0` are one double
/// apart from nothing, but two different readings.
fn same_number(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    let integer = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
    };
    // A double that is a whole number converts to i128 exactly (beyond i128, `as`
    // saturates, and no 64-bit integer is that large).
    let equals = |i: i128, f: Option<f64>| f.is_some_and(|f| f.fract() == 0.0 && f as i128 == i);
    match (integer(x), integer(y)) {
        (Some(i), Some(j)) => i == j,
        (Some(i), None) => equals(i, y.as_f64()),
        (None, Some(j)) => equals(j, x.as_f64()),
        (None, None) => x.as_f64() == y.as_f64(),
    }
}

/// What one `raise_alert` transaction came to.
enum Raised {
    /// A new alert, stored.
    Created(Alert),
    /// The alert this caller's key produced before, for a retry of the same request.
    Replayed(Alert),
    /// The caller's key produced this other alert: a new alert under a reused key is
    /// refused, never answered with the old one (that would drop the new alert unseen).
    KeyReused(String),
    /// The key's alert is gone (cannot happen while alerts are never deleted).
    KeyDangling,
}

/// Whether a request under an already-used key asks for the same alert as the one the
/// key produced: every field the producer sent, `data` compared as JSON (key order and
/// spacing aside), so a retry is recognised and a different alert is not mistaken for one.
fn same_request(row: &AlertRow, new: &NewAlert) -> bool {
    let same_data = match (
        serde_json::from_str::<serde_json::Value>(&row.data),
        serde_json::from_str::<serde_json::Value>(&new.data),
    ) {
        (Ok(stored), Ok(asked)) => same_json(&stored, &asked),
        _ => row.data == new.data,
    };
    row.patient_id == new.patient_id.as_str()
        && row.severity == new.severity.as_str()
        && row.kind == new.kind
        && row.title == new.title
        && row.message == new.message
        && row.source == new.source
        && same_data
}

/// One alert, if it exists and is in the caller's scope (otherwise 404, so ids outside
/// one's scope are indistinguishable from unknown ones).
pub async fn get_alert(
    state: &AppState,
    principal: &Principal,
    id: String,
) -> Result<Alert, ApiError> {
    if !principal.role.may_subscribe() {
        return Err(ApiError::Forbidden(format!(
            "role {} may not read alerts",
            principal.role
        )));
    }
    // Not an id any alert can have: 404 without a query (PostgreSQL refuses a NUL in a
    // text parameter with an error — it was a 500 — not an empty result).
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(no_alert(&id));
    }
    let principal = principal.clone();
    db::run(&state.pool, move |conn| {
        db::on_one_snapshot(conn, |conn| {
            let allowed = allowed_in(conn, &principal)?;
            match load_alert(conn, &id)? {
                Some(alert) if allowed.contains(&alert.patient_id) => Ok(alert),
                _ => Err(no_alert(&id)),
            }
        })
    })
    .await
}

/// Alerts in the caller's scope matching the filters.
pub async fn list_alerts(
    state: &AppState,
    principal: &Principal,
    query: ListQuery,
) -> Result<AlertList, ApiError> {
    if !principal.role.may_subscribe() {
        return Err(ApiError::Forbidden(format!(
            "role {} may not read alerts",
            principal.role
        )));
    }
    let principal = principal.clone();
    db::run(&state.pool, move |conn| {
        db::on_one_snapshot(conn, |conn| {
            let allowed = allowed_in(conn, &principal)?;
            query.requested.authorize(principal.role, &allowed)?;
            let head = events::head(conn)?;
            let filter = alerts::ListFilter {
                patients: query
                    .requested
                    .effective(&allowed)
                    .map(|s| s.into_iter().collect()),
                status: query.status.map(|s| s.as_str().to_owned()),
                severity: query.severity.map(|s| s.as_str().to_owned()),
                after: query.after,
                limit: query.limit,
            };
            let rows = alerts::list(conn, &filter)?;
            Ok(AlertList {
                alerts: with_acks(conn, rows)?,
                last_seq: head,
            })
        })
    })
    .await
}

/// Loads one alert with its acknowledgments.
pub fn load_alert(conn: &mut AnyConnection, id: &str) -> Result<Option<Alert>, ApiError> {
    let Some(row) = alerts::get(conn, id)? else {
        return Ok(None);
    };
    Ok(with_acks(conn, vec![row])?.pop())
}

/// Attaches acknowledgments to rows (one query for all of them).
pub fn with_acks(conn: &mut AnyConnection, rows: Vec<AlertRow>) -> Result<Vec<Alert>, ApiError> {
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut by_alert: HashMap<String, Vec<Acknowledgment>> = HashMap::new();
    for ack in acks::for_alerts(conn, &ids)? {
        let AckRow {
            alert_id,
            user_id,
            role,
            status,
            note,
            created_at,
            ..
        } = ack;
        by_alert
            .entry(alert_id)
            .or_default()
            .push(Acknowledgment::from_parts(
                user_id, role, status, note, created_at,
            ));
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let acks = by_alert.remove(&row.id).unwrap_or_default();
            to_alert(&row, acks)
        })
        .collect())
}

/// The wire form of a stored alert.
pub fn to_alert(row: &AlertRow, acknowledgments: Vec<Acknowledgment>) -> Alert {
    Alert {
        id: row.id.clone(),
        seq: row.seq,
        last_seq: row.last_seq,
        patient_id: row.patient_id.clone(),
        severity: row.severity.clone(),
        kind: row.kind.clone(),
        title: row.title.clone(),
        message: row.message.clone(),
        // Stored only after validation: a row that no longer parses was changed outside
        // Vigil. It is still shown (its other fields are intact), and said loudly.
        data: serde_json::from_str(&row.data).unwrap_or_else(|e| {
            log::error!(
                "alert {} has stored data that is not JSON ({e}); answered as {{}}",
                row.id
            );
            serde_json::json!({})
        }),
        source: row.source.clone(),
        status: row.status.clone(),
        created_at: format_millis(row.created_at),
        updated_at: format_millis(row.updated_at),
        acknowledgments,
    }
}

/// The alert as its creation answered it: open, unacknowledged, its latest change its
/// creation. An idempotent replay answers this, never the current state, so a producer's
/// retry cannot read what it may not (acknowledgments, notes, status) — a service token
/// may raise alerts but not read them.
fn as_created(row: &AlertRow) -> Alert {
    let mut alert = to_alert(row, Vec::new());
    alert.status = AlertStatus::Open.as_str().to_owned();
    alert.last_seq = row.seq;
    alert.updated_at = alert.created_at.clone();
    alert
}

fn stored_row(row: &NewAlertRow<'_>) -> AlertRow {
    AlertRow {
        id: row.id.to_owned(),
        seq: row.seq,
        last_seq: row.last_seq,
        patient_id: row.patient_id.to_owned(),
        severity: row.severity.to_owned(),
        kind: row.kind.to_owned(),
        title: row.title.to_owned(),
        message: row.message.to_owned(),
        data: row.data.to_owned(),
        source: row.source.to_owned(),
        status: row.status.to_owned(),
        created_by: row.created_by.to_owned(),
        request_id: row.request_id.map(str::to_owned),
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

/// 404 for an alert id: it is named when it is a UUID (what an alert id is), and not
/// echoed otherwise — a path segment of NUL, escapes or 65,000 characters came back whole.
pub fn no_alert(id: &str) -> ApiError {
    if uuid::Uuid::parse_str(id).is_ok() {
        ApiError::NotFound(format!("no alert {id}"))
    } else {
        ApiError::NotFound("no alert with that id (alert ids are UUIDs)".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::same_json;
    use serde_json::Value;

    fn same(a: &str, b: &str) -> bool {
        let parse = |s: &str| serde_json::from_str::<Value>(s).expect("JSON");
        same_json(&parse(a), &parse(b))
    }

    #[test]
    fn one_number_written_differently_is_the_same() {
        for (a, b) in [
            ("93", "93.0"),
            ("93", "9.3e1"),
            ("-4", "-4.0"),
            ("0.5", "5e-1"),
        ] {
            assert!(same(a, b), "{a} and {b}");
            assert!(same(b, a), "{b} and {a}");
        }
        assert!(same(r#"{"a":1,"b":[2.0]}"#, r#"{"b":[2],"a":1e0}"#));
    }

    /// A retry whose big integer became another number was taken for the same alert
    /// (both went through a double), and the new value was dropped unseen.
    #[test]
    fn integers_are_never_rounded_to_match_a_decimal() {
        for (a, b) in [
            ("9007199254740993", "9007199254740992.0"),
            ("18446744073709551615", "1.8446744073709552e19"),
            ("-9223372036854775807", "-9.223372036854775808e18"),
            ("93", "93.5"),
        ] {
            assert!(!same(a, b), "{a} and {b}");
            assert!(!same(b, a), "{b} and {a}");
        }
        assert!(same("9007199254740992", "9007199254740992.0"));
    }
}
