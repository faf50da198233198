//! Akkeris's invoices API (seed 002; `docs/profiles/akkeris.md`): an account is a customer, a
//! space one of its projects, an organization a dimension of its billed resources.
//!
//! - `GET /account/invoices`: a `$ref` per monthly invoice of the account, oldest first;
//! - `GET /account/invoices/{invoice_id}`: one monthly invoice, `{invoice_id}` the date its
//!   period starts on (`2017-02-01`): the upcoming invoice for the current month, the period's
//!   finalized invoice for a closed one;
//! - the same under `/organizations/{org}` and `/spaces/{space}` (and the seed's singular
//!   `/organization/{org}`, `/space/{space}`), showing only the organization's or the space's
//!   items and totals over them.
//!
//! Paths are matched without regard to case, as Akkeris matches them ([`fold_case`]). A
//! customer token reads its own account; a workspace key names the account with `?account=` or
//! a `Billow-Account` header (the customer's id or external id). Errors are the message alone,
//! as text, as Akkeris answers them.

mod wire;

use std::collections::BTreeSet;

use axum::extract::{Path, RawQuery, State};
use axum::http::header::{ALLOW, CONTENT_TYPE};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, MethodRouter};
use axum::{Json, Router};
use billow_core::invoice::InvoiceLine;
use billow_core::period::local_midnight;
use billow_core::scenario::{InvoiceScope, IssuedInvoice};
use billow_core::{BillingCalendar, Cadence, Period};
use billow_store::invoices::{InvoiceFilter, InvoiceStatus, INVOICE_PAGE_LIMIT_MAX};
use billow_store::Customer;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::Value;

use super::shared::{named_customer, ErrorShape, ProfileError};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use wire::{invoice_id, Invoice, Month, Part, Reference};

/// The header a workspace key names the account with (beside the `account` query parameter).
const ACCOUNT_HEADER: &str = "billow-account";

/// Akkeris's answer for an invoice it does not have.
const INVOICE_NOT_FOUND: &str = "The specified invoice was not found.";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/account/invoices", only_get(account_invoices))
        .route("/account/invoices/{invoice_id}", only_get(account_invoice))
        .route(
            "/organization/{org}/invoices",
            only_get(organization_invoices),
        )
        .route(
            "/organizations/{org}/invoices",
            only_get(organization_invoices),
        )
        .route(
            "/organization/{org}/invoices/{invoice_id}",
            only_get(organization_invoice),
        )
        .route(
            "/organizations/{org}/invoices/{invoice_id}",
            only_get(organization_invoice),
        )
        .route("/space/{space}/invoices", only_get(space_invoices))
        .route("/spaces/{space}/invoices", only_get(space_invoices))
        .route(
            "/space/{space}/invoices/{invoice_id}",
            only_get(space_invoice),
        )
        .route(
            "/spaces/{space}/invoices/{invoice_id}",
            only_get(space_invoice),
        )
}

/// The OpenAPI paths of [`router`]: each a `GET` answering its JSON, or its error as text.
pub(crate) fn document() -> utoipa::openapi::OpenApi {
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ArrayBuilder, ComponentsBuilder, ObjectBuilder, Type};
    use utoipa::openapi::{
        ContentBuilder, OpenApiBuilder, PathItem, PathsBuilder, Ref, Required, ResponseBuilder,
    };

    let text = || {
        ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build()
    };
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("text/plain", text())
            .build()
    };
    let mut paths = PathsBuilder::new();
    for (scope, parameter) in [
        ("account", None),
        ("organization", Some("org")),
        ("organizations", Some("org")),
        ("space", Some("space")),
        ("spaces", Some("space")),
    ] {
        let base = match parameter {
            None => format!("/{scope}/invoices"),
            Some(name) => format!("/{scope}/{{{name}}}/invoices"),
        };
        for one in [false, true] {
            let path = if one {
                format!("{base}/{{invoice_id}}")
            } else {
                base.clone()
            };
            let body = if one {
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("AkkerisInvoice")))
                    .build()
            } else {
                ContentBuilder::new()
                    .schema(Some(
                        ArrayBuilder::new().items(Ref::from_schema_name("AkkerisInvoiceReference")),
                    ))
                    .build()
            };
            let mut operation = OperationBuilder::new()
                .tag("profile: Akkeris")
                .operation_id(Some(format!(
                    "akkeris_{scope}_{}",
                    if one { "invoice" } else { "invoices" }
                )))
                .summary(Some(if one {
                    "One monthly invoice: the current month's upcoming invoice or a closed month's"
                } else {
                    "The monthly invoices, as references"
                }))
                .response(
                    "200",
                    ResponseBuilder::new()
                        .description("Found")
                        .content("application/json", body)
                        .build(),
                )
                .response("401", error("No valid credential"))
                .response(
                    "404",
                    error("No such account, organization, space or invoice"),
                )
                .response(
                    "400",
                    error(
                        "No account named with a workspace key, or an invoice id that is no date",
                    ),
                );
            let mut names: Vec<&str> = parameter.into_iter().collect();
            if one {
                names.push("invoice_id");
            }
            for name in names {
                operation = operation.parameter(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                );
            }
            if scope == "account" {
                operation = operation.parameter(
                    ParameterBuilder::new()
                        .name("account")
                        .parameter_in(ParameterIn::Query)
                        .required(Required::False)
                        .description(Some(
                            "With a workspace key: the account's id or external id (or the \
                             `Billow-Account` header)",
                        ))
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String))),
                );
            }
            paths = paths.path(path, PathItem::new(HttpMethod::Get, operation.build()));
        }
    }
    OpenApiBuilder::new()
        .paths(paths.build())
        .components(Some(
            ComponentsBuilder::new()
                .schema_from::<Reference>()
                .schema_from::<Invoice>()
                .schema_from::<wire::Item>()
                .schema_from::<wire::App>()
                .build(),
        ))
        .build()
}

/// A `GET` route whose other methods are refused in Akkeris's shape.
fn only_get<H, T>(handler: H) -> MethodRouter<AppState>
where
    H: axum::handler::Handler<T, AppState>,
    T: 'static,
{
    get(handler).fallback(method_not_allowed)
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let mut response = Refused::from(ApiError::MethodNotAllowed { method, uri }).into_response();
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET,HEAD"));
    response
}

/// The path of `uri` with Akkeris's fixed segments (`account`, `organization(s)`, `space(s)`,
/// `invoices`) in lower case, when it is one of Akkeris's paths written in another case
/// (`/Account/Invoices`); `None` for any other path, and for one already written as routed.
/// Akkeris lower-cases a request's whole URL before matching its routes; billow folds only
/// the fixed segments, so that ids keep their case.
pub(crate) fn fold_case(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    let segments: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    if segments.iter().any(|segment| segment.is_empty()) {
        return None;
    }
    let is = |segment: &str, word: &str| segment.eq_ignore_ascii_case(word);
    let scope = |segment: &str| {
        ["organization", "organizations", "space", "spaces"]
            .iter()
            .any(|word| is(segment, word))
    };
    let fixed: [usize; 2] = match segments.as_slice() {
        [first, second] | [first, second, _] if is(first, "account") && is(second, "invoices") => {
            [0, 1]
        }
        [first, _, third] | [first, _, third, _] if scope(first) && is(third, "invoices") => [0, 2],
        _ => return None,
    };
    let folded: Vec<String> = segments
        .iter()
        .enumerate()
        .map(|(index, segment)| {
            if fixed.contains(&index) {
                segment.to_ascii_lowercase()
            } else {
                (*segment).to_owned()
            }
        })
        .collect();
    let folded = format!("/{}", folded.join("/"));
    if folded == path {
        return None;
    }
    let path_and_query = match uri.query() {
        Some(query) => format!("{folded}?{query}"),
        None => folded,
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(path_and_query).ok()?);
    Uri::from_parts(parts).ok()
}

/// Akkeris's errors: the message alone as the body. (Akkeris labels it `application/json`
/// though it is not JSON; billow labels it `text/plain`.)
pub(crate) struct Akkeris;

impl ErrorShape for Akkeris {
    fn body(_status: StatusCode, message: &str) -> Value {
        Value::String(message.to_owned())
    }

    fn response(status: StatusCode, message: &str) -> Response {
        (
            status,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            message.to_owned(),
        )
            .into_response()
    }
}

type Refused = ProfileError<Akkeris>;

fn not_found(message: &str) -> Refused {
    Refused::new(StatusCode::NOT_FOUND, message)
}

/// Which invoices a path asks for.
enum Scope {
    Account,
    Organization(String),
    Space(String),
}

impl Scope {
    /// Where a list's `$ref`s point: Akkeris's own paths (the plural forms for organizations
    /// and spaces, as Akkeris writes them).
    fn prefix(&self) -> String {
        match self {
            Self::Account => "/account/invoices/".to_owned(),
            Self::Organization(organization) => {
                format!("/organizations/{}/invoices/", encode(organization))
            }
            Self::Space(space) => format!("/spaces/{}/invoices/", encode(space)),
        }
    }
}

/// A path segment as it must be written in a path.
fn encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

/// What a path segment escapes: everything but RFC 3986's unreserved characters.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Who asks, and for which account.
struct Caller {
    principal: Principal,
    /// The account the request names (`?account=` or `Billow-Account`), if it names one.
    account: Option<String>,
}

impl Caller {
    fn new(
        principal: Result<Principal, ApiError>,
        headers: &HeaderMap,
        query: Option<String>,
    ) -> Result<Self, Refused> {
        let principal = principal?;
        let from_query: Vec<String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .filter(|(name, _)| name == "account")
            .map(|(_, value)| value.into_owned())
            .collect();
        let from_header = headers
            .get(ACCOUNT_HEADER)
            .map(|value| {
                value.to_str().map(str::to_owned).map_err(|_| {
                    Refused::new(
                        StatusCode::BAD_REQUEST,
                        "Billow-Account must be the account's id or external id, in visible ASCII",
                    )
                })
            })
            .transpose()?;
        let mut named = from_query.into_iter().chain(from_header);
        let account = named.next();
        if named.any(|other| Some(&other) != account.as_ref()) {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "account and Billow-Account name different accounts; name one",
            ));
        }
        if account.as_deref() == Some("") {
            return Err(Refused::new(
                StatusCode::BAD_REQUEST,
                "account must be the account's id or external id, not empty",
            ));
        }
        Ok(Self { principal, account })
    }
}

/// The account a request reads, and the part of its invoices `scope` shows.
async fn resolve(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
) -> Result<(Customer, Part), Refused> {
    let principal = &caller.principal;
    let workspace = principal.workspace_id();
    let customer = if let Some(account) = &caller.account {
        named_customer(state, principal, "account", account).await?
    } else if let Some(own) = principal.customer_id() {
        named_customer(state, principal, "account", own).await?
    } else if let Some(customer) = space_by_project_id(state, principal, scope).await? {
        customer
    } else {
        return Err(Refused::new(
            StatusCode::BAD_REQUEST,
            "A workspace key reads an account's invoices when the request names the account: \
             add ?account=<the customer's id or external id>, or a Billow-Account header",
        ));
    };
    let part = match scope {
        Scope::Account => Part::Account,
        Scope::Organization(organization) => Part::Organization(organization.clone()),
        Scope::Space(space) => {
            let projects = state
                .store
                .projects(workspace, customer.id.as_str())
                .await
                .map_err(ApiError::internal)?;
            let named: Vec<String> = projects
                .iter()
                .filter(|project| project.id.as_str() == space || project.name == *space)
                .map(|project| project.id.as_str().to_owned())
                .collect();
            if named.is_empty() {
                return Err(not_found("The specified space was not found."));
            }
            Part::Projects(named)
        }
    };
    Ok((customer, part))
}

/// The account of a space named by its project id (`prj_…`), which names its account: a
/// workspace key needs no `account` for it.
async fn space_by_project_id(
    state: &AppState,
    principal: &Principal,
    scope: &Scope,
) -> Result<Option<Customer>, Refused> {
    let Scope::Space(space) = scope else {
        return Ok(None);
    };
    if space.contains('\0') {
        return Ok(None);
    }
    let project = state
        .store
        .project(principal.workspace_id(), space)
        .await
        .map_err(ApiError::internal)?;
    match project {
        Some(project) => Ok(Some(
            named_customer(state, principal, "account", project.customer_id.as_str()).await?,
        )),
        None => Ok(None),
    }
}

fn time_zone(customer: &Customer) -> Result<TimeZone, Refused> {
    TimeZone::get(&customer.time_zone).map_err(|error| Refused::from(ApiError::internal(error)))
}

/// The account's billing period that holds `now`: its current month.
fn current_period(
    customer: &Customer,
    time_zone: &TimeZone,
    now: Timestamp,
) -> Result<Period, Refused> {
    let today = now.to_zoned(time_zone.clone()).date();
    BillingCalendar::new(
        Cadence::Monthly,
        today,
        customer.billing_cycle_day,
        time_zone.clone(),
    )
    .and_then(|calendar| calendar.period_containing(now))
    .map_err(|error| Refused::from(ApiError::internal(error)))
}

/// The account's upcoming invoice (its own, not a subscription's): what billing the current
/// period now would give.
async fn upcoming(
    state: &AppState,
    principal: &Principal,
    customer: &Customer,
) -> Result<Option<IssuedInvoice>, Refused> {
    let preview = state
        .billing
        .upcoming_invoices(principal.workspace_id(), customer.id.as_str())
        .await
        .map_err(ApiError::from)?;
    Ok(preview.and_then(|preview| {
        preview
            .upcoming
            .into_iter()
            .find(|invoice| invoice.scope == InvoiceScope::Customer)
    }))
}

async fn list(state: AppState, caller: Caller, scope: Scope) -> Result<Response, Refused> {
    let (customer, part) = resolve(&state, &caller, &scope).await?;
    let workspace = caller.principal.workspace_id();
    let time_zone = time_zone(&customer)?;
    let current = current_period(&customer, &time_zone, state.clock.now())?;
    let mut months: BTreeSet<Date> = BTreeSet::new();
    if part == Part::Account {
        let periods = state
            .store
            .customer_invoice_periods(workspace, customer.id.as_str())
            .await
            .map_err(ApiError::internal)?;
        months.extend(
            periods
                .iter()
                .map(|period| invoice_id(period.period_start, &time_zone)),
        );
    } else {
        // An organization's or a space's months are those whose invoice has its items.
        let mut filter = InvoiceFilter {
            customer_id: Some(customer.id.as_str().to_owned()),
            limit: INVOICE_PAGE_LIMIT_MAX,
            ..InvoiceFilter::default()
        };
        loop {
            let page = state
                .store
                .invoices(workspace, &filter)
                .await
                .map_err(ApiError::internal)?;
            let Some(last) = page.last() else { break };
            filter.before_id = Some(last.id.as_str().to_owned());
            for invoice in &page {
                let shown = invoice.scope == billow_store::invoices::InvoiceScope::Customer
                    && matches!(invoice.status, InvoiceStatus::Open | InvoiceStatus::Paid);
                if shown && part.has_items(&lines_of(&invoice.lines)?) {
                    months.insert(invoice_id(invoice.period_start, &time_zone));
                }
            }
        }
    }
    let this_month = invoice_id(current.start, &time_zone);
    months.remove(&this_month);
    if let Some(upcoming) = upcoming(&state, &caller.principal, &customer).await? {
        if part.has_items(&upcoming.invoice.lines) {
            months.insert(this_month);
        }
    }
    if months.is_empty() && part != Part::Account {
        return Err(not_found(INVOICE_NOT_FOUND));
    }
    let prefix = scope.prefix();
    let references: Vec<Reference> = months
        .iter()
        .map(|month| Reference {
            reference: format!("{prefix}{month}"),
        })
        .collect();
    Ok(Json(references).into_response())
}

async fn show(
    state: AppState,
    caller: Caller,
    scope: Scope,
    id: &str,
) -> Result<Response, Refused> {
    let (customer, part) = resolve(&state, &caller, &scope).await?;
    let time_zone = time_zone(&customer)?;
    let date = parse_invoice_id(id).ok_or_else(|| not_found(INVOICE_NOT_FOUND))?;
    let current = current_period(&customer, &time_zone, state.clock.now())?;
    let invoice = if invoice_id(current.start, &time_zone) == date {
        let upcoming = upcoming(&state, &caller.principal, &customer)
            .await?
            .ok_or_else(|| not_found(INVOICE_NOT_FOUND))?;
        let period = upcoming.invoice.period;
        let month = Month {
            period,
            current: true,
            paid: false,
            created_at: period.start,
            updated_at: period.start,
            currency: upcoming.invoice.currency,
            lines: &upcoming.invoice.lines,
        };
        Invoice::new(&month, &part, &time_zone).map_err(ApiError::internal)?
    } else {
        let internal = |error| Refused::from(ApiError::internal(error));
        let from = local_midnight(date, &time_zone).map_err(internal)?;
        let next = date
            .tomorrow()
            .map_err(|error| Refused::from(ApiError::internal(error)))?;
        let to = local_midnight(next, &time_zone).map_err(internal)?;
        let record = state
            .store
            .customer_invoice_starting(
                caller.principal.workspace_id(),
                customer.id.as_str(),
                from,
                to,
            )
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| not_found(INVOICE_NOT_FOUND))?;
        let lines = lines_of(&record.lines)?;
        let month = Month {
            period: Period {
                start: record.period_start,
                end: record.period_end,
            },
            current: false,
            paid: record.status == InvoiceStatus::Paid,
            created_at: record.created_at,
            updated_at: record.updated_at,
            currency: record.currency,
            lines: &lines,
        };
        Invoice::new(&month, &part, &time_zone).map_err(ApiError::internal)?
    };
    let invoice = invoice.ok_or_else(|| not_found(INVOICE_NOT_FOUND))?;
    Ok(Json(invoice).into_response())
}

/// A stored invoice's lines, as the core wrote them.
fn lines_of(lines: &Value) -> Result<Vec<InvoiceLine>, Refused> {
    Vec::<InvoiceLine>::deserialize(lines).map_err(|error| Refused::from(ApiError::internal(error)))
}

/// An invoice id: a date written `YYYY-MM-DD`, nothing else.
fn parse_invoice_id(id: &str) -> Option<Date> {
    let bytes = id.as_bytes();
    let shaped = bytes.len() == 10
        && bytes.iter().enumerate().all(|(index, byte)| match index {
            4 | 7 => *byte == b'-',
            _ => byte.is_ascii_digit(),
        });
    if !shaped {
        return None;
    }
    id.parse().ok()
}

async fn account_invoices(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, Refused> {
    let caller = Caller::new(principal, &headers, query)?;
    list(state, caller, Scope::Account).await
}

async fn account_invoice(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path(invoice_id): Path<String>,
) -> Result<Response, Refused> {
    let caller = Caller::new(principal, &headers, query)?;
    show(state, caller, Scope::Account, &invoice_id).await
}

async fn organization_invoices(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path(organization): Path<String>,
) -> Result<Response, Refused> {
    let caller = Caller::new(principal, &headers, query)?;
    list(state, caller, Scope::Organization(organization)).await
}

async fn organization_invoice(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path((organization, invoice_id)): Path<(String, String)>,
) -> Result<Response, Refused> {
    let caller = Caller::new(principal, &headers, query)?;
    show(
        state,
        caller,
        Scope::Organization(organization),
        &invoice_id,
    )
    .await
}

async fn space_invoices(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path(space): Path<String>,
) -> Result<Response, Refused> {
    let caller = Caller::new(principal, &headers, query)?;
    list(state, caller, Scope::Space(space)).await
}

async fn space_invoice(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    Path((space, invoice_id)): Path<(String, String)>,
) -> Result<Response, Refused> {
    let caller = Caller::new(principal, &headers, query)?;
    show(state, caller, Scope::Space(space), &invoice_id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(path: &str) -> Option<String> {
        fold_case(&path.parse::<Uri>().unwrap()).map(|uri| uri.to_string())
    }

    #[test]
    fn fixed_segments_fold_and_ids_keep_their_case() {
        assert_eq!(
            folded("/Account/INVOICES").as_deref(),
            Some("/account/invoices")
        );
        assert_eq!(
            folded("/ACCOUNT/invoices/2017-02-01?account=Acme").as_deref(),
            Some("/account/invoices/2017-02-01?account=Acme")
        );
        assert_eq!(
            folded("/Organizations/Akkeris/Invoices").as_deref(),
            Some("/organizations/Akkeris/invoices")
        );
        assert_eq!(
            folded("/SPACE/Prod/invoices/2017-02-01").as_deref(),
            Some("/space/Prod/invoices/2017-02-01")
        );
        // Already as routed, not Akkeris's, or an empty segment: nothing to fold.
        assert_eq!(folded("/account/invoices"), None);
        assert_eq!(folded("/spaces/Prod/invoices"), None);
        assert_eq!(folded("/API/v1/customers"), None);
        assert_eq!(folded("/Account/Invoices/"), None);
        assert_eq!(folded("/Account/Bills"), None);
        assert_eq!(folded("/Teams/x/invoices"), None);
        assert_eq!(folded("/"), None);
    }

    #[test]
    fn invoice_ids_are_dates() {
        assert_eq!(
            parse_invoice_id("2017-02-01"),
            Some(jiff::civil::date(2017, 2, 1))
        );
        for id in [
            "2017-02-30",
            "2017-2-01",
            "2017-02-01T00:00:00",
            "20170201",
            "latest",
            "",
        ] {
            assert_eq!(parse_invoice_id(id), None, "{id}");
        }
    }
}
