//! Enrolling a Mastodon-API account: what a server says about itself ([`discover`],
//! nodeinfo), registering picket as an OAuth app ([`register_app`]), the authorize page
//! with PKCE ([`authorize_url`]), trading the code for a token ([`exchange_code`]) and
//! checking whose token it is ([`verify_token`]). Used by `picket account add mastodon`
//! and the web's connect step through `participation::connect`, which sees only the
//! enrolment interface at the top: a [`Server`], an [`Authorization`] under way, the
//! [`App`] registered on a server, and the [`Enrolled`] account with its sealed-to-be
//! credentials. The adapter's stored format ([`Credentials`]) stays in this folder.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::Deserialize;

use super::super::guarded::Http;
use super::super::{Enrolled, PublishError, Reason};
use super::errors::{Call, error_of, read_error};
use super::{Credentials, base};

/// A Mastodon-API server being enrolled with: its address as picket writes it, what it
/// says about itself, and the client that reaches it.
pub struct Server {
    pub url: String,
    pub info: ServerInfo,
    http: Http,
}

/// An OAuth authorization under way: what the code's return needs to finish it.
pub struct Authorization {
    app: App,
    pkce: Option<Pkce>,
    redirect: String,
    /// The page to send the participant to.
    pub url: String,
}

impl Server {
    /// Read what the server at `url` (already [`normalise_server`]d) allows, through `http`.
    pub async fn open(http: Http, url: String) -> Result<Server, EnrollError> {
        let info = discover(&http, &url).await?;
        Ok(Server { url, info, http })
    }

    /// Register picket with the server unless `known` already is, and build the
    /// authorize page's address; `redirect` is where the server sends the code back.
    pub async fn authorize(
        &self,
        known: Option<App>,
        redirect: &str,
        register_redirects: &str,
        state: &str,
    ) -> Result<Authorization, EnrollError> {
        let scopes = self.info.scopes();
        let app = match known {
            Some(app) => app,
            None => register_app(&self.http, &self.url, scopes, register_redirects).await?,
        };
        let pkce = self.info.pkce_s256.then(Pkce::new);
        let url = authorize_url(&self.url, &app, scopes, pkce.as_ref(), state, redirect);
        Ok(Authorization {
            app,
            pkce,
            redirect: redirect.to_string(),
            url,
        })
    }

    /// Trade the code the authorize page gave for a token; the app comes back to be
    /// kept with the account.
    pub async fn finish(
        &self,
        auth: Authorization,
        code: &str,
    ) -> Result<(String, App), EnrollError> {
        let token = exchange_code(
            &self.http,
            &self.url,
            &auth.app,
            self.info.scopes(),
            code,
            auth.pkce.as_ref(),
            &auth.redirect,
        )
        .await?;
        Ok((token, auth.app))
    }

    /// Check whose `token` it is, and build the credentials to seal: the token with the
    /// server's limits and software, so the adapter can apply them, and the app if any.
    pub async fn enroll_token(
        &self,
        token: &str,
        app: Option<App>,
    ) -> Result<Enrolled, EnrollError> {
        let who = verify_token(&self.http, &self.url, token).await?;
        let info = &self.info;
        let credentials = Credentials {
            token: token.to_string(),
            account_id: Some(who.id.clone()),
            software: info.software.clone(),
            max_characters: info.max_characters,
            characters_reserved_per_url: info.characters_reserved_per_url,
            client_id: app.as_ref().map(|a| a.client_id.clone()),
            client_secret: app.map(|a| a.client_secret),
        };
        Ok(Enrolled {
            handle: who.handle(&self.url),
            credentials: crate::domain::Secret::new(credentials.to_json()),
        })
    }
}

/// The OAuth app kept in an account's opened credentials, if it was enrolled through one.
pub fn app_in(credentials: &str) -> Option<App> {
    let creds = Credentials::parse(credentials);
    Some(App {
        client_id: creds.client_id?,
        client_secret: creds.client_secret?,
    })
}

/// Out-of-band redirect: the server shows the code and the participant pastes it.
pub const OOB_REDIRECT: &str = "urn:ietf:wg:oauth:2.0:oob";

/// Why enrolling an account failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The server could not be reached or answered nonsense.
    #[error("{0}")]
    Server(String),
    /// The server refused the token or the code.
    #[error("{0}")]
    Refused(String),
}

/// Enrollment errors are for the command line and the log (a visitor's connect form
/// shows one fixed sentence), so they keep the server's own words.
impl From<PublishError> for EnrollError {
    fn from(e: PublishError) -> Self {
        let text = e.reason().for_operator();
        match e {
            PublishError::Reconnect(_) | PublishError::Rejected(_) => EnrollError::Refused(text),
            PublishError::Retry { .. } => EnrollError::Server(text),
        }
    }
}

/// What a server says about itself, read once at enrollment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerInfo {
    /// nodeinfo `software.name`, lowercase.
    pub software: Option<String>,
    pub max_characters: Option<usize>,
    pub characters_reserved_per_url: Option<usize>,
    /// The authorization server accepts PKCE S256 (Mastodon 4.3+).
    pub pkce_s256: bool,
    /// It knows the `profile` scope (4.3+); else `read:accounts` covers verify_credentials.
    pub profile_scope: bool,
}

impl ServerInfo {
    /// The scopes picket asks for: post and delete its own posts, and read who it is.
    pub fn scopes(&self) -> &'static str {
        if self.profile_scope {
            "write:statuses profile"
        } else {
            "write:statuses read:accounts"
        }
    }
}

/// `https://` is assumed when the participant typed a bare host name.
pub fn normalise_server(server: &str) -> Result<String, EnrollError> {
    let s = server.trim();
    let s = if s.contains("://") {
        s.trim_end_matches('/').to_string()
    } else {
        format!("https://{}", s.trim_end_matches('/'))
    };
    let u = url::Url::parse(&s)
        .map_err(|e| EnrollError::Refused(format!("`{server}` is not a server URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(EnrollError::Refused(format!(
            "`{server}` is not an http(s) server URL"
        )));
    }
    Ok(s)
}

async fn get_json(client: &Http, url: &str) -> Option<serde_json::Value> {
    let resp = client
        .get(url)
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().await.ok()
}

/// Read limits (`/api/v2/instance`, else `/api/v1/instance`), software (nodeinfo) and
/// OAuth features (`/.well-known/oauth-authorization-server`). Missing documents leave
/// fields empty: old servers lack some of them.
pub async fn discover(client: &Http, server: &str) -> Result<ServerInfo, EnrollError> {
    let b = base(server);
    // Decided before any request, so a refused address says why instead of "no answer".
    client
        .guard()
        .addresses(b)
        .await
        .map_err(|e| EnrollError::Server(format!("{b}: {e}")))?;
    let mut info = ServerInfo::default();
    if let Some(v2) = get_json(client, &format!("{b}/api/v2/instance")).await {
        let st = &v2["configuration"]["statuses"];
        info.max_characters = as_usize(&st["max_characters"]);
        info.characters_reserved_per_url = as_usize(&st["characters_reserved_per_url"]);
    }
    if info.max_characters.is_none() {
        let v1 = get_json(client, &format!("{b}/api/v1/instance"))
            .await
            .ok_or_else(|| {
                EnrollError::Server(format!(
                    "{b} does not answer /api/v1/instance: is it a Mastodon-API server?"
                ))
            })?;
        let st = &v1["configuration"]["statuses"];
        info.max_characters = as_usize(&st["max_characters"]).or(as_usize(&v1["max_toot_chars"]));
        info.characters_reserved_per_url = info
            .characters_reserved_per_url
            .or(as_usize(&st["characters_reserved_per_url"]));
    }
    info.software = nodeinfo_software(client, b).await;
    if let Some(oauth) = get_json(
        client,
        &format!("{b}/.well-known/oauth-authorization-server"),
    )
    .await
    {
        let has = |key: &str, want: &str| {
            oauth[key]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(want)))
        };
        info.pkce_s256 = has("code_challenge_methods_supported", "S256");
        info.profile_scope = has("scopes_supported", "profile");
    }
    Ok(info)
}

/// Counts may come as numbers or (Pleroma, some forks) as strings.
fn as_usize(v: &serde_json::Value) -> Option<usize> {
    v.as_u64()
        .map(|n| n as usize)
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .filter(|&n| n > 0)
}

async fn nodeinfo_software(client: &Http, b: &str) -> Option<String> {
    nodeinfo_software_version(client, b)
        .await
        .map(|(name, _)| name)
}

/// nodeinfo's `software.name` (lowercase) and `software.version`, read from the server's
/// own host only.
pub(super) async fn nodeinfo_software_version(
    client: &Http,
    b: &str,
) -> Option<(String, Option<String>)> {
    let index = get_json(client, &format!("{b}/.well-known/nodeinfo")).await?;
    let links = index["links"].as_array()?;
    // The newest schema the server lists.
    let href = links
        .iter()
        .filter(|l| {
            l["rel"]
                .as_str()
                .is_some_and(|r| r.starts_with("http://nodeinfo.diaspora.software/ns/schema/"))
        })
        .filter_map(|l| l["href"].as_str())
        .max()?;
    // The index is the server's own document, but it may name any address: read the
    // schema only from the server itself.
    if !same_host(b, href) {
        tracing::debug!(
            server = b,
            "nodeinfo names another host; software left unknown"
        );
        return None;
    }
    let doc = get_json(client, href).await?;
    let name = doc["software"]["name"]
        .as_str()
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())?;
    let version = doc["software"]["version"]
        .as_str()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    Some((name, version))
}

/// Whether `href` is on the host (and port) of `server`.
fn same_host(server: &str, href: &str) -> bool {
    match (url::Url::parse(server), url::Url::parse(href)) {
        (Ok(a), Ok(b)) => {
            a.host_str()
                .zip(b.host_str())
                .is_some_and(|(x, y)| x.eq_ignore_ascii_case(y))
                && a.port_or_known_default() == b.port_or_known_default()
        }
        _ => false,
    }
}

/// An OAuth app registered on one server.
#[derive(Clone)]
pub struct App {
    pub client_id: String,
    pub client_secret: String,
}

/// `POST /api/v1/apps` with `scopes` and `redirect_uris` (one per line: the out-of-band
/// redirect for the CLI and, on a web host, its callback, so one app serves both).
pub async fn register_app(
    client: &Http,
    server: &str,
    scopes: &str,
    redirect_uris: &str,
) -> Result<App, EnrollError> {
    let resp = client
        .post(&format!("{}/api/v1/apps", base(server)))
        .timeout(Duration::from_secs(30))
        .json(&serde_json::json!({
            "client_name": "picket",
            "redirect_uris": redirect_uris,
            "scopes": scopes,
            "website": "https://github.com/picket-strike/picket",
        }))
        .send()
        .await
        .map_err(|e| EnrollError::Server(format!("registering picket: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(EnrollError::Server(format!(
            "registering picket with {}: {status} {}",
            base(server),
            read_error(resp).await
        )));
    }
    #[derive(Deserialize)]
    struct Registered {
        client_id: String,
        client_secret: String,
    }
    let r: Registered = resp
        .json()
        .await
        .map_err(|e| EnrollError::Server(format!("registering picket: {e}")))?;
    Ok(App {
        client_id: r.client_id,
        client_secret: r.client_secret,
    })
}

/// A PKCE verifier and its S256 challenge (RFC 7636).
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn new() -> Pkce {
        use base64::Engine;
        use rand::Rng;
        use sha2::Digest;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let verifier = b64.encode(bytes);
        let challenge = b64.encode(sha2::Sha256::digest(verifier.as_bytes()));
        Pkce {
            verifier,
            challenge,
        }
    }
}

impl Default for Pkce {
    fn default() -> Self {
        Pkce::new()
    }
}

/// The page where the participant approves picket; it sends them to `redirect` with a
/// code (or, with [`OOB_REDIRECT`], shows the code to paste back).
pub fn authorize_url(
    server: &str,
    app: &App,
    scopes: &str,
    pkce: Option<&Pkce>,
    state: &str,
    redirect: &str,
) -> String {
    let mut u = url::Url::parse(&format!("{}/oauth/authorize", base(server)))
        .expect("server URL was checked");
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &app.client_id)
            .append_pair("redirect_uri", redirect)
            .append_pair("scope", scopes)
            .append_pair("state", state)
            // Lets someone with several accounts on one server pick the right one.
            .append_pair("force_login", "true");
        if let Some(p) = pkce {
            q.append_pair("code_challenge", &p.challenge)
                .append_pair("code_challenge_method", "S256");
        }
    }
    u.into()
}

/// Trade the code for an access token at `/oauth/token`; `redirect` is the one the
/// authorize page was opened with.
pub async fn exchange_code(
    client: &Http,
    server: &str,
    app: &App,
    scopes: &str,
    code: &str,
    pkce: Option<&Pkce>,
    redirect: &str,
) -> Result<String, EnrollError> {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("client_id", app.client_id.as_str()),
        ("client_secret", app.client_secret.as_str()),
        ("redirect_uri", redirect),
        ("scope", scopes),
    ];
    if let Some(p) = pkce {
        form.push(("code_verifier", p.verifier.as_str()));
    }
    // Built before the request: the serializer is not `Send` and must not live across
    // the await (the web's OAuth callback runs this on any worker thread).
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&form)
        .finish();
    let resp = client
        .post(&format!("{}/oauth/token", base(server)))
        .timeout(Duration::from_secs(30))
        .header(
            reqwest::header::CONTENT_TYPE.as_str(),
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| EnrollError::Server(format!("exchanging the code: {e}")))?;
    let status = resp.status();
    if !status.is_success() {
        let msg = read_error(resp).await;
        return Err(match status {
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED => EnrollError::Refused(format!(
                "the server refused the code ({status}: {msg}); start again and paste the newest code"
            )),
            _ => EnrollError::Server(format!("exchanging the code: {status} {msg}")),
        });
    }
    #[derive(Deserialize)]
    struct Token {
        access_token: String,
    }
    let t: Token = resp
        .json()
        .await
        .map_err(|e| EnrollError::Server(format!("exchanging the code: {e}")))?;
    Ok(t.access_token)
}

/// Who a token belongs to, from `verify_credentials`.
#[derive(Debug, Clone, Deserialize)]
pub struct Me {
    pub id: String,
    /// `user` for local accounts.
    pub acct: String,
    #[serde(default)]
    pub url: Option<String>,
    /// The account's followers (`followers_count` of the Account entity).
    #[serde(default)]
    pub followers_count: Option<u64>,
}

impl Me {
    /// `user@host`, the handle people can search for.
    pub fn handle(&self, server: &str) -> String {
        if self.acct.contains('@') {
            return self.acct.clone();
        }
        match url::Url::parse(server).ok().and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        }) {
            Some(host) => format!("{}@{host}", self.acct),
            None => self.acct.clone(),
        }
    }
}

/// `GET /api/v1/accounts/verify_credentials`: 401/403 mean the token is no good.
pub async fn verify_token(client: &Http, server: &str, token: &str) -> Result<Me, PublishError> {
    // Enrolment runs once, from the command line or a visitor's connect step, and has no
    // `Clock` of its own; the adapter calls `verify_token_at` with its clock.
    verify_token_at(client, server, token, Utc::now()).await
}

/// [`verify_token`], a rate limit's wait counted from `now`.
pub(super) async fn verify_token_at(
    client: &Http,
    server: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Me, PublishError> {
    let resp = client
        .get(&format!(
            "{}/api/v1/accounts/verify_credentials",
            base(server)
        ))
        .bearer_auth(token)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| crate::network::transport_error(&e))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(error_of(resp, Call::Read, now).await);
    }
    resp.json().await.map_err(|e| PublishError::Retry {
        reason: Reason::new("the server's answer about the account was unreadable")
            .with_detail(e.to_string()),
        after: None,
        maybe_sent: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::guarded::Egress;

    #[test]
    fn server_urls_get_https_by_default_and_odd_input_is_refused() {
        assert_eq!(
            normalise_server("mastodon.social/").unwrap(),
            "https://mastodon.social"
        );
        assert_eq!(
            normalise_server(" http://127.0.0.1:3000 ").unwrap(),
            "http://127.0.0.1:3000"
        );
        assert!(normalise_server("ftp://x.org").is_err());
        assert!(normalise_server("https://").is_err());
    }

    #[test]
    fn the_authorize_url_carries_the_pkce_challenge_and_the_oob_redirect() {
        let app = App {
            client_id: "cid".into(),
            client_secret: "secret".into(),
        };
        let pkce = Pkce::new();

        let u = authorize_url(
            "https://m.example",
            &app,
            "write:statuses profile",
            Some(&pkce),
            "s",
            OOB_REDIRECT,
        );

        let parsed = url::Url::parse(&u).unwrap();
        let q: std::collections::HashMap<_, _> = parsed.query_pairs().into_owned().collect();
        assert_eq!(q["redirect_uri"], OOB_REDIRECT);
        assert_eq!(q["scope"], "write:statuses profile");
        assert_eq!(q["code_challenge_method"], "S256");
        assert_eq!(q["code_challenge"], pkce.challenge);
        assert!(!u.contains("secret"));
        assert_eq!(pkce.verifier.len(), 43);
    }

    #[test]
    fn nodeinfo_counts_as_the_servers_own_only_on_its_host_and_port() {
        assert!(same_host(
            "https://m.example",
            "https://M.example/nodeinfo/2.0"
        ));
        assert!(same_host(
            "http://127.0.0.1:3000",
            "http://127.0.0.1:3000/n"
        ));
        assert!(!same_host("https://m.example", "https://169.254.169.254/n"));
        assert!(!same_host(
            "https://m.example",
            "https://m.example.evil.test/n"
        ));
        assert!(!same_host(
            "http://127.0.0.1:3000",
            "http://127.0.0.1:3001/n"
        ));
        assert!(!same_host("https://m.example", "not a url"));
    }

    /// A loopback server answering `GET path` with JSON from `answer` (given its own base
    /// URL); counts connections.
    async fn json_server(
        answer: fn(&str, &str) -> Option<String>,
    ) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let count = std::sync::Arc::new(AtomicUsize::new(0));
        let (seen, me) = (count.clone(), base.clone());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                let me = me.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    let req = String::from_utf8_lossy(&buf[..n]).to_string();
                    let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let (status, body) = match answer(&me, &path) {
                        Some(b) => ("200 OK", b),
                        None => ("404 Not Found", "{}".to_string()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = conn.write_all(head.as_bytes()).await;
                    let _ = conn.write_all(body.as_bytes()).await;
                });
            }
        });
        (base, count)
    }

    #[tokio::test]
    async fn a_nodeinfo_href_on_another_host_is_not_fetched() {
        use std::sync::atomic::Ordering;
        // Arrange: a server whose nodeinfo is on itself, and one whose nodeinfo index
        // points at another address (a third server that counts its visitors).
        static ELSEWHERE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let (elsewhere, elsewhere_count) =
            json_server(|_, _| Some(r#"{"software":{"name":"evil"}}"#.into())).await;
        ELSEWHERE.set(elsewhere).unwrap();
        fn index(href: &str) -> String {
            format!(
                r#"{{"links":[{{"rel":"http://nodeinfo.diaspora.software/ns/schema/2.0","href":"{href}"}}]}}"#
            )
        }
        let (honest, _) = json_server(|me, path| match path {
            "/.well-known/nodeinfo" => Some(index(&format!("{me}/nodeinfo/2.0"))),
            "/nodeinfo/2.0" => Some(r#"{"software":{"name":"Mastodon"}}"#.into()),
            _ => None,
        })
        .await;
        let (pointing, _) = json_server(|_, path| match path {
            "/.well-known/nodeinfo" => {
                Some(index(&format!("{}/nodeinfo/2.0", ELSEWHERE.get().unwrap())))
            }
            _ => None,
        })
        .await;
        let http = Egress::new(true).guarded().clone();

        // Act
        let own = nodeinfo_software(&http, &honest).await;
        let other = nodeinfo_software(&http, &pointing).await;

        // Assert
        assert_eq!(own.as_deref(), Some("mastodon"));
        assert_eq!(other, None);
        assert_eq!(elsewhere_count.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_local_acct_gets_the_servers_host_for_a_handle() {
        let me = Me {
            id: "1".into(),
            acct: "alice".into(),
            url: None,
            followers_count: None,
        };
        assert_eq!(me.handle("https://m.example"), "alice@m.example");
        assert_eq!(me.handle("http://127.0.0.1:3000"), "alice@127.0.0.1:3000");
    }
}
