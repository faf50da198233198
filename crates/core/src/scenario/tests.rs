use rust_decimal_macros::dec;

use super::*;

const BASIC: &str = r#"{
  "billow_scenario": 1, "name": "basic", "currency": "USD", "now": "2024-03-01T00:00:00Z",
  "customer": {"id": "c1"},
  "meters": [{"key": "calls", "event_type": "api", "aggregation": "COUNT"}],
  "plans": [{"key": "basic", "cadence": "monthly", "prices": [
    {"key": "seat", "description": "Seat", "pricing": {"model": "per_unit", "unit_amount": "10"}},
    {"key": "calls", "description": "API calls", "meter": "calls", "pricing": {"model": "per_unit", "unit_amount": "0.5"}}
  ]}],
  "subscriptions": [{"id": "s1", "plan": "basic", "start": "2024-01-01T00:00:00Z", "quantity": 2}],
  "events": [
    {"id": "e1", "type": "api", "subject": "c1", "time": "2024-01-05T00:00:00Z"},
    {"id": "e2", "type": "api", "subject": "s1", "time": "2024-01-06T00:00:00Z"},
    {"id": "e3", "type": "api", "subject": "someone-else", "time": "2024-01-07T00:00:00Z"}
  ]
}"#;

fn with(patch: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut value: serde_json::Value = serde_json::from_str(BASIC).unwrap();
    patch(&mut value);
    value.to_string()
}

fn error_of(text: &str) -> ScenarioError {
    Scenario::from_json(text).expect_err("the scenario must be rejected")
}

#[test]
fn invoices_bill_seats_in_advance_and_usage_of_the_customer_and_subscription_in_arrears() {
    let preview = preview(&Scenario::from_json(BASIC).unwrap()).unwrap();
    let totals: Vec<i64> = preview
        .invoices
        .iter()
        .map(|i| i.invoice.totals.total.amount_minor())
        .collect();
    // Jan 1: 2 seats. Feb 1: 2 API calls (e3 is another subject's) + 2 seats. Mar 1: 2 seats.
    assert_eq!(totals, vec![2000, 2100, 2000]);
    assert_eq!(preview.invoices[0].reason, InvoiceReason::SubscriptionStart);
    assert_eq!(preview.invoices[1].reason, InvoiceReason::PeriodEnd);
    assert_eq!(preview.upcoming.len(), 1);
    assert_eq!(preview.upcoming[0].invoice.totals.total.amount_minor(), 0);
}

#[test]
fn malformed_documents_name_the_field() {
    let unknown_model = with(|v| v["plans"][0]["prices"][0]["pricing"]["model"] = "tiered".into());
    let ScenarioError::Malformed { path, message } = error_of(&unknown_model) else {
        panic!("malformed expected")
    };
    assert_eq!(path, "plans[0].prices[0].pricing.model");
    assert!(message.contains("tiered"), "{message}");

    let typo = with(|v| v["subscriptions"][0]["quantty"] = 3.into());
    let error = error_of(&typo);
    assert!(
        matches!(&error, ScenarioError::Malformed { path, message } if path.starts_with("subscriptions[0]") && message.contains("quantty")),
        "{error}"
    );

    let currency = with(|v| v["currency"] = "XYZ".into());
    assert!(
        matches!(error_of(&currency), ScenarioError::Malformed { path, .. } if path == "currency")
    );

    assert!(matches!(error_of("{"), ScenarioError::Malformed { .. }));
}

#[test]
fn invalid_values_name_the_field_and_the_reason() {
    let cases: Vec<(String, &str)> = vec![
        (with(|v| v["billow_scenario"] = 2.into()), "billow_scenario"),
        (
            with(|v| v["customer"]["time_zone"] = "Mars/Olympus".into()),
            "customer.time_zone",
        ),
        (
            with(|v| v["customer"]["billing_cycle_day"] = 32.into()),
            "customer.billing_cycle_day",
        ),
        (
            with(|v| v["subscriptions"][0]["plan"] = "nope".into()),
            "subscriptions[0].plan",
        ),
        (
            with(|v| v["plans"][0]["prices"][1]["meter"] = "nope".into()),
            "plans[0].prices[1].meter",
        ),
        (
            with(|v| v["plans"][0]["prices"][1]["billing"] = "in_advance".into()),
            "plans[0].prices[1].billing",
        ),
        (
            with(|v| {
                v["plans"][0]["prices"][0]["pricing"] =
                    serde_json::json!({"model": "graduated", "tiers": []})
            }),
            "plans[0].prices[0].pricing",
        ),
        (with(|v| v["events"][1]["id"] = "e1".into()), "events[1].id"),
        (
            with(|v| {
                v["subscriptions"][0]["changes"] =
                    serde_json::json!([{"at": "2023-01-01T00:00:00Z", "quantity": 1}])
            }),
            "subscriptions[0].changes[0].at",
        ),
        (
            with(
                |v| v["subscriptions"][0]["changes"] = serde_json::json!([{"at": "2024-01-02T00:00:00Z", "quantity": 1, "cancel": "immediate"}]),
            ),
            "subscriptions[0].changes[0]",
        ),
        (
            with(
                |v| v["credit_grants"] = serde_json::json!([{"key": "g", "type": "free", "amount": "1.005", "start": "2024-01-01T00:00:00Z"}]),
            ),
            "credit_grants[0].amount",
        ),
        (
            with(
                |v| v["discounts"] = serde_json::json!([{"key": "d", "percent_off": 120, "duration": "once", "start": "2024-01-01T00:00:00Z"}]),
            ),
            "discounts[0].percent_off",
        ),
    ];
    for (text, expected_path) in cases {
        match error_of(&text) {
            ScenarioError::Invalid { path, reason } => {
                assert_eq!(path, expected_path, "{reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("{expected_path}: expected an invalid-value error, got {other}"),
        }
    }
}

#[test]
fn the_check_reports_each_difference_with_its_path() {
    let text = with(|v| {
        v["expect"] = serde_json::json!({"invoices": [
            {"total": "20.00"},
            {"total": "21.01", "lines": [{"description": "API calls", "amount": "1.00"}, {"description": "Seat", "amount": "20.00"}]},
            {"total": "20.00"}
        ]});
    });
    let scenario = Scenario::from_json(&text).unwrap();
    let mismatches = check_expectations(
        &preview(&scenario).unwrap(),
        scenario.expect.as_ref().unwrap(),
    );
    let rendered: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
    assert_eq!(
        rendered,
        vec!["invoices[1].total: expected 21.01, got 21.00".to_owned()]
    );

    let wrong_count = with(|v| v["expect"] = serde_json::json!({"invoices": [{"total": "20.00"}]}));
    let scenario = Scenario::from_json(&wrong_count).unwrap();
    let mismatches = check_expectations(
        &preview(&scenario).unwrap(),
        scenario.expect.as_ref().unwrap(),
    );
    assert_eq!(mismatches[0].path, "invoices.length");
}

#[test]
fn a_quantity_change_bills_unused_and_remaining_time_on_the_next_invoice() {
    let text = with(|v| {
        v["now"] = "2024-02-01T00:00:00Z".into();
        v["events"] = serde_json::json!([]);
        // January has 31 days; from Jan 16 there are 16 left.
        v["subscriptions"][0]["changes"] =
            serde_json::json!([{"at": "2024-01-16T00:00:00Z", "quantity": 5}]);
    });
    let preview = preview(&Scenario::from_json(&text).unwrap()).unwrap();
    let february = &preview.invoices[1].invoice;
    let lines: Vec<(&str, i64)> = february
        .lines
        .iter()
        .map(|l| (l.description.as_str(), l.amount.amount_minor()))
        .collect();
    // −2 × 10 × 16/31 = −10.32; +5 × 10 × 16/31 = 25.81; then February's 5 seats.
    assert_eq!(
        lines,
        vec![
            ("Unused time on Seat", -1032),
            ("Remaining time on Seat", 2581),
            ("Seat", 5000)
        ]
    );
    assert_eq!(february.totals.total.amount_minor(), 6549);
    assert_eq!(
        february.lines[0]
            .trace
            .proration
            .as_ref()
            .unwrap()
            .factor_decimal,
        dec!(0.5161290323)
    );
}

fn next_invoice_at(text: &str) -> Option<jiff::Timestamp> {
    preview(&Scenario::from_json(text).unwrap())
        .unwrap()
        .next_invoice_at
}

#[test]
fn the_next_invoice_is_due_at_the_end_of_the_open_period_or_a_later_start() {
    let at = |text: &str| Some(text.parse::<jiff::Timestamp>().unwrap());
    // Mid-March: the open period ends on April 1st.
    let mid_march = with(|v| v["now"] = "2024-03-15T00:00:00Z".into());
    assert_eq!(next_invoice_at(&mid_march), at("2024-04-01T00:00:00Z"));
    // A cancellation on March 20th ends the open period then.
    let canceled = with(|v| {
        v["now"] = "2024-03-15T00:00:00Z".into();
        v["subscriptions"][0]["changes"] =
            serde_json::json!([{"at": "2024-03-20T00:00:00Z", "cancel": "immediate"}]);
    });
    assert_eq!(next_invoice_at(&canceled), at("2024-03-20T00:00:00Z"));
    // Once it has ended, nothing is issued again.
    let ended = with(|v| {
        v["now"] = "2024-04-15T00:00:00Z".into();
        v["subscriptions"][0]["changes"] =
            serde_json::json!([{"at": "2024-03-20T00:00:00Z", "cancel": "immediate"}]);
    });
    assert_eq!(next_invoice_at(&ended), None);
    // A subscription that starts later is due when it starts.
    let later = with(|v| v["now"] = "2023-12-01T00:00:00Z".into());
    assert_eq!(next_invoice_at(&later), at("2024-01-01T00:00:00Z"));
}
