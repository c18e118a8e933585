//! Pledging, changing a pledge and withdrawing it. A pledge is planned the moment it is
//! made (a participant sees what will be posted at once), and every stop returns only
//! once nothing of what it stopped can still go out.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};

use super::{Missing, ParticipationError};
use crate::campaign::{Campaign, Participation};
use crate::scheduler::{self, Stopped, planner};
use crate::store::{Account, AccountId, NewPledge, ParticipantId, PledgeId, PledgeStatus, Store};

/// What [`pledge`] did.
#[derive(Debug, Clone)]
pub struct Pledged {
    pub pledge: PledgeId,
    /// Posts planned (one per slot and account).
    pub planned: usize,
    /// How many accounts post for it (each named once).
    pub accounts: usize,
    /// Accounts that post for this campaign now and did not before (all of them on a
    /// first pledge, or after a withdrawal).
    pub added: Vec<Account>,
    /// Accounts that posted for this campaign before and no longer do.
    pub stopped: Vec<Account>,
    /// The stopped accounts' posts: cancelled, or already on the wire and waited for.
    pub stopped_posts: Stopped,
}

/// Pledge `accounts` of `participant` to `campaign` with choices `p`, and plan the posts
/// now: a participant sees what will be posted the moment they confirm, without waiting
/// for the planner's next round. Joining again replaces the earlier choices and accounts;
/// an account left out is withdrawn first, and this returns only once none of its posts
/// can still go out (at most `max_wait`).
#[allow(clippy::too_many_arguments)]
pub async fn pledge(
    store: &dyn Store,
    campaign: &Campaign,
    participant: ParticipantId,
    p: &Participation,
    accounts: &[AccountId],
    jitter: chrono::Duration,
    now: DateTime<Utc>,
    max_wait: StdDuration,
) -> Result<Pledged, ParticipationError> {
    // Checked before anything is stored: a pledge the planner cannot plan must not exist.
    campaign
        .check_participation(p)
        .map_err(|e| ParticipationError::Invalid(e.to_string()))?;
    let mut chosen: Vec<AccountId> = Vec::new();
    for id in accounts {
        if !chosen.contains(id) {
            chosen.push(*id);
        }
    }
    if chosen.is_empty() {
        return Err(ParticipationError::NoAccounts);
    }
    let mine = store.list_accounts(participant).await?;
    let account = |id: AccountId| mine.iter().find(|a| a.id == id);
    if let Some(id) = chosen.iter().find(|id| account(**id).is_none()) {
        return Err(ParticipationError::NotFound(Missing::Account(*id)));
    }
    let before: Vec<AccountId> = store
        .pledges_of(participant)
        .await?
        .into_iter()
        .find(|pl| pl.campaign_id == campaign.id && pl.status == PledgeStatus::Active)
        .map(|pl| pl.account_ids)
        .unwrap_or_default();
    let dropped: Vec<AccountId> = before
        .iter()
        .copied()
        .filter(|id| !chosen.contains(id))
        .collect();
    // Leaving an account out stops it like withdrawing it would: its unsent posts are
    // cancelled and those on the wire waited for, before anything new is planned.
    let mut stopped_posts = Stopped::default();
    for id in &dropped {
        let w = store
            .withdraw(participant, &campaign.id, Some(*id), now)
            .await?;
        let s = scheduler::settle(store, w, max_wait).await?;
        super::add_stopped(&mut stopped_posts, s);
    }
    let pledge_id = store
        .upsert_pledge(&new_pledge(participant, campaign, p, chosen.clone()), now)
        .await?;
    let pledge = store.get_pledge(pledge_id).await?.ok_or_else(|| {
        ParticipationError::Conflict("the pledge was deleted while it was being made".into())
    })?;
    let plan = planner::Planner::new(campaign, jitter)
        .plan(&pledge, now)
        .map_err(|e| ParticipationError::Invalid(e.to_string()))?;
    let planned = plan.rows.len();
    store.apply_plans(&[plan], now).await?;
    let known = |ids: Vec<AccountId>| -> Vec<Account> {
        ids.into_iter()
            .filter_map(|id| mine.iter().find(|a| a.id == id).cloned())
            .collect()
    };
    Ok(Pledged {
        pledge: pledge_id,
        planned,
        accounts: chosen.len(),
        added: known(
            chosen
                .iter()
                .copied()
                .filter(|id| !before.contains(id))
                .collect(),
        ),
        stopped: known(dropped),
        stopped_posts,
    })
}

/// Withdraw `participant`'s pledge to `campaign_id` (or, with `account`, only that account
/// from it) and return only once no further post of it can be published: posts not yet
/// sending are cancelled in one transaction, and posts already on the wire are waited for
/// (at most `max_wait`, normally the lease; see [`super::max_wait`]).
pub async fn withdraw(
    store: &dyn Store,
    participant: ParticipantId,
    campaign_id: &str,
    account: Option<AccountId>,
    now: DateTime<Utc>,
    max_wait: StdDuration,
) -> Result<Stopped, ParticipationError> {
    if !store
        .pledges_of(participant)
        .await?
        .iter()
        .any(|p| p.campaign_id == campaign_id)
    {
        return Err(ParticipationError::NotFound(Missing::Pledge(
            campaign_id.to_string(),
        )));
    }
    if let Some(id) = account
        && !store
            .list_accounts(participant)
            .await?
            .iter()
            .any(|a| a.id == id)
    {
        return Err(ParticipationError::NotFound(Missing::Account(id)));
    }
    let w = store
        .withdraw(participant, campaign_id, account, now)
        .await?;
    Ok(scheduler::settle(store, w, max_wait).await?)
}

/// The pledge `participant` makes to `campaign` with these choices and accounts, as the
/// store takes it.
pub fn new_pledge(
    participant: ParticipantId,
    campaign: &Campaign,
    p: &Participation,
    account_ids: Vec<AccountId>,
) -> NewPledge {
    NewPledge {
        participant_id: participant,
        campaign_id: campaign.id.clone(),
        tz: p.tz,
        days: p.days.clone(),
        every_secs: p.every.map(|d| d.num_seconds()),
        account_ids,
    }
}
