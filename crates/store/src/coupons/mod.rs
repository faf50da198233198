//! Coupons: discount terms with a code, shared by a workspace, that customers redeem.
//!
//! A redemption makes the customer's discount (a [`CustomerSpecRecord`] in the `discounts`
//! table, which billing runs read unchanged) and counts the redemption in one transaction. The
//! count is taken by one conditional `UPDATE` that only succeeds while the coupon is live
//! (not archived, before `redeem_by`, under `max_redemptions`): PostgreSQL re-checks the
//! condition on the row it locked, SQLite runs one writer at a time, so concurrent redemptions
//! never count past the maximum (and a `CHECK` on the table says so once more).

use billow_core::scenario::DiscountSpec;
use billow_core::Currency;
use jiff::Timestamp;
use serde_json::Value;

use crate::billing::sql::{
    from_json, from_micros, to_json, to_micros, with_pool, BillingStoreError,
};
use crate::customers::Page;
use crate::invoices::equal_or_absent;
use crate::store::Store;
use crate::subscriptions::CustomerSpecRecord;
use crate::workspaces::WorkspaceId;

/// A stored coupon.
#[derive(Clone, Debug, PartialEq)]
pub struct CouponRecord {
    /// Unique per workspace; what customers redeem it by.
    pub code: String,
    pub name: Option<String>,
    /// The discount it gives: a `billow_core::scenario::DiscountSpec` without `key` and `start`,
    /// as JSON.
    pub terms: Value,
    /// The currency of an amount-off coupon's amount; `None` for a percentage.
    pub currency: Option<Currency>,
    pub max_redemptions: Option<i64>,
    /// The last instant (exclusive) it may be redeemed at.
    pub redeem_by: Option<Timestamp>,
    pub times_redeemed: i64,
    /// When it was archived: no redemptions after that.
    pub archived_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// Why a coupon was not redeemed.
#[derive(Debug, thiserror::Error)]
pub enum RedeemCouponError {
    /// No coupon of the workspace has the code.
    #[error("no coupon has this code")]
    Unknown,
    /// The coupon is archived.
    #[error("the coupon is archived")]
    Archived,
    /// The redemption is at or after the coupon's `redeem_by`.
    #[error("the coupon could be redeemed until {redeem_by}")]
    Expired { redeem_by: Timestamp },
    /// The coupon was redeemed `max_redemptions` times already.
    #[error("the coupon was redeemed its maximum of {max_redemptions} times")]
    Exhausted { max_redemptions: i64 },
    /// The query failed, or a row is corrupt.
    #[error(transparent)]
    Store(#[from] BillingStoreError),
}

impl From<sqlx::Error> for RedeemCouponError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

impl CouponRecord {
    /// Why the coupon may not be redeemed at `at`, if it may not.
    pub fn refusal(&self, at: Timestamp) -> Option<RedeemCouponError> {
        if self.archived_at.is_some() {
            return Some(RedeemCouponError::Archived);
        }
        if let Some(redeem_by) = self.redeem_by.filter(|redeem_by| at >= *redeem_by) {
            return Some(RedeemCouponError::Expired { redeem_by });
        }
        self.max_redemptions
            .filter(|max_redemptions| self.times_redeemed >= *max_redemptions)
            .map(|max_redemptions| RedeemCouponError::Exhausted { max_redemptions })
    }
}

const COUPON_COLUMNS: &str = "code, name, terms, currency, max_redemptions, redeem_by, \
                              times_redeemed, archived_at, created_at";
type CouponRow = (
    String,
    Option<String>,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    i64,
    Option<i64>,
    i64,
);

fn coupon_from_row(
    (
        code,
        name,
        terms,
        currency,
        max_redemptions,
        redeem_by,
        times_redeemed,
        archived_at,
        created_at,
    ): CouponRow,
) -> Result<CouponRecord, BillingStoreError> {
    Ok(CouponRecord {
        code,
        name,
        terms: from_json(&terms, "coupons.terms")?,
        currency: currency
            .map(|code| Currency::from_code(&code))
            .transpose()
            .map_err(|_| BillingStoreError::CorruptRow {
                column: "coupons.currency",
            })?,
        max_redemptions,
        redeem_by: redeem_by.map(from_micros).transpose()?,
        times_redeemed,
        archived_at: archived_at.map(from_micros).transpose()?,
        created_at: from_micros(created_at)?,
    })
}

impl Store {
    /// Stores a new coupon.
    ///
    /// # Errors
    /// [`BillingStoreError::Duplicate`] when the workspace has a coupon with the same code.
    #[tracing::instrument(skip_all, fields(coupon = %coupon.code))]
    pub async fn insert_coupon(
        &self,
        workspace: &WorkspaceId,
        coupon: &CouponRecord,
    ) -> Result<(), BillingStoreError> {
        let sql = format!(
            "INSERT INTO coupons (workspace_id, {COUPON_COLUMNS}) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        let terms = coupon.terms.to_string();
        with_pool!(self, pool => sqlx::query(&sql)
            .bind(workspace.as_str())
            .bind(&coupon.code)
            .bind(&coupon.name)
            .bind(&terms)
            .bind(coupon.currency.map(Currency::code))
            .bind(coupon.max_redemptions)
            .bind(coupon.redeem_by.map(to_micros))
            .bind(coupon.times_redeemed)
            .bind(coupon.archived_at.map(to_micros))
            .bind(to_micros(coupon.created_at))
            .execute(pool)
            .await
            .map(drop))?;
        Ok(())
    }

    /// The coupon with `code`, or `None`.
    ///
    /// # Errors
    /// When the query fails or the row is corrupt.
    #[tracing::instrument(skip_all, fields(coupon = %code))]
    pub async fn coupon(
        &self,
        workspace: &WorkspaceId,
        code: &str,
    ) -> Result<Option<CouponRecord>, BillingStoreError> {
        let sql =
            format!("SELECT {COUPON_COLUMNS} FROM coupons WHERE workspace_id = $1 AND code = $2");
        let row: Option<CouponRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace.as_str())
            .bind(code)
            .fetch_optional(pool)
            .await)?;
        row.map(coupon_from_row).transpose()
    }

    /// Up to `limit` of the workspace's coupons, oldest first (by creation, then code), after the
    /// coupon `starting_after` when given.
    ///
    /// # Errors
    /// [`BillingStoreError::NotFound`] when `starting_after` is no coupon of the workspace (coupons
    /// are never deleted, so a code from an earlier page always is); others when the query fails
    /// or a row is corrupt.
    ///
    /// # Panics
    /// When `limit` is 0: a page holds at least one coupon.
    #[tracing::instrument(skip_all, fields(limit))]
    pub async fn coupons(
        &self,
        workspace: &WorkspaceId,
        limit: u32,
        starting_after: Option<&str>,
    ) -> Result<Page<CouponRecord>, BillingStoreError> {
        assert!(limit > 0, "a page holds at least one coupon");
        let after = match starting_after {
            Some(code) => Some(
                self.coupon(workspace, code)
                    .await?
                    .ok_or(BillingStoreError::NotFound)?,
            ),
            None => None,
        };
        let sql = format!(
            "SELECT {COUPON_COLUMNS} FROM coupons WHERE workspace_id = $1 \
             AND ($2 IS NULL OR created_at > $2 OR (created_at = $2 AND code > $3)) \
             ORDER BY created_at, code LIMIT $4"
        );
        // One more than asked, to tell whether another page follows.
        let fetch = i64::from(limit) + 1;
        let rows: Vec<CouponRow> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace.as_str())
            .bind(after.as_ref().map(|coupon| to_micros(coupon.created_at)))
            .bind(after.as_ref().map(|coupon| coupon.code.as_str()))
            .bind(fetch)
            .fetch_all(pool)
            .await)?;
        let mut items = rows
            .into_iter()
            .map(coupon_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let has_more = items.len() > limit;
        items.truncate(limit);
        Ok(Page { items, has_more })
    }

    /// Archives the coupon at `at` (an archived coupon keeps its first `archived_at`); returns it.
    ///
    /// # Errors
    /// [`BillingStoreError::NotFound`] when the workspace has no coupon with `code`.
    #[tracing::instrument(skip_all, fields(coupon = %code))]
    pub async fn archive_coupon(
        &self,
        workspace: &WorkspaceId,
        code: &str,
        at: Timestamp,
    ) -> Result<CouponRecord, BillingStoreError> {
        const SQL: &str = "UPDATE coupons SET archived_at = COALESCE(archived_at, $3) \
                           WHERE workspace_id = $1 AND code = $2";
        let updated = with_pool!(self, pool => sqlx::query(SQL)
            .bind(workspace.as_str())
            .bind(code)
            .bind(to_micros(at))
            .execute(pool)
            .await
            .map(|result| result.rows_affected()))?;
        if updated == 0 {
            return Err(BillingStoreError::NotFound);
        }
        self.coupon(workspace, code)
            .await?
            .ok_or(BillingStoreError::NotFound)
    }

    /// Redeems the coupon `code` into the customer's `discount` (already checked by the caller
    /// against the coupon's terms) at `at`: counts the redemption, stores the discount and the
    /// redemption, in one transaction.
    ///
    /// # Errors
    /// [`RedeemCouponError`] saying why the coupon may not be redeemed; nothing is stored then.
    #[tracing::instrument(skip_all, fields(coupon = %code, discount_id = %discount.id))]
    pub async fn redeem_coupon(
        &self,
        workspace: &WorkspaceId,
        code: &str,
        discount: &CustomerSpecRecord<DiscountSpec>,
        at: Timestamp,
    ) -> Result<(), RedeemCouponError> {
        const COUNT: &str = "UPDATE coupons SET times_redeemed = times_redeemed + 1 \
                             WHERE workspace_id = $1 AND code = $2 AND archived_at IS NULL \
                             AND (redeem_by IS NULL OR redeem_by > $3) \
                             AND (max_redemptions IS NULL OR times_redeemed < max_redemptions)";
        const DISCOUNT: &str = "INSERT INTO discounts \
                                (workspace_id, id, customer_id, spec, created_at) \
                                VALUES ($1, $2, $3, $4, $5)";
        const REDEMPTION: &str = "INSERT INTO coupon_redemptions \
                                  (workspace_id, coupon_code, discount_id, customer_id, redeemed_at) \
                                  VALUES ($1, $2, $3, $4, $5)";
        let spec = to_json(&discount.spec);
        let at_micros = to_micros(at);
        let counted = with_pool!(self, pool => {
            // The UPDATE comes first, so on SQLite the transaction takes the write lock at once
            // and never has to upgrade a read lock (which concurrent writers would deadlock on).
            let mut transaction = pool.begin().await?;
            let counted = sqlx::query(COUNT)
                .bind(workspace.as_str())
                .bind(code)
                .bind(at_micros)
                .execute(&mut *transaction)
                .await?
                .rows_affected();
            if counted == 1 {
                sqlx::query(DISCOUNT)
                    .bind(workspace.as_str())
                    .bind(&discount.id)
                    .bind(&discount.customer_id)
                    .bind(&spec)
                    .bind(to_micros(discount.created_at))
                    .execute(&mut *transaction)
                    .await?;
                sqlx::query(REDEMPTION)
                    .bind(workspace.as_str())
                    .bind(code)
                    .bind(&discount.id)
                    .bind(&discount.customer_id)
                    .bind(at_micros)
                    .execute(&mut *transaction)
                    .await?;
                transaction.commit().await?;
            }
            counted
        });
        if counted == 1 {
            return Ok(());
        }
        // Not counted: say why, from the coupon as it is now.
        let coupon = self
            .coupon(workspace, code)
            .await?
            .ok_or(RedeemCouponError::Unknown)?;
        Err(coupon
            .refusal(at)
            .unwrap_or(RedeemCouponError::Store(BillingStoreError::NotFound)))
    }

    /// `(discount id, coupon code)` of the discounts redeemed from coupons: a customer's, or the
    /// workspace's when `customer_id` is `None`; by discount id. A discount made with inline terms
    /// has no row.
    ///
    /// # Errors
    /// When the query fails.
    #[tracing::instrument(skip_all)]
    pub async fn coupon_redemptions(
        &self,
        workspace: &WorkspaceId,
        customer_id: Option<&str>,
    ) -> Result<Vec<(String, String)>, BillingStoreError> {
        let sql = format!(
            "SELECT discount_id, coupon_code FROM coupon_redemptions \
             WHERE workspace_id = $1 AND {} ORDER BY discount_id",
            equal_or_absent("customer_id", 2, customer_id.is_some())
        );
        let rows: Vec<(String, String)> = with_pool!(self, pool => sqlx::query_as(&sql)
            .bind(workspace.as_str())
            .bind(customer_id)
            .fetch_all(pool)
            .await)?;
        Ok(rows)
    }
}
