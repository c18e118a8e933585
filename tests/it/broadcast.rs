//! The campaign's own broadcast channels: announcements on a real Synapse (Matrix) room
//! through `picket serve` killed with SIGKILL before and after sending, and on local
//! imitations of Telegram's Bot API and Discord's webhooks (`support/telegram_fake.rs`,
//! `support/discord_fake.rs`, each citing the documents it follows) for their rate limits
//! and lost answers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use picket::campaign::Campaign;
use picket::clock::SystemClock;
use picket::config::Settings;
use picket::network::guarded::Http;
use picket::scheduler::broadcast::Broadcaster;
use picket::store::{NewSignature, Store, StoredBroadcast};
use rand::RngExt;
use serde_json::{Value, json};

use crate::support::{
    DiscordFake, DiscordInner, Options, TELEGRAM_TOKEN, TelegramFake, TelegramInner, World,
    eventually, posts_at_start, require_server, window_campaign,
};

/// A campaign whose strike began five seconds ago, with `extra` (channels and
/// announcements) after its posts.
fn campaign_toml(id: &str, extra: &str) -> String {
    let now = Utc::now();
    window_campaign(
        id,
        now - chrono::Duration::seconds(5),
        now + chrono::Duration::hours(1),
        &format!("{}\n{extra}", posts_at_start(1, "30m")),
    )
}

/// The broadcast task in this process, over a fresh database, for the fakes' tests.
struct Harness {
    store: Arc<dyn Store>,
    broadcaster: Broadcaster,
    id: String,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new(id: &str, extra: &str, settings: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("{id}.toml"));
        let campaign: Campaign =
            picket::campaign::parse_str(&campaign_toml(id, extra), &path).unwrap();
        let config = dir.path().join("picket.toml");
        std::fs::write(&config, settings).unwrap();
        let settings = Settings::load(Some(&config)).unwrap();
        let store = picket::store::open(&format!("sqlite://{}", dir.path().join("p.db").display()))
            .await
            .unwrap();
        let broadcaster = Broadcaster::new(
            store.clone(),
            Http::trusted(),
            Arc::new(SystemClock),
            Arc::new(vec![campaign]),
            Arc::new(settings),
        );
        Harness {
            store,
            broadcaster,
            id: id.to_string(),
            _dir: dir,
        }
    }

    /// Run rounds until every announcement has an outcome other than pending.
    async fn until_settled(&self, expected: usize, limit: Duration) -> Vec<StoredBroadcast> {
        eventually(limit, "every announcement settled", async || {
            self.broadcaster.step().await.unwrap();
            let stored = self.store.broadcasts(&self.id).await.unwrap();
            if stored.len() == expected && stored.iter().all(|m| m.state != "pending") {
                Ok(stored)
            } else {
                Err(format!("{stored:?}"))
            }
        })
        .await
    }
}

async fn sign(store: &dyn Store, id: &str, n: usize) {
    for _ in 0..n {
        store
            .add_signature(
                &NewSignature {
                    campaign_id: id.parse().unwrap(),
                    name: "Ada".into(),
                    email_canonical: None,
                    public: true,
                    invited_by: None,
                    confirmed: true,
                    confirm_token_hash: None,
                    email_consent: false,
                },
                Utc::now(),
            )
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telegram_announcement_waits_out_retry_after_and_is_sent_once_with_the_live_counts() {
    // Arrange: the bot's first request hits a flood limit of 2 s.
    let fake = TelegramFake::start(TelegramInner {
        flood_first: 1,
        flood_secs: 2,
        ..TelegramInner::default()
    })
    .await;
    let h = Harness::new(
        "tg-flood",
        "[[announcements]]\nname = \"begun\"\nwhen = \"start\"\nwindow = \"30m\"\n\
         channels = [\"news\"]\ntext = [\"#{{ hashtag }} has begun: {{ signatures }} signed.\"]\n",
        &format!(
            "[[channels]]\nname = \"news\"\nkind = \"telegram\"\napi = \"{}\"\nchat = \"@strike_news\"\ntoken = \"{TELEGRAM_TOKEN}\"\n",
            fake.base
        ),
    )
    .await;
    sign(&*h.store, "tg-flood", 3).await;

    // Act
    let stored = h.until_settled(1, Duration::from_secs(30)).await;

    // Assert
    let messages = fake.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].chat, "@strike_news");
    assert_eq!(messages[0].text, "#TestStrike has begun: 3 signed.");
    assert_eq!(stored[0].state, "sent", "{stored:?}");
    assert_eq!(stored[0].remote_id, Some(messages[0].id.to_string()));
    let arrivals = fake.arrivals();
    assert_eq!(arrivals.len(), 2, "one refused, one sent");
    assert!(
        arrivals[1] - arrivals[0] >= Duration::from_secs(2),
        "the retry waited out retry_after: {:?}",
        arrivals[1] - arrivals[0]
    );
    assert_eq!(fake.inner.lock().unwrap().too_early, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_telegram_answer_is_recorded_unknown_and_never_sent_twice() {
    // Arrange: Telegram sends the message and its answer never comes.
    let fake = TelegramFake::start(TelegramInner {
        lose_next_answer: true,
        ..TelegramInner::default()
    })
    .await;
    let h = Harness::new(
        "tg-lost",
        "[[announcements]]\nname = \"begun\"\nwhen = \"start\"\nwindow = \"30m\"\n\
         channels = [\"news\"]\ntext = [\"#{{ hashtag }} has begun.\"]\n",
        &format!(
            "[[channels]]\nname = \"news\"\nkind = \"telegram\"\napi = \"{}\"\nchat = \"-1001234567890\"\ntoken = \"{TELEGRAM_TOKEN}\"\n",
            fake.base
        ),
    )
    .await;

    // Act: the attempt runs into its deadline (10 s), then more rounds run.
    let stored = h.until_settled(1, Duration::from_secs(40)).await;
    for _ in 0..3 {
        h.broadcaster.step().await.unwrap();
    }

    // Assert
    assert_eq!(stored[0].state, "unknown", "{stored:?}");
    let reason = stored[0].last_error.clone().unwrap_or_default();
    assert!(reason.contains("not sent again"), "{reason}");
    assert!(!reason.contains(TELEGRAM_TOKEN), "{reason}");
    assert_eq!(fake.messages().len(), 1);
    assert_eq!(fake.arrivals().len(), 1, "never asked twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discord_announcements_keep_to_the_rate_limit_headers_and_a_429s_retry_after() {
    // Arrange: a bucket of one request per 1.5 s, and a 429 (retry_after 1 s) first;
    // three announcements fall due at the same instant on the one webhook.
    let fake = DiscordFake::start(DiscordInner {
        limit: 1,
        window: Duration::from_millis(1500),
        limit_first: 1,
        limited_secs: 1.0,
        ..DiscordInner::default()
    })
    .await;
    let announcements: String = (0..3)
        .map(|i| {
            format!(
                "[[announcements]]\nname = \"a{i}\"\nwhen = \"start\"\nwindow = \"30m\"\n\
                 channels = [\"chat\"]\ntext = [\"Announcement {i} @everyone #{{{{ hashtag }}}}\"]\n"
            )
        })
        .collect();
    let h = Harness::new(
        "dc-limits",
        &format!("[[channels]]\nname = \"chat\"\nkind = \"discord\"\n{announcements}"),
        &format!(
            "[[channels]]\nname = \"chat\"\ntoken = \"{}\"\n",
            fake.webhook_url()
        ),
    )
    .await;

    // Act
    let stored = h.until_settled(3, Duration::from_secs(40)).await;

    // Assert
    let messages = fake.messages();
    let mut contents: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
    contents.sort();
    assert_eq!(
        contents,
        [
            "Announcement 0 @everyone #TestStrike",
            "Announcement 1 @everyone #TestStrike",
            "Announcement 2 @everyone #TestStrike",
        ]
    );
    assert!(messages.iter().all(|m| m.mentions_off), "{messages:?}");
    assert!(stored.iter().all(|m| m.state == "sent"), "{stored:?}");
    let mut recorded: Vec<String> = stored.iter().filter_map(|m| m.remote_id.clone()).collect();
    let mut ids: Vec<String> = messages.iter().map(|m| m.id.clone()).collect();
    recorded.sort();
    ids.sort();
    assert_eq!(recorded, ids, "each message's id recorded");
    assert_eq!(
        fake.inner.lock().unwrap().limited,
        0,
        "no request while the bucket was spent"
    );
    let arrivals = fake.arrivals();
    assert_eq!(arrivals.len(), 4, "one 429, then three sent");
    assert!(
        arrivals[1] - arrivals[0] >= Duration::from_secs(1),
        "the retry waited out the 429's retry_after"
    );
    assert!(
        arrivals[3] - arrivals[1] >= Duration::from_millis(1400),
        "three sends in one-per-1.5 s buckets span at least one reset: {arrivals:?}"
    );
}

// ── Matrix, on a real Synapse ─────────────────────────────────────────────────────────

/// A user, with a room (and its alias) on the Synapse the suite runs.
struct MatrixRoom {
    base: String,
    token: String,
    room_id: String,
    alias: String,
}

async fn matrix_room(base: &str) -> MatrixRoom {
    let http = reqwest::Client::new();
    let n: u64 = rand::rng().random();
    let user = format!("picket-{n:016x}");
    let registered: Value = http
        .post(format!("{base}/_matrix/client/v3/register"))
        .json(&json!({
            "username": user,
            "password": format!("pw-{n:x}-strike"),
            "auth": { "type": "m.login.dummy" },
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["access_token"].as_str().unwrap().to_string();
    let local_alias = format!("strike-{n:016x}");
    let room: Value = http
        .post(format!("{base}/_matrix/client/v3/createRoom"))
        .bearer_auth(&token)
        .json(&json!({ "room_alias_name": local_alias, "preset": "public_chat" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    MatrixRoom {
        base: base.to_string(),
        token,
        room_id: room["room_id"].as_str().unwrap().to_string(),
        alias: format!("#{local_alias}:localhost"),
    }
}

impl MatrixRoom {
    /// The room's text messages as `(event id, body)`, oldest first.
    async fn messages(&self) -> Vec<(String, String)> {
        let answer: Value = reqwest::Client::new()
            .get(format!(
                "{}/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100",
                self.base,
                url::form_urlencoded::byte_serialize(self.room_id.as_bytes()).collect::<String>()
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut out: Vec<(String, String)> = answer["chunk"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "m.room.message")
            .map(|e| {
                (
                    e["event_id"].as_str().unwrap().to_string(),
                    e["content"]["body"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
        out.reverse();
        out
    }
}

/// What the proxy in front of Synapse does with a `PUT .../send/...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Hold it without passing it on: picket dies before its message is sent.
    HoldBefore,
    /// Pass it on, then hold Synapse's answer: picket dies after its message is sent.
    HoldAfter,
    /// Pass everything through.
    Pass,
}

#[derive(Debug, Default)]
struct Seen {
    /// The transaction ids of the sends that reached the proxy, in order.
    sends: Vec<String>,
    /// How many of them reached Synapse.
    forwarded: usize,
}

#[derive(Clone)]
struct Proxy {
    url: String,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Clone)]
struct ProxyState {
    upstream: String,
    mode: Arc<Mutex<Mode>>,
    seen: Arc<Mutex<Seen>>,
    http: reqwest::Client,
}

async fn relay(
    State(p): State<ProxyState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let send = method == Method::PUT && path.contains("/send/m.room.message/");
    let mode = *p.mode.lock().unwrap();
    if send {
        let txn = path.rsplit('/').next().unwrap_or_default().to_string();
        p.seen.lock().unwrap().sends.push(txn);
        if mode == Mode::HoldBefore {
            std::future::pending::<()>().await;
        }
    }
    let mut request = p
        .http
        .request(method, format!("{}{path}", p.upstream))
        .body(body.to_vec());
    for name in ["authorization", "content-type"] {
        if let Some(v) = headers.get(name) {
            request = request.header(name, v);
        }
    }
    let answer = request.send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let bytes = answer.bytes().await.unwrap();
    if send {
        p.seen.lock().unwrap().forwarded += 1;
        if mode == Mode::HoldAfter {
            std::future::pending::<()>().await;
        }
    }
    (
        status,
        [("content-type", "application/json")],
        bytes.to_vec(),
    )
        .into_response()
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let mode = Arc::new(Mutex::new(Mode::HoldBefore));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let router = axum::Router::new().fallback(relay).with_state(ProxyState {
            upstream: upstream.to_string(),
            mode: mode.clone(),
            seen: seen.clone(),
            http: reqwest::Client::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Proxy { url, mode, seen }
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn sends(&self) -> usize {
        self.seen.lock().unwrap().sends.len()
    }

    fn forwarded(&self) -> usize {
        self.seen.lock().unwrap().forwarded
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_lands_in_a_real_synapse_room_exactly_once_across_kill_9_before_and_after_sending()
 {
    let Some(synapse) = require_server("PICKET_TEST_MATRIX_URL") else {
        return;
    };
    // Arrange: a room on the real Synapse, declared in the campaign file by its alias
    // (no token there); the token in the host settings. picket reaches Synapse through a
    // proxy that can hold a send before or after Synapse has it.
    let room = matrix_room(&synapse).await;
    let proxy = Proxy::start(&synapse).await;
    let toml = campaign_toml(
        "matrix-crash",
        &format!(
            "[[channels]]\nname = \"room\"\nkind = \"matrix\"\nhomeserver = \"{}\"\nroom = \"{}\"\n\n\
             [[announcements]]\nname = \"begun\"\nwhen = \"start\"\nwindow = \"30m\"\n\
             channels = [\"room\"]\ntext = [\"#{{{{ hashtag }}}} has begun: {{{{ signatures }}}} signed. {{{{ campaign_url }}}}\"]\n",
            proxy.url, room.alias
        ),
    );
    let world = World::new(&toml, Arc::new(SystemClock)).await;
    sign(&*world.store, "matrix-crash", 2).await;
    let config = format!(
        "[scheduler]\njitter_secs = 0\n[[channels]]\nname = \"room\"\ntoken = \"{}\"\n",
        room.token
    );
    let serve = async || {
        crate::support::TestApp::spawn(Options::default().over(&world).config(&config).process())
            .await
    };

    // Act 1: killed with the send on its way, before Synapse has it.
    let app = serve().await;
    eventually(
        Duration::from_secs(60),
        "the first send at the proxy",
        async || proxy.sends() >= 1,
    )
    .await;
    let log_1 = app.installation().log();
    drop(app); // SIGKILL
    assert_eq!(proxy.forwarded(), 0);

    // Act 2: the next run takes it over once the dead run's lease is out (15 s); killed
    // after Synapse has the message, before picket hears so.
    proxy.set(Mode::HoldAfter);
    let app = serve().await;
    eventually(
        Duration::from_secs(60),
        "the second send reached Synapse",
        async || proxy.forwarded() >= 1,
    )
    .await;
    let log_2 = app.installation().log();
    drop(app); // SIGKILL

    // Act 3: a run that hears the answer.
    proxy.set(Mode::Pass);
    let app = serve().await;
    let stored = eventually(
        Duration::from_secs(60),
        "the announcement recorded as sent",
        async || {
            let stored = world.store.broadcasts("matrix-crash").await.unwrap();
            match stored.as_slice() {
                [m] if m.state == "sent" => Ok(m.clone()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let stopped = app.stop();

    // Assert: one event in the room, the one picket recorded; every attempt the same txn.
    let body = "#TestStrike has begun: 2 signed. https://picket.test/c/matrix-crash";
    let messages = room.messages().await;
    let ours: Vec<_> = messages.iter().filter(|(_, b)| b == body).collect();
    assert_eq!(
        ours.len(),
        1,
        "exactly one announcement in the room: {messages:?}"
    );
    assert_eq!(stored.remote_id.as_deref(), Some(ours[0].0.as_str()));
    assert_eq!(stored.attempts, 3, "{stored:?}");
    let sends = proxy.seen.lock().unwrap().sends.clone();
    assert_eq!(sends.len(), 3, "{sends:?}");
    assert!(
        sends.iter().all(|t| *t == stored.txn_id),
        "every attempt carried the stored txn id {}: {sends:?}",
        stored.txn_id
    );
    for log in [log_1, log_2, stopped.log] {
        assert!(!log.contains(&room.token), "the token is never logged");
    }
    assert!(stopped.status.success(), "{:?}", stopped.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telegram_announcement_interrupted_by_kill_9_is_recorded_unknown_and_never_sent_twice() {
    // Arrange: Telegram sends the message and its answer never comes; picket serve is
    // killed while it waits.
    let fake = TelegramFake::start(TelegramInner {
        lose_next_answer: true,
        ..TelegramInner::default()
    })
    .await;
    let toml = campaign_toml(
        "tg-killed",
        "[[announcements]]\nname = \"begun\"\nwhen = \"start\"\nwindow = \"30m\"\n\
         channels = [\"news\"]\ntext = [\"#{{ hashtag }} has begun.\"]\n",
    );
    let world = World::new(&toml, Arc::new(SystemClock)).await;
    let config = format!(
        "[[channels]]\nname = \"news\"\nkind = \"telegram\"\napi = \"{}\"\nchat = \"@strike_news\"\ntoken = \"{TELEGRAM_TOKEN}\"\n",
        fake.base
    );
    let serve = async || {
        crate::support::TestApp::spawn(Options::default().over(&world).config(&config).process())
            .await
    };

    // Act: killed with the message sent and unanswered; the next run takes the row over
    // once the dead run's lease is out (15 s).
    let app = serve().await;
    eventually(
        Duration::from_secs(60),
        "the message at Telegram",
        async || !fake.messages().is_empty(),
    )
    .await;
    drop(app); // SIGKILL
    let app = serve().await;
    let stored = eventually(
        Duration::from_secs(60),
        "the announcement's outcome",
        async || {
            let stored = world.store.broadcasts("tg-killed").await.unwrap();
            match stored.as_slice() {
                [m] if m.state != "pending" => Ok(m.clone()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let stopped = app.stop();

    // Assert
    assert_eq!(stored.state, "unknown", "{stored:?}");
    assert!(
        stored
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("picket stopped while sending it")),
        "{stored:?}"
    );
    assert_eq!(fake.messages().len(), 1);
    assert_eq!(fake.arrivals().len(), 1, "never asked twice");
    assert!(
        !stopped.log.contains(TELEGRAM_TOKEN),
        "the token is never logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picket_worker_alone_sends_the_announcements() {
    // Arrange: no `picket serve` at all, only a worker, and an announcement due now.
    let fake = TelegramFake::start(TelegramInner::default()).await;
    let toml = campaign_toml(
        "tg-worker",
        "[[announcements]]\nname = \"begun\"\nwhen = \"start\"\nwindow = \"30m\"\n\
         channels = [\"news\"]\ntext = [\"#{{ hashtag }} has begun.\"]\n",
    );
    let world = World::new(&toml, Arc::new(SystemClock)).await;
    let install = Options::default()
        .over(&world)
        .config(&format!(
            "[[channels]]\nname = \"news\"\nkind = \"telegram\"\napi = \"{}\"\nchat = \"@strike_news\"\ntoken = \"{TELEGRAM_TOKEN}\"\n",
            fake.base
        ))
        .install();

    // Act
    let mut worker = install
        .command()
        .arg("worker")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let sent = eventually(
        Duration::from_secs(60),
        "the announcement sent by the worker",
        async || {
            let stored = world.store.broadcasts("tg-worker").await.unwrap();
            match stored.as_slice() {
                [m] if m.state == "sent" => Ok(m.clone()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let _ = worker.kill();
    let _ = worker.wait();

    // Assert
    let messages = fake.messages();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].text, "#TestStrike has begun.");
    assert_eq!(sent.remote_id, Some(messages[0].id.to_string()));
}
