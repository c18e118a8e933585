//! The store: the only place that speaks SQL (`sqlx`).
//!
//! One [`Store`] trait, made of one trait per area, and one implementation per database
//! (SQLite embedded by default, PostgreSQL for several workers), with the same SQL text in
//! both wherever the dialects allow. Each area's file holds its trait and a small macro that
//! stamps the implementation out for both backends; what differs (opening, write
//! transactions, committing signatures, the claiming statement) is written out in each
//! backend's file.
//!
//! | file              | what it is for |
//! |-------------------|----------------|
//! | `admin.rs`        | [`Admin`]: the operator's secret and sessions, exports, failures, reconnections |
//! | `participants.rs` | [`Participants`]: participants and their accounts |
//! | `sessions.rs`     | [`Sessions`]: magic links, sessions, the per-address mail budget |
//! | `pledges.rs`      | [`Pledges`]: pledges, withdrawing, applying the planner's plans |
//! | `outbox.rs`       | [`Outbox`]: claiming, sending, recording outcomes; cancelling campaigns |
//! | `handoff.rs`      | [`HandOffs`]: hand-off to a server's own scheduler: accounts that chose it, leasing rows while their scheduled status is created, recording what became of them |
//! | `signatures.rs`   | [`Signatures`]: signatures, their confirmation, invitations |
//! | `counts.rs`       | [`Counts`]: what the pages, the API and the metrics count |
//! | `leases.rs`       | [`Leases`]: one holder of a named job across processes |
//! | `census.rs`       | [`Census`]: the hashtag census's posts (author hashes only) and its hourly figures |
//! | `engagement.rs`   | [`EngagementStore`]: published posts' likes, reposts, replies and followers, read twice after posting |
//! | `push.rs`         | [`PushSubscriptions`]: the browsers a participant is reminded in (Web Push) |
//! | `reminders.rs`    | [`Reminders`]: reminders of notices to post by hand (tap-to-post and the fallback; at most once per notice), "I posted it" |
//! | `federation.rs`   | [`Federation`]: this host's checkpoint chain per campaign, each pinned peer's last state |
//! | `webhooks.rs`     | [`Webhooks`]: the organiser's webhooks' outbox: events derived from committed rows, enqueued once per hook, claimed under a lease |
//! | `broadcast.rs`    | [`Broadcasts`]: the campaign's broadcast channels' outbox: one row per announcement, channel and instant, with its text and transaction id, claimed under a lease |
//! | `workers.rs`      | [`Workers`]: dispatching workers' heartbeats; a dead worker's leases taken over at once |
//! | `copy.rs`         | `picket db copy` (SQLite ⇄ PostgreSQL, resumable, verified by row counts and checksums) and `picket db backup` (`VACUUM INTO`) |
//! | `tooling.rs`      | [`StoreTooling`]: bulk setup and checks for bench, rehearse and tests |
//! | `sqlite.rs`, `postgres.rs` | opening, write transactions, signature commits, claiming |
//! | `sql.rs`          | placeholders, batch sizes, the eligibility condition |
//! | `model.rs`, `rows.rs` | the domain types, and rows as the databases return them |
//!
//! Instants are stored as integer milliseconds since the Unix epoch (UTC) and are always
//! bound from the caller's `Clock`, never read from the database's own clock.
//!
//! It does not encrypt credentials (callers hand it ciphertext), render posts, or talk to
//! networks.
//!
//! # Durability
//!
//! SQLite runs in WAL mode with `synchronous=NORMAL`: a committed transaction survives the
//! process being killed (`kill -9`) at any instant, because it is in the WAL file once
//! `COMMIT` returns. Only a power cut or kernel crash can lose the last few transactions
//! (never corrupt the file). That is acceptable because every send carries the same
//! idempotency key on every attempt, so a lost `sending` mark leads to a deduplicated resend,
//! not a duplicate post. Use PostgreSQL (with `synchronous_commit=on`) when that is not enough.

mod admin;
mod broadcast;
mod census;
pub mod copy;
mod counts;
mod engagement;
mod federation;
mod handoff;
mod leases;
mod model;
mod outbox;
mod participants;
mod pledges;
mod postgres;
mod push;
mod reminders;
mod rows;
mod sessions;
mod signatures;
mod sql;
mod sqlite;
mod tooling;
mod webhooks;
mod workers;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

pub use admin::{Admin, ExportedSignature, Failure, LedgerPost};
pub use broadcast::{
    BroadcastDelivery, BroadcastOutcome, Broadcasts, NewBroadcast, StoredBroadcast,
};
pub use census::{Census, CensusFigures, CensusHour, CensusPost, CensusTotals, hour_of};
pub use counts::{Counts, DayCount, InviteEdge, PostBucket, ReasonCount};
pub use engagement::{
    EngagementBucket, EngagementDue, EngagementRecord, EngagementStore, READ_NETWORKS,
};
pub use federation::{Federation, PeerState, StoredCheckpoint};
pub use handoff::{HandOffOutcome, HandOffRow, HandOffs, HandedOff};
pub use leases::Leases;
pub use model::*;
pub use outbox::{Outbox, READ_BACK_WITHIN};
pub use participants::Participants;
pub use pledges::{PledgePage, Pledges};
pub use postgres::PgStore;
pub use push::{PushSubscriptionId, PushSubscriptions, StoredPushSubscription};
pub use reminders::{MarkedMail, ReminderDue, Reminders};
pub use sessions::Sessions;
pub use signatures::Signatures;
pub use sqlite::SqliteStore;
pub use tooling::StoreTooling;
pub use webhooks::{
    NewWebhookEvent, StoredWebhookEvent, WebhookDelivery, WebhookFact, WebhookOutcome, Webhooks,
};
pub use workers::{DeadWorkers, Workers};

/// Something went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed to apply.
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no database picket supports.
    #[error(
        "unsupported database URL `{0}`: use sqlite://PATH, a path to an existing SQLite \
         file, or postgres://..."
    )]
    UnsupportedUrl(String),
    /// A bare path was given but no file exists there; bare paths never create databases.
    #[error(
        "no SQLite database at `{0}`: to create one, say sqlite://{0} (a bare path must name \
         an existing file)"
    )]
    NoSuchFile(String),
    /// The record the call refers to does not exist (or belongs to someone else).
    #[error("{0} not found")]
    NotFound(String),
    /// A stored value could not be read back (an unknown state name, an instant out of range,
    /// malformed JSON): the database was written by something else or a newer picket.
    #[error("unreadable stored value: {0}")]
    Corrupt(String),
}

/// Data picket keeps, area by area. Object-safe: used as `Arc<dyn Store>`; the areas'
/// methods are called on it without importing their traits.
///
/// Every method that writes takes `now` from the caller's clock.
#[async_trait]
pub trait Store:
    Participants
    + Sessions
    + Pledges
    + Outbox
    + HandOffs
    + Signatures
    + Counts
    + Leases
    + Reminders
    + PushSubscriptions
    + Webhooks
    + Broadcasts
    + Admin
    + Census
    + EngagementStore
    + Federation
    + Workers
where
    Self: Send + Sync + 'static,
{
    /// A cheap round trip, for `/healthz`.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Whether write transactions run side by side (PostgreSQL) or take turns (SQLite's
    /// one writer): a dispatcher overlaps its writes only where they do not queue behind
    /// each other.
    fn writes_side_by_side(&self) -> bool;
    /// Bring the database's query statistics up to date after many rows were planned at
    /// once. PostgreSQL picks each statement's plan from sampled statistics that its
    /// autovacuum refreshes only after a tenth of a table changed: with rows of a new
    /// strike missing from them, it judged the due rows to be a handful and sorted all of
    /// them on every claim (250 ms a claim at 100,000 due) instead of reading the first
    /// ones in index order. SQLite keeps no statistics here, and its plans were chosen
    /// without them: nothing to do.
    async fn refresh_statistics(&self) -> Result<(), StoreError>;
}

/// Open (and create and migrate) the database named by `url`:
///
/// - `sqlite://PATH` or `sqlite:PATH`: SQLite, created on first use;
/// - a bare path: SQLite, only if the file exists (so a typo does not silently start an
///   empty database);
/// - `postgres://...` or `postgresql://...`: PostgreSQL.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(open_tooling(url).await?)
}

/// [`open`], for benchmarks, rehearsals and tests that also need [`StoreTooling`].
pub async fn open_tooling(url: &str) -> Result<Arc<dyn StoreTooling>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PgStore::connect(url).await?));
    }
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() || path.starts_with(":memory:") {
            // Each pooled connection would get its own empty in-memory database.
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        }
        return Ok(Arc::new(SqliteStore::open(Path::new(path), true).await?));
    }
    if url.contains("://") {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    }
    let path = Path::new(url);
    if !path.is_file() {
        return Err(StoreError::NoSuchFile(url.to_string()));
    }
    Ok(Arc::new(SqliteStore::open(path, false).await?))
}
