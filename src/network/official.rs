//! The official APIs of the networks people strike from (Threads, LinkedIn, X, Facebook
//! Pages), for hosts that registered an app with them: which app this host has for a
//! network, the network's authorization page, and finishing the authorization into
//! [`Enrolled`] accounts (one, or one per Facebook Page). The adapters themselves are in
//! [`super::threads`], [`super::linkedin`], [`super::x`] and [`super::facebook`].

use chrono::{DateTime, Utc};

use std::time::Duration;

use super::guarded::{Egress, Http, Response};
use super::mastodon::Pkce;
use super::{Enrolled, PublishError, facebook, linkedin, threads, x};
use crate::config::OAuthApp;
use crate::domain::{NetworkKind, Secret};

/// The host's app with one network's official API, as the adapter and the connect steps
/// use it (the same for every network; each adapter names its own default hosts).
#[derive(Clone)]
pub struct App {
    pub client_id: String,
    pub client_secret: Secret,
    /// The API's base, without a trailing slash.
    pub api: String,
    /// The authorization window's base.
    pub auth: String,
    /// The operator typed the bases (a local imitation): reached through the trusted
    /// client. The networks' own hosts go through the guarded one like everything else.
    pub trusted: bool,
}

impl App {
    /// The app from its settings; `api_default` and `auth_default` are the network's own
    /// hosts, used where the operator named none. An operator who names only the API base
    /// gets it for the authorization window too (one local imitation serves both).
    pub fn from_settings(s: &OAuthApp, api_default: &str, auth_default: &str) -> App {
        let trim = |b: &str| b.trim_end_matches('/').to_string();
        App {
            client_id: s.client_id.clone(),
            client_secret: s.client_secret.clone(),
            api: trim(s.api_base.as_deref().unwrap_or(api_default)),
            auth: trim(
                s.auth_base
                    .as_deref()
                    .or(s.api_base.as_deref())
                    .unwrap_or(auth_default),
            ),
            trusted: s.api_base.is_some() || s.auth_base.is_some(),
        }
    }

    /// The client for this app's hosts.
    pub fn http<'a>(&self, egress: &'a Egress) -> &'a Http {
        egress.for_account(self.trusted)
    }

    /// `{api}/{version}/{path}?{query}`, for the APIs that put their version in the path
    /// (Meta's).
    pub fn url(&self, version: &str, path: &str, query: &[(&str, &str)]) -> String {
        let mut u =
            url::Url::parse(&format!("{}/{version}/{path}", self.api)).expect("checked base");
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        u.into()
    }

    #[cfg(test)]
    pub(crate) fn for_tests(base: &str) -> App {
        App {
            client_id: "1234".into(),
            client_secret: Secret::new("s3cret"),
            api: base.into(),
            auth: base.into(),
            trusted: true,
        }
    }
}

/// The host's own app with a network's official API, from the settings.
#[derive(Clone)]
pub enum OfficialApp {
    Threads(App),
    LinkedIn(App),
    X(App),
    /// Facebook Pages (Facebook Login); profiles have no posting API.
    Facebook(App),
}

impl OfficialApp {
    /// The app this host registered for `network`, if any.
    pub fn configured(
        settings: &crate::config::Settings,
        network: NetworkKind,
    ) -> Option<OfficialApp> {
        match network {
            NetworkKind::Threads => settings
                .threads
                .as_ref()
                .map(|s| OfficialApp::Threads(threads::app(s))),
            NetworkKind::LinkedIn => settings
                .linkedin
                .as_ref()
                .map(|s| OfficialApp::LinkedIn(linkedin::app(s))),
            NetworkKind::X => settings.x.as_ref().map(|s| OfficialApp::X(x::app(s))),
            NetworkKind::Facebook => settings
                .facebook
                .as_ref()
                .map(|s| OfficialApp::Facebook(facebook::app(s))),
            _ => None,
        }
    }

    pub fn network(&self) -> NetworkKind {
        match self {
            OfficialApp::Threads(_) => NetworkKind::Threads,
            OfficialApp::LinkedIn(_) => NetworkKind::LinkedIn,
            OfficialApp::X(_) => NetworkKind::X,
            OfficialApp::Facebook(_) => NetworkKind::Facebook,
        }
    }

    pub fn http<'a>(&self, egress: &'a Egress) -> &'a Http {
        match self {
            OfficialApp::Threads(a) => a.http(egress),
            OfficialApp::LinkedIn(a) => a.http(egress),
            OfficialApp::X(a) => a.http(egress),
            OfficialApp::Facebook(a) => a.http(egress),
        }
    }

    pub fn trusted(&self) -> bool {
        match self {
            OfficialApp::Threads(a) => a.trusted,
            OfficialApp::LinkedIn(a) => a.trusted,
            OfficialApp::X(a) => a.trusted,
            OfficialApp::Facebook(a) => a.trusted,
        }
    }
}

/// Trade the `code` a network sent back for a token (the authorization-code grant, RFC 6749
/// §4.1.3, with the app's id and secret in the form, as Meta and LinkedIn take it). The
/// answer is the caller's to read: each network words its refusals its own way.
pub(super) async fn post_code(
    http: &Http,
    token_url: &str,
    app: &App,
    code: &str,
    redirect: &str,
    timeout: Duration,
) -> Result<Response, PublishError> {
    let form = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &app.client_id)
        .append_pair("client_secret", app.client_secret.expose())
        .append_pair("grant_type", "authorization_code")
        .append_pair("redirect_uri", redirect)
        .append_pair("code", code)
        .finish();
    http.post(token_url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| super::transport_error(&e))
}

/// Where a network sends people back to this host after they approved picket; it must
/// be registered with the host's app.
pub fn redirect_for(public_url: &str, network: NetworkKind) -> String {
    format!(
        "{}/connect/{}/callback",
        public_url.trim_end_matches('/'),
        network.as_str()
    )
}

/// An authorization with a network's official API under way: what finishing it needs.
pub struct Authorization {
    pub app: OfficialApp,
    pub redirect: String,
    pub state: String,
    /// The PKCE verifier, for networks that take it (X).
    pub pkce: Option<Pkce>,
    /// The network's authorization page to send the person to.
    pub url: String,
}

/// Start connecting an account through the host's app: the network sends the person back
/// to `redirect` with a code and `state`.
pub fn authorize(app: OfficialApp, redirect: &str, state: &str) -> Authorization {
    let (url, pkce) = match &app {
        OfficialApp::Threads(a) => (threads::oauth::authorize_url(a, redirect, state), None),
        OfficialApp::LinkedIn(a) => (linkedin::authorize_url(a, redirect, state), None),
        OfficialApp::Facebook(a) => (facebook::authorize_url(a, redirect, state), None),
        OfficialApp::X(a) => {
            let p = Pkce::new();
            (x::authorize_url(a, redirect, state, &p), Some(p))
        }
    };
    Authorization {
        url,
        pkce,
        app,
        redirect: redirect.to_string(),
        state: state.to_string(),
    }
}

/// An account the authorization gave, and how long picket's access lasts, in words for
/// the command line ("until 2027-02-05 (then reconnect)"; empty when it is renewed for as
/// long as the network allows).
pub struct Granted {
    pub enrolled: Enrolled,
    pub lasts: String,
}

/// Finish an authorization with the `code` the network sent back: one account, or for
/// Facebook one per Page the person may post on.
pub async fn finish(
    egress: &Egress,
    auth: &Authorization,
    code: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Granted>, PublishError> {
    let http = auth.app.http(egress);
    let day = |t: DateTime<Utc>| t.format("%Y-%m-%d").to_string();
    let one = |handle: String, lasts: String, credentials| {
        vec![Granted {
            enrolled: Enrolled {
                handle,
                credentials,
            },
            lasts,
        }]
    };
    Ok(match &auth.app {
        OfficialApp::Threads(app) => {
            let c = threads::oauth::exchange_code(http, app, code, &auth.redirect, now).await?;
            let lasts = format!(", until {} (renewed while picket posts)", day(c.expires_at));
            one(c.username.clone(), lasts, c.to_secret())
        }
        OfficialApp::LinkedIn(app) => {
            let c = linkedin::exchange_code(http, app, code, &auth.redirect, now).await?;
            let lasts = format!(", until {} (then reconnect)", day(c.expires_at));
            one(c.name.clone(), lasts, c.to_secret())
        }
        OfficialApp::X(app) => {
            let verifier = auth.pkce.as_ref().map_or("", |p| p.verifier.as_str());
            let c = x::exchange_code(http, app, code, &auth.redirect, verifier, now).await?;
            // Two-hour tokens, renewed with the refresh token for as long as X allows.
            one(format!("@{}", c.username), String::new(), c.to_secret())
        }
        OfficialApp::Facebook(app) => {
            facebook::pages_for_code(http, app, code, &auth.redirect, now)
                .await?
                .into_iter()
                .map(|p| Granted {
                    enrolled: Enrolled {
                        handle: p.page_name.clone(),
                        credentials: p.to_secret(),
                    },
                    lasts: " (a Page)".into(),
                })
                .collect()
        }
    })
}
