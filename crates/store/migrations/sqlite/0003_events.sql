-- Usage events (stream A; docs/ingestion.md explains the shape).
--
-- Events are not stored one row each: a per-event row keyed by a client's random id costs one
-- random B-tree insert per event, which caps SQLite near 20,000 events/s on our machines
-- (DESIGN.md §6). Instead every group commit appends one *chunk* per (workspace, subject): the
-- chunk's events encoded in one BLOB, and the 128-bit hashes of their (source, id) keys in another.
-- Chunks are appended in commit order (seq is the rowid), so writes are sequential.
--
-- Exactly-once on (source, id) is decided by the one writer that holds SQLite's write lock: it
-- keeps the key hashes of every stored chunk in memory, catches up on chunks other processes
-- appended (seq beyond what it has read) inside its own write transaction, and stores the new
-- keys in the same transaction as their events.
--
-- Instants are 64-bit integer microseconds since the Unix epoch (UTC). The chunk's time bounds
-- select the chunks a period can touch; the events' own instants, to the nanosecond, are in the
-- BLOB.
CREATE TABLE event_chunks (
    workspace_id   TEXT    NOT NULL REFERENCES workspaces (id),
    seq            INTEGER PRIMARY KEY,
    subject        TEXT    NOT NULL,
    time_min_us    INTEGER NOT NULL,
    time_max_us    INTEGER NOT NULL,
    ingested_at_us INTEGER NOT NULL,
    event_count    INTEGER NOT NULL CHECK (event_count > 0),
    key_hashes     BLOB    NOT NULL,
    events         BLOB    NOT NULL
) STRICT;

-- Usage of some subjects in a period (billing), and what arrived after an instant (late events).
CREATE INDEX event_chunks_subject_time ON event_chunks (workspace_id, subject, time_max_us);
CREATE INDEX event_chunks_subject_ingested ON event_chunks (workspace_id, subject, ingested_at_us);
