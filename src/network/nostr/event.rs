//! Nostr events and keys: reading a secret key, the kind-1 note for a post (hashtags as
//! `t` tags, links as `r` tags), signing it with the account's own key or its bunker,
//! the `nostr:nevent1…` receipt URI, and counting the events that engage with a note.

use std::collections::HashSet;
use std::time::Duration;

use nostr::prelude::{
    Event, EventBuilder, EventId, FinalizeEvent, FinalizeUnsignedEvent, FromBech32, Keys, Kind,
    Nip19Event, PublicKey, RelayUrl, SecretKey, Tag, Timestamp, ToBech32,
};
use serde_json::{Value, json};

use crate::network::guarded::Http;
use crate::network::{AccountRef, Engagement, PublishError, Reason};

use super::Credentials;
use super::bunker::{Bunker, SignerError};

/// Parse a secret key given as `nsec1…` or 64 hex digits.
pub fn parse_secret_key(s: &str) -> Result<Keys, String> {
    let s = s.trim();
    let sk = if s.starts_with("nsec1") {
        SecretKey::from_bech32(s).map_err(|_| "not a valid nsec key".to_string())?
    } else {
        SecretKey::from_hex(s).map_err(|_| "not a valid nsec or 64-hex-digit key".to_string())?
    };
    Ok(Keys::new(sk))
}

/// A fresh keypair for picket's side of a NIP-46 session.
pub fn generate_client_keys() -> Keys {
    Keys::generate()
}

/// The `npub1…` shown as an account's handle.
pub fn npub(pk: &PublicKey) -> String {
    pk.to_bech32().expect("bech32 of a public key")
}

/// The hashtags of a text, lowercase, each once, in order of appearance (NIP-24 `t` tags).
///
/// A tag starts with `#` at the start of the text or after anything but an ASCII word
/// character or one of `&#/@)` (so `a#b` and `&#39;` are not tags, but `今日は#罷工` is:
/// CJK text has no spaces; Mastodon draws the same line), runs over letters, digits (any
/// script) and `_`, and needs one non-digit (`#1` is a number). A `#` inside a URL (a
/// fragment) is not a tag.
pub fn hashtags(text: &str) -> Vec<String> {
    let urls: Vec<(usize, usize)> = linkify::LinkFinder::new()
        .kinds(&[linkify::LinkKind::Url])
        .links(text)
        .map(|l| (l.start(), l.end()))
        .collect();
    let in_url = |i: usize| urls.iter().any(|&(s, e)| s <= i && i < e);
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let mut seen = HashSet::new();
    let mut tags = Vec::new();
    let mut prev: Option<char> = None;
    for (i, c) in text.char_indices() {
        let starts = c == '#'
            && !in_url(i)
            && prev.is_none_or(|p| !(p.is_ascii_alphanumeric() || "_&#/@)".contains(p)));
        prev = Some(c);
        if !starts {
            continue;
        }
        let rest = &text[i + 1..];
        let end = rest.find(|c: char| !word(c)).unwrap_or(rest.len());
        let tag = &rest[..end];
        if tag.is_empty() || tag.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let tag = tag.to_lowercase();
        if seen.insert(tag.clone()) {
            tags.push(tag);
        }
    }
    tags
}

/// The http(s) links of a text, each once (`r` tags).
pub fn links(text: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    linkify::LinkFinder::new()
        .kinds(&[linkify::LinkKind::Url])
        .links(text)
        .map(|l| l.as_str().to_string())
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        .filter(|u| seen.insert(u.clone()))
        .collect()
}

/// The kind-1 note for `text` at `created_at` (unix seconds): hashtags as `t` tags,
/// links as `r` tags. Everything in it comes from the post, so the id is a function of
/// (author, text, slot instant).
pub fn note(text: &str, created_at: u64) -> EventBuilder {
    EventBuilder::new(Kind::TextNote, text)
        .tags(hashtags(text).into_iter().map(Tag::hashtag))
        .tags(links(text).into_iter().map(|u| Tag::custom("r", [u])))
        .custom_created_at(Timestamp::from_secs(created_at))
}

/// The signer of one account, built from its credentials.
pub(super) enum Signer {
    Key(Keys),
    Bunker { bunker: Bunker, user: PublicKey },
}

impl Signer {
    pub(super) fn of(account: &AccountRef, http: &Http) -> Result<Signer, PublishError> {
        let bad = |m: String| PublishError::reconnect(format!("Nostr credentials: {m}"));
        match Credentials::parse(&account.credentials)? {
            Credentials::Key { secret_key } => {
                Ok(Signer::Key(parse_secret_key(&secret_key).map_err(bad)?))
            }
            Credentials::Bunker {
                uri,
                client_secret_key,
                user_public_key,
            } => {
                let client = parse_secret_key(&client_secret_key).map_err(bad)?;
                let (bunker, _) = Bunker::new(&uri, client, http.clone()).map_err(bad)?;
                let user = PublicKey::from_hex(&user_public_key)
                    .map_err(|_| bad("bad user public key".into()))?;
                Ok(Signer::Bunker { bunker, user })
            }
        }
    }

    pub(super) fn public_key(&self) -> PublicKey {
        match self {
            Signer::Key(k) => k.public_key(),
            Signer::Bunker { user, .. } => *user,
        }
    }

    pub(super) async fn sign(
        &self,
        builder: EventBuilder,
        timeout: Duration,
    ) -> Result<Event, PublishError> {
        match self {
            Signer::Key(keys) => builder.finalize(keys).map_err(|e| {
                PublishError::Rejected(
                    Reason::new("picket could not sign the note").with_detail(e.to_string()),
                )
            }),
            Signer::Bunker { bunker, user } => {
                let mut unsigned = builder.finalize_unsigned(*user);
                let id = unsigned.id();
                let ev = bunker
                    .sign(unsigned, timeout)
                    .await
                    .map_err(SignerError::into_publish)?;
                // A signer that signs something else (another key, altered content) must
                // not have its event published under this post.
                if ev.id != id || ev.pubkey != *user || ev.verify().is_err() {
                    return Err(PublishError::reconnect(
                        "the remote signer returned a different event or key",
                    ));
                }
                Ok(ev)
            }
        }
    }
}

/// The `nostr:nevent1…` URI (NIP-19, NIP-21) of a published note, with relay hints.
pub fn nevent_uri(id: EventId, author: PublicKey, relays: &[String]) -> String {
    let hints: Vec<RelayUrl> = relays
        .iter()
        .filter_map(|r| RelayUrl::parse(r).ok())
        .collect();
    let nevent = Nip19Event::new(id)
        .author(author)
        .kind(Kind::TextNote)
        .relays(hints)
        .to_bech32()
        .expect("bech32 of an nevent");
    format!("nostr:{nevent}")
}

/// Reactions (7), reposts (6) and replies (1) that reference the note.
pub(super) fn engagement_filters(id: &EventId) -> Vec<Value> {
    [7, 6, 1]
        .iter()
        .map(|k| json!({"kinds": [k], "#e": [id.to_hex()]}))
        .collect()
}

/// Count events by kind, each once however many relays returned it.
pub fn count_engagement(id: &EventId, events: impl IntoIterator<Item = Event>) -> Engagement {
    let mut seen = HashSet::new();
    let mut e = Engagement::default();
    for ev in events {
        let refers = ev
            .tags
            .iter()
            .any(|t| t.kind() == "e" && t.content() == Some(id.to_hex().as_str()));
        if !refers || !seen.insert(ev.id) {
            continue;
        }
        match ev.kind {
            Kind::Reaction => e.likes += 1,
            Kind::Repost => e.reposts += 1,
            Kind::TextNote => e.replies += 1,
            _ => {}
        }
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        parse_secret_key("6b911fd37cdf5c81d4c0adb1ab7fa822ed253ab0ad9aa18d77257c88b29b718e")
            .unwrap()
    }

    #[test]
    fn hashtags_are_lowercase_unique_and_in_order() {
        let tags = hashtags("#Strike today, #STRIKE again and #Solidarity_2027!");
        assert_eq!(tags, ["strike", "solidarity_2027"]);
    }

    #[test]
    fn hashtags_stop_at_punctuation_and_emoji() {
        let tags = hashtags("On #strike🔥 (#Walkout). #tag's #end. #a-b");
        assert_eq!(tags, ["strike", "walkout", "tag", "end", "a"]);
    }

    #[test]
    fn hashtags_in_cjk_and_accented_scripts_are_kept() {
        let tags = hashtags("今日は#罷工 です #Grève #ÉCOLE #ストライキ。");
        assert_eq!(tags, ["罷工", "grève", "école", "ストライキ"]);
    }

    #[test]
    fn a_hash_inside_a_url_or_a_word_is_not_a_tag() {
        let text = "Join https://example.org/join#section and a#b &#39; issue#12 \
                    https://x.test/#/route #real";
        assert_eq!(hashtags(text), ["real"]);
    }

    #[test]
    fn numbers_lone_hashes_and_double_hashes_are_not_tags() {
        assert_eq!(hashtags("#1 # ## ##twice #2027 #x1"), ["x1"]);
    }

    #[test]
    fn links_become_r_tags_once() {
        let text = "See https://picket.test/i/abc and again https://picket.test/i/abc #t";
        assert_eq!(links(text), ["https://picket.test/i/abc"]);
    }

    #[test]
    fn the_same_text_time_and_key_give_the_same_event_id() {
        let k = keys();
        let a = note("On #Strike: https://p.test/x", 1_800_000_000)
            .finalize(&k)
            .unwrap();
        let b = note("On #Strike: https://p.test/x", 1_800_000_000)
            .finalize(&k)
            .unwrap();
        assert_eq!(a.id, b.id);
        assert!(a.verify().is_ok() && b.verify().is_ok());
        let tags: Vec<Vec<String>> = a.tags.iter().map(|t| t.as_slice().to_vec()).collect();
        assert_eq!(
            tags,
            [vec!["t", "strike"], vec!["r", "https://p.test/x"]]
                .map(|v| v.into_iter().map(String::from).collect::<Vec<_>>())
        );
    }

    #[test]
    fn another_time_or_text_gives_another_event_id() {
        let k = keys();
        let a = note("x", 1_800_000_000).finalize(&k).unwrap();
        let later = note("x", 1_800_000_001).finalize(&k).unwrap();
        let other = note("y", 1_800_000_000).finalize(&k).unwrap();
        assert_ne!(a.id, later.id);
        assert_ne!(a.id, other.id);
    }

    #[test]
    fn keys_parse_from_nsec_and_hex_and_nothing_else() {
        let k = keys();
        let nsec = k.secret_key().to_bech32().unwrap();
        assert_eq!(
            parse_secret_key(&nsec).unwrap().public_key(),
            k.public_key()
        );
        assert!(parse_secret_key("nsec1notakey").is_err());
        assert!(parse_secret_key("zz").is_err());
        assert!(npub(&k.public_key()).starts_with("npub1"));
    }

    #[test]
    fn engagement_counts_each_event_once_by_kind() {
        let k = keys();
        let post = note("x", 1_800_000_000).finalize(&k).unwrap();
        let r = |kind, s| {
            EventBuilder::new(kind, s)
                .tag(Tag::event(post.id))
                .finalize(&Keys::generate())
                .unwrap()
        };
        let like = r(Kind::Reaction, "+");
        let evs = vec![
            like.clone(),
            like,
            r(Kind::Reaction, "🔥"),
            r(Kind::Repost, ""),
            r(Kind::TextNote, "me too"),
            note("unrelated", 1).finalize(&k).unwrap(),
        ];
        let e = count_engagement(&post.id, evs);
        assert_eq!(
            e,
            Engagement {
                replies: 1,
                reposts: 1,
                likes: 2
            }
        );
    }
}
