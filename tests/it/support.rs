//! Helpers shared by the integration tests: a temporary picket world (database, vault,
//! campaign file, sandbox receiver) built through the library, as the application does.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use picket::campaign::{self, Campaign};
use picket::clock::Clock;
use picket::config::SchedulerSettings;
use picket::crypto::Vault;
use picket::network::{NetworkKind, Networks};
use picket::sandbox::{Faults, Receiver};
use picket::scheduler::retry::RetryPolicy;
use picket::scheduler::{Dispatcher, planner};
use picket::store::{
    self, AccountId, NewAccount, NewPledge, ParticipantId, PledgeId, Store, StoreTooling,
};
use tokio_util::sync::CancellationToken;

/// An RFC 3339 instant as campaign files write it.
pub fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A campaign with one absolute strike window and `posts` (TOML `[[posts]]` tables).
pub fn window_campaign(id: &str, start: DateTime<Utc>, end: DateTime<Utc>, posts: &str) -> String {
    format!(
        r#"id = "{id}"
title = "Test strike {id}"
hashtag = "TestStrike"
networks = ["sandbox"]

[strike]
windows = [{{ start = "{}", end = "{}" }}]
min_interval = "5m"

{posts}

[templates]
notice = [
  "On #{{{{ hashtag }}}} strike. Join: {{{{ invite_link }}}}",
  "Striking today, #{{{{ hashtag }}}}: {{{{ invite_link }}}}",
  "No posts from me today but this one. #{{{{ hashtag }}}} {{{{ invite_link }}}}",
]
"#,
        rfc(start),
        rfc(end)
    )
}

/// `n` posts named p0..pn, all at the start of the strike, each open for `window`.
pub fn posts_at_start(n: usize, window: &str) -> String {
    (0..n)
        .map(|i| format!("[[posts]]\nname = \"p{i}\"\nwhen = \"start\"\ntemplate = \"notice\"\nwindow = \"{window}\"\n"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub db_url: String,
    pub store: Arc<dyn StoreTooling>,
    pub vault: Vault,
    pub receiver: Receiver,
    pub receiver_url: String,
    pub campaign: Campaign,
    pub clock: Arc<dyn Clock>,
    stop: CancellationToken,
}

impl Drop for World {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl World {
    /// A fresh SQLite database and a receiver on a free loopback port.
    pub async fn new(campaign_toml: &str, clock: Arc<dyn Clock>) -> World {
        let dir = tempfile::tempdir().unwrap();
        let campaigns = dir.path().join("campaigns");
        std::fs::create_dir(&campaigns).unwrap();
        let path = campaigns.join("test.toml");
        std::fs::write(&path, campaign_toml).unwrap();
        let campaign = campaign::load_file(&path).unwrap_or_else(|problems| {
            panic!(
                "test campaign invalid: {:?}",
                problems.iter().map(|p| p.to_string()).collect::<Vec<_>>()
            )
        });
        let db_url = format!("sqlite://{}", dir.path().join("picket.db").display());
        let store = store::open_tooling(&db_url).await.unwrap();
        let receiver = Receiver::new(clock.clone());
        let stop = CancellationToken::new();
        let addr = receiver
            .serve("127.0.0.1:0".parse().unwrap(), stop.clone())
            .await
            .unwrap();
        World {
            dir,
            db_url,
            store,
            vault: Vault::from_key_bytes(&[42; 32]),
            receiver,
            receiver_url: format!("http://{addr}"),
            campaign,
            clock,
            stop,
        }
    }

    pub fn campaigns_dir(&self) -> PathBuf {
        self.dir.path().join("campaigns")
    }

    pub fn faults(&self, faults: Faults) {
        self.receiver.set_faults(faults);
    }

    /// A participant with `n` sandbox accounts whose tokens are `{prefix}-{i}`.
    pub async fn participant(&self, name: &str, n: usize) -> (ParticipantId, Vec<AccountId>) {
        let now = self.clock.now();
        let me = self
            .store
            .create_participant(
                &store::NewParticipant {
                    name: name.to_string(),
                    tz: "UTC".into(),
                    ..Default::default()
                },
                now,
            )
            .await
            .unwrap();
        let mut accounts = Vec::new();
        for i in 0..n {
            let id = self
                .store
                .add_account(
                    &NewAccount {
                        participant_id: me,
                        network: NetworkKind::Sandbox,
                        handle: format!("{name}-{i}"),
                        server: Some(self.receiver_url.clone()),
                        trusted: true,
                    },
                    &|id| self.vault.seal_for(id.0, token(name, i).as_bytes()),
                    now,
                )
                .await
                .unwrap();
            accounts.push(id);
        }
        (me, accounts)
    }

    /// Pledge every day of the campaign in UTC and plan it.
    pub async fn pledge(&self, who: ParticipantId, accounts: &[AccountId]) -> PledgeId {
        let now = self.clock.now();
        let id = self
            .store
            .upsert_pledge(
                &NewPledge {
                    participant_id: who,
                    campaign_id: self.campaign.id.clone(),
                    tz: "UTC".into(),
                    days: None,
                    every_secs: None,
                    account_ids: accounts.to_vec(),
                },
                now,
            )
            .await
            .unwrap();
        planner::plan_campaign(
            self.store.as_ref(),
            &self.campaign,
            chrono::Duration::zero(),
            now,
        )
        .await
        .unwrap();
        id
    }

    pub fn dispatcher(&self, settings: SchedulerSettings) -> Dispatcher {
        self.dispatcher_with(settings, networks())
    }

    pub fn dispatcher_with(&self, settings: SchedulerSettings, networks: Networks) -> Dispatcher {
        Dispatcher::new(
            self.store.clone(),
            networks,
            self.vault.clone(),
            self.clock.clone(),
            std::slice::from_ref(&self.campaign),
            settings,
            "http://picket.test".into(),
        )
        .unwrap()
        .with_retry(RetryPolicy {
            base: Duration::from_millis(50),
            cap: Duration::from_millis(400),
        })
    }

    /// Posts not yet in a final state.
    pub async fn unfinished(&self) -> u64 {
        let c = self.store.outbox_counts(&self.campaign.id).await.unwrap();
        c.pending + c.claimed + c.sending
    }

    /// Run `dispatcher` until every post is final (or `limit` passes).
    pub async fn dispatch_until_done(&self, dispatcher: Dispatcher, limit: Duration) {
        let dispatcher = Arc::new(dispatcher);
        let stop = CancellationToken::new();
        let task = {
            let d = dispatcher.clone();
            let stop = stop.clone();
            tokio::spawn(async move { d.run(stop).await })
        };
        let deadline = tokio::time::Instant::now() + limit;
        while self.unfinished().await > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.cancel();
        task.await.unwrap().unwrap();
    }
}

/// Every adapter, as `picket serve` builds them with the default settings (private
/// addresses refused for accounts visitors connected).
pub fn networks() -> Networks {
    Networks::standard(
        Arc::new(picket::network::DiscardCredentials),
        &picket::network::Egress::new(false),
        "http://picket.test",
        Arc::new(picket::clock::SystemClock),
    )
}

/// The `picket` binary the process tests run: this build's, or the one named by
/// `PICKET_TEST_BIN` (an older build, to see a test fail before its fix).
pub fn picket_bin() -> std::path::PathBuf {
    std::env::var_os("PICKET_TEST_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_picket").into())
}

pub fn token(name: &str, i: usize) -> String {
    format!("{name}-token-{i}")
}

/// Scheduler settings for tests: no jitter, short leases and timeouts.
pub fn fast_settings() -> SchedulerSettings {
    SchedulerSettings {
        grace_secs: 60,
        jitter_secs: 0,
        lease_secs: 2,
        batch: 32,
        concurrency: 16,
        request_timeout_secs: 1,
    }
}

/// `scripts/test` (and so CI) sets `PICKET_REQUIRE_SERVERS=1`: tests that need a real
/// server then fail instead of skipping when it is missing.
pub fn servers_required() -> bool {
    std::env::var("PICKET_REQUIRE_SERVERS").is_ok_and(|v| v == "1")
}

/// A picket installation in a temporary folder (database, campaigns folder, config file,
/// credentials key), driven through the real binary as a user would.
pub struct Installation {
    pub dir: tempfile::TempDir,
    pub db_url: String,
    key: [u8; 32],
}

impl Installation {
    /// One campaign file and a settings file.
    pub fn new(campaign_toml: &str, config_toml: &str, key: [u8; 32]) -> Installation {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("campaigns")).unwrap();
        std::fs::write(dir.path().join("campaigns/test.toml"), campaign_toml).unwrap();
        std::fs::write(dir.path().join("picket.toml"), config_toml).unwrap();
        let db_url = format!("sqlite://{}", dir.path().join("picket.db").display());
        Installation { dir, db_url, key }
    }

    /// `picket` with this installation's database, campaigns, settings and key.
    pub fn command(&self) -> std::process::Command {
        use base64::Engine;
        let mut c = std::process::Command::new(picket_bin());
        c.arg("--database-url")
            .arg(&self.db_url)
            .arg("--campaigns")
            .arg(self.dir.path().join("campaigns"))
            .arg("--config")
            .arg(self.dir.path().join("picket.toml"))
            .env(
                "PICKET_SECRET_KEY",
                base64::engine::general_purpose::STANDARD.encode(self.key),
            )
            .env_remove("PICKET_NOSTR_NSEC")
            .env_remove("PICKET_BLUESKY_APP_PASSWORD")
            .env_remove("PICKET_MASTODON_TOKEN")
            .env("PICKET_LOG", "warn");
        c
    }

    /// Run a command that must succeed.
    pub fn run(&self, args: &[&str]) -> std::process::Output {
        let out = self.command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "picket {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `picket account add ...`; the new account's id ("added <network> account <id> ...").
    pub fn add_account(&self, args: &[&str]) -> i64 {
        let mut all = vec!["account", "add"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        said.split_whitespace()
            .nth(3)
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no account id in {said:?}"))
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("serve.log")
    }

    /// `picket serve` on `bind`, logging at `level` into [`Installation::log_path`]. With
    /// port 0 the system picks a free port; [`Served::ready`] tells which.
    pub fn serve(&self, bind: &str, level: &str) -> Served {
        let child = self
            .command()
            .args(["serve", "--bind", bind])
            .env("PICKET_LOG", level)
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(self.log_path()).unwrap())
            .spawn()
            .unwrap();
        Served {
            child,
            log_path: self.log_path(),
        }
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        store::open(&self.db_url).await.unwrap()
    }

    /// The database files' bytes (main file, WAL and shared memory).
    pub fn db_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(b) = std::fs::read(self.dir.path().join(format!("picket.db{suffix}"))) {
                all.extend(b);
            }
        }
        all
    }
}

/// A running `picket serve`, killed when dropped.
pub struct Served {
    pub child: std::process::Child,
    log_path: PathBuf,
}

impl Served {
    /// A `picket serve` started elsewhere, its log (stderr) written to `log_path`.
    pub fn new(child: std::process::Child, log_path: PathBuf) -> Served {
        Served { child, log_path }
    }

    /// The address `picket serve` listens on, read from its "picket is ready" log line
    /// (logged at info, so the log level must include it); panics with the log if the
    /// process exits or says nothing within `limit`.
    pub async fn ready(&mut self, limit: Duration) -> std::net::SocketAddr {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let log = strip_ansi(&std::fs::read_to_string(&self.log_path).unwrap_or_default());
            if let Some(addr) = log
                .lines()
                .find(|l| l.contains("picket is ready"))
                .and_then(|l| l.split("address=").nth(1))
                .and_then(|a| a.split_whitespace().next())
                .and_then(|a| a.parse().ok())
            {
                return addr;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("picket serve exited ({status}) before it was ready:\n{log}");
            }
            if tokio::time::Instant::now() > deadline {
                panic!("picket serve was not ready within {limit:?}:\n{log}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stop with SIGTERM (a clean shutdown); the log so far.
    pub fn stop(mut self) -> String {
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `text` without terminal colour codes (the log writer adds them around field names).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI sequences end with a letter: ESC [ ... m
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A loopback port for a server whose address must be known before it starts (a
/// `public_url` written into its settings, a relay started by a script).
///
/// Binding port 0 and closing the socket again leaves the port free for anyone: under a
/// loaded CI machine another test's server (bound to port 0) or an outgoing connection can
/// take it before the intended server binds it. Ports below the kernel's ephemeral range
/// are never handed out that way, and this process hands each one out once; the port is
/// checked free when handed out.
pub fn unused_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_floor: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (low, high) = (
        ephemeral_floor.saturating_sub(12_000).max(1024),
        ephemeral_floor,
    );
    // A random start, so two test runs on one machine (other worktrees) rarely meet.
    let _ = NEXT.compare_exchange(
        0,
        rand::random_range(0..high - low),
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..(high - low) {
        let port = (low + NEXT.fetch_add(1, Ordering::SeqCst) % (high - low)) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// A loopback port this test keeps for itself while nothing listens on it: connections
/// to it are refused (a server that is down), and no other process can bind it, so it
/// can be brought up again with [`HeldPort::listen`] later. (Closing a listener and
/// binding its port again later is a race: another process may take the port meanwhile.)
pub struct HeldPort {
    addr: std::net::SocketAddr,
    // Bound with SO_REUSEPORT and never listening: it keeps the port without accepting.
    _hold: tokio::net::TcpSocket,
}

impl HeldPort {
    pub fn new() -> HeldPort {
        let hold = Self::socket();
        hold.bind(([127, 0, 0, 1], 0).into()).unwrap();
        HeldPort {
            addr: hold.local_addr().unwrap(),
            _hold: hold,
        }
    }

    fn socket() -> tokio::net::TcpSocket {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.set_reuseport(true).unwrap();
        s
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A listener on this port (up); dropping it takes the port down again, still held.
    pub fn listen(&self) -> tokio::net::TcpListener {
        let s = Self::socket();
        s.bind(self.addr).unwrap();
        s.listen(1024).unwrap()
    }
}
