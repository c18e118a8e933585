//! Sending one webhook event to an organiser's receiver, and the signature on it.
//!
//! Each request is `POST` with the event's JSON body and these headers:
//!
//! - `Picket-Event-Id`: the event's id, the same on every attempt: the receiver's
//!   idempotency key (delivery is at least once on the wire, so a receiver dedupes by it);
//! - `Picket-Event`: the kind, e.g. `post.published`;
//! - `Picket-Timestamp`: Unix seconds of this attempt;
//! - `Picket-Signature: t=<timestamp>,v1=<hex>`: HMAC-SHA256 with the hook's secret over
//!   `"<timestamp>.<body>"`. A receiver recomputes it ([`verify`] is the reference) and
//!   refuses a timestamp far from its own clock, so a captured request cannot be replayed
//!   later.
//!
//! Hooks are typed by the operator in the settings, so they are reached through the
//! trusted client (`Egress::trusted`), which still follows no redirect, caps the answer
//! and has a deadline. The receiver's answer body is never read: only its status counts,
//! and nothing a receiver says reaches a log or a page.

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::guarded::{Http, HttpError};

/// How long one attempt may take, connecting included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// 2xx: the receiver has it.
    Delivered,
    /// 5xx, 408, 429, a timeout or no connection: worth trying again.
    Retry(String),
    /// Any other answer (a 4xx: the receiver refuses it for good, a redirect).
    Rejected(String),
}

/// The `Picket-Signature` value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// What a receiver does with a request: true when `header` (`Picket-Signature`) signs
/// `body` with `secret` and its timestamp is within `tolerance` seconds of `now`.
/// Compared in constant time.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64, tolerance: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => v1 = hex::decode(v).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now - t).abs() > tolerance {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&v1).is_ok()
}

/// Send one attempt of event `event_id` (`kind`) to `url`.
pub async fn send(
    http: &Http,
    url: &str,
    secret: &[u8],
    event_id: &str,
    kind: &str,
    body: &str,
    timestamp: i64,
) -> Attempt {
    let answer = http
        .post(url)
        .header("content-type", "application/json")
        .header("picket-event-id", event_id)
        .header("picket-event", kind)
        .header("picket-timestamp", &timestamp.to_string())
        .header(
            "picket-signature",
            &signature(secret, timestamp, body.as_bytes()),
        )
        .timeout(ATTEMPT_TIMEOUT)
        .body(body.to_string())
        .send()
        .await;
    match answer {
        Ok(answer) => judge(answer.status().as_u16()),
        Err(HttpError::Refused(r)) => Attempt::Rejected(r.to_string()),
        Err(e) => Attempt::Retry(e.to_string()),
    }
}

/// What a status means for the event.
pub fn judge(status: u16) -> Attempt {
    match status {
        200..=299 => Attempt::Delivered,
        408 | 429 | 500..=599 => Attempt::Retry(format!("the receiver answered {status}")),
        _ => Attempt::Rejected(format!("the receiver answered {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_is_the_hmac_of_the_timestamp_a_dot_and_the_body() {
        // Against a value computed independently of this code:
        // printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac 'whsec-test'
        let header = signature(b"whsec-test", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            header,
            "t=1700000000,v1=fed7a1a6c799a6367d73724d76bc70c16678908a32a879cd1ded6565ac05cece"
        );
    }

    #[test]
    fn a_receiver_verifies_a_signature_by_recomputing_it() {
        let body = br#"{"id":"evt_1","type":"signature.counted"}"#;
        let header = signature(b"s3cret-s3cret-s3cret", 1_700_000_000, body);
        assert!(verify(
            b"s3cret-s3cret-s3cret",
            &header,
            body,
            1_700_000_030,
            300
        ));
        // Another secret, another body, or a stale timestamp: refused.
        assert!(!verify(
            b"another-secret-here!",
            &header,
            body,
            1_700_000_030,
            300
        ));
        assert!(!verify(
            b"s3cret-s3cret-s3cret",
            &header,
            b"{}",
            1_700_000_030,
            300
        ));
        assert!(!verify(
            b"s3cret-s3cret-s3cret",
            &header,
            body,
            1_700_001_000,
            300
        ));
        assert!(!verify(b"s3cret-s3cret-s3cret", "t=1,v1=zz", body, 1, 300));
    }

    #[test]
    fn only_2xx_delivers_and_only_server_trouble_is_retried() {
        assert_eq!(judge(204), Attempt::Delivered);
        assert!(matches!(judge(500), Attempt::Retry(_)));
        assert!(matches!(judge(503), Attempt::Retry(_)));
        assert!(matches!(judge(408), Attempt::Retry(_)));
        assert!(matches!(judge(429), Attempt::Retry(_)));
        assert!(matches!(judge(404), Attempt::Rejected(_)));
        assert!(matches!(judge(410), Attempt::Rejected(_)));
        assert!(matches!(judge(301), Attempt::Rejected(_)));
    }
}
