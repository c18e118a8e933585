//! Misskey and its forks against the local imitation in `support/misskey_fake.rs` (which
//! follows misskey-hub.net's API documents: no Misskey server installs from the
//! registries here): MiAuth asking only `write:notes` from the command line and the join
//! page, the server's own length limit, and a retry after a lost answer that reads the
//! account's notes back instead of posting twice, in the adapter and through the
//! dispatcher of a running picket.

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use picket::network::misskey::{Credentials, Misskey};
use picket::network::{AccountRef, Egress, Network, OutgoingPost, PublishError};
use picket::participation::connect::{self, TypedBy};
use picket::store::{AccountId, OutboxState};
use reqwest::StatusCode;

use crate::support::{
    MISSKEY_USER_ID, MISSKEY_USERNAME, MisskeyFake, Options, TestApp, eventually, rfc,
};

fn post(text: &str, outcome_unknown: bool, timeout: Duration) -> OutgoingPost {
    OutgoingPost {
        text: text.into(),
        idempotency_key: "k".into(),
        scheduled_at: Utc::now(),
        slot_key: "s1".into(),
        outcome_unknown,
        timeout,
        image: None,
    }
}

/// An account connected through MiAuth by the operator, as `AccountRef`.
async fn connected(fake: &MisskeyFake) -> AccountRef {
    let server = connect::misskey_server(&Egress::new(false), TypedBy::Operator, &fake.base)
        .await
        .unwrap();
    let session = picket::network::misskey::enroll::new_session();
    fake.approve(&server.miauth_url(&session, None)).await;
    let account = connect::misskey_session(&server, &session).await.unwrap();
    assert!(account.trusted);
    AccountRef {
        id: 1,
        handle: account.handle.to_string(),
        server: account.server.unwrap(),
        credentials: account.credentials,
        trusted: true,
    }
}

#[tokio::test]
async fn a_retry_after_a_lost_answer_leaves_one_note() {
    // Arrange
    let fake = MisskeyFake::start(3000).await;
    let account = connected(&fake).await;
    let misskey = Misskey::new(Egress::new(false), Arc::new(picket::clock::SystemClock));
    let text = "On #Strike today. Join: https://picket.test/i/abc";
    fake.lock().lose_next_answer = true;

    // Act: the note is created but its answer never comes; the retry knows it may exist.
    let lost = misskey
        .publish(&account, &post(text, false, Duration::from_secs(2)))
        .await
        .unwrap_err();
    let retry = misskey
        .publish(&account, &post(text, true, Duration::from_secs(10)))
        .await
        .unwrap();

    // Assert
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
    assert_eq!(f.notes.len(), 1, "one note");
    assert_eq!(
        f.creates, 1,
        "the retry found the note and did not create another"
    );
    assert_eq!(retry.remote_id, f.notes[0].id);
    assert_eq!(
        retry.url.as_deref(),
        Some(format!("{}/notes/{}", fake.base, f.notes[0].id).as_str())
    );
}

#[tokio::test]
async fn miauth_asks_only_to_write_notes_and_the_servers_limit_is_applied() {
    // Arrange: a server allowing 40 characters per note.
    let fake = MisskeyFake::start(40).await;

    // Act
    let account = connected(&fake).await;
    let misskey = Misskey::new(Egress::new(false), Arc::new(picket::clock::SystemClock));
    let long = misskey
        .publish(
            &account,
            &post(&"a".repeat(41), false, Duration::from_secs(5)),
        )
        .await
        .unwrap_err();
    let short = misskey
        .publish(
            &account,
            &post("On strike. #Strike", false, Duration::from_secs(5)),
        )
        .await;
    let verified = misskey.verify(&account).await;

    // Assert
    assert_eq!(fake.lock().asked, ["write:notes"]);
    let creds = Credentials::parse(account.credentials.expose()).unwrap();
    assert_eq!(creds.user_id, MISSKEY_USER_ID);
    assert_eq!(creds.max_text, Some(40));
    assert_eq!(account.handle, format!("@striker@127.0.0.1"));
    assert!(matches!(long, PublishError::Rejected(_)), "{long:?}");
    assert!(short.is_ok(), "{short:?}");
    assert!(
        verified.is_ok(),
        "a write-only token still checks out: {verified:?}"
    );
    assert_eq!(fake.lock().creates, 1, "the long one was never sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picket_account_add_misskey_prints_the_miauth_page_and_stores_the_account() {
    // Arrange
    let fake = MisskeyFake::start(3000).await;
    let install = Options::default().install();
    let mut child = install
        .command()
        .args(["account", "add", "misskey", "--server", &fake.base])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (page, rest) = tokio::task::spawn_blocking(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        let page = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("/miauth/"))
            .expect("the MiAuth page is printed");
        (page.trim().to_string(), lines)
    })
    .await
    .unwrap();

    // Act: the person allows picket on the page, then presses Enter.
    fake.approve(&page).await;
    child.stdin.take().unwrap().write_all(b"\n").unwrap();
    let said: Vec<String> =
        tokio::task::spawn_blocking(move || rest.map_while(Result::ok).collect())
            .await
            .unwrap();
    let status = child.wait().unwrap();

    // Assert
    assert!(status.success(), "{said:?}");
    assert!(
        page.starts_with(&format!("{}/miauth/", fake.base))
            && page.contains("permission=write%3Anotes"),
        "{page}"
    );
    let said = said.join("\n");
    assert!(said.contains("misskey account"), "{said}");
    assert!(said.contains("write:notes"), "{said}");
    let listed = install.run(&["account", "list", "--format", "json"]);
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("@striker@127.0.0.1"), "{listed}");
    assert!(
        !listed.contains("miauth0"),
        "the token is not listed: {listed}"
    );
}

fn campaign(id: &str, start_in_secs: i64) -> String {
    let start = Utc::now() + chrono::Duration::seconds(start_in_secs);
    format!(
        r#"id = "{id}"
title = "Misskey strike"
hashtag = "MkStrike"
networks = ["misskey"]

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_joins_with_misskey_in_the_browser_and_a_lost_answer_leaves_one_note() {
    // Arrange: the server is on loopback, so this host allows visitors' private
    // addresses; a publish attempt gives up after 2 s.
    let fake = MisskeyFake::start(3000).await;
    let id = "mk-strike";
    let site = TestApp::spawn(
        Options::joinable()
            .without_bundled()
            .campaign(id, &campaign(id, 3))
            .config(
                "allow_private_addresses = true\n[scheduler]\njitter_secs = 0\nrequest_timeout_secs = 2\n",
            ),
    )
    .await;
    let browser = site.visitor();
    let step2 = browser
        .start_joining(id, &[("name", "Kim"), ("tz", "Europe/Berlin")])
        .await;

    // Act: the join page sends the browser to the server's MiAuth page; the person allows
    // picket; the server sends them back; they confirm. The first note's answer is lost.
    let to_server = browser
        .post(
            "/connect/misskey",
            &[
                ("csrf", &step2.field("csrf")),
                ("back", &step2.field("back")),
                ("server", &fake.base),
            ],
        )
        .await;
    assert_eq!(
        to_server.status,
        StatusCode::SEE_OTHER,
        "{}",
        to_server.html
    );
    let miauth = to_server.location.clone().unwrap();
    let callback = fake.approve(&miauth).await;
    let back = browser.get(callback.trim_start_matches(&site.base)).await;
    let step2_again = browser.get(back.location.as_deref().unwrap()).await;
    assert!(
        step2_again.html.contains("Connected your Misskey account"),
        "{}",
        step2_again.html
    );
    fake.lock().lose_next_answer = true;
    let joined = browser.confirm(id, &step2_again).await;
    assert_eq!(joined.status, StatusCode::OK, "{}", joined.html);
    let store = site.store.clone();
    let row = eventually(
        Duration::from_secs(60),
        "the notice published",
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
    .await;

    // Assert
    assert!(
        miauth.starts_with(&format!("{}/miauth/", fake.base))
            && miauth.contains("permission=write%3Anotes"),
        "{miauth}"
    );
    assert!(
        miauth.contains(&format!(
            "callback={}",
            url::form_urlencoded::byte_serialize(
                format!("{}/connect/misskey/callback", site.base).as_bytes()
            )
            .collect::<String>()
        )),
        "{miauth}"
    );
    assert_eq!(row.state, OutboxState::Published, "{row:?}");
    {
        let f = fake.lock();
        assert_eq!(f.notes.len(), 1, "one note: {:?}", f.notes);
        assert!(
            f.reads >= 1,
            "the retry read the account's notes back first"
        );
        assert_eq!(f.creates, 1);
        assert_eq!(row.remote_id.as_deref(), Some(f.notes[0].id.as_str()));
        assert!(f.notes[0].text.starts_with("On #MkStrike strike today."));
    }
    // A replayed callback (the session is single-use) is refused with a message.
    let replay = browser.get(callback.trim_start_matches(&site.base)).await;
    assert_eq!(replay.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn a_pasted_token_is_taken_when_it_can_say_whose_it_is() {
    // Arrange
    let fake = MisskeyFake::start(3000).await;
    let server = connect::misskey_server(&Egress::new(false), TypedBy::Operator, &fake.base)
        .await
        .unwrap();
    let write_only = fake.issue_token("write:notes");
    let both = fake.issue_token("write:notes,read:account");

    // Act
    let refused = connect::misskey_token(&server, &write_only)
        .await
        .unwrap_err();
    let taken = connect::misskey_token(&server, &both).await.unwrap();

    // Assert
    assert!(refused.to_string().contains("read:account"), "{refused}");
    assert_eq!(
        taken.handle.to_string(),
        format!("@{MISSKEY_USERNAME}@127.0.0.1")
    );
}

#[tokio::test]
async fn reading_back_finds_a_note_by_its_text_and_says_absent_for_one_never_sent() {
    // Arrange: one note published; another post never sent.
    let fake = MisskeyFake::start(3000).await;
    let account = connected(&fake).await;
    let misskey = Misskey::new(Egress::new(false), Arc::new(picket::clock::SystemClock));
    let sent = post("On #Strike today.", false, Duration::from_secs(5));
    let published = misskey.publish(&account, &sent).await.unwrap();

    // Act: reading back never sends.
    let found = misskey.read_back(&account, &sent).await.unwrap();
    let never = misskey
        .read_back(
            &account,
            &post("Day 2 of #Strike.", true, Duration::from_secs(5)),
        )
        .await
        .unwrap();

    // Assert
    match found {
        picket::network::ReadBack::Found(r) => assert_eq!(r.remote_id, published.remote_id),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(never, picket::network::ReadBack::Absent),
        "{never:?}"
    );
    assert_eq!(fake.lock().creates, 1, "reading back created nothing");
}
