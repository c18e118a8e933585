//! The hashtag census task: every few minutes, under a lease (one process at a time on a
//! shared database), each campaign's `[census]` sources are read
//! (`network::census`), each author is hashed with this host's key
//! (`Vault::keyed_hash`), marked when it is one of this host's own accounts, and the new
//! posts are stored (`store::Census`). Each source is read on its own
//! ([`super::isolate_async`]): one failing or misbehaving server never stops the others,
//! and a source that asks to wait is left alone until then. Errors are logged in picket's
//! own words; remote bodies are never repeated.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::campaign::Campaign;
use crate::clock::Clock;
use crate::crypto::Vault;
use crate::domain::NetworkKind;
use crate::network::Http;
use crate::network::census::{self, CensusError, Poll};
use crate::store::{CensusPost, Store};

/// The name of the lease that lets one process at a time poll.
const LEASE: &str = "census";

/// The purpose label of author hashes (see [`Vault::keyed_hash`]).
const AUTHOR_PURPOSE: &str = "census author";

/// The longest one source's poll may take.
const SOURCE_TIMEOUT: Duration = Duration::from_secs(60);

/// A source failed this many times in a row waits this long before it is tried again.
const FAILING_PAUSE: Duration = Duration::from_secs(30 * 60);

/// The salted hash an author is kept as: the network and the handle, lowercased.
pub fn author_hash(vault: &Vault, network: NetworkKind, author: &str) -> String {
    vault.keyed_hash(
        AUTHOR_PURPOSE,
        &format!("{}:{}", network.as_str(), author.trim().to_lowercase()),
    )
}

/// Where one source's reading stands. The cursor is also saved in the store (read back
/// before each poll, so a restart, or another process taking the lease, reads on from
/// it); the pauses are this process's own. Posts seen twice are recognised by their key
/// anyway.
#[derive(Debug, Default, Clone)]
struct SourceState {
    cursor: Option<String>,
    not_before: Option<DateTime<Utc>>,
    failures: u32,
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Sources read.
    pub read: usize,
    /// Sources that failed.
    pub failed: usize,
    /// Sources left alone this round (waiting for their rate limit or after failures).
    pub waiting: usize,
    /// Posts stored for the first time.
    pub new_posts: u64,
}

/// The census of every campaign, one round at a time.
pub struct CensusTask {
    /// Campaign-file addresses are the organiser's, typed on this host: the trusted client.
    pub http: Http,
    pub vault: Vault,
    /// Statuses or posts a request asks for (the APIs' largest page by default).
    pub page: usize,
    sources: HashMap<(String, String), SourceState>,
}

impl CensusTask {
    pub fn new(http: Http, vault: Vault) -> CensusTask {
        CensusTask {
            http,
            vault,
            page: census::mastodon::PAGE,
            sources: HashMap::new(),
        }
    }

    /// Read every campaign's sources once and store what is new.
    pub async fn round(
        &mut self,
        store: &dyn Store,
        campaigns: &[Campaign],
        clock: &dyn Clock,
    ) -> Round {
        let mut round = Round::default();
        let own: HashSet<String> = match store.own_handles().await {
            Ok(handles) => handles
                .iter()
                .map(|(n, h)| author_hash(&self.vault, *n, h))
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "census: could not read this host's accounts; trying again next round");
                return round;
            }
        };
        for c in campaigns.iter().filter(|c| !c.census.is_empty()) {
            let tag = c.hashtag.as_str().to_string();
            let mut sources: Vec<(NetworkKind, String)> = Vec::new();
            sources.extend(
                c.census
                    .mastodon
                    .iter()
                    .map(|s| (NetworkKind::Mastodon, s.clone())),
            );
            sources.extend(
                c.census
                    .nostr
                    .iter()
                    .map(|s| (NetworkKind::Nostr, s.clone())),
            );
            sources.extend(
                c.census
                    .bluesky_appview
                    .iter()
                    .map(|s| (NetworkKind::Bluesky, s.clone())),
            );
            for (network, source) in sources {
                let key = (c.id.to_string(), source.clone());
                let mut state = self.sources.get(&key).cloned().unwrap_or_default();
                match store.census_cursor(c.id.as_str(), &source).await {
                    Ok(Some(saved)) => state.cursor = Some(saved),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(campaign = %c.id, source = source.as_str(), error = %e, "census: the saved cursor could not be read; using this process's own")
                    }
                }
                let now = clock.now();
                if state.not_before.is_some_and(|t| t > now) {
                    round.waiting += 1;
                    continue;
                }
                let read =
                    super::isolate_async(self.read(network, &source, &tag, &state, now)).await;
                let state = self.sources.entry(key).or_default();
                let poll = match read {
                    Ok(Ok(poll)) => poll,
                    Ok(Err(e)) => {
                        round.failed += 1;
                        state.failures += 1;
                        let wait = match &e {
                            CensusError::RateLimited(after) => {
                                after.unwrap_or(Duration::from_secs(5 * 60))
                            }
                            _ if state.failures >= 3 => FAILING_PAUSE,
                            _ => Duration::ZERO,
                        };
                        state.not_before = chrono::Duration::from_std(wait).ok().map(|w| now + w);
                        tracing::warn!(campaign = %c.id, source = source.as_str(), error = %e, "census: a source could not be read");
                        continue;
                    }
                    Err(panic) => {
                        round.failed += 1;
                        state.failures += 1;
                        tracing::error!(campaign = %c.id, source = source.as_str(), error = %panic, "census: a source could not be read");
                        continue;
                    }
                };
                round.read += 1;
                let posts: Vec<CensusPost> = poll
                    .sightings
                    .iter()
                    .map(|s| {
                        let author_hash = author_hash(&self.vault, s.network, &s.author);
                        CensusPost {
                            network: s.network,
                            key: s.key.clone(),
                            own: own.contains(&author_hash),
                            author_hash,
                            posted_at: s.posted_at,
                            link: s.link.clone(),
                        }
                    })
                    .collect();
                match store
                    .record_census(c.id.as_str(), &posts, clock.now())
                    .await
                {
                    Ok(n) => {
                        round.new_posts += n;
                        // The cursor moves only once what it covers is stored.
                        state.failures = 0;
                        if let Some(cursor) = poll.cursor {
                            if let Err(e) = store
                                .save_census_cursor(c.id.as_str(), &source, &cursor, clock.now())
                                .await
                            {
                                tracing::warn!(campaign = %c.id, source = source.as_str(), error = %e, "census: the cursor could not be saved; a restart reads this again");
                            }
                            state.cursor = Some(cursor);
                        }
                        state.not_before = poll
                            .pause
                            .and_then(|p| chrono::Duration::from_std(p).ok())
                            .map(|p| now + p);
                    }
                    Err(e) => {
                        round.failed += 1;
                        tracing::error!(campaign = %c.id, error = %e, "census: could not store what a source read");
                    }
                }
            }
        }
        round
    }

    async fn read(
        &self,
        network: NetworkKind,
        source: &str,
        tag: &str,
        state: &SourceState,
        now: DateTime<Utc>,
    ) -> Result<Poll, CensusError> {
        let cursor = state.cursor.as_deref();
        let polled = async {
            match network {
                NetworkKind::Mastodon => {
                    census::mastodon::poll(&self.http, source, tag, cursor, self.page, now).await
                }
                NetworkKind::Nostr => {
                    census::nostr::poll(&self.http, source, tag, cursor, SOURCE_TIMEOUT).await
                }
                _ => census::bluesky::poll(&self.http, source, tag, cursor, self.page, now).await,
            }
        };
        tokio::time::timeout(SOURCE_TIMEOUT, polled)
            .await
            .map_err(|_| CensusError::Relay("the poll timed out".into()))?
    }

    /// A round now, then every `every`, until `stop`, while this process holds the census
    /// lease. On the way out the lease is given up.
    pub async fn run(
        mut self,
        store: &dyn Store,
        campaigns: &[Campaign],
        clock: &dyn Clock,
        every: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<()> {
        if campaigns.iter().all(|c| c.census.is_empty()) {
            // Nothing to poll: wait for the end without holding the lease.
            stop.cancelled().await;
            return Ok(());
        }
        let me = format!("census-{}-{}", std::process::id(), rand::random::<u32>());
        let lease = chrono::Duration::from_std(every * 2 + SOURCE_TIMEOUT)
            .unwrap_or(chrono::Duration::minutes(20));
        while !stop.is_cancelled() {
            let now = clock.now();
            match store.try_lease(LEASE, &me, now, now + lease).await {
                Ok(true) => {
                    let r = self.round(store, campaigns, clock).await;
                    tracing::info!(
                        read = r.read,
                        failed = r.failed,
                        waiting = r.waiting,
                        new_posts = r.new_posts,
                        "census round"
                    );
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "could not take the census lease"),
            }
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
        if let Err(e) = store.release_lease(LEASE, &me).await {
            tracing::warn!(error = %e, "could not release the census lease; it runs out by itself");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_author_hashes_the_same_whatever_its_case_and_differs_across_networks() {
        let v = Vault::from_key_bytes(&[3; 32]);
        let a = author_hash(&v, NetworkKind::Mastodon, "Alice@M.example");
        assert_eq!(a, author_hash(&v, NetworkKind::Mastodon, "alice@m.example"));
        assert_ne!(a, author_hash(&v, NetworkKind::Bluesky, "alice@m.example"));
        assert!(!a.contains("alice"));
    }
}
