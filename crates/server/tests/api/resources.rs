//! `/api/v1/resources`: billed resources created, read, listed, changed and deleted through the
//! API on both backends; every bad input a problem naming its field (or the resource), with its
//! status; customer tokens read only their own customer's resources.

use axum::http::{Method, StatusCode};
use billow_server::PROBLEM_JSON;
use billow_store::WorkspaceId;
use serde_json::{json, Value};

use crate::helpers::{on_both_backends, TestApi, TestResponse};

/// The test clock's start (`helpers::TEST_START`) as a response writes it: six fractional digits.
const TEST_START_SHOWN: &str = "2026-11-22T08:00:00.000000Z";

/// What a test works with: a workspace key, two customers, a project of the first, and the
/// Akkeris add-on plan (140 a month, prorated by the day).
struct World {
    workspace: WorkspaceId,
    key: String,
    customer: String,
    other_customer: String,
    project: String,
    plan_id: String,
    plan_version_id: String,
}

fn addon_plan(unit_amount: &str) -> Value {
    json!({
        "key": "alamo-redis-small",
        "cadence": "monthly",
        "currency": "USD",
        "prices": [{
            "key": "addon",
            "description": "alamo-redis:small",
            "pricing": {"model": "per_unit", "unit_amount": unit_amount},
            "billing": "in_arrears",
            "proration_unit": "day"
        }]
    })
}

async fn arrange(api: &TestApi) -> World {
    let (workspace, key) = api.workspace_key("Akkeris").await;
    let customer = api
        .create_customer(
            &key,
            json!({"external_id": "acct-1", "name": "Account 1", "currency": "USD"}),
        )
        .await;
    let other = api
        .create_customer(
            &key,
            json!({"external_id": "acct-2", "name": "Account 2", "currency": "USD"}),
        )
        .await;
    let customer = customer["id"].as_str().unwrap().to_owned();
    let project = post(
        api,
        &key,
        &format!("/api/v1/customers/{customer}/projects"),
        json!({"name": "org"}),
    )
    .await;
    assert_eq!(project.status, StatusCode::CREATED, "{}", project.body);
    let plan = post(api, &key, "/api/v1/plans", addon_plan("140")).await;
    assert_eq!(plan.status, StatusCode::CREATED, "{}", plan.body);
    let plan = plan.json();
    World {
        workspace,
        key,
        customer,
        other_customer: other["id"].as_str().unwrap().to_owned(),
        project: project.json()["id"].as_str().unwrap().to_owned(),
        plan_id: plan["id"].as_str().unwrap().to_owned(),
        plan_version_id: plan["current_version"]["id"].as_str().unwrap().to_owned(),
    }
}

async fn post(api: &TestApi, key: &str, path: &str, body: Value) -> TestResponse {
    api.call(Method::POST, path, Some(key), Some(body)).await
}

async fn get(api: &TestApi, key: &str, path: &str) -> TestResponse {
    api.call(Method::GET, path, Some(key), None).await
}

/// The add-on of the seed's Akkeris invoice, with every field.
fn addon(world: &World) -> Value {
    json!({
        "customer_id": world.customer,
        "plan": "alamo-redis-small",
        "quantity": "1",
        "project_id": world.project,
        "kind": "addon",
        "name": "app-space",
        "dimensions": {"app": "app-space", "space": "space", "organization": "org"},
        "external_id": "addon-alamo-redis",
        "created_at": "2016-08-15T19:02:02.781Z"
    })
}

/// Creates `body`; panics unless 201. Returns the resource.
async fn create(api: &TestApi, world: &World, body: Value) -> Value {
    let response = post(api, &world.key, "/api/v1/resources", body).await;
    assert_eq!(response.status, StatusCode::CREATED, "{}", response.body);
    response.json()
}

/// The `field`s of a problem of `status`.
fn problem_fields(response: &TestResponse, status: StatusCode) -> Vec<String> {
    assert_eq!(response.status, status, "{}", response.body);
    assert_eq!(response.content_type(), PROBLEM_JSON);
    let problem = response.json();
    assert_eq!(problem["status"], status.as_u16());
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|error| {
                    assert!(error["reason"].as_str().is_some_and(|r| !r.is_empty()));
                    error["field"].as_str().unwrap().to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `GET /api/v1/resources?{query}`; panics unless 200. Returns the page.
async fn list(api: &TestApi, key: &str, query: &str) -> Value {
    let response = get(api, key, &format!("/api/v1/resources?{query}")).await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    response.json()
}

async fn a_resource_is_created_read_listed_changed_and_deleted(api: &TestApi) {
    let world = arrange(api).await;

    let created = create(api, &world, addon(&world)).await;

    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("res_") && id.len() == 30, "{id}");
    assert_eq!(
        created,
        json!({
            "id": id,
            "customer_id": world.customer,
            "project_id": world.project,
            "plan_id": world.plan_id,
            "plan_version_id": world.plan_version_id,
            "quantity": "1",
            "current_quantity": "1",
            "quantity_changes": [],
            "created_at": "2016-08-15T19:02:02.781000Z",
            "deleted_at": null,
            "kind": "addon",
            "name": "app-space",
            "dimensions": {"app": "app-space", "organization": "org", "space": "space"},
            "external_id": "addon-alamo-redis"
        })
    );
    let fetched = get(api, &world.key, &format!("/api/v1/resources/{id}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.json(), created);

    let changed = post(
        api,
        &world.key,
        &format!("/api/v1/resources/{id}/quantity"),
        json!({"quantity": 2.5, "at": "2017-01-10T00:00:00Z"}),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(changed.json()["quantity"], "1");
    assert_eq!(changed.json()["current_quantity"], "2.5");
    assert_eq!(
        changed.json()["quantity_changes"],
        json!([{"at": "2017-01-10T00:00:00.000000Z", "quantity": "2.5"}])
    );

    let deleted = post(
        api,
        &world.key,
        &format!("/api/v1/resources/{id}/delete"),
        json!({"deleted_at": "2017-02-05T22:16:56.616Z"}),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.json()["deleted_at"], "2017-02-05T22:16:56.616000Z");

    // What the store holds is what a billing run reads.
    let stored = api
        .store
        .resources_of_customers(&world.workspace, &[world.customer.as_str().into()])
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    let spec = stored[0].to_spec();
    assert_eq!(spec.plan, world.plan_version_id);
    assert_eq!(spec.project.as_deref(), Some(world.project.as_str()));
    assert_eq!(
        spec.deleted_at,
        Some("2017-02-05T22:16:56.616Z".parse().unwrap())
    );
    assert_eq!(spec.quantity_changes[0].quantity.to_string(), "2.5");
}

async fn a_resource_defaults_to_one_unit_created_now_on_the_plans_current_version(api: &TestApi) {
    let world = arrange(api).await;
    let before_edit = create(
        api,
        &world,
        json!({"customer_id": world.customer, "plan": world.plan_id}),
    )
    .await;
    let edited = api
        .call(
            Method::PUT,
            &format!("/api/v1/plans/{}", world.plan_id),
            Some(&world.key),
            Some(addon_plan("150")),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);

    let after_edit = create(
        api,
        &world,
        json!({"customer_id": world.customer, "plan": "alamo-redis-small", "quantity": 0}),
    )
    .await;

    assert_eq!(before_edit["quantity"], "1");
    assert_eq!(before_edit["created_at"], TEST_START_SHOWN);
    assert_eq!(before_edit["project_id"], Value::Null);
    assert_eq!(before_edit["kind"], Value::Null);
    assert_eq!(before_edit["external_id"], Value::Null);
    assert_eq!(before_edit["dimensions"], json!({}));
    assert_eq!(before_edit["plan_version_id"], world.plan_version_id);
    // A resource keeps the version it was created on; a new one gets the plan's new version.
    assert_eq!(after_edit["quantity"], "0");
    assert_eq!(after_edit["plan_id"], world.plan_id);
    assert_eq!(
        after_edit["plan_version_id"],
        edited.json()["current_version"]["id"]
    );
    assert_ne!(after_edit["plan_version_id"], world.plan_version_id);
    let id = before_edit["id"].as_str().unwrap();
    let unchanged = get(api, &world.key, &format!("/api/v1/resources/{id}")).await;
    assert_eq!(unchanged.json()["plan_version_id"], world.plan_version_id);
}

async fn bad_input_to_create_is_a_problem_naming_the_field(api: &TestApi) {
    let world = arrange(api).await;
    let other_project = post(
        api,
        &world.key,
        &format!("/api/v1/customers/{}/projects", world.other_customer),
        json!({"name": "elsewhere"}),
    )
    .await
    .json();
    let with = |field: &str, value: Value| {
        let mut body = addon(&world);
        body[field] = value;
        body
    };
    let long = "x".repeat(256);
    let cases = [
        (with("customer_id", json!("cus_none")), "customer_id"),
        (with("plan", json!("no-such-plan")), "plan"),
        (with("project_id", json!("prj_none")), "project_id"),
        (
            with("project_id", other_project["id"].clone()),
            "project_id",
        ),
        (with("quantity", json!("-1")), "quantity"),
        (with("quantity", json!(-0.5)), "quantity"),
        (with("quantity", json!("many")), "quantity"),
        (
            with("deleted_at", json!("2016-08-15T19:02:02.780Z")),
            "deleted_at",
        ),
        (with("created_at", json!("yesterday")), "created_at"),
        (with("name", json!(long)), "name"),
        (with("kind", json!(long)), "kind"),
        (with("external_id", json!(long)), "external_id"),
        (with("name", json!("")), "name"),
        (with("dimensions", json!({"app": long})), "dimensions.app"),
        (with("dimensions", json!({"app": 7})), "dimensions.app"),
        (with("colour", json!("blue")), "colour"),
    ];
    for (body, field) in cases {
        let response = post(api, &world.key, "/api/v1/resources", body.clone()).await;

        let fields = problem_fields(&response, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(fields, [field], "{body}: {}", response.body);
        assert_eq!(response.json()["type"], "urn:billow:problem:validation");
    }
    let too_many: serde_json::Map<String, Value> = (0..33)
        .map(|index| (format!("d{index}"), json!("v")))
        .collect();
    let response = post(
        api,
        &world.key,
        "/api/v1/resources",
        with("dimensions", Value::Object(too_many)),
    )
    .await;
    assert_eq!(
        problem_fields(&response, StatusCode::UNPROCESSABLE_ENTITY),
        ["dimensions"]
    );
    // Several bad fields are reported together.
    let mut several = with("customer_id", json!("cus_none"));
    several["plan"] = json!("no-such-plan");
    several["quantity"] = json!(-1);
    let response = post(api, &world.key, "/api/v1/resources", several).await;
    let mut fields = problem_fields(&response, StatusCode::UNPROCESSABLE_ENTITY);
    fields.sort();
    assert_eq!(fields, ["customer_id", "plan", "quantity"]);
    // Nothing was stored by any of them.
    let listed = get(
        api,
        &world.key,
        &format!("/api/v1/resources?customer_id={}", world.customer),
    )
    .await;
    assert_eq!(listed.json()["data"], json!([]));

    create(api, &world, addon(&world)).await;
    let taken = post(api, &world.key, "/api/v1/resources", addon(&world)).await;
    assert_eq!(
        problem_fields(&taken, StatusCode::CONFLICT),
        ["external_id"]
    );
    assert_eq!(taken.json()["type"], "urn:billow:problem:already-exists");
}

async fn changes_and_deletions_are_refused_naming_the_field_or_the_resource(api: &TestApi) {
    let world = arrange(api).await;
    let id = create(api, &world, addon(&world)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let quantity_path = format!("/api/v1/resources/{id}/quantity");
    let delete_path = format!("/api/v1/resources/{id}/delete");
    let changed = post(
        api,
        &world.key,
        &quantity_path,
        json!({"quantity": "2", "at": "2016-10-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);

    let quantity_cases = [
        (
            json!({"quantity": "-1", "at": "2016-11-01T00:00:00Z"}),
            "quantity",
        ),
        (json!({"quantity": "x"}), "quantity"),
        (json!({"at": "2016-11-01T00:00:00Z"}), "quantity"),
        (
            json!({"quantity": 1, "at": "2016-08-15T19:02:02.780Z"}),
            "at",
        ),
        (json!({"quantity": 1, "at": "2016-09-30T23:59:59Z"}), "at"),
        (json!({"quantity": 1, "at": "soon"}), "at"),
    ];
    for (body, field) in quantity_cases {
        let response = post(api, &world.key, &quantity_path, body.clone()).await;
        assert_eq!(
            problem_fields(&response, StatusCode::UNPROCESSABLE_ENTITY),
            [field],
            "{body}"
        );
    }
    let delete_cases = [
        json!({"deleted_at": "2016-08-15T19:02:02.780Z"}),
        json!({"deleted_at": "2016-09-30T23:59:59Z"}),
    ];
    for body in delete_cases {
        let response = post(api, &world.key, &delete_path, body.clone()).await;
        assert_eq!(
            problem_fields(&response, StatusCode::UNPROCESSABLE_ENTITY),
            ["deleted_at"],
            "{body}"
        );
    }

    // An empty body deletes now (the test clock).
    let deleted = api
        .call_raw(Method::POST, &delete_path, Some(&world.key), &[], None)
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.json()["deleted_at"], TEST_START_SHOWN);
    let again = post(
        api,
        &world.key,
        &delete_path,
        json!({"deleted_at": "2027-01-01T00:00:00Z"}),
    )
    .await;
    assert!(problem_fields(&again, StatusCode::CONFLICT).is_empty());
    let problem = again.json();
    assert_eq!(problem["type"], "urn:billow:problem:invalid-state");
    assert!(
        problem["detail"].as_str().unwrap().contains(&id),
        "{problem}"
    );
    let after_deletion = post(
        api,
        &world.key,
        &quantity_path,
        json!({"quantity": 3, "at": "2027-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        problem_fields(&after_deletion, StatusCode::UNPROCESSABLE_ENTITY),
        ["at"]
    );
    let stored = get(api, &world.key, &format!("/api/v1/resources/{id}"))
        .await
        .json();
    assert_eq!(stored["deleted_at"], TEST_START_SHOWN);
    assert_eq!(stored["quantity_changes"].as_array().unwrap().len(), 1);

    for (method, path, body) in [
        (Method::GET, "/api/v1/resources/res_none".to_owned(), None),
        (
            Method::POST,
            "/api/v1/resources/res_none/quantity".to_owned(),
            Some(json!({"quantity": 1})),
        ),
        (
            Method::POST,
            "/api/v1/resources/res_none/delete".to_owned(),
            Some(json!({})),
        ),
    ] {
        let response = api.call(method, &path, Some(&world.key), body).await;
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(response.content_type(), PROBLEM_JSON);
        assert_eq!(
            response.json()["detail"],
            "No resource has the id res_none."
        );
    }
}

async fn a_retried_deletion_with_its_idempotency_key_gets_the_first_answer(api: &TestApi) {
    let world = arrange(api).await;
    let id = create(api, &world, addon(&world)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/resources/{id}/delete");
    let body = json!({"deleted_at": "2017-02-01T00:00:00Z"}).to_string();
    let headers = [("idempotency-key", "delete-addon-1")];

    let first = api
        .call_raw(
            Method::POST,
            &path,
            Some(&world.key),
            &headers,
            Some(body.clone()),
        )
        .await;
    let retry = api
        .call_raw(Method::POST, &path, Some(&world.key), &headers, Some(body))
        .await;

    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.body);
    assert_eq!(retry.body, first.body);
    assert_eq!(retry.headers.get("idempotent-replayed").unwrap(), "true");
}

async fn lists_are_paged_and_filtered_by_the_instant_resources_were_alive_at(api: &TestApi) {
    let world = arrange(api).await;
    let mut ids = Vec::new();
    for (created_at, deleted_at) in [
        ("2016-07-26T15:47:33.411Z", None),
        ("2016-08-15T19:02:02.781Z", Some("2016-12-01T00:00:00Z")),
        ("2017-01-01T00:00:00Z", None),
    ] {
        let body = json!({"customer_id": world.customer, "plan": "alamo-redis-small",
                          "created_at": created_at, "deleted_at": deleted_at});
        ids.push(
            create(api, &world, body).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    create(
        api,
        &world,
        json!({"customer_id": world.other_customer, "plan": "alamo-redis-small"}),
    )
    .await;
    let page_ids = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|resource| resource["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let customer = &world.customer;

    let first = list(api, &world.key, &format!("customer_id={customer}&limit=2")).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = list(
        api,
        &world.key,
        &format!("customer_id={customer}&limit=2&starting_after={cursor}"),
    )
    .await;
    let in_november = list(
        api,
        &world.key,
        &format!("customer_id={customer}&alive_at=2016-11-15T00:00:00Z"),
    )
    .await;
    let at_deletion = list(
        api,
        &world.key,
        &format!("customer_id={customer}&alive_at=2016-12-01T00:00:00Z"),
    )
    .await;
    let before_any = list(
        api,
        &world.key,
        &format!("customer_id={customer}&alive_at=2016-01-01T00:00:00Z"),
    )
    .await;

    assert_eq!(page_ids(&first), ids[..2]);
    assert_eq!(first["has_more"], true);
    assert_eq!(first["next_cursor"], ids[1].as_str());
    // Listed instants as every response writes them, whatever precision they were sent at.
    assert_eq!(
        first["data"][0]["created_at"],
        "2016-07-26T15:47:33.411000Z"
    );
    assert_eq!(
        first["data"][1]["deleted_at"],
        "2016-12-01T00:00:00.000000Z"
    );
    assert_eq!(
        second["data"][0]["created_at"],
        "2017-01-01T00:00:00.000000Z"
    );
    assert_eq!(page_ids(&second), ids[2..]);
    assert_eq!(second["has_more"], false);
    assert_eq!(second["next_cursor"], Value::Null);
    assert_eq!(page_ids(&in_november), ids[..2]);
    assert_eq!(page_ids(&at_deletion), [ids[0].clone()]);
    assert!(page_ids(&before_any).is_empty());

    for (query, field) in [
        (String::new(), "customer_id"),
        ("customer_id=cus_none".to_owned(), "customer_id"),
        (
            format!("customer_id={customer}&alive_at=tomorrow"),
            "alive_at",
        ),
        (format!("customer_id={customer}&limit=101"), "limit"),
    ] {
        let response = get(api, &world.key, &format!("/api/v1/resources?{query}")).await;
        assert_eq!(
            problem_fields(&response, StatusCode::UNPROCESSABLE_ENTITY),
            [field],
            "{query}"
        );
    }
}

async fn a_customer_token_reads_only_its_own_customers_resources(api: &TestApi) {
    let world = arrange(api).await;
    let own = create(api, &world, addon(&world)).await;
    let foreign = create(
        api,
        &world,
        json!({"customer_id": world.other_customer, "plan": "alamo-redis-small"}),
    )
    .await;
    let token = post(
        api,
        &world.key,
        &format!("/api/v1/customers/{}/tokens", world.customer),
        json!({}),
    )
    .await;
    assert_eq!(token.status, StatusCode::CREATED, "{}", token.body);
    let token = token.json()["token"].as_str().unwrap().to_owned();

    let own_read = get(
        api,
        &token,
        &format!("/api/v1/resources/{}", own["id"].as_str().unwrap()),
    )
    .await;
    let foreign_read = get(
        api,
        &token,
        &format!("/api/v1/resources/{}", foreign["id"].as_str().unwrap()),
    )
    .await;
    let own_list = get(api, &token, "/api/v1/resources").await;
    let foreign_list = get(
        api,
        &token,
        &format!("/api/v1/resources?customer_id={}", world.other_customer),
    )
    .await;
    let create_attempt = post(api, &token, "/api/v1/resources", addon(&world)).await;
    let delete_attempt = post(
        api,
        &token,
        &format!("/api/v1/resources/{}/delete", own["id"].as_str().unwrap()),
        json!({}),
    )
    .await;

    assert_eq!(own_read.status, StatusCode::OK);
    assert_eq!(own_read.json(), own);
    assert_eq!(foreign_read.status, StatusCode::NOT_FOUND);
    assert_eq!(own_list.status, StatusCode::OK, "{}", own_list.body);
    assert_eq!(own_list.json()["data"], json!([own]));
    assert_eq!(foreign_list.status, StatusCode::NOT_FOUND);
    assert_eq!(create_attempt.status, StatusCode::FORBIDDEN);
    assert_eq!(delete_attempt.status, StatusCode::FORBIDDEN);
    let still = get(
        api,
        &world.key,
        &format!("/api/v1/resources/{}", own["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(still.json()["deleted_at"], Value::Null);
}

/// A CloudEvent of `type` for the customer `acct-1` (by external id) at `time`.
fn event(id: &str, event_type: &str, time: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "akkeris", "type": event_type,
           "subject": "acct-1", "time": time, "data": data})
}

async fn send_events(api: &TestApi, world: &World, events: &Value) -> TestResponse {
    api.call_raw(
        Method::POST,
        "/api/v1/events",
        Some(&world.key),
        &[("content-type", "application/cloudevents-batch+json")],
        Some(events.to_string()),
    )
    .await
}

async fn usage_events_create_change_and_delete_resources_once(api: &TestApi) {
    let world = arrange(api).await;
    let dyno = json!({"external_id": "dyno-web", "plan": "alamo-redis-small", "kind": "dyno",
                      "name": "app-space", "project_id": world.project,
                      "dimensions": {"app": "app-space", "space": "space", "organization": "org"}});
    let events = json!([
        event(
            "e1",
            "billow.resource.created",
            "2016-07-26T15:47:33.411Z",
            dyno
        ),
        event(
            "e2",
            "billow.resource.quantity",
            "2017-01-10T00:00:00Z",
            json!({"external_id": "dyno-web", "quantity": "2"})
        ),
        event(
            "e2b",
            "billow.resource.quantity",
            "2017-01-20T00:00:00Z",
            json!({"external_id": "dyno-web", "quantity": "3"})
        ),
        event(
            "e3",
            "api.request",
            "2017-01-11T00:00:00Z",
            json!({"path": "/"})
        ),
        event(
            "e4",
            "billow.resource.created",
            "2017-01-12T00:00:00Z",
            json!({"external_id": "addon-x", "plan": "no-such-plan"})
        ),
        event(
            "e5",
            "billow.resource.deleted",
            "2016-01-01T00:00:00Z",
            json!({"external_id": "dyno-web"})
        ),
        event(
            "e6",
            "billow.resource.deleted",
            "2017-02-01T00:00:00Z",
            json!({"external_id": "dyno-web"})
        ),
        event(
            "e7",
            "billow.resource.renamed",
            "2017-02-01T00:00:00Z",
            json!({"external_id": "dyno-web"})
        ),
        json!({"specversion": "1.0", "id": "e8", "source": "akkeris",
               "type": "billow.resource.created", "subject": "acct-none",
               "time": "2017-02-01T00:00:00Z", "data": {"external_id": "x", "plan": "alamo-redis-small"}}),
    ]);

    let first = send_events(api, &world, &events).await;
    let retry = send_events(api, &world, &events).await;

    assert_eq!(first.status, StatusCode::ACCEPTED, "{}", first.body);
    let first = first.json();
    assert_eq!(first["accepted"], 5, "{first}");
    assert_eq!(first["duplicates"], 0);
    let refused: Vec<(u64, &str)> = first["errors"]
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
        refused,
        [(4, "data"), (5, "time"), (7, "type"), (8, "subject")],
        "{first}"
    );
    assert!(
        first["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("plan:"),
        "{first}"
    );
    // The retry changes nothing: the events are duplicates, the resource as it was (both
    // quantity changes are taken as done, not only the last).
    assert_eq!(retry.status, StatusCode::ACCEPTED, "{}", retry.body);
    assert_eq!(retry.json()["accepted"], 0);
    assert_eq!(retry.json()["duplicates"], 5);
    // The same events are refused (the early deletion now for the resource being deleted).
    let retry_indices: Vec<u64> = retry.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["index"].as_u64().unwrap())
        .collect();
    assert_eq!(retry_indices, [4, 5, 7, 8]);
    let listed = list(api, &world.key, &format!("customer_id={}", world.customer)).await;
    let resources = listed["data"].as_array().unwrap();
    assert_eq!(resources.len(), 1, "{listed}");
    let resource = &resources[0];
    assert_eq!(resource["external_id"], "dyno-web");
    assert_eq!(resource["kind"], "dyno");
    assert_eq!(resource["project_id"], world.project.as_str());
    assert_eq!(resource["plan_version_id"], world.plan_version_id.as_str());
    assert_eq!(resource["created_at"], "2016-07-26T15:47:33.411000Z");
    assert_eq!(
        resource["quantity_changes"],
        json!([{"at": "2017-01-10T00:00:00.000000Z", "quantity": "2"},
               {"at": "2017-01-20T00:00:00.000000Z", "quantity": "3"}])
    );
    assert_eq!(resource["deleted_at"], "2017-02-01T00:00:00.000000Z");
    assert_eq!(resource["dimensions"]["organization"], "org");
}

on_both_backends!(
    a_resource_is_created_read_listed_changed_and_deleted,
    a_resource_defaults_to_one_unit_created_now_on_the_plans_current_version,
    bad_input_to_create_is_a_problem_naming_the_field,
    changes_and_deletions_are_refused_naming_the_field_or_the_resource,
    a_retried_deletion_with_its_idempotency_key_gets_the_first_answer,
    lists_are_paged_and_filtered_by_the_instant_resources_were_alive_at,
    a_customer_token_reads_only_its_own_customers_resources,
    usage_events_create_change_and_delete_resources_once,
);
