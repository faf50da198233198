//! Every `/api/v1` route without a path parameter, asked with GET and any query string (known
//! parameters and unknown ones, hostile values: U+0000, huge and negative numbers, instants out
//! of range, very long text), answers without a server error, and every 4xx is a problem
//! document: a property test over the query-string parsers of the list routes, on both backends.

use axum::http::Method;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::helpers::{Backend, TestApi};
use billow_server::PROBLEM_JSON;

/// Query parameters the list routes read, and some they do not.
const NAMES: [&str; 14] = [
    "limit",
    "starting_after",
    "ending_before",
    "customer_id",
    "subscription_id",
    "status",
    "meter",
    "from",
    "to",
    "window",
    "group_by",
    "page",
    "cursor",
    "unknown",
];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\u{0}".to_owned()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("101".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("1e9".to_owned()),
        Just("9999-12-31T23:59:59Z".to_owned()),
        Just("-009999-01-01T00:00:00Z".to_owned()),
        Just("2024-02-30T00:00:00Z".to_owned()),
        Just("cus_00000000000000000000000000".to_owned()),
        Just("x".repeat(5_000)),
        ".{0,16}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(NAMES.to_vec()), value()), 0..5).prop_map(|pairs| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in pairs {
            query.append_pair(name, &value);
        }
        query.finish()
    })
}

fn any_query_answers_without_a_server_error(backend: Backend) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let Some(api) = runtime.block_on(TestApi::new(backend)) else {
        return;
    };
    let (_, key) = runtime.block_on(api.workspace_key("queries"));
    let paths: Vec<String> = api
        .routed_paths()
        .into_iter()
        .filter(|path| path.starts_with("/api/v1/") && !path.contains('{'))
        .collect();
    assert!(paths.len() >= 10, "{paths:?}");
    let mut runner = TestRunner::new(Config {
        // `PROPTEST_CASES` runs more (48 by default, to keep CI short).
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|cases| cases.parse().ok())
            .unwrap_or(48),
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&query(), |query| {
        for path in &paths {
            let target = format!("{path}?{query}");
            let response = runtime.block_on(api.call(Method::GET, &target, Some(&key), None));
            prop_assert!(
                response.status.as_u16() < 500,
                "GET {target}: {} {}",
                response.status,
                response.body
            );
            if response.status.is_client_error() {
                prop_assert_eq!(response.content_type(), PROBLEM_JSON, "GET {}", target);
            }
        }
        Ok(())
    });
    runtime.block_on(api.finish());
    outcome.unwrap();
}

#[test]
fn any_query_answers_without_a_server_error_on_sqlite() {
    any_query_answers_without_a_server_error(Backend::Sqlite);
}

#[test]
fn any_query_answers_without_a_server_error_on_postgres() {
    any_query_answers_without_a_server_error(Backend::Postgres);
}
