//! Where "now" comes from.
//!
//! Every decision that depends on time (what is due, what is late, lease expiry) asks a
//! [`Clock`] instead of calling `Utc::now()`, so tests can freeze or fast-forward time and
//! `picket rehearse` can compress a whole strike into minutes. SQL never reads the
//! database's own clock: instants are bound from here.

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
        *self.now.lock().expect("clock mutex poisoned") = to;
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().expect("clock mutex poisoned");
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().expect("clock mutex poisoned")
    }
}

/// A clock that runs `factor` times faster than real time from a chosen origin
/// (`picket rehearse --speed`).
#[derive(Debug, Clone)]
pub struct ScaledClock {
    origin: DateTime<Utc>,
    started: std::time::Instant,
    factor: f64,
}

impl ScaledClock {
    pub fn new(origin: DateTime<Utc>, factor: f64) -> Self {
        Self {
            origin,
            started: std::time::Instant::now(),
            factor,
        }
    }
}

impl Clock for ScaledClock {
    fn real_duration(&self, d: Duration) -> std::time::Duration {
        let virt = d.num_milliseconds().max(0) as f64;
        std::time::Duration::from_millis((virt / self.factor) as u64)
    }

    fn now(&self) -> DateTime<Utc> {
        let real = self.started.elapsed().as_secs_f64() * self.factor;
        self.origin + Duration::milliseconds((real * 1000.0) as i64)
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
}
