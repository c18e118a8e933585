//! Rows as the databases return them, and their conversion into the domain types.
//!
//! The `FromRow` structs hold only types both SQLite and PostgreSQL decode (`i64`, `bool`,
//! `String`, bytes), so one struct serves both backends; parsing states, networks, JSON and
//! millisecond instants happens once, here. Campaign ids, handles and zones are parsed
//! again on the way out: a stored value that does not read is [`StoreError::Corrupt`].

use chrono::{DateTime, NaiveDate, Utc};

use super::StoreError;
use super::model::*;

/// An instant as stored: milliseconds since the Unix epoch.
pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn instant(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("instant {ms} ms out of range")))
}

fn opt_instant(ms: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    ms.map(instant).transpose()
}

pub(crate) fn parse<T: std::str::FromStr>(s: &str) -> Result<T, StoreError>
where
    T::Err: std::fmt::Display,
{
    s.parse()
        .map_err(|e: T::Err| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn days_json(days: &Option<Vec<NaiveDate>>) -> Option<String> {
    days.as_ref()
        .map(|d| serde_json::to_string(d).expect("dates always serialize"))
}

/// Columns of [`ParticipantRow`], in a `SELECT` from `participants`.
pub(crate) const PARTICIPANT_COLUMNS: &str =
    "id, name, email, tz, is_local, invite_code, created_at, access_token_expires_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ParticipantRow {
    id: i64,
    name: String,
    email: Option<String>,
    tz: String,
    is_local: bool,
    invite_code: String,
    created_at: i64,
    access_token_expires_at: Option<i64>,
}

impl TryFrom<ParticipantRow> for Participant {
    type Error = StoreError;
    fn try_from(r: ParticipantRow) -> Result<Self, StoreError> {
        Ok(Participant {
            id: ParticipantId(r.id),
            name: r.name,
            email: r.email,
            tz: parse(&r.tz)?,
            is_local: r.is_local,
            invite_code: r.invite_code,
            created_at: instant(r.created_at)?,
            link_expires_at: opt_instant(r.access_token_expires_at)?,
        })
    }
}

/// Columns of [`AccountRow`], in a `SELECT` from `accounts`.
pub(crate) const ACCOUNT_COLUMNS: &str = "id, participant_id, network, handle, server, \
     credentials, trusted, route, status, status_reason, created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: i64,
    participant_id: i64,
    network: String,
    handle: String,
    server: Option<String>,
    credentials: Vec<u8>,
    trusted: bool,
    route: String,
    status: String,
    status_reason: Option<String>,
    created_at: i64,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Self, StoreError> {
        Ok(Account {
            id: AccountId(r.id),
            participant_id: ParticipantId(r.participant_id),
            network: parse(&r.network)?,
            handle: parse(&r.handle)?,
            server: r.server,
            credentials: Sealed::new(r.credentials),
            trusted: r.trusted,
            route: parse(&r.route)?,
            status: parse(&r.status)?,
            status_reason: r.status_reason,
            created_at: instant(r.created_at)?,
        })
    }
}

/// Columns of [`PledgeRow`], in a `SELECT` from `pledges`.
pub(crate) const PLEDGE_COLUMNS: &str = "id, participant_id, campaign_id, tz, days, every_secs, \
     status, created_at, withdrawn_at, plan_error";

#[derive(sqlx::FromRow)]
pub(crate) struct PledgeRow {
    pub(crate) id: i64,
    participant_id: i64,
    campaign_id: String,
    tz: String,
    days: Option<String>,
    every_secs: Option<i64>,
    status: String,
    created_at: i64,
    withdrawn_at: Option<i64>,
    plan_error: Option<String>,
}

impl PledgeRow {
    pub(crate) fn into_pledge(
        self,
        account_ids: Vec<AccountId>,
        tap_account_ids: Vec<AccountId>,
    ) -> Result<Pledge, StoreError> {
        let days = match self.days {
            None => None,
            Some(json) => Some(
                serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("pledge days `{json}`: {e}")))?,
            ),
        };
        Ok(Pledge {
            id: PledgeId(self.id),
            participant_id: ParticipantId(self.participant_id),
            campaign_id: parse(&self.campaign_id)?,
            tz: parse(&self.tz)?,
            days,
            every_secs: self.every_secs,
            status: parse(&self.status)?,
            account_ids,
            tap_account_ids,
            created_at: instant(self.created_at)?,
            withdrawn_at: opt_instant(self.withdrawn_at)?,
            plan_error: self.plan_error,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ClaimedRow {
    id: i64,
    campaign_id: String,
    pledge_id: i64,
    participant_id: i64,
    account_id: i64,
    slot_key: String,
    post_name: String,
    template: String,
    variant: i64,
    idempotency_key: String,
    run_at: i64,
    window_end: i64,
    attempts: i64,
    outcome_unknown: bool,
    last_error: Option<String>,
    network: String,
    handle: String,
    server: Option<String>,
    credentials: Vec<u8>,
    trusted: bool,
    route: String,
    tz: String,
    slot_at: i64,
    day: i64,
    days_total: i64,
    participant_name: String,
    invite_code: String,
}

impl TryFrom<ClaimedRow> for ClaimedPost {
    type Error = StoreError;
    fn try_from(r: ClaimedRow) -> Result<Self, StoreError> {
        // Empty: the key derived from (campaign, account, slot), see
        // [`derived_idempotency_key`].
        let idempotency_key = if r.idempotency_key.is_empty() {
            derived_idempotency_key(&r.campaign_id, AccountId(r.account_id), &r.slot_key)
        } else {
            r.idempotency_key
        };
        Ok(ClaimedPost {
            id: OutboxId(r.id),
            campaign_id: parse(&r.campaign_id)?,
            pledge_id: PledgeId(r.pledge_id),
            participant_id: ParticipantId(r.participant_id),
            account_id: AccountId(r.account_id),
            slot_key: r.slot_key,
            post_name: r.post_name,
            template: r.template,
            variant: r.variant,
            idempotency_key,
            run_at: instant(r.run_at)?,
            window_end: instant(r.window_end)?,
            attempts: r.attempts,
            outcome_unknown: r.outcome_unknown,
            last_error: r.last_error,
            network: parse(&r.network)?,
            handle: parse(&r.handle)?,
            server: r.server,
            credentials: Sealed::new(r.credentials),
            trusted: r.trusted,
            route: parse(&r.route)?,
            tz: parse(&r.tz)?,
            slot_at: instant(r.slot_at)?,
            day: r.day,
            days_total: r.days_total,
            participant_name: r.participant_name,
            invite_code: r.invite_code,
        })
    }
}

/// Columns of [`OutboxRowRaw`], in a `SELECT` from `outbox o`.
pub(crate) const OUTBOX_COLUMNS: &str = "o.id, o.campaign_id, o.pledge_id, o.account_id, \
     o.slot_key, o.post_name, o.template, o.variant, o.slot_at, o.run_at, o.window_end, \
     o.state, o.attempts, o.outcome_unknown, o.last_error, o.remote_id, o.remote_url, \
     o.published_at, o.text, o.updated_at, o.reminded_at, o.confirmed_at, o.confirmed_url, \
     o.confirm_token_hash IS NOT NULL AS mailed";

#[derive(sqlx::FromRow)]
pub(crate) struct OutboxRowRaw {
    id: i64,
    campaign_id: String,
    pledge_id: i64,
    account_id: i64,
    slot_key: String,
    post_name: String,
    template: String,
    variant: i64,
    slot_at: i64,
    run_at: i64,
    window_end: i64,
    state: String,
    attempts: i64,
    outcome_unknown: bool,
    last_error: Option<String>,
    remote_id: Option<String>,
    remote_url: Option<String>,
    published_at: Option<i64>,
    text: Option<String>,
    updated_at: i64,
    reminded_at: Option<i64>,
    confirmed_at: Option<i64>,
    confirmed_url: Option<String>,
    mailed: bool,
}

impl TryFrom<OutboxRowRaw> for OutboxRow {
    type Error = StoreError;
    fn try_from(r: OutboxRowRaw) -> Result<Self, StoreError> {
        Ok(OutboxRow {
            id: OutboxId(r.id),
            campaign_id: parse(&r.campaign_id)?,
            pledge_id: PledgeId(r.pledge_id),
            account_id: AccountId(r.account_id),
            slot_key: r.slot_key,
            post_name: r.post_name,
            template: r.template,
            variant: r.variant,
            // The claim fails a row whose slot instant no clock can hold, with its
            // reason; listing it must not fail the participant's whole page meanwhile.
            slot_at: instant(r.slot_at).or_else(|_| instant(r.run_at))?,
            run_at: instant(r.run_at)?,
            window_end: instant(r.window_end)?,
            state: parse(&r.state)?,
            attempts: r.attempts,
            outcome_unknown: r.outcome_unknown,
            last_error: r.last_error,
            remote_id: r.remote_id,
            remote_url: r.remote_url,
            published_at: opt_instant(r.published_at)?,
            text: r.text,
            updated_at: instant(r.updated_at)?,
            reminded_at: opt_instant(r.reminded_at)?,
            confirmed_at: opt_instant(r.confirmed_at)?,
            confirmed_url: r.confirmed_url,
            mailed: r.mailed,
        })
    }
}

/// `state` text to enum, for the few queries that return only ids and states.
pub(crate) fn outbox_state(s: &str) -> Result<OutboxState, StoreError> {
    parse(s)
}

/// A short random code for invitation links: 12 characters of an unambiguous alphabet
/// (~60 bits), so codes cannot be enumerated to list signers.
pub(crate) fn new_invite_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let mut n: u128 = rand::random();
    (0..12)
        .map(|_| {
            let c = ALPHABET[(n % ALPHABET.len() as u128) as usize] as char;
            n /= ALPHABET.len() as u128;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pledge_row(campaign_id: &str, tz: &str) -> PledgeRow {
        PledgeRow {
            id: 1,
            participant_id: 1,
            campaign_id: campaign_id.into(),
            tz: tz.into(),
            days: None,
            every_secs: None,
            status: "active".into(),
            created_at: 0,
            withdrawn_at: None,
            plan_error: None,
        }
    }

    fn corrupt<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
        match r {
            Err(StoreError::Corrupt(m)) => m,
            other => panic!("expected a corrupt row, got {other:?}"),
        }
    }

    #[test]
    fn stored_campaign_ids_zones_and_handles_are_parsed_again_and_a_bad_one_is_corrupt() {
        let ok = pledge_row("strike", "Europe/Kiev")
            .into_pledge(vec![], vec![])
            .unwrap();
        assert_eq!(ok.campaign_id, "strike");
        assert_eq!(ok.tz, "Europe/Kyiv");

        let bad_zone = corrupt(pledge_row("strike", "Mars/Olympus").into_pledge(vec![], vec![]));
        assert!(bad_zone.contains("Mars/Olympus"), "{bad_zone}");
        let bad_id = corrupt(pledge_row("Not A Slug", "UTC").into_pledge(vec![], vec![]));
        assert!(bad_id.contains("is not a slug"), "{bad_id}");

        let account = |handle: &str| {
            Account::try_from(AccountRow {
                id: 1,
                participant_id: 1,
                network: "sandbox".into(),
                handle: handle.into(),
                server: None,
                credentials: Vec::new(),
                trusted: true,
                route: "api".into(),
                status: "active".into(),
                status_reason: None,
                created_at: 0,
            })
        };
        assert_eq!(account("alex").unwrap().handle, "alex");
        let bad_handle = corrupt(account(""));
        assert!(bad_handle.contains("handle is empty"), "{bad_handle}");
    }
}
