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
    let preview = preview(&Scenario::from_json(BASIC).unwrap().world).unwrap();
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
        (
            with(|v| v["subscriptions"][0]["start"] = "1969-12-31T23:59:59Z".into()),
            "subscriptions[0].start",
        ),
        (
            with(
                |v| v["credit_grants"] = serde_json::json!([{"key": "g", "type": "free", "amount": "1", "start": "0001-01-01T00:00:00Z"}]),
            ),
            "credit_grants[0].start",
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
        &preview(&scenario.world).unwrap(),
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
        &preview(&scenario.world).unwrap(),
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
    let preview = preview(&Scenario::from_json(&text).unwrap().world).unwrap();
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
    preview(&Scenario::from_json(text).unwrap().world)
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

/// BASIC billed in JPY, its plan `basic` priced in EUR and another plan `both` in EUR and JPY.
fn in_yen(patch: impl FnOnce(&mut serde_json::Value)) -> String {
    with(|v| {
        v["currency"] = "JPY".into();
        v["plans"][0]["currency"] = "EUR".into();
        v["plans"].as_array_mut().unwrap().push(
            serde_json::json!({"key": "both", "cadence": "monthly", "currency": "EUR", "prices": [
                {"key": "seat", "pricing": {"model": "flat", "amount": "9.99"}},
                {"key": "seat", "currency": "JPY", "pricing": {"model": "flat", "amount": "1500"}}
            ]}),
        );
        patch(v);
    })
}

fn invalid_path_and_reason(text: &str) -> (String, String) {
    match error_of(text) {
        ScenarioError::Invalid { path, reason } => (path, reason),
        other => panic!("expected an invalid-value error, got {other}"),
    }
}

#[test]
fn a_subscription_or_resource_to_a_plan_without_a_price_in_the_scenario_currency_is_refused() {
    let (path, reason) = invalid_path_and_reason(&in_yen(|_| {}));
    assert_eq!(path, "subscriptions[0].plan");
    assert_eq!(
        reason,
        "the plan has no price in JPY, the customer's currency (its prices are in EUR)"
    );

    let change = in_yen(|v| {
        v["subscriptions"][0]["plan"] = "both".into();
        v["subscriptions"][0]["changes"] =
            serde_json::json!([{"at": "2024-01-16T00:00:00Z", "plan": "basic"}]);
    });
    assert_eq!(
        invalid_path_and_reason(&change).0,
        "subscriptions[0].changes[0].plan"
    );

    let resource = in_yen(|v| {
        v["subscriptions"][0]["plan"] = "both".into();
        v["resources"] = serde_json::json!([
            {"id": "vm", "plan": "basic", "created_at": "2024-01-01T00:00:00Z"}]);
    });
    assert_eq!(invalid_path_and_reason(&resource).0, "resources[0].plan");

    // On the plan priced in both, the subscription is billed in yen only: 1500 a month.
    let both = in_yen(|v| v["subscriptions"][0]["plan"] = "both".into());
    let preview = preview(&Scenario::from_json(&both).unwrap().world).unwrap();
    let totals: Vec<i64> = preview
        .invoices
        .iter()
        .map(|i| i.invoice.totals.total.amount_minor())
        .collect();
    assert_eq!(totals, vec![1500, 1500, 1500]);
}

#[test]
fn amounts_charged_as_they_are_must_be_whole_minor_units_of_their_price_currency() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            in_yen(|v| v["plans"][1]["prices"][1]["pricing"]["amount"] = "9.99".into()),
            "plans[1].prices[1].pricing.amount",
            "9.99 JPY has digits below the currency's minor unit (JPY has 0 decimals)",
        ),
        (
            in_yen(|v| {
                v["plans"][1]["prices"][1]["pricing"] = serde_json::json!({"model": "graduated", "tiers": [
                    {"up_to": 10, "unit_amount": "1"}, {"unit_amount": "1", "flat_amount": "0.5"}]})
            }),
            "plans[1].prices[1].pricing.tiers[1].flat_amount",
            "0.5 JPY has digits below the currency's minor unit (JPY has 0 decimals)",
        ),
        (
            in_yen(|v| v["plans"][1]["prices"][1]["minimum_amount"] = "100.5".into()),
            "plans[1].prices[1].minimum_amount",
            "100.5 JPY has digits below the currency's minor unit (JPY has 0 decimals)",
        ),
        (
            // A price's own currency wins over its plan's: 1.2345 is no amount of KWD either.
            in_yen(|v| {
                v["plans"][1]["prices"][0]["currency"] = "KWD".into();
                v["plans"][1]["prices"][0]["pricing"]["amount"] = "1.2345".into();
                v["plans"][1]["prices"][1]["currency"] = "KWD".into();
                v["plans"][1]["prices"].as_array_mut().unwrap().truncate(1);
            }),
            "plans[1].prices[0].pricing.amount",
            "1.2345 KWD has digits below the currency's minor unit (KWD has 3 decimals)",
        ),
    ];
    for (text, expected_path, expected_reason) in cases {
        let (path, reason) = invalid_path_and_reason(&text);
        assert_eq!(
            (path.as_str(), reason.as_str()),
            (expected_path, expected_reason)
        );
    }
    // A unit amount multiplies a quantity and the line is rounded once: 0.35 yen a call is a
    // price, and so is 12.345 yen a seat.
    let unit = in_yen(|v| {
        v["subscriptions"][0]["plan"] = "both".into();
        v["plans"][1]["prices"][1]["pricing"] =
            serde_json::json!({"model": "per_unit", "unit_amount": "12.345"});
    });
    assert!(Scenario::from_json(&unit).is_ok());
}

#[test]
fn a_plan_prices_each_key_once_per_currency_and_every_key_in_each_of_its_currencies() {
    let cases: Vec<(String, &str, &str)> = vec![
        (
            in_yen(|v| v["plans"][1]["prices"][1]["currency"] = "EUR".into()),
            "plans[1].prices[1]",
            "`seat` is defined twice in EUR",
        ),
        (
            in_yen(|v| {
                v["plans"][1]["prices"]
                    .as_array_mut()
                    .unwrap()
                    .push(serde_json::json!({"key": "extra", "currency": "JPY", "pricing": {"model": "flat", "amount": "100"}}))
            }),
            "plans[1].prices[2]",
            "`extra` has no price in EUR: the plan has prices in EUR and JPY, and each of its keys is priced in every one of them",
        ),
        (
            in_yen(|v| v["plans"][1]["minimum_amount"] = "10".into()),
            "plans[1].minimum_amount",
            "a plan's minimum is in its one currency, and this plan has prices in EUR and JPY: set a minimum_amount on its prices instead",
        ),
        (
            in_yen(|v| {
                v["plans"][1]["prices"].as_array_mut().unwrap().remove(0);
                v["plans"][1]["minimum_amount"] = "10.5".into();
            }),
            "plans[1].minimum_amount",
            "10.5 JPY has digits below the currency's minor unit (JPY has 0 decimals)",
        ),
    ];
    for (text, expected_path, expected_reason) in cases {
        let (path, reason) = invalid_path_and_reason(&text);
        assert_eq!(
            (path.as_str(), reason.as_str()),
            (expected_path, expected_reason)
        );
    }
}
