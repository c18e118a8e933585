//! The official APIs of the networks people strike from (Threads, LinkedIn, X, Facebook
//! Pages), for hosts that registered an app with them: which app this host has for a
//! network, the network's authorization page, and finishing the authorization into
//! [`Enrolled`] accounts (one, or one per Facebook Page). The adapters themselves are in
//! [`super::threads`], [`super::linkedin`], [`super::x`] and [`super::facebook`].

use chrono::{DateTime, Utc};

use super::guarded::{Egress, Http};
use super::mastodon::Pkce;
use super::{Enrolled, PublishError, facebook, linkedin, threads, x};
use crate::domain::NetworkKind;

/// The host's own app with a network's official API, from the settings.
#[derive(Clone)]
pub enum OfficialApp {
    Threads(threads::App),
    LinkedIn(linkedin::App),
    X(x::App),
    /// Facebook Pages (Facebook Login); profiles have no posting API.
    Facebook(facebook::App),
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
                .map(|s| OfficialApp::Threads(threads::App::from_settings(s))),
            NetworkKind::LinkedIn => settings
                .linkedin
                .as_ref()
                .map(|s| OfficialApp::LinkedIn(linkedin::App::from_settings(s))),
            NetworkKind::X => settings
                .x
                .as_ref()
                .map(|s| OfficialApp::X(x::App::from_settings(s))),
            NetworkKind::Facebook => settings
                .facebook
                .as_ref()
                .map(|s| OfficialApp::Facebook(facebook::App::from_settings(s))),
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
