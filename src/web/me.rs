//! `/me`: a participant's own page, opened with their magic link. Their strikes and
//! posts (scheduled, published with links, failed, missed), their accounts, how many
//! people they brought in; withdraw, change, remove an account, an ICS calendar of their
//! strike, and "delete all my data"; tap-to-post notices due now come first, each with its
//! compose link or text to copy and "I posted it" (also reached from the reminder mail's
//! single-purpose link, `/me/posted/{token}`, a page whose button POSTs). Also signing in and out: opening a link (asking first
//! when the browser is someone else's), a new link, signing out (see [`super::session`]).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::error::NOT_YOUR_ACCOUNT;
use super::form::{Fields, Form, page_with_csrf};
use super::session::signed_in;
use super::views::{AccountView, account_view, local_label};
use super::{AppState, WebError, guard, session};
use crate::compose::intent;
use crate::domain::{CampaignId, Zone};
use crate::participation;
use crate::participation::tap::Confirmer;
use crate::scheduler::planner;
use crate::store::{AccountId, AccountRoute, OutboxId, OutboxState, Participant, PledgeStatus};

#[derive(Deserialize)]
pub struct MeQuery {
    /// The magic link's token; traded for a cookie at once.
    t: Option<String>,
    ok: Option<String>,
    msg: Option<String>,
}

#[derive(Serialize)]
struct PledgeView {
    campaign_id: CampaignId,
    title: String,
    active: bool,
    tz: Zone,
    days: String,
    every: Option<String>,
    posts: Vec<PostView>,
    counts: Counts,
}

#[derive(Serialize, Default)]
struct Counts {
    scheduled: usize,
    published: usize,
    failed: usize,
    missed: usize,
    /// Tap-to-post notices shown to the participant and not confirmed yet.
    reminded: usize,
    posted_by_hand: usize,
}

/// A tap-to-post notice due now: what to post, where, and the "I posted it" form.
#[derive(Serialize)]
struct DueView {
    id: i64,
    title: String,
    when: String,
    text: String,
    /// An API account's post that waits for a reconnect: shown to post by hand instead.
    fallback: bool,
    #[serde(flatten)]
    links: intent::NoticeLinks,
}

#[derive(Serialize)]
struct PostView {
    when: String,
    account: String,
    name: String,
    state: &'static str,
    url: Option<String>,
    note: Option<String>,
}

#[derive(Serialize)]
struct MePage {
    csrf: String,
    name: String,
    invite_link: String,
    invited: u64,
    /// Tap-to-post notices due now, shown first.
    due: Vec<DueView>,
    pledges: Vec<PledgeView>,
    accounts: Vec<AccountView>,
    /// Until when their current magic link works, if they have one that does.
    link_until: Option<String>,
    /// The host's Web Push public key, for "Remind me in this browser".
    push_key: String,
    /// How many browsers remind them.
    push_browsers: usize,
    ok: Option<String>,
    msg: Option<String>,
}

/// What `/me?t=` says when a link does not open anything.
const DEAD_LINK: &str = "This link does not work (any more): a link works for a limited time, and only the newest one works; signing out ends it too. Open your page where you are still signed in to get a new link, or ask for one by mail at /me/new-link. If you deleted your data, join again.";

#[derive(Serialize)]
struct SwitchPage {
    csrf: String,
    /// Who this browser is signed in as now.
    current: String,
    /// Whose page the link opens.
    owner: String,
    token: String,
}

/// `GET /me`: with `?t=TOKEN` (the magic link) sign this browser in and come back without
/// the token in the address bar; otherwise show the signed-in participant's page. A
/// browser signed in as someone else is asked first, never switched by a GET.
pub async fn page(
    State(state): State<AppState>,
    Query(q): Query<MeQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if let Some(token) = q.t {
        let Some(owner) = session::link_owner(&state, &token).await? else {
            return Err(WebError::NotFound(DEAD_LINK.into()));
        };
        return match session::participant(&state, &headers).await? {
            Some((me, _)) if me.id == owner.id => Ok(Redirect::to("/me").into_response()),
            Some((me, _)) => {
                let csrf = guard::form_token(&headers);
                let page = SwitchPage {
                    csrf: csrf.clone(),
                    current: me.name,
                    owner: owner.name,
                    token,
                };
                page_with_csrf(&state, "switch.html", &page, &csrf, StatusCode::OK)
            }
            None => {
                let cookie = session::start(&state, owner.id, false).await?;
                Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/me")).into_response())
            }
        };
    }
    let (me, _) = signed_in(&state, &headers).await?;
    let csrf = guard::form_token(&headers);
    let accounts = state.store.list_accounts(me.id).await?;
    let now = state.clock.now();
    let page = MePage {
        link_until: me.link_expires_at.filter(|t| *t > now).map(session::until),
        csrf: csrf.clone(),
        name: me.name.clone(),
        invite_link: format!(
            "{}/i/{}",
            state.settings.public_url.trim_end_matches('/'),
            me.invite_code
        ),
        invited: state.store.invited_count(&me.invite_code).await?,
        due: due_now(&state, &me, &accounts).await?,
        pledges: pledges(&state, &me, &accounts).await?,
        accounts: accounts
            .iter()
            .map(|a| account_view(a, &state.vault))
            .collect(),
        push_key: state.vapid.public_key(),
        push_browsers: state.store.push_subscriptions_of(me.id).await?.len(),
        ok: q.ok,
        msg: q.msg,
    };
    page_with_csrf(&state, "me.html", &page, &csrf, StatusCode::OK)
}

/// The participant's `reminded` notices, newest slot first: each with its compose link
/// or text to copy, its card, and its "I posted it" form.
async fn due_now(
    state: &AppState,
    me: &Participant,
    accounts: &[crate::store::Account],
) -> Result<Vec<DueView>, WebError> {
    let site = state.settings.public_url.trim_end_matches('/');
    let zones: std::collections::HashMap<CampaignId, chrono_tz::Tz> = state
        .store
        .pledges_of(me.id)
        .await?
        .into_iter()
        .map(|p| (p.campaign_id, p.tz.tz()))
        .collect();
    let now = state.clock.now();
    let rows = state.store.outbox_for(me.id, None).await?;
    let account_of = |r: &crate::store::OutboxRow| accounts.iter().find(|a| a.id == r.account_id);
    let fallback = |r: &crate::store::OutboxRow| {
        account_of(r).is_some_and(|a| participation::tap::is_fallback(r, a, now))
    };
    // Rendered only when a fallback is due: it is the join preview's whole computation.
    let rendered = if rows.iter().any(fallback) {
        tap_texts(state, me, accounts).await?
    } else {
        Default::default()
    };
    let mut out = Vec::new();
    for r in rows {
        let is_fallback = fallback(&r);
        if r.state != OutboxState::Reminded && !is_fallback {
            continue;
        }
        let text = r
            .text
            .clone()
            .or_else(|| rendered.get(&(r.account_id, r.slot_key.clone())).cloned());
        let (Some(text), Some(account)) = (text, account_of(&r)) else {
            continue;
        };
        let tz = zones.get(&r.campaign_id).copied().unwrap_or(chrono_tz::UTC);
        out.push(DueView {
            id: r.id.0,
            title: state
                .campaign(&r.campaign_id)
                .map_or_else(|| r.campaign_id.to_string(), |c| c.title.clone()),
            when: local_label(r.run_at, tz),
            links: intent::notice_links(
                account.network,
                &account.handle,
                account.server.as_deref(),
                &text,
                site,
                &r.campaign_id,
                card_day(state, &r, tz),
            ),
            text,
            fallback: is_fallback,
        });
    }
    out.reverse();
    Ok(out)
}

async fn pledges(
    state: &AppState,
    me: &Participant,
    accounts: &[crate::store::Account],
) -> Result<Vec<PledgeView>, WebError> {
    let handle = |id: AccountId| {
        accounts
            .iter()
            .find(|a| a.id == id)
            .map(|a| format!("{} {}", a.network.label(), a.handle))
            .unwrap_or_else(|| format!("account {id}"))
    };
    let mut out = Vec::new();
    for pledge in state.store.pledges_of(me.id).await? {
        let tz = pledge.tz;
        let mut counts = Counts::default();
        let posts = state
            .store
            .outbox_for(me.id, Some(&pledge.campaign_id))
            .await?
            .into_iter()
            .filter(|r| r.state != OutboxState::Cancelled)
            .map(|r| {
                match r.state {
                    OutboxState::Published => counts.published += 1,
                    OutboxState::Failed => counts.failed += 1,
                    OutboxState::Missed => counts.missed += 1,
                    OutboxState::Reminded => counts.reminded += 1,
                    OutboxState::PostedByHand => counts.posted_by_hand += 1,
                    _ => counts.scheduled += 1,
                }
                PostView {
                    when: local_label(r.published_at.unwrap_or(r.run_at), tz),
                    account: handle(r.account_id),
                    name: r.post_name,
                    state: match r.state {
                        OutboxState::Published => "published",
                        OutboxState::Failed => "failed",
                        OutboxState::Missed => "missed",
                        OutboxState::Reminded => "to post by hand",
                        OutboxState::PostedByHand => "posted by hand",
                        // On the account's server's own schedule: it goes out from there.
                        OutboxState::HandedOff => "handed off to your server",
                        _ => "scheduled",
                    },
                    // A link only to a web page: an address a network sent back could be
                    // anything (javascript:, or the sandbox's own sandbox:// scheme). The
                    // address of a post by hand was checked to be on its network.
                    url: r
                        .remote_url
                        .or(r.confirmed_url)
                        .filter(|u| u.starts_with("https://") || u.starts_with("http://")),
                    note: r
                        .last_error
                        .filter(|_| matches!(r.state, OutboxState::Failed | OutboxState::Missed)),
                }
            })
            .collect();
        let title = state
            .campaign(&pledge.campaign_id)
            .map_or_else(|| pledge.campaign_id.to_string(), |c| c.title.clone());
        out.push(PledgeView {
            title,
            active: pledge.status == PledgeStatus::Active,
            days: match &pledge.days {
                None => "all strike days".into(),
                Some(d) => d
                    .iter()
                    .map(|d| d.format("%a %-d %b %Y").to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            every: pledge
                .every_secs
                .and_then(chrono::Duration::try_seconds)
                .map(crate::campaign::fmt_duration),
            tz: pledge.tz,
            campaign_id: pledge.campaign_id,
            posts,
            counts,
        });
    }
    Ok(out)
}

fn back(key: &str, msg: &str) -> Response {
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(key, msg)
        .finish();
    Redirect::to(&format!("/me?{q}")).into_response()
}

/// The signed-in participant, their session token and the form's fields, if the form is
/// theirs to send (see [`Form::checked`]).
async fn checked<'f>(
    state: &AppState,
    headers: &HeaderMap,
    form: &'f Form,
) -> Result<(Participant, String, &'f Fields), WebError> {
    let (me, session) = signed_in(state, headers).await?;
    let f = form.checked()?;
    Ok((me, session, f))
}

/// `POST /me/switch`: the answer to the page `/me?t=` shows a browser signed in as someone
/// else: end this browser's session and sign it in as the link's owner.
pub async fn switch(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    let f = form.checked()?;
    let Some(owner) = session::link_owner(&state, &f.text("t")).await? else {
        return Err(WebError::NotFound(DEAD_LINK.into()));
    };
    if let Some((_, token)) = session::participant(&state, &headers).await? {
        session::end(&state, &token).await?;
    }
    let cookie = session::start(&state, owner.id, false).await?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/me")).into_response())
}

#[derive(Serialize)]
struct LinkPage {
    name: String,
    magic_link: String,
    until: String,
    mailed: bool,
}

/// `POST /me/link`: a new magic link. The old one stops working and every other browser
/// signed in as this participant is signed out (whoever opened a leaked link among them);
/// this browser gets a new session. The link is shown once, and mailed when possible.
pub async fn new_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    let (me, _, _) = checked(&state, &headers, &form).await?;
    let cookie = session::start(&state, me.id, true).await?;
    let (magic_link, expires) = session::new_link(&state, me.id).await?;
    let until = session::until(expires);
    let mailed = mail_link(&state, &me, &magic_link, &until).await;
    let html = state
        .pages
        .render(
            "link.html",
            &LinkPage {
                name: me.name,
                magic_link,
                until,
                mailed,
            },
        )
        .map_err(|e| WebError::Internal(e.into()))?;
    Ok(([(header::SET_COOKIE, cookie)], Html(html)).into_response())
}

/// Mail `link` to the participant when the host can and they gave an address. True when it
/// was sent, or held back by the address's mail budget: the page says the same either way,
/// so it tells no one whether someone else had mail sent there (see `mail::Budgeted`).
pub(crate) async fn mail_link(state: &AppState, me: &Participant, link: &str, until: &str) -> bool {
    let (Some(mailer), Some(to)) = (state.mailer.as_deref(), me.email.as_deref()) else {
        return false;
    };
    match crate::mail::magic_link(mailer, &state.pages, to, &me.name, link, until).await {
        Ok(()) => true,
        Err(crate::mail::MailError::OverBudget) => {
            tracing::info!(
                participant = me.id.0,
                "the magic link was not mailed: the address had its mails for the hour"
            );
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "the magic link could not be mailed");
            false
        }
    }
}

/// `POST /me/withdraw`: stop a pledge (or one account of it); returns once nothing more
/// of it can go out. Optionally deletes the notices already published.
pub async fn withdraw(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    let (me, _, f) = checked(&state, &headers, &form).await?;
    let campaign = f.text("campaign");
    let stopped = participation::withdraw(
        state.store.as_ref(),
        me.id,
        &campaign,
        None,
        state.clock.now(),
        participation::max_wait(state.settings.scheduler.lease_secs),
    )
    .await?;
    let mut said = format!(
        "You have withdrawn: {} scheduled post(s) cancelled.",
        stopped.cancelled
    );
    if stopped.went_out > 0 {
        said.push_str(&format!(
            " {} post(s) were already on their way and went out.",
            stopped.went_out
        ));
    }
    let recalled = participation::recall_handed_off(
        state.store.as_ref(),
        &state.networks,
        &state.vault,
        me.id,
        None,
        false,
        state.clock.now(),
        participation::max_wait(state.settings.scheduler.lease_secs),
    )
    .await?;
    said.push_str(&recalled_note(&recalled));
    if f.get("delete_posts").is_some() {
        let report = participation::delete_published(
            state.store.as_ref(),
            &state.networks,
            &state.vault,
            me.id,
            Some(&campaign),
            None,
        )
        .await?;
        said.push_str(&deleted_note(&report));
    }
    Ok(back("ok", &said))
}

/// What became of the posts handed to the servers' schedulers, if there were any.
fn recalled_note(r: &participation::Recalled) -> String {
    let mut s = String::new();
    if r.deleted > 0 {
        s.push_str(&format!(
            " {} handed-off post(s) deleted from your server's schedule.",
            r.deleted
        ));
    }
    if !r.failed.is_empty() {
        s.push_str(&format!(
            " {} handed-off post(s) could not be deleted from your server's schedule yet              (picket keeps trying; you can delete them there under scheduled posts).",
            r.failed.len()
        ));
    }
    s
}

fn deleted_note(report: &participation::Deleted) -> String {
    let mut s = format!(
        " {} published notice(s) deleted from the networks.",
        report.deleted
    );
    if !report.failed.is_empty() {
        s.push_str(&format!(
            " {} could not be deleted; delete them by hand: {}",
            report.failed.len(),
            report
                .failed
                .iter()
                .map(|(link, _)| link.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ));
    }
    s
}

/// `POST /me/accounts/remove`: forget an account; its credentials are erased and its
/// unsent posts cancelled. Answers only once none of its posts can still go out.
pub async fn remove_account(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    let (me, _, f) = checked(&state, &headers, &form).await?;
    let Ok(id) = f.text("account").parse::<i64>().map(AccountId) else {
        return Err(WebError::Invalid(NOT_YOUR_ACCOUNT.into()));
    };
    // Before its credentials go: they are what deletes its handed-off posts.
    let recalled = participation::recall_handed_off(
        state.store.as_ref(),
        &state.networks,
        &state.vault,
        me.id,
        Some(id),
        true,
        state.clock.now(),
        participation::max_wait(state.settings.scheduler.lease_secs),
    )
    .await?;
    let removed = participation::remove_account(
        state.store.as_ref(),
        me.id,
        id,
        state.clock.now(),
        participation::max_wait(state.settings.scheduler.lease_secs),
    )
    .await?;
    let mut said = format!(
        "Removed your {} account {}: {} scheduled post(s) cancelled.",
        removed.account.network.label(),
        removed.account.handle,
        removed.stopped.cancelled
    );
    if removed.stopped.went_out > 0 {
        said.push_str(&format!(
            " {} post(s) were already on their way and went out.",
            removed.stopped.went_out
        ));
    }
    said.push_str(&recalled_note(&recalled));
    Ok(back("ok", &said))
}

/// `POST /me/delete`: delete everything picket holds about the participant: accounts with
/// their credentials, pledges, posts; optionally the published notices first.
pub async fn delete_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    let (me, _, f) = checked(&state, &headers, &form).await?;
    if f.get("confirm").is_none() {
        return Ok(back(
            "msg",
            "Tick the box to confirm that everything should be deleted.",
        ));
    }
    let erased = participation::delete_everything(
        state.store.as_ref(),
        &state.networks,
        &state.vault,
        me.id,
        f.get("delete_posts").is_some(),
        state.clock.now(),
        participation::max_wait(state.settings.scheduler.lease_secs),
    )
    .await?;
    let note = erased
        .published
        .as_ref()
        .map(deleted_note)
        .unwrap_or_default()
        + &recalled_note(&erased.recalled);
    let html = state
        .pages
        .render(
            "deleted.html",
            &serde_json::json!({ "name": me.name, "note": note.trim() }),
        )
        .map_err(|e| WebError::Internal(e.into()))?;
    Ok((
        [(
            header::SET_COOKIE,
            session::sign_out(state.secure_cookies()),
        )],
        Html(html),
    )
        .into_response())
}

/// `POST /me/logout`: sign this device out, and end the magic link too, so a copy of it
/// left in a mailbox or a browser history opens nothing. Other devices stay signed in;
/// from one of them, or by mail, the participant gets a new link.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    let (me, session, _) = checked(&state, &headers, &form).await?;
    let cookie = session::end(&state, &session).await?;
    state.store.set_link(me.id, None).await?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response())
}

/// `GET /me/strike.ics`: the participant's strike days and scheduled notices as a
/// calendar, to import into any calendar program.
pub async fn calendar(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    use icalendar::{Alarm, Calendar, Component, Event, EventLike, Related};
    let (me, _) = signed_in(&state, &headers).await?;
    let host = url::Url::parse(&state.settings.public_url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "picket".into());
    let mut cal = Calendar::new();
    cal.name("My strike (picket)");
    for pledge in state.store.pledges_of(me.id).await? {
        if pledge.status != PledgeStatus::Active {
            continue;
        }
        let Some(c) = state.campaign(&pledge.campaign_id) else {
            continue;
        };
        let Ok(p) = planner::participation(&pledge) else {
            continue;
        };
        let url = format!(
            "{}/c/{}",
            state.settings.public_url.trim_end_matches('/'),
            c.id
        );
        for period in c.periods(&p) {
            cal.push(
                Event::new()
                    .uid(&format!("{}-{}-day{}@{host}", c.id, pledge.id, period.day))
                    .summary(&format!("{} #{} (day {})", c.title, c.hashtag, period.day))
                    .description(&format!(
                        "Strike: no posting today. picket posts your strike notices. {url}"
                    ))
                    .starts(period.start)
                    .ends(period.end)
                    .url(&url)
                    .done(),
            );
        }
    }
    let accounts = state.store.list_accounts(me.id).await?;
    let texts = tap_texts(&state, &me, &accounts).await?;
    let site = state.settings.public_url.trim_end_matches('/');
    for row in state.store.outbox_for(me.id, None).await? {
        let tap = accounts
            .iter()
            .find(|a| a.id == row.account_id && a.route == AccountRoute::Tap);
        match (row.state, tap) {
            (OutboxState::Pending, None) => {
                cal.push(
                    Event::new()
                        .uid(&format!("post-{}@{host}", row.id))
                        .summary(&format!("picket posts “{}”", row.post_name))
                        .starts(row.run_at)
                        .ends(row.run_at + chrono::Duration::minutes(5))
                        .done(),
                );
            }
            // A notice to post by hand: an alarm at its minute, with what to tap.
            (OutboxState::Pending | OutboxState::Claimed | OutboxState::Reminded, Some(a)) => {
                let text = row
                    .text
                    .clone()
                    .or_else(|| texts.get(&(row.account_id, row.slot_key.clone())).cloned());
                let Some(text) = text else { continue };
                let t = intent::tap(a.network, a.server.as_deref(), &text);
                let what = match (&t.compose_url, &t.copy_text) {
                    (Some(link), None) => format!("Open and post: {link}"),
                    (Some(link), Some(copy)) => format!("{link}\n\nCopy and post:\n{copy}"),
                    (None, copy) => format!(
                        "Copy and post on {} ({}):\n{}",
                        a.network.label(),
                        t.open_url,
                        copy.as_deref().unwrap_or(&text)
                    ),
                };
                let description = format!("{what}\n\nThen say you posted it: {site}/me");
                cal.push(
                    Event::new()
                        .uid(&format!("post-{}@{host}", row.id))
                        .summary(&format!(
                            "Post your notice on {} ({})",
                            a.network.label(),
                            a.handle
                        ))
                        .description(&description)
                        .starts(row.run_at)
                        .ends(row.run_at + chrono::Duration::minutes(15))
                        .alarm(Alarm::display(
                            &description,
                            (chrono::Duration::zero(), Related::Start),
                        ))
                        .done(),
                );
            }
            _ => {}
        }
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"strike.ics\"",
            ),
        ],
        cal.done().to_string(),
    )
        .into_response())
}

/// [`participation::tap::planned_texts`] for this host's campaigns.
async fn tap_texts(
    state: &AppState,
    me: &Participant,
    accounts: &[crate::store::Account],
) -> Result<std::collections::HashMap<(AccountId, String), String>, WebError> {
    Ok(participation::tap::planned_texts(
        state.store.as_ref(),
        &state.campaigns,
        &state.settings.public_url,
        me,
        accounts,
    )
    .await?)
}

#[derive(Serialize)]
struct AskLinkPage {
    csrf: String,
    /// This host can send mail: without it there is nothing to ask for.
    can_mail: bool,
    /// The request was taken (shown whatever the address).
    asked: bool,
    email: String,
    error: Option<String>,
    link_days: u32,
}

async fn ask_link_page(
    state: &AppState,
    headers: &HeaderMap,
    asked: bool,
    email: String,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let csrf = guard::form_token(headers);
    let page = AskLinkPage {
        csrf: csrf.clone(),
        can_mail: state.mailer.is_some(),
        asked,
        email,
        error,
        link_days: state.settings.sessions.link_days,
    };
    page_with_csrf(state, "new_link.html", &page, &csrf, status)
}

/// `GET /me/new-link`: ask for a new magic link by mail, for someone whose link expired
/// and who is signed in nowhere.
pub async fn ask_link_form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    ask_link_page(&state, &headers, false, String::new(), None, StatusCode::OK).await
}

/// The most participants one address can get links for at once (someone who joined twice).
const LINKS_PER_REQUEST: u32 = 3;

/// `POST /me/new-link`: mail a new link to every participant who gave this address. The
/// answer is the same whether or not the address is known here, and comes before the mail
/// is sent, so neither its words nor its timing tell. A link is replaced only once its
/// successor was handed to the mail server: a request the address's mail budget holds back
/// leaves the link already mailed working.
pub async fn ask_link(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    let typed = form.fields.text("email");
    if !form.csrf_ok() {
        let msg = "Your session expired or the form came from another site: please send it again.";
        return ask_link_page(
            &state,
            &headers,
            false,
            typed,
            Some(msg.into()),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let email = match super::signing::parse_email(&typed) {
        Ok(e) => e,
        Err(msg) => {
            return ask_link_page(
                &state,
                &headers,
                false,
                typed,
                Some(msg),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    if state.mailer.is_some() {
        let state = state.clone();
        tokio::spawn(async move {
            if let Err(e) = mail_new_links(&state, &email).await {
                tracing::warn!(error = %e, "a new link asked for by mail could not be made");
            }
        });
    }
    ask_link_page(&state, &headers, true, String::new(), None, StatusCode::OK).await
}

async fn mail_new_links(state: &AppState, email: &str) -> Result<(), WebError> {
    let Some(mailer) = state.mailer.as_deref() else {
        return Ok(());
    };
    let found = state
        .store
        .participants_by_email(&crate::store::canonical_email(email), LINKS_PER_REQUEST)
        .await?;
    for p in found {
        let Some(to) = p.email.as_deref() else {
            continue;
        };
        let token = participation::new_access_token();
        let expires = state.clock.now() + state.settings.sessions.link_lifetime();
        let link = session::magic_link(state, &token);
        let sent = crate::mail::magic_link(
            mailer,
            &state.pages,
            to,
            &p.name,
            &link,
            &session::until(expires),
        )
        .await;
        match sent {
            Ok(()) => {
                state
                    .store
                    .set_link(p.id, Some((&participation::token_hash(&token), expires)))
                    .await?;
            }
            Err(crate::mail::MailError::OverBudget) => {}
            Err(e) => {
                tracing::warn!(participant = p.id.0, error = %e, "a new link could not be mailed")
            }
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct PostedPage {
    csrf: String,
    token: String,
    title: String,
    text: String,
    #[serde(flatten)]
    links: intent::NoticeLinks,
    /// Confirmed already (now or before), with the post's address if given.
    done: bool,
    url: Option<String>,
}

/// `GET /me/posted/{token}`: the reminder mail's "I posted it" link. A GET changes
/// nothing (mail scanners and link previews follow links): it shows the notice and a
/// button that POSTs the token, with an optional address of the post.
pub async fn posted_page(
    State(state): State<AppState>,
    axum::extract::Path(token): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let (row, account) =
        participation::tap::tap_notice(state.store.as_ref(), Confirmer::Token(&token)).await?;
    let csrf = guard::form_token(&headers);
    let page = posted_view(&state, &csrf, token, row, &account, None).await?;
    page_with_csrf(&state, "posted.html", &page, &csrf, StatusCode::OK)
}

/// The strike day of a notice's card: tap rows are due at their slot's own minute, so
/// its local date, moved onto the strike's days by [`crate::campaign::Campaign::card_day`].
fn card_day(
    state: &AppState,
    row: &crate::store::OutboxRow,
    tz: chrono_tz::Tz,
) -> chrono::NaiveDate {
    state.campaign(&row.campaign_id).map_or_else(
        || row.run_at.with_timezone(&tz).date_naive(),
        |c| c.card_day(tz, row.run_at),
    )
}

async fn posted_view(
    state: &AppState,
    csrf: &str,
    token: String,
    row: crate::store::OutboxRow,
    account: &crate::store::Account,
    url: Option<String>,
) -> Result<PostedPage, WebError> {
    let site = state.settings.public_url.trim_end_matches('/');
    let tz = state
        .store
        .pledges_of(account.participant_id)
        .await?
        .into_iter()
        .find(|p| p.id == row.pledge_id)
        .map(|p| p.tz.tz())
        .unwrap_or(chrono_tz::UTC);
    let text = row.text.clone().unwrap_or_default();
    Ok(PostedPage {
        csrf: csrf.to_string(),
        token,
        title: state
            .campaign(&row.campaign_id)
            .map_or_else(|| row.campaign_id.to_string(), |c| c.title.clone()),
        links: intent::notice_links(
            account.network,
            &account.handle,
            account.server.as_deref(),
            &text,
            site,
            &row.campaign_id,
            card_day(state, &row, tz),
        ),
        text,
        done: row.state == OutboxState::PostedByHand,
        url: url.or(row.confirmed_url),
    })
}

/// `POST /me/posted`: "I posted it". From the participant's page (signed in, naming the
/// notice) or from the mail's page (the token). An address of the post must be on that
/// network; otherwise the answer is a 422 that says so.
pub async fn posted(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    let f = form.checked()?;
    let url = f.get("url");
    let now = state.clock.now();
    let token = f.text("token");
    if !token.is_empty() {
        let done = participation::tap::confirm_posted(
            state.store.as_ref(),
            Confirmer::Token(&token),
            url,
            now,
        )
        .await?;
        let csrf = guard::form_token(&headers);
        let page = posted_view(&state, &csrf, token, done.notice, &done.account, done.url).await?;
        let page = PostedPage { done: true, ..page };
        return page_with_csrf(&state, "posted.html", &page, &csrf, StatusCode::OK);
    }
    let (me, _) = signed_in(&state, &headers).await?;
    let Ok(id) = f.text("id").parse::<i64>().map(OutboxId) else {
        return Err(WebError::NotFound(super::error::NO_NOTICE.into()));
    };
    let done = participation::tap::confirm_posted(
        state.store.as_ref(),
        Confirmer::Participant(me.id, id),
        url,
        now,
    )
    .await?;
    Ok(back(
        "ok",
        &format!(
            "Counted: your {} notice, posted by hand{}. Thank you.",
            done.account.network.label(),
            done.url.map(|u| format!(" ({u})")).unwrap_or_default()
        ),
    ))
}
