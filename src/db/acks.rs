//! Acknowledgment rows (the audit trail).

use diesel::prelude::*;

use super::models::{AckRow, NewAckRow};
use super::pool::AnyConnection;
use super::schema::acknowledgments;

/// Appends an acknowledgment.
pub fn insert(conn: &mut AnyConnection, row: &NewAckRow<'_>) -> QueryResult<()> {
    diesel::insert_into(acknowledgments::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Every acknowledgment of the given alerts, oldest first.
pub fn for_alerts(conn: &mut AnyConnection, alert_ids: &[String]) -> QueryResult<Vec<AckRow>> {
    if alert_ids.is_empty() {
        return Ok(Vec::new());
    }
    acknowledgments::table
        .filter(acknowledgments::alert_id.eq_any(alert_ids))
        .select(AckRow::as_select())
        .order(acknowledgments::seq.asc())
        .load(conn)
}
