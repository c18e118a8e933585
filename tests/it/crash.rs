//! Guarantees 1 and 2 against a real `picket serve` process killed with SIGKILL at random
//! moments: nothing lost, nothing posted twice.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use picket::clock::SystemClock;
use picket::sandbox::Faults;
use rand::{RngExt, SeedableRng};

use crate::support::{World, posts_at_start, window_campaign};

fn serve(world: &World, config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .arg("--database-url")
        .arg(&world.db_url)
        .arg("--campaigns")
        .arg(world.campaigns_dir())
        .arg("--config")
        .arg(config)
        // The same key the test world sealed the account tokens with.
        .env(
            "PICKET_SECRET_KEY",
            base64::engine::general_purpose::STANDARD.encode([42u8; 32]),
        )
        .env("PICKET_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("picket binary runs")
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
    let config = world.dir.path().join("picket.toml");
    std::fs::write(
        &config,
        "[scheduler]\nlease_secs = 2\njitter_secs = 0\nrequest_timeout_secs = 2\nconcurrency = 8\nbatch = 16\n",
    )
    .unwrap();
    let seed: u64 = rand::rng().random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    // Act: ten runs killed at a random instant, then one run left to finish.
    // Each kill lands a random moment after that run's first request reaches the receiver,
    // so it interrupts real work however long the process takes to start on a busy machine.
    for _ in 0..10 {
        let before = world.receiver.report().deliveries;
        let mut child = serve(&world, &config);
        let started = tokio::time::Instant::now() + Duration::from_secs(20);
        while world.receiver.report().deliveries == before
            && world.unfinished().await > 0
            && tokio::time::Instant::now() < started
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..600))).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let killed_with = world.receiver.report();
    let mut child = serve(&world, &config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    while world.unfinished().await > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A graceful stop (SIGTERM) ends the process cleanly.
    let term = Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let exit = child.wait().unwrap();

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

fn cli(world: &World, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_picket"))
        .arg("--database-url")
        .arg(&world.db_url)
        .arg("--campaigns")
        .arg(world.campaigns_dir())
        .args(args)
        .env(
            "PICKET_SECRET_KEY",
            base64::engine::general_purpose::STANDARD.encode([42u8; 32]),
        )
        .env("PICKET_LOG", "warn")
        .output()
        .expect("picket runs")
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
    let add = cli(
        &world,
        &[
            "account",
            "add",
            "sandbox",
            "--name",
            "lee",
            "--server",
            &world.receiver_url,
            "--token",
            "lee-token",
        ],
    );
    assert!(
        add.status.success(),
        "{}",
        String::from_utf8_lossy(&add.stderr)
    );
    let join = cli(&world, &["join", "del", "--account", "1"]);
    assert!(
        join.status.success(),
        "{}",
        String::from_utf8_lossy(&join.stderr)
    );
    let config = world.dir.path().join("picket.toml");
    std::fs::write(&config, "[scheduler]\njitter_secs = 0\n").unwrap();
    let mut child = serve(&world, &config);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    // Wait for the receipts in the store, not for the receiver: a post the receiver has seen
    // may not be recorded yet, and a notice without a recorded id cannot be deleted.
    while world.store.outbox_counts("del").await.unwrap().published < 2
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Act
    let out = cli(&world, &["withdraw", "del", "--delete-posts"]);

    // Assert
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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
