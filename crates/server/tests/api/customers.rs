//! `/api/v1/customers` and projects: create, get, list, update; every bad input answered 422 with
//! the exact field; outcomes checked in the store as well as in the responses.

use axum::http::{Method, StatusCode};
use billow_server::PROBLEM_JSON;
use serde_json::{json, Value};

use crate::helpers::{on_both_backends, TestApi, TestResponse};

fn team(external_id: &str) -> Value {
    json!({"external_id": external_id, "name": "Team 42", "currency": "EUR"})
}

/// The `(field, reason)` pairs of a 422 validation problem.
fn field_errors(response: &TestResponse) -> Vec<String> {
    assert_eq!(
        response.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        response.body
    );
    assert_eq!(response.content_type(), PROBLEM_JSON);
    let problem = response.json();
    assert_eq!(problem["type"], "urn:billow:problem:validation");
    assert_eq!(problem["status"], 422);
    problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| {
            assert!(error["reason"].as_str().is_some_and(|r| !r.is_empty()));
            error["field"].as_str().unwrap().to_owned()
        })
        .collect()
}

async fn a_customer_is_created_with_every_field_and_read_back(api: &TestApi) {
    let (workspace_id, key) = api.workspace_key("Acme").await;
    let parent = api.create_customer(&key, team("org-1")).await;
    let body = json!({
        "external_id": "team-42",
        "name": "Team 42",
        "email": "billing@team42.example",
        "address": {"line1": "Hauptstr. 1", "city": "Berlin", "postal_code": "10115", "country": "DE"},
        "tax_ids": [{"type": "eu_vat", "value": "DE123456789"}],
        "currency": "eur",
        "time_zone": "Europe/Berlin",
        "billing_cycle_day": 31,
        "parent_id": parent["id"],
    });

    let created = api
        .call(Method::POST, "/api/v1/customers", Some(&key), Some(body))
        .await;

    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let customer = created.json();
    let id = customer["id"].as_str().unwrap();
    assert!(id.starts_with("cus_") && id.len() == 30, "{id}");
    assert_eq!(customer["currency"], "EUR");
    assert_eq!(customer["billing_cycle_day"], 31);
    assert_eq!(customer["address"]["country"], "DE");
    assert_eq!(customer["address"]["line2"], Value::Null);
    assert_eq!(
        customer["tax_ids"],
        json!([{"type": "eu_vat", "value": "DE123456789"}])
    );
    assert_eq!(customer["parent_id"], parent["id"]);
    let fetched = api
        .call(
            Method::GET,
            &format!("/api/v1/customers/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.json(), customer);
    let stored = api
        .store
        .customer(&workspace_id, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.time_zone, "Europe/Berlin");
    assert_eq!(stored.currency.code(), "EUR");
    assert_eq!(stored.email.as_deref(), Some("billing@team42.example"));
    let by_external_id = api
        .store
        .customer_by_external_id(&workspace_id, "team-42")
        .await
        .unwrap();
    assert_eq!(by_external_id, Some(stored));
}

async fn omitted_fields_take_their_defaults(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;

    let customer = api.create_customer(&key, team("team-1")).await;

    assert_eq!(customer["time_zone"], "UTC");
    assert_eq!(customer["billing_cycle_day"], 1);
    assert_eq!(customer["email"], Value::Null);
    assert_eq!(customer["address"], Value::Null);
    assert_eq!(customer["tax_ids"], json!([]));
    assert_eq!(customer["parent_id"], Value::Null);
}

async fn every_invalid_field_of_a_new_customer_is_named(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            json!({"external_id": "", "name": "A", "currency": "EUR"}),
            vec!["external_id"],
        ),
        (
            json!({"external_id": " x", "name": "A", "currency": "EUR"}),
            vec!["external_id"],
        ),
        (
            json!({"external_id": "x", "name": "A".repeat(256), "currency": "EUR"}),
            vec!["name"],
        ),
        (
            json!({"external_id": "x", "name": "A\u{7}", "currency": "EUR"}),
            vec!["name"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR", "email": "nope"}),
            vec!["email"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR", "email": "a@b"}),
            vec!["email"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "EURO"}),
            vec!["currency"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "ABC"}),
            vec!["currency"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR", "time_zone": "Mars/Olympus"}),
            vec!["time_zone"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR", "billing_cycle_day": 0}),
            vec!["billing_cycle_day"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR", "billing_cycle_day": 32}),
            vec!["billing_cycle_day"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR", "billing_cycle_day": 1000}),
            vec!["billing_cycle_day"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR", "parent_id": "cus_unknown"}),
            vec!["parent_id"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR", "address": {"country": "Germany"}}),
            vec!["address.country"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR", "address": {"city": ""}}),
            vec!["address.city"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR", "address": {"planet": "Earth"}}),
            vec!["address.planet"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR",
                   "tax_ids": [{"type": "eu_vat", "value": "DE1"}, {"type": "EU VAT", "value": ""}]}),
            vec!["tax_ids[1].type", "tax_ids[1].value"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR",
                   "tax_ids": (0..11).map(|i| json!({"type": "eu_vat", "value": format!("DE{i}")})).collect::<Vec<_>>()}),
            vec!["tax_ids"],
        ),
        // Wrong JSON types and missing or unknown fields are named too.
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR", "billing_cycle_day": "first"}),
            vec!["billing_cycle_day"],
        ),
        (
            json!({"external_id": "x", "name": 7, "currency": "EUR"}),
            vec!["name"],
        ),
        (json!({"external_id": "x", "currency": "EUR"}), vec!["name"]),
        (json!({"external_id": "x", "name": "A"}), vec!["currency"]),
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR", "colour": "red"}),
            vec!["colour"],
        ),
        (
            json!({"external_id": "x", "name": "A", "currency": "EUR", "tax_ids": [{"type": "eu_vat"}]}),
            vec!["tax_ids[0].value"],
        ),
        // Several at once.
        (
            json!({"external_id": "", "name": "", "currency": "EURO", "time_zone": "Nowhere"}),
            vec!["external_id", "name", "currency", "time_zone"],
        ),
    ];

    for (body, fields) in cases {
        let response = api
            .call(
                Method::POST,
                "/api/v1/customers",
                Some(&key),
                Some(body.clone()),
            )
            .await;
        assert_eq!(field_errors(&response), fields, "{body}");
    }
    let page = api
        .call(Method::GET, "/api/v1/customers", Some(&key), None)
        .await
        .json();
    assert_eq!(page["data"], json!([]), "nothing was stored");
}

async fn malformed_json_is_a_400_problem(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;

    for body in [
        r#"{"external_id": "x", "#,
        "not json",
        r#"{"external_id": "x"} trailing"#,
        "",
    ] {
        let response = api
            .call_raw(
                Method::POST,
                "/api/v1/customers",
                Some(&key),
                &[],
                Some(body.into()),
            )
            .await;

        assert_eq!(
            response.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            response.body
        );
        assert_eq!(response.content_type(), PROBLEM_JSON);
        assert_eq!(response.json()["type"], "urn:billow:problem:malformed-json");
    }
}

async fn a_taken_external_id_is_a_409_within_a_workspace_only(api: &TestApi) {
    let (workspace_a, key_a) = api.workspace_key("Acme").await;
    let (_, key_b) = api.workspace_key("Globex").await;
    api.create_customer(&key_a, team("team-42")).await;

    let again = api
        .call(
            Method::POST,
            "/api/v1/customers",
            Some(&key_a),
            Some(team("team-42")),
        )
        .await;
    let elsewhere = api
        .call(
            Method::POST,
            "/api/v1/customers",
            Some(&key_b),
            Some(team("team-42")),
        )
        .await;

    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.content_type(), PROBLEM_JSON);
    assert_eq!(again.json()["type"], "urn:billow:problem:already-exists");
    assert!(again.json()["detail"].as_str().unwrap().contains("team-42"));
    assert_eq!(elsewhere.status, StatusCode::CREATED);
    let page = api.store.customers(&workspace_a, 100, None).await.unwrap();
    assert_eq!(page.items.len(), 1);
}

async fn an_unknown_customer_is_a_404_problem(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;

    for (method, path, body) in [
        (Method::GET, "/api/v1/customers/cus_nothing", None),
        (
            Method::PATCH,
            "/api/v1/customers/cus_nothing",
            Some(json!({"name": "B"})),
        ),
        (Method::GET, "/api/v1/customers/cus_nothing/projects", None),
        (
            Method::POST,
            "/api/v1/customers/cus_nothing/projects",
            Some(json!({"name": "p"})),
        ),
        (
            Method::POST,
            "/api/v1/customers/cus_nothing/tokens",
            Some(json!({})),
        ),
    ] {
        let response = api.call(method.clone(), path, Some(&key), body).await;

        assert_eq!(response.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(response.content_type(), PROBLEM_JSON);
        assert_eq!(response.json()["type"], "urn:billow:problem:not-found");
        assert_eq!(
            response.json()["detail"],
            "No customer has the id cus_nothing."
        );
    }
}

async fn customers_are_listed_in_pages_in_creation_order(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let mut created = Vec::new();
    for index in 0..5 {
        let customer = api
            .create_customer(&key, team(&format!("team-{index}")))
            .await;
        created.push(customer["id"].as_str().unwrap().to_owned());
    }

    let mut listed = Vec::new();
    let mut path = "/api/v1/customers?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = api.call(Method::GET, &path, Some(&key), None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let page = page.json();
        pages += 1;
        let ids: Vec<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|customer| customer["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(ids.len() <= 2);
        listed.extend(ids.iter().cloned());
        if page["has_more"] == json!(false) {
            assert_eq!(page["next_cursor"], Value::Null);
            break;
        }
        assert_eq!(page["next_cursor"].as_str(), ids.last().map(String::as_str));
        path = format!(
            "/api/v1/customers?limit=2&starting_after={}",
            page["next_cursor"].as_str().unwrap()
        );
    }

    assert_eq!(listed, created);
    assert_eq!(pages, 3);
    let default_page = api
        .call(Method::GET, "/api/v1/customers", Some(&key), None)
        .await
        .json();
    assert_eq!(default_page["data"].as_array().unwrap().len(), 5);
    assert_eq!(default_page["has_more"], false);
    let exact = api
        .call(Method::GET, "/api/v1/customers?limit=5", Some(&key), None)
        .await
        .json();
    assert_eq!(
        exact["has_more"], false,
        "no more after exactly `limit` items"
    );
}

async fn a_customer_is_found_by_its_external_id(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let (_, other_key) = api.workspace_key("Globex").await;
    api.create_customer(&key, team("team-1")).await;
    let wanted = api.create_customer(&key, team("team-2")).await;
    api.create_customer(&other_key, team("team-3")).await;

    let found = api
        .call(
            Method::GET,
            "/api/v1/customers?external_id=team-2",
            Some(&key),
            None,
        )
        .await;
    let elsewhere = api
        .call(
            Method::GET,
            "/api/v1/customers?external_id=team-3",
            Some(&key),
            None,
        )
        .await;

    assert_eq!(found.status, StatusCode::OK);
    assert_eq!(
        found.json(),
        json!({"data": [wanted], "has_more": false, "next_cursor": null})
    );
    assert_eq!(elsewhere.json()["data"], json!([]));
}

async fn a_page_size_outside_1_to_100_is_a_422_naming_limit(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;

    for limit in ["0", "101", "1000", "-1", "ten"] {
        let response = api
            .call(
                Method::GET,
                &format!("/api/v1/customers?limit={limit}"),
                Some(&key),
                None,
            )
            .await;

        assert_eq!(field_errors(&response), ["limit"], "limit={limit}");
    }
    let largest = api
        .call(Method::GET, "/api/v1/customers?limit=100", Some(&key), None)
        .await;
    assert_eq!(largest.status, StatusCode::OK);
}

async fn a_patch_replaces_the_given_fields_and_null_clears(api: &TestApi) {
    let (workspace_id, key) = api.workspace_key("Acme").await;
    let customer = api
        .create_customer(
            &key,
            json!({"external_id": "team-1", "name": "Team", "currency": "EUR",
                   "email": "a@team.example", "address": {"country": "DE"}}),
        )
        .await;
    let path = format!("/api/v1/customers/{}", customer["id"].as_str().unwrap());

    let updated = api
        .call(
            Method::PATCH,
            &path,
            Some(&key),
            Some(
                json!({"name": "Team One", "email": null, "billing_cycle_day": 15,
                        "time_zone": "America/New_York", "currency": "usd"}),
            ),
        )
        .await;

    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let updated = updated.json();
    assert_eq!(updated["name"], "Team One");
    assert_eq!(updated["email"], Value::Null);
    assert_eq!(
        updated["address"]["country"], "DE",
        "absent fields are kept"
    );
    assert_eq!(updated["currency"], "USD");
    let stored = api
        .store
        .customer(&workspace_id, customer["id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.name, "Team One");
    assert_eq!(stored.billing_cycle_day, 15);
    assert_eq!(stored.time_zone, "America/New_York");
    assert_eq!(stored.email, None);
}

async fn every_invalid_field_of_a_patch_is_named(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let parent = api.create_customer(&key, team("parent")).await;
    let parent_id = parent["id"].as_str().unwrap();
    let child = api
        .create_customer(
            &key,
            json!({"external_id": "child", "name": "C", "currency": "EUR", "parent_id": parent_id}),
        )
        .await;
    let child_id = child["id"].as_str().unwrap();
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (json!({"name": ""}), vec!["name"]),
        (json!({"external_id": null}), vec!["external_id"]),
        (json!({"currency": "EURO"}), vec!["currency"]),
        (json!({"time_zone": "Europe/Atlantis"}), vec!["time_zone"]),
        (json!({"billing_cycle_day": 0}), vec!["billing_cycle_day"]),
        (json!({"email": "@"}), vec!["email"]),
        (
            json!({"address": {"country": "de"}}),
            vec!["address.country"],
        ),
        (
            json!({"tax_ids": [{"type": "", "value": "1"}]}),
            vec!["tax_ids[0].type"],
        ),
        (json!({"parent_id": "cus_unknown"}), vec!["parent_id"]),
        (json!({"id": "cus_other"}), vec!["id"]),
    ];

    for (body, fields) in cases {
        let response = api
            .call(
                Method::PATCH,
                &format!("/api/v1/customers/{child_id}"),
                Some(&key),
                Some(body.clone()),
            )
            .await;
        assert_eq!(field_errors(&response), fields, "{body}");
    }
    // A parent may become neither its child's child nor its own parent.
    let cycle = api
        .call(
            Method::PATCH,
            &format!("/api/v1/customers/{parent_id}"),
            Some(&key),
            Some(json!({"parent_id": child_id})),
        )
        .await;
    assert_eq!(field_errors(&cycle), ["parent_id"]);
    let self_parent = api
        .call(
            Method::PATCH,
            &format!("/api/v1/customers/{parent_id}"),
            Some(&key),
            Some(json!({"parent_id": parent_id})),
        )
        .await;
    assert_eq!(field_errors(&self_parent), ["parent_id"]);
    let taken = api
        .call(
            Method::PATCH,
            &format!("/api/v1/customers/{child_id}"),
            Some(&key),
            Some(json!({"external_id": "parent"})),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    let unchanged = api
        .call(
            Method::GET,
            &format!("/api/v1/customers/{child_id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(unchanged.json(), child);
}

async fn projects_form_a_tree_under_one_customer(api: &TestApi) {
    let (workspace_id, key) = api.workspace_key("Acme").await;
    let customer = api.create_customer(&key, team("akkeris-org")).await;
    let other = api.create_customer(&key, team("other")).await;
    let projects = format!(
        "/api/v1/customers/{}/projects",
        customer["id"].as_str().unwrap()
    );
    let other_projects = format!(
        "/api/v1/customers/{}/projects",
        other["id"].as_str().unwrap()
    );

    let root = api
        .call(
            Method::POST,
            &projects,
            Some(&key),
            Some(json!({"name": "production"})),
        )
        .await;
    assert_eq!(root.status, StatusCode::CREATED, "{}", root.body);
    let root = root.json();
    let space = api
        .call(
            Method::POST,
            &projects,
            Some(&key),
            Some(json!({"name": "space-eu", "parent_id": root["id"]})),
        )
        .await;
    assert_eq!(space.status, StatusCode::CREATED, "{}", space.body);
    let space = space.json();
    let foreign_parent = api
        .call(
            Method::POST,
            &other_projects,
            Some(&key),
            Some(json!({"name": "x", "parent_id": root["id"]})),
        )
        .await;
    let unknown_parent = api
        .call(
            Method::POST,
            &projects,
            Some(&key),
            Some(json!({"name": "x", "parent_id": "prj_none"})),
        )
        .await;
    let no_name = api
        .call(
            Method::POST,
            &projects,
            Some(&key),
            Some(json!({"name": ""})),
        )
        .await;

    assert!(root["id"].as_str().unwrap().starts_with("prj_"));
    assert_eq!(root["parent_id"], Value::Null);
    assert_eq!(space["parent_id"], root["id"]);
    assert_eq!(space["customer_id"], customer["id"]);
    assert_eq!(field_errors(&foreign_parent), ["parent_id"]);
    assert_eq!(field_errors(&unknown_parent), ["parent_id"]);
    assert_eq!(field_errors(&no_name), ["name"]);
    let listed = api.call(Method::GET, &projects, Some(&key), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    // Every project in one page of the list envelope.
    assert_eq!(
        listed.json(),
        json!({"data": [root, space], "has_more": false, "next_cursor": null})
    );
    let stored = api
        .store
        .projects(&workspace_id, customer["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        api.store
            .project(&workspace_id, space["id"].as_str().unwrap())
            .await
            .unwrap()
            .unwrap()
            .parent_id
            .as_deref(),
        root["id"].as_str()
    );
    let other_listed = api
        .call(Method::GET, &other_projects, Some(&key), None)
        .await;
    assert_eq!(
        other_listed.json(),
        json!({"data": [], "has_more": false, "next_cursor": null})
    );
}

async fn a_body_over_10_mib_is_a_413_problem(api: &TestApi) {
    let (_, key) = api.workspace_key("Acme").await;
    let name = "n".repeat(10 * 1024 * 1024);
    let body = json!({"external_id": "big", "name": name, "currency": "EUR"}).to_string();
    let length = body.len().to_string();

    let declared = api
        .call_raw(
            Method::POST,
            "/api/v1/customers",
            Some(&key),
            &[("content-length", length.as_str())],
            Some(body.clone()),
        )
        .await;
    let streamed = api
        .call_raw(
            Method::POST,
            "/api/v1/customers",
            Some(&key),
            &[],
            Some(body.clone()),
        )
        .await;
    let idempotent = api
        .call_raw(
            Method::POST,
            "/api/v1/customers",
            Some(&key),
            &[("idempotency-key", "big")],
            Some(body),
        )
        .await;

    for response in [declared, streamed, idempotent] {
        assert_eq!(
            response.status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{}",
            response.body
        );
        assert_eq!(response.content_type(), PROBLEM_JSON);
        assert_eq!(
            response.json()["type"],
            "urn:billow:problem:payload-too-large"
        );
    }
    let page = api
        .call(Method::GET, "/api/v1/customers", Some(&key), None)
        .await;
    assert_eq!(page.json()["data"], json!([]));
}

on_both_backends!(
    a_body_over_10_mib_is_a_413_problem,
    a_customer_is_created_with_every_field_and_read_back,
    omitted_fields_take_their_defaults,
    every_invalid_field_of_a_new_customer_is_named,
    malformed_json_is_a_400_problem,
    a_taken_external_id_is_a_409_within_a_workspace_only,
    an_unknown_customer_is_a_404_problem,
    customers_are_listed_in_pages_in_creation_order,
    a_page_size_outside_1_to_100_is_a_422_naming_limit,
    a_customer_is_found_by_its_external_id,
    a_patch_replaces_the_given_fields_and_null_clears,
    every_invalid_field_of_a_patch_is_named,
    projects_form_a_tree_under_one_customer,
);
