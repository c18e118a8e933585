//! `GET /widget.js`: the embeddable strike widget with this host's campaigns inlined (their
//! days and counters), so a blogger's page makes no request but for the script itself.
//! `?campaign=ID` inlines only that campaign. What the script does is in `crate::widget`.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::campaign::find;
use super::{AppState, WebError};
use crate::widget::{CampaignConfig, Config, Counts};

#[derive(Deserialize)]
pub struct WidgetQuery {
    campaign: Option<String>,
}

pub async fn script(
    State(state): State<AppState>,
    query: Result<Query<WidgetQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let Query(q) = query.map_err(|e| {
        WebError::BadRequest(format!(
            "Use /widget.js or /widget.js?campaign=ID: {}",
            e.body_text()
        ))
    })?;
    let chosen: Vec<_> = match q.campaign.as_deref() {
        Some(id) => vec![find(&state, id)?],
        None => state.campaigns.iter().collect(),
    };
    let mut campaigns = Vec::with_capacity(chosen.len());
    for c in chosen {
        let snapshot = state.counts.get(&state, c).await?;
        let n = &snapshot.counters;
        // With peers, the movement's verified total and how many hosts it adds up.
        let counts = match snapshot.across {
            Some(a) => Counts {
                signatures: a.signatures,
                strikers: a.strikers,
                hosts: Some(a.hosts),
            },
            None => Counts {
                signatures: n.signatures,
                strikers: n.strikers,
                hosts: None,
            },
        };
        campaigns.push(CampaignConfig::new(
            c,
            Some(counts),
            &state.settings.public_url,
        ));
    }
    // `generated` stays out of the validator so an unchanged script keeps its ETag.
    let mut config = Config::new(campaigns, state.clock.now(), false);
    let etag = {
        let generated = std::mem::take(&mut config.generated);
        let digest = Sha256::digest(config.script().as_bytes());
        config.generated = generated;
        format!("\"{}\"", hex::encode(&digest[..12]))
    };
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let common = [
        // Counters change, days do not: a few minutes of staleness is fine.
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        ),
        (
            header::ETAG,
            HeaderValue::from_str(&etag).expect("hex is a valid header value"),
        ),
        // Pages that require CORP of their subresources may still embed it.
        (
            header::HeaderName::from_static("cross-origin-resource-policy"),
            HeaderValue::from_static("cross-origin"),
        ),
    ];
    if not_modified {
        return Ok((StatusCode::NOT_MODIFIED, common).into_response());
    }
    Ok((
        common,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        config.script(),
    )
        .into_response())
}
