//! Startup as a type: [`Application::build`] opens the store, loads the campaigns,
//! compiles the pages and binds the listener; [`Application::run`] serves until the
//! cancellation token fires. `main` and the tests start picket the same way (tests bind
//! port 0 and read [`Application::port`]).
//!
//! ```text
//! Application
//! ├── web server (axum)          ─┐
//! └── scheduler (issue: outbox)   ├─ one CancellationToken; the first task to end
//!                                 ┘  (or Ctrl-C / SIGTERM) stops the others
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::campaign;
use crate::clock::Clock;
use crate::config::Settings;
use crate::render::pages::Pages;
use crate::store;
use crate::web::{self, AppState};

pub struct Application {
    listener: tokio::net::TcpListener,
    state: AppState,
}

impl Application {
    pub async fn build(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Application> {
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
        let pages =
            Pages::load(settings.templates_dir.as_deref()).context("loading page templates")?;
        let listener = tokio::net::TcpListener::bind(settings.bind)
            .await
            .with_context(|| format!("listening on {}", settings.bind))?;
        tracing::info!(
            address = %listener.local_addr()?,
            campaigns = campaigns.len(),
            "picket is ready"
        );
        let state = AppState {
            store,
            campaigns: Arc::new(campaigns),
            pages: Arc::new(pages),
            clock,
            settings: Arc::new(settings),
        };
        Ok(Application { listener, state })
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

    /// Serve until `shutdown` is cancelled; in-flight requests are finished first.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let router = web::router(self.state.clone());
        let stop = shutdown.clone();
        let served = axum::serve(
            self.listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
        // Whatever ended first, the other tasks must stop too.
        shutdown.cancel();
        served.context("web server")
    }
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

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_are_not_shown() {
        let shown = super::redact_url("postgres://picket:s3cret@db.example/picket");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
