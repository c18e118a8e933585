//! Reminders in a browser (Web Push): a participant subscribes the browser they are signed
//! in on, or unsubscribes it. The subscription is sealed with the credentials key before
//! the store sees it (its endpoint is a capability URL), and the store recognises the
//! browser by the endpoint's hash.

use chrono::{DateTime, Utc};

use crate::crypto::Vault;
use crate::network::push::Subscription;
use crate::store::{ParticipantId, Store, StoredPushSubscription};

use super::{Missing, ParticipationError};

/// What a subscription is sealed for: it never opens as credentials or anything else.
const PURPOSE: &str = "push subscription";

/// Browsers kept per participant; subscribing another forgets the oldest.
pub const MAX_BROWSERS: u32 = 10;

/// How the store recognises a browser: SHA-256 of its endpoint.
pub fn endpoint_hash(endpoint: &str) -> String {
    super::token_hash(endpoint)
}

/// Remind `participant` in the browser that made `subscription`.
pub async fn subscribe(
    store: &dyn Store,
    vault: &Vault,
    participant: ParticipantId,
    subscription: &Subscription,
    now: DateTime<Utc>,
) -> Result<(), ParticipationError> {
    if store.get_participant(participant).await?.is_none() {
        return Err(ParticipationError::NotFound(Missing::Participant));
    }
    let sealed = vault.seal_purpose(PURPOSE, &subscription.to_json());
    store
        .save_push_subscription(
            participant,
            &endpoint_hash(subscription.endpoint()),
            &sealed,
            MAX_BROWSERS,
            now,
        )
        .await?;
    Ok(())
}

/// Stop reminding `participant` in the browser whose subscription has `endpoint`. False
/// when it was not theirs (or not subscribed).
pub async fn unsubscribe(
    store: &dyn Store,
    participant: ParticipantId,
    endpoint: &str,
) -> Result<bool, ParticipationError> {
    // Hashed as subscribing stored it: in the URL's normal form.
    let endpoint = url::Url::parse(endpoint).map_or_else(|_| endpoint.to_string(), String::from);
    Ok(store
        .delete_push_subscription(participant, &endpoint_hash(&endpoint))
        .await?)
}

/// The subscription as the browser gave it; `None` when it cannot be opened with this key
/// (the key changed) or was written by something else.
pub fn open(vault: &Vault, stored: &StoredPushSubscription) -> Option<Subscription> {
    let bytes = vault.open_purpose(PURPOSE, &stored.sealed).ok()?;
    Subscription::from_json(&bytes)
}
