//! Event queries in PostgreSQL's dialect, and this node's cache of stored keys.
//!
//! Any number of billow nodes write to one PostgreSQL. Exactly-once is decided the way the SQLite
//! backend decides it, with the writers of a workspace serialized by a transaction-scoped advisory
//! lock instead of SQLite's write lock: a random-order unique index would cost a random B-tree
//! insert per event (DESIGN.md §6), about 8 µs each here. Each write transaction
//! 1. takes the advisory lock of every workspace in its group (in sorted order, so that two nodes
//!    cannot deadlock),
//! 2. reads the key hashes of that workspace's chunks with a `seq` above what this node has read
//!    (chunks written by other nodes since),
//! 3. decides from the cache which events are new, appends their log chunk, and commits.
//!
//! Under the lock, `seq` values of a workspace are taken in commit order (the next holder draws
//! them after the previous one committed), so no chunk of the workspace can appear below the
//! watermark later; compaction takes the same lock. The cache is only a copy: a node that has not
//! read a workspace reads all its key hashes (16 bytes per event) on its first write.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use jiff::Timestamp;
use sqlx::{PgConnection, PgPool, Row};

use super::codec::decode_key_hashes;
use super::plan::{self, NewChunk, StoredChunk};
use super::read::ChunkRow;
use super::sqlite::written_subjects;
use super::{Batch, ChunkFilter, CompactEventsError, Compacted, InsertOutcome, KeySet};

mod merge;

pub(super) use merge::merge;

/// The first key of billow's event advisory locks (`'EVNT'`); the second is the workspace's hash.
const EVENTS_LOCK_CLASS: i32 = 0x4556_4E54;

/// How long compaction leaves out a workspace whose own stored data made its compaction fail
/// ([`compact`]): the others go on meanwhile, and it is tried again after.
const HOLD_BACK_AFTER_DATA_ERROR: Duration = Duration::from_secs(10 * 60);

/// The key hashes this node has read, per workspace, and how far; and the workspaces its
/// compaction leaves out for now.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    workspaces: HashMap<String, WorkspaceKeys>,
    /// Workspaces whose compaction failed on their own stored data, and until when they are left
    /// out, so that one bad row cannot stop compaction for every workspace.
    held_back: HashMap<String, Instant>,
}

#[derive(Debug, Default)]
struct WorkspaceKeys {
    /// Every chunk of the workspace with a `seq` up to this one has its keys in `keys`.
    read_through_seq: i64,
    keys: KeySet,
}

impl KeyCache {
    fn workspace(&mut self, workspace_id: &str) -> &mut WorkspaceKeys {
        if !self.workspaces.contains_key(workspace_id) {
            self.workspaces
                .insert(workspace_id.to_owned(), WorkspaceKeys::default());
        }
        self.workspaces
            .get_mut(workspace_id)
            .expect("inserted above")
    }

    fn contains(&self, workspace_id: &str, hash: u128) -> bool {
        self.workspaces
            .get(workspace_id)
            .is_some_and(|workspace| workspace.keys.contains(&hash))
    }
}

pub(super) async fn insert_batches(
    pool: &PgPool,
    cache: &tokio::sync::Mutex<KeyCache>,
    batches: &[Batch<'_>],
    ingested_at: Timestamp,
) -> Result<Vec<InsertOutcome>, sqlx::Error> {
    let mut workspace_ids: Vec<&str> = batches
        .iter()
        .map(|batch| batch.workspace_id.as_str())
        .collect();
    workspace_ids.sort_unstable();
    workspace_ids.dedup();
    let mut cache = cache.lock().await;
    let mut transaction = pool.begin().await?;
    for workspace_id in &workspace_ids {
        lock_workspace(&mut transaction, workspace_id).await?;
        catch_up(&mut transaction, &mut cache, workspace_id).await?;
    }
    let mut not_stored =
        plan::NotStored::new(|workspace_id: &str, hash| cache.contains(workspace_id, hash));
    let plan = plan::plan(
        batches,
        |workspace_id, hash| not_stored.claim(workspace_id, hash),
        ingested_at,
    );
    drop(not_stored);
    let written = insert_chunks(&mut transaction, &plan.chunks).await?;
    transaction.commit().await?;
    // Only what is committed enters the cache.
    for (workspace_id, hashes) in plan.new_keys() {
        cache.workspace(workspace_id).keys.extend(hashes);
    }
    advance(&mut cache, written);
    Ok(plan.outcomes)
}

/// Waits for, then holds until the transaction ends, the right to write `workspace_id`'s events.
async fn lock_workspace(
    connection: &mut PgConnection,
    workspace_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext($2))")
        .bind(EVENTS_LOCK_CLASS)
        .bind(workspace_id)
        .execute(connection)
        .await
        .map(drop)
}

/// Reads the keys of `workspace_id`'s chunks written since this node last looked (under the
/// workspace's lock).
async fn catch_up(
    connection: &mut PgConnection,
    cache: &mut KeyCache,
    workspace_id: &str,
) -> Result<(), sqlx::Error> {
    let workspace = cache.workspace(workspace_id);
    let mut rows = sqlx::query(
        "SELECT seq, key_hashes FROM event_chunks \
         WHERE workspace_id = $1 AND seq > $2 ORDER BY seq",
    )
    .bind(workspace_id)
    .bind(workspace.read_through_seq)
    .fetch(connection);
    while let Some(row) = rows.try_next().await? {
        let seq: i64 = row.try_get(0)?;
        let bytes: &[u8] = row.try_get(1)?;
        let hashes =
            decode_key_hashes(bytes).map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        workspace.keys.extend(hashes);
        workspace.read_through_seq = seq;
    }
    Ok(())
}

/// Moves each workspace's watermark to the largest `seq` this node wrote (it had read everything
/// below under the lock).
fn advance(cache: &mut KeyCache, written: Vec<(String, i64)>) {
    for (workspace_id, seq) in written {
        let workspace = cache.workspace(&workspace_id);
        workspace.read_through_seq = workspace.read_through_seq.max(seq);
    }
}

/// Inserts `chunks`; the (workspace, seq) of each.
async fn insert_chunks(
    connection: &mut PgConnection,
    chunks: &[NewChunk],
) -> Result<Vec<(String, i64)>, sqlx::Error> {
    if chunks.is_empty() {
        return Ok(Vec::new());
    }
    let column = |get: fn(&NewChunk) -> i64| chunks.iter().map(get).collect::<Vec<i64>>();
    let workspace_ids: Vec<&str> = chunks.iter().map(|c| c.workspace_id.as_str()).collect();
    let subjects: Vec<Option<&str>> = chunks.iter().map(|c| c.subject.as_deref()).collect();
    let counts: Vec<i32> = chunks.iter().map(|c| c.event_count).collect();
    let key_hashes: Vec<&[u8]> = chunks.iter().map(|c| c.key_hashes.as_slice()).collect();
    let events: Vec<&[u8]> = chunks.iter().map(|c| c.events.as_slice()).collect();
    sqlx::query_as(
        "INSERT INTO event_chunks (workspace_id, subject, time_min_us, time_max_us, \
           ingested_max_us, event_count, key_hashes, events) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], \
           $6::int4[], $7::bytea[], $8::bytea[]) \
         RETURNING workspace_id, seq",
    )
    .bind(&workspace_ids)
    .bind(&subjects)
    .bind(column(|c| c.time_min_us))
    .bind(column(|c| c.time_max_us))
    .bind(column(|c| c.ingested_max_us))
    .bind(&counts)
    .bind(&key_hashes)
    .bind(&events)
    .fetch_all(connection)
    .await
}

/// Compaction on PostgreSQL: the workspace of the oldest log chunk, under its lock.
///
/// A workspace whose compaction fails because of its own stored data (a data exception or a
/// constraint the database reports, or a chunk that does not decode) is logged and left out for
/// [`HOLD_BACK_AFTER_DATA_ERROR`], and the next workspace is compacted instead: one bad row must
/// not stop compaction for everyone (reads decode the log chunks left behind, so its events stay
/// readable). Any other failure (the connection, the server) concerns every workspace alike and
/// is returned, to be retried later.
pub(super) async fn compact(
    pool: &PgPool,
    cache: &tokio::sync::Mutex<KeyCache>,
    events_max: i64,
) -> Result<Compacted, CompactEventsError> {
    let mut cache = cache.lock().await;
    loop {
        let now = Instant::now();
        cache.held_back.retain(|_, until| *until > now);
        let held_back: Vec<String> = cache.held_back.keys().cloned().collect();
        match compact_oldest_workspace(pool, &mut cache, &held_back, events_max).await {
            Err((Some(workspace_id), error)) if caused_by_stored_data(&error) => {
                tracing::error!(
                    workspace_id = %workspace_id,
                    error.message = %error,
                    error.cause_chain = ?error,
                    "compacting a workspace's events failed on its stored data; compaction leaves \
                     it out for {} s and goes on with the other workspaces",
                    HOLD_BACK_AFTER_DATA_ERROR.as_secs()
                );
                // Each turn holds back one more workspace, so the loop ends.
                cache
                    .held_back
                    .insert(workspace_id, now + HOLD_BACK_AFTER_DATA_ERROR);
            }
            Err((_, error)) => return Err(error),
            Ok(compacted) => return Ok(compacted),
        }
    }
}

/// Whether `error` comes from the rows compaction read or wrote rather than from the database
/// connection or server: SQLSTATE class 22 (data exception, e.g. 22021 for a U+0000 in `text`)
/// or 23 (integrity constraint violation), or a chunk that does not decode.
fn caused_by_stored_data(error: &CompactEventsError) -> bool {
    match error {
        CompactEventsError::CorruptChunk(_) => true,
        CompactEventsError::Database(sqlx::Error::Decode(_)) => true,
        CompactEventsError::Database(sqlx::Error::Database(error)) => error
            .code()
            .is_some_and(|code| code.starts_with("22") || code.starts_with("23")),
        CompactEventsError::Database(_) | CompactEventsError::Panicked(_) => false,
    }
}

/// One compaction transaction, for the workspace of the oldest log chunk not in `held_back`; on
/// failure, with the workspace when one was chosen.
async fn compact_oldest_workspace(
    pool: &PgPool,
    cache: &mut KeyCache,
    held_back: &[String],
    events_max: i64,
) -> Result<Compacted, (Option<String>, CompactEventsError)> {
    let database = |error| (None, CompactEventsError::Database(error));
    let mut transaction = pool.begin().await.map_err(database)?;
    let oldest: Option<String> = sqlx::query_scalar(
        "SELECT workspace_id FROM event_chunks \
         WHERE subject IS NULL AND workspace_id <> ALL($1) ORDER BY seq LIMIT 1",
    )
    .bind(held_back)
    .fetch_optional(&mut *transaction)
    .await
    .map_err(database)?;
    let Some(workspace_id) = oldest else {
        return Ok(Compacted {
            moved: 0,
            subjects: Vec::new(),
        });
    };
    compact_workspace(transaction, cache, &workspace_id, events_max)
        .await
        .map_err(|error| (Some(workspace_id), error))
}

/// Moves the oldest log chunks of `workspace_id` into subject chunks, and commits.
async fn compact_workspace(
    mut transaction: sqlx::Transaction<'_, sqlx::Postgres>,
    cache: &mut KeyCache,
    workspace_id: &str,
    events_max: i64,
) -> Result<Compacted, CompactEventsError> {
    let database = CompactEventsError::Database;
    let nothing = || Compacted {
        moved: 0,
        subjects: Vec::new(),
    };
    lock_workspace(&mut transaction, workspace_id)
        .await
        .map_err(database)?;
    catch_up(&mut transaction, cache, workspace_id)
        .await
        .map_err(database)?;
    let log_chunks = oldest_log_chunks(&mut transaction, workspace_id, events_max)
        .await
        .map_err(database)?;
    let Some(last) = log_chunks.last() else {
        // Another node compacted them before this one got the lock.
        return Ok(nothing());
    };
    let last_seq = last.seq;
    let subject_chunks = plan::compact(&log_chunks)?;
    let moved: i64 = subject_chunks
        .iter()
        .map(|chunk| i64::from(chunk.event_count))
        .sum();
    let subjects = written_subjects(&subject_chunks);
    let written = insert_chunks(&mut transaction, &subject_chunks)
        .await
        .map_err(database)?;
    sqlx::query(
        "DELETE FROM event_chunks WHERE workspace_id = $1 AND subject IS NULL AND seq <= $2",
    )
    .bind(workspace_id)
    .bind(last_seq)
    .execute(&mut *transaction)
    .await
    .map_err(database)?;
    transaction.commit().await.map_err(database)?;
    // The new chunks hold keys the cache has (it caught up above).
    advance(cache, written);
    Ok(Compacted {
        moved: u64::try_from(moved).expect("event counts are positive"),
        subjects,
    })
}

/// The oldest log chunks of `workspace_id` whose events add up to about `events_max` (at least
/// one chunk).
async fn oldest_log_chunks(
    connection: &mut PgConnection,
    workspace_id: &str,
    events_max: i64,
) -> Result<Vec<StoredChunk>, sqlx::Error> {
    let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT seq, key_hashes, events FROM ( \
           SELECT seq, key_hashes, events, \
                  sum(event_count) OVER (ORDER BY seq) - event_count AS before \
           FROM event_chunks WHERE workspace_id = $1 AND subject IS NULL \
         ) oldest WHERE before < $2 ORDER BY seq",
    )
    .bind(workspace_id)
    .bind(events_max)
    .fetch_all(connection)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, key_hashes, events)| StoredChunk {
            seq,
            workspace_id: workspace_id.to_owned(),
            key_hashes,
            events,
        })
        .collect())
}

#[tracing::instrument(skip_all)]
/// Every chunk of the workspace that may hold an event `filter` (a period) wants, whatever its
/// subject, in one statement (one snapshot).
pub(super) async fn select_workspace_chunks(
    pool: &PgPool,
    workspace_id: &str,
    filter: ChunkFilter,
) -> Result<Vec<ChunkRow>, sqlx::Error> {
    let ChunkFilter::Period { from_us, to_us, .. } = filter else {
        unreachable!("a workspace's usage is read by period")
    };
    sqlx::query_as(
        "SELECT seq, subject IS NULL AS log, subject, event_count, events FROM event_chunks \
         WHERE workspace_id = $1 AND time_max_us >= $2 AND time_min_us <= $3",
    )
    .bind(workspace_id)
    .bind(from_us)
    .bind(to_us)
    .fetch_all(pool)
    .await
}

pub(super) async fn select_chunks(
    pool: &PgPool,
    workspace_id: &str,
    subjects: &[String],
    filter: ChunkFilter,
) -> Result<Vec<ChunkRow>, sqlx::Error> {
    // One statement: its snapshot sees a compaction (which moves events from log chunks to
    // subject chunks) wholly or not at all. Log chunks (subject NULL) hold every subject.
    let (bound, low, high) = match filter {
        ChunkFilter::Period { from_us, to_us, .. } => {
            ("time_max_us >= $3 AND time_min_us <= $4", from_us, to_us)
        }
        ChunkFilter::IngestedAfter { since_us } => {
            ("ingested_max_us > $3 AND $4 = $4", since_us, 0)
        }
        ChunkFilter::Late {
            since_us,
            before_us,
            ..
        } => (
            "ingested_max_us > $3 AND time_min_us < $4",
            since_us,
            before_us,
        ),
    };
    let sql = format!(
        "SELECT seq, false AS log, subject, event_count, events FROM event_chunks \
         WHERE workspace_id = $1 AND subject = ANY($2) AND {bound} \
         UNION ALL \
         SELECT seq, true, subject, event_count, events FROM event_chunks \
         WHERE workspace_id = $1 AND subject IS NULL AND {bound}"
    );
    sqlx::query_as(&sql)
        .bind(workspace_id)
        .bind(subjects)
        .bind(low)
        .bind(high)
        .fetch_all(pool)
        .await
}
