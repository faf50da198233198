//! `/api/v1/customers`: billing accounts and their project trees (DESIGN.md §2).
//!
//! Workspace keys create, list and update customers and create projects; a customer token may
//! read only its own customer and that customer's projects (404 for any other, 403 for the
//! workspace-only routes).

mod currency;
mod projects;
mod wire;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::http::Uri;
use billow_core::scenario::Invoicing;
use billow_store::{Customer, CustomerId, StoreCustomerError, WorkspaceId};
use utoipa_axum::routes;

use crate::auth::{Principal, WorkspaceAuth};
use crate::error::{ApiError, ConflictProblem, Problem};
use crate::json::ApiJson;
use crate::limits::PageQuery;
use crate::openapi::ApiRouter;
use crate::state::AppState;
use crate::wire::Page;
pub(crate) use wire::Checks;
use wire::{CreateCustomer, CustomerBody, UpdateCustomer};

/// The filters of `GET /api/v1/customers` beside the page parameters.
#[derive(serde::Deserialize)]
struct CustomerFilter {
    external_id: Option<String>,
}

/// How many ancestors a customer may have: parents pay for children, a short chain in practice;
/// the bound keeps the cycle check finite whatever the data.
const ANCESTORS_MAX: usize = 32;

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(create_customer, list_customers))
        .routes(routes!(get_customer, update_customer))
        .routes(routes!(projects::create_project, projects::list_projects))
}

/// Create a customer.
#[utoipa::path(
    post,
    path = "/api/v1/customers",
    tag = "customers",
    request_body = CreateCustomer,
    responses(
        (status = 201, description = "The customer", body = CustomerBody),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The external id is taken", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %auth.workspace_id))]
pub(crate) async fn create_customer(
    auth: WorkspaceAuth,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateCustomer>,
) -> Result<(StatusCode, ApiJson<CustomerBody>), ApiError> {
    let workspace_id = &auth.workspace_id;
    let mut checks = Checks::default();
    let external_id = checks.text("external_id", &body.external_id);
    let name = checks.text("name", &body.name);
    let email = body.email.map(|email| checks.email("email", &email));
    let address = body
        .address
        .map(|address| checks.address("address", address));
    let tax_ids = checks.tax_ids("tax_ids", body.tax_ids);
    let currency = checks.currency("currency", &body.currency);
    let time_zone = checks.time_zone("time_zone", body.time_zone.as_deref().unwrap_or("UTC"));
    let billing_cycle_day =
        checks.billing_cycle_day("billing_cycle_day", body.billing_cycle_day.unwrap_or(1));
    let net_days = body
        .net_days
        .and_then(|days| checks.net_days("net_days", days));
    let owner = body.owner.map(|owner| checks.text("owner", &owner));
    if let Some(parent_id) = &body.parent_id {
        check_parent_exists(&state, workspace_id, parent_id, &mut checks).await?;
    }
    let Some(currency) = currency.filter(|_| checks.errors.is_empty()) else {
        return Err(ApiError::Validation(checks.errors));
    };
    let customer = Customer {
        id: CustomerId::new(),
        external_id,
        name,
        email,
        address,
        tax_ids,
        currency,
        time_zone,
        billing_cycle_day,
        parent_id: body.parent_id.map(Into::into),
        invoicing: body.invoicing.unwrap_or(Invoicing::Consolidated),
        net_days,
        owner,
    };
    state
        .store
        .insert_customer(workspace_id, &customer, state.clock.now())
        .await
        .map_err(|error| store_error(error, &customer))?;
    Ok((StatusCode::CREATED, ApiJson(customer.into())))
}

/// List the workspace's customers, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/customers",
    tag = "customers",
    params(
        ("limit" = Option<u32>, Query, description = "1 to 100; 10 when absent", minimum = 1, maximum = 100),
        ("starting_after" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("external_id" = Option<String>, Query, description = "Only the customer with this external id (a page of zero or one)"),
    ),
    responses(
        (status = 200, description = "One page of customers", body = Page<CustomerBody>),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "An invalid `limit`, or a query parameter given twice", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %auth.workspace_id))]
pub(crate) async fn list_customers(
    auth: WorkspaceAuth,
    State(state): State<AppState>,
    page: PageQuery,
    uri: Uri,
) -> Result<ApiJson<Page<CustomerBody>>, ApiError> {
    let Query(filter) = Query::<CustomerFilter>::try_from_uri(&uri)
        .map_err(|rejection| ApiError::invalid("query", rejection.body_text()))?;
    if let Some(external_id) = filter.external_id {
        let customer = state
            .store
            .customer_by_external_id(&auth.workspace_id, &external_id)
            .await
            .map_err(ApiError::internal)?;
        return Ok(ApiJson(Page::whole(
            customer.into_iter().map(CustomerBody::from).collect(),
        )));
    }
    let page = state
        .store
        .customers(
            &auth.workspace_id,
            page.limit.get(),
            page.starting_after.as_deref(),
        )
        .await
        .map_err(ApiError::internal)?;
    let next_cursor = page
        .has_more
        .then(|| page.items.last().map(|customer| customer.id.clone()))
        .flatten();
    Ok(ApiJson(Page {
        data: page.items.into_iter().map(CustomerBody::from).collect(),
        has_more: page.has_more,
        next_cursor: next_cursor.map(Into::into),
    }))
}

/// Get a customer. A customer token may get only its own.
#[utoipa::path(
    get,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_…`)")),
    responses(
        (status = 200, description = "The customer", body = CustomerBody),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer in this workspace (or for this token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %principal.workspace_id(), customer_id = %id))]
pub(crate) async fn get_customer(
    principal: Principal,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<ApiJson<CustomerBody>, ApiError> {
    let customer = readable_customer(&state, &principal, &id).await?;
    Ok(ApiJson(customer.into()))
}

/// Update a customer: the fields given replace the stored ones.
#[utoipa::path(
    patch,
    path = "/api/v1/customers/{id}",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_…`)")),
    request_body = UpdateCustomer,
    responses(
        (status = 200, description = "The updated customer", body = CustomerBody),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The external id is taken, or `invoicing` changes after the customer's first invoice", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, among them a `currency` that a plan of the customer's subscriptions or resources has no price in", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %auth.workspace_id, customer_id = %id))]
pub(crate) async fn update_customer(
    auth: WorkspaceAuth,
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateCustomer>,
) -> Result<ApiJson<CustomerBody>, ApiError> {
    let workspace_id = &auth.workspace_id;
    let principal = Principal::Workspace {
        workspace_id: workspace_id.clone(),
    };
    let mut customer = readable_customer(&state, &principal, &id).await?;
    let invoicing_before = customer.invoicing;
    let currency_before = customer.currency;
    let mut checks = Checks::default();
    apply_update(&mut customer, body, &mut checks);
    if customer.invoicing != invoicing_before && checks.errors.is_empty() {
        refuse_invoicing_change_after_invoices(&state, workspace_id, &customer.id).await?;
    }
    if customer.currency != currency_before {
        currency::check_currency_change(
            &state,
            workspace_id,
            &customer.id,
            customer.currency,
            &mut checks,
        )
        .await?;
    }
    if let Some(parent_id) = customer.parent_id.clone() {
        check_parent(&state, workspace_id, &customer.id, &parent_id, &mut checks).await?;
    }
    if !checks.errors.is_empty() {
        return Err(ApiError::Validation(checks.errors));
    }
    let found = state
        .store
        .update_customer(workspace_id, &customer, state.clock.now())
        .await
        .map_err(|error| store_error(error, &customer))?;
    if !found {
        return Err(not_found(&id));
    }
    Ok(ApiJson(customer.into()))
}

/// Applies the fields of `body` to `customer`, listing invalid ones in `checks`.
fn apply_update(customer: &mut Customer, body: UpdateCustomer, checks: &mut Checks) {
    if let Some(external_id) = checks.not_null("external_id", body.external_id) {
        customer.external_id = checks.text("external_id", &external_id);
    }
    if let Some(name) = checks.not_null("name", body.name) {
        customer.name = checks.text("name", &name);
    }
    if let Some(email) = body.email {
        customer.email = email.map(|email| checks.email("email", &email));
    }
    if let Some(address) = body.address {
        customer.address = address.map(|address| checks.address("address", address));
    }
    if let Some(tax_ids) = checks.not_null("tax_ids", body.tax_ids) {
        customer.tax_ids = checks.tax_ids("tax_ids", tax_ids);
    }
    if let Some(currency) = checks.not_null("currency", body.currency) {
        if let Some(currency) = checks.currency("currency", &currency) {
            customer.currency = currency;
        }
    }
    if let Some(time_zone) = checks.not_null("time_zone", body.time_zone) {
        customer.time_zone = checks.time_zone("time_zone", &time_zone);
    }
    if let Some(day) = checks.not_null("billing_cycle_day", body.billing_cycle_day) {
        customer.billing_cycle_day = checks.billing_cycle_day("billing_cycle_day", day);
    }
    if let Some(parent_id) = body.parent_id {
        customer.parent_id = parent_id.map(Into::into);
    }
    if let Some(invoicing) = checks.not_null("invoicing", body.invoicing) {
        customer.invoicing = invoicing;
    }
    if let Some(net_days) = body.net_days {
        customer.net_days = net_days.and_then(|days| checks.net_days("net_days", days));
    }
    if let Some(owner) = body.owner {
        customer.owner = owner.map(|owner| checks.text("owner", &owner));
    }
}

/// A customer's invoicing mode names the keys of its invoices: once it has one, a change would
/// bill its past periods again under the other keys, so it is refused.
async fn refuse_invoicing_change_after_invoices(
    state: &AppState,
    workspace_id: &WorkspaceId,
    customer_id: &str,
) -> Result<(), ApiError> {
    let filter = billow_store::invoices::InvoiceFilter {
        customer_id: Some(customer_id.to_owned()),
        limit: 1,
        ..Default::default()
    };
    let invoices = state
        .store
        .invoices(workspace_id, &filter)
        .await
        .map_err(ApiError::internal)?;
    if invoices.is_empty() {
        return Ok(());
    }
    Err(ApiError::Conflict {
        problem: crate::error::ConflictProblem::InvalidState,
        detail: format!(
            "customer {customer_id} has invoices; `invoicing` can only change before its first invoice"
        ),
    })
}

/// The customer `id` if `principal` may read it; 404 otherwise, whether it exists elsewhere or
/// not at all.
pub(crate) async fn readable_customer(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> Result<Customer, ApiError> {
    if !principal.can_read_customer(id) {
        return Err(not_found(id));
    }
    state
        .store
        .customer(principal.workspace_id(), id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| not_found(id))
}

pub(crate) fn not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        resource: "customer",
        id: id.to_owned(),
    }
}

async fn check_parent_exists(
    state: &AppState,
    workspace_id: &WorkspaceId,
    parent_id: &str,
    checks: &mut Checks,
) -> Result<(), ApiError> {
    let parent = state
        .store
        .customer(workspace_id, parent_id)
        .await
        .map_err(ApiError::internal)?;
    if parent.is_none() {
        checks.fail("parent_id", "no customer of this workspace has this id");
    }
    Ok(())
}

/// A parent must exist in the workspace and must not be the customer itself or one of its
/// descendants (which would make a cycle).
async fn check_parent(
    state: &AppState,
    workspace_id: &WorkspaceId,
    customer_id: &str,
    parent_id: &str,
    checks: &mut Checks,
) -> Result<(), ApiError> {
    let mut ancestor_id = Some(parent_id.to_owned());
    for _ in 0..ANCESTORS_MAX {
        let Some(id) = ancestor_id else {
            return Ok(());
        };
        if id == customer_id {
            checks.fail(
                "parent_id",
                "must not be the customer itself or one of its children",
            );
            return Ok(());
        }
        let ancestor = state
            .store
            .customer(workspace_id, &id)
            .await
            .map_err(ApiError::internal)?;
        let Some(ancestor) = ancestor else {
            checks.fail("parent_id", "no customer of this workspace has this id");
            return Ok(());
        };
        ancestor_id = ancestor.parent_id.map(Into::into);
    }
    checks.fail(
        "parent_id",
        format!("a customer has at most {ANCESTORS_MAX} ancestors"),
    );
    Ok(())
}

fn store_error(error: StoreCustomerError, customer: &Customer) -> ApiError {
    match error {
        StoreCustomerError::ExternalIdTaken => ApiError::Conflict {
            problem: ConflictProblem::AlreadyExists,
            detail: format!(
                "A customer with the external_id {:?} already exists in this workspace.",
                customer.external_id
            ),
        },
        StoreCustomerError::UnknownParent => {
            ApiError::invalid("parent_id", "no customer of this workspace has this id")
        }
        error => ApiError::internal(error),
    }
}
