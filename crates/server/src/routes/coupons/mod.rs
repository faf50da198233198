//! `/api/v1/coupons`: discount terms with a code, shared by the workspace, that customers redeem
//! with `POST /api/v1/discounts` `{"customer_id": …, "coupon": "CODE"}` ([`redeem`]).
//!
//! A coupon's terms are the core's `DiscountSpec` without key and start, checked by the core
//! when the coupon is created; a redemption makes the customer's discount from them, so billing
//! runs bill it like any other discount. Coupons follow Stripe's (`duration`,
//! `duration_in_invoices`, `max_redemptions`, `redeem_by`); an archived coupon takes no new
//! redemptions, and the discounts already made keep applying.

mod wire;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use billow_billing::world::{with_key, CustomerWorld};
use billow_core::scenario::DiscountSpec;
use billow_store::coupons::{CouponRecord, RedeemCouponError};
use billow_store::subscriptions::CustomerSpecRecord;
use billow_store::{new_id, BillingStoreError, WorkspaceId};
use serde_json::{json, Map, Value};
use utoipa_axum::routes;

use crate::auth::WorkspaceAuth;
use crate::error::{ApiError, Problem};
use crate::json::ApiJson;
use crate::limits::PageQuery;
use crate::openapi::ApiRouter;
use crate::routes::shared::take_string;
use crate::state::AppState;
use crate::validation::{validate_document, validation_document};
use crate::wire::Page;
use wire::{CouponBody, CreateCoupon};

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(create_coupon, list_coupons))
        .routes(routes!(get_coupon))
        .routes(routes!(archive_coupon))
}

/// Creates a coupon. Its terms are checked by the billing core like a customer's discount.
#[utoipa::path(
    post,
    path = "/api/v1/coupons",
    tag = "credits",
    request_body(content = CreateCoupon, content_type = "application/json", description = "The coupon"),
    responses(
        (status = 201, description = "The coupon", body = CouponBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The workspace has a coupon with this code (field `code`)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn create_coupon(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    ApiJson(body): ApiJson<CreateCoupon>,
) -> Result<(StatusCode, ApiJson<CouponBody>), ApiError> {
    let checked = body.check(state.clock.now())?;
    let record = checked.record;
    // The terms as a discount of a customer billed in the coupon's currency.
    let mut discount = record.terms.clone();
    if let Some(object) = discount.as_object_mut() {
        object.insert("key".into(), json!("coupon"));
        object.insert("start".into(), json!(record.created_at.to_string()));
    }
    let mut members = Map::new();
    members.insert("discounts".into(), json!([discount]));
    validate_document(
        &validation_document(checked.currency, &[], members),
        "discounts[0]",
    )?;
    state
        .store
        .insert_coupon(&auth.workspace_id, &record)
        .await
        .map_err(|error| match error {
            BillingStoreError::Duplicate => ApiError::Taken {
                field: "code",
                detail: format!(
                    "A coupon with the code {:?} already exists in this workspace.",
                    record.code
                ),
            },
            other => ApiError::internal(other),
        })?;
    Ok((StatusCode::CREATED, ApiJson(record.into())))
}

/// Lists the workspace's coupons, oldest first, archived ones included, a page at a time like
/// the other native lists (`crate::limits::PageQuery`): `limit` 1 to 100 (10 when absent),
/// `starting_after` the previous page's `next_cursor` (a coupon's code).
#[utoipa::path(
    get,
    path = "/api/v1/coupons",
    tag = "credits",
    params(
        ("limit" = Option<u32>, Query, description = "1 to 100; 10 when absent", minimum = 1, maximum = 100),
        ("starting_after" = Option<String>, Query, description = "`next_cursor` of the previous page: the code of its last coupon"),
    ),
    responses(
        (status = 200, description = "One page of coupons", body = Page<CouponBody>),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid `limit`, or a `starting_after` that is no coupon of the workspace", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn list_coupons(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    page: PageQuery,
) -> Result<ApiJson<Page<CouponBody>>, ApiError> {
    let page = state
        .store
        .coupons(
            &auth.workspace_id,
            page.limit.get(),
            page.starting_after.as_deref(),
        )
        .await
        .map_err(|error| match error {
            BillingStoreError::NotFound => ApiError::invalid(
                "starting_after",
                "no coupon of this workspace has this code",
            ),
            other => ApiError::internal(other),
        })?;
    let next_cursor = page
        .has_more
        .then(|| page.items.last().map(|coupon| coupon.code.clone()))
        .flatten();
    Ok(ApiJson(Page {
        data: page.items.into_iter().map(CouponBody::from).collect(),
        has_more: page.has_more,
        next_cursor,
    }))
}

async fn find_coupon(
    state: &AppState,
    workspace: &WorkspaceId,
    code: &str,
) -> Result<CouponRecord, ApiError> {
    state
        .store
        .coupon(workspace, code)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::NotFound {
            resource: "coupon",
            id: code.to_owned(),
        })
}

/// One coupon, with how many times it was redeemed.
#[utoipa::path(
    get,
    path = "/api/v1/coupons/{code}",
    tag = "credits",
    params(("code" = String, Path, description = "The coupon's code")),
    responses(
        (status = 200, description = "The coupon", body = CouponBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No coupon of the workspace has this code", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn get_coupon(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    Path(code): Path<String>,
) -> Result<ApiJson<CouponBody>, ApiError> {
    let coupon = find_coupon(&state, &auth.workspace_id, &code).await?;
    Ok(ApiJson(coupon.into()))
}

/// Archives a coupon: no new redemptions; the discounts already made keep applying. Archiving
/// an archived coupon changes nothing.
#[utoipa::path(
    post,
    path = "/api/v1/coupons/{code}/archive",
    tag = "credits",
    params(("code" = String, Path, description = "The coupon's code")),
    responses(
        (status = 200, description = "The archived coupon", body = CouponBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No coupon of the workspace has this code", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn archive_coupon(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    Path(code): Path<String>,
) -> Result<ApiJson<CouponBody>, ApiError> {
    let coupon = state
        .store
        .archive_coupon(&auth.workspace_id, &code, state.clock.now())
        .await
        .map_err(|error| match error {
            BillingStoreError::NotFound => ApiError::NotFound {
                resource: "coupon",
                id: code.clone(),
            },
            other => ApiError::internal(other),
        })?;
    Ok(ApiJson(coupon.into()))
}

/// Redeems the coupon `code` for the customer of `body` (`customer_id`, and optionally `start`,
/// the redemption's instant when absent): checks the coupon may be redeemed by this customer,
/// checks the discount it makes with the core, and stores it while counting the redemption.
pub(crate) async fn redeem(
    state: &AppState,
    auth: &WorkspaceAuth,
    mut body: Map<String, Value>,
    code: Value,
) -> Result<CustomerSpecRecord<DiscountSpec>, ApiError> {
    let Value::String(code) = code else {
        return Err(ApiError::invalid("coupon", "must be a coupon's code"));
    };
    let customer_id = take_string(&mut body, "customer_id")?;
    for field in ["percent_off", "amount_off", "duration", "key"] {
        if body.contains_key(field) {
            return Err(ApiError::invalid(
                field,
                "is not taken with `coupon`: the coupon's terms apply",
            ));
        }
    }
    let now = state.clock.now();
    let start = body
        .remove("start")
        .unwrap_or_else(|| json!(now.to_string()));
    if let Some(field) = body.keys().next() {
        return Err(ApiError::invalid(field.clone(), "unknown field"));
    }
    let workspace = &auth.workspace_id;
    let world = CustomerWorld::load(&state.billing, workspace, &customer_id)
        .await?
        .ok_or_else(|| ApiError::invalid("customer_id", "no customer has this id"))?;
    let coupon = state
        .store
        .coupon(workspace, &code)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| refused(RedeemCouponError::Unknown))?;
    if let Some(refusal) = coupon.refusal(now) {
        return Err(refused(refusal));
    }
    let billed_in = world.customer.currency;
    if let Some(currency) = coupon.currency.filter(|c| *c != billed_in) {
        return Err(ApiError::invalid(
            "coupon",
            format!("the coupon takes an amount in {currency} off, and the customer is billed in {billed_in}"),
        ));
    }
    let id = new_id("disc");
    let mut spec = coupon.terms.clone();
    if let Some(object) = spec.as_object_mut() {
        object.insert("start".into(), start);
    }
    let spec = with_key(spec, &id);
    let mut members = Map::new();
    members.insert("discounts".into(), json!([spec]));
    let document = validation_document(world.customer.currency, &world.meters, members);
    let spec = validate_document(&document, "discounts[0]")?
        .discounts
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::invalid("coupon", "the coupon's terms make no discount"))?;
    let record = CustomerSpecRecord {
        id,
        customer_id: customer_id.into(),
        spec,
        created_at: now,
    };
    state
        .store
        .redeem_coupon(workspace, &code, &record, now)
        .await
        .map_err(refused)?;
    Ok(record)
}

/// Why a coupon was not redeemed, as a 422 on `coupon`.
fn refused(error: RedeemCouponError) -> ApiError {
    match error {
        RedeemCouponError::Store(error) => ApiError::internal(error),
        RedeemCouponError::Unknown => {
            ApiError::invalid("coupon", "no coupon of this workspace has this code")
        }
        refusal => ApiError::invalid("coupon", refusal.to_string()),
    }
}
