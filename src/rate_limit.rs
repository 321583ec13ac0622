//! Per-subject request rate on the write endpoints (raise, acknowledge). Keyed by the
//! verified token `sub`, not by IP: a whole hospital may sit behind one NAT. Every
//! refusal is counted in `vigil_limit_rejections_total{limit="write_rate"}`.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use prometheus::IntCounter;

use crate::auth::Principal;
use crate::error::ApiError;

/// A keyed token bucket.
#[derive(Clone)]
pub struct WriteLimiter {
    limiter: Arc<DefaultKeyedRateLimiter<String>>,
    per_second: NonZeroU32,
    rejections: IntCounter,
}

impl WriteLimiter {
    /// `per_second` sustained, bursts of twice that. `rejections` is incremented on
    /// every 429, so operators see throttled producers in `/metrics`, not only in logs.
    pub fn new(per_second: NonZeroU32, rejections: IntCounter) -> Self {
        let burst = per_second.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        let quota = Quota::per_second(per_second).allow_burst(burst);
        Self {
            limiter: Arc::new(RateLimiter::keyed(quota)),
            per_second,
            rejections,
        }
    }

    /// 429 with `Retry-After` when the caller is over its rate.
    pub fn check(&self, principal: &Principal) -> Result<(), ApiError> {
        match self.limiter.check_key(&principal.user_id) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                self.rejections.inc();
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                Err(ApiError::TooManyRequests {
                    detail: format!(
                        "more than {} writes per second for {} (VIGIL_RATE_LIMIT); slow down",
                        self.per_second, principal.user_id
                    ),
                    retry_after: Some(wait.as_secs().max(1)),
                })
            }
        }
    }

    /// Drops idle keys so the table does not grow without bound.
    pub fn shrink(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}
