-- What lets a billing run find, without reading every customer, the customers it must compute
-- (docs/billing-runs.md, "Incremental runs").
--
-- billing_states.checkpoint: billow_core's `Checkpoint` as JSON (the rating state after the last
-- invoice of which every earlier one is final, the earliest event time later invoices read, the
-- gauge events carried across it); valid while the customer's fingerprint is the one beside it
-- and no event arrived late for a period it covers; NULL until a run has finalized an invoice.
-- Only ever a shortcut: a run without it reads the customer's whole history.
-- billing_states.billed_through: the latest instant the customer was invoiced at (drafts
-- included); an event at or after it belongs to a period no run has invoiced yet. NULL: nothing
-- invoiced.
-- billing_states.world_version / seen_version: the triggers below add one to world_version of
-- every customer whose world a write changes (its subscriptions and their changes, grants,
-- discounts, resources, tax, adjustments, the customer itself; the workspace's meters, plans,
-- tax rates and settings change every customer's). A run stores the version it read as
-- seen_version; a customer whose world_version is ahead is computed again. A state the run
-- inserts starts one ahead, since a change made between the run's read and its write found no
-- row to count on.
-- billing_scans: the real time at which the last complete run of a workspace started; the next
-- looks for events ingested since (a minute before) then, among the chunks the index below finds.
ALTER TABLE billing_states ADD COLUMN checkpoint TEXT;
ALTER TABLE billing_states ADD COLUMN billed_through INTEGER;
ALTER TABLE billing_states ADD COLUMN world_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE billing_states ADD COLUMN seen_version INTEGER NOT NULL DEFAULT 0;
CREATE INDEX billing_states_due ON billing_states (workspace_id, next_due_at);

CREATE TABLE billing_scans (
    workspace_id TEXT    NOT NULL PRIMARY KEY,
    started_at   INTEGER NOT NULL
) STRICT;

CREATE INDEX event_chunks_ingested ON event_chunks (workspace_id, ingested_max_us);
-- A customer's invoices from an instant on: what a run from a checkpoint reads of them.
CREATE INDEX invoices_customer_issued ON invoices (workspace_id, customer_id, issued_at);

CREATE TRIGGER subscriptions_world_insert AFTER INSERT ON subscriptions BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = NEW.customer_id;
END;
CREATE TRIGGER subscriptions_world_update AFTER UPDATE ON subscriptions BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = NEW.customer_id;
END;
CREATE TRIGGER subscriptions_world_delete AFTER DELETE ON subscriptions BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = OLD.workspace_id AND customer_id = OLD.customer_id;
END;
CREATE TRIGGER credit_grants_world_insert AFTER INSERT ON credit_grants BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = NEW.customer_id;
END;
CREATE TRIGGER credit_grants_world_update AFTER UPDATE ON credit_grants BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = NEW.customer_id;
END;
CREATE TRIGGER credit_grants_world_delete AFTER DELETE ON credit_grants BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = OLD.workspace_id AND customer_id = OLD.customer_id;
END;
CREATE TRIGGER discounts_world_insert AFTER INSERT ON discounts BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = NEW.customer_id;
END;
CREATE TRIGGER discounts_world_update AFTER UPDATE ON discounts BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = NEW.customer_id;
END;
CREATE TRIGGER discounts_world_delete AFTER DELETE ON discounts BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = OLD.workspace_id AND customer_id = OLD.customer_id;
END;
CREATE TRIGGER billed_resources_world_insert AFTER INSERT ON billed_resources BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = NEW.customer_id;
END;
CREATE TRIGGER billed_resources_world_update AFTER UPDATE ON billed_resources BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = NEW.customer_id;
END;
CREATE TRIGGER billed_resources_world_delete AFTER DELETE ON billed_resources BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = OLD.workspace_id AND customer_id = OLD.customer_id;
END;
CREATE TRIGGER customer_tax_rates_world_insert AFTER INSERT ON customer_tax_rates BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = NEW.customer_id;
END;
CREATE TRIGGER customer_tax_rates_world_update AFTER UPDATE ON customer_tax_rates BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = NEW.customer_id;
END;
CREATE TRIGGER customer_tax_rates_world_delete AFTER DELETE ON customer_tax_rates BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = OLD.workspace_id AND customer_id = OLD.customer_id;
END;
CREATE TRIGGER coupon_redemptions_world_insert AFTER INSERT ON coupon_redemptions BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = NEW.customer_id;
END;
CREATE TRIGGER coupon_redemptions_world_update AFTER UPDATE ON coupon_redemptions BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = NEW.customer_id;
END;
CREATE TRIGGER coupon_redemptions_world_delete AFTER DELETE ON coupon_redemptions BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = OLD.workspace_id AND customer_id = OLD.customer_id;
END;
CREATE TRIGGER customers_world_insert AFTER INSERT ON customers BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = NEW.id;
END;
CREATE TRIGGER subscription_changes_world_insert AFTER INSERT ON subscription_changes BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = (SELECT customer_id FROM subscriptions WHERE workspace_id = NEW.workspace_id AND id = NEW.subscription_id);
END;
CREATE TRIGGER invoice_adjustments_world_insert AFTER INSERT ON invoice_adjustments BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND (customer_id = NEW.invoice_key OR customer_id = (SELECT customer_id FROM subscriptions WHERE workspace_id = NEW.workspace_id AND id = NEW.invoice_key));
END;
CREATE TRIGGER meters_world_insert AFTER INSERT ON meters BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id;
END;
CREATE TRIGGER plans_world_insert AFTER INSERT ON plans BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id;
END;
CREATE TRIGGER plan_versions_world_insert AFTER INSERT ON plan_versions BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id;
END;
CREATE TRIGGER tax_rates_world_insert AFTER INSERT ON tax_rates BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id;
END;
CREATE TRIGGER workspace_settings_world_insert AFTER INSERT ON workspace_settings BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id;
END;
CREATE TRIGGER customers_world_update AFTER UPDATE ON customers BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = NEW.id;
END;
CREATE TRIGGER subscription_changes_world_update AFTER UPDATE ON subscription_changes BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND customer_id = (SELECT customer_id FROM subscriptions WHERE workspace_id = NEW.workspace_id AND id = NEW.subscription_id);
END;
CREATE TRIGGER invoice_adjustments_world_update AFTER UPDATE ON invoice_adjustments BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id AND (customer_id = NEW.invoice_key OR customer_id = (SELECT customer_id FROM subscriptions WHERE workspace_id = NEW.workspace_id AND id = NEW.invoice_key));
END;
CREATE TRIGGER meters_world_update AFTER UPDATE ON meters BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id;
END;
CREATE TRIGGER plans_world_update AFTER UPDATE ON plans BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id;
END;
CREATE TRIGGER plan_versions_world_update AFTER UPDATE ON plan_versions BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id;
END;
CREATE TRIGGER tax_rates_world_update AFTER UPDATE ON tax_rates BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id;
END;
CREATE TRIGGER workspace_settings_world_update AFTER UPDATE ON workspace_settings BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = NEW.workspace_id;
END;
CREATE TRIGGER customers_world_delete AFTER DELETE ON customers BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = OLD.workspace_id AND customer_id = OLD.id;
END;
CREATE TRIGGER subscription_changes_world_delete AFTER DELETE ON subscription_changes BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = OLD.workspace_id AND customer_id = (SELECT customer_id FROM subscriptions WHERE workspace_id = OLD.workspace_id AND id = OLD.subscription_id);
END;
CREATE TRIGGER invoice_adjustments_world_delete AFTER DELETE ON invoice_adjustments BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = OLD.workspace_id AND (customer_id = OLD.invoice_key OR customer_id = (SELECT customer_id FROM subscriptions WHERE workspace_id = OLD.workspace_id AND id = OLD.invoice_key));
END;
CREATE TRIGGER meters_world_delete AFTER DELETE ON meters BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = OLD.workspace_id;
END;
CREATE TRIGGER plans_world_delete AFTER DELETE ON plans BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = OLD.workspace_id;
END;
CREATE TRIGGER plan_versions_world_delete AFTER DELETE ON plan_versions BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = OLD.workspace_id;
END;
CREATE TRIGGER tax_rates_world_delete AFTER DELETE ON tax_rates BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = OLD.workspace_id;
END;
CREATE TRIGGER workspace_settings_world_delete AFTER DELETE ON workspace_settings BEGIN
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = OLD.workspace_id;
END;

-- The states written before this migration know neither their checkpoint nor what they
-- invoiced through: forgotten, so that the next run computes every customer once (a state is
-- only ever a shortcut).
DELETE FROM billing_states;
