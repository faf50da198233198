//! `billow ingest` run as a user runs it: the summary, the exit status, and exactly-once across
//! two loads of the same file.

use std::path::Path;
use std::process::{Command, Output, Stdio};

fn ingest(directory: &Path, arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_billow"))
        .arg("ingest")
        .args(arguments)
        .args(["--data", "billow.db"])
        .current_dir(directory)
        .env_remove("DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn summary(output: &Output) -> String {
    String::from_utf8(output.stderr.clone())
        .unwrap()
        .lines()
        .find(|line| line.starts_with("ingested "))
        .unwrap_or_else(|| panic!("no summary in {output:?}"))
        .to_owned()
}

const EVENTS: &str = r#"{"specversion":"1.0","id":"1","source":"s","type":"cpu","subject":"cus_1","time":"2026-11-02T00:00:00Z","data":{"cores":2}}
{"specversion":"1.0","id":"2","source":"s","type":"cpu","subject":"cus_2","time":"2026-11-02T00:00:00Z"}

{"specversion":"1.0","id":"1","source":"s","type":"cpu","subject":"cus_1","time":"2026-11-02T00:00:00Z"}
{"specversion":"1.0","id":"3","source":"s","type":"cpu","subject":"cus_1","time":"tomorrow"}
"#;

#[test]
fn an_ndjson_file_is_loaded_once_and_bad_lines_are_named() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("events.ndjson"), EVENTS).unwrap();

    let first = ingest(
        directory.path(),
        &["events.ndjson", "--workspace", "acme", "--create-workspace"],
    );
    let second = ingest(directory.path(), &["events.ndjson", "--workspace", "acme"]);

    assert_eq!(
        summary(&first),
        "ingested events.ndjson: 2 accepted, 1 duplicates, 1 rejected (line 5)"
    );
    assert!(!first.status.success(), "a rejected line fails the load");
    assert!(String::from_utf8_lossy(&first.stderr).contains("line 5: time must be an RFC 3339"));
    assert_eq!(
        summary(&second),
        "ingested events.ndjson: 0 accepted, 3 duplicates, 1 rejected (line 5)"
    );
}

#[test]
fn a_csv_file_is_read_by_its_header() {
    let directory = tempfile::tempdir().unwrap();
    let csv = "subject,time,id,source,type,data\n\
               cus_1,2026-11-02T00:00:00Z,1,s,cpu,\"{\"\"cores\"\":1}\"\n\
               cus_2,2026-11-03T00:00:00+01:00,2,s,cpu,\n";
    std::fs::write(directory.path().join("events.csv"), csv).unwrap();

    let output = ingest(
        directory.path(),
        &[
            "events.csv",
            "--format",
            "csv",
            "--workspace",
            "acme",
            "--create-workspace",
        ],
    );

    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        summary(&output),
        "ingested events.csv: 2 accepted, 0 duplicates, 0 rejected"
    );
}

#[test]
fn an_unknown_workspace_is_refused_unless_asked_to_create_it() {
    let directory = tempfile::tempdir().unwrap();
    let events = EVENTS.lines().next().unwrap();
    std::fs::write(directory.path().join("events.ndjson"), events).unwrap();

    let unknown = ingest(directory.path(), &["events.ndjson", "--workspace", "acme"]);
    let created = ingest(
        directory.path(),
        &["events.ndjson", "--workspace", "acme", "--create-workspace"],
    );
    let typo = ingest(directory.path(), &["events.ndjson", "--workspace", "acmee"]);
    let unnamed = ingest(directory.path(), &["events.ndjson"]);

    let stderr = |output: &Output| String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains(r#"no workspace is named "acme""#)
            && stderr(&unknown).contains("--create-workspace"),
        "{}",
        stderr(&unknown)
    );
    assert_eq!(
        summary(&created),
        "ingested events.ndjson: 1 accepted, 0 duplicates, 0 rejected"
    );
    assert_eq!(typo.status.code(), Some(1));
    assert!(stderr(&typo).contains(r#"no workspace is named "acmee""#));
    assert!(!stderr(&typo).contains("ingested "), "nothing was loaded");
    // The typo made no workspace: `keys list` does not know it either.
    let listed = Command::new(env!("CARGO_BIN_EXE_billow"))
        .args([
            "keys",
            "list",
            "--workspace",
            "acmee",
            "--data",
            "billow.db",
        ])
        .current_dir(directory.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!listed.status.success());
    assert!(stderr(&listed).contains(r#"no workspace is named "acmee""#));
    // No silent "default" workspace: the flag is required.
    assert_eq!(unnamed.status.code(), Some(2), "{}", stderr(&unnamed));
    assert!(stderr(&unnamed).contains("--workspace"));
}
