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
    /// Signatures waiting for their e-mail confirmation (not counted yet).
    async fn unconfirmed_signature_count(&self, campaign_id: &str) -> Result<u64, StoreError>;
    /// A campaign's posts per network, UTC hour of day of their slot (0-23) and state.
    async fn post_buckets(&self, campaign_id: &str) -> Result<Vec<PostBucket>, StoreError>;
    /// The most frequent reasons of failed and missed posts, most first, at most `limit`.
    async fn failure_reasons(
        &self,
        campaign_id: &str,
        limit: u32,
    ) -> Result<Vec<ReasonCount>, StoreError>;
    /// Who came through whose invitation: every confirmed signature of the campaign and
    /// every participant with an active pledge in it, as (own code, inviter's code).
    async fn invitation_edges(&self, campaign_id: &str) -> Result<Vec<InviteEdge>, StoreError>;
    /// Confirmed signatures and active pledges made per UTC day (days since 1970-01-01).
    async fn daily_counts(&self, campaign_id: &str) -> Result<Vec<DayCount>, StoreError>;
}

/// Posts of one network, UTC hour of day and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostBucket {
    pub network: NetworkKind,
    /// 0-23, the UTC hour of the slot's own instant.
    pub hour: u8,
    pub state: OutboxState,
    pub count: u64,
}

/// How many failed or missed posts gave one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonCount {
    pub state: OutboxState,
    pub reason: String,
    pub count: u64,
}

/// One person in the invitation tree: their own code and the code that brought them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteEdge {
    pub code: String,
    pub invited_by: Option<String>,
}

/// Signatures and pledges made on one UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayCount {
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub signatures: u64,
    pub pledges: u64,
}

fn network_of(s: &str) -> Result<NetworkKind, StoreError> {
    s.parse::<NetworkKind>()
        .map_err(|e| StoreError::Corrupt(e.to_string()))
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

            async fn unconfirmed_signature_count(
                &self,
                campaign_id: &str,
            ) -> Result<u64, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM signatures WHERE campaign_id = $1 AND confirmed = FALSE",
                )
                .bind(campaign_id)
                .fetch_one(&self.pool)
                .await?;
                Ok(n as u64)
            }

            async fn post_buckets(&self, campaign_id: &str) -> Result<Vec<PostBucket>, StoreError> {
                let rows = sqlx::query_as::<_, (String, i64, String, i64)>(
                    "SELECT a.network, (o.slot_at / 3600000) % 24 AS hour, o.state, COUNT(*) \
                     FROM outbox o JOIN accounts a ON a.id = o.account_id \
                     WHERE o.campaign_id = $1 \
                     GROUP BY a.network, (o.slot_at / 3600000) % 24, o.state \
                     ORDER BY a.network, hour, o.state",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(network, hour, state, n)| {
                        Ok(PostBucket {
                            network: network_of(&network)?,
                            hour: u8::try_from(hour.rem_euclid(24)).unwrap_or(0),
                            state: outbox_state(&state)?,
                            count: n as u64,
                        })
                    })
                    .collect()
            }

            async fn failure_reasons(
                &self,
                campaign_id: &str,
                limit: u32,
            ) -> Result<Vec<ReasonCount>, StoreError> {
                let rows = sqlx::query_as::<_, (String, String, i64)>(
                    "SELECT state, COALESCE(last_error, ''), COUNT(*) AS n FROM outbox \
                     WHERE campaign_id = $1 AND state IN ('failed', 'missed') \
                     GROUP BY state, COALESCE(last_error, '') \
                     ORDER BY n DESC, state, COALESCE(last_error, '') LIMIT $2",
                )
                .bind(campaign_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(state, reason, n)| {
                        Ok(ReasonCount {
                            state: outbox_state(&state)?,
                            reason,
                            count: n as u64,
                        })
                    })
                    .collect()
            }

            async fn invitation_edges(
                &self,
                campaign_id: &str,
            ) -> Result<Vec<InviteEdge>, StoreError> {
                let rows = sqlx::query_as::<_, (String, Option<String>)>(
                    "SELECT invite_code, invited_by FROM signatures \
                     WHERE campaign_id = $1 AND confirmed = TRUE \
                     UNION \
                     SELECT pa.invite_code, pa.invited_by FROM participants pa \
                     JOIN pledges p ON p.participant_id = pa.id \
                     WHERE p.campaign_id = $1 AND p.status = 'active'",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(code, invited_by)| InviteEdge { code, invited_by })
                    .collect())
            }

            async fn daily_counts(&self, campaign_id: &str) -> Result<Vec<DayCount>, StoreError> {
                let rows = sqlx::query_as::<_, (i64, i64, i64)>(
                    "SELECT day, SUM(s), SUM(p) FROM ( \
                       SELECT created_at / 86400000 AS day, 1 AS s, 0 AS p FROM signatures \
                       WHERE campaign_id = $1 AND confirmed = TRUE \
                       UNION ALL \
                       SELECT created_at / 86400000 AS day, 0 AS s, 1 AS p FROM pledges \
                       WHERE campaign_id = $1 AND status = 'active' \
                     ) t GROUP BY day ORDER BY day",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(day, s, p)| DayCount {
                        day,
                        signatures: s as u64,
                        pledges: p as u64,
                    })
                    .collect())
            }
        }
    };
}

counts!(SqliteStore);
counts!(PgStore);
