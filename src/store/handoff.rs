//! Hand-off to a Mastodon-API server's own scheduler: which accounts chose it, the rows the
//! hand-off planner looks at, leasing a row while its scheduled status is created
//! (`pending` → `handing_off`), and recording what became of it (`handed_off` with the
//! scheduled status's id, back to `pending` for picket to send itself, `published` once
//! read back, `missed` or `cancelled`).
//!
//! The same SQL on both databases: the `hand_offs!` macro stamps one implementation of
//! [`HandOffs`] out for each backend.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, FromRow, Row};

use super::model::*;
use super::rows::{instant, ms, outbox_state, parse};
use super::sql::eligible;
use super::{PgStore, SqliteStore, StoreError};
use crate::domain::{Handle, NetworkKind, Sealed};

/// A row the hand-off planner weighs: a future `pending` post of a hand-off account, or
/// one already with (or on its way to) the server's scheduler, which counts against the
/// server's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandOffRow {
    pub id: OutboxId,
    pub account_id: AccountId,
    pub run_at: DateTime<Utc>,
    pub state: OutboxState,
}

/// A `handed_off` row to follow up: its time has come (read it back), or its pledge,
/// account or campaign stopped (delete it from the server).
#[derive(Clone)]
pub struct HandedOff {
    pub id: OutboxId,
    pub account_id: AccountId,
    pub network: NetworkKind,
    pub handle: Handle,
    pub server: Option<String>,
    pub credentials: Sealed,
    pub trusted: bool,
    pub scheduled_id: String,
    pub run_at: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// The text handed to the server: what a read-back looks for.
    pub text: String,
    /// Still `handed_off` and its pledge, account and campaign all active; otherwise it
    /// is to be deleted from the server's schedule.
    pub eligible: bool,
}

/// `Debug` without the sealed credentials' bytes.
impl std::fmt::Debug for HandedOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandedOff")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("scheduled_id", &self.scheduled_id)
            .field("run_at", &self.run_at)
            .field("eligible", &self.eligible)
            .finish_non_exhaustive()
    }
}

/// What became of a row the hand-off worked on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandOffOutcome {
    /// `handing_off` → `handed_off`: the server holds it as scheduled status `scheduled_id`.
    HandedOff {
        id: OutboxId,
        scheduled_id: String,
        text: String,
    },
    /// `handing_off` → `pending`: picket sends it itself when it is due. `refused`: the
    /// server said no (its limits), so it is not offered to the server again.
    Direct {
        id: OutboxId,
        refused: bool,
        reason: Option<String>,
    },
    /// The server published it: `handing_off` or `handed_off` → `published`.
    Published {
        id: OutboxId,
        remote_id: String,
        remote_url: Option<String>,
    },
    /// Deleted from the server's schedule: `handed_off` → `cancelled`, or a row already
    /// `cancelled` (withdrawn) that still had a scheduled status, with its id cleared.
    Recalled { id: OutboxId },
    /// `handing_off` or `handed_off` → a final state (`missed`, `failed`, `cancelled`)
    /// with the reason.
    Ended {
        id: OutboxId,
        state: OutboxState,
        reason: String,
    },
}

/// Hand-off rows; part of [`Store`](super::Store).
#[async_trait]
pub trait HandOffs {
    /// Whether `account`'s posts go to its server's own scheduler.
    async fn set_hand_off(
        &self,
        account: AccountId,
        on: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Which of `accounts` chose hand-off.
    async fn hand_off_accounts(&self, accounts: &[AccountId])
    -> Result<Vec<AccountId>, StoreError>;
    /// Of hand-off accounts: eligible `pending` rows due at `from` or later that no server
    /// refused, and every `handing_off` and `handed_off` row, by account and `run_at`.
    async fn hand_off_rows(&self, from: DateTime<Utc>) -> Result<Vec<HandOffRow>, StoreError>;
    /// Lease `ids` (eligible `pending` rows) and every `handing_off` row whose lease ran
    /// out to `worker` as `handing_off` until `lease_until`. Each comes back with whether
    /// it was taken over from an earlier attempt (its outcome unknown: reconcile first).
    async fn claim_hand_off(
        &self,
        worker: &str,
        ids: &[OutboxId],
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Vec<(ClaimedPost, bool)>, StoreError>;
    /// Record what became of rows the hand-off worked on, in one transaction. Each
    /// transition is guarded by the state it leaves, so a withdrawal that came first wins
    /// (its row is recalled from the server by [`HandOffs::handed_off`]'s follow-up).
    async fn record_hand_off(
        &self,
        outcomes: &[HandOffOutcome],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// `handed_off` rows due by `now` (to read back) or no longer eligible, and `cancelled`
    /// rows that still have a scheduled status (both to delete from the server); with
    /// `account`, only that account's, whatever their time.
    async fn handed_off(
        &self,
        now: DateTime<Utc>,
        account: Option<AccountId>,
    ) -> Result<Vec<HandedOff>, StoreError>;
    /// `handing_off` rows of `account` (or of every account), to wait for before recalling.
    async fn handing_off(&self, account: Option<AccountId>) -> Result<Vec<OutboxId>, StoreError>;
}

#[derive(FromRow)]
struct HandedOffRaw {
    id: i64,
    account_id: i64,
    network: String,
    handle: String,
    server: Option<String>,
    credentials: Vec<u8>,
    trusted: bool,
    scheduled_id: Option<String>,
    run_at: i64,
    window_end: i64,
    text: Option<String>,
    eligible: bool,
}

impl TryFrom<HandedOffRaw> for HandedOff {
    type Error = StoreError;
    fn try_from(r: HandedOffRaw) -> Result<Self, StoreError> {
        Ok(HandedOff {
            id: OutboxId(r.id),
            account_id: AccountId(r.account_id),
            network: parse(&r.network)?,
            handle: parse(&r.handle)?,
            server: r.server,
            credentials: Sealed::new(r.credentials),
            trusted: r.trusted,
            scheduled_id: r.scheduled_id.ok_or_else(|| {
                StoreError::Corrupt(format!("handed-off post {} has no scheduled id", r.id))
            })?,
            run_at: instant(r.run_at)?,
            window_end: instant(r.window_end)?,
            text: r.text.unwrap_or_default(),
            eligible: r.eligible,
        })
    }
}

macro_rules! hand_offs {
    ($store:ty) => {
        #[async_trait]
        impl HandOffs for $store {
            async fn set_hand_off(
                &self,
                account: AccountId,
                on: bool,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let done = sqlx::query(
                    "UPDATE accounts SET hand_off = $2, updated_at = $3 WHERE id = $1",
                )
                .bind(account.0)
                .bind(on)
                .bind(ms(now))
                .execute(&self.pool)
                .await?
                .rows_affected();
                if done == 0 {
                    return Err(StoreError::NotFound(format!("account {}", account.0)));
                }
                Ok(())
            }

            async fn hand_off_accounts(
                &self,
                accounts: &[AccountId],
            ) -> Result<Vec<AccountId>, StoreError> {
                let mut out = Vec::new();
                for a in accounts {
                    let on: Option<bool> =
                        sqlx::query_scalar("SELECT hand_off FROM accounts WHERE id = $1")
                            .bind(a.0)
                            .fetch_optional(&self.pool)
                            .await?;
                    if on == Some(true) {
                        out.push(*a);
                    }
                }
                Ok(out)
            }

            async fn hand_off_rows(
                &self,
                from: DateTime<Utc>,
            ) -> Result<Vec<HandOffRow>, StoreError> {
                let rows = sqlx::query(concat!(
                    "SELECT o.id, o.account_id, o.run_at, o.state FROM outbox o \
                     JOIN accounts a ON a.id = o.account_id \
                     WHERE a.hand_off = TRUE AND a.route = 'api' AND (\
                     o.state IN ('handing_off', 'handed_off') OR \
                     (o.state = 'pending' AND o.hand_off_refused = FALSE \
                     AND o.run_at >= $1 AND ",
                    eligible!("o"),
                    ")) ORDER BY o.account_id, o.run_at, o.id"
                ))
                .bind(ms(from))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(|r| {
                        Ok(HandOffRow {
                            id: OutboxId(r.try_get("id")?),
                            account_id: AccountId(r.try_get("account_id")?),
                            run_at: instant(r.try_get("run_at")?)?,
                            state: outbox_state(&r.try_get::<String, _>("state")?)?,
                        })
                    })
                    .collect()
            }

            async fn claim_hand_off(
                &self,
                worker: &str,
                ids: &[OutboxId],
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
            ) -> Result<Vec<(ClaimedPost, bool)>, StoreError> {
                let mut tx = self.begin_write().await?;
                let expired: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM outbox WHERE state = 'handing_off' AND lease_until <= $1",
                )
                .bind(ms(now))
                .fetch_all(&mut *tx)
                .await?;
                let mut taken = Vec::new();
                for id in expired.iter().copied().chain(ids.iter().map(|i| i.0)) {
                    // The guard repeats every condition, so a withdrawal committed a moment
                    // earlier wins, as in `begin_sending`.
                    let got: Option<i64> = sqlx::query_scalar(concat!(
                        "UPDATE outbox SET state = 'handing_off', lease_owner = $2, \
                         lease_until = $3, attempts = attempts + 1, updated_at = $4 \
                         WHERE id = $1 AND ((state = 'pending' AND hand_off_refused = FALSE) \
                         OR (state = 'handing_off' AND lease_until <= $4)) AND ",
                        eligible!("outbox"),
                        " RETURNING id"
                    ))
                    .bind(id)
                    .bind(worker)
                    .bind(ms(lease_until))
                    .bind(ms(now))
                    .fetch_optional(&mut *tx)
                    .await?;
                    if let Some(id) = got
                        && !taken.contains(&id)
                    {
                        taken.push(id);
                    }
                }
                // An expired `handing_off` row that is no longer eligible (withdrawn while
                // its request was out) is taken as well: its outcome must be settled too.
                for id in &expired {
                    if taken.contains(id) {
                        continue;
                    }
                    let got: Option<i64> = sqlx::query_scalar(
                        "UPDATE outbox SET lease_owner = $2, lease_until = $3, \
                         updated_at = $4 WHERE id = $1 AND state = 'handing_off' \
                         AND lease_until <= $4 RETURNING id",
                    )
                    .bind(*id)
                    .bind(worker)
                    .bind(ms(lease_until))
                    .bind(ms(now))
                    .fetch_optional(&mut *tx)
                    .await?;
                    taken.extend(got);
                }
                let posts = Self::claimed_posts(&mut tx, &taken, now).await?;
                tx.commit().await?;
                Ok(posts
                    .into_iter()
                    .map(|p| {
                        let reclaimed = expired.contains(&p.id.0);
                        (p, reclaimed)
                    })
                    .collect())
            }

            async fn record_hand_off(
                &self,
                outcomes: &[HandOffOutcome],
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let now = ms(now);
                let mut tx = self.begin_write().await?;
                for o in outcomes {
                    match o {
                        HandOffOutcome::HandedOff {
                            id,
                            scheduled_id,
                            text,
                        } => {
                            sqlx::query(
                                // A row withdrawn while its request was out is still
                                // `cancelled`, but keeps the id so the recall deletes it.
                                "UPDATE outbox SET scheduled_id = $2, text = $3, \
                                 state = CASE WHEN state = 'handing_off' THEN 'handed_off' \
                                 ELSE state END, \
                                 last_error = CASE WHEN state = 'handing_off' THEN NULL \
                                 ELSE last_error END, lease_owner = NULL, \
                                 lease_until = NULL, outcome_unknown = FALSE, updated_at = $4 \
                                 WHERE id = $1 AND state IN ('handing_off', 'cancelled')",
                            )
                            .bind(id.0)
                            .bind(scheduled_id)
                            .bind(text)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        }
                        HandOffOutcome::Direct {
                            id,
                            refused,
                            reason,
                        } => {
                            sqlx::query(
                                "UPDATE outbox SET state = 'pending', scheduled_id = NULL, \
                                 hand_off_refused = (hand_off_refused OR $2), \
                                 last_error = COALESCE($3, last_error), lease_owner = NULL, \
                                 lease_until = NULL, updated_at = $4 \
                                 WHERE id = $1 AND state IN ('handing_off', 'handed_off')",
                            )
                            .bind(id.0)
                            .bind(*refused)
                            .bind(reason.as_deref())
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        }
                        HandOffOutcome::Published {
                            id,
                            remote_id,
                            remote_url,
                        } => {
                            sqlx::query(
                                "UPDATE outbox SET state = 'published', remote_id = $2, \
                                 remote_url = $3, published_at = $4, last_error = NULL, \
                                 scheduled_id = NULL, \
                                 lease_owner = NULL, lease_until = NULL, updated_at = $4 \
                                 WHERE id = $1 AND state IN ('handing_off', 'handed_off')",
                            )
                            .bind(id.0)
                            .bind(remote_id)
                            .bind(remote_url.as_deref())
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        }
                        HandOffOutcome::Recalled { id } => {
                            sqlx::query(
                                "UPDATE outbox SET state = 'cancelled', scheduled_id = NULL, \
                                 last_error = COALESCE(last_error, 'withdrawn'), \
                                 lease_owner = NULL, lease_until = NULL, updated_at = $2 \
                                 WHERE id = $1 AND state IN ('handed_off', 'cancelled')",
                            )
                            .bind(id.0)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        }
                        HandOffOutcome::Ended { id, state, reason } => {
                            sqlx::query(
                                "UPDATE outbox SET state = $2, last_error = $3, \
                                 scheduled_id = NULL, lease_owner = NULL, \
                                 lease_until = NULL, updated_at = $4 \
                                 WHERE id = $1 AND state IN ('handing_off', 'handed_off')",
                            )
                            .bind(id.0)
                            .bind(state.as_str())
                            .bind(reason)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn handed_off(
                &self,
                now: DateTime<Utc>,
                account: Option<AccountId>,
            ) -> Result<Vec<HandedOff>, StoreError> {
                let sql = concat!(
                    "SELECT o.id, o.account_id, a.network, a.handle, a.server, \
                     a.credentials, a.trusted, o.scheduled_id, o.run_at, o.window_end, \
                     o.text, CASE WHEN o.state = 'handed_off' AND ",
                    eligible!("o"),
                    " THEN TRUE ELSE FALSE END AS eligible \
                     FROM outbox o JOIN accounts a ON a.id = o.account_id \
                     WHERE o.scheduled_id IS NOT NULL AND ($2 IS NULL OR o.account_id = $2) \
                     AND (o.state = 'cancelled' OR \
                     (o.state = 'handed_off' AND ($2 IS NOT NULL OR o.run_at <= $1 OR NOT (",
                    eligible!("o"),
                    ")))) ORDER BY o.account_id, o.run_at, o.id"
                );
                sqlx::query_as::<_, HandedOffRaw>(AssertSqlSafe(sql))
                    .bind(ms(now))
                    .bind(account.map(|a| a.0))
                    .fetch_all(&self.pool)
                    .await?
                    .into_iter()
                    .map(HandedOff::try_from)
                    .collect()
            }

            async fn handing_off(
                &self,
                account: Option<AccountId>,
            ) -> Result<Vec<OutboxId>, StoreError> {
                let ids: Vec<i64> = sqlx::query_scalar(
                    "SELECT id FROM outbox WHERE state = 'handing_off' \
                     AND ($1 IS NULL OR account_id = $1) ORDER BY id",
                )
                .bind(account.map(|a| a.0))
                .fetch_all(&self.pool)
                .await?;
                Ok(ids.into_iter().map(OutboxId).collect())
            }
        }
    };
}

hand_offs!(SqliteStore);
hand_offs!(PgStore);
