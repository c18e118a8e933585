//! `/admin`: the organiser area, for the host's operator. Signing in takes the password or
//! token `picket admin` set (verified against its Argon2 hash), through the one [`Form`]
//! extractor (CSRF), within a strict budget per client and a global one
//! ([`guard::SignInLimits`]). A session is a random token in a cookie that only `/admin`
//! sees (`HttpOnly`, `SameSite=Strict`, `Secure` on https); the store keeps its hash and
//! when it expires.
//!
//! Every route here but the sign-in form answers a visitor without a session with a
//! redirect to the sign-in form, and never with data. Nothing here is cached.
//!
//! What it shows: each campaign's figures ([`figures`]), whether it is cancelled and how
//! far it is from its tipping point, the latest failed and missed posts with picket's
//! reasons, and how many accounts wait to be reconnected. Exports are the `admin`
//! module's, the same bytes `picket export` prints.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::campaign::find;
use super::form::{FORM_REFUSED, Form, page_with_csrf};
use super::{AppState, WebError, guard};
use crate::admin::{self, ExportFormat, ExportKind};
use crate::campaign::Campaign;
use crate::participation::token_hash;
use crate::stats::Report;

/// The session cookie; sent back only to `/admin` and below.
pub const ADMIN_COOKIE: &str = "picket_admin";

/// How long a signed-in browser stays signed in.
const SESSION_LIFETIME: Duration = Duration::hours(12);

/// How many failed and missed posts the area lists.
const FAILURES_SHOWN: u32 = 50;

/// The organiser area's routes, never cached.
pub fn routes() -> Router<AppState> {
    use tower_http::set_header::SetResponseHeaderLayer;
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/sign-in", get(sign_in_form).post(sign_in))
        .route("/admin/sign-out", post(sign_out))
        .route("/admin/c/{id}/export/{kind}/{format}", get(download))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// The session token of this request, if it names a live admin session.
async fn session(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, WebError> {
    let Some(token) = guard::cookie(headers, ADMIN_COOKIE).filter(|t| super::session::plausible(t))
    else {
        return Ok(None);
    };
    let live = state
        .store
        .admin_session_valid(&token_hash(&token), state.clock.now())
        .await?;
    Ok(live.then_some(token))
}

fn to_sign_in() -> Response {
    Redirect::to("/admin/sign-in").into_response()
}

fn cookie(state: &AppState, value: &str, max_age_secs: i64) -> String {
    format!(
        "{ADMIN_COOKIE}={value}; Path=/admin; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{}",
        if state.secure_cookies() {
            "; Secure"
        } else {
            ""
        }
    )
}

#[derive(Serialize)]
struct SignInPage<'a> {
    csrf: &'a str,
    error: Option<&'a str>,
}

fn sign_in_page(
    state: &AppState,
    headers: &HeaderMap,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let csrf = guard::form_token(headers);
    page_with_csrf(
        state,
        "admin_sign_in.html",
        &SignInPage { csrf: &csrf, error },
        &csrf,
        status,
    )
}

/// `GET /admin/sign-in`: the form (a browser already signed in goes on to the area).
async fn sign_in_form(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if session(&state, &headers).await?.is_some() {
        return Ok(Redirect::to("/admin").into_response());
    }
    sign_in_page(&state, &headers, None, StatusCode::OK)
}

/// `POST /admin/sign-in`: within budget, with this site's form, the right secret.
async fn sign_in(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    posted: Form,
) -> Result<Response, WebError> {
    if !state.sign_in.allow(peer.ip()) {
        tracing::warn!("admin sign-in refused: over the attempt budget");
        return Err(WebError::TooMany);
    }
    if !posted.csrf_ok() {
        return sign_in_page(&state, &headers, Some(FORM_REFUSED), StatusCode::FORBIDDEN);
    }
    let secret = posted.fields.get("secret").unwrap_or_default().to_string();
    let phc = state.store.admin_secret().await?;
    // Argon2 takes tens of milliseconds of CPU on purpose: off the async threads.
    let right = tokio::task::spawn_blocking(move || {
        phc.is_some_and(|phc| !secret.is_empty() && admin::verify_secret(&phc, &secret))
    })
    .await
    .map_err(|e| WebError::Internal(e.into()))?;
    if !right {
        tracing::info!("admin sign-in with a wrong secret");
        return sign_in_page(
            &state,
            &headers,
            Some("That is not the password or token set with picket admin."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let token = crate::participation::new_access_token();
    let now = state.clock.now();
    state
        .store
        .start_admin_session(&token_hash(&token), now + SESSION_LIFETIME, now)
        .await?;
    let set = cookie(&state, &token, SESSION_LIFETIME.num_seconds());
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, set),
            (header::LOCATION, "/admin".to_string()),
        ],
    )
        .into_response())
}

/// `POST /admin/sign-out`: end this browser's session.
async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    posted: Form,
) -> Result<Response, WebError> {
    let Some(token) = session(&state, &headers).await? else {
        return Ok(to_sign_in());
    };
    posted.checked()?;
    state.store.end_admin_session(&token_hash(&token)).await?;
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie(&state, "", 0)),
            (header::LOCATION, "/admin/sign-in".to_string()),
        ],
    )
        .into_response())
}

/// One campaign's figures as the area shows them: the stats report the API and
/// `picket stats` give (`stats::Report`, cached like the page's counters), so every figure
/// agrees with theirs.
async fn figures(state: &AppState, c: &Campaign) -> Result<Arc<Report>, WebError> {
    state.counts.report(state, c).await
}

#[derive(Serialize)]
struct CampaignView {
    id: String,
    title: String,
    figures: Arc<Report>,
    cancelled: Option<Cancelled>,
    threshold: Option<ThresholdView>,
}

#[derive(Serialize)]
struct Cancelled {
    at: String,
    reason: String,
}

#[derive(Serialize)]
struct ThresholdView {
    participants: u32,
    pledged: u64,
    deadline: String,
    reached: bool,
}

#[derive(Serialize)]
struct FailureView {
    at: String,
    campaign: String,
    network: String,
    account_id: i64,
    state: String,
    reason: String,
}

#[derive(Serialize)]
struct Dashboard {
    csrf: String,
    campaigns: Vec<CampaignView>,
    failures: Vec<FailureView>,
    reconnect: Vec<(String, u64)>,
}

fn shown(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `GET /admin`: the area itself.
async fn dashboard(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    if session(&state, &headers).await?.is_none() {
        return Ok(to_sign_in());
    }
    let mut campaigns = Vec::new();
    for c in state.campaigns.iter() {
        let cancelled = state
            .store
            .campaign_cancelled(c.id.as_str())
            .await?
            .map(|x| Cancelled {
                at: shown(x.at),
                reason: x.reason,
            });
        let threshold = match c.threshold {
            None => None,
            Some(t) => {
                // The dispatcher's rule: pledges made by the deadline, by default the
                // moment the strike starts anywhere.
                let deadline = t.deadline.unwrap_or_else(|| c.strike.earliest_start());
                let pledged = state
                    .store
                    .active_pledge_count(c.id.as_str(), deadline)
                    .await?;
                Some(ThresholdView {
                    participants: t.participants,
                    pledged,
                    deadline: shown(deadline),
                    reached: pledged >= u64::from(t.participants),
                })
            }
        };
        campaigns.push(CampaignView {
            id: c.id.to_string(),
            title: c.title.clone(),
            figures: figures(&state, c).await?,
            cancelled,
            threshold,
        });
    }
    let failures = state
        .store
        .latest_failures(FAILURES_SHOWN)
        .await?
        .into_iter()
        .map(|f| FailureView {
            at: shown(f.at),
            campaign: f.campaign,
            network: f.network.to_string(),
            account_id: f.account_id.0,
            state: f.state.to_string(),
            reason: f.reason.unwrap_or_default(),
        })
        .collect();
    let reconnect = state
        .store
        .reconnect_needed()
        .await?
        .into_iter()
        .map(|(n, k)| (n.to_string(), k))
        .collect();
    let csrf = guard::form_token(&headers);
    page_with_csrf(
        &state,
        "admin.html",
        &Dashboard {
            csrf: csrf.clone(),
            campaigns,
            failures,
            reconnect,
        },
        &csrf,
        StatusCode::OK,
    )
}

/// `GET /admin/c/{id}/export/{signatures|posts}/{csv|json}`: a file to download.
async fn download(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((id, kind, format)): Path<(String, String, String)>,
) -> Result<Response, WebError> {
    if session(&state, &headers).await?.is_none() {
        return Ok(to_sign_in());
    }
    let c = find(&state, &id)?;
    let kind = match kind.as_str() {
        "signatures" => ExportKind::Signatures,
        "posts" => ExportKind::Posts,
        _ => return Err(WebError::NotFound("that export".into())),
    };
    let format = match format.as_str() {
        "csv" => ExportFormat::Csv,
        "json" => ExportFormat::Json,
        _ => return Err(WebError::NotFound("that export".into())),
    };
    let body = admin::export(state.store.as_ref(), c.id.as_str(), kind, format)
        .await
        .map_err(|e| WebError::Internal(e.into()))?;
    let disposition = format!(
        "attachment; filename=\"{}-{}.{}\"",
        c.id,
        kind.name(),
        format.extension()
    );
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
