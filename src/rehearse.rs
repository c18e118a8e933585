//! `picket rehearse`: a whole strike, compressed in time, against the sandbox receiver.
//!
//! Nothing of the user's own data is touched: a temporary SQLite database in a temporary
//! folder, a [`Receiver`] on `127.0.0.1:0` in this process, and simulated strikers spread
//! over real time zones (from Pacific/Kiritimati, UTC+14, to Pacific/Pago_Pago, UTC−11),
//! with 1–2 accounts each, a mix of chosen days and cadences. The real planner plans them
//! and the real [`Dispatcher`] sends them, reading a [`ScaledClock`]:
//!
//! ```text
//! strikers ──> store (temp SQLite) ──planner::plan_campaign──> outbox
//!                                                                │
//!   driver loop: Dispatcher::step() while work is due ──> Receiver (127.0.0.1:0)
//!                nothing due, nothing in flight ──> ScaledClock::skip_to(next due)
//! ```
//!
//! Each simulated account stands in for a real network (Mastodon, Bluesky, Nostr,
//! Misskey): the dispatcher applies that network's length rules and posting budget, and
//! the request goes to the sandbox receiver. The report compares what the store recorded
//! with what the receiver saw: lateness, retries, misses and, above all, duplicates.
//!
//! It does not rehearse web signups or withdrawals, and it steps the dispatcher itself
//! (`step()`, the same round `run()` repeats) so it knows when nothing is in flight and
//! the clock may jump.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Timelike, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::campaign::{self, Campaign, Participation};
use crate::clock::{Clock, ScaledClock};
use crate::config::SchedulerSettings;
use crate::crypto::Vault;
use crate::domain::{Handle, NetworkKind};
use crate::network::{AccountRef, Network, Networks, OutgoingPost, PublishError, Receipt};
use crate::sandbox::{Faults, Receiver, ReceiverReport, fingerprint};
use crate::scheduler::{Dispatcher, StepReport, planner};
use crate::store::{AccountId, NewAccount, NewParticipant, SqliteStore, StoreTooling};

/// Zones the simulated strikers live in: both ends of the date line, half- and
/// quarter-hour offsets, both hemispheres (so daylight saving goes both ways).
pub const ZONES: &[&str] = &[
    "Pacific/Kiritimati",
    "Pacific/Pago_Pago",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "America/New_York",
    "Europe/Berlin",
    "Australia/Sydney",
    "America/Los_Angeles",
    "Africa/Lagos",
    "Asia/Tokyo",
    "America/Sao_Paulo",
    "Asia/Kathmandu",
    "Europe/London",
    "America/St_Johns",
    "Pacific/Auckland",
    "UTC",
];

/// The networks the simulated accounts stand in for. X and Threads are left out: picket
/// only reaches them by "tap to post" for most hosts.
const STAND_INS: [NetworkKind; 4] = [
    NetworkKind::Mastodon,
    NetworkKind::Bluesky,
    NetworkKind::Nostr,
    NetworkKind::Misskey,
];

/// Rehearsal time the clock may be idle before it jumps to the next due post. Small
/// enough that skipping is the rule between bursts; large enough that the jittered
/// posts of one burst still arrive in (scaled) real time.
const SKIP_IF_IDLE_FOR: Duration = Duration::seconds(2);

/// What to rehearse and how.
#[derive(Debug, Clone)]
pub struct Options {
    pub campaign: PathBuf,
    pub participants: usize,
    /// Rehearsal time runs this many times faster than real time.
    pub speed: f64,
    /// Injected by the receiver; `slow_delay` and `retry_after_secs` are in rehearsal time.
    pub faults: Faults,
    pub scheduler: SchedulerSettings,
    /// Draw a progress bar on stderr (hidden anyway when stderr is not a terminal).
    pub progress: bool,
}

impl Options {
    /// The defaults of `picket rehearse PATH`.
    pub fn new(campaign: PathBuf) -> Self {
        Options {
            campaign,
            participants: 200,
            speed: DEFAULT_SPEED,
            faults: Faults {
                retry_after_secs: 30,
                slow_delay: StdDuration::from_secs(20),
                ..Faults::default()
            },
            scheduler: SchedulerSettings::default(),
            progress: false,
        }
    }
}

/// Chosen so the bundled campaign (two days in every zone, hourly posts for some) takes
/// about a minute with idle gaps skipped.
pub const DEFAULT_SPEED: f64 = 150.0;

/// Nearest-rank percentiles of a set of lateness values.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Percentiles {
    pub count: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(mut values: Vec<f64>) -> Percentiles {
        if values.is_empty() {
            return Percentiles::default();
        }
        values.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
            values[rank - 1]
        };
        Percentiles {
            count: values.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: *values.last().expect("not empty"),
        }
    }
}

/// Everything a rehearsal measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub campaign: String,
    pub participants: usize,
    pub accounts: usize,
    pub speed: f64,
    /// Outbox rows the planner made: every one must end published, failed, missed or
    /// cancelled.
    pub planned: u64,
    pub published: u64,
    pub failed: u64,
    pub missed: u64,
    pub cancelled: u64,
    /// Rows still pending, claimed or sending at the end: must be 0.
    pub unfinished: u64,
    /// Sends that came back "try again" (injected 5xx, 429, timeouts) plus paced holds.
    pub retries: u64,
    pub reconnects: u64,
    /// Posts the receiver created for an (account, slot) that already had one.
    pub duplicates_at_receiver: u64,
    /// (account, slot) pairs with more than one published row in the store.
    pub duplicates_in_store: u64,
    /// Created at the receiver, but the row did not end `published` (its window closed
    /// while the answer was lost): followers saw it, picket reports it missed.
    pub created_not_recorded: u64,
    pub by_network: BTreeMap<String, u64>,
    /// Created posts per UTC hour (`YYYY-MM-DDTHH`), rehearsal time.
    pub by_hour: BTreeMap<String, u64>,
    /// Received instant minus the jittered `run_at`, in rehearsal seconds.
    pub lateness_rehearsal_secs: Percentiles,
    /// The same in real milliseconds (rehearsal lateness divided by the speed).
    pub lateness_real_ms: Percentiles,
    pub receiver: ReceiverReport,
    pub first_post: Option<DateTime<Utc>>,
    pub last_post: Option<DateTime<Utc>>,
    /// Rehearsal time jumped over because nothing was due and nothing in flight.
    pub skipped_secs: i64,
    pub real_secs: f64,
}

impl Report {
    pub fn duplicates(&self) -> u64 {
        self.duplicates_at_receiver + self.duplicates_in_store
    }

    /// A rehearsal passes when nothing was posted twice and every post reached an end.
    pub fn passed(&self) -> bool {
        self.duplicates() == 0 && self.unfinished == 0
    }

    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "rehearsal of {}: {} participants, {} accounts, speed ×{}",
            self.campaign, self.participants, self.accounts, self.speed
        );
        if let (Some(a), Some(b)) = (self.first_post, self.last_post) {
            let _ = writeln!(
                s,
                "  rehearsal time {} → {} in {:.1} s real ({} idle skipped)",
                a.format("%Y-%m-%d %H:%M UTC"),
                b.format("%Y-%m-%d %H:%M UTC"),
                self.real_secs,
                campaign::fmt_duration(Duration::seconds(self.skipped_secs))
            );
        }
        let _ = writeln!(
            s,
            "\nposts: {} planned, {} published, {} failed, {} missed, {} cancelled, {} unfinished",
            self.planned, self.published, self.failed, self.missed, self.cancelled, self.unfinished
        );
        let _ = writeln!(
            s,
            "retries: {}  reconnects: {}  receiver: {} requests, {} created, {} replays, {} faults",
            self.retries,
            self.reconnects,
            self.receiver.deliveries,
            self.receiver.created,
            self.receiver.replays,
            self.receiver.faults
        );
        let _ = writeln!(
            s,
            "duplicates: {} at the receiver, {} in the store{}",
            self.duplicates_at_receiver,
            self.duplicates_in_store,
            if self.duplicates() == 0 {
                " (none: good)"
            } else {
                "  <-- MUST BE 0"
            }
        );
        if self.created_not_recorded > 0 {
            let _ = writeln!(
                s,
                "created at the receiver but recorded missed (answer lost, window closed): {}",
                self.created_not_recorded
            );
        }
        let l = &self.lateness_rehearsal_secs;
        let r = &self.lateness_real_ms;
        let _ = writeln!(
            s,
            "\nlateness (received − jittered run_at), {} posts:\n  rehearsal: p50 {:.1} s  p90 {:.1} s  p99 {:.1} s  max {:.1} s\n  real:      p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            l.count, l.p50, l.p90, l.p99, l.max, r.p50, r.p90, r.p99, r.max
        );
        let _ = writeln!(s, "\nby network:");
        for (n, c) in &self.by_network {
            let _ = writeln!(s, "  {n:<10} {c:>7}");
        }
        let _ = writeln!(s, "\nby hour (UTC, rehearsal time):");
        for (h, c) in &self.by_hour {
            let _ = writeln!(s, "  {h}:00  {c:>6}");
        }
        let _ = write!(
            s,
            "\n{}",
            if self.passed() {
                "PASS: no duplicates, every post accounted for"
            } else {
                "FAIL: duplicates or unfinished posts (see above)"
            }
        );
        s
    }
}

/// A sandbox account standing in for `kind`: the dispatcher treats it as that network
/// (length rules, pacing), the sandbox adapter carries the request.
struct StandIn {
    kind: NetworkKind,
    sandbox: Arc<dyn Network>,
}

#[async_trait]
impl Network for StandIn {
    fn kind(&self) -> NetworkKind {
        self.kind
    }

    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        self.sandbox.publish(account, post).await
    }
}

fn random_token() -> String {
    use rand::Rng;
    let mut b = [0u8; 24];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// One simulated striker's choices, varied by their index so every run covers the same mix.
fn participation_for(campaign: &Campaign, i: usize) -> Participation {
    let tz = ZONES[i % ZONES.len()].parse().expect("a known zone");
    let days = campaign.days();
    let chosen = match (i / ZONES.len()) % 4 {
        1 if !days.is_empty() => Some(vec![days[0]]),
        2 if days.len() > 1 => Some(vec![days[days.len() - 1]]),
        _ => None,
    };
    // About a quarter opt into the repeating notice, at the finest cadence or slower.
    let every = match i % 8 {
        0 => Some(campaign.min_interval),
        3 => Some(campaign.min_interval * 2),
        _ => None,
    };
    let p = Participation {
        tz,
        days: chosen,
        every,
    };
    if campaign.check_participation(&p).is_ok() {
        return p;
    }
    // min_days may forbid a single day; fall back to everything.
    Participation {
        tz,
        days: None,
        every,
    }
}

/// Run a rehearsal to the end and report.
pub async fn rehearse(opts: Options) -> anyhow::Result<Report> {
    anyhow::ensure!(opts.speed > 0.0, "--speed must be above 0");
    anyhow::ensure!(opts.participants > 0, "--participants must be at least 1");
    let started = Instant::now();
    let campaign = campaign::load_file(&opts.campaign).map_err(|problems| {
        let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        anyhow::anyhow!(
            "{} has problems (see `picket campaign check`):\n{}",
            opts.campaign.display(),
            lines.join("\n")
        )
    })?;

    let dir = tempfile::tempdir().context("creating a temporary folder")?;
    let store: Arc<dyn StoreTooling> = Arc::new(
        SqliteStore::open(&dir.path().join("rehearsal.db"), true)
            .await
            .context("creating the rehearsal database")?,
    );
    let mut key = [0u8; 32];
    {
        use rand::Rng;
        rand::rng().fill_bytes(&mut key);
    }
    let vault = Vault::from_key_bytes(&key);

    // The clock starts just before the first post of anyone, so nothing is planned in the
    // past (the planner drops past slots) and nothing waits.
    let people: Vec<Participation> = (0..opts.participants)
        .map(|i| participation_for(&campaign, i))
        .collect();
    let first = people
        .iter()
        .flat_map(|p| campaign.slots(p).into_iter().map(|s| s.at))
        .min()
        .context("the campaign has no posts for anyone")?;
    let origin = first - Duration::minutes(1);
    let clock = ScaledClock::new(origin, opts.speed);
    let dyn_clock: Arc<dyn Clock> = Arc::new(clock.clone());

    let receiver = Receiver::new(dyn_clock.clone());
    let mut faults = opts.faults.clone();
    // The receiver sleeps in real time; the option is in rehearsal time.
    faults.slow_delay = dyn_clock.real_duration(
        Duration::from_std(faults.slow_delay).unwrap_or_else(|_| Duration::seconds(20)),
    );
    receiver.set_faults(faults);
    let stop = CancellationToken::new();
    let _stop_receiver = stop.clone().drop_guard();
    let addr = receiver
        .serve(SocketAddr::from(([127, 0, 0, 1], 0)), stop.clone())
        .await
        .context("starting the sandbox receiver")?;
    let server = format!("http://{addr}");

    // Strikers, their accounts and pledges.
    let now = clock.now();
    let mut account_of_fingerprint: HashMap<String, (AccountId, NetworkKind)> = HashMap::new();
    let mut participant_ids = Vec::with_capacity(people.len());
    for (i, p) in people.iter().enumerate() {
        let participant = store
            .create_participant(
                &NewParticipant {
                    name: format!("Striker {}", i + 1),
                    tz: p.tz,
                    ..NewParticipant::default()
                },
                now,
            )
            .await?;
        participant_ids.push(participant);
        let n_accounts = if i % 3 == 0 { 2 } else { 1 };
        let mut accounts = Vec::new();
        for a in 0..n_accounts {
            let kind = STAND_INS[(i + a * 3) % STAND_INS.len()];
            let token = random_token();
            let id = store
                .add_account(
                    &NewAccount {
                        participant_id: participant,
                        network: kind,
                        handle: Handle::parse(&format!("@striker{}_{a}", i + 1))?,
                        server: Some(server.clone()),
                        // The rehearsal's own receiver on loopback.
                        trusted: true,
                        route: crate::store::AccountRoute::Api,
                    },
                    &|id| vault.seal_for(id.0, token.as_bytes()),
                    now,
                )
                .await?;
            account_of_fingerprint.insert(fingerprint(&token), (id, kind));
            accounts.push(id);
        }
        store
            .upsert_pledge(
                &crate::participation::new_pledge(participant, &campaign, p, accounts),
                now,
            )
            .await?;
    }

    let spread = Duration::seconds(opts.scheduler.jitter_secs as i64);
    planner::plan_campaign(store.as_ref(), &campaign, spread, now).await?;

    // The jittered run_at of every planned row, before retries move it.
    let mut planned_at: HashMap<(AccountId, String), DateTime<Utc>> = HashMap::new();
    let mut last_window_end = origin;
    for p in &participant_ids {
        for row in store.outbox_for(*p, Some(&campaign.id)).await? {
            last_window_end = last_window_end.max(row.window_end);
            planned_at.insert((row.account_id, row.slot_key), row.run_at);
        }
    }
    let planned = planned_at.len() as u64;

    let sandbox = Networks::standard(
        Arc::new(crate::network::DiscardCredentials),
        &crate::network::Egress::new(false),
        "http://127.0.0.1",
        dyn_clock.clone(),
    )
    .get(NetworkKind::Sandbox)
    .cloned()
    .context("the sandbox adapter is built in")?;
    let mut networks = Networks::new();
    for kind in STAND_INS {
        networks = networks.with(Arc::new(StandIn {
            kind,
            sandbox: sandbox.clone(),
        }));
    }
    let dispatcher = Dispatcher::new(
        store.clone(),
        networks,
        vault,
        dyn_clock.clone(),
        std::slice::from_ref(&campaign),
        opts.scheduler.clone(),
        "https://picket.example".into(),
    )?
    .with_worker_name("rehearsal");

    let bar = progress_bar(opts.progress, planned);
    let grace = Duration::seconds(opts.scheduler.grace_secs as i64);
    // Past this, every row's window has closed and expiry must have ended it.
    let give_up_at = last_window_end + grace + Duration::minutes(5);
    let mut totals = StepReport::default();
    let mut last_draw = Instant::now();
    loop {
        let step = dispatcher.step().await?;
        totals.retried += step.retried;
        totals.reconnect += step.reconnect;
        if step.claimed > 0 && last_draw.elapsed() < StdDuration::from_millis(100) {
            continue;
        }
        last_draw = Instant::now();
        let counts = store.outbox_counts(&campaign.id).await?;
        let open = counts.pending + counts.claimed + counts.sending;
        bar.set_position(planned.saturating_sub(open));
        bar.set_message(clock.now().format("%Y-%m-%d %H:%M UTC").to_string());
        if open == 0 || clock.now() > give_up_at {
            break;
        }
        if step.claimed > 0 {
            continue;
        }
        // step() has returned, so nothing is in flight: if nothing is due soon either,
        // jump straight to the next due post (or, when nothing will ever be due again,
        // to the end so expiry can close what is left).
        let now = clock.now();
        let next = store.next_due_at().await?.unwrap_or(give_up_at);
        if next > now + SKIP_IF_IDLE_FOR {
            clock.skip_to(next);
        } else {
            let wait = dyn_clock.real_duration(next - now);
            tokio::time::sleep(
                wait.clamp(StdDuration::from_millis(1), StdDuration::from_millis(20)),
            )
            .await;
        }
    }
    bar.finish_and_clear();

    let counts = store.outbox_counts(&campaign.id).await?;
    let duplicates_in_store = store.published_per_slot_duplicates(&campaign.id).await?;
    let mut published_rows = std::collections::HashSet::new();
    for p in &participant_ids {
        for row in store.outbox_for(*p, Some(&campaign.id)).await? {
            if row.state == crate::store::OutboxState::Published {
                published_rows.insert((row.account_id, row.slot_key));
            }
        }
    }

    let posts = receiver.posts();
    let mut by_network = BTreeMap::new();
    let mut by_hour = BTreeMap::new();
    let mut late_secs = Vec::with_capacity(posts.len());
    let mut created_not_recorded = 0;
    for post in &posts {
        let Some(&(account, kind)) = account_of_fingerprint.get(&post.account) else {
            continue;
        };
        *by_network.entry(kind.to_string()).or_insert(0u64) += 1;
        let hour = post.received_at.with_minute(0).unwrap_or(post.received_at);
        *by_hour
            .entry(hour.format("%Y-%m-%dT%H").to_string())
            .or_insert(0u64) += 1;
        let slot = post.slot.clone().unwrap_or_default();
        if let Some(run_at) = planned_at.get(&(account, slot.clone())) {
            late_secs.push((post.received_at - *run_at).num_milliseconds() as f64 / 1000.0);
        }
        if !published_rows.contains(&(account, slot)) {
            created_not_recorded += 1;
        }
    }
    let late_real_ms = late_secs.iter().map(|s| s * 1000.0 / opts.speed).collect();

    Ok(Report {
        campaign: campaign.id.to_string(),
        participants: opts.participants,
        accounts: account_of_fingerprint.len(),
        speed: opts.speed,
        planned,
        published: counts.published,
        failed: counts.failed,
        missed: counts.missed,
        cancelled: counts.cancelled,
        unfinished: counts.pending + counts.claimed + counts.sending,
        retries: totals.retried as u64,
        reconnects: totals.reconnect as u64,
        duplicates_at_receiver: receiver.report().duplicate_slots,
        duplicates_in_store,
        created_not_recorded,
        by_network,
        by_hour,
        lateness_rehearsal_secs: Percentiles::of(late_secs),
        lateness_real_ms: Percentiles::of(late_real_ms),
        receiver: receiver.report(),
        first_post: posts.iter().map(|p| p.received_at).min(),
        last_post: posts.iter().map(|p| p.received_at).max(),
        skipped_secs: clock.skipped().num_seconds(),
        real_secs: started.elapsed().as_secs_f64(),
    })
}

fn progress_bar(show: bool, total: u64) -> indicatif::ProgressBar {
    if !show {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{bar:40}] {pos}/{len} posts final · {msg} · {elapsed}",
        )
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(StdDuration::from_millis(200));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50.0, 90.0, 99.0, 100.0));
        assert_eq!(Percentiles::of(Vec::new()).count, 0);
    }
}
