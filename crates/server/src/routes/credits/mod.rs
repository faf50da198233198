//! `/api/v1/credit-grants`, `/api/v1/discounts` (inline or from a coupon, see
//! `crate::routes::coupons`) and `/api/v1/tax-rates`, and the tax
//! rate a customer is charged (`PUT /api/v1/customers/{id}/tax-rate`).
//!
//! Grants and discounts are the core's shapes (`billow_core::credit::CreditGrant`,
//! `billow_core::scenario::DiscountSpec`) with a `customer_id`; their scenario key is their id.

mod wire;

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
use crate::error::{ApiError, Problem};
use crate::json::ApiJson;
use crate::openapi::ApiRouter;
use crate::query::ApiQuery;
use crate::routes::shared::{guard_customer, listed_customer, object, store_error, take_string};
use crate::state::AppState;
use crate::validation::{validate_document, validation_document};
use crate::wire::Page;
use wire::{CustomerTaxRate, CustomerTaxRateBody, DiscountShown, GrantBody, TaxRateBody};

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(create_credit_grant, list_credit_grants))
        .routes(routes!(create_discount, list_discounts))
        .routes(routes!(get_discount))
        .routes(routes!(create_tax_rate, list_tax_rates))
        .routes(routes!(set_customer_tax_rate))
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

/// Grants credits to a customer: `customer_id`, `type` (`free`, `sla`, `prepaid`,
/// `promotional`), `meter` (absent: money), `amount`, `start`, `expiry`, `priority`.
#[utoipa::path(
    post,
    path = "/api/v1/credit-grants",
    tag = "credits",
    request_body(content = crate::openapi::bodies::CreditGrantBody, content_type = "application/json", description = "The grant"),
    responses(
        (status = 201, description = "The grant", body = GrantBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields: an unknown customer or meter, an amount not positive or finer than the currency's minor unit, an expiry before the start, …", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn create_credit_grant(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, ApiJson<GrantBody>), ApiError> {
    let record = create_customer_spec::<CreditGrant>(&state, &auth, body).await?;
    Ok((StatusCode::CREATED, ApiJson(record.into())))
}

/// Lists credit grants (of one customer when `customer_id` is given; a customer token sees only
/// its own), all in one page.
#[utoipa::path(
    get,
    path = "/api/v1/credit-grants",
    tag = "credits",
    params(("customer_id" = Option<String>, Query, description = "Only this customer's; a customer token's own customer when absent")),
    responses(
        (status = 200, description = "Every grant asked for (`has_more` is false)", body = Page<GrantBody>),
        (status = 404, description = "Another customer than a customer token's own", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter given twice", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn list_credit_grants(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<CustomerQuery>,
) -> Result<ApiJson<Page<GrantBody>>, ApiError> {
    let customer = listed_customer(&principal, query.customer_id)?;
    let records = state
        .store
        .customer_specs::<CreditGrant>(principal.workspace_id(), customer.as_deref())
        .await
        .map_err(ApiError::internal)?;
    Ok(ApiJson(Page::whole(
        records.into_iter().map(GrantBody::from).collect(),
    )))
}

/// Gives a customer a discount: `customer_id`, `percent_off` or `amount_off`, `duration`
/// (`once`, `{"repeating": {"invoices": 3}}`, `forever`), `start`; or redeems a workspace coupon
/// for it: `customer_id`, `coupon` (its code), optionally `start`. A coupon that is unknown,
/// archived, past its `redeem_by`, redeemed its `max_redemptions` times, or takes an amount off
/// in another currency than the customer's is a 422 on `coupon`.
#[utoipa::path(
    post,
    path = "/api/v1/discounts",
    tag = "credits",
    request_body(content = crate::openapi::bodies::DiscountBody, content_type = "application/json", description = "Inline terms, or a coupon code to redeem"),
    responses(
        (status = 201, description = "The discount (with `coupon` when redeemed from one)", body = DiscountShown),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields, or a coupon that may not be redeemed (field `coupon`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn create_discount(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, ApiJson<DiscountShown>), ApiError> {
    let mut body = object(body)?;
    if let Some(code) = body.remove("coupon") {
        let record = crate::routes::coupons::redeem(&state, &auth, body, code.clone()).await?;
        let shown = DiscountShown::new(record, code.as_str().map(str::to_owned));
        return Ok((StatusCode::CREATED, ApiJson(shown)));
    }
    let record = create_customer_spec::<DiscountSpec>(&state, &auth, Value::Object(body)).await?;
    Ok((
        StatusCode::CREATED,
        ApiJson(DiscountShown::new(record, None)),
    ))
}

/// Lists discounts (of one customer when `customer_id` is given; a customer token sees only its
/// own), each with the `coupon` it was redeemed from (`null` for inline terms), all in one page.
#[utoipa::path(
    get,
    path = "/api/v1/discounts",
    tag = "credits",
    params(("customer_id" = Option<String>, Query, description = "Only this customer's; a customer token's own customer when absent")),
    responses(
        (status = 200, description = "Every discount asked for, each with its `coupon` code or null (`has_more` is false)", body = Page<DiscountShown>),
        (status = 404, description = "Another customer than a customer token's own", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "A query parameter given twice", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn list_discounts(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<CustomerQuery>,
) -> Result<ApiJson<Page<DiscountShown>>, ApiError> {
    let customer = listed_customer(&principal, query.customer_id)?;
    let workspace = principal.workspace_id();
    let records = state
        .store
        .customer_specs::<DiscountSpec>(workspace, customer.as_deref())
        .await
        .map_err(ApiError::internal)?;
    // Read after the discounts: a redemption is committed with its discount, so every redeemed
    // discount listed has its row here.
    let mut coupons: HashMap<String, String> = state
        .store
        .coupon_redemptions(workspace, customer.as_deref())
        .await
        .map_err(ApiError::internal)?
        .into_iter()
        .collect();
    let data = records
        .into_iter()
        .map(|record| {
            let coupon = coupons.remove(&record.id);
            DiscountShown::new(record, coupon)
        })
        .collect();
    Ok(ApiJson(Page::whole(data)))
}

/// One discount, with the `coupon` it was redeemed from (`null` for inline terms). A customer
/// token reads only its own customer's.
#[utoipa::path(
    get,
    path = "/api/v1/discounts/{id}",
    tag = "credits",
    params(("id" = String, Path, description = "The discount's id (`disc_…`)")),
    responses(
        (status = 200, description = "The discount, with its `coupon` code or null", body = DiscountShown),
        (status = 404, description = "No such discount in this workspace (or for this token)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn get_discount(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<ApiJson<DiscountShown>, ApiError> {
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
    Ok(ApiJson(DiscountShown::new(record, coupon)))
}

/// Creates a tax rate: `name` and `rate_percent` (exclusive tax).
#[utoipa::path(
    post,
    path = "/api/v1/tax-rates",
    tag = "credits",
    request_body(content = billow_core::invoice::TaxRate, content_type = "application/json", description = "An exclusive tax rate"),
    responses(
        (status = 201, description = "The tax rate", body = TaxRateBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn create_tax_rate(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, ApiJson<TaxRateBody>), ApiError> {
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
    Ok((StatusCode::CREATED, ApiJson(record.into())))
}

/// Lists the workspace's tax rates, all in one page.
#[utoipa::path(
    get,
    path = "/api/v1/tax-rates",
    tag = "credits",
    responses(
        (status = 200, description = "Every tax rate of the workspace (`has_more` is false)", body = Page<TaxRateBody>),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn list_tax_rates(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
) -> Result<ApiJson<Page<TaxRateBody>>, ApiError> {
    let rates = state
        .store
        .tax_rates(&auth.workspace_id)
        .await
        .map_err(ApiError::internal)?;
    Ok(ApiJson(Page::whole(
        rates.into_iter().map(TaxRateBody::from).collect(),
    )))
}

/// Charges a customer a tax rate from its next invoice on: `{"tax_rate_id": "tax_…"}`.
#[utoipa::path(
    put,
    path = "/api/v1/customers/{id}/tax-rate",
    tag = "credits",
    params(("id" = String, Path, description = "The customer's id (`cus_…`)")),
    request_body(content = CustomerTaxRate, content_type = "application/json", description = "The tax rate to charge"),
    responses(
        (status = 200, description = "The tax rate charged", body = CustomerTaxRateBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No tax rate of the workspace has this id (field `tax_rate_id`)", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn set_customer_tax_rate(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<CustomerTaxRate>,
) -> Result<ApiJson<CustomerTaxRateBody>, ApiError> {
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
    Ok(ApiJson(CustomerTaxRateBody {
        customer_id: id,
        tax_rate_id: body.tax_rate_id,
    }))
}
