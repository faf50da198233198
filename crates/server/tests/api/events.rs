//! `POST /api/v1/events`: the three body shapes, exactly-once, per-event errors, limits, auth and
//! isolation, checked against what the store holds afterwards.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use billow_store::{Store, WorkspaceId};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::helpers::{on_both_backends, TestApi, TestResponse};

const STRUCTURED: &str = "application/cloudevents+json";
const BATCH: &str = "application/cloudevents-batch+json";
const JSON: &str = "application/json";
const NOVEMBER: (&str, &str) = ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z");

fn event(id: &str, subject: &str) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "cluster-7",
        "type": "cpu",
        "subject": subject,
        "time": "2026-11-02T10:00:00Z",
        "data": {"cores": 2}
    })
}

async fn post_events(
    router: &Router,
    key: Option<&str>,
    content_type: &str,
    body: String,
) -> TestResponse {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/events")
        .header("content-type", content_type);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1024 * 1024)
        .await
        .unwrap();
    TestResponse {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

/// The ids of the events stored for `subjects` in November, in time order.
async fn stored_ids(store: &Store, workspace_id: &WorkspaceId, subjects: &[&str]) -> Vec<String> {
    let subjects: Vec<String> = subjects.iter().map(|s| (*s).to_owned()).collect();
    let from = NOVEMBER.0.parse().unwrap();
    let to = NOVEMBER.1.parse().unwrap();
    let mut ids: Vec<String> = store
        .usage_events(workspace_id, &subjects, from, to)
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.id)
        .collect();
    ids.sort();
    ids
}

async fn one_structured_event_is_stored_and_acknowledged(api: &TestApi) {
    let (router, store) = (&api.router, &api.store);
    let (acme, key) = api.workspace_key("Acme").await;

    let response = post_events(
        router,
        Some(&key),
        STRUCTURED,
        event("e1", "cus_1").to_string(),
    )
    .await;

    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
    assert_eq!(
        response.json(),
        json!({"accepted": 1, "duplicates": 0, "errors": []})
    );
    let stored = store
        .usage_events(
            &acme,
            &["cus_1".into()],
            NOVEMBER.0.parse().unwrap(),
            NOVEMBER.1.parse().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].source, "cluster-7");
    assert_eq!(stored[0].event_type, "cpu");
    assert_eq!(stored[0].time, "2026-11-02T10:00:00Z".parse().unwrap());
    assert_eq!(stored[0].data.to_map()["cores"], json!(2));
}

async fn a_batch_and_a_plain_array_are_stored_whole(api: &TestApi) {
    let (router, store) = (&api.router, &api.store);
    let (acme, key) = api.workspace_key("Acme").await;
    let batch = json!([event("b1", "cus_1"), event("b2", "cus_2")]).to_string();
    let array = json!([event("a1", "cus_1"), event("a2", "cus_1; charset")]).to_string();

    let batch_response = post_events(router, Some(&key), BATCH, batch).await;
    let array_response =
        post_events(router, Some(&key), "application/json; charset=utf-8", array).await;

    assert_eq!(
        batch_response.status,
        StatusCode::ACCEPTED,
        "{}",
        batch_response.body
    );
    assert_eq!(batch_response.json()["accepted"], json!(2));
    assert_eq!(
        array_response.status,
        StatusCode::ACCEPTED,
        "{}",
        array_response.body
    );
    assert_eq!(array_response.json()["accepted"], json!(2));
    assert_eq!(
        stored_ids(store, &acme, &["cus_1", "cus_2", "cus_1; charset"]).await,
        ["a1", "a2", "b1", "b2"]
    );
}

async fn a_duplicate_source_and_id_is_counted_once_across_requests(api: &TestApi) {
    let (router, store) = (&api.router, &api.store);
    let (acme, key) = api.workspace_key("Acme").await;

    let first = post_events(
        router,
        Some(&key),
        STRUCTURED,
        event("e1", "cus_1").to_string(),
    )
    .await;
    let retry = json!([
        event("e1", "cus_1"),
        event("e2", "cus_1"),
        event("e2", "cus_1")
    ]);
    let second = post_events(router, Some(&key), BATCH, retry.to_string()).await;

    assert_eq!(first.json()["accepted"], json!(1));
    assert_eq!(second.status, StatusCode::ACCEPTED);
    assert_eq!(
        second.json(),
        json!({"accepted": 1, "duplicates": 2, "errors": []})
    );
    assert_eq!(stored_ids(store, &acme, &["cus_1"]).await, ["e1", "e2"]);
}

async fn invalid_events_are_named_by_index_and_field_and_the_valid_ones_stored(api: &TestApi) {
    let (router, store) = (&api.router, &api.store);
    let (acme, key) = api.workspace_key("Acme").await;
    let mut no_time = event("bad1", "cus_1");
    no_time.as_object_mut().unwrap().remove("time");
    let mut wrong_version = event("bad2", "cus_1");
    wrong_version["specversion"] = json!("0.3");
    wrong_version["data"] = json!([1, 2]);
    let body = json!([
        event("ok1", "cus_1"),
        no_time,
        "not an event",
        wrong_version,
        event("ok2", "cus_1")
    ]);

    let response = post_events(router, Some(&key), BATCH, body.to_string()).await;

    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
    let answer = response.json();
    assert_eq!(answer["accepted"], json!(2));
    let errors: Vec<(u64, &str)> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| {
            (
                error["index"].as_u64().unwrap(),
                error["field"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [(1, "time"), (2, ""), (3, "specversion"), (3, "data")]
    );
    assert_eq!(answer["errors"][0]["reason"], json!("is required"));
    assert_eq!(stored_ids(store, &acme, &["cus_1"]).await, ["ok1", "ok2"]);
}

/// PostgreSQL cannot store U+0000 in text, SQLite can: both refuse it in every attribute and in
/// data, so that no stored event can break what reads or moves it later (compaction).
async fn a_nul_in_any_attribute_or_in_data_is_named_and_the_other_events_stored(api: &TestApi) {
    let (router, store) = (&api.router, &api.store);
    let (acme, key) = api.workspace_key("Acme").await;
    let nul_subject = event("bad1", "cus_\u{0}1");
    let nul_id = event("bad\u{0}2", "cus_1");
    let mut nul_data_key = event("bad3", "cus_1");
    nul_data_key["data"] = json!({"pro\u{0}ject": "prj_1"});
    let mut nul_data_value = event("bad4", "cus_1");
    nul_data_value["data"] = json!({"cores": 2, "tags": ["a", "prj\u{0}"]});
    let mut nul_source = event("bad5", "cus_1");
    nul_source["source"] = json!("\u{0}");
    let mut nul_type = event("bad6", "cus_1");
    nul_type["type"] = json!("cpu\u{0}");
    // Text that spells an escape is not a NUL.
    let mut spelled = event("ok3", "cus_1");
    spelled["data"] = json!({"note": "\\u0000"});
    let body = json!([
        event("ok1", "cus_1"),
        nul_subject,
        nul_id,
        nul_data_key,
        nul_data_value,
        nul_source,
        nul_type,
        event("ok2", "cus_1"),
        spelled,
    ]);

    let response = post_events(router, Some(&key), BATCH, body.to_string()).await;

    assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
    let answer = response.json();
    assert_eq!(answer["accepted"], json!(3));
    let errors: Vec<(u64, &str)> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| {
            (
                error["index"].as_u64().unwrap(),
                error["field"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        errors,
        [
            (1, "subject"),
            (2, "id"),
            (3, "data"),
            (4, "data"),
            (5, "source"),
            (6, "type")
        ]
    );
    assert_eq!(
        answer["errors"][0]["reason"],
        json!("must not contain U+0000 (NUL)")
    );
    assert_eq!(
        stored_ids(store, &acme, &["cus_1"]).await,
        ["ok1", "ok2", "ok3"]
    );
    // What is stored compacts, on both backends.
    assert_eq!(store.compact_events(1_000).await.unwrap(), 3);
    assert_eq!(
        stored_ids(store, &acme, &["cus_1"]).await,
        ["ok1", "ok2", "ok3"]
    );
}

async fn a_single_event_with_a_nul_is_a_422_naming_the_field(api: &TestApi) {
    let (router, store) = (&api.router, &api.store);
    let (acme, key) = api.workspace_key("Acme").await;

    let response = post_events(
        router,
        Some(&key),
        STRUCTURED,
        event("e1", "cus_1\u{0}").to_string(),
    )
    .await;

    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.content_type(), "application/problem+json");
    assert_eq!(
        response.json()["errors"],
        json!([{"index": 0, "field": "subject", "reason": "must not contain U+0000 (NUL)"}])
    );
    assert_eq!(store.compact_events(1_000).await.unwrap(), 0);
    assert!(stored_ids(store, &acme, &["cus_1"]).await.is_empty());
}

async fn a_request_without_a_valid_event_is_a_422_problem_listing_them(api: &TestApi) {
    let (router, store) = (&api.router, &api.store);
    let (acme, key) = api.workspace_key("Acme").await;
    let mut empty_id = event("", "cus_1");
    empty_id["source"] = json!(42);

    let response = post_events(router, Some(&key), BATCH, json!([empty_id]).to_string()).await;
    let empty = post_events(router, Some(&key), BATCH, "[]".into()).await;
    let malformed = post_events(router, Some(&key), BATCH, "[{".into()).await;

    assert_eq!(response.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.content_type(), "application/problem+json");
    let problem = response.json();
    assert_eq!(problem["type"], json!("urn:billow:problem:validation"));
    assert_eq!(
        problem["errors"][0],
        json!({"index": 0, "field": "id", "reason": "must not be empty"})
    );
    assert_eq!(problem["errors"][1]["field"], json!("source"));
    assert_eq!(empty.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.content_type(), "application/problem+json");
    assert!(stored_ids(store, &acme, &["cus_1"]).await.is_empty());
}

async fn a_mode_and_a_body_shape_that_disagree_are_refused(api: &TestApi) {
    let router = &api.router;
    let (_, key) = api.workspace_key("Acme").await;

    let array_as_one = post_events(
        router,
        Some(&key),
        STRUCTURED,
        json!([event("e", "c")]).to_string(),
    )
    .await;
    let one_as_batch = post_events(router, Some(&key), BATCH, event("e", "c").to_string()).await;
    let one_as_json = post_events(router, Some(&key), JSON, event("e", "c").to_string()).await;

    assert_eq!(array_as_one.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(one_as_batch.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        one_as_json.status,
        StatusCode::ACCEPTED,
        "plain JSON takes one event too"
    );
}

async fn another_content_type_is_415(api: &TestApi) {
    let router = &api.router;
    let (_, key) = api.workspace_key("Acme").await;

    let response = post_events(
        router,
        Some(&key),
        "text/plain",
        event("e1", "cus_1").to_string(),
    )
    .await;

    assert_eq!(response.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(response.content_type(), "application/problem+json");
    assert_eq!(
        response.json()["type"],
        json!("urn:billow:problem:unsupported-media-type")
    );
}

async fn more_than_10_000_events_are_refused_whole_with_413(api: &TestApi) {
    let (router, store) = (&api.router, &api.store);
    let (acme, key) = api.workspace_key("Acme").await;
    let events: Vec<Value> = (0..10_001)
        .map(|n| event(&n.to_string(), "cus_1"))
        .collect();

    let response = post_events(router, Some(&key), BATCH, Value::Array(events).to_string()).await;

    assert_eq!(response.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(response.content_type(), "application/problem+json");
    assert_eq!(
        response.json()["type"],
        json!("urn:billow:problem:too-many-events")
    );
    assert!(stored_ids(store, &acme, &["cus_1"]).await.is_empty());
}

async fn no_credential_is_401_and_nothing_is_stored(api: &TestApi) {
    let (router, store) = (&api.router, &api.store);
    let (acme, _) = api.workspace_key("Acme").await;

    let missing = post_events(router, None, STRUCTURED, event("e1", "cus_1").to_string()).await;
    let wrong = post_events(
        router,
        Some("bk_wrong"),
        STRUCTURED,
        event("e1", "cus_1").to_string(),
    )
    .await;

    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(missing.content_type(), "application/problem+json");
    assert!(stored_ids(store, &acme, &["cus_1"]).await.is_empty());
}

async fn another_workspace_never_sees_the_events_nor_counts_them_as_duplicates(api: &TestApi) {
    let (router, store) = (&api.router, &api.store);
    let (acme, acme_key) = api.workspace_key("Acme").await;
    let (globex, globex_key) = api.workspace_key("Globex").await;

    post_events(
        router,
        Some(&acme_key),
        BATCH,
        json!([event("e1", "cus_1"), event("e2", "cus_1")]).to_string(),
    )
    .await;
    let in_globex = post_events(
        router,
        Some(&globex_key),
        STRUCTURED,
        event("e1", "cus_1").to_string(),
    )
    .await;

    assert_eq!(in_globex.json()["accepted"], json!(1), "{}", in_globex.body);
    assert_eq!(stored_ids(store, &globex, &["cus_1"]).await, ["e1"]);
    assert_eq!(stored_ids(store, &acme, &["cus_1"]).await, ["e1", "e2"]);
}

async fn concurrent_requests_are_group_committed_exactly_once(api: &TestApi) {
    let (router, store) = (&api.router, &api.store);
    let (acme, key) = api.workspace_key("Acme").await;

    // 16 requests of 100 events at once; each shares half its ids with the next.
    let requests = (0..16).map(|request| {
        let router = router.clone();
        let key = key.clone();
        tokio::spawn(async move {
            let events: Vec<Value> = (request * 50..request * 50 + 100)
                .map(|n| event(&n.to_string(), &format!("cus_{}", n % 5)))
                .collect();
            post_events(&router, Some(&key), BATCH, Value::Array(events).to_string()).await
        })
    });
    let mut accepted = 0;
    let mut duplicates = 0;
    for request in requests.collect::<Vec<_>>() {
        let response = request.await.unwrap();
        assert_eq!(response.status, StatusCode::ACCEPTED, "{}", response.body);
        accepted += response.json()["accepted"].as_u64().unwrap();
        duplicates += response.json()["duplicates"].as_u64().unwrap();
    }

    assert_eq!(accepted, 850, "ids 0..850, each once");
    assert_eq!(duplicates, 16 * 100 - 850);
    let subjects = ["cus_0", "cus_1", "cus_2", "cus_3", "cus_4"];
    assert_eq!(stored_ids(store, &acme, &subjects).await.len(), 850);
}

on_both_backends!(
    one_structured_event_is_stored_and_acknowledged,
    a_batch_and_a_plain_array_are_stored_whole,
    a_duplicate_source_and_id_is_counted_once_across_requests,
    invalid_events_are_named_by_index_and_field_and_the_valid_ones_stored,
    a_nul_in_any_attribute_or_in_data_is_named_and_the_other_events_stored,
    a_single_event_with_a_nul_is_a_422_naming_the_field,
    a_request_without_a_valid_event_is_a_422_problem_listing_them,
    a_mode_and_a_body_shape_that_disagree_are_refused,
    another_content_type_is_415,
    more_than_10_000_events_are_refused_whole_with_413,
    no_credential_is_401_and_nothing_is_stored,
    another_workspace_never_sees_the_events_nor_counts_them_as_duplicates,
    concurrent_requests_are_group_committed_exactly_once,
);
