//! X through its official API (`[x]` and a campaign with `x_api = true`), against the
//! local imitation in `support/x_fake.rs` (which cites the documents it follows):
//! connecting with PKCE, single-use refresh tokens renewed once under concurrent posts,
//! rate-limit headers, duplicate content, a lost answer read back, identical texts across
//! accounts, and the campaign's opt-in from the join page to the dispatcher.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use picket::clock::{Clock, ManualClock};
use picket::domain::Secret;
use picket::network::x::{App, Credentials, X};
use picket::network::{
    AccountRef, CredentialSink, Egress, Network, NotSaved, OutgoingPost, PublishError,
};
use picket::participation::connect::{self, OfficialApp};
use picket::store::{AccountId, OutboxState};
use reqwest::StatusCode;

use crate::support::{Options, TestApp, X_USERNAME, XFake, eventually, rfc};

fn app_of(fake: &XFake) -> App {
    picket::network::x::app(&picket::config::OAuthApp {
        client_id: crate::support::X_CLIENT_ID.into(),
        client_secret: Secret::new(crate::support::X_CLIENT_SECRET),
        api_base: Some(fake.base.clone()),
        auth_base: Some(fake.base.clone()),
    })
}

#[derive(Default)]
struct Saved(Mutex<Vec<String>>);

#[async_trait::async_trait]
impl CredentialSink for Saved {
    async fn save(&self, _: i64, credentials: &Secret) -> Result<(), NotSaved> {
        self.0
            .lock()
            .unwrap()
            .push(credentials.expose().to_string());
        Ok(())
    }
}

async fn connected(fake: &XFake, now: chrono::DateTime<Utc>) -> Credentials {
    let auth = connect::official_authorize(OfficialApp::X(app_of(fake)), "https://p.test/cb", "st");
    let back = url::Url::parse(&fake.approve(&auth.url).await).unwrap();
    let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1;
    let account = connect::official_code(&Egress::new(false), &auth, &code, Some("st"), now)
        .await
        .unwrap()
        .remove(0);
    serde_json::from_str(account.credentials.expose()).unwrap()
}

fn account(id: i64, c: &Credentials) -> AccountRef {
    AccountRef {
        id,
        handle: c.username.clone(),
        server: String::new(),
        credentials: c.to_secret(),
        trusted: false,
    }
}

fn post(text: &str, slot: &str, outcome_unknown: bool, timeout: Duration) -> OutgoingPost {
    OutgoingPost {
        text: text.into(),
        idempotency_key: "k".into(),
        scheduled_at: Utc::now(),
        slot_key: slot.into(),
        outcome_unknown,
        timeout,
        image: None,
    }
}

const T: Duration = Duration::from_secs(10);

#[tokio::test]
async fn connecting_asks_only_to_post_and_proves_the_pkce_verifier() {
    let fake = XFake::start().await;

    let creds = connected(&fake, Utc::now()).await;

    assert_eq!(
        fake.lock().scopes_asked,
        vec!["tweet.write tweet.read users.read offline.access".to_string()]
    );
    assert_eq!(creds.username, X_USERNAME);
    assert!(
        !creds.refresh_token.is_empty(),
        "offline.access gave a refresh token"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_is_renewed_once_for_concurrent_posts_and_the_new_pair_is_saved() {
    let fake = XFake::start().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let creds = connected(&fake, clock.now()).await;
    let sink = Arc::new(Saved::default());
    let x = Arc::new(X::new(
        Egress::new(false),
        app_of(&fake),
        sink.clone(),
        clock.clone(),
    ));
    clock.advance(chrono::Duration::hours(2));
    fake.lock().access_expired = true;

    let a = account(5, &creds);
    let (p1, p2) = (
        post("First notice https://p.test/i/a", "s1", false, T),
        post("Second notice https://p.test/i/a", "s2", false, T),
    );
    let (one, two) = tokio::join!(x.publish(&a, &p1), x.publish(&a, &p2));

    assert!(one.is_ok() && two.is_ok(), "{one:?} {two:?}");
    let f = fake.lock();
    assert_eq!(f.refreshes, 1, "one renewal: the refresh token works once");
    assert_eq!(f.tweets.len(), 2);
    let saved = sink.0.lock().unwrap().clone();
    assert_eq!(saved.len(), 1);
    let renewed: Credentials = serde_json::from_str(&saved[0]).unwrap();
    assert_ne!(renewed.refresh_token, creds.refresh_token);
    assert!(
        f.refresh.contains(&renewed.refresh_token),
        "the saved one is the live one"
    );
    assert!(
        one.unwrap()
            .url
            .unwrap()
            .starts_with(&format!("https://x.com/{X_USERNAME}/status/"))
    );
}

#[tokio::test]
async fn rate_limit_headers_and_duplicates_get_their_answers() {
    let fake = XFake::start().await;
    let creds = connected(&fake, Utc::now()).await;
    let x = X::new(
        Egress::new(false),
        app_of(&fake),
        Arc::new(Saved::default()),
        Arc::new(picket::clock::SystemClock),
    );
    let a = account(5, &creds);

    x.publish(&a, &post("Once only", "s1", false, T))
        .await
        .unwrap();
    let duplicate = x
        .publish(&a, &post("Once only", "s2", false, T))
        .await
        .unwrap_err();
    fake.lock().remaining = Some(1);
    x.publish(&a, &post("The last one this window", "s3", false, T))
        .await
        .unwrap();
    let before = fake.lock().requests.len();
    let spent = x
        .publish(&a, &post("Too many", "s4", false, T))
        .await
        .unwrap_err();
    let asked_x = fake.lock().requests.len() - before;
    // A fresh adapter does not know the window is spent: X answers 429 with its reset.
    let fresh = X::new(
        Egress::new(false),
        app_of(&fake),
        Arc::new(Saved::default()),
        Arc::new(picket::clock::SystemClock),
    );
    let refused = fresh
        .publish(&a, &post("Too many", "s4", false, T))
        .await
        .unwrap_err();

    assert!(
        matches!(duplicate, PublishError::Rejected(_)),
        "{duplicate:?}"
    );
    assert!(
        duplicate.reason().summary().contains("duplicate"),
        "{}",
        duplicate.reason().summary()
    );
    for e in [&spent, &refused] {
        let PublishError::Retry { after, .. } = e else {
            panic!("{e:?}");
        };
        let after = after.unwrap();
        assert!(
            after > Duration::from_secs(500) && after <= Duration::from_secs(600),
            "until the reset: {after:?}"
        );
    }
    assert_eq!(asked_x, 0, "a spent window is not even tried");
    assert_eq!(fake.lock().tweets.len(), 2);
}

#[tokio::test]
async fn a_post_whose_answer_was_lost_is_read_back_though_x_rewrote_its_link() {
    let fake = XFake::start().await;
    let creds = connected(&fake, Utc::now()).await;
    let x = X::new(
        Egress::new(false),
        app_of(&fake),
        Arc::new(Saved::default()),
        Arc::new(picket::clock::SystemClock),
    );
    let a = account(5, &creds);
    let text = "On #Strike today. Join: https://picket.test/i/abc";
    fake.lock().lose_next_answer = true;

    let lost = x
        .publish(&a, &post(text, "s1", false, Duration::from_secs(2)))
        .await
        .unwrap_err();
    let retry = x.publish(&a, &post(text, "s1", true, T)).await.unwrap();

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
    assert_eq!(f.tweets.len(), 1);
    assert_eq!(retry.remote_id, f.tweets[0].id);
}

#[tokio::test]
async fn two_accounts_never_send_the_same_text_in_one_slot() {
    let fake = XFake::start().await;
    let one = connected(&fake, Utc::now()).await;
    let two = connected(&fake, Utc::now()).await;
    let x = X::new(
        Egress::new(false),
        app_of(&fake),
        Arc::new(Saved::default()),
        Arc::new(picket::clock::SystemClock),
    );

    x.publish(&account(1, &one), &post("Same words", "slot-a", false, T))
        .await
        .unwrap();
    let second = x
        .publish(&account(2, &two), &post("Same words", "slot-a", false, T))
        .await
        .unwrap_err();

    assert!(matches!(second, PublishError::Rejected(_)), "{second:?}");
    assert!(
        second.reason().summary().contains("identical"),
        "{second:?}"
    );
    assert_eq!(fake.lock().tweets.len(), 1);
}

fn campaign(id: &str, x_api: bool, in_secs: i64) -> String {
    let start = Utc::now() + chrono::Duration::seconds(in_secs);
    format!(
        r#"id = "{id}"
title = "X strike"
hashtag = "XStrike"
networks = ["x"]
x_api = {x_api}

[strike]
windows = [{{ start = "{}", end = "{}" }}]
min_interval = "5m"

[[posts]]
name = "notice"
when = "start"
template = "notice"
window = "30m"

[templates]
notice = ["On #{{{{ hashtag }}}} strike today. {{{{ invite_link }}}}"]
"#,
        rfc(start),
        rfc(start + chrono::Duration::hours(2))
    )
}

/// Join `id` in `site`'s browser, connecting X through the host's app.
async fn join_with_x(site: &TestApp, fake: &XFake, id: &str) -> (String, String) {
    let browser = site.visitor();
    let step2 = browser
        .start_joining(id, &[("name", "Xena"), ("tz", "America/Chicago")])
        .await;
    let to_x = browser
        .post(
            "/connect/x",
            &[
                ("csrf", &step2.field("csrf")),
                ("back", &step2.field("back")),
            ],
        )
        .await;
    assert_eq!(to_x.status, StatusCode::SEE_OTHER, "{}", to_x.html);
    let callback = fake.approve(to_x.location.as_deref().unwrap()).await;
    let back = browser.get(callback.trim_start_matches(&site.base)).await;
    let step2_again = browser.get(back.location.as_deref().unwrap()).await;
    assert!(
        step2_again.html.contains("Connected your X account"),
        "{}",
        step2_again.html
    );
    let joined = browser.confirm(id, &step2_again).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.html);
    (step2.html, step2_again.html)
}

async fn outcome(site: &TestApp, id: &str) -> picket::store::OutboxRow {
    let store = site.store.clone();
    eventually(
        Duration::from_secs(60),
        "the notice's outcome",
        async || {
            let account = store.get_account(AccountId(1)).await.unwrap().unwrap();
            let rows = store
                .outbox_for(account.participant_id, Some(id))
                .await
                .unwrap();
            match rows.first() {
                Some(r) if matches!(r.state, OutboxState::Published | OutboxState::Failed) => {
                    Ok(r.clone())
                }
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_but_without_the_campaigns_opt_in_nothing_is_posted_to_x() {
    let fake = XFake::start().await;
    let site = TestApp::spawn(
        Options::joinable()
            .campaign("x-off", &campaign("x-off", false, 6))
            .config(&fake.settings()),
    )
    .await;

    let (step2, _) = join_with_x(&site, &fake, "x-off").await;
    let row = outcome(&site, "x-off").await;

    assert!(!step2.contains("Connect X"), "not offered without x_api");
    assert_eq!(row.state, OutboxState::Failed);
    assert!(
        row.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("x_api = true"),
        "{row:?}"
    );
    assert!(fake.lock().tweets.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_that_opts_in_warns_about_xs_rules_and_publishes_through_the_api() {
    let fake = XFake::start().await;
    let site = TestApp::spawn(
        Options::joinable()
            .campaign("x-on", &campaign("x-on", true, 6))
            .config(&fake.settings()),
    )
    .await;

    let (step2, _) = join_with_x(&site, &fake, "x-on").await;
    let row = outcome(&site, "x-on").await;

    assert!(step2.contains("Connect X"), "{step2}");
    assert!(
        step2.contains("automation rules forbid"),
        "the warning is shown"
    );
    assert_eq!(row.state, OutboxState::Published, "{row:?}");
    let f = fake.lock();
    assert_eq!(f.tweets.len(), 1);
    assert!(
        f.tweets[0]
            .text
            .starts_with(&format!("On #XStrike strike today. {}/i/", site.base)),
        "{}",
        f.tweets[0].text
    );
    assert_eq!(row.remote_id.as_deref(), Some(f.tweets[0].id.as_str()));
    assert_eq!(
        row.remote_url,
        Some(format!(
            "https://x.com/{X_USERNAME}/status/{}",
            f.tweets[0].id
        ))
    );
}
