//! The one way a test waits: [`eventually`] asks a probe again and again until it sees
//! the awaited state, and fails saying what was awaited (and what was last seen) when the
//! time runs out. No test sleeps for a fixed time to let something happen; the few that
//! must let real time pass on purpose (a timeout under test, an absence to show) say why
//! where they sleep.

use std::fmt::Display;
use std::time::Duration;

/// What one look of a probe found: the awaited value, or not yet (with what was seen
/// instead, when the probe can say).
pub trait Outcome {
    type Value;
    /// `Ok` with the value once it is there; `Err` with what was seen instead, if anything.
    fn ready(self) -> Result<Self::Value, Option<String>>;
}

impl Outcome for bool {
    type Value = ();
    fn ready(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Outcome for Option<T> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

/// `Err(seen)`: not yet, and `seen` is shown if the time runs out.
impl<T, E: Display> Outcome for Result<T, E> {
    type Value = T;
    fn ready(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// Calls `probe` until it reports the awaited state (`true`, `Some(value)` or
/// `Ok(value)`) and returns that value; panics with `what` (and the last `Err` seen) if
/// that takes longer than `limit`, including a probe call that hangs past it.
///
/// The pause between looks starts short and grows to a fifth of a second, so quick
/// states are seen at once and slow ones (a page load, a strike a minute away) do not
/// keep a 2-core CI machine busy. A state seen must be final ('sending' is not an
/// outcome): probe for the outcome, not for a step on the way.
pub async fn eventually<O: Outcome>(
    limit: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> O,
) -> O::Value {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(10);
    let mut last = None;
    loop {
        match tokio::time::timeout_at(deadline, probe()).await {
            Ok(outcome) => match outcome.ready() {
                Ok(value) => return value,
                Err(seen) => last = seen.or(last),
            },
            Err(_) => panic!("waited {limit:?} for {what}: the last look did not finish"),
        }
        if tokio::time::Instant::now() >= deadline {
            match last {
                Some(seen) => panic!("waited {limit:?} for {what}; last seen: {seen}"),
                None => panic!("waited {limit:?} for {what}"),
            }
        }
        tokio::time::sleep(
            pause.min(deadline.saturating_duration_since(tokio::time::Instant::now())),
        )
        .await;
        pause = (pause * 2).min(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_wait_returns_the_value_once_the_probe_sees_it() {
        let mut looks = 0;

        let value = eventually(Duration::from_secs(5), "the third look", async || {
            looks += 1;
            (looks == 3).then_some(looks * 10)
        })
        .await;

        assert_eq!(value, 30);
        assert_eq!(looks, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_that_runs_out_says_what_it_awaited_and_what_it_saw_last() {
        let outcome = tokio::spawn(eventually(
            Duration::from_secs(5),
            "a green light",
            async || -> Result<(), &str> { Err("red") },
        ))
        .await;

        let panic = outcome.unwrap_err().into_panic();
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.contains("waited 5s for a green light; last seen: red"),
            "{message}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_look_that_hangs_past_the_limit_fails_the_wait() {
        let outcome = tokio::spawn(eventually(
            Duration::from_secs(5),
            "an answer",
            async || {
                std::future::pending::<()>().await;
                true
            },
        ))
        .await;

        let panic = outcome.unwrap_err().into_panic();
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            message.contains("the last look did not finish"),
            "{message}"
        );
    }
}
