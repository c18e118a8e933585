//! An account's handle: the name it goes by on its network (`alex@mastodon.social`,
//! `alex.bsky.social`, an `npub1…`, a sandbox name). Each network's enrolment decides
//! what its handles look like; this type holds what every handle must be so it can be
//! shown on a page, in a post and in a log line.

use super::text::text_newtype;

/// An account's handle: 1 to [`Handle::MAX_CHARS`] characters, no control characters and
/// no white space at either end.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle(String);

/// The text cannot be a handle; the message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidHandle(String);

impl Handle {
    /// Longer than any network's handles (a Mastodon `user@host` is at most 30 + 253).
    pub const MAX_CHARS: usize = 300;

    pub fn parse(s: &str) -> Result<Handle, InvalidHandle> {
        if s.trim().is_empty() {
            return Err(InvalidHandle("the handle is empty".into()));
        }
        if s.trim() != s {
            return Err(InvalidHandle(format!(
                "the handle \"{}\" starts or ends with a space",
                s.trim()
            )));
        }
        if s.chars().any(char::is_control) {
            return Err(InvalidHandle(
                "the handle contains a control character".into(),
            ));
        }
        if s.chars().count() > Self::MAX_CHARS {
            return Err(InvalidHandle(format!(
                "the handle is longer than {} characters",
                Self::MAX_CHARS
            )));
        }
        Ok(Handle(s.to_string()))
    }
}

text_newtype!(Handle, InvalidHandle);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_network_s_handles_are_handles() {
        for h in [
            "alex@mastodon.social",
            "alex.bsky.social",
            "npub1sg6plzptd64u62a878hep2kev88swjh3tw00gjsfl8f237lmu63q0uf63m",
            "test account",
        ] {
            assert_eq!(Handle::parse(h).unwrap(), h);
        }
    }

    #[test]
    fn an_empty_padded_or_control_handle_is_refused() {
        let msg = |s: &str| Handle::parse(s).unwrap_err().to_string();
        assert_eq!(msg("  "), "the handle is empty");
        assert_eq!(
            msg(" alex"),
            "the handle \"alex\" starts or ends with a space"
        );
        assert_eq!(msg("al\u{0}ex"), "the handle contains a control character");
        assert_eq!(
            msg(&"a".repeat(301)),
            "the handle is longer than 300 characters"
        );
        assert!(Handle::parse(&"a".repeat(300)).is_ok());
    }
}
