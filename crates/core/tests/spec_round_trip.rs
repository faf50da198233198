//! The specs a store keeps (meters, plans, subscriptions and their changes, credit grants,
//! discounts, tax rates, billed resources) are written as JSON and read back: every spec of every
//! golden scenario reads back equal to itself, decimals keeping their digits (`12.50` stays
//! `12.50`).

mod support;

use support::golden_worlds;

use serde::de::DeserializeOwned;
use serde::Serialize;

fn reads_back<T>(name: &str, what: &str, specs: &[T]) -> usize
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    for spec in specs {
        let text = serde_json::to_string(spec).unwrap();
        let read: T = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{name}: a {what} does not read back: {error}: {text}"));
        assert_eq!(&read, spec, "{name}: a {what} reads back changed: {text}");
    }
    specs.len()
}

#[test]
fn every_stored_spec_reads_back_as_written() {
    let mut counted = [0_usize; 8];
    for (name, scenario) in golden_worlds() {
        counted[0] += reads_back(&name, "meter", &scenario.meters);
        counted[1] += reads_back(&name, "plan", &scenario.plans);
        counted[2] += reads_back(&name, "subscription", &scenario.subscriptions);
        let changes: Vec<_> = scenario
            .subscriptions
            .iter()
            .flat_map(|s| s.changes.clone())
            .collect();
        counted[3] += reads_back(&name, "change", &changes);
        counted[4] += reads_back(&name, "credit grant", &scenario.credit_grants);
        counted[5] += reads_back(&name, "discount", &scenario.discounts);
        let taxes: Vec<_> = scenario.customer.tax.iter().cloned().collect();
        counted[6] += reads_back(&name, "tax rate", &taxes);
        counted[7] += reads_back(&name, "resource", &scenario.resources);
    }
    // The goldens hold every kind of spec, so that none goes unchecked.
    assert!(counted.iter().all(|&n| n > 0), "{counted:?}");
}

#[test]
fn decimals_keep_their_digits() {
    let plan: billow_core::scenario::PlanSpec = serde_json::from_str(
        r#"{"key": "p", "cadence": "monthly", "prices": [{"key": "a", "pricing": {"model": "per_unit", "unit_amount": 12.50}}]}"#,
    )
    .unwrap();
    let text = serde_json::to_string(&plan).unwrap();
    assert!(text.contains(r#""unit_amount":"12.50""#), "{text}");
}
