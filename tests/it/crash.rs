//! Guarantees 1 and 2 against a real `picket serve` process killed with SIGKILL at random
//! moments: nothing lost, nothing posted twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use picket::clock::SystemClock;
use picket::sandbox::Faults;
use rand::{RngExt, SeedableRng};

use crate::support::{Options, TestApp, World, eventually, posts_at_start, window_campaign};

/// `picket serve` (the binary) over the world's database and campaign, with `scheduler`
/// settings.
async fn serve(world: &World, scheduler: &str) -> TestApp {
    TestApp::spawn(
        Options::default()
            .over(world)
            .config(&format!("[scheduler]\n{scheduler}"))
            .process(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing_and_posts_nothing_twice() {
    // Arrange: 60 accounts x 2 posts due now. The receiver takes 100 ms to store a post,
    // sometimes answers too late (the request times out: outcome unknown) or loses the
    // answer, so kills land in every state: claimed, on the wire, stored-but-unrecorded.
    let now = Utc::now();
    let toml = window_campaign(
        "crash",
        now - chrono::Duration::seconds(5),
        now + chrono::Duration::hours(1),
        &posts_at_start(2, "30m"),
    );
    let world = World::new(&toml, Arc::new(SystemClock)).await;
    let (who, accounts) = world.participant("kim", 60).await;
    world.pledge(who, &accounts).await;
    world.faults(Faults {
        commit_delay: Duration::from_millis(100),
        slow_rate: 0.15,
        slow_delay: Duration::from_secs(3),
        lost_answer_rate: 0.05,
        seed: 11,
        ..Faults::default()
    });
    // Retries capped at 5 s: after ten kills a post may have many attempts behind it, and
    // the default backoff (up to 10 min) would outlast the wait below.
    let scheduler = "lease_secs = 2\njitter_secs = 0\nrequest_timeout_secs = 2\nconcurrency = 8\n\
                     batch = 16\nretry_cap_secs = 5\n";
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    // Act: ten runs killed at a random instant, then one run left to finish.
    // Each kill lands a random moment after that run's first request reaches the receiver,
    // so it interrupts real work however long the process takes to start on a busy machine.
    for _ in 0..10 {
        let before = world.receiver.report().deliveries;
        let app = serve(&world, scheduler).await;
        eventually(
            Duration::from_secs(60),
            "this run's first request at the receiver (or nothing left to send)",
            async || world.receiver.report().deliveries != before || world.unfinished().await == 0,
        )
        .await;
        // Real time on purpose: the kill lands at a random moment of the work.
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..600))).await;
        drop(app); // SIGKILL
    }
    let killed_with = world.receiver.report();
    let app = serve(&world, scheduler).await;
    eventually(
        Duration::from_secs(90),
        "every post in a final state",
        async || match world.unfinished().await {
            0 => Ok(()),
            n => Err(format!("{n} not final")),
        },
    )
    .await;
    // A graceful stop (SIGTERM) ends the process cleanly.
    let exit = app.stop().status;

    // Assert
    let report = world.receiver.report();
    let counts = world.store.outbox_counts("crash").await.unwrap();
    assert!(
        killed_with.created > 0,
        "the kills must interrupt real work (seed {seed}): {killed_with:?}"
    );
    assert_eq!(counts.published, 120, "seed {seed}: {counts:?} {report:?}");
    assert_eq!(report.created, 120, "seed {seed}: {report:?}");
    assert_eq!(report.duplicate_slots, 0, "seed {seed}: {report:?}");
    assert_eq!(
        world
            .store
            .published_per_slot_duplicates("crash")
            .await
            .unwrap(),
        0
    );
    assert!(
        exit.success(),
        "picket serve exits 0 on SIGTERM, got {exit:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdraw_with_delete_posts_removes_the_published_notices_from_the_network() {
    // Arrange: an account added and joined with the CLI, its two notices published by serve.
    let now = Utc::now();
    let toml = window_campaign(
        "del",
        now - chrono::Duration::seconds(5),
        now + chrono::Duration::hours(1),
        &posts_at_start(2, "30m"),
    );
    let world = World::new(&toml, Arc::new(SystemClock)).await;
    let install = Options::default().over(&world).install();
    install.run(&[
        "account",
        "add",
        "sandbox",
        "--name",
        "lee",
        "--server",
        &world.receiver_url,
        "--token",
        "lee-token",
    ]);
    install.run(&["join", "del", "--account", "1"]);
    let app = install.serve().await;
    // Wait for the receipts in the store, not for the receiver: a post the receiver has seen
    // may not be recorded yet, and a notice without a recorded id cannot be deleted.
    eventually(
        Duration::from_secs(30),
        "both notices published",
        async || world.store.outbox_counts("del").await.unwrap().published >= 2,
    )
    .await;
    drop(app);

    // Act
    let out = install.run(&["withdraw", "del", "--delete-posts"]);

    // Assert
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 published post(s) deleted"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut deleted = world.receiver.deleted();
    deleted.sort();
    let mut published: Vec<String> = world.receiver.posts().into_iter().map(|p| p.id).collect();
    published.sort();
    assert_eq!(deleted, published);
}
