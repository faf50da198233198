//! Event queries in PostgreSQL's dialect.
//!
//! Any number of billow nodes write to one PostgreSQL, so exactly-once is the database's: the
//! primary key of `event_keys`. Each transaction inserts its candidate keys with
//! `ON CONFLICT DO NOTHING RETURNING`, which answers exactly the keys that were new (a concurrent
//! transaction with the same key waits for this one to finish), then appends the chunks of the
//! events with those keys.

use std::collections::HashSet;

use jiff::Timestamp;
use sqlx::PgPool;

use super::plan::{self, NewChunk, StoredChunk};
use super::{Batch, ChunkFilter, ChunkRow, CompactEventsError, InsertOutcome};

pub(super) async fn insert_batches(
    pool: &PgPool,
    batches: &[Batch<'_>],
    ingested_at: Timestamp,
) -> Result<Vec<InsertOutcome>, sqlx::Error> {
    let hashes = plan::key_hashes(batches);
    let mut candidates: Vec<(&str, [u8; 16])> = plan::distinct_keys(batches, &hashes)
        .into_iter()
        .map(|(workspace_id, hash)| (workspace_id, hash.to_le_bytes()))
        .collect();
    // In index order: consecutive inserts land on the same or neighbouring B-tree pages.
    candidates.sort_unstable();
    let (workspace_ids, key_hashes): (Vec<&str>, Vec<Vec<u8>>) = candidates
        .iter()
        .map(|&(workspace_id, hash)| (workspace_id, hash.to_vec()))
        .unzip();
    let mut transaction = pool.begin().await?;
    let inserted: Vec<(String, Vec<u8>)> = sqlx::query_as(
        "INSERT INTO event_keys (workspace_id, key_hash) \
         SELECT * FROM UNNEST($1::text[], $2::bytea[]) \
         ON CONFLICT DO NOTHING \
         RETURNING workspace_id, key_hash",
    )
    .bind(&workspace_ids)
    .bind(&key_hashes)
    .fetch_all(&mut *transaction)
    .await?;
    // Borrowed from the batches, so the lookup per event allocates nothing.
    let workspace_of = |stored: &str| {
        batches
            .iter()
            .map(|batch| batch.workspace_id.as_str())
            .find(|workspace_id| *workspace_id == stored)
            .ok_or_else(|| sqlx::Error::Protocol("RETURNING named another workspace".into()))
    };
    let new: HashSet<(&str, u128)> = inserted
        .iter()
        .map(|(workspace_id, hash)| {
            let hash: [u8; 16] = hash
                .as_slice()
                .try_into()
                .map_err(|_| sqlx::Error::Protocol("a stored key hash is not 16 bytes".into()))?;
            Ok((workspace_of(workspace_id)?, u128::from_le_bytes(hash)))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    let plan = plan::plan(
        batches,
        &hashes,
        |workspace_id, hash| !new.contains(&(workspace_id, hash)),
        ingested_at,
    );
    let planned_keys: usize = plan.new_keys.iter().map(|(_, hashes)| hashes.len()).sum();
    assert_eq!(planned_keys, new.len(), "every new key is stored once");
    insert_chunks(&mut transaction, &plan.chunks).await?;
    transaction.commit().await?;
    Ok(plan.outcomes)
}

async fn insert_chunks(
    connection: &mut sqlx::PgConnection,
    chunks: &[NewChunk],
) -> Result<(), sqlx::Error> {
    if chunks.is_empty() {
        return Ok(());
    }
    let column = |get: fn(&NewChunk) -> i64| chunks.iter().map(get).collect::<Vec<i64>>();
    let workspace_ids: Vec<&str> = chunks.iter().map(|c| c.workspace_id.as_str()).collect();
    let subjects: Vec<Option<&str>> = chunks.iter().map(|c| c.subject.as_deref()).collect();
    let counts: Vec<i32> = chunks.iter().map(|c| c.event_count).collect();
    let key_hashes: Vec<&[u8]> = chunks.iter().map(|c| c.key_hashes.as_slice()).collect();
    let events: Vec<&[u8]> = chunks.iter().map(|c| c.events.as_slice()).collect();
    sqlx::query(
        "INSERT INTO event_chunks (workspace_id, subject, time_min_us, time_max_us, \
           ingested_max_us, event_count, key_hashes, events) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], \
           $6::int4[], $7::bytea[], $8::bytea[])",
    )
    .bind(&workspace_ids)
    .bind(&subjects)
    .bind(column(|c| c.time_min_us))
    .bind(column(|c| c.time_max_us))
    .bind(column(|c| c.ingested_max_us))
    .bind(&counts)
    .bind(&key_hashes)
    .bind(&events)
    .execute(connection)
    .await
    .map(drop)
}

/// Compaction on PostgreSQL: the oldest log chunks are claimed with `FOR UPDATE SKIP LOCKED`, so
/// that nodes compacting at once take different ones; the keys stay in `event_keys`.
pub(super) async fn compact(pool: &PgPool, events_max: i64) -> Result<u64, CompactEventsError> {
    let database = CompactEventsError::Database;
    let mut transaction = pool.begin().await.map_err(database)?;
    let rows: Vec<(i64, String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "WITH claimed AS ( \
           SELECT workspace_id, seq, event_count FROM event_chunks \
           WHERE subject IS NULL ORDER BY seq LIMIT 1024 FOR UPDATE SKIP LOCKED \
         ), counted AS ( \
           SELECT workspace_id, seq, \
                  sum(event_count) OVER (ORDER BY seq) - event_count AS before \
           FROM claimed \
         ) \
         SELECT c.seq, c.workspace_id, c.key_hashes, c.events \
         FROM event_chunks c JOIN counted USING (workspace_id, seq) \
         WHERE counted.before < $1 ORDER BY c.seq",
    )
    .bind(events_max)
    .fetch_all(&mut *transaction)
    .await
    .map_err(database)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let log_chunks: Vec<StoredChunk> = rows
        .into_iter()
        .map(|(seq, workspace_id, key_hashes, events)| StoredChunk {
            seq,
            workspace_id,
            key_hashes,
            events,
        })
        .collect();
    let subject_chunks = plan::compact(&log_chunks)?;
    insert_chunks(&mut transaction, &subject_chunks)
        .await
        .map_err(database)?;
    let workspace_ids: Vec<&str> = log_chunks.iter().map(|c| c.workspace_id.as_str()).collect();
    let seqs: Vec<i64> = log_chunks.iter().map(|c| c.seq).collect();
    sqlx::query(
        "DELETE FROM event_chunks WHERE subject IS NULL \
           AND (workspace_id, seq) IN (SELECT * FROM UNNEST($1::text[], $2::int8[]))",
    )
    .bind(&workspace_ids)
    .bind(&seqs)
    .execute(&mut *transaction)
    .await
    .map_err(database)?;
    transaction.commit().await.map_err(database)?;
    let moved: i64 = subject_chunks
        .iter()
        .map(|chunk| i64::from(chunk.event_count))
        .sum();
    Ok(u64::try_from(moved).expect("event counts are positive"))
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
    };
    let sql = format!(
        "SELECT seq, events FROM event_chunks \
         WHERE workspace_id = $1 AND subject = ANY($2) AND {bound} \
         UNION ALL \
         SELECT seq, events FROM event_chunks \
         WHERE workspace_id = $1 AND subject IS NULL AND {bound}"
    );
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(&sql)
        .bind(workspace_id)
        .bind(subjects)
        .bind(low)
        .bind(high)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(seq, events)| ChunkRow { seq, events })
        .collect())
}
