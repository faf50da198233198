//! What the document says of every native response, checked on real ones: each list of the
//! invoice, usage and token routes answers the one envelope (`data`, `has_more`,
//! `next_cursor`), and every instant of every body, invoice lines included, is RFC 3339 in UTC
//! with six fractional digits. Over real HTTP, on SQLite and PostgreSQL.

use billow_store::Database;
use jiff::Timestamp;
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};

use crate::billing::{compute_event, customer_with_vat, metered_catalog, metered_subscription};
use crate::month::{on_both_databases, BillingApp};

/// Whether `text` starts as an RFC 3339 date-time does (`2024-01-01T`).
fn looks_like_an_instant(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() > 11
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
}

/// Asserts that every instant in `body` is written `YYYY-MM-DDTHH:MM:SS.ffffffZ`; returns how
/// many there are.
fn assert_six_digit_instants(body: &Value) -> usize {
    match body {
        Value::String(text) if looks_like_an_instant(text) => {
            let bytes = text.as_bytes();
            let six_digits = bytes.len() == 27
                && bytes[19] == b'.'
                && bytes[20..26].iter().all(u8::is_ascii_digit)
                && bytes[26] == b'Z';
            assert!(six_digits, "{text:?} is not written with six digits in UTC");
            assert!(text.parse::<Timestamp>().is_ok(), "{text:?}");
            1
        }
        Value::Array(items) => items.iter().map(assert_six_digit_instants).sum(),
        Value::Object(members) => members.values().map(assert_six_digit_instants).sum(),
        _ => 0,
    }
}

/// Asserts that `body` is the list envelope with `length` items on its last page; returns the
/// items.
fn assert_whole_page(body: &Value, length: usize) -> &Vec<Value> {
    let data = body["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {body}"));
    assert_eq!(data.len(), length, "{body}");
    assert_eq!(body["has_more"], false, "{body}");
    assert!(body.get("next_cursor").is_some(), "{body}");
    assert_eq!(body["next_cursor"], Value::Null, "{body}");
    data
}

/// Stops `app` and drops its database when it is a PostgreSQL one (an SQLite file goes with
/// the app's directory).
async fn finish(app: BillingApp, database: Database) {
    app.stop().await;
    let Database::Postgres(url) = database else {
        return;
    };
    let name = url.database_name().unwrap().to_owned();
    let admin_url = std::env::var("BILLOW_TEST_DATABASE_URL").unwrap();
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    admin
        .execute(format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#).as_str())
        .await
        .unwrap();
}

/// A EUR customer with a metered subscription since 2024-01-01 and 20 hours of compute on
/// 2024-01-10 (sent with an offset and nanoseconds), billed on 2024-02-01 at 01:00 (invoice
/// #1, finalized); then the clock at 2024-02-10T00:00:00.5Z. Returns the app, the customer and
/// its invoice.
async fn a_billed_customer(database: &Database) -> (BillingApp, String, Value) {
    let app = BillingApp::spawn(database.clone(), "2024-01-01T00:00:00Z").await;
    metered_catalog(&app, false).await;
    let customer = customer_with_vat(&app, "enveloped").await;
    let subscription = metered_subscription(&app, &customer).await;
    app.post(
        "/api/v1/events",
        json!([compute_event(
            "e1",
            &subscription,
            "2024-01-10T13:00:00.123456789+01:00",
            20
        )]),
    )
    .await;
    app.set_now("2024-02-01T01:00:00Z").await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(run["report"]["finalized"], 1, "{run}");
    app.set_now("2024-02-10T00:00:00.5Z").await;
    let invoice = app
        .get(&format!("/api/v1/customers/{customer}/last-invoice"))
        .await;
    (app, customer, invoice)
}

async fn the_invoice_routes_answer_the_envelope_and_six_digit_instants(database: Database) {
    // Arrange.
    let (app, customer, invoice) = a_billed_customer(&database).await;
    let id = invoice["id"].as_str().unwrap().to_owned();

    // Act.
    let list = app
        .get(&format!("/api/v1/invoices?customer_id={customer}"))
        .await;
    let shown = app.get(&format!("/api/v1/invoices/{id}")).await;
    let credit_note = app
        .post(
            &format!("/api/v1/invoices/{id}/credit-notes"),
            json!({"lines": [{"description": "Outage", "amount": "1.00", "line": 1}]}),
        )
        .await;
    let credit_notes = app
        .get(&format!("/api/v1/invoices/{id}/credit-notes"))
        .await;
    let paid = app
        .post(
            &format!("/api/v1/invoices/{id}/payments"),
            json!({"state": "Paid", "message": "wire 42"}),
        )
        .await;
    let payments = app.get(&format!("/api/v1/invoices/{id}/payments")).await;
    let history = app
        .get(&format!("/api/v1/customers/{customer}/billing-history"))
        .await;
    let upcoming = app
        .get(&format!("/api/v1/customers/{customer}/invoices/upcoming"))
        .await;

    // Assert: the lists.
    assert_eq!(assert_whole_page(&list, 1)[0]["id"], id.as_str());
    assert_eq!(assert_whole_page(&credit_notes, 1)[0], credit_note);
    let states: Vec<&Value> = assert_whole_page(&payments, 2)
        .iter()
        .map(|entry| &entry["state"])
        .collect();
    assert_eq!(states, ["PaymentPending", "Paid"], "{payments}");
    assert_eq!(
        (&payments["invoice_id"], &payments["status"]),
        (&json!(id), &json!("paid")),
        "{payments}"
    );
    assert_eq!(paid, payments);
    let entry = &assert_whole_page(&history, 1)[0];
    assert_eq!(entry["credited"]["amount_minor"], 100, "{history}");
    let computed = assert_whole_page(&upcoming, 1);
    assert_eq!(
        computed[0]["period"]["start"],
        "2024-02-01T00:00:00.000000Z"
    );
    // The instants, to the microsecond and in UTC.
    assert_eq!(invoice["issued_at"], "2024-02-01T00:00:00.000000Z");
    assert_eq!(
        invoice["period"],
        json!({"start": "2024-01-01T00:00:00.000000Z", "end": "2024-02-01T00:00:00.000000Z"})
    );
    assert_eq!(invoice["finalized_at"], "2024-02-01T01:00:00.000000Z");
    assert_eq!(
        invoice["lines"][0]["period"]["end"],
        "2024-02-01T00:00:00.000000Z"
    );
    assert_eq!(upcoming["now"], "2024-02-10T00:00:00.500000Z");
    assert_eq!(credit_note["created_at"], "2024-02-10T00:00:00.500000Z");
    assert_eq!(
        payments["data"][1]["at"], "2024-02-10T00:00:00.500000Z",
        "{payments}"
    );
    // Every instant of every body: the invoice's own, its lines', the upcoming invoice's.
    let bodies = [
        &list,
        &shown,
        &credit_note,
        &credit_notes,
        &payments,
        &history,
        &upcoming,
    ];
    let instants: usize = bodies.into_iter().map(assert_six_digit_instants).sum();
    assert!(instants >= 20, "{instants} instants");
    finish(app, database).await;
}

async fn the_usage_token_settings_and_run_routes_answer_the_envelope_and_six_digit_instants(
    database: Database,
) {
    // Arrange.
    let (app, customer, _) = a_billed_customer(&database).await;

    // Act.
    let usage = app
        .get(&format!(
            "/api/v1/customers/{customer}/usage?from=2024-01-09T23:00:00-01:00&to=2024-01-12T00:00:00Z"
        ))
        .await;
    let token = app
        .post(&format!("/api/v1/customers/{customer}/tokens"), json!({}))
        .await;
    let tokens = app
        .get(&format!("/api/v1/customers/{customer}/tokens"))
        .await;
    let (status, settings) = app
        .call(
            "PATCH",
            "/api/v1/workspace/settings",
            Some(json!({"net_days": 14})),
        )
        .await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;

    // Assert.
    assert_eq!(status, 200, "{settings}");
    let meters = assert_whole_page(&usage, 1);
    assert_eq!(meters[0]["meter"], "compute");
    assert_eq!(meters[0]["quantity"], "20", "{usage}");
    assert_eq!(usage["from"], "2024-01-10T00:00:00.000000Z");
    assert_eq!(
        meters[0]["series"][0],
        json!({"start": "2024-01-10T00:00:00.000000Z", "end": "2024-01-11T00:00:00.000000Z",
               "quantity": "20"})
    );
    let listed = assert_whole_page(&tokens, 1);
    assert_eq!(listed[0]["id"], token["id"]);
    assert_eq!(token["expires_at"], "2024-02-11T00:00:00.500000Z");
    assert_eq!(listed[0]["created_at"], "2024-02-10T00:00:00.500000Z");
    assert_eq!(settings["updated_at"], "2024-02-10T00:00:00.500000Z");
    assert_eq!(run["now"], "2024-02-10T00:00:00.500000Z");
    let instants: usize = [&usage, &token, &tokens, &settings, &run]
        .into_iter()
        .map(assert_six_digit_instants)
        .sum();
    assert!(instants >= 10, "{instants} instants");
    finish(app, database).await;
}

on_both_databases!(
    the_invoice_routes_answer_the_envelope_and_six_digit_instants,
    the_usage_token_settings_and_run_routes_answer_the_envelope_and_six_digit_instants,
);
