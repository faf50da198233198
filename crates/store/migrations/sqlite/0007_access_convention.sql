-- The access tables (0001, 0002) move to the billing tables' convention (0004): instants become
-- 64-bit integer microseconds since the Unix epoch (UTC), so that one SQL text serves both
-- backends. JSON was already TEXT here, and the integers already 64-bit; only the timestamps,
-- stored until now as RFC 3339 UTC text with exactly six fractional digits
-- ("2026-11-22T08:00:00.123456Z"), change.
--
-- SQLite cannot change a column's type in place, so each table is rebuilt
-- (https://sqlite.org/lang_altertable.html#otheralter): its rows are copied aside, the table is
-- dropped, created again under its own name with the new types, and refilled with the converted
-- rows. Every column, constraint and index stays as it was.
--
-- Foreign keys stay enforced: sqlx runs each migration in a transaction, where `PRAGMA
-- foreign_keys` cannot change. `defer_foreign_keys` makes the rows orphaned by a DROP TABLE
-- (event chunks, keys and customers of a dropped workspace) count as violations only at commit,
-- and SQLite takes each back when its parent row is inserted again; a row left without its parent
-- fails the commit, and the whole migration with it. The pragma ends with the transaction.
--
-- A timestamp is converted as its whole seconds (unixepoch) times a million plus its six digits
-- of microseconds (text that SQLite reads as a number in a sum), exactly. Every stored timestamp
-- is first checked for that shape and for a valid date: any other value fails the migration
-- (through the CHECK below) rather than turn into a wrong instant or, for revoked_at, a NULL that
-- would revive a revoked key.
PRAGMA defer_foreign_keys = ON;

CREATE TEMP TABLE timestamps_malformed_0007 (
    count INTEGER NOT NULL CHECK (count = 0)
) STRICT;
INSERT INTO timestamps_malformed_0007 (count)
SELECT count(*) FROM (
    SELECT created_at AS at FROM workspaces
    UNION ALL SELECT created_at FROM api_keys
    UNION ALL SELECT revoked_at FROM api_keys WHERE revoked_at IS NOT NULL
    UNION ALL SELECT created_at FROM customers
    UNION ALL SELECT updated_at FROM customers
    UNION ALL SELECT created_at FROM customer_tokens
    UNION ALL SELECT expires_at FROM customer_tokens
    UNION ALL SELECT created_at FROM projects
    UNION ALL SELECT created_at FROM idempotency_keys
) WHERE at NOT GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z'
   OR unixepoch(substr(at, 1, 19)) IS NULL;
DROP TABLE timestamps_malformed_0007;

CREATE TABLE workspaces_0007 AS SELECT * FROM workspaces;
CREATE TABLE api_keys_0007 AS SELECT * FROM api_keys;
CREATE TABLE customers_0007 AS SELECT * FROM customers;
CREATE TABLE customer_tokens_0007 AS SELECT * FROM customer_tokens;
CREATE TABLE projects_0007 AS SELECT * FROM projects;
CREATE TABLE idempotency_keys_0007 AS SELECT * FROM idempotency_keys;

-- Children before parents, so that dropping a parent does not scan children that are going
-- anyway. Dropping customers checks each row against its self-reference (parent_id), which no
-- index covers: this temporary index (dropped with the table) keeps that linear rather than
-- quadratic in the number of customers.
DROP TABLE idempotency_keys;
DROP TABLE projects;
DROP TABLE customer_tokens;
CREATE INDEX customers_parent_0007 ON customers (workspace_id, parent_id);
DROP TABLE customers;
DROP TABLE api_keys;
DROP TABLE workspaces;

-- Parents before children: once the workspaces are back, no violation is outstanding, and the
-- later inserts need only look up their parents.
CREATE TABLE workspaces (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
) STRICT;

INSERT INTO workspaces (id, name, created_at)
SELECT id, name,
       unixepoch(substr(created_at, 1, 19)) * 1000000 + substr(created_at, 21, 6)
FROM workspaces_0007;

CREATE TABLE api_keys (
    workspace_id TEXT    NOT NULL REFERENCES workspaces (id),
    id           TEXT    NOT NULL,
    hash         TEXT    NOT NULL UNIQUE,
    -- The first characters of the secret, to tell keys apart in listings and logs.
    prefix       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER,
    PRIMARY KEY (workspace_id, id)
) STRICT;

INSERT INTO api_keys (workspace_id, id, hash, prefix, created_at, revoked_at)
SELECT workspace_id, id, hash, prefix,
       unixepoch(substr(created_at, 1, 19)) * 1000000 + substr(created_at, 21, 6),
       unixepoch(substr(revoked_at, 1, 19)) * 1000000 + substr(revoked_at, 21, 6)
FROM api_keys_0007;

CREATE TABLE customers (
    workspace_id      TEXT    NOT NULL REFERENCES workspaces (id),
    id                TEXT    NOT NULL,
    external_id       TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    email             TEXT,
    -- JSON object: line1, line2, city, state, postal_code, country.
    address           TEXT,
    -- JSON array of {type, value}.
    tax_ids           TEXT    NOT NULL,
    currency          TEXT    NOT NULL,
    time_zone         TEXT    NOT NULL,
    billing_cycle_day INTEGER NOT NULL CHECK (billing_cycle_day BETWEEN 1 AND 31),
    parent_id         TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, external_id),
    -- A parent is a customer of the same workspace.
    FOREIGN KEY (workspace_id, parent_id) REFERENCES customers (workspace_id, id)
) STRICT;

-- Again while the rows go in: a customer copied before its parent waits for it as a deferred
-- violation, and each insert then looks for the children it completes.
CREATE INDEX customers_parent_0007 ON customers (workspace_id, parent_id);

INSERT INTO customers (workspace_id, id, external_id, name, email, address, tax_ids, currency,
                       time_zone, billing_cycle_day, parent_id, created_at, updated_at)
SELECT workspace_id, id, external_id, name, email, address, tax_ids, currency, time_zone,
       billing_cycle_day, parent_id,
       unixepoch(substr(created_at, 1, 19)) * 1000000 + substr(created_at, 21, 6),
       unixepoch(substr(updated_at, 1, 19)) * 1000000 + substr(updated_at, 21, 6)
FROM customers_0007;

DROP INDEX customers_parent_0007;

CREATE TABLE customer_tokens (
    workspace_id TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    customer_id  TEXT    NOT NULL,
    hash         TEXT    NOT NULL UNIQUE,
    prefix       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, customer_id) REFERENCES customers (workspace_id, id)
) STRICT;

INSERT INTO customer_tokens (workspace_id, id, customer_id, hash, prefix, created_at, expires_at)
SELECT workspace_id, id, customer_id, hash, prefix,
       unixepoch(substr(created_at, 1, 19)) * 1000000 + substr(created_at, 21, 6),
       unixepoch(substr(expires_at, 1, 19)) * 1000000 + substr(expires_at, 21, 6)
FROM customer_tokens_0007;

CREATE TABLE projects (
    workspace_id TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    customer_id  TEXT    NOT NULL,
    parent_id    TEXT,
    name         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, customer_id, id),
    FOREIGN KEY (workspace_id, customer_id) REFERENCES customers (workspace_id, id),
    -- A parent project belongs to the same customer.
    FOREIGN KEY (workspace_id, customer_id, parent_id)
        REFERENCES projects (workspace_id, customer_id, id)
) STRICT;

INSERT INTO projects (workspace_id, id, customer_id, parent_id, name, created_at)
SELECT workspace_id, id, customer_id, parent_id, name,
       unixepoch(substr(created_at, 1, 19)) * 1000000 + substr(created_at, 21, 6)
FROM projects_0007;

CREATE TABLE idempotency_keys (
    workspace_id     TEXT    NOT NULL REFERENCES workspaces (id),
    key              TEXT    NOT NULL,
    -- Hex SHA-256 of the method, the path and the body: the same key with another request is refused.
    fingerprint      TEXT    NOT NULL,
    -- NULL while the first request is in flight.
    response_status  INTEGER,
    -- JSON array of [name, value] pairs.
    response_headers TEXT,
    response_body    BLOB,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, key)
) STRICT;

INSERT INTO idempotency_keys (workspace_id, key, fingerprint, response_status, response_headers,
                              response_body, created_at)
SELECT workspace_id, key, fingerprint, response_status, response_headers, response_body,
       unixepoch(substr(created_at, 1, 19)) * 1000000 + substr(created_at, 21, 6)
FROM idempotency_keys_0007;

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

DROP TABLE workspaces_0007;
DROP TABLE api_keys_0007;
DROP TABLE customers_0007;
DROP TABLE customer_tokens_0007;
DROP TABLE projects_0007;
DROP TABLE idempotency_keys_0007;
