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

use super::plan::{self, NewChunk};
use super::{Batch, ChunkFilter, ChunkRow, InsertOutcome};

pub(super) async fn insert_batches(
    pool: &PgPool,
    batches: &[Batch<'_>],
    ingested_at: Timestamp,
) -> Result<Vec<InsertOutcome>, sqlx::Error> {
    let hashes = plan::key_hashes(batches);
    let candidates = plan::distinct_keys(batches, &hashes);
    let (workspace_ids, key_hashes): (Vec<&str>, Vec<Vec<u8>>) = candidates
        .iter()
        .map(|&(workspace_id, hash)| (workspace_id, hash.to_le_bytes().to_vec()))
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
    assert_eq!(
        plan.new_keys.len(),
        new.len(),
        "every new key is stored once"
    );
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
    let subjects: Vec<&str> = chunks.iter().map(|c| c.subject.as_str()).collect();
    let counts: Vec<i32> = chunks.iter().map(|c| c.event_count).collect();
    let key_hashes: Vec<&[u8]> = chunks.iter().map(|c| c.key_hashes.as_slice()).collect();
    let events: Vec<&[u8]> = chunks.iter().map(|c| c.events.as_slice()).collect();
    sqlx::query(
        "INSERT INTO event_chunks (workspace_id, subject, time_min_us, time_max_us, \
           ingested_at_us, event_count, key_hashes, events) \
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[], $5::int8[], \
           $6::int4[], $7::bytea[], $8::bytea[])",
    )
    .bind(&workspace_ids)
    .bind(&subjects)
    .bind(column(|c| c.time_min_us))
    .bind(column(|c| c.time_max_us))
    .bind(column(|c| c.ingested_at_us))
    .bind(&counts)
    .bind(&key_hashes)
    .bind(&events)
    .execute(connection)
    .await
    .map(drop)
}

pub(super) async fn select_chunks(
    pool: &PgPool,
    workspace_id: &str,
    subjects: &[String],
    filter: ChunkFilter,
) -> Result<Vec<ChunkRow>, sqlx::Error> {
    let query = match filter {
        ChunkFilter::Period { from_us, to_us } => sqlx::query_as(
            "SELECT seq, subject, events FROM event_chunks \
             WHERE workspace_id = $1 AND subject = ANY($2) \
               AND time_max_us >= $3 AND time_min_us <= $4",
        )
        .bind(workspace_id)
        .bind(subjects)
        .bind(from_us)
        .bind(to_us),
        ChunkFilter::IngestedAfter { since_us } => sqlx::query_as(
            "SELECT seq, subject, events FROM event_chunks \
             WHERE workspace_id = $1 AND subject = ANY($2) AND ingested_at_us > $3",
        )
        .bind(workspace_id)
        .bind(subjects)
        .bind(since_us),
    };
    let rows: Vec<(i64, String, Vec<u8>)> = query.fetch_all(pool).await?;
    Ok(rows
        .into_iter()
        .map(|(seq, subject, events)| ChunkRow {
            seq,
            subject,
            events,
        })
        .collect())
}
