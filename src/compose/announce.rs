//! The text of one announcement on the campaign's own broadcast channels (Matrix rooms,
//! Telegram channels, Discord webhooks): its variables, with the live counts at the
//! moment it is due, and its variants compiled once.
//!
//! Announcements are not posts: nobody's account speaks, so there is no participant, no
//! invitation link of anyone's and no length rule of a social network. Their templates
//! are written inline in `[[announcements]]` (`text = [..]`), not in `[templates]`,
//! because they take other variables (`strikers`, `signatures`, `starts_in`) that a post's
//! template would be refused for. Rendering goes through `render` like posts do.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::render::{PostRenderer, RenderError};

/// Everything the text of one announcement is made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnnouncementVars {
    pub hashtag: String,
    pub title: String,
    /// The campaign page, where people sign and join.
    pub campaign_url: String,
    pub declaration_url: String,
    /// People with an active pledge when the announcement was due.
    pub strikers: u64,
    /// Confirmed signatures when the announcement was due.
    pub signatures: u64,
    /// How long until the strike starts, in words ("1 hour", "2 days"); empty once it has.
    pub starts_in: String,
    /// The announcement's instant, local to its zone.
    pub date: String,
    pub time: String,
    pub weekday: String,
    pub timezone: String,
}

/// What an announcement is about, for [`AnnouncementVars::new`].
#[derive(Debug, Clone, Copy)]
pub struct AnnouncementContext<'a> {
    /// This host's address (`public_url`); a trailing `/` is ignored.
    pub site: &'a str,
    pub campaign_id: &'a str,
    pub hashtag: &'a str,
    pub title: &'a str,
    /// The announcement's instant and the zone its times are read in.
    pub at: DateTime<Utc>,
    pub tz: chrono_tz::Tz,
    /// When the strike starts (its first day or window), if known.
    pub strike_start: Option<DateTime<Utc>>,
    pub strikers: u64,
    pub signatures: u64,
}

impl AnnouncementVars {
    pub fn new(c: &AnnouncementContext<'_>) -> AnnouncementVars {
        let site = c.site.trim_end_matches('/');
        let local = c.at.with_timezone(&c.tz);
        AnnouncementVars {
            hashtag: c.hashtag.to_string(),
            title: c.title.to_string(),
            campaign_url: format!("{site}/c/{}", c.campaign_id),
            declaration_url: format!("{site}/c/{}#declaration", c.campaign_id),
            strikers: c.strikers,
            signatures: c.signatures,
            starts_in: c
                .strike_start
                .filter(|s| *s > c.at)
                .map(|s| in_words(s - c.at))
                .unwrap_or_default(),
            date: local.format("%Y-%m-%d").to_string(),
            time: local.format("%H:%M").to_string(),
            weekday: local.format("%A").to_string(),
            timezone: c.tz.name().to_string(),
        }
    }

    /// Values as long as real ones, for checking a campaign file's texts.
    pub fn sample(hashtag: &str, title: &str, campaign_id: &str) -> AnnouncementVars {
        AnnouncementVars {
            hashtag: hashtag.to_string(),
            title: title.to_string(),
            campaign_url: format!("{}/c/{campaign_id}", super::vars::SAMPLE_SITE),
            declaration_url: format!("{}/c/{campaign_id}#declaration", super::vars::SAMPLE_SITE),
            strikers: 1234,
            signatures: 5678,
            starts_in: "1 hour".into(),
            date: "2027-07-04".into(),
            time: "09:00".into(),
            weekday: "Sunday".into(),
            timezone: "Europe/Berlin".into(),
        }
    }
}

/// A duration the way an announcement says it: the largest whole unit, rounded to the
/// nearest ("59m 40s" is "1 hour": an announcement due at its minute is sent seconds
/// later).
pub fn in_words(d: chrono::Duration) -> String {
    let minutes = (d.num_seconds() + 30) / 60;
    let (n, unit) = if minutes >= 2 * 24 * 60 {
        ((minutes + 12 * 60) / (24 * 60), "day")
    } else if minutes >= 90 {
        ((minutes + 30) / 60, "hour")
    } else if minutes >= 60 {
        (1, "hour")
    } else {
        (minutes.max(1), "minute")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// One campaign's announcement texts, compiled: announcement name -> variants.
#[derive(Debug)]
pub struct Announcements {
    renderer: PostRenderer,
}

impl Announcements {
    /// Compile every announcement's variants; fails on the first that does not parse.
    pub fn new<'a>(
        texts: impl IntoIterator<Item = (&'a str, &'a [String])>,
    ) -> Result<Announcements, (String, usize, RenderError)> {
        Ok(Announcements {
            renderer: PostRenderer::new(texts)?,
        })
    }

    /// The text of announcement `name`, variant `variant` (announcements rotate their
    /// variants from one instant to the next, so a channel does not repeat itself).
    pub fn render(
        &self,
        name: &str,
        variant: usize,
        vars: &AnnouncementVars,
    ) -> Result<String, RenderError> {
        self.renderer.render(name, variant, vars)
    }

    /// Check one variant with sample values, as `picket campaign check` does.
    pub fn check(src: &str, vars: &AnnouncementVars) -> Result<String, RenderError> {
        PostRenderer::check_variant(src, vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn a_duration_is_said_in_its_largest_whole_unit_rounded() {
        assert_eq!(in_words(Duration::seconds(3580)), "1 hour");
        assert_eq!(in_words(Duration::minutes(60)), "1 hour");
        assert_eq!(in_words(Duration::minutes(15)), "15 minutes");
        assert_eq!(in_words(Duration::seconds(20)), "1 minute");
        assert_eq!(in_words(Duration::minutes(150)), "3 hours");
        assert_eq!(in_words(Duration::hours(24)), "24 hours");
        assert_eq!(in_words(Duration::days(7)), "7 days");
    }

    #[test]
    fn an_announcement_says_the_live_counts_and_how_long_until_the_strike() {
        let at = DateTime::parse_from_rfc3339("2027-07-04T07:00:00Z")
            .unwrap()
            .to_utc();
        let vars = AnnouncementVars::new(&AnnouncementContext {
            site: "https://picket.example/",
            campaign_id: "strike",
            hashtag: "Strike",
            title: "The Strike",
            at,
            tz: chrono_tz::Europe::Berlin,
            strike_start: Some(at + Duration::hours(1)),
            strikers: 42,
            signatures: 99,
        });
        let texts = [(
            "soon".to_string(),
            vec![
                "#{{ hashtag }} starts in {{ starts_in }} ({{ time }}): {{ strikers }} on strike, \
                 {{ signatures }} signed. {{ campaign_url }}"
                    .to_string(),
            ],
        )];
        let a = Announcements::new(texts.iter().map(|(k, v)| (k.as_str(), v.as_slice()))).unwrap();
        assert_eq!(
            a.render("soon", 0, &vars).unwrap(),
            "#Strike starts in 1 hour (09:00): 42 on strike, 99 signed. https://picket.example/c/strike"
        );
    }
}
