//! A campaign's hashtag, as every network links it: letters, digits and `_`, written
//! without its `#`.

use super::text::text_newtype;

/// A hashtag without the leading `#` (`SocialMediaStrike`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hashtag(String);

/// The text is not a hashtag; the message says how to write it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidHashtag(String);

impl Hashtag {
    pub fn parse(s: &str) -> Result<Hashtag, InvalidHashtag> {
        let invalid = |m: String| Err(InvalidHashtag(m));
        if let Some(rest) = s.strip_prefix('#') {
            return invalid(format!(
                "write the hashtag without '#': hashtag = \"{rest}\""
            ));
        }
        if s.is_empty() {
            return invalid(
                "hashtag is empty: write it without '#', e.g. \"SocialMediaStrike\"".into(),
            );
        }
        if s.chars().any(char::is_whitespace) {
            let joined: String = s.split_whitespace().collect();
            return invalid(format!(
                "hashtag \"{s}\" contains spaces, which end a hashtag on every network: \
                 use \"{joined}\""
            ));
        }
        if let Some(c) = s.chars().find(|c| !(c.is_alphanumeric() || *c == '_')) {
            return invalid(format!(
                "hashtag \"{s}\" contains '{c}': networks only link letters, digits and '_'"
            ));
        }
        Ok(Hashtag(s.to_string()))
    }
}

text_newtype!(Hashtag, InvalidHashtag);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_digits_and_underscores_make_a_hashtag() {
        assert_eq!(Hashtag::parse("Strike_2027").unwrap(), "Strike_2027");
        assert_eq!(Hashtag::parse("Streik").unwrap().to_string(), "Streik");
        assert!(
            Hashtag::parse("Grève").is_ok(),
            "letters of any script link"
        );
    }

    #[test]
    fn a_hashtag_is_refused_with_what_to_write_instead() {
        let msg = |s: &str| Hashtag::parse(s).unwrap_err().to_string();
        assert_eq!(
            msg("#Strike"),
            "write the hashtag without '#': hashtag = \"Strike\""
        );
        assert!(msg("").starts_with("hashtag is empty"));
        assert!(msg("Social Media Strike").ends_with("use \"SocialMediaStrike\""));
        assert_eq!(
            msg("no-more"),
            "hashtag \"no-more\" contains '-': networks only link letters, digits and '_'"
        );
    }
}
