//! A local imitation of Meta's Threads API (axum on 127.0.0.1:0), following its documented
//! contract closely enough that the adapter cannot tell, and with the faults the tests
//! need. The documents it follows:
//! - authorization window and code exchange:
//!   https://developers.facebook.com/documentation/threads/get-started/get-access-tokens-and-permissions
//! - long-lived tokens (`th_exchange_token`, `th_refresh_token`):
//!   https://developers.facebook.com/docs/threads/get-started/long-lived-tokens/
//! - posts (container, then `threads_publish`), reading a user's threads:
//!   https://developers.facebook.com/docs/threads/posts/
//! - the 250 posts / 24 h quota and `threads_publishing_limit`:
//!   https://developers.facebook.com/docs/threads/overview/
//! - error answers (`{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`,
//!   190 for an expired token, 4 for too many calls):
//!   https://developers.facebook.com/docs/graph-api/guides/error-handling
//!
//! The authorization window does not show a page: it stands for a person who signs in as
//! [`FAKE_USERNAME`] and allows every permission asked, and redirects at once (with the
//! `#_` Meta appends). Parameters are read from the query string and a form body alike, as
//! the Graph API does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const FAKE_CLIENT_ID: &str = "990602627938098";
pub const FAKE_CLIENT_SECRET: &str = "a1b2C3D4-threads-secret";
pub const FAKE_USER_ID: &str = "17841400000000001";
pub const FAKE_USERNAME: &str = "striker.on.threads";

/// A thread as published.
#[derive(Debug, Clone)]
pub struct FakeThread {
    pub id: String,
    pub text: String,
    pub permalink: String,
}

/// What the tests can see and change.
#[derive(Default)]
pub struct Inner {
    next: u64,
    codes: HashMap<String, String>,
    short_tokens: Vec<String>,
    pub long_tokens: Vec<String>,
    containers: HashMap<String, String>,
    pub threads: Vec<FakeThread>,
    /// Scopes the authorization window was asked for, as given.
    pub scopes_asked: Vec<String>,
    /// Every token refresh made.
    pub refreshes: usize,
    /// Posts published over the API in the moving day (starts from this).
    pub quota_usage: u64,
    /// Every long-lived token is refused as expired (190).
    pub tokens_expired: bool,
    /// The next API call is throttled (code 4).
    pub throttle_next: bool,
    /// The next publish is made, then its answer never comes.
    pub lose_next_publish_answer: bool,
    /// Each request, "METHOD /path".
    pub requests: Vec<String>,
}

#[derive(Clone)]
pub struct ThreadsFake {
    pub base: String,
    pub inner: Arc<Mutex<Inner>>,
}

type Params = HashMap<String, String>;

fn graph_error(status: StatusCode, kind: &str, code: i64, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "error": {
                "message": message,
                "type": kind,
                "code": code,
                "error_subcode": if code == 190 { json!(463) } else { Value::Null },
                "fbtrace_id": "AbCdEfGh123",
            }
        })),
    )
        .into_response()
}

fn bad_param(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "OAuthException", 100, message)
}

/// The query string and a form body, merged (the body wins).
fn params(query: Params, body: &str) -> Params {
    let mut all = query;
    all.extend(url::form_urlencoded::parse(body.as_bytes()).into_owned());
    all
}

impl ThreadsFake {
    pub async fn start() -> ThreadsFake {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let fake = ThreadsFake {
            base: base.clone(),
            inner,
        };
        let router = Router::new()
            .route("/oauth/authorize", get(authorize))
            .route("/oauth/access_token", post(code_for_token))
            .route("/access_token", get(exchange))
            .route("/refresh_access_token", get(refresh))
            .route("/v1.0/me", get(me))
            .route("/v1.0/{user}/threads", post(create).get(list))
            .route("/v1.0/{user}/threads_publish", post(publish))
            .route("/v1.0/{user}/threads_publishing_limit", get(limit))
            .route("/v1.0/{media}", get(media))
            .with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        fake
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `[threads]` settings that point picket at this fake.
    pub fn settings(&self) -> String {
        format!(
            "[threads]\nclient_id = \"{FAKE_CLIENT_ID}\"\nclient_secret = \"{FAKE_CLIENT_SECRET}\"\napi_base = \"{}\"\nauth_base = \"{}\"\n",
            self.base, self.base
        )
    }

    /// What the person's browser is sent to after allowing picket at `authorize_url`.
    pub async fn approve(&self, authorize_url: &str) -> String {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let resp = http.get(authorize_url).send().await.unwrap();
        assert!(
            resp.status().is_redirection(),
            "{}",
            resp.text().await.unwrap()
        );
        resp.headers()["location"].to_str().unwrap().to_string()
    }

    fn id(&self, prefix: &str) -> String {
        let mut i = self.lock();
        i.next += 1;
        format!("{prefix}{}", 18_000_000_000 + i.next)
    }

    fn note(&self, what: String) {
        self.lock().requests.push(what);
    }

    /// Checks a user token; the error answer when it is refused.
    fn check_token(&self, p: &Params) -> Result<(), Box<Response>> {
        let i = self.lock();
        let Some(token) = p.get("access_token") else {
            return Err(Box::new(graph_error(
                StatusCode::BAD_REQUEST,
                "OAuthException",
                2500,
                "An active access token must be used to query information about the current user.",
            )));
        };
        if !i.long_tokens.contains(token) && !i.short_tokens.contains(token) {
            return Err(Box::new(graph_error(
                StatusCode::BAD_REQUEST,
                "OAuthException",
                190,
                "Invalid OAuth access token - Cannot parse access token",
            )));
        }
        if i.tokens_expired && i.long_tokens.contains(token) {
            return Err(Box::new(graph_error(
                StatusCode::BAD_REQUEST,
                "OAuthException",
                190,
                "Error validating access token: Session has expired on Sunday, 06-Dec-26 10:00:00 PST.",
            )));
        }
        Ok(())
    }

    /// An API call: the token checked, a throttle answered when one is set.
    fn api_call(&self, p: &Params) -> Result<(), Box<Response>> {
        self.check_token(p)?;
        let mut i = self.lock();
        if std::mem::take(&mut i.throttle_next) {
            return Err(Box::new(graph_error(
                StatusCode::BAD_REQUEST,
                "OAuthException",
                4,
                "Application request limit reached",
            )));
        }
        Ok(())
    }
}

async fn authorize(State(f): State<ThreadsFake>, Query(q): Query<Params>) -> Response {
    f.note("GET /oauth/authorize".into());
    if q.get("client_id").map(String::as_str) != Some(FAKE_CLIENT_ID) {
        return bad_param("Invalid platform app");
    }
    if q.get("response_type").map(String::as_str) != Some("code") {
        return bad_param("response_type must be code");
    }
    let Some(redirect) = q.get("redirect_uri") else {
        return bad_param("redirect_uri is required");
    };
    let scope = q.get("scope").cloned().unwrap_or_default();
    let known = [
        "threads_basic",
        "threads_content_publish",
        "threads_manage_replies",
        "threads_read_replies",
        "threads_manage_insights",
        "threads_keyword_search",
    ];
    if !scope.split(',').all(|s| known.contains(&s)) || !scope.contains("threads_basic") {
        return bad_param("Invalid Scopes");
    }
    f.lock().scopes_asked.push(scope);
    let code = f.id("AQ");
    f.lock().codes.insert(code.clone(), redirect.clone());
    let mut back = url::Url::parse(redirect).unwrap();
    back.query_pairs_mut().append_pair("code", &code);
    if let Some(state) = q.get("state") {
        back.query_pairs_mut().append_pair("state", state);
    }
    Redirect::to(&format!("{back}#_")).into_response()
}

async fn code_for_token(
    State(f): State<ThreadsFake>,
    Query(q): Query<Params>,
    body: String,
) -> Response {
    f.note("POST /oauth/access_token".into());
    let p = params(q, &body);
    if p.get("client_id").map(String::as_str) != Some(FAKE_CLIENT_ID)
        || p.get("client_secret").map(String::as_str) != Some(FAKE_CLIENT_SECRET)
    {
        return bad_param("Error validating client secret.");
    }
    if p.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return bad_param("Unsupported grant_type");
    }
    let code = p.get("code").cloned().unwrap_or_default();
    let redirect = f.lock().codes.remove(&code);
    match redirect {
        Some(r) if Some(&r) == p.get("redirect_uri") => {}
        Some(_) => {
            return bad_param(
                "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
            );
        }
        None => return bad_param("This authorization code has been used."),
    }
    let token = format!("THQVJ{}short", f.id(""));
    f.lock().short_tokens.push(token.clone());
    axum::Json(json!({ "access_token": token, "user_id": FAKE_USER_ID.parse::<u64>().unwrap() }))
        .into_response()
}

async fn exchange(State(f): State<ThreadsFake>, Query(q): Query<Params>) -> Response {
    f.note("GET /access_token".into());
    if q.get("grant_type").map(String::as_str) != Some("th_exchange_token")
        || q.get("client_secret").map(String::as_str) != Some(FAKE_CLIENT_SECRET)
    {
        return bad_param("Error validating client secret.");
    }
    let short = q.get("access_token").cloned().unwrap_or_default();
    if !f.lock().short_tokens.contains(&short) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "OAuthException",
            190,
            "Invalid OAuth access token",
        );
    }
    long_token(&f)
}

fn long_token(f: &ThreadsFake) -> Response {
    let token = format!("THAAlong{}", f.id(""));
    f.lock().long_tokens.push(token.clone());
    axum::Json(json!({ "access_token": token, "token_type": "bearer", "expires_in": 5183944 }))
        .into_response()
}

async fn refresh(State(f): State<ThreadsFake>, Query(q): Query<Params>) -> Response {
    f.note("GET /refresh_access_token".into());
    if q.get("grant_type").map(String::as_str) != Some("th_refresh_token") {
        return bad_param("Unsupported grant_type");
    }
    let token = q.get("access_token").cloned().unwrap_or_default();
    if !f.lock().long_tokens.contains(&token) {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "OAuthException",
            190,
            "Invalid OAuth access token",
        );
    }
    f.lock().refreshes += 1;
    long_token(&f)
}

async fn me(State(f): State<ThreadsFake>, Query(q): Query<Params>) -> Response {
    f.note("GET /v1.0/me".into());
    if let Err(e) = f.check_token(&q) {
        return *e;
    }
    axum::Json(json!({ "id": FAKE_USER_ID, "username": FAKE_USERNAME })).into_response()
}

fn own(user: &str) -> Result<(), Box<Response>> {
    if user == FAKE_USER_ID {
        Ok(())
    } else {
        Err(Box::new(graph_error(
            StatusCode::BAD_REQUEST,
            "THApiException",
            100,
            "Unsupported request: the user does not exist or cannot be loaded due to missing permissions",
        )))
    }
}

async fn create(
    State(f): State<ThreadsFake>,
    Path(user): Path<String>,
    Query(q): Query<Params>,
    body: String,
) -> Response {
    f.note("POST /v1.0/{user}/threads".into());
    let p = params(q, &body);
    if let Err(e) = f.api_call(&p).and_then(|_| own(&user)) {
        return *e;
    }
    if p.get("media_type").map(String::as_str) != Some("TEXT") {
        return bad_param("media_type must be TEXT, IMAGE, VIDEO or CAROUSEL");
    }
    let Some(text) = p.get("text") else {
        return bad_param("text is required for TEXT posts");
    };
    if text.chars().count() > 500 {
        return bad_param("The text is too long (500 characters at most)");
    }
    let id = f.id("c");
    f.lock().containers.insert(id.clone(), text.clone());
    axum::Json(json!({ "id": id })).into_response()
}

async fn publish(
    State(f): State<ThreadsFake>,
    Path(user): Path<String>,
    Query(q): Query<Params>,
    body: String,
) -> Response {
    f.note("POST /v1.0/{user}/threads_publish".into());
    let p = params(q, &body);
    if let Err(e) = f.api_call(&p).and_then(|_| own(&user)) {
        return *e;
    }
    let creation = p.get("creation_id").cloned().unwrap_or_default();
    let Some(text) = f.lock().containers.remove(&creation) else {
        return bad_param("The media container was not found or was already published");
    };
    if f.lock().quota_usage >= 250 {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "THApiException",
            4,
            "The user has reached the 250 posts in 24 hours limit",
        );
    }
    let id = f.id("");
    let thread = FakeThread {
        permalink: format!("https://www.threads.net/@{FAKE_USERNAME}/post/{id}"),
        id: id.clone(),
        text,
    };
    let lose = {
        let mut i = f.lock();
        i.threads.push(thread);
        i.quota_usage += 1;
        std::mem::take(&mut i.lose_next_publish_answer)
    };
    if lose {
        // Published, and the answer never comes: longer than any client waits.
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    axum::Json(json!({ "id": id })).into_response()
}

async fn list(
    State(f): State<ThreadsFake>,
    Path(user): Path<String>,
    Query(q): Query<Params>,
) -> Response {
    f.note("GET /v1.0/{user}/threads".into());
    if let Err(e) = f.api_call(&q).and_then(|_| own(&user)) {
        return *e;
    }
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(25);
    let data: Vec<Value> = f
        .lock()
        .threads
        .iter()
        .rev()
        .take(limit)
        .map(|t| {
            json!({
                "id": t.id,
                "text": t.text,
                "permalink": t.permalink,
                "timestamp": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
            })
        })
        .collect();
    axum::Json(json!({ "data": data, "paging": { "cursors": {} } })).into_response()
}

async fn limit(
    State(f): State<ThreadsFake>,
    Path(user): Path<String>,
    Query(q): Query<Params>,
) -> Response {
    f.note("GET /v1.0/{user}/threads_publishing_limit".into());
    if let Err(e) = f.api_call(&q).and_then(|_| own(&user)) {
        return *e;
    }
    let usage = f.lock().quota_usage;
    axum::Json(json!({
        "data": [{ "quota_usage": usage, "config": { "quota_total": 250, "quota_duration": 86400 } }]
    }))
    .into_response()
}

async fn media(
    State(f): State<ThreadsFake>,
    Path(media): Path<String>,
    Query(q): Query<Params>,
    _headers: HeaderMap,
) -> Response {
    f.note("GET /v1.0/{media}".into());
    if let Err(e) = f.api_call(&q) {
        return *e;
    }
    let found = f.lock().threads.iter().find(|t| t.id == media).cloned();
    match found {
        Some(t) => axum::Json(json!({ "id": t.id, "permalink": t.permalink })).into_response(),
        None => bad_param("Unsupported get request. Object does not exist"),
    }
}
