//! Counts for the campaign pages, the JSON API, the badge and the metrics: posts by state,
//! strikers, signatures, accounts per network and people per invitation.
//!
//! Read-only, and the same SQL on both databases: the `counts!` macro stamps one
//! implementation of [`Counts`] out for each backend. Never counts or returns anything that
//! identifies a person.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::model::*;
use super::rows::{ms, outbox_state};
use super::{PgStore, SqliteStore, StoreError};
use crate::domain::NetworkKind;

/// What the public pages count; part of [`Store`](super::Store).
#[async_trait]
pub trait Counts {
    /// A campaign's posts per state.
    async fn outbox_counts(&self, campaign_id: &str) -> Result<OutboxCounts, StoreError>;
    /// Active pledges of a campaign made no later than `created_before` (a campaign's
    /// tipping point counts the pledges made by its deadline).
    async fn active_pledge_count(
        &self,
        campaign_id: &str,
        created_before: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Confirmed signatures: those that count.
    async fn signature_count(&self, campaign_id: &str) -> Result<u64, StoreError>;
    /// Accounts pledged to a campaign (active pledges), per network.
    async fn accounts_by_network(
        &self,
        campaign_id: &str,
    ) -> Result<Vec<(NetworkKind, u64)>, StoreError>;
    /// People (signers and participants) who came through invitation code `code`.
    async fn invited_count(&self, code: &str) -> Result<u64, StoreError>;
    /// Confirmed signatures per invitation code (`invited_by`), most first.
    async fn invite_counts(&self, campaign_id: &str) -> Result<Vec<InviteCount>, StoreError>;
}

/// [`Counts`] for the backend `$store`.
macro_rules! counts {
    ($store:ty) => {
        #[async_trait]
        impl Counts for $store {
            async fn outbox_counts(&self, campaign_id: &str) -> Result<OutboxCounts, StoreError> {
                let rows = sqlx::query_as::<_, (String, i64)>(
                    "SELECT state, COUNT(*) FROM outbox WHERE campaign_id = $1 GROUP BY state",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                let mut counts = OutboxCounts::default();
                for (state, n) in rows {
                    counts.set(outbox_state(&state)?, n as u64);
                }
                Ok(counts)
            }

            async fn active_pledge_count(
                &self,
                campaign_id: &str,
                created_before: DateTime<Utc>,
            ) -> Result<u64, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pledges \
                     WHERE campaign_id = $1 AND status = 'active' AND created_at <= $2",
                )
                .bind(campaign_id)
                .bind(ms(created_before))
                .fetch_one(&self.pool)
                .await?;
                Ok(n as u64)
            }

            async fn signature_count(&self, campaign_id: &str) -> Result<u64, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM signatures WHERE campaign_id = $1 AND confirmed = TRUE",
                )
                .bind(campaign_id)
                .fetch_one(&self.pool)
                .await?;
                Ok(n as u64)
            }

            async fn accounts_by_network(
                &self,
                campaign_id: &str,
            ) -> Result<Vec<(NetworkKind, u64)>, StoreError> {
                let rows = sqlx::query_as::<_, (String, i64)>(
                    "SELECT a.network, COUNT(DISTINCT a.id) FROM pledges p \
                     JOIN pledge_accounts pa ON pa.pledge_id = p.id \
                     JOIN accounts a ON a.id = pa.account_id \
                     WHERE p.campaign_id = $1 AND p.status = 'active' \
                     AND a.status <> 'removed' \
                     GROUP BY a.network ORDER BY a.network",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(network, n)| {
                        network
                            .parse::<NetworkKind>()
                            .map(|k| (k, n as u64))
                            .map_err(|e| StoreError::Corrupt(e.to_string()))
                    })
                    .collect()
            }

            async fn invited_count(&self, code: &str) -> Result<u64, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM signatures WHERE invited_by = $1) \
                          + (SELECT COUNT(*) FROM participants WHERE invited_by = $1)",
                )
                .bind(code)
                .fetch_one(&self.pool)
                .await?;
                Ok(n as u64)
            }

            async fn invite_counts(
                &self,
                campaign_id: &str,
            ) -> Result<Vec<InviteCount>, StoreError> {
                let rows = sqlx::query_as::<_, (String, i64)>(
                    "SELECT invited_by, COUNT(*) AS n FROM signatures \
                     WHERE campaign_id = $1 AND invited_by IS NOT NULL \
                     AND confirmed = TRUE \
                     GROUP BY invited_by ORDER BY n DESC, invited_by",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(code, n)| InviteCount {
                        code,
                        count: n as u64,
                    })
                    .collect())
            }
        }
    };
}

counts!(SqliteStore);
counts!(PgStore);
