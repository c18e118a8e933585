//! The organiser's figures agree everywhere: a compressed strike (published, failed,
//! missed, reminded and posted-by-hand notices, joins through invitations, signatures),
//! then `picket stats --format json`, the stats API, `--format csv`, the stats page and
//! `picket export posts|signatures` (CSV and JSON) compared with each other and with what
//! the sandbox receiver got.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use picket::clock::{Clock, ManualClock};
use picket::domain::NetworkKind;
use picket::network::{AccountRef, Network, OutgoingPost, PublishError, Receipt};
use picket::participation::tap::{Confirmer, confirm_posted};
use picket::store::{AccountRoute, NewAccount, NewParticipant, OutboxState, ParticipantId};

use crate::support::{
    Installation, Options, TestApp, World, eventually, fast_settings, posts_at_start,
};

const ID: &str = "tally";

/// The sandbox, except that it refuses the posts of accounts named `cy*` for good and is
/// down for those of `bo*`: a failed and a missed post beside published ones.
struct Picky(Arc<dyn Network>);

#[async_trait::async_trait]
impl Network for Picky {
    fn kind(&self) -> NetworkKind {
        self.0.kind()
    }
    fn measure(&self, account: &AccountRef, text: &str) -> picket::compose::Measure {
        self.0.measure(account, text)
    }
    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        if account.handle.starts_with("cy") {
            Err(PublishError::rejected("the server refused this notice"))
        } else if account.handle.starts_with("bo") {
            Err(PublishError::retry("the server is down"))
        } else {
            self.0.publish(account, post).await
        }
    }
}

async fn person(world: &World, name: &str, invited_by: Option<&str>) -> (ParticipantId, String) {
    let id = world
        .store
        .create_participant(
            &NewParticipant {
                name: name.into(),
                tz: "UTC".parse().unwrap(),
                invited_by: invited_by.map(Into::into),
                ..Default::default()
            },
            world.clock.now(),
        )
        .await
        .unwrap();
    let code = world
        .store
        .get_participant(id)
        .await
        .unwrap()
        .unwrap()
        .invite_code;
    (id, code)
}

/// `picket stats` over the world's database and campaigns.
fn cli(install: &Installation, format: &str) -> String {
    let out = install.run(&["stats", ID, "--format", format]);
    String::from_utf8(out.stdout).unwrap()
}

/// `picket export WHAT` of the campaign as CSV and as JSON, each as JSON rows (CSV cells
/// are strings), checked to hold the same rows.
fn exports(install: &Installation, what: &str) -> Vec<serde_json::Value> {
    let run = |format: &str| {
        let out = install.run(&["export", what, ID, "--format", format]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let json: Vec<serde_json::Value> = serde_json::from_str(&run("json")).unwrap();
    let csv = run("csv");
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let header = rows.headers().unwrap().clone();
    let from_csv: Vec<serde_json::Value> = rows
        .records()
        .map(|r| {
            let r = r.unwrap();
            header
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_string(), serde_json::Value::from(v)))
                .collect::<serde_json::Map<_, _>>()
                .into()
        })
        .collect();
    assert_eq!(
        from_csv.len(),
        json.len(),
        "{what}: CSV and JSON rows\n{csv}"
    );
    for (c, j) in from_csv.iter().zip(&json) {
        for (key, cell) in c.as_object().unwrap() {
            let as_text = match &j[key] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let cell = cell.as_str().unwrap();
            if key.ends_with("_at") {
                // The CSV writes instants to the second, the JSON in full.
                let a = chrono::DateTime::parse_from_rfc3339(cell).ok();
                let b = chrono::DateTime::parse_from_rfc3339(&as_text).ok();
                assert_eq!(
                    a.map(|a| a.timestamp()),
                    b.map(|b| b.timestamp()),
                    "{what} {key}"
                );
            } else {
                assert_eq!(cell, as_text, "{what}: {key} differs between CSV and JSON");
            }
        }
    }
    json
}

/// The text of the element with `id` on a page (first `>` to the next `<`).
fn by_id(html: &str, id: &str) -> u64 {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id}"));
    let rest = &html[at..];
    let from = rest.find('>').unwrap() + 1;
    let to = rest[from..].find('<').unwrap();
    rest[from..from + to].trim().parse().unwrap()
}

#[tokio::test]
async fn stats_agree_across_the_command_line_the_api_the_csv_the_page_and_the_receiver() {
    // Arrange: a two-hour strike that began three hours ago, replayed on a manual clock.
    let t = Utc::now() - chrono::Duration::hours(3);
    let clock = ManualClock::new(t - chrono::Duration::minutes(1));
    let toml = crate::support::window_campaign(
        ID,
        t,
        t + chrono::Duration::hours(2),
        &posts_at_start(1, "10m"),
    )
    .replace(
        r#"networks = ["sandbox"]"#,
        r#"networks = ["sandbox", "x"]"#,
    );
    let world = World::new(&toml, Arc::new(clock.clone())).await;
    // Who brought whom: ann -> bo -> cy -> di.
    let (ann, ann_code) = person(&world, "ann", None).await;
    let (bo, bo_code) = person(&world, "bo", Some(&ann_code)).await;
    let (cy, cy_code) = person(&world, "cy", Some(&bo_code)).await;
    let (di, _) = person(&world, "di", Some(&cy_code)).await;
    for (who, name, n) in [(ann, "ann", 2), (bo, "bo", 1), (cy, "cy", 1)] {
        let mut accounts = Vec::new();
        for i in 0..n {
            let token = crate::support::token(name, i);
            accounts.push(
                world
                    .store
                    .add_account(
                        &NewAccount {
                            participant_id: who,
                            network: NetworkKind::Sandbox,
                            handle: format!("{name}-{i}").parse().unwrap(),
                            server: Some(world.receiver_url.clone()),
                            trusted: true,
                            route: AccountRoute::Api,
                        },
                        &|id| world.vault.seal_for(id.0, token.as_bytes()),
                        world.clock.now(),
                    )
                    .await
                    .unwrap(),
            );
        }
        world.pledge(who, &accounts).await;
    }
    let mut taps = Vec::new();
    for i in 0..2 {
        taps.push(
            world
                .store
                .add_account(
                    &NewAccount {
                        participant_id: di,
                        network: NetworkKind::X,
                        handle: format!("@di{i}").parse().unwrap(),
                        server: None,
                        trusted: false,
                        route: AccountRoute::Tap,
                    },
                    &|_| panic!("a tap-to-post account has nothing to seal"),
                    world.clock.now(),
                )
                .await
                .unwrap(),
        );
    }
    world.pledge(di, &taps).await;
    let sandbox = crate::support::networks()
        .get(NetworkKind::Sandbox)
        .unwrap()
        .clone();
    let dispatcher = world.dispatcher_with(
        fast_settings(),
        crate::support::networks().with(Arc::new(Picky(sandbox))),
    );

    // Act: the strike starts; one tap notice is posted by hand; the window closes.
    clock.set(t);
    dispatcher.step().await.unwrap();
    let di_rows = world.store.outbox_for(di, Some(ID)).await.unwrap();
    assert!(
        di_rows.iter().all(|r| r.state == OutboxState::Reminded),
        "{di_rows:?}"
    );
    confirm_posted(
        world.store.as_ref(),
        Confirmer::Participant(di, di_rows[0].id),
        None,
        clock.now(),
    )
    .await
    .unwrap();
    clock.set(t + chrono::Duration::minutes(12));
    dispatcher.step().await.unwrap();
    assert_eq!(world.unfinished().await, 0);
    clock.set(Utc::now());
    let app = TestApp::spawn(
        Options::default()
            .over(&world)
            .clock(Arc::new(clock.clone())),
    )
    .await;
    // Eve signs through the API; Fay follows ann's invitation link and signs the form.
    let signed = app
        .post_json(
            &format!("/api/v1/campaigns/{ID}/signatures"),
            &serde_json::json!({"name": "Eve"}),
        )
        .await;
    assert!(signed.status().is_success(), "{}", signed.status());
    let fay = app.visitor();
    let landed = fay.get(&format!("/i/{ann_code}")).await;
    assert_eq!(landed.status, 303, "{}", landed.html);
    let form = fay.get(&format!("/c/{ID}")).await;
    assert_eq!(form.field("ref"), ann_code, "the link is remembered");
    let signed = fay
        .post(
            &format!("/c/{ID}/sign"),
            &[
                ("csrf", &form.field("csrf")),
                ("ref", &form.field("ref")),
                ("name", "Fay"),
                ("consent", "on"),
            ],
        )
        .await;
    assert!(signed.status.is_success(), "{}", signed.html);
    let api = eventually(
        Duration::from_secs(10),
        "both signatures counted",
        async || {
            let s = app.stats(ID).await;
            if s["signatures"] == 2 {
                Ok(s)
            } else {
                Err(s.to_string())
            }
        },
    )
    .await;
    let install = Options::default().over(&world).install();
    let json: serde_json::Value = serde_json::from_str(&cli(&install, "json")).unwrap();
    let csv = cli(&install, "csv");
    let text = cli(&install, "text");
    let signers = exports(&install, "signatures");
    let ledger = exports(&install, "posts");
    let page = app.get(&format!("/c/{ID}/stats")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let campaign_page = app.get(&format!("/c/{ID}")).await.text().await.unwrap();

    // Assert: the command line and the API give the very same figures ...
    assert_eq!(json, api, "picket stats --format json and the API differ");
    // ... and as the exports: the signatures, confirmed or waiting, and who came through
    // a link; the published-posts ledger, by picket and by hand, network by network.
    let count = |rows: &[serde_json::Value], key: &str, value: serde_json::Value| {
        rows.iter().filter(|r| r[key] == value).count() as u64
    };
    assert_eq!(count(&signers, "confirmed", true.into()), api["signatures"]);
    assert_eq!(
        count(&signers, "confirmed", false.into()),
        api["signatures_awaiting_confirmation"]
    );
    let through_links = signers
        .iter()
        .filter(|r| r["confirmed"] == true && r["invited_by"].is_string())
        .count() as u64;
    assert_eq!(through_links, api["invitations"]);
    assert_eq!(
        count(&ledger, "state", "published".into()),
        api["posts"]["published"]
    );
    assert_eq!(
        count(&ledger, "state", "posted_by_hand".into()),
        api["posts"]["posted_by_hand"]
    );
    for network in api["accounts_by_network"].as_object().unwrap().keys() {
        let (mut published, mut by_hand) = (0, 0);
        for h in api["posts"]["by_network_hour"].as_array().unwrap() {
            if h["network"] == network.as_str() {
                published += h["published"].as_u64().unwrap();
                by_hand += h["posted_by_hand"].as_u64().unwrap();
            }
        }
        let in_ledger = |state: &str| {
            ledger
                .iter()
                .filter(|r| r["network"] == network.as_str() && r["state"] == state)
                .count() as u64
        };
        assert_eq!(in_ledger("published"), published, "{network}: published");
        assert_eq!(in_ledger("posted_by_hand"), by_hand, "{network}: by hand");
    }
    assert!(
        ledger
            .iter()
            .filter(|r| r["state"] == "published")
            .all(|r| r["link"].is_string()),
        "every published post has its link: {ledger:?}"
    );
    assert!(api["reach"].is_null(), "the sandbox's posts are not read");
    // ... which are what happened, and what the receiver got.
    let received = world.receiver.report().created;
    let posts = &api["posts"];
    assert_eq!(received, 2, "ann's two accounts published once each");
    assert_eq!(posts["published"], received);
    assert_eq!(posts["failed"], 1, "{posts}");
    assert_eq!(posts["missed"], 1, "{posts}");
    assert_eq!(posts["posted_by_hand"], 1, "{posts}");
    assert_eq!(posts["reminded"], 1, "{posts}");
    assert_eq!(posts["scheduled"], 0, "{posts}");
    let reasons: Vec<(&str, &str)> = posts["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["state"].as_str().unwrap(), r["reason"].as_str().unwrap()))
        .collect();
    assert!(
        reasons
            .iter()
            .any(|(s, r)| *s == "failed" && r.contains("refused this notice")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|(s, _)| *s == "missed"), "{reasons:?}");
    assert_eq!(api["strikers"], 4);
    assert_eq!(api["striking"]["done"], 4, "the strike is over for all");
    assert_eq!(api["striking"]["now"], 0);
    assert_eq!(api["accounts_by_network"]["sandbox"], 4);
    assert_eq!(api["accounts_by_network"]["x"], 2);
    assert_eq!(api["invitations"], 1, "Fay came through ann's link");
    assert_eq!(api["invitation_tree"]["invited"], 4);
    assert_eq!(api["invitation_tree"]["depth"], 3);
    assert_eq!(api["time_zones"][0]["participants"], 4);
    assert!(api["census"].is_null());
    // The CSV's rows per network and hour add up to the same totals.
    let mut rows = csv::Reader::from_reader(csv.as_bytes());
    let header = rows.headers().unwrap().clone();
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let (mut published, mut by_hand, mut failed, mut missed, mut lines) = (0, 0, 0, 0, 0);
    let hour = t.format("%H").to_string().parse::<u64>().unwrap();
    for r in rows.records() {
        let r = r.unwrap();
        let n = |name: &str| r[col(name)].parse::<u64>().unwrap();
        assert_eq!(n("hour_utc"), hour, "every slot was at the strike's start");
        published += n("published");
        by_hand += n("posted_by_hand");
        failed += n("failed");
        missed += n("missed");
        lines += 1;
    }
    assert_eq!(
        lines, 2,
        "one row per network and hour: sandbox and x\n{csv}"
    );
    assert_eq!((published, by_hand, failed, missed), (2, 1, 1, 1), "{csv}");
    // The page shows the same figures, names nobody, and is linked from the campaign.
    for (id, value) in [
        ("signatures", &api["signatures"]),
        ("strikers", &api["strikers"]),
        ("published", &posts["published"]),
        ("posted-by-hand", &posts["posted_by_hand"]),
        ("failed", &posts["failed"]),
        ("missed", &posts["missed"]),
        ("invitations", &api["invitations"]),
        ("depth", &api["invitation_tree"]["depth"]),
        ("done", &api["striking"]["done"]),
    ] {
        assert_eq!(by_id(&html, id), value.as_u64().unwrap(), "#{id}");
    }
    for name in ["ann", "Eve", "Fay", "@di0", "bo-0"] {
        assert!(!html.contains(name), "the stats page names {name}");
    }
    assert!(html.contains("<svg"), "charts are drawn on the server");
    assert!(
        html.split("<script")
            .skip(1)
            .all(|s| s.starts_with(" src=")),
        "no inline script"
    );
    assert!(
        text.contains("2 published by picket, 1 posted by hand"),
        "{text}"
    );
    assert!(campaign_page.contains(&format!("href=\"/c/{ID}/stats\"")));
}

#[tokio::test]
async fn the_stats_page_of_an_unknown_campaign_is_a_404_and_the_page_keeps_the_strict_csp() {
    let app = TestApp::spawn(Options::default()).await;

    let missing = app.get("/c/no-such-campaign/stats").await;
    let page = app
        .get(&format!("/c/{}/stats", crate::support::BUNDLED))
        .await;

    assert_eq!(missing.status(), 404);
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("style-src 'self'"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("<svg"), "{html}");
    assert!(
        !html.contains(" style="),
        "no inline style: the CSP would block it"
    );
    assert!(
        html.contains("Not configured on this host"),
        "the census is not faked"
    );
}

/// One line's value in a Prometheus text answer, by its name and labels exactly.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_posts_by_campaign_and_network_and_how_late_each_went_out() {
    // Arrange: a campaign whose two notices go out a few seconds from now, and a
    // participant with a sandbox account.
    let now = Utc::now();
    let app = TestApp::spawn(Options::joinable().campaign(
        "soon",
        &crate::support::window_campaign(
            "soon",
            now + chrono::Duration::seconds(5),
            now + chrono::Duration::hours(2),
            &posts_at_start(2, "30m"),
        ),
    ))
    .await;
    let before = app.get("/metrics").await.text().await.unwrap();
    let visitor = app.visitor();
    let step2 = visitor.join_with_sandbox("soon", &[("tz", "UTC")]).await;
    let joined = visitor.confirm("soon", &step2).await;
    assert_eq!(joined.status, 200, "{}", joined.html);

    // Act
    eventually(
        Duration::from_secs(60),
        "both notices received",
        async || {
            let n = app.sandbox().report().created;
            if n >= 2 { Ok(()) } else { Err(n) }
        },
    )
    .await;
    let metrics = eventually(
        Duration::from_secs(10),
        "metrics with both posts",
        async || {
            let text = app.get("/metrics").await.text().await.unwrap();
            let published = metric(
                &text,
                "picket_network_posts{campaign=\"soon\",network=\"sandbox\",state=\"published\"}",
            );
            if published == Some(2.0) {
                Ok(text)
            } else {
                Err(format!("{published:?}"))
            }
        },
    )
    .await;

    // Assert
    let api = app.stats("soon").await;
    let series = |s: &str| metric(&metrics, s).unwrap_or_else(|| panic!("no {s} in\n{metrics}"));
    assert_eq!(
        metric(&before, "picket_dispatch_lateness_seconds_count"),
        Some(0.0),
        "{before}"
    );
    assert_eq!(series("picket_dispatch_lateness_seconds_count"), 2.0);
    assert_eq!(
        series("picket_dispatch_lateness_seconds_bucket{le=\"+Inf\"}"),
        2.0
    );
    assert_eq!(
        series("picket_dispatch_lateness_seconds_bucket{le=\"60\"}"),
        2.0,
        "no jitter, no retry: on time\n{metrics}"
    );
    assert!(metrics.contains("# TYPE picket_dispatch_lateness_seconds histogram"));
    for state in ["failed", "missed", "scheduled"] {
        assert_eq!(
            series(&format!(
                "picket_network_posts{{campaign=\"soon\",network=\"sandbox\",state=\"{state}\"}}"
            )),
            0.0,
            "{state}"
        );
    }
    assert_eq!(
        series("picket_signatures{campaign=\"soon\"}"),
        api["signatures"].as_f64().unwrap()
    );
    assert_eq!(
        series("picket_signatures_awaiting_confirmation{campaign=\"soon\"}"),
        api["signatures_awaiting_confirmation"].as_f64().unwrap()
    );
    assert!(
        !metrics.contains("network=\"mastodon\""),
        "only networks with posts: {metrics}"
    );
}
