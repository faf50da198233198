use axum::http::{Method, StatusCode};
use billow_server::PROBLEM_JSON;

use crate::helpers::{send, test_router};

#[tokio::test]
async fn an_unknown_route_is_a_404_problem() {
    let (router, _store, _directory) = test_router().await;

    let response = send(router, Method::GET, "/api/v1/nowhere?page=2").await;

    assert_eq!(response.status, StatusCode::NOT_FOUND);
    assert_eq!(response.content_type(), PROBLEM_JSON);
    assert_eq!(
        response.json(),
        serde_json::json!({
            "type": "urn:billow:problem:not-found",
            "title": "Not found",
            "status": 404,
            "detail": "No route matches GET /api/v1/nowhere.",
        })
    );
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_a_405_problem_naming_the_allowed_ones() {
    let (router, _store, _directory) = test_router().await;

    let response = send(router, Method::DELETE, "/healthz").await;

    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.content_type(), PROBLEM_JSON);
    assert_eq!(
        response.json()["type"],
        "urn:billow:problem:method-not-allowed"
    );
    assert_eq!(response.json()["status"], 405);
    assert_eq!(response.headers["allow"], "GET,HEAD");
}
