//! Enclaive EMCP's billing API (seed 000; `docs/profiles/emcp.md`): a team is a customer.
//!
//! - `GET /api/teams/{id}/last-invoice`: the team's latest finalized invoice, 404 before its
//!   first;
//! - `GET /api/teams/{id}/billing-history?page=`: its finalized invoices, newest first, ten per
//!   page in `mongoose-paginate-v2`'s envelope.
//!
//! `{id}` is billow's customer id or its external id. Errors are `{"message": …}` with the
//! status as the native API would answer it.

mod wire;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::routes;

use super::shared::{named_customer, ErrorShape, ProfileError, ProfileRouter};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::state::AppState;
use wire::{page_number, HistoryInvoice, HistoryPage, LastInvoice, PAGE_SIZE};

pub(crate) fn router() -> ProfileRouter {
    ProfileRouter::new()
        .routes(routes!(last_invoice))
        .routes(routes!(billing_history))
}

/// EMCP's errors: an Express handler's `{"message": …}`.
pub(crate) struct Emcp;

/// An EMCP error's body.
#[derive(Serialize, ToSchema)]
#[schema(as = EmcpError)]
pub(crate) struct EmcpError {
    pub message: String,
}

impl ErrorShape for Emcp {
    fn body(_status: StatusCode, message: &str) -> Value {
        json!({ "message": message })
    }
}

type Refused = ProfileError<Emcp>;

/// The team's newest finalized invoice.
#[utoipa::path(get, path = "/api/teams/{id}/last-invoice", tag = "profile: EMCP", operation_id = "emcp_last_invoice",
    params(("id" = String, Path, description = "The team: the customer's id or external id")),
    responses(
        (status = 200, description = "The invoice", body = LastInvoice),
        (status = 401, description = "No valid credential", body = EmcpError),
        (status = 404, description = "No such team, or no invoice yet", body = EmcpError),
    ))]
async fn last_invoice(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    Path(id): Path<String>,
) -> Result<Json<LastInvoice>, Refused> {
    let principal = principal?;
    let customer = named_customer(&state, &principal, "team", &id).await?;
    let (invoices, _) = state
        .store
        .finalized_invoices_at(principal.workspace_id(), customer.id.as_str(), 0, 1)
        .await
        .map_err(ApiError::internal)?;
    let invoice = invoices.first().ok_or_else(|| {
        Refused::new(
            StatusCode::NOT_FOUND,
            format!("The team {id} has no invoice yet."),
        )
    })?;
    Ok(Json(LastInvoice::new(&customer, invoice)))
}

/// The team's finalized invoices, newest first, ten per page.
#[utoipa::path(get, path = "/api/teams/{id}/billing-history", tag = "profile: EMCP", operation_id = "emcp_billing_history",
    params(
        ("id" = String, Path, description = "The team: the customer's id or external id"),
        ("page" = Option<String>, Query, description = "The page, from 1, read as JavaScript's `parseInt`"),
    ),
    responses(
        (status = 200, description = "A page", body = HistoryPage),
        (status = 400, description = "A page that is not a number", body = EmcpError),
        (status = 401, description = "No valid credential", body = EmcpError),
        (status = 404, description = "No such team", body = EmcpError),
    ))]
async fn billing_history(
    State(state): State<AppState>,
    principal: Result<Principal, ApiError>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<HistoryPage>, Refused> {
    let principal = principal?;
    let pages: Vec<String> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "page")
        .map(|(_, value)| value.into_owned())
        .collect();
    let page = page_number(&pages).ok_or_else(|| {
        Refused::new(
            StatusCode::BAD_REQUEST,
            "page must be a number (a page of 10 invoices, from 1)",
        )
    })?;
    let customer = named_customer(&state, &principal, "team", &id).await?;
    let offset = i64::try_from(HistoryPage::offset(page)).unwrap_or(i64::MAX);
    let limit = i64::try_from(PAGE_SIZE).unwrap_or(i64::MAX);
    let (invoices, total) = state
        .store
        .finalized_invoices_at(
            principal.workspace_id(),
            customer.id.as_str(),
            offset,
            limit,
        )
        .await
        .map_err(ApiError::internal)?;
    let docs = invoices.iter().map(HistoryInvoice::from).collect();
    Ok(Json(HistoryPage::new(
        docs,
        u64::try_from(total).unwrap_or(0),
        page,
    )))
}
