//! What a Mastodon-API server's answer means for the dispatcher: a non-2xx answer mapped
//! to a [`PublishError`] with a [`Reason`] in picket's words (the server's text is only
//! the detail), and when to try again after a 429 (`X-RateLimit-Reset`, `Retry-After`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::super::guarded::Response;
use super::super::{PublishError, Reason};

/// What a request to the server was for: the words of a refusal depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Call {
    /// Publishing a post.
    Post,
    /// Deleting a published post.
    Delete,
    /// Reading the account, a post or a list of posts.
    Read,
    /// Uploading (or waiting for) the post's image.
    Media,
}

impl Call {
    fn what(self) -> &'static str {
        match self {
            Call::Post => "the post",
            Call::Delete => "the deletion",
            Call::Read => "the request",
            Call::Media => "the post's image",
        }
    }
}

/// What to do about a non-2xx answer; a rate limit's wait is counted from `now`.
pub(super) async fn error_of(resp: Response, call: Call, now: DateTime<Utc>) -> PublishError {
    let status = resp.status();
    let headers = resp.headers().clone();
    answer_error(status, &headers, &read_error(resp).await, call, now)
}

/// The `error` (or `error_description`) of an error answer, shortened; never a token.
pub(super) async fn read_error(resp: Response) -> String {
    let text = resp.text().await.unwrap_or_default();
    error_message(&text)
}

fn error_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct ErrorBody {
        error: Option<serde_json::Value>,
        error_description: Option<String>,
        detail: Option<serde_json::Value>,
    }
    let msg = match serde_json::from_str::<ErrorBody>(body) {
        Ok(b) => b
            .error_description
            .or_else(|| b.error.map(value_text))
            .or_else(|| b.detail.map(value_text))
            .unwrap_or_default(),
        // An HTML error page from a proxy says nothing useful.
        Err(_) if body.trim_start().starts_with('<') => String::new(),
        Err(_) => body.trim().to_string(),
    };
    msg.chars().take(crate::network::MAX_DETAIL).collect()
}

fn value_text(v: serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Whether a refusal's message says the text is over the server's length limit:
/// Mastodon "Text character limit of 500 exceeded", GoToSocial "status too long",
/// Pleroma/Akkoma "The status is over the character limit". Only picket's own words
/// come of it.
fn says_too_long(message: &str) -> bool {
    let m = message.to_lowercase();
    m.contains("too long") || (m.contains("character") && m.contains("limit"))
}

/// Map a non-2xx answer to what the dispatcher should do. The reason is picket's words
/// with the status code; the server's `message` is only the detail (see [`Reason`]).
pub(crate) fn answer_error(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    call: Call,
    now: DateTime<Utc>,
) -> PublishError {
    let code = status.as_u16();
    let what = call.what();
    let reason = |summary: String| Reason::new(summary).with_detail(message);
    match status {
        // 401: token revoked or deleted. Only the participant can fix it.
        StatusCode::UNAUTHORIZED => PublishError::Reconnect(reason(format!(
            "the server no longer accepts picket's access to the account (HTTP {code})"
        ))),
        // 403: outside the granted scopes, or the account is suspended/disabled.
        StatusCode::FORBIDDEN => PublishError::Reconnect(reason(format!(
            "the server refused picket's access to the account: suspended, or the permission withdrawn (HTTP {code})"
        ))),
        StatusCode::TOO_MANY_REQUESTS => PublishError::Retry {
            reason: reason(format!("rate limited by the server (HTTP {code})")),
            after: rate_limit_after(headers, now),
            maybe_sent: false,
        },
        // 408: the server gave up reading the request, so it did not act on it.
        StatusCode::REQUEST_TIMEOUT => PublishError::Retry {
            reason: reason(format!("the server timed out reading {what} (HTTP {code})")),
            after: None,
            maybe_sent: false,
        },
        // A 5xx may come from a proxy that timed out after the server committed the post.
        s if s.is_server_error() => PublishError::Retry {
            reason: reason(format!("the server had a temporary failure (HTTP {code})")),
            after: crate::network::retry_after(headers, now),
            maybe_sent: true,
        },
        // 422 (Mastodon, Pleroma) and 400 (GoToSocial) say the content is refused.
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST
            if call == Call::Post && says_too_long(message) =>
        {
            PublishError::Rejected(reason(format!("too long for this server (HTTP {code})")))
        }
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
            PublishError::Rejected(reason(format!("the server refused {what} (HTTP {code})")))
        }
        // 404 says this is no Mastodon API (or the post is gone).
        StatusCode::NOT_FOUND => PublishError::Rejected(reason(format!(
            "the server has no such Mastodon API address (HTTP {code})"
        ))),
        // Redirects are never followed: an address that moved must be connected again.
        s if s.is_redirection() => PublishError::Rejected(reason(format!(
            "the server sent picket elsewhere, which picket does not follow (HTTP {code})"
        ))),
        // Other 4xx will not change by sending again.
        _ => PublishError::Rejected(reason(format!("the server refused {what} (HTTP {code})"))),
    }
}

/// When to try again after a 429: `X-RateLimit-Reset` (Mastodon: an ISO-8601 instant;
/// some servers send epoch seconds) or `Retry-After`, whichever is later.
pub fn rate_limit_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let reset = headers
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_reset(v.trim(), now));
    let retry = crate::network::retry_after(headers, now);
    match (reset, retry) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn parse_reset(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    let at = if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        t.with_timezone(&Utc)
    } else if let Ok(n) = v.parse::<f64>() {
        if !n.is_finite() || n < 0.0 {
            return None;
        }
        // Large numbers are epoch seconds; small ones a delay in seconds.
        if n > 1_000_000_000.0 {
            DateTime::from_timestamp(n as i64, 0)?
        } else {
            return Some(Duration::from_secs_f64(n.min(86_400.0)));
        }
    } else {
        return None;
    };
    Some((at - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn an_iso_8601_rate_limit_reset_becomes_the_wait_until_that_instant() {
        // Arrange
        let now = at("2027-07-04T12:00:00Z");
        let h = headers(&[("x-ratelimit-reset", "2027-07-04T12:04:30.123Z")]);

        // Act
        let after = rate_limit_after(&h, now);

        // Assert
        assert_eq!(after, Some(Duration::from_millis(270_123)));
    }

    #[test]
    fn a_reset_with_an_offset_or_in_the_past_or_as_epoch_seconds_is_understood() {
        let now = at("2027-07-04T12:00:00Z");
        let offset = headers(&[("x-ratelimit-reset", "2027-07-04T14:01:00+02:00")]);
        let past = headers(&[("x-ratelimit-reset", "2027-07-04T11:00:00Z")]);
        let epoch = headers(&[("x-ratelimit-reset", &(now.timestamp() + 90).to_string())]);
        let delay = headers(&[("x-ratelimit-reset", "12")]);

        assert_eq!(
            rate_limit_after(&offset, now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(rate_limit_after(&past, now), Some(Duration::ZERO));
        assert_eq!(rate_limit_after(&epoch, now), Some(Duration::from_secs(90)));
        assert_eq!(rate_limit_after(&delay, now), Some(Duration::from_secs(12)));
    }

    #[test]
    fn garbage_rate_limit_headers_give_no_wait_and_retry_after_is_the_fallback() {
        let now = at("2027-07-04T12:00:00Z");
        for junk in ["soon", "", "-5", "NaN", "2027-13-45T99:00:00Z", "inf"] {
            let h = headers(&[("x-ratelimit-reset", junk)]);
            assert_eq!(rate_limit_after(&h, now), None, "{junk:?}");
        }
        let both = headers(&[("x-ratelimit-reset", "tomorrow"), ("retry-after", "7")]);
        assert_eq!(rate_limit_after(&both, now), Some(Duration::from_secs(7)));
    }

    #[test]
    fn the_later_of_reset_and_retry_after_wins() {
        let now = at("2027-07-04T12:00:00Z");
        let h = headers(&[
            ("x-ratelimit-reset", "2027-07-04T12:00:10Z"),
            ("retry-after", "30"),
        ]);
        assert_eq!(rate_limit_after(&h, now), Some(Duration::from_secs(30)));
    }

    #[test]
    fn answers_map_to_what_the_dispatcher_should_do() {
        let now = at("2027-07-04T12:00:00Z");
        let none = HeaderMap::new();
        let map = |code: u16| {
            answer_error(
                StatusCode::from_u16(code).unwrap(),
                &none,
                "x",
                Call::Post,
                now,
            )
        };

        assert!(matches!(map(401), PublishError::Reconnect(_)));
        assert!(matches!(map(403), PublishError::Reconnect(_)));
        assert!(matches!(map(422), PublishError::Rejected(_)));
        assert!(
            matches!(map(400), PublishError::Rejected(_)),
            "GoToSocial too long"
        );
        assert!(matches!(map(404), PublishError::Rejected(_)));
        assert!(matches!(
            map(429),
            PublishError::Retry {
                maybe_sent: false,
                ..
            }
        ));
        for code in [500, 502, 503, 504] {
            assert!(
                matches!(
                    map(code),
                    PublishError::Retry {
                        maybe_sent: true,
                        ..
                    }
                ),
                "{code}"
            );
        }
    }

    #[test]
    fn a_429_carries_the_reset_instant_as_its_wait() {
        let now = at("2027-07-04T12:00:00Z");
        let h = headers(&[
            ("x-ratelimit-limit", "300"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "2027-07-04T12:05:00.000Z"),
        ]);

        let e = answer_error(
            StatusCode::TOO_MANY_REQUESTS,
            &h,
            "Too many requests",
            Call::Post,
            now,
        );

        match e {
            PublishError::Retry { after, reason, .. } => {
                assert_eq!(after, Some(Duration::from_secs(300)));
                assert_eq!(reason.summary(), "rate limited by the server (HTTP 429)");
                assert_eq!(reason.detail(), Some("Too many requests"));
            }
            other => panic!("expected a retry, got {other:?}"),
        }
    }

    /// What a server chooses to say: it must never be in the part pages show.
    const BODY: &str = "SECRET-BODY-5c1e: <a href=https://evil.example>click</a>";

    #[test]
    fn a_servers_error_text_is_only_the_detail_and_the_reason_names_the_kind_and_status() {
        // Arrange
        let now = at("2027-07-04T12:00:00Z");
        let none = HeaderMap::new();
        let cases = [
            (
                401,
                Call::Read,
                "no longer accepts picket's access",
                "(HTTP 401)",
            ),
            (403, Call::Post, "refused picket's access", "(HTTP 403)"),
            (422, Call::Post, "the server refused the post", "(HTTP 422)"),
            (400, Call::Post, "the server refused the post", "(HTTP 400)"),
            (
                404,
                Call::Post,
                "no such Mastodon API address",
                "(HTTP 404)",
            ),
            (
                410,
                Call::Delete,
                "the server refused the deletion",
                "(HTTP 410)",
            ),
            (408, Call::Post, "timed out reading the post", "(HTTP 408)"),
            (429, Call::Post, "rate limited", "(HTTP 429)"),
            (503, Call::Post, "temporary failure", "(HTTP 503)"),
            (302, Call::Post, "does not follow", "(HTTP 302)"),
        ];

        for (code, call, kind, status) in cases {
            // Act
            let e = answer_error(StatusCode::from_u16(code).unwrap(), &none, BODY, call, now);

            // Assert
            let reason = e.reason();
            assert!(
                reason.summary().contains(kind) && reason.summary().ends_with(status),
                "{code}: {}",
                reason.summary()
            );
            assert!(!reason.summary().contains("SECRET"), "{code}: {reason}");
            assert!(!e.to_string().contains("SECRET"), "{code}: {e}");
            assert_eq!(reason.detail(), Some(BODY), "{code}: kept for the log");
            assert!(
                e.for_operator().contains(BODY),
                "{code}: the operator sees it"
            );
        }
    }

    #[test]
    fn a_refusal_that_says_too_long_is_reported_as_too_long_in_picket_words() {
        let now = at("2027-07-04T12:00:00Z");
        let none = HeaderMap::new();
        for (code, message) in [
            (
                422,
                "Validation failed: Text character limit of 500 exceeded",
            ),
            (400, "Bad Request: status too long, 612 characters provided"),
            (422, "The status is over the character limit"),
        ] {
            let e = answer_error(
                StatusCode::from_u16(code).unwrap(),
                &none,
                message,
                Call::Post,
                now,
            );
            assert!(matches!(e, PublishError::Rejected(_)), "{e:?}");
            assert_eq!(
                e.reason().summary(),
                format!("too long for this server (HTTP {code})")
            );
        }
        // Any other refusal is not guessed at.
        let other = answer_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &none,
            "Validation failed: Text can't be blank",
            Call::Post,
            now,
        );
        assert_eq!(
            other.reason().summary(),
            "the server refused the post (HTTP 422)"
        );
    }

    #[test]
    fn error_messages_come_from_the_error_field_and_html_pages_are_dropped() {
        assert_eq!(
            error_message(r#"{"error":"Validation failed: Text character limit of 500 exceeded"}"#),
            "Validation failed: Text character limit of 500 exceeded"
        );
        assert_eq!(
            error_message(r#"{"error":"invalid_grant","error_description":"The code expired"}"#),
            "The code expired"
        );
        assert_eq!(error_message(r#"{"detail":{"x":1}}"#), r#"{"x":1}"#);
        assert_eq!(
            error_message("<html><body>502 Bad Gateway</body></html>"),
            ""
        );
        assert_eq!(error_message(&"é".repeat(1000)).chars().count(), 300);
    }
}
