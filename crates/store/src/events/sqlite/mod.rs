//! Event queries in SQLite's dialect, and the writer's in-memory key cache.
//!
//! SQLite has one writer at a time. The writer that holds the write lock decides exactly-once
//! from [`KeyCache`], the key hashes of every stored chunk, kept in memory: a random-order
//! on-disk index would cost a random B-tree insert per event (DESIGN.md §6). The cache is only a
//! copy: inside each write transaction, before deciding, the writer reads the key hashes of the
//! chunks appended since it last looked (by another process, such as `billow ingest`, or another
//! `Store`), so its decision always rests on every committed key.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

use futures_util::TryStreamExt;
use jiff::Timestamp;
use sqlx::pool::PoolConnection;
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::codec::decode_key_hashes;
use super::plan::{self, NewChunk, StoredChunk};
use super::read::ChunkRow;
use super::{Batch, ChunkFilter, CompactEventsError, Compacted, InsertOutcome, KeyHasher};

mod merge;

pub(super) use merge::merge;

/// Chunk rows per multi-row INSERT: 8 parameters each, far below SQLite's 32,766.
const INSERT_ROWS_MAX: usize = 256;

/// The key hashes of the stored chunks, per workspace, and how far they have been read.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    /// Every chunk with a `seq` up to this one has its keys in `keys`.
    read_through_seq: i64,
    keys: HashMap<String, HashSet<u128, BuildHasherDefault<KeyHasher>>>,
}

impl KeyCache {
    fn contains(&self, workspace_id: &str, hash: u128) -> bool {
        self.keys
            .get(workspace_id)
            .is_some_and(|keys| keys.contains(&hash))
    }

    fn add(&mut self, workspace_id: &str, hashes: impl IntoIterator<Item = u128>) {
        if !self.keys.contains_key(workspace_id) {
            self.keys
                .insert(workspace_id.to_owned(), HashSet::default());
        }
        let keys = self.keys.get_mut(workspace_id).expect("inserted above");
        keys.extend(hashes);
    }
}

pub(super) async fn insert_batches(
    pool: &SqlitePool,
    cache: &tokio::sync::Mutex<KeyCache>,
    batches: &[Batch<'_>],
    ingested_at: Timestamp,
) -> Result<Vec<InsertOutcome>, sqlx::Error> {
    // Hashing needs no lock.
    let hashes = plan::key_hashes(batches);
    // One writer per store at a time: SQLite would serialize them anyway.
    let mut cache = cache.lock().await;
    let mut connection = durable_connection(pool).await?;
    let result =
        write_transaction(&mut connection, &mut cache, batches, &hashes, ingested_at).await;
    restore_synchronous(&mut connection).await?;
    result
}

/// A pooled connection set to sync the WAL on every commit (`synchronous=FULL`), so that an
/// acknowledged event survives a power loss. Set per transaction: the pool's connections run at
/// NORMAL for everything else.
async fn durable_connection(pool: &SqlitePool) -> Result<PoolConnection<Sqlite>, sqlx::Error> {
    let mut connection = pool.acquire().await?;
    sqlx::query("PRAGMA synchronous = FULL")
        .execute(&mut *connection)
        .await?;
    Ok(connection)
}

async fn restore_synchronous(connection: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(connection)
        .await
        .map(drop)
}

async fn write_transaction(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
    batches: &[Batch<'_>],
    hashes: &[Vec<u128>],
    ingested_at: Timestamp,
) -> Result<Vec<InsertOutcome>, sqlx::Error> {
    // IMMEDIATE takes the write lock now, so that no other writer appends between the catch-up
    // and the insert.
    let mut transaction = connection.begin_with("BEGIN IMMEDIATE").await?;
    catch_up(&mut transaction, cache).await?;
    let plan = plan::plan(
        batches,
        hashes,
        |workspace_id, hash| cache.contains(workspace_id, hash),
        ingested_at,
    );
    insert_all_chunks(&mut transaction, plan.chunks).await?;
    let last_seq = max_seq(&mut transaction).await?;
    transaction.commit().await?;
    // Only what is committed enters the cache.
    for (workspace_id, hashes) in plan.new_keys {
        cache.add(&workspace_id, hashes);
    }
    cache.read_through_seq = last_seq;
    Ok(plan.outcomes)
}

async fn max_seq(connection: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    let seq: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM event_chunks")
        .fetch_one(connection)
        .await?;
    Ok(seq.unwrap_or(0))
}

/// Reads the keys of the chunks written since the cache last looked. A chunk made by compaction
/// has a larger seq than the log chunks it replaced, so no key can hide below the watermark.
async fn catch_up(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
) -> Result<(), sqlx::Error> {
    let mut rows = sqlx::query(
        "SELECT seq, workspace_id, key_hashes FROM event_chunks WHERE seq > ?1 ORDER BY seq",
    )
    .bind(cache.read_through_seq)
    .fetch(&mut *connection);
    while let Some(row) = rows.try_next().await? {
        let seq: i64 = row.try_get(0)?;
        let workspace_id: &str = row.try_get(1)?;
        let bytes: &[u8] = row.try_get(2)?;
        let hashes =
            decode_key_hashes(bytes).map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        cache.add(workspace_id, hashes);
        cache.read_through_seq = seq;
    }
    Ok(())
}

/// Inserts `chunks`, [`INSERT_ROWS_MAX`] rows per statement. Taken by value: the BLOBs move into
/// the statement's arguments instead of being copied.
async fn insert_all_chunks(
    connection: &mut SqliteConnection,
    mut chunks: Vec<NewChunk>,
) -> Result<(), sqlx::Error> {
    while !chunks.is_empty() {
        let rest = chunks.split_off(chunks.len().min(INSERT_ROWS_MAX));
        insert_chunks(connection, chunks).await?;
        chunks = rest;
    }
    Ok(())
}

async fn insert_chunks(
    connection: &mut SqliteConnection,
    rows: Vec<NewChunk>,
) -> Result<(), sqlx::Error> {
    let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
        "INSERT INTO event_chunks (workspace_id, subject, time_min_us, time_max_us, \
         ingested_max_us, event_count, key_hashes, events) ",
    );
    query.push_values(rows, |mut values, chunk| {
        values
            .push_bind(chunk.workspace_id)
            .push_bind(chunk.subject)
            .push_bind(chunk.time_min_us)
            .push_bind(chunk.time_max_us)
            .push_bind(chunk.ingested_max_us)
            .push_bind(chunk.event_count)
            .push_bind(chunk.key_hashes)
            .push_bind(chunk.events);
    });
    query.build().execute(connection).await.map(drop)
}

pub(super) async fn compact(
    pool: &SqlitePool,
    cache: &tokio::sync::Mutex<KeyCache>,
    events_max: i64,
) -> Result<Compacted, CompactEventsError> {
    // Under the writer's lock: compaction writes, and keeps the cache's watermark current.
    let mut cache = cache.lock().await;
    let mut connection = durable_connection(pool)
        .await
        .map_err(CompactEventsError::Database)?;
    let result = compact_transaction(&mut connection, &mut cache, events_max).await;
    restore_synchronous(&mut connection)
        .await
        .map_err(CompactEventsError::Database)?;
    result
}

async fn compact_transaction(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
    events_max: i64,
) -> Result<Compacted, CompactEventsError> {
    let database = CompactEventsError::Database;
    let mut transaction = connection
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(database)?;
    catch_up(&mut transaction, cache).await.map_err(database)?;
    let log_chunks = oldest_log_chunks(&mut transaction, events_max)
        .await
        .map_err(database)?;
    let Some(last) = log_chunks.last() else {
        return Ok(Compacted {
            moved: 0,
            subjects: Vec::new(),
        });
    };
    let last_seq = last.seq;
    let subject_chunks = plan::compact(&log_chunks)?;
    let moved: i64 = subject_chunks
        .iter()
        .map(|chunk| i64::from(chunk.event_count))
        .sum();
    let subjects = written_subjects(&subject_chunks);
    insert_all_chunks(&mut transaction, subject_chunks)
        .await
        .map_err(database)?;
    sqlx::query("DELETE FROM event_chunks WHERE subject IS NULL AND seq <= ?1")
        .bind(last_seq)
        .execute(&mut *transaction)
        .await
        .map_err(database)?;
    let new_last_seq = max_seq(&mut transaction).await.map_err(database)?;
    transaction.commit().await.map_err(database)?;
    // The new chunks hold keys the cache has (it caught up above): no need to read them again.
    cache.read_through_seq = new_last_seq;
    Ok(Compacted {
        moved: u64::try_from(moved).expect("event counts are positive"),
        subjects,
    })
}

/// The (workspace, subject) of each subject chunk.
pub(super) fn written_subjects(chunks: &[NewChunk]) -> Vec<(String, String)> {
    chunks
        .iter()
        .filter_map(|chunk| Some((chunk.workspace_id.clone(), chunk.subject.clone()?)))
        .collect()
}

/// The oldest log chunks whose events add up to about `events_max` (at least one chunk).
async fn oldest_log_chunks(
    connection: &mut SqliteConnection,
    events_max: i64,
) -> Result<Vec<StoredChunk>, sqlx::Error> {
    let rows: Vec<(i64, String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT seq, workspace_id, key_hashes, events FROM ( \
           SELECT seq, workspace_id, key_hashes, events, \
                  sum(event_count) OVER (ORDER BY seq) - event_count AS before \
           FROM event_chunks WHERE subject IS NULL \
         ) WHERE before < ?1 ORDER BY seq",
    )
    .bind(events_max)
    .fetch_all(connection)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, workspace_id, key_hashes, events)| StoredChunk {
            seq,
            workspace_id,
            key_hashes,
            events,
        })
        .collect())
}

/// Subjects per chunk query: an `IN` list far below SQLite's 32,766 parameters.
const SUBJECTS_PER_QUERY: usize = 1_000;

#[tracing::instrument(skip_all)]
pub(super) async fn select_chunks(
    pool: &SqlitePool,
    workspace_id: &str,
    subjects: &[String],
    filter: ChunkFilter,
) -> Result<Vec<ChunkRow>, sqlx::Error> {
    // One transaction, so that compaction (which moves events from log chunks to subject chunks)
    // cannot make an event appear twice or not at all between the queries.
    let mut transaction = pool.begin().await?;
    let mut chunks = Vec::new();
    let distinct: Vec<&str> = subjects
        .iter()
        .map(String::as_str)
        .collect::<HashSet<&str>>()
        .into_iter()
        .collect();
    // Subject chunks by an indexed `IN` list (SQLite looks each subject up in the index), in
    // pieces that stay far below its limit on parameters; then the log chunks not compacted
    // yet (subject NULL), which hold every subject.
    let pieces = distinct.chunks(SUBJECTS_PER_QUERY).map(Some).chain([None]);
    for piece in pieces {
        let mut builder = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT seq, subject IS NULL AS log, subject, event_count, events FROM event_chunks \
             WHERE workspace_id = ",
        );
        builder.push_bind(workspace_id);
        match piece {
            Some(piece) => {
                builder.push(" AND subject IN (");
                let mut separated = builder.separated(", ");
                for subject in piece {
                    separated.push_bind(*subject);
                }
                builder.push(")");
            }
            None => {
                builder.push(" AND subject IS NULL");
            }
        }
        match filter {
            ChunkFilter::Period { from_us, to_us, .. } => {
                builder.push(" AND time_max_us >= ").push_bind(from_us);
                builder.push(" AND time_min_us <= ").push_bind(to_us);
            }
            ChunkFilter::IngestedAfter { since_us } => {
                builder.push(" AND ingested_max_us > ").push_bind(since_us);
            }
        }
        let rows: Vec<ChunkRow> = builder
            .build_query_as()
            .fetch_all(&mut *transaction)
            .await?;
        chunks.extend(rows);
    }
    transaction.commit().await?;
    Ok(chunks)
}
