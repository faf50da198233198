//! The `billow` binary run as a user runs it, in a fresh working directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long the server may take to start or stop.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// `billow` with the given arguments, in `directory`, with no database or log settings inherited.
fn billow(directory: &Path, arguments: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_billow"));
    command
        .args(arguments)
        .current_dir(directory)
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    command
}

/// A running `billow serve`, killed if the test ends before stopping it.
struct Server {
    child: Child,
    log_lines: mpsc::Receiver<String>,
}

impl Server {
    fn start(directory: &Path) -> Self {
        let mut child = billow(directory, &["serve", "--bind", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, log_lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, log_lines }
    }

    /// Waits for a log line containing `needle` and returns it.
    fn wait_for_log(&self, needle: &str) -> String {
        loop {
            match self.log_lines.recv_timeout(PROCESS_TIMEOUT) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(error) => panic!("no log line with {needle:?}: {error}"),
            }
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait_for_log("stopped");
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "{exit}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Already exited when terminated cleanly; then kill fails harmlessly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_get(address: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(PROCESS_TIMEOUT)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

#[cfg(unix)]
#[test]
fn serve_creates_the_data_file_logs_its_address_answers_and_stops_on_sigterm() {
    let directory = tempfile::tempdir().unwrap();
    let server = Server::start(directory.path());

    let listening = server.wait_for_log("listening on http://");
    let address = listening.rsplit("http://").next().unwrap().trim();
    let response = http_get(address, "/readyz");

    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(directory.path().join("billow.db").exists());
    server.terminate();
}

#[test]
fn migrate_creates_the_data_file_and_its_directory() {
    let directory = tempfile::tempdir().unwrap();

    let output = billow(directory.path(), &["migrate", "--data", "data/billing.db"])
        .output()
        .unwrap();

    assert!(output.status.success(), "{}", stderr_of(&output));
    assert!(directory.path().join("data/billing.db").exists());
    assert!(stderr_of(&output).contains("migrations applied"));
}

#[test]
fn openapi_prints_the_document_without_a_database() {
    let directory = tempfile::tempdir().unwrap();

    let output = billow(directory.path(), &["openapi"]).output().unwrap();

    assert!(output.status.success(), "{}", stderr_of(&output));
    let document: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(document["openapi"].as_str().unwrap().starts_with("3.1"));
    let events = &document["paths"]["/api/v1/events"]["post"]["requestBody"]["content"];
    assert_eq!(
        events["application/cloudevents+json"]["schema"]["$ref"],
        "#/components/schemas/CloudEvent"
    );
    assert!(!directory.path().join("billow.db").exists());
}

#[test]
fn a_database_url_that_is_not_postgres_fails_with_its_cause() {
    let directory = tempfile::tempdir().unwrap();

    let output = billow(directory.path(), &["migrate"])
        .env("DATABASE_URL", "mysql://root@localhost/billing")
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr_of(&output),
        "error: DATABASE_URL is not usable\n  caused by: the database URL must start with \
         postgres:// or postgresql://\n"
    );
    assert!(!directory.path().join("billow.db").exists());
}

#[test]
fn an_unreadable_data_path_fails_with_the_whole_cause_chain() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("file"), "not a directory").unwrap();

    let output = billow(directory.path(), &["serve", "--data", "file/billow.db"])
        .output()
        .unwrap();

    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains("error: could not start the server\n  caused by: could not create the directory file\n  caused by: "),
        "{stderr}"
    );
}
