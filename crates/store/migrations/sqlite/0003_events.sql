-- Usage events (stream A; docs/ingestion.md explains the shape).
--
-- Events are not stored one row each: a per-event row keyed by a client's random id costs one
-- random B-tree insert per event, which caps SQLite near 20,000 events/s on our machines
-- (DESIGN.md §6). Events live in *chunks*, their events encoded in one BLOB and the 128-bit hashes
-- of their (source, id) keys in another, in two kinds:
-- - log chunks (subject NULL): every group commit appends one per workspace, holding all the
--   events it accepted, so that a commit writes a row or two however many subjects it touches;
-- - subject chunks: compaction moves the events of the oldest log chunks into one chunk per
--   (workspace, subject), in the same transaction that deletes those log chunks, so that the
--   usage of a customer is read from its own chunks (and the log chunks not yet compacted).
-- seq orders chunks by when they were written and is never reused (AUTOINCREMENT): a chunk made
-- by compaction always has a larger seq than the log chunks it replaces.
--
-- Exactly-once on (source, id) is decided by the one writer that holds SQLite's write lock: it
-- keeps the key hashes of every stored chunk in memory, catches up on chunks written since it
-- last looked (by another process, such as `billow ingest`) inside its own write transaction,
-- and stores the new keys in the same transaction as their events.
--
-- Instants are 64-bit integer microseconds since the Unix epoch (UTC). A chunk's bounds select
-- the chunks a query can touch; each event's own instant (to the nanosecond) and ingestion
-- instant are in the BLOB.
CREATE TABLE event_chunks (
    workspace_id    TEXT    NOT NULL REFERENCES workspaces (id),
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    subject         TEXT,
    time_min_us     INTEGER NOT NULL,
    time_max_us     INTEGER NOT NULL,
    ingested_max_us INTEGER NOT NULL,
    event_count     INTEGER NOT NULL CHECK (event_count > 0),
    key_hashes      BLOB    NOT NULL,
    events          BLOB    NOT NULL
) STRICT;

-- Usage of some subjects in a period (billing), what arrived after an instant (late events), and
-- the log chunks (subject NULL) every read also looks at.
CREATE INDEX event_chunks_subject_time ON event_chunks (workspace_id, subject, time_max_us);
CREATE INDEX event_chunks_subject_ingested ON event_chunks (workspace_id, subject, ingested_max_us);
-- Compaction takes the oldest log chunks first.
CREATE INDEX event_chunks_log ON event_chunks (seq) WHERE subject IS NULL;
