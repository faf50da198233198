//! Bearer auth and tenant isolation: workspace keys, revoked keys, customer tokens.

use axum::http::{Method, StatusCode};
use billow_billing::clock::Clock;
use billow_server::PROBLEM_JSON;
use jiff::SignedDuration;
use serde_json::{json, Value};

use crate::helpers::{on_both_backends, TestApi, TestResponse};

fn assert_problem(response: &TestResponse, status: StatusCode, problem_type: &str) {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(response.content_type(), PROBLEM_JSON);
    assert_eq!(response.json()["type"], problem_type);
}

fn team(external_id: &str) -> Value {
    json!({"external_id": external_id, "name": "Team", "currency": "EUR"})
}

/// Every workspace route of this stream, with a body where it takes one.
fn workspace_routes(customer_id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/customers".into(), None),
        (Method::POST, "/api/v1/customers".into(), Some(team("new"))),
        (
            Method::GET,
            format!("/api/v1/customers/{customer_id}"),
            None,
        ),
        (
            Method::PATCH,
            format!("/api/v1/customers/{customer_id}"),
            Some(json!({"name": "B"})),
        ),
        (
            Method::GET,
            format!("/api/v1/customers/{customer_id}/projects"),
            None,
        ),
        (
            Method::POST,
            format!("/api/v1/customers/{customer_id}/projects"),
            Some(json!({"name": "p"})),
        ),
        (
            Method::POST,
            format!("/api/v1/customers/{customer_id}/tokens"),
            Some(json!({})),
        ),
        (Method::GET, "/api/v1/openapi.json".into(), None),
    ]
}

async fn a_request_without_a_valid_key_is_a_401_problem(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let customer = api.create_customer(&key, team("team-1")).await;
    let customer_id = customer["id"].as_str().unwrap();
    // The right key with its last digit changed.
    let last = if key.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &key[..key.len() - 1]);

    for (method, path, body) in workspace_routes(customer_id) {
        for credential in [
            None,
            Some(wrong.as_str()),
            Some("bct_unknown"),
            Some("sk_live_x"),
        ] {
            let response = api
                .call(method.clone(), &path, credential, body.clone())
                .await;

            assert_problem(
                &response,
                StatusCode::UNAUTHORIZED,
                "urn:billow:problem:unauthenticated",
            );
            assert!(response.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer"));
        }
    }
    let basic = api
        .call_raw(
            Method::GET,
            "/api/v1/customers",
            None,
            &[("authorization", "Basic YTpi")],
            None,
        )
        .await;
    assert_problem(
        &basic,
        StatusCode::UNAUTHORIZED,
        "urn:billow:problem:unauthenticated",
    );
    let page = api
        .call(Method::GET, "/api/v1/customers", Some(&key), None)
        .await
        .json();
    assert_eq!(
        page["data"].as_array().unwrap().len(),
        1,
        "nothing was created or changed"
    );
    assert_eq!(page["data"][0]["name"], "Team");
}

async fn every_route_but_the_probes_needs_a_credential(api: &TestApi) {
    let probes = ["/healthz", "/readyz", "/metrics"];
    let methods = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    let mut checked = 0;

    for path in api.routed_paths() {
        if probes.contains(&path.as_str()) {
            continue;
        }
        let concrete = TestApi::concrete_path(&path, "probe");
        for method in methods.clone() {
            let response = api.call(method.clone(), &concrete, None, None).await;
            let not_a_route = response.status == StatusCode::NOT_FOUND
                && response.json()["detail"]
                    .as_str()
                    .is_some_and(|detail| detail.starts_with("No route matches"));
            if response.status == StatusCode::METHOD_NOT_ALLOWED || not_a_route {
                continue;
            }
            if path.starts_with("/api/v1/") {
                assert_problem(
                    &response,
                    StatusCode::UNAUTHORIZED,
                    "urn:billow:problem:unauthenticated",
                );
            } else {
                // A platform profile (docs/profiles/): the same 401, in the platform's shape
                // (JSON or, for Akkeris, text).
                assert_eq!(
                    response.status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path}: {}",
                    response.body
                );
                assert!(!response.body.is_empty(), "{method} {path}");
            }
            checked += 1;
        }
    }

    assert!(checked >= 10, "only {checked} operations found");
}

async fn probes_need_no_key(api: &TestApi) {
    for path in ["/healthz", "/readyz", "/metrics"] {
        let response = api.call(Method::GET, path, None, None).await;

        assert_eq!(response.status, StatusCode::OK, "{path}");
    }
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

async fn metrics_count_answered_requests_by_status_class(api: &TestApi) {
    let scrape = || async { api.call(Method::GET, "/metrics", None, None).await.body };
    let before = scrape().await;
    assert!(
        before.contains("# TYPE billow_http_requests_total counter"),
        "{before}"
    );
    api.call(Method::GET, "/api/v1/customers", None, None).await;
    let after = scrape().await;
    // Tests share the process's counters: other requests may land in between, never fewer.
    let unauthorized = r#"billow_http_requests_total{class="4xx"}"#;
    assert!(metric(&after, unauthorized) > metric(&before, unauthorized));
    let ok = r#"billow_http_requests_total{class="2xx"}"#;
    assert!(
        metric(&after, ok) > metric(&before, ok),
        "the first scrape counts as a 2xx"
    );
}

async fn a_revoked_key_is_refused(api: &TestApi) {
    let (workspace_id, other_key) = api.workspace_key("Acme").await;
    let (key_id, key) = api.api_key(&workspace_id).await;
    let before = api
        .call(Method::GET, "/api/v1/customers", Some(&key), None)
        .await;
    assert_eq!(before.status, StatusCode::OK);

    let revoked = api
        .store
        .revoke_api_key(&workspace_id, &key_id, api.clock.now())
        .await
        .unwrap();

    assert!(revoked);
    let after = api
        .call(Method::GET, "/api/v1/customers", Some(&key), None)
        .await;
    assert_problem(
        &after,
        StatusCode::UNAUTHORIZED,
        "urn:billow:problem:unauthenticated",
    );
    let other = api
        .call(Method::GET, "/api/v1/customers", Some(&other_key), None)
        .await;
    assert_eq!(
        other.status,
        StatusCode::OK,
        "the workspace's other key still works"
    );
    let again = api
        .store
        .revoke_api_key(&workspace_id, &key_id, api.clock.now())
        .await;
    assert!(!again.unwrap(), "a revoked key is not revoked twice");
    let keys = api.store.api_keys(&workspace_id).await.unwrap();
    assert_eq!(keys.len(), 2);
    let listed = keys.iter().find(|listed| listed.id == key_id).unwrap();
    assert_eq!(listed.revoked_at, Some(api.clock.now()));
    assert_eq!(listed.prefix, key[..11]);
    assert!(keys
        .iter()
        .any(|listed| listed.id != key_id && listed.revoked_at.is_none()));
}

async fn a_key_of_workspace_a_gets_404_for_workspace_b_customers(api: &TestApi) {
    let (_, key_a) = api.workspace_key("Acme").await;
    let (workspace_b, key_b) = api.workspace_key("Globex").await;
    api.create_customer(&key_a, team("a-team")).await;
    let customer_b = api.create_customer(&key_b, team("b-team")).await;
    let customer_b_id = customer_b["id"].as_str().unwrap();

    for (method, path, body) in workspace_routes(customer_b_id) {
        if !path.contains(customer_b_id) {
            continue;
        }
        let response = api.call(method.clone(), &path, Some(&key_a), body).await;

        assert_problem(
            &response,
            StatusCode::NOT_FOUND,
            "urn:billow:problem:not-found",
        );
    }
    let page_a = api
        .call(Method::GET, "/api/v1/customers", Some(&key_a), None)
        .await
        .json();
    let ids: Vec<&Value> = page_a["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["external_id"])
        .collect();
    assert_eq!(ids, [&json!("a-team")]);
    let stored_b = api
        .store
        .customer(&workspace_b, customer_b_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored_b.name, "Team", "workspace A's PATCH changed nothing");
    assert!(api
        .store
        .projects(&workspace_b, customer_b_id)
        .await
        .unwrap()
        .is_empty());
}

async fn a_customer_token_reads_only_its_own_customer(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let (_, key_b) = api.workspace_key("Globex").await;
    let own = api.create_customer(&key, team("own")).await;
    let other = api.create_customer(&key, team("other")).await;
    let foreign = api.create_customer(&key_b, team("foreign")).await;
    let own_id = own["id"].as_str().unwrap();
    let other_id = other["id"].as_str().unwrap();
    let foreign_id = foreign["id"].as_str().unwrap();
    let project = api
        .call(
            Method::POST,
            &format!("/api/v1/customers/{own_id}/projects"),
            Some(&key),
            Some(json!({"name": "prod"})),
        )
        .await
        .json();

    let created = api
        .call(
            Method::POST,
            &format!("/api/v1/customers/{own_id}/tokens"),
            Some(&key),
            None,
        )
        .await;

    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let created = created.json();
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("bct_"));
    assert!(created["id"].as_str().unwrap().starts_with("ctok_"));
    assert_eq!(created["customer_id"], own["id"]);
    assert_eq!(created["expires_at"], "2026-11-23T08:00:00.000000Z");
    let own_read = api
        .call(
            Method::GET,
            &format!("/api/v1/customers/{own_id}"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(own_read.status, StatusCode::OK);
    assert_eq!(own_read.json(), own);
    let own_projects = api
        .call(
            Method::GET,
            &format!("/api/v1/customers/{own_id}/projects"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(own_projects.json()["data"], json!([project]));
    for id in [other_id, foreign_id] {
        for path in [
            format!("/api/v1/customers/{id}"),
            format!("/api/v1/customers/{id}/projects"),
        ] {
            let response = api.call(Method::GET, &path, Some(token), None).await;
            assert_problem(
                &response,
                StatusCode::NOT_FOUND,
                "urn:billow:problem:not-found",
            );
        }
    }
    for (method, path, body) in [
        (Method::GET, "/api/v1/customers".to_owned(), None),
        (
            Method::POST,
            "/api/v1/customers".to_owned(),
            Some(team("sneaky")),
        ),
        (
            Method::PATCH,
            format!("/api/v1/customers/{own_id}"),
            Some(json!({"name": "Mine"})),
        ),
        (
            Method::POST,
            format!("/api/v1/customers/{own_id}/projects"),
            Some(json!({"name": "p"})),
        ),
        (
            Method::POST,
            format!("/api/v1/customers/{own_id}/tokens"),
            None,
        ),
    ] {
        let response = api.call(method.clone(), &path, Some(token), body).await;
        assert_problem(
            &response,
            StatusCode::FORBIDDEN,
            "urn:billow:problem:forbidden",
        );
    }
    let unchanged = api
        .call(
            Method::GET,
            &format!("/api/v1/customers/{own_id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(unchanged.json()["name"], "Team");
}

async fn a_customer_token_expires(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let customer = api.create_customer(&key, team("own")).await;
    let path = format!("/api/v1/customers/{}", customer["id"].as_str().unwrap());
    let created = api
        .call(
            Method::POST,
            &format!("{path}/tokens"),
            Some(&key),
            Some(json!({"expires_in_seconds": 3600})),
        )
        .await
        .json();
    let token = created["token"].as_str().unwrap();
    assert_eq!(created["expires_at"], "2026-11-22T09:00:00.000000Z");

    api.clock.advance(SignedDuration::from_mins(59));
    let before = api.call(Method::GET, &path, Some(token), None).await;
    api.clock.advance(SignedDuration::from_mins(1));
    let after = api.call(Method::GET, &path, Some(token), None).await;

    assert_eq!(before.status, StatusCode::OK);
    assert_problem(
        &after,
        StatusCode::UNAUTHORIZED,
        "urn:billow:problem:unauthenticated",
    );
}

async fn a_token_lifetime_outside_its_bounds_is_a_422(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let customer = api.create_customer(&key, team("own")).await;
    let path = format!(
        "/api/v1/customers/{}/tokens",
        customer["id"].as_str().unwrap()
    );

    for body in [
        json!({"expires_in_seconds": 59}),
        json!({"expires_in_seconds": 2_592_001}),
        json!({"expires_in_seconds": "soon"}),
        json!({"scope": "all"}),
    ] {
        let response = api
            .call(Method::POST, &path, Some(&key), Some(body.clone()))
            .await;
        assert_problem(
            &response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "urn:billow:problem:validation",
        );
        let field = response.json()["errors"][0]["field"].clone();
        assert!(
            field == "expires_in_seconds" || field == "scope",
            "{body}: {field}"
        );
    }
}

async fn a_revoked_customer_token_is_refused_and_no_longer_listed(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let (_, key_b) = api.workspace_key("Globex").await;
    let customer = api.create_customer(&key, team("own")).await;
    let path = format!("/api/v1/customers/{}", customer["id"].as_str().unwrap());
    let tokens_path = format!("{path}/tokens");
    let first = api
        .call(Method::POST, &tokens_path, Some(&key), None)
        .await
        .json();
    let second = api
        .call(Method::POST, &tokens_path, Some(&key), None)
        .await
        .json();
    let token = first["token"].as_str().unwrap();
    let listed = api.call(Method::GET, &tokens_path, Some(&key), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed = listed.json();
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    assert_eq!(listed["data"][0]["id"], first["id"]);
    assert_eq!(listed["data"][0]["prefix"], token[..12]);
    assert!(!listed.to_string().contains(token), "no secret is listed");
    let revoke_path = format!("{tokens_path}/{}", first["id"].as_str().unwrap());

    let by_token = api
        .call(Method::DELETE, &revoke_path, Some(token), None)
        .await;
    let by_other_workspace = api
        .call(Method::DELETE, &revoke_path, Some(&key_b), None)
        .await;
    let revoked = api
        .call(Method::DELETE, &revoke_path, Some(&key), None)
        .await;
    let again = api
        .call(Method::DELETE, &revoke_path, Some(&key), None)
        .await;

    assert_problem(
        &by_token,
        StatusCode::FORBIDDEN,
        "urn:billow:problem:forbidden",
    );
    assert_problem(
        &by_other_workspace,
        StatusCode::NOT_FOUND,
        "urn:billow:problem:not-found",
    );
    assert_eq!(revoked.status, StatusCode::NO_CONTENT);
    assert_problem(
        &again,
        StatusCode::NOT_FOUND,
        "urn:billow:problem:not-found",
    );
    let read = api.call(Method::GET, &path, Some(token), None).await;
    assert_problem(
        &read,
        StatusCode::UNAUTHORIZED,
        "urn:billow:problem:unauthenticated",
    );
    let other_token = second["token"].as_str().unwrap();
    let other_read = api.call(Method::GET, &path, Some(other_token), None).await;
    assert_eq!(
        other_read.status,
        StatusCode::OK,
        "the other token still works"
    );
    let remaining = api
        .call(Method::GET, &tokens_path, Some(&key), None)
        .await
        .json();
    assert_eq!(remaining["data"].as_array().unwrap().len(), 1);
    assert_eq!(remaining["data"][0]["id"], second["id"]);
}

on_both_backends!(
    every_route_but_the_probes_needs_a_credential,
    a_revoked_customer_token_is_refused_and_no_longer_listed,
    a_request_without_a_valid_key_is_a_401_problem,
    probes_need_no_key,
    metrics_count_answered_requests_by_status_class,
    a_revoked_key_is_refused,
    a_key_of_workspace_a_gets_404_for_workspace_b_customers,
    a_customer_token_reads_only_its_own_customer,
    a_customer_token_expires,
    a_token_lifetime_outside_its_bounds_is_a_422,
);
