//! Engagement and reach end to end: the real `picket serve` publishes a notice, the
//! receiving server gets a like (and more) from another account, and the engagement task's
//! reads reach the stats: the API, `picket stats --format json|text|csv` and the stats
//! page, which must agree.
//!
//! Servers: `mastodon_mock` (a third-party imitation of the Mastodon API; what it keeps
//! and these tests use is documented Mastodon behaviour: `favourites_count`,
//! `reblogs_count` and `followers_count` after `POST /api/v1/statuses/:id/favourite`,
//! `/reblog` and `/api/v1/accounts/:id/follow`), the real Nostr relay, and the reference
//! Bluesky PDS, which has no AppView: there the read is recorded with its reason.
//!
//! The reads are set to a few seconds after posting (`engagement_first_secs`,
//! `engagement_again_secs`) so a test stays short.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::net_mastodon::Mock;
use crate::support::{Installation, Options, TestApp, eventually, require_server, rfc};

const ID: &str = "reach";

/// The first read 8 s after posting, the second 20 s after: long enough to like the
/// post before the first, short enough for a test.
const TIMING: &str = "[scheduler]\nlease_secs = 5\nrequest_timeout_secs = 5\nengagement_first_secs = 8\nengagement_again_secs = 20\nengagement_every_secs = 1\n";

fn campaign(hashtag: &str, network: &str, start: DateTime<Utc>) -> String {
    format!(
        r#"id = "{ID}"
title = "Reach"
hashtag = "{hashtag}"
networks = ["{network}"]

[strike]
windows = [{{ start = "{}", end = "{}" }}]

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

fn install(hashtag: &str, network: &str) -> Installation {
    let start = Utc::now() + chrono::Duration::seconds(3);
    Options::default()
        .without_bundled()
        .campaign(ID, &campaign(hashtag, network, start))
        .config(&format!(
            "public_url = \"https://picket.example.org\"\n{TIMING}"
        ))
        .key([9u8; 32])
        .log_level("debug")
        .install()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", hex::encode(rand::random::<[u8; 5]>()))
}

/// The stats' `reach` once `ready` accepts it.
async fn reach_when(app: &TestApp, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(60), what, async || {
        let reach = app.stats(ID).await["reach"].clone();
        if ready(&reach) { Ok(reach) } else { Err(reach) }
    })
    .await
}

/// `picket stats` in `format`, as text.
fn cli_stats(inst: &Installation, format: &str) -> String {
    let out = inst.run(&["stats", ID, "--format", format]);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The figure in the stats page's element `id`.
fn page_figure(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\">"))
        .unwrap_or_else(|| panic!("no #{id} on the page"));
    let rest = &html[at + id.len() + 6..];
    rest[..rest.find('<').unwrap()].to_string()
}

/// The API, `picket stats --format json`, the text, the CSV and the page agree on reach.
async fn views_agree(inst: &Installation, app: &TestApp, network: &str) -> Value {
    let api = app.stats(ID).await;
    let cli: Value = serde_json::from_str(&cli_stats(inst, "json")).unwrap();
    assert_eq!(cli["reach"], api["reach"], "CLI and API");
    let r = &api["reach"];
    let text = cli_stats(inst, "text");
    let followers = r["followers"]
        .as_u64()
        .map_or("unknown".to_string(), |f| f.to_string());
    assert!(
        text.contains(&format!(
            "Reach       {followers} followers over {} posts; {} likes, {} reposts, {} replies",
            r["posts_with_followers"], r["likes"], r["reposts"], r["replies"]
        )),
        "{text}"
    );
    let csv = cli_stats(inst, "csv");
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let head = rows.headers().unwrap().clone();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap();
    let (mut likes, mut reposts) = (0, 0);
    for row in rows.records() {
        let row = row.unwrap();
        if &row[0] == network {
            likes += row[col("likes")].parse::<u64>().unwrap();
            reposts += row[col("reposts")].parse::<u64>().unwrap();
        }
    }
    assert_eq!(
        json!([likes, reposts]),
        json!([r["likes"], r["reposts"]]),
        "CSV: {csv}"
    );
    let html = app
        .get(&format!("/c/{ID}/stats"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(page_figure(&html, "reach-likes"), r["likes"].to_string());
    assert_eq!(
        page_figure(&html, "reach-reposts"),
        r["reposts"].to_string()
    );
    assert_eq!(page_figure(&html, "reach-followers"), followers);
    api
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_favourite_and_a_boost_on_the_mastodon_api_server_reach_every_view_of_the_stats() {
    let Some(url) = require_server("PICKET_TEST_MASTODON_URL") else {
        return;
    };
    // Arrange: a poster with one follower; a fan who will favourite and boost the notice.
    let mock = Mock::new(&url).await;
    let http = reqwest::Client::new();
    let poster = mock.sign_up("poster").await;
    let token = mock.token_for(&poster).await;
    let fan = mock.token_for(&mock.sign_up("fan").await).await;
    let late_fan = mock.token_for(&mock.sign_up("late").await).await;
    let me: Value = http
        .get(format!("{url}/api/v1/accounts/verify_credentials"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let followed = http
        .post(format!(
            "{url}/api/v1/accounts/{}/follow",
            me["id"].as_str().unwrap()
        ))
        .bearer_auth(&fan)
        .send()
        .await
        .unwrap();
    assert!(
        followed.status().is_success(),
        "follow: {}",
        followed.status()
    );
    let hashtag = unique("Reach");
    let inst = install(&hashtag, "mastodon");
    let account = inst.add_account(&["mastodon", "--server", &url, "--token", &token]);
    inst.run(&["join", ID, "--account", &account.to_string()]);

    // Act: the notice goes out; the fan favourites and boosts it before the first read.
    let app = inst.serve().await;
    let status = eventually(
        Duration::from_secs(60),
        "the notice on the server",
        async || {
            mock.tagged(&hashtag)
                .await
                .into_iter()
                .next()
                .ok_or("not yet")
        },
    )
    .await;
    let id = status["id"].as_str().unwrap();
    for action in ["favourite", "reblog"] {
        let r = http
            .post(format!("{url}/api/v1/statuses/{id}/{action}"))
            .bearer_auth(&fan)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{action}: {}", r.status());
    }
    let first = reach_when(&app, "the first read's counts", |r| r["read"] == 1).await;
    // A like after the first read shows only once the post is read again.
    let liked = http
        .post(format!("{url}/api/v1/statuses/{id}/favourite"))
        .bearer_auth(&late_fan)
        .send()
        .await
        .unwrap();
    assert!(liked.status().is_success());
    let second = reach_when(&app, "the second read's counts", |r| r["likes"] == 2).await;

    // Assert
    assert_eq!(
        (&first["likes"], &first["reposts"], &first["replies"]),
        (&json!(1), &json!(1), &json!(0)),
        "{first}"
    );
    assert_eq!(
        first["followers"], 1,
        "one follower at posting time: {first}"
    );
    assert_eq!(
        second["followers"], 1,
        "followers are the first read's: {second}"
    );
    assert_eq!(second["by_network"][0]["network"], "mastodon");
    assert_eq!(second["unreadable"], 0);
    views_agree(&inst, &app, "mastodon").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reaction_on_the_nostr_relay_is_counted_and_nostr_followers_are_unknown_not_zero() {
    use nostr::prelude::{EventBuilder, EventId, FinalizeEvent, Keys, Kind, Tag, ToBech32};
    use picket::network::nostr::{RelayAnswer, send_event};
    let Some(relay) = require_server("PICKET_TEST_NOSTR_RELAY") else {
        return;
    };
    // Arrange
    let keys = Keys::generate();
    let nsec = keys.secret_key().to_bech32().unwrap();
    let inst = install("ReachNostr", "nostr");
    let account = inst.add_account(&["nostr", "--relay", &relay, "--nsec", &nsec]);
    inst.run(&["join", ID, "--account", &account.to_string()]);

    // Act: the note goes out; someone reacts to it on the relay.
    let app = inst.serve().await;
    let store = inst.store().await;
    let note = published_id(store.as_ref()).await;
    let reaction = EventBuilder::new(Kind::Reaction, "+")
        .tag(Tag::event(EventId::from_hex(&note).unwrap()))
        .finalize(&Keys::generate())
        .unwrap();
    let egress = picket::network::Egress::new(false);
    assert_eq!(
        send_event(egress.trusted(), &relay, &reaction, Duration::from_secs(5)).await,
        RelayAnswer::Accepted
    );
    let reach = reach_when(&app, "the reaction counted", |r| r["likes"] == 1).await;

    // Assert
    assert!(reach["followers"].is_null(), "unknown, not 0: {reach}");
    assert_eq!(reach["posts_with_followers"], 0);
    assert_eq!(reach["by_network"][0]["network"], "nostr");
    views_agree(&inst, &app, "nostr").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pds_without_an_appview_has_its_read_recorded_as_unreadable_and_not_tried_again() {
    let Some(pds) = require_server("PICKET_TEST_PDS_URL") else {
        return;
    };
    // Arrange: a post on the reference PDS, liked from a second account. The PDS alone
    // keeps the like in the liker's repository but counts nothing (no AppView).
    let poster = crate::net_bluesky::create_account(&pds).await;
    let liker = crate::net_bluesky::create_account(&pds).await;
    let inst = install("ReachBluesky", "bluesky");
    let account = inst.add_account(&[
        "bluesky",
        "--handle",
        &poster.handle,
        "--app-password",
        &poster.app_password,
        "--service",
        &pds,
    ]);
    inst.run(&["join", ID, "--account", &account.to_string()]);

    // Act
    let app = inst.serve().await;
    let store = inst.store().await;
    let uri = published_id(store.as_ref()).await;
    let session: Value = reqwest::Client::new()
        .post(format!("{pds}/xrpc/com.atproto.server.createSession"))
        .json(&json!({"identifier": liker.handle, "password": liker.app_password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cid = uri_cid(&pds, &uri).await;
    let liked = reqwest::Client::new()
        .post(format!("{pds}/xrpc/com.atproto.repo.createRecord"))
        .bearer_auth(session["accessJwt"].as_str().unwrap())
        .json(
            &json!({"repo": liker.did, "collection": "app.bsky.feed.like", "record": {
            "$type": "app.bsky.feed.like", "createdAt": rfc(Utc::now()),
            "subject": {"uri": uri, "cid": cid}}}),
        )
        .send()
        .await
        .unwrap();
    assert!(liked.status().is_success(), "like: {}", liked.status());
    let reach = reach_when(&app, "the read recorded", |r| r["unreadable"] == 1).await;
    // Real time on purpose: a read refused for good must not be tried again, so the
    // round after the next must find nothing due.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let log = inst.log();

    // Assert
    assert_eq!(reach["read"], 0, "{reach}");
    assert!(reach["followers"].is_null());
    assert_eq!(
        log.matches("engagement: a post could not be read").count(),
        1,
        "read once, not retried: {log}"
    );
    views_agree(&inst, &app, "bluesky").await;
}

/// The CID of the record `uri` on `pds` (a like names the exact version it likes).
async fn uri_cid(pds: &str, uri: &str) -> String {
    let parts: Vec<&str> = uri.trim_start_matches("at://").split('/').collect();
    let v: Value = reqwest::get(format!(
        "{pds}/xrpc/com.atproto.repo.getRecord?repo={}&collection={}&rkey={}",
        parts[0], parts[1], parts[2]
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    v["cid"].as_str().unwrap().to_string()
}

/// The network's id of the local participant's notice, once it is published.
async fn published_id(store: &dyn picket::store::Store) -> String {
    let me = store
        .ensure_local_participant("me", picket::domain::Zone::UTC, Utc::now())
        .await
        .unwrap();
    eventually(
        Duration::from_secs(60),
        "the notice published",
        async || {
            let rows = store
                .outbox_for(me, Some(ID))
                .await
                .map_err(|e| e.to_string())?;
            rows.into_iter()
                .find(|r| r.state == picket::store::OutboxState::Published)
                .and_then(|r| r.remote_id)
                .ok_or_else(|| "not yet".to_string())
        },
    )
    .await
}
