//! Leases: a named job held by one owner at a time across processes, until a given instant
//! (one planner among several `picket serve` / `picket worker` processes).
//!
//! The SQL is the same on both databases: the `leases!` macro stamps one implementation of
//! [`Leases`] out for each backend. Instants come from the caller's clock, never the
//! database's.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::ms;
use super::{PgStore, SqliteStore, StoreError};

/// Singleton jobs' leases; part of [`Store`](super::Store).
#[async_trait]
pub trait Leases {
    /// Take or renew the lease `name` for `owner` until `until`, if nobody else holds it
    /// (singleton jobs across processes: one planner at a time).
    async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Give up the lease `name` if `owner` holds it (a clean shutdown), so another process,
    /// or this one restarted, can take it at once instead of waiting for it to run out.
    /// True when it was held by `owner`.
    async fn release_lease(&self, name: &str, owner: &str) -> Result<bool, StoreError>;
}

/// [`Leases`] for the backend `$store`.
macro_rules! leases {
    ($store:ty) => {
        #[async_trait]
        impl Leases for $store {
            async fn try_lease(
                &self,
                name: &str,
                owner: &str,
                now: DateTime<Utc>,
                until: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let taken = sqlx::query(
                    "INSERT INTO leases (name, owner, until) VALUES ($1, $2, $4) \
                     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, \
                     until = excluded.until \
                     WHERE leases.owner = excluded.owner OR leases.until <= $3",
                )
                .bind(name)
                .bind(owner)
                .bind(ms(now))
                .bind(ms(until))
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(taken == 1)
            }

            async fn release_lease(&self, name: &str, owner: &str) -> Result<bool, StoreError> {
                let released = sqlx::query("DELETE FROM leases WHERE name = $1 AND owner = $2")
                    .bind(name)
                    .bind(owner)
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                Ok(released == 1)
            }
        }
    };
}

leases!(SqliteStore);
leases!(PgStore);
