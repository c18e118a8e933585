//! Errors a handler can return, each mapped to a status and a page a person can read.
//! Nothing a user sends may produce a 500: bad input is a 4xx with a message.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

/// Why a request could not be served.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// No such campaign, page or code.
    #[error("{0}")]
    NotFound(String),
    /// The request was understood but its content is invalid; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// The request could not be read at all (malformed body, wrong encoding).
    #[error("{0}")]
    BadRequest(String),
    /// The visitor may not do this (not signed in, or not theirs).
    #[error("{0}")]
    Forbidden(String),
    /// This client sent too much too fast.
    #[error("Too many requests from your address: please wait a minute and try again.")]
    TooMany,
    /// Something on our side failed; details go to the log, not to the visitor.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::TooMany => StatusCode::TOO_MANY_REQUESTS,
            WebError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What a visitor reads when a record they refer to is gone: the store's own words name
/// internal ids, which say nothing to them.
const GONE: &str = "What this page refers to does not exist (any more): it may have been removed meanwhile. Go back and reload the page.";

impl From<crate::store::StoreError> for WebError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            // A row the request names that is not there (deleted by another tab, a stale
            // form) is the visitor's 404, not our 500.
            crate::store::StoreError::NotFound(what) => {
                tracing::debug!(%what, "not found in the store");
                WebError::NotFound(GONE.into())
            }
            e => WebError::Internal(e.into()),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let WebError::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "request failed");
        }
        // A minimal page without the template engine: this path must not fail itself.
        let message = html_escape(&self.to_string());
        let title = status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<!doctype html><meta charset=utf-8><title>{title}</title><h1>{title}</h1><p>{message}</p><p><a href=\"/\">Back to the campaigns</a></p>"
        );
        (status, Html(body)).into_response()
    }
}

pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    async fn page(e: WebError) -> (StatusCode, String) {
        let response = e.into_response();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_record_missing_from_the_store_is_a_404_page_not_a_500() {
        let (status, body) = page(StoreError::NotFound("account 7".into()).into()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("<h1>Not Found</h1>"), "{body}");
        assert!(body.contains("does not exist (any more)"), "{body}");
        assert!(!body.contains("account 7"), "no internal ids: {body}");
    }

    #[tokio::test]
    async fn other_store_failures_stay_a_500_that_shows_no_detail() {
        let e = StoreError::Corrupt("unknown state \"zzz\"".into());
        let (status, body) = page(e.into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("zzz"), "{body}");
    }
}
