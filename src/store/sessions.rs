//! Signing in, and the mail budget that protects inboxes from sign-in mails.
//!
//! A participant has at most one magic link (a token mailed or shown once, stored as its
//! hash, with an expiry). Opening it starts a session: a token of its own in the browser's
//! cookie, also stored as a hash. Ending a session or replacing the link leaves the other
//! untouched, so each can be withdrawn alone.
//!
//! The SQL is the same on both databases: the `sessions!` macro stamps one implementation
//! of [`Sessions`] out for each backend. Tokens and addresses arrive hashed; nothing here
//! sees them in the clear.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::AssertSqlSafe;

use super::model::*;
use super::rows::{PARTICIPANT_COLUMNS, ParticipantRow, ms};
use super::{PgStore, SqliteStore, StoreError};

/// Magic links, sessions and the per-address mail budget; part of [`Store`](super::Store).
#[async_trait]
pub trait Sessions {
    /// The participant whose current magic link has this token hash, if the link has not
    /// expired at `now`.
    async fn participant_by_link(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Participant>, StoreError>;
    /// Give the participant a new magic link, `(token hash, expiry)`; the old one stops
    /// working. `None` withdraws their link. `NotFound` if there is no such participant.
    async fn set_link(
        &self,
        participant: ParticipantId,
        link: Option<(&str, DateTime<Utc>)>,
    ) -> Result<(), StoreError>;
    /// Sign a device in: a session with this token hash until `expires_at`. With
    /// `end_others`, every other session of the participant ends in the same transaction.
    /// The participant's expired sessions are cleared on the way. `NotFound` if there is
    /// no such participant.
    async fn start_session(
        &self,
        participant: ParticipantId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        end_others: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The participant signed in with this session token hash, if it has not expired at
    /// `now`.
    async fn participant_by_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Participant>, StoreError>;
    /// Sign one device out; an unknown session is not an error.
    async fn end_session(&self, token_hash: &str) -> Result<(), StoreError>;

    /// Count one mail to the address whose hash is `address_hash` against its budget of
    /// `max` mails per `window` (a window starts with its first mail). False, and nothing
    /// counted, when the budget is spent. Windows that have ended are forgotten on the way.
    async fn spend_mail_budget(
        &self,
        address_hash: &str,
        max: u32,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Whether [`Sessions::spend_mail_budget`] would allow one more mail now; counts
    /// nothing.
    async fn mail_budget_left(
        &self,
        address_hash: &str,
        max: u32,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
}

/// [`Sessions`] for the backend `$store`.
macro_rules! sessions {
    ($store:ty) => {
        impl $store {
            /// The participant `condition` finds, with a token hash bound as `$1` and `now`
            /// as `$2`.
            async fn participant_by_token(
                &self,
                condition: &str,
                token_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<Participant>, StoreError> {
                let sql =
                    format!("SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE {condition}");
                sqlx::query_as::<_, ParticipantRow>(AssertSqlSafe(sql))
                    .bind(token_hash)
                    .bind(ms(now))
                    .fetch_optional(&self.pool)
                    .await?
                    .map(Participant::try_from)
                    .transpose()
            }
        }

        #[async_trait]
        impl Sessions for $store {
            async fn participant_by_link(
                &self,
                token_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<Participant>, StoreError> {
                self.participant_by_token(
                    "access_token_hash = $1 AND access_token_expires_at > $2",
                    token_hash,
                    now,
                )
                .await
            }

            async fn set_link(
                &self,
                participant: ParticipantId,
                link: Option<(&str, DateTime<Utc>)>,
            ) -> Result<(), StoreError> {
                let changed = sqlx::query(
                    "UPDATE participants SET access_token_hash = $2, \
                     access_token_expires_at = $3 \
                     WHERE id = $1",
                )
                .bind(participant.0)
                .bind(link.map(|(hash, _)| hash))
                .bind(link.map(|(_, expires)| ms(expires)))
                .execute(&self.pool)
                .await?
                .rows_affected();
                super::sql::one_row(changed, || format!("participant {participant}"))
            }

            async fn start_session(
                &self,
                participant: ParticipantId,
                token_hash: &str,
                expires_at: DateTime<Utc>,
                end_others: bool,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "DELETE FROM sessions WHERE participant_id = $1 AND ($2 OR expires_at <= $3)",
                )
                .bind(participant.0)
                .bind(end_others)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
                let inserted = sqlx::query(
                    "INSERT INTO sessions \
                     (token_hash, participant_id, created_at, expires_at) \
                     SELECT $1, id, $3, $4 FROM participants WHERE id = $2",
                )
                .bind(token_hash)
                .bind(participant.0)
                .bind(ms(now))
                .bind(ms(expires_at))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 0 {
                    return Err(StoreError::NotFound(format!("participant {participant}")));
                }
                tx.commit().await?;
                Ok(())
            }

            async fn participant_by_session(
                &self,
                token_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<Participant>, StoreError> {
                self.participant_by_token(
                    "id = (SELECT participant_id FROM sessions \
                     WHERE token_hash = $1 AND expires_at > $2)",
                    token_hash,
                    now,
                )
                .await
            }

            async fn end_session(&self, token_hash: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn spend_mail_budget(
                &self,
                address_hash: &str,
                max: u32,
                window: Duration,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let ended = ms(now - window);
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM mail_budget WHERE window_start <= $1")
                    .bind(ended)
                    .execute(&mut *tx)
                    .await?;
                // One statement decides and counts, so two processes sending to the same
                // address at once cannot both take the last mail (the row is locked by the
                // upsert on PostgreSQL; SQLite has one writer).
                let counted = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO mail_budget (address_hash, window_start, sent) \
                     VALUES ($1, $2, 1) \
                     ON CONFLICT (address_hash) DO UPDATE SET sent = mail_budget.sent + 1 \
                     WHERE mail_budget.sent < $3 RETURNING sent",
                )
                .bind(address_hash)
                .bind(ms(now))
                .bind(i64::from(max))
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(max > 0 && counted.is_some())
            }

            async fn mail_budget_left(
                &self,
                address_hash: &str,
                max: u32,
                window: Duration,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let sent = sqlx::query_scalar::<_, i64>(
                    "SELECT sent FROM mail_budget WHERE address_hash = $1 AND window_start > $2",
                )
                .bind(address_hash)
                .bind(ms(now - window))
                .fetch_optional(&self.pool)
                .await?;
                Ok(sent.unwrap_or(0) < i64::from(max))
            }
        }
    };
}

sessions!(SqliteStore);
sessions!(PgStore);
