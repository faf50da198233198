-- Usage events (stream A; docs/ingestion.md explains the shape).
--
-- Events are not stored one row each. Events live in *chunks*, their events encoded in one bytea
-- and the 128-bit hashes of their (source, id) keys in another, in two kinds:
-- - log chunks (subject NULL): every group commit appends one per workspace, holding all the
--   events it accepted, so that a commit writes a row or two however many subjects it touches;
-- - subject chunks: compaction moves the events of the oldest log chunks into one chunk per
--   (workspace, subject), in the same transaction that deletes those log chunks (claimed with
--   FOR UPDATE SKIP LOCKED, so that nodes compacting at once never take the same ones).
--
-- Exactly-once on (source, id) across any number of billow nodes: the writers of a workspace take
-- a transaction-scoped advisory lock, read the key hashes of the chunks written since they last
-- looked (seq above their watermark: under the lock, a workspace's seq values are drawn in commit
-- order), decide from their in-memory copy, and append. No random-order index is written per
-- event (crates/store/src/events/postgres.rs).
--
-- Instants are 64-bit integer microseconds since the Unix epoch (UTC). A chunk's bounds select
-- the chunks a query can touch; each event's own instant (to the nanosecond) and ingestion
-- instant are inside.
CREATE TABLE event_chunks (
    workspace_id    TEXT    NOT NULL REFERENCES workspaces (id),
    seq             BIGINT  GENERATED ALWAYS AS IDENTITY,
    subject         TEXT,
    time_min_us     BIGINT  NOT NULL,
    time_max_us     BIGINT  NOT NULL,
    ingested_max_us BIGINT  NOT NULL,
    event_count     INTEGER NOT NULL CHECK (event_count > 0),
    key_hashes      BYTEA   NOT NULL,
    events          BYTEA   NOT NULL,
    CONSTRAINT event_chunks_pkey PRIMARY KEY (workspace_id, seq)
);

CREATE INDEX event_chunks_subject_time ON event_chunks (workspace_id, subject, time_max_us);
CREATE INDEX event_chunks_subject_ingested ON event_chunks (workspace_id, subject, ingested_max_us);
-- Compaction takes the oldest log chunks first.
CREATE INDEX event_chunks_log ON event_chunks (seq) WHERE subject IS NULL;
