//! Guarantees 1 and 2 against a real `picket serve` process killed with SIGKILL at random
//! moments: nothing lost, nothing posted twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use picket::clock::SystemClock;
use picket::sandbox::Faults;
use rand::{RngExt, SeedableRng};

use picket::store::OutboxState;

use crate::support::{
    FreshPostgres, Installation, Options, TestApp, World, eventually, posts_at_start,
    require_server, token, window_campaign,
};

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
async fn kills_near_the_end_of_short_windows_leave_a_ledger_equal_to_what_the_receiver_got() {
    // Arrange: 60 accounts x 1 post whose window closes in 15 s (grace 2 s). The receiver
    // is slow (300 ms per post, two at a time) and faulty: refusals, answers lost after
    // storing, answers too late for the 1 s timeout. So when the window closes, posts are
    // on the wire, stored but unrecorded, or waiting to retry an attempt that may have
    // landed. The lease is the default 120 s, far past the window.
    let now = Utc::now();
    let toml = window_campaign(
        "short",
        now - chrono::Duration::seconds(45),
        now + chrono::Duration::hours(1),
        &posts_at_start(1, "1m"),
    );
    let world = World::new(&toml, Arc::new(SystemClock)).await;
    let (who, accounts) = world.participant("sam", 60).await;
    world.pledge(who, &accounts).await;
    world.faults(Faults {
        commit_delay: Duration::from_millis(300),
        error_rate: 0.2,
        slow_rate: 0.3,
        slow_delay: Duration::from_secs(3),
        lost_answer_rate: 0.15,
        seed: 7,
        ..Faults::default()
    });
    let scheduler = "grace_secs = 2\njitter_secs = 0\nrequest_timeout_secs = 1\n\
                     concurrency = 2\nbatch = 4\nretry_cap_secs = 2\n";
    let window_end = now + chrono::Duration::seconds(15);
    let deadline = window_end + chrono::Duration::seconds(2);
    let until = |t: chrono::DateTime<Utc>| (t - Utc::now()).to_std().unwrap_or_default();

    // Act: one run killed a moment after its first request, one killed 1.5 s before the
    // window and grace close, and one started after they closed, left to finish.
    let first = serve(&world, scheduler).await;
    eventually(
        Duration::from_secs(30),
        "the first run's first request at the receiver",
        async || world.receiver.report().deliveries > 0,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(rand::rng().random_range(0..800))).await;
    drop(first); // SIGKILL
    let second = serve(&world, scheduler).await;
    tokio::time::sleep(until(deadline - chrono::Duration::milliseconds(1500))).await;
    drop(second); // SIGKILL, near the end of the window
    tokio::time::sleep(until(deadline + chrono::Duration::milliseconds(500))).await;
    let last = serve(&world, scheduler).await;
    eventually(
        Duration::from_secs(40),
        "every post in a final state",
        async || match world.unfinished().await {
            0 => Ok(()),
            n => Err(format!("{n} not final")),
        },
    )
    .await;
    let exit = last.stop().status;

    // Assert: the ledger says published exactly for what the receiver holds.
    let report = world.receiver.report();
    let received: std::collections::BTreeSet<(String, String)> = world
        .receiver
        .posts()
        .into_iter()
        .map(|p| (p.account, p.slot.unwrap_or_default()))
        .collect();
    let fingerprints: std::collections::HashMap<_, _> = accounts
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, picket::sandbox::fingerprint(&token("sam", i))))
        .collect();
    let rows = world.store.outbox_for(who, Some("short")).await.unwrap();
    let published: std::collections::BTreeSet<(String, String)> = rows
        .iter()
        .filter(|r| r.state == OutboxState::Published)
        .map(|r| (fingerprints[&r.account_id].clone(), r.slot_key.clone()))
        .collect();
    let wrong: Vec<_> = rows
        .iter()
        .filter(|r| {
            let key = (fingerprints[&r.account_id].clone(), r.slot_key.clone());
            received.contains(&key) != (r.state == OutboxState::Published)
        })
        .map(|r| {
            (
                r.id,
                r.state,
                r.attempts,
                r.outcome_unknown,
                r.last_error.clone(),
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "ledger and receiver disagree: {wrong:?} {report:?}"
    );
    assert_eq!(published, received);
    assert_eq!(report.duplicate_slots, 0, "{report:?}");
    assert!(
        rows.iter()
            .all(|r| matches!(r.state, OutboxState::Published | OutboxState::Missed)),
        "{rows:?}"
    );
    // Posts recorded published after the window closed were found by reading back (none
    // can be sent then): the kills did leave outcomes to settle.
    let read_back = rows
        .iter()
        .filter(|r| r.state == OutboxState::Published && r.published_at.unwrap() > deadline)
        .count();
    assert!(
        read_back > 0,
        "no post was settled by reading back: {rows:?}"
    );
    assert!(
        rows.iter()
            .filter(|r| r.state == OutboxState::Published)
            .all(|r| r.remote_url.is_some()),
        "a published post has its link"
    );
    assert!(exit.success(), "{exit:?}");
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

/// `picket worker` over `install`'s database, logging to `log` in its folder.
fn worker(install: &Installation, log: &str) -> std::process::Child {
    install
        .command()
        .arg("worker")
        .env("PICKET_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(install.dir().join(log)).unwrap())
        .spawn()
        .unwrap()
}

/// Stop a worker with SIGTERM and wait for it.
fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let term = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    child.wait().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_burst_on_postgresql_has_its_posts_taken_over_and_each_arrives_once() {
    let Some(admin) = require_server("PICKET_TEST_POSTGRES_URL") else {
        return;
    };
    // Arrange: 60 accounts x 2 posts due now in 2-minute windows, on a fresh PostgreSQL
    // database shared by one `picket serve` and three `picket worker`s. The receiver is
    // slow (400 ms per post) and fails some requests: refusals, answers lost after
    // storing, answers too late for the 1 s timeout. Leases last 120 s, twice the time
    // the test allows, so a dead worker's posts arrive in time only if taken over.
    let db = FreshPostgres::create(&admin).await;
    let now = Utc::now();
    let toml = window_campaign(
        "pg",
        now - chrono::Duration::seconds(5),
        now + chrono::Duration::hours(1),
        &posts_at_start(2, "2m"),
    );
    let world = World::on(Some(&db.url), &toml, Arc::new(SystemClock)).await;
    let (who, accounts) = world.participant("pia", 60).await;
    world.pledge(who, &accounts).await;
    world.faults(Faults {
        commit_delay: Duration::from_millis(400),
        error_rate: 0.1,
        lost_answer_rate: 0.05,
        slow_rate: 0.05,
        slow_delay: Duration::from_secs(2),
        seed: 5,
        ..Faults::default()
    });
    let started = std::time::Instant::now();
    let install = Options::default()
        .over(&world)
        .config(
            "[scheduler]\nlease_secs = 120\njitter_secs = 0\nrequest_timeout_secs = 1\n\
             concurrency = 2\nbatch = 4\nretry_cap_secs = 2\n",
        )
        .install();
    let serve = install.serve().await;
    let mut workers: Vec<_> = (0..3)
        .map(|i| worker(&install, &format!("worker-{i}.log")))
        .collect();

    // Act: kill worker 0 once it holds posts, mid-burst; start it again at once.
    let victim = workers[0].id();
    let held = eventually(
        Duration::from_secs(30),
        "worker 0 holding posts",
        async || {
            let leased = world.store.leased_posts().await.unwrap();
            leased
                .into_iter()
                .find(|(owner, _)| owner.contains(&format!("-{victim}-")))
                .ok_or("none yet")
        },
    )
    .await;
    workers[0].kill().unwrap(); // SIGKILL
    workers[0].wait().unwrap();
    let left_behind = world.store.leased_posts().await.unwrap();
    workers[0] = worker(&install, "worker-0-again.log");
    eventually(
        Duration::from_secs(45),
        "every post in a final state",
        async || match world.unfinished().await {
            0 => Ok(()),
            n => Err(format!("{n} not final")),
        },
    )
    .await;
    let took = started.elapsed();
    for w in &mut workers {
        assert!(terminate(w).success(), "a worker exits 0 on SIGTERM");
    }
    let exit = serve.stop().status;

    // Assert: every post arrived once, inside its window, and is recorded published.
    let report = world.receiver.report();
    let counts = world.store.outbox_counts("pg").await.unwrap();
    assert!(
        report.faults > 0,
        "the receiver failed some requests: {report:?}"
    );
    assert_eq!(report.created, 120, "{report:?}");
    assert_eq!(report.duplicate_slots, 0, "{report:?}");
    assert_eq!(counts.published, 120, "{counts:?}");
    assert_eq!(
        world
            .store
            .published_per_slot_duplicates("pg")
            .await
            .unwrap(),
        0
    );
    let window_end = now - chrono::Duration::seconds(5) + chrono::Duration::minutes(2);
    assert!(
        world
            .receiver
            .posts()
            .iter()
            .all(|p| p.received_at <= window_end),
        "every post inside its window"
    );
    // The killed worker held posts, and they were taken over long before its leases ran
    // out: some live worker said so.
    assert!(held.1 > 0, "{left_behind:?}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    let said: String = std::fs::read_dir(install.dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("worker-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .chain([install.log()])
        .collect();
    assert!(
        said.contains("took over the posts of a worker that stopped"),
        "no worker took over the dead one's posts (left behind: {left_behind:?})"
    );
    assert!(exit.success(), "{exit:?}");
    drop(world);
    db.drop_db().await;
}
