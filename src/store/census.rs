//! The hashtag census: public posts carrying a campaign's hashtag that the census task
//! saw on the sources the campaign lists, and the hourly figures drawn from them. A post
//! seen again (on another server, or in a later poll) is recognised by its key and kept
//! once; authors are kept as salted hashes only (the caller hashes). Where each source's
//! reading stands is kept too, so a restart reads on instead of from the start.
//!
//! The SQL is the same on both databases: the `census!` macro stamps one implementation of
//! [`Census`] out for each backend.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::NetworkKind;

use super::rows::{instant, ms, parse};
use super::{PgStore, SqliteStore, StoreError};

/// One post the census saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CensusPost {
    pub network: NetworkKind,
    /// What recognises the post wherever it is seen: a status's `uri`, an event id, an
    /// AT-URI.
    pub key: String,
    /// The author's salted hash (see `crypto::Vault::keyed_hash`).
    pub author_hash: String,
    /// One of this host's own accounts wrote it.
    pub own: bool,
    pub posted_at: DateTime<Utc>,
    /// The post's public address, where the network has one.
    pub link: Option<String>,
}

/// One network's figures for one UTC hour.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CensusHour {
    /// The hour's start.
    pub hour: DateTime<Utc>,
    pub network: NetworkKind,
    /// Posts seen, this host's own accounts' included.
    pub posts: i64,
    /// Distinct authors, this host's own accounts included.
    pub authors: i64,
    /// Posts by authors who are not this host's accounts.
    pub beyond_posts: i64,
    /// Distinct authors who are not this host's accounts.
    pub beyond_authors: i64,
}

/// The whole census of a campaign: distinct over every hour and network (an author
/// posting in two hours counts once here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CensusTotals {
    pub posts: i64,
    pub authors: i64,
    pub beyond_posts: i64,
    pub beyond_authors: i64,
}

/// A campaign's census as the stats show it: the totals, and each hour and network.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CensusFigures {
    pub totals: CensusTotals,
    pub hours: Vec<CensusHour>,
}

/// The start of the UTC hour `t` falls in: the census's bucket.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    let secs = t.timestamp();
    DateTime::from_timestamp(secs - secs.rem_euclid(3600), 0).unwrap_or(t)
}

/// The census; part of [`Store`](super::Store).
#[async_trait]
pub trait Census {
    /// Keep the posts not seen before for `campaign`; answers how many were new.
    async fn record_census(
        &self,
        campaign: &str,
        posts: &[CensusPost],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// The figures per hour and network, oldest first.
    async fn census_hours(&self, campaign: &str) -> Result<Vec<CensusHour>, StoreError>;
    /// The figures over the whole campaign.
    async fn census_totals(&self, campaign: &str) -> Result<CensusTotals, StoreError>;
    /// [`Census::census_totals`] and [`Census::census_hours`] together: what the stats
    /// JSON, the CLI and the stats page show.
    async fn census_figures(&self, campaign: &str) -> Result<CensusFigures, StoreError> {
        Ok(CensusFigures {
            totals: self.census_totals(campaign).await?,
            hours: self.census_hours(campaign).await?,
        })
    }
    /// Every account this host posts for or reminds (network and handle): the census's
    /// "own" authors.
    async fn own_handles(&self) -> Result<Vec<(NetworkKind, String)>, StoreError>;
    /// Where the reading of `source` for `campaign` stands, if it was saved.
    async fn census_cursor(
        &self,
        campaign: &str,
        source: &str,
    ) -> Result<Option<String>, StoreError>;
    /// Save where the reading of `source` for `campaign` stands (what it covers is stored).
    async fn save_census_cursor(
        &self,
        campaign: &str,
        source: &str,
        cursor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

type HourRow = (i64, String, i64, i64, i64, i64);

/// [`Census`] for the backend `$store`.
macro_rules! census {
    ($store:ty) => {
        #[async_trait]
        impl Census for $store {
            async fn record_census(
                &self,
                campaign: &str,
                posts: &[CensusPost],
                now: DateTime<Utc>,
            ) -> Result<u64, StoreError> {
                if posts.is_empty() {
                    return Ok(0);
                }
                let mut tx = self.begin_write().await?;
                let mut new = 0;
                for p in posts {
                    new += sqlx::query(
                        "INSERT INTO census_posts (campaign, network, post_key, author_hash, \
                         own, posted_at, hour, link, seen_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                         ON CONFLICT (campaign, post_key) DO NOTHING",
                    )
                    .bind(campaign)
                    .bind(p.network.as_str())
                    .bind(&p.key)
                    .bind(&p.author_hash)
                    .bind(p.own)
                    .bind(ms(p.posted_at))
                    .bind(ms(hour_of(p.posted_at)))
                    .bind(p.link.as_deref())
                    .bind(ms(now))
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                }
                tx.commit().await?;
                Ok(new)
            }

            async fn census_hours(&self, campaign: &str) -> Result<Vec<CensusHour>, StoreError> {
                sqlx::query_as::<_, HourRow>(
                    "SELECT hour, network, COUNT(*), COUNT(DISTINCT author_hash), \
                     COUNT(CASE WHEN own THEN NULL ELSE 1 END), \
                     COUNT(DISTINCT CASE WHEN own THEN NULL ELSE author_hash END) \
                     FROM census_posts WHERE campaign = $1 \
                     GROUP BY hour, network ORDER BY hour, network",
                )
                .bind(campaign)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(
                    |(hour, network, posts, authors, beyond_posts, beyond_authors)| {
                        Ok(CensusHour {
                            hour: instant(hour)?,
                            network: parse(&network)?,
                            posts,
                            authors,
                            beyond_posts,
                            beyond_authors,
                        })
                    },
                )
                .collect()
            }

            async fn census_totals(&self, campaign: &str) -> Result<CensusTotals, StoreError> {
                let (posts, authors, beyond_posts, beyond_authors) =
                    sqlx::query_as::<_, (i64, i64, i64, i64)>(
                        "SELECT COUNT(*), COUNT(DISTINCT author_hash), \
                         COUNT(CASE WHEN own THEN NULL ELSE 1 END), \
                         COUNT(DISTINCT CASE WHEN own THEN NULL ELSE author_hash END) \
                         FROM census_posts WHERE campaign = $1",
                    )
                    .bind(campaign)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(CensusTotals {
                    posts,
                    authors,
                    beyond_posts,
                    beyond_authors,
                })
            }

            async fn own_handles(&self) -> Result<Vec<(NetworkKind, String)>, StoreError> {
                sqlx::query_as::<_, (String, String)>(
                    "SELECT DISTINCT network, handle FROM accounts \
                     WHERE network IN ('mastodon', 'bluesky', 'nostr')",
                )
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(|(n, h)| Ok((parse(&n)?, h)))
                .collect()
            }

            async fn census_cursor(
                &self,
                campaign: &str,
                source: &str,
            ) -> Result<Option<String>, StoreError> {
                Ok(sqlx::query_scalar(
                    "SELECT cursor FROM census_cursors WHERE campaign = $1 AND source = $2",
                )
                .bind(campaign)
                .bind(source)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn save_census_cursor(
                &self,
                campaign: &str,
                source: &str,
                cursor: &str,
                now: DateTime<Utc>,
            ) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO census_cursors (campaign, source, cursor, updated_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (campaign, source) \
                     DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                )
                .bind(campaign)
                .bind(source)
                .bind(cursor)
                .bind(ms(now))
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }
    };
}

census!(SqliteStore);
census!(PgStore);

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_post_falls_in_the_utc_hour_it_was_written_in_whatever_its_offset() {
        assert_eq!(
            hour_of(at("2027-07-04T13:59:59.999Z")),
            at("2027-07-04T13:00:00Z")
        );
        assert_eq!(
            hour_of(at("2027-07-04T14:00:00Z")),
            at("2027-07-04T14:00:00Z")
        );
        assert_eq!(
            hour_of(at("2027-07-04T02:30:00+05:30")),
            at("2027-07-03T21:00:00Z")
        );
        assert_eq!(
            hour_of(at("1969-12-31T23:30:00Z")),
            at("1969-12-31T23:00:00Z")
        );
    }
}
