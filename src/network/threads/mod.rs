//! The Threads (Meta) adapter, for hosts that registered a Meta app with the Threads use
//! case (`[threads]` in the settings); without it Threads accounts are tap-to-post only.
//!
//! Publishing, as documented at https://developers.facebook.com/docs/threads/posts/ :
//! `POST /{threads-user-id}/threads` with `media_type=TEXT&text=...` makes a container,
//! `POST /{threads-user-id}/threads_publish?creation_id=...` publishes it. Before that the
//! profile's quota (250 posts in a moving 24 hours,
//! https://developers.facebook.com/docs/threads/overview/ "Posts") is read from
//! `GET /{threads-user-id}/threads_publishing_limit`; a spent quota waits instead of
//! trying. Threads has no idempotency key: after an attempt whose outcome is unknown, the
//! account's recent threads (`GET /{threads-user-id}/threads`) are read back and a thread
//! with exactly this text, made since the slot, is taken as the earlier attempt's.
//!
//! Tokens: long-lived (60 days), renewed when at least 24 hours old ([`oauth`]) under a
//! per-account lock, saved sealed through the [`CredentialSink`] before they are used.
//! When a grant has ended, or Threads refuses it, the account needs reconnecting; the
//! expiry is kept in the credentials so the participant's page and `picket account list`
//! can say "reconnect before DATE".

pub mod oauth;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::guarded::{Egress, Http};
use super::{
    AccountRef, CredentialSink, Identity, Network, NetworkKind, OutgoingPost, PublishError, Reason,
    Receipt, graph,
};
use crate::clock::Clock;
use crate::config::OAuthApp;
use crate::domain::Secret;

/// Where Meta serves the Threads API and its token endpoints.
pub const API_BASE: &str = "https://graph.threads.net";
/// Where the authorization window is.
pub const AUTH_BASE: &str = "https://threads.net";
/// The API version picket was written against.
const VERSION: &str = "v1.0";

/// How many recent threads a read-back looks through.
const READ_BACK_LIMIT: &str = "25";

/// A long-lived token can be renewed once it is this old (Meta's rule).
const RENEWABLE_AFTER: chrono::Duration = chrono::Duration::hours(24);

pub use super::official::App;

/// The host's Meta app (`[threads]` in the settings), with Meta's hosts where it names none.
pub fn app(s: &OAuthApp) -> App {
    App::from_settings(s, API_BASE, AUTH_BASE)
}

/// `{api}/v1.0/{path}?{query}`.
fn url(app: &App, path: &str, query: &[(&str, &str)]) -> String {
    app.url(VERSION, path, query)
}

/// What is stored, sealed, for one Threads account.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub token: String,
    pub user_id: String,
    pub username: String,
    /// When the token was issued or last renewed.
    pub refreshed_at: DateTime<Utc>,
    /// When the grant ends unless renewed before.
    pub expires_at: DateTime<Utc>,
}

impl Credentials {
    pub fn to_secret(&self) -> Secret {
        super::seal(self)
    }

    fn parse(s: &Secret) -> Result<Credentials, PublishError> {
        super::unseal(s, "Threads")
    }
}

/// When a Threads account's grant ends, from its stored credentials.
pub fn grant_ends(credentials: &str) -> Option<DateTime<Utc>> {
    serde_json::from_str::<Credentials>(credentials)
        .ok()
        .map(|c| c.expires_at)
}

type Slot = Arc<tokio::sync::Mutex<Option<Credentials>>>;

/// The adapter the dispatcher posts through.
pub struct Threads {
    egress: Egress,
    app: App,
    sink: Arc<dyn CredentialSink>,
    clock: Arc<dyn Clock>,
    /// Per account, the newest credentials, behind an async lock held while renewing.
    live: Mutex<HashMap<i64, Slot>>,
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

#[derive(Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
}

#[derive(Deserialize)]
struct Thread {
    id: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    permalink: Option<String>,
    #[serde(default)]
    timestamp: Option<String>,
}

#[derive(Deserialize)]
struct Limit {
    #[serde(default)]
    quota_usage: u64,
    #[serde(default)]
    config: Option<LimitConfig>,
}

#[derive(Deserialize)]
struct LimitConfig {
    quota_total: u64,
}

/// Threads writes `2023-10-17T05:42:03+0000` (no colon in the offset).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Threads {
    pub fn new(
        egress: Egress,
        app: App,
        sink: Arc<dyn CredentialSink>,
        clock: Arc<dyn Clock>,
    ) -> Threads {
        Threads {
            egress,
            app,
            sink,
            clock,
            live: Mutex::new(HashMap::new()),
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

    /// Credentials fit to use now: the newer of the stored and the remembered ones (a
    /// reconnected account's are newer than any renewal), renewed first when Meta allows
    /// it. A renewal that fails for a passing reason leaves the current token in use.
    async fn credentials(&self, account: &AccountRef) -> Result<Credentials, PublishError> {
        let stored = Credentials::parse(&account.credentials)?;
        let slot = self.slot(account.id);
        let mut live = slot.lock().await;
        let mut c = match live.take() {
            Some(l) if l.refreshed_at >= stored.refreshed_at => l,
            _ => stored,
        };
        let now = self.clock.now();
        if now >= c.expires_at {
            let ended = c.expires_at.format("%Y-%m-%d").to_string();
            *live = Some(c);
            return Err(PublishError::reconnect(format!(
                "picket's access to this Threads account ended on {ended}: reconnect it"
            )));
        }
        if now - c.refreshed_at >= RENEWABLE_AFTER {
            match oauth::refresh(self.http(), &self.app, &c, now).await {
                Ok(next) => {
                    // Saved before use: a restart then starts from the renewed grant.
                    if let Err(e) = self.sink.save(account.id, &next.to_secret()).await {
                        tracing::warn!(account = account.id, error = %e, "could not save the renewed Threads token");
                    }
                    c = next;
                }
                Err(e @ PublishError::Reconnect(_)) => {
                    *live = Some(c);
                    return Err(e);
                }
                Err(e) => {
                    tracing::info!(account = account.id, error = %e, detail = e.reason().detail(), "renewing the Threads token failed; the current one is still valid");
                }
            }
        }
        *live = Some(c.clone());
        Ok(c)
    }

    async fn get<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        what: &str,
        timeout: Duration,
    ) -> Result<T, PublishError> {
        let resp = self
            .http()
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| super::transport_error(&e))?;
        if !resp.status().is_success() {
            return Err(graph::error_of(resp, "Threads", what, self.clock.now()).await);
        }
        resp.json().await.map_err(|e| PublishError::Retry {
            reason: Reason::new("Threads sent an unreadable answer").with_detail(e.to_string()),
            after: None,
            maybe_sent: false,
        })
    }

    /// `POST {api}/v1.0/{path}` with the parameters as a form (the Graph API reads them
    /// from the body as from the query string).
    async fn post(
        &self,
        path: &str,
        params: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Id, PublishError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let resp = self
            .http()
            .post(&url(&self.app, path, &[]))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| super::transport_error(&e))?;
        if !resp.status().is_success() {
            return Err(graph::error_of(resp, "Threads", "the post", self.clock.now()).await);
        }
        resp.json().await.map_err(|e| PublishError::Retry {
            reason: Reason::new("Threads' answer to the post was unreadable")
                .with_detail(e.to_string()),
            after: None,
            // It may have been made: the retry reads back first.
            maybe_sent: true,
        })
    }

    /// A thread of this account with exactly `post.text`, made since shortly before the
    /// slot: the earlier attempt's, if it went through.
    async fn read_back(
        &self,
        c: &Credentials,
        post: &OutgoingPost,
    ) -> Result<Option<Receipt>, PublishError> {
        let url = url(
            &self.app,
            &format!("{}/threads", c.user_id),
            &[
                ("fields", "id,text,permalink,timestamp"),
                ("limit", READ_BACK_LIMIT),
                ("access_token", &c.token),
            ],
        );
        let page: Page<Thread> = self.get(&url, "the request", post.timeout).await?;
        let since = post.scheduled_at - chrono::Duration::minutes(5);
        Ok(page
            .data
            .into_iter()
            .find(|t| {
                t.text.as_deref().map(str::trim) == Some(post.text.trim())
                    && t.timestamp
                        .as_deref()
                        .and_then(parse_time)
                        .is_none_or(|at| at >= since)
            })
            .map(|t| Receipt {
                remote_id: t.id,
                url: t.permalink,
            }))
    }

    /// A spent quota is a wait, not an attempt that Threads would refuse.
    async fn check_quota(&self, c: &Credentials, timeout: Duration) -> Result<(), PublishError> {
        let url = url(
            &self.app,
            &format!("{}/threads_publishing_limit", c.user_id),
            &[("fields", "quota_usage,config"), ("access_token", &c.token)],
        );
        let page: Page<Limit> = self.get(&url, "the request", timeout).await?;
        let Some(limit) = page.data.first() else {
            return Ok(());
        };
        let total = limit.config.as_ref().map_or(250, |cfg| cfg.quota_total);
        if limit.quota_usage >= total {
            return Err(PublishError::Retry {
                reason: Reason::new(format!(
                    "this Threads profile has published its {total} posts of the last 24 hours"
                )),
                // The window moves: an hour frees the posts of an hour a day ago.
                after: Some(Duration::from_secs(3600)),
                maybe_sent: false,
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Network for Threads {
    fn kind(&self) -> NetworkKind {
        NetworkKind::Threads
    }

    #[tracing::instrument(skip_all, fields(network = "threads", account = account.id))]
    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        let m = self.measure(account, &post.text);
        if !m.fits() {
            return Err(PublishError::rejected(format!(
                "too long for Threads: {}",
                m.describe()
            )));
        }
        let c = self.credentials(account).await?;
        if post.outcome_unknown
            && let Some(found) = self.read_back(&c, post).await?
        {
            tracing::info!(remote_id = %found.remote_id, "an earlier attempt was published: not posting again");
            return Ok(found);
        }
        self.check_quota(&c, post.timeout).await?;
        let container = self
            .post(
                &format!("{}/threads", c.user_id),
                &[
                    ("media_type", "TEXT"),
                    ("text", &post.text),
                    ("access_token", &c.token),
                ],
                post.timeout,
            )
            .await
            // A container is not a post: whatever happened to it, nothing was published.
            .map_err(|e| match e {
                PublishError::Retry { reason, after, .. } => PublishError::Retry {
                    reason,
                    after,
                    maybe_sent: false,
                },
                other => other,
            })?;
        let published = self
            .post(
                &format!("{}/threads_publish", c.user_id),
                &[("creation_id", &container.id), ("access_token", &c.token)],
                post.timeout,
            )
            .await?;
        // The link is a nicety: a post without it is still published.
        let url = url(
            &self.app,
            &published.id,
            &[("fields", "permalink"), ("access_token", &c.token)],
        );
        let permalink = match self
            .get::<Thread>(&url, "the request", Duration::from_secs(10))
            .await
        {
            Ok(t) => t.permalink,
            Err(e) => {
                tracing::info!(error = %e, "the published thread's link could not be read");
                None
            }
        };
        Ok(Receipt {
            remote_id: published.id,
            url: permalink,
        })
    }

    #[tracing::instrument(skip_all, fields(network = "threads", account = account.id))]
    async fn verify(&self, account: &AccountRef) -> Result<Identity, PublishError> {
        let c = self.credentials(account).await?;
        let handle = oauth::username(self.http(), &self.app, &c.token, self.clock.now()).await?;
        Ok(Identity {
            url: Some(format!("https://www.threads.net/@{handle}")),
            handle,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_timestamps_without_a_colon_in_the_offset_are_read() {
        assert_eq!(
            parse_time("2023-10-17T05:42:03+0000").unwrap().to_rfc3339(),
            "2023-10-17T05:42:03+00:00"
        );
        assert!(parse_time("2023-10-17T05:42:03Z").is_some());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn the_settings_pick_meta_hosts_unless_the_operator_named_others() {
        let mut s = OAuthApp {
            client_id: "1".into(),
            client_secret: Secret::new("s"),
            api_base: None,
            auth_base: None,
        };
        let real = app(&s);
        assert_eq!(
            (real.api.as_str(), real.auth.as_str()),
            (API_BASE, AUTH_BASE)
        );
        assert!(!real.trusted, "Meta's hosts go through the guarded client");
        s.api_base = Some("http://127.0.0.1:9/".into());
        let fake = app(&s);
        assert_eq!(fake.api, "http://127.0.0.1:9");
        assert_eq!(fake.auth, "http://127.0.0.1:9");
        assert!(fake.trusted);
        assert_eq!(
            url(&fake, "42/threads", &[("fields", "id")]),
            "http://127.0.0.1:9/v1.0/42/threads?fields=id"
        );
    }
}
