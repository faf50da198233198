-- Billed resources: priced things a platform runs for a customer from one instant to another (an
-- add-on or a dyno of an app, a VM, a cluster), each billed as its own invoice line prorated by
-- its lifetime (docs/resources.md). A resource keeps the plan version current when it was
-- created, as a subscription does, so that a later edit of the plan never reprices it.
--
-- The billing convention of 0004_billing.sql: the same SQL on both backends, instants as 64-bit
-- integer microseconds since the Unix epoch (UTC), JSON as TEXT, decimals as text, workspace_id
-- first. `quantity` is the quantity at creation; `quantity_changes` is a JSON array of
-- {"at": RFC 3339, "quantity": decimal text} in time order; `dimensions` a JSON object of
-- string values.
--
-- The customer and the project are foreign keys, as in the access tables: a project must be one
-- of the resource's own customer (projects' unique key on workspace, customer and id). A NULL
-- project_id leaves that key unchecked (MATCH SIMPLE on both backends). The plan is not a
-- foreign key, as no billing table's reference is.
--
-- `external_id` is the platform's own name for the thing (an add-on's or a dyno's id), unique in
-- the workspace when given; NULLs are distinct on both backends.
CREATE TABLE billed_resources (
    workspace_id     TEXT    NOT NULL,
    id               TEXT    NOT NULL,
    customer_id      TEXT    NOT NULL,
    project_id       TEXT,
    plan_id          TEXT    NOT NULL,
    plan_version_id  TEXT    NOT NULL,
    quantity         TEXT    NOT NULL,
    quantity_changes TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    deleted_at       INTEGER,
    kind             TEXT,
    name             TEXT,
    dimensions       TEXT    NOT NULL,
    external_id      TEXT,
    inserted_at      INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, id),
    UNIQUE (workspace_id, external_id),
    FOREIGN KEY (workspace_id, customer_id) REFERENCES customers (workspace_id, id),
    FOREIGN KEY (workspace_id, customer_id, project_id)
        REFERENCES projects (workspace_id, customer_id, id),
    CHECK (deleted_at IS NULL OR deleted_at >= created_at)
) STRICT;
-- A customer's resources in id order: the native list's pages and a billing run's read.
CREATE INDEX billed_resources_customer ON billed_resources (workspace_id, customer_id, id);
