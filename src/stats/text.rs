//! `picket stats --format text`: the [`Report`] as tables with sparklines for a terminal.

use std::fmt::Write;

use super::Report;

const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// One character per value, scaled to the largest: `▁` for nothing, `█` for the most.
pub fn sparkline(values: &[u64]) -> String {
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if max == 0 {
                BARS[0]
            } else {
                // Round up so any non-zero value rises above the empty bar.
                let i = (v * (BARS.len() as u64 - 1)).div_ceil(max);
                BARS[i as usize]
            }
        })
        .collect()
}

/// A count the network may not give: `unknown` then, never 0.
fn count_or_unknown(n: Option<u64>) -> String {
    n.map_or_else(|| "unknown".into(), |n| n.to_string())
}

/// The whole report as text.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let p = &r.posts.totals;
    let _ = writeln!(o, "Campaign {}", r.campaign);
    let _ = writeln!(
        o,
        "Signatures  {} counted, {} awaiting confirmation",
        r.signatures, r.signatures_awaiting_confirmation
    );
    let _ = writeln!(
        o,
        "Strikers    {} pledged, {} striking now, {} done",
        r.striking.pledged, r.striking.now, r.striking.done
    );
    if !r.hosts.peers.is_empty() {
        let h = &r.hosts;
        let _ = writeln!(
            o,
            "Hosts       {} signatures, {} strikers, {} published across {} host(s); {} peer(s) listed (`picket peers {}`)",
            h.signatures,
            h.strikers,
            h.published,
            h.counted_hosts,
            h.peers.len(),
            r.campaign
        );
    }
    if !r.over_time.is_empty() {
        let sig: Vec<u64> = r.over_time.iter().map(|d| d.signatures_total).collect();
        let pl: Vec<u64> = r.over_time.iter().map(|d| d.pledges_total).collect();
        let _ = writeln!(
            o,
            "Over time   signatures {}  strikers {}  ({} to {})",
            sparkline(&sig),
            sparkline(&pl),
            r.over_time[0].date,
            r.over_time[r.over_time.len() - 1].date
        );
    }
    let _ = writeln!(o, "\nAccounts by network");
    for (net, n) in &r.accounts_by_network {
        let _ = writeln!(o, "  {net:<12} {n:>8}");
    }
    let _ = writeln!(
        o,
        "\nPosts       {} scheduled, {} published by picket, {} posted by hand, {} reminded (not confirmed), {} failed, {} missed, {} cancelled",
        p.scheduled, p.published, p.posted_by_hand, p.reminded, p.failed, p.missed, p.cancelled
    );
    if !r.posts.reasons.is_empty() {
        let _ = writeln!(o, "Top reasons");
        for x in &r.posts.reasons {
            let _ = writeln!(o, "  {:>6} {:<7} {}", x.count, x.state, x.reason);
        }
    }
    let mut networks: Vec<&str> = r
        .posts
        .by_network_hour
        .iter()
        .map(|h| h.network.as_str())
        .collect();
    networks.dedup();
    if !networks.is_empty() {
        let _ = writeln!(
            o,
            "\nPosts by UTC hour (published + by hand)  00h{}23h",
            " ".repeat(18)
        );
        for net in networks {
            let mut hours = [0u64; 24];
            for h in r.posts.by_network_hour.iter().filter(|h| h.network == net) {
                hours[h.hour as usize % 24] += h.counts.published + h.counts.posted_by_hand;
            }
            let _ = writeln!(
                o,
                "  {net:<12} {:>8}  {}",
                hours.iter().sum::<u64>(),
                sparkline(&hours)
            );
        }
    }
    let t = &r.invitation_tree;
    let _ = writeln!(
        o,
        "\nInvitations {} signatures through a link; {} people invited, tree depth {}",
        r.invitations, t.invited, t.depth
    );
    if !r.time_zones.is_empty() {
        let _ = writeln!(o, "\nStrikers by UTC offset");
        for z in &r.time_zones {
            let (sign, m) = if z.offset_minutes < 0 {
                ('-', -z.offset_minutes)
            } else {
                ('+', z.offset_minutes)
            };
            let _ = writeln!(
                o,
                "  UTC{sign}{:02}:{:02} {:>8}",
                m / 60,
                m % 60,
                z.participants
            );
        }
    }
    match &r.reach {
        Some(x) => {
            let _ = writeln!(
                o,
                "\nReach       {} followers over {} posts; {} likes, {} reposts, {} replies ({} of {} posts read, {} unreadable)",
                count_or_unknown(x.totals.followers),
                x.totals.posts_with_followers,
                x.totals.likes,
                x.totals.reposts,
                x.totals.replies,
                x.totals.read,
                x.totals.posts,
                x.totals.unreadable
            );
            for n in &x.by_network {
                let f = &n.figures;
                let _ = writeln!(
                    o,
                    "  {:<12} {:>8} followers {:>6} likes {:>6} reposts {:>6} replies",
                    n.network,
                    count_or_unknown(f.followers),
                    f.likes,
                    f.reposts,
                    f.replies
                );
            }
        }
        None => {
            let _ = writeln!(o, "\nReach       not measured yet");
        }
    }
    match &r.census {
        Some(c) => {
            let t = &c.totals;
            let _ = writeln!(
                o,
                "Census      {} posts by {} authors; beyond this host's participants {} posts by {} authors",
                t.posts, t.authors, t.beyond_posts, t.beyond_authors
            );
            let (census, own) = super::svg::census_and_posts_by_hour(r);
            let _ = writeln!(
                o,
                "  by UTC hour  census {}  picket {}",
                sparkline(&census),
                sparkline(&own)
            );
        }
        None => {
            let _ = writeln!(o, "Census      not configured");
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sparkline_scales_to_the_largest_value_and_shows_any_non_zero() {
        assert_eq!(sparkline(&[0, 1, 7, 14]), "▁▂▅█");
        assert_eq!(sparkline(&[0, 1000, 1]), "▁█▂");
        assert_eq!(sparkline(&[0, 0]), "▁▁");
        assert_eq!(sparkline(&[]), "");
    }
}
