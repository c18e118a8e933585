//! Tap-to-post: the one place that turns a rendered notice into what a person taps to
//! post it themself. A prefilled compose link where the network has one (X, Threads,
//! Bluesky, Mastodon-API servers; LinkedIn's share link, which carries only an address),
//! otherwise the text to copy and the network's own site or app to paste it in
//! (Facebook profiles, Instagram, TikTok, YouTube). Also which addresses a post "I posted
//! it" points to may belong to each network.
//!
//! Pure functions: the dispatcher's reminders, the mail, `/me`, the calendar and
//! `picket status` all call these, so the link in the mail is the link on the page.
//!
//! Sources (NETWORKS.md §0.7, §5, §7): X web intent
//! <https://docs.x.com/x-for-websites/post-button/guides/web-intent>; Bluesky
//! <https://docs.bsky.app/docs/advanced-guides/intent-links>; Mastodon's `/share?text=`
//! (share-to-mastodon, Mastodon's own share page); Threads `threads.com/intent/post`;
//! LinkedIn `sharing/share-offsite/?url=` (documented to take only `url`: a text prefill
//! such as `feed/?shareActive=true&text=` is not in LinkedIn's documentation, so it is
//! not used; the text comes to copy beside the link).

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::domain::NetworkKind;

/// Everything but RFC 3986's unreserved characters is encoded, so a space is `%20` (not
/// `+`, which some compose pages keep as a plus), and `#`, `&`, `=`, `+` and newlines
/// cannot end or split the parameter.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` as one query-parameter value.
pub fn encode(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// How a person posts one notice by hand.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tap {
    /// A link that opens the network's composer with the notice filled in, if it has one.
    pub compose_url: Option<String>,
    /// The text to copy and paste, where the link does not carry it.
    pub copy_text: Option<String>,
    /// Where to paste it: the network's site (its app opens it on a phone).
    pub open_url: &'static str,
}

/// The prefilled compose link for `text` on `network`; `server` is the account's server
/// (Mastodon-API). `None` where the network has no such link.
pub fn compose_url(network: NetworkKind, server: Option<&str>, text: &str) -> Option<String> {
    let t = encode(text);
    match network {
        NetworkKind::X => Some(format!("https://x.com/intent/tweet?text={t}")),
        NetworkKind::Threads => Some(format!("https://www.threads.com/intent/post?text={t}")),
        NetworkKind::Bluesky => Some(format!("https://bsky.app/intent/compose?text={t}")),
        NetworkKind::Mastodon => {
            let base = server_base(server?)?;
            Some(format!("{base}/share?text={t}"))
        }
        NetworkKind::LinkedIn => {
            let url = first_url(text)?;
            Some(format!(
                "https://www.linkedin.com/sharing/share-offsite/?url={}",
                encode(url)
            ))
        }
        _ => None,
    }
}

/// What a person needs to post `text` on `network` by hand.
pub fn tap(network: NetworkKind, server: Option<&str>, text: &str) -> Tap {
    let compose_url = compose_url(network, server, text);
    // LinkedIn's link shares only the address: the words still have to be pasted.
    let carries_text = compose_url.is_some() && network != NetworkKind::LinkedIn;
    Tap {
        copy_text: (!carries_text).then(|| text.to_string()),
        compose_url,
        open_url: site(network),
    }
}

/// The strike card of a campaign's day (a picture to post; square or 9:16 "story"),
/// served at a fixed public address (`/c/{id}/card.png`). `day` is the slot's local date.
pub fn card_url(site: &str, campaign_id: &str, day: chrono::NaiveDate, story: bool) -> String {
    format!(
        "{}/c/{}/card.png?day={}&size={}",
        site.trim_end_matches('/'),
        encode(campaign_id),
        day.format("%Y-%m-%d"),
        if story { "story" } else { "square" }
    )
}

/// Networks whose posts are pictures first: the card is what to post there.
pub fn wants_card(network: NetworkKind) -> bool {
    matches!(network, NetworkKind::Instagram | NetworkKind::TikTok)
}

/// One reminded notice as the reminder mail and the participant's page show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NoticeLinks {
    /// The network's name as people write it, and the account's handle.
    pub network: &'static str,
    pub handle: String,
    pub compose_url: Option<String>,
    pub copy_text: Option<String>,
    pub open_url: &'static str,
    /// The strike card, square; and 9:16 for networks whose stories want it.
    pub card_url: String,
    pub story_url: Option<String>,
}

/// Everything a person needs to post one reminded notice: [`tap`] plus the card.
pub fn notice_links(
    network: NetworkKind,
    handle: &str,
    server: Option<&str>,
    text: &str,
    site: &str,
    campaign_id: &str,
    day: chrono::NaiveDate,
) -> NoticeLinks {
    let t = tap(network, server, text);
    NoticeLinks {
        network: network.label(),
        handle: handle.to_string(),
        compose_url: t.compose_url,
        copy_text: t.copy_text,
        open_url: t.open_url,
        card_url: card_url(site, campaign_id, day, false),
        story_url: wants_card(network).then(|| card_url(site, campaign_id, day, true)),
    }
}

/// The network's own site, where its composer is (a phone opens the app from it).
pub fn site(network: NetworkKind) -> &'static str {
    match network {
        NetworkKind::X => "https://x.com/",
        NetworkKind::Threads => "https://www.threads.com/",
        NetworkKind::Facebook => "https://www.facebook.com/",
        NetworkKind::Instagram => "https://www.instagram.com/",
        NetworkKind::TikTok => "https://www.tiktok.com/upload",
        NetworkKind::YouTube => "https://www.youtube.com/",
        NetworkKind::LinkedIn => "https://www.linkedin.com/feed/",
        NetworkKind::Bluesky => "https://bsky.app/",
        _ => "",
    }
}

/// `https://host[:port]` of a server given as `host`, `https://host` or `https://host/`.
fn server_base(server: &str) -> Option<String> {
    let s = server.trim().trim_end_matches('/');
    let with_scheme = if s.contains("://") {
        s.to_string()
    } else {
        format!("https://{s}")
    };
    let u = url::Url::parse(&with_scheme).ok()?;
    if !matches!(u.scheme(), "https" | "http") {
        return None;
    }
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    })
}

fn first_url(text: &str) -> Option<&str> {
    super::length::url_ranges(text)
        .into_iter()
        .next()
        .map(|r| &text[r])
}

/// The hosts a post on `network` lives at (and their subdomains); `server` is the
/// account's own server for Mastodon-API accounts.
pub fn post_hosts(network: NetworkKind, server: Option<&str>) -> Vec<String> {
    let fixed: &[&str] = match network {
        NetworkKind::X => &["x.com", "twitter.com"],
        NetworkKind::Facebook => &["facebook.com", "fb.com"],
        NetworkKind::Instagram => &["instagram.com"],
        NetworkKind::TikTok => &["tiktok.com"],
        NetworkKind::YouTube => &["youtube.com", "youtu.be"],
        NetworkKind::LinkedIn => &["linkedin.com"],
        NetworkKind::Threads => &["threads.com", "threads.net"],
        NetworkKind::Bluesky => &["bsky.app"],
        _ => &[],
    };
    let mut hosts: Vec<String> = fixed.iter().map(|h| h.to_string()).collect();
    if network == NetworkKind::Mastodon
        && let Some(host) = server
            .and_then(server_base)
            .and_then(|b| url::Url::parse(&b).ok())
            .and_then(|u| u.host_str().map(str::to_string))
    {
        hosts.push(host);
    }
    hosts
}

/// Why the address of a post posted by hand was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostUrlError {
    #[error("that is not a web address: give the address of your post, starting with https://")]
    NotAnAddress,
    #[error(
        "that address is too long: give the address of your post ({MAX_POST_URL} characters at most)"
    )]
    TooLong,
    #[error("that address is not on {network}: give the address of your post there ({hosts})")]
    Elsewhere {
        network: &'static str,
        hosts: String,
    },
}

/// The longest address of a post posted by hand that is kept: real post links are far
/// shorter, and the address is stored and shown on the participant's page.
pub const MAX_POST_URL: usize = 2048;

/// The address of a post posted by hand, if it is an http(s) address on `network`'s own
/// host (or a subdomain of it, such as `www.` or `m.`): what the page then shows as a link.
pub fn check_post_url(
    network: NetworkKind,
    server: Option<&str>,
    raw: &str,
) -> Result<String, PostUrlError> {
    if raw.trim().len() > MAX_POST_URL {
        return Err(PostUrlError::TooLong);
    }
    let u = url::Url::parse(raw.trim()).map_err(|_| PostUrlError::NotAnAddress)?;
    if !matches!(u.scheme(), "https" | "http") || !u.username().is_empty() || u.password().is_some()
    {
        return Err(PostUrlError::NotAnAddress);
    }
    let host = u
        .host_str()
        .ok_or(PostUrlError::NotAnAddress)?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let hosts = post_hosts(network, server);
    let on_network = hosts
        .iter()
        .any(|h| host == *h || host.ends_with(&format!(".{h}")));
    if !on_network {
        return Err(PostUrlError::Elsewhere {
            network: network.label(),
            hosts: hosts.join(", "),
        });
    }
    Ok(u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `text` parameter of a link, decoded as a browser does.
    fn text_param(link: &str) -> String {
        let u = url::Url::parse(link).unwrap();
        u.query_pairs()
            .find(|(k, _)| k == "text")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    }

    const TRICKY: &str = "Strike ✊🏽 today!\nSign & join: https://picket.test/i/abc?x=1#top #SocialMediaStrike 100% + more";

    #[test]
    fn an_overlong_post_address_is_refused_before_it_is_parsed() {
        let long = format!("https://x.com/me/status/{}", "1".repeat(MAX_POST_URL));
        assert_eq!(
            check_post_url(NetworkKind::X, None, &long),
            Err(PostUrlError::TooLong)
        );
        assert!(check_post_url(NetworkKind::X, None, "https://x.com/me/status/1").is_ok());
    }

    #[test]
    fn emoji_newlines_hashes_and_ampersands_survive_a_compose_link() {
        for (network, server, start) in [
            (NetworkKind::X, None, "https://x.com/intent/tweet?text="),
            (
                NetworkKind::Threads,
                None,
                "https://www.threads.com/intent/post?text=",
            ),
            (
                NetworkKind::Bluesky,
                None,
                "https://bsky.app/intent/compose?text=",
            ),
            (
                NetworkKind::Mastodon,
                Some("https://social.example/"),
                "https://social.example/share?text=",
            ),
        ] {
            let link = compose_url(network, server, TRICKY).unwrap();
            assert!(link.starts_with(start), "{link}");
            let query = &link[start.len()..];
            assert!(
                !query.contains(['&', '#', '\n', ' ', '+', '=']),
                "only the one parameter: {query}"
            );
            assert_eq!(text_param(&link), TRICKY, "{network}");
        }
        assert_eq!(encode("a b\n#&✊"), "a%20b%0A%23%26%E2%9C%8A");
    }

    #[test]
    fn a_mastodon_server_given_without_a_scheme_or_with_a_port_gets_its_share_page() {
        assert_eq!(
            compose_url(NetworkKind::Mastodon, Some("social.example"), "hi").unwrap(),
            "https://social.example/share?text=hi"
        );
        assert_eq!(
            compose_url(NetworkKind::Mastodon, Some("http://127.0.0.1:3000/"), "hi").unwrap(),
            "http://127.0.0.1:3000/share?text=hi"
        );
        assert_eq!(compose_url(NetworkKind::Mastodon, None, "hi"), None);
        assert_eq!(
            compose_url(NetworkKind::Mastodon, Some("javascript:alert(1)"), "hi"),
            None
        );
    }

    #[test]
    fn networks_without_a_compose_link_give_the_text_to_copy_and_their_site() {
        for network in [
            NetworkKind::Facebook,
            NetworkKind::Instagram,
            NetworkKind::TikTok,
            NetworkKind::YouTube,
        ] {
            let t = tap(network, None, TRICKY);
            assert_eq!(t.compose_url, None);
            assert_eq!(t.copy_text.as_deref(), Some(TRICKY));
            assert!(t.open_url.starts_with("https://"), "{network}");
        }
        let x = tap(NetworkKind::X, None, TRICKY);
        assert!(x.compose_url.is_some() && x.copy_text.is_none());
    }

    #[test]
    fn linkedin_shares_the_notices_link_and_gives_its_words_to_copy() {
        let t = tap(NetworkKind::LinkedIn, None, TRICKY);
        let link = t.compose_url.unwrap();
        let u = url::Url::parse(&link).unwrap();
        assert_eq!(u.path(), "/sharing/share-offsite/");
        let shared = u.query_pairs().find(|(k, _)| k == "url").unwrap().1;
        assert_eq!(shared, "https://picket.test/i/abc?x=1#top");
        assert_eq!(t.copy_text.as_deref(), Some(TRICKY));
    }

    #[test]
    fn a_post_address_must_be_on_the_networks_own_host() {
        let ok = |n, s: Option<&str>, u: &str| check_post_url(n, s, u).is_ok();
        assert!(ok(NetworkKind::X, None, "https://x.com/ada/status/1"));
        assert!(ok(
            NetworkKind::X,
            None,
            "https://mobile.twitter.com/ada/status/1"
        ));
        assert!(ok(
            NetworkKind::Facebook,
            None,
            "https://m.facebook.com/story.php?id=1"
        ));
        assert!(ok(NetworkKind::Facebook, None, "https://fb.com/1"));
        assert!(ok(NetworkKind::YouTube, None, "https://youtu.be/abc"));
        assert!(ok(
            NetworkKind::Threads,
            None,
            "https://www.threads.net/@ada/post/1"
        ));
        assert!(ok(
            NetworkKind::Bluesky,
            None,
            "https://bsky.app/profile/ada/post/1"
        ));
        assert!(ok(
            NetworkKind::Mastodon,
            Some("https://social.example"),
            "https://social.example/@ada/1"
        ));
        // Look-alikes and other schemes are refused.
        assert!(!ok(NetworkKind::X, None, "https://evilx.com/ada"));
        assert!(!ok(NetworkKind::X, None, "https://x.com.evil.example/ada"));
        assert!(!ok(NetworkKind::X, None, "https://x.com@evil.example/"));
        assert!(!ok(NetworkKind::X, None, "javascript:alert(1)//x.com"));
        assert!(!ok(
            NetworkKind::Instagram,
            None,
            "https://facebook.com/p/1"
        ));
        assert!(!ok(
            NetworkKind::Mastodon,
            Some("https://social.example"),
            "https://other.example/@ada/1"
        ));
        assert_eq!(
            check_post_url(NetworkKind::X, None, "not a url"),
            Err(PostUrlError::NotAnAddress)
        );
        let e = check_post_url(NetworkKind::Instagram, None, "https://example.org/p").unwrap_err();
        assert!(e.to_string().contains("Instagram"), "{e}");
    }
}
