//! Centerless totals: independent hosts of the same campaign publish signed checkpoints of
//! their counts, read each other's, and show the movement's verified total. No personal
//! data crosses between hosts: a checkpoint holds three numbers, the campaign id, the
//! declaration's hash, the host's address, a time and the chain's links.
//!
//! ```text
//! GET /c/{id}/checkpoint ── current_note: this host's latest checkpoint, issued anew when
//!                           its counts rise (or hourly), signed with the host key, kept
//! scheduler::federation ─── every federation_refresh_secs, for each campaign × [[peers]]:
//!                           network::peer::get_checkpoint → checkpoint::judge → store
//! stats::Report ─────────── hosts(): this host + verified peers of the same declaration
//! ```
//!
//! | file | what it is for |
//! |---|---|
//! | `key.rs` | the host key (`picket host key`), C2SP signed notes, peers' pinned keys |
//! | `checkpoint.rs` | the checkpoint text, its chain, and the judgement of a peer's |
//! | `sketch.rs` | the opt-in distinct-signers estimate: HyperLogLog of keyed address hashes |
//!
//! With `distinct_signers_key` the peers task also makes this host's sketch and reads
//! the peers' (`GET /c/{id}/sketch`); the sketch holds keyed hashes only, never an address.
//!
//! It does not speak HTTP (`network::peer` fetches) or SQL (`store::Federation`).

pub mod checkpoint;
pub mod key;
pub mod sketch;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use checkpoint::{Checkpoint, Figures, Status};
pub use key::{HostKey, KeyError, VerifierKey, key_file_for};

use crate::campaign::Campaign;
use crate::store::{PeerState, Store, StoreError, StoredCheckpoint};

/// The declaration hash a checkpoint names: the content hash, or `none`.
pub fn declaration_hash(c: &Campaign) -> String {
    c.declaration
        .as_ref()
        .map_or_else(|| "none".to_string(), |d| d.sha256.clone())
}

/// This host's own latest checkpoint of `c`, parsed (it wrote it itself).
pub async fn latest_own(
    store: &dyn Store,
    campaign: &str,
) -> Result<Option<Checkpoint>, StoreError> {
    Ok(store
        .latest_checkpoint(campaign)
        .await?
        .and_then(|s| Checkpoint::parse(checkpoint::body_of(&s.note)).ok()))
}

/// The signed note of this host's latest checkpoint of `c` for `counts` at `now`, issuing
/// (and keeping) a new one first when the counts rose or the heartbeat is due.
pub async fn current_note(
    store: &dyn Store,
    key: &HostKey,
    c: &Campaign,
    public_url: &str,
    counts: Figures,
    now: DateTime<Utc>,
) -> Result<String, StoreError> {
    let latest = store.latest_checkpoint(&c.id).await?;
    let last = latest
        .as_ref()
        .and_then(|s| Checkpoint::parse(checkpoint::body_of(&s.note)).ok());
    let next = Checkpoint::next(
        last.as_ref(),
        &c.id,
        &declaration_hash(c),
        public_url,
        counts,
        now,
    );
    match (next, latest) {
        (None, Some(latest)) => Ok(latest.note),
        (next, _) => {
            let next = next.expect("a first checkpoint is always issued");
            let note = key.sign_note(public_url, &next.body());
            let stored = StoredCheckpoint {
                sequence: next.sequence,
                note,
                sketch: None,
            };
            if store.insert_checkpoint(&c.id, &stored, now).await? {
                return Ok(stored.note);
            }
            // Another request issued this sequence first: theirs is the checkpoint.
            Ok(store
                .latest_checkpoint(&c.id)
                .await?
                .map_or(stored.note, |s| s.note))
        }
    }
}

/// This host's signed sketch for its latest checkpoint of `c`, made (and kept) first if
/// needed; `None` before its first checkpoint. `key` is the `distinct_signers_key`.
pub async fn current_sketch(
    store: &dyn Store,
    host_key: &HostKey,
    c: &Campaign,
    public_url: &str,
    key: &[u8],
) -> Result<Option<String>, StoreError> {
    let Some(latest) = store.latest_checkpoint(&c.id).await? else {
        return Ok(None);
    };
    if let Some(made) = latest.sketch {
        return Ok(Some(made));
    }
    let (addresses, unkeyed) = store.signer_addresses(&c.id).await?;
    let mut s = sketch::Sketch::default();
    for a in &addresses {
        s.insert(sketch::keyed_hash(key, a));
    }
    let note = sketch::SketchNote {
        campaign: c.id.to_string(),
        url: public_url.trim_end_matches('/').to_string(),
        sequence: latest.sequence,
        unkeyed,
        sketch: s,
    };
    let signed = host_key.sign_note(public_url, &note.body());
    store
        .set_checkpoint_sketch(&c.id, latest.sequence, &signed)
        .await?;
    Ok(Some(signed))
}

/// The `hosts` of the stats: this host and every peer, with the total of those counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Hosts {
    /// This host plus every verified peer with the same declaration.
    pub signatures: u64,
    pub strikers: u64,
    pub published: u64,
    /// How many hosts those totals add up (this one included).
    pub counted_hosts: u64,
    /// This host's own counts as its checkpoint says them (high-water marks).
    pub this_host: Figures,
    /// Verified hosts of a declaration with another text: counted apart, not in the totals.
    pub copies: Copies,
    /// With `distinct_signers_key` on this host and every counted peer: the estimated
    /// number of different people among `signatures` (HyperLogLog, about 3 % error);
    /// `null` otherwise.
    pub distinct_signers: Option<u64>,
    pub peers: Vec<PeerView>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Copies {
    pub hosts: u64,
    pub signatures: u64,
    pub strikers: u64,
    pub published: u64,
}

/// One peer as the stats, the hosts page and `picket peers` show it: its last good
/// checkpoint's counts (zero if none), whatever its status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerView {
    pub url: String,
    pub status: Status,
    pub signatures: u64,
    pub strikers: u64,
    pub published: u64,
    pub checked_at: DateTime<Utc>,
    /// Why it is not verified, in picket's words.
    pub detail: String,
    /// The sequence number of its last good checkpoint (0: none kept).
    pub sequence: u64,
}

impl PeerView {
    fn from_state(s: &PeerState) -> PeerView {
        let cp = s
            .note
            .as_deref()
            .and_then(|n| Checkpoint::parse(checkpoint::body_of(n)).ok());
        let counts = cp.as_ref().map(|c| c.counts).unwrap_or_default();
        PeerView {
            url: s.url.clone(),
            status: Status::parse(&s.status).unwrap_or(Status::Unreachable),
            signatures: counts.signatures,
            strikers: counts.strikers,
            published: counts.published,
            checked_at: s.checked_at,
            detail: s.detail.clone(),
            sequence: cp.map_or(0, |c| c.sequence),
        }
    }

    fn figures(&self) -> Figures {
        Figures {
            signatures: self.signatures,
            strikers: self.strikers,
            published: self.published,
        }
    }
}

/// The hosts of `campaign`: `own` counts (raised to this host's own latest checkpoint,
/// which peers add up) plus every verified peer.
pub async fn hosts(store: &dyn Store, campaign: &str, own: Figures) -> Result<Hosts, StoreError> {
    let own = match latest_own(store, campaign).await? {
        Some(cp) => own.at_least(cp.counts),
        None => own,
    };
    let own_sketch = store
        .latest_checkpoint(campaign)
        .await?
        .and_then(|s| s.sketch)
        .and_then(|n| sketch::SketchNote::parse(checkpoint::body_of(&n)));
    let mut union = own_sketch.map(|n| (n.sketch, n.unkeyed));
    let states = store.peer_states(campaign).await?;
    for s in states
        .iter()
        .filter(|s| s.status == Status::Verified.as_str())
    {
        let theirs = s
            .sketch
            .as_deref()
            .and_then(|n| sketch::SketchNote::parse(checkpoint::body_of(n)));
        union = match (union, theirs) {
            (Some((mut all, unkeyed)), Some(t)) => {
                all.merge(&t.sketch);
                Some((all, unkeyed.saturating_add(t.unkeyed)))
            }
            // A counted host without a sketch: no estimate for the whole.
            _ => None,
        };
    }
    let distinct_signers = union.map(|(all, unkeyed)| all.estimate().saturating_add(unkeyed));
    let peers: Vec<PeerView> = states.iter().map(PeerView::from_state).collect();
    let mut total = own;
    let mut counted_hosts = 1;
    let mut copies = Copies::default();
    for p in &peers {
        match p.status {
            Status::Verified => {
                total.add(p.figures());
                counted_hosts += 1;
            }
            Status::DifferentDeclaration => {
                copies.hosts += 1;
                // A peer's figures are what it signed: summed without overflowing.
                copies.signatures = copies.signatures.saturating_add(p.signatures);
                copies.strikers = copies.strikers.saturating_add(p.strikers);
                copies.published = copies.published.saturating_add(p.published);
            }
            _ => {}
        }
    }
    Ok(Hosts {
        signatures: total.signatures,
        strikers: total.strikers,
        published: total.published,
        counted_hosts,
        this_host: own,
        copies,
        distinct_signers,
        peers,
    })
}
