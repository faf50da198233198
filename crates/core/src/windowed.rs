//! Windowed aggregates: a meter's quantities per tumbling window (a minute, an hour, a day or a
//! calendar month of a time zone), per subject and per group.
//!
//! What a usage query asks of events besides a billing period's total: how much each subject
//! used hour by hour, or day by day in a given time zone. Windows are half-open and aligned to the
//! zone's clock: minutes and hours on the zone's offset at the instant (a zone 30 minutes off UTC
//! has hours starting at :30 UTC), days at local midnights (23 or 25 hours across a DST change),
//! months at the local midnight of the 1st.
//!
//! Every quantity is the meter's own aggregation ([`Meter::aggregate`]) over the events of one
//! window that fall inside the queried period, so a window is never counted differently from a
//! billing period of the same bounds. A window that holds no event has no quantity, except for a
//! `TIME_WEIGHTED_SUM`, whose gauge holds between events: its windows run from the first one the
//! gauge is known in to the end of the period.

use std::collections::BTreeMap;

use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::aggregation::{
    dimension_text, AggregateError, Aggregation, GroupKey, Meter, UsageEvent,
};
use crate::period::{local_midnight, CalendarError, Period};

/// Most windows a `TIME_WEIGHTED_SUM` query walks through (every window of its period holds the
/// gauge, events or not): 100,000 windows are about 69 days of minutes or 11 years of hours.
pub const GAUGE_WINDOWS_MAX: usize = 100_000;

/// The length of a tumbling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum WindowSize {
    /// A minute of the zone's clock.
    Minute,
    /// An hour of the zone's clock.
    Hour,
    /// A local day, midnight to midnight.
    Day,
    /// A calendar month, from the local midnight of the 1st.
    Month,
}

impl WindowSize {
    /// The window of this size in `zone` that holds `instant`.
    ///
    /// # Errors
    /// [`CalendarError::OutOfRange`] past the years jiff supports.
    pub fn window_containing(
        self,
        instant: Timestamp,
        zone: &TimeZone,
    ) -> Result<Period, CalendarError> {
        let clock = |unit: i64| {
            // The wall clock's seconds at the instant, cut down to the unit, on the offset in
            // force then.
            let offset = i64::from(zone.to_offset(instant).seconds());
            let seconds = instant.as_second();
            let into_unit = (seconds + offset).rem_euclid(unit);
            let start = Timestamp::from_second(seconds - into_unit)
                .map_err(|_| CalendarError::OutOfRange)?;
            let end = Timestamp::from_second(seconds - into_unit + unit)
                .map_err(|_| CalendarError::OutOfRange)?;
            Ok(Period { start, end })
        };
        match self {
            Self::Minute => clock(60),
            Self::Hour => clock(3_600),
            Self::Day | Self::Month => {
                let date = instant.to_zoned(zone.clone()).date();
                let (first, next) = if self == Self::Day {
                    (date, date.tomorrow())
                } else {
                    let first = date.first_of_month();
                    (first, first.checked_add(1.month()))
                };
                let next = next.map_err(|_| CalendarError::OutOfRange)?;
                Ok(Period {
                    start: local_midnight(first, zone)?,
                    end: local_midnight(next, zone)?,
                })
            }
        }
    }
}

/// What a windowed aggregate is asked for.
#[derive(Debug, Clone)]
pub struct WindowedQuery<'a> {
    /// Only events inside this period count.
    pub period: Period,
    /// Tumbling windows of this size in this zone; `None`: the period as one window.
    pub windows: Option<(WindowSize, &'a TimeZone)>,
    /// One quantity per subject (each event's `subject` as sent), not one for all subjects.
    pub by_subject: bool,
    /// Only events whose dimension (a data path, as a meter's `group_by` names it) reads exactly
    /// this text, for each pair ([`GroupKey`] texts: absent is empty, a number its JSON text).
    pub dimension_filters: &'a [(String, String)],
}

/// One quantity of a windowed aggregate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowQuantity {
    /// The window (the whole period without windows). A window is reported whole even where the
    /// period cuts it; only the events inside the period count.
    pub window: Period,
    /// The subject, when the query is by subject.
    pub subject: Option<String>,
    /// The values of the meter's group-by dimensions.
    pub group: GroupKey,
    /// The meter's aggregate over the window's part of the period.
    pub quantity: Decimal,
    /// How many of the group's events fell in the window's part of the period.
    pub event_count: u64,
    /// The times of the first and last of those events; `None` when there were none (a gauge
    /// held from before the window).
    pub event_span: Option<(Timestamp, Timestamp)>,
}

/// Why a windowed aggregate failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WindowedError {
    /// The meter cannot aggregate the events (a missing or non-numeric value).
    #[error(transparent)]
    Aggregate(#[from] AggregateError),
    /// A window fell outside the dates jiff supports.
    #[error(transparent)]
    Calendar(#[from] CalendarError),
    /// A gauge's windows are more than [`GAUGE_WINDOWS_MAX`].
    #[error("the period spans more than {max} windows of the gauge meter `{meter}`; ask for larger windows or a shorter period")]
    TooManyWindows {
        /// The meter key.
        meter: String,
        /// [`GAUGE_WINDOWS_MAX`].
        max: usize,
    },
}

impl Meter {
    /// The span of event times this meter reads to aggregate over `period`: the period itself,
    /// or, for a `TIME_WEIGHTED_SUM`, everything before its end too (the gauge's level at the
    /// start is its last value before it).
    pub fn events_read_for(&self, period: Period) -> Period {
        match self.aggregation {
            Aggregation::TimeWeightedSum => Period {
                start: Timestamp::MIN,
                end: period.end,
            },
            _ => period,
        }
    }

    /// Aggregates `events` as `query` asks: per window, per subject when asked, per the meter's
    /// group-by dimensions; ordered by window start, then subject, then group.
    ///
    /// # Errors
    /// [`WindowedError`] when a needed value is missing or not numeric, or a window is out of
    /// range.
    pub fn aggregate_windows<'e>(
        &self,
        events: impl IntoIterator<Item = &'e UsageEvent>,
        query: &WindowedQuery<'_>,
    ) -> Result<Vec<WindowQuantity>, WindowedError> {
        let mut partitions: BTreeMap<Option<&'e str>, Vec<&'e UsageEvent>> = BTreeMap::new();
        for event in events {
            let kept = self.selects(event)
                && query
                    .dimension_filters
                    .iter()
                    .all(|(path, value)| dimension_text(event.data.get(path)) == *value);
            if kept {
                let subject = query.by_subject.then_some(event.subject.as_str());
                partitions.entry(subject).or_default().push(event);
            }
        }
        let mut quantities = Vec::new();
        for (subject, mut members) in partitions {
            members.sort_by_key(|event| event.time);
            let subject = subject.map(str::to_owned);
            let rows = match (query.windows, self.aggregation) {
                (None, _) => self.rows(&members, query.period, query.period)?,
                (Some((size, zone)), Aggregation::TimeWeightedSum) => {
                    self.gauge_windows(&members, query.period, size, zone)?
                }
                (Some((size, zone)), _) => {
                    let mut windows: BTreeMap<Period, Vec<&UsageEvent>> = BTreeMap::new();
                    for event in members.iter().filter(|e| query.period.contains(e.time)) {
                        windows
                            .entry(size.window_containing(event.time, zone)?)
                            .or_default()
                            .push(event);
                    }
                    let mut rows = Vec::new();
                    for (window, inside) in windows {
                        let part = window.intersect(&query.period).unwrap_or(window);
                        rows.extend(self.rows(&inside, window, part)?);
                    }
                    rows
                }
            };
            quantities.extend(rows.into_iter().map(|mut row| {
                row.subject.clone_from(&subject);
                row
            }));
        }
        quantities.sort_by(|a, b| {
            (a.window.start, &a.subject, &a.group).cmp(&(b.window.start, &b.subject, &b.group))
        });
        Ok(quantities)
    }

    /// The quantities of `events` over `part` (of `window`), one per group, with each group's
    /// event span.
    fn rows(
        &self,
        events: &[&UsageEvent],
        window: Period,
        part: Period,
    ) -> Result<Vec<WindowQuantity>, WindowedError> {
        let mut spans: BTreeMap<GroupKey, (Timestamp, Timestamp)> = BTreeMap::new();
        for event in events.iter().filter(|event| part.contains(event.time)) {
            spans
                .entry(self.group_of(event))
                .and_modify(|(first, last)| {
                    *first = (*first).min(event.time);
                    *last = (*last).max(event.time);
                })
                .or_insert((event.time, event.time));
        }
        Ok(self
            .aggregate(events.iter().copied(), part)?
            .into_iter()
            .map(|group| WindowQuantity {
                window,
                subject: None,
                event_span: spans.get(&group.group).copied(),
                group: group.group,
                quantity: group.quantity,
                event_count: group.event_count,
            })
            .collect())
    }

    /// A gauge's windows: every window from the first the gauge is known in to the end of
    /// `period`, each with the level carried in from before it; a window where nothing was held
    /// and nothing happened is left out.
    fn gauge_windows(
        &self,
        events: &[&UsageEvent],
        period: Period,
        size: WindowSize,
        zone: &TimeZone,
    ) -> Result<Vec<WindowQuantity>, WindowedError> {
        let Some(first) = events.first() else {
            return Ok(Vec::new());
        };
        let mut rows = Vec::new();
        // The last event of each group before the current window: the level it carries in.
        let mut carried: BTreeMap<GroupKey, &UsageEvent> = BTreeMap::new();
        let mut next = 0;
        let mut window = size.window_containing(first.time.max(period.start), zone)?;
        let mut walked = 0;
        while window.start < period.end {
            walked += 1;
            if walked > GAUGE_WINDOWS_MAX {
                return Err(WindowedError::TooManyWindows {
                    meter: self.key.clone(),
                    max: GAUGE_WINDOWS_MAX,
                });
            }
            let part = window.intersect(&period).unwrap_or(window);
            while next < events.len() && events[next].time < part.start {
                carried.insert(self.group_of(events[next]), events[next]);
                next += 1;
            }
            let inside = events[next..].partition_point(|event| event.time < part.end);
            let members: Vec<&UsageEvent> = carried
                .values()
                .copied()
                .chain(events[next..next + inside].iter().copied())
                .collect();
            rows.extend(
                self.rows(&members, window, part)?
                    .into_iter()
                    .filter(|row| row.event_count > 0 || !row.quantity.is_zero()),
            );
            window = size.window_containing(window.end, zone)?;
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rust_decimal_macros::dec;
    use serde_json::{json, Value};

    use super::*;
    use crate::aggregation::TimeUnit;
    use crate::event_data::EventData;

    fn event(subject: &str, time: &str, data: Value) -> UsageEvent {
        UsageEvent {
            id: format!("{subject}-{time}"),
            source: "test".into(),
            event_type: "prompt".into(),
            subject: subject.into(),
            time: time.parse().unwrap(),
            data: EventData::from_map(data.as_object().unwrap()),
        }
    }

    fn meter(aggregation: Aggregation, group_by: &[&str]) -> Meter {
        Meter {
            key: "tokens".into(),
            event_type: "prompt".into(),
            aggregation,
            value_property: Some("$.tokens".into()),
            group_by: group_by.iter().map(|d| (*d).to_owned()).collect(),
            filters: BTreeMap::new(),
            time_unit: TimeUnit::Hour,
        }
    }

    fn period(start: &str, end: &str) -> Period {
        Period::new(start.parse().unwrap(), end.parse().unwrap()).unwrap()
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn events() -> Vec<UsageEvent> {
        vec![
            event(
                "c-1",
                "2024-01-01T10:05:00Z",
                json!({"tokens": 10, "model": "a"}),
            ),
            event(
                "c-1",
                "2024-01-01T10:55:00Z",
                json!({"tokens": 5, "model": "b"}),
            ),
            event(
                "c-2",
                "2024-01-01T10:30:00Z",
                json!({"tokens": 7, "model": "a"}),
            ),
            event(
                "c-1",
                "2024-01-01T12:00:00Z",
                json!({"tokens": 1, "model": "a"}),
            ),
        ]
    }

    fn query<'a>(
        period: Period,
        windows: Option<(WindowSize, &'a TimeZone)>,
        by_subject: bool,
    ) -> WindowedQuery<'a> {
        WindowedQuery {
            period,
            windows,
            by_subject,
            dimension_filters: &[],
        }
    }

    #[test]
    fn hours_hold_only_the_windows_with_events_per_subject() {
        let day = period("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z");
        let events = events();
        let rows = meter(Aggregation::Sum, &[])
            .aggregate_windows(
                &events,
                &query(day, Some((WindowSize::Hour, &TimeZone::UTC)), true),
            )
            .unwrap();

        let got: Vec<(Timestamp, Option<&str>, Decimal, u64)> = rows
            .iter()
            .map(|row| {
                (
                    row.window.start,
                    row.subject.as_deref(),
                    row.quantity,
                    row.event_count,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (at("2024-01-01T10:00:00Z"), Some("c-1"), dec!(15), 2),
                (at("2024-01-01T10:00:00Z"), Some("c-2"), dec!(7), 1),
                (at("2024-01-01T12:00:00Z"), Some("c-1"), dec!(1), 1),
            ]
        );
        assert_eq!(rows[0].window.end, at("2024-01-01T11:00:00Z"));
        assert_eq!(
            rows[0].event_span,
            Some((at("2024-01-01T10:05:00Z"), at("2024-01-01T10:55:00Z")))
        );
    }

    #[test]
    fn without_windows_the_period_is_one_window_grouped_by_the_meter_s_dimensions() {
        let day = period("2024-01-01T10:10:00Z", "2024-01-02T00:00:00Z");
        let events = events();
        let rows = meter(Aggregation::Sum, &["model"])
            .aggregate_windows(&events, &query(day, None, false))
            .unwrap();

        let got: Vec<(&str, Decimal)> = rows
            .iter()
            .map(|row| (row.group[0].1.as_str(), row.quantity))
            .collect();
        // The 10:05 event is before the period.
        assert_eq!(got, [("a", dec!(8)), ("b", dec!(5))]);
        assert!(rows
            .iter()
            .all(|row| row.window == day && row.subject.is_none()));
    }

    #[test]
    fn a_window_cut_by_the_period_is_reported_whole_with_only_the_period_s_events() {
        let events = events();
        let part = period("2024-01-01T10:30:00Z", "2024-01-01T11:00:00Z");
        let rows = meter(Aggregation::Count, &[])
            .aggregate_windows(
                &events,
                &query(part, Some((WindowSize::Hour, &TimeZone::UTC)), false),
            )
            .unwrap();

        assert_eq!(rows.len(), 1);
        assert_eq!(
            rows[0].window,
            period("2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z")
        );
        assert_eq!(rows[0].quantity, dec!(2));
    }

    #[test]
    fn dimension_filters_keep_only_matching_events() {
        let day = period("2024-01-01T00:00:00Z", "2024-01-02T00:00:00Z");
        let events = events();
        let filters = [("model".to_owned(), "a".to_owned())];
        let rows = meter(Aggregation::Sum, &[])
            .aggregate_windows(
                &events,
                &WindowedQuery {
                    dimension_filters: &filters,
                    ..query(day, None, false)
                },
            )
            .unwrap();

        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].quantity, dec!(18));
    }

    #[test]
    fn days_and_months_follow_the_zone_s_midnights() {
        let zone = TimeZone::get("America/New_York").unwrap();
        // 2024-03-10: the clocks go forward, a 23-hour day.
        let day = WindowSize::Day
            .window_containing(at("2024-03-10T12:00:00Z"), &zone)
            .unwrap();
        assert_eq!(day, period("2024-03-10T05:00:00Z", "2024-03-11T04:00:00Z"));
        let month = WindowSize::Month
            .window_containing(at("2024-03-01T02:00:00Z"), &zone)
            .unwrap();
        assert_eq!(
            month,
            period("2024-02-01T05:00:00Z", "2024-03-01T05:00:00Z")
        );
        let india = TimeZone::get("Asia/Kolkata").unwrap();
        let hour = WindowSize::Hour
            .window_containing(at("2024-01-01T10:10:00Z"), &india)
            .unwrap();
        assert_eq!(hour, period("2024-01-01T09:30:00Z", "2024-01-01T10:30:00Z"));
        let minute = WindowSize::Minute
            .window_containing(at("2024-01-01T10:10:59.5Z"), &TimeZone::UTC)
            .unwrap();
        assert_eq!(
            minute,
            period("2024-01-01T10:10:00Z", "2024-01-01T10:11:00Z")
        );
    }

    #[test]
    fn a_gauge_holds_through_windows_without_events() {
        let mut gauge = meter(Aggregation::TimeWeightedSum, &[]);
        gauge.value_property = Some("cores".into());
        let events = vec![
            event("c-1", "2024-01-01T09:30:00Z", json!({"cores": 2})),
            event("c-1", "2024-01-01T11:00:00Z", json!({"cores": 0})),
        ];
        let hours = period("2024-01-01T10:00:00Z", "2024-01-01T13:00:00Z");
        let rows = gauge
            .aggregate_windows(
                &events,
                &query(hours, Some((WindowSize::Hour, &TimeZone::UTC)), false),
            )
            .unwrap();

        let got: Vec<(Timestamp, Decimal, u64)> = rows
            .iter()
            .map(|row| (row.window.start, row.quantity, row.event_count))
            .collect();
        // 10:00-11:00 holds 2 cores from before; 11:00 sets 0 (an event, so kept); 12:00 holds 0
        // with nothing happening: left out.
        assert_eq!(
            got,
            [
                (at("2024-01-01T10:00:00Z"), dec!(2), 0),
                (at("2024-01-01T11:00:00Z"), dec!(0), 1),
            ]
        );
        assert_eq!(gauge.events_read_for(hours).start, Timestamp::MIN);
        assert_eq!(meter(Aggregation::Sum, &[]).events_read_for(hours), hours);
    }

    #[test]
    fn a_meter_s_subjects_are_those_of_the_events_it_counts() {
        let mut events = events();
        events.push(UsageEvent {
            event_type: "other".into(),
            ..event("c-0", "2024-01-01T10:00:00Z", json!({}))
        });
        assert_eq!(
            meter(Aggregation::Count, &[]).subjects(&events),
            ["c-1", "c-2"]
        );
    }

    #[test]
    fn a_gauge_over_too_many_windows_is_refused() {
        let mut gauge = meter(Aggregation::TimeWeightedSum, &[]);
        gauge.value_property = Some("cores".into());
        let events = vec![event("c-1", "2000-01-01T00:00:00Z", json!({"cores": 1}))];
        let long = period("2000-01-01T00:00:00Z", "2020-01-01T00:00:00Z");
        let error = gauge
            .aggregate_windows(
                &events,
                &query(long, Some((WindowSize::Minute, &TimeZone::UTC)), false),
            )
            .unwrap_err();
        assert!(
            matches!(error, WindowedError::TooManyWindows { .. }),
            "{error}"
        );
    }
}
