-- Prices carry their currency (docs/scenario-format.md, "Currencies"). Before this migration a
-- stored plan named none: its prices billed every customer in the customer's own currency with
-- the same numbers, so a plan priced 9.99 for EUR customers billed a JPY customer 10 yen. Now a
-- customer is billed only with the prices in its currency, and every stored plan version without
-- a `currency` gets one, written as the plan's default currency (the `currency` member of its
-- spec; its prices name none, so they are all in it):
--
--   1. the currency most of the customers billed on that version have (customers with a
--      subscription that started on it or changed to it, or with a billed resource on it);
--   2. for a version no customer is billed on, the currency most of the workspace's customers
--      have;
--   3. in a workspace without customers, USD: the currency the API checked the plan's amounts
--      in when it stored them.
--
-- Ties go to the first currency in code order. When the customers of a version share one
-- currency (the usual case) it is theirs, and what they are billed does not change. A customer
-- billed on a version in another currency than the one it gets is one the old behaviour billed
-- wrong: its billing run now stops with the reason logged (the plan has no price in its
-- currency) until its subscription moves to a plan priced in it. No invoice is rewritten:
-- invoices keep the currency and amounts they were issued with.
--
-- The billing convention of 0004_billing.sql: specs are JSON text. SQLite and PostgreSQL write
-- JSON with different functions, so this file and its PostgreSQL twin differ in those only.
WITH billed (workspace_id, version_id, customer_id) AS (
    SELECT workspace_id, plan_version_id, customer_id FROM subscriptions
    UNION
    SELECT workspace_id, json_extract(spec, '$.plan'), customer_id FROM subscriptions
    UNION
    SELECT changes.workspace_id, json_extract(changes.spec, '$.plan'), subscriptions.customer_id
      FROM subscription_changes AS changes
      JOIN subscriptions ON subscriptions.workspace_id = changes.workspace_id
                        AND subscriptions.id = changes.subscription_id
     WHERE json_extract(changes.spec, '$.plan') IS NOT NULL
    UNION
    SELECT workspace_id, plan_version_id, customer_id FROM billed_resources
),
version_currencies (workspace_id, version_id, currency, customers) AS (
    SELECT billed.workspace_id, billed.version_id, customers.currency, COUNT(*)
      FROM billed
      JOIN customers ON customers.workspace_id = billed.workspace_id
                    AND customers.id = billed.customer_id
     GROUP BY billed.workspace_id, billed.version_id, customers.currency
),
workspace_currencies (workspace_id, currency, customers) AS (
    SELECT workspace_id, currency, COUNT(*) FROM customers GROUP BY workspace_id, currency
)
UPDATE plan_versions
   SET spec = json_set(spec, '$.currency', COALESCE(
       (SELECT currency FROM version_currencies AS v
         WHERE v.workspace_id = plan_versions.workspace_id AND v.version_id = plan_versions.id
         ORDER BY v.customers DESC, v.currency LIMIT 1),
       (SELECT currency FROM workspace_currencies AS w
         WHERE w.workspace_id = plan_versions.workspace_id
         ORDER BY w.customers DESC, w.currency LIMIT 1),
       'USD'))
 WHERE json_extract(spec, '$.currency') IS NULL;
