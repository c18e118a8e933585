//! Misskey and its forks (Sharkey, Iceshrimp, Catodon ...): posting a note with the
//! account's token, as the Misskey API documents it (misskey-hub.net, "API" and the
//! endpoint reference: every call is `POST /api/<endpoint>` with a JSON body carrying the
//! token as `i`).
//!
//! - `notes/create` with `text` and `visibility = "public"`; the answer is
//!   `{"createdNote": Note}`. The server's own limit (`maxNoteTextLength` from `api/meta`,
//!   3,000 on Misskey by default, often more on Sharkey) is read at enrolment and applied
//!   to every post.
//! - No idempotency key upstream. So before retrying an attempt whose outcome is unknown
//!   (a timeout or a lost answer after the request went out), picket reads the account's
//!   recent notes back (`users/notes` with the account's `userId` and `sinceDate`) and
//!   looks for the marker it controls: the note's text, which is deterministic per outbox
//!   row (the same variant rendered with the same values every attempt) and differs from
//!   the account's other posts (picket never gives one account the same text twice in a
//!   row). Misskey trims a note's text, so texts are compared trimmed. Found: that note
//!   is the receipt; not found: it was not created, and sending again is safe.
//! - Errors are `{"error": {"code", "message", "id", "info"}}`: 401
//!   `AUTHENTICATION_FAILED` / 403 `PERMISSION_DENIED` (reconnect), 429
//!   `RATE_LIMIT_EXCEEDED` (with `info.resetMs` on recent versions, or `Retry-After`),
//!   400 for content refused.
//!
//! The token asks only `write:notes` (MiAuth, see [`enroll`]): it can post and delete the
//! account's notes and nothing else. Reading the account's public notes back needs no
//! permission (the token goes along, for servers that show notes only to signed-in
//! users). Sharkey also sends `Retry-After` on a 429: honoured when `info.resetMs` is absent.

pub mod enroll;

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::guarded::{Egress, Http, Response};
use super::{
    AccountRef, Identity, Network, OutgoingPost, PublishError, Reason, Receipt, transport_error,
};
use crate::clock::Clock;
use crate::compose::{self, Limit};
use crate::domain::NetworkKind;

/// Misskey's default `maxNoteTextLength`, when a server does not say.
pub const DEFAULT_MAX_TEXT: usize = 3000;

/// How far back, before a post's slot, a note found on read-back may have been created
/// (the dispatcher's jitter and retries all fall after the slot's instant; the margin
/// covers clocks that disagree).
const READ_BACK_MARGIN: chrono::Duration = chrono::Duration::minutes(10);

/// Notes read back per attempt: picket's own recent posts are a handful per slot.
const READ_BACK_LIMIT: u32 = 30;

/// What picket keeps sealed for a Misskey account.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Credentials {
    pub token: String,
    /// The account's id on its server (`users/notes` reads back by it).
    pub user_id: String,
    /// `maxNoteTextLength` from `api/meta` at enrolment.
    #[serde(default)]
    pub max_text: Option<usize>,
}

impl Credentials {
    pub fn parse(s: &str) -> Result<Credentials, PublishError> {
        serde_json::from_str(s)
            .map_err(|_| PublishError::reconnect("the stored Misskey credentials are unreadable"))
    }

    pub fn to_secret(&self) -> crate::domain::Secret {
        crate::domain::Secret::new(serde_json::to_string(self).expect("plain fields"))
    }
}

/// How long `text` is on a server allowing `max` characters.
pub fn measure_for_server(max: Option<usize>, text: &str) -> compose::Measure {
    compose::length::measure_with(
        NetworkKind::Misskey,
        text,
        Limit {
            max: Some(max.unwrap_or(DEFAULT_MAX_TEXT)),
            max_bytes: None,
            unit: "characters",
        },
    )
}

/// The Misskey adapter.
pub struct Misskey {
    egress: Egress,
    clock: std::sync::Arc<dyn Clock>,
}

impl Misskey {
    pub fn new(egress: Egress, clock: std::sync::Arc<dyn Clock>) -> Misskey {
        Misskey { egress, clock }
    }

    fn http(&self, account: &AccountRef) -> &Http {
        self.egress.for_account(account.trusted)
    }

    /// The note an earlier attempt of `post` created, if any.
    async fn find_earlier(
        &self,
        account: &AccountRef,
        creds: &Credentials,
        post: &OutgoingPost,
    ) -> Result<Option<Receipt>, PublishError> {
        let since = post.scheduled_at - READ_BACK_MARGIN;
        let resp = self
            .http(account)
            .post(&format!("{}/api/users/notes", base(&account.server)))
            .timeout(post.timeout)
            // The token authenticates the read on servers that hide notes from visitors
            // who are not signed in; `users/notes` asks no permission of it.
            .json(&serde_json::json!({
                "i": creds.token,
                "userId": creds.user_id,
                "limit": READ_BACK_LIMIT,
                "sinceDate": since.timestamp_millis(),
                "withReplies": false,
                "withRenotes": false,
            }))
            .send()
            .await
            .map_err(|e| {
                // Nothing was posted by a read: a retry of it is always safe.
                let mut err = transport_error(&e);
                if let PublishError::Retry { maybe_sent, .. } = &mut err {
                    *maybe_sent = true;
                }
                err
            })?;
        if !resp.status().is_success() {
            return Err(
                match error_of(resp, "reading the account's notes back", self.clock.now()).await {
                    // Still unknown whether the post went out: keep it that way.
                    PublishError::Retry { reason, after, .. } => PublishError::Retry {
                        reason,
                        after,
                        maybe_sent: true,
                    },
                    other => other,
                },
            );
        }
        let notes: Vec<Note> = resp.json().await.map_err(|e| PublishError::Retry {
            reason: Reason::new("the server's list of notes was unreadable")
                .with_detail(e.to_string()),
            after: None,
            maybe_sent: true,
        })?;
        let wanted = post.text.trim();
        Ok(notes
            .into_iter()
            .find(|n| n.text.as_deref().map(str::trim) == Some(wanted))
            .map(|n| n.receipt(&account.server)))
    }
}

fn base(server: &str) -> &str {
    server.trim_end_matches('/')
}

#[derive(Deserialize)]
struct Note {
    id: String,
    #[serde(default)]
    text: Option<String>,
}

impl Note {
    fn receipt(&self, server: &str) -> Receipt {
        Receipt {
            remote_id: self.id.clone(),
            url: Some(format!("{}/notes/{}", base(server), self.id)),
        }
    }
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "createdNote")]
    created_note: Note,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    error: ErrorDetail,
}

#[derive(Deserialize, Default)]
struct ErrorDetail {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    info: Option<serde_json::Value>,
}

/// What a non-2xx answer means, `doing` naming the call in picket's words.
async fn error_of(resp: Response, doing: &str, now: DateTime<Utc>) -> PublishError {
    let status = resp.status().as_u16();
    let header_wait = super::retry_after(resp.headers(), now);
    let body: ErrorBody = resp.json().await.unwrap_or_default();
    judge(status, &body.error, header_wait, doing)
}

fn judge(status: u16, e: &ErrorDetail, header_wait: Option<Duration>, doing: &str) -> PublishError {
    let code = if e.code.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}, {}", e.code)
    };
    let detail = e.message.clone();
    match status {
        401 => PublishError::Reconnect(
            Reason::new(format!("the server refused the token ({code})")).with_detail(detail),
        ),
        403 => PublishError::Reconnect(
            Reason::new(format!(
                "the token may not post notes ({code}): connect the account again"
            ))
            .with_detail(detail),
        ),
        429 => {
            let reset = e
                .info
                .as_ref()
                .and_then(|i| i.get("resetMs"))
                .and_then(serde_json::Value::as_f64)
                .filter(|ms| ms.is_finite() && *ms >= 0.0)
                .map(|ms| Duration::from_millis(ms.min(3_600_000.0) as u64));
            PublishError::Retry {
                reason: Reason::new(format!("rate limited ({code})")).with_detail(detail),
                after: reset.or(header_wait),
                maybe_sent: false,
            }
        }
        500..=599 => PublishError::Retry {
            reason: Reason::new(format!("the server failed {doing} ({code})")).with_detail(detail),
            after: header_wait,
            // A server error after the note was written is possible: read back first.
            maybe_sent: true,
        },
        _ => PublishError::Rejected(
            Reason::new(format!("the server refused {doing} ({code})")).with_detail(detail),
        ),
    }
}

#[async_trait]
impl Network for Misskey {
    fn kind(&self) -> NetworkKind {
        NetworkKind::Misskey
    }

    fn measure(&self, account: &AccountRef, text: &str) -> compose::Measure {
        let max = Credentials::parse(account.credentials.expose())
            .ok()
            .and_then(|c| c.max_text);
        measure_for_server(max, text)
    }

    /// The account's recent notes, matched on the post's text (the same row always renders
    /// the same text) and made no earlier than a margin before its slot: found or absent.
    #[tracing::instrument(skip_all, fields(network = "misskey", account = account.id))]
    async fn read_back(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<super::ReadBack, PublishError> {
        let creds = Credentials::parse(account.credentials.expose())?;
        Ok(match self.find_earlier(account, &creds, post).await? {
            Some(found) => super::ReadBack::Found(found),
            None => super::ReadBack::Absent,
        })
    }

    #[tracing::instrument(skip_all, fields(network = "misskey", account = account.id))]
    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        let creds = Credentials::parse(account.credentials.expose())?;
        let m = measure_for_server(creds.max_text, &post.text);
        if !m.fits() {
            return Err(PublishError::rejected(format!(
                "too long for this server: {}",
                m.describe()
            )));
        }
        if post.outcome_unknown
            && let Some(found) = self.find_earlier(account, &creds, post).await?
        {
            tracing::info!(
                remote_id = %found.remote_id,
                "an earlier attempt was published: not posting again"
            );
            return Ok(found);
        }
        let resp = self
            .http(account)
            .post(&format!("{}/api/notes/create", base(&account.server)))
            .timeout(post.timeout)
            .json(&serde_json::json!({
                "i": creds.token,
                "text": post.text,
                "visibility": "public",
            }))
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        if resp.status().is_success() {
            let created: Created = resp.json().await.map_err(|e| PublishError::Retry {
                reason: Reason::new("the server's answer to the note was unreadable")
                    .with_detail(e.to_string()),
                after: None,
                // The note may exist: the read-back finds it.
                maybe_sent: true,
            })?;
            return Ok(created.created_note.receipt(&account.server));
        }
        Err(error_of(resp, "the note", self.clock.now()).await)
    }

    #[tracing::instrument(skip_all, fields(network = "misskey", account = account.id))]
    async fn delete(&self, account: &AccountRef, remote_id: &str) -> Result<(), PublishError> {
        let creds = Credentials::parse(account.credentials.expose())?;
        let resp = self
            .http(account)
            .post(&format!("{}/api/notes/delete", base(&account.server)))
            .json(&serde_json::json!({ "i": creds.token, "noteId": remote_id }))
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(());
        }
        let body: ErrorBody = resp.json().await.unwrap_or_default();
        // Already gone is what the caller wanted.
        if body.error.code == "NO_SUCH_NOTE" {
            return Ok(());
        }
        Err(judge(status, &body.error, None, "the deletion"))
    }

    /// The token still authenticates. `i` needs `read:account`, which picket does not
    /// ask for: a server that knows the token answers 403 `PERMISSION_DENIED` (it checks
    /// the token before the permission), one that does not 401.
    #[tracing::instrument(skip_all, fields(network = "misskey", account = account.id))]
    async fn verify(&self, account: &AccountRef) -> Result<Identity, PublishError> {
        let creds = Credentials::parse(account.credentials.expose())?;
        let resp = self
            .http(account)
            .post(&format!("{}/api/i", base(&account.server)))
            .json(&serde_json::json!({ "i": creds.token }))
            .send()
            .await
            .map_err(|e| transport_error(&e))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(Identity {
                handle: account.handle.clone(),
                url: None,
            });
        }
        let body: ErrorBody = resp.json().await.unwrap_or_default();
        if status == 403 && body.error.code == "PERMISSION_DENIED" {
            return Ok(Identity {
                handle: account.handle.clone(),
                url: None,
            });
        }
        Err(judge(status, &body.error, None, "the check of the account"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(code: &str, info: Option<serde_json::Value>) -> ErrorDetail {
        ErrorDetail {
            code: code.into(),
            message: "m".into(),
            info,
        }
    }

    #[test]
    fn answers_say_what_to_do_next() {
        assert!(matches!(
            judge(
                401,
                &detail("AUTHENTICATION_FAILED", None),
                None,
                "the note"
            ),
            PublishError::Reconnect(_)
        ));
        assert!(matches!(
            judge(
                429,
                &detail(
                    "RATE_LIMIT_EXCEEDED",
                    Some(serde_json::json!({ "resetMs": 1500.0 }))
                ),
                Some(Duration::from_secs(9)),
                "the note"
            ),
            PublishError::Retry { after: Some(d), maybe_sent: false, .. } if d == Duration::from_millis(1500)
        ));
        assert!(matches!(
            judge(500, &detail("INTERNAL_ERROR", None), None, "the note"),
            PublishError::Retry {
                maybe_sent: true,
                ..
            }
        ));
        assert!(matches!(
            judge(400, &detail("TOO_LONG", None), None, "the note"),
            PublishError::Rejected(_)
        ));
    }

    #[test]
    fn a_server_limit_read_at_enrolment_is_the_measure() {
        assert!(measure_for_server(Some(10), "0123456789").fits());
        assert!(!measure_for_server(Some(10), "0123456789a").fits());
        assert!(measure_for_server(None, &"a".repeat(3000)).fits());
    }
}
