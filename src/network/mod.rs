//! Networks picket posts to.
//!
//! This module holds the `Network` trait and the adapters, one file or folder per network
//! below it; the network kinds themselves are named in [`crate::domain`]. Every request
//! and WebSocket the adapters make goes through [`guarded`] (the only code in picket that
//! uses `reqwest`): addresses a visitor or a remote document supplies must be public and
//! https/wss, no redirect is followed, bodies are capped and every request has a deadline. An account's servers are reached through
//! the trusted client only when the operator added it ([`AccountRef::trusted`]).

pub mod bench_baseline;
pub mod bluesky;
pub mod guarded;
pub mod mastodon;
pub mod nostr;
pub mod peer;
pub mod sandbox;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::Secret;
// Adapters and tests name the network kinds through this module too.
pub use crate::domain::{NetworkKind, UnknownNetwork};
pub use guarded::{Egress, Http, HttpError};

/// The account a post is made from, as the dispatcher hands it to an adapter.
#[derive(Clone)]
pub struct AccountRef {
    pub id: i64,
    pub handle: String,
    /// The server's base URL (Mastodon instance, PDS, sandbox receiver); relays for Nostr.
    pub server: String,
    /// Decrypted credentials, in the adapter's own format. Never logged.
    pub credentials: Secret,
    /// The operator added this account and typed its addresses (command line): its servers
    /// are reached through the trusted client. Otherwise every request is guarded.
    pub trusted: bool,
}

impl fmt::Debug for AccountRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountRef")
            .field("id", &self.id)
            .field("handle", &self.handle)
            .field("server", &self.server)
            .field("trusted", &self.trusted)
            .finish_non_exhaustive()
    }
}

/// One post to publish.
#[derive(Debug, Clone)]
pub struct OutgoingPost {
    pub text: String,
    /// Derived from the outbox row: the same slot of the same account always has the same
    /// key, so a retry is recognised by the network instead of posted again.
    pub idempotency_key: String,
    /// The slot's scheduled instant; adapters that put a creation time in the record use
    /// this one so a retry sends byte-identical content.
    pub scheduled_at: DateTime<Utc>,
    /// The outbox slot key (campaign slot), for adapters that can carry it.
    pub slot_key: String,
    /// An earlier attempt may have reached the network (a timeout, a crash mid-request):
    /// adapters without server-side idempotency read back before sending again.
    pub outcome_unknown: bool,
    /// Give up on the request after this long: a post must not land after its window.
    pub timeout: Duration,
}

/// What the network gave back for a published post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub remote_id: String,
    pub url: Option<String>,
}

/// Why a post was not published, phrased as what the dispatcher should do next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// A passing fault (5xx, connection refused, timeout): try again later.
    #[error("temporary failure: {reason}")]
    Retry {
        reason: String,
        /// The network said when (Retry-After, rate-limit reset).
        after: Option<Duration>,
        /// The request may have been received (timeout after sending).
        maybe_sent: bool,
    },
    /// The network refused this content for good (too long, invalid): do not retry.
    #[error("rejected: {0}")]
    Rejected(String),
    /// The credentials no longer work: the participant must reconnect the account.
    #[error("reconnect needed: {0}")]
    Reconnect(String),
}

/// Posting to one kind of network. Adapters take their HTTP client and base URLs in the
/// constructor so tests can point them at local servers.
#[async_trait]
pub trait Network: Send + Sync + 'static {
    fn kind(&self) -> NetworkKind;

    /// Publish `post` from `account`; idempotent for the same `post.idempotency_key`.
    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError>;

    /// How long `text` is for this account, against its limit. The default is the
    /// network's own rule; adapters whose servers set their own limits (the Mastodon API)
    /// use the limit read at enrollment.
    fn measure(&self, account: &AccountRef, text: &str) -> crate::compose::Measure {
        let _ = account;
        crate::compose::measure(self.kind(), text)
    }

    /// Delete a published post (`picket withdraw --delete-posts`, "delete my data").
    async fn delete(&self, account: &AccountRef, remote_id: &str) -> Result<(), PublishError> {
        let _ = (account, remote_id);
        Err(PublishError::Rejected(format!(
            "deleting posts is not supported on {}",
            self.kind()
        )))
    }

    /// Check that the credentials still work (at join time, the day before a strike).
    async fn verify(&self, account: &AccountRef) -> Result<Identity, PublishError> {
        Ok(Identity {
            handle: account.handle.clone(),
            url: None,
        })
    }

    /// Engagement counts of a published post, where the network exposes them.
    async fn engagement(
        &self,
        account: &AccountRef,
        remote_id: &str,
    ) -> Result<Option<Engagement>, PublishError> {
        let _ = (account, remote_id);
        Ok(None)
    }
}

/// Where adapters save credentials that change while picket runs (a refreshed Bluesky
/// session, a rotated OAuth token), so a restart does not start a new session. The app
/// implements it over the store and the vault; adapters never see either.
#[async_trait]
pub trait CredentialSink: Send + Sync + 'static {
    async fn save(&self, account_id: i64, credentials: &Secret) -> Result<(), String>;
}

/// A sink that keeps nothing (tests, one-shot commands).
pub struct DiscardCredentials;

#[async_trait]
impl CredentialSink for DiscardCredentials {
    async fn save(&self, _account_id: i64, _credentials: &Secret) -> Result<(), String> {
        Ok(())
    }
}

/// Who an account is, as the network says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub handle: String,
    pub url: Option<String>,
}

/// Reactions to a published post.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Engagement {
    pub replies: u64,
    pub reposts: u64,
    pub likes: u64,
}

/// The adapters this process can post through, by kind.
#[derive(Clone, Default)]
pub struct Networks {
    by_kind: HashMap<NetworkKind, Arc<dyn Network>>,
}

impl Networks {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(mut self, network: Arc<dyn Network>) -> Self {
        self.by_kind.insert(network.kind(), network);
        self
    }

    pub fn get(&self, kind: NetworkKind) -> Option<&Arc<dyn Network>> {
        self.by_kind.get(&kind)
    }

    /// Every adapter picket ships, sharing `egress` (one connection pool per client).
    /// `credentials` keeps tokens that change while running (the app passes
    /// `app::StoreCredentials`); `own_url` is this host's `public_url`, the only place link
    /// cards are read from.
    pub fn standard(credentials: Arc<dyn CredentialSink>, egress: &Egress, own_url: &str) -> Self {
        Networks::new()
            .with(Arc::new(mastodon::Mastodon::new(egress.clone())))
            .with(Arc::new(nostr::Nostr::new(egress.clone())))
            // The sandbox's address is this host's own or the operator's: never a visitor's.
            .with(Arc::new(sandbox::Sandbox::new(egress.trusted().clone())))
            .with(Arc::new(
                bluesky::Bluesky::new(egress.clone(), credentials).with_cards_from(own_url),
            ))
    }
}

/// Map a transport failure to what to do next. A timeout after the request was written
/// may have reached the server, so it is flagged `maybe_sent`.
pub(crate) fn transport_error(e: &HttpError) -> PublishError {
    PublishError::Retry {
        reason: format!("network error: {e}"),
        after: None,
        maybe_sent: e.maybe_sent(),
    }
}

/// Read a `Retry-After` header: seconds, or an HTTP date.
pub(crate) fn retry_after(
    headers: &reqwest::header::HeaderMap,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((at - now).to_std().unwrap_or_default())
}
