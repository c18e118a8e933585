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
pub mod broadcast;
pub mod census;
pub mod facebook;
pub mod graph;
pub mod guarded;
pub mod linkedin;
pub mod mastodon;
pub mod misskey;
pub mod nostr;
pub mod official;
pub mod peer;
pub mod push;
pub mod sandbox;
pub mod threads;
pub mod webhook;
pub mod x;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::Clock;
use crate::domain::{NetworkKind, Secret};
pub use guarded::{Egress, Http, HttpError};

/// An account a network enrolled: the handle it goes by and the credentials to seal, in
/// the adapter's own format. `Debug` leaves the credentials out ([`Secret`]).
#[derive(Debug)]
pub struct Enrolled {
    pub handle: String,
    pub credentials: Secret,
}

/// The account a post is made from, as the dispatcher hands it to an adapter. Its
/// `Debug` is derived: [`Secret`] prints redacted.
#[derive(Debug, Clone)]
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
    /// A picture to attach (the strike card, `card = true`), for adapters whose network
    /// takes images ([`Network::takes_images`]); the others post the text alone.
    pub image: Option<Image>,
}

/// A PNG to attach to a post, with its alt text.
#[derive(Clone)]
pub struct Image {
    pub png: Arc<crate::card::Rendered>,
    /// Always set: a picture without words is lost on a screen reader.
    pub alt: String,
    pub width: u32,
    pub height: u32,
}

impl Image {
    pub fn bytes(&self) -> &[u8] {
        &self.png.png
    }
}

/// Not the bytes: a post's `Debug` stays one readable line.
impl fmt::Debug for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Image")
            .field("bytes", &self.png.png.len())
            .field("size", &format_args!("{}x{}", self.width, self.height))
            .field("alt", &self.alt)
            .finish()
    }
}

/// What a [`Network::read_back`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadBack {
    /// The post is on the network: an earlier attempt was published.
    Found(Receipt),
    /// The network says it has no such post.
    Absent,
    /// This network cannot be asked (no way to find one post without sending).
    Unknown,
}

/// What the network gave back for a published post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub remote_id: String,
    pub url: Option<String>,
}

/// The longest [`Reason::summary`]: it is stored with the post and shown on pages.
pub const MAX_SUMMARY: usize = 200;

/// The longest [`Reason::detail`] kept for the log.
pub const MAX_DETAIL: usize = 300;

/// Why a post (or a check of an account) failed, in two parts kept apart on purpose.
///
/// The summary is picket's own words: what kind of failure, with the HTTP status or the
/// protocol's machine-readable code ("the server refused the post (HTTP 422)", "rate
/// limited (HTTP 429)", "every relay refused the note (blocked)"). It is what the outbox
/// row and the account's status record, so it is what `/me`, the join pages and
/// `picket status` show.
///
/// The detail is what the other side said in its own words: an error body's message, a
/// relay's `OK` text, a remote signer's refusal, a transport error. A server chooses those
/// words, so they never reach a visitor's page: the dispatcher and the verifier log them,
/// and the command line shows them to the operator ([`Reason::for_operator`]); nothing
/// stores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    summary: String,
    detail: Option<String>,
}

impl Reason {
    /// A reason in picket's own words. Only text picket wrote (and numbers or codes it
    /// parsed and chose to name) belongs here; anything a remote side said goes to
    /// [`Reason::with_detail`]. Cut to [`MAX_SUMMARY`] characters.
    pub fn new(summary: impl Into<String>) -> Reason {
        Reason {
            summary: clean(&summary.into(), MAX_SUMMARY).unwrap_or_else(|| "failed".into()),
            detail: None,
        }
    }

    /// With the other side's own words for the log: control characters and runs of
    /// whitespace become one space, a word that looks like a token is left out (a server
    /// may echo what it was sent), cut to [`MAX_DETAIL`] characters; empty is none.
    pub fn with_detail(mut self, remote: impl AsRef<str>) -> Reason {
        let words: Vec<&str> = remote
            .as_ref()
            .split(|c: char| c.is_whitespace() || c.is_control())
            .map(|w| if looks_like_token(w) { "[token?]" } else { w })
            .collect();
        self.detail = clean(&words.join(" "), MAX_DETAIL);
        self
    }

    /// picket's words: what may be stored and shown to the participant.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// The other side's words, for the log and the operator only.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// Both, for the operator's command line and the log.
    pub fn for_operator(&self) -> String {
        match &self.detail {
            Some(d) => format!("{} (it said: {d})", self.summary),
            None => self.summary.clone(),
        }
    }
}

/// Only the summary: a reason printed anywhere shows picket's words unless the detail is
/// asked for by name.
impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.summary)
    }
}

/// Whether `word` holds a run of 32 or more characters of the alphabets access tokens,
/// JWTs and keys are written in (base64url, hex, bech32): picket's own tokens are such
/// runs, and the words around them stay readable.
fn looks_like_token(word: &str) -> bool {
    let mut run = 0;
    for c in word.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=') {
            run += 1;
            if run >= 32 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// `text` on one line, at most `max` characters; `None` when nothing is left.
fn clean(text: &str, max: usize) -> Option<String> {
    let one_line = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let cut: String = one_line.chars().take(max).collect();
    (!cut.is_empty()).then_some(cut)
}

/// Why a post was not published, phrased as what the dispatcher should do next.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PublishError {
    /// A passing fault (5xx, connection refused, timeout): try again later.
    #[error("temporary failure: {reason}")]
    Retry {
        reason: Reason,
        /// The network said when (Retry-After, rate-limit reset).
        after: Option<Duration>,
        /// The request may have been received (timeout after sending).
        maybe_sent: bool,
    },
    /// The network refused this content for good (too long, invalid): do not retry.
    #[error("rejected: {0}")]
    Rejected(Reason),
    /// The credentials no longer work: the participant must reconnect the account.
    #[error("reconnect needed: {0}")]
    Reconnect(Reason),
}

impl PublishError {
    /// Refused for good, in picket's words with no remote detail.
    pub fn rejected(summary: impl Into<String>) -> PublishError {
        PublishError::Rejected(Reason::new(summary))
    }

    /// The account must be reconnected, in picket's words with no remote detail.
    pub fn reconnect(summary: impl Into<String>) -> PublishError {
        PublishError::Reconnect(Reason::new(summary))
    }

    /// Try again later; nothing was sent.
    pub fn retry(summary: impl Into<String>) -> PublishError {
        PublishError::Retry {
            reason: Reason::new(summary),
            after: None,
            maybe_sent: false,
        }
    }

    pub fn reason(&self) -> &Reason {
        match self {
            PublishError::Retry { reason, .. }
            | PublishError::Rejected(reason)
            | PublishError::Reconnect(reason) => reason,
        }
    }

    /// The error with the other side's words, for the operator's command line.
    pub fn for_operator(&self) -> String {
        let kind = match self {
            PublishError::Retry { .. } => "temporary failure",
            PublishError::Rejected(_) => "rejected",
            PublishError::Reconnect(_) => "reconnect needed",
        };
        format!("{kind}: {}", self.reason().for_operator())
    }
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

    /// Whether [`OutgoingPost::image`] is attached; the dispatcher draws no card for a
    /// network that would drop it.
    fn takes_images(&self) -> bool {
        false
    }

    /// How long `text` is for this account, against its limit. The default is the
    /// network's own rule; adapters whose servers set their own limits (the Mastodon API)
    /// use the limit read at enrollment.
    fn measure(&self, account: &AccountRef, text: &str) -> crate::compose::Measure {
        let _ = account;
        crate::compose::measure(self.kind(), text)
    }

    /// Whether an earlier attempt at `post` is on the network, found without sending
    /// anything (a post whose window closed after an attempt with an unknown outcome: a
    /// timeout, a lost answer, a crash mid-request). Adapters that can look the post up by
    /// what makes it unique (Bluesky's record key, Nostr's event id, the receiver's
    /// idempotency key, a Mastodon account's recent statuses) say found or absent; the
    /// default says they cannot tell.
    async fn read_back(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<ReadBack, PublishError> {
        let _ = (account, post);
        Ok(ReadBack::Unknown)
    }

    /// The account's server's own scheduler, where picket can hand posts to it
    /// (`--hand-off`: [`mastodon::schedule`]); `None` for networks without one.
    fn scheduler(&self) -> Option<&dyn mastodon::schedule::ServerScheduler> {
        None
    }

    /// Delete a published post (`picket withdraw --delete-posts`, "delete my data").
    async fn delete(&self, account: &AccountRef, remote_id: &str) -> Result<(), PublishError> {
        let _ = (account, remote_id);
        Err(PublishError::rejected(format!(
            "deleting posts is not supported on {}",
            self.kind().label()
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

    /// How many followers the account has now, where the network counts them (`None`:
    /// it does not, as on Nostr). Read at an engagement read: "followers at posting time"
    /// is the count at the first read after posting.
    async fn followers(&self, account: &AccountRef) -> Result<Option<u64>, PublishError> {
        let _ = account;
        Ok(None)
    }
}

/// Where adapters save credentials that change while picket runs (a refreshed Bluesky
/// session, a rotated OAuth token), so a restart does not start a new session. The app
/// implements it over the store and the vault; adapters never see either.
#[async_trait]
pub trait CredentialSink: Send + Sync + 'static {
    async fn save(&self, account_id: i64, credentials: &Secret) -> Result<(), NotSaved>;
}

/// Credentials a [`CredentialSink`] could not keep, with the sink's own error (the
/// network module does not know what the sink writes to).
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct NotSaved(pub Box<dyn std::error::Error + Send + Sync>);

/// A sink that keeps nothing (tests, one-shot commands).
pub struct DiscardCredentials;

#[async_trait]
impl CredentialSink for DiscardCredentials {
    async fn save(&self, _account_id: i64, _credentials: &Secret) -> Result<(), NotSaved> {
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

    /// The official-API adapters of the apps this host registered with the networks
    /// (`[threads]`, `[linkedin]`, `[x]`, `[facebook]`): each is absent without its settings, so accounts of that network
    /// cannot be posted to through an API.
    pub fn with_official_apis(
        mut self,
        settings: &crate::config::Settings,
        credentials: Arc<dyn CredentialSink>,
        egress: &Egress,
        clock: Arc<dyn Clock>,
    ) -> Self {
        if let Some(app) = &settings.threads {
            self = self.with(Arc::new(threads::Threads::new(
                egress.clone(),
                threads::app(app),
                credentials.clone(),
                clock.clone(),
            )));
        }
        if let Some(app) = &settings.linkedin {
            self = self.with(Arc::new(linkedin::LinkedIn::new(
                egress.clone(),
                linkedin::app(app),
                clock.clone(),
            )));
        }
        if let Some(app) = &settings.facebook {
            self = self.with(Arc::new(facebook::FacebookPages::new(
                egress.clone(),
                facebook::app(app),
                clock.clone(),
            )));
        }
        // Registered with the keys, used only for campaigns that opt in (`x_api = true`,
        // checked by the dispatcher).
        if let Some(app) = &settings.x {
            self = self.with(Arc::new(x::X::new(
                egress.clone(),
                x::app(app),
                credentials.clone(),
                clock,
            )));
        }
        self
    }

    /// Every adapter picket ships, sharing `egress` (one connection pool per client).
    /// `credentials` keeps tokens that change while running (the app passes
    /// `app::StoreCredentials`); `own_url` is this host's `public_url`, the only place link
    /// cards are read from; `clock` is where adapters read now (rate limits, token expiry).
    pub fn standard(
        credentials: Arc<dyn CredentialSink>,
        egress: &Egress,
        own_url: &str,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Networks::new()
            .with(Arc::new(mastodon::Mastodon::new(
                egress.clone(),
                clock.clone(),
            )))
            .with(Arc::new(nostr::Nostr::new(egress.clone())))
            .with(Arc::new(misskey::Misskey::new(
                egress.clone(),
                clock.clone(),
            )))
            // The sandbox's address is this host's own or the operator's: never a visitor's.
            .with(Arc::new(sandbox::Sandbox::new(
                egress.trusted().clone(),
                clock.clone(),
            )))
            .with(Arc::new(
                bluesky::Bluesky::new(egress.clone(), credentials, clock).with_cards_from(own_url),
            ))
    }
}

/// When picket's access to an account ends unless it is renewed or reconnected first,
/// for the networks whose grants expire (read from the account's opened credentials).
pub fn grant_ends(kind: NetworkKind, credentials: &str) -> Option<DateTime<Utc>> {
    match kind {
        NetworkKind::Threads => threads::grant_ends(credentials),
        NetworkKind::LinkedIn => linkedin::grant_ends(credentials),
        _ => None,
    }
}

/// Map a transport failure to what to do next. A timeout after the request was written
/// may have reached the server, so it is flagged `maybe_sent`. The summary names the kind
/// of failure; the error's own text (library words, a refused address) is the detail.
/// An adapter's credentials as they are sealed in the store: their JSON.
pub(crate) fn seal<T: Serialize>(credentials: &T) -> Secret {
    Secret::new(serde_json::to_string(credentials).expect("plain fields serialize"))
}

/// Stored credentials read back. Unreadable ones cannot post, so the account needs
/// reconnecting; `what` names them in the message ("the stored X credentials ...").
pub(crate) fn unseal<T: serde::de::DeserializeOwned>(
    s: &Secret,
    what: &str,
) -> Result<T, PublishError> {
    serde_json::from_str(s.expose()).map_err(|_| {
        PublishError::reconnect(format!("the stored {what} credentials are unreadable"))
    })
}

pub(crate) fn transport_error(e: &HttpError) -> PublishError {
    let summary = match e {
        HttpError::Refused(_) => {
            "picket does not connect to that address (not public, or not https)"
        }
        HttpError::Connect(_) => "could not connect to the server",
        HttpError::Transport(_) => "the connection failed or timed out during the request",
        HttpError::TooLarge(_) => "the server's answer was too large",
        HttpError::Decode(_) => "the server's answer was unreadable",
    };
    PublishError::Retry {
        reason: Reason::new(summary).with_detail(e.to_string()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_shows_only_picket_words_and_keeps_the_remote_ones_apart_on_one_short_line() {
        // Arrange: a remote answer with line breaks, control characters and no end.
        let remote = format!("SECRET\r\n\t<b>x</b>\u{7}{}", "y ".repeat(1000));

        // Act
        let r = Reason::new("the server refused the post (HTTP 422)").with_detail(&remote);

        // Assert
        assert_eq!(r.summary(), "the server refused the post (HTTP 422)");
        assert_eq!(r.to_string(), r.summary());
        let detail = r.detail().unwrap();
        assert!(detail.starts_with("SECRET <b>x</b> y y"), "{detail}");
        assert_eq!(detail.chars().count(), MAX_DETAIL);
        assert!(r.for_operator().contains("SECRET"));
        assert_eq!(Reason::new("x".repeat(1000)).summary().len(), MAX_SUMMARY);
        assert_eq!(Reason::new("ok").with_detail(" \n ").detail(), None);
    }

    #[test]
    fn a_token_a_server_echoes_back_is_left_out_of_the_detail() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJkaWQ6cGxjOmFiYyJ9.c2lnbmF0dXJlLWhlcmU";
        let mastodon = "ZA-Yj3aBD8U8Cm7lKUp-lm9O9BmDgdhHzDeqsY8tlL0";
        let said =
            format!("invalid token Bearer {mastodon} (was: \"{jwt}\"), see /api/v1/statuses");

        let r = Reason::new("the server refused the post (HTTP 401)").with_detail(&said);

        let detail = r.detail().unwrap();
        assert!(
            !detail.contains(mastodon) && !detail.contains("eyJ"),
            "{detail}"
        );
        assert!(
            detail.starts_with("invalid token Bearer [token?]")
                && detail.ends_with("see /api/v1/statuses"),
            "{detail}"
        );
    }

    #[test]
    fn a_transport_failure_is_named_by_its_kind_and_its_text_is_the_detail() {
        let cases = [
            (
                HttpError::Connect("tcp connect error: SECRET".into()),
                "could not connect to the server",
                false,
            ),
            (
                HttpError::Transport("operation timed out SECRET".into()),
                "the connection failed or timed out during the request",
                true,
            ),
            (
                HttpError::Decode("expected value SECRET".into()),
                "the server's answer was unreadable",
                true,
            ),
        ];
        for (e, summary, maybe) in cases {
            let PublishError::Retry {
                reason, maybe_sent, ..
            } = transport_error(&e)
            else {
                panic!("a transport failure is retried");
            };
            assert_eq!(reason.summary(), summary);
            assert!(reason.detail().unwrap().contains("SECRET"));
            assert_eq!(maybe_sent, maybe);
        }
    }

    #[test]
    fn an_account_ref_does_not_show_its_credentials_in_debug_output() {
        let account = AccountRef {
            id: 1,
            handle: "ada".into(),
            server: "http://127.0.0.1".into(),
            credentials: Secret::new("token-abc"),
            trusted: false,
        };
        let shown = format!("{account:?}");
        assert!(!shown.contains("token-abc"), "{shown}");
        assert!(shown.contains("ada"), "{shown}");
    }
}
