//! Exponential backoff with jitter: one rule for every retry longwave makes, S3 requests (in
//! milliseconds) and the worker's redelivered messages (in seconds).

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// How a retry's wait grows: `first` × 2^attempt, capped at `cap`, then scaled by a random
/// factor in `jitter` so that retries that failed together do not come back together.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The wait before the first retry, before jitter.
    pub first: Duration,
    /// The longest wait, before jitter.
    pub cap: Duration,
    /// The random factor's range, `(low, high)` with `0 < low ≤ high`.
    pub jitter: (f64, f64),
}

impl Backoff {
    /// The wait before retry `attempt` (0 = the first retry).
    pub fn delay(&self, attempt: u32) -> Duration {
        let grown = self
            .first
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.cap);
        // A fresh RandomState is randomly keyed: good enough jitter without a rand dependency.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let (low, high) = self.jitter;
        let factor = low + (high - low) * ((random % 1000) as f64 / 1000.0);
        grown.mul_f64(factor)
    }
}

/// S3 requests: 100 ms × 2^attempt, capped at 5 s, × [0.5, 1.0).
pub(crate) const S3_REQUESTS: Backoff = Backoff {
    first: Duration::from_millis(100),
    cap: Duration::from_secs(5),
    jitter: (0.5, 1.0),
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_with_jitter_and_is_capped() {
        for attempt in 0..30 {
            let d = S3_REQUESTS.delay(attempt).as_secs_f64();
            let base = (0.1 * f64::from(1u32 << attempt.min(16))).min(5.0);
            assert!(d >= base * 0.5 && d <= base, "{attempt}: {d}");
        }
        let seconds = Backoff {
            first: Duration::from_secs(10),
            cap: Duration::from_secs(900),
            jitter: (0.75, 1.25),
        };
        let third = seconds.delay(2).as_secs_f64();
        assert!((30.0..=50.0).contains(&third), "{third}");
        let late = seconds.delay(40).as_secs_f64();
        assert!((675.0..=1125.0).contains(&late), "{late}");
    }
}
