//! The NIP-46 remote signer ("bunker"): picket's client keys talk to the participant's
//! signer over its relays (NIP-44 encrypted `connect`, `get_public_key`, `sign_event`),
//! so the participant's own key never reaches picket.

use std::time::Duration;

use nostr::prelude::{
    Event, FinalizeEvent, Keys, Kind, Nip44, NostrConnectEventBuilder, NostrConnectMessage,
    NostrConnectRequest, NostrConnectResponse, NostrConnectUri, PublicKey, ResponseResult,
    Timestamp, UnsignedEvent,
};
use serde_json::{Value, json};

use crate::network::guarded::Http;
use crate::network::{Enrolled, PublishError, Reason};

use super::{Credentials, InvalidInput, generate_client_keys, npub};

use super::relay::{connect, next_message, send_json};

/// Why an identity could not be enrolled through its remote signer.
#[derive(Debug, thiserror::Error)]
pub enum BunkerEnrollError {
    /// The bunker URI does not read.
    #[error("{0}")]
    Invalid(#[from] InvalidInput),
    /// The signer did not connect (not approved, offline, relay down).
    #[error("the remote signer did not connect: {0}")]
    NotConnected(SignerError),
}

/// Enrolment of an identity that signs through the NIP-46 remote signer at `uri`: picket
/// makes client keys, connects (a human may have to approve it in their signer app, hence
/// the long `wait`) and keeps only its own keys and the user's public key.
pub async fn enroll_bunker(
    http: Http,
    uri: &str,
    wait: Duration,
) -> Result<Enrolled, BunkerEnrollError> {
    let uri = uri.trim();
    let (session, secret) = Bunker::new(uri, generate_client_keys(), http)?;
    let user = session
        .connect(secret, wait)
        .await
        .map_err(BunkerEnrollError::NotConnected)?;
    let credentials = Credentials::Bunker {
        uri: bunker_uri_without_secret(uri),
        client_secret_key: session.client.secret_key().to_secret_hex(),
        user_public_key: user.to_hex(),
    };
    Ok(Enrolled {
        handle: npub(&user),
        credentials: credentials.to_secret(),
    })
}

/// The bunker URI without its one-time `secret` (spent at `connect`: no need to keep it).
pub fn bunker_uri_without_secret(uri: &str) -> String {
    let Ok(mut u) = url::Url::parse(uri) else {
        return uri.to_string();
    };
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "secret")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut().clear().extend_pairs(kept);
    u.to_string()
}

/// Why a call to a remote signer failed.
#[derive(Debug)]
pub enum SignerError {
    /// The signer refused (its message): a revoked permission means reconnect.
    Refused(String),
    /// No answer: relay down, signer offline.
    Unavailable(String),
}

impl SignerError {
    /// The signer's own words are only the detail (see [`Reason`]).
    pub(super) fn into_publish(self) -> PublishError {
        match self {
            SignerError::Refused(m) if revoked(&m) => PublishError::Reconnect(
                Reason::new("the remote signer refused to sign: picket's permission was withdrawn")
                    .with_detail(m),
            ),
            SignerError::Refused(m) => PublishError::Retry {
                reason: Reason::new("the remote signer refused to sign").with_detail(m),
                after: None,
                maybe_sent: false,
            },
            SignerError::Unavailable(m) => PublishError::Retry {
                reason: Reason::new("the remote signer did not answer").with_detail(m),
                after: None,
                maybe_sent: false,
            },
        }
    }
}

impl std::fmt::Display for SignerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignerError::Refused(m) => write!(f, "the remote signer refused: {m}"),
            SignerError::Unavailable(m) => write!(f, "the remote signer did not answer: {m}"),
        }
    }
}

/// Signer messages that mean the participant took picket's permission away.
pub(super) fn revoked(message: &str) -> bool {
    let m = message.to_lowercase();
    [
        "revoked",
        "unauthorized",
        "not authorized",
        "permission",
        "denied",
        "not allowed",
        "forbidden",
        "not connected",
    ]
    .iter()
    .any(|w| m.contains(w))
}

/// A NIP-46 session: picket's client keys, the bunker's key and relays, and the client
/// its relays are opened with (guarded unless the operator typed the bunker URI).
pub struct Bunker {
    pub client: Keys,
    pub signer: PublicKey,
    pub relays: Vec<String>,
    http: Http,
}

impl Bunker {
    /// From a `bunker://` URI and picket's client keys.
    pub fn new(
        uri: &str,
        client: Keys,
        http: Http,
    ) -> Result<(Bunker, Option<String>), InvalidInput> {
        let invalid = |m: &str| InvalidInput(m.to_string());
        let parsed =
            NostrConnectUri::parse(uri).map_err(|_| invalid("not a valid bunker:// URI"))?;
        let signer = *parsed
            .remote_signer_public_key()
            .ok_or_else(|| invalid("expected bunker://<remote-signer-pubkey>?relay=…"))?;
        let relays: Vec<String> = parsed.relays().iter().map(|r| r.to_string()).collect();
        if relays.is_empty() {
            return Err(invalid("the bunker URI names no relay"));
        }
        let secret = parsed.secret().map(str::to_string);
        Ok((
            Bunker {
                client,
                signer,
                relays,
                http,
            },
            secret,
        ))
    }

    /// Send `request` and wait for the signer's answer on the first relay that connects.
    pub async fn call(
        &self,
        request: NostrConnectRequest,
        timeout: Duration,
    ) -> Result<ResponseResult, SignerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = String::from("no relay");
        for relay in &self.relays {
            match tokio::time::timeout_at(deadline, self.call_on(relay, &request)).await {
                Ok(Ok(r)) => return Ok(r),
                Ok(Err(SignerError::Unavailable(e))) => last = format!("{relay}: {e}"),
                Ok(Err(refused)) => return Err(refused),
                Err(_) => return Err(SignerError::Unavailable(format!("{relay}: timed out"))),
            }
        }
        Err(SignerError::Unavailable(last))
    }

    async fn call_on(
        &self,
        relay: &str,
        request: &NostrConnectRequest,
    ) -> Result<ResponseResult, SignerError> {
        let unavailable = SignerError::Unavailable;
        let mut ws = connect(&self.http, relay).await.map_err(unavailable)?;
        let me = self.client.public_key();
        // Listen before asking, so a fast signer's answer is not missed.
        let since = Timestamp::now().as_secs().saturating_sub(10);
        send_json(
            &mut ws,
            &json!(["REQ", "picket-nip46", {"kinds": [24133], "#p": [me.to_hex()], "since": since}]),
        )
        .await
        .map_err(unavailable)?;
        let message = NostrConnectMessage::request(request);
        let id = message.id().to_string();
        let event = NostrConnectEventBuilder::new(self.signer, message)
            .finalize(&self.client)
            .map_err(|e| SignerError::Unavailable(format!("cannot encrypt the request: {e}")))?;
        send_json(&mut ws, &json!(["EVENT", event]))
            .await
            .map_err(unavailable)?;
        let method = request.method();
        loop {
            let m = next_message(&mut ws).await.map_err(unavailable)?;
            match m.first().and_then(Value::as_str) {
                Some("OK") if m.get(2).and_then(Value::as_bool) == Some(false) => {
                    let msg = m.get(3).and_then(Value::as_str).unwrap_or_default();
                    return Err(SignerError::Unavailable(format!(
                        "the relay refused the request: {msg}"
                    )));
                }
                Some("EVENT") => {}
                _ => continue,
            }
            let Some(ev) = m
                .get(2)
                .and_then(|v| serde_json::from_value::<Event>(v.clone()).ok())
            else {
                continue;
            };
            if ev.pubkey != self.signer || ev.kind != Kind::NostrConnect || ev.verify().is_err() {
                continue;
            }
            let Ok(plain) = self.client.nip44_decrypt(&ev.pubkey, &ev.content) else {
                continue;
            };
            let Ok(NostrConnectMessage::Response {
                id: rid,
                result,
                error,
            }) = NostrConnectMessage::from_json(&plain)
            else {
                continue;
            };
            if rid != id {
                continue;
            }
            let _ = ws.close(None).await;
            return match NostrConnectResponse::parse(method, result, error) {
                Ok(NostrConnectResponse { error: Some(e), .. }) if !e.is_empty() => {
                    Err(SignerError::Refused(e))
                }
                Ok(NostrConnectResponse {
                    result: Some(r), ..
                }) if r.is_auth_url() => Err(SignerError::Refused(
                    "the signer asks the participant to approve picket in a browser".into(),
                )),
                Ok(NostrConnectResponse {
                    result: Some(r), ..
                }) => Ok(r),
                Ok(_) => Err(SignerError::Refused("an empty answer".into())),
                Err(e) => Err(SignerError::Refused(format!("an unreadable answer: {e}"))),
            };
        }
    }

    /// `connect` with the URI's secret, then `get_public_key`: the user's key, which
    /// may differ from the bunker's own.
    pub async fn connect(
        &self,
        secret: Option<String>,
        timeout: Duration,
    ) -> Result<PublicKey, SignerError> {
        self.call(
            NostrConnectRequest::Connect {
                remote_signer_public_key: self.signer,
                secret,
            },
            timeout,
        )
        .await?;
        self.public_key(timeout).await
    }

    pub async fn public_key(&self, timeout: Duration) -> Result<PublicKey, SignerError> {
        self.call(NostrConnectRequest::GetPublicKey, timeout)
            .await?
            .to_get_public_key()
            .map_err(|e| SignerError::Refused(e.to_string()))
    }

    pub async fn sign(
        &self,
        unsigned: UnsignedEvent,
        timeout: Duration,
    ) -> Result<Event, SignerError> {
        self.call(NostrConnectRequest::SignEvent(unsigned), timeout)
            .await?
            .to_sign_event()
            .map_err(|e| SignerError::Refused(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nostr::prelude::{FinalizeUnsignedEvent, NostrConnectMethod, SignEvent};

    use super::super::event::note;

    fn keys() -> Keys {
        super::super::event::parse_secret_key(
            "6b911fd37cdf5c81d4c0adb1ab7fa822ed253ab0ad9aa18d77257c88b29b718e",
        )
        .unwrap()
    }

    #[test]
    fn a_signers_refusal_is_only_the_detail() {
        let said = "SECRET-SIGNER-77: permission denied, see https://evil.example";
        for e in [
            SignerError::Refused(said.into()).into_publish(),
            SignerError::Refused("SECRET-SIGNER-77 busy".into()).into_publish(),
            SignerError::Unavailable(format!("the relay refused the request: {said}"))
                .into_publish(),
        ] {
            assert!(e.reason().summary().starts_with("the remote signer"), "{e}");
            assert!(!e.to_string().contains("SECRET"), "{e}");
            assert!(
                e.reason()
                    .detail()
                    .is_some_and(|d| d.contains("SECRET-SIGNER-77")),
                "{e:?}"
            );
        }
    }

    #[test]
    fn a_signer_that_revokes_permission_asks_for_a_reconnect() {
        let revoked = SignerError::Refused("Permission denied for sign_event".into());
        let busy = SignerError::Refused("try later".into());
        assert!(matches!(revoked.into_publish(), PublishError::Reconnect(_)));
        assert!(matches!(busy.into_publish(), PublishError::Retry { .. }));
    }

    #[test]
    fn a_nip46_sign_request_round_trips_through_nip44() {
        // Arrange: picket's client keys, a bunker key, the user's key.
        let client = Keys::generate();
        let bunker = Keys::generate();
        let user = keys();
        let unsigned = note("#Strike now", 1_800_000_000).finalize_unsigned(user.public_key());
        let request =
            NostrConnectMessage::request(&NostrConnectRequest::SignEvent(unsigned.clone()));
        let rid = request.id().to_string();

        // Act: client → bunker, bunker signs, bunker → client.
        let wire = NostrConnectEventBuilder::new(bunker.public_key(), request)
            .finalize(&client)
            .unwrap();
        let plain = bunker.nip44_decrypt(&wire.pubkey, &wire.content).unwrap();
        let got = NostrConnectMessage::from_json(&plain)
            .unwrap()
            .to_request()
            .unwrap();
        let NostrConnectRequest::SignEvent(to_sign) = got else {
            panic!("expected sign_event");
        };
        let signed = user.sign_event(to_sign).unwrap();
        let reply = NostrConnectMessage::response(
            rid,
            NostrConnectResponse::with_result(ResponseResult::SignEvent(Box::new(signed))),
        );
        let back = NostrConnectEventBuilder::new(client.public_key(), reply)
            .finalize(&bunker)
            .unwrap();
        let plain = client.nip44_decrypt(&back.pubkey, &back.content).unwrap();
        let NostrConnectMessage::Response { result, error, .. } =
            NostrConnectMessage::from_json(&plain).unwrap()
        else {
            panic!("expected a response");
        };
        let event = NostrConnectResponse::parse(NostrConnectMethod::SignEvent, result, error)
            .unwrap()
            .result
            .unwrap()
            .to_sign_event()
            .unwrap();

        // Assert
        assert_eq!(wire.kind, Kind::NostrConnect);
        assert_eq!(event.id, unsigned.compute_id());
        assert!(event.verify().is_ok());
    }
}
