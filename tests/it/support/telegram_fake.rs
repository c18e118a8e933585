//! A local imitation of Telegram's Bot API `sendMessage` (axum on 127.0.0.1:0), following
//! the documented contract, with the faults the tests need. Documents followed:
//! - Making requests: `POST https://api.telegram.org/bot<token>/<method>`, JSON body; the
//!   answer is `{"ok": true, "result": ...}` or `{"ok": false, "error_code",
//!   "description"}`: https://core.telegram.org/bots/api#making-requests
//! - `sendMessage` with `chat_id` and `text`, answering the sent `Message` (`message_id`,
//!   `date`, `chat`, `text`): https://core.telegram.org/bots/api#sendmessage
//! - Flood limits: 429 with `parameters.retry_after`, the seconds to wait:
//!   https://core.telegram.org/bots/api#responseparameters and
//!   https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
//! - A wrong token answers 401 "Unauthorized"; a chat the bot cannot post in 403.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

pub const TELEGRAM_TOKEN: &str = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";

/// One message the bot sent.
#[derive(Debug, Clone)]
pub struct TelegramMessage {
    pub id: i64,
    pub chat: String,
    pub text: String,
}

#[derive(Default)]
pub struct TelegramInner {
    pub messages: Vec<TelegramMessage>,
    /// When each `sendMessage` request arrived.
    pub arrivals: Vec<Instant>,
    /// Requests still to refuse with a flood limit, and the `retry_after` they say.
    pub flood_first: usize,
    pub flood_secs: u64,
    /// Requests that came while a flood limit said to wait (a client ignoring it).
    pub too_early: usize,
    /// Until when the last flood limit said to wait.
    pub flood_until: Option<Instant>,
    /// Send the next message, then never answer (the answer is lost).
    pub lose_next_answer: bool,
}

#[derive(Clone)]
pub struct TelegramFake {
    /// The Bot API's base address (a channel's `api`).
    pub base: String,
    pub inner: Arc<Mutex<TelegramInner>>,
}

impl TelegramFake {
    pub async fn start(inner: TelegramInner) -> TelegramFake {
        let inner = Arc::new(Mutex::new(inner));
        let router = Router::new()
            .route("/{bot}/{method}", post(send_message))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        TelegramFake { base, inner }
    }

    pub fn messages(&self) -> Vec<TelegramMessage> {
        self.inner.lock().unwrap().messages.clone()
    }

    pub fn arrivals(&self) -> Vec<Instant> {
        self.inner.lock().unwrap().arrivals.clone()
    }
}

fn refuse(status: StatusCode, description: &str, parameters: Option<Value>) -> Response {
    let mut body = json!({
        "ok": false,
        "error_code": status.as_u16(),
        "description": description,
    });
    if let Some(p) = parameters {
        body["parameters"] = p;
    }
    (status, axum::Json(body)).into_response()
}

async fn send_message(
    State(inner): State<Arc<Mutex<TelegramInner>>>,
    Path((bot, method)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Response {
    if bot.strip_prefix("bot") != Some(TELEGRAM_TOKEN) {
        return refuse(StatusCode::UNAUTHORIZED, "Unauthorized", None);
    }
    if method != "sendMessage" {
        return refuse(StatusCode::NOT_FOUND, "Not Found: method not found", None);
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return refuse(StatusCode::BAD_REQUEST, "Bad Request: invalid JSON", None);
    };
    let (Some(chat), Some(text)) = (
        request["chat_id"]
            .as_str()
            .map(str::to_string)
            .or_else(|| request["chat_id"].as_i64().map(|n| n.to_string())),
        request["text"].as_str(),
    ) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Bad Request: chat_id and text are required",
            None,
        );
    };
    let lose = {
        let mut s = inner.lock().unwrap();
        let now = Instant::now();
        s.arrivals.push(now);
        if s.flood_until.is_some_and(|u| now < u) {
            s.too_early += 1;
        }
        if s.flood_first > 0 {
            s.flood_first -= 1;
            let secs = s.flood_secs;
            s.flood_until = Some(now + std::time::Duration::from_secs(secs));
            return refuse(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too Many Requests: retry after {secs}"),
                Some(json!({ "retry_after": secs })),
            );
        }
        let id = s.messages.len() as i64 + 1;
        s.messages.push(TelegramMessage {
            id,
            chat: chat.clone(),
            text: text.to_string(),
        });
        std::mem::take(&mut s.lose_next_answer)
            .then_some(())
            .map_or(Ok(id), Err)
    };
    match lose {
        Ok(id) => axum::Json(json!({
            "ok": true,
            "result": {
                "message_id": id,
                "date": chrono::Utc::now().timestamp(),
                "chat": { "id": -1001234567890i64, "type": "channel", "title": chat },
                "text": text,
            },
        }))
        .into_response(),
        Err(()) => {
            // The message is sent; its answer never comes.
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
}
