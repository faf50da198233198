//! `/api/v1/credit-grants`, `/api/v1/discounts` (inline or from a coupon, see
//! `crate::routes::coupons`) and `/api/v1/tax-rates`, and the tax
//! rate a customer is charged (`PUT /api/v1/customers/{id}/tax-rate`).
//!
//! Grants and discounts are the core's shapes (`billow_core::credit::CreditGrant`,
//! `billow_core::scenario::DiscountSpec`) with a `customer_id`; their scenario key is their id.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use billow_billing::world::{with_key, CustomerWorld};
use billow_core::credit::CreditGrant;
use billow_core::scenario::{DiscountSpec, World};
use billow_core::Currency;
use billow_store::catalog::TaxRateRecord;
use billow_store::subscriptions::{CustomerSpecRecord, HeldSpec};
use billow_store::{new_id, TaxRateId};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use utoipa_axum::routes;

use crate::auth::{Principal, WorkspaceAuth};
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::openapi::ApiRouter;
use crate::query::ApiQuery;
use crate::routes::shared::{
    guard_customer, listed_customer, object, show, store_error, take_string,
};
use crate::state::AppState;
use crate::validation::{validate_document, validation_document};

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(create_credit_grant, list_credit_grants))
        .routes(routes!(create_discount, list_discounts))
        .routes(routes!(get_discount))
        .routes(routes!(create_tax_rate, list_tax_rates))
        .routes(routes!(set_customer_tax_rate))
}

fn record_json<T: serde::Serialize>(record: &CustomerSpecRecord<T>) -> Value {
    let mut spec = serde_json::to_value(&record.spec).unwrap_or(Value::Null);
    if let Some(object) = spec.as_object_mut() {
        object.remove("key");
    }
    show(
        json!({"id": record.id, "customer_id": record.customer_id, "created_at": record.created_at.to_string()}),
        &spec,
    )
}

/// A discount as the API shows it: `coupon` is the code of the coupon it was redeemed from, `null`
/// when it was made with inline terms.
fn discount_json(record: &CustomerSpecRecord<DiscountSpec>, coupon: Option<&str>) -> Value {
    show(json!({"coupon": coupon}), &record_json(record))
}

/// A grant or discount as a member of a scenario document: the list it goes in.
pub(crate) trait ScenarioMember: HeldSpec + Sized {
    /// The scenario's list (`credit_grants`, `discounts`).
    const MEMBER: &'static str;
    /// The prefix of its ids.
    const PREFIX: &'static str;
    /// The one member of a validated world.
    fn only(world: World) -> Option<Self>;
}

impl ScenarioMember for CreditGrant {
    const MEMBER: &'static str = "credit_grants";
    const PREFIX: &'static str = "grant";
    fn only(world: World) -> Option<Self> {
        world.credit_grants.into_iter().next()
    }
}

impl ScenarioMember for DiscountSpec {
    const MEMBER: &'static str = "discounts";
    const PREFIX: &'static str = "disc";
    fn only(world: World) -> Option<Self> {
        world.discounts.into_iter().next()
    }
}

/// Validates and stores a grant or discount of a customer.
async fn create_customer_spec<T: ScenarioMember>(
    state: &AppState,
    auth: &WorkspaceAuth,
    body: Value,
) -> Result<CustomerSpecRecord<T>, ApiError> {
    let (member, prefix) = (T::MEMBER, T::PREFIX);
    let mut body = object(body)?;
    let customer_id = take_string(&mut body, "customer_id")?;
    if body.contains_key("key") {
        return Err(ApiError::invalid("key", "unknown field: the id is the key"));
    }
    let world = CustomerWorld::load(&state.billing, &auth.workspace_id, &customer_id)
        .await?
        .ok_or_else(|| ApiError::invalid("customer_id", "no customer has this id"))?;
    let id = new_id(prefix);
    let spec = with_key(Value::Object(body), &id);
    let mut members = Map::new();
    members.insert(member.into(), json!([spec]));
    let document = validation_document(world.customer.currency, &world.meters, members);
    let spec = T::only(validate_document(&document, &format!("{member}[0]"))?)
        .ok_or_else(|| ApiError::invalid(".", "the body must be one spec"))?;
    let record = CustomerSpecRecord {
        id: id.clone(),
        customer_id: customer_id.into(),
        spec,
        created_at: state.clock.now(),
    };
    state
        .store
        .insert_customer_spec(&auth.workspace_id, &record)
        .await
        .map_err(store_error(member, &id))?;
    Ok(record)
}

#[derive(Debug, Deserialize)]
pub(crate) struct CustomerQuery {
    customer_id: Option<String>,
}

async fn list_customer_specs<T: HeldSpec>(
    state: &AppState,
    principal: &Principal,
    query: CustomerQuery,
) -> Result<ApiJson<Value>, ApiError> {
    let customer = listed_customer(principal, query.customer_id)?;
    let records = state
        .store
        .customer_specs::<T>(principal.workspace_id(), customer.as_deref())
        .await
        .map_err(ApiError::internal)?;
    Ok(ApiJson(
        json!({"data": records.iter().map(record_json).collect::<Vec<_>>()}),
    ))
}

/// Grants credits to a customer: `customer_id`, `type` (`free`, `sla`, `prepaid`,
/// `promotional`), `meter` (absent: money), `amount`, `start`, `expiry`, `priority`.
#[utoipa::path(post, path = "/api/v1/credit-grants", request_body(content = crate::openapi::bodies::CreditGrantBody, content_type = "application/json", description = "The grant"),
    tag = "credits",
    responses((status = 201, description = "The grant"), (status = 422, description = "Invalid field")))]
pub(crate) async fn create_credit_grant(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    let record = create_customer_spec::<CreditGrant>(&state, &auth, body).await?;
    Ok((StatusCode::CREATED, ApiJson(record_json(&record))))
}

/// Lists credit grants (of one customer when `customer_id` is given).
#[utoipa::path(get, path = "/api/v1/credit-grants", tag = "credits",
    params(("customer_id" = Option<String>, Query, description = "Only this customer's")),
    responses((status = 200, description = "The grants")))]
pub(crate) async fn list_credit_grants(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<CustomerQuery>,
) -> Result<ApiJson<Value>, ApiError> {
    list_customer_specs::<CreditGrant>(&state, &principal, query).await
}

/// Gives a customer a discount: `customer_id`, `percent_off` or `amount_off`, `duration`
/// (`once`, `{"repeating": {"invoices": 3}}`, `forever`), `start`; or redeems a workspace coupon
/// for it: `customer_id`, `coupon` (its code), optionally `start`. A coupon that is unknown,
/// archived, past its `redeem_by`, redeemed its `max_redemptions` times, or takes an amount off
/// in another currency than the customer's is a 422 on `coupon`.
#[utoipa::path(post, path = "/api/v1/discounts", request_body(content = crate::openapi::bodies::DiscountBody, content_type = "application/json", description = "Inline terms, or a coupon code to redeem"),
    tag = "credits",
    responses((status = 201, description = "The discount (with `coupon` when redeemed from one)"), (status = 422, description = "Invalid field")))]
pub(crate) async fn create_discount(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    let mut body = object(body)?;
    if let Some(code) = body.remove("coupon") {
        let record = crate::routes::coupons::redeem(&state, &auth, body, code.clone()).await?;
        let shown = discount_json(&record, code.as_str());
        return Ok((StatusCode::CREATED, ApiJson(shown)));
    }
    let record = create_customer_spec::<DiscountSpec>(&state, &auth, Value::Object(body)).await?;
    Ok((StatusCode::CREATED, ApiJson(discount_json(&record, None))))
}

/// Lists discounts (of one customer when `customer_id` is given), each with the `coupon` it was
/// redeemed from (`null` for inline terms).
#[utoipa::path(get, path = "/api/v1/discounts", tag = "credits",
    params(("customer_id" = Option<String>, Query, description = "Only this customer's")),
    responses((status = 200, description = "The discounts, each with its `coupon` code or null")))]
pub(crate) async fn list_discounts(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<CustomerQuery>,
) -> Result<ApiJson<Value>, ApiError> {
    let customer = listed_customer(&principal, query.customer_id)?;
    let workspace = principal.workspace_id();
    let records = state
        .store
        .customer_specs::<DiscountSpec>(workspace, customer.as_deref())
        .await
        .map_err(ApiError::internal)?;
    // Read after the discounts: a redemption is committed with its discount, so every redeemed
    // discount listed has its row here.
    let coupons: HashMap<String, String> = state
        .store
        .coupon_redemptions(workspace, customer.as_deref())
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .collect();
    let data: Vec<Value> = records
        .iter()
        .map(|record| discount_json(record, coupons.get(&record.id).map(String::as_str)))
        .collect();
    Ok(ApiJson(json!({ "data": data })))
}

/// One discount, with the `coupon` it was redeemed from (`null` for inline terms). A customer
/// token reads only its own customer's.
#[utoipa::path(get, path = "/api/v1/discounts/{id}", tag = "credits",
    params(("id" = String, Path, description = "The discount's id (`disc_…`)")),
    responses((status = 200, description = "The discount, with its `coupon` code or null"),
        (status = 404, description = "No such discount", body = crate::error::Problem, content_type = "application/problem+json")))]
pub(crate) async fn get_discount(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<Value>, ApiError> {
    let workspace = principal.workspace_id();
    let not_found = || ApiError::NotFound {
        resource: "discount",
        id: id.clone(),
    };
    let record = state
        .store
        .customer_spec::<DiscountSpec>(workspace, &id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(not_found)?;
    guard_customer(&principal, &record.customer_id).map_err(|_| not_found())?;
    let coupon = state
        .store
        .coupon_redemptions(workspace, Some(&record.customer_id))
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .find_map(|(discount_id, code)| (discount_id == id).then_some(code));
    Ok(ApiJson(discount_json(&record, coupon.as_deref())))
}

fn tax_rate_json(record: &TaxRateRecord) -> Value {
    show(
        json!({"id": record.id, "created_at": record.created_at.to_string()}),
        &record.spec,
    )
}

/// Creates a tax rate: `name` and `rate_percent` (exclusive tax).
#[utoipa::path(post, path = "/api/v1/tax-rates", request_body(content = billow_core::invoice::TaxRate, content_type = "application/json", description = "An exclusive tax rate"),
    tag = "credits",
    responses((status = 201, description = "The tax rate"), (status = 422, description = "Invalid field")))]
pub(crate) async fn create_tax_rate(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, ApiJson<Value>), ApiError> {
    let spec = Value::Object(object(body)?);
    let mut members = Map::new();
    members.insert("customer".into(), json!({"id": "validation", "tax": spec}));
    let currency = Currency::from_code("USD").map_err(ApiError::internal)?;
    let scenario = validate_document(&validation_document(currency, &[], members), "customer.tax")?;
    let spec = scenario
        .customer
        .tax
        .ok_or_else(|| ApiError::invalid(".", "the body must be a tax rate"))?;
    let record = TaxRateRecord {
        id: TaxRateId::new(),
        spec,
        created_at: state.clock.now(),
    };
    state
        .store
        .insert_tax_rate(&auth.workspace_id, &record)
        .await
        .map_err(store_error("tax rate", &record.id))?;
    Ok((StatusCode::CREATED, ApiJson(tax_rate_json(&record))))
}

/// Lists the workspace's tax rates.
#[utoipa::path(get, path = "/api/v1/tax-rates", tag = "credits",
    responses((status = 200, description = "The tax rates")))]
pub(crate) async fn list_tax_rates(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
) -> Result<ApiJson<Value>, ApiError> {
    let rates = state
        .store
        .tax_rates(&auth.workspace_id)
        .await
        .map_err(ApiError::internal)?;
    Ok(ApiJson(
        json!({"data": rates.iter().map(tax_rate_json).collect::<Vec<_>>()}),
    ))
}

/// `PUT /api/v1/customers/{id}/tax-rate`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomerTaxRate {
    /// A tax rate of the workspace (`tax_…`).
    tax_rate_id: String,
}

/// Charges a customer a tax rate from its next invoice on: `{"tax_rate_id": "tax_…"}`.
#[utoipa::path(put, path = "/api/v1/customers/{id}/tax-rate", request_body(content = CustomerTaxRate, content_type = "application/json", description = "The tax rate to charge"),
    tag = "credits",
    params(("id" = String, Path, description = "The customer's id")),
    responses((status = 200, description = "The tax rate charged"), (status = 422, description = "Invalid field")))]
pub(crate) async fn set_customer_tax_rate(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CustomerTaxRate>,
) -> Result<ApiJson<Value>, ApiError> {
    CustomerWorld::load(&state.billing, &auth.workspace_id, &id)
        .await?
        .ok_or_else(|| ApiError::NotFound {
            resource: "customer",
            id: id.clone(),
        })?;
    state
        .store
        .set_customer_tax_rate(&auth.workspace_id, &id, &body.tax_rate_id)
        .await
        .map_err(|error| match error {
            billow_store::BillingStoreError::NotFound => {
                ApiError::invalid("tax_rate_id", "no tax rate has this id")
            }
            other => ApiError::internal(other),
        })?;
    Ok(ApiJson(
        json!({"customer_id": id, "tax_rate_id": body.tax_rate_id}),
    ))
}
