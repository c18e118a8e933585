//! The Mastodon client API adapter: Mastodon, Pleroma/Akkoma, GoToSocial, Friendica,
//! snac and the other servers that speak it (facts in `NETWORKS.md` §1).
//!
//! [`Mastodon`] is the [`Network`] the dispatcher posts through: `POST /api/v1/statuses`
//! with `Idempotency-Key`, delete, verify, engagement. Beside it:
//! - [`errors`]: what a non-2xx answer means for the dispatcher (retry when, reconnect,
//!   give up), rate-limit headers;
//! - [`enroll`]: the HTTP calls `picket account add mastodon` and the web's connect step
//!   make (discover, nodeinfo, OAuth app registration, token exchange), here because
//!   this module is the only place that speaks HTTP to Mastodon servers.
//!
//! Credentials are a JSON [`Credentials`] document (token, the account's own id, the
//! server's software and limits, the OAuth app it was enrolled with), sealed by the vault.
//! Tokens never expire on these servers, so nothing is ever refreshed or re-saved.
//!
//! A post with an image (the strike card) uploads it first (`POST /api/v2/media` with its
//! alt text as `description`; a 202 is still processing and is polled at
//! `GET /api/v1/media/:id`) and names it in `media_ids`. The status keeps its
//! `Idempotency-Key`, so a retry that re-uploads leaves at most an unattached upload
//! behind (servers delete those), never a second post.
//!
//! - [`schedule`]: hand-off to the server's own scheduler (`scheduled_at`) for accounts
//!   that chose it; [`Network::publish`] itself never sends `scheduled_at` (GoToSocial
//!   before 0.20 backdates a past instant without federating it).
//!
//! Not here: census of hashtags across servers.

pub mod enroll;
pub mod errors;
pub mod schedule;

pub use enroll::{
    App, EnrollError, Me, OOB_REDIRECT, Pkce, ServerInfo, authorize_url, discover, exchange_code,
    normalise_server, register_app, verify_token,
};
use errors::Call;
pub use errors::rate_limit_after;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::guarded::{Egress, Http};
use super::{
    AccountRef, Engagement, Identity, Network, OutgoingPost, PublishError, ReadBack, Reason,
    Receipt,
};
use crate::clock::Clock;
use crate::compose::{self, Limit};
use crate::domain::NetworkKind;
use enroll::verify_token_at;
use errors::error_of;

/// Mastodon keeps an `Idempotency-Key` for one hour; past this age a retry reads back
/// first, because the key may have expired on the server.
const KEY_TRUSTED_FOR: chrono::Duration = chrono::Duration::minutes(50);

/// How often an upload still being processed (202) is asked about again.
const MEDIA_POLL: Duration = Duration::from_millis(500);

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
    /// Whether an idempotency key is still trusted and how long a rate limit lasts are
    /// counted from this clock's now.
    clock: Arc<dyn Clock>,
}

impl Mastodon {
    /// `METHOD /api/v1/statuses/{remote_id}` on the account's server, with its token.
    async fn on_status(
        &self,
        account: &AccountRef,
        method: Method,
        remote_id: &str,
    ) -> Result<super::guarded::Response, PublishError> {
        let creds = Credentials::parse(account.credentials.expose());
        let url = format!(
            "{}/api/v1/statuses/{}",
            base(&account.server),
            path_segment(remote_id)
        );
        self.http(account)
            .request(method, &url)
            .bearer_auth(&creds.token)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| super::transport_error(&e))
    }

    pub fn new(egress: Egress, clock: Arc<dyn Clock>) -> Self {
        Mastodon { egress, clock }
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

/// A `MediaAttachment`, as much of it as picket reads.
#[derive(Deserialize)]
struct Media {
    id: String,
    /// `null` while the server is still processing the file.
    #[serde(default)]
    url: Option<String>,
}

impl Mastodon {
    /// Upload `image` as the account's media, wait until the server has processed it, and
    /// give its id (<https://docs.joinmastodon.org/methods/media/#v2>).
    async fn upload(
        &self,
        account: &AccountRef,
        creds: &Credentials,
        image: &super::Image,
        within: Duration,
    ) -> Result<String, PublishError> {
        let deadline = tokio::time::Instant::now() + within;
        let file = reqwest::multipart::Part::bytes(image.bytes().to_vec())
            .file_name("strike-card.png")
            .mime_str("image/png")
            .map_err(|e| {
                PublishError::Rejected(
                    Reason::new("the post's image could not be attached")
                        .with_detail(e.to_string()),
                )
            })?;
        let form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("description", image.alt.clone());
        let resp = self
            .http(account)
            .post(&format!("{}/api/v2/media", base(&account.server)))
            .bearer_auth(&creds.token)
            .timeout(within)
            .multipart(form)
            .send()
            .await
            .map_err(|e| super::transport_error(&e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(error_of(resp, Call::Media, self.clock.now()).await);
        }
        let mut media: Media = resp.json().await.map_err(|e| PublishError::Retry {
            reason: Reason::new("the server's answer to the image upload was unreadable")
                .with_detail(e.to_string()),
            after: None,
            maybe_sent: false,
        })?;
        // 202 Accepted: "url will be null until processed"; GET /api/v1/media/:id answers
        // 206 while processing and 200 once done.
        while media.url.is_none() {
            if tokio::time::Instant::now() + MEDIA_POLL >= deadline {
                return Err(PublishError::retry(
                    "the server was still processing the post's image",
                ));
            }
            tokio::time::sleep(MEDIA_POLL).await;
            let resp = self
                .http(account)
                .get(&format!(
                    "{}/api/v1/media/{}",
                    base(&account.server),
                    path_segment(&media.id)
                ))
                .bearer_auth(&creds.token)
                .timeout(deadline.saturating_duration_since(tokio::time::Instant::now()))
                .send()
                .await
                .map_err(|e| super::transport_error(&e))?;
            match resp.status() {
                StatusCode::OK => {
                    media = resp.json().await.map_err(|e| PublishError::Retry {
                        reason: Reason::new("the server's answer about the image was unreadable")
                            .with_detail(e.to_string()),
                        after: None,
                        maybe_sent: false,
                    })?;
                    // A server that answers 200 without a URL has nothing more to say.
                    if media.url.is_none() {
                        break;
                    }
                }
                StatusCode::PARTIAL_CONTENT => {}
                _ => return Err(error_of(resp, Call::Media, self.clock.now()).await),
            }
        }
        Ok(media.id)
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

    fn takes_images(&self) -> bool {
        true
    }

    fn measure(&self, account: &AccountRef, text: &str) -> compose::Measure {
        measure_for_server(&Credentials::parse(account.credentials.expose()), text)
    }

    fn scheduler(&self) -> Option<&dyn schedule::ServerScheduler> {
        Some(self)
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
        let stale_key = self.clock.now() - post.scheduled_at > KEY_TRUSTED_FOR;
        if post.outcome_unknown && (!creds.honours_idempotency_key() || stale_key) {
            match self.find_recent(account, &creds, post).await {
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
        // Never `scheduled_at` here: a past instant is a backdated import on GoToSocial.
        let mut body = serde_json::json!({ "status": post.text, "visibility": "public" });
        let mut timeout = post.timeout;
        if let Some(image) = &post.image {
            let started = std::time::Instant::now();
            let media = self.upload(account, &creds, image, post.timeout).await?;
            body["media_ids"] = serde_json::json!([media]);
            let left = post.timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(PublishError::retry(
                    "the post's image took the whole time the post had",
                ));
            }
            timeout = left;
        }
        let resp = self
            .http(account)
            .post(&format!("{}/api/v1/statuses", base(&account.server)))
            .bearer_auth(&creds.token)
            .header("Idempotency-Key", &post.idempotency_key)
            .timeout(timeout)
            .json(&body)
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
        Err(error_of(resp, Call::Post, self.clock.now()).await)
    }

    /// The account's recent statuses, matched on the post's exact text (the same slot
    /// always renders the same text) and posted no earlier than its slot.
    #[tracing::instrument(skip_all, fields(network = "mastodon", account = account.id))]
    async fn read_back(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<ReadBack, PublishError> {
        let creds = Credentials::parse(account.credentials.expose());
        Ok(match self.find_recent(account, &creds, post).await? {
            Some(found) => ReadBack::Found(found),
            None => ReadBack::Absent,
        })
    }

    #[tracing::instrument(skip_all, fields(network = "mastodon", account = account.id))]
    async fn delete(&self, account: &AccountRef, remote_id: &str) -> Result<(), PublishError> {
        let resp = self.on_status(account, Method::DELETE, remote_id).await?;
        let status = resp.status();
        // Already gone is what the caller wanted.
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(error_of(resp, Call::Delete, self.clock.now()).await)
    }

    #[tracing::instrument(skip_all, fields(network = "mastodon", account = account.id))]
    async fn verify(&self, account: &AccountRef) -> Result<Identity, PublishError> {
        let creds = Credentials::parse(account.credentials.expose());
        let me = verify_token_at(
            self.http(account),
            &account.server,
            &creds.token,
            self.clock.now(),
        )
        .await?;
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
        let resp = self.on_status(account, Method::GET, remote_id).await?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(error_of(resp, Call::Read, self.clock.now()).await);
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

    /// `followers_count` of `verify_credentials`: the account's own, one request.
    #[tracing::instrument(skip_all, fields(network = "mastodon", account = account.id))]
    async fn followers(&self, account: &AccountRef) -> Result<Option<u64>, PublishError> {
        let creds = Credentials::parse(account.credentials.expose());
        let me = verify_token_at(
            self.http(account),
            &account.server,
            &creds.token,
            self.clock.now(),
        )
        .await?;
        Ok(me.followers_count)
    }
}

impl Mastodon {
    /// The account's recent status carrying exactly this text, posted no earlier than the
    /// slot (minus a margin for clock skew): an earlier attempt that did land.
    async fn find_recent(
        &self,
        account: &AccountRef,
        creds: &Credentials,
        post: &OutgoingPost,
    ) -> Result<Option<Receipt>, PublishError> {
        self.read_back_text(account, creds, &post.text, post.scheduled_at, post.timeout)
            .await
    }

    /// [`Mastodon::read_back`] for any text: also what a handed-off post became.
    async fn read_back_text(
        &self,
        account: &AccountRef,
        creds: &Credentials,
        text: &str,
        not_before: DateTime<Utc>,
        timeout: Duration,
    ) -> Result<Option<Receipt>, PublishError> {
        let account_id = match &creds.account_id {
            Some(id) => id.clone(),
            None => {
                verify_token_at(
                    self.http(account),
                    &account.server,
                    &creds.token,
                    self.clock.now(),
                )
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
            .timeout(timeout)
            // Twenty long statuses (some servers allow 50,000 characters) may pass 1 MiB;
            // a read-back cut off would stall the post until its window closed.
            .max_body(READ_BACK_MAX_BYTES)
            .send()
            .await
            .map_err(|e| super::transport_error(&e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(error_of(resp, Call::Read, self.clock.now()).await);
        }
        let statuses: Vec<Status> = resp.json().await.map_err(|e| PublishError::Retry {
            reason: Reason::new("the server's list of recent posts was unreadable")
                .with_detail(e.to_string()),
            after: None,
            maybe_sent: true,
        })?;
        Ok(find_published(statuses, text, not_before))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn creds(software: Option<&str>, max: Option<usize>) -> Credentials {
        Credentials {
            software: software.map(str::to_string),
            max_characters: max,
            ..Credentials::parse("t")
        }
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

    /// A loopback server that answers every request with `head` (status line and
    /// headers) and an empty JSON body.
    async fn answering(head: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let mut buf = vec![0u8; 8192];
                let _ = conn.read(&mut buf).await;
                let answer = format!(
                    "{head}\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            }
        });
        base
    }

    #[tokio::test]
    async fn a_rate_limit_reset_is_counted_from_the_adapters_clock() {
        // Arrange: the adapter's clock stands at noon on strike day; the server says its
        // window resets five minutes later.
        let noon = at("2027-07-04T12:00:00Z");
        let server =
            answering("HTTP/1.1 429 Too Many Requests\r\nx-ratelimit-reset: 2027-07-04T12:05:00Z")
                .await;
        let clock = crate::clock::ManualClock::new(noon);
        let adapter = Mastodon::new(Egress::new(false), Arc::new(clock));
        let account = AccountRef {
            id: 1,
            handle: "a".into(),
            server,
            credentials: crate::domain::Secret::new(creds(Some("mastodon"), None).to_json()),
            trusted: true,
        };
        let post = OutgoingPost {
            text: "Striking today".into(),
            idempotency_key: "k".into(),
            scheduled_at: noon,
            slot_key: "slot".into(),
            outcome_unknown: false,
            timeout: Duration::from_secs(5),
            image: None,
        };

        // Act
        let e = adapter.publish(&account, &post).await.unwrap_err();

        // Assert: five minutes, whatever the machine's own clock says.
        let PublishError::Retry { after, .. } = e else {
            panic!("a 429 is retried: {e:?}");
        };
        assert_eq!(after, Some(Duration::from_secs(300)));
    }
}
