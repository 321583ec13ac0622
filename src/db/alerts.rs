//! Alert rows: insert, fetch, list, status update, idempotency keys.

use diesel::prelude::*;

use super::chunked;
use super::models::{AlertRow, NewAlertRow};
use super::pool::AnyConnection;
use super::schema::{alerts, idempotency_keys};

/// Filters of `GET /api/v1/alerts`, already validated.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only these patients; `None` means every patient.
    pub patients: Option<Vec<String>>,
    /// Only this status.
    pub status: Option<String>,
    /// Only this severity.
    pub severity: Option<String>,
    /// Only alerts changed after this sequence number, oldest change first.
    pub after: Option<i64>,
    /// At most this many.
    pub limit: i64,
}

/// Inserts a new alert.
pub fn insert(conn: &mut AnyConnection, row: &NewAlertRow<'_>) -> QueryResult<()> {
    diesel::insert_into(alerts::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// One alert by id. Ids are stored as written, in lower case; a UUID is the same in
/// any case (RFC 9562 §4), so an upper-case id finds its alert too.
pub fn get(conn: &mut AnyConnection, id: &str) -> QueryResult<Option<AlertRow>> {
    alerts::table
        .find(id.to_ascii_lowercase())
        .select(AlertRow::as_select())
        .first(conn)
        .optional()
}

/// Alerts matching a filter: newest first, or with `after`, oldest change first.
pub fn list(conn: &mut AnyConnection, filter: &ListFilter) -> QueryResult<Vec<AlertRow>> {
    let newest_first = filter.after.is_none();
    chunked::over_patients(
        filter.patients.as_deref(),
        filter.limit,
        |row: &AlertRow| {
            if newest_first { -row.seq } else { row.last_seq }
        },
        |patients| list_of(conn, filter, patients),
    )
}

/// [`list`] for `patients` instead of the filter's own.
fn list_of(
    conn: &mut AnyConnection,
    filter: &ListFilter,
    patients: Option<&[String]>,
) -> QueryResult<Vec<AlertRow>> {
    let mut query = alerts::table.select(AlertRow::as_select()).into_boxed();
    if let Some(patients) = patients {
        query = query.filter(alerts::patient_id.eq_any(patients));
    }
    if let Some(status) = &filter.status {
        query = query.filter(alerts::status.eq(status));
    }
    if let Some(severity) = &filter.severity {
        query = query.filter(alerts::severity.eq(severity));
    }
    query = match filter.after {
        Some(after) => query
            .filter(alerts::last_seq.gt(after))
            .order(alerts::last_seq.asc()),
        None => query.order(alerts::seq.desc()),
    };
    query.limit(filter.limit).load(conn)
}

/// Records a status change and the event that made it.
pub fn set_status(
    conn: &mut AnyConnection,
    id: &str,
    status: &str,
    last_seq: i64,
    updated_at: i64,
) -> QueryResult<()> {
    diesel::update(alerts::table.find(id))
        .set((
            alerts::status.eq(status),
            alerts::last_seq.eq(last_seq),
            alerts::updated_at.eq(updated_at),
        ))
        .execute(conn)
        .map(|_| ())
}

/// The alert an idempotency key already produced, if any.
pub fn find_idempotent(
    conn: &mut AnyConnection,
    principal: &str,
    key: &str,
) -> QueryResult<Option<String>> {
    idempotency_keys::table
        .filter(idempotency_keys::principal.eq(principal))
        .filter(idempotency_keys::idem_key.eq(key))
        .select(idempotency_keys::alert_id)
        .first(conn)
        .optional()
}

/// Remembers which alert an idempotency key produced.
pub fn remember_idempotent(
    conn: &mut AnyConnection,
    principal: &str,
    key: &str,
    alert_id: &str,
    created_at: i64,
) -> QueryResult<()> {
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::principal.eq(principal),
            idempotency_keys::idem_key.eq(key),
            idempotency_keys::alert_id.eq(alert_id),
            idempotency_keys::created_at.eq(created_at),
        ))
        .execute(conn)
        .map(|_| ())
}
