//! Campaign pages: the declaration with its counters and sign form, signing, confirming a
//! signature by its mailed link, the public list of signers, and invitation links. Also the
//! views of a campaign and of its declaration that the other pages (`declaration`, `join`)
//! show, so those pages import from here and this file imports none of them.
use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};

use super::form::{Fields, Form};
use super::guard::{self, CSRF_COOKIE, REF_COOKIE};
use super::signing::{self, Signer};
use super::{AppState, WebError};
use crate::campaign::declaration::Changes;
use crate::campaign::{Campaign, Declaration};

/// The numbers shown on pages, the badge and the API.
#[derive(Debug, Clone, Serialize)]
pub struct Counters {
    pub signatures: u64,
    pub strikers: u64,
    pub published: u64,
    pub invitations: u64,
}

/// The counters of `c`, counted again after a second (see `counts`).
pub async fn counters(state: &AppState, c: &Campaign) -> Result<Counters, WebError> {
    Ok(state.counts.get(state, c).await?.counters.clone())
}

pub(crate) fn find<'a>(state: &'a AppState, id: &str) -> Result<&'a Campaign, WebError> {
    state
        .campaign(id)
        .ok_or_else(|| WebError::NotFound(format!("There is no campaign “{id}” on this site.")))
}

/// The declaration as HTML, sanitised (see [`crate::render::declaration`]): a declaration
/// copied from elsewhere must not carry scripts.
///
/// Converted once per text and remembered (keyed by the text itself, so it is right for
/// any campaign in any app of the process): converting on every view was a measurable
/// part of serving the campaign page.
pub fn declaration_html(c: &Campaign) -> Option<String> {
    use std::collections::HashMap;
    use std::sync::{LazyLock, Mutex};
    static CONVERTED: LazyLock<Mutex<HashMap<String, String>>> = LazyLock::new(Default::default);
    let md = &c.declaration.as_ref()?.markdown;
    if let Some(html) = crate::sync::lock(&CONVERTED).get(md) {
        return Some(html.clone());
    }
    let html = markdown_to_html(md);
    crate::sync::lock(&CONVERTED).insert(md.clone(), html.clone());
    Some(html)
}

fn markdown_to_html(md: &str) -> String {
    crate::render::declaration::to_html(md)
}

/// What templates need to show a declaration's hash and, for a copy, its origin.
#[derive(Serialize)]
pub(crate) struct DeclarationView<'a> {
    pub sha256: &'a str,
    /// Where this host serves the raw text.
    pub raw_url: String,
    pub origin: Option<OriginView<'a>>,
}

#[derive(Serialize)]
pub(crate) struct OriginView<'a> {
    /// The original's raw text, as written in the campaign file.
    pub url: Option<&'a str>,
    /// The original's reading page, when `url` is a picket host's `.../declaration.md`.
    pub page_url: Option<String>,
    pub sha256: &'a str,
    pub changes: &'a Changes,
}

pub(crate) fn declaration_view<'a>(c: &Campaign, d: &'a Declaration) -> DeclarationView<'a> {
    DeclarationView {
        sha256: &d.sha256,
        raw_url: format!("/c/{}/declaration.md", c.id),
        origin: d.origin.as_ref().map(|o| OriginView {
            url: o.url.as_deref(),
            page_url: o
                .url
                .as_deref()
                .and_then(|u| u.strip_suffix(".md"))
                .filter(|u| u.ends_with("/declaration"))
                .map(str::to_string),
            sha256: &o.sha256,
            changes: &o.changes,
        }),
    }
}

#[derive(Serialize)]
struct Page<'a> {
    campaign: CampaignView<'a>,
    counters: Counters,
    /// With `[[peers]]`: the verified total across hosts.
    across: Option<super::counts::Across>,
    declaration_html: Option<String>,
    /// Hash, raw-text link and (for a copy) proposed changes, under the text.
    declaration: Option<DeclarationView<'a>>,
    csrf: String,
    invited_by: Option<String>,
    error: Option<String>,
    form: SignForm,
}

#[derive(Serialize)]
pub(crate) struct CampaignView<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub hashtag: &'a str,
    pub description: Option<&'a str>,
    pub when: String,
    /// RFC 3339 instant the strike first starts anywhere, for the countdown.
    pub starts: String,
    /// "in 224 days" from the server's clock, shown without JavaScript.
    pub starts_in: String,
    /// When the strike is read in each visitor's own zone: its first day, so the page's
    /// countdown can aim at local midnight.
    pub local_first_day: Option<String>,
}

/// "in 224 days": how long until the strike first starts anywhere, by the server's clock.
fn starts_in(state: &AppState, c: &Campaign) -> String {
    let left = c.strike.earliest_start() - state.clock.now();
    if left.num_seconds() <= 0 {
        "under way or over".to_string()
    } else if left.num_days() >= 2 {
        format!("in {} days", left.num_days())
    } else if left.num_hours() >= 2 {
        format!("in {} hours", left.num_hours())
    } else {
        format!("in {} minutes", left.num_minutes().max(1))
    }
}

pub(crate) fn view<'a>(state: &AppState, c: &'a Campaign) -> CampaignView<'a> {
    let start = c.strike.earliest_start();
    let starts_in = starts_in(state, c);
    CampaignView {
        id: &c.id,
        title: &c.title,
        hashtag: &c.hashtag,
        description: c.description.as_deref(),
        when: super::pages::describe_when(c),
        starts: start.to_rfc3339(),
        starts_in,
        local_first_day: match &c.strike.when {
            crate::campaign::StrikeTime::ParticipantDays(days) => {
                days.first().map(|d| d.to_string())
            }
            _ => None,
        },
    }
}

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
pub struct SignForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub public: Option<String>,
    #[serde(default)]
    pub consent: Option<String>,
    /// "The organisers may e-mail me" (off unless ticked).
    #[serde(default)]
    pub may_email: Option<String>,
    #[serde(default)]
    pub csrf: String,
    /// The honeypot: hidden from people, filled in by bots.
    #[serde(default)]
    pub website: String,
    #[serde(default, rename = "ref")]
    pub invited_by: Option<String>,
}

impl SignForm {
    /// The form as posted; a field left out is empty.
    fn from_fields(f: &Fields) -> SignForm {
        let text = |name| f.get(name).unwrap_or_default().to_string();
        let given = |name| f.get(name).map(str::to_string);
        SignForm {
            name: text("name"),
            email: text("email"),
            public: given("public"),
            consent: given("consent"),
            may_email: given("may_email"),
            csrf: text("csrf"),
            website: text("website"),
            invited_by: given("ref"),
        }
    }

    /// Nothing typed: the form as a first visit shows it.
    fn is_empty(&self) -> bool {
        self.name.is_empty()
            && self.email.is_empty()
            && self.public.is_none()
            && self.consent.is_none()
            && self.website.is_empty()
            && self.invited_by.is_none()
    }
}

/// What the campaign page needs of a visitor's request: their form token (theirs from
/// their cookie, or a new one) and the invitation they came by. Read from the headers in
/// place, where taking the whole `HeaderMap` would copy it for every reader of the page.
pub(crate) struct Visitor {
    /// Only ever hex of the right length (`form_token` checks a cookie's shape): it is
    /// spliced into the cached page without escaping.
    csrf: String,
    invited_by: Option<String>,
}

impl Visitor {
    fn of(headers: &HeaderMap) -> Visitor {
        Visitor {
            csrf: guard::form_token(headers),
            invited_by: guard::cookie(headers, REF_COOKIE),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Visitor::of(&parts.headers))
    }
}

async fn render_page(
    state: &AppState,
    c: &Campaign,
    visitor: Visitor,
    form: SignForm,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let Visitor { csrf, invited_by } = visitor;
    let invited_by = form.invited_by.clone().or(invited_by);
    let cookie = guard::set_cookie(CSRF_COOKIE, &csrf, state.secure_cookies(), 24 * 3600);
    let snapshot = state.counts.get(state, c).await?;
    // The plain page (no invitation, nothing typed, no error) is the same for every
    // visitor but for the CSRF token: it is rendered once per counts snapshot and minute
    // of countdown, kept cut where the token goes, and sent as those pieces with the
    // visitor's token between them, without copying the page (`scripts/bench-web`
    // compares it with a bare handler).
    let plain = error.is_none() && invited_by.is_none() && form.is_empty();
    let starts_in = starts_in(state, c);
    if plain && let Some(pieces) = state.counts.page(&c.id, &snapshot, &starts_in) {
        let body = Spliced::new(&pieces, Bytes::from(csrf));
        let headers = [
            (header::SET_COOKIE, cookie),
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
        ];
        return Ok((status, headers, Body::new(body)).into_response());
    }
    let view = view(state, c);
    let page = Page {
        campaign: view,
        counters: snapshot.counters.clone(),
        across: snapshot.across,
        declaration_html: declaration_html(c),
        declaration: c.declaration.as_ref().map(|d| declaration_view(c, d)),
        csrf: if plain {
            CSRF_MARKER.to_string()
        } else {
            csrf.clone()
        },
        invited_by,
        error,
        form,
    };
    let mut html = state
        .pages
        .render("campaign.html", &page)
        .map_err(|e| WebError::Internal(e.into()))?;
    if plain {
        let pieces: Vec<Bytes> = html
            .split(CSRF_MARKER)
            .map(|piece| Bytes::copy_from_slice(piece.as_bytes()))
            .collect();
        html = html.replace(CSRF_MARKER, &csrf);
        state.counts.keep_page(&c.id, &snapshot, &starts_in, pieces);
    }
    Ok((status, [(header::SET_COOKIE, cookie)], Html(html)).into_response())
}

/// A kept page's pieces with one visitor's token between each two, as a response body of
/// known length: hyper writes them out together (one `writev`), each piece shared with
/// every other visitor's answer.
struct Spliced {
    parts: std::collections::VecDeque<Bytes>,
    left: u64,
}

impl Spliced {
    fn new(pieces: &[Bytes], token: Bytes) -> Spliced {
        let mut parts = std::collections::VecDeque::with_capacity(2 * pieces.len());
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                parts.push_back(token.clone());
            }
            parts.push_back(piece.clone());
        }
        parts.retain(|p| !p.is_empty());
        let left = parts.iter().map(|p| p.len() as u64).sum();
        Spliced { parts, left }
    }
}

impl http_body::Body for Spliced {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let next = self.parts.pop_front();
        if let Some(part) = &next {
            self.left -= part.len() as u64;
        }
        std::task::Poll::Ready(next.map(|part| Ok(http_body::Frame::data(part))))
    }

    fn is_end_stream(&self) -> bool {
        self.parts.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.left)
    }
}

/// Stands for the CSRF token in a cached page: no token (hex) can look like it.
const CSRF_MARKER: &str = "@@picket-csrf-token@@";

#[derive(Deserialize)]
pub struct RefQuery {
    #[serde(rename = "ref")]
    invited_by: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<RefQuery>,
    visitor: Visitor,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let form = SignForm {
        invited_by: q.invited_by,
        ..SignForm::default()
    };
    render_page(&state, c, visitor, form, None, StatusCode::OK).await
}

#[derive(Serialize)]
struct Signed<'a> {
    campaign: CampaignView<'a>,
    name: String,
    invite_link: String,
    confirmation: signing::Confirmation,
}

fn invite_link(state: &AppState, code: &str) -> String {
    format!(
        "{}/i/{code}",
        state.settings.public_url.trim_end_matches('/')
    )
}

pub async fn sign(
    State(state): State<AppState>,
    Path(id): Path<String>,
    visitor: Visitor,
    posted: Form,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let form = SignForm::from_fields(&posted.fields);
    if !posted.csrf_ok() {
        let msg = "Your session expired or the form came from another site: please sign again."
            .to_string();
        return render_page(&state, c, visitor, form, Some(msg), StatusCode::FORBIDDEN).await;
    }
    if form.consent.is_none() {
        let msg = "Please tick the box to confirm you agree with the declaration.".to_string();
        return render_page(
            &state,
            c,
            visitor,
            form,
            Some(msg),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    let signer = match Signer::parse(
        &form.name,
        Some(&form.email),
        form.public.is_some(),
        form.invited_by.as_deref(),
    ) {
        Ok(s) => s.with_email_consent(form.may_email.is_some()),
        Err(msg) => {
            return render_page(
                &state,
                c,
                visitor,
                form,
                Some(msg.to_string()),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let (invite_link, confirmation) = if form.website.is_empty() {
        let signed = signing::sign(&state, c, &signer).await?;
        (
            invite_link(&state, &signed.invite_code),
            signed.confirmation,
        )
    } else {
        // A bot filled the hidden field: answer as if it worked, store nothing, mail nobody.
        tracing::info!(campaign = %c.id, "honeypot filled; signature dropped");
        let page = format!(
            "{}/c/{}",
            state.settings.public_url.trim_end_matches('/'),
            c.id
        );
        (page, signing::Confirmation::Counted)
    };
    let html = state
        .pages
        .render(
            "signed.html",
            &Signed {
                campaign: view(&state, c),
                name: signer.name().to_string(),
                invite_link,
                confirmation,
            },
        )
        .map_err(|e| WebError::Internal(e.into()))?;
    Ok((StatusCode::OK, Html(html)).into_response())
}

#[derive(Serialize)]
struct Confirmed<'a> {
    campaign: CampaignView<'a>,
    name: String,
    invite_link: String,
    newly: bool,
}

/// `/c/{id}/confirm/{token}`: the link in a confirmation mail. The signature counts from
/// now on; following the link again only says thanks again.
pub async fn confirm(
    State(state): State<AppState>,
    Path((id, token)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let unknown = || {
        WebError::NotFound(
            "This confirmation link is not known here. If you signed more than once, use the link in the latest mail; or sign again to get a new one."
                .into(),
        )
    };
    if !signing::token_shape_ok(&token) {
        return Err(unknown());
    }
    let confirmed = state
        .store
        .confirm_signature(&c.id, &signing::token_hash(&token))
        .await?
        .ok_or_else(unknown)?;
    if confirmed.newly {
        state.counts.changed();
        tracing::info!(campaign = %c.id, signature = confirmed.id.0, "signature confirmed");
    }
    let html = state
        .pages
        .render(
            "confirmed.html",
            &Confirmed {
                campaign: view(&state, c),
                name: confirmed.name,
                invite_link: invite_link(&state, &confirmed.invite_code),
                newly: confirmed.newly,
            },
        )
        .map_err(|e| WebError::Internal(e.into()))?;
    // The token is in the address: keep it out of other sites' logs.
    Ok(([(header::REFERRER_POLICY, "no-referrer")], Html(html)).into_response())
}

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    page: u32,
}

pub async fn signatures(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Result<Html<String>, WebError> {
    const PER_PAGE: u32 = 100;
    let c = find(&state, &id)?;
    let list = state
        .store
        .public_signatures(&c.id, PER_PAGE + 1, u64::from(q.page) * u64::from(PER_PAGE))
        .await?;
    let more = list.len() > PER_PAGE as usize;
    let names: Vec<serde_json::Value> = list
        .iter()
        .take(PER_PAGE as usize)
        .map(|s| serde_json::json!({"name": s.name, "date": s.created_at.format("%Y-%m-%d").to_string()}))
        .collect();
    let html = state
        .pages
        .render(
            "signatures.html",
            &serde_json::json!({
                "campaign": view(&state, c),
                "counters": counters(&state, c).await?,
                "signers": names,
                "page": q.page,
                "next": more.then_some(q.page + 1),
                "prev": q.page.checked_sub(1),
            }),
        )
        .map_err(|e| WebError::Internal(e.into()))?;
    Ok(Html(html))
}

/// `/i/{code}`: remember who invited this visitor (a cookie the sign form reads), then
/// land on the campaign page.
pub async fn invite(
    State(state): State<AppState>,
    Path(code): Path<String>,
) -> Result<Response, WebError> {
    let target = if guard::plausible_code(&code) {
        state.store.resolve_invite(&code).await?
    } else {
        None
    };
    let Some(target) = target else {
        return Err(WebError::NotFound(
            "This invitation link is not known here.".into(),
        ));
    };
    let to = match target.campaign_id.filter(|id| state.campaign(id).is_some()) {
        Some(id) => format!("/c/{id}?ref={code}"),
        None => "/".to_string(),
    };
    let cookie = guard::set_cookie(REF_COOKIE, &code, state.secure_cookies(), 30 * 24 * 3600);
    Ok(([(header::SET_COOKIE, cookie)], Redirect::to(&to)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    #[tokio::test]
    async fn a_kept_page_is_sent_as_its_pieces_around_the_token_with_its_exact_length() {
        let pieces = [
            Bytes::from_static(b"<form>"),
            Bytes::from_static(b""),
            Bytes::from_static(b"</form>"),
        ];
        let body = Spliced::new(&pieces, Bytes::from_static(b"cafe"));
        assert_eq!(body.size_hint().exact(), Some(21));

        let sent = axum::body::to_bytes(Body::new(body), usize::MAX)
            .await
            .unwrap();

        assert_eq!(&sent[..], b"<form>cafecafe</form>");
    }
}
