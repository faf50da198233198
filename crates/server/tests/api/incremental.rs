//! Billing runs leave alone a customer with nothing due and nothing new, and compute it again as
//! soon as usage arrives, its world changes or something falls due (docs/billing-runs.md,
//! "Incremental runs"), on both backends.

use serde_json::{json, Value};

use crate::month::{on_both_databases, BillingApp};

async fn run(app: &BillingApp) -> Value {
    app.post("/api/v1/billing-runs", json!({})).await["report"].clone()
}

/// (customers computed, customers left alone) of a run's report.
fn computed_and_unchanged(report: &Value) -> (u64, u64) {
    (
        report["customers"].as_u64().unwrap(),
        report["unchanged"].as_u64().unwrap(),
    )
}

async fn a_customer_is_computed_again_only_when_something_is_new_or_due(
    database: billow_store::Database,
) {
    let app = BillingApp::spawn(database, "2024-01-10T00:00:00Z").await;
    app.post(
        "/api/v1/meters",
        json!({"key": "calls", "event_type": "api.calls", "aggregation": "COUNT"}),
    )
    .await;
    app.post(
        "/api/v1/plans",
        json!({"key": "team", "name": "Team", "cadence": "monthly", "currency": "USD", "prices": [
            {"key": "seats", "description": "Seats",
             "pricing": {"model": "per_unit", "unit_amount": "10.00"}},
            {"key": "calls", "description": "Calls", "meter": "calls",
             "pricing": {"model": "per_unit", "unit_amount": "0.50"}}]}),
    )
    .await;
    let customer = app
        .post(
            "/api/v1/customers",
            json!({"external_id": "acme", "name": "Acme", "currency": "USD"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let subscription = app
        .post(
            "/api/v1/subscriptions",
            json!({"customer_id": customer, "plan": "team", "quantity": 2,
                   "start": "2024-01-01T00:00:00Z"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The first run computes the customer (its start invoice is finalized).
    let first = run(&app).await;
    assert_eq!(computed_and_unchanged(&first), (1, 0), "{first}");
    assert_eq!(first["finalized"], 1, "{first}");
    // Nothing due, nothing new: left alone.
    let idle = run(&app).await;
    assert_eq!(computed_and_unchanged(&idle), (0, 1), "{idle}");

    // An event arrives: the next run computes the customer; once the event is older than the
    // last computation, runs leave it alone again.
    app.post(
        "/api/v1/events",
        json!([{"specversion": "1.0", "id": "c1", "source": "api", "type": "api.calls",
                "subject": customer, "time": "2024-01-09T00:00:00Z", "data": {}}]),
    )
    .await;
    app.set_now("2024-01-10T00:05:00Z").await;
    let after_usage = run(&app).await;
    assert_eq!(
        computed_and_unchanged(&after_usage),
        (1, 0),
        "{after_usage}"
    );
    let idle = run(&app).await;
    assert_eq!(computed_and_unchanged(&idle), (0, 1), "{idle}");

    // A change of the customer's world: computed again.
    app.post(
        &format!("/api/v1/subscriptions/{subscription}/changes"),
        json!({"at": "2024-01-10T00:05:00Z", "quantity": 3}),
    )
    .await;
    let after_change = run(&app).await;
    assert_eq!(
        computed_and_unchanged(&after_change),
        (1, 0),
        "{after_change}"
    );
    let idle = run(&app).await;
    assert_eq!(computed_and_unchanged(&idle), (0, 1), "{idle}");

    // The period's end falls due: computed, and the invoice bills the call and the seats.
    app.set_now("2024-02-01T01:00:00Z").await;
    let month_end = run(&app).await;
    assert_eq!(computed_and_unchanged(&month_end), (1, 0), "{month_end}");
    assert_eq!(month_end["finalized"], 1, "{month_end}");
    let page = app
        .get(&format!(
            "/api/v1/invoices?customer_id={customer}&status=open"
        ))
        .await;
    let february = &page["data"][0];
    assert_eq!(february["issued_at"], "2024-02-01T00:00:00Z", "{page}");
    let calls = february["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["description"] == "Calls")
        .unwrap_or_else(|| panic!("no line of calls in {february}"));
    assert_eq!(calls["amount"]["amount_minor"], 50);
    let idle = run(&app).await;
    assert_eq!(computed_and_unchanged(&idle), (0, 1), "{idle}");

    // A late event of January, finalized: the customer is computed again with its usage, and
    // the difference is recorded for the next invoice.
    app.post(
        "/api/v1/events",
        json!([{"specversion": "1.0", "id": "c2", "source": "api", "type": "api.calls",
                "subject": customer, "time": "2024-01-20T00:00:00Z", "data": {}}]),
    )
    .await;
    app.set_now("2024-02-01T02:00:00Z").await;
    let late = run(&app).await;
    assert_eq!(computed_and_unchanged(&late), (1, 0), "{late}");
    assert_eq!(late["adjustments"], 1, "{late}");
    app.stop().await;
}

on_both_databases!(a_customer_is_computed_again_only_when_something_is_new_or_due);
