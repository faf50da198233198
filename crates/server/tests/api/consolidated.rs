//! One invoice per customer per period (a consolidated customer): its subscriptions and its
//! billed resources, created through the API, billed by a run to the cent on both backends; and
//! the seed's Akkeris invoice of February 2017 from resources on the upcoming invoice.

use serde_json::{json, Value};

use crate::month::{on_both_databases, BillingApp};

fn amount_minor(value: &Value) -> i64 {
    value["amount_minor"].as_i64().unwrap()
}

/// The line of `invoice` that bills `resource` (or subscription) `id`.
fn line_of<'a>(invoice: &'a Value, field: &str, id: &str) -> &'a Value {
    invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| {
            if field == "resource" {
                line["resource"]["id"] == id
            } else {
                line[field] == id
            }
        })
        .unwrap_or_else(|| panic!("no line of {field} {id} in {}", invoice["lines"]))
}

async fn plan(app: &BillingApp, key: &str, currency: &str, price: Value) {
    app.post(
        "/api/v1/plans",
        json!({"key": key, "name": key, "cadence": "monthly", "currency": currency, "prices": [price]}),
    )
    .await;
}

async fn resource(app: &BillingApp, body: Value) -> String {
    let created = app.post("/api/v1/resources", body).await;
    created["id"].as_str().unwrap().to_owned()
}

async fn one_invoice_per_period_for_two_subscriptions_and_three_resources(
    database: billow_store::Database,
) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    // Arrange: two plans for subscriptions, two for resources; a consolidated customer.
    plan(
        &app,
        "pro",
        "EUR",
        json!({"key": "platform", "description": "Pro platform fee",
        "pricing": {"model": "flat", "amount": "50"}}),
    )
    .await;
    plan(
        &app,
        "seats",
        "EUR",
        json!({"key": "seat", "description": "Seat",
        "pricing": {"model": "per_unit", "unit_amount": "10"}}),
    )
    .await;
    plan(
        &app,
        "vm-small",
        "EUR",
        json!({"key": "vm", "description": "VM small", "billing": "in_arrears",
        "pricing": {"model": "per_unit", "unit_amount": "30"}}),
    )
    .await;
    plan(
        &app,
        "redis-small",
        "EUR",
        json!({"key": "addon", "description": "redis:small add-on",
        "billing": "in_arrears", "proration_unit": "day",
        "pricing": {"model": "per_unit", "unit_amount": "140"}}),
    )
    .await;
    let customer = app
        .post(
            "/api/v1/customers",
            json!({"external_id": "acme", "name": "Acme", "currency": "EUR"}),
        )
        .await;
    assert_eq!(customer["invoicing"], "consolidated", "{customer}");
    let customer = customer["id"].as_str().unwrap().to_owned();
    let mut subscriptions = Vec::new();
    for (plan, quantity) in [("pro", 1), ("seats", 3)] {
        let created = app
            .post(
                "/api/v1/subscriptions",
                json!({"customer_id": customer, "plan": plan, "quantity": quantity,
                       "start": "2024-01-01T00:00:00Z"}),
            )
            .await;
        subscriptions.push(created["id"].as_str().unwrap().to_owned());
    }
    let vm_1 = resource(
        &app,
        json!({"customer_id": customer, "plan": "vm-small", "kind": "vm",
        "created_at": "2024-01-10T00:00:00Z"}),
    )
    .await;
    let (status, deleted) = app
        .call(
            "POST",
            &format!("/api/v1/resources/{vm_1}/delete"),
            Some(json!({"deleted_at": "2024-02-20T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 200, "{deleted}");
    let vm_2 = resource(
        &app,
        json!({"customer_id": customer, "plan": "vm-small", "kind": "vm",
        "created_at": "2024-02-01T00:00:00Z"}),
    )
    .await;
    let redis = resource(
        &app,
        json!({"customer_id": customer, "plan": "redis-small",
        "kind": "addon", "name": "cache", "created_at": "2024-01-15T12:00:00Z"}),
    )
    .await;

    // Act: March 1st's grace hour has passed; one run bills the three periods.
    app.set_now("2024-03-01T01:00:00Z").await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;

    // Assert: three invoices, one per period, each holding both subscriptions and the
    // resources present in its period, numbered 1 to 3.
    assert_eq!(run["report"]["finalized"], 3, "{run}");
    assert_eq!(run["report"]["numbers"], json!([1, 2, 3]), "{run}");
    let page = app
        .get(&format!("/api/v1/invoices?customer_id={customer}"))
        .await;
    let mut invoices = page["data"].as_array().unwrap().clone();
    invoices.reverse();
    assert_eq!(invoices.len(), 3, "{page}");
    for invoice in &invoices {
        assert_eq!(invoice["scope"], "customer");
        assert_eq!(invoice["subscription_id"], Value::Null);
        assert_eq!(invoice["subscriptions"], json!(subscriptions));
        assert_eq!(invoice["status"], "open");
        // Due 30 days (the workspace's default terms) after its finalization.
        assert_eq!(invoice["due_at"], "2024-03-31T01:00:00.000000Z");
    }
    let issued: Vec<&str> = invoices
        .iter()
        .map(|i| i["issued_at"].as_str().unwrap())
        .collect();
    assert_eq!(
        issued,
        [
            "2024-01-01T00:00:00.000000Z",
            "2024-02-01T00:00:00.000000Z",
            "2024-03-01T00:00:00.000000Z"
        ]
    );
    // January 1st: both subscriptions' fees in advance, 50 + 3 × 10.
    assert_eq!(amount_minor(&invoices[0]["total"]), 8_000);
    // February 1st: February's fees, and January's resources: the first VM for 22 of 31 days
    // by the second (30 × 22/31 = 21.29), the add-on for 17 of 31 days (140 × 17/31 = 76.77).
    let february = &invoices[1];
    assert_eq!(
        amount_minor(&line_of(february, "resource", &vm_1)["amount"]),
        2_129
    );
    assert_eq!(
        amount_minor(&line_of(february, "resource", &redis)["amount"]),
        7_677
    );
    assert_eq!(
        amount_minor(&line_of(february, "subscription", &subscriptions[0])["amount"]),
        5_000
    );
    assert_eq!(amount_minor(&february["total"]), 17_806);
    // March 1st: the first VM until February 20th (30 × 19/29 = 19.66), the second VM and the
    // add-on for all of February, and March's fees.
    let march = &invoices[2];
    let vm_1_line = line_of(march, "resource", &vm_1);
    assert_eq!(amount_minor(&vm_1_line["amount"]), 1_966);
    assert_eq!(
        vm_1_line["resource"]["deleted_at"],
        "2024-02-20T00:00:00.000000Z"
    );
    assert_eq!(
        amount_minor(&line_of(march, "resource", &vm_2)["amount"]),
        3_000
    );
    assert_eq!(
        amount_minor(&line_of(march, "resource", &redis)["amount"]),
        14_000
    );
    assert_eq!(amount_minor(&march["total"]), 26_966);
    // The totals by resource type and by subscription come from the core.
    assert_eq!(
        amount_minor(&march["totals"]["by_resource_type"]["vm"]),
        4_966
    );
    assert_eq!(
        amount_minor(&march["totals"]["by_resource_type"]["addon"]),
        14_000
    );
    assert_eq!(
        amount_minor(&march["totals"]["by_subscription"][&subscriptions[1]]),
        3_000
    );
    // Computed again (its payment terms changed, which changes no invoice of the past), the
    // customer gets nothing more: a run's writes are idempotent.
    let (status, patched) = app
        .call(
            "PATCH",
            &format!("/api/v1/customers/{customer}"),
            Some(json!({"net_days": 10})),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    let again = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(again["report"]["customers"], 1, "{again}");
    assert_eq!(again["report"]["unchanged"], 0, "{again}");
    assert_eq!(again["report"]["finalized"], 0, "{again}");
    assert_eq!(again["report"]["drafted"], 0, "{again}");
    app.stop().await;
}

async fn akkeris_february_2017_comes_from_resources_on_the_upcoming_invoice(
    database: billow_store::Database,
) {
    let app = BillingApp::spawn(database, "2017-02-05T22:16:56.616Z").await;
    plan(
        &app,
        "alamo-redis-small",
        "USD",
        json!({"key": "addon", "description": "alamo-redis:small",
        "billing": "in_arrears", "proration_unit": "day",
        "pricing": {"model": "per_unit", "unit_amount": "140"}}),
    )
    .await;
    plan(
        &app,
        "gp2-web",
        "USD",
        json!({"key": "dyno", "description": "gp2 web dyno",
        "billing": "in_arrears", "proration_unit": "day",
        "pricing": {"model": "per_unit", "unit_amount": "60"}}),
    )
    .await;
    let customer = app
        .post(
            "/api/v1/customers",
            json!({"external_id": "akkeris", "name": "Akkeris account", "currency": "USD"}),
        )
        .await;
    let customer = customer["id"].as_str().unwrap().to_owned();
    let addon = resource(
        &app,
        json!({"customer_id": customer, "plan": "alamo-redis-small",
        "kind": "addon", "name": "app-space",
        "dimensions": {"app": "app-space", "space": "space", "organization": "org"},
        "created_at": "2016-08-15T19:02:02.781Z"}),
    )
    .await;
    let dyno = resource(
        &app,
        json!({"customer_id": customer, "plan": "gp2-web",
        "kind": "dyno", "name": "app-space",
        "dimensions": {"app": "app-space", "space": "space", "organization": "org"},
        "created_at": "2016-07-26T15:47:33.411Z"}),
    )
    .await;

    let upcoming = app
        .get(&format!("/api/v1/customers/{customer}/invoices/upcoming"))
        .await;

    // 5 of February's 28 days, by the day: 140 × 5/28 = 25.00 and 60 × 5/28 = 10.71.
    let invoices = upcoming["data"].as_array().unwrap();
    assert_eq!(invoices.len(), 1, "{upcoming}");
    let invoice = &invoices[0];
    assert_eq!(invoice["scope"], "customer");
    assert_eq!(
        amount_minor(&line_of(invoice, "resource", &addon)["amount"]),
        2_500
    );
    let dyno_line = line_of(invoice, "resource", &dyno);
    assert_eq!(amount_minor(&dyno_line["amount"]), 1_071);
    assert_eq!(dyno_line["resource"]["dimensions"]["organization"], "org");
    assert_eq!(dyno_line["trace"]["proration"]["factor"]["numerator"], 5);
    assert_eq!(dyno_line["trace"]["proration"]["factor"]["denominator"], 28);
    assert_eq!(amount_minor(&invoice["totals"]["total"]), 3_571);
    app.stop().await;
}

async fn a_resource_bills_the_usage_whose_subject_names_it(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    app.post(
        "/api/v1/meters",
        json!({"key": "gpu", "event_type": "gpu.hours", "aggregation": "SUM",
               "value_property": "hours"}),
    )
    .await;
    plan(
        &app,
        "gpu-node",
        "USD",
        json!({"key": "gpu", "description": "GPU hours",
        "meter": "gpu", "pricing": {"model": "per_unit", "unit_amount": "2.50"}}),
    )
    .await;
    let customer = app
        .post(
            "/api/v1/customers",
            json!({"external_id": "lab", "name": "Lab", "currency": "USD"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let node = resource(
        &app,
        json!({"customer_id": customer, "plan": "gpu-node",
        "kind": "node", "created_at": "2024-01-01T00:00:00Z"}),
    )
    .await;
    app.post(
        "/api/v1/events",
        json!([
            {"specversion": "1.0", "id": "g1", "source": "k8s", "type": "gpu.hours",
             "subject": node, "time": "2024-01-10T00:00:00Z", "data": {"hours": 4}},
            {"specversion": "1.0", "id": "g2", "source": "k8s", "type": "gpu.hours",
             "subject": node, "time": "2024-01-20T00:00:00Z", "data": {"hours": 6}}
        ]),
    )
    .await;

    app.set_now("2024-02-01T01:00:00Z").await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;

    // 10 GPU hours at 2.50 on the node's line of January's invoice.
    assert_eq!(run["report"]["finalized"], 1, "{run}");
    let page = app
        .get(&format!("/api/v1/invoices?customer_id={customer}"))
        .await;
    let invoice = &page["data"][0];
    let line = line_of(invoice, "resource", &node);
    assert_eq!(amount_minor(&line["amount"]), 2_500, "{invoice}");
    assert_eq!(amount_minor(&invoice["total"]), 2_500);
    app.stop().await;
}

on_both_databases!(
    a_resource_bills_the_usage_whose_subject_names_it,
    one_invoice_per_period_for_two_subscriptions_and_three_resources,
    akkeris_february_2017_comes_from_resources_on_the_upcoming_invoice,
);
