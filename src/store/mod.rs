//! The store: the only place that speaks SQL (`sqlx`).
//!
//! One [`Store`] trait, one implementation per database (SQLite embedded by default,
//! PostgreSQL for several workers), the same SQL text in both wherever the dialects allow.
//! Instants are stored as integer milliseconds since the Unix epoch (UTC) and are always
//! bound from the caller's `Clock`, never read from the database's own clock.

use std::sync::Arc;

use async_trait::async_trait;

/// Something went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed to apply.
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no database picket supports.
    #[error(
        "unsupported database URL `{0}`: use sqlite://PATH, a path to an existing SQLite file, or postgres://..."
    )]
    UnsupportedUrl(String),
}

/// Data picket keeps.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A cheap round trip, for `/healthz`.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Open (and create and migrate) the database named by `url`.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Err(StoreError::UnsupportedUrl(url.to_string()))
}
