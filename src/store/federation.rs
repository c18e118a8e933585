//! Centerless totals: this host's own checkpoint chain per campaign (each signed note
//! kept, so the chain goes on across restarts) and the last state of each pinned peer.
//!
//! The store keeps notes as text and statuses as their names: signing, verifying and
//! judging are `federation`'s. The same SQL on both databases (the `federation!` macro).

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::{instant, ms};
use super::{PgStore, SqliteStore, StoreError};

/// One checkpoint this host issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub sequence: u64,
    pub note: String,
    /// Its signed distinct-signers sketch, once made (`federation::sketch`).
    pub sketch: Option<String>,
}

/// What one peer showed at its last check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    pub url: String,
    /// A `federation::Status` name.
    pub status: String,
    /// Why, in picket's words ("" when verified).
    pub detail: String,
    /// Its last good checkpoint note, if any.
    pub note: Option<String>,
    /// Its signed distinct-signers sketch of the same sequence as `note`, if any.
    pub sketch: Option<String>,
    pub checked_at: DateTime<Utc>,
    /// When it last answered with a checkpoint that was kept.
    pub last_ok_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait Federation {
    /// The latest checkpoint this host issued for `campaign`.
    async fn latest_checkpoint(
        &self,
        campaign: &str,
    ) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Keep checkpoint `sequence`; `false` if another writer kept that sequence first.
    async fn insert_checkpoint(
        &self,
        campaign: &str,
        checkpoint: &StoredCheckpoint,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Every peer's state for `campaign`, by address.
    async fn peer_states(&self, campaign: &str) -> Result<Vec<PeerState>, StoreError>;

    /// Record a peer's state (replacing the one before).
    async fn save_peer_state(&self, campaign: &str, state: &PeerState) -> Result<(), StoreError>;

    /// Attach the signed sketch made for checkpoint `sequence`.
    async fn set_checkpoint_sketch(
        &self,
        campaign: &str,
        sequence: u64,
        sketch: &str,
    ) -> Result<(), StoreError>;

    /// The canonical addresses of `campaign`'s counted signatures, and how many counted
    /// signatures have none. For the keyed sketch only: never shown, logged or sent.
    async fn signer_addresses(&self, campaign: &str) -> Result<(Vec<String>, u64), StoreError>;

    /// Forget peers of `campaign` no longer in the settings.
    async fn forget_peers_except(&self, campaign: &str, urls: &[String]) -> Result<(), StoreError>;
}

type PeerRow = (
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
    Option<i64>,
);

fn peer(
    (url, status, detail, note, sketch, checked_at, last_ok_at): PeerRow,
) -> Result<PeerState, StoreError> {
    Ok(PeerState {
        url,
        status,
        detail,
        note,
        sketch,
        checked_at: instant(checked_at)?,
        last_ok_at: last_ok_at.map(instant).transpose()?,
    })
}

/// [`Federation`] for the backend `$store`.
macro_rules! federation {
    ($store:ty) => {
        #[async_trait]
        impl Federation for $store {
            async fn latest_checkpoint(
                &self,
                campaign: &str,
            ) -> Result<Option<StoredCheckpoint>, StoreError> {
                let row: Option<(i64, String, Option<String>)> = sqlx::query_as(
                    "SELECT sequence, note, sketch FROM checkpoints WHERE campaign_id = $1 \
                     ORDER BY sequence DESC LIMIT 1",
                )
                .bind(campaign)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(sequence, note, sketch)| StoredCheckpoint {
                    sequence: u64::try_from(sequence).unwrap_or(0),
                    note,
                    sketch,
                }))
            }

            async fn insert_checkpoint(
                &self,
                campaign: &str,
                checkpoint: &StoredCheckpoint,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let sequence = i64::try_from(checkpoint.sequence)
                    .map_err(|_| StoreError::Corrupt("checkpoint sequence too large".into()))?;
                let done = sqlx::query(
                    "INSERT INTO checkpoints (campaign_id, sequence, note, sketch, issued_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (campaign_id, sequence) DO NOTHING",
                )
                .bind(campaign)
                .bind(sequence)
                .bind(&checkpoint.note)
                .bind(&checkpoint.sketch)
                .bind(ms(now))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn peer_states(&self, campaign: &str) -> Result<Vec<PeerState>, StoreError> {
                let rows: Vec<PeerRow> = sqlx::query_as(
                    "SELECT url, status, detail, note, sketch, checked_at, last_ok_at \
                     FROM federation_peers WHERE campaign_id = $1 ORDER BY url",
                )
                .bind(campaign)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter().map(peer).collect()
            }

            async fn save_peer_state(
                &self,
                campaign: &str,
                state: &PeerState,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO federation_peers \
                     (campaign_id, url, status, detail, note, sketch, checked_at, last_ok_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (campaign_id, url) DO UPDATE SET status = $3, detail = $4, \
                     note = $5, sketch = $6, checked_at = $7, last_ok_at = $8",
                )
                .bind(campaign)
                .bind(&state.url)
                .bind(&state.status)
                .bind(&state.detail)
                .bind(&state.note)
                .bind(&state.sketch)
                .bind(ms(state.checked_at))
                .bind(state.last_ok_at.map(ms))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn set_checkpoint_sketch(
                &self,
                campaign: &str,
                sequence: u64,
                sketch: &str,
            ) -> Result<(), StoreError> {
                let sequence = i64::try_from(sequence)
                    .map_err(|_| StoreError::Corrupt("checkpoint sequence too large".into()))?;
                sqlx::query(
                    "UPDATE checkpoints SET sketch = $3 WHERE campaign_id = $1 AND sequence = $2",
                )
                .bind(campaign)
                .bind(sequence)
                .bind(sketch)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn signer_addresses(
                &self,
                campaign: &str,
            ) -> Result<(Vec<String>, u64), StoreError> {
                let addresses: Vec<String> = sqlx::query_scalar(
                    "SELECT email_canonical FROM signatures WHERE campaign_id = $1 \
                     AND confirmed = TRUE AND email_canonical IS NOT NULL",
                )
                .bind(campaign)
                .fetch_all(&self.pool)
                .await?;
                let unkeyed: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM signatures WHERE campaign_id = $1 \
                     AND confirmed = TRUE AND email_canonical IS NULL",
                )
                .bind(campaign)
                .fetch_one(&self.pool)
                .await?;
                Ok((addresses, u64::try_from(unkeyed).unwrap_or(0)))
            }

            async fn forget_peers_except(
                &self,
                campaign: &str,
                urls: &[String],
            ) -> Result<(), StoreError> {
                for state in self.peer_states(campaign).await? {
                    if !urls.contains(&state.url) {
                        sqlx::query(
                            "DELETE FROM federation_peers WHERE campaign_id = $1 AND url = $2",
                        )
                        .bind(campaign)
                        .bind(&state.url)
                        .execute(&self.pool)
                        .await?;
                    }
                }
                Ok(())
            }
        }
    };
}

federation!(SqliteStore);
federation!(PgStore);
