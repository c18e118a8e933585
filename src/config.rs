//! Settings: built-in defaults, then a TOML file (`--config` / `PICKET_CONFIG`), then
//! `PICKET_*` environment variables, then command-line flags; the later wins.
//!
//! Secrets (the credential key, SMTP password) are wrapped in [`Secret`] so a `{:?}` of the
//! settings, in a log line or a panic, never shows them.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

/// A value that must not be printed.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Everything picket can be configured with. Every key is optional in the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `sqlite://picket.db` (default), a bare path (SQLite), or `postgres://...`.
    pub database_url: String,
    /// Where campaign files are read from.
    pub campaigns_dir: PathBuf,
    /// Address `picket serve` listens on.
    pub bind: SocketAddr,
    /// The address people reach this host at; used in invitation links and posts.
    pub public_url: String,
    /// Folder whose files shadow the built-in page templates of the same name.
    pub templates_dir: Option<PathBuf>,
    /// The key that encrypts account credentials (base64, 32 bytes). When unset, a key
    /// file is created beside the database, readable only by its owner.
    pub secret_key: Option<Secret>,
    /// Public rate limits on forms and the API (`PICKET_RATE_LIMITS=off` to disable).
    pub rate_limits: bool,
    /// Scheduler tuning.
    pub scheduler: SchedulerSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerSettings {
    /// Seconds a post may still go out after its slot's window closed.
    pub grace_secs: u64,
    /// Posts of one slot are spread over this many seconds after its instant.
    pub jitter_secs: u64,
    /// How long a claimed post is reserved for one worker before others may take it over.
    pub lease_secs: u64,
    /// Posts claimed per round trip to the database.
    pub batch: u32,
    /// Posts being sent at once by one worker.
    pub concurrency: usize,
    /// The longest one publish request may take (less when the post's window closes sooner).
    pub request_timeout_secs: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings {
            grace_secs: 60,
            jitter_secs: 120,
            lease_secs: 120,
            batch: 256,
            concurrency: 64,
            request_timeout_secs: 30,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            database_url: "sqlite://picket.db".to_string(),
            campaigns_dir: PathBuf::from("campaigns"),
            bind: "127.0.0.1:8080".parse().expect("valid default address"),
            public_url: "http://127.0.0.1:8080".to_string(),
            templates_dir: None,
            secret_key: None,
            rate_limits: true,
            scheduler: SchedulerSettings::default(),
        }
    }
}

impl Settings {
    /// Defaults, then `file` if given, then the environment.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Settings> {
        let mut s = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?;
                toml::from_str(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))?
            }
            None => Settings::default(),
        };
        s.apply_env(|k| std::env::var(k).ok())?;
        Ok(s)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(v) = get("PICKET_DATABASE_URL") {
            self.database_url = v;
        }
        if let Some(v) = get("PICKET_CAMPAIGNS") {
            self.campaigns_dir = v.into();
        }
        if let Some(v) = get("PICKET_BIND") {
            self.bind = v
                .parse()
                .context("PICKET_BIND must be an address like 127.0.0.1:8080")?;
        }
        if let Some(v) = get("PICKET_PUBLIC_URL") {
            self.public_url = v;
        }
        if let Some(v) = get("PICKET_TEMPLATES") {
            self.templates_dir = Some(v.into());
        }
        if let Some(v) = get("PICKET_SECRET_KEY") {
            self.secret_key = Some(Secret::new(v));
        }
        if let Some(v) = get("PICKET_RATE_LIMITS") {
            self.rate_limits = !matches!(
                v.to_ascii_lowercase().as_str(),
                "off" | "0" | "false" | "no"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret_key() {
        let s = Settings {
            secret_key: Some(Secret::new("hunter2-very-secret")),
            ..Settings::default()
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let mut s: Settings =
            toml::from_str("database_url = \"sqlite://a.db\"\nrate_limits = true").unwrap();
        s.apply_env(|k| match k {
            "PICKET_DATABASE_URL" => Some("postgres://x/y".into()),
            "PICKET_RATE_LIMITS" => Some("off".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.database_url, "postgres://x/y");
        assert!(!s.rate_limits);
    }

    #[test]
    fn the_example_config_parses_and_matches_the_defaults() {
        let text = include_str!("../picket.example.toml");
        let s: Settings = toml::from_str(text).unwrap();
        let d = Settings::default();
        assert_eq!(format!("{s:?}"), format!("{d:?}"));
    }

    #[test]
    fn an_unknown_key_in_the_file_is_an_error() {
        let e = toml::from_str::<Settings>("databse_url = \"x\"").unwrap_err();
        assert!(e.to_string().contains("databse_url"), "{e}");
    }
}
