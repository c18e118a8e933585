//! Hand-off to a Mastodon-API server's own scheduler, for accounts whose participant chose
//! it (`picket join --hand-off`, the join page's checkbox): each post is created ahead of
//! time as a scheduled status, so the server publishes it at its instant even if picket
//! is down then.
//!
//! ```text
//! Dispatcher::step ─> hand_off_round (at most every HAND_OFF_EVERY)
//!   ├─ follow_up: handed_off rows due (read back: published, with its link) or stopped
//!   │             (withdrawn, removed, cancelled: deleted from the server's schedule)
//!   ├─ plan:      pending rows ≥ 6 min ahead, within 25 a UTC day and 300 in all
//!   ├─ claim_hand_off: pending → handing_off (a lease), and handing_off rows whose lease
//!   │             ran out (an attempt whose answer was lost)
//!   └─ hand each over: reconcile first if taken over (GET /api/v1/scheduled_statuses),
//!                 then POST with `scheduled_at` → handed_off | back to pending
//! ```
//!
//! What is not handed off (too close, over the server's limits, refused by it, a server
//! that does not schedule) stays `pending` and the dispatcher sends it when it is due, as
//! for any account. [`plan`] is the one rule, used by the join preview too.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, Utc};

use super::Dispatcher;
use crate::crypto::Vault;
use crate::network::mastodon::schedule::{
    DAILY_LIMIT, HAND_OFF_LEAD, HandedTo, ServerScheduler, TOTAL_LIMIT, is_ours,
};
use crate::network::{AccountRef, Networks, OutgoingPost, PublishError};
use crate::store::{
    AccountId, ClaimedPost, HandOffOutcome, HandOffRow, HandedOff, OutboxId, OutboxState, Store,
    StoreError,
};

/// How often the dispatcher looks for posts to hand off and handed-off posts to follow up
/// (real time): each look is a few queries, and a server's scheduler needs no faster.
const HAND_OFF_EVERY: StdDuration = StdDuration::from_secs(5);

/// Which of one account's future posts to hand to its server now, by the server's rules:
/// only what is at least [`HAND_OFF_LEAD`] after `now`; at most [`DAILY_LIMIT`] a UTC day
/// of their instant and [`TOTAL_LIMIT`] in all, counting `held` (instants already with
/// the server; those past `now` are published and no longer count). `candidates` are in
/// time order; the answer says, for each, whether it is handed off. The rest are sent by
/// picket itself when they are due (or handed off later, once room frees up).
pub fn plan(held: &[DateTime<Utc>], candidates: &[DateTime<Utc>], now: DateTime<Utc>) -> Vec<bool> {
    let mut per_day: BTreeMap<NaiveDate, usize> = BTreeMap::new();
    let mut total = 0;
    for at in held.iter().filter(|at| **at > now) {
        *per_day.entry(at.date_naive()).or_default() += 1;
        total += 1;
    }
    let earliest = now + HAND_OFF_LEAD;
    candidates
        .iter()
        .map(|at| {
            if *at < earliest || total >= TOTAL_LIMIT {
                return false;
            }
            let day = per_day.entry(at.date_naive()).or_default();
            if *day >= DAILY_LIMIT {
                return false;
            }
            *day += 1;
            total += 1;
            true
        })
        .collect()
}

/// The rows to hand off now, account by account, by [`plan`].
fn choose(rows: &[HandOffRow], now: DateTime<Utc>) -> Vec<OutboxId> {
    let mut by_account: BTreeMap<AccountId, Vec<&HandOffRow>> = BTreeMap::new();
    for r in rows {
        by_account.entry(r.account_id).or_default().push(r);
    }
    let mut out = Vec::new();
    for rows in by_account.values() {
        let held: Vec<_> = rows
            .iter()
            .filter(|r| matches!(r.state, OutboxState::HandingOff | OutboxState::HandedOff))
            .map(|r| r.run_at)
            .collect();
        let mut pending: Vec<_> = rows
            .iter()
            .filter(|r| r.state == OutboxState::Pending)
            .collect();
        pending.sort_by_key(|r| (r.run_at, r.id));
        let instants: Vec<_> = pending.iter().map(|r| r.run_at).collect();
        for (r, go) in pending.iter().zip(plan(&held, &instants, now)) {
            if go {
                out.push(r.id);
            }
        }
    }
    out
}

/// The adapter's scheduler and the account, opened; `Err` says why not.
fn open_scheduler<'n>(
    networks: &'n Networks,
    vault: &Vault,
    row: &HandedOff,
) -> Result<(&'n dyn ServerScheduler, AccountRef), String> {
    let network = networks
        .get(row.network)
        .ok_or_else(|| format!("this picket has no adapter for {}", row.network))?;
    let scheduler = network
        .scheduler()
        .ok_or_else(|| format!("{} has no scheduler to hand posts to", row.network))?;
    let plain = vault
        .open_for(row.account_id.0, &row.credentials)
        .map_err(|e| e.to_string())?;
    let account = AccountRef {
        id: row.account_id.0,
        handle: row.handle.to_string(),
        server: row.server.clone().unwrap_or_default(),
        credentials: crate::domain::Secret::new(
            String::from_utf8(plain).map_err(|_| "stored credentials are not valid text")?,
        ),
        trusted: row.trusted,
    };
    Ok((scheduler, account))
}

/// What [`recall`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recalled {
    /// Scheduled statuses deleted from the servers.
    pub deleted: usize,
    /// Why each one that could not be deleted still stands (picket tries again; the
    /// participant can delete it on the server meanwhile).
    pub failed: Vec<String>,
}

/// Delete handed-off posts from their servers' schedules: of `accounts`, those withdrawn
/// (cancelled with their scheduled status still on the server) or no longer eligible, or,
/// with `all`, every one (an account being removed, before its credentials go). Waits first (at most `max_wait`) for
/// posts being handed over right now, so none slips through. Withdrawal and "delete my
/// data" call this so that, when they return, no handed-off post is left to go out; the
/// dispatcher's follow-up retries what failed here.
pub async fn recall(
    store: &dyn Store,
    networks: &Networks,
    vault: &Vault,
    accounts: &[AccountId],
    all: bool,
    now: DateTime<Utc>,
    max_wait: StdDuration,
) -> Result<Recalled, StoreError> {
    let mut report = Recalled::default();
    let deadline = tokio::time::Instant::now() + max_wait;
    for account in accounts {
        while !store.handing_off(Some(*account)).await?.is_empty()
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(StdDuration::from_millis(50)).await;
        }
        let rows: Vec<HandedOff> = store
            .handed_off(now, Some(*account))
            .await?
            .into_iter()
            .filter(|r| all || !r.eligible)
            .collect();
        let mut outcomes = Vec::new();
        for row in rows {
            let answer = match open_scheduler(networks, vault, &row) {
                Ok((scheduler, acc)) => scheduler
                    .unschedule(&acc, &row.scheduled_id)
                    .await
                    .map_err(|e| e.reason().summary().to_string()),
                Err(e) => Err(e),
            };
            match answer {
                Ok(()) => {
                    report.deleted += 1;
                    outcomes.push(HandOffOutcome::Recalled { id: row.id });
                }
                Err(e) => report.failed.push(e),
            }
        }
        store.record_hand_off(&outcomes, now).await?;
    }
    Ok(report)
}

impl Dispatcher {
    /// Whether a hand-off round is due (see [`HAND_OFF_EVERY`]).
    fn hand_off_due(&self) -> bool {
        let mut last = crate::sync::lock(&self.last_hand_off);
        let now = std::time::Instant::now();
        let due = last.is_none_or(|at| now.duration_since(at) >= HAND_OFF_EVERY);
        if due {
            *last = Some(now);
        }
        due
    }

    /// One hand-off round, if one is due: follow up what the servers hold, then hand over
    /// what may go to them now. A failure is logged: direct sending goes on regardless.
    pub(super) async fn hand_off_round(&self) {
        if !self.hand_off_due() {
            return;
        }
        if let Err(e) = self.follow_up().await {
            tracing::error!(error = %e, "following up handed-off posts failed");
        }
        if let Err(e) = self.hand_off().await {
            tracing::error!(error = %e, "handing posts off failed");
        }
    }

    /// Handed-off posts whose time came (published? with what link?) and those whose
    /// pledge, account or campaign stopped (deleted from the schedule).
    async fn follow_up(&self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let rows = self.store.handed_off(now, None).await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut by_account: BTreeMap<AccountId, Vec<HandedOff>> = BTreeMap::new();
        for r in rows {
            by_account.entry(r.account_id).or_default().push(r);
        }
        let mut outcomes = Vec::new();
        for rows in by_account.values() {
            let (scheduler, account) = match open_scheduler(&self.networks, &self.vault, &rows[0]) {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(account = rows[0].account_id.0, error = %e, "handed-off posts cannot be followed up");
                    continue;
                }
            };
            let listed = match scheduler.scheduled(&account).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(account = account.id, error = %e.for_operator(), "the server's schedule could not be read");
                    continue;
                }
            };
            for row in rows {
                match self
                    .follow_one(scheduler, &account, &listed, row, now)
                    .await
                {
                    Ok(Some(o)) => outcomes.push(o),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(job = %row.id, error = %e.for_operator(), "a handed-off post could not be followed up");
                    }
                }
            }
        }
        self.store
            .record_hand_off(&outcomes, self.clock.now())
            .await
    }

    async fn follow_one(
        &self,
        scheduler: &dyn ServerScheduler,
        account: &AccountRef,
        listed: &[crate::network::mastodon::schedule::Scheduled],
        row: &HandedOff,
        now: DateTime<Utc>,
    ) -> Result<Option<HandOffOutcome>, PublishError> {
        let still_scheduled = listed.iter().any(|s| s.id == row.scheduled_id);
        let closed = row
            .window_end
            .checked_add_signed(self.grace())
            .is_some_and(|c| c < now);
        if !row.eligible {
            if still_scheduled {
                scheduler.unschedule(account, &row.scheduled_id).await?;
            }
            return Ok(Some(HandOffOutcome::Recalled { id: row.id }));
        }
        if still_scheduled {
            if !closed {
                return Ok(None);
            }
            // The server did not publish it in time: it must not go out late.
            scheduler.unschedule(account, &row.scheduled_id).await?;
            return Ok(Some(HandOffOutcome::Ended {
                id: row.id,
                state: OutboxState::Missed,
                reason: "the server had not published the handed-off post when its window \
                         closed; picket deleted it from the server's schedule"
                    .into(),
            }));
        }
        match scheduler
            .find_status(account, &row.text, row.run_at)
            .await?
        {
            Some(receipt) => Ok(Some(HandOffOutcome::Published {
                id: row.id,
                remote_id: receipt.remote_id,
                remote_url: receipt.url,
            })),
            None if closed => Ok(Some(HandOffOutcome::Ended {
                id: row.id,
                state: OutboxState::Missed,
                reason: "handed off, but the post is neither scheduled nor published on the \
                         server (deleted there?)"
                    .into(),
            })),
            // A server's scheduler may take a moment past the instant.
            None => Ok(None),
        }
    }

    /// Hand over what may go to the servers' schedulers now.
    async fn hand_off(&self) -> Result<(), StoreError> {
        let now = self.clock.now();
        let rows = self.store.hand_off_rows(now + HAND_OFF_LEAD).await?;
        let ids = choose(&rows, now);
        let lease_until = now + Duration::seconds(self.settings.lease_secs as i64);
        let claimed = self
            .store
            .claim_hand_off(&self.worker, &ids, now, lease_until)
            .await?;
        if claimed.is_empty() {
            return Ok(());
        }
        let posts: Vec<ClaimedPost> = claimed.iter().map(|(p, _)| p.clone()).collect();
        let elsewhere = self.elsewhere(&posts).await?;
        let mut outcomes = Vec::new();
        for (post, reclaimed) in claimed {
            if let Some(o) = self.hand_one(&post, reclaimed, &elsewhere, now).await {
                outcomes.push(o);
            }
        }
        self.store
            .record_hand_off(&outcomes, self.clock.now())
            .await
    }

    /// Hand one post over. `None` leaves it `handing_off` (an answer lost: its lease runs
    /// out and the next round reconciles it with the server's list).
    async fn hand_one(
        &self,
        post: &ClaimedPost,
        reclaimed: bool,
        elsewhere: &HashMap<crate::store::ParticipantId, Vec<crate::store::Account>>,
        now: DateTime<Utc>,
    ) -> Option<HandOffOutcome> {
        let direct = |refused: bool, reason: String| HandOffOutcome::Direct {
            id: post.id,
            refused,
            reason: Some(reason),
        };
        let ready = match self.prepare(post, elsewhere, now, true) {
            Ok(r) => r,
            // Whatever stops it here stops it at its time too; the dispatcher records
            // that then. Only a pacing wait is worth another hand-off attempt.
            Err(crate::store::Outcome::Retry { error, .. }) => return Some(direct(false, error)),
            Err(_) => {
                return Some(HandOffOutcome::Direct {
                    id: post.id,
                    refused: true,
                    reason: None,
                });
            }
        };
        let Some(scheduler) = ready.network.scheduler() else {
            return Some(direct(
                true,
                format!("{} has no scheduler to hand posts to", post.network),
            ));
        };
        let account = &ready.account;
        let closed = post
            .window_end
            .checked_add_signed(self.grace())
            .is_some_and(|c| c < now);
        if reclaimed {
            // An earlier attempt's answer was lost: the server may hold it already, and
            // not every server keeps the idempotency key for scheduled statuses.
            match scheduler.scheduled(account).await {
                Ok(listed) => {
                    if let Some(s) = listed.iter().find(|s| is_ours(s, &ready.text, post.run_at)) {
                        tracing::info!(job = %post.id, "an earlier hand-off reached the server: not sending it again");
                        return Some(HandOffOutcome::HandedOff {
                            id: post.id,
                            scheduled_id: s.id.clone(),
                            text: ready.text.clone(),
                        });
                    }
                }
                Err(e) if closed => {
                    return Some(HandOffOutcome::Ended {
                        id: post.id,
                        state: OutboxState::Missed,
                        reason: format!(
                            "window closed; whether the server holds the handed-off post is unknown ({})",
                            e.reason().summary()
                        ),
                    });
                }
                Err(_) => return None,
            }
            if post.run_at < now + HAND_OFF_LEAD {
                // Too close to hand over again: it may have been published already.
                return match scheduler
                    .find_status(account, &ready.text, post.run_at)
                    .await
                {
                    Ok(Some(r)) => Some(HandOffOutcome::Published {
                        id: post.id,
                        remote_id: r.remote_id,
                        remote_url: r.url,
                    }),
                    Ok(None) => Some(direct(
                        false,
                        "handed to picket again: too close to hand off".into(),
                    )),
                    Err(_) if !closed => None,
                    Err(e) => Some(HandOffOutcome::Ended {
                        id: post.id,
                        state: OutboxState::Missed,
                        reason: format!(
                            "window closed; outcome unknown ({})",
                            e.reason().summary()
                        ),
                    }),
                };
            }
        }
        let image = self
            .card_for(post, ready.network.as_ref(), &ready.text)
            .await;
        let outgoing = OutgoingPost {
            text: ready.text.clone(),
            // Not the direct send's key: a server keeping keys would answer the direct
            // send of the same row (should the hand-off be undone) with this scheduled one.
            idempotency_key: format!("{}-hand-off", post.idempotency_key),
            scheduled_at: post.run_at,
            slot_key: post.slot_key.clone(),
            outcome_unknown: reclaimed,
            timeout: StdDuration::from_secs(self.settings.request_timeout_secs),
            image,
        };
        match scheduler.schedule(account, &outgoing, post.run_at).await {
            Ok(HandedTo::Scheduled(id)) => Some(HandOffOutcome::HandedOff {
                id: post.id,
                scheduled_id: id,
                text: ready.text,
            }),
            Ok(HandedTo::Published(r)) => Some(HandOffOutcome::Published {
                id: post.id,
                remote_id: r.remote_id,
                remote_url: r.url,
            }),
            Err(PublishError::Retry {
                maybe_sent: true,
                reason,
                ..
            }) => {
                tracing::warn!(job = %post.id, reason = reason.summary(), detail = reason.detail(), "the hand-off's answer was lost: reconciling when its lease runs out");
                None
            }
            Err(e @ PublishError::Retry { .. }) => {
                Some(direct(false, e.reason().summary().to_string()))
            }
            Err(e) => {
                tracing::warn!(job = %post.id, reason = e.reason().summary(), detail = e.reason().detail(), "the server refused to schedule the post: picket sends it itself");
                Some(direct(
                    true,
                    format!(
                        "the server refused to schedule it ({}): picket sends it itself",
                        e.reason().summary()
                    ),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn only_posts_at_least_six_minutes_ahead_are_handed_off() {
        let now = at("2027-07-04T12:00:00Z");
        let candidates = [
            at("2027-07-04T12:04:59Z"),
            at("2027-07-04T12:05:30Z"),
            at("2027-07-04T12:05:59Z"),
            at("2027-07-04T12:06:00Z"),
            at("2027-07-04T13:00:00Z"),
        ];
        assert_eq!(
            plan(&[], &candidates, now),
            vec![false, false, false, true, true]
        );
    }

    #[test]
    fn an_hourly_striker_hands_off_at_most_25_a_utc_day_and_the_rest_go_directly() {
        // Arrange: every 30 minutes for two days: 48 a day, more than the server keeps.
        let now = at("2027-07-03T00:00:00Z");
        let start = at("2027-07-04T00:00:00Z");
        let candidates: Vec<_> = (0..96).map(|i| start + Duration::minutes(30 * i)).collect();

        // Act
        let chosen = plan(&[], &candidates, now);

        // Assert: the first 25 of each UTC day, the others left to picket.
        let day1 = &chosen[..48];
        let day2 = &chosen[48..];
        assert_eq!(day1.iter().filter(|c| **c).count(), 25);
        assert_eq!(day2.iter().filter(|c| **c).count(), 25);
        assert!(day1[..25].iter().all(|c| *c) && day1[25..].iter().all(|c| !*c));
    }

    #[test]
    fn posts_already_with_the_server_count_against_its_day_but_published_ones_do_not() {
        let now = at("2027-07-04T10:00:00Z");
        // 24 still scheduled today, and 10 from earlier today already published.
        let mut held: Vec<_> = (0..24)
            .map(|i| at("2027-07-04T11:00:00Z") + Duration::minutes(i))
            .collect();
        held.extend((0..10).map(|i| at("2027-07-04T01:00:00Z") + Duration::minutes(i)));
        let candidates = [at("2027-07-04T20:00:00Z"), at("2027-07-04T21:00:00Z")];
        assert_eq!(plan(&held, &candidates, now), vec![true, false]);
    }

    #[test]
    fn no_more_than_300_are_held_by_the_server_in_all() {
        let now = at("2027-07-01T00:00:00Z");
        // Twenty a day for twenty days: 400 posts, each day under its limit.
        let candidates: Vec<_> = (0..400)
            .map(|i| at("2027-07-02T00:00:00Z") + Duration::minutes(72 * i))
            .collect();
        let chosen = plan(&[], &candidates, now);
        assert_eq!(chosen.iter().filter(|c| **c).count(), 300);
        // The earliest go first: the later ones wait for room (or go directly).
        assert!(chosen[..300].iter().all(|c| *c));
        let held: Vec<_> = candidates[..299].to_vec();
        assert_eq!(plan(&held, &candidates[299..301], now), vec![true, false]);
    }

    #[test]
    fn rows_are_chosen_per_account() {
        let now = at("2027-07-04T00:00:00Z");
        let mut rows = Vec::new();
        for account in [1, 2] {
            for i in 0..30 {
                rows.push(HandOffRow {
                    id: OutboxId(account * 100 + i),
                    account_id: AccountId(account),
                    run_at: at("2027-07-04T01:00:00Z") + Duration::minutes(i * 10),
                    state: OutboxState::Pending,
                });
            }
        }
        let chosen = choose(&rows, now);
        assert_eq!(chosen.iter().filter(|id| id.0 < 200).count(), 25);
        assert_eq!(chosen.iter().filter(|id| id.0 >= 200).count(), 25);
    }
}
