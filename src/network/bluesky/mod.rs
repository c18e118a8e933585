//! The Bluesky (AT Protocol) adapter: posts as `app.bsky.feed.post` records on the
//! account's own PDS, with an app-password session that is created once (at
//! `picket account add bluesky`), kept in memory, refreshed before it expires and saved
//! through the [`CredentialSink`], never re-created per post.
//!
//! ```text
//! publish ─> session (per-account async mutex: one refresh at a time)
//!              ├─ access JWT near `exp` or ExpiredToken ─> refreshSession (rotating pair)
//!              │     └─ refresh refused ─> createSession with the app password, once
//!              │           └─ refused ─> Reconnect
//!            ─> facets on the final text (links, #tags, @mentions → DIDs)
//!            ─> the strike card, when the post has one: uploadBlob, then an
//!               `app.bsky.embed.images` embed with its alt text (the blob's CID is the
//!               hash of the bytes, and the card is drawn the same every time, so a retry
//!               writes the identical record); otherwise
//!            ─> link card of the first link to this host's own pages (best effort,
//!               short timeout; a participant's text must not choose what picket fetches)
//!            ─> putRecord with a record key derived from the idempotency key and
//!               createdAt = the slot: a retry rewrites the identical record (a no-op)
//! ```
//!
//! The PDS of an account a visitor connected is reached through the guarded client at
//! every request; the trusted one serves accounts the operator added, this host's own
//! pages (cards) and the AppView.
//!
//! Engagement and followers come from an AppView: the one [`Bluesky::with_appview`]
//! names, or the one the account's PDS proxies to (a PDS alone counts nothing).
//!
//! An account connected with OAuth ([`oauth`], the join page's "Sign in with Bluesky")
//! holds DPoP-bound tokens instead of an app password: every request carries
//! `Authorization: DPoP <token>` and a proof with the token's hash and the PDS's latest
//! `DPoP-Nonce` (asked again once when the PDS hands a new one); the refresh goes to the
//! authorization server's token endpoint under the same per-account lock, and a refused
//! refresh means the person signs in again.

mod card;
pub(crate) mod facets;
mod identity;
pub mod oauth;
mod rkey;

pub use identity::{Dns, ResolveError, did_from_dns, resolve};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::guarded::{Egress, Http, HttpError, Response};
use serde_json::{Value, json};
use unicode_segmentation::UnicodeSegmentation;

use super::{
    AccountRef, CredentialSink, Engagement, Identity, Network, OutgoingPost, PublishError,
    ReadBack, Reason, Receipt,
};
use crate::clock::Clock;
use crate::domain::NetworkKind;
use crate::domain::Secret;

const COLLECTION: &str = "app.bsky.feed.post";
const MAX_GRAPHEMES: usize = 300;
const MAX_BYTES: usize = 3000;
/// Refresh when the access token has less than this left, so it cannot expire mid-post.
const REFRESH_MARGIN_SECS: i64 = 5 * 60;
/// How long the link card's page (and thumbnail) may take: the card is a nicety.
const CARD_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_THUMB_BYTES: usize = 1_000_000;
/// The largest image `app.bsky.embed.images` takes (its lexicon's `maxSize`).
const MAX_IMAGE_BYTES: usize = 2_000_000;

/// What picket stores (sealed) for a Bluesky account.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub did: String,
    pub handle: String,
    pub pds: String,
    pub app_password: String,
    pub access_jwt: String,
    pub refresh_jwt: String,
    /// Set for an account connected with OAuth (then `app_password` is empty and the
    /// two tokens are DPoP-bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthGrant>,
}

/// What refreshing and using an OAuth account's tokens needs.
#[derive(Clone, Serialize, Deserialize)]
pub struct OAuthGrant {
    pub issuer: String,
    pub token_endpoint: String,
    pub client_id: String,
    /// The DPoP key, its scalar in base64url ([`oauth::DpopKey::to_b64`]).
    pub dpop_key: String,
    /// The access token's end (Unix seconds), from `expires_in`.
    pub expires_at: Option<i64>,
    /// The authorization server's latest `DPoP-Nonce`.
    pub nonce: Option<String>,
}

impl Credentials {
    pub fn to_secret(&self) -> Secret {
        super::seal(self)
    }

    fn parse(s: &Secret) -> Result<Credentials, PublishError> {
        let c: Credentials = super::unseal(s, "Bluesky")?;
        if c.dpop_key().is_none() && c.oauth.is_some() {
            return Err(PublishError::reconnect(
                "the stored Bluesky sign-in is damaged: sign in again",
            ));
        }
        Ok(c)
    }

    fn access_expires(&self) -> Option<i64> {
        self.oauth
            .as_ref()
            .and_then(|g| g.expires_at)
            .or_else(|| jwt_exp(&self.access_jwt))
    }

    fn dpop_key(&self) -> Option<oauth::DpopKey> {
        oauth::DpopKey::from_b64(&self.oauth.as_ref()?.dpop_key)
    }

    /// What tells one connection of the account from the next (a reconnect changes it).
    fn connection(&self) -> (&str, Option<&str>) {
        (
            &self.app_password,
            self.oauth.as_ref().map(|g| g.dpop_key.as_str()),
        )
    }
}

/// The `exp` claim of a JWT, read without checking the signature: it only decides when
/// to refresh, the PDS still checks the token.
fn jwt_exp(jwt: &str) -> Option<i64> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice::<Value>(&bytes).ok()?["exp"].as_i64()
}

/// One account's live session. `rate_reset` holds the PDS's `RateLimit-Reset` when a
/// response said no requests remain.
struct Live {
    creds: Credentials,
    rate_reset: Option<DateTime<Utc>>,
}

/// Per account: the session behind an async mutex, held while refreshing so only one
/// refresh (single-use refresh tokens) runs at a time.
type Slot = Arc<tokio::sync::Mutex<Option<Live>>>;

pub struct Bluesky {
    egress: Egress,
    sink: Arc<dyn CredentialSink>,
    sessions: Mutex<HashMap<i64, Slot>>,
    /// The latest `DPoP-Nonce` of each PDS (by origin) OAuth accounts post to.
    pds_nonces: Mutex<HashMap<String, String>>,
    appview: Option<String>,
    /// This host's `public_url`: link cards are made only for pages under it.
    own: Option<url::Url>,
    /// When a rate limit ends and whether a token is about to expire are counted from
    /// this clock's now.
    clock: Arc<dyn Clock>,
}

/// Redirects a link card follows on this host's own pages (an invite link lands on its
/// campaign page); each hop must stay on the host.
const CARD_REDIRECTS: usize = 3;

impl Bluesky {
    pub fn new(egress: Egress, sink: Arc<dyn CredentialSink>, clock: Arc<dyn Clock>) -> Self {
        Bluesky {
            egress,
            sink,
            sessions: Mutex::new(HashMap::new()),
            pds_nonces: Mutex::new(HashMap::new()),
            appview: None,
            own: None,
            clock,
        }
    }

    /// Make link cards for links to pages under `public_url` (this host's own); without
    /// it, posts get no card.
    pub fn with_cards_from(mut self, public_url: &str) -> Self {
        self.own = url::Url::parse(public_url).ok();
        self
    }

    /// The client for an account's PDS: guarded unless the operator added the account.
    fn http(&self, account: &AccountRef) -> &Http {
        self.egress.for_account(account.trusted)
    }

    /// Read engagement from this AppView (e.g. `https://public.api.bsky.app`); without
    /// one, [`Network::engagement`] returns `Ok(None)`.
    pub fn with_appview(mut self, url: impl Into<String>) -> Self {
        self.appview = Some(url.into().trim_end_matches('/').to_string());
        self
    }

    fn slot(&self, account_id: i64) -> Slot {
        crate::sync::lock(&self.sessions)
            .entry(account_id)
            .or_default()
            .clone()
    }

    /// Credentials fit to use now: the cached session (unless the stored app password
    /// changed: the account was reconnected), refreshed first if it is about to expire.
    async fn session(&self, account: &AccountRef) -> Result<Credentials, PublishError> {
        let stored = Credentials::parse(&account.credentials)?;
        let slot = self.slot(account.id);
        let mut live = slot.lock().await;
        if live
            .as_ref()
            .is_none_or(|l| l.creds.connection() != stored.connection())
        {
            *live = Some(Live {
                creds: stored,
                rate_reset: None,
            });
        }
        let l = live.as_mut().expect("just set");
        if let Some(reset) = l.rate_reset {
            let now = self.clock.now();
            if reset > now {
                return Err(PublishError::Retry {
                    reason: Reason::new(
                        "rate limited by the server: no requests left until its reset",
                    ),
                    after: (reset - now).to_std().ok(),
                    maybe_sent: false,
                });
            }
            l.rate_reset = None;
        }
        let near_expiry = l
            .creds
            .access_expires()
            .is_some_and(|exp| exp - self.clock.now().timestamp() < REFRESH_MARGIN_SECS);
        if near_expiry {
            l.creds = self.renew(account, &l.creds).await?;
        }
        Ok(l.creds.clone())
    }

    /// After the PDS refused `used` as expired: renew it, unless another request already
    /// did while this one waited for the lock.
    async fn renew_after_expired(
        &self,
        account: &AccountRef,
        used: &Credentials,
    ) -> Result<Credentials, PublishError> {
        let slot = self.slot(account.id);
        let mut live = slot.lock().await;
        match live.as_mut() {
            Some(l) if l.creds.access_jwt != used.access_jwt => Ok(l.creds.clone()),
            Some(l) => {
                l.creds = self.renew(account, &l.creds).await?;
                Ok(l.creds.clone())
            }
            None => {
                let creds = self.renew(account, used).await?;
                *live = Some(Live {
                    creds: creds.clone(),
                    rate_reset: None,
                });
                Ok(creds)
            }
        }
    }

    /// refreshSession; if the refresh token is refused, one createSession with the app
    /// password; if that is refused too, the participant must reconnect. Saves the result.
    async fn renew(
        &self,
        account: &AccountRef,
        c: &Credentials,
    ) -> Result<Credentials, PublishError> {
        let account_id = account.id;
        if c.oauth.is_some() {
            return self.renew_oauth(account, c).await;
        }
        let refreshed = self
            .xrpc_post(
                self.http(account),
                &c.pds,
                "com.atproto.server.refreshSession",
                Some(&c.refresh_jwt),
                None,
                Duration::from_secs(20),
            )
            .await;
        let body = match refreshed {
            Ok(body) => body,
            Err(XrpcError::Auth(_)) => {
                tracing::info!(account = account_id, "refresh refused; new session");
                create_session(
                    self.http(account),
                    &c.pds,
                    &c.did,
                    &c.app_password,
                    Duration::from_secs(20),
                    self.clock.now(),
                )
                .await
                .map_err(|e| session_failure(e, "signing in again", self.clock.now()))?
            }
            Err(e) => {
                return Err(session_failure(
                    e,
                    "refreshing the session",
                    self.clock.now(),
                ));
            }
        };
        let session: SessionBody = serde_json::from_value(body)
            .map_err(|_| retry("the PDS sent an unreadable session", false))?;
        let next = Credentials {
            handle: session.handle,
            access_jwt: session.access_jwt,
            refresh_jwt: session.refresh_jwt,
            ..c.clone()
        };
        if let Err(e) = self.sink.save(account_id, &next.to_secret()).await {
            // The session still works in memory; after a restart the app password signs in again.
            tracing::warn!(account = account_id, error = %e, "could not save the refreshed session");
        }
        Ok(next)
    }

    /// The OAuth refresh: the new pair is saved before it is used, since the old refresh
    /// token is spent. A refused grant means the person signs in again.
    async fn renew_oauth(
        &self,
        account: &AccountRef,
        c: &Credentials,
    ) -> Result<Credentials, PublishError> {
        let grant = c.oauth.as_ref().expect("an OAuth account");
        let key = c.dpop_key().expect("checked when parsed");
        let now = self.clock.now().timestamp();
        let tokens = oauth::refresh(
            self.http(account),
            &grant.token_endpoint,
            &grant.client_id,
            &key,
            grant.nonce.clone(),
            &c.refresh_jwt,
            now,
        )
        .await
        .map_err(|e| match e {
            oauth::OAuthError::InvalidGrant(_) | oauth::OAuthError::Refused(_) => {
                PublishError::reconnect(
                    "Bluesky refused to renew the sign-in: the person must sign in with Bluesky again",
                )
            }
            other => PublishError::Retry {
                reason: Reason::new("renewing the Bluesky sign-in failed for now")
                    .with_detail(other.to_string()),
                after: None,
                maybe_sent: false,
            },
        })?;
        if tokens.sub != c.did {
            return Err(PublishError::reconnect(
                "Bluesky renewed the sign-in for another account: sign in again",
            ));
        }
        let next = Credentials {
            access_jwt: tokens.access_token,
            refresh_jwt: tokens.refresh_token,
            oauth: Some(OAuthGrant {
                expires_at: tokens.expires_at,
                nonce: tokens.nonce,
                ..grant.clone()
            }),
            ..c.clone()
        };
        if let Err(e) = self.sink.save(account.id, &next.to_secret()).await {
            // The old refresh token is spent: the new pair lives in memory until a
            // restart, after which the person signs in again.
            tracing::warn!(account = account.id, error = %e, "could not save the renewed sign-in");
        }
        Ok(next)
    }

    /// A request with the account's access token: a bearer token for an app-password
    /// session; for OAuth `Authorization: DPoP` and a proof, made again once with the
    /// PDS's new nonce when it answers `use_dpop_nonce`. `build` adds the body.
    async fn send_as(
        &self,
        account: &AccountRef,
        creds: &Credentials,
        method: reqwest::Method,
        url: &str,
        build: impl Fn(super::guarded::Request) -> super::guarded::Request,
    ) -> Result<Response, HttpError> {
        let http = self.http(account);
        let Some(key) = creds.dpop_key() else {
            return build(http.request(method, url).bearer_auth(&creds.access_jwt))
                .send()
                .await;
        };
        let origin = url::Url::parse(url)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default();
        let mut nonce = crate::sync::lock(&self.pds_nonces).get(&origin).cloned();
        let mut asked_again = false;
        loop {
            let proof = key.proof(
                method.as_str(),
                url,
                nonce.as_deref(),
                Some(&creds.access_jwt),
                self.clock.now().timestamp(),
            );
            let resp = build(
                http.request(method.clone(), url)
                    .header("authorization", &format!("DPoP {}", creds.access_jwt))
                    .header("dpop", &proof),
            )
            .send()
            .await?;
            let fresh = oauth::nonce_of(&resp);
            if let Some(n) = &fresh {
                crate::sync::lock(&self.pds_nonces).insert(origin.clone(), n.clone());
            }
            let wants_nonce = resp.status() == StatusCode::UNAUTHORIZED
                && resp
                    .headers()
                    .get(reqwest::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("use_dpop_nonce"));
            if wants_nonce && !asked_again && fresh.is_some() {
                asked_again = true;
                nonce = fresh;
                continue;
            }
            return Ok(resp);
        }
    }

    /// An authenticated call; on an expired token, renew once and try again.
    async fn authed(
        &self,
        account: &AccountRef,
        method: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<(Credentials, Value), PublishError> {
        let creds = self.session(account).await?;
        let first = self.xrpc_call(account, &creds, method, body, timeout).await;
        match first {
            Err(XrpcError::Auth(_)) => {
                let creds = self.renew_after_expired(account, &creds).await?;
                let v = self
                    .xrpc_call(account, &creds, method, body, timeout)
                    .await
                    .map_err(|e| e.into_publish(method, self.clock.now()))?;
                Ok((creds, v))
            }
            other => other
                .map(|v| (creds, v))
                .map_err(|e| e.into_publish(method, self.clock.now())),
        }
    }

    /// POST when there is a body, GET otherwise (with `body` as query pairs if an object).
    async fn xrpc_call(
        &self,
        account: &AccountRef,
        creds: &Credentials,
        method: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, XrpcError> {
        let is_query = matches!(
            method,
            "com.atproto.server.getSession"
                | "com.atproto.identity.resolveHandle"
                | "app.bsky.feed.getPosts"
                | "app.bsky.actor.getProfile"
        );
        let mut result = if is_query {
            let pairs: Vec<(String, String)> = match body {
                Some(Value::Object(q)) => q
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                _ => Vec::new(),
            };
            let url = with_query(&xrpc_url(&creds.pds, method), &pairs);
            let sent = self
                .send_as(account, creds, reqwest::Method::GET, &url, |r| {
                    r.timeout(timeout)
                })
                .await;
            finish(sent, self.clock.now()).await
        } else {
            let url = xrpc_url(&creds.pds, method);
            let sent = self
                .send_as(account, creds, reqwest::Method::POST, &url, |r| {
                    let r = r.timeout(timeout);
                    match body {
                        Some(b) => r.json(b),
                        None => r,
                    }
                })
                .await;
            finish(sent, self.clock.now()).await
        };
        let reset = match &mut result {
            Ok(body) => take_rate_note(body),
            Err(XrpcError::Status { rate_reset, .. } | XrpcError::Auth(rate_reset)) => *rate_reset,
            Err(XrpcError::Transport(_)) => None,
        };
        if let Some(reset) = reset {
            self.note_rate_reset(account.id, reset).await;
        }
        result
    }

    async fn note_rate_reset(&self, account_id: i64, reset: DateTime<Utc>) {
        if let Some(l) = self.slot(account_id).lock().await.as_mut() {
            l.rate_reset = Some(reset);
        }
    }

    async fn xrpc_post(
        &self,
        http: &Http,
        pds: &str,
        method: &str,
        token: Option<&str>,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, XrpcError> {
        let mut req = http.post(&xrpc_url(pds, method)).timeout(timeout);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        finish(req.send().await, self.clock.now()).await
    }

    /// Mentions become facets only when the handle resolves to a DID; others stay text.
    async fn facets(
        &self,
        account: &AccountRef,
        pds: &str,
        text: &str,
        timeout: Duration,
    ) -> Vec<Value> {
        let mut out = Vec::new();
        for span in facets::detect(text) {
            let feature = match span.feature {
                facets::Feature::Link { uri } => {
                    json!({"$type": "app.bsky.richtext.facet#link", "uri": uri})
                }
                facets::Feature::Tag { tag } => {
                    json!({"$type": "app.bsky.richtext.facet#tag", "tag": tag})
                }
                facets::Feature::Mention { handle } => {
                    let http = self.http(account);
                    match identity::resolve_handle_via(http, pds, &handle, timeout).await {
                        Ok(did) => json!({"$type": "app.bsky.richtext.facet#mention", "did": did}),
                        Err(_) => continue,
                    }
                }
            };
            out.push(json!({
                "index": {"byteStart": span.bytes.start, "byteEnd": span.bytes.end},
                "features": [feature],
            }));
        }
        out
    }

    /// Whether `uri` is a page of this host (same scheme, host and port as `public_url`,
    /// under its path): the only pages picket reads for a card.
    fn is_own(&self, uri: &str) -> bool {
        let (Some(own), Ok(u)) = (&self.own, url::Url::parse(uri)) else {
            return false;
        };
        u.origin() == own.origin() && u.path().starts_with(own.path().trim_end_matches('/'))
    }

    /// `GET` a page of this host, following its redirects while they stay on it.
    async fn own_page(&self, uri: &str, timeout: Duration, max: usize) -> Option<Response> {
        let mut at = url::Url::parse(uri).ok()?;
        for _ in 0..=CARD_REDIRECTS {
            if !self.is_own(at.as_str()) {
                return None;
            }
            let resp = self
                .egress
                .trusted()
                .get(at.as_str())
                .timeout(timeout)
                .max_body(max)
                .send()
                .await
                .ok()?;
            if !resp.status().is_redirection() {
                return resp.status().is_success().then_some(resp);
            }
            let to = resp
                .headers()
                .get(reqwest::header::LOCATION)?
                .to_str()
                .ok()?;
            at = at.join(to).ok()?;
        }
        None
    }

    /// The external embed for `uri` (a page of this host), or `None` if the page cannot
    /// be read in time. The thumbnail is uploaded as a blob when the page names one of
    /// this host's images.
    async fn card(&self, account: &AccountRef, uri: &str, timeout: Duration) -> Option<Value> {
        let base = url::Url::parse(uri).ok()?;
        let html = self
            .own_page(uri, timeout, super::guarded::MAX_BODY)
            .await?
            .text()
            .await
            .ok()?;
        let card = card::parse(&html, &base)?;
        let mut external = json!({
            "uri": uri,
            "title": card.title,
            "description": card.description,
        });
        if let Some(image) = card.image
            && let Some(blob) = self.thumbnail(account, &image, timeout).await
        {
            external["thumb"] = blob;
        }
        Some(json!({"$type": "app.bsky.embed.external", "external": external}))
    }

    async fn thumbnail(
        &self,
        account: &AccountRef,
        image: &str,
        timeout: Duration,
    ) -> Option<Value> {
        let resp = self.own_page(image, timeout, MAX_THUMB_BYTES).await?;
        let mime = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)?
            .to_str()
            .ok()?
            .split(';')
            .next()?
            .trim()
            .to_string();
        if !mime.starts_with("image/") {
            return None;
        }
        let bytes = resp.bytes().await.ok()?;
        let creds = self.session(account).await.ok()?;
        let url = xrpc_url(&creds.pds, "com.atproto.repo.uploadBlob");
        let resp = self
            .send_as(account, &creds, reqwest::Method::POST, &url, |r| {
                r.header(reqwest::header::CONTENT_TYPE.as_str(), &mime)
                    .timeout(timeout)
                    .body(bytes.clone())
            })
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let v: Value = resp.json().await.ok()?;
        Some(v.get("blob")?.clone())
    }

    /// `com.atproto.repo.uploadBlob` of a post's image; the blob reference for the record.
    /// Unlike the link card's thumbnail this is not best effort: the campaign asked for the
    /// picture, so a failure is the post's (retried, or reconnect).
    async fn upload_image(
        &self,
        account: &AccountRef,
        image: &super::Image,
        timeout: Duration,
    ) -> Result<Value, PublishError> {
        const METHOD: &str = "com.atproto.repo.uploadBlob";
        if image.bytes().len() > MAX_IMAGE_BYTES {
            return Err(PublishError::rejected(format!(
                "the post's image is too large for Bluesky: {} bytes of at most {MAX_IMAGE_BYTES}",
                image.bytes().len()
            )));
        }
        let mut creds = self.session(account).await?;
        let mut renewed = false;
        loop {
            let url = xrpc_url(&creds.pds, METHOD);
            let sent = self
                .send_as(account, &creds, reqwest::Method::POST, &url, |r| {
                    r.header(reqwest::header::CONTENT_TYPE.as_str(), "image/png")
                        .timeout(timeout)
                        .body(image.bytes().to_vec())
                })
                .await;
            match finish(sent, self.clock.now()).await {
                Ok(mut body) => {
                    if let Some(reset) = take_rate_note(&mut body) {
                        self.note_rate_reset(account.id, reset).await;
                    }
                    return match body.get("blob") {
                        Some(blob) if blob.is_object() => Ok(blob.clone()),
                        _ => Err(retry(
                            "the PDS's answer to the image upload had no blob",
                            false,
                        )),
                    };
                }
                Err(XrpcError::Auth(_)) if !renewed => {
                    creds = self.renew_after_expired(account, &creds).await?;
                    renewed = true;
                }
                Err(e) => {
                    if let XrpcError::Status {
                        rate_reset: Some(reset),
                        ..
                    } = &e
                    {
                        self.note_rate_reset(account.id, *reset).await;
                    }
                    return Err(e.into_publish(METHOD, self.clock.now()));
                }
            }
        }
    }

    /// The first link of `text` to a page of this host, the one a card is made for.
    fn card_link(&self, text: &str) -> Option<String> {
        facets::detect(text)
            .into_iter()
            .find_map(|s| match s.feature {
                facets::Feature::Link { uri } if self.is_own(&uri) => Some(uri),
                _ => None,
            })
    }
}

/// A session that cannot be renewed for a reason other than a passing fault is the
/// account's problem, not the post's: the participant reconnects, the post waits.
fn session_failure(e: XrpcError, doing: &str, now: DateTime<Utc>) -> PublishError {
    match e.into_publish(doing, now) {
        PublishError::Rejected(reason) => PublishError::Reconnect(reason),
        other => other,
    }
}

fn xrpc_url(pds: &str, method: &str) -> String {
    format!("{}/xrpc/{method}", pds.trim_end_matches('/'))
}

/// `url?k=v&...`, percent-encoded.
pub(crate) fn with_query(url: &str, pairs: &[(String, String)]) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            u.query_pairs_mut().extend_pairs(pairs);
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

fn retry(reason: &str, maybe_sent: bool) -> PublishError {
    PublishError::Retry {
        reason: Reason::new(reason),
        after: None,
        maybe_sent,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionBody {
    did: String,
    handle: String,
    access_jwt: String,
    refresh_jwt: String,
}

/// A failed XRPC call, sorted by what the caller can do about it.
#[derive(Debug)]
enum XrpcError {
    /// The token was refused (ExpiredToken, InvalidToken, AuthenticationRequired, 401):
    /// renew the session (or, when renewing, reconnect).
    Auth(Option<DateTime<Utc>>),
    /// The request never completed (timeouts may have reached the PDS).
    Transport(PublishError),
    Status {
        status: StatusCode,
        error: String,
        message: String,
        /// `RateLimit-Reset` when no requests remain (or on 429).
        rate_reset: Option<DateTime<Utc>>,
        retry_after: Option<Duration>,
    },
}

impl XrpcError {
    /// What the caller should do, in picket's words: what picket was `doing`, the HTTP
    /// status and the XRPC error name when it is one the AT Protocol defines. The PDS's
    /// `message` (and a name it made up) is only the detail (see [`Reason`]). A rate
    /// limit's wait is counted from `now`.
    fn into_publish(self, doing: &str, now: DateTime<Utc>) -> PublishError {
        let doing = doing_words(doing);
        match self {
            XrpcError::Auth(_) => PublishError::reconnect(format!(
                "Bluesky refused the session while {doing}: the app password was revoked or changed"
            )),
            XrpcError::Transport(e) => e,
            XrpcError::Status {
                status,
                error,
                message,
                rate_reset,
                retry_after,
            } => {
                let code = match known_error(&error) {
                    Some(name) => format!("HTTP {}, {name}", status.as_u16()),
                    None => format!("HTTP {}", status.as_u16()),
                };
                let detail = match (error.is_empty(), message.is_empty()) {
                    (false, false) => format!("{error}: {message}"),
                    (false, true) => error.clone(),
                    _ => message.clone(),
                };
                let reason = |kind: &str| {
                    Reason::new(format!("{doing}: {kind} ({code})")).with_detail(&detail)
                };
                if status == StatusCode::TOO_MANY_REQUESTS || error == "RateLimitExceeded" {
                    let after = rate_reset
                        .and_then(|r| (r - now).to_std().ok())
                        .or(retry_after);
                    PublishError::Retry {
                        reason: reason("rate limited by the server"),
                        after,
                        maybe_sent: false,
                    }
                } else if status.is_server_error() {
                    PublishError::Retry {
                        reason: reason("the server had a temporary failure"),
                        after: retry_after,
                        maybe_sent: true,
                    }
                } else if matches!(
                    error.as_str(),
                    "AccountTakedown" | "AccountDeactivated" | "AuthFactorTokenRequired"
                ) || status == StatusCode::FORBIDDEN
                {
                    PublishError::Reconnect(reason("the server refused the account"))
                } else if says_too_long(&message) {
                    PublishError::Rejected(reason("too long for Bluesky"))
                } else {
                    PublishError::Rejected(reason("the server refused it"))
                }
            }
        }
    }
}

/// What picket was doing, in words for a participant's page.
fn doing_words(doing: &str) -> &str {
    match doing {
        "com.atproto.repo.putRecord" => "posting",
        "com.atproto.repo.uploadBlob" => "uploading the post's image",
        "com.atproto.repo.deleteRecord" => "deleting a post",
        "com.atproto.server.getSession" => "checking the account",
        "app.bsky.feed.getPosts" => "reading the post's likes and reposts",
        "app.bsky.actor.getProfile" => "reading the account's followers",
        other => other,
    }
}

/// The XRPC error names (AT Protocol lexicons: the generic ones and those of the calls
/// picket makes) that may be named in picket's own words; any other `error` a server
/// sends is its own text.
fn known_error(name: &str) -> Option<&'static str> {
    const KNOWN: &[&str] = &[
        "InvalidRequest",
        "ExpiredToken",
        "InvalidToken",
        "AuthenticationRequired",
        "AuthMissing",
        "AccountTakedown",
        "AccountDeactivated",
        "AuthFactorTokenRequired",
        "RateLimitExceeded",
        "InternalServerError",
        "MethodNotImplemented",
        "NotEnoughResources",
        "UpstreamFailure",
        "UpstreamTimeout",
        "PayloadTooLarge",
        "BlobTooLarge",
        "InvalidSwap",
        "InvalidMimeType",
        "RecordNotFound",
        "RepoNotFound",
        "RepoTakendown",
        "RepoSuspended",
        "RepoDeactivated",
        "HandleNotFound",
    ];
    KNOWN.iter().copied().find(|k| *k == name)
}

/// Whether a refusal's message says the record's text is over the limit ("Record/text
/// must not be longer than 300 graphemes").
fn says_too_long(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("longer than") || m.contains("too long")
}

/// Turn a response into its JSON body or an [`XrpcError`]; `Retry-After` dates count
/// from `now`.
async fn finish(sent: Result<Response, HttpError>, now: DateTime<Utc>) -> Result<Value, XrpcError> {
    let resp = sent.map_err(|e| XrpcError::Transport(super::transport_error(&e)))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let reset =
        header_num(&headers, "ratelimit-reset").and_then(|s| DateTime::<Utc>::from_timestamp(s, 0));
    let exhausted = header_num(&headers, "ratelimit-remaining") == Some(0);
    if status.is_success() {
        // A success that used the last request of the window: the next call waits.
        let body = resp.json::<Value>().await.unwrap_or(Value::Null);
        if exhausted && reset.is_some() {
            return Ok(with_rate_note(body, reset));
        }
        return Ok(body);
    }
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let error = body["error"].as_str().unwrap_or_default().to_string();
    let message = body["message"].as_str().unwrap_or_default().to_string();
    let rate_reset = (exhausted || status == StatusCode::TOO_MANY_REQUESTS)
        .then_some(reset)
        .flatten();
    if status == StatusCode::UNAUTHORIZED
        || matches!(
            error.as_str(),
            "ExpiredToken" | "InvalidToken" | "AuthenticationRequired" | "AuthMissing"
        )
    {
        return Err(XrpcError::Auth(rate_reset));
    }
    Err(XrpcError::Status {
        status,
        error,
        message,
        rate_reset,
        retry_after: super::retry_after(&headers, now),
    })
}

/// Success bodies carry the exhausted window's reset under a private key the adapter
/// strips off again (see [`take_rate_note`]).
fn with_rate_note(mut body: Value, reset: Option<DateTime<Utc>>) -> Value {
    if let (Value::Object(m), Some(r)) = (&mut body, reset) {
        m.insert("__picket_rate_reset".into(), json!(r.timestamp()));
    }
    body
}

fn take_rate_note(body: &mut Value) -> Option<DateTime<Utc>> {
    let v = body.as_object_mut()?.remove("__picket_rate_reset")?;
    DateTime::<Utc>::from_timestamp(v.as_i64()?, 0)
}

fn header_num(h: &reqwest::header::HeaderMap, name: &str) -> Option<i64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `com.atproto.server.createSession` with an app password.
async fn create_session(
    client: &Http,
    pds: &str,
    identifier: &str,
    password: &str,
    timeout: Duration,
    now: DateTime<Utc>,
) -> Result<Value, XrpcError> {
    let sent = client
        .post(&xrpc_url(pds, "com.atproto.server.createSession"))
        .timeout(timeout)
        .json(&json!({"identifier": identifier, "password": password}))
        .send()
        .await;
    finish(sent, now).await
}

/// The DID and PDS of `handle`: through the `service` (a PDS) the person named, or by
/// the handle's own resolution (DNS, then HTTPS) and its DID document.
pub async fn locate(
    client: &Http,
    handle: &str,
    service: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let timeout = Duration::from_secs(20);
    let handle = handle.trim_start_matches('@').to_ascii_lowercase();
    let handle = handle.as_str();
    Ok(match service {
        Some(service) => {
            let pds = service.trim_end_matches('/').to_string();
            let did = identity::resolve_handle_via(client, &pds, handle, timeout)
                .await
                .map_err(|e| anyhow::anyhow!("resolving {handle} on {pds}: {e}"))?;
            (did, pds)
        }
        None => {
            let r = identity::resolve(
                client,
                handle,
                identity::PLC_DIRECTORY,
                &identity::Dns::System,
                timeout,
            )
            .await?;
            (r.did, r.pds)
        }
    })
}

/// The handle `did` has on its PDS (`com.atproto.repo.describeRepo`).
pub async fn handle_of(client: &Http, pds: &str, did: &str) -> Option<String> {
    let url = with_query(
        &xrpc_url(pds, "com.atproto.repo.describeRepo"),
        &[("repo".into(), did.into())],
    );
    let resp = client
        .get(&url)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let v: Value = resp.json().await.ok()?;
    v["handle"].as_str().map(str::to_string)
}

/// Sign in once for `picket account add bluesky`: resolve the handle (or ask `service`),
/// create the session, and return what to store.
pub async fn connect(
    client: &Http,
    handle: &str,
    app_password: &str,
    service: Option<&str>,
) -> anyhow::Result<Credentials> {
    let timeout = Duration::from_secs(20);
    let handle = handle.trim_start_matches('@').to_ascii_lowercase();
    let (did, pds) = locate(client, &handle, service).await?;
    // Enrolment runs once, from the command line or a visitor's connect step, and has no
    // `Clock` of its own.
    let body = create_session(client, &pds, &did, app_password, timeout, Utc::now())
        .await
        .map_err(|e| match e {
            XrpcError::Auth(_) => anyhow::anyhow!(
                "{pds} refused the handle and app password (create an app password in Settings → Privacy and security → App passwords)"
            ),
            XrpcError::Transport(e) => anyhow::anyhow!("could not reach {pds}: {e}"),
            XrpcError::Status { status, error, message, .. } => {
                anyhow::anyhow!("{pds} refused the session: {status} {error} {message}")
            }
        })?;
    let session: SessionBody = serde_json::from_value(body)?;
    anyhow::ensure!(
        session.did == did,
        "{pds} signed in {} but {handle} resolves to {did}",
        session.did
    );
    Ok(Credentials {
        did: session.did,
        handle: session.handle,
        pds,
        app_password: app_password.to_string(),
        access_jwt: session.access_jwt,
        refresh_jwt: session.refresh_jwt,
        oauth: None,
    })
}

/// `at://did/app.bsky.feed.post/rkey` → rkey.
fn rkey_of(remote_id: &str) -> Option<&str> {
    let rest = remote_id.strip_prefix("at://")?;
    let mut parts = rest.split('/');
    let (_did, coll, rkey) = (parts.next()?, parts.next()?, parts.next()?);
    (coll == COLLECTION && parts.next().is_none()).then_some(rkey)
}

#[async_trait]
impl Network for Bluesky {
    fn kind(&self) -> NetworkKind {
        NetworkKind::Bluesky
    }

    fn takes_images(&self) -> bool {
        true
    }

    #[tracing::instrument(skip_all, fields(network = "bluesky", account = account.id))]
    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        let graphemes = post.text.graphemes(true).count();
        if graphemes > MAX_GRAPHEMES || post.text.len() > MAX_BYTES {
            return Err(PublishError::rejected(format!(
                "too long for Bluesky: {graphemes}/{MAX_GRAPHEMES} graphemes, {}/{MAX_BYTES} bytes",
                post.text.len()
            )));
        }
        let creds = self.session(account).await?;
        let side_timeout = CARD_TIMEOUT.min(post.timeout / 3);
        let facets = self
            .facets(account, &creds.pds, &post.text, side_timeout)
            .await;
        let first_link = self.card_link(&post.text);
        let mut record = json!({
            "$type": COLLECTION,
            "text": post.text,
            "createdAt": post.scheduled_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        });
        if !facets.is_empty() {
            record["facets"] = Value::Array(facets);
        }
        // One embed per post: the picture the campaign asked for wins over a link card.
        if let Some(image) = &post.image {
            let blob = self.upload_image(account, image, post.timeout).await?;
            record["embed"] = json!({
                "$type": "app.bsky.embed.images",
                "images": [{
                    "image": blob,
                    "alt": image.alt,
                    "aspectRatio": {"width": image.width, "height": image.height},
                }],
            });
        } else if let Some(uri) = first_link
            && let Some(embed) = self.card(account, &uri, side_timeout).await
        {
            record["embed"] = embed;
        }
        let rkey = rkey::derive(&post.idempotency_key, post.scheduled_at);
        let body = json!({
            "repo": creds.did,
            "collection": COLLECTION,
            "rkey": rkey,
            "validate": true,
            "record": record,
        });
        let (creds, resp) = self
            .authed(
                account,
                "com.atproto.repo.putRecord",
                Some(&body),
                post.timeout,
            )
            .await?;
        let uri = resp["uri"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| format!("at://{}/{COLLECTION}/{rkey}", creds.did));
        Ok(Receipt {
            url: Some(format!(
                "https://bsky.app/profile/{}/post/{rkey}",
                creds.did
            )),
            remote_id: uri,
        })
    }

    /// `com.atproto.repo.getRecord` by the record key the post was put under: the same
    /// idempotency key and slot always derive the same key.
    #[tracing::instrument(skip_all, fields(network = "bluesky", account = account.id))]
    async fn read_back(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<ReadBack, PublishError> {
        let creds = self.session(account).await?;
        let rkey = rkey::derive(&post.idempotency_key, post.scheduled_at);
        let url = with_query(
            &xrpc_url(&creds.pds, "com.atproto.repo.getRecord"),
            &[
                ("repo".into(), creds.did.clone()),
                ("collection".into(), COLLECTION.into()),
                ("rkey".into(), rkey.clone()),
            ],
        );
        let sent = self
            .http(account)
            .get(&url)
            .timeout(post.timeout)
            .send()
            .await;
        let now = self.clock.now();
        match finish(sent, now).await {
            Ok(v) => Ok(ReadBack::Found(Receipt {
                remote_id: v["uri"]
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("at://{}/{COLLECTION}/{rkey}", creds.did)),
                url: Some(format!(
                    "https://bsky.app/profile/{}/post/{rkey}",
                    creds.did
                )),
            })),
            Err(XrpcError::Status { error, .. }) if error == "RecordNotFound" => {
                Ok(ReadBack::Absent)
            }
            Err(e) => Err(e.into_publish("reading the post back", now)),
        }
    }

    async fn delete(&self, account: &AccountRef, remote_id: &str) -> Result<(), PublishError> {
        let rkey = rkey_of(remote_id)
            .ok_or_else(|| PublishError::rejected("the stored post id is not a Bluesky post"))?;
        let creds = self.session(account).await?;
        let body = json!({"repo": creds.did, "collection": COLLECTION, "rkey": rkey});
        self.authed(
            account,
            "com.atproto.repo.deleteRecord",
            Some(&body),
            Duration::from_secs(30),
        )
        .await
        .map(|_| ())
    }

    async fn verify(&self, account: &AccountRef) -> Result<Identity, PublishError> {
        let (_, v) = self
            .authed(
                account,
                "com.atproto.server.getSession",
                None,
                Duration::from_secs(30),
            )
            .await?;
        let handle = v["handle"].as_str().unwrap_or(&account.handle).to_string();
        Ok(Identity {
            url: Some(format!("https://bsky.app/profile/{handle}")),
            handle,
        })
    }

    /// Counts come from an AppView (`app.bsky.feed.getPosts`): the configured one, or
    /// else the one the account's PDS proxies `app.bsky.*` calls to (as Bluesky's own app
    /// reads them). A PDS without an AppView answers an error, recorded as the reason.
    async fn engagement(
        &self,
        account: &AccountRef,
        remote_id: &str,
    ) -> Result<Option<Engagement>, PublishError> {
        let v = self
            .read_view(account, "app.bsky.feed.getPosts", "uris", remote_id)
            .await?;
        let Some(p) = v["posts"].get(0) else {
            return Ok(None);
        };
        let n = |k: &str| p[k].as_u64().unwrap_or(0);
        Ok(Some(Engagement {
            replies: n("replyCount"),
            reposts: n("repostCount") + n("quoteCount"),
            likes: n("likeCount"),
        }))
    }

    /// `followersCount` of `app.bsky.actor.getProfile`, read like the counts.
    async fn followers(&self, account: &AccountRef) -> Result<Option<u64>, PublishError> {
        let actor = self.session(account).await?.did;
        let v = self
            .read_view(account, "app.bsky.actor.getProfile", "actor", &actor)
            .await?;
        Ok(v["followersCount"].as_u64())
    }
}

impl Bluesky {
    /// One AppView query with one parameter: from the configured AppView, or through the
    /// account's PDS.
    async fn read_view(
        &self,
        account: &AccountRef,
        method: &str,
        param: &str,
        value: &str,
    ) -> Result<Value, PublishError> {
        let Some(appview) = &self.appview else {
            let query = serde_json::json!({ param: value });
            return Ok(self
                .authed(account, method, Some(&query), Duration::from_secs(30))
                .await?
                .1);
        };
        let sent = self
            .egress
            .trusted()
            .get(&with_query(
                &xrpc_url(appview, method),
                &[(param.into(), value.into())],
            ))
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let now = self.clock.now();
        finish(sent, now)
            .await
            .map_err(|e| e.into_publish(method, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_with(payload: &str) -> String {
        let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!("{}.{}.sig", e(r#"{"alg":"HS256"}"#), e(payload))
    }

    #[test]
    fn the_expiry_is_read_from_the_jwt_payload_without_checking_the_signature() {
        assert_eq!(
            jwt_exp(&jwt_with(r#"{"exp":1800000000,"sub":"did:plc:x"}"#)),
            Some(1_800_000_000)
        );
        assert_eq!(jwt_exp("not-a-jwt"), None);
    }

    #[test]
    fn the_record_key_is_read_back_from_a_post_uri() {
        assert_eq!(
            rkey_of("at://did:plc:abc/app.bsky.feed.post/3kabcdefghij2"),
            Some("3kabcdefghij2")
        );
        assert_eq!(rkey_of("at://did:plc:abc/app.bsky.feed.like/3k"), None);
    }

    #[test]
    fn stored_credentials_do_not_show_in_debug_output() {
        let c = Credentials {
            did: "did:plc:x".into(),
            handle: "a.test".into(),
            pds: "http://127.0.0.1".into(),
            app_password: "app-pass-secret".into(),
            access_jwt: "access-secret".into(),
            refresh_jwt: "refresh-secret".into(),
            oauth: None,
        };
        let shown = format!("{:?}", c.to_secret());
        assert!(
            !shown.contains("app-pass") && !shown.contains("access-"),
            "{shown}"
        );
    }

    fn refused(status: u16, error: &str, message: &str) -> XrpcError {
        XrpcError::Status {
            status: StatusCode::from_u16(status).unwrap(),
            error: error.into(),
            message: message.into(),
            rate_reset: None,
            retry_after: None,
        }
    }

    #[test]
    fn a_pds_message_is_only_the_detail_and_the_reason_names_the_kind_status_and_known_code() {
        // Arrange: what a PDS chooses to say, in its message and in a made-up error name.
        let said = "SECRET-PDS-2b7e: see https://evil.example";
        let cases = [
            (
                400,
                "InvalidRequest",
                "posting: the server refused it (HTTP 400, InvalidRequest)",
            ),
            (
                400,
                "SECRET-NAME",
                "posting: the server refused it (HTTP 400)",
            ),
            (
                403,
                "AccountTakedown",
                "posting: the server refused the account (HTTP 403, AccountTakedown)",
            ),
            (
                429,
                "RateLimitExceeded",
                "posting: rate limited by the server (HTTP 429, RateLimitExceeded)",
            ),
            (
                502,
                "",
                "posting: the server had a temporary failure (HTTP 502)",
            ),
        ];

        for (status, error, summary) in cases {
            // Act
            let e =
                refused(status, error, said).into_publish("com.atproto.repo.putRecord", Utc::now());

            // Assert
            assert_eq!(e.reason().summary(), summary);
            assert!(!e.to_string().contains("SECRET"), "{e}");
            assert!(
                e.reason().detail().is_some_and(|d| d.contains(said)),
                "kept for the log: {e:?}"
            );
        }
    }

    #[test]
    fn a_refusal_that_says_the_text_is_too_long_says_so_and_others_map_as_before() {
        let too_long = refused(
            400,
            "InvalidRequest",
            "Invalid app.bsky.feed.post record: Record/text must not be longer than 300 graphemes",
        )
        .into_publish("com.atproto.repo.putRecord", Utc::now());
        assert!(
            matches!(too_long, PublishError::Rejected(_)),
            "{too_long:?}"
        );
        assert_eq!(
            too_long.reason().summary(),
            "posting: too long for Bluesky (HTTP 400, InvalidRequest)"
        );
        assert!(matches!(
            refused(503, "", "").into_publish("x", Utc::now()),
            PublishError::Retry {
                maybe_sent: true,
                ..
            }
        ));
        assert!(matches!(
            XrpcError::Auth(None).into_publish("com.atproto.server.getSession", Utc::now()),
            PublishError::Reconnect(_)
        ));
    }

    fn adapter(public_url: &str) -> Bluesky {
        Bluesky::new(
            Egress::new(false),
            Arc::new(super::super::DiscardCredentials),
            Arc::new(crate::clock::SystemClock),
        )
        .with_cards_from(public_url)
    }

    #[test]
    fn only_a_link_to_this_hosts_own_pages_gets_a_card() {
        let b = adapter("https://picket.example");
        let text = "Me elsewhere: https://evil.example/x https://picket.example.evil.test/i/a \
                    http://picket.example/i/b https://picket.example:8443/i/c \
                    Join: https://picket.example/i/abcdefghjkmn";
        assert_eq!(
            b.card_link(text).as_deref(),
            Some("https://picket.example/i/abcdefghjkmn")
        );
        assert_eq!(b.card_link("Only https://evil.example/x here"), None);
        let without = Bluesky::new(
            Egress::new(false),
            Arc::new(super::super::DiscardCredentials),
            Arc::new(crate::clock::SystemClock),
        );
        assert_eq!(without.card_link("https://picket.example/i/abc"), None);
    }

    /// A loopback HTTP server answering by path; counts connections.
    async fn pages(answer: fn(&str) -> String) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let _ = conn.write_all(answer(&path).as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        (format!("http://{addr}"), count)
    }

    #[tokio::test]
    async fn a_card_follows_redirects_only_while_they_stay_on_this_host() {
        use std::sync::atomic::Ordering;
        // Arrange: this host, whose invite link redirects to its campaign page and whose
        // other link redirects to another server.
        let (elsewhere, elsewhere_count) = pages(|_| {
            let body = "<html><head><title>x</title></head>";
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        })
        .await;
        static ELSEWHERE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        ELSEWHERE.set(elsewhere).unwrap();
        let (own, _) = pages(|path| {
            let redirect = |to: &str| {
                format!("HTTP/1.1 303 See Other\r\nlocation: {to}\r\ncontent-length: 0\r\n\r\n")
            };
            match path {
                "/i/abc" => redirect("/c/strike?ref=abc"),
                "/i/out" => redirect(ELSEWHERE.get().unwrap()),
                _ => {
                    let body = "<html><head><title>The strike</title></head></html>";
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                }
            }
        })
        .await;
        let b = adapter(&own);
        let account = AccountRef {
            id: 1,
            handle: "a.test".into(),
            server: "https://pds.invalid".into(),
            credentials: Secret::new("{}"),
            trusted: false,
        };
        let t = Duration::from_secs(5);

        // Act
        let invite = b.card(&account, &format!("{own}/i/abc"), t).await;
        let out = b.card(&account, &format!("{own}/i/out"), t).await;

        // Assert
        assert_eq!(invite.unwrap()["external"]["title"], "The strike");
        assert_eq!(out, None);
        assert_eq!(elsewhere_count.load(Ordering::SeqCst), 0);
    }
}
