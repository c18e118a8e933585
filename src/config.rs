//! Settings: built-in defaults, then a TOML file (`--config` / `PICKET_CONFIG`), then
//! `PICKET_*` environment variables, then command-line flags; the later wins.
//!
//! Secrets (the credential key, SMTP password) are wrapped in [`Secret`] so a `{:?}` of the
//! settings, in a log line or a panic, never shows them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::domain::Secret;

/// Everything picket can be configured with. Every key is optional in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `sqlite://picket.db` (default), a bare path (SQLite), or `postgres://...`.
    pub database_url: String,
    /// Where campaign files are read from.
    pub campaigns_dir: PathBuf,
    /// Address `picket serve` listens on.
    pub bind: SocketAddr,
    /// The address people reach this host at; used in invitation links and posts.
    pub public_url: String,
    /// Folder whose files shadow the built-in page templates of the same name.
    pub templates_dir: Option<PathBuf>,
    /// The key that encrypts account credentials (base64, 32 bytes). When unset, a key
    /// file is created beside the database, readable only by its owner.
    pub secret_key: Option<Secret>,
    /// The host's Web Push (VAPID) private key, base64url of 32 bytes. When unset, a key
    /// file is created beside the credentials key, readable only by its owner.
    pub vapid_key: Option<Secret>,
    /// Who push services can contact about this host's pushes (the VAPID `sub`): a
    /// `mailto:` address or an https URL. Unset: `public_url`.
    pub vapid_subject: Option<String>,
    /// Public rate limits on forms and the API (`PICKET_RATE_LIMITS=off` to disable).
    pub rate_limits: bool,
    /// Let visitors connect accounts on private, loopback and other non-public addresses
    /// (and over plain http/ws). Off: only public https/wss servers; addresses typed on the
    /// command line are trusted either way.
    pub allow_private_addresses: bool,
    /// Scheduler tuning.
    pub scheduler: SchedulerSettings,
    /// Outgoing e-mail. When set, signatures with an address wait for a confirmation link
    /// and magic links are mailed; without it, nothing is mailed.
    pub smtp: Option<SmtpSettings>,
    /// Magic links, signed-in browsers and the mail budget per address.
    pub sessions: SessionSettings,
    // --- On the open internet: the reverse proxy, the sandbox, connection limits. ---
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers are believed (IPs or
    /// CIDRs). Empty: the TCP peer is the client, whatever the headers say.
    pub trusted_proxies: TrustedProxies,
    /// Serve the sandbox receiver at `/sandbox` (rehearsals, demos, tests). Off: 404.
    pub sandbox: bool,
    /// What the sandbox receiver keeps in memory at most, in bytes; past it, new posts are
    /// refused (507).
    pub sandbox_max_bytes: u64,
    /// Timeouts and the connection cap of `picket serve`.
    pub http: HttpSettings,
    // --- Official APIs, each off unless the host registered an app with the network. ---
    /// Threads (Meta): the app's Threads app id and secret. Absent: Threads accounts can
    /// only be tap-to-post.
    pub threads: Option<OAuthApp>,
    /// LinkedIn: the app's client id and secret (product "Share on LinkedIn" and "Sign In
    /// with LinkedIn using OpenID Connect"). Absent: LinkedIn accounts are tap-to-post only.
    pub linkedin: Option<OAuthApp>,
    /// X: the app's OAuth 2.0 client id and secret. Even with them, X accounts post
    /// through the API only for campaigns that say `x_api = true`.
    pub x: Option<OAuthApp>,
    /// Facebook Pages: the Meta app's id and secret (Facebook Login). Profiles have no
    /// posting API and stay tap-to-post.
    pub facebook: Option<OAuthApp>,
    /// `[[webhooks]]`: where the organiser is told what happens (see docs/webhooks.md).
    pub webhooks: Vec<WebhookSettings>,
    // --- Centerless totals (docs/checkpoints.md). ---
    /// The host's Ed25519 key that signs its checkpoints, base64 of the 32-byte seed. When
    /// unset, a key file is created beside the credentials key, readable only by its owner.
    pub host_key: Option<Secret>,
    /// `[[peers]]`: other hosts of the same campaigns whose checkpoints are added up.
    pub peers: Vec<PeerSettings>,
    /// How often each peer's checkpoint is read, in seconds.
    pub federation_refresh_secs: u64,
    /// Opt-in, for hosts that trust each other: a secret shared only among the listed
    /// hosts, keying the hashes of the distinct-signers sketch (docs/checkpoints.md). Unset:
    /// no sketch is made or read, and no estimate is shown.
    pub distinct_signers_key: Option<Secret>,
    /// `[[channels]]`: the organiser's own announcement accounts (Matrix, Telegram,
    /// Discord) with their tokens; campaign files name them and may declare the rest.
    pub channels: Vec<ChannelSettings>,
    /// `PICKET_CHANNEL_<NAME>_TOKEN` variables found at load, by variable name: the tokens
    /// of channels only a campaign file declares.
    #[serde(skip)]
    pub channel_env_tokens: std::collections::BTreeMap<String, Secret>,
}

/// One `[[channels]]` entry of the host settings: a broadcast channel's token, and
/// optionally where it is (a campaign file's `[[channels]]` entry of the same name may say
/// that instead; what is given here wins).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSettings {
    pub name: String,
    /// `matrix`, `telegram` or `discord`.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub homeserver: Option<String>,
    #[serde(default)]
    pub room: Option<String>,
    #[serde(default)]
    pub chat: Option<String>,
    #[serde(default)]
    pub api: Option<String>,
    /// Matrix: an access token; Telegram: the bot token; Discord: the webhook's whole
    /// address (it holds the webhook's token). Unset: `PICKET_CHANNEL_<NAME>_TOKEN`.
    #[serde(default)]
    pub token: Option<Secret>,
}

/// The environment variable a channel's token may come from:
/// `PICKET_CHANNEL_<NAME>_TOKEN`, the name upper-cased with `-` as `_`.
pub fn channel_token_env(name: &str) -> String {
    format!(
        "PICKET_CHANNEL_{}_TOKEN",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

impl ChannelSettings {
    fn check(&mut self, n: usize, get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let name = format!("channels[{n}]");
        anyhow::ensure!(
            (1..=40).contains(&self.name.len())
                && self.name.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'-'
                    || b == b'_'),
            "{name}: name {:?}: use 1 to 40 lowercase letters, digits, '-' or '_'",
            self.name
        );
        if let Some(kind) = &self.kind {
            anyhow::ensure!(
                matches!(kind.as_str(), "matrix" | "telegram" | "discord"),
                "{name}: unknown kind {kind:?}; use \"matrix\", \"telegram\" or \"discord\""
            );
        }
        if let Some(v) = get(&channel_token_env(&self.name)).filter(|v| !v.is_empty()) {
            self.token = Some(Secret::new(v));
        }
        Ok(())
    }
}

/// One `[[peers]]` entry: another host's base address and its key, as its
/// `picket host key` prints it (pinned here, never taken from the peer itself).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerSettings {
    /// The peer's `public_url`.
    pub url: String,
    /// `name+hash+base64key`.
    pub key: String,
}

impl PeerSettings {
    fn check(&self, n: usize) -> anyhow::Result<()> {
        let ok = url::Url::parse(&self.url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        anyhow::ensure!(
            ok,
            "peers[{n}]: url {:?} is not an http(s) address",
            self.url
        );
        crate::federation::VerifierKey::parse(&self.key)
            .map_err(|e| anyhow::anyhow!("peers[{n}]: {e}"))?;
        Ok(())
    }
}

/// The events a webhook can ask for (docs/webhooks.md describes each payload).
pub const WEBHOOK_EVENTS: [&str; 7] = [
    "signature.counted",
    "striker.joined",
    "post.published",
    "post.posted_by_hand",
    "post.failed",
    "post.missed",
    "threshold.reached",
];

/// One `[[webhooks]]` entry: an organiser's receiver and the events it wants.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// An http(s) address, typed by the operator (reached through the trusted client).
    pub url: String,
    /// Some of [`WEBHOOK_EVENTS`].
    pub events: Vec<String>,
    /// The HMAC key of `Picket-Signature`; unset: `PICKET_WEBHOOK_SECRET`.
    #[serde(default)]
    pub secret: Option<Secret>,
}

impl WebhookSettings {
    /// A clear message naming the hook for whatever is wrong with it; fills an unset
    /// secret from `PICKET_WEBHOOK_SECRET`.
    fn check(&mut self, n: usize, shared: Option<&str>) -> anyhow::Result<()> {
        let name = format!("webhooks[{n}]");
        let ok = url::Url::parse(&self.url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        anyhow::ensure!(ok, "{name}: url {:?} is not an http(s) address", self.url);
        anyhow::ensure!(
            !self.events.is_empty(),
            "{name}: events is empty; choose from {}",
            WEBHOOK_EVENTS.join(", ")
        );
        for event in &self.events {
            anyhow::ensure!(
                WEBHOOK_EVENTS.contains(&event.as_str()),
                "{name}: unknown event {event:?}; events are {}",
                WEBHOOK_EVENTS.join(", ")
            );
        }
        if self.secret.is_none() {
            self.secret = shared.map(|s| Secret::new(s.to_string()));
        }
        let Some(secret) = &self.secret else {
            anyhow::bail!(
                "{name}: no secret to sign its requests with: set secret = \"...\" (16 characters or more) or PICKET_WEBHOOK_SECRET"
            );
        };
        anyhow::ensure!(
            secret.expose().chars().count() >= 16,
            "{name}: the secret is too short to sign with: use 16 characters or more"
        );
        Ok(())
    }
}

/// An app the host registered with a network's official API (its OAuth client).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: Secret,
    /// The API's base address instead of the network's own (a local imitation in tests).
    /// Typed by the operator, so reached through the trusted client.
    #[serde(default)]
    pub api_base: Option<String>,
    /// The authorization page's base address instead of the network's own.
    #[serde(default)]
    pub auth_base: Option<String>,
}

impl OAuthApp {
    /// `PREFIX_CLIENT_ID`, `PREFIX_CLIENT_SECRET`, `PREFIX_API_BASE`, `PREFIX_AUTH_BASE`:
    /// the id and the secret together turn the app on (the file's table is the base).
    fn apply_env(
        slot: &mut Option<OAuthApp>,
        prefix: &str,
        get: &impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<()> {
        let var = |k: &str| get(&format!("{prefix}_{k}")).filter(|v| !v.trim().is_empty());
        let (id, secret) = (var("CLIENT_ID"), var("CLIENT_SECRET"));
        if slot.is_none() {
            match (&id, &secret) {
                (Some(id), Some(secret)) => {
                    *slot = Some(OAuthApp {
                        client_id: id.clone(),
                        client_secret: Secret::new(secret.clone()),
                        api_base: None,
                        auth_base: None,
                    })
                }
                (None, None) => return Ok(()),
                _ => anyhow::bail!(
                    "{prefix}_CLIENT_ID and {prefix}_CLIENT_SECRET go together: set both"
                ),
            }
        }
        let app = slot.as_mut().expect("set above");
        if let Some(v) = id {
            app.client_id = v;
        }
        if let Some(v) = secret {
            app.client_secret = Secret::new(v);
        }
        if let Some(v) = var("API_BASE") {
            app.api_base = Some(v);
        }
        if let Some(v) = var("AUTH_BASE") {
            app.auth_base = Some(v);
        }
        app.check(prefix)
    }

    /// The bases must be http(s) addresses; the id must not be empty.
    fn check(&self, name: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            !self.client_id.trim().is_empty() && !self.client_secret.expose().trim().is_empty(),
            "{name}: client_id and client_secret must not be empty"
        );
        for base in [&self.api_base, &self.auth_base].into_iter().flatten() {
            let ok = url::Url::parse(base)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            anyhow::ensure!(ok, "{name}: {base:?} is not an http(s) address");
        }
        Ok(())
    }
}

/// Reverse proxies picket believes about the client's address: IP addresses or CIDR
/// blocks (`10.0.0.0/8`, `::1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<ipnet::IpNet>);

impl TrustedProxies {
    /// `"10.0.0.1"` or `"10.0.0.0/8"` each; the error names the one that is neither.
    pub fn parse<'a>(items: impl IntoIterator<Item = &'a str>) -> anyhow::Result<Self> {
        let mut nets = Vec::new();
        for item in items.into_iter().map(str::trim).filter(|i| !i.is_empty()) {
            let net = match item.parse::<ipnet::IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => item
                    .parse::<std::net::IpAddr>()
                    .map(ipnet::IpNet::from)
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "trusted_proxies: {item:?} is not an IP address or a CIDR block (10.0.0.0/8)"
                        )
                    })?,
            };
            nets.push(net);
        }
        Ok(TrustedProxies(nets))
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(d)?;
        TrustedProxies::parse(items.iter().map(String::as_str)).map_err(serde::de::Error::custom)
    }
}

/// How long `picket serve` waits for a client, and for how many at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// From a connection's start, or the first byte of a request, to its last header line.
    pub header_read_timeout_secs: u64,
    /// From a request's head to its answer (the body is read within it); then 408.
    pub request_timeout_secs: u64,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout_secs: u64,
    /// Connections served at once; more wait in the system's queue until one closes.
    pub max_connections: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            header_read_timeout_secs: 10,
            // Above the 45 s a browser waits for a Nostr signer app's approval.
            request_timeout_secs: 60,
            idle_timeout_secs: 60,
            max_connections: 1024,
        }
    }
}

// ── sessions (issue 8: expiring links, per-address mail budget) ─────────────────────────

/// How long a magic link and a signed-in browser last, and how much mail one address gets.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Days a magic link works after it was made (a participant gets a new one on their
    /// page, or by mail).
    pub link_days: u32,
    /// Days a browser stays signed in after opening a link.
    pub signed_in_days: u32,
    /// Mails to one address (magic links, signature confirmations) per hour at most: a
    /// visitor can type anyone's address.
    pub mails_per_address_per_hour: u32,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            link_days: 7,
            signed_in_days: 180,
            mails_per_address_per_hour: 5,
        }
    }
}

impl SessionSettings {
    pub fn link_lifetime(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.link_days))
    }

    pub fn signed_in_lifetime(&self) -> chrono::Duration {
        chrono::Duration::days(i64::from(self.signed_in_days))
    }

    /// Zero days would make links and sign-ins that never work: refuse it.
    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.link_days > 0 && self.signed_in_days > 0,
            "sessions.link_days and sessions.signed_in_days must be at least 1"
        );
        anyhow::ensure!(
            self.link_days <= 3650 && self.signed_in_days <= 3650,
            "sessions.link_days and sessions.signed_in_days are at most 3650 (ten years)"
        );
        Ok(())
    }

    /// `PICKET_LINK_DAYS`, `PICKET_SIGNED_IN_DAYS`, `PICKET_MAILS_PER_ADDRESS_PER_HOUR`.
    fn apply_env(&mut self, get: &impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let number = |name: &str| -> anyhow::Result<Option<u32>> {
            get(name)
                .map(|v| {
                    v.trim()
                        .parse()
                        .with_context(|| format!("{name} must be a whole number"))
                })
                .transpose()
        };
        if let Some(v) = number("PICKET_LINK_DAYS")? {
            self.link_days = v;
        }
        if let Some(v) = number("PICKET_SIGNED_IN_DAYS")? {
            self.signed_in_days = v;
        }
        if let Some(v) = number("PICKET_MAILS_PER_ADDRESS_PER_HOUR")? {
            self.mails_per_address_per_hour = v;
        }
        self.check()
    }
}

// ── end of sessions ──────────────────────────────────────────────────────────────────────

/// How to reach the SMTP server: a URL, separate keys, or both (a key wins over the part of
/// the URL it names). Turned into an [`SmtpTarget`] by [`SmtpSettings::resolve`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpSettings {
    /// `smtp://user:password@host:port` (`smtps://` for TLS from the first byte,
    /// `?tls=none|starttls|tls` to say it in the URL). A secret: it may hold the password.
    pub url: Option<Secret>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub tls: Option<SmtpTls>,
    /// The sender, `picket@example.org` or `Strike <picket@example.org>`.
    pub from: Option<String>,
}

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain text: only for a server on the same machine or a private network.
    None,
    /// Plain connection upgraded with STARTTLS, which must succeed (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

impl SmtpTls {
    fn parse(s: &str) -> Option<SmtpTls> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Some(SmtpTls::None),
            "starttls" => Some(SmtpTls::Starttls),
            "tls" => Some(SmtpTls::Tls),
            _ => None,
        }
    }

    /// The port SMTP servers listen on for this kind of connection.
    pub fn default_port(self) -> u16 {
        match self {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        }
    }
}

/// Where and how to send mail, every part decided.
#[derive(Debug, Clone)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    /// User name and password, when the server wants a login.
    pub credentials: Option<(String, Secret)>,
    pub tls: SmtpTls,
    pub from: String,
}

impl SmtpSettings {
    /// Merge the URL and the separate keys; the error says which setting to fix.
    pub fn resolve(&self) -> anyhow::Result<SmtpTarget> {
        let (mut host, mut port, mut username, mut password, mut tls) =
            (None, None, None, None, None);
        if let Some(raw) = &self.url {
            // The URL may hold a password: errors name the setting, never its value.
            let u = url::Url::parse(raw.expose())
                .map_err(|e| anyhow::anyhow!("smtp.url is not a URL ({e})"))?;
            tls = match u.scheme() {
                "smtp" => None,
                "smtps" => Some(SmtpTls::Tls),
                other => {
                    anyhow::bail!("smtp.url must start with smtp:// or smtps://, not {other}://")
                }
            };
            host = u.host_str().map(str::to_string);
            port = u.port();
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8()
                    .map(|c| c.into_owned())
                    .map_err(|_| {
                        anyhow::anyhow!("smtp.url: the user name or password is not UTF-8")
                    })
            };
            if !u.username().is_empty() {
                username = Some(decode(u.username())?);
            }
            if let Some(p) = u.password() {
                password = Some(Secret::new(decode(p)?));
            }
            for (k, v) in u.query_pairs() {
                match k.as_ref() {
                    "tls" => {
                        tls = Some(SmtpTls::parse(&v).ok_or_else(|| {
                            anyhow::anyhow!("smtp.url: tls must be none, starttls or tls, not {v}")
                        })?)
                    }
                    other => {
                        anyhow::bail!("smtp.url: unknown parameter {other} (only tls is known)")
                    }
                }
            }
        }
        let host = self
            .host
            .clone()
            .or(host)
            .filter(|h| !h.is_empty())
            .ok_or_else(|| anyhow::anyhow!("smtp: say which server to send through, with smtp.url or smtp.host (PICKET_SMTP_URL / PICKET_SMTP_HOST)"))?;
        // Without a word about it, insist on encryption: a password must not cross the
        // network in the clear by default.
        let tls = self.tls.or(tls).unwrap_or(SmtpTls::Starttls);
        let port = self.port.or(port).unwrap_or(tls.default_port());
        let username = self.username.clone().or(username);
        let password = self.password.clone().or(password);
        let credentials = match (username, password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            (Some(_), None) => anyhow::bail!(
                "smtp: a user name is set but no password (smtp.password / PICKET_SMTP_PASSWORD)"
            ),
            (None, Some(_)) => anyhow::bail!(
                "smtp: a password is set but no user name (smtp.username / PICKET_SMTP_USERNAME)"
            ),
        };
        let from = self
            .from
            .clone()
            .filter(|f| !f.trim().is_empty())
            .ok_or_else(|| anyhow::anyhow!("smtp: say who mail comes from with smtp.from (PICKET_SMTP_FROM), e.g. \"Strike <picket@example.org>\""))?;
        Ok(SmtpTarget {
            host,
            port,
            credentials,
            tls,
            from,
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Seconds a post may still go out after its slot's window closed.
    pub grace_secs: u64,
    /// Posts of one slot are spread over this many seconds after its instant.
    pub jitter_secs: u64,
    /// How long a claimed post is reserved for one worker before others may take it over.
    pub lease_secs: u64,
    /// Posts claimed per round trip to the database.
    pub batch: u32,
    /// Posts being sent at once by one worker.
    pub concurrency: usize,
    /// The longest one publish request may take (less when the post's window closes sooner).
    pub request_timeout_secs: u64,
    /// The longest wait between two attempts of one post: the backoff doubles from 2 s up
    /// to this. A post is never tried after its window either way.
    pub retry_cap_secs: u64,
    /// Seconds between two polls of a campaign's hashtag census sources (`[census]`).
    pub census_every_secs: u64,
    /// Seconds after publication a post's likes, reposts, replies (and its account's
    /// followers) are first read.
    pub engagement_first_secs: u64,
    /// Seconds after publication they are read again, for the last time.
    pub engagement_again_secs: u64,
    /// Seconds between two rounds of the engagement task (what is due is read then).
    pub engagement_every_secs: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            grace_secs: 60,
            jitter_secs: 120,
            lease_secs: 120,
            batch: 256,
            concurrency: 64,
            request_timeout_secs: 30,
            retry_cap_secs: 600,
            census_every_secs: 300,
            engagement_first_secs: 3600,
            engagement_again_secs: 24 * 3600,
            engagement_every_secs: 60,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "sqlite://picket.db".to_string(),
            campaigns_dir: PathBuf::from("campaigns"),
            bind: "127.0.0.1:8080".parse().expect("valid default address"),
            public_url: "http://127.0.0.1:8080".to_string(),
            templates_dir: None,
            secret_key: None,
            vapid_key: None,
            vapid_subject: None,
            rate_limits: true,
            allow_private_addresses: false,
            scheduler: SchedulerSettings::default(),
            smtp: None,
            sessions: SessionSettings::default(),
            trusted_proxies: TrustedProxies::default(),
            sandbox: false,
            sandbox_max_bytes: 16 * 1024 * 1024,
            http: HttpSettings::default(),
            threads: None,
            linkedin: None,
            x: None,
            facebook: None,
            webhooks: Vec::new(),
            host_key: None,
            peers: Vec::new(),
            federation_refresh_secs: 60,
            distinct_signers_key: None,
            channels: Vec::new(),
            channel_env_tokens: Default::default(),
        }
    }
}

impl Settings {
    /// The token of broadcast channel `name`: the host's `[[channels]]` entry, else
    /// `PICKET_CHANNEL_<NAME>_TOKEN`.
    pub fn channel_token(&self, name: &str) -> Option<&Secret> {
        self.channels
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.token.as_ref())
            .or_else(|| self.channel_env_tokens.get(&channel_token_env(name)))
    }

    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        let mut s = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?
            }
            None => Settings::default(),
        };
        s.apply_env(|k| std::env::var(k).ok())?;
        s.channel_env_tokens = std::env::vars()
            .filter(|(k, v)| {
                k.starts_with("PICKET_CHANNEL_") && k.ends_with("_TOKEN") && !v.is_empty()
            })
            .map(|(k, v)| (k, Secret::new(v)))
            .collect();
        Ok(s)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(v) = get("PICKET_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = get("PICKET_CAMPAIGNS") {
            self.campaigns_dir = v.into();
        }
        if let Some(v) = get("PICKET_BIND") {
            self.bind = v
                .parse()
                .context("PICKET_BIND must be an address like 127.0.0.1:8080")?;
        }
        if let Some(v) = get("PICKET_PUBLIC_URL") {
            self.public_url = v;
        }
        if let Some(v) = get("PICKET_TEMPLATES") {
            self.templates_dir = Some(v.into());
        }
        if let Some(v) = get("PICKET_SECRET_KEY") {
            self.secret_key = Some(Secret::new(v));
        }
        if let Some(v) = get("PICKET_VAPID_KEY") {
            self.vapid_key = Some(Secret::new(v));
        }
        if let Some(v) = get("PICKET_VAPID_SUBJECT") {
            self.vapid_subject = Some(v);
        }
        if let Some(v) = get("PICKET_RATE_LIMITS") {
            self.rate_limits = !matches!(
                v.to_ascii_lowercase().as_str(),
                "off" | "0" | "false" | "no"
            );
        }
        self.sessions.apply_env(&get)?;
        if let Some(v) = get("PICKET_ALLOW_PRIVATE_ADDRESSES") {
            self.allow_private_addresses = match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" | "" => false,
                _ => anyhow::bail!("PICKET_ALLOW_PRIVATE_ADDRESSES must be 1 or 0"),
            };
        }
        self.apply_smtp_env(&get)?;
        OAuthApp::apply_env(&mut self.threads, "PICKET_THREADS", &get)?;
        OAuthApp::apply_env(&mut self.linkedin, "PICKET_LINKEDIN", &get)?;
        OAuthApp::apply_env(&mut self.x, "PICKET_X", &get)?;
        OAuthApp::apply_env(&mut self.facebook, "PICKET_FACEBOOK", &get)?;
        if let Some(app) = &self.threads {
            app.check("[threads]")?;
        }
        if let Some(app) = &self.linkedin {
            app.check("[linkedin]")?;
        }
        if let Some(app) = &self.x {
            app.check("[x]")?;
        }
        if let Some(app) = &self.facebook {
            app.check("[facebook]")?;
        }
        if let Some(v) = get("PICKET_HOST_KEY") {
            self.host_key = Some(Secret::new(v));
        }
        if let Some(v) = get("PICKET_FEDERATION_REFRESH_SECS") {
            self.federation_refresh_secs = v
                .trim()
                .parse()
                .context("PICKET_FEDERATION_REFRESH_SECS must be a whole number of seconds")?;
        }
        if let Some(v) = get("PICKET_DISTINCT_SIGNERS_KEY") {
            self.distinct_signers_key = Some(Secret::new(v));
        }
        if let Some(k) = &self.distinct_signers_key {
            anyhow::ensure!(
                k.expose().chars().count() >= 16,
                "distinct_signers_key is too short to key hashes with: use 16 characters or more, shared only with the listed peers"
            );
        }
        anyhow::ensure!(
            self.federation_refresh_secs >= 1,
            "federation_refresh_secs must be at least 1"
        );
        for (n, peer) in self.peers.iter().enumerate() {
            peer.check(n)?;
        }
        let shared = get("PICKET_WEBHOOK_SECRET").filter(|v| !v.is_empty());
        for (n, hook) in self.webhooks.iter_mut().enumerate() {
            hook.check(n, shared.as_deref())?;
        }
        for (n, channel) in self.channels.iter_mut().enumerate() {
            channel.check(n, &get)?;
        }
        self.apply_exposure_env(&get)
    }

    /// `PICKET_TRUSTED_PROXIES` (comma separated), `PICKET_SANDBOX`,
    /// `PICKET_SANDBOX_MAX_BYTES` and `PICKET_HTTP_*`.
    fn apply_exposure_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(v) = get("PICKET_TRUSTED_PROXIES") {
            self.trusted_proxies = TrustedProxies::parse(v.split(','))
                .context("PICKET_TRUSTED_PROXIES: addresses or CIDR blocks, comma separated")?;
        }
        if let Some(v) = get("PICKET_SANDBOX") {
            self.sandbox = matches!(v.to_ascii_lowercase().as_str(), "1" | "on" | "true" | "yes");
        }
        let number = |name: &str| -> anyhow::Result<Option<u64>> {
            get(name)
                .map(|v| v.trim().parse::<u64>())
                .transpose()
                .with_context(|| format!("{name} must be a whole number"))
        };
        if let Some(n) = number("PICKET_SANDBOX_MAX_BYTES")? {
            self.sandbox_max_bytes = n;
        }
        if let Some(n) = number("PICKET_HTTP_HEADER_READ_TIMEOUT_SECS")? {
            self.http.header_read_timeout_secs = n;
        }
        if let Some(n) = number("PICKET_HTTP_REQUEST_TIMEOUT_SECS")? {
            self.http.request_timeout_secs = n;
        }
        if let Some(n) = number("PICKET_HTTP_IDLE_TIMEOUT_SECS")? {
            self.http.idle_timeout_secs = n;
        }
        if let Some(n) = number("PICKET_HTTP_MAX_CONNECTIONS")? {
            self.http.max_connections = usize::try_from(n).unwrap_or(usize::MAX);
        }
        Ok(())
    }

    /// `PICKET_SMTP_*`: any of them turns mail on (with the file's `[smtp]` as the base).
    fn apply_smtp_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        let var = |k: &str| get(k).filter(|v| !v.is_empty());
        let names = [
            "PICKET_SMTP_URL",
            "PICKET_SMTP_HOST",
            "PICKET_SMTP_PORT",
            "PICKET_SMTP_USERNAME",
            "PICKET_SMTP_PASSWORD",
            "PICKET_SMTP_TLS",
            "PICKET_SMTP_FROM",
        ];
        if names.iter().all(|k| var(k).is_none()) {
            return Ok(());
        }
        let smtp = self.smtp.get_or_insert_with(SmtpSettings::default);
        if let Some(v) = var("PICKET_SMTP_URL") {
            smtp.url = Some(Secret::new(v));
        }
        if let Some(v) = var("PICKET_SMTP_HOST") {
            smtp.host = Some(v);
        }
        if let Some(v) = var("PICKET_SMTP_PORT") {
            smtp.port = Some(
                v.parse()
                    .context("PICKET_SMTP_PORT must be a port number")?,
            );
        }
        if let Some(v) = var("PICKET_SMTP_USERNAME") {
            smtp.username = Some(v);
        }
        if let Some(v) = var("PICKET_SMTP_PASSWORD") {
            smtp.password = Some(Secret::new(v));
        }
        if let Some(v) = var("PICKET_SMTP_TLS") {
            smtp.tls =
                Some(SmtpTls::parse(&v).ok_or_else(|| {
                    anyhow::anyhow!("PICKET_SMTP_TLS must be none, starttls or tls")
                })?);
        }
        if let Some(v) = var("PICKET_SMTP_FROM") {
            smtp.from = Some(v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret_key() {
        let s = Settings {
            secret_key: Some(Secret::new("hunter2-very-secret")),
            ..Settings::default()
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn webhooks_are_checked_at_load_with_a_message_naming_the_hook() {
        let load = |text: &str, env: Option<&str>| -> anyhow::Result<Settings> {
            let mut s: Settings = toml::from_str(text).map_err(|e| anyhow::anyhow!("{e}"))?;
            s.apply_env(|k| (k == "PICKET_WEBHOOK_SECRET").then(|| env.map(String::from))?)?;
            Ok(s)
        };
        let good = "[[webhooks]]\nurl = \"https://hooks.example/p\"\nevents = [\"post.failed\"]\n";
        let err = |text: &str, env: Option<&str>| load(text, env).unwrap_err().to_string();
        assert!(err(good, None).contains("webhooks[0]: no secret"));
        let s = load(good, Some("a-shared-secret-of-enough-length")).unwrap();
        assert_eq!(
            s.webhooks[0].secret.as_ref().unwrap().expose(),
            "a-shared-secret-of-enough-length"
        );
        assert!(!format!("{s:?}").contains("a-shared-secret"));
        let own = format!("{good}secret = \"its-own-secret-1234\"\n");
        let s = load(&own, Some("a-shared-secret-of-enough-length")).unwrap();
        assert_eq!(
            s.webhooks[0].secret.as_ref().unwrap().expose(),
            "its-own-secret-1234"
        );
        assert!(err(&own.replace("its-own-secret-1234", "short"), None).contains("too short"));
        let typo = own.replace("post.failed", "post.faild");
        assert!(err(&typo, None).contains("unknown event \"post.faild\""));
        let ftp = own.replace("https://hooks.example/p", "ftp://hooks.example/p");
        assert!(err(&ftp, None).contains("not an http(s) address"));
        assert!(err(&own.replace("[\"post.failed\"]", "[]"), None).contains("events is empty"));
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let mut s: Settings =
            toml::from_str("database_url = \"sqlite://a.db\"\nrate_limits = true").unwrap();
        s.apply_env(|k| match k {
            "PICKET_DATABASE_URL" => Some("postgres://x/y".into()),
            "PICKET_RATE_LIMITS" => Some("off".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.database_url, "postgres://x/y");
        assert!(!s.rate_limits);
    }

    #[test]
    fn private_addresses_are_refused_unless_the_file_or_the_environment_allows_them() {
        assert!(!Settings::default().allow_private_addresses);
        let from_file: Settings = toml::from_str("allow_private_addresses = true").unwrap();
        assert!(from_file.allow_private_addresses);
        let mut from_env = Settings::default();
        from_env
            .apply_env(|k| (k == "PICKET_ALLOW_PRIVATE_ADDRESSES").then(|| "1".into()))
            .unwrap();
        assert!(from_env.allow_private_addresses);
        let mut off = from_file.clone();
        off.apply_env(|k| (k == "PICKET_ALLOW_PRIVATE_ADDRESSES").then(|| "0".into()))
            .unwrap();
        assert!(!off.allow_private_addresses);
        let mut bad = Settings::default();
        assert!(
            bad.apply_env(|k| (k == "PICKET_ALLOW_PRIVATE_ADDRESSES").then(|| "maybe".into()))
                .is_err()
        );
    }

    #[test]
    fn the_example_config_parses_and_matches_the_defaults() {
        let text = include_str!("../picket.example.toml");
        let s: Settings = toml::from_str(text).unwrap();
        let d = Settings::default();
        assert_eq!(format!("{s:?}"), format!("{d:?}"));
    }

    #[test]
    fn smtp_passwords_are_never_shown() {
        let s: Settings = toml::from_str(
            "[smtp]\nurl = \"smtp://u:hunter2@mail.example:587\"\npassword = \"hunter3\"",
        )
        .unwrap();
        let shown = format!(
            "{s:?} {:?}",
            s.smtp.as_ref().unwrap().resolve().unwrap_err()
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("hunter3"),
            "{shown}"
        );
    }

    #[test]
    fn an_smtp_url_is_taken_apart_and_separate_keys_win() {
        let s: SmtpSettings = toml::from_str(
            "url = \"smtp://ada%40x:p%40ss@mail.example?tls=none\"\nport = 2525\nfrom = \"picket@x.org\"",
        )
        .unwrap();
        let t = s.resolve().unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("mail.example", 2525, SmtpTls::None)
        );
        let (user, password) = t.credentials.unwrap();
        assert_eq!((user.as_str(), password.expose()), ("ada@x", "p@ss"));
    }

    #[test]
    fn smtp_defaults_to_starttls_on_587_and_smtps_to_tls_on_465() {
        let plain: SmtpSettings =
            toml::from_str("host = \"mail.example\"\nfrom = \"p@x.org\"").unwrap();
        let t = plain.resolve().unwrap();
        assert_eq!((t.port, t.tls), (587, SmtpTls::Starttls));
        assert!(t.credentials.is_none());
        let implicit: SmtpSettings =
            toml::from_str("url = \"smtps://mail.example\"\nfrom = \"p@x.org\"").unwrap();
        let t = implicit.resolve().unwrap();
        assert_eq!((t.port, t.tls), (465, SmtpTls::Tls));
    }

    #[test]
    fn smtp_without_a_server_or_a_sender_is_an_error_that_says_which() {
        let no_host: SmtpSettings = toml::from_str("from = \"p@x.org\"").unwrap();
        assert!(
            no_host
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("smtp.host")
        );
        let no_from: SmtpSettings = toml::from_str("host = \"mail.example\"").unwrap();
        assert!(
            no_from
                .resolve()
                .unwrap_err()
                .to_string()
                .contains("smtp.from")
        );
    }

    #[test]
    fn any_smtp_variable_turns_mail_on() {
        let mut s = Settings::default();
        s.apply_env(|k| match k {
            "PICKET_SMTP_HOST" => Some("127.0.0.1".into()),
            "PICKET_SMTP_PORT" => Some("2525".into()),
            "PICKET_SMTP_TLS" => Some("none".into()),
            "PICKET_SMTP_FROM" => Some("p@x.org".into()),
            _ => None,
        })
        .unwrap();
        let t = s.smtp.unwrap().resolve().unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("127.0.0.1", 2525, SmtpTls::None)
        );
        let mut none = Settings::default();
        none.apply_env(|_| None).unwrap();
        assert!(none.smtp.is_none());
    }

    #[test]
    fn session_settings_come_from_the_file_and_the_environment_and_zero_days_are_refused() {
        let mut s: Settings = toml::from_str("[sessions]\nlink_days = 2").unwrap();
        s.apply_env(|k| (k == "PICKET_MAILS_PER_ADDRESS_PER_HOUR").then(|| "1".into()))
            .unwrap();
        assert_eq!(s.sessions.link_days, 2);
        assert_eq!(s.sessions.signed_in_days, 180);
        assert_eq!(s.sessions.mails_per_address_per_hour, 1);
        let mut zero = Settings::default();
        let e = zero
            .apply_env(|k| (k == "PICKET_LINK_DAYS").then(|| "0".into()))
            .unwrap_err();
        assert!(e.to_string().contains("link_days"), "{e}");
    }

    #[test]
    fn trusted_proxies_are_addresses_or_blocks_from_the_file_or_the_environment() {
        let s: Settings = toml::from_str("trusted_proxies = [\"10.0.0.0/8\", \"::1\"]").unwrap();
        assert!(s.trusted_proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(s.trusted_proxies.contains("::1".parse().unwrap()));
        assert!(!s.trusted_proxies.contains("11.0.0.1".parse().unwrap()));
        let e = toml::from_str::<Settings>("trusted_proxies = [\"proxy.local\"]").unwrap_err();
        assert!(e.to_string().contains("proxy.local"), "{e}");

        let mut s = Settings::default();
        s.apply_env(|k| match k {
            "PICKET_TRUSTED_PROXIES" => Some("127.0.0.1, 192.168.0.0/16".into()),
            "PICKET_SANDBOX" => Some("1".into()),
            "PICKET_HTTP_MAX_CONNECTIONS" => Some("8".into()),
            _ => None,
        })
        .unwrap();
        assert!(s.trusted_proxies.contains("127.0.0.1".parse().unwrap()));
        assert!(s.trusted_proxies.contains("192.168.4.5".parse().unwrap()));
        assert!(
            s.trusted_proxies
                .contains("::ffff:127.0.0.1".parse().unwrap())
        );
        assert!(s.sandbox);
        assert_eq!(s.http.max_connections, 8);
        assert!(
            Settings::default()
                .apply_env(|k| (k == "PICKET_TRUSTED_PROXIES").then(|| "10.0.0.1/99".into()))
                .is_err()
        );
    }

    #[test]
    fn an_official_api_app_comes_from_its_table_or_the_environment_and_its_secret_is_never_shown() {
        let mut s: Settings = toml::from_str(
            "[threads]\nclient_id = \"123\"\nclient_secret = \"hunter2\"\napi_base = \"http://127.0.0.1:9\"",
        )
        .unwrap();
        s.apply_env(|_| None).unwrap();
        let app = s.threads.as_ref().unwrap();
        assert_eq!(app.client_id, "123");
        assert_eq!(app.api_base.as_deref(), Some("http://127.0.0.1:9"));
        assert!(!format!("{s:?}").contains("hunter2"));

        let mut env = Settings::default();
        env.apply_env(|k| match k {
            "PICKET_THREADS_CLIENT_ID" => Some("9".into()),
            "PICKET_THREADS_CLIENT_SECRET" => Some("s3".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(env.threads.unwrap().client_secret.expose(), "s3");
        assert!(
            Settings::default()
                .apply_env(|k| (k == "PICKET_THREADS_CLIENT_ID").then(|| "9".into()))
                .is_err(),
            "an id without a secret"
        );
        let mut bad: Settings = toml::from_str(
            "[threads]\nclient_id = \"1\"\nclient_secret = \"s\"\napi_base = \"ftp://x\"",
        )
        .unwrap();
        assert!(bad.apply_env(|_| None).is_err());
        assert!(
            Settings::default().threads.is_none(),
            "off unless configured"
        );
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error() {
        let e = toml::from_str::<Settings>("databse_url = \"x\"").unwrap_err();
        assert!(e.to_string().contains("databse_url"), "{e}");
    }
}
