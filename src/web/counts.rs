//! The counts shown on the campaign page, the badge, the stats API and `/metrics`, kept for
//! up to [`MAX_AGE`] of the server's clock instead of being counted on every request.
//!
//! Counting is several `COUNT(*)` queries that grow with the campaign (a scan of the
//! signatures index), while a popular campaign page is read thousands of times a second.
//! So counts are eventual: at most [`MAX_AGE`] old for changes made elsewhere (the
//! dispatcher publishing, another process on a shared PostgreSQL). A write through this
//! web server that changes what is counted (a signature, a pledge confirmed, withdrawn or
//! deleted, an account removed, a confirmation link) marks the counts stale at once, so a
//! person who has just signed sees themselves counted. Nothing else does: a request
//! refused, or to a page that does not exist, must not let anyone make every reader count
//! again.
//!
//! One refresh per campaign runs at a time; readers that arrive meanwhile wait for it and
//! share its result rather than all counting at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use chrono::{DateTime, Duration, Utc};

use super::campaign::Counters;
use super::{AppState, WebError};
use crate::campaign::Campaign;
use crate::domain::{CampaignId, NetworkKind};
use crate::stats::Report;
use crate::store::OutboxCounts;

/// How old shown counts may be when nothing was written through this server.
pub const MAX_AGE: Duration = Duration::seconds(1);

/// Everything the counters, stats, badge and metrics show for one campaign.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub counters: Counters,
    pub posts: OutboxCounts,
    pub accounts_by_network: Vec<(NetworkKind, u64)>,
    /// With `[[peers]]`: this host and its verified peers (`federation::hosts`).
    pub across: Option<Across>,
}

/// The movement's verified total across hosts, as the pages, badge and widget show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Across {
    pub signatures: u64,
    pub strikers: u64,
    pub published: u64,
    /// Hosts counted, this one included.
    pub hosts: u64,
}

impl Snapshot {
    async fn load(state: &AppState, c: &Campaign) -> Result<Snapshot, WebError> {
        let store = &state.store;
        let posts = store.outbox_counts(&c.id).await?;
        let invitations = store
            .invite_counts(&c.id)
            .await?
            .iter()
            .map(|i| i.count)
            .sum();
        let counters = Counters {
            signatures: store.signature_count(&c.id).await?,
            strikers: store.active_pledge_count(&c.id, state.clock.now()).await?,
            published: posts.published,
            invitations,
        };
        let across = if state.settings.peers.is_empty() {
            None
        } else {
            let own = crate::federation::Figures {
                signatures: counters.signatures,
                strikers: counters.strikers,
                published: counters.published,
            };
            let h = crate::federation::hosts(store.as_ref(), &c.id, own).await?;
            Some(Across {
                signatures: h.signatures,
                strikers: h.strikers,
                published: h.published,
                hosts: h.counted_hosts,
            })
        };
        Ok(Snapshot {
            counters,
            posts,
            accounts_by_network: store.accounts_by_network(&c.id).await?,
            across,
        })
    }
}

/// The cache of [`Snapshot`]s, one per campaign, shared by all requests.
#[derive(Debug, Default)]
pub struct Counts {
    /// Bumped by every write through this server; a snapshot taken under an older value is
    /// stale.
    generation: AtomicU64,
    /// Campaign id -> its slot; slots are made on first read and never removed (the
    /// campaigns are fixed at startup).
    slots: Mutex<HashMap<CampaignId, Arc<Slot<Snapshot>>>>,
    /// Campaign id -> the slot of its full [`Report`] (the stats API and page), kept apart
    /// so the campaign page's counters never wait for the heavier report.
    reports: Mutex<HashMap<CampaignId, Arc<Slot<Report>>>>,
    /// Campaign id -> its plain page as rendered for one snapshot and countdown text.
    pages: Mutex<HashMap<String, RenderedPage>>,
}

#[derive(Debug)]
struct RenderedPage {
    snapshot: Arc<Snapshot>,
    starts_in: String,
    /// The page cut where each visitor's own CSRF token goes.
    pieces: Arc<[Bytes]>,
}

#[derive(Debug)]
struct Slot<T> {
    /// The last snapshot; held only to copy the `Arc` in or out, never across an await.
    latest: Mutex<Option<Cached<T>>>,
    /// Held by the one task refreshing this campaign's counts.
    refresh: tokio::sync::Mutex<()>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            latest: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
        }
    }
}

#[derive(Debug)]
struct Cached<T> {
    snapshot: Arc<T>,
    generation: u64,
    taken_at: DateTime<Utc>,
}

impl<T> Slot<T> {
    fn fresh(&self, generation: u64, now: DateTime<Utc>) -> Option<Arc<T>> {
        let latest = crate::sync::lock(&self.latest);
        latest
            .as_ref()
            .filter(|c| {
                c.generation == generation && c.taken_at <= now && now - c.taken_at < MAX_AGE
            })
            .map(|c| c.snapshot.clone())
    }
}

impl Counts {
    /// Something was written: the next read counts again.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The counts of `c`, at most [`MAX_AGE`] old.
    pub async fn get(&self, state: &AppState, c: &Campaign) -> Result<Arc<Snapshot>, WebError> {
        let slot = {
            let mut slots = crate::sync::lock(&self.slots);
            // Looked up first: `entry` would copy the id on every read.
            match slots.get(&c.id) {
                Some(slot) => slot.clone(),
                None => slots.entry(c.id.clone()).or_default().clone(),
            }
        };
        self.through(&slot, state, Snapshot::load(state, c)).await
    }

    /// The stats [`Report`] of `c`, at most [`MAX_AGE`] old, as of the server's clock.
    pub async fn report(&self, state: &AppState, c: &Campaign) -> Result<Arc<Report>, WebError> {
        let slot = {
            let mut slots = crate::sync::lock(&self.reports);
            // Looked up first: `entry` would copy the id on every read.
            match slots.get(&c.id) {
                Some(slot) => slot.clone(),
                None => slots.entry(c.id.clone()).or_default().clone(),
            }
        };
        let load = async {
            Report::compute(state.store.as_ref(), c, state.clock.now())
                .await
                .map_err(|e| WebError::Internal(e.into()))
        };
        self.through(&slot, state, load).await
    }

    /// The value in `slot` if fresh, else `load`ed by one task while the others wait.
    async fn through<T>(
        &self,
        slot: &Slot<T>,
        state: &AppState,
        load: impl std::future::Future<Output = Result<T, WebError>>,
    ) -> Result<Arc<T>, WebError> {
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(s) = slot.fresh(generation, state.clock.now()) {
            return Ok(s);
        }
        let _refreshing = slot.refresh.lock().await;
        // Read the generation before counting: a write that lands during the count bumps it
        // and so makes this snapshot stale for the next reader.
        let generation = self.generation.load(Ordering::Acquire);
        let now = state.clock.now();
        if let Some(s) = slot.fresh(generation, now) {
            return Ok(s);
        }
        let snapshot = Arc::new(load.await?);
        *crate::sync::lock(&slot.latest) = Some(Cached {
            snapshot: snapshot.clone(),
            generation,
            taken_at: now,
        });
        Ok(snapshot)
    }
}

impl Counts {
    /// The campaign page rendered for exactly this snapshot and countdown text, if kept.
    pub fn page(
        &self,
        campaign: &str,
        snapshot: &Arc<Snapshot>,
        starts_in: &str,
    ) -> Option<Arc<[Bytes]>> {
        let pages = crate::sync::lock(&self.pages);
        pages
            .get(campaign)
            .filter(|p| Arc::ptr_eq(&p.snapshot, snapshot) && p.starts_in == starts_in)
            .map(|p| p.pieces.clone())
    }

    /// Keep a rendered page for [`Counts::page`].
    pub fn keep_page(
        &self,
        campaign: &str,
        snapshot: &Arc<Snapshot>,
        starts_in: &str,
        pieces: Vec<Bytes>,
    ) {
        let mut pages = crate::sync::lock(&self.pages);
        pages.insert(
            campaign.to_string(),
            RenderedPage {
                snapshot: snapshot.clone(),
                starts_in: starts_in.to_string(),
                pieces: pieces.into(),
            },
        );
    }
}

/// The routes (as the router names them) whose accepted POSTs (answered 2xx or 3xx) change
/// the counts: the layer every answer passes through ([`super::layers`]) then marks them
/// stale.
pub(super) const COUNTED_WRITES: &[&str] = &[
    "/c/{id}/sign",
    "/c/{id}/join/confirm",
    "/me/withdraw",
    "/me/accounts/remove",
    "/me/delete",
    "/api/v1/campaigns/{id}/signatures",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(generation: u64, taken_at: DateTime<Utc>) -> Slot<Snapshot> {
        let slot = Slot::default();
        *slot.latest.lock().unwrap() = Some(Cached {
            snapshot: Arc::new(Snapshot {
                counters: Counters {
                    signatures: 1,
                    strikers: 0,
                    published: 0,
                    invitations: 0,
                },
                posts: OutboxCounts::default(),
                accounts_by_network: vec![],
                across: None,
            }),
            generation,
            taken_at,
        });
        slot
    }

    #[test]
    fn a_snapshot_is_fresh_for_less_than_max_age_of_the_same_generation() {
        let t = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let slot = cached(3, t);
        assert!(slot.fresh(3, t).is_some());
        assert!(
            slot.fresh(3, t + MAX_AGE - Duration::milliseconds(1))
                .is_some()
        );
        assert!(slot.fresh(3, t + MAX_AGE).is_none());
        assert!(slot.fresh(4, t).is_none(), "a write since makes it stale");
        assert!(
            slot.fresh(3, t - Duration::seconds(5)).is_none(),
            "a clock set back makes it stale"
        );
    }
}
