//! The Bluesky adapter end to end against the reference PDS (`@atproto/pds`, started by
//! `scripts/servers/atproto-pds.sh`, URL in `PICKET_TEST_PDS_URL`): accounts made with
//! `createAccount`, added with the real `picket account add bluesky`, posts made by a real
//! `picket serve`, and read back from the PDS with `com.atproto.repo.listRecords`.
//! A PDS has no AppView, so nothing here reads a timeline or counts engagement.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use picket::crypto::Vault;
use picket::store::{AccountId, AccountStatus, OutboxState, Store};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{HeldPort, Installation, Options, TestApp, eventually, require_server, rfc};

const KEY: [u8; 32] = [7; 32];

/// The PDS URL, or `None` (the test skipped) when no PDS was started for this run.
fn pds_url() -> Option<String> {
    require_server("PICKET_TEST_PDS_URL")
}

/// A fresh account on the PDS and an app password for picket.
pub(crate) struct PdsAccount {
    pub(crate) handle: String,
    pub(crate) did: String,
    pub(crate) app_password: String,
    /// The main session, for revoking the app password.
    main_jwt: String,
}

pub(crate) async fn create_account(pds: &str) -> PdsAccount {
    let http = reqwest::Client::new();
    let handle = format!("t{}.test", &hex::encode(rand::random::<[u8; 5]>()));
    let made: Value = http
        .post(format!("{pds}/xrpc/com.atproto.server.createAccount"))
        .json(&json!({"handle": handle, "email": format!("{handle}@example.com"), "password": "main-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let main_jwt = made["accessJwt"]
        .as_str()
        .expect("account created")
        .to_string();
    let app: Value = http
        .post(format!("{pds}/xrpc/com.atproto.server.createAppPassword"))
        .bearer_auth(&main_jwt)
        .json(&json!({"name": "picket"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    PdsAccount {
        did: made["did"].as_str().unwrap().to_string(),
        handle,
        app_password: app["password"].as_str().unwrap().to_string(),
        main_jwt,
    }
}

/// Every post record in the account's repository.
async fn posts_on_pds(pds: &str, did: &str) -> Vec<Value> {
    let v: Value = reqwest::get(format!(
        "{pds}/xrpc/com.atproto.repo.listRecords?repo={did}&collection=app.bsky.feed.post&limit=100"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    v["records"].as_array().cloned().unwrap_or_default()
}

/// A temporary picket installation driven through the real binary, on a port known in
/// advance so the invite links point at it (the adapter reads the invite page for the
/// link card).
struct Picket {
    inst: Installation,
    /// `http://127.0.0.1:<port>`, its public URL.
    base: String,
    /// The end of the window, when the closing post falls due.
    end: DateTime<Utc>,
}

impl std::ops::Deref for Picket {
    type Target = Installation;
    fn deref(&self) -> &Installation {
        &self.inst
    }
}

impl Picket {
    /// A campaign `id` whose window opens `opens_in` from now and lasts `lasts`, posting a
    /// notice and a follow-up at the start and a closing post at the end, on Bluesky.
    fn new(id: &str, opens_in: chrono::Duration, lasts: chrono::Duration) -> Picket {
        Self::with_page(id, opens_in, lasts, "https://example.invalid/why")
    }

    /// Like [`Picket::new`], the follow-up posts linking `page` before the invite link.
    fn with_page(
        id: &str,
        opens_in: chrono::Duration,
        lasts: chrono::Duration,
        page: &str,
    ) -> Picket {
        let start = Utc::now() + opens_in;
        let inst = Options::default()
            .without_bundled()
            .campaign(id, &campaign(id, start, start + lasts, page))
            .own_address()
            .config("[scheduler]\nlease_secs = 5\nrequest_timeout_secs = 5\n")
            .key(KEY)
            .log_level("debug")
            .install();
        Picket {
            base: inst.fixed_base().unwrap(),
            inst,
            end: start + lasts,
        }
    }

    /// `picket account add bluesky --service URL`; returns the account id.
    fn add_bluesky(&self, a: &PdsAccount, service: &str) -> i64 {
        self.add_account(&[
            "bluesky",
            "--handle",
            &a.handle,
            "--app-password",
            &a.app_password,
            "--service",
            service,
        ])
    }
}

fn campaign(id: &str, start: DateTime<Utc>, end: DateTime<Utc>, page: &str) -> String {
    format!(
        r#"id = "{id}"
title = "Bluesky strike {id}"
hashtag = "TestStrike"
networks = ["bluesky"]

[strike]
windows = [{{ start = "{}", end = "{}" }}]
min_interval = "5m"

[[posts]]
name = "notice"
when = "start"
template = "notice"
window = "30m"

[[posts]]
name = "followup"
when = "start"
template = "followup"
window = "30m"

[[posts]]
name = "closing"
when = "end"
template = "followup"
window = "30m"

[templates]
notice = ["✊🏽 Café strike, 罢工: I'm on #{{{{ hashtag }}}} today. Join: {{{{ invite_link }}}}"]
followup = ["Still striking (#{{{{ hashtag }}}}), why: {page} Sign here → {{{{ invite_link }}}}!"]
"#,
        rfc(start),
        rfc(end)
    )
}

/// A 1×1 PNG, the card's thumbnail.
const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// A web page with OpenGraph tags and an image, on a free port: a link card's source if
/// picket read any page a post links to. Returns the page URL and how many connections it
/// received.
async fn card_page() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]);
                let (kind, body) = if req.starts_with("GET /card.png") {
                    (
                        "image/png",
                        base64::engine::general_purpose::STANDARD
                            .decode(PNG)
                            .unwrap(),
                    )
                } else {
                    (
                        "text/html; charset=utf-8",
                        br#"<html><head><title>fallback</title>
<meta property="og:title" content="Why we strike">
<meta property="og:description" content="Three days off social media.">
<meta property="og:image" content="/card.png"></head><body>hi</body></html>"#
                            .to_vec(),
                    )
                };
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(&body).await;
            });
        }
    });
    (format!("http://{addr}/why"), count)
}

/// SIGTERM, so picket shuts down as a service manager would stop it.
fn stop(served: TestApp) {
    served.stop();
}

fn facet<'a>(record: &'a Value, kind: &str) -> Vec<&'a Value> {
    record["facets"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter(|f| f["features"][0]["$type"] == kind)
                .collect()
        })
        .unwrap_or_default()
}

/// The text a facet covers, by its UTF-8 byte offsets.
fn covered<'a>(text: &'a str, f: &Value) -> &'a str {
    let a = f["index"]["byteStart"].as_u64().unwrap() as usize;
    let b = f["index"]["byteEnd"].as_u64().unwrap() as usize;
    &text[a..b]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_reach_the_pds_once_per_slot_with_tag_and_link_facets_and_stop_after_withdraw() {
    let Some(pds) = pds_url() else { return };
    // Arrange: an account on the PDS, added with the CLI; a strike opening in 8 s whose
    // closing post falls 40 s later.
    let alice = create_account(&pds).await;
    let (page, page_visits) = card_page().await;
    let picket = Picket::with_page(
        "bsky-happy",
        chrono::Duration::seconds(8),
        chrono::Duration::seconds(40),
        &page,
    );
    let account = picket.add_bluesky(&alice, &pds);
    picket.run(&["join", "bsky-happy", "--account", &account.to_string()]);

    // Act: serve until the two start posts are on the PDS, then withdraw.
    let serve = picket.serve().await;
    eventually(
        Duration::from_secs(60),
        "two posts on the PDS",
        async || posts_on_pds(&pds, &alice.did).await.len() >= 2,
    )
    .await;
    picket.run(&["withdraw", "bsky-happy"]);
    let after_withdraw = Utc::now();
    // Past the closing slot (start + 40 s) and then some (real time on purpose: what is
    // tested is that nothing comes then).
    if let Ok(wait) = (picket.end + chrono::Duration::seconds(10) - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
    stop(serve);

    // Assert: exactly the two start posts, each with its tag and link facets at the right
    // byte offsets, despite emoji, accents and CJK before them.
    let posts = posts_on_pds(&pds, &alice.did).await;
    assert!(
        after_withdraw < picket.end,
        "withdrawn at {after_withdraw}, after the closing post was due at {}",
        picket.end
    );
    assert_eq!(posts.len(), 2, "{posts:#?}");
    for p in &posts {
        let v = &p["value"];
        let text = v["text"].as_str().unwrap();
        assert!(text.contains("#TestStrike"), "{text}");
        let tags = facet(v, "app.bsky.richtext.facet#tag");
        assert_eq!(tags.len(), 1, "{v:#}");
        assert_eq!(tags[0]["features"][0]["tag"], "TestStrike");
        assert_eq!(covered(text, tags[0]), "#TestStrike");
        let links = facet(v, "app.bsky.richtext.facet#link");
        let invite = links.last().expect("the invite link is a link facet");
        let uri = invite["features"][0]["uri"].as_str().unwrap();
        assert_eq!(covered(text, invite), uri);
        assert!(uri.starts_with(&format!("{}/i/", picket.base)), "{uri}");
        assert!(!uri.ends_with('!'), "trailing punctuation in {uri}");
    }
    // The follow-up's first link is another site's page: the text must not choose what
    // picket fetches, so the card is the invite link's (this host's own page, reached
    // through its redirect to the campaign page), and the other page is never read.
    let followup = posts
        .iter()
        .map(|p| &p["value"])
        .find(|v| v["text"].as_str().unwrap().starts_with("Still"))
        .unwrap();
    let card = &followup["embed"]["external"];
    let invite = card["uri"].as_str().unwrap_or_default();
    assert!(
        invite.starts_with(&format!("{}/i/", picket.base)),
        "{followup:#}"
    );
    assert!(
        card["title"]
            .as_str()
            .unwrap_or_default()
            .contains("Bluesky strike bsky-happy"),
        "{followup:#}"
    );
    assert_eq!(
        page_visits.load(Ordering::SeqCst),
        0,
        "the other page was read"
    );
    assert_eq!(facet(followup, "app.bsky.richtext.facet#link").len(), 2);
    let store = picket.store().await;
    let rows = store
        .outbox_for(
            store
                .get_account(AccountId(account))
                .await
                .unwrap()
                .unwrap()
                .participant_id,
            Some("bsky-happy"),
        )
        .await
        .unwrap();
    let published: Vec<_> = rows
        .iter()
        .filter(|r| r.state == OutboxState::Published)
        .collect();
    assert_eq!(published.len(), 2);
    assert!(
        published
            .iter()
            .all(|r| r.published_at.unwrap() < after_withdraw)
    );
    assert!(
        rows.iter()
            .any(|r| r.post_name == "closing" && r.state == OutboxState::Cancelled),
        "{:?}",
        rows.iter()
            .map(|r| (&r.post_name, r.state))
            .collect::<Vec<_>>()
    );
    let remote_ids: Vec<&str> = published
        .iter()
        .filter_map(|r| r.remote_id.as_deref())
        .collect();
    for p in &posts {
        assert!(remote_ids.contains(&p["uri"].as_str().unwrap()));
    }

    // ... and no token or password is stored or logged in clear.
    let creds = stored_credentials(store.as_ref(), account).await;
    let mut haystack = std::fs::read(picket.log_path()).unwrap();
    for f in ["picket.db", "picket.db-wal"] {
        haystack.extend(std::fs::read(picket.dir().join(f)).unwrap_or_default());
    }
    for secret in [
        alice.app_password.as_str(),
        creds["access_jwt"].as_str().unwrap(),
        creds["refresh_jwt"].as_str().unwrap(),
    ] {
        assert!(
            !haystack
                .windows(secret.len())
                .any(|w| w == secret.as_bytes()),
            "a credential is readable in the database or the log"
        );
    }
}

async fn stored_credentials(store: &dyn Store, account: i64) -> Value {
    let a = store
        .get_account(AccountId(account))
        .await
        .unwrap()
        .unwrap();
    let plain = Vault::from_key_bytes(&KEY)
        .open_for(account, &a.credentials)
        .unwrap();
    serde_json::from_slice(&plain).unwrap()
}

/// An unsigned JWT whose `exp` has passed: what the stored access token looks like two
/// hours after the last post (the adapter reads `exp`, the PDS would refuse it).
fn expired_jwt(did: &str) -> String {
    let e = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2ln",
        e(r#"{"typ":"at+jwt","alg":"HS256"}"#),
        e(&format!(
            r#"{{"scope":"com.atproto.appPass","sub":"{did}","exp":1000}}"#
        ))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_app_password_marks_the_account_reconnect_needed_and_its_posts_wait() {
    let Some(pds) = pds_url() else { return };
    // Arrange: the app password is revoked on the PDS (which also revokes its refresh
    // token) and the access token has since expired.
    let bob = create_account(&pds).await;
    let picket = Picket::new(
        "bsky-revoked",
        chrono::Duration::seconds(3),
        chrono::Duration::hours(1),
    );
    let account = picket.add_bluesky(&bob, &pds);
    picket.run(&["join", "bsky-revoked", "--account", &account.to_string()]);
    let revoked = reqwest::Client::new()
        .post(format!("{pds}/xrpc/com.atproto.server.revokeAppPassword"))
        .bearer_auth(&bob.main_jwt)
        .json(&json!({"name": "picket"}))
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    let store = picket.store().await;
    let mut creds = stored_credentials(store.as_ref(), account).await;
    creds["access_jwt"] = json!(expired_jwt(&bob.did));
    let sealed = Vault::from_key_bytes(&KEY).seal_for(account, creds.to_string().as_bytes());
    store
        .update_credentials(AccountId(account), &sealed, Utc::now())
        .await
        .unwrap();

    // Act
    let serve = picket.serve().await;
    eventually(Duration::from_secs(60), "reconnect_needed", async || {
        store
            .get_account(AccountId(account))
            .await
            .unwrap()
            .unwrap()
            .status
            == AccountStatus::ReconnectNeeded
    })
    .await;
    // Real time on purpose: the posts must stay waiting, not be tried and failed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop(serve);

    // Assert: nothing posted; the posts wait for a reconnect instead of failing.
    assert!(posts_on_pds(&pds, &bob.did).await.is_empty());
    let a = store
        .get_account(AccountId(account))
        .await
        .unwrap()
        .unwrap();
    let rows = store
        .outbox_for(a.participant_id, Some("bsky-revoked"))
        .await
        .unwrap();
    assert!(
        rows.iter().all(|r| r.state == OutboxState::Pending),
        "{:?}",
        rows.iter()
            .map(|r| (&r.post_name, r.state))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_and_saved_without_signing_in_again() {
    let Some(pds) = pds_url() else { return };
    // Arrange: the stored access token has expired, and the stored app password is wrong,
    // so the post can only go out if the refresh token is used (not a new sign-in).
    let dana = create_account(&pds).await;
    let picket = Picket::new(
        "bsky-refresh",
        chrono::Duration::seconds(3),
        chrono::Duration::hours(1),
    );
    let account = picket.add_bluesky(&dana, &pds);
    picket.run(&["join", "bsky-refresh", "--account", &account.to_string()]);
    let store = picket.store().await;
    let mut creds = stored_credentials(store.as_ref(), account).await;
    let old_refresh = creds["refresh_jwt"].clone();
    creds["access_jwt"] = json!(expired_jwt(&dana.did));
    creds["app_password"] = json!("not-the-password");
    let sealed = Vault::from_key_bytes(&KEY).seal_for(account, creds.to_string().as_bytes());
    store
        .update_credentials(AccountId(account), &sealed, Utc::now())
        .await
        .unwrap();

    // Act
    let serve = picket.serve().await;
    eventually(
        Duration::from_secs(60),
        "two posts on the PDS",
        async || posts_on_pds(&pds, &dana.did).await.len() == 2,
    )
    .await;
    stop(serve);

    // Assert: posted, with a new token pair saved (sealed) for the next run.
    let saved = stored_credentials(store.as_ref(), account).await;
    assert_ne!(saved["refresh_jwt"], old_refresh);
    assert_ne!(saved["access_jwt"], json!(expired_jwt(&dana.did)));
    assert_eq!(saved["app_password"], "not-the-password");
    let a = store
        .get_account(AccountId(account))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.status, AccountStatus::Active);
}

/// A TCP forwarder to the PDS that can be down (connections refused) or lose the answer
/// to the next `putRecord` requests after the PDS handled them.
struct Flaky {
    /// Kept while the forwarder is down, so that no one else takes the port meanwhile.
    port: HeldPort,
    upstream: SocketAddr,
    lose_put_answers: Arc<AtomicUsize>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
    conns: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
}

impl Flaky {
    async fn new(pds: &str) -> Flaky {
        let u = url::Url::parse(pds).unwrap();
        let upstream = format!("{}:{}", u.host_str().unwrap(), u.port().unwrap())
            .parse()
            .unwrap();
        let f = Flaky {
            port: HeldPort::new(),
            upstream,
            lose_put_answers: Arc::new(AtomicUsize::new(0)),
            tasks: Mutex::new(Vec::new()),
            conns: Arc::new(Mutex::new(Vec::new())),
        };
        f.up().await;
        f
    }

    fn url(&self) -> String {
        format!("http://{}", self.port.addr())
    }

    async fn up(&self) {
        let listener = self.port.listen();
        let (upstream, lose, conns) = (
            self.upstream,
            self.lose_put_answers.clone(),
            self.conns.clone(),
        );
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let lose = lose.clone();
                let h = tokio::spawn(forward(client, upstream, lose));
                conns.lock().unwrap().push(h.abort_handle());
            }
        });
        self.tasks.lock().unwrap().push(accept.abort_handle());
    }

    /// Refuse connections and cut the open ones.
    fn down(&self) {
        for h in self
            .tasks
            .lock()
            .unwrap()
            .drain(..)
            .chain(self.conns.lock().unwrap().drain(..))
        {
            h.abort();
        }
    }
}

async fn forward(client: tokio::net::TcpStream, upstream: SocketAddr, lose: Arc<AtomicUsize>) {
    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let losing = Arc::new(AtomicBool::new(false));
    let to_server = {
        let losing = losing.clone();
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                let chunk = &buf[..n];
                if chunk.windows(9).any(|w| w == b"putRecord")
                    && lose
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                {
                    losing.store(true, Ordering::SeqCst);
                }
                if sw.write_all(chunk).await.is_err() {
                    return;
                }
            }
        }
    };
    let to_client = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if losing.load(Ordering::SeqCst) {
                // The PDS answered, so it has committed the record: drop the answer.
                return;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = to_server => {}
        _ = to_client => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pds_that_is_down_when_posts_fall_due_and_then_loses_answers_gets_each_post_once() {
    let Some(pds) = pds_url() else { return };
    // Arrange: the account reaches the PDS through a forwarder that is down when the two
    // start posts fall due.
    let carol = create_account(&pds).await;
    let flaky = Flaky::new(&pds).await;
    let picket = Picket::new(
        "bsky-flaky",
        chrono::Duration::seconds(4),
        chrono::Duration::hours(1),
    );
    let account = picket.add_bluesky(&carol, &flaky.url());
    picket.run(&["join", "bsky-flaky", "--account", &account.to_string()]);
    flaky.down();
    let store = picket.store().await;
    let participant = store
        .get_account(AccountId(account))
        .await
        .unwrap()
        .unwrap()
        .participant_id;

    // Act: serve; once both posts have failed at least once, bring the forwarder back
    // but make it lose the answers to the next two putRecord calls, which the PDS did
    // carry out: the retries must not post again.
    let serve = picket.serve().await;
    eventually(
        Duration::from_secs(60),
        "failed attempts while the PDS is down",
        async || {
            let rows = store
                .outbox_for(participant, Some("bsky-flaky"))
                .await
                .unwrap();
            rows.iter()
                .filter(|r| r.post_name != "closing" && r.attempts >= 1 && r.last_error.is_some())
                .count()
                == 2
        },
    )
    .await;
    assert!(posts_on_pds(&pds, &carol.did).await.is_empty());
    flaky.lose_put_answers.store(2, Ordering::SeqCst);
    flaky.up().await;
    eventually(
        Duration::from_secs(90),
        "both posts published",
        async || {
            let rows = store
                .outbox_for(participant, Some("bsky-flaky"))
                .await
                .unwrap();
            rows.iter()
                .filter(|r| r.state == OutboxState::Published)
                .count()
                == 2
        },
    )
    .await;
    stop(serve);
    flaky.down();

    // Assert: answers were lost, yet there is exactly one record per slot.
    assert_eq!(
        flaky.lose_put_answers.load(Ordering::SeqCst),
        0,
        "no answer was lost"
    );
    let posts = posts_on_pds(&pds, &carol.did).await;
    assert_eq!(posts.len(), 2, "{posts:#?}");
    let rows = store
        .outbox_for(participant, Some("bsky-flaky"))
        .await
        .unwrap();
    for r in rows.iter().filter(|r| r.state == OutboxState::Published) {
        assert!(
            r.attempts >= 2,
            "{} published on attempt {}",
            r.post_name,
            r.attempts
        );
        assert!(
            posts
                .iter()
                .any(|p| p["uri"].as_str() == r.remote_id.as_deref())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapter_publishes_idempotently_verifies_deletes_and_rejects_overlong_text() {
    use picket::network::bluesky::{Bluesky, connect};
    use picket::network::{AccountRef, DiscardCredentials, Network, OutgoingPost, PublishError};
    let Some(pds) = pds_url() else { return };
    // Arrange: a session made the way `picket account add bluesky` makes it.
    let erin = create_account(&pds).await;
    // The PDS is on loopback: an account the operator added, so reached unguarded.
    let egress = picket::network::Egress::new(false);
    let creds = connect(
        egress.trusted(),
        &erin.handle,
        &erin.app_password,
        Some(&pds),
    )
    .await
    .unwrap();
    let adapter = Bluesky::new(
        egress,
        Arc::new(DiscardCredentials),
        Arc::new(picket::clock::SystemClock),
    );
    let account = AccountRef {
        id: 1,
        handle: erin.handle.clone(),
        server: pds.clone(),
        credentials: creds.to_secret(),
        trusted: true,
    };
    let post = OutgoingPost {
        text: "Hello @{h} from picket #Strike".replace("{h}", &erin.handle),
        idempotency_key: "k-1".into(),
        scheduled_at: Utc::now(),
        slot_key: "s".into(),
        outcome_unknown: false,
        timeout: Duration::from_secs(10),
        image: None,
    };

    // Act: the same post three times (the last as a retry after an unknown outcome).
    let first = adapter.publish(&account, &post).await.unwrap();
    let second = adapter.publish(&account, &post).await.unwrap();
    let retried = OutgoingPost {
        outcome_unknown: true,
        ..post.clone()
    };
    let third = adapter.publish(&account, &retried).await.unwrap();
    let records = posts_on_pds(&pds, &erin.did).await;
    let who = adapter.verify(&account).await.unwrap();
    let long = OutgoingPost {
        text: "é".repeat(301),
        idempotency_key: "k-2".into(),
        ..post.clone()
    };
    let too_long = adapter.publish(&account, &long).await;
    let engagement = adapter.engagement(&account, &first.remote_id).await;
    adapter.delete(&account, &first.remote_id).await.unwrap();

    // Assert
    assert_eq!(first, second);
    assert_eq!(first, third);
    assert_eq!(records.len(), 1, "{records:#?}");
    let v = &records[0]["value"];
    let mention = facet(v, "app.bsky.richtext.facet#mention");
    assert_eq!(mention[0]["features"][0]["did"], erin.did.as_str(), "{v:#}");
    assert_eq!(who.handle, erin.handle);
    assert!(matches!(too_long, Err(PublishError::Rejected(_))));
    // Counts are asked of the account's PDS, which passes them to its AppView; this PDS
    // has none, and says so: a refusal, recorded as the read's reason.
    assert!(
        matches!(engagement, Err(PublishError::Rejected(_))),
        "{engagement:?}"
    );
    assert!(posts_on_pds(&pds, &erin.did).await.is_empty());
}

/// A post's picture: the strike card of the bundled campaign's first day.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_back_finds_a_record_by_its_derived_key_and_says_absent_for_one_never_put() {
    use picket::network::bluesky::{Bluesky, connect};
    use picket::network::{AccountRef, DiscardCredentials, Network, OutgoingPost, ReadBack};
    let Some(pds) = pds_url() else { return };
    // Arrange: one post put on the PDS, one never sent.
    let fay = create_account(&pds).await;
    let egress = picket::network::Egress::new(false);
    let creds = connect(egress.trusted(), &fay.handle, &fay.app_password, Some(&pds))
        .await
        .unwrap();
    let adapter = Bluesky::new(
        egress,
        Arc::new(DiscardCredentials),
        Arc::new(picket::clock::SystemClock),
    );
    let account = AccountRef {
        id: 1,
        handle: fay.handle.clone(),
        server: pds.clone(),
        credentials: creds.to_secret(),
        trusted: true,
    };
    let sent = OutgoingPost {
        text: "On strike today #Strike".into(),
        idempotency_key: "rb-1".into(),
        scheduled_at: Utc::now(),
        slot_key: "s".into(),
        outcome_unknown: true,
        timeout: Duration::from_secs(10),
        image: None,
    };
    let never = OutgoingPost {
        idempotency_key: "rb-2".into(),
        ..sent.clone()
    };
    let published = adapter.publish(&account, &sent).await.unwrap();

    // Act
    let found = adapter.read_back(&account, &sent).await.unwrap();
    let absent = adapter.read_back(&account, &never).await.unwrap();

    // Assert: the same record and link the post got; nothing new on the PDS.
    assert_eq!(found, ReadBack::Found(published));
    assert_eq!(absent, ReadBack::Absent);
    assert_eq!(posts_on_pds(&pds, &fay.did).await.len(), 1);
}

fn card_image(alt: &str) -> picket::network::Image {
    use picket::card::{Notice, Rendered, Size, render};
    let notice = Notice {
        title: "Social Media Strike".into(),
        hashtag: "SocialMediaStrike".into(),
        day: chrono::NaiveDate::from_ymd_opt(2027, 7, 4).unwrap(),
        host: "picket.example.org".into(),
        why: Some("Our words are ours.".into()),
    };
    let png = render(&notice, Size::Square).unwrap();
    picket::network::Image {
        png: Arc::new(Rendered {
            png,
            etag: String::new(),
        }),
        alt: alt.to_string(),
        width: 1080,
        height: 1080,
    }
}

/// The blob `cid` of `did`, as the PDS serves it to anyone.
async fn blob(pds: &str, did: &str, cid: &str) -> Vec<u8> {
    let r = reqwest::get(format!(
        "{pds}/xrpc/com.atproto.sync.getBlob?did={did}&cid={cid}"
    ))
    .await
    .unwrap();
    assert!(r.status().is_success(), "getBlob: {}", r.status());
    r.bytes().await.unwrap().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_with_an_image_embeds_the_uploaded_blob_with_its_alt_and_a_retry_rewrites_the_same_record()
 {
    use picket::network::bluesky::{Bluesky, connect};
    use picket::network::{AccountRef, DiscardCredentials, Network, OutgoingPost};
    let Some(pds) = pds_url() else { return };
    // Arrange: an account connected as `picket account add bluesky` does, and a post with
    // the strike card; its text carries a link to this host, whose link card it must not get.
    let gil = create_account(&pds).await;
    let egress = picket::network::Egress::new(false);
    let creds = connect(egress.trusted(), &gil.handle, &gil.app_password, Some(&pds))
        .await
        .unwrap();
    let adapter = Bluesky::new(
        egress,
        Arc::new(DiscardCredentials),
        Arc::new(picket::clock::SystemClock),
    )
    .with_cards_from("https://picket.example.org");
    let account = AccountRef {
        id: 1,
        handle: gil.handle.clone(),
        server: pds.clone(),
        credentials: creds.to_secret(),
        trusted: true,
    };
    let text = "I'm not posting here today: #SocialMediaStrike https://picket.example.org/i/abc";
    let image = card_image(text);
    let post = OutgoingPost {
        text: text.into(),
        idempotency_key: "card-1".into(),
        scheduled_at: Utc::now(),
        slot_key: "s".into(),
        outcome_unknown: false,
        timeout: Duration::from_secs(10),
        image: Some(image.clone()),
    };

    // Act: the post, then its retry after an unknown outcome (the image uploaded again).
    let first = adapter.publish(&account, &post).await.unwrap();
    let retried = OutgoingPost {
        outcome_unknown: true,
        ..post.clone()
    };
    let second = adapter.publish(&account, &retried).await.unwrap();

    // Assert: one record, its embed the image with the post's text as alt, and the blob
    // it names is the card's very bytes.
    assert_eq!(first, second);
    let records = posts_on_pds(&pds, &gil.did).await;
    assert_eq!(records.len(), 1, "{records:#?}");
    let embed = &records[0]["value"]["embed"];
    assert_eq!(embed["$type"], "app.bsky.embed.images", "{embed:#}");
    let shown = &embed["images"][0];
    assert_eq!(shown["alt"], text);
    assert_eq!(shown["aspectRatio"], json!({"width": 1080, "height": 1080}));
    assert_eq!(shown["image"]["mimeType"], "image/png");
    let cid = shown["image"]["ref"]["$link"].as_str().unwrap();
    let bytes = blob(&pds, &gil.did, cid).await;
    assert_eq!(bytes, image.bytes());
    assert_eq!(crate::card::png_size(&bytes), (1080, 1080));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_post_with_card_true_reaches_the_pds_with_the_strike_card_and_the_notice_as_alt()
{
    let Some(pds) = pds_url() else { return };
    // Arrange: a strike opening in a few seconds whose notice asks for the card, and a
    // follow-up that does not.
    let hana = create_account(&pds).await;
    let start = Utc::now() + chrono::Duration::seconds(4);
    let campaign = format!(
        r#"id = "bsky-card"
title = "Card strike"
hashtag = "CardStrike"
card_why = "Our words are ours."
networks = ["bluesky"]

[strike]
windows = [{{ start = "{}", end = "{}" }}]

[[posts]]
name = "notice"
when = "start"
template = "notice"
window = "30m"
card = true

[[posts]]
name = "plain"
when = "start"
template = "plain"
window = "30m"

[templates]
notice = ["I'm not posting here today: #{{{{ hashtag }}}}. Join: {{{{ invite_link }}}}"]
plain = ["Still on #{{{{ hashtag }}}}"]
"#,
        rfc(start),
        rfc(start + chrono::Duration::hours(1))
    );
    let inst = Options::default()
        .without_bundled()
        .campaign("bsky-card", &campaign)
        .config("[scheduler]\nlease_secs = 5\nrequest_timeout_secs = 10\n")
        .key(KEY)
        .install();
    let account = inst.add_account(&[
        "bluesky",
        "--handle",
        &hana.handle,
        "--app-password",
        &hana.app_password,
        "--service",
        &pds,
    ]);
    inst.run(&["join", "bsky-card", "--account", &account.to_string()]);

    // Act
    let serve = inst.serve().await;
    let posts = eventually(
        Duration::from_secs(60),
        "two posts on the PDS",
        async || {
            let found = posts_on_pds(&pds, &hana.did).await;
            if found.len() >= 2 {
                Ok(found)
            } else {
                Err(format!("{} so far", found.len()))
            }
        },
    )
    .await;
    stop(serve);

    // Assert: the notice carries the card, described by its own text; the other post none.
    let notice = posts
        .iter()
        .map(|p| &p["value"])
        .find(|v| v["text"].as_str().unwrap().starts_with("I'm not posting"))
        .expect("the notice");
    let plain = posts
        .iter()
        .map(|p| &p["value"])
        .find(|v| v["text"].as_str().unwrap().starts_with("Still"))
        .expect("the plain post");
    assert_eq!(
        notice["embed"]["$type"], "app.bsky.embed.images",
        "{notice:#}"
    );
    let image = &notice["embed"]["images"][0];
    assert_eq!(image["alt"], notice["text"]);
    let cid = image["image"]["ref"]["$link"].as_str().unwrap();
    assert_eq!(
        crate::card::png_size(&blob(&pds, &hana.did, cid).await),
        (1080, 1080)
    );
    assert_ne!(
        plain["embed"]["$type"], "app.bsky.embed.images",
        "{plain:#}"
    );
}
