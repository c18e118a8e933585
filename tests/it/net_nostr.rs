//! The Nostr adapter end to end against a real relay (PyPI `nostr-relay`, started by
//! `scripts/servers/nostr-relay.sh`; its URL in `PICKET_TEST_NOSTR_RELAY`): accounts are
//! added with the real `picket` binary, `picket serve` publishes, and the notes are read
//! back from the relay with `REQ`. The NIP-46 tests run a tiny bunker in the test,
//! answering `connect`, `get_public_key` and `sign_event` over the same relay.

use std::process::{Command, Output};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{SinkExt, StreamExt};
use nostr::prelude::{
    Event, FinalizeEvent, Keys, Kind, Nip44, NostrConnectEventBuilder, NostrConnectMessage,
    NostrConnectRequest, NostrConnectResponse, PublicKey, ResponseResult, SignEvent, ToBech32,
};
use picket::store::{AccountId, AccountStatus, OutboxState};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::support::{Installation, Options, eventually, require_server, rfc, unused_port};

const KEY: [u8; 32] = [7; 32];

/// The relay URL, or None (the test skipped) when no relay was started; CI requires one.
fn relay() -> Option<String> {
    require_server("PICKET_TEST_NOSTR_RELAY")
}

/// A temporary picket: database, campaigns folder, the real binary.
struct Picket {
    inst: Installation,
}

impl std::ops::Deref for Picket {
    type Target = Installation;
    fn deref(&self) -> &Installation {
        &self.inst
    }
}

impl Picket {
    fn new(campaign_toml: &str) -> Picket {
        let inst = Options::default()
            .without_bundled()
            .campaign("nostr-e2e", campaign_toml)
            .config("[scheduler]\nlease_secs = 5\nrequest_timeout_secs = 5\n")
            .key(KEY)
            .log_level("debug")
            .install();
        Picket { inst }
    }

    /// `picket account add nostr ...`; the new account's id and what the command said.
    fn add_nostr(&self, args: &[&str]) -> (i64, Output) {
        let mut all = vec!["account", "add", "nostr"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let id = stdout
            .split_whitespace()
            .nth(3)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no account id in {stdout:?}"));
        (id, out)
    }
}

fn campaign(start: DateTime<Utc>, end: DateTime<Utc>, posts: &str) -> String {
    campaign_windows(&[(start, end)], posts)
}

fn campaign_windows(windows: &[(DateTime<Utc>, DateTime<Utc>)], posts: &str) -> String {
    let windows = windows
        .iter()
        .map(|(s, e)| format!("{{ start = \"{}\", end = \"{}\" }}", rfc(*s), rfc(*e)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"id = "nostr-e2e"
title = "Nostr strike"
hashtag = "TestStrike"
networks = ["nostr"]

[strike]
windows = [{windows}]
min_interval = "5m"

{posts}

[templates]
notice = ["On #{{{{ hashtag }}}} strike today. Join: {{{{ invite_link }}}}"]
again = ["Still on #{{{{ hashtag }}}} strike 🔥 罷工. {{{{ invite_link }}}}"]
"#
    )
}

const START_ONLY: &str =
    "[[posts]]\nname = \"notice\"\nwhen = \"start\"\ntemplate = \"notice\"\nwindow = \"30m\"\n";

/// Every event the relay has for `filter`, until EOSE, each once.
///
/// A relay may send one event twice on a subscription: from its store and again live,
/// when the event arrives while the stored events are being read (nostr-relay does this).
/// Clients go by event id, so this does too.
async fn req(relay: &str, filter: Value) -> Vec<Event> {
    let (mut ws, _) = tokio_tungstenite::connect_async(relay).await.unwrap();
    ws.send(Message::Text(
        json!(["REQ", "t", filter]).to_string().into(),
    ))
    .await
    .unwrap();
    let mut events = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(m)) = ws.next().await {
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            match v[0].as_str() {
                Some("EVENT") => {
                    let ev: Event = serde_json::from_value(v[2].clone()).unwrap();
                    if !events.iter().any(|e: &Event| e.id == ev.id) {
                        events.push(ev);
                    }
                }
                Some("EOSE") => return,
                _ => {}
            }
        }
    })
    .await;
    read.expect("the relay answers REQ with EOSE");
    events
}

async fn notes_by(relay: &str, author: &PublicKey) -> Vec<Event> {
    req(relay, json!({"authors": [author.to_hex()], "kinds": [1]})).await
}

/// The notes of `author` on the relay, once there are `n`.
async fn wait_for_notes(relay: &str, author: &PublicKey, n: usize, limit: Duration) -> Vec<Event> {
    eventually(limit, &format!("{n} note(s) on the relay"), async || {
        let notes = notes_by(relay, author).await;
        match notes.len() {
            found if found >= n => Ok(notes),
            found => Err(format!("{found} so far")),
        }
    })
    .await
}

fn tag_values(ev: &Event, name: &str) -> Vec<String> {
    ev.tags
        .iter()
        .filter(|t| t.kind() == name)
        .filter_map(|t| t.content().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_publishes_one_note_per_slot_with_tags_and_nothing_after_withdraw() {
    let Some(relay) = relay() else { return };
    // Arrange: a key added with --nsec; a campaign of two windows, the first starting in
    // 15 s, the second a minute later; two posts at the start of each.
    let keys = Keys::generate();
    let nsec = keys.secret_key().to_bech32().unwrap();
    let start = Utc::now() + chrono::Duration::seconds(15);
    let posts = format!(
        "{START_ONLY}\n[[posts]]\nname = \"again\"\nwhen = \"start\"\ntemplate = \"again\"\nwindow = \"30m\"\n"
    );
    let second = start + chrono::Duration::seconds(60);
    let picket = Picket::new(&campaign_windows(
        &[
            (start, start + chrono::Duration::seconds(20)),
            (second, second + chrono::Duration::hours(1)),
        ],
        &posts,
    ));
    let (account, added) = picket.add_nostr(&["--relay", &relay, "--nsec", &nsec]);
    let npub = keys.public_key().to_bech32().unwrap();
    assert!(String::from_utf8_lossy(&added.stdout).contains(&npub));
    assert!(String::from_utf8_lossy(&added.stderr).contains("remote signer"));
    picket.run(&[
        "join",
        "nostr-e2e",
        "--account",
        &account.to_string(),
        "--tz",
        "UTC",
    ]);
    let log = picket.log_path();

    // Act: serve until the two notes of the start are on the relay, then withdraw.
    let serve = picket.serve().await;
    let notes = wait_for_notes(&relay, &keys.public_key(), 2, Duration::from_secs(90)).await;
    picket.run(&["withdraw", "nostr-e2e"]);
    let withdrawn_at = Utc::now();
    // The second window's posts were due a minute after the start: wait past them (real
    // time on purpose: what is tested is that nothing comes then).
    let next_due = second + chrono::Duration::seconds(10);
    if let Ok(wait) = (next_due - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    let after = notes_by(&relay, &keys.public_key()).await;
    drop(serve);

    // Assert: the text, the lowercase `t` tag, the link as an `r` tag; one note per slot,
    // and the relay holds exactly the events picket recorded (no second, different event
    // for a slot: that would have another id and show up here).
    assert_eq!(notes.len(), 2, "{notes:?}");
    for n in &notes {
        assert!(n.verify().is_ok());
        assert_eq!(n.kind, Kind::TextNote);
        assert!(n.content.contains("#TestStrike"), "{}", n.content);
        assert_eq!(tag_values(n, "t"), ["teststrike"]);
        let links = tag_values(n, "r");
        assert_eq!(links.len(), 1, "{n:?}");
        assert!(n.content.contains(&links[0]) && links[0].starts_with("http"));
        assert_eq!(n.created_at.as_secs() as i64, start.timestamp());
    }
    assert!(
        notes
            .iter()
            .any(|n| n.content.starts_with("On #TestStrike strike today"))
    );
    assert!(notes.iter().any(|n| n.content.contains("🔥 罷工")));
    assert_eq!(
        after.len(),
        2,
        "a note appeared after withdraw at {withdrawn_at}: {after:?}"
    );
    let store = picket.store().await;
    let who = store
        .get_account(AccountId(account))
        .await
        .unwrap()
        .unwrap()
        .participant_id;
    let rows = store.outbox_for(who, Some("nostr-e2e")).await.unwrap();
    let published: Vec<_> = rows
        .iter()
        .filter(|r| r.state == OutboxState::Published)
        .collect();
    assert_eq!(published.len(), 2, "{rows:?}");
    let mut recorded: Vec<String> = published
        .iter()
        .map(|r| r.remote_id.clone().unwrap())
        .collect();
    let mut on_relay: Vec<String> = after.iter().map(|e| e.id.to_hex()).collect();
    recorded.sort();
    on_relay.sort();
    assert_eq!(recorded, on_relay);
    assert!(published.iter().all(|r| {
        r.remote_url
            .as_deref()
            .is_some_and(|u| u.starts_with("nostr:nevent1"))
    }));
    assert!(
        rows.iter().any(|r| r.state == OutboxState::Cancelled),
        "{rows:?}"
    );

    // Neither the database nor a debug log holds the key in clear.
    let secret_hex = keys.secret_key().to_secret_hex();
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("nostr"),
        "the debug log is empty: {log_text}"
    );
    for file in std::fs::read_dir(picket.dir()).unwrap() {
        let path = file.unwrap().path();
        if path.is_dir() {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for secret in [&nsec, &secret_hex] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds the secret key in clear",
                path.display()
            );
        }
    }
}

/// A relay of our own on a free port, started and stopped with the server script.
struct OwnRelay {
    port: u16,
}

impl OwnRelay {
    fn script(&self, arg: &str) -> Output {
        Command::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/servers/nostr-relay.sh"
        ))
        .arg(arg)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PICKET_NOSTR_RELAY_PORT", self.port.to_string())
        .output()
        .unwrap()
    }

    fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
}

impl Drop for OwnRelay {
    fn drop(&mut self) {
        self.script("stop");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_due_while_the_relay_is_down_is_published_once_when_it_comes_back() {
    let Some(_) = relay() else { return };
    // Arrange: the account's only relay is down when the slot falls due.
    // The relay is down at first, and only its address is known: the port must not be
    // one the system could hand to another process meanwhile.
    let own = OwnRelay {
        port: unused_port(),
    };
    let keys = Keys::generate();
    let start = Utc::now() + chrono::Duration::seconds(2);
    let picket = Picket::new(&campaign(
        start,
        start + chrono::Duration::hours(1),
        START_ONLY,
    ));
    let (account, _) = picket.add_nostr(&[
        "--relay",
        &own.url(),
        "--nsec",
        &keys.secret_key().to_secret_hex(),
    ]);
    picket.run(&["join", "nostr-e2e", "--account", &account.to_string()]);
    let serve = picket.serve().await;
    let store = picket.store().await;
    let who = store
        .get_account(AccountId(account))
        .await
        .unwrap()
        .unwrap()
        .participant_id;
    let failed_once = eventually(
        Duration::from_secs(30),
        "a failed attempt recorded",
        async || {
            let rows = store.outbox_for(who, Some("nostr-e2e")).await.unwrap();
            // `attempts` counts up when the send begins; the outcome is recorded after it.
            // A failed attempt leaves the row 'pending' until its retry is claimed (the
            // retry's 'claimed' and 'sending' are not this attempt's outcome).
            let recorded = rows[0].attempts > 0 && rows[0].state == OutboxState::Pending;
            if recorded {
                Ok(rows[0].clone())
            } else {
                Err(format!("{:?}", rows[0]))
            }
        },
    )
    .await;

    // Act: the relay comes up.
    let started = own.script("start");
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let notes = wait_for_notes(&own.url(), &keys.public_key(), 1, Duration::from_secs(60)).await;
    // The relay has the note before picket records the answer: wait for the record.
    let rows = eventually(
        Duration::from_secs(30),
        "the note recorded as published",
        async || {
            let rows = store.outbox_for(who, Some("nostr-e2e")).await.unwrap();
            if rows[0].state == OutboxState::Published {
                Ok(rows)
            } else {
                Err(format!("{rows:?}"))
            }
        },
    )
    .await;
    let notes_later = notes_by(&own.url(), &keys.public_key()).await;
    drop(serve);

    // Assert
    assert_eq!(failed_once.state, OutboxState::Pending, "{failed_once:?}");
    assert!(
        failed_once
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("unreachable")),
        "{failed_once:?}"
    );
    assert_eq!(notes.len(), 1);
    assert_eq!(notes_later.len(), 1);
    assert_eq!(rows[0].state, OutboxState::Published, "{rows:?}");
    assert_eq!(
        rows[0].remote_id.as_deref(),
        Some(notes[0].id.to_hex().as_str())
    );
}

/// A minimal NIP-46 remote signer holding `user`'s key, reachable as `bunker` on `relay`.
/// With `refuse_signing` it connects but answers `sign_event` as a revoked permission.
/// `ready` is sent once the relay has its subscription: NIP-46 requests are ephemeral
/// events, which a relay passes on to current subscribers only and never stores.
async fn run_bunker(
    relay: String,
    bunker: Keys,
    user: Keys,
    secret: String,
    refuse_signing: bool,
    stop: CancellationToken,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let (mut ws, _) = tokio_tungstenite::connect_async(&relay).await.unwrap();
    let filter = json!({"kinds": [24133], "#p": [bunker.public_key().to_hex()], "since": Utc::now().timestamp() - 5});
    ws.send(Message::Text(
        json!(["REQ", "bunker", filter]).to_string().into(),
    ))
    .await
    .unwrap();
    let mut ready = Some(ready);
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => return,
            m = ws.next() => m,
        };
        let Some(Ok(Message::Text(t))) = m else {
            if m.is_none() {
                return;
            }
            continue;
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        if v[0] == "EOSE" {
            // The relay answers EOSE after it registered the subscription.
            if let Some(ready) = ready.take() {
                let _ = ready.send(());
            }
            continue;
        }
        if v[0] != "EVENT" {
            continue;
        }
        let ev: Event = serde_json::from_value(v[2].clone()).unwrap();
        let Ok(plain) = bunker.nip44_decrypt(&ev.pubkey, &ev.content) else {
            continue;
        };
        let msg = NostrConnectMessage::from_json(&plain).unwrap();
        let id = msg.id().to_string();
        let Ok(request) = msg.to_request() else {
            continue;
        };
        let response = match request {
            NostrConnectRequest::Connect {
                secret: Some(s), ..
            } if s == secret => NostrConnectResponse::with_result(ResponseResult::Ack),
            NostrConnectRequest::Connect { .. } => {
                NostrConnectResponse::with_error("invalid secret")
            }
            NostrConnectRequest::GetPublicKey => {
                NostrConnectResponse::with_result(ResponseResult::GetPublicKey(user.public_key()))
            }
            NostrConnectRequest::SignEvent(_) if refuse_signing => {
                NostrConnectResponse::with_error("permission denied: sign_event was revoked")
            }
            NostrConnectRequest::SignEvent(unsigned) => NostrConnectResponse::with_result(
                ResponseResult::SignEvent(Box::new(user.sign_event(unsigned).unwrap())),
            ),
            _ => NostrConnectResponse::with_error("unsupported"),
        };
        let reply =
            NostrConnectEventBuilder::new(ev.pubkey, NostrConnectMessage::response(id, response))
                .finalize(&bunker)
                .unwrap();
        ws.send(Message::Text(json!(["EVENT", reply]).to_string().into()))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bunker_account_publishes_through_the_remote_signer_and_a_revoked_one_needs_reconnecting()
{
    let Some(relay) = relay() else { return };
    // Arrange: two bunkers on the relay, each holding a user key that is not its own key;
    // the second will refuse to sign (permission revoked after connecting).
    let stop = CancellationToken::new();
    let _stop = stop.clone().drop_guard();
    let (good_user, bad_user) = (Keys::generate(), Keys::generate());
    let (good_bunker, bad_bunker) = (Keys::generate(), Keys::generate());
    for (bunker, user, refuse) in [
        (&good_bunker, &good_user, false),
        (&bad_bunker, &bad_user, true),
    ] {
        let (ready, subscribed) = tokio::sync::oneshot::channel();
        tokio::spawn(run_bunker(
            relay.clone(),
            bunker.clone(),
            user.clone(),
            "s3cret".into(),
            refuse,
            stop.clone(),
            ready,
        ));
        tokio::time::timeout(Duration::from_secs(30), subscribed)
            .await
            .expect("the bunker subscribes within 30 s")
            .expect("the bunker task runs");
    }
    let uri = |b: &Keys| {
        format!(
            "bunker://{}?relay={}&secret=s3cret",
            b.public_key().to_hex(),
            relay
        )
    };
    let start = Utc::now() + chrono::Duration::seconds(3);
    let picket = Picket::new(&campaign(
        start,
        start + chrono::Duration::hours(1),
        START_ONLY,
    ));
    let (good, added) = picket.add_nostr(&["--relay", &relay, "--bunker", &uri(&good_bunker)]);
    let (bad, _) = picket.add_nostr(&["--relay", &relay, "--bunker", &uri(&bad_bunker)]);
    assert!(
        String::from_utf8_lossy(&added.stdout)
            .contains(&good_user.public_key().to_bech32().unwrap())
    );
    picket.run(&[
        "join",
        "nostr-e2e",
        "--account",
        &good.to_string(),
        "--account",
        &bad.to_string(),
    ]);

    // Act
    let serve = picket.serve().await;
    let notes = wait_for_notes(&relay, &good_user.public_key(), 1, Duration::from_secs(60)).await;
    let store = picket.store().await;
    let bad_account = eventually(
        Duration::from_secs(30),
        "the revoked bunker's account to need reconnecting",
        async || {
            let a = store.get_account(AccountId(bad)).await.unwrap().unwrap();
            if a.status == AccountStatus::ReconnectNeeded {
                Ok(a)
            } else {
                Err(format!("{:?}: {:?}", a.status, a.status_reason))
            }
        },
    )
    .await;
    drop(serve);

    // Assert: the good note is signed by the user's key, not the bunker's or picket's.
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].pubkey, good_user.public_key());
    assert!(notes[0].verify().is_ok());
    assert_eq!(tag_values(&notes[0], "t"), ["teststrike"]);
    assert_eq!(
        bad_account.status,
        AccountStatus::ReconnectNeeded,
        "{:?}",
        bad_account.status_reason
    );
    assert!(notes_by(&relay, &bad_user.public_key()).await.is_empty());
    let rows = store
        .outbox_for(bad_account.participant_id, Some("nostr-e2e"))
        .await
        .unwrap();
    let bad_row = rows
        .iter()
        .find(|r| r.account_id == AccountId(bad))
        .unwrap();
    assert_ne!(bad_row.state, OutboxState::Published, "{bad_row:?}");
}

#[tokio::test]
async fn reading_back_finds_a_note_by_its_event_id_and_says_absent_for_one_never_sent() {
    use picket::network::nostr::{Credentials, Nostr};
    use picket::network::{AccountRef, Network, OutgoingPost, ReadBack};
    let Some(relay) = relay() else { return };
    // Arrange: one note published, one never sent; the adapter that reads back is a new
    // one (a restarted picket: nothing signed is remembered).
    let keys = Keys::generate();
    let account = AccountRef {
        id: 1,
        handle: keys.public_key().to_bech32().unwrap(),
        server: relay.clone(),
        credentials: Credentials::Key {
            secret_key: keys.secret_key().to_secret_hex(),
        }
        .to_secret(),
        trusted: true,
    };
    let sent = OutgoingPost {
        text: "On #TestStrike today, read back".into(),
        idempotency_key: "rb1".into(),
        scheduled_at: Utc::now(),
        slot_key: "s1".into(),
        outcome_unknown: true,
        timeout: Duration::from_secs(5),
        image: None,
    };
    let never = OutgoingPost {
        text: "Never sent #TestStrike".into(),
        idempotency_key: "rb2".into(),
        ..sent.clone()
    };
    let published = Nostr::new(picket::network::Egress::new(false))
        .publish(&account, &sent)
        .await
        .unwrap();
    let restarted = Nostr::new(picket::network::Egress::new(false));

    // Act
    let found = restarted.read_back(&account, &sent).await.unwrap();
    let absent = restarted.read_back(&account, &never).await.unwrap();

    // Assert
    assert_eq!(found, ReadBack::Found(published));
    assert_eq!(absent, ReadBack::Absent);
    assert_eq!(notes_by(&relay, &keys.public_key()).await.len(), 1);
}

#[tokio::test]
async fn engagement_counts_reactions_reposts_and_replies_and_delete_removes_the_note() {
    use picket::network::nostr::{Credentials, Nostr, RelayAnswer, send_event};
    use picket::network::{AccountRef, Engagement, Network, OutgoingPost};
    let Some(relay) = relay() else { return };
    // Arrange: a note published through the adapter, then a like, a repost and a reply
    // from other keys.
    let keys = Keys::generate();
    let account = AccountRef {
        id: 1,
        handle: keys.public_key().to_bech32().unwrap(),
        server: relay.clone(),
        credentials: Credentials::Key {
            secret_key: keys.secret_key().to_secret_hex(),
        }
        .to_secret(),
        // The relay is on loopback: an account the operator added.
        trusted: true,
    };
    let egress = picket::network::Egress::new(false);
    let nostr = Nostr::new(egress.clone());
    let post = OutgoingPost {
        text: "On #TestStrike today".into(),
        idempotency_key: "k1".into(),
        scheduled_at: Utc::now(),
        slot_key: "s1".into(),
        outcome_unknown: false,
        timeout: Duration::from_secs(5),
        image: None,
    };
    let receipt = nostr.publish(&account, &post).await.unwrap();
    let again = nostr.publish(&account, &post).await.unwrap();
    let id = nostr::prelude::EventId::from_hex(&receipt.remote_id).unwrap();
    let react = |kind: Kind, content: &str| {
        nostr::prelude::EventBuilder::new(kind, content)
            .tag(nostr::prelude::Tag::event(id))
            .finalize(&Keys::generate())
            .unwrap()
    };
    for ev in [
        react(Kind::Reaction, "+"),
        react(Kind::Repost, ""),
        react(Kind::TextNote, "solidarity"),
    ] {
        assert_eq!(
            send_event(egress.trusted(), &relay, &ev, Duration::from_secs(5)).await,
            RelayAnswer::Accepted
        );
    }

    // Act
    let engagement = nostr
        .engagement(&account, &receipt.remote_id)
        .await
        .unwrap();
    let identity = nostr.verify(&account).await.unwrap();
    nostr.delete(&account, &receipt.remote_id).await.unwrap();
    let left = req(&relay, json!({"ids": [receipt.remote_id]})).await;

    // Assert: a second publish of the same post is the same event (relay: duplicate).
    assert_eq!(again.remote_id, receipt.remote_id);
    assert_eq!(
        engagement,
        Some(Engagement {
            replies: 1,
            reposts: 1,
            likes: 1
        })
    );
    assert_eq!(identity.handle, account.handle);
    assert!(
        left.is_empty(),
        "the deleted note is still served: {left:?}"
    );
}
