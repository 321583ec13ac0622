//! Acknowledgment rows (the audit trail).

use diesel::prelude::*;

use super::models::{AckRow, NewAckRow};
use super::pool::AnyConnection;
use super::schema::{ack_idempotency_keys, acknowledgments};
use crate::domain::alert::TrailSize;

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

/// How many acknowledgments an alert has and the bytes of their notes together, and
/// the same for those `user_id` added, for the bounds on its trail
/// ([`crate::domain::alert::check_trail_room`]); counted by the database in one statement
/// rather than loaded (an old trail may be long; on PostgreSQL the log's head lock is
/// held meanwhile).
pub fn trail_size(
    conn: &mut AnyConnection,
    alert_id: &str,
    user_id: &str,
) -> QueryResult<(TrailSize, TrailSize)> {
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Text};
    let (entries, note_bytes, my_entries, my_note_bytes) = acknowledgments::table
        .filter(acknowledgments::alert_id.eq(alert_id))
        .select((
            diesel::dsl::count_star(),
            sql::<BigInt>("CAST(COALESCE(SUM(octet_length(note)), 0) AS BIGINT)"),
            sql::<BigInt>("CAST(COALESCE(SUM(CASE WHEN user_id = ")
                .bind::<Text, _>(user_id)
                .sql(" THEN 1 ELSE 0 END), 0) AS BIGINT)"),
            sql::<BigInt>("CAST(COALESCE(SUM(CASE WHEN user_id = ")
                .bind::<Text, _>(user_id)
                .sql(" THEN octet_length(note) END), 0) AS BIGINT)"),
        ))
        .first::<(i64, i64, i64, i64)>(conn)?;
    Ok((
        TrailSize {
            entries,
            note_bytes,
        },
        TrailSize {
            entries: my_entries,
            note_bytes: my_note_bytes,
        },
    ))
}

/// The acknowledgment an idempotency key already recorded, if any.
pub fn find_idempotent(
    conn: &mut AnyConnection,
    principal: &str,
    key: &str,
) -> QueryResult<Option<AckRow>> {
    ack_idempotency_keys::table
        .inner_join(
            acknowledgments::table.on(acknowledgments::seq.eq(ack_idempotency_keys::ack_seq)),
        )
        .filter(ack_idempotency_keys::principal.eq(principal))
        .filter(ack_idempotency_keys::idem_key.eq(key))
        .select(AckRow::as_select())
        .first(conn)
        .optional()
}

/// Remembers which acknowledgment an idempotency key recorded.
pub fn remember_idempotent(
    conn: &mut AnyConnection,
    principal: &str,
    key: &str,
    ack_seq: i64,
    created_at: i64,
) -> QueryResult<()> {
    diesel::insert_into(ack_idempotency_keys::table)
        .values((
            ack_idempotency_keys::principal.eq(principal),
            ack_idempotency_keys::idem_key.eq(key),
            ack_idempotency_keys::ack_seq.eq(ack_seq),
            ack_idempotency_keys::created_at.eq(created_at),
        ))
        .execute(conn)
        .map(|_| ())
}
