//! The append-only event log and its sequence.

use diesel::prelude::*;

use super::models::{EventRow, NewEventRow};
use super::pool::AnyConnection;
use super::schema::{event_head, events, skipped_ids};

/// Allocates the next sequence number. Call it first in a write transaction: the row
/// update takes the database's write lock (SQLite) or the row lock (PostgreSQL) until
/// commit, so numbers are handed out in commit order and a rollback returns the number.
pub fn next_seq(conn: &mut AnyConnection) -> QueryResult<i64> {
    diesel::update(event_head::table.filter(event_head::id.eq(1)))
        .set(event_head::seq.eq(event_head::seq + 1))
        .execute(conn)?;
    head(conn)
}

/// Moves the log's head `count` ids on without events, so that none of those ids is ever
/// handed out: after a backup is restored, the ids issued since the backup must not be
/// issued again (a screen resuming from one would skip the alerts reusing it). Returns
/// the new head.
pub fn skip_ids(conn: &mut AnyConnection, count: i64) -> QueryResult<i64> {
    conn.transaction(|c| {
        let before = head(c)?;
        diesel::update(event_head::table.filter(event_head::id.eq(1)))
            .set(event_head::seq.eq(event_head::seq + count))
            .execute(c)?;
        let after = head(c)?;
        diesel::insert_into(skipped_ids::table)
            .values((
                skipped_ids::after_seq.eq(before),
                skipped_ids::upto_seq.eq(after),
                skipped_ids::created_at.eq(crate::domain::now_millis()),
            ))
            .execute(c)?;
        Ok(after)
    })
}

/// The ranges `(after, upto]` of ids skipped with [`skip_ids`]: never issued here.
pub fn skipped(conn: &mut AnyConnection) -> QueryResult<Vec<(i64, i64)>> {
    skipped_ids::table
        .select((skipped_ids::after_seq, skipped_ids::upto_seq))
        .load(conn)
}

/// The newest sequence number handed out (0 when the log is empty).
pub fn head(conn: &mut AnyConnection) -> QueryResult<i64> {
    event_head::table
        .filter(event_head::id.eq(1))
        .select(event_head::seq)
        .first(conn)
}

/// The oldest sequence number still held, if any.
pub fn oldest(conn: &mut AnyConnection) -> QueryResult<Option<i64>> {
    events::table
        .select(diesel::dsl::min(events::seq))
        .first(conn)
}

/// The data of the event numbered `seq`, if the log holds it.
pub fn payload(conn: &mut AnyConnection, seq: i64) -> QueryResult<Option<String>> {
    events::table
        .filter(events::seq.eq(seq))
        .select(events::payload)
        .first(conn)
        .optional()
}

/// Appends an event.
pub fn insert(conn: &mut AnyConnection, row: &NewEventRow<'_>) -> QueryResult<()> {
    diesel::insert_into(events::table)
        .values(row)
        .execute(conn)
        .map(|_| ())
}

/// Events with `after < seq <= upto`, oldest first, limited to `patients` when given.
pub fn range(
    conn: &mut AnyConnection,
    after: i64,
    upto: i64,
    patients: Option<&[String]>,
    limit: i64,
) -> QueryResult<Vec<EventRow>> {
    let mut query = events::table
        .filter(events::seq.gt(after))
        .filter(events::seq.le(upto))
        .select(EventRow::as_select())
        .order(events::seq.asc())
        .limit(limit)
        .into_boxed();
    if let Some(patients) = patients {
        query = query.filter(events::patient_id.eq_any(patients));
    }
    query.load(conn)
}
