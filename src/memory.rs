//! Giving the memory of closed streams back to the operating system.
//!
//! glibc's malloc keeps what a thread frees in that thread's arena for reuse, and returns
//! it only from the top of a heap. After 19,000 streams had closed, `vigil serve` stayed
//! at the 190 MiB it had reached with them open; `malloc_trim` brought it back to 30 MiB.
//! The manager, which sees every stream open and close, asks for a trim once a wave of
//! streams has closed ([`ClosedStreams`]); the trim runs on a thread of its own so that
//! the fan-out never waits for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How many streams must have closed since the last trim before another trim is worth its
/// cost: about 10 KiB each, so a few MiB.
pub const TRIM_AFTER_CLOSED: usize = 500;

/// The least time between two trims for churn: under steady churn (streams closing as
/// others open, a ward's screens reconnecting all day) a trim would be due every few
/// hundred closes, and each locks every arena for a moment. A wave (the number open
/// falling) is trimmed at once, tick after tick while it lasts.
pub const TRIM_INTERVAL: Duration = Duration::from_secs(60);

/// Counts the streams closed since the last trim, so that a trim follows a wave of closed
/// streams, or steady churn, and not every single close. A wave: the number open has fallen
/// by [`TRIM_AFTER_CLOSED`] since the most were open. Churn: as many have closed since the
/// last trim — the streams open then, plus those opened since, less those open now — and
/// the last trim is [`TRIM_INTERVAL`] old. Only waves had counted, so under steady churn no
/// trim ever came: a 35-minute soak of ~390 streams (22,959 closed) left 59 MB resident
/// after every client had gone, 32 MB after a trim by hand.
#[derive(Debug, Default)]
pub struct ClosedStreams {
    high_water: usize,
    open_at_trim: usize,
    opened_since_trim: usize,
    last_trim: Option<Instant>,
}

impl ClosedStreams {
    /// Records the number of streams open now, after one opened.
    pub fn opened(&mut self, open: usize) {
        self.high_water = self.high_water.max(open);
        self.opened_since_trim += 1;
    }

    /// Whether a wave, or enough churn, has closed streams since the last trim (`open` are
    /// open now); if so, the counts start again from `open`.
    pub fn trim_due(&mut self, open: usize, now: Instant) -> bool {
        let wave = self.high_water.saturating_sub(open) >= TRIM_AFTER_CLOSED;
        let closed = (self.open_at_trim + self.opened_since_trim).saturating_sub(open);
        let rested = self
            .last_trim
            .is_none_or(|last| now.saturating_duration_since(last) >= TRIM_INTERVAL);
        let churn = closed >= TRIM_AFTER_CLOSED && rested;
        if !(wave || churn) {
            return false;
        }
        self.high_water = open;
        self.open_at_trim = open;
        self.opened_since_trim = 0;
        self.last_trim = Some(now);
        true
    }
}

/// True while a trim thread runs, so that trims never pile up.
static TRIMMING: AtomicBool = AtomicBool::new(false);

/// Asks the allocator, on a thread of its own, to return the free memory of every arena
/// to the operating system. Does nothing if a trim is already running.
pub fn release_free_memory() {
    if TRIMMING.swap(true, Ordering::AcqRel) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("vigil-trim".to_owned())
        .spawn(|| {
            let started = Instant::now();
            let released = trim_allocator();
            log::debug!(
                "returned free memory to the operating system: released={released} in {:?}",
                started.elapsed()
            );
            TRIMMING.store(false, Ordering::Release);
        });
    if let Err(e) = spawned {
        log::warn!("could not start the thread that returns free memory: {e}");
        TRIMMING.store(false, Ordering::Release);
    }
}

/// `malloc_trim(0)`: the free pages of every glibc arena back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[expect(
    unsafe_code,
    reason = "malloc_trim is a C function; no safe binding exists"
)]
fn trim_allocator() -> bool {
    // SAFETY: malloc_trim takes no pointers and leaves live allocations alone; glibc
    // locks each arena while it trims it, so it is safe beside every other thread.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators (musl, macOS, Windows) have no such call and need none.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim_allocator() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_is_due_once_a_wave_of_streams_has_closed() {
        let now = Instant::now();
        let mut closed = ClosedStreams::default();
        for open in 1..=2_000 {
            closed.opened(open);
        }
        assert!(!closed.trim_due(2_000 - TRIM_AFTER_CLOSED + 1, now));
        assert!(closed.trim_due(2_000 - TRIM_AFTER_CLOSED, now));
        // Counted again from where the last trim left off; a wave that goes on is trimmed
        // again at once, whatever the interval (the bench's 3,000 streams close over
        // several ticks).
        assert!(!closed.trim_due(1_000 + 1, now));
        assert!(closed.trim_due(1_000, now));
        assert!(!closed.trim_due(501, now));
        assert!(closed.trim_due(500, now));
        assert!(
            !closed.trim_due(1, now),
            "fewer than the threshold were open since"
        );
    }

    #[test]
    fn streams_that_only_open_are_no_wave() {
        let start = Instant::now();
        let mut closed = ClosedStreams::default();
        for open in 1..=10_000 {
            closed.opened(open);
            assert!(!closed.trim_due(open, start + TRIM_INTERVAL));
        }
    }

    /// Streams closing as others open (the number open steady) had never made a trim due.
    #[test]
    fn steady_churn_is_trimmed_once_an_interval() {
        let start = Instant::now();
        let mut closed = ClosedStreams::default();
        for open in 1..=400 {
            closed.opened(open);
        }
        let mut trims = 0;
        for second in 0..300u64 {
            // Twelve streams a second close and as many open: always 400 open.
            for _ in 0..12 {
                closed.opened(400);
            }
            if closed.trim_due(400, start + Duration::from_secs(second)) {
                trims += 1;
            }
        }
        assert_eq!(trims, 5, "one trim a minute over five minutes");
    }
}
