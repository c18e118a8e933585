//! The hashtag census's reading side: public posts carrying a hashtag, read from the
//! sources a campaign lists (`[census]`): Mastodon-API tag timelines (`mastodon.rs`),
//! Nostr `#t` queries (`nostr.rs`) and Bluesky's `searchPosts` on an AppView
//! (`bluesky.rs`). Each answers [`Sighting`]s with the author as the network names them
//! (the same form as an account's handle here, so this host's own accounts are
//! recognised); the scheduler's census task hashes the author before anything is stored.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::domain::NetworkKind;
use crate::network::HttpError;

pub mod bluesky;
pub mod mastodon;
pub mod nostr;

/// One public post seen by the census.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub network: NetworkKind,
    /// What recognises the post wherever it is seen (status URI, event id, AT-URI).
    pub key: String,
    /// The author in the form this host keeps its accounts' handles in (`user@host`, an
    /// `npub`, a Bluesky handle). Hashed before it is stored.
    pub author: String,
    pub posted_at: DateTime<Utc>,
    /// The post's public address.
    pub link: Option<String>,
}

/// What one poll of one source read, and where the next one starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Poll {
    pub sightings: Vec<Sighting>,
    /// Where the next poll of this source resumes (a status id, a Unix time, a date).
    pub cursor: Option<String>,
    /// The source asked to be left alone this long (rate limit nearly or fully spent).
    pub pause: Option<Duration>,
}

/// Why a source could not be read. Messages are picket's own words: a remote body is
/// never repeated.
#[derive(Debug, thiserror::Error)]
pub enum CensusError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("the server answered {0}")]
    Status(u16),
    #[error("the server asks to wait (rate limited)")]
    RateLimited(Option<Duration>),
    /// The parser's message is left out: it can quote the remote body.
    #[error("the answer is not what the API documents")]
    Decode,
    #[error("the relay could not be read: {0}")]
    Relay(String),
}

/// How many pages one poll of one source reads at most: the rest waits for the next poll,
/// so one busy tag never spends a server's whole rate-limit window.
pub const MAX_PAGES: usize = 10;

/// Below this many requests left in a server's window, the census stops paging and waits
/// for the window to reset: the budget is shared with everything else at that address.
pub const KEEP_IN_RESERVE: i64 = 30;
