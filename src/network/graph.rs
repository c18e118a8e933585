//! What an error answer of Meta's Graph-style APIs (Threads, Facebook Pages) means for the
//! dispatcher. Both answer `{"error": {"message", "type", "code", "error_subcode",
//! "fbtrace_id"}}`, documented at
//! https://developers.facebook.com/docs/graph-api/guides/error-handling :
//! - `OAuthException` without a subcode, code 190 (token expired, revoked, invalid) or 102
//!   (session): the person must sign in again → reconnect;
//! - 10 and 200–299 (a permission is missing or was taken back) → reconnect;
//! - 4, 17, 32, 613, 80001–80014 (too many calls) and HTTP 429 → retry later;
//! - 1, 2 (unknown, service) and 5xx → retry;
//! - anything else (100 invalid parameter, 368 blocked for policy, ...) → rejected.
//!
//! Only picket's words (with the HTTP status and the code) go in the summary; the
//! network's message is the detail, for the log.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::Deserialize;

use super::guarded::Response;
use super::{PublishError, Reason};

/// The `error` object of a Graph error answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct GraphError {
    #[serde(default)]
    pub message: String,
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub code: Option<i64>,
}

/// Read the error answer and say what to do about it; a wait is counted from `now`.
pub(crate) async fn error_of(
    resp: Response,
    network: &str,
    what: &str,
    now: DateTime<Utc>,
) -> PublishError {
    let status = resp.status();
    let after = super::retry_after(resp.headers(), now).or_else(|| regain_access(resp.headers()));
    let text = resp.text().await.unwrap_or_default();
    #[derive(Deserialize)]
    struct Body {
        error: GraphError,
    }
    let err = serde_json::from_str::<Body>(&text)
        .map(|b| b.error)
        .unwrap_or_default();
    classify(status, &err, after, network, what)
}

/// When a throttled app may call again, from the business-use-case usage header
/// (`X-Business-Use-Case-Usage: {"<id>": [{"estimated_time_to_regain_access": MINUTES, ...}]}`,
/// https://developers.facebook.com/docs/graph-api/overview/rate-limiting/): the longest
/// wait it names, if any is above zero.
fn regain_access(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let raw = headers.get("x-business-use-case-usage")?.to_str().ok()?;
    let usage: std::collections::HashMap<String, Vec<serde_json::Value>> =
        serde_json::from_str(raw).ok()?;
    let minutes = usage
        .values()
        .flatten()
        .filter_map(|u| u["estimated_time_to_regain_access"].as_u64())
        .max()
        .filter(|m| *m > 0)?;
    Some(Duration::from_secs(minutes.min(24 * 60) * 60))
}

pub(crate) fn classify(
    status: StatusCode,
    err: &GraphError,
    after: Option<Duration>,
    network: &str,
    what: &str,
) -> PublishError {
    let code = err.code.map(|c| format!(", code {c}")).unwrap_or_default();
    let said = |r: Reason| r.with_detail(&err.message);
    let reconnect = matches!(err.code, Some(190 | 102 | 10 | 200..=299))
        || (err.kind == "OAuthException" && err.code.is_none())
        || status == StatusCode::UNAUTHORIZED;
    if reconnect {
        return PublishError::Reconnect(said(Reason::new(format!(
            "{network} no longer accepts picket's access for this account (HTTP {}{code}): reconnect it",
            status.as_u16()
        ))));
    }
    let throttled = matches!(err.code, Some(4 | 17 | 32 | 613 | 80001..=80014))
        || status == StatusCode::TOO_MANY_REQUESTS;
    if throttled {
        return PublishError::Retry {
            reason: said(Reason::new(format!(
                "rate limited by {network} (HTTP {}{code})",
                status.as_u16()
            ))),
            // Without a date from the network, an hour: its limits are counted over a
            // rolling day, so a few minutes would only spend more calls.
            after: Some(after.unwrap_or(Duration::from_secs(3600))),
            maybe_sent: false,
        };
    }
    if status.is_server_error() || matches!(err.code, Some(1 | 2)) {
        return PublishError::Retry {
            reason: said(Reason::new(format!(
                "{network} failed to take {what} (HTTP {}{code})",
                status.as_u16()
            ))),
            after,
            maybe_sent: false,
        };
    }
    PublishError::Rejected(said(Reason::new(format!(
        "{network} refused {what} (HTTP {}{code})",
        status.as_u16()
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(kind: &str, code: Option<i64>) -> GraphError {
        GraphError {
            message: "Error validating access token: Session has expired".into(),
            kind: kind.into(),
            code,
        }
    }

    #[test]
    fn the_usage_header_says_when_a_throttled_page_may_post_again() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "x-business-use-case-usage",
            r#"{"101112":[{"type":"pages","call_count":100,"total_cputime":20,"total_time":30,"estimated_time_to_regain_access":7}]}"#
                .parse()
                .unwrap(),
        );
        assert_eq!(regain_access(&h), Some(Duration::from_secs(7 * 60)));
        h.insert("x-business-use-case-usage", "{}".parse().unwrap());
        assert_eq!(regain_access(&h), None);
    }

    #[test]
    fn an_expired_token_means_reconnect_a_throttle_means_later_and_a_bad_parameter_means_rejected()
    {
        let bad = StatusCode::BAD_REQUEST;
        assert!(matches!(
            classify(
                bad,
                &err("OAuthException", Some(190)),
                None,
                "Threads",
                "the post"
            ),
            PublishError::Reconnect(_)
        ));
        let PublishError::Retry { after, .. } = classify(
            StatusCode::TOO_MANY_REQUESTS,
            &err("OAuthException", Some(4)),
            Some(Duration::from_secs(30)),
            "Threads",
            "the post",
        ) else {
            panic!("a throttle is retried");
        };
        assert_eq!(after, Some(Duration::from_secs(30)));
        let rejected = classify(
            bad,
            &err("THApiException", Some(100)),
            None,
            "Threads",
            "the post",
        );
        assert!(matches!(rejected, PublishError::Rejected(_)));
        assert_eq!(
            rejected.reason().summary(),
            "Threads refused the post (HTTP 400, code 100)"
        );
        assert!(rejected.reason().detail().unwrap().contains("Session"));
        assert!(matches!(
            classify(
                StatusCode::INTERNAL_SERVER_ERROR,
                &GraphError::default(),
                None,
                "Threads",
                "the post"
            ),
            PublishError::Retry { .. }
        ));
    }
}
