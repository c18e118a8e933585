//! Tap-to-post reminders: which pledges' slots are due for their one reminder mail, the
//! at-most-once mark taken before that mail is sent, the single-purpose "I posted it"
//! tokens the mail carries, and recording a notice posted by hand.
//!
//! The same SQL on both databases: the `reminders!` macro stamps one implementation of
//! [`Reminders`] out for each backend.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::AssertSqlSafe;

use super::model::*;
use super::rows::{OUTBOX_COLUMNS, OutboxRowRaw, instant, ms};
use super::{PgStore, SqliteStore, StoreError};

/// One pledge's slot whose tap-to-post notices are all rendered and whose reminder mail
/// has not been sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReminderDue {
    pub pledge_id: PledgeId,
    pub participant_id: ParticipantId,
    pub campaign_id: String,
    pub slot_key: String,
    pub slot_at: DateTime<Utc>,
    /// When the slot's window ends (the earliest of its notices'): no push after it.
    pub window_end: DateTime<Utc>,
}

/// Reminders of tap-to-post notices; part of [`Store`](super::Store).
#[async_trait]
pub trait Reminders {
    /// Slots due for their reminder mail now, oldest first, at most `limit`: at least one
    /// `reminded` notice, no mail marked yet, the window (plus `grace`) still open, no
    /// tap-to-post notice of the same slot still waiting to be rendered (so one mail holds
    /// them all), an active pledge of a campaign not cancelled, and an address to mail or a browser to push to.
    async fn reminders_due(
        &self,
        now: DateTime<Utc>,
        grace: Duration,
        limit: u32,
    ) -> Result<Vec<ReminderDue>, StoreError>;
    /// Mark the slot's reminder mail as sent, before it is: `None` when it already was
    /// marked (by this process before a restart, or another one), otherwise the ids of
    /// the slot's `reminded` notices, for the mail. Never two mails for one slot.
    async fn mark_reminder_mail(
        &self,
        pledge: PledgeId,
        slot_key: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<OutboxId>>, StoreError>;
    /// Store the hash of each notice's "I posted it" token (the mail carries the token).
    async fn set_confirm_tokens(
        &self,
        tokens: &[(OutboxId, String)],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// One post with the participant whose pledge it belongs to.
    async fn outbox_row(
        &self,
        id: OutboxId,
    ) -> Result<Option<(OutboxRow, ParticipantId)>, StoreError>;
    /// The post whose "I posted it" token hashes to `token_hash`, with its participant.
    async fn outbox_row_by_confirm_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<(OutboxRow, ParticipantId)>, StoreError>;
    /// `reminded` → `posted_by_hand`, with the post's address if given; also a `pending`
    /// post of an account that needs reconnecting (the fallback: its owner posted it by
    /// hand instead, so picket must not post it after a reconnect). False when the row is
    /// neither (any more): a claim that came first wins.
    async fn confirm_posted(
        &self,
        id: OutboxId,
        url: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// The address a participant's reminders are mailed to (`None` removes it).
    async fn set_participant_email(
        &self,
        participant: ParticipantId,
        email: Option<&str>,
    ) -> Result<(), StoreError>;
}

#[derive(sqlx::FromRow)]
struct WithParticipant {
    #[sqlx(flatten)]
    row: OutboxRowRaw,
    participant_id: i64,
}

macro_rules! reminders {
    ($store:ty) => {
        #[async_trait]
        impl Reminders for $store {
            async fn reminders_due(
                &self,
                now: DateTime<Utc>,
                grace: Duration,
                limit: u32,
            ) -> Result<Vec<ReminderDue>, StoreError> {
                let rows = sqlx::query_as::<_, (i64, i64, String, String, i64, i64)>(
                    "SELECT o.pledge_id, p.participant_id, o.campaign_id, o.slot_key, \
                     MIN(o.slot_at), MIN(o.window_end) FROM outbox o \
                     JOIN pledges p ON p.id = o.pledge_id \
                     JOIN participants pt ON pt.id = p.participant_id \
                     WHERE o.state = 'reminded' AND o.window_end >= $1 - $2 \
                     AND p.status = 'active' AND (pt.email IS NOT NULL OR EXISTS \
                     (SELECT 1 FROM push_subscriptions s WHERE s.participant_id = pt.id)) \
                     AND NOT EXISTS (SELECT 1 FROM reminder_mails r \
                     WHERE r.pledge_id = o.pledge_id AND r.slot_key = o.slot_key) \
                     AND NOT EXISTS (SELECT 1 FROM outbox q \
                     JOIN accounts a ON a.id = q.account_id \
                     WHERE q.pledge_id = o.pledge_id AND q.slot_key = o.slot_key \
                     AND a.route = 'tap' AND q.state IN ('pending', 'claimed') \
                     AND q.run_at <= $1) \
                     AND NOT EXISTS (SELECT 1 FROM campaign_state c \
                     WHERE c.campaign_id = o.campaign_id AND c.cancelled_at IS NOT NULL) \
                     GROUP BY o.pledge_id, p.participant_id, o.campaign_id, o.slot_key \
                     ORDER BY MIN(o.slot_at), o.pledge_id LIMIT $3",
                )
                .bind(ms(now))
                .bind(grace.num_milliseconds())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.into_iter()
                    .map(
                        |(pledge, participant, campaign, slot_key, at, window_end)| {
                            Ok(ReminderDue {
                                pledge_id: PledgeId(pledge),
                                participant_id: ParticipantId(participant),
                                campaign_id: campaign,
                                slot_key,
                                slot_at: instant(at)?,
                                window_end: instant(window_end)?,
                            })
                        },
                    )
                    .collect()
            }

            async fn mark_reminder_mail(
                &self,
                pledge: PledgeId,
                slot_key: &str,
                now: DateTime<Utc>,
            ) -> Result<Option<Vec<OutboxId>>, StoreError> {
                let mut tx = self.begin_write().await?;
                let marked = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO reminder_mails (pledge_id, slot_key, marked_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING pledge_id",
                )
                .bind(pledge.0)
                .bind(slot_key)
                .bind(ms(now))
                .fetch_optional(&mut *tx)
                .await?;
                if marked.is_none() {
                    return Ok(None);
                }
                let ids = sqlx::query_scalar::<_, i64>(
                    "SELECT id FROM outbox WHERE pledge_id = $1 AND slot_key = $2 \
                     AND state = 'reminded' ORDER BY account_id",
                )
                .bind(pledge.0)
                .bind(slot_key)
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(ids.into_iter().map(OutboxId).collect()))
            }

            async fn set_confirm_tokens(
                &self,
                tokens: &[(OutboxId, String)],
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let mut tx = self.begin_write().await?;
                for (id, hash) in tokens {
                    sqlx::query(
                        "UPDATE outbox SET confirm_token_hash = $2, updated_at = $3 \
                         WHERE id = $1 AND state = 'reminded'",
                    )
                    .bind(id.0)
                    .bind(hash)
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn outbox_row(
                &self,
                id: OutboxId,
            ) -> Result<Option<(OutboxRow, ParticipantId)>, StoreError> {
                let sql = format!(
                    "SELECT {OUTBOX_COLUMNS}, p.participant_id FROM outbox o \
                     JOIN pledges p ON p.id = o.pledge_id WHERE o.id = $1"
                );
                let row = sqlx::query_as::<_, WithParticipant>(AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| Ok((OutboxRow::try_from(r.row)?, ParticipantId(r.participant_id))))
                    .transpose()
            }

            async fn outbox_row_by_confirm_token(
                &self,
                token_hash: &str,
            ) -> Result<Option<(OutboxRow, ParticipantId)>, StoreError> {
                let sql = format!(
                    "SELECT {OUTBOX_COLUMNS}, p.participant_id FROM outbox o \
                     JOIN pledges p ON p.id = o.pledge_id WHERE o.confirm_token_hash = $1"
                );
                let row = sqlx::query_as::<_, WithParticipant>(AssertSqlSafe(sql))
                    .bind(token_hash)
                    .fetch_optional(&self.pool)
                    .await?;
                row.map(|r| Ok((OutboxRow::try_from(r.row)?, ParticipantId(r.participant_id))))
                    .transpose()
            }

            async fn confirm_posted(
                &self,
                id: OutboxId,
                url: Option<&str>,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let n = sqlx::query(
                    "UPDATE outbox SET state = 'posted_by_hand', confirmed_at = $2, \
                     confirmed_url = $3, updated_at = $2 \
                     WHERE id = $1 AND (state = 'reminded' OR (state = 'pending' \
                     AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = outbox.account_id \
                     AND a.status = 'reconnect_needed')))",
                )
                .bind(id.0)
                .bind(ms(now))
                .bind(url)
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(n == 1)
            }

            async fn set_participant_email(
                &self,
                participant: ParticipantId,
                email: Option<&str>,
            ) -> Result<(), StoreError> {
                let n = sqlx::query(
                    "UPDATE participants SET email = $2, email_canonical = $3 WHERE id = $1",
                )
                .bind(participant.0)
                .bind(email)
                .bind(email.map(canonical_email))
                .execute(&self.pool)
                .await?
                .rows_affected();
                if n == 0 {
                    return Err(StoreError::NotFound(format!("participant {participant}")));
                }
                Ok(())
            }
        }
    };
}

reminders!(SqliteStore);
reminders!(PgStore);
