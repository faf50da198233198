-- Billing (stream C): the catalog, subscriptions, credits, discounts, tax rates, invoices, their
-- numbers and payment states, and the leases billing runs claim customers with.
--
-- The catalog and subscriptions are kept in the billing core's own spec shapes (PlanSpec, Meter,
-- CreditGrant, ...) as JSON text beside the key columns that queries filter on, so that a billing
-- run rebuilds the core's Scenario from rows without a second model to keep in step.
--
-- The same SQL runs on both backends, so the column types are the ones they share: instants are
-- 64-bit integer microseconds since the Unix epoch (UTC), JSON is TEXT, decimals live inside the JSON.
-- Every table leads with workspace_id (DESIGN.md §4).

CREATE TABLE meters (
    workspace_id TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    spec         TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, key)
);

CREATE TABLE plans (
    workspace_id       TEXT    NOT NULL,
    id                 TEXT    NOT NULL,
    key                TEXT    NOT NULL,
    current_version_id TEXT    NOT NULL,
    created_at         BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, key)
);

CREATE TABLE plan_versions (
    workspace_id TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    plan_id      TEXT    NOT NULL,
    version      BIGINT  NOT NULL,
    spec         TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, plan_id, version)
);

CREATE TABLE subscriptions (
    workspace_id    TEXT    NOT NULL,
    id              TEXT    NOT NULL,
    customer_id     TEXT    NOT NULL,
    plan_id         TEXT    NOT NULL,
    plan_version_id TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    spec            TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX subscriptions_customer ON subscriptions (workspace_id, customer_id);

CREATE TABLE subscription_changes (
    workspace_id    TEXT    NOT NULL,
    subscription_id TEXT    NOT NULL,
    sequence        BIGINT  NOT NULL,
    at              BIGINT  NOT NULL,
    spec            TEXT    NOT NULL,
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, subscription_id, sequence)
);

CREATE TABLE credit_grants (
    workspace_id TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    customer_id  TEXT    NOT NULL,
    spec         TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX credit_grants_customer ON credit_grants (workspace_id, customer_id);

CREATE TABLE discounts (
    workspace_id TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    customer_id  TEXT    NOT NULL,
    spec         TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX discounts_customer ON discounts (workspace_id, customer_id);

CREATE TABLE tax_rates (
    workspace_id TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    spec         TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, id)
);

CREATE TABLE customer_tax_rates (
    workspace_id TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    tax_rate_id  TEXT NOT NULL,
    PRIMARY KEY (workspace_id, customer_id)
);

CREATE TABLE invoices (
    workspace_id         TEXT    NOT NULL,
    id                   TEXT    NOT NULL,
    number               BIGINT,
    customer_id          TEXT    NOT NULL,
    subscription_id      TEXT    NOT NULL,
    plan_version_id      TEXT    NOT NULL,
    reason               TEXT    NOT NULL,
    issued_at            BIGINT  NOT NULL,
    period_start         BIGINT  NOT NULL,
    period_end           BIGINT  NOT NULL,
    status               TEXT    NOT NULL,
    currency             TEXT    NOT NULL,
    total_minor          BIGINT  NOT NULL,
    computed_total_minor BIGINT  NOT NULL,
    lines                TEXT    NOT NULL,
    totals               TEXT    NOT NULL,
    credit_usage         TEXT    NOT NULL,
    rounding             TEXT    NOT NULL,
    created_at           BIGINT  NOT NULL,
    finalized_at         BIGINT,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, number),
    UNIQUE (workspace_id, subscription_id, issued_at)
);
CREATE INDEX invoices_customer ON invoices (workspace_id, customer_id, id);

CREATE TABLE credit_notes (
    workspace_id TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    invoice_id   TEXT    NOT NULL,
    total_minor  BIGINT  NOT NULL,
    lines        TEXT    NOT NULL,
    reason       TEXT,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX credit_notes_invoice ON credit_notes (workspace_id, invoice_id);

CREATE TABLE invoice_number_sequences (
    workspace_id TEXT    NOT NULL PRIMARY KEY,
    next_number  BIGINT  NOT NULL
);

CREATE TABLE payment_state_history (
    workspace_id TEXT    NOT NULL,
    invoice_id   TEXT    NOT NULL,
    sequence     BIGINT  NOT NULL,
    state        TEXT    NOT NULL,
    message      TEXT,
    at           BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, invoice_id, sequence)
);

-- Late usage: what the engine now computes for a finalized invoice minus what it computed when
-- the invoice was finalized, carried to the subscription's next finalized invoice.
CREATE TABLE invoice_adjustments (
    workspace_id       TEXT    NOT NULL,
    id                 TEXT    NOT NULL,
    subscription_id    TEXT    NOT NULL,
    source_invoice_id  TEXT    NOT NULL,
    amount_minor       BIGINT  NOT NULL,
    applied_invoice_id TEXT,
    created_at         BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX invoice_adjustments_subscription ON invoice_adjustments (workspace_id, subscription_id);

CREATE TABLE billing_leases (
    workspace_id TEXT    NOT NULL,
    customer_id  TEXT    NOT NULL,
    locked_by    TEXT    NOT NULL,
    locked_until BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, customer_id)
);
