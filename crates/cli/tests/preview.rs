//! `billow preview` as a user runs it: every golden scenario passes `--check`, a changed
//! expectation fails with a readable diff, a malformed file names its field.

use std::path::{Path, PathBuf};
use std::process::Command;

fn billow() -> Command {
    Command::new(env!("CARGO_BIN_EXE_billow"))
}

fn golden_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios/golden");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn preview_check_passes_on_every_golden_scenario() {
    let files = golden_files();
    assert!(files.len() >= 20);
    for file in files {
        let output = billow()
            .arg("preview")
            .arg("--check")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(String::from_utf8_lossy(&output.stdout).starts_with("ok "));
    }
}

#[test]
fn preview_prints_invoices_with_their_traces() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios/golden/akkeris-february-2017.json");
    let output = billow().arg("preview").arg(&file).output().unwrap();
    assert!(output.status.success());
    let preview: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let last = preview["invoices"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["key"], "gp2-web@app-space");
    assert_eq!(last["scope"], "subscription");
    assert_eq!(last["reason"], "cancellation");
    assert_eq!(last["totals"]["total"]["amount_minor"], 1071);
    assert_eq!(
        last["lines"][0]["trace"]["proration"]["factor"]["numerator"],
        5
    );
    assert_eq!(
        last["lines"][0]["trace"]["proration"]["factor"]["denominator"],
        28
    );
}

#[test]
fn a_wrong_expectation_fails_with_a_readable_diff() {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios/golden/akkeris-february-2017.json");
    let text = std::fs::read_to_string(source)
        .unwrap()
        .replace("\"10.71\"", "\"10.72\"");
    let file = std::env::temp_dir().join(format!("billow-wrong-{}.json", std::process::id()));
    std::fs::write(&file, text).unwrap();
    let output = billow()
        .arg("preview")
        .arg("--check")
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_file(&file).ok();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("expected 10.72, got 10.71"), "{stderr}");
}

#[test]
fn a_malformed_scenario_is_rejected_naming_the_field() {
    let file = std::env::temp_dir().join(format!("billow-malformed-{}.json", std::process::id()));
    std::fs::write(&file, r#"{"billow_scenario": 1, "name": "x", "currency": "USD", "now": "2024-01-01T00:00:00Z", "customer": {"id": "c", "billing_cycle_day": 40}, "plans": [{"key": "p", "cadence": "monthly", "prices": [{"key": "a", "pricing": {"model": "flat", "amount": 1}}]}]}"#).unwrap();
    let output = billow().arg("preview").arg(&file).output().unwrap();
    std::fs::remove_file(&file).ok();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("customer.billing_cycle_day"), "{stderr}");
}
