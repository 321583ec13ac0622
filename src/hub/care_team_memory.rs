//! The care-team changes the manager applied lately, for registrations whose scope was
//! read from the database before a change was applied (see `Connect::allowed_at`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::event::CareTeamChange;

/// How long a change is remembered (far longer than reading a scope ever takes).
const KEPT_FOR: Duration = Duration::from_secs(300);
/// At most this many changes are remembered, the oldest dropped first. A flood of
/// care-team messages (anyone able to publish on the Redis channel, repeating changes the
/// database confirms) grew every instance by hundreds of MB in five minutes; a real
/// registration races only the last few changes.
pub const MAX_REMEMBERED: usize = 10_000;

/// Recent changes, oldest first, bounded in age and number.
#[derive(Debug, Default)]
pub struct CareTeamMemory {
    changes: VecDeque<(Instant, CareTeamChange)>,
}

impl CareTeamMemory {
    /// Remembers `change`, applied when `received`; forgets what is too old or too many.
    pub fn remember(&mut self, received: Instant, change: CareTeamChange) {
        let now = Instant::now();
        while self
            .changes
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > KEPT_FOR)
        {
            self.changes.pop_front();
        }
        self.changes.push_back((received, change));
        while self.changes.len() > MAX_REMEMBERED {
            self.changes.pop_front();
        }
    }

    /// `user_id`'s changes received at or after `since`, in the order they were applied.
    pub fn of_user_since<'a>(
        &'a self,
        user_id: &'a str,
        since: Instant,
    ) -> impl Iterator<Item = &'a CareTeamChange> + 'a {
        self.changes
            .iter()
            .filter(move |(at, c)| *at >= since && c.user_id == user_id)
            .map(|(_, c)| c)
    }

    /// How many changes are remembered.
    pub fn len(&self) -> usize {
        self.changes.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(user: &str, patient: &str, assigned: bool) -> CareTeamChange {
        CareTeamChange {
            after_seq: 0,
            version: 0,
            user_id: user.to_owned(),
            patient_id: patient.to_owned(),
            assigned,
        }
    }

    #[test]
    fn a_flood_of_changes_is_bounded_and_the_latest_are_kept() {
        let mut memory = CareTeamMemory::default();
        let start = Instant::now();
        for i in 0..(MAX_REMEMBERED + 5_000) {
            memory.remember(Instant::now(), change("alice", &format!("p{i}"), true));
        }
        assert_eq!(memory.len(), MAX_REMEMBERED);
        let last = format!("p{}", MAX_REMEMBERED + 4_999);
        assert_eq!(
            memory
                .of_user_since("alice", start)
                .last()
                .map(|c| c.patient_id.as_str()),
            Some(last.as_str())
        );
    }

    #[test]
    fn only_the_user_s_changes_since_the_read_are_given() {
        let mut memory = CareTeamMemory::default();
        let before = Instant::now();
        memory.remember(before, change("alice", "p1", true));
        let read_at = Instant::now();
        memory.remember(Instant::now(), change("bob", "p2", true));
        memory.remember(Instant::now(), change("alice", "p3", false));
        let seen: Vec<&str> = memory
            .of_user_since("alice", read_at)
            .map(|c| c.patient_id.as_str())
            .collect();
        assert_eq!(seen, vec!["p3"]);
    }
}
