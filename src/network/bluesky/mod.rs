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
//!            ─> link card of the first link (best effort, short timeout)
//!            ─> putRecord with a record key derived from the idempotency key and
//!               createdAt = the slot: a retry rewrites the identical record (a no-op)
//! ```
//!
//! Not here: OAuth (app passwords only), engagement without
//! an AppView (a PDS alone counts nothing: [`Bluesky::with_appview`]).

mod card;
pub(crate) mod facets;
mod identity;
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
use serde_json::{Value, json};
use unicode_segmentation::UnicodeSegmentation;

use super::{
    AccountRef, CredentialSink, Engagement, Identity, Network, NetworkKind, OutgoingPost,
    PublishError, Receipt,
};
use crate::config::Secret;

const COLLECTION: &str = "app.bsky.feed.post";
const MAX_GRAPHEMES: usize = 300;
const MAX_BYTES: usize = 3000;
/// Refresh when the access token has less than this left, so it cannot expire mid-post.
const REFRESH_MARGIN_SECS: i64 = 5 * 60;
/// How long the link card's page (and thumbnail) may take: the card is a nicety.
const CARD_TIMEOUT: Duration = Duration::from_secs(3);
const MAX_THUMB_BYTES: usize = 1_000_000;

/// What picket stores (sealed) for a Bluesky account.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub did: String,
    pub handle: String,
    pub pds: String,
    pub app_password: String,
    pub access_jwt: String,
    pub refresh_jwt: String,
}

impl Credentials {
    pub fn to_secret(&self) -> Secret {
        Secret::new(serde_json::to_string(self).expect("plain strings serialize"))
    }

    fn parse(s: &Secret) -> Result<Credentials, PublishError> {
        serde_json::from_str(s.expose()).map_err(|_| {
            PublishError::Reconnect("stored Bluesky credentials are unreadable".into())
        })
    }

    fn access_expires(&self) -> Option<i64> {
        jwt_exp(&self.access_jwt)
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
    client: reqwest::Client,
    sink: Arc<dyn CredentialSink>,
    sessions: Mutex<HashMap<i64, Slot>>,
    appview: Option<String>,
}

impl Bluesky {
    pub fn new(client: reqwest::Client, sink: Arc<dyn CredentialSink>) -> Self {
        Bluesky {
            client,
            sink,
            sessions: Mutex::new(HashMap::new()),
            appview: None,
        }
    }

    /// Read engagement from this AppView (e.g. `https://public.api.bsky.app`); without
    /// one, [`Network::engagement`] returns `Ok(None)`.
    pub fn with_appview(mut self, url: impl Into<String>) -> Self {
        self.appview = Some(url.into().trim_end_matches('/').to_string());
        self
    }

    fn slot(&self, account_id: i64) -> Slot {
        self.sessions
            .lock()
            .expect("session map lock")
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
            .is_none_or(|l| l.creds.app_password != stored.app_password)
        {
            *live = Some(Live {
                creds: stored,
                rate_reset: None,
            });
        }
        let l = live.as_mut().expect("just set");
        if let Some(reset) = l.rate_reset {
            let now = Utc::now();
            if reset > now {
                return Err(PublishError::Retry {
                    reason: "Bluesky rate limit: no requests left until the reset".into(),
                    after: (reset - now).to_std().ok(),
                    maybe_sent: false,
                });
            }
            l.rate_reset = None;
        }
        let near_expiry = l
            .creds
            .access_expires()
            .is_some_and(|exp| exp - Utc::now().timestamp() < REFRESH_MARGIN_SECS);
        if near_expiry {
            l.creds = self.renew(account.id, &l.creds).await?;
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
                l.creds = self.renew(account.id, &l.creds).await?;
                Ok(l.creds.clone())
            }
            None => {
                let creds = self.renew(account.id, used).await?;
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
    async fn renew(&self, account_id: i64, c: &Credentials) -> Result<Credentials, PublishError> {
        let refreshed = self
            .xrpc_post(
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
                    &self.client,
                    &c.pds,
                    &c.did,
                    &c.app_password,
                    Duration::from_secs(20),
                )
                .await
                .map_err(|e| session_failure(e, "signing in again"))?
            }
            Err(e) => return Err(session_failure(e, "refreshing the session")),
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
                    .map_err(|e| e.into_publish(method))?;
                Ok((creds, v))
            }
            other => other
                .map(|v| (creds, v))
                .map_err(|e| e.into_publish(method)),
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
            "com.atproto.server.getSession" | "com.atproto.identity.resolveHandle"
        );
        let mut result = if is_query {
            let pairs: Vec<(String, String)> = match body {
                Some(Value::Object(q)) => q
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                _ => Vec::new(),
            };
            let req = self
                .client
                .get(with_query(&xrpc_url(&creds.pds, method), &pairs))
                .bearer_auth(&creds.access_jwt)
                .timeout(timeout);
            finish(req.send().await).await
        } else {
            self.xrpc_post(&creds.pds, method, Some(&creds.access_jwt), body, timeout)
                .await
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
        pds: &str,
        method: &str,
        token: Option<&str>,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, XrpcError> {
        let mut req = self.client.post(xrpc_url(pds, method)).timeout(timeout);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        finish(req.send().await).await
    }

    /// Mentions become facets only when the handle resolves to a DID; others stay text.
    async fn facets(&self, pds: &str, text: &str, timeout: Duration) -> Vec<Value> {
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
                    match identity::resolve_handle_via(&self.client, pds, &handle, timeout).await {
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

    /// The external embed for `uri`, or `None` if the page cannot be read in time. The
    /// thumbnail is uploaded as a blob when the page names one that can be fetched.
    async fn card(&self, account: &AccountRef, uri: &str, timeout: Duration) -> Option<Value> {
        let base = url::Url::parse(uri).ok()?;
        let resp = self.client.get(uri).timeout(timeout).send().await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let html = resp.text().await.ok()?;
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
        let resp = self.client.get(image).timeout(timeout).send().await.ok()?;
        let mime = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)?
            .to_str()
            .ok()?
            .split(';')
            .next()?
            .trim()
            .to_string();
        if !resp.status().is_success() || !mime.starts_with("image/") {
            return None;
        }
        let bytes = resp.bytes().await.ok()?;
        if bytes.len() > MAX_THUMB_BYTES {
            return None;
        }
        let creds = self.session(account).await.ok()?;
        let resp = self
            .client
            .post(xrpc_url(&creds.pds, "com.atproto.repo.uploadBlob"))
            .bearer_auth(&creds.access_jwt)
            .header(reqwest::header::CONTENT_TYPE, mime)
            .timeout(timeout)
            .body(bytes)
            .send()
            .await
            .ok()?;
        let v: Value = resp.error_for_status().ok()?.json().await.ok()?;
        Some(v.get("blob")?.clone())
    }
}

/// A session that cannot be renewed for a reason other than a passing fault is the
/// account's problem, not the post's: the participant reconnects, the post waits.
fn session_failure(e: XrpcError, doing: &str) -> PublishError {
    match e.into_publish(doing) {
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
        reason: reason.to_string(),
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
    fn into_publish(self, doing: &str) -> PublishError {
        match self {
            XrpcError::Auth(_) => PublishError::Reconnect(format!(
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
                let reason = format!("{doing}: {status} {error}: {message}");
                if status == StatusCode::TOO_MANY_REQUESTS || error == "RateLimitExceeded" {
                    let after = rate_reset
                        .and_then(|r| (r - Utc::now()).to_std().ok())
                        .or(retry_after);
                    PublishError::Retry {
                        reason,
                        after,
                        maybe_sent: false,
                    }
                } else if status.is_server_error() {
                    PublishError::Retry {
                        reason,
                        after: retry_after,
                        maybe_sent: true,
                    }
                } else if matches!(
                    error.as_str(),
                    "AccountTakedown" | "AccountDeactivated" | "AuthFactorTokenRequired"
                ) || status == StatusCode::FORBIDDEN
                {
                    PublishError::Reconnect(reason)
                } else {
                    PublishError::Rejected(reason)
                }
            }
        }
    }
}

/// Turn a response into its JSON body or an [`XrpcError`].
async fn finish(sent: Result<reqwest::Response, reqwest::Error>) -> Result<Value, XrpcError> {
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
        retry_after: super::retry_after(&headers, Utc::now()),
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
    client: &reqwest::Client,
    pds: &str,
    identifier: &str,
    password: &str,
    timeout: Duration,
) -> Result<Value, XrpcError> {
    let sent = client
        .post(xrpc_url(pds, "com.atproto.server.createSession"))
        .timeout(timeout)
        .json(&json!({"identifier": identifier, "password": password}))
        .send()
        .await;
    finish(sent).await
}

/// Sign in once for `picket account add bluesky`: resolve the handle (or ask `service`),
/// create the session, and return what to store.
pub async fn connect(
    client: &reqwest::Client,
    handle: &str,
    app_password: &str,
    service: Option<&str>,
) -> anyhow::Result<Credentials> {
    let timeout = Duration::from_secs(20);
    let handle = handle.trim_start_matches('@').to_ascii_lowercase();
    let (did, pds) = match service {
        Some(service) => {
            let pds = service.trim_end_matches('/').to_string();
            let did = identity::resolve_handle_via(client, &pds, &handle, timeout)
                .await
                .map_err(|e| anyhow::anyhow!("resolving {handle} on {pds}: {e}"))?;
            (did, pds)
        }
        None => {
            let r = identity::resolve(
                client,
                &handle,
                identity::PLC_DIRECTORY,
                &identity::Dns::System,
                timeout,
            )
            .await?;
            (r.did, r.pds)
        }
    };
    let body = create_session(client, &pds, &did, app_password, timeout)
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

    #[tracing::instrument(skip_all, fields(network = "bluesky", account = account.id))]
    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        let graphemes = post.text.graphemes(true).count();
        if graphemes > MAX_GRAPHEMES || post.text.len() > MAX_BYTES {
            return Err(PublishError::Rejected(format!(
                "{graphemes}/{MAX_GRAPHEMES} graphemes, {}/{MAX_BYTES} bytes: too long for Bluesky",
                post.text.len()
            )));
        }
        let creds = self.session(account).await?;
        let side_timeout = CARD_TIMEOUT.min(post.timeout / 3);
        let facets = self.facets(&creds.pds, &post.text, side_timeout).await;
        let first_link = facets::detect(&post.text)
            .into_iter()
            .find_map(|s| match s.feature {
                facets::Feature::Link { uri } => Some(uri),
                _ => None,
            });
        let mut record = json!({
            "$type": COLLECTION,
            "text": post.text,
            "createdAt": post.scheduled_at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        });
        if !facets.is_empty() {
            record["facets"] = Value::Array(facets);
        }
        if let Some(uri) = first_link
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

    async fn delete(&self, account: &AccountRef, remote_id: &str) -> Result<(), PublishError> {
        let rkey = rkey_of(remote_id)
            .ok_or_else(|| PublishError::Rejected(format!("not a Bluesky post: {remote_id}")))?;
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

    /// Counts come from an AppView (`app.bsky.feed.getPosts`); a PDS alone has none.
    async fn engagement(
        &self,
        _account: &AccountRef,
        remote_id: &str,
    ) -> Result<Option<Engagement>, PublishError> {
        let Some(appview) = &self.appview else {
            return Ok(None);
        };
        let sent = self
            .client
            .get(with_query(
                &xrpc_url(appview, "app.bsky.feed.getPosts"),
                &[("uris".into(), remote_id.into())],
            ))
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        let v = finish(sent)
            .await
            .map_err(|e| e.into_publish("reading engagement"))?;
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
        };
        let shown = format!("{:?}", c.to_secret());
        assert!(
            !shown.contains("app-pass") && !shown.contains("access-"),
            "{shown}"
        );
    }
}
