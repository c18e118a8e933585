//! The web side: axum routes for pages, forms and the JSON API. It writes to the store
//! and never posts to networks (only the scheduler does).

mod api;
pub(crate) mod campaign;
pub mod counts;
mod declaration;
mod error;
pub mod guard;
pub(crate) mod join;
mod me;
mod pages;
pub mod session;
pub mod signing;
mod widget;

use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};

use crate::campaign::Campaign;
use crate::clock::Clock;
use crate::config::Settings;
use crate::render::pages::Pages;
use crate::store::Store;

pub use error::WebError;

/// What every handler can reach. Cheap to clone: everything is behind an `Arc`.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub campaigns: Arc<Vec<Campaign>>,
    pub pages: Arc<Pages>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    /// The built-in sandbox network, served at `/sandbox` so demos need nothing else.
    pub sandbox: crate::sandbox::Receiver,
    /// Per-address budgets for public writes (signing).
    pub limits: guard::Limits,
    /// Seals the credentials of accounts connected in the browser.
    pub vault: crate::crypto::Vault,
    /// For checking and deleting a participant's posts ("delete my published notices").
    pub networks: crate::network::Networks,
    /// Wakes the dispatcher when a pledge adds posts that may be due at once.
    pub wake: Arc<tokio::sync::Notify>,
    /// Mastodon OAuth authorizations waiting for the server's callback.
    pub oauth: join::PendingAuthorizations,
    /// Outgoing mail, when an SMTP server is configured; `None` means nothing is mailed
    /// (signatures count at once, magic links are shown instead).
    pub mailer: Option<Arc<dyn crate::mail::Mailer>>,
    /// Counts shown on pages and in the API, cached for up to a second (`counts`).
    pub counts: Arc<counts::Counts>,
}

impl AppState {
    pub fn campaign(&self, id: &str) -> Option<&Campaign> {
        self.campaigns.iter().find(|c| c.id == id)
    }

    /// Cookies are marked `Secure` when the site is served over HTTPS.
    pub fn secure_cookies(&self) -> bool {
        self.settings.public_url.starts_with("https://")
    }
}

/// The JSON API, open to pages on other sites (a blogger's own signup page) but never with
/// cookies: cross-origin callers get no session to ride on.
fn api_routes() -> Router<AppState> {
    use axum::http::{Method, header};
    use tower_http::cors::{Any, CorsLayer};
    Router::new()
        .route("/api/v1/campaigns", get(api::campaigns))
        .route("/api/v1/campaigns/{id}", get(api::campaign))
        .route("/api/v1/campaigns/{id}/signatures", post(api::sign))
        .route("/api/v1/campaigns/{id}/stats", get(api::stats))
        .route("/api/v1/openapi.json", get(api::openapi))
        .layer(
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::CONTENT_TYPE]),
        )
}

/// The span of one request: method and path, without the query string and with a
/// confirmation link's token blanked, so `PICKET_LOG=debug` logs no secrets.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let path = req.uri().path();
    let shown = match path.split_once("/confirm/") {
        Some((before, _)) => format!("{before}/confirm/…"),
        None => path.to_string(),
    };
    tracing::debug_span!("request", method = %req.method(), path = %shown)
}

/// All routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::index))
        .route("/healthz", get(pages::healthz))
        .route("/metrics", get(api::metrics))
        .route("/c/{id}", get(campaign::page))
        .route("/c/{id}/sign", post(campaign::sign))
        .route("/c/{id}/signatures", get(campaign::signatures))
        .route("/c/{id}/confirm/{token}", get(campaign::confirm))
        .route("/c/{id}/declaration", get(declaration::page))
        .route("/c/{id}/declaration.md", get(declaration::raw))
        .route("/c/{id}/badge.svg", get(api::badge))
        .route("/i/{code}", get(campaign::invite))
        .route("/c/{id}/join", get(join::form).post(join::start))
        .route("/c/{id}/join/accounts", get(join::accounts))
        .route("/c/{id}/join/confirm", post(join::confirm))
        .route("/connect/mastodon/callback", get(join::mastodon_callback))
        .route("/connect/{network}", post(join::connect_account))
        .route("/me", get(me::page))
        .route("/me/withdraw", post(me::withdraw))
        .route("/me/accounts/remove", post(me::remove_account))
        .route("/me/delete", post(me::delete_all))
        .route("/me/logout", post(me::logout))
        .route("/me/strike.ics", get(me::calendar))
        .route("/widget.js", get(widget::script))
        .merge(api_routes())
        .nest_service("/sandbox", state.sandbox.router())
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            counts::stale_after_writes,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(64 * 1024))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
        .with_state(state)
}
