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

/// The customer Acme (USD) with 2 seats of the plan `team` from 1 January 2024: (customer,
/// subscription).
async fn acme_on_team(app: &BillingApp) -> (String, String) {
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
    (customer, subscription)
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
    let (customer, subscription) = acme_on_team(&app).await;

    // The first run computes the customer (its start invoice is finalized).
    let first = run(&app).await;
    assert_eq!(computed_and_unchanged(&first), (1, 0), "{first}");
    assert_eq!(first["finalized"], 1, "{first}");
    // Nothing due, nothing new: left alone.
    let idle = run(&app).await;
    assert_eq!(computed_and_unchanged(&idle), (0, 1), "{idle}");

    // An event of the open period arrives: it changes only the upcoming invoice, which no run
    // writes, so runs leave the customer alone; the run that invoices the period bills it
    // (below).
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
        (0, 1),
        "{after_usage}"
    );

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
    assert_eq!(
        february["issued_at"], "2024-02-01T00:00:00.000000Z",
        "{page}"
    );
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

/// The line of `description` on the customer's invoice issued at `issued_at`.
async fn line_of(app: &BillingApp, customer: &str, issued_at: &str, description: &str) -> Value {
    let page = app
        .get(&format!(
            "/api/v1/invoices?customer_id={customer}&limit=100"
        ))
        .await;
    let invoice = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|invoice| crate::billing::issued_at_is(invoice, issued_at))
        .unwrap_or_else(|| panic!("no invoice issued at {issued_at} in {page}"))
        .clone();
    invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["description"] == description)
        .unwrap_or_else(|| panic!("no line {description} in {invoice}"))
        .clone()
}

async fn a_month_end_run_starts_from_the_checkpoint_of_the_last_finalized_invoice(
    database: billow_store::Database,
) {
    let app = BillingApp::spawn(database, "2024-01-10T00:00:00Z").await;
    app.post(
        "/api/v1/meters",
        json!({"key": "calls", "event_type": "api.calls", "aggregation": "COUNT"}),
    )
    .await;
    app.post(
        "/api/v1/meters",
        json!({"key": "servers", "event_type": "servers", "aggregation": "TIME_WEIGHTED_SUM",
               "value_property": "count", "time_unit": "hour"}),
    )
    .await;
    app.post(
        "/api/v1/plans",
        json!({"key": "team", "name": "Team", "cadence": "monthly", "currency": "USD", "prices": [
            {"key": "seats", "description": "Seats",
             "pricing": {"model": "per_unit", "unit_amount": "10.00"}},
            {"key": "calls", "description": "Calls", "meter": "calls",
             "pricing": {"model": "per_unit", "unit_amount": "0.50"}},
            {"key": "servers", "description": "Server hours", "meter": "servers",
             "pricing": {"model": "per_unit", "unit_amount": "0.01"}}]}),
    )
    .await;
    let (customer, _) = acme_on_team(&app).await;
    let first = run(&app).await;
    assert_eq!(first["finalized"], 1, "{first}");
    assert_eq!(first["from_checkpoint"], 0, "{first}");
    // Two servers from 15 January, never changed again; one call on 12 January.
    app.post(
        "/api/v1/events",
        json!([
            {"specversion": "1.0", "id": "c1", "source": "api", "type": "api.calls",
             "subject": customer, "time": "2024-01-12T00:00:00Z", "data": {}},
            {"specversion": "1.0", "id": "s1", "source": "api", "type": "servers",
             "subject": customer, "time": "2024-01-15T00:00:00Z", "data": {"count": 2}}]),
    )
    .await;

    // February's first invoice: started after the start invoice, finalized once its grace
    // period is over.
    app.set_now("2024-02-01T01:00:00Z").await;
    let february = run(&app).await;
    assert_eq!(february["finalized"], 1, "{february}");
    assert_eq!(february["from_checkpoint"], 1, "{february}");
    // 15 January to 1 February: 17 days × 24 h × 2 servers = 816 server-hours.
    let servers = line_of(&app, &customer, "2024-02-01T00:00:00Z", "Server hours").await;
    assert_eq!(servers["amount"]["amount_minor"], 816, "{servers}");
    let calls = line_of(&app, &customer, "2024-02-01T00:00:00Z", "Calls").await;
    assert_eq!(calls["amount"]["amount_minor"], 50, "{calls}");

    // March's: January's usage is not read again; the gauge's level comes from the event the
    // checkpoint carries. February 2024: 29 days × 24 h × 2 = 1,392 server-hours.
    app.set_now("2024-03-01T01:00:00Z").await;
    let march = run(&app).await;
    assert_eq!(march["finalized"], 1, "{march}");
    assert_eq!(march["from_checkpoint"], 1, "{march}");
    let servers = line_of(&app, &customer, "2024-03-01T00:00:00Z", "Server hours").await;
    assert_eq!(servers["quantity"], "1392.000000000", "{servers}");
    assert_eq!(servers["amount"]["amount_minor"], 1392, "{servers}");

    // A late call of January (finalized, before the checkpoint): the customer is computed from
    // its whole history, and the difference is recorded for the next invoice.
    app.post(
        "/api/v1/events",
        json!([{"specversion": "1.0", "id": "c2", "source": "api", "type": "api.calls",
                "subject": customer, "time": "2024-01-20T00:00:00Z", "data": {}}]),
    )
    .await;
    app.set_now("2024-03-01T02:00:00Z").await;
    let late = run(&app).await;
    assert_eq!(computed_and_unchanged(&late), (1, 0), "{late}");
    assert_eq!(late["from_checkpoint"], 0, "{late}");
    assert_eq!(late["adjustments"], 1, "{late}");
    // April's invoice bills the late call's 0.50 beside March's 31 days × 48 server-hours,
    // from the checkpoint the whole-history run made.
    app.set_now("2024-04-01T01:00:00Z").await;
    let april = run(&app).await;
    assert_eq!(april["finalized"], 1, "{april}");
    let servers = line_of(&app, &customer, "2024-04-01T00:00:00Z", "Server hours").await;
    assert_eq!(servers["amount"]["amount_minor"], 1488, "{servers}");
    let adjustment = line_of(
        &app,
        &customer,
        "2024-04-01T00:00:00Z",
        "Late usage for invoice #2",
    )
    .await;
    assert_eq!(adjustment["amount"]["amount_minor"], 50, "{adjustment}");
    app.stop().await;
}

/// Every write that changes what a run reads for a customer makes the next run look at it (the
/// triggers of migration 0017 count the change); a run with nothing changed reads no one.
async fn a_change_of_the_world_by_any_route_makes_the_next_run_compute_the_customer(
    database: billow_store::Database,
) {
    let app = BillingApp::spawn(database, "2024-01-10T00:00:00Z").await;
    let plan = json!({"key": "team", "name": "Team", "cadence": "monthly", "currency": "USD",
        "prices": [{"key": "seats", "description": "Seats",
                    "pricing": {"model": "per_unit", "unit_amount": "10.00"}}]});
    let plan_id = app.post("/api/v1/plans", plan.clone()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (customer, _) = acme_on_team(&app).await;
    assert_eq!(computed_and_unchanged(&run(&app).await), (1, 0));
    // The run's own write (a new state) counts once; then nothing is read.
    run(&app).await;
    assert_eq!(computed_and_unchanged(&run(&app).await), (0, 1));

    // A credit grant of the customer (from February: it changes no invoice already issued).
    app.post(
        "/api/v1/credit-grants",
        json!({"customer_id": customer, "type": "promotional",
               "amount": "5.00", "start": "2024-02-01T00:00:00Z"}),
    )
    .await;
    let after_grant = run(&app).await;
    assert_eq!(
        computed_and_unchanged(&after_grant),
        (1, 0),
        "{after_grant}"
    );
    assert_eq!(computed_and_unchanged(&run(&app).await), (0, 1));

    // A new version of the plan: the subscription stays on the version it was made with, so
    // the customer is looked at and left alone.
    let mut edited = plan.clone();
    edited["prices"][0]["pricing"]["unit_amount"] = json!("12.00");
    let (status, body) = app
        .call("PUT", &format!("/api/v1/plans/{plan_id}"), Some(edited))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(computed_and_unchanged(&run(&app).await), (0, 1));

    // The workspace's settings.
    let (status, body) = app
        .call(
            "PATCH",
            "/api/v1/workspace/settings",
            Some(json!({"net_days": 14})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let after_settings = run(&app).await;
    assert_eq!(
        computed_and_unchanged(&after_settings),
        (1, 0),
        "{after_settings}"
    );
    assert_eq!(computed_and_unchanged(&run(&app).await), (0, 1));
    app.stop().await;
}

on_both_databases!(
    a_change_of_the_world_by_any_route_makes_the_next_run_compute_the_customer,
    a_customer_is_computed_again_only_when_something_is_new_or_due,
    a_month_end_run_starts_from_the_checkpoint_of_the_last_finalized_invoice,
);
