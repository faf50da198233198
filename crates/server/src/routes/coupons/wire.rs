//! Coupons on the wire: the create body (Stripe's shape: `duration` with
//! `duration_in_invoices`), the discount terms it becomes (the core's `DiscountSpec` without key
//! and start), and how a stored coupon is shown ([`CouponBody`]).

use billow_core::decimal::decimal_from_json;
use billow_core::schema::DecimalText;
use billow_core::Currency;
use billow_store::coupons::CouponRecord;
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::wire::Instant;

/// The longest coupon code and name, in characters.
const CODE_LENGTH_MAX: usize = 64;
const NAME_LENGTH_MAX: usize = 255;

/// How long the discount a coupon gives lasts.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum CouponDuration {
    /// The first invoice issued at or after the redemption.
    Once,
    /// The first `duration_in_invoices` invoices.
    Repeating,
    /// Every invoice.
    Forever,
}

/// `POST /api/v1/coupons`: exactly one of `percent_off` and `amount_off` (with `currency`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateCoupon {
    /// What customers redeem it by: 1 to 64 letters, digits, `-` and `_`, unique in the
    /// workspace.
    #[schema(example = "LAUNCH10", pattern = "^[A-Za-z0-9_-]{1,64}$")]
    code: String,
    /// A name for people, at most 255 characters.
    #[schema(example = "Launch: 10 % off")]
    name: Option<String>,
    /// A percentage off each charge line, above 0 and at most 100.
    #[schema(value_type = Option<DecimalText>)]
    percent_off: Option<Value>,
    /// An amount off each invoice, in major units of `currency`, positive.
    #[schema(value_type = Option<DecimalText>)]
    amount_off: Option<Value>,
    /// The ISO 4217 currency of `amount_off` (required with it, refused without): only
    /// customers billed in it may redeem the coupon.
    #[schema(example = "USD")]
    currency: Option<String>,
    /// How long the discount lasts.
    duration: CouponDuration,
    /// With `duration: repeating` (and only then): how many invoices, at least 1.
    #[schema(minimum = 1)]
    duration_in_invoices: Option<u32>,
    /// How many times it may be redeemed in all; absent: without limit.
    #[schema(minimum = 1)]
    max_redemptions: Option<u32>,
    /// The instant (RFC 3339) from which it may no longer be redeemed; in the future.
    #[schema(value_type = Option<String>, format = DateTime)]
    redeem_by: Option<Timestamp>,
}

/// A checked coupon, ready to store once its terms passed the core.
pub(crate) struct CheckedCoupon {
    pub record: CouponRecord,
    /// The currency the terms are checked in: the coupon's, or USD for a percentage.
    pub currency: Currency,
}

impl CreateCoupon {
    /// Checks what the core does not know of (code, name, duration fields, currency, limits) and
    /// builds the record; the terms are left for the core to check.
    pub(crate) fn check(self, now: Timestamp) -> Result<CheckedCoupon, ApiError> {
        let code_ok = !self.code.is_empty()
            && self.code.chars().count() <= CODE_LENGTH_MAX
            && self
                .code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !code_ok {
            return Err(ApiError::invalid(
                "code",
                "must be 1 to 64 letters, digits, `-` and `_`",
            ));
        }
        if self
            .name
            .as_ref()
            .is_some_and(|name| name.chars().count() > NAME_LENGTH_MAX)
        {
            return Err(ApiError::invalid("name", "must be at most 255 characters"));
        }
        let mut terms = Map::new();
        let currency = match (&self.percent_off, &self.amount_off, &self.currency) {
            (Some(percent), None, None) => {
                terms.insert("percent_off".into(), exact(percent));
                None
            }
            (Some(_), None, Some(_)) => {
                return Err(ApiError::invalid(
                    "currency",
                    "is only taken with `amount_off`",
                ))
            }
            (None, Some(amount), Some(code)) => {
                terms.insert("amount_off".into(), exact(amount));
                let currency = Currency::from_code(code)
                    .map_err(|_| ApiError::invalid("currency", "is not an ISO 4217 code"))?;
                Some(currency)
            }
            (None, Some(_), None) => {
                return Err(ApiError::invalid(
                    "currency",
                    "is required with `amount_off`",
                ))
            }
            (Some(_), Some(_), _) | (None, None, _) => {
                return Err(ApiError::invalid(
                    "percent_off",
                    "a coupon sets exactly one of `percent_off` and `amount_off`",
                ))
            }
        };
        terms.insert("duration".into(), self.core_duration()?);
        if self.max_redemptions == Some(0) {
            return Err(ApiError::invalid("max_redemptions", "must be at least 1"));
        }
        if self.redeem_by.is_some_and(|redeem_by| redeem_by <= now) {
            return Err(ApiError::invalid("redeem_by", "must be in the future"));
        }
        let record = CouponRecord {
            code: self.code,
            name: self.name,
            terms: Value::Object(terms),
            currency,
            max_redemptions: self.max_redemptions.map(i64::from),
            redeem_by: self.redeem_by,
            times_redeemed: 0,
            archived_at: None,
            created_at: now,
        };
        let usd = Currency::from_code("USD").map_err(ApiError::internal)?;
        Ok(CheckedCoupon {
            record,
            currency: currency.unwrap_or(usd),
        })
    }

    /// The core's `DiscountDuration` as JSON.
    fn core_duration(&self) -> Result<Value, ApiError> {
        match (self.duration, self.duration_in_invoices) {
            (CouponDuration::Repeating, Some(invoices)) if invoices >= 1 => {
                Ok(json!({"repeating": {"invoices": invoices}}))
            }
            (CouponDuration::Repeating, _) => Err(ApiError::invalid(
                "duration_in_invoices",
                "is required with `duration: repeating`, at least 1",
            )),
            (_, Some(_)) => Err(ApiError::invalid(
                "duration_in_invoices",
                "is only taken with `duration: repeating`",
            )),
            (CouponDuration::Once, None) => Ok(json!("once")),
            (CouponDuration::Forever, None) => Ok(json!("forever")),
        }
    }
}

/// An amount as an exact decimal string when it is one (a number keeps its written digits);
/// anything else is left for the core to refuse with the field's name.
fn exact(value: &Value) -> Value {
    decimal_from_json(value).map_or_else(|| value.clone(), |decimal| json!(decimal.to_string()))
}

/// A coupon as the API shows it, in the shape it was created with, and how often it was
/// redeemed.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CouponBody {
    #[schema(example = "LAUNCH10")]
    pub code: String,
    pub name: Option<String>,
    /// A percentage off each charge line; `null` for an amount off.
    #[schema(value_type = Option<DecimalText>)]
    pub percent_off: Option<Decimal>,
    /// An amount off each invoice, in major units of `currency`; `null` for a percentage.
    #[schema(value_type = Option<DecimalText>)]
    pub amount_off: Option<Decimal>,
    /// The ISO 4217 currency of `amount_off`; `null` for a percentage.
    #[schema(value_type = Option<String>, example = "USD")]
    pub currency: Option<Currency>,
    pub duration: CouponDuration,
    /// With `duration: repeating`: how many invoices; `null` otherwise.
    pub duration_in_invoices: Option<u32>,
    /// How many times it may be redeemed in all; `null`: without limit.
    pub max_redemptions: Option<i64>,
    /// From when it may no longer be redeemed; `null`: no such instant.
    pub redeem_by: Option<Instant>,
    pub times_redeemed: i64,
    /// Whether it is archived: no new redemptions.
    pub archived: bool,
    pub archived_at: Option<Instant>,
    pub created_at: Instant,
}

impl From<CouponRecord> for CouponBody {
    fn from(coupon: CouponRecord) -> Self {
        let terms = &coupon.terms;
        let (duration, duration_in_invoices) = match &terms["duration"] {
            Value::String(duration) if duration == "once" => (CouponDuration::Once, None),
            Value::String(_) => (CouponDuration::Forever, None),
            repeating => (
                CouponDuration::Repeating,
                repeating["repeating"]["invoices"]
                    .as_u64()
                    .and_then(|invoices| u32::try_from(invoices).ok()),
            ),
        };
        Self {
            percent_off: decimal_from_json(&terms["percent_off"]),
            amount_off: decimal_from_json(&terms["amount_off"]),
            duration,
            duration_in_invoices,
            code: coupon.code,
            name: coupon.name,
            currency: coupon.currency,
            max_redemptions: coupon.max_redemptions,
            redeem_by: coupon.redeem_by.map(Instant::from),
            times_redeemed: coupon.times_redeemed,
            archived: coupon.archived_at.is_some(),
            archived_at: coupon.archived_at.map(Instant::from),
            created_at: coupon.created_at.into(),
        }
    }
}
