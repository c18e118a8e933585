//! The dispatcher's lateness: seconds from a post's `run_at` (its jittered instant, or
//! its retry's) to its publication being recorded, as a Prometheus histogram that
//! `/metrics` shows as `picket_dispatch_lateness_seconds`.
//!
//! Kept in this process's memory: each process counts the posts its own dispatcher
//! published since it started (Prometheus expects a counter to start again at a restart).
//! Fixed buckets and atomics rather than a metrics crate: one histogram does not need a
//! registry, and the text format is six lines.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the buckets, in seconds: a post due now goes out within a second or
/// two; retries and a busy server stretch that to minutes; past the window plus grace a
/// post is missed instead, so an hour bounds the rest.
pub const BUCKETS: [f64; 13] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
];

/// The histogram's name in `/metrics`.
pub const NAME: &str = "picket_dispatch_lateness_seconds";

/// Counts per bucket (not cumulative; summed when written), the sum and the count.
#[derive(Debug, Default)]
pub struct Lateness {
    /// One per bound of [`BUCKETS`], then one for `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    /// The sum of observations, in microseconds (an integer, so it can be atomic).
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Lateness {
    /// One published post, `seconds` after its `run_at` (an early one, a clock set
    /// back, counts as 0).
    pub fn observe(&self, seconds: f64) {
        let s = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((s * 1e6).min(u64::MAX as f64) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The histogram in the Prometheus text format, with its `HELP` and `TYPE` lines.
    pub fn render(&self) -> String {
        let mut o = format!(
            "# HELP {NAME} Seconds from a post's run_at to its publication, posts this process published.\n# TYPE {NAME} histogram\n"
        );
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(o, "{NAME}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[BUCKETS.len()].load(Ordering::Relaxed);
        let _ = writeln!(o, "{NAME}_bucket{{le=\"+Inf\"}} {cumulative}");
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(o, "{NAME}_sum {sum}");
        let _ = writeln!(o, "{NAME}_count {cumulative}");
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_the_count_and_sum_match_the_observations() {
        let h = Lateness::default();
        for s in [0.05, 0.3, 0.3, 7.0, 5000.0, -2.0, f64::NAN] {
            h.observe(s);
        }
        let text = h.render();
        let line = |le: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("{NAME}_bucket{{le=\"{le}\"}}")))
                .unwrap()
                .rsplit(' ')
                .next()
                .unwrap()
                .to_string()
        };
        assert_eq!(line("0.1"), "3", "0.05, and -2 and NaN as 0: {text}");
        assert_eq!(line("0.5"), "5");
        assert_eq!(line("10"), "6");
        assert_eq!(line("3600"), "6");
        assert_eq!(line("+Inf"), "7");
        assert!(text.contains(&format!("{NAME}_count 7")), "{text}");
        assert!(text.contains(&format!("{NAME}_sum 5007.65")), "{text}");
        assert!(text.contains(&format!("# TYPE {NAME} histogram")));
    }
}
