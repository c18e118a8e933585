//! Centerless totals on the web: `GET /c/{id}/checkpoint`, this host's latest signed
//! checkpoint (issued anew when its counts rose, see `federation::current_note`), and
//! `GET /c/{id}/hosts`, the page listing this host and its peers with their status.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use super::campaign::{CampaignView, find, view};
use super::{AppState, WebError};
use crate::federation::{self, Figures, Hosts};

/// The signed note, as plain text (docs/checkpoints.md).
pub async fn checkpoint(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let snapshot = state.counts.get(&state, c).await?;
    let counts = Figures {
        signatures: snapshot.counters.signatures,
        strikers: snapshot.counters.strikers,
        published: snapshot.counters.published,
    };
    let note = federation::current_note(
        state.store.as_ref(),
        &state.host_key,
        c,
        &state.settings.public_url,
        counts,
        state.clock.now(),
    )
    .await
    .map_err(|e| WebError::Internal(e.into()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        note,
    )
        .into_response())
}

/// This host's signed distinct-signers sketch (only with `distinct_signers_key`).
pub async fn sketch(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let not_here = || WebError::NotFound("This host makes no distinct-signers sketch.".into());
    let key = state
        .settings
        .distinct_signers_key
        .as_ref()
        .ok_or_else(not_here)?;
    let note = federation::current_sketch(
        state.store.as_ref(),
        &state.host_key,
        c,
        &state.settings.public_url,
        key.expose().as_bytes(),
    )
    .await
    .map_err(|e| WebError::Internal(e.into()))?
    .ok_or_else(not_here)?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        note,
    )
        .into_response())
}

#[derive(Serialize)]
struct Page<'a> {
    campaign: CampaignView<'a>,
    hosts: &'a Hosts,
    public_url: &'a str,
}

/// This host and every peer with its status and counts.
pub async fn hosts(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let report = state.counts.report(&state, c).await?;
    let page = Page {
        campaign: view(&state, c),
        hosts: &report.hosts,
        public_url: state.settings.public_url.trim_end_matches('/'),
    };
    let html = state
        .pages
        .render("hosts.html", &page)
        .map_err(|e| WebError::Internal(e.into()))?;
    Ok(Html(html).into_response())
}
