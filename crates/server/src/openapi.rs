//! The OpenAPI 3.1 document of the native API, served at `/api/v1/openapi.json`.
//!
//! Routes and their documentation come from one place: a handler carries
//! `#[utoipa::path(post, path = "/api/v1/…", …)]`, and its resource's router registers it with
//! `ApiRouter::new().routes(routes!(handler))` (utoipa-axum), which adds both the axum route and the
//! document's path. A test (`tests/api/openapi.rs`) walks the axum router and the served document
//! and fails when either has a route the other lacks. How to register a route:
//! `docs/service-plan.md`, "OpenAPI".

pub mod bodies;

use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Extension;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as OpenApiDocument, RefOr, Required};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{FieldError, Problem};
use crate::state::AppState;

/// The router every `/api/v1` resource builds: axum routes that carry their OpenAPI paths.
pub type ApiRouter = OpenApiRouter<AppState>;

/// The document's fixed parts; paths are added by the routers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "billow",
        description = "Usage-based billing and invoicing for cloud platforms: the native API.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(Problem, FieldError)),
)]
pub struct ApiDoc;

/// Declares the Bearer scheme every operation requires (workspace keys `bk_…`, customer tokens
/// `bct_…`).
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut OpenApiDocument) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A workspace API key (`bk_…`, made by `billow keys create`) or a \
                         customer-scoped token (`bct_…`).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The route that serves the document.
pub(crate) fn router() -> ApiRouter {
    ApiRouter::new().routes(routes!(openapi_json))
}

/// The whole document from the one the `/api/v1` routers describe ([`ApiDoc`] with their
/// paths): each POST declaring the `Idempotency-Key` header that `crate::idempotency` gives it,
/// and each optional body documented as the object it is when sent.
pub fn finish(mut document: OpenApiDocument) -> OpenApiDocument {
    for item in document.paths.paths.values_mut() {
        if let Some(post) = item.post.as_mut() {
            declare_idempotency_key(post);
        }
        let operations = [item.post.as_mut(), item.put.as_mut(), item.patch.as_mut()];
        for operation in operations.into_iter().flatten() {
            unwrap_optional_body(operation);
        }
    }
    document
}

/// utoipa documents an optional body (`request_body(content = Option<T>)`) as `oneOf: [null, T]`
/// without `required`. The server never takes a JSON `null` there: it takes no body, or a `T`
/// (`json::parse_optional`, the token route). `required: false` is what says
/// that the body may be left out, so the schema becomes `T` and `required` is written out.
fn unwrap_optional_body(operation: &mut Operation) {
    let Some(body) = operation.request_body.as_mut() else {
        return;
    };
    if matches!(body.required, Some(Required::True)) {
        return;
    }
    body.required = Some(Required::False);
    for content in body.content.values_mut() {
        let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema else {
            continue;
        };
        let mut sent = one_of.items.iter().filter(|item| !is_null(item));
        if let (Some(schema), None) = (sent.next(), sent.next()) {
            content.schema = Some(schema.clone());
        }
    }
}

fn is_null(schema: &RefOr<Schema>) -> bool {
    matches!(
        schema,
        RefOr::T(Schema::Object(object)) if object.schema_type == SchemaType::Type(Type::Null)
    )
}

fn declare_idempotency_key(operation: &mut Operation) {
    let parameters = operation.parameters.get_or_insert_with(Vec::new);
    if parameters
        .iter()
        .any(|parameter| parameter.name.eq_ignore_ascii_case("Idempotency-Key"))
    {
        return;
    }
    parameters.push(
        ParameterBuilder::new()
            .name("Idempotency-Key")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Any unique string (a UUID is typical), at most 255 characters. The first \
                 response to a key is stored for 24 hours and answered again, with \
                 `Idempotent-Replayed: true`, to every retry with the same key; the same key \
                 with another request is a 422 `idempotency-key-reused`, and while the first \
                 request runs a retry gets 409 `idempotency-key-in-flight`.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(255)),
            ))
            .build(),
    );
}

/// The finished document as JSON, which [`openapi_json`] serves: built once per router, when
/// the routes are known (`crate::startup::router`).
#[derive(Clone, Debug)]
pub struct DocumentJson(Arc<str>);

impl DocumentJson {
    /// The JSON of `document`.
    pub fn new(document: &OpenApiDocument) -> Self {
        match document.to_json() {
            Ok(json) => Self(json.into()),
            Err(error) => unreachable!("the OpenAPI document always serializes: {error}"),
        }
    }
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"),
        (status = 401, description = "No valid credential", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub(crate) async fn openapi_json(Extension(json): Extension<DocumentJson>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], json.0.to_string())
}
