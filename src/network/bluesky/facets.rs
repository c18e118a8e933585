//! Rich-text facets for a Bluesky post: links, hashtags and mentions found in the FINAL
//! text, with UTF-8 byte offsets (Rust `str` indices are UTF-8 byte offsets already).
//!
//! This module only finds the spans; it does not resolve mentions to DIDs (the adapter
//! does, over the network) and it does not build the JSON record.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

/// The longest tag Bluesky indexes, in graphemes (lexicon `app.bsky.richtext.facet#tag`).
const MAX_TAG_GRAPHEMES: usize = 64;
/// ... and in UTF-8 bytes.
const MAX_TAG_BYTES: usize = 640;

/// One span of the text and what it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    Link {
        uri: String,
    },
    /// The tag without its `#`.
    Tag {
        tag: String,
    },
    /// A handle without its `@`, not yet resolved to a DID.
    Mention {
        handle: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub bytes: Range<usize>,
    pub feature: Feature,
}

/// Every link, tag and mention in `text`, ordered by position, never overlapping.
pub fn detect(text: &str) -> Vec<Span> {
    let mut spans: Vec<Span> = crate::compose::length::url_ranges(text)
        .into_iter()
        .map(|r| Span {
            feature: Feature::Link {
                uri: text[r.clone()].to_string(),
            },
            bytes: r,
        })
        .collect();
    // Links first, then tags, then mentions; a span touching bytes already taken is
    // dropped whole (a tag runs to the next blank and can contain a link or a mention).
    for span in tags(text).into_iter().chain(mentions(text)) {
        let overlaps = |s: &Span| s.bytes.start < span.bytes.end && span.bytes.start < s.bytes.end;
        if !spans.iter().any(overlaps) {
            spans.push(span);
        }
    }
    spans.sort_by_key(|s| s.bytes.start);
    spans
}

/// Characters that end a tag besides whitespace: invisible joiners and soft hyphens,
/// as the official parser (`@atproto/api` `TAG_REGEX`) treats them.
fn ends_token(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{2060}'
                | '\u{200A}'
                | '\u{200B}'
                | '\u{200C}'
                | '\u{200D}'
                | '\u{20E2}'
        )
}

/// Punctuation for trimming the end of a tag or handle: ASCII and the common CJK and
/// typographic marks (std has no Unicode `P` category test).
fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '。' | '、'
                | '，'
                | '！'
                | '？'
                | '：'
                | '；'
                | '…'
                | '«'
                | '»'
                | '“'
                | '”'
                | '‘'
                | '’'
                | '「'
                | '」'
                | '『'
                | '』'
                | '（'
                | '）'
                | '¡'
                | '¿'
                | '،'
                | '؟'
                | '۔'
        )
}

/// Opening brackets and quotes: unlike the official client, picket also takes
/// `(#Strike)` as a tag, because campaign templates write it and mean it.
fn opens(c: char) -> bool {
    matches!(
        c,
        '(' | '[' | '{' | '"' | '\'' | '“' | '‘' | '«' | '「' | '『' | '（'
    )
}

/// `#tag` at the start of the text, after whitespace or an opening bracket; trailing punctuation is not part
/// of it, a tag of digits only is no tag, and over-long tags are skipped.
fn tags(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    for (i, c) in text.char_indices() {
        if c != '#' && c != '＃' {
            continue;
        }
        let before = text[..i].chars().next_back();
        if before.is_some_and(|b| !(b.is_whitespace() || opens(b))) {
            continue;
        }
        let body_start = i + c.len_utf8();
        let rest = &text[body_start..];
        // U+FE0F right after '#' makes it the keycap emoji #️⃣, not a tag.
        if rest.starts_with('\u{FE0F}') {
            continue;
        }
        let len = rest.find(ends_token).unwrap_or(rest.len());
        let mut tag = &rest[..len];
        while let Some(last) = tag.chars().next_back() {
            if is_punct(last) {
                tag = &tag[..tag.len() - last.len_utf8()];
            } else {
                break;
            }
        }
        if tag.is_empty()
            || tag.chars().all(|c| c.is_ascii_digit() || is_punct(c))
            || tag.graphemes(true).count() > MAX_TAG_GRAPHEMES
            || tag.len() > MAX_TAG_BYTES
        {
            continue;
        }
        out.push(Span {
            bytes: i..body_start + tag.len(),
            feature: Feature::Tag {
                tag: tag.to_string(),
            },
        });
    }
    out
}

/// `@handle.domain` at the start of the text or after whitespace or `(`.
fn mentions(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    for (i, c) in text.char_indices() {
        if c != '@' {
            continue;
        }
        let before = text[..i].chars().next_back();
        if before.is_some_and(|b| !(b.is_whitespace() || b == '(')) {
            continue;
        }
        let rest = &text[i + 1..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
            .unwrap_or(rest.len());
        let handle = rest[..len].trim_end_matches(['.', '-']);
        if is_handle(handle) {
            out.push(Span {
                bytes: i..i + 1 + handle.len(),
                feature: Feature::Mention {
                    handle: handle.to_ascii_lowercase(),
                },
            });
        }
    }
    out
}

/// Handle syntax (atproto.com/specs/handle): two or more labels of letters, digits and
/// inner hyphens, at most 253 characters, the last label not starting with a digit.
pub fn is_handle(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    s.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .and_then(|l| l.chars().next())
            .is_some_and(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The substring a span covers, so assertions read as text.
    fn covered<'a>(text: &'a str, spans: &[Span]) -> Vec<&'a str> {
        spans.iter().map(|s| &text[s.bytes.clone()]).collect()
    }

    #[test]
    fn offsets_are_utf8_bytes_after_emoji_and_zwj_sequences() {
        let text = "👨‍👩‍👧‍👦 family 🏳️‍🌈 #Strike https://example.org/i/abc";
        let spans = detect(text);
        assert_eq!(
            covered(text, &spans),
            ["#Strike", "https://example.org/i/abc"]
        );
        let tag = &spans[0];
        assert_eq!(tag.bytes.start, text.find("#Strike").unwrap());
        // 25 bytes of family emoji + " family " + 14 bytes of rainbow flag + space.
        assert_eq!(tag.bytes.start, 25 + 8 + 14 + 1);
    }

    #[test]
    fn combining_accents_cjk_and_rtl_text_shift_offsets_by_their_bytes() {
        let text = "Cafe\u{301} 罢工 إضراب #عمال #罢工。 https://ex.org/x";
        let spans = detect(text);
        assert_eq!(
            covered(text, &spans),
            ["#عمال", "#罢工", "https://ex.org/x"]
        );
        assert_eq!(
            spans[1].feature,
            Feature::Tag {
                tag: "罢工".into()
            }
        );
        for s in &spans {
            assert!(text.is_char_boundary(s.bytes.start) && text.is_char_boundary(s.bytes.end));
        }
    }

    #[test]
    fn urls_keep_balanced_parentheses_and_drop_trailing_punctuation() {
        let text = "See https://en.wikipedia.org/wiki/Strike_(action). Or (https://ex.org/a?b=c)!";
        let spans = detect(text);
        assert_eq!(
            covered(text, &spans),
            [
                "https://en.wikipedia.org/wiki/Strike_(action)",
                "https://ex.org/a?b=c"
            ]
        );
    }

    #[test]
    fn several_tags_lose_trailing_punctuation_and_digit_only_tags_are_ignored() {
        let text = "#One, #two! #3 #four… #five.#six #️⃣ end#not";
        let tags: Vec<String> = detect(text)
            .into_iter()
            .filter_map(|s| match s.feature {
                Feature::Tag { tag } => Some(tag),
                _ => None,
            })
            .collect();
        assert_eq!(tags, ["One", "two", "four", "five.#six"]);
    }

    #[test]
    fn a_tag_in_parentheses_or_quotes_is_a_tag() {
        let text = "Still striking (#TestStrike), «#Grève» «#罢工」";
        let spans = detect(text);
        assert_eq!(covered(text, &spans), ["#TestStrike", "#Grève", "#罢工"]);
    }

    #[test]
    fn a_tag_longer_than_64_graphemes_is_not_a_tag() {
        let long = format!("#{}", "a".repeat(65));
        let just = format!("#{}", "é".repeat(64));
        assert!(detect(&long).is_empty());
        assert_eq!(detect(&just).len(), 1);
    }

    #[test]
    fn spans_never_overlap_even_when_a_tag_swallows_a_link_or_a_mention() {
        // Found by the `facets` fuzz target: a tag runs to the next blank, so it could
        // contain a link or a mention that was also reported, and Bluesky would get two
        // facets over the same bytes.
        for text in [
            "#x,https://ex.org/a",
            "#(@alice.test",
            "#a(@bob.example) next",
        ] {
            let spans = detect(text);
            for pair in spans.windows(2) {
                assert!(
                    pair[0].bytes.end <= pair[1].bytes.start,
                    "{text:?}: {:?} overlaps {:?}",
                    pair[0],
                    pair[1]
                );
            }
        }
        assert_eq!(
            covered("#x,https://ex.org/a", &detect("#x,https://ex.org/a")),
            ["https://ex.org/a"]
        );
    }

    #[test]
    fn a_url_fragment_is_part_of_the_link_not_a_tag() {
        let text = "https://ex.org/page#section";
        let spans = detect(text);
        assert_eq!(spans.len(), 1);
        assert!(matches!(spans[0].feature, Feature::Link { .. }));
    }

    #[test]
    fn mentions_need_a_full_handle_and_lose_a_trailing_dot() {
        let text = "Thanks @alice.test. and (@bob.example.com) but not me@mail.org or @nodot";
        let spans = detect(text);
        assert_eq!(covered(text, &spans), ["@alice.test", "@bob.example.com"]);
    }
}
