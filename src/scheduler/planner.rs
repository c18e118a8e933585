//! The planner: pledges × accounts × campaign slots → outbox rows.
//!
//! Planning is a pure function of the campaign file and the pledge ([`plan_pledge`]), so
//! re-planning after either changes yields the same keys, variants and jittered instants
//! for the slots that did not change; the store then inserts what is missing, deletes
//! future pending rows that are no longer wanted, and never touches rows already claimed,
//! sending or final. Nothing is ever sent twice because of a re-plan.
//!
//! A pledge that cannot be planned (its stored choices no longer fit the campaign, or a
//! bug) is skipped with its reason recorded on the pledge
//! ([`Pledges::set_pledge_problem`](crate::store::Pledges::set_pledge_problem)), logged,
//! and the others are planned: pledges come from strangers' forms.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use super::Panicked;
use crate::campaign::{Campaign, ChoiceError, Participation, Slot, pick_variant};
use crate::domain::Zone;
use crate::store::{
    AccountId, PlanApplied, PlannedPost, Pledge, PledgeId, PledgePlan, Store, StoreError,
};

/// How many pledges are planned per store transaction.
///
/// Each commit writes the indexes' hot pages (the tails of the due buckets, of the pledge,
/// campaign and unique indexes) to the WAL again, and the checkpoint copies them back:
/// with 5,000 pledges (40,000 rows of the bench campaign) instead of 2,000 a million
/// pledges planned in 46.9 s instead of 60.4 s. The price is SQLite's write lock held for
/// about a quarter of a second per page while a large campaign is planned, which a
/// signature arriving then waits out.
pub const PAGE: u32 = 5_000;

/// A deterministic offset in `[0, spread]` for one account's slot: posts of many accounts
/// at the same instant are spread out, and re-planning gives the same offset.
fn jitter(account: AccountId, slot_key: &str, spread: Duration) -> Duration {
    let ms = spread.num_milliseconds();
    if ms <= 0 {
        return Duration::zero();
    }
    let mut h = Sha256::new();
    h.update(account.0.to_be_bytes());
    h.update(slot_key.as_bytes());
    let d = h.finalize();
    let n = u64::from_be_bytes(d[..8].try_into().expect("8 bytes"));
    Duration::milliseconds((n % (ms as u64 + 1)) as i64)
}

/// Why a pledge cannot be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// The stored pledge does not read (a row written by hand or by an older picket).
    #[error("{0}")]
    Unreadable(String),
    /// The campaign no longer allows the pledge's choices (an edit removed its days).
    #[error(transparent)]
    Choice(#[from] ChoiceError),
    /// Planning it panicked: a bug in picket.
    #[error(transparent)]
    Panicked(#[from] Panicked),
}

/// A pledge's choices as the campaign module reads them.
pub fn participation(pledge: &Pledge) -> Result<Participation, PlanError> {
    let tz = pledge.tz;
    let every = match pledge.every_secs {
        None => None,
        Some(secs) => Some(Duration::try_seconds(secs).ok_or_else(|| {
            PlanError::Unreadable(format!(
                "pledge {} has a cadence of {secs} seconds, out of range",
                pledge.id
            ))
        })?),
    };
    Ok(Participation {
        tz,
        days: pledge.days.clone(),
        every,
    })
}

/// Every post one pledge should make from now on.
pub fn plan_pledge(
    campaign: &Campaign,
    pledge: &Pledge,
    slots: &[Slot],
    spread: Duration,
    now: DateTime<Utc>,
) -> PledgePlan {
    let mut rows = Vec::with_capacity(slots.len() * pledge.account_ids.len());
    for &account in &pledge.account_ids {
        // A tap-to-post reminder goes to a person at the slot's own minute: jitter spreads
        // requests to a network, and nothing is sent to one.
        let spread = if pledge.tap_account_ids.contains(&account) {
            Duration::zero()
        } else {
            spread
        };
        let mut occurrences: HashMap<&str, usize> = HashMap::new();
        for slot in slots {
            let occurrence = occurrences.entry(&*slot.template).or_default();
            let variants = campaign.templates.get(&*slot.template).map_or(1, Vec::len);
            let variant = pick_variant(variants, account.0 as u64, *occurrence);
            *occurrence += 1;
            // Past slots are not planned: joining late must not produce a burst of misses.
            if slot.window_end <= now {
                continue;
            }
            // Jitter stays inside the first half of the window so a jittered post is never
            // pushed out of its own window.
            let half_window = (slot.window_end - slot.at) / 2;
            let run_at = slot
                .at
                .checked_add_signed(jitter(account, &slot.key, spread.min(half_window)))
                .unwrap_or(slot.at);
            rows.push(PlannedPost {
                account_id: account,
                slot_key: slot.key.clone(),
                post_name: slot.post.clone(),
                template: slot.template.clone(),
                variant: variant as i64,
                run_at,
                window_end: slot.window_end,
                // The key derived from (campaign, account, slot): the store keeps it
                // implicit and derives it when the post is claimed.
                idempotency_key: String::new(),
                slot_at: slot.at,
                day: slot.day as i64,
                days_total: slot.days_total as i64,
            });
        }
    }
    PledgePlan {
        pledge_id: pledge.id,
        campaign_id: campaign.id.clone(),
        rows,
    }
}

/// What a participant's schedule depends on: zone, chosen days, cadence.
type ScheduleKey = (Zone, Option<Vec<NaiveDate>>, Option<i64>);

/// Plans many pledges, computing each distinct (zone, days, cadence) schedule once:
/// a million participants share a few hundred zones.
pub struct Planner<'a> {
    campaign: &'a Campaign,
    spread: Duration,
    cache: HashMap<ScheduleKey, Vec<Slot>>,
}

impl<'a> Planner<'a> {
    pub fn new(campaign: &'a Campaign, spread: Duration) -> Self {
        Planner {
            campaign,
            spread,
            cache: HashMap::new(),
        }
    }

    /// The plan of one pledge; `Err` says why it cannot be planned. A panic while planning
    /// it is caught and reported the same way (see [`super::isolate`]).
    pub fn plan(&mut self, pledge: &Pledge, now: DateTime<Utc>) -> Result<PledgePlan, PlanError> {
        super::isolate(|| self.plan_unguarded(pledge, now))?
    }

    fn plan_unguarded(
        &mut self,
        pledge: &Pledge,
        now: DateTime<Utc>,
    ) -> Result<PledgePlan, PlanError> {
        let key = (pledge.tz, pledge.days.clone(), pledge.every_secs);
        if !self.cache.contains_key(&key) {
            let p = participation(pledge)?;
            self.campaign.check_participation(&p)?;
            self.cache.insert(key.clone(), self.campaign.slots(&p));
        }
        let slots = &self.cache[&key];
        Ok(plan_pledge(self.campaign, pledge, slots, self.spread, now))
    }
}

/// Pledges planned between two yields to the runtime (see [`plan_campaign`]).
const YIELD_EVERY: usize = 100;

/// Re-plan every active pledge of `campaign`, page by page.
///
/// Each page is written while the next one is read and planned: the store's writes run on
/// its own thread (SQLite's worker) or server (PostgreSQL) and planning on this task, so on
/// two cores they overlap instead of taking turns. Planning yields every [`YIELD_EVERY`]
/// pledges so the write, polled in the same task, can send its next statement meanwhile.
pub async fn plan_campaign(
    store: &dyn Store,
    campaign: &Campaign,
    spread: Duration,
    now: DateTime<Utc>,
) -> Result<PlanApplied, StoreError> {
    let mut planner = Planner::new(campaign, spread);
    let mut total = PlanApplied::default();
    let mut page = next_page(store, &mut planner, None, now).await?;
    while let Some(Page {
        plans,
        last,
        problems,
    }) = page
    {
        let (applied, next) = tokio::join!(
            store.apply_plans(&plans, now),
            next_page(store, &mut planner, Some(last), now)
        );
        let applied = applied?;
        total.upserted += applied.upserted;
        total.removed += applied.removed;
        total.skipped += applied.skipped;
        // Rare, so written one by one, after the page's plans and outside their transaction.
        for (pledge, problem) in problems {
            store
                .set_pledge_problem(pledge, problem.as_deref(), now)
                .await?;
        }
        page = next?;
    }
    // The plans are written: a refresh that fails only leaves the statistics as they were.
    if total.upserted >= BULK
        && let Err(e) = store.refresh_statistics().await
    {
        tracing::warn!(campaign = %campaign.id, error = %e, "could not refresh the database's statistics");
    }
    Ok(total)
}

/// Rows planned in one pass from which the database's statistics are refreshed (see
/// [`Store::refresh_statistics`]): a campaign planned for the first time, or many new
/// pledges. Refreshing costs about the same at any size, so it is kept for passes that
/// change what the claim reads.
const BULK: u64 = 1_000;

/// One page of active pledges, planned.
struct Page {
    plans: Vec<PledgePlan>,
    /// The page's last pledge: the next page starts after it.
    last: PledgeId,
    /// Pledges whose recorded planning problem changed: a new reason, or `None` when one
    /// that failed before plans again.
    problems: Vec<(PledgeId, Option<String>)>,
}

/// The plans of the next page of active pledges after `after`.
async fn next_page(
    store: &dyn Store,
    planner: &mut Planner<'_>,
    after: Option<PledgeId>,
    now: DateTime<Utc>,
) -> Result<Option<Page>, StoreError> {
    let campaign = planner.campaign;
    let page = store.active_pledges(&campaign.id, after, PAGE).await?;
    let Some(last) = page.last_id() else {
        return Ok(None);
    };
    let pledges = page.pledges;
    let mut plans = Vec::with_capacity(pledges.len());
    // A row that does not read (edited by hand) is recorded like a pledge that cannot be
    // planned, and the rest go on.
    let mut problems: Vec<(PledgeId, Option<String>)> = page
        .unreadable
        .into_iter()
        .map(|(id, e)| {
            tracing::warn!(pledge = %id, campaign = %campaign.id, error = %e, "pledge unreadable");
            (id, Some(format!("the stored pledge does not read: {e}")))
        })
        .collect();
    for chunk in pledges.chunks(YIELD_EVERY) {
        for p in chunk {
            match planner.plan(p, now) {
                Ok(plan) => {
                    plans.push(plan);
                    if p.plan_error.is_some() {
                        problems.push((p.id, None));
                    }
                }
                // One bad pledge (a campaign edit removed its days, a row written by hand)
                // must not stop the rest.
                Err(e) => {
                    tracing::warn!(pledge = %p.id, campaign = %campaign.id, error = %e, "pledge not planned");
                    let e = e.to_string();
                    if p.plan_error.as_deref() != Some(e.as_str()) {
                        problems.push((p.id, Some(e)));
                    }
                }
            }
        }
        tokio::task::yield_now().await;
    }
    Ok(Some(Page {
        plans,
        last,
        problems,
    }))
}

/// How often the planner re-reads every pledge (joins via the web and CLI plan at once;
/// this catches edits to campaign files and anything missed).
pub const REPLAN_EVERY: std::time::Duration = std::time::Duration::from_secs(10 * 60);

/// The name of the lease that lets one process at a time plan.
const LEASE: &str = "planner";

/// Re-plan every campaign now, then every [`REPLAN_EVERY`], until `stop`, while this
/// process holds the planner lease (several servers on one PostgreSQL: one plans, the
/// others only dispatch). On the way out the lease is given up, so the next process (this
/// one restarted) plans at once instead of waiting for it to run out.
pub async fn run(
    store: &dyn Store,
    campaigns: &[Campaign],
    clock: &dyn crate::clock::Clock,
    spread: Duration,
    wake: &tokio::sync::Notify,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    let me = format!("planner-{}-{}", std::process::id(), rand::random::<u32>());
    let lease = Duration::from_std(REPLAN_EVERY * 2).expect("small duration");
    while !stop.is_cancelled() {
        let now = clock.now();
        let mine = match store.try_lease(LEASE, &me, now, now + lease).await {
            Ok(mine) => mine,
            Err(e) => {
                tracing::error!(error = %e, "could not take the planner lease");
                false
            }
        };
        for c in campaigns.iter().filter(|_| mine) {
            if stop.is_cancelled() {
                break;
            }
            let planned = super::isolate_async(plan_campaign(store, c, spread, clock.now())).await;
            match planned {
                Ok(Ok(applied)) => {
                    if applied.upserted > 0 {
                        // New rows may be due before the dispatcher's next look.
                        wake.notify_one();
                    }
                    tracing::info!(campaign = %c.id, upserted = applied.upserted, removed = applied.removed, "planned")
                }
                Ok(Err(e)) => {
                    tracing::error!(campaign = %c.id, error = %e, "planning failed; will try again")
                }
                Err(panic) => {
                    tracing::error!(campaign = %c.id, error = %panic, "planning failed; will try again")
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = tokio::time::sleep(REPLAN_EVERY) => {}
        }
    }
    match store.release_lease(LEASE, &me).await {
        Ok(true) => tracing::info!("planner lease released"),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not release the planner lease; it runs out by itself")
        }
    }
    Ok(())
}
