//! One bad row never stops a long-running task: the planner skips a pledge it cannot plan
//! (and records why), the dispatcher records a post whose sending panicked as failed, the
//! verifier skips an account whose check panicked; the others go on. And a clean shutdown
//! gives up the planner lease, so a restarted `picket serve` plans at once. The engagement
//! reads record a read that panics or cannot open its account, and read the others.

use std::sync::Arc;
use std::time::Duration;

use sqlx::Connection;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use picket::clock::SystemClock;
use picket::domain::NetworkKind;
use picket::network::{
    AccountRef, Identity, Network, Networks, OutgoingPost, PublishError, Receipt,
};
use picket::scheduler::{planner, verify};
use picket::store::{NewPledge, OutboxState, ParticipantId, PlannedPost, PledgeId};

use crate::support::{
    Installation, Options, TestApp, World, eventually, fast_settings, window_campaign,
};

/// A campaign with a notice at the start of a window and an optional hourly one.
fn campaign(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    window_campaign(
        "steady",
        start,
        end,
        "[[posts]]\nname = \"notice\"\nwhen = \"start\"\ntemplate = \"notice\"\nwindow = \"30m\"\n\n\
         [[posts]]\nname = \"hourly\"\nwhen = \"every 1h\"\ntemplate = \"notice\"\noptional = true\n",
    )
}

/// A pledge with the given stored values, written straight into the store as a row edited
/// by hand (or by an older picket) would be: nothing checks them on the way in.
async fn stored_pledge(
    world: &World,
    name: &str,
    tz: &str,
    days: Option<Vec<chrono::NaiveDate>>,
    every_secs: Option<i64>,
) -> (ParticipantId, PledgeId) {
    let (who, accounts) = world.participant(name, 1).await;
    let pledge = world
        .store
        .upsert_pledge(
            &NewPledge {
                participant_id: who,
                campaign_id: world.campaign.id.clone(),
                tz: picket::domain::Zone::UTC,
                days,
                every_secs,
                account_ids: accounts,
            },
            world.clock.now(),
        )
        .await
        .unwrap();
    if tz != "UTC" {
        // The store takes only zones that read, so a bad one is written as a hand edit would.
        let mut db = sqlx::SqliteConnection::connect(&world.db_url)
            .await
            .unwrap();
        sqlx::query("UPDATE pledges SET tz = $1 WHERE id = $2")
            .bind(tz)
            .bind(pledge.0)
            .execute(&mut db)
            .await
            .unwrap();
    }
    (who, pledge)
}

/// What the planner recorded for a pledge, read from the row itself: a pledge whose zone
/// does not read cannot be loaded through the store.
async fn plan_error(world: &World, pledge: PledgeId) -> Option<String> {
    let mut db = sqlx::SqliteConnection::connect(&world.db_url)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT plan_error FROM pledges WHERE id = $1")
        .bind(pledge.0)
        .fetch_one(&mut db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_pledge_with_absurd_stored_values_is_skipped_with_its_reason_and_the_others_are_planned()
{
    // Arrange: the cadence of the report (960 × "100000d"), one past chrono's range, an
    // unknown zone, a day the campaign does not have; and one good pledge after them.
    let now = Utc::now();
    let world = World::new(
        &campaign(
            now + chrono::Duration::hours(1),
            now + chrono::Duration::hours(4),
        ),
        Arc::new(SystemClock),
    )
    .await;
    let day = chrono::NaiveDate::from_ymd_opt(2031, 1, 1).unwrap();
    let bad = [
        stored_pledge(&world, "huge", "UTC", None, Some(100_000 * 960 * 86_400)).await,
        stored_pledge(&world, "max", "UTC", None, Some(i64::MAX)).await,
        stored_pledge(&world, "zone", "Mars/Olympus_Mons", None, None).await,
        stored_pledge(&world, "day", "UTC", Some(vec![day]), None).await,
    ];
    let (good, _) = stored_pledge(&world, "good", "UTC", None, Some(3600)).await;

    // Act
    let applied = planner::plan_campaign(
        world.store.as_ref(),
        &world.campaign,
        chrono::Duration::zero(),
        world.clock.now(),
    )
    .await;

    // Assert
    let applied = applied.expect("planning goes on past the bad pledges");
    let good_rows = world
        .store
        .outbox_for(good, Some(&world.campaign.id))
        .await
        .unwrap();
    assert_eq!(
        good_rows.len(),
        4,
        "the notice and three hourly posts: {good_rows:?}"
    );
    assert_eq!(applied.upserted, 4);
    for (who, pledge) in bad {
        let rows = world.store.outbox_for(who, None).await.unwrap();
        assert!(rows.is_empty(), "{rows:?}");
        assert!(
            plan_error(&world, pledge).await.is_some(),
            "pledge {pledge} records why it was not planned"
        );
    }
    let zone = plan_error(&world, bad[2].1).await.unwrap();
    assert!(zone.contains("Mars/Olympus_Mons"), "{zone}");
    assert!(
        matches!(
            world.store.get_pledge(bad[2].1).await,
            Err(picket::store::StoreError::Corrupt(_))
        ),
        "a zone that does not read is a corrupt row, not a panic"
    );
    let huge = world.store.get_pledge(bad[0].1).await.unwrap().unwrap();
    assert!(
        huge.plan_error.as_deref().unwrap().contains("less often"),
        "{:?}",
        huge.plan_error
    );
}

/// A network whose adapter panics for accounts named `boom-*`, and accepts every other post.
struct Panicky;

#[async_trait]
impl Network for Panicky {
    fn kind(&self) -> NetworkKind {
        NetworkKind::Sandbox
    }

    async fn publish(
        &self,
        account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        tokio::task::yield_now().await;
        if account.handle.starts_with("boom") {
            panic!("adapter bug while posting for {}", account.handle);
        }
        Ok(Receipt {
            remote_id: post.idempotency_key.clone(),
            url: None,
        })
    }

    async fn verify(&self, account: &AccountRef) -> Result<Identity, PublishError> {
        if account.handle.starts_with("boom") {
            panic!("adapter bug while verifying {}", account.handle);
        }
        Ok(Identity {
            handle: account.handle.clone(),
            url: None,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_whose_sending_panics_is_failed_with_a_reason_and_the_others_go_out() {
    // Arrange: posts due now for "fine" and "boom" (whose adapter panics), and one for
    // "eternal" whose stored window ends at the last instant chrono can hold.
    let now = Utc::now();
    let world = World::new(
        &campaign(
            now - chrono::Duration::seconds(5),
            now + chrono::Duration::hours(1),
        ),
        Arc::new(SystemClock),
    )
    .await;
    let (fine, fine_accounts) = world.participant("fine", 1).await;
    let (boom, boom_accounts) = world.participant("boom", 1).await;
    world.pledge(fine, &fine_accounts).await;
    world.pledge(boom, &boom_accounts).await;
    let (eternal, eternal_pledge) = stored_pledge(&world, "eternal", "UTC", None, None).await;
    let account = world.store.pledges_of(eternal).await.unwrap()[0].account_ids[0];
    let at = now - chrono::Duration::seconds(1);
    world
        .store
        .apply_plan(
            eternal_pledge,
            &world.campaign.id,
            &[PlannedPost {
                account_id: account,
                slot_key: "steady/notice@eternal".into(),
                post_name: "notice".into(),
                template: "notice".into(),
                variant: 0,
                run_at: at,
                window_end: DateTime::<Utc>::MAX_UTC,
                idempotency_key: "eternal-key".into(),
                slot_at: at,
                day: 1,
                days_total: 1,
            }],
            now,
        )
        .await
        .unwrap();
    let dispatcher =
        world.dispatcher_with(fast_settings(), Networks::new().with(Arc::new(Panicky)));

    // Act
    world
        .dispatch_until_done(dispatcher, Duration::from_secs(30))
        .await;

    // Assert
    let state = |rows: &[picket::store::OutboxRow]| -> Vec<OutboxState> {
        rows.iter()
            .filter(|r| r.post_name == "notice")
            .map(|r| r.state)
            .collect()
    };
    let fine_rows = world.store.outbox_for(fine, None).await.unwrap();
    let boom_rows = world.store.outbox_for(boom, None).await.unwrap();
    let eternal_rows = world.store.outbox_for(eternal, None).await.unwrap();
    assert_eq!(state(&fine_rows), [OutboxState::Published]);
    assert_eq!(state(&eternal_rows), [OutboxState::Published]);
    assert_eq!(state(&boom_rows), [OutboxState::Failed]);
    let reason = boom_rows[0].last_error.as_deref().unwrap_or_default();
    assert!(
        reason.contains("internal error") && reason.contains("adapter bug"),
        "{reason}"
    );
}

#[tokio::test]
async fn an_account_whose_check_panics_is_skipped_and_the_others_are_checked() {
    // Arrange
    let now = Utc::now();
    let world = World::new(
        &campaign(
            now + chrono::Duration::hours(1),
            now + chrono::Duration::hours(2),
        ),
        Arc::new(SystemClock),
    )
    .await;
    let (_, boom) = world.participant("boom", 1).await;
    let (_, fine) = world.participant("fine", 2).await;
    let ids = [boom, fine].concat();
    let networks = Networks::new().with(Arc::new(Panicky));

    // Act
    let verified = verify::verify_accounts(
        world.store.as_ref(),
        &networks,
        &world.vault,
        &ids,
        world.clock.now(),
    )
    .await;

    // Assert
    let verified = verified.expect("the round goes on past the account");
    assert_eq!((verified.ok, verified.unknown, verified.broken), (2, 1, 0));
}

/// An installation for the real binary with the campaign `steady` from `start` to `end`.
fn installation(start: DateTime<Utc>, end: DateTime<Utc>) -> Installation {
    Options::default()
        .without_bundled()
        .campaign("steady", &campaign(start, end))
        .key([7; 32])
        .install()
}

/// Posts scheduled for the campaign, as the stats API tells.
async fn scheduled(app: &TestApp) -> Option<u64> {
    app.stats("steady").await["posts"]["scheduled"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_clean_shutdown_plans_at_once() {
    // Arrange: a striker joined by the CLI (planned at once); a first `picket serve`
    // plans at start, holds the planner lease, and is stopped cleanly (SIGTERM).
    let now = Utc::now();
    let start = now + chrono::Duration::hours(2);
    let end = start + chrono::Duration::hours(1);
    let install = installation(start, end);
    let account = install.add_account(&["sandbox", "--name", "ada"]);
    install.run(&[
        "join",
        "steady",
        "--account",
        &account.to_string(),
        "--tz",
        "UTC",
    ]);
    let first = install.serve().await;
    eventually(
        Duration::from_secs(30),
        "the first server to plan",
        async || install.log().contains("planned"),
    )
    .await;
    assert_eq!(scheduled(&first).await, Some(1), "the notice");
    first.stop();
    // The campaign gains a post while picket is down: only the planner adds its rows.
    let edited = campaign(start, end).replace(
        "[templates]",
        "[[posts]]\nname = \"also\"\nwhen = \"start\"\ntemplate = \"notice\"\nwindow = \"30m\"\n\n[templates]",
    );
    std::fs::write(install.campaigns().join("steady.toml"), edited).unwrap();

    // Act
    let second = install.serve().await;

    // Assert: planned within seconds, not after the old lease's 20 minutes.
    eventually(
        Duration::from_secs(30),
        "the new post planned at start",
        async || match scheduled(&second).await {
            Some(2) => Ok(()),
            seen => Err(format!("{seen:?} scheduled")),
        },
    )
    .await;
    second.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn picket_serve_stays_up_with_a_stored_pledge_it_cannot_plan() {
    // Arrange: the pledge of the report, with its absurd cadence, stored before picket
    // starts (it once panicked the planner at every start), and a good one.
    let now = Utc::now();
    let start = now + chrono::Duration::hours(2);
    let install = installation(start, start + chrono::Duration::hours(1));
    let ada = install.add_account(&["sandbox", "--name", "ada"]);
    let store = install.store().await;
    let local = store
        .get_account(picket::store::AccountId(ada))
        .await
        .unwrap()
        .unwrap()
        .participant_id;
    let bad = store
        .upsert_pledge(
            &NewPledge {
                participant_id: local,
                campaign_id: "steady".parse().unwrap(),
                tz: "UTC".parse().unwrap(),
                days: None,
                every_secs: Some(100_000 * 960 * 86_400),
                account_ids: vec![picket::store::AccountId(ada)],
            },
            now,
        )
        .await
        .unwrap();
    drop(store);

    // Act
    let mut app = install.serve().await;

    // Assert: it records the problem, keeps running and keeps answering.
    eventually(
        Duration::from_secs(30),
        "the planner to record why it skipped the pledge",
        async || {
            let pledge = app.store.get_pledge(bad).await.unwrap().unwrap();
            pledge.plan_error.is_some()
        },
    )
    .await;
    // Half a second of real time on purpose: a planner that panics on the pledge would
    // take the process down after recording it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        app.exited().is_none(),
        "picket serve exited:\n{}",
        install.log()
    );
    let health = app.get("/healthz").await;
    assert_eq!(health.status(), reqwest::StatusCode::OK);
    app.stop();
}

/// Posts to "Mastodon" for the engagement reads: counts for "fine", a panic for "boom",
/// a deleted post for "gone".
struct Readable;

#[async_trait]
impl Network for Readable {
    fn kind(&self) -> NetworkKind {
        NetworkKind::Mastodon
    }

    async fn publish(
        &self,
        _account: &AccountRef,
        post: &OutgoingPost,
    ) -> Result<Receipt, PublishError> {
        Ok(Receipt {
            remote_id: post.idempotency_key.clone(),
            url: None,
        })
    }

    async fn engagement(
        &self,
        account: &AccountRef,
        _remote_id: &str,
    ) -> Result<Option<picket::network::Engagement>, PublishError> {
        tokio::task::yield_now().await;
        match account.handle.as_str() {
            h if h.starts_with("boom") => panic!("adapter bug while reading {h}"),
            h if h.starts_with("gone") => Ok(None),
            _ => Ok(Some(picket::network::Engagement {
                likes: 2,
                reposts: 0,
                replies: 1,
            })),
        }
    }

    async fn followers(&self, _account: &AccountRef) -> Result<Option<u64>, PublishError> {
        Ok(Some(7))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engagement_read_that_panics_or_cannot_open_its_account_is_recorded_and_the_others_are_read()
 {
    use picket::clock::{Clock, ManualClock};
    use picket::scheduler::engagement::{EngagementTask, Timing};
    use picket::store::{AccountRoute, NewAccount};
    // Arrange: four published Mastodon posts: one reads fine, one's read panics, one is
    // deleted, one's credentials were sealed for another account (unreadable).
    let now = Utc::now();
    let clock = ManualClock::new(now);
    let toml = campaign(
        now - chrono::Duration::seconds(5),
        now + chrono::Duration::hours(1),
    )
    .replace(
        r#"networks = ["sandbox"]"#,
        r#"networks = ["sandbox", "mastodon"]"#,
    );
    let world = World::new(&toml, Arc::new(clock.clone())).await;
    let mut garbled = None;
    for name in ["fine", "boom", "gone", "garbled"] {
        let (who, _) = world.participant(name, 0).await;
        let account = world
            .store
            .add_account(
                &NewAccount {
                    participant_id: who,
                    network: NetworkKind::Mastodon,
                    handle: format!("{name}@m.example").parse().unwrap(),
                    server: Some("https://m.example".into()),
                    trusted: true,
                    route: AccountRoute::Api,
                },
                &|id| world.vault.seal_for(id.0, b"{\"token\":\"t\"}"),
                now,
            )
            .await
            .unwrap();
        world.pledge(who, &[account]).await;
        if name == "garbled" {
            garbled = Some(account);
        }
    }
    let networks = Networks::new().with(Arc::new(Readable));
    let dispatcher = world.dispatcher_with(fast_settings(), networks.clone());
    dispatcher.step().await.unwrap();
    assert_eq!(world.unfinished().await, 0);
    // Sealed for another account after it posted: its credentials no longer open.
    let garbled = garbled.unwrap();
    world
        .store
        .update_credentials(garbled, &world.vault.seal_for(garbled.0 + 1000, b"x"), now)
        .await
        .unwrap();
    let timing = Timing {
        first: chrono::Duration::hours(1),
        again: chrono::Duration::hours(24),
    };
    let task = EngagementTask::new(
        networks,
        world.vault.clone(),
        timing,
        Arc::new(clock.clone()),
    );

    // Act: an hour later, a round; then another at once.
    clock.advance(chrono::Duration::minutes(61));
    let first = task.round(world.store.as_ref(), &clock).await.unwrap();
    let second = task.round(world.store.as_ref(), &clock).await.unwrap();

    // Assert
    assert_eq!(
        (first.followed, first.read, first.failed),
        (4, 1, 3),
        "{first:?}"
    );
    assert_eq!(
        (second.read, second.failed),
        (0, 0),
        "nothing retried at once"
    );
    let figures = world.store.engagement_buckets("steady").await.unwrap();
    assert_eq!(figures.len(), 1, "{figures:?}");
    let f = &figures[0];
    assert_eq!((f.posts, f.read, f.unreadable), (4, 1, 3), "{f:?}");
    assert_eq!((f.likes, f.replies, f.followers), (2, 1, 7));
    // The fine post is read again a day after posting; the others never.
    clock.advance(chrono::Duration::hours(23));
    let third = task.round(world.store.as_ref(), &clock).await.unwrap();
    assert_eq!((third.read, third.failed), (1, 0), "{third:?}");
    assert_eq!(clock.now() - now, chrono::Duration::minutes(23 * 60 + 61));
}
