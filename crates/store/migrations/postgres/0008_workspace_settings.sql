-- A workspace's billing settings: how its invoices round amounts to the minor unit
-- (billow_core::RoundingMode, `half_up` or `half_even`). A workspace without a row bills with
-- the defaults (half_up). A billing run reads the row once per run; every invoice records the
-- rounding it was computed with, so a finalized invoice never changes when the setting does.
--
-- The billing convention of 0004_billing.sql: the same SQL on both backends, instants as 64-bit
-- integer microseconds since the Unix epoch (UTC), workspace_id first.

CREATE TABLE workspace_settings (
    workspace_id TEXT    NOT NULL PRIMARY KEY,
    rounding     TEXT    NOT NULL CHECK (rounding IN ('half_up', 'half_even')),
    updated_at   BIGINT  NOT NULL
);
