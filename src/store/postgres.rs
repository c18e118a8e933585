//! The PostgreSQL store: any number of `picket serve` / `picket worker` processes on any
//! number of machines share one database.
//!
//! The areas' methods (`participants.rs`, `outbox.rs`, ...) are stamped in by their
//! macros; this file holds what only PostgreSQL does: connecting (migrations), write
//! transactions, committing signatures and the claiming statement, which uses
//! `FOR UPDATE SKIP LOCKED` so concurrent workers take disjoint batches without waiting on
//! each other.

use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool, Postgres, Transaction};

use super::model::{ClaimedPost, NewSignature, PlannedPost, PledgePlan, SignatureAdded};
use super::outbox::claimed_select;
use super::pledges::planned_upsert_sql;
use super::rows::ms;
use super::sql::eligible;
use super::{Store, StoreError};

/// `name` if it can stand unquoted in SQL as a database name.
fn plain_name(name: &str) -> Result<&str, StoreError> {
    let plain = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain {
        Ok(name)
    } else {
        Err(StoreError::Database(sqlx::Error::Configuration(
            format!("not a plain database name: {name:?}").into(),
        )))
    }
}

/// Run `sql` (which cannot run in a transaction, like `CREATE DATABASE`) on a connection
/// of its own to the server `options` name.
async fn on_server(options: &PgConnectOptions, sql: &str) -> Result<(), StoreError> {
    let mut admin = PgConnection::connect_with(options).await?;
    sqlx::query(AssertSqlSafe(sql.to_string()))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(())
}

/// Planned rows per `UNNEST` statement.
const PG_UNNEST_ROWS: usize = 10_000;

/// A PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pub(super) pool: PgPool,
}

impl PgStore {
    /// Insert the planned rows or bring their pending rows up to date, in the caller's
    /// transaction; the number of rows added or changed.
    ///
    /// Each column goes as one array and `UNNEST` turns them back into rows: a statement of
    /// 13 parameters whatever the number of rows, parsed and planned once, instead of a
    /// `VALUES` list of 15 placeholders per row, which PostgreSQL parses and plans anew
    /// for each length.
    pub(super) async fn upsert_planned(
        conn: &mut PgConnection,
        rows: &[(&PledgePlan, &PlannedPost)],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        const SQL: &str = concat!(
            "SELECT c, p, a, s, n, t, v, k, r, w, sa, d, dt, 'pending', $14, $14 FROM UNNEST(",
            "$1::text[], $2::int8[], $3::int8[], $4::text[], $5::text[], $6::text[], ",
            "$7::int8[], $8::text[], $9::int8[], $10::int8[], $11::int8[], $12::int8[], ",
            "$13::int8[]) AS u (c, p, a, s, n, t, v, k, r, w, sa, d, dt)"
        );
        let sql = planned_upsert_sql(SQL);
        let mut upserted = 0;
        // Far fewer bytes per statement than the 1 GB PostgreSQL takes, and a pledge's
        // rows stay in one statement (see `apply_plans`) at any size.
        for chunk in rows.chunks(PG_UNNEST_ROWS) {
            let mut texts: [Vec<&str>; 5] = Default::default();
            let mut ints: [Vec<i64>; 8] = Default::default();
            for (plan, row) in chunk {
                let t = [
                    &*plan.campaign_id,
                    &*row.slot_key,
                    &*row.post_name,
                    &*row.template,
                    &*row.idempotency_key,
                ];
                let i = [
                    plan.pledge_id.0,
                    row.account_id.0,
                    row.variant,
                    ms(row.run_at),
                    ms(row.window_end),
                    ms(row.slot_at),
                    row.day,
                    row.days_total,
                ];
                for (col, v) in texts.iter_mut().zip(t) {
                    col.push(v);
                }
                for (col, v) in ints.iter_mut().zip(i) {
                    col.push(v);
                }
            }
            let [campaign, slot, post, template, key] = texts;
            let [
                pledge,
                account,
                variant,
                run_at,
                window_end,
                slot_at,
                day,
                days,
            ] = ints;
            upserted += sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(campaign)
                .bind(pledge)
                .bind(account)
                .bind(slot)
                .bind(post)
                .bind(template)
                .bind(variant)
                .bind(key)
                .bind(run_at)
                .bind(window_end)
                .bind(slot_at)
                .bind(day)
                .bind(days)
                .bind(now_ms)
                .execute(&mut *conn)
                .await?
                .rows_affected();
        }
        Ok(upserted)
    }

    /// Connect to `url` and run migrations (sqlx serialises concurrent migrators with an
    /// advisory lock, so several processes may start at once).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(PgConnectOptions::from_str(url)?).await
    }

    /// Connect to the database `name` on the server `url` names.
    pub async fn connect_database(url: &str, name: &str) -> Result<Self, StoreError> {
        Self::connect_with(PgConnectOptions::from_str(url)?.database(name)).await
    }

    async fn connect_with(options: PgConnectOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(StdDuration::from_secs(30))
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }

    /// A new, empty database `name` on the server `url` names (its database, such as
    /// `postgres`, only serves to connect), migrated: a benchmark's own, dropped again by
    /// [`PgStore::drop_database`]. `name` is lower-case letters, digits and `_`.
    pub async fn create_database(url: &str, name: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?;
        on_server(&options, &format!("CREATE DATABASE {}", plain_name(name)?)).await?;
        Self::connect_with(options.database(name)).await
    }

    /// Close this store's connections and drop its database `name` from the server `url`
    /// names (see [`PgStore::create_database`]).
    pub async fn drop_database(self, url: &str, name: &str) -> Result<(), StoreError> {
        self.pool.close().await;
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", plain_name(name)?);
        on_server(&PgConnectOptions::from_str(url)?, &sql).await
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

    fn writes_side_by_side(&self) -> bool {
        true
    }

    async fn refresh_statistics(&self) -> Result<(), StoreError> {
        // A sample of a fixed size (300 × the statistics target rows), so it costs the same
        // on a large table; the pledges and accounts the claim joins change with it.
        sqlx::query("ANALYZE outbox, pledges, accounts, campaign_state")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl PgStore {
    /// Lease up to `limit` due rows to `worker` (see [`Outbox::claim_due`]), in the
    /// caller's transaction; the claimed posts.
    ///
    /// [`Outbox::claim_due`]: super::Outbox::claim_due
    pub(super) async fn claim_posts(
        conn: &mut PgConnection,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedPost>, StoreError> {
        // Due rows and expired leases are looked up apart, each in its index's `run_at`
        // order and stopping after `$4` rows, then merged: one `OR` made the planner collect,
        // check and sort every due row on each claim. A row locked here but not among the
        // first `$4` is released at commit, a moment later. Due rows are read by their 10 s
        // bucket of `run_at` and id (the `outbox_due` index, migration 0023). The claimed
        // rows are read with their pledge and account in the same statement, from the
        // `UPDATE`'s own `RETURNING`: a second statement would find them again by id.
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "WITH due AS (SELECT o.id, o.run_at FROM outbox o \
                 WHERE o.state = 'pending' AND o.run_at / 10000 <= $3 / 10000 \
                 AND o.run_at <= $3 AND {eligible} \
                 ORDER BY o.run_at / 10000, o.id LIMIT $4 FOR UPDATE OF o SKIP LOCKED), \
                 lapsed AS (SELECT o.id, o.run_at FROM outbox o \
                 WHERE o.state IN ('claimed', 'sending') AND o.lease_until <= $3 \
                 AND {eligible} \
                 ORDER BY o.run_at, o.id LIMIT $4 FOR UPDATE OF o SKIP LOCKED), \
                 chosen AS (SELECT id FROM \
                 (SELECT id, run_at FROM due UNION ALL SELECT id, run_at FROM lapsed) u \
                 ORDER BY run_at, id LIMIT $4), \
                 claimed AS (UPDATE outbox SET state = 'claimed', lease_owner = $1, \
                 lease_until = $2, outcome_unknown = \
                 CASE WHEN outbox.state = 'sending' THEN TRUE ELSE outbox.outcome_unknown END, \
                 updated_at = $3 FROM chosen WHERE outbox.id = chosen.id RETURNING outbox.*) \
                 {}",
                claimed_select("claimed"),
                eligible = eligible!("o"),
            )
        });
        let rows = sqlx::query(AssertSqlSafe(SQL.as_str()))
            .bind(worker)
            .bind(ms(lease_until))
            .bind(ms(now))
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?;
        Self::read_claimed(conn, rows, now).await
    }
}
