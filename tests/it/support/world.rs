//! A temporary picket world built through the library, as the application does, without
//! its web server: database, vault, campaign file, and a sandbox receiver on its own port
//! whose faults the test chooses. For the scheduler's guarantees (delivery, crashes).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use picket::campaign::{self, Campaign};
use picket::clock::Clock;
use picket::config::SchedulerSettings;
use picket::crypto::Vault;
use picket::domain::NetworkKind;
use picket::network::Networks;
use picket::sandbox::{Faults, Receiver};
use picket::scheduler::retry::RetryPolicy;
use picket::scheduler::{Dispatcher, planner};
use picket::store::{
    self, AccountId, NewAccount, NewPledge, ParticipantId, PledgeId, StoreTooling,
};
use tokio_util::sync::CancellationToken;

use super::eventually;

/// The key a world seals its accounts' tokens with (a `picket serve` over the world's
/// database needs it too).
pub const WORLD_KEY: [u8; 32] = [42; 32];

/// A picket world for one test; its receiver stops when it is dropped.
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
        World::on(None, campaign_toml, clock).await
    }

    /// [`World::new`] on the database `db_url` names (a fresh PostgreSQL one), or on a
    /// fresh SQLite file without it.
    pub async fn on(db_url: Option<&str>, campaign_toml: &str, clock: Arc<dyn Clock>) -> World {
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
        let db_url = db_url
            .map(str::to_string)
            .unwrap_or_else(|| format!("sqlite://{}", dir.path().join("picket.db").display()));
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
            vault: Vault::from_key_bytes(&WORLD_KEY),
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
                    tz: "UTC".parse().unwrap(),
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
                        handle: format!("{name}-{i}").parse().unwrap(),
                        server: Some(self.receiver_url.clone()),
                        trusted: true,
                        route: picket::store::AccountRoute::Api,
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
                    tz: "UTC".parse().unwrap(),
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

    /// Run `dispatcher` until every post is final; fails if that takes longer than `limit`.
    pub async fn dispatch_until_done(&self, dispatcher: Dispatcher, limit: Duration) {
        let dispatcher = Arc::new(dispatcher);
        let stop = CancellationToken::new();
        let task = {
            let d = dispatcher.clone();
            let stop = stop.clone();
            tokio::spawn(async move { d.run(stop).await })
        };
        eventually(limit, "every post in a final state", async || {
            match self.unfinished().await {
                0 => Ok(()),
                n => Err(format!("{n} not final")),
            }
        })
        .await;
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
        retry_cap_secs: 5,
        census_every_secs: 300,
        engagement_first_secs: 3600,
        engagement_again_secs: 24 * 3600,
        engagement_every_secs: 60,
    }
}
