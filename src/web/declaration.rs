//! A campaign's declaration on its own: the raw text other hosts copy from
//! (`/c/{id}/declaration.md`, with its content hash) and a page for reading it
//! (`/c/{id}/declaration`). For a copy, both pages show the "Proposed changes" against the
//! original it was made from, with a link to it and both hashes.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use super::campaign::{
    CampaignView, DeclarationView, declaration_html, declaration_view, find, view,
};
use super::{AppState, WebError};
use crate::campaign::declaration::normalize;
use crate::campaign::{Campaign, Declaration};

/// The header that carries the content hash, for clients that do not read `ETag`s.
pub const SHA256_HEADER: &str = "x-content-sha256";

fn declaration_of(c: &Campaign) -> Result<&Declaration, WebError> {
    c.declaration
        .as_ref()
        .ok_or_else(|| WebError::NotFound(format!("The campaign “{}” has no declaration.", c.id)))
}

/// `GET /c/{id}/declaration.md`: the normalised text, so that its SHA-256 is the hash in
/// the headers; `If-None-Match` with that hash answers 304.
pub async fn raw(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, WebError> {
    let c = find(&state, &id)?;
    let d = declaration_of(c)?;
    let etag = format!("\"{}\"", d.sha256);
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
            normalize(&d.markdown),
        )
            .into_response()
    };
    let h = response.headers_mut();
    // Hex digits and quotes only: always a valid header value.
    if let (Ok(tag), Ok(sum)) = (
        HeaderValue::from_str(&etag),
        HeaderValue::from_str(&d.sha256),
    ) {
        h.insert(header::ETAG, tag);
        h.insert(SHA256_HEADER, sum);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    // Public text meant to be copied: a blogger's page may fetch it from the browser.
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    Ok(response)
}

#[derive(Serialize)]
struct Page<'a> {
    campaign: CampaignView<'a>,
    declaration_html: Option<String>,
    declaration: DeclarationView<'a>,
}

/// `GET /c/{id}/declaration`: the declaration alone, with its hash and proposed changes.
pub async fn page(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Html<String>, WebError> {
    let c = find(&state, &id)?;
    let d = declaration_of(c)?;
    let html = state
        .pages
        .render(
            "declaration.html",
            &Page {
                campaign: view(&state, c),
                declaration_html: declaration_html(c),
                declaration: declaration_view(c, d),
            },
        )
        .map_err(|e| WebError::Internal(e.into()))?;
    Ok(Html(html))
}
