//! A failure that lasts is said once, then at most every so often. Loops that retry it
//! otherwise bury every other line: the pool's connection attempts with PostgreSQL down
//! (a chaos audit: about 250 lines in 20 s), the checkpointer's twice-a-second
//! checkpoint on a full disk (an outage audit: two `WAL checkpoint failed` lines a
//! second for as long as it lasted).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// When a lasting failure was last said.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Mutex<Option<Instant>>,
}

impl Throttle {
    /// Says a failure at most every `every` while it lasts.
    pub const fn new(every: Duration) -> Self {
        Throttle {
            every,
            last: Mutex::new(None),
        }
    }

    /// Whether to say the failure now; if so, it counts as said.
    pub fn due(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|at| at.elapsed() >= self.every);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// The failure is over: the next one is said at once. `true` when one had been
    /// said, so that its end can be said too.
    pub fn clear(&self) -> bool {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .is_some()
    }

    /// How long a lasting failure goes unsaid, for the line that says it.
    pub fn every(&self) -> Duration {
        self.every
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lasting_failure_is_said_once_until_it_is_over() {
        let throttle = Throttle::new(Duration::from_secs(3600));
        assert!(throttle.due(), "the first time");
        assert!(!throttle.due(), "not again while it lasts");
        assert!(throttle.clear(), "it had been said");
        assert!(!throttle.clear(), "nothing to end twice");
        assert!(throttle.due(), "a new failure is said at once");
    }

    #[test]
    fn it_is_said_again_once_its_period_has_passed() {
        let throttle = Throttle::new(Duration::ZERO);
        assert!(throttle.due());
        assert!(throttle.due());
    }
}
