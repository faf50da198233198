//! The bodies of the invoice and billing-run routes, as `/api/v1/openapi.json` documents them
//! (`FinalizeInvoice`, `VoidInvoice`, `CreateCreditNote`, `RecordPayment`, `CreateBillingRun`):
//! each documented field is taken, each other field is a 422 naming it, and an optional body
//! may be left out. Over real HTTP, on SQLite and PostgreSQL.

use billow_store::Database;
use serde_json::{json, Value};

use crate::billing::fields;
use crate::month::{on_both_databases, BillingApp};

/// A plan of seats at 10.00 in advance and two customers on 3 seats since 2024-01-01, at
/// 00:30, inside the grace hour of their first invoices. Returns the customers' ids.
async fn two_customers_on_seats(app: &BillingApp) -> (String, String) {
    app.post(
        "/api/v1/plans",
        json!({"key": "team", "cadence": "monthly", "currency": "USD", "prices": [
            {"key": "seats", "description": "Seats",
             "pricing": {"model": "per_unit", "unit_amount": "10.00"}}]}),
    )
    .await;
    let mut ids = Vec::new();
    for external_id in ["acme", "globex"] {
        let customer = app
            .post(
                "/api/v1/customers",
                json!({"external_id": external_id, "name": external_id, "currency": "USD"}),
            )
            .await;
        let id = customer["id"].as_str().unwrap().to_owned();
        app.post(
            "/api/v1/subscriptions",
            json!({"customer_id": id, "plan": "team", "quantity": 3,
                   "start": "2024-01-01T00:00:00Z"}),
        )
        .await;
        ids.push(id);
    }
    (ids[0].clone(), ids[1].clone())
}

/// The one invoice of `customer`.
async fn invoice_of(app: &BillingApp, customer: &str) -> Value {
    let page = app
        .get(&format!("/api/v1/invoices?customer_id={customer}"))
        .await;
    let invoices = page["data"].as_array().unwrap();
    assert_eq!(invoices.len(), 1, "{page}");
    invoices[0].clone()
}

/// Acme and Globex on seats, billed once: the app, Acme's id and its draft's id.
async fn acme_drafted(database: Database) -> (BillingApp, String, String) {
    let app = BillingApp::spawn(database, "2024-01-01T00:30:00Z").await;
    let (acme, _) = two_customers_on_seats(&app).await;
    app.post("/api/v1/billing-runs", json!({})).await;
    let id = invoice_of(&app, &acme).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (app, acme, id)
}

/// Asserts a 422 `validation` problem naming exactly `field`.
fn assert_invalid(status: u16, problem: &Value, field: &str) {
    assert_eq!(status, 422, "{problem}");
    assert_eq!(
        problem["type"], "urn:billow:problem:validation",
        "{problem}"
    );
    assert_eq!(fields(problem), [field], "{problem}");
}

async fn a_billing_run_takes_one_customer_id_and_nothing_else(database: Database) {
    let app = BillingApp::spawn(database, "2024-01-01T00:30:00Z").await;
    let (acme, globex) = two_customers_on_seats(&app).await;

    let (unknown_status, unknown) = app
        .call(
            "POST",
            "/api/v1/billing-runs",
            Some(json!({"customer": acme})),
        )
        .await;
    let (status, run) = app
        .call(
            "POST",
            "/api/v1/billing-runs",
            Some(json!({"customer_id": acme})),
        )
        .await;

    assert_invalid(unknown_status, &unknown, "customer");
    assert_eq!(status, 201, "{run}");
    assert_eq!(run["report"]["customers"], 1, "{run}");
    assert_eq!(run["report"]["drafted"], 1, "{run}");
    assert_eq!(run["report"]["finalized"], 0, "{run}");
    let drafted = invoice_of(&app, &acme).await;
    assert_eq!(drafted["status"], "draft");
    assert_eq!(drafted["total"]["amount_minor"], 3000);
    let others = app
        .get(&format!("/api/v1/invoices?customer_id={globex}"))
        .await;
    assert_eq!(
        others["data"],
        json!([]),
        "only the named customer is billed"
    );
    app.stop().await;
}

async fn finalize_and_void_take_an_empty_body_and_refuse_any_field(database: Database) {
    let app = BillingApp::spawn(database, "2024-01-01T00:30:00Z").await;
    let (acme, globex) = two_customers_on_seats(&app).await;
    app.post("/api/v1/billing-runs", json!({})).await;
    let draft = invoice_of(&app, &acme).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = invoice_of(&app, &globex).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let finalize = format!("/api/v1/invoices/{draft}/finalize");
    // Acme pays in 14 days; Globex in the workspace's 30.
    let (patched_status, patched) = app
        .call(
            "PATCH",
            &format!("/api/v1/customers/{acme}"),
            Some(json!({"net_days": 14})),
        )
        .await;
    assert_eq!(patched_status, 200, "{patched}");

    let (refused_status, refused) = app
        .call("POST", &finalize, Some(json!({"auto_advance": true})))
        .await;
    let still_draft = app.get(&format!("/api/v1/invoices/{draft}")).await;
    let (status, finalized) = app.call("POST", &finalize, None).await;
    let (other_status, other_finalized) = app
        .call(
            "POST",
            &format!("/api/v1/invoices/{other}/finalize"),
            Some(json!({})),
        )
        .await;

    assert_invalid(refused_status, &refused, "auto_advance");
    assert_eq!(still_draft["status"], "draft");
    assert_eq!(still_draft["number"], Value::Null);
    assert_eq!(status, 200, "{finalized}");
    assert_eq!(finalized["status"], "open");
    assert_eq!(finalized["number"], 1);
    assert_eq!(finalized["total"]["amount_minor"], 3000);
    assert_eq!(finalized["total"]["amount"], "30.00");
    assert_eq!(finalized["due_at"], "2024-01-15T00:30:00.000000Z");
    assert_eq!(other_status, 200, "{other_finalized}");
    assert_eq!(other_finalized["number"], 2);
    assert_eq!(other_finalized["due_at"], "2024-01-31T00:30:00.000000Z");

    let void = format!("/api/v1/invoices/{draft}/void");
    let (refused_status, refused) = app
        .call("POST", &void, Some(json!({"reason": "duplicate"})))
        .await;
    let still_open = app.get(&format!("/api/v1/invoices/{draft}")).await;
    let (status, voided) = app.call("POST", &void, None).await;
    let (other_status, other_voided) = app
        .call(
            "POST",
            &format!("/api/v1/invoices/{other}/void"),
            Some(json!({})),
        )
        .await;
    let (again_status, again) = app.call("POST", &void, None).await;

    assert_invalid(refused_status, &refused, "reason");
    assert_eq!(still_open["status"], "open");
    assert_eq!(status, 200, "{voided}");
    assert_eq!(voided["status"], "void");
    assert_eq!(voided["number"], 1);
    assert_eq!(voided["total"]["amount_minor"], 3000);
    assert_eq!(other_status, 200, "{other_voided}");
    assert_eq!(other_voided["status"], "void");
    assert_eq!(again_status, 409, "{again}");
    app.stop().await;
}

async fn credit_notes_and_payments_take_their_documented_fields(database: Database) {
    let (app, _, id) = acme_drafted(database).await;
    app.post(&format!("/api/v1/invoices/{id}/finalize"), json!({}))
        .await;
    let credit_notes = format!("/api/v1/invoices/{id}/credit-notes");
    let payments = format!("/api/v1/invoices/{id}/payments");

    let refusals = [
        (json!({"reason": "SLA"}), "lines"),
        (
            json!({"lines": [{"description": "Outage", "amount": "5.00", "memo": "x"}]}),
            "lines[0].memo",
        ),
        (
            json!({"lines": [{"description": "Outage"}]}),
            "lines[0].amount",
        ),
        (
            json!({"lines": [{"description": "Outage", "amount": "5.00"}], "currency": "USD"}),
            "currency",
        ),
    ];
    for (body, field) in refusals {
        let (status, problem) = app.call("POST", &credit_notes, Some(body)).await;
        assert_invalid(status, &problem, field);
    }
    // Each line credits a positive amount, and their sum (core's) fits in minor units: a refused
    // line is named by its place.
    let line_refusals = [
        (
            json!({"lines": [{"description": "Outage", "amount": "5.00"},
                             {"description": "Goodwill", "amount": "0.00"}]}),
            "lines[1].amount",
            "must be positive",
        ),
        (
            json!({"lines": [{"description": "Outage", "amount": "-1.00"}]}),
            "lines[0].amount",
            "must be positive",
        ),
        (
            json!({"lines": [{"description": "Outage", "amount": "92233720368547758.07"},
                             {"description": "Goodwill", "amount": "0.01"}]}),
            "lines[1].amount",
            "is too large",
        ),
    ];
    for (body, field, reason) in line_refusals {
        let (status, problem) = app.call("POST", &credit_notes, Some(body)).await;
        assert_invalid(status, &problem, field);
        assert_eq!(problem["errors"][0]["reason"], reason, "{problem}");
    }
    let (status, note) = app
        .call(
            "POST",
            &credit_notes,
            Some(json!({"lines": [
                {"description": "Outage", "amount": "5.00", "line": 1},
                {"description": "Goodwill", "amount": 0.25}], "reason": "SLA"})),
        )
        .await;

    assert_eq!(status, 201, "{note}");
    assert_eq!(note["invoice_id"], id.as_str());
    assert_eq!(note["total"]["amount_minor"], 525);
    assert_eq!(note["total"]["amount"], "5.25");
    assert_eq!(note["reason"], "SLA");
    assert_eq!(note["lines"][0]["description"], "Outage");
    assert_eq!(note["lines"][0]["amount"]["amount_minor"], 500);
    assert_eq!(note["lines"][0]["line"], 1);
    assert_eq!(note["lines"][1]["amount"]["amount_minor"], 25);
    assert_eq!(note["lines"][1]["line"], Value::Null);

    // A line names a line of the invoice, and credits at most what is left of it: its amount
    // less what earlier notes, and earlier lines of the same note, took off it.
    let invoice = app.get(&format!("/api/v1/invoices/{id}")).await;
    let line_one = invoice["lines"][0]["amount"]["amount_minor"]
        .as_i64()
        .unwrap();
    let left = line_one - 500;
    let minor = |amount: i64| format!("{}.{:02}", amount / 100, amount % 100);
    for (body, field, reason) in [
        (
            json!({"lines": [{"description": "Outage", "amount": "1.00", "line": 9}]}),
            "lines[0].line",
            "the invoice has no line 9".to_owned(),
        ),
        (
            json!({"lines": [{"description": "Outage", "amount": minor(left + 1), "line": 1}]}),
            "lines[0].amount",
            format!(
                "is more than the {} left to credit on invoice line 1 (of {})",
                minor(left),
                minor(line_one)
            ),
        ),
        (
            json!({"lines": [{"description": "Outage", "amount": minor(left), "line": 1},
                             {"description": "Again", "amount": "0.01", "line": 1}]}),
            "lines[1].amount",
            format!(
                "is more than the 0.00 left to credit on invoice line 1 (of {})",
                minor(line_one)
            ),
        ),
    ] {
        let (status, problem) = app.call("POST", &credit_notes, Some(body)).await;
        assert_invalid(status, &problem, field);
        assert_eq!(problem["errors"][0]["reason"], reason, "{problem}");
    }
    // Nothing of the refused notes was kept.
    let notes = app.get(&credit_notes).await;
    assert_eq!(notes["data"].as_array().unwrap().len(), 1, "{notes}");

    for (body, field) in [
        (json!({"state": "Refunded"}), "state"),
        (json!({"state": "PaymentPending"}), "state"),
        (json!({"message": "wire"}), "state"),
        (json!({"state": "Paid", "amount": "30.00"}), "amount"),
    ] {
        let (status, problem) = app.call("POST", &payments, Some(body)).await;
        assert_invalid(status, &problem, field);
    }
    let (failed_status, failed) = app
        .call(
            "POST",
            &payments,
            Some(json!({"state": "PaymentFailed", "message": "card declined"})),
        )
        .await;
    let (paid_status, paid) = app
        .call("POST", &payments, Some(json!({"state": "Paid"})))
        .await;

    assert_eq!(failed_status, 201, "{failed}");
    assert_eq!(failed["status"], "open");
    assert_eq!(paid_status, 201, "{paid}");
    assert_eq!(paid["invoice_id"], id.as_str());
    assert_eq!(paid["status"], "paid");
    let history: Vec<(&str, &Value)> = paid["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| (entry["state"].as_str().unwrap(), &entry["message"]))
        .collect();
    assert_eq!(
        history,
        [
            ("PaymentPending", &Value::Null),
            ("PaymentFailed", &json!("card declined")),
            ("Paid", &Value::Null),
        ]
    );
    // A paid invoice's payment is final: no state follows it, not even `Paid` again (a 409
    // naming both states), and the history is unchanged.
    for state in ["Paid", "PaymentFailed", "PaymentInProgress"] {
        let (status, problem) = app
            .call("POST", &payments, Some(json!({"state": state})))
            .await;
        assert_eq!(status, 409, "{state}: {problem}");
        assert_eq!(problem["type"], "urn:billow:problem:invalid-state");
        assert_eq!(
            problem["detail"],
            format!("The payment of invoice {id} is Paid: it cannot become {state}.")
        );
    }
    let after = app.get(&payments).await;
    assert_eq!(after["data"].as_array().unwrap().len(), 3, "{after}");
    assert_eq!(after["status"], "paid");
    app.stop().await;
}

/// Credited in full, an open invoice is settled: paid, nothing remaining, no instructions to
/// pay, and its payment history says why.
async fn an_invoice_credited_in_full_is_paid(database: Database) {
    let (app, acme, id) = acme_drafted(database).await;
    let open = app
        .post(&format!("/api/v1/invoices/{id}/finalize"), json!({}))
        .await;
    let total = open["total"]["amount"].as_str().unwrap().to_owned();
    assert!(open["payment_instructions"].is_object(), "{open}");
    let credit_notes = format!("/api/v1/invoices/{id}/credit-notes");
    let (status, _) = app
        .call(
            "POST",
            &credit_notes,
            Some(json!({"lines": [{"description": "Goodwill", "amount": "1.00"}]})),
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        app.get(&format!("/api/v1/invoices/{id}")).await["status"],
        "open"
    );

    let rest = format!(
        "{:.2}",
        total.parse::<rust_decimal::Decimal>().unwrap() - rust_decimal::Decimal::ONE
    );
    let (status, note) = app
        .call(
            "POST",
            &credit_notes,
            Some(json!({"lines": [{"description": "Goodwill", "amount": rest}]})),
        )
        .await;
    assert_eq!(status, 201, "{note}");

    let settled = app.get(&format!("/api/v1/invoices/{id}")).await;
    assert_eq!(settled["status"], "paid", "{settled}");
    assert_eq!(settled["amount_remaining"]["amount_minor"], 0);
    assert_eq!(settled["amount_due"]["amount_minor"], 0);
    assert_eq!(settled["payment_instructions"], Value::Null);
    let history = app.get(&format!("/api/v1/invoices/{id}/payments")).await;
    let last = history["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["state"], "Paid", "{history}");
    assert_eq!(last["message"], "credited in full");
    // The customer's billing history shows it paid, with what was credited and nothing owed.
    let page = app
        .get(&format!("/api/v1/customers/{acme}/billing-history"))
        .await;
    let entry = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["id"] == id.as_str())
        .unwrap_or_else(|| panic!("no {id} in {page}"))
        .clone();
    assert_eq!(entry["status"], "paid", "{entry}");
    assert_eq!(entry["credited"], settled["total"]);
    assert_eq!(entry["amount_due"]["amount_minor"], 0);
    assert_eq!(entry["amount_remaining"]["amount_minor"], 0);
    assert_eq!(entry["due_at"], settled["due_at"]);
    app.stop().await;
}

on_both_databases!(
    an_invoice_credited_in_full_is_paid,
    a_billing_run_takes_one_customer_id_and_nothing_else,
    finalize_and_void_take_an_empty_body_and_refuse_any_field,
    credit_notes_and_payments_take_their_documented_fields,
);
