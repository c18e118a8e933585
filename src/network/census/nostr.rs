//! Nostr's side of the census: a `REQ` with a `#t` filter (NIP-01, tags NIP-24:
//! <https://github.com/nostr-protocol/nips/blob/master/01.md>) for kind-1 notes on each
//! listed relay, read until `EOSE` and closed. Hashtags in `t` tags are lowercase. Events
//! are checked (id and signature) before they count; the event id is the key, so one note
//! on several relays counts once, and the author is its key as an `npub` (the form this
//! host keeps Nostr handles in).

use std::time::Duration;

use chrono::DateTime;
use serde_json::json;

use super::{CensusError, Poll, Sighting};
use crate::domain::NetworkKind;
use crate::network::Http;
use crate::network::nostr::{nevent_uri, npub, relay};

/// At most this many notes per query; relays clamp it to their own `max_limit` anyway.
const LIMIT: u64 = 500;

/// Notes reach relays late (clocks, rebroadcasts): each query reaches back this far
/// before the newest note seen; notes seen twice are recognised by their id.
const OVERLAP_SECS: u64 = 15 * 60;

/// Notes tagged `tag` on `relay_url` since `cursor` (a Unix time; `None`: all it keeps).
pub async fn poll(
    http: &Http,
    relay_url: &str,
    tag: &str,
    cursor: Option<&str>,
    timeout: Duration,
) -> Result<Poll, CensusError> {
    let since = cursor.and_then(|c| c.parse::<u64>().ok());
    let mut filter = json!({"kinds": [1], "#t": [tag.to_lowercase()], "limit": LIMIT});
    if let Some(s) = since {
        filter["since"] = json!(s.saturating_sub(OVERLAP_SECS));
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let events = relay::query(http, relay_url, &[filter], deadline)
        .await
        .map_err(|e| {
            // The relay's own words (a CLOSED reason) stay out of logs and pages.
            if e.starts_with("subscription closed") {
                CensusError::Relay("it closed the subscription".into())
            } else {
                CensusError::Relay(e)
            }
        })?;
    let mut newest = since.unwrap_or(0);
    let mut out = Poll::default();
    for ev in events {
        let created = ev.created_at.as_secs();
        let Some(posted_at) = DateTime::from_timestamp(created as i64, 0) else {
            continue;
        };
        newest = newest.max(created);
        out.sightings.push(Sighting {
            network: NetworkKind::Nostr,
            key: ev.id.to_hex(),
            author: npub(&ev.pubkey),
            posted_at,
            link: Some(nevent_uri(ev.id, ev.pubkey, &[relay_url.to_string()])),
        });
    }
    out.cursor = (newest > 0).then(|| newest.to_string());
    Ok(out)
}
