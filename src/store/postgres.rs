//! The PostgreSQL store: any number of `picket serve` / `picket worker` processes on any
//! number of machines share one database.
//!
//! Shared methods come from `shared_store_impl!`; this file holds connecting (migrations)
//! and claiming, which uses `FOR UPDATE SKIP LOCKED` so concurrent workers take disjoint
//! batches without waiting on each other.

use std::time::Duration as StdDuration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};

use super::shared::prelude::*;

/// A PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connect to `url` and run migrations (sqlx serialises concurrent migrators with an
    /// advisory lock, so several processes may start at once).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(StdDuration::from_secs(30))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    /// Plain `BEGIN` (READ COMMITTED): every guarded UPDATE re-checks its row after waiting
    /// on a lock, which is what the state machine relies on.
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// One signature, committed by itself: PostgreSQL takes concurrent inserts side by side.
    async fn write_signature(
        &self,
        new: &NewSignature,
        now: DateTime<Utc>,
    ) -> Result<SignatureAdded, StoreError> {
        let mut conn = self.pool.acquire().await?;
        insert_signature(&mut conn, new, now).await
    }
}

shared_store_impl!(PgStore, Postgres, {
    async fn claim_due(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedPost>, StoreError> {
        // Due rows and expired leases are looked up apart, each in its index's `run_at`
        // order and stopping after `$4` rows, then merged: one `OR` made the planner collect,
        // check and sort every due row on each claim. A row locked here but not among the
        // first `$4` is released at commit, a moment later.
        let mut tx = self.begin_write().await?;
        let ids: Vec<i64> = sqlx::query_scalar(concat!(
            "WITH due AS (SELECT o.id, o.run_at FROM outbox o \
             WHERE o.state = 'pending' AND o.run_at <= $3 AND ",
            eligible!("o"),
            " ORDER BY o.run_at, o.id LIMIT $4 FOR UPDATE OF o SKIP LOCKED), \
             lapsed AS (SELECT o.id, o.run_at FROM outbox o \
             WHERE o.state IN ('claimed', 'sending') AND o.lease_until <= $3 AND ",
            eligible!("o"),
            " ORDER BY o.run_at, o.id LIMIT $4 FOR UPDATE OF o SKIP LOCKED), \
             chosen AS (SELECT id FROM (SELECT id, run_at FROM due UNION ALL SELECT id, run_at FROM lapsed) u \
             ORDER BY run_at, id LIMIT $4) \
             UPDATE outbox SET state = 'claimed', lease_owner = $1, lease_until = $2, \
             outcome_unknown = CASE WHEN outbox.state = 'sending' THEN TRUE ELSE outbox.outcome_unknown END, \
             updated_at = $3 FROM chosen WHERE outbox.id = chosen.id RETURNING outbox.id"
        ))
        .bind(worker)
        .bind(ms(lease_until))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let posts = claimed_posts(&mut tx, &ids, now).await?;
        tx.commit().await?;
        Ok(posts)
    }
});
