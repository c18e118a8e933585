//! Matrix: an announcement is `PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}`
//! with the channel's access token (Matrix Client-Server API v1.x, "Sending events to a
//! room" and "Transaction identifiers": the homeserver treats a repeat of the same
//! transaction id from the same access token as the same request and answers the same
//! event id). The txn id is stored with the announcement before the first attempt, so a
//! retry after any failure, a crash included, cannot make a second event.
//!
//! A room alias (`#room:server`) is resolved with `GET /_matrix/client/v3/directory/room/{alias}`
//! on each attempt (an alias can be moved to another room; the id is not stored). Rate
//! limits answer 429 `M_LIMIT_EXCEEDED` with `retry_after_ms` (and, since v1.10, a
//! `Retry-After` header); both are honoured.

use std::time::Duration;

use reqwest::Method;
use serde::Deserialize;

use super::{ATTEMPT_TIMEOUT, Attempt};
use crate::domain::Secret;
use crate::network::guarded::{Http, HttpError};

#[derive(Deserialize, Default)]
struct MatrixError {
    #[serde(default)]
    errcode: String,
    #[serde(default)]
    retry_after_ms: Option<u64>,
}

#[derive(Deserialize)]
struct Sent {
    event_id: String,
}

#[derive(Deserialize)]
struct Directory {
    room_id: String,
}

fn path_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Send `text` into `room` as transaction `txn_id`.
pub async fn send(
    http: &Http,
    homeserver: &str,
    room: &str,
    token: &Secret,
    txn_id: &str,
    text: &str,
) -> Attempt {
    let base = homeserver.trim_end_matches('/');
    let room_id = if room.starts_with('#') {
        match resolve(http, base, room, token).await {
            Ok(id) => id,
            Err(attempt) => return attempt,
        }
    } else {
        room.to_string()
    };
    let url = format!(
        "{base}/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
        path_segment(&room_id),
        path_segment(txn_id)
    );
    let answer = http
        .request(Method::PUT, &url)
        .bearer_auth(token.expose())
        .json(&serde_json::json!({ "msgtype": "m.text", "body": text }))
        .timeout(ATTEMPT_TIMEOUT)
        .send()
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return retry_or_refuse(e),
    };
    let status = answer.status().as_u16();
    let retry_after = retry_after_header(answer.headers());
    if (200..300).contains(&status) {
        return match answer.json::<Sent>().await {
            Ok(sent) => Attempt::Sent {
                remote_id: Some(sent.event_id),
                pause: None,
            },
            // The same txn id answers the same event next time: ask again.
            Err(e) => Attempt::Retry {
                reason: format!("the homeserver's answer was unreadable ({e})"),
                after: None,
            },
        };
    }
    let error: MatrixError = answer.json().await.unwrap_or_default();
    judge(status, &error, retry_after, "sending to the room")
}

async fn resolve(http: &Http, base: &str, alias: &str, token: &Secret) -> Result<String, Attempt> {
    let url = format!(
        "{base}/_matrix/client/v3/directory/room/{}",
        path_segment(alias)
    );
    let answer = http
        .get(&url)
        .bearer_auth(token.expose())
        .timeout(ATTEMPT_TIMEOUT)
        .send()
        .await
        .map_err(retry_or_refuse)?;
    let status = answer.status().as_u16();
    let retry_after = retry_after_header(answer.headers());
    if (200..300).contains(&status) {
        return answer
            .json::<Directory>()
            .await
            .map(|d| d.room_id)
            .map_err(|e| Attempt::Retry {
                reason: format!("the homeserver's answer to the room alias was unreadable ({e})"),
                after: None,
            });
    }
    let error: MatrixError = answer.json().await.unwrap_or_default();
    Err(judge(
        status,
        &error,
        retry_after,
        "resolving the room alias",
    ))
}

/// Any failure is safe to retry (same txn id, same event), except a refused address.
fn retry_or_refuse(e: HttpError) -> Attempt {
    match e {
        HttpError::Refused(r) => Attempt::Rejected(r.to_string()),
        e => Attempt::Retry {
            reason: format!("the homeserver: {e}"),
            after: None,
        },
    }
}

fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(super::seconds)
}

/// What a homeserver's error answer means.
fn judge(status: u16, error: &MatrixError, header: Option<Duration>, doing: &str) -> Attempt {
    let code = if error.errcode.is_empty() {
        String::new()
    } else {
        format!(" {}", error.errcode)
    };
    match status {
        429 => Attempt::Retry {
            reason: format!("the homeserver is rate limiting ({status}{code})"),
            after: error
                .retry_after_ms
                .map(Duration::from_millis)
                .or(header)
                .map(|d| d.min(Duration::from_secs(86_400))),
        },
        500..=599 | 408 => Attempt::Retry {
            reason: format!("the homeserver answered {status}{code} {doing}"),
            after: None,
        },
        401 => Attempt::Rejected(format!(
            "the homeserver refused the access token ({status}{code}): set a new one"
        )),
        403 => Attempt::Rejected(format!(
            "the homeserver forbids {doing} ({status}{code}): invite the channel's account \
             into the room and let it post"
        )),
        404 => Attempt::Rejected(format!(
            "the homeserver knows no such room ({status}{code}) {doing}"
        )),
        _ => Attempt::Rejected(format!("the homeserver answered {status}{code} {doing}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limits_are_retried_after_what_the_homeserver_asked_and_refusals_are_final() {
        let limited = MatrixError {
            errcode: "M_LIMIT_EXCEEDED".into(),
            retry_after_ms: Some(2500),
        };
        assert_eq!(
            judge(429, &limited, Some(Duration::from_secs(9)), "x"),
            Attempt::Retry {
                reason: "the homeserver is rate limiting (429 M_LIMIT_EXCEEDED)".into(),
                after: Some(Duration::from_millis(2500)),
            }
        );
        let header_only = MatrixError::default();
        assert!(matches!(
            judge(429, &header_only, Some(Duration::from_secs(9)), "x"),
            Attempt::Retry { after: Some(d), .. } if d == Duration::from_secs(9)
        ));
        assert!(matches!(
            judge(502, &header_only, None, "x"),
            Attempt::Retry { .. }
        ));
        assert!(matches!(
            judge(401, &header_only, None, "x"),
            Attempt::Rejected(_)
        ));
        assert!(matches!(
            judge(403, &header_only, None, "x"),
            Attempt::Rejected(_)
        ));
    }

    #[test]
    fn room_ids_and_txn_ids_are_escaped_as_path_segments() {
        assert_eq!(path_segment("!abc:example.org"), "%21abc%3Aexample.org");
        assert_eq!(path_segment("#a b:x"), "%23a%20b%3Ax");
    }
}
