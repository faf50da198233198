//! Event queries in SQLite's dialect, and the writer's in-memory key cache.
//!
//! SQLite has one writer at a time. The writer that holds the write lock decides exactly-once
//! from [`KeyCache`], the key hashes of every stored chunk, kept in memory: a random-order
//! on-disk index would cost a random B-tree insert per event (DESIGN.md §6). The cache is only a
//! copy: inside each write transaction, before deciding, the writer reads the key hashes of the
//! chunks appended since it last looked (by another process, such as `billow ingest`, or another
//! `Store`), so its decision always rests on every committed key.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

use futures_util::TryStreamExt;
use jiff::Timestamp;
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::codec::decode_key_hashes;
use super::plan::{self, NewChunk};
use super::{Batch, ChunkFilter, ChunkRow, InsertOutcome};

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

/// The keys are SHA-256 output already: hashing them again would only cost time.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u128(&mut self, value: u128) {
        // Truncation intended: the low 64 bits of a uniform hash are uniform.
        self.0 = value as u64;
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
    let mut connection = pool.acquire().await?;
    // FULL: the commit syncs the WAL, so an acknowledged event survives a power loss. Set per
    // transaction, because the pool's connections run at NORMAL for everything else.
    sqlx::query("PRAGMA synchronous = FULL")
        .execute(&mut *connection)
        .await?;
    let result =
        write_transaction(&mut connection, &mut cache, batches, &hashes, ingested_at).await;
    sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(&mut *connection)
        .await?;
    result
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
    for rows in plan.chunks.chunks(INSERT_ROWS_MAX) {
        insert_chunks(&mut transaction, rows).await?;
    }
    let last_seq: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM event_chunks")
        .fetch_one(&mut *transaction)
        .await?;
    transaction.commit().await?;
    // Only what is committed enters the cache.
    for (workspace_id, hash) in plan.new_keys {
        cache.add(&workspace_id, [hash]);
    }
    cache.read_through_seq = last_seq.unwrap_or(0);
    Ok(plan.outcomes)
}

/// Reads the keys of the chunks appended since the cache last looked.
async fn catch_up(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
) -> Result<(), sqlx::Error> {
    let mut rows = sqlx::query(
        "SELECT seq, workspace_id, key_hashes FROM event_chunks WHERE seq > ?1 ORDER BY seq",
    )
    .bind(cache.read_through_seq)
    .fetch(&mut *connection);
    let mut read_through_seq = cache.read_through_seq;
    let mut loaded = KeyCache::default();
    while let Some(row) = rows.try_next().await? {
        let seq: i64 = row.try_get(0)?;
        let workspace_id: String = row.try_get(1)?;
        let bytes: &[u8] = row.try_get(2)?;
        let hashes =
            decode_key_hashes(bytes).map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
        loaded.add(&workspace_id, hashes);
        read_through_seq = seq;
    }
    drop(rows);
    for (workspace_id, hashes) in loaded.keys {
        cache.add(&workspace_id, hashes);
    }
    cache.read_through_seq = read_through_seq;
    Ok(())
}

async fn insert_chunks(
    connection: &mut SqliteConnection,
    rows: &[NewChunk],
) -> Result<(), sqlx::Error> {
    let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
        "INSERT INTO event_chunks (workspace_id, subject, time_min_us, time_max_us, \
         ingested_at_us, event_count, key_hashes, events) ",
    );
    query.push_values(rows, |mut values, chunk| {
        values
            .push_bind(&chunk.workspace_id)
            .push_bind(&chunk.subject)
            .push_bind(chunk.time_min_us)
            .push_bind(chunk.time_max_us)
            .push_bind(chunk.ingested_at_us)
            .push_bind(chunk.event_count)
            .push_bind(&chunk.key_hashes)
            .push_bind(&chunk.events);
    });
    query.build().execute(connection).await.map(drop)
}

pub(super) async fn select_chunks(
    pool: &SqlitePool,
    workspace_id: &str,
    subjects: &[String],
    filter: ChunkFilter,
) -> Result<Vec<ChunkRow>, sqlx::Error> {
    let mut chunks = Vec::new();
    // One indexed query per subject: callers ask for a customer and its few resources.
    let distinct: HashSet<&String> = subjects.iter().collect();
    for subject in distinct {
        let query = match filter {
            ChunkFilter::Period { from_us, to_us } => sqlx::query_as(
                "SELECT seq, subject, events FROM event_chunks \
                 WHERE workspace_id = ?1 AND subject = ?2 \
                   AND time_max_us >= ?3 AND time_min_us <= ?4",
            )
            .bind(workspace_id)
            .bind(subject)
            .bind(from_us)
            .bind(to_us),
            ChunkFilter::IngestedAfter { since_us } => sqlx::query_as(
                "SELECT seq, subject, events FROM event_chunks \
                 WHERE workspace_id = ?1 AND subject = ?2 AND ingested_at_us > ?3",
            )
            .bind(workspace_id)
            .bind(subject)
            .bind(since_us),
        };
        let rows: Vec<(i64, String, Vec<u8>)> = query.fetch_all(pool).await?;
        chunks.extend(rows.into_iter().map(|(seq, subject, events)| ChunkRow {
            seq,
            subject,
            events,
        }));
    }
    Ok(chunks)
}
