//! The store: the only place that speaks SQL (`sqlx`).
//!
//! One [`Store`] trait, one implementation per database (SQLite embedded by default,
//! PostgreSQL for several workers), the same SQL text in both wherever the dialects allow:
//! the shared methods are written once in `shared.rs` and stamped into both backends by a
//! macro; only claiming (and opening) is written per database.
//! Instants are stored as integer milliseconds since the Unix epoch (UTC) and are always
//! bound from the caller's `Clock`, never read from the database's own clock.
//!
//! It does not encrypt credentials (callers hand it ciphertext), render posts, or talk to
//! networks.
//!
//! # Durability
//!
//! SQLite runs in WAL mode with `synchronous=NORMAL`: a committed transaction survives the
//! process being killed (`kill -9`) at any instant, because it is in the WAL file once
//! `COMMIT` returns. Only a power cut or kernel crash can lose the last few transactions
//! (never corrupt the file). That is acceptable because every send carries the same
//! idempotency key on every attempt, so a lost `sending` mark leads to a deduplicated resend,
//! not a duplicate post. Use PostgreSQL (with `synchronous_commit=on`) when that is not enough.

mod model;
mod rows;
#[macro_use]
mod shared;
mod postgres;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use crate::domain::NetworkKind;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

pub use model::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Something went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or answered with an error.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed to apply.
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The URL names no database picket supports.
    #[error(
        "unsupported database URL `{0}`: use sqlite://PATH, a path to an existing SQLite file, or postgres://..."
    )]
    UnsupportedUrl(String),
    /// A bare path was given but no file exists there; bare paths never create databases.
    #[error(
        "no SQLite database at `{0}`: to create one, say sqlite://{0} (a bare path must name an existing file)"
    )]
    NoSuchFile(String),
    /// The record the call refers to does not exist (or belongs to someone else).
    #[error("{0} not found")]
    NotFound(String),
    /// A stored value could not be read back (an unknown state name, an instant out of range,
    /// malformed JSON): the database was written by something else or a newer picket.
    #[error("unreadable stored value: {0}")]
    Corrupt(String),
}

/// Data picket keeps. Object-safe: used as `Arc<dyn Store>`.
///
/// Every method that writes takes `now` from the caller's clock.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A cheap round trip, for `/healthz`.
    async fn ping(&self) -> Result<(), StoreError>;

    // ── participants ─────────────────────────────────────────────────────────────────────

    /// The CLI's own user: found if it exists, created with `name` and `tz` otherwise.
    async fn ensure_local_participant(
        &self,
        name: &str,
        tz: &str,
        now: DateTime<Utc>,
    ) -> Result<ParticipantId, StoreError>;
    /// A new participant (web signup), with a fresh personal invitation code.
    async fn create_participant(
        &self,
        new: &NewParticipant,
        now: DateTime<Utc>,
    ) -> Result<ParticipantId, StoreError>;
    async fn get_participant(&self, id: ParticipantId) -> Result<Option<Participant>, StoreError>;

    // ── signing in: magic links and sessions ─────────────────────────────────────────────
    //
    // A participant has at most one magic link (a token mailed or shown once, stored as its
    // hash, with an expiry). Opening it starts a session: a token of its own in the
    // browser's cookie, also stored as a hash. Ending a session or replacing the link leaves
    // the other untouched, so each can be withdrawn alone.

    /// The participant whose current magic link has this token hash, if the link has not
    /// expired at `now`.
    async fn participant_by_link(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Participant>, StoreError>;
    /// Give the participant a new magic link, `(token hash, expiry)`; the old one stops
    /// working. `None` withdraws their link. `NotFound` if there is no such participant.
    async fn set_link(
        &self,
        participant: ParticipantId,
        link: Option<(&str, DateTime<Utc>)>,
    ) -> Result<(), StoreError>;
    /// Sign a device in: a session with this token hash until `expires_at`. With
    /// `end_others`, every other session of the participant ends in the same transaction.
    /// The participant's expired sessions are cleared on the way. `NotFound` if there is
    /// no such participant.
    async fn start_session(
        &self,
        participant: ParticipantId,
        token_hash: &str,
        expires_at: DateTime<Utc>,
        end_others: bool,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The participant signed in with this session token hash, if it has not expired at
    /// `now`.
    async fn participant_by_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Participant>, StoreError>;
    /// Sign one device out; an unknown session is not an error.
    async fn end_session(&self, token_hash: &str) -> Result<(), StoreError>;

    /// Count one mail to the address whose hash is `address_hash` against its budget of
    /// `max` mails per `window` (a window starts with its first mail). False, and nothing
    /// counted, when the budget is spent. Windows that have ended are forgotten on the way.
    async fn spend_mail_budget(
        &self,
        address_hash: &str,
        max: u32,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Whether [`Store::spend_mail_budget`] would allow one more mail now; counts nothing.
    async fn mail_budget_left(
        &self,
        address_hash: &str,
        max: u32,
        window: Duration,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Web participants (not the CLI's own user) who gave this address, by its canonical
    /// form (see [`canonical_email`]), oldest first, at most `limit`.
    async fn participants_by_email(
        &self,
        email_canonical: &str,
        limit: u32,
    ) -> Result<Vec<Participant>, StoreError>;

    /// "Delete my data": remove the participant with their accounts (and credentials),
    /// pledges and posts, in one transaction. Posts already `sending` are reported; their
    /// outcome can no longer be recorded. Signatures are kept (they hold no link to the
    /// participant).
    async fn delete_participant(&self, id: ParticipantId) -> Result<Withdrawal, StoreError>;

    // ── accounts ─────────────────────────────────────────────────────────────────────────

    /// Add an account; its credentials are `seal(id)` for the id it gets, written in the
    /// same transaction.
    async fn add_account(
        &self,
        new: &NewAccount,
        seal: Seal<'_>,
        now: DateTime<Utc>,
    ) -> Result<AccountId, StoreError>;
    async fn get_account(&self, id: AccountId) -> Result<Option<Account>, StoreError>;
    /// A participant's accounts that are not removed, oldest first.
    async fn list_accounts(&self, participant: ParticipantId) -> Result<Vec<Account>, StoreError>;
    /// Some accounts (at most `limit`) of anyone on one server: an OAuth app registered
    /// for one of them serves every account there.
    async fn accounts_on_server(
        &self,
        network: NetworkKind,
        server: &str,
        limit: u32,
    ) -> Result<Vec<Account>, StoreError>;
    /// The accounts (not removed) of several participants at once, by id: the dispatcher
    /// tells followers where else to find a striker.
    async fn accounts_of(&self, participants: &[ParticipantId])
    -> Result<Vec<Account>, StoreError>;
    /// Mark an account usable again (its waiting posts become claimable) or in need of
    /// reconnecting. Use [`Store::remove_account`] to remove one.
    async fn set_account_status(
        &self,
        id: AccountId,
        status: AccountStatus,
        reason: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Replace the (encrypted) credentials, e.g. after a token refresh or a reconnect.
    async fn update_credentials(
        &self,
        id: AccountId,
        credentials: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Replace the credentials only if they still are `old` (nobody refreshed them in the
    /// meantime): re-sealing in a newer format. False when they had changed.
    async fn replace_credentials(
        &self,
        id: AccountId,
        old: &[u8],
        new: &[u8],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Accounts (not removed) whose sealed credentials start with the byte `prefix` (the
    /// version of the format they were sealed in), with ids after `after`, in id order, at
    /// most `limit`.
    async fn accounts_sealed_with(
        &self,
        prefix: u8,
        after: Option<AccountId>,
        limit: u32,
    ) -> Result<Vec<Account>, StoreError>;
    /// Remove an account: wipe its credentials, detach it from pledges, cancel its unsent
    /// posts. Posts already `sending` are reported, not stopped (see
    /// `participation::remove_account`, which waits for them).
    async fn remove_account(
        &self,
        id: AccountId,
        now: DateTime<Utc>,
    ) -> Result<Withdrawal, StoreError>;

    // ── pledges ──────────────────────────────────────────────────────────────────────────

    /// Create the pledge or replace its settings and accounts; joining again re-activates a
    /// withdrawn pledge.
    async fn upsert_pledge(
        &self,
        new: &NewPledge,
        now: DateTime<Utc>,
    ) -> Result<PledgeId, StoreError>;
    async fn get_pledge(&self, id: PledgeId) -> Result<Option<Pledge>, StoreError>;
    /// Every pledge of a participant (active or withdrawn), in id order.
    async fn pledges_of(&self, participant: ParticipantId) -> Result<Vec<Pledge>, StoreError>;
    /// Active pledges of a campaign with `id > after`, in id order, at most `limit`: page
    /// through a million pledges without loading them all.
    async fn active_pledges(
        &self,
        campaign_id: &str,
        after: Option<PledgeId>,
        limit: u32,
    ) -> Result<Vec<Pledge>, StoreError>;
    /// In one transaction: withdraw the pledge (or, with `account`, detach only that account)
    /// and cancel its `pending`/`claimed` posts. Posts already `sending` are reported so the
    /// caller can wait for them; no other post of the pledge will be sent after this returns.
    async fn withdraw(
        &self,
        participant: ParticipantId,
        campaign_id: &str,
        account: Option<AccountId>,
        now: DateTime<Utc>,
    ) -> Result<Withdrawal, StoreError>;

    // ── planner ──────────────────────────────────────────────────────────────────────────

    /// Make the pledge's future posts match `rows` (see [`Store::apply_plans`]).
    async fn apply_plan(
        &self,
        pledge_id: PledgeId,
        campaign_id: &str,
        rows: &[PlannedPost],
        now: DateTime<Utc>,
    ) -> Result<PlanApplied, StoreError>;
    /// Many pledges' plans in one transaction. Missing rows are inserted; `pending` rows are
    /// refreshed and `cancelled` ones revived (re-joining after a withdrawal); future
    /// `pending` rows no longer planned are deleted. Rows that are claimed, sending or final
    /// are never touched, and plans of pledges that are not active (or whose campaign is
    /// cancelled) are skipped.
    async fn apply_plans(
        &self,
        plans: &[PledgePlan],
        now: DateTime<Utc>,
    ) -> Result<PlanApplied, StoreError>;

    // ── dispatcher ───────────────────────────────────────────────────────────────────────

    /// Lease up to `limit` due posts to `worker` until `lease_until`: `pending` rows with
    /// `run_at <= now`, and `claimed`/`sending` rows whose lease expired (a vanished worker;
    /// those from `sending` come back flagged `outcome_unknown`). Posts of withdrawn pledges,
    /// cancelled campaigns and accounts that are not active are never claimed. Exclusive:
    /// concurrent callers never get the same row.
    async fn claim_due(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedPost>, StoreError>;
    /// The point of no return, in one statement for the batch: `claimed` → `sending` for the
    /// rows still leased to `worker` whose pledge, account and campaign are still active and
    /// whose window (plus `grace`) is still open. Returns the ids that may be sent now; send
    /// nothing else.
    async fn begin_sending(
        &self,
        worker: &str,
        ids: &[OutboxId],
        now: DateTime<Utc>,
        grace: Duration,
    ) -> Result<Vec<OutboxId>, StoreError>;
    /// Record what happened to sent posts, all in one transaction.
    async fn record(&self, outcomes: &[Outcome], now: DateTime<Utc>) -> Result<(), StoreError>;
    /// Posts whose window closed more than `grace` ago without being sent become `missed`:
    /// `pending`/`claimed` ones, and `sending` ones whose worker's lease ran out.
    async fn expire_missed(&self, now: DateTime<Utc>, grace: Duration) -> Result<u64, StoreError>;
    /// When the next post becomes claimable (a due time or a lease expiry), if any. May be in
    /// the past: then there is work now.
    async fn next_due_at(&self) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// The current state of each of `ids` that exists.
    async fn outbox_states(
        &self,
        ids: &[OutboxId],
    ) -> Result<Vec<(OutboxId, OutboxState)>, StoreError>;

    // ── campaigns ────────────────────────────────────────────────────────────────────────

    /// Stop a campaign everywhere: cancel its unsent posts; later claims skip it.
    async fn cancel_campaign(
        &self,
        campaign_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Withdrawal, StoreError>;
    async fn campaign_cancelled(
        &self,
        campaign_id: &str,
    ) -> Result<Option<CampaignCancelled>, StoreError>;

    // ── reading ──────────────────────────────────────────────────────────────────────────

    /// A participant's posts (all campaigns, or one), by `run_at`.
    async fn outbox_for(
        &self,
        participant: ParticipantId,
        campaign_id: Option<&str>,
    ) -> Result<Vec<OutboxRow>, StoreError>;
    async fn outbox_counts(&self, campaign_id: &str) -> Result<OutboxCounts, StoreError>;
    /// Take or renew the lease `name` for `owner` until `until`, if nobody else holds it
    /// (singleton jobs across processes: one planner at a time).
    async fn try_lease(
        &self,
        name: &str,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Give up the lease `name` if `owner` holds it (a clean shutdown), so another process,
    /// or this one restarted, can take it at once instead of waiting for it to run out.
    /// True when it was held by `owner`.
    async fn release_lease(&self, name: &str, owner: &str) -> Result<bool, StoreError>;
    /// Record why the planner could not plan a pledge (`None`: it plans again). The pledge
    /// stays active: a later campaign edit or a new choice may make it plannable.
    async fn set_pledge_problem(
        &self,
        id: PledgeId,
        problem: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Active pledges of a campaign made no later than `created_before` (a campaign's
    /// tipping point counts the pledges made by its deadline).
    async fn active_pledge_count(
        &self,
        campaign_id: &str,
        created_before: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// How many (account, slot) pairs have more than one published row. The unique key makes
    /// this impossible; rehearsals report it as proof.
    async fn published_per_slot_duplicates(&self, campaign_id: &str) -> Result<u64, StoreError>;

    // ── signatures ───────────────────────────────────────────────────────────────────────

    /// Sign a campaign. The same canonical e-mail signing again is reported as a duplicate and
    /// not counted twice. A signature with a `confirm_token_hash` is recorded as mailed `now`.
    async fn add_signature(
        &self,
        new: &NewSignature,
        now: DateTime<Utc>,
    ) -> Result<SignatureAdded, StoreError>;
    /// A new confirmation token for an unconfirmed signature, recorded as mailed `now`: only
    /// if no confirmation was mailed after `not_since` (re-sends are rate-limited). The old
    /// token stops working. False when confirmed already or mailed too recently.
    async fn renew_signature_confirmation(
        &self,
        id: SignatureId,
        token_hash: &str,
        now: DateTime<Utc>,
        not_since: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// The confirmation mail could not be sent: signing again may retry at once.
    async fn confirmation_not_sent(&self, id: SignatureId) -> Result<(), StoreError>;
    /// Follow a confirmation link: the signature of `campaign_id` with this token hash now
    /// counts. Following it again changes nothing (`newly` is false); `None` when unknown.
    async fn confirm_signature(
        &self,
        campaign_id: &str,
        token_hash: &str,
    ) -> Result<Option<SignatureConfirmed>, StoreError>;
    /// Confirmed signatures: those that count.
    async fn signature_count(&self, campaign_id: &str) -> Result<u64, StoreError>;
    /// Confirmed signers who chose to be listed, oldest first. Never includes e-mail addresses.
    async fn public_signatures(
        &self,
        campaign_id: &str,
        limit: u32,
        offset: u64,
    ) -> Result<Vec<PublicSignature>, StoreError>;
    /// Where an invitation link `/i/{code}` leads: the code of a signature or a participant.
    async fn resolve_invite(&self, code: &str) -> Result<Option<InviteTarget>, StoreError>;
    /// Accounts pledged to a campaign (active pledges), per network.
    async fn accounts_by_network(
        &self,
        campaign_id: &str,
    ) -> Result<Vec<(NetworkKind, u64)>, StoreError>;
    /// People (signers and participants) who came through invitation code `code`.
    async fn invited_count(&self, code: &str) -> Result<u64, StoreError>;
    /// Confirmed signatures per invitation code (`invited_by`), most first.
    async fn invite_counts(&self, campaign_id: &str) -> Result<Vec<InviteCount>, StoreError>;

    // ── bulk ─────────────────────────────────────────────────────────────────────────────

    /// Many strikers at once, in one transaction with multi-row inserts: participants,
    /// their accounts and their pledges. For benchmarks and imports; the web and CLI use
    /// the one-at-a-time methods above. Each striker's account handles must differ.
    async fn bulk_join(
        &self,
        strikers: &[NewStriker],
        seal: SealMany<'_>,
        now: DateTime<Utc>,
    ) -> Result<Vec<JoinedStriker>, StoreError>;
}

/// Open (and create and migrate) the database named by `url`:
///
/// - `sqlite://PATH` or `sqlite:PATH`: SQLite, created on first use;
/// - a bare path: SQLite, only if the file exists (so a typo does not silently start an
///   empty database);
/// - `postgres://...` or `postgresql://...`: PostgreSQL.
pub async fn open(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PgStore::connect(url).await?));
    }
    if let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    {
        if path.is_empty() || path.starts_with(":memory:") {
            // Each pooled connection would get its own empty in-memory database.
            return Err(StoreError::UnsupportedUrl(url.to_string()));
        }
        return Ok(Arc::new(SqliteStore::open(Path::new(path), true).await?));
    }
    if url.contains("://") {
        return Err(StoreError::UnsupportedUrl(url.to_string()));
    }
    let path = Path::new(url);
    if !path.is_file() {
        return Err(StoreError::NoSuchFile(url.to_string()));
    }
    Ok(Arc::new(SqliteStore::open(path, false).await?))
}
