//! The PostgreSQL store: any number of `picket serve` / `picket worker` processes on any
//! number of machines share one database.
//!
//! The areas' methods (`participants.rs`, `outbox.rs`, ...) are stamped in by their
//! macros; this file holds what only PostgreSQL does: connecting (migrations), write
//! transactions, committing signatures and the claiming statement, which uses
//! `FOR UPDATE SKIP LOCKED` so concurrent workers take disjoint batches without waiting on
//! each other.

use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnection, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};

use super::model::{NewSignature, PlannedPost, PledgePlan, SignatureAdded};
use super::pledges::planned_upsert_sql;
use super::rows::ms;
use super::sql::{CHUNK, Params, eligible};
use super::{Store, StoreError};

/// A PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
}

impl PgStore {
    /// Insert the planned rows or bring their pending rows up to date, in the caller's
    /// transaction; the number of rows added or changed.
    pub(super) async fn upsert_planned(
        conn: &mut PgConnection,
        rows: &[(&PledgePlan, &PlannedPost)],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut upserted = 0;
        for chunk in rows.chunks(CHUNK) {
            // 13 planned columns, then created_at and updated_at.
            let mut params = Params::new::<Postgres>();
            let values = params.rows_with(chunk.len(), |p| {
                let planned = p.list(13);
                let (created, updated) = (p.next(), p.next());
                format!("({planned}, 'pending', {created}, {updated})")
            });
            let sql = planned_upsert_sql(&format!("VALUES {values}"));
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for (plan, row) in chunk {
                q = q
                    .bind(plan.campaign_id.as_str())
                    .bind(plan.pledge_id.0)
                    .bind(row.account_id.0)
                    .bind(&row.slot_key)
                    .bind(&row.post_name)
                    .bind(&row.template)
                    .bind(row.variant)
                    .bind(&row.idempotency_key)
                    .bind(ms(row.run_at))
                    .bind(ms(row.window_end))
                    .bind(ms(row.slot_at))
                    .bind(row.day)
                    .bind(row.days_total)
                    .bind(now_ms)
                    .bind(now_ms);
            }
            upserted += q.execute(&mut *conn).await?.rows_affected();
        }
        Ok(upserted)
    }

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
    pub(super) async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// One signature, committed by itself: PostgreSQL takes concurrent inserts side by side.
    pub(super) async fn write_signature(
        &self,
        new: &NewSignature,
        now: DateTime<Utc>,
    ) -> Result<SignatureAdded, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Self::insert_signature(&mut conn, new, now).await
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

impl PgStore {
    /// Lease up to `limit` due rows to `worker` (see [`Outbox::claim_due`]), in the
    /// caller's transaction; their ids.
    ///
    /// [`Outbox::claim_due`]: super::Outbox::claim_due
    pub(super) async fn claim_ids(
        conn: &mut PgConnection,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<i64>, sqlx::Error> {
        // Due rows and expired leases are looked up apart, each in its index's `run_at`
        // order and stopping after `$4` rows, then merged: one `OR` made the planner collect,
        // check and sort every due row on each claim. A row locked here but not among the
        // first `$4` is released at commit, a moment later. Due rows are read by their 10 s
        // bucket of `run_at` and id (the `outbox_due` index, migration 0023).
        sqlx::query_scalar(concat!(
            "WITH due AS (SELECT o.id, o.run_at FROM outbox o \
             WHERE o.state = 'pending' AND o.run_at / 10000 <= $3 / 10000 \
             AND o.run_at <= $3 AND ",
            eligible!("o"),
            " ORDER BY o.run_at / 10000, o.id LIMIT $4 FOR UPDATE OF o SKIP LOCKED), \
             lapsed AS (SELECT o.id, o.run_at FROM outbox o \
             WHERE o.state IN ('claimed', 'sending') AND o.lease_until <= $3 AND ",
            eligible!("o"),
            " ORDER BY o.run_at, o.id LIMIT $4 FOR UPDATE OF o SKIP LOCKED), \
             chosen AS (SELECT id FROM \
             (SELECT id, run_at FROM due UNION ALL SELECT id, run_at FROM lapsed) u \
             ORDER BY run_at, id LIMIT $4) \
             UPDATE outbox SET state = 'claimed', lease_owner = $1, lease_until = $2, \
             outcome_unknown = \
             CASE WHEN outbox.state = 'sending' THEN TRUE ELSE outbox.outcome_unknown END, \
             updated_at = $3 FROM chosen WHERE outbox.id = chosen.id RETURNING outbox.id"
        ))
        .bind(worker)
        .bind(ms(lease_until))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(conn)
        .await
    }
}
