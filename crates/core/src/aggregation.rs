//! Meters: how usage events become quantities.
//!
//! A [`Meter`] selects events by type and filters, reads a value from each event's data, groups by
//! dimensions and aggregates over a billing period. `TIME_WEIGHTED_SUM` treats the value as a gauge
//! that holds until the group's next event and integrates value × time, so 2 CPU cores for 90
//! minutes is 3 core-hours and a dyno running Feb 1 → Feb 6 is 5 dyno-days.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event_data::{EventData, RawMember};
use crate::period::Period;

/// Most group-by dimensions a meter may declare.
pub const MAX_GROUP_BY_DIMENSIONS: usize = 8;

/// One usage event, as the ingestion edge hands it to the core.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageEvent {
    /// The client's id; (source, id) is unique.
    pub id: String,
    /// Who sent it.
    #[serde(default)]
    pub source: String,
    /// Selects the meters that count it.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The customer, subscription or resource it belongs to.
    pub subject: String,
    /// When the usage happened.
    pub time: Timestamp,
    /// Values and dimensions: a JSON object, read member by member.
    #[serde(default)]
    pub data: EventData,
}

/// How a meter aggregates the values of its events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Aggregation {
    /// The number of events.
    Count,
    /// The sum of the values.
    Sum,
    /// The smallest value.
    Min,
    /// The largest value.
    Max,
    /// The number of distinct values.
    UniqueCount,
    /// The value of the last event in the period.
    Latest,
    /// A gauge integrated over time: Σ value × time held, in `time_unit`s.
    TimeWeightedSum,
}

/// The time unit of a time-weighted sum (value-hours, value-days, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    /// Value-seconds.
    Second,
    /// Value-minutes.
    Minute,
    /// Value-hours (core-hours, dyno-hours). The default.
    #[default]
    Hour,
    /// Value-days (24-hour days).
    Day,
}

impl TimeUnit {
    fn seconds(self) -> i64 {
        match self {
            TimeUnit::Second => 1,
            TimeUnit::Minute => 60,
            TimeUnit::Hour => 3_600,
            TimeUnit::Day => 86_400,
        }
    }
}

/// A meter definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "utoipa", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Meter {
    /// The meter's key, referenced by prices.
    pub key: String,
    /// The CloudEvents `type` this meter counts.
    pub event_type: String,
    /// How values aggregate.
    pub aggregation: Aggregation,
    /// Where the value is in `data`: `cores`, `$.usage.cores`. Not used by COUNT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_property: Option<String>,
    /// Data fields whose values split the quantity into groups (`project`, `resource`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    /// Data fields an event must carry with exactly these values to count.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub filters: BTreeMap<String, Value>,
    /// The time unit of a TIME_WEIGHTED_SUM.
    #[serde(default)]
    pub time_unit: TimeUnit,
}

/// Why aggregation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AggregateError {
    /// The aggregation needs a value property and the meter has none.
    #[error("meter `{meter}` aggregates {aggregation:?} and needs a value_property")]
    MissingValueProperty {
        /// The meter key.
        meter: String,
        /// Its aggregation.
        aggregation: Aggregation,
    },
    /// An event lacks the value, or it is not a number.
    #[error("event `{event_id}` has no numeric value at `{property}` for meter `{meter}`")]
    NonNumericValue {
        /// The meter key.
        meter: String,
        /// The event id.
        event_id: String,
        /// The property path.
        property: String,
    },
    /// Too many group-by dimensions.
    #[error("meter `{meter}` groups by {count} dimensions; at most {MAX_GROUP_BY_DIMENSIONS}")]
    TooManyDimensions {
        /// The meter key.
        meter: String,
        /// How many it declares.
        count: usize,
    },
}

/// The values of a meter's group-by dimensions, in declaration order (missing → empty string).
pub type GroupKey = Vec<(String, String)>;

/// The aggregated quantity of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupQuantity {
    /// The group's dimension values.
    pub group: GroupKey,
    /// The aggregated quantity.
    pub quantity: Decimal,
    /// How many events fell in the period for this group.
    pub event_count: u64,
}

pub(crate) fn dimension_text(value: Option<RawMember<'_>>) -> String {
    dimension_cow(value).into_owned()
}

/// A dimension's text: the string itself (borrowed), empty when absent or null, the JSON text of
/// any other value.
fn dimension_cow(value: Option<RawMember<'_>>) -> Cow<'_, str> {
    value.map_or(Cow::Borrowed(""), RawMember::dimension)
}

impl Meter {
    /// True when `event` is of this meter's type and passes its filters.
    pub fn selects(&self, event: &UsageEvent) -> bool {
        event.event_type == self.event_type
            && self.filters.iter().all(|(path, expected)| {
                event
                    .data
                    .get(path)
                    .is_some_and(|value| value.equals(expected))
            })
    }

    /// The distinct subjects of the events this meter counts, in order.
    pub fn subjects<'e>(&self, events: impl IntoIterator<Item = &'e UsageEvent>) -> Vec<&'e str> {
        let subjects: BTreeSet<&str> = events
            .into_iter()
            .filter(|event| self.selects(event))
            .map(|event| event.subject.as_str())
            .collect();
        subjects.into_iter().collect()
    }

    pub(crate) fn group_of(&self, event: &UsageEvent) -> GroupKey {
        self.group_by
            .iter()
            .map(|dimension| (dimension.clone(), dimension_text(event.data.get(dimension))))
            .collect()
    }

    fn numeric_value(&self, event: &UsageEvent) -> Result<Decimal, AggregateError> {
        let property =
            self.value_property
                .as_deref()
                .ok_or_else(|| AggregateError::MissingValueProperty {
                    meter: self.key.clone(),
                    aggregation: self.aggregation,
                })?;
        event
            .data
            .get(property)
            .and_then(RawMember::decimal)
            .ok_or_else(|| AggregateError::NonNumericValue {
                meter: self.key.clone(),
                event_id: event.id.clone(),
                property: property.to_owned(),
            })
    }

    /// Aggregates `events` over `period`, one quantity per group, groups in sorted order.
    ///
    /// Events outside the period are ignored, except that a TIME_WEIGHTED_SUM takes the last value
    /// before the period's start as the gauge's level at the start. Events are taken in time order;
    /// events at the same instant keep their input order.
    ///
    /// # Errors
    /// [`AggregateError`] when a needed value is missing or not numeric.
    pub fn aggregate<'e>(
        &self,
        events: impl IntoIterator<Item = &'e UsageEvent>,
        period: Period,
    ) -> Result<Vec<GroupQuantity>, AggregateError> {
        if self.group_by.len() > MAX_GROUP_BY_DIMENSIONS {
            return Err(AggregateError::TooManyDimensions {
                meter: self.key.clone(),
                count: self.group_by.len(),
            });
        }
        // Grouped by the dimensions' texts borrowed from the events (in `group_by` order, so
        // the order of the keys is that of the `GroupKey`s they become): no allocation per
        // event for a string dimension.
        let mut groups: BTreeMap<Vec<Cow<'e, str>>, Vec<&UsageEvent>> = BTreeMap::new();
        // One key buffer for every event; a group's own key is allocated once, when it is new.
        let mut texts: Vec<Cow<'e, str>> = Vec::with_capacity(self.group_by.len());
        for event in events.into_iter().filter(|event| self.selects(event)) {
            let relevant = period.contains(event.time)
                || (self.aggregation == Aggregation::TimeWeightedSum && event.time < period.start);
            if relevant {
                texts.clear();
                texts.extend(
                    self.group_by
                        .iter()
                        .map(|dimension| dimension_cow(event.data.get(dimension))),
                );
                match groups.get_mut(&texts) {
                    Some(members) => members.push(event),
                    None => {
                        groups.insert(texts.clone(), vec![event]);
                    }
                }
            }
        }
        let mut quantities = Vec::with_capacity(groups.len());
        for (texts, mut members) in groups {
            let group: GroupKey = self
                .group_by
                .iter()
                .cloned()
                .zip(texts.into_iter().map(Cow::into_owned))
                .collect();
            members.sort_by_key(|event| event.time);
            let event_count = members.iter().filter(|e| period.contains(e.time)).count() as u64;
            let quantity = self.aggregate_group(&members, period)?;
            quantities.push(GroupQuantity {
                group,
                quantity,
                event_count,
            });
        }
        Ok(quantities)
    }

    fn aggregate_group(
        &self,
        members: &[&UsageEvent],
        period: Period,
    ) -> Result<Decimal, AggregateError> {
        let inside = || members.iter().filter(|event| period.contains(event.time));
        Ok(match self.aggregation {
            Aggregation::Count => Decimal::from(inside().count() as u64),
            Aggregation::Sum => {
                let mut sum = Decimal::ZERO;
                for event in inside() {
                    sum += self.numeric_value(event)?;
                }
                sum
            }
            Aggregation::Min | Aggregation::Max => {
                let mut extreme: Option<Decimal> = None;
                for event in inside() {
                    let value = self.numeric_value(event)?;
                    extreme = Some(match (extreme, self.aggregation) {
                        (None, _) => value,
                        (Some(current), Aggregation::Min) => current.min(value),
                        (Some(current), _) => current.max(value),
                    });
                }
                extreme.unwrap_or(Decimal::ZERO)
            }
            Aggregation::UniqueCount => {
                let property = self.value_property.as_deref().ok_or_else(|| {
                    AggregateError::MissingValueProperty {
                        meter: self.key.clone(),
                        aggregation: self.aggregation,
                    }
                })?;
                let distinct: BTreeSet<String> = inside()
                    .map(|event| dimension_text(event.data.get(property)))
                    .collect();
                Decimal::from(distinct.len() as u64)
            }
            Aggregation::Latest => match inside().next_back() {
                Some(event) => self.numeric_value(event)?,
                None => Decimal::ZERO,
            },
            Aggregation::TimeWeightedSum => self.time_weighted_sum(members, period)?,
        })
    }

    fn time_weighted_sum(
        &self,
        members: &[&UsageEvent],
        period: Period,
    ) -> Result<Decimal, AggregateError> {
        let mut level = Decimal::ZERO;
        let mut since = period.start;
        let mut value_seconds = Decimal::ZERO;
        for event in members {
            let value = self.numeric_value(event)?;
            if event.time <= period.start {
                level = value;
                continue;
            }
            value_seconds += level * seconds_between(since, event.time);
            level = value;
            since = event.time;
        }
        value_seconds += level * seconds_between(since, period.end);
        Ok(value_seconds / Decimal::from(self.time_unit.seconds()))
    }
}

fn seconds_between(from: Timestamp, to: Timestamp) -> Decimal {
    let nanos = to.as_nanosecond() - from.as_nanosecond();
    Decimal::from_i128_with_scale(nanos.max(0), 9)
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;
    use serde_json::json;

    use super::*;

    fn event(id: &str, time: &str, data: Value) -> UsageEvent {
        UsageEvent {
            id: id.into(),
            source: "test".into(),
            event_type: "usage".into(),
            subject: "cust".into(),
            time: time.parse().unwrap(),
            data: EventData::from_map(data.as_object().unwrap()),
        }
    }

    fn meter(aggregation: Aggregation, value: Option<&str>) -> Meter {
        Meter {
            key: "m".into(),
            event_type: "usage".into(),
            aggregation,
            value_property: value.map(str::to_owned),
            group_by: vec![],
            filters: BTreeMap::new(),
            time_unit: TimeUnit::Hour,
        }
    }

    fn day() -> Period {
        Period::new(
            "2024-01-01T00:00:00Z".parse().unwrap(),
            "2024-01-02T00:00:00Z".parse().unwrap(),
        )
        .unwrap()
    }

    fn events() -> Vec<UsageEvent> {
        vec![
            event(
                "a",
                "2024-01-01T01:00:00Z",
                json!({"v": 3, "user": "x", "project": "p1"}),
            ),
            event(
                "b",
                "2024-01-01T02:00:00Z",
                json!({"v": "1.5", "user": "y", "project": "p2"}),
            ),
            event(
                "c",
                "2024-01-01T03:00:00Z",
                json!({"v": 7, "user": "x", "project": "p1"}),
            ),
            event(
                "out",
                "2024-01-02T00:00:00Z",
                json!({"v": 100, "user": "z", "project": "p1"}),
            ),
        ]
    }

    fn total(meter: &Meter) -> Decimal {
        meter.aggregate(&events(), day()).unwrap()[0].quantity
    }

    #[test]
    fn filters_and_dimensions_read_nested_and_large_data() {
        let mut data = serde_json::Map::new();
        for n in 0..20 {
            data.insert(format!("k{n}"), json!(n));
        }
        data.insert("nested".into(), json!({"region": "eu", "tier": 2}));
        let mut by_region = meter(Aggregation::Sum, Some("k17"));
        by_region.group_by = vec!["$.nested.region".into(), "nested.tier".into()];
        by_region
            .filters
            .insert("nested.region".into(), json!("eu"));
        let event = |id: &str, region: &str| UsageEvent {
            data: EventData::from_map(&{
                let mut data = data.clone();
                data["nested"]["region"] = json!(region);
                data
            }),
            ..self::event(id, "2024-01-01T01:00:00Z", json!({}))
        };

        let groups = by_region
            .aggregate(
                &[event("a", "eu"), event("b", "us"), event("c", "eu")],
                day(),
            )
            .unwrap();

        assert_eq!(groups.len(), 1);
        assert_eq!(
            groups[0].group,
            vec![
                ("$.nested.region".to_owned(), "eu".to_owned()),
                ("nested.tier".to_owned(), "2".to_owned())
            ]
        );
        assert_eq!(groups[0].quantity, dec!(34));
        assert_eq!(groups[0].event_count, 2);
    }

    #[test]
    fn each_aggregation_counts_only_events_inside_the_period() {
        assert_eq!(total(&meter(Aggregation::Count, None)), dec!(3));
        assert_eq!(total(&meter(Aggregation::Sum, Some("v"))), dec!(11.5));
        assert_eq!(total(&meter(Aggregation::Min, Some("v"))), dec!(1.5));
        assert_eq!(total(&meter(Aggregation::Max, Some("$.v"))), dec!(7));
        assert_eq!(
            total(&meter(Aggregation::UniqueCount, Some("user"))),
            dec!(2)
        );
        assert_eq!(total(&meter(Aggregation::Latest, Some("v"))), dec!(7));
    }

    #[test]
    fn group_by_splits_quantities_by_dimension() {
        let mut by_project = meter(Aggregation::Sum, Some("v"));
        by_project.group_by = vec!["project".into()];
        let groups = by_project.aggregate(&events(), day()).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(
            groups[0].group,
            vec![("project".to_owned(), "p1".to_owned())]
        );
        assert_eq!(groups[0].quantity, dec!(10));
        assert_eq!(groups[1].quantity, dec!(1.5));
    }

    #[test]
    fn filters_keep_only_matching_events() {
        let mut filtered = meter(Aggregation::Sum, Some("v"));
        filtered.filters.insert("user".into(), json!("x"));
        assert_eq!(total(&filtered), dec!(10));
    }

    #[test]
    fn two_cores_for_ninety_minutes_are_three_core_hours() {
        let gauge = meter(Aggregation::TimeWeightedSum, Some("cores"));
        let events = vec![
            event("up", "2024-01-01T10:00:00Z", json!({"cores": 2})),
            event("down", "2024-01-01T11:30:00Z", json!({"cores": 0})),
        ];
        assert_eq!(
            gauge.aggregate(&events, day()).unwrap()[0].quantity,
            dec!(3)
        );
    }

    #[test]
    fn a_gauge_set_before_the_period_holds_from_its_start() {
        let mut dyno = meter(Aggregation::TimeWeightedSum, Some("running"));
        dyno.time_unit = TimeUnit::Day;
        let events = vec![
            event("on", "2017-01-20T00:00:00Z", json!({"running": 1})),
            event("off", "2017-02-06T00:00:00Z", json!({"running": 0})),
        ];
        let february = Period::new(
            "2017-02-01T00:00:00Z".parse().unwrap(),
            "2017-03-01T00:00:00Z".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(
            dyno.aggregate(&events, february).unwrap()[0].quantity,
            dec!(5)
        );
    }

    #[test]
    fn a_missing_value_is_an_error_naming_the_event() {
        let sum = meter(Aggregation::Sum, Some("missing"));
        let error = sum.aggregate(&events(), day()).unwrap_err();
        assert!(
            matches!(error, AggregateError::NonNumericValue { ref event_id, .. } if event_id == "a")
        );
        assert!(meter(Aggregation::Sum, None)
            .aggregate(&events(), day())
            .is_err());
    }
}
