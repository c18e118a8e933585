//! The campaign's own broadcast channels: sending one announcement to a Matrix room, a
//! Telegram channel (a bot) or a Discord webhook, and what the answer means.
//!
//! Each attempt sends the stored text under the stored transaction id and answers an
//! [`Attempt`]: sent (with the id the service gave it, and how long to leave the channel
//! alone when its rate-limit headers say the budget is spent), retry (when, if the
//! service said), rejected for good, or unknown. What each service guarantees differs
//! (see docs/networks.md):
//!
//! - Matrix has idempotency: a `PUT` with the same transaction id from the same access
//!   token is the same event, so every failure short of a refusal is retried.
//! - Telegram's Bot API and Discord's webhooks have none, and a bot cannot read a channel's
//!   history back: an answer lost after the request may have arrived is [`Attempt::Unknown`]
//!   and not sent again, so an announcement is never there twice.
//!
//! Channels are named by the operator (host settings, campaign files on this host), so
//! they are reached through the trusted client, which still follows no redirect, caps the
//! answer and has a deadline. No answer body reaches a log or a page: reasons are picket's
//! own words with the service's status and error code. Tokens never appear in reasons
//! (the guarded client leaves URLs out of its errors, and Telegram's carries the token).

pub mod discord;
pub mod matrix;
pub mod telegram;

use std::time::Duration;

use super::guarded::{Http, HttpError};
use crate::domain::Secret;

/// How long one attempt may take, connecting included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a channel is, with its token.
#[derive(Debug, Clone)]
pub enum Target {
    /// A room on a Matrix homeserver; `room` is an id (`!..`) or alias (`#..`).
    Matrix {
        homeserver: String,
        room: String,
        token: Secret,
    },
    /// A Telegram channel (`@name` or a chat id), through the Bot API at `api`.
    Telegram {
        api: String,
        chat: String,
        token: Secret,
    },
    /// A Discord webhook: its whole address is the secret.
    Discord { webhook: Secret },
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The channel has it. `pause`: the service said its budget is spent; send nothing
    /// more to this channel before that long.
    Sent {
        remote_id: Option<String>,
        pause: Option<Duration>,
    },
    /// Not delivered, worth trying again; `after` is what the service asked for.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Refused for good (bad token, unknown room or chat, text refused).
    Rejected(String),
    /// The request may have arrived and the answer was lost, on a service that cannot be
    /// asked: not sent again.
    Unknown(String),
}

impl Target {
    /// Whether a repeat of an attempt is the same message (Matrix's transaction ids), so
    /// an attempt with an unknown outcome may be made again.
    pub fn idempotent(&self) -> bool {
        matches!(self, Target::Matrix { .. })
    }

    pub fn service(&self) -> &'static str {
        match self {
            Target::Matrix { .. } => "Matrix",
            Target::Telegram { .. } => "Telegram",
            Target::Discord { .. } => "Discord",
        }
    }
}

/// Send `text` to `target` as the message with transaction id `txn_id`, within
/// [`ATTEMPT_TIMEOUT`] all told (a Matrix alias lookup included), so a claim's lease
/// outlasts any attempt.
pub async fn send(http: &Http, target: &Target, txn_id: &str, text: &str) -> Attempt {
    let attempt = async {
        match target {
            Target::Matrix {
                homeserver,
                room,
                token,
            } => matrix::send(http, homeserver, room, token, txn_id, text).await,
            Target::Telegram { api, chat, token } => {
                telegram::send(http, api, chat, token, text).await
            }
            Target::Discord { webhook } => discord::send(http, webhook, text).await,
        }
    };
    match tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await {
        Ok(a) => a,
        Err(_) if target.idempotent() => Attempt::Retry {
            reason: format!("{} did not answer in time", target.service()),
            after: None,
        },
        Err(_) => Attempt::Unknown(format!(
            "{} did not answer in time; not sent again, since it cannot be asked whether \
             the message arrived",
            target.service()
        )),
    }
}

/// An error with no usable answer, for services without idempotency: nothing sent is
/// worth retrying, a request that may have arrived is not.
fn without_answer(e: HttpError, service: &str) -> Attempt {
    match e {
        HttpError::Refused(r) => Attempt::Rejected(r.to_string()),
        e if !e.maybe_sent() => Attempt::Retry {
            reason: format!("{service}: {e}"),
            after: None,
        },
        e => Attempt::Unknown(format!(
            "{service} may have received it but the answer was lost ({e}); not sent again, \
             since {service} cannot be asked whether it arrived"
        )),
    }
}

/// Seconds as a header or JSON field gives them (whole or fractional), capped at a day.
fn seconds(v: f64) -> Option<Duration> {
    (v.is_finite() && v >= 0.0).then(|| Duration::from_secs_f64(v.min(86_400.0)))
}
