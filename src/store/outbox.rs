//! The outbox: one row per post, from claimed through sent to its recorded outcome, and
//! stopping posts (a withdrawn pledge, a removed account, a cancelled campaign).
//!
//! The SQL is the same on both databases except for the placeholders of statements with
//! many parameters ([`Params`]: PostgreSQL takes arrays) and for the claiming statement
//! itself, which each backend writes out as `claim_posts` (SQLite: a guarded `UPDATE` under
//! `BEGIN IMMEDIATE`, then the rows read; PostgreSQL: `FOR UPDATE SKIP LOCKED`, returning
//! the rows in the same statement). The `outbox!` macro stamps one implementation of
//! [`Outbox`] out for each backend around it.
//!
//! A row that cannot be read back once claimed (a value written by hand, a bug or a newer
//! picket) is marked `failed` with the reason, so it cannot stop the posts claimed with it.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::{AssertSqlSafe, FromRow, Postgres, Row, Sqlite};

use super::model::*;
use super::rows::{ClaimedRow, OUTBOX_COLUMNS, OutboxRowRaw, instant, ms, outbox_state};
use super::sql::{BindRows, CHUNK, Dialect, Params, eligible};
use super::{PgStore, SqliteStore, StoreError};

/// How long after its window and grace a post whose outcome is unknown may still be read
/// back (a dispatcher asks the network whether an earlier attempt landed) before
/// [`Outbox::expire_missed`] calls it missed without an answer.
pub const READ_BACK_WITHIN: Duration = Duration::minutes(15);

/// Posts on their way out, and campaigns stopped; part of [`Store`](super::Store).
#[async_trait]
pub trait Outbox {
    // ── dispatcher ───────────────────────────────────────────────────────────────────────

    /// Lease up to `limit` due posts to `worker` until `lease_until`: `pending` rows with
    /// `run_at <= now`, and `claimed`/`sending` rows whose lease expired (a vanished worker;
    /// those from `sending` come back flagged `outcome_unknown`). Posts of withdrawn pledges,
    /// cancelled campaigns and accounts that are not active are never claimed. Exclusive:
    /// concurrent callers never get the same row. A claimed row that cannot be read back is
    /// not returned but marked `failed` ("unreadable row: ...").
    async fn claim_due(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedPost>, StoreError>;
    /// The point of no return, in one statement for the batch: `claimed` → `sending` for the
    /// rows still leased to `worker` whose pledge, account and campaign are still active and
    /// whose window (plus `grace`) is still open. Returns the ids that may be sent now; send
    /// nothing else.
    async fn begin_sending(
        &self,
        worker: &str,
        ids: &[OutboxId],
        now: DateTime<Utc>,
        grace: Duration,
    ) -> Result<Vec<OutboxId>, StoreError>;
    /// Record what happened to sent posts, all in one transaction.
    async fn record(&self, outcomes: &[Outcome], now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Posts whose window closed more than `grace` ago without being sent become `missed`:
    /// `pending`/`claimed` ones, and `sending` ones whose worker's lease ran out. A post an
    /// earlier attempt may have published (`outcome_unknown`, or `sending` under a lapsed
    /// lease) is left to a dispatcher to read back for [`READ_BACK_WITHIN`] more, so it is
    /// not called missed while it may be on the network; after that it is missed, saying so.
    async fn expire_missed(&self, now: DateTime<Utc>, grace: Duration) -> Result<u64, StoreError>;
    /// When the next post becomes claimable (a due time or a lease expiry), if any. May be in
    /// the past: then there is work now.
    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// The current state of each of `ids` that exists.
    async fn outbox_states(
        &self,
        ids: &[OutboxId],
    ) -> Result<Vec<(OutboxId, OutboxState)>, StoreError>;
    /// A participant's posts (all campaigns, or one), by `run_at`.
    async fn outbox_for(
        &self,
        participant: ParticipantId,
        campaign_id: Option<&str>,
    ) -> Result<Vec<OutboxRow>, StoreError>;

    // ── campaigns ────────────────────────────────────────────────────────────────────────

    /// Stop a campaign everywhere: cancel its unsent posts; later claims skip it.
    async fn cancel_campaign(
        &self,
        campaign_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Withdrawal, StoreError>;
    async fn campaign_cancelled(
        &self,
        campaign_id: &str,
    ) -> Result<Option<CampaignCancelled>, StoreError>;
}

/// The columns a dispatcher needs of each claimed post in `from` (the outbox, or the rows
/// a claiming statement just updated), with its pledge, participant and account: to be
/// followed by a `WHERE` on `o`.
pub(super) fn claimed_select(from: &str) -> String {
    format!(
        "SELECT o.id, o.campaign_id, o.pledge_id, p.participant_id, \
         o.account_id, o.slot_key, o.post_name, o.template, o.variant, \
         o.idempotency_key, o.run_at, o.window_end, o.attempts, \
         o.outcome_unknown, o.last_error, a.network, a.handle, a.server, \
         a.credentials, a.trusted, a.route, p.tz, o.slot_at, o.day, o.days_total, \
         pt.name AS participant_name, pt.invite_code \
         FROM {from} o JOIN pledges p ON p.id = o.pledge_id \
         JOIN participants pt ON pt.id = p.participant_id \
         JOIN accounts a ON a.id = o.account_id"
    )
}

/// [`Outbox`] for the backend `$store`, whose `pool` holds a `$db` database and whose
/// `claim_posts` leases the due rows.
macro_rules! outbox {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Cancel the unsent posts whose `column` equals `key` (and, with `account`,
            /// only that account's) and list the ones already `sending`, inside the
            /// caller's transaction.
            pub(super) async fn stop_posts(
                conn: &mut <$db as sqlx::Database>::Connection,
                column: &'static str,
                key: impl for<'q> sqlx::Encode<'q, $db> + sqlx::Type<$db> + Clone,
                account: Option<i64>,
                reason: &str,
                now: i64,
            ) -> Result<Withdrawal, StoreError> {
                let cancel = format!(
                    "UPDATE outbox SET state = 'cancelled', last_error = $3, \
                     lease_owner = NULL, lease_until = NULL, updated_at = $4 \
                     WHERE {column} = $1 AND ($2 IS NULL OR account_id = $2) \
                     AND state IN ('pending', 'claimed', 'handed_off')"
                );
                // A handed-off post keeps its `scheduled_id`: cancelled here at once, and
                // deleted from the server's schedule by `HandOffs`' recall.
                let cancelled = sqlx::query(AssertSqlSafe(cancel))
                    .bind(key.clone())
                    .bind(account)
                    .bind(reason)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?
                    .rows_affected();
                let sending = format!(
                    "SELECT id FROM outbox \
                     WHERE {column} = $1 AND ($2 IS NULL OR account_id = $2) \
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
                Ok(Withdrawal {
                    cancelled,
                    in_flight,
                })
            }

            /// A guarded `UPDATE ... FROM v` over `rows` of `cols` columns each, one
            /// statement per [`Dialect::rows_at_once`] of them: `sql` writes it around the
            /// body of the table `v`, and each placeholder it takes from the [`Params`]
            /// after the rows' is bound to `now`.
            async fn update_from_rows<R: Sync>(
                conn: &mut <$db as sqlx::Database>::Connection,
                rows: &[R],
                cols: usize,
                now: i64,
                sql: impl Fn(&str, &mut Params) -> String + Send,
            ) -> Result<(), StoreError>
            where
                $db: BindRows<R>,
            {
                for chunk in rows.chunks(<$db as Dialect>::rows_at_once(cols)) {
                    let mut p = Params::new::<$db>();
                    let values = p.table(chunk.len(), cols);
                    let rows_bound = p.bound();
                    let sql = sql(&values, &mut p);
                    let q = <$db as BindRows<R>>::bind_rows(sqlx::query(AssertSqlSafe(sql)), chunk);
                    (rows_bound..p.bound())
                        .fold(q, |q, _| q.bind(now))
                        .execute(&mut *conn)
                        .await?;
                }
                Ok(())
            }

            /// The full rows of just-claimed posts, with their account and pledge (see
            /// [`Self::read_claimed`]).
            pub(super) async fn claimed_posts(
                conn: &mut <$db as sqlx::Database>::Connection,
                ids: &[i64],
                now: DateTime<Utc>,
            ) -> Result<Vec<ClaimedPost>, StoreError> {
                let mut rows = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(<$db as Dialect>::IDS_AT_ONCE) {
                    let sql = format!(
                        "{} WHERE o.id{}",
                        claimed_select("outbox"),
                        Params::new::<$db>().ids(chunk.len())
                    );
                    let q = <$db as Dialect>::bind_ids(sqlx::query(AssertSqlSafe(sql)), chunk);
                    rows.extend(q.fetch_all(&mut *conn).await?);
                }
                Self::read_claimed(conn, rows, now).await
            }

            /// Claimed posts from rows of [`claimed_select`], by `run_at`. A row that
            /// cannot be read back is marked `failed` with the reason instead of failing
            /// the batch: claimed again and again, it would stop every post claimed with
            /// it.
            pub(super) async fn read_claimed(
                conn: &mut <$db as sqlx::Database>::Connection,
                rows: Vec<<$db as sqlx::Database>::Row>,
                now: DateTime<Utc>,
            ) -> Result<Vec<ClaimedPost>, StoreError> {
                let mut out = Vec::with_capacity(rows.len());
                let mut unreadable = Vec::new();
                for row in rows {
                    let id: i64 = row.try_get("id")?;
                    let post = ClaimedRow::from_row(&row)
                        .map_err(StoreError::from)
                        .and_then(ClaimedPost::try_from);
                    match post {
                        Ok(post) => out.push(post),
                        Err(e) => unreadable.push((id, e.to_string())),
                    }
                }
                for (id, error) in unreadable {
                    tracing::warn!(
                        post = id,
                        error = error.as_str(),
                        "claimed post unreadable: failed"
                    );
                    sqlx::query(
                        "UPDATE outbox SET state = 'failed', last_error = $2, \
                         lease_owner = NULL, lease_until = NULL, updated_at = $3 \
                         WHERE id = $1 AND state = 'claimed'",
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
        }

        #[async_trait]
        impl Outbox for $store {
            async fn claim_due(
                &self,
                worker: &str,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
                limit: u32,
            ) -> Result<Vec<ClaimedPost>, StoreError> {
                let mut tx = self.begin_write().await?;
                let posts = Self::claim_posts(&mut tx, worker, now, lease_until, limit).await?;
                tx.commit().await?;
                Ok(posts)
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
                let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
                for chunk in ids.chunks(<$db as Dialect>::IDS_AT_ONCE) {
                    // Every condition is re-checked here, in the same statement that flips
                    // the state, so a withdrawal committed a moment earlier always wins.
                    let mut p = Params::new::<$db>();
                    let (updated, owner, lease, grace_ms, closes) =
                        (p.next(), p.next(), p.next(), p.next(), p.next());
                    let sql = format!(
                        "UPDATE outbox SET state = 'sending', attempts = attempts + 1, \
                         updated_at = {updated} \
                         WHERE state = 'claimed' AND lease_owner = {owner} \
                         AND lease_until > {lease} \
                         AND window_end + {grace_ms} >= {closes} AND {} AND id{} \
                         RETURNING id",
                        eligible!("outbox"),
                        p.ids(chunk.len())
                    );
                    let now = ms(now);
                    let q = sqlx::query(AssertSqlSafe(sql))
                        .bind(now)
                        .bind(worker)
                        .bind(now)
                        .bind(grace.num_milliseconds())
                        .bind(now);
                    for row in <$db as Dialect>::bind_ids(q, chunk)
                        .fetch_all(&mut *tx)
                        .await?
                    {
                        out.push(OutboxId(row.try_get(0)?));
                    }
                }
                tx.commit().await?;
                out.sort();
                Ok(out)
            }

            async fn record(
                &self,
                outcomes: &[Outcome],
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                // One statement per kind of outcome (and per [`Dialect::rows_at_once`] rows),
                // not per post: the same guarded updates as one at a time, since each post
                // has one outcome.
                let now = ms(now);
                let mut published = Vec::new();
                let mut retried = Vec::new();
                let mut ended = Vec::new();
                let mut reconnect = Vec::new();
                let mut reminded = Vec::new();
                for outcome in outcomes {
                    match outcome {
                        Outcome::Published {
                            id,
                            remote_id,
                            remote_url,
                            text,
                        } => {
                            published.push((id.0, remote_id, remote_url, text));
                        }
                        Outcome::Retry {
                            id,
                            run_at,
                            error,
                            maybe_sent,
                        } => {
                            retried.push((id.0, ms(*run_at), error, *maybe_sent));
                        }
                        Outcome::Failed { id, reason } => {
                            ended.push((id.0, OutboxState::Failed.as_str(), reason));
                        }
                        Outcome::Missed { id, reason } => {
                            ended.push((id.0, OutboxState::Missed.as_str(), reason));
                        }
                        Outcome::Reminded { id, text } => reminded.push((id.0, text)),
                        Outcome::Reconnect {
                            id,
                            account_id,
                            reason,
                        } => {
                            reconnect.push((id.0, account_id.0, reason));
                        }
                    }
                }
                let mut tx = self.begin_write().await?;
                // Published wins over anything: it is what happened on the network, even if
                // a lease ran out or the window was declared closed meanwhile.
                Self::update_from_rows(&mut tx, &published, 4, now, |values, p| {
                    let (at, updated) = (p.next(), p.next());
                    format!(
                        "WITH v (id, remote_id, remote_url, text) AS ({values}) \
                         UPDATE outbox SET state = 'published', remote_id = v.remote_id, \
                         remote_url = v.remote_url, text = v.text, published_at = {at}, \
                         last_error = NULL, lease_owner = NULL, lease_until = NULL, \
                         updated_at = {updated} \
                         FROM v WHERE outbox.id = v.id AND outbox.state <> 'published'"
                    )
                })
                .await?;
                // A request that may have reached the network makes the next attempt's
                // outcome unknown: adapters without idempotency read back.
                Self::update_from_rows(&mut tx, &retried, 4, now, |values, p| {
                    let updated = p.next();
                    format!(
                        "WITH v (id, run_at, last_error, maybe_sent) AS ({values}) \
                         UPDATE outbox SET state = 'pending', run_at = v.run_at, \
                         last_error = v.last_error, lease_owner = NULL, \
                         lease_until = NULL, updated_at = {updated}, \
                         outcome_unknown = \
                         CASE WHEN v.maybe_sent THEN TRUE ELSE outbox.outcome_unknown END \
                         FROM v WHERE outbox.id = v.id \
                         AND outbox.state IN ('claimed', 'sending')"
                    )
                })
                .await?;
                Self::update_from_rows(&mut tx, &ended, 3, now, |values, p| {
                    let updated = p.next();
                    format!(
                        "WITH v (id, state, last_error) AS ({values}) \
                         UPDATE outbox SET state = v.state, last_error = v.last_error, \
                         lease_owner = NULL, lease_until = NULL, updated_at = {updated} \
                         FROM v WHERE outbox.id = v.id \
                         AND outbox.state IN ('pending', 'claimed', 'sending')"
                    )
                })
                .await?;
                // Only a row still leased (`claimed`) becomes a reminder: a withdrawal or a
                // cancellation that came first has already made it `cancelled`.
                Self::update_from_rows(&mut tx, &reminded, 2, now, |values, p| {
                    let (at, updated) = (p.next(), p.next());
                    format!(
                        "WITH v (id, text) AS ({values}) \
                         UPDATE outbox SET state = 'reminded', text = v.text, \
                         reminded_at = {at}, last_error = NULL, lease_owner = NULL, \
                         lease_until = NULL, updated_at = {updated} \
                         FROM v WHERE outbox.id = v.id AND outbox.state = 'claimed'"
                    )
                })
                .await?;
                // An account refused for several posts keeps the first post's reason, as
                // when they were recorded one by one.
                let mut seen = HashSet::new();
                let accounts: Vec<_> = reconnect
                    .iter()
                    .filter(|(_, account, _)| seen.insert(*account))
                    .map(|(_, account, reason)| (*account, *reason))
                    .collect();
                Self::update_from_rows(&mut tx, &accounts, 2, now, |values, p| {
                    let updated = p.next();
                    format!(
                        "WITH v (id, status_reason) AS ({values}) \
                         UPDATE accounts SET status = 'reconnect_needed', \
                         status_reason = v.status_reason, updated_at = {updated} \
                         FROM v WHERE accounts.id = v.id AND accounts.status = 'active'"
                    )
                })
                .await?;
                let reconnect: Vec<_> = reconnect
                    .iter()
                    .map(|(id, _, reason)| (*id, *reason))
                    .collect();
                Self::update_from_rows(&mut tx, &reconnect, 2, now, |values, p| {
                    let updated = p.next();
                    format!(
                        "WITH v (id, last_error) AS ({values}) \
                         UPDATE outbox SET state = 'pending', last_error = v.last_error, \
                         lease_owner = NULL, lease_until = NULL, updated_at = {updated} \
                         FROM v WHERE outbox.id = v.id \
                         AND outbox.state IN ('claimed', 'sending')"
                    )
                })
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn expire_missed(
                &self,
                now: DateTime<Utc>,
                grace: Duration,
            ) -> Result<u64, StoreError> {
                // The reason names the likely cause so the participant can act on it.
                //
                // Candidates come from small indexes (none on every row's `window_end`:
                // planning jittered instants into one cost a random insert per row). A
                // pending row is run at or before its window and grace end, so one whose
                // window closed is in a due bucket at least `grace` old, save a retry set
                // close to its deadline: that one is claimed as soon as it is due and
                // called missed by the dispatcher, or expired here once its bucket is old
                // enough. A pending row whose outcome is unknown may be set to be read
                // back later than that, so those few have an index by window of their
                // own; claimed and sending rows are in the lease index, which holds only
                // them.
                let n = sqlx::query(
                    "UPDATE outbox SET state = 'missed', lease_owner = NULL, \
                     lease_until = NULL, updated_at = $1, last_error = CASE \
                     WHEN state = 'sending' OR outcome_unknown \
                     THEN 'window closed; an earlier attempt \
                     may have been published (outcome unknown)' \
                     WHEN EXISTS (SELECT 1 FROM accounts a \
                     WHERE a.id = outbox.account_id AND a.status = 'reconnect_needed') \
                     THEN 'window closed while the account needed reconnecting' \
                     ELSE COALESCE('window closed before it could be sent (last error: ' \
                     || last_error || ')', \
                     'window closed before it could be sent') END \
                     WHERE id IN (SELECT c.id FROM outbox c WHERE c.state = 'pending' \
                     AND c.run_at / 10000 <= ($1 - $2) / 10000 AND c.window_end < $1 - $2 \
                     UNION ALL SELECT c.id FROM outbox c WHERE c.state = 'pending' \
                     AND c.outcome_unknown AND c.window_end < $1 - $2 \
                     UNION ALL SELECT c.id FROM outbox c \
                     WHERE c.state IN ('claimed', 'sending') AND c.window_end < $1 - $2) \
                     AND state IN ('pending', 'claimed', 'sending') \
                     AND window_end < $1 - $2 \
                     AND ((state <> 'sending' AND NOT outcome_unknown) \
                     OR (window_end < $1 - $2 - $3 \
                     AND (state <> 'sending' OR lease_until <= $1)))",
                )
                .bind(ms(now))
                .bind(grace.num_milliseconds())
                .bind(READ_BACK_WITHIN.num_milliseconds())
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n)
            }

            async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
                // The earliest 10 s bucket holding an eligible row (read in the order of
                // the `outbox_due` index, stopping at the first), then that bucket's
                // earliest instant: a plain MIN(run_at) would read every pending row.
                let due: Option<i64> = sqlx::query_scalar(concat!(
                    "SELECT MIN(o.run_at) FROM outbox o WHERE o.state = 'pending' \
                     AND o.run_at / 10000 = (SELECT b.run_at / 10000 FROM outbox b \
                     WHERE b.state = 'pending' AND ",
                    eligible!("b"),
                    " ORDER BY b.run_at / 10000 LIMIT 1) AND ",
                    eligible!("o")
                ))
                .fetch_one(&self.pool)
                .await?;
                let lease: Option<i64> = sqlx::query_scalar(concat!(
                    "SELECT MIN(o.lease_until) FROM outbox o \
                     WHERE o.state IN ('claimed', 'sending') AND ",
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

            async fn outbox_for(
                &self,
                participant: ParticipantId,
                campaign_id: Option<&str>,
            ) -> Result<Vec<OutboxRow>, StoreError> {
                let sql = format!(
                    "SELECT {OUTBOX_COLUMNS} FROM outbox o \
                     JOIN pledges p ON p.id = o.pledge_id \
                     WHERE p.participant_id = $1 AND ($2 IS NULL OR o.campaign_id = $2) \
                     ORDER BY o.run_at, o.id"
                );
                sqlx::query_as::<_, OutboxRowRaw>(AssertSqlSafe(sql))
                    .bind(participant.0)
                    .bind(campaign_id)
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(OutboxRow::try_from)
                    .collect()
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
                    "INSERT INTO campaign_state (campaign_id, cancelled_at, reason) \
                     VALUES ($1, $2, $3) \
                     ON CONFLICT (campaign_id) DO UPDATE SET \
                     cancelled_at = \
                     COALESCE(campaign_state.cancelled_at, excluded.cancelled_at), \
                     reason = COALESCE(campaign_state.reason, excluded.reason)",
                )
                .bind(campaign_id)
                .bind(ms(now))
                .bind(reason)
                .execute(&mut *tx)
                .await?;
                let why = format!("campaign cancelled: {reason}");
                let key = campaign_id.to_string();
                let stopped =
                    Self::stop_posts(&mut tx, "campaign_id", key, None, &why, ms(now)).await?;
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
                    Ok(CampaignCancelled {
                        at: instant(at)?,
                        reason: reason.unwrap_or_default(),
                    })
                })
                .transpose()
            }
        }
    };
}

outbox!(SqliteStore, Sqlite);
outbox!(PgStore, Postgres);
