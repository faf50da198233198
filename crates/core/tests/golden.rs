//! Runs every scenario under `scenarios/golden/` and compares it with its `expect` block: the
//! same comparison `billow preview --check` makes.

use std::path::{Path, PathBuf};

use billow_core::scenario::{check_expectations, preview, Scenario};

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/golden")
}

#[test]
fn every_golden_scenario_matches_its_expectations() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(golden_dir())
        .expect("scenarios/golden exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected the golden scenarios, found {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let scenario = match Scenario::from_json(&text) {
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
