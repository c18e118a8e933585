//! Leaving: removing an account, deleting the notices already published, and deleting
//! every trace of the participant. Each waits for posts already on the wire, so what it
//! reports is final.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};

use super::{Missing, ParticipationError};
use crate::crypto::Vault;
use crate::network::Networks;
use crate::scheduler::{self, Stopped};
use crate::store::{Account, AccountId, AccountStatus, OutboxState, ParticipantId, Store};

/// What [`remove_account`] did.
#[derive(Debug)]
pub struct Removed {
    /// The account as it was before removal.
    pub account: Account,
    pub stopped: Stopped,
}

/// Remove one of `participant`'s accounts: its credentials are erased, it leaves every
/// pledge, its unsent posts are cancelled, and this returns only once none of its posts
/// already on the wire can still go out (guarantee 4; at most `max_wait`, see
/// [`super::max_wait`]).
pub async fn remove_account(
    store: &dyn Store,
    participant: ParticipantId,
    id: AccountId,
    now: DateTime<Utc>,
    max_wait: StdDuration,
) -> Result<Removed, ParticipationError> {
    let account = match store.get_account(id).await? {
        Some(a) if a.participant_id == participant && a.status != AccountStatus::Removed => a,
        _ => return Err(ParticipationError::NotFound(Missing::Account(id))),
    };
    let w = store.remove_account(id, now).await?;
    let stopped = scheduler::settle(store, w, max_wait).await?;
    Ok(Removed { account, stopped })
}

/// What [`delete_published`] did.
#[derive(Debug, Default)]
pub struct Deleted {
    pub deleted: usize,
    /// (link or remote id, why) of each notice that could not be deleted.
    pub failed: Vec<(String, String)>,
}

/// Delete the participant's published notices (of one campaign, or all; of one account,
/// or all) from the networks, one by one; a failure is reported and the rest go on.
pub async fn delete_published(
    store: &dyn Store,
    networks: &Networks,
    vault: &Vault,
    participant: ParticipantId,
    campaign_id: Option<&str>,
    account: Option<AccountId>,
) -> Result<Deleted, ParticipationError> {
    let rows = store.outbox_for(participant, campaign_id).await?;
    let mut report = Deleted::default();
    for row in rows.iter().filter(|r| r.state == OutboxState::Published) {
        if account.is_some_and(|a| a != row.account_id) {
            continue;
        }
        let Some(remote_id) = &row.remote_id else {
            continue;
        };
        let Some(acc) = store.get_account(row.account_id).await? else {
            continue;
        };
        let answer = match (
            networks.get(acc.network),
            scheduler::verify::account_ref(vault, &acc),
        ) {
            (Some(network), Ok(r)) => network
                .delete(&r, remote_id)
                .await
                .map_err(|e| e.to_string()),
            (None, _) => Err(format!("no adapter for {}", acc.network)),
            (_, Err(e)) => Err(e.to_string()),
        };
        match answer {
            Ok(()) => report.deleted += 1,
            Err(e) => report.failed.push((
                row.remote_url.clone().unwrap_or_else(|| remote_id.clone()),
                e,
            )),
        }
    }
    Ok(report)
}

/// What [`delete_everything`] did.
#[derive(Debug, Default)]
pub struct Erased {
    /// Posts that will never be sent, and those that were on the wire and went out.
    pub stopped: Stopped,
    /// The published notices deleted from the networks, when that was asked for.
    pub published: Option<Deleted>,
    /// Handed-off posts deleted from the servers' schedules.
    pub recalled: super::Recalled,
}

/// "Delete all my data": stop every pledge (waiting for posts on the wire, so nothing is
/// on its way when the rows go), delete the published notices from the networks if
/// `delete_posts`, then delete the participant with their accounts, credentials, pledges
/// and posts. Signatures stay (they hold no link to the participant).
pub async fn delete_everything(
    store: &dyn Store,
    networks: &Networks,
    vault: &Vault,
    participant: ParticipantId,
    delete_posts: bool,
    now: DateTime<Utc>,
    max_wait: StdDuration,
) -> Result<Erased, ParticipationError> {
    if store.get_participant(participant).await?.is_none() {
        return Err(ParticipationError::NotFound(Missing::Participant));
    }
    let mut erased = Erased::default();
    for p in store.pledges_of(participant).await? {
        let w = store
            .withdraw(participant, &p.campaign_id, None, now)
            .await?;
        let stopped = scheduler::settle(store, w, max_wait).await?;
        super::add_stopped(&mut erased.stopped, stopped);
    }
    // Handed-off posts are on the servers' schedules: delete them there while the
    // credentials still exist.
    let recalled = scheduler::dispatcher::handoff::recall(
        store,
        networks,
        vault,
        &store
            .list_accounts(participant)
            .await?
            .iter()
            .map(|a| a.id)
            .collect::<Vec<_>>(),
        false,
        now,
        max_wait,
    )
    .await?;
    erased.recalled = recalled;
    if delete_posts {
        erased.published =
            Some(delete_published(store, networks, vault, participant, None, None).await?);
    }
    // The pledges are withdrawn, so no post of theirs can have been claimed since.
    let w = store.delete_participant(participant).await?;
    erased.stopped.cancelled += w.cancelled;
    Ok(erased)
}
