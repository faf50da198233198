//! One module per resource; each exposes its handlers to [`crate::router`].

pub(crate) mod coupons;
pub(crate) mod credits;
pub(crate) mod customers;
pub(crate) mod events;
pub(crate) mod fallback;
pub(crate) mod health;
pub(crate) mod invoices;
pub(crate) mod meters;
pub(crate) mod plans;
pub(crate) mod resources;
pub(crate) mod runs;
pub(crate) mod settings;
pub(crate) mod shared;
pub(crate) mod subscriptions;
pub(crate) mod tokens;
pub(crate) mod usage;

use crate::openapi::ApiRouter;

/// Every `/api/v1` route with its OpenAPI path, behind Bearer auth and `Idempotency-Key` (see
/// `crate::startup::router`). A resource adds one `.merge(…::router())` line here; its router
/// registers each handler with `.routes(utoipa_axum::routes!(handler))` (docs/service-plan.md,
/// "OpenAPI").
pub(crate) fn api_v1() -> ApiRouter {
    ApiRouter::with_openapi(<crate::openapi::ApiDoc as utoipa::OpenApi>::openapi())
        .merge(crate::openapi::router())
        .merge(customers::router())
        .merge(tokens::router())
        .merge(events::router())
        .merge(meters::router())
        .merge(plans::router())
        .merge(subscriptions::router())
        .merge(resources::router())
        .merge(credits::router())
        .merge(coupons::router())
        .merge(invoices::router())
        .merge(usage::router())
        .merge(runs::router())
        .merge(settings::router())
}
