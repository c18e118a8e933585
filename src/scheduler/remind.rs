//! Reminder mails for tap-to-post notices: once the dispatcher has rendered a pledge's
//! notices of one slot (`reminded`, at the slot's minute), one mail to the participant
//! holds every one of them: a compose link or the text to copy, a strike card, and a
//! one-click "I posted it" link each, plus a link to their page.
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
use crate::mail::{self, MailError, Mailer};
use crate::participation;
use crate::render::pages::Pages;
use crate::store::{ReminderDue, Store, StoreError};

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

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RemindReport {
    pub mailed: usize,
    pub failed: usize,
}

pub struct Reminder {
    pub store: Arc<dyn Store>,
    pub mailer: Arc<dyn Mailer>,
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
            // One slot's mail is one unit of work: its failure does not stop the others.
            let sent = super::isolate_async(self.mail_slot(&due))
                .await
                .unwrap_or_else(|panic| {
                    Err(RemindError::Store(StoreError::Corrupt(
                        panic.into_message(),
                    )))
                });
            match sent {
                Ok(true) => report.mailed += 1,
                Ok(false) => {}
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(
                        pledge = due.pledge_id.0,
                        slot = due.slot_key.as_str(),
                        error = %e,
                        "a reminder mail was not sent"
                    );
                }
            }
        }
        Ok(report)
    }

    /// Mark, then mail, one slot's reminder. False when there was nothing to send (marked
    /// already, no address, no notice).
    async fn mail_slot(&self, due: &ReminderDue) -> Result<bool, RemindError> {
        let Some(me) = self.store.get_participant(due.participant_id).await? else {
            return Ok(false);
        };
        let Some(to) = me.email.clone() else {
            return Ok(false);
        };
        let now = self.clock.now();
        // The point of no return: from here this slot is never mailed again.
        let Some(ids) = self
            .store
            .mark_reminder_mail(due.pledge_id, &due.slot_key, now)
            .await?
        else {
            return Ok(false);
        };
        let rows: Vec<_> = self
            .store
            .outbox_for(me.id, Some(&due.campaign_id))
            .await?
            .into_iter()
            .filter(|r| ids.contains(&r.id))
            .collect();
        let accounts = self.store.list_accounts(me.id).await?;
        let campaign = self.campaigns.iter().find(|c| c.id == due.campaign_id);
        let tz = self
            .store
            .pledges_of(me.id)
            .await?
            .into_iter()
            .find(|p| p.id == due.pledge_id)
            .map(|p| p.tz.tz())
            .unwrap_or(chrono_tz::UTC);
        let site = self.public_url.trim_end_matches('/');
        let day = due.slot_at.with_timezone(&tz).date_naive();
        let mut tokens = Vec::new();
        let mut notices = Vec::new();
        for row in &rows {
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
            &to,
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
        self.mailer.send(mail).await?;
        tracing::info!(
            pledge = due.pledge_id.0,
            slot = due.slot_key.as_str(),
            notices = notices.len(),
            "reminder mailed"
        );
        Ok(true)
    }
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
