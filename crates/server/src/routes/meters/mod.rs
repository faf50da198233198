//! `/api/v1/meters`: how usage events become quantities (`billow_core::Meter`).

mod wire;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use billow_core::Currency;
use billow_store::catalog::MeterRecord;
use billow_store::MeterId;
use serde_json::{json, Map, Value};
use utoipa_axum::routes;

use crate::auth::WorkspaceAuth;
use crate::error::{ApiError, Problem};
use crate::json::ApiJson;
use crate::openapi::ApiRouter;
use crate::routes::shared::{object, store_error};
use crate::state::AppState;
use crate::validation::{validate_document, validation_document};
use crate::wire::Page;
use wire::MeterBody;

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(create_meter, list_meters))
        .routes(routes!(get_meter))
}

/// Creates a meter. The body is a meter as the scenario format writes it: `key`, `event_type`,
/// `aggregation`, `value_property`, `group_by`, `filters`, `time_unit`.
#[utoipa::path(
    post,
    path = "/api/v1/meters",
    tag = "meters",
    request_body(content = billow_core::Meter, content_type = "application/json", description = "The meter, checked by the billing core"),
    responses(
        (status = 201, description = "The meter", body = MeterBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The workspace has a meter with this key", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn create_meter(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    ApiJson(body): ApiJson<Value>,
) -> Result<(StatusCode, ApiJson<MeterBody>), ApiError> {
    let spec = Value::Object(object(body)?);
    let mut members = Map::new();
    members.insert("meters".into(), json!([spec]));
    let currency = Currency::from_code("USD").map_err(ApiError::internal)?;
    let document = validation_document(currency, &[], members);
    let scenario = validate_document(&document, "meters[0]")?;
    let spec = scenario.meters[0].clone();
    let key = spec.key.clone();
    let record = MeterRecord {
        id: MeterId::new(),
        key: key.clone(),
        spec,
        created_at: state.clock.now(),
    };
    state
        .store
        .insert_meter(&auth.workspace_id, &record)
        .await
        .map_err(store_error("meter", &key))?;
    Ok((StatusCode::CREATED, ApiJson(record.into())))
}

/// Lists the workspace's meters, oldest first, all in one page.
#[utoipa::path(
    get,
    path = "/api/v1/meters",
    tag = "meters",
    responses(
        (status = 200, description = "Every meter of the workspace (`has_more` is false)", body = Page<MeterBody>),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn list_meters(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
) -> Result<ApiJson<Page<MeterBody>>, ApiError> {
    let meters = state
        .store
        .meters(&auth.workspace_id)
        .await
        .map_err(ApiError::internal)?;
    Ok(ApiJson(Page::whole(
        meters.into_iter().map(MeterBody::from).collect(),
    )))
}

/// One meter, by its id or its key.
#[utoipa::path(
    get,
    path = "/api/v1/meters/{id}",
    tag = "meters",
    params(("id" = String, Path, description = "The meter's id (`mtr_…`) or key")),
    responses(
        (status = 200, description = "The meter", body = MeterBody),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No meter of the workspace has this id or key", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn get_meter(
    State(state): State<AppState>,
    auth: WorkspaceAuth,
    Path(id): Path<String>,
) -> Result<ApiJson<MeterBody>, ApiError> {
    let by_id = state
        .store
        .meter(&auth.workspace_id, &id)
        .await
        .map_err(ApiError::internal)?;
    // A meter is addressed by its id or by its key, as a plan is.
    let meter = match by_id {
        Some(meter) => Some(meter),
        None => state
            .store
            .meters(&auth.workspace_id)
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .find(|meter| meter.key == id),
    };
    let meter = meter.ok_or(ApiError::NotFound {
        resource: "meter",
        id,
    })?;
    Ok(ApiJson(meter.into()))
}
