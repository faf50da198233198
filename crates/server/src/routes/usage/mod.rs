//! `GET /api/v1/customers/{id}/usage`: a customer's usage per meter for a period, in total, per
//! project, and as a daily series, aggregated by the core's meters (the same numbers a billing
//! run rates).

mod wire;

use axum::extract::{Path, State};
use billow_billing::world::CustomerWorld;
use billow_core::{Meter, Period, UsageEvent};
use jiff::{Timestamp, ToSpan};
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiError, Problem};
use crate::json::ApiJson;
use crate::openapi::ApiRouter;
use crate::query::ApiQuery;
use crate::routes::shared::guard_customer;
use crate::state::AppState;
use crate::wire::Page;
use wire::{CustomerUsage, DailyUsage, MeterUsage, ProjectUsage};

/// The longest daily series one request returns.
const SERIES_DAYS_MAX: i64 = 366;

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(customer_usage))
}

#[derive(Debug, Deserialize)]
pub(crate) struct UsageQuery {
    meter: Option<String>,
    /// Optional to the extractor, so that a missing one is a 422 naming it.
    from: Option<String>,
    to: Option<String>,
}

fn instant(field: &str, text: Option<&str>) -> Result<Timestamp, ApiError> {
    text.ok_or_else(|| ApiError::invalid(field, "is required"))?
        .parse()
        .map_err(|_| ApiError::invalid(field, "must be an RFC 3339 instant"))
}

/// Usage of a customer in `[from, to)`: per meter (or only `meter`, a key), the total, the
/// totals per project, and a series per local day of the customer.
#[utoipa::path(get, path = "/api/v1/customers/{id}/usage", tag = "usage",
    params(
        ("id" = String, Path, description = "The customer's id"),
        ("meter" = Option<String>, Query, description = "Only this meter (its key)"),
        ("from" = String, Query, format = DateTime, description = "Start, RFC 3339"),
        ("to" = String, Query, format = DateTime, description = "End (excluded), RFC 3339; at most 366 local days after `from`"),
    ),
    responses(
        (status = 200, description = "The usage, one item per meter, never cut into pages", body = CustomerUsage),
        (status = 404, description = "No such customer (or another one than a customer token's)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameter", body = Problem, content_type = "application/problem+json"),
    ))]
pub(crate) async fn customer_usage(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<ApiJson<CustomerUsage>, ApiError> {
    guard_customer(&principal, &id)?;
    let from = instant("from", query.from.as_deref())?;
    let to = instant("to", query.to.as_deref())?;
    let period =
        Period::new(from, to).map_err(|_| ApiError::invalid("to", "must be after from"))?;
    let workspace = principal.workspace_id();
    let world = CustomerWorld::load(&state.billing, workspace, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            resource: "customer",
            id: id.clone(),
        })?;
    let mut meters: Vec<Meter> = world.meters.to_vec();
    if let Some(key) = &query.meter {
        meters.retain(|meter| &meter.key == key);
        if meters.is_empty() {
            return Err(ApiError::invalid("meter", "no meter has this key"));
        }
    }
    let days = daily_periods(&world.customer.time_zone, period)?;
    // From the beginning: a gauge's level at `from` is its last value before it.
    let mut events = state
        .store
        .usage_events(workspace, &world.subjects(), Timestamp::MIN, to)
        .await
        .map_err(ApiError::internal)?;
    for event in &mut events {
        event.subject.clone_from(&id);
    }
    let mut data = Vec::with_capacity(meters.len());
    for meter in &meters {
        data.push(meter_usage(meter, &events, period, &days)?);
    }
    Ok(ApiJson(CustomerUsage {
        customer_id: id,
        from: from.into(),
        to: to.into(),
        page: Page::whole(data),
    }))
}

fn total(meter: &Meter, events: &[UsageEvent], period: Period) -> Result<Decimal, ApiError> {
    let groups = meter
        .aggregate(events, period)
        .map_err(ApiError::internal)?;
    Ok(groups.iter().map(|group| group.quantity).sum())
}

fn meter_usage(
    meter: &Meter,
    events: &[UsageEvent],
    period: Period,
    days: &[Period],
) -> Result<MeterUsage, ApiError> {
    // Totals per project: the meter grouped by project only.
    let by_project_meter = Meter {
        group_by: vec!["project".to_owned()],
        ..meter.clone()
    };
    let projects: Vec<ProjectUsage> = by_project_meter
        .aggregate(events, period)
        .map_err(ApiError::internal)?
        .into_iter()
        .map(|group| {
            let project = group
                .group
                .first()
                .map(|(_, value)| value.clone())
                .filter(|value| !value.is_empty());
            ProjectUsage {
                project,
                quantity: group.quantity,
            }
        })
        .collect();
    let ungrouped = Meter {
        group_by: Vec::new(),
        ..meter.clone()
    };
    let mut series = Vec::with_capacity(days.len());
    for day in days {
        series.push(DailyUsage {
            start: day.start.into(),
            end: day.end.into(),
            quantity: total(&ungrouped, events, *day)?,
        });
    }
    Ok(MeterUsage {
        meter: meter.key.clone(),
        quantity: total(&ungrouped, events, period)?,
        projects,
        series,
    })
}

/// `period` cut at the local midnights of `time_zone`.
fn daily_periods(time_zone: &str, period: Period) -> Result<Vec<Period>, ApiError> {
    let zone = jiff::tz::TimeZone::get(time_zone).map_err(ApiError::internal)?;
    let mut days = Vec::new();
    let mut start = period.start;
    while start < period.end {
        if i64::try_from(days.len()).unwrap_or(i64::MAX) >= SERIES_DAYS_MAX {
            return Err(ApiError::invalid(
                "to",
                format!("the period may span at most {SERIES_DAYS_MAX} days"),
            ));
        }
        let next_midnight = start
            .to_zoned(zone.clone())
            .date()
            .checked_add(1.day())
            .and_then(|date| date.to_zoned(zone.clone()))
            .map_err(ApiError::internal)?
            .timestamp();
        let end = next_midnight.min(period.end);
        days.push(Period { start, end });
        start = end;
    }
    Ok(days)
}
