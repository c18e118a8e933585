//! The Mastodon client API adapter: Mastodon, Pleroma/Akkoma, GoToSocial, Friendica,
//! snac and the other servers that speak it (facts in `NETWORKS.md` §1).
//!
//! Two halves:
//! - enrollment ([`discover`], [`register_app`], [`authorize_url`], [`exchange_code`],
//!   [`verify_token`]): the HTTP calls `picket account add mastodon` makes, here because
//!   this module is the only place that speaks HTTP to Mastodon servers;
//! - [`Mastodon`], the [`Network`] the dispatcher posts through: `POST /api/v1/statuses`
//!   with `Idempotency-Key`, delete, verify, engagement.
//!
//! Credentials are a JSON [`Credentials`] document (token, the account's own id, the
//! server's software and limits, the OAuth app it was enrolled with), sealed by the vault.
//! Tokens never expire on these servers, so nothing is ever refreshed or re-saved.
//!
//! Not here: hand-off to the server's own `scheduled_at` (every post is sent when due,
//! and `scheduled_at` is never sent: GoToSocial backdates past instants without
//! federating them), media, census of hashtags across servers.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};

use super::guarded::{Egress, Http, Response};
use super::{
    AccountRef, Engagement, Identity, Network, NetworkKind, OutgoingPost, PublishError, Reason,
    Receipt,
};
use crate::compose::{self, Limit};

/// Out-of-band redirect: the server shows the code and the participant pastes it.
pub const OOB_REDIRECT: &str = "urn:ietf:wg:oauth:2.0:oob";

/// Mastodon keeps an `Idempotency-Key` for one hour; past this age a retry reads back
/// first, because the key may have expired on the server.
const KEY_TRUSTED_FOR: chrono::Duration = chrono::Duration::minutes(50);

/// How many of the account's recent statuses a read-back looks through.
const READ_BACK_LIMIT: u32 = 20;

/// The largest list of statuses a read-back reads.
const READ_BACK_MAX_BYTES: usize = 8 * super::guarded::MAX_BODY;

/// What is stored, sealed, for one Mastodon-API account.
#[derive(Clone, Serialize, Deserialize)]
pub struct Credentials {
    pub token: String,
    /// The account's id on its server (for reading back its statuses).
    #[serde(default)]
    pub account_id: Option<String>,
    /// `software.name` from nodeinfo, lowercase ("mastodon", "pleroma", "gotosocial" ...).
    #[serde(default)]
    pub software: Option<String>,
    /// The server's own post length limit and URL weight, read at enrollment.
    #[serde(default)]
    pub max_characters: Option<usize>,
    #[serde(default)]
    pub characters_reserved_per_url: Option<usize>,
    /// The OAuth app registered on this server (absent for pasted tokens); reused when
    /// another account on the same server is enrolled.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default)]
    pub client_secret: Option<String>,
}

impl Credentials {
    /// Stored credentials; a bare token (not JSON) is accepted as a token alone.
    pub fn parse(raw: &str) -> Credentials {
        serde_json::from_str(raw).unwrap_or_else(|_| Credentials {
            token: raw.trim().to_string(),
            account_id: None,
            software: None,
            max_characters: None,
            characters_reserved_per_url: None,
            client_id: None,
            client_secret: None,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("credentials serialize")
    }

    /// Whether the server is known to honour `Idempotency-Key` (Mastodon and its forks,
    /// Pleroma/Akkoma). GoToSocial and snac do not; unknown software is not trusted.
    fn honours_idempotency_key(&self) -> bool {
        matches!(
            self.software.as_deref(),
            Some("mastodon" | "hometown" | "glitch-soc" | "pleroma" | "akkoma")
        )
    }
}

/// The length of `text` as this server counts it, and its limit.
pub fn measure_for_server(creds: &Credentials, text: &str) -> compose::Measure {
    let max = creds.max_characters.unwrap_or(500);
    let per_url = creds.characters_reserved_per_url.unwrap_or(23);
    let mut m = compose::length::measure_with(
        NetworkKind::Mastodon,
        text,
        Limit {
            max: Some(max),
            max_bytes: None,
            unit: "characters",
        },
    );
    let urls = compose::length::url_ranges(text);
    m.count = match creds.software.as_deref() {
        // GoToSocial counts code points and URLs in full, whatever it advertises.
        Some("gotosocial") => text.chars().count(),
        // Pleroma/Akkoma count graphemes, URLs in full.
        Some("pleroma" | "akkoma") => {
            unicode_segmentation::UnicodeSegmentation::graphemes(text, true).count()
        }
        // Mastodon rules (URLs weigh 23) with this server's own URL weight.
        _ => (m.count + urls.len() * per_url).saturating_sub(urls.len() * 23),
    };
    m
}

/// The adapter the dispatcher posts through.
pub struct Mastodon {
    egress: Egress,
}

impl Mastodon {
    pub fn new(egress: Egress) -> Self {
        Mastodon { egress }
    }

    /// Guarded unless the operator added the account.
    fn http(&self, account: &AccountRef) -> &Http {
        self.egress.for_account(account.trusted)
    }
}

#[derive(Deserialize)]
struct Status {
    id: String,
    url: Option<String>,
    #[serde(default)]
    uri: Option<String>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    content: String,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    replies_count: u64,
    #[serde(default)]
    reblogs_count: u64,
    #[serde(default)]
    favourites_count: u64,
}

impl Status {
    fn receipt(self) -> Receipt {
        Receipt {
            remote_id: self.id,
            url: self.url.or(self.uri),
        }
    }
}

fn base(server: &str) -> &str {
    server.trim_end_matches('/')
}

#[async_trait]
impl Network for Mastodon {
    fn kind(&self) -> NetworkKind {
        NetworkKind::Mastodon
    }

    fn measure(&self, account: &AccountRef, text: &str) -> compose::Measure {
        measure_for_server(&Credentials::parse(account.credentials.expose()), text)
    }

    #[tracing::instrument(skip_all, fields(network = "mastodon", account = account.id))]
    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        let creds = Credentials::parse(account.credentials.expose());
        let m = measure_for_server(&creds, &post.text);
        if !m.fits() {
            return Err(PublishError::rejected(format!(
                "too long for this server: {}",
                m.describe()
            )));
        }
        let stale_key = Utc::now() - post.scheduled_at > KEY_TRUSTED_FOR;
        if post.outcome_unknown && (!creds.honours_idempotency_key() || stale_key) {
            match self.read_back(account, &creds, post).await {
                Ok(Some(found)) => {
                    tracing::info!(
                        remote_id = %found.remote_id,
                        "an earlier attempt was published: not posting again"
                    );
                    return Ok(found);
                }
                Ok(None) => {}
                // Without a read-back a retry could duplicate the post on a server that
                // ignores the key: wait and try the read-back again.
                Err(e) => return Err(e),
            }
        }
        let resp = self
            .http(account)
            .post(&format!("{}/api/v1/statuses", base(&account.server)))
            .bearer_auth(&creds.token)
            .header("Idempotency-Key", &post.idempotency_key)
            .timeout(post.timeout)
            // Never `scheduled_at` here: a past instant is a backdated import on GoToSocial.
            .json(&serde_json::json!({ "status": post.text, "visibility": "public" }))
            .send()
            .await
            .map_err(|e| super::transport_error(&e))?;
        let status = resp.status();
        if status.is_success() {
            let s: Status = resp.json().await.map_err(|e| PublishError::Retry {
                reason: Reason::new("the server's answer to the post was unreadable")
                    .with_detail(e.to_string()),
                after: None,
                // The post exists: the retry's key (or read-back) finds it.
                maybe_sent: true,
            })?;
            if let Some(v) = s.visibility.as_deref()
                && v != "public"
            {
                // Silenced accounts are downgraded to unlisted: published, but not in the
                // hashtag timeline. The participant should know; retrying would not help.
                tracing::warn!(
                    remote_id = %s.id,
                    visibility = v,
                    "the server published the post with reduced visibility (account silenced/limited?)"
                );
            }
            return Ok(s.receipt());
        }
        Err(error_of(resp, Call::Post).await)
    }

    #[tracing::instrument(skip_all, fields(network = "mastodon", account = account.id))]
    async fn delete(&self, account: &AccountRef, remote_id: &str) -> Result<(), PublishError> {
        let creds = Credentials::parse(account.credentials.expose());
        let resp = self
            .http(account)
            .delete(&format!(
                "{}/api/v1/statuses/{}",
                base(&account.server),
                path_segment(remote_id)
            ))
            .bearer_auth(&creds.token)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| super::transport_error(&e))?;
        let status = resp.status();
        // Already gone is what the caller wanted.
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(error_of(resp, Call::Delete).await)
    }

    #[tracing::instrument(skip_all, fields(network = "mastodon", account = account.id))]
    async fn verify(&self, account: &AccountRef) -> Result<Identity, PublishError> {
        let creds = Credentials::parse(account.credentials.expose());
        let me = verify_token(self.http(account), &account.server, &creds.token).await?;
        Ok(Identity {
            handle: me.handle(&account.server),
            url: me.url,
        })
    }

    #[tracing::instrument(skip_all, fields(network = "mastodon", account = account.id))]
    async fn engagement(
        &self,
        account: &AccountRef,
        remote_id: &str,
    ) -> Result<Option<Engagement>, PublishError> {
        let creds = Credentials::parse(account.credentials.expose());
        let resp = self
            .http(account)
            .get(&format!(
                "{}/api/v1/statuses/{}",
                base(&account.server),
                path_segment(remote_id)
            ))
            .bearer_auth(&creds.token)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| super::transport_error(&e))?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(error_of(resp, Call::Read).await);
        }
        let s: Status = resp.json().await.map_err(|e| PublishError::Retry {
            reason: Reason::new("the server's answer about a post was unreadable")
                .with_detail(e.to_string()),
            after: None,
            maybe_sent: false,
        })?;
        Ok(Some(Engagement {
            replies: s.replies_count,
            reposts: s.reblogs_count,
            likes: s.favourites_count,
        }))
    }
}

impl Mastodon {
    /// The account's recent status carrying exactly this text, posted no earlier than the
    /// slot (minus a margin for clock skew): an earlier attempt that did land.
    async fn read_back(
        &self,
        account: &AccountRef,
        creds: &Credentials,
        post: &OutgoingPost,
    ) -> Result<Option<Receipt>, PublishError> {
        let account_id = match &creds.account_id {
            Some(id) => id.clone(),
            None => {
                verify_token(self.http(account), &account.server, &creds.token)
                    .await?
                    .id
            }
        };
        let resp = self
            .http(account)
            .get(&format!(
                "{}/api/v1/accounts/{}/statuses?limit={READ_BACK_LIMIT}",
                base(&account.server),
                path_segment(&account_id)
            ))
            .bearer_auth(&creds.token)
            .timeout(post.timeout)
            // Twenty long statuses (some servers allow 50,000 characters) may pass 1 MiB;
            // a read-back cut off would stall the post until its window closed.
            .max_body(READ_BACK_MAX_BYTES)
            .send()
            .await
            .map_err(|e| super::transport_error(&e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(error_of(resp, Call::Read).await);
        }
        let statuses: Vec<Status> = resp.json().await.map_err(|e| PublishError::Retry {
            reason: Reason::new("the server's list of recent posts was unreadable")
                .with_detail(e.to_string()),
            after: None,
            maybe_sent: true,
        })?;
        Ok(find_published(statuses, &post.text, post.scheduled_at))
    }
}

fn find_published(statuses: Vec<Status>, text: &str, not_before: DateTime<Utc>) -> Option<Receipt> {
    let want = normalise(text);
    let earliest = not_before - chrono::Duration::minutes(10);
    statuses
        .into_iter()
        .filter(|s| s.created_at.is_none_or(|at| at >= earliest))
        .find(|s| normalise(&html_to_text(&s.content)) == want)
        .map(Status::receipt)
}

/// Whitespace-insensitive form for comparing what was sent with what the server renders.
fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The plain text of a status's HTML `content`. Servers wrap links and hashtags in tags
/// and hide parts of long URLs in spans, but keep every character of the text.
pub fn html_to_text(html: &str) -> String {
    let html = html
        .replace("<br>", "\n")
        .replace("<br/>", "\n")
        .replace("<br />", "\n")
        .replace("</p><p>", "\n\n");
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&apos;", "'")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// Ids are opaque strings; keep them to one path segment.
fn path_segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

/// What a request to the server was for: the words of a refusal depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// Publishing a post.
    Post,
    /// Deleting a published post.
    Delete,
    /// Reading the account, a post or a list of posts.
    Read,
}

impl Call {
    fn what(self) -> &'static str {
        match self {
            Call::Post => "the post",
            Call::Delete => "the deletion",
            Call::Read => "the request",
        }
    }
}

/// What to do about a non-2xx answer.
async fn error_of(resp: Response, call: Call) -> PublishError {
    let status = resp.status();
    let headers = resp.headers().clone();
    answer_error(status, &headers, &read_error(resp).await, call, Utc::now())
}

/// The `error` (or `error_description`) of an error answer, shortened; never a token.
async fn read_error(resp: Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    error_message(&text)
}

fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: Option<serde_json::Value>,
        error_description: Option<String>,
        detail: Option<serde_json::Value>,
    }
    let msg = match serde_json::from_str::<ErrorBody>(body) {
        Ok(b) => b
            .error_description
            .or_else(|| b.error.map(value_text))
            .or_else(|| b.detail.map(value_text))
            .unwrap_or_default(),
        // An HTML error page from a proxy says nothing useful.
        Err(_) if body.trim_start().starts_with('<') => String::new(),
        Err(_) => body.trim().to_string(),
    };
    msg.chars().take(super::MAX_DETAIL).collect()
}

fn value_text(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Whether a refusal's message says the text is over the server's length limit:
/// Mastodon "Text character limit of 500 exceeded", GoToSocial "status too long",
/// Pleroma/Akkoma "The status is over the character limit". Only picket's own words
/// come of it.
fn says_too_long(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("too long") || (m.contains("character") && m.contains("limit"))
}

/// Map a non-2xx answer to what the dispatcher should do. The reason is picket's words
/// with the status code; the server's `message` is only the detail (see [`Reason`]).
pub(crate) fn answer_error(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    call: Call,
    now: DateTime<Utc>,
) -> PublishError {
    let code = status.as_u16();
    let what = call.what();
    let reason = |summary: String| Reason::new(summary).with_detail(message);
    match status {
        // 401: token revoked or deleted. Only the participant can fix it.
        StatusCode::UNAUTHORIZED => PublishError::Reconnect(reason(format!(
            "the server no longer accepts picket's access to the account (HTTP {code})"
        ))),
        // 403: outside the granted scopes, or the account is suspended/disabled.
        StatusCode::FORBIDDEN => PublishError::Reconnect(reason(format!(
            "the server refused picket's access to the account: suspended, or the permission withdrawn (HTTP {code})"
        ))),
        StatusCode::TOO_MANY_REQUESTS => PublishError::Retry {
            reason: reason(format!("rate limited by the server (HTTP {code})")),
            after: rate_limit_after(headers, now),
            maybe_sent: false,
        },
        // 408: the server gave up reading the request, so it did not act on it.
        StatusCode::REQUEST_TIMEOUT => PublishError::Retry {
            reason: reason(format!("the server timed out reading {what} (HTTP {code})")),
            after: None,
            maybe_sent: false,
        },
        // A 5xx may come from a proxy that timed out after the server committed the post.
        s if s.is_server_error() => PublishError::Retry {
            reason: reason(format!("the server had a temporary failure (HTTP {code})")),
            after: super::retry_after(headers, now),
            maybe_sent: true,
        },
        // 422 (Mastodon, Pleroma) and 400 (GoToSocial) say the content is refused.
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST
            if call == Call::Post && says_too_long(message) =>
        {
            PublishError::Rejected(reason(format!("too long for this server (HTTP {code})")))
        }
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
            PublishError::Rejected(reason(format!("the server refused {what} (HTTP {code})")))
        }
        // 404 says this is no Mastodon API (or the post is gone).
        StatusCode::NOT_FOUND => PublishError::Rejected(reason(format!(
            "the server has no such Mastodon API address (HTTP {code})"
        ))),
        // Redirects are never followed: an address that moved must be connected again.
        s if s.is_redirection() => PublishError::Rejected(reason(format!(
            "the server sent picket elsewhere, which picket does not follow (HTTP {code})"
        ))),
        // Other 4xx will not change by sending again.
        _ => PublishError::Rejected(reason(format!("the server refused {what} (HTTP {code})"))),
    }
}

/// When to try again after a 429: `X-RateLimit-Reset` (Mastodon: an ISO-8601 instant;
/// some servers send epoch seconds) or `Retry-After`, whichever is later.
pub fn rate_limit_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let reset = headers
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_reset(v.trim(), now));
    let retry = super::retry_after(headers, now);
    match (reset, retry) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn parse_reset(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    let at = if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        t.with_timezone(&Utc)
    } else if let Ok(n) = v.parse::<f64>() {
        if !n.is_finite() || n < 0.0 {
            return None;
        }
        // Large numbers are epoch seconds; small ones a delay in seconds.
        if n > 1_000_000_000.0 {
            DateTime::from_timestamp(n as i64, 0)?
        } else {
            return Some(Duration::from_secs_f64(n.min(86_400.0)));
        }
    } else {
        return None;
    };
    Some((at - now).to_std().unwrap_or_default())
}

// ── enrollment ──────────────────────────────────────────────────────────────────────────

/// Why enrolling an account failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The server could not be reached or answered nonsense.
    #[error("{0}")]
    Server(String),
    /// The server refused the token or the code.
    #[error("{0}")]
    Refused(String),
}

/// Enrollment errors are for the command line and the log (a visitor's connect form
/// shows one fixed sentence), so they keep the server's own words.
impl From<PublishError> for EnrollError {
    fn from(e: PublishError) -> Self {
        let text = e.reason().for_operator();
        match e {
            PublishError::Reconnect(_) | PublishError::Rejected(_) => EnrollError::Refused(text),
            PublishError::Retry { .. } => EnrollError::Server(text),
        }
    }
}

/// What a server says about itself, read once at enrollment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerInfo {
    /// nodeinfo `software.name`, lowercase.
    pub software: Option<String>,
    pub max_characters: Option<usize>,
    pub characters_reserved_per_url: Option<usize>,
    /// The authorization server accepts PKCE S256 (Mastodon 4.3+).
    pub pkce_s256: bool,
    /// It knows the `profile` scope (4.3+); else `read:accounts` covers verify_credentials.
    pub profile_scope: bool,
}

impl ServerInfo {
    /// The scopes picket asks for: post and delete its own posts, and read who it is.
    pub fn scopes(&self) -> &'static str {
        if self.profile_scope {
            "write:statuses profile"
        } else {
            "write:statuses read:accounts"
        }
    }
}

/// `https://` is assumed when the participant typed a bare host name.
pub fn normalise_server(server: &str) -> Result<String, EnrollError> {
    let s = server.trim();
    let s = if s.contains("://") {
        s.trim_end_matches('/').to_string()
    } else {
        format!("https://{}", s.trim_end_matches('/'))
    };
    let u = url::Url::parse(&s)
        .map_err(|e| EnrollError::Refused(format!("`{server}` is not a server URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(EnrollError::Refused(format!(
            "`{server}` is not an http(s) server URL"
        )));
    }
    Ok(s)
}

async fn get_json(client: &Http, url: &str) -> Option<serde_json::Value> {
    let resp = client
        .get(url)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// Read limits (`/api/v2/instance`, else `/api/v1/instance`), software (nodeinfo) and
/// OAuth features (`/.well-known/oauth-authorization-server`). Missing documents leave
/// fields empty: old servers lack some of them.
pub async fn discover(client: &Http, server: &str) -> Result<ServerInfo, EnrollError> {
    let b = base(server);
    // Decided before any request, so a refused address says why instead of "no answer".
    client
        .guard()
        .addresses(b)
        .await
        .map_err(|e| EnrollError::Server(format!("{b}: {e}")))?;
    let mut info = ServerInfo::default();
    if let Some(v2) = get_json(client, &format!("{b}/api/v2/instance")).await {
        let st = &v2["configuration"]["statuses"];
        info.max_characters = as_usize(&st["max_characters"]);
        info.characters_reserved_per_url = as_usize(&st["characters_reserved_per_url"]);
    }
    if info.max_characters.is_none() {
        let v1 = get_json(client, &format!("{b}/api/v1/instance"))
            .await
            .ok_or_else(|| {
                EnrollError::Server(format!(
                    "{b} does not answer /api/v1/instance: is it a Mastodon-API server?"
                ))
            })?;
        let st = &v1["configuration"]["statuses"];
        info.max_characters = as_usize(&st["max_characters"]).or(as_usize(&v1["max_toot_chars"]));
        info.characters_reserved_per_url = info
            .characters_reserved_per_url
            .or(as_usize(&st["characters_reserved_per_url"]));
    }
    info.software = nodeinfo_software(client, b).await;
    if let Some(oauth) = get_json(
        client,
        &format!("{b}/.well-known/oauth-authorization-server"),
    )
    .await
    {
        let has = |key: &str, want: &str| {
            oauth[key]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(want)))
        };
        info.pkce_s256 = has("code_challenge_methods_supported", "S256");
        info.profile_scope = has("scopes_supported", "profile");
    }
    Ok(info)
}

/// Counts may come as numbers or (Pleroma, some forks) as strings.
fn as_usize(v: &serde_json::Value) -> Option<usize> {
    v.as_u64()
        .map(|n| n as usize)
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|&n| n > 0)
}

async fn nodeinfo_software(client: &Http, b: &str) -> Option<String> {
    let index = get_json(client, &format!("{b}/.well-known/nodeinfo")).await?;
    let links = index["links"].as_array()?;
    // The newest schema the server lists.
    let href = links
        .iter()
        .filter(|l| {
            l["rel"]
                .as_str()
                .is_some_and(|r| r.starts_with("http://nodeinfo.diaspora.software/ns/schema/"))
        })
        .filter_map(|l| l["href"].as_str())
        .max()?;
    // The index is the server's own document, but it may name any address: read the
    // schema only from the server itself.
    if !same_host(b, href) {
        tracing::debug!(
            server = b,
            "nodeinfo names another host; software left unknown"
        );
        return None;
    }
    let doc = get_json(client, href).await?;
    doc["software"]["name"]
        .as_str()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
}

/// Whether `href` is on the host (and port) of `server`.
fn same_host(server: &str, href: &str) -> bool {
    match (url::Url::parse(server), url::Url::parse(href)) {
        (Ok(a), Ok(b)) => {
            a.host_str()
                .zip(b.host_str())
                .is_some_and(|(x, y)| x.eq_ignore_ascii_case(y))
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

/// An OAuth app registered on one server.
#[derive(Clone)]
pub struct App {
    pub client_id: String,
    pub client_secret: String,
}

/// `POST /api/v1/apps` with `scopes` and `redirect_uris` (one per line: the out-of-band
/// redirect for the CLI and, on a web host, its callback, so one app serves both).
pub async fn register_app(
    client: &Http,
    server: &str,
    scopes: &str,
    redirect_uris: &str,
) -> Result<App, EnrollError> {
    let resp = client
        .post(&format!("{}/api/v1/apps", base(server)))
        .timeout(Duration::from_secs(30))
        .json(&serde_json::json!({
            "client_name": "picket",
            "redirect_uris": redirect_uris,
            "scopes": scopes,
            "website": "https://github.com/picket-strike/picket",
        }))
        .send()
        .await
        .map_err(|e| EnrollError::Server(format!("registering picket: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(EnrollError::Server(format!(
            "registering picket with {}: {status} {}",
            base(server),
            read_error(resp).await
        )));
    }
    #[derive(Deserialize)]
    struct Registered {
        client_id: String,
        client_secret: String,
    }
    let r: Registered = resp
        .json()
        .await
        .map_err(|e| EnrollError::Server(format!("registering picket: {e}")))?;
    Ok(App {
        client_id: r.client_id,
        client_secret: r.client_secret,
    })
}

/// A PKCE verifier and its S256 challenge (RFC 7636).
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        use base64::Engine;
        use rand::Rng;
        use sha2::Digest;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let verifier = b64.encode(bytes);
        let challenge = b64.encode(sha2::Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Pkce::new()
    }
}

/// The page where the participant approves picket; it sends them to `redirect` with a
/// code (or, with [`OOB_REDIRECT`], shows the code to paste back).
pub fn authorize_url(
    server: &str,
    app: &App,
    scopes: &str,
    pkce: Option<&Pkce>,
    state: &str,
    redirect: &str,
) -> String {
    let mut u = url::Url::parse(&format!("{}/oauth/authorize", base(server)))
        .expect("server URL was checked");
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &app.client_id)
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", scopes)
            .append_pair("state", state)
            // Lets someone with several accounts on one server pick the right one.
            .append_pair("force_login", "true");
        if let Some(p) = pkce {
            q.append_pair("code_challenge", &p.challenge)
                .append_pair("code_challenge_method", "S256");
        }
    }
    u.into()
}

/// Trade the code for an access token at `/oauth/token`; `redirect` is the one the
/// authorize page was opened with.
pub async fn exchange_code(
    client: &Http,
    server: &str,
    app: &App,
    scopes: &str,
    code: &str,
    pkce: Option<&Pkce>,
    redirect: &str,
) -> Result<String, EnrollError> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.as_str()),
        ("redirect_uri", redirect),
        ("scope", scopes),
    ];
    if let Some(p) = pkce {
        form.push(("code_verifier", p.verifier.as_str()));
    }
    // Built before the request: the serializer is not `Send` and must not live across
    // the await (the web's OAuth callback runs this on any worker thread).
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish();
    let resp = client
        .post(&format!("{}/oauth/token", base(server)))
        .timeout(Duration::from_secs(30))
        .header(
            reqwest::header::CONTENT_TYPE.as_str(),
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| EnrollError::Server(format!("exchanging the code: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        let msg = read_error(resp).await;
        return Err(match status {
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => EnrollError::Refused(format!(
                "the server refused the code ({status}: {msg}); start again and paste the newest code"
            )),
            _ => EnrollError::Server(format!("exchanging the code: {status} {msg}")),
        });
    }
    #[derive(Deserialize)]
    struct Token {
        access_token: String,
    }
    let t: Token = resp
        .json()
        .await
        .map_err(|e| EnrollError::Server(format!("exchanging the code: {e}")))?;
    Ok(t.access_token)
}

/// Who a token belongs to, from `verify_credentials`.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    pub id: String,
    /// `user` for local accounts.
    pub acct: String,
    #[serde(default)]
    pub url: Option<String>,
}

impl Me {
    /// `user@host`, the handle people can search for.
    pub fn handle(&self, server: &str) -> String {
        if self.acct.contains('@') {
            return self.acct.clone();
        }
        match url::Url::parse(server).ok().and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        }) {
            Some(host) => format!("{}@{host}", self.acct),
            None => self.acct.clone(),
        }
    }
}

/// `GET /api/v1/accounts/verify_credentials`: 401/403 mean the token is no good.
pub async fn verify_token(client: &Http, server: &str, token: &str) -> Result<Me, PublishError> {
    let resp = client
        .get(&format!(
            "{}/api/v1/accounts/verify_credentials",
            base(server)
        ))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| super::transport_error(&e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(error_of(resp, Call::Read).await);
    }
    resp.json().await.map_err(|e| PublishError::Retry {
        reason: Reason::new("the server's answer about the account was unreadable")
            .with_detail(e.to_string()),
        after: None,
        maybe_sent: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn creds(software: Option<&str>, max: Option<usize>) -> Credentials {
        Credentials {
            software: software.map(str::to_string),
            max_characters: max,
            ..Credentials::parse("t")
        }
    }

    #[test]
    fn an_iso_8601_rate_limit_reset_becomes_the_wait_until_that_instant() {
        // Arrange
        let now = at("2027-07-04T12:00:00Z");
        let h = headers(&[("x-ratelimit-reset", "2027-07-04T12:04:30.123Z")]);

        // Act
        let after = rate_limit_after(&h, now);

        // Assert
        assert_eq!(after, Some(Duration::from_millis(270_123)));
    }

    #[test]
    fn a_reset_with_an_offset_or_in_the_past_or_as_epoch_seconds_is_understood() {
        let now = at("2027-07-04T12:00:00Z");
        let offset = headers(&[("x-ratelimit-reset", "2027-07-04T14:01:00+02:00")]);
        let past = headers(&[("x-ratelimit-reset", "2027-07-04T11:00:00Z")]);
        let epoch = headers(&[("x-ratelimit-reset", &(now.timestamp() + 90).to_string())]);
        let delay = headers(&[("x-ratelimit-reset", "12")]);

        assert_eq!(
            rate_limit_after(&offset, now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(rate_limit_after(&past, now), Some(Duration::ZERO));
        assert_eq!(rate_limit_after(&epoch, now), Some(Duration::from_secs(90)));
        assert_eq!(rate_limit_after(&delay, now), Some(Duration::from_secs(12)));
    }

    #[test]
    fn garbage_rate_limit_headers_give_no_wait_and_retry_after_is_the_fallback() {
        let now = at("2027-07-04T12:00:00Z");
        for junk in ["soon", "", "-5", "NaN", "2027-13-45T99:00:00Z", "inf"] {
            let h = headers(&[("x-ratelimit-reset", junk)]);
            assert_eq!(rate_limit_after(&h, now), None, "{junk:?}");
        }
        let both = headers(&[("x-ratelimit-reset", "tomorrow"), ("retry-after", "7")]);
        assert_eq!(rate_limit_after(&both, now), Some(Duration::from_secs(7)));
    }

    #[test]
    fn the_later_of_reset_and_retry_after_wins() {
        let now = at("2027-07-04T12:00:00Z");
        let h = headers(&[
            ("x-ratelimit-reset", "2027-07-04T12:00:10Z"),
            ("retry-after", "30"),
        ]);
        assert_eq!(rate_limit_after(&h, now), Some(Duration::from_secs(30)));
    }

    #[test]
    fn answers_map_to_what_the_dispatcher_should_do() {
        let now = at("2027-07-04T12:00:00Z");
        let none = HeaderMap::new();
        let map = |code: u16| {
            answer_error(
                StatusCode::from_u16(code).unwrap(),
                &none,
                "x",
                Call::Post,
                now,
            )
        };

        assert!(matches!(map(401), PublishError::Reconnect(_)));
        assert!(matches!(map(403), PublishError::Reconnect(_)));
        assert!(matches!(map(422), PublishError::Rejected(_)));
        assert!(
            matches!(map(400), PublishError::Rejected(_)),
            "GoToSocial too long"
        );
        assert!(matches!(map(404), PublishError::Rejected(_)));
        assert!(matches!(
            map(429),
            PublishError::Retry {
                maybe_sent: false,
                ..
            }
        ));
        for code in [500, 502, 503, 504] {
            assert!(
                matches!(
                    map(code),
                    PublishError::Retry {
                        maybe_sent: true,
                        ..
                    }
                ),
                "{code}"
            );
        }
    }

    #[test]
    fn a_429_carries_the_reset_instant_as_its_wait() {
        let now = at("2027-07-04T12:00:00Z");
        let h = headers(&[
            ("x-ratelimit-limit", "300"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "2027-07-04T12:05:00.000Z"),
        ]);

        let e = answer_error(
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            "Too many requests",
            Call::Post,
            now,
        );

        match e {
            PublishError::Retry { after, reason, .. } => {
                assert_eq!(after, Some(Duration::from_secs(300)));
                assert_eq!(reason.summary(), "rate limited by the server (HTTP 429)");
                assert_eq!(reason.detail(), Some("Too many requests"));
            }
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    /// What a server chooses to say: it must never be in the part pages show.
    const BODY: &str = "SECRET-BODY-5c1e: <a href=https://evil.example>click</a>";

    #[test]
    fn a_servers_error_text_is_only_the_detail_and_the_reason_names_the_kind_and_status() {
        // Arrange
        let now = at("2027-07-04T12:00:00Z");
        let none = HeaderMap::new();
        let cases = [
            (
                401,
                Call::Read,
                "no longer accepts picket's access",
                "(HTTP 401)",
            ),
            (403, Call::Post, "refused picket's access", "(HTTP 403)"),
            (422, Call::Post, "the server refused the post", "(HTTP 422)"),
            (400, Call::Post, "the server refused the post", "(HTTP 400)"),
            (
                404,
                Call::Post,
                "no such Mastodon API address",
                "(HTTP 404)",
            ),
            (
                410,
                Call::Delete,
                "the server refused the deletion",
                "(HTTP 410)",
            ),
            (408, Call::Post, "timed out reading the post", "(HTTP 408)"),
            (429, Call::Post, "rate limited", "(HTTP 429)"),
            (503, Call::Post, "temporary failure", "(HTTP 503)"),
            (302, Call::Post, "does not follow", "(HTTP 302)"),
        ];

        for (code, call, kind, status) in cases {
            // Act
            let e = answer_error(StatusCode::from_u16(code).unwrap(), &none, BODY, call, now);

            // Assert
            let reason = e.reason();
            assert!(
                reason.summary().contains(kind) && reason.summary().ends_with(status),
                "{code}: {}",
                reason.summary()
            );
            assert!(!reason.summary().contains("SECRET"), "{code}: {reason}");
            assert!(!e.to_string().contains("SECRET"), "{code}: {e}");
            assert_eq!(reason.detail(), Some(BODY), "{code}: kept for the log");
            assert!(
                e.for_operator().contains(BODY),
                "{code}: the operator sees it"
            );
        }
    }

    #[test]
    fn a_refusal_that_says_too_long_is_reported_as_too_long_in_picket_words() {
        let now = at("2027-07-04T12:00:00Z");
        let none = HeaderMap::new();
        for (code, message) in [
            (
                422,
                "Validation failed: Text character limit of 500 exceeded",
            ),
            (400, "Bad Request: status too long, 612 characters provided"),
            (422, "The status is over the character limit"),
        ] {
            let e = answer_error(
                StatusCode::from_u16(code).unwrap(),
                &none,
                message,
                Call::Post,
                now,
            );
            assert!(matches!(e, PublishError::Rejected(_)), "{e:?}");
            assert_eq!(
                e.reason().summary(),
                format!("too long for this server (HTTP {code})")
            );
        }
        // Any other refusal is not guessed at.
        let other = answer_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &none,
            "Validation failed: Text can't be blank",
            Call::Post,
            now,
        );
        assert_eq!(
            other.reason().summary(),
            "the server refused the post (HTTP 422)"
        );
    }

    #[test]
    fn error_messages_come_from_the_error_field_and_html_pages_are_dropped() {
        assert_eq!(
            error_message(r#"{"error":"Validation failed: Text character limit of 500 exceeded"}"#),
            "Validation failed: Text character limit of 500 exceeded"
        );
        assert_eq!(
            error_message(r#"{"error":"invalid_grant","error_description":"The code expired"}"#),
            "The code expired"
        );
        assert_eq!(error_message(r#"{"detail":{"x":1}}"#), r#"{"x":1}"#);
        assert_eq!(
            error_message("<html><body>502 Bad Gateway</body></html>"),
            ""
        );
        assert_eq!(error_message(&"é".repeat(1000)).chars().count(), 300);
    }

    #[test]
    fn server_limits_are_applied_in_each_softwares_own_unit() {
        let url = "https://example.org/a/very/long/path/that/goes/on/and/on/and/on";
        let text = format!("{} {url}", "a".repeat(470));

        // Mastodon: the URL weighs 23 → 494 of 500.
        assert!(measure_for_server(&creds(Some("mastodon"), Some(500)), &text).fits());
        // GoToSocial counts the URL in full → over 500.
        assert!(!measure_for_server(&creds(Some("gotosocial"), Some(500)), &text).fits());
        // A server that advertises 60 per URL.
        let mut c = creds(Some("mastodon"), Some(500));
        c.characters_reserved_per_url = Some(60);
        assert_eq!(measure_for_server(&c, &text).count, 471 + 60);
        // GoToSocial counts code points: a family emoji is 7 of them, one grapheme.
        let family = "👨‍👩‍👧‍👦";
        assert_eq!(
            measure_for_server(&creds(Some("gotosocial"), None), family).count,
            7
        );
        assert_eq!(
            measure_for_server(&creds(Some("pleroma"), None), family).count,
            1
        );
    }

    #[test]
    fn only_known_idempotent_software_is_trusted_with_the_key() {
        assert!(creds(Some("mastodon"), None).honours_idempotency_key());
        assert!(creds(Some("akkoma"), None).honours_idempotency_key());
        assert!(!creds(Some("gotosocial"), None).honours_idempotency_key());
        assert!(!creds(Some("snac"), None).honours_idempotency_key());
        assert!(!creds(None, None).honours_idempotency_key());
    }

    #[test]
    fn stored_credentials_round_trip_and_a_bare_token_is_accepted() {
        let mut c = creds(Some("pleroma"), Some(5000));
        c.account_id = Some("9".into());
        let back = Credentials::parse(&c.to_json());
        assert_eq!(back.token, "t");
        assert_eq!(back.max_characters, Some(5000));
        assert_eq!(back.account_id.as_deref(), Some("9"));
        assert_eq!(Credentials::parse(" abc \n").token, "abc");
    }

    #[test]
    fn the_status_html_reads_back_as_the_text_that_was_sent() {
        // Arrange: how Mastodon renders a hashtag, a long link and a line break.
        let html = r##"<p>On <a href="https://m.example/tags/TestStrike" class="mention hashtag" rel="tag">#<span>TestStrike</span></a> strike &amp; &quot;more&quot;<br />Join: <a href="https://picket.example/i/abcdefghijklmnopqrstuvwxyz" rel="nofollow noopener" target="_blank"><span class="invisible">https://</span><span class="ellipsis">picket.example/i/abcdefghijklm</span><span class="invisible">nopqrstuvwxyz</span></a></p>"##;
        let sent = "On #TestStrike strike & \"more\"\nJoin: https://picket.example/i/abcdefghijklmnopqrstuvwxyz";
        let status = Status {
            id: "1".into(),
            url: Some("https://m.example/@a/1".into()),
            uri: None,
            visibility: Some("public".into()),
            content: html.into(),
            created_at: Some(at("2027-07-04T12:00:05Z")),
            replies_count: 0,
            reblogs_count: 0,
            favourites_count: 0,
        };

        // Act
        let found = find_published(vec![status], sent, at("2027-07-04T12:00:00Z"));

        // Assert
        assert_eq!(found.map(|r| r.remote_id), Some("1".to_string()));
    }

    #[test]
    fn a_read_back_ignores_other_texts_and_posts_older_than_the_slot() {
        let mk = |id: &str, content: &str, created: &str| Status {
            id: id.into(),
            url: None,
            uri: None,
            visibility: None,
            content: content.into(),
            created_at: Some(at(created)),
            replies_count: 0,
            reblogs_count: 0,
            favourites_count: 0,
        };
        let slot = at("2027-07-04T12:00:00Z");
        let statuses = vec![
            mk("1", "<p>striking</p>", "2027-07-03T12:00:00Z"),
            mk("2", "<p>striking today</p>", "2027-07-04T12:00:01Z"),
        ];
        assert_eq!(find_published(statuses, "striking", slot), None);
    }

    #[test]
    fn server_urls_get_https_by_default_and_odd_input_is_refused() {
        assert_eq!(
            normalise_server("mastodon.social/").unwrap(),
            "https://mastodon.social"
        );
        assert_eq!(
            normalise_server(" http://127.0.0.1:3000 ").unwrap(),
            "http://127.0.0.1:3000"
        );
        assert!(normalise_server("ftp://x.org").is_err());
        assert!(normalise_server("https://").is_err());
    }

    #[test]
    fn the_authorize_url_carries_the_pkce_challenge_and_the_oob_redirect() {
        let app = App {
            client_id: "cid".into(),
            client_secret: "secret".into(),
        };
        let pkce = Pkce::new();

        let u = authorize_url(
            "https://m.example",
            &app,
            "write:statuses profile",
            Some(&pkce),
            "s",
            OOB_REDIRECT,
        );

        let parsed = url::Url::parse(&u).unwrap();
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["redirect_uri"], OOB_REDIRECT);
        assert_eq!(q["scope"], "write:statuses profile");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], pkce.challenge);
        assert!(!u.contains("secret"));
        assert_eq!(pkce.verifier.len(), 43);
    }

    #[test]
    fn nodeinfo_counts_as_the_servers_own_only_on_its_host_and_port() {
        assert!(same_host(
            "https://m.example",
            "https://M.example/nodeinfo/2.0"
        ));
        assert!(same_host(
            "http://127.0.0.1:3000",
            "http://127.0.0.1:3000/n"
        ));
        assert!(!same_host("https://m.example", "https://169.254.169.254/n"));
        assert!(!same_host(
            "https://m.example",
            "https://m.example.evil.test/n"
        ));
        assert!(!same_host(
            "http://127.0.0.1:3000",
            "http://127.0.0.1:3001/n"
        ));
        assert!(!same_host("https://m.example", "not a url"));
    }

    /// A loopback server answering `GET path` with JSON from `answer` (given its own base
    /// URL); counts connections.
    async fn json_server(
        answer: fn(&str, &str) -> Option<String>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let count = std::sync::Arc::new(AtomicUsize::new(0));
        let (seen, me) = (count.clone(), base.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                let me = me.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (status, body) = match answer(&me, &path) {
                        Some(b) => ("200 OK", b),
                        None => ("404 Not Found", "{}".to_string()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(body.as_bytes()).await;
                });
            }
        });
        (base, count)
    }

    #[tokio::test]
    async fn a_nodeinfo_href_on_another_host_is_not_fetched() {
        use std::sync::atomic::Ordering;
        // Arrange: a server whose nodeinfo is on itself, and one whose nodeinfo index
        // points at another address (a third server that counts its visitors).
        static ELSEWHERE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let (elsewhere, elsewhere_count) =
            json_server(|_, _| Some(r#"{"software":{"name":"evil"}}"#.into())).await;
        ELSEWHERE.set(elsewhere).unwrap();
        fn index(href: &str) -> String {
            format!(
                r#"{{"links":[{{"rel":"http://nodeinfo.diaspora.software/ns/schema/2.0","href":"{href}"}}]}}"#
            )
        }
        let (honest, _) = json_server(|me, path| match path {
            "/.well-known/nodeinfo" => Some(index(&format!("{me}/nodeinfo/2.0"))),
            "/nodeinfo/2.0" => Some(r#"{"software":{"name":"Mastodon"}}"#.into()),
            _ => None,
        })
        .await;
        let (pointing, _) = json_server(|_, path| match path {
            "/.well-known/nodeinfo" => {
                Some(index(&format!("{}/nodeinfo/2.0", ELSEWHERE.get().unwrap())))
            }
            _ => None,
        })
        .await;
        let http = Egress::new(true).guarded().clone();

        // Act
        let own = nodeinfo_software(&http, &honest).await;
        let other = nodeinfo_software(&http, &pointing).await;

        // Assert
        assert_eq!(own.as_deref(), Some("mastodon"));
        assert_eq!(other, None);
        assert_eq!(elsewhere_count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_local_acct_gets_the_servers_host_for_a_handle() {
        let me = Me {
            id: "1".into(),
            acct: "alice".into(),
            url: None,
        };
        assert_eq!(me.handle("https://m.example"), "alice@m.example");
        assert_eq!(me.handle("http://127.0.0.1:3000"), "alice@127.0.0.1:3000");
    }
}
