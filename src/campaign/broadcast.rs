//! A campaign's own broadcast channels (`[[channels]]`) and what they announce, and when
//! (`[[announcements]]`): the validated types, and the instants an announcement falls on.
//!
//! A campaign file names where announcements go (a Matrix room, a Telegram channel, a
//! Discord webhook by name) but never holds a token: tokens live in the host settings or
//! the environment (`config::ChannelSettings`), and `validate` refuses a token-like key
//! here with a message saying where it belongs. An announcement's instants are computed
//! by the same schedule as posts (`schedule`), read in one zone for everyone.

use chrono::Duration;
use chrono_tz::Tz;
use serde::Serialize;

use super::{Campaign, Participation, PostRule, Slot, When};
use crate::domain::Zone;

/// Which service a channel is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    Matrix,
    Telegram,
    Discord,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 3] = [
        ChannelKind::Matrix,
        ChannelKind::Telegram,
        ChannelKind::Discord,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Matrix => "matrix",
            ChannelKind::Telegram => "telegram",
            ChannelKind::Discord => "discord",
        }
    }

    pub fn parse(s: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One `[[channels]]` entry of a campaign file: where, without the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelSpec {
    pub name: String,
    pub kind: ChannelKind,
    /// Matrix: the homeserver's base address.
    pub homeserver: Option<String>,
    /// Matrix: a room id (`!abc:server`) or alias (`#room:server`).
    pub room: Option<String>,
    /// Telegram: the channel (`@name` or a numeric chat id).
    pub chat: Option<String>,
    /// Telegram: the Bot API's base address (default `https://api.telegram.org`).
    pub api: Option<String>,
}

/// One `[[announcements]]` entry.
#[derive(Debug, Clone, Serialize)]
pub struct Announcement {
    pub name: String,
    pub when: When,
    /// The zone its times are read in.
    #[serde(skip)]
    pub tz: Tz,
    /// Channel names: the campaign's `[[channels]]` or the host's.
    pub channels: Vec<String>,
    /// Variants (tera sources), rotated from one instant to the next.
    pub text: Vec<String>,
    /// How long after its instant it may still go out; `None` = the default for `when`.
    #[serde(with = "super::duration_secs_opt")]
    pub window: Option<Duration>,
}

impl Campaign {
    /// The instants `announcement` falls on, with their windows, in order. The schedule is
    /// the posts' own (`Campaign::slots`), for one participant in the announcement's zone
    /// who strikes every day.
    pub fn announcement_slots(&self, announcement: &Announcement) -> Vec<Slot> {
        let mut one = self.clone();
        one.posts = vec![PostRule {
            name: announcement.name.clone(),
            when: announcement.when,
            template: announcement.name.clone(),
            window: announcement.window,
            optional: false,
            card: false,
        }];
        one.slots(&Participation {
            tz: Zone::from(announcement.tz),
            days: None,
            every: None,
        })
    }

    /// When the strike starts, read in `tz` where each participant's days are their own.
    pub fn strike_start_in(&self, tz: Tz) -> Option<chrono::DateTime<chrono::Utc>> {
        self.strike_span(&Participation {
            tz: Zone::from(tz),
            days: None,
            every: None,
        })
        .map(|(start, _)| start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    const CAMPAIGN: &str = r##"
id = "c"
title = "C"
hashtag = "C"
[strike]
timezone = "participant"
days = ["2027-07-04", "2027-07-05"]
[[posts]]
name = "n"
when = "start"
template = "t"
[templates]
t = ["#{{ hashtag }} {{ invite_link }}"]
[[channels]]
name = "room"
kind = "matrix"
homeserver = "https://matrix.example"
room = "#strike:matrix.example"
[[announcements]]
name = "soon"
when = "before 1h"
timezone = "Europe/Berlin"
channels = ["room"]
text = ["Starts in {{ starts_in }}: {{ strikers }} ready #{{ hashtag }}"]
[[announcements]]
name = "now"
when = "daily 12:00"
timezone = "Europe/Berlin"
channels = ["room", "hosts-telegram"]
text = ["{{ strikers }} people are on strike now", "Still {{ strikers }} on strike"]
"##;

    #[test]
    fn announcements_fall_on_the_posts_schedule_read_in_their_own_zone() {
        let c = crate::campaign::parse_str(CAMPAIGN, std::path::Path::new("c.toml")).unwrap();
        assert_eq!(c.channels.len(), 1);
        assert_eq!(c.channels[0].kind, ChannelKind::Matrix);
        let soon: Vec<_> = c
            .announcement_slots(&c.announcements[0])
            .iter()
            .map(|s| s.at)
            .collect();
        // Midnight in Berlin (UTC+2 in July) is 22:00 UTC the day before; an hour earlier.
        assert_eq!(soon, vec![utc("2027-07-03T21:00:00Z")]);
        let now: Vec<_> = c
            .announcement_slots(&c.announcements[1])
            .iter()
            .map(|s| s.at)
            .collect();
        assert_eq!(
            now,
            vec![utc("2027-07-04T10:00:00Z"), utc("2027-07-05T10:00:00Z")]
        );
        assert_eq!(
            c.strike_start_in(chrono_tz::Europe::Berlin),
            Some(utc("2027-07-03T22:00:00Z"))
        );
    }

    fn problems(extra: &str) -> Vec<String> {
        let src = format!("{CAMPAIGN}{extra}");
        match crate::campaign::parse_str(&src, std::path::Path::new("c.toml")) {
            Ok(_) => Vec::new(),
            Err(ps) => ps
                .into_iter()
                .map(|p| format!("{}:{}: {}", p.line, p.col, p.message))
                .collect(),
        }
    }

    #[test]
    fn a_token_in_a_campaign_file_is_refused_with_where_it_belongs() {
        let ps = problems(
            "[[channels]]\nname = \"tg\"\nkind = \"telegram\"\nchat = \"@strike\"\ntoken = \"123:ABC\"\n",
        );
        assert_eq!(ps.len(), 1, "{ps:?}");
        assert!(
            ps[0].contains("never in a campaign file") && ps[0].contains("PICKET_CHANNEL_TG_TOKEN"),
            "{ps:?}"
        );
        assert!(
            !ps[0].contains("123:ABC"),
            "the token is not repeated: {ps:?}"
        );
        let ps = problems(
            "[[channels]]\nname = \"dc\"\nkind = \"discord\"\nwebhook = \"https://discord.com/api/webhooks/1/x\"\n",
        );
        assert_eq!(ps.len(), 1, "{ps:?}");
        assert!(ps[0].contains("never in a campaign file"), "{ps:?}");
    }

    #[test]
    fn channels_and_announcements_are_checked_with_messages_naming_them() {
        let ps = problems("[[channels]]\nname = \"x\"\nkind = \"irc\"\n");
        assert!(ps.iter().any(|p| p.contains("kind \"irc\"")), "{ps:?}");
        let ps = problems("[[channels]]\nname = \"room\"\nkind = \"telegram\"\nchat = \"@a\"\n");
        assert!(ps.iter().any(|p| p.contains("declared twice")), "{ps:?}");
        let ps = problems("[[channels]]\nname = \"m\"\nkind = \"matrix\"\n");
        assert!(ps.iter().any(|p| p.contains("needs room")), "{ps:?}");
        let ps = problems(
            "[[announcements]]\nname = \"a\"\nwhen = \"soon\"\nchannels = [\"room\"]\ntext = [\"x\"]\ntimezone = \"UTC\"\n",
        );
        assert!(ps.iter().any(|p| p.contains("unknown when")), "{ps:?}");
        let ps = problems(
            "[[announcements]]\nname = \"a\"\nwhen = \"start\"\nchannels = [\"room\"]\ntext = [\"{{ invite_link }}\"]\ntimezone = \"UTC\"\n",
        );
        assert!(ps.iter().any(|p| p.contains("invite_link")), "{ps:?}");
        let ps = problems(
            "[[announcements]]\nname = \"a\"\nwhen = \"start\"\nchannels = [\"room\"]\ntext = [\"x\"]\n",
        );
        assert!(
            ps.iter().any(|p| p.contains("timezone = ")),
            "a participant-days campaign needs the announcement's zone: {ps:?}"
        );
        let ps = problems(
            "[[announcements]]\nname = \"now\"\nwhen = \"start\"\nchannels = []\ntext = [\"x\"]\ntimezone = \"UTC\"\n",
        );
        assert!(ps.iter().any(|p| p.contains("declared twice")), "{ps:?}");
        assert!(ps.iter().any(|p| p.contains("no channels")), "{ps:?}");
    }
}
