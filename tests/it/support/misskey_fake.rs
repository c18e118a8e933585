//! A local imitation of a Misskey-API server (axum on 127.0.0.1:0), following the
//! documented contract, with the faults the tests need. Source: misskey-hub.net, the
//! developer documentation ("MiAuth", "API" and the endpoint reference at
//! misskey-hub.net/en/docs/for-developers/api/ and /api/endpoints/):
//! - every endpoint is `POST /api/<name>` with a JSON body; the token goes in the body as
//!   `i`; errors are `{"error": {"message", "code", "id", "kind"}}` with 400 (bad
//!   parameters), 401 `AUTHENTICATION_FAILED`, 403 `PERMISSION_DENIED` (the token lacks
//!   the endpoint's permission), 429 `RATE_LIMIT_EXCEEDED`, 500 `INTERNAL_ERROR`;
//! - MiAuth: the person opens `/miauth/{session}?name=&permission=&callback=`, allows the
//!   app, and is sent to `callback?session=`; `POST /api/miauth/{session}/check` then
//!   answers `{"ok": true, "token", "user"}` (and `{"ok": false}` before);
//! - `api/meta` answers the server's `maxNoteTextLength` and `version`;
//! - `notes/create` (`write:notes`) with `text` and `visibility`, answering
//!   `{"createdNote": Note}`; the text is trimmed and refused over `maxNoteTextLength`;
//! - `users/notes` (no credential needed for public notes) with `userId`, `limit`,
//!   `sinceDate`: the user's notes, newest first;
//! - `i` needs `read:account`; `notes/delete` (`write:notes`) with `noteId`.
//!
//! The MiAuth page stands for a person who signs in and allows what is asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const MISSKEY_USER_ID: &str = "9xyzabc123";
pub const MISSKEY_USERNAME: &str = "striker";

#[derive(Debug, Clone)]
pub struct MisskeyNote {
    pub id: String,
    pub text: String,
    pub created_ms: i64,
}

#[derive(Default)]
pub struct MisskeyInner {
    pub max_text: usize,
    /// session → permissions the person allowed (on the MiAuth page).
    allowed: HashMap<String, String>,
    /// token → permissions.
    pub tokens: HashMap<String, String>,
    /// The permissions each MiAuth page asked for.
    pub asked: Vec<String>,
    pub notes: Vec<MisskeyNote>,
    /// Create the next note, then never answer (the answer is lost).
    pub lose_next_answer: bool,
    /// `notes/create` requests made.
    pub creates: usize,
    /// `users/notes` requests made.
    pub reads: usize,
}

#[derive(Clone)]
pub struct MisskeyFake {
    pub base: String,
    pub inner: Arc<Mutex<MisskeyInner>>,
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "error": { "message": message, "code": code, "id": "00000000-0000-0000-0000-000000000000", "kind": "client" }
        })),
    )
        .into_response()
}

type Shared = Arc<Mutex<MisskeyInner>>;

impl MisskeyFake {
    pub async fn start(max_text: usize) -> MisskeyFake {
        let inner = Arc::new(Mutex::new(MisskeyInner {
            max_text,
            ..MisskeyInner::default()
        }));
        let router = Router::new()
            .route("/miauth/{session}", get(miauth_page))
            .route("/api/miauth/{session}/check", post(miauth_check))
            .route("/api/{*endpoint}", post(api))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        MisskeyFake { base, inner }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, MisskeyInner> {
        self.inner.lock().unwrap()
    }

    /// A person opens the MiAuth page `url` and allows it: where the browser goes next
    /// (the callback, or the page's own "done" when there is none).
    pub async fn approve(&self, url: &str) -> String {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = client.get(url).send().await.unwrap();
        resp.headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("done")
            .to_string()
    }

    /// A token issued with `permission`, for the pasted-token path.
    pub fn issue_token(&self, permission: &str) -> String {
        let token = format!("tok{:029}", self.lock().tokens.len() + 1);
        self.lock().tokens.insert(token.clone(), permission.into());
        token
    }
}

async fn miauth_page(
    State(s): State<Shared>,
    Path(session): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let permission = q.get("permission").cloned().unwrap_or_default();
    {
        let mut i = s.lock().unwrap();
        i.asked.push(permission.clone());
        i.allowed.insert(session.clone(), permission);
    }
    match q.get("callback") {
        Some(cb) => {
            let sep = if cb.contains('?') { '&' } else { '?' };
            Redirect::to(&format!("{cb}{sep}session={session}")).into_response()
        }
        None => "You may close this page and go back to the app.".into_response(),
    }
}

async fn miauth_check(State(s): State<Shared>, Path(session): Path<String>) -> Response {
    let mut i = s.lock().unwrap();
    let Some(permission) = i.allowed.remove(&session) else {
        return axum::Json(json!({ "ok": false })).into_response();
    };
    let token = format!("miauth{:026}", i.tokens.len() + 1);
    i.tokens.insert(token.clone(), permission);
    axum::Json(json!({
        "ok": true,
        "token": token,
        "user": { "id": MISSKEY_USER_ID, "username": MISSKEY_USERNAME, "host": null, "name": "Striker" },
    }))
    .into_response()
}

fn note_json(n: &MisskeyNote) -> Value {
    json!({
        "id": n.id,
        "createdAt": chrono::DateTime::from_timestamp_millis(n.created_ms).unwrap().to_rfc3339(),
        "userId": MISSKEY_USER_ID,
        "text": n.text,
        "visibility": "public",
    })
}

async fn api(
    State(s): State<Shared>,
    Path(endpoint): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(b) = serde_json::from_slice::<Value>(&body) else {
        return error(StatusCode::BAD_REQUEST, "INVALID_PARAM", "Invalid param.");
    };
    // The permission the endpoint needs; `None`: no credential needed.
    let needs = match endpoint.as_str() {
        "meta" | "users/notes" => None,
        "i" => Some("read:account"),
        "notes/create" | "notes/delete" => Some("write:notes"),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                "NO_SUCH_ENDPOINT",
                "No such endpoint.",
            );
        }
    };
    if let Some(needed) = needs {
        let i = s.lock().unwrap();
        let Some(granted) = b["i"].as_str().and_then(|t| i.tokens.get(t)) else {
            return error(
                StatusCode::UNAUTHORIZED,
                "AUTHENTICATION_FAILED",
                "Authentication failed. Please ensure your token is correct.",
            );
        };
        if !granted.split(',').any(|p| p == needed) {
            return error(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                "Your app does not have the necessary permissions to use this endpoint.",
            );
        }
    }
    match endpoint.as_str() {
        "meta" => {
            let max = s.lock().unwrap().max_text;
            axum::Json(
                json!({ "maxNoteTextLength": max, "version": "2024.11.0", "name": "Misskey fake" }),
            )
            .into_response()
        }
        "i" => axum::Json(json!({ "id": MISSKEY_USER_ID, "username": MISSKEY_USERNAME }))
            .into_response(),
        "users/notes" => {
            let mut i = s.lock().unwrap();
            i.reads += 1;
            if b["userId"].as_str() != Some(MISSKEY_USER_ID) {
                return axum::Json(json!([])).into_response();
            }
            let since = b["sinceDate"].as_i64().unwrap_or(0);
            let limit = b["limit"].as_u64().unwrap_or(10) as usize;
            let notes: Vec<Value> = i
                .notes
                .iter()
                .rev()
                .filter(|n| n.created_ms > since)
                .take(limit)
                .map(note_json)
                .collect();
            axum::Json(notes).into_response()
        }
        "notes/create" => {
            let (note, lose) = {
                let mut i = s.lock().unwrap();
                i.creates += 1;
                let text = b["text"].as_str().unwrap_or_default().trim().to_string();
                if text.is_empty() {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "CONTENT_REQUIRED",
                        "Content required.",
                    );
                }
                if text.chars().count() > i.max_text {
                    return error(StatusCode::BAD_REQUEST, "TOO_LONG", "Text too long.");
                }
                let note = MisskeyNote {
                    id: format!("9n{:08}", i.notes.len() + 1),
                    text,
                    created_ms: chrono::Utc::now().timestamp_millis(),
                };
                i.notes.push(note.clone());
                (note, std::mem::take(&mut i.lose_next_answer))
            };
            if lose {
                // The note exists; its answer never comes.
                std::future::pending::<()>().await;
            }
            axum::Json(json!({ "createdNote": note_json(&note) })).into_response()
        }
        "notes/delete" => {
            let mut i = s.lock().unwrap();
            let id = b["noteId"].as_str().unwrap_or_default();
            let before = i.notes.len();
            i.notes.retain(|n| n.id != id);
            if i.notes.len() == before {
                return error(StatusCode::BAD_REQUEST, "NO_SUCH_NOTE", "No such note.");
            }
            StatusCode::NO_CONTENT.into_response()
        }
        _ => unreachable!("checked above"),
    }
}
