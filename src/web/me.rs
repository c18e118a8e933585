//! `/me`: a participant's own page, opened with their magic link. Their strikes and
//! posts (scheduled, published with links, failed, missed), their accounts, how many
//! people they brought in; withdraw, change, remove an account, an ICS calendar of their
//! strike, and "delete all my data".

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::join::{AccountView, Fields, account_view, local_label, page_with_csrf, signed_in};
use super::{AppState, WebError, guard, session};
use crate::participation;
use crate::scheduler::{self, planner};
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
    campaign_id: String,
    title: String,
    active: bool,
    tz: String,
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
    ok: Option<String>,
    msg: Option<String>,
}

/// `GET /me`: with `?t=TOKEN` (the magic link) sign this browser in and come back without
/// the token in the address bar; otherwise show the signed-in participant's page.
pub async fn page(
    State(state): State<AppState>,
    Query(q): Query<MeQuery>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if let Some(token) = q.t {
        let known = if session::plausible(&token) {
            state
                .store
                .participant_by_token_hash(&participation::token_hash(&token))
                .await?
        } else {
            None
        };
        if known.is_none() {
            return Err(WebError::NotFound(
                "This link is not valid (any more). If you deleted your data, join again.".into(),
            ));
        }
        return Ok((
            [(
                header::SET_COOKIE,
                session::sign_in(&token, state.secure_cookies()),
            )],
            Redirect::to("/me"),
        )
            .into_response());
    }
    let (me, _) = signed_in(&state, &headers).await?;
    let csrf = guard::form_token(&headers);
    let accounts = state.store.list_accounts(me.id).await?;
    let page = MePage {
        csrf: csrf.clone(),
        name: me.name.clone(),
        invite_link: format!(
            "{}/i/{}",
            state.settings.public_url.trim_end_matches('/'),
            me.invite_code
        ),
        invited: state.store.invited_count(&me.invite_code).await?,
        pledges: pledges(&state, &me, &accounts).await?,
        accounts: accounts.iter().map(account_view).collect(),
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
        let tz: chrono_tz::Tz = pledge.tz.parse().unwrap_or(chrono_tz::UTC);
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
            .map_or_else(|| pledge.campaign_id.clone(), |c| c.title.clone());
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

/// The signed-in participant, if the form is theirs to send (CSRF) and within budget.
async fn checked(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Participant, Fields), WebError> {
    let f = Fields::posted(state, peer, body)?;
    let (me, _) = signed_in(state, headers).await?;
    if !f.csrf_ok(headers) {
        return Err(WebError::Forbidden(
            "Your session expired or the form came from another site: go back, reload the page and try again."
                .into(),
        ));
    }
    Ok((me, f))
}

/// `POST /me/withdraw`: stop a pledge (or one account of it); returns once nothing more
/// of it can go out. Optionally deletes the notices already published.
pub async fn withdraw(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let (me, f) = checked(&state, peer, &headers, &body).await?;
    let campaign = f.text("campaign");
    if !state
        .store
        .pledges_of(me.id)
        .await?
        .iter()
        .any(|p| p.campaign_id == campaign)
    {
        return Err(WebError::Invalid(
            "You have not pledged to that campaign.".into(),
        ));
    }
    let stopped = scheduler::withdraw(
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
/// unsent posts cancelled.
pub async fn remove_account(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let (me, f) = checked(&state, peer, &headers, &body).await?;
    let id = f.text("account").parse::<i64>().ok().map(AccountId);
    let mine = state.store.list_accounts(me.id).await?;
    let Some(account) = id.and_then(|id| mine.iter().find(|a| a.id == id)) else {
        return Err(WebError::Invalid("That account is not yours.".into()));
    };
    let w = state
        .store
        .remove_account(account.id, state.clock.now())
        .await?;
    Ok(back(
        "ok",
        &format!(
            "Removed your {} account {}: {} scheduled post(s) cancelled.",
            account.network.label(),
            account.handle,
            w.cancelled
        ),
    ))
}

/// `POST /me/delete`: delete everything picket holds about the participant: accounts with
/// their credentials, pledges, posts; optionally the published notices first.
pub async fn delete_all(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let (me, f) = checked(&state, peer, &headers, &body).await?;
    if f.get("confirm").is_none() {
        return Ok(back(
            "msg",
            "Tick the box to confirm that everything should be deleted.",
        ));
    }
    // Stop every pledge first, so nothing is on its way when the rows go.
    let wait = participation::max_wait(state.settings.scheduler.lease_secs);
    for p in state.store.pledges_of(me.id).await? {
        scheduler::withdraw(
            state.store.as_ref(),
            me.id,
            &p.campaign_id,
            None,
            state.clock.now(),
            wait,
        )
        .await?;
    }
    let note = if f.get("delete_posts").is_some() {
        let report = participation::delete_published(
            state.store.as_ref(),
            &state.networks,
            &state.vault,
            me.id,
            None,
            None,
        )
        .await?;
        deleted_note(&report)
    } else {
        String::new()
    };
    state.store.delete_participant(me.id).await?;
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

/// `POST /me/logout`: forget the sign-in on this device (the magic link still works).
pub async fn logout(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    checked(&state, peer, &headers, &body).await?;
    Ok((
        [(
            header::SET_COOKIE,
            session::sign_out(state.secure_cookies()),
        )],
        Redirect::to("/"),
    )
        .into_response())
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
