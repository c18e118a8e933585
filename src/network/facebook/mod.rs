//! Facebook Pages through the Graph API, for hosts that registered a Meta app with
//! Facebook Login (`[facebook]` in the settings). Only Pages: Facebook has no API to post
//! on a person's own profile (`publish_actions` is gone), so profiles stay tap-to-post.
//!
//! Documents followed:
//! - Facebook Login, code → user token, long-lived user token (`fb_exchange_token`):
//!   https://developers.facebook.com/docs/facebook-login/guides/advanced/manual-flow and
//!   https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived ;
//!   a Page token got with a long-lived user token has no expiry;
//! - the person's Pages and their Page tokens (`GET /me/accounts`, tasks), publishing
//!   (`POST /{page-id}/feed` with `message`), reading the Page's feed:
//!   https://developers.facebook.com/docs/pages-api/getting-started and
//!   https://developers.facebook.com/docs/pages-api/posts ;
//! - errors: [`super::graph`].
//!
//! Scopes: `pages_manage_posts`, `pages_read_engagement`, `pages_show_list`. Every Page on
//! which the person may create content becomes one account. No idempotency key: after an
//! attempt whose answer was lost, the Page's recent posts are read back and a post with
//! exactly this message, made since the slot, is taken as the earlier attempt's.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::guarded::{Egress, Http};
use super::{
    AccountRef, Identity, Network, NetworkKind, OutgoingPost, PublishError, Reason, Receipt, graph,
};
use crate::clock::Clock;
use crate::config::OAuthApp;
use crate::domain::Secret;

pub const API_BASE: &str = "https://graph.facebook.com";
pub const AUTH_BASE: &str = "https://www.facebook.com";
/// The Graph API version picket was written against (Meta keeps each for two years).
pub const VERSION: &str = "v24.0";
pub const SCOPES: &str = "pages_manage_posts,pages_read_engagement,pages_show_list";

const STEP_TIMEOUT: Duration = Duration::from_secs(20);

pub use super::official::App;

/// The host's Meta app with Facebook Login (`[facebook]`), with Meta's hosts where it names none.
pub fn app(s: &OAuthApp) -> App {
    App::from_settings(s, API_BASE, AUTH_BASE)
}

/// `{api}/v24.0/{path}?{query}`.
fn url(app: &App, path: &str, query: &[(&str, &str)]) -> String {
    app.url(VERSION, path, query)
}

/// What is stored, sealed, for one Page.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub page_id: String,
    pub page_name: String,
    /// The Page token (no expiry when got with a long-lived user token).
    pub token: String,
}

impl Credentials {
    pub fn to_secret(&self) -> Secret {
        super::seal(self)
    }

    fn parse(s: &Secret) -> Result<Credentials, PublishError> {
        super::unseal(s, "Facebook Page")
    }
}

/// Facebook Login's dialog.
pub fn authorize_url(app: &App, redirect: &str, state: &str) -> String {
    let mut u = url::Url::parse(&format!("{}/{VERSION}/dialog/oauth", app.auth))
        .expect("the base was checked with the settings");
    u.query_pairs_mut()
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("state", state)
        .append_pair("response_type", "code")
        .append_pair("scope", SCOPES);
    u.into()
}

async fn get_json<T: serde::de::DeserializeOwned>(
    http: &Http,
    url: &str,
    what: &str,
    timeout: Duration,
    now: DateTime<Utc>,
) -> Result<T, PublishError> {
    let resp = http
        .get(url)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| super::transport_error(&e))?;
    if !resp.status().is_success() {
        return Err(graph::error_of(resp, "Facebook", what, now).await);
    }
    resp.json().await.map_err(|e| PublishError::Retry {
        reason: Reason::new("Facebook sent an unreadable answer").with_detail(e.to_string()),
        after: None,
        maybe_sent: false,
    })
}

#[derive(Deserialize)]
struct Token {
    access_token: String,
}

/// The code for a long-lived user token, then the Pages the person may post on, each
/// with its own Page token.
pub async fn pages_for_code(
    http: &Http,
    app: &App,
    code: &str,
    redirect: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Credentials>, PublishError> {
    let short: Token = get_json(
        http,
        &url(
            app,
            "oauth/access_token",
            &[
                ("client_id", &app.client_id),
                ("redirect_uri", redirect),
                ("client_secret", app.client_secret.expose()),
                ("code", code),
            ],
        ),
        "the code",
        STEP_TIMEOUT,
        now,
    )
    .await?;
    let long: Token = get_json(
        http,
        &url(
            app,
            "oauth/access_token",
            &[
                ("grant_type", "fb_exchange_token"),
                ("client_id", &app.client_id),
                ("client_secret", app.client_secret.expose()),
                ("fb_exchange_token", &short.access_token),
            ],
        ),
        "the token",
        STEP_TIMEOUT,
        now,
    )
    .await?;
    #[derive(Deserialize)]
    struct Page {
        id: String,
        name: String,
        access_token: String,
        #[serde(default)]
        tasks: Vec<String>,
    }
    #[derive(Deserialize)]
    struct Pages {
        #[serde(default)]
        data: Vec<Page>,
    }
    let pages: Pages = get_json(
        http,
        &url(
            app,
            "me/accounts",
            &[
                ("fields", "id,name,access_token,tasks"),
                ("access_token", &long.access_token),
            ],
        ),
        "the request",
        STEP_TIMEOUT,
        now,
    )
    .await?;
    let pages: Vec<Credentials> = pages
        .data
        .into_iter()
        .filter(|p| p.tasks.iter().any(|t| t == "CREATE_CONTENT"))
        .map(|p| Credentials {
            page_id: p.id,
            page_name: p.name,
            token: p.access_token,
        })
        .collect();
    if pages.is_empty() {
        return Err(PublishError::rejected(
            "no Facebook Page you may post on was shared with picket (profiles have no API)",
        ));
    }
    Ok(pages)
}

/// The adapter the dispatcher posts through.
pub struct FacebookPages {
    egress: Egress,
    app: App,
    clock: Arc<dyn Clock>,
}

impl FacebookPages {
    pub fn new(egress: Egress, app: App, clock: Arc<dyn Clock>) -> FacebookPages {
        FacebookPages { egress, app, clock }
    }

    fn http(&self) -> &Http {
        self.app.http(&self.egress)
    }

    async fn read_back(
        &self,
        c: &Credentials,
        post: &OutgoingPost,
    ) -> Result<Option<Receipt>, PublishError> {
        #[derive(Deserialize)]
        struct Post {
            id: String,
            #[serde(default)]
            message: Option<String>,
            #[serde(default)]
            created_time: Option<String>,
            #[serde(default)]
            permalink_url: Option<String>,
        }
        #[derive(Deserialize)]
        struct Feed {
            #[serde(default)]
            data: Vec<Post>,
        }
        let feed: Feed = get_json(
            self.http(),
            &url(
                &self.app,
                &format!("{}/feed", c.page_id),
                &[
                    ("fields", "id,message,created_time,permalink_url"),
                    ("limit", "25"),
                    ("access_token", &c.token),
                ],
            ),
            "the request",
            post.timeout,
            self.clock.now(),
        )
        .await?;
        let since = post.scheduled_at - chrono::Duration::minutes(5);
        Ok(feed
            .data
            .into_iter()
            .find(|p| {
                p.message.as_deref().map(str::trim) == Some(post.text.trim())
                    && p.created_time
                        .as_deref()
                        .and_then(|t| {
                            DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%z")
                                .or_else(|_| DateTime::parse_from_rfc3339(t))
                                .ok()
                        })
                        .is_none_or(|at| at.with_timezone(&Utc) >= since)
            })
            .map(|p| Receipt {
                url: p
                    .permalink_url
                    .or_else(|| Some(format!("https://www.facebook.com/{}", p.id))),
                remote_id: p.id,
            }))
    }
}

#[async_trait]
impl Network for FacebookPages {
    fn kind(&self) -> NetworkKind {
        NetworkKind::Facebook
    }

    #[tracing::instrument(skip_all, fields(network = "facebook", account = account.id))]
    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        let m = self.measure(account, &post.text);
        if !m.fits() {
            return Err(PublishError::rejected(format!(
                "too long for Facebook: {}",
                m.describe()
            )));
        }
        let c = Credentials::parse(&account.credentials)?;
        if post.outcome_unknown
            && let Some(found) = self.read_back(&c, post).await?
        {
            tracing::info!(remote_id = %found.remote_id, "an earlier attempt was published: not posting again");
            return Ok(found);
        }
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("message", &post.text)
            .append_pair("published", "true")
            .append_pair("access_token", &c.token)
            .finish();
        let resp = self
            .http()
            .post(&url(&self.app, &format!("{}/feed", c.page_id), &[]))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .timeout(post.timeout)
            .send()
            .await
            .map_err(|e| super::transport_error(&e))?;
        if !resp.status().is_success() {
            return Err(graph::error_of(resp, "Facebook", "the post", self.clock.now()).await);
        }
        #[derive(Deserialize)]
        struct Id {
            id: String,
        }
        let id: Id = resp.json().await.map_err(|e| PublishError::Retry {
            reason: Reason::new("Facebook's answer to the post was unreadable")
                .with_detail(e.to_string()),
            after: None,
            maybe_sent: true,
        })?;
        Ok(Receipt {
            url: Some(format!("https://www.facebook.com/{}", id.id)),
            remote_id: id.id,
        })
    }

    #[tracing::instrument(skip_all, fields(network = "facebook", account = account.id))]
    async fn verify(&self, account: &AccountRef) -> Result<Identity, PublishError> {
        let c = Credentials::parse(&account.credentials)?;
        #[derive(Deserialize)]
        struct Page {
            name: String,
        }
        let page: Page = get_json(
            self.http(),
            &url(
                &self.app,
                &c.page_id,
                &[("fields", "name"), ("access_token", &c.token)],
            ),
            "the request",
            STEP_TIMEOUT,
            self.clock.now(),
        )
        .await?;
        Ok(Identity {
            handle: page.name,
            url: Some(format!("https://www.facebook.com/{}", c.page_id)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_dialog_asks_only_for_posting_on_pages() {
        let app = app(&OAuthApp {
            client_id: "123".into(),
            client_secret: Secret::new("s"),
            api_base: None,
            auth_base: None,
        });
        let u = url::Url::parse(&authorize_url(&app, "https://p.test/cb", "st")).unwrap();
        let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
        assert_eq!(
            u.as_str().split('?').next(),
            Some("https://www.facebook.com/v24.0/dialog/oauth")
        );
        assert_eq!(
            q["scope"],
            "pages_manage_posts,pages_read_engagement,pages_show_list"
        );
        assert!(!app.trusted);
        assert_eq!(
            url(&app, "42/feed", &[]),
            "https://graph.facebook.com/v24.0/42/feed"
        );
    }
}
