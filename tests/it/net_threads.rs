//! Threads through its official API (`[threads]`), against the local imitation in
//! `support/threads_fake.rs` (which cites the documents it follows): connecting in the
//! browser and on the command line, publishing through the dispatcher with the link
//! recorded, a lost answer that must not become a second post, the 24-hour quota,
//! throttling, expired and ended grants, and renewing a token before it is used.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use picket::clock::{Clock, ManualClock};
use picket::domain::{NetworkKind, Secret};
use picket::network::threads::{App, Credentials, Threads};
use picket::network::{
    AccountRef, CredentialSink, Egress, Network, NotSaved, OutgoingPost, PublishError,
};
use picket::participation::connect::{self, OfficialApp};
use picket::store::{AccountId, AccountStatus, OutboxState};
use reqwest::StatusCode;

use crate::support::{FAKE_USERNAME, Options, TestApp, ThreadsFake, eventually, rfc};

fn app_of(fake: &ThreadsFake) -> App {
    picket::network::threads::app(&picket::config::OAuthApp {
        client_id: crate::support::FAKE_CLIENT_ID.into(),
        client_secret: Secret::new(crate::support::FAKE_CLIENT_SECRET),
        api_base: Some(fake.base.clone()),
        auth_base: Some(fake.base.clone()),
    })
}

/// Keeps what an adapter saves.
#[derive(Default)]
struct Saved(Mutex<Vec<(i64, String)>>);

#[async_trait::async_trait]
impl CredentialSink for Saved {
    async fn save(&self, account_id: i64, credentials: &Secret) -> Result<(), NotSaved> {
        self.0
            .lock()
            .unwrap()
            .push((account_id, credentials.expose().to_string()));
        Ok(())
    }
}

/// A connected account's credentials, through the same steps the join page takes.
async fn connected(fake: &ThreadsFake, now: chrono::DateTime<Utc>) -> Credentials {
    let auth = connect::official_authorize(
        OfficialApp::Threads(app_of(fake)),
        "https://picket.test/cb",
        "st",
    );
    let back = url::Url::parse(&fake.approve(&auth.url).await).unwrap();
    let code = back
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let account = connect::official_code(&Egress::new(false), &auth, &code, Some("st"), now)
        .await
        .unwrap()
        .remove(0);
    serde_json::from_str(account.credentials.expose()).unwrap()
}

fn account(creds: &Credentials) -> AccountRef {
    AccountRef {
        id: 7,
        handle: creds.username.clone(),
        server: String::new(),
        credentials: creds.to_secret(),
        trusted: false,
    }
}

fn post(text: &str, outcome_unknown: bool, timeout: Duration) -> OutgoingPost {
    OutgoingPost {
        text: text.into(),
        idempotency_key: "k".into(),
        scheduled_at: Utc::now(),
        slot_key: "s".into(),
        outcome_unknown,
        timeout,
        image: None,
    }
}

fn adapter(fake: &ThreadsFake, clock: Arc<dyn Clock>, sink: Arc<Saved>) -> Threads {
    Threads::new(Egress::new(false), app_of(fake), sink, clock)
}

#[tokio::test]
async fn connecting_asks_only_to_publish_and_trades_the_code_for_a_sixty_day_token() {
    let fake = ThreadsFake::start().await;
    let now = Utc::now();

    let creds = connected(&fake, now).await;

    let f = fake.lock();
    assert_eq!(
        f.scopes_asked,
        vec!["threads_basic,threads_content_publish".to_string()]
    );
    assert_eq!(creds.username, FAKE_USERNAME);
    assert_eq!(creds.user_id, crate::support::FAKE_USER_ID);
    assert!(
        f.long_tokens.contains(&creds.token),
        "the long-lived token is kept"
    );
    let days = (creds.expires_at - now).num_days();
    assert!((59..=60).contains(&days), "{days} days");
}

#[tokio::test]
async fn a_token_a_day_old_is_renewed_and_saved_before_the_post_uses_it() {
    let fake = ThreadsFake::start().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let creds = connected(&fake, clock.now()).await;
    let sink = Arc::new(Saved::default());
    let threads = adapter(&fake, clock.clone(), sink.clone());
    clock.advance(chrono::Duration::hours(25));

    let receipt = threads
        .publish(
            &account(&creds),
            &post("On strike today.", false, Duration::from_secs(10)),
        )
        .await
        .unwrap();

    let saved = sink.0.lock().unwrap().clone();
    assert_eq!(saved.len(), 1, "renewed once and saved");
    let renewed: Credentials = serde_json::from_str(&saved[0].1).unwrap();
    assert_ne!(renewed.token, creds.token);
    assert_eq!(renewed.refreshed_at, clock.now());
    assert!(renewed.expires_at > creds.expires_at);
    {
        let f = fake.lock();
        assert_eq!(f.refreshes, 1);
        assert_eq!(f.threads.len(), 1);
        assert_eq!(f.threads[0].text, "On strike today.");
        assert_eq!(receipt.remote_id, f.threads[0].id);
        assert_eq!(
            receipt.url.as_deref(),
            Some(f.threads[0].permalink.as_str())
        );
    }
    // Within the day it is not renewed again.
    threads
        .publish(
            &account(&creds),
            &post("Still on strike.", false, Duration::from_secs(10)),
        )
        .await
        .unwrap();
    assert_eq!(fake.lock().refreshes, 1);
}

#[tokio::test]
async fn an_ended_grant_and_an_expired_token_both_ask_for_reconnecting() {
    let fake = ThreadsFake::start().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let creds = connected(&fake, clock.now()).await;
    let threads = adapter(&fake, clock.clone(), Arc::new(Saved::default()));

    fake.lock().tokens_expired = true;
    let expired = threads
        .publish(&account(&creds), &post("x", false, Duration::from_secs(10)))
        .await
        .unwrap_err();
    fake.lock().tokens_expired = false;
    clock.advance(chrono::Duration::days(61));
    let before = fake.lock().requests.len();
    let ended = threads
        .publish(&account(&creds), &post("x", false, Duration::from_secs(10)))
        .await
        .unwrap_err();

    assert!(matches!(expired, PublishError::Reconnect(_)), "{expired:?}");
    assert!(
        expired.reason().summary().contains("code 190"),
        "{}",
        expired.reason().summary()
    );
    assert!(matches!(ended, PublishError::Reconnect(_)), "{ended:?}");
    assert!(ended.reason().summary().contains("ended on"), "{ended:?}");
    assert_eq!(
        fake.lock().requests.len(),
        before,
        "an ended grant is not even tried"
    );
    assert!(fake.lock().threads.is_empty());
}

#[tokio::test]
async fn a_spent_quota_and_a_throttle_are_waits_and_nothing_is_posted() {
    let fake = ThreadsFake::start().await;
    let creds = connected(&fake, Utc::now()).await;
    let threads = adapter(&fake, Arc::new(picket::clock::SystemClock), Arc::default());

    fake.lock().quota_usage = 250;
    let spent = threads
        .publish(&account(&creds), &post("x", false, Duration::from_secs(10)))
        .await
        .unwrap_err();
    fake.lock().quota_usage = 0;
    fake.lock().throttle_next = true;
    let throttled = threads
        .publish(&account(&creds), &post("x", false, Duration::from_secs(10)))
        .await
        .unwrap_err();

    let PublishError::Retry { after, reason, .. } = &spent else {
        panic!("a spent quota waits: {spent:?}");
    };
    assert!(
        after.is_some_and(|a| a >= Duration::from_secs(60)),
        "{after:?}"
    );
    assert!(reason.summary().contains("250"), "{}", reason.summary());
    let PublishError::Retry { after, .. } = &throttled else {
        panic!("a throttle waits: {throttled:?}");
    };
    assert!(after.is_some(), "told when to come back");
    let f = fake.lock();
    assert!(f.threads.is_empty());
    assert!(
        !f.requests.iter().any(|r| r.ends_with("/threads_publish")),
        "{:?}",
        f.requests
    );
}

#[tokio::test]
async fn a_post_whose_answer_was_lost_is_read_back_on_the_retry_and_not_published_twice() {
    let fake = ThreadsFake::start().await;
    let creds = connected(&fake, Utc::now()).await;
    let threads = adapter(&fake, Arc::new(picket::clock::SystemClock), Arc::default());
    let text = "I'm on strike today. #Strike https://picket.test/i/abc";
    fake.lock().lose_next_publish_answer = true;

    let lost = threads
        .publish(&account(&creds), &post(text, false, Duration::from_secs(2)))
        .await
        .unwrap_err();
    let retry = threads
        .publish(&account(&creds), &post(text, true, Duration::from_secs(10)))
        .await
        .unwrap();

    assert!(
        matches!(
            lost,
            PublishError::Retry {
                maybe_sent: true,
                ..
            }
        ),
        "{lost:?}"
    );
    let f = fake.lock();
    assert_eq!(f.threads.len(), 1, "published once: {:?}", f.threads);
    assert_eq!(retry.remote_id, f.threads[0].id);
    assert_eq!(retry.url.as_deref(), Some(f.threads[0].permalink.as_str()));
    assert_eq!(
        f.requests
            .iter()
            .filter(|r| r.ends_with("/threads_publish"))
            .count(),
        1
    );
}

/// A campaign on Threads whose window opens `in_secs` from now.
fn campaign(in_secs: i64) -> String {
    let start = Utc::now() + chrono::Duration::seconds(in_secs);
    format!(
        r#"id = "threads-strike"
title = "Threads strike"
hashtag = "ThreadsStrike"
networks = ["threads"]

[strike]
windows = [{{ start = "{}", end = "{}" }}]
min_interval = "5m"

[[posts]]
name = "notice"
when = "start"
template = "notice"
window = "30m"

[templates]
notice = ["On #{{{{ hashtag }}}} strike today. Join: {{{{ invite_link }}}}"]
"#,
        rfc(start),
        rfc(start + chrono::Duration::hours(2))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_connects_threads_in_the_browser_and_the_notice_is_published_with_its_link() {
    // Arrange: a host with a Threads app (the fake), a campaign that starts shortly, a
    // newcomer at step 2 of joining. The first publish answer is lost on the way back.
    let fake = ThreadsFake::start().await;
    let site = TestApp::spawn(
        Options::joinable()
            .campaign("threads-strike", &campaign(8))
            .config(&fake.settings())
            .config("[scheduler]\nrequest_timeout_secs = 2"),
    )
    .await;
    fake.lock().lose_next_publish_answer = true;
    let browser = site.visitor();
    let step2 = browser
        .start_joining(
            "threads-strike",
            &[("name", "Thea"), ("tz", "Pacific/Auckland")],
        )
        .await;

    // Act: connect Threads, allow picket on Threads' page, come back, confirm.
    let to_threads = browser
        .post(
            "/connect/threads",
            &[
                ("csrf", &step2.field("csrf")),
                ("back", &step2.field("back")),
            ],
        )
        .await;
    let authorize = to_threads.location.clone().unwrap_or_default();
    let callback = fake.approve(&authorize).await;
    let back = browser
        .get(
            callback
                .trim_start_matches(&site.base)
                .trim_end_matches("#_"),
        )
        .await;
    let step2_again = browser.get(back.location.as_deref().unwrap()).await;
    let joined = browser.confirm("threads-strike", &step2_again).await;
    let store = site.store.clone();
    let published = eventually(
        Duration::from_secs(60),
        "the notice published on Threads",
        async || {
            let account = store.get_account(AccountId(1)).await.unwrap().unwrap();
            let rows = store
                .outbox_for(account.participant_id, Some("threads-strike"))
                .await
                .unwrap();
            match rows.first() {
                Some(r) if r.state == OutboxState::Published => Ok(r.clone()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let me = browser.get("/me").await;

    // Assert
    assert_eq!(
        to_threads.status,
        StatusCode::SEE_OTHER,
        "{}",
        to_threads.html
    );
    assert!(
        authorize.starts_with(&format!("{}/oauth/authorize?", fake.base)),
        "{authorize}"
    );
    assert!(
        step2.html.contains("Connect Threads"),
        "offered where the host has an app"
    );
    assert!(
        step2_again.html.contains("Connected your Threads account"),
        "{}",
        step2_again.html
    );
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.html);
    let f = fake.lock();
    assert_eq!(
        f.scopes_asked,
        vec!["threads_basic,threads_content_publish".to_string()]
    );
    assert_eq!(f.threads.len(), 1, "once, though the first answer was lost");
    let thread = &f.threads[0];
    assert!(
        thread.text.starts_with(&format!(
            "On #ThreadsStrike strike today. Join: {}/i/",
            site.base
        )),
        "{}",
        thread.text
    );
    assert_eq!(published.remote_id.as_deref(), Some(thread.id.as_str()));
    assert_eq!(
        published.remote_url.as_deref(),
        Some(thread.permalink.as_str())
    );
    let ends = (Utc::now() + chrono::Duration::days(60))
        .format("%Y-%m-%d")
        .to_string();
    let ends_early = (Utc::now() + chrono::Duration::days(59))
        .format("%Y-%m-%d")
        .to_string();
    assert!(
        me.html.contains(&format!("reconnect before {ends}"))
            || me.html.contains(&format!("reconnect before {ends_early}")),
        "{}",
        me.html
    );
}

#[tokio::test]
async fn threads_is_not_offered_where_the_host_has_no_app() {
    let site = TestApp::spawn(Options::joinable()).await;
    let browser = site.visitor();
    let step2 = browser
        .start_joining(
            crate::support::BUNDLED,
            &[("name", "N"), ("tz", "UTC"), ("day", "2027-07-04")],
        )
        .await;

    let tried = browser
        .post(
            "/connect/threads",
            &[
                ("csrf", &step2.field("csrf")),
                ("back", &step2.field("back")),
            ],
        )
        .await;

    assert!(!step2.html.contains("Connect Threads"), "{}", step2.html);
    assert_eq!(tried.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_connects_threads_with_the_address_the_browser_landed_on() {
    let fake = ThreadsFake::start().await;
    let inst = Options::default()
        .config(&fake.settings())
        .config("public_url = \"https://picket.example.org\"")
        .install();
    let mut add = inst
        .command()
        .args(["account", "add", "threads", "--oauth"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(add.stdout.take().unwrap());
    let authorize = loop {
        let mut line = String::new();
        assert_ne!(stdout.read_line(&mut line).unwrap(), 0, "no page printed");
        if let Some(u) = line
            .split_whitespace()
            .find(|w| w.contains("/oauth/authorize?"))
        {
            break u.to_string();
        }
    };

    // The browser lands on the host's callback (here it need not even load): its address
    // is pasted back, `#_` and all.
    let landed = fake.approve(&authorize).await;
    writeln!(add.stdin.take().unwrap(), "{landed}").unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = add.wait().unwrap();
    let mut err = String::new();
    add.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let list = inst.run(&["account", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout);

    assert!(status.success(), "{rest}\n{err}");
    assert!(
        landed.starts_with("https://picket.example.org/connect/threads/callback?code="),
        "{landed}"
    );
    assert!(rest.contains("added threads account"), "{rest}");
    assert!(listed.contains(FAKE_USERNAME), "{listed}");
    assert!(listed.contains("reconnect before 20"), "{listed}");
    let store = inst.store().await;
    let account = store.get_account(AccountId(1)).await.unwrap().unwrap();
    assert_eq!(account.network, NetworkKind::Threads);
    assert_eq!(account.status, AccountStatus::Active);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_before_a_strike_marks_an_account_whose_grant_ends_before_it() {
    // Arrange: a host with the Threads app, two accounts connected now (60-day grants).
    let fake = ThreadsFake::start().await;
    let site = TestApp::spawn(Options::default().config(&fake.settings())).await;
    let state = site.state();
    let now = Utc::now();
    let me = state
        .store
        .ensure_local_participant("me", picket::domain::Zone::UTC, now)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let auth = connect::official_authorize(
            OfficialApp::Threads(app_of(&fake)),
            "https://picket.test/cb",
            "st",
        );
        let back = url::Url::parse(&fake.approve(&auth.url).await).unwrap();
        let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1;
        let account = connect::official_code(&Egress::new(false), &auth, &code, None, now)
            .await
            .unwrap()
            .remove(0);
        ids.push(
            picket::participation::save_account(
                state.store.as_ref(),
                &state.vault,
                me,
                &account,
                now,
            )
            .await
            .unwrap(),
        );
    }

    // Act: one is needed a month from now, the other in ninety days.
    let mut found = Vec::new();
    for (id, days) in [(ids[0], 30), (ids[1], 90)] {
        found.push(
            picket::scheduler::verify::verify_accounts_until(
                state.store.as_ref(),
                &state.networks,
                &state.vault,
                &[id],
                now,
                Some(now + chrono::Duration::days(days)),
            )
            .await
            .unwrap(),
        );
    }
    let (soon, late) = (found[0], found[1]);

    // Assert
    assert_eq!((soon.ok, soon.broken), (1, 0));
    assert_eq!((late.ok, late.broken), (0, 1));
    let kept = state.store.get_account(ids[0]).await.unwrap().unwrap();
    let marked = state.store.get_account(ids[1]).await.unwrap().unwrap();
    assert_eq!(kept.status, AccountStatus::Active);
    assert_eq!(marked.status, AccountStatus::ReconnectNeeded);
    let reason = marked.status_reason.unwrap_or_default();
    assert!(reason.contains("before the strike"), "{reason}");
}
