//! Tap-to-post reminders: which pledges' slots are due for a reminder mail (tap-to-post
//! notices, and the fallback: posts of accounts needing reconnection), the at-most-once
//! mark taken before that mail is sent (each notice's single-purpose "I posted it" token,
//! so no notice is in two mails; `reminder_mails` records the slot's first mail), and
//! recording a notice posted by hand.
//!
//! The same SQL on both databases: the `reminders!` macro stamps one implementation of
//! [`Reminders`] out for each backend.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::AssertSqlSafe;

use super::model::*;
use super::rows::{OUTBOX_COLUMNS, OutboxRowRaw, instant, ms};
use super::{PgStore, SqliteStore, StoreError};

/// One pledge's slot with notices waiting to be posted by hand that no reminder mail has
/// carried yet.
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

/// What [`Reminders::mark_reminder_mail`] marked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkedMail {
    /// The notices this mail carries, by `OutboxId`: the ones still unmailed and still
    /// waiting to be posted by hand. Empty: nothing to send.
    pub ids: Vec<OutboxId>,
    /// No earlier mail went for this slot: false when a notice fell back to the hand
    /// (its account failed at send time) after the slot's mail went out.
    pub first: bool,
}

/// A notice waiting to be posted by hand at `$now`: a tap-to-post notice rendered at its
/// minute (`reminded`), or the fallback: a `pending` post of an API account that needs
/// reconnecting, from its slot's minute (not its jittered `run_at`: jitter spreads
/// requests to a server, and a person posting by hand sends none; the slot's minute is
/// when the tap notices of the same slot are mailed, so one mail holds both), until its
/// window ends (after that "I posted it" refuses it: a reconnect cannot post it either).
macro_rules! by_hand {
    ($t:literal, $now:literal) => {
        concat!(
            "(",
            $t,
            ".state = 'reminded' OR (",
            $t,
            ".state = 'pending' AND ",
            $t,
            ".slot_at <= ",
            $now,
            " AND ",
            $t,
            ".window_end >= ",
            $now,
            " AND EXISTS (SELECT 1 FROM accounts a WHERE a.id = ",
            $t,
            ".account_id AND a.route = 'api' AND a.status = 'reconnect_needed')))"
        )
    };
}

/// Reminders of tap-to-post notices; part of [`Store`](super::Store).
#[async_trait]
pub trait Reminders {
    /// Slots due for a reminder now, oldest first, at most `limit`: at least one notice
    /// waiting to be posted by hand (a `reminded` tap notice, or a post of an account
    /// needing reconnection from its slot's minute) that no reminder carried yet, its
    /// window (plus `grace`) still open, no post of the same slot due now still waiting to
    /// be rendered or sent (so one mail holds the whole slot, including a post whose
    /// account fails as it is sent), an active pledge of a campaign not cancelled, and an
    /// address to mail or a browser to push to.
    async fn reminders_due(
        &self,
        now: DateTime<Utc>,
        grace: Duration,
        limit: u32,
    ) -> Result<Vec<ReminderDue>, StoreError>;
    /// Mark the notices of one mail as mailed, before it is sent, with the hash of each
    /// one's "I posted it" token (the mail carries the token): only those of the slot
    /// still unmailed and still waiting by hand are marked and returned. A notice is
    /// never in two mails, whoever marks first (this process before a restart, or
    /// another one).
    async fn mark_reminder_mail(
        &self,
        pledge: PledgeId,
        slot_key: &str,
        tokens: &[(OutboxId, String)],
        now: DateTime<Utc>,
    ) -> Result<MarkedMail, StoreError>;
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
                let rows = sqlx::query_as::<_, (i64, i64, String, String, i64, i64)>(concat!(
                    "SELECT o.pledge_id, p.participant_id, o.campaign_id, o.slot_key, \
                     MIN(o.slot_at), MIN(o.window_end) FROM outbox o \
                     JOIN pledges p ON p.id = o.pledge_id \
                     JOIN participants pt ON pt.id = p.participant_id \
                     WHERE ",
                    by_hand!("o", "$1"),
                    " AND o.confirm_token_hash IS NULL AND o.window_end >= $1 - $2 \
                     AND p.status = 'active' AND (pt.email IS NOT NULL OR EXISTS \
                     (SELECT 1 FROM push_subscriptions s WHERE s.participant_id = pt.id)) \
                     AND NOT EXISTS (SELECT 1 FROM outbox q \
                     JOIN accounts a ON a.id = q.account_id \
                     WHERE q.pledge_id = o.pledge_id AND q.slot_key = o.slot_key \
                     AND q.run_at <= $1 AND ((q.state IN ('pending', 'claimed') \
                     AND (a.route = 'tap' OR a.status = 'active')) \
                     OR (q.state = 'sending' AND q.lease_until > $1))) \
                     AND NOT EXISTS (SELECT 1 FROM campaign_state c \
                     WHERE c.campaign_id = o.campaign_id AND c.cancelled_at IS NOT NULL) \
                     GROUP BY o.pledge_id, p.participant_id, o.campaign_id, o.slot_key \
                     ORDER BY MIN(o.slot_at), o.pledge_id LIMIT $3"
                ))
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
                tokens: &[(OutboxId, String)],
                now: DateTime<Utc>,
            ) -> Result<MarkedMail, StoreError> {
                let mut tx = self.begin_write().await?;
                let first = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO reminder_mails (pledge_id, slot_key, marked_at) \
                     VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING pledge_id",
                )
                .bind(pledge.0)
                .bind(slot_key)
                .bind(ms(now))
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
                let mut ids = Vec::with_capacity(tokens.len());
                for (id, hash) in tokens {
                    let marked = sqlx::query_scalar::<_, i64>(concat!(
                        "UPDATE outbox SET confirm_token_hash = $2, updated_at = $3 \
                         WHERE id = $1 AND pledge_id = $4 AND slot_key = $5 \
                         AND confirm_token_hash IS NULL AND ",
                        by_hand!("outbox", "$3"),
                        " RETURNING id"
                    ))
                    .bind(id.0)
                    .bind(hash)
                    .bind(ms(now))
                    .bind(pledge.0)
                    .bind(slot_key)
                    .fetch_optional(&mut *tx)
                    .await?;
                    ids.extend(marked.map(OutboxId));
                }
                if ids.is_empty() {
                    // Nothing to mail: the slot's mark is not taken either.
                    return Ok(MarkedMail { ids, first: false });
                }
                tx.commit().await?;
                Ok(MarkedMail { ids, first })
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
