//! The embeddable strike widget: `widget/widget.js` (plain JavaScript, embedded in the
//! binary) with the data of one or more campaigns inlined, so the script makes no request
//! at all. The same script is served at `GET /widget.js` (see `web::widget`) and written to
//! a folder by `picket widget export`, where it works on a static site with no picket host
//! (its counters are then a snapshot).
//!
//! What the visitor sees is decided in the browser, in the visitor's own time zone: this
//! module only describes the strike days. It neither reads the clock nor the store: callers
//! pass the instant and the counters.

use std::path::{Path, PathBuf};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::campaign::{Campaign, StrikeTime, day_start};

/// The widget's source, as written in the repository.
pub const SOURCE: &str = include_str!("../widget/widget.js");

/// The example page `picket widget export` writes beside the script.
const EMBED_PAGE: &str = include_str!("../widget/embed.html");

/// Where the configuration goes in [`SOURCE`]: an expression that is valid JavaScript on its
/// own (`null`: a script that shows nothing).
const MARKER: &str = "/*picket:config*/null";

/// Everything the script knows, inlined as a JavaScript object literal.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// RFC 3339 instant this configuration was made.
    pub generated: String,
    /// Written by `picket widget export`: counters are those of `generated`.
    pub snapshot: bool,
    /// Without `data-campaign`, the script shows the first.
    pub campaigns: Vec<CampaignConfig>,
}

/// One campaign as the script needs it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CampaignConfig {
    pub id: String,
    pub title: String,
    pub hashtag: String,
    pub description: Option<String>,
    /// `local`: `days` run from midnight to midnight in the visitor's own zone; `utc`:
    /// `windows` are the same instants for everyone.
    pub mode: Mode,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<WindowConfig>,
    /// The campaign page on its picket host.
    pub url: String,
    pub sign_url: String,
    pub join_url: String,
    /// `None` hides the counters (an export made without a database).
    pub counters: Option<Counts>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Local,
    Utc,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowConfig {
    pub start: String,
    pub end: String,
}

/// The numbers the widget shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub signatures: u64,
    pub strikers: u64,
    /// With `[[peers]]`: the hosts the counts add up (the counts are then their total).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<u64>,
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl CampaignConfig {
    /// `public_url` is where visitors reach the picket host (links go there).
    pub fn new(c: &Campaign, counters: Option<Counts>, public_url: &str) -> CampaignConfig {
        let base = public_url.trim_end_matches('/');
        let (mode, days, windows) = match &c.strike.when {
            StrikeTime::ParticipantDays(days) => (
                Mode::Local,
                days.iter()
                    .map(|d| d.format("%Y-%m-%d").to_string())
                    .collect(),
                Vec::new(),
            ),
            // Days of one zone are the same instants for every visitor.
            StrikeTime::ZonedDays { tz, days } => (
                Mode::Utc,
                Vec::new(),
                days.iter()
                    .map(|d| WindowConfig {
                        start: rfc(day_start(*tz, *d)),
                        end: rfc(day_start(*tz, d.succ_opt().unwrap_or(*d))),
                    })
                    .collect(),
            ),
            StrikeTime::Windows(w) => (
                Mode::Utc,
                Vec::new(),
                w.iter()
                    .map(|w| WindowConfig {
                        start: rfc(w.start),
                        end: rfc(w.end),
                    })
                    .collect(),
            ),
        };
        CampaignConfig {
            id: c.id.to_string(),
            title: c.title.clone(),
            hashtag: c.hashtag.to_string(),
            description: c.description.clone(),
            mode,
            days,
            windows,
            url: format!("{base}/c/{}", c.id),
            sign_url: format!("{base}/c/{}#sign", c.id),
            join_url: format!("{base}/c/{}/join", c.id),
            counters,
        }
    }
}

impl Config {
    pub fn new(campaigns: Vec<CampaignConfig>, generated: DateTime<Utc>, snapshot: bool) -> Self {
        Config {
            generated: rfc(generated),
            snapshot,
            campaigns,
        }
    }

    /// The script with this configuration inlined, in plain ASCII: a static copy is often
    /// served without a charset and then read in the embedding page's encoding.
    pub fn script(&self) -> String {
        ascii_only(&SOURCE.replacen(MARKER, &self.to_js(), 1))
    }

    /// JSON that is also safe wherever a script's text may end up: no `</script>`, no
    /// HTML comment openers.
    fn to_js(&self) -> String {
        let json = serde_json::to_string(self).expect("a widget config always serialises");
        let mut out = String::with_capacity(json.len());
        for ch in json.chars() {
            match ch {
                '<' => out.push_str("\\u003c"),
                '>' => out.push_str("\\u003e"),
                '&' => out.push_str("\\u0026"),
                c => out.push(c),
            }
        }
        out
    }
}

/// Non-ASCII characters as `\\uXXXX` escapes (UTF-16 units). The widget's source has them
/// only in string literals and comments, where an escape means the same character.
fn ascii_only(js: &str) -> String {
    let mut out = String::with_capacity(js.len());
    for ch in js.chars() {
        if ch.is_ascii() {
            out.push(ch);
        } else {
            let mut units = [0u16; 2];
            for u in ch.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// The tag a blogger copies, for a script at `src`.
pub fn tag(src: &str, campaign: Option<&str>) -> String {
    let esc = html_escape;
    match campaign {
        Some(id) => format!(
            r#"<script src="{}" data-campaign="{}" async></script>"#,
            esc(src),
            esc(id)
        ),
        None => format!(r#"<script src="{}" async></script>"#, esc(src)),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// There is nothing to put in the widget.
    #[error("no campaign to export")]
    NoCampaign,
    /// The folder or a file in it could not be written.
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Write `widget.js` (configuration inlined), `widget.json` (the same configuration, for
/// reading) and `embed.html` (the tag to copy, and a page to try it on) into `dir`, which
/// is created if needed. Returns the files written.
pub fn export(dir: &Path, config: &Config) -> Result<Vec<PathBuf>, ExportError> {
    let first = config.campaigns.first().ok_or(ExportError::NoCampaign)?;
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .map(|()| path.clone())
            .map_err(|source| ExportError::Write { path, source })
    };
    std::fs::create_dir_all(dir).map_err(|source| ExportError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let tag = tag("widget.js", Some(&first.id));
    let page = EMBED_PAGE
        .replace("@TITLE@", &html_escape(&first.title))
        .replace("@SNIPPET@", &html_escape(&tag))
        .replace("@GENERATED@", &html_escape(&config.generated))
        .replace("@TAG@", &tag);
    let json = serde_json::to_string_pretty(config).expect("a widget config always serialises");
    Ok(vec![
        write("widget.js", &config.script())?,
        write("widget.json", &(json + "\n"))?,
        write("embed.html", &page)?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(strike: &str) -> Campaign {
        let src = format!(
            "id = \"c\"\ntitle = \"T\"\nhashtag = \"H\"\nnetworks = [\"sandbox\"]\n[strike]\n{strike}\n\
             [[posts]]\nname = \"n\"\nwhen = \"start\"\ntemplate = \"t\"\n[templates]\nt = [\"x #{{{{ hashtag }}}}\"]\n"
        );
        crate::campaign::parse_str(&src, Path::new("c.toml")).unwrap_or_else(|p| {
            panic!(
                "{:?}",
                p.iter().map(ToString::to_string).collect::<Vec<_>>()
            )
        })
    }

    #[test]
    fn the_source_has_exactly_one_place_for_the_configuration() {
        assert_eq!(SOURCE.matches(MARKER).count(), 1);
    }

    #[test]
    fn days_in_the_visitors_own_zone_stay_calendar_days() {
        let c = campaign("timezone = \"participant\"\ndays = [\"2027-07-04\", \"2027-07-05\"]");
        let cfg = CampaignConfig::new(&c, None, "https://h.example/");
        assert_eq!(cfg.mode, Mode::Local);
        assert_eq!(cfg.days, ["2027-07-04", "2027-07-05"]);
        assert_eq!(cfg.sign_url, "https://h.example/c/c#sign");
    }

    #[test]
    fn days_in_one_zone_become_windows_from_its_midnights() {
        let c = campaign("timezone = \"Europe/Berlin\"\ndays = [\"2027-07-04\"]");
        let cfg = CampaignConfig::new(&c, None, "https://h.example");
        assert_eq!(cfg.mode, Mode::Utc);
        assert_eq!(
            cfg.windows,
            [WindowConfig {
                start: "2027-07-03T22:00:00Z".into(),
                end: "2027-07-04T22:00:00Z".into()
            }]
        );
    }

    #[test]
    fn the_script_is_ascii_whatever_the_campaign_says() {
        let mut c = CampaignConfig::new(
            &campaign("timezone = \"participant\"\ndays = [\"2027-07-04\"]"),
            None,
            "https://h.example",
        );
        c.title = "Grève ✊🏽".into();
        let js = Config::new(vec![c], DateTime::UNIX_EPOCH, false).script();
        assert!(js.is_ascii());
        assert!(js.contains(r"Gr\u00e8ve \u270a\ud83c\udffd"), "{js}");
        assert!(js.contains(r"Erkl\u00e4rung unterschreiben"));
    }

    #[test]
    fn inlined_text_cannot_close_a_script_element() {
        let mut c = CampaignConfig::new(
            &campaign("timezone = \"participant\"\ndays = [\"2027-07-04\"]"),
            None,
            "https://h.example",
        );
        c.title = "</script><script>alert(1)</script>".into();
        let js = Config::new(vec![c], DateTime::UNIX_EPOCH, false).script();
        assert!(!js.contains("</script>"), "{js}");
        assert!(js.contains(r"\u003c/script\u003e"));
    }
}
