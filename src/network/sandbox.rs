//! The sandbox network: posts go to a local receiver ([`crate::sandbox`]) that speaks a
//! small subset of the Mastodon client API (`POST /api/v1/statuses` with a bearer token
//! and `Idempotency-Key`). Rehearsals, demos and tests post here instead of to a real
//! network; the adapter handles answers exactly as a real one must (401 → reconnect,
//! 422 → rejected, 429 + Retry-After, 5xx and timeouts → retry).
//!
//! Its receiver's address is this host's own or one the operator typed, never a visitor's,
//! so it is reached through the trusted client.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use super::guarded::{Http, Request};
use super::{AccountRef, Identity, Network, OutgoingPost, PublishError, ReadBack, Reason, Receipt};
use crate::clock::Clock;
use crate::domain::NetworkKind;

pub struct Sandbox {
    client: Http,
    /// A `Retry-After` date counts from this clock's now (a rehearsal's compressed time).
    clock: Arc<dyn Clock>,
}

impl Sandbox {
    pub fn new(client: Http, clock: Arc<dyn Clock>) -> Self {
        Sandbox { client, clock }
    }
}

#[derive(Deserialize)]
struct Status {
    id: String,
    url: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

#[async_trait]
impl Network for Sandbox {
    fn kind(&self) -> NetworkKind {
        NetworkKind::Sandbox
    }

    #[tracing::instrument(skip_all, fields(network = "sandbox", account = account.id))]
    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        let url = format!("{}/api/v1/statuses", account.server.trim_end_matches('/'));
        let resp = self
            .client
            .post(&url)
            .bearer_auth(account.credentials.expose())
            .header("Idempotency-Key", &post.idempotency_key)
            .timeout(post.timeout)
            .json(&serde_json::json!({
                "status": post.text,
                "scheduled_for": post.scheduled_at,
                "slot": post.slot_key,
            }))
            .send()
            .await
            .map_err(|e| super::transport_error(&e))?;
        let status = resp.status();
        if status.is_success() {
            let s: Status = resp.json().await.map_err(|e| super::transport_error(&e))?;
            return Ok(Receipt {
                remote_id: s.id,
                url: s.url,
            });
        }
        let after = super::retry_after(resp.headers(), self.clock.now());
        let said = resp
            .json::<ErrorBody>()
            .await
            .map(|b| b.error)
            .unwrap_or_default();
        Err(answer_error(status, &said, after))
    }

    /// The receiver's own post sent with this key by this account, as it dedupes them.
    async fn read_back(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<ReadBack, PublishError> {
        let url = format!(
            "{}?idempotency_key={}",
            endpoint(account, "sandbox/posts"),
            url::form_urlencoded::byte_serialize(post.idempotency_key.as_bytes())
                .collect::<String>()
        );
        let resp = self
            .client
            .get(&url)
            .bearer_auth(account.credentials.expose())
            .timeout(post.timeout)
            .send()
            .await
            .map_err(|e| super::transport_error(&e))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(Refused::Status(status).into_publish());
        }
        let found: Vec<Status> = resp.json().await.map_err(|e| super::transport_error(&e))?;
        Ok(match found.into_iter().next() {
            Some(s) => ReadBack::Found(Receipt {
                url: Some(format!("sandbox://posts/{}", s.id)),
                remote_id: s.id,
            }),
            None => ReadBack::Absent,
        })
    }

    async fn verify(&self, account: &AccountRef) -> Result<Identity, PublishError> {
        let req = self
            .client
            .get(&endpoint(account, "accounts/verify_credentials"));
        small_call(req, account, false)
            .await
            .map_err(Refused::into_publish)?;
        Ok(Identity {
            handle: account.handle.clone(),
            url: None,
        })
    }

    async fn delete(&self, account: &AccountRef, remote_id: &str) -> Result<(), PublishError> {
        let req = self
            .client
            .delete(&endpoint(account, &format!("statuses/{remote_id}")));
        match small_call(req, account, true).await {
            // Already gone is what was asked for.
            Err(Refused::Status(StatusCode::NOT_FOUND)) => Ok(()),
            other => other.map_err(Refused::into_publish),
        }
    }
}

fn endpoint(account: &AccountRef, path: &str) -> String {
    format!("{}/api/v1/{path}", account.server.trim_end_matches('/'))
}

/// Map a refused post to what the dispatcher should do: 401/403 mean reconnect, 400/422
/// a refused text, anything else is worth trying again. The reason is picket's words with
/// the status code; what the receiver said (`said`) is only the detail.
fn answer_error(
    status: StatusCode,
    said: &str,
    after: Option<std::time::Duration>,
) -> PublishError {
    let code = status.as_u16();
    let reason = |summary: String| Reason::new(summary).with_detail(said);
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PublishError::Reconnect(reason(
            format!("the sandbox no longer accepts the account's token (HTTP {code})"),
        )),
        StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => PublishError::Rejected(
            reason(format!("the sandbox refused the post (HTTP {code})")),
        ),
        StatusCode::TOO_MANY_REQUESTS => PublishError::Retry {
            reason: reason(format!("rate limited by the sandbox (HTTP {code})")),
            after,
            maybe_sent: false,
        },
        _ => PublishError::Retry {
            reason: reason(format!("the sandbox had a temporary failure (HTTP {code})")),
            after,
            // A 5xx may come from a proxy after the server committed the post.
            maybe_sent: status.is_server_error(),
        },
    }
}

/// Why a short call failed: the status it was answered with, or the transport.
enum Refused {
    Status(StatusCode),
    Other(PublishError),
}

impl Refused {
    fn into_publish(self) -> PublishError {
        match self {
            Refused::Other(e) => e,
            Refused::Status(s @ (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN)) => {
                PublishError::reconnect(format!(
                    "the sandbox refused the token (HTTP {})",
                    s.as_u16()
                ))
            }
            Refused::Status(s) if s.is_client_error() => PublishError::rejected(format!(
                "the sandbox refused the request (HTTP {})",
                s.as_u16()
            )),
            Refused::Status(s) => PublishError::retry(format!(
                "the sandbox had a temporary failure (HTTP {})",
                s.as_u16()
            )),
        }
    }
}

/// A short authenticated call (verify, delete): 2xx is done, anything else is the status
/// it was answered with (see [`Refused::into_publish`]).
async fn small_call(
    req: Request,
    account: &AccountRef,
    changes_state: bool,
) -> Result<(), Refused> {
    let resp = req
        .bearer_auth(account.credentials.expose())
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| Refused::Other(super::transport_error(&e)))?;
    match resp.status() {
        s if s.is_success() => Ok(()),
        // Anything but a refusal may come after the receiver acted on the request.
        s if !s.is_client_error() && changes_state => Err(Refused::Other(PublishError::Retry {
            reason: Reason::new(format!(
                "the sandbox had a temporary failure (HTTP {})",
                s.as_u16()
            )),
            after: None,
            maybe_sent: true,
        })),
        s => Err(Refused::Status(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_receivers_words_are_only_the_detail_of_a_refused_post() {
        let said = "SECRET-SANDBOX-91d0 says no";
        for (code, kind) in [
            (401, "no longer accepts"),
            (422, "refused the post (HTTP 422)"),
            (429, "rate limited by the sandbox (HTTP 429)"),
            (503, "temporary failure (HTTP 503)"),
        ] {
            let e = answer_error(StatusCode::from_u16(code).unwrap(), said, None);
            assert!(e.reason().summary().contains(kind), "{code}: {e}");
            assert!(!e.to_string().contains("SECRET"), "{code}: {e}");
            assert_eq!(e.reason().detail(), Some(said));
        }
    }
}
