//! HTML pages, their static files and the health check.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse};
use serde::Serialize;

use super::{AppState, WebError};
use crate::campaign::{Campaign, StrikeTime};

#[derive(Serialize)]
struct CampaignSummary<'a> {
    id: &'a str,
    title: &'a str,
    hashtag: &'a str,
    when: String,
}

/// "July 4 and 5, 2027 (each in your own time zone)" style text for lists.
pub(crate) fn describe_when(c: &Campaign) -> String {
    let days = |days: &[chrono::NaiveDate]| {
        days.iter()
            .map(|d| d.format("%Y-%m-%d").to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match &c.strike.when {
        StrikeTime::ParticipantDays(d) => format!("{} (each in your own time zone)", days(d)),
        StrikeTime::ZonedDays { tz, days: d } => format!("{} ({tz})", days(d)),
        StrikeTime::Windows(w) => w
            .iter()
            .map(|w| {
                format!(
                    "{} to {}",
                    w.start.format("%Y-%m-%d %H:%M UTC"),
                    w.end.format("%Y-%m-%d %H:%M UTC")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

pub async fn index(State(state): State<AppState>) -> Result<Html<String>, WebError> {
    let campaigns: Vec<_> = state
        .campaigns
        .iter()
        .map(|c| CampaignSummary {
            id: &c.id,
            title: &c.title,
            hashtag: &c.hashtag,
            when: describe_when(c),
        })
        .collect();
    let html = state
        .pages
        .render("index.html", &serde_json::json!({ "campaigns": campaigns }))
        .map_err(|e| WebError::Internal(e.into()))?;
    Ok(Html(html))
}

/// 200 when the database answers; 503 otherwise, so a load balancer stops sending traffic.
pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n")
        }
    }
}

pub async fn not_found() -> WebError {
    WebError::NotFound("There is no page at this address.".into())
}

/// `/static/{file}`: the pages' stylesheet and script. Their names change with their
/// content, so they may be kept for a year.
pub async fn asset(uri: axum::http::Uri) -> Result<axum::response::Response, WebError> {
    use axum::http::header;
    let asset = crate::render::assets::by_path(uri.path())
        .ok_or_else(|| WebError::NotFound("There is no such file here.".into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        asset.body,
    )
        .into_response())
}
