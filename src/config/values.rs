//! Numbers and durations read from flags and variables, each with its bound.

use std::num::NonZeroUsize;
use std::time::Duration;

use super::ConfigError;

/// A positive integer up to `max` (`unit` follows the number in the message). Beyond it,
/// whether it still fits in 64 bits or not, the message names the limit: "expected a
/// positive integer" for a number too large to hold misled.
pub(super) fn at_most(
    raw: &str,
    variable: &'static str,
    max: u64,
    unit: &str,
) -> Result<u64, ConfigError> {
    match raw.trim().parse::<u64>() {
        Ok(n) if n > max => Err(ConfigError::new(variable, format!("at most {max}{unit}"))),
        Ok(n) if n > 0 => Ok(n),
        Ok(_) => Err(ConfigError::new(variable, "expected a positive integer")),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
            Err(ConfigError::new(variable, format!("at most {max}{unit}")))
        }
        Err(_) => Err(ConfigError::new(variable, "expected a positive integer")),
    }
}

/// The longest period or timeout a setting may name: beyond a day, a heartbeat or a
/// ping no longer does its job, and far beyond it the clock arithmetic overflows.
pub(super) const MAX_SECONDS: u64 = 86_400;
/// Largest client queue: tokio's channels hold at most about 2^61 permits (more panics
/// at the first stream), and a million events per client is far beyond any use.
pub(super) const MAX_QUEUE: u64 = 1_000_000;
/// Largest stream count a limit may name.
pub(super) const MAX_COUNT: u64 = 100_000_000;
/// Largest database pool (each connection is a server process on PostgreSQL).
pub(super) const MAX_POOL: u64 = 10_000;

pub(super) fn seconds(raw: &str, variable: &'static str) -> Result<u64, ConfigError> {
    at_most(raw, variable, MAX_SECONDS, " seconds (one day)")
}

pub(super) fn non_zero(
    raw: &str,
    variable: &'static str,
    max: u64,
) -> Result<NonZeroUsize, ConfigError> {
    non_zero_in(raw, variable, max, "")
}

/// [`at_most`] as a `NonZeroUsize` (a limit above `usize::MAX` is that on 32-bit targets).
pub(super) fn non_zero_in(
    raw: &str,
    variable: &'static str,
    max: u64,
    unit: &str,
) -> Result<NonZeroUsize, ConfigError> {
    let n = at_most(raw, variable, max, unit)?;
    usize::try_from(n)
        .ok()
        .and_then(NonZeroUsize::new)
        .ok_or_else(|| ConfigError::new(variable, format!("at most {max}{unit}")))
}

/// Parses a lifetime such as `90`, `30m`, `8h`, `2d` (used by `vigil token --ttl`).
pub fn parse_ttl(raw: &str) -> Option<Duration> {
    let raw = raw.trim();
    let (digits, unit) = match raw.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (raw.get(..i)?, c),
        _ => (raw, 's'),
    };
    let n: u64 = digits.parse().ok()?;
    let secs = match unit {
        's' => n,
        'm' => n.checked_mul(60)?,
        'h' => n.checked_mul(3600)?,
        'd' => n.checked_mul(86_400)?,
        _ => return None,
    };
    (secs > 0).then(|| Duration::from_secs(secs))
}
