//! The X adapter, for hosts that hold X API access (`[x]` in the settings) and only for
//! campaigns whose organiser opted in (`x_api = true`; the dispatcher checks it). X's
//! automation rules forbid posting identical or substantially similar content across
//! accounts and coordinated hashtag posting
//! (https://developer.x.com/en/developer-terms/policy/platform-usage-guidelines), so
//! tap-to-post stays the main route for X; this is for hosts that accept that.
//!
//! Documents followed:
//! - OAuth 2.0 Authorization Code with PKCE, confidential client (Basic auth on the token
//!   calls), refresh tokens with `offline.access`:
//!   https://docs.x.com/fundamentals/authentication/oauth-2-0/authorization-code and
//!   https://docs.x.com/fundamentals/authentication/oauth-2-0/user-access-token ;
//!   access tokens last 2 hours; a refresh token works once and is replaced by the
//!   answer's, so it is renewed under a per-account lock and saved before use;
//! - `POST /2/tweets` → `{"data": {"id", "text"}}`:
//!   https://docs.x.com/x-api/posts/creation-of-a-post ;
//! - `GET /2/users/me`, `GET /2/users/{id}/tweets` (the read-back);
//! - rate limits, `x-rate-limit-limit/-remaining/-reset` (epoch seconds) and 429:
//!   https://docs.x.com/fundamentals/rate-limits ;
//! - weighted length (280, URLs 23): https://docs.x.com/fundamentals/counting-characters ,
//!   measured by `compose::length`.
//!
//! X has no idempotency key: after an attempt whose answer was lost, the account's recent
//! posts are read back (X rewrites links to t.co, so texts are compared with every link
//! taken out). A second post of the same text by the same account is refused by X with
//! 403 "duplicate content", which is a rejection, not a retry.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::guarded::{Egress, Http, Response};
use super::mastodon::Pkce;
use super::{
    AccountRef, CredentialSink, Identity, Network, NetworkKind, OutgoingPost, PublishError, Reason,
    Receipt,
};
use crate::clock::Clock;
use crate::config::OAuthApp;
use crate::domain::Secret;

pub const API_BASE: &str = "https://api.x.com";
pub const AUTH_BASE: &str = "https://x.com";
/// Only what posting needs: post, read posts back, know who the account is, and renew.
pub const SCOPES: &str = "tweet.write tweet.read users.read offline.access";

/// An access token is renewed when it has less than this left.
const RENEW_MARGIN: chrono::Duration = chrono::Duration::minutes(5);
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

pub use super::official::App;

/// The host's X app (`[x]`), with X's hosts where it names none.
pub fn app(s: &OAuthApp) -> App {
    App::from_settings(s, API_BASE, AUTH_BASE)
}

/// `Authorization: Basic base64(client_id:client_secret)` for the token calls.
fn basic(app: &App) -> String {
    use base64::Engine;
    let pair = format!("{}:{}", app.client_id, app.client_secret.expose());
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// What is stored, sealed, for one X account.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub access_token: String,
    /// Single use: replaced by every renewal.
    pub refresh_token: String,
    pub expires_at: DateTime<Utc>,
    /// When this pair was issued (the newest pair wins).
    pub issued_at: DateTime<Utc>,
    pub user_id: String,
    pub username: String,
}

impl Credentials {
    pub fn to_secret(&self) -> Secret {
        super::seal(self)
    }

    fn parse(s: &Secret) -> Result<Credentials, PublishError> {
        super::unseal(s, "X")
    }
}

/// X's authorization page, with the PKCE challenge.
pub fn authorize_url(app: &App, redirect: &str, state: &str, pkce: &Pkce) -> String {
    let mut u = url::Url::parse(&format!("{}/i/oauth2/authorize", app.auth))
        .expect("the base was checked with the settings");
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", SCOPES)
        .append_pair("state", state)
        .append_pair("code_challenge", &pkce.challenge)
        .append_pair("code_challenge_method", "S256");
    u.into()
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
    expires_in: i64,
}

async fn token_call(
    http: &Http,
    app: &App,
    form: &[(&str, &str)],
) -> Result<TokenAnswer, PublishError> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .append_pair("client_id", &app.client_id)
        .finish();
    let resp = http
        .post(&format!("{}/2/oauth2/token", app.api))
        .header("authorization", &basic(app))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .timeout(STEP_TIMEOUT)
        .send()
        .await
        .map_err(|e| super::transport_error(&e))?;
    let status = resp.status();
    if !status.is_success() {
        // `invalid_grant` / `invalid_request` on a used or revoked token: sign in again.
        let text = resp.text().await.unwrap_or_default();
        let reason = Reason::new(format!(
            "X refused to issue a token (HTTP {})",
            status.as_u16()
        ))
        .with_detail(text);
        return Err(
            if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
                PublishError::Retry {
                    reason,
                    after: None,
                    maybe_sent: false,
                }
            } else {
                PublishError::Reconnect(reason)
            },
        );
    }
    resp.json().await.map_err(unreadable)
}

/// The code (with the PKCE verifier) for a token pair, then who the account is.
pub async fn exchange_code(
    http: &Http,
    app: &App,
    code: &str,
    redirect: &str,
    verifier: &str,
    now: DateTime<Utc>,
) -> Result<Credentials, PublishError> {
    let t = token_call(
        http,
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ],
    )
    .await?;
    let refresh_token = t.refresh_token.ok_or_else(|| {
        PublishError::reconnect("X gave no refresh token (offline.access was not granted)")
    })?;
    let me = users_me(http, app, &t.access_token, now).await?;
    Ok(Credentials {
        access_token: t.access_token,
        refresh_token,
        expires_at: now + chrono::Duration::seconds(t.expires_in),
        issued_at: now,
        user_id: me.id,
        username: me.username,
    })
}

#[derive(Deserialize)]
struct Me {
    id: String,
    username: String,
}

async fn users_me(
    http: &Http,
    app: &App,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Me, PublishError> {
    #[derive(Deserialize)]
    struct Data {
        data: Me,
    }
    let resp = http
        .get(&format!("{}/2/users/me", app.api))
        .bearer_auth(token)
        .timeout(STEP_TIMEOUT)
        .send()
        .await
        .map_err(|e| super::transport_error(&e))?;
    if !resp.status().is_success() {
        return Err(error_of(resp, "the request", now).await);
    }
    Ok(resp.json::<Data>().await.map_err(unreadable)?.data)
}

fn unreadable(e: super::HttpError) -> PublishError {
    PublishError::Retry {
        reason: Reason::new("X sent an unreadable answer").with_detail(e.to_string()),
        after: None,
        maybe_sent: false,
    }
}

/// When the rate limit of the answer's endpoint resets (`x-rate-limit-reset`, epoch s).
fn reset_at(headers: &reqwest::header::HeaderMap) -> Option<DateTime<Utc>> {
    let secs: i64 = headers
        .get("x-rate-limit-reset")?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    DateTime::from_timestamp(secs, 0)
}

/// What an X error answer (`{"title", "detail", "status", "type"}`) means.
async fn error_of(resp: Response, what: &str, now: DateTime<Utc>) -> PublishError {
    let status = resp.status();
    let reset = reset_at(resp.headers());
    let asked = super::retry_after(resp.headers(), now);
    #[derive(Deserialize, Default)]
    struct Body {
        #[serde(default)]
        title: Option<String>,
        #[serde(default)]
        detail: Option<String>,
    }
    let body: Body =
        serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or_default();
    let detail = body.detail.or(body.title).unwrap_or_default();
    let n = status.as_u16();
    match status {
        StatusCode::UNAUTHORIZED => PublishError::Reconnect(
            Reason::new(format!(
                "X no longer accepts picket's access for this account (HTTP {n}): reconnect it"
            ))
            .with_detail(detail),
        ),
        StatusCode::FORBIDDEN if detail.to_lowercase().contains("duplicate") => {
            PublishError::Rejected(
                Reason::new(format!(
                    "X refused it as a duplicate of an earlier post (HTTP {n})"
                ))
                .with_detail(detail),
            )
        }
        StatusCode::TOO_MANY_REQUESTS => PublishError::Retry {
            reason: Reason::new(format!("rate limited by X (HTTP {n})")).with_detail(detail),
            after: reset
                .and_then(|r| (r - now).to_std().ok())
                .or(asked)
                .or(Some(Duration::from_secs(15 * 60))),
            maybe_sent: false,
        },
        s if s.is_server_error() => PublishError::Retry {
            reason: Reason::new(format!("X failed to take {what} (HTTP {n})")).with_detail(detail),
            after: asked,
            maybe_sent: false,
        },
        _ => PublishError::Rejected(
            Reason::new(format!("X refused {what} (HTTP {n})")).with_detail(detail),
        ),
    }
}

/// `text` with every link taken out, for comparing with what X shows (t.co links).
pub fn without_links(text: &str) -> String {
    text.split_whitespace()
        .filter(|w| !(w.starts_with("http://") || w.starts_with("https://")))
        .collect::<Vec<_>>()
        .join(" ")
}

struct Live {
    creds: Credentials,
    /// The posting limit is spent until then (`x-rate-limit-remaining: 0`).
    rate_reset: Option<DateTime<Utc>>,
}

type Slot = Arc<tokio::sync::Mutex<Option<Live>>>;

/// The adapter the dispatcher posts through.
pub struct X {
    egress: Egress,
    app: App,
    sink: Arc<dyn CredentialSink>,
    clock: Arc<dyn Clock>,
    live: Mutex<HashMap<i64, Slot>>,
    /// Which account sent which text in which slot: X forbids identical posts across
    /// accounts, so a second account's identical text in the same slot is refused here.
    sent: Mutex<HashMap<(String, String), i64>>,
}

impl X {
    pub fn new(
        egress: Egress,
        app: App,
        sink: Arc<dyn CredentialSink>,
        clock: Arc<dyn Clock>,
    ) -> X {
        X {
            egress,
            app,
            sink,
            clock,
            live: Mutex::new(HashMap::new()),
            sent: Mutex::new(HashMap::new()),
        }
    }

    fn http(&self) -> &Http {
        self.app.http(&self.egress)
    }

    fn slot(&self, account_id: i64) -> Slot {
        crate::sync::lock(&self.live)
            .entry(account_id)
            .or_default()
            .clone()
    }

    /// Renew the pair (single use) and save the new one before anything uses it.
    async fn renew(&self, account_id: i64, c: &Credentials) -> Result<Credentials, PublishError> {
        let now = self.clock.now();
        let t = token_call(
            self.http(),
            &self.app,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &c.refresh_token),
            ],
        )
        .await?;
        let next = Credentials {
            access_token: t.access_token,
            refresh_token: t.refresh_token.unwrap_or_else(|| c.refresh_token.clone()),
            expires_at: now + chrono::Duration::seconds(t.expires_in),
            issued_at: now,
            ..c.clone()
        };
        if let Err(e) = self.sink.save(account_id, &next.to_secret()).await {
            // The old refresh token is spent: after a restart this account must reconnect.
            tracing::error!(account = account_id, error = %e, "could not save the renewed X tokens");
        }
        Ok(next)
    }

    /// Credentials fit to use now (renewed under the account's lock when near expiry),
    /// unless the account's posting limit is spent.
    async fn session(&self, account: &AccountRef) -> Result<Credentials, PublishError> {
        let stored = Credentials::parse(&account.credentials)?;
        let slot = self.slot(account.id);
        let mut live = slot.lock().await;
        let l = match live.take() {
            Some(l) if l.creds.issued_at >= stored.issued_at => l,
            _ => Live {
                creds: stored,
                rate_reset: None,
            },
        };
        let now = self.clock.now();
        if let Some(reset) = l.rate_reset.filter(|r| *r > now) {
            *live = Some(l);
            return Err(PublishError::Retry {
                reason: Reason::new("X's posting limit for this account is spent until its reset"),
                after: (reset - now).to_std().ok(),
                maybe_sent: false,
            });
        }
        let mut l = l;
        if l.creds.expires_at - now < RENEW_MARGIN {
            match self.renew(account.id, &l.creds).await {
                Ok(next) => l.creds = next,
                Err(e) => {
                    *live = Some(l);
                    return Err(e);
                }
            }
        }
        let c = l.creds.clone();
        *live = Some(l);
        Ok(c)
    }

    /// After X refused `used` as unauthorized: renew once, unless another request did.
    async fn renew_after_refusal(
        &self,
        account: &AccountRef,
        used: &Credentials,
    ) -> Result<Credentials, PublishError> {
        let slot = self.slot(account.id);
        let mut live = slot.lock().await;
        let current = live.as_ref().map(|l| l.creds.clone());
        match current {
            Some(c) if c.access_token != used.access_token => Ok(c),
            _ => {
                let next = self.renew(account.id, used).await?;
                *live = Some(Live {
                    creds: next.clone(),
                    rate_reset: None,
                });
                Ok(next)
            }
        }
    }

    async fn remember_limit(&self, account_id: i64, headers: &reqwest::header::HeaderMap) {
        let spent = headers
            .get("x-rate-limit-remaining")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0");
        if spent && let Some(reset) = reset_at(headers) {
            let slot = self.slot(account_id);
            if let Some(l) = slot.lock().await.as_mut() {
                l.rate_reset = Some(reset);
            }
        }
    }

    async fn read_back(
        &self,
        c: &Credentials,
        post: &OutgoingPost,
    ) -> Result<Option<Receipt>, PublishError> {
        #[derive(Deserialize)]
        struct Tweet {
            id: String,
            text: String,
            #[serde(default)]
            created_at: Option<DateTime<Utc>>,
        }
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            data: Vec<Tweet>,
        }
        let resp = self
            .http()
            .get(&format!(
                "{}/2/users/{}/tweets?max_results=10&tweet.fields=created_at",
                self.app.api, c.user_id
            ))
            .bearer_auth(&c.access_token)
            .timeout(post.timeout)
            .send()
            .await
            .map_err(|e| super::transport_error(&e))?;
        if !resp.status().is_success() {
            return Err(error_of(resp, "the request", self.clock.now()).await);
        }
        let page: Page = resp.json().await.map_err(unreadable)?;
        let want = without_links(&post.text);
        let since = post.scheduled_at - chrono::Duration::minutes(5);
        Ok(page
            .data
            .into_iter()
            .find(|t| without_links(&t.text) == want && t.created_at.is_none_or(|at| at >= since))
            .map(|t| Receipt {
                url: Some(format!("https://x.com/{}/status/{}", c.username, t.id)),
                remote_id: t.id,
            }))
    }

    async fn create(&self, c: &Credentials, post: &OutgoingPost) -> Result<Response, PublishError> {
        self.http()
            .post(&format!("{}/2/tweets", self.app.api))
            .bearer_auth(&c.access_token)
            .json(&serde_json::json!({ "text": post.text }))
            .timeout(post.timeout)
            .send()
            .await
            .map_err(|e| super::transport_error(&e))
    }
}

#[async_trait]
impl Network for X {
    fn kind(&self) -> NetworkKind {
        NetworkKind::X
    }

    #[tracing::instrument(skip_all, fields(network = "x", account = account.id))]
    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        let m = self.measure(account, &post.text);
        if !m.fits() {
            return Err(PublishError::rejected(format!(
                "too long for X: {}",
                m.describe()
            )));
        }
        {
            let mut sent = crate::sync::lock(&self.sent);
            let key = (post.slot_key.clone(), post.text.clone());
            match sent.get(&key) {
                Some(&other) if other != account.id => {
                    return Err(PublishError::rejected(
                        "identical to another account's post in this slot: X forbids identical \
                         posts across accounts (give the template more variants)",
                    ));
                }
                _ => {
                    // Slots are few per campaign; a long-running process starts afresh
                    // rather than growing without end.
                    if sent.len() > 100_000 {
                        sent.clear();
                    }
                    sent.insert(key, account.id);
                }
            }
        }
        let mut c = self.session(account).await?;
        if post.outcome_unknown
            && let Some(found) = self.read_back(&c, post).await?
        {
            tracing::info!(remote_id = %found.remote_id, "an earlier attempt was published: not posting again");
            return Ok(found);
        }
        let mut resp = self.create(&c, post).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            // Refused before anything was made: renew once and try again.
            c = self.renew_after_refusal(account, &c).await?;
            resp = self.create(&c, post).await?;
        }
        self.remember_limit(account.id, resp.headers()).await;
        if !resp.status().is_success() {
            return Err(error_of(resp, "the post", self.clock.now()).await);
        }
        #[derive(Deserialize)]
        struct Created {
            data: CreatedData,
        }
        #[derive(Deserialize)]
        struct CreatedData {
            id: String,
        }
        let created: Created = resp.json().await.map_err(|e| PublishError::Retry {
            reason: Reason::new("X's answer to the post was unreadable").with_detail(e.to_string()),
            after: None,
            maybe_sent: true,
        })?;
        Ok(Receipt {
            url: Some(format!(
                "https://x.com/{}/status/{}",
                c.username, created.data.id
            )),
            remote_id: created.data.id,
        })
    }

    #[tracing::instrument(skip_all, fields(network = "x", account = account.id))]
    async fn verify(&self, account: &AccountRef) -> Result<Identity, PublishError> {
        let c = self.session(account).await?;
        let me = users_me(self.http(), &self.app, &c.access_token, self.clock.now()).await?;
        Ok(Identity {
            url: Some(format!("https://x.com/{}", me.username)),
            handle: me.username,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_page_asks_only_for_posting_with_a_pkce_challenge() {
        let app = app(&OAuthApp {
            client_id: "cid".into(),
            client_secret: Secret::new("s"),
            api_base: None,
            auth_base: None,
        });
        let pkce = Pkce::new();
        let u = url::Url::parse(&authorize_url(&app, "https://p.test/cb", "st", &pkce)).unwrap();
        let q: HashMap<_, _> = u.query_pairs().into_owned().collect();
        assert_eq!(
            u.as_str().split('?').next(),
            Some("https://x.com/i/oauth2/authorize")
        );
        assert_eq!(
            q["scope"],
            "tweet.write tweet.read users.read offline.access"
        );
        assert_eq!(q["code_challenge"], pkce.challenge);
        assert_eq!(q["code_challenge_method"], "S256");
        assert!(!app.trusted);
        assert_eq!(basic(&app), "Basic Y2lkOnM=");
    }

    #[test]
    fn links_are_left_out_when_comparing_with_what_x_shows() {
        assert_eq!(
            without_links("On #Strike today: https://picket.example/i/abc see you"),
            without_links("On #Strike today: https://t.co/xYz123 see you")
        );
        assert_ne!(without_links("a b"), without_links("a c"));
    }
}
