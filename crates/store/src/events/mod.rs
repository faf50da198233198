//! Usage events: stored exactly once per (source, id), read back by subject and period.
//!
//! [`Store::insert_events`] writes a batch in one transaction; [`EventWriter`] group-commits the
//! batches of concurrent callers (the ingestion endpoint). [`Store::usage_events`] and
//! [`Store::usage_events_ingested_after`] read them back as [`billow_core::UsageEvent`]s.
//!
//! Events are stored in *chunks*, one per (workspace, subject) per commit, so that writes append
//! instead of inserting one random-keyed row per event (migrations/*/0003_events.sql and
//! docs/ingestion.md say why). The exactly-once key of an event is a 128-bit hash of its
//! (source, id) pair; the chance that two different keys of one workspace share a hash is about
//! n²/2¹²⁹ for n events, below 10⁻¹⁴ for a trillion events, and SHA-256 makes a collision
//! infeasible to craft.

pub(crate) mod activity;
mod codec;
mod merge;
mod plan;
mod postgres;
mod read;
pub(crate) mod sqlite;
pub(crate) mod state;
mod writer;

use std::collections::HashSet;
use std::hash::Hasher;
use std::sync::Arc;

use billow_core::UsageEvent;
use futures_util::future::BoxFuture;
use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::store::{Backend, Store};
use crate::WorkspaceId;

pub use codec::DecodeChunkError;
pub use merge::MergeOutcome;
pub use read::{SubjectsUsage, UsageChunks};
pub use writer::{EventWriter, WriteEventsError, GROUP_EVENTS_MAX};

/// The longest `source`, `id`, `type` or `subject` the store accepts, in bytes.
pub const EVENT_TEXT_LENGTH_MAX: usize = 512;
/// The longest `data` object the store accepts, as JSON text, in bytes.
pub const EVENT_DATA_LENGTH_MAX: usize = 64 * 1024;

/// An event to store, already checked at the edge (the API or `billow ingest`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// Who sent it; with `id`, its exactly-once key.
    pub source: String,
    /// The client's id, unique per source.
    pub id: String,
    /// Selects the meters that count it.
    pub event_type: String,
    /// The customer, subscription or resource it belongs to.
    pub subject: String,
    /// When the usage happened.
    pub time: Timestamp,
    /// The `data` object as JSON text, as the client sent it; `None` when it sent none.
    pub data: Option<String>,
}

impl NewEvent {
    /// Asserts what the edge has checked: a violation is a bug in the caller, not bad input.
    fn assert_valid(&self) {
        for (field, text) in [
            ("source", &self.source),
            ("id", &self.id),
            ("type", &self.event_type),
            ("subject", &self.subject),
        ] {
            assert!(
                !text.is_empty() && text.len() <= EVENT_TEXT_LENGTH_MAX,
                "an event's {field} has 1 to {EVENT_TEXT_LENGTH_MAX} bytes"
            );
        }
        if let Some(data) = &self.data {
            assert!(
                data.len() <= EVENT_DATA_LENGTH_MAX && data.starts_with('{'),
                "an event's data is a bounded JSON object"
            );
        }
    }

    /// About how many bytes the event takes in a chunk.
    fn encoded_length(&self) -> usize {
        let texts = self.subject.len() + self.source.len() + self.id.len() + self.event_type.len();
        texts + self.data.as_ref().map_or(0, String::len) + 40
    }

    /// The hash that stands for the event's (source, id) key: the first 16 bytes of SHA-256 over
    /// the source's length, the source and the id (the length keeps ("ab", "c") apart from
    /// ("a", "bc")).
    pub fn key_hash(&self) -> u128 {
        key_hash(&self.source, &self.id)
    }
}

pub(crate) fn key_hash(source: &str, id: &str) -> u128 {
    let source_length = u64::try_from(source.len()).expect("usize fits in u64");
    let mut hasher = Sha256::new();
    hasher.update(source_length.to_le_bytes());
    hasher.update(source.as_bytes());
    hasher.update(id.as_bytes());
    let digest = hasher.finalize();
    u128::from_le_bytes(digest[..16].try_into().expect("SHA-256 has 32 bytes"))
}

/// What became of a batch: how many events were stored, and how many were already stored (or
/// came twice in the batch) and were skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    pub inserted: u64,
    pub duplicates: u64,
}

/// A set of key hashes, hashed by [`KeyHasher`].
pub(crate) type KeySet = HashSet<u128, std::hash::BuildHasherDefault<KeyHasher>>;

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

/// One caller's batch inside a group commit.
pub(crate) struct Batch<'a> {
    pub workspace_id: &'a WorkspaceId,
    pub events: &'a [NewEvent],
    /// The key hash of each event ([`NewEvent::key_hash`]), in order.
    pub hashes: &'a [u128],
    /// The events encoded ahead by the caller, when it did ([`EventWriter::write`]).
    pub encoded: Option<&'a codec::EncodedBatch>,
}

/// The group a writer will commit after the one it commits now: on SQLite, its batches are
/// planned (their new keys claimed in the cache) as they come, while the current group's commit
/// is on SQLite's thread, and committed in the writer's next turn ([`Store::insert_batches`]).
pub(crate) struct PlanAhead<'a> {
    /// Which writer plans: only that writer's next turn uses the plan.
    pub writer: u64,
    pub next: &'a mut (dyn NextBatches + Send),
}

/// Where a writer's next group comes from, a batch at a time ([`PlanAhead`]).
pub(crate) trait NextBatches {
    /// Waits for the next batch of the next group, and hands it over with the instant its events
    /// are recorded as ingested at; `None` when no more can come. Cancel-safe: the wait is
    /// dropped when the current commit is done, and no batch is lost.
    fn next_batch(&mut self) -> BoxFuture<'_, Option<(Batch<'_>, Timestamp)>>;
}

impl Store {
    /// Stores `events` for `workspace_id` in one durable transaction, skipping every event whose
    /// (source, id) is already stored for the workspace or came earlier in the batch. The
    /// decision and the insert happen in the same transaction. `ingested_at` is recorded on the
    /// events, so that billing can find those that arrived after an invoice was finalized.
    ///
    /// # Errors
    ///
    /// [`InsertEventsError`] when the transaction fails; then nothing of the batch is stored.
    ///
    /// # Panics
    ///
    /// When an event breaks the bounds the edge checks ([`EVENT_TEXT_LENGTH_MAX`],
    /// [`EVENT_DATA_LENGTH_MAX`], non-empty fields, `data` an object).
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, events = events.len()))]
    pub async fn insert_events(
        &self,
        workspace_id: &WorkspaceId,
        events: &[NewEvent],
        ingested_at: Timestamp,
    ) -> Result<InsertOutcome, InsertEventsError> {
        self.insert_batch(workspace_id, events, ingested_at, None)
            .await
    }

    /// [`Store::insert_events`], planning `ahead` meanwhile.
    pub(crate) async fn insert_batch(
        &self,
        workspace_id: &WorkspaceId,
        events: &[NewEvent],
        ingested_at: Timestamp,
        ahead: Option<PlanAhead<'_>>,
    ) -> Result<InsertOutcome, InsertEventsError> {
        let hashes: Vec<u128> = events.iter().map(NewEvent::key_hash).collect();
        let batches = [Batch {
            workspace_id,
            events,
            hashes: &hashes,
            encoded: None,
        }];
        let outcomes = self.insert_batches(&batches, ingested_at, ahead).await?;
        Ok(outcomes[0])
    }

    /// Stores several callers' batches in one transaction: the group commit. `ahead` is the
    /// group the caller will write next, which SQLite's writer plans meanwhile ([`PlanAhead`]).
    pub(crate) async fn insert_batches(
        &self,
        batches: &[Batch<'_>],
        ingested_at: Timestamp,
        ahead: Option<PlanAhead<'_>>,
    ) -> Result<Vec<InsertOutcome>, InsertEventsError> {
        for batch in batches {
            batch.events.iter().for_each(NewEvent::assert_valid);
            assert_eq!(
                batch.events.len(),
                batch.hashes.len(),
                "a key hash per event"
            );
        }
        let outcomes = match &self.backend {
            Backend::Sqlite(pool) => {
                let cache = &self.events.sqlite_keys;
                sqlite::insert_batches(pool, cache, batches, ingested_at, ahead).await
            }
            Backend::Postgres(pool) => {
                postgres::insert_batches(pool, &self.events.postgres_keys, batches, ingested_at)
                    .await
            }
        }
        .map_err(|error| InsertEventsError::Database(Arc::new(error)))?;
        for (batch, outcome) in batches.iter().zip(&outcomes) {
            let total = u64::try_from(batch.events.len()).expect("usize fits in u64");
            assert_eq!(outcome.inserted + outcome.duplicates, total);
        }
        Ok(outcomes)
    }

    /// The events of `workspace_id` whose subject is one of `subjects` and whose time is in
    /// `[from, to)`, in time order (a subject's events of one instant in the order they were
    /// stored).
    ///
    /// # Errors
    ///
    /// [`LoadEventsError`] when the query fails or a stored chunk cannot be read.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, subjects = subjects.len()))]
    pub async fn usage_events(
        &self,
        workspace_id: &WorkspaceId,
        subjects: &[String],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<UsageEvent>, LoadEventsError> {
        let filter = ChunkFilter::period(from, to);
        self.load_events(workspace_id, subjects, filter).await
    }

    /// The events of `workspace_id` whose subject is one of `subjects` and that were ingested
    /// after `since` (by the `ingested_at` given when they were stored), in time order.
    ///
    /// An event is visible once its transaction commits, a short while after its `ingested_at`:
    /// a caller that looks for events that arrived after it read usage at instant T should ask
    /// from a little before T (a minute is ample) and skip the (source, id) pairs it has seen.
    ///
    /// # Errors
    ///
    /// [`LoadEventsError`] when the query fails or a stored chunk cannot be read.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, subjects = subjects.len()))]
    pub async fn usage_events_ingested_after(
        &self,
        workspace_id: &WorkspaceId,
        subjects: &[String],
        since: Timestamp,
    ) -> Result<Vec<UsageEvent>, LoadEventsError> {
        let filter = ChunkFilter::IngestedAfter {
            since_us: since.as_microsecond(),
        };
        self.load_events(workspace_id, subjects, filter).await
    }

    /// The events of `workspace_id` whose subject is one of `subjects`, ingested after `since`
    /// (by the `ingested_at` given when they were stored) with a time before `before`: those
    /// that arrived late for periods ending by `before`. In time order. As for
    /// [`Store::usage_events_ingested_after`], a caller asks from a little before the instant it
    /// last read usage at.
    ///
    /// # Errors
    ///
    /// [`LoadEventsError`] when the query fails or a stored chunk cannot be read.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, subjects = subjects.len()))]
    pub async fn late_usage_events(
        &self,
        workspace_id: &WorkspaceId,
        subjects: &[String],
        since: Timestamp,
        before: Timestamp,
    ) -> Result<Vec<UsageEvent>, LoadEventsError> {
        self.load_events(workspace_id, subjects, ChunkFilter::late(since, before))
            .await
    }

    /// The subjects of `workspace_id` that received an event ingested after `since` with a time
    /// before `before` (by the chunks' ingestion and time bounds, then exactly by each event):
    /// where a billing run looks for usage that arrived late for a period already invoiced,
    /// without naming the subjects. The chunks are found by their ingestion instants
    /// (`event_chunks_ingested`, 0017), so a workspace with no new events costs one index probe.
    ///
    /// # Errors
    ///
    /// [`LoadEventsError`] when the query fails or a stored chunk cannot be read.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id))]
    pub async fn subjects_with_late_usage(
        &self,
        workspace_id: &WorkspaceId,
        since: Timestamp,
        before: Timestamp,
    ) -> Result<HashSet<String>, LoadEventsError> {
        const SQL: &str = "SELECT seq, subject IS NULL AS log, subject, event_count, events \
                           FROM event_chunks WHERE workspace_id = $1 AND ingested_max_us > $2 \
                           AND time_min_us < $3";
        let filter = ChunkFilter::late(since, before);
        let ChunkFilter::Late {
            since_us,
            before_us,
            ..
        } = filter
        else {
            unreachable!("a late filter")
        };
        let chunks: Vec<read::ChunkRow> = crate::sql::with_pool!(self, pool => sqlx::query_as(SQL)
            .bind(workspace_id.as_str())
            .bind(since_us)
            .bind(before_us)
            .fetch_all(pool)
            .await)
        .map_err(LoadEventsError::Database)?;
        Ok(read::subjects_of(&chunks, filter)?)
    }

    /// The stored chunks of `subjects`' events whose time may be in `[from, to)`, read in one
    /// query (one transaction on SQLite) and split by subject but not decoded: a billing run
    /// decodes each customer's part on its engine threads ([`read::SubjectsUsage::into_events`]
    /// gives what [`Store::usage_events`] would for those subjects).
    ///
    /// # Errors
    ///
    /// [`LoadEventsError`] when the query fails or a log chunk cannot be read.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id, subjects = subjects.len()))]
    pub async fn usage_chunks(
        &self,
        workspace_id: &WorkspaceId,
        subjects: &[String],
        from: Timestamp,
        to: Timestamp,
    ) -> Result<UsageChunks, LoadEventsError> {
        let filter = ChunkFilter::period(from, to);
        let chunks = self.select_chunks(workspace_id, subjects, filter).await?;
        Ok(UsageChunks::split(chunks, subjects, filter)?)
    }

    /// The chunks of `subjects` that `filter` may want, as stored.
    async fn select_chunks(
        &self,
        workspace_id: &WorkspaceId,
        subjects: &[String],
        filter: ChunkFilter,
    ) -> Result<Vec<read::ChunkRow>, LoadEventsError> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                sqlite::select_chunks(pool, workspace_id.as_str(), subjects, filter).await
            }
            Backend::Postgres(pool) => {
                postgres::select_chunks(pool, workspace_id.as_str(), subjects, filter).await
            }
        }
        .map_err(LoadEventsError::Database)
    }

    async fn load_events(
        &self,
        workspace_id: &WorkspaceId,
        subjects: &[String],
        filter: ChunkFilter,
    ) -> Result<Vec<UsageEvent>, LoadEventsError> {
        let chunks = self.select_chunks(workspace_id, subjects, filter).await?;
        Ok(decode_chunks(chunks, read::Wanted::of(subjects), filter).await?)
    }

    /// Every event of `workspace_id` whose time is in `[from, to)`, whatever its subject, in
    /// time order (a subject's events of one instant in the order they were stored): what a query
    /// of a meter over all subjects reads. Every chunk of the workspace that may hold such an
    /// event is read, in one snapshot as for [`Store::usage_events`]; the cost grows with the
    /// workspace's events in the period, not with one customer's.
    ///
    /// # Errors
    ///
    /// [`LoadEventsError`] when the query fails or a stored chunk cannot be read.
    #[tracing::instrument(skip_all, fields(workspace_id = %workspace_id))]
    pub async fn workspace_usage_events(
        &self,
        workspace_id: &WorkspaceId,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<UsageEvent>, LoadEventsError> {
        let filter = ChunkFilter::period(from, to);
        let chunks = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlite::select_workspace_chunks(pool, workspace_id.as_str(), filter).await
            }
            Backend::Postgres(pool) => {
                postgres::select_workspace_chunks(pool, workspace_id.as_str(), filter).await
            }
        }
        .map_err(LoadEventsError::Database)?;
        Ok(decode_chunks(chunks, read::Wanted::All, filter).await?)
    }

    /// Moves the events of the oldest log chunks (up to about `events_max` events) into chunks
    /// per (workspace, subject), in one transaction: what makes reading one customer's usage
    /// cheap. The group-commit writer calls it after enough events or when idle; `billow ingest`
    /// when it is done. Returns how many events were moved (0: nothing left to compact).
    ///
    /// # Errors
    ///
    /// [`CompactEventsError`] when the transaction fails (nothing is moved) or a log chunk cannot
    /// be read.
    #[tracing::instrument(skip_all)]
    pub async fn compact_events(&self, events_max: u64) -> Result<u64, CompactEventsError> {
        let events_max = i64::try_from(events_max).unwrap_or(i64::MAX).max(1);
        let compacted = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlite::compact(pool, &self.events.sqlite_keys, events_max).await
            }
            Backend::Postgres(pool) => {
                postgres::compact(pool, &self.events.postgres_keys, events_max).await
            }
        }?;
        let mut hints = self.events.merge_hints.lock().expect("not poisoned");
        for (workspace_id, subject) in &compacted.subjects {
            hints.record(workspace_id, subject);
        }
        Ok(compacted.moved)
    }

    /// The most chunks compaction wrote to one subject since merging last looked at it.
    pub(crate) fn most_unmerged_chunks(&self) -> u32 {
        self.events
            .merge_hints
            .lock()
            .expect("not poisoned")
            .most_new_chunks()
    }

    /// Merges the small chunks of subjects that compaction has written to several times into
    /// one chunk per subject (size-tiered, so that each event is rewritten a few times at most;
    /// see `events/merge.rs`), in one transaction of up to about `events_max` rewritten events,
    /// for the subjects of one workspace. Readers see every event exactly once throughout, and
    /// exactly-once ingestion is unchanged (a merged chunk holds the key hashes of the chunks it
    /// replaces). Call it until it looks at no subject: after compaction, as the writer and
    /// `billow ingest` do.
    ///
    /// # Errors
    ///
    /// [`MergeEventsError`] when the transaction fails (nothing is merged, and the subjects stay
    /// due) or a chunk cannot be read.
    #[tracing::instrument(skip_all)]
    pub async fn merge_event_chunks(
        &self,
        events_max: u64,
    ) -> Result<MergeOutcome, MergeEventsError> {
        let events_max = i64::try_from(events_max).unwrap_or(i64::MAX).max(1);
        let due = self
            .events
            .merge_hints
            .lock()
            .expect("not poisoned")
            .take_due(merge::MERGE_SUBJECTS_MAX);
        let Some((workspace_id, subjects)) = due else {
            return Ok(MergeOutcome::default());
        };
        let result = match &self.backend {
            Backend::Sqlite(pool) => {
                sqlite::merge(
                    pool,
                    &self.events.sqlite_keys,
                    &workspace_id,
                    &subjects,
                    events_max,
                )
                .await
            }
            Backend::Postgres(pool) => {
                let keys = &self.events.postgres_keys;
                postgres::merge(pool, keys, &workspace_id, &subjects, events_max).await
            }
        };
        let mut hints = self.events.merge_hints.lock().expect("not poisoned");
        match result {
            Ok(merged) => {
                hints.restore(&workspace_id, &merged.put_off);
                Ok(merged.outcome)
            }
            Err(error) => {
                hints.restore(&workspace_id, &subjects);
                Err(error)
            }
        }
    }
}

/// Which chunks a read wants, in microseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ChunkFilter {
    /// Chunks that may hold an event in `[from_us, to_us]` (a superset: the events are filtered
    /// exactly after decoding, by `from` and `to`).
    Period {
        from: Timestamp,
        to: Timestamp,
        from_us: i64,
        to_us: i64,
    },
    /// Chunks holding an event ingested strictly after `since_us`.
    IngestedAfter { since_us: i64 },
    /// Events ingested strictly after `since_us` whose time is before `before`: late for a
    /// period that ended by then. Chunks are selected by their ingestion and first times (a
    /// chunk's first time below `before_us`, `before` rounded up to the microsecond, the unit
    /// chunks are bounded in), the events filtered exactly after decoding.
    Late {
        since_us: i64,
        before: Timestamp,
        before_us: i64,
    },
}

/// The events of `chunks` that `subjects` and `filter` want, in time order.
async fn decode_chunks(
    chunks: Vec<read::ChunkRow>,
    subjects: read::Wanted,
    filter: ChunkFilter,
) -> Result<Vec<UsageEvent>, DecodeChunkError> {
    let bytes: usize = chunks.iter().map(|chunk| chunk.events.len()).sum();
    if bytes < read::DECODE_OFF_TASK_BYTES_MIN {
        return read::decode(chunks, &subjects, filter);
    }
    // A large read takes milliseconds of CPU: off the async task, and on several threads.
    read::decode_off_task(chunks, subjects, filter).await
}

/// `instant` in microseconds since the epoch, rounded up: an event whose time (rounded down to
/// the microsecond in a chunk's bounds) is below it may be before `instant`.
fn ceil_micros(instant: Timestamp) -> i64 {
    let micros = instant.as_microsecond();
    if instant.as_nanosecond() % 1_000 == 0 {
        micros
    } else {
        micros.saturating_add(1)
    }
}

impl ChunkFilter {
    /// Events whose time is in `[from, to)`; chunks are selected by their times in microseconds,
    /// widened by one on each side (the events are filtered exactly after decoding).
    fn period(from: Timestamp, to: Timestamp) -> Self {
        Self::Period {
            from,
            to,
            from_us: from.as_microsecond().saturating_sub(1),
            to_us: to.as_microsecond().saturating_add(1),
        }
    }

    /// Events ingested after `since` with a time before `before`.
    fn late(since: Timestamp, before: Timestamp) -> Self {
        Self::Late {
            since_us: since.as_microsecond(),
            before,
            before_us: ceil_micros(before),
        }
    }

    /// Whether an event at `time`, ingested at `ingested_at_us`, is wanted.
    fn keeps(&self, time: Timestamp, ingested_at_us: i64) -> bool {
        match *self {
            Self::Period { from, to, .. } => from <= time && time < to,
            Self::IngestedAfter { since_us } => ingested_at_us > since_us,
            Self::Late {
                since_us, before, ..
            } => ingested_at_us > since_us && time < before,
        }
    }
}

/// What a compaction transaction did: how many events it moved, and the (workspace, subject) of
/// every subject chunk it wrote.
pub(crate) struct Compacted {
    pub moved: u64,
    pub subjects: Vec<(String, String)>,
}

/// What a merge transaction did, and the subjects it put off for the next one (past its budget).
pub(crate) struct Merged {
    pub outcome: MergeOutcome,
    pub put_off: Vec<String>,
}

/// Why [`Store::insert_events`] failed. Cloneable (the cause is shared), because a group commit
/// reports one failure to every caller in the group.
#[derive(Clone, Debug, thiserror::Error)]
pub enum InsertEventsError {
    #[error("could not store the events")]
    Database(#[source] Arc<sqlx::Error>),
}

/// Why [`Store::compact_events`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CompactEventsError {
    #[error("could not compact the events")]
    Database(#[source] sqlx::Error),
    #[error("a stored chunk of events is invalid")]
    CorruptChunk(#[from] DecodeChunkError),
    #[error("compacting the events panicked: {0}")]
    Panicked(String),
}

/// Why [`Store::merge_event_chunks`] failed.
#[derive(Debug, thiserror::Error)]
pub enum MergeEventsError {
    #[error("could not merge the chunks of events")]
    Database(#[source] sqlx::Error),
    #[error("a stored chunk of events is invalid")]
    CorruptChunk(#[from] DecodeChunkError),
    #[error("the chunks to merge changed during the merge")]
    ChunksChanged,
    #[error("merging the chunks panicked: {0}")]
    Panicked(String),
}

/// Why [`Store::usage_events`] or [`Store::usage_events_ingested_after`] failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadEventsError {
    #[error("could not load the events")]
    Database(#[source] sqlx::Error),
    #[error("a stored chunk of events is invalid")]
    CorruptChunk(#[from] DecodeChunkError),
}

/// A migrated store on a new SQLite file in `directory`, with the workspace `ws_acme`: what the
/// crate's own tests of the writer and of compaction start from.
#[cfg(test)]
pub(crate) async fn sqlite_store_with_acme(
    directory: &std::path::Path,
) -> (Store, crate::Workspace) {
    let store = Store::open(&crate::Database::sqlite(directory.join("billow.db")))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let workspace = crate::Workspace {
        id: WorkspaceId::parse("ws_acme").unwrap(),
        name: crate::WorkspaceName::parse("acme").unwrap(),
        created_at: Timestamp::UNIX_EPOCH,
    };
    store.insert_workspace(&workspace).await.unwrap();
    (store, workspace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_hash_separates_source_from_id() {
        assert_ne!(key_hash("ab", "c"), key_hash("a", "bc"));
        assert_eq!(key_hash("a", "bc"), key_hash("a", "bc"));
    }
}
