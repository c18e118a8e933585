//! Bluesky's OAuth sign-in end to end: a visitor joins in a real Chromium, chooses "Sign
//! in with Bluesky", signs in and allows picket on the reference PDS's own authorization
//! pages (`@atproto/pds`, `PICKET_TEST_PDS_URL`, which accepts the loopback client in its
//! dev mode), comes back connected, and the strike's post lands on the PDS through the
//! DPoP-bound token, after a refresh of the token pair at the authorization server (the
//! stored access token is marked expired before the strike). Skipped without the PDS or chromedriver (unless
//! `PICKET_REQUIRE_SERVERS=1`).

use std::time::Duration;

use chrono::{SubsecRound, Utc};
use picket::store::AccountId;
use serde_json::{Value, json};

use crate::browser::with_browsers;
use crate::support::{
    Options, TestApp, eventually, posts_at_start, require_server, window_campaign,
};

/// A fresh account on the PDS, signed in with its main password on the PDS's page.
async fn create_account(pds: &str) -> (String, String) {
    let handle = format!("o{}.test", &hex::encode(rand::random::<[u8; 5]>()));
    let made: Value = reqwest::Client::new()
        .post(format!("{pds}/xrpc/com.atproto.server.createAccount"))
        .json(&json!({"handle": handle, "email": format!("{handle}@example.com"), "password": "main-password"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        handle,
        made["did"].as_str().expect("account created").to_string(),
    )
}

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

#[tokio::test]
async fn signing_in_with_bluesky_on_the_join_page_connects_the_account_and_its_post_lands_on_the_pds()
 {
    let Some(pds) = require_server("PICKET_TEST_PDS_URL") else {
        return;
    };
    if require_server("PICKET_TEST_CHROMEDRIVER").is_none() {
        return;
    }
    let (handle, did) = create_account(&pds).await;
    let start = (Utc::now() + chrono::Duration::seconds(60)).trunc_subsecs(0);
    let campaign = window_campaign(
        "oauth",
        start,
        start + chrono::Duration::hours(2),
        &posts_at_start(1, "30m"),
    )
    .replace(r#"networks = ["sandbox"]"#, r#"networks = ["bluesky"]"#);
    let site = TestApp::spawn(
        Options::joinable()
            .without_bundled()
            .config("allow_private_addresses = true")
            .campaign_file("campaign.toml", &campaign),
    )
    .await;
    let metadata: Value = site
        .get("/oauth/bluesky/client-metadata.json")
        .await
        .json()
        .await
        .unwrap();

    let mut connected = String::new();
    let mut joined = String::new();
    let mut authorize_host = String::new();
    with_browsers(async |browsers| {
        let b = browsers.open().await;
        b.goto(&site.url("/c/oauth/join")).await;
        b.fill("#name", "Bea").await;
        b.submit("form[action='/c/oauth/join'] button[type=submit]")
            .await;
        b.fill("#bo-handle", &handle).await;
        b.fill("#bo-service", &pds).await;
        b.submit("#connect-bluesky-oauth button[type=submit]").await;
        // The PDS's own sign-in page (a script app): the handle is filled from the
        // login hint; the password, then the consent.
        b.wait_until(
            "return !!document.querySelector('input[autocomplete=current-password]')",
            "the PDS's sign-in form",
        )
        .await;
        authorize_host = b.eval("return location.host").await.as_str().unwrap_or_default().to_string();
        b.fill("input[autocomplete=current-password]", "main-password")
            .await;
        b.click("button[type=submit]").await;
        b.wait_until(
            "return location.hash.includes('consent') && !!document.querySelector('button[type=submit]')",
            "the PDS's consent page",
        )
        .await;
        b.click("button[type=submit]").await;
        connected = b.text("#flash-ok").await;
        b.submit("#confirm-button").await;
        joined = b.text("#joined-summary").await;
    })
    .await;
    // The access token "expired" before the first post: the adapter must refresh the pair
    // (a DPoP-bound refresh at the token endpoint) and save it before posting.
    let state = site.state();
    let account = AccountId(1);
    let stored = async || -> Value {
        let a = state.store.get_account(account).await.unwrap().unwrap();
        serde_json::from_slice(&state.vault.open_for(account.0, &a.credentials).unwrap()).unwrap()
    };
    let mut creds = stored().await;
    let connected_creds = creds.clone();
    creds["oauth"]["expires_at"] = json!(1000);
    let sealed = state
        .vault
        .seal_for(account.0, creds.to_string().as_bytes());
    state
        .store
        .update_credentials(account, &sealed, Utc::now())
        .await
        .unwrap();
    let changed_at = Utc::now();
    let posts = eventually(
        Duration::from_secs(120),
        "the strike's post on the PDS",
        async || {
            let p = posts_on_pds(&pds, &did).await;
            (!p.is_empty()).then_some(p)
        },
    )
    .await;

    let saved = stored().await;

    assert!(
        changed_at < start,
        "joining took until {changed_at}, past the start"
    );
    assert_eq!(metadata["dpop_bound_access_tokens"], true);
    assert_eq!(connected_creds["app_password"], "");
    assert_eq!(connected_creds["did"], json!(did));
    assert!(connected_creds["oauth"]["dpop_key"].is_string());
    assert_ne!(saved["refresh_jwt"], connected_creds["refresh_jwt"]);
    assert_ne!(saved["access_jwt"], connected_creds["access_jwt"]);
    assert!(saved["oauth"]["expires_at"].as_i64().unwrap() > Utc::now().timestamp());
    // The PDS names itself `localhost` (its issuer), not the 127.0.0.1 picket was given.
    assert!(authorize_host.starts_with("localhost:"), "{authorize_host}");
    assert!(connected.contains(&handle), "{connected}");
    assert!(
        joined.contains("1 post(s) planned from 1 account(s)"),
        "{joined}"
    );
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(
        posts[0]["value"]["text"]
            .as_str()
            .is_some_and(|t| t.contains("#TestStrike")),
        "{posts:?}"
    );
}
