//! The public strike cards: `GET /c/{id}/card.png?day=YYYY-MM-DD&size=square|story` (the
//! picture) and `GET /c/{id}/card.txt?day=...` (its text, for an `alt` attribute).
//!
//! Anyone may ask, so drawing is guarded three ways: only the campaign's own strike days
//! and two sizes exist (a bounded set of cards), each card is drawn once and kept
//! ([`crate::card::Cards`]), and a request that would draw counts against the client's
//! rate limit like a write does. A cached card costs nothing but the bytes.

use std::net::SocketAddr;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Deserialize;

use super::campaign::find;
use super::{AppState, WebError};
use crate::campaign::Campaign;
use crate::card::{Notice, Size};

/// A card changes only with the campaign file or the host's address: browsers and
/// proxies may keep it a day, and revalidate with the ETag after.
const CACHE_CONTROL: &str = "public, max-age=86400";

#[derive(Debug, Deserialize)]
pub struct CardQuery {
    day: Option<String>,
    size: Option<String>,
}

/// The card as PNG.
pub async fn png(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    query: Result<Query<CardQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let Query(q) = query.map_err(|e| WebError::BadRequest(e.body_text()))?;
    let size = match q.size.as_deref() {
        None | Some("") => Size::Square,
        Some(s) => Size::parse(s).ok_or_else(|| {
            WebError::Invalid(format!(
                "There is no card size “{s}”: use size=square (1080×1080) or size=story (1080×1920)."
            ))
        })?,
    };
    let notice = notice(&state, c, q.day.as_deref())?;
    let card = match state.cards.cached(&notice, size) {
        Some(card) => card,
        None => {
            if !state.limits.allow(peer.ip()) {
                return Err(WebError::TooMany);
            }
            state
                .cards
                .get(&notice, size)
                .await
                .map_err(|e| WebError::Internal(e.into()))?
        }
    };
    let etag = HeaderValue::from_str(&card.etag).map_err(|e| WebError::Internal(e.into()))?;
    let cache = [
        (header::ETAG, etag),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
    ];
    if matches_etag(&headers, &card.etag) {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Ok((
        cache,
        [(header::CONTENT_TYPE, HeaderValue::from_static("image/png"))],
        card.png.clone(),
    )
        .into_response())
}

/// The card's text: everything it shows, for an `alt` attribute or a screen reader.
pub async fn text(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<CardQuery>, QueryRejection>,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let Query(q) = query.map_err(|e| WebError::BadRequest(e.body_text()))?;
    let notice = notice(&state, c, q.day.as_deref())?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, CACHE_CONTROL),
        ],
        notice.describe(),
    )
        .into_response())
}

/// The card of `day` (one of the campaign's strike days; the first when not given).
fn notice(state: &AppState, c: &Campaign, day: Option<&str>) -> Result<Notice, WebError> {
    let days = c.days();
    let day = match day.filter(|d| !d.is_empty()) {
        None => *days
            .first()
            .ok_or_else(|| WebError::NotFound("This campaign has no strike day.".into()))?,
        Some(d) => {
            let parsed = NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                WebError::Invalid(format!(
                    "“{d}” is not a date: write day=YYYY-MM-DD, e.g. day={}.",
                    days.first().map(|d| d.to_string()).unwrap_or_default()
                ))
            })?;
            if !days.contains(&parsed) {
                let list: Vec<String> = days.iter().map(ToString::to_string).collect();
                return Err(WebError::NotFound(format!(
                    "{parsed} is not a strike day of this campaign; its days are {}.",
                    list.join(", ")
                )));
            }
            parsed
        }
    };
    Ok(c.card_notice(day, &state.settings.public_url))
}

/// Whether `If-None-Match` names this card's ETag (or `*`).
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}
