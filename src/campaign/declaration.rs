//! Declaration texts as something to compare: the normalised form and its content hash,
//! and the "Proposed changes" a copy makes to the text it came from.
//!
//! A declaration travels between hosts (a blogger serves their own copy), so two copies
//! must hash the same when only invisible things differ: a Windows editor's CRLF line ends,
//! spaces left at the end of a line, a byte-order mark. The rule ([`normalize`]) is
//! documented in `campaigns/README.md`; anyone can reproduce the hash with `sha256sum` on
//! the text `GET /c/{id}/declaration.md` serves. This module reads no files and renders no
//! HTML: pages show [`Changes`] through an escaping template.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The text as hashed and served: UTF-8 without a byte-order mark, LF line ends, no
/// whitespace at the end of any line, no blank lines at the end, and one final LF (an
/// empty or blank text becomes empty).
pub fn normalize(text: &str) -> String {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let unified = text.replace("\r\n", "\n").replace('\r', "\n");
    let mut out = String::with_capacity(unified.len() + 1);
    for line in unified.split('\n') {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let kept = out.trim_end_matches('\n').len();
    out.truncate(kept);
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// SHA-256 of the [`normalize`]d text, 64 lowercase hex digits.
pub fn content_hash(text: &str) -> String {
    hex::encode(Sha256::digest(normalize(text).as_bytes()))
}

/// Is `s` written like a content hash (64 hex digits, either case)?
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// What a copy changes in its original, word by word, in groups a reader can take in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub hunks: Vec<Hunk>,
    /// Words the copy adds, over all hunks.
    pub inserted: usize,
    /// Words the copy removes, over all hunks.
    pub deleted: usize,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.hunks.is_empty()
    }
}

/// One place where the copy differs: a few words of context around the changed words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hunk {
    /// 1-based line of the copy where this change is (for a deletion: where it was).
    pub line: usize,
    /// There is more text before the first context part.
    pub cut_before: bool,
    /// There is more text after the last context part.
    pub cut_after: bool,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    pub kind: PartKind,
    /// Words joined by single spaces: line breaks of the Markdown are not shown.
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PartKind {
    Same,
    Inserted,
    Deleted,
}

/// Words of context shown on each side of a change.
const CONTEXT_WORDS: usize = 6;

/// The changes from `original` to `copy`, compared word by word on the normalised texts:
/// re-wrapping a paragraph or changing only spaces is not a change.
pub fn proposed_changes(original: &str, copy: &str) -> Changes {
    let (old, new) = (normalize(original), normalize(copy));
    let old_words: Vec<&str> = old.split_whitespace().collect();
    let new_words = words_with_lines(&new);
    let new_only: Vec<&str> = new_words.iter().map(|(w, _)| *w).collect();
    let ops = similar::capture_diff_slices(similar::Algorithm::Patience, &old_words, &new_only);

    let mut changes = Changes {
        hunks: Vec::new(),
        inserted: 0,
        deleted: 0,
    };
    let last_line = new_words.last().map_or(1, |(_, l)| *l);
    for group in similar::group_diff_ops(ops, CONTEXT_WORDS) {
        let mut parts: Vec<Part> = Vec::new();
        let mut line = None;
        for op in &group {
            let (tag, old_range, new_range) = op.as_tag_tuple();
            let push = |parts: &mut Vec<Part>, kind, words: &[&str]| {
                if !words.is_empty() {
                    parts.push(Part {
                        kind,
                        text: words.join(" "),
                    });
                }
            };
            match tag {
                similar::DiffTag::Equal => push(&mut parts, PartKind::Same, &new_only[new_range]),
                _ => {
                    line.get_or_insert_with(|| {
                        new_words
                            .get(new_range.start)
                            .map_or(last_line, |(_, l)| *l)
                    });
                    changes.deleted += old_range.len();
                    changes.inserted += new_range.len();
                    push(&mut parts, PartKind::Deleted, &old_words[old_range]);
                    push(&mut parts, PartKind::Inserted, &new_only[new_range]);
                }
            }
        }
        let (first, last) = (group.first(), group.last());
        changes.hunks.push(Hunk {
            line: line.unwrap_or(last_line),
            cut_before: first.is_some_and(|op| op.old_range().start > 0),
            cut_after: last.is_some_and(|op| op.old_range().end < old_words.len()),
            parts,
        });
    }
    changes
}

/// The words of `text`, each with its 1-based line.
fn words_with_lines(text: &str) -> Vec<(&str, usize)> {
    text.lines()
        .enumerate()
        .flat_map(|(i, line)| line.split_whitespace().map(move |w| (w, i + 1)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crlf_and_lone_cr_line_ends_hash_like_lf() {
        let lf = "# Title\n\nWe sign.\n";
        assert_eq!(normalize("# Title\r\n\r\nWe sign.\r\n"), lf);
        assert_eq!(normalize("# Title\r\rWe sign.\r"), lf);
        assert_eq!(content_hash("# Title\r\n\r\nWe sign."), content_hash(lf));
    }

    #[test]
    fn trailing_whitespace_and_blank_lines_at_the_end_do_not_count() {
        assert_eq!(normalize("a  \nb\t\n\n\n  \n"), "a\nb\n");
        assert_eq!(normalize("  indented stays\n"), "  indented stays\n");
        assert_eq!(normalize(""), "");
        assert_eq!(normalize(" \n\n"), "");
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        assert_eq!(normalize("\u{feff}Text"), "Text\n");
    }

    #[test]
    fn unicode_text_is_hashed_as_utf8_and_unicode_spaces_at_line_ends_are_trimmed() {
        // "Déclaration ✊" followed by a no-break space and an ideographic space.
        let text = "Déclaration ✊\u{a0}\u{3000}\nÀ bientôt\n";
        assert_eq!(normalize(text), "Déclaration ✊\nÀ bientôt\n");
        // sha256 of the UTF-8 bytes of "Déclaration ✊\nÀ bientôt\n", by `sha256sum`.
        assert_eq!(
            content_hash(text),
            "a1bfcfd5da7dc7cc70495ac04ccaecea43a1493f78057ae732e9f685daa0ec26"
        );
    }

    #[test]
    fn the_hash_is_the_sha256_of_the_normalised_bytes() {
        // printf 'abc\n' | sha256sum
        assert_eq!(
            content_hash("abc   \r\n"),
            "edeaaff3f1774ad2888673770c6d64097e391bc362d7d6fb34982ddf0efd18cb"
        );
        assert!(is_hash(&content_hash("x")));
        assert!(!is_hash("abc"));
    }

    #[test]
    fn the_same_text_has_no_changes_even_rewrapped_or_with_crlf() {
        let original = "We hold these principles\nto be plain.\n";
        let copy = "We hold these\r\nprinciples to be plain.   \r\n";
        let changes = proposed_changes(original, copy);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!((changes.inserted, changes.deleted), (0, 0));
    }

    #[test]
    fn a_replaced_word_shows_as_a_deletion_and_an_insertion_with_context() {
        let original = "one two three four five six seven eight nine ten eleven twelve thirteen\n";
        let copy = "one two three four five six SEVEN eight nine ten eleven twelve thirteen\n";
        let changes = proposed_changes(original, copy);
        assert_eq!(changes.hunks.len(), 1);
        let hunk = &changes.hunks[0];
        assert_eq!(
            hunk.parts,
            vec![
                Part {
                    kind: PartKind::Same,
                    text: "one two three four five six".into()
                },
                Part {
                    kind: PartKind::Deleted,
                    text: "seven".into()
                },
                Part {
                    kind: PartKind::Inserted,
                    text: "SEVEN".into()
                },
                Part {
                    kind: PartKind::Same,
                    text: "eight nine ten eleven twelve thirteen".into()
                },
            ]
        );
        assert!(!hunk.cut_before);
        assert!(!hunk.cut_after);
        assert_eq!((changes.inserted, changes.deleted), (1, 1));
    }

    #[test]
    fn changes_far_apart_are_separate_hunks_with_their_lines() {
        let filler = (1..=30).map(|i| format!("w{i}")).collect::<Vec<_>>();
        let original = format!("{}\n{}\n", filler[..15].join(" "), filler[15..].join(" "));
        let copy = format!(
            "{} added\n{}\n",
            filler[..15].join(" "),
            filler[15..29].join(" ")
        );
        let changes = proposed_changes(&original, &copy);
        assert_eq!(changes.hunks.len(), 2, "{changes:?}");
        assert_eq!(changes.hunks[0].line, 1);
        assert!(changes.hunks[0].cut_before);
        assert!(changes.hunks[0].parts.contains(&Part {
            kind: PartKind::Inserted,
            text: "added".into()
        }));
        assert_eq!(changes.hunks[1].line, 2);
        assert!(changes.hunks[1].parts.contains(&Part {
            kind: PartKind::Deleted,
            text: "w30".into()
        }));
        assert!(!changes.hunks[1].cut_after);
        assert_eq!((changes.inserted, changes.deleted), (1, 1));
    }

    #[test]
    fn unicode_words_are_compared_whole() {
        let changes = proposed_changes("Nous signons ✊ ici\n", "Nous signons ✊ là\n");
        let kinds: Vec<(PartKind, &str)> = changes.hunks[0]
            .parts
            .iter()
            .map(|p| (p.kind, p.text.as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (PartKind::Same, "Nous signons ✊"),
                (PartKind::Deleted, "ici"),
                (PartKind::Inserted, "là"),
            ]
        );
    }
}
