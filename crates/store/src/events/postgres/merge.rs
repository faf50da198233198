//! Merging a subject's small chunks on PostgreSQL (`events/merge.rs` says which and why).

use sqlx::{PgConnection, PgPool};

use super::{advance, catch_up, insert_chunks, lock_workspace, KeyCache};
use crate::events::merge::{self, StoredSubjectChunk};
use crate::events::plan::NewChunk;
use crate::events::{MergeEventsError, Merged};

/// Merging on PostgreSQL: under the workspace's lock, as compaction, so that two nodes never
/// merge the same chunks and the merged chunk's `seq` is drawn in commit order. The merged chunk
/// holds the keys of the chunks it replaces: a node that read those has its keys, and a node
/// that had not reads the merged chunk (its `seq` is above every watermark).
pub(in crate::events) async fn merge(
    pool: &PgPool,
    cache: &tokio::sync::Mutex<KeyCache>,
    workspace_id: &str,
    subjects: &[String],
    events_max: i64,
) -> Result<Merged, MergeEventsError> {
    let database = MergeEventsError::Database;
    let mut cache = cache.lock().await;
    let mut transaction = pool.begin().await.map_err(database)?;
    lock_workspace(&mut transaction, workspace_id)
        .await
        .map_err(database)?;
    catch_up(&mut transaction, &mut cache, workspace_id)
        .await
        .map_err(database)?;
    let rows: Vec<merge::ShapeRow> = sqlx::query_as(
        "SELECT subject, seq, event_count::int8, octet_length(events)::int8, time_min_us, \
         time_max_us FROM event_chunks WHERE workspace_id = $1 AND subject = ANY($2) \
         ORDER BY subject, seq",
    )
    .bind(workspace_id)
    .bind(subjects)
    .fetch_all(&mut *transaction)
    .await
    .map_err(database)?;
    let plan = merge::plan_subjects(&merge::shapes_by_subject(rows), subjects, events_max);
    let merged = Merged {
        outcome: plan.outcome,
        put_off: plan.put_off,
    };
    if plan.seqs.is_empty() {
        return Ok(merged);
    }
    let sources = subject_chunks(&mut transaction, workspace_id, &plan.seqs)
        .await
        .map_err(database)?;
    if sources.len() != plan.seqs.len() {
        return Err(MergeEventsError::ChunksChanged);
    }
    let new_chunks = merge::by_subject(sources)
        .iter()
        .map(|group| merge::concatenate(workspace_id, group))
        .collect::<Result<Vec<NewChunk>, _>>()?;
    let written = insert_chunks(&mut transaction, &new_chunks)
        .await
        .map_err(database)?;
    let deleted = sqlx::query(
        "DELETE FROM event_chunks \
         WHERE workspace_id = $1 AND subject IS NOT NULL AND seq = ANY($2)",
    )
    .bind(workspace_id)
    .bind(&plan.seqs)
    .execute(&mut *transaction)
    .await
    .map_err(database)?
    .rows_affected();
    if deleted != u64::try_from(plan.seqs.len()).expect("usize fits in u64") {
        // Rolled back on drop: nothing is merged.
        return Err(MergeEventsError::ChunksChanged);
    }
    transaction.commit().await.map_err(database)?;
    advance(&mut cache, written);
    Ok(merged)
}

/// The subject chunks of `workspace_id` with these seqs, whole, by subject and seq.
async fn subject_chunks(
    connection: &mut PgConnection,
    workspace_id: &str,
    seqs: &[i64],
) -> Result<Vec<StoredSubjectChunk>, sqlx::Error> {
    sqlx::query_as(
        "SELECT seq, subject, time_min_us, time_max_us, ingested_max_us, event_count, \
         key_hashes, events FROM event_chunks \
         WHERE workspace_id = $1 AND subject IS NOT NULL AND seq = ANY($2) \
         ORDER BY subject, seq",
    )
    .bind(workspace_id)
    .bind(seqs)
    .fetch_all(connection)
    .await
}
