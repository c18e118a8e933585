//! `picket bench`: the scheduler's throughput, lateness and planning benchmarks, each with
//! its figures (and, for dispatch, a bare-HTTP baseline) measured in the same run.
//!
//! ```text
//! dispatch  100,000 posts due at once ──Dispatcher (file SQLite, WAL)──> Receiver ─┐ same
//!           100,000 bare reqwest POSTs, same concurrency ──────────────> Receiver ─┘ run
//! lateness  1,000 posts/s due for 30 s ──Dispatcher──> Receiver: received_at − run_at
//! plan      1,000,000 pledges × 2 accounts ──planner::plan_campaign──> outbox rows
//! ```
//!
//! Everything runs on a temporary database; the receiver runs in a thread with its own
//! runtime so its work is not hidden inside the dispatcher's. Strikers are created with
//! [`StoreTooling::bulk_join`] (setup time is printed apart from the measured part).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::Context;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use tokio_util::sync::CancellationToken;

use crate::campaign::{self, Campaign};
use crate::clock::{Clock, SystemClock};
use crate::config::SchedulerSettings;
use crate::crypto::Vault;
use crate::domain::{CampaignId, Handle, NetworkKind, Zone};
use crate::network::{Networks, bench_baseline};
use crate::rehearse::{Percentiles, ZONES};
use crate::sandbox::Receiver;
use crate::scheduler::{Dispatcher, planner};
use crate::store::{
    AccountId, JoinedStriker, NewSignature, NewStriker, PgStore, SqliteStore, Store, StoreTooling,
};

/// Which benchmark, and its sizes.
#[derive(Debug, Clone)]
pub struct Options {
    /// dispatch: posts due at one instant.
    pub posts: usize,
    /// dispatch and lateness: the dispatcher's claim batch and send concurrency (the
    /// baseline uses the same concurrency).
    pub batch: u32,
    pub concurrency: usize,
    /// lateness: posts due per second, for this many seconds.
    pub rate: usize,
    pub secs: u64,
    /// plan: pledges (2 accounts each) and the campaign planned.
    pub pledges: usize,
    pub campaign: PathBuf,
    /// dispatch, lateness and plan: a PostgreSQL server to run on instead of a temporary
    /// SQLite file, and (dispatch) how many dispatchers share it.
    pub database: Option<String>,
    pub workers: usize,
    /// dispatch: runs, each the bare client and picket back to back.
    pub runs: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            posts: 100_000,
            batch: 1024,
            concurrency: 128,
            rate: 1_000,
            secs: 30,
            pledges: 1_000_000,
            campaign: PathBuf::from("campaigns/social-media-strike.toml"),
            database: None,
            workers: 1,
            runs: 3,
        }
    }
}

/// A sandbox receiver in its own thread and runtime, like a server on another machine.
struct RemoteReceiver {
    receiver: Receiver,
    url: String,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RemoteReceiver {
    fn start() -> anyhow::Result<RemoteReceiver> {
        let receiver = Receiver::new(Arc::new(SystemClock));
        let stop = CancellationToken::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let (r, s) = (receiver.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("sandbox-receiver".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("a runtime for the receiver");
                rt.block_on(async move {
                    let bound = r
                        .serve(SocketAddr::from(([127, 0, 0, 1], 0)), s.clone())
                        .await;
                    let _ = tx.send(bound);
                    s.cancelled().await;
                });
            })?;
        let addr = rx.recv().context("the receiver thread ended")??;
        Ok(RemoteReceiver {
            receiver,
            url: format!("http://{addr}"),
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for RemoteReceiver {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The database a benchmark runs on: a throwaway SQLite file (WAL, as in production) or,
/// with `--database postgres://...`, a database of its own on that server, dropped at the
/// end.
struct BenchDb {
    store: Arc<dyn StoreTooling>,
    vault: Vault,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL store, the server's URL and the benchmark database's name.
    pg: Option<(PgStore, String, String)>,
}

impl BenchDb {
    async fn open(opts: &Options) -> anyhow::Result<Self> {
        let vault = Vault::from_key_bytes(&[7u8; 32]);
        match opts.database.as_deref() {
            None => {
                let dir = tempfile::tempdir()?;
                let store = SqliteStore::open(&dir.path().join("bench.db"), true).await?;
                Ok(Self {
                    store: Arc::new(store),
                    vault,
                    _dir: Some(dir),
                    pg: None,
                })
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                let name = format!("picket_bench_{}", std::process::id());
                let store = PgStore::create_database(url, &name)
                    .await
                    .with_context(|| format!("creating the database {name} on --database"))?;
                Ok(Self {
                    store: Arc::new(store.clone()),
                    vault,
                    _dir: None,
                    pg: Some((store, url.to_string(), name)),
                })
            }
            Some(_) => anyhow::bail!(
                "--database takes a postgres:// URL (the benchmark creates its own database \
                 on that server); without it a temporary SQLite file is used"
            ),
        }
    }

    fn describe(&self) -> &'static str {
        if self.pg.is_some() {
            "PostgreSQL"
        } else {
            "file SQLite (WAL)"
        }
    }

    /// The stores of `n` workers: this one's first, then each further one with a
    /// connection pool of its own, as a `picket worker` process has.
    async fn workers(&self, n: usize) -> anyhow::Result<Vec<Arc<dyn Store>>> {
        let mut out: Vec<Arc<dyn Store>> = vec![self.store.clone()];
        if n > 1 {
            let Some((_, url, name)) = &self.pg else {
                anyhow::bail!("several workers share a PostgreSQL database: add --database")
            };
            for _ in 1..n {
                out.push(Arc::new(PgStore::connect_database(url, name).await?));
            }
        }
        Ok(out)
    }

    /// Run `bench` on a fresh database and remove the database afterwards, whether the
    /// benchmark succeeded or not: a failed run must not leave a `picket_bench_<pid>`
    /// database behind on the operator's server.
    async fn with<T>(
        opts: &Options,
        bench: impl AsyncFnOnce(&BenchDb) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let db = BenchDb::open(opts).await?;
        let result = bench(&db).await;
        let removed = db.remove().await;
        let out = result?;
        removed?;
        Ok(out)
    }

    /// Drop the PostgreSQL database (a SQLite file goes with its folder).
    async fn remove(self) -> anyhow::Result<()> {
        if let Some((store, url, name)) = self.pg {
            drop(self.store);
            store.drop_database(&url, &name).await?;
        }
        Ok(())
    }
}

/// Signatures per second that `bench plan` adds while planning.
const SIGNATURES_PER_SEC: u32 = 50;

/// Add signatures to `campaign` at `per_sec` until `stop`, each started on its schedule
/// whether or not the one before was answered (a slow answer must not hide the next
/// signer's wait); how long each took, in milliseconds.
async fn sign_meanwhile(
    store: Arc<dyn StoreTooling>,
    campaign: CampaignId,
    per_sec: u32,
    stop: CancellationToken,
) -> anyhow::Result<Percentiles> {
    let mut tick = tokio::time::interval(StdDuration::from_secs(1) / per_sec);
    let mut signers = tokio::task::JoinSet::new();
    for n in 0u64.. {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let (store, campaign) = (store.clone(), campaign.clone());
        signers.spawn(async move {
            let new = NewSignature {
                campaign_id: campaign,
                name: format!("Signer {n}"),
                email_canonical: Some(format!("signer-{n}@bench.example")),
                public: false,
                invited_by: None,
                confirmed: true,
                confirm_token_hash: None,
                email_consent: false,
            };
            let started = Instant::now();
            store.add_signature(&new, SystemClock.now()).await?;
            Ok::<_, anyhow::Error>(started.elapsed().as_secs_f64() * 1000.0)
        });
    }
    let mut waits = Vec::new();
    while let Some(signed) = signers.join_next().await {
        waits.push(signed??);
    }
    Ok(Percentiles::of(waits))
}

/// A campaign with one absolute window from `start` and one post at its start: every
/// striker's post is due at `start` (plus the planner's jitter, if any).
fn window_campaign(start: DateTime<Utc>) -> anyhow::Result<Campaign> {
    let at = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let src = format!(
        r#"id = "bench"
title = "Benchmark Strike"
hashtag = "BenchStrike"
networks = ["mastodon"]

[strike]
windows = [{{ start = "{}", end = "{}" }}]

[[posts]]
name = "notice"
when = "start"
template = "notice"

[templates]
notice = [
  "On #{{{{ hashtag }}}} now: no posts here but this one. Join: {{{{ invite_link }}}}",
  "Striking today, {{{{ participant.name }}}}. #{{{{ hashtag }}}} Why: {{{{ declaration_url }}}}",
]
"#,
        at(start),
        at(start + Duration::hours(2))
    );
    campaign::parse_str(&src, Path::new("bench.toml")).map_err(|p| {
        anyhow::anyhow!(
            "bench campaign: {}",
            p.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })
}

/// `n` strikers with `accounts` sandbox accounts each, posting to `server`; each account
/// has its own token (`bench-{striker}-{account}`).
async fn add_strikers(
    store: &dyn StoreTooling,
    vault: &Vault,
    campaign: &str,
    n: usize,
    accounts: usize,
    server: &str,
) -> anyhow::Result<Vec<JoinedStriker>> {
    let now = SystemClock.now();
    let campaign: CampaignId = campaign.parse()?;
    let zones = ZONES
        .iter()
        .map(|z| Zone::parse(z))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(n);
    let ids: Vec<usize> = (0..n).collect();
    for chunk in ids.chunks(10_000) {
        let strikers: Vec<NewStriker> = chunk
            .iter()
            .map(|&i| NewStriker {
                name: format!("Striker {i}"),
                tz: zones[i % zones.len()],
                accounts: (0..accounts)
                    .map(|a| {
                        (
                            NetworkKind::Sandbox,
                            Handle::parse(&format!("s{i}a{a}")).expect("letters and digits"),
                            Some(server.to_string()),
                        )
                    })
                    .collect(),
                campaign_id: campaign.clone(),
                days: None,
                every_secs: None,
            })
            .collect();
        let seal = |s: usize, a: usize, id: AccountId| {
            vault.seal_for(id.0, format!("bench-{}-{a}", chunk[s]).as_bytes())
        };
        out.extend(store.bulk_join(&strikers, &seal, now).await?);
    }
    Ok(out)
}

fn dispatcher(
    store: Arc<dyn Store>,
    vault: Vault,
    campaign: &Campaign,
    opts: &Options,
) -> anyhow::Result<Dispatcher> {
    let settings = SchedulerSettings {
        batch: opts.batch,
        concurrency: opts.concurrency,
        jitter_secs: 0,
        ..SchedulerSettings::default()
    };
    Ok(Dispatcher::new(
        store,
        Networks::standard(
            Arc::new(crate::network::DiscardCredentials),
            &crate::network::Egress::new(false),
            "https://picket.example",
            Arc::new(SystemClock),
        ),
        vault,
        Arc::new(SystemClock),
        std::slice::from_ref(campaign),
        settings,
        "https://picket.example".into(),
    )?)
}

/// Run the dispatcher until every row of `campaign` is final; returns the wall time.
async fn dispatch_all(
    store: Arc<dyn Store>,
    dispatchers: Vec<Dispatcher>,
    campaign: &str,
    receiver: &Receiver,
    expected: usize,
) -> anyhow::Result<StdDuration> {
    let stop = CancellationToken::new();
    let started = Instant::now();
    let tasks: Vec<_> = dispatchers
        .into_iter()
        .map(|d| {
            let stop = stop.clone();
            tokio::spawn(Arc::new(d).run(stop))
        })
        .collect();
    // Watch the receiver (in memory, cheap) until everything arrived, and only then the
    // database: counting 100,000 rows every few milliseconds would steal the dispatcher's
    // CPU and slow what is being measured.
    while receiver.report().created < expected as u64 {
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    loop {
        tokio::time::sleep(StdDuration::from_millis(5)).await;
        let c = store.outbox_counts(campaign).await?;
        if c.pending + c.claimed + c.sending == 0 {
            break;
        }
    }
    let took = started.elapsed();
    stop.cancel();
    for task in tasks {
        task.await??;
    }
    Ok(took)
}

/// Peak resident memory of this process so far, in MiB (`VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Start `VmHWM` again from the current resident size (Linux's `clear_refs`, value 5);
/// whether it could.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Resident memory of this process now, in MiB (`VmRSS`).
pub fn current_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// The 1-minute load average, to judge how quiet the machine was.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// CPU time (user + system, all threads) this process has used so far: on a shared
/// machine the wall time of a phase varies with the other load, its CPU time much less.
pub fn cpu_secs() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    getrusage(UsageWho::RUSAGE_SELF).map_or(0.0, |u| {
        let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
        secs(u.user_time()) + secs(u.system_time())
    })
}

/// `picket bench dispatch`.
pub async fn dispatch(opts: &Options) -> anyhow::Result<()> {
    // A 2-core machine's speed drifts by a fifth from one second to the next: each run
    // measures the bare client and picket back to back, and the summary takes medians.
    println!("== bench dispatch ==");
    let runs = opts.runs.max(1);
    let mut rates = Vec::with_capacity(runs);
    for run in 1..=runs {
        rates.push(dispatch_once(opts, run).await?);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let picket = median(rates.iter().map(|r| r.0).collect());
    let bare = median(rates.iter().map(|r| r.1).collect());
    let ratio = median(rates.iter().map(|r| r.0 / r.1).collect());
    println!(
        "  median of {runs} run{}: picket {picket:.0} posts/s, bare {bare:.0} posts/s, ratio {:.0}% (each run's own ratio; range {:.0}-{:.0}%)   (targets: >= 5000 posts/s, >= 50%)",
        if runs == 1 { "" } else { "s" },
        100.0 * ratio,
        100.0
            * rates
                .iter()
                .map(|r| r.0 / r.1)
                .fold(f64::INFINITY, f64::min),
        100.0 * rates.iter().map(|r| r.0 / r.1).fold(0.0, f64::max),
    );
    Ok(())
}

/// One run of `picket bench dispatch` on a fresh database and receiver: picket's rate and
/// the bare client's, in posts/s.
async fn dispatch_once(opts: &Options, run: usize) -> anyhow::Result<(f64, f64)> {
    let n = opts.posts;
    let rx = RemoteReceiver::start()?;
    BenchDb::with(opts, async |db| {
        let (store, vault) = (db.store.clone(), db.vault.clone());
        let workers = db.workers(opts.workers.max(1)).await?;
        let setup = Instant::now();
        let start = SystemClock.now() - Duration::minutes(1);
        let campaign = window_campaign(start)?;
        add_strikers(
            store.as_ref(),
            &vault,
            &campaign.id,
            n.div_ceil(2),
            2,
            &rx.url,
        )
        .await?;
        let planned = planner::plan_campaign(
            store.as_ref(),
            &campaign,
            Duration::zero(),
            SystemClock.now(),
        )
        .await?;
        let setup = setup.elapsed();
        let posts = planned.upserted as usize;

        // The baseline first: the receiver then already holds its posts when picket sends,
        // which if anything slows picket down.
        let (bare, ok) = bench_baseline::fire(&rx.url, posts, opts.concurrency).await;
        let rss_before = current_rss_mib().unwrap_or(0.0);
        let dispatchers = workers
            .iter()
            .map(|w| dispatcher(w.clone(), vault.clone(), &campaign, opts))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let took = dispatch_all(
            store.clone(),
            dispatchers,
            &campaign.id,
            &rx.receiver,
            posts + ok,
        )
        .await?;
        let rss_peak = peak_rss_mib().unwrap_or(0.0);

        let counts = store.outbox_counts(&campaign.id).await?;
        let dup_store = store.published_per_slot_duplicates(&campaign.id).await?;
        let report = rx.receiver.report();
        let picket_rate = posts as f64 / took.as_secs_f64();
        let bare_rate = ok as f64 / bare.as_secs_f64();
        println!(
            "  run {run}: {posts} posts due at one instant ({} strikers × 2 sandbox accounts), {}, set up in {:.1} s",
            n.div_ceil(2),
            db.describe(),
            setup.as_secs_f64()
        );
        println!(
            "    picket, {} dispatcher{} ({}): {posts} posts in {:.2} s = {picket_rate:.0} posts/s (batch {}, concurrency {} each)",
            workers.len(),
            if workers.len() == 1 { "" } else { "s" },
            if workers.len() == 1 {
                "one process"
            } else {
                "one process, a connection pool and worker id each"
            },
            took.as_secs_f64(),
            opts.batch,
            opts.concurrency
        );
        println!(
            "      published {}, failed {}, missed {}; duplicates: {} at the receiver, {} in the store",
            counts.published, counts.failed, counts.missed, report.duplicate_slots, dup_store
        );
        println!(
            "    bare reqwest baseline: {ok} posts in {:.2} s = {bare_rate:.0} posts/s (concurrency {})",
            bare.as_secs_f64(),
            opts.concurrency
        );
        println!(
            "    ratio picket / bare: {:.0}%; all {posts} out in {:.1} s (target <= 20 s)",
            100.0 * picket_rate / bare_rate,
            took.as_secs_f64()
        );
        println!(
            "    RSS of this process (dispatcher, and the receiver holding every post): {rss_before:.0} MiB before dispatching, peak {rss_peak:.0} MiB; load average {}",
            load_average()
        );
        drop((store, workers));
        Ok((picket_rate, bare_rate))
    })
    .await
}

/// `picket bench lateness`.
pub async fn lateness(opts: &Options) -> anyhow::Result<()> {
    let posts = opts.rate * opts.secs as usize;
    let rx = RemoteReceiver::start()?;
    BenchDb::with(opts, async |db| {
        let (store, vault) = (db.store.clone(), db.vault.clone());
        // A placeholder id to add strikers under; the real window is fixed once setup is done,
        // so the first post is due a moment after the dispatcher starts.
        let placeholder = window_campaign(SystemClock.now())?;
        let strikers = add_strikers(
            store.as_ref(),
            &vault,
            &placeholder.id,
            posts.div_ceil(2),
            2,
            &rx.url,
        )
        .await?;
        // Planning 30,000 rows takes a moment; the first post is due after it, so lateness
        // measures the dispatcher, not the setup.
        let start = SystemClock.now() + Duration::seconds(5);
        let campaign = window_campaign(start)?;
        // The planner's jitter spreads the posts evenly over `secs` after the start.
        let spread = Duration::seconds(opts.secs as i64);
        let planned = planner::plan_campaign(store.as_ref(), &campaign, spread, SystemClock.now())
            .await?
            .upserted as usize;
        let ready_before_start = SystemClock.now() < start;

        let d = dispatcher(store.clone(), vault, &campaign, opts)?;
        let took = dispatch_all(store.clone(), vec![d], &campaign.id, &rx.receiver, planned).await?;

        // Without faults nothing is retried, so run_at is still the planned, jittered instant.
        let mut run_at = std::collections::HashMap::new();
        for s in &strikers {
            for row in store.outbox_for(s.participant, Some(&campaign.id)).await? {
                run_at.insert((row.account_id, row.slot_key), row.run_at);
            }
        }
        let token_account: std::collections::HashMap<String, crate::store::AccountId> = strikers
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                s.accounts
                    .iter()
                    .enumerate()
                    .map(move |(a, id)| (crate::sandbox::fingerprint(&format!("bench-{i}-{a}")), *id))
            })
            .collect();

        let late: Vec<f64> = rx
            .receiver
            .posts()
            .iter()
            .filter_map(|p| {
                let account = token_account.get(&p.account)?;
                let due = run_at.get(&(*account, p.slot.clone()?))?;
                Some((p.received_at - *due).num_microseconds()? as f64 / 1000.0)
            })
            .collect();
        let counts = store.outbox_counts(&campaign.id).await?;
        let p = Percentiles::of(late);
        println!("== bench lateness ==");
        println!(
            "  {} posts due at a steady {}/s for {} s (run_at spread evenly by the planner's jitter, from 5 s after setup); done {:.1} s after the dispatcher started",
            run_at.len(),
            opts.rate,
            opts.secs,
            took.as_secs_f64()
        );
        println!(
            "  published {}, missed {}, failed {}{}",
            counts.published,
            counts.missed,
            counts.failed,
            if ready_before_start {
                ""
            } else {
                " (WARNING: setup overran the start; early posts were already late)"
            }
        );
        println!(
            "  lateness (received_at − run_at, real clock), {} posts: p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms   (target p99 <= 1000 ms)",
            p.count, p.p50, p.p90, p.p99, p.max
        );
        Ok(())
    })
    .await
}

/// Strike cards drawn per size by `picket bench card`.
const CARD_RUNS: usize = 20;

/// `picket bench card`: the campaign's first strike card drawn again and again (SVG made,
/// rasterised, PNG encoded; no cache), per size: what one card costs the CPU.
pub fn card(opts: &Options) -> anyhow::Result<()> {
    use crate::card::{Size, render};
    let campaign = campaign::load_file(&opts.campaign).map_err(|p| {
        anyhow::anyhow!(
            "{}: {}",
            opts.campaign.display(),
            p.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let day = *campaign
        .days()
        .first()
        .context("the campaign has no strike day")?;
    let notice = campaign.card_notice(day, "https://picket.example.org");
    println!("== bench card ==");
    for size in [Size::Square, Size::Story] {
        // The first drawing loads the fonts: not what a card costs afterwards.
        render(&notice, size)?;
        let mut ms = Vec::with_capacity(CARD_RUNS);
        let mut bytes = 0;
        for _ in 0..CARD_RUNS {
            let started = Instant::now();
            bytes = render(&notice, size)?.len();
            ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "  {} {}x{}: {CARD_RUNS} PNGs, p50 {:.1} ms, max {:.1} ms, {} KiB each",
            size.as_str(),
            size.width(),
            size.height(),
            ms[CARD_RUNS / 2],
            ms[CARD_RUNS - 1],
            bytes / 1024
        );
    }
    Ok(())
}

/// `picket bench plan`.
pub async fn plan(opts: &Options) -> anyhow::Result<()> {
    let campaign = campaign::load_file(&opts.campaign).map_err(|p| {
        anyhow::anyhow!(
            "{}: {}",
            opts.campaign.display(),
            p.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    BenchDb::with(opts, async |db| {
        let (store, vault) = (db.store.clone(), db.vault.clone());
        let setup = Instant::now();
        add_strikers(
            store.as_ref(),
            &vault,
            &campaign.id,
            opts.pledges,
            2,
            "http://127.0.0.1:9",
        )
        .await?;
        let setup = setup.elapsed();
        let rss_setup = peak_rss_mib().unwrap_or(0.0);
        // The peak from here on is planning's own, not the setup's bulk insert.
        let reset = reset_peak_rss();
        let rss_before = current_rss_mib().unwrap_or(0.0);
        let started = Instant::now();
        let cpu_before = cpu_secs();
        let spread = Duration::seconds(SchedulerSettings::default().jitter_secs as i64);
        // People keep signing while a large campaign is planned: each page of pledges holds
        // the database's write lock, and a signature waits for it.
        let stop = CancellationToken::new();
        let signing = tokio::spawn(sign_meanwhile(
            store.clone(),
            campaign.id.clone(),
            SIGNATURES_PER_SEC,
            stop.clone(),
        ));
        let applied =
            planner::plan_campaign(store.as_ref(), &campaign, spread, SystemClock.now()).await;
        stop.cancel();
        let waits = signing.await?;
        let applied = applied?;
        let took = started.elapsed();
        let cpu = cpu_secs() - cpu_before;
        let rss_planning = peak_rss_mib().unwrap_or(0.0);
        let (bare, bare_rows) = bare_plan_baseline(store.as_ref(), &campaign, spread).await?;
        println!("== bench plan ==");
        println!(
            "  setup: {} pledges × 2 accounts in {} zones (bulk insert), {}, in {:.1} s",
            opts.pledges,
            ZONES.len(),
            db.describe(),
            setup.as_secs_f64()
        );
        println!(
            "  planned {} with {}: {} outbox rows in {:.1} s = {:.0} rows/s   (target <= 60 s)",
            opts.pledges,
            opts.campaign.display(),
            applied.upserted,
            took.as_secs_f64(),
            applied.upserted as f64 / took.as_secs_f64()
        );
        println!(
            "  CPU time while planning (both cores): {cpu:.1} s; load average {}",
            load_average()
        );
        println!(
            "  peak RSS (VmHWM) while planning: {rss_planning:.0} MiB = {:.0} MB ({rss_before:.0} MiB when it started{}; setup's peak {rss_setup:.0} MiB)   (target <= 300 MB)",
            rss_planning * 1.048_576,
            if reset {
                ""
            } else {
                "; could not reset the peak, so it may be the setup's"
            }
        );
        let waits = waits?;
        println!(
            "  signatures while planning ({SIGNATURES_PER_SEC}/s, each on its own schedule): {} signed, wait p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
            waits.count, waits.p50, waits.p99, waits.max
        );
        let bare_rate = bare_rows as f64 / bare.as_secs_f64();
        let rate = applied.upserted as f64 / took.as_secs_f64();
        println!(
            "  bare baseline: the same {bare_rows} rows by plain multi-row INSERTs into a copy of the outbox (its indexes and foreign keys), a transaction per page, planned beforehand: {:.1} s = {bare_rate:.0} rows/s; load average {}",
            bare.as_secs_f64(),
            load_average()
        );
        println!(
            "  ratio planning / bare: {:.0}%   (target >= 50%)",
            100.0 * rate / bare_rate
        );
        Ok(())
    })
    .await
}

/// The planner's own rows, page by page as it plans them, inserted into `bare_outbox` by
/// plain multi-row `INSERT`s: only the inserts are timed (reading and planning the pages
/// is not). The time and the number of rows.
async fn bare_plan_baseline(
    store: &dyn StoreTooling,
    campaign: &Campaign,
    spread: Duration,
) -> anyhow::Result<(StdDuration, u64)> {
    store.create_bare_outbox().await?;
    let now = SystemClock.now();
    let mut planner = planner::Planner::new(campaign, spread);
    let (mut took, mut rows) = (StdDuration::ZERO, 0);
    let mut after = None;
    loop {
        let page = store
            .active_pledges(&campaign.id, after, planner::PAGE)
            .await?;
        let Some(last) = page.last_id() else { break };
        after = Some(last);
        let plans: Vec<_> = page
            .pledges
            .iter()
            .filter_map(|p| planner.plan(p, now).ok())
            .collect();
        let started = Instant::now();
        rows += store.bare_insert(&plans, now).await?;
        took += started.elapsed();
    }
    store.drop_bare_outbox().await?;
    Ok((took, rows))
}

/// `picket bench bare-page`: the baseline of scripts/bench-web's page reads. It answers
/// every request with `file`'s bytes (the campaign page as the server renders and caches
/// it) and `headers`' headers (the server's own answer's, security headers and cookie
/// included) from memory, through the same HTTP stack (axum on hyper, tokio's default
/// runtime) but with no routing, middleware or state: what the server adds on top of this
/// is the cost of serving the page.
pub async fn bare_page(
    file: &Path,
    headers: Option<&Path>,
    bind: SocketAddr,
) -> anyhow::Result<()> {
    use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
    let body = axum::body::Bytes::from(
        std::fs::read(file).with_context(|| format!("reading {}", file.display()))?,
    );
    let mut answer_headers = HeaderMap::new();
    answer_headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Some(path) = headers {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        // The status line, then `name: value` lines; hyper writes its own date and length.
        for line in text.lines().skip(1) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("a header name in {}", path.display()))?;
            if name == header::DATE || name == header::CONTENT_LENGTH {
                continue;
            }
            let value = HeaderValue::from_str(value.trim())
                .with_context(|| format!("a header value in {}", path.display()))?;
            answer_headers.insert(name, value);
        }
    }
    let app = axum::Router::new().fallback(move || {
        let (headers, body) = (answer_headers.clone(), body.clone());
        async move { (headers, body) }
    });
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("listening on {bind}"))?;
    eprintln!(
        "bench bare-page: serving {} on http://{bind}",
        file.display()
    );
    axum::serve(listener, app).await?;
    Ok(())
}
