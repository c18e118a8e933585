//! Checkpoints: a host's counts for one campaign as a line-per-field text, chained by
//! sequence number and the hash of the previous one, and how a peer's new checkpoint is
//! judged against the last one kept. docs/checkpoints.md documents the format.
//!
//! Counts in a checkpoint are high-water marks ("the most this host has ever counted"):
//! a withdrawal or a deleted signature lowers the host's own page, never its checkpoint,
//! so any checkpoint with a lower count than an earlier one, a sequence number that goes
//! back, or a link that does not match is a rollback by definition.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use super::key::VerifierKey;

/// The first line of every checkpoint body: what it is and which version of the format.
pub const HEADER: &str = "picket checkpoint v1";
/// The `previous` of the first checkpoint of a chain.
pub const NO_PREVIOUS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// A host re-issues an unchanged checkpoint this often, so its time says it is alive.
pub const HEARTBEAT: chrono::Duration = chrono::Duration::hours(1);
/// A peer's checkpoint older than this (three missed heartbeats) is `stale`.
pub const TOO_OLD: chrono::Duration = chrono::Duration::hours(3);

/// One host's counts for one campaign at one time, a link in its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub campaign: String,
    /// The declaration's content hash, or `none` for a campaign without one.
    pub declaration: String,
    /// The host's `public_url`, without a final slash.
    pub url: String,
    pub counts: Figures,
    pub time: DateTime<Utc>,
    pub sequence: u64,
    /// The [`Checkpoint::hash`] of the previous checkpoint, [`NO_PREVIOUS`] for the first.
    pub previous: String,
}

/// The three counts a checkpoint carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Figures {
    pub signatures: u64,
    pub strikers: u64,
    pub published: u64,
}

impl Figures {
    /// Each count at least as high as in `other`.
    pub fn at_least(self, other: Figures) -> Figures {
        Figures {
            signatures: self.signatures.max(other.signatures),
            strikers: self.strikers.max(other.strikers),
            published: self.published.max(other.published),
        }
    }

    fn any_below(self, other: Figures) -> bool {
        self.signatures < other.signatures
            || self.strikers < other.strikers
            || self.published < other.published
    }

    /// Saturating: a peer's figures are whatever its signed note says, up to `u64::MAX`.
    pub fn add(&mut self, other: Figures) {
        self.signatures = self.signatures.saturating_add(other.signatures);
        self.strikers = self.strikers.saturating_add(other.strikers);
        self.published = self.published.saturating_add(other.published);
    }
}

/// Why a body is not a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a picket checkpoint: {0}")]
pub struct ParseError(String);

impl Checkpoint {
    /// The signed text: one `key value` line per field, in this order.
    pub fn body(&self) -> String {
        format!(
            "{HEADER}\ncampaign {}\ndeclaration {}\nurl {}\nsignatures {}\nstrikers {}\npublished {}\ntime {}\nsequence {}\nprevious {}\n",
            self.campaign,
            self.declaration,
            self.url,
            self.counts.signatures,
            self.counts.strikers,
            self.counts.published,
            self.time.to_rfc3339_opts(SecondsFormat::Secs, true),
            self.sequence,
            self.previous,
        )
    }

    /// SHA-256 of the body, hex: what the next checkpoint names as `previous`.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.body().as_bytes()))
    }

    /// A body as [`Checkpoint::body`] writes it, and nothing else (so the hash of what
    /// was parsed is the hash of what was signed).
    pub fn parse(body: &str) -> Result<Checkpoint, ParseError> {
        let err = |what: &str| ParseError(what.to_string());
        let mut lines = body.lines();
        if lines.next() != Some(HEADER) {
            return Err(err("the first line is not \"picket checkpoint v1\""));
        }
        let mut field = |name: &str| -> Result<String, ParseError> {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .filter(|v| !v.is_empty() && !v.contains(' '))
                .map(str::to_string)
                .ok_or_else(|| err(&format!("no {name} line where one belongs")))
        };
        let number = |v: String, name: &str| {
            v.parse::<u64>()
                .map_err(|_| err(&format!("{name} is not a whole number")))
        };
        let campaign = field("campaign")?;
        let declaration = field("declaration")?;
        let url = field("url")?;
        let signatures = number(field("signatures")?, "signatures")?;
        let strikers = number(field("strikers")?, "strikers")?;
        let published = number(field("published")?, "published")?;
        let time = DateTime::parse_from_rfc3339(&field("time")?)
            .map_err(|_| err("time is not an RFC 3339 instant"))?
            .with_timezone(&Utc);
        let sequence = number(field("sequence")?, "sequence")?;
        let previous = field("previous")?;
        let parsed = Checkpoint {
            campaign,
            declaration,
            url,
            counts: Figures {
                signatures,
                strikers,
                published,
            },
            time,
            sequence,
            previous,
        };
        if parsed.body() != body {
            return Err(err(
                "it is not written exactly as picket writes checkpoints",
            ));
        }
        Ok(parsed)
    }

    /// The checkpoint a host issues after `last` for `counts` at `now`, or `None` when
    /// `last` still says the same and is younger than [`HEARTBEAT`].
    pub fn next(
        last: Option<&Checkpoint>,
        campaign: &str,
        declaration: &str,
        url: &str,
        counts: Figures,
        now: DateTime<Utc>,
    ) -> Option<Checkpoint> {
        let url = url.trim_end_matches('/');
        let Some(last) = last else {
            return Some(Checkpoint {
                campaign: campaign.to_string(),
                declaration: declaration.to_string(),
                url: url.to_string(),
                counts,
                time: trim(now),
                sequence: 1,
                previous: NO_PREVIOUS.to_string(),
            });
        };
        let counts = counts.at_least(last.counts);
        let same = counts == last.counts && last.declaration == declaration && last.url == url;
        if same && now - last.time < HEARTBEAT {
            return None;
        }
        Some(Checkpoint {
            campaign: campaign.to_string(),
            declaration: declaration.to_string(),
            url: url.to_string(),
            counts,
            // A clock set back must not make the chain go back in time.
            time: trim(now).max(last.time),
            sequence: last.sequence + 1,
            previous: last.hash(),
        })
    }
}

/// Whole seconds: what the body can say.
fn trim(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

/// The body of a signed note (everything before the blank line that precedes the
/// signatures), for a note already verified.
pub fn body_of(note: &str) -> &str {
    note.rfind("\n\n").map_or(note, |i| &note[..i + 1])
}

/// What a peer is, as of its last check. The names are the stats API's `peers[].status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its latest checkpoint is signed by its pinned key, extends the chain kept, and
    /// hosts the same declaration: counted.
    Verified,
    /// Not signed by the pinned key (or not a checkpoint of this campaign at its address).
    BadSignature,
    /// A count went down, the sequence went back, or the chain does not link.
    Rollback,
    /// A valid checkpoint for a declaration with another text: a copy with changes,
    /// counted apart.
    DifferentDeclaration,
    /// Its latest checkpoint is old, or it did not answer lately.
    Stale,
    /// It has not answered for a while (or never).
    Unreachable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Verified => "verified",
            Status::BadSignature => "bad_signature",
            Status::Rollback => "rollback",
            Status::DifferentDeclaration => "different_declaration",
            Status::Stale => "stale",
            Status::Unreachable => "unreachable",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Verified,
            Status::BadSignature,
            Status::Rollback,
            Status::DifferentDeclaration,
            Status::Stale,
            Status::Unreachable,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }
}

/// The verdict on one fetched note: the status, why (in picket's words), and the
/// checkpoint to keep as the last good one (`None`: keep the one kept before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: Status,
    pub detail: String,
    pub keep: Option<Checkpoint>,
}

/// What is expected of a peer's checkpoint.
pub struct Expected<'a> {
    pub campaign: &'a str,
    /// Our own declaration's hash.
    pub declaration: &'a str,
    /// The peer's configured address.
    pub url: &'a str,
    pub key: &'a VerifierKey,
}

/// Judge `note`, fetched from a peer at `now`, against the last good checkpoint kept.
pub fn judge(
    expected: &Expected<'_>,
    note: &str,
    last: Option<&Checkpoint>,
    now: DateTime<Utc>,
) -> Verdict {
    let verdict = |status, detail: &str, keep| Verdict {
        status,
        detail: detail.to_string(),
        keep,
    };
    // Unsigned, signed by another key, forged or malformed: not this peer's statement.
    let body = match expected.key.open(note) {
        Ok(body) => body,
        Err(e) => return verdict(Status::BadSignature, &e.to_string(), None),
    };
    let cp = match Checkpoint::parse(body) {
        Ok(cp) => cp,
        Err(e) => return verdict(Status::BadSignature, &e.to_string(), None),
    };
    if cp.campaign != expected.campaign {
        return verdict(Status::BadSignature, "signed for another campaign", None);
    }
    if cp.url != expected.url.trim_end_matches('/') {
        return verdict(Status::BadSignature, "signed for another address", None);
    }
    if let Some(last) = last {
        let why = if cp.sequence < last.sequence {
            Some("its sequence number went back (a restarted chain)")
        } else if cp.sequence == last.sequence && cp != *last {
            Some("a different checkpoint with the same sequence number")
        } else if cp.sequence == last.sequence + 1 && cp.previous != last.hash() {
            Some("it does not link to the checkpoint kept before")
        } else if cp.counts.any_below(last.counts) {
            Some("a count went down")
        } else if cp.time < last.time {
            Some("its time went back")
        } else {
            None
        };
        if let Some(why) = why {
            return verdict(Status::Rollback, why, None);
        }
    }
    if now - cp.time > TOO_OLD {
        return verdict(Status::Stale, "its latest checkpoint is old", Some(cp));
    }
    if cp.declaration != expected.declaration {
        return verdict(
            Status::DifferentDeclaration,
            "it hosts a declaration with another text",
            Some(cp),
        );
    }
    verdict(Status::Verified, "", Some(cp))
}

/// The status of a peer that did not answer at `now`: `stale` while its last good answer
/// is younger than `grace`, then `unreachable`.
pub fn unanswered(
    last_ok: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> Status {
    match last_ok {
        Some(t) if now - t < grace => Status::Stale,
        _ => Status::Unreachable,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::federation::key::HostKey;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn figures(n: u64) -> Figures {
        Figures {
            signatures: n,
            strikers: n / 2,
            published: n * 3,
        }
    }

    fn first(n: u64) -> Checkpoint {
        Checkpoint::next(None, "c", "d", "https://p.example/", figures(n), at(0)).unwrap()
    }

    struct Peer {
        key: HostKey,
        printed: VerifierKey,
    }

    fn peer() -> Peer {
        let key = HostKey::from_seed([4; 32]);
        let printed = key.verifier("https://p.example");
        Peer { key, printed }
    }

    fn judged(p: &Peer, cp: &Checkpoint, last: Option<&Checkpoint>) -> Verdict {
        let note = p.key.sign_note("https://p.example", &cp.body());
        let expected = Expected {
            campaign: "c",
            declaration: "d",
            url: "https://p.example",
            key: &p.printed,
        };
        judge(&expected, &note, last, cp.time)
    }

    #[test]
    fn a_peers_largest_figures_add_up_without_overflowing() {
        let mut total = Figures {
            signatures: 3,
            strikers: 2,
            published: 1,
        };
        total.add(Figures {
            signatures: u64::MAX,
            strikers: u64::MAX,
            published: 4,
        });
        assert_eq!(
            (total.signatures, total.strikers, total.published),
            (u64::MAX, u64::MAX, 5)
        );
    }

    #[test]
    fn a_body_parses_back_to_the_same_checkpoint_and_nothing_else_does() {
        let cp = first(10);
        assert_eq!(Checkpoint::parse(&cp.body()), Ok(cp.clone()));
        let spaced = cp.body().replace("signatures 10", "signatures  10");
        assert!(Checkpoint::parse(&spaced).is_err());
        let extra = format!("{}extra 1\n", cp.body());
        assert!(Checkpoint::parse(&extra).is_err());
    }

    #[test]
    fn a_host_issues_again_only_when_counts_change_or_the_heartbeat_is_due() {
        let one = first(10);
        assert_eq!(
            Checkpoint::next(
                Some(&one),
                "c",
                "d",
                "https://p.example",
                figures(10),
                at(60)
            ),
            None
        );
        let two = Checkpoint::next(
            Some(&one),
            "c",
            "d",
            "https://p.example",
            figures(11),
            at(60),
        )
        .unwrap();
        assert_eq!((two.sequence, two.previous.clone()), (2, one.hash()));
        let lower = Checkpoint::next(
            Some(&two),
            "c",
            "d",
            "https://p.example",
            figures(3),
            at(120),
        );
        assert_eq!(
            lower, None,
            "a lower count is no change: counts are high-water marks"
        );
        let beat = Checkpoint::next(
            Some(&two),
            "c",
            "d",
            "https://p.example",
            figures(3),
            at(0) + HEARTBEAT + chrono::Duration::seconds(60),
        )
        .unwrap();
        assert_eq!((beat.sequence, beat.counts), (3, figures(11)));
    }

    #[test]
    fn a_peer_that_extends_its_chain_is_verified() {
        let p = peer();
        let one = first(10);
        assert_eq!(judged(&p, &one, None).status, Status::Verified);
        let two = Checkpoint::next(
            Some(&one),
            "c",
            "d",
            "https://p.example",
            figures(12),
            at(5),
        )
        .unwrap();
        let v = judged(&p, &two, Some(&one));
        assert_eq!((v.status, v.keep), (Status::Verified, Some(two)));
    }

    #[test]
    fn a_lower_count_a_restarted_chain_or_a_broken_link_is_a_rollback() {
        let p = peer();
        let one = first(10);
        let two = Checkpoint::next(
            Some(&one),
            "c",
            "d",
            "https://p.example",
            figures(12),
            at(5),
        )
        .unwrap();
        let mut lower = Checkpoint::next(
            Some(&two),
            "c",
            "d",
            "https://p.example",
            figures(20),
            at(9),
        )
        .unwrap();
        lower.counts.signatures = 11;
        assert_eq!(judged(&p, &lower, Some(&two)).status, Status::Rollback);
        let restarted = Checkpoint {
            time: at(9),
            ..first(30)
        };
        assert_eq!(judged(&p, &restarted, Some(&two)).status, Status::Rollback);
        let mut unlinked = Checkpoint::next(
            Some(&two),
            "c",
            "d",
            "https://p.example",
            figures(20),
            at(9),
        )
        .unwrap();
        unlinked.previous = NO_PREVIOUS.to_string();
        let v = judged(&p, &unlinked, Some(&two));
        assert_eq!((v.status, v.keep), (Status::Rollback, None));
    }

    #[test]
    fn another_key_another_campaign_or_another_declaration_is_flagged() {
        let p = peer();
        let impostor = Peer {
            key: HostKey::from_seed([5; 32]),
            printed: p.printed.clone(),
        };
        assert_eq!(
            judged(&impostor, &first(10), None).status,
            Status::BadSignature
        );
        let other_campaign = Checkpoint {
            campaign: "other".into(),
            ..first(10)
        };
        assert_eq!(
            judged(&p, &other_campaign, None).status,
            Status::BadSignature
        );
        let copy = Checkpoint {
            declaration: "e".into(),
            ..first(10)
        };
        let v = judged(&p, &copy, None);
        assert_eq!(v.status, Status::DifferentDeclaration);
        assert!(v.keep.is_some(), "a copy's counts are kept, to count apart");
    }

    /// The example in docs/checkpoints.md was signed by Python's `cryptography`: picket
    /// reads it as its own, and judges the second checkpoint as extending the first.
    #[test]
    fn the_documented_example_verifies_and_links() {
        let doc = include_str!("../../docs/checkpoints.md");
        let example = &doc[doc.find("### Example").unwrap()..];
        let blocks: Vec<&str> = example
            .split("```text\n")
            .skip(1)
            .map(|b| &b[..b.find("```").unwrap()])
            .collect();
        let key = VerifierKey::parse(blocks[0]).unwrap();
        let first = Checkpoint::parse(key.open(blocks[1]).unwrap()).unwrap();
        let expected = Expected {
            campaign: "social-media-strike",
            declaration: &first.declaration,
            url: "https://strike.example.org",
            key: &key,
        };
        let v = judge(&expected, blocks[2], Some(&first), first.time);
        assert_eq!(v.status, Status::Verified, "{}", v.detail);
        assert_eq!(v.keep.unwrap().counts.signatures, 1207);
    }

    #[test]
    fn a_silent_peer_is_stale_then_unreachable() {
        let grace = chrono::Duration::seconds(10);
        assert_eq!(unanswered(Some(at(0)), at(5), grace), Status::Stale);
        assert_eq!(unanswered(Some(at(0)), at(10), grace), Status::Unreachable);
        assert_eq!(unanswered(None, at(0), grace), Status::Unreachable);
    }
}
