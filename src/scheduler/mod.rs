//! The scheduler: the planner turns pledges into outbox rows; the dispatcher claims due
//! rows, publishes them through a [`crate::network::Network`] and records the outcome.
//! Only the dispatcher posts to networks; `remind` mails and pushes tap-to-post reminders;
//! `census` reads the campaign hashtag's public posts for the hashtag census;
//! `engagement` reads published posts' likes, reposts, replies and followers.
//!
//! The planner, the dispatcher and the verifier run for as long as picket does, over rows
//! that strangers wrote (a pledge from a public form, a post, an account). Each unit of
//! their work (one pledge, one post, one account) runs inside [`isolate`] or
//! [`isolate_async`]: an error or even a panic in it is recorded against that row, with a
//! reason, and the loop goes on to the next. One bad row must never stop a strike.

pub mod broadcast;
pub mod census;
pub mod dispatcher;
pub mod engagement;
pub mod federation;
pub mod lateness;
pub mod pacing;
pub mod planner;
pub mod remind;
pub mod retry;
pub mod verify;
pub mod webhooks;

pub use dispatcher::{Dispatcher, StepReport};

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::FutureExt;

use chrono::{DateTime, Utc};

use crate::store::{OutboxId, OutboxState, Store, StoreError, Withdrawal};

/// A unit of work panicked; the message names it as a bug in picket, with the panic's
/// own message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Panicked(String);

impl Panicked {
    /// A spawned task's end that was not its answer: its panic, or its cancellation.
    pub fn from_join(e: tokio::task::JoinError) -> Panicked {
        match e.try_into_panic() {
            Ok(payload) => panic_message(payload),
            Err(e) => Panicked(format!("internal error (a task ended early: {e})")),
        }
    }

    /// The message, to record where a reason is kept as text (a post's failure).
    pub fn into_message(self) -> String {
        self.0
    }
}

/// Run one unit of work; a panic in it comes back as `Err` with its message instead of
/// unwinding through the loop that called it.
pub fn isolate<T>(work: impl FnOnce() -> T) -> Result<T, Panicked> {
    std::panic::catch_unwind(AssertUnwindSafe(work)).map_err(panic_message)
}

/// [`isolate`] for a future.
pub async fn isolate_async<T>(work: impl Future<Output = T>) -> Result<T, Panicked> {
    AssertUnwindSafe(work)
        .catch_unwind()
        .await
        .map_err(panic_message)
}

fn panic_message(payload: Box<dyn Any + Send>) -> Panicked {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    Panicked(format!("internal error (a bug in picket: {what})"))
}

/// What a withdrawal or cancellation did, once nothing of it is on its way any more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stopped {
    /// Posts that will never be sent.
    pub cancelled: u64,
    /// Posts that were already being sent when the stop came, and went out.
    pub went_out: usize,
    /// Posts still `sending` when `max_wait` ran out (a worker died mid-send; they are
    /// not taken over for a stopped pledge).
    pub unsettled: usize,
}

/// Cancel a campaign everywhere, waiting like a participant's withdrawal
/// (`participation::withdraw`) for posts already on the wire.
pub async fn cancel_campaign(
    store: &dyn Store,
    campaign_id: &str,
    reason: &str,
    now: DateTime<Utc>,
    max_wait: Duration,
) -> Result<Stopped, StoreError> {
    let w = store.cancel_campaign(campaign_id, reason, now).await?;
    settle(store, w, max_wait).await
}

/// Wait until the posts a stop found already `sending` have settled (at most `max_wait`).
pub async fn settle(
    store: &dyn Store,
    w: Withdrawal,
    max_wait: Duration,
) -> Result<Stopped, StoreError> {
    let mut stopped = Stopped {
        cancelled: w.cancelled,
        ..Stopped::default()
    };
    if w.in_flight.is_empty() {
        return Ok(stopped);
    }
    let ids: Vec<OutboxId> = w.in_flight;
    let deadline = tokio::time::Instant::now() + max_wait;
    loop {
        let states = store.outbox_states(&ids).await?;
        let sending = states
            .iter()
            .filter(|(_, s)| *s == OutboxState::Sending)
            .count();
        if sending == 0 || tokio::time::Instant::now() >= deadline {
            stopped.went_out = states
                .iter()
                .filter(|(_, s)| *s == OutboxState::Published)
                .count();
            stopped.unsettled = sending;
            return Ok(stopped);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_in_one_unit_of_work_becomes_an_error_with_its_message() {
        let caught = isolate(|| -> u32 { panic!("boom {}", 7) });
        assert_eq!(
            caught.unwrap_err().to_string(),
            "internal error (a bug in picket: boom 7)"
        );
        assert_eq!(isolate(|| 3), Ok(3));
    }

    #[tokio::test]
    async fn a_panic_in_an_async_unit_of_work_becomes_an_error() {
        let caught = isolate_async(async {
            tokio::task::yield_now().await;
            let v: Vec<u8> = Vec::new();
            v[1]
        })
        .await;
        assert!(
            caught
                .unwrap_err()
                .to_string()
                .contains("index out of bounds")
        );
    }
}
