//! The one way picket reaches a server over HTTP or WebSocket: [`Egress`] holds two
//! [`Http`] clients built the same way, one *guarded* for every address a visitor typed or
//! a remote document named (a Mastodon server, a Bluesky service, the PDS of a DID
//! document, nodeinfo, Nostr and bunker relays), one *trusted* for addresses the operator
//! typed (the command line, the settings file, this host's own `public_url`).
//!
//! ```text
//! Http::get(url) ─> Request::send
//!                    ├─ scheme: https (wss) only, unless private addresses are allowed
//!                    ├─ host an IP literal?  ─> checked here (the resolver never sees it)
//!                    └─ reqwest ─> Checked resolver: Lookup, then every address checked
//!                                   └─ connects to the addresses that were checked (no rebinding)
//! Http::websocket(url) ─> the same checks ─> TcpStream to a checked address
//!                                          ─> TLS + WebSocket handshake with the original name
//! ```
//!
//! Both clients: no redirects (a 3xx is handed back as it is), no unbounded bodies (each
//! [`Response`] reads at most [`MAX_BODY`] bytes, incrementally), a connect timeout and a
//! total timeout per request. The guarded one also ignores proxy settings: a proxy would
//! resolve names itself, past the check.
//!
//! Refusals are decided before any connection ([`Guard::addresses`]); tests assert on that
//! decision with a [`StaticLookup`] instead of sending traffic to the addresses refused.
//! Errors ([`HttpError`]) are for logs and the operator: what a visitor sees is decided by
//! the caller, never a remote body.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use url::{Host, Url};

/// The largest body (and WebSocket message) read from a server. Every document picket
/// reads (instance info, a session, a DID document, a page's `<head>`, a relay message)
/// is far smaller.
pub const MAX_BODY: usize = 1024 * 1024;

/// Longest wait for a TCP connection (and for a name to resolve).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest a request may take, body included, unless the caller sets its own.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why picket will not connect to an address. Decided before any connection is made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a URL with a host.
    #[error("`{0}` is not an address picket can connect to")]
    NotAnAddress(String),
    /// Plain `http://` or `ws://` to an address someone other than the operator chose.
    #[error(
        "only https:// and wss:// addresses are allowed, not {0}:// (allow_private_addresses = true allows others)"
    )]
    Scheme(String),
    /// The host is, or resolves to, an address that is not public.
    #[error(
        "{host} is {ip}, a {kind} address: picket only connects to public addresses (allow_private_addresses = true allows others)"
    )]
    NotPublic {
        host: String,
        ip: IpAddr,
        kind: &'static str,
    },
}

/// Why a request or connection did not give a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The address is not allowed: nothing was sent.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// No connection (the name did not resolve, refused, TLS, connect timeout): nothing
    /// was sent.
    #[error("could not connect: {0}")]
    Connect(String),
    /// The request may have reached the server (a timeout or error after sending).
    #[error("{0}")]
    Transport(String),
    /// The answer is larger than allowed; the rest was not read.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    /// The answer is not what was asked for (JSON, UTF-8, a WebSocket handshake).
    #[error("unreadable answer: {0}")]
    Decode(String),
}

impl HttpError {
    /// Whether the server may have received the request (so a retry could repeat it).
    pub fn maybe_sent(&self) -> bool {
        !matches!(self, HttpError::Refused(_) | HttpError::Connect(_))
    }

    fn from_reqwest(e: &reqwest::Error) -> HttpError {
        // The resolver's refusal comes back wrapped in reqwest's connect error.
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(s) = source {
            if let Some(HttpError::Refused(r)) = s.downcast_ref::<HttpError>() {
                return HttpError::Refused(r.clone());
            }
            source = s.source();
        }
        let reason = without_url(e);
        // reqwest reports a body cut off (a timeout, a reset) as a "decode" error: it is
        // the transport's failure either way. Bodies are decoded here, not by reqwest.
        if e.is_connect() || e.is_builder() {
            HttpError::Connect(reason)
        } else {
            HttpError::Transport(reason)
        }
    }
}

/// reqwest errors print the URL; a URL can carry a token, so leave it out. The whole
/// chain of causes is kept: "error sending request" alone says nothing.
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            s = format!("{s}: {c}");
        }
        source = cause.source();
    }
    if let Some(u) = e.url() {
        s = s.replace(u.as_str(), "<url>");
    }
    s
}

// ── which addresses are public ─────────────────────────────────────────────────────────

/// IPv4 ranges that are not reachable on the public internet (IANA special-purpose
/// registry): (network, prefix length, what it is).
const V4_SPECIAL: &[(u32, u32, &str)] = &[
    (0x0000_0000, 8, "\"this network\" (0.0.0.0/8)"),
    (0x0a00_0000, 8, "private (10.0.0.0/8)"),
    (0x6440_0000, 10, "carrier-grade NAT (100.64.0.0/10)"),
    (0x7f00_0000, 8, "loopback"),
    (0xa9fe_0000, 16, "link-local (169.254.0.0/16)"),
    (0xac10_0000, 12, "private (172.16.0.0/12)"),
    (0xc000_0000, 24, "IETF protocol (192.0.0.0/24)"),
    (0xc000_0200, 24, "documentation (192.0.2.0/24)"),
    (0xc058_6300, 24, "6to4 relay (192.88.99.0/24)"),
    (0xc0a8_0000, 16, "private (192.168.0.0/16)"),
    (0xc612_0000, 15, "benchmarking (198.18.0.0/15)"),
    (0xc633_6400, 24, "documentation (198.51.100.0/24)"),
    (0xcb00_7100, 24, "documentation (203.0.113.0/24)"),
    (0xe000_0000, 4, "multicast"),
    (0xf000_0000, 4, "reserved or broadcast (240.0.0.0/4)"),
];

/// IPv6 ranges inside global unicast (2000::/3) that are not public servers.
const V6_SPECIAL: &[(u128, u32, &str)] = &[
    // Teredo, ORCHID, benchmarking, AMT ...: none of them hosts a server picket needs.
    (0x2001_0000 << 96, 23, "IETF protocol (2001::/23)"),
    (0x2001_0db8 << 96, 32, "documentation (2001:db8::/32)"),
    (0x3fff_0000 << 96, 20, "documentation (3fff::/20)"),
];

fn in_prefix<T>(ip: T, net: T, len: u32, bits: u32) -> bool
where
    T: Copy + std::ops::Shr<u32, Output = T> + PartialEq,
{
    len == 0 || ip >> (bits - len) == net >> (bits - len)
}

/// What kind of non-public address `ip` is, or `None` when it is public.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let n = u32::from(ip);
    V4_SPECIAL
        .iter()
        .find(|(net, len, _)| in_prefix(n, *net, *len, 32))
        .map(|(_, _, kind)| *kind)
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let n = u128::from(ip);
    // Forms that carry an IPv4 address reach that address: judge it.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return non_public_v4(v4).map(|_| "IPv4-mapped non-public");
    }
    if in_prefix(n, 0x0064_ff9b << 96, 96, 128) {
        return non_public_v4(Ipv4Addr::from(n as u32)).map(|_| "NAT64 of a non-public");
    }
    if in_prefix(n, 0x2002 << 112, 16, 128) {
        return non_public_v4(Ipv4Addr::from((n >> 80) as u32)).map(|_| "6to4 of a non-public");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if in_prefix(n, 0xfc00 << 112, 7, 128) {
        return Some("unique local (fc00::/7)");
    }
    if in_prefix(n, 0xfe80 << 112, 10, 128) {
        return Some("link-local (fe80::/10)");
    }
    if ip.is_multicast() {
        return Some("multicast");
    }
    // Everything outside 2000::/3 is special: IPv4-compatible (::/96), local NAT64
    // (64:ff9b:1::/48), discard (100::/64), site-local (fec0::/10), SRv6 (5f00::/16) ...
    if !in_prefix(n, 0x2000 << 112, 3, 128) {
        return Some("special-purpose IPv6");
    }
    V6_SPECIAL
        .iter()
        .find(|(net, len, _)| in_prefix(n, *net, *len, 128))
        .map(|(_, _, kind)| *kind)
}

// ── resolving names ─────────────────────────────────────────────────────────────────────

/// Turns a host name into addresses. The system's resolver in production; a fixed map in
/// tests, so made-up names can stand for any address without a packet leaving loopback.
#[async_trait]
pub trait Lookup: Send + Sync + 'static {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The machine's resolver (`getaddrinfo`, as reqwest itself would use).
pub struct SystemLookup;

#[async_trait]
impl Lookup for SystemLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0))
            .await?
            .map(|a| a.ip())
            .collect())
    }
}

/// Names answered from a map (tests); any other name does not resolve.
#[derive(Default)]
pub struct StaticLookup(HashMap<String, Vec<IpAddr>>);

impl StaticLookup {
    pub fn new() -> StaticLookup {
        StaticLookup::default()
    }

    pub fn with(mut self, host: &str, ips: &[IpAddr]) -> StaticLookup {
        self.0.insert(host.to_ascii_lowercase(), ips.to_vec());
        self
    }
}

#[async_trait]
impl Lookup for StaticLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        let key = host.trim_end_matches('.').to_ascii_lowercase();
        self.0.get(&key).cloned().ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{host}: no such name"),
            )
        })
    }
}

// ── the guard ───────────────────────────────────────────────────────────────────────────

/// The decision whether an address may be reached. With `allow_private`, anything goes
/// (the operator's own addresses, or a host whose operator allowed private ones).
#[derive(Clone)]
pub struct Guard {
    allow_private: bool,
    lookup: Arc<dyn Lookup>,
}

impl Guard {
    pub fn new(allow_private: bool, lookup: Arc<dyn Lookup>) -> Guard {
        Guard {
            allow_private,
            lookup,
        }
    }

    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// What can be decided from the URL alone: its scheme, and its host when that is an
    /// IP address (which no resolver sees). `secure` is the scheme required
    /// (`https` or `wss`); `plain` the one allowed only with private addresses.
    fn check_static(&self, url: &Url, secure: &str, plain: &str) -> Result<(), Refusal> {
        let scheme = url.scheme();
        if scheme != secure && !(scheme == plain && self.allow_private) {
            return Err(if scheme == plain {
                Refusal::Scheme(scheme.to_string())
            } else {
                Refusal::NotAnAddress(url.to_string())
            });
        }
        match url.host() {
            None => Err(Refusal::NotAnAddress(url.to_string())),
            Some(Host::Ipv4(ip)) => self.check_ip(&ip.to_string(), ip.into()),
            Some(Host::Ipv6(ip)) => self.check_ip(&ip.to_string(), ip.into()),
            Some(Host::Domain(_)) => Ok(()),
        }
    }

    fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), Refusal> {
        match non_public(ip) {
            Some(kind) if !self.allow_private => Err(Refusal::NotPublic {
                host: host.to_string(),
                ip,
                kind,
            }),
            _ => Ok(()),
        }
    }

    /// Resolve `host` and check every address it has: one non-public address refuses the
    /// name (a name that points inside is not a server on the internet).
    pub async fn resolve(&self, host: &str) -> Result<Vec<IpAddr>, HttpError> {
        let ips = tokio::time::timeout(CONNECT_TIMEOUT, self.lookup.lookup(host))
            .await
            .map_err(|_| HttpError::Connect(format!("resolving {host} timed out")))?
            .map_err(|e| HttpError::Connect(format!("resolving {host}: {e}")))?;
        if ips.is_empty() {
            return Err(HttpError::Connect(format!("{host} has no address")));
        }
        for ip in &ips {
            self.check_ip(host, *ip)?;
        }
        Ok(ips)
    }

    /// The addresses a request to `url` would connect to, all checked: the whole decision,
    /// made before any connection.
    pub async fn addresses(&self, url: &str) -> Result<Vec<SocketAddr>, HttpError> {
        let u = Url::parse(url).map_err(|_| Refusal::NotAnAddress(url.to_string()))?;
        let (secure, plain) = match u.scheme() {
            "ws" | "wss" => ("wss", "ws"),
            _ => ("https", "http"),
        };
        self.check_static(&u, secure, plain)?;
        let port = u
            .port_or_known_default()
            .ok_or_else(|| Refusal::NotAnAddress(url.to_string()))?;
        let ips = match u.host() {
            Some(Host::Domain(d)) => self.resolve(d).await?,
            Some(Host::Ipv4(ip)) => vec![ip.into()],
            Some(Host::Ipv6(ip)) => vec![ip.into()],
            None => return Err(Refusal::NotAnAddress(url.to_string()).into()),
        };
        Ok(ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }
}

/// reqwest's resolver for a guarded client: the names it connects to are checked here, and
/// it connects to exactly the addresses returned.
struct Checked(Guard);

impl reqwest::dns::Resolve for Checked {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let ips = guard.resolve(&host).await?;
            let addrs: reqwest::dns::Addrs =
                Box::new(ips.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

// ── the HTTP client ─────────────────────────────────────────────────────────────────────

/// An HTTP client whose every request passes its [`Guard`]. Cheap to clone (one
/// connection pool).
#[derive(Clone)]
pub struct Http {
    client: reqwest::Client,
    guard: Guard,
}

impl Http {
    pub fn new(guard: Guard) -> Http {
        Http::with_timeouts(guard, CONNECT_TIMEOUT, REQUEST_TIMEOUT)
    }

    /// A client for addresses the operator typed, alone (one-shot commands).
    pub fn trusted() -> Http {
        Http::new(Guard::new(true, Arc::new(SystemLookup)))
    }

    /// Like [`Http::new`] with other default timeouts (tests).
    pub fn with_timeouts(guard: Guard, connect: Duration, total: Duration) -> Http {
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("picket/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(connect)
            .timeout(total)
            .pool_max_idle_per_host(256)
            .dns_resolver(Arc::new(Checked(guard.clone())));
        if !guard.allow_private {
            builder = builder.no_proxy().https_only(true);
        }
        Http {
            client: builder.build().expect("TLS backend available"),
            guard,
        }
    }

    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    pub fn get(&self, url: &str) -> Request {
        self.request(Method::GET, url)
    }

    pub fn post(&self, url: &str) -> Request {
        self.request(Method::POST, url)
    }

    pub fn delete(&self, url: &str) -> Request {
        self.request(Method::DELETE, url)
    }

    pub fn request(&self, method: Method, url: &str) -> Request {
        let checked = Url::parse(url)
            .map_err(|_| Refusal::NotAnAddress(url.to_string()))
            .and_then(|u| self.guard.check_static(&u, "https", "http"));
        Request {
            builder: self.client.request(method, url),
            checked,
            max_body: MAX_BODY,
        }
    }

    /// Open a WebSocket to `url` (`wss://`, or `ws://` where private addresses are
    /// allowed): the name is resolved and checked here, the TCP connection goes to a
    /// checked address, and TLS and the handshake run over it with the original name.
    /// Messages larger than [`MAX_BODY`] end the connection.
    pub async fn websocket(&self, url: &str) -> Result<WebSocket, HttpError> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.open_websocket(url))
            .await
            .map_err(|_| HttpError::Connect("the WebSocket handshake timed out".into()))?
    }

    async fn open_websocket(&self, url: &str) -> Result<WebSocket, HttpError> {
        use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
        let is_ws = Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "ws" | "wss"));
        if !is_ws {
            return Err(Refusal::NotAnAddress(url.to_string()).into());
        }
        let addrs = self.guard.addresses(url).await?;
        let mut last = String::from("no address");
        let mut stream = None;
        for addr in addrs {
            match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await
            {
                Ok(Ok(s)) => {
                    stream = Some(s);
                    break;
                }
                Ok(Err(e)) => last = e.to_string(),
                Err(_) => last = "connect timed out".into(),
            }
        }
        let stream = stream.ok_or(HttpError::Connect(last))?;
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_BODY))
            .max_frame_size(Some(MAX_BODY));
        let (ws, _) =
            tokio_tungstenite::client_async_tls_with_config(url, stream, Some(config), None)
                .await
                .map_err(|e| HttpError::Connect(format!("WebSocket handshake: {e}")))?;
        Ok(ws)
    }
}

/// A WebSocket opened by [`Http::websocket`].
pub type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A request being built; nothing is sent before [`Request::send`].
pub struct Request {
    builder: reqwest::RequestBuilder,
    checked: Result<(), Refusal>,
    max_body: usize,
}

impl Request {
    pub fn bearer_auth(mut self, token: &str) -> Request {
        self.builder = self.builder.bearer_auth(token);
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.builder = self.builder.header(name, value);
        self
    }

    pub fn json<T: serde::Serialize + ?Sized>(mut self, body: &T) -> Request {
        self.builder = self.builder.json(body);
        self
    }

    /// A `multipart/form-data` body (uploads: Mastodon's media).
    pub fn multipart(mut self, form: reqwest::multipart::Form) -> Request {
        self.builder = self.builder.multipart(form);
        self
    }

    pub fn body(mut self, body: impl Into<reqwest::Body>) -> Request {
        self.builder = self.builder.body(body);
        self
    }

    /// The whole request, body included, within `timeout` (instead of the client's).
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.builder = self.builder.timeout(timeout);
        self
    }

    /// Read at most `bytes` of the answer (instead of [`MAX_BODY`]).
    pub fn max_body(mut self, bytes: usize) -> Request {
        self.max_body = bytes;
        self
    }

    pub async fn send(self) -> Result<Response, HttpError> {
        self.checked?;
        let inner = self
            .builder
            .send()
            .await
            .map_err(|e| HttpError::from_reqwest(&e))?;
        Ok(Response {
            inner,
            max_body: self.max_body,
        })
    }
}

/// An answer whose body has not been read yet.
pub struct Response {
    inner: reqwest::Response,
    max_body: usize,
}

impl Response {
    pub fn status(&self) -> StatusCode {
        self.inner.status()
    }

    pub fn headers(&self) -> &HeaderMap {
        self.inner.headers()
    }

    /// The body, read chunk by chunk and given up past the limit.
    pub async fn bytes(mut self) -> Result<Vec<u8>, HttpError> {
        let max = self.max_body;
        if self.inner.content_length().is_some_and(|n| n > max as u64) {
            return Err(HttpError::TooLarge(max));
        }
        let mut out = Vec::new();
        while let Some(chunk) = self
            .inner
            .chunk()
            .await
            .map_err(|e| HttpError::from_reqwest(&e))?
        {
            if out.len() + chunk.len() > max {
                return Err(HttpError::TooLarge(max));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// The body as text (invalid UTF-8 replaced).
    pub async fn text(self) -> Result<String, HttpError> {
        Ok(String::from_utf8_lossy(&self.bytes().await?).into_owned())
    }

    pub async fn json<T: serde::de::DeserializeOwned>(self) -> Result<T, HttpError> {
        let bytes = self.bytes().await?;
        serde_json::from_slice(&bytes).map_err(|e| HttpError::Decode(e.to_string()))
    }
}

// ── the two clients ─────────────────────────────────────────────────────────────────────

/// The guarded and the trusted client, built once per process and shared.
#[derive(Clone)]
pub struct Egress {
    guarded: Http,
    trusted: Http,
}

impl Egress {
    /// With the system's resolver. `allow_private_addresses` (the setting) lets the guarded
    /// client reach private and loopback addresses, over plain http/ws too.
    pub fn new(allow_private_addresses: bool) -> Egress {
        Egress::with_lookup(allow_private_addresses, Arc::new(SystemLookup))
    }

    /// With names resolved by `lookup` (tests).
    pub fn with_lookup(allow_private_addresses: bool, lookup: Arc<dyn Lookup>) -> Egress {
        Egress {
            guarded: Http::new(Guard::new(allow_private_addresses, lookup.clone())),
            trusted: Http::new(Guard::new(true, lookup)),
        }
    }

    /// For addresses a visitor typed or a remote document named.
    pub fn guarded(&self) -> &Http {
        &self.guarded
    }

    /// For addresses the operator typed (command line, settings, this host's own URL).
    pub fn trusted(&self) -> &Http {
        &self.trusted
    }

    /// The client for an account's servers: trusted only if the operator added it.
    pub fn for_account(&self, trusted: bool) -> &Http {
        if trusted {
            &self.trusted
        } else {
            &self.guarded
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_special_purpose_ipv4_range_is_not_public() {
        for a in [
            "0.0.0.0",
            "0.255.255.255",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(non_public(ip(a)).is_some(), "{a} should not be public");
        }
    }

    #[test]
    fn public_ipv4_addresses_next_to_the_special_ranges_are_public() {
        for a in [
            "1.1.1.1",
            "9.255.255.255",
            "11.0.0.1",
            "100.63.255.255",
            "100.128.0.1",
            "126.255.255.255",
            "128.0.0.1",
            "169.253.255.255",
            "169.255.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.0.3.1",
            "192.167.255.255",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.1",
            "223.255.255.255",
        ] {
            assert_eq!(non_public(ip(a)), None, "{a} should be public");
        }
    }

    #[test]
    fn every_special_purpose_ipv6_range_is_not_public() {
        for a in [
            "::",
            "::1",
            "::127.0.0.1",
            "::8.8.8.8",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:2::1",
            "2001:db8::1",
            "3fff::1",
            "5f00::1",
            "fc00::1",
            "fd12:3456:789a::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
        ] {
            assert!(non_public(ip(a)).is_some(), "{a} should not be public");
        }
    }

    #[test]
    fn ipv6_forms_of_private_ipv4_addresses_are_not_public_and_of_public_ones_are() {
        for a in [
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::ffff:100.64.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::127.0.0.1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
        ] {
            assert!(non_public(ip(a)).is_some(), "{a} should not be public");
        }
        for a in [
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2a00:1450:4001:80b::200e",
            "2606:4700::6810:84e5",
        ] {
            assert_eq!(non_public(ip(a)), None, "{a} should be public");
        }
    }

    fn guard(allow_private: bool) -> Guard {
        let lookup = StaticLookup::new()
            .with("metadata.test", &[ip("169.254.169.254")])
            .with("inside.test", &[ip("10.1.2.3")])
            .with("mixed.test", &[ip("93.184.215.14"), ip("192.168.0.10")])
            .with("mapped.test", &[ip("::ffff:127.0.0.1")])
            .with("ula.test", &[ip("fd00::5")])
            .with(
                "public.test",
                &[ip("93.184.215.14"), ip("2606:2800:21f::1")],
            )
            .with("loop.test", &[ip("127.0.0.1")]);
        Guard::new(allow_private, Arc::new(lookup))
    }

    async fn refusal(g: &Guard, url: &str) -> Option<Refusal> {
        match g.addresses(url).await {
            Err(HttpError::Refused(r)) => Some(r),
            Err(other) => panic!("{url}: expected a refusal, got {other}"),
            Ok(_) => None,
        }
    }

    #[tokio::test]
    async fn names_and_literals_of_non_public_addresses_are_refused_before_any_connection() {
        let g = guard(false);
        for url in [
            "https://metadata.test/latest/meta-data/",
            "https://inside.test",
            "https://mixed.test/",
            "https://mapped.test/",
            "https://ula.test/",
            "https://169.254.169.254/latest/meta-data/",
            "https://[::ffff:169.254.169.254]/",
            "https://[fe80::1]/",
            "https://127.1/",
            "https://0x7f000001/",
            "https://0/",
            "wss://loop.test/",
            "wss://[::1]:7777/",
        ] {
            assert!(
                matches!(refusal(&g, url).await, Some(Refusal::NotPublic { .. })),
                "{url}"
            );
        }
    }

    #[tokio::test]
    async fn public_names_pass_with_every_address_and_the_scheme_port() {
        let addrs = guard(false)
            .addresses("https://public.test/api")
            .await
            .unwrap();
        assert_eq!(
            addrs,
            vec![
                "93.184.215.14:443".parse::<SocketAddr>().unwrap(),
                "[2606:2800:21f::1]:443".parse().unwrap()
            ]
        );
    }

    #[tokio::test]
    async fn plain_http_and_ws_are_refused_unless_private_addresses_are_allowed() {
        let g = guard(false);
        assert_eq!(
            refusal(&g, "http://public.test/").await,
            Some(Refusal::Scheme("http".into()))
        );
        assert_eq!(
            refusal(&g, "ws://public.test/").await,
            Some(Refusal::Scheme("ws".into()))
        );
        assert!(matches!(
            refusal(&g, "ftp://public.test/").await,
            Some(Refusal::NotAnAddress(_))
        ));
        let open = guard(true);
        assert_eq!(refusal(&open, "http://loop.test:8080/").await, None);
        assert_eq!(refusal(&open, "ws://127.0.0.1:9/").await, None);
        assert_eq!(refusal(&open, "https://metadata.test/").await, None);
    }

    /// A loopback listener that counts connections and answers each with `answer`.
    async fn server(answer: Vec<u8>) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                let answer = answer.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = conn.read(&mut buf).await;
                    let _ = conn.write_all(&answer).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        (format!("http://{addr}"), count)
    }

    fn http_answer(status: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let mut a = format!(
            "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        a.extend_from_slice(body);
        a
    }

    #[tokio::test]
    async fn a_guarded_client_sends_nothing_to_a_name_that_resolves_to_loopback() {
        // Arrange: a listener on loopback, and a made-up name that resolves to it.
        let (base, count) = server(http_answer("200 OK", "", b"{}")).await;
        let port = base.rsplit(':').next().unwrap();
        let lookup = StaticLookup::new().with("innocent.test", &[ip("127.0.0.1")]);
        let egress = Egress::with_lookup(false, Arc::new(lookup));

        // Act
        let by_name = egress
            .guarded()
            .get(&format!("https://innocent.test:{port}/"))
            .send()
            .await;
        let by_literal = egress.guarded().get(&format!("{base}/")).send().await;
        let by_https_literal = egress
            .guarded()
            .get(&format!("https://127.0.0.1:{port}/"))
            .send()
            .await;

        // Assert
        assert!(
            matches!(by_name, Err(HttpError::Refused(Refusal::NotPublic { .. }))),
            "{:?}",
            by_name.err()
        );
        assert!(matches!(by_literal, Err(HttpError::Refused(_))));
        assert!(matches!(
            by_https_literal,
            Err(HttpError::Refused(Refusal::NotPublic { .. }))
        ));
        assert_eq!(count.load(Ordering::SeqCst), 0, "no connection was made");
    }

    #[tokio::test]
    async fn redirects_are_handed_back_not_followed() {
        // Arrange: a server that redirects to another local server.
        let (target, target_count) = server(http_answer("200 OK", "", b"inside")).await;
        let (base, _) = server(http_answer(
            "302 Found",
            &format!("location: {target}/secret\r\n"),
            b"",
        ))
        .await;
        let egress = Egress::new(true);

        // Act
        let guarded = egress.guarded().get(&base).send().await.unwrap();
        let trusted = egress.trusted().get(&base).send().await.unwrap();

        // Assert
        assert_eq!(guarded.status(), StatusCode::FOUND);
        assert_eq!(trusted.status(), StatusCode::FOUND);
        assert_eq!(target_count.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_body_over_the_cap_is_refused_with_or_without_a_length() {
        // Arrange: one server announces its 2 MiB, the other streams it without a length.
        let big = vec![b'x'; 2 * MAX_BODY];
        let (announced, _) = server(http_answer("200 OK", "", &big)).await;
        let mut streamed = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
        streamed.extend_from_slice(&big);
        let (unannounced, _) = server(streamed).await;
        let (small, _) = server(http_answer("200 OK", "", b"fine")).await;
        let http = Egress::new(true).guarded().clone();

        // Act
        let a = http.get(&announced).send().await.unwrap().bytes().await;
        let b = http.get(&unannounced).send().await.unwrap().bytes().await;
        let c = http.get(&small).send().await.unwrap().text().await;
        let capped = http
            .get(&small)
            .max_body(2)
            .send()
            .await
            .unwrap()
            .bytes()
            .await;

        // Assert
        assert!(matches!(a, Err(HttpError::TooLarge(MAX_BODY))), "{a:?}");
        assert!(matches!(b, Err(HttpError::TooLarge(MAX_BODY))), "{b:?}");
        assert_eq!(c.unwrap(), "fine");
        assert!(matches!(capped, Err(HttpError::TooLarge(2))));
    }

    #[tokio::test]
    async fn a_server_that_trickles_its_answer_is_cut_off_by_the_total_timeout() {
        // Arrange: headers at once, then one byte of body every 100 ms, forever.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let _ = conn.read(&mut buf).await;
                    let _ = conn
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n")
                        .await;
                    loop {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        if conn.write_all(b"x").await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let http = Http::with_timeouts(
            Guard::new(true, Arc::new(SystemLookup)),
            Duration::from_secs(1),
            Duration::from_millis(600),
        );
        let started = std::time::Instant::now();

        // Act
        let read = async {
            http.get(&format!("http://{addr}/"))
                .send()
                .await?
                .bytes()
                .await
        };
        let result = read.await;

        // Assert
        assert!(matches!(result, Err(HttpError::Transport(_))), "{result:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_websocket_to_a_refused_address_is_never_opened() {
        let (base, count) = server(Vec::new()).await;
        let port = base.rsplit(':').next().unwrap();
        let lookup = StaticLookup::new().with("relay.test", &[ip("127.0.0.1")]);
        let guarded = Egress::with_lookup(false, Arc::new(lookup))
            .guarded()
            .clone();

        for url in [
            format!("wss://relay.test:{port}/"),
            format!("wss://127.0.0.1:{port}/"),
            format!("ws://127.0.0.1:{port}/"),
        ] {
            let r = guarded.websocket(&url).await;
            assert!(matches!(r, Err(HttpError::Refused(_))), "{url}");
        }
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_websocket_connects_to_the_checked_address_and_refuses_oversized_messages() {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        // Arrange: a WebSocket server on loopback, reached through a made-up name, that
        // echoes once and then sends a message over the cap.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (conn, _) = listener.accept().await.unwrap();
            let mut ws = tokio_tungstenite::accept_async(conn).await.unwrap();
            if let Some(Ok(m)) = ws.next().await {
                let _ = ws.send(m).await;
            }
            let _ = ws.send(Message::text("x".repeat(MAX_BODY + 1))).await;
        });
        let lookup = StaticLookup::new().with("relay.test", &[ip("127.0.0.1")]);
        let open = Egress::with_lookup(true, Arc::new(lookup));

        // Act
        let mut ws = open
            .guarded()
            .websocket(&format!("ws://relay.test:{port}/"))
            .await
            .unwrap();
        ws.send(Message::text("hello")).await.unwrap();
        let echo = ws.next().await;
        let oversized = ws.next().await;

        // Assert
        assert_eq!(echo.unwrap().unwrap(), Message::text("hello"));
        assert!(matches!(oversized, Some(Err(_)) | None), "{oversized:?}");
    }
}
