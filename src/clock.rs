//! Where "now" comes from.
//!
//! Every decision that depends on time (what is due, what is late, lease expiry) asks a
//! [`Clock`] instead of calling `Utc::now()`, so tests can freeze or fast-forward time and
//! `picket rehearse` can compress a whole strike into minutes. SQL never reads the
//! database's own clock: instants are bound from here.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

/// A source of the current instant.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;

    /// How much real time passes while this clock moves by `d` (sleeping until a due
    /// instant). Negative durations are zero.
    fn real_duration(&self, d: Duration) -> std::time::Duration {
        d.to_std().unwrap_or_default()
    }
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug, Clone)]
pub struct ManualClock {
    // Shared so a test can keep a handle and move time while the app holds another.
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *crate::sync::lock(&self.now) = to;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = crate::sync::lock(&self.now);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *crate::sync::lock(&self.now)
    }
}

/// A clock that runs `factor` times faster than real time from a chosen origin
/// (`picket rehearse --speed`), and can jump ahead over idle stretches (the week between
/// a `before 7d` invitation and the strike need not be waited out, even compressed).
#[derive(Debug, Clone)]
pub struct ScaledClock {
    origin: DateTime<Utc>,
    started: std::time::Instant,
    factor: f64,
    // Milliseconds jumped so far. Shared by clones (the dispatcher, the receiver and the
    // rehearsal driver hold one each) so a jump is seen by all of them at once; only ever
    // grows, so the clock never runs backwards.
    skipped_ms: Arc<AtomicI64>,
}

impl ScaledClock {
    pub fn new(origin: DateTime<Utc>, factor: f64) -> Self {
        Self {
            origin,
            started: std::time::Instant::now(),
            factor,
            skipped_ms: Arc::new(AtomicI64::new(0)),
        }
    }

    pub fn factor(&self) -> f64 {
        self.factor
    }

    /// Jump forward to `to` if it is ahead of now (never backwards); returns how far it
    /// jumped.
    pub fn skip_to(&self, to: DateTime<Utc>) -> Duration {
        let ahead = (to - self.now()).num_milliseconds();
        if ahead <= 0 {
            return Duration::zero();
        }
        self.skipped_ms.fetch_add(ahead, Ordering::SeqCst);
        Duration::milliseconds(ahead)
    }

    /// Total time jumped over by [`ScaledClock::skip_to`].
    pub fn skipped(&self) -> Duration {
        Duration::milliseconds(self.skipped_ms.load(Ordering::SeqCst))
    }
}

impl Clock for ScaledClock {
    fn real_duration(&self, d: Duration) -> std::time::Duration {
        let virt = d.num_milliseconds().max(0) as f64;
        std::time::Duration::from_millis((virt / self.factor) as u64)
    }

    fn now(&self) -> DateTime<Utc> {
        let real = self.started.elapsed().as_secs_f64() * self.factor;
        self.origin
            + Duration::milliseconds(
                (real * 1000.0) as i64 + self.skipped_ms.load(Ordering::SeqCst),
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let t0 = DateTime::parse_from_rfc3339("2027-07-04T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::new(t0);
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::hours(1));
        assert_eq!(clock.now(), t0 + Duration::hours(1));
    }

    #[test]
    fn a_scaled_clock_jumps_forward_but_never_back() {
        let t0 = DateTime::parse_from_rfc3339("2027-07-04T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ScaledClock::new(t0, 1.0);
        let seen_by_other = clock.clone();
        clock.skip_to(t0 + Duration::days(7));
        assert!(seen_by_other.now() >= t0 + Duration::days(7));
        assert_eq!(clock.skip_to(t0), Duration::zero());
        assert!(clock.now() >= t0 + Duration::days(7));
    }
}
