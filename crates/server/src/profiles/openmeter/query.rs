//! OpenMeter's meter query (`GET /openmeter/api/v1/meters/{meterIdOrSlug}/query`), a meter's
//! subjects, and the parameters of its meter listing, read as OpenMeter reads them: every
//! invalid parameter is a 400 naming it.
//!
//! The query is the meter's aggregate per window, subject and group, computed by the core
//! (`billow_core::windowed`) over the events the store holds: those of the subjects asked for,
//! of every subject of the workspace, or, for a customer token, of its own customer's subjects.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use billow_billing::world::CustomerWorld;
use billow_core::windowed::{WindowQuantity, WindowedError, WindowedQuery};
use billow_core::{Meter as CoreMeter, Period, UsageEvent};
use billow_store::WorkspaceId;
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::wire::{Meter, QueryResult, QueryRow, Window};
use super::{bad_request, named_meter, OpenMeterProblem, Refused};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::profiles::shared::named_customer;
use crate::state::AppState;

/// The longest `clientId` OpenMeter takes.
const CLIENT_ID_LENGTH_MAX: usize = 36;

/// A request's query parameters, in order, repeats kept.
struct Parameters(Vec<(String, String)>);

impl Parameters {
    fn parse(raw: &str) -> Result<Self, Refused> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect();
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(bad_request(format!(
                "Invalid format for parameter {name}: must not hold U+0000"
            )));
        }
        Ok(Self(pairs))
    }

    /// Every value of `name`.
    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(given, _)| given == name)
            .map(|(_, value)| value.clone())
            .collect()
    }

    /// The one value of `name`, if given; given twice is an error.
    fn one(&self, name: &str) -> Result<Option<String>, Refused> {
        let mut values = self.all(name);
        match values.len() {
            0 => Ok(None),
            1 => Ok(values.pop()),
            _ => Err(bad_request(format!(
                "Invalid format for parameter {name}: given more than once"
            ))),
        }
    }

    fn instant(&self, name: &str) -> Result<Option<Timestamp>, Refused> {
        self.one(name)?
            .map(|text| {
                text.parse::<Timestamp>().map_err(|_| {
                    bad_request(format!(
                        "Invalid format for parameter {name}: {text:?} is not an RFC 3339 \
                         date-time with an offset, e.g. 2024-01-01T00:00:00Z"
                    ))
                })
            })
            .transpose()
    }

    fn positive(&self, name: &str, max: Option<u32>) -> Result<(), Refused> {
        if let Some(text) = self.one(name)? {
            let valid = text
                .parse::<u32>()
                .is_ok_and(|n| n >= 1 && max.is_none_or(|max| n <= max));
            if !valid {
                let bound = max.map_or(String::new(), |max| format!(" up to {max}"));
                return Err(bad_request(format!(
                    "Invalid format for parameter {name}: {text:?} is not an integer from 1{bound}"
                )));
            }
        }
        Ok(())
    }
}

/// How the meter listing is ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OrderBy {
    Key,
    Name,
    Aggregation,
    CreatedAt,
    UpdatedAt,
}

/// The meter listing's parameters.
pub(crate) struct Listing {
    order_by: OrderBy,
    descending: bool,
}

impl Listing {
    pub(crate) fn parse(raw: &str) -> Result<Self, Refused> {
        let parameters = Parameters::parse(raw)?;
        parameters.positive("page", None)?;
        parameters.positive("pageSize", Some(1_000))?;
        if let Some(text) = parameters.one("includeDeleted")? {
            if text != "true" && text != "false" {
                return Err(bad_request(format!(
                    "Invalid format for parameter includeDeleted: {text:?} is not true or false"
                )));
            }
        }
        let descending = match parameters.one("order")?.as_deref() {
            None | Some("ASC") => false,
            Some("DESC") => true,
            Some(other) => {
                return Err(bad_request(format!(
                    "Invalid format for parameter order: {other:?} is not ASC or DESC"
                )))
            }
        };
        let order_by = match parameters.one("orderBy")?.as_deref() {
            None | Some("key") => OrderBy::Key,
            Some("name") => OrderBy::Name,
            Some("aggregation") => OrderBy::Aggregation,
            Some("createdAt") => OrderBy::CreatedAt,
            Some("updatedAt") => OrderBy::UpdatedAt,
            Some(other) => {
                return Err(bad_request(format!(
                    "Invalid format for parameter orderBy: {other:?} is not key, name, \
                     aggregation, createdAt or updatedAt"
                )))
            }
        };
        Ok(Self {
            order_by,
            descending,
        })
    }

    /// `meters` in the listing's order; ties by key.
    pub(crate) fn sort(&self, meters: &mut [Meter]) {
        let aggregation = |meter: &Meter| {
            serde_json::to_value(meter.aggregation)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        meters.sort_by(|a, b| {
            let order = match self.order_by {
                OrderBy::Key => a.slug.cmp(&b.slug),
                OrderBy::Name => a.name.cmp(&b.name),
                OrderBy::Aggregation => aggregation(a).cmp(&aggregation(b)),
                OrderBy::CreatedAt => a.created_at.cmp(&b.created_at),
                OrderBy::UpdatedAt => a.updated_at.cmp(&b.updated_at),
            }
            .then_with(|| a.slug.cmp(&b.slug));
            if self.descending {
                order.reverse()
            } else {
                order
            }
        });
    }
}

/// The meter query's parameters, checked against the meter.
struct MeterQuery {
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    window: Option<Window>,
    zone: TimeZone,
    subjects: Vec<String>,
    /// The customers named by `filterCustomerId`: only their events, a row per customer.
    customers: Vec<String>,
    /// The dimensions to group by (`subject` left out), in the meter's order.
    dimensions: Vec<String>,
    by_subject: bool,
    dimension_filters: Vec<(String, String)>,
}

impl MeterQuery {
    fn parse(raw: &str, meter: &CoreMeter) -> Result<Self, Refused> {
        let parameters = Parameters::parse(raw)?;
        if let Some(client) = parameters.one("clientId")? {
            if client.is_empty() || client.chars().count() > CLIENT_ID_LENGTH_MAX {
                return Err(bad_request(format!(
                    "Invalid format for parameter clientId: 1 to {CLIENT_ID_LENGTH_MAX} characters"
                )));
            }
        }
        if !parameters.all("advancedMeterGroupByFilters").is_empty() {
            return Err(bad_request(
                "advancedMeterGroupByFilters is not supported by billow's OpenMeter profile; \
                 filter with filterGroupBy",
            ));
        }
        let from = parameters.instant("from")?;
        let to = parameters.instant("to")?;
        if let (Some(from), Some(to)) = (from, to) {
            if from == to {
                return Err(bad_request("from and to cannot be equal"));
            }
            if from > to {
                return Err(bad_request("from must be before to"));
            }
        }
        let window = parameters
            .one("windowSize")?
            .map(|text| {
                Window::parse(&text).ok_or_else(|| {
                    bad_request(format!(
                        "Invalid format for parameter windowSize: {text:?} is not MINUTE, HOUR, \
                         DAY or MONTH"
                    ))
                })
            })
            .transpose()?;
        let zone = match parameters.one("windowTimeZone")? {
            None => TimeZone::UTC,
            Some(name) => TimeZone::get(&name).map_err(|_| {
                bad_request(format!(
                    "invalid time zone: {name:?} is not in the IANA time zone database"
                ))
            })?,
        };
        let subjects = parameters.all("subject");
        let mut by_subject = !subjects.is_empty();
        let customers = parameters.all("filterCustomerId");
        let mut dimensions = Vec::new();
        for key in parameters.all("groupBy") {
            if key == "subject" {
                by_subject = true;
            } else if key == "customer_id" {
                // Every row of a query filtered by customer names its customer.
                if customers.is_empty() {
                    return Err(bad_request(
                        "customer filter is required with customer_id group by",
                    ));
                }
            } else if meter.group_by.contains(&key) {
                dimensions.push(key);
            } else {
                return Err(bad_request(format!("invalid group by: {key}")));
            }
        }
        dimensions.sort_by_key(|key| meter.group_by.iter().position(|own| own == key));
        dimensions.dedup();
        if !parameters.all("filterGroupBy").is_empty() {
            return Err(bad_request(
                "Invalid format for parameter filterGroupBy: send each dimension as \
                 filterGroupBy[dimension]=value",
            ));
        }
        let mut dimension_filters = Vec::new();
        for (name, value) in &parameters.0 {
            let Some(key) = name
                .strip_prefix("filterGroupBy[")
                .and_then(|rest| rest.strip_suffix(']'))
            else {
                continue;
            };
            if !meter.group_by.iter().any(|own| own == key) {
                return Err(bad_request(format!("invalid group by filter: {key}")));
            }
            if dimension_filters.iter().any(|(given, _)| given == key) {
                return Err(bad_request(format!(
                    "Invalid format for parameter filterGroupBy[{key}]: given more than once"
                )));
            }
            dimension_filters.push((key.to_owned(), value.clone()));
        }
        Ok(Self {
            from,
            to,
            window,
            zone,
            subjects,
            customers,
            dimensions,
            by_subject,
            dimension_filters,
        })
    }
}

/// Queries a meter's usage (OpenMeter's `queryMeter`): its aggregate over `[from, to)` (from
/// the first event, up to now, when left out), per window of `windowSize` in `windowTimeZone`,
/// per subject when asked (`groupBy=subject`, or any `subject`), per the meter's dimensions in
/// `groupBy`.
#[utoipa::path(get, path = "/openmeter/api/v1/meters/{meterIdOrSlug}/query", tag = "profile: OpenMeter", operation_id = "openmeter_query_meter",
    params(
        ("meterIdOrSlug" = String, Path, description = "The meter's id (`mtr_…`) or key"),
        ("clientId" = Option<String>, Query, min_length = 1, max_length = 36, description = "Accepted and not used (OpenMeter tracks a query's progress by it)"),
        ("from" = Option<String>, Query, format = DateTime, description = "Start, RFC 3339, inclusive; all history when left out"),
        ("to" = Option<String>, Query, format = DateTime, description = "End, RFC 3339, exclusive; now when left out"),
        ("windowSize" = Option<Window>, Query, description = "One aggregate per window of this size; one for the whole period when left out"),
        ("windowTimeZone" = Option<String>, Query, description = "The IANA time zone the windows follow; UTC when left out"),
        ("subject" = Option<Vec<String>>, Query, explode, description = "Only these subjects' events, one aggregate per subject"),
        ("filterGroupBy" = Option<std::collections::HashMap<String, String>>, Query, style = DeepObject, explode, description = "`filterGroupBy[dimension]=value`: only events whose dimension has exactly this value"),
        ("filterCustomerId" = Option<Vec<String>>, Query, explode, description = "Only these customers' events (by billow id or external id: the events of every subject each claims), one aggregate per customer"),
        ("groupBy" = Option<Vec<String>>, Query, explode, description = "`subject`, `customer_id` (with `filterCustomerId`) and the meter's dimensions to aggregate by"),
    ),
    responses(
        (status = 200, description = "The aggregates", body = QueryResult),
        (status = 400, description = "An invalid parameter, or events the meter cannot aggregate", body = OpenMeterProblem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = OpenMeterProblem, content_type = "application/problem+json"),
        (status = 404, description = "No meter has this id or key, or no customer (that the caller may read) one of `filterCustomerId`", body = OpenMeterProblem, content_type = "application/problem+json"),
    ))]
pub(super) async fn query_meter(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<QueryResult>, Refused> {
    let principal = principal?;
    let workspace = principal.workspace_id();
    let record = named_meter(&state, workspace, &id).await?;
    let query = MeterQuery::parse(raw.as_deref().unwrap_or_default(), &record.spec)?;
    let meter = CoreMeter {
        group_by: query.dimensions.clone(),
        ..record.spec
    };
    let start = query.from.unwrap_or(Timestamp::UNIX_EPOCH);
    let end = query.to.unwrap_or_else(|| state.clock.now());
    let mut result = QueryResult {
        from: query.from,
        to: query.to,
        window_size: query.window,
        data: Vec::new(),
    };
    let customers = filter_customers(&state, &principal, &query.customers).await?;
    // A `from` after now, without `to`: nothing yet.
    let Some(period) = Period::new(start, end).ok().filter(|p| p.start < p.end) else {
        return Ok(Json(result));
    };
    let read = meter.events_read_for(period);
    let windowed = WindowedQuery {
        period,
        windows: query.window.map(|window| (window.size(), &query.zone)),
        by_subject: query.by_subject,
        dimension_filters: &query.dimension_filters,
    };
    let aggregate = |events: &[UsageEvent]| {
        meter
            .aggregate_windows(events, &windowed)
            .map_err(|error| match error {
                WindowedError::Aggregate(_) | WindowedError::TooManyWindows { .. } => {
                    bad_request(error.to_string())
                }
                WindowedError::Calendar(_) => bad_request(format!(
                    "the windows of [{start}, {end}) leave the supported dates: {error}"
                )),
            })
    };
    // Each quantity with the customer it is of, when the query names customers.
    let mut quantities: Vec<(Option<String>, WindowQuantity)> = Vec::new();
    if customers.is_empty() {
        let events = events(&state, &principal, &query.subjects, read).await?;
        quantities.extend(aggregate(&events)?.into_iter().map(|row| (None, row)));
    } else {
        for (customer, subjects) in customers {
            let subjects: Vec<String> = subjects
                .into_iter()
                .filter(|subject| query.subjects.is_empty() || query.subjects.contains(subject))
                .collect();
            let events = read_events(&state, workspace, Some(subjects), read).await?;
            quantities.extend(
                aggregate(&events)?
                    .into_iter()
                    .map(|row| (Some(customer.clone()), row)),
            );
        }
        quantities.sort_by(|(a_customer, a), (b_customer, b)| {
            (a.window.start, a_customer, &a.subject, &a.group).cmp(&(
                b.window.start,
                b_customer,
                &b.subject,
                &b.group,
            ))
        });
    }
    result.data = quantities
        .into_iter()
        .map(|(customer, row)| {
            let mut row = QueryRow::new(row, query.window.is_some(), query.from, query.to);
            row.customer_id = customer;
            row
        })
        .collect();
    Ok(Json(result))
}

/// The subjects of a meter's events (OpenMeter's `listMeterSubjects`), in order: every subject
/// of the workspace with an event the meter counts in `[from, to)` (all history, up to now, when
/// left out); a customer token's own customer's only.
#[utoipa::path(get, path = "/openmeter/api/v1/meters/{meterIdOrSlug}/subjects", tag = "profile: OpenMeter", operation_id = "openmeter_list_meter_subjects",
    params(
        ("meterIdOrSlug" = String, Path, description = "The meter's id (`mtr_…`) or key"),
        ("from" = Option<String>, Query, format = DateTime, description = "Start, RFC 3339, inclusive; all history when left out"),
        ("to" = Option<String>, Query, format = DateTime, description = "End, RFC 3339, exclusive; now when left out"),
    ),
    responses(
        (status = 200, description = "The subjects", body = [String]),
        (status = 400, description = "An invalid parameter", body = OpenMeterProblem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = OpenMeterProblem, content_type = "application/problem+json"),
        (status = 404, description = "No meter has this id or key", body = OpenMeterProblem, content_type = "application/problem+json"),
    ))]
pub(super) async fn list_meter_subjects(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Vec<String>>, Refused> {
    let principal = principal?;
    let record = named_meter(&state, principal.workspace_id(), &id).await?;
    let parameters = Parameters::parse(raw.as_deref().unwrap_or_default())?;
    let from = parameters.instant("from")?;
    let to = parameters.instant("to")?;
    let start = from.unwrap_or(Timestamp::UNIX_EPOCH);
    let end = to.unwrap_or_else(|| state.clock.now());
    if from.is_some() && to.is_some() && start >= end {
        return Err(bad_request("from must be before to"));
    }
    let Some(period) = Period::new(start, end).ok().filter(|p| p.start < p.end) else {
        return Ok(Json(Vec::new()));
    };
    let events = events(&state, &principal, &[], period).await?;
    Ok(Json(
        record
            .spec
            .subjects(&events)
            .into_iter()
            .map(str::to_owned)
            .collect(),
    ))
}

/// The customers `filterCustomerId` names (by billow id or external id), each once, with the
/// subjects whose events are theirs; a customer the caller may not read is not found, as one
/// that does not exist.
async fn filter_customers(
    state: &AppState,
    principal: &Principal,
    ids: &[String],
) -> Result<Vec<(String, Vec<String>)>, Refused> {
    let mut customers: Vec<(String, Vec<String>)> = Vec::new();
    for id in ids {
        let not_found = || {
            Refused::new(
                StatusCode::NOT_FOUND,
                format!("customer with id {id} not found"),
            )
        };
        let customer = named_customer(state, principal, "customer", id)
            .await
            .map_err(|error| match error {
                ApiError::NotFound { .. } => not_found(),
                other => other.into(),
            })?;
        if customers
            .iter()
            .any(|(known, _)| *known == customer.id.as_str())
        {
            continue;
        }
        let world = CustomerWorld::load(
            &state.billing,
            principal.workspace_id(),
            customer.id.as_str(),
        )
        .await
        .map_err(ApiError::from)?
        .ok_or_else(not_found)?;
        customers.push((customer.id.to_string(), world.subjects()));
    }
    Ok(customers)
}

/// The events the query reads over `read`: those of `subjects` (every subject when none is
/// named), only a customer token's own customer's.
async fn events(
    state: &AppState,
    principal: &Principal,
    subjects: &[String],
    read: Period,
) -> Result<Vec<UsageEvent>, Refused> {
    let workspace = principal.workspace_id();
    let subjects: Option<Vec<String>> = match principal.customer_id() {
        None => (!subjects.is_empty()).then(|| subjects.to_vec()),
        Some(customer) => {
            let own = CustomerWorld::load(&state.billing, workspace, customer)
                .await
                .map_err(ApiError::from)?
                .map(|world| world.subjects())
                .unwrap_or_default();
            Some(if subjects.is_empty() {
                own
            } else {
                own.into_iter()
                    .filter(|subject| subjects.contains(subject))
                    .collect()
            })
        }
    };
    read_events(state, workspace, subjects, read).await
}

/// The events of `subjects` (of the whole workspace for `None`) whose time is in `read`.
async fn read_events(
    state: &AppState,
    workspace: &WorkspaceId,
    subjects: Option<Vec<String>>,
    read: Period,
) -> Result<Vec<UsageEvent>, Refused> {
    let events = match subjects {
        None => {
            state
                .store
                .workspace_usage_events(workspace, read.start, read.end)
                .await
        }
        Some(subjects) if subjects.is_empty() => Ok(Vec::new()),
        Some(subjects) => {
            state
                .store
                .usage_events(workspace, &subjects, read.start, read.end)
                .await
        }
    };
    Ok(events.map_err(ApiError::internal)?)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use billow_core::aggregation::TimeUnit;
    use billow_core::Aggregation;

    use super::*;

    fn meter() -> CoreMeter {
        CoreMeter {
            key: "tokens".into(),
            event_type: "prompt".into(),
            aggregation: Aggregation::Sum,
            value_property: Some("tokens".into()),
            group_by: vec!["model".into(), "type".into()],
            filters: BTreeMap::new(),
            time_unit: TimeUnit::Hour,
        }
    }

    fn assert_refused(raw: &str) {
        let response = axum::response::IntoResponse::into_response(
            MeterQuery::parse(raw, &meter()).err().expect("refused"),
        );
        assert_eq!(response.status(), 400, "{raw}");
    }

    #[test]
    fn the_query_is_read_as_openmeter_reads_it() {
        let query = MeterQuery::parse(
            "from=2024-01-01T00%3A00%3A00Z&windowSize=HOUR&windowTimeZone=Europe%2FBudapest\
             &subject=a&subject=b&groupBy=type&groupBy=model&filterGroupBy%5Bmodel%5D=gpt",
            &meter(),
        )
        .ok()
        .expect("accepted");

        assert_eq!(query.from, Some("2024-01-01T00:00:00Z".parse().unwrap()));
        assert_eq!(query.to, None);
        assert_eq!(query.window, Some(Window::Hour));
        assert_eq!(query.subjects, ["a", "b"]);
        assert!(query.by_subject, "a subject filter groups by subject");
        assert_eq!(query.dimensions, ["model", "type"]);
        assert_eq!(
            query.dimension_filters,
            [("model".to_owned(), "gpt".to_owned())]
        );
        let grouped = MeterQuery::parse("groupBy=model", &meter()).ok();
        assert!(!grouped.expect("accepted").by_subject);
    }

    #[test]
    fn every_invalid_parameter_is_a_400() {
        for raw in [
            "groupBy=region",
            "filterGroupBy%5Bregion%5D=eu",
            "windowSize=WEEK",
            "windowTimeZone=Mars%2FOlympus",
            "from=2024-01-01",
            "from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z",
            "from=2024-01-01T00:00:00Z&to=2024-01-01T00:00:00Z",
            "from=2024-01-01T00:00:00Z&from=2024-01-02T00:00:00Z",
            "clientId=",
            "groupBy=customer_id",
            "advancedMeterGroupByFilters=%7B%7D",
            "filterGroupBy=%7B%27model%27%3A%20%27gpt%27%7D",
            "subject=a%00",
        ] {
            assert_refused(raw);
        }
    }
}
