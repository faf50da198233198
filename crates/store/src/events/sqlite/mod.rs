//! Event queries in SQLite's dialect, and the writer's in-memory key cache.
//!
//! SQLite has one writer at a time. The writer that holds the write lock decides exactly-once
//! from [`KeyCache`], the key hashes of every stored chunk, kept in memory: a random-order
//! on-disk index would cost a random B-tree insert per event (DESIGN.md §6). The cache is only a
//! copy: inside each write transaction, before deciding, the writer reads the key hashes of the
//! chunks appended since it last looked (by another process, such as `billow ingest`, or another
//! `Store`), so its decision always rests on every committed key.

use std::collections::{HashMap, HashSet, VecDeque};

use futures_util::TryStreamExt;
use jiff::Timestamp;
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::codec::decode_key_hashes;
use super::plan::{self, NewChunk, StoredChunk};
use super::read::ChunkRow;
use super::{Batch, ChunkFilter, CompactEventsError, Compacted, InsertOutcome, KeySet};

mod merge;

pub(super) use merge::merge;

/// Chunk rows per multi-row INSERT: 8 parameters each, far below SQLite's 32,766.
const INSERT_ROWS_MAX: usize = 256;
/// Most events of the log chunks a writer keeps in memory for compaction ([`KeyCache::written`]):
/// what the writers may commit ahead of compaction, and one more group (~45 MiB with their key
/// hashes), so that the writer forgets them only when compaction has failed or another process
/// wrote.
const WRITTEN_EVENTS_MAX: usize =
    super::writer::COMPACTION_BACKLOG_MAX as usize + super::writer::GROUP_EVENTS_MAX;

/// The writer's state, behind its lock: the key hashes of the stored chunks, per workspace, and
/// how far they have been read; the log chunks this writer committed and has not compacted yet;
/// and its own connection.
#[derive(Default)]
pub(crate) struct KeyCache {
    /// Every chunk with a `seq` up to this one has its keys in `keys`.
    read_through_seq: i64,
    keys: HashMap<String, KeySet>,
    /// The log chunks this writer committed, oldest commit first, as it wrote them, so that
    /// compaction need not read them back from the database. Only a copy: compaction checks, in
    /// its transaction, that exactly these are the oldest log chunks before it replaces them, and
    /// reads the database instead when they are not (another process compacted them, or wrote
    /// older ones).
    written: VecDeque<WrittenCommit>,
    written_events: usize,
    /// The connection the writer commits on ([`writer_connection`]), kept between transactions.
    connection: Option<SqliteConnection>,
}

/// The log chunks of one commit, and the largest `seq` they got.
struct WrittenCommit {
    last_seq: i64,
    events: usize,
    chunks: Vec<StoredChunk>,
}

impl std::fmt::Debug for KeyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyCache")
            .field("read_through_seq", &self.read_through_seq)
            .field("workspaces", &self.keys.len())
            .field("written_commits", &self.written.len())
            .field("written_events", &self.written_events)
            .finish_non_exhaustive()
    }
}

impl KeyCache {
    fn keys_of(&mut self, workspace_id: &str) -> &mut KeySet {
        if !self.keys.contains_key(workspace_id) {
            self.keys.insert(workspace_id.to_owned(), KeySet::default());
        }
        self.keys.get_mut(workspace_id).expect("inserted above")
    }

    fn add(&mut self, workspace_id: &str, hashes: impl IntoIterator<Item = u128>) {
        self.keys_of(workspace_id).extend(hashes);
    }

    /// Forgets every key, so that the next transaction reads them all back from the database
    /// (as after a restart): after keys were claimed for a transaction that may or may not have
    /// committed.
    fn forget_keys(&mut self) {
        self.keys.clear();
        self.read_through_seq = 0;
    }

    /// Keeps the log chunks a commit wrote, for compaction; forgets them all when there would be
    /// more than [`WRITTEN_EVENTS_MAX`] events (compaction then reads the database, as after a
    /// restart).
    fn remember_written(&mut self, chunks: Vec<NewChunk>, last_seq: i64) {
        let events: usize = chunks
            .iter()
            .map(|chunk| usize::try_from(chunk.event_count).unwrap_or(usize::MAX))
            .fold(0, usize::saturating_add);
        if chunks.is_empty() {
            return;
        }
        if self.written_events.saturating_add(events) > WRITTEN_EVENTS_MAX {
            self.forget_written();
            return;
        }
        self.written_events += events;
        let chunks = chunks
            .into_iter()
            .map(|chunk| StoredChunk {
                // Compaction needs only the commit's largest seq, kept in `WrittenCommit`.
                seq: last_seq,
                workspace_id: chunk.workspace_id,
                key_hashes: chunk.key_hashes,
                events: chunk.events,
            })
            .collect();
        self.written.push_back(WrittenCommit {
            last_seq,
            events,
            chunks,
        });
    }

    fn forget_written(&mut self) {
        self.written.clear();
        self.written_events = 0;
    }

    /// The oldest remembered commits whose events add up to about `events_max` (at least one
    /// commit), taken out of the cache: their chunks, how many, and the largest `seq` among them.
    fn take_written(&mut self, events_max: i64) -> Option<(Vec<StoredChunk>, i64)> {
        let mut chunks = Vec::new();
        let mut last_seq = None;
        let mut events: usize = 0;
        while usize::try_from(events_max).is_ok_and(|max| events < max) {
            let Some(commit) = self.written.pop_front() else {
                break;
            };
            events += commit.events;
            self.written_events = self.written_events.saturating_sub(commit.events);
            last_seq = Some(commit.last_seq);
            chunks.extend(commit.chunks);
        }
        last_seq.map(|last_seq| (chunks, last_seq))
    }
}

pub(super) async fn insert_batches(
    pool: &SqlitePool,
    cache: &tokio::sync::Mutex<KeyCache>,
    batches: &[Batch<'_>],
    ingested_at: Timestamp,
) -> Result<Vec<InsertOutcome>, sqlx::Error> {
    // One writer per store at a time: SQLite would serialize them anyway.
    let mut cache = cache.lock().await;
    let mut connection = writer_connection(pool, &mut cache).await?;
    let outcomes = write_transaction(&mut connection, &mut cache, batches, ingested_at).await?;
    cache.connection = Some(connection);
    Ok(outcomes)
}

/// The writer's connection: kept in the cache between transactions, or else a connection of the
/// pool, detached from it (the pool opens another in its place when it needs one), and set to
/// sync the WAL on every commit (`synchronous=FULL`), so that an acknowledged event survives a
/// power loss. The rest of billow keeps NORMAL on the pool's connections. A connection whose
/// transaction failed is dropped, not kept.
async fn writer_connection(
    pool: &SqlitePool,
    cache: &mut KeyCache,
) -> Result<SqliteConnection, sqlx::Error> {
    if let Some(connection) = cache.connection.take() {
        return Ok(connection);
    }
    let mut connection = pool.acquire().await?.detach();
    sqlx::query("PRAGMA synchronous = FULL")
        .execute(&mut connection)
        .await?;
    Ok(connection)
}

/// Claims keys in the cache, holding the set of the workspace of the last claim out of the map
/// meanwhile, so that a run of events of one workspace looks the workspace up once, not per event.
struct Claimer<'c> {
    cache: &'c mut KeyCache,
    current: Option<(String, KeySet)>,
}

impl<'c> Claimer<'c> {
    fn new(cache: &'c mut KeyCache) -> Self {
        Self {
            cache,
            current: None,
        }
    }

    /// Whether `hash` was not in `workspace_id`'s set; it is now.
    fn claim(&mut self, workspace_id: &str, hash: u128) -> bool {
        if self
            .current
            .as_ref()
            .is_none_or(|(current, _)| current != workspace_id)
        {
            self.put_back();
            let keys = self.cache.keys.remove(workspace_id).unwrap_or_default();
            self.current = Some((workspace_id.to_owned(), keys));
        }
        let (_, keys) = self.current.as_mut().expect("taken above");
        keys.insert(hash)
    }

    fn put_back(&mut self) {
        if let Some((workspace_id, keys)) = self.current.take() {
            self.cache.keys.insert(workspace_id, keys);
        }
    }
}

/// Puts the set back even when planning panics: a set left out of the map would forget its keys.
impl Drop for Claimer<'_> {
    fn drop(&mut self) {
        self.put_back();
    }
}

/// Closes the writer's connection, if it has one (`Store::close`).
pub(crate) async fn close_writer(cache: &tokio::sync::Mutex<KeyCache>) {
    if let Some(connection) = cache.lock().await.connection.take() {
        let _ = connection.close().await;
    }
}

/// One write transaction of the writer, in two round trips to SQLite's worker thread instead of
/// four (each costs ~0.4 ms when both cores are busy, DESIGN.md §6): `BEGIN IMMEDIATE` goes with
/// the catch-up query, and `COMMIT` with the last insert. So the transaction is not sqlx's
/// `Transaction`: when anything fails, the caller drops the connection, and closing it rolls the
/// open transaction back.
async fn write_transaction(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
    batches: &[Batch<'_>],
    ingested_at: Timestamp,
) -> Result<Vec<InsertOutcome>, sqlx::Error> {
    if let Some(outcomes) = write_if_caught_up(connection, cache, batches, ingested_at).await? {
        return Ok(outcomes);
    }
    // IMMEDIATE takes the write lock now, so that no other writer appends between the catch-up
    // and the insert.
    catch_up(connection, cache, Begin::Immediate).await?;
    // The new keys go into the cache as they are claimed (one hash lookup per event): nobody
    // else reads the cache meanwhile, as the writer's lock is held. If the transaction does not
    // commit, the cache forgets its keys ([`Claims`]).
    let mut claimer = Claimer::new(cache);
    let plan = plan::plan(
        batches,
        |workspace_id, hash| claimer.claim(workspace_id, hash),
        ingested_at,
    );
    drop(claimer);
    let mut claims = Claims {
        cache,
        settled: false,
    };
    let seqs = insert_all_chunks(connection, &plan.chunks, Commit::Yes).await?;
    claims.settled = true;
    let cache = &mut *claims.cache;
    // The chunks' seqs are above every other chunk's (the write lock was held): the new
    // watermark is the largest.
    if let Some(&last_seq) = seqs.iter().max() {
        cache.read_through_seq = cache.read_through_seq.max(last_seq);
        cache.remember_written(plan.chunks, last_seq);
    }
    Ok(plan.outcomes)
}

/// The usual write, in one round trip instead of two: when this writer's cache has read every
/// chunk up to its watermark, it decides from the cache before taking the write lock, then
/// sends `BEGIN IMMEDIATE`, an insert guarded by "no chunk above the watermark" (which is what
/// the catch-up query would find) and `COMMIT` together. When the guard fails (another process
/// wrote since), the statement inserts nothing and the empty transaction commits: nothing was
/// written, for sure, so the keys it claimed are taken out of the cache again, and the answer is
/// `None` (the caller catches up and plans again). A group whose events are all stored already
/// is answered from the cache alone: the cache holds only committed keys.
async fn write_if_caught_up(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
    batches: &[Batch<'_>],
    ingested_at: Timestamp,
) -> Result<Option<Vec<InsertOutcome>>, sqlx::Error> {
    let watermark = cache.read_through_seq;
    if watermark == 0 {
        // Nothing read yet (a new process, or keys forgotten): catch up first.
        return Ok(None);
    }
    let mut claimer = Claimer::new(cache);
    let plan = plan::plan(
        batches,
        |workspace_id, hash| claimer.claim(workspace_id, hash),
        ingested_at,
    );
    drop(claimer);
    if plan.chunks.is_empty() {
        return Ok(Some(plan.outcomes));
    }
    if plan.chunks.len() > INSERT_ROWS_MAX {
        // More than one statement: the guard would hold only for the first.
        give_back(cache, &plan);
        return Ok(None);
    }
    let mut claims = Claims {
        cache,
        settled: false,
    };
    let seqs = insert_chunks(connection, &plan.chunks, Around::Guarded { watermark }).await?;
    claims.settled = true;
    let cache = &mut *claims.cache;
    let Some(&last_seq) = seqs.iter().max() else {
        // Another process wrote a chunk since the cache last looked; nothing was inserted.
        give_back(cache, &plan);
        return Ok(None);
    };
    cache.read_through_seq = last_seq;
    cache.remember_written(plan.chunks, last_seq);
    Ok(Some(plan.outcomes))
}

/// Takes the keys `plan` claimed out of the cache again, when its chunks are known not to have
/// been written.
fn give_back(cache: &mut KeyCache, plan: &plan::Plan) {
    for (workspace_id, hashes) in plan.new_keys() {
        let keys = cache.keys_of(workspace_id);
        for hash in hashes {
            keys.remove(&hash);
        }
    }
}

/// The keys a transaction claimed in the cache, until it has committed. If it fails, or its
/// future is dropped on the way, whether it committed is not known for sure (an error may come
/// from the `COMMIT` itself, whose WAL frames may then survive), so the cache forgets every key
/// and reads them back from the database, which knows, in the next transaction. Taking out only
/// the claimed keys would store an event twice if the transaction had committed after all.
struct Claims<'c> {
    cache: &'c mut KeyCache,
    settled: bool,
}

impl Drop for Claims<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.cache.forget_keys();
        }
    }
}

/// Whether [`catch_up`] also opens the transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Begin {
    /// `BEGIN IMMEDIATE`, in the same round trip as the query.
    Immediate,
    /// The caller's transaction is open already.
    Open,
}

/// Whether [`insert_all_chunks`] also commits the open transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// `COMMIT`, in the same round trip as the last insert.
    Yes,
    /// The caller commits.
    No,
}

async fn max_seq(connection: &mut SqliteConnection) -> Result<i64, sqlx::Error> {
    let seq: Option<i64> = sqlx::query_scalar("SELECT max(seq) FROM event_chunks")
        .fetch_one(connection)
        .await?;
    Ok(seq.unwrap_or(0))
}

/// A write transaction (`BEGIN IMMEDIATE`, sqlx's) after which the cache has read the keys of
/// every chunk committed before it: what compaction and merging write in.
async fn begin_caught_up<'c>(
    connection: &'c mut SqliteConnection,
    cache: &mut KeyCache,
) -> Result<sqlx::Transaction<'c, Sqlite>, sqlx::Error> {
    let mut transaction = connection.begin_with("BEGIN IMMEDIATE").await?;
    catch_up(&mut transaction, cache, Begin::Open).await?;
    Ok(transaction)
}

/// Reads the keys of the chunks written since the cache last looked. A chunk made by compaction
/// has a larger seq than the log chunks it replaced, so no key can hide below the watermark.
async fn catch_up(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
    begin: Begin,
) -> Result<(), sqlx::Error> {
    macro_rules! select {
        () => {
            "SELECT seq, workspace_id, key_hashes FROM event_chunks WHERE seq > ?1 ORDER BY seq"
        };
    }
    const SELECT: &str = select!();
    const BEGIN_AND_SELECT: &str = concat!("BEGIN IMMEDIATE; ", select!());
    let sql = match begin {
        Begin::Immediate => BEGIN_AND_SELECT,
        Begin::Open => SELECT,
    };
    let mut rows = sqlx::query(sql)
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

/// Inserts `chunks`, [`INSERT_ROWS_MAX`] rows per statement, and answers the `seq` each got (in
/// no particular order); with [`Commit::Yes`], commits after the last one, in its round trip. The
/// BLOBs are bound by reference (SQLite copies a bound BLOB either way).
async fn insert_all_chunks(
    connection: &mut SqliteConnection,
    chunks: &[NewChunk],
    commit: Commit,
) -> Result<Vec<i64>, sqlx::Error> {
    let mut seqs = Vec::with_capacity(chunks.len());
    let pieces = chunks.chunks(INSERT_ROWS_MAX).count();
    for (index, rows) in chunks.chunks(INSERT_ROWS_MAX).enumerate() {
        let around = if index + 1 == pieces && commit == Commit::Yes {
            Around::Commit
        } else {
            Around::Nothing
        };
        seqs.extend(insert_chunks(connection, rows, around).await?);
    }
    if pieces == 0 && commit == Commit::Yes {
        sqlx::query("COMMIT").execute(&mut *connection).await?;
    }
    Ok(seqs)
}

/// What goes with one multi-row INSERT, in its round trip.
#[derive(Clone, Copy)]
enum Around {
    /// The insert alone, in the caller's transaction.
    Nothing,
    /// `COMMIT` after it.
    Commit,
    /// `BEGIN IMMEDIATE` before it and `COMMIT` after it; it inserts nothing when a chunk above
    /// `watermark` exists.
    Guarded { watermark: i64 },
}

async fn insert_chunks(
    connection: &mut SqliteConnection,
    rows: &[NewChunk],
    around: Around,
) -> Result<Vec<i64>, sqlx::Error> {
    let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(match around {
        Around::Guarded { .. } => "BEGIN IMMEDIATE; ",
        Around::Nothing | Around::Commit => "",
    });
    query.push(
        "INSERT INTO event_chunks (workspace_id, subject, time_min_us, time_max_us, \
         ingested_max_us, event_count, key_hashes, events) ",
    );
    if let Around::Guarded { .. } = around {
        query.push("SELECT * FROM (");
    }
    query.push_values(rows, |mut values, chunk| {
        values
            .push_bind(chunk.workspace_id.as_str())
            .push_bind(chunk.subject.as_deref())
            .push_bind(chunk.time_min_us)
            .push_bind(chunk.time_max_us)
            .push_bind(chunk.ingested_max_us)
            .push_bind(chunk.event_count)
            .push_bind(chunk.key_hashes.as_slice())
            .push_bind(chunk.events.as_slice());
    });
    if let Around::Guarded { watermark } = around {
        query
            .push(") WHERE NOT EXISTS (SELECT 1 FROM event_chunks WHERE seq > ")
            .push_bind(watermark)
            .push(")");
    }
    query.push(" RETURNING seq");
    if let Around::Commit | Around::Guarded { .. } = around {
        // sqlx runs the statements of one query in turn, each taking its own parameters.
        query.push("; COMMIT");
    }
    query.build_query_scalar().fetch_all(connection).await
}

pub(super) async fn compact(
    pool: &SqlitePool,
    cache: &tokio::sync::Mutex<KeyCache>,
    events_max: i64,
) -> Result<Compacted, CompactEventsError> {
    // The log chunks this writer remembers are decoded and regrouped before the writer's lock is
    // taken again, on a blocking thread, so that commits go on meanwhile.
    let remembered = cache.lock().await.take_written(events_max);
    let prepared = match remembered {
        Some((log_chunks, last_seq)) => {
            let expected = log_chunks.len();
            let subject_chunks = tokio::task::spawn_blocking(move || plan::compact(&log_chunks))
                .await
                .map_err(|error| CompactEventsError::Panicked(error.to_string()))??;
            Some(Prepared {
                subject_chunks,
                expected,
                last_seq,
            })
        }
        None => None,
    };
    // Under the writer's lock: compaction writes, and keeps the cache's watermark current.
    let mut cache = cache.lock().await;
    let mut connection = writer_connection(pool, &mut cache)
        .await
        .map_err(CompactEventsError::Database)?;
    let compacted = compact_transaction(&mut connection, &mut cache, prepared, events_max).await?;
    cache.connection = Some(connection);
    Ok(compacted)
}

/// Subject chunks made from log chunks this writer remembered: `expected` of them, the largest
/// `seq` among them `last_seq`.
struct Prepared {
    subject_chunks: Vec<NewChunk>,
    expected: usize,
    last_seq: i64,
}

async fn compact_transaction(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
    prepared: Option<Prepared>,
    events_max: i64,
) -> Result<Compacted, CompactEventsError> {
    if let Some(prepared) = prepared {
        match compact_log_chunks(connection, cache, Some(prepared), events_max).await? {
            Some(compacted) => return Ok(compacted),
            // Not the oldest log chunks any more: read the database.
            None => cache.forget_written(),
        }
    }
    Ok(compact_log_chunks(connection, cache, None, events_max)
        .await?
        .unwrap_or(Compacted {
            moved: 0,
            subjects: Vec::new(),
        }))
}

/// Replaces log chunks by subject chunks in one transaction: the oldest log chunks of the
/// database, or the subject chunks `prepared` from the log chunks this writer remembered, which
/// must then be exactly the log chunks stored up to their largest `seq`: when they are not,
/// nothing is written and the answer is `None`.
async fn compact_log_chunks(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
    prepared: Option<Prepared>,
    events_max: i64,
) -> Result<Option<Compacted>, CompactEventsError> {
    let database = CompactEventsError::Database;
    let mut transaction = begin_caught_up(connection, cache).await.map_err(database)?;
    let expected = prepared.as_ref().map(|prepared| prepared.expected);
    let (subject_chunks, last_seq) = match prepared {
        Some(prepared) => (prepared.subject_chunks, prepared.last_seq),
        None => {
            let log_chunks = oldest_log_chunks(&mut transaction, events_max)
                .await
                .map_err(database)?;
            let Some(last) = log_chunks.last() else {
                return Ok(None);
            };
            let last_seq = last.seq;
            (plan::compact(&log_chunks)?, last_seq)
        }
    };
    let moved: i64 = subject_chunks
        .iter()
        .map(|chunk| i64::from(chunk.event_count))
        .sum();
    let subjects = written_subjects(&subject_chunks);
    insert_all_chunks(&mut transaction, &subject_chunks, Commit::No)
        .await
        .map_err(database)?;
    drop(subject_chunks);
    let deleted = sqlx::query("DELETE FROM event_chunks WHERE subject IS NULL AND seq <= ?1")
        .bind(last_seq)
        .execute(&mut *transaction)
        .await
        .map_err(database)?
        .rows_affected();
    if expected.is_some_and(|expected| u64::try_from(expected) != Ok(deleted)) {
        // Another process compacted some of them, or wrote older ones: dropping the
        // transaction rolls it back.
        return Ok(None);
    }
    let new_last_seq = max_seq(&mut transaction).await.map_err(database)?;
    transaction.commit().await.map_err(database)?;
    // The new chunks hold keys the cache has (it caught up above): no need to read them again.
    cache.read_through_seq = new_last_seq;
    Ok(Some(Compacted {
        moved: u64::try_from(moved).expect("event counts are positive"),
        subjects,
    }))
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
