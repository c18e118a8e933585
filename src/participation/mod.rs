//! What a participant does, shared by the CLI and the web pages: choose how to strike,
//! connect accounts, pledge (the posts are planned at once, so they can be shown), and
//! undo it all: withdraw, remove an account, delete published notices, delete every trace
//! of themself. Also the tokens of magic links and sessions, and re-sealing credentials
//! stored in an older format.
//!
//! The CLI and the web differ only in how they talk to the person; the rules live here
//! once, so a pledge made in a browser is the same as one made on the command line. Each
//! action does its whole job (a stop returns only once no post of what it stopped can
//! still go out) and fails with a [`ParticipationError`] that each front turns into its
//! own answer; neither front changes participants, pledges or accounts in the store
//! itself.
//!
//! - `pledge`: pledging, changing and withdrawing a pledge
//! - `leave`: removing an account, deleting published notices, deleting everything
//! - `connect`: enrolling an account of each network
//! - `handoff`: choosing hand-off to a server's own scheduler, recalling handed-off posts
//! - `tap`: tap-to-post accounts, the address reminders go to, "I posted it"
//! - `error`: the [`ParticipationError`] every action returns

use std::time::Duration as StdDuration;

use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use crate::campaign::{self, Campaign, Participation};
use crate::crypto::Vault;
use crate::domain::Zone;
use crate::scheduler;
use crate::store::{
    AccountId, NewAccount, NewParticipant, ParticipantId, Store, StoreError, canonical_email,
};

pub mod connect;
mod error;
pub mod handoff;
mod leave;
mod pledge;
pub mod push;
pub mod tap;

pub use connect::Connected;
pub use error::{Missing, ParticipationError};
pub use handoff::{HandOffChoice, Recalled, choose_hand_off, recall_handed_off};
pub use leave::{Deleted, Erased, Removed, delete_everything, delete_published, remove_account};
pub use pledge::{Pledged, new_pledge, pledge, withdraw};

/// A participant's choices, read from what they typed. The error says what to change.
pub fn choices(
    campaign: &Campaign,
    tz: &str,
    days: Option<Vec<NaiveDate>>,
    every: Option<&str>,
) -> Result<Participation, ParticipationError> {
    choose(campaign, tz, days, every).map_err(ParticipationError::Invalid)
}

fn choose(
    campaign: &Campaign,
    tz: &str,
    days: Option<Vec<NaiveDate>>,
    every: Option<&str>,
) -> Result<Participation, String> {
    let tz = Zone::parse(tz).map_err(|e| e.to_string())?;
    let every = every
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(campaign::parse_duration)
        .transpose()
        .map_err(|e| format!("cadence: {e}"))?;
    let p = Participation { tz, days, every };
    campaign
        .check_participation(&p)
        .map_err(|e| e.to_string())?;
    Ok(p)
}

/// How long a stop waits for posts already on the wire: a lease, since a worker that died
/// mid-send cannot hold a row longer than that.
pub fn max_wait(lease_secs: u64) -> StdDuration {
    StdDuration::from_secs(lease_secs + 5)
}

/// Add up what two stops did.
fn add_stopped(total: &mut scheduler::Stopped, s: scheduler::Stopped) {
    total.cancelled += s.cancelled;
    total.went_out += s.went_out;
    total.unsettled += s.unsettled;
}

/// A newcomer from the join page becomes a participant, with a personal invitation code;
/// `invited_by` is the code of whoever invited them, if any.
pub async fn sign_up(
    store: &dyn Store,
    name: &str,
    email: Option<&str>,
    tz: Zone,
    invited_by: Option<String>,
    now: DateTime<Utc>,
) -> Result<ParticipantId, ParticipationError> {
    Ok(store
        .create_participant(
            &NewParticipant {
                name: name.to_string(),
                email: email.map(str::to_string),
                email_canonical: email.map(canonical_email),
                tz,
                invited_by,
            },
            now,
        )
        .await?)
}

/// The command line's own participant (one per database): found, or created with `name`
/// and `tz`.
pub async fn local_participant(
    store: &dyn Store,
    name: &str,
    tz: Zone,
    now: DateTime<Utc>,
) -> Result<ParticipantId, ParticipationError> {
    Ok(store.ensure_local_participant(name, tz, now).await?)
}

/// Seal an account's credentials and store it for `participant`.
pub async fn save_account(
    store: &dyn Store,
    vault: &Vault,
    participant: ParticipantId,
    account: &Connected,
    now: DateTime<Utc>,
) -> Result<AccountId, ParticipationError> {
    Ok(store
        .add_account(
            &NewAccount {
                participant_id: participant,
                network: account.network,
                handle: account.handle.clone(),
                server: account.server.clone(),
                trusted: account.trusted,
                route: crate::store::AccountRoute::Api,
            },
            &|id| vault.seal_for(id.0, account.credentials.expose().as_bytes()),
            now,
        )
        .await?)
}

/// Re-seal credentials stored in the legacy format (not bound to their account, see
/// `crypto`) in the current one, page by page. Called when a long-running picket starts;
/// a failure is logged and leaves the old blobs, which still open. A blob that changed
/// meanwhile (a token refresh) is left to that writer, who sealed it in the new format.
pub async fn reseal_legacy_credentials(store: &dyn Store, vault: &Vault, now: DateTime<Utc>) {
    match reseal(store, vault, now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            accounts = n,
            "credentials re-sealed, bound to their accounts"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "re-sealing old credentials stopped; they still open and will be tried again at the next start")
        }
    }
}

async fn reseal(store: &dyn Store, vault: &Vault, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let mut after = None;
    let mut done = 0;
    loop {
        let page = store
            .accounts_sealed_with(crate::crypto::LEGACY_VERSION, after, 500)
            .await?;
        let Some(last) = page.last() else {
            return Ok(done);
        };
        after = Some(last.id);
        for account in &page {
            // One that does not open (another key) is left as it is: reconnecting fixes it.
            let Ok(plain) = vault.open_for(account.id.0, &account.credentials) else {
                continue;
            };
            let sealed = vault.seal_for(account.id.0, &plain);
            if store
                .replace_credentials(account.id, &account.credentials, &sealed, now)
                .await?
            {
                done += 1;
            }
        }
    }
}

/// A magic-link or session token: shown, mailed or set as a cookie once; only its hash is
/// stored.
pub fn new_access_token() -> String {
    use rand::Rng;
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The stored form of a magic-link or session token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_stored_only_as_its_hash_and_each_token_is_new() {
        let (a, b) = (new_access_token(), new_access_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_ne!(token_hash(&a), a);
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
