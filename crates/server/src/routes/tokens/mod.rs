//! `POST /api/v1/customers/{id}/tokens`: customer-scoped tokens for console users.
//!
//! A workspace key makes a `bct_…` token for one customer; the secret is answered once and only
//! its hash is kept. The token reads that customer's data and nothing else (see `crate::auth`).
//! A workspace key may also list a customer's unexpired tokens (without secrets) and revoke one.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::auth::{Principal, WorkspaceAuth};
use crate::error::{ApiError, Problem};
use crate::json::{parse_json, ApiJson};
use crate::openapi::ApiRouter;
use crate::routes::customers::readable_customer;
use crate::state::AppState;

/// A token lives a day unless asked otherwise: long enough for a console session.
const TOKEN_LIFETIME_DEFAULT_SECONDS: i64 = 24 * 60 * 60;
const TOKEN_LIFETIME_MIN_SECONDS: i64 = 60;
const TOKEN_LIFETIME_MAX_SECONDS: i64 = 30 * 24 * 60 * 60;

pub(crate) fn router() -> ApiRouter {
    ApiRouter::new()
        .routes(routes!(create_customer_token, list_customer_tokens))
        .routes(routes!(revoke_customer_token))
}

/// `POST /api/v1/customers/{id}/tokens`; the body may be empty.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomerToken {
    /// 60 to 2,592,000 (30 days); 86,400 (a day) when absent.
    #[schema(minimum = 60, maximum = 2592000)]
    pub expires_in_seconds: Option<i64>,
}

/// A new token; `token` is shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerTokenBody {
    #[schema(example = "ctok_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    pub customer_id: String,
    /// The secret, `bct_…`: send it as `Authorization: Bearer bct_…`.
    pub token: String,
    /// RFC 3339.
    #[schema(value_type = String, example = "2026-11-23T08:00:00Z")]
    pub expires_at: Timestamp,
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
        expires_at: token.expires_at,
    };
    Ok((StatusCode::CREATED, ApiJson(body)))
}

/// A token as listed: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerTokenSummary {
    #[schema(example = "ctok_01jd0m7x9q3k8w2v5t6r4y1z0a")]
    pub id: String,
    pub customer_id: String,
    /// The secret's first characters, e.g. `bct_1f0c93ab`.
    pub prefix: String,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
    #[schema(value_type = String)]
    pub expires_at: Timestamp,
}

/// A customer's unexpired tokens, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerTokenList {
    pub data: Vec<CustomerTokenSummary>,
}

/// List a customer's unexpired tokens (without their secrets).
#[utoipa::path(
    get,
    path = "/api/v1/customers/{id}/tokens",
    tag = "customers",
    params(("id" = String, Path, description = "The customer's id (`cus_…`)")),
    responses(
        (status = 200, description = "The customer's unexpired tokens", body = CustomerTokenList),
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
) -> Result<ApiJson<CustomerTokenList>, ApiError> {
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
            created_at: token.created_at,
            expires_at: token.expires_at,
        })
        .collect();
    Ok(ApiJson(CustomerTokenList { data }))
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
