//! The OpenAPI 3.1 document of the native API, served at `/api/v1/openapi.json`.
//!
//! Routes and their documentation come from one place: a handler carries
//! `#[utoipa::path(post, path = "/api/v1/…", …)]`, and its resource's router registers it with
//! `ApiRouter::new().routes(routes!(handler))` (utoipa-axum), which adds both the axum route and the
//! document's path. A test (`tests/api/openapi.rs`) walks the axum router and the served document
//! and fails when either has a route the other lacks. How to register a route:
//! `docs/service-plan.md`, "OpenAPI".
//!
//! A route documents its own bodies and the statuses its handler answers (404, 409, 422, ...);
//! [`finish`] adds to every operation what the layers in front of the handlers answer
//! (authentication, body limits, media types, `Idempotency-Key`, a full disk), so that no
//! route can leave them out.

pub mod bodies;

use std::borrow::Cow;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Extension;
use utoipa::openapi::content::Content;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as OpenApiDocument, Ref, RefOr, Required};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::{FieldError, Problem, PROBLEM_JSON, STORAGE_FULL_RETRY_AFTER_SECONDS};
use crate::idempotency::KEY_LENGTH_MAX;
use crate::limits::BODY_LENGTH_MAX_BYTES;
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
/// each optional body documented as the object it is when sent, and every operation listing
/// the statuses the layers in front of its handler answer ([`answer_layer_statuses`]).
pub fn finish(mut document: OpenApiDocument) -> OpenApiDocument {
    for (path, item) in &mut document.paths.paths {
        let has_path_parameter = path.contains('{');
        if let Some(post) = item.post.as_mut() {
            declare_idempotency_key(post);
        }
        let operations = [
            (Method::Get, item.get.as_mut()),
            (Method::Post, item.post.as_mut()),
            (Method::Put, item.put.as_mut()),
            (Method::Patch, item.patch.as_mut()),
            (Method::Delete, item.delete.as_mut()),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else {
                continue;
            };
            unwrap_optional_body(operation);
            answer_layer_statuses(operation, method, has_path_parameter);
        }
    }
    document
}

/// The methods of the native API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// Adds to `operation` each status that a layer in front of every handler may answer, when the
/// route does not document it already (a route's own description is more precise):
///
/// - 401: no credential, or an unknown, revoked or expired one (`crate::auth`), with
///   `WWW-Authenticate`;
/// - with a body: 400 (not JSON), 408 (the body came too slowly, `crate::connections`), 413
///   (over [`BODY_LENGTH_MAX_BYTES`], `crate::limits`), 415 (not a JSON media type,
///   `crate::json`) and 422 (a field);
/// - with a path or query parameter: 422 (a value holding U+0000, `crate::nul`);
/// - POST: 409 (a request with the same `Idempotency-Key` is in flight) and 422 (a malformed or
///   reused key), and `Idempotent-Replayed` on a replayed success (`crate::idempotency`);
/// - every write (POST, PUT, PATCH, DELETE): 503 with `Retry-After` while the database cannot
///   write for lack of disk space (`crate::storage`).
///
/// There is no rate limiting, so no 429. Every error is a problem ([`crate::ApiError`]), so an
/// error status a route documents without a body gets the [`Problem`] schema.
fn answer_layer_statuses(operation: &mut Operation, method: Method, has_path_parameter: bool) {
    let has_body = operation.request_body.is_some();
    let has_query = operation
        .parameters
        .iter()
        .flatten()
        .any(|parameter| matches!(parameter.parameter_in, ParameterIn::Query));
    let responses = &mut operation.responses.responses;
    // A status the route documents keeps its description; a reason of another kind than the
    // route's own (`Reason::Other`: a malformed parameter or key) is added to it.
    let mut answer =
        |status: &str, reason: Reason, response: Response| match responses.get_mut(status) {
            Some(RefOr::T(documented))
                if reason == Reason::Other
                    && !documented.description.contains(&response.description) =>
            {
                documented.description = format!(
                    "{}; or: {}",
                    documented.description.trim_end_matches('.'),
                    response.description
                );
            }
            Some(_) => {}
            None => {
                responses.insert(status.to_owned(), RefOr::T(response));
            }
        };
    answer(
        "401",
        Reason::Same,
        problem_response(
            "No credential, or an unknown, revoked or expired one: send `Authorization: Bearer` \
             with a workspace key (`bk_…`) or a customer token (`bct_…`).",
        )
        .header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(string_schema())
                .description(Some("`Bearer realm=\"billow\"`"))
                .build(),
        )
        .build(),
    );
    if has_body {
        answer("400", Reason::Same, problem("The body is not valid JSON."));
        answer(
            "408",
            Reason::Same,
            problem("The body did not arrive within the server's time for it."),
        );
        answer(
            "413",
            Reason::Same,
            problem(&format!(
                "The body is larger than {BODY_LENGTH_MAX_BYTES} bytes."
            )),
        );
        answer(
            "415",
            Reason::Same,
            problem(
                "The body's `Content-Type` is not JSON (`application/json` or \
                 `application/…+json`); a body without one is read as JSON.",
            ),
        );
        answer(
            "422",
            Reason::Same,
            problem("A field of the body is missing or invalid: `errors` names each."),
        );
    }
    if has_path_parameter || has_query {
        answer(
            "422",
            Reason::Other,
            problem("A path or query value is invalid (for example, it holds U+0000)."),
        );
    }
    if method == Method::Post {
        answer(
            "409",
            Reason::Other,
            problem("A request with the same `Idempotency-Key` is still being processed."),
        );
        answer(
            "422",
            Reason::Other,
            problem("The `Idempotency-Key` is malformed, or was used before with another request."),
        );
        for (status, response) in responses.iter_mut() {
            if let (true, RefOr::T(response)) = (status.starts_with('2'), response) {
                response
                    .headers
                    .entry("Idempotent-Replayed".to_owned())
                    .or_insert_with(|| {
                        HeaderBuilder::new()
                            .schema(
                                ObjectBuilder::new()
                                    .schema_type(Type::String)
                                    .enum_values(Some(["true"])),
                            )
                            .description(Some(
                                "`true` when this is the stored response to an earlier request \
                                 with the same `Idempotency-Key`.",
                            ))
                            .build()
                    });
            }
        }
    }
    let responses = &mut operation.responses.responses;
    for (status, response) in responses.iter_mut() {
        if let (false, RefOr::T(response)) = (status.starts_with(['1', '2', '3']), response) {
            if response.content.is_empty() {
                response.content.insert(
                    PROBLEM_JSON.to_owned(),
                    Content::new(Some(Ref::from_schema_name(Problem::name()))),
                );
            }
        }
    }
    if method != Method::Get {
        responses.entry("503".to_owned()).or_insert_with(|| {
            RefOr::T(
                problem_response(
                    "The database cannot write for lack of disk space; retry after \
                     `Retry-After` seconds.",
                )
                .header("Retry-After", retry_after())
                .build(),
            )
        });
    }
}

/// Whether a layer's reason for a status is the one a route documents under it (a body that is
/// not JSON, a field) or another (a malformed parameter, an `Idempotency-Key`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    Same,
    Other,
}

/// A response whose body is a [`Problem`].
fn problem(description: &str) -> Response {
    problem_response(description).build()
}

fn problem_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        Content::new(Some(Ref::from_schema_name(Problem::name()))),
    )
}

fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn retry_after() -> Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .examples([STORAGE_FULL_RETRY_AFTER_SECONDS]),
        )
        .description(Some("Seconds to wait before retrying."))
        .build()
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

/// Declares the optional `Idempotency-Key` header `crate::idempotency` gives a POST.
pub(crate) fn declare_idempotency_key(operation: &mut Operation) {
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
                "Any unique string of 1 to 255 visible ASCII characters (`!` to `~`: no \
                 spaces, no control characters; a UUID is typical); another is a 422 naming \
                 `Idempotency-Key`. The first response to a key is stored for 24 hours and \
                 answered again, with `Idempotent-Replayed: true`, to every retry with the \
                 same request (the same JSON body, whatever its whitespace or member order); \
                 the same key with another request is a 422 `idempotency-key-reused`, and \
                 while the first request runs a retry gets 409 `idempotency-key-in-flight`.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(KEY_LENGTH_MAX))
                    .pattern(Some(format!("^[!-~]{{1,{KEY_LENGTH_MAX}}}$")))
                    .examples(["3f1c9c1e-8d0b-4f57-9b0e-6f4d8b1d2a10"]),
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
        (status = 200, description = "The OpenAPI 3.1 document", body = OpenApiDocumentBody, content_type = "application/json"),
    ),
)]
pub(crate) async fn openapi_json(Extension(json): Extension<DocumentJson>) -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], json.0.to_string())
}

/// The body of `GET /api/v1/openapi.json`: an OpenAPI 3.1 document, described here by its
/// required members (its full schema is the specification's,
/// <https://spec.openapis.org/oas/3.1/schema/2022-10-07>).
pub struct OpenApiDocumentBody;

impl PartialSchema for OpenApiDocumentBody {
    fn schema() -> RefOr<Schema> {
        let map = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .additional_properties(Some(AdditionalProperties::FreeForm(true)))
                .description(Some(description))
        };
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                "openapi",
                string_schema()
                    .pattern(Some(r"^3\.1\.\d+$"))
                    .description(Some("The version of the OpenAPI specification.")),
            )
            .property(
                "info",
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property("title", string_schema())
                    .property("version", string_schema())
                    .property("description", string_schema())
                    .required("title")
                    .required("version"),
            )
            .property("paths", map("A Path Item Object per path."))
            .property(
                "components",
                map("Schemas, security schemes and the other reusable objects."),
            )
            .property(
                "security",
                utoipa::openapi::schema::ArrayBuilder::new()
                    .items(map("A Security Requirement Object.")),
            )
            .property(
                "tags",
                utoipa::openapi::schema::ArrayBuilder::new().items(map("A Tag Object.")),
            )
            .required("openapi")
            .required("info")
            .required("paths")
            .description(Some(
                "An OpenAPI 3.1 document: https://spec.openapis.org/oas/v3.1.0",
            ))
            .into()
    }
}

impl ToSchema for OpenApiDocumentBody {
    fn name() -> Cow<'static, str> {
        "OpenApiDocument".into()
    }
}
