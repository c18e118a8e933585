//! The web side: axum routes for pages, forms and the JSON API. It writes to the store
//! and never posts to networks (only the scheduler does).

mod admin;
mod api;
mod campaign;
mod card;
pub(crate) mod connect;
pub mod counts;
mod declaration;
mod error;
mod federation;
pub(crate) mod form;
pub mod guard;
pub(crate) mod join;
mod layers;
mod me;
mod pages;
mod push;
pub mod serve;
pub mod session;
pub mod signing;
mod stats;
mod views;
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

/// What every handler can reach: a handle to [`Shared`], cloned for every request (axum's
/// `State`, the middleware). Its fields used to be cloned one by one, adapters' maps and
/// cipher states included: a quarter of the CPU time of serving a cached page.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The server's state, behind [`AppState`].
pub struct Shared {
    pub store: Arc<dyn Store>,
    pub campaigns: Arc<Vec<Campaign>>,
    pub pages: Arc<Pages>,
    pub clock: Arc<dyn Clock>,
    pub settings: Arc<Settings>,
    /// The built-in sandbox network, served at `/sandbox` when the `sandbox` setting is on
    /// (demos then need nothing else).
    pub sandbox: crate::sandbox::Receiver,
    /// Per-client budgets for public writes (signing).
    pub limits: guard::Limits,
    /// Budgets for signing in to `/admin`, per client and for everyone.
    pub sign_in: guard::SignInLimits,
    /// Seals the credentials of accounts connected in the browser.
    pub vault: crate::crypto::Vault,
    /// For checking and deleting a participant's posts ("delete my published notices").
    pub networks: crate::network::Networks,
    /// Clients for the addresses visitors type when connecting accounts (guarded).
    pub egress: crate::network::Egress,
    /// Wakes the dispatcher when a pledge adds posts that may be due at once.
    pub wake: Arc<tokio::sync::Notify>,
    /// The host's Web Push key: its public half is handed to the page's "Remind me in
    /// this browser" button.
    pub vapid: Arc<crate::network::push::VapidKey>,
    /// The host key that signs this host's checkpoints (`/c/{id}/checkpoint`).
    pub host_key: Arc<crate::federation::HostKey>,
    /// OAuth authorizations (Mastodon servers, official APIs) waiting for their callback.
    pub oauth: connect::PendingAuthorizations,
    /// Outgoing mail, when an SMTP server is configured; `None` means nothing is mailed
    /// (signatures count at once, magic links are shown instead).
    pub mailer: Option<Arc<dyn crate::mail::Mailer>>,
    /// Counts shown on pages and in the API, cached for up to a second (`counts`).
    pub counts: Arc<counts::Counts>,
    /// Strike cards drawn so far, shared with the dispatcher (`card`).
    pub cards: Arc<crate::card::Cards>,
    /// The dispatcher's lateness histogram, for `/metrics`.
    pub lateness: Arc<crate::scheduler::lateness::Lateness>,
}

impl Shared {
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
/// confirmation link's token blanked, so `PICKET_LOG=debug` logs no secrets. Below debug
/// the span is disabled and its fields are never worked out.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::debug_span!("request", method = %req.method(), path = %ShownPath(req.uri().path()))
}

/// A request's path as logged: a confirmation link's token blanked.
struct ShownPath<'a>(&'a str);

impl std::fmt::Display for ShownPath<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.split_once("/confirm/") {
            Some((before, _)) => write!(f, "{before}/confirm/…"),
            None => f.write_str(self.0),
        }
    }
}

/// The Content-Security-Policy of every answer: scripts and styles from picket's own
/// files only (no inline script can run, whatever a page contains), no framing by other
/// sites. Forms may lead to https (a Mastodon server's sign-in page, by redirect).
/// Images may come from https: a declaration can show one.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; connect-src 'self'; form-action 'self' https:; frame-ancestors 'none'; base-uri 'none'";
/// The same where the operator lets visitors' servers be private addresses over plain
/// http (`allow_private_addresses`, a test or home network): a connect form's redirect
/// may then lead to such a server's sign-in page (a Bluesky PDS's OAuth page).
const CONTENT_SECURITY_POLICY_PRIVATE: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; connect-src 'self'; form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'";

/// Headers every answer gets unless its handler set its own: the policy above,
/// `nosniff`, no `Referer` to anyone (magic links and confirmation links carry tokens),
/// and HSTS when the public address is https. `/widget.js` and the badge are embedded by
/// other sites as a script and an image, never in a frame, so `DENY` holds for them too.
/// (An answer that sets a cookie also gets `Cache-Control: no-store`: [`layers`].)
fn security_headers(https: bool, private: bool) -> layers::Headers {
    use axum::http::{HeaderValue, header};
    let policy = if private {
        CONTENT_SECURITY_POLICY_PRIVATE
    } else {
        CONTENT_SECURITY_POLICY
    };
    let mut always = vec![
        (header::CONTENT_SECURITY_POLICY, policy),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    if https {
        always.push((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"));
    }
    layers::Headers {
        always: always
            .into_iter()
            .map(|(name, value)| (name, HeaderValue::from_static(value)))
            .collect(),
    }
}

/// Pages that carry a session, a token or a person's own links: never stored by a cache.
fn private_routes() -> Router<AppState> {
    use axum::http::{HeaderValue, header};
    use tower_http::set_header::SetResponseHeaderLayer;
    Router::new()
        .route("/c/{id}/sign", post(campaign::sign))
        .route("/c/{id}/confirm/{token}", get(campaign::confirm))
        .route("/i/{code}", get(campaign::invite))
        .route("/c/{id}/join", get(join::form).post(join::start))
        .route("/c/{id}/join/accounts", get(join::accounts))
        .route("/c/{id}/join/confirm", post(join::confirm))
        .route(
            "/connect/mastodon/callback",
            get(connect::mastodon_callback),
        )
        .route("/connect/misskey/callback", get(connect::misskey_callback))
        .route("/connect/bluesky/callback", get(connect::bluesky_callback))
        .route(
            "/oauth/bluesky/client-metadata.json",
            get(connect::bluesky_client_metadata),
        )
        .route("/connect/threads/callback", get(connect::official_callback))
        .route("/connect/x/callback", get(connect::official_callback))
        .route(
            "/connect/facebook/callback",
            get(connect::official_callback),
        )
        .route(
            "/connect/linkedin/callback",
            get(connect::official_callback),
        )
        .route("/connect/{network}", post(connect::connect_account))
        .route("/me", get(me::page))
        .route("/me/withdraw", post(me::withdraw))
        .route("/me/accounts/remove", post(me::remove_account))
        .route("/me/delete", post(me::delete_all))
        .route("/me/logout", post(me::logout))
        .route("/me/switch", post(me::switch))
        .route("/me/link", post(me::new_link))
        .route("/me/new-link", get(me::ask_link_form).post(me::ask_link))
        .route("/me/strike.ics", get(me::calendar))
        .route("/me/push", post(push::subscribe))
        .route("/me/push/delete", post(push::unsubscribe))
        .route("/me/posted", post(me::posted))
        .route("/me/posted/{token}", get(me::posted_page))
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// All routes.
pub fn router(state: AppState) -> Router {
    let request_timeout =
        std::time::Duration::from_secs(state.settings.http.request_timeout_secs.max(1));
    let mut routes = Router::new()
        .route("/", get(pages::index))
        .route("/healthz", get(pages::healthz))
        .route("/metrics", get(api::metrics))
        .route("/static/{file}", get(pages::asset))
        .route("/c/{id}", get(campaign::page))
        .route("/c/{id}/signatures", get(campaign::signatures))
        .route("/c/{id}/stats", get(stats::page))
        .route("/c/{id}/checkpoint", get(federation::checkpoint))
        .route("/c/{id}/hosts", get(federation::hosts))
        .route("/c/{id}/sketch", get(federation::sketch))
        .route("/c/{id}/declaration", get(declaration::page))
        .route("/c/{id}/declaration.md", get(declaration::raw))
        .route("/c/{id}/badge.svg", get(api::badge))
        .route("/c/{id}/card.png", get(card::png))
        .route("/c/{id}/card.txt", get(card::text))
        .route("/widget.js", get(widget::script))
        .route("/sw.js", get(push::service_worker))
        .merge(private_routes())
        .merge(admin::routes())
        .merge(api_routes());
    if state.settings.sandbox {
        routes = routes.nest_service("/sandbox", state.sandbox.router());
    }
    let answering = layers::Answering::new(
        request_timeout,
        security_headers(
            state.secure_cookies(),
            state.settings.allow_private_addresses,
        ),
        state.counts.clone(),
    );
    let routes = routes
        .fallback(pages::not_found)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(64 * 1024))
        .layer(answering);
    // The request span is a debug span: below debug (the logging is set once, at start)
    // the layer would only cost every request its wrapping.
    let routes = if tracing::enabled!(tracing::Level::DEBUG) {
        routes.layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(request_span))
    } else {
        routes
    };
    routes.with_state(state)
}
