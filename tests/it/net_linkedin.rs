//! LinkedIn through its official API (`[linkedin]`), against the local imitation in
//! `support/linkedin_fake.rs` (which cites the documents it follows): connecting, the
//! post as LinkedIn reads it (little text: nothing cut, the hashtag a hashtag), a lost
//! answer that must not become a second post, throttling, revoked and ended grants, and
//! the whole way from the join page to a published post with its link.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use picket::clock::{Clock, ManualClock};
use picket::domain::Secret;
use picket::network::linkedin::{App, Credentials, LinkedIn};
use picket::network::{AccountRef, Egress, Network, OutgoingPost, PublishError};
use picket::participation::connect::{self, OfficialApp};
use picket::store::{AccountId, OutboxState};
use reqwest::StatusCode;

use crate::support::{LI_NAME, LI_SUB, LinkedInFake, Options, TestApp, eventually, rfc};

fn app_of(fake: &LinkedInFake) -> App {
    picket::network::linkedin::app(&picket::config::OAuthApp {
        client_id: crate::support::LI_CLIENT_ID.into(),
        client_secret: Secret::new(crate::support::LI_CLIENT_SECRET),
        api_base: Some(fake.base.clone()),
        auth_base: Some(fake.base.clone()),
    })
}

async fn connected(fake: &LinkedInFake, now: chrono::DateTime<Utc>) -> Credentials {
    let auth = connect::official_authorize(
        OfficialApp::LinkedIn(app_of(fake)),
        "https://p.test/cb",
        "st",
    );
    let back = url::Url::parse(&fake.approve(&auth.url).await).unwrap();
    let code = back.query_pairs().find(|(k, _)| k == "code").unwrap().1;
    let account = connect::official_code(&Egress::new(false), &auth, &code, Some("st"), now)
        .await
        .unwrap()
        .remove(0);
    serde_json::from_str(account.credentials.expose()).unwrap()
}

fn account(c: &Credentials) -> AccountRef {
    AccountRef {
        id: 3,
        handle: c.name.clone(),
        server: String::new(),
        credentials: c.to_secret(),
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
async fn a_post_reads_on_linkedin_exactly_as_written_with_its_hashtag_and_its_link() {
    let fake = LinkedInFake::start().await;
    let now = Utc::now();
    let creds = connected(&fake, now).await;
    let li = LinkedIn::new(
        Egress::new(false),
        app_of(&fake),
        Arc::new(picket::clock::SystemClock),
    );
    let text = "I'm on #SocialMediaStrike today (all day) — why: https://picket.test/i/a_b*c ~ <3";

    let receipt = li
        .publish(
            &account(&creds),
            &post(text, false, Duration::from_secs(10)),
        )
        .await
        .unwrap();

    let f = fake.lock();
    assert_eq!(
        f.scopes_asked,
        vec!["openid profile w_member_social".to_string()]
    );
    assert_eq!((creds.sub.as_str(), creds.name.as_str()), (LI_SUB, LI_NAME));
    let days = (creds.expires_at - now).num_days();
    assert!((59..=60).contains(&days), "{days}");
    assert_eq!(f.posts.len(), 1);
    assert_eq!(f.posts[0].text, text, "nothing cut, nothing added");
    assert_eq!(f.posts[0].hashtags, vec!["SocialMediaStrike".to_string()]);
    assert_eq!(receipt.remote_id, f.posts[0].urn);
    assert_eq!(
        receipt.url,
        Some(format!(
            "https://www.linkedin.com/feed/update/{}/",
            f.posts[0].urn
        ))
    );
}

#[tokio::test]
async fn a_revoked_token_an_ended_grant_and_a_throttle_each_get_their_answer() {
    let fake = LinkedInFake::start().await;
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let creds = connected(&fake, clock.now()).await;
    let li = LinkedIn::new(Egress::new(false), app_of(&fake), clock.clone());

    fake.lock().throttle_next = true;
    let throttled = li
        .publish(&account(&creds), &post("a", false, Duration::from_secs(10)))
        .await
        .unwrap_err();
    fake.lock().revoked = true;
    let revoked = li
        .publish(&account(&creds), &post("b", false, Duration::from_secs(10)))
        .await
        .unwrap_err();
    clock.advance(chrono::Duration::days(61));
    let before = fake.lock().requests.len();
    let ended = li
        .publish(&account(&creds), &post("c", false, Duration::from_secs(10)))
        .await
        .unwrap_err();

    let PublishError::Retry { after, .. } = &throttled else {
        panic!("{throttled:?}");
    };
    let midnight = (clock.now() - chrono::Duration::days(61)).date_naive() + chrono::Days::new(1);
    let wait = (midnight.and_hms_opt(0, 0, 0).unwrap().and_utc()
        - (clock.now() - chrono::Duration::days(61)))
    .to_std()
    .unwrap();
    assert_eq!(*after, Some(wait), "until the daily quota resets");
    assert!(matches!(revoked, PublishError::Reconnect(_)), "{revoked:?}");
    assert!(
        revoked.reason().summary().contains("REVOKED_ACCESS_TOKEN"),
        "{}",
        revoked.reason().summary()
    );
    assert!(matches!(ended, PublishError::Reconnect(_)), "{ended:?}");
    assert_eq!(
        fake.lock().requests.len(),
        before,
        "an ended grant is not tried"
    );
    assert!(fake.lock().posts.is_empty());
}

#[tokio::test]
async fn after_a_lost_answer_picket_says_it_cannot_tell_and_never_posts_again() {
    let fake = LinkedInFake::start().await;
    let creds = connected(&fake, Utc::now()).await;
    let li = LinkedIn::new(
        Egress::new(false),
        app_of(&fake),
        Arc::new(picket::clock::SystemClock),
    );
    fake.lock().lose_next_answer = true;

    let lost = li
        .publish(
            &account(&creds),
            &post("On strike.", false, Duration::from_secs(2)),
        )
        .await
        .unwrap_err();
    let retry = li
        .publish(
            &account(&creds),
            &post("On strike.", true, Duration::from_secs(10)),
        )
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
    assert!(matches!(retry, PublishError::Rejected(_)), "{retry:?}");
    assert!(
        retry.reason().summary().contains("not posted again"),
        "{}",
        retry.reason().summary()
    );
    assert_eq!(fake.lock().posts.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_connects_linkedin_in_the_browser_and_the_notice_is_published_with_its_link()
{
    let fake = LinkedInFake::start().await;
    let start = Utc::now() + chrono::Duration::seconds(8);
    let campaign = format!(
        r#"id = "li-strike"
title = "LinkedIn strike"
hashtag = "LinkedInStrike"
networks = ["linkedin"]

[strike]
windows = [{{ start = "{}", end = "{}" }}]
min_interval = "5m"

[[posts]]
name = "notice"
when = "start"
template = "notice"
window = "30m"

[templates]
notice = ["On #{{{{ hashtag }}}} strike today (no posts but this). Join: {{{{ invite_link }}}}"]
"#,
        rfc(start),
        rfc(start + chrono::Duration::hours(2))
    );
    let site = TestApp::spawn(
        Options::joinable()
            .campaign("li-strike", &campaign)
            .config(&fake.settings()),
    )
    .await;
    let browser = site.visitor();
    let step2 = browser
        .start_joining("li-strike", &[("name", "Lin"), ("tz", "Europe/Berlin")])
        .await;

    let to_linkedin = browser
        .post(
            "/connect/linkedin",
            &[
                ("csrf", &step2.field("csrf")),
                ("back", &step2.field("back")),
            ],
        )
        .await;
    let authorize = to_linkedin.location.clone().unwrap_or_default();
    let callback = fake.approve(&authorize).await;
    let back = browser.get(callback.trim_start_matches(&site.base)).await;
    let step2_again = browser.get(back.location.as_deref().unwrap()).await;
    let joined = browser.confirm("li-strike", &step2_again).await;
    let store = site.store.clone();
    let published = eventually(
        Duration::from_secs(60),
        "the notice published on LinkedIn",
        async || {
            let account = store.get_account(AccountId(1)).await.unwrap().unwrap();
            let rows = store
                .outbox_for(account.participant_id, Some("li-strike"))
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

    assert!(step2.html.contains("Connect LinkedIn"), "{}", step2.html);
    assert_eq!(to_linkedin.status, StatusCode::SEE_OTHER);
    assert!(
        authorize.starts_with(&format!("{}/oauth/v2/authorization?", fake.base)),
        "{authorize}"
    );
    assert!(
        step2_again.html.contains("Connected your LinkedIn account"),
        "{}",
        step2_again.html
    );
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.html);
    let f = fake.lock();
    assert_eq!(f.posts.len(), 1);
    assert!(
        f.posts[0].text.starts_with(&format!(
            "On #LinkedInStrike strike today (no posts but this). Join: {}/i/",
            site.base
        )),
        "{}",
        f.posts[0].text
    );
    assert_eq!(
        published.remote_id.as_deref(),
        Some(f.posts[0].urn.as_str())
    );
    assert_eq!(
        published.remote_url,
        Some(format!(
            "https://www.linkedin.com/feed/update/{}/",
            f.posts[0].urn
        ))
    );
    assert!(me.html.contains("reconnect before 20"), "{}", me.html);
}
