//! The real `picket` binary in a temporary installation (database, campaigns folder,
//! settings file, credentials key), driven as a user would: `picket account add`,
//! `picket join`, then `picket serve` as a child process ([`Installation::serve`], which
//! gives a [`TestApp`](super::TestApp)). Made by
//! [`Options::install`](super::Options::install).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use picket::store::{self, Store};

use super::eventually;

/// The `picket` binary the process tests run: this build's, or the one named by
/// `PICKET_TEST_BIN` (an older build, to see a test fail before its fix).
pub fn picket_bin() -> PathBuf {
    std::env::var_os("PICKET_TEST_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_picket").into())
}

/// A picket installation in a temporary folder. Clones share it; the folder goes with the
/// last one.
#[derive(Clone)]
pub struct Installation(Arc<Inner>);

struct Inner {
    dir: tempfile::TempDir,
    db_url: String,
    campaigns: PathBuf,
    key: [u8; 32],
    /// The port `picket serve` binds: fixed when the public URL names it, else 0.
    port: u16,
    /// `PICKET_LOG` of `picket serve`; it must include picket's info lines (the one that
    /// says it is ready).
    log_level: String,
}

/// What an installation is made of.
pub(super) struct Parts {
    /// Written into the campaigns folder, in order (a later file replaces an earlier one).
    pub campaign_files: Vec<(String, String)>,
    /// A database URL and campaigns folder made elsewhere (a [`World`](super::World)'s).
    pub existing: Option<(String, PathBuf)>,
    pub config: String,
    pub key: [u8; 32],
    pub port: u16,
    pub log_level: String,
}

impl Installation {
    pub(super) fn create(parts: Parts) -> Installation {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("picket.toml"), &parts.config).unwrap();
        let (db_url, campaigns) = parts.existing.unwrap_or_else(|| {
            let campaigns = dir.path().join("campaigns");
            std::fs::create_dir(&campaigns).unwrap();
            let db_url = format!("sqlite://{}", dir.path().join("picket.db").display());
            (db_url, campaigns)
        });
        for (name, text) in &parts.campaign_files {
            std::fs::write(campaigns.join(name), text).unwrap();
        }
        Installation(Arc::new(Inner {
            dir,
            db_url,
            campaigns,
            key: parts.key,
            port: parts.port,
            log_level: parts.log_level,
        }))
    }

    /// The installation's folder: `picket.toml`, `serve.log`, and (unless it runs over a
    /// [`World`](super::World)'s) the database and `campaigns/`.
    pub fn dir(&self) -> &Path {
        self.0.dir.path()
    }

    /// The campaigns folder `picket` reads.
    pub fn campaigns(&self) -> &Path {
        &self.0.campaigns
    }

    /// `http://127.0.0.1:<port>` when the port is fixed in advance (the public URL names
    /// it), else `None` until a server says where it listens.
    pub fn fixed_base(&self) -> Option<String> {
        (self.0.port != 0).then(|| format!("http://127.0.0.1:{}", self.0.port))
    }

    /// `picket` with this installation's database, campaigns, settings and key.
    pub fn command(&self) -> Command {
        use base64::Engine;
        let mut c = Command::new(picket_bin());
        c.arg("--database-url")
            .arg(&self.0.db_url)
            .arg("--campaigns")
            .arg(&self.0.campaigns)
            .arg("--config")
            .arg(self.dir().join("picket.toml"))
            .env(
                "PICKET_SECRET_KEY",
                base64::engine::general_purpose::STANDARD.encode(self.0.key),
            )
            .env_remove("PICKET_NOSTR_NSEC")
            .env_remove("PICKET_BLUESKY_APP_PASSWORD")
            .env_remove("PICKET_MASTODON_TOKEN")
            .env("PICKET_LOG", "warn");
        c
    }

    /// Run a command that must succeed.
    pub fn run(&self, args: &[&str]) -> Output {
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

    /// Where `picket serve` writes its log (each start begins it anew).
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("serve.log")
    }

    /// The log of the last `picket serve`, without terminal colours.
    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(self.log_path()).unwrap_or_default())
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        store::open(&self.0.db_url).await.unwrap()
    }

    /// The database files' bytes (main file, WAL and shared memory).
    pub fn db_bytes(&self) -> Vec<u8> {
        let path = self.0.db_url.trim_start_matches("sqlite://");
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            if let Ok(b) = std::fs::read(format!("{path}{suffix}")) {
                all.extend(b);
            }
        }
        all
    }

    /// `picket serve` as a child process, once it says it is ready.
    pub async fn serve(&self) -> super::TestApp {
        let mut served = self.spawn_serve();
        let addr = served.ready(Duration::from_secs(60)).await;
        super::TestApp::over_process(self.clone(), served, addr).await
    }

    fn spawn_serve(&self) -> Served {
        let child = self
            .command()
            .args(["serve", "--bind", &format!("127.0.0.1:{}", self.0.port)])
            .env("PICKET_LOG", &self.0.log_level)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log_path()).unwrap())
            .spawn()
            .unwrap();
        Served {
            child,
            log_path: self.log_path(),
        }
    }
}

/// A running `picket serve`, killed (SIGKILL) when dropped.
pub(super) struct Served {
    pub child: Child,
    log_path: PathBuf,
}

impl Served {
    /// The address `picket serve` listens on, read from its "picket is ready" log line;
    /// panics with the log if the process exits first or says nothing within `limit`.
    pub async fn ready(&mut self, limit: Duration) -> std::net::SocketAddr {
        let outcome = eventually(limit, "picket serve to say it is ready", async || {
            let log = strip_ansi(&std::fs::read_to_string(&self.log_path).unwrap_or_default());
            if let Some(addr) = log
                .lines()
                .find(|l| l.contains("picket is ready"))
                .and_then(|l| l.split("address=").nth(1))
                .and_then(|a| a.split_whitespace().next())
                .and_then(|a| a.parse().ok())
            {
                return Ok(Ok(addr));
            }
            match self.child.try_wait() {
                Ok(Some(status)) => Ok(Err(format!(
                    "picket serve exited ({status}) before it was ready:\n{log}"
                ))),
                _ => Err(format!("the log so far:\n{log}")),
            }
        })
        .await;
        outcome.unwrap_or_else(|exited| panic!("{exited}"))
    }

    /// Stop with SIGTERM (a clean shutdown) and wait for the process.
    pub fn terminate(&mut self) -> ExitStatus {
        let term = Command::new("kill")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(term.success(), "kill (SIGTERM) failed: {term}");
        self.child.wait().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // A failing test shows what the server said.
        if std::thread::panicking() {
            let log = strip_ansi(&std::fs::read_to_string(&self.log_path).unwrap_or_default());
            eprintln!(
                "--- picket serve's log ({}):\n{log}",
                self.log_path.display()
            );
        }
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
