//! The organiser area's data: the operator's secret (an Argon2 PHC string; the caller
//! hashes), their browser sessions (token hashes with an expiry), and what the area and
//! `picket export` read: signatures for export, the published-posts ledger, the latest
//! failures and the accounts waiting to be reconnected.
//!
//! E-mail addresses leave the store here only for signers who consented: the query itself
//! blanks the others, so no caller can export them by mistake.
//!
//! The SQL is the same on both databases: the `admin!` macro stamps one implementation of
//! [`Admin`] out for each backend.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::model::{AccountId, OutboxState, SignatureId};
use super::rows::{instant, ms, parse};
use super::{PgStore, SqliteStore, StoreError};
use crate::domain::NetworkKind;

/// A signature as the organisers export it. `email` is `Some` only when the signer gave an
/// address and ticked "the organisers may e-mail me".
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportedSignature {
    pub id: SignatureId,
    pub name: String,
    pub email: Option<String>,
    /// Listed on the public signatures page.
    pub public: bool,
    /// Counted (an address given while mail is configured waits for its confirmation).
    pub confirmed: bool,
    /// The invitation code that brought them.
    pub invited_by: Option<String>,
    pub signed_at: DateTime<Utc>,
}

/// One post that went out, by picket or by hand: a line of the published-posts ledger.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LedgerPost {
    pub campaign: String,
    pub network: NetworkKind,
    pub account_id: AccountId,
    pub post: String,
    /// The slot's key and its own instant (before jitter).
    pub slot: String,
    pub slot_at: DateTime<Utc>,
    /// When picket published it, or when the person said they posted it by hand.
    pub published_at: Option<DateTime<Utc>>,
    pub link: Option<String>,
    /// `published` or `posted_by_hand`.
    pub state: OutboxState,
}

/// A post that failed or was missed, with picket's own words for why (never a remote body).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Failure {
    pub at: DateTime<Utc>,
    pub campaign: String,
    pub network: NetworkKind,
    pub account_id: AccountId,
    /// `failed` or `missed`.
    pub state: OutboxState,
    pub reason: Option<String>,
}

/// The organiser area's secret, sessions and reports; part of [`Store`](super::Store).
#[async_trait]
pub trait Admin {
    /// Replace the operator's secret with this PHC string; every admin session ends, so a
    /// new password signs out whoever held the old one.
    async fn set_admin_secret(&self, phc: &str, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// The operator's secret as stored, `None` before `picket admin` was run.
    async fn admin_secret(&self) -> Result<Option<String>, StoreError>;
    /// Sign a browser in until `expires_at`; sessions that have expired are cleared.
    async fn start_admin_session(
        &self,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Whether a session with this token hash exists and has not expired at `now`.
    async fn admin_session_valid(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Sign one browser out; an unknown session is not an error.
    async fn end_admin_session(&self, token_hash: &str) -> Result<(), StoreError>;

    /// The campaign's signatures, oldest first, addresses only where consented.
    async fn export_signatures(
        &self,
        campaign_id: &str,
    ) -> Result<Vec<ExportedSignature>, StoreError>;
    /// The campaign's published posts (by picket and by hand), in slot order.
    async fn post_ledger(&self, campaign_id: &str) -> Result<Vec<LedgerPost>, StoreError>;
    /// The `limit` most recent failed and missed posts of every campaign, newest first.
    async fn latest_failures(&self, limit: u32) -> Result<Vec<Failure>, StoreError>;
    /// Accounts waiting for their owner to reconnect them, counted by network.
    async fn reconnect_needed(&self) -> Result<Vec<(NetworkKind, u64)>, StoreError>;
}

type SignatureRow = (i64, String, Option<String>, bool, bool, Option<String>, i64);
type LedgerRow = (
    String,
    String,
    i64,
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    String,
);
type FailureRow = (i64, String, String, i64, String, Option<String>);

/// [`Admin`] for the backend `$store`.
macro_rules! admin {
    ($store:ty) => {
        #[async_trait]
        impl Admin for $store {
            async fn set_admin_secret(
                &self,
                phc: &str,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO admin_secret (id, phc, set_at) VALUES (1, $1, $2) \
                     ON CONFLICT (id) DO UPDATE SET phc = excluded.phc, set_at = excluded.set_at",
                )
                .bind(phc)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM admin_sessions")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn admin_secret(&self) -> Result<Option<String>, StoreError> {
                Ok(
                    sqlx::query_scalar::<_, String>("SELECT phc FROM admin_secret WHERE id = 1")
                        .fetch_optional(&self.pool)
                        .await?,
                )
            }

            async fn start_admin_session(
                &self,
                token_hash: &str,
                expires_at: DateTime<Utc>,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= $1")
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO admin_sessions (token_hash, created_at, expires_at) \
                     VALUES ($1, $2, $3)",
                )
                .bind(token_hash)
                .bind(ms(now))
                .bind(ms(expires_at))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn admin_session_valid(
                &self,
                token_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                Ok(sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM admin_sessions WHERE token_hash = $1 AND expires_at > $2",
                )
                .bind(token_hash)
                .bind(ms(now))
                .fetch_one(&self.pool)
                .await?
                    > 0)
            }

            async fn end_admin_session(&self, token_hash: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM admin_sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn export_signatures(
                &self,
                campaign_id: &str,
            ) -> Result<Vec<ExportedSignature>, StoreError> {
                let rows = sqlx::query_as::<_, SignatureRow>(
                    "SELECT id, name, \
                     CASE WHEN email_consent THEN email_canonical ELSE NULL END, \
                     public, confirmed, invited_by, created_at \
                     FROM signatures WHERE campaign_id = $1 ORDER BY id",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(id, name, email, public, confirmed, invited_by, at)| {
                        Ok(ExportedSignature {
                            id: SignatureId(id),
                            name,
                            email,
                            public,
                            confirmed,
                            invited_by,
                            signed_at: instant(at)?,
                        })
                    })
                    .collect()
            }

            async fn post_ledger(&self, campaign_id: &str) -> Result<Vec<LedgerPost>, StoreError> {
                let rows = sqlx::query_as::<_, LedgerRow>(
                    "SELECT o.campaign_id, a.network, o.account_id, o.post_name, o.slot_key, \
                     o.slot_at, \
                     CASE WHEN o.state = 'published' THEN o.published_at ELSE o.confirmed_at END, \
                     CASE WHEN o.state = 'published' THEN o.remote_url ELSE o.confirmed_url END, \
                     o.state \
                     FROM outbox o JOIN accounts a ON a.id = o.account_id \
                     WHERE o.campaign_id = $1 AND o.state IN ('published', 'posted_by_hand') \
                     ORDER BY o.slot_at, o.id",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(
                        |(campaign, network, account, post, slot, slot_at, at, link, state)| {
                            Ok(LedgerPost {
                                campaign,
                                network: parse(&network)?,
                                account_id: AccountId(account),
                                post,
                                slot,
                                slot_at: instant(slot_at)?,
                                published_at: at.map(instant).transpose()?,
                                link,
                                state: parse(&state)?,
                            })
                        },
                    )
                    .collect()
            }

            async fn latest_failures(&self, limit: u32) -> Result<Vec<Failure>, StoreError> {
                let rows = sqlx::query_as::<_, FailureRow>(
                    "SELECT o.updated_at, o.campaign_id, a.network, o.account_id, o.state, \
                     o.last_error \
                     FROM outbox o JOIN accounts a ON a.id = o.account_id \
                     WHERE o.state IN ('failed', 'missed') \
                     ORDER BY o.updated_at DESC, o.id DESC LIMIT $1",
                )
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(at, campaign, network, account, state, reason)| {
                        Ok(Failure {
                            at: instant(at)?,
                            campaign,
                            network: parse(&network)?,
                            account_id: AccountId(account),
                            state: parse(&state)?,
                            reason,
                        })
                    })
                    .collect()
            }

            async fn reconnect_needed(&self) -> Result<Vec<(NetworkKind, u64)>, StoreError> {
                let rows = sqlx::query_as::<_, (String, i64)>(
                    "SELECT network, COUNT(*) FROM accounts \
                     WHERE status = 'reconnect_needed' GROUP BY network ORDER BY network",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(network, n)| Ok((parse(&network)?, u64::try_from(n).unwrap_or(0))))
                    .collect()
            }
        }
    };
}

admin!(SqliteStore);
admin!(PgStore);
