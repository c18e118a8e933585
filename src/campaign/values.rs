//! The values campaign files are written in, parsed and printed: durations (`"1h30m"`),
//! dates (`"2027-07-04"`), a post's `when` (`"every 1h"`), and the "did you mean" hint for
//! a misspelt word. Validation, schedules, the web forms and the command line all read
//! values through these, so each value has one spelling and one error message.

use chrono::{Duration, NaiveDate, NaiveTime};

use super::When;

/// The longest duration picket reads, all parts together: a year covers any lead time,
/// window or cadence a campaign needs, and keeps every instant computed from one far
/// inside the range of dates (a cadence of 960 × "100000d" once overflowed them).
pub const MAX_DURATION: Duration = Duration::days(366);

/// `"15m"`, `"1h"`, `"1h30m"`, `"7d"`: a positive duration in days, hours and minutes, at
/// most [`MAX_DURATION`] in all.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let form =
        "write a number and a unit, e.g. \"15m\", \"1h\", \"1h30m\", \"7d\" (units: m, h, d)";
    let shown = shorten(s);
    if t.starts_with('-') {
        return Err(format!(
            "\"{shown}\" is negative: durations must be positive; {form}"
        ));
    }
    if t.is_empty() {
        return Err(format!("empty duration: {form}"));
    }
    let too_long = || {
        format!(
            "\"{shown}\" is too long a duration: at most {} in all",
            fmt_duration(MAX_DURATION)
        )
    };
    let mut minutes: i64 = 0;
    let mut digits = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: i64 = match c {
            'm' => 1,
            'h' => 60,
            'd' => 24 * 60,
            _ => return Err(format!("\"{shown}\" is not a duration: {form}")),
        };
        if digits.is_empty() {
            return Err(format!("\"{shown}\" is not a duration: {form}"));
        }
        // Many digits parse as an overflow, not as a number: that is a long duration too.
        let n: i64 = digits.parse().map_err(|_| too_long())?;
        minutes = n
            .checked_mul(unit)
            .and_then(|m| minutes.checked_add(m))
            .filter(|m| *m <= MAX_DURATION.num_minutes())
            .ok_or_else(too_long)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(format!("\"{shown}\" has no unit: {form}"));
    }
    if minutes <= 0 {
        return Err(format!(
            "\"{shown}\" is zero: durations must be positive; {form}"
        ));
    }
    Ok(Duration::minutes(minutes))
}

/// `s` cut to a length fit for a message: an error must not echo 60 KB back.
fn shorten(s: &str) -> String {
    const MAX: usize = 40;
    if s.chars().count() <= MAX {
        return s.to_string();
    }
    let head: String = s.chars().take(MAX).collect();
    format!("{head}…")
}

/// The shortest way to write `d` in the campaign syntax, e.g. `1h30m`.
pub fn fmt_duration(d: Duration) -> String {
    let mut m = d.num_minutes();
    if m == 0 {
        return "0m".to_string();
    }
    let mut s = String::new();
    if m < 0 {
        s.push('-');
        m = -m;
    }
    for (unit, len) in [("d", 1440), ("h", 60), ("m", 1)] {
        if m >= len {
            s.push_str(&format!("{}{unit}", m / len));
            m %= len;
        }
    }
    s
}

const WHEN_FORMS: &str = "\"start\", \"end\", \"every 1h\", \"before 7d\" or \"daily 09:00\"";

/// Parse a post's `when`.
pub fn parse_when(s: &str) -> Result<When, String> {
    let t = s.trim();
    let (word, arg) = match t.split_once(char::is_whitespace) {
        Some((w, a)) => (w, Some(a.trim())),
        None => (t, None),
    };
    match (word, arg) {
        ("start", None) => Ok(When::Start),
        ("end", None) => Ok(When::End),
        ("every", Some(a)) => parse_duration(a)
            .map(When::Every)
            .map_err(|e| format!("when \"{s}\": {e}")),
        ("before", Some(a)) => parse_duration(a).map(When::Before).map_err(|e| {
            format!("when \"{s}\": {e}; the post goes out this long before the strike starts")
        }),
        ("daily", Some(a)) => parse_time(a)
            .map(When::Daily)
            .map_err(|e| format!("when \"{s}\": {e}")),
        ("start" | "end", Some(_)) => Err(format!(
            "when \"{s}\": \"{word}\" takes no argument; use one of {WHEN_FORMS}"
        )),
        ("every" | "before" | "daily", None) => Err(format!(
            "when \"{s}\" needs an argument; use one of {WHEN_FORMS}"
        )),
        _ => {
            let hint = did_you_mean(
                word,
                ["start", "end", "every", "before", "daily"].into_iter(),
            );
            Err(format!(
                "unknown when \"{s}\"{hint}; use one of {WHEN_FORMS}"
            ))
        }
    }
}

/// `HH:MM`, 24-hour.
fn parse_time(s: &str) -> Result<NaiveTime, String> {
    let form = "write a local time of day as HH:MM, e.g. \"09:00\"";
    let Some((h, m)) = s.split_once(':') else {
        return Err(format!("\"{s}\" is not a time: {form}"));
    };
    let (Ok(h), Ok(m)) = (h.parse::<u32>(), m.parse::<u32>()) else {
        return Err(format!("\"{s}\" is not a time: {form}"));
    };
    if h > 23 {
        return Err(format!(
            "{s} is not a time of day: hours go from 00 to 23 (a strike day ends at 24:00)"
        ));
    }
    if m > 59 {
        return Err(format!(
            "{s} is not a time of day: minutes go from 00 to 59"
        ));
    }
    Ok(NaiveTime::from_hms_opt(h, m, 0).expect("checked"))
}

/// `YYYY-MM-DD`, with a reason when the date does not exist.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let form = format!("\"{s}\" is not a date: write it as YYYY-MM-DD, e.g. \"2027-07-04\"");
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts[..] else {
        return Err(form);
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(form);
    }
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i32>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return Err(form);
    };
    if !(1..=12).contains(&m) {
        return Err(format!("date {s} does not exist: months go from 01 to 12"));
    }
    if let Some(date) = NaiveDate::from_ymd_opt(y, m, d) {
        return Ok(date);
    }
    let first = NaiveDate::from_ymd_opt(y, m, 1).expect("valid month");
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .expect("in range");
    let len = (next - first).num_days();
    let month = first.format("%B");
    if m == 2 && d == 29 {
        Err(format!("date {s} does not exist ({y} is not a leap year)"))
    } else {
        Err(format!(
            "date {s} does not exist ({month} {y} has {len} days)"
        ))
    }
}

/// `; did you mean "X"?` for the nearest candidate, or nothing when none is close.
pub(crate) fn did_you_mean<'c>(word: &str, candidates: impl Iterator<Item = &'c str>) -> String {
    let w = word.to_lowercase();
    let best = candidates
        .map(|c| (edit_distance(&w, &c.to_lowercase()), c))
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, c)) if d <= (w.chars().count() / 3).max(2) => format!("; did you mean \"{c}\"?"),
        _ => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_combine_units() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::minutes(90)));
        assert_eq!(parse_duration("7d"), Ok(Duration::days(7)));
        assert!(parse_duration("-30m").unwrap_err().contains("negative"));
        assert!(parse_duration("0m").unwrap_err().contains("zero"));
        assert!(parse_duration("15").unwrap_err().contains("no unit"));
        assert_eq!(fmt_duration(Duration::minutes(90)), "1h30m");
    }

    #[test]
    fn a_duration_is_bounded_in_total_not_only_per_part() {
        // Each part under the old per-part cap; together far past the range of dates.
        let many = "100000d".repeat(960);
        let err = parse_duration(&many).unwrap_err();
        assert!(err.contains("too long a duration"), "{err}");
        assert!(
            err.len() < 200,
            "the message does not echo the input: {err}"
        );
        assert_eq!(parse_duration("366d"), Ok(MAX_DURATION));
        assert!(parse_duration("366d1m").is_err());
        assert!(parse_duration("365d24h").is_ok());
        assert!(parse_duration("99999999999999999999999m").is_err());
        assert!(parse_duration("9223372036854775807d").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("1h 30m").is_err());
    }

    #[test]
    fn february_29_of_a_common_year_says_why() {
        assert_eq!(
            parse_date("2027-02-29").unwrap_err(),
            "date 2027-02-29 does not exist (2027 is not a leap year)"
        );
        assert!(parse_date("2028-02-29").is_ok());
        assert!(
            parse_date("2027-06-31")
                .unwrap_err()
                .contains("June 2027 has 30 days")
        );
    }

    #[test]
    fn a_misspelt_zone_gets_a_suggestion() {
        let hint = did_you_mean(
            "America/NewYork",
            chrono_tz::TZ_VARIANTS.iter().map(|t| t.name()),
        );
        assert_eq!(hint, "; did you mean \"America/New_York\"?");
    }
}
