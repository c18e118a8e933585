//! When a campaign's posts fall for one participant: strike days in time zones, and the
//! [`Slot`]s of every post rule, as UTC instants.
//!
//! # Local times that do not exist or happen twice
//!
//! Wall-clock times are turned into instants following RFC 5545 §3.3.5:
//!
//! * a local time inside a daylight-saving gap (e.g. 02:30 on a spring-forward night in
//!   New York) is read with the UTC offset in effect *before* the gap, so it lands as far
//!   past the gap's start as it was meant to be: 02:30 EST = 03:30 EDT;
//! * a local time that happens twice (fall-back) is the *first* occurrence;
//! * a strike day starts at local midnight; where midnight itself does not exist (zones
//!   that switch at 00:00, e.g. America/Santiago, America/Havana) the day starts at the
//!   first instant after the gap (01:00 local). A day therefore lasts 23 or 25 hours when
//!   the clocks change during it, and `every 1h` yields 23 or 25 slots.
//!
//! Nothing here reads the clock: callers pass instants and zones.
//!
//! # Bounds
//!
//! A participation comes from a stranger's form or a stored row, so every instant computed
//! from one is computed with checked arithmetic: a slot that would fall outside the range
//! of dates is left out, never a panic. [`Campaign::check_participation`] refuses cadences
//! outside what the campaign offers long before that.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use chrono::{LocalResult, Offset, TimeZone};
use chrono_tz::Tz;

use super::values::fmt_duration;
use super::{Campaign, Participation, PostRule, Slot, StrikeTime, When};

/// A `start` or `daily` slot stays publishable until its strike day ends, but no longer
/// than this: a "today I'm on strike" notice sent in the evening reads as a mistake.
pub const MAX_DAY_POST_WINDOW: Duration = Duration::hours(6);

/// How long the `end` ("I'm back") post stays publishable.
pub const END_POST_WINDOW: Duration = Duration::hours(24);

/// One strike day (or window) as a participant lives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StrikePeriod {
    /// 1-based among the participant's chosen days.
    pub day: u32,
    /// The campaign day (for windows: the UTC date the window starts on).
    pub date: NaiveDate,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// The instant a local wall-clock time means in `tz` (rules in the module docs).
pub fn resolve_local(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => {
            let gap_end = first_instant_at_or_after(tz, local);
            let before = tz
                .offset_from_utc_datetime(&(gap_end - Duration::seconds(1)).naive_utc())
                .fix();
            (local - Duration::seconds(i64::from(before.local_minus_utc()))).and_utc()
        }
    }
}

/// The instant `date` begins in `tz`: local midnight, or the first instant after a gap
/// that swallows midnight.
pub fn day_start(tz: Tz, date: NaiveDate) -> DateTime<Utc> {
    let midnight = date.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
        LocalResult::None => first_instant_at_or_after(tz, midnight),
    }
}

/// The first instant whose local time in `tz` is at or after `local`. Only used around a
/// gap, where local time only moves forward. UTC offsets lie within -12h..+14h, so the
/// answer is within that distance of `local` read as UTC.
fn first_instant_at_or_after(tz: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    // Whole seconds: zone transitions fall on them, and the answer must be exact.
    let naive = local.and_utc().timestamp();
    let (mut lo, mut hi) = (naive - 15 * 3600, naive + 13 * 3600);
    let at = |secs: i64| DateTime::<Utc>::from_timestamp(secs, 0).expect("in range");
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if at(mid).with_timezone(&tz).naive_local() >= local {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    at(hi)
}

/// A participant's choice the campaign does not allow; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChoiceError(String);

impl Campaign {
    /// The dates a participant can choose (for windows: the UTC date each starts on).
    pub fn days(&self) -> Vec<NaiveDate> {
        match &self.strike.when {
            StrikeTime::ParticipantDays(d) | StrikeTime::ZonedDays { days: d, .. } => d.clone(),
            StrikeTime::Windows(w) => w.iter().map(|w| w.start.date_naive()).collect(),
        }
    }

    /// Is this a choice the campaign allows? The message says what to change.
    pub fn check_participation(&self, p: &Participation) -> Result<(), ChoiceError> {
        self.check_choice(p).map_err(ChoiceError)
    }

    fn check_choice(&self, p: &Participation) -> Result<(), String> {
        let all = self.days();
        if let Some(days) = &p.days {
            let mut seen = Vec::new();
            for d in days {
                if !all.contains(d) {
                    let list: Vec<String> = all.iter().map(ToString::to_string).collect();
                    return Err(format!(
                        "{d} is not a day of the {}; choose among {}",
                        self.title,
                        list.join(", ")
                    ));
                }
                if seen.contains(d) {
                    return Err(format!("{d} is chosen twice"));
                }
                seen.push(*d);
            }
            if (days.len() as u32) < self.strike.min_days {
                return Err(format!(
                    "{} asks for at least {} of its {} days; {} chosen",
                    self.title,
                    self.strike.min_days,
                    all.len(),
                    days.len()
                ));
            }
        }
        if let Some(every) = p.every {
            if every < self.min_interval {
                return Err(format!(
                    "posting every {} is more often than the {} allows: choose {} or more",
                    fmt_duration(every),
                    self.title,
                    fmt_duration(self.min_interval)
                ));
            }
            let longest = self.longest_cadence();
            if every > longest {
                return Err(format!(
                    "posting every {} is less often than once per strike {}: choose {} or less",
                    fmt_duration(every),
                    if matches!(self.strike.when, StrikeTime::Windows(_)) {
                        "window"
                    } else {
                        "day"
                    },
                    fmt_duration(longest)
                ));
            }
        }
        Ok(())
    }

    /// The slowest cadence a participant may choose: once per strike day (24h), or per
    /// longest window. Anything slower would post once a period anyway, and an absurd
    /// value must not reach the arithmetic of [`Campaign::slots`].
    pub fn longest_cadence(&self) -> Duration {
        match &self.strike.when {
            StrikeTime::Windows(ws) => ws
                .iter()
                .map(|w| w.end - w.start)
                .max()
                .unwrap_or(Duration::hours(24))
                .max(self.min_interval),
            _ => Duration::hours(24).max(self.min_interval),
        }
    }

    /// The participant's strike days (or windows), in order.
    pub fn periods(&self, p: &Participation) -> Vec<StrikePeriod> {
        let chosen = |d: &NaiveDate| p.days.as_ref().is_none_or(|days| days.contains(d));
        let spans: Vec<(NaiveDate, DateTime<Utc>, DateTime<Utc>)> = match &self.strike.when {
            StrikeTime::ParticipantDays(days) => days
                .iter()
                .filter(|d| chosen(d))
                .filter_map(|d| {
                    Some((
                        *d,
                        day_start(p.tz.tz(), *d),
                        day_start(p.tz.tz(), d.succ_opt()?),
                    ))
                })
                .collect(),
            StrikeTime::ZonedDays { tz, days } => days
                .iter()
                .filter(|d| chosen(d))
                .filter_map(|d| Some((*d, day_start(*tz, *d), day_start(*tz, d.succ_opt()?))))
                .collect(),
            StrikeTime::Windows(ws) => ws
                .iter()
                .filter(|w| chosen(&w.start.date_naive()))
                .map(|w| (w.start.date_naive(), w.start, w.end))
                .collect(),
        };
        spans
            .into_iter()
            .enumerate()
            .map(|(i, (date, start, end))| StrikePeriod {
                day: i as u32 + 1,
                date,
                start,
                end,
            })
            .collect()
    }

    /// When the participant's strike starts and ends; `None` if they chose no days.
    pub fn strike_span(&self, p: &Participation) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        let periods = self.periods(p);
        Some((periods.first()?.start, periods.last()?.end))
    }

    /// Every post picket would make for this participant, sorted by instant (posts due at
    /// the same instant keep the order of `[[posts]]`). Does not check the participation:
    /// call [`Campaign::check_participation`] first.
    pub fn slots(&self, p: &Participation) -> Vec<Slot> {
        let periods = self.periods(p);
        let (Some(first), Some(last)) = (periods.first(), periods.last()) else {
            return Vec::new();
        };
        let days_total = periods.len() as u32;
        // Local times of `daily` posts read in the zone the days are read in.
        let local_tz = match &self.strike.when {
            StrikeTime::ZonedDays { tz, .. } => *tz,
            _ => p.tz.tz(),
        };
        let mut out = Vec::new();
        for rule in &self.posts {
            let mut push = |at: DateTime<Utc>, default_window: Duration, day: u32| {
                if let Some(slot) = self.slot(
                    rule,
                    at,
                    rule.window.unwrap_or(default_window),
                    day,
                    days_total,
                ) {
                    out.push(slot);
                }
            };
            match rule.when {
                When::Start => {
                    for pd in &periods {
                        push(
                            pd.start,
                            (pd.end - pd.start).min(MAX_DAY_POST_WINDOW),
                            pd.day,
                        );
                    }
                }
                When::Daily(time) => {
                    for pd in &periods {
                        let mut date = pd.start.with_timezone(&local_tz).date_naive();
                        loop {
                            let at = resolve_local(local_tz, date.and_time(time));
                            if at >= pd.end {
                                break;
                            }
                            if at >= pd.start {
                                push(at, (pd.end - at).min(MAX_DAY_POST_WINDOW), pd.day);
                            }
                            let Some(next) = date.succ_opt() else { break };
                            date = next;
                        }
                    }
                }
                When::Every(interval) => {
                    let interval = match (rule.optional, p.every) {
                        (true, None) => continue,
                        (_, Some(chosen)) => chosen,
                        (false, None) => interval,
                    };
                    if interval <= Duration::zero() {
                        continue;
                    }
                    for pd in &periods {
                        let mut at = Some(pd.start);
                        while let Some(t) = at.filter(|t| *t < pd.end) {
                            push(t, interval, pd.day);
                            at = t.checked_add_signed(interval);
                        }
                    }
                }
                When::Before(lead) => {
                    if let Some(at) = first.start.checked_sub_signed(lead) {
                        push(at, lead, 0);
                    }
                }
                When::End => push(last.end, END_POST_WINDOW, days_total),
            }
        }
        out.sort_by_key(|s| s.at);
        out
    }

    /// The slot at `at`; `None` when its window would end past the range of dates.
    fn slot(
        &self,
        rule: &PostRule,
        at: DateTime<Utc>,
        window: Duration,
        day: u32,
        days_total: u32,
    ) -> Option<Slot> {
        Some(Slot {
            key: format!(
                "{}/{}@{}",
                self.id,
                rule.name,
                at.to_rfc3339_opts(SecondsFormat::Secs, true)
            )
            .into(),
            post: rule.name.as_str().into(),
            template: rule.template.as_str().into(),
            at,
            window_end: at.checked_add_signed(window)?,
            day,
            days_total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Zone;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_nonexistent_local_time_is_read_with_the_offset_before_the_gap() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let local = NaiveDate::from_ymd_opt(2027, 3, 14)
            .unwrap()
            .and_hms_opt(2, 30, 0)
            .unwrap();
        assert_eq!(resolve_local(tz, local), utc("2027-03-14T07:30:00Z"));
    }

    /// A campaign of one participant day with every kind of post, for cadences.
    fn one_day_campaign() -> Campaign {
        let src = r#"
id = "c"
title = "C"
hashtag = "C"
[strike]
timezone = "participant"
days = ["2027-07-04"]
[[posts]]
name = "before"
when = "before 7d"
template = "t"
[[posts]]
name = "often"
when = "every 1h"
template = "t"
optional = true
[[posts]]
name = "end"
when = "end"
template = "t"
[templates]
t = ["On strike #{{ hashtag }}"]
"#;
        crate::campaign::parse_str(src, std::path::Path::new("c.toml")).unwrap()
    }

    #[test]
    fn a_cadence_past_the_end_of_the_calendar_leaves_its_slot_out_without_a_panic() {
        // Issue 8: a stored pledge with such a cadence (accepted before durations were
        // bounded) made the planner panic on `DateTime + TimeDelta`, at every restart. Its
        // window cannot end inside the calendar, so that slot is left out (the planner
        // records why: `check_participation` refuses the cadence); the others stay.
        let c = one_day_campaign();
        let p = Participation {
            tz: Zone::UTC,
            days: None,
            every: Some(Duration::days(96_000_000)),
        };
        let slots = c.slots(&p);
        assert!(slots.iter().all(|s| &*s.post != "often"), "{slots:?}");
        assert!(slots.iter().any(|s| &*s.post == "before"), "{slots:?}");
        assert!(slots.iter().any(|s| &*s.post == "end"), "{slots:?}");
        assert!(c.check_participation(&p).is_err());
    }

    #[test]
    fn an_ambiguous_local_time_is_its_first_occurrence() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let local = NaiveDate::from_ymd_opt(2027, 11, 7)
            .unwrap()
            .and_hms_opt(1, 30, 0)
            .unwrap();
        assert_eq!(resolve_local(tz, local), utc("2027-11-07T05:30:00Z"));
    }

    fn campaign(strike: &str) -> Campaign {
        let src = format!(
            r##"id = "t"
title = "T"
hashtag = "T"
networks = ["sandbox"]
{strike}
[[posts]]
name = "soon"
when = "before 7d"
template = "n"
[[posts]]
name = "hourly"
when = "every 1h"
template = "n"
optional = true
[templates]
n = ["#{{{{ hashtag }}}}"]
"##
        );
        super::super::parse_str(&src, std::path::Path::new("t.toml")).unwrap()
    }

    fn days() -> Campaign {
        campaign("[strike]\ntimezone = \"participant\"\ndays = [\"2027-07-04\", \"2027-07-05\"]\n")
    }

    fn every(d: Duration) -> Participation {
        Participation {
            tz: Zone::UTC,
            days: None,
            every: Some(d),
        }
    }

    #[test]
    fn a_cadence_slower_than_once_a_strike_day_is_refused() {
        let c = days();
        assert!(c.check_participation(&every(Duration::hours(24))).is_ok());
        let err = c
            .check_participation(&every(Duration::hours(25)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("once per strike day"), "{err}");
        let absurd = Duration::days(100_000 * 960);
        assert!(c.check_participation(&every(absurd)).is_err());
    }

    #[test]
    fn a_cadence_may_be_as_slow_as_the_longest_window() {
        let c = campaign(
            "[strike]\nwindows = [{ start = \"2027-07-04T00:00:00Z\", end = \"2027-07-06T00:00:00Z\" }]\n",
        );
        assert!(c.check_participation(&every(Duration::hours(48))).is_ok());
        let err = c
            .check_participation(&every(Duration::hours(49)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("once per strike window"), "{err}");
    }

    #[test]
    fn slots_of_an_absurd_cadence_are_computed_without_overflowing() {
        // As a stored row that skipped the checks would have it: the slots that fit the
        // range of dates (a repeating slot's window is its interval: none here), no panic.
        let c = days();
        let slots = c.slots(&every(Duration::days(100_000 * 960)));
        let names: Vec<&str> = slots.iter().map(|s| &*s.post).collect();
        assert_eq!(names, ["soon"]);
    }

    #[test]
    fn a_lead_reaching_before_the_first_date_leaves_that_slot_out() {
        let mut c = days();
        c.posts[0].when = When::Before(Duration::MAX);
        let slots = c.slots(&every(Duration::hours(1)));
        assert!(slots.iter().all(|s| &*s.post != "soon"), "{slots:?}");
        assert_eq!(slots.len(), 48);
    }
}
