-- Facts the platform API profiles print that the domain did not hold (docs/profiles/).
--
-- customers.owner: the platform's id of the user who owns the account (EMCP's `user`, Cloud
-- Plans' `owner`); NULL when the platform did not say.
-- invoices.updated_at: when a finalized invoice last changed (its status, a payment state, a
-- credit note), in microseconds since the epoch; NULL until then. Read as
-- COALESCE(updated_at, finalized_at, created_at): a draft's last change is its creation by the
-- run that last wrote it, a finalized invoice's its finalization.
ALTER TABLE customers ADD COLUMN owner TEXT;
ALTER TABLE invoices ADD COLUMN updated_at BIGINT;
