//! A local imitation of Facebook Login and the Pages API (axum on 127.0.0.1:0), following
//! the documented contract, with the faults the tests need. Documents followed:
//! - the login dialog and code exchange (`/{version}/dialog/oauth`,
//!   `GET /{version}/oauth/access_token` with `client_id`, `redirect_uri`,
//!   `client_secret`, `code`):
//!   https://developers.facebook.com/docs/facebook-login/guides/advanced/manual-flow
//! - the long-lived user token (`grant_type=fb_exchange_token`):
//!   https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived
//! - the person's Pages with their tokens and tasks (`GET /me/accounts`), publishing
//!   (`POST /{page-id}/feed` with `message` → `{"id": "{page-id}_{post-id}"}`), the feed:
//!   https://developers.facebook.com/docs/pages-api/getting-started ,
//!   https://developers.facebook.com/docs/pages-api/posts
//! - errors (`{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`, 190 for
//!   an expired or invalidated token, 32 for a Page's rate limit):
//!   https://developers.facebook.com/docs/graph-api/guides/error-handling ; the
//!   `X-Business-Use-Case-Usage` header with `estimated_time_to_regain_access` (minutes):
//!   https://developers.facebook.com/docs/graph-api/overview/rate-limiting/
//!
//! The dialog stands for a person who manages two Pages, one of which they may post on,
//! and who allows what is asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;

pub const FB_CLIENT_ID: &str = "1234567890123456";
pub const FB_CLIENT_SECRET: &str = "fb-app-secret-abc";
pub const FB_PAGE_ID: &str = "101112131415";
pub const FB_PAGE_NAME: &str = "Strike Committee";

#[derive(Debug, Clone)]
pub struct PagePost {
    pub id: String,
    pub message: String,
}

#[derive(Default)]
pub struct FbInner {
    next: u64,
    codes: HashMap<String, String>,
    short: Vec<String>,
    long: Vec<String>,
    pub page_tokens: Vec<String>,
    pub posts: Vec<PagePost>,
    pub scopes_asked: Vec<String>,
    pub tokens_invalid: bool,
    pub throttle_next: bool,
    pub lose_next_answer: bool,
}

#[derive(Clone)]
pub struct FacebookFake {
    pub base: String,
    pub inner: Arc<Mutex<FbInner>>,
}

fn graph_error(code: i64, kind: &str, message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({
            "error": {
                "message": message,
                "type": kind,
                "code": code,
                "error_subcode": if code == 190 { json!(460) } else { json!(null) },
                "fbtrace_id": "AxYz123",
            }
        })),
    )
        .into_response()
}

type Params = HashMap<String, String>;

impl FacebookFake {
    pub async fn start() -> FacebookFake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = FacebookFake {
            base: format!("http://{}", listener.local_addr().unwrap()),
            inner: Arc::default(),
        };
        let router = Router::new()
            .route("/v24.0/dialog/oauth", get(dialog))
            .route("/v24.0/oauth/access_token", get(access_token))
            .route("/v24.0/me/accounts", get(accounts))
            .route("/v24.0/{page}/feed", get(feed).post(publish))
            .with_state(fake.clone());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        fake
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, FbInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn settings(&self) -> String {
        format!(
            "[facebook]\nclient_id = \"{FB_CLIENT_ID}\"\nclient_secret = \"{FB_CLIENT_SECRET}\"\napi_base = \"{}\"\nauth_base = \"{}\"\n",
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
        900_000_000 + i.next
    }

    fn page_token(&self, p: &Params) -> Result<(), Box<Response>> {
        let i = self.lock();
        let token = p.get("access_token").cloned().unwrap_or_default();
        if !i.page_tokens.contains(&token) || i.tokens_invalid {
            return Err(Box::new(graph_error(
                190,
                "OAuthException",
                "Error validating access token: The session has been invalidated because the user changed their password.",
            )));
        }
        Ok(())
    }
}

async fn dialog(State(f): State<FacebookFake>, Query(q): Query<Params>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("client_id") != FB_CLIENT_ID || get("response_type") != "code" {
        return graph_error(101, "OAuthException", "Error validating application.");
    }
    let scope = get("scope");
    let known = [
        "pages_manage_posts",
        "pages_read_engagement",
        "pages_show_list",
        "pages_manage_metadata",
        "public_profile",
    ];
    if !scope.split(',').all(|s| known.contains(&s)) {
        return graph_error(100, "OAuthException", "Invalid Scopes");
    }
    f.lock().scopes_asked.push(scope);
    let code = format!("fbcode{}", f.id());
    f.lock().codes.insert(code.clone(), get("redirect_uri"));
    let mut back = url::Url::parse(&get("redirect_uri")).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"));
    Redirect::to(&format!("{back}#_=_")).into_response()
}

async fn access_token(State(f): State<FacebookFake>, Query(q): Query<Params>) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("client_id") != FB_CLIENT_ID || get("client_secret") != FB_CLIENT_SECRET {
        return graph_error(1, "OAuthException", "Error validating client secret.");
    }
    if get("grant_type") == "fb_exchange_token" {
        let short = get("fb_exchange_token");
        if !f.lock().short.contains(&short) {
            return graph_error(190, "OAuthException", "Invalid OAuth access token.");
        }
        let long = format!("EAAlong{}", f.id());
        f.lock().long.push(long.clone());
        return axum::Json(
            json!({ "access_token": long, "token_type": "bearer", "expires_in": 5_183_944 }),
        )
        .into_response();
    }
    let redirect = f.lock().codes.remove(&get("code"));
    if redirect.as_deref() != Some(get("redirect_uri").as_str()) {
        return graph_error(
            100,
            "OAuthException",
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
        );
    }
    let short = format!("EAAshort{}", f.id());
    f.lock().short.push(short.clone());
    axum::Json(json!({ "access_token": short, "token_type": "bearer", "expires_in": 5_400 }))
        .into_response()
}

async fn accounts(State(f): State<FacebookFake>, Query(q): Query<Params>) -> Response {
    let token = q.get("access_token").cloned().unwrap_or_default();
    if !f.lock().long.contains(&token) {
        return graph_error(190, "OAuthException", "Invalid OAuth access token.");
    }
    let page_token = format!("EAApage{}", f.id());
    f.lock().page_tokens.push(page_token.clone());
    axum::Json(json!({
        "data": [
            {
                "access_token": page_token,
                "category": "Community",
                "category_list": [{ "id": "2612", "name": "Community" }],
                "name": FB_PAGE_NAME,
                "id": FB_PAGE_ID,
                "tasks": ["ANALYZE", "ADVERTISE", "MODERATE", "CREATE_CONTENT", "MANAGE"],
            },
            {
                "access_token": "EAAother",
                "category": "Band",
                "name": "A Page they only analyse",
                "id": "999",
                "tasks": ["ANALYZE"],
            }
        ],
        "paging": { "cursors": { "before": "a", "after": "b" } }
    }))
    .into_response()
}

async fn feed(
    State(f): State<FacebookFake>,
    Path(page): Path<String>,
    Query(q): Query<Params>,
) -> Response {
    if let Err(e) = f.page_token(&q) {
        return *e;
    }
    if page != FB_PAGE_ID {
        return graph_error(100, "GraphMethodException", "Unsupported get request.");
    }
    let data: Vec<_> = f
        .lock()
        .posts
        .iter()
        .rev()
        .map(|p| {
            json!({
                "id": p.id,
                "message": p.message,
                "created_time": chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S+0000").to_string(),
                "permalink_url": format!("https://www.facebook.com/{}", p.id),
            })
        })
        .collect();
    axum::Json(json!({ "data": data })).into_response()
}

async fn publish(
    State(f): State<FacebookFake>,
    Path(page): Path<String>,
    Query(q): Query<Params>,
    body: String,
) -> Response {
    let mut p = q;
    p.extend(url::form_urlencoded::parse(body.as_bytes()).into_owned());
    if let Err(e) = f.page_token(&p) {
        return *e;
    }
    if page != FB_PAGE_ID {
        return graph_error(
            200,
            "OAuthException",
            "(#200) Requires pages_manage_posts permission",
        );
    }
    if std::mem::take(&mut f.lock().throttle_next) {
        // Pages are rate limited per business use case; the header says when access comes
        // back (https://developers.facebook.com/docs/graph-api/overview/rate-limiting/).
        let mut resp = graph_error(32, "OAuthException", "Page request limit reached");
        let usage = format!(
            r#"{{"{FB_PAGE_ID}":[{{"type":"pages","call_count":100,"total_cputime":12,"total_time":25,"estimated_time_to_regain_access":7}}]}}"#
        );
        resp.headers_mut()
            .insert("x-business-use-case-usage", usage.parse().unwrap());
        return resp;
    }
    let Some(message) = p.get("message").cloned() else {
        return graph_error(100, "OAuthException", "(#100) message is required");
    };
    let id = format!("{FB_PAGE_ID}_{}", f.id());
    let lose = {
        let mut i = f.lock();
        i.posts.push(PagePost {
            id: id.clone(),
            message,
        });
        std::mem::take(&mut i.lose_next_answer)
    };
    if lose {
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    axum::Json(json!({ "id": id })).into_response()
}
