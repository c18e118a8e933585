//! Webhooks' durable outbox: the hooks this host has seen, the events enqueued for each,
//! claiming due ones under a lease, and recording each attempt's outcome.
//!
//! Events are *derived* from committed state by a scanner (`scheduler::webhooks`), not
//! written in the transactions they report: [`Webhooks::webhook_facts`] finds confirmed
//! signatures, pledges, and posts that reached `published`, `posted_by_hand` (a
//! tap-to-post notice its person said they posted: "I posted it"), `failed` or `missed` for which
//! a hook has no event yet, and [`Webhooks::enqueue_webhook_events`] inserts them with
//! `ON CONFLICT DO NOTHING` on the unique key (hook, kind, subject). So each event is
//! enqueued exactly once whichever process scans first, and a crash between a commit and
//! its event only delays the event to the next scan. Writing them in the same transaction
//! would have touched every path that signs, pledges or records a post, on both backends.
//!
//! The SQL is the same on both databases: the `webhooks!` macro stamps one implementation
//! of [`Webhooks`] out for each backend. Instants come from the caller's clock.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::rows::{instant, ms};
use super::{PgStore, SqliteStore, StoreError};

/// Kinds of event the store can find in committed state (the rest are enqueued by the
/// scheduler from figures, e.g. `threshold.reached`).
pub const POST_KINDS: [&str; 4] = [
    "post.published",
    "post.posted_by_hand",
    "post.failed",
    "post.missed",
];

/// Something that happened, as found in committed rows, that a hook has no event for yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookFact {
    /// `signature.counted`, `striker.joined`, `post.published`, `post.posted_by_hand`,
    /// `post.failed`, `post.missed`.
    pub kind: String,
    /// The row it is about (a signature, pledge or outbox id), as text.
    pub subject: String,
    pub campaign_id: String,
    pub at: DateTime<Utc>,
    /// For posts: the account's network, the post's name, its public link once published
    /// (for one posted by hand, the link its person gave, if any), and picket's own reason
    /// for a failed or missed one.
    pub network: Option<String>,
    pub post_name: Option<String>,
    pub link: Option<String>,
    pub reason: Option<String>,
}

/// An event to enqueue for one hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookEvent {
    pub kind: String,
    pub subject: String,
    /// Drawn once by the caller; sent on every attempt.
    pub event_id: String,
    /// The exact JSON body.
    pub payload: String,
}

/// A claimed event, to deliver now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDelivery {
    pub id: i64,
    pub hook: String,
    pub kind: String,
    pub event_id: String,
    pub payload: String,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub created_at: DateTime<Utc>,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookOutcome {
    /// The receiver answered 2xx.
    Delivered,
    /// Try again at `run_at`; `error` says why this attempt did not count.
    Retry {
        run_at: DateTime<Utc>,
        error: String,
    },
    /// Given up, for the reason given.
    Failed { error: String },
}

/// An event as stored, for the operator and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWebhookEvent {
    pub kind: String,
    pub subject: String,
    pub event_id: String,
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Webhooks' outbox; part of [`Store`](super::Store).
#[async_trait]
pub trait Webhooks {
    /// Note `hook` (first seen at `now`) and answer since when it is told about events.
    async fn register_webhook(
        &self,
        hook: &str,
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, StoreError>;
    /// Up to `limit` facts of each of `kinds` that happened at or after `since` and have
    /// no event for `hook` yet, oldest first.
    async fn webhook_facts(
        &self,
        hook: &str,
        kinds: &[&str],
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<WebhookFact>, StoreError>;
    /// Enqueue events for `hook`, due at `now`; one already enqueued (same kind and
    /// subject) is left as it is. Answers how many were new.
    async fn enqueue_webhook_events(
        &self,
        hook: &str,
        events: &[NewWebhookEvent],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Lease up to `limit` due events to `owner` until `lease_until`, counting an attempt
    /// each. An event whose lease ran out (its worker died) is due again.
    async fn claim_webhooks(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError>;
    /// Record an attempt's outcome, if `owner` still holds the event. False when it does
    /// not (its lease ran out and another worker took it).
    async fn record_webhook(
        &self,
        id: i64,
        owner: &str,
        outcome: &WebhookOutcome,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Every event of `hook`, oldest first.
    async fn webhook_events(&self, hook: &str) -> Result<Vec<StoredWebhookEvent>, StoreError>;
}

type FactRow = (
    String,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn fact(
    (subject, campaign_id, at, kind, network, post_name, link, reason): FactRow,
) -> Result<WebhookFact, StoreError> {
    Ok(WebhookFact {
        kind,
        subject,
        campaign_id,
        at: instant(at)?,
        network,
        post_name,
        link,
        reason,
    })
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The scanning statements; `{posts}` is filled with fixed state names only.
const SIGNATURES: &str = "SELECT CAST(s.id AS TEXT), s.campaign_id, s.created_at, \
     'signature.counted', NULL, NULL, NULL, NULL FROM signatures s \
     WHERE s.confirmed = TRUE AND s.created_at >= $2 AND NOT EXISTS (SELECT 1 FROM \
     webhook_events w WHERE w.hook = $1 AND w.kind = 'signature.counted' \
     AND w.subject = CAST(s.id AS TEXT)) ORDER BY s.id LIMIT $3";
const PLEDGES: &str = "SELECT CAST(p.id AS TEXT), p.campaign_id, p.created_at, \
     'striker.joined', NULL, NULL, NULL, NULL FROM pledges p \
     WHERE p.created_at >= $2 AND NOT EXISTS (SELECT 1 FROM webhook_events w \
     WHERE w.hook = $1 AND w.kind = 'striker.joined' AND w.subject = CAST(p.id AS TEXT)) \
     ORDER BY p.id LIMIT $3";
const POSTS: &str = "SELECT CAST(o.id AS TEXT), o.campaign_id, o.updated_at, \
     'post.' || o.state, a.network, o.post_name, \
     CASE WHEN o.state = 'posted_by_hand' THEN o.confirmed_url ELSE o.remote_url END, \
     CASE WHEN o.state IN ('failed', 'missed') THEN o.last_error END \
     FROM outbox o JOIN accounts a ON a.id = o.account_id \
     WHERE o.state IN ({posts}) AND o.updated_at >= $2 AND NOT EXISTS (SELECT 1 FROM \
     webhook_events w WHERE w.hook = $1 AND w.kind = 'post.' || o.state \
     AND w.subject = CAST(o.id AS TEXT)) ORDER BY o.id LIMIT $3";

type DeliveryRow = (i64, String, String, String, String, i64, i64);

/// [`Webhooks`] for the backend `$store`.
macro_rules! webhooks {
    ($store:ty) => {
        #[async_trait]
        impl Webhooks for $store {
            async fn register_webhook(
                &self,
                hook: &str,
                now: DateTime<Utc>,
            ) -> Result<DateTime<Utc>, StoreError> {
                sqlx::query(
                    "INSERT INTO webhook_hooks (hook, since) VALUES ($1, $2) \
                     ON CONFLICT (hook) DO NOTHING",
                )
                .bind(hook)
                .bind(ms(now))
                .execute(&self.pool)
                .await?;
                let since: i64 =
                    sqlx::query_scalar("SELECT since FROM webhook_hooks WHERE hook = $1")
                        .bind(hook)
                        .fetch_one(&self.pool)
                        .await?;
                instant(since)
            }

            async fn webhook_facts(
                &self,
                hook: &str,
                kinds: &[&str],
                since: DateTime<Utc>,
                limit: u32,
            ) -> Result<Vec<WebhookFact>, StoreError> {
                let mut statements = Vec::new();
                if kinds.contains(&"signature.counted") {
                    statements.push(SIGNATURES.to_string());
                }
                if kinds.contains(&"striker.joined") {
                    statements.push(PLEDGES.to_string());
                }
                let posts: Vec<String> = POST_KINDS
                    .iter()
                    .filter(|k| kinds.contains(k))
                    .map(|k| format!("'{}'", k.trim_start_matches("post.")))
                    .collect();
                if !posts.is_empty() {
                    statements.push(POSTS.replace("{posts}", &posts.join(", ")));
                }
                let mut facts = Vec::new();
                for statement in statements {
                    // Only fixed text: the statements above, with fixed state names.
                    let rows: Vec<FactRow> = sqlx::query_as(sqlx::AssertSqlSafe(statement))
                        .bind(hook)
                        .bind(ms(since))
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                    for row in rows {
                        facts.push(fact(row)?);
                    }
                }
                Ok(facts)
            }

            async fn enqueue_webhook_events(
                &self,
                hook: &str,
                events: &[NewWebhookEvent],
                now: DateTime<Utc>,
            ) -> Result<u64, StoreError> {
                let mut tx = self.begin_write().await?;
                let mut added = 0;
                for e in events {
                    added += sqlx::query(
                        "INSERT INTO webhook_events (hook, kind, subject, event_id, payload, \
                         run_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6, $6) \
                         ON CONFLICT (hook, kind, subject) DO NOTHING",
                    )
                    .bind(hook)
                    .bind(&e.kind)
                    .bind(&e.subject)
                    .bind(&e.event_id)
                    .bind(&e.payload)
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                Ok(added)
            }

            async fn claim_webhooks(
                &self,
                owner: &str,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
                limit: u32,
            ) -> Result<Vec<WebhookDelivery>, StoreError> {
                let mut tx = self.begin_write().await?;
                // The outer condition is checked again on a row another worker changed
                // meanwhile (PostgreSQL, READ COMMITTED), so two workers never both lease it.
                let rows: Vec<DeliveryRow> = sqlx::query_as(
                    "UPDATE webhook_events SET lease_owner = $1, lease_until = $2, \
                     attempts = attempts + 1, updated_at = $3 \
                     WHERE id IN (SELECT id FROM webhook_events WHERE state = 'pending' \
                     AND run_at <= $3 AND (lease_until IS NULL OR lease_until <= $3) \
                     ORDER BY run_at, id LIMIT $4) \
                     AND state = 'pending' AND (lease_until IS NULL OR lease_until <= $3) \
                     RETURNING id, hook, kind, event_id, payload, attempts, created_at",
                )
                .bind(owner)
                .bind(ms(lease_until))
                .bind(ms(now))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
                tx.commit().await?;
                let mut claimed = Vec::with_capacity(rows.len());
                for (id, hook, kind, event_id, payload, attempts, created_at) in rows {
                    claimed.push(WebhookDelivery {
                        id,
                        hook,
                        kind,
                        event_id,
                        payload,
                        attempts: count(attempts),
                        created_at: instant(created_at)?,
                    });
                }
                claimed.sort_by_key(|d| d.id);
                Ok(claimed)
            }

            async fn record_webhook(
                &self,
                id: i64,
                owner: &str,
                outcome: &WebhookOutcome,
                now: DateTime<Utc>,
            ) -> Result<bool, StoreError> {
                let (state, run_at, error) = match outcome {
                    WebhookOutcome::Delivered => ("delivered", None, None),
                    WebhookOutcome::Retry { run_at, error } => {
                        ("pending", Some(ms(*run_at)), Some(error.as_str()))
                    }
                    WebhookOutcome::Failed { error } => ("failed", None, Some(error.as_str())),
                };
                let done = sqlx::query(
                    "UPDATE webhook_events SET state = $3, run_at = COALESCE($4, run_at), \
                     last_error = $5, lease_owner = NULL, lease_until = NULL, updated_at = $6 \
                     WHERE id = $1 AND lease_owner = $2 AND state = 'pending'",
                )
                .bind(id)
                .bind(owner)
                .bind(state)
                .bind(run_at)
                .bind(error)
                .bind(ms(now))
                .execute(&self.pool)
                .await?
                .rows_affected();
                Ok(done == 1)
            }

            async fn webhook_events(
                &self,
                hook: &str,
            ) -> Result<Vec<StoredWebhookEvent>, StoreError> {
                let rows: Vec<(String, String, String, String, String, i64, Option<String>)> =
                    sqlx::query_as(
                        "SELECT kind, subject, event_id, payload, state, attempts, last_error \
                         FROM webhook_events WHERE hook = $1 ORDER BY id",
                    )
                    .bind(hook)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(
                        |(kind, subject, event_id, payload, state, attempts, last_error)| {
                            StoredWebhookEvent {
                                kind,
                                subject,
                                event_id,
                                payload,
                                state,
                                attempts: count(attempts),
                                last_error,
                            }
                        },
                    )
                    .collect())
            }
        }
    };
}

webhooks!(SqliteStore);
webhooks!(PgStore);
