//! Hand-off to a Mastodon-API server's own scheduler (`scheduled_at`), for accounts whose
//! participant chose `--hand-off`: the post is created ahead of time as a scheduled status
//! and the server publishes it at its instant, whether picket runs then or not.
//!
//! NETWORKS: what each server does (sources in `NETWORKS.md` §1 and docs/networks.md):
//! - Mastodon: `POST /api/v1/statuses` with `scheduled_at` at least 5 minutes ahead
//!   answers a `ScheduledStatus`; closer than that it publishes at once and answers a
//!   `Status`. At most 25 scheduled statuses per account per UTC day (of `scheduled_at`)
//!   and 300 in all (`app/models/scheduled_status.rb`), else 422. `Idempotency-Key` was
//!   ignored for scheduled statuses before 4.2.9 / 4.3, so an attempt whose answer was
//!   lost is reconciled with `GET /api/v1/scheduled_statuses` before trying again
//!   (picket does so on every server, whatever its version).
//! - GoToSocial schedules from 0.20 (earlier versions backdate a past `scheduled_at`
//!   instead); Pleroma and Akkoma schedule.
//! - A scheduled status, once published, disappears from the list; the list does not name
//!   the status it became, so the status is found by reading the account's recent
//!   statuses back (its text, not before its instant).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde::Deserialize;

use super::errors::{Call, error_of};
use super::{Credentials, Mastodon, base, path_segment};
use crate::network::{AccountRef, OutgoingPost, PublishError, Reason, Receipt};

/// Mastodon publishes at once what is scheduled closer than this.
pub const SERVER_MINIMUM: chrono::Duration = chrono::Duration::minutes(5);

/// picket hands off only what is at least this far ahead: the server's minimum, and a
/// minute for the request and clocks that differ.
pub const HAND_OFF_LEAD: chrono::Duration = chrono::Duration::minutes(6);

/// Scheduled statuses one account may have per UTC day of their `scheduled_at`.
pub const DAILY_LIMIT: usize = 25;

/// Scheduled statuses one account may have in all.
pub const TOTAL_LIMIT: usize = 300;

/// The most entries one page of `GET /api/v1/scheduled_statuses` gives.
const PAGE: usize = 40;

/// A post the server's scheduler holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    pub id: String,
    pub at: DateTime<Utc>,
    pub text: String,
}

/// What the server made of a post handed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandedTo {
    /// Held by its scheduler under this id.
    Scheduled(String),
    /// Published at once (the instant was too close for it).
    Published(Receipt),
}

/// The server software a hand-off account's server runs, as it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Software {
    pub name: String,
    pub version: Option<String>,
}

impl Software {
    /// Whether this software schedules posts with `scheduled_at`; `Err` says why not, in
    /// words a participant can act on.
    pub fn schedules(&self) -> Result<(), String> {
        let version = self.version.as_deref().map(numeric_version);
        match self.name.as_str() {
            "mastodon" | "hometown" | "glitch-soc" | "pleroma" | "akkoma" => Ok(()),
            "gotosocial" => match version {
                Some(v) if v >= vec![0, 20] => Ok(()),
                Some(_) => Err(
                    "this GoToSocial server is older than 0.20, which is the first to schedule posts"
                        .into(),
                ),
                None => Err(
                    "this GoToSocial server does not say its version (scheduling needs 0.20 or newer)"
                        .into(),
                ),
            },
            // Not the name itself: it is the server's own words, and this reaches pages.
            _ => Err("this server's software is not one picket knows to schedule posts".into()),
        }
    }

    /// Whether the server keeps `Idempotency-Key` for scheduled statuses (Mastodon 4.2.9 or
    /// 4.3 and newer). Informational: picket reconciles with the list either way.
    pub fn keys_scheduled_statuses(&self) -> bool {
        let Some(v) = self.version.as_deref().map(numeric_version) else {
            return false;
        };
        matches!(self.name.as_str(), "mastodon" | "hometown" | "glitch-soc")
            && (v >= vec![4, 3] || (v.len() >= 3 && v[..2] == [4, 2] && v[2] >= 9))
    }

    /// "mastodon 4.3.1", for the operator and the join page.
    pub fn label(&self) -> String {
        match &self.version {
            Some(v) => format!("{} {v}", self.name),
            None => self.name.clone(),
        }
    }
}

/// The leading numbers of a version as servers write it: "4.3.0+glitch", "0.20.1-rc1",
/// "2.7.2 (compatible; Pleroma 2.6.0)" (the Mastodon version a fork claims comes first).
fn numeric_version(v: &str) -> Vec<u64> {
    v.trim()
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()
        .unwrap_or("")
        .split('.')
        .map_while(|n| n.parse().ok())
        .collect()
}

/// `ScheduledStatus`, as much as picket reads.
#[derive(Deserialize)]
struct ScheduledStatus {
    id: String,
    scheduled_at: DateTime<Utc>,
    #[serde(default)]
    params: ScheduledParams,
}

#[derive(Deserialize, Default)]
struct ScheduledParams {
    #[serde(default)]
    text: Option<String>,
}

/// An answer to `POST /api/v1/statuses` with `scheduled_at`: a `ScheduledStatus`, or a
/// `Status` when the server published at once.
#[derive(Deserialize)]
struct Created {
    id: String,
    #[serde(default)]
    scheduled_at: Option<DateTime<Utc>>,
    #[serde(default)]
    params: Option<serde_json::Value>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    uri: Option<String>,
}

/// `scheduled_at` as sent: whole seconds, so the list's copy compares equal.
pub fn instant_for_server(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Whether `s` is the post picket handed off for `at` with `text`.
pub fn is_ours(s: &Scheduled, text: &str, at: DateTime<Utc>) -> bool {
    (s.at - at).num_seconds().abs() <= 1 && super::normalise(&s.text) == super::normalise(text)
}

/// The account's server scheduler, as the hand-off uses it. Implemented by the Mastodon
/// adapter (see [`crate::network::Network::scheduler`]).
#[async_trait]
pub trait ServerScheduler: Send + Sync {
    /// What the account's server runs (nodeinfo, else `/api/v1/instance`).
    async fn software(&self, account: &AccountRef) -> Result<Software, PublishError>;
    /// Create `post` as a scheduled status at `at`.
    async fn schedule(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
        at: DateTime<Utc>,
    ) -> Result<HandedTo, PublishError>;
    /// Every scheduled status of the account.
    async fn scheduled(&self, account: &AccountRef) -> Result<Vec<Scheduled>, PublishError>;
    /// Delete a scheduled status; one already gone (published, or deleted) is no error.
    async fn unschedule(&self, account: &AccountRef, id: &str) -> Result<(), PublishError>;
    /// The account's status with `text`, created no earlier than `not_before` (minus a
    /// margin for clocks): what a scheduled status became.
    async fn find_status(
        &self,
        account: &AccountRef,
        text: &str,
        not_before: DateTime<Utc>,
    ) -> Result<Option<Receipt>, PublishError>;
}

fn unreadable(what: &str, e: impl std::fmt::Display, maybe_sent: bool) -> PublishError {
    PublishError::Retry {
        reason: Reason::new(format!("the server's answer {what} was unreadable"))
            .with_detail(e.to_string()),
        after: None,
        maybe_sent,
    }
}

#[async_trait]
impl ServerScheduler for Mastodon {
    async fn software(&self, account: &AccountRef) -> Result<Software, PublishError> {
        let http = self.http(account);
        let b = base(&account.server);
        if let Some((name, version)) = super::enroll::nodeinfo_software_version(http, b).await {
            return Ok(Software { name, version });
        }
        // No nodeinfo: `/api/v1/instance`'s `version` ("4.3.1", or "2.7.2 (compatible;
        // Pleroma 2.6.0)" from a fork that names itself there).
        let resp = http
            .get(&format!("{b}/api/v1/instance"))
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(|e| crate::network::transport_error(&e))?;
        if !resp.status().is_success() {
            return Err(error_of(resp, Call::Read, self.clock.now()).await);
        }
        let v: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| unreadable("about the server", e, false))?;
        let version = v["version"].as_str().unwrap_or("").to_string();
        let lower = version.to_lowercase();
        let name = ["pleroma", "akkoma", "gotosocial"]
            .into_iter()
            .find(|n| lower.contains(n))
            .unwrap_or("mastodon");
        let version = match lower.find(name).filter(|_| name != "mastodon") {
            Some(i) => lower[i + name.len()..]
                .trim()
                .trim_end_matches(')')
                .to_string(),
            None => version,
        };
        Ok(Software {
            name: name.into(),
            version: (!version.is_empty()).then_some(version),
        })
    }

    #[tracing::instrument(skip_all, fields(network = "mastodon", account = account.id))]
    async fn schedule(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
        at: DateTime<Utc>,
    ) -> Result<HandedTo, PublishError> {
        let creds = Credentials::parse(account.credentials.expose());
        let m = super::measure_for_server(&creds, &post.text);
        if !m.fits() {
            return Err(PublishError::rejected(format!(
                "too long for this server: {}",
                m.describe()
            )));
        }
        let mut body = serde_json::json!({
            "status": post.text,
            "visibility": "public",
            "scheduled_at": instant_for_server(at),
        });
        let mut timeout = post.timeout;
        if let Some(image) = &post.image {
            let started = std::time::Instant::now();
            let media = self.upload(account, &creds, image, post.timeout).await?;
            body["media_ids"] = serde_json::json!([media]);
            timeout = post.timeout.saturating_sub(started.elapsed());
            if timeout.is_zero() {
                return Err(PublishError::retry(
                    "the post's image took the whole time the post had",
                ));
            }
        }
        let resp = self
            .http(account)
            .post(&format!("{}/api/v1/statuses", base(&account.server)))
            .bearer_auth(&creds.token)
            // Servers that keep the key for scheduled statuses answer a retry with the
            // first one; the others are reconciled with the list before any retry.
            .header("Idempotency-Key", &post.idempotency_key)
            .timeout(timeout)
            .json(&body)
            .send()
            .await
            .map_err(|e| crate::network::transport_error(&e))?;
        if !resp.status().is_success() {
            return Err(error_of(resp, Call::Post, self.clock.now()).await);
        }
        let c: Created = resp
            .json()
            .await
            .map_err(|e| unreadable("to the scheduled post", e, true))?;
        if c.scheduled_at.is_some() || c.params.is_some() {
            Ok(HandedTo::Scheduled(c.id))
        } else {
            Ok(HandedTo::Published(Receipt {
                remote_id: c.id,
                url: c.url.or(c.uri),
            }))
        }
    }

    #[tracing::instrument(skip_all, fields(network = "mastodon", account = account.id))]
    async fn scheduled(&self, account: &AccountRef) -> Result<Vec<Scheduled>, PublishError> {
        let creds = Credentials::parse(account.credentials.expose());
        let mut out: Vec<Scheduled> = Vec::new();
        let mut max_id: Option<String> = None;
        // The server's total limit bounds the pages; a server that ignores `max_id` and
        // answers the same page again ends the loop when it brings nothing new.
        for _ in 0..=(TOTAL_LIMIT / PAGE + 1) {
            let mut url = format!(
                "{}/api/v1/scheduled_statuses?limit={PAGE}",
                base(&account.server)
            );
            if let Some(id) = &max_id {
                url.push_str(&format!("&max_id={}", path_segment(id)));
            }
            let resp = self
                .http(account)
                .get(&url)
                .bearer_auth(&creds.token)
                .timeout(Duration::from_secs(30))
                .max_body(8 * crate::network::guarded::MAX_BODY)
                .send()
                .await
                .map_err(|e| crate::network::transport_error(&e))?;
            if !resp.status().is_success() {
                return Err(error_of(resp, Call::Read, self.clock.now()).await);
            }
            let page: Vec<ScheduledStatus> = resp
                .json()
                .await
                .map_err(|e| unreadable("listing scheduled posts", e, false))?;
            let full = page.len() >= PAGE;
            let mut new = 0;
            for s in page {
                if out.iter().any(|o| o.id == s.id) {
                    continue;
                }
                new += 1;
                max_id = Some(s.id.clone());
                out.push(Scheduled {
                    id: s.id,
                    at: s.scheduled_at,
                    text: s.params.text.unwrap_or_default(),
                });
            }
            if !full || new == 0 {
                break;
            }
        }
        Ok(out)
    }

    #[tracing::instrument(skip_all, fields(network = "mastodon", account = account.id))]
    async fn unschedule(&self, account: &AccountRef, id: &str) -> Result<(), PublishError> {
        let creds = Credentials::parse(account.credentials.expose());
        let resp = self
            .http(account)
            .delete(&format!(
                "{}/api/v1/scheduled_statuses/{}",
                base(&account.server),
                path_segment(id)
            ))
            .bearer_auth(&creds.token)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| crate::network::transport_error(&e))?;
        let status = resp.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            return Ok(());
        }
        Err(error_of(resp, Call::Delete, self.clock.now()).await)
    }

    async fn find_status(
        &self,
        account: &AccountRef,
        text: &str,
        not_before: DateTime<Utc>,
    ) -> Result<Option<Receipt>, PublishError> {
        let creds = Credentials::parse(account.credentials.expose());
        self.read_back_text(account, &creds, text, not_before, Duration::from_secs(30))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sw(name: &str, version: Option<&str>) -> Software {
        Software {
            name: name.into(),
            version: version.map(str::to_string),
        }
    }

    #[test]
    fn gotosocial_schedules_from_0_20_and_unknown_software_not_at_all() {
        assert!(sw("mastodon", Some("4.1.0")).schedules().is_ok());
        assert!(sw("akkoma", None).schedules().is_ok());
        assert!(sw("pleroma", Some("2.6.0")).schedules().is_ok());
        assert!(
            sw("gotosocial", Some("0.20.0+git-c1a2"))
                .schedules()
                .is_ok()
        );
        assert!(sw("gotosocial", Some("0.21.1")).schedules().is_ok());
        assert!(sw("gotosocial", Some("0.19.2")).schedules().is_err());
        assert!(sw("gotosocial", None).schedules().is_err());
        assert!(sw("snac", Some("2.70")).schedules().is_err());
        assert!(sw("misskey", Some("2025.1.0")).schedules().is_err());
    }

    #[test]
    fn the_key_is_kept_for_scheduled_statuses_from_mastodon_4_2_9_and_4_3() {
        assert!(!sw("mastodon", Some("4.2.8")).keys_scheduled_statuses());
        assert!(sw("mastodon", Some("4.2.9")).keys_scheduled_statuses());
        assert!(sw("mastodon", Some("4.2.10")).keys_scheduled_statuses());
        assert!(sw("mastodon", Some("4.3.0+glitch")).keys_scheduled_statuses());
        assert!(!sw("mastodon", Some("4.1.22")).keys_scheduled_statuses());
        assert!(!sw("mastodon", None).keys_scheduled_statuses());
        assert!(!sw("pleroma", Some("4.4.0")).keys_scheduled_statuses());
    }

    #[test]
    fn a_scheduled_status_is_ours_by_its_text_and_its_instant_to_the_second() {
        let at: DateTime<Utc> = "2027-07-04T12:00:00.400Z".parse().unwrap();
        let s = Scheduled {
            id: "1".into(),
            at: "2027-07-04T12:00:00Z".parse().unwrap(),
            text: "On  strike\ntoday".into(),
        };
        assert!(is_ours(&s, "On strike today", at));
        assert!(!is_ours(&s, "On strike tomorrow", at));
        assert!(!is_ours(
            &s,
            "On strike today",
            at + chrono::Duration::seconds(5)
        ));
        assert_eq!(instant_for_server(at), "2027-07-04T12:00:00Z");
    }
}
