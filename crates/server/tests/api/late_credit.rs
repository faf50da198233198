//! Negative late usage of a subscription with no further invoice is a credit note of the invoice
//! whose usage went down, never an invoice with a negative total (docs/billing-runs.md, "Late
//! usage"): its amount and tax are the engine's, and it never credits more than is left to
//! credit on the invoice. Over real HTTP, on SQLite and PostgreSQL.

use billow_store::billing::AdjustmentRecord;
use billow_store::Database;
use serde_json::{json, Value};

use crate::billing::{
    charge_vat, compute_event, customer_with_vat, lines_of, metered_catalog, metered_subscription,
};
use crate::month::{on_both_databases, BillingApp};

/// The workspace every `BillingApp` makes.
async fn workspace(app: &BillingApp) -> billow_store::WorkspaceId {
    app.store
        .workspace_named_or_created(
            &billow_store::WorkspaceName::parse("Acme").unwrap(),
            jiff::Timestamp::now(),
        )
        .await
        .unwrap()
        .id
}

async fn adjustments(app: &BillingApp, subscription: &str) -> Vec<AdjustmentRecord> {
    app.store
        .adjustments(&workspace(app).await, subscription)
        .await
        .unwrap()
}

/// A subscription of `customer` to the metered plan since 2024-01-01, canceled at the end of the
/// term that holds `cancel_at`.
async fn canceled_subscription(app: &BillingApp, customer: &str, cancel_at: &str) -> String {
    let subscription = metered_subscription(app, customer).await;
    app.post(
        &format!("/api/v1/subscriptions/{subscription}/changes"),
        json!({"cancel": "end_of_term", "at": cancel_at}),
    )
    .await;
    subscription
}

/// `(credited, drafted, finalized, adjustments)` of a run's report.
fn counts(run: &Value) -> (i64, i64, i64, i64) {
    let report = &run["report"];
    let count = |name: &str| {
        report[name]
            .as_i64()
            .unwrap_or_else(|| panic!("no {name} in {run}"))
    };
    (
        count("credit_notes"),
        count("drafted"),
        count("finalized"),
        count("adjustments"),
    )
}

/// The invoice's credit notes.
async fn credit_notes(app: &BillingApp, invoice_id: &str) -> Vec<Value> {
    app.get(&format!("/api/v1/invoices/{invoice_id}/credit-notes"))
        .await["data"]
        .as_array()
        .unwrap()
        .clone()
}

/// The problem of a manual credit note of `amount` on the invoice: what is left to credit on it
/// shows in its detail.
async fn credit_refused(app: &BillingApp, invoice_id: &str, amount: &str) -> String {
    let (status, problem) = app
        .call(
            "POST",
            &format!("/api/v1/invoices/{invoice_id}/credit-notes"),
            Some(json!({"lines": [{"description": "probe", "amount": amount}]})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    problem["errors"][0]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason in {problem}"))
        .to_owned()
}

/// The lines of a late-usage credit note of invoice #`number`: the correction before tax and its
/// VAT at 19 %, in minor units.
fn late_usage_lines(number: u32, net_minor: i64, tax_minor: i64) -> Vec<(String, String, i64)> {
    vec![
        (
            "adjustment".to_owned(),
            format!("Late usage for invoice #{number}"),
            net_minor,
        ),
        ("tax".to_owned(), "VAT 19%".to_owned(), tax_minor),
    ]
}

/// The invoices of `subscription`, oldest first.
async fn invoices_of(app: &BillingApp, subscription: &str) -> Vec<Value> {
    let mut invoices = app
        .get(&format!("/api/v1/invoices?subscription_id={subscription}"))
        .await["data"]
        .as_array()
        .unwrap()
        .clone();
    invoices.reverse();
    invoices
}

/// VAT 19 % on EUR; seats 10.00 and compute 0.08 an hour, both in arrears ([`metered_catalog`]);
/// a customer `external_id` with a subscription since 2024-01-01, canceled at the end of January
/// when `canceled`, and `hours` of compute on 2024-01-10, billed by a run at 2024-02-01T01:00:
/// the app, the customer, the subscription and its January invoice.
async fn january_billed(
    database: Database,
    external_id: &str,
    canceled: bool,
    hours: i32,
) -> (BillingApp, String, String, Value) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    metered_catalog(&app, false).await;
    let customer = customer_with_vat(&app, external_id).await;
    let subscription = if canceled {
        canceled_subscription(&app, &customer, "2024-01-20T00:00:00Z").await
    } else {
        metered_subscription(&app, &customer).await
    };
    let usage = compute_event(
        &format!("{external_id}-january"),
        &subscription,
        "2024-01-10T00:00:00Z",
        hours,
    );
    app.post("/api/v1/events", json!([usage])).await;
    app.set_now("2024-02-01T01:00:00Z").await;
    app.post("/api/v1/billing-runs", json!({})).await;
    let january = invoices_of(&app, &subscription).await.remove(0);
    (app, customer, subscription, january)
}

/// A correction of `hours` (negative) for January, sent at 2024-02-02 as event `id`: the report of
/// the run that records it, then of the run at `then`.
async fn correct_january(
    app: &BillingApp,
    subscription: &str,
    id: &str,
    hours: i32,
    then: &str,
) -> (Value, Value) {
    app.set_now("2024-02-02T00:00:00Z").await;
    let correction = compute_event(id, subscription, "2024-01-25T00:00:00Z", hours);
    app.post("/api/v1/events", json!([correction])).await;
    let recorded = app.post("/api/v1/billing-runs", json!({})).await;
    app.set_now(then).await;
    let next = app.post("/api/v1/billing-runs", json!({})).await;
    (recorded, next)
}

/// VAT 19 % on EUR; seats 10.00 and compute 0.08 an hour, both in arrears; a subscription
/// canceled at the end of January with 20 hours in January: invoice #1, 13.80 (seats 10.00 +
/// VAT 1.90, compute 1.60 + VAT 0.30).
async fn negative_late_usage_of_a_canceled_subscription_is_a_credit_note_of_its_invoice(
    database: Database,
) {
    // Arrange.
    let (app, _, subscription, january) = january_billed(database, "credited", true, 20).await;
    assert_eq!(
        (
            &january["number"],
            &january["reason"],
            &january["total"]["amount_minor"]
        ),
        (&json!(1), &json!("cancellation"), &json!(1380)),
        "{january}"
    );
    let january_id = january["id"].as_str().unwrap().to_owned();

    // Act: a correction of −5 hours for January after finalization (−0.40 before tax), recorded
    // by one run and credited by the next.
    let (recorded, credited) =
        correct_january(&app, &subscription, "c2", -5, "2024-02-02T00:10:00Z").await;

    // Assert: a credit note of 0.40 + VAT 0.076 → 0.08 (half up), no new invoice.
    assert_eq!(counts(&recorded), (0, 0, 0, 1), "{recorded}");
    assert_eq!(counts(&credited), (1, 0, 0, 0), "{credited}");
    let invoices = invoices_of(&app, &subscription).await;
    assert_eq!(invoices.len(), 1, "no standalone invoice: {invoices:?}");
    assert_eq!(invoices[0]["total"]["amount_minor"], 1380, "unchanged");
    let notes = credit_notes(&app, &january_id).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["total"]["amount_minor"], 48);
    assert_eq!(notes[0]["invoice_id"], january_id.as_str());
    assert_eq!(lines_of(&notes[0]), late_usage_lines(1, 40, 8));
    let recorded = adjustments(&app, &subscription).await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    assert_eq!(recorded[0].amount_minor, -40);
    assert_eq!(
        recorded[0].applied_invoice_id.as_deref(),
        Some(january_id.as_str())
    );
    assert_eq!(
        notes[0]["lines"][0]["adjustment"],
        recorded[0].id.as_str(),
        "the note names the adjustment it settles"
    );
    // Credited: 0.48 of 13.80, so 13.32 is left.
    assert_eq!(
        credit_refused(&app, &january_id, "13.33").await,
        "credits 1333 minor units, but only 1332 are left to credit on the invoice"
    );

    // Act: 13.00 credited by hand, then a correction of −10 hours (−0.80 and VAT −0.15).
    app.post(
        &format!("/api/v1/invoices/{january_id}/credit-notes"),
        json!({"lines": [{"description": "Goodwill", "amount": "13.00"}]}),
    )
    .await;
    app.set_now("2024-02-03T00:00:00Z").await;
    let correction = compute_event("c3", &subscription, "2024-01-26T00:00:00Z", -10);
    app.post("/api/v1/events", json!([correction])).await;
    app.post("/api/v1/billing-runs", json!({})).await;
    app.set_now("2024-02-03T00:10:00Z").await;
    let capped = app.post("/api/v1/billing-runs", json!({})).await;

    // Assert: only the 0.32 left is credited, the tax keeping its share (0.15 × 32 / 95 → 0.05).
    assert_eq!(counts(&capped), (1, 0, 0, 0), "{capped}");
    let notes = credit_notes(&app, &january_id).await;
    assert_eq!(notes.len(), 3, "{notes:?}");
    assert_eq!(notes[2]["total"]["amount_minor"], 32);
    assert_eq!(lines_of(&notes[2]), late_usage_lines(1, 27, 5));
    let credited_minor: i64 = notes
        .iter()
        .map(|note| note["total"]["amount_minor"].as_i64().unwrap())
        .sum();
    assert_eq!(credited_minor, 1380, "48 + 1300 + 32: the whole invoice");
    assert_eq!(
        credit_refused(&app, &january_id, "0.01").await,
        "credits 1 minor units, but only 0 are left to credit on the invoice"
    );

    // Act: one more correction, with nothing left to credit.
    app.set_now("2024-02-04T00:00:00Z").await;
    let correction = compute_event("c4", &subscription, "2024-01-27T00:00:00Z", -1);
    app.post("/api/v1/events", json!([correction])).await;
    app.post("/api/v1/billing-runs", json!({})).await;
    app.set_now("2024-02-04T00:10:00Z").await;
    let settled = app.post("/api/v1/billing-runs", json!({})).await;

    // Assert: the adjustment is settled without a credit note, and nothing is left pending.
    assert_eq!(counts(&settled), (0, 0, 0, 0), "{settled}");
    assert_eq!(credit_notes(&app, &january_id).await.len(), 3);
    let recorded = adjustments(&app, &subscription).await;
    let amounts: Vec<(i64, Option<&str>)> = recorded
        .iter()
        .map(|a| (a.amount_minor, a.applied_invoice_id.as_deref()))
        .collect();
    let source = Some(january_id.as_str());
    assert_eq!(amounts, [(-40, source), (-80, source), (-8, source)]);
    let again = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(counts(&again), (0, 0, 0, 0), "{again}");
    assert_eq!(invoices_of(&app, &subscription).await.len(), 1);
    app.stop().await;
}

/// A subscription canceled at the end of February, 20 hours in each month: invoices #1 and #2,
/// 13.80 each. Late usage then raises January (+10 hours) and lowers February (−5 hours).
async fn a_canceled_subscription_bills_late_usage_that_raises_and_credits_what_lowers(
    database: Database,
) {
    // Arrange.
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    metered_catalog(&app, false).await;
    let customer = customer_with_vat(&app, "mixed").await;
    let subscription = canceled_subscription(&app, &customer, "2024-02-10T00:00:00Z").await;
    app.post(
        "/api/v1/events",
        json!([
            compute_event("m1", &subscription, "2024-01-10T00:00:00Z", 20),
            compute_event("m2", &subscription, "2024-02-10T00:00:00Z", 20)
        ]),
    )
    .await;
    app.set_now("2024-02-01T01:00:00Z").await;
    app.post("/api/v1/billing-runs", json!({})).await;
    app.set_now("2024-03-01T01:00:00Z").await;
    app.post("/api/v1/billing-runs", json!({})).await;
    let invoices = invoices_of(&app, &subscription).await;
    let totals: Vec<(&Value, &Value)> = invoices
        .iter()
        .map(|i| (&i["number"], &i["total"]["amount_minor"]))
        .collect();
    assert_eq!(
        totals,
        [(&json!(1), &json!(1380)), (&json!(2), &json!(1380))]
    );
    let february_id = invoices[1]["id"].as_str().unwrap().to_owned();

    // Act: +0.80 for January, −0.40 for February; drafted and credited, then finalized.
    app.set_now("2024-03-02T00:00:00Z").await;
    app.post(
        "/api/v1/events",
        json!([
            compute_event("m3", &subscription, "2024-01-25T00:00:00Z", 10),
            compute_event("m4", &subscription, "2024-02-25T00:00:00Z", -5)
        ]),
    )
    .await;
    let recorded = app.post("/api/v1/billing-runs", json!({})).await;
    app.set_now("2024-03-02T00:10:00Z").await;
    let drafted = app.post("/api/v1/billing-runs", json!({})).await;
    app.set_now("2024-03-02T01:10:00Z").await;
    let finalized = app.post("/api/v1/billing-runs", json!({})).await;

    // Assert: the standalone invoice bills only the +0.80 and its VAT; February is credited.
    assert_eq!(counts(&recorded), (0, 0, 0, 2), "{recorded}");
    assert_eq!(counts(&drafted), (1, 1, 0, 0), "{drafted}");
    assert_eq!(counts(&finalized), (0, 0, 1, 0), "{finalized}");
    let invoices = invoices_of(&app, &subscription).await;
    assert_eq!(invoices.len(), 3, "{invoices:?}");
    let standalone = &invoices[2];
    assert_eq!(
        (&standalone["reason"], &standalone["number"]),
        (&json!("late_usage"), &json!(3))
    );
    assert_eq!(lines_of(standalone), late_usage_lines(1, 80, 15));
    assert_eq!(standalone["total"]["amount_minor"], 95);
    let notes = credit_notes(&app, &february_id).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(lines_of(&notes[0]), late_usage_lines(2, 40, 8));
    assert_eq!(notes[0]["total"]["amount_minor"], 48);
    let applied: Vec<(i64, Option<String>)> = adjustments(&app, &subscription)
        .await
        .into_iter()
        .map(|a| (a.amount_minor, a.applied_invoice_id.map(String::from)))
        .collect();
    let standalone_id = standalone["id"].as_str().map(str::to_owned);
    assert!(
        applied.contains(&(80, standalone_id)) && applied.contains(&(-40, Some(february_id))),
        "{applied:?}"
    );
    app.stop().await;
}

/// The same invoice #1 (13.80, VAT 19 %); the customer's rate becomes 16 % before a correction of
/// −10 hours (−0.80) arrives: the credit note gives back the 19 % the invoice charged, not 16 %.
async fn a_credit_note_is_taxed_at_the_rate_of_the_invoice_it_corrects(database: Database) {
    // Arrange.
    let (app, customer, subscription, january) =
        january_billed(database, "retaxed", true, 20).await;
    assert_eq!(january["total"]["amount_minor"], 1380, "{january}");
    let january_id = january["id"].as_str().unwrap().to_owned();
    charge_vat(&app, &customer, "16").await;

    // Act: −10 hours for January, recorded by one run and credited by the next.
    let (_, credited) =
        correct_january(&app, &subscription, "r2", -10, "2024-02-02T00:10:00Z").await;

    // Assert: 0.80 + 19 % (0.152 → 0.15) = 0.95, where 16 % would have made 0.93.
    assert_eq!(counts(&credited), (1, 0, 0, 0), "{credited}");
    let notes = credit_notes(&app, &january_id).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(lines_of(&notes[0]), late_usage_lines(1, 80, 15));
    assert_eq!(notes[0]["total"]["amount_minor"], 95);
    // The invoice shows the credit and asks for the rest.
    let invoice = app.get(&format!("/api/v1/invoices/{january_id}")).await;
    assert_eq!(invoice["credited"]["amount_minor"], 95, "{invoice}");
    assert_eq!(
        invoice["amount_due"]["amount_minor"],
        1380 - 95,
        "{invoice}"
    );
    app.stop().await;
}

/// VAT 19 %; seats 10.00 and compute 0.08 an hour in arrears; an active subscription with 200
/// hours in January: invoice #1, 30.94. A correction of −150 hours (−12.00) arrives in February,
/// when February has no usage: billed on February's invoice it would make it −2.38 (10.00 + 1.90
/// − 12.00 − 2.28), so it is a credit note of January instead, and February bills its seats.
async fn a_correction_larger_than_the_next_invoice_is_a_credit_note_of_its_invoice(
    database: Database,
) {
    // Arrange.
    let (app, customer, subscription, january) =
        january_billed(database, "overcorrected", false, 200).await;
    assert_eq!(january["total"]["amount_minor"], 3094, "{january}");
    let january_id = january["id"].as_str().unwrap().to_owned();

    // Act: −150 hours for January, recorded in February; February's invoice at its end. In
    // between, February's upcoming invoice.
    let (recorded, february_run) =
        correct_january(&app, &subscription, "o2", -150, "2024-02-20T00:00:00Z").await;
    let upcoming = app
        .get(&format!("/api/v1/customers/{customer}/invoices/upcoming"))
        .await;
    app.set_now("2024-03-01T01:00:00Z").await;
    let february_run = [
        february_run,
        app.post("/api/v1/billing-runs", json!({})).await,
    ];

    // Assert: the upcoming invoice shows February as the run bills it, without the correction;
    // a credit note of 12.00 + VAT 2.28 against January; February is 11.90, positive.
    let upcoming = &upcoming["data"][0];
    assert_eq!(
        upcoming["totals"]["total"]["amount_minor"], 1190,
        "{upcoming}"
    );
    assert!(
        lines_of(upcoming)
            .iter()
            .all(|(kind, _, _)| kind != "adjustment"),
        "{upcoming}"
    );
    assert_eq!(counts(&recorded), (0, 0, 0, 1), "{recorded}");
    assert_eq!(
        counts(&february_run[0]),
        (0, 0, 0, 0),
        "{:?}",
        february_run[0]
    );
    assert_eq!(
        counts(&february_run[1]),
        (1, 0, 1, 0),
        "{:?}",
        february_run[1]
    );
    let notes = credit_notes(&app, &january_id).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(lines_of(&notes[0]), late_usage_lines(1, 1200, 228));
    let invoices = invoices_of(&app, &subscription).await;
    assert_eq!(invoices.len(), 2, "{invoices:?}");
    let february = &invoices[1];
    assert_eq!(february["total"]["amount_minor"], 1190, "{february}");
    assert!(
        lines_of(february)
            .iter()
            .all(|(kind, _, _)| kind != "adjustment"),
        "{february}"
    );
    let settled = adjustments(&app, &subscription).await;
    assert_eq!(settled.len(), 1, "{settled:?}");
    assert_eq!(settled[0].amount_minor, -1200);
    assert_eq!(
        settled[0].applied_invoice_id.as_deref(),
        Some(january_id.as_str())
    );
    app.stop().await;
}

on_both_databases!(
    negative_late_usage_of_a_canceled_subscription_is_a_credit_note_of_its_invoice,
    a_canceled_subscription_bills_late_usage_that_raises_and_credits_what_lowers,
    a_credit_note_is_taxed_at_the_rate_of_the_invoice_it_corrects,
    a_correction_larger_than_the_next_invoice_is_a_credit_note_of_its_invoice,
);
