//! [`EventWriter`]: group commit for concurrent callers.
//!
//! Every durable commit costs a sync of the log (SQLite's WAL, PostgreSQL's WAL), about 0.4 ms
//! on our disks (DESIGN.md §6), whatever its size. So one task per writer takes whatever batches
//! are waiting, up to [`GROUP_EVENTS_MAX`] events, writes them in one transaction, and answers
//! every caller of the group after the commit. On SQLite the batches that come while a group
//! commits are planned meanwhile, and are the next group ([`PlanAhead`]).
//!
//! A commit appends log chunks; after [`COMPACT_AFTER_EVENTS`] events, or when no batch has come
//! for [`IDLE_BEFORE_COMPACTION`], the writer asks a compaction task to move them into chunks per
//! subject, then merge the small chunks of the subjects compaction keeps writing to
//! ([`Store::merge_event_chunks`]). The task works beside the commits: on SQLite they take turns
//! on the one write lock, but compaction decodes and encodes before it takes it. While the writer
//! is saturated ([`WriterActivity`]), compaction waits until [`BURST_EVENTS`] wait for it, and
//! merging until a subject has [`MERGE_PUT_OFF_CHUNKS_MAX`] chunks to merge: a burst is written
//! once, at full speed, and compacted after (docs/ingestion.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::activity::{Window, WriterActivity};
use super::codec::EncodedBatch;
use super::{Batch, InsertEventsError, InsertOutcome, NewEvent, NextBatches, PlanAhead};
use crate::store::{Backend, Store};
use crate::WorkspaceId;

/// Most events one group commit writes. Past it, waiting batches go to the next commit.
pub const GROUP_EVENTS_MAX: usize = 100_000;
/// Most batches waiting for a writer: callers past it wait for room (backpressure).
const QUEUE_BATCHES_MAX: usize = 1_024;
/// Compaction runs once this many events were committed since the last one (reads decode the
/// log chunks not compacted yet, so this bounds their cost)...
const COMPACT_AFTER_EVENTS: u64 = 250_000;
/// ... but while the writer is saturated ([`WriterActivity::saturated`]), compaction and merging
/// wait until this many events wait for compaction: a burst of up to about this many events is
/// written once (to log chunks), at the writer's full speed, and compacted when it is over.
/// Reads meanwhile decode the log chunks not compacted yet (about 60 bytes per event).
const BURST_EVENTS: u64 = 2_000_000;
/// Most events the writers commit ahead of compaction: past it, a writer waits for the compaction
/// task before its next commit (backpressure), so that reads never decode more log chunks than this.
pub(super) const COMPACTION_BACKLOG_MAX: u64 = BURST_EVENTS + 2 * COMPACT_AFTER_EVENTS;
/// How often a writer held back by the backlog looks again.
const BACKLOG_POLL: Duration = Duration::from_millis(1);
/// How often compaction and merging, yielding to a saturated writer, look again.
const YIELD_POLL: Duration = Duration::from_millis(2);
/// ... or when no batch has come for this long.
const IDLE_BEFORE_COMPACTION: Duration = Duration::from_millis(500);
/// Most events one compaction moves (one transaction): as many as one request for compaction
/// asks for under a steady load. It holds SQLite's write lock, which other writers wait for (5 s at
/// most): after a million events, `billow bench ingest` compacted the 243,000 left, reads from the
/// database included, in 0.21 s. Fewer per transaction would make smaller subject chunks, which
/// merging then rewrites more often: at 100,000 the ingestion bench ran 565k events/s against 631k
/// (alternating runs of `billow bench ingest`).
const COMPACT_EVENTS_MAX: u64 = COMPACT_AFTER_EVENTS;
/// While the writer is saturated, merging waits until compaction has written this many chunks of
/// one subject since it was last merged (a read of the subject then reads that many more chunks).
/// Merging rewrites each event a few times; during five million events in a row, putting it off
/// entirely ran 633,086 events/s against 502,224 (medians of two; BENCHMARKS.md, "Ingestion").
const MERGE_PUT_OFF_CHUNKS_MAX: u32 = 32;
/// Most events one merge transaction rewrites: it holds the write lock too.
const MERGE_EVENTS_MAX: u64 = 100_000;
/// SQLite has one writer; PostgreSQL commits concurrent transactions in parallel, and a second
/// writer keeps the database busy while the first waits for its commit.
const POSTGRES_WRITERS: usize = 2;

struct Request {
    workspace_id: WorkspaceId,
    events: Vec<NewEvent>,
    hashes: Vec<u128>,
    encoded: Option<EncodedBatch>,
    ingested_at: Timestamp,
    reply: oneshot::Sender<Result<InsertOutcome, InsertEventsError>>,
}

/// Group-commits the batches of concurrent callers. Cheap to clone; the writer tasks start with
/// the first write (on the runtime it runs on) and stop when the last clone is dropped.
#[derive(Clone, Debug)]
pub struct EventWriter {
    store: Store,
    sender: Arc<OnceLock<mpsc::Sender<Request>>>,
}

impl EventWriter {
    /// A writer for `store`.
    pub fn new(store: Store) -> Self {
        Self {
            store,
            sender: Arc::default(),
        }
    }

    fn sender(&self) -> &mpsc::Sender<Request> {
        self.sender.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE_BATCHES_MAX);
            let writers = match self.store.backend {
                Backend::Sqlite(_) => 1,
                Backend::Postgres(_) => POSTGRES_WRITERS,
            };
            let receiver = Arc::new(Mutex::new(receiver));
            let (compactor, wake) = Compactor::new();
            for _ in 0..writers {
                tokio::spawn(run(self.store.clone(), receiver.clone(), compactor.clone()));
            }
            // Compaction yields to the writers, within bounds.
            let activity = self.store.events.writer_activity.clone();
            tokio::spawn(compact_when_asked(
                self.store.clone(),
                compactor,
                wake,
                activity,
            ));
            sender
        })
    }

    /// Stores `events` as [`Store::insert_events`] does, in a transaction shared with the batches
    /// of other callers; answers after it commits. A group records the latest `ingested_at` of
    /// its callers on all its events; a group planned ahead ([`PlanAhead`]), the latest of its
    /// callers so far on each caller's events (never earlier than the caller's own).
    ///
    /// # Errors
    ///
    /// [`WriteEventsError`] when the group's transaction fails (nothing of it is stored) or the
    /// writer has stopped.
    pub async fn write(
        &self,
        workspace_id: WorkspaceId,
        events: Vec<NewEvent>,
        ingested_at: Timestamp,
    ) -> Result<InsertOutcome, WriteEventsError> {
        let (reply, answer) = oneshot::channel();
        // Hashed and encoded here, on the caller's thread, so that the one writer task does not.
        let hashes = events.iter().map(NewEvent::key_hash).collect();
        let encoded = EncodedBatch::new(&events);
        let request = Request {
            workspace_id,
            events,
            hashes,
            encoded,
            ingested_at,
            reply,
        };
        self.sender()
            .send(request)
            .await
            .map_err(|_| WriteEventsError::Stopped)?;
        answer
            .await
            .map_err(|_| WriteEventsError::Stopped)?
            .map_err(WriteEventsError::Insert)
    }
}

/// How the writers ask the compaction task for work: events to compact (added up, `u64::MAX` for
/// everything), and a wake-up; and the backlog, the events committed and not compacted yet. The
/// task stops once every writer has (their wake-up senders are dropped).
#[derive(Clone)]
struct Compactor {
    events: Arc<AtomicU64>,
    backlog: Arc<AtomicU64>,
    wake: mpsc::Sender<()>,
}

impl Compactor {
    fn new() -> (Self, mpsc::Receiver<()>) {
        let (wake, woken) = mpsc::channel(1);
        let compactor = Self {
            events: Arc::default(),
            backlog: Arc::default(),
            wake,
        };
        (compactor, woken)
    }

    fn ask(&self, events: u64) {
        let _ = self
            .events
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |asked| {
                Some(asked.saturating_add(events))
            });
        // A wake-up already waiting covers this request too.
        let _ = self.wake.try_send(());
    }

    fn committed(&self, events: u64) {
        self.backlog.fetch_add(events, Ordering::AcqRel);
    }

    /// Waits while the backlog is past [`COMPACTION_BACKLOG_MAX`]. The compaction task lowers it
    /// as it moves events, and clears it when it finds nothing more to move (or fails), so a
    /// writer never waits for a compaction that is not coming.
    async fn wait_for_room(&self) {
        while self.backlog.load(Ordering::Acquire) > COMPACTION_BACKLOG_MAX {
            tokio::time::sleep(BACKLOG_POLL).await;
        }
    }
}

/// Tells the writer tasks apart, for the groups they plan ahead ([`PlanAhead`]).
static WRITERS: AtomicU64 = AtomicU64::new(1);

async fn run(store: Store, receiver: Arc<Mutex<mpsc::Receiver<Request>>>, compactor: Compactor) {
    let writer = WRITERS.fetch_add(1, Ordering::Relaxed);
    let activity = store.events.writer_activity.clone();
    let mut window = Window::new(&activity);
    // Events this task committed to log chunks since it last asked for compaction.
    let mut uncompacted: u64 = 0;
    // Whether an idle moment should compact: after a commit, and once at start (for what an
    // earlier process left), not every idle moment forever.
    let mut compact_when_idle = true;
    // On SQLite, the batches that come while a group commits are planned meanwhile
    // ([`PlanAhead`]), and are the next group.
    let plan_ahead = matches!(store.backend, Backend::Sqlite(_));
    let mut next: Vec<Request> = Vec::new();
    loop {
        let group = if next.is_empty() {
            let mut receiver = receiver.lock().await;
            let first = match receiver.try_recv() {
                Ok(first) => Ok(Some(first)),
                // Nothing waits (or the channel is closed, which `recv` tells).
                Err(_) => {
                    let first = tokio::time::timeout(IDLE_BEFORE_COMPACTION, receiver.recv());
                    window.wait(first).await
                }
            };
            match first {
                Ok(Some(first)) => Some(take_group(&mut receiver, first)),
                Ok(None) => return,
                Err(_idle) => None,
            }
        } else {
            Some(std::mem::take(&mut next))
        };
        match group {
            Some(group) => {
                compactor.wait_for_room().await;
                let committed = if plan_ahead {
                    let mut receiver = receiver.lock().await;
                    let mut upcoming = Upcoming {
                        receiver: &mut receiver,
                        requests: Vec::new(),
                        events: 0,
                    };
                    let ahead = PlanAhead {
                        writer,
                        next: &mut upcoming,
                    };
                    let committed = commit(&store, group, Some(ahead)).await;
                    next = upcoming.requests;
                    committed
                } else {
                    commit(&store, group, None).await
                };
                window.roll();
                compactor.committed(committed);
                uncompacted += committed;
                compact_when_idle = true;
                if uncompacted >= COMPACT_AFTER_EVENTS {
                    // As many events as came since the last compaction, so the backlog stays
                    // bounded under a sustained load.
                    compactor.ask(uncompacted);
                    uncompacted = 0;
                }
            }
            None if compact_when_idle => {
                // Idle: compact whatever is left, this process's or another's.
                compactor.ask(u64::MAX);
                uncompacted = 0;
                compact_when_idle = false;
            }
            None => {}
        }
    }
}

/// The compaction task: compacts what the writers ask for, then merges, beside their commits.
/// Compaction does its decoding and encoding before it takes the writer's lock (SQLite), which
/// it holds only to write; merging holds it throughout.
async fn compact_when_asked(
    store: Store,
    compactor: Compactor,
    mut woken: mpsc::Receiver<()>,
    activity: Arc<WriterActivity>,
) {
    let Compactor {
        events,
        backlog,
        wake,
    } = compactor;
    // Only the writers' senders keep the task alive.
    drop(wake);
    while woken.recv().await.is_some() {
        let mut asked = events.swap(0, Ordering::AcqRel);
        while asked > 0 {
            yield_to_writers(&activity, &backlog).await;
            let moved = compact(&store).await;
            if moved == 0 {
                // Nothing left to move (or compaction failed, and is retried later): no writer
                // waits for it.
                backlog.store(0, Ordering::Release);
                break;
            }
            let _ = backlog.fetch_update(Ordering::AcqRel, Ordering::Acquire, |events| {
                Some(events.saturating_sub(moved))
            });
            asked = asked.saturating_sub(moved);
        }
        merge(&store, &activity).await;
    }
}

/// Waits while the writers are saturated, unless [`BURST_EVENTS`] wait for compaction.
async fn yield_to_writers(activity: &WriterActivity, backlog: &AtomicU64) {
    while activity.saturated() && backlog.load(Ordering::Acquire) < BURST_EVENTS {
        tokio::time::sleep(YIELD_POLL).await;
    }
}

/// The first request and whatever else is waiting, up to [`GROUP_EVENTS_MAX`] events.
fn take_group(receiver: &mut mpsc::Receiver<Request>, first: Request) -> Vec<Request> {
    let mut events_total = first.events.len();
    let mut group = vec![first];
    while events_total < GROUP_EVENTS_MAX {
        let Ok(next) = receiver.try_recv() else {
            break;
        };
        events_total += next.events.len();
        group.push(next);
    }
    group
}

/// Compacts up to [`COMPACT_EVENTS_MAX`] events; how many it moved (0 after an error, which is
/// logged: compaction is retried later, and reads do not depend on it).
async fn compact(store: &Store) -> u64 {
    match store.compact_events(COMPACT_EVENTS_MAX).await {
        Ok(moved) => moved,
        Err(error) => {
            tracing::error!(error.message = %error, error.cause_chain = ?error, "compaction failed");
            0
        }
    }
}

/// Merges the small chunks of every subject due for it, one transaction at a time (errors are
/// logged: the subjects stay due, and reads do not depend on merging). While the writer is
/// saturated, it stops (the next compaction, or the writer's idle moment, comes back to it),
/// unless a subject has [`MERGE_PUT_OFF_CHUNKS_MAX`] chunks to merge.
async fn merge(store: &Store, activity: &WriterActivity) {
    loop {
        if activity.saturated() && store.most_unmerged_chunks() < MERGE_PUT_OFF_CHUNKS_MAX {
            return;
        }
        match store.merge_event_chunks(MERGE_EVENTS_MAX).await {
            Ok(outcome) if outcome.subjects == 0 => return,
            Ok(_) => {}
            Err(error) => {
                tracing::error!(error.message = %error, error.cause_chain = ?error, "merging chunks failed");
                return;
            }
        }
    }
}

#[tracing::instrument(skip_all, fields(batches = group.len()))]
/// Writes a group and answers its callers; how many events it stored. With `ahead`, the next
/// group is taken and planned meanwhile.
async fn commit(store: &Store, group: Vec<Request>, ahead: Option<PlanAhead<'_>>) -> u64 {
    let (batches, ingested_at) = batches_of(&group);
    let result = store.insert_batches(&batches, ingested_at, ahead).await;
    drop(batches);
    match result {
        Ok(outcomes) => {
            let inserted = outcomes.iter().map(|outcome| outcome.inserted).sum();
            for (request, outcome) in group.into_iter().zip(outcomes) {
                // A caller that gave up (its connection closed) no longer listens; its events
                // are stored all the same, and a retry will find them duplicates.
                let _ = request.reply.send(Ok(outcome));
            }
            inserted
        }
        Err(error) => {
            tracing::error!(error.message = %error, error.cause_chain = ?error, "group commit failed");
            for request in group {
                let _ = request.reply.send(Err(error.clone()));
            }
            0
        }
    }
}

/// The next group, taken a request at a time while the current one commits ([`PlanAhead`]).
struct Upcoming<'r> {
    receiver: &'r mut mpsc::Receiver<Request>,
    requests: Vec<Request>,
    events: usize,
}

impl NextBatches for Upcoming<'_> {
    fn next_batch(&mut self) -> BoxFuture<'_, Option<(Batch<'_>, Timestamp)>> {
        Box::pin(async move {
            if self.events >= GROUP_EVENTS_MAX {
                // Full: the rest waits for the group after.
                return std::future::pending().await;
            }
            // Cancel-safe; and nothing below awaits.
            let request = self.receiver.recv().await?;
            self.events += request.events.len();
            self.requests.push(request);
            let request = self.requests.last().expect("pushed above");
            Some((batch_of(request), request.ingested_at))
        })
    }
}

fn batch_of(request: &Request) -> Batch<'_> {
    Batch {
        workspace_id: &request.workspace_id,
        events: &request.events,
        hashes: &request.hashes,
        encoded: request.encoded.as_ref(),
    }
}

/// The batches of a group, and the instant its events are recorded as ingested at: the latest
/// of its requests'.
fn batches_of(group: &[Request]) -> (Vec<Batch<'_>>, Timestamp) {
    let batches = group.iter().map(batch_of).collect();
    let ingested_at = group
        .iter()
        .map(|request| request.ingested_at)
        .max()
        .expect("a group has a first request");
    (batches, ingested_at)
}

/// Why [`EventWriter::write`] failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteEventsError {
    #[error(transparent)]
    Insert(InsertEventsError),
    #[error("the event writer has stopped")]
    Stopped,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A store with three events in a log chunk.
    async fn store_with_a_log_chunk(directory: &std::path::Path) -> Store {
        let (store, workspace) = crate::events::sqlite_store_with_acme(directory).await;
        let events: Vec<NewEvent> = ["a", "b", "c"]
            .into_iter()
            .map(|id| NewEvent {
                source: "agent".into(),
                id: id.into(),
                event_type: "cpu".into(),
                subject: "cus_1".into(),
                time: Timestamp::UNIX_EPOCH,
                data: None,
            })
            .collect();
        store
            .insert_events(&workspace.id, &events, Timestamp::UNIX_EPOCH)
            .await
            .unwrap();
        store
    }

    /// The compaction task over `store`, its writers saturated when `busy`.
    fn compaction_task(
        store: &Store,
        busy: bool,
    ) -> (Compactor, Arc<WriterActivity>, tokio::task::JoinHandle<()>) {
        let (compactor, woken) = Compactor::new();
        let activity = Arc::new(WriterActivity::default());
        activity.set_busy(busy);
        let task = tokio::spawn(compact_when_asked(
            store.clone(),
            compactor.clone(),
            woken,
            activity.clone(),
        ));
        (compactor, activity, task)
    }

    /// A writer held back by the backlog goes on once the compaction task has moved what it
    /// could, and not before.
    #[tokio::test]
    async fn a_writer_past_the_backlog_waits_for_the_compaction_task() {
        let directory = tempfile::tempdir().unwrap();
        let store = store_with_a_log_chunk(directory.path()).await;
        let (compactor, _activity, task) = compaction_task(&store, false);
        compactor.committed(COMPACTION_BACKLOG_MAX + 10);

        let held = tokio::time::timeout(Duration::from_millis(50), compactor.wait_for_room()).await;
        compactor.ask(u64::MAX);
        let released =
            tokio::time::timeout(Duration::from_secs(5), compactor.wait_for_room()).await;

        assert!(
            held.is_err(),
            "the writer waits while the backlog is too long"
        );
        assert!(released.is_ok(), "the compaction task lets it go");
        assert_eq!(store.compact_events(1_000).await.unwrap(), 0, "all moved");
        drop(compactor);
        task.await.unwrap();
    }

    /// While the writer is saturated, compaction waits, until a burst's worth of events waits
    /// for it.
    #[tokio::test]
    async fn compaction_yields_to_a_saturated_writer_until_the_burst_is_too_long() {
        let directory = tempfile::tempdir().unwrap();
        let store = store_with_a_log_chunk(directory.path()).await;
        let (compactor, activity, task) = compaction_task(&store, true);
        compactor.committed(3);
        compactor.ask(u64::MAX);

        tokio::time::sleep(Duration::from_millis(100)).await;
        let backlog_while_saturated = compactor.backlog.load(Ordering::Acquire);
        compactor.committed(BURST_EVENTS);
        let released = tokio::time::timeout(Duration::from_secs(5), async {
            while compactor.backlog.load(Ordering::Acquire) > 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;

        assert_eq!(backlog_while_saturated, 3, "nothing compacted meanwhile");
        assert!(
            released.is_ok(),
            "compaction ran once the burst was too long"
        );
        assert_eq!(store.compact_events(1_000).await.unwrap(), 0, "all moved");
        // Merging yields too, until the writer is not saturated any more.
        activity.set_busy(false);
        drop(compactor);
        task.await.unwrap();
    }

    /// Commits and compacts one event of cus_1 `times` times: each compaction writes it a chunk.
    async fn chunks_of_one_subject(store: &Store, first: u32, times: u32) {
        let workspace_id = crate::WorkspaceId::parse("ws_acme").unwrap();
        for n in first..first + times {
            let event = NewEvent {
                source: "agent".into(),
                id: format!("chunk-{n}"),
                event_type: "cpu".into(),
                subject: "cus_1".into(),
                time: Timestamp::UNIX_EPOCH,
                data: None,
            };
            store
                .insert_events(&workspace_id, &[event], Timestamp::UNIX_EPOCH)
                .await
                .unwrap();
            assert_eq!(store.compact_events(1_000).await.unwrap(), 1);
        }
    }

    /// While the writer is saturated, merging is put off until a subject has
    /// [`MERGE_PUT_OFF_CHUNKS_MAX`] chunks to merge; otherwise it merges what is due.
    #[tokio::test]
    async fn merging_is_put_off_while_the_writer_is_saturated_up_to_a_bound() {
        let directory = tempfile::tempdir().unwrap();
        let (store, _) = crate::events::sqlite_store_with_acme(directory.path()).await;
        let activity = WriterActivity::default();
        chunks_of_one_subject(&store, 0, 4).await;

        activity.set_busy(true);
        merge(&store, &activity).await;
        let put_off = store.most_unmerged_chunks();
        chunks_of_one_subject(&store, 4, MERGE_PUT_OFF_CHUNKS_MAX - 4).await;
        merge(&store, &activity).await;
        let at_the_bound = store.most_unmerged_chunks();
        chunks_of_one_subject(&store, MERGE_PUT_OFF_CHUNKS_MAX, 4).await;
        activity.set_busy(false);
        merge(&store, &activity).await;
        let not_saturated = store.most_unmerged_chunks();

        assert_eq!(put_off, 4, "not merged while saturated");
        assert_eq!(at_the_bound, 0, "merged at the bound all the same");
        assert_eq!(not_saturated, 0, "merged when not saturated");
    }
}
