//! The append-only event log and its sequence.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use diesel::prelude::*;

use super::chunked;
use super::models::{EventRow, NewEventRow};
use super::pool::AnyConnection;
use super::schema::{event_head, events, skipped_ids};

/// Ids retired past the highest one an instance has seen when the log is found to have
/// gone back (see [`next_seq`]): more than every instance together hands out in the
/// seconds one may lag behind another.
pub const REWIND_SKIP: i64 = 1_000_000;

/// The highest event id this instance knows the database to have committed: the log's
/// head at startup, then every event its manager delivers. Every event write checks the
/// id it is handed against it (see [`next_seq`]).
#[derive(Debug, Clone, Default)]
pub struct IssuedIds(Arc<AtomicI64>);

impl IssuedIds {
    /// Starts at the log's head read at startup.
    pub fn starting_at(head: i64) -> Self {
        Self(Arc::new(AtomicI64::new(head)))
    }

    /// Records an id seen committed.
    pub fn saw(&self, seq: i64) {
        self.0.fetch_max(seq, Ordering::Relaxed);
    }

    /// The highest id seen committed.
    pub fn highest(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Allocates the next sequence number. Call it first in a write transaction: the row
/// update takes the database's write lock (SQLite) or the row lock (PostgreSQL) until
/// commit, so numbers are handed out in commit order and a rollback returns the number.
///
/// A number at or below one this instance has already seen committed (`issued`) means
/// the database has lost committed events while the server ran: a failover to an
/// asynchronous standby, a crash with `synchronous_commit` off, a backup restored under
/// it. Handed out again, those ids would reach no screen that had seen the lost events
/// (each takes them for ones it already has) and a resume from one would skip the new
/// events silently. So the ids from there to [`REWIND_SKIP`] past the highest seen are
/// retired in the same transaction, as `vigil migrate --skip-ids` does: the event gets
/// a number above every old one, and a screen resuming from a lost id is told to reload.
pub fn next_seq(conn: &mut AnyConnection, issued: &IssuedIds) -> QueryResult<NextEvent> {
    let next = bump_head(conn)?;
    let (seq, highest) = (next.seq, issued.highest());
    if seq > highest {
        return Ok(next);
    }
    let upto = highest.saturating_add(REWIND_SKIP);
    log::error!(
        "the event log went back: the database hands out id {seq}, but this instance has \
         seen events up to {highest} committed; it has lost committed events (a failover \
         to an asynchronous standby, a crash with synchronous_commit off, a restored \
         backup?). Ids {seq} to {upto} are retired: the next event is {}, and screens \
         resuming from a lost id are told to reload",
        upto + 1
    );
    // The head's row is locked since `bump_head`: setting it outright is safe.
    diesel::update(event_head::table.filter(event_head::id.eq(1)))
        .set(event_head::seq.eq(upto))
        .execute(conn)?;
    record_skipped(conn, seq - 1, upto)?;
    bump_head(conn)
}

/// Records the ids `(after, upto]` the head moved past without events as never issued
/// (see [`skipped`]).
fn record_skipped(conn: &mut AnyConnection, after: i64, upto: i64) -> QueryResult<()> {
    diesel::insert_into(skipped_ids::table)
        .values((
            skipped_ids::after_seq.eq(after),
            skipped_ids::upto_seq.eq(upto),
            skipped_ids::created_at.eq(crate::domain::now_millis()),
        ))
        .execute(conn)
        .map(|_| ())
}

/// Takes the head's row lock until the transaction ends, changing nothing: a write that
/// reads before it changes (a care-team replacement) then runs alone among the instances
/// sharing the database, as every event write does (`next_seq` takes the same lock).
pub fn lock_head(conn: &mut AnyConnection) -> QueryResult<()> {
    diesel::update(event_head::table.filter(event_head::id.eq(1)))
        .set(event_head::seq.eq(event_head::seq))
        .execute(conn)
        .map(|_| ())
}

fn bump_head(conn: &mut AnyConnection) -> QueryResult<NextEvent> {
    let (seq, care_team_version) = super::fixed::BumpHead.get_result(conn)?;
    Ok(NextEvent {
        seq,
        care_team_version,
    })
}

/// What an event write is handed by [`next_seq`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextEvent {
    /// The event's sequence number.
    pub seq: i64,
    /// The care teams' version when it was handed out, under the head's lock: every
    /// care-team change committed before this event counts in it, none after. An
    /// instance matches the event to streams only once it has applied that many changes
    /// (`hub::manager`), so an alert raised on one instance moments after a change made on
    /// another is matched under the new team, not the old.
    pub care_team_version: i64,
}

/// The highest care-team version this instance counts: its streams follow every change
/// up to it, so it was committed (see [`bump_care_team_version`]). The same bookkeeping
/// as [`IssuedIds`], for the care teams' version instead of event ids.
pub type CareTeamVersionsSeen = IssuedIds;

/// Moves the care teams' version on for one change (see [`NextEvent`]) and returns the
/// log's head and the change's version. Takes the head's row lock, so that the change
/// falls between two events on every instance.
///
/// A version at or below one this instance already counts (`seen`) means the database
/// lost committed changes while the server ran (a failover to an asynchronous standby,
/// as for [`next_seq`]). Handed out again, it would be taken for a change already
/// applied, and the streams would not follow the new one: the version moves
/// [`REWIND_SKIP`] past the highest counted, and every instance, meeting an event
/// stamped past what its streams follow, reads the care teams back.
pub fn bump_care_team_version(
    conn: &mut AnyConnection,
    seen: &CareTeamVersionsSeen,
) -> QueryResult<(i64, i64)> {
    let (head, version) = super::fixed::BumpCareTeamVersion.get_result(conn)?;
    let highest = seen.highest();
    if version > highest {
        return Ok((head, version));
    }
    let moved = highest.saturating_add(REWIND_SKIP);
    log::error!(
        "the care teams' version went back: the database hands out {version}, but this \
         instance counts changes up to {highest}; it has lost committed changes (a failover \
         to an asynchronous standby, a restored backup?). The version moves to {moved}, and \
         every instance reads its streams' care teams back"
    );
    // The head's row is locked since the bump: setting it outright is safe.
    diesel::update(event_head::table.filter(event_head::id.eq(1)))
        .set(event_head::care_team_version.eq(moved))
        .execute(conn)?;
    Ok((head, moved))
}

/// The care teams' version (see [`NextEvent`]).
pub fn care_team_version(conn: &mut AnyConnection) -> QueryResult<i64> {
    super::fixed::CareTeamVersion.get_result(conn)
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
        record_skipped(c, before, after)?;
        Ok(after)
    })
}

/// The ranges `(after, upto]` of ids skipped with [`skip_ids`], or retired by
/// [`next_seq`] after the database lost events: never issued here.
pub fn skipped(conn: &mut AnyConnection) -> QueryResult<Vec<(i64, i64)>> {
    skipped_ids::table
        .select((skipped_ids::after_seq, skipped_ids::upto_seq))
        .load(conn)
}

/// The newest sequence number handed out (0 when the log is empty).
pub fn head(conn: &mut AnyConnection) -> QueryResult<i64> {
    super::fixed::Head.get_result(conn)
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

/// The ids and payload sizes (bytes) of the events [`range`] would read, without their
/// payloads: a replay sizes its batch before it loads it. SQLite reads a value's size
/// from its record header, not from the value.
pub fn range_sizes(
    conn: &mut AnyConnection,
    after: i64,
    upto: i64,
    patients: Option<&[String]>,
    limit: i64,
) -> QueryResult<Vec<(i64, i64)>> {
    chunked::over_patients(
        patients,
        limit,
        |&(seq, _)| seq,
        |patients| {
            in_range(after, upto, patients, limit)
                .select((
                    events::seq,
                    diesel::dsl::sql::<diesel::sql_types::BigInt>(
                        "CAST(octet_length(payload) AS BIGINT)",
                    ),
                ))
                .load(conn)
        },
    )
}

/// Events with `after < seq <= upto`, oldest first, limited to `patients` when given.
pub fn range(
    conn: &mut AnyConnection,
    after: i64,
    upto: i64,
    patients: Option<&[String]>,
    limit: i64,
) -> QueryResult<Vec<EventRow>> {
    chunked::over_patients(
        patients,
        limit,
        |row: &EventRow| row.seq,
        |patients| {
            in_range(after, upto, patients, limit)
                .select(EventRow::as_select())
                .load(conn)
        },
    )
}

/// The rows [`range`] and [`range_sizes`] read.
fn in_range<'a>(
    after: i64,
    upto: i64,
    patients: Option<&'a [String]>,
    limit: i64,
) -> events::BoxedQuery<'a, <AnyConnection as diesel::Connection>::Backend> {
    let mut query = events::table
        .filter(events::seq.gt(after))
        .filter(events::seq.le(upto))
        .order(events::seq.asc())
        .limit(limit)
        .into_boxed();
    if let Some(patients) = patients {
        query = query.filter(events::patient_id.eq_any(patients));
    }
    query
}
