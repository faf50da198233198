//! The OpenAPI document at `/api/v1/openapi.json` and the router agree: every `/api/v1` route the
//! axum router serves is in the document, and every operation of the document is served.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::Value;

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
        .filter(|path| path.starts_with("/api/v1"))
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

async fn the_document_needs_a_credential(api: &TestApi) {
    let response = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;

    assert_eq!(response.status, StatusCode::UNAUTHORIZED);
}

on_both_backends!(
    every_route_is_documented_and_every_documented_route_is_served,
    the_document_is_openapi_3_1_with_bearer_auth,
    the_document_needs_a_credential,
    the_document_passes_an_openapi_validator,
);
