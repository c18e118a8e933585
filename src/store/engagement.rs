//! Engagement and reach of published notices: which published posts are due a read of
//! their likes, reposts and replies (and their account's followers), what each read found,
//! and the figures per network the stats show. The scheduler's engagement task decides
//! when a post is read again ([`crate::scheduler::engagement`]); this file only keeps
//! the rows.
//!
//! The SQL is the same on both databases: the `engagement!` macro stamps one
//! implementation of [`EngagementStore`] out for each backend.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};

use crate::domain::NetworkKind;

use super::rows::{ms, parse};
use super::{AccountId, PgStore, SqliteStore, StoreError};

/// The networks whose adapters read engagement counts. The official APIs (Threads, X,
/// LinkedIn, Facebook) and tap-to-post accounts are not read.
pub const READ_NETWORKS: [NetworkKind; 3] = [
    NetworkKind::Mastodon,
    NetworkKind::Bluesky,
    NetworkKind::Nostr,
];

/// A published post due a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngagementDue {
    pub outbox_id: i64,
    pub account_id: AccountId,
    pub network: NetworkKind,
    /// The network's id of the post (status id, AT-URI, event id).
    pub remote_id: String,
    /// Successful reads so far.
    pub reads: u32,
    /// Failed tries of the read now due.
    pub attempts: u32,
    /// Whether the account's followers were already counted.
    pub has_followers: bool,
}

/// What one read of one post leaves in its row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngagementRecord {
    /// `Some` when the counts were read: they replace the earlier ones.
    pub counts: Option<crate::network::Engagement>,
    /// The account's followers, kept only when none were kept before (the first count
    /// is the one nearest to posting).
    pub followers: Option<u64>,
    pub reads: u32,
    pub attempts: u32,
    /// Why the read failed, in picket's words; `None` clears an earlier one.
    pub error: Option<String>,
    /// When to read again; `None`: never.
    pub next_read_at: Option<DateTime<Utc>>,
}

/// One network's engagement figures for a campaign, for posts of one UTC hour of day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngagementBucket {
    pub network: NetworkKind,
    /// 0-23, the UTC hour of the post's slot.
    pub hour: u8,
    /// Published posts being followed.
    pub posts: u64,
    /// Posts whose counts were read at least once.
    pub read: u64,
    /// Posts whose account's followers are known.
    pub with_followers: u64,
    /// Followers summed over posts (an account posting twice counts twice: reach).
    pub followers: u64,
    pub likes: u64,
    pub reposts: u64,
    pub replies: u64,
    /// Posts whose last read failed (deleted post, revoked token ...).
    pub unreadable: u64,
}

/// Engagement rows; part of [`Store`](super::Store).
#[async_trait]
pub trait EngagementStore {
    /// Start following the posts of [`READ_NETWORKS`] published since `since` and not
    /// followed yet, first read `first` after their publication. Answers how many.
    async fn follow_published(
        &self,
        since: DateTime<Utc>,
        first: Duration,
    ) -> Result<u64, StoreError>;
    /// Posts due a read at `now`, the longest waiting first, at most `limit`.
    async fn engagement_due(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<EngagementDue>, StoreError>;
    /// Keep what a read found.
    async fn record_engagement(
        &self,
        outbox_id: i64,
        record: &EngagementRecord,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Leave a due post for later (its account's reading budget is spent).
    async fn postpone_engagement(
        &self,
        outbox_id: i64,
        until: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The figures per network and UTC hour of day for `campaign`.
    async fn engagement_buckets(&self, campaign: &str)
    -> Result<Vec<EngagementBucket>, StoreError>;
}

type DueRow = (i64, i64, String, Option<String>, i64, i64, bool);
type BucketRow = (String, i64, i64, i64, i64, i64, i64, i64, i64, i64);

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn stored(n: Option<u64>) -> Option<i64> {
    n.map(|n| i64::try_from(n).unwrap_or(i64::MAX))
}

/// [`EngagementStore`] for the backend `$store`.
macro_rules! engagement {
    ($store:ty) => {
        #[async_trait]
        impl EngagementStore for $store {
            async fn follow_published(
                &self,
                since: DateTime<Utc>,
                first: Duration,
            ) -> Result<u64, StoreError> {
                let networks = READ_NETWORKS.map(|n| n.as_str());
                Ok(sqlx::query(
                    "INSERT INTO post_engagement (outbox_id, campaign, network, next_read_at) \
                     SELECT o.id, o.campaign_id, a.network, o.published_at + $1 \
                     FROM outbox o JOIN accounts a ON a.id = o.account_id \
                     WHERE o.state = 'published' AND o.remote_id IS NOT NULL \
                     AND o.published_at >= $2 AND a.network IN ($3, $4, $5) \
                     AND NOT EXISTS (SELECT 1 FROM post_engagement e WHERE e.outbox_id = o.id)",
                )
                .bind(first.num_milliseconds())
                .bind(ms(since))
                .bind(networks[0])
                .bind(networks[1])
                .bind(networks[2])
                .execute(&self.pool)
                .await?
                .rows_affected())
            }

            async fn engagement_due(
                &self,
                now: DateTime<Utc>,
                limit: u32,
            ) -> Result<Vec<EngagementDue>, StoreError> {
                sqlx::query_as::<_, DueRow>(
                    "SELECT e.outbox_id, o.account_id, e.network, o.remote_id, e.reads, \
                     e.attempts, e.followers IS NOT NULL \
                     FROM post_engagement e JOIN outbox o ON o.id = e.outbox_id \
                     WHERE e.next_read_at IS NOT NULL AND e.next_read_at <= $1 \
                     ORDER BY e.next_read_at, e.outbox_id LIMIT $2",
                )
                .bind(ms(now))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(
                    |(outbox_id, account, network, remote_id, reads, attempts, has_followers)| {
                        Ok(EngagementDue {
                            outbox_id,
                            account_id: AccountId(account),
                            network: parse(&network)?,
                            remote_id: remote_id.unwrap_or_default(),
                            reads: u32::try_from(reads).unwrap_or(0),
                            attempts: u32::try_from(attempts).unwrap_or(0),
                            has_followers,
                        })
                    },
                )
                .collect()
            }

            async fn record_engagement(
                &self,
                outbox_id: i64,
                r: &EngagementRecord,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                let c = r.counts;
                sqlx::query(
                    "UPDATE post_engagement SET \
                     likes = COALESCE($1, likes), reposts = COALESCE($2, reposts), \
                     replies = COALESCE($3, replies), followers = COALESCE(followers, $4), \
                     reads = $5, attempts = $6, error = $7, next_read_at = $8, read_at = $9 \
                     WHERE outbox_id = $10",
                )
                .bind(stored(c.map(|c| c.likes)))
                .bind(stored(c.map(|c| c.reposts)))
                .bind(stored(c.map(|c| c.replies)))
                .bind(stored(r.followers))
                .bind(i64::from(r.reads))
                .bind(i64::from(r.attempts))
                .bind(r.error.as_deref())
                .bind(r.next_read_at.map(ms))
                .bind(ms(now))
                .bind(outbox_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn postpone_engagement(
                &self,
                outbox_id: i64,
                until: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "UPDATE post_engagement SET next_read_at = $1 \
                     WHERE outbox_id = $2 AND next_read_at IS NOT NULL",
                )
                .bind(ms(until))
                .bind(outbox_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn engagement_buckets(
                &self,
                campaign: &str,
            ) -> Result<Vec<EngagementBucket>, StoreError> {
                // The hour is the slot's, as in the posts' own buckets (`post_buckets`).
                sqlx::query_as::<_, BucketRow>(
                    "SELECT e.network, (o.slot_at / 3600000) % 24 AS hour, COUNT(*), \
                     COUNT(e.likes), COUNT(e.followers), \
                     CAST(COALESCE(SUM(e.followers), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(e.likes), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(e.reposts), 0) AS BIGINT), \
                     CAST(COALESCE(SUM(e.replies), 0) AS BIGINT), COUNT(e.error) \
                     FROM post_engagement e JOIN outbox o ON o.id = e.outbox_id \
                     WHERE e.campaign = $1 \
                     GROUP BY e.network, (o.slot_at / 3600000) % 24 ORDER BY e.network, hour",
                )
                .bind(campaign)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(
                    |(network, hour, posts, read, with_f, followers, likes, reposts, replies, bad)| {
                        Ok(EngagementBucket {
                            network: parse(&network)?,
                            hour: u8::try_from(hour.rem_euclid(24)).unwrap_or(0),
                            posts: count(posts),
                            read: count(read),
                            with_followers: count(with_f),
                            followers: count(followers),
                            likes: count(likes),
                            reposts: count(reposts),
                            replies: count(replies),
                            unreadable: count(bad),
                        })
                    },
                )
                .collect()
            }
        }
    };
}

engagement!(SqliteStore);
engagement!(PgStore);
