//! The sandbox receiver: a local stand-in for a social network, for rehearsals, demos
//! and tests. It accepts `POST /api/v1/statuses` like a Mastodon server (bearer token,
//! `Idempotency-Key` honoured per account), keeps every post in memory, and can be told to
//! misbehave (5xx, 429 with `Retry-After`, slow answers after the post was stored, revoked
//! tokens) so the dispatcher's guarantees can be proven against faults.
//!
//! `GET /api/v1/sandbox/posts` lists what it received (`?idempotency_key=` finds the
//! caller's post sent with that key: how picket reads back an unknown outcome); [`Receiver::report`] counts
//! deliveries, created posts and replays.
//!
//! Two kinds: [`Receiver::new`], open to any bearer token, for rehearsals, benchmarks and
//! tests that run their own on a loopback port; and [`Receiver::guarded`], the one
//! `picket serve` mounts at `/sandbox` when the `sandbox` setting is on, where anyone who
//! can reach the server can reach it. That one takes only tokens this picket issued
//! ([`Issuer`]: the sandbox accounts connected here get one), lists to a token only its
//! own posts, and keeps at most a byte budget of posts in memory, refusing new ones past
//! it.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::crypto::Vault;

/// Makes and checks the bearer tokens of sandbox accounts: a label sealed with the
/// credentials key, so only a process holding that key can make one, and any such process
/// (`picket serve`, the CLI adding an account) can check one without shared state.
#[derive(Clone, Debug)]
pub struct Issuer {
    vault: Vault,
}

impl Issuer {
    const LABEL: &'static [u8] = b"picket sandbox token v1";
    const PURPOSE: &'static str = "sandbox token";

    pub fn new(vault: Vault) -> Issuer {
        Issuer { vault }
    }

    /// A new token (each one different: the seal's nonce is random).
    pub fn issue(&self) -> String {
        hex::encode(self.vault.seal_purpose(Self::PURPOSE, Self::LABEL))
    }

    /// Whether this picket issued `token`.
    pub fn check(&self, token: &str) -> bool {
        // Sealed tokens are 128 hex digits; anything far longer is not worth decoding.
        token.len() <= 256
            && hex::decode(token)
                .ok()
                .and_then(|sealed| self.vault.open_purpose(Self::PURPOSE, &sealed.into()).ok())
                .is_some_and(|label| label == Self::LABEL)
    }
}

/// How the receiver misbehaves. Faults are drawn from a seeded generator so a failing
/// run can be repeated.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Share of requests answered 503 before anything is stored.
    pub error_rate: f64,
    /// Share answered 429 with `Retry-After: retry_after_secs`.
    pub rate_limit_rate: f64,
    pub retry_after_secs: u64,
    /// Share stored and then answered only after `slow_delay` (clients time out: the
    /// outcome is unknown to them although the post exists).
    pub slow_rate: f64,
    pub slow_delay: Duration,
    /// Share stored and then answered 502 (a proxy lost the answer).
    pub lost_answer_rate: f64,
    /// Every request is processed this long before the post is stored (a busy server:
    /// the post appears a while after the request arrived).
    pub commit_delay: Duration,
    pub seed: u64,
}

/// One post the receiver holds.
#[derive(Debug, Clone, Serialize)]
pub struct ReceivedPost {
    pub id: String,
    /// A fingerprint of the account's token (the token itself is a credential: never shown).
    pub account: String,
    #[serde(skip)]
    pub token: String,
    pub idempotency_key: Option<String>,
    pub text: String,
    pub scheduled_for: Option<DateTime<Utc>>,
    /// picket's slot key, sent only to the sandbox so rehearsals can count double posts.
    pub slot: Option<String>,
    pub received_at: DateTime<Utc>,
}

/// One request to the statuses endpoint and how it was answered.
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub slot: Option<String>,
    /// Token fingerprint.
    pub account: String,
    pub at: DateTime<Utc>,
    /// HTTP status sent back.
    pub status: u16,
}

/// Counts for reports and assertions.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReceiverReport {
    /// Requests that reached the statuses endpoint.
    pub deliveries: u64,
    /// Posts created (what followers would see).
    pub created: u64,
    /// Requests answered from the idempotency cache instead of posting again.
    pub replays: u64,
    /// Requests refused by injected faults.
    pub faults: u64,
    /// Posts created for an (account, slot) that already had one: a double post, whatever
    /// key it came with. Must stay 0.
    pub duplicate_slots: u64,
}

#[derive(Default)]
struct Inner {
    /// What the posts and deliveries below hold, roughly, in bytes.
    bytes: usize,
    posts: Vec<ReceivedPost>,
    by_key: HashMap<(String, String), usize>,
    revoked: HashSet<String>,
    slots: HashSet<(String, String)>,
    deliveries: Vec<Delivery>,
    deleted: Vec<String>,
    report: ReceiverReport,
    rng: u64,
}

/// A running (or mountable) receiver. Clones share state.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    faults: Arc<Mutex<Faults>>,
    clock: Arc<dyn Clock>,
    /// Present on a guarded receiver: who may post, and how much it keeps.
    gate: Option<Arc<Gate>>,
}

struct Gate {
    issuer: Issuer,
    max_bytes: usize,
}

/// Roughly the memory a stored post takes: the post, and its entries in the idempotency
/// map and the slot set (each with its own copy of the token, key and slot).
fn post_cost(p: &ReceivedPost) -> usize {
    let len = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    std::mem::size_of::<ReceivedPost>()
        + 2 * std::mem::size_of::<(String, String)>()
        + std::mem::size_of::<usize>()
        + p.id.len()
        + p.account.len()
        + p.text.len()
        + 3 * p.token.len()
        + 2 * len(&p.idempotency_key)
        + 2 * len(&p.slot)
}

fn delivery_cost(d: &Delivery) -> usize {
    std::mem::size_of::<Delivery>() + d.account.len() + d.slot.as_ref().map_or(0, String::len)
}

#[derive(Deserialize)]
struct NewStatus {
    status: String,
    scheduled_for: Option<DateTime<Utc>>,
    slot: Option<String>,
}

impl Receiver {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Receiver {
            inner: Arc::new(Mutex::new(Inner {
                rng: 0x9E37_79B9_7F4A_7C15,
                ..Inner::default()
            })),
            faults: Arc::new(Mutex::new(Faults::default())),
            clock,
            gate: None,
        }
    }

    /// A receiver for strangers to reach: only tokens from `issuer`, at most `max_bytes`
    /// of posts kept.
    pub fn guarded(clock: Arc<dyn Clock>, issuer: Issuer, max_bytes: u64) -> Self {
        Receiver {
            gate: Some(Arc::new(Gate {
                issuer,
                max_bytes: usize::try_from(max_bytes).unwrap_or(usize::MAX),
            })),
            ..Receiver::new(clock)
        }
    }

    /// A token for a new sandbox account, on a guarded receiver.
    pub fn issue_token(&self) -> Option<String> {
        self.gate.as_ref().map(|g| g.issuer.issue())
    }

    /// What the stored posts and deliveries take, roughly, in bytes.
    pub fn stored_bytes(&self) -> usize {
        crate::sync::lock(&self.inner).bytes
    }

    /// Whether a request with this bearer token gets past the gate (an open receiver lets
    /// every request through to its own checks).
    fn admits(&self, token: Option<&str>) -> bool {
        match &self.gate {
            None => true,
            Some(g) => token.is_some_and(|t| g.issuer.check(t)),
        }
    }

    /// Whether `cost` more bytes fit in the budget.
    fn fits(&self, inner: &Inner, cost: usize) -> bool {
        self.gate
            .as_ref()
            .is_none_or(|g| inner.bytes.saturating_add(cost) <= g.max_bytes)
    }

    pub fn set_faults(&self, faults: Faults) {
        let seed = faults.seed;
        *crate::sync::lock(&self.faults) = faults;
        if seed != 0 {
            crate::sync::lock(&self.inner).rng = seed;
        }
    }

    /// From now on this token is answered 401, as a revoked token would be.
    pub fn revoke(&self, token: &str) {
        crate::sync::lock(&self.inner)
            .revoked
            .insert(token.to_string());
    }

    /// Accept this token again (the participant reconnected).
    pub fn restore(&self, token: &str) {
        crate::sync::lock(&self.inner).revoked.remove(token);
    }

    /// Ids of posts deleted through the API.
    pub fn deleted(&self) -> Vec<String> {
        crate::sync::lock(&self.inner).deleted.clone()
    }

    pub fn posts(&self) -> Vec<ReceivedPost> {
        crate::sync::lock(&self.inner).posts.clone()
    }

    /// Every request received, in order (capped like the posts).
    pub fn deliveries(&self) -> Vec<Delivery> {
        crate::sync::lock(&self.inner).deliveries.clone()
    }

    pub fn report(&self) -> ReceiverReport {
        crate::sync::lock(&self.inner).report.clone()
    }

    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/v1/statuses", post(create))
            .route("/api/v1/sandbox/posts", get(list))
            .route("/api/v1/accounts/verify_credentials", get(verify))
            .route(
                "/api/v1/statuses/{id}",
                axum::routing::delete(delete_status),
            )
            .with_state(self.clone())
    }

    /// Serve on `addr` (port 0 for any) until `stop` fires; returns the bound address.
    pub async fn serve(
        &self,
        addr: SocketAddr,
        stop: CancellationToken,
    ) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let router = self.router();
        tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        Ok(bound)
    }
}

enum Fate {
    Error,
    RateLimited(u64),
    Slow(Duration),
    LostAnswer,
    Normal,
}

fn next_unit(state: &mut u64) -> f64 {
    // splitmix64: tiny, seeded, good enough to pick faults.
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The bearer token of a request, if it has one.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .filter(|t| !t.is_empty())
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Json(serde_json::json!({"error": "The access token is invalid"})),
    )
        .into_response()
}

async fn create(
    State(rx): State<Receiver>,
    headers: HeaderMap,
    Json(body): Json<NewStatus>,
) -> Response {
    if !rx.admits(bearer(&headers)) {
        return unauthorized();
    }
    let at = rx.clock.now();
    let slot = body.slot.clone();
    let account = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(|v| fingerprint(v.trim_start_matches("Bearer ")))
        .unwrap_or_default();
    let response = answer(&rx, &headers, body).await;
    let mut inner = crate::sync::lock(&rx.inner);
    let delivery = Delivery {
        slot,
        account,
        at,
        status: response.status().as_u16(),
    };
    let cost = delivery_cost(&delivery);
    if inner.deliveries.len() < MAX_POSTS && rx.fits(&inner, cost) {
        inner.deliveries.push(delivery);
        inner.bytes += cost;
    }
    response
}

/// Beyond this many posts any receiver refuses new ones: it lives in memory. (A guarded
/// one is bounded in bytes, usually long before.)
const MAX_POSTS: usize = 200_000;

async fn answer(rx: &Receiver, headers: &HeaderMap, body: NewStatus) -> Response {
    let delay = crate::sync::lock(&rx.faults).commit_delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let token = match headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        Some(t) if !t.is_empty() => t.to_string(),
        _ => {
            return (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({"error": "The access token is invalid"})),
            )
                .into_response();
        }
    };
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let faults = crate::sync::lock(&rx.faults).clone();
    let now = rx.clock.now();
    let (fate, status) = {
        let mut inner = crate::sync::lock(&rx.inner);
        inner.report.deliveries += 1;
        if inner.revoked.contains(&token) {
            return (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({"error": "The access token was revoked"})),
            )
                .into_response();
        }
        let full = || {
            (
                StatusCode::INSUFFICIENT_STORAGE,
                Json(serde_json::json!({"error": "the sandbox is full"})),
            )
                .into_response()
        };
        if inner.posts.len() >= MAX_POSTS {
            return full();
        }
        if body.status.trim().is_empty() {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(serde_json::json!({"error": "Validation failed: Text can't be blank"})),
            )
                .into_response();
        }
        let roll = next_unit(&mut inner.rng);
        let fate = if roll < faults.error_rate {
            Fate::Error
        } else if roll < faults.error_rate + faults.rate_limit_rate {
            Fate::RateLimited(faults.retry_after_secs)
        } else if roll < faults.error_rate + faults.rate_limit_rate + faults.slow_rate {
            Fate::Slow(faults.slow_delay)
        } else if roll
            < faults.error_rate
                + faults.rate_limit_rate
                + faults.slow_rate
                + faults.lost_answer_rate
        {
            Fate::LostAnswer
        } else {
            Fate::Normal
        };
        match fate {
            Fate::Error => {
                inner.report.faults += 1;
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(serde_json::json!({"error": "injected fault"})),
                )
                    .into_response();
            }
            Fate::RateLimited(secs) => {
                inner.report.faults += 1;
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", secs.to_string())],
                    Json(serde_json::json!({"error": "Too many requests"})),
                )
                    .into_response();
            }
            _ => {}
        }
        // Idempotency as Mastodon does it: the key is scoped to the account (token).
        let cached = key
            .as_ref()
            .and_then(|k| inner.by_key.get(&(token.clone(), k.clone())).copied());
        let status = match cached {
            Some(i) => {
                inner.report.replays += 1;
                inner.posts[i].clone()
            }
            None => {
                let id = format!("{}", inner.posts.len() + 1);
                let post = ReceivedPost {
                    id: id.clone(),
                    account: fingerprint(&token),
                    token: token.clone(),
                    idempotency_key: key.clone(),
                    text: body.status,
                    scheduled_for: body.scheduled_for,
                    slot: body.slot,
                    received_at: now,
                };
                let cost = post_cost(&post);
                if !rx.fits(&inner, cost) {
                    return full();
                }
                inner.bytes += cost;
                let index = inner.posts.len();
                if let Some(k) = &key {
                    inner.by_key.insert((token.clone(), k.clone()), index);
                }
                if let Some(slot) = &post.slot
                    && !inner.slots.insert((token.clone(), slot.clone()))
                {
                    inner.report.duplicate_slots += 1;
                }
                inner.posts.push(post.clone());
                inner.report.created += 1;
                post
            }
        };
        (fate, status)
    };
    let json = Json(serde_json::json!({
        "id": status.id,
        "url": format!("sandbox://posts/{}", status.id),
        "content": status.text,
        "created_at": status.received_at,
    }));
    match fate {
        Fate::Slow(d) => {
            tokio::time::sleep(d).await;
            json.into_response()
        }
        Fate::LostAnswer => {
            crate::sync::lock(&rx.inner).report.faults += 1;
            (
                StatusCode::BAD_GATEWAY,
                Json(serde_json::json!({"error": "injected lost answer"})),
            )
                .into_response()
        }
        _ => json.into_response(),
    }
}

/// Like Mastodon's: 200 with the account for a good token, 401 for a missing or revoked one.
async fn verify(State(rx): State<Receiver>, headers: HeaderMap) -> Response {
    if !rx.admits(bearer(&headers)) {
        return unauthorized();
    }
    let token = bearer(&headers).unwrap_or_default();
    let revoked = crate::sync::lock(&rx.inner).revoked.contains(token);
    if token.is_empty() || revoked {
        return (
            StatusCode::UNAUTHORIZED,
            Json(serde_json::json!({"error": "The access token is invalid"})),
        )
            .into_response();
    }
    Json(serde_json::json!({"id": fingerprint(token), "acct": fingerprint(token)})).into_response()
}

/// Like Mastodon's: the owner's token deletes its own post; 404 for anything else.
async fn delete_status(
    State(rx): State<Receiver>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    if !rx.admits(bearer(&headers)) {
        return unauthorized();
    }
    let token = bearer(&headers).unwrap_or_default().to_string();
    let mut inner = crate::sync::lock(&rx.inner);
    let Some(i) = inner
        .posts
        .iter()
        .position(|p| p.id == id && p.token == token)
    else {
        return (
            StatusCode::NOT_FOUND,
            Json(serde_json::json!({"error": "Record not found"})),
        )
            .into_response();
    };
    let post = inner.posts[i].clone();
    inner.bytes = inner.bytes.saturating_sub(post.text.len());
    inner.posts[i].text = String::new();
    inner.deleted.push(id);
    Json(serde_json::json!({"id": post.id, "text": post.text})).into_response()
}

/// `?idempotency_key=`: only the caller's own post sent with that key (a read-back).
#[derive(Deserialize)]
struct ListQuery {
    idempotency_key: Option<String>,
}

/// Every post on an open receiver; on a guarded one, only the caller's own. With a key,
/// only the caller's post sent with it, as a network that dedupes by key finds it.
async fn list(
    State(rx): State<Receiver>,
    axum::extract::Query(query): axum::extract::Query<ListQuery>,
    headers: HeaderMap,
) -> Response {
    let token = bearer(&headers);
    if !rx.admits(token) {
        return unauthorized();
    }
    let inner = crate::sync::lock(&rx.inner);
    let posts: Vec<&ReceivedPost> = match &query.idempotency_key {
        Some(key) => token
            .and_then(|t| inner.by_key.get(&(t.to_string(), key.clone())))
            .map(|&i| &inner.posts[i])
            .into_iter()
            .collect(),
        None => inner
            .posts
            .iter()
            .filter(|p| rx.gate.is_none() || Some(p.token.as_str()) == token)
            .collect(),
    };
    Json(posts).into_response()
}

/// The first 12 hex digits of the token's SHA-256: enough to tell accounts apart.
pub fn fingerprint(token: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(token.as_bytes())[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tokens_sealed_with_this_key_are_taken() {
        let issuer = Issuer::new(Vault::from_key_bytes(&[1; 32]));
        let other = Issuer::new(Vault::from_key_bytes(&[2; 32]));
        let token = issuer.issue();
        assert!(issuer.check(&token));
        assert_ne!(token, issuer.issue(), "every account gets its own");
        assert!(!other.check(&token));
        assert!(!issuer.check("anything"));
        assert!(!issuer.check(&hex::encode(
            issuer.vault.seal_purpose(Issuer::PURPOSE, b"another label")
        )));
        assert!(!issuer.check(""));
    }
}
