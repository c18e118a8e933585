//! Small domain types that many rooms name and none owns: which network an account lives
//! on, and a value that must not be printed. They depend on nothing else in picket, so
//! `campaign`, `store`, `compose`, `network` and `config` can all import them without
//! importing each other.

pub mod network_kind;
pub mod secret;

pub use network_kind::{NetworkKind, UnknownNetwork};
pub use secret::Secret;
