//! Web Push (RFC 8030) to the browsers of participants who asked for reminders there: the
//! host's VAPID key (RFC 8292), a browser's subscription, the notification a reminder
//! becomes, its encryption (RFC 8291, `aes128gcm`) and the request to the push service.
//!
//! The crate is `web-push-native` (RustCrypto: p256, aes-gcm, hkdf), not `web-push`:
//! `web-push` 0.11 encrypts through `ece`'s OpenSSL backend (a build then needs
//! libssl-dev) and sends with its own client (isahc/curl or hyper), so a push endpoint
//! (an address the visitor's browser supplies) would bypass picket's guarded client.
//! `web-push-native` only builds an `http::Request`, which goes out through
//! [`guarded`](super::guarded) like every other address a visitor supplies: public
//! addresses only, https, no redirects, capped bodies, timeouts.
//!
//! The VAPID token is signed here (ES256 with `p256`), not with the crate's `vapid`
//! feature: that feature pulls in `jwt-simple` (RSA, ML-DSA, Ed25519 and ~35 more crates
//! for one ES256 signature), and its `aud` drops a non-default port, while RFC 8292 says
//! `aud` is the push resource's origin, port included.
//!
//! A subscription's endpoint is a capability URL: whoever knows it can push to that
//! browser. [`Subscription`]'s `Debug` hides it, and no error here carries it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use chrono::{DateTime, Utc};
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rand::Rng;
use serde::{Deserialize, Serialize};
use url::Url;

use super::guarded::{Http, HttpError, Refusal};
use crate::clock::Clock;
use crate::domain::Secret;

/// How long a VAPID token is valid: RFC 8292 allows at most 24 hours.
pub const TOKEN_LIFETIME: chrono::Duration = chrono::Duration::hours(12);

/// The longest endpoint accepted from a browser (real ones are a few hundred bytes).
pub const MAX_ENDPOINT: usize = 2048;

/// Longest wait for a push service: reminders of other slots wait behind a slow one.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// The most characters of a notice put in a notification's body: push services refuse
/// payloads over 4 KiB, and a notification shows two or three lines anyway.
pub const MAX_BODY_CHARS: usize = 240;

/// Why a key, a subscription or a push message could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The configured VAPID key is not base64url of a P-256 private key.
    #[error(
        "PICKET_VAPID_KEY (vapid_key) must be the base64url of a 32-byte P-256 private key; \
         leave it unset and picket makes one beside the database"
    )]
    BadKey,
    /// The key file could not be read or created.
    #[error("VAPID key file {path}: {source}")]
    KeyFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// What a browser sent is not a push subscription picket can use.
    #[error("{0}")]
    InvalidSubscription(&'static str),
    /// The payload could not be encrypted for this subscription.
    #[error("could not encrypt the push message: {0}")]
    Encrypt(String),
}

// ── the host's VAPID key ────────────────────────────────────────────────────────────────

/// The host's application server key pair. `Debug` is redacted.
#[derive(Clone)]
pub struct VapidKey {
    signing: SigningKey,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VapidKey([redacted])")
    }
}

impl VapidKey {
    /// A new random key.
    pub fn generate() -> VapidKey {
        loop {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            // Zero or a value past the group order is not a key: drawn again (p < 2^-127).
            if let Ok(signing) = SigningKey::from_slice(&bytes) {
                return VapidKey { signing };
            }
        }
    }

    /// The private key as base64url (what `PICKET_VAPID_KEY` and the key file hold).
    pub fn from_base64url(text: &str) -> Result<VapidKey, PushError> {
        let bytes = B64URL
            .decode(text.trim().trim_end_matches('='))
            .map_err(|_| PushError::BadKey)?;
        let signing = SigningKey::from_slice(&bytes).map_err(|_| PushError::BadKey)?;
        Ok(VapidKey { signing })
    }

    fn to_base64url(&self) -> String {
        B64URL.encode(self.signing.to_bytes())
    }

    /// The configured key, else the key file at `path`, created (mode 0600) if missing,
    /// with the same care as the credentials key.
    pub fn open(configured: Option<&Secret>, path: &Path) -> Result<VapidKey, PushError> {
        if let Some(k) = configured {
            return VapidKey::from_base64url(k.expose());
        }
        let io = |source| PushError::KeyFile {
            path: path.to_path_buf(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => VapidKey::from_base64url(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = VapidKey::generate();
                match crate::crypto::write_private(path, key.to_base64url().as_bytes()) {
                    Ok(()) => Ok(key),
                    // Another process made it first: theirs is the host's key.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        VapidKey::from_base64url(&std::fs::read_to_string(path).map_err(io)?)
                    }
                    Err(e) => Err(io(e)),
                }
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The public key, uncompressed (65 bytes) in base64url: the page hands it to
    /// `pushManager.subscribe` as `applicationServerKey`, and it is the VAPID `k`.
    pub fn public_key(&self) -> String {
        B64URL.encode(
            self.signing
                .verifying_key()
                .to_encoded_point(false)
                .as_bytes(),
        )
    }

    /// The `Authorization` header for a push to `endpoint` (RFC 8292 §3):
    /// `vapid t=<ES256 JWT>, k=<public key>`, the JWT naming the endpoint's origin (`aud`),
    /// an expiry [`TOKEN_LIFETIME`] from `now` (`exp`) and the host's contact (`sub`).
    pub fn authorization(&self, endpoint: &Url, subject: &str, now: DateTime<Utc>) -> String {
        let header = B64URL.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let claims = serde_json::json!({
            "aud": endpoint.origin().ascii_serialization(),
            "exp": (now + TOKEN_LIFETIME).timestamp(),
            "sub": subject,
        });
        let claims = B64URL.encode(claims.to_string());
        let input = format!("{header}.{claims}");
        // JWS ES256: SHA-256, deterministic nonce (RFC 6979), r ‖ s as 64 bytes.
        let signature: Signature = self.signing.sign(input.as_bytes());
        let token = format!("{input}.{}", B64URL.encode(signature.to_bytes()));
        format!("vapid t={token}, k={}", self.public_key())
    }
}

/// Where the VAPID key file lives for a database URL: beside the credentials key.
pub fn key_file_for(database_url: &str) -> PathBuf {
    let key = crate::crypto::key_file_for(database_url);
    let name = key
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    key.with_file_name(format!("{}.vapid", name.trim_end_matches(".key")))
}

// ── a browser's subscription ────────────────────────────────────────────────────────────

/// A browser's push subscription, as `PushSubscription.toJSON()` gives it: the push
/// service's endpoint (a capability URL) and the browser's keys. `Debug` hides all three.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    endpoint: String,
    p256dh: String,
    auth: String,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription([redacted])")
    }
}

impl Subscription {
    /// Checks what a browser sent: an http(s) endpoint of bounded length (https only
    /// unless `allow_http`, i.e. `allow_private_addresses`), a P-256 public key (65 bytes,
    /// uncompressed, on the curve) and a 16-byte authentication secret.
    pub fn parse(
        endpoint: &str,
        p256dh: &str,
        auth: &str,
        allow_http: bool,
    ) -> Result<Subscription, PushError> {
        let bad = PushError::InvalidSubscription;
        if endpoint.len() > MAX_ENDPOINT {
            return Err(bad("the push endpoint is too long"));
        }
        let url = Url::parse(endpoint).map_err(|_| bad("the push endpoint is not a URL"))?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            _ => return Err(bad("the push endpoint must be an https:// address")),
        }
        if url.host().is_none() || !url.username().is_empty() || url.password().is_some() {
            return Err(bad("the push endpoint must be an https:// address"));
        }
        let key = decode(p256dh).ok_or(bad("the browser's push key is not base64url"))?;
        if key.len() != 65 || p256::PublicKey::from_sec1_bytes(&key).is_err() {
            return Err(bad("the browser's push key is not a P-256 public key"));
        }
        let secret = decode(auth).ok_or(bad("the push secret is not base64url"))?;
        if secret.len() != 16 {
            return Err(bad("the push secret must be 16 bytes"));
        }
        Ok(Subscription {
            endpoint: url.to_string(),
            p256dh: B64URL.encode(key),
            auth: B64URL.encode(secret),
        })
    }

    /// The endpoint, for sending and for recognising the same browser again. Never log it.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Stored form (sealed by the caller).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("three strings serialize")
    }

    /// From [`Subscription::to_json`]'s bytes.
    pub fn from_json(bytes: &[u8]) -> Option<Subscription> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Browsers send base64url without padding; some libraries add it.
fn decode(text: &str) -> Option<Vec<u8>> {
    B64URL.decode(text.trim().trim_end_matches('=')).ok()
}

// ── the message ─────────────────────────────────────────────────────────────────────────

/// What the service worker shows: a title, a body and the page a click opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub title: String,
    pub body: String,
    pub url: String,
    /// Notifications with the same tag replace each other in the browser.
    pub tag: String,
}

impl Notification {
    /// A reminder of one slot: the first notice's text (cut to [`MAX_BODY_CHARS`]), how
    /// many more there are, and the participant's page.
    pub fn reminder(notices: &[&str], me_url: &str, tag: &str) -> Notification {
        let first = notices.first().copied().unwrap_or_default();
        let mut body: String = first.chars().take(MAX_BODY_CHARS).collect();
        if first.chars().count() > MAX_BODY_CHARS {
            body.push('…');
        }
        if notices.len() > 1 {
            body.push_str(&format!(" (+{} more)", notices.len() - 1));
        }
        Notification {
            title: "Strike notice due".to_string(),
            body,
            url: me_url.to_string(),
            tag: tag.to_string(),
        }
    }
}

/// The push request for `subscription`: `payload` encrypted (RFC 8291, `aes128gcm`),
/// `TTL` (how long the push service may hold it), `Urgency: high` and the VAPID
/// `Authorization`.
pub fn build_request(
    key: &VapidKey,
    subject: &str,
    subscription: &Subscription,
    payload: &[u8],
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<http::Request<Vec<u8>>, PushError> {
    let endpoint = Url::parse(&subscription.endpoint)
        .map_err(|_| PushError::InvalidSubscription("the push endpoint is not a URL"))?;
    let uri: http::Uri = subscription
        .endpoint
        .parse()
        .map_err(|_| PushError::InvalidSubscription("the push endpoint is not a URL"))?;
    let ua_public = decode(&subscription.p256dh)
        .and_then(|k| p256::PublicKey::from_sec1_bytes(&k).ok())
        .ok_or(PushError::InvalidSubscription(
            "the browser's push key is not a P-256 public key",
        ))?;
    let auth: [u8; 16] = decode(&subscription.auth)
        .and_then(|a| a.try_into().ok())
        .ok_or(PushError::InvalidSubscription(
            "the push secret must be 16 bytes",
        ))?;
    let mut request =
        web_push_native::WebPushBuilder::new(uri, ua_public, web_push_native::Auth::from(auth))
            .with_valid_duration(ttl)
            .build(payload.to_vec())
            .map_err(|e| PushError::Encrypt(e.to_string()))?;
    let headers = request.headers_mut();
    headers.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&key.authorization(&endpoint, subject, now))
            .expect("base64url and ASCII punctuation are a valid header value"),
    );
    headers.insert("urgency", http::HeaderValue::from_static("high"));
    Ok(request)
}

// ── sending ─────────────────────────────────────────────────────────────────────────────

/// What became of one push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// The push service took it (2xx).
    Delivered,
    /// The subscription is no more (404 or 410): forget it.
    Gone,
    /// Not delivered, for a reason in picket's own words (no endpoint in it).
    Failed(String),
}

/// Sends notifications with the host's key through the guarded client.
#[derive(Clone)]
pub struct Pusher {
    http: Http,
    key: Arc<VapidKey>,
    subject: String,
    clock: Arc<dyn Clock>,
}

impl Pusher {
    /// `subject` is the VAPID `sub`: a `mailto:` or the host's https address.
    pub fn new(http: Http, key: Arc<VapidKey>, subject: String, clock: Arc<dyn Clock>) -> Pusher {
        Pusher {
            http,
            key,
            subject,
            clock,
        }
    }

    /// Push `notification` to `subscription`, to be dropped by the push service after
    /// `ttl`.
    pub async fn send(
        &self,
        subscription: &Subscription,
        notification: &Notification,
        ttl: Duration,
    ) -> PushOutcome {
        let payload = serde_json::to_vec(notification).expect("a notification serializes");
        let request = match build_request(
            &self.key,
            &self.subject,
            subscription,
            &payload,
            ttl,
            self.clock.now(),
        ) {
            Ok(r) => r,
            Err(e) => return PushOutcome::Failed(e.to_string()),
        };
        let (parts, body) = request.into_parts();
        let mut out = self.http.post(subscription.endpoint());
        for (name, value) in &parts.headers {
            // reqwest counts the body itself.
            if name == http::header::CONTENT_LENGTH {
                continue;
            }
            if let Ok(value) = value.to_str() {
                out = out.header(name.as_str(), value);
            }
        }
        match out
            .body(body)
            .max_body(16 * 1024)
            .timeout(PUSH_TIMEOUT)
            .send()
            .await
        {
            Ok(response) => match response.status().as_u16() {
                200..=299 => PushOutcome::Delivered,
                404 | 410 => PushOutcome::Gone,
                status => PushOutcome::Failed(format!("the push service answered {status}")),
            },
            Err(e) => PushOutcome::Failed(describe(&e)),
        }
    }
}

/// An error in words that never hold the endpoint: a refusal may quote the whole address.
fn describe(e: &HttpError) -> String {
    match e {
        HttpError::Refused(Refusal::NotAnAddress(_)) => {
            "the push endpoint is not an address picket can connect to".to_string()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::VerifyingKey;
    use p256::ecdsa::signature::Verifier;

    fn browser_keys() -> (String, String) {
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).unwrap();
        let public = secret.public_key();
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        (
            B64URL.encode(public.to_encoded_point(false).as_bytes()),
            B64URL.encode([9u8; 16]),
        )
    }

    fn claims_of(header: &str) -> (serde_json::Value, String, Vec<u8>, String) {
        let rest = header.strip_prefix("vapid t=").unwrap();
        let (token, k) = rest.split_once(", k=").unwrap();
        let mut parts = token.split('.');
        let (h, c, s) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let claims = serde_json::from_slice(&B64URL.decode(c).unwrap()).unwrap();
        (
            claims,
            format!("{h}.{c}"),
            B64URL.decode(s).unwrap(),
            k.to_string(),
        )
    }

    #[test]
    fn the_vapid_header_is_an_es256_token_for_the_endpoint_origin_with_its_port() {
        let key = VapidKey::generate();
        let now = DateTime::parse_from_rfc3339("2027-07-04T00:00:00Z")
            .unwrap()
            .to_utc();
        let endpoint = Url::parse("http://127.0.0.1:4567/push/abc?x=1").unwrap();
        let header = key.authorization(&endpoint, "mailto:host@example.org", now);
        let (claims, input, signature, k) = claims_of(&header);
        assert_eq!(claims["aud"], "http://127.0.0.1:4567");
        assert_eq!(claims["sub"], "mailto:host@example.org");
        assert_eq!(claims["exp"], (now + TOKEN_LIFETIME).timestamp());
        assert_eq!(k, key.public_key());
        let verifying = VerifyingKey::from_sec1_bytes(&B64URL.decode(&k).unwrap()).unwrap();
        let signature = Signature::from_slice(&signature).unwrap();
        assert!(verifying.verify(input.as_bytes(), &signature).is_ok());
        // A default port is not part of the origin.
        let header = key.authorization(
            &Url::parse("https://push.example:443/x").unwrap(),
            "mailto:a@b",
            now,
        );
        assert_eq!(claims_of(&header).0["aud"], "https://push.example");
    }

    #[test]
    fn a_vapid_key_reads_back_from_its_base64url_and_a_bad_one_is_refused() {
        let key = VapidKey::generate();
        let again = VapidKey::from_base64url(&key.to_base64url()).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(B64URL.decode(key.public_key()).unwrap().len(), 65);
        assert!(matches!(
            VapidKey::from_base64url("not a key"),
            Err(PushError::BadKey)
        ));
        assert!(matches!(
            VapidKey::from_base64url(&B64URL.encode([0u8; 32])),
            Err(PushError::BadKey)
        ));
        assert!(!format!("{key:?}").contains(&key.to_base64url()));
    }

    #[test]
    fn the_vapid_key_file_is_created_once_private_and_beside_the_credentials_key() {
        let dir = std::env::temp_dir().join(format!("picket-vapid-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = format!("sqlite://{}/p.db", dir.display());
        let path = key_file_for(&db);
        assert_eq!(path, dir.join("p.db.vapid"));
        let _ = std::fs::remove_file(&path);
        let first = VapidKey::open(None, &path).unwrap();
        let second = VapidKey::open(None, &path).unwrap();
        assert_eq!(first.public_key(), second.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let configured = VapidKey::generate();
        let chosen = VapidKey::open(Some(&Secret::new(configured.to_base64url())), &path).unwrap();
        assert_eq!(chosen.public_key(), configured.public_key());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_subscription_is_checked_and_never_shows_its_endpoint() {
        let (p256dh, auth) = browser_keys();
        let endpoint = "https://push.example/send/secret-capability";
        let sub = Subscription::parse(endpoint, &p256dh, &auth, false).unwrap();
        assert_eq!(sub.endpoint(), endpoint);
        assert!(!format!("{sub:?}").contains("secret-capability"));
        assert_eq!(Subscription::from_json(&sub.to_json()), Some(sub));
        let refused = |e: &str, k: &str, a: &str, http: bool| {
            Subscription::parse(e, k, a, http).unwrap_err().to_string()
        };
        assert!(refused("http://push.example/x", &p256dh, &auth, false).contains("https"));
        assert!(Subscription::parse("http://127.0.0.1:9/x", &p256dh, &auth, true).is_ok());
        assert!(refused("javascript:alert(1)", &p256dh, &auth, true).contains("https"));
        assert!(refused("not a url", &p256dh, &auth, false).contains("not a URL"));
        let long = format!("https://push.example/{}", "a".repeat(MAX_ENDPOINT));
        assert!(refused(&long, &p256dh, &auth, false).contains("too long"));
        assert!(refused(endpoint, &B64URL.encode([4u8; 65]), &auth, false).contains("P-256"));
        assert!(refused(endpoint, "!!", &auth, false).contains("base64url"));
        assert!(refused(endpoint, &p256dh, &B64URL.encode([1u8; 8]), false).contains("16"));
    }

    #[test]
    fn a_reminder_notification_holds_the_first_notice_and_counts_the_others() {
        let long = "x".repeat(MAX_BODY_CHARS + 10);
        let n = Notification::reminder(&["I'm on strike", "other"], "https://h/me", "slot-1");
        assert_eq!(n.title, "Strike notice due");
        assert_eq!(n.body, "I'm on strike (+1 more)");
        assert_eq!(n.url, "https://h/me");
        let n = Notification::reminder(&[long.as_str()], "https://h/me", "slot-1");
        assert_eq!(n.body.chars().count(), MAX_BODY_CHARS + 1);
        assert!(n.body.ends_with('…'));
    }

    #[test]
    fn a_push_request_carries_ttl_urgency_vapid_and_an_aes128gcm_body() {
        let key = VapidKey::generate();
        let (p256dh, auth) = browser_keys();
        let sub = Subscription::parse("https://push.example/s/1", &p256dh, &auth, false).unwrap();
        let now = Utc::now();
        let request = build_request(
            &key,
            "mailto:a@b",
            &sub,
            b"{\"title\":\"t\"}",
            Duration::from_secs(3600),
            now,
        )
        .unwrap();
        let h = request.headers();
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(request.uri(), "https://push.example/s/1");
        assert_eq!(h["ttl"], "3600");
        assert_eq!(h["urgency"], "high");
        assert_eq!(h["content-encoding"], "aes128gcm");
        assert!(h["authorization"].to_str().unwrap().starts_with("vapid t="));
        // RFC 8188 header: salt (16) ‖ rs (4) ‖ idlen (1) ‖ keyid (65), then one record of
        // the payload, its delimiter and the 16-byte tag.
        let body = request.body();
        assert_eq!(body[20], 65);
        assert_eq!(body.len(), 21 + 65 + 13 + 1 + 16);
    }
}
