//! A campaign's id: the slug in its file, its URLs and the command line, and the key its
//! pledges, posts and signatures are stored under.

use super::text::text_newtype;

/// A campaign id: lowercase letters and digits in parts joined by single hyphens, at most
/// 64 characters (`social-media-strike`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CampaignId(String);

/// The text is not a campaign id; the message says how to write one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "id \"{given}\" is not a slug: use lowercase letters, digits and single hyphens \
     (at most 64 characters){hint}"
)]
pub struct InvalidCampaignId {
    given: String,
    hint: String,
}

impl CampaignId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<CampaignId, InvalidCampaignId> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.split('-').all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
        if ok {
            return Ok(CampaignId(s.to_string()));
        }
        let suggestion = slugify(s);
        let hint = if suggestion.is_empty() || suggestion == s {
            String::new()
        } else {
            format!(", e.g. \"{suggestion}\"")
        };
        let given: String = s.chars().take(80).collect();
        Err(InvalidCampaignId { given, hint })
    }
}

text_newtype!(CampaignId, InvalidCampaignId);

/// The nearest slug to `s`: what a person probably meant.
fn slugify(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-')
        .chars()
        .take(CampaignId::MAX_LEN)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slug_is_a_campaign_id() {
        let id = CampaignId::parse("social-media-strike-2027").unwrap();
        assert_eq!(id, "social-media-strike-2027");
        assert_eq!(id.to_string(), "social-media-strike-2027");
    }

    #[test]
    fn what_is_not_a_slug_is_refused_with_a_suggestion() {
        let err = CampaignId::parse("Social Media Strike").unwrap_err();
        assert_eq!(
            err.to_string(),
            "id \"Social Media Strike\" is not a slug: use lowercase letters, digits and \
             single hyphens (at most 64 characters), e.g. \"social-media-strike\""
        );
        for bad in ["", "a--b", "-a", "a-", "a_b", "ä", &"a".repeat(65)] {
            assert!(CampaignId::parse(bad).is_err(), "{bad:?} was taken");
        }
        assert!(CampaignId::parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn a_campaign_id_is_parsed_again_when_deserialized() {
        let id: CampaignId = serde_json::from_str("\"strike\"").unwrap();
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"strike\"");
        let err = serde_json::from_str::<CampaignId>("\"Not A Slug\"").unwrap_err();
        assert!(err.to_string().contains("is not a slug"), "{err}");
    }
}
