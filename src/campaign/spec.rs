//! The campaign file exactly as written: serde types that mirror the TOML, nothing more.
//!
//! Every struct denies unknown keys (a typo such as `min_day` must not be silently
//! ignored) and every value is wrapped in [`Spanned`] so that `validate` can point a
//! person at the line and column of a value that parses but makes no sense. No meaning is
//! checked here: dates, zones, durations and schedules stay strings until `validate`.
//! `#[serde(flatten)]` is avoided on purpose: it disables `deny_unknown_fields`.

use std::collections::BTreeMap;

use serde::Deserialize;
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
    #[serde(default)]
    pub declaration: Option<Spanned<String>>,
    #[serde(default)]
    pub networks: Option<Spanned<Vec<Spanned<String>>>>,
    pub strike: Spanned<RawStrike>,
    pub posts: Spanned<Vec<Spanned<RawPost>>>,
    pub templates: Spanned<RawTemplates>,
    #[serde(default)]
    pub threshold: Option<Spanned<RawThreshold>>,
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
}

/// `[threshold]`: the strike is on once this many people have pledged.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThreshold {
    pub participants: Spanned<i64>,
    #[serde(default)]
    pub deadline: Option<Spanned<String>>,
}
