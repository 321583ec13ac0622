//! Resume decisions: what a `Last-Event-ID` means for a new stream (DESIGN.md,
//! "Resume edge cases"). Never a partial replay: anything doubtful is a `reset`.

/// What to do before going live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// No `Last-Event-ID`: live only.
    Live,
    /// Replay events with `after < seq <= seam` from the log.
    Replay {
        /// Last id the client saw.
        after: i64,
    },
    /// Tell the client to reload; then live.
    Reset {
        /// Why (for the `reset` data).
        reason: &'static str,
    },
}

/// What a resume decision needs to know of the event log, read when a client resumes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogBounds {
    /// The newest id handed out.
    pub head: i64,
    /// The oldest event still held.
    pub oldest: Option<i64>,
    /// Ranges `(after, upto]` of ids the log skipped (`vigil migrate --skip-ids`).
    pub skipped: Vec<(i64, i64)>,
    /// The highest id the retention pruner may have deleted (0: none).
    pub pruned_through: i64,
}

impl LogBounds {
    /// Read only when a client resumes (four queries), inside the same database visit
    /// as its scope, so plain connects stay free of them.
    pub fn read(conn: &mut crate::db::AnyConnection) -> diesel::QueryResult<Self> {
        use crate::db::events;
        Ok(LogBounds {
            head: events::head(conn)?,
            oldest: events::oldest(conn)?,
            skipped: events::skipped(conn)?,
            pruned_through: crate::db::retention::pruned_through(conn)?,
        })
    }
}

/// Decides how to treat a `Last-Event-ID` given the log's bounds. A skipped id below a
/// range's `upto` was never issued here (a `reset`); `upto` itself was the head the skip
/// left, which resets and list envelopes hand out as a resume point, so it replays.
pub fn decide(last_event_id: Option<&str>, log: &LogBounds) -> Resume {
    let (log_head, oldest, skipped) = (log.head, log.oldest, &log.skipped);
    // Not trimmed: " 28 " is not a decimal integer (an HTTP header's surrounding
    // whitespace is not part of its value and never reaches here).
    let Some(raw) = last_event_id else {
        return Resume::Live;
    };
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Resume::Reset {
            reason: "Last-Event-ID is not a decimal integer",
        };
    }
    let Ok(after) = raw.parse::<i64>() else {
        return Resume::Reset {
            reason: "Last-Event-ID is out of range",
        };
    };
    if after > log_head {
        return Resume::Reset {
            reason: "Last-Event-ID is ahead of this server's event log",
        };
    }
    if skipped
        .iter()
        .any(|&(from, upto)| from < after && after < upto)
    {
        return Resume::Reset {
            reason: "Last-Event-ID was never issued by this event log (ids skipped after a restore, or retired after the database lost events)",
        };
    }
    // Past the pruner's mark, events after `after` may have been deleted (those at the
    // mark itself went, so a client that saw it has missed nothing held).
    let pruned = after < log.pruned_through;
    if after != 0 && (pruned || oldest.is_some_and(|oldest| after < oldest - 1)) {
        return Resume::Reset {
            reason: "Last-Event-ID is older than the retained history",
        };
    }
    Resume::Replay { after }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::type_complexity)] // a table of cases reads best inline
    fn resume_edge_cases() {
        let cases: [(Option<&str>, i64, Option<i64>, bool, &str); 15] = [
            (None, 10, Some(1), false, "no id: live"),
            (Some("5"), 10, Some(1), true, "an id in range replays"),
            (Some("0"), 10, Some(1), true, "0 means from the beginning"),
            (
                Some("10"),
                10,
                Some(1),
                true,
                "the head itself replays nothing",
            ),
            (Some("11"), 10, Some(1), false, "ahead of the head"),
            (Some("abc"), 10, Some(1), false, "not a number"),
            (Some("-1"), 10, Some(1), false, "negative"),
            (Some("99999999999999999999"), 10, Some(1), false, "overflow"),
            (Some("3"), 10, Some(8), false, "older than retained"),
            (Some(" 5 "), 10, Some(1), false, "spaces around a number"),
            (Some("\t5"), 10, Some(1), false, "a tab before a number"),
            (Some("4"), 300, Some(1), true, "before the skipped ids"),
            (Some("5"), 300, Some(1), false, "the first skipped id"),
            (Some("103"), 300, Some(1), false, "the last id never issued"),
            (
                Some("104"),
                300,
                Some(1),
                true,
                "the head the skip left is a resume point",
            ),
        ];
        for (id, head, oldest, replays, why) in cases {
            let skipped = if head == 300 {
                vec![(4, 104)]
            } else {
                Vec::new()
            };
            let log = LogBounds {
                head,
                oldest,
                skipped,
                pruned_through: 0,
            };
            let decision = decide(id, &log);
            let is_replay = matches!(decision, Resume::Replay { .. });
            let is_live = decision == Resume::Live;
            assert_eq!(is_replay, replays, "{why}: {decision:?}");
            if id.is_none() {
                assert!(is_live, "{why}");
            }
        }
    }

    /// Ids up to the pruner's mark may have been deleted, even when an older event is
    /// still held (the mark moves before a deletion commits) or none is held at all.
    #[test]
    fn an_id_below_the_pruned_mark_resets() {
        let log = |oldest| LogBounds {
            head: 50,
            oldest,
            skipped: Vec::new(),
            pruned_through: 20,
        };
        for oldest in [Some(21), Some(5), None] {
            for (id, replays) in [
                ("19", false),
                ("1", false),
                ("20", true),
                ("30", true),
                ("0", true),
            ] {
                let decision = decide(Some(id), &log(oldest));
                assert_eq!(
                    matches!(decision, Resume::Replay { .. }),
                    replays,
                    "id {id}, oldest {oldest:?}: {decision:?}"
                );
            }
        }
    }
}
