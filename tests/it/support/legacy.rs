//! The process helpers as they were before `TestApp` could run the binary; kept only
//! until every module has moved to `Options::process` / `Options::install`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use picket::store::{self, Store};

use super::picket_bin;

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
