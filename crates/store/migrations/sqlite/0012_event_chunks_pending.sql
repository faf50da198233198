-- Subject chunks that a compaction has written but not yet made visible. Compaction writes the
-- subject chunks of 250,000 events in transactions of a few MiB each, so that the event writer,
-- which waits for SQLite's one write lock, never waits for all of them at once; the chunks are
-- listed here meanwhile, and readers and merges skip them. Its last transaction takes them out of
-- this list and deletes the log chunks they replace, so readers see the events moved all at once
-- (docs/ingestion.md, "Compaction in slices"). Chunks left listed by a process that stopped half
-- way are deleted when a store is migrated. PostgreSQL compacts in one transaction and has no
-- such table.
CREATE TABLE event_chunks_pending (
    seq INTEGER PRIMARY KEY
);
