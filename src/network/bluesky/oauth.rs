//! Bluesky's recommended sign-in, AT Protocol OAuth (atproto.com/specs/oauth), written
//! on `p256`: PKCE (S256), pushed authorization requests (PAR), DPoP-bound tokens (an
//! ES256 key per account, proofs with the server's nonce, retried once when the server
//! hands a new one), and the refresh of the single-use refresh token.
//!
//! ```text
//! handle ─> DID ─> PDS ─> /.well-known/oauth-protected-resource ─> authorization server
//!        ─> /.well-known/oauth-authorization-server (issuer must match)
//!        ─> PAR (DPoP) ─> request_uri ─> the person's browser on the authorization page
//!        ─> callback ?code&state&iss ─> token (DPoP, code_verifier) ─> sub must be the DID
//! ```
//!
//! `atrium-oauth` was not used: it brings its own HTTP client trait, state and session
//! stores and `jose-jwk` keys, where picket needs its guarded client, its sealed
//! credentials and its own per-account refresh lock (see docs/networks.md).
//!
//! Every address here comes from a handle or a remote document: callers pass the guarded
//! client for a visitor's account.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::super::guarded::{Http, Response};

/// What picket asks for: to act on the repository (posting), nothing else it needs.
pub const SCOPE: &str = "atproto transition:generic";
/// Where the client metadata document is served, under `public_url`.
pub const METADATA_PATH: &str = "/oauth/bluesky/client-metadata.json";
/// Where the authorization server sends the person back, under `public_url`.
pub const CALLBACK_PATH: &str = "/connect/bluesky/callback";
const TIMEOUT: Duration = Duration::from_secs(20);

/// Why an OAuth step failed. The detail may quote a server: never shown to visitors.
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("{0}")]
    Discovery(String),
    #[error("{0}")]
    Refused(String),
    /// The grant is gone (refresh token used or revoked): the person signs in again.
    #[error("the authorization server refused the grant: {0}")]
    InvalidGrant(String),
    #[error("{0}")]
    Transport(String),
}

/// The client this host is to an authorization server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
    pub redirect_uri: String,
}

impl Client {
    /// A loopback `public_url` (a developer's machine, the tests) gets the spec's
    /// `http://localhost` client, which needs no metadata document, with its redirect on
    /// 127.0.0.1; any other host is identified by its metadata document's URL.
    pub fn for_host(public_url: &str) -> Client {
        let base = public_url.trim_end_matches('/');
        let loopback = url::Url::parse(base).ok().is_some_and(|u| {
            matches!(
                u.host(),
                Some(url::Host::Domain("localhost"))
                    | Some(url::Host::Ipv4(std::net::Ipv4Addr::LOCALHOST))
            )
        });
        if loopback {
            let mut u = url::Url::parse(base).expect("checked above");
            let _ = u.set_host(Some("127.0.0.1"));
            let redirect_uri = format!("{}{CALLBACK_PATH}", u.as_str().trim_end_matches('/'));
            let client_id = url::Url::parse_with_params(
                "http://localhost",
                &[("redirect_uri", redirect_uri.as_str()), ("scope", SCOPE)],
            )
            .expect("a fixed URL")
            .to_string();
            Client {
                client_id,
                redirect_uri,
            }
        } else {
            Client {
                client_id: format!("{base}{METADATA_PATH}"),
                redirect_uri: format!("{base}{CALLBACK_PATH}"),
            }
        }
    }

    /// The client metadata document (served at [`METADATA_PATH`]).
    pub fn metadata(&self, public_url: &str) -> Value {
        json!({
            "client_id": self.client_id,
            "client_name": "picket",
            "client_uri": public_url.trim_end_matches('/'),
            "application_type": "web",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "redirect_uris": [self.redirect_uri],
            "scope": SCOPE,
            "token_endpoint_auth_method": "none",
            "dpop_bound_access_tokens": true,
        })
    }
}

/// A DPoP key: an ES256 key of one account's tokens.
#[derive(Clone)]
pub struct DpopKey(SigningKey);

impl DpopKey {
    pub fn generate() -> DpopKey {
        loop {
            let mut b = [0u8; 32];
            rand::rng().fill_bytes(&mut b);
            if let Ok(k) = SigningKey::from_slice(&b) {
                return DpopKey(k);
            }
        }
    }

    /// The secret scalar, base64url, as sealed in the credentials.
    pub fn to_b64(&self) -> String {
        B64URL.encode(self.0.to_bytes())
    }

    pub fn from_b64(s: &str) -> Option<DpopKey> {
        SigningKey::from_slice(&B64URL.decode(s).ok()?)
            .ok()
            .map(DpopKey)
    }

    fn jwk(&self) -> Value {
        let point = self.0.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": B64URL.encode(point.x().expect("uncompressed")),
            "y": B64URL.encode(point.y().expect("uncompressed")),
        })
    }

    /// A DPoP proof (RFC 9449) for `htm` `htu` (its query and fragment left out), with
    /// the server's `nonce` when it gave one, and `ath` (the access token's hash) for a
    /// resource request.
    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        nonce: Option<&str>,
        access_token: Option<&str>,
        now: i64,
    ) -> String {
        let htu = url::Url::parse(htu).map_or_else(
            |_| htu.to_string(),
            |mut u| {
                u.set_query(None);
                u.set_fragment(None);
                u.to_string()
            },
        );
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()});
        let mut jti = [0u8; 16];
        rand::rng().fill_bytes(&mut jti);
        let mut claims = json!({
            "jti": B64URL.encode(jti),
            "htm": htm,
            "htu": htu,
            "iat": now,
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        if let Some(t) = access_token {
            claims["ath"] = json!(B64URL.encode(Sha256::digest(t.as_bytes())));
        }
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(claims.to_string())
        );
        let sig: Signature = self.0.sign(input.as_bytes());
        format!("{input}.{}", B64URL.encode(sig.to_bytes()))
    }
}

/// A PKCE pair: the verifier kept here, the S256 challenge sent.
pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

impl Pkce {
    pub fn generate() -> Pkce {
        let mut b = [0u8; 32];
        rand::rng().fill_bytes(&mut b);
        let verifier = B64URL.encode(b);
        Pkce {
            challenge: challenge(&verifier),
            verifier,
        }
    }
}

/// The S256 code challenge of a verifier (RFC 7636 §4.2).
pub fn challenge(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

/// An authorization server, as its metadata describes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Server {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub pushed_authorization_request_endpoint: String,
}

/// The PDS as its protected-resource document names itself, and its authorization
/// server (whose own metadata must claim the same issuer).
pub async fn discover(http: &Http, pds: &str) -> Result<(String, Server), OAuthError> {
    let pds = pds.trim_end_matches('/');
    let resource: Value =
        get_json(http, &format!("{pds}/.well-known/oauth-protected-resource")).await?;
    let named = resource["resource"]
        .as_str()
        .map(|r| r.trim_end_matches('/').to_string())
        .filter(|r| same_resource(pds, r))
        .ok_or_else(|| {
            OAuthError::Discovery(format!("{pds} describes another protected resource"))
        })?;
    let issuer = resource["authorization_servers"][0]
        .as_str()
        .ok_or_else(|| OAuthError::Discovery(format!("{pds} names no authorization server")))?
        .trim_end_matches('/')
        .to_string();
    let meta: Value = get_json(
        http,
        &format!("{issuer}/.well-known/oauth-authorization-server"),
    )
    .await?;
    let server: Server = serde_json::from_value(meta.clone()).map_err(|_| {
        OAuthError::Discovery(format!("{issuer}: the metadata lacks PAR or an endpoint"))
    })?;
    if server.issuer.trim_end_matches('/') != issuer {
        return Err(OAuthError::Discovery(format!(
            "{issuer}: the metadata names another issuer"
        )));
    }
    let s256 = meta["code_challenge_methods_supported"]
        .as_array()
        .is_some_and(|a| a.iter().any(|m| m == "S256"));
    if !s256 {
        return Err(OAuthError::Discovery(format!(
            "{issuer} does not offer S256"
        )));
    }
    Ok((named, server))
}

/// Whether the `resource` a PDS's document names is that PDS (RFC 9728 §3.3): the same
/// origin, or (a PDS on a developer's machine calls itself `localhost`) the same port on
/// loopback. Requests then go to the name it gave, which its DPoP checks (`htu`) expect.
fn same_resource(pds: &str, resource: &str) -> bool {
    let (Ok(a), Ok(b)) = (url::Url::parse(pds), url::Url::parse(resource)) else {
        return false;
    };
    let loopback = |u: &url::Url| match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    a.origin() == b.origin()
        || (a.scheme() == b.scheme()
            && a.port_or_known_default() == b.port_or_known_default()
            && loopback(&a)
            && loopback(&b))
}

async fn get_json(http: &Http, url: &str) -> Result<Value, OAuthError> {
    let resp = http
        .get(url)
        .header("accept", "application/json")
        .timeout(TIMEOUT)
        .send()
        .await
        .map_err(|e| OAuthError::Transport(format!("{url}: {e}")))?;
    if !resp.status().is_success() {
        return Err(OAuthError::Discovery(format!("{url}: {}", resp.status())));
    }
    resp.json()
        .await
        .map_err(|e| OAuthError::Discovery(format!("{url}: {e}")))
}

/// The server's `DPoP-Nonce`, when it sent one.
pub fn nonce_of(resp: &Response) -> Option<String> {
    resp.headers()
        .get("dpop-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A form POST with a DPoP proof to the authorization server. When it answers
/// `use_dpop_nonce` (it always does to a first request), the proof is made again with
/// the nonce it sent, once. Returns the body and the latest nonce.
async fn post_form(
    http: &Http,
    url: &str,
    key: &DpopKey,
    nonce: Option<String>,
    form: &[(&str, &str)],
    now: i64,
) -> Result<(Value, Option<String>), OAuthError> {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut nonce = nonce;
    for attempt in 0..2 {
        let resp = http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("dpop", &key.proof("POST", url, nonce.as_deref(), None, now))
            .timeout(TIMEOUT)
            .body(body.clone())
            .send()
            .await
            .map_err(|e| OAuthError::Transport(format!("{url}: {e}")))?;
        let status = resp.status();
        let fresh = nonce_of(&resp);
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if fresh.is_some() {
            nonce = fresh;
        }
        if status.is_success() {
            return Ok((v, nonce));
        }
        let error = v["error"].as_str().unwrap_or_default();
        if error == "use_dpop_nonce" && attempt == 0 {
            continue;
        }
        let detail = format!(
            "{url}: {status} {error} {}",
            v["error_description"].as_str().unwrap_or_default()
        );
        return Err(if error == "invalid_grant" {
            OAuthError::InvalidGrant(detail)
        } else {
            OAuthError::Refused(detail)
        });
    }
    unreachable!("the loop returns on its second pass")
}

/// An authorization started: where to send the person, and what finishing it needs.
#[derive(Clone)]
pub struct Started {
    pub url: String,
    pub server: Server,
    pub pkce_verifier: String,
    pub key: DpopKey,
    pub nonce: Option<String>,
}

/// PAR for `login_hint` (the handle), then the authorization page's URL.
pub async fn start(
    http: &Http,
    server: Server,
    client: &Client,
    login_hint: &str,
    state: &str,
    now: i64,
) -> Result<Started, OAuthError> {
    let key = DpopKey::generate();
    let pkce = Pkce::generate();
    let (v, nonce) = post_form(
        http,
        &server.pushed_authorization_request_endpoint,
        &key,
        None,
        &[
            ("response_type", "code"),
            ("client_id", &client.client_id),
            ("redirect_uri", &client.redirect_uri),
            ("scope", SCOPE),
            ("state", state),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("login_hint", login_hint),
        ],
        now,
    )
    .await?;
    let request_uri = v["request_uri"]
        .as_str()
        .ok_or_else(|| OAuthError::Refused("PAR answered no request_uri".into()))?;
    let url = url::Url::parse_with_params(
        &server.authorization_endpoint,
        &[
            ("client_id", client.client_id.as_str()),
            ("request_uri", request_uri),
        ],
    )
    .map_err(|_| OAuthError::Discovery("the authorization endpoint is not a URL".into()))?
    .to_string();
    Ok(Started {
        url,
        server,
        pkce_verifier: pkce.verifier,
        key,
        nonce,
    })
}

/// A token response: DPoP-bound access and refresh tokens for `sub`.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub sub: String,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    pub nonce: Option<String>,
}

fn tokens(v: Value, nonce: Option<String>, now: i64) -> Result<Tokens, OAuthError> {
    let text = |k: &str| v[k].as_str().map(str::to_string);
    if !v["token_type"]
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case("DPoP"))
    {
        return Err(OAuthError::Refused("the tokens are not DPoP-bound".into()));
    }
    let scope = text("scope").unwrap_or_default();
    if !scope.split(' ').any(|s| s == "atproto") {
        return Err(OAuthError::Refused(
            "the grant lacks the atproto scope".into(),
        ));
    }
    match (text("access_token"), text("refresh_token"), text("sub")) {
        (Some(access_token), Some(refresh_token), Some(sub)) => Ok(Tokens {
            access_token,
            refresh_token,
            sub,
            expires_at: v["expires_in"].as_i64().map(|s| now + s),
            nonce,
        }),
        _ => Err(OAuthError::Refused(
            "the token response lacks a token or sub".into(),
        )),
    }
}

/// Exchange the code the person came back with (after checking `iss` names the server
/// the authorization was started with).
pub async fn finish(
    http: &Http,
    started: &Started,
    client: &Client,
    code: &str,
    iss: Option<&str>,
    now: i64,
) -> Result<Tokens, OAuthError> {
    if iss.is_some_and(|i| i.trim_end_matches('/') != started.server.issuer.trim_end_matches('/')) {
        return Err(OAuthError::Refused(
            "the callback names another issuer".into(),
        ));
    }
    let (v, nonce) = post_form(
        http,
        &started.server.token_endpoint,
        &started.key,
        started.nonce.clone(),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &client.redirect_uri),
            ("client_id", &client.client_id),
            ("code_verifier", &started.pkce_verifier),
        ],
        now,
    )
    .await?;
    tokens(v, nonce, now)
}

/// Trade the (single-use) refresh token for a new pair. The caller holds the account's
/// lock and stores the new pair before using it.
pub async fn refresh(
    http: &Http,
    token_endpoint: &str,
    client_id: &str,
    key: &DpopKey,
    nonce: Option<String>,
    refresh_token: &str,
    now: i64,
) -> Result<Tokens, OAuthError> {
    let (v, nonce) = post_form(
        http,
        token_endpoint,
        key,
        nonce,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ],
        now,
    )
    .await?;
    tokens(v, nonce, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier;

    fn part(jwt: &str, i: usize) -> Value {
        serde_json::from_slice(&B64URL.decode(jwt.split('.').nth(i).unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn a_dpop_proof_is_an_es256_jwt_signed_by_the_key_its_header_carries() {
        let key = DpopKey::generate();
        let proof = key.proof(
            "POST",
            "https://pds.example/xrpc/com.atproto.repo.putRecord?x=1#f",
            Some("n-1"),
            Some("the-access-token"),
            1_700_000_000,
        );
        let header = part(&proof, 0);
        let claims = part(&proof, 1);
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert_eq!(claims["htm"], "POST");
        assert_eq!(
            claims["htu"],
            "https://pds.example/xrpc/com.atproto.repo.putRecord"
        );
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(
            claims["ath"],
            B64URL.encode(Sha256::digest(b"the-access-token"))
        );
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
        // The signature verifies with the public key from the header's JWK, not ours.
        let jwk = &header["jwk"];
        let mut sec1 = vec![4u8];
        sec1.extend(B64URL.decode(jwk["x"].as_str().unwrap()).unwrap());
        sec1.extend(B64URL.decode(jwk["y"].as_str().unwrap()).unwrap());
        let public = VerifyingKey::from_sec1_bytes(&sec1).unwrap();
        let (input, sig) = proof.rsplit_once('.').unwrap();
        let sig = Signature::from_slice(&B64URL.decode(sig).unwrap()).unwrap();
        assert!(public.verify(input.as_bytes(), &sig).is_ok());
        let mut tampered = input.to_string();
        tampered.push('x');
        assert!(public.verify(tampered.as_bytes(), &sig).is_err());
        // A key survives sealing as its scalar.
        let again = DpopKey::from_b64(&key.to_b64()).unwrap();
        assert_eq!(again.jwk(), key.jwk());
    }

    #[test]
    fn a_token_request_proof_has_no_ath_and_no_nonce_until_the_server_gives_one() {
        let proof = DpopKey::generate().proof("POST", "https://as.example/token", None, None, 5);
        let claims = part(&proof, 1);
        assert!(claims.get("ath").is_none());
        assert!(claims.get("nonce").is_none());
    }

    #[test]
    fn the_pkce_challenge_is_the_s256_of_the_verifier() {
        // The expected value computed apart from this code, with Python's hashlib:
        // urlsafe_b64encode(sha256(verifier)) without padding.
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gXk-cFAgM"),
            "P2GGbpeRddYmz6TJPiiXvfFbMVmoLOH_ZrLTc37AVrM"
        );
        let p = Pkce::generate();
        assert_eq!(p.challenge, challenge(&p.verifier));
        assert!(p.verifier.len() >= 43);
        assert_ne!(Pkce::generate().verifier, p.verifier);
    }

    #[test]
    fn a_protected_resource_must_name_its_own_pds() {
        assert!(same_resource("https://pds.example", "https://pds.example"));
        assert!(same_resource(
            "http://127.0.0.1:2583",
            "http://localhost:2583"
        ));
        assert!(!same_resource(
            "http://127.0.0.1:2583",
            "http://localhost:2584"
        ));
        assert!(!same_resource(
            "https://pds.example",
            "https://other.example"
        ));
        assert!(!same_resource("https://pds.example", "http://pds.example"));
    }

    #[test]
    fn a_loopback_host_is_the_localhost_client_and_others_name_their_metadata() {
        let c = Client::for_host("http://localhost:8080/");
        assert_eq!(
            c.redirect_uri,
            "http://127.0.0.1:8080/connect/bluesky/callback"
        );
        let id = url::Url::parse(&c.client_id).unwrap();
        assert_eq!(id.host_str(), Some("localhost"));
        let q: std::collections::HashMap<_, _> = id.query_pairs().into_owned().collect();
        assert_eq!(q["redirect_uri"], c.redirect_uri);
        assert_eq!(q["scope"], SCOPE);
        let c = Client::for_host("https://strike.example");
        assert_eq!(
            c.client_id,
            "https://strike.example/oauth/bluesky/client-metadata.json"
        );
        let m = c.metadata("https://strike.example");
        assert_eq!(m["client_id"], c.client_id);
        assert_eq!(m["dpop_bound_access_tokens"], true);
        assert_eq!(m["token_endpoint_auth_method"], "none");
        assert_eq!(
            m["redirect_uris"][0],
            "https://strike.example/connect/bluesky/callback"
        );
    }
}
