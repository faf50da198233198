-- Access and the customer tree: API keys, customer-scoped tokens, idempotency keys, customers and
-- their projects (DESIGN.md §2, §4). Every table leads with workspace_id, so the schema can be
-- distributed by workspace.
--
-- Secrets are never stored: only the lowercase hex SHA-256 of the whole secret (`bk_…`, `bct_…`),
-- looked up by hash when a request presents one. Constraints are named so that the store can map a
-- violation to a typed error by name.

CREATE TABLE api_keys (
    workspace_id TEXT        NOT NULL REFERENCES workspaces (id),
    id           TEXT        NOT NULL,
    hash         TEXT        NOT NULL CONSTRAINT api_keys_hash_key UNIQUE,
    -- The first characters of the secret, to tell keys apart in listings and logs.
    prefix       TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    revoked_at   TIMESTAMPTZ,
    CONSTRAINT api_keys_pkey PRIMARY KEY (workspace_id, id)
);

CREATE TABLE customers (
    workspace_id      TEXT        NOT NULL REFERENCES workspaces (id),
    id                TEXT        NOT NULL,
    external_id       TEXT        NOT NULL,
    name              TEXT        NOT NULL,
    email             TEXT,
    -- JSON object: line1, line2, city, state, postal_code, country.
    address           JSONB,
    -- JSON array of {type, value}.
    tax_ids           JSONB       NOT NULL,
    currency          TEXT        NOT NULL,
    time_zone         TEXT        NOT NULL,
    billing_cycle_day SMALLINT    NOT NULL CHECK (billing_cycle_day BETWEEN 1 AND 31),
    parent_id         TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    CONSTRAINT customers_pkey PRIMARY KEY (workspace_id, id),
    CONSTRAINT customers_external_id_key UNIQUE (workspace_id, external_id),
    -- A parent is a customer of the same workspace.
    CONSTRAINT customers_parent_fkey FOREIGN KEY (workspace_id, parent_id)
        REFERENCES customers (workspace_id, id)
);

CREATE TABLE customer_tokens (
    workspace_id TEXT        NOT NULL,
    id           TEXT        NOT NULL,
    customer_id  TEXT        NOT NULL,
    hash         TEXT        NOT NULL CONSTRAINT customer_tokens_hash_key UNIQUE,
    prefix       TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT customer_tokens_pkey PRIMARY KEY (workspace_id, id),
    FOREIGN KEY (workspace_id, customer_id) REFERENCES customers (workspace_id, id)
);

CREATE TABLE projects (
    workspace_id TEXT        NOT NULL,
    id           TEXT        NOT NULL,
    customer_id  TEXT        NOT NULL,
    parent_id    TEXT,
    name         TEXT        NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    CONSTRAINT projects_pkey PRIMARY KEY (workspace_id, id),
    CONSTRAINT projects_customer_key UNIQUE (workspace_id, customer_id, id),
    FOREIGN KEY (workspace_id, customer_id) REFERENCES customers (workspace_id, id),
    -- A parent project belongs to the same customer.
    CONSTRAINT projects_parent_fkey FOREIGN KEY (workspace_id, customer_id, parent_id)
        REFERENCES projects (workspace_id, customer_id, id)
);

CREATE TABLE idempotency_keys (
    workspace_id     TEXT        NOT NULL REFERENCES workspaces (id),
    key              TEXT        NOT NULL,
    -- Hex SHA-256 of the method, the path and the body: the same key with another request is refused.
    fingerprint      TEXT        NOT NULL,
    -- NULL while the first request is in flight.
    response_status  SMALLINT,
    -- JSON array of [name, value] pairs.
    response_headers JSONB,
    response_body    BYTEA,
    created_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (workspace_id, key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
