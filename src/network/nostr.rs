//! The Nostr adapter: signs a kind-1 note per post and sends it to the account's relays
//! over WebSocket (NIP-01), deletes with a kind-5 request (NIP-09), counts reactions,
//! reposts and replies with `REQ` (NIP-25, NIP-18, NIP-10).
//!
//! Two kinds of signer: a secret key picket holds (sealed like every credential), or a
//! NIP-46 remote signer ("bunker") that keeps the key with the participant; picket then
//! holds only its own client keypair and asks the bunker to `sign_event` over a relay.
//!
//! Idempotency is natural: `created_at` is the slot's scheduled instant, so a retry of
//! the same post is the same event id, and relays answer a second copy with `duplicate:`.
//! Re-signing yields a new signature but the same id, which relays still treat as a
//! duplicate; signed events are nevertheless cached per idempotency key in the process
//! so a retry does not ask a bunker again.
//!
//! Relays are opened through [`Http::websocket`]: for an account a visitor connected (and
//! its bunker's relays) each connection is guarded, wss:// to public addresses only, and
//! a relay message is at most [`super::guarded::MAX_BODY`].
//!
//! What it does not do: read relay limits (NIP-11), NIP-42 AUTH, proof of work, NIP-65
//! relay discovery, or pre-signed events; the receipt URL is a `nostr:nevent1…` URI
//! (NIP-21), not a link to any web gateway.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures::{SinkExt, StreamExt};
use nostr::prelude::{
    Event, EventBuilder, EventId, FinalizeEvent, FinalizeUnsignedEvent, FromBech32, Keys, Kind,
    Nip19Event, Nip44, NostrConnectEventBuilder, NostrConnectMessage, NostrConnectRequest,
    NostrConnectResponse, NostrConnectUri, PublicKey, RelayUrl, ResponseResult, SecretKey, Tag,
    Timestamp, ToBech32, UnsignedEvent,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::guarded::{Egress, Http, WebSocket};
use super::{
    AccountRef, Engagement, Identity, Network, NetworkKind, OutgoingPost, PublishError, Reason,
    Receipt,
};
use crate::config::Secret;

/// How long engagement reads and verification wait for relays: they have no post timeout.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A relay said `rate-limited:` without saying for how long.
const RATE_LIMIT_BACKOFF: Duration = Duration::from_secs(30);
/// Signed events kept for retries; beyond this the cache starts over (re-signing is safe).
const CACHE_CAP: usize = 10_000;

/// What `AccountRef::credentials` holds for a Nostr account (JSON, sealed in the store).
#[derive(Serialize, Deserialize)]
#[serde(tag = "signer", rename_all = "lowercase")]
pub enum Credentials {
    /// picket holds the participant's secret key (hex).
    Key { secret_key: String },
    /// A NIP-46 remote signer: the bunker URI (with its relays; the one-time secret is
    /// spent at connect), picket's own client secret key (hex) and the user's public key.
    Bunker {
        uri: String,
        client_secret_key: String,
        user_public_key: String,
    },
}

impl Credentials {
    pub fn to_secret(&self) -> Secret {
        Secret::new(serde_json::to_string(self).expect("credentials serialize"))
    }

    fn parse(credentials: &Secret) -> Result<Credentials, PublishError> {
        serde_json::from_str(credentials.expose())
            .map_err(|_| PublishError::reconnect("the stored Nostr credentials are unreadable"))
    }
}

/// Parse a secret key given as `nsec1…` or 64 hex digits.
pub fn parse_secret_key(s: &str) -> Result<Keys, String> {
    let s = s.trim();
    let sk = if s.starts_with("nsec1") {
        SecretKey::from_bech32(s).map_err(|_| "not a valid nsec key".to_string())?
    } else {
        SecretKey::from_hex(s).map_err(|_| "not a valid nsec or 64-hex-digit key".to_string())?
    };
    Ok(Keys::new(sk))
}

/// A fresh keypair for picket's side of a NIP-46 session.
pub fn generate_client_keys() -> Keys {
    Keys::generate()
}

/// The bunker URI without its one-time `secret` (spent at `connect`: no need to keep it).
pub fn bunker_uri_without_secret(uri: &str) -> String {
    let Ok(mut u) = url::Url::parse(uri) else {
        return uri.to_string();
    };
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "secret")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut().clear().extend_pairs(kept);
    u.to_string()
}

/// The `npub1…` shown as an account's handle.
pub fn npub(pk: &PublicKey) -> String {
    pk.to_bech32().expect("bech32 of a public key")
}

/// The relays of an account: `AccountRef::server` lists them separated by spaces or commas.
pub fn relays_of(server: &str) -> Vec<String> {
    server
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Check a relay URL: `ws://` or `wss://` with a host.
pub fn check_relay_url(s: &str) -> Result<String, String> {
    let u = url::Url::parse(s).map_err(|e| format!("relay `{s}`: {e}"))?;
    if !matches!(u.scheme(), "ws" | "wss") || u.host_str().is_none() {
        return Err(format!("relay `{s}`: expected ws://HOST or wss://HOST"));
    }
    Ok(s.trim_end_matches('/').to_string())
}

/// The hashtags of a text, lowercase, each once, in order of appearance (NIP-24 `t` tags).
///
/// A tag starts with `#` at the start of the text or after anything but an ASCII word
/// character or one of `&#/@)` (so `a#b` and `&#39;` are not tags, but `今日は#罷工` is:
/// CJK text has no spaces; Mastodon draws the same line), runs over letters, digits (any
/// script) and `_`, and needs one non-digit (`#1` is a number). A `#` inside a URL (a
/// fragment) is not a tag.
pub fn hashtags(text: &str) -> Vec<String> {
    let urls: Vec<(usize, usize)> = linkify::LinkFinder::new()
        .kinds(&[linkify::LinkKind::Url])
        .links(text)
        .map(|l| (l.start(), l.end()))
        .collect();
    let in_url = |i: usize| urls.iter().any(|&(s, e)| s <= i && i < e);
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut seen = HashSet::new();
    let mut tags = Vec::new();
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        let starts = c == '#'
            && !in_url(i)
            && prev.is_none_or(|p| !(p.is_ascii_alphanumeric() || "_&#/@)".contains(p)));
        prev = Some(c);
        if !starts {
            continue;
        }
        let rest = &text[i + 1..];
        let end = rest.find(|c: char| !word(c)).unwrap_or(rest.len());
        let tag = &rest[..end];
        if tag.is_empty() || tag.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let tag = tag.to_lowercase();
        if seen.insert(tag.clone()) {
            tags.push(tag);
        }
    }
    tags
}

/// The http(s) links of a text, each once (`r` tags).
pub fn links(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    linkify::LinkFinder::new()
        .kinds(&[linkify::LinkKind::Url])
        .links(text)
        .map(|l| l.as_str().to_string())
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .filter(|u| seen.insert(u.clone()))
        .collect()
}

/// The kind-1 note for `text` at `created_at` (unix seconds): hashtags as `t` tags,
/// links as `r` tags. Everything in it comes from the post, so the id is a function of
/// (author, text, slot instant).
pub fn note(text: &str, created_at: u64) -> EventBuilder {
    EventBuilder::new(Kind::TextNote, text)
        .tags(hashtags(text).into_iter().map(Tag::hashtag))
        .tags(links(text).into_iter().map(|u| Tag::custom("r", [u])))
        .custom_created_at(Timestamp::from_secs(created_at))
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
const PREFIXES: &[&str] = &[
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
const PERMANENT: &[&str] = &[
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

type Socket = WebSocket;

async fn connect(http: &Http, relay: &str) -> Result<Socket, String> {
    http.websocket(relay).await.map_err(|e| e.to_string())
}

/// The next JSON array the relay sends (pings are answered by tungstenite).
async fn next_message(ws: &mut Socket) -> Result<Vec<Value>, String> {
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

async fn send_json(ws: &mut Socket, v: &Value) -> Result<(), String> {
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
async fn broadcast(
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
async fn query(
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

/// Why a call to a remote signer failed.
#[derive(Debug)]
pub enum SignerError {
    /// The signer refused (its message): a revoked permission means reconnect.
    Refused(String),
    /// No answer: relay down, signer offline.
    Unavailable(String),
}

impl SignerError {
    /// The signer's own words are only the detail (see [`Reason`]).
    fn into_publish(self) -> PublishError {
        match self {
            SignerError::Refused(m) if revoked(&m) => PublishError::Reconnect(
                Reason::new("the remote signer refused to sign: picket's permission was withdrawn")
                    .with_detail(m),
            ),
            SignerError::Refused(m) => PublishError::Retry {
                reason: Reason::new("the remote signer refused to sign").with_detail(m),
                after: None,
                maybe_sent: false,
            },
            SignerError::Unavailable(m) => PublishError::Retry {
                reason: Reason::new("the remote signer did not answer").with_detail(m),
                after: None,
                maybe_sent: false,
            },
        }
    }
}

impl std::fmt::Display for SignerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignerError::Refused(m) => write!(f, "the remote signer refused: {m}"),
            SignerError::Unavailable(m) => write!(f, "the remote signer did not answer: {m}"),
        }
    }
}

/// Signer messages that mean the participant took picket's permission away.
fn revoked(message: &str) -> bool {
    let m = message.to_lowercase();
    [
        "revoked",
        "unauthorized",
        "not authorized",
        "permission",
        "denied",
        "not allowed",
        "forbidden",
        "not connected",
    ]
    .iter()
    .any(|w| m.contains(w))
}

/// A NIP-46 session: picket's client keys, the bunker's key and relays, and the client
/// its relays are opened with (guarded unless the operator typed the bunker URI).
pub struct Bunker {
    pub client: Keys,
    pub signer: PublicKey,
    pub relays: Vec<String>,
    http: Http,
}

impl Bunker {
    /// From a `bunker://` URI and picket's client keys.
    pub fn new(uri: &str, client: Keys, http: Http) -> Result<(Bunker, Option<String>), String> {
        let parsed = NostrConnectUri::parse(uri).map_err(|_| "not a valid bunker:// URI")?;
        let signer = *parsed
            .remote_signer_public_key()
            .ok_or("expected bunker://<remote-signer-pubkey>?relay=…")?;
        let relays: Vec<String> = parsed.relays().iter().map(|r| r.to_string()).collect();
        if relays.is_empty() {
            return Err("the bunker URI names no relay".into());
        }
        let secret = parsed.secret().map(str::to_string);
        Ok((
            Bunker {
                client,
                signer,
                relays,
                http,
            },
            secret,
        ))
    }

    /// Send `request` and wait for the signer's answer on the first relay that connects.
    pub async fn call(
        &self,
        request: NostrConnectRequest,
        timeout: Duration,
    ) -> Result<ResponseResult, SignerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::from("no relay");
        for relay in &self.relays {
            match tokio::time::timeout_at(deadline, self.call_on(relay, &request)).await {
                Ok(Ok(r)) => return Ok(r),
                Ok(Err(SignerError::Unavailable(e))) => last = format!("{relay}: {e}"),
                Ok(Err(refused)) => return Err(refused),
                Err(_) => return Err(SignerError::Unavailable(format!("{relay}: timed out"))),
            }
        }
        Err(SignerError::Unavailable(last))
    }

    async fn call_on(
        &self,
        relay: &str,
        request: &NostrConnectRequest,
    ) -> Result<ResponseResult, SignerError> {
        let unavailable = SignerError::Unavailable;
        let mut ws = connect(&self.http, relay).await.map_err(unavailable)?;
        let me = self.client.public_key();
        // Listen before asking, so a fast signer's answer is not missed.
        let since = Timestamp::now().as_secs().saturating_sub(10);
        send_json(
            &mut ws,
            &json!(["REQ", "picket-nip46", {"kinds": [24133], "#p": [me.to_hex()], "since": since}]),
        )
        .await
        .map_err(unavailable)?;
        let message = NostrConnectMessage::request(request);
        let id = message.id().to_string();
        let event = NostrConnectEventBuilder::new(self.signer, message)
            .finalize(&self.client)
            .map_err(|e| SignerError::Unavailable(format!("cannot encrypt the request: {e}")))?;
        send_json(&mut ws, &json!(["EVENT", event]))
            .await
            .map_err(unavailable)?;
        let method = request.method();
        loop {
            let m = next_message(&mut ws).await.map_err(unavailable)?;
            match m.first().and_then(Value::as_str) {
                Some("OK") if m.get(2).and_then(Value::as_bool) == Some(false) => {
                    let msg = m.get(3).and_then(Value::as_str).unwrap_or_default();
                    return Err(SignerError::Unavailable(format!(
                        "the relay refused the request: {msg}"
                    )));
                }
                Some("EVENT") => {}
                _ => continue,
            }
            let Some(ev) = m
                .get(2)
                .and_then(|v| serde_json::from_value::<Event>(v.clone()).ok())
            else {
                continue;
            };
            if ev.pubkey != self.signer || ev.kind != Kind::NostrConnect || ev.verify().is_err() {
                continue;
            }
            let Ok(plain) = self.client.nip44_decrypt(&ev.pubkey, &ev.content) else {
                continue;
            };
            let Ok(NostrConnectMessage::Response {
                id: rid,
                result,
                error,
            }) = NostrConnectMessage::from_json(&plain)
            else {
                continue;
            };
            if rid != id {
                continue;
            }
            let _ = ws.close(None).await;
            return match NostrConnectResponse::parse(method, result, error) {
                Ok(NostrConnectResponse { error: Some(e), .. }) if !e.is_empty() => {
                    Err(SignerError::Refused(e))
                }
                Ok(NostrConnectResponse {
                    result: Some(r), ..
                }) if r.is_auth_url() => Err(SignerError::Refused(
                    "the signer asks the participant to approve picket in a browser".into(),
                )),
                Ok(NostrConnectResponse {
                    result: Some(r), ..
                }) => Ok(r),
                Ok(_) => Err(SignerError::Refused("an empty answer".into())),
                Err(e) => Err(SignerError::Refused(format!("an unreadable answer: {e}"))),
            };
        }
    }

    /// `connect` with the URI's secret, then `get_public_key`: the user's key, which
    /// may differ from the bunker's own.
    pub async fn connect(
        &self,
        secret: Option<String>,
        timeout: Duration,
    ) -> Result<PublicKey, SignerError> {
        self.call(
            NostrConnectRequest::Connect {
                remote_signer_public_key: self.signer,
                secret,
            },
            timeout,
        )
        .await?;
        self.public_key(timeout).await
    }

    pub async fn public_key(&self, timeout: Duration) -> Result<PublicKey, SignerError> {
        self.call(NostrConnectRequest::GetPublicKey, timeout)
            .await?
            .to_get_public_key()
            .map_err(|e| SignerError::Refused(e.to_string()))
    }

    pub async fn sign(
        &self,
        unsigned: UnsignedEvent,
        timeout: Duration,
    ) -> Result<Event, SignerError> {
        self.call(NostrConnectRequest::SignEvent(unsigned), timeout)
            .await?
            .to_sign_event()
            .map_err(|e| SignerError::Refused(e.to_string()))
    }
}

/// The signer of one account, built from its credentials.
enum Signer {
    Key(Keys),
    Bunker { bunker: Bunker, user: PublicKey },
}

impl Signer {
    fn of(account: &AccountRef, http: &Http) -> Result<Signer, PublishError> {
        let bad = |m: String| PublishError::reconnect(format!("Nostr credentials: {m}"));
        match Credentials::parse(&account.credentials)? {
            Credentials::Key { secret_key } => {
                Ok(Signer::Key(parse_secret_key(&secret_key).map_err(bad)?))
            }
            Credentials::Bunker {
                uri,
                client_secret_key,
                user_public_key,
            } => {
                let client = parse_secret_key(&client_secret_key).map_err(bad)?;
                let (bunker, _) = Bunker::new(&uri, client, http.clone()).map_err(bad)?;
                let user = PublicKey::from_hex(&user_public_key)
                    .map_err(|_| bad("bad user public key".into()))?;
                Ok(Signer::Bunker { bunker, user })
            }
        }
    }

    fn public_key(&self) -> PublicKey {
        match self {
            Signer::Key(k) => k.public_key(),
            Signer::Bunker { user, .. } => *user,
        }
    }

    async fn sign(&self, builder: EventBuilder, timeout: Duration) -> Result<Event, PublishError> {
        match self {
            Signer::Key(keys) => builder.finalize(keys).map_err(|e| {
                PublishError::Rejected(
                    Reason::new("picket could not sign the note").with_detail(e.to_string()),
                )
            }),
            Signer::Bunker { bunker, user } => {
                let mut unsigned = builder.finalize_unsigned(*user);
                let id = unsigned.id();
                let ev = bunker
                    .sign(unsigned, timeout)
                    .await
                    .map_err(SignerError::into_publish)?;
                // A signer that signs something else (another key, altered content) must
                // not have its event published under this post.
                if ev.id != id || ev.pubkey != *user || ev.verify().is_err() {
                    return Err(PublishError::reconnect(
                        "the remote signer returned a different event or key",
                    ));
                }
                Ok(ev)
            }
        }
    }
}

/// The `nostr:nevent1…` URI (NIP-19, NIP-21) of a published note, with relay hints.
pub fn nevent_uri(id: EventId, author: PublicKey, relays: &[String]) -> String {
    let hints: Vec<RelayUrl> = relays
        .iter()
        .filter_map(|r| RelayUrl::parse(r).ok())
        .collect();
    let nevent = Nip19Event::new(id)
        .author(author)
        .kind(Kind::TextNote)
        .relays(hints)
        .to_bech32()
        .expect("bech32 of an nevent");
    format!("nostr:{nevent}")
}

pub struct Nostr {
    /// Signed notes by idempotency key: a retry sends the very same event.
    signed: Mutex<HashMap<String, Event>>,
    egress: Egress,
}

impl Nostr {
    pub fn new(egress: Egress) -> Self {
        Nostr {
            signed: Mutex::new(HashMap::new()),
            egress,
        }
    }

    /// Relays (and the bunker's) of an account: guarded unless the operator added it.
    fn http(&self, account: &AccountRef) -> &Http {
        self.egress.for_account(account.trusted)
    }

    fn cached(&self, key: &str, text: &str, created_at: u64, author: &PublicKey) -> Option<Event> {
        let cache = self.signed.lock().expect("cache lock");
        cache
            .get(key)
            .filter(|ev| {
                ev.content == text && ev.created_at.as_secs() == created_at && ev.pubkey == *author
            })
            .cloned()
    }

    fn remember(&self, key: &str, event: &Event) {
        let mut cache = self.signed.lock().expect("cache lock");
        if cache.len() >= CACHE_CAP {
            cache.clear();
        }
        cache.insert(key.to_string(), event.clone());
    }

    fn forget(&self, key: &str) {
        self.signed.lock().expect("cache lock").remove(key);
    }
}

fn created_at(post: &OutgoingPost) -> u64 {
    u64::try_from(post.scheduled_at.timestamp()).unwrap_or(0)
}

#[async_trait]
impl Network for Nostr {
    fn kind(&self) -> NetworkKind {
        NetworkKind::Nostr
    }

    #[tracing::instrument(skip_all, fields(network = "nostr", account = account.id))]
    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        let deadline = tokio::time::Instant::now() + post.timeout;
        let signer = Signer::of(account, self.http(account))?;
        let author = signer.public_key();
        let relays = relays_of(&account.server);
        let at = created_at(post);
        let event = match self.cached(&post.idempotency_key, &post.text, at, &author) {
            Some(ev) => ev,
            None => {
                let ev = signer.sign(note(&post.text, at), post.timeout).await?;
                self.remember(&post.idempotency_key, &ev);
                ev
            }
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let answers = broadcast(self.http(account), &relays, &event, left).await;
        tracing::debug!(id = %event.id, ?answers, "relay answers");
        decide(&answers)?;
        self.forget(&post.idempotency_key);
        Ok(Receipt {
            remote_id: event.id.to_hex(),
            url: Some(nevent_uri(event.id, author, &relays)),
        })
    }

    async fn delete(&self, account: &AccountRef, remote_id: &str) -> Result<(), PublishError> {
        let id = EventId::from_hex(remote_id)
            .map_err(|_| PublishError::rejected("the stored post id is not a Nostr event id"))?;
        let signer = Signer::of(account, self.http(account))?;
        let builder = EventBuilder::new(Kind::EventDeletion, "")
            .tag(Tag::event(id))
            .tag(Tag::custom("k", ["1"]));
        let event = signer.sign(builder, READ_TIMEOUT).await?;
        let relays = relays_of(&account.server);
        decide(&broadcast(self.http(account), &relays, &event, READ_TIMEOUT).await)
    }

    async fn verify(&self, account: &AccountRef) -> Result<Identity, PublishError> {
        match Signer::of(account, self.http(account))? {
            Signer::Key(keys) => Ok(Identity {
                handle: npub(&keys.public_key()),
                url: None,
            }),
            Signer::Bunker { bunker, user } => {
                let pk = bunker
                    .public_key(READ_TIMEOUT)
                    .await
                    .map_err(SignerError::into_publish)?;
                if pk != user {
                    return Err(PublishError::reconnect(format!(
                        "the remote signer now signs as {}, not {}",
                        npub(&pk),
                        npub(&user)
                    )));
                }
                Ok(Identity {
                    handle: npub(&pk),
                    url: None,
                })
            }
        }
    }

    async fn engagement(
        &self,
        account: &AccountRef,
        remote_id: &str,
    ) -> Result<Option<Engagement>, PublishError> {
        let id = EventId::from_hex(remote_id)
            .map_err(|_| PublishError::rejected("the stored post id is not a Nostr event id"))?;
        let filters = engagement_filters(&id);
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        let relays = relays_of(&account.server);
        let results = futures::future::join_all(
            relays
                .iter()
                .map(|r| query(self.http(account), r, &filters, deadline)),
        )
        .await;
        if !results.is_empty() && results.iter().all(Result::is_err) {
            return Err(PublishError::retry("no relay answered"));
        }
        let events: Vec<Event> = results.into_iter().flatten().flatten().collect();
        Ok(Some(count_engagement(&id, events)))
    }
}

/// Reactions (7), reposts (6) and replies (1) that reference the note.
fn engagement_filters(id: &EventId) -> Vec<Value> {
    [7, 6, 1]
        .iter()
        .map(|k| json!({"kinds": [k], "#e": [id.to_hex()]}))
        .collect()
}

/// Count events by kind, each once however many relays returned it.
pub fn count_engagement(id: &EventId, events: impl IntoIterator<Item = Event>) -> Engagement {
    let mut seen = HashSet::new();
    let mut e = Engagement::default();
    for ev in events {
        let refers = ev
            .tags
            .iter()
            .any(|t| t.kind() == "e" && t.content() == Some(id.to_hex().as_str()));
        if !refers || !seen.insert(ev.id) {
            continue;
        }
        match ev.kind {
            Kind::Reaction => e.likes += 1,
            Kind::Repost => e.reposts += 1,
            Kind::TextNote => e.replies += 1,
            _ => {}
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::prelude::{NostrConnectMethod, SignEvent};

    fn keys() -> Keys {
        parse_secret_key("6b911fd37cdf5c81d4c0adb1ab7fa822ed253ab0ad9aa18d77257c88b29b718e")
            .unwrap()
    }

    #[test]
    fn hashtags_are_lowercase_unique_and_in_order() {
        let tags = hashtags("#Strike today, #STRIKE again and #Solidarity_2027!");
        assert_eq!(tags, ["strike", "solidarity_2027"]);
    }

    #[test]
    fn hashtags_stop_at_punctuation_and_emoji() {
        let tags = hashtags("On #strike🔥 (#Walkout). #tag's #end. #a-b");
        assert_eq!(tags, ["strike", "walkout", "tag", "end", "a"]);
    }

    #[test]
    fn hashtags_in_cjk_and_accented_scripts_are_kept() {
        let tags = hashtags("今日は#罷工 です #Grève #ÉCOLE #ストライキ。");
        assert_eq!(tags, ["罷工", "grève", "école", "ストライキ"]);
    }

    #[test]
    fn a_hash_inside_a_url_or_a_word_is_not_a_tag() {
        let text = "Join https://example.org/join#section and a#b &#39; issue#12 \
                    https://x.test/#/route #real";
        assert_eq!(hashtags(text), ["real"]);
    }

    #[test]
    fn numbers_lone_hashes_and_double_hashes_are_not_tags() {
        assert_eq!(hashtags("#1 # ## ##twice #2027 #x1"), ["x1"]);
    }

    #[test]
    fn links_become_r_tags_once() {
        let text = "See https://picket.test/i/abc and again https://picket.test/i/abc #t";
        assert_eq!(links(text), ["https://picket.test/i/abc"]);
    }

    #[test]
    fn the_same_text_time_and_key_give_the_same_event_id() {
        let k = keys();
        let a = note("On #Strike: https://p.test/x", 1_800_000_000)
            .finalize(&k)
            .unwrap();
        let b = note("On #Strike: https://p.test/x", 1_800_000_000)
            .finalize(&k)
            .unwrap();
        assert_eq!(a.id, b.id);
        assert!(a.verify().is_ok() && b.verify().is_ok());
        let tags: Vec<Vec<String>> = a.tags.iter().map(|t| t.as_slice().to_vec()).collect();
        assert_eq!(
            tags,
            [vec!["t", "strike"], vec!["r", "https://p.test/x"]]
                .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
        );
    }

    #[test]
    fn another_time_or_text_gives_another_event_id() {
        let k = keys();
        let a = note("x", 1_800_000_000).finalize(&k).unwrap();
        let later = note("x", 1_800_000_001).finalize(&k).unwrap();
        let other = note("y", 1_800_000_000).finalize(&k).unwrap();
        assert_ne!(a.id, later.id);
        assert_ne!(a.id, other.id);
    }

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

    #[test]
    fn a_signers_refusal_is_only_the_detail() {
        let said = "SECRET-SIGNER-77: permission denied, see https://evil.example";
        for e in [
            SignerError::Refused(said.into()).into_publish(),
            SignerError::Refused("SECRET-SIGNER-77 busy".into()).into_publish(),
            SignerError::Unavailable(format!("the relay refused the request: {said}"))
                .into_publish(),
        ] {
            assert!(e.reason().summary().starts_with("the remote signer"), "{e}");
            assert!(!e.to_string().contains("SECRET"), "{e}");
            assert!(
                e.reason()
                    .detail()
                    .is_some_and(|d| d.contains("SECRET-SIGNER-77")),
                "{e:?}"
            );
        }
    }

    #[test]
    fn a_signer_that_revokes_permission_asks_for_a_reconnect() {
        let revoked = SignerError::Refused("Permission denied for sign_event".into());
        let busy = SignerError::Refused("try later".into());
        assert!(matches!(revoked.into_publish(), PublishError::Reconnect(_)));
        assert!(matches!(busy.into_publish(), PublishError::Retry { .. }));
    }

    #[test]
    fn keys_parse_from_nsec_and_hex_and_nothing_else() {
        let k = keys();
        let nsec = k.secret_key().to_bech32().unwrap();
        assert_eq!(
            parse_secret_key(&nsec).unwrap().public_key(),
            k.public_key()
        );
        assert!(parse_secret_key("nsec1notakey").is_err());
        assert!(parse_secret_key("zz").is_err());
        assert!(npub(&k.public_key()).starts_with("npub1"));
    }

    #[test]
    fn a_nip46_sign_request_round_trips_through_nip44() {
        // Arrange: picket's client keys, a bunker key, the user's key.
        let client = Keys::generate();
        let bunker = Keys::generate();
        let user = keys();
        let unsigned = note("#Strike now", 1_800_000_000).finalize_unsigned(user.public_key());
        let request =
            NostrConnectMessage::request(&NostrConnectRequest::SignEvent(unsigned.clone()));
        let rid = request.id().to_string();

        // Act: client → bunker, bunker signs, bunker → client.
        let wire = NostrConnectEventBuilder::new(bunker.public_key(), request)
            .finalize(&client)
            .unwrap();
        let plain = bunker.nip44_decrypt(&wire.pubkey, &wire.content).unwrap();
        let got = NostrConnectMessage::from_json(&plain)
            .unwrap()
            .to_request()
            .unwrap();
        let NostrConnectRequest::SignEvent(to_sign) = got else {
            panic!("expected sign_event");
        };
        let signed = user.sign_event(to_sign).unwrap();
        let reply = NostrConnectMessage::response(
            rid,
            NostrConnectResponse::with_result(ResponseResult::SignEvent(Box::new(signed))),
        );
        let back = NostrConnectEventBuilder::new(client.public_key(), reply)
            .finalize(&bunker)
            .unwrap();
        let plain = client.nip44_decrypt(&back.pubkey, &back.content).unwrap();
        let NostrConnectMessage::Response { result, error, .. } =
            NostrConnectMessage::from_json(&plain).unwrap()
        else {
            panic!("expected a response");
        };
        let event = NostrConnectResponse::parse(NostrConnectMethod::SignEvent, result, error)
            .unwrap()
            .result
            .unwrap()
            .to_sign_event()
            .unwrap();

        // Assert
        assert_eq!(wire.kind, Kind::NostrConnect);
        assert_eq!(event.id, unsigned.compute_id());
        assert!(event.verify().is_ok());
    }

    #[test]
    fn engagement_counts_each_event_once_by_kind() {
        let k = keys();
        let post = note("x", 1_800_000_000).finalize(&k).unwrap();
        let r = |kind, s| {
            EventBuilder::new(kind, s)
                .tag(Tag::event(post.id))
                .finalize(&Keys::generate())
                .unwrap()
        };
        let like = r(Kind::Reaction, "+");
        let evs = vec![
            like.clone(),
            like,
            r(Kind::Reaction, "🔥"),
            r(Kind::Repost, ""),
            r(Kind::TextNote, "me too"),
            note("unrelated", 1).finalize(&k).unwrap(),
        ];
        let e = count_engagement(&post.id, evs);
        assert_eq!(
            e,
            Engagement {
                replies: 1,
                reposts: 1,
                likes: 2
            }
        );
    }
}
