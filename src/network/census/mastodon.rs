//! The tag timeline of a Mastodon-API server, `GET /api/v1/timelines/tag/{tag}`
//! (<https://docs.joinmastodon.org/methods/timelines/#tag>): public without a token on
//! most servers, up to 40 statuses a page. The census reads forward with `min_id` from
//! the newest status it saw, so each poll reads only what is new, and it honours
//! `X-RateLimit-Remaining` / `X-RateLimit-Reset`
//! (<https://docs.joinmastodon.org/api/rate-limits/>). A status federates to many servers
//! under one `uri`: that is its key.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{CensusError, KEEP_IN_RESERVE, MAX_PAGES, Poll, Sighting};
use crate::domain::NetworkKind;
use crate::network::Http;
use crate::network::mastodon::errors::rate_limit_after;

/// Mastodon's largest page.
pub const PAGE: usize = 40;

#[derive(Debug, Deserialize)]
struct Status {
    id: String,
    uri: String,
    #[serde(default)]
    url: Option<String>,
    created_at: DateTime<Utc>,
    account: Account,
}

#[derive(Debug, Deserialize)]
struct Account {
    acct: String,
}

/// `user@host` for `acct` as `server` names it: local accounts carry no host.
pub fn author(acct: &str, server: &str) -> String {
    if acct.contains('@') {
        return acct.to_lowercase();
    }
    let host = url::Url::parse(server).ok().and_then(|u| {
        u.host_str().map(|h| match u.port() {
            Some(p) => format!("{h}:{p}"),
            None => h.to_string(),
        })
    });
    match host {
        Some(h) => format!("{acct}@{h}").to_lowercase(),
        None => acct.to_lowercase(),
    }
}

/// Statuses tagged `tag` on `server` newer than `cursor` (a status id; `None`: from the
/// start of the timeline), `page` a request, at most [`MAX_PAGES`] requests.
pub async fn poll(
    http: &Http,
    server: &str,
    tag: &str,
    cursor: Option<&str>,
    page: usize,
    now: DateTime<Utc>,
) -> Result<Poll, CensusError> {
    let tag_path: String =
        percent_encoding::utf8_percent_encode(tag, percent_encoding::NON_ALPHANUMERIC).collect();
    let mut newest = cursor.unwrap_or("0").to_string();
    let mut out = Poll::default();
    for _ in 0..MAX_PAGES {
        let url = format!(
            "{}/api/v1/timelines/tag/{tag_path}?limit={}&min_id={}",
            server.trim_end_matches('/'),
            page.clamp(1, PAGE),
            percent_encoding::utf8_percent_encode(&newest, percent_encoding::NON_ALPHANUMERIC)
        );
        let response = http.get(&url).send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        if status == 429 {
            return Err(CensusError::RateLimited(rate_limit_after(&headers, now)));
        }
        if !(200..300).contains(&status) {
            return Err(CensusError::Status(status));
        }
        let statuses: Vec<Status> = response.json().await.map_err(|_| CensusError::Decode)?;
        let read = statuses.len();
        for s in statuses {
            // With `min_id` the page is the oldest statuses after it, newest first.
            if newer(&s.id, &newest) {
                newest = s.id.clone();
            }
            out.sightings.push(Sighting {
                network: NetworkKind::Mastodon,
                link: s.url.clone().or_else(|| Some(s.uri.clone())),
                key: s.uri,
                author: author(&s.account.acct, server),
                posted_at: s.created_at,
            });
        }
        out.cursor = (newest != "0").then(|| newest.clone());
        let remaining = headers
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok());
        if remaining.is_some_and(|r| r < KEEP_IN_RESERVE) {
            out.pause = Some(
                rate_limit_after(&headers, now).unwrap_or(std::time::Duration::from_secs(5 * 60)),
            );
            break;
        }
        if read < page.clamp(1, PAGE) {
            break;
        }
    }
    Ok(out)
}

/// Status ids are numbers as strings (snowflakes on Mastodon, counters elsewhere; some
/// servers use other sortable strings): longer is newer, then by text.
fn newer(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_acct_gets_the_polled_servers_host_and_a_remote_one_keeps_its_own() {
        assert_eq!(author("Alice", "https://m.example/"), "alice@m.example");
        assert_eq!(
            author("alice", "http://127.0.0.1:3000"),
            "alice@127.0.0.1:3000"
        );
        assert_eq!(
            author("bob@Other.example", "https://m.example"),
            "bob@other.example"
        );
    }

    #[test]
    fn a_longer_status_id_is_newer_than_a_shorter_one() {
        assert!(newer("10", "9"));
        assert!(newer("110000000000000001", "109999999999999999"));
        assert!(!newer("9", "10"));
        assert!(!newer("5", "5"));
    }
}
