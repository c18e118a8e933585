//! A local imitation of LinkedIn's OAuth and Posts API (axum on 127.0.0.1:0), following
//! the documented contract, with the faults the tests need. Documents followed:
//! - 3-legged OAuth (`/oauth/v2/authorization`, `/oauth/v2/accessToken`, 60-day tokens):
//!   https://learn.microsoft.com/en-us/linkedin/shared/authentication/authorization-code-flow
//! - `GET /v2/userinfo` (OpenID Connect: `sub`, `name`):
//!   https://learn.microsoft.com/en-us/linkedin/consumer/integrations/self-serve/sign-in-with-linkedin-v2
//! - `POST /rest/posts` (`LinkedIn-Version`, `X-Restli-Protocol-Version: 2.0.0`, the body's
//!   fields, 201 with the URN in `x-restli-id`):
//!   https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/posts-api
//! - little text format (the fake reads the commentary as LinkedIn does: escapes and the
//!   hashtag template; an unescaped reserved character cuts the text there):
//!   https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/little-text-format
//! - errors (`{"status", "serviceErrorCode", "code", "message"}`; 401 for a revoked or
//!   expired token, 429 when throttled, 422 for a duplicate):
//!   https://learn.microsoft.com/en-us/linkedin/shared/api-guide/concepts/error-handling
//!
//! The authorization page stands for a member who signs in and allows what is asked; it
//! redirects at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

pub const LI_CLIENT_ID: &str = "78abcdefgh1234";
pub const LI_CLIENT_SECRET: &str = "WPL_AP1.linkedin-secret";
pub const LI_SUB: &str = "782bbtaQ";
pub const LI_NAME: &str = "Lin Striker";

/// A post as LinkedIn shows it.
#[derive(Debug, Clone)]
pub struct LinkedInPost {
    pub urn: String,
    /// The commentary as it reads on LinkedIn (little text parsed).
    pub text: String,
    /// Hashtags LinkedIn recognised.
    pub hashtags: Vec<String>,
}

#[derive(Default)]
pub struct LiInner {
    next: u64,
    codes: HashMap<String, String>,
    tokens: Vec<String>,
    pub posts: Vec<LinkedInPost>,
    pub scopes_asked: Vec<String>,
    pub revoked: bool,
    pub throttle_next: bool,
    pub lose_next_answer: bool,
    pub requests: Vec<String>,
}

#[derive(Clone)]
pub struct LinkedInFake {
    pub base: String,
    pub inner: Arc<Mutex<LiInner>>,
}

fn li_error(status: StatusCode, service: u32, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "status": status.as_u16(),
            "serviceErrorCode": service,
            "code": code,
            "message": message,
        })),
    )
        .into_response()
}

/// What LinkedIn shows for a little-format commentary, and its hashtags. An unescaped
/// reserved character that starts no element ends the text (LinkedIn's silent cut).
pub fn read_little(s: &str) -> (String, Vec<String>) {
    const RESERVED: &str = "\\|{}@[]()<>#*_~";
    let mut out = String::new();
    let mut tags = Vec::new();
    let mut rest = s;
    while let Some(c) = rest.chars().next() {
        if c == '\\' {
            let mut it = rest.chars();
            it.next();
            match it.next() {
                Some(n) if RESERVED.contains(n) => {
                    out.push(n);
                    rest = &rest[1 + n.len_utf8()..];
                    continue;
                }
                _ => break,
            }
        }
        if let Some(t) = rest.strip_prefix("{hashtag|\\#|") {
            let Some(end) = t.find('}') else { break };
            let (tag, _) = read_little(&t[..end]);
            out.push('#');
            out.push_str(&tag);
            tags.push(tag);
            rest = &t[end + 1..];
            continue;
        }
        if RESERVED.contains(c) {
            break;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    (out, tags)
}

impl LinkedInFake {
    pub async fn start() -> LinkedInFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = LinkedInFake {
            base: format!("http://{}", listener.local_addr().unwrap()),
            inner: Arc::default(),
        };
        let router = Router::new()
            .route("/oauth/v2/authorization", get(authorize))
            .route("/oauth/v2/accessToken", post(access_token))
            .route("/v2/userinfo", get(userinfo))
            .route("/rest/posts", post(create))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        fake
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, LiInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn settings(&self) -> String {
        format!(
            "[linkedin]\nclient_id = \"{LI_CLIENT_ID}\"\nclient_secret = \"{LI_CLIENT_SECRET}\"\napi_base = \"{}\"\nauth_base = \"{}\"\n",
            self.base, self.base
        )
    }

    /// Where the member's browser is sent after allowing picket.
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
        7_100_000_000_000_000_000 + i.next
    }

    /// The bearer token, checked; the error answer otherwise.
    fn bearer(&self, headers: &HeaderMap) -> Result<(), Box<Response>> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_string();
        let i = self.lock();
        if !i.tokens.contains(&token) {
            return Err(Box::new(li_error(
                StatusCode::UNAUTHORIZED,
                65600,
                "INVALID_ACCESS_TOKEN",
                "Invalid access token",
            )));
        }
        if i.revoked {
            return Err(Box::new(li_error(
                StatusCode::UNAUTHORIZED,
                65601,
                "REVOKED_ACCESS_TOKEN",
                "The token used in the request has been revoked by the user",
            )));
        }
        Ok(())
    }
}

type Params = HashMap<String, String>;

async fn authorize(State(f): State<LinkedInFake>, Query(q): Query<Params>) -> Response {
    f.lock().requests.push("GET /oauth/v2/authorization".into());
    let bad = |m: &str| li_error(StatusCode::BAD_REQUEST, 0, "INVALID_REQUEST", m);
    if q.get("response_type").map(String::as_str) != Some("code")
        || q.get("client_id").map(String::as_str) != Some(LI_CLIENT_ID)
    {
        return bad("invalid client_id or response_type");
    }
    let scope = q.get("scope").cloned().unwrap_or_default();
    let known = [
        "openid",
        "profile",
        "email",
        "w_member_social",
        "r_member_social",
    ];
    if !scope.split(' ').all(|s| known.contains(&s)) {
        return bad("Scope \"x\" is not authorized for your application");
    }
    f.lock().scopes_asked.push(scope);
    let Some(redirect) = q.get("redirect_uri") else {
        return bad("redirect_uri is required");
    };
    let code = format!("AQT{}", f.id());
    f.lock().codes.insert(code.clone(), redirect.clone());
    let mut back = url::Url::parse(redirect).unwrap();
    back.query_pairs_mut().append_pair("code", &code);
    if let Some(s) = q.get("state") {
        back.query_pairs_mut().append_pair("state", s);
    }
    Redirect::to(back.as_str()).into_response()
}

async fn access_token(State(f): State<LinkedInFake>, body: String) -> Response {
    f.lock().requests.push("POST /oauth/v2/accessToken".into());
    let p: Params = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let bad = |m: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({ "error": "invalid_request", "error_description": m })),
        )
            .into_response()
    };
    if p.get("grant_type").map(String::as_str) != Some("authorization_code")
        || p.get("client_id").map(String::as_str) != Some(LI_CLIENT_ID)
        || p.get("client_secret").map(String::as_str) != Some(LI_CLIENT_SECRET)
    {
        return bad("A required parameter \"client_secret\" is missing or wrong");
    }
    let code = p.get("code").cloned().unwrap_or_default();
    let redirect = f.lock().codes.remove(&code);
    if redirect.is_none() || redirect.as_ref() != p.get("redirect_uri") {
        return bad(
            "Unable to retrieve access token: appid/redirect uri/code verifier does not match authorization code",
        );
    }
    let token = format!("AQV{}li", f.id());
    f.lock().tokens.push(token.clone());
    let scopes = f.lock().scopes_asked.last().cloned().unwrap_or_default();
    axum::Json(json!({
        "access_token": token,
        "expires_in": 5_184_000,
        "scope": scopes.replace(' ', ","),
        "token_type": "Bearer",
        "id_token": "eyJ.not-checked.here",
    }))
    .into_response()
}

async fn userinfo(State(f): State<LinkedInFake>, headers: HeaderMap) -> Response {
    f.lock().requests.push("GET /v2/userinfo".into());
    if let Err(e) = f.bearer(&headers) {
        return *e;
    }
    axum::Json(json!({
        "sub": LI_SUB,
        "name": LI_NAME,
        "given_name": "Lin",
        "family_name": "Striker",
        "locale": { "country": "US", "language": "en" },
    }))
    .into_response()
}

async fn create(
    State(f): State<LinkedInFake>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    f.lock().requests.push("POST /rest/posts".into());
    if let Err(e) = f.bearer(&headers) {
        return *e;
    }
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let version = header("linkedin-version");
    if version.len() != 6 || !version.bytes().all(|b| b.is_ascii_digit()) {
        return li_error(
            StatusCode::BAD_REQUEST,
            0,
            "VERSION_MISSING",
            "A version must be present. Please specify a version by adding the LinkedIn-Version header.",
        );
    }
    if header("x-restli-protocol-version") != "2.0.0" {
        return li_error(
            StatusCode::BAD_REQUEST,
            0,
            "INVALID_REQUEST",
            "Rest.li 2.0.0 expected",
        );
    }
    if std::mem::take(&mut f.lock().throttle_next) {
        return li_error(
            StatusCode::TOO_MANY_REQUESTS,
            101,
            "TOO_MANY_REQUESTS",
            "Resource level throttle APPLICATION MEMBER DAY limit for calls to this resource is reached.",
        );
    }
    let shape_ok = body["author"] == format!("urn:li:person:{LI_SUB}")
        && body["visibility"] == "PUBLIC"
        && body["lifecycleState"] == "PUBLISHED"
        && body["distribution"]["feedDistribution"] == "MAIN_FEED"
        && body["commentary"].is_string();
    if !shape_ok {
        return li_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            100,
            "UNPROCESSABLE_ENTITY",
            "ERROR :: /author :: the author is not the member, or a required field is missing",
        );
    }
    let (text, hashtags) = read_little(body["commentary"].as_str().unwrap());
    if let Some(dup) = f.lock().posts.iter().find(|p| p.text == text) {
        return li_error(
            StatusCode::UNPROCESSABLE_ENTITY,
            0,
            "DUPLICATE_POST",
            &format!("Content is a duplicate of {}", dup.urn),
        );
    }
    let urn = format!("urn:li:share:{}", f.id());
    let lose = {
        let mut i = f.lock();
        i.posts.push(LinkedInPost {
            urn: urn.clone(),
            text,
            hashtags,
        });
        std::mem::take(&mut i.lose_next_answer)
    };
    if lose {
        // Posted, and the answer never comes: longer than any client waits.
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    (StatusCode::CREATED, [("x-restli-id", urn)]).into_response()
}
