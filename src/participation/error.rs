//! What can go wrong when a participant acts, in terms each front can answer: the web
//! turns it into a 4xx page (`web::error`), the CLI into a message and an exit code
//! (`cli::participate`). Nothing here knows about HTTP or exit codes.

use crate::store::{AccountId, StoreError};

use super::connect::ConnectError;

/// Why a participant's action did not happen (or did not finish).
#[derive(Debug, thiserror::Error)]
pub enum ParticipationError {
    /// What the person gave is wrong: the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// A pledge names no account: picket posts from the participant's own accounts only.
    #[error("no account chosen: a pledge posts from at least one of your accounts")]
    NoAccounts,
    /// What the action names is not the participant's (or no longer exists).
    #[error("{0} not found")]
    NotFound(Missing),
    /// Something changed meanwhile (another tab, another command): nothing was done, and
    /// doing it again on fresh data works.
    #[error("{0}")]
    Conflict(String),
    /// The store failed; nothing may have changed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A network refused or did not answer (connecting an account).
    #[error(transparent)]
    Network(#[from] ConnectError),
}

/// What an action named that is not there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// An account of theirs (removed accounts count as missing).
    Account(AccountId),
    /// Their pledge to this campaign.
    Pledge(String),
    /// The participant themself (deleted meanwhile).
    Participant,
    /// A tap-to-post notice of theirs (or the one an "I posted it" link names).
    Notice,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::Account(id) => write!(f, "account {id}"),
            Missing::Pledge(campaign) => write!(f, "pledge to `{campaign}`"),
            Missing::Participant => f.write_str("participant"),
            Missing::Notice => f.write_str("notice"),
        }
    }
}
