//! A local imitation of X's OAuth 2.0 and API v2 (axum on 127.0.0.1:0), following the
//! documented contract, with the faults the tests need. Documents followed:
//! - OAuth 2.0 Authorization Code with PKCE (`/i/oauth2/authorize` with an S256
//!   challenge; `POST /2/oauth2/token` with Basic client authentication; 2-hour access
//!   tokens; refresh tokens with `offline.access`, each usable once):
//!   https://docs.x.com/fundamentals/authentication/oauth-2-0/authorization-code ,
//!   https://docs.x.com/fundamentals/authentication/oauth-2-0/user-access-token
//! - `POST /2/tweets` → 201 `{"data": {"id", "text"}}`; a repeated text is refused with
//!   403 "You are not allowed to create a Tweet with duplicate content.":
//!   https://docs.x.com/x-api/posts/creation-of-a-post
//! - `GET /2/users/me`, `GET /2/users/{id}/tweets` (links shown as t.co)
//! - rate limits: `x-rate-limit-limit/-remaining/-reset` on every answer, 429 when spent:
//!   https://docs.x.com/fundamentals/rate-limits
//!
//! The authorization page stands for a person who signs in and allows what is asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const X_CLIENT_ID: &str = "rG9n6402A3dbUJKzXTNX4oWHJ";
pub const X_CLIENT_SECRET: &str = "x-client-secret-1234";
pub const X_USER_ID: &str = "2244994945";
pub const X_USERNAME: &str = "striker_on_x";

#[derive(Debug, Clone)]
pub struct Tweet {
    pub id: String,
    pub text: String,
}

#[derive(Default)]
pub struct XInner {
    next: u64,
    /// code → (redirect, challenge, scope)
    codes: HashMap<String, (String, String, String)>,
    pub access: Vec<String>,
    /// Refresh tokens not used yet.
    pub refresh: Vec<String>,
    /// Every refresh made.
    pub refreshes: usize,
    pub tweets: Vec<Tweet>,
    pub scopes_asked: Vec<String>,
    /// Every access token issued so far has expired.
    pub access_expired: bool,
    /// Posts left in the window; `None`: plenty.
    pub remaining: Option<u64>,
    pub lose_next_answer: bool,
    pub requests: Vec<String>,
}

#[derive(Clone)]
pub struct XFake {
    pub base: String,
    pub inner: Arc<Mutex<XInner>>,
}

/// When the fake's rate-limit window resets: a fixed ten minutes from the answer.
pub fn fake_reset() -> i64 {
    chrono::Utc::now().timestamp() + 600
}

fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "title": title,
            "detail": detail,
            "type": "about:blank",
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

fn t_co(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            if w.starts_with("https://") || w.starts_with("http://") {
                "https://t.co/AbCdEf1234".to_string()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl XFake {
    pub async fn start() -> XFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = XFake {
            base: format!("http://{}", listener.local_addr().unwrap()),
            inner: Arc::default(),
        };
        let router = Router::new()
            .route("/i/oauth2/authorize", get(authorize))
            .route("/2/oauth2/token", post(token))
            .route("/2/users/me", get(me))
            .route("/2/users/{id}/tweets", get(timeline))
            .route("/2/tweets", post(create))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        fake
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, XInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn settings(&self) -> String {
        format!(
            "[x]\nclient_id = \"{X_CLIENT_ID}\"\nclient_secret = \"{X_CLIENT_SECRET}\"\napi_base = \"{}\"\nauth_base = \"{}\"\n",
            self.base, self.base
        )
    }

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

    fn id(&self) -> u64 {
        let mut i = self.lock();
        i.next += 1;
        1_445_880_548_472_328_192 + i.next
    }

    fn bearer(&self, headers: &HeaderMap) -> Result<(), Box<Response>> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let i = self.lock();
        if !i.access.iter().any(|a| a == token) || i.access_expired {
            return Err(Box::new(problem(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "Unauthorized",
            )));
        }
        Ok(())
    }

    fn pair(&self, with_refresh: bool) -> Value {
        let access = format!("acc{}", self.id());
        let refresh = format!("ref{}", self.id());
        let mut i = self.lock();
        i.access.push(access.clone());
        i.access_expired = false;
        let mut answer = json!({
            "token_type": "bearer",
            "expires_in": 7200,
            "access_token": access,
            "scope": "tweet.write tweet.read users.read offline.access",
        });
        if with_refresh {
            i.refresh.push(refresh.clone());
            answer["refresh_token"] = json!(refresh);
        }
        answer
    }
}

type Params = HashMap<String, String>;

fn oauth_error(desc: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": "invalid_request", "error_description": desc })),
    )
        .into_response()
}

async fn authorize(State(f): State<XFake>, Query(q): Query<Params>) -> Response {
    f.lock().requests.push("GET /i/oauth2/authorize".into());
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code" || get("client_id") != X_CLIENT_ID {
        return oauth_error("Missing or invalid client_id / response_type");
    }
    if get("code_challenge").is_empty() || get("code_challenge_method") != "S256" {
        return oauth_error("PKCE: code_challenge with method S256 is required");
    }
    let scope = get("scope");
    let known = [
        "tweet.read",
        "tweet.write",
        "users.read",
        "offline.access",
        "follows.read",
        "follows.write",
        "like.write",
        "dm.write",
    ];
    if !scope.split(' ').all(|s| known.contains(&s)) {
        return oauth_error("Invalid scope");
    }
    f.lock().scopes_asked.push(scope.clone());
    let code = format!("code{}", f.id());
    f.lock().codes.insert(
        code.clone(),
        (get("redirect_uri"), get("code_challenge"), scope),
    );
    let mut back = url::Url::parse(&get("redirect_uri")).unwrap();
    back.query_pairs_mut()
        .append_pair("state", &get("state"))
        .append_pair("code", &code);
    Redirect::to(back.as_str()).into_response()
}

async fn token(State(f): State<XFake>, headers: HeaderMap, body: String) -> Response {
    f.lock().requests.push("POST /2/oauth2/token".into());
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{X_CLIENT_ID}:{X_CLIENT_SECRET}"))
    );
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(basic.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "unauthorized_client", "error_description": "Missing valid authorization header" })),
        )
            .into_response();
    }
    let p: Params = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    match get("grant_type").as_str() {
        "authorization_code" => {
            let Some((redirect, challenge, scope)) = f.lock().codes.remove(&get("code")) else {
                return oauth_error("Value passed for the authorization code was invalid.");
            };
            use sha2::Digest;
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(get("code_verifier").as_bytes()));
            if redirect != get("redirect_uri") || computed != challenge {
                return oauth_error(
                    "Value passed for the code_verifier or redirect_uri was invalid.",
                );
            }
            axum::Json(f.pair(scope.contains("offline.access"))).into_response()
        }
        "refresh_token" => {
            let token = get("refresh_token");
            let known = {
                let mut i = f.lock();
                match i.refresh.iter().position(|r| *r == token) {
                    Some(at) => {
                        // Single use: spent now.
                        i.refresh.remove(at);
                        i.refreshes += 1;
                        true
                    }
                    None => false,
                }
            };
            if !known {
                return oauth_error("Value passed for the token was invalid.");
            }
            axum::Json(f.pair(true)).into_response()
        }
        _ => oauth_error("Unsupported grant_type"),
    }
}

async fn me(State(f): State<XFake>, headers: HeaderMap) -> Response {
    f.lock().requests.push("GET /2/users/me".into());
    if let Err(e) = f.bearer(&headers) {
        return *e;
    }
    axum::Json(json!({ "data": { "id": X_USER_ID, "name": "Striker", "username": X_USERNAME } }))
        .into_response()
}

fn limits(remaining: u64) -> [(&'static str, String); 3] {
    [
        ("x-rate-limit-limit", "100".to_string()),
        ("x-rate-limit-remaining", remaining.to_string()),
        ("x-rate-limit-reset", fake_reset().to_string()),
    ]
}

async fn timeline(
    State(f): State<XFake>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<Params>,
) -> Response {
    f.lock().requests.push("GET /2/users/{id}/tweets".into());
    if let Err(e) = f.bearer(&headers) {
        return *e;
    }
    if id != X_USER_ID {
        return problem(StatusCode::FORBIDDEN, "Forbidden", "Not your timeline");
    }
    let max: usize = q
        .get("max_results")
        .and_then(|m| m.parse().ok())
        .unwrap_or(10);
    let data: Vec<Value> = f
        .lock()
        .tweets
        .iter()
        .rev()
        .take(max)
        .map(|t| {
            json!({
                "id": t.id,
                "text": t_co(&t.text),
                "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "edit_history_tweet_ids": [t.id],
            })
        })
        .collect();
    axum::Json(json!({ "data": data, "meta": { "result_count": data.len() } })).into_response()
}

async fn create(
    State(f): State<XFake>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    f.lock().requests.push("POST /2/tweets".into());
    if let Err(e) = f.bearer(&headers) {
        return *e;
    }
    let remaining = f.lock().remaining;
    if remaining == Some(0) {
        let mut resp = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "Too Many Requests",
        );
        for (k, v) in limits(0) {
            resp.headers_mut().insert(k, v.parse().unwrap());
        }
        return resp;
    }
    let Some(text) = body["text"].as_str().map(str::to_string) else {
        return problem(
            StatusCode::BAD_REQUEST,
            "Invalid Request",
            "text is required",
        );
    };
    if f.lock().tweets.iter().any(|t| t.text == text) {
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "You are not allowed to create a Tweet with duplicate content.",
        );
    }
    let id = f.id().to_string();
    let lose = {
        let mut i = f.lock();
        i.tweets.push(Tweet {
            id: id.clone(),
            text: text.clone(),
        });
        if let Some(r) = i.remaining.as_mut() {
            *r -= 1;
        }
        std::mem::take(&mut i.lose_next_answer)
    };
    if lose {
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    let left = f.lock().remaining.unwrap_or(99);
    let mut resp = (
        StatusCode::CREATED,
        axum::Json(
            json!({ "data": { "id": id, "text": t_co(&text), "edit_history_tweet_ids": [id] } }),
        ),
    )
        .into_response();
    for (k, v) in limits(left) {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}
