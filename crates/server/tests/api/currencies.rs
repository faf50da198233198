//! Prices carry their currency, over real HTTP (SQLite, and PostgreSQL when
//! `BILLOW_TEST_DATABASE_URL` is set): a plan names the currency of every price and keeps its
//! amounts to that currency's minor unit; a customer subscribes to, or runs a billed resource
//! on, only a plan with prices in its own currency, and keeps a currency its plans have prices
//! in; and a plan priced in EUR and JPY bills a JPY customer in yen.

use serde_json::{json, Value};

use crate::billing::fields;
use crate::month::{on_both_databases, BillingApp};

const EUR_ONLY: &str = "team-eur";
const EUR_AND_JPY: &str = "team-global";

/// Plan `team-eur` (seats at 9.99 EUR) and plan `team-global` (seats at 9.99 EUR or 1500 JPY),
/// and a JPY customer, whose id is returned.
async fn arrange(app: &BillingApp) -> String {
    app.post(
        "/api/v1/plans",
        json!({"key": EUR_ONLY, "cadence": "monthly", "currency": "EUR", "prices": [
            {"key": "seats", "description": "Seats", "pricing": {"model": "per_unit", "unit_amount": "9.99"}}]}),
    )
    .await;
    app.post(
        "/api/v1/plans",
        json!({"key": EUR_AND_JPY, "cadence": "monthly", "currency": "EUR", "prices": [
            {"key": "seats", "description": "Seats", "pricing": {"model": "per_unit", "unit_amount": "9.99"}},
            {"key": "seats", "currency": "JPY", "description": "Seats", "pricing": {"model": "per_unit", "unit_amount": "1500"}}]}),
    )
    .await;
    let customer = app
        .post(
            "/api/v1/customers",
            json!({"external_id": "tokyo", "name": "Tokyo", "currency": "JPY", "invoicing": "per_subscription"}),
        )
        .await;
    customer["id"].as_str().unwrap().to_owned()
}

/// Sends `body` to `path`; asserts a 422 problem naming exactly `field`, and returns its reason.
async fn refused(app: &BillingApp, method: &str, path: &str, body: Value, field: &str) -> String {
    let (status, content_type, problem) = app
        .call_with_content_type(&app.key, method, path, Some(body), "application/json")
        .await;
    assert_eq!(status, 422, "{method} {path}: {problem}");
    assert_eq!(content_type, "application/problem+json");
    assert_eq!(
        problem["type"], "urn:billow:problem:validation",
        "{problem}"
    );
    assert_eq!(fields(&problem), vec![field], "{problem}");
    problem["errors"][0]["reason"].as_str().unwrap().to_owned()
}

const NOT_PRICED_IN_YEN: &str =
    "the plan has no price in JPY, the customer's currency (its prices are in EUR)";

async fn a_jpy_customer_cannot_subscribe_to_an_eur_only_plan(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    let customer = arrange(&app).await;

    let reason = refused(
        &app,
        "POST",
        "/api/v1/subscriptions",
        json!({"customer_id": customer, "plan": EUR_ONLY, "quantity": 3, "start": "2024-01-01T00:00:00Z"}),
        "plan",
    )
    .await;
    assert_eq!(reason, NOT_PRICED_IN_YEN);
    let reason = refused(
        &app,
        "POST",
        "/api/v1/resources",
        json!({"customer_id": customer, "plan": EUR_ONLY, "created_at": "2024-01-01T00:00:00Z"}),
        "plan",
    )
    .await;
    assert_eq!(reason, NOT_PRICED_IN_YEN);
    let listed = app
        .get(&format!("/api/v1/subscriptions?customer_id={customer}"))
        .await;
    assert_eq!(listed["data"], json!([]), "{listed}");
    let listed = app
        .get(&format!("/api/v1/resources?customer_id={customer}"))
        .await;
    assert_eq!(listed["data"], json!([]), "{listed}");

    // On the plan priced in both, the customer subscribes; a change to the EUR-only plan is
    // refused the same way.
    let subscription = app
        .post(
            "/api/v1/subscriptions",
            json!({"customer_id": customer, "plan": EUR_AND_JPY, "quantity": 3, "start": "2024-01-01T00:00:00Z"}),
        )
        .await;
    let subscription = subscription["id"].as_str().unwrap();
    let reason = refused(
        &app,
        "POST",
        &format!("/api/v1/subscriptions/{subscription}/changes"),
        json!({"plan": EUR_ONLY, "at": "2024-01-15T00:00:00Z"}),
        "plan",
    )
    .await;
    assert_eq!(reason, NOT_PRICED_IN_YEN);
    app.stop().await;
}

async fn a_plan_priced_in_eur_and_jpy_bills_a_jpy_customer_in_yen(
    database: billow_store::Database,
) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    let customer = arrange(&app).await;
    app.post(
        "/api/v1/subscriptions",
        json!({"customer_id": customer, "plan": EUR_AND_JPY, "quantity": 3, "start": "2024-01-01T00:00:00Z"}),
    )
    .await;

    app.set_now("2024-01-01T02:00:00Z").await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;

    assert_eq!(run["report"]["failed"], 0, "{run}");
    let invoices = app
        .get(&format!("/api/v1/invoices?customer_id={customer}"))
        .await;
    let invoices = invoices["data"].as_array().unwrap();
    assert_eq!(invoices.len(), 1, "{invoices:?}");
    let invoice = &invoices[0];
    // 3 seats × 1500 yen; the EUR price (3 × 9.99) makes no line.
    assert_eq!(invoice["currency"], "JPY", "{invoice}");
    assert_eq!(
        invoice["total"],
        json!({"amount": "4500", "amount_minor": 4500, "currency": "JPY"})
    );
    let lines = invoice["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{invoice}");
    assert_eq!(lines[0]["amount"]["amount_minor"], 4500);
    assert_eq!(lines[0]["quantity"], "3");
    app.stop().await;
}

async fn a_plan_names_the_currency_of_its_prices_and_keeps_to_its_minor_unit(
    database: billow_store::Database,
) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    let seats = |currency: Option<&str>, amount: &str| {
        let mut price = json!({"key": "seats", "pricing": {"model": "flat", "amount": amount}});
        if let Some(currency) = currency {
            price["currency"] = json!(currency);
        }
        price
    };

    let reason = refused(
        &app,
        "POST",
        "/api/v1/plans",
        json!({"key": "p", "cadence": "monthly", "prices": [seats(None, "10")]}),
        "currency",
    )
    .await;
    assert!(reason.contains("every price needs a currency"), "{reason}");
    refused(
        &app,
        "POST",
        "/api/v1/plans",
        json!({"key": "p", "cadence": "monthly", "prices": [seats(Some("EUR"), "10"), seats(None, "1500")]}),
        "currency",
    )
    .await;
    let reason = refused(
        &app,
        "POST",
        "/api/v1/plans",
        json!({"key": "p", "cadence": "monthly", "currency": "JPY", "prices": [seats(None, "9.99")]}),
        "prices[0].pricing.amount",
    )
    .await;
    assert_eq!(
        reason,
        "9.99 JPY has digits below the currency's minor unit (JPY has 0 decimals)"
    );
    refused(
        &app,
        "POST",
        "/api/v1/plans",
        json!({"key": "p", "cadence": "monthly", "currency": "EUR", "prices": [seats(Some("KWD"), "1.2345")]}),
        "prices[0].pricing.amount",
    )
    .await;
    refused(
        &app,
        "POST",
        "/api/v1/plans",
        json!({"key": "p", "cadence": "monthly", "currency": "YEN", "prices": [seats(None, "1")]}),
        "currency",
    )
    .await;
    let reason = refused(
        &app,
        "POST",
        "/api/v1/plans",
        json!({"key": "p", "cadence": "monthly", "currency": "EUR", "prices": [
            seats(None, "9.99"), seats(Some("JPY"), "1500"),
            {"key": "support", "pricing": {"model": "flat", "amount": "29"}}]}),
        "prices[2]",
    )
    .await;
    assert!(reason.contains("`support` has no price in JPY"), "{reason}");

    // An edit is checked the same way, and one with a currency is stored and shown with it.
    let plan = app
        .post(
            "/api/v1/plans",
            json!({"key": "p", "cadence": "monthly", "currency": "EUR", "prices": [seats(None, "9.99")]}),
        )
        .await;
    assert_eq!(plan["current_version"]["currency"], "EUR", "{plan}");
    refused(
        &app,
        "PUT",
        "/api/v1/plans/p",
        json!({"cadence": "monthly", "currency": "JPY", "prices": [seats(None, "9.99")]}),
        "prices[0].pricing.amount",
    )
    .await;
    let (status, edited) = app
        .call(
            "PUT",
            "/api/v1/plans/p",
            Some(json!({"cadence": "monthly", "currency": "EUR", "prices": [
                seats(None, "9.99"), seats(Some("JPY"), "1500")]})),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(
        edited["current_version"]["prices"][1]["currency"], "JPY",
        "{edited}"
    );
    app.stop().await;
}

async fn a_customer_keeps_a_currency_its_plans_have_prices_in(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    let customer = arrange(&app).await;
    let path = format!("/api/v1/customers/{customer}");
    app.post(
        "/api/v1/subscriptions",
        json!({"customer_id": customer, "plan": EUR_AND_JPY, "start": "2024-01-01T00:00:00Z"}),
    )
    .await;
    let (status, changed) = app
        .call("PATCH", &path, Some(json!({"currency": "EUR"})))
        .await;
    assert_eq!(
        (status, &changed["currency"]),
        (200, &json!("EUR")),
        "{changed}"
    );
    // Now on the EUR-only plan too (in resources, as a subscription would be), it can no
    // longer go back to JPY.
    app.post(
        "/api/v1/resources",
        json!({"customer_id": customer, "plan": EUR_ONLY, "created_at": "2024-01-01T00:00:00Z"}),
    )
    .await;
    let reason = refused(&app, "PATCH", &path, json!({"currency": "JPY"}), "currency").await;
    assert_eq!(
        reason,
        "plan `team-eur` (version 1), which the customer's subscriptions or resources use, has no price in JPY; its prices are in EUR"
    );
    assert_eq!(app.get(&path).await["currency"], "EUR");
    app.stop().await;
}

on_both_databases!(
    a_customer_keeps_a_currency_its_plans_have_prices_in,
    a_jpy_customer_cannot_subscribe_to_an_eur_only_plan,
    a_plan_priced_in_eur_and_jpy_bills_a_jpy_customer_in_yen,
    a_plan_names_the_currency_of_its_prices_and_keeps_to_its_minor_unit,
);
