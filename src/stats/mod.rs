//! A campaign's figures for organisers, computed once and shown everywhere: `picket stats`
//! (text, JSON, CSV), `GET /api/v1/campaigns/{id}/stats` and the page `/c/{id}/stats`.
//!
//! [`Report::compute`] is the one aggregation; every view formats the same [`Report`], so
//! the terminal, the API and the page cannot disagree. Aggregates only: nothing here names
//! a person, an address or a handle.

pub mod svg;
pub mod text;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::campaign::{Campaign, Participation};
use crate::domain::Zone;
use crate::store::{
    CensusFigures, DayCount, EngagementBucket, InviteEdge, OutboxState, PostBucket, ReasonCount,
    Store, StoreError,
};

/// How many failure reasons the report lists.
pub const TOP_REASONS: u32 = 5;

/// What can go wrong computing a report.
#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Everything the organiser's views show for one campaign. Its JSON is the stats API's
/// answer; the first six fields are the API's original ones, kept as they were.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Report {
    pub campaign: String,
    /// Confirmed signatures: those that count.
    pub signatures: u64,
    /// Active pledges (the same as `striking.pledged`).
    pub strikers: u64,
    pub accounts_by_network: BTreeMap<String, u64>,
    pub posts: Posts,
    /// Confirmed signatures that came through someone's invitation link.
    pub invitations: u64,
    /// Signatures waiting for their e-mail confirmation.
    pub signatures_awaiting_confirmation: u64,
    pub striking: Striking,
    pub invitation_tree: InvitationTree,
    /// Active pledges per UTC offset now, in minutes east of UTC, west first.
    pub time_zones: Vec<ZoneCount>,
    /// The whole-hour UTC offsets (-12..=14) where it is strike time now.
    pub striking_offsets: Vec<i32>,
    /// Signatures and pledges per UTC day, with running totals.
    pub over_time: Vec<Day>,
    /// Followers at posting time and engagement: `null` until a published post of a
    /// network picket reads (Mastodon API, Bluesky, Nostr) is followed.
    pub reach: Option<Reach>,
    /// The hashtag census: `null` when not configured.
    pub census: Option<CensusFigures>,
    /// This host and its `[[peers]]`: the movement's verified total (`federation`).
    pub hosts: crate::federation::Hosts,
}

/// Posts by state, then by network and hour, and why some did not go out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Posts {
    #[serde(flatten)]
    pub totals: PostCounts,
    /// The most frequent reasons of failed and missed posts, most first.
    pub reasons: Vec<Reason>,
    /// One entry per network and UTC hour of day that has posts.
    pub by_network_hour: Vec<NetworkHour>,
}

/// Posts per outcome. `scheduled` is everything not yet finished (pending, claimed, sending,
/// and posts handed off to a server's own scheduler).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PostCounts {
    pub scheduled: u64,
    pub published: u64,
    pub failed: u64,
    pub missed: u64,
    pub cancelled: u64,
    pub posted_by_hand: u64,
    pub reminded: u64,
}

impl PostCounts {
    fn add(&mut self, state: OutboxState, n: u64) {
        let slot = match state {
            OutboxState::Pending
            | OutboxState::Claimed
            | OutboxState::Sending
            | OutboxState::HandingOff
            | OutboxState::HandedOff => &mut self.scheduled,
            OutboxState::Published => &mut self.published,
            OutboxState::Failed => &mut self.failed,
            OutboxState::Missed => &mut self.missed,
            OutboxState::Cancelled => &mut self.cancelled,
            OutboxState::PostedByHand => &mut self.posted_by_hand,
            OutboxState::Reminded => &mut self.reminded,
        };
        *slot += n;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reason {
    /// `failed` or `missed`.
    pub state: String,
    pub reason: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkHour {
    pub network: String,
    /// 0-23, UTC.
    pub hour: u8,
    #[serde(flatten)]
    pub counts: PostCounts,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Striking {
    /// Active pledges.
    pub pledged: u64,
    /// Pledges whose strike day or window is in progress now, in their own zone.
    pub now: u64,
    /// Pledges whose last strike day or window is over.
    pub done: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InvitationTree {
    /// People (confirmed signers and pledged participants) who came through a link.
    pub invited: u64,
    /// The longest chain of invitations: 0 when nobody was invited.
    pub depth: u32,
    /// People at each depth, from 0 (not invited) down.
    pub levels: Vec<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ZoneCount {
    pub offset_minutes: i32,
    pub participants: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Day {
    pub date: NaiveDate,
    pub signatures: u64,
    pub pledges: u64,
    pub signatures_total: u64,
    pub pledges_total: u64,
}

/// Reach and engagement of published posts, read after posting (see
/// `scheduler::engagement`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reach {
    #[serde(flatten)]
    pub totals: ReachFigures,
    /// One entry per network.
    pub by_network: Vec<NetworkReach>,
    /// One entry per network and UTC hour of day (of the post's slot, as in
    /// `posts.by_network_hour`).
    pub by_network_hour: Vec<NetworkHourReach>,
}

/// Figures of a set of published posts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReachFigures {
    /// Published posts whose engagement is followed.
    pub posts: u64,
    /// Of them, read at least once.
    pub read: u64,
    /// Followers of the posting account at the first read after posting, summed over
    /// posts (an account that posts twice reaches its followers twice); `None` when no
    /// post's follower count is known (Nostr has none): unknown, not 0.
    pub followers: Option<u64>,
    /// Posts whose follower count is known (none on Nostr).
    pub posts_with_followers: u64,
    pub likes: u64,
    /// Reposts, boosts and quotes.
    pub reposts: u64,
    pub replies: u64,
    /// Posts whose last read failed (deleted, account revoked ...).
    pub unreadable: u64,
}

impl ReachFigures {
    fn add(&mut self, b: &EngagementBucket) {
        self.posts += b.posts;
        self.read += b.read;
        if b.with_followers > 0 {
            *self.followers.get_or_insert(0) += b.followers;
        }
        self.posts_with_followers += b.with_followers;
        self.likes += b.likes;
        self.reposts += b.reposts;
        self.replies += b.replies;
        self.unreadable += b.unreadable;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkReach {
    pub network: String,
    #[serde(flatten)]
    pub figures: ReachFigures,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkHourReach {
    pub network: String,
    /// 0-23, UTC.
    pub hour: u8,
    #[serde(flatten)]
    pub figures: ReachFigures,
}

/// Totals, per network and per network and hour from the store's buckets; `None` when
/// no post is followed.
pub fn reach(buckets: &[EngagementBucket]) -> Option<Reach> {
    if buckets.is_empty() {
        return None;
    }
    let mut out = Reach::default();
    let mut by_network: BTreeMap<String, ReachFigures> = BTreeMap::new();
    let mut by_hour: BTreeMap<(String, u8), ReachFigures> = BTreeMap::new();
    for b in buckets {
        out.totals.add(b);
        by_network.entry(b.network.to_string()).or_default().add(b);
        by_hour
            .entry((b.network.to_string(), b.hour))
            .or_default()
            .add(b);
    }
    out.by_network = by_network
        .into_iter()
        .map(|(network, figures)| NetworkReach { network, figures })
        .collect();
    out.by_network_hour = by_hour
        .into_iter()
        .map(|((network, hour), figures)| NetworkHourReach {
            network,
            hour,
            figures,
        })
        .collect();
    Some(out)
}

impl Report {
    /// Count everything for `c` as of `now`.
    pub async fn compute(
        store: &dyn Store,
        c: &Campaign,
        now: DateTime<Utc>,
    ) -> Result<Report, StatsError> {
        let id: &str = &c.id;
        let pledged = store.active_pledge_count(id, now).await?;
        let (mut now_n, mut done, mut zones) = (0, 0, HashMap::<i32, u64>::new());
        let mut after = None;
        loop {
            let page = store.active_pledges(id, after, 1000).await?;
            after = page.last_id();
            for p in page.pledges.iter().filter(|p| p.created_at <= now) {
                let Ok(part) = crate::scheduler::planner::participation(p) else {
                    continue;
                };
                let (is_now, is_done) = strike_state(c, &part, now);
                now_n += u64::from(is_now);
                done += u64::from(is_done);
                *zones.entry(offset_minutes(p.tz, now)).or_default() += 1;
            }
            if after.is_none() {
                break;
            }
        }
        let accounts_by_network = store
            .accounts_by_network(id)
            .await?
            .into_iter()
            .map(|(k, n)| (k.to_string(), n))
            .collect();
        let invitations = store.invite_counts(id).await?.iter().map(|i| i.count).sum();
        let signatures = store.signature_count(id).await?;
        let post_buckets = store.post_buckets(id).await?;
        let posts = posts(
            &post_buckets,
            &store.failure_reasons(id, TOP_REASONS).await?,
        );
        let own = crate::federation::Figures {
            signatures,
            strikers: pledged,
            published: posts.totals.published,
        };
        Ok(Report {
            hosts: crate::federation::hosts(store, id, own).await?,
            campaign: id.to_string(),
            signatures,
            strikers: pledged,
            accounts_by_network,
            posts,
            invitations,
            signatures_awaiting_confirmation: store.unconfirmed_signature_count(id).await?,
            striking: Striking {
                pledged,
                now: now_n,
                done,
            },
            invitation_tree: invitation_tree(&store.invitation_edges(id).await?),
            time_zones: zone_counts(zones),
            striking_offsets: striking_offsets(c, now),
            over_time: over_time(&store.daily_counts(id).await?),
            reach: reach(&store.engagement_buckets(id).await?),
            census: if c.census.is_empty() {
                None
            } else {
                Some(store.census_figures(id).await?)
            },
        })
    }

    /// The report as the API and `picket stats --format json` give it.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// One CSV row per network and UTC hour of day with posts, engagement or census
    /// posts: the posts by state, their reach and engagement (posts of that slot hour),
    /// and the census's posts written in that hour of day (all days together: distinct
    /// authors cannot be summed across hours, so they are in the JSON only). `followers`
    /// is empty where no post's follower count is known (Nostr): unknown, not 0.
    pub fn to_csv(&self) -> Result<String, csv::Error> {
        #[derive(Default)]
        struct Row {
            posts: PostCounts,
            reach: ReachFigures,
            census_posts: i64,
            census_beyond_posts: i64,
        }
        let mut rows: BTreeMap<(String, u8), Row> = BTreeMap::new();
        for r in &self.posts.by_network_hour {
            rows.entry((r.network.clone(), r.hour)).or_default().posts = r.counts;
        }
        for r in self.reach.iter().flat_map(|r| &r.by_network_hour) {
            rows.entry((r.network.clone(), r.hour)).or_default().reach = r.figures;
        }
        for h in self.census.iter().flat_map(|c| &c.hours) {
            use chrono::Timelike;
            let row = rows
                .entry((h.network.to_string(), h.hour.hour() as u8))
                .or_default();
            row.census_posts += h.posts;
            row.census_beyond_posts += h.beyond_posts;
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record([
            "network",
            "hour_utc",
            "scheduled",
            "published",
            "posted_by_hand",
            "reminded",
            "failed",
            "missed",
            "cancelled",
            "followers",
            "likes",
            "reposts",
            "replies",
            "census_posts",
            "census_beyond_posts",
        ])?;
        for ((network, hour), r) in &rows {
            let (c, e) = (&r.posts, &r.reach);
            w.write_record(
                [
                    network.clone(),
                    hour.to_string(),
                    c.scheduled.to_string(),
                    c.published.to_string(),
                    c.posted_by_hand.to_string(),
                    c.reminded.to_string(),
                    c.failed.to_string(),
                    c.missed.to_string(),
                    c.cancelled.to_string(),
                    e.followers.map(|f| f.to_string()).unwrap_or_default(),
                    e.likes.to_string(),
                    e.reposts.to_string(),
                    e.replies.to_string(),
                    r.census_posts.to_string(),
                    r.census_beyond_posts.to_string(),
                ]
                .iter(),
            )?;
        }
        let bytes = w.into_inner().map_err(|e| e.into_error())?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Whether a participation is striking at `now`, and whether its strike is over.
pub fn strike_state(c: &Campaign, p: &Participation, now: DateTime<Utc>) -> (bool, bool) {
    let periods = c.periods(p);
    let striking = periods.iter().any(|s| s.start <= now && now < s.end);
    let done = periods.last().is_some_and(|s| s.end <= now);
    (striking, done)
}

fn offset_minutes(tz: Zone, now: DateTime<Utc>) -> i32 {
    use chrono::Offset;
    now.with_timezone(&tz.tz()).offset().fix().local_minus_utc() / 60
}

fn zone_counts(zones: HashMap<i32, u64>) -> Vec<ZoneCount> {
    let mut v: Vec<ZoneCount> = zones
        .into_iter()
        .map(|(offset_minutes, participants)| ZoneCount {
            offset_minutes,
            participants,
        })
        .collect();
    v.sort_by_key(|z| z.offset_minutes);
    v
}

/// The whole-hour offsets from UTC-12 to UTC+14 where someone in that zone striking on
/// every strike day would be striking now.
pub fn striking_offsets(c: &Campaign, now: DateTime<Utc>) -> Vec<i32> {
    (-12..=14)
        .filter(|h: &i32| {
            // The Etc zones' signs are inverted: Etc/GMT-14 is UTC+14.
            let name = match h {
                0 => "Etc/GMT".to_string(),
                h if *h > 0 => format!("Etc/GMT-{h}"),
                h => format!("Etc/GMT+{}", -h),
            };
            Zone::parse(&name).is_ok_and(|tz| {
                let p = Participation {
                    tz,
                    days: None,
                    every: None,
                };
                strike_state(c, &p, now).0
            })
        })
        .collect()
}

/// The reasons as the public report shows them. They are picket's own words, except
/// that a bug's reason quotes its panic message, which is for the operator's log and
/// `/me`, not for a public page: it is shown as "internal error (a bug in picket)", and
/// such reasons are counted together.
fn public_reasons(reasons: &[ReasonCount]) -> Vec<Reason> {
    let mut out: Vec<Reason> = Vec::new();
    for r in reasons {
        let reason = if r.reason.is_empty() {
            "(no reason recorded)".to_string()
        } else if r.reason.starts_with("internal error (a bug in picket") {
            "internal error (a bug in picket)".to_string()
        } else {
            r.reason.clone()
        };
        let state = r.state.to_string();
        match out
            .iter_mut()
            .find(|o| o.state == state && o.reason == reason)
        {
            Some(o) => o.count += r.count,
            None => out.push(Reason {
                state,
                reason,
                count: r.count,
            }),
        }
    }
    out.sort_by_key(|r| std::cmp::Reverse(r.count));
    out
}

/// Posts totals, by network and hour, and the reasons, from the store's buckets.
pub fn posts(buckets: &[PostBucket], reasons: &[ReasonCount]) -> Posts {
    let mut totals = PostCounts::default();
    let mut by: BTreeMap<(String, u8), PostCounts> = BTreeMap::new();
    for b in buckets {
        totals.add(b.state, b.count);
        by.entry((b.network.to_string(), b.hour))
            .or_default()
            .add(b.state, b.count);
    }
    Posts {
        totals,
        reasons: public_reasons(reasons),
        by_network_hour: by
            .into_iter()
            .map(|((network, hour), counts)| NetworkHour {
                network,
                hour,
                counts,
            })
            .collect(),
    }
}

/// The invitation tree's shape from who-invited-whom. An inviter's code that is nobody in
/// the campaign (a signer not confirmed, a link from elsewhere) counts as a root above the
/// person; a cycle (only possible in edited data) is cut where it closes.
pub fn invitation_tree(edges: &[InviteEdge]) -> InvitationTree {
    let parent: HashMap<&str, Option<&str>> = edges
        .iter()
        .map(|e| (e.code.as_str(), e.invited_by.as_deref()))
        .collect();
    let mut depth_of: HashMap<&str, u32> = HashMap::new();
    for &start in parent.keys() {
        let mut chain = vec![start];
        let mut base = 0;
        let mut cur = start;
        loop {
            match parent.get(cur).copied().flatten() {
                None => break,
                Some(up) => {
                    if let Some(&d) = depth_of.get(up) {
                        base = d + 1;
                        break;
                    }
                    if !parent.contains_key(up) {
                        base = 1;
                        break;
                    }
                    if chain.contains(&up) {
                        break;
                    }
                    chain.push(up);
                    cur = up;
                }
            }
        }
        // `chain` runs from `start` up to the topmost unknown-depth ancestor.
        for (i, code) in chain.iter().rev().enumerate() {
            depth_of.entry(code).or_insert(base + i as u32);
        }
    }
    let depth = depth_of.values().copied().max().unwrap_or(0);
    let mut levels = vec![
        0u64;
        if parent.is_empty() {
            0
        } else {
            depth as usize + 1
        }
    ];
    for d in depth_of.values() {
        levels[*d as usize] += 1;
    }
    InvitationTree {
        invited: edges.iter().filter(|e| e.invited_by.is_some()).count() as u64,
        depth,
        levels,
    }
}

/// Per-day counts with running totals; days are UTC.
pub fn over_time(days: &[DayCount]) -> Vec<Day> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
    let (mut s, mut p) = (0, 0);
    days.iter()
        .filter_map(|d| {
            s += d.signatures;
            p += d.pledges;
            Some(Day {
                date: epoch.checked_add_signed(chrono::Duration::try_days(d.day)?)?,
                signatures: d.signatures,
                pledges: d.pledges,
                signatures_total: s,
                pledges_total: p,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::NetworkKind;

    fn edge(code: &str, by: Option<&str>) -> InviteEdge {
        InviteEdge {
            code: code.into(),
            invited_by: by.map(Into::into),
        }
    }

    #[test]
    fn the_invitation_tree_counts_the_longest_chain_and_each_level() {
        let t = invitation_tree(&[
            edge("a", None),
            edge("b", Some("a")),
            edge("c", Some("b")),
            edge("d", Some("a")),
            edge("e", None),
        ]);
        assert_eq!(t.invited, 3);
        assert_eq!(t.depth, 2);
        assert_eq!(t.levels, vec![2, 2, 1]);
    }

    #[test]
    fn an_unknown_inviter_counts_as_a_root_and_a_cycle_ends() {
        let t = invitation_tree(&[edge("b", Some("gone")), edge("c", Some("b"))]);
        assert_eq!((t.depth, t.levels.clone()), (2, vec![0, 1, 1]));
        let cyc = invitation_tree(&[edge("x", Some("y")), edge("y", Some("x"))]);
        assert_eq!(cyc.invited, 2);
        assert!(cyc.depth <= 1);
        assert_eq!(invitation_tree(&[]), InvitationTree::default());
    }

    #[test]
    fn a_bugs_panic_message_is_not_shown_publicly_and_bugs_count_together() {
        let r = |state, reason: &str, count| ReasonCount {
            state,
            reason: reason.to_string(),
            count,
        };
        let shown = public_reasons(&[
            r(OutboxState::Failed, "rejected (HTTP 422)", 3),
            r(
                OutboxState::Failed,
                "internal error (a bug in picket: index out of bounds at src/x.rs:1)",
                2,
            ),
            r(
                OutboxState::Failed,
                "internal error (a bug in picket: boom)",
                2,
            ),
        ]);
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert_eq!(shown[0].reason, "internal error (a bug in picket)");
        assert_eq!(shown[0].count, 4);
        assert!(shown.iter().all(|s| !s.reason.contains("src/")));
    }

    #[test]
    fn posts_sum_states_by_network_and_hour() {
        let b = |network, hour, state, count| PostBucket {
            network,
            hour,
            state,
            count,
        };
        let p = posts(
            &[
                b(NetworkKind::Sandbox, 3, OutboxState::Published, 2),
                b(NetworkKind::Sandbox, 3, OutboxState::Pending, 1),
                b(NetworkKind::Sandbox, 3, OutboxState::Sending, 1),
                b(NetworkKind::Mastodon, 0, OutboxState::Missed, 4),
                b(NetworkKind::Sandbox, 5, OutboxState::PostedByHand, 1),
            ],
            &[ReasonCount {
                state: OutboxState::Missed,
                reason: String::new(),
                count: 4,
            }],
        );
        assert_eq!(p.totals.published, 2);
        assert_eq!(p.totals.scheduled, 2);
        assert_eq!(p.totals.missed, 4);
        assert_eq!(p.totals.posted_by_hand, 1);
        assert_eq!(p.by_network_hour.len(), 3);
        assert_eq!(p.by_network_hour[0].network, "mastodon");
        assert_eq!(p.by_network_hour[1].counts.scheduled, 2);
        assert_eq!(p.reasons[0].state, "missed");
        assert_eq!(p.reasons[0].reason, "(no reason recorded)");
    }

    #[test]
    fn over_time_keeps_running_totals_on_utc_dates() {
        let d = over_time(&[
            DayCount {
                day: 0,
                signatures: 2,
                pledges: 1,
            },
            DayCount {
                day: 3,
                signatures: 1,
                pledges: 0,
            },
        ]);
        assert_eq!(d[1].date, NaiveDate::from_ymd_opt(1970, 1, 4).unwrap());
        assert_eq!((d[1].signatures_total, d[1].pledges_total), (3, 1));
    }

    #[test]
    fn zone_offsets_follow_daylight_saving_and_sort_west_first() {
        let summer = "2027-07-04T12:00:00Z".parse().unwrap();
        let winter = "2027-01-04T12:00:00Z".parse().unwrap();
        let berlin = Zone::parse("Europe/Berlin").unwrap();
        assert_eq!(offset_minutes(berlin, summer), 120);
        assert_eq!(offset_minutes(berlin, winter), 60);
        let z = zone_counts(HashMap::from([(120, 1), (-300, 2), (345, 1)]));
        let offsets: Vec<i32> = z.iter().map(|z| z.offset_minutes).collect();
        assert_eq!(offsets, vec![-300, 120, 345]);
    }

    /// A campaign striking on 2027-07-04 in each participant's own zone.
    fn one_day() -> Campaign {
        let src = r#"
id = "c"
title = "C"
hashtag = "C"
[strike]
timezone = "participant"
days = ["2027-07-04"]
[[posts]]
name = "n"
when = "start"
template = "t"
[templates]
t = ["On strike #{{ hashtag }}"]
"#;
        crate::campaign::parse_str(src, std::path::Path::new("c.toml")).unwrap()
    }

    fn in_zone(name: &str) -> Participation {
        Participation {
            tz: Zone::parse(name).unwrap(),
            days: None,
            every: None,
        }
    }

    #[test]
    fn striking_now_is_the_strike_day_in_the_participants_own_zone() {
        let c = one_day();
        // 10:30 UTC: the 5th in Kiritimati (UTC+14), the 4th in Berlin, the 3rd in Pago
        // Pago (UTC-11).
        let now = "2027-07-04T10:30:00Z".parse().unwrap();
        assert_eq!(
            strike_state(&c, &in_zone("Europe/Berlin"), now),
            (true, false)
        );
        assert_eq!(
            strike_state(&c, &in_zone("Pacific/Kiritimati"), now),
            (false, true),
            "the 4th ended there at 10:00 UTC"
        );
        assert_eq!(
            strike_state(&c, &in_zone("Pacific/Pago_Pago"), now),
            (false, false),
            "the 4th starts there at 11:00 UTC"
        );
    }

    #[test]
    fn the_strike_runs_where_the_local_date_is_a_strike_day() {
        let c = one_day();
        let now = "2027-07-04T10:30:00Z".parse().unwrap();
        // Local date is the 4th from UTC-10 (00:30) to UTC+13 (23:30).
        assert_eq!(striking_offsets(&c, now), (-10..=13).collect::<Vec<i32>>());
        let before = "2027-07-03T10:30:00Z".parse().unwrap();
        assert_eq!(striking_offsets(&c, before), vec![14]);
    }

    #[test]
    fn the_csv_has_one_row_per_network_and_hour() {
        let r = Report {
            campaign: "c".into(),
            signatures: 0,
            strikers: 0,
            accounts_by_network: BTreeMap::new(),
            posts: posts(
                &[
                    PostBucket {
                        network: NetworkKind::Sandbox,
                        hour: 7,
                        state: OutboxState::Published,
                        count: 3,
                    },
                    PostBucket {
                        network: NetworkKind::Nostr,
                        hour: 23,
                        state: OutboxState::Failed,
                        count: 1,
                    },
                ],
                &[],
            ),
            invitations: 0,
            signatures_awaiting_confirmation: 0,
            striking: Striking::default(),
            invitation_tree: InvitationTree::default(),
            time_zones: vec![],
            striking_offsets: vec![],
            over_time: vec![],
            reach: None,
            census: None,
            hosts: Default::default(),
        };
        let csv = r.to_csv().unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[1], "nostr,23,0,0,0,0,1,0,0,,0,0,0,0,0");
        assert_eq!(lines[2], "sandbox,7,0,3,0,0,0,0,0,,0,0,0,0,0");
    }

    fn bucket(
        network: NetworkKind,
        hour: u8,
        followers: Option<u64>,
        likes: u64,
    ) -> EngagementBucket {
        EngagementBucket {
            network,
            hour,
            posts: 2,
            read: 2,
            with_followers: if followers.is_some() { 2 } else { 0 },
            followers: followers.unwrap_or(0),
            likes,
            reposts: 1,
            replies: 1,
            unreadable: 0,
        }
    }

    #[test]
    fn reach_sums_followers_and_engagement_by_network_and_hour() {
        assert_eq!(reach(&[]), None, "null until a post is followed");
        let r = reach(&[
            bucket(NetworkKind::Mastodon, 9, Some(100), 3),
            bucket(NetworkKind::Mastodon, 10, Some(50), 1),
            bucket(NetworkKind::Nostr, 9, None, 4),
        ])
        .unwrap();
        assert_eq!(r.totals.posts, 6);
        assert_eq!(r.totals.followers, Some(150));
        assert_eq!(
            r.totals.posts_with_followers, 4,
            "Nostr has no follower count"
        );
        assert_eq!(
            (r.totals.likes, r.totals.reposts, r.totals.replies),
            (8, 3, 3)
        );
        assert_eq!(r.by_network.len(), 2);
        assert_eq!(r.by_network[0].network, "mastodon");
        assert_eq!(r.by_network[0].figures.likes, 4);
        assert_eq!(r.by_network_hour.len(), 3);
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["followers"], 150, "totals are flattened: {json}");
        assert_eq!(json["by_network"][1]["network"], "nostr");
        assert!(
            json["by_network"][1]["followers"].is_null(),
            "Nostr's followers are unknown, not 0: {json}"
        );
    }

    #[test]
    fn the_csv_carries_reach_and_the_census_on_the_row_of_their_network_and_hour() {
        let census = crate::store::CensusFigures {
            totals: Default::default(),
            hours: vec![
                crate::store::CensusHour {
                    hour: "2027-07-04T09:00:00Z".parse().unwrap(),
                    network: NetworkKind::Mastodon,
                    posts: 5,
                    authors: 4,
                    beyond_posts: 3,
                    beyond_authors: 2,
                },
                crate::store::CensusHour {
                    hour: "2027-07-05T09:00:00Z".parse().unwrap(),
                    network: NetworkKind::Mastodon,
                    posts: 1,
                    authors: 1,
                    beyond_posts: 1,
                    beyond_authors: 1,
                },
                crate::store::CensusHour {
                    hour: "2027-07-04T22:00:00Z".parse().unwrap(),
                    network: NetworkKind::Bluesky,
                    posts: 2,
                    authors: 2,
                    beyond_posts: 2,
                    beyond_authors: 2,
                },
            ],
        };
        let mut r = empty_report();
        r.posts = posts(
            &[PostBucket {
                network: NetworkKind::Mastodon,
                hour: 9,
                state: OutboxState::Published,
                count: 2,
            }],
            &[],
        );
        r.reach = reach(&[bucket(NetworkKind::Mastodon, 9, Some(100), 3)]);
        r.census = Some(census);
        let csv = r.to_csv().unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert!(
            lines[0].ends_with("followers,likes,reposts,replies,census_posts,census_beyond_posts")
        );
        assert_eq!(lines[1], "bluesky,22,0,0,0,0,0,0,0,,0,0,0,2,2");
        assert_eq!(lines[2], "mastodon,9,0,2,0,0,0,0,0,100,3,1,1,6,4");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn the_text_shows_reach_and_the_census_with_their_figures() {
        let mut r = empty_report();
        r.reach = reach(&[bucket(NetworkKind::Mastodon, 9, Some(100), 3)]);
        r.census = Some(crate::store::CensusFigures {
            totals: crate::store::CensusTotals {
                posts: 7,
                authors: 5,
                beyond_posts: 4,
                beyond_authors: 3,
            },
            hours: vec![],
        });
        let t = text::render(&r);
        assert!(
            t.contains("Reach       100 followers over 2 posts; 3 likes, 1 reposts, 1 replies"),
            "{t}"
        );
        assert!(t.contains("Census      7 posts by 5 authors; beyond this host's participants 4 posts by 3 authors"), "{t}");
        let page = svg::census_beside_posts(&r);
        assert_eq!(page.matches("<rect").count(), 48, "two bars per hour");
    }

    fn empty_report() -> Report {
        Report {
            campaign: "c".into(),
            ..Default::default()
        }
    }
}
