//! The LinkedIn adapter, for hosts that registered a LinkedIn app (`[linkedin]` in the
//! settings) with the products "Share on LinkedIn" and "Sign In with LinkedIn using
//! OpenID Connect"; without it LinkedIn accounts are tap-to-post only.
//!
//! Documents followed:
//! - 3-legged OAuth: https://learn.microsoft.com/en-us/linkedin/shared/authentication/authorization-code-flow
//!   (`/oauth/v2/authorization`, `/oauth/v2/accessToken`; tokens last 60 days and, outside
//!   LinkedIn's approved partners, cannot be refreshed:
//!   https://learn.microsoft.com/en-us/linkedin/shared/authentication/programmatic-refresh-tokens);
//! - who the member is: `GET /v2/userinfo` → `sub`,
//!   https://learn.microsoft.com/en-us/linkedin/consumer/integrations/self-serve/sign-in-with-linkedin-v2 ;
//! - posting: `POST /rest/posts` with `LinkedIn-Version` and `X-Restli-Protocol-Version:
//!   2.0.0`, the new post's URN in `x-restli-id`,
//!   https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/posts-api
//!   and https://learn.microsoft.com/en-us/linkedin/consumer/integrations/self-serve/share-on-linkedin ;
//!   the commentary in little text format ([`little`]);
//! - errors: https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/error-handling ,
//!   rate limits (daily, reset at midnight UTC):
//!   https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/rate-limits .
//!
//! Never twice: LinkedIn has no idempotency key, and reading a member's own posts back
//! needs `r_member_social`, which LinkedIn restricts to approved partners. So after an
//! attempt whose answer was lost, picket does not post again: it records that it cannot
//! tell, and the participant can check their profile.

pub mod little;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};

use super::guarded::{Egress, Http, Response};
use super::{
    AccountRef, Identity, Network, NetworkKind, OutgoingPost, PublishError, Reason, Receipt,
};
use crate::clock::Clock;
use crate::config::OAuthApp;
use crate::domain::Secret;

pub const API_BASE: &str = "https://api.linkedin.com";
pub const AUTH_BASE: &str = "https://www.linkedin.com";
/// The Posts API version picket was written against (`YYYYMM`; LinkedIn keeps each for
/// at least a year).
pub const VERSION: &str = "202605";
/// What picket asks for: posting, and the member's id (`sub`) and name.
pub const SCOPES: &str = "openid profile w_member_social";

const STEP_TIMEOUT: Duration = Duration::from_secs(20);

pub use super::official::App;

/// The host's LinkedIn app (`[linkedin]`), with LinkedIn's hosts where it names none.
pub fn app(s: &OAuthApp) -> App {
    App::from_settings(s, API_BASE, AUTH_BASE)
}

/// What is stored, sealed, for one LinkedIn member.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub token: String,
    /// The member's id: posts are authored by `urn:li:person:{sub}`.
    pub sub: String,
    pub name: String,
    pub expires_at: DateTime<Utc>,
}

impl Credentials {
    pub fn to_secret(&self) -> Secret {
        super::seal(self)
    }

    fn parse(s: &Secret) -> Result<Credentials, PublishError> {
        super::unseal(s, "LinkedIn")
    }
}

/// When a LinkedIn account's grant ends, from its stored credentials.
pub fn grant_ends(credentials: &str) -> Option<DateTime<Utc>> {
    serde_json::from_str::<Credentials>(credentials)
        .ok()
        .map(|c| c.expires_at)
}

/// The page where the member approves picket; it sends them to `redirect` with a code.
pub fn authorize_url(app: &App, redirect: &str, state: &str) -> String {
    let mut u = url::Url::parse(&format!("{}/oauth/v2/authorization", app.auth))
        .expect("the base was checked with the settings");
    u.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("state", state)
        .append_pair("scope", SCOPES);
    u.into()
}

/// The code for a 60-day token, then who the member is.
pub async fn exchange_code(
    http: &Http,
    app: &App,
    code: &str,
    redirect: &str,
    now: DateTime<Utc>,
) -> Result<Credentials, PublishError> {
    let token_url = format!("{}/oauth/v2/accessToken", app.auth);
    let resp =
        super::official::post_code(http, &token_url, app, code, redirect, STEP_TIMEOUT).await?;
    if !resp.status().is_success() {
        return Err(error_of(resp, "the code", now).await);
    }
    #[derive(Deserialize)]
    struct Token {
        access_token: String,
        expires_in: i64,
        #[serde(default)]
        scope: String,
    }
    let token: Token = resp.json().await.map_err(unreadable)?;
    if !token.scope.is_empty()
        && !token
            .scope
            .split([' ', ','])
            .any(|s| s == "w_member_social")
    {
        return Err(PublishError::reconnect(
            "LinkedIn did not allow picket to post (w_member_social was not granted)",
        ));
    }
    let me = userinfo(http, app, &token.access_token, now).await?;
    Ok(Credentials {
        token: token.access_token,
        sub: me.sub,
        name: me.name.unwrap_or_default(),
        expires_at: now + chrono::Duration::seconds(token.expires_in),
    })
}

#[derive(Deserialize)]
struct UserInfo {
    sub: String,
    #[serde(default)]
    name: Option<String>,
}

async fn userinfo(
    http: &Http,
    app: &App,
    token: &str,
    now: DateTime<Utc>,
) -> Result<UserInfo, PublishError> {
    let resp = http
        .get(&format!("{}/v2/userinfo", app.api))
        .bearer_auth(token)
        .timeout(STEP_TIMEOUT)
        .send()
        .await
        .map_err(|e| super::transport_error(&e))?;
    if !resp.status().is_success() {
        return Err(error_of(resp, "the request", now).await);
    }
    resp.json().await.map_err(unreadable)
}

fn unreadable(e: super::HttpError) -> PublishError {
    PublishError::Retry {
        reason: Reason::new("LinkedIn sent an unreadable answer").with_detail(e.to_string()),
        after: None,
        maybe_sent: false,
    }
}

/// What a LinkedIn error answer (`{"status", "serviceErrorCode", "code", "message"}`)
/// means for the dispatcher.
async fn error_of(resp: Response, what: &str, now: DateTime<Utc>) -> PublishError {
    let status = resp.status();
    let asked = super::retry_after(resp.headers(), now);
    #[derive(Deserialize, Default)]
    struct Body {
        #[serde(default)]
        code: Option<String>,
        #[serde(default)]
        message: Option<String>,
    }
    let body: Body =
        serde_json::from_str(&resp.text().await.unwrap_or_default()).unwrap_or_default();
    let code = body
        .code
        .as_deref()
        .map(|c| format!(", {c}"))
        .unwrap_or_default();
    let detail = body.message.unwrap_or_default();
    let n = status.as_u16();
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PublishError::Reconnect(
            Reason::new(format!(
                "LinkedIn no longer accepts picket's access for this account (HTTP {n}{code}): reconnect it"
            ))
            .with_detail(detail),
        ),
        StatusCode::TOO_MANY_REQUESTS => PublishError::Retry {
            reason: Reason::new(format!("rate limited by LinkedIn (HTTP {n}{code})"))
                .with_detail(detail),
            // LinkedIn's quotas are daily and reset at midnight UTC.
            after: Some(asked.unwrap_or_else(|| until_midnight(now))),
            maybe_sent: false,
        },
        s if s.is_server_error() => PublishError::Retry {
            reason: Reason::new(format!("LinkedIn failed to take {what} (HTTP {n}{code})"))
                .with_detail(detail),
            after: asked,
            maybe_sent: false,
        },
        _ => PublishError::Rejected(
            Reason::new(format!("LinkedIn refused {what} (HTTP {n}{code})")).with_detail(detail),
        ),
    }
}

fn until_midnight(now: DateTime<Utc>) -> Duration {
    let next = (now.date_naive() + chrono::Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    (next - now).to_std().unwrap_or(Duration::from_secs(3600))
}

/// The JSON body of a text post by `sub`.
pub fn post_body(sub: &str, text: &str) -> serde_json::Value {
    serde_json::json!({
        "author": format!("urn:li:person:{sub}"),
        "commentary": little::commentary(text),
        "visibility": "PUBLIC",
        "distribution": {
            "feedDistribution": "MAIN_FEED",
            "targetEntities": [],
            "thirdPartyDistributionChannels": [],
        },
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": false,
    })
}

/// The adapter the dispatcher posts through.
pub struct LinkedIn {
    egress: Egress,
    app: App,
    clock: Arc<dyn Clock>,
}

impl LinkedIn {
    pub fn new(egress: Egress, app: App, clock: Arc<dyn Clock>) -> LinkedIn {
        LinkedIn { egress, app, clock }
    }

    /// The credentials, unless the 60-day grant has ended (then nothing is tried).
    fn credentials(&self, account: &AccountRef) -> Result<Credentials, PublishError> {
        let c = Credentials::parse(&account.credentials)?;
        if self.clock.now() >= c.expires_at {
            return Err(PublishError::reconnect(format!(
                "picket's access to this LinkedIn account ended on {}: reconnect it",
                c.expires_at.format("%Y-%m-%d")
            )));
        }
        Ok(c)
    }
}

#[async_trait]
impl Network for LinkedIn {
    fn kind(&self) -> NetworkKind {
        NetworkKind::LinkedIn
    }

    #[tracing::instrument(skip_all, fields(network = "linkedin", account = account.id))]
    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        let m = self.measure(account, &post.text);
        if !m.fits() {
            return Err(PublishError::rejected(format!(
                "too long for LinkedIn: {}",
                m.describe()
            )));
        }
        let c = self.credentials(account)?;
        if post.outcome_unknown {
            // LinkedIn gives no way to tell (see the module's notes): the honest answer.
            return Err(PublishError::rejected(
                "LinkedIn's answer to an earlier attempt was lost and LinkedIn allows no \
                 check: not posted again, so it cannot appear twice; look for it on your profile",
            ));
        }
        let resp = self
            .app
            .http(&self.egress)
            .post(&format!("{}/rest/posts", self.app.api))
            .bearer_auth(&c.token)
            .header("LinkedIn-Version", VERSION)
            .header("X-Restli-Protocol-Version", "2.0.0")
            .json(&post_body(&c.sub, &post.text))
            .timeout(post.timeout)
            .send()
            .await
            .map_err(|e| super::transport_error(&e))?;
        if !resp.status().is_success() {
            return Err(error_of(resp, "the post", self.clock.now()).await);
        }
        let urn = resp
            .headers()
            .get("x-restli-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .ok_or_else(|| {
                // Published (2xx) but unnamed: the retry must not post again.
                PublishError::Retry {
                    reason: Reason::new("LinkedIn took the post but did not name it"),
                    after: None,
                    maybe_sent: true,
                }
            })?;
        Ok(Receipt {
            url: Some(format!("https://www.linkedin.com/feed/update/{urn}/")),
            remote_id: urn,
        })
    }

    #[tracing::instrument(skip_all, fields(network = "linkedin", account = account.id))]
    async fn verify(&self, account: &AccountRef) -> Result<Identity, PublishError> {
        let c = self.credentials(account)?;
        let me = userinfo(
            self.app.http(&self.egress),
            &self.app,
            &c.token,
            self.clock.now(),
        )
        .await?;
        Ok(Identity {
            handle: me.name.unwrap_or(me.sub),
            url: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_is_authored_by_the_member_public_and_its_commentary_is_escaped() {
        let body = post_body("abc123", "On #Strike (today): https://p.example/i/x_y");
        assert_eq!(body["author"], "urn:li:person:abc123");
        assert_eq!(body["visibility"], "PUBLIC");
        assert_eq!(body["lifecycleState"], "PUBLISHED");
        assert_eq!(body["distribution"]["feedDistribution"], "MAIN_FEED");
        assert_eq!(
            body["commentary"],
            r"On {hashtag|\#|Strike} \(today\): https://p.example/i/x\_y"
        );
    }

    #[test]
    fn a_daily_quota_waits_until_midnight_utc() {
        let now = DateTime::parse_from_rfc3339("2027-07-04T22:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(until_midnight(now), Duration::from_secs(90 * 60));
    }

    #[test]
    fn the_authorize_page_asks_only_to_post_and_for_the_members_id() {
        let app = app(&OAuthApp {
            client_id: "77x".into(),
            client_secret: Secret::new("s"),
            api_base: None,
            auth_base: None,
        });
        assert!(!app.trusted);
        let u = url::Url::parse(&authorize_url(&app, "https://p.test/cb", "st")).unwrap();
        let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
        assert_eq!(
            u.as_str().split('?').next(),
            Some("https://www.linkedin.com/oauth/v2/authorization")
        );
        assert_eq!(q["scope"], "openid profile w_member_social");
        assert_eq!(q["state"], "st");
    }
}
