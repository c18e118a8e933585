//! Webhooks against a real `picket serve`: a local receiver (axum on 127.0.0.1:0) checks
//! each request's signature, answers as the test says, and dedupes by event id like a
//! real receiver should; the process is killed with SIGKILL mid-delivery to show each
//! event is processed exactly once (at least once on the wire).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use picket::clock::SystemClock;
use picket::network::webhook;
use picket::scheduler::webhooks::hook_key;
use picket::store::NewSignature;
use rand::{RngExt, SeedableRng};

use crate::support::{Options, TestApp, World, eventually, posts_at_start, window_campaign};

const SECRET: &str = "organiser-secret-0123456789";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Hit {
    event_id: String,
    kind: String,
    body: serde_json::Value,
    signed: bool,
}

#[derive(Default)]
struct Seen {
    hits: Vec<Hit>,
    /// Event ids processed (first arrival of each).
    processed: HashSet<String>,
    /// Requests still to answer with 500 before answering 2xx.
    fail_first: usize,
    /// Status of every answer once `fail_first` is used up.
    status: u16,
    /// How long before answering, in milliseconds (so a kill lands mid-delivery).
    delay_ms: (u64, u64),
    /// Requests that reached the handler.
    arrivals: usize,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    seen: Arc<Mutex<Seen>>,
}

impl Receiver {
    async fn start(fail_first: usize, status: u16, delay_ms: (u64, u64)) -> Receiver {
        let seen = Arc::new(Mutex::new(Seen {
            fail_first,
            status,
            delay_ms,
            ..Seen::default()
        }));
        let router = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    async |State(seen): State<Arc<Mutex<Seen>>>,
                           headers: HeaderMap,
                           body: axum::body::Bytes| {
                        let header = |n: &str| {
                            headers
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string()
                        };
                        let signed = webhook::verify(
                            SECRET.as_bytes(),
                            &header("picket-signature"),
                            &body,
                            Utc::now().timestamp(),
                            300,
                        ) && header("picket-signature")
                            .starts_with(&format!("t={},", header("picket-timestamp")));
                        // Processed on arrival, answered later: a kill meanwhile is an
                        // event the receiver has and picket does not know it has.
                        let (status, delay) = {
                            let mut s = seen.lock().unwrap();
                            s.arrivals += 1;
                            let hit = Hit {
                                event_id: header("picket-event-id"),
                                kind: header("picket-event"),
                                body: serde_json::from_slice(&body).unwrap_or_default(),
                                signed,
                            };
                            let status = if s.fail_first > 0 {
                                s.fail_first -= 1;
                                500
                            } else {
                                s.status
                            };
                            if (200..300).contains(&status) && signed {
                                s.processed.insert(hit.event_id.clone());
                            }
                            s.hits.push(hit);
                            (
                                status,
                                rand::rng().random_range(s.delay_ms.0..=s.delay_ms.1),
                            )
                        };
                        // Real time on purpose: a slow answer, so kills land before it.
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                        StatusCode::from_u16(status).unwrap()
                    },
                ),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Receiver { url, seen }
    }

    fn hits(&self) -> Vec<Hit> {
        self.seen.lock().unwrap().hits.clone()
    }

    fn arrivals(&self) -> usize {
        self.seen.lock().unwrap().arrivals
    }

    fn processed(&self) -> usize {
        self.seen.lock().unwrap().processed.len()
    }

    /// The `[[webhooks]]` settings for this receiver.
    fn settings(&self, events: &[&str]) -> String {
        format!(
            "[[webhooks]]\nurl = \"{}\"\nevents = {events:?}\nsecret = \"{SECRET}\"\n",
            self.url
        )
    }
}

/// A world with a campaign whose posts are due now; the hook counts as configured a
/// minute ago, so what the test creates next is reported.
async fn world(id: &str, receiver: &Receiver) -> World {
    let now = Utc::now();
    let toml = window_campaign(
        id,
        now - chrono::Duration::seconds(5),
        now + chrono::Duration::hours(1),
        &posts_at_start(1, "30m"),
    );
    let world = World::new(&toml, Arc::new(SystemClock)).await;
    world
        .store
        .register_webhook(&hook_key(&receiver.url), now - chrono::Duration::minutes(1))
        .await
        .unwrap();
    world
}

async fn sign(world: &World, id: &str, n: usize) {
    for _ in 0..n {
        world
            .store
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

async fn serve(world: &World, config: &str) -> TestApp {
    TestApp::spawn(
        Options::default()
            .over(world)
            .config(&format!("[scheduler]\njitter_secs = 0\n{config}"))
            .process(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_gets_signed_signature_join_and_publish_events_from_picket_serve() {
    // Arrange
    let receiver = Receiver::start(0, 204, (0, 0)).await;
    let world = world("hooked", &receiver).await;
    sign(&world, "hooked", 1).await;
    let (who, accounts) = world.participant("kim", 2).await;
    world.pledge(who, &accounts).await;
    let events = ["signature.counted", "striker.joined", "post.published"];

    // Act
    let app = serve(&world, &receiver.settings(&events)).await;
    let hits = eventually(
        Duration::from_secs(60),
        "a signature, a join and two published posts at the receiver",
        async || {
            let hits = receiver.hits();
            match hits.len() {
                4 => Ok(hits),
                _ => Err(format!("{hits:?}")),
            }
        },
    )
    .await;
    drop(app);

    // Assert
    let mut kinds: Vec<&str> = hits.iter().map(|h| h.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "post.published",
            "post.published",
            "signature.counted",
            "striker.joined"
        ]
    );
    for hit in &hits {
        assert!(hit.signed, "the signature verifies: {hit:?}");
        assert_eq!(hit.body["id"], hit.event_id.as_str(), "{hit:?}");
        assert_eq!(hit.body["type"], hit.kind.as_str(), "{hit:?}");
        assert_eq!(hit.body["campaign"], "hooked", "{hit:?}");
    }
    let published: Vec<&Hit> = hits.iter().filter(|h| h.kind == "post.published").collect();
    for hit in published {
        assert_eq!(hit.body["data"]["network"], "sandbox", "{hit:?}");
        assert!(hit.body["data"]["link"].is_string(), "{hit:?}");
    }
    let stored = world
        .store
        .webhook_events(&hook_key(&receiver.url))
        .await
        .unwrap();
    assert!(stored.iter().all(|e| e.state == "delivered"), "{stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_answered_500_is_retried_with_the_same_id_and_delivered_once() {
    // Arrange
    let receiver = Receiver::start(2, 200, (0, 0)).await;
    let world = world("retried", &receiver).await;
    sign(&world, "retried", 1).await;

    // Act
    let app = serve(&world, &receiver.settings(&["signature.counted"])).await;
    let key = hook_key(&receiver.url);
    let stored = eventually(Duration::from_secs(60), "the event delivered", async || {
        let stored = world.store.webhook_events(&key).await.unwrap();
        match stored.first() {
            Some(e) if e.state == "delivered" => Ok(stored),
            _ => Err(format!("{stored:?}")),
        }
    })
    .await;
    drop(app);

    // Assert
    let hits = receiver.hits();
    assert_eq!(hits.len(), 3, "two 500s, then 200: {hits:?}");
    assert!(
        hits.iter()
            .all(|h| h.event_id == stored[0].event_id && h.signed)
    );
    assert_eq!(receiver.processed(), 1);
    assert_eq!((stored.len(), stored[0].attempts), (1, 3), "{stored:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_answered_404_fails_for_good_with_its_reason() {
    // Arrange
    let receiver = Receiver::start(0, 404, (0, 0)).await;
    let world = world("refused", &receiver).await;
    sign(&world, "refused", 1).await;

    // Act
    let app = serve(&world, &receiver.settings(&["signature.counted"])).await;
    let key = hook_key(&receiver.url);
    let stored = eventually(Duration::from_secs(60), "the event failed", async || {
        let stored = world.store.webhook_events(&key).await.unwrap();
        match stored.first() {
            Some(e) if e.state == "failed" => Ok(stored),
            _ => Err(format!("{stored:?}")),
        }
    })
    .await;
    // Real time on purpose: a failed event must not be tried again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(app);

    // Assert
    assert_eq!(
        stored[0].last_error.as_deref(),
        Some("the receiver answered 404")
    );
    assert_eq!(receiver.hits().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_delivery_loses_no_event_and_a_deduping_receiver_processes_each_once() {
    // Arrange: 30 signatures; the receiver takes 0.3 to 1.5 s to answer, so kills land
    // with requests on the wire and answered-but-unrecorded.
    let receiver = Receiver::start(0, 200, (300, 1500)).await;
    let world = world("killed", &receiver).await;
    sign(&world, "killed", 30).await;
    let config = receiver.settings(&["signature.counted"]);
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    // Act: three runs killed at a random moment after their first request arrived, then one
    // left to finish (a killed run's events wait for their lease to run out, 15 s).
    let key = hook_key(&receiver.url);
    for _ in 0..3 {
        let before = receiver.arrivals();
        let app = serve(&world, &config).await;
        eventually(
            Duration::from_secs(60),
            "this run's first request at the receiver (or every event delivered)",
            async || {
                let stored = world.store.webhook_events(&key).await.unwrap();
                receiver.arrivals() != before
                    || (stored.len() == 30 && stored.iter().all(|e| e.state == "delivered"))
            },
        )
        .await;
        // Real time on purpose: the kill lands at a random moment of the work.
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..1200))).await;
        drop(app); // SIGKILL
    }
    let app = serve(&world, &config).await;
    let key = hook_key(&receiver.url);
    eventually(
        Duration::from_secs(90),
        "every event delivered",
        async || {
            let stored = world.store.webhook_events(&key).await.unwrap();
            let pending = stored.iter().filter(|e| e.state != "delivered").count();
            match (stored.len(), pending) {
                (30, 0) => Ok(()),
                other => Err(format!("{other:?} (events, not delivered)")),
            }
        },
    )
    .await;
    let exit = app.stop().status;

    // Assert
    let hits = receiver.hits();
    let stored = world.store.webhook_events(&key).await.unwrap();
    let ids: HashSet<&str> = stored.iter().map(|e| e.event_id.as_str()).collect();
    let arrived: HashSet<&str> = hits.iter().map(|h| h.event_id.as_str()).collect();
    assert_eq!(
        ids, arrived,
        "seed {seed}: every event id arrived, no other"
    );
    assert_eq!(receiver.processed(), 30, "seed {seed}");
    let signatures: HashSet<String> = hits
        .iter()
        .map(|h| h.body["data"]["signature_id"].to_string())
        .collect();
    assert_eq!(signatures.len(), 30, "seed {seed}: one event per signature");
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for h in &hits {
        *per_id.entry(h.event_id.as_str()).or_default() += 1;
        assert!(h.signed, "seed {seed}: {h:?}");
    }
    let redelivered: usize = per_id.values().map(|n| n - 1).sum();
    assert!(
        stored.iter().any(|e| e.attempts >= 2),
        "seed {seed}: the kills must interrupt deliveries: {stored:?}"
    );
    println!(
        "seed {seed}: {} requests for 30 events, {redelivered} raw redeliveries (deduplicated by id)",
        hits.len()
    );
    assert!(exit.success(), "picket serve exits 0 on SIGTERM: {exit:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threshold_reached_is_sent_once_when_the_pledges_meet_it() {
    // Arrange: a campaign that needs two pledges, one made so far.
    let receiver = Receiver::start(0, 200, (0, 0)).await;
    let world = world("tipping", &receiver).await;
    let mut campaign = world.campaign.clone();
    campaign.threshold = Some(picket::campaign::Threshold {
        participants: 2,
        deadline: None,
    });
    let hooks = receiver.settings(&["threshold.reached"]);
    let settings: picket::config::Settings = toml::from_str(&hooks).unwrap();
    let sender = picket::scheduler::webhooks::WebhookSender {
        store: world.store.clone(),
        http: picket::network::Egress::new(true).trusted().clone(),
        hooks: settings
            .webhooks
            .iter()
            .filter_map(picket::scheduler::webhooks::Hook::from_settings)
            .collect(),
        clock: Arc::new(SystemClock),
        campaigns: Arc::new(vec![campaign]),
        owner: "test".into(),
        retry: Default::default(),
    };
    let since = sender.register().await.unwrap();
    let (ada, accounts) = world.participant("ada", 1).await;
    world.pledge(ada, &accounts).await;

    // Act
    let below = sender.step(&since).await.unwrap();
    let (bob, accounts) = world.participant("bob", 1).await;
    world.pledge(bob, &accounts).await;
    let reached = sender.step(&since).await.unwrap();
    let again = sender.step(&since).await.unwrap();

    // Assert
    assert_eq!(below.enqueued, 0, "{below:?}");
    assert_eq!((reached.enqueued, reached.delivered), (1, 1), "{reached:?}");
    assert_eq!(again.enqueued, 0, "once per campaign and hook: {again:?}");
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].kind, "threshold.reached");
    assert_eq!(hits[0].body["data"]["participants"], 2);
    assert_eq!(hits[0].body["data"]["pledged"], 2);
    assert!(hits[0].signed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notice_confirmed_by_hand_is_sent_as_post_posted_by_hand_with_the_link_given() {
    use picket::domain::NetworkKind;
    use picket::participation::tap::{Confirmer, confirm_posted};
    use picket::store::{AccountRoute, NewAccount, OutboxState};
    // Arrange: a tap-to-post account on Mastodon whose notice is due now.
    let receiver = Receiver::start(0, 204, (0, 0)).await;
    let now = Utc::now();
    let toml = window_campaign(
        "byhand",
        now - chrono::Duration::seconds(5),
        now + chrono::Duration::hours(1),
        &posts_at_start(1, "30m"),
    )
    .replace(r#"networks = ["sandbox"]"#, r#"networks = ["mastodon"]"#);
    let world = World::new(&toml, Arc::new(SystemClock)).await;
    world
        .store
        .register_webhook(&hook_key(&receiver.url), now - chrono::Duration::minutes(1))
        .await
        .unwrap();
    let (who, _) = world.participant("tap", 0).await;
    let account = world
        .store
        .add_account(
            &NewAccount {
                participant_id: who,
                network: NetworkKind::Mastodon,
                handle: "tap@m.example".parse().unwrap(),
                server: Some("https://m.example".into()),
                trusted: false,
                route: AccountRoute::Tap,
            },
            &|_| panic!("a tap-to-post account has nothing to seal"),
            now,
        )
        .await
        .unwrap();
    world.pledge(who, &[account]).await;
    let app = serve(
        &world,
        &receiver.settings(&["post.posted_by_hand", "post.published"]),
    )
    .await;
    let notice = eventually(Duration::from_secs(60), "the notice shown", async || {
        let rows = world.store.outbox_for(who, None).await.unwrap();
        rows.into_iter()
            .find(|r| r.state == OutboxState::Reminded)
            .ok_or("not yet")
    })
    .await;

    // Act: "I posted it", with the post's address.
    confirm_posted(
        world.store.as_ref(),
        Confirmer::Participant(who, notice.id),
        Some("https://m.example/@tap/112233"),
        Utc::now(),
    )
    .await
    .unwrap();
    let hits = eventually(
        Duration::from_secs(60),
        "the event at the receiver",
        async || {
            let hits = receiver.hits();
            if hits.is_empty() {
                Err("none yet".to_string())
            } else {
                Ok(hits)
            }
        },
    )
    .await;
    drop(app);

    // Assert
    assert_eq!(hits.len(), 1, "nothing was published by picket: {hits:?}");
    let hit = &hits[0];
    assert!(hit.signed);
    assert_eq!(hit.kind, "post.posted_by_hand");
    assert_eq!(hit.body["data"]["post_id"], notice.id.0);
    assert_eq!(hit.body["data"]["network"], "mastodon");
    assert_eq!(hit.body["data"]["link"], "https://m.example/@tap/112233");
    assert!(hit.body["data"]["reason"].is_null(), "{hit:?}");
}

/// `picket worker`, killed (SIGKILL) when dropped.
struct Worker(std::process::Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picket_worker_alone_delivers_the_events_of_what_its_dispatcher_published() {
    // Arrange: no `picket serve` at all; a signature, a join and its post due now.
    let receiver = Receiver::start(0, 204, (0, 0)).await;
    let world = world("working", &receiver).await;
    sign(&world, "working", 1).await;
    let (who, accounts) = world.participant("wes", 1).await;
    world.pledge(who, &accounts).await;
    let events = ["signature.counted", "striker.joined", "post.published"];
    let install = Options::default()
        .over(&world)
        .config(&format!(
            "[scheduler]\njitter_secs = 0\n{}",
            receiver.settings(&events)
        ))
        .install();

    // Act
    let _worker = Worker(
        install
            .command()
            .arg("worker")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let hits = eventually(
        Duration::from_secs(60),
        "a signature, a join and a published post at the receiver",
        async || {
            let hits = receiver.hits();
            match hits.len() {
                3 => Ok(hits),
                _ => Err(format!("{hits:?}")),
            }
        },
    )
    .await;

    // Assert
    let mut kinds: Vec<&str> = hits.iter().map(|h| h.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["post.published", "signature.counted", "striker.joined"]
    );
    assert!(hits.iter().all(|h| h.signed), "{hits:?}");
}
