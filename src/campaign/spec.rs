//! The campaign file exactly as written: serde types that mirror the TOML, nothing more.
//!
//! Every struct denies unknown keys (a typo such as `min_day` must not be silently
//! ignored) and every value is wrapped in [`Spanned`] so that `validate` can point a
//! person at the line and column of a value that parses but makes no sense. No meaning is
//! checked here: dates, zones, durations and schedules stay strings until `validate`.
//! `#[serde(flatten)]` is avoided on purpose: it disables `deny_unknown_fields`.

use std::collections::BTreeMap;

use std::fmt;

use serde::de::{MapAccess, Visitor, value::MapAccessDeserializer};
use serde::{Deserialize, Deserializer};
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCampaign {
    pub id: Spanned<String>,
    pub title: Spanned<String>,
    pub hashtag: Spanned<String>,
    #[serde(default)]
    pub description: Option<Spanned<String>>,
    /// The short "why" of the strike cards; default: the description's first sentence.
    #[serde(default)]
    pub card_why: Option<Spanned<String>>,
    #[serde(default)]
    pub declaration: Option<Spanned<RawDeclaration>>,
    #[serde(default)]
    pub networks: Option<Spanned<Vec<Spanned<String>>>>,
    pub strike: Spanned<RawStrike>,
    pub posts: Spanned<Vec<Spanned<RawPost>>>,
    pub templates: Spanned<RawTemplates>,
    #[serde(default)]
    pub threshold: Option<Spanned<RawThreshold>>,
    /// Post to X through the host's X API app (`[x]`): off unless the organiser says so.
    #[serde(default)]
    pub x_api: Option<Spanned<bool>>,
    /// `[census]`: where the hashtag census looks.
    #[serde(default)]
    pub census: Option<Spanned<RawCensus>>,
    /// `[[channels]]`: the organiser's own announcement accounts (no tokens here).
    #[serde(default)]
    pub channels: Option<Spanned<Vec<Spanned<RawChannel>>>>,
    /// `[[announcements]]`: what those channels say, and when.
    #[serde(default)]
    pub announcements: Option<Spanned<Vec<Spanned<RawAnnouncement>>>>,
}

/// One `[[channels]]` entry: where announcements go. The keys a token would be written
/// under are read only to refuse them with a message saying where a token belongs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChannel {
    pub name: Spanned<String>,
    pub kind: Spanned<String>,
    #[serde(default)]
    pub homeserver: Option<Spanned<String>>,
    #[serde(default)]
    pub room: Option<Spanned<String>>,
    #[serde(default)]
    pub chat: Option<Spanned<String>>,
    #[serde(default)]
    pub api: Option<Spanned<String>>,
    #[serde(default)]
    pub token: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub access_token: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub bot_token: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub webhook: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub webhook_url: Option<Spanned<toml::Value>>,
    #[serde(default)]
    pub url: Option<Spanned<toml::Value>>,
}

/// One `[[announcements]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnnouncement {
    pub name: Spanned<String>,
    pub when: Spanned<String>,
    pub channels: Spanned<Vec<Spanned<String>>>,
    pub text: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    #[serde(default)]
    pub window: Option<Spanned<String>>,
}

/// `[census]`: the public sources the hashtag census polls.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCensus {
    /// Mastodon-API servers whose tag timeline is read.
    #[serde(default)]
    pub mastodon: Vec<Spanned<String>>,
    /// Nostr relays asked for `#t` notes.
    #[serde(default)]
    pub nostr: Vec<Spanned<String>>,
    /// A Bluesky AppView answering `app.bsky.feed.searchPosts`.
    #[serde(default)]
    pub bluesky_appview: Option<Spanned<String>>,
}

/// `[templates]`: name -> variants, each spanned so problems point at the variant.
pub type RawTemplates = BTreeMap<Spanned<String>, Spanned<Vec<Spanned<String>>>>;

/// `[strike]`: either `days` (with a `timezone`) or `windows`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStrike {
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    #[serde(default)]
    pub days: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    pub windows: Option<Spanned<Vec<Spanned<RawWindow>>>>,
    /// Signed so that `min_days = -1` gets a message from `validate`, not from serde.
    #[serde(default)]
    pub min_days: Option<Spanned<i64>>,
    #[serde(default)]
    pub min_interval: Option<Spanned<String>>,
}

/// One `windows` entry: RFC 3339 instants, or local times in the strike's `timezone`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    pub start: Spanned<String>,
    pub end: Spanned<String>,
}

/// One `[[posts]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPost {
    pub name: Spanned<String>,
    pub when: Spanned<String>,
    pub template: Spanned<String>,
    #[serde(default)]
    pub window: Option<Spanned<String>>,
    #[serde(default)]
    pub optional: Option<Spanned<bool>>,
    /// Attach the strike card to this post where the network takes images.
    #[serde(default)]
    pub card: Option<Spanned<bool>>,
}

/// `[threshold]`: the strike is on once this many people have pledged.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThreshold {
    pub participants: Spanned<i64>,
    #[serde(default)]
    pub deadline: Option<Spanned<String>>,
}

/// `declaration`: a file name, or a `[declaration]` table for a copy that names its origin.
#[derive(Debug)]
pub enum RawDeclaration {
    /// `declaration = "declaration.md"` (the outer `Spanned` locates it).
    File(String),
    Table(RawDeclarationTable),
}

/// `[declaration]` written as a table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDeclarationTable {
    pub file: Spanned<String>,
    #[serde(default)]
    pub origin: Option<Spanned<RawOrigin>>,
}

/// `[declaration.origin]`: the text a copy was made from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrigin {
    #[serde(default)]
    pub url: Option<Spanned<String>>,
    pub sha256: Spanned<String>,
    pub file: Spanned<String>,
}

// By hand rather than `#[serde(untagged)]`: untagged buffers the value, which loses the
// spans inside the table and turns every mistake into "did not match any variant".
impl<'de> Deserialize<'de> for RawDeclaration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = RawDeclaration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "a file name such as \"declaration.md\", or a [declaration] table with \
                     `file` (and optionally [declaration.origin])",
                )
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawDeclaration::File(v.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawDeclarationTable::deserialize(MapAccessDeserializer::new(map))
                    .map(RawDeclaration::Table)
            }
        }
        d.deserialize_any(Either)
    }
}
