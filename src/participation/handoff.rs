//! Choosing hand-off at join time (`picket join --hand-off`, the join page's checkbox):
//! which of a participant's accounts can give their posts to their server's own
//! scheduler, checked against what the server says it runs, and recalling handed-off posts
//! when a pledge stops (withdrawal, "delete my data", removing an account).

use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};

use super::ParticipationError;
use crate::crypto::Vault;
use crate::domain::NetworkKind;
use crate::network::Networks;
use crate::scheduler;
use crate::store::{AccountId, AccountRoute, ParticipantId, Store};

pub use crate::scheduler::dispatcher::handoff::Recalled;

/// What choosing hand-off did for one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandOffChoice {
    /// Its server schedules: its posts at least 6 minutes ahead are handed off. The
    /// server's software as it says ("mastodon 4.3.1").
    On {
        account: AccountId,
        software: String,
    },
    /// Not handed off, and why (another network, a server that does not schedule, a
    /// server that did not answer); picket sends its posts itself.
    Off { account: AccountId, why: String },
}

/// Turn hand-off on for those of `accounts` (the participant's own) whose server
/// schedules posts, asking each server what it runs.
pub async fn choose_hand_off(
    store: &dyn Store,
    networks: &Networks,
    vault: &Vault,
    participant: ParticipantId,
    accounts: &[AccountId],
    now: DateTime<Utc>,
) -> Result<Vec<HandOffChoice>, ParticipationError> {
    let mine = store.list_accounts(participant).await?;
    let mut out = Vec::new();
    for id in accounts {
        let Some(acc) = mine.iter().find(|a| a.id == *id) else {
            continue;
        };
        let off = |why: String| HandOffChoice::Off { account: *id, why };
        if acc.network != NetworkKind::Mastodon || acc.route != AccountRoute::Api {
            out.push(off(format!(
                "{} has no server scheduler picket can hand posts to",
                acc.network.label()
            )));
            continue;
        }
        let Some(scheduler) = networks.get(acc.network).and_then(|n| n.scheduler()) else {
            out.push(off("this picket has no Mastodon adapter".into()));
            continue;
        };
        let account = match scheduler::verify::account_ref(vault, acc) {
            Ok(a) => a,
            Err(e) => {
                out.push(off(e.to_string()));
                continue;
            }
        };
        let software = match scheduler.software(&account).await {
            Ok(s) => s,
            Err(e) => {
                out.push(off(format!(
                    "the server did not say what it runs ({})",
                    e.reason().summary()
                )));
                continue;
            }
        };
        match software.schedules() {
            Ok(()) => {
                store.set_hand_off(*id, true, now).await?;
                out.push(HandOffChoice::On {
                    account: *id,
                    software: software.label(),
                });
            }
            Err(why) => out.push(off(why)),
        }
    }
    Ok(out)
}

/// Delete the participant's handed-off posts that no longer may go out (their pledge
/// withdrawn) from the servers' schedules; with `account` and `all`, every one of that
/// account (it is being removed). See [`scheduler::dispatcher::handoff::recall`].
#[allow(clippy::too_many_arguments)]
pub async fn recall_handed_off(
    store: &dyn Store,
    networks: &Networks,
    vault: &Vault,
    participant: ParticipantId,
    account: Option<AccountId>,
    all: bool,
    now: DateTime<Utc>,
    max_wait: StdDuration,
) -> Result<Recalled, ParticipationError> {
    let accounts: Vec<AccountId> = store
        .list_accounts(participant)
        .await?
        .into_iter()
        .map(|a| a.id)
        .filter(|id| account.is_none_or(|a| a == *id))
        .collect();
    if all {
        // No new hand-off may start while the account is on its way out.
        for id in store.hand_off_accounts(&accounts).await? {
            store.set_hand_off(id, false, now).await?;
        }
    }
    Ok(scheduler::dispatcher::handoff::recall(
        store, networks, vault, &accounts, all, now, max_wait,
    )
    .await?)
}
