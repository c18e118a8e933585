//! What benchmarks, rehearsals and tests need from the store and the running service does
//! not: many strikers created at once, a check that no slot was published twice, and one
//! pledge's plan applied by itself.
//!
//! Kept out of [`Store`] so the web, the CLI's participant commands and the scheduler
//! cannot reach for them. `picket bench` and `picket rehearse` open their store as
//! `Arc<dyn StoreTooling>` (see [`open_tooling`](super::open_tooling)); it is a `Store` too.
//! The SQL is the same on both databases except for placeholders ([`Params`]): the
//! `tooling!` macro stamps one implementation out for each backend.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Postgres, Sqlite};

use super::model::*;
use super::pledges::{PlannedBinder, planned_values};
use super::rows::{days_json, ms, new_invite_code};
use super::sql::{CHUNK, Params};
use super::{PgStore, SqliteStore, Store, StoreError};
use crate::domain::NetworkKind;
use crate::domain::{CampaignId, Handle};

/// Bulk setup and checks for `picket bench`, `picket rehearse` and the tests.
#[async_trait]
pub trait StoreTooling: Store {
    /// Many strikers at once, in one transaction with multi-row inserts: participants,
    /// their accounts and their pledges. For benchmarks and imports; the web and CLI use
    /// the one-at-a-time methods of [`Store`]. Each striker's account handles must differ.
    async fn bulk_join(
        &self,
        strikers: &[NewStriker],
        seal: SealMany<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<JoinedStriker>, StoreError>;
    /// How many (account, slot) pairs have more than one published row. The unique key makes
    /// this impossible; rehearsals report it as proof.
    async fn published_per_slot_duplicates(&self, campaign_id: &str) -> Result<u64, StoreError>;
    /// `bare_outbox`, for `picket bench plan`'s baseline: a table with the outbox's own
    /// columns, constraints and indexes (foreign keys too), empty.
    async fn create_bare_outbox(&self) -> Result<(), StoreError>;
    async fn drop_bare_outbox(&self) -> Result<(), StoreError>;
    /// The rows of `plans` inserted into `bare_outbox` by plain multi-row `INSERT`s of the
    /// planner's size, in one transaction: what planning would cost without planning,
    /// checking pledges or handling conflicts. The number of rows inserted.
    async fn bare_insert(
        &self,
        plans: &[PledgePlan],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Posts `claimed` or `sending` per lease owner (worker name), to see whose a crash
    /// left behind.
    async fn leased_posts(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// Make one pledge's future posts match `rows` (see
    /// [`Pledges::apply_plans`](super::Pledges::apply_plans)).
    async fn apply_plan(
        &self,
        pledge_id: PledgeId,
        campaign_id: &CampaignId,
        rows: &[PlannedPost],
        now: DateTime<Utc>,
    ) -> Result<PlanApplied, StoreError> {
        let plan = PledgePlan {
            pledge_id,
            campaign_id: campaign_id.clone(),
            rows: rows.to_vec(),
        };
        self.apply_plans(std::slice::from_ref(&plan), now).await
    }
}

/// [`StoreTooling`] for the backend `$store`, whose `pool` holds a `$db` database.
macro_rules! tooling {
    ($store:ty, $db:ty) => {
        #[async_trait]
        impl StoreTooling for $store {
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
                    let values = params.rows_with(chunk.len(), |p| {
                        let (name, tz, code) = (p.next(), p.next(), p.next());
                        format!("({name}, {tz}, FALSE, {code}, {})", p.next())
                    });
                    let sql = format!(
                        "INSERT INTO participants \
                         (name, tz, is_local, invite_code, created_at) \
                         VALUES {values} RETURNING id, invite_code"
                    );
                    let mut q = sqlx::query_as::<_, (i64, String)>(AssertSqlSafe(sql));
                    for (s, code) in chunk.iter().zip(&codes) {
                        q = q.bind(&s.name).bind(s.tz.as_str()).bind(code).bind(now_ms);
                    }
                    let ids: HashMap<String, i64> = q
                        .fetch_all(&mut *tx)
                        .await?
                        .into_iter()
                        .map(|(id, c)| (c, id))
                        .collect();
                    participants.extend(codes.iter().map(|c| ids[c]));
                }

                // (striker, account of theirs, the account)
                let flat: Vec<(usize, usize, &(NetworkKind, Handle, Option<String>))> = strikers
                    .iter()
                    .enumerate()
                    .flat_map(|(i, s)| s.accounts.iter().enumerate().map(move |(j, a)| (i, j, a)))
                    .collect();
                let mut account_ids: HashMap<(i64, String), i64> =
                    HashMap::with_capacity(flat.len());
                for chunk in flat.chunks(CHUNK) {
                    let mut params = Params::new::<$db>();
                    let values = params.rows_with(chunk.len(), |p| {
                        format!("({}, 'active', {})", p.list(5), p.list(2))
                    });
                    let sql = format!(
                        "INSERT INTO accounts \
                         (participant_id, network, handle, server, credentials, status, \
                         created_at, updated_at) \
                         VALUES {values} RETURNING id, participant_id, handle"
                    );
                    let mut q = sqlx::query_as::<_, (i64, i64, String)>(AssertSqlSafe(sql));
                    for (i, _, (network, handle, server)) in chunk {
                        q = q
                            .bind(participants[*i])
                            .bind(network.as_str())
                            .bind(handle.as_str())
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
                            let id = account_ids[&(participants[*i], handle.to_string())];
                            (id, seal(*i, *j, AccountId(id)).into_bytes())
                        })
                        .collect();
                    for rows in sealed.chunks(CHUNK / 2) {
                        let mut params = Params::new::<$db>();
                        let sql = format!(
                            "UPDATE accounts SET credentials = v.column2 \
                             FROM (VALUES {}) AS v \
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
                    let values = params.rows_with(chunk.len(), |p| {
                        format!("({}, 'active', {})", p.list(5), p.list(2))
                    });
                    let sql = format!(
                        "INSERT INTO pledges \
                         (participant_id, campaign_id, tz, days, every_secs, status, \
                         created_at, updated_at) \
                         VALUES {values} RETURNING id, participant_id"
                    );
                    let mut q = sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(sql));
                    for (i, s) in chunk {
                        q = q
                            .bind(participants[*i])
                            .bind(s.campaign_id.as_str())
                            .bind(s.tz.as_str())
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
                        .map(|a| AccountId(account_ids[&(participant, a.1.to_string())]))
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
                        params.rows(chunk.len(), 2)
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

            async fn create_bare_outbox(&self) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                for sql in Self::bare_outbox_ddl(&mut tx).await? {
                    sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn drop_bare_outbox(&self) -> Result<(), StoreError> {
                sqlx::query("DROP TABLE IF EXISTS bare_outbox")
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn bare_insert(
                &self,
                plans: &[PledgePlan],
                now: DateTime<Utc>,
            ) -> Result<u64, StoreError> {
                let now_ms = ms(now);
                let rows: Vec<(&PledgePlan, &PlannedPost)> = plans
                    .iter()
                    .flat_map(|p| p.rows.iter().map(move |r| (p, r)))
                    .collect();
                let mut n = 0;
                let mut binder = PlannedBinder::new(now_ms);
                let mut tx = self.begin_write().await?;
                for chunk in rows.chunks(CHUNK) {
                    // The same columns and values as `apply_plans` writes.
                    let values = planned_values::<$db>(chunk.len());
                    let sql = format!(
                        "INSERT INTO bare_outbox (campaign_id, pledge_id, account_id, \
                         slot_key, post_name, template, variant, idempotency_key, run_at, \
                         window_end, slot_at, day, days_total, state, created_at, updated_at) \
                         {values}"
                    );
                    let args = binder.arguments::<$db>(chunk)?;
                    n += sqlx::query_with(AssertSqlSafe(sql), args)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                Ok(n)
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

            async fn leased_posts(&self) -> Result<Vec<(String, u64)>, StoreError> {
                let rows: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT lease_owner, COUNT(*) FROM outbox \
                     WHERE state IN ('claimed', 'sending') AND lease_owner IS NOT NULL \
                     GROUP BY lease_owner ORDER BY lease_owner",
                )
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(w, n)| (w, n as u64)).collect())
            }
        }
    };
}

impl SqliteStore {
    /// The statements that made `outbox` and its indexes (as SQLite keeps them, with every
    /// later `ALTER TABLE`), renamed to `bare_outbox`.
    async fn bare_outbox_ddl(conn: &mut sqlx::SqliteConnection) -> Result<Vec<String>, StoreError> {
        let made: Vec<String> = sqlx::query_scalar(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'outbox' AND sql IS NOT NULL \
             ORDER BY type = 'index', name",
        )
        .fetch_all(conn)
        .await?;
        let rename = |sql: &str| {
            sql.replacen("CREATE TABLE outbox", "CREATE TABLE bare_outbox", 1)
                .replacen(" outbox_", " bare_outbox_", 1)
                .replacen(" ON outbox ", " ON bare_outbox ", 1)
        };
        Ok(made.iter().map(|s| rename(s)).collect())
    }
}

impl PgStore {
    /// `outbox`'s columns, defaults, constraints and indexes as `bare_outbox`, and its
    /// foreign keys, which `LIKE` leaves out.
    async fn bare_outbox_ddl(_conn: &mut sqlx::PgConnection) -> Result<Vec<String>, StoreError> {
        Ok(vec![
            "CREATE TABLE bare_outbox (LIKE outbox INCLUDING ALL)".into(),
            "ALTER TABLE bare_outbox ADD FOREIGN KEY (pledge_id) REFERENCES pledges (id) \
             ON DELETE CASCADE"
                .into(),
            "ALTER TABLE bare_outbox ADD FOREIGN KEY (account_id) REFERENCES accounts (id) \
             ON DELETE CASCADE"
                .into(),
        ])
    }
}

tooling!(SqliteStore, Sqlite);
tooling!(PgStore, Postgres);
