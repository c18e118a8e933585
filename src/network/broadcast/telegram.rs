//! Telegram: an announcement is a bot's `sendMessage` to a channel the bot may post in
//! (Telegram Bot API, https://core.telegram.org/bots/api#sendmessage: `POST
//! {api}/bot{token}/sendMessage` with `chat_id` and `text`; the answer is
//! `{"ok": true, "result": Message}` or `{"ok": false, "error_code", "description",
//! "parameters": {"retry_after"}}`, where `retry_after` is the seconds to wait after a
//! flood limit, https://core.telegram.org/bots/api#responseparameters).
//!
//! The Bot API has no idempotency key and a bot cannot read a channel's history, so an
//! answer lost after the request may have arrived is reported unknown rather than sent
//! again. The address carries the bot token: it never reaches a reason or a log (the
//! guarded client leaves URLs out of its errors).

use serde::Deserialize;

use super::{ATTEMPT_TIMEOUT, Attempt};
use crate::domain::Secret;
use crate::network::guarded::Http;

/// Telegram's limit on a message's text, in characters (after entities are parsed;
/// plain text here).
pub const MAX_TEXT: usize = 4096;

#[derive(Deserialize, Default)]
struct Answer {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    error_code: Option<u16>,
    #[serde(default)]
    result: Option<Message>,
    #[serde(default)]
    parameters: Option<Parameters>,
}

#[derive(Deserialize, Default)]
struct Message {
    message_id: i64,
}

#[derive(Deserialize, Default)]
struct Parameters {
    #[serde(default)]
    retry_after: Option<f64>,
}

/// Send `text` to `chat` as the bot with `token`.
pub async fn send(http: &Http, api: &str, chat: &str, token: &Secret, text: &str) -> Attempt {
    if text.chars().count() > MAX_TEXT {
        return Attempt::Rejected(format!(
            "the text is longer than Telegram's {MAX_TEXT} characters"
        ));
    }
    let url = format!(
        "{}/bot{}/sendMessage",
        api.trim_end_matches('/'),
        token.expose()
    );
    let answer = http
        .post(&url)
        .json(&serde_json::json!({ "chat_id": chat, "text": text }))
        .timeout(ATTEMPT_TIMEOUT)
        .send()
        .await;
    let answer = match answer {
        Ok(a) => a,
        Err(e) => return super::without_answer(e, "Telegram"),
    };
    let status = answer.status().as_u16();
    let body = answer.json::<Answer>().await;
    judge(status, body.ok())
}

fn judge(status: u16, body: Option<Answer>) -> Attempt {
    let body = body.unwrap_or_default();
    if (200..300).contains(&status) && body.ok {
        return Attempt::Sent {
            remote_id: body.result.map(|m| m.message_id.to_string()),
            pause: None,
        };
    }
    let code = body.error_code.unwrap_or(status);
    match code {
        429 => Attempt::Retry {
            reason: "Telegram's flood limit (429)".into(),
            after: body
                .parameters
                .and_then(|p| p.retry_after)
                .and_then(super::seconds),
        },
        // A gateway's answer: the request did not reach the Bot API.
        502..=504 => Attempt::Retry {
            reason: format!("Telegram answered {code}"),
            after: None,
        },
        200..=299 | 500..=599 => Attempt::Unknown(format!(
            "Telegram answered {code} without saying the message was sent; not sent again, \
             since a bot cannot read the channel back"
        )),
        401 | 404 => Attempt::Rejected(format!(
            "Telegram refused the bot token ({code}): set the channel's token again"
        )),
        403 => Attempt::Rejected(format!(
            "Telegram forbids the bot to post there ({code}): make it an administrator of \
             the channel"
        )),
        _ => Attempt::Rejected(format!("Telegram refused the message ({code})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(json: &str) -> Option<Answer> {
        serde_json::from_str(json).ok()
    }

    #[test]
    fn a_flood_limit_is_retried_after_retry_after_and_a_missing_bot_is_final() {
        assert_eq!(
            judge(
                429,
                answer(
                    r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#
                )
            ),
            Attempt::Retry {
                reason: "Telegram's flood limit (429)".into(),
                after: Some(std::time::Duration::from_secs(7)),
            }
        );
        assert_eq!(
            judge(
                200,
                answer(r#"{"ok":true,"result":{"message_id":42,"date":1,"chat":{"id":-1}}}"#)
            ),
            Attempt::Sent {
                remote_id: Some("42".into()),
                pause: None
            }
        );
        assert!(matches!(
            judge(
                403,
                answer(r#"{"ok":false,"error_code":403,"description":"Forbidden"}"#)
            ),
            Attempt::Rejected(_)
        ));
        assert!(matches!(judge(500, None), Attempt::Unknown(_)));
        assert!(matches!(judge(502, None), Attempt::Retry { .. }));
    }
}
