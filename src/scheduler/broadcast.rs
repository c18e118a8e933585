//! The campaign's broadcast channels: announcements (`[[announcements]]`) fall due on
//! their own schedule, are written to their outbox with their text and transaction id,
//! then delivered from it like posts and webhooks are: claimed under a lease (several
//! workers on PostgreSQL share it), sent through `network::broadcast`, the outcome
//! recorded.
//!
//! ```text
//! round ──┬─ enqueue: each campaign × announcement × channel × instant due in the last
//!         │  day, not yet in the store: text rendered now (live counts), txn id drawn,
//!         │  one row under the unique key; a window already closed → stored as missed
//!         └─ deliver: claim due rows (lease) → resolve the channel (campaign file +
//!            host settings + token) → send → sent / retry at / failed / missed / unknown
//! ```
//!
//! Never twice: on Matrix the stored txn id makes every attempt the same event, so any
//! failure, a `kill -9` mid-attempt included, is retried. Telegram and Discord have no
//! idempotency and cannot be read back, so an attempt that may have arrived (a lost
//! answer, or a process that died mid-attempt: the next claim sees the dead lease) is
//! recorded `unknown` and not repeated. Never lost: a row exists before anything is sent
//! and stays pending until an outcome is recorded; one due while picket was down is sent
//! when it is back, inside its window. Paced: a service's `retry_after` and Discord's
//! `X-RateLimit-*` headers set when the channel is next tried.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use rand::RngExt;
use tokio_util::sync::CancellationToken;

use super::retry::RetryPolicy;
use crate::campaign::broadcast::{ChannelKind, ChannelSpec};
use crate::campaign::{Campaign, Slot};
use crate::clock::Clock;
use crate::compose::announce::{AnnouncementContext, AnnouncementVars, Announcements};
use crate::config::{ChannelSettings, Settings, channel_token_env};
use crate::network::broadcast::{self, Attempt, Target};
use crate::network::guarded::Http;
use crate::store::{BroadcastDelivery, BroadcastOutcome, NewBroadcast, Store, StoreError};

/// How often the task looks for due announcements.
const POLL: StdDuration = StdDuration::from_millis(500);

/// Announcements claimed per round.
const BATCH: u32 = 50;

/// How far back an instant is still looked at: older ones are neither sent nor recorded
/// (a channel added today does not announce last month's strike as missed).
const LOOKBACK: Duration = Duration::hours(24);

/// Telegram's Bot API when a channel names no other.
pub const TELEGRAM_API: &str = "https://api.telegram.org";

/// A claim lasts one attempt's deadline and a margin: a process killed mid-attempt holds
/// its announcements at most this long.
pub fn lease() -> Duration {
    Duration::from_std(broadcast::ATTEMPT_TIMEOUT).expect("small") + Duration::seconds(5)
}

/// Where channel `name` of `campaign` is, with its token: the campaign file's
/// `[[channels]]` entry and the host's of the same name (the host's values win), the
/// token from the host only. `Err` says what is missing, in words for the operator.
pub fn resolve(campaign: &Campaign, name: &str, settings: &Settings) -> Result<Target, String> {
    let spec: Option<&ChannelSpec> = campaign.channels.iter().find(|c| c.name == name);
    let host: Option<&ChannelSettings> = settings.channels.iter().find(|c| c.name == name);
    let host_kind = host.and_then(|h| h.kind.as_deref()).map(|k| {
        ChannelKind::parse(k).ok_or_else(|| format!("channel \"{name}\": unknown kind {k:?}"))
    });
    let kind = match (host_kind.transpose()?, spec.map(|s| s.kind)) {
        (Some(h), Some(s)) if h != s => {
            return Err(format!(
                "channel \"{name}\" is {} in the host settings but {} in the campaign file",
                h.as_str(),
                s.as_str()
            ));
        }
        (Some(k), _) | (None, Some(k)) => k,
        (None, None) => {
            return Err(format!(
                "no channel \"{name}\" in the campaign file or the host settings ([[channels]])"
            ));
        }
    };
    let Some(token) = settings.channel_token(name).cloned() else {
        return Err(format!(
            "channel \"{name}\" has no token: set token in the host settings' [[channels]] \
             entry named \"{name}\" or {}",
            channel_token_env(name)
        ));
    };
    let pick = |host_value: Option<&Option<String>>, spec_value: Option<&Option<String>>| {
        host_value
            .cloned()
            .flatten()
            .or_else(|| spec_value.cloned().flatten())
    };
    let need = |v: Option<String>, key: &str| {
        v.ok_or_else(|| format!("channel \"{name}\" ({}) needs {key}", kind.as_str()))
    };
    Ok(match kind {
        ChannelKind::Matrix => Target::Matrix {
            homeserver: need(
                pick(host.map(|h| &h.homeserver), spec.map(|s| &s.homeserver)),
                "homeserver",
            )?,
            room: need(pick(host.map(|h| &h.room), spec.map(|s| &s.room)), "room")?,
            token,
        },
        ChannelKind::Telegram => Target::Telegram {
            api: pick(host.map(|h| &h.api), spec.map(|s| &s.api))
                .unwrap_or_else(|| TELEGRAM_API.to_string()),
            chat: need(pick(host.map(|h| &h.chat), spec.map(|s| &s.chat)), "chat")?,
            token,
        },
        ChannelKind::Discord => Target::Discord { webhook: token },
    })
}

/// An announcement on a channel at an instant: (campaign, announcement, channel, instant).
type Enqueued = (String, String, String, DateTime<Utc>);

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BroadcastReport {
    pub enqueued: usize,
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

/// The broadcast task.
pub struct Broadcaster {
    pub store: Arc<dyn Store>,
    /// The trusted client: channels are named by the operator.
    pub http: Http,
    pub clock: Arc<dyn Clock>,
    pub campaigns: Arc<Vec<Campaign>>,
    pub settings: Arc<Settings>,
    /// This process's name on its leases.
    pub owner: String,
    pub retry: RetryPolicy,
    /// Each campaign's announcement texts, compiled once (by campaign id).
    texts: HashMap<String, Announcements>,
    /// Each announcement's instants (by campaign id and announcement name), computed once:
    /// campaigns do not change while picket runs.
    slots: HashMap<(String, String), Vec<Slot>>,
    /// (campaign, announcement, channel, instant) known to be in the store, so each is
    /// looked up there once per process rather than every round; pruned past [`LOOKBACK`].
    known: Mutex<HashSet<Enqueued>>,
    /// Channels whose service said to wait (rate limits), until when; by (campaign,
    /// channel). In memory: after a restart the service says it again.
    pauses: Mutex<HashMap<(String, String), DateTime<Utc>>>,
}

impl Broadcaster {
    pub fn new(
        store: Arc<dyn Store>,
        http: Http,
        clock: Arc<dyn Clock>,
        campaigns: Arc<Vec<Campaign>>,
        settings: Arc<Settings>,
    ) -> Broadcaster {
        let texts = campaigns
            .iter()
            .filter_map(|c| {
                let compiled = Announcements::new(
                    c.announcements
                        .iter()
                        .map(|a| (a.name.as_str(), a.text.as_slice())),
                );
                match compiled {
                    Ok(t) => Some((c.id.to_string(), t)),
                    Err((name, variant, e)) => {
                        // `campaign check` compiled the same texts: not reached in practice.
                        tracing::error!(
                            campaign = %c.id,
                            announcement = name.as_str(),
                            variant,
                            error = %e,
                            "an announcement's text does not compile"
                        );
                        None
                    }
                }
            })
            .collect();
        let slots = campaigns
            .iter()
            .flat_map(|c| {
                c.announcements
                    .iter()
                    .map(move |a| ((c.id.to_string(), a.name.clone()), c.announcement_slots(a)))
            })
            .collect();
        Broadcaster {
            store,
            http,
            clock,
            campaigns,
            settings,
            owner: format!(
                "broadcast-{}-{:08x}",
                std::process::id(),
                rand::rng().random::<u32>()
            ),
            retry: RetryPolicy {
                base: StdDuration::from_secs(1),
                cap: StdDuration::from_secs(5 * 60),
            },
            texts,
            slots,
            known: Mutex::new(HashSet::new()),
            pauses: Mutex::new(HashMap::new()),
        }
    }

    /// The task `picket serve` runs, over the app's store, clock, campaigns and settings.
    pub fn from_state(state: &crate::web::AppState) -> Broadcaster {
        Broadcaster::new(
            state.store.clone(),
            state.egress.trusted().clone(),
            state.clock.clone(),
            state.campaigns.clone(),
            state.settings.clone(),
        )
    }

    /// Enqueue and deliver until `stop`; with no announcements, only wait for it.
    pub async fn run(&self, stop: CancellationToken) -> anyhow::Result<()> {
        if self.campaigns.iter().all(|c| c.announcements.is_empty()) {
            stop.cancelled().await;
            return Ok(());
        }
        for c in self.campaigns.iter() {
            for a in &c.announcements {
                for name in &a.channels {
                    if let Err(problem) = resolve(c, name, &self.settings) {
                        tracing::error!(campaign = %c.id, announcement = a.name.as_str(), "{problem}");
                    }
                }
            }
        }
        while !stop.is_cancelled() {
            match super::isolate_async(self.step()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "broadcast round failed"),
                Err(panic) => tracing::error!(error = %panic, "broadcast round failed"),
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        Ok(())
    }

    /// One round: enqueue what fell due, then deliver what is due. Tests call it.
    pub async fn step(&self) -> Result<BroadcastReport, StoreError> {
        let mut report = BroadcastReport {
            enqueued: self.enqueue().await?,
            ..BroadcastReport::default()
        };
        let now = self.clock.now();
        let claimed = self
            .store
            .claim_broadcasts(&self.owner, now, now + lease(), BATCH)
            .await?;
        // Channels in parallel, each channel's announcements one after the other: a
        // rate limit one answer reports holds the next back.
        let mut channels: Vec<Vec<&BroadcastDelivery>> = Vec::new();
        for d in &claimed {
            match channels
                .iter_mut()
                .find(|g| g[0].campaign_id == d.campaign_id && g[0].channel == d.channel)
            {
                Some(g) => g.push(d),
                None => channels.push(vec![d]),
            }
        }
        let rounds = channels.into_iter().map(async |group| {
            let mut outcomes = Vec::with_capacity(group.len());
            for d in group {
                outcomes.push(self.deliver(d).await);
            }
            outcomes
        });
        for outcome in futures::future::join_all(rounds)
            .await
            .into_iter()
            .flatten()
        {
            match outcome? {
                BroadcastOutcome::Sent { .. } => report.sent += 1,
                BroadcastOutcome::Retry { .. } => report.retried += 1,
                _ => report.failed += 1,
            }
        }
        Ok(report)
    }

    async fn enqueue(&self) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let mut added = 0;
        self.known
            .lock()
            .expect("not poisoned")
            .retain(|(.., at)| *at >= now - LOOKBACK);
        for campaign in self.campaigns.iter() {
            let Some(texts) = self.texts.get(campaign.id.as_str()) else {
                continue;
            };
            // Counted at most once per campaign and round, and only when something is due.
            let mut counts: Option<(u64, u64)> = None;
            for a in &campaign.announcements {
                let Some(slots) = self.slots.get(&(campaign.id.to_string(), a.name.clone())) else {
                    continue;
                };
                for (n, slot) in slots.iter().enumerate() {
                    if slot.at > now || slot.at < now - LOOKBACK {
                        continue;
                    }
                    for channel in &a.channels {
                        let key = (
                            campaign.id.to_string(),
                            a.name.clone(),
                            channel.clone(),
                            slot.at,
                        );
                        if self.known.lock().expect("not poisoned").contains(&key) {
                            continue;
                        }
                        if self
                            .store
                            .broadcast_exists(channel, &campaign.id, &a.name, slot.at)
                            .await?
                        {
                            self.known.lock().expect("not poisoned").insert(key);
                            continue;
                        }
                        let (body, missed) = if now > slot.window_end {
                            (
                                String::new(),
                                Some(format!(
                                    "picket was not running between {} and the end of its \
                                     window ({})",
                                    slot.at.to_rfc3339(),
                                    slot.window_end.to_rfc3339()
                                )),
                            )
                        } else {
                            let (strikers, signatures) = match counts {
                                Some(c) => c,
                                None => {
                                    let c = (
                                        self.store.active_pledge_count(&campaign.id, now).await?,
                                        self.store.signature_count(&campaign.id).await?,
                                    );
                                    *counts.insert(c)
                                }
                            };
                            let vars = AnnouncementVars::new(&AnnouncementContext {
                                site: &self.settings.public_url,
                                campaign_id: &campaign.id,
                                hashtag: &campaign.hashtag,
                                title: &campaign.title,
                                at: slot.at,
                                tz: a.tz,
                                strike_start: campaign.strike_start_in(a.tz),
                                strikers,
                                signatures,
                            });
                            match texts.render(&a.name, n % a.text.len().max(1), &vars) {
                                Ok(text) => (text, None),
                                Err(e) => {
                                    tracing::error!(
                                        campaign = %campaign.id,
                                        announcement = a.name.as_str(),
                                        error = %e,
                                        "an announcement could not be rendered"
                                    );
                                    continue;
                                }
                            }
                        };
                        let m = NewBroadcast {
                            channel: channel.clone(),
                            campaign_id: campaign.id.to_string(),
                            announcement: a.name.clone(),
                            slot_at: slot.at,
                            not_after: slot.window_end,
                            txn_id: format!("picket-{:032x}", rand::rng().random::<u128>()),
                            body,
                            missed,
                        };
                        if self.store.enqueue_broadcast(&m, now).await? {
                            added += 1;
                        }
                        // New or written by another process meanwhile: it is there now.
                        self.known.lock().expect("not poisoned").insert(key);
                    }
                }
            }
        }
        Ok(added)
    }

    /// One attempt of one announcement, its outcome recorded (a panic in it fails it).
    async fn deliver(&self, d: &BroadcastDelivery) -> Result<BroadcastOutcome, StoreError> {
        let outcome = super::isolate_async(self.attempt(d))
            .await
            .unwrap_or_else(|panic| BroadcastOutcome::Failed {
                error: panic.into_message(),
            });
        match &outcome {
            BroadcastOutcome::Sent { .. } => {}
            BroadcastOutcome::Retry { error, .. } => tracing::info!(
                channel = d.channel.as_str(),
                announcement = d.announcement.as_str(),
                attempts = d.attempts,
                error = error.as_str(),
                "announcement will be retried"
            ),
            BroadcastOutcome::Failed { error }
            | BroadcastOutcome::Missed { error }
            | BroadcastOutcome::Unknown { error } => tracing::warn!(
                channel = d.channel.as_str(),
                announcement = d.announcement.as_str(),
                attempts = d.attempts,
                error = error.as_str(),
                "announcement not sent"
            ),
        }
        self.store
            .record_broadcast(d.id, &self.owner, &outcome, self.clock.now())
            .await?;
        Ok(outcome)
    }

    async fn attempt(&self, d: &BroadcastDelivery) -> BroadcastOutcome {
        let now = self.clock.now();
        if now > d.not_after {
            return BroadcastOutcome::Missed {
                error: format!(
                    "its window closed ({}) before it could be sent",
                    d.not_after.to_rfc3339()
                ),
            };
        }
        let Some(campaign) = self
            .campaigns
            .iter()
            .find(|c| c.id.as_str() == d.campaign_id)
        else {
            return BroadcastOutcome::Failed {
                error: "the campaign is no longer served here".into(),
            };
        };
        let target = match resolve(campaign, &d.channel, &self.settings) {
            Ok(t) => t,
            Err(problem) => return BroadcastOutcome::Failed { error: problem },
        };
        if d.interrupted && !target.idempotent() {
            return BroadcastOutcome::Unknown {
                error: format!(
                    "picket stopped while sending it; not sent again, since {} cannot be \
                     asked whether it arrived",
                    target.service()
                ),
            };
        }
        let key = (d.campaign_id.clone(), d.channel.clone());
        let paused = self.pauses.lock().expect("not poisoned").get(&key).copied();
        if let Some(until) = paused.filter(|u| *u > now) {
            return BroadcastOutcome::Retry {
                run_at: until,
                error: format!("{} asked for a pause", target.service()),
            };
        }
        let retry_at = |after: Option<StdDuration>| {
            now + Duration::from_std(self.retry.delay(d.attempts, after))
                .unwrap_or(Duration::minutes(5))
        };
        match broadcast::send(&self.http, &target, &d.txn_id, &d.body).await {
            Attempt::Sent { remote_id, pause } => {
                if let Some(pause) = pause.and_then(|p| Duration::from_std(p).ok()) {
                    self.pauses
                        .lock()
                        .expect("not poisoned")
                        .insert(key, now + pause);
                }
                BroadcastOutcome::Sent { remote_id }
            }
            Attempt::Retry { reason, after } => {
                if let Some(after) = after.and_then(|p| Duration::from_std(p).ok()) {
                    // The whole channel waits, not only this announcement.
                    self.pauses
                        .lock()
                        .expect("not poisoned")
                        .insert(key, now + after);
                }
                BroadcastOutcome::Retry {
                    run_at: retry_at(after),
                    error: reason,
                }
            }
            Attempt::Rejected(error) => BroadcastOutcome::Failed { error },
            Attempt::Unknown(error) => BroadcastOutcome::Unknown { error },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Secret;

    fn campaign(channels: &str) -> Campaign {
        let src = format!(
            "id = \"c\"\ntitle = \"C\"\nhashtag = \"C\"\n[strike]\ntimezone = \"UTC\"\n\
             days = [\"2027-07-04\"]\n[[posts]]\nname = \"n\"\nwhen = \"start\"\ntemplate = \"t\"\n\
             [templates]\nt = [\"#{{{{ hashtag }}}} {{{{ invite_link }}}}\"]\n{channels}"
        );
        crate::campaign::parse_str(&src, std::path::Path::new("c.toml")).unwrap()
    }

    fn host(name: &str, kind: Option<&str>, token: Option<&str>) -> ChannelSettings {
        ChannelSettings {
            name: name.into(),
            kind: kind.map(str::to_string),
            homeserver: None,
            room: None,
            chat: None,
            api: None,
            token: token.map(Secret::new),
        }
    }

    #[test]
    fn a_channel_is_the_campaign_files_address_with_the_hosts_token() {
        let c = campaign(
            "[[channels]]\nname = \"room\"\nkind = \"matrix\"\nhomeserver = \"https://m.example\"\nroom = \"#s:m.example\"\n",
        );
        let mut settings = Settings::default();
        let err = resolve(&c, "room", &settings).unwrap_err();
        assert!(err.contains("PICKET_CHANNEL_ROOM_TOKEN"), "{err}");
        settings
            .channels
            .push(host("room", None, Some("syt_token")));
        match resolve(&c, "room", &settings).unwrap() {
            Target::Matrix {
                homeserver,
                room,
                token,
            } => {
                assert_eq!(homeserver, "https://m.example");
                assert_eq!(room, "#s:m.example");
                assert_eq!(token.expose(), "syt_token");
            }
            other => panic!("{other:?}"),
        }
        settings.channels[0].kind = Some("telegram".into());
        assert!(
            resolve(&c, "room", &settings)
                .unwrap_err()
                .contains("telegram in the host")
        );
        let err = resolve(&c, "nowhere", &settings).unwrap_err();
        assert!(err.contains("no channel \"nowhere\""), "{err}");
    }

    #[test]
    fn a_channel_only_the_host_declares_takes_its_token_from_the_environment() {
        let c = campaign("");
        let mut settings = Settings::default();
        settings
            .channels
            .push(host("news-tg", Some("telegram"), None));
        settings.channels[0].chat = Some("@strike".into());
        settings.channel_env_tokens.insert(
            "PICKET_CHANNEL_NEWS_TG_TOKEN".into(),
            Secret::new("123:abc"),
        );
        match resolve(&c, "news-tg", &settings).unwrap() {
            Target::Telegram { api, chat, token } => {
                assert_eq!(api, TELEGRAM_API);
                assert_eq!(chat, "@strike");
                assert_eq!(token.expose(), "123:abc");
            }
            other => panic!("{other:?}"),
        }
    }
}
