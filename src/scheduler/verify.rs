//! Checking that accounts can still post, before it matters: when a participant joins, and
//! the day before a strike starts. A credential that stopped working (a revoked token, a
//! changed app password) marks the account "reconnect needed" so the participant hears of
//! it while there is time to fix it, instead of on strike day.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

use crate::campaign::Campaign;
use crate::config::Secret;
use crate::crypto::Vault;
use crate::network::{AccountRef, Networks, PublishError};
use crate::store::{Account, AccountId, AccountStatus, PledgeId, Store, StoreError};

/// What a verification round found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub ok: usize,
    /// Accounts now marked "reconnect needed".
    pub broken: usize,
    /// Accounts that could not be checked now (network down): left as they were.
    pub unknown: usize,
}

/// The account as an adapter sees it, credentials opened.
pub fn account_ref(vault: &Vault, account: &Account) -> Result<AccountRef, String> {
    let plain = vault
        .open_for(account.id.0, &account.credentials)
        .map_err(|e| e.to_string())?;
    Ok(AccountRef {
        id: account.id.0,
        handle: account.handle.clone(),
        server: account.server.clone().unwrap_or_default(),
        credentials: Secret::new(
            String::from_utf8(plain).map_err(|_| "stored credentials are not text".to_string())?,
        ),
        trusted: account.trusted,
    })
}

/// Verify `accounts`, marking the ones whose credentials the network refuses.
pub async fn verify_accounts(
    store: &dyn Store,
    networks: &Networks,
    vault: &Vault,
    accounts: &[AccountId],
    now: DateTime<Utc>,
) -> Result<Verified, StoreError> {
    let mut v = Verified::default();
    for &id in accounts {
        let Some(account) = store.get_account(id).await? else {
            continue;
        };
        if account.status != AccountStatus::Active {
            continue;
        }
        let Some(network) = networks.get(account.network) else {
            v.unknown += 1;
            continue;
        };
        let answer = match account_ref(vault, &account) {
            Ok(r) => network.verify(&r).await,
            Err(e) => Err(PublishError::Reconnect(e)),
        };
        match answer {
            Ok(_) => v.ok += 1,
            Err(PublishError::Reconnect(reason)) => {
                tracing::warn!(account = %id, network = %account.network, %reason, "account needs reconnecting");
                store
                    .set_account_status(id, AccountStatus::ReconnectNeeded, Some(&reason), now)
                    .await?;
                v.broken += 1;
            }
            Err(e) => {
                tracing::info!(account = %id, error = %e, "account could not be verified now");
                v.unknown += 1;
            }
        }
    }
    Ok(v)
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
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for p in &page {
            seen.extend(p.account_ids.iter().copied());
        }
    }
    let mut ids: Vec<_> = seen.into_iter().collect();
    ids.sort();
    Ok(ids)
}
