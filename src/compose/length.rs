//! Length rules per network.

use serde::Serialize;
use unicode_segmentation::UnicodeSegmentation;

use crate::domain::NetworkKind;

/// What a network allows, in its own unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limit {
    /// Maximum in `unit`s; `None` = no limit.
    pub max: Option<usize>,
    /// A second cap in UTF-8 bytes (Bluesky).
    pub max_bytes: Option<usize>,
    pub unit: &'static str,
}

impl Limit {
    /// The default limit of a network. Servers of the Mastodon API and Misskey advertise
    /// their own; adapters read those at enrollment and override this.
    pub fn default_for(kind: NetworkKind) -> Limit {
        match kind {
            NetworkKind::Mastodon => Limit {
                max: Some(500),
                max_bytes: None,
                unit: "characters (URLs count 23)",
            },
            NetworkKind::Bluesky => Limit {
                max: Some(300),
                max_bytes: Some(3000),
                unit: "graphemes",
            },
            NetworkKind::X => Limit {
                max: Some(280),
                max_bytes: None,
                unit: "weighted characters (URLs count 23)",
            },
            NetworkKind::Threads => Limit {
                max: Some(500),
                max_bytes: None,
                unit: "characters (emoji count their bytes)",
            },
            NetworkKind::Misskey => Limit {
                max: Some(3000),
                max_bytes: None,
                unit: "characters",
            },
            // Facebook's documented post limit; the caption limits of Instagram (2,200) and
            // TikTok (4,000); LinkedIn's 3,000 for a post's commentary.
            NetworkKind::Facebook => Limit {
                max: Some(63_206),
                max_bytes: None,
                unit: "characters",
            },
            NetworkKind::Instagram => Limit {
                max: Some(2_200),
                max_bytes: None,
                unit: "characters",
            },
            NetworkKind::TikTok => Limit {
                max: Some(4_000),
                max_bytes: None,
                unit: "characters",
            },
            NetworkKind::LinkedIn => Limit {
                max: Some(3_000),
                max_bytes: None,
                unit: "characters",
            },
            // YouTube publishes no limit for a community post's text.
            NetworkKind::Nostr | NetworkKind::Sandbox | NetworkKind::YouTube => Limit {
                max: None,
                max_bytes: None,
                unit: "characters",
            },
        }
    }
}

/// A text measured for one network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Measure {
    pub network: NetworkKind,
    /// Length in the network's unit.
    pub count: usize,
    pub bytes: usize,
    pub limit: Limit,
}

impl Measure {
    pub fn fits(&self) -> bool {
        self.limit.max.is_none_or(|m| self.count <= m)
            && self.limit.max_bytes.is_none_or(|m| self.bytes <= m)
    }

    /// "312/300 graphemes" or "87/500 characters"; "87 characters (no limit)".
    pub fn describe(&self) -> String {
        let mut s = match self.limit.max {
            Some(max) => format!("{}/{} {}", self.count, max, self.limit.unit),
            None => format!("{} {} (no limit)", self.count, self.limit.unit),
        };
        if let Some(mb) = self.limit.max_bytes {
            s.push_str(&format!(", {}/{} bytes", self.bytes, mb));
        }
        s
    }
}

/// Measure `text` the way `network` counts it, against its default limit.
pub fn measure(network: NetworkKind, text: &str) -> Measure {
    measure_with(network, text, Limit::default_for(network))
}

/// Measure against a limit read from the server itself.
pub fn measure_with(network: NetworkKind, text: &str, limit: Limit) -> Measure {
    let count = match network {
        NetworkKind::Mastodon => mastodon_length(text),
        NetworkKind::X => x_weighted_length(text),
        NetworkKind::Threads => threads_length(text),
        NetworkKind::Bluesky
        | NetworkKind::Misskey
        | NetworkKind::Nostr
        | NetworkKind::Sandbox
        | NetworkKind::Facebook
        | NetworkKind::Instagram
        | NetworkKind::TikTok
        | NetworkKind::YouTube
        | NetworkKind::LinkedIn => graphemes(text),
    };
    Measure {
        network,
        count,
        bytes: text.len(),
        limit,
    }
}

/// Byte ranges of the http(s) URLs in `text`.
pub fn url_ranges(text: &str) -> Vec<std::ops::Range<usize>> {
    let mut finder = linkify::LinkFinder::new();
    finder.kinds(&[linkify::LinkKind::Url]);
    finder.url_must_have_scheme(true);
    finder
        .links(text)
        .filter(|l| {
            let s = l.as_str();
            s.starts_with("http://") || s.starts_with("https://")
        })
        .map(|l| l.start()..l.end())
        .collect()
}

/// Mastodon: grapheme clusters, every URL as 23, `@user@remote.domain` as `@user`
/// (mastodon `app/validators/status_length_validator.rb`).
pub fn mastodon_length(text: &str) -> usize {
    const URL: usize = 23;
    let urls = url_ranges(text);
    let mut count = 0;
    let mut pos = 0;
    for r in &urls {
        count += mention_adjusted_graphemes(&text[pos..r.start]);
        count += URL;
        pos = r.end;
    }
    count + mention_adjusted_graphemes(&text[pos..])
}

/// Graphemes of a URL-free stretch, counting `@user@domain` as `@user`.
fn mention_adjusted_graphemes(s: &str) -> usize {
    let total = graphemes(s);
    let mut saved = 0;
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        // A mention starts with '@' not preceded by a word character.
        let starts = b[i] == b'@' && (i == 0 || !is_word(b[i - 1]));
        if starts {
            let user_end = scan(b, i + 1, |c| is_word(c) || c == b'.' || c == b'-');
            if user_end > i + 1 && user_end < b.len() && b[user_end] == b'@' {
                let dom_end = scan(b, user_end + 1, |c| {
                    c.is_ascii_alphanumeric() || c == b'.' || c == b'-'
                });
                // The domain must hold a dot; a trailing dot ends the sentence, not the domain.
                let mut end = dom_end;
                while end > user_end + 1 && b[end - 1] == b'.' {
                    end -= 1;
                }
                if s[user_end + 1..end].contains('.') {
                    saved += end - user_end; // ASCII: bytes == graphemes
                    i = end;
                    continue;
                }
            }
            i = user_end.max(i + 1);
            continue;
        }
        i += 1;
    }
    total - saved
}

/// Grapheme clusters in `s`. Each post is measured before it is sent, and most are ASCII:
/// there every byte is a cluster of its own except a CR LF pair (UAX #29, GB3), which
/// counts without walking the segmentation tables (2% of a dispatcher's CPU).
fn graphemes(s: &str) -> usize {
    if s.is_ascii() {
        s.len() - s.matches("\r\n").count()
    } else {
        s.graphemes(true).count()
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn scan(b: &[u8], from: usize, ok: impl Fn(u8) -> bool) -> usize {
    let mut j = from;
    while j < b.len() && ok(b[j]) {
        j += 1;
    }
    j
}

/// X: twitter-text v3 (`config/v3.json`): scale 100, default weight 200, weight 100 for
/// U+0000-U+10FF, U+2000-U+200D, U+2010-U+201F, U+2032-U+2037; an emoji sequence weighs
/// 200 whatever its length; every URL weighs 23 x 100. The result is in "characters".
pub fn x_weighted_length(text: &str) -> usize {
    let urls = url_ranges(text);
    let mut weight = 0usize;
    let mut pos = 0;
    for r in &urls {
        weight += x_weight_plain(&text[pos..r.start]);
        weight += 23 * 100;
        pos = r.end;
    }
    weight += x_weight_plain(&text[pos..]);
    weight.div_ceil(100)
}

fn x_weight_plain(s: &str) -> usize {
    s.graphemes(true)
        .map(|g| {
            if is_emoji_grapheme(g) {
                200
            } else {
                g.chars().map(x_char_weight).sum()
            }
        })
        .sum()
}

fn x_char_weight(c: char) -> usize {
    let u = c as u32;
    let light = matches!(u, 0x0000..=0x10FF | 0x2000..=0x200D | 0x2010..=0x201F | 0x2032..=0x2037);
    if light { 100 } else { 200 }
}

/// Threads: characters, except that an emoji counts as its UTF-8 bytes (Threads API docs,
/// "Text posts ... emojis are counted as the number of UTF-8 bytes").
pub fn threads_length(text: &str) -> usize {
    text.graphemes(true)
        .map(|g| if is_emoji_grapheme(g) { g.len() } else { 1 })
        .sum()
}

/// Whether a grapheme cluster is an emoji: it holds a pictographic code point, a
/// regional indicator (flags), or an emoji presentation selector. Keycap sequences
/// (`1️⃣`) carry U+FE0F and are caught by the selector.
pub fn is_emoji_grapheme(g: &str) -> bool {
    g.chars().any(|c| {
        let u = c as u32;
        matches!(u,
            0x1F000..=0x1FAFF   // mahjong .. pictographs ext-A, regional indicators (flags)
            | 0x2600..=0x27BF   // misc symbols, dingbats
            | 0x2B00..=0x2BFF   // arrows, stars (⭐)
            | 0x2300..=0x23FF   // technical (⌚ ⏰)
            | 0xFE0F)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_text_counts_the_graphemes_the_segmentation_counts() {
        let every_byte: String = (0u8..128).map(char::from).collect();
        for s in [
            "",
            "On #strike today. Join: https://example.org/j/abc",
            "line\r\nbreak\n\rback\r\r\n\n",
            "\r\n\r\n",
            every_byte.as_str(),
        ] {
            assert_eq!(graphemes(s), s.graphemes(true).count(), "{s:?}");
        }
    }

    #[test]
    fn mastodon_counts_every_url_as_23() {
        let long = format!("see https://example.org/{}", "a".repeat(200));
        assert_eq!(mastodon_length(&long), 4 + 23);
        // Like Mastodon (twitter-text), only hosts with a real TLD are links.
        assert_eq!(mastodon_length("https://example.org"), 23);
        assert_eq!(mastodon_length("http://x.y"), 10);
    }

    #[test]
    fn mastodon_counts_remote_mentions_by_their_local_part() {
        assert_eq!(
            mastodon_length("hi @alex@social.example."),
            "hi @alex.".len()
        );
        // An e-mail address is not a mention.
        assert_eq!(mastodon_length("a@b.c"), 5);
        assert_eq!(mastodon_length("@alex"), 5);
    }

    #[test]
    fn mastodon_counts_grapheme_clusters_not_code_points() {
        // Family: 7 code points joined by ZWJ, one grapheme.
        assert_eq!(mastodon_length("👨‍👩‍👧‍👦"), 1);
        // e + combining acute accent.
        assert_eq!(mastodon_length("e\u{301}"), 1);
        assert_eq!(mastodon_length("🇫🇷"), 1);
    }

    #[test]
    fn bluesky_checks_graphemes_and_bytes() {
        let m = measure(NetworkKind::Bluesky, &"é".repeat(300));
        assert_eq!(m.count, 300);
        assert!(m.fits());
        // 300 family emoji: 300 graphemes but 7,500 bytes.
        let m = measure(NetworkKind::Bluesky, &"👨‍👩‍👧‍👦".repeat(300));
        assert_eq!(m.count, 300);
        assert!(!m.fits(), "{}", m.describe());
    }

    #[test]
    fn x_weighs_cjk_double_and_urls_as_23() {
        assert_eq!(x_weighted_length("abc"), 3);
        assert_eq!(x_weighted_length("日本語"), 6);
        assert_eq!(x_weighted_length("👨‍👩‍👧‍👦"), 2);
        assert_eq!(
            x_weighted_length("go https://example.org/very/long/path"),
            3 + 23
        );
        // Curly quotes are in the light range.
        assert_eq!(x_weighted_length("\u{201C}hi\u{201D}"), 4);
    }

    #[test]
    fn threads_counts_emoji_as_bytes() {
        assert_eq!(threads_length("ab😀"), 2 + 4);
    }

    #[test]
    fn nostr_has_no_limit() {
        assert!(measure(NetworkKind::Nostr, &"x".repeat(100_000)).fits());
    }
}
