//! The sandbox network: posts go to a local receiver ([`crate::sandbox`]) that speaks a
//! small subset of the Mastodon client API (`POST /api/v1/statuses` with a bearer token
//! and `Idempotency-Key`). Rehearsals, demos and tests post here instead of to a real
//! network; the adapter handles answers exactly as a real one must (401 → reconnect,
//! 422 → rejected, 429 + Retry-After, 5xx and timeouts → retry).
//!
//! Its receiver's address is this host's own or one the operator typed, never a visitor's,
//! so it is reached through the trusted client.

use async_trait::async_trait;
use reqwest::StatusCode;
use serde::Deserialize;

use super::guarded::{Http, Request};
use super::{AccountRef, Identity, Network, NetworkKind, OutgoingPost, PublishError, Receipt};

pub struct Sandbox {
    client: Http,
}

impl Sandbox {
    pub fn new(client: Http) -> Self {
        Sandbox { client }
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
        let after = super::retry_after(resp.headers(), chrono::Utc::now());
        let reason = match resp.json::<ErrorBody>().await {
            Ok(b) => format!("{status}: {}", b.error),
            Err(_) => status.to_string(),
        };
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => PublishError::Reconnect(reason),
            StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST => {
                PublishError::Rejected(reason)
            }
            _ => PublishError::Retry {
                reason,
                after,
                // A 5xx may come from a proxy after the server committed the post.
                maybe_sent: status.is_server_error(),
            },
        })
    }

    async fn verify(&self, account: &AccountRef) -> Result<Identity, PublishError> {
        let req = self
            .client
            .get(&endpoint(account, "accounts/verify_credentials"));
        small_call(req, account, false).await?;
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
            Err(PublishError::Rejected(reason)) if reason.starts_with("404") => Ok(()),
            other => other,
        }
    }
}

fn endpoint(account: &AccountRef, path: &str) -> String {
    format!("{}/api/v1/{path}", account.server.trim_end_matches('/'))
}

/// A short authenticated call (verify, delete): 2xx is done, 401/403 means reconnect,
/// other 4xx are refusals, anything else is worth trying again.
async fn small_call(
    req: Request,
    account: &AccountRef,
    changes_state: bool,
) -> Result<(), PublishError> {
    let resp = req
        .bearer_auth(account.credentials.expose())
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| super::transport_error(&e))?;
    match resp.status() {
        s if s.is_success() => Ok(()),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(PublishError::Reconnect(
            "the sandbox refused the token".into(),
        )),
        s if s.is_client_error() => Err(PublishError::Rejected(s.to_string())),
        s => Err(PublishError::Retry {
            reason: s.to_string(),
            after: None,
            maybe_sent: changes_state,
        }),
    }
}
