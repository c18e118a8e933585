//! Strike cards: the notice as a picture (title, hashtag, the strike day, this host's
//! address and a short "why"), for stories and for networks where an image travels
//! further than a line of text.
//!
//! A card is an SVG written here in code and rasterised by `resvg`, so no browser is
//! needed. SVG has no line breaking, so [`layout`] measures the text with the bundled
//! font's own advances, wraps it and shrinks it until it fits. The fonts (DejaVu Sans,
//! `fonts/LICENSE`) are compiled into the binary and are the only ones `resvg` is given:
//! a server without system fonts draws the same card, and a card never depends on what
//! happens to be installed. Glyphs the font lacks (CJK, most emoji) are drawn as boxes.
//!
//! Everything here is pure (a [`Notice`] in, PNG bytes out); [`Cards`] keeps rendered
//! cards in memory and renders off the async threads.

mod cache;
mod layout;

use std::sync::{Arc, OnceLock};

use chrono::NaiveDate;
use resvg::{tiny_skia, usvg};
use sha2::{Digest, Sha256};

pub use cache::{Cards, Rendered};

/// The fonts every card is drawn with (see `fonts/LICENSE`).
const FONT_REGULAR: &[u8] = include_bytes!("fonts/DejaVuSans.ttf");
const FONT_BOLD: &[u8] = include_bytes!("fonts/DejaVuSans-Bold.ttf");
const FAMILY: &str = "DejaVu Sans";

/// The longest alt text a card is given: Mastodon's default `description_limit`
/// (Bluesky sets none), so the same text is accepted on both.
pub const MAX_ALT: usize = 1500;

/// Bumped when the drawing changes, so cached cards and ETags change with it.
const DESIGN: &str = "card-v1";

/// The two shapes a card comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// 1080×1080, for posts.
    Square,
    /// 1080×1920 (9:16), for Instagram and TikTok stories.
    Story,
}

impl Size {
    pub fn width(self) -> u32 {
        1080
    }

    pub fn height(self) -> u32 {
        match self {
            Size::Square => 1080,
            Size::Story => 1920,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Size::Square => "square",
            Size::Story => "story",
        }
    }

    pub fn parse(s: &str) -> Option<Size> {
        match s {
            "square" => Some(Size::Square),
            "story" => Some(Size::Story),
            _ => None,
        }
    }
}

/// What a card says. Every string may come from a campaign file or a host's settings and
/// is escaped before it reaches the SVG.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notice {
    pub title: String,
    /// Without the leading '#'.
    pub hashtag: String,
    /// The strike day, as a date in the participant's own zone.
    pub day: NaiveDate,
    /// This host's address as people type it (`picket.example.org`).
    pub host: String,
    pub why: Option<String>,
}

impl Notice {
    /// The card described in words: the alt text of a card shown on its own (the public
    /// address), with everything drawn on it.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "Strike card: {}. #{}. {}.",
            self.title.trim(),
            self.hashtag,
            day_label(self.day)
        );
        if let Some(why) = self.why.as_deref().filter(|w| !w.trim().is_empty()) {
            out.push(' ');
            out.push_str(why.trim());
        }
        out.push_str(&format!(" More at {}.", self.host));
        clip(&out, MAX_ALT)
    }

    /// A stable name for this card in this size: the cache key, and the ETag.
    pub fn key(&self, size: Size) -> [u8; 32] {
        let mut h = Sha256::new();
        // Length-prefixed, so no two different notices give the same bytes.
        for part in [
            DESIGN,
            size.as_str(),
            &self.title,
            &self.hashtag,
            &self.day.to_string(),
            &self.host,
            self.why.as_deref().unwrap_or("\u{0}none"),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }
}

/// A day as a card and its alt text write it: "Sunday 4 July 2027".
pub fn day_label(day: NaiveDate) -> String {
    day.format("%A %-d %B %Y").to_string()
}

/// The "why" a card shows: the campaign's own `card_why`, or else the first sentence of
/// its description, or nothing.
pub fn why_of(card_why: Option<&str>, description: Option<&str>) -> Option<String> {
    if let Some(w) = card_why.map(str::trim).filter(|w| !w.is_empty()) {
        return Some(w.to_string());
    }
    let d = description?.trim();
    let end = d
        .char_indices()
        .find(|&(i, c)| {
            matches!(c, '.' | '!' | '?' | '。' | '！' | '？')
                && d[i + c.len_utf8()..]
                    .chars()
                    .next()
                    .is_none_or(char::is_whitespace)
        })
        .map_or(d.len(), |(i, c)| i + c.len_utf8());
    let first = d[..end].trim();
    (!first.is_empty()).then(|| first.to_string())
}

/// The alt text of a card attached to a post: the post's own text (the full notice), cut
/// to what every network accepts.
pub fn alt_for_post(text: &str) -> String {
    clip(text.trim(), MAX_ALT)
}

/// The host part of a public URL (`https://picket.example.org/x` → `picket.example.org`),
/// with its port when it has one; the URL itself when it has no host.
pub fn host_of(public_url: &str) -> String {
    match url::Url::parse(public_url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => public_url.to_string(),
        },
        Err(_) => public_url.to_string(),
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Why a card could not be drawn. None of these should happen with the SVG this module
/// writes; they are errors rather than panics because a card is never worth a crash.
#[derive(Debug, thiserror::Error)]
pub enum CardError {
    #[error("the card's SVG did not parse: {0}")]
    Svg(String),
    #[error("the card's canvas could not be made")]
    Canvas,
    #[error("the card could not be encoded as PNG: {0}")]
    Encode(String),
    #[error("drawing the card stopped: {0}")]
    Aborted(String),
}

/// The card as SVG text (what [`render`] rasterises).
pub fn svg(notice: &Notice, size: Size) -> String {
    layout::svg(notice, size)
}

/// The card as PNG bytes. CPU-bound (tens of milliseconds): call it off the async
/// threads ([`Cards`] does). The same notice and size always give the same bytes, which
/// keeps a Bluesky retry's record (and its blob's CID) identical.
pub fn render(notice: &Notice, size: Size) -> Result<Vec<u8>, CardError> {
    let text = svg(notice, size);
    let options = usvg::Options {
        fontdb: fonts(),
        font_family: FAMILY.into(),
        ..Default::default()
    };
    let tree = usvg::Tree::from_str(&text, &options).map_err(|e| CardError::Svg(e.to_string()))?;
    let mut pixmap =
        tiny_skia::Pixmap::new(size.width(), size.height()).ok_or(CardError::Canvas)?;
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap
        .encode_png()
        .map_err(|e| CardError::Encode(e.to_string()))
}

/// The bundled fonts, loaded once. No system font is ever loaded.
fn fonts() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(FONT_REGULAR.to_vec());
        db.load_font_data(FONT_BOLD.to_vec());
        db.set_sans_serif_family(FAMILY);
        Arc::new(db)
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn notice() -> Notice {
        Notice {
            title: "Social Media Strike".into(),
            hashtag: "SocialMediaStrike".into(),
            day: NaiveDate::from_ymd_opt(2027, 7, 4).unwrap(),
            host: "picket.example.org".into(),
            why: Some("The platforms profit from our attention.".into()),
        }
    }

    fn decode(png_bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().expect("a PNG header");
        let mut buf = vec![0; reader.output_buffer_size().expect("a buffer size")];
        let info = reader.next_frame(&mut buf).expect("a PNG frame");
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    /// How many pixels differ from the background: text was drawn, not only the frame.
    fn inked(pixels: &[u8]) -> usize {
        let bg = &pixels[4 * 1080 * 540..4 * 1080 * 540 + 4];
        pixels.chunks(4).filter(|p| p != &bg).count()
    }

    #[test]
    fn a_card_decodes_as_a_png_of_each_size_with_text_on_it() {
        for (size, h) in [(Size::Square, 1080), (Size::Story, 1920)] {
            let png_bytes = render(&notice(), size).unwrap();
            let (w, got_h, pixels) = decode(&png_bytes);
            assert_eq!((w, got_h), (1080, h), "{size:?}");
            assert!(inked(&pixels) > 20_000, "{size:?}: almost nothing drawn");
        }
    }

    #[test]
    fn the_same_notice_gives_the_same_bytes_and_another_day_other_bytes() {
        let a = render(&notice(), Size::Square).unwrap();
        assert_eq!(a, render(&notice(), Size::Square).unwrap());
        let mut other = notice();
        other.day = other.day.succ_opt().unwrap();
        assert_ne!(a, render(&other, Size::Square).unwrap());
        assert_ne!(notice().key(Size::Square), other.key(Size::Square));
        assert_ne!(notice().key(Size::Square), notice().key(Size::Story));
    }

    #[test]
    fn long_titles_and_hashtags_and_any_script_still_render_inside_the_card() {
        let long_word = "Streik".repeat(60);
        let cases = [
            Notice {
                title: "A very long campaign title that goes on ".repeat(12),
                hashtag: long_word.clone(),
                why: Some("because ".repeat(200)),
                ..notice()
            },
            Notice {
                title: "إضراب وسائل التواصل الاجتماعي".into(),
                hashtag: "إضراب".into(),
                why: Some("שביתה ברשתות החברתיות".into()),
                ..notice()
            },
            Notice {
                title: "社交媒体罢工".repeat(30),
                hashtag: "罢工".repeat(40),
                why: Some("🪧✊🏽 \u{200d}\u{0301}\u{202e}".into()),
                ..notice()
            },
            Notice {
                title: String::new(),
                hashtag: String::new(),
                why: None,
                host: String::new(),
                ..notice()
            },
        ];
        for (i, n) in cases.iter().enumerate() {
            for size in [Size::Square, Size::Story] {
                let text = svg(n, size);
                for line in layout::lines_of(&text) {
                    assert!(
                        line.chars().count() <= 120,
                        "case {i}: a line was not wrapped: {line}"
                    );
                }
                let png_bytes = render(n, size).unwrap_or_else(|e| panic!("case {i}: {e}"));
                let (w, h, _) = decode(&png_bytes);
                assert_eq!((w, h), (size.width(), size.height()), "case {i}");
            }
        }
    }

    #[test]
    fn campaign_text_cannot_inject_markup_into_the_svg() {
        let n = Notice {
            title: r#"Tom & Jerry <script>alert(1)</script> "quoted" 'single'"#.into(),
            hashtag: r#"x"/><image href="https://evil.example/x.png"/><text>"#.into(),
            why: Some("nul\u{0}bell\u{7} and \u{fffe} <b>".into()),
            host: "a<b>&c".into(),
            ..notice()
        };
        let text = svg(&n, Size::Square);
        assert!(!text.contains("<script"), "{text}");
        assert!(!text.contains("<image"), "{text}");
        assert!(!text.contains("<b>"), "{text}");
        assert!(text.contains("Tom &amp; Jerry"), "{text}");
        assert!(text.contains("&lt;script&gt;alert(1)"), "{text}");
        assert!(text.contains("&quot;quoted&quot;"), "{text}");
        assert!(!text.contains('\u{0}') && !text.contains('\u{7}'));
        // Still one well-formed document that draws.
        render(&n, Size::Square).unwrap();
    }

    #[test]
    fn the_description_carries_everything_the_card_shows() {
        let d = notice().describe();
        for part in [
            "Social Media Strike",
            "#SocialMediaStrike",
            "Sunday 4 July 2027",
            "The platforms profit from our attention.",
            "picket.example.org",
        ] {
            assert!(d.contains(part), "{part} missing from {d}");
        }
        let long = Notice {
            why: Some("x".repeat(5000)),
            ..notice()
        };
        assert_eq!(long.describe().chars().count(), MAX_ALT);
        let notice_text =
            "I'm not posting today. #SocialMediaStrike https://picket.example.org/i/x";
        assert_eq!(alt_for_post(notice_text), notice_text);
        assert_eq!(alt_for_post(&"y".repeat(3000)).chars().count(), MAX_ALT);
    }

    #[test]
    fn the_why_is_the_campaigns_own_or_the_first_sentence_of_its_description() {
        assert_eq!(
            why_of(Some("  Ours.  "), Some("Other. More.")).as_deref(),
            Some("Ours.")
        );
        assert_eq!(
            why_of(None, Some("One day off. Then more text.")).as_deref(),
            Some("One day off.")
        );
        assert_eq!(
            why_of(Some(" "), Some("Version 2.0 is out! Yes")).as_deref(),
            Some("Version 2.0 is out!")
        );
        assert_eq!(
            why_of(None, Some("No full stop")).as_deref(),
            Some("No full stop")
        );
        assert_eq!(why_of(None, Some("   ")), None);
        assert_eq!(why_of(None, None), None);
    }

    #[test]
    fn days_and_hosts_are_written_as_people_read_them() {
        assert_eq!(
            day_label(NaiveDate::from_ymd_opt(2027, 7, 4).unwrap()),
            "Sunday 4 July 2027"
        );
        assert_eq!(host_of("https://picket.example.org/"), "picket.example.org");
        assert_eq!(host_of("http://127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(host_of("not a url"), "not a url");
        assert_eq!(Size::parse("story"), Some(Size::Story));
        assert_eq!(Size::parse("Story"), None);
    }
}
