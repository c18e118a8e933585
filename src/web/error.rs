//! Errors a handler can return, each mapped to a status and a page a person can read.
//! Nothing a user sends may produce a 500: bad input is a 4xx with a message.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::participation::{Missing, ParticipationError};

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
    /// What the request meant to change was changed meanwhile; reloading shows it.
    #[error("{0}")]
    Conflict(String),
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
            WebError::Conflict(_) => StatusCode::CONFLICT,
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

/// A participant's action that did not happen, as the web tells it: the participant's
/// own mistakes are 4xx pages in the words of the page they came from; a network's answer
/// is never echoed (only the fixed sentence of [`ConnectError::for_visitor`]).
///
/// [`ConnectError::for_visitor`]: crate::participation::connect::ConnectError::for_visitor
impl From<ParticipationError> for WebError {
    fn from(e: ParticipationError) -> Self {
        match e {
            ParticipationError::Invalid(m) => WebError::Invalid(m),
            ParticipationError::NoAccounts => WebError::Invalid(NO_ACCOUNTS.into()),
            ParticipationError::NotFound(Missing::Account(_)) => {
                WebError::Invalid(NOT_YOUR_ACCOUNT.into())
            }
            ParticipationError::NotFound(Missing::Pledge(_)) => {
                WebError::Invalid("You have not pledged to that campaign.".into())
            }
            ParticipationError::NotFound(Missing::Participant) => WebError::NotFound(GONE.into()),
            ParticipationError::NotFound(Missing::Notice) => WebError::NotFound(NO_NOTICE.into()),
            ParticipationError::Conflict(what) => {
                tracing::debug!(%what, "a participant's action met a change");
                WebError::Conflict(CHANGED.into())
            }
            ParticipationError::Store(e) => e.into(),
            ParticipationError::Network(e) => {
                tracing::debug!(reason = %e, "a network refused");
                WebError::Invalid(e.for_visitor().to_string())
            }
        }
    }
}

/// An "I posted it" for a notice that is not (or no longer) there, or a dead mail link.
pub(crate) const NO_NOTICE: &str = "That notice is not here: its link may be mistyped, or your data was deleted. Your page at /me lists your notices.";

/// A pledge with no account ticked.
pub(crate) const NO_ACCOUNTS: &str =
    "Connect an account and tick it: picket posts the notices from your own accounts.";

/// An account named in a form that is not the visitor's (or not an account at all).
pub(crate) const NOT_YOUR_ACCOUNT: &str = "That account is not yours.";

/// What a visitor reads when their action met a change made meanwhile.
const CHANGED: &str = "This was changed meanwhile (in another tab or on another device): reload the page and try again.";

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
    use crate::participation::connect::ConnectError;
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
    async fn a_participants_own_mistakes_are_4xx_pages_in_the_words_of_the_web() {
        let cases = [
            (
                ParticipationError::NotFound(Missing::Account(crate::store::AccountId(7))),
                StatusCode::UNPROCESSABLE_ENTITY,
                NOT_YOUR_ACCOUNT,
            ),
            (
                ParticipationError::NotFound(Missing::Pledge("strike".into())),
                StatusCode::UNPROCESSABLE_ENTITY,
                "You have not pledged to that campaign.",
            ),
            (
                ParticipationError::NoAccounts,
                StatusCode::UNPROCESSABLE_ENTITY,
                NO_ACCOUNTS,
            ),
            (
                ParticipationError::Invalid("Choose your time zone.".into()),
                StatusCode::UNPROCESSABLE_ENTITY,
                "Choose your time zone.",
            ),
            (
                ParticipationError::NotFound(Missing::Participant),
                StatusCode::NOT_FOUND,
                GONE,
            ),
            (
                ParticipationError::Conflict("pledge 3 vanished".into()),
                StatusCode::CONFLICT,
                CHANGED,
            ),
            (
                ParticipationError::Store(StoreError::NotFound("pledge 3".into())),
                StatusCode::NOT_FOUND,
                GONE,
            ),
        ];
        for (e, status, words) in cases {
            let (got, body) = page(e.into()).await;
            assert_eq!(got, status, "{body}");
            assert!(body.contains(&html_escape(words)), "{body}");
            assert!(!body.contains("pledge 3"), "no internal words: {body}");
        }
    }

    #[tokio::test]
    async fn a_network_refusal_shows_the_fixed_sentence_never_the_servers_words() {
        let e = ParticipationError::Network(ConnectError::Failed {
            shown: "picket could not connect to that server.",
            detail: "server said: <script>secret-token</script>".into(),
        });
        let (status, body) = page(e.into()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body.contains("picket could not connect to that server."),
            "{body}"
        );
        assert!(!body.contains("secret-token"), "{body}");
    }

    #[tokio::test]
    async fn a_failing_store_behind_an_action_is_a_500_that_shows_no_detail() {
        let e = ParticipationError::Store(StoreError::Corrupt("unknown state \"zzz\"".into()));
        let (status, body) = page(e.into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("zzz"), "{body}");
    }

    #[tokio::test]
    async fn other_store_failures_stay_a_500_that_shows_no_detail() {
        let e = StoreError::Corrupt("unknown state \"zzz\"".into());
        let (status, body) = page(e.into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("zzz"), "{body}");
    }
}
