//! [`TestApp`]: picket for one test, started by [`TestApp::spawn`] with [`Options`]. By
//! default the same `Application` `picket serve` runs, inside the test on port 0 with a
//! fresh SQLite database; with [`Options::process`], the real binary as a child process
//! (for what only the process shows: its log, signals, exit codes, a restart). Either way
//! the test talks to it over HTTP through the helpers here and [`Visitor`]s.
//!
//! Settings are given as `picket.toml` text ([`Options::config`]) over the harness's
//! defaults, so an in-process app and a child process read the very same settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::sync::Arc;

use picket::app::Application;
use picket::clock::{Clock, SystemClock};
use picket::config::Settings;
use picket::domain::Secret;
use picket::store::Store;
use reqwest::header::{COOKIE, SET_COOKIE};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::install::{Installation, Parts, Served};
use super::{BUNDLED, Visitor, World, bundled_files, unused_port};

/// The settings every test app starts from: invitation links at a public address of its
/// own, no rate limits (tests sign many times from one address; the rate-limit tests turn
/// them on), no jitter (a post due at an instant goes out then).
const DEFAULTS: &str = r#"
public_url = "https://picket.test"
rate_limits = false

[scheduler]
jitter_secs = 0
"#;

/// What a [`TestApp`] is started with. `Options::default()` is the bundled campaign on
/// the harness's default settings, in process, on the system clock.
#[derive(Clone)]
pub struct Options {
    bundled: bool,
    /// Campaign files beside (or instead of) the bundled ones: file name, text.
    files: Vec<(String, String)>,
    config: toml::Table,
    clock: Option<Arc<dyn Clock>>,
    own_address: bool,
    process: bool,
    log_level: String,
    key: [u8; 32],
    /// A world's database and campaigns folder, used instead of fresh ones.
    existing: Option<(String, PathBuf)>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            bundled: true,
            files: Vec::new(),
            config: DEFAULTS.parse().unwrap(),
            clock: None,
            own_address: false,
            process: false,
            log_level: "info".into(),
            key: [9; 32],
            existing: None,
        }
    }
}

impl Options {
    /// A site a visitor can join and follow every link of: the bundled campaign, the
    /// public URL its own loopback address, the sandbox network on (sandbox accounts post
    /// to its own receiver).
    pub fn joinable() -> Options {
        Options::default().own_address().config("sandbox = true")
    }

    /// One more campaign file, `<id>.toml`, beside the bundled campaign.
    pub fn campaign(self, id: &str, toml: &str) -> Options {
        self.campaign_file(&format!("{id}.toml"), toml)
    }

    /// Any file in the campaigns folder (a declaration); it replaces a bundled file of
    /// the same name.
    pub fn campaign_file(mut self, name: &str, text: &str) -> Options {
        self.files.push((name.to_string(), text.to_string()));
        self
    }

    /// Without the bundled campaign: only the files given.
    pub fn without_bundled(mut self) -> Options {
        self.bundled = false;
        self
    }

    /// Settings as `picket.toml` writes them, over the defaults and earlier calls (a table
    /// given twice is merged, a key given twice takes the later value).
    pub fn config(mut self, toml: &str) -> Options {
        let table: toml::Table = toml
            .parse()
            .unwrap_or_else(|e| panic!("test settings are not TOML: {e}\n{toml}"));
        merge(&mut self.config, table);
        self
    }

    /// The server's time from `clock` (a `ManualClock` to move days ahead). In process only.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Options {
        self.clock = Some(clock);
        self
    }

    /// The public URL is the server's own loopback address, so invitation links, magic
    /// links and the sandbox lead back to it. The port is chosen before the server starts.
    pub fn own_address(mut self) -> Options {
        self.own_address = true;
        self
    }

    /// The real `picket serve` as a child process instead of the `Application` in the test.
    pub fn process(mut self) -> Options {
        self.process = true;
        self
    }

    /// `PICKET_LOG` of a child process (`info` by default; it must include info lines).
    pub fn log_level(mut self, level: &str) -> Options {
        self.log_level = level.to_string();
        self
    }

    /// The credentials key (the default is `[9; 32]`).
    pub fn key(mut self, key: [u8; 32]) -> Options {
        self.key = key;
        self
    }

    /// Over `world`'s database and campaigns folder, with its key: a server for the posts
    /// a [`World`] planned, sent to its receiver.
    pub fn over(mut self, world: &World) -> Options {
        self.existing = Some((world.db_url.clone(), world.campaigns_dir()));
        self.key = super::WORLD_KEY;
        self.bundled = false;
        self
    }

    /// A picket installation for the real binary, not serving yet: run `picket account
    /// add` or `picket join` on it first, then [`Installation::serve`].
    pub fn install(self) -> Installation {
        assert!(
            self.clock.is_none(),
            "a child process runs on the system clock: Options::clock is for an app in process"
        );
        let port = if self.own_address { unused_port() } else { 0 };
        let config = self.settings_for(port);
        Installation::create(Parts {
            campaign_files: self.campaign_files(),
            existing: self.existing,
            config: config.to_string(),
            key: self.key,
            port,
            log_level: self.log_level,
        })
    }

    /// The bundled files (unless left out), then the ones given.
    fn campaign_files(&self) -> Vec<(String, String)> {
        let mut files = if self.bundled {
            bundled_files()
        } else {
            Vec::new()
        };
        files.extend(self.files.iter().cloned());
        files
    }

    /// The settings file, with the public URL naming `port` if it is the server's own.
    fn settings_for(&self, port: u16) -> toml::Table {
        let mut config = self.config.clone();
        if self.own_address {
            config.insert(
                "public_url".into(),
                format!("http://127.0.0.1:{port}").into(),
            );
        }
        config
    }
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(old)), toml::Value::Table(new)) => merge(old, new),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// picket for one test, stopped when dropped.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    pub addr: SocketAddr,
    /// A client that follows no redirects (tests look at them).
    pub http: reqwest::Client,
    /// The app's database (for a child process: another connection to the same file).
    pub store: Arc<dyn Store>,
    running: Running,
}

enum Running {
    InProcess {
        state: Box<picket::web::AppState>,
        _stop: DropGuard,
        _dir: tempfile::TempDir,
    },
    Process {
        install: Installation,
        served: Served,
    },
}

/// How a child process ended: its exit status and its log.
pub struct Stopped {
    pub status: ExitStatus,
    pub log: String,
}

impl TestApp {
    /// picket started with `options`, once it answers.
    pub async fn spawn(options: Options) -> TestApp {
        if options.process {
            return options.install().serve().await;
        }
        let dir = tempfile::tempdir().unwrap();
        let (database_url, campaigns_dir) = match &options.existing {
            Some(existing) => existing.clone(),
            None => (
                format!("sqlite://{}", dir.path().join("picket.db").display()),
                dir.path().join("campaigns"),
            ),
        };
        if options.existing.is_none() {
            std::fs::create_dir(&campaigns_dir).unwrap();
            for (name, text) in options.campaign_files() {
                std::fs::write(campaigns_dir.join(name), text).unwrap();
            }
        }
        let clock = options
            .clock
            .clone()
            .unwrap_or_else(|| Arc::new(SystemClock));
        // The public URL names the port before the listener is bound: a port no one gets
        // from the system meanwhile (and another if someone took it anyway).
        let mut tries = 0;
        let app = loop {
            let port = if options.own_address {
                unused_port()
            } else {
                0
            };
            let mut settings: Settings = toml::from_str(&options.settings_for(port).to_string())
                .unwrap_or_else(|e| panic!("test settings: {e}"));
            settings.database_url = database_url.clone();
            settings.campaigns_dir = campaigns_dir.clone();
            settings.bind = ([127, 0, 0, 1], port).into();
            settings.secret_key = Some(Secret::new(base64_key(&options.key)));
            match Application::build(settings, clock.clone()).await {
                Ok(app) => break app,
                Err(e) if options.own_address && tries < 3 => {
                    tries += 1;
                    eprintln!("port {port} was taken ({e:#}); trying another");
                }
                Err(e) => panic!("picket did not start: {e:#}"),
            }
        };
        let addr = app.local_addr();
        let state = app.state().clone();
        let stop = CancellationToken::new();
        tokio::spawn(app.run(stop.clone()));
        TestApp {
            base: format!("http://{addr}"),
            addr,
            http: client(),
            store: state.store.clone(),
            running: Running::InProcess {
                state: Box::new(state),
                _stop: stop.drop_guard(),
                _dir: dir,
            },
        }
    }

    pub(super) async fn over_process(
        install: Installation,
        served: Served,
        addr: SocketAddr,
    ) -> TestApp {
        TestApp {
            base: format!("http://{addr}"),
            addr,
            http: client(),
            store: install.store().await,
            running: Running::Process { install, served },
        }
    }

    /// The app's shared state (in process only): its sandbox receiver, its settings.
    pub fn state(&self) -> &picket::web::AppState {
        match &self.running {
            Running::InProcess { state, .. } => state,
            Running::Process { .. } => panic!("a child process's state is out of reach"),
        }
    }

    /// The built-in sandbox network, where sandbox accounts post (in process only).
    pub fn sandbox(&self) -> &picket::sandbox::Receiver {
        &self.state().sandbox
    }

    /// The installation a child process serves (its CLI, log, database files).
    pub fn installation(&self) -> &Installation {
        match &self.running {
            Running::Process { install, .. } => install,
            Running::InProcess { .. } => panic!("an app in process has no installation"),
        }
    }

    /// How the child process ended, if it has.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        match &mut self.running {
            Running::Process { served, .. } => served.child.try_wait().unwrap(),
            Running::InProcess { .. } => panic!("an app in process does not exit"),
        }
    }

    /// Stop the child process with SIGTERM, as a service manager would; its exit status
    /// and log. (Dropping a `TestApp` kills a child with SIGKILL.)
    pub fn stop(self) -> Stopped {
        match self.running {
            Running::Process {
                install,
                mut served,
            } => {
                let status = served.terminate();
                Stopped {
                    status,
                    log: install.log(),
                }
            }
            Running::InProcess { .. } => panic!("an app in process stops when dropped"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A new browser with no cookies.
    pub fn visitor(&self) -> Visitor {
        Visitor::new(&self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.unwrap()
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// The CSRF cookie (`name=value`) and form token a page at `path` hands a new visitor.
    pub async fn form_token(&self, path: &str) -> (String, String) {
        let page = self.get(path).await;
        let cookie = page.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let html = page.text().await.unwrap();
        let token = html
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .unwrap_or_else(|| panic!("no form token on {path}: {html}"))
            .split('"')
            .next()
            .unwrap()
            .to_string();
        (cookie, token)
    }

    /// Sign the bundled campaign through its page's form, with a fresh CSRF cookie and
    /// token and consent given, plus `fields`.
    pub async fn sign_form(&self, fields: &[(&str, &str)]) -> reqwest::Response {
        let (cookie, token) = self.form_token(&format!("/c/{BUNDLED}")).await;
        let mut form: Vec<(&str, &str)> = vec![("csrf", &token), ("consent", "on")];
        form.extend_from_slice(fields);
        self.http
            .post(self.url(&format!("/c/{BUNDLED}/sign")))
            .header(COOKIE, cookie)
            .form(&form)
            .send()
            .await
            .unwrap()
    }

    /// Sign the bundled campaign through the JSON API.
    pub async fn api_sign(&self, body: serde_json::Value) -> reqwest::Response {
        self.post_json(&format!("/api/v1/campaigns/{BUNDLED}/signatures"), &body)
            .await
    }

    /// `GET /api/v1/campaigns/{id}/stats`.
    pub async fn stats(&self, id: &str) -> serde_json::Value {
        self.get(&format!("/api/v1/campaigns/{id}/stats"))
            .await
            .json()
            .await
            .unwrap()
    }

    /// The signatures the stats API counts for campaign `id`.
    pub async fn signatures(&self, id: &str) -> u64 {
        self.stats(id).await["signatures"].as_u64().unwrap()
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn base64_key(key: &[u8; 32]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(key)
}
