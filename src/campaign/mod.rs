//! Campaign files: `campaigns/*.toml` (plus the declaration they name) turned into a
//! validated [`Campaign`], and the instants its posts fall on for one participant.
//!
//! Parsing goes raw spec (`spec`, serde with `deny_unknown_fields`, every value spanned)
//! -> validated types (`validate`), collecting every problem with its file, line and column
//! rather than stopping at the first; the values inside (durations, dates, `when`) are
//! read by `values`, which the web and the command line use too. `schedule` turns a
//! campaign plus one participant's zone, days and cadence into [`Slot`]s, and `preview`
//! renders every slot's text through [`crate::compose`]. `broadcast` holds the campaign's
//! own announcement channels and the instants of their announcements. This module reads no database and
//! speaks to no network.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::domain::{CampaignId, Hashtag, NetworkKind, Zone};

pub mod broadcast;
mod check;
pub mod declaration;
pub mod preview;
pub mod schedule;
mod spec;
mod validate;
mod values;

pub use check::{check_paths, load_dir};
pub use preview::{Preview, PreviewPost, PreviewText, pick_variant, preview};
pub use schedule::{
    ChoiceError, END_POST_WINDOW, MAX_DAY_POST_WINDOW, StrikePeriod, day_start, resolve_local,
};
pub use validate::{DEFAULT_MIN_INTERVAL, DEFAULT_NETWORKS, MAX_CARD_WHY};
pub use values::{MAX_DURATION, ValueError, fmt_duration, parse_date, parse_duration, parse_when};

/// One thing wrong with a campaign file, located for a person to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// A validated campaign.
#[derive(Debug, Clone, Serialize)]
pub struct Campaign {
    /// Slug used in URLs and the CLI.
    pub id: CampaignId,
    pub title: String,
    /// Without the leading '#'.
    pub hashtag: Hashtag,
    /// A sentence or two for pages and link previews.
    pub description: Option<String>,
    /// The short "why" strike cards show, as written (`card_why`); see [`Campaign::card_why`].
    pub card_why: Option<String>,
    pub declaration: Option<Declaration>,
    pub strike: Strike,
    pub posts: Vec<PostRule>,
    /// Template name -> variants (tera sources for post bodies).
    pub templates: BTreeMap<String, Vec<String>>,
    /// Networks the campaign's posts are checked against and offered on.
    pub networks: Vec<NetworkKind>,
    /// The finest cadence a participant may choose for `every` posts.
    #[serde(with = "duration_secs")]
    pub min_interval: chrono::Duration,
    /// The tipping point, if the campaign has one.
    pub threshold: Option<Threshold>,
    /// Accounts connected through the host's X API app may post for this campaign
    /// (`x_api = true`). Off by default: X's rules forbid coordinated posting across
    /// accounts, so the organiser opts in knowingly.
    pub x_api: bool,
    /// Where the hashtag census looks (`[census]`); empty: no census.
    pub census: CensusSources,
    /// The organiser's own announcement channels declared here (`[[channels]]`, no
    /// tokens); the host's settings may declare more. Not part of the public JSON.
    #[serde(skip)]
    pub channels: Vec<broadcast::ChannelSpec>,
    /// What the channels announce, and when (`[[announcements]]`).
    #[serde(skip)]
    pub announcements: Vec<broadcast::Announcement>,
    /// Where the file was read from.
    pub source: PathBuf,
}

/// `[census]`: the public sources the hashtag census polls, as the organiser listed them
/// (checked: each an http(s) or ws(s) address without credentials).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CensusSources {
    /// Mastodon-API servers (base addresses) whose tag timeline is read.
    pub mastodon: Vec<String>,
    /// Nostr relays (`wss://`).
    pub nostr: Vec<String>,
    /// A Bluesky AppView (base address) answering `app.bsky.feed.searchPosts`.
    pub bluesky_appview: Option<String>,
}

impl CensusSources {
    pub fn is_empty(&self) -> bool {
        self.mastodon.is_empty() && self.nostr.is_empty() && self.bluesky_appview.is_none()
    }
}

/// The text signers sign, as written in its file.
#[derive(Debug, Clone, Serialize)]
pub struct Declaration {
    pub path: PathBuf,
    pub markdown: String,
    /// Content hash of the text (see [`declaration::content_hash`]).
    pub sha256: String,
    /// Set when this text is a copy of another host's declaration.
    pub origin: Option<Origin>,
}

/// `[declaration.origin]`: the original a copy was made from, kept beside it so the
/// changes can be shown without asking the original's host.
#[derive(Debug, Clone, Serialize)]
pub struct Origin {
    /// Where the original is served, when known.
    pub url: Option<String>,
    /// Content hash of the original (checked against `markdown` when loading).
    pub sha256: String,
    pub path: PathBuf,
    pub markdown: String,
    /// What the copy changes in the original.
    pub changes: declaration::Changes,
}

/// `[threshold]`: the strike is on once this many people have pledged (by the deadline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Threshold {
    pub participants: u32,
    pub deadline: Option<DateTime<Utc>>,
}

/// When the strike happens. Deserialize reads it back from the JSON API (forking a
/// campaign from another host).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Strike {
    pub when: StrikeTime,
    /// A pledge covers at least this many of the days (or windows).
    pub min_days: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum StrikeTime {
    /// Whole calendar days, each read in the participant's own zone.
    ParticipantDays(Vec<NaiveDate>),
    /// Whole calendar days read in one zone for everyone.
    ZonedDays { tz: Tz, days: Vec<NaiveDate> },
    /// Absolute windows, the same instants for everyone.
    Windows(Vec<Window>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// One `[[posts]]` entry.
#[derive(Debug, Clone, Serialize)]
pub struct PostRule {
    pub name: String,
    pub when: When,
    /// Names a `[templates]` entry.
    pub template: String,
    /// How long after its instant a slot may still be published, as written; `None` =
    /// the default for its `when` (see `campaigns/README.md`).
    #[serde(with = "duration_secs_opt")]
    pub window: Option<chrono::Duration>,
    /// Only for participants who opted into this post (e.g. the hourly notice).
    pub optional: bool,
    /// The strike card goes with this post as an image, on networks that take one.
    pub card: bool,
}

/// A post's schedule, as written in `when`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum When {
    /// At the start of each strike day (or window).
    Start,
    /// At the end of the strike (after its last day or window).
    End,
    /// Every interval during the strike.
    Every(#[serde(with = "duration_secs")] chrono::Duration),
    /// Once, this long before the strike starts.
    Before(#[serde(with = "duration_secs")] chrono::Duration),
    /// Each strike day at this local time.
    Daily(chrono::NaiveTime),
}

/// One participant's choices that shape their schedule.
#[derive(Debug, Clone)]
pub struct Participation {
    pub tz: Zone,
    /// Days chosen; `None` = all of the campaign's days.
    pub days: Option<Vec<NaiveDate>>,
    /// Cadence for `every` posts; `None` = opted out of optional posts, the campaign's
    /// own interval for required ones.
    pub every: Option<chrono::Duration>,
}

/// One post picket will make for one participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slot {
    /// Stable across re-planning: same campaign, rule and instant give the same key.
    pub key: Arc<str>,
    pub post: Arc<str>,
    pub template: Arc<str>,
    /// The scheduled instant, before jitter.
    pub at: DateTime<Utc>,
    /// Past this instant the slot is missed.
    pub window_end: DateTime<Utc>,
    /// 1-based strike day this slot belongs to (0 for posts before the strike).
    pub day: u32,
    pub days_total: u32,
}

pub mod duration_secs {
    //! Serialize a `chrono::Duration` as whole seconds.
    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &chrono::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }
}

pub mod duration_secs_opt {
    //! Serialize an optional `chrono::Duration` as whole seconds or null.
    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Option<chrono::Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.num_seconds()),
            None => s.serialize_none(),
        }
    }
}

impl Campaign {
    /// The strike day a post's card shows: the slot's own date where the days are read
    /// (the campaign's zone, or the participant's), when that is a strike day; before the
    /// strike the first day, after it the last. The card route knows only strike days, so
    /// a link to the card of an invitation a week before still works.
    pub fn card_day(&self, participant: chrono_tz::Tz, slot_at: DateTime<Utc>) -> NaiveDate {
        let tz = match &self.strike.when {
            StrikeTime::ZonedDays { tz, .. } => *tz,
            _ => participant,
        };
        let local = slot_at.with_timezone(&tz).date_naive();
        let days = self.days();
        if days.contains(&local) {
            return local;
        }
        days.iter()
            .copied()
            .filter(|d| *d >= local)
            .min()
            .or_else(|| days.iter().copied().max())
            .unwrap_or(local)
    }

    /// What this campaign's strike card for `day` shows, on the host at `public_url`.
    pub fn card_notice(&self, day: NaiveDate, public_url: &str) -> crate::card::Notice {
        crate::card::Notice {
            title: self.title.clone(),
            hashtag: self.hashtag.to_string(),
            day,
            host: crate::card::host_of(public_url),
            why: crate::card::why_of(self.card_why.as_deref(), self.description.as_deref()),
        }
    }
}

/// Load and validate one campaign file.
pub fn load_file(path: &Path) -> Result<Campaign, Vec<Problem>> {
    check::load(path).map(|l| l.campaign)
}

/// Validate campaign text as if read from `path` (files it names are relative to `path`).
pub fn parse_str(src: &str, path: &Path) -> Result<Campaign, Vec<Problem>> {
    validate::parse(src, path).map(|l| l.campaign)
}
