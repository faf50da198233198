//! billow's billing core: every amount billow charges is decided here, and nowhere else.
//!
//! Pure functions of their inputs: no I/O, no async, no clock (the present is an argument).
//!
//! - [`Currency`], [`Money`] and [`round_to_money`]: ISO 4217 currencies, integer minor units, the
//!   one rounding function.
//! - [`Period`], [`BillingCalendar`], [`proration_factor`]: half-open periods, cadences,
//!   cycle days clamped at month end, DST-correct local midnights, exact proration.
//! - [`Meter`]: COUNT, SUM, MIN, MAX, UNIQUE_COUNT, LATEST and TIME_WEIGHTED_SUM over usage events;
//!   [`windowed`]: the same per tumbling window of a time zone, per subject and per group.
//! - [`PriceModel`]: flat, per-unit, graduated, volume, package, percentage, graduated percentage.
//! - [`credit`]: credit grants in money or a meter's unit, burned earliest expiry first.
//! - [`credit_note`]: what a credit note credits (before tax, tax), capped at what is left to
//!   credit on its invoice; a credit note's total; what is left to credit and what is due.
//! - [`late_usage`]: the adjustment late usage makes to a finalized invoice.
//! - [`invoice`]: invoice assembly (lines, discounts, credits, tax, totals) with calculation traces
//!   and asserted invariants.
//! - [`scenario`]: scenario files and the engine behind `billow preview`, which turns subscriptions,
//!   their changes and usage into the invoices billow would issue.
//!
//! ```
//! use billow_core::{proration_factor, round_to_money, Currency, Period, PriceModel, ProrationUnit, RoundingMode};
//! use rust_decimal::Decimal;
//!
//! // 140.00 a month, prorated by day for 5 of February 2017's 28 days (Akkeris's add-on).
//! let price = PriceModel::PerUnit { unit_amount: Decimal::from(140) };
//! let rating = price.rate(Decimal::ONE, &[]).unwrap();
//! let february = Period::new("2017-02-01T00:00:00Z".parse().unwrap(), "2017-03-01T00:00:00Z".parse().unwrap()).unwrap();
//! let present = Period::new(february.start, "2017-02-05T22:16:56Z".parse().unwrap()).unwrap();
//! let factor = proration_factor(present, february, ProrationUnit::Day, &jiff::tz::TimeZone::UTC).unwrap();
//! let usd = Currency::from_code("USD").unwrap();
//! let amount = round_to_money(factor.apply(rating.amount), usd, RoundingMode::HalfUp).unwrap();
//! assert_eq!(amount.to_string(), "25.00 USD");
//! ```

pub mod aggregation;
pub mod currency;
pub mod decimal;
pub mod event_data;
pub mod money;
pub mod period;
pub mod price;
pub mod windowed;

pub use aggregation::{Aggregation, Meter, UsageEvent};
pub use currency::Currency;
pub use event_data::{EventData, EventDataError, RawMember};
pub use money::{round_to_money, Money, MoneyError, RoundingMode};
pub use period::{
    proration_factor, BillingCalendar, Cadence, Period, ProrationFactor, ProrationUnit,
};
pub use price::{PriceModel, Rating, RatingStep};
pub use windowed::{WindowQuantity, WindowSize, WindowedQuery};
pub mod credit;
pub mod credit_note;
pub mod invoice;
pub mod late_usage;
pub mod scenario;
#[cfg(feature = "utoipa")]
pub mod schema;
