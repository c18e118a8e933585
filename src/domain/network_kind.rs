//! The kinds of network an account can live on: a name shared by campaign files, the
//! store, the length rules and the adapters. It lives here, not beside the adapters, so
//! that naming a network never pulls in the code that speaks to one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A kind of network an account lives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkKind {
    /// Mastodon client API: Mastodon, Pleroma/Akkoma, GoToSocial, Friendica, ...
    Mastodon,
    Bluesky,
    Nostr,
    Misskey,
    /// X (Twitter).
    X,
    Threads,
    /// Facebook: profiles (tap-to-post only) and Pages.
    Facebook,
    Instagram,
    TikTok,
    YouTube,
    LinkedIn,
    /// The built-in local receiver used by rehearsals, demos and tests.
    Sandbox,
}

impl NetworkKind {
    pub const ALL: [NetworkKind; 12] = [
        NetworkKind::Mastodon,
        NetworkKind::Bluesky,
        NetworkKind::Nostr,
        NetworkKind::Misskey,
        NetworkKind::X,
        NetworkKind::Threads,
        NetworkKind::Facebook,
        NetworkKind::Instagram,
        NetworkKind::TikTok,
        NetworkKind::YouTube,
        NetworkKind::LinkedIn,
        NetworkKind::Sandbox,
    ];

    /// The network's name as people write it.
    pub fn label(self) -> &'static str {
        match self {
            NetworkKind::Mastodon => "Mastodon",
            NetworkKind::Bluesky => "Bluesky",
            NetworkKind::Nostr => "Nostr",
            NetworkKind::Misskey => "Misskey",
            NetworkKind::X => "X",
            NetworkKind::Threads => "Threads",
            NetworkKind::Facebook => "Facebook",
            NetworkKind::Instagram => "Instagram",
            NetworkKind::TikTok => "TikTok",
            NetworkKind::YouTube => "YouTube",
            NetworkKind::LinkedIn => "LinkedIn",
            NetworkKind::Sandbox => "Sandbox",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NetworkKind::Mastodon => "mastodon",
            NetworkKind::Bluesky => "bluesky",
            NetworkKind::Nostr => "nostr",
            NetworkKind::Misskey => "misskey",
            NetworkKind::X => "x",
            NetworkKind::Threads => "threads",
            NetworkKind::Facebook => "facebook",
            NetworkKind::Instagram => "instagram",
            NetworkKind::TikTok => "tiktok",
            NetworkKind::YouTube => "youtube",
            NetworkKind::LinkedIn => "linkedin",
            NetworkKind::Sandbox => "sandbox",
        }
    }
}

impl fmt::Display for NetworkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name was not one of [`NetworkKind::ALL`].
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown network `{0}` (known: mastodon, bluesky, nostr, misskey, x, threads, facebook, instagram, tiktok, youtube, linkedin, sandbox)"
)]
pub struct UnknownNetwork(pub String);

impl FromStr for NetworkKind {
    type Err = UnknownNetwork;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NetworkKind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownNetwork(s.to_string()))
    }
}
