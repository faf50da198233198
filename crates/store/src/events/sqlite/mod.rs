//! Event queries in SQLite's dialect, and the writer's in-memory key cache.
//!
//! SQLite has one writer at a time. The writer that holds the write lock decides exactly-once
//! from [`KeyCache`], the key hashes of every stored chunk, kept in memory: a random-order
//! on-disk index would cost a random B-tree insert per event (DESIGN.md §6). The cache is only a
//! copy: inside each write transaction, before deciding, the writer reads the key hashes of the
//! chunks appended since it last looked (by another process, such as `billow ingest`, or another
//! `Store`), so its decision always rests on every committed key.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::identity;

use futures_util::TryStreamExt;
use jiff::Timestamp;
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};

use super::codec::decode_key_hashes;
use super::plan::{self, NewChunk, Planner, StoredChunk};
use super::read::ChunkRow;
use super::{Batch, ChunkFilter, CompactEventsError, Compacted, InsertOutcome, KeySet};
use super::{NextBatches, PlanAhead};

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
    /// The group a writer planned during its last commit, for its next turn ([`PlanAhead`]):
    /// its new keys are claimed in `keys` meanwhile.
    ahead: Option<Ahead>,
}

/// A group planned ahead, and by which writer.
struct Ahead {
    writer: u64,
    plan: plan::Plan,
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
            .field("planned_ahead", &self.ahead.is_some())
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
        // Its claims went with the keys.
        self.ahead = None;
    }

    /// Takes back the claims of the group planned ahead, if any: before anything but the turn
    /// it was planned for decides from the cache, and before keys committed by another process
    /// are added (the plan may have claimed one of them as new). Its writer plans the group again.
    fn revoke_ahead(&mut self) {
        if let Some(ahead) = self.ahead.take() {
            give_back(self, &ahead.plan);
        }
    }

    /// The group `writer` planned ahead for this turn (of `batches` batches), still valid; `None`
    /// when there is none, or it was revoked meanwhile, or it is not this turn's (then it is
    /// revoked).
    fn take_ahead(&mut self, writer: u64, batches: usize) -> Option<plan::Plan> {
        match self.ahead.take() {
            Some(ahead) if ahead.writer == writer && ahead.plan.outcomes.len() == batches => {
                Some(ahead.plan)
            }
            Some(other) => {
                give_back(self, &other.plan);
                None
            }
            None => None,
        }
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
    ahead: Option<PlanAhead<'_>>,
) -> Result<Vec<InsertOutcome>, sqlx::Error> {
    on_writer(pool, cache, identity, async |connection, cache| {
        write_transaction(connection, cache, batches, ingested_at, ahead).await
    })
    .await
}

/// Runs `work` on the writer's connection ([`writer_connection`]) under the writer's lock: one
/// writer per store at a time, as SQLite would serialize them anyway. The connection goes back
/// to the cache only when `work` succeeds; one whose transaction failed is dropped, which rolls
/// the transaction back. `database` wraps an error getting the connection.
pub(super) async fn on_writer<T, E>(
    pool: &SqlitePool,
    cache: &tokio::sync::Mutex<KeyCache>,
    database: impl FnOnce(sqlx::Error) -> E,
    work: impl AsyncFnOnce(&mut SqliteConnection, &mut KeyCache) -> Result<T, E>,
) -> Result<T, E> {
    let mut cache = cache.lock().await;
    let mut connection = writer_connection(pool, &mut cache)
        .await
        .map_err(database)?;
    let done = work(&mut connection, &mut cache).await?;
    cache.connection = Some(connection);
    Ok(done)
}

/// The writer's connection: kept in the cache between transactions, or else a connection of the
/// pool, detached from it (the pool opens another in its place when it needs one). Like every
/// connection of the pool it syncs the WAL on every commit (`synchronous=FULL`, set where the
/// pool is opened), so that an acknowledged event survives a power loss. A connection whose
/// transaction failed is dropped, not kept.
async fn writer_connection(
    pool: &SqlitePool,
    cache: &mut KeyCache,
) -> Result<SqliteConnection, sqlx::Error> {
    if let Some(connection) = cache.connection.take() {
        return Ok(connection);
    }
    Ok(pool.acquire().await?.detach())
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
/// open transaction back. With `ahead`, `batches` may have been planned in the writer's last
/// turn, and the next group is planned during this one's commit.
async fn write_transaction(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
    batches: &[Batch<'_>],
    ingested_at: Timestamp,
    ahead: Option<PlanAhead<'_>>,
) -> Result<Vec<InsertOutcome>, sqlx::Error> {
    let planned = match &ahead {
        Some(ahead) => cache.take_ahead(ahead.writer, batches.len()),
        None => {
            cache.revoke_ahead();
            None
        }
    };
    let group = Group {
        batches,
        ingested_at,
        planned,
    };
    if let Some(outcomes) = write_if_caught_up(connection, cache, group, ahead).await? {
        return Ok(outcomes);
    }
    // IMMEDIATE takes the write lock now, so that no other writer appends between the catch-up
    // and the insert.
    catch_up(connection, cache, Begin::Immediate).await?;
    let plan = plan_claiming(cache, batches, ingested_at);
    let mut claims = Claims {
        cache,
        settled: false,
    };
    let seqs = insert_all_chunks(connection, &plan.chunks, Commit::Yes).await?;
    claims.settled = true;
    let cache = &mut *claims.cache;
    if let Some(&last_seq) = seqs.iter().max() {
        committed(cache, plan.chunks, last_seq);
    }
    Ok(plan.outcomes)
}

/// Plans a group, claiming its new keys in the cache (one hash lookup per event): nobody else
/// reads the cache meanwhile, as the writer's lock is held. If the transaction does not commit,
/// the cache forgets its keys ([`Claims`]) or gives them back ([`give_back`]).
fn plan_claiming(
    cache: &mut KeyCache,
    batches: &[Batch<'_>],
    ingested_at: Timestamp,
) -> plan::Plan {
    let mut claimer = Claimer::new(cache);
    plan::plan(
        batches,
        |workspace_id, hash| claimer.claim(workspace_id, hash),
        ingested_at,
    )
}

/// After a group's chunks committed, the largest of their seqs `last_seq`: they are above every
/// other chunk's (the write lock was held), so it is the new watermark; compaction gets them.
fn committed(cache: &mut KeyCache, chunks: Vec<NewChunk>, last_seq: i64) {
    cache.read_through_seq = cache.read_through_seq.max(last_seq);
    cache.remember_written(chunks, last_seq);
}

/// The usual write, in one round trip instead of two: when this writer's cache has read every
/// chunk up to its watermark, it decides from the cache before taking the write lock, then
/// sends `BEGIN IMMEDIATE`, an insert guarded by "no chunk above the watermark" (which is what
/// the catch-up query would find) and `COMMIT` together. When the guard fails (another process
/// wrote since), the statement inserts nothing and the empty transaction commits: nothing was
/// written, for sure, so the keys it claimed are taken out of the cache again, and the answer is
/// `None` (the caller catches up and plans again). A group whose events are all stored already
/// is answered from the cache alone: the cache holds only committed keys.
///
/// With `ahead`, the batches of the next group are planned as they come while this group's
/// statement is on SQLite's thread (planning costs ~0.2 µs per event, mostly the cache's hash
/// lookups, on the writer's serial path otherwise), and the plan is kept in the cache for the
/// writer's next turn. Its claims rest on this group's: when this group is not written, they
/// are taken back too.
async fn write_if_caught_up(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
    group: Group<'_, '_>,
    ahead: Option<PlanAhead<'_>>,
) -> Result<Option<Vec<InsertOutcome>>, sqlx::Error> {
    let watermark = cache.read_through_seq;
    if watermark == 0 {
        // Nothing read yet (a new process, or keys forgotten): catch up first.
        if let Some(plan) = &group.planned {
            give_back(cache, plan);
        }
        return Ok(None);
    }
    let plan = match group.planned {
        Some(plan) => plan,
        None => plan_claiming(cache, group.batches, group.ingested_at),
    };
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
    let mut planner = Planner::default();
    let writer = ahead.as_ref().map(|ahead| ahead.writer);
    let seqs = {
        let cache = &mut *claims.cache;
        let insert = insert_chunks(connection, &plan.chunks, Around::Guarded { watermark });
        match ahead {
            None => insert.await,
            Some(ahead) => {
                // Polled after the insert has handed its statement to SQLite's thread, and
                // dropped when it is done.
                let planning = plan_as_they_come(cache, &mut planner, ahead.next);
                tokio::select! {
                    biased;
                    seqs = insert => seqs,
                    never = planning => match never {},
                }
            }
        }
    };
    // On an error, `claims` forgets every key, those claimed for the next group too.
    let seqs = seqs?;
    claims.settled = true;
    let cache = &mut *claims.cache;
    let next = writer.filter(|_| !planner.is_empty()).map(|writer| Ahead {
        writer,
        plan: planner.finish(),
    });
    let Some(&last_seq) = seqs.iter().max() else {
        // Another process wrote a chunk since the cache last looked; nothing was inserted.
        give_back(cache, &plan);
        if let Some(next) = next {
            give_back(cache, &next.plan);
        }
        return Ok(None);
    };
    committed(cache, plan.chunks, last_seq);
    cache.ahead = next;
    Ok(Some(plan.outcomes))
}

/// Plans the batches of the next group as they come, until dropped.
async fn plan_as_they_come(
    cache: &mut KeyCache,
    planner: &mut Planner,
    next: &mut (dyn NextBatches + Send),
) -> std::convert::Infallible {
    let mut ingested_at = Timestamp::MIN;
    while let Some((batch, batch_ingested_at)) = next.next_batch().await {
        // Never earlier than a batch planned before it in the same chunk.
        ingested_at = ingested_at.max(batch_ingested_at);
        let mut claimer = Claimer::new(cache);
        planner.add(
            &batch,
            |workspace_id, hash| claimer.claim(workspace_id, hash),
            ingested_at,
        );
    }
    std::future::pending().await
}

/// A group to write, and its plan when it was planned ahead.
struct Group<'b, 'a> {
    batches: &'b [Batch<'a>],
    ingested_at: Timestamp,
    planned: Option<plan::Plan>,
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
        cache.revoke_ahead();
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
    // taken again, on a blocking thread, so that commits go on meanwhile; then they are written
    // in slices, the writer committing between them.
    let remembered = cache.lock().await.take_written(events_max);
    let mut not_oldest = false;
    if let Some((log_chunks, last_seq)) = remembered {
        let replaced = Replaced {
            log_chunks: log_chunks.len(),
            last_seq,
        };
        let subject_chunks = tokio::task::spawn_blocking(move || plan::compact(&log_chunks))
            .await
            .map_err(|error| CompactEventsError::Panicked(error.to_string()))??;
        let slices = SliceBytes(COMPACT_SLICE_BYTES);
        if let Some(compacted) =
            compact_in_slices(pool, cache, subject_chunks, replaced, slices).await?
        {
            return Ok(compacted);
        }
        // Not the oldest log chunks any more: read the database.
        not_oldest = true;
    }
    // Under the writer's lock: compaction writes, and keeps the cache's watermark current.
    let database = CompactEventsError::Database;
    let compacted = on_writer(pool, cache, database, async |connection, cache| {
        if not_oldest {
            cache.forget_written();
        }
        compact_log_chunks(connection, cache, events_max).await
    })
    .await?;
    Ok(compacted.unwrap_or(Compacted {
        moved: 0,
        subjects: Vec::new(),
    }))
}

/// Most bytes of subject chunks one transaction of [`compact_in_slices`] writes. The event
/// writer waits for SQLite's write lock while a slice is written, so a slice is kept to about
/// what a few group commits write (~13 ms), not the whole compaction (~100 ms for 250,000 events;
/// `billow bench ingest`).
const COMPACT_SLICE_BYTES: usize = 2 * 1024 * 1024;
/// How many bytes of chunks a slice of a compaction holds, at most (one chunk at least).
#[derive(Clone, Copy)]
struct SliceBytes(usize);

/// Chunk seqs per `IN` list (compaction in slices, merging): far below SQLite's 32,766
/// parameters.
pub(super) const SEQS_PER_QUERY: usize = 10_000;

/// `IN (?, ?, ...)` with `seqs` bound, at most [`SEQS_PER_QUERY`] of them.
pub(super) fn push_seqs(query: &mut QueryBuilder<'_, Sqlite>, seqs: &[i64]) {
    query.push("IN (");
    let mut separated = query.separated(", ");
    for seq in seqs {
        separated.push_bind(*seq);
    }
    query.push(")");
}

/// The log chunks a compaction replaces: how many this writer remembered, and the largest `seq`
/// among them.
struct Replaced {
    log_chunks: usize,
    last_seq: i64,
}

/// Writes `subject_chunks` in slices of at most `slice_bytes` (one chunk at least), each in its own
/// transaction and listed in `event_chunks_pending` (readers and merges skip them), then, in one
/// last transaction, takes them out of that list and deletes the log chunks they replace, which
/// must be exactly the log chunks stored up to `replaced.last_seq`. `None` when they are not
/// (another process compacted some of them, or wrote older ones) or a pending chunk went missing
/// (a store was migrated meanwhile): then the slices are deleted again, and nothing moved.
async fn compact_in_slices(
    pool: &SqlitePool,
    cache: &tokio::sync::Mutex<KeyCache>,
    subject_chunks: Vec<NewChunk>,
    replaced: Replaced,
    slice_bytes: SliceBytes,
) -> Result<Option<Compacted>, CompactEventsError> {
    let moved: u64 = subject_chunks
        .iter()
        .map(|chunk| u64::try_from(chunk.event_count).expect("event counts are positive"))
        .sum();
    let subjects = written_subjects(&subject_chunks);
    let mut pending = Vec::with_capacity(subject_chunks.len());
    let finished = async {
        for slice in slices(&subject_chunks, slice_bytes) {
            let seqs = on_writer(pool, cache, identity, async |connection, cache| {
                write_pending(connection, cache, slice).await
            })
            .await?;
            pending.extend(seqs);
        }
        on_writer(pool, cache, identity, async |connection, cache| {
            finish_pending(connection, cache, &pending, &replaced).await
        })
        .await
    }
    .await;
    if let Ok(true) = finished {
        return Ok(Some(Compacted { moved, subjects }));
    }
    if !pending.is_empty() {
        on_writer(pool, cache, identity, async |connection, _| {
            delete_pending(connection, &pending).await
        })
        .await
        .map_err(CompactEventsError::Database)?;
    }
    finished.map(|_| None).map_err(CompactEventsError::Database)
}

/// `chunks` in runs of at most `bytes_max` bytes of events (at least one chunk each).
fn slices(
    chunks: &[NewChunk],
    SliceBytes(bytes_max): SliceBytes,
) -> impl Iterator<Item = &[NewChunk]> {
    let mut rest = chunks;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let mut end = 0;
        while end < rest.len() && (end == 0 || bytes + rest[end].events.len() <= bytes_max) {
            bytes += rest[end].events.len();
            end += 1;
        }
        let (slice, after) = rest.split_at(end);
        rest = after;
        Some(slice)
    })
}

/// One slice of a compaction: its chunks inserted and listed as pending, in one transaction.
/// Their keys are those of the log chunks they come from, which the cache has.
async fn write_pending(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
    chunks: &[NewChunk],
) -> Result<Vec<i64>, sqlx::Error> {
    let mut transaction = begin_caught_up(connection, cache).await?;
    let seqs = insert_all_chunks(&mut transaction, chunks, Commit::No).await?;
    for piece in seqs.chunks(SEQS_PER_QUERY) {
        let mut query = QueryBuilder::<Sqlite>::new("INSERT INTO event_chunks_pending (seq) ");
        query.push_values(piece, |mut values, seq| {
            values.push_bind(*seq);
        });
        query.build().execute(&mut *transaction).await?;
    }
    transaction.commit().await?;
    // Above every chunk the cache has read: the write lock was held since it caught up.
    if let Some(&last) = seqs.iter().max() {
        cache.read_through_seq = cache.read_through_seq.max(last);
    }
    Ok(seqs)
}

/// The last transaction of a compaction in slices: its chunks no longer pending, the log chunks
/// they replace deleted; `false`, and nothing done, when either does not match exactly.
async fn finish_pending(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
    pending: &[i64],
    replaced: &Replaced,
) -> Result<bool, sqlx::Error> {
    let mut transaction = begin_caught_up(connection, cache).await?;
    let mut listed = 0;
    for piece in pending.chunks(SEQS_PER_QUERY) {
        let mut query = QueryBuilder::<Sqlite>::new("DELETE FROM event_chunks_pending WHERE seq ");
        push_seqs(&mut query, piece);
        listed += query
            .build()
            .execute(&mut *transaction)
            .await?
            .rows_affected();
    }
    let deleted = sqlx::query("DELETE FROM event_chunks WHERE subject IS NULL AND seq <= ?1")
        .bind(replaced.last_seq)
        .execute(&mut *transaction)
        .await?
        .rows_affected();
    if u64::try_from(pending.len()) != Ok(listed)
        || u64::try_from(replaced.log_chunks) != Ok(deleted)
    {
        // Dropping the transaction rolls it back.
        return Ok(false);
    }
    transaction.commit().await?;
    Ok(true)
}

/// Deletes the chunks of an unfinished compaction that are still pending. A chunk no longer
/// listed was made visible by a last transaction that did commit (its error came after), and
/// holds the only copy of its events: it stays.
async fn delete_pending(
    connection: &mut SqliteConnection,
    pending: &[i64],
) -> Result<(), sqlx::Error> {
    let mut transaction = connection.begin_with("BEGIN IMMEDIATE").await?;
    for piece in pending.chunks(SEQS_PER_QUERY) {
        // The chunks first, while they are still listed.
        for table in ["event_chunks", "event_chunks_pending"] {
            let mut query = QueryBuilder::<Sqlite>::new(format!(
                "DELETE FROM {table} WHERE seq IN (SELECT seq FROM event_chunks_pending) AND seq "
            ));
            push_seqs(&mut query, piece);
            query.build().execute(&mut *transaction).await?;
        }
    }
    transaction.commit().await
}

/// Deletes the chunks of compactions a process left pending when it stopped half way, and their
/// listing (`Store::migrate`). A compaction of another process still running then finds its
/// chunks gone and moves nothing; it is retried later.
pub(crate) async fn delete_abandoned_pending_chunks(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM event_chunks WHERE seq IN (SELECT seq FROM event_chunks_pending); \
         DELETE FROM event_chunks_pending",
    )
    .execute(pool)
    .await
    .map(drop)
}

/// Replaces the oldest log chunks of the database by subject chunks, in one transaction (after
/// a restart, or when another process wrote: [`compact`]); `None` when there are none.
async fn compact_log_chunks(
    connection: &mut SqliteConnection,
    cache: &mut KeyCache,
    events_max: i64,
) -> Result<Option<Compacted>, CompactEventsError> {
    let database = CompactEventsError::Database;
    let mut transaction = begin_caught_up(connection, cache).await.map_err(database)?;
    let log_chunks = oldest_log_chunks(&mut transaction, events_max)
        .await
        .map_err(database)?;
    let Some(last) = log_chunks.last() else {
        return Ok(None);
    };
    let last_seq = last.seq;
    let subject_chunks = plan::compact(&log_chunks)?;
    drop(log_chunks);
    let moved: i64 = subject_chunks
        .iter()
        .map(|chunk| i64::from(chunk.event_count))
        .sum();
    let subjects = written_subjects(&subject_chunks);
    insert_all_chunks(&mut transaction, &subject_chunks, Commit::No)
        .await
        .map_err(database)?;
    drop(subject_chunks);
    sqlx::query("DELETE FROM event_chunks WHERE subject IS NULL AND seq <= ?1")
        .bind(last_seq)
        .execute(&mut *transaction)
        .await
        .map_err(database)?;
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
        // By subject, then by the times or the ingestion instants the filter bounds: SQLite
        // would otherwise pick the workspace's index of ingestion instants (0017) and scan every
        // chunk ingested since an instant for a few subjects.
        let index = match filter {
            ChunkFilter::Period { .. } => "event_chunks_subject_time",
            ChunkFilter::IngestedAfter { .. } | ChunkFilter::Late { .. } => {
                "event_chunks_subject_ingested"
            }
        };
        let mut builder = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
            "SELECT seq, subject IS NULL AS log, subject, event_count, events FROM event_chunks \
             INDEXED BY {index} WHERE workspace_id = "
        ));
        builder.push_bind(workspace_id);
        match piece {
            Some(piece) => {
                builder.push(" AND subject IN (");
                let mut separated = builder.separated(", ");
                for subject in piece {
                    separated.push_bind(*subject);
                }
                builder.push(") AND seq NOT IN (SELECT seq FROM event_chunks_pending)");
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
            ChunkFilter::Late {
                since_us,
                before_us,
                ..
            } => {
                builder.push(" AND ingested_max_us > ").push_bind(since_us);
                builder.push(" AND time_min_us < ").push_bind(before_us);
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

/// Every chunk of the workspace that may hold an event `filter` (a period) wants, whatever its
/// subject: the subject chunks not still being written by a compaction in slices, and the log
/// chunks, in one statement (one snapshot).
pub(super) async fn select_workspace_chunks(
    pool: &SqlitePool,
    workspace_id: &str,
    filter: ChunkFilter,
) -> Result<Vec<ChunkRow>, sqlx::Error> {
    let ChunkFilter::Period { from_us, to_us, .. } = filter else {
        unreachable!("a workspace's usage is read by period")
    };
    sqlx::query_as(
        "SELECT seq, subject IS NULL AS log, subject, event_count, events FROM event_chunks \
         WHERE workspace_id = ?1 AND time_max_us >= ?2 AND time_min_us <= ?3 \
         AND (subject IS NULL OR seq NOT IN (SELECT seq FROM event_chunks_pending))",
    )
    .bind(workspace_id)
    .bind(from_us)
    .bind(to_us)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;

    use super::*;
    use crate::events::NewEvent;
    use crate::store::{Backend, Store};
    use crate::WorkspaceId;

    /// `count` events with ids `{round}-{n}`, of the subjects cus_0, cus_1, cus_2 in turn.
    fn round_of_events(round: &str, count: i64) -> Vec<NewEvent> {
        (0..count)
            .map(|n| NewEvent {
                source: "agent".into(),
                id: format!("{round}-{n}"),
                event_type: "cpu".into(),
                subject: format!("cus_{}", n % 3),
                time: Timestamp::from_second(1_800_000_000 + n).unwrap(),
                data: None,
            })
            .collect()
    }

    /// A store with 30 events of three subjects committed to log chunks, and what its writer
    /// remembers of them, regrouped into subject chunks as compaction does.
    async fn with_log_chunks(
        directory: &std::path::Path,
    ) -> (Store, WorkspaceId, Vec<NewChunk>, Replaced) {
        let (store, workspace) = crate::events::sqlite_store_with_acme(directory).await;
        for round in 0..3 {
            let events = round_of_events(&round.to_string(), 10);
            store
                .insert_events(&workspace.id, &events, Timestamp::now())
                .await
                .unwrap();
        }
        let (log_chunks, last_seq) = store
            .events
            .sqlite_keys
            .lock()
            .await
            .take_written(1_000)
            .unwrap();
        let replaced = Replaced {
            log_chunks: log_chunks.len(),
            last_seq,
        };
        let subject_chunks = plan::compact(&log_chunks).unwrap();
        (store, workspace.id, subject_chunks, replaced)
    }

    fn pool(store: &Store) -> &SqlitePool {
        match &store.backend {
            Backend::Sqlite(pool) => pool,
            Backend::Postgres(_) => unreachable!("a SQLite store"),
        }
    }

    async fn read_all(store: &Store, workspace_id: &WorkspaceId) -> usize {
        let subjects: Vec<String> = (0..3).map(|n| format!("cus_{n}")).collect();
        store
            .usage_events(workspace_id, &subjects, Timestamp::MIN, Timestamp::MAX)
            .await
            .unwrap()
            .len()
    }

    async fn count(store: &Store, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(pool(store))
            .await
            .unwrap()
    }

    /// One chunk per slice: three transactions of pending chunks, then the one that shows them
    /// and deletes the log chunks. Each event is read once, and nothing stays pending.
    #[tokio::test]
    async fn a_compaction_in_slices_moves_each_event_once() {
        let directory = tempfile::tempdir().unwrap();
        let (store, workspace_id, subject_chunks, replaced) =
            with_log_chunks(directory.path()).await;
        assert_eq!(subject_chunks.len(), 3);

        let compacted = compact_in_slices(
            pool(&store),
            &store.events.sqlite_keys,
            subject_chunks,
            replaced,
            SliceBytes(1),
        )
        .await
        .unwrap()
        .expect("the log chunks were those remembered");

        assert_eq!(compacted.moved, 30);
        assert_eq!(read_all(&store, &workspace_id).await, 30);
        assert_eq!(
            count(&store, "SELECT count(*) FROM event_chunks_pending").await,
            0
        );
        assert_eq!(
            count(
                &store,
                "SELECT count(*) FROM event_chunks WHERE subject IS NULL"
            )
            .await,
            0
        );
        assert_eq!(count(&store, "SELECT count(*) FROM event_chunks").await, 3);
    }

    /// Pending chunks are not read; when a migration deletes them half way (another process
    /// starting), the compaction moves nothing and leaves nothing behind, and a later one moves
    /// everything from the database.
    #[tokio::test]
    async fn pending_chunks_are_not_read_and_a_compaction_that_lost_them_moves_nothing() {
        let directory = tempfile::tempdir().unwrap();
        let (store, workspace_id, subject_chunks, replaced) =
            with_log_chunks(directory.path()).await;
        let cache = &store.events.sqlite_keys;
        let mut guard = cache.lock().await;
        let mut connection = writer_connection(pool(&store), &mut guard).await.unwrap();
        let pending = write_pending(&mut connection, &mut guard, &subject_chunks[..2])
            .await
            .unwrap();
        drop(guard);

        let read_while_pending = read_all(&store, &workspace_id).await;
        let workspace_while_pending = store
            .workspace_usage_events(&workspace_id, Timestamp::MIN, Timestamp::MAX)
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let mut guard = cache.lock().await;
        let finished = finish_pending(&mut connection, &mut guard, &pending, &replaced)
            .await
            .unwrap();
        drop(guard);

        assert_eq!(
            read_while_pending, 30,
            "the pending chunks are not read twice"
        );
        assert_eq!(
            workspace_while_pending.len(),
            30,
            "nor by a read of every subject"
        );
        assert!(workspace_while_pending.is_sorted_by_key(|event| event.time));
        assert!(
            !finished,
            "two pending chunks were deleted by the migration"
        );
        assert_eq!(read_all(&store, &workspace_id).await, 30);
        assert_eq!(
            count(&store, "SELECT count(*) FROM event_chunks").await,
            3,
            "the log chunks"
        );
        assert_eq!(store.compact_events(1_000).await.unwrap(), 30);
        assert_eq!(read_all(&store, &workspace_id).await, 30);
    }

    /// A compaction that fails after its slices (here: the log chunks are not those it remembers)
    /// deletes them again.
    #[tokio::test]
    async fn a_compaction_that_cannot_finish_deletes_its_slices() {
        let directory = tempfile::tempdir().unwrap();
        let (store, workspace_id, subject_chunks, replaced) =
            with_log_chunks(directory.path()).await;
        let wrong = Replaced {
            log_chunks: replaced.log_chunks + 1,
            last_seq: replaced.last_seq,
        };

        let compacted = compact_in_slices(
            pool(&store),
            &store.events.sqlite_keys,
            subject_chunks,
            wrong,
            SliceBytes(1),
        )
        .await
        .unwrap();

        assert!(compacted.is_none());
        assert_eq!(
            count(&store, "SELECT count(*) FROM event_chunks_pending").await,
            0
        );
        assert_eq!(
            count(&store, "SELECT count(*) FROM event_chunks").await,
            3,
            "the log chunks"
        );
        assert_eq!(read_all(&store, &workspace_id).await, 30);
    }

    /// A merge neither reads a pending chunk nor goes ahead while one of its subjects has one,
    /// even below the newest chunk it read: shown later with a smaller seq than the merged
    /// chunk's, it would be read before older events.
    #[tokio::test]
    async fn merging_skips_pending_chunks_and_waits_for_them() {
        let directory = tempfile::tempdir().unwrap();
        let (store, workspace_id, subject_chunks, replaced) =
            with_log_chunks(directory.path()).await;
        let cache = &store.events.sqlite_keys;
        let compact_whole = async |chunks: Vec<NewChunk>, replaced: Replaced| {
            compact_in_slices(
                pool(&store),
                cache,
                chunks,
                replaced,
                SliceBytes(usize::MAX),
            )
            .await
            .unwrap()
            .expect("compacted");
        };
        compact_whole(subject_chunks, replaced).await;
        let write_round = async |round: &str| {
            let events = round_of_events(round, 3);
            store
                .insert_events(&workspace_id, &events, Timestamp::now())
                .await
                .unwrap();
            let (log_chunks, last_seq) = cache.lock().await.take_written(1_000).unwrap();
            let replaced = Replaced {
                log_chunks: log_chunks.len(),
                last_seq,
            };
            (plan::compact(&log_chunks).unwrap(), replaced)
        };
        let subjects = vec!["cus_0".to_owned()];
        let workspace = workspace_id.as_str();

        // A pending chunk of cus_0, then a visible one above it.
        let (pending_chunks, _) = write_round("pending").await;
        let pending = on_writer(pool(&store), cache, identity, async |connection, cache| {
            write_pending(connection, cache, &pending_chunks).await
        })
        .await
        .unwrap();
        let (visible_chunks, replaced) = write_round("visible").await;
        // Its last transaction deletes the pending round's log chunk too (older): only the
        // order of the chunks matters here.
        let replaced = Replaced {
            log_chunks: replaced.log_chunks + 1,
            ..replaced
        };
        compact_whole(visible_chunks, replaced).await;
        let (shapes, newer) = on_writer(pool(&store), cache, identity, async |connection, _| {
            let shapes = merge::chunk_shapes(connection, workspace, &subjects).await?;
            let newest = shapes[0].1.iter().map(|shape| shape.seq).max().unwrap();
            let newer = merge::newer_chunks(connection, workspace, &subjects, newest).await?;
            Ok((shapes, newer))
        })
        .await
        .unwrap();

        let seqs: Vec<i64> = shapes[0].1.iter().map(|shape| shape.seq).collect();
        assert_eq!(seqs.len(), 2, "the two visible chunks of cus_0: {seqs:?}");
        assert!(
            pending.iter().all(|seq| !seqs.contains(seq)),
            "the pending chunk is not merged"
        );
        assert!(newer, "a pending chunk below the newest counts as newer");
    }

    /// The next group of a writer, one batch that is there at once ([`PlanAhead`]).
    struct OneBatch<'a> {
        workspace_id: &'a WorkspaceId,
        events: &'a [NewEvent],
        hashes: Vec<u128>,
        given: bool,
    }

    impl<'a> OneBatch<'a> {
        fn new(workspace_id: &'a WorkspaceId, events: &'a [NewEvent]) -> Self {
            let hashes = events.iter().map(NewEvent::key_hash).collect();
            Self {
                workspace_id,
                events,
                hashes,
                given: false,
            }
        }
    }

    impl NextBatches for OneBatch<'_> {
        fn next_batch(
            &mut self,
        ) -> futures_util::future::BoxFuture<'_, Option<(Batch<'_>, Timestamp)>> {
            Box::pin(async move {
                if std::mem::replace(&mut self.given, true) {
                    return std::future::pending().await;
                }
                let batch = Batch {
                    workspace_id: self.workspace_id,
                    events: self.events,
                    hashes: &self.hashes,
                    encoded: None,
                };
                Some((batch, Timestamp::now()))
            })
        }
    }

    /// A turn of writer 7: commits `events`, planning `next` meanwhile.
    async fn turn(
        store: &Store,
        workspace_id: &WorkspaceId,
        events: &[NewEvent],
        next: Option<&mut OneBatch<'_>>,
    ) -> InsertOutcome {
        let ahead = next.map(|next| PlanAhead { writer: 7, next });
        store
            .insert_batch(workspace_id, events, Timestamp::now(), ahead)
            .await
            .unwrap()
    }

    /// A store, and another on the same file (another process).
    async fn two_processes(directory: &std::path::Path) -> (Store, Store, WorkspaceId) {
        let (store, workspace) = crate::events::sqlite_store_with_acme(directory).await;
        let other = Store::open(&crate::Database::sqlite(directory.join("billow.db")))
            .await
            .unwrap();
        (store, other, workspace.id)
    }

    /// Writer 7 commits round a, then round c, planning round b during c's commit; b's events.
    async fn b_planned_during_c(store: &Store, workspace_id: &WorkspaceId) -> Vec<NewEvent> {
        turn(store, workspace_id, &round_of_events("a", 3), None).await;
        let later = round_of_events("b", 3);
        let mut next = OneBatch::new(workspace_id, &later);
        turn(
            store,
            workspace_id,
            &round_of_events("c", 3),
            Some(&mut next),
        )
        .await;
        assert!(
            planned_ahead(store).await,
            "b was planned during c's commit"
        );
        later
    }

    async fn planned_ahead(store: &Store) -> bool {
        store.events.sqlite_keys.lock().await.ahead.is_some()
    }

    /// A write that is not the planning writer's next turn decides first: the keys planned ahead
    /// are taken back, so its events are new to it, and the writer's turn plans them again.
    #[tokio::test]
    async fn another_write_takes_back_what_was_planned_ahead() {
        let directory = tempfile::tempdir().unwrap();
        let (store, workspace) = crate::events::sqlite_store_with_acme(directory.path()).await;
        let ws = &workspace.id;
        let later = b_planned_during_c(&store, ws).await;

        let other = store
            .insert_events(ws, &later, Timestamp::now())
            .await
            .unwrap();
        let own_turn = turn(&store, ws, &later, None).await;

        assert_eq!((other.inserted, other.duplicates), (3, 0));
        assert_eq!((own_turn.inserted, own_turn.duplicates), (0, 3));
        assert_eq!(read_all(&store, ws).await, 9);
    }

    /// Another process stores the events planned ahead, and this process's compaction reads their
    /// keys before the writer's next turn: that takes the plan back, so they are not stored twice.
    #[tokio::test]
    async fn keys_read_from_another_process_take_back_what_was_planned_ahead() {
        let directory = tempfile::tempdir().unwrap();
        let (store, other, ws) = two_processes(directory.path()).await;
        let ws = &ws;
        let later = b_planned_during_c(&store, ws).await;
        let by_other = other
            .insert_events(ws, &later, Timestamp::now())
            .await
            .unwrap();
        assert_eq!(by_other.inserted, 3);

        assert_eq!(
            store.compact_events(1_000).await.unwrap(),
            6,
            "a and c moved"
        );
        let own_turn = turn(&store, ws, &later, None).await;

        assert_eq!((own_turn.inserted, own_turn.duplicates), (0, 3));
        assert_eq!(read_all(&store, ws).await, 9);
    }

    /// The group whose commit found another process's chunk (its guard failed) is written after
    /// catching up; the keys planned ahead during it were taken back, so the next turn stores them.
    #[tokio::test]
    async fn a_commit_that_found_another_write_takes_back_what_was_planned_ahead() {
        let directory = tempfile::tempdir().unwrap();
        let (store, other, ws) = two_processes(directory.path()).await;
        let ws = &ws;
        turn(&store, ws, &round_of_events("a", 3), None).await;
        other
            .insert_events(ws, &round_of_events("x", 3), Timestamp::now())
            .await
            .unwrap();
        let later = round_of_events("b", 3);
        let mut next = OneBatch::new(ws, &later);

        let current = turn(&store, ws, &round_of_events("c", 3), Some(&mut next)).await;
        let own_turn = turn(&store, ws, &later, None).await;

        assert_eq!(current.inserted, 3);
        assert_eq!((own_turn.inserted, own_turn.duplicates), (3, 0));
        assert_eq!(read_all(&store, ws).await, 12);
    }
}
