//! When to try a failed post again: exponential backoff with full jitter, capped, and
//! never sooner than the network asked (`Retry-After`, rate-limit reset).

use std::time::Duration;

use rand::RngExt;

/// Backoff settings.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(10 * 60),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1`, `attempt` being the 1-based attempt that failed.
    /// Full jitter (a uniform draw in [0, backoff]) so the posts of a failed burst do not
    /// come back at the same instant and fail together again.
    pub fn delay(&self, attempt: u32, asked: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
            .min(self.cap);
        let jittered = Duration::from_millis(rand::rng().random_range(0..=exp.as_millis() as u64));
        match asked {
            // The network said when; a little jitter on top spreads the herd.
            // Saturating: the number comes from a remote server's header.
            Some(a) => a.saturating_add(jittered.min(Duration::from_secs(5))),
            None => jittered.max(Duration::from_millis(200)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy::default();
        for attempt in 1..30 {
            let d = p.delay(attempt, None);
            assert!(d <= p.cap, "attempt {attempt}: {d:?}");
        }
    }

    #[test]
    fn an_absurd_retry_after_saturates_instead_of_overflowing() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(3, Some(Duration::MAX)), Duration::MAX);
    }

    #[test]
    fn a_retry_after_is_never_cut_short() {
        let p = RetryPolicy::default();
        for attempt in 1..10 {
            assert!(p.delay(attempt, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
        }
    }
}
