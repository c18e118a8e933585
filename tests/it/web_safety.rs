//! What a stranger on the open internet can do to `picket serve`, over HTTP and raw TCP
//! against the same `Application`: security headers on every page, no inline script, slow
//! and idle connections cut off, rate limits behind a reverse proxy, forged cookies and
//! form fields, the counts cache, and the sandbox receiver.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, COOKIE, SET_COOKIE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{
    BUNDLED as ID, Options, TestApp, eventually, posts_at_start, window_campaign,
};

/// A picket serving the bundled campaign with `settings` (as `picket.toml` writes them).
async fn serve(settings: &str) -> TestApp {
    TestApp::spawn(Options::default().config(settings)).await
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

// --- security headers -------------------------------------------------------------

#[tokio::test]
async fn every_page_is_sent_with_a_strict_policy_and_private_pages_are_never_stored() {
    let app = serve("").await;
    let plain = serve(r#"public_url = "http://picket.test""#).await;

    for path in [
        "/",
        &format!("/c/{ID}"),
        &format!("/c/{ID}/join"),
        &format!("/c/{ID}/signatures"),
        &format!("/c/{ID}/declaration"),
        "/me",
        "/no/such/page",
    ] {
        let r = app.get(path).await;
        let csp = header(&r, "content-security-policy");
        let script_src = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src"))
            .unwrap_or_else(|| panic!("{path}: no script-src in {csp:?}"));
        assert!(
            !script_src.contains("unsafe-inline") && !script_src.contains("unsafe-eval"),
            "{path}: {script_src}"
        );
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert_eq!(header(&r, "x-frame-options"), "DENY", "{path}");
        assert_eq!(header(&r, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&r, "referrer-policy"), "no-referrer", "{path}");
        assert!(
            header(&r, "strict-transport-security").contains("max-age="),
            "{path}: HSTS when the public address is https"
        );
        let plain_r = plain.get(path).await;
        assert_eq!(
            header(&plain_r, "strict-transport-security"),
            "",
            "{path}: no HSTS over plain http"
        );
    }
    for path in [&format!("/c/{ID}/join"), "/me", &format!("/c/{ID}")] {
        let r = app.get(path).await;
        assert!(
            header(&r, "cache-control").contains("no-store"),
            "{path} carries a session or a token: {:?}",
            r.headers().get(CACHE_CONTROL)
        );
    }
}

/// Every `<script>` in `html` has a `src`, and no element has an event-handler attribute.
fn assert_no_inline_script(what: &str, html: &str) {
    for tag in html.split("<script").skip(1) {
        let open = tag.split('>').next().unwrap();
        assert!(open.contains("src="), "{what}: inline <script{open}>");
    }
    let lower = html.to_ascii_lowercase();
    for attr in [
        " onclick=",
        " onfocus=",
        " onload=",
        " onsubmit=",
        " onchange=",
    ] {
        assert!(!lower.contains(attr), "{what}: an inline handler{attr}");
    }
}

#[tokio::test]
async fn pages_run_only_scripts_served_from_picket_which_caches_may_keep_for_long() {
    let site = TestApp::spawn(Options::joinable()).await;
    let v = site.visitor();
    let campaign = v.get(&format!("/c/{ID}")).await;
    let join = v.get(&format!("/c/{ID}/join")).await;

    assert_no_inline_script("campaign page", &campaign.html);
    assert_no_inline_script("join page", &join.html);
    let src = campaign
        .html
        .split("<script src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("the campaign page loads its script from picket")
        .to_string();
    assert!(src.starts_with("/static/"), "{src}");
    let script = v
        .http
        .get(format!("{}{src}", site.base))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), StatusCode::OK);
    assert!(header(&script, "content-type").contains("javascript"));
    assert!(
        header(&script, "cache-control").contains("immutable"),
        "{:?}",
        script.headers()
    );
    let body = script.text().await.unwrap();
    assert!(body.contains("countdown") && body.contains("resolvedOptions"));
}

// --- timeouts ---------------------------------------------------------------------

/// Reads until the server closes the connection or `limit` passes; what was read.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Settings with timeouts short enough to wait for in a test.
const QUICK_TIMEOUTS: &str =
    "[http]\nheader_read_timeout_secs = 1\nrequest_timeout_secs = 2\nidle_timeout_secs = 2\n";

#[tokio::test]
async fn half_a_request_header_then_silence_is_cut_off_within_the_header_timeout() {
    let app = serve(QUICK_TIMEOUTS).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: picket.test\r\nUser-Agent: slow")
        .await
        .unwrap();
    let started = Instant::now();

    let closed = read_until_closed(&mut stream, Duration::from_secs(20)).await;

    assert!(
        closed.is_some(),
        "the connection was still open after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "closed only after {:?}",
        started.elapsed()
    );
    assert!(
        !closed.unwrap().contains("200 OK"),
        "a half request is not answered"
    );
}

#[tokio::test]
async fn a_connection_that_never_says_anything_is_closed_too() {
    let app = serve(QUICK_TIMEOUTS).await;
    let mut silent = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();

    let closed = read_until_closed(&mut silent, Duration::from_secs(20)).await;

    assert_eq!(closed.as_deref(), Some(""), "closed, having said nothing");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_kept_alive_connection_serves_requests_and_is_closed_once_idle() {
    let app = serve(QUICK_TIMEOUTS).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: picket.test\r\n\r\n";
    let mut buf = [0u8; 4096];

    // Two requests on one connection, the second after longer than the header timeout
    // but within the idle timeout: waiting between requests is not reading a head. (Real
    // time on purpose: the timeouts are what is tested.)
    stream.write_all(request).await.unwrap();
    let first = stream.read(&mut buf).await.unwrap();
    let first = String::from_utf8_lossy(&buf[..first]).to_string();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stream.write_all(request).await.unwrap();
    let second = stream.read(&mut buf).await.unwrap();
    let second = String::from_utf8_lossy(&buf[..second]).to_string();
    let idle_from = Instant::now();
    let closed = read_until_closed(&mut stream, Duration::from_secs(20)).await;

    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert_eq!(closed.as_deref(), Some(""), "an idle connection is closed");
    let idle = idle_from.elapsed();
    assert!(
        idle >= Duration::from_millis(1500) && idle < Duration::from_secs(8),
        "closed after {idle:?} idle (the idle timeout is 2 s)"
    );
}

#[tokio::test]
async fn half_a_head_on_a_kept_alive_connection_gets_the_header_timeout_not_the_idle_one() {
    // The idle timeout is much longer than the header timeout: the connection's watch must
    // see its deadline come closer when the next request's first bytes arrive.
    let app = serve(
        "[http]\nheader_read_timeout_secs = 1\nrequest_timeout_secs = 2\nidle_timeout_secs = 6\n",
    )
    .await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let mut buf = [0u8; 4096];
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: picket.test\r\n\r\n")
        .await
        .unwrap();
    let first = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..first]).starts_with("HTTP/1.1 200"));
    // Real time on purpose: the timeouts are what is tested.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: pick")
        .await
        .unwrap();
    let started = Instant::now();

    let closed = read_until_closed(&mut stream, Duration::from_secs(20)).await;

    assert_eq!(closed.as_deref(), Some(""), "closed without an answer");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "closed {:?} after half a head (header timeout 1 s, idle timeout 6 s)",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_request_whose_body_never_comes_is_answered_408_after_the_request_timeout() {
    let app = serve(QUICK_TIMEOUTS).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /api/v1/campaigns/{ID}/signatures HTTP/1.1\r\nHost: picket.test\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let started = Instant::now();

    let answer = read_until_closed(&mut stream, Duration::from_secs(20)).await;

    let answer = answer.expect("answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_until_a_connection_closes() {
    let app = serve("[http]\nmax_connections = 2").await;
    let holders = [
        tokio::net::TcpStream::connect(app.addr).await.unwrap(),
        tokio::net::TcpStream::connect(app.addr).await.unwrap(),
    ];
    let mut third = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: picket.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();

    // A second of real time on purpose: no answer may come while the cap holds.
    let while_full = read_until_closed(&mut third, Duration::from_secs(1)).await;
    drop(holders);
    let after = read_until_closed(&mut third, Duration::from_secs(30)).await;

    assert_eq!(while_full, None, "no answer while two connections are open");
    let after = after.expect("answered once a connection closed");
    assert!(after.starts_with("HTTP/1.1 200"), "{after}");
}

// --- rate limits behind a reverse proxy -------------------------------------------

/// Signs through the JSON API as `client`, as a proxy on loopback passes it on.
async fn sign_as(app: &TestApp, client: &str, name: &str) -> StatusCode {
    app.http
        .post(app.url(&format!("/api/v1/campaigns/{ID}/signatures")))
        .header("x-forwarded-for", client)
        .json(&serde_json::json!({ "name": name }))
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn two_clients_behind_a_trusted_proxy_have_a_rate_limit_each() {
    let app = serve("rate_limits = true\ntrusted_proxies = [\"127.0.0.1\", \"::1\"]").await;

    let mut first = Vec::new();
    for i in 0..8 {
        first.push(sign_as(&app, "198.51.100.1", &format!("A{i}")).await);
    }
    let second = sign_as(&app, "203.0.113.50, 198.51.100.2", "B").await;

    assert!(first[..5].iter().all(|s| s.is_success()), "{first:?}");
    assert_eq!(first[7], StatusCode::TOO_MANY_REQUESTS, "{first:?}");
    assert!(
        second.is_success(),
        "another client behind the same proxy has its own budget: {second}"
    );
}

#[tokio::test]
async fn a_peer_that_is_not_a_trusted_proxy_cannot_choose_its_address() {
    for trusted in [vec![], vec!["10.0.0.1"]] {
        let app = serve(&format!(
            "rate_limits = true\ntrusted_proxies = {trusted:?}"
        ))
        .await;

        let mut statuses = Vec::new();
        for i in 0..8 {
            statuses.push(sign_as(&app, &format!("198.51.100.{i}"), &format!("S{i}")).await);
        }

        assert_eq!(
            statuses[7],
            StatusCode::TOO_MANY_REQUESTS,
            "a new X-Forwarded-For each time is no new budget: {statuses:?}"
        );
    }
}
// --- forged input -----------------------------------------------------------------

#[tokio::test]
async fn a_forged_csrf_cookie_is_never_written_into_the_page() {
    let app = serve("").await;
    let forged = format!("{:x<48}", "\"><script>alert(1)</script>");
    assert_eq!(forged.len(), 48);

    // Twice: the first view renders the page, the second comes from the rendered cache.
    for _ in 0..2 {
        let r = app
            .http
            .get(app.url(&format!("/c/{ID}")))
            .header(COOKIE, format!("picket_csrf={forged}"))
            .send()
            .await
            .unwrap();
        let cookie = header(&r, SET_COOKIE.as_str());
        let html = r.text().await.unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        let token = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap();
        assert!(
            token.len() == 48 && token.chars().all(|c| c.is_ascii_hexdigit()),
            "{token}"
        );
        assert!(
            cookie.starts_with(&format!("picket_csrf={token};")),
            "{cookie}"
        );
    }
}

#[tokio::test]
async fn a_control_character_in_a_connect_forms_way_back_is_refused_politely() {
    let site = TestApp::spawn(Options::joinable()).await;
    let v = site.visitor();
    let step2 = v
        .start_joining(ID, &[("name", "Ada"), ("tz", "UTC"), ("day", "2027-07-04")])
        .await;

    let mut outcomes = Vec::new();
    for back in [
        format!("/c/{ID}/join/accounts?tz=UTC\u{1}x"),
        format!("/c/{ID}/join\r\nSet-Cookie: x=y"),
        "/c/../../evil\u{7f}".to_string(),
    ] {
        let r = v
            .post(
                "/connect/bluesky",
                &[
                    ("csrf", &step2.field("csrf")),
                    ("back", &back),
                    ("handle", ""),
                ],
            )
            .await;
        outcomes.push((back, r.status, r.location));
    }

    for (back, status, location) in outcomes {
        assert!(
            status.is_redirection() || status.is_client_error(),
            "{back:?}: {status}"
        );
        if let Some(to) = location {
            assert!(
                to.starts_with('/') && !to.starts_with("//") && !to.chars().any(char::is_control),
                "{back:?} led to {to:?}"
            );
        }
    }
}

// --- the counts cache -------------------------------------------------------------

#[tokio::test]
async fn only_a_write_that_changes_the_counts_makes_them_count_again() {
    // A server whose clock stands still: its counts stay cached until a write.
    let start = chrono::DateTime::<chrono::Utc>::from_timestamp(1_780_000_000, 0).unwrap();
    let clock = Arc::new(picket::clock::ManualClock::new(start));
    let app = TestApp::spawn(Options::default().clock(clock)).await;
    let before = app.signatures(ID).await;
    // A signature written behind the server's back (another process would).
    app.store
        .add_signature(
            &picket::store::NewSignature {
                campaign_id: ID.parse().unwrap(),
                name: "Bob".into(),
                confirmed: true,
                email_canonical: None,
                public: false,
                invited_by: None,
                confirm_token_hash: None,
                email_consent: false,
            },
            start,
        )
        .await
        .unwrap();

    let mut refused = Vec::new();
    for path in [
        "/no/such/page".to_string(),
        format!("/c/{ID}/sign"),
        "/c/nope/sign".to_string(),
        format!("/api/v1/campaigns/{ID}/signatures"),
    ] {
        // Nothing valid: a 404, a form without its token, an unknown campaign, bad JSON.
        let r = app
            .http
            .post(app.url(&path))
            .header("content-type", "application/json")
            .body("{")
            .send()
            .await
            .unwrap();
        refused.push((path, r.status()));
    }
    let after_refusals = app.signatures(ID).await;
    let signed = app
        .http
        .post(app.url(&format!("/api/v1/campaigns/{ID}/signatures")))
        .json(&serde_json::json!({ "name": "Ada" }))
        .send()
        .await
        .unwrap()
        .status();
    let after_signing = app.signatures(ID).await;

    for (path, status) in refused {
        assert!(status.is_client_error(), "{path}: {status}");
    }
    assert_eq!(before, 0);
    assert_eq!(
        after_refusals, 0,
        "refused requests leave the cached counts alone"
    );
    assert_eq!(signed, StatusCode::CREATED);
    assert_eq!(
        after_signing, 2,
        "a signature through this server counts again"
    );
}

// --- the sandbox receiver ---------------------------------------------------------

#[tokio::test]
async fn the_sandbox_receiver_is_not_served_unless_enabled() {
    let app = serve("").await;

    let list = app.get("/sandbox/api/v1/sandbox/posts").await.status();
    let post = app
        .http
        .post(app.url("/sandbox/api/v1/statuses"))
        .bearer_auth("anything")
        .json(&serde_json::json!({ "status": "hello" }))
        .send()
        .await
        .unwrap()
        .status();

    assert_eq!(list, StatusCode::NOT_FOUND);
    assert_eq!(post, StatusCode::NOT_FOUND);
    assert!(app.sandbox().posts().is_empty());
}

#[tokio::test]
async fn without_the_sandbox_the_join_page_offers_no_sandbox_account() {
    let site = TestApp::spawn(Options::joinable().config("sandbox = false")).await;
    let v = site.visitor();
    let step2 = v
        .start_joining(ID, &[("name", "Ada"), ("tz", "UTC"), ("day", "2027-07-04")])
        .await;

    let connect = v
        .post(
            "/connect/sandbox",
            &[
                ("csrf", &step2.field("csrf")),
                ("back", &step2.field("back")),
                ("name", "ada-sandbox"),
            ],
        )
        .await;

    assert_eq!(step2.status, StatusCode::OK);
    assert!(step2.html.contains("/connect/bluesky"), "{}", step2.html);
    assert!(!step2.html.contains("/connect/sandbox"), "{}", step2.html);
    assert_eq!(connect.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_sandbox_account_added_on_the_command_line_posts_through_picket_serve() {
    // The README's "for yourself" steps: add a sandbox account, join, serve.
    let now = chrono::Utc::now();
    let campaign = window_campaign(
        "own",
        now + chrono::Duration::seconds(2),
        now + chrono::Duration::hours(1),
        &posts_at_start(1, "30m"),
    );
    let install = Options::default()
        .without_bundled()
        .campaign("own", &campaign)
        .own_address()
        .config("sandbox = true")
        .key([7; 32])
        .install();
    let account = install.add_account(&["sandbox", "--name", "me"]);
    install.run(&[
        "join",
        "own",
        "--account",
        &account.to_string(),
        "--tz",
        "UTC",
    ]);

    let app = install.serve().await;
    let counts = eventually(
        Duration::from_secs(60),
        "the notice published, failed or missed",
        async || {
            let c = app.store.outbox_counts("own").await.unwrap();
            match c.published + c.failed + c.missed {
                0 => Err(format!("{c:?}")),
                _ => Ok(c),
            }
        },
    )
    .await;
    let log = app.stop().log;

    assert_eq!(counts.published, 1, "{counts:?}\n{log}");
}

/// A sandbox post from `token` (none: no Authorization header).
async fn sandbox_post(app: &TestApp, token: Option<&str>, text: &str) -> StatusCode {
    let mut req = app
        .http
        .post(app.url("/sandbox/api/v1/statuses"))
        .json(&serde_json::json!({ "status": text }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap().status()
}

#[tokio::test]
async fn the_sandbox_takes_only_tokens_this_picket_issued_and_shows_each_its_own_posts() {
    let app = serve("sandbox = true").await;
    let mine = app.sandbox().issue_token().unwrap();
    let theirs = app.sandbox().issue_token().unwrap();

    let anonymous = sandbox_post(&app, None, "hello").await;
    let made_up = sandbox_post(&app, Some("made-up-token"), "hello").await;
    let forged = sandbox_post(&app, Some(&"ab".repeat(64)), "hello").await;
    let posted = sandbox_post(&app, Some(&mine), "my invitation code: k7Qm2xVa").await;
    let other = sandbox_post(&app, Some(&theirs), "their post").await;
    let list = |token: Option<String>| {
        let app = &app;
        async move {
            let mut req = app.http.get(app.url("/sandbox/api/v1/sandbox/posts"));
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let r = req.send().await.unwrap();
            (r.status(), r.text().await.unwrap())
        }
    };
    let (anonymous_list, _) = list(None).await;
    let (my_list_status, my_list) = list(Some(mine.clone())).await;

    assert_eq!(anonymous, StatusCode::UNAUTHORIZED);
    assert_eq!(made_up, StatusCode::UNAUTHORIZED);
    assert_eq!(forged, StatusCode::UNAUTHORIZED);
    assert!(posted.is_success(), "{posted}");
    assert!(other.is_success(), "{other}");
    assert_eq!(anonymous_list, StatusCode::UNAUTHORIZED);
    assert_eq!(my_list_status, StatusCode::OK);
    assert!(my_list.contains("k7Qm2xVa"), "{my_list}");
    assert!(
        !my_list.contains("their post"),
        "only one's own posts: {my_list}"
    );
    assert!(!my_list.contains(&mine), "a listing never shows a token");
    assert_eq!(app.sandbox().posts().len(), 2);
}

#[tokio::test]
async fn the_sandbox_keeps_no_more_than_its_byte_budget() {
    const BUDGET: u64 = 64 * 1024;
    let app = serve(&format!("sandbox = true\nsandbox_max_bytes = {BUDGET}")).await;
    let token = app.sandbox().issue_token().unwrap();
    let text = "x".repeat(8 * 1024);

    let mut statuses = Vec::new();
    for i in 0..20 {
        statuses.push(sandbox_post(&app, Some(&token), &format!("{i} {text}")).await);
    }

    let stored = app.sandbox().posts();
    assert!(
        stored.len() >= 5 && stored.len() < 8,
        "{} posts of 8 KiB kept in 64 KiB",
        stored.len()
    );
    assert!(app.sandbox().stored_bytes() as u64 <= BUDGET);
    assert!(statuses[..stored.len()].iter().all(|s| s.is_success()));
    assert!(
        statuses[stored.len()..]
            .iter()
            .all(|s| *s == StatusCode::INSUFFICIENT_STORAGE),
        "{statuses:?}"
    );
}
