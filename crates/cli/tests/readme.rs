//! The README's quickstart, run as written: its commands, against a fresh `billow serve`, must
//! end with the invoice it promises (number 1, 40.00 EUR: 20.00 for the platform and 400
//! core-hours at 0.05). A change to the API that breaks the quickstart fails here, not in a
//! newcomer's terminal.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;
use support::{Backend, Server};

/// The code blocks (```sh) of the README's section `## Quickstart`, in order.
fn quickstart_blocks() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let (_, section) = readme
        .split_once("\n## Quickstart\n")
        .expect("the README has a Quickstart section");
    let section = section.split("\n## ").next().unwrap();
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some((_, after)) = rest.split_once("```sh\n") {
        let (block, after) = after.split_once("```").expect("a closed code block");
        blocks.push(block.to_owned());
        rest = after;
    }
    blocks
}

fn tool_present(name: &str) -> bool {
    Command::new(name).arg("--version").output().is_ok()
}

#[test]
fn the_quickstart_ends_with_the_invoice_it_promises() {
    for tool in ["bash", "curl", "jq", "date"] {
        assert!(
            tool_present(tool),
            "the quickstart needs {tool}; scripts/test installs it"
        );
    }
    let blocks = quickstart_blocks();
    assert_eq!(
        blocks.len(),
        2,
        "a block that serves, a block that bills: {blocks:?}"
    );
    // The first block is how a newcomer serves billow; here the test binary's own build serves
    // on a free port, in the directory the second block runs in (so `billow keys` finds the
    // default data file `billow.db`).
    assert_eq!(blocks[0].trim(), "scripts/run");
    let directory = tempfile::tempdir().unwrap();
    let server = Server::start(
        &Backend::Sqlite(directory.path().join("billow.db")),
        &["--billing-interval-seconds", "0"],
    );
    let binary_directory = Path::new(env!("CARGO_BIN_EXE_billow")).parent().unwrap();
    let path = format!(
        "{}:{}",
        binary_directory.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{}", blocks[1]))
        .current_dir(directory.path())
        .env("PATH", path)
        .env("BILLOW_API", format!("http://{}/api/v1", server.address()))
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(
        output.status.success(),
        "the quickstart failed: {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    // Every command prints one JSON value; the last is the invoice.
    let printed: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("{error}: {stdout}"));
    assert_eq!(
        printed.len(),
        8,
        "meter, plan, subscription, 3 events, run, invoice: {stdout}"
    );
    let invoice = printed.last().unwrap();
    assert_eq!(invoice["number"], 1, "{invoice}");
    assert_eq!(invoice["status"], "open", "{invoice}");
    assert_eq!(invoice["total"]["amount_minor"], 4000, "{invoice}");
    assert_eq!(invoice["total"]["amount"], "40.00", "{invoice}");
    assert_eq!(invoice["total"]["currency"], "EUR", "{invoice}");
    assert_eq!(invoice["amount_due"]["amount_minor"], 4000, "{invoice}");
    let accepted: Vec<&Value> = printed
        .iter()
        .filter(|value| value.get("accepted").is_some())
        .collect();
    assert_eq!(accepted.len(), 3);
    assert!(accepted
        .iter()
        .all(|answer| answer["accepted"] == 1 && answer["errors"] == serde_json::json!([])));
    server.kill();
}
