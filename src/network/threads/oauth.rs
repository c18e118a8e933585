//! Connecting a Threads account with the host's Meta app, and keeping its grant alive.
//!
//! Documented at
//! https://developers.facebook.com/documentation/threads/get-started/get-access-tokens-and-permissions
//! (authorization window, code → short-lived token) and
//! https://developers.facebook.com/docs/threads/get-started/long-lived-tokens/
//! (`th_exchange_token`, `th_refresh_token`):
//! 1. the person approves picket at `threads.net/oauth/authorize` (scopes
//!    `threads_basic,threads_content_publish`, nothing more), which sends them to the
//!    host's registered redirect with `code` and `state`;
//! 2. `POST graph.threads.net/oauth/access_token` trades the code for a one-hour token and
//!    the person's Threads user id;
//! 3. `GET graph.threads.net/access_token?grant_type=th_exchange_token` trades that for a
//!    60-day token;
//! 4. `GET graph.threads.net/refresh_access_token?grant_type=th_refresh_token` renews a
//!    long-lived token that is at least 24 hours old and not expired, for 60 days more.
//!
//! Meta's authorization window has no out-of-band redirect: the command line prints the
//! page and reads back the address the browser lands on (or the code in it).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::super::guarded::Http;
use super::super::{PublishError, Reason, graph};
use super::{App, Credentials, url};

/// The only permissions picket asks for: who the account is, and publishing.
pub const SCOPES: &str = "threads_basic,threads_content_publish";

/// How long each call of the connect steps may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// The authorization window's address for this app, sending the person back to
/// `redirect` with `state`.
pub fn authorize_url(app: &App, redirect: &str, state: &str) -> String {
    let mut u = url::Url::parse(&format!("{}/oauth/authorize", app.auth))
        .expect("the base was checked with the settings");
    u.query_pairs_mut()
        .append_pair("client_id", &app.client_id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", SCOPES)
        .append_pair("response_type", "code")
        .append_pair("state", state);
    u.into()
}

#[derive(Deserialize)]
struct ShortLived {
    access_token: String,
    user_id: serde_json::Value,
}

#[derive(Deserialize)]
struct LongLived {
    access_token: String,
    /// Seconds until it expires (about 60 days).
    expires_in: i64,
}

#[derive(Deserialize)]
struct Me {
    id: String,
    #[serde(default)]
    username: Option<String>,
}

/// Steps 2 and 3, then who the account is: the credentials to seal, valid from `now`.
pub async fn exchange_code(
    http: &Http,
    app: &App,
    code: &str,
    redirect: &str,
    now: DateTime<Utc>,
) -> Result<Credentials, PublishError> {
    let token_url = format!("{}/oauth/access_token", app.api);
    let resp =
        super::super::official::post_code(http, &token_url, app, code, redirect, STEP_TIMEOUT)
            .await?;
    if !resp.status().is_success() {
        return Err(graph::error_of(resp, "Threads", "the code", now).await);
    }
    let short: ShortLived = resp.json().await.map_err(unreadable)?;
    let user_id = match short.user_id {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    let long = long_lived(http, app, "th_exchange_token", &short.access_token, now).await?;
    let me = me(http, app, &long.access_token, now).await?;
    if me.id != user_id {
        return Err(PublishError::reconnect(
            "Threads named another account than the one that approved picket",
        ));
    }
    Ok(Credentials {
        token: long.access_token,
        username: me.username.unwrap_or_else(|| user_id.clone()),
        user_id,
        refreshed_at: now,
        expires_at: now + chrono::Duration::seconds(long.expires_in),
    })
}

/// Step 4: a fresh 60-day token for `c`, counted from `now`.
pub async fn refresh(
    http: &Http,
    app: &App,
    c: &Credentials,
    now: DateTime<Utc>,
) -> Result<Credentials, PublishError> {
    let long = long_lived(http, app, "th_refresh_token", &c.token, now).await?;
    Ok(Credentials {
        token: long.access_token,
        refreshed_at: now,
        expires_at: now + chrono::Duration::seconds(long.expires_in),
        ..c.clone()
    })
}

async fn long_lived(
    http: &Http,
    app: &App,
    grant: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<LongLived, PublishError> {
    let path = if grant == "th_refresh_token" {
        "refresh_access_token"
    } else {
        "access_token"
    };
    let mut u = url::Url::parse(&format!("{}/{path}", app.api)).expect("checked base");
    u.query_pairs_mut().append_pair("grant_type", grant);
    if grant == "th_exchange_token" {
        u.query_pairs_mut()
            .append_pair("client_secret", app.client_secret.expose());
    }
    u.query_pairs_mut().append_pair("access_token", token);
    // The URL holds secrets: transport errors leave it out (`guarded`), and so does this.
    let resp = http
        .get(u.as_str())
        .timeout(STEP_TIMEOUT)
        .send()
        .await
        .map_err(|e| super::super::transport_error(&e))?;
    if !resp.status().is_success() {
        return Err(graph::error_of(resp, "Threads", "the token", now).await);
    }
    let long: LongLived = resp.json().await.map_err(unreadable)?;
    if long.expires_in <= 0 {
        return Err(PublishError::retry("Threads gave a token that has expired"));
    }
    Ok(long)
}

async fn me(http: &Http, app: &App, token: &str, now: DateTime<Utc>) -> Result<Me, PublishError> {
    let resp = http
        .get(&url(
            app,
            "me",
            &[("fields", "id,username"), ("access_token", token)],
        ))
        .timeout(STEP_TIMEOUT)
        .send()
        .await
        .map_err(|e| super::super::transport_error(&e))?;
    if !resp.status().is_success() {
        return Err(graph::error_of(resp, "Threads", "the request", now).await);
    }
    resp.json().await.map_err(unreadable)
}

/// Who the account with `token` is: its handle.
pub async fn username(
    http: &Http,
    app: &App,
    token: &str,
    now: DateTime<Utc>,
) -> Result<String, PublishError> {
    let me = me(http, app, token, now).await?;
    Ok(me.username.unwrap_or(me.id))
}

fn unreadable(e: super::super::HttpError) -> PublishError {
    PublishError::Retry {
        reason: Reason::new("Threads sent an unreadable answer").with_detail(e.to_string()),
        after: None,
        maybe_sent: false,
    }
}

/// The code (and the state, when there is one) in what the person pasted: the whole
/// address the browser landed on, or the code alone. Meta adds `#_` to the address.
pub fn code_from_paste(pasted: &str) -> (String, Option<String>) {
    let pasted = pasted.trim();
    let cut = |s: &str| s.trim_end_matches("#_").trim().to_string();
    if let Ok(u) = url::Url::parse(pasted)
        && u.query_pairs().any(|(k, _)| k == "code")
    {
        let get = |name: &str| {
            u.query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| cut(&v))
        };
        return (get("code").unwrap_or_default(), get("state"));
    }
    (cut(pasted), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_page_asks_only_for_posting_and_carries_the_state() {
        let app = App::for_tests("http://127.0.0.1:1");
        let u = url::Url::parse(&authorize_url(&app, "https://picket.test/cb", "st4te")).unwrap();
        let q: std::collections::HashMap<_, _> = u.query_pairs().into_owned().collect();
        assert_eq!(u.path(), "/oauth/authorize");
        assert_eq!(q["scope"], "threads_basic,threads_content_publish");
        assert_eq!(q["response_type"], "code");
        assert_eq!(q["state"], "st4te");
        assert_eq!(q["redirect_uri"], "https://picket.test/cb");
        assert_eq!(q["client_id"], "1234");
    }

    #[test]
    fn a_pasted_redirect_gives_its_code_and_state_and_a_bare_code_is_taken_as_is() {
        assert_eq!(
            code_from_paste(
                " https://picket.test/connect/threads/callback?code=AQB1x&state=s1#_\n"
            ),
            ("AQB1x".to_string(), Some("s1".to_string()))
        );
        assert_eq!(code_from_paste("AQB1x#_"), ("AQB1x".to_string(), None));
    }
}
