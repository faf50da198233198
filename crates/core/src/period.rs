//! Billing periods, cadences, calendars and proration.
//!
//! Instants are UTC [`Timestamp`]s. Periods are half-open `[start, end)`. Period boundaries are local
//! midnights in the customer's time zone, so a day is 23 or 25 hours long across a DST change and a
//! monthly period ends at the customer's local midnight. A billing-cycle day past the end of a month
//! is clamped to that month's last day, and the next month returns to the cycle day
//! (Jan 31 → Feb 28/29 → Mar 31).

use std::fmt;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// A half-open interval of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Period {
    /// The first instant inside the period.
    pub start: Timestamp,
    /// The first instant after the period.
    pub end: Timestamp,
}

/// The error returned for an interval that ends before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("period end {end} is before its start {start}")]
pub struct InvalidPeriodError {
    /// The start as given.
    pub start: Timestamp,
    /// The end as given.
    pub end: Timestamp,
}

impl Period {
    /// The interval `[start, end)`.
    ///
    /// # Errors
    /// [`InvalidPeriodError`] when `end < start`.
    pub fn new(start: Timestamp, end: Timestamp) -> Result<Period, InvalidPeriodError> {
        if end < start {
            return Err(InvalidPeriodError { start, end });
        }
        Ok(Period { start, end })
    }

    /// True when `instant` is inside `[start, end)`.
    pub fn contains(&self, instant: Timestamp) -> bool {
        self.start <= instant && instant < self.end
    }

    /// The common part of two periods, if they overlap for a positive length of time.
    pub fn intersect(&self, other: &Period) -> Option<Period> {
        let start = self.start.max(other.start);
        let end = self.end.min(other.end);
        (start < end).then_some(Period { start, end })
    }

    /// True when the two periods share a positive length of time.
    pub fn overlaps(&self, other: &Period) -> bool {
        self.intersect(other).is_some()
    }

    /// The length in whole seconds (sub-second parts are truncated).
    pub fn length_seconds(&self) -> i64 {
        self.end.as_second() - self.start.as_second()
    }

    /// The length in seconds as an exact `Decimal`, keeping nanoseconds.
    pub fn length_seconds_exact(&self) -> Decimal {
        let nanos = self.end.as_nanosecond() - self.start.as_nanosecond();
        Decimal::from_i128_with_scale(nanos, 9)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "[{}, {})", self.start, self.end)
    }
}

/// How often a price recurs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Cadence {
    /// Every local day.
    Daily,
    /// Every seven local days.
    Weekly,
    /// Every month.
    Monthly,
    /// Every three months.
    Quarterly,
    /// Every six months.
    Semiannual,
    /// Every twelve months.
    Annual,
}

impl Cadence {
    fn months(self) -> Option<i32> {
        match self {
            Cadence::Daily | Cadence::Weekly => None,
            Cadence::Monthly => Some(1),
            Cadence::Quarterly => Some(3),
            Cadence::Semiannual => Some(6),
            Cadence::Annual => Some(12),
        }
    }

    fn days(self) -> i32 {
        match self {
            Cadence::Weekly => 7,
            _ => 1,
        }
    }
}

/// An error of calendar arithmetic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    /// The billing-cycle day is outside 1–31.
    #[error("billing-cycle day {day} is outside 1-31")]
    CycleDayOutOfRange {
        /// The day as given.
        day: i8,
    },
    /// A date fell outside the range jiff supports (years −9999 to 9999).
    #[error("date arithmetic left the supported range")]
    OutOfRange,
}

/// The sequence of billing periods of one subscription: a cadence, an anchor and a time zone.
///
/// Boundary `k` is the anchor moved by `k` cadences (day clamped to the month) at local midnight.
///
/// ```
/// use billow_core::{BillingCalendar, Cadence};
/// use jiff::{civil::date, tz::TimeZone};
/// let calendar = BillingCalendar::new(Cadence::Monthly, date(2024, 1, 31), 31, TimeZone::UTC).unwrap();
/// let february = calendar.period_containing("2024-02-10T00:00:00Z".parse().unwrap()).unwrap();
/// assert_eq!(february.start.to_string(), "2024-01-31T00:00:00Z");
/// assert_eq!(february.end.to_string(), "2024-02-29T00:00:00Z");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct BillingCalendar {
    cadence: Cadence,
    anchor: Date,
    cycle_day: i8,
    time_zone: TimeZone,
}

impl BillingCalendar {
    /// A calendar whose boundaries fall on `cycle_day` (clamped to each month's length) for monthly
    /// and longer cadences, counted from `anchor`'s month; daily and weekly calendars step from
    /// `anchor` itself.
    ///
    /// # Errors
    /// [`CalendarError::CycleDayOutOfRange`] unless `1 <= cycle_day <= 31`.
    pub fn new(
        cadence: Cadence,
        anchor: Date,
        cycle_day: i8,
        time_zone: TimeZone,
    ) -> Result<BillingCalendar, CalendarError> {
        if !(1..=31).contains(&cycle_day) {
            return Err(CalendarError::CycleDayOutOfRange { day: cycle_day });
        }
        Ok(BillingCalendar {
            cadence,
            anchor,
            cycle_day,
            time_zone,
        })
    }

    /// The cadence.
    pub fn cadence(&self) -> Cadence {
        self.cadence
    }

    /// The time zone boundaries are computed in.
    pub fn time_zone(&self) -> &TimeZone {
        &self.time_zone
    }

    /// The local date of boundary `index` (0 is the anchor's own boundary).
    ///
    /// # Errors
    /// [`CalendarError::OutOfRange`] past the years jiff supports.
    pub fn boundary_date(&self, index: i64) -> Result<Date, CalendarError> {
        match self.cadence.months() {
            Some(months) => {
                let total = i64::from(self.anchor.month() - 1) + index * i64::from(months);
                let year = i64::from(self.anchor.year()) + total.div_euclid(12);
                let month = total.rem_euclid(12) + 1;
                let year = i16::try_from(year).map_err(|_| CalendarError::OutOfRange)?;
                let month = i8::try_from(month).map_err(|_| CalendarError::OutOfRange)?;
                let first = Date::new(year, month, 1).map_err(|_| CalendarError::OutOfRange)?;
                let day = self.cycle_day.min(first.days_in_month());
                Date::new(year, month, day).map_err(|_| CalendarError::OutOfRange)
            }
            None => {
                let days = index * i64::from(self.cadence.days());
                self.anchor
                    .checked_add(
                        Span::new()
                            .try_days(days)
                            .map_err(|_| CalendarError::OutOfRange)?,
                    )
                    .map_err(|_| CalendarError::OutOfRange)
            }
        }
    }

    /// The instant of boundary `index`: local midnight of [`Self::boundary_date`].
    ///
    /// # Errors
    /// [`CalendarError::OutOfRange`] past the years jiff supports.
    pub fn boundary(&self, index: i64) -> Result<Timestamp, CalendarError> {
        local_midnight(self.boundary_date(index)?, &self.time_zone)
    }

    /// The index of the period that contains `instant`.
    ///
    /// # Errors
    /// [`CalendarError::OutOfRange`] past the years jiff supports.
    pub fn index_containing(&self, instant: Timestamp) -> Result<i64, CalendarError> {
        let local = instant.to_zoned(self.time_zone.clone()).date();
        let mut index = match self.cadence.months() {
            Some(months) => {
                let elapsed = (i64::from(local.year()) - i64::from(self.anchor.year())) * 12
                    + i64::from(local.month() - self.anchor.month());
                elapsed.div_euclid(i64::from(months))
            }
            None => {
                let days = i64::from(
                    self.anchor
                        .until(local)
                        .map_err(|_| CalendarError::OutOfRange)?
                        .get_days(),
                );
                days.div_euclid(i64::from(self.cadence.days()))
            }
        };
        while self.boundary(index)? > instant {
            index -= 1;
        }
        while self.boundary(index + 1)? <= instant {
            index += 1;
        }
        Ok(index)
    }

    /// The period of index `index`.
    ///
    /// # Errors
    /// [`CalendarError::OutOfRange`] past the years jiff supports.
    pub fn period(&self, index: i64) -> Result<Period, CalendarError> {
        Ok(Period {
            start: self.boundary(index)?,
            end: self.boundary(index + 1)?,
        })
    }

    /// The billing period that contains `instant`.
    ///
    /// # Errors
    /// [`CalendarError::OutOfRange`] past the years jiff supports.
    pub fn period_containing(&self, instant: Timestamp) -> Result<Period, CalendarError> {
        self.period(self.index_containing(instant)?)
    }
}

/// Local midnight of `date` in `time_zone`. Where midnight does not exist (a DST gap at midnight),
/// the first instant of the day after the gap is taken.
///
/// # Errors
/// [`CalendarError::OutOfRange`] past the years jiff supports.
pub fn local_midnight(date: Date, time_zone: &TimeZone) -> Result<Timestamp, CalendarError> {
    time_zone
        .to_ambiguous_timestamp(date.to_datetime(Time::midnight()))
        .compatible()
        .map_err(|_| CalendarError::OutOfRange)
}

/// Whether a price is prorated by the second or by the local day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProrationUnit {
    /// By the second: the fraction of seconds present. The default.
    #[default]
    Second,
    /// By the local day: every local day the interval touches counts whole.
    Day,
}

/// A proration factor kept as an exact fraction, so amounts multiply before they divide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
pub struct ProrationFactor {
    /// Seconds or days present.
    pub numerator: i64,
    /// Seconds or days in the real period that contains the interval.
    pub denominator: i64,
    /// What the two counts count.
    pub unit: ProrationUnit,
}

impl ProrationFactor {
    /// The factor 1/1: no proration.
    pub const WHOLE: ProrationFactor = ProrationFactor {
        numerator: 1,
        denominator: 1,
        unit: ProrationUnit::Second,
    };

    /// True when the factor is exactly one.
    pub fn is_whole(&self) -> bool {
        self.numerator == self.denominator
    }

    /// `amount × numerator ÷ denominator`, multiplying first.
    pub fn apply(&self, amount: Decimal) -> Decimal {
        if self.is_whole() {
            return amount;
        }
        amount * Decimal::from(self.numerator) / Decimal::from(self.denominator)
    }

    /// The factor as a decimal (for display and traces).
    pub fn to_decimal(&self) -> Decimal {
        Decimal::from(self.numerator) / Decimal::from(self.denominator)
    }
}

/// The share of `containing` that `interval` covers, by the second or by the local day.
///
/// The denominator is the length of `containing`, the real billing period around the partial
/// interval: 24.95/month for Sep 16 → Sep 25 2021 in the period Aug 25 → Sep 25 is 9/31 of it.
/// The interval is first clipped to `containing`.
///
/// # Errors
/// [`CalendarError::OutOfRange`] past the years jiff supports.
pub fn proration_factor(
    interval: Period,
    containing: Period,
    unit: ProrationUnit,
    time_zone: &TimeZone,
) -> Result<ProrationFactor, CalendarError> {
    let Some(inside) = interval.intersect(&containing) else {
        return Ok(ProrationFactor {
            numerator: 0,
            denominator: 1,
            unit,
        });
    };
    let (numerator, denominator) = match unit {
        ProrationUnit::Second => (inside.length_seconds(), containing.length_seconds()),
        ProrationUnit::Day => (
            local_days_touched(inside, time_zone)?,
            local_days_touched(containing, time_zone)?,
        ),
    };
    let numerator = numerator.min(denominator);
    Ok(ProrationFactor {
        numerator,
        denominator: denominator.max(1),
        unit,
    })
}

/// The number of local dates that `period` touches: from the date of its start to the date of its
/// end, counting the end's date only when the end is after that date's midnight. What a price
/// prorated by the day counts (February 1st 00:00 to February 5th 22:16 touches 5 days), and the
/// days of a period a platform shows (Akkeris's dyno hours).
///
/// # Errors
/// [`CalendarError::OutOfRange`] past the years jiff supports.
pub fn local_days_touched(period: Period, time_zone: &TimeZone) -> Result<i64, CalendarError> {
    let first = period.start.to_zoned(time_zone.clone()).date();
    let end = period.end.to_zoned(time_zone.clone());
    let mut last = end.date();
    if local_midnight(last, time_zone)? < period.end {
        last = last.tomorrow().map_err(|_| CalendarError::OutOfRange)?;
    }
    let span = first.until(last).map_err(|_| CalendarError::OutOfRange)?;
    Ok(i64::from(span.get_days()))
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;
    use rstest::rstest;
    use rust_decimal_macros::dec;

    use proptest::prop_assert;
    use proptest::prop_assert_eq;

    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn monthly(anchor: Date, day: i8) -> BillingCalendar {
        BillingCalendar::new(Cadence::Monthly, anchor, day, TimeZone::UTC).unwrap()
    }

    #[rstest]
    #[case(date(2024, 1, 31), 31, 1, date(2024, 2, 29))]
    #[case(date(2024, 1, 31), 31, 2, date(2024, 3, 31))]
    #[case(date(2023, 1, 31), 31, 1, date(2023, 2, 28))]
    #[case(date(2023, 1, 31), 31, 3, date(2023, 4, 30))]
    #[case(date(2024, 1, 30), 30, 1, date(2024, 2, 29))]
    #[case(date(2024, 1, 15), 15, -1, date(2023, 12, 15))]
    #[case(date(2024, 1, 15), 15, 12, date(2025, 1, 15))]
    fn month_end_anchors_clamp_and_return(
        #[case] anchor: Date,
        #[case] day: i8,
        #[case] index: i64,
        #[case] expected: Date,
    ) {
        assert_eq!(monthly(anchor, day).boundary_date(index).unwrap(), expected);
    }

    #[test]
    fn quarterly_semiannual_and_annual_step_by_months() {
        let quarterly =
            BillingCalendar::new(Cadence::Quarterly, date(2024, 11, 30), 30, TimeZone::UTC)
                .unwrap();
        assert_eq!(quarterly.boundary_date(1).unwrap(), date(2025, 2, 28));
        let annual =
            BillingCalendar::new(Cadence::Annual, date(2024, 2, 29), 29, TimeZone::UTC).unwrap();
        assert_eq!(annual.boundary_date(1).unwrap(), date(2025, 2, 28));
        assert_eq!(annual.boundary_date(4).unwrap(), date(2028, 2, 29));
        let semiannual =
            BillingCalendar::new(Cadence::Semiannual, date(2024, 8, 31), 31, TimeZone::UTC)
                .unwrap();
        assert_eq!(semiannual.boundary_date(1).unwrap(), date(2025, 2, 28));
    }

    #[test]
    fn the_period_containing_an_instant_is_half_open() {
        let calendar = monthly(date(2021, 1, 25), 25);
        let period = calendar
            .period_containing(at("2021-09-25T00:00:00Z"))
            .unwrap();
        assert_eq!(period.start, at("2021-09-25T00:00:00Z"));
        let before = calendar
            .period_containing(at("2021-09-24T23:59:59Z"))
            .unwrap();
        assert_eq!(
            before,
            Period::new(at("2021-08-25T00:00:00Z"), at("2021-09-25T00:00:00Z")).unwrap()
        );
    }

    #[test]
    fn weekly_and_daily_periods_step_by_days() {
        let weekly =
            BillingCalendar::new(Cadence::Weekly, date(2024, 1, 1), 1, TimeZone::UTC).unwrap();
        let period = weekly
            .period_containing(at("2024-01-10T12:00:00Z"))
            .unwrap();
        assert_eq!(period.start, at("2024-01-08T00:00:00Z"));
        assert_eq!(period.end, at("2024-01-15T00:00:00Z"));
        let daily =
            BillingCalendar::new(Cadence::Daily, date(2024, 1, 1), 1, TimeZone::UTC).unwrap();
        assert_eq!(
            daily
                .period_containing(at("2023-12-31T23:00:00Z"))
                .unwrap()
                .start,
            at("2023-12-31T00:00:00Z")
        );
    }

    #[test]
    fn boundaries_are_local_midnight_across_dst() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap();
        let calendar =
            BillingCalendar::new(Cadence::Monthly, date(2024, 3, 1), 1, berlin.clone()).unwrap();
        let march = calendar.period(0).unwrap();
        assert_eq!(march.start, at("2024-02-29T23:00:00Z"));
        assert_eq!(march.end, at("2024-03-31T22:00:00Z"));
        // March 2024 in Berlin is 31 days less the hour lost on the 31st.
        assert_eq!(march.length_seconds(), 31 * 86_400 - 3_600);
        let daily = BillingCalendar::new(Cadence::Daily, date(2024, 3, 31), 1, berlin).unwrap();
        assert_eq!(daily.period(0).unwrap().length_seconds(), 23 * 3_600);
    }

    #[test]
    fn proration_by_day_uses_the_real_period_as_denominator() {
        let calendar = monthly(date(2021, 1, 25), 25);
        let containing = calendar
            .period_containing(at("2021-09-16T00:00:00Z"))
            .unwrap();
        let interval = Period::new(at("2021-09-16T00:00:00Z"), at("2021-09-25T00:00:00Z")).unwrap();
        let factor =
            proration_factor(interval, containing, ProrationUnit::Day, &TimeZone::UTC).unwrap();
        assert_eq!((factor.numerator, factor.denominator), (9, 31));
        assert_eq!(factor.apply(dec!(24.95)).round_dp(2), dec!(7.24));
    }

    #[test]
    fn proration_by_day_counts_partly_touched_days_whole() {
        let february = Period::new(at("2017-02-01T00:00:00Z"), at("2017-03-01T00:00:00Z")).unwrap();
        let present =
            Period::new(at("2017-02-01T00:00:00Z"), at("2017-02-05T22:16:56.616Z")).unwrap();
        let factor =
            proration_factor(present, february, ProrationUnit::Day, &TimeZone::UTC).unwrap();
        assert_eq!((factor.numerator, factor.denominator), (5, 28));
        assert_eq!(factor.apply(dec!(140)), dec!(25));
    }

    #[test]
    fn proration_by_second_is_exact_seconds() {
        let day = Period::new(at("2024-01-01T00:00:00Z"), at("2024-01-02T00:00:00Z")).unwrap();
        let half = Period::new(at("2024-01-01T12:00:00Z"), at("2024-01-02T00:00:00Z")).unwrap();
        let factor = proration_factor(half, day, ProrationUnit::Second, &TimeZone::UTC).unwrap();
        assert_eq!((factor.numerator, factor.denominator), (43_200, 86_400));
    }

    #[test]
    fn out_of_range_cycle_days_are_rejected() {
        assert!(
            BillingCalendar::new(Cadence::Monthly, date(2024, 1, 1), 0, TimeZone::UTC).is_err()
        );
        assert!(
            BillingCalendar::new(Cadence::Monthly, date(2024, 1, 1), 32, TimeZone::UTC).is_err()
        );
    }

    proptest::proptest! {
        #[test]
        fn splitting_a_period_and_prorating_each_part_sums_to_the_whole(
            month in 0_i64..48,
            split_fraction in 1_i64..10_000,
            amount_minor in 0_i64..100_000_000,
            by_day in proptest::bool::ANY,
        ) {
            use crate::{round_to_money, Currency, RoundingMode};
            let berlin = TimeZone::get("Europe/Berlin").unwrap();
            let calendar = BillingCalendar::new(Cadence::Monthly, date(2023, 1, 31), 31, berlin.clone()).unwrap();
            let period = calendar.period(month).unwrap();
            let offset = period.length_seconds() * split_fraction / 10_000;
            let split = period.start.checked_add(jiff::SignedDuration::from_secs(offset)).unwrap();
            let unit = if by_day { ProrationUnit::Day } else { ProrationUnit::Second };
            let usd = Currency::from_code("USD").unwrap();
            let price = Decimal::new(amount_minor, 2);
            let part = |interval: Period| {
                let factor = proration_factor(interval, period, unit, &berlin).unwrap();
                round_to_money(factor.apply(price), usd, RoundingMode::HalfUp).unwrap().amount_minor()
            };
            let first = part(Period::new(period.start, split).unwrap());
            let second = part(Period::new(split, period.end).unwrap());
            let whole = part(period);
            prop_assert_eq!(whole, amount_minor);
            if by_day {
                // A day cut in two counts whole on both sides: by-day proration may bill the split
                // day twice, never less than the whole.
                prop_assert!(first + second >= whole);
            } else {
                prop_assert!((first + second - whole).abs() <= 2, "{} + {} vs {}", first, second, whole);
            }
        }
    }
}
