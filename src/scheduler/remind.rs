//! Reminders of tap-to-post notices: once the dispatcher has rendered a pledge's
//! notices of one slot (`reminded`, at the slot's minute), one mail to the participant
//! holds every one of them: a compose link or the text to copy, a strike card, and a
//! one-click "I posted it" link each, plus a link to their page. And one Web Push
//! notification to each browser they asked to be reminded in ("Strike notice due", the
//! first notice's text, a click opens `/me`).
//!
//! Never early: a slot is due only once its notices are `reminded`, which the dispatcher
//! does at `run_at` (the slot's own minute; tap rows have no jitter). Never after the
//! window: a slot whose window (plus grace) closed is not due. Once per slot: the mail is
//! marked in the store (`reminder_mails`, unique per pledge and slot) *before* it is handed
//! to the SMTP server. A crash between the mark and the send loses that one mail, and the
//! notice stays on the participant's page and in their calendar; the other order could
//! mail twice after a restart, and a lease could too (a send that outlives its lease).
//! At most once is the promise a person can trust: "you get one mail per slot".
//!
//! Pushes share the mail's mark: the slot is marked once, then mailed and pushed. A push
//! carries `TTL` = the time left until the slot's window ends, so a push service holding
//! it for an offline browser drops it when the window closes; once the window has closed
//! nothing is pushed (the grace a late mail still gets does not apply to a notification
//! that would pop up after the strike's window). A push service's 404 or 410 means the
//! browser unsubscribed: the subscription is forgotten. Other failures are noted on the
//! subscription and logged (never its endpoint, a capability URL), and hold up neither
//! the mail nor the other browsers; a failed mail does not hold up the pushes either.
//!
//! Mail goes through the host's mailer with its per-address budget (`mail::Budgeted`): the
//! address was typed by a visitor, so reminders cannot be turned into a mail cannon
//! either. Addresses are never logged.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::campaign::Campaign;
use crate::clock::Clock;
use crate::compose::intent::{self, NoticeLinks};
use crate::crypto::Vault;
use crate::mail::{self, MailError, Mailer};
use crate::network::push::{Notification, PushOutcome, Pusher};
use crate::participation;
use crate::render::pages::Pages;
use crate::store::{
    OutboxRow, Participant, ReminderDue, Store, StoreError, StoredPushSubscription,
};

/// How often due reminders are looked for: a mail is at most this late after its slot.
const POLL: StdDuration = StdDuration::from_secs(1);

/// Slots mailed per round.
const BATCH: u32 = 50;

/// Why one reminder mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum RemindError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
}

/// What was sent for one slot.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Sent {
    mailed: bool,
    pushed: usize,
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RemindReport {
    pub mailed: usize,
    /// Notifications push services took.
    pub pushed: usize,
    pub failed: usize,
}

pub struct Reminder {
    pub store: Arc<dyn Store>,
    /// `None` without `[smtp]`: reminders are then pushed only.
    pub mailer: Option<Arc<dyn Mailer>>,
    /// Sends Web Push notifications (through the guarded client).
    pub pusher: Pusher,
    /// Opens the stored push subscriptions.
    pub vault: Vault,
    pub pages: Arc<Pages>,
    pub clock: Arc<dyn Clock>,
    pub campaigns: Arc<Vec<Campaign>>,
    pub public_url: String,
    /// How long after a window's end a reminder may still go (the dispatcher's grace).
    pub grace: Duration,
}

/// A notice in the mail: its links and its "I posted it" link.
#[derive(Serialize)]
struct MailNotice {
    #[serde(flatten)]
    links: NoticeLinks,
    posted_link: String,
}

impl Reminder {
    /// Mail due reminders until `stop`. A failed round is logged and tried again.
    pub async fn run(&self, stop: CancellationToken) -> anyhow::Result<()> {
        while !stop.is_cancelled() {
            match super::isolate_async(self.step()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "reminder round failed"),
                Err(panic) => tracing::error!(error = %panic, "reminder round failed"),
            }
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
        Ok(())
    }

    /// One round: every slot due now gets its one mail. Tests call this directly.
    pub async fn step(&self) -> Result<RemindReport, StoreError> {
        let mut report = RemindReport::default();
        let now = self.clock.now();
        for due in self.store.reminders_due(now, self.grace, BATCH).await? {
            // One slot's reminder is one unit of work: its failure does not stop the others.
            let sent = super::isolate_async(self.remind_slot(&due))
                .await
                .unwrap_or_else(|panic| {
                    Err(RemindError::Store(StoreError::Corrupt(
                        panic.into_message(),
                    )))
                });
            match sent {
                Ok(sent) => {
                    report.mailed += usize::from(sent.mailed);
                    report.pushed += sent.pushed;
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(
                        pledge = due.pledge_id.0,
                        slot = due.slot_key.as_str(),
                        error = %e,
                        "a reminder was not sent"
                    );
                }
            }
        }
        Ok(report)
    }

    /// Mark, then mail and push, one slot's reminder. Nothing is sent when it was marked
    /// already or there is no address, browser or notice. A failed mail is the error, once
    /// the pushes are done.
    async fn remind_slot(&self, due: &ReminderDue) -> Result<Sent, RemindError> {
        let Some(me) = self.store.get_participant(due.participant_id).await? else {
            return Ok(Sent::default());
        };
        let browsers = self.store.push_subscriptions_of(me.id).await?;
        // Gone meanwhile (the slot is not due any more); without `[smtp]` an address alone
        // is marked all the same, so the slot is not due again every round.
        if me.email.is_none() && browsers.is_empty() {
            return Ok(Sent::default());
        }
        let to = me.email.clone().filter(|_| self.mailer.is_some());
        let now = self.clock.now();
        // The point of no return: from here this slot is never mailed or pushed again.
        let Some(ids) = self
            .store
            .mark_reminder_mail(due.pledge_id, &due.slot_key, now)
            .await?
        else {
            return Ok(Sent::default());
        };
        let rows: Vec<_> = self
            .store
            .outbox_for(me.id, Some(&due.campaign_id))
            .await?
            .into_iter()
            .filter(|r| ids.contains(&r.id))
            .collect();
        let tz = self
            .store
            .pledges_of(me.id)
            .await?
            .into_iter()
            .find(|p| p.id == due.pledge_id)
            .map(|p| p.tz.tz())
            .unwrap_or(chrono_tz::UTC);
        let site = self.public_url.trim_end_matches('/');
        let me_url = format!("{site}/me");
        let texts: Vec<&str> = rows.iter().filter_map(|r| r.text.as_deref()).collect();
        // Side by side: a slow push service does not delay the mail, nor the other way.
        let (pushed, mailed) = tokio::join!(
            self.push_slot(due, &browsers, &texts, &me_url, now),
            async {
                match &to {
                    Some(to) => self.mail_slot(due, &me, to, &rows, tz, now).await,
                    None => Ok(false),
                }
            }
        );
        Ok(Sent {
            mailed: mailed?,
            pushed,
        })
    }

    /// Push the slot's notices to each of the participant's browsers; how many push
    /// services took them. Nothing once the window has closed; before, the TTL is what is
    /// left of it.
    async fn push_slot(
        &self,
        due: &ReminderDue,
        browsers: &[StoredPushSubscription],
        texts: &[&str],
        me_url: &str,
        now: DateTime<Utc>,
    ) -> usize {
        if browsers.is_empty() || texts.is_empty() {
            return 0;
        }
        let Some(ttl) = push_ttl(due.window_end, now) else {
            tracing::info!(
                pledge = due.pledge_id.0,
                slot = due.slot_key.as_str(),
                "the slot's window has closed: no push"
            );
            return 0;
        };
        let tag = format!("picket-{}-{}", due.campaign_id, due.slot_key);
        let notification = Notification::reminder(texts, me_url, &tag);
        let sends = browsers
            .iter()
            .map(|b| self.push_one(due, b, &notification, ttl));
        futures::future::join_all(sends)
            .await
            .into_iter()
            .filter(|delivered| *delivered)
            .count()
    }

    /// One browser's push, and what it says about the subscription: forgotten when the
    /// push service says it is gone, its failure noted otherwise. True when delivered.
    async fn push_one(
        &self,
        due: &ReminderDue,
        browser: &StoredPushSubscription,
        notification: &Notification,
        ttl: StdDuration,
    ) -> bool {
        let outcome = match participation::push::open(&self.vault, browser) {
            Some(subscription) => self.pusher.send(&subscription, notification, ttl).await,
            // Sealed with another key (the credentials key changed): it can never be used.
            None => PushOutcome::Gone,
        };
        let recorded = match &outcome {
            PushOutcome::Delivered if browser.last_error.is_some() => {
                self.store.set_push_error(browser.id, None).await
            }
            PushOutcome::Delivered => Ok(()),
            PushOutcome::Gone => {
                tracing::info!(
                    subscription = browser.id.0,
                    "a browser's push subscription is gone: forgotten"
                );
                self.store
                    .remove_push_subscription(browser.id)
                    .await
                    .map(|_| ())
            }
            PushOutcome::Failed(reason) => {
                tracing::warn!(
                    pledge = due.pledge_id.0,
                    slot = due.slot_key.as_str(),
                    subscription = browser.id.0,
                    reason = reason.as_str(),
                    "a reminder push was not delivered"
                );
                self.store.set_push_error(browser.id, Some(reason)).await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(subscription = browser.id.0, error = %e, "recording a push's outcome failed");
        }
        outcome == PushOutcome::Delivered
    }

    /// The slot's reminder mail to `to`. False when it holds no notice.
    async fn mail_slot(
        &self,
        due: &ReminderDue,
        me: &Participant,
        to: &str,
        rows: &[OutboxRow],
        tz: chrono_tz::Tz,
        now: DateTime<Utc>,
    ) -> Result<bool, RemindError> {
        let Some(mailer) = &self.mailer else {
            return Ok(false);
        };
        let accounts = self.store.list_accounts(me.id).await?;
        let campaign = self.campaigns.iter().find(|c| c.id == due.campaign_id);
        let site = self.public_url.trim_end_matches('/');
        let day = due.slot_at.with_timezone(&tz).date_naive();
        let mut tokens = Vec::new();
        let mut notices = Vec::new();
        for row in rows {
            let (Some(text), Some(account)) = (
                row.text.as_deref(),
                accounts.iter().find(|a| a.id == row.account_id),
            ) else {
                continue;
            };
            let token = participation::new_access_token();
            tokens.push((row.id, participation::token_hash(&token)));
            notices.push(MailNotice {
                links: intent::notice_links(
                    account.network,
                    &account.handle,
                    account.server.as_deref(),
                    text,
                    site,
                    &due.campaign_id,
                    day,
                ),
                posted_link: format!("{site}/me/posted/{token}"),
            });
        }
        if notices.is_empty() {
            return Ok(false);
        }
        self.store.set_confirm_tokens(&tokens, now).await?;
        let when = local_when(due.slot_at, tz);
        let mail = mail::render(
            &self.pages,
            "mail/reminder.txt",
            to,
            &serde_json::json!({
                "name": me.name,
                "when": when,
                "campaign": {
                    "id": due.campaign_id,
                    "title": campaign.map_or(due.campaign_id.as_str(), |c| c.title.as_str()),
                    "hashtag": campaign.map_or("", |c| c.hashtag.as_str()),
                },
                "notices": notices,
                "me_url": format!("{site}/me"),
            }),
        )?;
        mailer.send(mail).await?;
        tracing::info!(
            pledge = due.pledge_id.0,
            slot = due.slot_key.as_str(),
            notices = notices.len(),
            "reminder mailed"
        );
        Ok(true)
    }
}

/// How long a push service may hold a reminder: until the slot's window ends. `None` once
/// it has.
fn push_ttl(window_end: DateTime<Utc>, now: DateTime<Utc>) -> Option<StdDuration> {
    (window_end > now)
        .then(|| (window_end - now).to_std().ok())
        .flatten()
}

/// The slot's instant in the participant's own time, for the mail.
fn local_when(at: DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    at.with_timezone(&tz)
        .format("%A %-d %B %Y, %H:%M (%Z)")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_push_lives_until_the_window_ends_and_none_goes_after_it() {
        let end = DateTime::parse_from_rfc3339("2027-07-04T01:00:00Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            push_ttl(end, end - Duration::minutes(60)),
            Some(StdDuration::from_secs(3600))
        );
        assert_eq!(
            push_ttl(end, end - Duration::milliseconds(1500)),
            Some(StdDuration::from_millis(1500))
        );
        assert_eq!(push_ttl(end, end), None);
        assert_eq!(push_ttl(end, end + Duration::seconds(30)), None);
    }
    use crate::domain::NetworkKind;

    #[test]
    fn the_reminder_mail_holds_each_notices_link_or_text_card_and_confirmation_link() {
        let pages = Pages::load(None).unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2027, 7, 4).unwrap();
        let notice = |network, handle: &str, text: &str, token: &str| MailNotice {
            links: intent::notice_links(
                network,
                handle,
                None,
                text,
                "https://picket.test",
                "strike",
                day,
            ),
            posted_link: format!("https://picket.test/me/posted/{token}"),
        };
        let mail = mail::render(
            &pages,
            "mail/reminder.txt",
            "ada@example.org",
            &serde_json::json!({
                "name": "Ada",
                "when": "Sunday 4 July 2027, 00:00 (NZST)",
                "campaign": { "id": "strike", "title": "Strike", "hashtag": "Strike" },
                "notices": [
                    notice(NetworkKind::X, "@ada", "On strike & #Strike", "t1"),
                    notice(NetworkKind::Instagram, "@ada.k", "On strike <today>", "t2"),
                ],
                "me_url": "https://picket.test/me",
            }),
        )
        .unwrap();
        assert!(mail.subject.contains("Strike"), "{}", mail.subject);
        let body = &mail.text;
        assert!(
            body.contains("https://x.com/intent/tweet?text=On%20strike%20%26%20%23Strike"),
            "{body}"
        );
        assert!(
            body.contains("On strike <today>"),
            "plain text, not escaped: {body}"
        );
        assert!(
            body.contains("card.png?day=2027-07-04&size=story"),
            "{body}"
        );
        assert!(body.contains("https://picket.test/me/posted/t1"), "{body}");
        assert!(body.contains("https://picket.test/me/posted/t2"), "{body}");
    }
}
