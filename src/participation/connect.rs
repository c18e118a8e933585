//! Connecting an account of each network, for the CLI (`picket account add ...`) and the
//! join pages alike: check what the person gave, talk to the network once to prove it
//! works, and hand back the credentials to seal. Nothing here stores or prints anything.
//!
//! Who typed the addresses decides how they are reached ([`TypedBy`]): the operator's
//! through the trusted client, a visitor's (and whatever a remote document names, such as
//! the PDS in a DID document) through the guarded one. The account remembers it
//! ([`Connected::trusted`]), so the dispatcher keeps guarding a visitor's servers at every
//! later request and can still post to a loopback server the operator added.
//!
//! A failure has two messages: the detail (for the command line and the debug log) and a
//! fixed sentence for visitors, the same whatever went wrong, so the join pages neither
//! echo a remote answer nor tell a closed port from an open one.

use std::time::Duration;

use crate::domain::{Handle, NetworkKind, Secret};
use crate::network::mastodon::enroll::{self as mastodon, App, Authorization};
use crate::network::nostr::{BunkerEnrollError, enroll_bunker, enroll_key, enroll_relays};
use crate::network::{Egress, Enrolled, Http, bluesky, official};

/// Who typed the addresses of an account being connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypedBy {
    /// The operator, on the command line: their addresses are trusted (a home server, a
    /// relay on the same machine).
    Operator,
    /// A visitor, on the join pages: their addresses must be public, now and later.
    Visitor,
}

/// An account ready to be sealed and stored. `Debug` leaves the credentials out.
#[derive(Debug)]
pub struct Connected {
    pub network: NetworkKind,
    pub handle: Handle,
    pub server: Option<String>,
    pub credentials: Secret,
    /// What was connected and what it allows, after "<network> account <id>".
    pub summary: String,
    /// Every address of the account was typed by the operator: its servers are reached
    /// through the trusted client.
    pub trusted: bool,
}

/// Why an account could not be connected.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// What the person typed is wrong: the message says what to change.
    #[error("{0}")]
    Invalid(String),
    /// The address was refused, or the network refused or did not answer. `detail` says
    /// which (and may quote the server); visitors see only `shown`.
    #[error("{detail}")]
    Failed { shown: &'static str, detail: String },
}

impl ConnectError {
    /// What a visitor may be told: never a remote answer, never which way it failed.
    pub fn for_visitor(&self) -> &str {
        match self {
            ConnectError::Invalid(m) => m,
            ConnectError::Failed { shown, .. } => shown,
        }
    }
}

const MASTODON_FAILED: &str = "picket could not connect to that server. Check its address \
    (such as mastodon.social) and try again.";
const MASTODON_NOT_FINISHED: &str =
    "The server did not complete the connection. Try connecting the account again.";
const BLUESKY_FAILED: &str = "picket could not sign in to Bluesky with that handle and app \
    password. Check them (and the server, if you gave one) and try again.";
const RELAY_FAILED: &str =
    "picket cannot publish to that relay. Give relays as wss:// addresses on the internet.";
const BUNKER_FAILED: &str = "The remote signer did not connect. Check the bunker address, \
    approve picket in your signer app, and try again.";

fn failed(shown: &'static str, detail: String) -> ConnectError {
    ConnectError::Failed { shown, detail }
}

/// The handle a person typed or a network named, as picket keeps it.
fn handle(s: &str) -> Result<Handle, ConnectError> {
    Handle::parse(s).map_err(|e| ConnectError::Invalid(format!("{e}.")))
}

/// The client for addresses typed by `by`.
fn client(egress: &Egress, by: TypedBy) -> &Http {
    match by {
        TypedBy::Operator => egress.trusted(),
        TypedBy::Visitor => egress.guarded(),
    }
}

/// A sandbox account: posts go to the receiver at `server` (by default the one `picket
/// serve` runs at `/sandbox`).
pub fn sandbox(name: &str, server: &str, token: Option<String>) -> Result<Connected, ConnectError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(ConnectError::Invalid(
            "Give the sandbox account a name of 1 to 64 characters.".into(),
        ));
    }
    Ok(Connected {
        network: NetworkKind::Sandbox,
        handle: handle(name)?,
        server: Some(server.to_string()),
        credentials: Secret::new(token.unwrap_or_else(super::new_access_token)),
        summary: format!("({name}) posting to {server}"),
        // This host's own receiver or one the operator named: never a visitor's address.
        trusted: true,
    })
}

/// A Bluesky account: resolve the handle, sign in once with the app password; the session
/// (and the app password, to sign in again if the session is lost) is what gets sealed.
/// Only a `service` the operator typed is trusted: a PDS found through the handle's DID
/// document is a remote document's address.
pub async fn bluesky(
    egress: &Egress,
    by: TypedBy,
    handle: &str,
    app_password: &str,
    service: Option<&str>,
) -> Result<Connected, ConnectError> {
    let handle = handle.trim().trim_start_matches('@');
    if handle.is_empty() || !handle.contains('.') {
        return Err(ConnectError::Invalid(
            "Give your full Bluesky handle, such as alex.bsky.social.".into(),
        ));
    }
    if app_password.trim().is_empty() {
        return Err(ConnectError::Invalid(
            "Give an app password (Bluesky: Settings → Privacy and security → App passwords)."
                .into(),
        ));
    }
    let trusted = by == TypedBy::Operator && service.is_some();
    let http = if trusted {
        egress.trusted()
    } else {
        egress.guarded()
    };
    let creds = bluesky::connect(http, handle, app_password.trim(), service)
        .await
        .map_err(|e| failed(BLUESKY_FAILED, format!("connecting {handle}: {e:#}")))?;
    Ok(Connected {
        network: NetworkKind::Bluesky,
        handle: self::handle(&creds.handle)?,
        server: Some(creds.pds.clone()),
        summary: format!("(@{} {}) on {}", creds.handle, creds.did, creds.pds),
        credentials: creds.to_secret(),
        trusted,
    })
}

/// The relays of a Nostr account, checked (each argument may hold several): written as
/// relay addresses, and, when a visitor typed them, public. Nothing is connected to here.
pub async fn nostr_relays(
    egress: &Egress,
    by: TypedBy,
    relays: &[String],
) -> Result<Vec<String>, ConnectError> {
    let relays = enroll_relays(relays).map_err(|e| ConnectError::Invalid(e.to_string()))?;
    if relays.is_empty() {
        return Err(ConnectError::Invalid(
            "Give at least one relay (wss://...).".into(),
        ));
    }
    let guard = client(egress, by).guard();
    for relay in &relays {
        guard
            .addresses(relay)
            .await
            .map_err(|e| failed(RELAY_FAILED, format!("relay {relay}: {e}")))?;
    }
    Ok(relays)
}

/// A Nostr identity signing with its secret key (picket then holds it, sealed).
pub fn nostr_key(relays: Vec<String>, nsec: &str, by: TypedBy) -> Result<Connected, ConnectError> {
    let enrolled = enroll_key(nsec).map_err(|e| ConnectError::Invalid(e.to_string()))?;
    nostr_account(relays, enrolled, by)
}

/// A Nostr identity signing through a NIP-46 remote signer: the key stays with its owner.
/// A human may have to approve picket in their signer app, hence the long `wait`.
pub async fn nostr_bunker(
    egress: &Egress,
    by: TypedBy,
    relays: Vec<String>,
    uri: &str,
    wait: Duration,
) -> Result<Connected, ConnectError> {
    let enrolled = enroll_bunker(client(egress, by).clone(), uri, wait)
        .await
        .map_err(|e| match e {
            BunkerEnrollError::Invalid(e) => ConnectError::Invalid(e.to_string()),
            e @ BunkerEnrollError::NotConnected(_) => failed(BUNKER_FAILED, e.to_string()),
        })?;
    nostr_account(relays, enrolled, by)
}

fn nostr_account(
    relays: Vec<String>,
    enrolled: Enrolled,
    by: TypedBy,
) -> Result<Connected, ConnectError> {
    let server = relays.join(" ");
    Ok(Connected {
        network: NetworkKind::Nostr,
        summary: format!("({}) posting to {server}", enrolled.handle),
        handle: handle(&enrolled.handle)?,
        server: Some(server),
        credentials: enrolled.credentials,
        trusted: by == TypedBy::Operator,
    })
}

/// A Mastodon-API server, as the person typed it, with what it says about itself and the
/// client fit for whoever typed it.
pub struct MastodonServer {
    server: mastodon::Server,
    by: TypedBy,
}

impl MastodonServer {
    /// The server's address as picket writes it.
    pub fn url(&self) -> &str {
        &self.server.url
    }
}

/// Check the address and read the server's limits and software (once, at enrollment).
pub async fn mastodon_server(
    egress: &Egress,
    by: TypedBy,
    server: &str,
) -> Result<MastodonServer, ConnectError> {
    let url =
        mastodon::normalise_server(server).map_err(|e| ConnectError::Invalid(e.to_string()))?;
    let server = mastodon::Server::open(client(egress, by).clone(), url.clone())
        .await
        .map_err(|e| failed(MASTODON_FAILED, format!("reading what {url} allows: {e}")))?;
    Ok(MastodonServer { server, by })
}

/// An OAuth authorization under way: what the callback needs to finish it.
pub struct MastodonAuthorization {
    pub server: MastodonServer,
    auth: Authorization,
}

impl MastodonAuthorization {
    /// The page to send the participant to.
    pub fn url(&self) -> &str {
        &self.auth.url
    }
}

/// Start OAuth: register picket with the server unless `known` already is, and build the
/// authorize page's address. `redirect` is where the server sends the code back.
pub async fn mastodon_authorize(
    server: MastodonServer,
    known: Option<App>,
    redirect: &str,
    register_redirects: &str,
    state: &str,
) -> Result<MastodonAuthorization, ConnectError> {
    let auth = server
        .server
        .authorize(known, redirect, register_redirects, state)
        .await
        .map_err(|e| failed(MASTODON_FAILED, e.to_string()))?;
    Ok(MastodonAuthorization { server, auth })
}

/// Finish OAuth: trade the code for a token, then connect with it.
pub async fn mastodon_code(
    auth: MastodonAuthorization,
    code: &str,
) -> Result<Connected, ConnectError> {
    let code = code.trim();
    if code.is_empty() {
        return Err(ConnectError::Invalid(
            "No code came back from the server: try connecting again.".into(),
        ));
    }
    let (token, app) = auth
        .server
        .server
        .finish(auth.auth, code)
        .await
        .map_err(|e| failed(MASTODON_NOT_FINISHED, e.to_string()))?;
    mastodon_token(auth.server, &token, Some(app)).await
}

/// Connect with a token (pasted, or from OAuth): verify it and seal it with the server's
/// limits and software, so the adapter can apply them.
pub async fn mastodon_token(
    server: MastodonServer,
    token: &str,
    app: Option<App>,
) -> Result<Connected, ConnectError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(ConnectError::Invalid("The token is empty.".into()));
    }
    let MastodonServer { server, by } = server;
    let enrolled = server.enroll_token(token, app).await.map_err(|e| {
        failed(
            MASTODON_NOT_FINISHED,
            format!("checking the token with {}: {e}", server.url),
        )
    })?;
    let info = &server.info;
    Ok(Connected {
        network: NetworkKind::Mastodon,
        summary: format!(
            "({}) on {}: {}, {} characters per post",
            enrolled.handle,
            server.url,
            info.software.as_deref().unwrap_or("unknown software"),
            info.max_characters.unwrap_or(500),
        ),
        handle: handle(&enrolled.handle)?,
        server: Some(server.url),
        credentials: enrolled.credentials,
        trusted: by == TypedBy::Operator,
    })
}

/// The OAuth app an earlier enrollment registered on `server`, from the sealed credentials
/// of any account there (the app is per server, not per person).
pub async fn known_app(
    store: &dyn crate::store::Store,
    vault: &crate::crypto::Vault,
    server: &str,
) -> Result<Option<App>, crate::store::StoreError> {
    Ok(store
        .accounts_on_server(NetworkKind::Mastodon, server, 20)
        .await?
        .iter()
        .find_map(|a| app_of(vault, a)))
}

fn app_of(vault: &crate::crypto::Vault, account: &crate::store::Account) -> Option<App> {
    let plain = vault.open_for(account.id.0, &account.credentials).ok()?;
    mastodon::app_in(&String::from_utf8_lossy(&plain))
}

const OFFICIAL_NOT_FINISHED: &str =
    "The network did not complete the connection. Try connecting the account again.";

pub use crate::network::official::{Authorization as OfficialAuthorization, OfficialApp};

/// Where a network sends people back to this host after they approved picket; it must
/// be registered with the host's app.
pub fn official_redirect(public_url: &str, network: NetworkKind) -> String {
    official::redirect_for(public_url, network)
}

/// Start connecting an account through the host's app: the network sends the person back
/// to `redirect` with a code and `state`.
pub fn official_authorize(app: OfficialApp, redirect: &str, state: &str) -> OfficialAuthorization {
    official::authorize(app, redirect, state)
}

/// Finish it: one account, or for Facebook one per Page the person may post on. `state`
/// is the one that came back with the code, when it came back (a pasted bare code has
/// none).
pub async fn official_code(
    egress: &Egress,
    auth: &OfficialAuthorization,
    code: &str,
    state: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Connected>, ConnectError> {
    let label = auth.app.network().label();
    let code = code.trim();
    if code.is_empty() {
        return Err(ConnectError::Invalid(format!(
            "No code came back from {label}: try connecting again."
        )));
    }
    if state.is_some_and(|s| s != auth.state) {
        return Err(ConnectError::Invalid(
            "That address belongs to another authorization: connect the account again.".into(),
        ));
    }
    let granted = official::finish(egress, auth, code, now)
        .await
        .map_err(|e| {
            failed(
                OFFICIAL_NOT_FINISHED,
                format!("connecting {label}: {}", e.for_operator()),
            )
        })?;
    granted
        .into_iter()
        .map(|g| {
            let handle = Handle::parse(&g.enrolled.handle).map_err(|e| {
                failed(
                    OFFICIAL_NOT_FINISHED,
                    format!("{label} named the account oddly: {e}"),
                )
            })?;
            Ok(Connected {
                network: auth.app.network(),
                summary: format!("({handle}) through this host's {label} app{}", g.lasts),
                handle,
                server: None,
                credentials: g.enrolled.credentials,
                // The adapter reaches the network through the app's own client whatever
                // this says.
                trusted: auth.app.trusted(),
            })
        })
        .collect()
}

/// When picket's access to `account` ends unless renewed or reconnected before (Threads'
/// 60-day grants), read from its sealed credentials; `None` for grants that do not end
/// or credentials that cannot be opened.
pub fn grant_ends(
    vault: &crate::crypto::Vault,
    account: &crate::store::Account,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let plain = vault.open_for(account.id.0, &account.credentials).ok()?;
    crate::network::grant_ends(account.network, &String::from_utf8_lossy(&plain))
}

const MISSKEY_FAILED: &str = "picket could not connect to that server. Check its address \
    (such as misskey.io) and try again.";
const MISSKEY_NOT_ALLOWED: &str =
    "The server did not say you allowed picket. Try connecting the account again.";

/// A Misskey-API server (Misskey, Sharkey, Iceshrimp ...), opened for enrolment by `by`.
pub struct MisskeyServer {
    server: crate::network::misskey::enroll::Server,
    by: TypedBy,
}

impl MisskeyServer {
    pub fn url(&self) -> &str {
        &self.server.url
    }

    /// The MiAuth page for session `session` (asks only `write:notes`); the browser comes
    /// back to `callback` when given.
    pub fn miauth_url(&self, session: &str, callback: Option<&str>) -> String {
        self.server.miauth_url(session, callback)
    }
}

/// Open the Misskey-API server at `server` and read its limits (`api/meta`).
pub async fn misskey_server(
    egress: &Egress,
    by: TypedBy,
    server: &str,
) -> Result<MisskeyServer, ConnectError> {
    use crate::network::misskey::enroll;
    let url = enroll::normalise_server(server).map_err(|e| ConnectError::Invalid(e.to_string()))?;
    let server = enroll::Server::open(client(egress, by).clone(), url)
        .await
        .map_err(|e| failed(MISSKEY_FAILED, e.to_string()))?;
    Ok(MisskeyServer { server, by })
}

fn misskey_connected(
    server: &MisskeyServer,
    enrolled: Enrolled,
) -> Result<Connected, ConnectError> {
    let s = &server.server;
    Ok(Connected {
        network: NetworkKind::Misskey,
        summary: format!(
            "({}) on {}: {}, {} characters per note, permission write:notes",
            enrolled.handle,
            s.url,
            s.version.as_deref().unwrap_or("unknown version"),
            s.max_text
                .unwrap_or(crate::network::misskey::DEFAULT_MAX_TEXT),
        ),
        handle: handle(&enrolled.handle)?,
        server: Some(s.url.clone()),
        credentials: enrolled.credentials,
        trusted: server.by == TypedBy::Operator,
    })
}

/// Finish MiAuth session `session` once the person allowed picket on their server.
pub async fn misskey_session(
    server: &MisskeyServer,
    session: &str,
) -> Result<Connected, ConnectError> {
    let enrolled = server
        .server
        .miauth_check(session)
        .await
        .map_err(|e| failed(MISSKEY_NOT_ALLOWED, e.to_string()))?;
    misskey_connected(server, enrolled)
}

/// A pasted access token (it must also allow `read:account`, to learn whose it is).
pub async fn misskey_token(server: &MisskeyServer, token: &str) -> Result<Connected, ConnectError> {
    let token = token.trim();
    if token.is_empty() {
        return Err(ConnectError::Invalid("The token is empty.".into()));
    }
    let enrolled = server
        .server
        .token(token)
        .await
        .map_err(|e| failed(MISSKEY_NOT_ALLOWED, e.to_string()))?;
    misskey_connected(server, enrolled)
}
