//! Pacing: per-account and per-server posting budgets (token buckets, via `governor`),
//! so picket stays inside each network's published limits instead of learning them from
//! 429s. Budgets from NETWORKS.md: Mastodon 300 requests / 5 min per account, Bluesky
//! 1,666 creates / hour per account, X 300 posts / 3 h per account.
//!
//! The buckets read time from picket's [`Clock`], so rehearsals at `--speed 60` pace in
//! rehearsal time.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock as GovClock, Reference};
use governor::{Quota, RateLimiter};

use crate::clock::Clock;
use crate::domain::NetworkKind;

/// governor's view of picket's clock: time since the Unix epoch.
#[derive(Clone)]
struct ClockAdapter(Arc<dyn Clock>);

impl GovClock for ClockAdapter {
    type Instant = Duration;
    fn now(&self) -> Duration {
        let ms = self.0.now().timestamp_millis().max(0) as u64;
        Duration::from_millis(ms)
    }
}

type Keyed<K> = RateLimiter<
    K,
    governor::state::keyed::DashMapStateStore<K>,
    ClockAdapter,
    governor::middleware::NoOpMiddleware<Duration>,
>;

/// A budget: `burst` posts at once, refilled at `burst` per `period`.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub burst: u32,
    pub period: Duration,
}

impl Budget {
    fn quota(self) -> Option<Quota> {
        let burst = NonZeroU32::new(self.burst)?;
        let per_token = self.period / self.burst;
        Quota::with_period(per_token).map(|q| q.allow_burst(burst))
    }

    /// The budget one account may spend on `kind`.
    pub fn per_account(kind: NetworkKind) -> Option<Budget> {
        let b = |burst, secs| {
            Some(Budget {
                burst,
                period: Duration::from_secs(secs),
            })
        };
        match kind {
            NetworkKind::Mastodon => b(300, 5 * 60),
            NetworkKind::Bluesky => b(1666, 3600),
            NetworkKind::X => b(300, 3 * 3600),
            NetworkKind::Threads => b(250, 24 * 3600),
            NetworkKind::Misskey => b(300, 3600),
            NetworkKind::Nostr => b(60, 60),
            // Facebook Pages' Graph API is metered by usage, not a fixed count; LinkedIn's
            // daily quotas are per app in its portal. One post a minute stays far inside
            // both. Instagram, TikTok and YouTube are tap-to-post only: no requests.
            NetworkKind::Facebook | NetworkKind::LinkedIn => b(60, 3600),
            NetworkKind::Instagram | NetworkKind::TikTok | NetworkKind::YouTube => None,
            NetworkKind::Sandbox => None,
        }
    }
}

/// Decides whether a post may go now or must wait.
pub struct Pacer {
    accounts: Vec<(NetworkKind, Keyed<i64>)>,
    servers: Option<Keyed<String>>,
    clock: ClockAdapter,
}

impl Pacer {
    /// `per_server`: a budget shared by all accounts on one server (host), if any.
    pub fn new(clock: Arc<dyn Clock>, per_server: Option<Budget>) -> Pacer {
        Pacer::with_budgets(clock, Budget::per_account, per_server)
    }

    /// A pacer with other per-account budgets than posting's (engagement reads keep
    /// their own buckets, smaller than the network's limit).
    pub fn with_budgets(
        clock: Arc<dyn Clock>,
        per_account: fn(NetworkKind) -> Option<Budget>,
        per_server: Option<Budget>,
    ) -> Pacer {
        let clock = ClockAdapter(clock);
        let accounts = NetworkKind::ALL
            .into_iter()
            .filter_map(|k| {
                let quota = per_account(k)?.quota()?;
                Some((k, RateLimiter::dashmap_with_clock(quota, clock.clone())))
            })
            .collect();
        let servers = per_server
            .and_then(Budget::quota)
            .map(|q| RateLimiter::dashmap_with_clock(q, clock.clone()));
        Pacer {
            accounts,
            servers,
            clock,
        }
    }

    /// `Ok` to post now (the budget is spent), or how long to wait.
    pub fn check(&self, kind: NetworkKind, account: i64, server: &str) -> Result<(), Duration> {
        let now = self.clock.now();
        if let Some((_, limiter)) = self.accounts.iter().find(|(k, _)| *k == kind)
            && let Err(not_until) = limiter.check_key(&account)
        {
            return Err(not_until.earliest_possible().duration_since(now).into());
        }
        if let Some(limiter) = &self.servers
            && let Err(not_until) = limiter.check_key(&server.to_string())
        {
            return Err(not_until.earliest_possible().duration_since(now).into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn an_account_over_its_budget_waits_until_a_token_refills() {
        let clock = ManualClock::new(chrono::Utc::now());
        let pacer = Pacer::new(Arc::new(clock.clone()), None);
        for _ in 0..300 {
            assert!(pacer.check(NetworkKind::Mastodon, 1, "s").is_ok());
        }
        let wait = pacer.check(NetworkKind::Mastodon, 1, "s").unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another account has its own budget.
        assert!(pacer.check(NetworkKind::Mastodon, 2, "s").is_ok());
        clock.advance(chrono::Duration::seconds(1));
        assert!(pacer.check(NetworkKind::Mastodon, 1, "s").is_ok());
    }

    #[test]
    fn a_server_budget_is_shared_by_its_accounts() {
        let clock = ManualClock::new(chrono::Utc::now());
        let budget = Budget {
            burst: 2,
            period: Duration::from_secs(60),
        };
        let pacer = Pacer::new(Arc::new(clock), Some(budget));
        assert!(pacer.check(NetworkKind::Sandbox, 1, "a").is_ok());
        assert!(pacer.check(NetworkKind::Sandbox, 2, "a").is_ok());
        assert!(pacer.check(NetworkKind::Sandbox, 3, "a").is_err());
        assert!(pacer.check(NetworkKind::Sandbox, 3, "b").is_ok());
    }
}
