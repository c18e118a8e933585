//! Raw spec -> [`Campaign`]: every semantic check, every problem collected.
//!
//! A person fixing a campaign file wants the whole list at once, each with the line and
//! column to change and a sentence saying what to write instead. TOML syntax errors are
//! all reported (the parser recovers); a structural error (unknown or missing key, wrong
//! type) stops at the first one, because serde cannot go on past it; semantic checks
//! (dates, zones, schedules, templates, lengths) then report everything they find.

use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;

use super::broadcast::{Announcement, ChannelKind, ChannelSpec};
use super::declaration::{content_hash, is_hash, proposed_changes};
use super::spec::{
    RawAnnouncement, RawCampaign, RawCensus, RawChannel, RawDeclaration, RawOrigin, RawPost,
    RawStrike, RawTemplates, RawThreshold,
};
use super::values::{did_you_mean, fmt_duration, parse_date, parse_duration, parse_when};
use super::{
    Campaign, CensusSources, Declaration, Origin, PostRule, Problem, Strike, StrikeTime, Threshold,
    When, Window,
};
use crate::compose::PostVars;
use crate::compose::measure;
use crate::domain::{CampaignId, Hashtag, NetworkKind};
use crate::render::PostRenderer;

/// The networks a campaign is checked against when it does not name its own.
pub const DEFAULT_NETWORKS: [NetworkKind; 3] = [
    NetworkKind::Mastodon,
    NetworkKind::Bluesky,
    NetworkKind::Nostr,
];

/// The default finest cadence: hourly keeps a striker's timeline quiet and stays far
/// below every network's rate limits and spam heuristics.
pub const DEFAULT_MIN_INTERVAL: Duration = Duration::hours(1);

/// The longest `card_why`, in characters: what a card shows at a readable size.
pub const MAX_CARD_WHY: usize = 200;

/// Below this, a campaign would have accounts posting at a pace networks treat as spam.
pub const FLOOR_MIN_INTERVAL: Duration = Duration::minutes(5);

/// A validated campaign and where its `id` was written (to report duplicate ids).
pub(crate) struct Loaded {
    pub campaign: Campaign,
    pub id_at: Range<usize>,
    pub src: String,
}

/// Parse and validate `src`, read from `path` (files it names are relative to it).
pub(crate) fn parse(src: &str, path: &Path) -> Result<Loaded, Vec<Problem>> {
    let mut cx = Cx::new(src, path);
    let (table, errors) = toml::de::DeTable::parse_recoverable(src);
    if !errors.is_empty() {
        for e in errors {
            cx.toml_error(&e);
        }
        return Err(cx.problems);
    }
    let raw = match RawCampaign::deserialize(toml::de::Deserializer::from(table)) {
        Ok(raw) => raw,
        Err(e) => {
            cx.toml_error(&e);
            return Err(cx.problems);
        }
    };
    let id_at = raw.id.span();
    match cx.campaign(raw) {
        Some(campaign) if cx.problems.is_empty() => Ok(Loaded {
            campaign,
            id_at,
            src: src.to_string(),
        }),
        _ => Err(cx.problems),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

struct Cx<'a> {
    src: &'a str,
    path: &'a Path,
    problems: Vec<Problem>,
}

impl<'a> Cx<'a> {
    fn new(src: &'a str, path: &'a Path) -> Self {
        Cx {
            src,
            path,
            problems: Vec::new(),
        }
    }

    fn at(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, col) = line_col(self.src, span.start);
        self.problems.push(Problem {
            path: self.path.to_path_buf(),
            line,
            col,
            message: message.into(),
        });
    }

    fn toml_error(&mut self, e: &toml::de::Error) {
        let span = e.span().unwrap_or(0..0);
        self.at(span, explain_serde(e.message().trim()));
    }

    fn campaign(&mut self, raw: RawCampaign) -> Option<Campaign> {
        let id = self.id(&raw.id);
        let title = self.non_empty("title", &raw.title);
        let hashtag = self.hashtag(&raw.hashtag);
        let description = raw
            .description
            .as_ref()
            .and_then(|d| self.non_empty("description", d));
        let card_why = raw.card_why.as_ref().and_then(|w| self.card_why(w));
        let networks = self.networks(raw.networks.as_ref());
        let declaration = raw.declaration.as_ref().and_then(|d| self.declaration(d));
        // Go on past a broken [strike]: the posts and templates may hold problems too.
        let min_interval = self.min_interval(raw.strike.get_ref());
        let strike = self.strike(&raw.strike);
        let templates = self.templates(&raw.templates, &raw, &networks);
        let posts = self.posts(&raw.posts, &templates, min_interval, strike.as_ref());
        let strike = strike?;
        let threshold = raw
            .threshold
            .as_ref()
            .and_then(|t| self.threshold(t, &raw.strike, &strike));
        let x_api = self.x_api(&raw, &networks);
        let census = raw
            .census
            .as_ref()
            .map(|c| self.census(c.get_ref()))
            .unwrap_or_default();
        let channels = raw
            .channels
            .as_ref()
            .map(|c| self.channels(c.get_ref()))
            .unwrap_or_default();
        let announcements = raw
            .announcements
            .as_ref()
            .map(|a| self.announcements(a.get_ref(), &raw, &strike))
            .unwrap_or_default();
        Some(Campaign {
            id: id?,
            title: title?,
            hashtag: hashtag?,
            description,
            card_why,
            declaration,
            strike,
            posts,
            templates: templates
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().map(|s| s.into_inner()).collect()))
                .collect(),
            networks,
            min_interval,
            threshold,
            x_api,
            census,
            channels,
            announcements,
            source: self.path.to_path_buf(),
        })
    }

    /// `[[channels]]`: a known kind, the addresses it needs, a name used once, and no
    /// token (tokens belong to the host, so a campaign file can be shared and copied).
    fn channels(&mut self, raw: &[Spanned<RawChannel>]) -> Vec<ChannelSpec> {
        let mut out: Vec<ChannelSpec> = Vec::new();
        for c in raw {
            let c = c.get_ref();
            let name = c.name.get_ref().trim().to_string();
            let secrets = [
                ("token", &c.token),
                ("access_token", &c.access_token),
                ("bot_token", &c.bot_token),
                ("webhook", &c.webhook),
                ("webhook_url", &c.webhook_url),
                ("url", &c.url),
            ];
            for (key, value) in secrets {
                if let Some(v) = value {
                    // The value itself is never repeated: it may be a live token.
                    self.at(
                        v.span(),
                        format!(
                            "channel \"{name}\": `{key}` holds a secret, and a secret is never in \
                             a campaign file (files are shared and copied): put it in the host \
                             settings ([[channels]] with name = \"{name}\" and token = \"...\") \
                             or in {}",
                            crate::config::channel_token_env(&name)
                        ),
                    );
                }
            }
            if !valid_channel_name(&name) {
                self.at(
                    c.name.span(),
                    format!(
                        "channel name \"{name}\": use 1 to 40 lowercase letters, digits, '-' or '_'"
                    ),
                );
                continue;
            }
            if out.iter().any(|o| o.name == name) {
                self.at(
                    c.name.span(),
                    format!("channel \"{name}\" is declared twice: give each a name of its own"),
                );
                continue;
            }
            let Some(kind) = ChannelKind::parse(c.kind.get_ref().trim()) else {
                self.at(
                    c.kind.span(),
                    format!(
                        "channel \"{name}\": unknown kind \"{}\"; use \"matrix\", \"telegram\" or \
                         \"discord\"",
                        c.kind.get_ref()
                    ),
                );
                continue;
            };
            let text = |v: &Option<Spanned<String>>| {
                v.as_ref()
                    .map(|v| v.get_ref().trim().to_string())
                    .filter(|v| !v.is_empty())
            };
            let spec = ChannelSpec {
                name: name.clone(),
                kind,
                homeserver: text(&c.homeserver),
                room: text(&c.room),
                chat: text(&c.chat),
                api: text(&c.api),
            };
            let needs: &[(&str, bool)] = match kind {
                ChannelKind::Matrix => &[
                    ("homeserver", spec.homeserver.is_some()),
                    ("room", spec.room.is_some()),
                ],
                ChannelKind::Telegram => &[("chat", spec.chat.is_some())],
                // A Discord webhook's address is its token: all of it is the host's.
                ChannelKind::Discord => &[],
            };
            for (key, present) in needs {
                if !present {
                    self.at(
                        c.name.span(),
                        format!("channel \"{name}\" ({}) needs {key}", kind.as_str()),
                    );
                }
            }
            for (key, v) in [("homeserver", &c.homeserver), ("api", &c.api)] {
                if let Some(v) = v {
                    let ok = url::Url::parse(v.get_ref().trim()).is_ok_and(|u| {
                        matches!(u.scheme(), "http" | "https")
                            && u.host_str().is_some()
                            && u.username().is_empty()
                            && u.password().is_none()
                            && u.query().is_none()
                    });
                    if !ok {
                        self.at(
                            v.span(),
                            format!(
                                "channel \"{name}\": {key} must be an http(s) address without \
                                 credentials or a query, e.g. \"https://matrix.org\""
                            ),
                        );
                    }
                }
            }
            out.push(spec);
        }
        out
    }

    /// `[[announcements]]`: a known schedule, a zone to read it in, channels by name, and
    /// texts that render with an announcement's variables.
    fn announcements(
        &mut self,
        raw: &[Spanned<RawAnnouncement>],
        campaign: &RawCampaign,
        strike: &Strike,
    ) -> Vec<Announcement> {
        let vars = crate::compose::announce::AnnouncementVars::sample(
            campaign.hashtag.get_ref().trim_start_matches('#'),
            campaign.title.get_ref(),
            campaign.id.get_ref(),
        );
        let mut out: Vec<Announcement> = Vec::new();
        for a in raw {
            let a = a.get_ref();
            let name = a.name.get_ref().trim().to_string();
            let mut ok = true;
            if !valid_channel_name(&name) {
                self.at(
                    a.name.span(),
                    format!(
                        "announcement name \"{name}\": use 1 to 40 lowercase letters, digits, '-' or '_'"
                    ),
                );
                ok = false;
            } else if out.iter().any(|o| o.name == name) {
                self.at(
                    a.name.span(),
                    format!(
                        "announcement \"{name}\" is declared twice: give each a name of its own"
                    ),
                );
                ok = false;
            }
            let when = match parse_when(a.when.get_ref()) {
                Ok(w) => Some(w),
                Err(e) => {
                    self.at(a.when.span(), format!("announcement \"{name}\": {e}"));
                    None
                }
            };
            let window = a
                .window
                .as_ref()
                .and_then(|w| match parse_duration(w.get_ref()) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        self.at(w.span(), format!("announcement \"{name}\": window: {e}"));
                        ok = false;
                        None
                    }
                });
            let tz = match (&a.timezone, &strike.when) {
                (Some(z), _) => self.zone(z),
                (None, StrikeTime::ZonedDays { tz, .. }) => Some(*tz),
                (None, StrikeTime::Windows(_)) => Some(Tz::UTC),
                (None, StrikeTime::ParticipantDays(_)) => {
                    self.at(
                        a.name.span(),
                        format!(
                            "announcement \"{name}\": the strike's days are read in each \
                             participant's zone, so say which zone this announcement's times are \
                             read in, e.g. timezone = \"Europe/Berlin\""
                        ),
                    );
                    None
                }
            };
            let channels: Vec<String> = a
                .channels
                .get_ref()
                .iter()
                .map(|c| c.get_ref().trim().to_string())
                .collect();
            if channels.is_empty() {
                self.at(
                    a.channels.span(),
                    format!(
                        "announcement \"{name}\" has no channels: name at least one of the \
                         campaign's [[channels]] or the host's"
                    ),
                );
                ok = false;
            }
            for (c, raw_c) in channels.iter().zip(a.channels.get_ref()) {
                if !valid_channel_name(c) {
                    self.at(
                        raw_c.span(),
                        format!(
                            "announcement \"{name}\": channel name \"{c}\" is not a channel name"
                        ),
                    );
                    ok = false;
                }
            }
            if a.text.get_ref().is_empty() {
                self.at(
                    a.text.span(),
                    format!("announcement \"{name}\" has no text: add at least one variant"),
                );
                ok = false;
            }
            for (i, v) in a.text.get_ref().iter().enumerate() {
                let which = format!("variant {} of announcement \"{name}\"", i + 1);
                if v.get_ref().trim().is_empty() {
                    self.at(
                        v.span(),
                        format!("{which} is empty: write the text or remove it"),
                    );
                    ok = false;
                } else if let Err(e) =
                    crate::compose::announce::Announcements::check(v.get_ref(), &vars)
                {
                    self.at(
                        v.span(),
                        format!(
                            "{which} does not render: {} (an announcement knows hashtag, title, \
                             campaign_url, declaration_url, strikers, signatures, starts_in, date, \
                             time, weekday, timezone)",
                            e.message
                        ),
                    );
                    ok = false;
                }
            }
            let (Some(when), Some(tz), true) = (when, tz, ok) else {
                continue;
            };
            out.push(Announcement {
                name,
                when,
                tz,
                channels,
                text: a
                    .text
                    .get_ref()
                    .iter()
                    .map(|v| v.get_ref().clone())
                    .collect(),
                window,
            });
        }
        out
    }

    /// `[census]`: each source an address of the scheme its network speaks, without
    /// credentials or a query (the census adds its own paths), listed once.
    fn census(&mut self, raw: &RawCensus) -> CensusSources {
        let mut sources = CensusSources::default();
        let mut seen = HashSet::new();
        for (key, list, schemes) in [
            ("mastodon", &raw.mastodon, ["https", "http"]),
            ("nostr", &raw.nostr, ["wss", "ws"]),
        ] {
            for item in list {
                if let Some(url) = self.census_address(key, item, schemes, &mut seen) {
                    match key {
                        "mastodon" => sources.mastodon.push(url),
                        _ => sources.nostr.push(url),
                    }
                }
            }
        }
        if let Some(item) = &raw.bluesky_appview {
            sources.bluesky_appview =
                self.census_address("bluesky_appview", item, ["https", "http"], &mut seen);
        }
        sources
    }

    fn census_address(
        &mut self,
        key: &str,
        item: &Spanned<String>,
        schemes: [&str; 2],
        seen: &mut HashSet<String>,
    ) -> Option<String> {
        let text = item.get_ref().trim();
        let problem = match url::Url::parse(text) {
            Err(e) => Some(format!("census {key} \"{text}\" is not an address: {e}")),
            Ok(u) if !schemes.contains(&u.scheme()) => Some(format!(
                "census {key} \"{text}\" must start with {}:// (or {}:// for a test server)",
                schemes[0], schemes[1]
            )),
            Ok(u) if !u.username().is_empty() || u.password().is_some() => Some(format!(
                "census {key} \"{text}\" carries credentials: the census reads public posts only"
            )),
            Ok(u) if u.query().is_some() || u.fragment().is_some() => Some(format!(
                "census {key} \"{text}\" has a query or fragment: give the server's base address"
            )),
            Ok(_) => None,
        };
        if let Some(message) = problem {
            self.at(item.span(), message);
            return None;
        }
        let url = text.trim_end_matches('/').to_string();
        if !seen.insert(url.clone()) {
            self.at(
                item.span(),
                format!("census {key} \"{text}\" is listed twice"),
            );
            return None;
        }
        Some(url)
    }

    /// `x_api = true` needs X among the networks, and every variant must carry the
    /// participant's own invitation link: X forbids identical posts across accounts, and
    /// the link (one per participant) keeps any two participants' posts apart whatever
    /// variant each gets.
    fn x_api(&mut self, raw: &RawCampaign, networks: &[NetworkKind]) -> bool {
        let Some(flag) = &raw.x_api else {
            return false;
        };
        if !*flag.get_ref() {
            return false;
        }
        if !networks.contains(&NetworkKind::X) {
            self.at(
                flag.span(),
                "x_api = true, but x is not in networks: add \"x\" to networks, or remove x_api",
            );
        }
        for (name, variants) in raw.templates.get_ref() {
            for (i, v) in variants.get_ref().iter().enumerate() {
                if !v.get_ref().contains("invite_link") {
                    self.at(
                        v.span(),
                        format!(
                            "variant {} of template \"{}\" has no {{{{ invite_link }}}}: with \
                             x_api = true every variant needs it, so no two participants post \
                             the same text on X (X forbids identical posts across accounts)",
                            i + 1,
                            name.get_ref()
                        ),
                    );
                }
            }
        }
        true
    }

    fn id(&mut self, id: &Spanned<String>) -> Option<CampaignId> {
        CampaignId::parse(id.get_ref())
            .map_err(|e| self.at(id.span(), e.to_string()))
            .ok()
    }

    fn non_empty(&mut self, key: &str, v: &Spanned<String>) -> Option<String> {
        let s = v.get_ref().trim();
        if s.is_empty() {
            self.at(
                v.span(),
                format!("{key} is empty: write some text or remove the key"),
            );
            return None;
        }
        Some(s.to_string())
    }

    /// A card has room for a sentence or two, not a manifesto.
    fn card_why(&mut self, v: &Spanned<String>) -> Option<String> {
        let s = self.non_empty("card_why", v)?;
        let n = s.chars().count();
        if n > MAX_CARD_WHY {
            self.at(
                v.span(),
                format!(
                    "card_why is {n} characters: a card has room for {MAX_CARD_WHY}; keep the \
                     reason short (the declaration says the rest)"
                ),
            );
            return None;
        }
        Some(s)
    }

    fn hashtag(&mut self, v: &Spanned<String>) -> Option<Hashtag> {
        Hashtag::parse(v.get_ref())
            .map_err(|e| self.at(v.span(), e.to_string()))
            .ok()
    }

    fn networks(&mut self, raw: Option<&Spanned<Vec<Spanned<String>>>>) -> Vec<NetworkKind> {
        let Some(raw) = raw else {
            return DEFAULT_NETWORKS.to_vec();
        };
        if raw.get_ref().is_empty() {
            self.at(
                raw.span(),
                "networks is empty: name at least one, e.g. [\"mastodon\", \"bluesky\"], or \
                 remove the key for the default (mastodon, bluesky, nostr)",
            );
        }
        let mut out = Vec::new();
        for n in raw.get_ref() {
            match n.get_ref().parse::<NetworkKind>() {
                Ok(k) if out.contains(&k) => {
                    self.at(n.span(), format!("network \"{k}\" is listed twice"));
                }
                Ok(k) => out.push(k),
                Err(_) => {
                    let known: Vec<&str> = NetworkKind::ALL.iter().map(|k| k.as_str()).collect();
                    let hint = did_you_mean(n.get_ref(), known.iter().copied());
                    self.at(
                        n.span(),
                        format!(
                            "unknown network \"{}\"{hint} (known: {})",
                            n.get_ref(),
                            known.join(", ")
                        ),
                    );
                }
            }
        }
        out
    }

    fn declaration(&mut self, v: &Spanned<RawDeclaration>) -> Option<Declaration> {
        let (file, origin) = match v.get_ref() {
            RawDeclaration::File(name) => (self.read_beside("declaration", name, v.span()), None),
            RawDeclaration::Table(t) => (
                self.read_beside("declaration", t.file.get_ref(), t.file.span()),
                t.origin.as_ref().map(|o| self.origin(o.get_ref())),
            ),
        };
        let (path, markdown) = file?;
        let origin = match origin {
            None => None,
            Some(o) => {
                let mut o = o?;
                o.changes = proposed_changes(&o.markdown, &markdown);
                Some(o)
            }
        };
        Some(Declaration {
            path,
            sha256: content_hash(&markdown),
            markdown,
            origin,
        })
    }

    /// `[declaration.origin]`, every key checked; its changes are left for the caller,
    /// which has the copy.
    fn origin(&mut self, o: &RawOrigin) -> Option<Origin> {
        let url = match &o.url {
            None => Some(None),
            Some(u) => match url::Url::parse(u.get_ref().trim()) {
                Ok(parsed)
                    if matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some() =>
                {
                    Some(Some(parsed.to_string()))
                }
                _ => {
                    self.at(
                        u.span(),
                        format!(
                            "origin url \"{}\" is not an http(s) address: write where the \
                             original is served, e.g. \
                             \"https://picket.example.org/c/social-media-strike/declaration.md\"",
                            u.get_ref()
                        ),
                    );
                    None
                }
            },
        };
        let declared = o.sha256.get_ref().trim().to_ascii_lowercase();
        let sha_ok = is_hash(&declared);
        if !sha_ok {
            self.at(
                o.sha256.span(),
                format!(
                    "origin sha256 \"{}\" is not a SHA-256: write the 64 hex digits that \
                     `picket declaration hash {}` prints",
                    o.sha256.get_ref(),
                    o.file.get_ref()
                ),
            );
        }
        let (path, text) = self.read_beside("origin", o.file.get_ref(), o.file.span())?;
        let actual = content_hash(&text);
        if sha_ok && actual != declared {
            self.at(
                o.sha256.span(),
                format!(
                    "the saved original \"{}\" hashes to {actual}, not to this sha256: the \
                     changes are computed against it, so it must stay as it was fetched; fetch \
                     it again (`picket declaration fork`) or correct sha256",
                    o.file.get_ref()
                ),
            );
            return None;
        }
        let url = url?;
        sha_ok.then(|| Origin {
            url,
            sha256: declared,
            path,
            markdown: text,
            changes: Default::default(),
        })
    }

    /// A file named in the campaign, relative to the campaign file: (full path, text).
    fn read_beside(
        &mut self,
        what: &str,
        name: &str,
        span: Range<usize>,
    ) -> Option<(PathBuf, String)> {
        let base = self.path.parent().unwrap_or(Path::new(""));
        let full: PathBuf = base.join(name);
        match std::fs::read_to_string(&full) {
            Ok(text) => Some((full, text)),
            Err(e) => {
                let why = if e.kind() == std::io::ErrorKind::NotFound {
                    "not found".to_string()
                } else {
                    format!("cannot be read ({e})")
                };
                self.at(
                    span,
                    format!(
                        "{what} file \"{name}\" {why} (looked for {}); the path is relative \
                         to the campaign file",
                        full.display()
                    ),
                );
                None
            }
        }
    }

    fn min_interval(&mut self, s: &RawStrike) -> Duration {
        match &s.min_interval {
            None => DEFAULT_MIN_INTERVAL,
            Some(v) => match parse_duration(v.get_ref()) {
                Ok(d) if d < FLOOR_MIN_INTERVAL => {
                    self.at(
                        v.span(),
                        format!(
                            "min_interval {} is too fine: networks treat accounts posting more \
                             often than every {} as spam; use at least \"{}\"",
                            v.get_ref(),
                            fmt_duration(FLOOR_MIN_INTERVAL),
                            fmt_duration(FLOOR_MIN_INTERVAL)
                        ),
                    );
                    DEFAULT_MIN_INTERVAL
                }
                Ok(d) => d,
                Err(e) => {
                    self.at(v.span(), format!("min_interval: {e}"));
                    DEFAULT_MIN_INTERVAL
                }
            },
        }
    }

    fn strike(&mut self, raw: &Spanned<RawStrike>) -> Option<Strike> {
        let s = raw.get_ref();

        // `None` zone with days is reported below; `Some(None)` is "participant".
        let zone: Option<Option<Tz>> = s.timezone.as_ref().and_then(|tz| {
            if tz.get_ref() == "participant" {
                Some(None)
            } else {
                self.zone(tz).map(Some)
            }
        });

        let when = match (&s.days, &s.windows) {
            (Some(_), Some(w)) => {
                self.at(
                    w.span(),
                    "[strike] has both `days` and `windows`: keep one (days are read in a time \
                     zone, windows are the same instants for everyone)",
                );
                return None;
            }
            (None, None) => {
                self.at(
                    raw.span(),
                    "[strike] needs `days` (e.g. days = [\"2027-07-04\"]) or `windows` (e.g. \
                     windows = [{ start = \"2027-07-04T00:00:00Z\", end = \"2027-07-05T00:00:00Z\" }])",
                );
                return None;
            }
            (Some(days), None) => {
                let days = self.days(days)?;
                match (&s.timezone, zone) {
                    (None, _) => {
                        self.at(
                            raw.span(),
                            "[strike] has `days` but no `timezone`: add timezone = \"participant\" \
                             (each participant's own zone) or an IANA zone such as \
                             \"America/New_York\" (the same zone for everyone)",
                        );
                        return None;
                    }
                    (Some(_), None) => return None,
                    (Some(_), Some(None)) => StrikeTime::ParticipantDays(days),
                    (Some(_), Some(Some(tz))) => StrikeTime::ZonedDays { tz, days },
                }
            }
            (None, Some(windows)) => {
                let tz = match (&s.timezone, zone) {
                    (Some(_), None) => return None,
                    (_, Some(z)) => z,
                    (None, None) => None,
                };
                StrikeTime::Windows(self.windows(windows, tz)?)
            }
        };

        let count = match &when {
            StrikeTime::ParticipantDays(d) | StrikeTime::ZonedDays { days: d, .. } => d.len(),
            StrikeTime::Windows(w) => w.len(),
        };
        let unit = if matches!(when, StrikeTime::Windows(_)) {
            "windows"
        } else {
            "days"
        };
        let min_days = match &s.min_days {
            None => 1,
            Some(v) => {
                let n = *v.get_ref();
                if n < 1 {
                    self.at(
                        v.span(),
                        format!("min_days is {n}: a pledge must cover at least 1 of the {unit}"),
                    );
                    return None;
                }
                if n as usize > count {
                    self.at(
                        v.span(),
                        format!(
                            "min_days is {n} but the strike has only {count} {unit}: lower \
                             min_days to {count} or add {unit}"
                        ),
                    );
                    return None;
                }
                n as u32
            }
        };
        Some(Strike { when, min_days })
    }

    fn zone(&mut self, v: &Spanned<String>) -> Option<Tz> {
        let name = v.get_ref();
        if let Ok(tz) = name.parse::<Tz>() {
            return Some(tz);
        }
        let hint = did_you_mean(
            name,
            chrono_tz::TZ_VARIANTS
                .iter()
                .map(|t| t.name())
                .chain(["participant"]),
        );
        let message = if hint.is_empty() {
            format!(
                "unknown time zone \"{name}\": write \"participant\" or an IANA name such as \
                 \"Europe/Berlin\""
            )
        } else {
            format!("unknown time zone \"{name}\"{hint}")
        };
        self.at(v.span(), message);
        None
    }

    fn days(&mut self, raw: &Spanned<Vec<Spanned<String>>>) -> Option<Vec<NaiveDate>> {
        if raw.get_ref().is_empty() {
            self.at(
                raw.span(),
                "days is empty: list at least one date, e.g. [\"2027-07-04\"]",
            );
            return None;
        }
        let before = self.problems.len();
        let mut out: Vec<NaiveDate> = Vec::new();
        for d in raw.get_ref() {
            let Some(date) = self.date(d) else { continue };
            if out.contains(&date) {
                self.at(d.span(), format!("{date} is listed twice in days"));
            } else if let Some(last) = out.last().filter(|last| **last > date) {
                self.at(
                    d.span(),
                    format!("days must be in order: {date} comes after {last}; move it up"),
                );
            } else {
                out.push(date);
            }
        }
        (self.problems.len() == before).then_some(out)
    }

    fn date(&mut self, v: &Spanned<String>) -> Option<NaiveDate> {
        match parse_date(v.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.at(v.span(), e.to_string());
                None
            }
        }
    }

    fn windows(
        &mut self,
        raw: &Spanned<Vec<Spanned<super::spec::RawWindow>>>,
        tz: Option<Tz>,
    ) -> Option<Vec<Window>> {
        if raw.get_ref().is_empty() {
            self.at(
                raw.span(),
                "windows is empty: list at least one { start, end }",
            );
            return None;
        }
        let before = self.problems.len();
        let mut out: Vec<Window> = Vec::new();
        for (i, w) in raw.get_ref().iter().enumerate() {
            let w = w.get_ref();
            let (Some(start), Some(end)) = (self.instant(&w.start, tz), self.instant(&w.end, tz))
            else {
                continue;
            };
            if end <= start {
                self.at(
                    w.end.span(),
                    format!(
                        "window {} ends at {} which is not after its start {}: swap them or \
                         fix the end",
                        i + 1,
                        rfc3339(end),
                        rfc3339(start)
                    ),
                );
                continue;
            }
            if let Some((j, prev)) = out.iter().enumerate().next_back()
                && start < prev.end
            {
                let what = if start < prev.start {
                    "windows must be in order"
                } else {
                    "windows must not overlap"
                };
                self.at(
                    w.start.span(),
                    format!(
                        "{what}: window {} starts at {} but window {} ends at {}",
                        i + 1,
                        rfc3339(start),
                        j + 1,
                        rfc3339(prev.end)
                    ),
                );
                continue;
            }
            out.push(Window { start, end });
        }
        (self.problems.len() == before).then_some(out)
    }

    fn instant(&mut self, v: &Spanned<String>, tz: Option<Tz>) -> Option<DateTime<Utc>> {
        match parse_instant(v.get_ref(), tz) {
            Ok(t) => Some(t),
            Err(e) => {
                self.at(v.span(), e);
                None
            }
        }
    }

    fn templates(
        &mut self,
        raw: &Spanned<RawTemplates>,
        campaign: &RawCampaign,
        networks: &[NetworkKind],
    ) -> BTreeMap<String, Vec<Spanned<String>>> {
        let mut vars = PostVars::sample(
            campaign.hashtag.get_ref().trim_start_matches('#'),
            campaign.title.get_ref(),
            campaign.id.get_ref(),
        );
        let mut out = BTreeMap::new();
        for (name, variants) in raw.get_ref() {
            if variants.get_ref().is_empty() {
                self.at(
                    variants.span(),
                    format!(
                        "template \"{}\" has no variants: add at least one text, e.g. \
                         {} = [\"On strike today: #{{{{ hashtag }}}}\"]",
                        name.get_ref(),
                        name.get_ref()
                    ),
                );
            }
            for (i, v) in variants.get_ref().iter().enumerate() {
                let which = format!("variant {} of template \"{}\"", i + 1, name.get_ref());
                if v.get_ref().trim().is_empty() {
                    self.at(
                        v.span(),
                        format!("{which} is empty: write the post or remove it"),
                    );
                    continue;
                }
                for &network in networks {
                    vars.network = network.as_str().to_string();
                    let text = match PostRenderer::check_variant(v.get_ref(), &vars) {
                        Ok(t) => t,
                        Err(e) => {
                            self.at(v.span(), format!("{which} {}", explain_tera(&e.message)));
                            break;
                        }
                    };
                    let m = measure(network, &text);
                    if !m.fits() {
                        let over = m.limit.max.map_or(0, |max| m.count.saturating_sub(max));
                        let (size, by) = match (m.limit.max, m.limit.max_bytes) {
                            (Some(max), _) if over > 0 => (
                                format!("{}/{max} {}", m.count, m.limit.unit),
                                format!("shorten it by {over}"),
                            ),
                            (_, Some(max_bytes)) => (
                                format!("{}/{max_bytes} bytes", m.bytes),
                                format!(
                                    "shorten it by {} bytes",
                                    m.bytes.saturating_sub(max_bytes)
                                ),
                            ),
                            _ => (m.describe(), "shorten it".to_string()),
                        };
                        self.at(
                            v.span(),
                            format!(
                                "{which} is {size} on {network}: {by} (measured with sample values)"
                            ),
                        );
                    }
                }
            }
            out.insert(name.get_ref().clone(), variants.get_ref().clone());
        }
        out
    }

    fn posts(
        &mut self,
        raw: &Spanned<Vec<Spanned<RawPost>>>,
        templates: &BTreeMap<String, Vec<Spanned<String>>>,
        min_interval: Duration,
        strike: Option<&Strike>,
    ) -> Vec<PostRule> {
        if raw.get_ref().is_empty() {
            self.at(
                raw.span(),
                "there are no posts: add a [[posts]] entry with name, when and template",
            );
        }
        let mut names = HashSet::new();
        let mut out = Vec::new();
        for p in raw.get_ref() {
            let p = p.get_ref();
            let name = p.name.get_ref();
            if name.trim().is_empty() {
                self.at(
                    p.name.span(),
                    "post name is empty: name it, e.g. \"notice\"",
                );
            } else if !names.insert(name.clone()) {
                self.at(
                    p.name.span(),
                    format!(
                        "post name \"{name}\" is used twice: post names must be unique (they \
                         are part of every slot's key)"
                    ),
                );
            }
            if !templates.contains_key(p.template.get_ref()) {
                let hint = did_you_mean(p.template.get_ref(), templates.keys().map(String::as_str));
                self.at(
                    p.template.span(),
                    format!(
                        "post \"{name}\" names template \"{}\", which is not in [templates]{hint}",
                        p.template.get_ref()
                    ),
                );
            }
            let when = self.when(&p.when, name, min_interval, strike);
            let window = p
                .window
                .as_ref()
                .and_then(|w| match parse_duration(w.get_ref()) {
                    Ok(d) => Some(d),
                    Err(e) => {
                        self.at(w.span(), format!("window of post \"{name}\": {e}"));
                        None
                    }
                });
            let optional = p.optional.as_ref().is_some_and(|o| *o.get_ref());
            if let (Some(o), Some(w)) = (&p.optional, when)
                && *o.get_ref()
                && !matches!(w, When::Every(_))
            {
                self.at(
                    o.span(),
                    format!(
                        "optional = true only works on `every` posts (participants opt in by \
                         choosing a cadence); post \"{name}\" runs at \"{}\"",
                        p.when.get_ref()
                    ),
                );
            }
            if let Some(when) = when {
                out.push(PostRule {
                    name: name.clone(),
                    when,
                    template: p.template.get_ref().clone(),
                    window,
                    optional,
                    card: p.card.as_ref().is_some_and(|c| *c.get_ref()),
                });
            }
        }
        out
    }

    fn when(
        &mut self,
        v: &Spanned<String>,
        post: &str,
        min_interval: Duration,
        strike: Option<&Strike>,
    ) -> Option<When> {
        match parse_when(v.get_ref()) {
            Err(e) => {
                self.at(v.span(), format!("post \"{post}\": {e}"));
                None
            }
            Ok(When::Every(d)) if d < min_interval => {
                self.at(
                    v.span(),
                    format!(
                        "post \"{post}\" runs every {} but the campaign's min_interval is {}: \
                         raise it to at least {} or lower min_interval",
                        fmt_duration(d),
                        fmt_duration(min_interval),
                        fmt_duration(min_interval)
                    ),
                );
                None
            }
            Ok(When::Every(d))
                if d > Duration::hours(24)
                    && strike.is_some_and(|s| !matches!(s.when, StrikeTime::Windows(_))) =>
            {
                self.at(
                    v.span(),
                    format!(
                        "post \"{post}\" runs every {} but a strike day lasts about 24h, so it \
                         would post once a day: use \"start\" or an interval of 24h or less",
                        fmt_duration(d)
                    ),
                );
                None
            }
            Ok(w) => Some(w),
        }
    }

    fn threshold(
        &mut self,
        raw: &Spanned<RawThreshold>,
        raw_strike: &Spanned<RawStrike>,
        strike: &Strike,
    ) -> Option<Threshold> {
        let t = raw.get_ref();
        let n = *t.participants.get_ref();
        if n < 1 {
            self.at(
                t.participants.span(),
                format!("threshold participants is {n}: it must be at least 1"),
            );
            return None;
        }
        let tz = match &strike.when {
            StrikeTime::ZonedDays { tz, .. } => Some(*tz),
            _ => raw_strike
                .get_ref()
                .timezone
                .as_ref()
                .and_then(|z| z.get_ref().parse::<Tz>().ok()),
        };
        let deadline = match &t.deadline {
            None => None,
            Some(d) => {
                let at = self.instant(d, tz)?;
                let first = strike.earliest_start();
                if at > first {
                    self.at(
                        d.span(),
                        format!(
                            "threshold deadline {} is after the strike starts ({} somewhere on \
                             Earth): move it earlier",
                            rfc3339(at),
                            rfc3339(first)
                        ),
                    );
                    return None;
                }
                Some(at)
            }
        };
        Some(Threshold {
            participants: n as u32,
            deadline,
        })
    }
}

/// Serde's wording is about fields; a person editing TOML thinks in keys.
fn explain_serde(msg: &str) -> String {
    if let Some(rest) = msg.strip_prefix("missing field ") {
        return format!("missing required key {rest}: add it (see campaigns/README.md)");
    }
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let (key, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let candidates: Vec<&str> = expected
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 1)
            .map(|(_, s)| s)
            .collect();
        let hint = did_you_mean(key.trim_matches('`'), candidates.iter().copied());
        return if expected.is_empty() {
            format!("unknown key {key}")
        } else {
            format!("unknown key {key}{hint} (expected {expected})")
        };
    }
    msg.to_string()
}

/// The template variable names, for suggestions (`participant.name` and friends).
fn variable_names() -> Vec<String> {
    let sample = serde_json::to_value(PostVars::sample("h", "t", "c")).unwrap_or_default();
    let mut out = Vec::new();
    if let Some(map) = sample.as_object() {
        for (k, v) in map {
            match v.as_object() {
                Some(inner) => out.extend(inner.keys().map(|i| format!("{k}.{i}"))),
                None => out.push(k.clone()),
            }
        }
    }
    out
}

/// Tera's errors are written for template authors reading a terminal with carets; turn
/// them into one line that says what to change.
fn explain_tera(msg: &str) -> String {
    if let Some(var) = msg
        .split("Variable `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
    {
        let names = variable_names();
        let hint = did_you_mean(var, names.iter().map(String::as_str));
        return format!(
            "uses unknown variable `{var}`{hint} (variables: {})",
            names.join(", ")
        );
    }
    if msg.contains("Failed to parse") {
        let at = msg
            .split("--> ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .and_then(|lc| lc.split_once(':'));
        let expected = msg
            .lines()
            .find_map(|l| l.trim().strip_prefix("= "))
            .unwrap_or("check the {{ }} and {% %} tags");
        return match at {
            Some((l, c)) => {
                format!("does not parse at line {l}, column {c} of the text: {expected}")
            }
            None => format!("does not parse: {expected}"),
        };
    }
    let flat: Vec<&str> = msg
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    format!("does not render: {}", flat.join(" "))
}

/// An RFC 3339 instant, or (with a zone) a local `YYYY-MM-DDTHH:MM[:SS]` in that zone.
fn parse_instant(s: &str, tz: Option<Tz>) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M"));
    match (local, tz) {
        (Ok(local), Some(tz)) => Ok(super::schedule::resolve_local(tz, local)),
        (Ok(_), None) => Err(format!(
            "\"{s}\" has no UTC offset: add one (e.g. \"{s}Z\" or \"{s}-04:00\"), or set \
             [strike] timezone to an IANA zone to read it there"
        )),
        (Err(_), _) => {
            let date_part = s.get(..10).unwrap_or(s);
            if s.len() >= 10 && parse_date(date_part).is_err() {
                return Err(parse_date(date_part).unwrap_err().to_string());
            }
            Err(format!(
                "\"{s}\" is not an instant: write RFC 3339, e.g. \"2027-07-04T00:00:00Z\" or \
                 \"2027-07-04T09:00:00-04:00\""
            ))
        }
    }
}

/// A channel's or announcement's name: what the store, the settings and the environment
/// variable of its token know it by.
fn valid_channel_name(name: &str) -> bool {
    (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Strike {
    /// The first instant any participant's strike can begin: for days read in each
    /// participant's zone, midnight of the first day in UTC+14 (the earliest zone).
    pub fn earliest_start(&self) -> DateTime<Utc> {
        match &self.when {
            StrikeTime::ParticipantDays(days) => {
                days[0].and_time(NaiveTime::MIN).and_utc() - Duration::hours(14)
            }
            StrikeTime::ZonedDays { tz, days } => super::schedule::day_start(*tz, days[0]),
            StrikeTime::Windows(w) => w[0].start,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x_campaign(extra: &str, template: &str) -> String {
        format!(
            "id = \"x\"\ntitle = \"X\"\nhashtag = \"S\"\n{extra}\n\
             [strike]\ndays = [\"2027-07-04\"]\ntimezone = \"participant\"\n\
             [[posts]]\nname = \"n\"\nwhen = \"start\"\ntemplate = \"t\"\n\
             [templates]\nt = [\"{template}\"]\n"
        )
    }

    #[test]
    fn census_sources_are_read_trimmed_and_bad_ones_are_pointed_at() {
        let path = std::path::Path::new("c.toml");
        let none = crate::campaign::parse_str(&x_campaign("", "On"), path).unwrap();
        assert!(none.census.is_empty());
        let good = crate::campaign::parse_str(
            &x_campaign(
                "[census]\nmastodon = [\"https://m.example/\", \"http://127.0.0.1:3000\"]\n\
                 nostr = [\"wss://relay.example\"]\nbluesky_appview = \"https://api.example\"",
                "On",
            ),
            path,
        )
        .unwrap();
        assert_eq!(
            good.census.mastodon,
            ["https://m.example", "http://127.0.0.1:3000"]
        );
        assert_eq!(good.census.nostr, ["wss://relay.example"]);
        assert_eq!(
            good.census.bluesky_appview.as_deref(),
            Some("https://api.example")
        );
        let bad = crate::campaign::parse_str(
            &x_campaign(
                "[census]\nmastodon = [\"wss://m.example\", \"https://u:p@m.example\"]\n\
                 nostr = [\"wss://r.example\", \"wss://r.example/\"]\n\
                 bluesky_appview = \"https://a.example/?q=1\"",
                "On",
            ),
            path,
        )
        .unwrap_err();
        let at = |needle: &str| {
            bad.iter()
                .find(|p| p.message.contains(needle))
                .map(|p| (p.line, p.col))
        };
        assert_eq!(at("must start with https://"), Some((5, 13)), "{bad:?}");
        assert_eq!(at("carries credentials"), Some((5, 32)), "{bad:?}");
        assert_eq!(at("listed twice"), Some((6, 29)), "{bad:?}");
        assert_eq!(at("query or fragment"), Some((7, 19)), "{bad:?}");
    }

    #[test]
    fn the_x_api_is_off_unless_asked_and_asking_needs_x_and_a_link_in_every_variant() {
        let path = std::path::Path::new("x.toml");
        let off = crate::campaign::parse_str(&x_campaign("", "On #{{ hashtag }}"), path).unwrap();
        assert!(!off.x_api);
        let on = crate::campaign::parse_str(
            &x_campaign(
                "networks = [\"x\"]\nx_api = true",
                "On #{{ hashtag }}: {{ invite_link }}",
            ),
            path,
        )
        .unwrap();
        assert!(on.x_api);
        let no_x = crate::campaign::parse_str(
            &x_campaign(
                "networks = [\"mastodon\"]\nx_api = true",
                "On {{ invite_link }}",
            ),
            path,
        )
        .unwrap_err();
        assert!(
            no_x.iter()
                .any(|p| p.message.contains("x is not in networks")),
            "{no_x:?}"
        );
        let no_link = crate::campaign::parse_str(
            &x_campaign("networks = [\"x\"]\nx_api = true", "On #{{ hashtag }}"),
            path,
        )
        .unwrap_err();
        assert!(
            no_link
                .iter()
                .any(|p| p.message.contains("has no {{ invite_link }}") && p.line == 14),
            "{no_link:?}"
        );
    }

    const CARDS: &str = r#"id = "c"
title = "T"
hashtag = "H"
description = "Why we strike. And more."
card_why = "WHY"
[strike]
timezone = "participant"
days = ["2027-07-04"]
[[posts]]
name = "a"
when = "start"
template = "t"
card = true
[[posts]]
name = "b"
when = "end"
template = "t"
[templates]
t = ["x"]
"#;

    #[test]
    fn a_post_asks_for_the_card_and_the_campaign_says_why_in_its_own_words() {
        let c = crate::campaign::parse_str(CARDS, Path::new("c.toml")).unwrap();
        assert_eq!(c.card_why.as_deref(), Some("WHY"));
        assert_eq!(
            c.posts.iter().map(|p| p.card).collect::<Vec<_>>(),
            [true, false]
        );
        let day = chrono::NaiveDate::from_ymd_opt(2027, 7, 4).unwrap();
        let n = c.card_notice(day, "https://picket.example.org/");
        assert_eq!(n.why.as_deref(), Some("WHY"));
        assert_eq!(n.host, "picket.example.org");

        let plain = CARDS.replace("card_why = \"WHY\"\n", "");
        let c = crate::campaign::parse_str(&plain, Path::new("c.toml")).unwrap();
        assert_eq!(
            c.card_notice(day, "https://x").why.as_deref(),
            Some("Why we strike.")
        );
    }

    #[test]
    fn a_card_why_too_long_for_a_card_or_empty_is_pointed_at() {
        let long = CARDS.replace("\"WHY\"", &format!("\"{}\"", "w".repeat(MAX_CARD_WHY + 1)));
        let problems = crate::campaign::parse_str(&long, Path::new("c.toml")).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!((problems[0].line, problems[0].col), (5, 12));
        assert!(problems[0].message.contains("card_why"), "{problems:?}");
        let empty = CARDS.replace("\"WHY\"", "\" \"");
        let problems = crate::campaign::parse_str(&empty, Path::new("c.toml")).unwrap_err();
        assert!(
            problems[0].message.contains("card_why is empty"),
            "{problems:?}"
        );
        let typo = CARDS.replace("card = true", "card = \"yes\"");
        assert!(crate::campaign::parse_str(&typo, Path::new("c.toml")).is_err());
    }

    #[test]
    fn line_and_column_count_characters() {
        let src = "a = 1\nbé = \"x\"";
        assert_eq!(line_col(src, src.find('"').unwrap()), (2, 6));
    }
}
