//! `/me`: a participant's own page, opened with their magic link. Their strikes and
//! posts (scheduled, published with links, failed, missed), their accounts, how many
//! people they brought in; withdraw, change, remove an account, an ICS calendar of their
//! strike, and "delete all my data". Also signing in and out: opening a link (asking first
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
use crate::domain::{CampaignId, Zone};
use crate::participation;
use crate::scheduler::planner;
use crate::store::{AccountId, OutboxState, Participant, PledgeStatus};

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
    pledges: Vec<PledgeView>,
    accounts: Vec<AccountView>,
    /// Until when their current magic link works, if they have one that does.
    link_until: Option<String>,
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
        pledges: pledges(&state, &me, &accounts).await?,
        accounts: accounts
            .iter()
            .map(|a| account_view(a, &state.vault))
            .collect(),
        ok: q.ok,
        msg: q.msg,
    };
    page_with_csrf(&state, "me.html", &page, &csrf, StatusCode::OK)
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
                        _ => "scheduled",
                    },
                    // A link only to a web page: an address a network sent back could be
                    // anything (javascript:, or the sandbox's own sandbox:// scheme).
                    url: r
                        .remote_url
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
        .unwrap_or_default();
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
    use icalendar::{Calendar, Component, Event, EventLike};
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
    for row in state.store.outbox_for(me.id, None).await? {
        if row.state != OutboxState::Pending {
            continue;
        }
        cal.push(
            Event::new()
                .uid(&format!("post-{}@{host}", row.id))
                .summary(&format!("picket posts “{}”", row.post_name))
                .starts(row.run_at)
                .ends(row.run_at + chrono::Duration::minutes(5))
                .done(),
        );
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
