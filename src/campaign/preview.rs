//! Every post picket would make for one participant, rendered and measured exactly as the
//! dispatcher will (through [`crate::compose`]): what `picket campaign preview` prints and
//! what a striker sees at the second join step before pledging.
//!
//! `picket campaign preview` has no participant: sample values stand in for their own
//! (invitation link, name, accounts elsewhere; see [`PostVars::sample`]), one text per
//! network. The join preview has the person: their own values, and one text per account
//! they connected, with the variant the planner gives that account, the accounts that
//! account's posts name elsewhere, and the account's own length limit. The slot's day,
//! local date, time, weekday and zone are the real ones in both.
//!
//! [`PostVars::sample`]: crate::compose::PostVars::sample

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{Campaign, Participation};
use crate::compose::vars::{SAMPLE_ELSEWHERE, SAMPLE_INVITE_CODE, SAMPLE_NAME, SAMPLE_SITE};
use crate::compose::{
    self, CampaignRef, ComposeError, Measure, PostContext, SlotRef, Templates, measure,
};
use crate::domain::{CampaignId, Handle, NetworkKind, Zone};
use crate::store::{Account, AccountId, AccountStatus};

/// The preview of one participant's strike.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub campaign: CampaignId,
    pub title: String,
    /// The participant's IANA zone.
    pub timezone: Zone,
    /// The networks the texts are for, each once.
    pub networks: Vec<NetworkKind>,
    pub posts: Vec<PreviewPost>,
}

/// One slot, rendered for every network or account.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewPost {
    pub key: String,
    pub post: String,
    pub template: String,
    /// 0-based index into the template's variants: the one planned for this slot without
    /// an account (each account rotates from its own start: see [`PreviewText::variant`]).
    pub variant: usize,
    pub at: DateTime<Utc>,
    /// The same instant in the participant's zone, RFC 3339 with its offset.
    pub local: String,
    pub window_end: DateTime<Utc>,
    pub day: u32,
    pub days_total: u32,
    pub texts: Vec<PreviewText>,
}

/// The text for one network (or one account on it) and how it measures there.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewText {
    pub network: NetworkKind,
    /// The account that would post it; none in a preview without accounts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handle: Option<Handle>,
    /// 0-based variant the text is from: the planned one, or the next one that fits.
    pub variant: usize,
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

impl Campaign {
    /// What a post's text takes from this campaign.
    pub fn text_ref(&self) -> CampaignRef<'_> {
        CampaignRef {
            id: &self.id,
            hashtag: &self.hashtag,
            title: &self.title,
        }
    }
}

/// A participant as their own preview shows them.
#[derive(Debug, Clone, Copy)]
pub struct Participant<'a> {
    /// This host's address (`public_url`), for the links in the posts.
    pub site: &'a str,
    pub name: &'a str,
    pub invite_code: &'a str,
    /// Their accounts: the posts are previewed from each one (removed ones aside), and
    /// each post names the others as [`compose::elsewhere`] says.
    pub accounts: &'a [Account],
}

/// Render every slot of `p` for each of `networks`, with sample values standing in for
/// the participant's own.
pub fn preview(c: &Campaign, p: &Participation, networks: &[NetworkKind]) -> Preview {
    let senders: Vec<Sender> = networks
        .iter()
        .map(|&network| Sender {
            network,
            account: None,
            elsewhere: SAMPLE_ELSEWHERE.to_string(),
        })
        .collect();
    let sample = Participant {
        site: SAMPLE_SITE,
        name: SAMPLE_NAME,
        invite_code: SAMPLE_INVITE_CODE,
        accounts: &[],
    };
    render(c, p, &sample, &senders, &|s, text| measure(s.network, text))
}

/// Every post `who` would make, from each of their accounts, as the dispatcher will send
/// it: the same variables, the variant the planner gives that account, the same fallback
/// when it is too long as `measure_for` counts it (the account's own limit). Without an
/// account yet, one text per campaign network, naming no account elsewhere.
pub fn preview_for(
    c: &Campaign,
    p: &Participation,
    who: &Participant,
    measure_for: &dyn Fn(&Account, &str) -> Measure,
) -> Preview {
    let posting: Vec<&Account> = who
        .accounts
        .iter()
        .filter(|a| a.status != AccountStatus::Removed)
        .collect();
    let senders: Vec<Sender> = if posting.is_empty() {
        c.networks
            .iter()
            .map(|&network| Sender {
                network,
                account: None,
                elsewhere: String::new(),
            })
            .collect()
    } else {
        posting
            .into_iter()
            .map(|a| Sender {
                network: a.network,
                account: Some(a),
                elsewhere: compose::elsewhere(who.accounts, Some(a.id)),
            })
            .collect()
    };
    render(c, p, who, &senders, &|s, text| match s.account {
        Some(a) => measure_for(a, text),
        None => measure(s.network, text),
    })
}

/// Whose texts one column of the preview holds: one account's, or one network's.
struct Sender<'a> {
    network: NetworkKind,
    account: Option<&'a Account>,
    /// What its posts say in `elsewhere`.
    elsewhere: String,
}

impl Sender<'_> {
    /// The planner seeds each account's variants with its id.
    fn seed(&self) -> u64 {
        self.account.map_or(0, |a| a.id.0 as u64)
    }
}

fn render(
    c: &Campaign,
    p: &Participation,
    who: &Participant,
    senders: &[Sender],
    measure: &dyn Fn(&Sender, &str) -> Measure,
) -> Preview {
    let templates = Templates::new(&c.templates);
    let mut occurrences: HashMap<&str, usize> = HashMap::new();
    let mut posts = Vec::new();
    for slot in c.slots(p) {
        let n = c.templates.get(&*slot.template).map_or(1, Vec::len);
        let seen = occurrences
            .entry(
                c.templates
                    .get_key_value(&*slot.template)
                    .map_or("", |(k, _)| k.as_str()),
            )
            .or_default();
        let occurrence = *seen;
        *seen += 1;

        let texts = senders
            .iter()
            .map(|sender| {
                let planned = pick_variant(n, sender.seed(), occurrence);
                let context = PostContext {
                    site: who.site,
                    campaign: c.text_ref(),
                    name: who.name,
                    invite_code: who.invite_code,
                    elsewhere: &sender.elsewhere,
                    network: sender.network,
                    slot: SlotRef {
                        at: slot.at,
                        tz: p.tz,
                        day: slot.day,
                        days_total: slot.days_total,
                    },
                };
                let failed = |e: String| (String::new(), planned, measure(sender, ""), Some(e));
                let (text, variant, measured, error) = match &templates {
                    Err(e) => failed(e.to_string()),
                    Ok(t) => match t.compose(&slot.template, planned, &context.vars(), |text| {
                        measure(sender, text)
                    }) {
                        Ok(done) => (done.text, done.variant, done.measure, None),
                        // Shown with its length, so the author sees what to shorten.
                        Err(ComposeError::TooLong {
                            text,
                            variant,
                            measure,
                        }) => (text, variant, measure, None),
                        Err(e) => failed(e.to_string()),
                    },
                };
                PreviewText {
                    network: sender.network,
                    account: sender.account.map(|a| a.id),
                    handle: sender.account.map(|a| a.handle.clone()),
                    variant,
                    text,
                    measure: measured,
                    error,
                }
            })
            .collect();
        posts.push(PreviewPost {
            variant: pick_variant(n, 0, occurrence),
            key: slot.key.to_string(),
            post: slot.post.to_string(),
            template: slot.template.to_string(),
            at: slot.at,
            local: slot
                .at
                .with_timezone(&p.tz.tz())
                .to_rfc3339_opts(SecondsFormat::Secs, false),
            window_end: slot.window_end,
            day: slot.day,
            days_total: slot.days_total,
            texts,
        });
    }
    let mut networks: Vec<NetworkKind> = Vec::new();
    for s in senders {
        if !networks.contains(&s.network) {
            networks.push(s.network);
        }
    }
    Preview {
        campaign: c.id.clone(),
        title: c.title.clone(),
        timezone: p.tz,
        networks,
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
                let from = match &t.handle {
                    Some(h) => format!("{} {h}", t.network),
                    None => t.network.to_string(),
                };
                let other = if t.variant == p.variant {
                    String::new()
                } else {
                    format!(" (variant #{})", t.variant + 1)
                };
                let _ = writeln!(out, "  [{from}] {} {status}{other}", t.measure.describe());
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
