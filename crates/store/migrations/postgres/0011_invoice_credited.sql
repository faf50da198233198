-- What an invoice's credit notes credited, kept on the invoice so that reading an invoice (and
-- its amount due: the total less this) needs no sum over its credit notes. Every credit note is
-- written with an update of this column, in its transaction, under the invoice's row lock
-- (`insert_credit_note_row!`). Filled here from the credit notes written before; only the
-- invoices that have any are rewritten.
ALTER TABLE invoices ADD COLUMN credited_minor BIGINT NOT NULL DEFAULT 0;
UPDATE invoices
SET credited_minor = (
    SELECT COALESCE(SUM(c.total_minor), 0) FROM credit_notes c
    WHERE c.workspace_id = invoices.workspace_id AND c.invoice_id = invoices.id
)
WHERE EXISTS (
    SELECT 1 FROM credit_notes c
    WHERE c.workspace_id = invoices.workspace_id AND c.invoice_id = invoices.id
);
