//! The upcoming invoice (`GET /api/v1/customers/{id}/invoices/upcoming`) is what the next run
//! would bill if the period closed now, pending late-usage adjustments included: the same
//! adjustment line and the same tax as the invoice the run then issues. Over real HTTP, on
//! SQLite and PostgreSQL.

use billow_store::Database;
use serde_json::{json, Value};

use crate::billing::{
    compute_event, customer_with_vat, lines_of, metered_catalog, metered_subscription,
};
use crate::month::{on_both_databases, BillingApp};

/// The line of `kind` of `invoice`; panics unless there is exactly one.
fn only_line<'a>(invoice: &'a Value, kind: &str) -> &'a Value {
    let lines: Vec<&Value> = invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|line| line["kind"] == kind)
        .collect();
    assert_eq!(lines.len(), 1, "one {kind} line in {invoice}");
    lines[0]
}

/// VAT 19 % on EUR; seats 10.00 in arrears, not prorated (so the upcoming invoice bills them in
/// full, as the period's invoice will), and compute at 0.08 an hour. January: 20 hours, billed
/// and finalized as invoice #1; then 10 late hours for January, recorded by a run as a 0.80
/// adjustment.
async fn a_pending_adjustment_is_on_the_upcoming_invoice_as_the_next_run_bills_it(
    database: Database,
) {
    // Arrange.
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    metered_catalog(&app, false).await;
    let customer = customer_with_vat(&app, "late").await;
    let subscription = metered_subscription(&app, &customer).await;
    app.post(
        "/api/v1/events",
        json!([compute_event(
            "j1",
            &subscription,
            "2024-01-10T00:00:00Z",
            20
        )]),
    )
    .await;
    app.set_now("2024-02-01T01:00:00Z").await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(run["report"]["finalized"], 1, "{run}");
    let january = app
        .get(&format!("/api/v1/customers/{customer}/last-invoice"))
        .await;
    assert_eq!(january["number"], 1);
    // Seats 10.00 (VAT 1.90) and compute 20 × 0.08 = 1.60 (VAT 0.304 = 0.30).
    assert_eq!(january["total"]["amount_minor"], 1380, "{january}");
    app.set_now("2024-02-02T00:00:00Z").await;
    app.post(
        "/api/v1/events",
        json!([compute_event(
            "j2",
            &subscription,
            "2024-01-25T00:00:00Z",
            10
        )]),
    )
    .await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(run["report"]["adjustments"], 1, "{run}");

    // Act: February so far, as if it closed now.
    app.set_now("2024-02-10T00:00:00Z").await;
    let upcoming = app
        .get(&format!("/api/v1/customers/{customer}/invoices/upcoming"))
        .await;

    // Assert: the 10 late hours (0.80 net) are on it, and taxed with the seats.
    assert_eq!(upcoming["now"], "2024-02-10T00:00:00.000000Z");
    let invoices = upcoming["data"].as_array().unwrap();
    assert_eq!(invoices.len(), 1, "{upcoming}");
    let preview = &invoices[0];
    assert_eq!(preview["subscriptions"], json!([subscription]));
    assert_eq!(preview["reason"], "upcoming");
    let adjustment = only_line(preview, "adjustment");
    assert_eq!(adjustment["description"], "Late usage for invoice #1");
    assert_eq!(adjustment["amount"]["amount"], "0.80");
    assert_eq!(adjustment["amount"]["amount_minor"], 80);
    assert_eq!(adjustment["amount"]["currency"], "EUR");
    assert_eq!(
        adjustment["period"],
        json!({"start": "2024-01-01T00:00:00.000000Z", "end": "2024-02-01T00:00:00.000000Z"})
    );
    let tax = only_line(preview, "tax");
    // 1.90 on the seats and 0.152 = 0.15 on the adjustment.
    assert_eq!(tax["description"], "VAT 19%");
    assert_eq!(tax["amount"]["amount_minor"], 205);
    assert_eq!(
        only_line(preview, "recurring")["amount"]["amount_minor"],
        1000
    );
    assert_eq!(
        preview["totals"]["subtotal"]["amount_minor"], 1080,
        "{preview}"
    );
    assert_eq!(preview["totals"]["tax"]["amount_minor"], 205);
    assert_eq!(preview["totals"]["total"]["amount_minor"], 1285);

    // Act: February closes and the run bills it.
    app.set_now("2024-03-01T01:00:00Z").await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;

    // Assert: the invoice issued is the upcoming one, line for line, to the cent.
    assert_eq!(run["report"]["finalized"], 1, "{run}");
    let february = app
        .get(&format!("/api/v1/customers/{customer}/last-invoice"))
        .await;
    assert_eq!(february["number"], 2, "{february}");
    assert_eq!(lines_of(&february), lines_of(preview));
    let billed = only_line(&february, "adjustment");
    assert_eq!(billed["trace"], adjustment["trace"]);
    assert_eq!(billed["period"], adjustment["period"]);
    assert_eq!(february["totals"]["tax"], preview["totals"]["tax"]);
    assert_eq!(february["total"]["amount_minor"], 1285);
    assert_eq!(february["total"], preview["totals"]["total"]);
    // Billed once: the next period's upcoming invoice no longer shows it.
    let after = app
        .get(&format!("/api/v1/customers/{customer}/invoices/upcoming"))
        .await;
    let kinds: Vec<String> = lines_of(&after["data"][0])
        .into_iter()
        .map(|(kind, _, _)| kind)
        .collect();
    assert!(!kinds.contains(&"adjustment".to_owned()), "{after}");
    app.stop().await;
}

on_both_databases!(a_pending_adjustment_is_on_the_upcoming_invoice_as_the_next_run_bills_it);
