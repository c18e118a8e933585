//! The scheduler: the planner turns pledges into outbox rows; the dispatcher claims due
//! rows, publishes them through a [`crate::network::Network`] and records the outcome.
//! Only the dispatcher posts to networks.

pub mod dispatcher;
pub mod pacing;
pub mod planner;
pub mod retry;
pub mod verify;

pub use dispatcher::{Dispatcher, StepReport};

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::store::{
    AccountId, OutboxId, OutboxState, ParticipantId, Store, StoreError, Withdrawal,
};

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

/// Withdraw a pledge (or one account of it) and return only once no further post of it can
/// be published: rows not yet sending are cancelled in one transaction, and rows already on
/// the wire are waited for (at most `max_wait`, normally the lease).
pub async fn withdraw(
    store: &dyn Store,
    participant: ParticipantId,
    campaign_id: &str,
    account: Option<AccountId>,
    now: DateTime<Utc>,
    max_wait: Duration,
) -> Result<Stopped, StoreError> {
    let w = store
        .withdraw(participant, campaign_id, account, now)
        .await?;
    settle(store, w, max_wait).await
}

/// Cancel a campaign everywhere, waiting like [`withdraw`].
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
