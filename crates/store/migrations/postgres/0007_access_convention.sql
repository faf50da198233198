-- The access tables (0001, 0002) move to the billing tables' convention (0004): instants become
-- BIGINT microseconds since the Unix epoch (UTC), JSON becomes TEXT and small integers BIGINT, so
-- that one SQL text serves both backends. The columns are converted in place, one rewrite per
-- table; constraints (and their names, which the store maps to typed errors) and indexes stay.
--
-- extract(epoch ...) is numeric since PostgreSQL 14, so an instant's microseconds come out
-- exactly. jsonb's text form is valid JSON with the same values (keys reordered, spaces added).

ALTER TABLE workspaces
    ALTER COLUMN created_at TYPE BIGINT USING (extract(epoch FROM created_at) * 1000000)::bigint;

ALTER TABLE api_keys
    ALTER COLUMN created_at TYPE BIGINT USING (extract(epoch FROM created_at) * 1000000)::bigint,
    ALTER COLUMN revoked_at TYPE BIGINT USING (extract(epoch FROM revoked_at) * 1000000)::bigint;

ALTER TABLE customers
    ALTER COLUMN address           TYPE TEXT   USING address::text,
    ALTER COLUMN tax_ids           TYPE TEXT   USING tax_ids::text,
    ALTER COLUMN billing_cycle_day TYPE BIGINT,
    ALTER COLUMN created_at        TYPE BIGINT USING (extract(epoch FROM created_at) * 1000000)::bigint,
    ALTER COLUMN updated_at        TYPE BIGINT USING (extract(epoch FROM updated_at) * 1000000)::bigint;

ALTER TABLE customer_tokens
    ALTER COLUMN created_at TYPE BIGINT USING (extract(epoch FROM created_at) * 1000000)::bigint,
    ALTER COLUMN expires_at TYPE BIGINT USING (extract(epoch FROM expires_at) * 1000000)::bigint;

ALTER TABLE projects
    ALTER COLUMN created_at TYPE BIGINT USING (extract(epoch FROM created_at) * 1000000)::bigint;

ALTER TABLE idempotency_keys
    ALTER COLUMN response_status  TYPE BIGINT,
    ALTER COLUMN response_headers TYPE TEXT   USING response_headers::text,
    ALTER COLUMN created_at       TYPE BIGINT USING (extract(epoch FROM created_at) * 1000000)::bigint;
