//! The SQLite store: the embedded default, one process (web + scheduler) per database file.
//!
//! Shared methods come from `shared_store_impl!`; this file holds opening (pragmas,
//! migrations) and claiming. Every write transaction starts with `BEGIN IMMEDIATE` so
//! writers queue on `busy_timeout` instead of failing when a read lock must be upgraded.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration as StdDuration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use super::shared::prelude::*;

/// A SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Open the file at `path` (creating it if `create`), apply pragmas and run migrations.
    pub async fn open(path: &Path, create: bool) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(create)
            // WAL: readers (web pages) never block the dispatcher's writes.
            .journal_mode(SqliteJournalMode::Wal)
            // Survives kill -9 (the WAL is written before COMMIT returns); see the module
            // docs of `store` for what a power cut can cost.
            .synchronous(SqliteSynchronous::Normal)
            // Writers queue rather than fail while another transaction holds the lock.
            .busy_timeout(StdDuration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }

    /// A write transaction holding SQLite's write lock from the start.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }
}

shared_store_impl!(SqliteStore, Sqlite, {
    async fn claim_due(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedPost>, StoreError> {
        // SQLite has one writer at a time: under BEGIN IMMEDIATE nobody else can claim between
        // the SELECT and the UPDATE, so the guarded UPDATE is exclusive by itself.
        let mut tx = self.begin_write().await?;
        let ids: Vec<i64> = sqlx::query_scalar(concat!(
            "UPDATE outbox SET state = 'claimed', lease_owner = $1, lease_until = $2, \
             outcome_unknown = CASE WHEN state = 'sending' THEN TRUE ELSE outcome_unknown END, \
             updated_at = $3 \
             WHERE id IN (SELECT o.id FROM outbox o \
             WHERE ((o.state = 'pending' AND o.run_at <= $3) \
             OR (o.state IN ('claimed', 'sending') AND o.lease_until <= $3)) AND ",
            eligible!("o"),
            " ORDER BY o.run_at, o.id LIMIT $4) RETURNING id"
        ))
        .bind(worker)
        .bind(ms(lease_until))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let posts = claimed_posts(&mut tx, &ids).await?;
        tx.commit().await?;
        Ok(posts)
    }
});
