-- A customer's subscriptions are read in id order by every billing run; with the id in the index
-- the read is a range scan instead of a walk of the whole workspace in id order (BENCHMARKS.md,
-- "Billing run").
DROP INDEX subscriptions_customer;
CREATE INDEX subscriptions_customer ON subscriptions (workspace_id, customer_id, id);
