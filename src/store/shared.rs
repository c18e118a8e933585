//! The [`Store`](super::Store) methods whose SQL is the same on SQLite and PostgreSQL.
//!
//! `shared_store_impl!` stamps them into each backend's `impl Store`, next to the methods
//! the backend writes itself (claiming). Why a macro and not generic code: sqlx's generic
//! executor bounds for "any database" are long and leak into every signature, while the
//! methods themselves are plain. The macro expects, at the expansion site:
//!
//! - a `pool` field holding the backend's `sqlx::Pool`;
//! - an inherent `async fn begin_write(&self) -> Result<Transaction<'static, DB>, sqlx::Error>`
//!   (SQLite must take the write lock up front with `BEGIN IMMEDIATE`: a deferred
//!   transaction that reads and then writes can fail with `SQLITE_BUSY` without waiting);
//! - an inherent `async fn write_signature(&self, &NewSignature, DateTime<Utc>)`, committing
//!   signatures its own way (SQLite groups concurrent ones into one transaction) with the
//!   stamped-in `insert_signature`;
//! - the names imported by `use super::shared::prelude::*`.
//!
//! SQL placeholders are `$1`, `$2`, ... in both databases; booleans are spelled `TRUE` and
//! `FALSE`, which SQLite (3.23+) and PostgreSQL both accept.

/// Names the expanded code uses.
pub(crate) mod prelude {
    pub(crate) use std::collections::{HashMap, HashSet};

    pub(crate) use chrono::{DateTime, Duration, Utc};
    pub(crate) use sqlx::{AssertSqlSafe, FromRow, Row};

    pub(crate) use super::super::rows::{
        AccountRow, ClaimedRow, OutboxRowRaw, ParticipantRow, PledgeRow, days_json, instant, ms,
        new_invite_code, outbox_state,
    };
    pub(crate) use super::super::{StoreError, model::*};
    pub(crate) use super::{BATCH_PARAMS, CHUNK, Params, values_rows};
}

/// Most ids bound in one `IN (...)` list or rows in one multi-row `INSERT`: far below
/// SQLite's 32,766 and PostgreSQL's 65,535 bind parameters even at 15 per row.
pub(crate) const CHUNK: usize = 500;

/// Placeholders for statements with many parameters, each bound once, in order.
///
/// sqlx binds a SQLite parameter written `$n` by asking `sqlite3_bind_parameter_name` for
/// its name, a linear scan over the statement's named parameters, so binding costs grow with
/// the square of their number: at 13 columns × 500 rows it was three quarters of planning
/// time. An anonymous `?` has no name to scan for. PostgreSQL has no `?`, so there the same
/// statement is numbered `$1, $2, ...`.
pub(crate) struct Params {
    numbered: bool,
    bound: usize,
}

/// Which placeholder spelling a database wants (see [`Params`]).
pub(crate) trait Dialect {
    const NUMBERED: bool;
}

impl Dialect for sqlx::Sqlite {
    const NUMBERED: bool = false;
}

impl Dialect for sqlx::Postgres {
    const NUMBERED: bool = true;
}

impl Params {
    pub(crate) fn new<DB: Dialect>() -> Self {
        Params {
            numbered: DB::NUMBERED,
            bound: 0,
        }
    }

    /// The next placeholder; its value must be the next one bound.
    pub(crate) fn next(&mut self) -> String {
        self.bound += 1;
        if self.numbered {
            format!("${}", self.bound)
        } else {
            "?".to_string()
        }
    }

    /// `n` placeholders separated by commas, for an `IN (...)` list or a `VALUES` row.
    pub(crate) fn list(&mut self, n: usize) -> String {
        (0..n).map(|_| self.next()).collect::<Vec<_>>().join(", ")
    }

    /// `(p, ..., p), (...)`: `rows` rows of `cols` placeholders, for a `VALUES` list.
    pub(crate) fn rows(&mut self, rows: usize, cols: usize) -> String {
        (0..rows)
            .map(|_| format!("({})", self.list(cols)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Most ids in one `IN (...)` list, and parameters in one `VALUES` list, of the statements a
/// dispatcher round runs on its batch (claimed rows, their accounts, `begin_sending`,
/// `record`): the size `picket bench dispatch` was measured with.
pub(crate) const BATCH_PARAMS: usize = 128;

/// Rows of `cols` parameters each that fit in one [`BATCH_PARAMS`] statement.
pub(crate) const fn values_rows(cols: usize) -> usize {
    BATCH_PARAMS / cols
}

/// A post may be claimed or sent only while its pledge, account and campaign all stand.
/// `$t` is the outbox table's name or alias in the surrounding statement.
macro_rules! eligible {
    ($t:literal) => {
        concat!(
            "EXISTS (SELECT 1 FROM pledges p WHERE p.id = ",
            $t,
            ".pledge_id AND p.status = 'active') AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = ",
            $t,
            ".account_id AND a.status = 'active') AND NOT EXISTS (SELECT 1 FROM campaign_state c WHERE c.campaign_id = ",
            $t,
            ".campaign_id AND c.cancelled_at IS NOT NULL)"
        )
    };
}

/// Columns of [`OutboxRowRaw`](super::rows::OutboxRowRaw), prefixed with the alias `o`.
macro_rules! outbox_columns {
    () => {
        "o.id, o.campaign_id, o.pledge_id, o.account_id, o.slot_key, o.post_name, o.template, \
         o.variant, o.run_at, o.window_end, o.state, o.attempts, o.outcome_unknown, o.last_error, \
         o.remote_id, o.remote_url, o.published_at, o.text, o.updated_at"
    };
}

macro_rules! shared_store_impl {
    ($store:ty, $db:ty, { $($own:tt)* }) => {
        /// Add one signature on `conn`, inside the caller's transaction if it holds one: each
        /// backend's `write_signature` decides how signatures are committed.
        async fn insert_signature(
            conn: &mut <$db as sqlx::Database>::Connection,
            new: &NewSignature,
            now: DateTime<Utc>,
        ) -> Result<SignatureAdded, StoreError> {
            let mailed_at = new.confirm_token_hash.as_ref().map(|_| ms(now));
            // A fresh invite code could collide with an existing one (about 2^-60): try again.
            let mut attempts = 0;
            loop {
                attempts += 1;
                let inserted = sqlx::query_as::<_, (i64, String)>(
                    "INSERT INTO signatures \
                     (campaign_id, name, email_canonical, public, invited_by, invite_code, confirmed, \
                      confirm_token_hash, confirm_sent_at, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (campaign_id, email_canonical) DO NOTHING RETURNING id, invite_code",
                )
                .bind(&new.campaign_id)
                .bind(&new.name)
                .bind(&new.email_canonical)
                .bind(new.public)
                .bind(&new.invited_by)
                .bind(new_invite_code())
                .bind(new.confirmed)
                .bind(&new.confirm_token_hash)
                .bind(mailed_at)
                .bind(ms(now))
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
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() && attempts < 3 => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            let (id, invite_code, confirmed) = sqlx::query_as::<_, (i64, String, bool)>(
                "SELECT id, invite_code, confirmed FROM signatures WHERE campaign_id = $1 AND email_canonical = $2",
            )
            .bind(&new.campaign_id)
            .bind(&new.email_canonical)
            .fetch_one(&mut *conn)
            .await?;
            Ok(SignatureAdded { id: SignatureId(id), invite_code, duplicate: true, confirmed })
        }

        /// The full rows of just-claimed posts, with their account and pledge. A row that
        /// cannot be read back (a value written by hand, a bug or a newer picket) is marked
        /// `failed` with the reason instead of failing the batch: claimed again and again, it
        /// would stop every post claimed with it.
        async fn claimed_posts(
            conn: &mut <$db as sqlx::Database>::Connection,
            ids: &[i64],
            now: DateTime<Utc>,
        ) -> Result<Vec<ClaimedPost>, StoreError> {
            let mut out = Vec::with_capacity(ids.len());
            let mut unreadable = Vec::new();
            for chunk in ids.chunks(BATCH_PARAMS) {
                let sql = format!(
                    "SELECT o.id, o.campaign_id, o.pledge_id, p.participant_id, o.account_id, \
                     o.slot_key, o.post_name, o.template, o.variant, o.idempotency_key, o.run_at, \
                     o.window_end, o.attempts, o.outcome_unknown, o.last_error, a.network, \
                     a.handle, a.server, a.credentials, a.trusted, p.tz, o.slot_at, o.day, o.days_total, \
                     pt.name AS participant_name, pt.invite_code \
                     FROM outbox o JOIN pledges p ON p.id = o.pledge_id \
                     JOIN participants pt ON pt.id = p.participant_id \
                     JOIN accounts a ON a.id = o.account_id \
                     WHERE o.id IN ({})",
                    Params::new::<$db>().list(chunk.len())
                );
                let mut q = sqlx::query(AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(*id);
                }
                for row in q.fetch_all(&mut *conn).await? {
                    let post = ClaimedRow::from_row(&row)
                        .map_err(StoreError::from)
                        .and_then(ClaimedPost::try_from);
                    match post {
                        Ok(post) => out.push(post),
                        Err(e) => unreadable.push((row.try_get::<i64, _>("id")?, e.to_string())),
                    }
                }
            }
            for (id, error) in unreadable {
                tracing::warn!(post = id, %error, "a claimed post cannot be read back: failed");
                sqlx::query(
                    "UPDATE outbox SET state = 'failed', last_error = $2, lease_owner = NULL, \
                     lease_until = NULL, updated_at = $3 WHERE id = $1 AND state = 'claimed'",
                )
                .bind(id)
                .bind(format!("unreadable row: {error}"))
                .bind(ms(now))
                .execute(&mut *conn)
                .await?;
            }
            out.sort_by_key(|p| (p.run_at, p.id));
            Ok(out)
        }

        /// Cancel the unsent posts whose `column` equals `key` (and, with `account`, only that
        /// account's) and list the ones already `sending`, inside the caller's transaction.
        async fn stop_posts(
            conn: &mut <$db as sqlx::Database>::Connection,
            column: &'static str,
            key: impl for<'q> sqlx::Encode<'q, $db> + sqlx::Type<$db> + Clone,
            account: Option<i64>,
            reason: &str,
            now: i64,
        ) -> Result<Withdrawal, StoreError> {
            let cancel = format!(
                "UPDATE outbox SET state = 'cancelled', last_error = $3, lease_owner = NULL, \
                 lease_until = NULL, updated_at = $4 \
                 WHERE {column} = $1 AND ($2 IS NULL OR account_id = $2) \
                 AND state IN ('pending', 'claimed')"
            );
            let cancelled = sqlx::query(AssertSqlSafe(cancel))
                .bind(key.clone())
                .bind(account)
                .bind(reason)
                .bind(now)
                .execute(&mut *conn)
                .await?
                .rows_affected();
            let sending = format!(
                "SELECT id FROM outbox WHERE {column} = $1 AND ($2 IS NULL OR account_id = $2) \
                 AND state = 'sending' ORDER BY id"
            );
            let in_flight = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sending))
                .bind(key)
                .bind(account)
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .map(OutboxId)
                .collect();
            Ok(Withdrawal { cancelled, in_flight })
        }

        async fn pledge_accounts(
            conn: &mut <$db as sqlx::Database>::Connection,
            pledge_ids: &[i64],
        ) -> Result<HashMap<i64, Vec<AccountId>>, StoreError> {
            let mut out: HashMap<i64, Vec<AccountId>> = HashMap::new();
            for chunk in pledge_ids.chunks(CHUNK) {
                let sql = format!(
                    "SELECT pledge_id, account_id FROM pledge_accounts WHERE pledge_id IN ({}) \
                     ORDER BY pledge_id, account_id",
                    Params::new::<$db>().list(chunk.len())
                );
                let mut q = sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(sql));
                for id in chunk {
                    q = q.bind(*id);
                }
                for (pledge, account) in q.fetch_all(&mut *conn).await? {
                    out.entry(pledge).or_default().push(AccountId(account));
                }
            }
            Ok(out)
        }

        const PARTICIPANT_COLUMNS: &str =
            "id, name, email, tz, is_local, invite_code, created_at, access_token_expires_at";
        const ACCOUNT_COLUMNS: &str =
            "id, participant_id, network, handle, server, credentials, trusted, status, status_reason, created_at";
        const PLEDGE_COLUMNS: &str =
            "id, participant_id, campaign_id, tz, days, every_secs, status, created_at, withdrawn_at, plan_error";

        #[async_trait::async_trait]
        impl $crate::store::Store for $store {
            $($own)*

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn ensure_local_participant(
                &self,
                name: &str,
                tz: &str,
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
                    "INSERT INTO participants (name, tz, is_local, invite_code, created_at) \
                     VALUES ($1, $2, TRUE, $3, $4) ON CONFLICT DO NOTHING RETURNING id",
                )
                .bind(name)
                .bind(tz)
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
                     (name, email, email_canonical, tz, is_local, invite_code, invited_by, created_at) \
                     VALUES ($1, $2, $3, $4, FALSE, $5, $6, $7) RETURNING id",
                )
                .bind(&new.name)
                .bind(&new.email)
                .bind(&new.email_canonical)
                .bind(&new.tz)
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
                sqlx::query_as::<_, ParticipantRow>(AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(Participant::try_from)
                    .transpose()
            }

            async fn participant_by_link(
                &self,
                token_hash: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<Participant>, StoreError> {
                let sql = format!(
                    "SELECT {PARTICIPANT_COLUMNS} FROM participants \
                     WHERE access_token_hash = $1 AND access_token_expires_at > $2"
                );
                sqlx::query_as::<_, ParticipantRow>(AssertSqlSafe(sql))
                    .bind(token_hash)
                    .bind(ms(now))
                    .fetch_optional(&self.pool)
                    .await?
                    .map(Participant::try_from)
                    .transpose()
            }

            async fn set_link(
                &self,
                participant: ParticipantId,
                link: Option<(&str, DateTime<Utc>)>,
            ) -> Result<(), StoreError> {
                let changed = sqlx::query(
                    "UPDATE participants SET access_token_hash = $2, access_token_expires_at = $3 \
                     WHERE id = $1",
                )
                .bind(participant.0)
                .bind(link.map(|(hash, _)| hash))
                .bind(link.map(|(_, expires)| ms(expires)))
                .execute(&self.pool)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Err(StoreError::NotFound(format!("participant {participant}")));
                }
                Ok(())
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
                    "INSERT INTO sessions (token_hash, participant_id, created_at, expires_at) \
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
                let sql = format!(
                    "SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE id = \
                     (SELECT participant_id FROM sessions WHERE token_hash = $1 AND expires_at > $2)"
                );
                sqlx::query_as::<_, ParticipantRow>(AssertSqlSafe(sql))
                    .bind(token_hash)
                    .bind(ms(now))
                    .fetch_optional(&self.pool)
                    .await?
                    .map(Participant::try_from)
                    .transpose()
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
                    "INSERT INTO mail_budget (address_hash, window_start, sent) VALUES ($1, $2, 1) \
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
                Ok(Withdrawal { cancelled: cancelled as u64, in_flight })
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
                     (participant_id, network, handle, server, credentials, trusted, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, 'active', $7, $7) RETURNING id",
                )
                .bind(new.participant_id.0)
                .bind(new.network.as_str())
                .bind(&new.handle)
                .bind(&new.server)
                .bind(Vec::<u8>::new())
                .bind(new.trusted)
                .bind(ms(now))
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query("UPDATE accounts SET credentials = $2 WHERE id = $1")
                    .bind(id)
                    .bind(seal(AccountId(id)))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(AccountId(id))
            }

            async fn get_account(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
                let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
                sqlx::query_as::<_, AccountRow>(AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?
                    .map(Account::try_from)
                    .transpose()
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
                network: crate::network::NetworkKind,
                server: &str,
                limit: u32,
            ) -> Result<Vec<Account>, StoreError> {
                let sql = format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts \
                     WHERE network = $1 AND server = $2 AND status <> 'removed' ORDER BY id LIMIT $3"
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
                if changed == 0 {
                    return Err(StoreError::NotFound(format!("account {id} (or it was removed)")));
                }
                Ok(())
            }

            async fn update_credentials(
                &self,
                id: AccountId,
                credentials: &[u8],
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let changed = sqlx::query(
                    "UPDATE accounts SET credentials = $2, updated_at = $3 \
                     WHERE id = $1 AND status <> 'removed'",
                )
                .bind(id.0)
                .bind(credentials)
                .bind(ms(now))
                .execute(&self.pool)
                .await?
                .rows_affected();
                if changed == 0 {
                    return Err(StoreError::NotFound(format!("account {id} (or it was removed)")));
                }
                Ok(())
            }

            async fn replace_credentials(
                &self,
                id: AccountId,
                old: &[u8],
                new: &[u8],
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let changed = sqlx::query(
                    "UPDATE accounts SET credentials = $3, updated_at = $4 \
                     WHERE id = $1 AND credentials = $2 AND status <> 'removed'",
                )
                .bind(id.0)
                .bind(old)
                .bind(new)
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
                     WHERE id > $1 AND status <> 'removed' AND substr(credentials, 1, 1) = $2 \
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
                    "UPDATE accounts SET status = 'removed', status_reason = 'removed by its owner', \
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
                let stopped =
                    stop_posts(&mut tx, "account_id", id.0, None, "account removed", ms(now))
                        .await?;
                tx.commit().await?;
                Ok(stopped)
            }

            async fn upsert_pledge(
                &self,
                new: &NewPledge,
                now: DateTime<Utc>,
            ) -> Result<PledgeId, StoreError> {
                let mut tx = self.begin_write().await?;
                let id = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO pledges \
                     (participant_id, campaign_id, tz, days, every_secs, status, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'active', $6, $6) \
                     ON CONFLICT (participant_id, campaign_id) DO UPDATE SET \
                     tz = excluded.tz, days = excluded.days, every_secs = excluded.every_secs, \
                     status = 'active', updated_at = excluded.updated_at, withdrawn_at = NULL, \
                     plan_error = NULL \
                     RETURNING id",
                )
                .bind(new.participant_id.0)
                .bind(&new.campaign_id)
                .bind(&new.tz)
                .bind(days_json(&new.days))
                .bind(new.every_secs)
                .bind(ms(now))
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM pledge_accounts WHERE pledge_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let wanted: std::collections::BTreeSet<AccountId> =
                    new.account_ids.iter().copied().collect();
                for account in &wanted {
                    // Only the participant's own, usable accounts can post for their pledge.
                    let linked = sqlx::query(
                        "INSERT INTO pledge_accounts (pledge_id, account_id) \
                         SELECT $1, id FROM accounts \
                         WHERE id = $2 AND participant_id = $3 AND status <> 'removed' \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(id)
                    .bind(account.0)
                    .bind(new.participant_id.0)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if linked == 0 {
                        return Err(StoreError::NotFound(format!(
                            "account {account} of participant {}",
                            new.participant_id
                        )));
                    }
                }
                // Accounts dropped from the pledge stop posting for it.
                sqlx::query(
                    "UPDATE outbox SET state = 'cancelled', last_error = 'account left the pledge', \
                     lease_owner = NULL, lease_until = NULL, updated_at = $2 \
                     WHERE pledge_id = $1 AND state IN ('pending', 'claimed') \
                     AND account_id NOT IN (SELECT account_id FROM pledge_accounts WHERE pledge_id = $1)",
                )
                .bind(id)
                .bind(ms(now))
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(PledgeId(id))
            }

            async fn get_pledge(&self, id: PledgeId) -> Result<Option<Pledge>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                let sql = format!("SELECT {PLEDGE_COLUMNS} FROM pledges WHERE id = $1");
                let Some(row) = sqlx::query_as::<_, PledgeRow>(AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&mut *conn)
                    .await?
                else {
                    return Ok(None);
                };
                let mut accounts = pledge_accounts(&mut conn, &[id.0]).await?;
                let ids = accounts.remove(&id.0).unwrap_or_default();
                row.into_pledge(ids).map(Some)
            }

            async fn pledges_of(
                &self,
                participant: ParticipantId,
            ) -> Result<Vec<Pledge>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                let sql = format!(
                    "SELECT {PLEDGE_COLUMNS} FROM pledges WHERE participant_id = $1 ORDER BY id"
                );
                let rows = sqlx::query_as::<_, PledgeRow>(AssertSqlSafe(sql))
                    .bind(participant.0)
                    .fetch_all(&mut *conn)
                    .await?;
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                let mut accounts = pledge_accounts(&mut conn, &ids).await?;
                rows.into_iter()
                    .map(|r| {
                        let ids = accounts.remove(&r.id).unwrap_or_default();
                        r.into_pledge(ids)
                    })
                    .collect()
            }

            async fn active_pledges(
                &self,
                campaign_id: &str,
                after: Option<PledgeId>,
                limit: u32,
            ) -> Result<Vec<Pledge>, StoreError> {
                let mut conn = self.pool.acquire().await?;
                let sql = format!(
                    "SELECT {PLEDGE_COLUMNS} FROM pledges \
                     WHERE campaign_id = $1 AND status = 'active' AND id > $2 ORDER BY id LIMIT $3"
                );
                let rows = sqlx::query_as::<_, PledgeRow>(AssertSqlSafe(sql))
                    .bind(campaign_id)
                    .bind(after.map_or(0, |p| p.0))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *conn)
                    .await?;
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                let mut accounts = pledge_accounts(&mut conn, &ids).await?;
                rows.into_iter()
                    .map(|r| {
                        let ids = accounts.remove(&r.id).unwrap_or_default();
                        r.into_pledge(ids)
                    })
                    .collect()
            }

            async fn withdraw(
                &self,
                participant: ParticipantId,
                campaign_id: &str,
                account: Option<AccountId>,
                now: DateTime<Utc>,
            ) -> Result<Withdrawal, StoreError> {
                let mut tx = self.begin_write().await?;
                let pledge = sqlx::query_scalar::<_, i64>(
                    "SELECT id FROM pledges WHERE participant_id = $1 AND campaign_id = $2",
                )
                .bind(participant.0)
                .bind(campaign_id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| {
                    StoreError::NotFound(format!(
                        "pledge of participant {participant} to campaign `{campaign_id}`"
                    ))
                })?;
                let reason = match account {
                    None => {
                        // Keep the first withdrawal's instant if it is repeated.
                        sqlx::query(
                            "UPDATE pledges SET status = 'withdrawn', withdrawn_at = $2, updated_at = $2 \
                             WHERE id = $1 AND status = 'active'",
                        )
                        .bind(pledge)
                        .bind(ms(now))
                        .execute(&mut *tx)
                        .await?;
                        "withdrawn"
                    }
                    Some(account) => {
                        sqlx::query(
                            "DELETE FROM pledge_accounts WHERE pledge_id = $1 AND account_id = $2",
                        )
                        .bind(pledge)
                        .bind(account.0)
                        .execute(&mut *tx)
                        .await?;
                        "account withdrawn from the pledge"
                    }
                };
                let stopped = stop_posts(
                    &mut tx,
                    "pledge_id",
                    pledge,
                    account.map(|a| a.0),
                    reason,
                    ms(now),
                )
                .await?;
                tx.commit().await?;
                Ok(stopped)
            }

            async fn apply_plan(
                &self,
                pledge_id: PledgeId,
                campaign_id: &str,
                rows: &[PlannedPost],
                now: DateTime<Utc>,
            ) -> Result<PlanApplied, StoreError> {
                let plan = PledgePlan {
                    pledge_id,
                    campaign_id: campaign_id.to_string(),
                    rows: rows.to_vec(),
                };
                self.apply_plans(std::slice::from_ref(&plan), now).await
            }

            async fn apply_plans(
                &self,
                plans: &[PledgePlan],
                now: DateTime<Utc>,
            ) -> Result<PlanApplied, StoreError> {
                let now_ms = ms(now);
                let mut applied = PlanApplied::default();
                let mut tx = self.begin_write().await?;

                // Plans of pledges withdrawn (or campaigns cancelled) since the planner read
                // them must not add or revive rows.
                let ids: Vec<i64> = plans.iter().map(|p| p.pledge_id.0).collect();
                let mut active = HashSet::new();
                for chunk in ids.chunks(CHUNK) {
                    let sql = format!(
                        "SELECT id FROM pledges WHERE status = 'active' AND NOT EXISTS \
                         (SELECT 1 FROM campaign_state c WHERE c.campaign_id = pledges.campaign_id \
                         AND c.cancelled_at IS NOT NULL) AND id IN ({})",
                        Params::new::<$db>().list(chunk.len())
                    );
                    let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql));
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    active.extend(q.fetch_all(&mut *tx).await?);
                }

                // (pledge, account, slot) of every planned row; duplicates within a plan are
                // dropped because PostgreSQL refuses to upsert one key twice in a statement.
                let mut planned: HashSet<(i64, i64, &str)> = HashSet::new();
                let mut rows: Vec<(&PledgePlan, &PlannedPost)> = Vec::new();
                for plan in plans {
                    if !active.contains(&plan.pledge_id.0) {
                        applied.skipped += 1;
                        continue;
                    }
                    for row in &plan.rows {
                        if planned.insert((plan.pledge_id.0, row.account_id.0, &row.slot_key)) {
                            rows.push((plan, row));
                        }
                    }
                }

                for chunk in rows.chunks(CHUNK) {
                    // 13 planned columns, then created_at and updated_at.
                    let mut params = Params::new::<$db>();
                    let values = (0..chunk.len())
                        .map(|_| {
                            let planned = params.list(13);
                            let (created, updated) = (params.next(), params.next());
                            format!("({planned}, 'pending', {created}, {updated})")
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    // The idempotency key is never changed: a pending row may be a retry of a
                    // request whose outcome is unknown, and only the same key dedupes it.
                    let sql = format!(
                        "INSERT INTO outbox (campaign_id, pledge_id, account_id, slot_key, post_name, \
                         template, variant, idempotency_key, run_at, window_end, slot_at, day, days_total, \
                         state, created_at, updated_at) VALUES {values} \
                         ON CONFLICT (account_id, campaign_id, slot_key) DO UPDATE SET \
                         pledge_id = excluded.pledge_id, post_name = excluded.post_name, \
                         template = excluded.template, variant = excluded.variant, \
                         run_at = excluded.run_at, window_end = excluded.window_end, \
                         slot_at = excluded.slot_at, day = excluded.day, days_total = excluded.days_total, \
                         state = 'pending', last_error = NULL, updated_at = excluded.updated_at \
                         WHERE outbox.state = 'cancelled' OR (outbox.state = 'pending' AND ( \
                         outbox.run_at <> excluded.run_at OR outbox.window_end <> excluded.window_end \
                         OR outbox.variant <> excluded.variant OR outbox.template <> excluded.template \
                         OR outbox.post_name <> excluded.post_name OR outbox.pledge_id <> excluded.pledge_id))"
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (plan, row) in chunk {
                        q = q
                            .bind(&plan.campaign_id)
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
                    applied.upserted += q.execute(&mut *tx).await?.rows_affected();
                }

                // Future pending rows that the plans no longer contain (days dropped, cadence
                // changed) go; anything claimed, sending or final stays as the record.
                let active_ids: Vec<i64> = ids.into_iter().filter(|i| active.contains(i)).collect();
                let mut stale = Vec::new();
                for chunk in active_ids.chunks(CHUNK) {
                    let mut params = Params::new::<$db>();
                    let sql = format!(
                        // `state || ''` keeps the planner off the (state, run_at) index:
                        // with millions of pending rows that index scans them all, while
                        // the (pledge_id, state) index finds these pledges' rows directly.
                        "SELECT id, pledge_id, account_id, slot_key FROM outbox \
                         WHERE state || '' = 'pending' AND run_at > {} AND pledge_id IN ({})",
                        params.next(),
                        params.list(chunk.len())
                    );
                    let mut q =
                        sqlx::query_as::<_, (i64, i64, i64, String)>(AssertSqlSafe(sql)).bind(now_ms);
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    for (id, pledge, account, slot) in q.fetch_all(&mut *tx).await? {
                        if !planned.contains(&(pledge, account, slot.as_str())) {
                            stale.push(id);
                        }
                    }
                }
                for chunk in stale.chunks(CHUNK) {
                    let sql = format!(
                        "DELETE FROM outbox WHERE state = 'pending' AND id IN ({})",
                        Params::new::<$db>().list(chunk.len())
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    applied.removed += q.execute(&mut *tx).await?.rows_affected();
                }
                tx.commit().await?;
                Ok(applied)
            }

            async fn begin_sending(
                &self,
                worker: &str,
                ids: &[OutboxId],
                now: DateTime<Utc>,
                grace: Duration,
            ) -> Result<Vec<OutboxId>, StoreError> {
                let mut out = Vec::with_capacity(ids.len());
                // One transaction for the batch: a commit per chunk cost a WAL write each.
                let mut tx = self.begin_write().await?;
                for chunk in ids.chunks(BATCH_PARAMS) {
                    // Every condition is re-checked here, in the same statement that flips the
                    // state, so a withdrawal committed a moment earlier always wins.
                    let mut p = Params::new::<$db>();
                    let (updated, owner, lease, grace_ms, closes) =
                        (p.next(), p.next(), p.next(), p.next(), p.next());
                    let sql = format!(
                        "UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_at = {updated} \
                         WHERE state = 'claimed' AND lease_owner = {owner} AND lease_until > {lease} \
                         AND window_end + {grace_ms} >= {closes} AND {} AND id IN ({}) RETURNING id",
                        eligible!("outbox"),
                        p.list(chunk.len())
                    );
                    let now = ms(now);
                    let mut q = sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
                        .bind(now)
                        .bind(worker)
                        .bind(now)
                        .bind(grace.num_milliseconds())
                        .bind(now);
                    for id in chunk {
                        q = q.bind(id.0);
                    }
                    out.extend(q.fetch_all(&mut *tx).await?.into_iter().map(OutboxId));
                }
                tx.commit().await?;
                out.sort();
                Ok(out)
            }

            async fn record(&self, outcomes: &[Outcome], now: DateTime<Utc>) -> Result<(), StoreError> {
                // One statement per kind of outcome (and per [`BATCH_PARAMS`] parameters), not per post:
                // the same guarded updates as one at a time, since each post has one outcome.
                let now = ms(now);
                let mut published = Vec::new();
                let mut retried = Vec::new();
                let mut ended = Vec::new();
                let mut reconnect = Vec::new();
                for outcome in outcomes {
                    match outcome {
                        Outcome::Published { id, remote_id, remote_url, text } => {
                            published.push((id.0, remote_id, remote_url, text));
                        }
                        Outcome::Retry { id, run_at, error, maybe_sent } => {
                            retried.push((id.0, ms(*run_at), error, *maybe_sent));
                        }
                        Outcome::Failed { id, reason } => {
                            ended.push((id.0, OutboxState::Failed.as_str(), reason));
                        }
                        Outcome::Missed { id, reason } => {
                            ended.push((id.0, OutboxState::Missed.as_str(), reason));
                        }
                        Outcome::Reconnect { id, account_id, reason } => {
                            reconnect.push((id.0, account_id.0, reason));
                        }
                    }
                }
                let mut tx = self.begin_write().await?;
                // Published wins over anything: it is what happened on the network, even if a
                // lease ran out or the window was declared closed meanwhile.
                for chunk in published.chunks(values_rows(4)) {
                    let mut p = Params::new::<$db>();
                    let values = p.rows(chunk.len(), 4);
                    let (at, updated) = (p.next(), p.next());
                    let sql = format!(
                        "WITH v (id, remote_id, remote_url, text) AS (VALUES {values}) \
                         UPDATE outbox SET state = 'published', remote_id = v.remote_id, \
                         remote_url = v.remote_url, text = v.text, published_at = {at}, \
                         last_error = NULL, lease_owner = NULL, lease_until = NULL, updated_at = {updated} \
                         FROM v WHERE outbox.id = v.id AND outbox.state <> 'published'"
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (id, remote_id, remote_url, text) in chunk {
                        q = q.bind(*id).bind(*remote_id).bind(*remote_url).bind(*text);
                    }
                    q.bind(now).bind(now).execute(&mut *tx).await?;
                }
                // A request that may have reached the network makes the next attempt's
                // outcome unknown: adapters without idempotency read back.
                for chunk in retried.chunks(values_rows(4)) {
                    let mut p = Params::new::<$db>();
                    let values = p.rows(chunk.len(), 4);
                    let updated = p.next();
                    let sql = format!(
                        "WITH v (id, run_at, last_error, maybe_sent) AS (VALUES {values}) \
                         UPDATE outbox SET state = 'pending', run_at = v.run_at, \
                         last_error = v.last_error, lease_owner = NULL, lease_until = NULL, \
                         updated_at = {updated}, \
                         outcome_unknown = CASE WHEN v.maybe_sent THEN TRUE ELSE outbox.outcome_unknown END \
                         FROM v WHERE outbox.id = v.id AND outbox.state IN ('claimed', 'sending')"
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (id, run_at, error, maybe_sent) in chunk {
                        q = q.bind(*id).bind(*run_at).bind(*error).bind(*maybe_sent);
                    }
                    q.bind(now).execute(&mut *tx).await?;
                }
                for chunk in ended.chunks(values_rows(3)) {
                    let mut p = Params::new::<$db>();
                    let values = p.rows(chunk.len(), 3);
                    let updated = p.next();
                    let sql = format!(
                        "WITH v (id, state, last_error) AS (VALUES {values}) \
                         UPDATE outbox SET state = v.state, last_error = v.last_error, \
                         lease_owner = NULL, lease_until = NULL, updated_at = {updated} \
                         FROM v WHERE outbox.id = v.id \
                         AND outbox.state IN ('pending', 'claimed', 'sending')"
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (id, state, reason) in chunk {
                        q = q.bind(*id).bind(*state).bind(*reason);
                    }
                    q.bind(now).execute(&mut *tx).await?;
                }
                // An account refused for several posts keeps the first post's reason, as when
                // they were recorded one by one.
                let mut seen = HashSet::new();
                let accounts: Vec<_> = reconnect
                    .iter()
                    .filter(|(_, account, _)| seen.insert(*account))
                    .collect();
                for chunk in accounts.chunks(values_rows(2)) {
                    let mut p = Params::new::<$db>();
                    let values = p.rows(chunk.len(), 2);
                    let updated = p.next();
                    let sql = format!(
                        "WITH v (id, status_reason) AS (VALUES {values}) \
                         UPDATE accounts SET status = 'reconnect_needed', \
                         status_reason = v.status_reason, updated_at = {updated} \
                         FROM v WHERE accounts.id = v.id AND accounts.status = 'active'"
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (_, account, reason) in chunk {
                        q = q.bind(*account).bind(*reason);
                    }
                    q.bind(now).execute(&mut *tx).await?;
                }
                for chunk in reconnect.chunks(values_rows(2)) {
                    let mut p = Params::new::<$db>();
                    let values = p.rows(chunk.len(), 2);
                    let updated = p.next();
                    let sql = format!(
                        "WITH v (id, last_error) AS (VALUES {values}) \
                         UPDATE outbox SET state = 'pending', last_error = v.last_error, \
                         lease_owner = NULL, lease_until = NULL, updated_at = {updated} \
                         FROM v WHERE outbox.id = v.id AND outbox.state IN ('claimed', 'sending')"
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (id, _, reason) in chunk {
                        q = q.bind(*id).bind(*reason);
                    }
                    q.bind(now).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn expire_missed(
                &self,
                now: DateTime<Utc>,
                grace: Duration,
            ) -> Result<u64, StoreError> {
                // The reason names the likely cause so the participant can act on it.
                let n = sqlx::query(
                    "UPDATE outbox SET state = 'missed', lease_owner = NULL, lease_until = NULL, \
                     updated_at = $1, last_error = CASE \
                       WHEN state = 'sending' THEN 'window closed; an earlier attempt may have been published (outcome unknown)' \
                       WHEN EXISTS (SELECT 1 FROM accounts a WHERE a.id = outbox.account_id AND a.status = 'reconnect_needed') \
                         THEN 'window closed while the account needed reconnecting' \
                       ELSE COALESCE('window closed before it could be sent (last error: ' || last_error || ')', \
                                     'window closed before it could be sent') END \
                     WHERE window_end < $1 - $2 \
                     AND (state IN ('pending', 'claimed') OR (state = 'sending' AND lease_until <= $1))",
                )
                .bind(ms(now))
                .bind(grace.num_milliseconds())
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n)
            }

            async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
                let due: Option<i64> = sqlx::query_scalar(concat!(
                    "SELECT MIN(o.run_at) FROM outbox o WHERE o.state = 'pending' AND ",
                    eligible!("o")
                ))
                .fetch_one(&self.pool)
                .await?;
                let lease: Option<i64> = sqlx::query_scalar(concat!(
                    "SELECT MIN(o.lease_until) FROM outbox o WHERE o.state IN ('claimed', 'sending') AND ",
                    eligible!("o")
                ))
                .fetch_one(&self.pool)
                .await?;
                due.into_iter().chain(lease).min().map(instant).transpose()
            }

            async fn outbox_states(
                &self,
                ids: &[OutboxId],
            ) -> Result<Vec<(OutboxId, OutboxState)>, StoreError> {
                let mut out = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(CHUNK) {
                    let sql = format!(
                        "SELECT id, state FROM outbox WHERE id IN ({}) ORDER BY id",
                        Params::new::<$db>().list(chunk.len())
                    );
                    let mut q = sqlx::query_as::<_, (i64, String)>(AssertSqlSafe(sql));
                    for id in chunk {
                        q = q.bind(id.0);
                    }
                    for (id, state) in q.fetch_all(&self.pool).await? {
                        out.push((OutboxId(id), outbox_state(&state)?));
                    }
                }
                Ok(out)
            }

            async fn cancel_campaign(
                &self,
                campaign_id: &str,
                reason: &str,
                now: DateTime<Utc>,
            ) -> Result<Withdrawal, StoreError> {
                let mut tx = self.begin_write().await?;
                // A repeated cancel keeps the first instant and reason.
                sqlx::query(
                    "INSERT INTO campaign_state (campaign_id, cancelled_at, reason) VALUES ($1, $2, $3) \
                     ON CONFLICT (campaign_id) DO UPDATE SET \
                     cancelled_at = COALESCE(campaign_state.cancelled_at, excluded.cancelled_at), \
                     reason = COALESCE(campaign_state.reason, excluded.reason)",
                )
                .bind(campaign_id)
                .bind(ms(now))
                .bind(reason)
                .execute(&mut *tx)
                .await?;
                let why = format!("campaign cancelled: {reason}");
                let stopped =
                    stop_posts(&mut tx, "campaign_id", campaign_id.to_string(), None, &why, ms(now))
                        .await?;
                tx.commit().await?;
                Ok(stopped)
            }

            async fn campaign_cancelled(
                &self,
                campaign_id: &str,
            ) -> Result<Option<CampaignCancelled>, StoreError> {
                let row = sqlx::query_as::<_, (i64, Option<String>)>(
                    "SELECT cancelled_at, reason FROM campaign_state \
                     WHERE campaign_id = $1 AND cancelled_at IS NOT NULL",
                )
                .bind(campaign_id)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|(at, reason)| {
                    Ok(CampaignCancelled { at: instant(at)?, reason: reason.unwrap_or_default() })
                })
                .transpose()
            }

            async fn outbox_for(
                &self,
                participant: ParticipantId,
                campaign_id: Option<&str>,
            ) -> Result<Vec<OutboxRow>, StoreError> {
                sqlx::query_as::<_, OutboxRowRaw>(concat!(
                    "SELECT ",
                    outbox_columns!(),
                    " FROM outbox o JOIN pledges p ON p.id = o.pledge_id \
                     WHERE p.participant_id = $1 AND ($2 IS NULL OR o.campaign_id = $2) \
                     ORDER BY o.run_at, o.id"
                ))
                .bind(participant.0)
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(OutboxRow::try_from)
                .collect()
            }

            async fn outbox_counts(&self, campaign_id: &str) -> Result<OutboxCounts, StoreError> {
                let rows = sqlx::query_as::<_, (String, i64)>(
                    "SELECT state, COUNT(*) FROM outbox WHERE campaign_id = $1 GROUP BY state",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                let mut counts = OutboxCounts::default();
                for (state, n) in rows {
                    counts.set(outbox_state(&state)?, n as u64);
                }
                Ok(counts)
            }

            async fn published_per_slot_duplicates(
                &self,
                campaign_id: &str,
            ) -> Result<u64, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM (SELECT account_id, slot_key FROM outbox \
                     WHERE campaign_id = $1 AND state = 'published' \
                     GROUP BY account_id, slot_key HAVING COUNT(*) > 1) d",
                )
                .bind(campaign_id)
                .fetch_one(&self.pool)
                .await?;
                Ok(n as u64)
            }

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
                    "UPDATE signatures SET confirm_sent_at = NULL WHERE id = $1 AND confirmed = FALSE",
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
                let Some((id, name, invite_code, confirmed)) = found else { return Ok(None) };
                // Two clicks at once: only one of them flips the row and says "newly".
                let newly = !confirmed
                    && sqlx::query("UPDATE signatures SET confirmed = TRUE WHERE id = $1 AND confirmed = FALSE")
                        .bind(id)
                        .execute(&self.pool)
                        .await?
                        .rows_affected()
                        == 1;
                Ok(Some(SignatureConfirmed { id: SignatureId(id), name, invite_code, newly }))
            }

            async fn try_lease(
                &self,
                name: &str,
                owner: &str,
                now: DateTime<Utc>,
                until: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let taken = sqlx::query(
                    "INSERT INTO leases (name, owner, until) VALUES ($1, $2, $4) \
                     ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until = excluded.until \
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

            async fn set_pledge_problem(
                &self,
                id: PledgeId,
                problem: Option<&str>,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                sqlx::query("UPDATE pledges SET plan_error = $2, updated_at = $3 WHERE id = $1")
                    .bind(id.0)
                    .bind(problem)
                    .bind(ms(now))
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn active_pledge_count(
                &self,
                campaign_id: &str,
                created_before: DateTime<Utc>,
            ) -> Result<u64, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM pledges \
                     WHERE campaign_id = $1 AND status = 'active' AND created_at <= $2",
                )
                .bind(campaign_id)
                .bind(ms(created_before))
                .fetch_one(&self.pool)
                .await?;
                Ok(n as u64)
            }

            async fn signature_count(&self, campaign_id: &str) -> Result<u64, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM signatures WHERE campaign_id = $1 AND confirmed = TRUE",
                )
                    .bind(campaign_id)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n as u64)
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
                    .map(|(name, at)| Ok(PublicSignature { name, created_at: instant(at)? }))
                    .collect()
            }

            async fn resolve_invite(&self, code: &str) -> Result<Option<InviteTarget>, StoreError> {
                let signed: Option<String> =
                    sqlx::query_scalar("SELECT campaign_id FROM signatures WHERE invite_code = $1")
                        .bind(code)
                        .fetch_optional(&self.pool)
                        .await?;
                if let Some(campaign_id) = signed {
                    return Ok(Some(InviteTarget { campaign_id: Some(campaign_id) }));
                }
                let participant: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM participants WHERE invite_code = $1")
                        .bind(code)
                        .fetch_optional(&self.pool)
                        .await?;
                let Some(participant) = participant else { return Ok(None) };
                let campaign_id: Option<String> = sqlx::query_scalar(
                    "SELECT campaign_id FROM pledges WHERE participant_id = $1 \
                     ORDER BY (status = 'active') DESC, id LIMIT 1",
                )
                .bind(participant)
                .fetch_optional(&self.pool)
                .await?;
                Ok(Some(InviteTarget { campaign_id }))
            }

            async fn accounts_by_network(
                &self,
                campaign_id: &str,
            ) -> Result<Vec<(crate::network::NetworkKind, u64)>, StoreError> {
                let rows = sqlx::query_as::<_, (String, i64)>(
                    "SELECT a.network, COUNT(DISTINCT a.id) FROM pledges p \
                     JOIN pledge_accounts pa ON pa.pledge_id = p.id \
                     JOIN accounts a ON a.id = pa.account_id \
                     WHERE p.campaign_id = $1 AND p.status = 'active' AND a.status <> 'removed' \
                     GROUP BY a.network ORDER BY a.network",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|(network, n)| {
                        network
                            .parse::<crate::network::NetworkKind>()
                            .map(|k| (k, n as u64))
                            .map_err(|e| StoreError::Corrupt(e.to_string()))
                    })
                    .collect()
            }

            async fn invite_counts(&self, campaign_id: &str) -> Result<Vec<InviteCount>, StoreError> {
                let rows = sqlx::query_as::<_, (String, i64)>(
                    "SELECT invited_by, COUNT(*) AS n FROM signatures \
                     WHERE campaign_id = $1 AND invited_by IS NOT NULL AND confirmed = TRUE \
                     GROUP BY invited_by ORDER BY n DESC, invited_by",
                )
                .bind(campaign_id)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows
                    .into_iter()
                    .map(|(code, n)| InviteCount { code, count: n as u64 })
                    .collect())
            }

            async fn invited_count(&self, code: &str) -> Result<u64, StoreError> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM signatures WHERE invited_by = $1) \
                          + (SELECT COUNT(*) FROM participants WHERE invited_by = $1)",
                )
                .bind(code)
                .fetch_one(&self.pool)
                .await?;
                Ok(n as u64)
            }

            async fn bulk_join(
                &self,
                strikers: &[NewStriker],
                seal: SealMany<'_>,
                now: DateTime<Utc>,
            ) -> Result<Vec<JoinedStriker>, StoreError> {
                let now_ms = ms(now);
                let mut tx = self.begin_write().await?;
                // Multi-row inserts do not promise the order of RETURNING rows, so each
                // row comes back with a unique value of its own to match it by.
                let mut participants = Vec::with_capacity(strikers.len());
                for chunk in strikers.chunks(CHUNK) {
                    let codes: Vec<String> = chunk.iter().map(|_| new_invite_code()).collect();
                    let mut params = Params::new::<$db>();
                    let values = (0..chunk.len())
                        .map(|_| {
                            let (name, tz, code) = (params.next(), params.next(), params.next());
                            format!("({name}, {tz}, FALSE, {code}, {})", params.next())
                        })
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "INSERT INTO participants (name, tz, is_local, invite_code, created_at) \
                         VALUES {values} RETURNING id, invite_code"
                    );
                    let mut q = sqlx::query_as::<_, (i64, String)>(AssertSqlSafe(sql));
                    for (s, code) in chunk.iter().zip(&codes) {
                        q = q.bind(&s.name).bind(&s.tz).bind(code).bind(now_ms);
                    }
                    let ids: HashMap<String, i64> =
                        q.fetch_all(&mut *tx).await?.into_iter().map(|(id, c)| (c, id)).collect();
                    participants.extend(codes.iter().map(|c| ids[c]));
                }

                // (striker, account of theirs, the account)
                let flat: Vec<(usize, usize, &(crate::network::NetworkKind, String, Option<String>))> =
                    strikers
                        .iter()
                        .enumerate()
                        .flat_map(|(i, s)| s.accounts.iter().enumerate().map(move |(j, a)| (i, j, a)))
                        .collect();
                let mut account_ids: HashMap<(i64, String), i64> = HashMap::with_capacity(flat.len());
                for chunk in flat.chunks(CHUNK) {
                    let mut params = Params::new::<$db>();
                    let values = (0..chunk.len())
                        .map(|_| format!("({}, 'active', {})", params.list(5), params.list(2)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "INSERT INTO accounts \
                         (participant_id, network, handle, server, credentials, status, created_at, updated_at) \
                         VALUES {values} RETURNING id, participant_id, handle"
                    );
                    let mut q = sqlx::query_as::<_, (i64, i64, String)>(AssertSqlSafe(sql));
                    for (i, _, (network, handle, server)) in chunk {
                        q = q
                            .bind(participants[*i])
                            .bind(network.as_str())
                            .bind(handle)
                            .bind(server)
                            .bind(Vec::<u8>::new())
                            .bind(now_ms)
                            .bind(now_ms);
                    }
                    for (id, participant, handle) in q.fetch_all(&mut *tx).await? {
                        account_ids.insert((participant, handle), id);
                    }
                    // Sealed credentials name the row's id: written once the ids are known.
                    let sealed: Vec<(i64, Vec<u8>)> = chunk
                        .iter()
                        .map(|(i, j, (_, handle, _))| {
                            let id = account_ids[&(participants[*i], handle.clone())];
                            (id, seal(*i, *j, AccountId(id)))
                        })
                        .collect();
                    for rows in sealed.chunks(CHUNK / 2) {
                        let mut params = Params::new::<$db>();
                        let sql = format!(
                            "UPDATE accounts SET credentials = v.column2 FROM (VALUES {}) AS v \
                             WHERE accounts.id = v.column1",
                            params.rows(rows.len(), 2)
                        );
                        let mut q = sqlx::query(AssertSqlSafe(sql));
                        for (id, credentials) in rows {
                            q = q.bind(*id).bind(credentials);
                        }
                        q.execute(&mut *tx).await?;
                    }
                }

                let mut pledges: HashMap<i64, i64> = HashMap::with_capacity(strikers.len());
                let indexed: Vec<(usize, &NewStriker)> = strikers.iter().enumerate().collect();
                for chunk in indexed.chunks(CHUNK) {
                    let mut params = Params::new::<$db>();
                    let values = (0..chunk.len())
                        .map(|_| format!("({}, 'active', {})", params.list(5), params.list(2)))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let sql = format!(
                        "INSERT INTO pledges \
                         (participant_id, campaign_id, tz, days, every_secs, status, created_at, updated_at) \
                         VALUES {values} RETURNING id, participant_id"
                    );
                    let mut q = sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(sql));
                    for (i, s) in chunk {
                        q = q
                            .bind(participants[*i])
                            .bind(&s.campaign_id)
                            .bind(&s.tz)
                            .bind(days_json(&s.days))
                            .bind(s.every_secs)
                            .bind(now_ms)
                            .bind(now_ms);
                    }
                    for (id, participant) in q.fetch_all(&mut *tx).await? {
                        pledges.insert(participant, id);
                    }
                }

                let mut joined = Vec::with_capacity(strikers.len());
                let mut links = Vec::with_capacity(flat.len());
                for (i, s) in strikers.iter().enumerate() {
                    let participant = participants[i];
                    let pledge = pledges[&participant];
                    let accounts: Vec<AccountId> = s
                        .accounts
                        .iter()
                        .map(|a| AccountId(account_ids[&(participant, a.1.clone())]))
                        .collect();
                    links.extend(accounts.iter().map(|a| (pledge, a.0)));
                    joined.push(JoinedStriker {
                        participant: ParticipantId(participant),
                        accounts,
                        pledge: PledgeId(pledge),
                    });
                }
                for chunk in links.chunks(CHUNK) {
                    let mut params = Params::new::<$db>();
                    let sql = format!(
                        "INSERT INTO pledge_accounts (pledge_id, account_id) VALUES {}",
                        (0..chunk.len())
                            .map(|_| format!("({})", params.list(2)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    let mut q = sqlx::query(AssertSqlSafe(sql));
                    for (pledge, account) in chunk {
                        q = q.bind(*pledge).bind(*account);
                    }
                    q.execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(joined)
            }
        }
    };
}
