//! `billow keys create`, and what `serve` says and does with and without a key.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

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

/// `billow keys create --workspace NAME`: the key printed on stdout, the message on stderr.
fn create_key(directory: &Path, workspace: &str) -> (String, String) {
    let output = billow(directory, &["keys", "create", "--workspace", workspace])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The `ws_…` id named in `keys create`'s message.
fn workspace_id(message: &str) -> &str {
    let start = message.find("(ws_").unwrap() + 1;
    let end = start + message[start..].find(')').unwrap();
    &message[start..end]
}

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

    /// The log lines up to and including the first containing `needle`.
    fn log_until(&self, needle: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            match self.log_lines.recv_timeout(PROCESS_TIMEOUT) {
                Ok(line) => {
                    let found = line.contains(needle);
                    lines.push(line);
                    if found {
                        return lines;
                    }
                }
                Err(error) => panic!("no log line with {needle:?} in {lines:?}: {error}"),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` over HTTP/1.1 with an optional Bearer key; the whole response.
fn get(address: &str, path: &str, key: Option<&str>) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    let authorization = key.map_or(String::new(), |key| {
        format!("Authorization: Bearer {key}\r\n")
    });
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{authorization}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

#[test]
fn serve_says_how_to_create_the_first_key_and_accepts_it_once_created() {
    let directory = tempfile::tempdir().unwrap();
    let first_start = Server::start(directory.path());
    let log = first_start.log_until("listening on");
    assert!(
        log.iter()
            .any(|line| line.contains("billow keys create --workspace NAME")),
        "{log:?}"
    );
    drop(first_start);

    let (key, message) = create_key(directory.path(), "Acme Cloud");

    let key = key.strip_suffix('\n').unwrap();
    assert!(key.starts_with("bk_") && key.len() == 3 + 64, "{key}");
    assert!(
        key[3..].bytes().all(|byte| byte.is_ascii_hexdigit()),
        "{key}"
    );
    assert!(
        message.contains("Acme Cloud") && message.contains("shown only once"),
        "{message}"
    );
    let server = Server::start(directory.path());
    let log = server.log_until("listening on");
    assert!(
        !log.iter().any(|line| line.contains("no API key")),
        "{log:?}"
    );
    let address = log
        .last()
        .unwrap()
        .rsplit("http://")
        .next()
        .unwrap()
        .to_owned();
    let with_key = get(&address, "/api/v1/customers", Some(key));
    let without_key = get(&address, "/api/v1/customers", None);
    assert!(with_key.starts_with("HTTP/1.1 200 OK\r\n"), "{with_key}");
    assert!(
        with_key.ends_with(r#"{"data":[],"has_more":false,"next_cursor":null}"#),
        "{with_key}"
    );
    assert!(
        without_key.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{without_key}"
    );
}

#[test]
fn a_second_key_for_the_same_name_joins_the_same_workspace() {
    let directory = tempfile::tempdir().unwrap();

    let (first_key, first_message) = create_key(directory.path(), "Acme Cloud");
    let (second_key, second_message) = create_key(directory.path(), "Acme Cloud");
    let (_, other_message) = create_key(directory.path(), "Globex");

    assert_ne!(first_key, second_key);
    assert_eq!(workspace_id(&first_message), workspace_id(&second_message));
    assert_ne!(workspace_id(&first_message), workspace_id(&other_message));
    assert!(workspace_id(&first_message).starts_with("ws_"));
}

#[test]
fn an_invalid_workspace_name_is_refused() {
    let directory = tempfile::tempdir().unwrap();

    let output = billow(
        directory.path(),
        &["keys", "create", "--workspace", " padded"],
    )
    .output()
    .unwrap();

    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("invalid --workspace"), "{stderr}");
}

#[test]
fn a_revoked_key_is_listed_as_revoked_and_refused() {
    let directory = tempfile::tempdir().unwrap();
    let (key, message) = create_key(directory.path(), "Acme Cloud");
    let key = key.trim_end();
    let key_id = message.split_whitespace().nth(3).unwrap();
    assert!(key_id.starts_with("key_"), "{message}");

    let revoked = billow(
        directory.path(),
        &["keys", "revoke", key_id, "--workspace", "Acme Cloud"],
    )
    .output()
    .unwrap();
    let again = billow(
        directory.path(),
        &["keys", "revoke", key_id, "--workspace", "Acme Cloud"],
    )
    .output()
    .unwrap();
    let listed = billow(
        directory.path(),
        &["keys", "list", "--workspace", "Acme Cloud"],
    )
    .output()
    .unwrap();

    assert!(revoked.status.success(), "{revoked:?}");
    assert!(!again.status.success(), "a key is revoked once");
    let listed = String::from_utf8(listed.stdout).unwrap();
    let row = listed
        .lines()
        .find(|line| line.starts_with(key_id))
        .unwrap();
    assert!(row.contains(&key[..11]), "{listed}");
    assert!(row.trim_end().ends_with('Z'), "a revocation time: {listed}");
    assert!(!listed.contains(key), "the secret is never shown again");
    let server = Server::start(directory.path());
    let log = server.log_until("listening on");
    let address = log
        .last()
        .unwrap()
        .rsplit("http://")
        .next()
        .unwrap()
        .to_owned();
    let response = get(&address, "/api/v1/customers", Some(key));
    assert!(
        response.starts_with("HTTP/1.1 401 Unauthorized\r\n"),
        "{response}"
    );
}
