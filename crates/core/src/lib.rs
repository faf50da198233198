//! billow's billing core: every amount billow charges is decided here, and nowhere else.
//!
//! Pure functions of their inputs: no I/O, no async, no clock (the present is an argument).
//!
//! - [`Currency`], [`Money`] and [`round_to_money`]: ISO 4217 currencies, integer minor units, the
//!   one rounding function.
//! - [`Period`], [`BillingCalendar`], [`proration_factor`]: half-open periods, cadences,
//!   cycle days clamped at month end, DST-correct local midnights, exact proration.
//! - [`Meter`]: COUNT, SUM, MIN, MAX, UNIQUE_COUNT, LATEST and TIME_WEIGHTED_SUM over usage events.
//! - [`PriceModel`]: flat, per-unit, graduated, volume, package, percentage, graduated percentage.

pub mod aggregation;
pub mod currency;
pub mod decimal;
pub mod money;
pub mod period;
pub mod price;

pub use aggregation::{Aggregation, Meter, UsageEvent};
pub use currency::Currency;
pub use money::{round_to_money, Money, MoneyError, RoundingMode};
pub use period::{
    proration_factor, BillingCalendar, Cadence, Period, ProrationFactor, ProrationUnit,
};
pub use price::{PriceModel, Rating, RatingStep};
pub mod credit;
pub mod invoice;
pub mod scenario;
