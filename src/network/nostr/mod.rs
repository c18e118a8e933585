//! The Nostr adapter: signs a kind-1 note per post and sends it to the account's relays
//! over WebSocket (NIP-01), deletes with a kind-5 request (NIP-09), counts reactions,
//! reposts and replies with `REQ` (NIP-25, NIP-18, NIP-10).
//!
//! Two kinds of signer: a secret key picket holds (sealed like every credential), or a
//! NIP-46 remote signer ("bunker") that keeps the key with the participant; picket then
//! holds only its own client keypair and asks the bunker to `sign_event` over a relay.
//!
//! Idempotency is natural: `created_at` is the slot's scheduled instant, so a retry of
//! the same post is the same event id, and relays answer a second copy with `duplicate:`.
//! Re-signing yields a new signature but the same id, which relays still treat as a
//! duplicate; signed events are nevertheless cached per idempotency key in the process
//! so a retry does not ask a bunker again.
//!
//! Relays are opened through [`Http::websocket`]: for an account a visitor connected (and
//! its bunker's relays) each connection is guarded, wss:// to public addresses only, and
//! a relay message is at most [`super::guarded::MAX_BODY`].
//!
//! What it does not do: read relay limits (NIP-11), NIP-42 AUTH, proof of work, NIP-65
//! relay discovery, or pre-signed events; the receipt URL is a `nostr:nevent1…` URI
//! (NIP-21), not a link to any web gateway.
//!
//! The parts: [`event`] builds and signs notes and reads keys, [`relay`] speaks NIP-01
//! to relays over the guarded WebSocket and decides what their answers mean, [`bunker`]
//! is the NIP-46 remote signer; this file is the [`Network`] adapter that ties them.

pub mod bunker;
pub mod event;
pub mod relay;

pub use bunker::{
    Bunker, BunkerEnrollError, SignerError, bunker_uri_without_secret, enroll_bunker,
};
use event::{Signer, engagement_filters};
pub use event::{
    count_engagement, generate_client_keys, hashtags, links, nevent_uri, note, npub,
    parse_secret_key,
};
use relay::{broadcast, query};

pub use relay::{
    RelayAnswer, check_relay_url, decide, ok_answer, prefix_of, relays_of, send_event,
};

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use nostr::prelude::{Event, EventBuilder, EventId, Kind, PublicKey, Tag};
use serde::{Deserialize, Serialize};

use super::guarded::{Egress, Http};
use super::{
    AccountRef, Engagement, Enrolled, Identity, Network, OutgoingPost, PublishError, ReadBack,
    Receipt,
};
use crate::domain::NetworkKind;
use crate::domain::Secret;

/// A relay URL, key or bunker URI as typed that does not read; the message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(String);

/// How long engagement reads and verification wait for relays: they have no post timeout.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Signed events kept for retries; beyond this the cache starts over (re-signing is safe).
const CACHE_CAP: usize = 10_000;

/// What `AccountRef::credentials` holds for a Nostr account (JSON, sealed in the store).
#[derive(Serialize, Deserialize)]
#[serde(tag = "signer", rename_all = "lowercase")]
pub enum Credentials {
    /// picket holds the participant's secret key (hex).
    Key { secret_key: String },
    /// A NIP-46 remote signer: the bunker URI (with its relays; the one-time secret is
    /// spent at connect), picket's own client secret key (hex) and the user's public key.
    Bunker {
        uri: String,
        client_secret_key: String,
        user_public_key: String,
    },
}

impl Credentials {
    pub fn to_secret(&self) -> Secret {
        Secret::new(serde_json::to_string(self).expect("credentials serialize"))
    }

    fn parse(credentials: &Secret) -> Result<Credentials, PublishError> {
        serde_json::from_str(credentials.expose())
            .map_err(|_| PublishError::reconnect("the stored Nostr credentials are unreadable"))
    }
}

/// Enrolment: the relays a person typed (each argument may hold several), checked as
/// relay addresses. Nothing is connected to here.
pub fn enroll_relays(typed: &[String]) -> Result<Vec<String>, InvalidInput> {
    typed
        .iter()
        .flat_map(|r| relays_of(r))
        .map(|r| check_relay_url(&r))
        .collect()
}

/// Enrolment of an identity that signs with its secret key (picket then holds it, sealed).
pub fn enroll_key(nsec: &str) -> Result<Enrolled, InvalidInput> {
    let keys = parse_secret_key(nsec)?;
    Ok(Enrolled {
        handle: npub(&keys.public_key()),
        credentials: Credentials::Key {
            secret_key: keys.secret_key().to_secret_hex(),
        }
        .to_secret(),
    })
}

pub struct Nostr {
    /// Signed notes by idempotency key: a retry sends the very same event.
    signed: Mutex<HashMap<String, Event>>,
    egress: Egress,
}

impl Nostr {
    pub fn new(egress: Egress) -> Self {
        Nostr {
            signed: Mutex::new(HashMap::new()),
            egress,
        }
    }

    /// Relays (and the bunker's) of an account: guarded unless the operator added it.
    fn http(&self, account: &AccountRef) -> &Http {
        self.egress.for_account(account.trusted)
    }

    fn cached(&self, key: &str, text: &str, created_at: u64, author: &PublicKey) -> Option<Event> {
        let cache = crate::sync::lock(&self.signed);
        cache
            .get(key)
            .filter(|ev| {
                ev.content == text && ev.created_at.as_secs() == created_at && ev.pubkey == *author
            })
            .cloned()
    }

    fn remember(&self, key: &str, event: &Event) {
        let mut cache = crate::sync::lock(&self.signed);
        if cache.len() >= CACHE_CAP {
            cache.clear();
        }
        cache.insert(key.to_string(), event.clone());
    }

    fn forget(&self, key: &str) {
        crate::sync::lock(&self.signed).remove(key);
    }
}

fn created_at(post: &OutgoingPost) -> u64 {
    u64::try_from(post.scheduled_at.timestamp()).unwrap_or(0)
}

#[async_trait]
impl Network for Nostr {
    fn kind(&self) -> NetworkKind {
        NetworkKind::Nostr
    }

    #[tracing::instrument(skip_all, fields(network = "nostr", account = account.id))]
    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        let deadline = tokio::time::Instant::now() + post.timeout;
        let signer = Signer::of(account, self.http(account))?;
        let author = signer.public_key();
        let relays = relays_of(&account.server);
        let at = created_at(post);
        let event = match self.cached(&post.idempotency_key, &post.text, at, &author) {
            Some(ev) => ev,
            None => {
                let ev = signer.sign(note(&post.text, at), post.timeout).await?;
                self.remember(&post.idempotency_key, &ev);
                ev
            }
        };
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let answers = broadcast(self.http(account), &relays, &event, left).await;
        tracing::debug!(id = %event.id, ?answers, "relay answers");
        decide(&answers)?;
        self.forget(&post.idempotency_key);
        Ok(Receipt {
            remote_id: event.id.to_hex(),
            url: Some(nevent_uri(event.id, author, &relays)),
        })
    }

    /// A `REQ` for the note's event id on the account's relays: the id is a hash of the
    /// author, the text and the slot's instant, so it is known without signing anything.
    /// Absent only when every relay answered without it.
    #[tracing::instrument(skip_all, fields(network = "nostr", account = account.id))]
    async fn read_back(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<ReadBack, PublishError> {
        let author = Signer::of(account, self.http(account))?.public_key();
        let id = nostr::prelude::FinalizeUnsignedEvent::finalize_unsigned(
            note(&post.text, created_at(post)),
            author,
        )
        .id();
        let relays = relays_of(&account.server);
        let filters = [serde_json::json!({ "ids": [id.to_hex()] })];
        let deadline = tokio::time::Instant::now() + post.timeout.min(READ_TIMEOUT);
        let results = futures::future::join_all(
            relays
                .iter()
                .map(|r| query(self.http(account), r, &filters, deadline)),
        )
        .await;
        if results.iter().flatten().flatten().any(|ev| ev.id == id) {
            return Ok(ReadBack::Found(Receipt {
                remote_id: id.to_hex(),
                url: Some(nevent_uri(id, author, &relays)),
            }));
        }
        if results.is_empty() || results.iter().any(Result::is_err) {
            return Err(PublishError::retry(
                "not every relay answered whether it holds the note",
            ));
        }
        Ok(ReadBack::Absent)
    }

    async fn delete(&self, account: &AccountRef, remote_id: &str) -> Result<(), PublishError> {
        let id = EventId::from_hex(remote_id)
            .map_err(|_| PublishError::rejected("the stored post id is not a Nostr event id"))?;
        let signer = Signer::of(account, self.http(account))?;
        let builder = EventBuilder::new(Kind::EventDeletion, "")
            .tag(Tag::event(id))
            .tag(Tag::custom("k", ["1"]));
        let event = signer.sign(builder, READ_TIMEOUT).await?;
        let relays = relays_of(&account.server);
        decide(&broadcast(self.http(account), &relays, &event, READ_TIMEOUT).await)
    }

    async fn verify(&self, account: &AccountRef) -> Result<Identity, PublishError> {
        match Signer::of(account, self.http(account))? {
            Signer::Key(keys) => Ok(Identity {
                handle: npub(&keys.public_key()),
                url: None,
            }),
            Signer::Bunker { bunker, user } => {
                let pk = bunker
                    .public_key(READ_TIMEOUT)
                    .await
                    .map_err(SignerError::into_publish)?;
                if pk != user {
                    return Err(PublishError::reconnect(format!(
                        "the remote signer now signs as {}, not {}",
                        npub(&pk),
                        npub(&user)
                    )));
                }
                Ok(Identity {
                    handle: npub(&pk),
                    url: None,
                })
            }
        }
    }

    async fn engagement(
        &self,
        account: &AccountRef,
        remote_id: &str,
    ) -> Result<Option<Engagement>, PublishError> {
        let id = EventId::from_hex(remote_id)
            .map_err(|_| PublishError::rejected("the stored post id is not a Nostr event id"))?;
        let filters = engagement_filters(&id);
        let deadline = tokio::time::Instant::now() + READ_TIMEOUT;
        let relays = relays_of(&account.server);
        let results = futures::future::join_all(
            relays
                .iter()
                .map(|r| query(self.http(account), r, &filters, deadline)),
        )
        .await;
        if !results.is_empty() && results.iter().all(Result::is_err) {
            return Err(PublishError::retry("no relay answered"));
        }
        let events: Vec<Event> = results.into_iter().flatten().flatten().collect();
        Ok(Some(count_engagement(&id, events)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::prelude::{FinalizeEvent, Keys};

    #[test]
    fn a_panic_while_the_signed_cache_is_held_does_not_break_later_posts() {
        // Arrange: a request panics while holding the cache of signed notes.
        let nostr = Nostr::new(Egress::new(false));
        let keys = Keys::generate();
        let event = note("Striking today #strike", 1_800_000_000)
            .finalize(&keys)
            .unwrap();
        std::thread::scope(|s| {
            let _ = s
                .spawn(|| {
                    let _held = nostr.signed.lock().unwrap();
                    panic!("a request failed while holding the cache");
                })
                .join();
        });
        assert!(nostr.signed.is_poisoned());

        // Act: later posts remember, find and forget their signed notes as before.
        nostr.remember("k", &event);
        let found = nostr.cached("k", &event.content, 1_800_000_000, &keys.public_key());
        nostr.forget("k");

        // Assert
        assert_eq!(found.map(|e| e.id), Some(event.id));
        assert!(crate::sync::lock(&nostr.signed).is_empty());
    }
}
