use axum::http::{Method, StatusCode};
use billow_server::PROBLEM_JSON;

use crate::helpers::{send, test_router};

#[tokio::test]
async fn healthz_answers_200_ok() {
    let (router, _store, _directory) = test_router().await;

    let response = send(router, Method::GET, "/healthz").await;

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body, "ok");
}

#[tokio::test]
async fn readyz_answers_200_ok_when_the_store_answers() {
    let (router, _store, _directory) = test_router().await;

    let response = send(router, Method::GET, "/readyz").await;

    assert_eq!(response.status, StatusCode::OK);
    assert_eq!(response.body, "ok");
}

#[tokio::test]
async fn readyz_answers_a_503_problem_when_the_store_does_not_answer() {
    let (router, store, _directory) = test_router().await;
    store.close().await;

    let response = send(router, Method::GET, "/readyz").await;

    assert_eq!(response.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.content_type(), PROBLEM_JSON);
    assert_eq!(
        response.json(),
        serde_json::json!({
            "type": "urn:billow:problem:store-unavailable",
            "title": "Store unavailable",
            "status": 503,
            "detail": "The database does not answer; see the server log.",
        })
    );
}

#[tokio::test]
async fn healthz_answers_200_even_when_the_store_does_not() {
    let (router, store, _directory) = test_router().await;
    store.close().await;

    let response = send(router, Method::GET, "/healthz").await;

    assert_eq!(response.status, StatusCode::OK);
}
