//! The variables a post template is rendered with, built in one place for every post
//! picket shows or sends: the dispatcher, the join preview and `picket campaign preview`
//! all fill them through [`PostContext::vars`], so what a person approves is what goes out.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use crate::domain::{NetworkKind, Zone};
use crate::store::{Account, AccountId, AccountStatus};

/// The variables a post template can use. Field names are the template variable names.
#[derive(Debug, Clone, Serialize)]
pub struct PostVars {
    pub hashtag: String,
    pub title: String,
    /// The participant's own invitation link.
    pub invite_link: String,
    pub declaration_url: String,
    pub campaign_url: String,
    pub participant: ParticipantVars,
    /// The participant's accounts on other networks, so followers can find them.
    pub elsewhere: String,
    /// 1-based strike day (0 before the strike).
    pub day: u32,
    pub days_total: u32,
    /// Local date of the slot, `YYYY-MM-DD`.
    pub date: String,
    /// Local time of the slot, `HH:MM`.
    pub time: String,
    /// Local weekday, e.g. `Sunday`.
    pub weekday: String,
    /// The participant's IANA zone.
    pub timezone: String,
    /// The network the post is for, e.g. `mastodon`.
    pub network: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ParticipantVars {
    pub name: String,
}

/// What a post's text takes from its campaign.
#[derive(Debug, Clone, Copy)]
pub struct CampaignRef<'a> {
    pub id: &'a str,
    /// Without the leading '#'.
    pub hashtag: &'a str,
    pub title: &'a str,
}

/// The slot a post is for: its own instant (before jitter) and strike day, read in the
/// participant's zone.
#[derive(Debug, Clone, Copy)]
pub struct SlotRef {
    pub at: DateTime<Utc>,
    pub tz: Zone,
    /// 1-based strike day (0 before the strike).
    pub day: u32,
    pub days_total: u32,
}

/// Everything the text of one post is made from.
#[derive(Debug, Clone, Copy)]
pub struct PostContext<'a> {
    /// This host's address (`public_url`), for the links; a trailing `/` is ignored.
    pub site: &'a str,
    pub campaign: CampaignRef<'a>,
    /// The participant's name as they gave it.
    pub name: &'a str,
    /// The participant's personal invitation code.
    pub invite_code: &'a str,
    /// Where else followers find the participant, from [`elsewhere`].
    pub elsewhere: &'a str,
    pub network: NetworkKind,
    pub slot: SlotRef,
}

impl PostContext<'_> {
    /// The template variables of this post.
    pub fn vars(&self) -> PostVars {
        let site = self.site.trim_end_matches('/');
        let c = self.campaign;
        let local = self.slot.at.with_timezone(&self.slot.tz.tz());
        PostVars {
            hashtag: c.hashtag.to_string(),
            title: c.title.to_string(),
            invite_link: format!("{site}/i/{}", self.invite_code),
            declaration_url: format!("{site}/c/{}#declaration", c.id),
            campaign_url: format!("{site}/c/{}", c.id),
            participant: ParticipantVars {
                name: self.name.to_string(),
            },
            elsewhere: self.elsewhere.to_string(),
            day: self.slot.day,
            days_total: self.slot.days_total,
            date: local.format("%Y-%m-%d").to_string(),
            time: local.format("%H:%M").to_string(),
            weekday: local.format("%A").to_string(),
            timezone: self.slot.tz.to_string(),
            network: self.network.as_str().to_string(),
        }
    }
}

/// Where else followers can find a participant, as a post says it: their accounts other
/// than the one `posting`, as "Mastodon @alex@social.example · Bluesky alex.bsky.social".
///
/// An account counts while it is connected, that is, not removed, and that includes an
/// account that needs reconnecting: the account still exists and its followers still find
/// the person there; only picket cannot post to it until its owner reconnects it. A
/// removed account is gone from picket (its owner asked), so it is never named.
pub fn elsewhere<'a>(
    accounts: impl IntoIterator<Item = &'a Account>,
    posting: Option<AccountId>,
) -> String {
    accounts
        .into_iter()
        .filter(|a| a.status != AccountStatus::Removed && Some(a.id) != posting)
        .map(|a| format!("{} {}", a.network.label(), a.handle))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The address sample posts link to: as long as a real host's, so length checks are
/// honest.
pub const SAMPLE_SITE: &str = "https://picket.example.org";

/// The sample participant's name, invitation code and accounts elsewhere: stand-ins as
/// long as typical real ones, for checks and previews without a participant.
pub const SAMPLE_NAME: &str = "Alex Example";
pub const SAMPLE_INVITE_CODE: &str = "k7Qm2xVa";
pub const SAMPLE_ELSEWHERE: &str = "Mastodon @alex@social.example · Bluesky @alex.bsky.social";

impl PostVars {
    /// Stand-ins for a participant's own values, built like a real post's: used by
    /// `campaign check` and `campaign preview`. Day 1 of 2, at midnight on Sunday
    /// 4 July 2027 in New York, for Mastodon.
    pub fn sample(hashtag: &str, title: &str, campaign_id: &str) -> Self {
        let tz = Zone::from(chrono_tz::America::New_York);
        let at = tz
            .tz()
            .with_ymd_and_hms(2027, 7, 4, 0, 0, 0)
            .single()
            .expect("midnight of 4 July 2027 exists in New York")
            .with_timezone(&Utc);
        PostContext {
            site: SAMPLE_SITE,
            campaign: CampaignRef {
                id: campaign_id,
                hashtag,
                title,
            },
            name: SAMPLE_NAME,
            invite_code: SAMPLE_INVITE_CODE,
            elsewhere: SAMPLE_ELSEWHERE,
            network: NetworkKind::Mastodon,
            slot: SlotRef {
                at,
                tz,
                day: 1,
                days_total: 2,
            },
        }
        .vars()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ParticipantId;

    fn account(id: i64, network: NetworkKind, handle: &str, status: AccountStatus) -> Account {
        Account {
            id: AccountId(id),
            participant_id: ParticipantId(1),
            network,
            handle: handle.parse().unwrap(),
            server: None,
            credentials: Default::default(),
            trusted: false,
            route: crate::store::AccountRoute::Api,
            status,
            status_reason: None,
            created_at: DateTime::UNIX_EPOCH,
        }
    }

    fn context<'a>(site: &'a str, elsewhere: &'a str, slot: SlotRef) -> PostContext<'a> {
        PostContext {
            site,
            campaign: CampaignRef {
                id: "sms",
                hashtag: "SocialMediaStrike",
                title: "Social Media Strike",
            },
            name: "Zoë",
            invite_code: "abc123",
            elsewhere,
            network: NetworkKind::Bluesky,
            slot,
        }
    }

    #[test]
    fn elsewhere_names_an_account_that_needs_reconnecting_but_not_a_removed_one() {
        let accounts = [
            account(
                1,
                NetworkKind::Mastodon,
                "@zoe@social.example",
                AccountStatus::Active,
            ),
            account(
                2,
                NetworkKind::Bluesky,
                "zoe.bsky.social",
                AccountStatus::ReconnectNeeded,
            ),
            account(3, NetworkKind::Nostr, "npub1zoe", AccountStatus::Removed),
        ];

        assert_eq!(
            elsewhere(&accounts, Some(AccountId(1))),
            "Bluesky zoe.bsky.social"
        );
        assert_eq!(
            elsewhere(&accounts, Some(AccountId(2))),
            "Mastodon @zoe@social.example"
        );
        assert_eq!(
            elsewhere(&accounts, None),
            "Mastodon @zoe@social.example · Bluesky zoe.bsky.social"
        );
    }

    #[test]
    fn a_post_names_nowhere_else_when_the_participant_has_one_account() {
        let accounts = [account(
            7,
            NetworkKind::Sandbox,
            "zoe",
            AccountStatus::Active,
        )];

        assert_eq!(elsewhere(&accounts, Some(AccountId(7))), "");
    }

    #[test]
    fn the_variables_read_the_slot_in_the_participants_zone() {
        // 18:30 UTC on 3 July is 00:00 on Sunday 4 July in Kolkata.
        let slot = SlotRef {
            at: "2027-07-03T18:30:00Z".parse().unwrap(),
            tz: chrono_tz::Asia::Kolkata.into(),
            day: 1,
            days_total: 2,
        };

        let vars = context("https://picket.example/", "Mastodon @zoe", slot).vars();

        assert_eq!(vars.date, "2027-07-04");
        assert_eq!(vars.time, "00:00");
        assert_eq!(vars.weekday, "Sunday");
        assert_eq!(vars.timezone, "Asia/Kolkata");
        assert_eq!((vars.day, vars.days_total), (1, 2));
        assert_eq!(vars.network, "bluesky");
        assert_eq!(vars.participant.name, "Zoë");
        assert_eq!(vars.elsewhere, "Mastodon @zoe");
    }

    #[test]
    fn the_links_point_at_this_host_whether_or_not_its_address_ends_in_a_slash() {
        let slot = SlotRef {
            at: DateTime::UNIX_EPOCH,
            tz: Zone::UTC,
            day: 0,
            days_total: 1,
        };

        for site in ["https://picket.example", "https://picket.example/"] {
            let vars = context(site, "", slot).vars();
            assert_eq!(vars.invite_link, "https://picket.example/i/abc123");
            assert_eq!(vars.campaign_url, "https://picket.example/c/sms");
            assert_eq!(
                vars.declaration_url,
                "https://picket.example/c/sms#declaration"
            );
        }
    }

    #[test]
    fn the_sample_is_midnight_on_the_first_strike_day_in_new_york() {
        let vars = PostVars::sample("SocialMediaStrike", "Social Media Strike", "sms");

        assert_eq!(
            (
                vars.date.as_str(),
                vars.time.as_str(),
                vars.weekday.as_str()
            ),
            ("2027-07-04", "00:00", "Sunday")
        );
        assert_eq!(vars.timezone, "America/New_York");
        assert_eq!(vars.invite_link, "https://picket.example.org/i/k7Qm2xVa");
        assert_eq!(vars.elsewhere, SAMPLE_ELSEWHERE);
    }
}
