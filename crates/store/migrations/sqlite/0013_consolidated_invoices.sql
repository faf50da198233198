-- Consolidated invoices: one invoice per customer per billing period (docs/billing-runs.md).
--
-- An invoice is named by its key and its issue instant: the key is the subscription's id for a
-- subscription's own invoice (scope 'subscription', every invoice before this migration), or
-- the customer's id for the customer's invoice of a period (scope 'customer'), which bills its
-- consolidated subscriptions and its billed resources. The unique key (workspace_id,
-- invoice_key, issued_at) is the one 0004 made on subscription_id, renamed with its column, so
-- no invoice already issued is rewritten. `subscriptions` lists, as a JSON array, the
-- subscriptions an invoice has lines of.
ALTER TABLE invoices RENAME COLUMN subscription_id TO invoice_key;
ALTER TABLE invoices ADD COLUMN scope TEXT NOT NULL DEFAULT 'subscription'
    CHECK (scope IN ('subscription', 'customer'));
ALTER TABLE invoices ADD COLUMN subscriptions TEXT NOT NULL DEFAULT '[]';
UPDATE invoices SET subscriptions = '["' || invoice_key || '"]';

-- When a finalized invoice is due: its finalization instant plus the customer's net days, or
-- the workspace's. Drafts and the invoices finalized before this migration have none.
ALTER TABLE invoices ADD COLUMN due_at INTEGER;

-- A late-usage adjustment is billed on the next invoice of the key of the invoice it corrects.
ALTER TABLE invoice_adjustments RENAME COLUMN subscription_id TO invoice_key;

-- How a customer's subscriptions share invoices. The customers that exist keep one invoice per
-- subscription; the API creates new ones consolidated unless asked otherwise.
ALTER TABLE customers ADD COLUMN invoicing TEXT NOT NULL DEFAULT 'per_subscription'
    CHECK (invoicing IN ('per_subscription', 'consolidated'));
-- Payment terms: days from finalization to the due date; NULL takes the workspace's.
ALTER TABLE customers ADD COLUMN net_days INTEGER CHECK (net_days BETWEEN 0 AND 365);
-- The workspace's payment terms (Stripe's default for invoices sent: 30 days).
ALTER TABLE workspace_settings ADD COLUMN net_days INTEGER NOT NULL DEFAULT 30
    CHECK (net_days BETWEEN 0 AND 365);
