//! The store contract: every `Store` method, on SQLite always and on PostgreSQL when
//! `PICKET_TEST_POSTGRES_URL` names an admin URL (e.g. from `scripts/servers/postgres.sh`).
//!
//! Each test gets a fresh database (a temp file, or `CREATE DATABASE t_<random>`), so tests
//! run in parallel. The harness uses sqlx directly only to create and drop those databases,
//! and to write rows the store itself never writes (corrupt values).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use picket::domain::NetworkKind;
use picket::store::{
    self, AccountId, AccountStatus, DeadWorkers, NewAccount, NewParticipant, NewPledge,
    NewSignature, OutboxId, OutboxState, Outcome, ParticipantId, PlannedPost, PledgeId, PledgePlan,
    Sealed, Store, StoreError, StoreTooling,
};
use sqlx::{AssertSqlSafe, Connection};

const CAMPAIGN: &str = "social-media-strike";

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2027-07-04T00:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A fresh, migrated database of one kind, dropped when the test is done.
struct TestDb {
    name: &'static str,
    store: Arc<dyn StoreTooling>,
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg_drop: Option<(String, String)>,
}

impl TestDb {
    async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("picket.db").display());
        let store = store::open_tooling(&url).await.expect("open sqlite");
        TestDb {
            name: "sqlite",
            store,
            url,
            _dir: Some(dir),
            pg_drop: None,
        }
    }

    async fn postgres(admin: &str) -> TestDb {
        let db = format!("t_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::PgConnection::connect(admin).await.expect("admin url");
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let mut url = url::Url::parse(admin).unwrap();
        url.set_path(&db);
        let store = store::open_tooling(url.as_str())
            .await
            .expect("open postgres");
        TestDb {
            name: "postgres",
            store,
            url: url.into(),
            _dir: None,
            pg_drop: Some((admin.to_string(), db)),
        }
    }

    async fn drop_pg(self) {
        if let Some((admin, db)) = self.pg_drop {
            drop(self.store);
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
        }
    }
}

/// Run `test` against SQLite, then PostgreSQL if configured.
async fn on_each_backend<F, Fut>(test: F)
where
    F: Fn(Arc<dyn StoreTooling>, &'static str) -> Fut,
    Fut: Future<Output = ()>,
{
    on_each_database(|store, name, _| test(store, name)).await;
}

/// [`on_each_backend`], also giving each test its database's URL, to reach under the store.
async fn on_each_database<F, Fut>(test: F)
where
    F: Fn(Arc<dyn StoreTooling>, &'static str, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let db = TestDb::sqlite().await;
    test(db.store.clone(), db.name, db.url.clone()).await;
    // scripts/test (and so CI) starts PostgreSQL and requires it: never skipped there.
    if let Some(admin) = crate::support::require_server("PICKET_TEST_POSTGRES_URL") {
        let db = TestDb::postgres(&admin).await;
        test(db.store.clone(), db.name, db.url.clone()).await;
        db.drop_pg().await;
    }
}

/// A participant with `n` sandbox accounts pledged to [`CAMPAIGN`].
struct Striker {
    participant: ParticipantId,
    accounts: Vec<AccountId>,
    pledge: PledgeId,
}

async fn striker(store: &dyn Store, name: &str, n: usize) -> Striker {
    striker_on(store, name, n, NetworkKind::Sandbox).await
}

/// [`striker`] with accounts on `network`.
async fn striker_on(store: &dyn Store, name: &str, n: usize, network: NetworkKind) -> Striker {
    let participant = store
        .create_participant(
            &NewParticipant {
                name: name.into(),
                email: Some(format!("{name}@example.org")),
                email_canonical: Some(format!("{name}@example.org")),
                tz: "Europe/Berlin".parse().unwrap(),
                invited_by: None,
            },
            t0(),
        )
        .await
        .unwrap();
    let mut accounts = Vec::new();
    for i in 0..n {
        accounts.push(
            store
                .add_account(
                    &NewAccount {
                        participant_id: participant,
                        network,
                        handle: format!("{name}{i}").parse().unwrap(),
                        server: Some("http://127.0.0.1:1".into()),
                        trusted: i == 0,
                        route: picket::store::AccountRoute::Api,
                    },
                    &|id| Sealed::new(vec![1, 2, 3, i as u8, id.0 as u8]),
                    t0(),
                )
                .await
                .unwrap(),
        );
    }
    let pledge = store
        .upsert_pledge(
            &NewPledge {
                participant_id: participant,
                campaign_id: CAMPAIGN.parse().unwrap(),
                tz: "Europe/Berlin".parse().unwrap(),
                days: None,
                every_secs: None,
                account_ids: accounts.clone(),
            },
            t0(),
        )
        .await
        .unwrap();
    Striker {
        participant,
        accounts,
        pledge,
    }
}

/// One post per account for each of `slots` (hour offsets from t0), each with a 1 h window.
fn plan(accounts: &[AccountId], slots: &[i64]) -> Vec<PlannedPost> {
    let mut rows = Vec::new();
    for a in accounts {
        for h in slots {
            let run_at = t0() + Duration::hours(*h);
            rows.push(PlannedPost {
                account_id: *a,
                slot_key: format!("notice@{h}").into(),
                post_name: "notice".into(),
                template: "notice".into(),
                variant: h % 2,
                run_at,
                window_end: run_at + Duration::hours(1),
                idempotency_key: format!("{a}-notice@{h}"),
                slot_at: run_at,
                day: 1,
                days_total: 1,
            });
        }
    }
    rows
}

async fn planned(store: &dyn StoreTooling, s: &Striker, slots: &[i64]) {
    store
        .apply_plan(
            s.pledge,
            &CAMPAIGN.parse().unwrap(),
            &plan(&s.accounts, slots),
            t0(),
        )
        .await
        .unwrap();
}

fn ids(posts: &[store::ClaimedPost]) -> Vec<OutboxId> {
    posts.iter().map(|p| p.id).collect()
}

async fn state_of(store: &dyn Store, id: OutboxId) -> OutboxState {
    store.outbox_states(&[id]).await.unwrap()[0].1
}

#[test]
fn migrations_have_the_same_version_numbers_on_both_databases() {
    // Arrange
    let versions = |dir: &str| {
        let mut v: Vec<String> =
            std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".sql"))
                .map(|n| n.split('_').next().unwrap().to_string())
                .collect();
        v.sort();
        v
    };

    // Act
    let (sqlite, postgres) = (versions("sqlite"), versions("postgres"));

    // Assert
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, postgres);
}

#[tokio::test]
async fn a_bare_path_opens_only_an_existing_sqlite_file() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("picket.db");
    let bare = path.to_str().unwrap().to_string();

    // Act
    let missing = store::open(&bare).await;
    let created = store::open(&format!("sqlite:{bare}")).await;
    let reopened = store::open(&bare).await;
    let unknown = store::open("mysql://localhost/picket").await;

    // Assert
    assert!(matches!(missing, Err(StoreError::NoSuchFile(_))));
    created.unwrap().ping().await.unwrap();
    reopened.unwrap().ping().await.unwrap();
    assert!(matches!(unknown, Err(StoreError::UnsupportedUrl(_))));
}

#[tokio::test]
async fn participants_and_accounts_round_trip() {
    on_each_backend(|store, db| async move {
        // Arrange
        let me = store
            .ensure_local_participant("me", picket::domain::Zone::UTC, t0())
            .await
            .unwrap();
        let s = striker(&*store, "ada", 2).await;

        // Act
        let again = store
            .ensure_local_participant("other", picket::domain::Zone::UTC, t0())
            .await
            .unwrap();
        let ada = store.get_participant(s.participant).await.unwrap().unwrap();
        store
            .update_credentials(s.accounts[0], &Sealed::new(*b"new secret"), t0())
            .await
            .unwrap();
        let account = store.get_account(s.accounts[0]).await.unwrap().unwrap();
        let listed = store.list_accounts(s.participant).await.unwrap();

        // Assert
        assert_eq!(me, again, "{db}");
        assert!(store.get_participant(me).await.unwrap().unwrap().is_local);
        assert_eq!(ada.email.as_deref(), Some("ada@example.org"));
        assert!(!ada.invite_code.is_empty());
        assert_eq!(ada.link_expires_at, None, "no link until one is given");
        assert_eq!(account.credentials.as_bytes(), b"new secret");
        assert_eq!(account.network, NetworkKind::Sandbox);
        assert_eq!(account.status, AccountStatus::Active);
        assert!(
            format!("{account:?}").contains("<10 bytes>"),
            "Debug hides credentials"
        );
        assert_eq!(listed.len(), 2, "{db}");
    })
    .await;
}

#[tokio::test]
async fn a_pledge_round_trips_and_pages_in_id_order() {
    on_each_backend(|store, db| async move {
        // Arrange
        let a = striker(&*store, "a", 1).await;
        let b = striker(&*store, "b", 2).await;
        let c = striker(&*store, "c", 1).await;
        let days = vec![NaiveDate::from_ymd_opt(2027, 7, 4).unwrap()];
        store
            .upsert_pledge(
                &NewPledge {
                    participant_id: b.participant,
                    campaign_id: CAMPAIGN.parse().unwrap(),
                    tz: "America/New_York".parse().unwrap(),
                    days: Some(days.clone()),
                    every_secs: Some(3600),
                    account_ids: b.accounts.clone(),
                },
                t0(),
            )
            .await
            .unwrap();
        store
            .withdraw(c.participant, CAMPAIGN, None, t0())
            .await
            .unwrap();

        // Act
        let first = store
            .active_pledges(CAMPAIGN, None, 1)
            .await
            .unwrap()
            .pledges;
        let rest = store
            .active_pledges(CAMPAIGN, Some(first[0].id), 10)
            .await
            .unwrap();
        let got_b = store.get_pledge(b.pledge).await.unwrap().unwrap();

        // Assert
        assert_eq!(first.len(), 1, "{db}");
        assert_eq!(first[0].id, a.pledge);
        assert_eq!(
            rest.pledges.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![b.pledge]
        );
        assert_eq!(got_b.days, Some(days));
        assert_eq!(got_b.tz, "America/New_York");
        assert_eq!(got_b.every_secs, Some(3600));
        assert_eq!(got_b.account_ids, b.accounts);
    })
    .await;
}

#[tokio::test]
async fn a_slot_gets_one_outbox_row_however_often_it_is_planned() {
    on_each_backend(|store, db| async move {
        // Arrange
        let s = striker(&*store, "ada", 2).await;
        let rows = plan(&s.accounts, &[1, 2]);

        // Act
        let first = store
            .apply_plan(s.pledge, &CAMPAIGN.parse().unwrap(), &rows, t0())
            .await
            .unwrap();
        let second = store
            .apply_plan(s.pledge, &CAMPAIGN.parse().unwrap(), &rows, t0())
            .await
            .unwrap();
        let doubled: Vec<_> = rows.iter().chain(rows.iter()).cloned().collect();
        let third = store
            .apply_plan(s.pledge, &CAMPAIGN.parse().unwrap(), &doubled, t0())
            .await
            .unwrap();

        // Assert
        assert_eq!(first.upserted, 4, "{db}");
        assert_eq!(second.upserted, 0, "{db}");
        assert_eq!(third.upserted, 0, "{db}");
        assert_eq!(store.outbox_counts(CAMPAIGN).await.unwrap().pending, 4);
        assert_eq!(
            store
                .outbox_for(s.participant, Some(CAMPAIGN))
                .await
                .unwrap()
                .len(),
            4
        );
    })
    .await;
}

#[tokio::test]
async fn replanning_adds_and_removes_only_future_pending_rows() {
    on_each_backend(|store, db| async move {
        // Arrange: slots at +1 h, +2 h, +3 h; the +1 h one gets published.
        let s = striker(&*store, "ada", 1).await;
        planned(&*store, &s, &[1, 2, 3]).await;
        let now = t0() + Duration::minutes(90);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        store
            .begin_sending("w", &ids(&claimed), now, Duration::seconds(60))
            .await
            .unwrap();
        store
            .record(
                &[Outcome::Published {
                    id: claimed[0].id,
                    remote_id: "r1".into(),
                    remote_url: None,
                    text: "on strike".into(),
                }],
                now,
            )
            .await
            .unwrap();

        // Act: the new plan drops +1 h and +2 h and adds +4 h.
        let applied = store
            .apply_plans(
                &[PledgePlan {
                    pledge_id: s.pledge,
                    campaign_id: CAMPAIGN.parse().unwrap(),
                    rows: plan(&s.accounts, &[3, 4]),
                }],
                now,
            )
            .await
            .unwrap();

        // Assert
        let rows = store.outbox_for(s.participant, None).await.unwrap();
        let slots: Vec<(&str, OutboxState)> = rows
            .iter()
            .map(|r| (r.slot_key.as_str(), r.state))
            .collect();
        assert_eq!(applied.upserted, 1, "{db}");
        assert_eq!(applied.removed, 1, "{db}");
        assert_eq!(
            slots,
            vec![
                ("notice@1", OutboxState::Published),
                ("notice@3", OutboxState::Pending),
                ("notice@4", OutboxState::Pending),
            ],
            "{db}"
        );
        assert_eq!(rows[0].text.as_deref(), Some("on strike"));
    })
    .await;
}

#[tokio::test]
async fn whether_the_operator_added_an_account_is_kept_and_comes_with_its_claimed_posts() {
    on_each_backend(|store, db| async move {
        // Arrange: a striker whose first account the operator added (see `striker`).
        let s = striker(&*store, "op", 2).await;
        planned(&*store, &s, &[1]).await;
        let now = t0() + Duration::days(1);

        // Act
        let first = store.get_account(s.accounts[0]).await.unwrap().unwrap();
        let listed = store.list_accounts(s.participant).await.unwrap();
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(5), 10)
            .await
            .unwrap();

        // Assert
        assert!(first.trusted, "{db}");
        assert_eq!(
            listed.iter().map(|a| a.trusted).collect::<Vec<_>>(),
            [true, false],
            "{db}"
        );
        assert_eq!(claimed.len(), 2, "{db}");
        for post in &claimed {
            assert_eq!(post.trusted, post.account_id == s.accounts[0], "{db}");
        }
    })
    .await;
}

/// A database at `url` as picket 0005 left it (migrations before 0006 applied), with the
/// command line's own participant and a web participant, one account each (ids 1 and 2,
/// the first of a fresh database).
async fn as_0005_left_it(url: &str) {
    let pg = url.starts_with("postgres");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(if pg {
        "migrations/postgres"
    } else {
        "migrations/sqlite"
    });
    let mut migrator = sqlx::migrate::Migrator::new(dir).await.unwrap();
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version < 6)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let mut rows = Vec::new();
    for (id, local) in [(1, "TRUE"), (2, "FALSE")] {
        rows.push(format!(
            "INSERT INTO participants (name, tz, is_local, invite_code, created_at) \
             VALUES ('p{id}', 'UTC', {local}, 'code{id}', 0)"
        ));
        rows.push(format!(
            "INSERT INTO accounts (participant_id, network, handle, server, credentials, \
             status, created_at, updated_at) \
             VALUES ({id}, 'mastodon', 'a{id}', 'http://127.0.0.1:1', '', 'active', 0, 0)"
        ));
    }
    if pg {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        migrator.run(&pool).await.unwrap();
        for sql in rows {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    } else {
        let options = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .unwrap()
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        migrator.run(&pool).await.unwrap();
        for sql in rows {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool.close().await;
    }
}

#[tokio::test]
async fn accounts_added_on_the_command_line_before_0006_become_trusted_and_others_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut urls = vec![format!(
        "sqlite://{}",
        dir.path().join("picket.db").display()
    )];
    let mut pg_drop = None;
    if let Some(admin) = crate::support::require_server("PICKET_TEST_POSTGRES_URL") {
        let db = format!("t_{:016x}", rand::random::<u64>());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {db}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let mut url = url::Url::parse(&admin).unwrap();
        url.set_path(&db);
        urls.push(url.to_string());
        pg_drop = Some((admin, db));
    }
    for url in urls {
        // Arrange
        as_0005_left_it(&url).await;

        // Act: open it as picket does now (0006 applies).
        let store = store::open(&url).await.unwrap();
        let cli = store.get_account(AccountId(1)).await.unwrap().unwrap();
        let web = store.get_account(AccountId(2)).await.unwrap().unwrap();

        // Assert
        assert!(cli.trusted, "{url}");
        assert!(!web.trusted, "{url}");
    }
    if let Some((admin, db)) = pg_drop {
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
        sqlx::query(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {db} WITH (FORCE)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}

#[tokio::test]
async fn concurrent_claimers_never_get_the_same_row() {
    on_each_backend(|store, db| async move {
        // Arrange: 300 due posts.
        let mut expected = 0;
        for i in 0..3 {
            let s = striker(&*store, &format!("s{i}"), 10).await;
            planned(&*store, &s, &(0..10).collect::<Vec<_>>()).await;
            expected += 100;
        }
        let now = t0() + Duration::days(1);

        // Act: 8 workers claim small batches until nothing is left.
        let mut tasks = Vec::new();
        for w in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let batch = store
                        .claim_due(&format!("w{w}"), now, now + Duration::minutes(5), 7)
                        .await
                        .unwrap();
                    if batch.is_empty() {
                        return mine;
                    }
                    mine.extend(ids(&batch));
                }
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }

        // Assert
        let distinct: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), expected, "{db}");
        assert_eq!(distinct.len(), expected, "{db}: a row was claimed twice");
    })
    .await;
}

#[tokio::test]
async fn an_expired_lease_is_reclaimed_and_flagged_outcome_unknown() {
    on_each_backend(|store, db| async move {
        // Arrange: w1 claims two posts, starts sending one, then vanishes.
        let s = striker(&*store, "ada", 1).await;
        planned(&*store, &s, &[0, 1]).await;
        let now = t0() + Duration::minutes(61);
        let lease = now + Duration::minutes(1);
        let claimed = store.claim_due("w1", now, lease, 10).await.unwrap();
        let sending = store
            .begin_sending("w1", &[claimed[0].id], now, Duration::hours(1))
            .await
            .unwrap();

        // Act
        let too_early = store.claim_due("w2", now, lease, 10).await.unwrap();
        let later = lease + Duration::seconds(1);
        let reclaimed = store
            .claim_due("w2", later, later + Duration::minutes(1), 10)
            .await
            .unwrap();
        let stale = store
            .begin_sending("w1", &ids(&claimed), later, Duration::hours(1))
            .await
            .unwrap();
        let resent = store
            .begin_sending("w2", &ids(&reclaimed), later, Duration::hours(1))
            .await
            .unwrap();

        // Assert
        assert_eq!(sending, vec![claimed[0].id], "{db}");
        assert!(too_early.is_empty(), "{db}: a live lease was taken");
        assert_eq!(ids(&reclaimed), ids(&claimed), "{db}");
        assert!(reclaimed[0].outcome_unknown, "{db}: reclaimed from sending");
        assert!(
            !reclaimed[1].outcome_unknown,
            "{db}: reclaimed from claimed"
        );
        assert_eq!(reclaimed[0].idempotency_key, claimed[0].idempotency_key);
        assert_eq!(
            reclaimed[0].credentials.as_bytes(),
            [1, 2, 3, 0, s.accounts[0].0 as u8],
            "{db}: as sealed for the account's id"
        );
        assert_eq!(reclaimed[0].tz, "Europe/Berlin");
        assert!(stale.is_empty(), "{db}: the old worker lost its lease");
        assert_eq!(resent.len(), 2, "{db}");
    })
    .await;
}

#[tokio::test]
async fn a_silent_workers_posts_are_taken_over_at_once_and_a_live_ones_are_kept() {
    on_each_backend(|store, db| async move {
        // Arrange: three posts leased for a minute: one `sending` by w1, which then goes
        // silent; one by w2, alive; one by a worker that never beat.
        let s = striker(&*store, "ada", 3).await;
        planned(&*store, &s, &[0]).await;
        let now = t0() + Duration::minutes(1);
        let lease = now + Duration::minutes(1);
        store.heartbeat("w1", now).await.unwrap();
        store.heartbeat("w2", now).await.unwrap();
        let by_w1 = store.claim_due("w1", now, lease, 1).await.unwrap();
        store
            .begin_sending("w1", &ids(&by_w1), now, Duration::hours(1))
            .await
            .unwrap();
        let by_w2 = store.claim_due("w2", now, lease, 1).await.unwrap();
        let by_ghost = store.claim_due("ghost", now, lease, 1).await.unwrap();
        let later = now + Duration::seconds(10);
        store.heartbeat("w2", later).await.unwrap();

        // Act: w2 looks for workers silent for 5 s; then a starting w3 also for owners
        // that never beat.
        let silent = Duration::seconds(5);
        let taken = store
            .take_over_leases("w2", DeadWorkers::SilentSince(later - silent), later)
            .await
            .unwrap();
        let claimed = store
            .claim_due("w3", later, later + Duration::minutes(1), 10)
            .await
            .unwrap();
        store.heartbeat("w3", later).await.unwrap();
        let at_start = store
            .take_over_leases(
                "w3",
                DeadWorkers::SilentSinceOrUnknown(later - silent),
                later,
            )
            .await
            .unwrap();
        let then = store
            .claim_due("w3", later, later + Duration::minutes(1), 10)
            .await
            .unwrap();

        // Assert
        assert_eq!(taken, 1, "{db}");
        assert_eq!(
            ids(&claimed),
            ids(&by_w1),
            "{db}: w1's post, not w2's nor the ghost's"
        );
        assert!(claimed[0].outcome_unknown, "{db}: it was on the wire");
        assert_eq!(at_start, 1, "{db}");
        assert_eq!(ids(&then), ids(&by_ghost), "{db}: w2 is alive");
        assert_eq!((by_w2.len(), by_ghost.len()), (1, 1), "{db}");
    })
    .await;
}

#[tokio::test]
async fn a_post_whose_outcome_is_unknown_is_left_to_be_read_back_before_it_is_missed() {
    on_each_backend(|store, db| async move {
        // Arrange: a post sent once with an unknown outcome (a lost answer), waiting to
        // retry; another that was never sent. Both windows end at +1 h.
        let s = striker(&*store, "ada", 2).await;
        planned(&*store, &s, &[0]).await;
        let now = t0() + Duration::minutes(1);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        store
            .begin_sending("w", &[claimed[0].id], now, Duration::seconds(60))
            .await
            .unwrap();
        store
            .record(
                &[Outcome::Retry {
                    id: claimed[0].id,
                    run_at: now + Duration::hours(2),
                    error: "lost answer".into(),
                    maybe_sent: true,
                }],
                now,
            )
            .await
            .unwrap();
        let grace = Duration::seconds(60);
        let closed = t0() + Duration::hours(1) + grace + Duration::seconds(1);

        // Act
        let at_close = store.expire_missed(closed, grace).await.unwrap();
        let given_up = store
            .expire_missed(closed + store::READ_BACK_WITHIN, grace)
            .await
            .unwrap();

        // Assert: the unsent one is missed when the window closes; the unknown one only
        // when reading it back has had its time, and says its outcome is unknown.
        assert_eq!((at_close, given_up), (1, 1), "{db}");
        let rows = store
            .outbox_for(s.participant, Some(CAMPAIGN))
            .await
            .unwrap();
        let unknown = rows.iter().find(|r| r.id == claimed[0].id).unwrap();
        assert_eq!(unknown.state, OutboxState::Missed, "{db}");
        assert!(
            unknown
                .last_error
                .as_deref()
                .unwrap()
                .contains("outcome unknown"),
            "{db}: {unknown:?}"
        );
    })
    .await;
}

/// Run `sql`, binding `id`, straight on the database under the store: a row edited by hand
/// or by a bug, which the store itself would never write.
async fn under_the_store(url: &str, sql: &str, id: OutboxId) {
    let sql = AssertSqlSafe(sql.to_string());
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sql)
            .bind(id.0)
            .execute(&mut conn)
            .await
            .unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql)
            .bind(id.0)
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_due_post_the_store_cannot_read_is_failed_with_its_reason_and_the_others_are_claimed() {
    on_each_database(|store, db, url| async move {
        // Arrange: four posts due; one has an instant no clock can hold and, on SQLite (whose
        // columns take any type), one has text where a number belongs.
        let s = striker(&*store, "ada", 1).await;
        planned(&*store, &s, &[0, 1, 2, 3]).await;
        let rows = store.outbox_for(s.participant, None).await.unwrap();
        let all: Vec<OutboxId> = rows.iter().map(|r| r.id).collect();
        let mut bad = vec![all[1]];
        under_the_store(
            &url,
            "UPDATE outbox SET slot_at = 9223372036854775807 WHERE id = $1",
            all[1],
        )
        .await;
        if db == "sqlite" {
            under_the_store(
                &url,
                "UPDATE outbox SET day = 'second' WHERE id = $1",
                all[2],
            )
            .await;
            bad.push(all[2]);
        }
        let good: Vec<OutboxId> = all.iter().copied().filter(|id| !bad.contains(id)).collect();
        let now = t0() + Duration::hours(3) + Duration::minutes(1);
        let lease = now + Duration::minutes(1);

        // Act
        let claimed = store.claim_due("w", now, lease, 10).await;
        let later = lease + Duration::seconds(1);
        let reclaimed = store
            .claim_due("w2", later, later + Duration::minutes(1), 10)
            .await
            .unwrap();

        // Assert
        let claimed = claimed.unwrap_or_else(|e| panic!("{db}: the whole batch failed: {e}"));
        assert_eq!(ids(&claimed), good, "{db}");
        let rows = store.outbox_for(s.participant, None).await.unwrap();
        for row in rows.iter().filter(|r| bad.contains(&r.id)) {
            assert_eq!(row.state, OutboxState::Failed, "{db}: post {}", row.id);
            let reason = row.last_error.as_deref().unwrap_or_default();
            assert!(reason.starts_with("unreadable row: "), "{db}: {reason}");
        }
        assert_eq!(
            ids(&reclaimed),
            good,
            "{db}: only the readable leases lapse and return"
        );
    })
    .await;
}

#[tokio::test]
async fn withdrawing_cancels_unsent_posts_and_reports_those_in_flight() {
    on_each_backend(|store, db| async move {
        // Arrange: one post sending, one claimed, one pending in the future.
        let s = striker(&*store, "ada", 1).await;
        planned(&*store, &s, &[0, 1, 5]).await;
        let now = t0() + Duration::minutes(61);
        let lease = now + Duration::minutes(1);
        let claimed = store.claim_due("w", now, lease, 10).await.unwrap();
        store
            .begin_sending("w", &[claimed[0].id], now, Duration::seconds(60))
            .await
            .unwrap();

        // Act
        let withdrawal = store
            .withdraw(s.participant, CAMPAIGN, None, now)
            .await
            .unwrap();
        let late_send = store
            .begin_sending("w", &[claimed[1].id], now, Duration::seconds(60))
            .await
            .unwrap();
        let much_later = t0() + Duration::hours(6);
        let after = store
            .claim_due("w2", much_later, much_later + Duration::minutes(1), 10)
            .await
            .unwrap();

        // Assert
        assert_eq!(withdrawal.cancelled, 2, "{db}");
        assert_eq!(withdrawal.in_flight, vec![claimed[0].id], "{db}");
        assert!(
            late_send.is_empty(),
            "{db}: a claimed post was sent after withdrawal"
        );
        assert!(
            after.is_empty(),
            "{db}: a withdrawn pledge's post was claimed"
        );
        assert_eq!(
            state_of(&*store, claimed[1].id).await,
            OutboxState::Cancelled
        );
        let pledge = store.get_pledge(s.pledge).await.unwrap().unwrap();
        assert_eq!(pledge.status, store::PledgeStatus::Withdrawn);
        assert_eq!(pledge.withdrawn_at, Some(now));
    })
    .await;
}

#[tokio::test]
async fn a_withdrawal_racing_a_send_either_stops_it_or_reports_it_in_flight() {
    on_each_backend(|store, db| async move {
        // Arrange: 40 strikers, each with one claimed post.
        let mut strikers = Vec::new();
        for i in 0..40 {
            let s = striker(&*store, &format!("s{i}"), 1).await;
            planned(&*store, &s, &[0]).await;
            strikers.push(s);
        }
        let now = t0() + Duration::minutes(1);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(5), 100)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 40);

        // Act: every post's send and its pledge's withdrawal race each other.
        let mut tasks = Vec::new();
        for post in &claimed {
            let (store_a, store_b) = (store.clone(), store.clone());
            let id = post.id;
            let participant = strikers
                .iter()
                .find(|s| s.pledge == post.pledge_id)
                .unwrap()
                .participant;
            let send = tokio::spawn(async move {
                store_a
                    .begin_sending("w", &[id], now, Duration::seconds(60))
                    .await
                    .unwrap()
            });
            let withdraw = tokio::spawn(async move {
                store_b
                    .withdraw(participant, CAMPAIGN, None, now)
                    .await
                    .unwrap()
            });
            tasks.push((id, send, withdraw));
        }

        // Assert: a post that went to `sending` is reported; one that did not is cancelled.
        let mut sent = 0;
        for (id, send, withdraw) in tasks {
            let went_out = send.await.unwrap() == vec![id];
            let withdrawal = withdraw.await.unwrap();
            sent += usize::from(went_out);
            assert_eq!(
                withdrawal.in_flight.contains(&id),
                went_out,
                "{db}: post {id}"
            );
            assert_eq!(
                withdrawal.cancelled,
                u64::from(!went_out),
                "{db}: post {id}"
            );
        }
        println!("{db}: {sent} of 40 sends won the race");
    })
    .await;
}

#[tokio::test]
async fn withdrawing_one_account_keeps_the_others_posting() {
    on_each_backend(|store, db| async move {
        // Arrange
        let s = striker(&*store, "ada", 2).await;
        planned(&*store, &s, &[1]).await;

        // Act
        let withdrawal = store
            .withdraw(s.participant, CAMPAIGN, Some(s.accounts[0]), t0())
            .await
            .unwrap();
        let now = t0() + Duration::hours(1);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();

        // Assert
        assert_eq!(withdrawal.cancelled, 1, "{db}");
        assert_eq!(claimed.len(), 1, "{db}");
        assert_eq!(claimed[0].account_id, s.accounts[1]);
        let pledge = store.get_pledge(s.pledge).await.unwrap().unwrap();
        assert_eq!(pledge.account_ids, vec![s.accounts[1]]);
        assert_eq!(pledge.status, store::PledgeStatus::Active);
    })
    .await;
}

#[tokio::test]
async fn rejoining_after_withdrawal_revives_the_planned_posts() {
    on_each_backend(|store, db| async move {
        // Arrange
        let s = striker(&*store, "ada", 1).await;
        planned(&*store, &s, &[2]).await;
        store
            .withdraw(s.participant, CAMPAIGN, None, t0())
            .await
            .unwrap();
        let ignored = store
            .apply_plan(
                s.pledge,
                &CAMPAIGN.parse().unwrap(),
                &plan(&s.accounts, &[2]),
                t0(),
            )
            .await
            .unwrap();

        // Act
        let again = striker_rejoins(&*store, &s).await;
        let applied = store
            .apply_plan(
                again,
                &CAMPAIGN.parse().unwrap(),
                &plan(&s.accounts, &[2]),
                t0(),
            )
            .await
            .unwrap();

        // Assert
        assert_eq!(ignored.skipped, 1, "{db}: a withdrawn pledge was planned");
        assert_eq!(again, s.pledge, "{db}");
        assert_eq!(applied.upserted, 1, "{db}");
        let now = t0() + Duration::hours(2);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{db}");
    })
    .await;
}

async fn striker_rejoins(store: &dyn Store, s: &Striker) -> PledgeId {
    store
        .upsert_pledge(
            &NewPledge {
                participant_id: s.participant,
                campaign_id: CAMPAIGN.parse().unwrap(),
                tz: "Europe/Berlin".parse().unwrap(),
                days: None,
                every_secs: None,
                account_ids: s.accounts.clone(),
            },
            t0(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_reconnect_parks_posts_until_the_account_is_active_again() {
    on_each_backend(|store, db| async move {
        // Arrange: the network rejects the credentials of the first attempt.
        let s = striker(&*store, "ada", 1).await;
        planned(&*store, &s, &[0]).await;
        let now = t0() + Duration::minutes(1);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        store
            .begin_sending("w", &ids(&claimed), now, Duration::seconds(60))
            .await
            .unwrap();
        store
            .record(
                &[Outcome::Reconnect {
                    id: claimed[0].id,
                    account_id: s.accounts[0],
                    reason: "token revoked".into(),
                }],
                now,
            )
            .await
            .unwrap();

        // Act
        let while_parked = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        let account = store.get_account(s.accounts[0]).await.unwrap().unwrap();
        store
            .set_account_status(s.accounts[0], AccountStatus::Active, None, now)
            .await
            .unwrap();
        let resumed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();

        // Assert
        assert!(while_parked.is_empty(), "{db}");
        assert_eq!(account.status, AccountStatus::ReconnectNeeded);
        assert_eq!(account.status_reason.as_deref(), Some("token revoked"));
        assert_eq!(ids(&resumed), ids(&claimed), "{db}");
        assert_eq!(resumed[0].attempts, 1);
        assert_eq!(resumed[0].last_error.as_deref(), Some("token revoked"));
    })
    .await;
}

#[tokio::test]
async fn removing_an_account_wipes_its_credentials_and_cancels_its_posts() {
    on_each_backend(|store, db| async move {
        // Arrange
        let s = striker(&*store, "ada", 2).await;
        planned(&*store, &s, &[1, 2]).await;

        // Act
        let removed = store.remove_account(s.accounts[0], t0()).await.unwrap();
        let reactivate = store
            .set_account_status(s.accounts[0], AccountStatus::Active, None, t0())
            .await;

        // Assert
        let account = store.get_account(s.accounts[0]).await.unwrap().unwrap();
        assert_eq!(removed.cancelled, 2, "{db}");
        assert!(account.credentials.is_empty());
        assert_eq!(account.status, AccountStatus::Removed);
        assert!(matches!(reactivate, Err(StoreError::NotFound(_))), "{db}");
        assert_eq!(store.list_accounts(s.participant).await.unwrap().len(), 1);
        let pledge = store.get_pledge(s.pledge).await.unwrap().unwrap();
        assert_eq!(pledge.account_ids, vec![s.accounts[1]]);
    })
    .await;
}

#[tokio::test]
async fn deleting_a_participant_removes_their_accounts_pledges_and_posts() {
    on_each_backend(|store, db| async move {
        // Arrange: one post sending, one pending.
        let s = striker(&*store, "ada", 1).await;
        let other = striker(&*store, "bob", 1).await;
        planned(&*store, &s, &[0, 3]).await;
        planned(&*store, &other, &[3]).await;
        let claimed = store
            .claim_due("w", t0(), t0() + Duration::minutes(1), 1)
            .await
            .unwrap();
        store
            .begin_sending("w", &ids(&claimed), t0(), Duration::seconds(60))
            .await
            .unwrap();

        // Act
        let deleted = store.delete_participant(s.participant).await.unwrap();
        let again = store.delete_participant(s.participant).await;

        // Assert
        assert_eq!(deleted.cancelled, 1, "{db}");
        assert_eq!(deleted.in_flight, ids(&claimed), "{db}");
        assert!(
            store
                .get_participant(s.participant)
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.get_account(s.accounts[0]).await.unwrap().is_none());
        assert!(store.get_pledge(s.pledge).await.unwrap().is_none());
        assert!(
            store
                .outbox_states(&ids(&claimed))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(again, Err(StoreError::NotFound(_))), "{db}");
        assert_eq!(
            store.outbox_counts(CAMPAIGN).await.unwrap().pending,
            1,
            "{db}"
        );
    })
    .await;
}

#[tokio::test]
async fn cancelling_a_campaign_stops_all_its_unsent_posts() {
    on_each_backend(|store, db| async move {
        // Arrange
        let a = striker(&*store, "a", 1).await;
        let b = striker(&*store, "b", 1).await;
        planned(&*store, &a, &[1, 2]).await;
        planned(&*store, &b, &[1]).await;

        // Act
        let stopped = store
            .cancel_campaign(CAMPAIGN, "called off", t0())
            .await
            .unwrap();
        store
            .cancel_campaign(CAMPAIGN, "again", t0() + Duration::hours(1))
            .await
            .unwrap();
        let replanned = store
            .apply_plan(
                a.pledge,
                &CAMPAIGN.parse().unwrap(),
                &plan(&a.accounts, &[1, 2]),
                t0(),
            )
            .await
            .unwrap();
        let now = t0() + Duration::hours(3);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();

        // Assert
        assert_eq!(
            replanned.skipped, 1,
            "{db}: a cancelled campaign was planned"
        );
        let cancelled = store.campaign_cancelled(CAMPAIGN).await.unwrap().unwrap();
        assert_eq!(stopped.cancelled, 3, "{db}");
        assert!(claimed.is_empty(), "{db}");
        assert_eq!(cancelled.at, t0(), "the first cancellation stands");
        assert_eq!(cancelled.reason, "called off");
        assert!(store.campaign_cancelled("other").await.unwrap().is_none());
        assert_eq!(store.outbox_counts(CAMPAIGN).await.unwrap().cancelled, 3);
    })
    .await;
}

#[tokio::test]
async fn posts_past_their_window_and_grace_are_marked_missed() {
    on_each_backend(|store, db| async move {
        // Arrange: windows end at +1 h (slot 0) and +2 h (slot 1); slot 0 is leased and waits.
        let s = striker(&*store, "ada", 1).await;
        planned(&*store, &s, &[0, 1]).await;
        let claimed = store
            .claim_due("w", t0(), t0() + Duration::hours(3), 1)
            .await
            .unwrap();
        let grace = Duration::seconds(60);
        let late = t0() + Duration::hours(1) + Duration::seconds(61);

        // Act
        let refused = store
            .begin_sending("w", &ids(&claimed), late, grace)
            .await
            .unwrap();
        let within_grace = store
            .expire_missed(t0() + Duration::hours(1) + Duration::seconds(30), grace)
            .await
            .unwrap();
        let expired = store.expire_missed(late, grace).await.unwrap();

        // Assert
        assert!(refused.is_empty(), "{db}: sending past the window");
        assert_eq!(within_grace, 0, "{db}");
        assert_eq!(expired, 1, "{db}");
        let rows = store
            .outbox_for(s.participant, Some(CAMPAIGN))
            .await
            .unwrap();
        assert_eq!(rows[0].state, OutboxState::Missed);
        assert!(
            rows[0]
                .last_error
                .as_deref()
                .unwrap()
                .contains("window closed")
        );
        assert_eq!(rows[1].state, OutboxState::Pending);
    })
    .await;
}

#[tokio::test]
async fn outcomes_are_recorded_and_published_slots_are_never_duplicated() {
    on_each_backend(|store, db| async move {
        // Arrange
        let s = striker(&*store, "ada", 1).await;
        planned(&*store, &s, &[0, 1, 2]).await;
        let now = t0() + Duration::minutes(150);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        let sending = store
            .begin_sending("w", &ids(&claimed), now, Duration::hours(3))
            .await
            .unwrap();
        let retry_at = now + Duration::minutes(5);

        // Act
        store
            .record(
                &[
                    Outcome::Published {
                        id: sending[0],
                        remote_id: "1".into(),
                        remote_url: Some("https://example.org/1".into()),
                        text: "hi".into(),
                    },
                    Outcome::Retry {
                        id: sending[1],
                        run_at: retry_at,
                        error: "HTTP 503".into(),
                        maybe_sent: true,
                    },
                    Outcome::Failed {
                        id: sending[2],
                        reason: "content rejected".into(),
                    },
                ],
                now,
            )
            .await
            .unwrap();

        // Assert
        let all = store.outbox_for(s.participant, None).await.unwrap();
        let row = |id: OutboxId| all.iter().find(|r| r.id == id).unwrap();
        let rows = [row(sending[0]), row(sending[1]), row(sending[2])];
        assert_eq!(rows[0].state, OutboxState::Published, "{db}");
        assert_eq!(rows[0].published_at, Some(now));
        assert_eq!(rows[0].remote_url.as_deref(), Some("https://example.org/1"));
        assert_eq!(rows[1].state, OutboxState::Pending);
        assert_eq!(rows[1].run_at, retry_at);
        assert_eq!(rows[1].last_error.as_deref(), Some("HTTP 503"));
        assert!(
            rows[1].outcome_unknown,
            "{db}: a 503 may come after the post was stored"
        );
        assert_eq!(rows[2].state, OutboxState::Failed);
        let counts = store.outbox_counts(CAMPAIGN).await.unwrap();
        assert_eq!((counts.published, counts.pending, counts.failed), (1, 1, 1));
        assert_eq!(
            store.published_per_slot_duplicates(CAMPAIGN).await.unwrap(),
            0
        );
        assert_eq!(store.next_due_at().await.unwrap(), Some(retry_at));
    })
    .await;
}

#[tokio::test]
async fn a_post_planned_without_a_key_is_claimed_with_the_derived_one_and_a_given_key_is_kept() {
    on_each_backend(|store, db| async move {
        // Arrange: the planner leaves the key empty; a plan may also bring one of its own.
        let s = striker(&*store, "ada", 1).await;
        let mut rows = plan(&s.accounts, &[0, 1]);
        rows[0].idempotency_key = String::new();
        store
            .apply_plan(s.pledge, &CAMPAIGN.parse().unwrap(), &rows, t0())
            .await
            .unwrap();

        // Act
        let now = t0() + Duration::minutes(61);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();

        // Assert
        assert_eq!(claimed.len(), 2, "{db}");
        assert_eq!(
            claimed[0].idempotency_key,
            store::derived_idempotency_key(CAMPAIGN, s.accounts[0], "notice@0"),
            "{db}"
        );
        assert_eq!(claimed[1].idempotency_key, rows[1].idempotency_key, "{db}");
    })
    .await;
}

#[tokio::test]
async fn a_post_due_later_within_the_same_ten_seconds_is_not_claimed_early() {
    on_each_backend(|store, db| async move {
        // Arrange: both in the claim index's 10 s bucket of t0.
        let s = striker(&*store, "ada", 1).await;
        let mut rows = plan(&s.accounts, &[0, 1]);
        rows[0].run_at = t0() + Duration::seconds(1);
        rows[1].run_at = t0() + Duration::seconds(8);
        store
            .apply_plan(s.pledge, &CAMPAIGN.parse().unwrap(), &rows, t0())
            .await
            .unwrap();

        // Act
        let now = t0() + Duration::seconds(5);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        let next = store.next_due_at().await.unwrap();

        // Assert
        assert_eq!(claimed.len(), 1, "{db}");
        assert_eq!(claimed[0].run_at, t0() + Duration::seconds(1), "{db}");
        assert_eq!(next, Some(t0() + Duration::seconds(8)), "{db}");
    })
    .await;
}

#[tokio::test]
async fn next_due_at_is_the_earliest_claimable_instant() {
    on_each_backend(|store, db| async move {
        // Arrange
        let empty = store.next_due_at().await.unwrap();
        let a = striker(&*store, "a", 1).await;
        let b = striker(&*store, "b", 1).await;
        planned(&*store, &a, &[3]).await;
        planned(&*store, &b, &[2]).await;

        // Act
        let both = store.next_due_at().await.unwrap();
        store
            .withdraw(b.participant, CAMPAIGN, None, t0())
            .await
            .unwrap();
        let after_withdrawal = store.next_due_at().await.unwrap();
        let now = t0() + Duration::hours(3);
        store
            .claim_due("w", now, now + Duration::minutes(2), 10)
            .await
            .unwrap();
        let leased = store.next_due_at().await.unwrap();

        // Assert
        assert_eq!(empty, None, "{db}");
        assert_eq!(both, Some(t0() + Duration::hours(2)), "{db}");
        assert_eq!(after_withdrawal, Some(t0() + Duration::hours(3)), "{db}");
        assert_eq!(
            leased,
            Some(now + Duration::minutes(2)),
            "{db}: the lease expiry"
        );
    })
    .await;
}

#[tokio::test]
async fn a_signature_with_the_same_email_counts_once() {
    on_each_backend(|store, db| async move {
        // Arrange
        let sign = |name: &str, email: Option<&str>, public: bool, by: Option<&str>| NewSignature {
            campaign_id: CAMPAIGN.parse().unwrap(),
            name: name.into(),
            email_canonical: email.map(store::canonical_email),
            public,
            invited_by: by.map(str::to_string),
            confirmed: true,
            confirm_token_hash: None,
            email_consent: false,
        };

        // Act
        let first = store
            .add_signature(&sign("Ada", Some("Ada@Example.org "), true, None), t0())
            .await
            .unwrap();
        let repeat = store
            .add_signature(&sign("Ada L.", Some("ada@example.org"), true, None), t0())
            .await
            .unwrap();
        let code = first.invite_code.as_str();
        store
            .add_signature(&sign("Bob", None, false, Some(code)), t0())
            .await
            .unwrap();
        store
            .add_signature(&sign("Cy", None, true, Some(code)), t0())
            .await
            .unwrap();
        let elsewhere = store
            .add_signature(
                &NewSignature {
                    campaign_id: "other".parse().unwrap(),
                    ..sign("Ada", Some("ada@example.org"), true, None)
                },
                t0(),
            )
            .await
            .unwrap();

        // Assert
        assert!(!first.duplicate, "{db}");
        assert!(repeat.duplicate, "{db}");
        assert_eq!(repeat.id, first.id);
        assert_eq!(repeat.invite_code, first.invite_code);
        assert!(
            !elsewhere.duplicate,
            "{db}: another campaign counts separately"
        );
        assert_eq!(store.signature_count(CAMPAIGN).await.unwrap(), 3, "{db}");
        let public = store.public_signatures(CAMPAIGN, 10, 0).await.unwrap();
        let names: Vec<&str> = public.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["Ada", "Cy"]);
        assert_eq!(
            store
                .public_signatures(CAMPAIGN, 10, 1)
                .await
                .unwrap()
                .len(),
            1
        );
        let invites = store.invite_counts(CAMPAIGN).await.unwrap();
        assert_eq!(invites.len(), 1);
        assert_eq!((invites[0].code.as_str(), invites[0].count), (code, 2));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signatures_arriving_at_once_are_all_stored_and_each_person_counts_once() {
    on_each_backend(|store, db| async move {
        // Arrange: 100 people sign twice each and 50 without an address, all at the same
        // time, so that (on SQLite) they share group commits.
        let sign = |name: String, email: Option<String>| NewSignature {
            campaign_id: CAMPAIGN.parse().unwrap(),
            name,
            email_canonical: email.as_deref().map(store::canonical_email),
            public: false,
            invited_by: None,
            confirmed: true,
            confirm_token_hash: None,
            email_consent: false,
        };
        let mut all = Vec::new();
        for i in 0..100 {
            let email = format!("p{i}@example.org");
            all.push((i, sign(format!("P{i}"), Some(email.clone()))));
            all.push((i, sign(format!("P{i} again"), Some(email.to_uppercase()))));
        }
        for i in 100..150 {
            all.push((i, sign(format!("Anonymous {i}"), None)));
        }

        // Act
        let tasks: Vec<_> = all
            .into_iter()
            .map(|(person, new)| {
                let store = store.clone();
                tokio::spawn(async move { (person, store.add_signature(&new, t0()).await) })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            let (person, added) = t.await.unwrap();
            answers.push((person, added.unwrap()));
        }

        // Assert
        assert_eq!(store.signature_count(CAMPAIGN).await.unwrap(), 150, "{db}");
        let duplicates = answers.iter().filter(|(_, a)| a.duplicate).count();
        assert_eq!(
            duplicates, 100,
            "{db}: one repeat per person with an address"
        );
        let mut ids = std::collections::HashMap::new();
        for (person, added) in &answers {
            let id = *ids.entry(*person).or_insert(added.id);
            assert_eq!(
                id, added.id,
                "{db}: both answers of person {person} name one row"
            );
        }
        let distinct: std::collections::HashSet<_> = ids.values().collect();
        assert_eq!(distinct.len(), 150, "{db}");
    })
    .await;
}

#[tokio::test]
async fn an_unconfirmed_signature_counts_only_once_its_link_is_followed() {
    on_each_backend(|store, db| async move {
        // Arrange: Ada waits for her mail, Bob (no address) counts at once; Ada invited Cy.
        let unconfirmed = |name: &str, email: &str, hash: &str| NewSignature {
            campaign_id: CAMPAIGN.parse().unwrap(),
            name: name.into(),
            email_canonical: Some(store::canonical_email(email)),
            public: true,
            invited_by: None,
            confirmed: false,
            confirm_token_hash: Some(hash.into()),
            email_consent: false,
        };
        let ada = store
            .add_signature(&unconfirmed("Ada", "ada@example.org", "h1"), t0())
            .await
            .unwrap();
        store
            .add_signature(
                &NewSignature {
                    campaign_id: CAMPAIGN.parse().unwrap(),
                    name: "Bob".into(),
                    email_canonical: None,
                    public: true,
                    invited_by: None,
                    confirmed: true,
                    confirm_token_hash: None,
                    email_consent: false,
                },
                t0(),
            )
            .await
            .unwrap();
        store
            .add_signature(
                &NewSignature {
                    invited_by: Some(ada.invite_code.clone()),
                    ..unconfirmed("Cy", "cy@example.org", "h9")
                },
                t0(),
            )
            .await
            .unwrap();
        let before = store.signature_count(CAMPAIGN).await.unwrap();
        let listed_before = store.public_signatures(CAMPAIGN, 10, 0).await.unwrap();

        // Act: a repeat within the resend gap, one after it, then the links.
        let repeat = store
            .add_signature(&unconfirmed("Ada", "ada@example.org", "h2"), t0())
            .await
            .unwrap();
        let too_soon = store
            .renew_signature_confirmation(ada.id, "h2", t0(), t0() - Duration::minutes(5))
            .await
            .unwrap();
        let later = t0() + Duration::minutes(10);
        let renewed = store
            .renew_signature_confirmation(ada.id, "h2", later, later - Duration::minutes(5))
            .await
            .unwrap();
        let old_link = store.confirm_signature(CAMPAIGN, "h1").await.unwrap();
        let other_campaign = store.confirm_signature("other", "h2").await.unwrap();
        let first = store.confirm_signature(CAMPAIGN, "h2").await.unwrap();
        let again = store.confirm_signature(CAMPAIGN, "h2").await.unwrap();
        let renew_confirmed = store
            .renew_signature_confirmation(ada.id, "h3", later, later)
            .await
            .unwrap();

        // Assert
        assert_eq!(before, 1, "{db}: only Bob counts before Ada confirms");
        let names: Vec<&str> = listed_before.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["Bob"], "{db}");
        assert!(repeat.duplicate && !repeat.confirmed, "{db}");
        assert!(!too_soon, "{db}: mailed at t0, so no new mail at t0");
        assert!(renewed, "{db}");
        assert_eq!(old_link, None, "{db}: a renewed token replaces the old one");
        assert_eq!(other_campaign, None, "{db}");
        let first = first.unwrap();
        assert!(first.newly, "{db}");
        assert_eq!(
            (first.name.as_str(), first.invite_code.as_str()),
            ("Ada", ada.invite_code.as_str())
        );
        assert!(!again.unwrap().newly, "{db}: confirming twice is harmless");
        assert!(
            !renew_confirmed,
            "{db}: a confirmed signature gets no more mail"
        );
        assert_eq!(store.signature_count(CAMPAIGN).await.unwrap(), 2, "{db}");
        assert!(
            store.invite_counts(CAMPAIGN).await.unwrap().is_empty(),
            "{db}: Cy, unconfirmed, is not counted as invited"
        );
    })
    .await;
}

#[tokio::test]
async fn a_failed_confirmation_mail_can_be_retried_at_once() {
    on_each_backend(|store, db| async move {
        // Arrange
        let added = store
            .add_signature(
                &NewSignature {
                    campaign_id: CAMPAIGN.parse().unwrap(),
                    name: "Ada".into(),
                    email_canonical: Some("ada@example.org".into()),
                    confirm_token_hash: Some("h1".into()),
                    public: false,
                    invited_by: None,
                    confirmed: false,
                    email_consent: false,
                },
                t0(),
            )
            .await
            .unwrap();

        // Act
        store.confirmation_not_sent(added.id).await.unwrap();
        let retried = store
            .renew_signature_confirmation(added.id, "h2", t0(), t0() - Duration::minutes(5))
            .await
            .unwrap();

        // Assert
        assert!(retried, "{db}");
    })
    .await;
}

/// Not a pass/fail check: prints the dispatcher's store throughput on SQLite
/// (`cargo test --release --test it dispatch_throughput -- --ignored --nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn dispatch_throughput_on_sqlite() {
    // Arrange: 2,000 strikers x 10 slots = 20,000 due posts.
    let db = TestDb::sqlite().await;
    let store = db.store.clone();
    let mut plans = Vec::new();
    for i in 0..2_000 {
        let s = striker(&*store, &format!("s{i}"), 1).await;
        plans.push(PledgePlan {
            pledge_id: s.pledge,
            campaign_id: CAMPAIGN.parse().unwrap(),
            rows: plan(&s.accounts, &(0..10).collect::<Vec<_>>()),
        });
    }
    let started = std::time::Instant::now();
    store.apply_plans(&plans, t0()).await.unwrap();
    let planned_in = started.elapsed();
    let now = t0() + Duration::hours(10);

    // Act: claim, begin sending and record batches of 500 until none are left.
    let started = std::time::Instant::now();
    let mut sent = 0;
    loop {
        let batch = store
            .claim_due("w", now, now + Duration::minutes(1), 500)
            .await
            .unwrap();
        if batch.is_empty() {
            break;
        }
        let sending = store
            .begin_sending("w", &ids(&batch), now, Duration::hours(24))
            .await
            .unwrap();
        let outcomes: Vec<Outcome> = sending
            .iter()
            .map(|id| Outcome::Published {
                id: *id,
                remote_id: id.to_string(),
                remote_url: None,
                text: "on strike".into(),
            })
            .collect();
        store.record(&outcomes, now).await.unwrap();
        sent += sending.len();
    }
    let elapsed = started.elapsed();

    // Assert
    println!(
        "planned 20,000 rows in {planned_in:?}; dispatched {sent} in {elapsed:?}: {:.0} posts/s",
        sent as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(sent, 20_000);
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_runs_out() {
    on_each_backend(|store, db| async move {
        // Arrange
        let later = t0() + Duration::minutes(10);

        // Act
        let a_takes = store.try_lease("planner", "a", t0(), later).await.unwrap();
        let b_while_held = store
            .try_lease("planner", "b", t0() + Duration::minutes(1), later)
            .await
            .unwrap();
        let a_renews = store
            .try_lease(
                "planner",
                "a",
                t0() + Duration::minutes(2),
                later + Duration::minutes(10),
            )
            .await
            .unwrap();
        let b_after_expiry = store
            .try_lease(
                "planner",
                "b",
                later + Duration::minutes(10),
                later + Duration::minutes(20),
            )
            .await
            .unwrap();

        // Assert
        assert!(a_takes, "{db}");
        assert!(!b_while_held, "{db}: a held lease is not taken");
        assert!(a_renews, "{db}: the holder renews");
        assert!(b_after_expiry, "{db}: a lapsed lease is taken over");
    })
    .await;
}

#[tokio::test]
async fn a_new_sqlite_database_and_its_wal_files_are_readable_by_their_owner_only() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("private.db");

    // Act: first use, with a write so the WAL and its index exist.
    let store = store::open(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    striker(&*store, "ada", 1).await;

    // Assert
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for name in ["private.db", "private.db-wal", "private.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{name}: {:o}", mode & 0o777);
        }
    }
}

#[tokio::test]
async fn a_magic_link_and_sessions_expire_and_end_each_on_its_own() {
    on_each_backend(|store, db| async move {
        // Arrange
        let ada = striker(&*store, "ada", 0).await.participant;
        let bob = striker(&*store, "bob", 0).await.participant;
        let week = t0() + Duration::days(7);

        // Act
        store.set_link(ada, Some(("link-1", week))).await.unwrap();
        let by_link = store.participant_by_link("link-1", t0()).await.unwrap();
        let expired = store.participant_by_link("link-1", week).await.unwrap();
        store.set_link(ada, Some(("link-2", week))).await.unwrap();
        let replaced = store.participant_by_link("link-1", t0()).await.unwrap();
        let ada_row = store.get_participant(ada).await.unwrap().unwrap();
        let no_one = store.set_link(ParticipantId(999_999), None).await;
        let day = t0() + Duration::days(1);
        for s in ["s-laptop", "s-phone"] {
            store.start_session(ada, s, day, false, t0()).await.unwrap();
        }
        store
            .start_session(bob, "s-bob", day, false, t0())
            .await
            .unwrap();
        let laptop = store
            .participant_by_session("s-laptop", t0())
            .await
            .unwrap();
        let laptop_late = store.participant_by_session("s-laptop", day).await.unwrap();
        store.end_session("s-laptop").await.unwrap();
        let laptop_ended = store
            .participant_by_session("s-laptop", t0())
            .await
            .unwrap();
        let phone = store.participant_by_session("s-phone", t0()).await.unwrap();
        store
            .start_session(ada, "s-new", day, true, t0())
            .await
            .unwrap();
        let phone_after = store.participant_by_session("s-phone", t0()).await.unwrap();
        let new = store.participant_by_session("s-new", t0()).await.unwrap();
        let bob_after = store.participant_by_session("s-bob", t0()).await.unwrap();
        let nobodys = store
            .start_session(ParticipantId(999_999), "s-x", day, false, t0())
            .await;
        store.set_link(ada, None).await.unwrap();
        let withdrawn = store.participant_by_link("link-2", t0()).await.unwrap();
        store.delete_participant(ada).await.unwrap();
        let deleted = store.participant_by_session("s-new", t0()).await.unwrap();

        // Assert
        assert_eq!(by_link.map(|p| p.id), Some(ada), "{db}");
        assert_eq!(expired, None, "{db}: a link ends at its expiry");
        assert_eq!(replaced, None, "{db}: a new link replaces the old one");
        assert_eq!(ada_row.link_expires_at, Some(week), "{db}");
        assert!(matches!(no_one, Err(StoreError::NotFound(_))), "{db}");
        assert_eq!(laptop.map(|p| p.id), Some(ada), "{db}");
        assert_eq!(laptop_late, None, "{db}: a session ends at its expiry");
        assert_eq!(laptop_ended, None, "{db}");
        assert_eq!(phone.map(|p| p.id), Some(ada), "{db}: other sessions go on");
        assert_eq!(phone_after, None, "{db}: end_others ended it");
        assert_eq!(new.map(|p| p.id), Some(ada), "{db}");
        assert_eq!(
            bob_after.map(|p| p.id),
            Some(bob),
            "{db}: not someone else's"
        );
        assert!(matches!(nobodys, Err(StoreError::NotFound(_))), "{db}");
        assert_eq!(withdrawn, None, "{db}");
        assert_eq!(deleted, None, "{db}: sessions go with the participant");
    })
    .await;
}

#[tokio::test]
async fn a_released_lease_is_taken_at_once_and_only_its_holder_releases_it() {
    on_each_backend(|store, db| async move {
        // Arrange: "a" holds the planner lease for 20 minutes.
        let until = t0() + Duration::minutes(20);
        assert!(store.try_lease("planner", "a", t0(), until).await.unwrap());

        // Act
        let stranger_released = store.release_lease("planner", "b").await.unwrap();
        let b_before = store
            .try_lease("planner", "b", t0() + Duration::seconds(1), until)
            .await
            .unwrap();
        let a_released = store.release_lease("planner", "a").await.unwrap();
        let again = store.release_lease("planner", "a").await.unwrap();
        let b_after = store
            .try_lease("planner", "b", t0() + Duration::seconds(2), until)
            .await
            .unwrap();

        // Assert
        assert!(!stranger_released, "{db}: only the holder releases");
        assert!(!b_before, "{db}: the lease was still held");
        assert!(a_released, "{db}: the holder released it");
        assert!(!again, "{db}: nothing left to release");
        assert!(b_after, "{db}: a released lease is taken at once");
    })
    .await;
}

#[tokio::test]
async fn the_mail_budget_allows_so_many_mails_per_address_in_a_window() {
    on_each_backend(|store, db| async move {
        // Arrange
        let hour = Duration::hours(1);
        let spend = |key: &'static str, at| {
            let store = store.clone();
            async move { store.spend_mail_budget(key, 2, hour, at).await.unwrap() }
        };

        // Act
        let first = spend("a", t0()).await;
        let left_after_one = store.mail_budget_left("a", 2, hour, t0()).await.unwrap();
        let second = spend("a", t0() + Duration::minutes(10)).await;
        let left_after_two = store.mail_budget_left("a", 2, hour, t0()).await.unwrap();
        let third = spend("a", t0() + Duration::minutes(59)).await;
        let other_address = spend("b", t0() + Duration::minutes(59)).await;
        let next_window = spend("a", t0() + Duration::minutes(60)).await;
        let nothing_allowed = store.spend_mail_budget("c", 0, hour, t0()).await.unwrap();

        // Assert
        assert!(first && second, "{db}");
        assert!(left_after_one && !left_after_two, "{db}");
        assert!(!third, "{db}: the third mail in the hour is refused");
        assert!(other_address, "{db}: each address has its own budget");
        assert!(next_window, "{db}: a new window, a new budget");
        assert!(!nothing_allowed, "{db}");
    })
    .await;
}

#[tokio::test]
async fn participants_are_found_by_their_canonical_address() {
    on_each_backend(|store, db| async move {
        let ada = striker(&*store, "ada", 0).await.participant;
        striker(&*store, "bob", 0).await;
        store
            .ensure_local_participant("me", picket::domain::Zone::UTC, t0())
            .await
            .unwrap();

        let found = store
            .participants_by_email("ada@example.org", 3)
            .await
            .unwrap();
        let none = store
            .participants_by_email("eve@example.org", 3)
            .await
            .unwrap();

        assert_eq!(
            found.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![ada],
            "{db}"
        );
        assert!(none.is_empty(), "{db}");
    })
    .await;
}

/// `01 ‖ nonce ‖ "token-abc"` sealed with key `[7; 32]` in the format picket used before
/// credentials were bound to their account (the same fixture as `crypto`'s unit tests).
const LEGACY_BLOB: &str = "01000102030405060708090a0b0c0d0e0f1011121314151617dc78c0e094313ac74676d3b55fbdc5e9b796d5f7294f14949b";

#[tokio::test]
async fn credentials_are_bound_to_their_account_and_old_ones_are_resealed() {
    use picket::crypto::Vault;
    use picket::participation::{self, Connected};
    use picket::scheduler::verify::account_ref;
    on_each_backend(|store, db| async move {
        // Arrange: two accounts connected as the web and the CLI connect them.
        let vault = Vault::from_key_bytes(&[7; 32]);
        let who = striker(&*store, "ada", 0).await.participant;
        let connect = |name: &str| {
            participation::connect::sandbox(name, "http://127.0.0.1:1", Some(format!("tok-{name}")))
                .unwrap()
        };
        let (a, b): (Connected, Connected) = (connect("a"), connect("b"));
        let a = participation::save_account(&*store, &vault, who, &a, t0())
            .await
            .unwrap();
        let b = participation::save_account(&*store, &vault, who, &b, t0())
            .await
            .unwrap();
        let get = |id| {
            let store = store.clone();
            async move { store.get_account(id).await.unwrap().unwrap() }
        };

        // Act: someone with write access copies a's sealed credentials onto b's row.
        let a_row = get(a).await;
        store
            .update_credentials(b, &a_row.credentials, t0())
            .await
            .unwrap();
        let swapped = account_ref(&vault, &get(b).await);
        let own = account_ref(&vault, &a_row);
        // An account still holding credentials in the old format.
        let legacy = Sealed::new(hex::decode(LEGACY_BLOB).unwrap());
        store.update_credentials(a, &legacy, t0()).await.unwrap();
        let old_opens = account_ref(&vault, &get(a).await);
        let listed = store.accounts_sealed_with(1, None, 10).await.unwrap();
        let stale = store
            .replace_credentials(
                a,
                &Sealed::new(*b"not what is stored"),
                &Sealed::new(*b"x"),
                t0(),
            )
            .await
            .unwrap();
        participation::reseal_legacy_credentials(&*store, &vault, t0()).await;
        let resealed = get(a).await;

        // Assert
        assert!(
            swapped.is_err(),
            "{db}: a blob copied onto another row does not open"
        );
        assert_eq!(own.unwrap().credentials.expose(), "tok-a", "{db}");
        assert_eq!(old_opens.unwrap().credentials.expose(), "token-abc", "{db}");
        assert_eq!(
            listed.iter().map(|x| x.id).collect::<Vec<_>>(),
            vec![a],
            "{db}"
        );
        assert!(!stale, "{db}: replaced only if unchanged");
        assert_eq!(
            resealed.credentials.as_bytes()[0],
            picket::crypto::VERSION,
            "{db}"
        );
        assert_eq!(
            account_ref(&vault, &resealed).unwrap().credentials.expose(),
            "token-abc",
            "{db}"
        );
        assert!(
            store
                .accounts_sealed_with(1, None, 10)
                .await
                .unwrap()
                .is_empty(),
            "{db}"
        );
    })
    .await;
}

/// `n` strikers for [`StoreTooling::bulk_join`], `s{i}` with sandbox accounts `s{i}a0` and
/// `s{i}a1`, pledged to [`CAMPAIGN`] on every day.
fn new_strikers(n: usize) -> Vec<store::NewStriker> {
    (0..n)
        .map(|i| store::NewStriker {
            name: format!("s{i}"),
            tz: "UTC".parse().unwrap(),
            accounts: (0..2)
                .map(|a| {
                    (
                        NetworkKind::Sandbox,
                        format!("s{i}a{a}").parse().unwrap(),
                        None,
                    )
                })
                .collect(),
            campaign_id: CAMPAIGN.parse().unwrap(),
            days: None,
            every_secs: None,
        })
        .collect()
}

#[tokio::test]
async fn bulk_join_seals_each_account_for_the_id_it_gets() {
    on_each_backend(|store, db| async move {
        let strikers = new_strikers(3);
        let seal = |s: usize, a: usize, id: AccountId| Sealed::new(format!("{s}/{a}/{}", id.0));

        let joined = store.bulk_join(&strikers, &seal, t0()).await.unwrap();

        for (s, j) in joined.iter().enumerate() {
            for (a, id) in j.accounts.iter().enumerate() {
                let row = store.get_account(*id).await.unwrap().unwrap();
                assert_eq!(
                    row.credentials.as_bytes(),
                    format!("{s}/{a}/{}", id.0).as_bytes(),
                    "{db}"
                );
                assert_eq!(row.handle, format!("s{s}a{a}"), "{db}");
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_planning_problem_is_recorded_on_the_pledge_and_cleared_by_joining_again() {
    on_each_backend(|store, db| async move {
        // Arrange
        let s = striker(store.as_ref(), "pat", 1).await;

        // Act
        store
            .set_pledge_problem(s.pledge, Some("cadence out of range"), t0())
            .await
            .unwrap();
        let recorded = store.get_pledge(s.pledge).await.unwrap().unwrap();
        let listed = store
            .active_pledges(CAMPAIGN, None, 10)
            .await
            .unwrap()
            .pledges;
        store
            .upsert_pledge(
                &NewPledge {
                    participant_id: s.participant,
                    campaign_id: CAMPAIGN.parse().unwrap(),
                    tz: "Europe/Berlin".parse().unwrap(),
                    days: None,
                    every_secs: Some(7200),
                    account_ids: s.accounts.clone(),
                },
                t0(),
            )
            .await
            .unwrap();
        let rejoined = store.get_pledge(s.pledge).await.unwrap().unwrap();
        store
            .set_pledge_problem(s.pledge, Some("again"), t0())
            .await
            .unwrap();
        store
            .set_pledge_problem(s.pledge, None, t0())
            .await
            .unwrap();
        let cleared = store.get_pledge(s.pledge).await.unwrap().unwrap();

        // Assert
        assert_eq!(
            recorded.plan_error.as_deref(),
            Some("cadence out of range"),
            "{db}"
        );
        assert_eq!(
            recorded.status,
            store::PledgeStatus::Active,
            "{db}: still active"
        );
        assert_eq!(
            listed[0].plan_error.as_deref(),
            Some("cadence out of range"),
            "{db}: the planner sees it"
        );
        assert_eq!(rejoined.plan_error, None, "{db}: joining again clears it");
        assert_eq!(cleared.plan_error, None, "{db}");
    })
    .await;
}

/// A participant with `n` tap-to-post accounts (X) pledged to [`CAMPAIGN`]; `email` is
/// where reminders go.
async fn tap_striker(store: &dyn Store, name: &str, n: usize, email: bool) -> Striker {
    let address = email.then(|| format!("{name}@example.org"));
    let participant = store
        .create_participant(
            &NewParticipant {
                name: name.into(),
                email: address.clone(),
                email_canonical: address,
                tz: "Pacific/Auckland".parse().unwrap(),
                invited_by: None,
            },
            t0(),
        )
        .await
        .unwrap();
    let mut accounts = Vec::new();
    for i in 0..n {
        accounts.push(
            store
                .add_account(
                    &NewAccount {
                        participant_id: participant,
                        network: NetworkKind::X,
                        handle: format!("@{name}{i}").parse().unwrap(),
                        server: None,
                        trusted: false,
                        route: store::AccountRoute::Tap,
                    },
                    &|_| panic!("a tap-to-post account has nothing to seal"),
                    t0(),
                )
                .await
                .unwrap(),
        );
    }
    let pledge = store
        .upsert_pledge(
            &NewPledge {
                participant_id: participant,
                campaign_id: CAMPAIGN.parse().unwrap(),
                tz: "Pacific/Auckland".parse().unwrap(),
                days: None,
                every_secs: None,
                account_ids: accounts.clone(),
            },
            t0(),
        )
        .await
        .unwrap();
    Striker {
        participant,
        accounts,
        pledge,
    }
}

/// Claim what is due at `now` (at most `limit`) and record each as a rendered reminder.
async fn remind(store: &dyn Store, now: DateTime<Utc>, limit: u32) -> Vec<OutboxId> {
    let claimed = store
        .claim_due("w", now, now + Duration::minutes(1), limit)
        .await
        .unwrap();
    let outcomes: Vec<Outcome> = claimed
        .iter()
        .map(|p| {
            assert_eq!(p.route, store::AccountRoute::Tap);
            Outcome::Reminded {
                id: p.id,
                text: format!("notice of {}", p.handle),
            }
        })
        .collect();
    store.record(&outcomes, now).await.unwrap();
    ids(&claimed)
}

#[tokio::test]
async fn a_tap_account_stores_no_credentials_and_its_pledge_knows_it_is_tapped() {
    on_each_backend(|store, db| async move {
        // Act
        let s = tap_striker(&*store, "ada", 1, true).await;

        // Assert
        let account = store.get_account(s.accounts[0]).await.unwrap().unwrap();
        assert_eq!(account.route, store::AccountRoute::Tap, "{db}");
        assert!(account.credentials.as_bytes().is_empty(), "{db}");
        let pledge = &store.pledges_of(s.participant).await.unwrap()[0];
        assert_eq!(pledge.tap_account_ids, s.accounts, "{db}");
    })
    .await;
}

#[tokio::test]
async fn a_tap_notice_is_reminded_with_its_text_then_posted_by_hand_once() {
    on_each_backend(|store, db| async move {
        // Arrange
        let s = tap_striker(&*store, "ada", 1, true).await;
        planned(&*store, &s, &[0]).await;
        let now = t0() + Duration::seconds(1);

        // Act
        let reminded = remind(&*store, now, 10).await;
        let row = store.outbox_row(reminded[0]).await.unwrap().unwrap().0;
        let again = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        let withdrawn = store
            .withdraw(s.participant, CAMPAIGN, None, now)
            .await
            .unwrap();
        let confirmed = store
            .confirm_posted(reminded[0], Some("https://x.com/ada0/status/1"), now)
            .await
            .unwrap();
        let twice = store.confirm_posted(reminded[0], None, now).await.unwrap();
        let counts = store.outbox_counts(CAMPAIGN).await.unwrap();
        let done = store.outbox_row(reminded[0]).await.unwrap().unwrap();

        // Assert
        assert_eq!(row.state, OutboxState::Reminded, "{db}");
        assert_eq!(row.text.as_deref(), Some("notice of @ada0"));
        assert_eq!(row.reminded_at, Some(now));
        assert!(
            again.is_empty(),
            "a reminded notice is never claimed again ({db})"
        );
        assert_eq!(
            withdrawn.cancelled, 0,
            "a reminder already shown is not cancelled"
        );
        assert!(confirmed && !twice, "{db}");
        assert_eq!(done.1, s.participant);
        assert_eq!(done.0.state, OutboxState::PostedByHand);
        assert_eq!(
            done.0.confirmed_url.as_deref(),
            Some("https://x.com/ada0/status/1")
        );
        assert_eq!(done.0.confirmed_at, Some(now));
        assert_eq!(
            (counts.posted_by_hand, counts.reminded, counts.published),
            (1, 0, 0)
        );
    })
    .await;
}

#[tokio::test]
async fn a_withdrawal_before_the_minute_wins_over_the_reminder() {
    on_each_backend(|store, db| async move {
        // Arrange: claimed, then withdrawn before the reminder is recorded.
        let s = tap_striker(&*store, "ada", 1, true).await;
        planned(&*store, &s, &[0]).await;
        let now = t0() + Duration::seconds(1);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        store
            .withdraw(s.participant, CAMPAIGN, None, now)
            .await
            .unwrap();

        // Act
        store
            .record(
                &[Outcome::Reminded {
                    id: claimed[0].id,
                    text: "late".into(),
                }],
                now,
            )
            .await
            .unwrap();

        // Assert
        assert_eq!(
            state_of(&*store, claimed[0].id).await,
            OutboxState::Cancelled,
            "{db}"
        );
        assert!(
            store
                .reminders_due(now, Duration::seconds(60), 10)
                .await
                .unwrap()
                .is_empty()
        );
    })
    .await;
}

#[tokio::test]
async fn a_slots_reminder_mail_is_due_once_its_notices_are_all_rendered_and_is_marked_once() {
    on_each_backend(|store, db| async move {
        // Arrange: two tap accounts at one slot; a participant without an address.
        let s = tap_striker(&*store, "ada", 2, true).await;
        planned(&*store, &s, &[0, 3]).await;
        let quiet = tap_striker(&*store, "bo", 1, false).await;
        planned(&*store, &quiet, &[0]).await;
        let now = t0() + Duration::seconds(1);
        let grace = Duration::seconds(60);

        // Act: one of ada's two notices rendered, then the rest.
        let before = store.reminders_due(now, grace, 10).await.unwrap();
        let first = remind(&*store, now, 1).await;
        let half = store.reminders_due(now, grace, 10).await.unwrap();
        remind(&*store, now, 10).await;
        let due = store.reminders_due(now, grace, 10).await.unwrap();
        let rendered = store
            .outbox_for(s.participant, Some(CAMPAIGN))
            .await
            .unwrap();
        let tokens: Vec<_> = rendered
            .iter()
            .filter(|r| r.slot_key == "notice@0")
            .map(|r| (r.id, format!("hash-{}", r.id)))
            .collect();
        let marked = store
            .mark_reminder_mail(s.pledge, "notice@0", &tokens, now)
            .await
            .unwrap();
        let again: Vec<_> = tokens
            .iter()
            .map(|(id, h)| (*id, format!("{h}-2")))
            .collect();
        let marked_again = store
            .mark_reminder_mail(s.pledge, "notice@0", &again, now)
            .await
            .unwrap();
        let after = store.reminders_due(now, grace, 10).await.unwrap();
        // The slot three hours later, rendered but looked at after its window and grace.
        let later = t0() + Duration::hours(3);
        remind(&*store, later, 10).await;
        let closed = store
            .reminders_due(
                later + Duration::hours(1) + grace + Duration::seconds(1),
                grace,
                10,
            )
            .await
            .unwrap();
        let open = store.reminders_due(later, grace, 10).await.unwrap();

        // Assert
        assert!(before.is_empty(), "nothing rendered, nothing due ({db})");
        assert_eq!(first.len(), 1);
        assert!(
            half.is_empty(),
            "one mail holds the whole slot ({db}): {half:?}"
        );
        assert_eq!(due.len(), 1, "{db}: {due:?}");
        assert_eq!(
            (
                due[0].pledge_id,
                due[0].participant_id,
                due[0].slot_key.as_str()
            ),
            (s.pledge, s.participant, "notice@0")
        );
        assert_eq!((marked.ids.len(), marked.first), (2, true), "{db}");
        assert!(
            marked_again.ids.is_empty(),
            "never two mails for one notice ({db})"
        );
        assert!(after.is_empty(), "{db}");
        assert!(closed.is_empty(), "not after the window ({db})");
        assert_eq!(open.len(), 1, "{db}");
        assert_eq!(open[0].slot_key, "notice@3");
    })
    .await;
}

#[tokio::test]
async fn an_i_posted_it_token_finds_its_notice_by_its_hash_only() {
    on_each_backend(|store, db| async move {
        // Arrange
        let s = tap_striker(&*store, "ada", 1, true).await;
        planned(&*store, &s, &[0]).await;
        let now = t0() + Duration::seconds(1);
        let reminded = remind(&*store, now, 10).await;

        // Act
        store
            .mark_reminder_mail(
                s.pledge,
                "notice@0",
                &[(reminded[0], "hash-of-token".into())],
                now,
            )
            .await
            .unwrap();
        let found = store
            .outbox_row_by_confirm_token("hash-of-token")
            .await
            .unwrap();
        let other = store.outbox_row_by_confirm_token("token").await.unwrap();

        // Assert
        let (row, who) = found.expect(db);
        assert_eq!((row.id, who), (reminded[0], s.participant));
        assert!(other.is_none(), "{db}");
    })
    .await;
}

#[tokio::test]
async fn a_post_waiting_for_a_reconnect_can_be_posted_by_hand_and_is_then_never_sent() {
    on_each_backend(|store, db| async move {
        // Arrange: the network refused the first account's credentials; the second is fine.
        let s = striker(&*store, "ada", 2).await;
        planned(&*store, &s, &[0]).await;
        let now = t0() + Duration::minutes(1);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        let refused = claimed
            .iter()
            .find(|p| p.account_id == s.accounts[0])
            .unwrap();
        let healthy = claimed
            .iter()
            .find(|p| p.account_id == s.accounts[1])
            .unwrap();
        store
            .record(
                &[
                    Outcome::Reconnect {
                        id: refused.id,
                        account_id: s.accounts[0],
                        reason: "token revoked".into(),
                    },
                    Outcome::Retry {
                        id: healthy.id,
                        run_at: now,
                        error: "busy".into(),
                        maybe_sent: false,
                    },
                ],
                now,
            )
            .await
            .unwrap();

        // Act
        let by_hand = store
            .confirm_posted(refused.id, Some("https://social.example/@ada/1"), now)
            .await
            .unwrap();
        let not_waiting = store.confirm_posted(healthy.id, None, now).await.unwrap();
        store
            .set_account_status(s.accounts[0], AccountStatus::Active, None, now)
            .await
            .unwrap();
        let later = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();

        // Assert
        assert!(by_hand, "{db}");
        assert!(
            !not_waiting,
            "a post picket can still send is not taken over ({db})"
        );
        assert_eq!(
            state_of(&*store, refused.id).await,
            OutboxState::PostedByHand
        );
        assert_eq!(ids(&later), vec![healthy.id], "{db}");
    })
    .await;
}

#[tokio::test]
async fn push_subscriptions_are_kept_per_browser_handed_over_capped_and_forgotten() {
    on_each_backend(|store, db| async move {
        // Arrange
        let ada = striker(&*store, "ada", 1).await;
        let bob = striker(&*store, "bob", 1).await;
        let sealed = |n: u8| Sealed::new(vec![9, n]);

        // Act: ada subscribes two browsers, then the first one again with new keys.
        let first = store
            .save_push_subscription(ada.participant, "h1", &sealed(1), 3, t0())
            .await
            .unwrap();
        store
            .save_push_subscription(ada.participant, "h2", &sealed(2), 3, t0())
            .await
            .unwrap();
        let again = store
            .save_push_subscription(
                ada.participant,
                "h1",
                &sealed(3),
                3,
                t0() + Duration::minutes(1),
            )
            .await
            .unwrap();

        // Assert: one row per browser, the newest keys, oldest first.
        assert_eq!(first, again, "{db}");
        let subs = store.push_subscriptions_of(ada.participant).await.unwrap();
        let blobs: Vec<_> = subs.iter().map(|s| s.sealed.clone()).collect();
        assert_eq!(blobs, vec![sealed(2), sealed(3)], "{db}");
        assert_eq!(subs[1].created_at, t0() + Duration::minutes(1), "{db}");

        // A failure is recorded and cleared by the next save.
        store
            .set_push_error(first, Some("the push service answered 500"))
            .await
            .unwrap();
        let subs = store.push_subscriptions_of(ada.participant).await.unwrap();
        assert_eq!(
            subs[1].last_error.as_deref(),
            Some("the push service answered 500"),
            "{db}"
        );

        // bob signs in on ada's first browser and subscribes: it is his now.
        store
            .save_push_subscription(
                bob.participant,
                "h1",
                &sealed(4),
                3,
                t0() + Duration::minutes(2),
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .push_subscriptions_of(ada.participant)
                .await
                .unwrap()
                .len(),
            1,
            "{db}"
        );
        let bobs = store.push_subscriptions_of(bob.participant).await.unwrap();
        assert_eq!(bobs.len(), 1, "{db}");
        assert_eq!(bobs[0].last_error, None, "{db}");

        // Only the newest `keep` are kept.
        for (i, h) in ["h3", "h4", "h5"].iter().enumerate() {
            store
                .save_push_subscription(
                    ada.participant,
                    h,
                    &sealed(5 + i as u8),
                    3,
                    t0() + Duration::minutes(3 + i as i64),
                )
                .await
                .unwrap();
        }
        let kept: Vec<_> = store
            .push_subscriptions_of(ada.participant)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.sealed)
            .collect();
        assert_eq!(kept, vec![sealed(5), sealed(6), sealed(7)], "{db}");

        // Unsubscribing names the participant: bob cannot remove ada's browser.
        assert!(
            !store
                .delete_push_subscription(bob.participant, "h3")
                .await
                .unwrap()
        );
        assert!(
            store
                .delete_push_subscription(ada.participant, "h3")
                .await
                .unwrap()
        );
        let gone = store.push_subscriptions_of(ada.participant).await.unwrap()[0].id;
        assert!(store.remove_push_subscription(gone).await.unwrap(), "{db}");
        assert!(!store.remove_push_subscription(gone).await.unwrap(), "{db}");
        assert_eq!(
            store
                .push_subscriptions_of(ada.participant)
                .await
                .unwrap()
                .len(),
            1,
            "{db}"
        );

        // Deleting a participant deletes their subscriptions.
        store.delete_participant(bob.participant).await.unwrap();
        assert!(
            store
                .push_subscriptions_of(bob.participant)
                .await
                .unwrap()
                .is_empty(),
            "{db}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_slots_reminder_is_due_for_a_browser_to_push_to_even_without_an_address() {
    on_each_backend(|store, db| async move {
        // Arrange: a participant without an address, one tap notice rendered at its slot.
        let s = tap_striker(&*store, "bo", 1, false).await;
        planned(&*store, &s, &[0]).await;
        let now = t0() + Duration::seconds(1);
        let grace = Duration::seconds(60);
        remind(&*store, now, 10).await;

        // Act
        let without = store.reminders_due(now, grace, 10).await.unwrap();
        store
            .save_push_subscription(s.participant, "h1", &Sealed::new(vec![1]), 10, now)
            .await
            .unwrap();
        let with = store.reminders_due(now, grace, 10).await.unwrap();

        // Assert: due once there is somewhere to remind them, with the window's end.
        assert!(without.is_empty(), "{db}: {without:?}");
        assert_eq!(with.len(), 1, "{db}: {with:?}");
        assert_eq!(with[0].participant_id, s.participant, "{db}");
        assert_eq!(with[0].window_end, t0() + Duration::hours(1), "{db}");
    })
    .await;
}

#[tokio::test]
async fn a_post_waiting_for_a_reconnect_is_due_for_a_reminder_mail_from_its_slot_once() {
    on_each_backend(|store, db| async move {
        // Arrange: an API account refused as its post was sent, and one never tried
        // (needing reconnection before its slot, three hours later).
        let s = striker(&*store, "ada", 1).await;
        planned(&*store, &s, &[0, 3]).await;
        let grace = Duration::seconds(60);
        let now = t0() + Duration::minutes(1);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        let in_flight = store.reminders_due(now, grace, 10).await.unwrap();
        store
            .record(
                &[Outcome::Reconnect {
                    id: claimed[0].id,
                    account_id: s.accounts[0],
                    reason: "token revoked".into(),
                }],
                now,
            )
            .await
            .unwrap();

        // Act
        let due = store.reminders_due(now, grace, 10).await.unwrap();
        let marked = store
            .mark_reminder_mail(
                s.pledge,
                &due[0].slot_key,
                &[(claimed[0].id, "hash-a".into())],
                now,
            )
            .await
            .unwrap();
        let after = store.reminders_due(now, grace, 10).await.unwrap();
        let later = t0() + Duration::hours(3);
        let before_slot = store
            .reminders_due(later - Duration::seconds(1), grace, 10)
            .await
            .unwrap();
        let at_slot = store.reminders_due(later, grace, 10).await.unwrap();
        let closed = store
            .reminders_due(later + Duration::hours(1) + Duration::seconds(1), grace, 10)
            .await
            .unwrap();
        let found = store.outbox_row_by_confirm_token("hash-a").await.unwrap();
        let rows = store
            .outbox_for(s.participant, Some(CAMPAIGN))
            .await
            .unwrap();

        // Assert
        assert!(
            in_flight.is_empty(),
            "a post being sent is not yet a fallback ({db})"
        );
        assert_eq!(due.len(), 1, "{db}: {due:?}");
        assert_eq!(due[0].pledge_id, s.pledge);
        assert_eq!(
            (marked.ids.clone(), marked.first),
            (vec![claimed[0].id], true),
            "{db}"
        );
        assert!(after.is_empty(), "mailed once ({db}): {after:?}");
        assert!(before_slot.is_empty(), "never before its slot ({db})");
        assert_eq!(at_slot.len(), 1, "{db}: {at_slot:?}");
        assert!(closed.is_empty(), "not after its window ({db})");
        assert_eq!(found.expect(db).0.id, claimed[0].id);
        let first = rows.iter().find(|r| r.id == claimed[0].id).unwrap();
        assert!(
            first.mailed && first.state == OutboxState::Pending,
            "{db}: {first:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_stats_aggregates_count_posts_by_network_hour_and_state_reasons_invitations_and_days() {
    on_each_backend(|store, db| async move {
        // Arrange: ada's three posts (00h, 01h, 02h UTC) published, failed and missed;
        // bo's two still pending at 00h; two confirmed signatures (one invited by the
        // other) and one awaiting confirmation.
        let ada = striker(&*store, "ada", 1).await;
        planned(&*store, &ada, &[0, 1, 2]).await;
        let now = t0() + Duration::minutes(150);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        let sending = store
            .begin_sending("w", &ids(&claimed), now, Duration::hours(3))
            .await
            .unwrap();
        store
            .record(
                &[
                    Outcome::Published {
                        id: sending[0],
                        remote_id: "1".into(),
                        remote_url: None,
                        text: "hi".into(),
                    },
                    Outcome::Failed {
                        id: sending[1],
                        reason: "content rejected".into(),
                    },
                    Outcome::Missed {
                        id: sending[2],
                        reason: "window closed".into(),
                    },
                ],
                now,
            )
            .await
            .unwrap();
        let bo = striker(&*store, "bo", 2).await;
        planned(&*store, &bo, &[0]).await;
        let sign = |name: &str, by: Option<&str>, confirmed: bool| NewSignature {
            campaign_id: CAMPAIGN.parse().unwrap(),
            name: name.into(),
            email_canonical: Some(format!("{name}@example.org")),
            public: false,
            invited_by: by.map(str::to_string),
            confirmed,
            confirm_token_hash: (!confirmed).then(|| format!("hash-{name}")),
            email_consent: false,
        };
        let first = store
            .add_signature(&sign("ann", None, true), t0())
            .await
            .unwrap();
        store
            .add_signature(&sign("ben", Some(&first.invite_code), true), t0())
            .await
            .unwrap();
        store
            .add_signature(&sign("cat", Some(&first.invite_code), false), t0())
            .await
            .unwrap();

        // Act
        let buckets = store.post_buckets(CAMPAIGN).await.unwrap();
        let reasons = store.failure_reasons(CAMPAIGN, 5).await.unwrap();
        let edges = store.invitation_edges(CAMPAIGN).await.unwrap();
        let days = store.daily_counts(CAMPAIGN).await.unwrap();
        let awaiting = store.unconfirmed_signature_count(CAMPAIGN).await.unwrap();

        // Assert
        let got: Vec<(NetworkKind, u8, OutboxState, u64)> = buckets
            .iter()
            .map(|b| (b.network, b.hour, b.state, b.count))
            .collect();
        let mut want = vec![
            (NetworkKind::Sandbox, 0, OutboxState::Pending, 2),
            (NetworkKind::Sandbox, 0, OutboxState::Published, 1),
            (NetworkKind::Sandbox, 1, OutboxState::Failed, 1),
            (NetworkKind::Sandbox, 2, OutboxState::Missed, 1),
        ];
        let mut got_sorted = got.clone();
        got_sorted.sort_by_key(|g| (g.1, g.2.to_string()));
        want.sort_by_key(|g| (g.1, g.2.to_string()));
        assert_eq!(got_sorted, want, "{db}");
        let mut why: Vec<(String, String, u64)> = reasons
            .iter()
            .map(|r| (r.state.to_string(), r.reason.clone(), r.count))
            .collect();
        why.sort();
        assert_eq!(
            why,
            vec![
                ("failed".into(), "content rejected".into(), 1),
                ("missed".into(), "window closed".into(), 1)
            ],
            "{db}"
        );
        assert_eq!(
            store.failure_reasons(CAMPAIGN, 1).await.unwrap().len(),
            1,
            "{db}: the limit holds"
        );
        assert_eq!(edges.len(), 4, "{db}: two signers and two participants");
        assert_eq!(
            edges
                .iter()
                .filter(|e| e.invited_by.as_deref() == Some(first.invite_code.as_str()))
                .count(),
            1,
            "{db}: an unconfirmed signer is not in the tree"
        );
        assert_eq!(awaiting, 1, "{db}");
        let day = t0().timestamp().div_euclid(86_400);
        assert_eq!(days.len(), 1, "{db}");
        assert_eq!(
            (days[0].day, days[0].signatures, days[0].pledges),
            (day, 2, 2),
            "{db}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_admin_secret_is_replaced_and_a_new_one_ends_every_admin_session() {
    on_each_backend(|store, db| async move {
        // Arrange
        let before = store.admin_secret().await.unwrap();
        store.set_admin_secret("$argon2id$one", t0()).await.unwrap();
        let later = t0() + Duration::hours(1);
        store.start_admin_session("s1", later, t0()).await.unwrap();
        store
            .start_admin_session("s2", t0() + Duration::hours(2), t0())
            .await
            .unwrap();

        // Act
        let live = store.admin_session_valid("s1", t0()).await.unwrap();
        let expired = store.admin_session_valid("s1", later).await.unwrap();
        let unknown = store.admin_session_valid("nope", t0()).await.unwrap();
        store.end_admin_session("s1").await.unwrap();
        let ended = store.admin_session_valid("s1", t0()).await.unwrap();
        let other = store.admin_session_valid("s2", t0()).await.unwrap();
        store.set_admin_secret("$argon2id$two", t0()).await.unwrap();
        let after_new_secret = store.admin_session_valid("s2", t0()).await.unwrap();

        // Assert
        assert_eq!(before, None, "{db}");
        assert!(live && !expired && !unknown && !ended && other, "{db}");
        assert!(!after_new_secret, "{db}: a new secret signs everyone out");
        assert_eq!(
            store.admin_secret().await.unwrap().as_deref(),
            Some("$argon2id$two"),
            "{db}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_signature_export_carries_an_address_only_where_the_signer_consented() {
    on_each_backend(|store, db| async move {
        // Arrange
        let sign = |name: &str, email: Option<&str>, consent: bool| NewSignature {
            campaign_id: CAMPAIGN.parse().unwrap(),
            name: name.into(),
            email_canonical: email.map(Into::into),
            public: false,
            invited_by: None,
            confirmed: true,
            confirm_token_hash: None,
            email_consent: consent,
        };
        for s in [
            sign("Ada", Some("ada@example.org"), true),
            sign("Bo", Some("bo@example.org"), false),
            sign("Cy", None, true),
        ] {
            store.add_signature(&s, t0()).await.unwrap();
        }
        store
            .add_signature(
                &NewSignature {
                    campaign_id: "other".parse().unwrap(),
                    ..sign("Di", Some("di@example.org"), true)
                },
                t0(),
            )
            .await
            .unwrap();

        // Act
        let rows = store.export_signatures(CAMPAIGN).await.unwrap();

        // Assert
        let shown: Vec<(&str, Option<&str>)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.email.as_deref()))
            .collect();
        assert_eq!(
            shown,
            [("Ada", Some("ada@example.org")), ("Bo", None), ("Cy", None)],
            "{db}"
        );
        assert_eq!(rows[0].signed_at, t0());
    })
    .await;
}

#[tokio::test]
async fn the_ledger_lists_published_and_hand_posted_notices_and_failures_come_newest_first() {
    on_each_backend(|store, db| async move {
        // Arrange: one post published, one failed, one missed, one posted by hand.
        let s = striker(&*store, "ada", 1).await;
        planned(&*store, &s, &[0, 1]).await;
        let now = t0() + Duration::minutes(90);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        let sending = store
            .begin_sending("w", &ids(&claimed), now, Duration::hours(3))
            .await
            .unwrap();
        store
            .record(
                &[
                    Outcome::Published {
                        id: sending[0],
                        remote_id: "1".into(),
                        remote_url: Some("https://example.org/1".into()),
                        text: "hi".into(),
                    },
                    Outcome::Failed {
                        id: sending[1],
                        reason: "content rejected".into(),
                    },
                ],
                now,
            )
            .await
            .unwrap();
        let t = tap_striker(&*store, "bo", 1, false).await;
        planned(&*store, &t, &[0, 3]).await;
        let reminded = remind(&*store, t0() + Duration::seconds(1), 10).await;
        let by_hand = t0() + Duration::minutes(5);
        store
            .confirm_posted(reminded[0], Some("https://x.com/bo0/status/1"), by_hand)
            .await
            .unwrap();
        let late = t0() + Duration::hours(5);
        store
            .expire_missed(late, Duration::seconds(60))
            .await
            .unwrap();
        store
            .set_account_status(
                s.accounts[0],
                AccountStatus::ReconnectNeeded,
                Some("token revoked"),
                late,
            )
            .await
            .unwrap();

        // Act
        let ledger = store.post_ledger(CAMPAIGN).await.unwrap();
        let failures = store.latest_failures(10).await.unwrap();
        let reconnect = store.reconnect_needed().await.unwrap();

        // Assert
        let lines: Vec<_> = ledger
            .iter()
            .map(|p| (p.network, p.state, p.published_at, p.link.as_deref()))
            .collect();
        assert_eq!(
            lines,
            [
                (
                    NetworkKind::Sandbox,
                    OutboxState::Published,
                    Some(now),
                    Some("https://example.org/1")
                ),
                (
                    store
                        .get_account(t.accounts[0])
                        .await
                        .unwrap()
                        .unwrap()
                        .network,
                    OutboxState::PostedByHand,
                    Some(by_hand),
                    Some("https://x.com/bo0/status/1")
                ),
            ],
            "{db}"
        );
        let states: Vec<_> = failures
            .iter()
            .map(|f| (f.state, f.reason.as_deref().unwrap_or_default().to_string()))
            .collect();
        assert_eq!(states.len(), 2, "{db}: {states:?}");
        assert_eq!(states[0].0, OutboxState::Missed, "{db}: newest first");
        assert_eq!(
            states[1],
            (OutboxState::Failed, "content rejected".to_string())
        );
        assert_eq!(reconnect, [(NetworkKind::Sandbox, 1)], "{db}");
    })
    .await;
}

#[tokio::test]
async fn the_census_keeps_each_post_once_and_counts_distinct_authors_per_hour_own_apart() {
    on_each_backend(|store, db| async move {
        use picket::store::{CensusPost, CensusTotals};
        // Arrange: ada is one of this host's accounts; two strangers post too.
        let ada = striker(&*store, "ada", 1).await;
        let handles = store.own_handles().await.unwrap();
        assert!(
            handles.is_empty(),
            "{db}: sandbox accounts are not census networks"
        );
        store
            .add_account(
                &NewAccount {
                    participant_id: ada.participant,
                    network: NetworkKind::Nostr,
                    handle: "npub1ada".parse().unwrap(),
                    server: Some("ws://127.0.0.1:1".into()),
                    trusted: false,
                    route: picket::store::AccountRoute::Api,
                },
                &|_| Sealed::new(vec![1]),
                t0(),
            )
            .await
            .unwrap();
        assert_eq!(
            store.own_handles().await.unwrap(),
            vec![(NetworkKind::Nostr, "npub1ada".to_string())],
            "{db}"
        );
        let post = |key: &str, author: &str, own: bool, network, minutes: i64| CensusPost {
            network,
            key: key.into(),
            author_hash: author.into(),
            own,
            posted_at: t0() + Duration::minutes(minutes),
            link: Some(format!("https://example.org/{key}")),
        };
        let first = vec![
            post("n1", "ada", true, NetworkKind::Nostr, 5),
            post("n2", "x", false, NetworkKind::Nostr, 10),
            post("n3", "x", false, NetworkKind::Nostr, 20),
            post("m1", "y", false, NetworkKind::Mastodon, 30),
            post("m2", "x", false, NetworkKind::Nostr, 70),
        ];

        // Act: the same posts come again (another server, a later poll), with one new.
        let new = store.record_census(CAMPAIGN, &first, t0()).await.unwrap();
        let mut again = first.clone();
        again.push(post("m3", "z", false, NetworkKind::Mastodon, 75));
        let new_again = store.record_census(CAMPAIGN, &again, t0()).await.unwrap();
        store
            .record_census("another-campaign", &first, t0())
            .await
            .unwrap();

        // Assert
        assert_eq!((new, new_again), (5, 1), "{db}");
        let hours = store.census_hours(CAMPAIGN).await.unwrap();
        let figures: Vec<_> = hours
            .iter()
            .map(|h| {
                (
                    (h.hour - t0()).num_hours(),
                    h.network,
                    h.posts,
                    h.authors,
                    h.beyond_posts,
                    h.beyond_authors,
                )
            })
            .collect();
        assert_eq!(
            figures,
            vec![
                (0, NetworkKind::Mastodon, 1, 1, 1, 1),
                (0, NetworkKind::Nostr, 3, 2, 2, 1),
                (1, NetworkKind::Mastodon, 1, 1, 1, 1),
                (1, NetworkKind::Nostr, 1, 1, 1, 1),
            ],
            "{db}"
        );
        assert_eq!(
            store.census_totals(CAMPAIGN).await.unwrap(),
            CensusTotals {
                posts: 6,
                authors: 4,
                beyond_posts: 5,
                beyond_authors: 3
            },
            "{db}"
        );
        let figures = store.census_figures(CAMPAIGN).await.unwrap();
        assert_eq!(figures.hours, hours, "{db}");
        assert_eq!(
            store.census_totals("nobody").await.unwrap(),
            CensusTotals::default(),
            "{db}"
        );
    })
    .await;
}

/// Every kind of event a hook can ask the store for.
const HOOK_KINDS: [&str; 5] = [
    "signature.counted",
    "striker.joined",
    "post.published",
    "post.failed",
    "post.missed",
];

fn hook_event(fact: &store::WebhookFact, n: usize) -> store::NewWebhookEvent {
    store::NewWebhookEvent {
        kind: fact.kind.clone(),
        subject: fact.subject.clone(),
        event_id: format!("evt_{n}_{}_{}", fact.kind, fact.subject),
        payload: format!("{{\"n\":{n}}}"),
    }
}

#[tokio::test]
async fn webhook_events_are_found_in_committed_rows_and_enqueued_once_per_hook() {
    on_each_backend(|store, db| async move {
        // Arrange: a hook seen an hour before t0, a signature, a pledge, two outcomes.
        let since = store
            .register_webhook("hook-a", t0() - Duration::hours(1))
            .await
            .unwrap();
        assert_eq!(since, t0() - Duration::hours(1), "{db}");
        let again = store.register_webhook("hook-a", t0()).await.unwrap();
        assert_eq!(
            again, since,
            "{db}: a hook keeps the instant it was first seen"
        );
        let s = striker(&*store, "ada", 1).await;
        store
            .add_signature(
                &NewSignature {
                    campaign_id: CAMPAIGN.parse().unwrap(),
                    name: "Ada".into(),
                    email_canonical: None,
                    public: true,
                    invited_by: None,
                    confirmed: true,
                    confirm_token_hash: None,
                    email_consent: false,
                },
                t0(),
            )
            .await
            .unwrap();
        planned(&*store, &s, &[0, 1, 2]).await;
        let now = t0() + Duration::minutes(150);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        let sending = store
            .begin_sending("w", &ids(&claimed), now, Duration::hours(3))
            .await
            .unwrap();
        store
            .record(
                &[
                    Outcome::Published {
                        id: sending[0],
                        remote_id: "1".into(),
                        remote_url: Some("https://example.org/1".into()),
                        text: "hi".into(),
                    },
                    Outcome::Failed {
                        id: sending[1],
                        reason: "content rejected".into(),
                    },
                ],
                now,
            )
            .await
            .unwrap();

        // Act
        let facts = store
            .webhook_facts("hook-a", &HOOK_KINDS, since, 100)
            .await
            .unwrap();
        let events: Vec<_> = facts
            .iter()
            .enumerate()
            .map(|(n, f)| hook_event(f, n))
            .collect();
        let added = store
            .enqueue_webhook_events("hook-a", &events, now)
            .await
            .unwrap();
        let again: Vec<_> = facts.iter().map(|f| hook_event(f, 99)).collect();
        let added_again = store
            .enqueue_webhook_events("hook-a", &again, now)
            .await
            .unwrap();
        let left = store
            .webhook_facts("hook-a", &HOOK_KINDS, since, 100)
            .await
            .unwrap();
        let only_failed = store
            .webhook_facts("hook-b", &["post.failed"], since, 100)
            .await
            .unwrap();
        let later = store
            .webhook_facts("hook-c", &HOOK_KINDS, now + Duration::minutes(1), 100)
            .await
            .unwrap();

        // Assert
        let mut kinds: Vec<&str> = facts.iter().map(|f| f.kind.as_str()).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            [
                "post.failed",
                "post.published",
                "signature.counted",
                "striker.joined"
            ],
            "{db}"
        );
        let published = facts.iter().find(|f| f.kind == "post.published").unwrap();
        assert_eq!(published.subject, sending[0].0.to_string());
        assert_eq!(published.link.as_deref(), Some("https://example.org/1"));
        assert_eq!(published.network.as_deref(), Some("sandbox"));
        let failed = facts.iter().find(|f| f.kind == "post.failed").unwrap();
        assert_eq!(failed.reason.as_deref(), Some("content rejected"));
        assert_eq!(failed.campaign_id, CAMPAIGN);
        assert_eq!(
            (added, added_again),
            (4, 0),
            "{db}: each event once per hook"
        );
        assert!(left.is_empty(), "{db}: {left:?}");
        assert_eq!(
            only_failed.len(),
            1,
            "{db}: another hook has its own events"
        );
        assert_eq!(only_failed[0].kind, "post.failed");
        assert!(
            later.is_empty(),
            "{db}: a hook hears of nothing before it was seen"
        );
        let stored = store.webhook_events("hook-a").await.unwrap();
        assert_eq!(stored.len(), 4);
        assert!(
            stored
                .iter()
                .all(|e| e.state == "pending" && e.attempts == 0)
        );
        assert!(
            stored
                .iter()
                .all(|e| e.event_id.starts_with("evt_") && !e.event_id.starts_with("evt_99")),
            "{db}: the first enqueue's ids stay"
        );
    })
    .await;
}

#[tokio::test]
async fn webhook_events_are_claimed_by_one_worker_under_a_lease_and_their_outcomes_recorded() {
    on_each_backend(|store, db| async move {
        // Arrange
        let events: Vec<store::NewWebhookEvent> = (0..4)
            .map(|n| store::NewWebhookEvent {
                kind: "striker.joined".into(),
                subject: n.to_string(),
                event_id: format!("evt_{n}"),
                payload: format!("{{\"n\":{n}}}"),
            })
            .collect();
        store
            .enqueue_webhook_events("hook", &events, t0())
            .await
            .unwrap();
        let now = t0() + Duration::seconds(1);
        let lease = now + Duration::seconds(15);

        // Act
        let (a, b) = tokio::join!(
            store.claim_webhooks("a", now, lease, 10),
            store.claim_webhooks("b", now, lease, 10)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let mut all: Vec<_> = a.iter().chain(&b).collect();
        all.sort_by_key(|d| d.id);
        let (delivered, retried, failed, lost) = (all[0], all[1], all[2], all[3]);
        let owner = |d: &store::WebhookDelivery| if a.contains(d) { "a" } else { "b" };
        let retry_at = now + Duration::seconds(30);
        let outcomes = [
            (delivered, store::WebhookOutcome::Delivered),
            (
                retried,
                store::WebhookOutcome::Retry {
                    run_at: retry_at,
                    error: "the receiver answered 500".into(),
                },
            ),
            (
                failed,
                store::WebhookOutcome::Failed {
                    error: "the receiver answered 404".into(),
                },
            ),
        ];
        for (d, outcome) in &outcomes {
            assert!(
                store
                    .record_webhook(d.id, owner(d), outcome, now)
                    .await
                    .unwrap()
            );
        }
        let before_lease_ends = store
            .claim_webhooks("c", lease - Duration::seconds(1), lease, 10)
            .await
            .unwrap();
        let after = lease + Duration::seconds(1);
        let taken_over = store
            .claim_webhooks("c", after, after + Duration::seconds(15), 10)
            .await
            .unwrap();
        let stale = store
            .record_webhook(
                lost.id,
                owner(lost),
                &store::WebhookOutcome::Delivered,
                after,
            )
            .await
            .unwrap();
        let retried_later = store
            .claim_webhooks("c", retry_at, retry_at + Duration::seconds(15), 10)
            .await
            .unwrap();

        // Assert
        assert_eq!(all.len(), 4, "{db}: every due event claimed");
        let a_ids: HashSet<i64> = a.iter().map(|d| d.id).collect();
        assert!(
            b.iter().all(|d| !a_ids.contains(&d.id)),
            "{db}: never the same event twice"
        );
        assert!(all.iter().all(|d| d.attempts == 1 && d.hook == "hook"));
        assert_eq!(delivered.event_id, "evt_0");
        assert_eq!(delivered.payload, "{\"n\":0}");
        assert!(before_lease_ends.is_empty(), "{db}: {before_lease_ends:?}");
        assert_eq!(
            taken_over.len(),
            1,
            "{db}: the lost one comes back after its lease"
        );
        assert_eq!((taken_over[0].id, taken_over[0].attempts), (lost.id, 2));
        assert_eq!(
            taken_over[0].event_id, lost.event_id,
            "{db}: the same id on every attempt"
        );
        assert!(!stale, "{db}: a worker whose lease ran out records nothing");
        assert_eq!(
            retried_later.len(),
            1,
            "{db}: a retry is due at its instant"
        );
        assert_eq!(retried_later[0].id, retried.id);
        let stored = store.webhook_events("hook").await.unwrap();
        let states: Vec<(&str, u32, Option<&str>)> = stored
            .iter()
            .map(|e| (e.state.as_str(), e.attempts, e.last_error.as_deref()))
            .collect();
        assert_eq!(
            states,
            [
                ("delivered", 1, None),
                ("pending", 2, Some("the receiver answered 500")),
                ("failed", 1, Some("the receiver answered 404")),
                ("pending", 2, None),
            ],
            "{db}"
        );
    })
    .await;
}

#[tokio::test]
async fn published_posts_are_followed_once_read_when_due_and_summed_by_network_and_hour() {
    on_each_backend(|store, db| async move {
        // Arrange: two Mastodon posts and one sandbox post published at t0 + 1 min.
        let m = striker_on(&*store, "mia", 2, NetworkKind::Mastodon).await;
        let s = striker(&*store, "sam", 1).await;
        planned(&*store, &m, &[0]).await;
        planned(&*store, &s, &[0]).await;
        let now = t0() + Duration::minutes(1);
        let claimed = store
            .claim_due("w", now, now + Duration::minutes(1), 10)
            .await
            .unwrap();
        let sending = store
            .begin_sending("w", &ids(&claimed), now, Duration::hours(3))
            .await
            .unwrap();
        let published: Vec<Outcome> = sending
            .iter()
            .map(|id| Outcome::Published {
                id: *id,
                remote_id: format!("r{}", id.0),
                remote_url: None,
                text: "hi".into(),
            })
            .collect();
        store.record(&published, now).await.unwrap();

        // Act
        let followed = store
            .follow_published(t0() - Duration::days(1), Duration::hours(1))
            .await
            .unwrap();
        let again = store
            .follow_published(t0() - Duration::days(1), Duration::hours(1))
            .await
            .unwrap();
        let early = store
            .engagement_due(now + Duration::minutes(30), 10)
            .await
            .unwrap();
        let due = store
            .engagement_due(now + Duration::hours(1), 10)
            .await
            .unwrap();
        let read = |likes, followers, reads, next| store::EngagementRecord {
            counts: Some(picket::network::Engagement {
                likes,
                reposts: 1,
                replies: 0,
            }),
            followers,
            reads,
            attempts: 0,
            error: None,
            next_read_at: next,
        };
        let later = now + Duration::hours(24);
        store
            .record_engagement(due[0].outbox_id, &read(3, Some(10), 1, Some(later)), now)
            .await
            .unwrap();
        let gone = store::EngagementRecord {
            error: Some("the post is no longer on the network (deleted)".into()),
            ..Default::default()
        };
        store
            .record_engagement(due[1].outbox_id, &gone, now)
            .await
            .unwrap();
        let after_first = store
            .engagement_due(now + Duration::hours(2), 10)
            .await
            .unwrap();
        store
            .postpone_engagement(due[0].outbox_id, later + Duration::minutes(5))
            .await
            .unwrap();
        let postponed = store.engagement_due(later, 10).await.unwrap();
        store
            .record_engagement(due[0].outbox_id, &read(5, Some(99), 2, None), later)
            .await
            .unwrap();
        let buckets = store.engagement_buckets(CAMPAIGN).await.unwrap();
        store.delete_participant(m.participant).await.unwrap();
        let after_delete = store.engagement_buckets(CAMPAIGN).await.unwrap();

        // Assert
        assert_eq!((followed, again), (2, 0), "{db}: Mastodon only, once each");
        assert!(early.is_empty(), "{db}: not before the first delay");
        assert_eq!(due.len(), 2, "{db}");
        assert!(due.iter().all(|d| d.network == NetworkKind::Mastodon));
        assert!(
            due.iter()
                .all(|d| d.remote_id == format!("r{}", d.outbox_id))
        );
        assert!(due.iter().all(|d| d.reads == 0 && !d.has_followers));
        assert!(after_first.is_empty(), "{db}: the next read is a day later");
        assert!(postponed.is_empty(), "{db}: postponed past it");
        assert_eq!(
            buckets,
            vec![store::EngagementBucket {
                network: NetworkKind::Mastodon,
                hour: 0,
                posts: 2,
                read: 1,
                with_followers: 1,
                followers: 10,
                likes: 5,
                reposts: 1,
                replies: 0,
                unreadable: 1,
            }],
            "{db}: the first read's followers stay; the latest counts replace the earlier"
        );
        assert!(after_delete.is_empty(), "{db}: deleted with the posts");
    })
    .await;
}

#[tokio::test]
async fn a_hand_off_row_is_leased_handed_off_taken_over_and_recalled_once_withdrawn() {
    use picket::store::HandOffOutcome;
    on_each_backend(|store, db| async move {
        // Arrange: two accounts, three slots; only the first hands off.
        let s = striker(&*store, "hal", 2).await;
        planned(&*store, &s, &[1, 2, 3]).await;
        let (mine, other) = (s.accounts[0], s.accounts[1]);
        store.set_hand_off(mine, true, t0()).await.unwrap();

        // Act: lease all three, the server takes one, refuses one, one answer is lost.
        let rows = store.hand_off_rows(t0()).await.unwrap();
        let want: Vec<OutboxId> = rows.iter().map(|r| r.id).collect();
        let lease = t0() + Duration::minutes(1);
        let taken = store.claim_hand_off("w", &want, t0(), lease).await.unwrap();
        let (first, second, third) = (taken[0].0.id, taken[1].0.id, taken[2].0.id);
        let due = t0() + Duration::hours(3);
        let claimed_meanwhile = store
            .claim_due("d", due, due + Duration::minutes(1), 10)
            .await
            .unwrap();
        store
            .record_hand_off(
                &[
                    HandOffOutcome::HandedOff {
                        id: first,
                        scheduled_id: "s1".into(),
                        text: "on strike".into(),
                    },
                    HandOffOutcome::Direct {
                        id: second,
                        refused: true,
                        reason: Some("refused".into()),
                    },
                ],
                t0(),
            )
            .await
            .unwrap();
        let after = t0() + Duration::minutes(2);
        let retaken = store
            .claim_hand_off("w2", &[], after, after + Duration::minutes(1))
            .await
            .unwrap();
        let rows_after = store.hand_off_rows(t0()).await.unwrap();
        let withdrawal = store
            .withdraw(s.participant, CAMPAIGN, None, after)
            .await
            .unwrap();
        let to_recall = store.handed_off(after, Some(mine)).await.unwrap();
        store
            .record_hand_off(&[HandOffOutcome::Recalled { id: first }], after)
            .await
            .unwrap();

        // Assert
        assert_eq!(
            rows.len(),
            3,
            "only the hand-off account's rows: {rows:?} ({db})"
        );
        assert!(rows.iter().all(|r| r.account_id == mine), "{db}");
        assert_eq!(taken.len(), 3, "{db}");
        assert!(taken.iter().all(|(_, reclaimed)| !reclaimed), "{db}");
        assert!(
            claimed_meanwhile.iter().all(|p| p.account_id == other),
            "the dispatcher never claims a row being handed off ({db})"
        );
        assert_eq!(retaken.len(), 1, "{db}");
        assert_eq!(retaken[0].0.id, third, "{db}");
        assert!(retaken[0].1, "taken over: its outcome is unknown ({db})");
        assert!(
            !rows_after.iter().any(|r| r.id == second),
            "a refused post is not offered to the server again ({db})"
        );
        assert!(
            rows_after
                .iter()
                .any(|r| r.id == first && r.state == OutboxState::HandedOff)
        );
        assert!(withdrawal.cancelled >= 1, "{db}");
        assert_eq!(
            state_of(&*store, second).await,
            OutboxState::Cancelled,
            "{db}"
        );
        assert_eq!(to_recall.len(), 1, "{to_recall:?} ({db})");
        assert_eq!(to_recall[0].scheduled_id, "s1");
        assert!(!to_recall[0].eligible, "{db}");
        assert_eq!(
            state_of(&*store, first).await,
            OutboxState::Cancelled,
            "{db}"
        );
        assert!(
            store
                .handed_off(after, Some(mine))
                .await
                .unwrap()
                .is_empty(),
            "{db}"
        );
    })
    .await;
}

#[tokio::test]
async fn checkpoints_keep_one_per_sequence_and_peer_states_are_replaced_and_forgotten() {
    on_each_backend(|store, _| async move {
        use picket::store::{PeerState, StoredCheckpoint};
        let cp = |sequence: u64, note: &str| StoredCheckpoint {
            sequence,
            note: note.to_string(),
            sketch: None,
        };
        assert_eq!(store.latest_checkpoint(CAMPAIGN).await.unwrap(), None);
        assert!(
            store
                .insert_checkpoint(CAMPAIGN, &cp(1, "one"), t0())
                .await
                .unwrap()
        );
        assert!(
            store
                .insert_checkpoint(CAMPAIGN, &cp(2, "two"), t0())
                .await
                .unwrap()
        );
        // A second writer of the same sequence loses; the first one's note stays.
        assert!(
            !store
                .insert_checkpoint(CAMPAIGN, &cp(2, "other"), t0())
                .await
                .unwrap()
        );
        assert_eq!(
            store.latest_checkpoint(CAMPAIGN).await.unwrap(),
            Some(cp(2, "two"))
        );
        assert_eq!(store.latest_checkpoint("other").await.unwrap(), None);
        store
            .set_checkpoint_sketch(CAMPAIGN, 2, "sketch two")
            .await
            .unwrap();
        assert_eq!(
            store.latest_checkpoint(CAMPAIGN).await.unwrap(),
            Some(StoredCheckpoint {
                sketch: Some("sketch two".into()),
                ..cp(2, "two")
            })
        );

        let state = |url: &str, status: &str, note: Option<&str>| PeerState {
            url: url.to_string(),
            status: status.to_string(),
            detail: String::new(),
            note: note.map(str::to_string),
            sketch: note.map(|n| format!("sketch of {n}")),
            checked_at: t0(),
            last_ok_at: note.map(|_| t0() - Duration::minutes(1)),
        };
        let a = state("https://a.example", "verified", Some("note a"));
        let b = state("https://b.example", "unreachable", None);
        store.save_peer_state(CAMPAIGN, &a).await.unwrap();
        store.save_peer_state(CAMPAIGN, &b).await.unwrap();
        let a2 = PeerState {
            status: "stale".into(),
            detail: "did not answer".into(),
            checked_at: t0() + Duration::minutes(1),
            ..a.clone()
        };
        store.save_peer_state(CAMPAIGN, &a2).await.unwrap();
        assert_eq!(
            store.peer_states(CAMPAIGN).await.unwrap(),
            vec![a2.clone(), b.clone()]
        );
        store
            .forget_peers_except(CAMPAIGN, &["https://a.example".to_string()])
            .await
            .unwrap();
        assert_eq!(store.peer_states(CAMPAIGN).await.unwrap(), vec![a2]);
        assert!(store.peer_states("other").await.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn a_census_cursor_is_saved_per_campaign_and_source_and_replaced() {
    on_each_backend(|store, db| async move {
        let none = store
            .census_cursor(CAMPAIGN, "wss://r.example")
            .await
            .unwrap();
        store
            .save_census_cursor(CAMPAIGN, "wss://r.example", "100", t0())
            .await
            .unwrap();
        store
            .save_census_cursor(CAMPAIGN, "wss://r.example", "200", t0())
            .await
            .unwrap();
        store
            .save_census_cursor("other", "wss://r.example", "5", t0())
            .await
            .unwrap();

        assert_eq!(none, None, "{db}");
        assert_eq!(
            store
                .census_cursor(CAMPAIGN, "wss://r.example")
                .await
                .unwrap()
                .as_deref(),
            Some("200"),
            "{db}"
        );
        assert_eq!(
            store
                .census_cursor("other", "wss://r.example")
                .await
                .unwrap()
                .as_deref(),
            Some("5"),
            "{db}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_sketch_reads_counted_signers_addresses_and_counts_those_without_one() {
    on_each_backend(|store, _| async move {
        let sign = |name: &str, email: Option<&str>, confirmed: bool| NewSignature {
            campaign_id: CAMPAIGN.parse().unwrap(),
            name: name.into(),
            email_canonical: email.map(store::canonical_email),
            public: false,
            invited_by: None,
            confirmed,
            confirm_token_hash: None,
            email_consent: false,
        };
        for s in [
            sign("Ada", Some("Ada@Example.org"), true),
            sign("Bob", Some("bob@example.org"), false),
            sign("Cy", None, true),
            sign("Di", None, true),
        ] {
            store.add_signature(&s, t0()).await.unwrap();
        }
        let (addresses, unkeyed) = store.signer_addresses(CAMPAIGN).await.unwrap();
        assert_eq!(
            (addresses, unkeyed),
            (vec!["ada@example.org".to_string()], 2),
            "only counted signatures, by canonical address"
        );
        assert_eq!(store.signer_addresses("other").await.unwrap(), (vec![], 0));
    })
    .await;
}

#[tokio::test]
async fn announcements_are_enqueued_once_claimed_by_one_worker_and_a_dead_lease_marks_the_retry_interrupted()
 {
    on_each_backend(|store, db| async move {
        // Arrange: two announcements on one channel, one on another, and one enqueued
        // twice (two processes saw it due).
        let new = |channel: &str, name: &str, txn: &str| store::NewBroadcast {
            channel: channel.into(),
            campaign_id: "c".into(),
            announcement: name.into(),
            slot_at: t0(),
            not_after: t0() + Duration::minutes(30),
            txn_id: txn.into(),
            body: format!("{name} on {channel}"),
            missed: None,
        };
        let now = t0() + Duration::seconds(1);
        let mut added = Vec::new();
        for m in [
            new("room", "soon", "txn-1"),
            new("room", "now", "txn-2"),
            new("news", "soon", "txn-3"),
            new("room", "soon", "txn-other"),
        ] {
            added.push(store.enqueue_broadcast(&m, now).await.unwrap());
        }
        let missed = store
            .enqueue_broadcast(
                &store::NewBroadcast {
                    missed: Some("picket was not running".into()),
                    ..new("news", "now", "txn-4")
                },
                now,
            )
            .await
            .unwrap();
        let lease = now + Duration::seconds(15);

        // Act
        let (a, b) = tokio::join!(
            store.claim_broadcasts("a", now, lease, 10),
            store.claim_broadcasts("b", now, lease, 10)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let mut all: Vec<_> = a.iter().chain(&b).cloned().collect();
        all.sort_by_key(|d| d.id);
        let owner = |d: &store::BroadcastDelivery| if a.contains(d) { "a" } else { "b" };
        let (sent, retried, lost) = (&all[0], &all[1], &all[2]);
        assert!(
            store
                .record_broadcast(
                    sent.id,
                    owner(sent),
                    &store::BroadcastOutcome::Sent {
                        remote_id: Some("$event".into())
                    },
                    now
                )
                .await
                .unwrap()
        );
        assert!(
            store
                .record_broadcast(
                    retried.id,
                    owner(retried),
                    &store::BroadcastOutcome::Retry {
                        run_at: now + Duration::seconds(5),
                        error: "rate limited".into()
                    },
                    now
                )
                .await
                .unwrap()
        );
        let after = lease + Duration::seconds(1);
        let again = store
            .claim_broadcasts("c", after, after + Duration::seconds(15), 10)
            .await
            .unwrap();
        let exists = store
            .broadcast_exists("room", "c", "soon", t0())
            .await
            .unwrap();
        let absent = store
            .broadcast_exists("room", "c", "soon", t0() + Duration::hours(1))
            .await
            .unwrap();

        // Assert
        assert_eq!(added, [true, true, true, false], "{db}: once per key");
        assert!(missed, "{db}");
        assert!(exists && !absent, "{db}");
        assert_eq!(all.len(), 3, "{db}: the missed one is never claimed");
        let a_ids: HashSet<i64> = a.iter().map(|d| d.id).collect();
        assert!(b.iter().all(|d| !a_ids.contains(&d.id)), "{db}");
        assert_eq!(
            sent.txn_id, "txn-1",
            "{db}: the first writer's txn id stays"
        );
        assert!(
            all.iter().all(|d| !d.interrupted && d.attempts == 1),
            "{db}"
        );
        let by_id: HashMap<i64, &store::BroadcastDelivery> =
            again.iter().map(|d| (d.id, d)).collect();
        assert_eq!(again.len(), 2, "{db}: {again:?}");
        assert!(
            by_id[&lost.id].interrupted,
            "{db}: an attempt whose process died is marked"
        );
        assert!(
            !by_id[&retried.id].interrupted,
            "{db}: a recorded retry is not"
        );
        assert_eq!(by_id[&lost.id].attempts, 2, "{db}");
        let stored = store.broadcasts("c").await.unwrap();
        let states: Vec<(&str, &str, Option<&str>)> = stored
            .iter()
            .map(|m| (m.txn_id.as_str(), m.state.as_str(), m.remote_id.as_deref()))
            .collect();
        assert_eq!(
            states,
            [
                ("txn-1", "sent", Some("$event")),
                ("txn-2", "pending", None),
                ("txn-3", "pending", None),
                ("txn-4", "missed", None),
            ],
            "{db}"
        );
    })
    .await;
}

/// PostgreSQL chooses the claim's plan from sampled statistics, which its autovacuum
/// refreshes only after a tenth of a table changed. Missing the rows of a new strike, they
/// made it sort every due row on each claim instead of reading the first in index order
/// (a quarter of a second a claim at 100,000 due). Planning many posts at once refreshes
/// them.
#[tokio::test]
async fn planning_many_posts_at_once_refreshes_the_statistics_claims_are_planned_by() {
    let Some(admin) = crate::support::require_server("PICKET_TEST_POSTGRES_URL") else {
        return;
    };
    // Arrange: 600 strikers with two accounts each, due in a window open now.
    let db = TestDb::postgres(&admin).await;
    let now = Utc::now();
    let src = crate::support::window_campaign(
        CAMPAIGN,
        now - Duration::minutes(1),
        now + Duration::hours(2),
        &crate::support::posts_at_start(1, "30m"),
    );
    let campaign = picket::campaign::parse_str(&src, std::path::Path::new("strike.toml"))
        .expect("campaign reads");
    let strikers = new_strikers(600);
    let seal = |_: usize, _: usize, id: AccountId| Sealed::new(format!("{}", id.0));
    db.store.bulk_join(&strikers, &seal, now).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let rows_known = async |conn: &mut sqlx::PgConnection| -> f32 {
        sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE relname = 'outbox'")
            .fetch_one(conn)
            .await
            .unwrap()
    };
    assert!(
        rows_known(&mut conn).await < 1.0,
        "a new table has no statistics yet"
    );

    // Act
    let applied = picket::scheduler::planner::plan_campaign(
        db.store.as_ref(),
        &campaign,
        Duration::zero(),
        now,
    )
    .await
    .unwrap();

    // Assert
    assert_eq!(applied.upserted, 1200);
    assert_eq!(
        rows_known(&mut conn).await,
        1200.0,
        "the statistics count the rows just planned"
    );
    drop(conn);
    db.drop_pg().await;
}
