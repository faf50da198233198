//! `POST /api/v1/customers/{id}/tokens`: customer-scoped tokens for console users.
//!
//! A workspace key makes a `bct_…` token for one customer; the secret is answered once and only
//! its hash is kept. The token reads that customer's data and nothing else (see `crate::auth`).
//! A workspace key may also list a customer's unexpired tokens (without secrets) and revoke one.

mod wire;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::SignedDuration;
use utoipa_axum::routes;

use crate::auth::{Principal, WorkspaceAuth};
use crate::error::{ApiError, Problem};
use crate::json::{parse_json, ApiJson};
use crate::openapi::ApiRouter;
use crate::routes::customers::readable_customer;
use crate::state::AppState;
use crate::wire::Page;
use wire::{CreateCustomerToken, CustomerTokenBody, CustomerTokenSummary};

/// A token lives a day unless asked otherwise: long enough for a console session.
const TOKEN_LIFETIME_DEFAULT_SECONDS: i64 = 24 * 60 * 60;
const TOKEN_LIFETIME_MIN_SECONDS: i64 = 60;
const TOKEN_LIFETIME_MAX_SECONDS: i64 = 30 * 24 * 60 * 60;

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(create_customer_token, list_customer_tokens))
        .routes(routes!(revoke_customer_token))
}

/// Create a token that reads only this customer's data.
#[utoipa::path(
    post,
    path = "/api/v1/customers/{id}/tokens",
    tag = "customers",
    params(
        ("id" = String, Path, description = "The customer's id (`cus_…`)"),
    ),
    request_body(content = Option<CreateCustomerToken>, description = "Optional"),
    responses(
        (status = 201, description = "The token, shown once", body = CustomerTokenBody),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer in this workspace", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid fields", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %auth.workspace_id, customer_id = %customer_id))]
pub(crate) async fn create_customer_token(
    auth: WorkspaceAuth,
    State(state): State<AppState>,
    Path(customer_id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, ApiJson<CustomerTokenBody>), ApiError> {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        CreateCustomerToken::default()
    } else {
        parse_json::<CreateCustomerToken>(&body)?
    };
    let lifetime_seconds = request
        .expires_in_seconds
        .unwrap_or(TOKEN_LIFETIME_DEFAULT_SECONDS);
    if !(TOKEN_LIFETIME_MIN_SECONDS..=TOKEN_LIFETIME_MAX_SECONDS).contains(&lifetime_seconds) {
        return Err(ApiError::invalid(
            "expires_in_seconds",
            format!(
                "must be between {TOKEN_LIFETIME_MIN_SECONDS} and {TOKEN_LIFETIME_MAX_SECONDS}"
            ),
        ));
    }
    let principal = Principal::Workspace {
        workspace_id: auth.workspace_id.clone(),
    };
    let customer = readable_customer(&state, &principal, &customer_id).await?;
    let now = state.clock.now();
    let expires_at = now
        .checked_add(SignedDuration::from_secs(lifetime_seconds))
        .map_err(ApiError::internal)?;
    let (token, secret) = state
        .store
        .create_customer_token(&auth.workspace_id, &customer.id, now, expires_at)
        .await
        .map_err(ApiError::internal)?;
    let body = CustomerTokenBody {
        id: token.id,
        customer_id: token.customer_id.into(),
        token: secret.expose().to_owned(),
        expires_at: token.expires_at.into(),
    };
    Ok((StatusCode::CREATED, ApiJson(body)))
}

/// List a customer's unexpired tokens (without their secrets).
#[utoipa::path(
    get,
    path = "/api/v1/customers/{id}/tokens",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_…`)")),
    responses(
        (status = 200, description = "The customer's unexpired tokens, oldest first, never cut into pages", body = Page<CustomerTokenSummary>),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer in this workspace", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %auth.workspace_id, customer_id = %customer_id))]
pub(crate) async fn list_customer_tokens(
    auth: WorkspaceAuth,
    State(state): State<AppState>,
    Path(customer_id): Path<String>,
) -> Result<ApiJson<Page<CustomerTokenSummary>>, ApiError> {
    let principal = Principal::Workspace {
        workspace_id: auth.workspace_id.clone(),
    };
    let customer = readable_customer(&state, &principal, &customer_id).await?;
    let tokens = state
        .store
        .customer_tokens(&auth.workspace_id, &customer.id, state.clock.now())
        .await
        .map_err(ApiError::internal)?;
    let data = tokens
        .into_iter()
        .map(|token| CustomerTokenSummary {
            id: token.id,
            customer_id: token.customer_id.into(),
            prefix: token.prefix,
            created_at: token.created_at.into(),
            expires_at: token.expires_at.into(),
        })
        .collect();
    Ok(ApiJson(Page::whole(data)))
}

/// Revoke a customer token: requests made with it are refused from then on.
#[utoipa::path(
    delete,
    path = "/api/v1/customers/{id}/tokens/{token_id}",
    tag = "customers",
    params(
        ("id" = String, Path, description = "The customer's id (`cus_…`)"),
        ("token_id" = String, Path, description = "The token's id (`ctok_…`)"),
    ),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "A customer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such customer or token in this workspace", body = Problem, content_type = "application/problem+json"),
    ),
)]
#[tracing::instrument(skip_all, fields(workspace_id = %auth.workspace_id, customer_id = %customer_id, token_id = %token_id))]
pub(crate) async fn revoke_customer_token(
    auth: WorkspaceAuth,
    State(state): State<AppState>,
    Path((customer_id, token_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let revoked = state
        .store
        .revoke_customer_token(&auth.workspace_id, &customer_id, &token_id)
        .await
        .map_err(ApiError::internal)?;
    if !revoked {
        return Err(ApiError::NotFound {
            resource: "customer token",
            id: token_id,
        });
    }
    Ok(StatusCode::NO_CONTENT)
}
