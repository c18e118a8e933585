//! `GET /c/{id}/stats`: the public stats page. Aggregates only, from the same cached
//! [`Report`](crate::stats::Report) as the stats API, with SVG charts drawn here on the
//! server so the page reads without JavaScript.

use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use super::campaign::{CampaignView, find, view};
use super::{AppState, WebError};
use crate::stats::{Report, svg};

#[derive(Serialize)]
struct Chart {
    id: String,
    title: String,
    /// Built by [`svg`], every text in it escaped: inlined as is.
    svg: String,
}

#[derive(Serialize)]
struct Page<'a> {
    campaign: CampaignView<'a>,
    stats: &'a Report,
    over_time: String,
    networks: Vec<Chart>,
    zones: String,
    tree: String,
    census: String,
}

pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let report = state.counts.report(&state, c).await?;
    let mut names: Vec<&str> = report
        .posts
        .by_network_hour
        .iter()
        .map(|h| h.network.as_str())
        .collect();
    names.dedup();
    let page = Page {
        campaign: view(&state, c),
        stats: &report,
        over_time: svg::over_time(&report),
        networks: names
            .into_iter()
            .map(|n| Chart {
                id: n.to_string(),
                title: n.to_string(),
                svg: svg::network_hours(&report, n),
            })
            .collect(),
        zones: svg::zone_band(&report.time_zones, &report.striking_offsets),
        tree: svg::tree_depth(&report),
        census: svg::census_beside_posts(&report),
    };
    let html = state
        .pages
        .render("stats.html", &page)
        .map_err(|e| WebError::Internal(e.into()))?;
    Ok(Html(html).into_response())
}
