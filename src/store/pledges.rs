//! Pledges and planning: a participant's pledge to a campaign with the accounts it posts
//! from, withdrawing it, and writing the planner's plans as outbox rows.
//!
//! The SQL is the same on both databases except for the placeholders of statements with
//! many parameters ([`Params`]): the `pledges!` macro stamps one implementation of
//! [`Pledges`] out for each backend. It does not decide which posts a pledge makes (that is
//! `scheduler::planner`), only makes the stored rows match.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Postgres, Sqlite};

use super::model::*;
use super::rows::{PLEDGE_COLUMNS, PledgeRow, days_json, ms};
use super::sql::{CHUNK, Dialect, Params};
use super::{PgStore, SqliteStore, StoreError};

/// Pledges and the plans that turn them into posts; part of [`Store`](super::Store).
/// One page of [`Pledges::active_pledges`].
#[derive(Debug, Default)]
pub struct PledgePage {
    pub pledges: Vec<Pledge>,
    /// Rows whose stored values do not read (edited by hand, or by another picket), with why.
    pub unreadable: Vec<(PledgeId, StoreError)>,
}

impl PledgePage {
    /// The page's last pledge, read or not: the next page starts after it.
    pub fn last_id(&self) -> Option<PledgeId> {
        let read = self.pledges.iter().map(|p| p.id);
        read.chain(self.unreadable.iter().map(|(id, _)| *id)).max()
    }
}

#[async_trait]
pub trait Pledges {
    /// Create the pledge or replace its settings and accounts; joining again re-activates a
    /// withdrawn pledge.
    async fn upsert_pledge(
        &self,
        new: &NewPledge,
        now: DateTime<Utc>,
    ) -> Result<PledgeId, StoreError>;
    async fn get_pledge(&self, id: PledgeId) -> Result<Option<Pledge>, StoreError>;
    /// Every pledge of a participant (active or withdrawn), in id order.
    async fn pledges_of(&self, participant: ParticipantId) -> Result<Vec<Pledge>, StoreError>;
    /// Active pledges of a campaign with `id > after`, in id order, at most `limit`: page
    /// through a million pledges without loading them all. A row whose stored values do
    /// not read is returned apart, so one bad row does not stop the planner or the verifier.
    async fn active_pledges(
        &self,
        campaign_id: &str,
        after: Option<PledgeId>,
        limit: u32,
    ) -> Result<PledgePage, StoreError>;
    /// In one transaction: withdraw the pledge (or, with `account`, detach only that account)
    /// and cancel its `pending`/`claimed` posts. Posts already `sending` are reported so the
    /// caller can wait for them; no other post of the pledge will be sent after this returns.
    async fn withdraw(
        &self,
        participant: ParticipantId,
        campaign_id: &str,
        account: Option<AccountId>,
        now: DateTime<Utc>,
    ) -> Result<Withdrawal, StoreError>;

    // ── planner ──────────────────────────────────────────────────────────────────────────

    /// Many pledges' plans in one transaction. Missing rows are inserted; `pending` rows are
    /// refreshed and `cancelled` ones revived (re-joining after a withdrawal); future
    /// `pending` rows no longer planned are deleted. Rows that are claimed, sending or final
    /// are never touched, and plans of pledges that are not active (or whose campaign is
    /// cancelled) are skipped.
    async fn apply_plans(
        &self,
        plans: &[PledgePlan],
        now: DateTime<Utc>,
    ) -> Result<PlanApplied, StoreError>;
    /// Record why the planner could not plan a pledge (`None`: it plans again). The pledge
    /// stays active: a later campaign edit or a new choice may make it plannable.
    async fn set_pledge_problem(
        &self,
        id: PledgeId,
        problem: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// [`Pledges`] for the backend `$store`, whose `pool` holds a `$db` database.
macro_rules! pledges {
    ($store:ty, $db:ty) => {
        impl $store {
            /// The pledges of `rows`, each with the accounts it posts from.
            async fn with_accounts(
                conn: &mut <$db as sqlx::Database>::Connection,
                rows: Vec<PledgeRow>,
            ) -> Result<Vec<Pledge>, StoreError> {
                Self::decode(conn, rows).await?.into_iter().collect()
            }

            /// Each row with its accounts, decoded on its own.
            async fn decode(
                conn: &mut <$db as sqlx::Database>::Connection,
                rows: Vec<PledgeRow>,
            ) -> Result<Vec<Result<Pledge, StoreError>>, StoreError> {
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                let mut accounts: HashMap<i64, Vec<AccountId>> = HashMap::new();
                let mut taps: HashMap<i64, Vec<AccountId>> = HashMap::new();
                for chunk in ids.chunks(CHUNK) {
                    let sql = format!(
                        "SELECT pa.pledge_id, pa.account_id, a.route FROM pledge_accounts pa \
                         JOIN accounts a ON a.id = pa.account_id \
                         WHERE pa.pledge_id IN ({}) \
                         ORDER BY pa.pledge_id, pa.account_id",
                        Params::new::<$db>().list(chunk.len())
                    );
                    let mut q = sqlx::query_as::<_, (i64, i64, String)>(AssertSqlSafe(sql));
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    for (pledge, account, route) in q.fetch_all(&mut *conn).await? {
                        accounts.entry(pledge).or_default().push(AccountId(account));
                        if route == AccountRoute::Tap.as_str() {
                            taps.entry(pledge).or_default().push(AccountId(account));
                        }
                    }
                }
                Ok(rows
                    .into_iter()
                    .map(|r| {
                        let ids = accounts.remove(&r.id).unwrap_or_default();
                        let tap = taps.remove(&r.id).unwrap_or_default();
                        r.into_pledge(ids, tap)
                    })
                    .collect())
            }
        }

        #[async_trait]
        impl Pledges for $store {
            async fn upsert_pledge(
                &self,
                new: &NewPledge,
                now: DateTime<Utc>,
            ) -> Result<PledgeId, StoreError> {
                let mut tx = self.begin_write().await?;
                let id = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO pledges \
                     (participant_id, campaign_id, tz, days, every_secs, status, \
                     created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'active', $6, $6) \
                     ON CONFLICT (participant_id, campaign_id) DO UPDATE SET \
                     tz = excluded.tz, days = excluded.days, \
                     every_secs = excluded.every_secs, status = 'active', \
                     updated_at = excluded.updated_at, withdrawn_at = NULL, \
                     plan_error = NULL \
                     RETURNING id",
                )
                .bind(new.participant_id.0)
                .bind(new.campaign_id.as_str())
                .bind(new.tz.as_str())
                .bind(days_json(&new.days))
                .bind(new.every_secs)
                .bind(ms(now))
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query("DELETE FROM pledge_accounts WHERE pledge_id = $1")
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                let wanted: BTreeSet<AccountId> = new.account_ids.iter().copied().collect();
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
                    "UPDATE outbox SET state = 'cancelled', \
                     last_error = 'account left the pledge', \
                     lease_owner = NULL, lease_until = NULL, updated_at = $2 \
                     WHERE pledge_id = $1 AND state IN ('pending', 'claimed') \
                     AND account_id NOT IN \
                     (SELECT account_id FROM pledge_accounts WHERE pledge_id = $1)",
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
                let rows = sqlx::query_as::<_, PledgeRow>(AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&mut *conn)
                    .await?;
                let pledges = Self::with_accounts(&mut conn, rows.into_iter().collect()).await?;
                Ok(pledges.into_iter().next())
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
                Self::with_accounts(&mut conn, rows).await
            }

            async fn active_pledges(
                &self,
                campaign_id: &str,
                after: Option<PledgeId>,
                limit: u32,
            ) -> Result<PledgePage, StoreError> {
                let mut conn = self.pool.acquire().await?;
                let sql = format!(
                    "SELECT {PLEDGE_COLUMNS} FROM pledges \
                     WHERE campaign_id = $1 AND status = 'active' AND id > $2 \
                     ORDER BY id LIMIT $3"
                );
                let rows = sqlx::query_as::<_, PledgeRow>(AssertSqlSafe(sql))
                    .bind(campaign_id)
                    .bind(after.map_or(0, |p| p.0))
                    .bind(i64::from(limit))
                    .fetch_all(&mut *conn)
                    .await?;
                let mut page = PledgePage::default();
                let ids: Vec<PledgeId> = rows.iter().map(|r| PledgeId(r.id)).collect();
                for (id, pledge) in ids.into_iter().zip(Self::decode(&mut conn, rows).await?) {
                    match pledge {
                        Ok(p) => page.pledges.push(p),
                        Err(e) => page.unreadable.push((id, e)),
                    }
                }
                Ok(page)
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
                            "UPDATE pledges SET status = 'withdrawn', withdrawn_at = $2, \
                             updated_at = $2 \
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
                let stopped = Self::stop_posts(
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
                         (SELECT 1 FROM campaign_state c \
                         WHERE c.campaign_id = pledges.campaign_id \
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

                // Future pending rows that the plans no longer contain (days dropped, cadence
                // changed) go; anything claimed, sending or final stays as the record. They
                // are looked up before the upsert, which only adds or keeps planned rows:
                // for pledges planned for the first time (a campaign's first planning) the
                // lookup then finds no row at all instead of reading back every row just
                // written.
                // By (campaign, account, slot), the upsert's key: a row of one pledge that
                // another pledge's plan takes over is not stale.
                let slots: HashSet<(&str, i64, &str)> = rows
                    .iter()
                    .map(|(plan, row)| {
                        (plan.campaign_id.as_str(), row.account_id.0, &*row.slot_key)
                    })
                    .collect();
                let active_ids: Vec<i64> = ids.into_iter().filter(|i| active.contains(i)).collect();
                let mut stale = Vec::new();
                for chunk in active_ids.chunks(CHUNK) {
                    let mut params = Params::new::<$db>();
                    let sql = format!(
                        // `state || ''` keeps the planner off the partial index of pending
                        // rows: with millions of them it scans them all, while the
                        // `pledge_id` index finds these pledges' rows directly.
                        "SELECT id, campaign_id, account_id, slot_key FROM outbox \
                         WHERE state || '' = 'pending' AND run_at > {} \
                         AND pledge_id IN ({})",
                        params.next(),
                        params.list(chunk.len())
                    );
                    let mut q = sqlx::query_as::<_, (i64, String, i64, String)>(AssertSqlSafe(sql))
                        .bind(now_ms);
                    for id in chunk {
                        q = q.bind(*id);
                    }
                    for (id, campaign, account, slot) in q.fetch_all(&mut *tx).await? {
                        if !slots.contains(&(campaign.as_str(), account, slot.as_str())) {
                            stale.push(id);
                        }
                    }
                }
                applied.upserted += Self::upsert_planned(&mut tx, &rows, now_ms).await?;

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
        }
    };
}

pledges!(SqliteStore, Sqlite);
pledges!(PgStore, Postgres);

/// The planner's upsert with `rows` as its source (`VALUES ...`, or a `SELECT` which on
/// SQLite must end in a `WHERE` so that `ON CONFLICT` is not read as a join's): fifteen
/// columns in the order of the list below. The idempotency key is never changed: a pending
/// row may be a retry of a request whose outcome is unknown, and only the same key dedupes
/// it. The usual, derived key is planned and stored as '' (64 bytes less per row).
pub(super) fn planned_upsert_sql(rows: &str) -> String {
    format!(
        "INSERT INTO outbox (campaign_id, pledge_id, account_id, slot_key, \
        post_name, template, variant, idempotency_key, run_at, \
        window_end, slot_at, day, days_total, state, \
        created_at, updated_at) \
        {rows} \
        ON CONFLICT (account_id, campaign_id, slot_key) DO UPDATE SET \
        pledge_id = excluded.pledge_id, post_name = excluded.post_name, \
        template = excluded.template, variant = excluded.variant, \
        run_at = excluded.run_at, window_end = excluded.window_end, \
        slot_at = excluded.slot_at, day = excluded.day, \
        days_total = excluded.days_total, state = 'pending', \
        last_error = NULL, updated_at = excluded.updated_at \
        WHERE outbox.state = 'cancelled' \
        OR (outbox.state = 'pending' AND ( \
        outbox.run_at <> excluded.run_at \
        OR outbox.window_end <> excluded.window_end \
        OR outbox.variant <> excluded.variant \
        OR outbox.template <> excluded.template \
        OR outbox.post_name <> excluded.post_name \
        OR outbox.pledge_id <> excluded.pledge_id))"
    )
}

/// Parameters per planned row: 13 planned columns, then `created_at` and `updated_at`.
pub(super) const PLANNED_PARAMS: usize = 15;

/// `VALUES` for `rows` planned rows in `DB`'s placeholders, in [`PlannedBinder`]'s order,
/// each with its literal `'pending'` state.
pub(super) fn planned_values<DB: Dialect>(rows: usize) -> String {
    let values = Params::new::<DB>().rows_with(rows, |p| {
        let planned = p.list(PLANNED_PARAMS - 2);
        let (created, updated) = (p.next(), p.next());
        format!("({planned}, 'pending', {created}, {updated})")
    });
    format!("VALUES {values}")
}

/// Binds the 15 values of planned rows, in the column order of [`planned_upsert_sql`] less
/// its literal `state`, for the planner's upsert and `bench plan`'s bare baseline alike.
///
/// sqlx-sqlite copies a bound `&str` or `String` into a fresh `Arc<String>` but takes an
/// `Arc<str>` by reference count; planning a million pledges binds tens of millions of
/// strings, nearly all of them the campaign's id and its few slot and post names, shared.
pub(super) struct PlannedBinder {
    empty: Arc<str>,
    campaign: Arc<str>,
    now_ms: i64,
}

impl PlannedBinder {
    pub(super) fn new(now_ms: i64) -> Self {
        let empty: Arc<str> = Arc::from("");
        Self {
            campaign: empty.clone(),
            empty,
            now_ms,
        }
    }

    /// Add `row`'s values to `args`.
    pub(super) fn bind<DB>(
        &mut self,
        args: &mut <DB as sqlx::Database>::Arguments,
        plan: &PledgePlan,
        row: &PlannedPost,
    ) -> Result<(), StoreError>
    where
        DB: sqlx::Database,
        Arc<str>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    {
        use sqlx::Arguments;
        if *self.campaign != *plan.campaign_id {
            self.campaign = Arc::from(plan.campaign_id.as_str());
        }
        let key = if row.idempotency_key.is_empty() {
            self.empty.clone()
        } else {
            Arc::from(row.idempotency_key.as_str())
        };
        let encode = |e| StoreError::Database(sqlx::Error::Encode(e));
        args.add(self.campaign.clone()).map_err(encode)?;
        args.add(plan.pledge_id.0).map_err(encode)?;
        args.add(row.account_id.0).map_err(encode)?;
        args.add(row.slot_key.clone()).map_err(encode)?;
        args.add(row.post_name.clone()).map_err(encode)?;
        args.add(row.template.clone()).map_err(encode)?;
        args.add(row.variant).map_err(encode)?;
        args.add(key).map_err(encode)?;
        args.add(ms(row.run_at)).map_err(encode)?;
        args.add(ms(row.window_end)).map_err(encode)?;
        args.add(ms(row.slot_at)).map_err(encode)?;
        args.add(row.day).map_err(encode)?;
        args.add(row.days_total).map_err(encode)?;
        args.add(self.now_ms).map_err(encode)?;
        args.add(self.now_ms).map_err(encode)
    }

    /// The arguments of `rows`, in order.
    pub(super) fn arguments<DB>(
        &mut self,
        rows: &[(&PledgePlan, &PlannedPost)],
    ) -> Result<<DB as sqlx::Database>::Arguments, StoreError>
    where
        DB: sqlx::Database,
        Arc<str>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
        i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    {
        use sqlx::Arguments;
        let mut args = <DB as sqlx::Database>::Arguments::default();
        args.reserve(rows.len() * PLANNED_PARAMS, 0);
        for (plan, row) in rows {
            self.bind::<DB>(&mut args, plan, row)?;
        }
        Ok(args)
    }
}
