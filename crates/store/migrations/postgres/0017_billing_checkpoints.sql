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
ALTER TABLE billing_states ADD COLUMN billed_through BIGINT;
ALTER TABLE billing_states ADD COLUMN world_version BIGINT NOT NULL DEFAULT 0;
ALTER TABLE billing_states ADD COLUMN seen_version BIGINT NOT NULL DEFAULT 0;
CREATE INDEX billing_states_due ON billing_states (workspace_id, next_due_at);

CREATE TABLE billing_scans (
    workspace_id TEXT   NOT NULL PRIMARY KEY,
    started_at   BIGINT NOT NULL
);

CREATE INDEX event_chunks_ingested ON event_chunks (workspace_id, ingested_max_us);
-- A customer's invoices from an instant on: what a run from a checkpoint reads of them.
CREATE INDEX invoices_customer_issued ON invoices (workspace_id, customer_id, issued_at);

CREATE FUNCTION billow_world_of_customer() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = r.workspace_id AND customer_id = r.customer_id;
    RETURN NULL;
END;
$$;
CREATE FUNCTION billow_world_of_customer_row() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = r.workspace_id AND customer_id = r.id;
    RETURN NULL;
END;
$$;
CREATE FUNCTION billow_world_of_subscription_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = r.workspace_id AND customer_id = (SELECT customer_id FROM subscriptions WHERE workspace_id = r.workspace_id AND id = r.subscription_id);
    RETURN NULL;
END;
$$;
CREATE FUNCTION billow_world_of_adjustment() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = r.workspace_id AND (customer_id = r.invoice_key OR customer_id = (SELECT customer_id FROM subscriptions WHERE workspace_id = r.workspace_id AND id = r.invoice_key));
    RETURN NULL;
END;
$$;
CREATE FUNCTION billow_world_of_workspace() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    r RECORD;
BEGIN
    IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
    UPDATE billing_states SET world_version = world_version + 1 WHERE workspace_id = r.workspace_id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER subscriptions_world AFTER INSERT OR UPDATE OR DELETE ON subscriptions FOR EACH ROW EXECUTE FUNCTION billow_world_of_customer();
CREATE TRIGGER credit_grants_world AFTER INSERT OR UPDATE OR DELETE ON credit_grants FOR EACH ROW EXECUTE FUNCTION billow_world_of_customer();
CREATE TRIGGER discounts_world AFTER INSERT OR UPDATE OR DELETE ON discounts FOR EACH ROW EXECUTE FUNCTION billow_world_of_customer();
CREATE TRIGGER billed_resources_world AFTER INSERT OR UPDATE OR DELETE ON billed_resources FOR EACH ROW EXECUTE FUNCTION billow_world_of_customer();
CREATE TRIGGER customer_tax_rates_world AFTER INSERT OR UPDATE OR DELETE ON customer_tax_rates FOR EACH ROW EXECUTE FUNCTION billow_world_of_customer();
CREATE TRIGGER coupon_redemptions_world AFTER INSERT OR UPDATE OR DELETE ON coupon_redemptions FOR EACH ROW EXECUTE FUNCTION billow_world_of_customer();
CREATE TRIGGER customers_world AFTER INSERT OR UPDATE OR DELETE ON customers FOR EACH ROW EXECUTE FUNCTION billow_world_of_customer_row();
CREATE TRIGGER subscription_changes_world AFTER INSERT OR UPDATE OR DELETE ON subscription_changes FOR EACH ROW EXECUTE FUNCTION billow_world_of_subscription_change();
CREATE TRIGGER invoice_adjustments_world AFTER INSERT OR UPDATE OR DELETE ON invoice_adjustments FOR EACH ROW EXECUTE FUNCTION billow_world_of_adjustment();
CREATE TRIGGER meters_world AFTER INSERT OR UPDATE OR DELETE ON meters FOR EACH ROW EXECUTE FUNCTION billow_world_of_workspace();
CREATE TRIGGER plans_world AFTER INSERT OR UPDATE OR DELETE ON plans FOR EACH ROW EXECUTE FUNCTION billow_world_of_workspace();
CREATE TRIGGER plan_versions_world AFTER INSERT OR UPDATE OR DELETE ON plan_versions FOR EACH ROW EXECUTE FUNCTION billow_world_of_workspace();
CREATE TRIGGER tax_rates_world AFTER INSERT OR UPDATE OR DELETE ON tax_rates FOR EACH ROW EXECUTE FUNCTION billow_world_of_workspace();
CREATE TRIGGER workspace_settings_world AFTER INSERT OR UPDATE OR DELETE ON workspace_settings FOR EACH ROW EXECUTE FUNCTION billow_world_of_workspace();

-- The states written before this migration know neither their checkpoint nor what they
-- invoiced through: forgotten, so that the next run computes every customer once (a state is
-- only ever a shortcut).
DELETE FROM billing_states;
