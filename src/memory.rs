//! Giving the memory of closed streams back to the operating system.
//!
//! glibc's malloc keeps what a thread frees in that thread's arena for reuse, and returns
//! it only from the top of a heap. After 19,000 streams had closed, `vigil serve` stayed
//! at the 190 MiB it had reached with them open; `malloc_trim` brought it back to 30 MiB.
//! The manager, which sees every stream open and close, asks for a trim once a wave of
//! streams has closed ([`ClosedStreams`]); the trim runs on a thread of its own so that
//! the fan-out never waits for it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How many streams must have closed since the last trim (or since the most streams were
/// open) before another trim is worth its cost: about 10 KiB each, so a few MiB.
pub const TRIM_AFTER_CLOSED: usize = 500;

/// Tracks how far the number of open streams has fallen since the last trim, so that a
/// trim follows a wave of closed streams and not every single close.
#[derive(Debug, Default)]
pub struct ClosedStreams {
    high_water: usize,
}

impl ClosedStreams {
    /// Records the number of streams open now, after one opened.
    pub fn opened(&mut self, open: usize) {
        self.high_water = self.high_water.max(open);
    }

    /// Whether enough streams have closed since the last trim (`open` are open now);
    /// if so, the count starts again from `open`.
    pub fn trim_due(&mut self, open: usize) -> bool {
        if self.high_water.saturating_sub(open) < TRIM_AFTER_CLOSED {
            return false;
        }
        self.high_water = open;
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
        let mut closed = ClosedStreams::default();
        for open in 1..=2_000 {
            closed.opened(open);
        }
        assert!(!closed.trim_due(2_000 - TRIM_AFTER_CLOSED + 1));
        assert!(closed.trim_due(2_000 - TRIM_AFTER_CLOSED));
        // Counted again from where the last trim left off.
        assert!(!closed.trim_due(1_000 + 1));
        assert!(closed.trim_due(1_000));
        assert!(!closed.trim_due(501));
        assert!(closed.trim_due(500));
        assert!(
            !closed.trim_due(1),
            "fewer than the threshold were open since"
        );
    }

    #[test]
    fn streams_that_open_as_others_close_are_no_wave() {
        let mut closed = ClosedStreams::default();
        closed.opened(1_000);
        for _ in 0..10_000 {
            closed.opened(1_000);
            assert!(!closed.trim_due(999));
        }
    }
}
