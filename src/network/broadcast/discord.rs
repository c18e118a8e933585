//! Discord: an announcement is a webhook execution (Discord API, "Execute Webhook",
//! https://discord.com/developers/docs/resources/webhook#execute-webhook: `POST
//! /webhooks/{id}/{token}?wait=true` with `content`; `wait=true` makes the answer the
//! created message, so its id is recorded). Mentions are switched off
//! (`allowed_mentions.parse = []`): an announcement's text never pings anyone.
//!
//! Rate limits (https://discord.com/developers/docs/topics/rate-limits): each answer
//! carries `X-RateLimit-Remaining` and `X-RateLimit-Reset-After` (seconds, fractional);
//! when the remaining budget is 0 the channel is left alone until the reset. A 429 says
//! `retry_after` (seconds) in its JSON body and the `Retry-After` header; it is retried
//! after that. Webhooks have no idempotency key and no way to list past messages, so an
//! answer lost after the request may have arrived is reported unknown and not sent again.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::{ATTEMPT_TIMEOUT, Attempt};
use crate::domain::Secret;
use crate::network::guarded::Http;

/// Discord's limit on a message's `content`, in characters.
pub const MAX_TEXT: usize = 2000;

#[derive(Deserialize, Default)]
struct Limited {
    #[serde(default)]
    retry_after: Option<f64>,
}

#[derive(Deserialize)]
struct Message {
    id: String,
}

/// Execute the webhook at `webhook` with `text`.
pub async fn send(http: &Http, webhook: &Secret, text: &str) -> Attempt {
    if text.chars().count() > MAX_TEXT {
        return Attempt::Rejected(format!(
            "the text is longer than Discord's {MAX_TEXT} characters"
        ));
    }
    let base = webhook.expose();
    let url = if base.contains('?') {
        format!("{base}&wait=true")
    } else {
        format!("{base}?wait=true")
    };
    let answer = http
        .post(&url)
        .json(&serde_json::json!({
            "content": text,
            "allowed_mentions": { "parse": [] },
        }))
        .timeout(ATTEMPT_TIMEOUT)
        .send()
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return super::without_answer(e, "Discord"),
    };
    let status = answer.status().as_u16();
    let pause = exhausted(answer.headers());
    let header_retry = header_secs(answer.headers(), "retry-after");
    match status {
        200..=299 => Attempt::Sent {
            remote_id: answer.json::<Message>().await.ok().map(|m| m.id),
            pause,
        },
        429 => {
            let body: Limited = answer.json().await.unwrap_or_default();
            Attempt::Retry {
                reason: "Discord's rate limit (429)".into(),
                after: body.retry_after.and_then(super::seconds).or(header_retry),
            }
        }
        _ => judge(status),
    }
}

/// How long to leave the webhook alone: `X-RateLimit-Reset-After` when
/// `X-RateLimit-Remaining` is 0.
fn exhausted(headers: &HeaderMap) -> Option<Duration> {
    let remaining = headers
        .get("x-ratelimit-remaining")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())?;
    if remaining > 0 {
        return None;
    }
    header_secs(headers, "x-ratelimit-reset-after")
}

fn header_secs(headers: &HeaderMap, name: &str) -> Option<Duration> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(super::seconds)
}

fn judge(status: u16) -> Attempt {
    match status {
        502..=504 => Attempt::Retry {
            reason: format!("Discord answered {status}"),
            after: None,
        },
        500..=599 => Attempt::Unknown(format!(
            "Discord answered {status}; not sent again, since a webhook cannot be asked \
             whether it arrived"
        )),
        401 | 403 | 404 => Attempt::Rejected(format!(
            "Discord refused the webhook ({status}): it was deleted or its address is wrong; \
             set the channel's webhook again"
        )),
        _ => Attempt::Rejected(format!("Discord refused the message ({status})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_pauses_the_webhook_until_its_reset() {
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-remaining", "0".parse().unwrap());
        h.insert("x-ratelimit-reset-after", "1.5".parse().unwrap());
        assert_eq!(exhausted(&h), Some(Duration::from_millis(1500)));
        h.insert("x-ratelimit-remaining", "3".parse().unwrap());
        assert_eq!(exhausted(&h), None);
        assert!(matches!(judge(404), Attempt::Rejected(_)));
        assert!(matches!(judge(500), Attempt::Unknown(_)));
        assert!(matches!(judge(503), Attempt::Retry { .. }));
    }
}
