//! The dispatcher: claims due posts, publishes them, records what happened.
//!
//! ```text
//! stage ─┬─ hand_off_round (hand-off accounts: see `handoff`)
//!        ├─ expire_missed (window + grace passed → missed; at most once a second)
//!        ├─ claim_due (lease a batch: BEGIN IMMEDIATE / SKIP LOCKED)
//!        ├─ tap-to-post rows: render the text → `reminded` (nothing is sent)
//!        └─ prepare: render text, check length, pace, decrypt
//! begin  ── begin_sending (claimed → sending: the point of no return)
//! send   ── publish, `concurrency` at a time, each bounded by its window
//! record ── one transaction for the batch
//!
//! step (tests):  stage → begin → send → record
//! run ─loop─> turn: begin N, then send N ‖ (record N-1, then stage N+1)
//!     idle ─> sleep until the next due row, a wake-up (new work), or shutdown
//! ```
//!
//! The dispatcher never looks at HTTP status codes: adapters say retry (and when),
//! rejected, or reconnect. A crash at any point leaves rows `claimed` or `sending` under
//! a lease. Every dispatcher beats a heartbeat each second ([`HEARTBEAT`]); one silent for
//! [`DEAD_AFTER_BEATS`] is dead, and the first live one to notice makes its leases lapse
//! (at start-up also those of owners that never beat), so its posts are claimed again at
//! once and re-sent with the same idempotency key: the network sees a retry, not a new
//! post. A lease only guards against live workers.
//!
//! A post whose window closed after an attempt with an unknown outcome (a timeout, a lost
//! answer, a crash mid-request) is never re-sent: it is read back
//! ([`Network::read_back`]), and recorded published with its link if the network has it,
//! or missed if it does not (once the last attempt has had time to land).

pub mod handoff;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::pacing::Pacer;
use super::retry::RetryPolicy;
use crate::campaign::Campaign;
use crate::card::{self, Cards};
use crate::clock::Clock;
use crate::compose;
use crate::config::SchedulerSettings;
use crate::crypto::Vault;
use crate::domain::{CampaignId, NetworkKind, Secret};
use crate::network::{AccountRef, Image, Network, Networks, OutgoingPost, PublishError, ReadBack};
use crate::store::{
    Account, AccountRoute, ClaimedPost, DeadWorkers, Outcome, ParticipantId, READ_BACK_WITHIN,
    Store, StoreError,
};

/// Idle workers look for work written by other processes (CLI, other servers) this often.
const IDLE_POLL: StdDuration = StdDuration::from_secs(1);

/// How often a busy dispatcher looks for posts whose window closed.
const EXPIRY_EVERY: Duration = Duration::seconds(1);

/// How often a dispatcher says it is alive, and looks for workers that stopped saying so.
const HEARTBEAT: StdDuration = StdDuration::from_secs(1);

/// A worker silent for this many heartbeats is dead: its posts are taken over.
const DEAD_AFTER_BEATS: u32 = 5;

/// Said of a post whose window closed after an attempt whose outcome nobody knows.
const OUTCOME_UNKNOWN: &str =
    "window closed; an earlier attempt may have been published (outcome unknown)";

/// A campaign as the dispatcher needs it: its file and its compiled templates.
struct Hosted {
    campaign: Arc<Campaign>,
    templates: compose::Templates,
}

/// What one [`Dispatcher::step`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StepReport {
    pub claimed: usize,
    pub published: usize,
    pub retried: usize,
    pub failed: usize,
    pub missed: usize,
    pub reconnect: usize,
    /// Tap-to-post notices rendered at their minute (`reminded`).
    pub reminded: usize,
    pub expired: u64,
}

pub struct Dispatcher {
    store: Arc<dyn Store>,
    networks: Networks,
    vault: Vault,
    clock: Arc<dyn Clock>,
    hosted: HashMap<CampaignId, Hosted>,
    pacer: Pacer,
    retry: RetryPolicy,
    settings: SchedulerSettings,
    worker: String,
    public_url: String,
    /// Notified by whoever adds work (join, re-plan) so an idle dispatcher wakes at once.
    wake: Arc<Notify>,
    /// When `expire_missed` last ran (see [`Dispatcher::expiry_due`]).
    last_expiry: std::sync::Mutex<Option<DateTime<Utc>>>,
    /// Strike cards for posts with `card = true`, shared with the web's card pages.
    cards: Arc<Cards>,
    /// Seconds from `run_at` to publication of the posts this dispatcher published,
    /// shared with `/metrics`.
    lateness: Arc<super::lateness::Lateness>,
    /// When the last hand-off round ran (real time; see [`handoff`]).
    last_hand_off: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Dispatcher {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        networks: Networks,
        vault: Vault,
        clock: Arc<dyn Clock>,
        campaigns: &[Campaign],
        settings: SchedulerSettings,
        public_url: String,
    ) -> Result<Dispatcher, compose::TemplateError> {
        let mut hosted = HashMap::new();
        for c in campaigns {
            hosted.insert(
                c.id.clone(),
                Hosted {
                    campaign: Arc::new(c.clone()),
                    templates: compose::Templates::new(&c.templates)?,
                },
            );
        }
        Ok(Dispatcher {
            pacer: Pacer::new(clock.clone(), None),
            store,
            networks,
            vault,
            clock,
            hosted,
            retry: RetryPolicy {
                cap: std::time::Duration::from_secs(settings.retry_cap_secs.max(1)),
                ..RetryPolicy::default()
            },
            settings,
            // The random part tells apart processes on hosts without a HOSTNAME.
            worker: format!(
                "{}-{}-{:04x}",
                hostname(),
                std::process::id(),
                rand::random::<u16>()
            ),
            public_url: public_url.trim_end_matches('/').to_string(),
            wake: Arc::new(Notify::new()),
            last_expiry: std::sync::Mutex::new(None),
            cards: Arc::new(Cards::default()),
            lateness: Arc::default(),
            last_hand_off: std::sync::Mutex::new(None),
        })
    }

    /// Replace the retry policy (tests use short delays).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Name this worker (leases carry it).
    pub fn with_worker_name(mut self, name: impl Into<String>) -> Self {
        self.worker = name.into();
        self
    }

    /// The strike cards this dispatcher draws (the web serves the same ones).
    pub fn cards(&self) -> Arc<Cards> {
        self.cards.clone()
    }

    /// The lateness of what this dispatcher published (for `/metrics`).
    pub fn lateness(&self) -> Arc<super::lateness::Lateness> {
        self.lateness.clone()
    }

    /// A handle that wakes an idle dispatcher.
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    fn grace(&self) -> Duration {
        Duration::seconds(self.settings.grace_secs as i64)
    }

    /// Work until `stop` fires. A failed round is logged and retried: one bad row or a
    /// database hiccup must not stop the strike.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(worker = %self.worker, "dispatcher started");
        let beating = CancellationToken::new();
        let (worked, ()) = tokio::join!(
            async {
                let worked = self.work(stop).await;
                beating.cancel();
                worked
            },
            self.beat(beating.clone()),
        );
        // Stopped cleanly: nothing of ours is on the wire, so no lease needs taking over.
        if let Err(e) = self.store.retire(&self.worker).await {
            tracing::warn!(error = %e, "could not sign this worker off");
        }
        tracing::info!(worker = %self.worker, "dispatcher stopped");
        worked
    }

    /// Say this worker is alive every [`HEARTBEAT`] and take over the posts of workers
    /// that went silent, until `stop`. The first beat also takes over owners that never
    /// beat. Runs beside the rounds: a round may wait on the network for long.
    async fn beat(&self, stop: CancellationToken) {
        let mut first = true;
        loop {
            if let Err(e) = self.beat_once(first).await {
                tracing::warn!(error = %e, "heartbeat failed");
            } else {
                first = false;
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(HEARTBEAT) => {}
            }
        }
    }

    /// One heartbeat, then the take-over; `first` also takes over owners that never beat.
    pub async fn beat_once(&self, first: bool) -> Result<u64, StoreError> {
        let now = self.clock.now();
        self.store.heartbeat(&self.worker, now).await?;
        let since = now - self.dead_after();
        let dead = if first {
            DeadWorkers::SilentSinceOrUnknown(since)
        } else {
            DeadWorkers::SilentSince(since)
        };
        let taken = self.store.take_over_leases(&self.worker, dead, now).await?;
        if taken > 0 {
            tracing::info!(
                posts = taken,
                "took over the posts of a worker that stopped"
            );
            self.wake.notify_one();
        }
        Ok(taken)
    }

    /// [`DEAD_AFTER_BEATS`] heartbeats in the clock's time (a rehearsal's runs faster).
    fn dead_after(&self) -> Duration {
        let real = HEARTBEAT * DEAD_AFTER_BEATS;
        let hour = self.clock.real_duration(Duration::hours(1)).as_secs_f64();
        if hour <= 0.0 {
            return Duration::hours(1);
        }
        Duration::milliseconds((real.as_secs_f64() * 3600.0 / hour * 1000.0) as i64)
    }

    /// The rounds, until `stop`, overlapped: while one batch is on the wire the one sent
    /// before it is recorded and the next is claimed and prepared, so neither the
    /// database nor the network waits for the other (the benchmark's rounds spent half
    /// their time in each). On SQLite the database steps still run one after another (one
    /// writer); on PostgreSQL the record and the next claim run side by side. A batch
    /// becomes `sending` only right before it is sent: a crash leaves its rows in the
    /// states a crash of the plain round leaves, and only recording comes one batch
    /// later. On `stop` the batch already claimed is sent and everything is recorded.
    async fn work(self: &Arc<Self>, stop: CancellationToken) -> anyhow::Result<()> {
        let mut failures = 0u32;
        let (mut staged, mut unrecorded) = (None, None);
        loop {
            // A panic outside any one post's work (each post is isolated) fails this turn
            // like a database error would; the lease brings its rows back.
            let turn = super::isolate_async(self.turn(&mut staged, &mut unrecorded, &stop))
                .await
                .unwrap_or_else(|panic| Err(StoreError::Corrupt(panic.into_message())));
            match turn {
                Ok(true) => {
                    failures = 0;
                    continue;
                }
                Ok(false) => failures = 0,
                Err(e) => {
                    failures += 1;
                    tracing::error!(error = %e, failures, "dispatcher round failed");
                }
            }
            if stop.is_cancelled() && staged.is_none() && unrecorded.is_none() {
                break;
            }
            let pause = if failures > 0 {
                self.retry
                    .delay(failures, None)
                    .min(StdDuration::from_secs(30))
            } else {
                self.idle_for().await
            };
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        Ok(())
    }

    /// One turn of [`Dispatcher::work`]: send the staged batch while recording the one
    /// before and staging the next, or, with nothing staged, record what is left and look
    /// for work. Whether there is more to do at once.
    async fn turn(
        self: &Arc<Self>,
        staged: &mut Option<Staged>,
        unrecorded: &mut Option<Sent>,
        stop: &CancellationToken,
    ) -> Result<bool, StoreError> {
        let mut report = StepReport::default();
        let Some(batch) = staged.take() else {
            if let Some(sent) = unrecorded.take() {
                self.record_batch(sent, &mut report).await?;
            }
            if stop.is_cancelled() {
                return Ok(false);
            }
            *staged = self.stage(&mut report).await?;
            return Ok(staged.is_some());
        };
        let begun = self.begin(batch).await?;
        // A task of its own, so that the database lane's work here (rendering, decrypting,
        // reading rows) runs on the other core instead of taking turns with the sends.
        let lane = {
            let (me, previous, stop) = (self.clone(), unrecorded.take(), stop.clone());
            tokio::spawn(async move {
                let mut recorded = StepReport::default();
                let record = async {
                    match previous {
                        Some(previous) => me.record_batch(previous, &mut recorded).await,
                        None => Ok(()),
                    }
                };
                let claim = async {
                    if stop.is_cancelled() {
                        Ok(None)
                    } else {
                        me.claim(&mut report).await
                    }
                };
                let prepare = async |claimed: Result<Option<Claimed>, StoreError>| match claimed? {
                    Some(claimed) => me.prepare_batch(claimed).await.map(Some),
                    None => Ok(None),
                };
                if me.store.writes_side_by_side() {
                    // Two connections: the previous batch is recorded while the next is
                    // claimed and prepared.
                    let (recorded, prepared) =
                        tokio::join!(record, async { prepare(claim.await).await });
                    recorded?;
                    return prepared;
                }
                // One writer: the next batch is claimed first, then prepared (CPU) while the
                // one before is recorded (SQLite's own thread). `biased`: the record
                // statement reaches SQLite's thread before preparing takes this one.
                let claimed = claim.await;
                let (recorded, prepared) = tokio::join!(biased; record, prepare(claimed));
                recorded?;
                prepared
            })
        };
        *unrecorded = Some(self.send_batch(begun).await);
        *staged = lane.await.unwrap_or_else(|e| {
            Err(StoreError::Corrupt(
                super::Panicked::from_join(e).into_message(),
            ))
        })?;
        Ok(true)
    }

    /// Real time to sleep until the next row is due, at most [`IDLE_POLL`].
    async fn idle_for(&self) -> StdDuration {
        match self.store.next_due_at().await {
            Ok(Some(at)) => {
                let wait = self.clock.real_duration(at - self.clock.now());
                wait.min(IDLE_POLL)
            }
            _ => IDLE_POLL,
        }
    }

    /// Whether to look for posts whose window closed, at most once per [`EXPIRY_EVERY`]:
    /// a busy dispatcher runs many rounds a second, and a window is never closed to the
    /// millisecond (sending re-checks it anyway). A clock set back counts as due.
    fn expiry_due(&self, now: DateTime<Utc>) -> bool {
        let mut last = crate::sync::lock(&self.last_expiry);
        let due = last.is_none_or(|at| now < at || now - at >= EXPIRY_EVERY);
        if due {
            *last = Some(now);
        }
        due
    }

    /// One round: expire, claim, prepare, send, record. Tests call this directly; `run`
    /// runs the same stages overlapped (see [`Dispatcher::work`]).
    pub async fn step(&self) -> Result<StepReport, StoreError> {
        let mut report = StepReport::default();
        let Some(staged) = self.stage(&mut report).await? else {
            return Ok(report);
        };
        let begun = self.begin(staged).await?;
        let sent = self.send_batch(begun).await;
        self.record_batch(sent, &mut report).await?;
        Ok(report)
    }

    /// Expire, claim and prepare a batch: everything up to the point of no return.
    /// `None` when nothing was due.
    async fn stage(&self, report: &mut StepReport) -> Result<Option<Staged>, StoreError> {
        match self.claim(report).await? {
            Some(claimed) => self.prepare_batch(claimed).await.map(Some),
            None => Ok(None),
        }
    }

    /// Expire, then claim a batch. `None` when nothing was due.
    async fn claim(&self, report: &mut StepReport) -> Result<Option<Claimed>, StoreError> {
        // Real time spent in each phase, logged at debug level: where a round's time goes
        // decides what to make faster (the dispatch benchmark's README notes use it).
        self.hand_off_round().await;
        let mut phases = Phases::start();
        let now = self.clock.now();
        if self.expiry_due(now) {
            report.expired += self.store.expire_missed(now, self.grace()).await?;
        }
        phases.lap(Phase::Expire);
        let lease_until = now + Duration::seconds(self.settings.lease_secs as i64);
        let claimed = self
            .store
            .claim_due(&self.worker, now, lease_until, self.settings.batch)
            .await?;
        phases.lap(Phase::Claim);
        report.claimed += claimed.len();
        if claimed.is_empty() {
            return Ok(None);
        }
        Ok(Some(Claimed {
            posts: claimed,
            now,
            phases,
        }))
    }

    /// Decide what to do with each claimed post: render, check, pace and open the
    /// credentials of those to send; the outcome of those that will not be.
    async fn prepare_batch(&self, claimed: Claimed) -> Result<Staged, StoreError> {
        let Claimed {
            posts: claimed,
            now,
            mut phases,
        } = claimed;
        phases.restart();
        let elsewhere = self.elsewhere(&claimed).await?;
        let unarmed = self.unarmed(&claimed).await?;
        let run_at: HashMap<_, _> = claimed.iter().map(|p| (p.id, p.run_at)).collect();
        let mut outcomes = Vec::with_capacity(claimed.len());
        let mut ready = Vec::with_capacity(claimed.len());
        let mut to_read_back = Vec::new();
        for post in claimed {
            if let Some(reason) = unarmed.get(&post.campaign_id)
                && !self.is_recruiting(&post)
            {
                outcomes.push(Outcome::Missed {
                    id: post.id,
                    reason: reason.clone(),
                });
                continue;
            }
            // A tap-to-post notice is rendered now and shown to its person; nothing is
            // sent, so it never reaches the point of no return.
            if post.route == AccountRoute::Tap {
                let outcome = super::isolate(|| self.remind(&post, &elsewhere, now))
                    .unwrap_or_else(|panic| {
                        tracing::error!(job = %post.id, error = %panic, "rendering a reminder failed");
                        Outcome::Failed {
                            id: post.id,
                            reason: panic.into_message(),
                        }
                    });
                outcomes.push(outcome);
                continue;
            }
            // Its window closed after an attempt nobody knows the end of: it is read back,
            // never sent again (reading is not posting, so it is not paced either).
            let unsure = post.outcome_unknown && self.deadline(&post) <= now;
            let prepared = super::isolate(|| self.prepare(&post, &elsewhere, now, !unsure))
                .unwrap_or_else(|panic| {
                    tracing::error!(job = %post.id, error = %panic, "preparing a post failed");
                    Err(Outcome::Failed {
                        id: post.id,
                        reason: panic.into_message(),
                    })
                });
            match prepared {
                Ok(out) if unsure => to_read_back.push((post, out)),
                Ok(out) => ready.push((post, out)),
                Err(outcome) => outcomes.push(outcome),
            }
        }
        phases.lap(Phase::Prepare);
        Ok(Staged {
            ready,
            to_read_back,
            outcomes,
            run_at,
            phases,
        })
    }

    /// The point of no return: the staged rows still allowed to go become `sending`.
    async fn begin(&self, mut staged: Staged) -> Result<Staged, StoreError> {
        staged.phases.restart();
        let ids: Vec<_> = staged.ready.iter().map(|(p, _)| p.id).collect();
        let go: std::collections::HashSet<_> = self
            .store
            .begin_sending(&self.worker, &ids, self.clock.now(), self.grace())
            .await?
            .into_iter()
            .collect();
        // Rows not allowed to go were withdrawn, cancelled or expired meanwhile; their
        // state already says so.
        staged.ready.retain(|(p, _)| go.contains(&p.id));
        staged.phases.lap(Phase::BeginSending);
        Ok(staged)
    }

    /// Publish the begun batch, `concurrency` at a time, and read back what must be.
    async fn send_batch(&self, mut staged: Staged) -> Sent {
        staged.phases.restart();
        let ready = std::mem::take(&mut staged.ready);
        let sent: Vec<Outcome> = futures::stream::iter(ready)
            .map(|(post, out)| self.send_isolated(post, out))
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        staged.outcomes.extend(sent);
        let read: Vec<Outcome> = futures::stream::iter(std::mem::take(&mut staged.to_read_back))
            .map(|(post, out)| async move {
                self.read_back(&post, out.network.as_ref(), &out.account, &out.text)
                    .await
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        staged.outcomes.extend(read);
        staged.phases.lap(Phase::Send);
        Sent {
            outcomes: staged.outcomes,
            run_at: staged.run_at,
            phases: staged.phases,
        }
    }

    /// Record a sent batch's outcomes (one transaction) and count them in `report`.
    async fn record_batch(&self, sent: Sent, report: &mut StepReport) -> Result<(), StoreError> {
        let Sent {
            outcomes,
            run_at,
            mut phases,
        } = sent;
        phases.restart();
        for o in &outcomes {
            match o {
                Outcome::Published { .. } => report.published += 1,
                Outcome::Retry { .. } => report.retried += 1,
                Outcome::Failed { .. } => report.failed += 1,
                Outcome::Missed { .. } => report.missed += 1,
                Outcome::Reconnect { .. } => report.reconnect += 1,
                Outcome::Reminded { .. } => report.reminded += 1,
            }
        }
        let recorded_at = self.clock.now();
        self.store.record(&outcomes, recorded_at).await?;
        for o in &outcomes {
            if let Outcome::Published { id, .. } = o
                && let Some(at) = run_at.get(id)
            {
                self.lateness
                    .observe((recorded_at - *at).num_milliseconds() as f64 / 1000.0);
            }
        }
        phases.lap(Phase::Record);
        tracing::debug!(
            posts = outcomes.len(),
            expire_ms = phases.ms(Phase::Expire),
            claim_ms = phases.ms(Phase::Claim),
            prepare_ms = phases.ms(Phase::Prepare),
            begin_sending_ms = phases.ms(Phase::BeginSending),
            send_ms = phases.ms(Phase::Send),
            record_ms = phases.ms(Phase::Record),
            "dispatcher round"
        );
        Ok(())
    }

    /// Everything that can be decided before the point of no return. `Err` is the row's
    /// outcome when it must not be sent now.
    /// Campaigns in this batch whose tipping point was not reached, with the reason told to
    /// participants. A campaign with `[threshold]` posts its strike notices only if enough
    /// people pledged by the deadline (by default, the moment the strike starts anywhere);
    /// otherwise the strike is postponed and each post says so.
    async fn unarmed(
        &self,
        posts: &[ClaimedPost],
    ) -> Result<HashMap<CampaignId, String>, StoreError> {
        let mut out = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for post in posts {
            if !seen.insert(post.campaign_id.as_str()) {
                continue;
            }
            let Some(c) = self.hosted.get(&post.campaign_id).map(|h| &h.campaign) else {
                continue;
            };
            let Some(t) = c.threshold else { continue };
            let deadline = t.deadline.unwrap_or_else(|| c.strike.earliest_start());
            let pledged = self.store.active_pledge_count(&c.id, deadline).await?;
            if pledged < u64::from(t.participants) {
                out.insert(
                    c.id.clone(),
                    format!(
                        "postponed: {pledged} of the {} participants needed had pledged by {}",
                        t.participants,
                        deadline.format("%Y-%m-%d %H:%M UTC")
                    ),
                );
            }
        }
        Ok(out)
    }

    /// Posts before the strike (invitations) go out whatever the tipping point: they are
    /// how it gets reached.
    fn is_recruiting(&self, post: &ClaimedPost) -> bool {
        self.hosted.get(&post.campaign_id).is_some_and(|h| {
            h.campaign.posts.iter().any(|r| {
                r.name == post.post_name && matches!(r.when, crate::campaign::When::Before(_))
            })
        })
    }

    /// The accounts of each participant in this batch, to tell followers where else to
    /// find them (which ones a post names is [`compose::elsewhere`]'s rule).
    async fn elsewhere(
        &self,
        posts: &[ClaimedPost],
    ) -> Result<HashMap<ParticipantId, Vec<Account>>, StoreError> {
        let mut ids: Vec<ParticipantId> = posts.iter().map(|p| p.participant_id).collect();
        ids.sort();
        ids.dedup();
        let mut out: HashMap<ParticipantId, Vec<Account>> = HashMap::new();
        for a in self.store.accounts_of(&ids).await? {
            out.entry(a.participant_id).or_default().push(a);
        }
        Ok(out)
    }

    /// When the post's window, with the grace, closes. A window ending at the end of
    /// time (a row written by hand) closes there.
    fn deadline(&self, post: &ClaimedPost) -> DateTime<Utc> {
        post.window_end
            .checked_add_signed(self.grace())
            .unwrap_or(post.window_end)
    }

    /// `pace`: count the post against its account's and server's budgets (a post to send;
    /// not one only read back).
    fn prepare(
        &self,
        post: &ClaimedPost,
        elsewhere: &HashMap<ParticipantId, Vec<Account>>,
        now: DateTime<Utc>,
        pace: bool,
    ) -> Result<Ready, Outcome> {
        let Some(hosted) = self.hosted.get(&post.campaign_id) else {
            return Err(Outcome::Failed {
                id: post.id,
                reason: format!(
                    "campaign `{}` is not hosted by this picket (its file was removed?)",
                    post.campaign_id
                ),
            });
        };
        let elsewhere = compose::elsewhere(
            elsewhere.get(&post.participant_id).into_iter().flatten(),
            Some(post.account_id),
        );
        let Some(network) = self.networks.get(post.network) else {
            return Err(Outcome::Failed {
                id: post.id,
                reason: format!("this picket has no adapter for {}", post.network),
            });
        };
        // X's API is used only where the organiser opted in: X's rules forbid
        // coordinated posting across accounts.
        if post.network == NetworkKind::X && !hosted.campaign.x_api {
            return Err(Outcome::Failed {
                id: post.id,
                reason: "this campaign does not post to X through the API (its file has no \
                         x_api = true): post it yourself"
                    .into(),
            });
        }
        let credentials = self
            .vault
            .open_for(post.account_id.0, &post.credentials)
            .map_err(|e| Outcome::Reconnect {
                id: post.id,
                account_id: post.account_id,
                reason: e.to_string(),
            })?;
        let credentials = String::from_utf8(credentials).map_err(|_| Outcome::Reconnect {
            id: post.id,
            account_id: post.account_id,
            reason: "stored credentials are not valid text".into(),
        })?;
        let account = AccountRef {
            id: post.account_id.0,
            handle: post.handle.to_string(),
            server: post.server.clone().unwrap_or_default(),
            credentials: Secret::new(credentials),
            trusted: post.trusted,
        };
        // The account's own server may allow more (or less) than the network's default.
        let text = self.compose(hosted, post, &elsewhere, |t| network.measure(&account, t))?;
        if !pace {
            return Ok(Ready {
                text,
                account,
                network: network.clone(),
            });
        }
        if let Err(wait) = self.pacer.check(
            post.network,
            post.account_id.0,
            post.server.as_deref().unwrap_or(""),
        ) {
            return Err(Outcome::Retry {
                id: post.id,
                run_at: Duration::from_std(wait)
                    .ok()
                    .and_then(|w| now.checked_add_signed(w + Duration::milliseconds(10)))
                    .unwrap_or(post.window_end),
                error: "paced: posting budget of this account or server spent".into(),
                maybe_sent: false,
            });
        }
        Ok(Ready {
            text,
            account,
            network: network.clone(),
        })
    }

    /// A tap-to-post notice at its minute: its text for its network (length rules,
    /// hashtag, link), which the person then posts through the compose link
    /// ([`compose::intent`]). Never after its window.
    fn remind(
        &self,
        post: &ClaimedPost,
        elsewhere: &HashMap<ParticipantId, Vec<Account>>,
        now: DateTime<Utc>,
    ) -> Outcome {
        let Some(hosted) = self.hosted.get(&post.campaign_id) else {
            return Outcome::Failed {
                id: post.id,
                reason: format!(
                    "campaign `{}` is not hosted by this picket (its file was removed?)",
                    post.campaign_id
                ),
            };
        };
        let closes = post
            .window_end
            .checked_add_signed(self.grace())
            .unwrap_or(post.window_end);
        if closes < now {
            return Outcome::Missed {
                id: post.id,
                reason: "its window closed before the reminder could be shown".into(),
            };
        }
        let elsewhere = compose::elsewhere(
            elsewhere.get(&post.participant_id).into_iter().flatten(),
            Some(post.account_id),
        );
        match self.compose(hosted, post, &elsewhere, |t| {
            compose::measure(post.network, t)
        }) {
            Ok(text) => Outcome::Reminded { id: post.id, text },
            Err(outcome) => outcome,
        }
    }

    /// The post's text, as [`compose`] makes it for every preview too: the planned
    /// variant, or the first other one that fits the account's network.
    fn compose(
        &self,
        hosted: &Hosted,
        post: &ClaimedPost,
        elsewhere: &str,
        measure: impl Fn(&str) -> compose::Measure,
    ) -> Result<String, Outcome> {
        let c = &hosted.campaign;
        let context = compose::PostContext {
            site: &self.public_url,
            campaign: c.text_ref(),
            name: &post.participant_name,
            invite_code: &post.invite_code,
            elsewhere,
            network: post.network,
            slot: compose::SlotRef {
                at: post.slot_at,
                tz: post.tz,
                day: u32::try_from(post.day).unwrap_or(0),
                days_total: u32::try_from(post.days_total).unwrap_or(0),
            },
        };
        let planned = usize::try_from(post.variant).unwrap_or(0);
        hosted
            .templates
            .compose(&post.template, planned, &context.vars(), measure)
            .map(|composed| composed.text)
            .map_err(|e| Outcome::Failed {
                id: post.id,
                reason: e.to_string(),
            })
    }

    /// The strike card for a post whose rule asks for one (`card = true`), when its network
    /// takes images. Drawing it cannot fail on a good campaign; if it did, the notice goes
    /// out without its picture rather than not at all.
    async fn card_for(
        &self,
        post: &ClaimedPost,
        network: &dyn Network,
        text: &str,
    ) -> Option<Image> {
        if !network.takes_images() {
            return None;
        }
        let hosted = self.hosted.get(&post.campaign_id)?;
        let c = &hosted.campaign;
        if !c.posts.iter().any(|r| r.name == post.post_name && r.card) {
            return None;
        }
        let notice = c.card_notice(c.card_day(post.tz.tz(), post.slot_at), &self.public_url);
        let size = card::Size::Square;
        match self.cards.get(&notice, size).await {
            Ok(png) => Some(Image {
                png,
                alt: card::alt_for_post(text),
                width: size.width(),
                height: size.height(),
            }),
            Err(e) => {
                tracing::warn!(error = %e, "the strike card could not be drawn: posting without it");
                None
            }
        }
    }

    /// [`Dispatcher::send`], with a panic in it recorded as the post's failure. The post
    /// was `sending`: whether it went out is unknown, so it is not retried blindly.
    async fn send_isolated(&self, post: ClaimedPost, ready: Ready) -> Outcome {
        let id = post.id;
        super::isolate_async(self.send(post, ready))
            .await
            .unwrap_or_else(|panic| {
                tracing::error!(job = %id, error = %panic, "sending a post failed");
                Outcome::Failed {
                    id,
                    reason: panic.into_message(),
                }
            })
    }

    #[tracing::instrument(skip_all, fields(campaign = %post.campaign_id, network = %post.network, job = %post.id))]
    async fn send(&self, post: ClaimedPost, ready: Ready) -> Outcome {
        let deadline = self.deadline(&post);
        let now = self.clock.now();
        let left = self.clock.real_duration(deadline - now);
        if deadline <= now {
            if post.outcome_unknown {
                return self
                    .read_back(&post, ready.network.as_ref(), &ready.account, &ready.text)
                    .await;
            }
            return Outcome::Missed {
                id: post.id,
                reason: "its window closed before it could be sent".into(),
            };
        }
        let Ready {
            text,
            account,
            network,
        } = ready;
        let image = self.card_for(&post, network.as_ref(), &text).await;
        let outgoing = OutgoingPost {
            text: text.clone(),
            idempotency_key: post.idempotency_key.clone(),
            scheduled_at: post.slot_at,
            slot_key: post.slot_key.clone(),
            outcome_unknown: post.outcome_unknown,
            timeout: left.min(StdDuration::from_secs(self.settings.request_timeout_secs)),
            image,
        };
        // `account` and `network` stay usable for a read-back if the window closes.
        match network.publish(&account, &outgoing).await {
            Ok(receipt) => Outcome::Published {
                id: post.id,
                remote_id: receipt.remote_id,
                remote_url: receipt.url,
                text,
            },
            // Only the reason's summary (picket's words) is recorded: it is what the
            // participant's page shows. What the network said goes to the log.
            Err(PublishError::Rejected(reason)) => {
                tracing::warn!(
                    reason = reason.summary(),
                    detail = reason.detail(),
                    "the network refused the post"
                );
                Outcome::Failed {
                    id: post.id,
                    reason: reason.summary().to_string(),
                }
            }
            Err(PublishError::Reconnect(reason)) => {
                tracing::warn!(
                    reason = reason.summary(),
                    detail = reason.detail(),
                    "the network refused the account"
                );
                Outcome::Reconnect {
                    id: post.id,
                    account_id: post.account_id,
                    reason: reason.summary().to_string(),
                }
            }
            Err(PublishError::Retry {
                reason,
                after,
                maybe_sent,
            }) => {
                let delay = self.retry.delay(post.attempts.max(1) as u32, after);
                // A delay past the range of dates (an absurd Retry-After) is past the window.
                let run_at = Duration::from_std(delay)
                    .ok()
                    .and_then(|d| self.clock.now().checked_add_signed(d))
                    .filter(|at| *at <= deadline);
                let Some(run_at) = run_at else {
                    if maybe_sent || post.outcome_unknown {
                        return self
                            .read_back(&post, network.as_ref(), &account, &text)
                            .await;
                    }
                    tracing::warn!(
                        reason = reason.summary(),
                        detail = reason.detail(),
                        attempt = post.attempts,
                        "window closed while retrying"
                    );
                    return Outcome::Missed {
                        id: post.id,
                        reason: format!(
                            "window closed while retrying ({} attempts; last: {})",
                            post.attempts,
                            reason.summary()
                        ),
                    };
                };
                tracing::debug!(
                    reason = reason.summary(),
                    detail = reason.detail(),
                    attempt = post.attempts,
                    "will retry"
                );
                Outcome::Retry {
                    id: post.id,
                    run_at,
                    error: reason.summary().to_string(),
                    maybe_sent,
                }
            }
        }
    }
}

impl Dispatcher {
    /// Settle a post whose window closed after an attempt with an unknown outcome by
    /// asking the network, which never sends anything: published with its link if an
    /// earlier attempt landed; missed if the network has no such post once the last
    /// attempt has had time to land (a request still on its way could land later); missed
    /// "outcome unknown" where the network cannot be asked. A failed read-back is tried
    /// again for up to [`READ_BACK_WITHIN`] after the window.
    async fn read_back(
        &self,
        post: &ClaimedPost,
        network: &dyn Network,
        account: &AccountRef,
        text: &str,
    ) -> Outcome {
        let deadline = self.deadline(post);
        let settle = Duration::seconds(self.settings.request_timeout_secs.max(1) as i64);
        let asked = OutgoingPost {
            text: text.to_string(),
            idempotency_key: post.idempotency_key.clone(),
            scheduled_at: post.slot_at,
            slot_key: post.slot_key.clone(),
            outcome_unknown: true,
            timeout: StdDuration::from_secs(self.settings.request_timeout_secs.max(1)),
            image: None,
        };
        let answer = super::isolate_async(network.read_back(account, &asked))
            .await
            .unwrap_or_else(|panic| {
                tracing::error!(job = %post.id, error = %panic, "reading a post back failed");
                Ok(ReadBack::Unknown)
            });
        let now = self.clock.now();
        let missed = |reason: String| Outcome::Missed {
            id: post.id,
            reason,
        };
        match answer {
            Ok(ReadBack::Found(receipt)) => {
                tracing::info!(job = %post.id, remote_id = %receipt.remote_id,
                    "read back: an earlier attempt was published");
                Outcome::Published {
                    id: post.id,
                    remote_id: receipt.remote_id,
                    remote_url: receipt.url,
                    text: text.to_string(),
                }
            }
            Ok(ReadBack::Absent) => match deadline.checked_add_signed(settle) {
                Some(settled) if now < settled => Outcome::Retry {
                    id: post.id,
                    run_at: settled,
                    error: "outcome unknown: read back again once the last attempt has settled"
                        .into(),
                    maybe_sent: true,
                },
                _ => missed(
                    "window closed before it could be published (read back: no earlier \
                     attempt reached the network)"
                        .into(),
                ),
            },
            Ok(ReadBack::Unknown) => missed(OUTCOME_UNKNOWN.into()),
            Err(PublishError::Retry { reason, after, .. }) => {
                let delay = self.retry.delay(post.attempts.max(1) as u32, after);
                let run_at = Duration::from_std(delay)
                    .ok()
                    .and_then(|d| now.checked_add_signed(d))
                    .filter(|at| {
                        deadline
                            .checked_add_signed(READ_BACK_WITHIN)
                            .is_none_or(|last| *at < last)
                    });
                match run_at {
                    Some(run_at) => Outcome::Retry {
                        id: post.id,
                        run_at,
                        error: format!(
                            "outcome unknown; reading it back failed: {}",
                            reason.summary()
                        ),
                        maybe_sent: true,
                    },
                    None => missed(format!(
                        "{OUTCOME_UNKNOWN}; reading it back failed: {}",
                        reason.summary()
                    )),
                }
            }
            Err(e) => missed(format!(
                "{OUTCOME_UNKNOWN}; reading it back failed: {}",
                e.reason().summary()
            )),
        }
    }
}

#[derive(Clone, Copy)]
enum Phase {
    Expire,
    Claim,
    Prepare,
    BeginSending,
    Send,
    Record,
}

/// Wall time per [`Phase`] of one round.
struct Phases {
    last: std::time::Instant,
    spent: [StdDuration; 6],
}

impl Phases {
    fn start() -> Phases {
        Phases {
            last: std::time::Instant::now(),
            spent: [StdDuration::ZERO; 6],
        }
    }

    /// Laps count from now: the time since the last lap went to another batch.
    fn restart(&mut self) {
        self.last = std::time::Instant::now();
    }

    /// The time since the previous lap was spent in `phase`.
    fn lap(&mut self, phase: Phase) {
        let now = std::time::Instant::now();
        self.spent[phase as usize] += now - self.last;
        self.last = now;
    }

    fn ms(&self, phase: Phase) -> f64 {
        self.spent[phase as usize].as_secs_f64() * 1000.0
    }
}

/// A claimed batch, before it is prepared.
struct Claimed {
    posts: Vec<ClaimedPost>,
    /// The instant it was claimed at, which preparing judges windows by.
    now: DateTime<Utc>,
    phases: Phases,
}

/// A claimed batch, prepared: the posts to send and to read back, and the outcomes of
/// those decided without the network.
struct Staged {
    ready: Vec<(ClaimedPost, Ready)>,
    to_read_back: Vec<(ClaimedPost, Ready)>,
    outcomes: Vec<Outcome>,
    /// Each post's planned instant, for the lateness figures.
    run_at: HashMap<crate::store::OutboxId, DateTime<Utc>>,
    phases: Phases,
}

/// A batch's outcomes, to be recorded.
struct Sent {
    outcomes: Vec<Outcome>,
    run_at: HashMap<crate::store::OutboxId, DateTime<Utc>>,
    phases: Phases,
}

/// A post ready to go: its text, the account with its credentials opened, the adapter.
struct Ready {
    text: String,
    account: AccountRef,
    network: Arc<dyn crate::network::Network>,
}

fn hostname() -> String {
    std::env::var("HOSTNAME").unwrap_or_else(|_| "picket".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(strike: &str) -> Campaign {
        let src = format!(
            "id = \"c\"\ntitle = \"T\"\nhashtag = \"H\"\n[strike]\n{strike}\n[[posts]]\nname = \"n\"\n\
             when = \"start\"\ntemplate = \"t\"\ncard = true\n[templates]\nt = [\"x\"]\n"
        );
        crate::campaign::parse_str(&src, std::path::Path::new("c.toml")).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn tz(s: &str) -> chrono_tz::Tz {
        s.parse().unwrap()
    }

    fn day(s: &str) -> chrono::NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn a_card_shows_the_strike_day_where_the_days_are_read() {
        let own = campaign("timezone = \"participant\"\ndays = [\"2027-07-04\", \"2027-07-05\"]");
        // Midnight of 5 July in Auckland is still 4 July in UTC; 11 pm of 4 July in
        // Honolulu is 5 July in UTC.
        assert_eq!(
            own.card_day(tz("Pacific/Auckland"), at("2027-07-04T12:00:00Z")),
            day("2027-07-05")
        );
        assert_eq!(
            own.card_day(tz("Pacific/Honolulu"), at("2027-07-05T09:00:00Z")),
            day("2027-07-04")
        );
        // Before the strike (an invitation): its first day; after it: its last.
        assert_eq!(
            own.card_day(tz("UTC"), at("2027-06-27T00:00:00Z")),
            day("2027-07-04")
        );
        assert_eq!(
            own.card_day(tz("UTC"), at("2027-07-06T00:00:00Z")),
            day("2027-07-05")
        );
        // Days read in the campaign's zone: the participant's does not move them.
        let zoned = campaign("timezone = \"America/New_York\"\ndays = [\"2027-07-04\"]");
        assert_eq!(
            zoned.card_day(tz("Asia/Tokyo"), at("2027-07-04T04:00:00Z")),
            day("2027-07-04")
        );
    }
}
