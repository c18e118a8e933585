//! A local imitation of Discord's "Execute Webhook" (axum on 127.0.0.1:0), following the
//! documented contract, with the faults the tests need. Documents followed:
//! - `POST /webhooks/{webhook.id}/{webhook.token}` (under `/api/v10`) with `content`;
//!   with `?wait=true` the answer is the created message (200, with its `id`), without it
//!   204: https://discord.com/developers/docs/resources/webhook#execute-webhook
//! - Rate limits: every answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining`,
//!   `X-RateLimit-Reset` (epoch seconds), `X-RateLimit-Reset-After` (seconds, fractional)
//!   and `X-RateLimit-Bucket`; a request over the limit gets 429 with a JSON body
//!   `{"message", "retry_after", "global"}` and a `Retry-After` header:
//!   https://discord.com/developers/docs/topics/rate-limits
//! - An unknown webhook or wrong token answers 401/404 `{"message": "Unknown Webhook",
//!   "code": 10015}`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const DISCORD_WEBHOOK_ID: &str = "1234567890123456789";
pub const DISCORD_WEBHOOK_TOKEN: &str = "aBcD-webhook-token_0123456789";

#[derive(Debug, Clone)]
pub struct DiscordMessage {
    pub id: String,
    pub content: String,
    /// Whether mentions were switched off (`allowed_mentions.parse = []`).
    pub mentions_off: bool,
}

pub struct DiscordInner {
    pub messages: Vec<DiscordMessage>,
    pub arrivals: Vec<Instant>,
    /// The bucket: this many requests per `window`.
    pub limit: u32,
    pub window: Duration,
    /// Requests that came while the bucket was spent (a client ignoring the headers).
    pub limited: usize,
    /// Requests still to refuse with 429 and `retry_after` = `limited_secs`.
    pub limit_first: usize,
    pub limited_secs: f64,
    /// Requests counted in the current window, and when it resets.
    pub used: u32,
    pub reset_at: Option<Instant>,
}

impl Default for DiscordInner {
    fn default() -> Self {
        DiscordInner {
            messages: Vec::new(),
            arrivals: Vec::new(),
            limit: 5,
            window: Duration::from_secs(2),
            limited: 0,
            limit_first: 0,
            limited_secs: 1.0,
            used: 0,
            reset_at: None,
        }
    }
}

#[derive(Clone)]
pub struct DiscordFake {
    pub base: String,
    pub inner: Arc<Mutex<DiscordInner>>,
}

impl DiscordFake {
    pub async fn start(inner: DiscordInner) -> DiscordFake {
        let inner = Arc::new(Mutex::new(inner));
        let router = Router::new()
            .route("/api/v10/webhooks/{id}/{token}", post(execute))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        DiscordFake { base, inner }
    }

    /// The webhook's whole address, as Discord shows it to the channel's owner.
    pub fn webhook_url(&self) -> String {
        format!(
            "{}/api/v10/webhooks/{DISCORD_WEBHOOK_ID}/{DISCORD_WEBHOOK_TOKEN}",
            self.base
        )
    }

    pub fn messages(&self) -> Vec<DiscordMessage> {
        self.inner.lock().unwrap().messages.clone()
    }

    pub fn arrivals(&self) -> Vec<Instant> {
        self.inner.lock().unwrap().arrivals.clone()
    }
}

fn limited(secs: f64) -> Response {
    let mut r = (
        StatusCode::TOO_MANY_REQUESTS,
        axum::Json(json!({
            "message": "You are being rate limited.",
            "retry_after": secs,
            "global": false,
        })),
    )
        .into_response();
    r.headers_mut().insert(
        "retry-after",
        HeaderValue::from_str(&format!("{}", secs.ceil() as u64)).unwrap(),
    );
    r
}

async fn execute(
    State(inner): State<Arc<Mutex<DiscordInner>>>,
    Path((id, token)): Path<(String, String)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    body: axum::body::Bytes,
) -> Response {
    if id != DISCORD_WEBHOOK_ID || token != DISCORD_WEBHOOK_TOKEN {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({ "message": "Unknown Webhook", "code": 10015 })),
        )
            .into_response();
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "message": "Cannot send an empty message", "code": 50006 })),
        )
            .into_response();
    };
    let mut s = inner.lock().unwrap();
    let now = Instant::now();
    s.arrivals.push(now);
    if s.reset_at.is_none_or(|r| now >= r) {
        s.used = 0;
        s.reset_at = Some(now + s.window);
    }
    if s.limit_first > 0 {
        s.limit_first -= 1;
        return limited(s.limited_secs);
    }
    let reset_at = s.reset_at.expect("set above");
    if s.used >= s.limit {
        s.limited += 1;
        return limited((reset_at - now).as_secs_f64());
    }
    s.used += 1;
    let content = request["content"].as_str().unwrap_or_default().to_string();
    let mentions_off = request["allowed_mentions"]["parse"]
        .as_array()
        .is_some_and(|a| a.is_empty());
    let message_id = format!("11{:017}", s.messages.len() + 1);
    s.messages.push(DiscordMessage {
        id: message_id.clone(),
        content: content.clone(),
        mentions_off,
    });
    let mut headers = HeaderMap::new();
    let reset_after = (reset_at - now).as_secs_f64();
    for (name, value) in [
        ("x-ratelimit-limit", s.limit.to_string()),
        ("x-ratelimit-remaining", (s.limit - s.used).to_string()),
        (
            "x-ratelimit-reset",
            format!("{:.3}", chrono::Utc::now().timestamp() as f64 + reset_after),
        ),
        ("x-ratelimit-reset-after", format!("{reset_after:.3}")),
        ("x-ratelimit-bucket", "abcd1234".to_string()),
    ] {
        headers.insert(name, HeaderValue::from_str(&value).unwrap());
    }
    if query.get("wait").map(String::as_str) == Some("true") {
        (
            headers,
            axum::Json(json!({
                "id": message_id,
                "type": 0,
                "content": content,
                "channel_id": "987654321098765432",
                "webhook_id": DISCORD_WEBHOOK_ID,
            })),
        )
            .into_response()
    } else {
        (StatusCode::NO_CONTENT, headers).into_response()
    }
}
