//! The OpenMeter profile (docs/profiles/openmeter.md) against a real server on both backends:
//! ingestion's 204 and exactly-once, events without a time, invalid events refused whole, the
//! meter listing's fields and order, the meter query's windows, subjects, groups and filters as
//! OpenMeter defines them, errors in OpenMeter's problem shape, and what a customer token may do.

use serde_json::{json, Value};

use crate::month::{on_both_databases, BillingApp};

const STRUCTURED: &str = "application/cloudevents+json";
const BATCH: &str = "application/cloudevents-batch+json";
const JSON: &str = "application/json";

fn prompt(id: &str, subject: &str, time: &str, tokens: u64, model: &str) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "llm-gateway", "type": "prompt",
           "subject": subject, "time": time,
           "data": {"tokens": tokens, "model": model, "type": "input"}})
}

/// The meters `tokens_total` (SUM of `$.tokens` by model and type) and `prompts` (COUNT), and
/// the customer `customer-1` (its external id is the events' subject).
async fn arrange(app: &BillingApp) -> Value {
    app.post(
        "/api/v1/meters",
        json!({"key": "tokens_total", "event_type": "prompt", "aggregation": "SUM",
               "value_property": "$.tokens", "group_by": ["model", "type"]}),
    )
    .await;
    app.post(
        "/api/v1/meters",
        json!({"key": "prompts", "event_type": "prompt", "aggregation": "COUNT"}),
    )
    .await;
    app.post(
        "/api/v1/customers",
        json!({"external_id": "customer-1", "name": "Customer 1", "currency": "USD"}),
    )
    .await
}

async fn ingest(app: &BillingApp, content_type: &str, body: Value) -> (u16, String, Value) {
    app.call_with_content_type(
        &app.key,
        "POST",
        "/openmeter/api/v1/events",
        Some(body),
        content_type,
    )
    .await
}

async fn query(app: &BillingApp, meter: &str, parameters: &str) -> Value {
    app.get(&format!(
        "/openmeter/api/v1/meters/{meter}/query?{parameters}"
    ))
    .await
}

/// `(windowStart, windowEnd, subject, groupBy, value)` of each row, in the answer's order.
fn rows(result: &Value) -> Vec<(String, String, Value, Value, Value)> {
    result["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["windowStart"].as_str().unwrap().to_owned(),
                row["windowEnd"].as_str().unwrap().to_owned(),
                row["subject"].clone(),
                row["groupBy"].clone(),
                row["value"].clone(),
            )
        })
        .collect()
}

fn assert_problem(status: u16, content_type: &str, body: &Value, expected: u16, detail: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["type"], "about:blank", "{body}");
    assert_eq!(body["status"], expected, "{body}");
    assert!(body["title"].is_string(), "{body}");
    let text = body["detail"].as_str().unwrap();
    assert!(text.contains(detail), "{text:?} does not say {detail:?}");
}

async fn ingestion_answers_204_and_stores_each_event_once(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2026-02-01T00:00:00Z").await;
    arrange(&app).await;
    let batch = json!([
        prompt("e-2", "customer-1", "2026-01-01T10:40:00Z", 50, "gpt-4o"),
        prompt(
            "e-3",
            "customer-2",
            "2026-01-01T11:15:00+01:00",
            25,
            "gpt-4o-mini"
        ),
    ]);

    let single = ingest(
        &app,
        STRUCTURED,
        prompt("e-1", "customer-1", "2026-01-01T10:05:00Z", 100, "gpt-4o"),
    )
    .await;
    let first = ingest(&app, BATCH, batch.clone()).await;
    let again = ingest(&app, BATCH, batch.clone()).await;
    let as_json = ingest(&app, JSON, batch).await;
    let one_as_json = ingest(
        &app,
        JSON,
        prompt("e-4", "customer-1", "2026-01-01T12:00:00Z", 5, "gpt-4o"),
    )
    .await;

    for (status, _, body) in [single, first, again, as_json, one_as_json] {
        assert_eq!((status, body), (204, Value::Null));
    }
    let total = query(&app, "prompts", "").await;
    assert_eq!(
        total["data"][0]["value"], 4,
        "four events, each once: {total}"
    );
    let tokens = query(&app, "tokens_total", "groupBy=subject").await;
    let by_subject: Vec<(Value, Value)> = rows(&tokens)
        .into_iter()
        .map(|(_, _, subject, _, value)| (subject, value))
        .collect();
    assert_eq!(
        by_subject,
        [
            (json!("customer-1"), json!(155)),
            (json!("customer-2"), json!(25))
        ]
    );
    // The native route keeps its answer: 202 with what became of each event.
    let (status, native) = app
        .call(
            "POST",
            "/api/v1/events",
            Some(json!([prompt(
                "e-1",
                "customer-1",
                "2026-01-01T10:05:00Z",
                100,
                "gpt-4o"
            )])),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(
        native,
        json!({"accepted": 0, "duplicates": 1, "errors": []})
    );
    app.stop().await;
}

async fn an_event_without_a_time_is_timed_at_its_arrival(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2026-03-04T05:06:07.5Z").await;
    arrange(&app).await;
    let mut untimed = prompt("e-1", "customer-1", "", 7, "gpt-4o");
    untimed.as_object_mut().unwrap().remove("time");
    let mut null_time = prompt("e-2", "customer-1", "", 3, "gpt-4o");
    null_time["time"] = Value::Null;

    let (status, _, body) = ingest(&app, BATCH, json!([untimed, null_time])).await;

    assert_eq!((status, body), (204, Value::Null));
    app.set_now("2026-03-05T00:00:00Z").await;
    let hours = query(
        &app,
        "tokens_total",
        "from=2026-03-04T00:00:00Z&to=2026-03-05T00:00:00Z&windowSize=HOUR",
    )
    .await;
    assert_eq!(
        rows(&hours),
        [(
            "2026-03-04T05:00:00Z".to_owned(),
            "2026-03-04T06:00:00Z".to_owned(),
            Value::Null,
            json!({}),
            json!(10)
        )]
    );
    app.stop().await;
}

async fn invalid_requests_are_openmeter_problems_and_store_nothing(
    database: billow_store::Database,
) {
    let app = BillingApp::spawn(database, "2026-02-01T00:00:00Z").await;
    let customer = arrange(&app).await;
    let valid = prompt("e-1", "customer-1", "2026-01-01T10:05:00Z", 100, "gpt-4o");
    let mut invalid = prompt("e-2", "", "2026-01-01 10:05", 1, "gpt-4o");
    invalid["specversion"] = json!("0.3");

    let (status, content_type, body) = ingest(&app, BATCH, json!([valid, invalid])).await;
    assert_problem(
        status,
        &content_type,
        &body,
        400,
        "invalid event: event 1: specversion",
    );
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("event 1: subject must not be empty"),
        "{detail}"
    );
    assert!(detail.contains("event 1: time"), "{detail}");
    let nothing = query(&app, "prompts", "").await;
    assert_eq!(
        nothing["data"],
        json!([]),
        "a refused request stores nothing"
    );

    let (status, content_type, body) = ingest(&app, "text/plain", json!([])).await;
    assert_problem(status, &content_type, &body, 415, "invalid content type");
    let (status, content_type, body) = ingest(&app, STRUCTURED, json!([1])).await;
    assert_problem(status, &content_type, &body, 400, "invalid event");
    let (status, content_type, body) = ingest(&app, JSON, json!([])).await;
    assert_problem(status, &content_type, &body, 400, "no events found");
    let (status, _, body) = ingest(&app, BATCH, json!([])).await;
    assert_eq!(
        (status, body),
        (204, Value::Null),
        "OpenMeter's empty batch"
    );
    let (status, content_type, body) = ingest(&app, JSON, json!("text")).await;
    assert_problem(status, &content_type, &body, 400, "event 0");
    let raw = app
        .call_with_content_type(&app.key, "POST", "/openmeter/api/v1/events", None, JSON)
        .await;
    assert_problem(
        raw.0,
        &raw.1,
        &raw.2,
        400,
        "invalid event: The body is not valid JSON",
    );

    // No credential, a wrong one, a customer token.
    let (status, content_type, body) = app
        .call_with_content_type("bk_wrong", "GET", "/openmeter/api/v1/meters", None, JSON)
        .await;
    assert_problem(status, &content_type, &body, 401, "");
    let token = app
        .post(
            &format!(
                "/api/v1/customers/{}/tokens",
                customer["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for (method, path) in [
        ("POST", "/openmeter/api/v1/events"),
        ("GET", "/openmeter/api/v1/meters"),
        ("GET", "/openmeter/api/v1/meters/prompts"),
    ] {
        let body = (method == "POST").then(|| json!([]));
        let (status, content_type, body) = app
            .call_with_content_type(&token, method, path, body, BATCH)
            .await;
        assert_problem(status, &content_type, &body, 403, "");
    }
    app.stop().await;
}

async fn meters_are_listed_and_got_in_openmeter_s_shape(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2026-02-01T00:00:00Z").await;
    arrange(&app).await;
    let native = app.get("/api/v1/meters/tokens_total").await;

    let meters = app.get("/openmeter/api/v1/meters").await;

    let slugs: Vec<&str> = meters
        .as_array()
        .unwrap()
        .iter()
        .map(|meter| meter["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["prompts", "tokens_total"], "by key");
    let tokens = &meters[1];
    let mut keys: Vec<&str> = tokens
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "aggregation",
            "createdAt",
            "eventType",
            "groupBy",
            "id",
            "name",
            "slug",
            "updatedAt",
            "valueProperty"
        ]
    );
    assert_eq!(tokens["id"], native["id"]);
    assert_eq!(tokens["name"], "tokens_total");
    assert_eq!(tokens["aggregation"], "SUM");
    assert_eq!(tokens["eventType"], "prompt");
    assert_eq!(tokens["valueProperty"], "$.tokens");
    assert_eq!(
        tokens["groupBy"],
        json!({"model": "$.model", "type": "$.type"})
    );
    let instant = |value: &Value| value.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    assert_eq!(
        instant(&tokens["createdAt"]),
        instant(&native["created_at"])
    );
    assert_eq!(
        instant(&tokens["updatedAt"]),
        instant(&native["created_at"])
    );
    let prompts = &meters[0];
    assert_eq!(prompts["aggregation"], "COUNT");
    assert!(prompts.get("valueProperty").is_none() && prompts.get("groupBy").is_none());

    let descending = app
        .get("/openmeter/api/v1/meters?orderBy=aggregation&order=DESC&page=1&pageSize=100")
        .await;
    assert_eq!(descending[0]["slug"], "tokens_total", "SUM after COUNT");
    let by_id = app
        .get(&format!(
            "/openmeter/api/v1/meters/{}",
            native["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(&by_id, tokens);
    assert_eq!(
        &app.get("/openmeter/api/v1/meters/tokens_total").await,
        tokens
    );

    let (status, content_type, body) = app
        .call_with_content_type(&app.key, "GET", "/openmeter/api/v1/meters/nope", None, JSON)
        .await;
    assert_problem(status, &content_type, &body, 404, "meter not found: nope");
    for (parameters, named) in [
        ("order=UP", "order"),
        ("orderBy=slug", "orderBy"),
        ("page=0", "page"),
        ("pageSize=1001", "pageSize"),
        ("includeDeleted=yes", "includeDeleted"),
    ] {
        let (status, content_type, body) = app
            .call_with_content_type(
                &app.key,
                "GET",
                &format!("/openmeter/api/v1/meters?{parameters}"),
                None,
                JSON,
            )
            .await;
        assert_problem(status, &content_type, &body, 400, named);
    }
    app.stop().await;
}

/// Six prompts of two subjects over two days.
async fn usage(app: &BillingApp) {
    let (status, _, _) = ingest(
        app,
        BATCH,
        json!([
            prompt("e-1", "customer-1", "2026-01-01T10:05:00Z", 100, "gpt-4o"),
            prompt("e-2", "customer-1", "2026-01-01T10:40:00Z", 50, "gpt-4o"),
            prompt(
                "e-3",
                "customer-1",
                "2026-01-01T11:15:00Z",
                25,
                "gpt-4o-mini"
            ),
            prompt("e-4", "customer-2", "2026-01-01T10:20:00Z", 10, "gpt-4o"),
            prompt(
                "e-5",
                "customer-2",
                "2026-01-02T03:00:00Z",
                5,
                "gpt-4o-mini"
            ),
            prompt("e-6", "customer-1", "2026-02-10T00:00:00Z", 1, "gpt-4o"),
        ]),
    )
    .await;
    assert_eq!(status, 204);
}

async fn a_query_aggregates_per_window_subject_and_group(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2026-03-01T00:00:00Z").await;
    arrange(&app).await;
    usage(&app).await;
    let day = "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z";
    let row = |start: &str, end: &str, subject: Value, group: Value, value: u64| {
        (
            start.to_owned(),
            end.to_owned(),
            subject,
            group,
            json!(value),
        )
    };

    // Without windows, one row for the period, its bounds the query's; echoed from and to.
    let total = query(&app, "tokens_total", day).await;
    assert_eq!(total["from"], "2026-01-01T00:00:00Z");
    assert_eq!(total["to"], "2026-01-02T00:00:00Z");
    assert!(total.get("windowSize").is_none());
    assert_eq!(
        rows(&total),
        [row(
            "2026-01-01T00:00:00Z",
            "2026-01-02T00:00:00Z",
            Value::Null,
            json!({}),
            185
        )]
    );
    // Left open, the bounds are the minutes of the first and last events counted.
    let all = query(&app, "tokens_total", "").await;
    assert!(all.get("from").is_none() && all.get("to").is_none());
    assert_eq!(
        rows(&all),
        [row(
            "2026-01-01T10:05:00Z",
            "2026-02-10T00:01:00Z",
            Value::Null,
            json!({}),
            191
        )]
    );

    // Per hour of customer-1: only the windows with events, each whole.
    let hourly = query(
        &app,
        "tokens_total",
        &format!("{day}&windowSize=HOUR&subject=customer-1"),
    )
    .await;
    assert_eq!(hourly["windowSize"], "HOUR");
    assert_eq!(
        rows(&hourly),
        [
            row(
                "2026-01-01T10:00:00Z",
                "2026-01-01T11:00:00Z",
                json!("customer-1"),
                json!({}),
                150
            ),
            row(
                "2026-01-01T11:00:00Z",
                "2026-01-01T12:00:00Z",
                json!("customer-1"),
                json!({}),
                25
            ),
        ]
    );
    // A `from` inside a window: the window is reported whole, with the period's events only.
    let cut = query(
        &app,
        "tokens_total",
        "from=2026-01-01T10:30:00Z&to=2026-01-01T11:00:00Z&windowSize=HOUR",
    )
    .await;
    assert_eq!(
        rows(&cut),
        [row(
            "2026-01-01T10:00:00Z",
            "2026-01-01T11:00:00Z",
            Value::Null,
            json!({}),
            50
        )]
    );

    // Per subject and model, and one model only.
    let grouped = query(
        &app,
        "tokens_total",
        &format!("{day}&groupBy=subject&groupBy=model"),
    )
    .await;
    assert_eq!(
        rows(&grouped),
        [
            row(
                "2026-01-01T00:00:00Z",
                "2026-01-02T00:00:00Z",
                json!("customer-1"),
                json!({"model": "gpt-4o"}),
                150
            ),
            row(
                "2026-01-01T00:00:00Z",
                "2026-01-02T00:00:00Z",
                json!("customer-1"),
                json!({"model": "gpt-4o-mini"}),
                25
            ),
            row(
                "2026-01-01T00:00:00Z",
                "2026-01-02T00:00:00Z",
                json!("customer-2"),
                json!({"model": "gpt-4o"}),
                10
            ),
        ]
    );
    let filtered = query(
        &app,
        "tokens_total",
        "filterGroupBy%5Bmodel%5D=gpt-4o-mini&groupBy=subject",
    )
    .await;
    let values: Vec<(Value, Value)> = rows(&filtered)
        .into_iter()
        .map(|(_, _, subject, _, value)| (subject, value))
        .collect();
    assert_eq!(
        values,
        [
            (json!("customer-1"), json!(25)),
            (json!("customer-2"), json!(5))
        ]
    );
    // Several subjects: one row each; a subject without events has none.
    let two = query(
        &app,
        "prompts",
        &format!("{day}&subject=customer-2&subject=customer-9"),
    )
    .await;
    assert_eq!(
        rows(&two),
        [row(
            "2026-01-01T00:00:00Z",
            "2026-01-02T00:00:00Z",
            json!("customer-2"),
            json!({}),
            1
        )]
    );

    // Days of New York: 2026-01-02T03:00Z is still January 1st there.
    let new_york = query(
        &app,
        "tokens_total",
        "from=2026-01-01T00:00:00Z&to=2026-01-03T00:00:00Z&windowSize=DAY&windowTimeZone=America%2FNew_York",
    )
    .await;
    assert_eq!(
        rows(&new_york),
        [row(
            "2026-01-01T05:00:00Z",
            "2026-01-02T05:00:00Z",
            Value::Null,
            json!({}),
            190
        )]
    );
    // Months and minutes.
    let months = query(&app, "prompts", "windowSize=MONTH").await;
    assert_eq!(
        rows(&months),
        [
            row(
                "2026-01-01T00:00:00Z",
                "2026-02-01T00:00:00Z",
                Value::Null,
                json!({}),
                5
            ),
            row(
                "2026-02-01T00:00:00Z",
                "2026-03-01T00:00:00Z",
                Value::Null,
                json!({}),
                1
            ),
        ]
    );
    let minutes = query(
        &app,
        "prompts",
        "from=2026-01-01T10:00:00Z&to=2026-01-01T10:30:00Z&windowSize=MINUTE",
    )
    .await;
    let starts: Vec<String> = rows(&minutes).into_iter().map(|row| row.0).collect();
    assert_eq!(starts, ["2026-01-01T10:05:00Z", "2026-01-01T10:20:00Z"]);
    // The subjects of a meter's events, in all and in February.
    assert_eq!(
        app.get("/openmeter/api/v1/meters/prompts/subjects").await,
        json!(["customer-1", "customer-2"])
    );
    assert_eq!(
        app.get("/openmeter/api/v1/meters/tokens_total/subjects?from=2026-02-01T00:00:00Z")
            .await,
        json!(["customer-1"])
    );
    // A row's JSON types.
    let first = &grouped["data"][0];
    assert!(first["value"].is_number() && first["groupBy"].is_object());
    assert!(first["subject"].is_string() && first["windowStart"].is_string());
    app.stop().await;
}

async fn query_errors_name_the_parameter(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2026-03-01T00:00:00Z").await;
    arrange(&app).await;
    for (parameters, detail) in [
        ("groupBy=region", "invalid group by: region"),
        (
            "filterGroupBy%5Bregion%5D=eu",
            "invalid group by filter: region",
        ),
        ("windowSize=WEEK", "windowSize"),
        ("windowTimeZone=Mars%2FOlympus", "invalid time zone"),
        ("from=2026-01-01", "from"),
        ("to=yesterday", "to"),
        (
            "from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from must be before to",
        ),
        (
            "from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
            "from and to cannot be equal",
        ),
        ("clientId=0123456789012345678901234567890123456", "clientId"),
        (
            "advancedMeterGroupByFilters=%7B%7D",
            "advancedMeterGroupByFilters",
        ),
        ("subject=a%00b", "U+0000"),
    ] {
        let (status, content_type, body) = app
            .call_with_content_type(
                &app.key,
                "GET",
                &format!("/openmeter/api/v1/meters/tokens_total/query?{parameters}"),
                None,
                JSON,
            )
            .await;
        assert_problem(status, &content_type, &body, 400, detail);
    }
    let (status, content_type, body) = app
        .call_with_content_type(
            &app.key,
            "GET",
            "/openmeter/api/v1/meters/nope/query",
            None,
            JSON,
        )
        .await;
    assert_problem(status, &content_type, &body, 404, "meter not found: nope");
    // A `from` after now, without `to`: nothing yet.
    let future = query(&app, "prompts", "from=2027-01-01T00:00:00Z").await;
    assert_eq!(future["data"], json!([]));
    app.stop().await;
}

async fn a_customer_token_queries_only_its_own_customer(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2026-03-01T00:00:00Z").await;
    let customer = arrange(&app).await;
    usage(&app).await;
    let token = app
        .post(
            &format!(
                "/api/v1/customers/{}/tokens",
                customer["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let as_customer = |parameters: &'static str| {
        let path = format!("/openmeter/api/v1/meters/prompts/query?{parameters}");
        let token = token.clone();
        let app = &app;
        async move {
            let (status, body) = app.call_as(&token, "GET", &path, None, JSON).await;
            assert_eq!(status, 200, "{body}");
            body
        }
    };

    let (status, subjects) = app
        .call_as(
            &token,
            "GET",
            "/openmeter/api/v1/meters/prompts/subjects",
            None,
            JSON,
        )
        .await;
    assert_eq!((status, subjects), (200, json!(["customer-1"])));
    let own = as_customer("groupBy=subject").await;
    let other = as_customer("subject=customer-2").await;

    let subjects: Vec<(Value, Value)> = rows(&own)
        .into_iter()
        .map(|(_, _, subject, _, value)| (subject, value))
        .collect();
    assert_eq!(subjects, [(json!("customer-1"), json!(4))]);
    assert_eq!(other["data"], json!([]));
    app.stop().await;
}

async fn a_customer_filter_covers_every_subject_the_customer_claims(
    database: billow_store::Database,
) {
    let app = BillingApp::spawn(database, "2026-03-01T00:00:00Z").await;
    let customer = arrange(&app).await;
    let id = customer["id"].as_str().unwrap().to_owned();
    let other = app
        .post(
            "/api/v1/customers",
            json!({"external_id": "customer-2", "name": "Customer 2", "currency": "USD"}),
        )
        .await;
    usage(&app).await;
    // An event naming customer-1 by its billow id: its usage too.
    let (status, _, _) = ingest(
        &app,
        STRUCTURED,
        prompt("e-7", &id, "2026-01-01T10:50:00Z", 1_000, "gpt-4o"),
    )
    .await;
    assert_eq!(status, 204);
    let day = "from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z";

    let by_external_id = query(
        &app,
        "tokens_total",
        &format!("{day}&filterCustomerId=customer-1"),
    )
    .await;
    let per_subject = query(
        &app,
        "tokens_total",
        &format!("{day}&filterCustomerId={id}&filterCustomerId=customer-2&groupBy=subject&groupBy=customer_id"),
    )
    .await;

    assert_eq!(by_external_id["data"].as_array().unwrap().len(), 1);
    assert_eq!(by_external_id["data"][0]["customerId"], id.as_str());
    assert_eq!(by_external_id["data"][0]["value"], 1_175);
    assert_eq!(by_external_id["data"][0]["subject"], Value::Null);
    let rows: Vec<(Value, Value, Value)> = per_subject["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["customerId"].clone(),
                row["subject"].clone(),
                row["value"].clone(),
            )
        })
        .collect();
    let other_id = other["id"].clone();
    let mut expected = vec![
        (json!(id), json!("customer-1"), json!(175)),
        (json!(id), json!(id), json!(1_000)),
        (other_id, json!("customer-2"), json!(10)),
    ];
    expected.sort_by_key(|(customer, subject, _)| (customer.to_string(), subject.to_string()));
    assert_eq!(rows, expected);
    // Without a customer filter, rows name no customer.
    assert!(query(&app, "prompts", day).await["data"][0]
        .get("customerId")
        .is_none());

    for (parameters, status, detail) in [
        (
            "filterCustomerId=nope",
            404,
            "customer with id nope not found",
        ),
        (
            "groupBy=customer_id",
            400,
            "customer filter is required with customer_id group by",
        ),
    ] {
        let (got, content_type, body) = app
            .call_with_content_type(
                &app.key,
                "GET",
                &format!("/openmeter/api/v1/meters/prompts/query?{parameters}"),
                None,
                JSON,
            )
            .await;
        assert_problem(got, &content_type, &body, status, detail);
    }
    // A customer token names only its own customer.
    let token = app
        .post(&format!("/api/v1/customers/{id}/tokens"), json!({}))
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, content_type, body) = app
        .call_with_content_type(
            &token,
            "GET",
            "/openmeter/api/v1/meters/prompts/query?filterCustomerId=customer-2",
            None,
            JSON,
        )
        .await;
    assert_problem(
        status,
        &content_type,
        &body,
        404,
        "customer with id customer-2 not found",
    );
    let (status, own) = app
        .call_as(
            &token,
            "GET",
            &format!("/openmeter/api/v1/meters/prompts/query?{day}&filterCustomerId=customer-1"),
            None,
            JSON,
        )
        .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["data"][0]["value"], 4);
    app.stop().await;
}

/// `POST /openmeter/api/v1/events` with an `Idempotency-Key`: the status, whether the answer
/// was replayed, and the body.
async fn ingest_with_key(app: &BillingApp, key: &str, body: &Value) -> (u16, bool, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let body = body.to_string();
    let request = format!(
        "POST /openmeter/api/v1/events HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: {BATCH}\r\nIdempotency-Key: {key}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        app.address,
        app.key,
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let replayed = head
        .to_ascii_lowercase()
        .contains("\r\nidempotent-replayed: true");
    (status, replayed, body.to_owned())
}

async fn a_retry_with_an_idempotency_key_is_answered_again(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2026-03-01T00:00:00Z").await;
    arrange(&app).await;
    let batch = json!([prompt(
        "e-1",
        "customer-1",
        "2026-01-01T10:05:00Z",
        100,
        "gpt-4o"
    )]);
    let other = json!([prompt(
        "e-2",
        "customer-1",
        "2026-01-01T10:06:00Z",
        1,
        "gpt-4o"
    )]);

    let first = ingest_with_key(&app, "retry-1", &batch).await;
    let again = ingest_with_key(&app, "retry-1", &batch).await;
    let reused = ingest_with_key(&app, "retry-1", &other).await;

    assert_eq!(first, (204, false, String::new()));
    assert_eq!(again, (204, true, String::new()));
    assert_eq!(reused.0, 422);
    assert!(reused.2.contains("idempotency-key-reused"), "{}", reused.2);
    assert_eq!(query(&app, "prompts", "").await["data"][0]["value"], 1);
    app.stop().await;
}

async fn a_gauge_holds_its_level_through_windows(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2026-03-01T00:00:00Z").await;
    app.post(
        "/api/v1/meters",
        json!({"key": "cores", "event_type": "cpu", "aggregation": "TIME_WEIGHTED_SUM",
               "value_property": "cores", "time_unit": "hour"}),
    )
    .await;
    let cpu = |id: &str, time: &str, cores: u64| {
        json!({"specversion": "1.0", "id": id, "source": "agent", "type": "cpu",
               "subject": "customer-1", "time": time, "data": {"cores": cores}})
    };
    let (status, _, _) = ingest(
        &app,
        BATCH,
        json!([
            cpu("c-1", "2026-01-01T09:30:00Z", 2),
            cpu("c-2", "2026-01-01T11:30:00Z", 4)
        ]),
    )
    .await;
    assert_eq!(status, 204);

    let listed = app.get("/openmeter/api/v1/meters/cores").await;
    let hours = query(
        &app,
        "cores",
        "from=2026-01-01T10:00:00Z&to=2026-01-01T13:00:00Z&windowSize=HOUR",
    )
    .await;

    assert_eq!(listed["aggregation"], "TIME_WEIGHTED_SUM");
    let values: Vec<(String, Value)> = rows(&hours)
        .into_iter()
        .map(|(start, _, _, _, value)| (start, value))
        .collect();
    // 2 cores held from 09:30; 2 for half an hour and 4 for the other half; 4 held.
    assert_eq!(
        values,
        [
            ("2026-01-01T10:00:00Z".to_owned(), json!(2)),
            ("2026-01-01T11:00:00Z".to_owned(), json!(3)),
            ("2026-01-01T12:00:00Z".to_owned(), json!(4)),
        ]
    );
    app.stop().await;
}

on_both_databases!(
    ingestion_answers_204_and_stores_each_event_once,
    an_event_without_a_time_is_timed_at_its_arrival,
    invalid_requests_are_openmeter_problems_and_store_nothing,
    meters_are_listed_and_got_in_openmeter_s_shape,
    a_query_aggregates_per_window_subject_and_group,
    query_errors_name_the_parameter,
    a_customer_token_queries_only_its_own_customer,
    a_customer_filter_covers_every_subject_the_customer_claims,
    a_retry_with_an_idempotency_key_is_answered_again,
    a_gauge_holds_its_level_through_windows,
);
