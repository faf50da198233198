//! Merging a subject's small chunks on SQLite (`events/merge.rs` says which and why).

use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};

use super::{
    begin_caught_up, insert_all_chunks, max_seq, on_writer, push_seqs, Commit, KeyCache,
    SEQS_PER_QUERY,
};
use crate::events::merge::{self, StoredSubjectChunk};
use crate::events::plan::NewChunk;
use crate::events::{MergeEventsError, Merged};

pub(in crate::events) async fn merge(
    pool: &SqlitePool,
    cache: &tokio::sync::Mutex<KeyCache>,
    workspace_id: &str,
    subjects: &[String],
    events_max: i64,
) -> Result<Merged, MergeEventsError> {
    // Read and concatenated beside the writer's commits, on a pooled connection's snapshot; only
    // the write takes the writer's lock.
    let (merged, prepared) = prepare(pool, workspace_id, subjects, events_max).await?;
    let Some(prepared) = prepared else {
        return Ok(merged);
    };
    on_writer(
        pool,
        cache,
        MergeEventsError::Database,
        async |connection, cache| {
            write_merged(connection, cache, workspace_id, subjects, prepared).await
        },
    )
    .await?;
    Ok(merged)
}

/// Merged chunks ready to write: the `seq`s of the chunks they replace, and the largest `seq`
/// among all the chunks of their subjects when they were read.
struct Prepared {
    new_chunks: Vec<NewChunk>,
    seqs: Vec<i64>,
    newest_seq: i64,
}

/// Chooses the chunks to merge ([`merge::plan_subjects`]) and concatenates them, from one
/// snapshot of the database.
async fn prepare(
    pool: &SqlitePool,
    workspace_id: &str,
    subjects: &[String],
    events_max: i64,
) -> Result<(Merged, Option<Prepared>), MergeEventsError> {
    let database = MergeEventsError::Database;
    let mut transaction = pool.begin().await.map_err(database)?;
    let shapes = chunk_shapes(&mut transaction, workspace_id, subjects)
        .await
        .map_err(database)?;
    let newest_seq = shapes
        .iter()
        .flat_map(|(_, chunks)| chunks.iter().map(|chunk| chunk.seq))
        .max()
        .unwrap_or(0);
    let plan = merge::plan_subjects(&shapes, subjects, events_max);
    let merged = Merged {
        outcome: plan.outcome,
        put_off: plan.put_off,
    };
    if plan.seqs.is_empty() {
        return Ok((merged, None));
    }
    let mut sources = Vec::with_capacity(plan.seqs.len());
    for piece in plan.seqs.chunks(SEQS_PER_QUERY) {
        sources.extend(
            subject_chunks(&mut transaction, piece)
                .await
                .map_err(database)?,
        );
    }
    transaction.commit().await.map_err(database)?;
    if sources.len() != plan.seqs.len() {
        return Err(MergeEventsError::ChunksChanged);
    }
    let owner = workspace_id.to_owned();
    let new_chunks = tokio::task::spawn_blocking(move || {
        merge::by_subject(sources)
            .iter()
            .map(|group| merge::concatenate(&owner, group))
            .collect::<Result<Vec<NewChunk>, _>>()
    })
    .await
    .map_err(|error| MergeEventsError::Panicked(error.to_string()))??;
    Ok((
        merged,
        Some(Prepared {
            new_chunks,
            seqs: plan.seqs,
            newest_seq,
        }),
    ))
}

/// Replaces the chunks a merge read with the merged ones, if they are all still there and no
/// chunk of their subjects came since: a newer chunk must stay after the merged one, which gets
/// the largest `seq`. The merged chunks hold the same events and key hashes, so the key cache
/// (caught up under the write lock) already has their keys; a cache elsewhere whose watermark is
/// below the replaced chunks reads the merged ones instead, never neither.
async fn write_merged(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
    workspace_id: &str,
    subjects: &[String],
    prepared: Prepared,
) -> Result<(), MergeEventsError> {
    let database = MergeEventsError::Database;
    let mut transaction = begin_caught_up(connection, cache).await.map_err(database)?;
    if newer_chunks(
        &mut transaction,
        workspace_id,
        subjects,
        prepared.newest_seq,
    )
    .await
    .map_err(database)?
    {
        // Rolled back on drop: nothing is merged.
        return Err(MergeEventsError::ChunksChanged);
    }
    insert_all_chunks(&mut transaction, &prepared.new_chunks, Commit::No)
        .await
        .map_err(database)?;
    let mut deleted = 0;
    for piece in prepared.seqs.chunks(SEQS_PER_QUERY) {
        deleted += delete_subject_chunks(&mut transaction, piece)
            .await
            .map_err(database)?;
    }
    if deleted != u64::try_from(prepared.seqs.len()).expect("usize fits in u64") {
        return Err(MergeEventsError::ChunksChanged);
    }
    let new_last_seq = max_seq(&mut transaction).await.map_err(database)?;
    transaction.commit().await.map_err(database)?;
    cache.read_through_seq = new_last_seq;
    Ok(())
}

/// Whether a chunk of `subjects` has a `seq` above `seq`, or is pending.
pub(super) async fn newer_chunks(
    connection: &mut SqliteConnection,
    workspace_id: &str,
    subjects: &[String],
    seq: i64,
) -> Result<bool, sqlx::Error> {
    let mut builder = QueryBuilder::<Sqlite>::new(
        "SELECT EXISTS (SELECT 1 FROM event_chunks WHERE workspace_id = ",
    );
    builder.push_bind(workspace_id).push(" AND subject IN (");
    let mut separated = builder.separated(", ");
    for subject in subjects {
        separated.push_bind(subject.as_str());
    }
    // A chunk still pending (a compaction in slices of another process) counts as newer: it
    // will be made visible with a smaller seq than the merged chunk's, holding newer events.
    builder
        .push(") AND (seq > ")
        .push_bind(seq)
        .push(" OR seq IN (SELECT seq FROM event_chunks_pending)))");
    builder.build_query_scalar().fetch_one(connection).await
}

/// The size of every chunk of `subjects`, by subject, in seq order.
pub(super) async fn chunk_shapes(
    connection: &mut SqliteConnection,
    workspace_id: &str,
    subjects: &[String],
) -> Result<Vec<(String, Vec<merge::ChunkShape>)>, sqlx::Error> {
    let mut builder = QueryBuilder::<Sqlite>::new(
        "SELECT subject, seq, event_count, length(events), time_min_us, time_max_us \
         FROM event_chunks WHERE workspace_id = ",
    );
    builder.push_bind(workspace_id).push(" AND subject IN (");
    let mut separated = builder.separated(", ");
    for subject in subjects {
        separated.push_bind(subject.as_str());
    }
    builder.push(") AND seq NOT IN (SELECT seq FROM event_chunks_pending) ORDER BY subject, seq");
    let rows = builder.build_query_as().fetch_all(connection).await?;
    Ok(merge::shapes_by_subject(rows))
}

/// The subject chunks with these seqs, whole, by subject and seq.
async fn subject_chunks(
    connection: &mut SqliteConnection,
    seqs: &[i64],
) -> Result<Vec<StoredSubjectChunk>, sqlx::Error> {
    let mut builder = QueryBuilder::<Sqlite>::new(
        "SELECT seq, subject, time_min_us, time_max_us, ingested_max_us, event_count, \
         key_hashes, events FROM event_chunks WHERE subject IS NOT NULL AND seq ",
    );
    push_seqs(&mut builder, seqs);
    builder.push(" ORDER BY subject, seq");
    builder.build_query_as().fetch_all(connection).await
}

async fn delete_subject_chunks(
    connection: &mut SqliteConnection,
    seqs: &[i64],
) -> Result<u64, sqlx::Error> {
    let mut builder =
        QueryBuilder::<Sqlite>::new("DELETE FROM event_chunks WHERE subject IS NOT NULL AND seq ");
    push_seqs(&mut builder, seqs);
    Ok(builder.build().execute(connection).await?.rows_affected())
}
