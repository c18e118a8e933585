//! The engagement task: likes, reposts and replies of published notices, read some time
//! after posting (`[scheduler] engagement_first_secs`, 1 h) and once more later
//! (`engagement_again_secs`, 24 h after posting), with the account's followers at the
//! first read that can get them ("followers at posting time"). It only reads: it never
//! sends a post.
//!
//! ```text
//! run (every engagement_every_secs, under the "engagement" lease)
//!  └── round: follow newly published posts ─> due rows ─> read each (isolated, paced)
//!                                                         └── record: counts | reason
//! ```
//!
//! Each row is read on its own ([`super::isolate_async`]): a failing read, an unreadable
//! account or a panic is recorded against that row as a reason and the round goes on. A
//! read that fails for a passing reason is tried again with a growing pause, at most
//! [`MAX_ATTEMPTS`] times; one the network refuses for good (a deleted post, a revoked
//! token) is not tried again. Reads spend their own budget per account and per server
//! ([`read_budget`]), far inside each network's limits, so they never crowd out posting.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::clock::Clock;
use crate::crypto::Vault;
use crate::domain::NetworkKind;
use crate::network::{Engagement, Networks, PublishError};
use crate::store::{AccountStatus, EngagementDue, EngagementRecord, Store, StoreError};

use super::pacing::{Budget, Pacer};

/// The name of the lease that lets one process at a time read.
const LEASE: &str = "engagement";

/// Tries of one read that fails for a passing reason before it is given up.
pub const MAX_ATTEMPTS: u32 = 4;

/// The pause after the first failed try; each further one is four times longer.
const FIRST_PAUSE: chrono::Duration = chrono::Duration::minutes(5);

/// Reads in one round; the rest wait for the next.
const BATCH: u32 = 200;

/// Reads under way at once.
const CONCURRENCY: usize = 8;

/// The longest one read (counts and followers) may take.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Reads of a post are made this many times: one after `first`, one after `again`.
pub const READS: u32 = 2;

/// When the reads happen, from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// After publication, the first read.
    pub first: chrono::Duration,
    /// After publication, the second read.
    pub again: chrono::Duration,
}

impl Timing {
    pub fn from_settings(s: &crate::config::SchedulerSettings) -> Timing {
        let secs = |n: u64| chrono::Duration::seconds(i64::try_from(n).unwrap_or(i64::MAX / 2));
        let first = secs(s.engagement_first_secs);
        Timing {
            first,
            again: secs(s.engagement_again_secs).max(first),
        }
    }
}

/// The budget of engagement reads for one account: a tenth of its posting budget where
/// the network meters requests per account (Mastodon 300 requests / 5 min), so posting
/// always has the rest.
pub fn read_budget(kind: NetworkKind) -> Option<Budget> {
    let b = |burst, secs| {
        Some(Budget {
            burst,
            period: Duration::from_secs(secs),
        })
    };
    match kind {
        NetworkKind::Mastodon => b(30, 5 * 60),
        // AppView reads: 3,000 requests / 5 min per address; a PDS proxies them.
        NetworkKind::Bluesky => b(100, 5 * 60),
        NetworkKind::Nostr => b(6, 60),
        _ => None,
    }
}

/// Reads of all accounts on one server (host, relay list) per minute.
const PER_SERVER: Budget = Budget {
    burst: 60,
    period: Duration::from_secs(60),
};

/// What one read found.
#[derive(Debug, Clone, PartialEq)]
pub enum Read {
    /// The counts, and the followers when they were asked for and the network has them.
    Counts {
        counts: Engagement,
        followers: Option<u64>,
    },
    /// The network no longer has the post (deleted).
    Gone,
    /// A passing failure: try again later (at `after` if the network said).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Refused for good (revoked token, unreadable credentials, a bug): not tried again.
    Failed(String),
}

impl Read {
    fn of_error(e: &PublishError) -> Read {
        match e {
            PublishError::Retry { reason, after, .. } => Read::Retry {
                reason: reason.summary().to_string(),
                after: *after,
            },
            PublishError::Rejected(r) | PublishError::Reconnect(r) => {
                Read::Failed(r.summary().to_string())
            }
        }
    }
}

/// What a read leaves in the post's row: counts replace the earlier ones, the next read
/// comes at `again` (counted from the first read's `first`), a passing failure waits
/// 5, 20, 80 minutes and then gives up, a lasting one ends the reading.
pub fn after_read(
    due: &EngagementDue,
    read: Read,
    timing: Timing,
    now: DateTime<Utc>,
) -> EngagementRecord {
    let mut r = EngagementRecord {
        reads: due.reads,
        attempts: due.attempts,
        ..EngagementRecord::default()
    };
    match read {
        Read::Counts { counts, followers } => {
            r.counts = Some(counts);
            r.followers = followers;
            r.reads = due.reads + 1;
            r.attempts = 0;
            r.next_read_at = (r.reads < READS).then(|| now + (timing.again - timing.first));
        }
        Read::Gone => r.error = Some("the post is no longer on the network (deleted)".into()),
        Read::Failed(reason) => r.error = Some(reason),
        Read::Retry { reason, after } => {
            r.attempts = due.attempts + 1;
            r.error = Some(reason);
            if r.attempts < MAX_ATTEMPTS {
                let pause = FIRST_PAUSE * 4i32.pow(due.attempts.min(6));
                let said = after
                    .and_then(|a| chrono::Duration::from_std(a).ok())
                    .unwrap_or_default();
                r.next_read_at = Some(now + pause.max(said));
            }
        }
    }
    r
}

/// What one round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Published posts followed for the first time.
    pub followed: u64,
    /// Reads that found counts.
    pub read: usize,
    /// Reads that failed (recorded with a reason).
    pub failed: usize,
    /// Reads left for later: their budget was spent.
    pub paced: usize,
}

/// Engagement reads of every campaign's published posts.
pub struct EngagementTask {
    pub networks: Networks,
    pub vault: Vault,
    pub timing: Timing,
    pacer: Pacer,
}

impl EngagementTask {
    pub fn new(networks: Networks, vault: Vault, timing: Timing, clock: Arc<dyn Clock>) -> Self {
        EngagementTask {
            networks,
            vault,
            timing,
            pacer: Pacer::with_budgets(clock, read_budget, Some(PER_SERVER)),
        }
    }

    /// Follow what was published since the last round and read every post due now.
    pub async fn round(&self, store: &dyn Store, clock: &dyn Clock) -> Result<Round, StoreError> {
        let now = clock.now();
        // Posts published before the second read's time (plus a day) are still worth a
        // first read; older ones (an upgrade, a long stop) are left alone.
        let since = now - self.timing.again - chrono::Duration::days(1);
        let mut round = Round {
            followed: store.follow_published(since, self.timing.first).await?,
            ..Round::default()
        };
        let due = store.engagement_due(now, BATCH).await?;
        let outcomes: Vec<Option<bool>> = futures::stream::iter(due)
            .map(|d| self.read_one(store, clock, d))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for o in outcomes {
            match o {
                Some(true) => round.read += 1,
                Some(false) => round.failed += 1,
                None => round.paced += 1,
            }
        }
        Ok(round)
    }

    /// Read one post and record the outcome: `Some(true)` counts, `Some(false)` a
    /// reason, `None` left for later.
    async fn read_one(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        due: EngagementDue,
    ) -> Option<bool> {
        let read = match super::isolate_async(tokio::time::timeout(
            READ_TIMEOUT,
            self.read(store, &due, clock.now()),
        ))
        .await
        {
            Ok(Ok(Some(read))) => read,
            Ok(Ok(None)) => return None,
            Ok(Err(_)) => Read::Retry {
                reason: "the read timed out".into(),
                after: None,
            },
            Err(panic) => Read::Failed(panic.into_message()),
        };
        let ok = matches!(read, Read::Counts { .. });
        if !ok {
            tracing::warn!(post = due.outbox_id, network = due.network.as_str(), outcome = ?read, "engagement: a post could not be read");
        }
        let now = clock.now();
        let record = after_read(&due, read, self.timing, now);
        if let Err(e) = store.record_engagement(due.outbox_id, &record, now).await {
            tracing::error!(post = due.outbox_id, error = %e, "engagement: could not record a read");
        }
        Some(ok)
    }

    /// The read itself; `Ok(None)` when the budget is spent (the row is postponed).
    async fn read(
        &self,
        store: &dyn Store,
        due: &EngagementDue,
        now: DateTime<Utc>,
    ) -> Option<Read> {
        let account = match store.get_account(due.account_id).await {
            Ok(Some(a)) => a,
            Ok(None) => return Some(Read::Failed("the account was removed".into())),
            Err(e) => {
                tracing::error!(post = due.outbox_id, error = %e, "engagement: could not read the account");
                return Some(Read::Retry {
                    reason: "the database could not be read".into(),
                    after: None,
                });
            }
        };
        if account.status != AccountStatus::Active {
            return Some(Read::Failed(
                "the account needs reconnecting or was removed".into(),
            ));
        }
        let Some(network) = self.networks.get(account.network) else {
            return Some(Read::Failed(format!(
                "this host does not read {}",
                account.network.label()
            )));
        };
        let server = account.server.clone().unwrap_or_default();
        if let Err(wait) = self.pacer.check(account.network, account.id.0, &server) {
            let until = now + chrono::Duration::from_std(wait).unwrap_or_default();
            if let Err(e) = store.postpone_engagement(due.outbox_id, until).await {
                tracing::error!(post = due.outbox_id, error = %e, "engagement: could not postpone a read");
            }
            return None;
        }
        let account = match super::verify::account_ref(&self.vault, &account) {
            Ok(a) => a,
            Err(_) => {
                return Some(Read::Failed(
                    "the account's stored credentials could not be opened".into(),
                ));
            }
        };
        let counts = match network.engagement(&account, &due.remote_id).await {
            Ok(Some(c)) => c,
            Ok(None) => return Some(Read::Gone),
            Err(e) => return Some(Read::of_error(&e)),
        };
        let followers = if due.has_followers {
            None
        } else {
            // A follower count that cannot be read now is asked for again next read.
            match network.followers(&account).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::info!(account = account.id, error = %e, "engagement: followers not read");
                    None
                }
            }
        };
        Some(Read::Counts { counts, followers })
    }

    /// A round now, then every `every`, until `stop`, while this process holds the
    /// engagement lease. A round that fails (the database) is logged and the next one
    /// comes as usual.
    pub async fn run(
        self,
        store: &dyn Store,
        clock: &dyn Clock,
        every: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<()> {
        let me = format!(
            "engagement-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let lease = chrono::Duration::from_std(every * 2 + READ_TIMEOUT * 4)
            .unwrap_or(chrono::Duration::minutes(20));
        while !stop.is_cancelled() {
            let now = clock.now();
            match store.try_lease(LEASE, &me, now, now + lease).await {
                Ok(true) => match self.round(store, clock).await {
                    Ok(r) if r != Round::default() => tracing::info!(
                        followed = r.followed,
                        read = r.read,
                        failed = r.failed,
                        paced = r.paced,
                        "engagement round"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(error = %e, "engagement round failed; trying again next round")
                    }
                },
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "could not take the engagement lease"),
            }
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
        if let Err(e) = store.release_lease(LEASE, &me).await {
            tracing::warn!(error = %e, "could not release the engagement lease; it runs out by itself");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::AccountId;

    fn due(reads: u32, attempts: u32) -> EngagementDue {
        EngagementDue {
            outbox_id: 1,
            account_id: AccountId(1),
            network: NetworkKind::Mastodon,
            remote_id: "9".into(),
            reads,
            attempts,
            has_followers: reads > 0,
        }
    }

    fn timing() -> Timing {
        Timing {
            first: chrono::Duration::hours(1),
            again: chrono::Duration::hours(24),
        }
    }

    fn now() -> DateTime<Utc> {
        "2027-07-04T13:00:00Z".parse().unwrap()
    }

    fn counts(likes: u64) -> Read {
        Read::Counts {
            counts: Engagement {
                likes,
                reposts: 1,
                replies: 0,
            },
            followers: Some(40),
        }
    }

    #[test]
    fn the_first_read_schedules_the_second_at_the_later_delay_and_the_second_ends_reading() {
        let first = after_read(&due(0, 0), counts(2), timing(), now());
        assert_eq!(first.reads, 1);
        assert_eq!(first.followers, Some(40));
        assert_eq!(first.counts.map(|c| c.likes), Some(2));
        assert_eq!(
            first.next_read_at,
            Some(now() + chrono::Duration::hours(23))
        );
        assert_eq!(first.error, None);

        let second = after_read(&due(1, 0), counts(5), timing(), now());
        assert_eq!(second.reads, 2);
        assert_eq!(second.next_read_at, None, "two reads, then no more");
    }

    #[test]
    fn a_passing_failure_waits_longer_each_time_and_is_given_up_after_the_last_try() {
        let retry = || Read::Retry {
            reason: "could not connect to the server".into(),
            after: None,
        };
        let r1 = after_read(&due(0, 0), retry(), timing(), now());
        assert_eq!(r1.attempts, 1);
        assert_eq!(r1.next_read_at, Some(now() + chrono::Duration::minutes(5)));
        assert_eq!(r1.error.as_deref(), Some("could not connect to the server"));
        assert_eq!(r1.counts, None, "earlier counts are kept, not overwritten");
        let r2 = after_read(&due(0, 1), retry(), timing(), now());
        assert_eq!(r2.next_read_at, Some(now() + chrono::Duration::minutes(20)));
        let last = after_read(&due(0, MAX_ATTEMPTS - 1), retry(), timing(), now());
        assert_eq!(last.attempts, MAX_ATTEMPTS);
        assert_eq!(last.next_read_at, None, "not retried forever");
    }

    #[test]
    fn a_rate_limit_reset_later_than_the_pause_is_waited_for() {
        let r = after_read(
            &due(0, 0),
            Read::Retry {
                reason: "rate limited".into(),
                after: Some(Duration::from_secs(3600)),
            },
            timing(),
            now(),
        );
        assert_eq!(r.next_read_at, Some(now() + chrono::Duration::hours(1)));
    }

    #[test]
    fn a_deleted_post_or_a_revoked_token_ends_reading_with_its_reason() {
        let gone = after_read(&due(1, 0), Read::Gone, timing(), now());
        assert_eq!(gone.next_read_at, None);
        assert!(gone.error.unwrap().contains("deleted"));
        assert_eq!(gone.reads, 1, "the first read's counts stay");
        let revoked = after_read(
            &due(0, 0),
            Read::Failed("the server refused the token (HTTP 401)".into()),
            timing(),
            now(),
        );
        assert_eq!(revoked.next_read_at, None);
        assert_eq!(
            revoked.error.as_deref(),
            Some("the server refused the token (HTTP 401)")
        );
    }

    #[test]
    fn reads_get_a_tenth_of_a_mastodon_accounts_budget_and_none_where_nothing_is_read() {
        let m = read_budget(NetworkKind::Mastodon).unwrap();
        assert_eq!((m.burst, m.period), (30, Duration::from_secs(300)));
        assert!(read_budget(NetworkKind::Sandbox).is_none());
        assert!(read_budget(NetworkKind::X).is_none());
    }

    #[test]
    fn the_later_read_is_never_before_the_first() {
        let s = crate::config::SchedulerSettings {
            engagement_first_secs: 7200,
            engagement_again_secs: 60,
            ..Default::default()
        };
        let t = Timing::from_settings(&s);
        assert_eq!(t.again, t.first);
    }
}
