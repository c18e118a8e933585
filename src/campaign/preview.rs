//! Every post picket would make for one participant, rendered per network and measured:
//! what `picket campaign preview` prints and what a striker sees before pledging.
//!
//! Values specific to a participant (invitation link, name, accounts elsewhere) are the
//! sample stand-ins from [`PostVars::sample`]; the slot's day, local date, time, weekday,
//! zone and network are the real ones.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{Campaign, Participation};
use crate::compose::{Measure, measure};
use crate::domain::NetworkKind;
use crate::render::{PostRenderer, PostVars};

/// The preview of one participant's strike.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub campaign: String,
    pub title: String,
    /// The participant's IANA zone.
    pub timezone: String,
    pub networks: Vec<NetworkKind>,
    pub posts: Vec<PreviewPost>,
}

/// One slot, rendered for every network.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewPost {
    pub key: String,
    pub post: String,
    pub template: String,
    /// 0-based index into the template's variants.
    pub variant: usize,
    pub at: DateTime<Utc>,
    /// The same instant in the participant's zone, RFC 3339 with its offset.
    pub local: String,
    pub window_end: DateTime<Utc>,
    pub day: u32,
    pub days_total: u32,
    pub texts: Vec<PreviewText>,
}

/// The text for one network and how it measures there.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewText {
    pub network: NetworkKind,
    pub text: String,
    pub measure: Measure,
    /// Why the text could not be rendered (`text` is then empty).
    pub error: Option<String>,
}

/// Which variant the `occurrence`-th post from a template uses (0-based), for an account
/// identified by `seed`. Rotating means an account's consecutive posts from one template
/// differ; different seeds spread accounts posting at the same instant over variants.
pub fn pick_variant(variants: usize, seed: u64, occurrence: usize) -> usize {
    if variants == 0 {
        return 0;
    }
    ((seed % variants as u64) as usize + occurrence) % variants
}

/// Render every slot of `p` for each of `networks`, with sample values standing in for
/// the participant's own.
pub fn preview(c: &Campaign, p: &Participation, networks: &[NetworkKind]) -> Preview {
    preview_with(
        c,
        p,
        networks,
        PostVars::sample(&c.hashtag, &c.title, &c.id),
    )
}

/// Like [`preview`], with the participant's own values (name, links, other accounts) in
/// `base`; the per-slot values (day, date, time, network) are filled in here.
pub fn preview_with(
    c: &Campaign,
    p: &Participation,
    networks: &[NetworkKind],
    base: PostVars,
) -> Preview {
    let renderer = PostRenderer::new(c.templates.iter().map(|(k, v)| (k.as_str(), v.as_slice())));
    let mut occurrences: HashMap<&str, usize> = HashMap::new();
    let mut posts = Vec::new();
    for slot in c.slots(p) {
        let n = c.templates.get(&slot.template).map_or(0, Vec::len);
        let seen = occurrences
            .entry(
                c.templates
                    .get_key_value(&slot.template)
                    .map_or("", |(k, _)| k.as_str()),
            )
            .or_default();
        let variant = pick_variant(n, 0, *seen);
        *seen += 1;

        let local = slot.at.with_timezone(&p.tz);
        let mut vars = base.clone();
        vars.day = slot.day;
        vars.days_total = slot.days_total;
        vars.date = local.format("%Y-%m-%d").to_string();
        vars.time = local.format("%H:%M").to_string();
        vars.weekday = local.format("%A").to_string();
        vars.timezone = p.tz.name().to_string();

        let texts = networks
            .iter()
            .map(|&network| {
                vars.network = network.as_str().to_string();
                let rendered = match &renderer {
                    Ok(r) => r
                        .render(&slot.template, variant, &vars)
                        .map_err(|e| e.message),
                    Err((name, i, e)) => Err(format!(
                        "variant {} of template \"{name}\" does not compile: {}",
                        i + 1,
                        e.message
                    )),
                };
                let (text, error) = match rendered {
                    Ok(t) => (t, None),
                    Err(e) => (String::new(), Some(e)),
                };
                PreviewText {
                    network,
                    measure: measure(network, &text),
                    text,
                    error,
                }
            })
            .collect();
        posts.push(PreviewPost {
            key: slot.key,
            post: slot.post,
            template: slot.template,
            variant,
            at: slot.at,
            local: local.to_rfc3339_opts(SecondsFormat::Secs, false),
            window_end: slot.window_end,
            day: slot.day,
            days_total: slot.days_total,
            texts,
        });
    }
    Preview {
        campaign: c.id.clone(),
        title: c.title.clone(),
        timezone: p.tz.name().to_string(),
        networks: networks.to_vec(),
        posts,
    }
}

impl Preview {
    /// A listing for a terminal: one block per post, one indented text per network.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} ({}): {} posts in {}",
            self.title,
            self.campaign,
            self.posts.len(),
            self.timezone
        );
        for p in &self.posts {
            let day = if p.day == 0 {
                "before the strike".to_string()
            } else {
                format!("day {}/{}", p.day, p.days_total)
            };
            let _ = writeln!(
                out,
                "\n{}  ({})  {}  {}  template {} #{}",
                p.local,
                p.at.to_rfc3339_opts(SecondsFormat::Secs, true),
                p.post,
                day,
                p.template,
                p.variant + 1
            );
            for t in &p.texts {
                let status = if t.measure.fits() { "ok" } else { "TOO LONG" };
                let _ = writeln!(out, "  [{}] {} {}", t.network, t.measure.describe(), status);
                match &t.error {
                    Some(e) => {
                        let _ = writeln!(out, "    error: {e}");
                    }
                    None => {
                        for line in t.text.lines() {
                            let _ = writeln!(out, "    {line}");
                        }
                    }
                }
            }
        }
        out
    }
}
