//! U+0000 in a path parameter, a query value or a JSON body is a 422 problem naming it, on every
//! route and on both backends (PostgreSQL cannot store or compare it in `text`, and answered 500).

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{on_both_backends, TestApi, TestResponse};

const NUL_REASON: &str = "must not contain U+0000 (NUL)";
const WRITE_METHODS: [Method; 3] = [Method::POST, Method::PUT, Method::PATCH];

/// Whether `response` says that no route takes this method on this path.
fn not_routed(response: &TestResponse) -> bool {
    let no_route = response.status == StatusCode::NOT_FOUND
        && response.json()["detail"]
            .as_str()
            .is_some_and(|detail| detail.starts_with("No route matches"));
    no_route || response.status == StatusCode::METHOD_NOT_ALLOWED
}

/// Asserts a 422 validation problem whose errors are exactly `fields`, each for U+0000.
fn assert_nul_problem(response: &TestResponse, fields: &[&str], what: &str) {
    assert_eq!(
        response.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{what}: {}",
        response.body
    );
    assert_eq!(
        response.content_type(),
        "application/problem+json",
        "{what}"
    );
    let problem = response.json();
    assert_eq!(problem["type"], "urn:billow:problem:validation", "{what}");
    let expected: Vec<Value> = fields
        .iter()
        .map(|field| json!({"field": field, "reason": NUL_REASON}))
        .collect();
    assert_eq!(problem["errors"], json!(expected), "{what}");
}

/// The names of the `{parameter}` segments of a routed path, in order.
fn parameters(path: &str) -> Vec<&str> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect()
}

async fn every_path_parameter_holding_a_nul_is_a_422_naming_it(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let mut checked = 0;

    for path in api.routed_paths() {
        let names = parameters(&path);
        // A platform profile's route (docs/profiles/) answers its platform's not-found for an
        // id holding U+0000, in its platform's shape: each profile's tests check it.
        if names.is_empty() || !path.starts_with("/api/v1/") {
            continue;
        }
        let concrete = TestApi::concrete_path(&path, "cus%00probe");
        for method in [Method::GET, Method::DELETE]
            .into_iter()
            .chain(WRITE_METHODS)
        {
            let body = (method != Method::GET && method != Method::DELETE).then(|| json!({}));
            let response = api.call(method.clone(), &concrete, Some(&key), body).await;
            if not_routed(&response) {
                continue;
            }
            assert_nul_problem(&response, &names, &format!("{method} {path}"));
            checked += 1;
        }
    }

    assert!(checked >= 15, "only {checked} operations found");
}

async fn every_query_value_or_name_holding_a_nul_is_a_422_naming_it(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let mut checked = 0;

    for path in api.routed_paths() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let concrete = TestApi::concrete_path(&path, "probe");
        for query in [
            "starting_after=%00",
            "customer_id=cus_%00",
            "limit=10&subject=a%00b",
        ] {
            let uri = format!("{concrete}?{query}");
            let response = api.call(Method::GET, &uri, Some(&key), None).await;
            if not_routed(&response) {
                continue;
            }
            let name = query.rsplit('&').next().unwrap().split('=').next().unwrap();
            assert_nul_problem(&response, &[name], &format!("GET {uri}"));
            checked += 1;
        }
    }
    let uri = "/api/v1/customers?a%00b=1";
    let response = api.call(Method::GET, uri, Some(&key), None).await;
    assert_nul_problem(&response, &["a\\u0000b"], uri);

    assert!(checked >= 15, "only {checked} queries checked");
}

async fn a_json_body_holding_a_nul_anywhere_is_a_422_naming_the_field(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;

    let meter = api
        .call(
            Method::POST,
            "/api/v1/meters",
            Some(&key),
            Some(json!({"key": "m\u{0}", "event_type": "cpu", "aggregation": "COUNT"})),
        )
        .await;
    let customer = api
        .call(
            Method::POST,
            "/api/v1/customers",
            Some(&key),
            Some(
                json!({"external_id": "acme", "name": "Acme", "currency": "USD",
                        "address": {"line1": "Main\u{0}street", "country": "DE"}}),
            ),
        )
        .await;
    let metadata_name = api
        .call(
            Method::POST,
            "/api/v1/customers",
            Some(&key),
            Some(
                json!({"external_id": "acme", "name": "Acme", "currency": "USD",
                        "tax_ids": [{"kind": "eu_vat", "value": "DE1", "n\u{0}": 1}]}),
            ),
        )
        .await;

    assert_nul_problem(&meter, &["key"], "meter key");
    assert_nul_problem(&customer, &["address.line1"], "customer address");
    assert_nul_problem(&metadata_name, &["tax_ids[0].n\\u0000"], "a member name");
    let page = api
        .call(Method::GET, "/api/v1/customers", Some(&key), None)
        .await;
    assert_eq!(page.json()["data"], json!([]), "nothing was created");
    let meters = api
        .call(Method::GET, "/api/v1/meters", Some(&key), None)
        .await;
    assert_eq!(meters.json()["data"], json!([]), "nothing was created");
}

/// Write routes that read no body at all, and so never see one with U+0000.
const BODYLESS: [&str; 1] = ["POST /api/v1/coupons/{code}/archive"];

/// Every route that reads a JSON body (the events route has its own per-event errors) refuses a
/// U+0000 in it before doing anything else: a credit note's reason, a plan's description, ...
async fn every_json_body_route_refuses_a_nul_before_anything_else(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let mut checked = 0;
    let mut bodyless = Vec::new();

    for path in api.routed_paths() {
        if !path.starts_with("/api/v1/") || path == "/api/v1/events" {
            continue;
        }
        let concrete = TestApi::concrete_path(&path, "probe");
        for method in WRITE_METHODS {
            let body = json!({"reason": "a\u{0}"});
            let response = api
                .call(method.clone(), &concrete, Some(&key), Some(body))
                .await;
            let operation = format!("{method} {path}");
            if not_routed(&response) {
                continue;
            }
            if BODYLESS.contains(&operation.as_str()) {
                assert!(response.status.is_client_error(), "{operation}");
                bodyless.push(operation);
                continue;
            }
            assert_nul_problem(&response, &["reason"], &operation);
            checked += 1;
        }
    }

    assert_eq!(bodyless, BODYLESS);
    assert!(checked >= 15, "only {checked} operations found");
}

on_both_backends!(
    every_path_parameter_holding_a_nul_is_a_422_naming_it,
    every_query_value_or_name_holding_a_nul_is_a_422_naming_it,
    a_json_body_holding_a_nul_anywhere_is_a_422_naming_the_field,
    every_json_body_route_refuses_a_nul_before_anything_else,
);
