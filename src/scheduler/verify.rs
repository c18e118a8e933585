//! Checking that accounts can still post, before it matters: when a participant joins, and
//! the day before a strike starts. A credential that stopped working (a revoked token, a
//! changed app password) marks the account "reconnect needed" so the participant hears of
//! it while there is time to fix it, instead of on strike day.
//!
//! Each account is checked on its own ([`super::isolate_async`]): an account that cannot be
//! read, or a check that fails in any way, is logged and skipped, and the others are
//! still checked.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

use crate::campaign::Campaign;
use crate::crypto::{CryptoError, Vault};
use crate::domain::Secret;
use crate::network::{AccountRef, Networks, PublishError};
use crate::store::{Account, AccountId, AccountRoute, AccountStatus, PledgeId, Store, StoreError};

/// What a verification round found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub ok: usize,
    /// Accounts now marked "reconnect needed".
    pub broken: usize,
    /// Accounts that could not be checked now (network down): left as they were.
    pub unknown: usize,
}

/// Why an account's stored credentials cannot be handed to its adapter.
#[derive(Debug, thiserror::Error)]
pub enum Unopened {
    /// Sealed with another key or for another row, or altered.
    #[error(transparent)]
    Sealed(#[from] CryptoError),
    #[error("stored credentials are not text")]
    NotText,
}

/// The account as an adapter sees it, credentials opened.
pub fn account_ref(vault: &Vault, account: &Account) -> Result<AccountRef, Unopened> {
    let plain = vault.open_for(account.id.0, &account.credentials)?;
    Ok(AccountRef {
        id: account.id.0,
        handle: account.handle.to_string(),
        server: account.server.clone().unwrap_or_default(),
        credentials: Secret::new(String::from_utf8(plain).map_err(|_| Unopened::NotText)?),
        trusted: account.trusted,
    })
}

/// Verify `accounts`, marking the ones whose credentials the network refuses. An account
/// whose check fails in any other way (a database error, a bug) is logged, counted as
/// unknown, and the rest are checked.
pub async fn verify_accounts(
    store: &dyn Store,
    networks: &Networks,
    vault: &Vault,
    accounts: &[AccountId],
    now: DateTime<Utc>,
) -> Result<Verified, StoreError> {
    verify_accounts_until(store, networks, vault, accounts, now, None).await
}

/// [`verify_accounts`], and an account whose grant ends before `needed_until` (a
/// campaign's strike: Threads' 60-day tokens, renewed while posting, can still run out)
/// is marked "reconnect needed" too, with the day it ends.
pub async fn verify_accounts_until(
    store: &dyn Store,
    networks: &Networks,
    vault: &Vault,
    accounts: &[AccountId],
    now: DateTime<Utc>,
    needed_until: Option<DateTime<Utc>>,
) -> Result<Verified, StoreError> {
    let mut v = Verified::default();
    for &id in accounts {
        let checked =
            super::isolate_async(verify_one(store, networks, vault, id, now, needed_until))
                .await
                .unwrap_or_else(|panic| Err(Problem::Bug(panic.into_message())));
        match checked {
            Ok(Some(Checked::Ok)) => v.ok += 1,
            Ok(Some(Checked::Broken)) => v.broken += 1,
            Ok(Some(Checked::Unknown)) => v.unknown += 1,
            Ok(None) => {}
            Err(e) => {
                tracing::error!(account = %id, error = %e, "account not verified; skipped");
                v.unknown += 1;
            }
        }
    }
    Ok(v)
}

enum Checked {
    Ok,
    Broken,
    Unknown,
}

/// Why one account's check could not be made.
#[derive(Debug, thiserror::Error)]
enum Problem {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Bug(String),
}

/// Check one account; `None` when there is nothing to check (gone, or not active).
async fn verify_one(
    store: &dyn Store,
    networks: &Networks,
    vault: &Vault,
    id: AccountId,
    now: DateTime<Utc>,
    needed_until: Option<DateTime<Utc>>,
) -> Result<Option<Checked>, Problem> {
    let Some(account) = store.get_account(id).await? else {
        return Ok(None);
    };
    // A tap-to-post account holds no credentials: there is nothing to check, and an
    // adapter of its network (an official API) must never judge its empty ones.
    if account.status != AccountStatus::Active || account.route == AccountRoute::Tap {
        return Ok(None);
    }
    let Some(network) = networks.get(account.network) else {
        return Ok(Some(Checked::Unknown));
    };
    let answer = match account_ref(vault, &account) {
        Ok(r) => network.verify(&r).await,
        Err(e) => Err(PublishError::reconnect(e.to_string())),
    };
    Ok(Some(match answer {
        Ok(_) => match needed_until {
            Some(until) => check_grant(store, vault, id, now, until).await?,
            None => Checked::Ok,
        },
        // Only the summary (picket's words) is stored: the account's status is shown to
        // the participant. What the network said goes to the log.
        Err(PublishError::Reconnect(reason)) => {
            tracing::warn!(account = %id, network = %account.network, reason = reason.summary(), detail = reason.detail(), "account needs reconnecting");
            store
                .set_account_status(
                    id,
                    AccountStatus::ReconnectNeeded,
                    Some(reason.summary()),
                    now,
                )
                .await?;
            Checked::Broken
        }
        Err(e) => {
            tracing::info!(account = %id, error = %e, detail = e.reason().detail(), "account could not be verified now");
            Checked::Unknown
        }
    }))
}

/// After a successful check (which may have renewed the grant and saved it): whether the
/// account's grant lasts until `until`; if not, it is marked "reconnect needed" now, while
/// there is time, rather than failing on strike day.
async fn check_grant(
    store: &dyn Store,
    vault: &Vault,
    id: AccountId,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Checked, Problem> {
    let Some(account) = store.get_account(id).await? else {
        return Ok(Checked::Ok);
    };
    let Some(ends) = crate::participation::connect::grant_ends(vault, &account) else {
        return Ok(Checked::Ok);
    };
    if ends >= until {
        return Ok(Checked::Ok);
    }
    let reason = format!(
        "picket's access to this {} account ends on {}, before the strike: reconnect it",
        account.network.label(),
        ends.format("%Y-%m-%d")
    );
    tracing::warn!(account = %id, network = %account.network, "the account's grant ends before the strike");
    store
        .set_account_status(id, AccountStatus::ReconnectNeeded, Some(&reason), now)
        .await?;
    Ok(Checked::Broken)
}

/// The accounts pledged to `campaign` whose strike starts within `ahead` of `now`: the
/// day-before check.
pub async fn accounts_striking_soon(
    store: &dyn Store,
    campaign: &Campaign,
    now: DateTime<Utc>,
    ahead: Duration,
) -> Result<Vec<AccountId>, StoreError> {
    let start = campaign.strike.earliest_start();
    if start < now || start - now > ahead {
        return Ok(Vec::new());
    }
    let mut seen = HashSet::new();
    let mut after: Option<PledgeId> = None;
    loop {
        let page = store.active_pledges(&campaign.id, after, 1000).await?;
        let Some(last) = page.last_id() else { break };
        after = Some(last);
        // An unreadable pledge is reported by the planner, which tries it every round.
        for p in &page.pledges {
            seen.extend(p.account_ids.iter().copied());
        }
    }
    let mut ids: Vec<_> = seen.into_iter().collect();
    ids.sort();
    Ok(ids)
}

/// Every few hours, check the credentials of accounts whose strike starts within a day and
/// a half, so broken ones are reported while there is time to reconnect them. Runs until
/// `stop`; a failed round is logged and the next one comes.
pub async fn run(
    store: &dyn Store,
    networks: &Networks,
    vault: &Vault,
    campaigns: &[Campaign],
    clock: &dyn crate::clock::Clock,
    stop: tokio_util::sync::CancellationToken,
) -> anyhow::Result<()> {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(6 * 3600);
    loop {
        let now = clock.now();
        for c in campaigns {
            let ahead = Duration::hours(36);
            let checked = async {
                let ids = accounts_striking_soon(store, c, now, ahead).await?;
                let strike = Some(c.strike.earliest_start());
                verify_accounts_until(store, networks, vault, &ids, now, strike).await
            };
            match super::isolate_async(checked).await {
                Ok(Ok(v)) if v.ok + v.broken + v.unknown > 0 => {
                    tracing::info!(campaign = %c.id, ok = v.ok, broken = v.broken, unknown = v.unknown, "accounts verified before the strike")
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!(campaign = %c.id, error = %e, "verifying accounts failed")
                }
                Err(panic) => {
                    tracing::error!(campaign = %c.id, error = %panic, "verifying accounts failed")
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
