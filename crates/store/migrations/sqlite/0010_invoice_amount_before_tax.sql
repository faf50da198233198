-- `invoices.computed_total_minor` has held what the engine computed for an invoice's own lines
-- before tax (subtotal + discount + credit, without the late-usage adjustment lines it bills)
-- since 0009; its name said "total", which on an invoice means the amount with tax. Renamed to
-- say what it holds; the values are unchanged.
ALTER TABLE invoices RENAME COLUMN computed_total_minor TO amount_before_tax_minor;
