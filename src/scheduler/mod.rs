//! The scheduler: the planner turns pledges into outbox rows; the dispatcher claims due
//! rows, publishes them through a [`crate::network::Network`] and records the outcome.

pub mod pacing;
pub mod retry;
