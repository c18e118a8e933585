//! The peers task: every `federation_refresh_secs`, for each campaign hosted here and each
//! `[[peers]]` entry, read the peer's `GET /c/{id}/checkpoint` through the guarded client,
//! judge it against the last good checkpoint kept (`federation::checkpoint::judge`) and
//! store the peer's status.
//!
//! Each (campaign, peer) pair runs its own loop ([`super::isolate_async`] around each
//! check): a peer that hangs until its timeout, answers garbage or makes a check fail only
//! delays or flags itself, never the others. Errors are logged in picket's own words;
//! a peer's answer is never repeated.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::campaign::Campaign;
use crate::clock::Clock;
use crate::config::PeerSettings;
use crate::domain::Secret;
use crate::federation::checkpoint::{self, Checkpoint, Expected};
use crate::federation::sketch::SketchNote;
use crate::federation::{Figures, HostKey, Status, VerifierKey, declaration_hash};
use crate::network::Http;
use crate::network::peer::{FetchError, get_checkpoint};
use crate::store::{PeerState, Store, StoreError};

/// A peer that has not answered for this many refresh intervals is `unreachable`, before
/// that `stale`.
pub const STALE_ROUNDS: u32 = 5;

/// Reads every peer's checkpoints.
pub struct FederationTask {
    pub http: Http,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub campaigns: Arc<Vec<Campaign>>,
    pub peers: Vec<PeerSettings>,
    pub every: Duration,
    /// This host's key and address, to make its own sketch (with `distinct_key`).
    pub host_key: Option<Arc<HostKey>>,
    pub public_url: String,
    /// `distinct_signers_key`: sketches are made and read only with it.
    pub distinct_key: Option<Secret>,
}

/// One peer of one campaign, as its loop checks it.
struct Pair {
    campaign: String,
    declaration: String,
    url: String,
    key: VerifierKey,
}

impl FederationTask {
    /// Until `stop`; at once without peers.
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        let this = Arc::new(self);
        let urls: Vec<String> = this.peers.iter().map(|p| base(&p.url)).collect();
        let mut loops = tokio::task::JoinSet::new();
        for c in this.campaigns.iter() {
            if let Err(e) = this.store.forget_peers_except(&c.id, &urls).await {
                tracing::warn!(campaign = %c.id, error = %e, "federation: could not forget removed peers");
            }
            for peer in &this.peers {
                let key = match VerifierKey::parse(&peer.key) {
                    Ok(key) => key,
                    Err(e) => {
                        // Settings are checked at load; this is a settings struct built elsewhere.
                        tracing::error!(peer = peer.url.as_str(), error = %e, "federation: peer left out");
                        continue;
                    }
                };
                let pair = Pair {
                    campaign: c.id.to_string(),
                    declaration: declaration_hash(c),
                    url: base(&peer.url),
                    key,
                };
                let (this, stop) = (this.clone(), stop.clone());
                loops.spawn(async move { this.check_forever(pair, stop).await });
            }
        }
        let own = this.clone();
        let own_stop = stop.clone();
        loops.spawn(async move { own.own_round(&own_stop).await });
        stop.cancelled().await;
        loops.shutdown().await;
        Ok(())
    }

    async fn check_forever(&self, pair: Pair, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match super::isolate_async(self.check(&pair)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(campaign = pair.campaign.as_str(), peer = pair.url.as_str(), error = %e, "federation: could not record a peer's state")
                }
                Err(panic) => {
                    tracing::error!(campaign = pair.campaign.as_str(), peer = pair.url.as_str(), error = %panic, "federation: checking a peer failed")
                }
            }
        }
    }

    /// How long one fetch may take: a refresh interval, within 2 to 30 seconds.
    fn timeout(&self) -> Duration {
        self.every
            .clamp(Duration::from_secs(2), Duration::from_secs(30))
    }

    /// Read one peer's checkpoint once, judge it, record the peer's state.
    async fn check(&self, pair: &Pair) -> Result<(), StoreError> {
        let before = self
            .store
            .peer_states(&pair.campaign)
            .await?
            .into_iter()
            .find(|s| s.url == pair.url);
        let last_note = before.as_ref().and_then(|s| s.note.clone());
        let last_ok_at = before.as_ref().and_then(|s| s.last_ok_at);
        let last = last_note
            .as_deref()
            .and_then(|n| Checkpoint::parse(checkpoint::body_of(n)).ok());
        let url = format!("{}/c/{}/checkpoint", pair.url, pair.campaign);
        let fetched = get_checkpoint(&self.http, &url, self.timeout()).await;
        let now = self.clock.now();
        let state = match fetched {
            Ok(note) => {
                let expected = Expected {
                    campaign: &pair.campaign,
                    declaration: &pair.declaration,
                    url: &pair.url,
                    key: &pair.key,
                };
                let verdict = checkpoint::judge(&expected, &note, last.as_ref(), now);
                let kept = verdict.keep.is_some();
                let sketch = match (&verdict.keep, &self.distinct_key) {
                    (Some(cp), Some(_)) if verdict.status == Status::Verified => {
                        self.peer_sketch(pair, cp.sequence).await
                    }
                    _ => None,
                };
                PeerState {
                    url: pair.url.clone(),
                    status: verdict.status.as_str().to_string(),
                    detail: verdict.detail,
                    note: if kept { Some(note) } else { last_note },
                    sketch: if kept {
                        sketch
                    } else {
                        before.and_then(|s| s.sketch)
                    },
                    checked_at: now,
                    last_ok_at: if kept { Some(now) } else { last_ok_at },
                }
            }
            Err(e) => {
                let grace = self.every * STALE_ROUNDS + self.timeout();
                let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
                PeerState {
                    url: pair.url.clone(),
                    status: checkpoint::unanswered(last_ok_at, now, grace)
                        .as_str()
                        .to_string(),
                    detail: unanswered_detail(&e),
                    note: last_note,
                    sketch: before.and_then(|s| s.sketch),
                    checked_at: now,
                    last_ok_at,
                }
            }
        };
        self.store.save_peer_state(&pair.campaign, &state).await
    }
}

impl FederationTask {
    /// The peer's signed sketch for its checkpoint `sequence`, if it serves one that its
    /// pinned key signed; `None` leaves the estimate out (the counts are unaffected).
    async fn peer_sketch(&self, pair: &Pair, sequence: u64) -> Option<String> {
        let url = format!("{}/c/{}/sketch", pair.url, pair.campaign);
        let note = get_checkpoint(&self.http, &url, self.timeout())
            .await
            .ok()?;
        let body = pair.key.open(&note).ok()?;
        let parsed = SketchNote::parse(body)?;
        (parsed.campaign == pair.campaign && parsed.url == pair.url && parsed.sequence == sequence)
            .then_some(note)
    }

    /// This host's own checkpoint of every campaign, issued if its counts rose, and its
    /// sketch, so both are ready before a peer asks.
    async fn own_round(&self, stop: &CancellationToken) {
        let (Some(host_key), Some(key)) = (&self.host_key, &self.distinct_key) else {
            return;
        };
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            for c in self.campaigns.iter() {
                let made = async {
                    let counts = own_counts(self.store.as_ref(), c, self.clock.now()).await?;
                    crate::federation::current_note(
                        self.store.as_ref(),
                        host_key,
                        c,
                        &self.public_url,
                        counts,
                        self.clock.now(),
                    )
                    .await?;
                    crate::federation::current_sketch(
                        self.store.as_ref(),
                        host_key,
                        c,
                        &self.public_url,
                        key.expose().as_bytes(),
                    )
                    .await
                };
                if let Err(e) = made.await {
                    tracing::warn!(campaign = %c.id, error = %e, "federation: could not make this host's sketch");
                }
            }
        }
    }
}

/// This host's counts of `c` now, as its checkpoint carries them.
async fn own_counts(
    store: &dyn Store,
    c: &Campaign,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Figures, StoreError> {
    Ok(Figures {
        signatures: store.signature_count(&c.id).await?,
        strikers: store.active_pledge_count(&c.id, now).await?,
        published: store.outbox_counts(&c.id).await?.published,
    })
}

/// The peer's base address as compared and shown: without a final slash.
fn base(url: &str) -> String {
    url.trim().trim_end_matches('/').to_string()
}

/// Why a peer did not answer, in picket's words (no remote text).
fn unanswered_detail(e: &FetchError) -> String {
    match e {
        FetchError::Unreachable { .. } => "did not answer".to_string(),
        FetchError::Status { status, .. } => format!("answered HTTP {status}"),
        FetchError::Unexpected { expected, .. } => format!("did not answer {expected}"),
    }
}
