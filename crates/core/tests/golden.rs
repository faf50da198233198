//! Runs every scenario under `scenarios/golden/` and compares it with its `expect` block: the
//! same comparison `billow preview --check` makes.

mod support;

use billow_core::scenario::{check_expectations, preview, Scenario};
use support::golden_texts;

#[test]
fn every_golden_scenario_matches_its_expectations() {
    let files = golden_texts();
    assert!(
        files.len() >= 20,
        "expected the golden scenarios, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for (name, text) in &files {
        let scenario = match Scenario::from_json(text) {
            Ok(scenario) => scenario,
            Err(error) => {
                failures.push(format!("{name}: invalid: {error}"));
                continue;
            }
        };
        let Some(expect) = &scenario.expect else {
            failures.push(format!("{name}: has no expect block"));
            continue;
        };
        match preview(&scenario.world) {
            Ok(result) => {
                if result.invoices.is_empty() && result.upcoming.is_empty() {
                    failures.push(format!("{name}: produced no invoice"));
                }
                for mismatch in check_expectations(&result, expect) {
                    failures.push(format!("{name}: {mismatch}"));
                }
            }
            Err(error) => failures.push(format!("{name}: cannot price: {error}")),
        }
    }
    assert!(
        failures.is_empty(),
        "golden scenarios disagree:\n{}",
        failures.join("\n")
    );
}
