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
//! One refresh per campaign runs at a time. Counts that are only older than [`MAX_AGE`]
//! are answered at once while it runs behind them (so changes made elsewhere show within
//! `MAX_AGE` plus one count); after a write through this server, or before the first
//! count, readers wait for it and share its result rather than all counting at once.

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
    /// A task counts again behind readers that were answered with aged counts.
    behind: std::sync::atomic::AtomicBool,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            latest: Mutex::new(None),
            refresh: tokio::sync::Mutex::new(()),
            behind: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

#[derive(Debug)]
struct Cached<T> {
    snapshot: Arc<T>,
    generation: u64,
    taken_at: DateTime<Utc>,
}

/// The slot of `c` in `slots`, made on first use.
fn slot_of<T>(slots: &Mutex<HashMap<CampaignId, Arc<Slot<T>>>>, c: &Campaign) -> Arc<Slot<T>> {
    let mut slots = crate::sync::lock(slots);
    // Looked up first: `entry` would copy the id on every read.
    match slots.get(&c.id) {
        Some(slot) => slot.clone(),
        None => slots.entry(c.id.clone()).or_default().clone(),
    }
}

/// Clears a slot's `behind` flag when dropped.
struct Behind<'a>(&'a std::sync::atomic::AtomicBool);

impl Drop for Behind<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// What a slot holds for a reader.
enum Found<T> {
    /// Counted under the current generation, less than [`MAX_AGE`] ago.
    Fresh(Arc<T>),
    /// Counted under the current generation, but longer ago.
    Aged(Arc<T>),
    /// Never counted, or counted before the last write through this server.
    Missing,
}

impl<T> Slot<T> {
    fn look(&self, generation: u64, now: DateTime<Utc>) -> Found<T> {
        let latest = crate::sync::lock(&self.latest);
        match latest.as_ref() {
            Some(c) if c.generation != generation => Found::Missing,
            Some(c) if c.taken_at <= now && now - c.taken_at < MAX_AGE => {
                Found::Fresh(c.snapshot.clone())
            }
            Some(c) => Found::Aged(c.snapshot.clone()),
            None => Found::Missing,
        }
    }
}

impl Counts {
    /// Something was written: the next read counts again.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The counts of `c`, at most [`MAX_AGE`] old (see [`Counts::through`]).
    pub async fn get(&self, state: &AppState, c: &Campaign) -> Result<Arc<Snapshot>, WebError> {
        let load = || {
            let (state, id) = (state.clone(), c.id.clone());
            async move { Snapshot::load(&state, super::campaign::find(&state, &id)?).await }
        };
        self.through(slot_of(&self.slots, c), state, load).await
    }

    /// The stats [`Report`] of `c`, at most [`MAX_AGE`] old (see [`Counts::through`]), as
    /// of the server's clock.
    pub async fn report(&self, state: &AppState, c: &Campaign) -> Result<Arc<Report>, WebError> {
        let load = || {
            let (state, id) = (state.clone(), c.id.clone());
            async move {
                let c = super::campaign::find(&state, &id)?;
                Report::compute(state.store.as_ref(), c, state.clock.now())
                    .await
                    .map_err(|e| WebError::Internal(e.into()))
            }
        };
        self.through(slot_of(&self.reports, c), state, load).await
    }

    /// The value in `slot` if fresh. If it was counted before the last write through this
    /// server, or never, it is loaded (by `load()`) by one task while the others wait. If
    /// it is only older than [`MAX_AGE`], it is answered at once while one task counts
    /// again behind it: counting a large campaign's report took 0.8 s, and every reader
    /// waited for it each second (p99 814 ms on the stats API). Counts are then at most
    /// `MAX_AGE` plus one count old. `load` is only called to count: a fresh read copies
    /// nothing.
    async fn through<T, F>(
        &self,
        slot: Arc<Slot<T>>,
        state: &AppState,
        load: impl FnOnce() -> F,
    ) -> Result<Arc<T>, WebError>
    where
        T: Send + Sync + 'static,
        F: std::future::Future<Output = Result<T, WebError>> + Send + 'static,
    {
        let generation = self.generation.load(Ordering::Acquire);
        match slot.look(generation, state.clock.now()) {
            Found::Fresh(s) => Ok(s),
            Found::Aged(s) => {
                if !slot.behind.swap(true, Ordering::AcqRel) {
                    let (counts, clock, load) = (state.counts.clone(), state.clock.clone(), load());
                    tokio::spawn(async move {
                        // Cleared however the count ends, a panic included: else no reader
                        // would ever start another.
                        let _behind = Behind(&slot.behind);
                        if let Err(e) = counts.refill(&slot, clock.as_ref(), load).await {
                            tracing::warn!(error = %e, "counting again failed; the last counts are shown meanwhile");
                        }
                    });
                }
                Ok(s)
            }
            Found::Missing => self.refill(&slot, state.clock.as_ref(), load()).await,
        }
    }

    /// Count into `slot` unless another task has just done it.
    async fn refill<T>(
        &self,
        slot: &Slot<T>,
        clock: &dyn crate::clock::Clock,
        load: impl std::future::Future<Output = Result<T, WebError>>,
    ) -> Result<Arc<T>, WebError> {
        let _refreshing = slot.refresh.lock().await;
        // Read the generation before counting: a write that lands during the count bumps it
        // and so makes this snapshot stale for the next reader.
        let generation = self.generation.load(Ordering::Acquire);
        let now = clock.now();
        if let Found::Fresh(s) = slot.look(generation, now) {
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

    fn found<T>(f: Found<T>) -> &'static str {
        match f {
            Found::Fresh(_) => "fresh",
            Found::Aged(_) => "aged",
            Found::Missing => "missing",
        }
    }

    #[test]
    fn a_snapshot_is_fresh_for_less_than_max_age_of_the_same_generation() {
        let t = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        let slot = cached(3, t);
        assert_eq!(found(slot.look(3, t)), "fresh");
        assert_eq!(
            found(slot.look(3, t + MAX_AGE - Duration::milliseconds(1))),
            "fresh"
        );
        assert_eq!(
            found(slot.look(3, t + MAX_AGE)),
            "aged",
            "older: answered while counted again"
        );
        assert_eq!(
            found(slot.look(4, t)),
            "missing",
            "a write since: readers wait for a new count"
        );
        assert_eq!(
            found(slot.look(3, t - Duration::seconds(5))),
            "aged",
            "a clock set back counts again"
        );
        assert_eq!(found(Slot::<Snapshot>::default().look(3, t)), "missing");
    }
}
