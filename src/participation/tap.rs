//! Tap-to-post, as a participant does it: adding an account that picket reminds instead
//! of posting with (only a network and a handle; no credentials), giving the address the
//! reminders are mailed to, and saying "I posted it" for a reminded notice, from their
//! page or from the mail's single-purpose link.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{Missing, ParticipationError};
use crate::campaign::{Campaign, preview};
use crate::compose::intent;
use crate::domain::{Handle, NetworkKind};
use crate::scheduler::planner;
use crate::store::{
    Account, AccountId, AccountRoute, AccountStatus, NewAccount, OutboxId, OutboxRow, OutboxState,
    Participant, ParticipantId, PledgeStatus, Store,
};

/// The networks an account can be added to with only a handle: where picket reminds and
/// the person taps. (Mastodon-API servers and Bluesky get a compose link too, as the
/// fallback when their credentials stop working.)
pub const TAP_NETWORKS: [NetworkKind; 7] = [
    NetworkKind::X,
    NetworkKind::Facebook,
    NetworkKind::Instagram,
    NetworkKind::TikTok,
    NetworkKind::YouTube,
    NetworkKind::LinkedIn,
    NetworkKind::Threads,
];

/// The longest handle accepted (the longest of these networks' names is 100, YouTube's).
const MAX_HANDLE: usize = 100;

/// A handle as typed, trimmed; refused when empty, too long or holding spaces or control
/// characters (it is shown on pages and in mails).
pub fn check_handle(network: NetworkKind, handle: &str) -> Result<Handle, ParticipationError> {
    let h = handle.trim();
    if h.is_empty() || h.chars().count() > MAX_HANDLE || h.chars().any(char::is_whitespace) {
        return Err(ParticipationError::Invalid(format!(
            "Give your {} handle: 1 to {MAX_HANDLE} characters, no spaces.",
            network.label()
        )));
    }
    if h.chars().any(char::is_control) {
        return Err(ParticipationError::Invalid(
            "A handle cannot hold control characters.".into(),
        ));
    }
    Handle::parse(h).map_err(|e| ParticipationError::Invalid(e.to_string()))
}

/// Add a tap-to-post account for `participant`: no credentials are asked or stored.
pub async fn add_tap_account(
    store: &dyn Store,
    participant: ParticipantId,
    network: NetworkKind,
    handle: &str,
    trusted: bool,
    now: DateTime<Utc>,
) -> Result<AccountId, ParticipationError> {
    if !TAP_NETWORKS.contains(&network) {
        return Err(ParticipationError::Invalid(format!(
            "{} accounts are connected with their credentials; tap-to-post is for {}.",
            network.label(),
            TAP_NETWORKS.map(|n| n.as_str()).join(", ")
        )));
    }
    let handle = check_handle(network, handle)?;
    Ok(store
        .add_account(
            &NewAccount {
                participant_id: participant,
                network,
                handle,
                server: None,
                trusted,
                route: AccountRoute::Tap,
            },
            // Never called for a tap account: there is nothing to seal.
            &|_| crate::domain::Sealed::new(Vec::new()),
            now,
        )
        .await?)
}

/// An e-mail address as typed, trimmed, if it can be written into a mail.
pub fn check_email(email: &str) -> Result<String, ParticipationError> {
    let e = email.trim();
    let bad = || {
        ParticipationError::Invalid(
            "that does not look like an e-mail address (name@example.org)".into(),
        )
    };
    let (local, domain) = e.rsplit_once('@').ok_or_else(bad)?;
    if e.len() > 254
        || local.is_empty()
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
        || e.chars().any(|c| c.is_whitespace() || c.is_control())
        || !crate::mail::is_address(e)
    {
        return Err(bad());
    }
    Ok(e.to_string())
}

/// Where `participant`'s reminders are mailed (`picket join --email`).
pub async fn set_email(
    store: &dyn Store,
    participant: ParticipantId,
    email: &str,
) -> Result<(), ParticipationError> {
    let email = check_email(email)?;
    Ok(store
        .set_participant_email(participant, Some(&email))
        .await?)
}

/// Who says a notice was posted by hand.
#[derive(Debug, Clone, Copy)]
pub enum Confirmer<'a> {
    /// A signed-in participant, naming one of their notices.
    Participant(ParticipantId, OutboxId),
    /// Whoever holds the notice's "I posted it" token from the reminder mail.
    Token(&'a str),
}

/// A notice posted by hand, as recorded.
#[derive(Debug, Clone)]
pub struct Confirmed {
    pub notice: OutboxRow,
    pub account: Account,
    /// The post's address, as checked.
    pub url: Option<String>,
    /// It had been confirmed before: nothing changed.
    pub already: bool,
}

/// The reminded notice `who` names, with its account (for the confirmation page).
pub async fn tap_notice(
    store: &dyn Store,
    who: Confirmer<'_>,
) -> Result<(OutboxRow, Account), ParticipationError> {
    let found = match who {
        Confirmer::Participant(me, id) => store
            .outbox_row(id)
            .await?
            .filter(|(_, owner)| *owner == me),
        Confirmer::Token(token) => {
            store
                .outbox_row_by_confirm_token(&super::token_hash(token))
                .await?
        }
    };
    let not_found = || ParticipationError::NotFound(Missing::Notice);
    let (row, _) = found.ok_or_else(not_found)?;
    let account = store
        .get_account(row.account_id)
        .await?
        .ok_or_else(not_found)?;
    Ok((row, account))
}

/// A post of an API account that needs reconnecting, due now and still inside its
/// window: picket cannot post it, so its owner is shown it to post by hand (their page
/// lists it with the compose link). It stays `pending`, so a reconnect still posts it;
/// "I posted it" makes it final instead.
pub fn is_fallback(row: &OutboxRow, account: &Account, now: DateTime<Utc>) -> bool {
    row.state == OutboxState::Pending
        && account.route == AccountRoute::Api
        && account.status == AccountStatus::ReconnectNeeded
        && row.run_at <= now
        && now <= row.window_end
}

/// "I posted it": a `reminded` notice becomes `posted_by_hand`, with the post's address
/// if given, which must be on that network (shown as a link). Saying it again changes
/// nothing.
pub async fn confirm_posted(
    store: &dyn Store,
    who: Confirmer<'_>,
    url: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Confirmed, ParticipationError> {
    let (notice, account) = tap_notice(store, who).await?;
    let url = url
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| intent::check_post_url(account.network, account.server.as_deref(), u))
        .transpose()
        .map_err(|e| ParticipationError::Invalid(e.to_string()))?;
    match notice.state {
        OutboxState::PostedByHand => {
            return Ok(Confirmed {
                url: notice.confirmed_url.clone(),
                notice,
                account,
                already: true,
            });
        }
        OutboxState::Reminded => {}
        // The fallback for an account whose credentials stopped working: its due post
        // waits for a reconnect, and its owner may post it by hand instead.
        OutboxState::Pending if is_fallback(&notice, &account, now) => {}
        _ => {
            return Err(ParticipationError::Conflict(
                "this notice is not waiting to be posted by hand".into(),
            ));
        }
    }
    if !store.confirm_posted(notice.id, url.as_deref(), now).await? {
        return Err(ParticipationError::Conflict(
            "this notice changed meanwhile: reload the page".into(),
        ));
    }
    Ok(Confirmed {
        notice,
        account,
        url,
        already: false,
    })
}

/// The text of each planned post of `me` that they may have to post by hand (tap-to-post
/// accounts, and accounts that need reconnecting), by (account, slot key), rendered now
/// as the dispatcher renders it at its minute: the join preview's own builder
/// ([`preview::preview_for`]), each network's default length rule. For what is shown
/// before the minute (the calendar's alarms) or instead of a post that waits (the
/// fallback), for the hosted `campaigns`.
pub async fn planned_texts(
    store: &dyn Store,
    campaigns: &[Campaign],
    site: &str,
    me: &Participant,
    accounts: &[Account],
) -> Result<HashMap<(AccountId, String), String>, ParticipationError> {
    let mut out = HashMap::new();
    if !accounts
        .iter()
        .any(|a| a.route == AccountRoute::Tap || a.status == AccountStatus::ReconnectNeeded)
    {
        return Ok(out);
    }
    for pledge in store.pledges_of(me.id).await? {
        if pledge.status != PledgeStatus::Active {
            continue;
        }
        let (Some(c), Ok(p)) = (
            campaigns.iter().find(|c| c.id == pledge.campaign_id),
            planner::participation(&pledge),
        ) else {
            continue;
        };
        let who = preview::Participant {
            site,
            name: &me.name,
            invite_code: &me.invite_code,
            accounts,
        };
        let pv = preview::preview_for(c, &p, &who, &|a, text| {
            crate::compose::measure(a.network, text)
        });
        for post in pv.posts {
            for t in post.texts {
                if let Some(id) = t.account {
                    out.insert((id, post.key.clone()), t.text);
                }
            }
        }
    }
    Ok(out)
}
