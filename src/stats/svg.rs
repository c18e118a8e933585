//! The stats page's charts: plain SVG strings drawn on the server (no script), every text
//! escaped. The page inlines them, so they use presentation attributes, never `style`.

use std::fmt::Write;

use super::{Report, ZoneCount};

const W: u32 = 600;
const H: u32 = 160;
const BASE: u32 = 130;

/// Text made safe for SVG content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

fn open(title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{t}\"><title>{t}</title>",
        t = escape(title)
    )
}

/// Vertical bars, one per label, each with its value as a tooltip; `marked` bars are drawn
/// in the accent colour.
pub fn bars(title: &str, labels: &[String], values: &[u64], marked: &[bool]) -> String {
    let mut o = open(title);
    let n = values.len().max(1) as u32;
    let max = values.iter().copied().max().unwrap_or(0).max(1);
    let step = W / n;
    let width = step.saturating_sub(2).max(1);
    let _ = write!(
        o,
        "<line x1=\"0\" y1=\"{BASE}\" x2=\"{W}\" y2=\"{BASE}\" stroke=\"#888\"/>"
    );
    for (i, v) in values.iter().enumerate() {
        let h = (*v * u64::from(BASE - 10) / max) as u32;
        let x = i as u32 * step;
        let fill = if marked.get(i).copied().unwrap_or(false) {
            "#c0392b"
        } else {
            "#2c3e50"
        };
        let label = labels.get(i).map(String::as_str).unwrap_or("");
        let _ = write!(
            o,
            "<rect x=\"{x}\" y=\"{}\" width=\"{width}\" height=\"{h}\" fill=\"{fill}\"><title>{}: {v}</title></rect>",
            BASE - h,
            escape(label)
        );
        // Label every bar when few, else every third so labels do not overlap.
        if n <= 12 || i % 3 == 0 {
            let _ = write!(
                o,
                "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#333\">{}</text>",
                x + width / 2,
                BASE + 14,
                escape(label)
            );
        }
    }
    o.push_str("</svg>");
    o
}

/// Two running totals over the days as lines: signatures and strikers.
pub fn over_time(r: &Report) -> String {
    let mut o = open("Signatures and strikers over time");
    let days = &r.over_time;
    let max = days
        .iter()
        .map(|d| d.signatures_total.max(d.pledges_total))
        .max()
        .unwrap_or(0)
        .max(1);
    let n = days.len().max(2) as u32 - 1;
    let point = |i: usize, v: u64| {
        (
            i as u32 * (W - 20) / n + 10,
            BASE - (v * u64::from(BASE - 10) / max) as u32,
        )
    };
    for (colour, pick) in [
        (
            "#2c3e50",
            (|d: &super::Day| d.signatures_total) as fn(&super::Day) -> u64,
        ),
        ("#c0392b", |d: &super::Day| d.pledges_total),
    ] {
        let pts: Vec<String> = days
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let (x, y) = point(i, pick(d));
                format!("{x},{y}")
            })
            .collect();
        let _ = write!(
            o,
            "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"/>",
            pts.join(" ")
        );
    }
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let _ = write!(
            o,
            "<text x=\"10\" y=\"{}\" font-size=\"10\" fill=\"#333\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"end\" fill=\"#333\">{}</text>",
            BASE + 14,
            first.date,
            W - 10,
            BASE + 14,
            last.date
        );
    }
    o.push_str("</svg>");
    o
}

/// Strikers per whole-hour UTC offset from UTC+14 (left) to UTC-12 (right), as the day
/// sweeps west; the offsets where it is strike time now are marked.
pub fn zone_band(zones: &[ZoneCount], striking: &[i32]) -> String {
    let hours: Vec<i32> = (-12..=14).rev().collect();
    let mut values = vec![0u64; hours.len()];
    for z in zones {
        // Half-hour zones (India, Newfoundland) fall into the hour they start in.
        let h = z.offset_minutes.div_euclid(60).clamp(-12, 14);
        values[(14 - h) as usize] += z.participants;
    }
    let labels: Vec<String> = hours
        .iter()
        .map(|h| match h {
            0 => "UTC".to_string(),
            h if *h > 0 => format!("+{h}"),
            h => format!("{h}"),
        })
        .collect();
    let marked: Vec<bool> = hours.iter().map(|h| striking.contains(h)).collect();
    bars(
        "Strikers by time zone, UTC+14 to UTC-12; strike time now in red",
        &labels,
        &values,
        &marked,
    )
}

/// Published and hand-posted notices per UTC hour of one network.
pub fn network_hours(r: &Report, network: &str) -> String {
    let mut values = vec![0u64; 24];
    for h in r
        .posts
        .by_network_hour
        .iter()
        .filter(|h| h.network == network)
    {
        values[h.hour as usize % 24] += h.counts.published + h.counts.posted_by_hand;
    }
    let labels: Vec<String> = (0..24).map(|h| format!("{h:02}")).collect();
    bars(
        &format!("{network}: posts per UTC hour"),
        &labels,
        &values,
        &[],
    )
}

/// Per UTC hour of day (all days together): census posts by authors beyond this host's
/// accounts, and picket's own published and hand-posted notices, every network.
pub fn census_and_posts_by_hour(r: &Report) -> (Vec<u64>, Vec<u64>) {
    use chrono::Timelike;
    let (mut census, mut own) = (vec![0u64; 24], vec![0u64; 24]);
    for h in r.census.iter().flat_map(|c| &c.hours) {
        census[h.hour.hour() as usize % 24] += u64::try_from(h.beyond_posts).unwrap_or(0);
    }
    for h in &r.posts.by_network_hour {
        own[h.hour as usize % 24] += h.counts.published + h.counts.posted_by_hand;
    }
    (census, own)
}

/// The census beside picket's own posts: two bars per UTC hour of day, the census
/// (beyond this host's accounts) dark, picket's posts red.
pub fn census_beside_posts(r: &Report) -> String {
    let (census, own) = census_and_posts_by_hour(r);
    let mut o = open("Hashtag census beside picket's own posts, per UTC hour");
    let max = census.iter().chain(&own).copied().max().unwrap_or(0).max(1);
    let step = W / 24;
    let width = (step.saturating_sub(2) / 2).max(1);
    let _ = write!(
        o,
        "<line x1=\"0\" y1=\"{BASE}\" x2=\"{W}\" y2=\"{BASE}\" stroke=\"#888\"/>"
    );
    for hour in 0..24usize {
        let x = hour as u32 * step;
        for (j, (values, fill, what)) in [
            (&census, "#2c3e50", "census posts beyond this host"),
            (&own, "#c0392b", "picket's posts"),
        ]
        .into_iter()
        .enumerate()
        {
            let v = values[hour];
            let h = (v * u64::from(BASE - 10) / max) as u32;
            let _ = write!(
                o,
                "<rect x=\"{}\" y=\"{}\" width=\"{width}\" height=\"{h}\" fill=\"{fill}\"><title>{hour:02}h {what}: {v}</title></rect>",
                x + j as u32 * width,
                BASE - h,
            );
        }
        if hour % 3 == 0 {
            let _ = write!(
                o,
                "<text x=\"{}\" y=\"{}\" font-size=\"10\" text-anchor=\"middle\" fill=\"#333\">{hour:02}</text>",
                x + width,
                BASE + 14,
            );
        }
    }
    o.push_str("</svg>");
    o
}

/// People at each depth of the invitation tree.
pub fn tree_depth(r: &Report) -> String {
    let labels: Vec<String> = (0..r.invitation_tree.levels.len())
        .map(|d| d.to_string())
        .collect();
    bars(
        "People at each depth of the invitation tree",
        &labels,
        &r.invitation_tree.levels,
        &[],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_in_a_chart_is_escaped() {
        let s = bars("<b>&\"", &["<x>".into()], &[1], &[]);
        assert!(!s.contains("<b>"));
        assert!(s.contains("&lt;b&gt;&amp;&quot;"));
        assert!(s.contains("&lt;x&gt;"));
        assert!(!s.contains("style"));
    }

    #[test]
    fn the_zone_band_runs_from_plus_14_to_minus_12_and_marks_strike_time() {
        let s = zone_band(
            &[
                ZoneCount {
                    offset_minutes: 840,
                    participants: 3,
                },
                ZoneCount {
                    offset_minutes: 330,
                    participants: 1,
                },
            ],
            &[14],
        );
        let rects: Vec<&str> = s.split("<rect").skip(1).collect();
        assert_eq!(rects.len(), 27);
        assert!(rects[0].contains("#c0392b") && rects[0].contains("+14: 3"));
        assert!(rects[9].contains("+5: 1"), "UTC+5:30 counts in +5");
        assert!(rects[26].contains("-12: 0") && !rects[26].contains("#c0392b"));
    }

    #[test]
    fn bar_heights_scale_to_the_largest_value() {
        let s = bars("t", &["a".into(), "b".into()], &[0, 4], &[]);
        assert!(s.contains("height=\"0\""));
        assert!(s.contains(&format!("height=\"{}\"", BASE - 10)));
    }
}
