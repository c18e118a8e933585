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
//! round trip or a detour through a Mastodon server loses nothing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::campaign::{CampaignView, find, view};
use super::guard::{self, CSRF_COOKIE, REF_COOKIE};
use super::{AppState, WebError, session};
use crate::campaign::{Campaign, Participation, When, fmt_duration};
use crate::network::NetworkKind;
use crate::network::mastodon::OOB_REDIRECT;
use crate::participation::connect::{self, ConnectError, MastodonAuthorization};
use crate::participation::{self, Connected};
use crate::render::{ParticipantVars, PostVars};
use crate::store::{AccountId, AccountStatus, NewParticipant, Participant};

/// A form body as (name, value) pairs; names may repeat (`day=...&day=...`).
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    pub(crate) fn parse(body: &[u8]) -> Result<Fields, WebError> {
        if std::str::from_utf8(body).is_err() {
            return Err(WebError::BadRequest(
                "The form could not be read (it is not UTF-8): please send it again.".into(),
            ));
        }
        Ok(Fields(
            url::form_urlencoded::parse(body).into_owned().collect(),
        ))
    }

    /// A posted form from `peer`, within its write budget.
    pub(crate) fn posted(
        state: &AppState,
        peer: SocketAddr,
        body: &[u8],
    ) -> Result<Fields, WebError> {
        let f = Fields::parse(body)?;
        if !state.limits.allow(peer.ip()) {
            return Err(WebError::TooMany);
        }
        Ok(f)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_string()
    }

    pub(crate) fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn csrf_ok(&self, headers: &HeaderMap) -> bool {
        guard::csrf_ok(headers, self.get("csrf").unwrap_or_default())
    }
}

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
        participation::choices(c, &self.tz, days, every)
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

/// A rendered page with the CSRF cookie its forms need.
pub(crate) fn page_with_csrf(
    state: &AppState,
    template: &str,
    ctx: &impl Serialize,
    csrf: &str,
    status: StatusCode,
) -> Result<Response, WebError> {
    let html = state
        .pages
        .render(template, ctx)
        .map_err(|e| WebError::Internal(e.into()))?;
    let cookie = guard::set_cookie(CSRF_COOKIE, csrf, state.secure_cookies(), 24 * 3600);
    Ok((status, [(header::SET_COOKIE, cookie)], Html(html)).into_response())
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
        choice.tz = p.tz.clone();
        if let Some(pledge) = state
            .store
            .pledges_of(p.id)
            .await?
            .into_iter()
            .find(|pl| pl.campaign_id == c.id)
        {
            choice.tz = pledge.tz;
            choice.days = pledge.days.unwrap_or_default();
            choice.every = pledge
                .every_secs
                .map(|s| fmt_duration(chrono::Duration::seconds(s)))
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let f = Fields::posted(&state, peer, &body)?;
    let me = session::participant(&state, &headers).await?;
    let choice = Choice::from_fields(&f);
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
    if !f.csrf_ok(&headers) {
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
    if let Err(msg) = choice.participation(c) {
        return again(choice, msg, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let next = format!("/c/{}/join/accounts?{}", c.id, choice.query());
    if me.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let signer = match super::signing::Signer::parse(&name, Some(&email), false, None) {
        Ok(s) => s,
        Err(msg) => return again(choice, msg, StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    let token = participation::new_access_token();
    let invited_by = guard::cookie(&headers, REF_COOKIE).filter(|r| guard::plausible_code(r));
    state
        .store
        .create_participant(
            &NewParticipant {
                name: signer.name().to_string(),
                email: signer.email().map(str::to_string),
                email_canonical: signer.email().map(crate::store::canonical_email),
                tz: choice.tz.clone(),
                access_token_hash: Some(participation::token_hash(&token)),
                invited_by,
            },
            state.clock.now(),
        )
        .await?;
    Ok((
        [(
            header::SET_COOKIE,
            session::sign_in(&token, state.secure_cookies()),
        )],
        Redirect::to(&next),
    )
        .into_response())
}

/// Step 2's query: the choices of step 1 and a message from a connect round trip.
#[derive(Deserialize, Default)]
pub struct Flash {
    msg: Option<String>,
    ok: Option<String>,
}

/// An account as the join and `/me` pages show it.
#[derive(Serialize)]
pub(crate) struct AccountView {
    id: i64,
    network: &'static str,
    handle: String,
    server: Option<String>,
    active: bool,
    status: String,
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
    network: &'static str,
    text: String,
    length: String,
    fits: bool,
}

#[derive(Serialize)]
struct AccountsPage<'a> {
    campaign: CampaignView<'a>,
    csrf: String,
    name: String,
    choice: Choice,
    choice_query: String,
    back: String,
    tz: String,
    every_label: Option<String>,
    days_label: String,
    accounts: Vec<AccountView>,
    posts: Vec<PostView>,
    msg: Option<String>,
    ok: Option<String>,
    networks: Vec<&'static str>,
    error: Option<String>,
}

pub(crate) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Participant, String), WebError> {
    session::participant(state, headers).await?.ok_or_else(|| {
        WebError::Forbidden(
            "You are not signed in on this device: open the link picket gave you (or join again)."
                .into(),
        )
    })
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
    let mut kinds: Vec<NetworkKind> = accounts
        .iter()
        .filter(|a| a.status == AccountStatus::Active)
        .map(|a| a.network)
        .collect();
    kinds.sort_by_key(|k| k.as_str());
    kinds.dedup();
    if kinds.is_empty() {
        kinds = c.networks.clone();
    }
    let base = post_vars(state, c, me, &accounts);
    let preview = crate::campaign::preview::preview_with(c, p, &kinds, base);
    let posts = preview
        .posts
        .into_iter()
        .map(|post| PostView {
            local: local_label(post.at, p.tz),
            utc: post.at.format("%Y-%m-%d %H:%M UTC").to_string(),
            name: post.post,
            texts: post
                .texts
                .into_iter()
                .map(|t| TextView {
                    network: t.network.label(),
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
        tz: p.tz.name().to_string(),
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
        accounts: accounts.iter().map(account_view).collect(),
        posts,
        msg: flash.msg,
        ok: flash.ok,
        networks: c.networks.iter().map(|n| n.as_str()).collect(),
        error,
    };
    page_with_csrf(state, "join_accounts.html", &page, &csrf, status)
}

pub(crate) fn account_view(a: &crate::store::Account) -> AccountView {
    AccountView {
        id: a.id.0,
        network: a.network.label(),
        handle: a.handle.clone(),
        server: a.server.clone(),
        active: a.status == AccountStatus::Active,
        status: match &a.status_reason {
            Some(r) if a.status != AccountStatus::Active => format!("{}: {r}", a.status),
            _ => a.status.to_string(),
        },
    }
}

pub(crate) fn local_label(at: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    at.with_timezone(&tz)
        .format("%a %-d %b %Y, %H:%M %Z")
        .to_string()
}

/// The participant's own values for their posts, as the dispatcher will fill them in.
pub(crate) fn post_vars(
    state: &AppState,
    c: &Campaign,
    me: &Participant,
    accounts: &[crate::store::Account],
) -> PostVars {
    let base = state.settings.public_url.trim_end_matches('/');
    let mut vars = PostVars::sample(&c.hashtag, &c.title, &c.id);
    vars.invite_link = format!("{base}/i/{}", me.invite_code);
    vars.declaration_url = format!("{base}/c/{}#declaration", c.id);
    vars.campaign_url = format!("{base}/c/{}", c.id);
    vars.participant = ParticipantVars {
        name: me.name.clone(),
    };
    vars.elsewhere = accounts
        .iter()
        .filter(|a| a.status == AccountStatus::Active)
        .map(|a| format!("{} {}", a.network.label(), a.handle))
        .collect::<Vec<_>>()
        .join(" · ");
    vars
}

#[derive(Serialize)]
struct JoinedPage<'a> {
    campaign: CampaignView<'a>,
    name: String,
    planned: usize,
    accounts: usize,
    magic_link: String,
    mailed: bool,
    invite_link: String,
}

/// `POST /c/{id}/join/confirm`: step 3.
pub async fn confirm(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let f = Fields::posted(&state, peer, &body)?;
    let (me, token) = signed_in(&state, &headers).await?;
    let choice = Choice::from_fields(&f).map_err(WebError::Invalid)?;
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
    if !f.csrf_ok(&headers) {
        return refuse(
            "Your session expired or the form came from another site: please confirm again.",
            StatusCode::FORBIDDEN,
        )
        .await;
    }
    let mine: HashMap<i64, crate::store::Account> = state
        .store
        .list_accounts(me.id)
        .await?
        .into_iter()
        .map(|a| (a.id.0, a))
        .collect();
    let mut chosen = Vec::new();
    for a in f.all("account") {
        match a
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|i| mine.contains_key(i))
        {
            Some(i) if !chosen.contains(&AccountId(i)) => chosen.push(AccountId(i)),
            Some(_) => {}
            None => {
                return refuse(
                    "One of the chosen accounts is not yours.",
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
        }
    }
    if chosen.is_empty() {
        return refuse(
            "Connect an account and tick it: picket posts the notices from your own accounts.",
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let now = state.clock.now();
    let spread = chrono::Duration::seconds(state.settings.scheduler.jitter_secs as i64);
    let pledged =
        participation::pledge(state.store.as_ref(), c, me.id, &p, &chosen, spread, now).await?;
    // The first post may be due before the dispatcher's next look.
    state.wake.notify_one();
    let magic_link = session::magic_link(&state, &token);
    // Mailed when the host can and the participant gave an address; shown either way, so
    // a mail that never arrives locks no one out.
    let mailed = match (state.mailer.as_deref(), me.email.as_deref()) {
        (Some(mailer), Some(to)) => {
            match crate::mail::magic_link(mailer, &state.pages, to, &me.name, &magic_link).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "the magic link could not be mailed");
                    false
                }
            }
        }
        _ => false,
    };
    let base = state.settings.public_url.trim_end_matches('/');
    let page = JoinedPage {
        campaign: view(&state, c),
        name: me.name.clone(),
        planned: pledged.planned,
        accounts: chosen.len(),
        mailed,
        invite_link: format!("{base}/i/{}", me.invite_code),
        magic_link,
    };
    let html = state
        .pages
        .render("joined.html", &page)
        .map_err(|e| WebError::Internal(e.into()))?;
    Ok(Html(html).into_response())
}

/// Where a connect form sends the person back to: a join step on this site, nothing else.
pub(crate) fn back_to(f: &Fields) -> String {
    let back = f.text("back");
    // Only visible ASCII: anything else cannot be a Location header (`Redirect::to` panics).
    let ok = back.starts_with("/c/")
        && !back.contains("//")
        && !back.contains('\\')
        && back.chars().all(|c| c.is_ascii_graphic());
    if ok { back } else { "/me".to_string() }
}

pub(crate) fn with_flash(back: &str, key: &str, msg: &str) -> String {
    let sep = if back.contains('?') { '&' } else { '?' };
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(key, msg)
        .finish();
    format!("{back}{sep}{q}")
}

/// An OAuth authorization waiting for the server to send the person back.
pub struct PendingOAuth {
    participant: crate::store::ParticipantId,
    auth: MastodonAuthorization,
    back: String,
    started: std::time::Instant,
}

/// OAuth authorizations in progress, by their `state` parameter. In memory: one that is
/// interrupted by a restart is simply started again.
#[derive(Clone, Default)]
pub struct PendingAuthorizations(Arc<std::sync::Mutex<HashMap<String, PendingOAuth>>>);

impl PendingAuthorizations {
    /// How long a person has to approve picket on their server.
    const TTL: std::time::Duration = std::time::Duration::from_secs(30 * 60);

    fn put(&self, state: String, p: PendingOAuth) {
        let mut map = self.0.lock().expect("not poisoned");
        map.retain(|_, v| v.started.elapsed() < Self::TTL);
        map.insert(state, p);
    }

    fn take(&self, state: &str) -> Option<PendingOAuth> {
        let mut map = self.0.lock().expect("not poisoned");
        map.remove(state)
            .filter(|p| p.started.elapsed() < Self::TTL)
    }
}

/// `POST /connect/{network}`: connect an account for the signed-in participant, then go
/// back to the join step it came from with a message.
pub async fn connect_account(
    State(state): State<AppState>,
    Path(network): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let f = Fields::posted(&state, peer, &body)?;
    let (me, _) = signed_in(&state, &headers).await?;
    let back = back_to(&f);
    if !f.csrf_ok(&headers) {
        return Ok(Redirect::to(&with_flash(
            &back,
            "msg",
            "Your session expired or the form came from another site: please try again.",
        ))
        .into_response());
    }
    let connected: Result<Connected, ConnectError> = match network.as_str() {
        "sandbox" => connect::sandbox(
            &f.text("name"),
            &format!(
                "{}/sandbox",
                state.settings.public_url.trim_end_matches('/')
            ),
            None,
        ),
        "bluesky" => {
            let service = f.text("service");
            connect::bluesky(
                &f.text("handle"),
                f.get("app_password").unwrap_or_default(),
                (!service.is_empty()).then_some(service.as_str()),
            )
            .await
        }
        "nostr" => {
            let relays = vec![f.text("relays")];
            match connect::nostr_relays(&relays) {
                Ok(relays) => {
                    connect::nostr_bunker(relays, &f.text("bunker"), NOSTR_BUNKER_WAIT).await
                }
                Err(e) => Err(e),
            }
        }
        "mastodon" => return mastodon_start(&state, &me, &f, back).await,
        other => {
            return Err(WebError::NotFound(format!(
                "picket cannot connect “{other}” accounts here."
            )));
        }
    };
    Ok(Redirect::to(&finish_connect(&state, &me, connected, &back).await?).into_response())
}

/// A browser waits for the remote signer's answer: shorter than the CLI's minute.
const NOSTR_BUNKER_WAIT: std::time::Duration = std::time::Duration::from_secs(45);

/// Store a connected account and say how it went, on the page `back`.
async fn finish_connect(
    state: &AppState,
    me: &Participant,
    connected: Result<Connected, ConnectError>,
    back: &str,
) -> Result<String, WebError> {
    Ok(match connected {
        Ok(account) => {
            participation::save_account(
                state.store.as_ref(),
                &state.vault,
                me.id,
                &account,
                state.clock.now(),
            )
            .await?;
            with_flash(
                back,
                "ok",
                &format!(
                    "Connected your {} account {}.",
                    account.network.label(),
                    account.handle
                ),
            )
        }
        Err(e) => with_flash(back, "msg", &e.to_string()),
    })
}

async fn mastodon_start(
    state: &AppState,
    me: &Participant,
    f: &Fields,
    back: String,
) -> Result<Response, WebError> {
    let server = match connect::mastodon_server(&f.text("server")).await {
        Ok(s) => s,
        Err(e) => {
            return Ok(Redirect::to(&with_flash(&back, "msg", &e.to_string())).into_response());
        }
    };
    let known = connect::known_app(state.store.as_ref(), &state.vault, &server.url).await?;
    let callback = format!(
        "{}/connect/mastodon/callback",
        state.settings.public_url.trim_end_matches('/')
    );
    // One app per server serves the CLI (out-of-band) and this host's callback.
    let redirects = format!("{OOB_REDIRECT}\n{callback}");
    let oauth_state = participation::new_access_token();
    match connect::mastodon_authorize(server, known, &callback, &redirects, &oauth_state).await {
        Ok(auth) => {
            let url = auth.url.clone();
            state.oauth.put(
                oauth_state,
                PendingOAuth {
                    participant: me.id,
                    auth,
                    back,
                    started: std::time::Instant::now(),
                },
            );
            Ok(Redirect::to(&url).into_response())
        }
        Err(e) => Ok(Redirect::to(&with_flash(&back, "msg", &e.to_string())).into_response()),
    }
}

#[derive(Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /connect/mastodon/callback`: the server sends the person back with a code.
pub async fn mastodon_callback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Result<Response, WebError> {
    let pending = q
        .state
        .as_deref()
        .and_then(|s| state.oauth.take(s))
        .ok_or_else(|| {
            WebError::Invalid(
                "This authorization is unknown or expired: connect the account again.".into(),
            )
        })?;
    let (me, _) = signed_in(&state, &headers).await?;
    if me.id != pending.participant {
        return Err(WebError::Forbidden(
            "This authorization was started by someone else on this device.".into(),
        ));
    }
    let connected = match (q.code, q.error) {
        (Some(code), None) => connect::mastodon_code(pending.auth, &code).await,
        (_, error) => Err(ConnectError::Failed(format!(
            "The server did not allow picket: {}",
            q.error_description
                .or(error)
                .unwrap_or_else(|| "no reason given".into())
        ))),
    };
    Ok(Redirect::to(&finish_connect(&state, &me, connected, &pending.back).await?).into_response())
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

    #[test]
    fn a_connect_form_can_only_send_people_back_into_this_site() {
        let f = |b: &str| Fields(vec![("back".into(), b.into())]);
        assert_eq!(
            back_to(&f("/c/x/join/accounts?tz=UTC")),
            "/c/x/join/accounts?tz=UTC"
        );
        assert_eq!(back_to(&f("https://evil.example/")), "/me");
        assert_eq!(back_to(&f("/c//evil.example")), "/me");
        assert_eq!(back_to(&f("//evil.example/c/")), "/me");
    }

    #[test]
    fn a_back_address_that_cannot_be_a_location_header_sends_people_to_me() {
        // Issue 8 (a control character in `back` gave a 500), found again by the `form`
        // fuzz target: `Redirect::to` panics on a value that is no valid header.
        let f = |b: &str| Fields(vec![("back".into(), b.into())]);
        assert_eq!(back_to(&f("/c/x/join\r\nSet-Cookie: a=b")), "/me");
        assert_eq!(back_to(&f("/c/grève/join")), "/me");
        assert_eq!(back_to(&f("/c/x/join?a b")), "/me");
        assert_eq!(back_to(&f("/c/x/join?tz=UTC")), "/c/x/join?tz=UTC");
    }

    #[test]
    fn a_body_that_is_not_utf8_is_a_400() {
        assert!(matches!(
            Fields::parse(&[0x66, 0x3d, 0xff, 0xfe]),
            Err(WebError::BadRequest(_))
        ));
    }
}
