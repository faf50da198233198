-- Late usage is compared before tax (docs/billing-runs.md, "Late usage"): `computed_total_minor`
-- now holds what the engine computed for an invoice's own lines before tax (subtotal + discount
-- + credit, without the late-usage adjustment lines it bills), and an adjustment's `amount_minor`
-- is a difference of that figure, taxed on the invoice that bills it.
--
-- Rows written before hold the total with tax (and without adjustment lines, which never changed
-- the tax line): the tax recorded in `totals` is taken off, exactly. Adjustments still pending
-- from before keep their amounts, which included tax.
UPDATE invoices
SET computed_total_minor = computed_total_minor
    - COALESCE(CAST(json_extract(totals, '$.tax.amount_minor') AS INTEGER), 0);
