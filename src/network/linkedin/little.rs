//! LinkedIn's "little" text format, which the Posts API's `commentary` is written in
//! (https://learn.microsoft.com/en-us/linkedin/marketing/community-management/shares/little-text-format):
//! the characters `\ | { } @ [ ] ( ) < > # * _ ~` are reserved for its elements (mentions,
//! hashtags, templates) and must be backslash-escaped to be plain text; LinkedIn cuts an
//! unescaped commentary short at the first reserved character it cannot parse, and
//! still answers 201. A hashtag is written as the documented template
//! `{hashtag|\#|word}`, so it stays a hashtag.

/// The characters little reserves.
const RESERVED: &[char] = &[
    '\\', '|', '{', '}', '@', '[', ']', '(', ')', '<', '>', '#', '*', '_', '~',
];

/// `text` as plain little text, each `#word` a hashtag template.
pub fn commentary(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // Only a `#` that begins a word is a tag: not one inside a link or a word.
        let starts_word = i == 0 || chars[i - 1].is_whitespace();
        if c == '#' && starts_word {
            let tag: String = chars[i + 1..]
                .iter()
                .take_while(|c| is_tag_char(**c))
                .collect();
            // A tag has a letter: "#1" stays a number sign.
            if tag.chars().any(char::is_alphabetic) {
                out.push_str("{hashtag|\\#|");
                escape_into(&tag, &mut out);
                out.push('}');
                i += 1 + tag.chars().count();
                continue;
            }
        }
        escape_into(&c.to_string(), &mut out);
        i += 1;
    }
    out
}

fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        if RESERVED.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reserved_character_is_escaped_once() {
        assert_eq!(
            commentary(r"a\b|c{d}e@f[g]h(i)j<k>l*m_n~o"),
            r"a\\b\|c\{d\}e\@f\[g\]h\(i\)j\<k\>l\*m\_n\~o"
        );
        assert_eq!(commentary("plain text, 100% ok!"), "plain text, 100% ok!");
    }

    #[test]
    fn a_hashtag_becomes_the_hashtag_template_and_other_number_signs_are_escaped() {
        assert_eq!(
            commentary("On #SocialMediaStrike today (#1 priority), #2027."),
            r"On {hashtag|\#|SocialMediaStrike} today \(\#1 priority\), \#2027."
        );
        assert_eq!(
            commentary("#strike_day"),
            r"{hashtag|\#|strike\_day}",
            "a reserved character inside the tag is escaped too"
        );
        assert_eq!(commentary("a#b"), r"a\#b", "not a tag inside a word");
        assert_eq!(commentary("#Grève"), r"{hashtag|\#|Grève}");
    }

    #[test]
    fn a_link_keeps_its_characters_escaped_so_nothing_after_it_is_cut() {
        assert_eq!(
            commentary("Join: https://picket.example/i/a_b-c?x=(1)#top then more"),
            r"Join: https://picket.example/i/a\_b-c?x=\(1\)\#top then more"
        );
    }
}
