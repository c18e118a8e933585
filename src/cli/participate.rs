//! `picket account`, `join`, `withdraw`, `status`: the CLI's own user (one local
//! participant per database) running picket for themself.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use serde::Serialize;

use super::Format;
use crate::campaign::{self, Campaign};
use crate::clock::{Clock, SystemClock};
use crate::compose;
use crate::config::Settings;
use crate::crypto::{self, Vault};
use crate::domain::{Handle, NetworkKind, Zone};
use crate::participation::{self, Missing, ParticipationError, connect};
use crate::scheduler;
use crate::store::{self, AccountId, OutboxState, Store};

/// What the CLI commands share: settings, store, vault, clock.
pub struct Ctx {
    pub settings: Settings,
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
}

impl Ctx {
    pub async fn open(settings: Settings) -> anyhow::Result<Ctx> {
        let store = store::open(&settings.database_url).await.with_context(|| {
            format!(
                "opening the database {}",
                crate::app::redact_url(&settings.database_url)
            )
        })?;
        Ok(Ctx {
            settings,
            store,
            clock: Arc::new(SystemClock),
        })
    }

    /// Where adapters save refreshed credentials (a Bluesky session).
    pub fn credential_sink(&self, vault: &Vault) -> Arc<dyn crate::network::CredentialSink> {
        Arc::new(crate::app::StoreCredentials {
            store: self.store.clone(),
            vault: vault.clone(),
            clock: self.clock.clone(),
        })
    }

    /// The HTTP/WebSocket clients: trusted for what the operator types here, guarded (by
    /// `allow_private_addresses`) for accounts a visitor connected.
    pub fn egress(&self) -> crate::network::Egress {
        crate::network::Egress::new(self.settings.allow_private_addresses)
    }

    /// Every adapter, for checking and deleting posts from the command line.
    pub fn networks(&self, vault: &Vault) -> crate::network::Networks {
        crate::network::Networks::standard(
            self.credential_sink(vault),
            &self.egress(),
            &self.settings.public_url,
            self.clock.clone(),
        )
        .with_official_apis(
            &self.settings,
            self.credential_sink(vault),
            &self.egress(),
            self.clock.clone(),
        )
    }

    pub fn vault(&self) -> anyhow::Result<Vault> {
        Ok(Vault::open(
            self.settings.secret_key.as_ref(),
            &crypto::key_file_for(&self.settings.database_url),
        )?)
    }

    /// The campaign with this id in the campaigns folder.
    pub fn campaign(&self, id: &str) -> anyhow::Result<Campaign> {
        let campaigns = campaign::load_dir(&self.settings.campaigns_dir).map_err(|problems| {
            anyhow::anyhow!(
                "the campaigns in {} have problems:\n{}",
                self.settings.campaigns_dir.display(),
                problems
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?;
        let known: Vec<String> = campaigns.iter().map(|c| c.id.to_string()).collect();
        campaigns.into_iter().find(|c| c.id == id).ok_or_else(|| {
            anyhow::anyhow!(
                "no campaign `{id}` in {} (known: {})",
                self.settings.campaigns_dir.display(),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        })
    }

    /// How long a stop waits for posts already on the wire: a lease, since a worker that
    /// died mid-send cannot hold a row longer than that.
    fn max_wait(&self) -> StdDuration {
        participation::max_wait(self.settings.scheduler.lease_secs)
    }

    /// Store an account just connected as the command line's own user's, and say so.
    pub(super) async fn save_account(&self, account: &connect::Connected) -> anyhow::Result<()> {
        let me = self.me(None, Zone::UTC).await?;
        let id = participation::save_account(
            self.store.as_ref(),
            &self.vault()?,
            me,
            account,
            self.clock.now(),
        )
        .await?;
        println!("added {} account {id} {}", account.network, account.summary);
        Ok(())
    }

    pub(super) async fn me(
        &self,
        name: Option<&str>,
        tz: Zone,
    ) -> anyhow::Result<store::ParticipantId> {
        Ok(participation::local_participant(
            self.store.as_ref(),
            name.unwrap_or("me"),
            tz,
            self.clock.now(),
        )
        .await?)
    }
}

/// `picket account add sandbox`.
pub async fn add_sandbox(
    ctx: &Ctx,
    name: &str,
    server: Option<String>,
    token: Option<String>,
) -> anyhow::Result<()> {
    let server = server
        .unwrap_or_else(|| format!("{}/sandbox", ctx.settings.public_url.trim_end_matches('/')));
    // Without a token of its own, one this picket's /sandbox takes (it checks them).
    let token = match token {
        Some(t) => t,
        None => crate::sandbox::Issuer::new(ctx.vault()?).issue(),
    };
    let account = connect::sandbox(name, &server, Some(token))?;
    ctx.save_account(&account).await
}

/// `picket account add x|facebook|... --handle NAME`: a tap-to-post account.
pub async fn add_tap(ctx: &Ctx, network: NetworkKind, handle: &str) -> anyhow::Result<ExitCode> {
    let me = ctx.me(None, Zone::UTC).await?;
    // The operator typed it: trusted, though a tap account is never reached anyway.
    let added = participation::tap::add_tap_account(
        ctx.store.as_ref(),
        me,
        network,
        handle,
        true,
        ctx.clock.now(),
    )
    .await;
    match added {
        Ok(id) => {
            println!(
                "added {} account {id} {} (tap-to-post: picket reminds you at each slot with the notice ready; you post it)",
                network.as_str(),
                handle.trim()
            );
            if ctx.settings.smtp.is_none() {
                println!(
                    "note: this host has no [smtp] settings, so reminders are not mailed; see `picket status` and your page"
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(e),
    }
}

#[derive(Serialize)]
struct AccountView {
    id: i64,
    network: NetworkKind,
    handle: Handle,
    server: Option<String>,
    /// `api` (picket posts) or `tap` (picket reminds, you post).
    route: store::AccountRoute,
    status: String,
    status_reason: Option<String>,
    /// The day picket's access ends unless reconnected (or renewed) before.
    #[serde(skip_serializing_if = "Option::is_none")]
    reconnect_before: Option<String>,
}

/// `picket account list`.
pub async fn list_accounts(ctx: &Ctx, format: Format) -> anyhow::Result<()> {
    let me = ctx.me(None, Zone::UTC).await?;
    let vault = ctx.vault()?;
    let accounts: Vec<AccountView> = ctx
        .store
        .list_accounts(me)
        .await?
        .into_iter()
        .map(|a| AccountView {
            reconnect_before: connect::grant_ends(&vault, &a)
                .map(|at| at.format("%Y-%m-%d").to_string()),
            id: a.id.0,
            network: a.network,
            handle: a.handle,
            server: a.server,
            route: a.route,
            status: a.status.to_string(),
            status_reason: a.status_reason,
        })
        .collect();
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&accounts)?),
        Format::Text => {
            if accounts.is_empty() {
                println!(
                    "no accounts yet: add one with `picket account add sandbox --name NAME` (or mastodon, bluesky, nostr)"
                );
            }
            for a in accounts {
                let reason = match (a.status_reason, a.reconnect_before) {
                    (Some(r), _) => format!(" ({r})"),
                    (None, Some(day)) => format!(" (reconnect before {day})"),
                    (None, None) => String::new(),
                };
                println!(
                    "{:>4}  {:<9} {:<28} {}{}",
                    a.id, a.network, a.handle, a.status, reason
                );
            }
        }
    }
    Ok(())
}

/// `picket account remove ID`.
pub async fn remove_account(ctx: &Ctx, id: i64) -> anyhow::Result<ExitCode> {
    let me = ctx.me(None, Zone::UTC).await?;
    // Before its credentials go: they are what deletes its handed-off posts.
    if let Err(code) = recall(ctx, me, Some(AccountId(id)), true).await? {
        return Ok(code);
    }
    let removed = participation::remove_account(
        ctx.store.as_ref(),
        me,
        AccountId(id),
        ctx.clock.now(),
        ctx.max_wait(),
    )
    .await;
    let stopped = match removed {
        Ok(r) => r.stopped,
        Err(e) => return refused(e),
    };
    println!(
        "removed account {id}; {} unsent post(s) cancelled; its credentials are erased",
        stopped.cancelled
    );
    report_in_flight(stopped);
    Ok(ExitCode::SUCCESS)
}

/// A participant's action that did not happen, as the command line tells it: what the
/// person typed wrong is a message and exit code 2; a failure of the store or a network is
/// an error (exit code 1, through `cli::run`).
fn refused(e: ParticipationError) -> anyhow::Result<ExitCode> {
    let (code, msg) = answer(e)?;
    eprintln!("error: {msg}");
    Ok(ExitCode::from(code))
}

/// The exit code and message for `e`, or `e` itself when it is not the person's to fix.
fn answer(e: ParticipationError) -> anyhow::Result<(u8, String)> {
    Ok(match e {
        ParticipationError::Invalid(m) => (2, m),
        ParticipationError::NoAccounts => (
            2,
            "name at least one account with --account ID (see `picket account list`)".into(),
        ),
        ParticipationError::NotFound(Missing::Account(id)) => {
            (2, format!("no account {id}: see `picket account list`"))
        }
        ParticipationError::NotFound(Missing::Pledge(c)) => {
            (2, format!("you have not joined {c}: see `picket status`"))
        }
        ParticipationError::NotFound(Missing::Notice) => {
            (2, "no such notice: see `picket status`".into())
        }
        ParticipationError::NotFound(Missing::Participant) => (
            1,
            "this database has no participant any more: run the command again".into(),
        ),
        ParticipationError::Conflict(m) => (1, format!("{m}: run the command again")),
        e @ (ParticipationError::Store(_) | ParticipationError::Network(_)) => {
            return Err(e.into());
        }
    })
}

pub struct JoinArgs {
    pub campaign: String,
    pub accounts: Vec<i64>,
    pub tz: Option<String>,
    pub days: Option<Vec<NaiveDate>>,
    pub every: Option<String>,
    pub name: Option<String>,
    pub email: Option<String>,
    /// `--hand-off`: hand Mastodon posts to the server's own scheduler.
    pub hand_off: bool,
}

/// `picket join`: pledge, then plan the posts at once so `status` shows them.
pub async fn join(ctx: &Ctx, args: JoinArgs) -> anyhow::Result<ExitCode> {
    let campaign = ctx.campaign(&args.campaign)?;
    let tz_name = args.tz.clone().unwrap_or_else(|| "UTC".into());
    let participation = match participation::choices(
        &campaign,
        &tz_name,
        args.days.clone(),
        args.every.as_deref(),
    ) {
        Ok(p) => p,
        Err(msg) => {
            eprintln!("error: {msg}");
            return Ok(ExitCode::from(2));
        }
    };
    // Checked before anything is stored: a typo here must not leave a half-made pledge.
    let email = match args.email.as_deref().map(participation::tap::check_email) {
        None => None,
        Some(Ok(e)) => Some(e),
        Some(Err(e)) => return refused(e),
    };
    let me = ctx.me(args.name.as_deref(), participation.tz).await?;
    let now = ctx.clock.now();
    if let Some(email) = &email
        && let Err(e) = participation::tap::set_email(ctx.store.as_ref(), me, email).await
    {
        return refused(e);
    }
    let ids: Vec<AccountId> = args.accounts.iter().map(|&i| AccountId(i)).collect();
    let spread = chrono::Duration::seconds(ctx.settings.scheduler.jitter_secs as i64);
    let pledged = match participation::pledge(
        ctx.store.as_ref(),
        &campaign,
        me,
        &participation,
        &ids,
        spread,
        now,
        ctx.max_wait(),
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return refused(e),
    };
    println!(
        "joined {} in {tz_name}: {} post(s) planned on {} account(s); see `picket status {}`",
        campaign.id, pledged.planned, pledged.accounts, campaign.id
    );
    // Joining again replaces the accounts: say plainly which changed.
    for (what, accounts) in [
        ("added", &pledged.added),
        ("stopped posting", &pledged.stopped),
    ] {
        for a in accounts {
            println!(
                "{what}: account {} ({} {})",
                a.id,
                a.network.label(),
                a.handle
            );
        }
    }
    if !pledged.stopped.is_empty() {
        println!(
            "{} unsent post(s) of the accounts left out cancelled",
            pledged.stopped_posts.cancelled
        );
        report_in_flight(pledged.stopped_posts);
    }
    // Checked after pledging, so only the participant's own accounts are ever checked.
    let vault = ctx.vault()?;
    let networks = ctx.networks(&vault);
    let checked =
        scheduler::verify::verify_accounts(ctx.store.as_ref(), &networks, &vault, &ids, now)
            .await?;
    if checked.broken > 0 {
        eprintln!(
            "warning: {} account(s) refused their credentials and are marked \"reconnect needed\"; \
             their posts will wait until you add them again (see `picket account list`)",
            checked.broken
        );
    }
    if checked.unknown > 0 {
        eprintln!(
            "note: {} account(s) could not be checked now (network unreachable)",
            checked.unknown
        );
    }
    if args.hand_off {
        let chosen = match participation::choose_hand_off(
            ctx.store.as_ref(),
            &networks,
            &vault,
            me,
            &ids,
            now,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => return refused(e),
        };
        let rows = ctx.store.outbox_for(me, Some(campaign.id.as_str())).await?;
        for c in chosen {
            match c {
                participation::HandOffChoice::On { account, software } => {
                    // The dispatcher's own rule, over this account's planned posts.
                    let mut at: Vec<_> = rows
                        .iter()
                        .filter(|r| r.account_id == account && r.state == OutboxState::Pending)
                        .map(|r| r.run_at)
                        .collect();
                    at.sort();
                    let plan = scheduler::dispatcher::handoff::plan(&[], &at, now);
                    let handed = plan.iter().filter(|h| **h).count();
                    println!(
                        "account {}: {handed} of its {} planned post(s) go to its server's own \
                         scheduler ({software}); picket sends the other {} itself (closer \
                         than 6 minutes, or over the server's 25 a day / 300 in all)",
                        account.0,
                        at.len(),
                        at.len() - handed
                    );
                }
                participation::HandOffChoice::Off { account, why } => println!(
                    "account {}: not handed off ({why}); picket sends its posts itself",
                    account.0
                ),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `picket withdraw`: returns only once no further post of the pledge can go out.
pub async fn withdraw(
    ctx: &Ctx,
    campaign_id: &str,
    account: Option<i64>,
    delete_posts: bool,
) -> anyhow::Result<ExitCode> {
    let me = ctx.me(None, Zone::UTC).await?;
    let stopped = match participation::withdraw(
        ctx.store.as_ref(),
        me,
        campaign_id,
        account.map(AccountId),
        ctx.clock.now(),
        ctx.max_wait(),
    )
    .await
    {
        Ok(s) => s,
        Err(e) => return refused(e),
    };
    match account {
        Some(a) => println!(
            "account {a} withdrawn from {campaign_id}: {} post(s) cancelled",
            stopped.cancelled
        ),
        None => println!(
            "withdrawn from {campaign_id}: {} post(s) cancelled",
            stopped.cancelled
        ),
    }
    report_in_flight(stopped);
    if let Err(e) = recall(ctx, me, account.map(AccountId), false).await? {
        return Ok(e);
    }
    if delete_posts {
        return delete_published(ctx, me, campaign_id, account.map(AccountId)).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Delete the handed-off posts that may no longer go out from the servers' schedules
/// (with `all`, every one of `account`, which is being removed) and say so.
/// `Ok(Err(code))`: refused, and the exit code.
async fn recall(
    ctx: &Ctx,
    me: store::ParticipantId,
    account: Option<AccountId>,
    all: bool,
) -> anyhow::Result<Result<(), ExitCode>> {
    let vault = ctx.vault()?;
    let networks = ctx.networks(&vault);
    let recalled = match participation::recall_handed_off(
        ctx.store.as_ref(),
        &networks,
        &vault,
        me,
        account,
        all,
        ctx.clock.now(),
        ctx.max_wait(),
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return refused(e).map(Err),
    };
    if recalled.deleted > 0 {
        println!(
            "{} handed-off post(s) deleted from the server's schedule",
            recalled.deleted
        );
    }
    for why in &recalled.failed {
        eprintln!(
            "a handed-off post could not be deleted from the server's schedule ({why}); \
             picket keeps trying while it runs, or delete it on the server"
        );
    }
    Ok(Ok(()))
}

/// Delete this pledge's published notices from the networks.
async fn delete_published(
    ctx: &Ctx,
    me: store::ParticipantId,
    campaign_id: &str,
    account: Option<AccountId>,
) -> anyhow::Result<ExitCode> {
    let vault = ctx.vault()?;
    let networks = ctx.networks(&vault);
    let report = match participation::delete_published(
        ctx.store.as_ref(),
        &networks,
        &vault,
        me,
        Some(campaign_id),
        account,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    for (post, why) in &report.failed {
        eprintln!("could not delete {post}: {why}");
    }
    println!(
        "{} published post(s) deleted from the networks",
        report.deleted
    );
    if !report.failed.is_empty() {
        println!(
            "{} could not be deleted (see above); delete them by hand",
            report.failed.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn report_in_flight(stopped: scheduler::Stopped) {
    if stopped.went_out > 0 {
        println!(
            "{} post(s) were already on their way and went out",
            stopped.went_out
        );
    }
    if stopped.unsettled > 0 {
        println!(
            "{} post(s) were being sent by a worker that stopped answering; they will not be retried",
            stopped.unsettled
        );
    }
}

#[derive(Serialize)]
struct StatusRow {
    id: i64,
    campaign: String,
    account: i64,
    post: String,
    state: OutboxState,
    run_at: chrono::DateTime<Utc>,
    window_end: chrono::DateTime<Utc>,
    attempts: i64,
    url: Option<String>,
    published_at: Option<chrono::DateTime<Utc>>,
    error: Option<String>,
    text: Option<String>,
    /// A tap-to-post notice due now (`reminded`, or the post of an account that needs
    /// reconnecting, due meanwhile by hand): its prefilled compose link, if the network
    /// has one (fixed name, DESIGN.md) ...
    #[serde(skip_serializing_if = "Option::is_none")]
    compose_url: Option<String>,
    /// ... or the text to copy where the link does not carry it (fixed name).
    #[serde(skip_serializing_if = "Option::is_none")]
    copy_text: Option<String>,
    /// The address of a notice posted by hand, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    posted_url: Option<String>,
}

/// `picket status`.
pub async fn status(ctx: &Ctx, campaign: Option<&str>, format: Format) -> anyhow::Result<()> {
    let me = ctx.me(None, Zone::UTC).await?;
    let accounts = ctx.store.list_accounts(me).await?;
    let outbox = ctx.store.outbox_for(me, campaign).await?;
    let now = ctx.clock.now();
    let account_of = |r: &store::OutboxRow| accounts.iter().find(|a| a.id == r.account_id);
    let fallback = |r: &store::OutboxRow| {
        account_of(r).is_some_and(|a| participation::tap::is_fallback(r, a, now))
    };
    // A post that waits for its account to be reconnected is due by hand meanwhile: its
    // text is rendered as the dispatcher would (only then: it is the whole preview).
    let planned = match ctx.store.get_participant(me).await? {
        Some(who) if outbox.iter().any(fallback) => {
            let campaigns = campaign::load_dir(&ctx.settings.campaigns_dir).unwrap_or_default();
            participation::tap::planned_texts(
                ctx.store.as_ref(),
                &campaigns,
                &ctx.settings.public_url,
                &who,
                &accounts,
            )
            .await?
        }
        _ => Default::default(),
    };
    let rows: Vec<StatusRow> = outbox
        .into_iter()
        .map(|r| {
            let text = match r.state {
                OutboxState::Reminded => r.text.clone(),
                _ if fallback(&r) => planned.get(&(r.account_id, r.slot_key.clone())).cloned(),
                _ => None,
            };
            let tap = text.and_then(|text| {
                let a = account_of(&r)?;
                Some(compose::intent::tap(a.network, a.server.as_deref(), &text))
            });
            (r, tap)
        })
        .map(|(r, tap)| StatusRow {
            compose_url: tap.as_ref().and_then(|t| t.compose_url.clone()),
            copy_text: tap.and_then(|t| t.copy_text),
            posted_url: r.confirmed_url,
            id: r.id.0,
            campaign: r.campaign_id.to_string(),
            account: r.account_id.0,
            post: r.post_name,
            state: r.state,
            run_at: r.run_at,
            window_end: r.window_end,
            attempts: r.attempts,
            url: r.remote_url,
            published_at: r.published_at,
            error: r.last_error,
            text: r.text,
        })
        .collect();
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("nothing planned: join a campaign with `picket join CAMPAIGN --account ID`");
        return Ok(());
    }
    let groups = [
        (
            "upcoming",
            &[
                OutboxState::Pending,
                OutboxState::Claimed,
                OutboxState::Sending,
                OutboxState::HandingOff,
            ][..],
        ),
        (
            "handed off to the server's own scheduler",
            &[OutboxState::HandedOff][..],
        ),
        ("to post by hand now", &[OutboxState::Reminded][..]),
        ("published", &[OutboxState::Published][..]),
        ("posted by hand", &[OutboxState::PostedByHand][..]),
        ("failed", &[OutboxState::Failed][..]),
        ("missed", &[OutboxState::Missed][..]),
        ("cancelled", &[OutboxState::Cancelled][..]),
    ];
    for (title, states) in groups {
        let group: Vec<&StatusRow> = rows.iter().filter(|r| states.contains(&r.state)).collect();
        if group.is_empty() {
            continue;
        }
        println!("{title} ({}):", group.len());
        for r in group {
            let detail = match r.state {
                OutboxState::Published => r.url.clone().unwrap_or_default(),
                OutboxState::Reminded => r
                    .compose_url
                    .clone()
                    .or_else(|| r.copy_text.as_ref().map(|t| format!("copy: {t}")))
                    .unwrap_or_default(),
                OutboxState::PostedByHand => r.posted_url.clone().unwrap_or_default(),
                OutboxState::Failed | OutboxState::Missed => r.error.clone().unwrap_or_default(),
                OutboxState::Pending if r.attempts > 0 => {
                    format!("retrying: {}", r.error.clone().unwrap_or_default())
                }
                _ => String::new(),
            };
            println!(
                "  {}  {:<20} account {:<4} {:<12} {}",
                r.run_at.format("%Y-%m-%d %H:%M:%SZ"),
                r.campaign,
                r.account,
                r.post,
                detail
            );
        }
    }
    Ok(())
}

/// `picket campaign cancel`.
pub async fn cancel_campaign(ctx: &Ctx, id: &str, reason: &str) -> anyhow::Result<()> {
    let stopped = scheduler::cancel_campaign(
        ctx.store.as_ref(),
        id,
        reason,
        ctx.clock.now(),
        ctx.max_wait(),
    )
    .await?;
    println!(
        "campaign {id} cancelled: {} post(s) will not be sent",
        stopped.cancelled
    );
    report_in_flight(stopped);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_person_typed_wrong_exits_2_with_what_to_do() {
        let cases = [
            (
                ParticipationError::NotFound(Missing::Account(AccountId(9))),
                "no account 9: see `picket account list`",
            ),
            (
                ParticipationError::NotFound(Missing::Pledge("strike".into())),
                "you have not joined strike: see `picket status`",
            ),
            (
                ParticipationError::NoAccounts,
                "name at least one account with --account ID (see `picket account list`)",
            ),
            (
                ParticipationError::Invalid("unknown time zone".into()),
                "unknown time zone",
            ),
        ];
        for (e, said) in cases {
            assert_eq!(answer(e).unwrap(), (2, said.to_string()));
        }
    }

    #[test]
    fn a_change_made_meanwhile_exits_1_and_says_to_run_again() {
        let (code, said) = answer(ParticipationError::Conflict(
            "the pledge was deleted".into(),
        ))
        .unwrap();
        assert_eq!(code, 1);
        assert!(said.ends_with("run the command again"), "{said}");
    }

    #[test]
    fn a_failing_store_or_network_is_an_error_not_an_answer() {
        let store = ParticipationError::Store(store::StoreError::Corrupt("x".into()));
        assert!(answer(store).is_err());
        let network = ParticipationError::Network(connect::ConnectError::Invalid("x".into()));
        assert!(answer(network).is_err());
    }
}
