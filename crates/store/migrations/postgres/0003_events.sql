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
-- Exactly-once on (source, id) across any number of billow nodes is the primary key of
-- event_keys: a 16-byte hash per event (SHA-256 of the key, truncated), inserted with
-- ON CONFLICT DO NOTHING in the same transaction as the log chunk, which holds only the events
-- whose key was new. A concurrent transaction inserting the same key waits for this one's outcome.
-- The key is 16 bytes rather than the client's (source, id) text, so the one random-order index
-- stays small; the table is hash-partitioned so that each partition's index is smaller still.
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

-- No foreign key: it would add a lookup per event; every key is written beside a chunk, which
-- has one.
CREATE TABLE event_keys (
    workspace_id TEXT  NOT NULL,
    key_hash     BYTEA NOT NULL,
    CONSTRAINT event_keys_pkey PRIMARY KEY (workspace_id, key_hash)
) PARTITION BY HASH (key_hash);

CREATE TABLE event_keys_0 PARTITION OF event_keys FOR VALUES WITH (MODULUS 8, REMAINDER 0);
CREATE TABLE event_keys_1 PARTITION OF event_keys FOR VALUES WITH (MODULUS 8, REMAINDER 1);
CREATE TABLE event_keys_2 PARTITION OF event_keys FOR VALUES WITH (MODULUS 8, REMAINDER 2);
CREATE TABLE event_keys_3 PARTITION OF event_keys FOR VALUES WITH (MODULUS 8, REMAINDER 3);
CREATE TABLE event_keys_4 PARTITION OF event_keys FOR VALUES WITH (MODULUS 8, REMAINDER 4);
CREATE TABLE event_keys_5 PARTITION OF event_keys FOR VALUES WITH (MODULUS 8, REMAINDER 5);
CREATE TABLE event_keys_6 PARTITION OF event_keys FOR VALUES WITH (MODULUS 8, REMAINDER 6);
CREATE TABLE event_keys_7 PARTITION OF event_keys FOR VALUES WITH (MODULUS 8, REMAINDER 7);
