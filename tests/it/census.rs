//! The hashtag census end to end: the census task (`scheduler::census`) reading a real
//! Nostr relay (`PICKET_TEST_NOSTR_RELAY`), the Mastodon-API mock's tag timeline
//! (`PICKET_TEST_MASTODON_URL`; it serves `/api/v1/timelines/tag/{tag}` with `min_id`),
//! and a local imitation of a Bluesky AppView's `app.bsky.feed.searchPosts` (no AppView
//! runs here, and a PDS alone does not serve it), into a real store. Each test uses a
//! hashtag of its own, so the shared servers' other posts never count.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::routing::get;
use nostr::prelude::{EventBuilder, FinalizeEvent, Keys, Kind, Tag};
use picket::campaign::Campaign;
use picket::clock::SystemClock;
use picket::crypto::Vault;
use picket::domain::NetworkKind;
use picket::network::Http;
use picket::network::nostr::{npub, relay::send_event};
use picket::scheduler::census::CensusTask;
use picket::store::{
    self, AccountRoute, CensusTotals, NewAccount, NewParticipant, Sealed, StoreTooling,
};
use serde_json::{Value, json};

use crate::net_mastodon::Mock;
use crate::support::{Options, TestApp, eventually, require_server};

fn unique_tag() -> String {
    format!("Census{:08x}", rand::random::<u32>())
}

fn campaign(tag: &str, census: &str) -> Campaign {
    let src = format!(
        "id = \"census-test\"\ntitle = \"Census\"\nhashtag = \"{tag}\"\n\
         [strike]\ndays = [\"2027-07-04\"]\ntimezone = \"participant\"\n\
         [[posts]]\nname = \"n\"\nwhen = \"start\"\ntemplate = \"t\"\n\
         [templates]\nt = [\"On #{{{{ hashtag }}}}\"]\n[census]\n{census}\n"
    );
    picket::campaign::parse_str(&src, Path::new("census.toml")).expect("a valid campaign")
}

struct Setup {
    _dir: tempfile::TempDir,
    store: Arc<dyn StoreTooling>,
    task: CensusTask,
}

async fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("picket.db").display());
    let store = store::open_tooling(&url).await.unwrap();
    let task = CensusTask::new(Http::trusted(), Vault::from_key_bytes(&[5; 32]));
    Setup {
        _dir: dir,
        store,
        task,
    }
}

/// This host's own account on `network` with `handle` (a participant of picket's).
async fn own_account(store: &dyn StoreTooling, network: NetworkKind, handle: &str) {
    let now = chrono::Utc::now();
    let p = store
        .create_participant(
            &NewParticipant {
                name: "own".into(),
                email: None,
                email_canonical: None,
                tz: "UTC".parse().unwrap(),
                invited_by: None,
            },
            now,
        )
        .await
        .unwrap();
    store
        .add_account(
            &NewAccount {
                participant_id: p,
                network,
                handle: handle.parse().unwrap(),
                server: None,
                trusted: true,
                route: AccountRoute::Api,
            },
            &|_| Sealed::new(vec![1]),
            now,
        )
        .await
        .unwrap();
}

async fn publish(http: &Http, relay: &str, keys: &Keys, text: &str, tag: &str) {
    let ev = EventBuilder::new(Kind::TextNote, text)
        .tag(Tag::hashtag(tag))
        .finalize(keys)
        .unwrap();
    let answer = send_event(http, relay, &ev, Duration::from_secs(10)).await;
    assert_eq!(
        answer,
        picket::network::nostr::relay::RelayAnswer::Accepted,
        "the relay takes the note"
    );
}

#[tokio::test]
async fn the_census_counts_distinct_nostr_authors_beyond_picket_s_own_and_each_note_once() {
    let Some(relay) = require_server("PICKET_TEST_NOSTR_RELAY") else {
        return;
    };
    // Arrange: two strangers and one of picket's own participants use the tag; one note
    // carries another tag.
    let tag = unique_tag();
    let lower = tag.to_lowercase();
    let mut s = setup().await;
    let http = Http::trusted();
    let (a, b, own) = (Keys::generate(), Keys::generate(), Keys::generate());
    own_account(&*s.store, NetworkKind::Nostr, &npub(&own.public_key())).await;
    publish(&http, &relay, &a, "one", &lower).await;
    publish(&http, &relay, &a, "two", &lower).await;
    publish(&http, &relay, &b, "three", &lower).await;
    publish(&http, &relay, &own, "mine", &lower).await;
    publish(&http, &relay, &b, "elsewhere", "othertag").await;
    let c = campaign(&tag, &format!("nostr = [\"{relay}\"]"));
    let campaigns = vec![c];

    // Act: a round, then another with nothing new, then one after a newcomer posts.
    let first = s
        .task
        .round(s.store.as_ref(), &campaigns, &SystemClock)
        .await;
    let after_first = s.store.census_totals("census-test").await.unwrap();
    let second = s
        .task
        .round(s.store.as_ref(), &campaigns, &SystemClock)
        .await;
    publish(&http, &relay, &Keys::generate(), "newcomer", &lower).await;
    let third = s
        .task
        .round(s.store.as_ref(), &campaigns, &SystemClock)
        .await;

    // Assert
    assert_eq!((first.read, first.failed, first.new_posts), (1, 0, 4));
    assert_eq!(
        after_first,
        CensusTotals {
            posts: 4,
            authors: 3,
            beyond_posts: 3,
            beyond_authors: 2
        }
    );
    assert_eq!(
        (second.read, second.new_posts),
        (1, 0),
        "seen notes count once"
    );
    assert_eq!(third.new_posts, 1);
    let totals = s.store.census_totals("census-test").await.unwrap();
    assert_eq!((totals.authors, totals.beyond_authors), (4, 3));
    let hours = s.store.census_hours("census-test").await.unwrap();
    assert!(
        hours.iter().all(|h| h.network == NetworkKind::Nostr),
        "{hours:?}"
    );
    assert_eq!(hours.iter().map(|h| h.posts).sum::<i64>(), 5);
}

async fn post_status(server: &str, token: &str, text: &str) {
    let resp = reqwest::Client::new()
        .post(format!("{server}/api/v1/statuses"))
        .bearer_auth(token)
        .json(&json!({"status": text, "visibility": "public"}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "posting: {}", resp.status());
}

#[tokio::test]
async fn the_census_pages_a_mastodon_tag_timeline_and_counts_a_status_seen_on_two_servers_once() {
    let Some(server) = require_server("PICKET_TEST_MASTODON_URL") else {
        return;
    };
    // Arrange: two accounts post under the tag (five statuses, more than two pages of two),
    // one of them picket's own; the same server is listed under a second name, as one
    // status federates to several servers under one URI.
    let tag = unique_tag();
    let mock = Mock::new(&server).await;
    let (stranger, mine) = (mock.sign_up("cs").await, mock.sign_up("co").await);
    let (t1, t2) = (mock.token_for(&stranger).await, mock.token_for(&mine).await);
    for i in 0..3 {
        post_status(&server, &t1, &format!("Striking {i} #{tag}")).await;
    }
    for i in 0..2 {
        post_status(&server, &t2, &format!("Me too {i} #{tag}")).await;
    }
    post_status(&server, &t1, "No tag here").await;
    let mut s = setup().await;
    s.task.page = 2;
    let url = url::Url::parse(&server).unwrap();
    let port = url.port().unwrap();
    own_account(
        &*s.store,
        NetworkKind::Mastodon,
        &format!("{mine}@{}:{port}", url.host_str().unwrap()),
    )
    .await;
    let alias = format!("http://localhost:{port}");
    let campaigns = vec![campaign(
        &tag,
        &format!("mastodon = [\"{server}\", \"{alias}\"]"),
    )];

    // Act: a round, a round with nothing new, a new status, a third round.
    let first = s
        .task
        .round(s.store.as_ref(), &campaigns, &SystemClock)
        .await;
    let after_first = s.store.census_totals("census-test").await.unwrap();
    let second = s
        .task
        .round(s.store.as_ref(), &campaigns, &SystemClock)
        .await;
    post_status(&server, &t1, &format!("Day two #{tag}")).await;
    let third = s
        .task
        .round(s.store.as_ref(), &campaigns, &SystemClock)
        .await;

    // Assert
    assert_eq!((first.read, first.failed, first.new_posts), (2, 0, 5));
    assert_eq!(
        after_first,
        CensusTotals {
            posts: 5,
            authors: 2,
            beyond_posts: 3,
            beyond_authors: 1
        }
    );
    assert_eq!(
        (second.read, second.new_posts),
        (2, 0),
        "seen statuses count once"
    );
    assert_eq!(
        third.new_posts, 1,
        "the next poll reads on from the newest status"
    );
    let totals = s.store.census_totals("census-test").await.unwrap();
    assert_eq!((totals.posts, totals.beyond_posts), (6, 4));
}

/// The AppView imitation's state: its posts, newest first, and the queries it was asked.
#[derive(Default)]
struct AppView {
    posts: Vec<Value>,
    asked: Vec<Vec<(String, String)>>,
}

/// `GET /xrpc/app.bsky.feed.searchPosts` as its lexicon documents it
/// (https://github.com/bluesky-social/atproto/blob/main/lexicons/app/bsky/feed/searchPosts.json,
/// https://docs.bsky.app/docs/api/app-bsky-feed-search-posts): `q` required, `tag` (no
/// `#`) ANDed, `sort=latest`, `since` (inclusive), `limit` 1..=100, `cursor` an opaque
/// offset here; answers `{posts: [postView], cursor?}`.
async fn search_posts(
    State(view): State<Arc<Mutex<AppView>>>,
    Query(params): Query<Vec<(String, String)>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut view = view.lock().unwrap();
    view.asked.push(params.clone());
    let (Some(_q), Some(tag)) = (get("q"), get("tag")) else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "InvalidRequest", "message": "q and tag expected"})),
        )
            .into_response();
    };
    let limit: usize = get("limit").and_then(|l| l.parse().ok()).unwrap_or(25);
    let since = get("since").map(|s| chrono::DateTime::parse_from_rfc3339(&s).unwrap());
    let offset: usize = get("cursor").and_then(|c| c.parse().ok()).unwrap_or(0);
    let matching: Vec<Value> = view
        .posts
        .iter()
        .filter(|p| {
            p["record"]["tags"].as_array().is_some_and(|t| {
                t.iter()
                    .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(&tag)))
            })
        })
        .filter(|p| {
            since.is_none_or(|s| {
                chrono::DateTime::parse_from_rfc3339(p["indexedAt"].as_str().unwrap()).unwrap() >= s
            })
        })
        .cloned()
        .collect();
    let page: Vec<Value> = matching.iter().skip(offset).take(limit).cloned().collect();
    let mut answer = json!({"posts": page});
    if offset + limit < matching.len() {
        answer["cursor"] = json!((offset + limit).to_string());
    }
    axum::Json(answer).into_response()
}

fn post_view(n: u32, handle: &str, tag: &str, at: chrono::DateTime<chrono::Utc>) -> Value {
    let at = at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    json!({
        "uri": format!("at://did:plc:{handle}/app.bsky.feed.post/3k{n:04}"),
        "cid": format!("bafy{n}"),
        "author": {"did": format!("did:plc:{handle}"), "handle": format!("{handle}.test")},
        "record": {"$type": "app.bsky.feed.post", "text": format!("#{tag} {n}"), "createdAt": at, "tags": [tag]},
        "indexedAt": at,
    })
}

#[tokio::test]
async fn the_census_searches_a_bluesky_appview_by_tag_page_by_page_and_reads_on_from_the_newest() {
    // Arrange: an AppView with three posts under the tag (two authors, one of them
    // picket's own) and one under another.
    let tag = unique_tag();
    let now = chrono::Utc::now();
    let view = Arc::new(Mutex::new(AppView::default()));
    view.lock().unwrap().posts = vec![
        post_view(3, "carol", &tag, now - chrono::Duration::minutes(1)),
        post_view(2, "bob", &tag, now - chrono::Duration::minutes(2)),
        post_view(9, "bob", "OtherTag", now - chrono::Duration::minutes(2)),
        post_view(1, "carol", &tag, now - chrono::Duration::minutes(3)),
    ];
    let app = Router::new()
        .route("/xrpc/app.bsky.feed.searchPosts", get(search_posts))
        .with_state(view.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let appview = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut s = setup().await;
    s.task.page = 2;
    own_account(&*s.store, NetworkKind::Bluesky, "Bob.test").await;
    let campaigns = vec![campaign(&tag, &format!("bluesky_appview = \"{appview}\""))];

    // Act
    let first = s
        .task
        .round(s.store.as_ref(), &campaigns, &SystemClock)
        .await;
    let second = s
        .task
        .round(s.store.as_ref(), &campaigns, &SystemClock)
        .await;

    // Assert
    assert_eq!((first.read, first.failed, first.new_posts), (1, 0, 3));
    assert_eq!(second.new_posts, 0);
    assert_eq!(
        s.store.census_totals("census-test").await.unwrap(),
        CensusTotals {
            posts: 3,
            authors: 2,
            beyond_posts: 2,
            beyond_authors: 1
        }
    );
    let asked = view.lock().unwrap().asked.clone();
    let param =
        |q: &Vec<(String, String)>, k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(
        asked.len(),
        4,
        "two pages, then a search since the newest (less the overlap for late indexing), \
         again two pages: {asked:?}"
    );
    assert_eq!(param(&asked[0], "tag").as_deref(), Some(tag.as_str()));
    assert_eq!(param(&asked[0], "q"), Some(format!("#{tag}")));
    assert_eq!(param(&asked[0], "sort").as_deref(), Some("latest"));
    assert_eq!(param(&asked[1], "cursor").as_deref(), Some("2"));
    let since = param(&asked[2], "since").expect("the second round searches since the newest");
    let since = chrono::DateTime::parse_from_rfc3339(&since).unwrap();
    let newest = now - chrono::Duration::minutes(1);
    assert_eq!(
        (newest - since.with_timezone(&chrono::Utc)).num_minutes(),
        15,
        "{asked:?}"
    );
}

/// An AppView imitation on a port of its own, serving `posts`.
async fn appview_with(posts: Vec<Value>) -> (String, Arc<Mutex<AppView>>) {
    let view = Arc::new(Mutex::new(AppView {
        posts,
        asked: Vec::new(),
    }));
    let app = Router::new()
        .route("/xrpc/app.bsky.feed.searchPosts", get(search_posts))
        .with_state(view.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, view)
}

#[tokio::test]
async fn picket_serve_polls_the_census_sources_and_the_stats_json_shows_authors_per_hour_without_handles()
 {
    // Arrange: a campaign whose census reads an AppView with three posts by two authors.
    let tag = unique_tag();
    let now = chrono::Utc::now();
    let (appview, _view) = appview_with(vec![
        post_view(3, "dora", &tag, now),
        post_view(2, "erin", &tag, now),
        post_view(1, "dora", &tag, now),
    ])
    .await;
    let toml = format!(
        "id = \"census-test\"\ntitle = \"Census\"\nhashtag = \"{tag}\"\n\
         [strike]\ndays = [\"2027-07-04\"]\ntimezone = \"participant\"\n\
         [[posts]]\nname = \"n\"\nwhen = \"start\"\ntemplate = \"t\"\n\
         [templates]\nt = [\"On #{{{{ hashtag }}}}\"]\n\
         [census]\nbluesky_appview = \"{appview}\"\n"
    );

    // Act: picket serve starts; its census task polls at once.
    let app = TestApp::spawn(Options::default().campaign("census-test", &toml)).await;
    let stats: Value = eventually(
        Duration::from_secs(30),
        "the census in the stats",
        async || {
            let v: Value = app
                .get("/api/v1/campaigns/census-test/stats")
                .await
                .json()
                .await
                .map_err(|e| e.to_string())?;
            match v["census"]["totals"]["posts"].as_i64() {
                Some(3) => Ok(v),
                other => Err(format!("census posts so far: {other:?}")),
            }
        },
    )
    .await;

    // Assert
    let census = &stats["census"];
    assert_eq!(
        census["totals"],
        json!({"posts": 3, "authors": 2, "beyond_posts": 3, "beyond_authors": 2})
    );
    let hours = census["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 1, "{census}");
    assert_eq!(hours[0]["network"], "bluesky");
    assert_eq!(hours[0]["authors"], 2);
    let hour = chrono::DateTime::parse_from_rfc3339(hours[0]["hour"].as_str().unwrap()).unwrap();
    assert_eq!(
        hour.with_timezone(&chrono::Utc),
        picket::store::hour_of(now)
    );
    let text = stats.to_string();
    assert!(
        !text.contains("dora") && !text.contains("erin"),
        "no author is named: {text}"
    );
    let bundled: Value = app
        .get("/api/v1/campaigns/social-media-strike/stats")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        bundled["census"].is_null(),
        "a campaign without [census] has no census"
    );
}

#[tokio::test]
async fn a_failing_source_never_stops_the_others_and_rests_after_three_failed_polls() {
    // Arrange: a Mastodon server that is down (nothing listens on port 1), a Nostr
    // "relay" answering plain HTTP, and a working AppView.
    let tag = unique_tag();
    let (appview, _view) = appview_with(vec![post_view(1, "fay", &tag, chrono::Utc::now())]).await;
    let mut s = setup().await;
    let campaigns = vec![campaign(
        &tag,
        &format!(
            "mastodon = [\"http://127.0.0.1:1\"]\nnostr = [\"{}\"]\nbluesky_appview = \"{appview}\"",
            appview.replace("http://", "ws://")
        ),
    )];

    // Act: four rounds.
    let mut rounds = Vec::new();
    for _ in 0..4 {
        rounds.push(
            s.task
                .round(s.store.as_ref(), &campaigns, &SystemClock)
                .await,
        );
    }

    // Assert: the AppView is read every round; the broken two fail three times, then wait.
    let seen: Vec<_> = rounds
        .iter()
        .map(|r| (r.read, r.failed, r.waiting))
        .collect();
    assert_eq!(seen, vec![(1, 2, 0), (1, 2, 0), (1, 2, 0), (1, 0, 2)]);
    assert_eq!(rounds[0].new_posts, 1);
    assert_eq!(s.store.census_totals("census-test").await.unwrap().posts, 1);
}

/// A Mastodon-API tag timeline that says its rate limit is nearly spent: `remaining`
/// requests left, the window resetting in ten minutes (ISO 8601, as Mastodon sends it).
async fn nearly_limited_timeline(remaining: u32) -> (String, Arc<Mutex<u32>>) {
    let asked = Arc::new(Mutex::new(0u32));
    let counter = asked.clone();
    let app = Router::new().route(
        "/api/v1/timelines/tag/{tag}",
        get(move || {
            let counter = counter.clone();
            async move {
                let n = {
                    let mut c = counter.lock().unwrap();
                    *c += 1;
                    *c
                };
                let reset = (chrono::Utc::now() + chrono::Duration::minutes(10))
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let status = |id: u32| {
                    json!({
                        "id": id.to_string(),
                        "uri": format!("https://m.example/users/u{id}/statuses/{id}"),
                        "url": format!("https://m.example/@u{id}/{id}"),
                        "created_at": "2027-07-04T10:00:00.000Z",
                        "account": {"acct": format!("u{id}")},
                    })
                };
                (
                    [
                        ("x-ratelimit-limit", "300".to_string()),
                        ("x-ratelimit-remaining", remaining.to_string()),
                        ("x-ratelimit-reset", reset),
                    ],
                    axum::Json(json!([status(n * 2), status(n * 2 - 1)])),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, asked)
}

#[tokio::test]
async fn a_mastodon_server_whose_rate_limit_runs_low_is_left_alone_until_its_reset() {
    // Arrange: full pages keep coming, but only a few requests are left.
    let (server, asked) = nearly_limited_timeline(3).await;
    let mut s = setup().await;
    s.task.page = 2;
    let campaigns = vec![campaign(
        &unique_tag(),
        &format!("mastodon = [\"{server}\"]"),
    )];

    // Act
    let first = s
        .task
        .round(s.store.as_ref(), &campaigns, &SystemClock)
        .await;
    let second = s
        .task
        .round(s.store.as_ref(), &campaigns, &SystemClock)
        .await;

    // Assert: one page, then no request until the reset.
    assert_eq!((first.read, first.new_posts), (1, 2));
    assert_eq!((second.read, second.waiting), (0, 1));
    assert_eq!(*asked.lock().unwrap(), 1);
    let poll = picket::network::census::mastodon::poll(
        &Http::trusted(),
        &server,
        "tag",
        None,
        2,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    let pause = poll.pause.expect("a pause until the reset");
    assert!(
        pause > Duration::from_secs(9 * 60) && pause <= Duration::from_secs(10 * 60 + 5),
        "{pause:?}"
    );
    assert_eq!(poll.cursor.as_deref(), Some("4"));
}

#[tokio::test]
async fn a_restarted_census_reads_on_from_where_the_last_one_stopped() {
    // Arrange: an AppView with two tagged posts, read once by a census task.
    let tag = unique_tag();
    let now = chrono::Utc::now();
    let (appview, view) = appview_with(vec![
        post_view(2, "bob", &tag, now - chrono::Duration::minutes(1)),
        post_view(1, "carol", &tag, now - chrono::Duration::minutes(2)),
    ])
    .await;
    let s = setup().await;
    let campaigns = vec![campaign(&tag, &format!("bluesky_appview = \"{appview}\""))];
    let mut before = s.task;
    let first = before
        .round(s.store.as_ref(), &campaigns, &SystemClock)
        .await;

    // Act: a new task, as after a restart, over the same database.
    let mut after = CensusTask::new(Http::trusted(), Vault::from_key_bytes(&[5; 32]));
    let second = after
        .round(s.store.as_ref(), &campaigns, &SystemClock)
        .await;

    // Assert
    assert_eq!((first.new_posts, second.new_posts), (2, 0));
    let asked = view.lock().unwrap().asked.clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    let since = asked[1].iter().find(|(k, _)| k == "since");
    assert!(
        since.is_some(),
        "the restarted census searches since the newest post seen, not from the start: {asked:?}"
    );
}
