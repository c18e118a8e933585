//! Broadcast channels' durable outbox: one row per announcement on one channel at one
//! instant, written when it falls due (with its text and transaction id) before anything
//! is sent, claimed under a lease, and its outcome recorded.
//!
//! The unique key (channel, campaign, announcement, instant) makes each announcement
//! enqueued exactly once whichever process sees it due first ([`Broadcasts::enqueue_broadcast`]
//! inserts with `ON CONFLICT DO NOTHING`). The row's `txn_id` and `body` never change, so
//! every attempt sends the same message under the same id. The SQL is the same on both
//! databases: the `broadcasts!` macro stamps one implementation out for each backend.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::{instant, ms};
use super::{PgStore, SqliteStore, StoreError};

/// An announcement due on one channel, to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBroadcast {
    pub channel: String,
    pub campaign_id: String,
    pub announcement: String,
    pub slot_at: DateTime<Utc>,
    /// Past this instant it is not sent any more.
    pub not_after: DateTime<Utc>,
    /// Drawn once by the caller; sent on every attempt.
    pub txn_id: String,
    /// The text, rendered once.
    pub body: String,
    /// `Some(reason)`: it is stored as already missed (its window closed before any process
    /// saw it due), so it is on record and never sent.
    pub missed: Option<String>,
}

/// A claimed announcement, to send now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastDelivery {
    pub id: i64,
    pub channel: String,
    pub campaign_id: String,
    pub announcement: String,
    pub slot_at: DateTime<Utc>,
    pub not_after: DateTime<Utc>,
    pub txn_id: String,
    pub body: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    /// An earlier attempt's process died before recording its outcome.
    pub interrupted: bool,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BroadcastOutcome {
    /// The channel has it; `remote_id` is its id there (a Matrix event id, a Telegram or
    /// Discord message id) when the answer gave one.
    Sent { remote_id: Option<String> },
    /// Try again at `run_at`.
    Retry {
        run_at: DateTime<Utc>,
        error: String,
    },
    /// Given up for good (the channel refused it, the token is wrong).
    Failed { error: String },
    /// Its window closed before it was sent.
    Missed { error: String },
    /// The answer was lost and the channel has no way to ask whether it arrived: not sent
    /// again, so it is never there twice.
    Unknown { error: String },
}

/// An announcement as stored, for the operator and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBroadcast {
    pub channel: String,
    pub announcement: String,
    pub slot_at: DateTime<Utc>,
    pub txn_id: String,
    pub body: String,
    /// `pending`, `sent`, `failed`, `missed` or `unknown`.
    pub state: String,
    pub attempts: u32,
    pub remote_id: Option<String>,
    pub last_error: Option<String>,
}

/// Broadcast channels' outbox; part of [`Store`](super::Store).
#[async_trait]
pub trait Broadcasts {
    /// Whether an announcement at `slot_at` is already enqueued for `channel`.
    async fn broadcast_exists(
        &self,
        channel: &str,
        campaign_id: &str,
        announcement: &str,
        slot_at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Enqueue `m`, due at `now`; one already enqueued is left as it is. True when new.
    async fn enqueue_broadcast(
        &self,
        m: &NewBroadcast,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Lease up to `limit` due announcements to `owner` until `lease_until`, counting an
    /// attempt each. One whose lease ran out (its process died) is due again.
    async fn claim_broadcasts(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<BroadcastDelivery>, StoreError>;
    /// Record an attempt's outcome, if `owner` still holds it. False when it does not.
    async fn record_broadcast(
        &self,
        id: i64,
        owner: &str,
        outcome: &BroadcastOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Every announcement of a campaign, oldest first.
    async fn broadcasts(&self, campaign_id: &str) -> Result<Vec<StoredBroadcast>, StoreError>;
}

type DeliveryRow = (
    i64,
    String,
    String,
    String,
    i64,
    i64,
    String,
    String,
    i64,
    i64,
);
type StoredRow = (
    String,
    String,
    i64,
    String,
    String,
    String,
    i64,
    Option<String>,
    Option<String>,
);

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// [`Broadcasts`] for the backend `$store`.
macro_rules! broadcasts {
    ($store:ty) => {
        #[async_trait]
        impl Broadcasts for $store {
            async fn broadcast_exists(
                &self,
                channel: &str,
                campaign_id: &str,
                announcement: &str,
                slot_at: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM broadcast_messages WHERE channel = $1 \
                     AND campaign_id = $2 AND announcement = $3 AND slot_at = $4",
                )
                .bind(channel)
                .bind(campaign_id)
                .bind(announcement)
                .bind(ms(slot_at))
                .fetch_one(&self.pool)
                .await?;
                Ok(n > 0)
            }

            async fn enqueue_broadcast(
                &self,
                m: &NewBroadcast,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let state = if m.missed.is_some() {
                    "missed"
                } else {
                    "pending"
                };
                let added = sqlx::query(
                    "INSERT INTO broadcast_messages (channel, campaign_id, announcement, \
                     slot_at, not_after, txn_id, body, state, last_error, run_at, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $10) \
                     ON CONFLICT (channel, campaign_id, announcement, slot_at) DO NOTHING",
                )
                .bind(&m.channel)
                .bind(&m.campaign_id)
                .bind(&m.announcement)
                .bind(ms(m.slot_at))
                .bind(ms(m.not_after))
                .bind(&m.txn_id)
                .bind(&m.body)
                .bind(state)
                .bind(m.missed.as_deref())
                .bind(ms(now))
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(added == 1)
            }

            async fn claim_broadcasts(
                &self,
                owner: &str,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
                limit: u32,
            ) -> Result<Vec<BroadcastDelivery>, StoreError> {
                let mut tx = self.begin_write().await?;
                // The outer condition is checked again on a row another worker changed
                // meanwhile (PostgreSQL, READ COMMITTED), so two workers never both lease it.
                let rows: Vec<DeliveryRow> = sqlx::query_as(
                    "UPDATE broadcast_messages SET interrupted = CASE WHEN lease_owner IS NULL \
                     THEN 0 ELSE 1 END, lease_owner = $1, lease_until = $2, \
                     attempts = attempts + 1, updated_at = $3 \
                     WHERE id IN (SELECT id FROM broadcast_messages WHERE state = 'pending' \
                     AND run_at <= $3 AND (lease_until IS NULL OR lease_until <= $3) \
                     ORDER BY run_at, id LIMIT $4) \
                     AND state = 'pending' AND (lease_until IS NULL OR lease_until <= $3) \
                     RETURNING id, channel, campaign_id, announcement, slot_at, not_after, \
                     txn_id, body, attempts, interrupted",
                )
                .bind(owner)
                .bind(ms(lease_until))
                .bind(ms(now))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                let mut claimed = Vec::with_capacity(rows.len());
                for (
                    id,
                    channel,
                    campaign_id,
                    announcement,
                    slot_at,
                    not_after,
                    txn_id,
                    body,
                    n,
                    interrupted,
                ) in rows
                {
                    claimed.push(BroadcastDelivery {
                        id,
                        channel,
                        campaign_id,
                        announcement,
                        slot_at: instant(slot_at)?,
                        not_after: instant(not_after)?,
                        txn_id,
                        body,
                        attempts: count(n),
                        interrupted: interrupted != 0,
                    });
                }
                claimed.sort_by_key(|d| d.id);
                Ok(claimed)
            }

            async fn record_broadcast(
                &self,
                id: i64,
                owner: &str,
                outcome: &BroadcastOutcome,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let (state, run_at, remote_id, error) = match outcome {
                    BroadcastOutcome::Sent { remote_id } => {
                        ("sent", None, remote_id.as_deref(), None)
                    }
                    BroadcastOutcome::Retry { run_at, error } => {
                        ("pending", Some(ms(*run_at)), None, Some(error.as_str()))
                    }
                    BroadcastOutcome::Failed { error } => {
                        ("failed", None, None, Some(error.as_str()))
                    }
                    BroadcastOutcome::Missed { error } => {
                        ("missed", None, None, Some(error.as_str()))
                    }
                    BroadcastOutcome::Unknown { error } => {
                        ("unknown", None, None, Some(error.as_str()))
                    }
                };
                let done = sqlx::query(
                    "UPDATE broadcast_messages SET state = $3, run_at = COALESCE($4, run_at), \
                     remote_id = COALESCE($5, remote_id), last_error = $6, lease_owner = NULL, \
                     lease_until = NULL, updated_at = $7 \
                     WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
                )
                .bind(id)
                .bind(owner)
                .bind(state)
                .bind(run_at)
                .bind(remote_id)
                .bind(error)
                .bind(ms(now))
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(done == 1)
            }

            async fn broadcasts(
                &self,
                campaign_id: &str,
            ) -> Result<Vec<StoredBroadcast>, StoreError> {
                let rows: Vec<StoredRow> = sqlx::query_as(
                    "SELECT channel, announcement, slot_at, txn_id, body, state, attempts, \
                     remote_id, last_error FROM broadcast_messages WHERE campaign_id = $1 \
                     ORDER BY id",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                let mut out = Vec::with_capacity(rows.len());
                for (channel, announcement, slot_at, txn_id, body, state, n, remote_id, error) in
                    rows
                {
                    out.push(StoredBroadcast {
                        channel,
                        announcement,
                        slot_at: instant(slot_at)?,
                        txn_id,
                        body,
                        state,
                        attempts: count(n),
                        remote_id,
                        last_error: error,
                    });
                }
                Ok(out)
            }
        }
    };
}

broadcasts!(SqliteStore);
broadcasts!(PgStore);
