//! Workers: the dispatching processes and their heartbeats, so that the posts a dead
//! worker held are taken over at once instead of when their leases run out. A lease then
//! only guards a post against live workers.
//!
//! Taking over changes no state: it makes the dead worker's leases lapse now, and the next
//! claim ([`Outbox::claim_due`](super::Outbox::claim_due)) takes the posts as it takes any
//! lapsed lease (those that were `sending` come back flagged `outcome_unknown`). The SQL is
//! the same on both databases: the `workers!` macro stamps one implementation out for each
//! backend. Instants come from the caller's clock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::ms;
use super::{PgStore, SqliteStore, StoreError};

/// Which lease owners count as dead for [`Workers::take_over_leases`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadWorkers {
    /// Workers whose last heartbeat is older than this instant.
    SilentSince(DateTime<Utc>),
    /// Those, and owners that never sent a heartbeat (a picket from before heartbeats, or
    /// a name no process uses any more). Checked once, when a dispatcher starts: it reads
    /// every lease, where the periodic check reads only the dead workers' ones.
    SilentSinceOrUnknown(DateTime<Utc>),
}

/// Dispatching workers' heartbeats; part of [`Store`](super::Store).
#[async_trait]
pub trait Workers {
    /// Say that `worker` is alive at `now` (registering it the first time).
    async fn heartbeat(&self, worker: &str, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Forget `worker`: it stopped cleanly and holds no lease any more.
    async fn retire(&self, worker: &str) -> Result<(), StoreError>;
    /// Make the leases held by `dead` workers (never `worker`'s own) lapse at `now`, so the
    /// next claim takes their posts over, and forget those workers. The number of posts
    /// whose lease was cut short.
    async fn take_over_leases(
        &self,
        worker: &str,
        dead: DeadWorkers,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
}

/// [`Workers`] for the backend `$store`.
macro_rules! workers {
    ($store:ty) => {
        #[async_trait]
        impl Workers for $store {
            async fn heartbeat(&self, worker: &str, now: DateTime<Utc>) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO workers (name, started_at, heartbeat_at) VALUES ($1, $2, $2) \
                     ON CONFLICT (name) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                )
                .bind(worker)
                .bind(ms(now))
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn retire(&self, worker: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM workers WHERE name = $1")
                    .bind(worker)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn take_over_leases(
                &self,
                worker: &str,
                dead: DeadWorkers,
                now: DateTime<Utc>,
            ) -> Result<u64, StoreError> {
                let (silent_since, unknown) = match dead {
                    DeadWorkers::SilentSince(t) => (t, false),
                    DeadWorkers::SilentSinceOrUnknown(t) => (t, true),
                };
                // The common case, every second on every worker: nobody died. A plain read
                // finds that without taking SQLite's write lock or reading any lease.
                let gone: Option<String> = sqlx::query_scalar(
                    "SELECT name FROM workers WHERE heartbeat_at < $1 AND name <> $2 LIMIT 1",
                )
                .bind(ms(silent_since))
                .bind(worker)
                .fetch_optional(&self.pool)
                .await?;
                if gone.is_none() && !unknown {
                    return Ok(0);
                }
                let mut tx = self.begin_write().await?;
                // Reads the leases still running (the lease index), never the whole outbox.
                let taken = sqlx::query(
                    "UPDATE outbox SET lease_until = $1, updated_at = $1 \
                     WHERE state IN ('claimed', 'sending') AND lease_until > $1 \
                     AND lease_owner <> $2 AND (lease_owner IN \
                     (SELECT name FROM workers WHERE heartbeat_at < $3) \
                     OR ($4 AND lease_owner NOT IN (SELECT name FROM workers)))",
                )
                .bind(ms(now))
                .bind(worker)
                .bind(ms(silent_since))
                .bind(unknown)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                sqlx::query("DELETE FROM workers WHERE heartbeat_at < $1 AND name <> $2")
                    .bind(ms(silent_since))
                    .bind(worker)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(taken)
            }
        }
    };
}

workers!(SqliteStore);
workers!(PgStore);
