-- What a billing run knows of each customer after computing it, so that the next run can leave
-- alone a customer with nothing due and nothing new (docs/billing-runs.md, "Incremental runs").
--
-- computed_at: the instant the run billed at. next_due_at: the earliest instant after it at
-- which something is due without any change (a period's end, a draft's finalization); NULL when
-- nothing ever is. fingerprint: a digest of everything the run read for the customer but its
-- usage (its subscriptions, resources, grants, discounts, tax, plans, meters, settings, invoices
-- and adjustments). Written in the transaction of the batch that computed the customer.
CREATE TABLE billing_states (
    workspace_id TEXT NOT NULL,
    customer_id  TEXT NOT NULL,
    computed_at  BIGINT NOT NULL,
    next_due_at  BIGINT,
    fingerprint  TEXT NOT NULL,
    PRIMARY KEY (workspace_id, customer_id)
);
