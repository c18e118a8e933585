//! Signatures under a campaign's declaration, their confirmation by mail, the public list of
//! signers, and where an invitation link leads.
//!
//! The SQL is the same on both databases: the `signatures!` macro stamps one implementation
//! of [`Signatures`] out for each backend. How a signature is committed differs: each
//! backend's `write_signature` calls the stamped-in `insert_signature` its own way (SQLite
//! groups concurrent signatures into one transaction, see `sqlite.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{Error as SqlxError, Postgres, Sqlite};

use super::model::*;
use super::rows::{instant, ms, new_invite_code};
use super::{PgStore, SqliteStore, StoreError};

/// Signatures and invitations; part of [`Store`](super::Store).
#[async_trait]
pub trait Signatures {
    /// Sign a campaign. The same canonical e-mail signing again is reported as a duplicate and
    /// not counted twice. A signature with a `confirm_token_hash` is recorded as mailed `now`.
    async fn add_signature(
        &self,
        new: &NewSignature,
        now: DateTime<Utc>,
    ) -> Result<SignatureAdded, StoreError>;
    /// A new confirmation token for an unconfirmed signature, recorded as mailed `now`: only
    /// if no confirmation was mailed after `not_since` (re-sends are rate-limited). The old
    /// token stops working. False when confirmed already or mailed too recently.
    async fn renew_signature_confirmation(
        &self,
        id: SignatureId,
        token_hash: &str,
        now: DateTime<Utc>,
        not_since: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// The confirmation mail could not be sent: signing again may retry at once.
    async fn confirmation_not_sent(&self, id: SignatureId) -> Result<(), StoreError>;
    /// Follow a confirmation link: the signature of `campaign_id` with this token hash now
    /// counts. Following it again changes nothing (`newly` is false); `None` when unknown.
    async fn confirm_signature(
        &self,
        campaign_id: &str,
        token_hash: &str,
    ) -> Result<Option<SignatureConfirmed>, StoreError>;
    /// Confirmed signers who chose to be listed, oldest first. Never includes e-mail addresses.
    async fn public_signatures(
        &self,
        campaign_id: &str,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<PublicSignature>, StoreError>;
    /// Where an invitation link `/i/{code}` leads: the code of a signature or a participant.
    async fn resolve_invite(&self, code: &str) -> Result<Option<InviteTarget>, StoreError>;
}

/// [`Signatures`] for the backend `$store`, whose `pool` holds a `$db` database and whose
/// `write_signature` commits one signature.
macro_rules! signatures {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Add one signature on `conn`, inside the caller's transaction if it holds one:
            /// each backend's `write_signature` decides how signatures are committed.
            pub(super) async fn insert_signature(
                conn: &mut <$db as sqlx::Database>::Connection,
                new: &NewSignature,
                now: DateTime<Utc>,
            ) -> Result<SignatureAdded, StoreError> {
                let mailed_at = new.confirm_token_hash.as_ref().map(|_| ms(now));
                // A fresh invite code could collide with an existing one (about 2^-60): try
                // again.
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let inserted = sqlx::query_as::<_, (i64, String)>(
                        "INSERT INTO signatures \
                         (campaign_id, name, email_canonical, public, invited_by, \
                         invite_code, confirmed, confirm_token_hash, confirm_sent_at, \
                         created_at, email_consent) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                         ON CONFLICT (campaign_id, email_canonical) DO NOTHING \
                         RETURNING id, invite_code",
                    )
                    .bind(new.campaign_id.as_str())
                    .bind(&new.name)
                    .bind(&new.email_canonical)
                    .bind(new.public)
                    .bind(&new.invited_by)
                    .bind(new_invite_code())
                    .bind(new.confirmed)
                    .bind(&new.confirm_token_hash)
                    .bind(mailed_at)
                    .bind(ms(now))
                    .bind(new.email_consent && new.email_canonical.is_some())
                    .fetch_optional(&mut *conn)
                    .await;
                    match inserted {
                        Ok(Some((id, invite_code))) => {
                            return Ok(SignatureAdded {
                                id: SignatureId(id),
                                invite_code,
                                duplicate: false,
                                confirmed: new.confirmed,
                            });
                        }
                        Ok(None) => break,
                        Err(SqlxError::Database(e)) if e.is_unique_violation() && attempts < 3 => {
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                let (id, invite_code, confirmed) = sqlx::query_as::<_, (i64, String, bool)>(
                    "SELECT id, invite_code, confirmed FROM signatures \
                     WHERE campaign_id = $1 AND email_canonical = $2",
                )
                .bind(new.campaign_id.as_str())
                .bind(&new.email_canonical)
                .fetch_one(&mut *conn)
                .await?;
                Ok(SignatureAdded {
                    id: SignatureId(id),
                    invite_code,
                    duplicate: true,
                    confirmed,
                })
            }
        }

        #[async_trait]
        impl Signatures for $store {
            async fn add_signature(
                &self,
                new: &NewSignature,
                now: DateTime<Utc>,
            ) -> Result<SignatureAdded, StoreError> {
                self.write_signature(new, now).await
            }

            async fn renew_signature_confirmation(
                &self,
                id: SignatureId,
                token_hash: &str,
                now: DateTime<Utc>,
                not_since: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let renewed = sqlx::query(
                    "UPDATE signatures SET confirm_token_hash = $2, confirm_sent_at = $3 \
                     WHERE id = $1 AND confirmed = FALSE \
                     AND (confirm_sent_at IS NULL OR confirm_sent_at <= $4)",
                )
                .bind(id.0)
                .bind(token_hash)
                .bind(ms(now))
                .bind(ms(not_since))
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(renewed == 1)
            }

            async fn confirmation_not_sent(&self, id: SignatureId) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE signatures SET confirm_sent_at = NULL \
                     WHERE id = $1 AND confirmed = FALSE",
                )
                .bind(id.0)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn confirm_signature(
                &self,
                campaign_id: &str,
                token_hash: &str,
            ) -> Result<Option<SignatureConfirmed>, StoreError> {
                let found = sqlx::query_as::<_, (i64, String, String, bool)>(
                    "SELECT id, name, invite_code, confirmed FROM signatures \
                     WHERE campaign_id = $1 AND confirm_token_hash = $2",
                )
                .bind(campaign_id)
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                let Some((id, name, invite_code, confirmed)) = found else {
                    return Ok(None);
                };
                // Two clicks at once: only one of them flips the row and says "newly".
                let newly = !confirmed
                    && sqlx::query(
                        "UPDATE signatures SET confirmed = TRUE \
                         WHERE id = $1 AND confirmed = FALSE",
                    )
                    .bind(id)
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                        == 1;
                Ok(Some(SignatureConfirmed {
                    id: SignatureId(id),
                    name,
                    invite_code,
                    newly,
                }))
            }

            async fn public_signatures(
                &self,
                campaign_id: &str,
                limit: u32,
                offset: u64,
            ) -> Result<Vec<PublicSignature>, StoreError> {
                let rows = sqlx::query_as::<_, (String, i64)>(
                    "SELECT name, created_at FROM signatures \
                     WHERE campaign_id = $1 AND public = TRUE AND confirmed = TRUE \
                     ORDER BY id LIMIT $2 OFFSET $3",
                )
                .bind(campaign_id)
                .bind(i64::from(limit))
                .bind(i64::try_from(offset).unwrap_or(i64::MAX))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(name, at)| {
                        Ok(PublicSignature {
                            name,
                            created_at: instant(at)?,
                        })
                    })
                    .collect()
            }

            async fn resolve_invite(&self, code: &str) -> Result<Option<InviteTarget>, StoreError> {
                let signed: Option<String> =
                    sqlx::query_scalar("SELECT campaign_id FROM signatures WHERE invite_code = $1")
                        .bind(code)
                        .fetch_optional(&self.pool)
                        .await?;
                if let Some(campaign_id) = signed {
                    return Ok(Some(InviteTarget {
                        campaign_id: Some(super::rows::parse(&campaign_id)?),
                    }));
                }
                let participant: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM participants WHERE invite_code = $1")
                        .bind(code)
                        .fetch_optional(&self.pool)
                        .await?;
                let Some(participant) = participant else {
                    return Ok(None);
                };
                let campaign_id: Option<String> = sqlx::query_scalar(
                    "SELECT campaign_id FROM pledges WHERE participant_id = $1 \
                     ORDER BY (status = 'active') DESC, id LIMIT 1",
                )
                .bind(participant)
                .fetch_optional(&self.pool)
                .await?;
                Ok(Some(InviteTarget {
                    campaign_id: campaign_id.as_deref().map(super::rows::parse).transpose()?,
                }))
            }
        }
    };
}

signatures!(SqliteStore, Sqlite);
signatures!(PgStore, Postgres);
