//! Addresses a visitor types, over HTTP against a real picket: a Mastodon server, a
//! Bluesky service, Nostr relays on loopback are refused before any connection (a local
//! listener counts, and stays at 0); the connect forms say the same whatever is behind an
//! address (no port scanning); a server's error body never reaches the page, neither
//! when connecting nor when a post is refused later; and an account a visitor connected
//! stays guarded when picket posts for it later.
//!
//! Every address here is on loopback: the refusal of other ranges is decided before any
//! connection and tested on that decision (`network::guarded`'s unit tests).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use nostr::prelude::{Keys, ToBech32};
use picket::domain::Secret;
use picket::network::{AccountRef, Egress, Network, OutgoingPost, PublishError};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    BUNDLED, HeldPort, Options, Page, TestApp, Visitor, eventually, posts_at_start, window_campaign,
};

/// A loopback server that counts the connections it accepts and answers each with what
/// `answer` gives for the request line ("GET /path ..."): raw bytes, sent as they are.
struct Upstream {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start(answer: fn(&str) -> Vec<u8>) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]).to_string();
                    let line = request.lines().next().unwrap_or_default().to_string();
                    let _ = conn.write_all(&answer(&line)).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Upstream { addr, connections }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

fn http(status: u16, body: &str) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        403 => "Forbidden",
        404 => "Not Found",
        _ => "Whatever",
    };
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// What only the server behind an address knows: it must never reach a visitor's page.
const SECRET: &str = "SECRET-INTERNAL-7f3a";

/// A visitor at step 2 of joining the bundled campaign (signed in, no account yet).
async fn at_step2(site: &TestApp) -> (Visitor, Page) {
    let visitor = site.visitor();
    let step2 = visitor
        .start_joining(
            BUNDLED,
            &[
                ("name", "Visitor"),
                ("tz", "Europe/Lisbon"),
                ("day", "2027-07-04"),
            ],
        )
        .await;
    (visitor, step2)
}

/// Post a connect form; the message the visitor is sent back with, and the page showing it.
async fn connect(
    visitor: &Visitor,
    step2: &Page,
    network: &str,
    fields: &[(&str, &str)],
) -> (String, Page) {
    let mut form = vec![
        ("csrf".to_string(), step2.field("csrf")),
        ("back".to_string(), step2.field("back")),
    ];
    form.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let sent = visitor.post(&format!("/connect/{network}"), &form).await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.html);
    let location = sent.location.unwrap();
    let msg = url::Url::parse(&format!("http://x{location}"))
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "msg")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no message in {location}"));
    let page = visitor.get(&location).await;
    (msg, page)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mastodon_server_a_visitor_types_on_loopback_is_refused_without_a_connection() {
    // Arrange: a Mastodon-looking server on loopback, and a host with default settings.
    let upstream = Upstream::start(|_| http(200, r#"{"configuration":{}}"#)).await;
    let site = TestApp::spawn(Options::joinable()).await;
    let (visitor, step2) = at_step2(&site).await;
    let p = upstream.port();

    // Act: every way of writing the address.
    let mut messages = Vec::new();
    for server in [
        format!("http://127.0.0.1:{p}"),
        format!("https://127.0.0.1:{p}"),
        format!("127.0.0.1:{p}"),
        format!("https://localhost:{p}"),
        format!("https://127.1:{p}"),
        format!("https://[::ffff:127.0.0.1]:{p}"),
    ] {
        let (msg, page) = connect(&visitor, &step2, "mastodon", &[("server", &server)]).await;
        assert!(page.html.contains(&msg), "{}", page.html);
        messages.push(msg);
    }

    // Assert
    assert_eq!(upstream.connections(), 0, "picket connected to loopback");
    assert!(
        messages.iter().all(|m| *m == messages[0]),
        "one message for all: {messages:#?}"
    );
    assert!(!messages[0].contains("127.0.0.1"), "{}", messages[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bluesky_service_a_visitor_types_on_loopback_is_refused_without_a_connection() {
    let upstream = Upstream::start(|_| http(200, r#"{"did":"did:plc:abc"}"#)).await;
    let site = TestApp::spawn(Options::joinable()).await;
    let (visitor, step2) = at_step2(&site).await;
    let p = upstream.port();

    for service in [
        format!("http://127.0.0.1:{p}"),
        format!("https://localhost:{p}"),
    ] {
        let (msg, _) = connect(
            &visitor,
            &step2,
            "bluesky",
            &[
                ("handle", "alice.example.com"),
                ("app_password", "abcd-efgh-ijkl-mnop"),
                ("service", &service),
            ],
        )
        .await;
        assert!(msg.contains("could not sign in"), "{msg}");
    }

    assert_eq!(upstream.connections(), 0, "picket connected to loopback");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nostr_relays_a_visitor_types_on_loopback_are_refused_without_a_connection() {
    // Arrange: a "relay" on loopback.
    let upstream = Upstream::start(|_| Vec::new()).await;
    let site = TestApp::spawn(Options::joinable()).await;
    let (visitor, step2) = at_step2(&site).await;
    let p = upstream.port();
    let signer = Keys::generate().public_key().to_hex();

    // Act
    let (msg, _) = connect(
        &visitor,
        &step2,
        "nostr",
        &[
            ("relays", &format!("wss://127.0.0.1:{p} ws://localhost:{p}")),
            (
                "bunker",
                &format!("bunker://{signer}?relay=wss://127.0.0.1:{p}"),
            ),
        ],
    )
    .await;

    // Assert
    assert_eq!(upstream.connections(), 0, "picket connected to loopback");
    assert!(msg.contains("relay"), "{msg}");
    assert!(!msg.contains("127.0.0.1"), "{msg}");
}

#[tokio::test]
async fn a_bunker_a_visitor_names_on_loopback_is_never_contacted() {
    use picket::participation::connect::{self, ConnectError, TypedBy};
    // Arrange: the bunker's relay on loopback (the account's relays are not contacted
    // while connecting).
    let upstream = Upstream::start(|_| Vec::new()).await;
    let signer = Keys::generate().public_key().to_hex();
    let p = upstream.port();

    // Act
    let mut failures = Vec::new();
    for relay in [
        format!("wss://127.0.0.1:{p}"),
        format!("ws://localhost:{p}"),
    ] {
        let connected = connect::nostr_bunker(
            &Egress::new(false),
            TypedBy::Visitor,
            vec!["wss://relay.example".into()],
            &format!("bunker://{signer}?relay={relay}"),
            Duration::from_secs(5),
        )
        .await;
        failures.push(connected.unwrap_err());
    }

    // Assert
    assert_eq!(upstream.connections(), 0);
    for f in &failures {
        assert!(matches!(f, ConnectError::Failed { .. }), "{f:?}");
        assert!(f.to_string().contains("allow_private_addresses"), "{f}");
        assert!(!f.for_visitor().contains("127.0.0.1"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_forms_say_the_same_for_a_closed_port_an_open_port_and_a_json_endpoint() {
    // Arrange: a host that allows private addresses, so picket does connect this time.
    let closed = HeldPort::new();
    let open = Upstream::start(|_| b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()).await;
    let json = Upstream::start(|line| {
        if line.contains("resolveHandle") {
            http(200, r#"{"did":"did:plc:abcdefghijklmnopqrstuvwx"}"#)
        } else {
            http(403, r#"{"error":"Forbidden","message":"no"}"#)
        }
    })
    .await;
    let site = TestApp::spawn(Options::joinable().config("allow_private_addresses = true")).await;
    let (visitor, step2) = at_step2(&site).await;
    let targets = [
        format!("http://127.0.0.1:{}", closed.port()),
        format!("http://127.0.0.1:{}", open.port()),
        format!("http://127.0.0.1:{}", json.port()),
    ];

    // Act
    let mut bluesky = Vec::new();
    let mut mastodon = Vec::new();
    for target in &targets {
        let (msg, _) = connect(
            &visitor,
            &step2,
            "bluesky",
            &[
                ("handle", "alice.example.com"),
                ("app_password", "abcd-efgh-ijkl-mnop"),
                ("service", target),
            ],
        )
        .await;
        bluesky.push(msg);
        let (msg, _) = connect(&visitor, &step2, "mastodon", &[("server", target)]).await;
        mastodon.push(msg);
    }

    // Assert: picket did reach them, and said the same each time.
    assert!(open.connections() > 0 && json.connections() > 0);
    assert!(bluesky.iter().all(|m| *m == bluesky[0]), "{bluesky:#?}");
    assert!(mastodon.iter().all(|m| *m == mastodon[0]), "{mastodon:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_error_answer_never_reaches_the_visitors_page() {
    // Arrange: servers that get far enough to refuse with a body: a Mastodon server that
    // describes itself and then refuses picket's registration, a PDS that knows the handle
    // and then refuses the session.
    let mastodon = Upstream::start(|line| {
        if line.contains("/api/v1/apps") || line.contains("/oauth") {
            http(403, r#"{"error":"SECRET-INTERNAL-7f3a: admin only"}"#)
        } else {
            http(
                200,
                r#"{"configuration":{"statuses":{"max_characters":500}}}"#,
            )
        }
    })
    .await;
    let pds = Upstream::start(|line| {
        if line.contains("resolveHandle") {
            http(200, r#"{"did":"did:plc:abcdefghijklmnopqrstuvwx"}"#)
        } else {
            http(
                403,
                r#"{"error":"Forbidden","message":"SECRET-INTERNAL-7f3a: admin only"}"#,
            )
        }
    })
    .await;
    let site = TestApp::spawn(Options::joinable().config("allow_private_addresses = true")).await;
    let (visitor, step2) = at_step2(&site).await;

    // Act
    let (on_mastodon, mastodon_page) = connect(
        &visitor,
        &step2,
        "mastodon",
        &[("server", &format!("http://127.0.0.1:{}", mastodon.port()))],
    )
    .await;
    let (on_bluesky, bluesky_page) = connect(
        &visitor,
        &step2,
        "bluesky",
        &[
            ("handle", "alice.example.com"),
            ("app_password", "abcd-efgh-ijkl-mnop"),
            ("service", &format!("http://127.0.0.1:{}", pds.port())),
        ],
    )
    .await;

    // Assert: both were asked, and neither's words are shown.
    assert!(mastodon.connections() >= 2 && pds.connections() >= 2);
    for shown in [
        &on_mastodon,
        &mastodon_page.html,
        &on_bluesky,
        &bluesky_page.html,
    ] {
        assert!(!shown.contains(SECRET), "{shown}");
    }
}

/// A Mastodon-API server on loopback that lets anyone connect an account, then refuses
/// posts with `SECRET` in its error body: the first with 422 (the text), the next ones
/// with 403 (the account). Served by axum, so request bodies are read in full.
async fn refusing_mastodon() -> (String, Arc<AtomicUsize>) {
    use axum::Json;
    use axum::routing::{get, post};
    use serde_json::json;
    let statuses = Arc::new(AtomicUsize::new(0));
    let seen = statuses.clone();
    let app = axum::Router::new()
        .route(
            "/api/v2/instance",
            get(|| async { Json(json!({"configuration": {"statuses": {"max_characters": 500}}})) }),
        )
        .route(
            "/api/v1/apps",
            post(|| async { Json(json!({"client_id": "cid", "client_secret": "csecret"})) }),
        )
        .route(
            "/oauth/token",
            post(|| async { Json(json!({"access_token": "tok-3e9c", "token_type": "Bearer"})) }),
        )
        .route(
            "/api/v1/accounts/verify_credentials",
            get(|| async { Json(json!({"id": "7", "acct": "ada"})) }),
        )
        .route(
            "/api/v1/statuses",
            post(move || {
                let n = seen.fetch_add(1, Ordering::SeqCst);
                async move {
                    let status = if n == 0 {
                        axum::http::StatusCode::UNPROCESSABLE_ENTITY
                    } else {
                        axum::http::StatusCode::FORBIDDEN
                    };
                    let error = format!("{SECRET}: <a href=\"https://evil.example\">appeal</a>");
                    (status, Json(json!({ "error": error })))
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_error_answer_to_a_post_never_reaches_the_participants_pages() {
    // Arrange: a participant of `soon` (two notices a few seconds from now) whose Mastodon
    // account, connected in the browser, lives on a server that refuses the posts.
    let (server, statuses) = refusing_mastodon().await;
    let now = Utc::now();
    let soon = window_campaign(
        "soon",
        now + chrono::Duration::seconds(6),
        now + chrono::Duration::hours(2),
        &posts_at_start(2, "30m"),
    );
    let site = TestApp::spawn(
        Options::joinable()
            .campaign("soon", &soon)
            .config("allow_private_addresses = true"),
    )
    .await;
    let visitor = site.visitor();
    let form = visitor.get("/c/soon/join").await;
    let mut fields = vec![
        ("csrf".to_string(), form.field("csrf")),
        ("name".to_string(), "Ada".to_string()),
        ("tz".to_string(), "UTC".to_string()),
    ];
    for day in form.html.split("name=\"day\" value=\"").skip(1) {
        fields.push(("day".into(), day.split('"').next().unwrap().to_string()));
    }
    let fields: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let step1 = visitor.post("/c/soon/join", &fields).await;
    assert_eq!(step1.status, StatusCode::SEE_OTHER, "{}", step1.html);
    let accounts_url = step1.location.unwrap();
    let step2 = visitor.get(&accounts_url).await;
    let to_server = visitor
        .post(
            "/connect/mastodon",
            &[
                ("csrf", &step2.field("csrf")),
                ("back", &step2.field("back")),
                ("server", &server),
            ],
        )
        .await;
    let authorize = url::Url::parse(to_server.location.as_deref().unwrap()).unwrap();
    assert!(authorize.as_str().starts_with(&server), "{authorize}");
    let oauth_state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let callback = visitor
        .get(&format!(
            "/connect/mastodon/callback?code=c0de&state={oauth_state}"
        ))
        .await;
    let step2 = visitor.get(callback.location.as_deref().unwrap()).await;
    assert!(
        step2.html.contains("Connected your Mastodon account"),
        "{}",
        step2.html
    );
    let joined = visitor.confirm("soon", &step2).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.html);

    // Act: the notices fall due; the server refuses the first post's text (422), then the
    // account (403). Wait for both to be recorded.
    let me = eventually(
        Duration::from_secs(60),
        "/me to show the refused post and the account needing reconnection",
        async || {
            let me = visitor.get("/me").await;
            let done = me.html.contains("class=\"failed\"") && me.html.contains("reconnect_needed");
            done.then_some(me)
        },
    )
    .await;
    let accounts_page = visitor.get(&accounts_url).await;

    // Assert: the server was asked, its words are on neither page, and picket's say what
    // kind of failure each was.
    assert!(statuses.load(Ordering::SeqCst) >= 2);
    for page in [&me.html, &accounts_page.html] {
        assert!(!page.contains(SECRET), "{page}");
        assert!(!page.contains("evil.example"), "{page}");
    }
    assert!(
        me.html.contains("the server refused the post (HTTP 422)"),
        "{}",
        me.html
    );
    assert!(
        me.html
            .contains("reconnect_needed: the server refused picket&#x27;s access")
            && me.html.contains("(HTTP 403)"),
        "{}",
        me.html
    );
    assert!(
        accounts_page.html.contains("(HTTP 403)"),
        "{}",
        accounts_page.html
    );
}

/// A post for the adapter tests below.
fn post() -> OutgoingPost {
    OutgoingPost {
        text: "On #TestStrike today".into(),
        idempotency_key: "k".into(),
        scheduled_at: Utc::now(),
        slot_key: "s".into(),
        outcome_unknown: false,
        timeout: Duration::from_secs(5),
        image: None,
    }
}

#[tokio::test]
async fn an_account_a_visitor_connected_stays_guarded_when_picket_posts_for_it_later() {
    use picket::network::mastodon::{Credentials, Mastodon};
    use picket::network::nostr::{Credentials as NostrCredentials, Nostr};
    // Arrange: a server on loopback answering like Mastodon, and the same account twice:
    // as a visitor connected it (guarded) and as the operator added it (trusted).
    let upstream = Upstream::start(|_| {
        http(
            200,
            r#"{"id":"1","url":"https://m.example/@a/1","visibility":"public"}"#,
        )
    })
    .await;
    let egress = Egress::new(false);
    let mastodon = Mastodon::new(egress.clone(), Arc::new(picket::clock::SystemClock));
    let nostr = Nostr::new(egress.clone());
    let account = |trusted| AccountRef {
        id: 1,
        handle: "a".into(),
        server: format!("http://127.0.0.1:{}", upstream.port()),
        credentials: Secret::new(Credentials::parse("token").to_json()),
        trusted,
    };
    let keys = Keys::generate();
    let relay_account = AccountRef {
        id: 2,
        handle: keys.public_key().to_bech32().unwrap(),
        server: format!("ws://127.0.0.1:{}", upstream.port()),
        credentials: NostrCredentials::Key {
            secret_key: keys.secret_key().to_secret_hex(),
        }
        .to_secret(),
        trusted: false,
    };

    // Act
    let visitors = mastodon.publish(&account(false), &post()).await;
    let to_relay = nostr.publish(&relay_account, &post()).await;
    let before_operator = upstream.connections();
    let operators = mastodon.publish(&account(true), &post()).await;

    // Assert
    assert!(
        matches!(
            visitors,
            Err(PublishError::Retry {
                maybe_sent: false,
                ..
            })
        ),
        "{visitors:?}"
    );
    assert!(
        matches!(
            to_relay,
            Err(PublishError::Retry {
                maybe_sent: false,
                ..
            })
        ),
        "{to_relay:?}"
    );
    assert_eq!(before_operator, 0, "the guarded requests never connected");
    assert_eq!(operators.unwrap().remote_id, "1");
    assert_eq!(upstream.connections(), 1);
}
