//! The relay protocol (NIP-01) over the guarded WebSocket: checking relay URLs, sending
//! an event and reading its `OK`, querying with `REQ` until `EOSE`, and deciding what a
//! post's fate is from every relay's answer (which prefixes mean retry, which refusal).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use nostr::prelude::Event;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::network::guarded::{Http, WebSocket};
use crate::network::{PublishError, Reason};

use super::InvalidInput;

/// A relay said `rate-limited:` without saying for how long.
const RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(30);

/// The relays of an account: `AccountRef::server` lists them separated by spaces or commas.
pub fn relays_of(server: &str) -> Vec<String> {
    server
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Check a relay URL: `ws://` or `wss://` with a host.
pub fn check_relay_url(s: &str) -> Result<String, InvalidInput> {
    let u = url::Url::parse(s).map_err(|e| InvalidInput(format!("relay `{s}`: {e}")))?;
    if !matches!(u.scheme(), "ws" | "wss") || u.host_str().is_none() {
        return Err(InvalidInput(format!(
            "relay `{s}`: expected ws://HOST or wss://HOST"
        )));
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// One relay's answer to an `EVENT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayAnswer {
    /// `OK true`, or `OK false "duplicate: …"`: the relay has the event.
    Accepted,
    /// `OK false` with the relay's message (`prefix: reason`).
    Refused(String),
    /// No connection: the event certainly did not reach this relay.
    Unreachable(String),
    /// Sent, but no `OK` in time.
    NoAnswer(String),
}

/// Read an `OK` message's status and message (NIP-01).
pub fn ok_answer(accepted: bool, message: &str) -> RelayAnswer {
    if accepted || message.starts_with("duplicate:") {
        RelayAnswer::Accepted
    } else {
        RelayAnswer::Refused(message.to_string())
    }
}
/// The machine-readable prefixes a relay puts before its reason in `OK` and `CLOSED`
/// (NIP-01).
pub(super) const PREFIXES: &[&str] = &[
    "duplicate",
    "pow",
    "blocked",
    "rate-limited",
    "invalid",
    "restricted",
    "mute",
    "error",
    "auth-required",
];

/// Refusals that will not change by sending the same note again.
pub(super) const PERMANENT: &[&str] = &[
    "invalid",
    "blocked",
    "restricted",
    "pow",
    "mute",
    "auth-required",
];

/// The NIP-01 prefix of a relay's message, when it is one NIP-01 defines: the only part
/// of a relay's words picket repeats in its own.
pub fn prefix_of(message: &str) -> Option<&'static str> {
    let (head, _) = message.split_once(':')?;
    PREFIXES.iter().copied().find(|p| *p == head.trim())
}

/// What to do with a post given every relay's answer: success when one relay has it.
/// The reason counts the relays by answer, naming only NIP-01 prefixes; what each relay
/// said is the detail (see [`Reason`]).
pub fn decide(answers: &[(String, RelayAnswer)]) -> Result<(), PublishError> {
    if answers.iter().any(|(_, a)| *a == RelayAnswer::Accepted) {
        return Ok(());
    }
    if answers.is_empty() {
        return Err(PublishError::retry("the account has no relays"));
    }
    let describe = |(relay, a): &(String, RelayAnswer)| match a {
        RelayAnswer::Accepted => format!("{relay}: accepted"),
        RelayAnswer::Refused(m) => format!("{relay}: {m}"),
        RelayAnswer::Unreachable(m) => format!("{relay}: unreachable ({m})"),
        RelayAnswer::NoAnswer(m) => format!("{relay}: no answer ({m})"),
    };
    let detail = answers.iter().map(describe).collect::<Vec<_>>().join("; ");
    let refused: Vec<&str> = answers
        .iter()
        .filter_map(|(_, a)| match a {
            RelayAnswer::Refused(m) => Some(m.as_str()),
            _ => None,
        })
        .collect();
    let mut codes: Vec<&'static str> = Vec::new();
    for code in refused.iter().filter_map(|m| prefix_of(m)) {
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    let codes = if codes.is_empty() {
        String::new()
    } else {
        format!(" ({})", codes.join(", "))
    };
    let permanent = |m: &str| prefix_of(m).is_some_and(|p| PERMANENT.contains(&p));
    if refused.len() == answers.len() && refused.iter().all(|m| permanent(m)) {
        return Err(PublishError::Rejected(
            Reason::new(format!("every relay refused the note{codes}")).with_detail(detail),
        ));
    }
    let count = |f: fn(&RelayAnswer) -> bool| answers.iter().filter(|(_, a)| f(a)).count();
    let unreachable = count(|a| matches!(a, RelayAnswer::Unreachable(_)));
    let silent = count(|a| matches!(a, RelayAnswer::NoAnswer(_)));
    let mut tally = Vec::new();
    if !refused.is_empty() {
        tally.push(format!("{} refused it{codes}", refused.len()));
    }
    if unreachable > 0 {
        tally.push(format!("{unreachable} unreachable"));
    }
    if silent > 0 {
        tally.push(format!("{silent} did not answer"));
    }
    let rate_limited = refused.iter().any(|m| prefix_of(m) == Some("rate-limited"));
    Err(PublishError::Retry {
        reason: Reason::new(format!("no relay took the note: {}", tally.join(", ")))
            .with_detail(detail),
        after: rate_limited.then_some(RATE_LIMIT_BACKOFF),
        maybe_sent: silent > 0,
    })
}

pub(super) type Socket = WebSocket;

pub(super) async fn connect(http: &Http, relay: &str) -> Result<Socket, String> {
    http.websocket(relay).await.map_err(|e| e.to_string())
}

/// The next JSON array the relay sends (pings are answered by tungstenite).
pub(super) async fn next_message(ws: &mut Socket) -> Result<Vec<Value>, String> {
    loop {
        match ws.next().await {
            None => return Err("connection closed".into()),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(Message::Text(t))) => {
                if let Ok(Value::Array(a)) = serde_json::from_str::<Value>(&t) {
                    return Ok(a);
                }
            }
            Some(Ok(Message::Close(_))) => return Err("connection closed".into()),
            Some(Ok(_)) => {}
        }
    }
}

pub(super) async fn send_json(ws: &mut Socket, v: &Value) -> Result<(), String> {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .map_err(|e| e.to_string())
}

/// Send one event to one relay and wait for its `OK`, all within `timeout`.
pub async fn send_event(http: &Http, relay: &str, event: &Event, timeout: Duration) -> RelayAnswer {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut ws = match tokio::time::timeout_at(deadline, connect(http, relay)).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return RelayAnswer::Unreachable(e),
        Err(_) => return RelayAnswer::Unreachable("connect timed out".into()),
    };
    if let Err(e) = send_json(&mut ws, &json!(["EVENT", event])).await {
        return RelayAnswer::Unreachable(e);
    }
    let id = event.id.to_hex();
    let answer = tokio::time::timeout_at(deadline, async {
        loop {
            let m = next_message(&mut ws).await?;
            if m.first().and_then(Value::as_str) != Some("OK") {
                continue;
            }
            let for_id = m.get(1).and_then(Value::as_str).unwrap_or_default();
            // Some relays (nostr-relay 1.14) answer a refusal with an empty id; one event
            // per connection makes that answer ours.
            if !for_id.is_empty() && for_id != id {
                continue;
            }
            let accepted = m.get(2).and_then(Value::as_bool).unwrap_or(false);
            let message = m.get(3).and_then(Value::as_str).unwrap_or_default();
            return Ok::<_, String>(ok_answer(accepted, message));
        }
    })
    .await;
    let _ = ws.close(None).await;
    match answer {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => RelayAnswer::NoAnswer(e),
        Err(_) => RelayAnswer::NoAnswer("timed out waiting for OK".into()),
    }
}

/// Send `event` to every relay at once.
pub(super) async fn broadcast(
    http: &Http,
    relays: &[String],
    event: &Event,
    timeout: Duration,
) -> Vec<(String, RelayAnswer)> {
    futures::future::join_all(
        relays
            .iter()
            .map(|r| async move { (r.clone(), send_event(http, r, event, timeout).await) }),
    )
    .await
}

/// Events matching `filters` on one relay, until `EOSE` or `deadline`.
pub(crate) async fn query(
    http: &Http,
    relay: &str,
    filters: &[Value],
    deadline: tokio::time::Instant,
) -> Result<Vec<Event>, String> {
    let mut ws = tokio::time::timeout_at(deadline, connect(http, relay))
        .await
        .map_err(|_| "connect timed out".to_string())??;
    let mut req = vec![json!("REQ"), json!("picket")];
    req.extend(filters.iter().cloned());
    send_json(&mut ws, &Value::Array(req)).await?;
    let mut events = Vec::new();
    let read = tokio::time::timeout_at(deadline, async {
        loop {
            let m = next_message(&mut ws).await?;
            match m.first().and_then(Value::as_str) {
                Some("EVENT") => {
                    if let Some(ev) = m
                        .get(2)
                        .and_then(|v| serde_json::from_value::<Event>(v.clone()).ok())
                        .filter(|ev| ev.verify().is_ok())
                    {
                        events.push(ev);
                    }
                }
                Some("EOSE") => return Ok::<_, String>(()),
                Some("CLOSED") => return Err(format!("subscription closed: {m:?}")),
                _ => {}
            }
        }
    })
    .await;
    let _ = ws.close(None).await;
    match read {
        Ok(Ok(())) => Ok(events),
        Ok(Err(e)) if events.is_empty() => Err(e),
        // A partial answer still counts: engagement is a lower bound anyway.
        _ => Ok(events),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers(list: &[RelayAnswer]) -> Vec<(String, RelayAnswer)> {
        list.iter()
            .enumerate()
            .map(|(i, a)| (format!("ws://r{i}"), a.clone()))
            .collect()
    }

    #[test]
    fn ok_true_and_duplicate_are_acceptance() {
        assert_eq!(ok_answer(true, ""), RelayAnswer::Accepted);
        assert_eq!(ok_answer(false, "duplicate: exists"), RelayAnswer::Accepted);
        assert_eq!(
            ok_answer(false, "blocked: you are banned"),
            RelayAnswer::Refused("blocked: you are banned".into())
        );
    }

    #[test]
    fn one_accepting_relay_is_enough() {
        let a = answers(&[
            RelayAnswer::Refused("blocked: no".into()),
            RelayAnswer::Unreachable("refused".into()),
            RelayAnswer::Accepted,
        ]);
        assert!(decide(&a).is_ok());
    }

    #[test]
    fn refusals_from_every_relay_reject_the_post_with_their_messages() {
        let a = answers(&[
            RelayAnswer::Refused("invalid: too long".into()),
            RelayAnswer::Refused("pow: difficulty 20 required".into()),
        ]);
        let Err(PublishError::Rejected(m)) = decide(&a) else {
            panic!("expected rejected: {:?}", decide(&a));
        };
        assert_eq!(m.summary(), "every relay refused the note (invalid, pow)");
        let detail = m.detail().unwrap();
        assert!(
            detail.contains("invalid: too long") && detail.contains("pow: difficulty"),
            "kept for the log: {detail}"
        );
    }

    #[test]
    fn rate_limited_is_a_retry_after_a_while() {
        let a = answers(&[
            RelayAnswer::Refused("rate-limited: slow down".into()),
            RelayAnswer::Refused("invalid: x".into()),
        ]);
        assert!(matches!(
            decide(&a),
            Err(PublishError::Retry {
                after: Some(_),
                maybe_sent: false,
                ..
            })
        ));
    }

    #[test]
    fn no_reachable_relay_is_a_retry_not_sent() {
        let a = answers(&[
            RelayAnswer::Unreachable("connection refused".into()),
            RelayAnswer::Unreachable("connection refused".into()),
        ]);
        assert!(matches!(
            decide(&a),
            Err(PublishError::Retry {
                after: None,
                maybe_sent: false,
                ..
            })
        ));
    }

    #[test]
    fn a_relay_that_got_the_event_but_did_not_answer_makes_it_maybe_sent() {
        let a = answers(&[
            RelayAnswer::NoAnswer("timed out".into()),
            RelayAnswer::Refused("invalid: x".into()),
        ]);
        assert!(matches!(
            decide(&a),
            Err(PublishError::Retry {
                maybe_sent: true,
                ..
            })
        ));
    }

    #[test]
    fn an_unknown_refusal_is_retried() {
        let a = answers(&[RelayAnswer::Refused("error: database locked".into())]);
        assert!(matches!(decide(&a), Err(PublishError::Retry { .. })));
    }

    #[test]
    fn a_relays_words_are_only_the_detail_and_the_reason_names_nip01_prefixes_only() {
        // Arrange: relays that say what they like after (or instead of) a prefix.
        let said = "SECRET-RELAY-40aa: visit https://evil.example";
        let cases = [
            (
                vec![RelayAnswer::Refused(format!("blocked: {said}"))],
                "every relay refused the note (blocked)",
            ),
            (
                vec![RelayAnswer::Refused(said.into())],
                "no relay took the note: 1 refused it",
            ),
            (
                vec![
                    RelayAnswer::Refused(format!("rate-limited: {said}")),
                    RelayAnswer::Unreachable(said.into()),
                    RelayAnswer::NoAnswer(said.into()),
                ],
                "no relay took the note: 1 refused it (rate-limited), 1 unreachable, 1 did not answer",
            ),
        ];

        for (list, summary) in cases {
            // Act
            let e = decide(&answers(&list)).unwrap_err();

            // Assert
            assert_eq!(e.reason().summary(), summary);
            assert!(!e.to_string().contains("SECRET"), "{e}");
            assert!(
                e.reason().detail().is_some_and(|d| d.contains(said)),
                "kept for the log: {e:?}"
            );
        }
    }

    #[test]
    fn only_the_prefixes_nip01_defines_are_read_from_a_relays_message() {
        assert_eq!(prefix_of("blocked: you are banned"), Some("blocked"));
        assert_eq!(prefix_of("rate-limited: slow down"), Some("rate-limited"));
        assert_eq!(prefix_of("auth-required:"), Some("auth-required"));
        assert_eq!(prefix_of("click-here: https://evil.example"), None);
        assert_eq!(prefix_of("no prefix at all"), None);
    }
}
