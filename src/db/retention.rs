//! The event log's retention (`VIGIL_EVENT_RETENTION_DAYS`): old events are deleted so
//! the log (each event a full copy of its alert) does not fill the disk. Alerts and
//! their acknowledgments are kept; only the replay history goes.
//!
//! The pruner raises `event_retention.pruned_through` in the same transaction as its
//! deletion. A resume from an id below it gets `reset`, and a replay reads it after each
//! batch: if it passed the replay's cursor, events the replay had still to send may be
//! gone, and the screen is told to reload instead of being given a partial replay.

use std::time::Duration;

use diesel::prelude::*;
use prometheus::IntCounter;

use super::Writer;
use super::pool::AnyConnection;
use super::schema::{event_retention, events};

/// The highest event id the pruner may have deleted (0: none ever was).
pub fn pruned_through(conn: &mut AnyConnection) -> QueryResult<i64> {
    event_retention::table
        .filter(event_retention::id.eq(1))
        .select(event_retention::pruned_through)
        .first(conn)
}

/// Deletes the oldest events written before `cutoff_millis`, at most `max_rows` of them,
/// oldest first and stopping at the first younger one; returns how many went. Call it
/// in a write transaction: the mark moves with the deletion.
pub fn prune_before(
    conn: &mut AnyConnection,
    cutoff_millis: i64,
    max_rows: i64,
) -> QueryResult<usize> {
    let through = pruned_through(conn)?;
    let oldest: Vec<(i64, i64)> = events::table
        .filter(events::seq.gt(through))
        .order(events::seq.asc())
        .limit(max_rows)
        .select((events::seq, events::created_at))
        .load(conn)?;
    // A prefix in id order: the mark must never pass an event that is kept.
    let Some(last) = oldest
        .iter()
        .take_while(|&&(_, created_at)| created_at < cutoff_millis)
        .map(|&(seq, _)| seq)
        .last()
    else {
        return Ok(0);
    };
    diesel::update(
        event_retention::table
            .filter(event_retention::id.eq(1))
            .filter(event_retention::pruned_through.lt(last)),
    )
    .set(event_retention::pruned_through.eq(last))
    .execute(conn)?;
    diesel::delete(events::table.filter(events::seq.le(last))).execute(conn)
}

/// A retention as an operator set it: whole days, or seconds for shorter ones (tests).
pub fn describe(keep: Duration) -> String {
    match keep.as_secs() {
        86_400 => "1 day".to_owned(),
        secs if secs > 86_400 && secs % 86_400 == 0 => format!("{} days", secs / 86_400),
        _ => format!("{:?}", keep),
    }
}

/// Events deleted per write: about 3 ms of the writer's time on SQLite (1.5 KiB events),
/// so alerts committed with it wait no longer than that.
const PRUNE_BATCH: i64 = 500;
/// The pause between two writes of a backlog (the first round after an upgrade, or after
/// the retention was shortened: millions of events), so the pruner takes at most a few
/// percent of the writer's time and alerts never queue behind it.
const BACKLOG_PAUSE: Duration = Duration::from_millis(50);

/// Deletes events older than `keep` every `every`, a batch per write through `writer`
/// (SQLite: one writer for all), until none is due. Failures are logged and retried at
/// the next round: nothing depends on the pruner but the disk.
pub fn spawn_pruner(writer: Writer, keep: Duration, every: Duration, pruned: IntCounter) {
    let keep_millis = i64::try_from(keep.as_millis()).unwrap_or(i64::MAX);
    actix_web::rt::spawn(async move {
        let mut rounds = tokio::time::interval(every);
        rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            rounds.tick().await;
            let cutoff = crate::domain::now_millis().saturating_sub(keep_millis);
            loop {
                match writer
                    .write(move |c| Ok(prune_before(c, cutoff, PRUNE_BATCH)?))
                    .await
                {
                    Ok(gone) => {
                        pruned.inc_by(u64::try_from(gone).unwrap_or(0));
                        log::debug!("event retention: {gone} events pruned");
                        if i64::try_from(gone).unwrap_or(0) < PRUNE_BATCH {
                            break;
                        }
                        tokio::time::sleep(BACKLOG_PAUSE).await;
                    }
                    Err(e) => {
                        log::warn!(
                            "event retention: pruning failed, tried again in {} s: {e}",
                            every.as_secs()
                        );
                        break;
                    }
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retention_is_described_in_the_days_it_was_set_in() {
        let day = Duration::from_secs(86_400);
        assert_eq!(describe(day), "1 day");
        assert_eq!(describe(day * 7), "7 days");
        assert_eq!(describe(Duration::from_millis(1500)), "1.5s");
    }
}
