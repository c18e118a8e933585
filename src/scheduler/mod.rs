//! The scheduler: the planner turns pledges into outbox rows; the dispatcher claims due
//! rows, publishes them through a [`crate::network::Network`] and records the outcome.
//! Only the dispatcher posts to networks.

pub mod dispatcher;
pub mod pacing;
pub mod planner;
pub mod retry;

pub use dispatcher::{Dispatcher, StepReport};
