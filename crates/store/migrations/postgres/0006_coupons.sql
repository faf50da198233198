-- Coupons: workspace-wide discount terms with a code, redeemed by customers. A redemption is a
-- row of `discounts` (what billing runs read) made from the coupon's terms, a row of
-- `coupon_redemptions` naming the coupon, and the coupon's `times_redeemed` counted up, all in
-- one transaction (crates/store/src/coupons).
--
-- The billing convention of 0004_billing.sql: the same SQL on both backends, instants as 64-bit
-- integer microseconds since the Unix epoch (UTC), JSON as TEXT (`terms` is the core's
-- DiscountSpec without its key and start), decimals inside the JSON, workspace_id first.

CREATE TABLE coupons (
    workspace_id    TEXT    NOT NULL,
    code            TEXT    NOT NULL,
    name            TEXT,
    terms           TEXT    NOT NULL,
    currency        TEXT,
    max_redemptions BIGINT,
    redeem_by       BIGINT,
    times_redeemed  BIGINT  NOT NULL,
    archived_at     BIGINT,
    created_at      BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, code),
    CHECK (max_redemptions IS NULL OR times_redeemed <= max_redemptions)
);

CREATE TABLE coupon_redemptions (
    workspace_id TEXT    NOT NULL,
    coupon_code  TEXT    NOT NULL,
    discount_id  TEXT    NOT NULL,
    customer_id  TEXT    NOT NULL,
    redeemed_at  BIGINT  NOT NULL,
    PRIMARY KEY (workspace_id, coupon_code, discount_id)
);
CREATE INDEX coupon_redemptions_customer ON coupon_redemptions (workspace_id, customer_id);
