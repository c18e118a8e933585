//! Startup as a type: [`Application::build`] opens the store, loads the campaigns,
//! compiles the pages and binds the listener; [`Application::run`] serves until the
//! cancellation token fires. `main` and the tests start picket the same way (tests bind
//! port 0 and read [`Application::port`]).
//!
//! ```text
//! Application::run                       one CancellationToken reaches every task; the
//! ├── web server  (web::serve: axum,      first task to end (or Ctrl-C / SIGTERM) stops
//! │                timeouts, conn. cap)   the others, and `supervise` says which and why
//! ├── rate-limit pruning (every minute)
//! ├── dispatcher  (claims due posts, publishes, records)
//! ├── verifier    (checks accounts before a strike)
//! ├── census      (reads the hashtag's public posts from the campaigns' [census] sources)
//! ├── engagement  (reads published posts' likes, reposts, replies and followers, twice)
//! ├── reminders   (one mail (with [smtp]) and pushes per slot of tap-to-post notices)
//! ├── webhooks    (events found in committed rows, enqueued once per hook, delivered)
//! ├── peers       (each [[peers]] checkpoint read and judged, every federation_refresh_secs)
//! ├── broadcast   (the campaign's announcements on its own Matrix/Telegram/Discord channels)
//! └── planner     (re-plans every campaign now and then; lease released on shutdown)
//!
//! run_worker (`picket worker`, several on PostgreSQL)
//! ├── dispatcher
//! ├── census, engagement (each under its lease: one process at a time)
//! ├── webhooks
//! └── broadcast   (rows claimed under a lease: safe beside serve and other workers)
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::campaign::{self, Campaign};
use crate::clock::Clock;
use crate::config::Settings;
use crate::crypto::{self, Vault};
use crate::federation::{self, HostKey};
use crate::network::push::{self, VapidKey};
use crate::network::{Egress, Networks};
use crate::render::pages::Pages;
use crate::sandbox::Receiver;
use crate::scheduler::{Dispatcher, census, planner, verify};
use crate::store::{self, Store};
use crate::web::{self, AppState};

/// How often clients whose write budget is full again are forgotten.
const LIMITER_PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

pub struct Application {
    listener: tokio::net::TcpListener,
    state: AppState,
    dispatcher: Arc<Dispatcher>,
    networks: Networks,
    vault: Vault,
}

/// The parts every long-running picket process needs.
pub struct Core {
    pub settings: Settings,
    pub campaigns: Vec<Campaign>,
    pub store: Arc<dyn Store>,
    pub vault: Vault,
    pub clock: Arc<dyn Clock>,
    /// The HTTP/WebSocket clients, guarded by `allow_private_addresses`.
    pub egress: Egress,
    /// The host's Web Push (VAPID) key.
    pub vapid: Arc<VapidKey>,
    /// The host's key that signs its checkpoints (`federation`).
    pub host_key: Arc<HostKey>,
}

impl Core {
    pub async fn open(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Core> {
        let campaigns = campaign::load_dir(&settings.campaigns_dir).map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            anyhow::anyhow!(
                "the campaigns in {} have problems (fix them, then start again):\n{}",
                settings.campaigns_dir.display(),
                lines.join("\n")
            )
        })?;
        let store = store::open(&settings.database_url).await.with_context(|| {
            format!(
                "opening the database {}",
                redact_url(&settings.database_url)
            )
        })?;
        let vault = Vault::open(
            settings.secret_key.as_ref(),
            &crypto::key_file_for(&settings.database_url),
        )
        .context("opening the credentials key")?;
        crate::participation::reseal_legacy_credentials(store.as_ref(), &vault, clock.now()).await;
        let vapid = VapidKey::open(
            settings.vapid_key.as_ref(),
            &push::key_file_for(&settings.database_url),
        )
        .context("opening the Web Push (VAPID) key")?;
        let host_key = HostKey::open(
            settings.host_key.as_ref(),
            &federation::key_file_for(&settings.database_url),
        )
        .context("opening the host key")?;
        Ok(Core {
            host_key: Arc::new(host_key),
            vapid: Arc::new(vapid),
            egress: Egress::new(settings.allow_private_addresses),
            settings,
            campaigns,
            store,
            vault,
            clock,
        })
    }

    /// Where adapters save refreshed tokens: sealed, in the store.
    pub fn credential_sink(&self) -> Arc<dyn crate::network::CredentialSink> {
        Arc::new(StoreCredentials {
            store: self.store.clone(),
            vault: self.vault.clone(),
            clock: self.clock.clone(),
        })
    }

    /// Every adapter, sharing this process's clients.
    pub fn networks(&self) -> Networks {
        Networks::standard(
            self.credential_sink(),
            &self.egress,
            &self.settings.public_url,
            self.clock.clone(),
        )
        .with_official_apis(
            &self.settings,
            self.credential_sink(),
            &self.egress,
            self.clock.clone(),
        )
    }

    pub fn dispatcher(&self, networks: Networks) -> anyhow::Result<Dispatcher> {
        Ok(Dispatcher::new(
            self.store.clone(),
            networks,
            self.vault.clone(),
            self.clock.clone(),
            &self.campaigns,
            self.settings.scheduler.clone(),
            self.settings.public_url.clone(),
        )?)
    }
}

/// The planner until `stop` (see [`planner::run`]).
async fn plan_forever(
    state: AppState,
    wake: Arc<tokio::sync::Notify>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let spread = chrono::Duration::seconds(state.settings.scheduler.jitter_secs as i64);
    planner::run(
        state.store.as_ref(),
        &state.campaigns,
        state.clock.as_ref(),
        spread,
        &wake,
        stop,
    )
    .await
}

impl Application {
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Application> {
        let core = Core::open(settings, clock).await?;
        let networks = core.networks();
        Self::from_core(core, networks).await
    }

    /// Like [`Application::build`] with the network adapters given (tests point them at
    /// local servers).
    pub async fn build_with(
        settings: Settings,
        clock: Arc<dyn Clock>,
        networks: Networks,
    ) -> anyhow::Result<Application> {
        Self::from_core(Core::open(settings, clock).await?, networks).await
    }

    async fn from_core(core: Core, networks: Networks) -> anyhow::Result<Application> {
        let dispatcher = Arc::new(core.dispatcher(networks.clone())?);
        let Core {
            settings,
            campaigns,
            store,
            clock,
            vault,
            egress,
            vapid,
            host_key,
        } = core;
        let pages = Pages::load(settings.templates_dir.as_deref())
            .and_then(|p| {
                p.with_site(&serde_json::json!({
                    "sandbox": settings.sandbox,
                    "threads": settings.threads.is_some(),
                "linkedin": settings.linkedin.is_some(),
                "facebook": settings.facebook.is_some(),
                }))
            })
            .context("loading page templates")?;
        let mailer = crate::mail::from_settings(settings.smtp.as_ref())
            .context("setting up outgoing mail ([smtp])")?
            .map(|inner| -> Arc<dyn crate::mail::Mailer> {
                Arc::new(crate::mail::Budgeted {
                    inner,
                    store: store.clone(),
                    clock: clock.clone(),
                    per_hour: settings.sessions.mails_per_address_per_hour,
                })
            });
        let listener = tokio::net::TcpListener::bind(settings.bind)
            .await
            .with_context(|| format!("listening on {}", settings.bind))?;
        tracing::info!(
            address = %listener.local_addr()?,
            campaigns = campaigns.len(),
            "picket is ready"
        );
        let state = AppState::new(crate::web::Shared {
            sandbox: Receiver::guarded(
                clock.clone(),
                crate::sandbox::Issuer::new(vault.clone()),
                settings.sandbox_max_bytes,
            ),
            // Signing: 10 a minute per address, bursts of 5 (a family behind one router).
            limits: crate::web::guard::Limits::new(settings.rate_limits, 10, 5),
            sign_in: Default::default(),
            mailer,
            store,
            campaigns: Arc::new(campaigns),
            pages: Arc::new(pages),
            clock,
            settings: Arc::new(settings),
            vault: vault.clone(),
            networks: networks.clone(),
            egress,
            vapid,
            host_key,
            wake: dispatcher.waker(),
            oauth: Default::default(),
            counts: Default::default(),
            cards: dispatcher.cards(),
            lateness: dispatcher.lateness(),
        });
        Ok(Application {
            listener,
            state,
            dispatcher,
            networks,
            vault,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serve and dispatch until `shutdown` is cancelled; in-flight requests and sends are
    /// finished first.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let router = web::router(self.state.clone());
        let state = self.state.clone();
        let mut tasks = tokio::task::JoinSet::new();
        let stop = shutdown.clone();
        let listener = self.listener;
        let limits = web::serve::ConnectionLimits::from_settings(
            &state.settings.http,
            &state.settings.trusted_proxies,
        );
        tasks.spawn(async move {
            let served = web::serve::serve(listener, router, limits, stop).await;
            ("web server", served.map_err(anyhow::Error::from))
        });
        let (limits, stop) = (self.state.limits.clone(), shutdown.clone());
        tasks.spawn(async move {
            limits.prune_every(LIMITER_PRUNE_EVERY, stop).await;
            ("rate-limit pruning", Ok(()))
        });
        let stop = shutdown.clone();
        let dispatcher = self.dispatcher.clone();
        tasks.spawn(async move { ("dispatcher", dispatcher.run(stop).await) });
        let (verifier_state, stop) = (self.state.clone(), shutdown.clone());
        let (networks, vault) = (self.networks, self.vault);
        tasks.spawn(async move {
            (
                "verifier",
                verify_forever(verifier_state, networks, vault, stop).await,
            )
        });
        let (census_state, stop) = (self.state.clone(), shutdown.clone());
        tasks.spawn(async move { ("census", census_forever(census_state, stop).await) });
        let (engagement_state, stop) = (self.state.clone(), shutdown.clone());
        tasks.spawn(async move {
            let every = engagement_state.settings.scheduler.engagement_every_secs;
            let task = crate::scheduler::engagement::EngagementTask::new(
                engagement_state.networks.clone(),
                engagement_state.vault.clone(),
                crate::scheduler::engagement::Timing::from_settings(
                    &engagement_state.settings.scheduler,
                ),
                engagement_state.clock.clone(),
            );
            let store = engagement_state.store.as_ref();
            let clock = engagement_state.clock.as_ref();
            let every = std::time::Duration::from_secs(every.max(1));
            ("engagement", task.run(store, clock, every, stop).await)
        });
        let subject = state
            .settings
            .vapid_subject
            .clone()
            .unwrap_or_else(|| state.settings.public_url.clone());
        if !(subject.starts_with("mailto:") || subject.starts_with("https://")) {
            // RFC 8292: push services may refuse a push whose contact is neither.
            tracing::warn!(
                subject = subject.as_str(),
                "vapid_subject should be a mailto: or https:// address: some push services refuse Web Push reminders without one"
            );
        }
        let reminder = crate::scheduler::remind::Reminder {
            store: state.store.clone(),
            mailer: state.mailer.clone(),
            pusher: push::Pusher::new(
                state.egress.guarded().clone(),
                state.vapid.clone(),
                subject,
                state.clock.clone(),
            ),
            vault: state.vault.clone(),
            pages: state.pages.clone(),
            clock: state.clock.clone(),
            campaigns: state.campaigns.clone(),
            public_url: state.settings.public_url.clone(),
            grace: chrono::Duration::seconds(state.settings.scheduler.grace_secs as i64),
        };
        let stop = shutdown.clone();
        tasks.spawn(async move { ("reminders", reminder.run(stop).await) });
        let webhooks = crate::scheduler::webhooks::WebhookSender::from_state(&state);
        let stop = shutdown.clone();
        tasks.spawn(async move { ("webhooks", webhooks.run(stop).await) });
        let peers = crate::scheduler::federation::FederationTask {
            // Peers are typed by the operator, yet they answer with what they like: the
            // guarded client (`allow_private_addresses` for loopback peers in tests).
            http: state.egress.guarded().clone(),
            store: state.store.clone(),
            clock: state.clock.clone(),
            campaigns: state.campaigns.clone(),
            peers: state.settings.peers.clone(),
            every: std::time::Duration::from_secs(state.settings.federation_refresh_secs.max(1)),
            host_key: Some(state.host_key.clone()),
            public_url: state.settings.public_url.clone(),
            distinct_key: state.settings.distinct_signers_key.clone(),
        };
        let stop = shutdown.clone();
        tasks.spawn(async move { ("peers", peers.run(stop).await) });
        let broadcaster = crate::scheduler::broadcast::Broadcaster::from_state(&state);
        let stop = shutdown.clone();
        tasks.spawn(async move { ("broadcast", broadcaster.run(stop).await) });
        let stop = shutdown.clone();
        let wake = self.dispatcher.waker();
        tasks.spawn(async move { ("planner", plan_forever(state, wake, stop).await) });
        supervise(tasks, shutdown).await
    }
}

/// Wait for the tasks; the first to end (for whatever reason) stops the others.
async fn supervise(
    mut tasks: tokio::task::JoinSet<(&'static str, anyhow::Result<()>)>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let (name, result) = joined.unwrap_or(("a task", Err(anyhow::anyhow!("panicked"))));
        if !shutdown.is_cancelled() {
            match &result {
                Ok(()) => tracing::warn!(task = name, "ended; stopping the others"),
                Err(e) => {
                    tracing::error!(task = name, error = %format!("{e:#}"), "failed; stopping the others")
                }
            }
            shutdown.cancel();
        }
        if let Err(e) = result {
            first_error.get_or_insert(e.context(name));
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The pre-strike account checks until `stop` (see [`verify::run`]).
async fn verify_forever(
    state: AppState,
    networks: Networks,
    vault: Vault,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    verify::run(
        state.store.as_ref(),
        &networks,
        &vault,
        &state.campaigns,
        state.clock.as_ref(),
        stop,
    )
    .await
}

/// The hashtag census until `stop` (see [`census::CensusTask::run`]). Campaign files are
/// the operator's, so their census addresses go through the trusted client.
async fn census_forever(state: AppState, stop: CancellationToken) -> anyhow::Result<()> {
    let every = std::time::Duration::from_secs(state.settings.scheduler.census_every_secs.max(1));
    census::CensusTask::new(state.egress.trusted().clone(), state.vault.clone())
        .run(
            state.store.as_ref(),
            &state.campaigns,
            state.clock.as_ref(),
            every,
            stop,
        )
        .await
}

/// `picket worker`: the dispatcher, for more workers on a shared database, and the tasks
/// that are safe in any number of processes: the census and the engagement reads (each
/// under its lease: one process at a time) and the webhooks (events enqueued once,
/// delivered under per-event leases).
pub async fn run_worker(settings: Settings) -> anyhow::Result<()> {
    let core = Core::open(settings, Arc::new(crate::clock::SystemClock)).await?;
    let dispatcher = Arc::new(core.dispatcher(core.networks())?);
    let shutdown = CancellationToken::new();
    cancel_on_signals(shutdown.clone());
    let mut tasks = tokio::task::JoinSet::new();
    let stop = shutdown.clone();
    tasks.spawn(async move { ("dispatcher", dispatcher.run(stop).await) });
    let s = &core.settings.scheduler;
    let secs = |n: u64| std::time::Duration::from_secs(n.max(1));
    let (census_every, engagement_every) =
        (secs(s.census_every_secs), secs(s.engagement_every_secs));
    let census = census::CensusTask::new(core.egress.trusted().clone(), core.vault.clone());
    let engagement = crate::scheduler::engagement::EngagementTask::new(
        core.networks(),
        core.vault.clone(),
        crate::scheduler::engagement::Timing::from_settings(s),
        core.clock.clone(),
    );
    let campaigns = Arc::new(core.campaigns.clone());
    let campaigns_for_broadcast = campaigns.clone();
    let webhooks = crate::scheduler::webhooks::WebhookSender::new(
        core.store.clone(),
        core.egress.trusted().clone(),
        &core.settings.webhooks,
        core.clock.clone(),
        campaigns.clone(),
    );
    let (store, clock, stop) = (core.store.clone(), core.clock.clone(), shutdown.clone());
    tasks.spawn(async move {
        let run = census.run(
            store.as_ref(),
            &campaigns,
            clock.as_ref(),
            census_every,
            stop,
        );
        ("census", run.await)
    });
    let (store, clock, stop) = (core.store.clone(), core.clock.clone(), shutdown.clone());
    tasks.spawn(async move {
        let run = engagement.run(store.as_ref(), clock.as_ref(), engagement_every, stop);
        ("engagement", run.await)
    });
    let stop = shutdown.clone();
    tasks.spawn(async move { ("webhooks", webhooks.run(stop).await) });
    // Announcements are enqueued once (a unique row per channel, announcement and instant)
    // and claimed under a lease, so a worker may send them beside `serve` and the others:
    // a worker left running alone still announces the strike.
    let broadcaster = crate::scheduler::broadcast::Broadcaster::new(
        core.store.clone(),
        core.egress.trusted().clone(),
        core.clock.clone(),
        campaigns_for_broadcast,
        Arc::new(core.settings.clone()),
    );
    let stop = shutdown.clone();
    tasks.spawn(async move { ("broadcast", broadcaster.run(stop).await) });
    supervise(tasks, shutdown).await
}

/// Cancel `token` on Ctrl-C or SIGTERM (the signal `kill` and service managers send).
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
            _ = term => tracing::info!("SIGTERM: shutting down"),
        }
        token.cancel();
    });
}

/// A database URL fit for logs and errors: the password, if any, replaced.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Saves refreshed credentials sealed, for the network adapters.
pub struct StoreCredentials {
    pub store: Arc<dyn Store>,
    pub vault: Vault,
    pub clock: Arc<dyn Clock>,
}

#[async_trait::async_trait]
impl crate::network::CredentialSink for StoreCredentials {
    async fn save(
        &self,
        account_id: i64,
        credentials: &crate::domain::Secret,
    ) -> Result<(), crate::network::NotSaved> {
        let sealed = self
            .vault
            .seal_for(account_id, credentials.expose().as_bytes());
        self.store
            .update_credentials(
                crate::store::AccountId(account_id),
                &sealed,
                self.clock.now(),
            )
            .await
            .map_err(|e| crate::network::NotSaved(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_are_not_shown() {
        let shown = super::redact_url("postgres://picket:s3cret@db.example/picket");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
