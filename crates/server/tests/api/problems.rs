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

/// A JSON route refuses a body of another media type with a 415 problem, and takes one without a
/// `Content-Type` or with a JSON media type and parameters.
#[tokio::test]
async fn a_body_that_is_not_json_is_a_415_problem() {
    let api = crate::helpers::TestApi::new(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let (_, key) = api.workspace_key("media").await;
    let post = |content_type: Option<&'static str>, external_id: &str| {
        let body =
            format!(r#"{{"external_id": "{external_id}", "name": "Acme", "currency": "EUR"}}"#);
        let mut request = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/api/v1/customers")
            .header("authorization", format!("Bearer {key}"));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        api.send(request.body(axum::body::Body::from(body)).unwrap())
    };

    for refused in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
    ] {
        let response = post(Some(refused), "refused").await;
        assert_eq!(
            response.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{refused}"
        );
        assert_eq!(response.content_type(), PROBLEM_JSON);
        assert_eq!(
            response.json()["type"],
            "urn:billow:problem:unsupported-media-type"
        );
    }
    let taken = [
        None,
        Some("application/json; charset=utf-8"),
        Some("Application/JSON"),
    ];
    for (index, taken) in taken.into_iter().enumerate() {
        let response = post(taken, &format!("taken-{index}")).await;
        assert_eq!(
            response.status,
            StatusCode::CREATED,
            "{taken:?}: {}",
            response.body
        );
    }
    api.finish().await;
}
