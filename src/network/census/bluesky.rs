//! Bluesky's side of the census: `app.bsky.feed.searchPosts` with `tag` on the AppView the
//! campaign names (lexicon:
//! <https://github.com/bluesky-social/atproto/blob/main/lexicons/app/bsky/feed/searchPosts.json>,
//! docs: <https://docs.bsky.app/docs/api/app-bsky-feed-search-posts>). A PDS alone does
//! not serve it. `tag` is matched without `#`; `sort=latest` with `since` (an RFC 3339
//! instant) reads what is new; `cursor` pages, `limit` at most 100. Bluesky's public
//! AppView refuses anonymous search (NETWORKS.md §2.10): the organiser names one that
//! answers. The key is the post's AT-URI, the author its handle.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

use super::{CensusError, MAX_PAGES, Poll, Sighting};
use crate::domain::NetworkKind;
use crate::network::Http;

/// The lexicon's largest page.
pub const PAGE: usize = 100;

/// Posts are indexed late: each search reaches back this far before the newest post seen.
const OVERLAP: chrono::Duration = chrono::Duration::minutes(15);

#[derive(Debug, Deserialize)]
struct Answer {
    #[serde(default)]
    posts: Vec<PostView>,
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostView {
    uri: String,
    author: Author,
    #[serde(default)]
    record: serde_json::Value,
    indexed_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize)]
struct Author {
    handle: String,
}

/// `https://bsky.app/profile/{handle}/post/{rkey}` for `at://did/app.bsky.feed.post/rkey`.
pub fn link(uri: &str, handle: &str) -> Option<String> {
    let rkey = uri
        .strip_prefix("at://")?
        .split('/')
        .collect::<Vec<_>>()
        .get(2..)
        .filter(|rest| rest.len() == 1 && !rest[0].is_empty())
        .map(|rest| rest[0].to_string())?;
    Some(format!("https://bsky.app/profile/{handle}/post/{rkey}"))
}

/// Posts tagged `tag` on `appview` since `cursor` (an RFC 3339 instant; `None`: what the
/// search keeps), at most [`MAX_PAGES`] pages of `page`.
pub async fn poll(
    http: &Http,
    appview: &str,
    tag: &str,
    cursor: Option<&str>,
    page: usize,
    now: DateTime<Utc>,
) -> Result<Poll, CensusError> {
    let since = cursor
        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
        .map(|t| t.with_timezone(&Utc));
    let enc = |s: &str| -> String {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).collect()
    };
    let mut newest = since;
    let mut out = Poll::default();
    let mut page_cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut url = format!(
            "{}/xrpc/app.bsky.feed.searchPosts?q={}&tag={}&sort=latest&limit={}",
            appview.trim_end_matches('/'),
            enc(&format!("#{tag}")),
            enc(tag),
            page.clamp(1, PAGE)
        );
        if let Some(s) = since {
            let from = (s - OVERLAP).to_rfc3339_opts(SecondsFormat::Millis, true);
            url.push_str(&format!("&since={}", enc(&from)));
        }
        if let Some(c) = &page_cursor {
            url.push_str(&format!("&cursor={}", enc(c)));
        }
        let response = http.get(&url).send().await?;
        let status = response.status().as_u16();
        if status == 429 {
            return Err(CensusError::RateLimited(crate::network::retry_after(
                response.headers(),
                now,
            )));
        }
        if !(200..300).contains(&status) {
            return Err(CensusError::Status(status));
        }
        let answer: Answer = response.json().await.map_err(|_| CensusError::Decode)?;
        for p in answer.posts {
            let posted_at = p
                .record
                .get("createdAt")
                .and_then(|v| v.as_str())
                .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or(p.indexed_at);
            newest = Some(newest.map_or(p.indexed_at, |n| n.max(p.indexed_at)));
            let handle = p.author.handle.to_lowercase();
            out.sightings.push(Sighting {
                network: NetworkKind::Bluesky,
                link: link(&p.uri, &handle),
                key: p.uri,
                author: handle,
                posted_at,
            });
        }
        match answer.cursor {
            Some(c) if !c.is_empty() && Some(&c) != page_cursor.as_ref() => page_cursor = Some(c),
            _ => break,
        }
    }
    out.cursor = newest.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posts_public_link_is_its_authors_profile_and_record_key() {
        assert_eq!(
            link("at://did:plc:abc/app.bsky.feed.post/3kxyz", "alice.test").as_deref(),
            Some("https://bsky.app/profile/alice.test/post/3kxyz")
        );
        assert_eq!(link("at://did:plc:abc/app.bsky.feed.post/", "a.test"), None);
        assert_eq!(link("https://x/y/z", "a.test"), None);
    }
}
