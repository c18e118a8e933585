//! Facebook Pages through the Graph API (`[facebook]`), against the local imitation in
//! `support/facebook_fake.rs` (which cites the documents it follows): Facebook Login
//! gives one account per Page the person may post on, a post on the Page, a lost answer
//! read back, an invalidated token, a Page's rate limit, and the join page to a published
//! post.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use picket::domain::{NetworkKind, Secret};
use picket::network::facebook::{App, Credentials, FacebookPages};
use picket::network::{AccountRef, Egress, Network, OutgoingPost, PublishError};
use picket::participation::connect::{self, Connected, OfficialApp};
use picket::store::{AccountId, OutboxState};
use reqwest::StatusCode;

use crate::support::{FB_PAGE_ID, FB_PAGE_NAME, FacebookFake, Options, TestApp, eventually, rfc};

fn app_of(fake: &FacebookFake) -> App {
    picket::network::facebook::app(&picket::config::OAuthApp {
        client_id: crate::support::FB_CLIENT_ID.into(),
        client_secret: Secret::new(crate::support::FB_CLIENT_SECRET),
        api_base: Some(fake.base.clone()),
        auth_base: Some(fake.base.clone()),
    })
}

async fn connected(fake: &FacebookFake) -> Vec<Connected> {
    let auth = connect::official_authorize(
        OfficialApp::Facebook(app_of(fake)),
        "https://p.test/cb",
        "st",
    );
    let back = url::Url::parse(&fake.approve(&auth.url).await).unwrap();
    let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1;
    connect::official_code(&Egress::new(false), &auth, &code, Some("st"), Utc::now())
        .await
        .unwrap()
}

fn account(c: &Connected) -> AccountRef {
    AccountRef {
        id: 9,
        handle: c.handle.to_string(),
        server: String::new(),
        credentials: c.credentials.clone(),
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

#[tokio::test]
async fn each_page_the_person_may_post_on_becomes_an_account_and_gets_the_post() {
    let fake = FacebookFake::start().await;

    let accounts = connected(&fake).await;
    let fb = FacebookPages::new(
        Egress::new(false),
        app_of(&fake),
        Arc::new(picket::clock::SystemClock),
    );
    let receipt = fb
        .publish(
            &account(&accounts[0]),
            &post(
                "Our Page is on strike today.",
                false,
                Duration::from_secs(10),
            ),
        )
        .await
        .unwrap();

    assert_eq!(
        fake.lock().scopes_asked,
        vec!["pages_manage_posts,pages_read_engagement,pages_show_list".to_string()]
    );
    assert_eq!(
        accounts.len(),
        1,
        "only the Page they may create content on"
    );
    assert_eq!(accounts[0].network, NetworkKind::Facebook);
    assert_eq!(accounts[0].handle, FB_PAGE_NAME);
    let creds: Credentials = serde_json::from_str(accounts[0].credentials.expose()).unwrap();
    assert_eq!(creds.page_id, FB_PAGE_ID);
    let f = fake.lock();
    assert_eq!(f.posts.len(), 1);
    assert_eq!(f.posts[0].message, "Our Page is on strike today.");
    assert_eq!(receipt.remote_id, f.posts[0].id);
    assert_eq!(
        receipt.url,
        Some(format!("https://www.facebook.com/{}", f.posts[0].id))
    );
}

#[tokio::test]
async fn a_lost_answer_is_read_back_and_an_invalid_token_or_a_throttle_gets_its_answer() {
    let fake = FacebookFake::start().await;
    let accounts = connected(&fake).await;
    let fb = FacebookPages::new(
        Egress::new(false),
        app_of(&fake),
        Arc::new(picket::clock::SystemClock),
    );
    let a = account(&accounts[0]);
    fake.lock().lose_next_answer = true;

    let lost = fb
        .publish(&a, &post("Once.", false, Duration::from_secs(2)))
        .await
        .unwrap_err();
    let retry = fb
        .publish(&a, &post("Once.", true, Duration::from_secs(10)))
        .await
        .unwrap();
    fake.lock().throttle_next = true;
    let throttled = fb
        .publish(&a, &post("Later.", false, Duration::from_secs(10)))
        .await
        .unwrap_err();
    fake.lock().tokens_invalid = true;
    let invalid = fb
        .publish(&a, &post("Never.", false, Duration::from_secs(10)))
        .await
        .unwrap_err();

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
    assert_eq!(fake.lock().posts.len(), 1, "not published twice");
    assert_eq!(retry.remote_id, fake.lock().posts[0].id);
    assert!(
        matches!(throttled, PublishError::Retry { after: Some(a), .. } if a == Duration::from_secs(7 * 60)),
        "as long as the usage header says: {throttled:?}"
    );
    assert!(matches!(invalid, PublishError::Reconnect(_)), "{invalid:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organiser_connects_their_page_in_the_browser_and_the_notice_is_published_on_it() {
    let fake = FacebookFake::start().await;
    let start = Utc::now() + chrono::Duration::seconds(6);
    let campaign = format!(
        r#"id = "fb-strike"
title = "Page strike"
hashtag = "PageStrike"
networks = ["facebook"]

[strike]
windows = [{{ start = "{}", end = "{}" }}]
min_interval = "5m"

[[posts]]
name = "notice"
when = "start"
template = "notice"
window = "30m"

[templates]
notice = ["Our Page is on #{{{{ hashtag }}}} strike today. Join: {{{{ invite_link }}}}"]
"#,
        rfc(start),
        rfc(start + chrono::Duration::hours(2))
    );
    let site = TestApp::spawn(
        Options::joinable()
            .campaign("fb-strike", &campaign)
            .config(&fake.settings()),
    )
    .await;
    let browser = site.visitor();
    let step2 = browser
        .start_joining(
            "fb-strike",
            &[("name", "Committee"), ("tz", "Europe/Madrid")],
        )
        .await;

    let to_fb = browser
        .post(
            "/connect/facebook",
            &[
                ("csrf", &step2.field("csrf")),
                ("back", &step2.field("back")),
            ],
        )
        .await;
    let callback = fake
        .approve(to_fb.location.as_deref().unwrap_or_default())
        .await;
    let back = browser.get(callback.trim_start_matches(&site.base)).await;
    let step2_again = browser.get(back.location.as_deref().unwrap()).await;
    let joined = browser.confirm("fb-strike", &step2_again).await;
    let store = site.store.clone();
    let row = eventually(
        Duration::from_secs(60),
        "the notice on the Page",
        async || {
            let account = store.get_account(AccountId(1)).await.unwrap().unwrap();
            let rows = store
                .outbox_for(account.participant_id, Some("fb-strike"))
                .await
                .unwrap();
            match rows.first() {
                Some(r) if r.state == OutboxState::Published => Ok(r.clone()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;

    assert!(
        step2.html.contains("Connect a Facebook Page"),
        "{}",
        step2.html
    );
    assert_eq!(to_fb.status, StatusCode::SEE_OTHER);
    assert!(
        step2_again
            .html
            .contains(&format!("Connected your Facebook account {FB_PAGE_NAME}")),
        "{}",
        step2_again.html
    );
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.html);
    let f = fake.lock();
    assert_eq!(f.posts.len(), 1);
    assert!(
        f.posts[0].message.starts_with(&format!(
            "Our Page is on #PageStrike strike today. Join: {}/i/",
            site.base
        )),
        "{}",
        f.posts[0].message
    );
    assert_eq!(row.remote_id.as_deref(), Some(f.posts[0].id.as_str()));
}
