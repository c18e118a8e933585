//! The store's domain types: ids, states and the records passed in and out of [`Store`].
//!
//! These are plain data: no SQL here (row decoding lives in `rows.rs`). States are enums
//! with `as_str`/`FromStr` so the text stored in the database is spelled in one place.
//! Instants are `DateTime<Utc>`; the store turns them into milliseconds.
//!
//! [`Store`]: super::Store

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

pub use crate::domain::Sealed;
use crate::domain::{CampaignId, Handle, NetworkKind, Zone};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }
    };
}

id_type!(
    /// A person known to this picket: a web signup or the CLI's own user.
    ParticipantId
);
id_type!(
    /// One connected account on one network.
    AccountId
);
id_type!(
    /// One participant's pledge to one campaign.
    PledgeId
);
id_type!(
    /// One post, planned or sent.
    OutboxId
);
id_type!(
    /// One signature under a campaign's declaration.
    SignatureId
);

/// A stored state name that no enum variant spells (a newer picket wrote it, or a bug).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown {kind} `{value}`")]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
}

macro_rules! state_enum {
    (
        $(#[$doc:meta])* $name:ident, $kind:literal {
            $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownState { kind: $kind, value: s.to_string() }),
                }
            }
        }
    };
}

state_enum!(
    /// Whether picket may post with an account.
    AccountStatus, "account status" {
        /// Usable.
        Active => "active",
        /// The network refused its credentials; its posts wait until the owner reconnects.
        ReconnectNeeded => "reconnect_needed",
        /// The owner removed it; its credentials are wiped and its unsent posts cancelled.
        Removed => "removed",
    }
);

state_enum!(
    /// Who makes the final tap for an account.
    AccountRoute, "account route" {
        /// picket publishes through the network's API with the stored credentials.
        Api => "api",
        /// picket renders the notice at its minute and reminds the person (mail, their
        /// page, their calendar) with a prefilled compose link; they post it. No
        /// credentials are stored.
        Tap => "tap",
    }
);

state_enum!(
    /// Whether a pledge still stands.
    PledgeStatus, "pledge status" {
        Active => "active",
        Withdrawn => "withdrawn",
    }
);

state_enum!(
    /// Where a post is on its way out. Only `pending`, `claimed` and `sending` can change;
    /// the rest are final.
    ///
    /// ```text
    /// pending ──claim──> claimed ──begin_sending──> sending ──> published | failed | missed
    ///    ^                  │                          │
    ///    └──── retry ───────┴──────────────────────────┘   (lease expiry: reclaimed)
    /// pending | claimed ──withdraw / cancel / remove account──> cancelled
    ///
    /// hand-off accounts (the server's own scheduler publishes at `run_at`):
    /// pending ──claim_hand_off──> handing_off ──> handed_off ──read back──> published | missed
    ///    ^                            │                │
    ///    └── too close / refused ─────┘                └──recall (withdraw...)──> cancelled
    ///
    /// tap-to-post accounts (no sending; the person posts):
    /// pending ──claim──> claimed ──record (text rendered at the minute)──> reminded
    /// reminded ──"I posted it"──> posted_by_hand
    /// ```
    ///
    /// `reminded` is final for picket (nothing more is sent; the reminder mail is keyed by
    /// pledge and slot, not by this state) but can still become `posted_by_hand`.
    OutboxState, "outbox state" {
        /// Planned; due at `run_at`.
        Pending => "pending",
        /// Leased by a worker that has not started sending yet.
        Claimed => "claimed",
        /// The request may be on the wire: the point of no return.
        Sending => "sending",
        /// The network confirmed it.
        Published => "published",
        /// A permanent error, with its reason.
        Failed => "failed",
        /// Its window closed before it could be sent, with the reason.
        Missed => "missed",
        /// Withdrawn, campaign cancelled or account removed before it was sent.
        Cancelled => "cancelled",
        /// A tap-to-post notice: rendered at its minute, its compose link shown and mailed;
        /// waiting for the person to say they posted it ("reminded, not confirmed").
        Reminded => "reminded",
        /// The person said they posted the reminded notice themself (with its address if
        /// they gave one).
        PostedByHand => "posted_by_hand",
        /// A hand-off account's post being created on its server as a scheduled status
        /// (leased like `sending`; a lease that runs out is reconciled with the server's
        /// list of scheduled statuses before anything is sent again).
        HandingOff => "handing_off",
        /// Scheduled on the account's own server (`scheduled_id`), which publishes it at
        /// `run_at` whether picket runs or not; read back afterwards for its link.
        HandedOff => "handed_off",
    }
);

/// A participant as stored. The e-mail address is private: never show it publicly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub id: ParticipantId,
    pub name: String,
    pub email: Option<String>,
    pub tz: Zone,
    pub is_local: bool,
    /// Their personal invitation code (`/i/{code}`).
    pub invite_code: String,
    pub created_at: DateTime<Utc>,
    /// When their current magic link stops working; `None` when they have none (never
    /// given one, signed out, or the CLI's own user).
    pub link_expires_at: Option<DateTime<Utc>>,
}

/// A participant to create.
#[derive(Debug, Clone, Default)]
pub struct NewParticipant {
    pub name: String,
    pub email: Option<String>,
    /// The key used to find the same person again (see [`canonical_email`]).
    pub email_canonical: Option<String>,
    pub tz: Zone,
    /// The invitation code they came through, if any.
    pub invited_by: Option<String>,
}

/// A connected account. `Debug` shows only the credentials' length ([`Sealed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub participant_id: ParticipantId,
    pub network: NetworkKind,
    pub handle: Handle,
    /// Server or base URL (Mastodon instance, PDS, relay list ...), when the network has one.
    pub server: Option<String>,
    /// Ciphertext: encryption happens outside the store.
    pub credentials: Sealed,
    /// Added by the operator with addresses they typed: its servers are not guarded.
    pub trusted: bool,
    /// Who makes the final tap: picket (`api`) or the person (`tap`).
    pub route: AccountRoute,
    pub status: AccountStatus,
    pub status_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An account to connect. Its credentials come sealed from a [`Seal`], once the row has
/// its id.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub participant_id: ParticipantId,
    pub network: NetworkKind,
    pub handle: Handle,
    pub server: Option<String>,
    /// The operator typed its addresses (command line): its servers are not guarded.
    pub trusted: bool,
    /// `Tap` accounts have no credentials: their seal is never asked for anything.
    pub route: AccountRoute,
}

/// Seals an account's credentials for the id its row was given. The id is bound into the
/// ciphertext (`crypto`), so a sealed blob copied onto another row does not open; the store
/// therefore asks for the sealed bytes inside the transaction that creates the row, and
/// never sees them unsealed.
pub type Seal<'a> = &'a (dyn Fn(AccountId) -> Sealed + Send + Sync);

/// Like [`Seal`], for [`StoreTooling::bulk_join`](super::StoreTooling::bulk_join): called with the
/// striker's index, the index of the account among theirs, and the account's new id.
pub type SealMany<'a> = &'a (dyn Fn(usize, usize, AccountId) -> Sealed + Send + Sync);

/// A pledge as stored, with the accounts it posts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pledge {
    pub id: PledgeId,
    pub participant_id: ParticipantId,
    pub campaign_id: CampaignId,
    pub tz: Zone,
    /// The strike days chosen; `None` means all of the campaign's days.
    pub days: Option<Vec<NaiveDate>>,
    /// The chosen cadence for repeating posts, if slower than the campaign's.
    pub every_secs: Option<i64>,
    pub status: PledgeStatus,
    pub account_ids: Vec<AccountId>,
    /// Those of `account_ids` that are tap-to-post: planned at the slot's minute, without
    /// jitter (a reminder is for a person, who is not a burst of requests).
    pub tap_account_ids: Vec<AccountId>,
    pub created_at: DateTime<Utc>,
    pub withdrawn_at: Option<DateTime<Utc>>,
    /// Why the planner last failed to plan this pledge; `None` when it planned.
    pub plan_error: Option<String>,
}

/// A pledge to make or renew (joining again re-activates a withdrawn pledge).
#[derive(Debug, Clone)]
pub struct NewPledge {
    pub participant_id: ParticipantId,
    pub campaign_id: CampaignId,
    pub tz: Zone,
    pub days: Option<Vec<NaiveDate>>,
    pub every_secs: Option<i64>,
    pub account_ids: Vec<AccountId>,
}

/// What stopping a pledge, an account or a campaign did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Withdrawal {
    /// Rows that were `pending` or `claimed` and are now `cancelled`: they will never be sent.
    pub cancelled: u64,
    /// Rows already `sending`: they may still be published. Wait on them with
    /// [`Outbox::outbox_states`](super::Outbox::outbox_states) before telling the user it is over.
    pub in_flight: Vec<OutboxId>,
}

/// One post the planner wants to exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPost {
    pub account_id: AccountId,
    /// Identifies the campaign slot (e.g. `notice@2027-07-04`); unique per account and campaign.
    pub slot_key: Arc<str>,
    /// Shared by every row of a slot: a million rows hold one copy, and binding one is a
    /// reference count, not an allocation.
    pub post_name: Arc<str>,
    pub template: Arc<str>,
    pub variant: i64,
    pub run_at: DateTime<Utc>,
    /// No sending after this (plus the grace); afterwards the row becomes `missed`.
    pub window_end: DateTime<Utc>,
    /// Sent to networks that dedupe on it; must be the same for every attempt of this row.
    /// Empty for the key derived from (campaign, account, slot), [`derived_idempotency_key`],
    /// which the planner always uses: it is then neither computed nor stored.
    pub idempotency_key: String,
    /// The slot's own instant, before jitter.
    pub slot_at: DateTime<Utc>,
    /// 1-based strike day of the slot (0 before the strike) and the pledge's number of days.
    pub day: i64,
    pub days_total: i64,
}

/// The full plan of one pledge.
#[derive(Debug, Clone)]
pub struct PledgePlan {
    pub pledge_id: PledgeId,
    pub campaign_id: CampaignId,
    pub rows: Vec<PlannedPost>,
}

/// What applying plans changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlanApplied {
    /// Rows inserted, plus `pending`/`cancelled` rows refreshed or revived by the plan.
    pub upserted: u64,
    /// Future `pending` rows no longer in the plan, deleted.
    pub removed: u64,
    /// Plans skipped because their pledge is not active.
    pub skipped: u64,
}

/// The idempotency key the planner gives the post of `account` for `slot_key` of
/// `campaign_id`: a hash of the three, so it never needs storing. The outbox stores a key
/// only when a plan brings a different one; an empty `idempotency_key` column means this
/// one. Changing this function changes the key of posts already planned, including retries
/// of requests whose outcome is unknown, which only the same key dedupes: never change it.
pub fn derived_idempotency_key(campaign_id: &str, account: AccountId, slot_key: &str) -> String {
    use sha2::{Digest, Sha256};
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

/// A post leased to a worker, with everything needed to compose and send it.
#[derive(Clone)]
pub struct ClaimedPost {
    pub id: OutboxId,
    pub campaign_id: CampaignId,
    pub pledge_id: PledgeId,
    pub participant_id: ParticipantId,
    pub account_id: AccountId,
    pub slot_key: String,
    pub post_name: String,
    pub template: String,
    pub variant: i64,
    pub idempotency_key: String,
    pub run_at: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Send attempts so far (incremented by `begin_sending`).
    pub attempts: i64,
    /// An earlier attempt reached `sending` and its worker vanished: the post may already
    /// be published. Networks without idempotency must check before sending again.
    pub outcome_unknown: bool,
    pub last_error: Option<String>,
    pub network: NetworkKind,
    pub handle: Handle,
    pub server: Option<String>,
    pub credentials: Sealed,
    /// The account's servers are reached unguarded (see [`Account::trusted`]).
    pub trusted: bool,
    /// Tap-to-post: rendered and recorded as `reminded`, never sent.
    pub route: AccountRoute,
    /// The pledge's time zone (IANA name), for local dates in the text.
    pub tz: Zone,
    /// The slot's own instant (before jitter), its strike day and the pledge's day count.
    pub slot_at: DateTime<Utc>,
    pub day: i64,
    pub days_total: i64,
    /// The participant's name and personal invitation code, for the post text.
    pub participant_name: String,
    pub invite_code: String,
}

impl fmt::Debug for ClaimedPost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClaimedPost")
            .field("id", &self.id)
            .field("campaign_id", &self.campaign_id)
            .field("account_id", &self.account_id)
            .field("slot_key", &self.slot_key)
            .field("run_at", &self.run_at)
            .field("attempts", &self.attempts)
            .field("outcome_unknown", &self.outcome_unknown)
            .field("network", &self.network)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// What happened to a post a worker tried to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The network has it.
    Published {
        id: OutboxId,
        remote_id: String,
        remote_url: Option<String>,
        /// The text actually sent, for the participant's status page.
        text: String,
    },
    /// A temporary error: try again at `run_at`.
    Retry {
        id: OutboxId,
        run_at: DateTime<Utc>,
        error: String,
        /// The request may have reached the network: the next attempt's outcome is unknown.
        maybe_sent: bool,
    },
    /// A permanent error (content rejected, ...): never retried, shown to the participant.
    Failed { id: OutboxId, reason: String },
    /// Too late to send.
    Missed { id: OutboxId, reason: String },
    /// A tap-to-post notice rendered at its minute: the person posts `text` themself.
    Reminded { id: OutboxId, text: String },
    /// The network refused the credentials: the account waits for its owner, the post
    /// goes back to `pending` and resumes when the account is active again.
    Reconnect {
        id: OutboxId,
        account_id: AccountId,
        reason: String,
    },
}

/// A post as shown in status listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: OutboxId,
    pub campaign_id: CampaignId,
    pub pledge_id: PledgeId,
    pub account_id: AccountId,
    pub slot_key: String,
    pub post_name: String,
    pub template: String,
    pub variant: i64,
    /// The slot's own instant; `run_at` adds the API rows' jitter and a retry's delay.
    pub slot_at: DateTime<Utc>,
    pub run_at: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub state: OutboxState,
    pub attempts: i64,
    pub outcome_unknown: bool,
    pub last_error: Option<String>,
    pub remote_id: Option<String>,
    pub remote_url: Option<String>,
    pub published_at: Option<DateTime<Utc>>,
    pub text: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// When a tap-to-post notice was rendered and shown (`reminded`).
    pub reminded_at: Option<DateTime<Utc>>,
    /// When the person said they posted it by hand, and the address they gave.
    pub confirmed_at: Option<DateTime<Utc>>,
    pub confirmed_url: Option<String>,
    /// A reminder mail carried it (with an "I posted it" token): never mailed again.
    pub mailed: bool,
}

/// Posts of one campaign by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OutboxCounts {
    pub pending: u64,
    pub claimed: u64,
    pub sending: u64,
    pub published: u64,
    pub failed: u64,
    pub missed: u64,
    pub cancelled: u64,
    pub reminded: u64,
    pub posted_by_hand: u64,
    /// Not in the JSON API (its schema is fixed); the metrics and `/me` show them.
    #[serde(skip)]
    pub handing_off: u64,
    #[serde(skip)]
    pub handed_off: u64,
}

impl OutboxCounts {
    pub fn get(&self, state: OutboxState) -> u64 {
        match state {
            OutboxState::Pending => self.pending,
            OutboxState::Claimed => self.claimed,
            OutboxState::Sending => self.sending,
            OutboxState::Published => self.published,
            OutboxState::Failed => self.failed,
            OutboxState::Missed => self.missed,
            OutboxState::Cancelled => self.cancelled,
            OutboxState::Reminded => self.reminded,
            OutboxState::PostedByHand => self.posted_by_hand,
            OutboxState::HandingOff => self.handing_off,
            OutboxState::HandedOff => self.handed_off,
        }
    }

    pub(crate) fn set(&mut self, state: OutboxState, n: u64) {
        let slot = match state {
            OutboxState::Pending => &mut self.pending,
            OutboxState::Claimed => &mut self.claimed,
            OutboxState::Sending => &mut self.sending,
            OutboxState::Published => &mut self.published,
            OutboxState::Failed => &mut self.failed,
            OutboxState::Missed => &mut self.missed,
            OutboxState::Cancelled => &mut self.cancelled,
            OutboxState::Reminded => &mut self.reminded,
            OutboxState::PostedByHand => &mut self.posted_by_hand,
            OutboxState::HandingOff => &mut self.handing_off,
            OutboxState::HandedOff => &mut self.handed_off,
        };
        *slot = n;
    }
}

/// A campaign stopped globally by its organiser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignCancelled {
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// A signature to add.
#[derive(Debug, Clone)]
pub struct NewSignature {
    pub campaign_id: CampaignId,
    pub name: String,
    /// Already canonical (see [`canonical_email`]); `None` signs without an address.
    pub email_canonical: Option<String>,
    /// Listed on the public signatures page.
    pub public: bool,
    /// The invitation code that brought them, if any.
    pub invited_by: Option<String>,
    /// Counted from the start; otherwise only once the link in the confirmation mail is
    /// followed (see [`Signatures::confirm_signature`](super::Signatures::confirm_signature)).
    pub confirmed: bool,
    /// SHA-256 (hex) of the confirmation link's token, for a signature that waits for one.
    pub confirm_token_hash: Option<String>,
    /// "The organisers may e-mail me": exports give the address only when this is set.
    pub email_consent: bool,
}

/// The result of signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureAdded {
    pub id: SignatureId,
    /// The signer's own invitation code (the earlier one, for a repeat).
    pub invite_code: String,
    /// The same person had already signed this campaign: nothing was added.
    pub duplicate: bool,
    /// Whether the signature (the earlier one, for a repeat) counts.
    pub confirmed: bool,
}

/// A signature whose confirmation link was followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureConfirmed {
    pub id: SignatureId,
    pub name: String,
    pub invite_code: String,
    /// False when the link had been followed before: nothing changed.
    pub newly: bool,
}

/// A signature as shown publicly: no e-mail address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicSignature {
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// How many signatures an invitation code brought in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InviteCount {
    pub code: String,
    pub count: u64,
}

/// The key that makes the same person's address match however it was typed: trimmed and
/// lower-cased, a `+tag` after the local part dropped (`alex+strike@x` and `alex@x` are one
/// mailbox at nearly every provider), and at Gmail, whose addresses ignore dots, the dots of
/// the local part dropped too. One person then counts once, however they vary the address.
pub fn canonical_email(raw: &str) -> String {
    let lower = raw.trim().to_lowercase();
    let Some((local, domain)) = lower.rsplit_once('@') else {
        return lower;
    };
    let local = local.split('+').next().unwrap_or(local);
    let (local, domain) = match domain {
        "gmail.com" | "googlemail.com" => (local.replace('.', ""), "gmail.com"),
        _ => (local.to_string(), domain),
    };
    format!("{local}@{domain}")
}

/// Where an invitation code leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteTarget {
    /// The campaign the inviter signed or pledged to, if any.
    pub campaign_id: Option<CampaignId>,
}

/// One striker for [`StoreTooling::bulk_join`](super::StoreTooling::bulk_join): a participant, the
/// accounts they connect and their pledge to one campaign.
#[derive(Clone)]
pub struct NewStriker {
    pub name: String,
    pub tz: Zone,
    /// (network, handle, server); handles must differ per striker. Credentials are sealed
    /// by the [`SealMany`] given to `bulk_join`.
    pub accounts: Vec<(NetworkKind, Handle, Option<String>)>,
    pub campaign_id: CampaignId,
    pub days: Option<Vec<NaiveDate>>,
    pub every_secs: Option<i64>,
}

/// What [`StoreTooling::bulk_join`](super::StoreTooling::bulk_join) created for one striker, in the
/// order they were given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedStriker {
    pub participant: ParticipantId,
    pub accounts: Vec<AccountId>,
    pub pledge: PledgeId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_derived_idempotency_key_never_changes() {
        // Posts planned by an earlier picket carry no stored key: a retry after an unknown
        // outcome is deduped only if this derivation still gives the key sent before.
        assert_eq!(
            derived_idempotency_key("general-strike", AccountId(42), "notice@2027-07-04"),
            "c3284b6e3c821df3a70ddfd71ef9959db72ed02e53901633904653cac8e11923"
        );
        assert_ne!(
            derived_idempotency_key("general-strike", AccountId(43), "notice@2027-07-04"),
            derived_idempotency_key("general-strike", AccountId(42), "notice@2027-07-04"),
            "no two accounts share a key"
        );
    }
}
