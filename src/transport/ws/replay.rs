//! A resuming dashboard's missed events, read and encoded before it goes live.

use crate::db;
use crate::transport::frames::EncodedEvent;
use crate::transport::{Batch, ReplayRange};

/// The missed events a resuming session sends before it goes live: `(after, upto]` in
/// its scope at connect time.
pub(super) struct PendingReplay {
    /// The missed events.
    pub(super) range: ReplayRange,
    /// The oldest event the log holds, for a `reset` frame's data.
    pub(super) oldest: Option<i64>,
    /// `VIGIL_WS_REPLAY_MAX_KIB` in bytes. The session actor writes into a buffer with no
    /// backpressure (unlike the SSE body, read as the socket drains), so a longer gap gets
    /// a `reset` and the dashboard reloads through `GET /api/v1/alerts`: never a partial
    /// replay, and never more than this held for a dashboard that does not read.
    pub(super) max_bytes: usize,
}

/// Rows read per query of a WebSocket replay: with alerts of up to ~18 KiB, one batch
/// stays well under a MiB however large the budget.
const WS_REPLAY_BATCH: i64 = 50;

/// One missed event, encoded: its `seq`, its patient and the frame.
pub(super) type ReplayFrame = (i64, String, bytestring::ByteString);

/// What a resume's replay came to.
pub(super) enum Replayed {
    /// Every missed event, encoded.
    Frames(Vec<ReplayFrame>),
    /// The frames passed `max_bytes`: the dashboard must reload.
    TooLong,
    /// The retention pruner deleted missed events while they were read: the dashboard
    /// must reload. `oldest` is the oldest event still held.
    Pruned { oldest: Option<i64> },
}

/// Reads and encodes `range` as WebSocket frames, stopping as soon as they pass
/// `max_bytes` or the pruner overtakes the read.
pub(super) fn read_replay(
    conn: &mut db::AnyConnection,
    range: ReplayRange,
    max_bytes: usize,
) -> diesel::QueryResult<Replayed> {
    let mut frames = Vec::new();
    let mut bytes = 0usize;
    let mut next = Some(range);
    while let Some(range) = next {
        let (events, rest) = match range.read_batch(conn, WS_REPLAY_BATCH)? {
            Batch::Read(events, rest) => (events, rest),
            Batch::Pruned { oldest } => return Ok(Replayed::Pruned { oldest }),
        };
        for event in events {
            let (seq, patient) = (event.seq, event.patient_id.clone());
            let frame = EncodedEvent::new(event).ws().clone();
            bytes += frame.len();
            if bytes > max_bytes {
                return Ok(Replayed::TooLong);
            }
            frames.push((seq, patient, frame));
        }
        next = rest;
    }
    Ok(Replayed::Frames(frames))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;
    use crate::db::retention;
    use crate::transport::test_support::{insert_event, migrated_pool};

    /// A dashboard's replay read while the pruner deletes events it has still to send
    /// comes back `Pruned` (a `reset` frame), not as the frames that were left.
    #[test]
    fn a_replay_the_pruner_overtakes_is_a_reset_not_the_frames_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = migrated_pool(&dir);
        let mut conn = pool.get().expect("connection");
        for seq in 1..=4 {
            insert_event(&mut conn, seq, seq);
        }
        let range = |after| ReplayRange {
            after,
            upto: 4,
            patients: None,
            care_team_of: None,
        };
        assert!(matches!(
            read_replay(&mut conn, range(0), 1 << 20).expect("replay"),
            Replayed::Frames(frames) if frames.len() == 4
        ));
        // Events 1 and 2 pruned: a replay from 1 had still to send 2.
        assert_eq!(
            retention::prune_before(&mut conn, 3, 100).expect("prune"),
            2
        );
        assert!(matches!(
            read_replay(&mut conn, range(1), 1 << 20).expect("replay"),
            Replayed::Pruned { oldest: Some(3) }
        ));
        // From the mark on, nothing it must send is gone.
        assert!(matches!(
            read_replay(&mut conn, range(2), 1 << 20).expect("replay"),
            Replayed::Frames(frames) if frames.iter().map(|f| f.0).eq([3, 4])
        ));
    }
}
