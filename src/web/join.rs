//! Joining a strike in the browser, in three steps that all work without JavaScript:
//!
//! 1. `GET/POST /c/{id}/join`: name, time zone, strike days and cadence. A first visit
//!    creates the participant and signs this browser in (see [`super::session`]).
//! 2. `GET /c/{id}/join/accounts?...`: connect accounts (`POST /connect/{network}`, and
//!    for Mastodon the server's own OAuth page), see every post that would go out and when,
//!    in the participant's zone.
//! 3. `POST /c/{id}/join/confirm`: pledge; the posts are planned at once, and the magic
//!    link to `/me` is shown (and mailed when SMTP is configured).
//!
//! The choices of step 1 travel in the query string of step 2, so a reload, a connect
//! round trip (see [`super::connect`]) or a detour through a Mastodon server loses nothing.

use std::collections::HashMap;

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::campaign::{CampaignView, find, view};
use super::error::NO_ACCOUNTS;
use super::form::{Fields, Form, page_with_csrf};
use super::guard::{self, REF_COOKIE};
use super::session::signed_in;
use super::views::{AccountView, account_view, local_label};
use super::{AppState, WebError, session};
use crate::campaign::preview::{self, Preview};
use crate::campaign::{Campaign, Participation, When, fmt_duration};
use crate::compose;
use crate::domain::Zone;
use crate::network::AccountRef;
use crate::participation::{self, Missing, ParticipationError};
use crate::scheduler::verify::account_ref;
use crate::store::{AccountId, Participant};

/// Step 1's choices, as they travel between the steps.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Choice {
    pub tz: String,
    /// Chosen days; all of the campaign's when the person ticked them all.
    pub days: Vec<NaiveDate>,
    /// Cadence of the repeating notices ("1h"); empty = none of the optional ones.
    pub every: String,
}

impl Choice {
    pub(crate) fn from_fields(f: &Fields) -> Result<Choice, String> {
        let mut days = Vec::new();
        for d in f.all("day") {
            days.push(
                NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                    .map_err(|_| format!("“{d}” is not a date (YYYY-MM-DD)"))?,
            );
        }
        Ok(Choice {
            tz: f.text("tz"),
            days,
            every: f.text("every"),
        })
    }

    pub(crate) fn query(&self) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("tz", &self.tz);
        for d in &self.days {
            q.append_pair("day", &d.to_string());
        }
        q.append_pair("every", &self.every);
        q.finish()
    }

    /// The choice as the campaign reads it; the error says what to change.
    pub(crate) fn participation(&self, c: &Campaign) -> Result<Participation, String> {
        if self.tz.is_empty() {
            return Err("Choose your time zone.".into());
        }
        let all = c.days();
        if self.days.is_empty() && all.len() > 1 {
            return Err("Choose at least one strike day.".into());
        }
        let mut days = self.days.clone();
        days.sort();
        days.dedup();
        let days = (!days.is_empty() && days != all).then_some(days);
        let every = (!self.every.is_empty()).then_some(self.every.as_str());
        participation::choices(c, &self.tz, days, every).map_err(|e| e.to_string())
    }
}

/// The cadences offered for the repeating notices: the campaign's finest and a few slower.
fn cadences(c: &Campaign) -> Vec<String> {
    if !c.posts.iter().any(|p| matches!(p.when, When::Every(_))) {
        return Vec::new();
    }
    let mut secs: Vec<i64> = [3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600]
        .into_iter()
        .chain([c.min_interval.num_seconds()])
        .filter(|s| *s >= c.min_interval.num_seconds())
        .collect();
    secs.sort();
    secs.dedup();
    secs.into_iter()
        .map(|s| fmt_duration(chrono::Duration::seconds(s)))
        .collect()
}

#[derive(Serialize)]
struct DayView {
    date: String,
    label: String,
    checked: bool,
}

#[derive(Serialize)]
struct JoinPage<'a> {
    campaign: CampaignView<'a>,
    csrf: String,
    signed_in: Option<String>,
    name: String,
    email: String,
    tz: String,
    days: Vec<DayView>,
    cadences: Vec<String>,
    every: String,
    min_days: u32,
    error: Option<String>,
}

#[allow(clippy::too_many_arguments)]
async fn render_join(
    state: &AppState,
    c: &Campaign,
    headers: &HeaderMap,
    me: Option<&Participant>,
    choice: Choice,
    name: String,
    email: String,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let csrf = guard::form_token(headers);
    let chosen_all = choice.days.is_empty();
    let days = c
        .days()
        .into_iter()
        .map(|d| DayView {
            date: d.to_string(),
            label: d.format("%A %-d %B %Y").to_string(),
            checked: chosen_all || choice.days.contains(&d),
        })
        .collect();
    let page = JoinPage {
        campaign: view(state, c),
        csrf: csrf.clone(),
        signed_in: me.map(|p| p.name.clone()),
        name,
        email,
        tz: choice.tz,
        days,
        cadences: cadences(c),
        every: choice.every,
        min_days: c.strike.min_days,
        error,
    };
    page_with_csrf(state, "join.html", &page, &csrf, status)
}

/// `GET /c/{id}/join`: step 1, prefilled with an earlier pledge when there is one.
pub async fn form(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let me = session::participant(&state, &headers)
        .await?
        .map(|(p, _)| p);
    let mut choice = Choice::default();
    if let Some(p) = &me {
        choice.tz = p.tz.to_string();
        if let Some(pledge) = state
            .store
            .pledges_of(p.id)
            .await?
            .into_iter()
            .find(|pl| pl.campaign_id == c.id)
        {
            choice.tz = pledge.tz.to_string();
            choice.days = pledge.days.unwrap_or_default();
            choice.every = pledge
                .every_secs
                .and_then(chrono::Duration::try_seconds)
                .map(fmt_duration)
                .unwrap_or_default();
        }
    }
    let name = me.as_ref().map(|p| p.name.clone()).unwrap_or_default();
    render_join(
        &state,
        c,
        &headers,
        me.as_ref(),
        choice,
        name,
        String::new(),
        None,
        StatusCode::OK,
    )
    .await
}

/// `POST /c/{id}/join`: check step 1; a newcomer becomes a participant and this browser
/// is signed in as them. Then on to the accounts.
pub async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let f = &form.fields;
    let me = session::participant(&state, &headers).await?;
    let choice = Choice::from_fields(f);
    let (name, email) = (f.text("name"), f.text("email"));
    let again = |choice: Choice, msg: String, status: StatusCode| {
        let (state, headers, name, email) = (&state, &headers, name.clone(), email.clone());
        let me = me.as_ref().map(|(p, _)| p.clone());
        async move {
            render_join(
                state,
                c,
                headers,
                me.as_ref(),
                choice,
                name,
                email,
                Some(msg),
                status,
            )
            .await
        }
    };
    if !form.csrf_ok() {
        let msg = "Your session expired or the form came from another site: please send it again.";
        return again(
            choice.unwrap_or_default(),
            msg.into(),
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let choice = match choice {
        Ok(ch) => ch,
        Err(msg) => {
            return again(Choice::default(), msg, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let tz = match choice.participation(c) {
        Ok(p) => p.tz,
        Err(msg) => return again(choice, msg, StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    let next = format!("/c/{}/join/accounts?{}", c.id, choice.query());
    if me.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let signer = match super::signing::Signer::parse(&name, Some(&email), false, None) {
        Ok(s) => s,
        Err(msg) => {
            return again(choice, msg.to_string(), StatusCode::UNPROCESSABLE_ENTITY).await;
        }
    };
    let invited_by = guard::cookie(&headers, REF_COOKIE).filter(|r| guard::plausible_code(r));
    let id = participation::sign_up(
        state.store.as_ref(),
        signer.name(),
        signer.email(),
        tz,
        invited_by,
        state.clock.now(),
    )
    .await?;
    let cookie = session::start(&state, id, false).await?;
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response())
}

/// Step 2's query: the choices of step 1 and a message from a connect round trip.
#[derive(Deserialize, Default)]
pub struct Flash {
    msg: Option<String>,
    ok: Option<String>,
}

#[derive(Serialize)]
struct PostView {
    local: String,
    utc: String,
    name: String,
    texts: Vec<TextView>,
}

#[derive(Serialize)]
struct TextView {
    /// "Mastodon @alex@social.example", or the network alone before any account is connected.
    from: String,
    /// The account that would post it.
    account: Option<i64>,
    text: String,
    length: String,
    fits: bool,
    /// For an account that hands off to its server's scheduler: whether this post goes
    /// there or this site sends it, and why.
    hand_off: Option<&'static str>,
}

#[derive(Serialize)]
struct AccountsPage<'a> {
    campaign: CampaignView<'a>,
    csrf: String,
    name: String,
    choice: Choice,
    choice_query: String,
    back: String,
    tz: Zone,
    every_label: Option<String>,
    days_label: String,
    accounts: Vec<AccountView>,
    posts: Vec<PostView>,
    msg: Option<String>,
    ok: Option<String>,
    networks: Vec<&'static str>,
    /// "Connect X" is offered: the host has X API keys and this campaign opted in.
    x_api: bool,
    error: Option<String>,
}

/// `GET /c/{id}/join/accounts`: step 2.
pub async fn accounts(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    Query(flash): Query<Flash>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let (me, _) = signed_in(&state, &headers).await?;
    let f = Fields::parse(raw.unwrap_or_default().as_bytes())?;
    let choice = Choice::from_fields(&f).map_err(WebError::Invalid)?;
    let p = choice.participation(c).map_err(WebError::Invalid)?;
    render_accounts(
        &state,
        c,
        &headers,
        &me,
        choice,
        &p,
        flash,
        None,
        StatusCode::OK,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn render_accounts(
    state: &AppState,
    c: &Campaign,
    headers: &HeaderMap,
    me: &Participant,
    choice: Choice,
    p: &Participation,
    flash: Flash,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let csrf = guard::form_token(headers);
    let accounts = state.store.list_accounts(me.id).await?;
    let preview = preview_of(state, c, p, me, &accounts);
    let ids: Vec<AccountId> = accounts.iter().map(|a| a.id).collect();
    let handing_off = state.store.hand_off_accounts(&ids).await?;
    // The server's limits, applied to the previewed instants as the dispatcher will
    // apply them: the same rule, each hand-off account with its own count.
    let instants: Vec<_> = preview.posts.iter().map(|p| p.at).collect();
    let hand_off_plan =
        crate::scheduler::dispatcher::handoff::plan(&[], &instants, state.clock.now());
    let hand_off_note = |i: usize, at: chrono::DateTime<chrono::Utc>| {
        if hand_off_plan.get(i).copied().unwrap_or(false) {
            "handed to your server's own scheduler ahead of time"
        } else if at < state.clock.now() + crate::network::mastodon::schedule::HAND_OFF_LEAD {
            "sent by this site: too close to hand to your server (6 minutes at least)"
        } else {
            "sent by this site: over your server's limit of scheduled posts (25 a day, 300 in all)"
        }
    };
    let posts = preview
        .posts
        .into_iter()
        .enumerate()
        .map(|(i, post)| PostView {
            local: local_label(post.at, p.tz),
            utc: post.at.format("%Y-%m-%d %H:%M UTC").to_string(),
            name: post.post,
            texts: post
                .texts
                .into_iter()
                .map(|t| TextView {
                    from: match &t.handle {
                        Some(h) => format!("{} {h}", t.network.label()),
                        None => t.network.label().to_string(),
                    },
                    account: t.account.map(|a| a.0),
                    hand_off: t
                        .account
                        .filter(|a| handing_off.contains(a))
                        .map(|_| hand_off_note(i, post.at)),
                    fits: t.measure.fits() && t.error.is_none(),
                    length: t.measure.describe(),
                    text: t.error.unwrap_or(t.text),
                })
                .collect(),
        })
        .collect();
    let query = choice.query();
    let page = AccountsPage {
        campaign: view(state, c),
        csrf: csrf.clone(),
        name: me.name.clone(),
        back: format!("/c/{}/join/accounts?{query}", c.id),
        choice_query: query,
        tz: p.tz,
        every_label: p.every.map(fmt_duration),
        days_label: match &p.days {
            None => "all of the strike days".into(),
            Some(d) => d
                .iter()
                .map(|d| d.format("%A %-d %B").to_string())
                .collect::<Vec<_>>()
                .join(", "),
        },
        choice,
        accounts: accounts
            .iter()
            .map(|a| account_view(a, &state.vault))
            .collect(),
        posts,
        msg: flash.msg,
        ok: flash.ok,
        networks: c.networks.iter().map(|n| n.as_str()).collect(),
        x_api: c.x_api && state.settings.x.is_some(),
        error,
    };
    page_with_csrf(state, "join_accounts.html", &page, &csrf, status)
}

/// Every post `me` would make from each of their accounts, exactly as the dispatcher will
/// send it: the same builder and renderer ([`crate::compose`]), each account's own length
/// limit as its adapter measures it.
fn preview_of(
    state: &AppState,
    c: &Campaign,
    p: &Participation,
    me: &Participant,
    accounts: &[crate::store::Account],
) -> Preview {
    // Opened once per account, not once per text. An account whose credentials do not
    // open is measured by its network's default limit; it needs reconnecting anyway.
    let opened: HashMap<AccountId, AccountRef> = accounts
        .iter()
        .filter_map(|a| Some((a.id, account_ref(&state.vault, a).ok()?)))
        .collect();
    let measure_for = |a: &crate::store::Account, text: &str| match (
        state.networks.get(a.network),
        opened.get(&a.id),
    ) {
        (Some(network), Some(account)) => network.measure(account, text),
        _ => compose::measure(a.network, text),
    };
    let who = preview::Participant {
        site: &state.settings.public_url,
        name: &me.name,
        invite_code: &me.invite_code,
        accounts,
    };
    preview::preview_for(c, p, &who, &measure_for)
}

#[derive(Serialize)]
struct JoinedPage<'a> {
    campaign: CampaignView<'a>,
    name: String,
    planned: usize,
    accounts: usize,
    magic_link: String,
    /// When the link stops working.
    until: String,
    mailed: bool,
    invite_link: String,
}

/// `POST /c/{id}/join/confirm`: step 3.
pub async fn confirm(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Form,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let f = &form.fields;
    let (me, _) = signed_in(&state, &headers).await?;
    let choice = Choice::from_fields(f).map_err(WebError::Invalid)?;
    let p = choice.participation(c).map_err(WebError::Invalid)?;
    let refuse = |msg: &str, status| {
        render_accounts(
            &state,
            c,
            &headers,
            &me,
            choice.clone(),
            &p,
            Flash::default(),
            Some(msg.to_string()),
            status,
        )
    };
    if !form.csrf_ok() {
        return refuse(
            "Your session expired or the form came from another site: please confirm again.",
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let not_yours = "One of the chosen accounts is not yours.";
    let mut chosen = Vec::new();
    for a in f.all("account") {
        match a.trim().parse::<i64>() {
            Ok(i) => chosen.push(AccountId(i)),
            Err(_) => return refuse(not_yours, StatusCode::UNPROCESSABLE_ENTITY).await,
        }
    }
    let now = state.clock.now();
    let spread = chrono::Duration::seconds(state.settings.scheduler.jitter_secs as i64);
    let pledged = match participation::pledge(
        state.store.as_ref(),
        c,
        me.id,
        &p,
        &chosen,
        spread,
        now,
        participation::max_wait(state.settings.scheduler.lease_secs),
    )
    .await
    {
        Ok(pledged) => pledged,
        // The page the participant came from, again, saying what to change.
        Err(ParticipationError::NotFound(Missing::Account(_))) => {
            return refuse(not_yours, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
        Err(ParticipationError::NoAccounts) => {
            return refuse(NO_ACCOUNTS, StatusCode::UNPROCESSABLE_ENTITY).await;
        }
        Err(e) => return Err(e.into()),
    };
    // The first post may be due before the dispatcher's next look.
    state.wake.notify_one();
    // A new link each time (only its hash is kept, so an earlier one cannot be shown
    // again); the one before stops working. Mailed when the host can and the participant
    // gave an address, within the address's mail budget; shown either way, so a mail that
    // never arrives locks no one out.
    let (magic_link, expires) = session::new_link(&state, me.id).await?;
    let until = session::until(expires);
    let mailed = super::me::mail_link(&state, &me, &magic_link, &until).await;
    let base = state.settings.public_url.trim_end_matches('/');
    let page = JoinedPage {
        campaign: view(&state, c),
        name: me.name.clone(),
        planned: pledged.planned,
        accounts: pledged.accounts,
        mailed,
        invite_link: format!("{base}/i/{}", me.invite_code),
        magic_link,
        until,
    };
    let html = state
        .pages
        .render("joined.html", &page)
        .map_err(|e| WebError::Internal(e.into()))?;
    Ok(Html(html).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_survive_the_trip_through_the_query_string() {
        let choice = Choice {
            tz: "America/Argentina/Buenos_Aires".into(),
            days: vec![NaiveDate::from_ymd_opt(2027, 7, 4).unwrap()],
            every: "2h".into(),
        };
        let f = Fields::parse(choice.query().as_bytes()).unwrap();
        let back = Choice::from_fields(&f).unwrap();
        assert_eq!(back.tz, choice.tz);
        assert_eq!(back.days, choice.days);
        assert_eq!(back.every, "2h");
    }
}
