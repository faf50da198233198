//! The OpenAPI document at `/api/v1/openapi.json` and the router agree: every `/api/v1` route the
//! axum router serves is in the document, and every operation of the document is served. Every
//! operation is described fully (its bodies, every status), and the responses are what the
//! document says of every list and every instant.

use std::collections::{BTreeMap, BTreeSet};

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{on_both_backends, TestApi};

/// The methods an `/api/v1` route may answer (HEAD follows GET and is not documented).
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// `(METHOD, path)` pairs.
type Operations = BTreeSet<(String, String)>;

async fn document(api: &TestApi) -> Value {
    let (_, key) = api.workspace_key("Docs").await;
    let response = api
        .call(Method::GET, "/api/v1/openapi.json", Some(&key), None)
        .await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.content_type(), "application/json");
    response.json()
}

fn documented_operations(document: &Value) -> Operations {
    let mut operations = Operations::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method.as_str().to_ascii_lowercase()).is_some() {
                operations.insert((method.to_string(), path.clone()));
            }
        }
    }
    operations
}

/// Which methods each routed path answers: without a credential, a routed method is refused by
/// authentication (401) and an unrouted one by the method fallback (405).
async fn routed_operations(api: &TestApi) -> Operations {
    let mut operations = Operations::new();
    for path in api
        .routed_paths()
        .into_iter()
        // Every route but the probes and axum's catch-alls: the native API's and the platform
        // profiles'.
        .filter(|path| {
            path.len() > 1
                && !path.starts_with("/{")
                && !["/healthz", "/readyz", "/metrics"].contains(&path.as_str())
        })
    {
        let concrete = TestApi::concrete_path(&path, "probe");
        for method in METHODS {
            let response = api.call(method.clone(), &concrete, None, None).await;
            match response.status {
                StatusCode::METHOD_NOT_ALLOWED => {}
                StatusCode::UNAUTHORIZED => {
                    operations.insert((method.to_string(), path.clone()));
                }
                status => panic!("{method} {concrete}: {status} {}", response.body),
            }
        }
    }
    operations
}

async fn every_route_is_documented_and_every_documented_route_is_served(api: &TestApi) {
    let document = document(api).await;

    let documented = documented_operations(&document);
    let routed = routed_operations(api).await;

    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from the OpenAPI document: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented operations no route serves: {unserved:?}"
    );
    for operation in [
        ("POST", "/api/v1/customers"),
        ("GET", "/api/v1/customers"),
        ("GET", "/api/v1/customers/{id}"),
        ("PATCH", "/api/v1/customers/{id}"),
        ("POST", "/api/v1/customers/{id}/projects"),
        ("GET", "/api/v1/customers/{id}/projects"),
        ("POST", "/api/v1/customers/{id}/tokens"),
        ("GET", "/api/v1/customers/{id}/tokens"),
        ("DELETE", "/api/v1/customers/{id}/tokens/{token_id}"),
        ("GET", "/api/v1/openapi.json"),
        ("POST", "/api/v1/coupons"),
        ("GET", "/api/v1/coupons"),
        ("GET", "/api/v1/coupons/{code}"),
        ("POST", "/api/v1/coupons/{code}/archive"),
        ("GET", "/api/v1/discounts"),
        ("GET", "/api/v1/discounts/{id}"),
        ("POST", "/api/v1/resources"),
        ("GET", "/api/v1/resources"),
        ("GET", "/api/v1/resources/{id}"),
        ("POST", "/api/v1/resources/{id}/quantity"),
        ("POST", "/api/v1/resources/{id}/delete"),
    ] {
        let operation = (operation.0.to_owned(), operation.1.to_owned());
        assert!(documented.contains(&operation), "{operation:?}");
    }
}

async fn the_document_is_openapi_3_1_with_bearer_auth(api: &TestApi) {
    let document = document(api).await;

    assert!(
        document["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        document["openapi"]
    );
    assert_eq!(document["info"]["title"], "billow");
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(document["security"][0]["bearer"], serde_json::json!([]));
    let create = &document["paths"]["/api/v1/customers"]["post"];
    assert!(create["requestBody"].is_object());
    for status in ["201", "400", "401", "409", "422"] {
        assert!(create["responses"][status].is_object(), "{status}");
    }
    for (path, item) in document["paths"].as_object().unwrap() {
        if let Some(post) = item.get("post") {
            let declared = post["parameters"].as_array().is_some_and(|parameters| {
                parameters
                    .iter()
                    .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header")
            });
            assert!(declared, "POST {path} does not declare Idempotency-Key");
        }
    }
    assert!(document["components"]["schemas"]["CustomerBody"].is_object());
    assert!(document["components"]["schemas"]["Problem"].is_object());
}

/// The request bodies of the billing routes: `(method, path, component, required fields)`.
const BILLING_BODIES: [(&str, &str, &str, &[&str]); 16] = [
    (
        "post",
        "/api/v1/meters",
        "Meter",
        &["key", "event_type", "aggregation"],
    ),
    (
        "post",
        "/api/v1/plans",
        "PlanSpec",
        &["key", "cadence", "prices"],
    ),
    (
        "put",
        "/api/v1/plans/{id}",
        "PlanSpec",
        &["key", "cadence", "prices"],
    ),
    (
        "post",
        "/api/v1/tax-rates",
        "TaxRate",
        &["name", "rate_percent"],
    ),
    (
        "put",
        "/api/v1/customers/{id}/tax-rate",
        "CustomerTaxRate",
        &["tax_rate_id"],
    ),
    (
        "post",
        "/api/v1/credit-grants",
        "CreditGrantBody",
        &["customer_id", "type", "amount", "start"],
    ),
    (
        "post",
        "/api/v1/discounts",
        "DiscountBody",
        &["customer_id"],
    ),
    (
        "post",
        "/api/v1/subscriptions",
        "CreateSubscriptionBody",
        &["customer_id", "plan"],
    ),
    (
        "post",
        "/api/v1/subscriptions/{id}/changes",
        "SubscriptionChangeBody",
        &[],
    ),
    (
        "post",
        "/api/v1/subscriptions/{id}/preview-change",
        "SubscriptionChangeBody",
        &[],
    ),
    (
        "post",
        "/api/v1/coupons",
        "CreateCoupon",
        &["code", "duration"],
    ),
    (
        "post",
        "/api/v1/invoices/{id}/finalize",
        "FinalizeInvoice",
        &[],
    ),
    ("post", "/api/v1/invoices/{id}/void", "VoidInvoice", &[]),
    (
        "post",
        "/api/v1/invoices/{id}/credit-notes",
        "CreateCreditNote",
        &["lines"],
    ),
    (
        "post",
        "/api/v1/invoices/{id}/payments",
        "RecordPayment",
        &["state"],
    ),
    ("post", "/api/v1/billing-runs", "CreateBillingRun", &[]),
];

/// The invoice and billing-run bodies, every property each has: `(component, properties)`. The
/// handlers parse these types with `deny_unknown_fields`, so the document lists all they take.
const INVOICE_BODY_PROPERTIES: [(&str, &[&str]); 6] = [
    ("FinalizeInvoice", &[]),
    ("VoidInvoice", &[]),
    ("CreateCreditNote", &["lines", "reason"]),
    ("CreditNoteLine", &["description", "amount", "line"]),
    ("RecordPayment", &["state", "message"]),
    ("CreateBillingRun", &["customer_id"]),
];

/// The operations whose body may be left out.
const OPTIONAL_BODIES: [&str; 2] = [
    "/api/v1/invoices/{id}/finalize",
    "/api/v1/invoices/{id}/void",
];

/// The component a `$ref` names, e.g. `PlanSpec` for `#/components/schemas/PlanSpec`.
fn referenced(schema: &Value) -> Option<&str> {
    schema["$ref"]
        .as_str()?
        .strip_prefix("#/components/schemas/")
}

fn required(schema: &Value) -> BTreeSet<&str> {
    schema["required"]
        .as_array()
        .map(|fields| fields.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Every `$ref` anywhere in `value`.
fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(members) => {
            for (name, member) in members {
                match (name.as_str(), member) {
                    ("$ref", Value::String(target)) => found.push(target),
                    _ => references(member, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| references(item, found)),
        _ => {}
    }
}

/// The values of the one-value `enum` that `property` has in each alternative of a `oneOf`.
fn tags<'a>(schema: &'a Value, property: &str) -> Vec<&'a str> {
    let alternatives = schema["oneOf"].as_array().unwrap();
    alternatives
        .iter()
        .map(|alternative| {
            assert!(required(alternative).contains(property), "{alternative}");
            let values = alternative["properties"][property]["enum"]
                .as_array()
                .unwrap();
            assert_eq!(values.len(), 1, "{alternative}");
            values[0].as_str().unwrap()
        })
        .collect()
}

async fn every_billing_body_is_a_named_schema_with_its_required_fields(api: &TestApi) {
    let document = document(api).await;
    let schemas = &document["components"]["schemas"];

    for (method, path, component, fields) in BILLING_BODIES {
        let body = &document["paths"][path][method]["requestBody"];
        let schema = &body["content"]["application/json"]["schema"];
        assert_eq!(
            referenced(schema),
            Some(component),
            "{method} {path}: {body}"
        );
        assert_eq!(
            body["required"],
            !OPTIONAL_BODIES.contains(&path),
            "{method} {path}: {body}"
        );
        let declared = &schemas[component];
        assert_eq!(declared["type"], "object", "{component}: {declared}");
        let expected: BTreeSet<&str> = fields.iter().copied().collect();
        assert_eq!(required(declared), expected, "{component}: {declared}");
        for field in fields {
            assert!(
                declared["properties"][field].is_object(),
                "{component}.{field}"
            );
        }
    }
    // An optional body is its object when sent, never a JSON `null`.
    let token = &document["paths"]["/api/v1/customers/{id}/tokens"]["post"]["requestBody"];
    assert_eq!(token["required"], false, "{token}");
    assert_eq!(
        referenced(&token["content"]["application/json"]["schema"]),
        Some("CreateCustomerToken"),
        "{token}"
    );
    for (component, properties) in INVOICE_BODY_PROPERTIES {
        let declared = &schemas[component];
        assert_eq!(declared["type"], "object", "{component}: {declared}");
        let listed: BTreeSet<&str> = declared["properties"]
            .as_object()
            .map(|members| members.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(
            listed,
            properties.iter().copied().collect(),
            "{component}: {declared}"
        );
        assert_eq!(
            declared["additionalProperties"], false,
            "{component}: {declared}"
        );
    }
    let credit_note = &schemas["CreateCreditNote"]["properties"]["lines"];
    assert_eq!(credit_note["type"], "array", "{credit_note}");
    assert_eq!(
        referenced(&credit_note["items"]),
        Some("CreditNoteLine"),
        "{credit_note}"
    );
    assert_eq!(
        (&credit_note["minItems"], &credit_note["maxItems"]),
        (&serde_json::json!(1), &serde_json::json!(100)),
        "{credit_note}"
    );
    let line = &schemas["CreditNoteLine"];
    assert_eq!(
        required(line),
        BTreeSet::from(["description", "amount"]),
        "{line}"
    );
    assert_eq!(
        referenced(&line["properties"]["amount"]),
        Some("Decimal"),
        "{line}"
    );
    assert_eq!(
        referenced(&schemas["RecordPayment"]["properties"]["state"]),
        Some("RecordedPaymentState")
    );
    // A price's pricing is one of the models, told apart by `model`.
    let price = &schemas["PriceSpec"];
    assert_eq!(
        required(price),
        BTreeSet::from(["key", "pricing"]),
        "{price}"
    );
    assert_eq!(
        referenced(&price["properties"]["pricing"]),
        Some("PriceModel")
    );
    assert_eq!(
        tags(&schemas["PriceModel"], "model"),
        [
            "flat",
            "per_unit",
            "graduated",
            "volume",
            "package",
            "percentage",
            "graduated_percentage"
        ]
    );
    // The enums a client picks from are listed.
    let values = |component: &str| -> Vec<&str> {
        schemas[component]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{component}: {}", schemas[component]))
            .iter()
            .map(|value| value.as_str().unwrap())
            .collect()
    };
    assert_eq!(
        values("Cadence"),
        [
            "daily",
            "weekly",
            "monthly",
            "quarterly",
            "semiannual",
            "annual"
        ]
    );
    assert_eq!(
        values("Aggregation"),
        [
            "COUNT",
            "SUM",
            "MIN",
            "MAX",
            "UNIQUE_COUNT",
            "LATEST",
            "TIME_WEIGHTED_SUM"
        ]
    );
    assert_eq!(values("ChangePolicy"), ["immediate", "end_of_term"]);
    assert_eq!(
        values("RecordedPaymentState"),
        ["PaymentInProgress", "Paid", "PaymentFailed"]
    );
    assert_eq!(
        values("GrantType"),
        ["free", "sla", "prepaid", "promotional"]
    );
    assert_eq!(
        values("Alignment"),
        ["cycle_day", "anniversary", "calendar"]
    );
    // Money is an exact decimal string, never a float.
    assert_eq!(schemas["Decimal"]["type"], "string");
    assert_eq!(schemas["Decimal"]["format"], "decimal");
    let flat = schemas["PriceModel"]["oneOf"][0]["properties"]["amount"].clone();
    assert_eq!(referenced(&flat), Some("Decimal"), "{flat}");
    let amount = &schemas["CreditGrantBody"]["properties"]["amount"];
    assert_eq!(referenced(amount), Some("Decimal"), "{amount}");
    // Every component referenced anywhere exists.
    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(found.len() > BILLING_BODIES.len());
    for target in found {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{target} is not a component schema"));
        assert!(
            schemas[name].is_object(),
            "{target} is referenced but not declared"
        );
    }
}

/// Checks the document against the OpenAPI 3.1 schema with `openapi-spec-validator` (Python),
/// when it is installed; says so on stderr when it is not.
async fn the_document_passes_an_openapi_validator(api: &TestApi) {
    let document = document(api).await;
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("openapi.json");
    std::fs::write(&path, document.to_string()).unwrap();
    let script = "import json, sys\n\
                  from openapi_spec_validator import validate\n\
                  validate(json.load(open(sys.argv[1])))\n";
    let available = std::process::Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|output| output.status.success());
    if !available {
        eprintln!("skipping the OpenAPI validator: python3 with openapi-spec-validator is absent");
        return;
    }

    let output = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every native list pages with `starting_after` (Stripe's name); `cursor`, the invoice lists'
/// former name, is documented only there, and as deprecated.
async fn every_native_list_pages_with_starting_after(api: &TestApi) {
    let document = document(api).await;
    let mut lists = BTreeSet::new();
    let mut with_cursor = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        let Some(parameters) = item["get"]["parameters"].as_array() else {
            continue;
        };
        let query = |name: &str| {
            parameters
                .iter()
                .find(|p| p["in"] == "query" && p["name"] == name)
        };
        if query("limit").is_none() {
            continue;
        }
        lists.insert(path.as_str());
        assert!(
            query("starting_after").is_some(),
            "{path}: no starting_after"
        );
        if let Some(cursor) = query("cursor") {
            assert_eq!(cursor["deprecated"], true, "{path}: {cursor}");
            with_cursor.insert(path.as_str());
        }
    }
    assert!(lists.contains("/api/v1/customers"), "{lists:?}");
    assert_eq!(
        with_cursor,
        BTreeSet::from(["/api/v1/customers/{id}/billing-history", "/api/v1/invoices"])
    );
}

/// Whether `schema` is an object schema that says nothing of its members: `{"type": "object"}`
/// without `properties`, `additionalProperties` or a composition of other schemas.
fn is_bare_object(schema: &Value) -> bool {
    let object_type = match &schema["type"] {
        Value::String(kind) => kind == "object",
        Value::Array(kinds) => kinds.iter().any(|kind| kind == "object"),
        _ => false,
    };
    let described = ["additionalProperties", "allOf", "oneOf", "anyOf", "$ref"]
        .iter()
        .any(|member| schema.get(member).is_some())
        || schema["properties"]
            .as_object()
            .is_some_and(|properties| !properties.is_empty());
    object_type && !described
}

/// The JSON pointers of the bare object schemas ([`is_bare_object`]) in `value`, following
/// `$ref`s into the document's components once each.
fn bare_objects(
    document: &Value,
    value: &Value,
    pointer: &str,
    visited: &mut BTreeSet<String>,
    found: &mut Vec<String>,
) {
    match value {
        Value::Object(members) => {
            if is_bare_object(value) {
                found.push(pointer.to_owned());
            }
            for (name, member) in members {
                match (name.as_str(), member) {
                    ("$ref", Value::String(target)) => {
                        if visited.insert(target.clone()) {
                            let target_pointer = target.trim_start_matches('#');
                            let referenced = document
                                .pointer(target_pointer)
                                .unwrap_or_else(|| panic!("{target} is not in the document"));
                            bare_objects(document, referenced, target, visited, found);
                        }
                    }
                    // Examples are values, not schemas.
                    ("example" | "examples", _) => {}
                    _ => bare_objects(
                        document,
                        member,
                        &format!("{pointer}/{name}"),
                        visited,
                        found,
                    ),
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                bare_objects(
                    document,
                    item,
                    &format!("{pointer}/{index}"),
                    visited,
                    found,
                );
            }
        }
        _ => {}
    }
}

/// What the document leaves out of the operation `method path`: a schema for its request body
/// or a 2xx response, a status it can answer, a bound of `limit`, the format of
/// `Idempotency-Key`, or a schema that is a bare object.
fn gaps(document: &Value, method: &Method, path: &str, operation: &Value) -> Vec<String> {
    let mut gaps = Vec::new();
    let responses = &operation["responses"];
    let lists = |status: &str| responses.get(status).is_some();
    let has_body = operation.get("requestBody").is_some();
    if has_body {
        let content = operation["requestBody"]["content"].as_object();
        match content {
            Some(content) if !content.is_empty() => {
                for (media_type, body) in content {
                    if body.get("schema").is_none() {
                        gaps.push(format!("no schema for its {media_type} request body"));
                    }
                }
            }
            _ => gaps.push("a request body without content".to_owned()),
        }
        for status in ["400", "413", "415"] {
            if !lists(status) {
                gaps.push(format!("no {status} for its body"));
            }
        }
    }
    let answers = responses.as_object().cloned().unwrap_or_default();
    if !answers.keys().any(|status| status.starts_with('2')) {
        gaps.push("no 2xx response".to_owned());
    }
    for (status, response) in &answers {
        let problem = || format!("no schema for its {status} response");
        match (status.as_str(), response["content"].as_object()) {
            ("204", None) => {}
            ("204", Some(_)) => gaps.push("a 204 with a body".to_owned()),
            (status, None) if status.starts_with('2') => gaps.push(problem()),
            (_, Some(content)) => {
                if content.is_empty() || content.values().any(|body| body.get("schema").is_none()) {
                    gaps.push(problem());
                }
            }
            (_, None) => gaps.push(problem()),
        }
    }
    if !lists("401") {
        gaps.push("no 401".to_owned());
    }
    if path.contains('{') && !lists("404") {
        gaps.push("no 404 for its path id".to_owned());
    }
    if *method != Method::GET {
        let retry_after = &responses["503"]["headers"]["Retry-After"];
        if !retry_after.is_object() {
            gaps.push("no 503 with Retry-After".to_owned());
        }
    }
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        let schema = &parameter["schema"];
        if parameter["name"] == "limit" && (schema["minimum"] != 1 || !schema["maximum"].is_u64()) {
            gaps.push(format!("limit without its bounds: {schema}"));
        }
        if parameter["name"] == "Idempotency-Key"
            && (schema["minLength"] != 1
                || schema["maxLength"] != 255
                || !schema["pattern"].is_string())
        {
            gaps.push(format!("Idempotency-Key without its format: {schema}"));
        }
    }
    let mut bare = Vec::new();
    bare_objects(document, operation, "", &mut BTreeSet::new(), &mut bare);
    if !bare.is_empty() {
        gaps.push(format!("a bare object schema at {}", bare.join(", ")));
    }
    gaps
}

/// Every operation has a schema for its request body and each 2xx response, lists 401 (and 404
/// when its path has an id), the statuses its body can get, its bounds and formats, and no
/// schema that is a bare `{"type": "object"}`. The document does not depend on the database
/// ([`the_printed_document_is_the_served_one`]): one backend is enough.
#[tokio::test]
async fn every_operation_is_fully_described() {
    let api = TestApi::new(crate::helpers::Backend::Sqlite).await.unwrap();
    let document = document(&api).await;
    api.finish().await;

    let mut failing = BTreeMap::new();
    let mut operations = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(method.as_str().to_ascii_lowercase()) else {
                continue;
            };
            operations += 1;
            let gaps = gaps(&document, &method, path, operation);
            if !gaps.is_empty() {
                failing.insert(format!("{method} {path}"), gaps);
            }
        }
    }

    assert!(operations > 50, "{operations} operations");
    let report: Vec<String> = failing
        .iter()
        .map(|(operation, gaps)| format!("{operation}: {}", gaps.join("; ")))
        .collect();
    assert!(
        failing.is_empty(),
        "{} of {operations} operations are not described fully:\n{}",
        failing.len(),
        report.join("\n")
    );
}

/// The central statuses are documented as the layers answer them: a body's 415, a write's 503
/// with `Retry-After`, every operation's 401, each with a problem; `Idempotency-Key` as
/// `crate::idempotency` parses it.
async fn the_statuses_every_route_can_answer_are_documented(api: &TestApi) {
    let document = document(api).await;
    let problem = json!({"$ref": "#/components/schemas/Problem"});
    let operation = |method: &str, path: &str| document["paths"][path][method].clone();

    let credit_note = operation("post", "/api/v1/invoices/{id}/credit-notes");
    let list = operation("get", "/api/v1/invoices");
    let settings = operation("patch", "/api/v1/workspace/settings");

    for (status, operation) in [
        ("401", &list),
        ("415", &credit_note),
        ("413", &settings),
        ("503", &credit_note),
        ("409", &credit_note),
    ] {
        let body = &operation["responses"][status]["content"]["application/problem+json"];
        assert_eq!(body["schema"], problem, "{status}: {operation}");
    }
    assert!(list["responses"]["503"].is_null(), "a read never writes");
    assert!(list["responses"]["415"].is_null(), "no body, no 415");
    assert_eq!(
        credit_note["responses"]["503"]["headers"]["Retry-After"]["schema"]["type"],
        "integer"
    );
    let idempotency_key = credit_note["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|parameter| parameter["name"] == "Idempotency-Key")
        .unwrap()["schema"]
        .clone();
    assert_eq!(
        idempotency_key,
        json!({"type": "string", "minLength": 1, "maxLength": 255,
               "pattern": "^[!-~]{1,255}$",
               "examples": ["3f1c9c1e-8d0b-4f57-9b0e-6f4d8b1d2a10"]})
    );
    // The pattern says what the server takes: visible ASCII, 1 to 255 characters.
    let (_, key) = api.workspace_key("Docs").await;
    for (idempotency_key, expected) in [
        ("a".repeat(255), StatusCode::CREATED),
        ("b".repeat(256), StatusCode::UNPROCESSABLE_ENTITY),
        ("with space".to_owned(), StatusCode::UNPROCESSABLE_ENTITY),
    ] {
        let response = api
            .call_raw(
                Method::POST,
                "/api/v1/customers",
                Some(&key),
                &[("idempotency-key", &idempotency_key)],
                Some(json!({"external_id": "acme", "name": "Acme", "currency": "EUR"}).to_string()),
            )
            .await;
        assert_eq!(
            response.status, expected,
            "{idempotency_key}: {}",
            response.body
        );
    }
    let limit = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|parameter| parameter["name"] == "limit")
        .unwrap()["schema"]
        .clone();
    assert_eq!(
        (&limit["minimum"], &limit["maximum"]),
        (&json!(1), &json!(100))
    );
    // The event body is a CloudEvent, a batch of them, or either as JSON.
    let events = operation("post", "/api/v1/events");
    let content = &events["requestBody"]["content"];
    assert_eq!(
        content["application/cloudevents+json"]["schema"],
        json!({"$ref": "#/components/schemas/CloudEvent"})
    );
    let schemas = &document["components"]["schemas"];
    assert_eq!(
        schemas["CloudEventBatch"]["items"],
        json!({"$ref": "#/components/schemas/CloudEvent"})
    );
    assert_eq!(schemas["CloudEventBatch"]["maxItems"], 10_000);
    assert_eq!(
        required(&schemas["CloudEvent"]),
        BTreeSet::from(["specversion", "id", "source", "type", "subject", "time"])
    );
}

/// What `billow openapi` prints is the document a server serves.
async fn the_printed_document_is_the_served_one(api: &TestApi) {
    let served = document(api).await;

    let printed = serde_json::to_value(billow_server::openapi_document()).unwrap();

    assert_eq!(printed, served);
}

async fn the_document_needs_a_credential(api: &TestApi) {
    let response = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;

    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
}

on_both_backends!(
    every_route_is_documented_and_every_documented_route_is_served,
    the_document_is_openapi_3_1_with_bearer_auth,
    every_billing_body_is_a_named_schema_with_its_required_fields,
    the_document_needs_a_credential,
    the_document_passes_an_openapi_validator,
    every_native_list_pages_with_starting_after,
    the_statuses_every_route_can_answer_are_documented,
    the_printed_document_is_the_served_one,
);

/// The customer, catalog, subscription, resource, credit and coupon operations: `(method, path,
/// request body component or none, 2xx status, 2xx body component)`.
const DESCRIBED_OPERATIONS: [(&str, &str, Option<&str>, &str, &str); 35] = [
    (
        "post",
        "/api/v1/customers",
        Some("CreateCustomer"),
        "201",
        "CustomerBody",
    ),
    ("get", "/api/v1/customers", None, "200", "Page_CustomerBody"),
    ("get", "/api/v1/customers/{id}", None, "200", "CustomerBody"),
    (
        "patch",
        "/api/v1/customers/{id}",
        Some("UpdateCustomer"),
        "200",
        "CustomerBody",
    ),
    (
        "post",
        "/api/v1/customers/{id}/projects",
        Some("CreateProject"),
        "201",
        "ProjectBody",
    ),
    (
        "get",
        "/api/v1/customers/{id}/projects",
        None,
        "200",
        "Page_ProjectBody",
    ),
    (
        "put",
        "/api/v1/customers/{id}/tax-rate",
        Some("CustomerTaxRate"),
        "200",
        "CustomerTaxRateBody",
    ),
    ("post", "/api/v1/meters", Some("Meter"), "201", "MeterBody"),
    ("get", "/api/v1/meters", None, "200", "Page_MeterBody"),
    ("get", "/api/v1/meters/{id}", None, "200", "MeterBody"),
    ("post", "/api/v1/plans", Some("PlanSpec"), "201", "PlanBody"),
    ("get", "/api/v1/plans", None, "200", "Page_PlanBody"),
    ("get", "/api/v1/plans/{id}", None, "200", "PlanBody"),
    (
        "put",
        "/api/v1/plans/{id}",
        Some("PlanSpec"),
        "200",
        "PlanBody",
    ),
    (
        "post",
        "/api/v1/subscriptions",
        Some("CreateSubscriptionBody"),
        "201",
        "SubscriptionBody",
    ),
    (
        "get",
        "/api/v1/subscriptions",
        None,
        "200",
        "Page_SubscriptionBody",
    ),
    (
        "get",
        "/api/v1/subscriptions/{id}",
        None,
        "200",
        "SubscriptionBody",
    ),
    (
        "post",
        "/api/v1/subscriptions/{id}/changes",
        Some("SubscriptionChangeBody"),
        "201",
        "SubscriptionBody",
    ),
    (
        "post",
        "/api/v1/subscriptions/{id}/preview-change",
        Some("SubscriptionChangeBody"),
        "200",
        "PreviewBody",
    ),
    (
        "post",
        "/api/v1/resources",
        Some("CreateResource"),
        "201",
        "ResourceBody",
    ),
    ("get", "/api/v1/resources", None, "200", "Page_ResourceBody"),
    ("get", "/api/v1/resources/{id}", None, "200", "ResourceBody"),
    (
        "post",
        "/api/v1/resources/{id}/quantity",
        Some("ChangeQuantity"),
        "200",
        "ResourceBody",
    ),
    (
        "post",
        "/api/v1/resources/{id}/delete",
        Some("DeleteResource"),
        "200",
        "ResourceBody",
    ),
    (
        "post",
        "/api/v1/credit-grants",
        Some("CreditGrantBody"),
        "201",
        "CreditGrant",
    ),
    (
        "get",
        "/api/v1/credit-grants",
        None,
        "200",
        "Page_CreditGrant",
    ),
    (
        "post",
        "/api/v1/discounts",
        Some("DiscountBody"),
        "201",
        "Discount",
    ),
    ("get", "/api/v1/discounts", None, "200", "Page_Discount"),
    ("get", "/api/v1/discounts/{id}", None, "200", "Discount"),
    (
        "post",
        "/api/v1/tax-rates",
        Some("TaxRate"),
        "201",
        "TaxRateBody",
    ),
    ("get", "/api/v1/tax-rates", None, "200", "Page_TaxRateBody"),
    (
        "post",
        "/api/v1/coupons",
        Some("CreateCoupon"),
        "201",
        "CouponBody",
    ),
    ("get", "/api/v1/coupons", None, "200", "Page_CouponBody"),
    ("get", "/api/v1/coupons/{code}", None, "200", "CouponBody"),
    // Archiving takes no body.
    (
        "post",
        "/api/v1/coupons/{code}/archive",
        None,
        "200",
        "CouponBody",
    ),
];

/// The paged lists among them, whose `limit` is bounded as `crate::limits::PageLimit` checks it.
const PAGED_LISTS: [&str; 3] = ["/api/v1/customers", "/api/v1/resources", "/api/v1/coupons"];

/// The schema `schema` stands for: the component it references, or itself.
fn resolve<'a>(schemas: &'a Value, schema: &'a Value) -> &'a Value {
    referenced(schema).map_or(schema, |name| &schemas[name])
}

/// Each operation of [`DESCRIBED_OPERATIONS`] documents its request body and its 2xx body as
/// named schemas with properties, a list's body as the page envelope, 404 when its path names
/// something, and a paged list's `limit` bounds.
#[tokio::test]
async fn customer_catalog_and_credit_operations_are_fully_described() {
    let api = TestApi::new(crate::helpers::Backend::Sqlite).await.unwrap();
    let document = document(&api).await;
    api.finish().await;
    let schemas = &document["components"]["schemas"];

    for (method, path, request, status, response) in DESCRIBED_OPERATIONS {
        let operation = &document["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let body = &operation["requestBody"]["content"]["application/json"]["schema"];
        match request {
            Some(component) => {
                assert_eq!(referenced(body), Some(component), "{method} {path}: {body}");
                let properties = &schemas[component]["properties"];
                assert!(
                    properties.as_object().is_some_and(|p| !p.is_empty()),
                    "{component} has no properties: {}",
                    schemas[component]
                );
            }
            None => assert!(operation["requestBody"].is_null(), "{method} {path}"),
        }
        let answered = &operation["responses"][status]["content"]["application/json"]["schema"];
        assert_eq!(
            referenced(answered),
            Some(response),
            "{method} {path} {status}"
        );
        let shape = &schemas[response];
        let described = shape["properties"]
            .as_object()
            .is_some_and(|p| !p.is_empty())
            || shape["allOf"]
                .as_array()
                .is_some_and(|parts| !parts.is_empty());
        assert!(described, "{response} describes nothing: {shape}");
        if response.starts_with("Page_") {
            let properties = &shape["properties"];
            assert_eq!(properties["data"]["type"], "array", "{response}: {shape}");
            let item = resolve(schemas, &properties["data"]["items"]);
            assert!(item["properties"].is_object(), "{response}: {item}");
            assert_eq!(properties["has_more"]["type"], "boolean", "{response}");
            assert!(properties["next_cursor"].is_object(), "{response}");
        }
        let problems = |status: &str| {
            let problem = &operation["responses"][status]["content"]["application/problem+json"];
            referenced(&problem["schema"]) == Some("Problem")
        };
        if path.contains('{') {
            assert!(problems("404"), "{method} {path} does not document its 404");
        }
        if request.is_some() {
            assert!(problems("422"), "{method} {path} does not document its 422");
        }
    }
    for path in PAGED_LISTS {
        let parameters = document["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap();
        let limit = parameters
            .iter()
            .find(|parameter| parameter["name"] == "limit")
            .unwrap_or_else(|| panic!("{path} has no limit"));
        assert_eq!(limit["in"], "query");
        assert_eq!(
            (&limit["schema"]["minimum"], &limit["schema"]["maximum"]),
            (&serde_json::json!(1), &serde_json::json!(100)),
            "{path}: {limit}"
        );
    }
    // Every instant of these bodies is the six-digit `Instant`, never a bare string.
    for component in [
        "MeterBody",
        "PlanBody",
        "SubscriptionBody",
        "ResourceBody",
        "CouponBody",
    ] {
        let created = &schemas[component]["properties"]["created_at"];
        assert_eq!(
            referenced(created),
            Some("Instant"),
            "{component}: {created}"
        );
    }
    assert_eq!(schemas["Instant"]["format"], "date-time");
}
mod responses;
