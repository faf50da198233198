//! `Idempotency-Key` on POST: replay, reuse with another request, in flight, expiry, and what is
//! not stored; checked against the rows the requests left.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use billow_billing::clock::Clock;
use billow_server::PROBLEM_JSON;
use billow_store::{IdempotencyBegin, IdempotencyWindow};
use jiff::SignedDuration;
use serde_json::{json, Value};

use crate::helpers::{on_both_backends, send_request, TestApi, TestResponse};

fn team(external_id: &str) -> Value {
    json!({"external_id": external_id, "name": "Team", "currency": "EUR"})
}

async fn post_with_key(
    api: &TestApi,
    key: &str,
    idempotency_key: &str,
    path: &str,
    body: &Value,
) -> TestResponse {
    api.call_raw(
        Method::POST,
        path,
        Some(key),
        &[("idempotency-key", idempotency_key)],
        Some(body.to_string()),
    )
    .await
}

async fn customer_count(api: &TestApi, key: &str) -> usize {
    let page = api
        .call(Method::GET, "/api/v1/customers?limit=100", Some(key), None)
        .await
        .json();
    page["data"].as_array().unwrap().len()
}

async fn a_retried_post_replays_the_first_response_without_doing_it_again(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let body = team("team-1");

    let first = post_with_key(api, &key, "create-team-1", "/api/v1/customers", &body).await;
    let retry = post_with_key(api, &key, "create-team-1", "/api/v1/customers", &body).await;

    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert!(first.headers.get("idempotent-replayed").is_none());
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(
        retry.body, first.body,
        "the same customer id, byte for byte"
    );
    assert_eq!(retry.content_type(), "application/json");
    assert_eq!(customer_count(api, &key).await, 1);
}

async fn the_same_json_written_otherwise_is_the_same_request(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let first = api
        .call_raw(
            Method::POST,
            "/api/v1/customers",
            Some(&key),
            &[("idempotency-key", "k-json")],
            Some(r#"{"external_id": "team-1", "name": "Team", "currency": "EUR"}"#.to_owned()),
        )
        .await;
    let reordered = api
        .call_raw(
            Method::POST,
            "/api/v1/customers",
            Some(&key),
            &[("idempotency-key", "k-json")],
            Some(
                "{\"currency\":\"EUR\",\n  \"name\":\"Team\",\"external_id\":\"team-1\"}"
                    .to_owned(),
            ),
        )
        .await;

    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(reordered.status, StatusCode::CREATED, "{}", reordered.body);
    assert_eq!(reordered.headers["idempotent-replayed"], "true");
    assert_eq!(reordered.body, first.body);
    assert_eq!(customer_count(api, &key).await, 1);
}

async fn the_same_key_with_another_body_is_a_422_problem(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let first = post_with_key(api, &key, "k-1", "/api/v1/customers", &team("team-1")).await;
    assert_eq!(first.status, StatusCode::CREATED);

    let other_body = post_with_key(api, &key, "k-1", "/api/v1/customers", &team("team-2")).await;
    let customer_path = format!(
        "/api/v1/customers/{}/projects",
        first.json()["id"].as_str().unwrap()
    );
    let other_path = post_with_key(api, &key, "k-1", &customer_path, &json!({"name": "p"})).await;

    for response in [&other_body, &other_path] {
        assert_eq!(
            response.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{}",
            response.body
        );
        assert_eq!(response.content_type(), PROBLEM_JSON);
        assert_eq!(
            response.json()["type"],
            "urn:billow:problem:idempotency-key-reused"
        );
    }
    assert_eq!(customer_count(api, &key).await, 1);
}

async fn keys_are_scoped_to_a_workspace(api: &TestApi) {
    let (_, key_a) = api.workspace_key("Acme").await;
    let (_, key_b) = api.workspace_key("Globex").await;
    let body = team("team-1");

    let in_a = post_with_key(api, &key_a, "shared-key", "/api/v1/customers", &body).await;
    let in_b = post_with_key(api, &key_b, "shared-key", "/api/v1/customers", &body).await;

    assert_eq!(in_a.status, StatusCode::CREATED);
    assert_eq!(in_b.status, StatusCode::CREATED);
    assert!(in_b.headers.get("idempotent-replayed").is_none());
    assert_ne!(in_a.json()["id"], in_b.json()["id"]);
}

async fn a_request_with_a_key_in_flight_is_a_409_problem(api: &TestApi) {
    let (workspace_id, key) = api.workspace_key("Acme").await;
    // The first request has claimed the key and not answered yet.
    let now = api.clock.now();
    let window = IdempotencyWindow {
        now,
        expired_before: now - SignedDuration::from_hours(24),
        stale_before: now - SignedDuration::from_mins(5),
    };
    let claimed = api
        .store
        .begin_idempotent_request(&workspace_id, "busy", "fingerprint of the first", window)
        .await
        .unwrap();
    assert_eq!(claimed, IdempotencyBegin::Started);

    let second = post_with_key(api, &key, "busy", "/api/v1/customers", &team("team-1")).await;

    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.body);
    assert_eq!(second.content_type(), PROBLEM_JSON);
    assert_eq!(
        second.json()["type"],
        "urn:billow:problem:idempotency-key-in-flight"
    );
    assert_eq!(customer_count(api, &key).await, 0);
    // A claim whose process died is taken over once stale.
    api.clock.advance(SignedDuration::from_mins(6));
    let later = post_with_key(api, &key, "busy", "/api/v1/customers", &team("team-1")).await;
    assert_eq!(later.status, StatusCode::CREATED, "{}", later.body);
}

async fn concurrent_requests_with_one_key_do_the_work_once(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let body = team("team-1");

    let responses = futures_join(api, &key, &body).await;

    let created = responses
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert!(created >= 1);
    for response in &responses {
        let replayed = response.headers.get("idempotent-replayed").is_some();
        let in_flight = response.status == StatusCode::CONFLICT
            && response.json()["type"] == "urn:billow:problem:idempotency-key-in-flight";
        assert!(
            (response.status == StatusCode::CREATED) || in_flight,
            "{} {}",
            response.status,
            response.body
        );
        if response.status == StatusCode::CREATED && replayed {
            assert_eq!(
                response.body,
                responses
                    .iter()
                    .find(|r| r.status == StatusCode::CREATED)
                    .unwrap()
                    .body
            );
        }
    }
    assert_eq!(customer_count(api, &key).await, 1);
}

/// Eight POSTs with one key, at once.
async fn futures_join(api: &TestApi, key: &str, body: &Value) -> Vec<TestResponse> {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let request = Request::builder()
                .method(Method::POST)
                .uri("/api/v1/customers")
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .header("idempotency-key", "race")
                .body(Body::from(body.to_string()))
                .unwrap();
            tokio::spawn(send_request(api.router.clone(), request))
        })
        .collect();
    let mut responses = Vec::new();
    for task in tasks {
        responses.push(task.await.unwrap());
    }
    responses
}

async fn keys_are_forgotten_after_24_hours(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let body = team("team-1");
    let first = post_with_key(api, &key, "day-old", "/api/v1/customers", &body).await;
    assert_eq!(first.status, StatusCode::CREATED);

    api.clock.advance(SignedDuration::from_hours(23));
    let within = post_with_key(api, &key, "day-old", "/api/v1/customers", &body).await;
    api.clock.advance(SignedDuration::from_hours(2));
    let after = post_with_key(api, &key, "day-old", "/api/v1/customers", &body).await;

    assert_eq!(within.headers["idempotent-replayed"], "true");
    assert_eq!(within.body, first.body);
    // Run again for real: the external id is now taken.
    assert_eq!(after.status, StatusCode::CONFLICT, "{}", after.body);
    assert_eq!(after.json()["type"], "urn:billow:problem:already-exists");
    let deleted = api
        .store
        .delete_expired_idempotency_keys(api.clock.now() - SignedDuration::from_hours(24))
        .await
        .unwrap();
    assert_eq!(
        deleted, 0,
        "the expired key was replaced by the new request's"
    );
}

async fn a_rejected_request_does_not_use_up_its_key(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let invalid = json!({"external_id": "team-1", "name": "", "currency": "EUR"});

    let rejected = post_with_key(api, &key, "fix-and-retry", "/api/v1/customers", &invalid).await;
    let fixed = post_with_key(
        api,
        &key,
        "fix-and-retry",
        "/api/v1/customers",
        &team("team-1"),
    )
    .await;

    assert_eq!(rejected.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(fixed.status, StatusCode::CREATED, "{}", fixed.body);
    assert!(fixed.headers.get("idempotent-replayed").is_none());
}

async fn an_invalid_key_is_a_422_naming_the_header(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let too_long = "k".repeat(256);

    let response = post_with_key(api, &key, &too_long, "/api/v1/customers", &team("team-1")).await;

    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.json()["errors"][0]["field"], "Idempotency-Key");
    assert_eq!(customer_count(api, &key).await, 0);
}

async fn a_get_ignores_the_key(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let first = api
        .call_raw(
            Method::GET,
            "/api/v1/customers",
            Some(&key),
            &[("idempotency-key", "g")],
            None,
        )
        .await;
    api.create_customer(&key, team("team-1")).await;

    let second = api
        .call_raw(
            Method::GET,
            "/api/v1/customers",
            Some(&key),
            &[("idempotency-key", "g")],
            None,
        )
        .await;

    assert_eq!(first.json()["data"], json!([]));
    assert_eq!(second.json()["data"].as_array().unwrap().len(), 1);
    assert!(second.headers.get("idempotent-replayed").is_none());
}

on_both_backends!(
    a_retried_post_replays_the_first_response_without_doing_it_again,
    the_same_key_with_another_body_is_a_422_problem,
    the_same_json_written_otherwise_is_the_same_request,
    keys_are_scoped_to_a_workspace,
    a_request_with_a_key_in_flight_is_a_409_problem,
    concurrent_requests_with_one_key_do_the_work_once,
    keys_are_forgotten_after_24_hours,
    a_rejected_request_does_not_use_up_its_key,
    an_invalid_key_is_a_422_naming_the_header,
    a_get_ignores_the_key,
);
