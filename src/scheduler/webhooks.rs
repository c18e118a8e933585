//! Webhooks for organisers: events found in committed state are enqueued once per hook,
//! then delivered from that outbox like posts are: claimed under a lease (several
//! workers on PostgreSQL share it), sent through `network::webhook`, the outcome recorded.
//!
//! Why a scanner: each round asks the store for confirmed signatures, pledges and posts
//! with a final outcome that a hook has no event for yet (since the hook was first seen)
//! and enqueues them under the unique key (hook, kind, subject), so each event is enqueued
//! exactly once, by whichever process sees it first, and nothing committed is missed: an
//! event not enqueued before a crash is found by the next scan. `threshold.reached` is
//! derived the same way from the pledge count (one per campaign and hook).
//!
//! Delivery is at least once on the wire, exactly once by event id: the id is drawn at
//! enqueue time and sent on every attempt (`Picket-Event-Id`). A worker killed after the
//! receiver answered but before the outcome was recorded leaves the lease to run out, and
//! the event is sent again with the same id; a receiver that dedupes by id processes it
//! once. 2xx delivers; 5xx, 408, 429, timeouts and connection errors are retried with the
//! posts' backoff (`retry`) until [`GIVE_UP`] after the event was enqueued; any other
//! answer fails the event for good. The reason is recorded on the event and logged with
//! the hook's key, never its URL (it may hold a token) nor its secret.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rand::RngExt;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::retry::RetryPolicy;
use crate::campaign::Campaign;
use crate::clock::Clock;
use crate::config::WebhookSettings;
use crate::domain::Secret;
use crate::network::guarded::Http;
use crate::network::webhook::{self, Attempt};
use crate::store::{
    NewWebhookEvent, Store, StoreError, WebhookDelivery, WebhookFact, WebhookOutcome,
};

/// How often the scanner looks for new events and due deliveries.
const POLL: StdDuration = StdDuration::from_millis(500);

/// Facts of each kind taken per hook and round, events claimed per round.
const BATCH: u32 = 100;

/// How long an event is retried after it was enqueued before it is given up.
pub const GIVE_UP: Duration = Duration::hours(24);

/// A claim lasts one attempt's deadline and a margin: a worker killed mid-attempt holds
/// its events at most this long.
pub fn lease() -> Duration {
    Duration::from_std(webhook::ATTEMPT_TIMEOUT).expect("small") + Duration::seconds(5)
}

/// One configured hook.
#[derive(Debug, Clone)]
pub struct Hook {
    /// The first 16 hex digits of the SHA-256 of its URL: how the store knows it, and how
    /// logs name it.
    pub key: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret: Secret,
}

impl Hook {
    /// From the checked settings (`Settings::load` fills the secret).
    pub fn from_settings(s: &WebhookSettings) -> Option<Hook> {
        Some(Hook {
            key: hook_key(&s.url),
            url: s.url.clone(),
            events: s.events.clone(),
            secret: s.secret.clone()?,
        })
    }

    fn wants(&self, kind: &str) -> bool {
        self.events.iter().any(|e| e == kind)
    }
}

/// The store's name for the hook at `url`.
pub fn hook_key(url: &str) -> String {
    hex::encode(Sha256::digest(url.as_bytes()))[..16].to_string()
}

/// A fresh event id.
fn event_id() -> String {
    format!("evt_{:032x}", rand::rng().random::<u128>())
}

/// The JSON body of an event found in the store.
pub fn payload(id: &str, fact: &WebhookFact) -> String {
    let subject: serde_json::Value = fact
        .subject
        .parse::<i64>()
        .map_or_else(|_| json!(fact.subject), |n| json!(n));
    let data = match fact.kind.as_str() {
        "signature.counted" => json!({ "signature_id": subject }),
        "striker.joined" => json!({ "pledge_id": subject }),
        _ => json!({
            "post_id": subject,
            "network": fact.network,
            "post": fact.post_name,
            "link": fact.link,
            "reason": fact.reason,
        }),
    };
    body(id, &fact.kind, &fact.campaign_id, fact.at, data)
}

fn body(
    id: &str,
    kind: &str,
    campaign: &str,
    at: DateTime<Utc>,
    data: serde_json::Value,
) -> String {
    json!({
        "id": id,
        "type": kind,
        "created_at": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "campaign": campaign,
        "data": data,
    })
    .to_string()
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WebhookReport {
    pub enqueued: u64,
    pub delivered: usize,
    pub retried: usize,
    pub failed: usize,
}

/// The webhook task.
pub struct WebhookSender {
    pub store: Arc<dyn Store>,
    /// The trusted client: hooks are typed by the operator.
    pub http: Http,
    pub hooks: Vec<Hook>,
    pub clock: Arc<dyn Clock>,
    pub campaigns: Arc<Vec<Campaign>>,
    /// This process's name on its leases.
    pub owner: String,
    pub retry: RetryPolicy,
}

impl WebhookSender {
    /// The task `picket serve` runs, over the app's store, clock and campaigns.
    pub fn from_state(state: &crate::web::AppState) -> WebhookSender {
        WebhookSender::new(
            state.store.clone(),
            state.egress.trusted().clone(),
            &state.settings.webhooks,
            state.clock.clone(),
            state.campaigns.clone(),
        )
    }

    /// The sender of `hooks` (`picket worker` has no web state). Hooks are the operator's
    /// settings: reached through the trusted client.
    pub fn new(
        store: Arc<dyn Store>,
        http: Http,
        hooks: &[WebhookSettings],
        clock: Arc<dyn Clock>,
        campaigns: Arc<Vec<Campaign>>,
    ) -> WebhookSender {
        WebhookSender {
            store,
            http,
            hooks: hooks.iter().filter_map(Hook::from_settings).collect(),
            clock,
            campaigns,
            owner: format!(
                "webhooks-{}-{:08x}",
                std::process::id(),
                rand::rng().random::<u32>()
            ),
            retry: RetryPolicy {
                base: StdDuration::from_secs(1),
                cap: StdDuration::from_secs(10 * 60),
            },
        }
    }

    /// Scan and deliver until `stop`; without hooks, only wait for it.
    pub async fn run(&self, stop: CancellationToken) -> anyhow::Result<()> {
        if self.hooks.is_empty() {
            stop.cancelled().await;
            return Ok(());
        }
        let mut since = None;
        while !stop.is_cancelled() {
            if since.is_none() {
                since = super::isolate_async(self.register())
                    .await
                    .map_err(|p| tracing::error!(error = %p, "registering webhooks failed"))
                    .ok()
                    .and_then(|r| {
                        r.map_err(|e| tracing::error!(error = %e, "registering webhooks failed"))
                            .ok()
                    });
            }
            if let Some(since) = &since {
                match super::isolate_async(self.step(since)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => tracing::error!(error = %e, "webhook round failed"),
                    Err(panic) => tracing::error!(error = %panic, "webhook round failed"),
                }
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        Ok(())
    }

    /// Since when each hook (by position) is told about events.
    pub async fn register(&self) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let now = self.clock.now();
        let mut since = Vec::with_capacity(self.hooks.len());
        for hook in &self.hooks {
            since.push(self.store.register_webhook(&hook.key, now).await?);
        }
        Ok(since)
    }

    /// One round: enqueue what happened, then deliver what is due. Tests call it.
    pub async fn step(&self, since: &[DateTime<Utc>]) -> Result<WebhookReport, StoreError> {
        let mut report = WebhookReport::default();
        for (hook, since) in self.hooks.iter().zip(since) {
            report.enqueued += self.enqueue(hook, *since).await?;
        }
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_webhooks(&self.owner, now, now + lease(), BATCH)
            .await?;
        let attempts = claimed.iter().map(|d| self.deliver(d));
        for outcome in futures::future::join_all(attempts).await {
            match outcome? {
                WebhookOutcome::Delivered => report.delivered += 1,
                WebhookOutcome::Retry { .. } => report.retried += 1,
                WebhookOutcome::Failed { .. } => report.failed += 1,
            }
        }
        Ok(report)
    }

    async fn enqueue(&self, hook: &Hook, since: DateTime<Utc>) -> Result<u64, StoreError> {
        let kinds: Vec<&str> = hook.events.iter().map(String::as_str).collect();
        let mut events: Vec<NewWebhookEvent> = self
            .store
            .webhook_facts(&hook.key, &kinds, since, BATCH)
            .await?
            .iter()
            .map(|fact| {
                let id = event_id();
                NewWebhookEvent {
                    kind: fact.kind.clone(),
                    subject: fact.subject.clone(),
                    payload: payload(&id, fact),
                    event_id: id,
                }
            })
            .collect();
        if hook.wants("threshold.reached") {
            let now = self.clock.now();
            for campaign in self.campaigns.iter() {
                let Some(threshold) = campaign.threshold else {
                    continue;
                };
                let by = threshold.deadline.map_or(now, |d| d.min(now));
                let pledged = self.store.active_pledge_count(&campaign.id, by).await?;
                if pledged >= u64::from(threshold.participants) {
                    let id = event_id();
                    let data = json!({
                        "participants": threshold.participants,
                        "pledged": pledged,
                    });
                    events.push(NewWebhookEvent {
                        kind: "threshold.reached".into(),
                        subject: campaign.id.to_string(),
                        payload: body(&id, "threshold.reached", &campaign.id, now, data),
                        event_id: id,
                    });
                }
            }
        }
        if events.is_empty() {
            return Ok(0);
        }
        self.store
            .enqueue_webhook_events(&hook.key, &events, self.clock.now())
            .await
    }

    /// One attempt of one event, its outcome recorded (a panic in it fails the event).
    async fn deliver(&self, d: &WebhookDelivery) -> Result<WebhookOutcome, StoreError> {
        let attempt = super::isolate_async(self.attempt(d))
            .await
            .unwrap_or_else(|panic| Attempt::Rejected(panic.into_message()));
        let now = self.clock.now();
        let outcome = match attempt {
            Attempt::Delivered => WebhookOutcome::Delivered,
            Attempt::Retry(reason) if now - d.created_at < GIVE_UP => WebhookOutcome::Retry {
                run_at: now
                    + Duration::from_std(self.retry.delay(d.attempts, None))
                        .unwrap_or(Duration::minutes(10)),
                error: reason,
            },
            Attempt::Retry(reason) => WebhookOutcome::Failed {
                error: format!("given up after {} attempts: {reason}", d.attempts),
            },
            Attempt::Rejected(reason) => WebhookOutcome::Failed { error: reason },
        };
        match &outcome {
            WebhookOutcome::Delivered => {}
            WebhookOutcome::Retry { error, .. } => {
                tracing::info!(
                    hook = d.hook.as_str(),
                    kind = d.kind.as_str(),
                    attempts = d.attempts,
                    error = error.as_str(),
                    "webhook will be retried"
                )
            }
            WebhookOutcome::Failed { error } => {
                tracing::warn!(
                    hook = d.hook.as_str(),
                    kind = d.kind.as_str(),
                    attempts = d.attempts,
                    error = error.as_str(),
                    "webhook failed for good"
                )
            }
        }
        self.store
            .record_webhook(d.id, &self.owner, &outcome, now)
            .await?;
        Ok(outcome)
    }

    async fn attempt(&self, d: &WebhookDelivery) -> Attempt {
        let Some(hook) = self.hooks.iter().find(|h| h.key == d.hook) else {
            return Attempt::Rejected("the hook is no longer in the settings".into());
        };
        webhook::send(
            &self.http,
            &hook.url,
            hook.secret.expose().as_bytes(),
            &d.event_id,
            &d.kind,
            &d.payload,
            self.clock.now().timestamp(),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fact(kind: &str) -> WebhookFact {
        WebhookFact {
            kind: kind.into(),
            subject: "42".into(),
            campaign_id: "strike".into(),
            at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            network: Some("mastodon".into()),
            post_name: Some("main".into()),
            link: None,
            reason: Some("the server refused the token".into()),
        }
    }

    #[test]
    fn an_event_payload_names_its_id_type_campaign_and_what_it_is_about() {
        let body: serde_json::Value =
            serde_json::from_str(&payload("evt_1", &fact("post.failed"))).unwrap();
        assert_eq!(
            body,
            json!({
                "id": "evt_1",
                "type": "post.failed",
                "created_at": "2023-11-14T22:13:20.000Z",
                "campaign": "strike",
                "data": {
                    "post_id": 42,
                    "network": "mastodon",
                    "post": "main",
                    "link": null,
                    "reason": "the server refused the token",
                },
            })
        );
        let body: serde_json::Value =
            serde_json::from_str(&payload("evt_2", &fact("signature.counted"))).unwrap();
        assert_eq!(body["data"], json!({ "signature_id": 42 }));
        let body: serde_json::Value =
            serde_json::from_str(&payload("evt_3", &fact("striker.joined"))).unwrap();
        assert_eq!(body["data"], json!({ "pledge_id": 42 }));
    }

    #[test]
    fn a_hook_is_known_by_a_short_hash_of_its_url_and_event_ids_are_unique() {
        assert_eq!(
            hook_key("https://a.example/h"),
            hook_key("https://a.example/h")
        );
        assert_ne!(
            hook_key("https://a.example/h"),
            hook_key("https://b.example/h")
        );
        assert_eq!(hook_key("https://a.example/h").len(), 16);
        assert_ne!(event_id(), event_id());
    }
}
