//! The SQLite store: the embedded default, one process (web + scheduler) per database file.
//!
//! The areas' methods (`participants.rs`, `outbox.rs`, ...) are stamped in by their
//! macros; this file holds what only SQLite does: opening (pragmas, migrations), write
//! transactions, committing signatures and the claiming statement. Every write transaction
//! starts with `BEGIN IMMEDIATE` so writers queue on `busy_timeout` instead of failing when a
//! read lock must be upgraded.
//!
//! The process's writers take turns, first come first served, before they ask SQLite for
//! its write lock ([`SqliteStore::begin_write`]): SQLite's own wait is not fair.
//!
//! Signatures are group-committed: SQLite has one writer at a time, and a commit per
//! signature makes concurrent signers queue on the write lock. Instead, each caller puts
//! its signature in a queue; one flusher task waits for its turn, takes everything queued,
//! writes it in one `BEGIN IMMEDIATE` transaction, commits, and only then answers each
//! caller with its own result, so an answer still means the row is committed. While it
//! commits, the next callers queue up for the following batch.
//!
//! ```text
//!  add_signature ─┐                   ┌─ BEGIN IMMEDIATE; INSERT ×n; COMMIT
//!  add_signature ─┼─> queue ─> flusher┤
//!  add_signature ─┘     (Mutex<Vec>)  └─ answer each caller (oneshot)
//! ```

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration as StdDuration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Sqlite, SqlitePool, Transaction};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::model::{
    ClaimedPost, NewSignature, PlannedPost, PledgePlan, SignatureAdded, SignatureId,
};
use super::pledges::{PlannedBinder, planned_upsert_sql, planned_values};
use super::rows::{ms, new_invite_code};
use super::sql::{CHUNK, Params, eligible};
use super::{Store, StoreError};

/// A SQLite database file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
    /// Signatures waiting for the next group commit (see the module docs).
    signatures: Arc<SignatureQueue>,
    /// The turn of this process's writers, first come first served
    /// ([`SqliteStore::begin_write`]).
    writers: Arc<tokio::sync::Mutex<()>>,
    /// The one connection write transactions use (`pool` serves reads, and single
    /// statements). Each connection keeps its own page cache of up to 64 MiB: with every
    /// pooled connection taking turns at writing, planning a large campaign filled several
    /// with the same index pages (peak RSS 294 MiB against 142 MiB for 100,000 pledges).
    writer: SqlitePool,
    /// Stops the checkpoint task when the last clone of the store is dropped.
    _checkpoints: Arc<tokio_util::sync::DropGuard>,
}

/// How long a writer waits for SQLite's write lock (and for its turn) before failing.
const BUSY_TIMEOUT: StdDuration = StdDuration::from_secs(30);

/// A write transaction of this process, holding its turn among the process's writers (see
/// [`SqliteStore::begin_write`]) until it is committed or dropped (rolled back).
pub(super) struct WriteTransaction {
    tx: Transaction<'static, Sqlite>,
    _turn: WriteTurn,
}

type WriteTurn = tokio::sync::OwnedMutexGuard<()>;

impl WriteTransaction {
    pub(super) async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTransaction {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTransaction {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.tx
    }
}

/// The most signatures written in one transaction; more wait for the next one.
const MAX_BATCH: usize = 512;

/// Signatures waiting to be written, and whether a flusher task is running.
#[derive(Default)]
struct SignatureQueue {
    /// Held only to push or take items, never across an await.
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    waiting: Vec<Waiting>,
    /// A flusher task runs and will take what is queued: nobody else starts one.
    flushing: bool,
}

struct Waiting {
    new: NewSignature,
    now: DateTime<Utc>,
    answer: oneshot::Sender<Result<SignatureAdded, StoreError>>,
}

impl std::fmt::Debug for SignatureQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = crate::sync::lock(&self.state);
        f.debug_struct("SignatureQueue")
            .field("waiting", &state.waiting.len())
            .field("flushing", &state.flushing)
            .finish()
    }
}

/// Clears `flushing` when the flusher ends early (a panic, or its runtime shutting down),
/// so the next signature starts a new one instead of waiting forever. A flusher that ends
/// normally clears it itself, under the same lock as its last look at the queue.
struct FlushingGuard {
    queue: Arc<SignatureQueue>,
    done: bool,
}

impl Drop for FlushingGuard {
    fn drop(&mut self) {
        if !self.done {
            let mut state = crate::sync::lock(&self.queue.state);
            state.flushing = false;
        }
    }
}

impl SqliteStore {
    /// Insert the planned rows or bring their pending rows up to date, in the caller's
    /// transaction; the number of rows added or changed.
    ///
    /// SQLite runs each statement on the connection's own thread: the next chunk's
    /// arguments are bound here meanwhile, so the two cores share the work instead of
    /// taking turns (planning a million pledges binds 120 million values).
    pub(super) async fn upsert_planned(
        conn: &mut SqliteConnection,
        rows: &[(&PledgePlan, &PlannedPost)],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let mut binder = PlannedBinder::new(now_ms);
        // Every chunk but the last has CHUNK rows: one statement text for them all.
        let full = planned_upsert_sql(&planned_values::<Sqlite>(CHUNK));
        let mut statement = |chunk: &[(&PledgePlan, &PlannedPost)]| {
            let sql = if chunk.len() == CHUNK {
                full.clone()
            } else {
                planned_upsert_sql(&planned_values::<Sqlite>(chunk.len()))
            };
            let args = binder.arguments::<Sqlite>(chunk)?;
            Ok::<_, StoreError>(sqlx::query_with(AssertSqlSafe(sql), args))
        };
        let mut upserted = 0;
        let mut chunks = rows.chunks(CHUNK);
        let mut next = chunks.next().map(&mut statement).transpose()?;
        while let Some(query) = next.take() {
            let mut running = std::pin::pin!(query.execute(&mut *conn));
            // The first poll hands the statement to the connection's thread.
            let started = futures::poll!(running.as_mut());
            next = chunks.next().map(&mut statement).transpose()?;
            let done = match started {
                std::task::Poll::Ready(done) => done,
                std::task::Poll::Pending => running.await,
            };
            upserted += done?.rows_affected();
        }
        Ok(upserted)
    }

    /// Open the file at `path` (creating it if `create`), apply pragmas and run migrations.
    pub async fn open(path: &Path, create: bool) -> Result<Self, StoreError> {
        if create {
            create_private(path)?;
        }
        warn_if_shared(path);
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(create)
            // WAL: readers (web pages) never block the dispatcher's writes.
            .journal_mode(SqliteJournalMode::Wal)
            // Survives kill -9 (the WAL is written before COMMIT returns); see the module
            // docs of `store` for what a power cut can cost.
            .synchronous(SqliteSynchronous::Normal)
            // Writers queue rather than fail while another transaction holds the lock.
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Planning a large campaign inserts millions of outbox rows whose index entries
            // land all over the indexes (the jittered `run_at`): with SQLite's default 2 MiB
            // cache each insert reads and rewrites pages it has just evicted. 64 MiB per
            // connection (filled only as it is used) cut planning CPU time by about a fifth.
            // (Checkpointing every ~40 MiB of WAL instead of every ~4 MiB helped planning a
            // little but made signers wait for long checkpoints: p99 at 2,000 signatures/s
            // was 42-45 ms with it and 11 ms without, so SQLite's default stays.)
            .pragma("cache_size", "-65536")
            // Reads go through a memory map of the file (the OS page cache, shared by every
            // connection) instead of a copy into each connection's own page cache: the
            // dispatcher's indexes were read back from the OS page by page on each round.
            // Mapped pages count in the process's RSS: 128 MiB keeps planning 100,000
            // pledges at a peak of 229 MiB (256 MiB: 357) at the same speed.
            .pragma("mmap_size", (128u64 << 20).to_string())
            // Sorts and temporary b-trees stay in memory.
            .pragma("temp_store", "memory")
            // The WAL is copied back into the file by a task of its own (`checkpoints`),
            // not by whichever writer commits past 1,000 pages: that writer did the copy
            // and its fsyncs while holding everyone's turn. Past this many pages (40 MiB,
            // the task falling behind) a committing writer checkpoints as before.
            .pragma(
                "wal_autocheckpoint",
                WAL_PAGES_BEFORE_WRITERS_CHECKPOINT.to_string(),
            )
            // A claimed batch's rows come back in one go instead of 50 at a time, each
            // hand-over between the connection's thread and the caller costing a wake-up.
            .row_buffer_size(1024);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        // The checkpoint task's own connection waits for readers only briefly: see
        // `checkpoint_pass`.
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options.clone().busy_timeout(CHECKPOINT_WAIT));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options);
        let writers = Arc::<tokio::sync::Mutex<()>>::default();
        let stop = CancellationToken::new();
        tokio::spawn(checkpoints(checkpointer, writers.clone(), stop.clone()));
        Ok(Self {
            pool,
            signatures: Arc::default(),
            writers,
            writer,
            _checkpoints: Arc::new(stop.drop_guard()),
        })
    }

    /// A write transaction holding SQLite's write lock from the start: a deferred
    /// transaction that reads and then writes can fail with `SQLITE_BUSY` without waiting.
    ///
    /// Writers of this process first take their turn in a first-come, first-served queue.
    /// SQLite's own wait (`busy_timeout`) polls with growing sleeps and is not fair: while
    /// the planner wrote a large campaign page after page, each page taking the lock again
    /// the moment the last one committed, a signature waited up to 1.8 s (p99, 50
    /// signatures/s during `bench plan`). In the queue it waits for one page at most.
    /// Other processes on the same file (the command line) still meet `busy_timeout`.
    pub(super) async fn begin_write(&self) -> Result<WriteTransaction, sqlx::Error> {
        let turn = self.write_turn().await?;
        self.begin_in_turn(turn).await
    }

    /// This process's next turn to write (see [`SqliteStore::begin_write`]).
    async fn write_turn(&self) -> Result<WriteTurn, sqlx::Error> {
        tokio::time::timeout(BUSY_TIMEOUT, self.writers.clone().lock_owned())
            .await
            // As SQLite answers when its own wait runs out.
            .map_err(|_| sqlx::Error::PoolTimedOut)
    }

    async fn begin_in_turn(&self, turn: WriteTurn) -> Result<WriteTransaction, sqlx::Error> {
        let tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        Ok(WriteTransaction { tx, _turn: turn })
    }

    /// Queue the signature for the next group commit and wait for its own answer, which
    /// comes only after the commit.
    pub(super) async fn write_signature(
        &self,
        new: &NewSignature,
        now: DateTime<Utc>,
    ) -> Result<SignatureAdded, StoreError> {
        let (answer, answered) = oneshot::channel();
        let start_flusher = {
            let mut state = crate::sync::lock(&self.signatures.state);
            state.waiting.push(Waiting {
                new: new.clone(),
                now,
                answer,
            });
            !std::mem::replace(&mut state.flushing, true)
        };
        if start_flusher {
            // A task of its own: a caller that goes away (a closed connection drops its
            // handler) must not cancel the batch that holds the others' signatures.
            tokio::spawn(self.clone().flush_signatures());
        }
        // The sender is dropped unanswered only if the flusher died (a panic, or the
        // runtime shutting down): the signature may or may not be stored.
        answered
            .await
            .unwrap_or(Err(StoreError::Database(sqlx::Error::WorkerCrashed)))
    }

    /// Write what is queued, batch after batch, until the queue is empty.
    async fn flush_signatures(self) {
        let mut guard = FlushingGuard {
            queue: self.signatures.clone(),
            done: false,
        };
        loop {
            // The turn to write first, then the queue: signatures that come while this
            // waits (behind a page of the planner, say) go in this batch, not the next.
            let turn = self.write_turn().await;
            let batch: Vec<Waiting> = {
                let mut state = crate::sync::lock(&self.signatures.state);
                if state.waiting.is_empty() {
                    state.flushing = false;
                    guard.done = true;
                    return;
                }
                let n = state.waiting.len().min(MAX_BATCH);
                state.waiting.drain(..n).collect()
            };
            match self.write_batch(turn, &batch).await {
                Ok(added) => {
                    for (w, a) in batch.into_iter().zip(added) {
                        let _ = w.answer.send(Ok(a));
                    }
                }
                // One bad signature must not fail the others: write each alone, so each
                // caller gets its own answer.
                Err(_) if batch.len() > 1 => {
                    for w in batch {
                        let one = self
                            .write_batch(self.write_turn().await, std::slice::from_ref(&w))
                            .await
                            .map(|mut a| a.remove(0));
                        let _ = w.answer.send(one);
                    }
                }
                Err(e) => {
                    if let Some(w) = batch.into_iter().next() {
                        let _ = w.answer.send(Err(e));
                    }
                }
            }
        }
    }

    /// All of `batch` in one transaction, in `turn` (or its error): every row, or (on an
    /// error) none.
    async fn write_batch(
        &self,
        turn: Result<WriteTurn, sqlx::Error>,
        batch: &[Waiting],
    ) -> Result<Vec<SignatureAdded>, StoreError> {
        let mut tx = self.begin_in_turn(turn?).await?;
        let added = match batch {
            // Alone, a signature retries an invite code that collided.
            [w] => vec![Self::insert_signature(&mut tx, &w.new, w.now).await?],
            _ => Self::insert_signatures(&mut tx, batch).await?,
        };
        tx.commit().await?;
        Ok(added)
    }

    /// The batch's signatures in one multi-row `INSERT ... RETURNING`, inside the caller's
    /// transaction: one statement instead of one per signature, each of which cost a
    /// hand-over to the connection's thread and back. The same rows as
    /// `insert_signature` one after the other: a repeated address (already stored, or
    /// earlier in the batch) inserts nothing and is answered with the stored signature.
    /// A colliding invite code fails the statement, and so the batch, which is then written
    /// one signature at a time.
    async fn insert_signatures(
        conn: &mut SqliteConnection,
        batch: &[Waiting],
    ) -> Result<Vec<SignatureAdded>, StoreError> {
        const COLS: usize = 11;
        let codes: Vec<String> = batch.iter().map(|_| new_invite_code()).collect();
        let mut inserted = std::collections::HashMap::with_capacity(batch.len());
        for (chunk, codes) in batch.chunks(CHUNK).zip(codes.chunks(CHUNK)) {
            let sql = format!(
                "INSERT INTO signatures \
                 (campaign_id, name, email_canonical, public, invited_by, invite_code, \
                 confirmed, confirm_token_hash, confirm_sent_at, created_at, email_consent) \
                 VALUES {} ON CONFLICT (campaign_id, email_canonical) DO NOTHING \
                 RETURNING id, invite_code",
                Params::new::<Sqlite>().rows(chunk.len(), COLS)
            );
            let mut q = sqlx::query_as::<_, (i64, String)>(AssertSqlSafe(sql));
            for (w, code) in chunk.iter().zip(codes) {
                let new = &w.new;
                q = q
                    .bind(new.campaign_id.as_str())
                    .bind(&new.name)
                    .bind(&new.email_canonical)
                    .bind(new.public)
                    .bind(&new.invited_by)
                    .bind(code)
                    .bind(new.confirmed)
                    .bind(&new.confirm_token_hash)
                    .bind(new.confirm_token_hash.as_ref().map(|_| ms(w.now)))
                    .bind(ms(w.now))
                    .bind(new.email_consent && new.email_canonical.is_some());
            }
            // Rows come back in no promised order: each is matched by its fresh invite code.
            for (id, code) in q.fetch_all(&mut *conn).await? {
                inserted.insert(code, id);
            }
        }
        let mut added = Vec::with_capacity(batch.len());
        for (w, code) in batch.iter().zip(codes) {
            match inserted.get(&code) {
                Some(id) => added.push(SignatureAdded {
                    id: SignatureId(*id),
                    invite_code: code,
                    duplicate: false,
                    confirmed: w.new.confirmed,
                }),
                None => {
                    let (id, invite_code, confirmed) = sqlx::query_as::<_, (i64, String, bool)>(
                        "SELECT id, invite_code, confirmed FROM signatures \
                         WHERE campaign_id = $1 AND email_canonical = $2",
                    )
                    .bind(w.new.campaign_id.as_str())
                    .bind(&w.new.email_canonical)
                    .fetch_one(&mut *conn)
                    .await?;
                    added.push(SignatureAdded {
                        id: SignatureId(id),
                        invite_code,
                        duplicate: true,
                        confirmed,
                    });
                }
            }
        }
        Ok(added)
    }
}

/// WAL pages past which a committing writer checkpoints by itself (SQLite's default is
/// 1,000): only when [`checkpoints`] falls behind.
const WAL_PAGES_BEFORE_WRITERS_CHECKPOINT: u32 = 10_000;

/// How long the checkpoint task's `RESTART` waits for readers, holding the writers' turn.
const CHECKPOINT_WAIT: StdDuration = StdDuration::from_millis(100);

/// How often the checkpoint task copies what the WAL holds into the database file.
const CHECKPOINT_EVERY: StdDuration = StdDuration::from_millis(100);

/// WAL pages past which the checkpoint task has the WAL started again from its beginning.
const WAL_PAGES_BEFORE_RESTART: i64 = 1_000;

/// Copy committed pages from the WAL into the database file, beside the writers.
///
/// Each pass is first a `PASSIVE` checkpoint, which takes no lock that writers wait for:
/// it copies what no reader still needs, and the fsyncs are this task's. But the WAL is
/// only started again from its beginning by a writer that finds it copied whole, which
/// under a steady stream of commits never happens: so once the WAL holds more than
/// [`WAL_PAGES_BEFORE_RESTART`] pages, the pass takes the writers' turn and finishes with a
/// `RESTART` checkpoint, which copies the few pages committed since and waits for readers
/// to move on. Writers wait for that tail only, not for the whole copy. Ends when `stop` is
/// cancelled; an error is logged and the next pass tries again.
async fn checkpoints(
    pool: SqlitePool,
    writers: Arc<tokio::sync::Mutex<()>>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match checkpoint_pass(&pool, &writers).await {
            Ok(()) => failing = false,
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "checkpointing the WAL failed; trying again");
            }
            Err(_) => {}
        }
    }
}

async fn checkpoint_pass(
    pool: &SqlitePool,
    writers: &tokio::sync::Mutex<()>,
) -> Result<(), sqlx::Error> {
    // (busy, pages in the WAL, pages copied)
    let checkpoint = |mode: &'static str| {
        sqlx::query_as::<_, (i64, i64, i64)>(AssertSqlSafe(format!(
            "PRAGMA wal_checkpoint({mode})"
        )))
        .fetch_one(pool)
    };
    let (_, in_wal, _) = checkpoint("PASSIVE").await?;
    if in_wal > WAL_PAGES_BEFORE_RESTART {
        // RESTART waits, through the busy handler, for readers still using the WAL: on this
        // connection for at most CHECKPOINT_WAIT, since the writers wait meanwhile (a long
        // export must not hold up signers). Past it, SQLite says busy and the next pass
        // tries again.
        let _turn = writers.lock().await;
        checkpoint("RESTART").await?;
    }
    Ok(())
}

/// Create the database file, if missing, readable and writable by its owner only: it holds
/// e-mail addresses and sealed credentials. SQLite gives the `-wal` and `-shm` files it
/// makes beside it the database file's own mode, so they are private too.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        // An empty file is an empty SQLite database.
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Database(sqlx::Error::Io(e))),
    }
}

/// A database file made by an older picket (or by hand) may be readable by every user of
/// the machine: say so, without changing a mode the operator may have chosen.
fn warn_if_shared(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the database file is readable by other users of this machine: `chmod 600` it \
                 (and its -wal and -shm files)"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn writes_side_by_side(&self) -> bool {
        false
    }

    async fn refresh_statistics(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl SqliteStore {
    /// Lease up to `limit` due rows to `worker` (see [`Outbox::claim_due`]), in the
    /// caller's write transaction; the claimed posts.
    ///
    /// [`Outbox::claim_due`]: super::Outbox::claim_due
    pub(super) async fn claim_posts(
        conn: &mut SqliteConnection,
        worker: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<ClaimedPost>, StoreError> {
        // SQLite has one writer at a time: under BEGIN IMMEDIATE nobody else can claim
        // between the SELECT and the UPDATE, so the guarded UPDATE is exclusive by itself.
        //
        // Due rows and expired leases are looked up apart and merged: with one `OR` SQLite
        // collected every due row, checked each for eligibility and sorted them all to keep
        // the first `$4` (about 240 ms per round with 100,000 rows due). Apart, each reads its
        // own index in `run_at` order and stops after `$4` rows; the first `$4` of the merge
        // are the same rows the single query chose.
        //
        // Due rows are read by their 10 s bucket of `run_at` (the `outbox_due` index,
        // migration 0023), oldest bucket first and by id within one: the exact instant is
        // checked on the row, and among due rows the order within 10 s does not matter.
        let ids: Vec<i64> = sqlx::query_scalar(concat!(
            "UPDATE outbox SET state = 'claimed', lease_owner = $1, lease_until = $2, \
             outcome_unknown = CASE WHEN state = 'sending' THEN TRUE ELSE outcome_unknown END, \
             updated_at = $3 \
             WHERE id IN (SELECT id FROM (\
             SELECT id, run_at FROM (SELECT o.id, o.run_at FROM outbox o \
             WHERE o.state = 'pending' AND o.run_at / 10000 <= $3 / 10000 \
             AND o.run_at <= $3 AND ",
            eligible!("o"),
            " ORDER BY o.run_at / 10000, o.id LIMIT $4) \
             UNION ALL \
             SELECT id, run_at FROM (SELECT o.id, o.run_at FROM outbox o \
             WHERE o.state IN ('claimed', 'sending') AND o.lease_until <= $3 AND ",
            eligible!("o"),
            " ORDER BY o.run_at, o.id LIMIT $4) \
             ORDER BY run_at, id LIMIT $4)) RETURNING id"
        ))
        .bind(worker)
        .bind(ms(lease_until))
        .bind(ms(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?;
        // SQLite's `RETURNING` sees only the updated table: the rows are read after.
        Self::claimed_posts(conn, &ids, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Signatures;

    fn signer(n: usize, name: String) -> NewSignature {
        NewSignature {
            campaign_id: "c".parse().unwrap(),
            name,
            email_canonical: Some(format!("s{n}@example.org")),
            public: false,
            invited_by: None,
            confirmed: true,
            confirm_token_hash: None,
            email_consent: false,
        }
    }

    #[tokio::test]
    async fn a_reader_that_keeps_the_wal_in_use_holds_up_writers_only_briefly() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), true)
            .await
            .unwrap();
        let now = Utc::now();
        // A reader keeps its snapshot (a long export, say): the checkpoint task's RESTART
        // waits for it while it holds the writers' turn.
        let mut reader = store.pool.begin().await.unwrap();
        sqlx::query("SELECT COUNT(*) FROM signatures")
            .fetch_one(&mut *reader)
            .await
            .unwrap();
        // Past the mark: 6 MB of WAL.
        for n in 0..60 {
            store
                .add_signature(&signer(n, "x".repeat(100_000)), now)
                .await
                .unwrap();
        }

        // Writers go on while the reader reads: each waits at most a brief turn.
        let mut slowest = StdDuration::ZERO;
        for n in 60..100 {
            let started = std::time::Instant::now();
            store
                .add_signature(&signer(n, format!("Signer {n}")), now)
                .await
                .unwrap();
            slowest = slowest.max(started.elapsed());
            tokio::time::sleep(StdDuration::from_millis(25)).await;
        }
        reader.rollback().await.unwrap();

        assert!(
            slowest < StdDuration::from_secs(2),
            "a writer waited {slowest:?} for a checkpoint held up by a reader"
        );
    }
}
