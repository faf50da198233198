//! `billow preview SCENARIO [--check]`: prices an offline scenario file, no database.
//!
//! Prints the invoices billow would issue up to the scenario's "now" as JSON, every line with its
//! calculation trace. With `--check`, compares them with the file's `expect` block and exits 1 with
//! one line per difference; a malformed file exits 2 with the field that is wrong.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use billow_core::scenario::{check_expectations, preview, Scenario};

/// Arguments of `billow preview`.
#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// The scenario file (JSON).
    pub file: PathBuf,
    /// Compare with the file's `expect` block and exit non-zero on a difference.
    #[arg(long)]
    pub check: bool,
}

/// Runs `billow preview`.
///
/// # Errors
/// When the file cannot be read.
pub fn run(args: PreviewArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let scenario = match Scenario::from_json(&text) {
        Ok(scenario) => scenario,
        Err(error) => {
            eprintln!("{}: invalid scenario: {error}", args.file.display());
            return Ok(ExitCode::from(2));
        }
    };
    let result = match preview(&scenario.world) {
        Ok(result) => result,
        Err(error) => {
            eprintln!(
                "{}: cannot price the scenario: {error}",
                args.file.display()
            );
            return Ok(ExitCode::from(2));
        }
    };
    if !args.check {
        let printed = Printed {
            scenario: &scenario.name,
            preview: &result,
        };
        let mut text = serde_json::to_string_pretty(&printed)?;
        text.push('\n');
        // A closed pipe (`billow preview f.json | head`) ends the output quietly, like other tools.
        match std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
            Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
                return Err(error.into())
            }
            _ => {}
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(expect) = &scenario.expect else {
        eprintln!("{}: --check needs an `expect` block", args.file.display());
        return Ok(ExitCode::from(2));
    };
    let mismatches = check_expectations(&result, expect);
    if mismatches.is_empty() {
        println!(
            "ok {} ({} invoices, {} upcoming)",
            args.file.display(),
            result.invoices.len(),
            result.upcoming.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "FAILED {}: {} difference(s)",
        args.file.display(),
        mismatches.len()
    );
    for mismatch in &mismatches {
        eprintln!("  {mismatch}");
    }
    Ok(ExitCode::FAILURE)
}

/// What `billow preview` prints: the scenario's name, then the engine's answer.
#[derive(serde::Serialize)]
struct Printed<'a> {
    scenario: &'a str,
    #[serde(flatten)]
    preview: &'a billow_core::scenario::Preview,
}
