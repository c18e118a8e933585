//! The Mastodon adapter end to end: the real `picket` binary enrolls accounts, joins a
//! campaign and serves it, and the posts are read back from the server.
//!
//! The server is `mastodon_mock` (PyPI, pinned in `scripts/servers/mastodon-mock.sh`): a
//! THIRD-PARTY IMITATION of the Mastodon client API, not Mastodon itself. No real
//! Mastodon-API server installs from the registries this project may use. Its quirks are
//! not picket's contract: the adapter follows the documented API (NETWORKS.md §1), and
//! these tests only rely on behaviour Mastodon documents (Idempotency-Key, 401 for a
//! revoked token, server-side tags and links, the tag timeline). Its one liberty used
//! here: `/oauth/authorize` has no password, a POSTed `username` gets a code.
//!
//! Start it with `scripts/servers/mastodon-mock.sh`, which prints
//! `PICKET_TEST_MASTODON_URL=...`; without that variable these tests are skipped, unless
//! `PICKET_REQUIRE_SERVERS=1`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::Utc;
use picket::store::{AccountId, AccountStatus, OutboxState, Store};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::support::{
    BUNDLED, HeldPort, Installation, Options, TestApp, eventually, require_server, rfc,
};

const OOB: &str = "urn:ietf:wg:oauth:2.0:oob";

fn server_url() -> Option<String> {
    require_server("PICKET_TEST_MASTODON_URL")
}

fn unique(prefix: &str) -> String {
    use rand::Rng;
    let mut b = [0u8; 5];
    rand::rng().fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}

/// The mock server, driven as a test fixture (users, codes, reads); `tap` uses it too.
pub(crate) struct Mock {
    url: String,
    http: reqwest::Client,
    client_id: String,
    client_secret: String,
    app_token: String,
}

impl Mock {
    pub(crate) async fn new(url: &str) -> Mock {
        let http = reqwest::Client::new();
        let app: Value = http
            .post(format!("{url}/api/v1/apps"))
            .json(&serde_json::json!({"client_name": "picket-tests", "redirect_uris": OOB, "scopes": "read write"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let client_id = app["client_id"].as_str().unwrap().to_string();
        let client_secret = app["client_secret"].as_str().unwrap().to_string();
        let tok: Value = http
            .post(format!("{url}/oauth/token"))
            .json(&serde_json::json!({"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret, "scope": "read write"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        Mock {
            url: url.to_string(),
            http,
            client_id,
            client_secret,
            app_token: tok["access_token"].as_str().unwrap().to_string(),
        }
    }

    /// Sign a new user up; returns the username.
    pub(crate) async fn sign_up(&self, prefix: &str) -> String {
        let username = unique(prefix);
        let resp = self
            .http
            .post(format!("{}/api/v1/accounts", self.url))
            .bearer_auth(&self.app_token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("username", &username),
                ("email", &format!("{username}@example.com")),
                ("password", "correct-horse-battery"),
                ("agreement", "true"),
            ]))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "sign-up: {}", resp.status());
        username
    }

    /// What the authorize page shows `username` after they allow `client_id`.
    async fn authorize(&self, username: &str, client_id: &str) -> String {
        let html = self
            .http
            .post(format!("{}/oauth/authorize", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("username", username),
                ("client_id", client_id),
                ("redirect_uri", OOB),
            ]))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let code = html
            .split("Authorization code: ")
            .nth(1)
            .and_then(|s| s.split('<').next())
            .unwrap_or_else(|| panic!("no code on the page: {html}"));
        code.trim().to_string()
    }

    /// A user token obtained the way a participant would, outside picket.
    pub(crate) async fn token_for(&self, username: &str) -> String {
        let code = self.authorize(username, &self.client_id).await;
        let tok: Value = self
            .http
            .post(format!("{}/oauth/token", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
                ("redirect_uri", OOB),
            ]))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        tok["access_token"].as_str().unwrap().to_string()
    }

    pub(crate) async fn revoke(&self, token: &str) {
        let resp = self
            .http
            .post(format!("{}/oauth/revoke", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(&[
                ("token", token),
                ("client_id", &self.client_id),
                ("client_secret", &self.client_secret),
            ]))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "revoke: {}", resp.status());
    }

    /// Public statuses under `#tag`, newest first.
    pub(crate) async fn tagged(&self, tag: &str) -> Vec<Value> {
        self.http
            .get(format!(
                "{}/api/v1/timelines/tag/{}?limit=40",
                self.url,
                tag.to_lowercase()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The statuses under `#tag`, once there are `n`.
    async fn wait_tagged(&self, tag: &str, n: usize, limit: Duration) -> Vec<Value> {
        eventually(limit, &format!("{n} status(es) under #{tag}"), async || {
            let found = self.tagged(tag).await;
            match found.len() {
                seen if seen >= n => Ok(found),
                seen => Err(format!("{seen} so far")),
            }
        })
        .await
    }
}

/// A picket installation whose campaign window opens in a few seconds: two posts at the
/// start, one at the end (withdrawal must stop it), on Mastodon.
struct Picket {
    inst: Installation,
    hashtag: String,
    /// The end of the window, when the closing post falls due.
    end: chrono::DateTime<Utc>,
}

impl std::ops::Deref for Picket {
    type Target = Installation;
    fn deref(&self) -> &Installation {
        &self.inst
    }
}

impl Picket {
    fn new(end_in: chrono::Duration) -> Picket {
        Picket::starting(chrono::Duration::seconds(3), end_in)
    }

    /// A window opening `start_in` from now.
    fn starting(start_in: chrono::Duration, end_in: chrono::Duration) -> Picket {
        let hashtag = unique("PicketTest");
        let start = Utc::now() + start_in;
        let campaign = format!(
            r#"id = "strike"
title = "Test strike"
hashtag = "{hashtag}"
networks = ["mastodon"]

[strike]
windows = [{{ start = "{}", end = "{}" }}]
min_interval = "5m"

[[posts]]
name = "notice"
when = "start"
template = "notice"
window = "30m"

[[posts]]
name = "again"
when = "start"
template = "again"
window = "30m"

[[posts]]
name = "closing"
when = "end"
template = "again"
window = "30m"

[templates]
notice = ["On #{{{{ hashtag }}}} strike today. Join: {{{{ invite_link }}}}"]
again = ["Still striking, #{{{{ hashtag }}}}: {{{{ invite_link }}}}"]
"#,
            rfc(start),
            rfc(start + end_in)
        );
        // No jitter (the harness's default): the posts go out at the window's start, so
        // the test stays short. Logged at debug: one test looks for tokens in the log.
        let inst = Options::default()
            .without_bundled()
            .campaign("strike", &campaign)
            .config(
                "public_url = \"https://picket.example.org\"\n[scheduler]\nlease_secs = 10\nrequest_timeout_secs = 5\n",
            )
            .key([7u8; 32])
            .log_level("debug")
            .install();
        Picket {
            inst,
            hashtag,
            end: start + end_in,
        }
    }

    fn add_with_token(&self, server: &str, token: &str) -> i64 {
        self.add_account(&["mastodon", "--server", server, "--token", token])
    }

    fn join(&self, account: i64) {
        self.run(&["join", "strike", "--account", &account.to_string()]);
    }
}

fn account_id(out: &str) -> i64 {
    out.split("added mastodon account ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no account id in: {out}"))
}

/// The rows of `state` in the outbox of the local participant.
async fn rows_in(store: &dyn Store, state: OutboxState) -> usize {
    let me = store
        .ensure_local_participant("me", picket::domain::Zone::UTC, Utc::now())
        .await
        .unwrap();
    store
        .outbox_for(me, Some("strike"))
        .await
        .unwrap()
        .iter()
        .filter(|r| r.state == state)
        .count()
}

fn form(pairs: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn plain(html: &str) -> String {
    picket::network::mastodon::html_to_text(html)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oauth_enrolled_account_posts_each_slot_once_with_its_tag_and_link_until_withdrawn() {
    let Some(url) = server_url() else { return };
    // Arrange: a user on the server; picket enrolls them through OAuth, the code pasted
    // on standard input as a participant would.
    let mock = Mock::new(&url).await;
    let username = mock.sign_up("oauth").await;
    let picket = Picket::new(chrono::Duration::seconds(45));
    let mut add = picket
        .command()
        .args(["account", "add", "mastodon", "--server", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(add.stdout.take().unwrap());
    let authorize = loop {
        let mut line = String::new();
        assert_ne!(
            stdout.read_line(&mut line).unwrap(),
            0,
            "no authorize URL printed"
        );
        if let Some(u) = line
            .split_whitespace()
            .find(|w| w.contains("/oauth/authorize?"))
        {
            break url::Url::parse(u).unwrap();
        }
    };
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["redirect_uri"], OOB);
    assert!(
        q["scope"].split(' ').any(|s| s == "write:statuses"),
        "{q:?}"
    );
    assert_eq!(
        q["code_challenge_method"], "S256",
        "the server advertises PKCE"
    );
    let code = mock.authorize(&username, &q["client_id"]).await;
    writeln!(add.stdin.take().unwrap(), "{code}").unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = add.wait().unwrap();
    let mut err = String::new();
    add.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(status.success(), "account add: {rest}\n{err}");
    let account = account_id(&rest);
    assert!(rest.contains(&username), "{rest}");
    assert!(
        rest.contains("500 characters"),
        "limit read from the server: {rest}"
    );
    picket.join(account);

    // Act: serve through the start of the window.
    let served = picket.serve().await;
    let posts = mock
        .wait_tagged(&picket.hashtag, 2, Duration::from_secs(40))
        .await;
    let store = picket.store().await;
    eventually(
        Duration::from_secs(10),
        "both posts recorded as published",
        async || rows_in(store.as_ref(), OutboxState::Published).await >= 2,
    )
    .await;
    picket.run(&["withdraw", "strike"]);
    let withdrawn_at = Utc::now();
    // The closing post was due at the end of the window: past it, nothing more came (real
    // time on purpose: what is tested is that nothing comes then).
    if let Ok(wait) = (picket.end + chrono::Duration::seconds(10) - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    let log = served.stop().log;
    let after = mock.tagged(&picket.hashtag).await;

    // Assert
    assert_eq!(posts.len(), 2, "one status per slot: {posts:#?}\n{log}");
    assert!(
        withdrawn_at < picket.end,
        "withdrawn at {withdrawn_at}, after the closing post was due at {}",
        picket.end
    );
    assert_eq!(after.len(), 2, "nothing after withdrawal: {after:#?}");
    let texts: Vec<String> = posts
        .iter()
        .map(|p| plain(p["content"].as_str().unwrap()))
        .collect();
    assert!(
        texts.iter().any(|t| t.starts_with(&format!(
            "On #{} strike today. Join: https://picket.example.org/i/",
            picket.hashtag
        ))),
        "{texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.starts_with(&format!(
            "Still striking, #{}: https://picket.example.org/i/",
            picket.hashtag
        ))),
        "{texts:?}"
    );
    for p in &posts {
        assert_eq!(p["visibility"], "public");
        assert_eq!(p["account"]["username"], username.as_str());
        let tags: Vec<String> = p["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_lowercase())
            .collect();
        assert_eq!(tags, vec![picket.hashtag.to_lowercase()], "server-side tag");
        let content = p["content"].as_str().unwrap();
        assert!(
            content.contains("href=\"https://picket.example.org/i/"),
            "the invite link is a link: {content}"
        );
    }
    assert_eq!(rows_in(store.as_ref(), OutboxState::Published).await, 2);
    assert_eq!(rows_in(store.as_ref(), OutboxState::Cancelled).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_puts_the_account_in_reconnect_needed_and_its_posts_wait() {
    let Some(url) = server_url() else { return };
    // Arrange: a pasted token, revoked after enrollment.
    let mock = Mock::new(&url).await;
    let username = mock.sign_up("revoked").await;
    let token = mock.token_for(&username).await;
    let picket = Picket::new(chrono::Duration::minutes(30));
    let account = picket.add_with_token(&url, &token);
    picket.join(account);
    mock.revoke(&token).await;
    let store = picket.store().await;

    // Act
    let served = picket.serve().await;
    let acc = eventually(
        Duration::from_secs(30),
        "the account to need reconnecting",
        async || {
            let a = store
                .get_account(AccountId(account))
                .await
                .unwrap()
                .unwrap();
            if a.status == AccountStatus::ReconnectNeeded {
                Ok(a)
            } else {
                Err(format!("{:?}", a.status))
            }
        },
    )
    .await;
    // Real time on purpose: the posts must stay waiting, not be tried and failed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    served.stop();

    // Assert
    assert!(
        acc.status_reason.as_deref().unwrap_or("").contains("401"),
        "{:?}",
        acc.status_reason
    );
    assert_eq!(rows_in(store.as_ref(), OutboxState::Published).await, 0);
    assert_eq!(rows_in(store.as_ref(), OutboxState::Failed).await, 0);
    assert_eq!(
        rows_in(store.as_ref(), OutboxState::Pending).await,
        3,
        "posts wait"
    );
    assert!(mock.tagged(&picket.hashtag).await.is_empty());
}

#[tokio::test]
async fn a_wrong_token_is_refused_at_enrollment() {
    let Some(url) = server_url() else { return };
    let picket = Picket::new(chrono::Duration::minutes(30));

    let out = picket
        .command()
        .args([
            "account",
            "add",
            "mastodon",
            "--server",
            &url,
            "--token",
            "not-a-token",
        ])
        .output()
        .unwrap();

    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("401"), "{err}");
    assert!(
        !err.contains("not-a-token"),
        "the token is not echoed: {err}"
    );
}

/// A TCP relay in front of the server: down (nothing listens), swallowing answers (the
/// request reaches the server, the answer never comes back), or passing through.
struct Relay {
    /// Kept while the relay is down, so that no one else takes the port meanwhile.
    port: HeldPort,
    upstream: String,
    stop: CancellationToken,
    swallow: Arc<AtomicUsize>,
}

impl Relay {
    async fn start(upstream: &str) -> Relay {
        let port = HeldPort::new();
        let listener = port.listen();
        let mut relay = Relay {
            port,
            upstream: upstream.trim_start_matches("http://").to_string(),
            stop: CancellationToken::new(),
            swallow: Arc::new(AtomicUsize::new(0)),
        };
        relay.run(listener);
        relay
    }

    fn url(&self) -> String {
        format!("http://{}", self.port.addr())
    }

    fn down(&self) {
        self.stop.cancel();
    }

    async fn up(&mut self) {
        self.stop = CancellationToken::new();
        let listener = self.port.listen();
        self.run(listener);
    }

    fn run(&mut self, listener: TcpListener) {
        let stop = self.stop.clone();
        let upstream = self.upstream.clone();
        let swallow = self.swallow.clone();
        tokio::spawn(async move {
            loop {
                let (mut inbound, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = listener.accept() => a.unwrap(),
                };
                let upstream = upstream.clone();
                let swallow = swallow.clone();
                let stop = stop.clone();
                tokio::spawn(async move {
                    let Ok(mut out) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    let lose = swallow
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    if lose {
                        use tokio::io::AsyncReadExt;
                        let (mut in_read, _in_write) = inbound.into_split();
                        let (mut out_read, mut out_write) = out.into_split();
                        let forward = tokio::spawn(async move {
                            let _ = tokio::io::copy(&mut in_read, &mut out_write).await;
                        });
                        // The server answers; the answer is dropped with the connection.
                        let mut buf = [0u8; 1024];
                        let _ = out_read.read(&mut buf).await;
                        forward.abort();
                        return;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut out) => {}
                    }
                });
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_down_at_the_slot_then_back_gets_each_post_exactly_once_and_no_token_leaks() {
    let Some(url) = server_url() else { return };
    // Arrange: the account reaches the server through a relay, which goes down before
    // the window opens.
    let mock = Mock::new(&url).await;
    let username = mock.sign_up("down").await;
    let token = mock.token_for(&username).await;
    let mut relay = Relay::start(&url).await;
    let picket = Picket::new(chrono::Duration::minutes(30));
    let account = picket.add_with_token(&relay.url(), &token);
    picket.join(account);
    relay.down();
    let store = picket.store().await;

    // Act: serve while the server is unreachable until a post has failed an attempt...
    let served = picket.serve().await;
    eventually(
        Duration::from_secs(30),
        "a failed attempt of both posts while down",
        async || {
            let me = store
                .ensure_local_participant("me", picket::domain::Zone::UTC, Utc::now())
                .await
                .unwrap();
            let rows = store.outbox_for(me, Some("strike")).await.unwrap();
            rows.iter()
                .filter(|r| r.attempts > 0 && r.state == OutboxState::Pending)
                .count()
                >= 2
        },
    )
    .await;
    // ... then bring it back, losing the answers to the first two posts: those attempts
    // reach the server, and picket cannot know they did.
    relay.swallow.store(2, Ordering::SeqCst);
    relay.up().await;
    let posts = mock
        .wait_tagged(&picket.hashtag, 2, Duration::from_secs(60))
        .await;
    // Once both are recorded as published nothing is left to send before the closing
    // post (30 minutes away): what the server has then is all it gets.
    eventually(
        Duration::from_secs(30),
        "both posts recorded as published",
        async || rows_in(store.as_ref(), OutboxState::Published).await >= 2,
    )
    .await;
    let log = served.stop().log;
    let after = mock.tagged(&picket.hashtag).await;

    // Assert
    assert_eq!(posts.len(), 2, "{posts:#?}\n{log}");
    assert_eq!(after.len(), 2, "exactly one status per slot: {after:#?}");
    assert_eq!(relay.swallow.load(Ordering::SeqCst), 0, "answers were lost");
    assert_eq!(
        rows_in(store.as_ref(), OutboxState::Published).await,
        2,
        "{log}"
    );
    let a = store
        .get_account(AccountId(account))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.status, AccountStatus::Active);
    assert!(
        a.trusted,
        "added on the command line: its loopback server is reachable"
    );
    // Safe data: the token is nowhere in clear, not in the database, not in a debug log.
    assert!(log.contains("DEBUG"), "the log is at debug level");
    let db = picket.db_bytes();
    assert!(
        !db.windows(token.len()).any(|w| w == token.as_bytes()),
        "token in the database"
    );
    assert!(!log.contains(&token), "token in the log");
}

#[tokio::test]
async fn on_a_server_without_idempotency_keys_a_retry_finds_the_earlier_post_instead_of_posting_again()
 {
    use picket::domain::Secret;
    use picket::network::mastodon::{Credentials, Mastodon};
    use picket::network::{AccountRef, Network, OutgoingPost};
    let Some(url) = server_url() else { return };
    // Arrange: credentials that say GoToSocial (which ignores Idempotency-Key), and a
    // first attempt that landed.
    let mock = Mock::new(&url).await;
    let username = mock.sign_up("gts").await;
    let token = mock.token_for(&username).await;
    let mut creds = Credentials::parse(&token);
    creds.software = Some("gotosocial".into());
    creds.max_characters = Some(5000);
    let account = AccountRef {
        id: 1,
        handle: username.clone(),
        server: url.clone(),
        credentials: Secret::new(creds.to_json()),
        // The test server is on loopback: an account the operator added.
        trusted: true,
    };
    let tag = unique("PicketGts");
    let mut post = OutgoingPost {
        text: format!("Striking today #{tag}\nJoin: https://picket.example.org/i/abc & more"),
        idempotency_key: unique("key-a-"),
        scheduled_at: Utc::now() - chrono::Duration::seconds(1),
        slot_key: "slot".into(),
        outcome_unknown: false,
        timeout: Duration::from_secs(10),
        image: None,
    };
    let adapter = Mastodon::new(
        picket::network::Egress::new(false),
        std::sync::Arc::new(picket::clock::SystemClock),
    );
    let first = adapter.publish(&account, &post).await.unwrap();

    // Act: the retry, with a key the server would not recognise anyway.
    post.outcome_unknown = true;
    post.idempotency_key = unique("key-b-");
    let retry = adapter.publish(&account, &post).await.unwrap();

    // Assert
    assert_eq!(retry, first);
    assert_eq!(mock.tagged(&tag).await.len(), 1);
}

#[tokio::test]
async fn reading_back_finds_a_published_status_by_its_text_and_says_absent_for_one_never_sent() {
    use picket::domain::Secret;
    use picket::network::mastodon::{Credentials, Mastodon};
    use picket::network::{AccountRef, Network, OutgoingPost, ReadBack};
    let Some(url) = server_url() else { return };
    // Arrange: one post published, one never sent.
    let mock = Mock::new(&url).await;
    let username = mock.sign_up("rb").await;
    let token = mock.token_for(&username).await;
    let account = AccountRef {
        id: 1,
        handle: username.clone(),
        server: url.clone(),
        credentials: Secret::new(Credentials::parse(&token).to_json()),
        trusted: true,
    };
    let tag = unique("PicketReadBack");
    let sent = OutgoingPost {
        text: format!("Striking today #{tag}"),
        idempotency_key: unique("key-rb-"),
        scheduled_at: Utc::now() - chrono::Duration::seconds(1),
        slot_key: "slot".into(),
        outcome_unknown: true,
        timeout: Duration::from_secs(10),
        image: None,
    };
    let never = OutgoingPost {
        text: format!("Not posted #{tag}"),
        idempotency_key: unique("key-rb-"),
        ..sent.clone()
    };
    let adapter = Mastodon::new(
        picket::network::Egress::new(false),
        std::sync::Arc::new(picket::clock::SystemClock),
    );
    let published = adapter.publish(&account, &sent).await.unwrap();

    // Act
    let found = adapter.read_back(&account, &sent).await.unwrap();
    let absent = adapter.read_back(&account, &never).await.unwrap();

    // Assert: found with its link; reading sent nothing.
    assert_eq!(found, ReadBack::Found(published));
    assert_eq!(absent, ReadBack::Absent);
    assert_eq!(mock.tagged(&tag).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_connects_a_mastodon_account_in_the_browser_through_the_servers_oauth_page() {
    // Arrange: a user on the server, and a newcomer at step 2 of joining.
    let Some(url) = server_url() else { return };
    let mock = Mock::new(&url).await;
    let username = mock.sign_up("web").await;
    // The server is on loopback: this host allows visitors' private addresses.
    let site = TestApp::spawn(Options::joinable().config("allow_private_addresses = true")).await;
    let browser = site.visitor();
    let step2 = browser
        .start_joining(
            BUNDLED,
            &[
                ("name", "Web"),
                ("tz", "Europe/Lisbon"),
                ("day", "2027-07-04"),
            ],
        )
        .await;

    // Act: type the server; picket registers itself and sends the browser to the server's
    // authorize page; the person allows it there; the server sends them back with a code.
    let to_server = browser
        .post(
            "/connect/mastodon",
            &[
                ("csrf", &step2.field("csrf")),
                ("back", &step2.field("back")),
                ("server", &url),
            ],
        )
        .await;
    let authorize = url::Url::parse(
        to_server
            .location
            .as_deref()
            .unwrap_or_else(|| panic!("{} {}", to_server.status, to_server.html)),
    )
    .unwrap();
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    let allowed = browser
        .http
        .post(format!("{url}/oauth/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("username", &username),
            ("client_id", &q["client_id"]),
            ("redirect_uri", &q["redirect_uri"]),
            ("scope", &q["scope"]),
            ("state", &q["state"]),
        ]))
        .send()
        .await
        .unwrap();
    // The server answers with a redirect the test follows by hand, as a browser would.
    let callback = allowed.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .trim_start_matches(&site.base)
        .to_string();
    let back = browser.get(&callback).await;
    let step2_again = browser.get(back.location.as_deref().unwrap()).await;

    // Assert
    assert_eq!(to_server.status, reqwest::StatusCode::SEE_OTHER);
    assert!(
        authorize
            .as_str()
            .starts_with(&format!("{url}/oauth/authorize?"))
    );
    assert_eq!(
        q["redirect_uri"],
        format!("{}/connect/mastodon/callback", site.base)
    );
    assert_eq!(
        q["scope"], "write:statuses read:accounts",
        "only what posting needs"
    );
    assert_eq!(back.status, reqwest::StatusCode::SEE_OTHER, "{}", back.html);
    assert!(
        step2_again.html.contains("Connected your Mastodon account"),
        "{}",
        step2_again.html
    );
    assert!(step2_again.html.contains(&username), "{}", step2_again.html);
    // A replayed callback (the state is single-use) is refused with a message.
    let replay = browser.get(&callback).await;
    assert_eq!(replay.status, reqwest::StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_post_with_card_true_is_published_with_the_strike_card_described_by_its_text() {
    let Some(url) = server_url() else { return };
    // Arrange: a user with a token, and a strike opening in a few seconds whose notice
    // asks for the card.
    let mock = Mock::new(&url).await;
    let username = mock.sign_up("card").await;
    let token = mock.token_for(&username).await;
    let hashtag = unique("PicketCard");
    let start = Utc::now() + chrono::Duration::seconds(3);
    let campaign = format!(
        r#"id = "strike"
title = "Card strike"
hashtag = "{hashtag}"
networks = ["mastodon"]

[strike]
windows = [{{ start = "{}", end = "{}" }}]

[[posts]]
name = "notice"
when = "start"
template = "notice"
window = "30m"
card = true

[templates]
notice = ["I'm not posting here today: #{{{{ hashtag }}}}. Join: {{{{ invite_link }}}}"]
"#,
        rfc(start),
        rfc(start + chrono::Duration::hours(1))
    );
    let inst = Options::default()
        .without_bundled()
        .campaign("strike", &campaign)
        .config(
            "public_url = \"https://picket.example.org\"\n[scheduler]\nlease_secs = 10\nrequest_timeout_secs = 10\n",
        )
        .key([7u8; 32])
        .install();
    let account = inst.add_account(&["mastodon", "--server", &url, "--token", &token]);
    inst.run(&["join", "strike", "--account", &account.to_string()]);

    // Act
    let served = inst.serve().await;
    let statuses = mock.wait_tagged(&hashtag, 1, Duration::from_secs(60)).await;
    served.stop();

    // Assert: one status with one image, described by the notice's own text, and the
    // image is the square card.
    assert_eq!(statuses.len(), 1);
    let status = &statuses[0];
    let media = status["media_attachments"].as_array().expect("attachments");
    assert_eq!(media.len(), 1, "{status:#}");
    assert_eq!(media[0]["type"], "image");
    let description = media[0]["description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!(
            "I'm not posting here today: #{hashtag}. Join: https://picket.example.org/i/"
        )),
        "{description}"
    );
    assert_eq!(
        description.split_whitespace().collect::<Vec<_>>(),
        plain(status["content"].as_str().unwrap())
            .split_whitespace()
            .collect::<Vec<_>>()
    );
    let png = reqwest::get(media[0]["url"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(crate::card::png_size(&png), (1080, 1080));
}

/// What the fake media server below saw.
#[derive(Default)]
struct MediaSeen {
    uploads: Vec<String>,
    polls: usize,
    statuses: Vec<Value>,
}

/// A server that answers as <https://docs.joinmastodon.org/methods/media/#v2> says a
/// server still processing an upload does: `202` with `"url": null`, then
/// `GET /api/v1/media/:id` answers `206` until it is done and `200` with the URL.
async fn processing_server(seen: Arc<std::sync::Mutex<MediaSeen>>, upload_status: u16) -> String {
    use axum::body::Bytes;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, post};
    type Seen = Arc<std::sync::Mutex<MediaSeen>>;
    let app = axum::Router::new()
        .route(
            "/api/v2/media",
            post(
                move |State(seen): State<Seen>, headers: HeaderMap, body: Bytes| async move {
                    let kind = headers["content-type"].to_str().unwrap().to_string();
                    let text = String::from_utf8_lossy(&body).to_string();
                    let mut s = seen.lock().unwrap();
                    s.uploads.push(format!("{kind}\n{text}"));
                    (
                        StatusCode::from_u16(upload_status).unwrap(),
                        axum::Json(serde_json::json!({"id": "77", "type": "image", "url": null})),
                    )
                },
            ),
        )
        .route(
            "/api/v1/media/{id}",
            get(
                |State(seen): State<Seen>, Path(id): Path<String>| async move {
                    let mut s = seen.lock().unwrap();
                    s.polls += 1;
                    if s.polls < 3 {
                        (
                            StatusCode::PARTIAL_CONTENT,
                            axum::Json(serde_json::json!({"id": id, "url": null})),
                        )
                    } else {
                        (
                            StatusCode::OK,
                            axum::Json(
                                serde_json::json!({"id": id, "url": "http://127.0.0.1/m/77.png"}),
                            ),
                        )
                    }
                },
            ),
        )
        .route(
            "/api/v1/statuses",
            post(
                |State(seen): State<Seen>, axum::Json(body): axum::Json<Value>| async move {
                    seen.lock().unwrap().statuses.push(body);
                    axum::Json(serde_json::json!({
                        "id": "1", "url": "http://127.0.0.1/@u/1", "visibility": "public",
                        "content": "<p>x</p>"
                    }))
                },
            ),
        )
        .with_state(seen);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn image_post(alt: &str) -> picket::network::OutgoingPost {
    let png = picket::card::render(
        &picket::card::Notice {
            title: "T".into(),
            hashtag: "H".into(),
            day: chrono::NaiveDate::from_ymd_opt(2027, 7, 4).unwrap(),
            host: "picket.example.org".into(),
            why: None,
        },
        picket::card::Size::Square,
    )
    .unwrap();
    picket::network::OutgoingPost {
        text: "On strike #H".into(),
        idempotency_key: "k".into(),
        scheduled_at: Utc::now(),
        slot_key: "s".into(),
        outcome_unknown: false,
        timeout: Duration::from_secs(10),
        image: Some(picket::network::Image {
            png: Arc::new(picket::card::Rendered {
                png,
                etag: String::new(),
            }),
            alt: alt.into(),
            width: 1080,
            height: 1080,
        }),
    }
}

fn fake_account(server: &str) -> picket::network::AccountRef {
    picket::network::AccountRef {
        id: 1,
        handle: "u".into(),
        server: server.into(),
        credentials: picket::domain::Secret::new("token-abc".to_string()),
        trusted: true,
    }
}

#[tokio::test]
async fn an_upload_still_processing_is_polled_until_ready_and_then_attached_to_the_status() {
    use picket::network::Network;
    use picket::network::mastodon::Mastodon;
    // Arrange
    let seen = Arc::new(std::sync::Mutex::new(MediaSeen::default()));
    let server = processing_server(seen.clone(), 202).await;
    let adapter = Mastodon::new(
        picket::network::Egress::new(false),
        Arc::new(picket::clock::SystemClock),
    );

    // Act
    let receipt = adapter
        .publish(&fake_account(&server), &image_post("The notice, in words"))
        .await
        .unwrap();

    // Assert: uploaded once as multipart with the alt text as `description`, asked about
    // until done, and named in the status.
    assert_eq!(receipt.remote_id, "1");
    let s = seen.lock().unwrap();
    assert_eq!(s.uploads.len(), 1);
    let upload = &s.uploads[0];
    assert!(
        upload.starts_with("multipart/form-data; boundary="),
        "{upload}"
    );
    assert!(upload.contains("name=\"description\"\r\n\r\nThe notice, in words"));
    assert!(upload.contains("filename=\"strike-card.png\""));
    assert!(upload.contains("Content-Type: image/png"));
    assert_eq!(s.polls, 3);
    assert_eq!(s.statuses.len(), 1);
    assert_eq!(s.statuses[0]["media_ids"], serde_json::json!(["77"]));
    assert_eq!(s.statuses[0]["status"], "On strike #H");
}

#[tokio::test]
async fn a_refused_upload_is_the_posts_refusal_and_no_status_is_posted() {
    use picket::network::mastodon::Mastodon;
    use picket::network::{Network, PublishError};
    let seen = Arc::new(std::sync::Mutex::new(MediaSeen::default()));
    let server = processing_server(seen.clone(), 422).await;
    let adapter = Mastodon::new(
        picket::network::Egress::new(false),
        Arc::new(picket::clock::SystemClock),
    );

    let refused = adapter
        .publish(&fake_account(&server), &image_post("alt"))
        .await;

    let Err(PublishError::Rejected(reason)) = refused else {
        panic!("expected a refusal, got {refused:?}");
    };
    assert!(reason.summary().contains("image"), "{reason:?}");
    assert!(seen.lock().unwrap().statuses.is_empty());
}

// ── hand-off to the server's own scheduler (`picket join --hand-off`) ─────────────────────
//
// What the imitation does with scheduled statuses, read in its source
// (`mastodon_mock/routers/statuses.py`): `scheduled_at` more than 5 minutes ahead makes a
// scheduled status (closer: published at once), as Mastodon does; it IGNORES
// `Idempotency-Key` for scheduled statuses, like Mastodon before 4.2.9 / 4.3; it lists
// (`GET /api/v1/scheduled_statuses`) and deletes them. It has no scheduler of its own:
// a due scheduled status is published when the account's list is next read. The tests
// below read that list themselves once the instant has passed, standing in for Mastodon's
// scheduler (a Sidekiq job at `scheduled_at`), while picket is stopped.

impl Mock {
    /// The scheduled statuses of the account `token` belongs to. On the imitation, reading
    /// this list also publishes those whose instant has passed (see above).
    async fn scheduled(&self, token: &str) -> Vec<Value> {
        let resp = self
            .http
            .get(format!("{}/api/v1/scheduled_statuses", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "list: {}", resp.status());
        resp.json().await.unwrap()
    }
}

impl Picket {
    fn join_handing_off(&self, account: i64) -> String {
        let out = self.run(&[
            "join",
            "strike",
            "--account",
            &account.to_string(),
            "--hand-off",
        ]);
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

/// The local participant's rows, by state name.
async fn states(store: &dyn Store) -> Vec<(String, Option<String>)> {
    let me = store
        .ensure_local_participant("me", picket::domain::Zone::UTC, Utc::now())
        .await
        .unwrap();
    store
        .outbox_for(me, Some("strike"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.state.as_str().to_string(), r.remote_url))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handed_off_posts_go_out_at_their_time_with_picket_stopped_each_exactly_once() {
    let Some(url) = server_url() else { return };
    // Arrange: a window opening in 6½ minutes (the server schedules only what is at least
    // 5 minutes ahead, picket hands off only what is at least 6); two posts at its start,
    // one at its end in 30 minutes.
    let mock = Mock::new(&url).await;
    let username = mock.sign_up("handoff").await;
    let token = mock.token_for(&username).await;
    let picket = Picket::starting(
        chrono::Duration::seconds(390),
        chrono::Duration::minutes(30),
    );
    let start = picket.end - chrono::Duration::minutes(30);
    let account = picket.add_with_token(&url, &token);
    let said = picket.join_handing_off(account);
    assert!(
        said.contains(
            "3 of its 3 planned post(s) go to its server's own scheduler (mastodon 4.6.0)"
        ),
        "{said}"
    );
    let store = picket.store().await;

    // Act: serve until all three are handed off, then stop picket through the strike hour.
    let served = picket.serve().await;
    eventually(
        Duration::from_secs(60),
        "three posts handed off",
        async || {
            let s = states(store.as_ref()).await;
            match s.iter().filter(|(st, _)| st == "handed_off").count() {
                3 => Ok(()),
                _ => Err(format!("{s:?}")),
            }
        },
    )
    .await;
    let log = served.stop().log;
    assert_eq!(mock.scheduled(&token).await.len(), 3, "{log}");
    assert!(mock.tagged(&picket.hashtag).await.is_empty());
    // The server's scheduler works on real time: nothing can make this shorter than the
    // 5 minutes the API requires between handing a post over and its instant.
    let wait = (start - Utc::now() + chrono::Duration::seconds(2))
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait).await;
    // Standing in for the server's scheduler job (the imitation publishes on this read).
    let still_scheduled = mock.scheduled(&token).await;
    let published = mock.tagged(&picket.hashtag).await;

    // Assert: both start posts are out, once each, and the closing one still waits.
    assert_eq!(published.len(), 2, "{published:#?}");
    assert_eq!(still_scheduled.len(), 1, "{still_scheduled:#?}");
    // picket, back up, reads them back and records their links; nothing is sent again.
    let served = picket.serve().await;
    let recorded = eventually(
        Duration::from_secs(60),
        "both start posts recorded as published, with links",
        async || {
            let s = states(store.as_ref()).await;
            let links: Vec<String> = s
                .iter()
                .filter(|(st, _)| st == "published")
                .filter_map(|(_, link)| link.clone())
                .collect();
            match links.len() {
                2 => Ok(links),
                _ => Err(format!("{s:?}")),
            }
        },
    )
    .await;
    let log = served.stop().log;
    let urls: Vec<String> = published
        .iter()
        .map(|p| p["url"].as_str().unwrap().to_string())
        .collect();
    for link in &recorded {
        assert!(urls.contains(link), "{link} is not among {urls:?}\n{log}");
    }
    assert_eq!(mock.tagged(&picket.hashtag).await.len(), 2, "{log}");
    assert_eq!(
        states(store.as_ref())
            .await
            .iter()
            .filter(|(st, _)| st == "handed_off")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdrawing_deletes_the_handed_off_posts_from_the_servers_schedule() {
    let Some(url) = server_url() else { return };
    // Arrange: three posts handed off, the first twenty minutes away.
    let mock = Mock::new(&url).await;
    let username = mock.sign_up("recall").await;
    let token = mock.token_for(&username).await;
    let picket = Picket::starting(chrono::Duration::minutes(20), chrono::Duration::minutes(30));
    let account = picket.add_with_token(&url, &token);
    picket.join_handing_off(account);
    let store = picket.store().await;
    let served = picket.serve().await;
    eventually(
        Duration::from_secs(60),
        "three posts handed off",
        async || mock.scheduled(&token).await.len() == 3,
    )
    .await;

    // Act
    let out = picket.run(&["withdraw", "strike"]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let log = served.stop().log;

    // Assert: nothing is left on the server's schedule, and picket says so.
    assert!(mock.scheduled(&token).await.is_empty(), "{said}\n{log}");
    assert!(
        said.contains("3 handed-off post(s) deleted from the server's schedule"),
        "{said}"
    );
    let s = states(store.as_ref()).await;
    assert!(s.iter().all(|(st, _)| st == "cancelled"), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_off_whose_answer_was_lost_leaves_one_scheduled_status_per_post() {
    let Some(url) = server_url() else { return };
    // Arrange: the account's server behind a relay; picket's first connection after the
    // join (the first hand-off) reaches the server, and its answer is lost.
    let mock = Mock::new(&url).await;
    let username = mock.sign_up("lost").await;
    let token = mock.token_for(&username).await;
    let relay = PostEater::start(&url, 1).await;
    let picket = Picket::starting(chrono::Duration::minutes(20), chrono::Duration::minutes(30));
    let account = picket.add_with_token(&relay.url, &token);
    picket.join_handing_off(account);
    let store = picket.store().await;

    // Act: serve until every post is handed off; the lost one is taken over when its
    // lease (10 s here) runs out, and reconciled with the server's list.
    let served = picket.serve().await;
    eventually(
        Duration::from_secs(90),
        "three posts handed off",
        async || {
            let s = states(store.as_ref()).await;
            match s.iter().filter(|(st, _)| st == "handed_off").count() {
                3 => Ok(()),
                _ => Err(format!("{s:?}")),
            }
        },
    )
    .await;
    let log = served.stop().log;

    // Assert: an answer was lost, and still each post is scheduled once (the imitation,
    // like Mastodon before 4.2.9, keeps no idempotency key for scheduled statuses).
    assert_eq!(relay.left.load(Ordering::SeqCst), 0, "no answer was lost");
    let scheduled = mock.scheduled(&token).await;
    assert_eq!(scheduled.len(), 3, "{scheduled:#?}\n{log}");
}

/// A TCP relay in front of the server that passes everything, except that the answers to
/// the first `left` requests to create a status (`POST /api/v1/statuses`) are lost: the
/// server gets the request and answers, and the connection is closed before the answer
/// reaches picket.
struct PostEater {
    url: String,
    left: Arc<AtomicUsize>,
}

impl PostEater {
    async fn start(upstream: &str, n: usize) -> PostEater {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = upstream.trim_start_matches("http://").to_string();
        let left = Arc::new(AtomicUsize::new(n));
        let counter = left.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(out) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let (mut in_read, mut in_write) = inbound.into_split();
                    let (mut out_read, mut out_write) = out.into_split();
                    let lose = Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let flag = lose.clone();
                    let up = tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match in_read.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if buf[..n].starts_with(b"POST /api/v1/statuses ")
                                && counter
                                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                        n.checked_sub(1)
                                    })
                                    .is_ok()
                            {
                                flag.store(true, Ordering::SeqCst);
                            }
                            if out_write.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match out_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        // The server answered the request whose answer is to be lost.
                        if lose.load(Ordering::SeqCst) {
                            break;
                        }
                        if in_write.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                });
            }
        });
        PostEater { url, left }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticking_hand_off_when_connecting_in_the_browser_hands_the_accounts_posts_to_its_server() {
    // Arrange: a user on the server, and a newcomer at step 2 of joining.
    let Some(url) = server_url() else { return };
    let mock = Mock::new(&url).await;
    let username = mock.sign_up("webhand").await;
    let site = TestApp::spawn(Options::joinable().config("allow_private_addresses = true")).await;
    let browser = site.visitor();
    let step2 = browser
        .start_joining(
            BUNDLED,
            &[
                ("name", "Web"),
                ("tz", "Europe/Lisbon"),
                ("day", "2027-07-04"),
            ],
        )
        .await;

    // Act: connect with the box ticked, allowing picket on the server's page.
    let to_server = browser
        .post(
            "/connect/mastodon",
            &[
                ("csrf", &step2.field("csrf")),
                ("back", &step2.field("back")),
                ("server", &url),
                ("hand_off", "1"),
            ],
        )
        .await;
    let authorize = url::Url::parse(to_server.location.as_deref().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    let allowed = browser
        .http
        .post(format!("{url}/oauth/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[
            ("username", &username),
            ("client_id", &q["client_id"]),
            ("redirect_uri", &q["redirect_uri"]),
            ("scope", &q["scope"]),
            ("state", &q["state"]),
        ]))
        .send()
        .await
        .unwrap();
    let callback = allowed.headers()[reqwest::header::LOCATION]
        .to_str()
        .unwrap()
        .trim_start_matches(&site.base)
        .to_string();
    let back = browser.get(&callback).await;
    let step2_again = browser.get(back.location.as_deref().unwrap()).await;

    // Assert: the server said what it runs (the imitation says Mastodon), hand-off is on
    // for the account, and the preview says which posts go to the server.
    let text = plain(&step2_again.html);
    assert!(
        text.contains(
            "handed to your server's own scheduler, so they go out even if this site is down"
        ),
        "{text}"
    );
    assert!(
        text.contains("handed to your server's own scheduler ahead of time"),
        "{text}"
    );
    // A fresh database: its only account has one of the first few ids.
    let ids: Vec<AccountId> = (1..=5).map(AccountId).collect();
    assert_eq!(site.store.hand_off_accounts(&ids).await.unwrap().len(), 1);
}
