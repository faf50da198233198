//! [`EventWriter`]: group commit for concurrent callers.
//!
//! Every durable commit costs a sync of the log (SQLite's WAL, PostgreSQL's WAL), about 0.4 ms
//! on our disks (DESIGN.md §6), whatever its size. So one task per writer takes whatever batches
//! are waiting, up to [`GROUP_EVENTS_MAX`] events, writes them in one transaction, and answers
//! every caller of the group after the commit.

use std::sync::{Arc, OnceLock};

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::{Batch, InsertEventsError, InsertOutcome, NewEvent};
use crate::store::{Backend, Store};
use crate::WorkspaceId;

/// Most events one group commit writes. Past it, waiting batches go to the next commit.
pub const GROUP_EVENTS_MAX: usize = 100_000;
/// Most batches waiting for a writer: callers past it wait for room (backpressure).
const QUEUE_BATCHES_MAX: usize = 1_024;
/// SQLite has one writer; PostgreSQL commits concurrent transactions in parallel, and a second
/// writer keeps the database busy while the first waits for its commit.
const POSTGRES_WRITERS: usize = 2;

struct Request {
    workspace_id: WorkspaceId,
    events: Vec<NewEvent>,
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
            for _ in 0..writers {
                tokio::spawn(run(self.store.clone(), receiver.clone()));
            }
            sender
        })
    }

    /// Stores `events` as [`Store::insert_events`] does, in a transaction shared with the batches
    /// of other callers; answers after it commits. A group records the latest `ingested_at` of
    /// its callers on all its events.
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
        let request = Request {
            workspace_id,
            events,
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

async fn run(store: Store, receiver: Arc<Mutex<mpsc::Receiver<Request>>>) {
    loop {
        let group = {
            let mut receiver = receiver.lock().await;
            let Some(first) = receiver.recv().await else {
                return;
            };
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
        };
        commit(&store, group).await;
    }
}

#[tracing::instrument(skip_all, fields(batches = group.len()))]
async fn commit(store: &Store, group: Vec<Request>) {
    let batches: Vec<Batch<'_>> = group
        .iter()
        .map(|request| Batch {
            workspace_id: &request.workspace_id,
            events: &request.events,
        })
        .collect();
    let ingested_at = group
        .iter()
        .map(|request| request.ingested_at)
        .max()
        .expect("a group has a first request");
    let result = store.insert_batches(&batches, ingested_at).await;
    drop(batches);
    match result {
        Ok(outcomes) => {
            for (request, outcome) in group.into_iter().zip(outcomes) {
                // A caller that gave up (its connection closed) no longer listens; its events
                // are stored all the same, and a retry will find them duplicates.
                let _ = request.reply.send(Ok(outcome));
            }
        }
        Err(error) => {
            tracing::error!(error.message = %error, error.cause_chain = ?error, "group commit failed");
            for request in group {
                let _ = request.reply.send(Err(error.clone()));
            }
        }
    }
}

/// Why [`EventWriter::write`] failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteEventsError {
    #[error(transparent)]
    Insert(InsertEventsError),
    #[error("the event writer has stopped")]
    Stopped,
}
