//! Participants and their connected accounts: creating them, finding them, changing an
//! account's status or credentials, and removing an account or a participant with all they
//! own.
//!
//! The SQL is the same on both databases: the `participants!` macro stamps one
//! implementation of [`Participants`] out for each backend. It does not seal credentials
//! (callers hand it ciphertext) nor sign anyone in (see `sessions.rs`).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Postgres, Sqlite};

use super::model::*;
use super::rows::{ACCOUNT_COLUMNS, AccountRow, PARTICIPANT_COLUMNS, ParticipantRow};
use super::rows::{ms, new_invite_code};
use super::sql::{BATCH_PARAMS, Params};
use super::{PgStore, SqliteStore, StoreError};
use crate::domain::{NetworkKind, Zone};

/// Participants and their accounts; part of [`Store`](super::Store).
#[async_trait]
pub trait Participants {
    /// The CLI's own user: found if it exists, created with `name` and `tz` otherwise.
    async fn ensure_local_participant(
        &self,
        name: &str,
        tz: Zone,
        now: DateTime<Utc>,
    ) -> Result<ParticipantId, StoreError>;
    /// A new participant (web signup), with a fresh personal invitation code.
    async fn create_participant(
        &self,
        new: &NewParticipant,
        now: DateTime<Utc>,
    ) -> Result<ParticipantId, StoreError>;
    async fn get_participant(&self, id: ParticipantId) -> Result<Option<Participant>, StoreError>;
    /// Web participants (not the CLI's own user) who gave this address, by its canonical
    /// form (see [`canonical_email`]), oldest first, at most `limit`.
    async fn participants_by_email(
        &self,
        email_canonical: &str,
        limit: u32,
    ) -> Result<Vec<Participant>, StoreError>;
    /// "Delete my data": remove the participant with their accounts (and credentials),
    /// pledges and posts, in one transaction. Posts already `sending` are reported; their
    /// outcome can no longer be recorded. Signatures are kept (they hold no link to the
    /// participant).
    async fn delete_participant(&self, id: ParticipantId) -> Result<Withdrawal, StoreError>;

    // ── accounts ─────────────────────────────────────────────────────────────────────────

    /// Add an account; its credentials are `seal(id)` for the id it gets, written in the
    /// same transaction.
    async fn add_account(
        &self,
        new: &NewAccount,
        seal: Seal<'_>,
        now: DateTime<Utc>,
    ) -> Result<AccountId, StoreError>;
    async fn get_account(&self, id: AccountId) -> Result<Option<Account>, StoreError>;
    /// A participant's accounts that are not removed, oldest first.
    async fn list_accounts(&self, participant: ParticipantId) -> Result<Vec<Account>, StoreError>;
    /// Some accounts (at most `limit`) of anyone on one server: an OAuth app registered
    /// for one of them serves every account there.
    async fn accounts_on_server(
        &self,
        network: NetworkKind,
        server: &str,
        limit: u32,
    ) -> Result<Vec<Account>, StoreError>;
    /// The accounts (not removed) of several participants at once, by id: the dispatcher
    /// tells followers where else to find a striker.
    async fn accounts_of(&self, participants: &[ParticipantId])
    -> Result<Vec<Account>, StoreError>;
    /// Mark an account usable again (its waiting posts become claimable) or in need of
    /// reconnecting. Use [`Participants::remove_account`] to remove one.
    async fn set_account_status(
        &self,
        id: AccountId,
        status: AccountStatus,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Replace the (encrypted) credentials, e.g. after a token refresh or a reconnect.
    async fn update_credentials(
        &self,
        id: AccountId,
        credentials: &Sealed,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Replace the credentials only if they still are `old` (nobody refreshed them in the
    /// meantime): re-sealing in a newer format. False when they had changed.
    async fn replace_credentials(
        &self,
        id: AccountId,
        old: &Sealed,
        new: &Sealed,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Accounts (not removed) whose sealed credentials start with the byte `prefix` (the
    /// version of the format they were sealed in), with ids after `after`, in id order, at
    /// most `limit`.
    async fn accounts_sealed_with(
        &self,
        prefix: u8,
        after: Option<AccountId>,
        limit: u32,
    ) -> Result<Vec<Account>, StoreError>;
    /// Remove an account: wipe its credentials, detach it from pledges, cancel its unsent
    /// posts. Posts already `sending` are reported, not stopped (see
    /// `participation::remove_account`, which waits for them).
    async fn remove_account(
        &self,
        id: AccountId,
        now: DateTime<Utc>,
    ) -> Result<Withdrawal, StoreError>;
}

/// [`Participants`] for the backend `$store`, whose `pool` holds a `$db` database.
macro_rules! participants {
    ($store:ty, $db:ty) => {
        impl $store {
            /// The row `sql` selects by the id bound as `$1`, decoded.
            async fn fetch_by_id<R, T>(&self, sql: String, id: i64) -> Result<Option<T>, StoreError>
            where
                R: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
                T: TryFrom<R, Error = StoreError>,
            {
                sqlx::query_as::<_, R>(AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(T::try_from)
                    .transpose()
            }
        }

        #[async_trait]
        impl Participants for $store {
            async fn ensure_local_participant(
                &self,
                name: &str,
                tz: Zone,
                now: DateTime<Utc>,
            ) -> Result<ParticipantId, StoreError> {
                const FIND: &str = "SELECT id FROM participants WHERE is_local = TRUE";
                if let Some(id) = sqlx::query_scalar::<_, i64>(FIND)
                    .fetch_optional(&self.pool)
                    .await?
                {
                    return Ok(ParticipantId(id));
                }
                // Two CLI invocations racing: the partial unique index lets one insert win.
                let inserted = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO participants \
                     (name, tz, is_local, invite_code, created_at) \
                     VALUES ($1, $2, TRUE, $3, $4) ON CONFLICT DO NOTHING RETURNING id",
                )
                .bind(name)
                .bind(tz.as_str())
                .bind(new_invite_code())
                .bind(ms(now))
                .fetch_optional(&self.pool)
                .await?;
                match inserted {
                    Some(id) => Ok(ParticipantId(id)),
                    None => sqlx::query_scalar::<_, i64>(FIND)
                        .fetch_optional(&self.pool)
                        .await?
                        .map(ParticipantId)
                        .ok_or_else(|| StoreError::NotFound("local participant".into())),
                }
            }

            async fn create_participant(
                &self,
                new: &NewParticipant,
                now: DateTime<Utc>,
            ) -> Result<ParticipantId, StoreError> {
                let id = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO participants \
                     (name, email, email_canonical, tz, is_local, invite_code, invited_by, \
                     created_at) \
                     VALUES ($1, $2, $3, $4, FALSE, $5, $6, $7) RETURNING id",
                )
                .bind(&new.name)
                .bind(&new.email)
                .bind(&new.email_canonical)
                .bind(new.tz.as_str())
                .bind(new_invite_code())
                .bind(&new.invited_by)
                .bind(ms(now))
                .fetch_one(&self.pool)
                .await?;
                Ok(ParticipantId(id))
            }

            async fn get_participant(
                &self,
                id: ParticipantId,
            ) -> Result<Option<Participant>, StoreError> {
                let sql = format!("SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE id = $1");
                self.fetch_by_id::<ParticipantRow, _>(sql, id.0).await
            }

            async fn participants_by_email(
                &self,
                email_canonical: &str,
                limit: u32,
            ) -> Result<Vec<Participant>, StoreError> {
                let sql = format!(
                    "SELECT {PARTICIPANT_COLUMNS} FROM participants \
                     WHERE email_canonical = $1 AND is_local = FALSE ORDER BY id LIMIT $2"
                );
                sqlx::query_as::<_, ParticipantRow>(AssertSqlSafe(sql))
                    .bind(email_canonical)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(Participant::try_from)
                    .collect()
            }

            async fn delete_participant(
                &self,
                id: ParticipantId,
            ) -> Result<Withdrawal, StoreError> {
                let mut tx = self.begin_write().await?;
                let in_flight = sqlx::query_scalar::<_, i64>(
                    "SELECT o.id FROM outbox o JOIN pledges p ON p.id = o.pledge_id \
                     WHERE p.participant_id = $1 AND o.state = 'sending' ORDER BY o.id",
                )
                .bind(id.0)
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(OutboxId)
                .collect();
                let cancelled: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM outbox o JOIN pledges p ON p.id = o.pledge_id \
                     WHERE p.participant_id = $1 AND o.state IN ('pending', 'claimed')",
                )
                .bind(id.0)
                .fetch_one(&mut *tx)
                .await?;
                // Accounts, pledges, their links and posts go by ON DELETE CASCADE.
                let deleted = sqlx::query("DELETE FROM participants WHERE id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    return Err(StoreError::NotFound(format!("participant {id}")));
                }
                tx.commit().await?;
                Ok(Withdrawal {
                    cancelled: cancelled as u64,
                    in_flight,
                })
            }

            async fn add_account(
                &self,
                new: &NewAccount,
                seal: Seal<'_>,
                now: DateTime<Utc>,
            ) -> Result<AccountId, StoreError> {
                let mut tx = self.begin_write().await?;
                // The sealed credentials name the row's id, known only once it is inserted.
                let id = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO accounts \
                     (participant_id, network, handle, server, credentials, trusted, \
                     route, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $8) RETURNING id",
                )
                .bind(new.participant_id.0)
                .bind(new.network.as_str())
                .bind(new.handle.as_str())
                .bind(&new.server)
                .bind(Vec::<u8>::new())
                .bind(new.trusted)
                .bind(new.route.as_str())
                .bind(ms(now))
                .fetch_one(&mut *tx)
                .await?;
                // A tap-to-post account holds no credentials: its blob stays empty.
                if new.route == AccountRoute::Api {
                    sqlx::query("UPDATE accounts SET credentials = $2 WHERE id = $1")
                        .bind(id)
                        .bind(seal(AccountId(id)).into_bytes())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(AccountId(id))
            }

            async fn get_account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
                let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
                self.fetch_by_id::<AccountRow, _>(sql, id.0).await
            }

            async fn list_accounts(
                &self,
                participant: ParticipantId,
            ) -> Result<Vec<Account>, StoreError> {
                let sql = format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts \
                     WHERE participant_id = $1 AND status <> 'removed' ORDER BY id"
                );
                sqlx::query_as::<_, AccountRow>(AssertSqlSafe(sql))
                    .bind(participant.0)
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(Account::try_from)
                    .collect()
            }

            async fn accounts_on_server(
                &self,
                network: NetworkKind,
                server: &str,
                limit: u32,
            ) -> Result<Vec<Account>, StoreError> {
                let sql = format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts \
                     WHERE network = $1 AND server = $2 AND status <> 'removed' \
                     ORDER BY id LIMIT $3"
                );
                sqlx::query_as::<_, AccountRow>(AssertSqlSafe(sql))
                    .bind(network.as_str())
                    .bind(server)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(Account::try_from)
                    .collect()
            }

            async fn accounts_of(
                &self,
                participants: &[ParticipantId],
            ) -> Result<Vec<Account>, StoreError> {
                let mut out = Vec::new();
                for chunk in participants.chunks(BATCH_PARAMS) {
                    let sql = format!(
                        "SELECT {ACCOUNT_COLUMNS} FROM accounts \
                         WHERE status <> 'removed' AND participant_id IN ({}) ORDER BY id",
                        Params::new::<$db>().list(chunk.len())
                    );
                    let mut q = sqlx::query_as::<_, AccountRow>(AssertSqlSafe(sql));
                    for p in chunk {
                        q = q.bind(p.0);
                    }
                    for row in q.fetch_all(&self.pool).await? {
                        out.push(Account::try_from(row)?);
                    }
                }
                Ok(out)
            }

            async fn set_account_status(
                &self,
                id: AccountId,
                status: AccountStatus,
                reason: Option<&str>,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                if status == AccountStatus::Removed {
                    // Removal also wipes credentials and cancels posts: one code path for it.
                    self.remove_account(id, now).await?;
                    return Ok(());
                }
                // A removed account has no credentials left: it cannot come back.
                let changed = sqlx::query(
                    "UPDATE accounts SET status = $2, status_reason = $3, updated_at = $4 \
                     WHERE id = $1 AND status <> 'removed'",
                )
                .bind(id.0)
                .bind(status.as_str())
                .bind(reason)
                .bind(ms(now))
                .execute(&self.pool)
                .await?
                .rows_affected();
                super::sql::one_row(changed, || format!("account {id} (or it was removed)"))
            }

            async fn update_credentials(
                &self,
                id: AccountId,
                credentials: &Sealed,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let changed = sqlx::query(
                    "UPDATE accounts SET credentials = $2, updated_at = $3 \
                     WHERE id = $1 AND status <> 'removed'",
                )
                .bind(id.0)
                .bind(credentials.as_bytes())
                .bind(ms(now))
                .execute(&self.pool)
                .await?
                .rows_affected();
                super::sql::one_row(changed, || format!("account {id} (or it was removed)"))
            }

            async fn replace_credentials(
                &self,
                id: AccountId,
                old: &Sealed,
                new: &Sealed,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let changed = sqlx::query(
                    "UPDATE accounts SET credentials = $3, updated_at = $4 \
                     WHERE id = $1 AND credentials = $2 AND status <> 'removed'",
                )
                .bind(id.0)
                .bind(old.as_bytes())
                .bind(new.as_bytes())
                .bind(ms(now))
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(changed > 0)
            }

            async fn accounts_sealed_with(
                &self,
                prefix: u8,
                after: Option<AccountId>,
                limit: u32,
            ) -> Result<Vec<Account>, StoreError> {
                // `substr` counts bytes of a BLOB (SQLite) and of a BYTEA (PostgreSQL).
                let sql = format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts \
                     WHERE id > $1 AND status <> 'removed' \
                     AND substr(credentials, 1, 1) = $2 \
                     ORDER BY id LIMIT $3"
                );
                sqlx::query_as::<_, AccountRow>(AssertSqlSafe(sql))
                    .bind(after.map_or(0, |a| a.0))
                    .bind(vec![prefix])
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(Account::try_from)
                    .collect()
            }

            async fn remove_account(
                &self,
                id: AccountId,
                now: DateTime<Utc>,
            ) -> Result<Withdrawal, StoreError> {
                let mut tx = self.begin_write().await?;
                let found = sqlx::query(
                    "UPDATE accounts SET status = 'removed', \
                     status_reason = 'removed by its owner', \
                     credentials = $2, updated_at = $3 WHERE id = $1",
                )
                .bind(id.0)
                .bind(Vec::<u8>::new())
                .bind(ms(now))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if found == 0 {
                    return Err(StoreError::NotFound(format!("account {id}")));
                }
                sqlx::query("DELETE FROM pledge_accounts WHERE account_id = $1")
                    .bind(id.0)
                    .execute(&mut *tx)
                    .await?;
                let stopped = Self::stop_posts(
                    &mut tx,
                    "account_id",
                    id.0,
                    None,
                    "account removed",
                    ms(now),
                )
                .await?;
                tx.commit().await?;
                Ok(stopped)
            }
        }
    };
}

participants!(SqliteStore, Sqlite);
participants!(PgStore, Postgres);
