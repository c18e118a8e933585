//! `picket db copy` (SQLite to PostgreSQL and back, resumed after a partial copy) and
//! `picket db backup` (online, while `picket serve` writes), run as the binary.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use picket::clock::SystemClock;
use picket::store::copy::{TableSum, table_sums};
use sqlx::{AssertSqlSafe, Connection};

use crate::support::{
    FreshPostgres, Installation, Options, World, eventually, fast_settings, posts_at_start,
    require_server, window_campaign,
};

/// `picket db ...` with `args`; its exit status and what it printed.
fn db(install: &Installation, args: &[&str]) -> (bool, String) {
    let out = install.command().arg("db").args(args).output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Rows per table, and the checksums, by table name.
fn by_table(sums: Vec<TableSum>) -> BTreeMap<String, (u64, String)> {
    sums.into_iter()
        .map(|s| (s.table, (s.rows, s.checksum)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_copy_moves_sqlite_to_postgresql_and_back_resumes_and_loses_nothing() {
    let Some(admin) = require_server("PICKET_TEST_POSTGRES_URL") else {
        return;
    };
    // Arrange: a SQLite installation that ran a strike: participants, accounts with sealed
    // credentials, pledges, published posts with receipts, a worker's heartbeat.
    let now = Utc::now();
    let toml = window_campaign(
        "move",
        now - chrono::Duration::seconds(5),
        now + chrono::Duration::hours(1),
        &posts_at_start(3, "30m"),
    );
    let world = World::new(&toml, Arc::new(SystemClock)).await;
    for name in ["ada", "bo", "cy"] {
        let (who, accounts) = world.participant(name, 4).await;
        world.pledge(who, &accounts).await;
    }
    world
        .dispatch_until_done(world.dispatcher(fast_settings()), Duration::from_secs(60))
        .await;
    let install = Options::default().over(&world).install();
    let pg = FreshPostgres::create(&admin).await;
    let back = tempfile::tempdir().unwrap();
    let back_url = format!("sqlite://{}", back.path().join("back.db").display());
    let original = by_table(table_sums(&world.db_url).await.unwrap());

    // Act: SQLite to PostgreSQL; again over a destination that lost part of a table (a
    // copy cut short); then back to a new SQLite file.
    let (first_ok, first) = db(
        &install,
        &["copy", "--from", &world.db_url, "--to", &pg.url],
    );
    let mut conn = sqlx::PgConnection::connect(&pg.url).await.unwrap();
    // What PostgreSQL's planner knows of the copied outbox (-1: never analysed).
    let outbox_rows_known: f32 =
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = 'outbox'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    let lost = sqlx::query(AssertSqlSafe("DELETE FROM outbox WHERE id % 2 = 0"))
        .execute(&mut conn)
        .await
        .unwrap()
        .rows_affected();
    conn.close().await.unwrap();
    let (resumed_ok, resumed) = db(
        &install,
        &["copy", "--from", &world.db_url, "--to", &pg.url],
    );
    let on_pg = by_table(table_sums(&pg.url).await.unwrap());
    let (back_ok, back_said) = db(&install, &["copy", "--from", &pg.url, "--to", &back_url]);
    let round_trip = by_table(table_sums(&back_url).await.unwrap());

    // Assert
    assert!(first_ok, "{first}");
    assert!(first.contains("verified"), "{first}");
    assert_eq!(
        outbox_rows_known, 36.0,
        "the copy leaves PostgreSQL's statistics up to date"
    );
    assert!(lost > 0);
    assert!(resumed_ok, "{resumed}");
    let outbox_line = resumed
        .lines()
        .find(|l| l.trim_start().starts_with("outbox "))
        .unwrap();
    assert!(
        outbox_line.contains(&format!("({lost} new)")),
        "the resumed copy wrote only the missing rows: {resumed}"
    );
    assert!(back_ok, "{back_said}");
    assert_eq!(round_trip, original, "SQLite -> PostgreSQL -> SQLite");
    assert_eq!(
        on_pg
            .iter()
            .map(|(t, (n, _))| (t.clone(), *n))
            .collect::<Vec<_>>(),
        original
            .iter()
            .map(|(t, (n, _))| (t.clone(), *n))
            .collect::<Vec<_>>(),
        "row counts on PostgreSQL"
    );
    assert!(
        original["outbox"].0 == 36 && original["accounts"].0 == 12,
        "{original:?}"
    );
    drop(world);
    pg.drop_db().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_backup_while_serve_writes_is_consistent_and_restores_to_the_same_data() {
    // Arrange: `picket serve` taking signatures; a client keeps signing while the backup
    // is taken.
    let install = Options::default().install();
    let app = install.serve().await;
    for i in 0..20 {
        let r = app
            .api_sign(serde_json::json!({"name": format!("early {i}"), "email": format!("e{i}@example.org")}))
            .await;
        assert_eq!(r.status(), 201);
    }
    let dir = tempfile::tempdir().unwrap();
    let during = dir.path().join("during.db");
    let after = dir.path().join("after.db");
    let signing = {
        let base = app.base.clone();
        let http = app.http.clone();
        tokio::spawn(async move {
            for i in 0..400 {
                let r = http
                    .post(format!("{base}/api/v1/campaigns/social-media-strike/signatures"))
                    .json(&serde_json::json!({"name": format!("late {i}"), "email": format!("l{i}@example.org")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
            }
        })
    };

    // Act: one backup while signatures are being written, one after, serve still running.
    eventually(Duration::from_secs(30), "signing under way", async || {
        app.stats("social-media-strike").await["signatures"].as_u64() > Some(30)
    })
    .await;
    let (during_ok, during_said) = db(&install, &["backup", during.to_str().unwrap()]);
    signing.await.unwrap();
    let (after_ok, after_said) = db(&install, &["backup", after.to_str().unwrap()]);
    let (again_ok, again_said) = db(&install, &["backup", after.to_str().unwrap()]);
    let live_url = format!("sqlite://{}", install.dir().join("picket.db").display());
    let live = by_table(table_sums(&live_url).await.unwrap());
    let restored = by_table(table_sums(after.to_str().unwrap()).await.unwrap());
    let snapshot = picket::store::open(during.to_str().unwrap()).await.unwrap();
    let counted = snapshot.signature_count("social-media-strike").await;
    drop(app);

    // Assert: both backups pass SQLite's check; the one taken after the writes holds
    // the same data as the live database (but for the tables a running picket rewrites
    // by itself: workers' heartbeats and singleton leases); the one taken during them
    // holds a moment of it, opened as any database is.
    assert!(during_ok, "{during_said}");
    assert!(after_ok, "{after_said}");
    assert!(
        !again_ok && again_said.contains("exists already"),
        "{again_said}"
    );
    let data = |m: &BTreeMap<String, (u64, String)>| {
        m.iter()
            .filter(|(t, _)| !matches!(t.as_str(), "workers" | "leases"))
            .map(|(t, v)| (t.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(data(&restored), data(&live));
    assert_eq!(live["signatures"].0, 420, "{live:?}");
    let counted = counted.unwrap();
    assert!((31..=420).contains(&counted), "{counted}");
}
