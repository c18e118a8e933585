//! The planner: pledges × accounts × campaign slots → outbox rows.
//!
//! Planning is a pure function of the campaign file and the pledge ([`plan_pledge`]), so
//! re-planning after either changes yields the same keys, variants and jittered instants
//! for the slots that did not change; the store then inserts what is missing, deletes
//! future pending rows that are no longer wanted, and never touches rows already claimed,
//! sending or final. Nothing is ever sent twice because of a re-plan.

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use crate::campaign::{Campaign, Participation, Slot, pick_variant};
use crate::store::{
    AccountId, PlanApplied, PlannedPost, Pledge, PledgeId, PledgePlan, Store, StoreError,
};

/// How many pledges are planned per store transaction.
const PAGE: u32 = 2_000;

/// The idempotency key of one post: the same (campaign, account, slot) always gets the
/// same key, and no two accounts share one (Pleroma caches keys globally, NETWORKS.md 0.3).
pub fn idempotency_key(campaign_id: &str, account: AccountId, slot_key: &str) -> String {
    let mut h = Sha256::new();
    for part in [
        campaign_id.as_bytes(),
        &account.0.to_be_bytes(),
        slot_key.as_bytes(),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

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

/// A pledge's choices as the campaign module reads them.
pub fn participation(pledge: &Pledge) -> Result<Participation, String> {
    let tz = pledge.tz.parse().map_err(|_| {
        format!(
            "pledge {} has an unknown time zone `{}`",
            pledge.id, pledge.tz
        )
    })?;
    Ok(Participation {
        tz,
        days: pledge.days.clone(),
        every: pledge.every_secs.map(Duration::seconds),
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
        let mut occurrences: HashMap<&str, usize> = HashMap::new();
        for slot in slots {
            let occurrence = occurrences.entry(slot.template.as_str()).or_default();
            let variants = campaign.templates.get(&slot.template).map_or(1, Vec::len);
            let variant = pick_variant(variants, account.0 as u64, *occurrence);
            *occurrence += 1;
            // Past slots are not planned: joining late must not produce a burst of misses.
            if slot.window_end <= now {
                continue;
            }
            // Jitter stays inside the first half of the window so a jittered post is never
            // pushed out of its own window.
            let half_window = (slot.window_end - slot.at) / 2;
            let run_at = slot.at + jitter(account, &slot.key, spread.min(half_window));
            rows.push(PlannedPost {
                account_id: account,
                slot_key: slot.key.clone(),
                post_name: slot.post.clone(),
                template: slot.template.clone(),
                variant: variant as i64,
                run_at,
                window_end: slot.window_end,
                idempotency_key: idempotency_key(&campaign.id, account, &slot.key),
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
type ScheduleKey = (String, Option<Vec<NaiveDate>>, Option<i64>);

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

    pub fn plan(&mut self, pledge: &Pledge, now: DateTime<Utc>) -> Result<PledgePlan, String> {
        let key = (pledge.tz.clone(), pledge.days.clone(), pledge.every_secs);
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
    while let Some((plans, last)) = page {
        let (applied, next) = tokio::join!(
            store.apply_plans(&plans, now),
            next_page(store, &mut planner, Some(last), now)
        );
        let applied = applied?;
        total.upserted += applied.upserted;
        total.removed += applied.removed;
        total.skipped += applied.skipped;
        page = next?;
    }
    Ok(total)
}

/// The plans of the next page of active pledges after `after`, and the page's last pledge.
async fn next_page(
    store: &dyn Store,
    planner: &mut Planner<'_>,
    after: Option<PledgeId>,
    now: DateTime<Utc>,
) -> Result<Option<(Vec<PledgePlan>, PledgeId)>, StoreError> {
    let campaign = planner.campaign;
    let pledges = store.active_pledges(&campaign.id, after, PAGE).await?;
    let Some(last) = pledges.last().map(|p| p.id) else {
        return Ok(None);
    };
    let mut plans = Vec::with_capacity(pledges.len());
    for chunk in pledges.chunks(YIELD_EVERY) {
        for p in chunk {
            match planner.plan(p, now) {
                Ok(plan) => plans.push(plan),
                // One bad pledge (a campaign edit removed its days) must not stop the rest.
                Err(e) => {
                    tracing::warn!(pledge = %p.id, campaign = %campaign.id, error = %e, "pledge not planned")
                }
            }
        }
        tokio::task::yield_now().await;
    }
    Ok(Some((plans, last)))
}
