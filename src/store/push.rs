//! Web Push subscriptions: the browsers each participant asked to be reminded in. The
//! store keeps them sealed (the caller seals: a subscription's endpoint is a capability
//! URL) and recognises a browser again by the hash of its endpoint.
//!
//! The SQL is the same on both databases: the `push_subscriptions!` macro stamps one
//! implementation of [`PushSubscriptions`] out for each backend.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::model::{ParticipantId, Sealed};
use super::rows::{instant, ms};
use super::{PgStore, SqliteStore, StoreError};

/// One stored subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct PushSubscriptionId(pub i64);

/// A browser a participant is reminded in. `Debug` shows the sealed blob's length only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPushSubscription {
    pub id: PushSubscriptionId,
    pub participant_id: ParticipantId,
    /// The subscription (endpoint and keys), sealed by the caller.
    pub sealed: Sealed,
    pub created_at: DateTime<Utc>,
    /// Why the last push failed, `None` after a delivered one.
    pub last_error: Option<String>,
}

/// Push subscriptions; part of [`Store`](super::Store).
#[async_trait]
pub trait PushSubscriptions {
    /// Keep the subscription whose endpoint hashes to `endpoint_hash` for `participant`:
    /// a browser subscribed before (by them or by someone who signed in there earlier) is
    /// handed to them, with its new keys. Then only their `keep` newest subscriptions are
    /// kept, so one participant cannot fill the database with browsers.
    async fn save_push_subscription(
        &self,
        participant: ParticipantId,
        endpoint_hash: &str,
        sealed: &Sealed,
        keep: u32,
        now: DateTime<Utc>,
    ) -> Result<PushSubscriptionId, StoreError>;
    /// Forget `participant`'s subscription of that endpoint (unsubscribing in the
    /// browser). False when they had none.
    async fn delete_push_subscription(
        &self,
        participant: ParticipantId,
        endpoint_hash: &str,
    ) -> Result<bool, StoreError>;
    /// Forget one subscription (the push service said it is gone). False when it was.
    async fn remove_push_subscription(&self, id: PushSubscriptionId) -> Result<bool, StoreError>;
    /// The participant's subscriptions, oldest first.
    async fn push_subscriptions_of(
        &self,
        participant: ParticipantId,
    ) -> Result<Vec<StoredPushSubscription>, StoreError>;
    /// Record the last push's failure (`None`: it was delivered).
    async fn set_push_error(
        &self,
        id: PushSubscriptionId,
        error: Option<&str>,
    ) -> Result<(), StoreError>;
}

type Row = (i64, i64, Vec<u8>, i64, Option<String>);

fn subscription(
    (id, participant, sealed, created_at, last_error): Row,
) -> Result<StoredPushSubscription, StoreError> {
    Ok(StoredPushSubscription {
        id: PushSubscriptionId(id),
        participant_id: ParticipantId(participant),
        sealed: Sealed::new(sealed),
        created_at: instant(created_at)?,
        last_error,
    })
}

/// [`PushSubscriptions`] for the backend `$store`.
macro_rules! push_subscriptions {
    ($store:ty) => {
        #[async_trait]
        impl PushSubscriptions for $store {
            async fn save_push_subscription(
                &self,
                participant: ParticipantId,
                endpoint_hash: &str,
                sealed: &Sealed,
                keep: u32,
                now: DateTime<Utc>,
            ) -> Result<PushSubscriptionId, StoreError> {
                let mut tx = self.begin_write().await?;
                let id = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO push_subscriptions \
                     (participant_id, endpoint_hash, sealed, created_at) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (endpoint_hash) DO UPDATE SET \
                     participant_id = excluded.participant_id, sealed = excluded.sealed, \
                     created_at = excluded.created_at, last_error = NULL \
                     RETURNING id",
                )
                .bind(participant.0)
                .bind(endpoint_hash)
                .bind(sealed.as_bytes())
                .bind(ms(now))
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "DELETE FROM push_subscriptions WHERE participant_id = $1 \
                     AND id NOT IN (SELECT id FROM push_subscriptions \
                     WHERE participant_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2)",
                )
                .bind(participant.0)
                .bind(i64::from(keep))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(PushSubscriptionId(id))
            }

            async fn delete_push_subscription(
                &self,
                participant: ParticipantId,
                endpoint_hash: &str,
            ) -> Result<bool, StoreError> {
                let deleted = sqlx::query(
                    "DELETE FROM push_subscriptions \
                     WHERE participant_id = $1 AND endpoint_hash = $2",
                )
                .bind(participant.0)
                .bind(endpoint_hash)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(deleted > 0)
            }

            async fn remove_push_subscription(
                &self,
                id: PushSubscriptionId,
            ) -> Result<bool, StoreError> {
                let deleted = sqlx::query("DELETE FROM push_subscriptions WHERE id = $1")
                    .bind(id.0)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(deleted > 0)
            }

            async fn push_subscriptions_of(
                &self,
                participant: ParticipantId,
            ) -> Result<Vec<StoredPushSubscription>, StoreError> {
                sqlx::query_as::<_, Row>(
                    "SELECT id, participant_id, sealed, created_at, last_error \
                     FROM push_subscriptions WHERE participant_id = $1 \
                     ORDER BY created_at, id",
                )
                .bind(participant.0)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(subscription)
                .collect()
            }

            async fn set_push_error(
                &self,
                id: PushSubscriptionId,
                error: Option<&str>,
            ) -> Result<(), StoreError> {
                sqlx::query("UPDATE push_subscriptions SET last_error = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(error)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}

push_subscriptions!(SqliteStore);
push_subscriptions!(PgStore);
