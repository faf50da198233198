-- Access and the customer tree: API keys, customer-scoped tokens, idempotency keys, customers and
-- their projects (DESIGN.md §2, §4). Every table leads with workspace_id, so the schema can be
-- distributed by workspace.
--
-- Timestamps are RFC 3339 UTC text with exactly six fractional digits, as in 0001. Secrets are never
-- stored: only the lowercase hex SHA-256 of the whole secret (`bk_…`, `bct_…`), looked up by hash
-- when a request presents one.

CREATE TABLE api_keys (
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    id           TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    -- The first characters of the secret, to tell keys apart in listings and logs.
    prefix       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT,
    PRIMARY KEY (workspace_id, id)
) STRICT;

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
    created_at        TEXT    NOT NULL,
    updated_at        TEXT    NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, external_id),
    -- A parent is a customer of the same workspace.
    FOREIGN KEY (workspace_id, parent_id) REFERENCES customers (workspace_id, id)
) STRICT;

CREATE TABLE customer_tokens (
    workspace_id TEXT NOT NULL,
    id           TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    hash         TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, customer_id) REFERENCES customers (workspace_id, id)
) STRICT;

CREATE TABLE projects (
    workspace_id TEXT NOT NULL,
    id           TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    parent_id    TEXT,
    name         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, customer_id, id),
    FOREIGN KEY (workspace_id, customer_id) REFERENCES customers (workspace_id, id),
    -- A parent project belongs to the same customer.
    FOREIGN KEY (workspace_id, customer_id, parent_id)
        REFERENCES projects (workspace_id, customer_id, id)
) STRICT;

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
    created_at       TEXT    NOT NULL,
    PRIMARY KEY (workspace_id, key)
) STRICT;

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
