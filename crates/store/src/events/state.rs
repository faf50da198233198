//! [`EventsState`]: what the store keeps beside its pool for events, shared by its clones.

use std::sync::{Arc, Mutex};

use super::activity::WriterActivity;
use super::merge::MergeHints;
use super::{postgres, sqlite};

/// State the store keeps beside its pool for events: the writers' key caches.
#[derive(Clone, Debug, Default)]
pub(crate) struct EventsState {
    pub(crate) sqlite_keys: Arc<tokio::sync::Mutex<sqlite::KeyCache>>,
    pub(crate) postgres_keys: Arc<tokio::sync::Mutex<postgres::KeyCache>>,
    /// Whether the event writers are saturated, for maintenance to yield to them.
    pub(crate) writer_activity: Arc<WriterActivity>,
    /// The subjects compaction wrote to, for the merge passes.
    pub(crate) merge_hints: Arc<Mutex<MergeHints>>,
}
