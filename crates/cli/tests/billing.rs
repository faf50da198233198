//! Billing runs across real `billow serve` processes on one PostgreSQL database (skipped without
//! `BILLOW_TEST_DATABASE_URL`): two schedulers never issue an invoice twice and number them
//! without gaps, and a process killed in the middle of a run loses nothing, because another
//! takes over its leases when they expire.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};

const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long all invoices may take to appear.
const BILLING_TIMEOUT: Duration = Duration::from_secs(180);
const CUSTOMERS: usize = 12;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A fresh database on the test server and its URL, or `None` when PostgreSQL is not configured.
fn fresh_database() -> Option<String> {
    let admin_url = std::env::var("BILLOW_TEST_DATABASE_URL").ok()?;
    let name = format!(
        "billow_runs_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    runtime().block_on(async {
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .unwrap();
    });
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    Some(format!("{base}/{name}"))
}

fn billow(database_url: &str, arguments: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_billow"));
    command
        .args(arguments)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    command
}

struct Server {
    child: Child,
    address: String,
}

impl Server {
    /// `billow serve` with its scheduler every second (0: none), no grace period, 2 s leases.
    fn start(database_url: &str, interval_seconds: u32) -> Self {
        let interval = interval_seconds.to_string();
        let mut child = billow(
            database_url,
            &[
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--billing-interval-seconds",
                &interval,
                "--grace-period-seconds",
                "0",
                "--billing-lease-seconds",
                "2",
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                // Keep reading after the address is known, so the pipe never fills.
                let _ = sender.send(line);
            }
        });
        let address = loop {
            let line = lines.recv_timeout(PROCESS_TIMEOUT).expect("serve starts");
            if let Some((_, address)) = line.rsplit_once("listening on http://") {
                break address.trim().to_owned();
            }
        };
        Self { child, address }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn call(&self, key: &str, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let body = body.to_string();
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream.set_read_timeout(Some(PROCESS_TIMEOUT)).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    fn post(&self, key: &str, path: &str, body: Value) -> Value {
        let (status, json) = self.call(key, "POST", path, &body);
        assert!((200..300).contains(&status), "POST {path}: {status} {json}");
        json
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn api_key(database_url: &str) -> String {
    let output = billow(database_url, &["keys", "create", "--workspace", "acme"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A plan of one seat billed in advance, and `CUSTOMERS` customers subscribed since 2024-01-01:
/// one invoice per customer per month from January 2024 to this month.
fn arrange(server: &Server, key: &str) -> usize {
    server.post(
        key,
        "/api/v1/plans",
        json!({"key": "seat", "cadence": "monthly", "currency": "USD", "prices": [
            {"key": "seat", "description": "Seat", "pricing": {"model": "per_unit", "unit_amount": "10.00"}}]}),
    );
    for index in 0..CUSTOMERS {
        let customer = server.post(
            key,
            "/api/v1/customers",
            json!({"external_id": format!("team-{index}"), "name": format!("Team {index}"), "currency": "USD", "invoicing": "per_subscription"}),
        );
        server.post(
            key,
            "/api/v1/subscriptions",
            json!({"customer_id": customer["id"], "plan": "seat", "start": "2024-01-01T00:00:00Z"}),
        );
    }
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let months =
        usize::try_from((i32::from(today.year()) - 2024) * 12 + i32::from(today.month())).unwrap();
    CUSTOMERS * months
}

/// Every invoice's (number, subscription, issued_at), read from the database.
fn invoices(database_url: &str) -> Vec<(Option<i64>, String, i64)> {
    runtime().block_on(async {
        let mut connection = PgConnection::connect(database_url).await.unwrap();
        sqlx::query_as("SELECT number, invoice_key, issued_at FROM invoices ORDER BY number")
            .fetch_all(&mut connection)
            .await
            .unwrap()
    })
}

fn wait_for_invoices(database_url: &str, expected: usize) -> Vec<(Option<i64>, String, i64)> {
    let started = Instant::now();
    loop {
        let found = invoices(database_url);
        if found.len() >= expected || started.elapsed() > BILLING_TIMEOUT {
            return found;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Numbers 1..=n each once, and no (subscription, issued_at) twice.
fn assert_issued_once_without_gaps(found: &[(Option<i64>, String, i64)], expected: usize) {
    assert_eq!(found.len(), expected, "every invoice issued");
    let numbers: Vec<i64> = found
        .iter()
        .map(|(n, _, _)| n.expect("finalized"))
        .collect();
    let one_to_n: Vec<i64> = (1..=i64::try_from(expected).unwrap()).collect();
    assert_eq!(numbers, one_to_n, "gap-free and unique");
    let mut keys: Vec<(&String, i64)> = found.iter().map(|(_, s, at)| (s, *at)).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), expected, "no invoice issued twice");
}

#[test]
fn two_servers_with_schedulers_never_issue_an_invoice_twice() {
    let Some(database_url) = fresh_database() else {
        return;
    };
    let key = api_key(&database_url);
    let first = Server::start(&database_url, 1);
    let second = Server::start(&database_url, 1);

    let expected = arrange(&first, &key);

    let found = wait_for_invoices(&database_url, expected);
    // A moment more: a duplicate would show up as an extra row.
    std::thread::sleep(Duration::from_secs(2));
    let found_later = invoices(&database_url);
    assert_eq!(found.len(), found_later.len());
    assert_issued_once_without_gaps(&found_later, expected);
    first.kill();
    second.kill();
}

#[test]
fn a_server_killed_mid_run_loses_nothing() {
    let Some(database_url) = fresh_database() else {
        return;
    };
    let key = api_key(&database_url);
    // The catalog goes in through a server without a scheduler, so that no run starts early.
    let quiet = Server::start(&database_url, 0);
    let expected = arrange(&quiet, &key);
    let doomed = Server::start(&database_url, 1);
    let started = Instant::now();
    while invoices(&database_url).is_empty() {
        assert!(started.elapsed() < BILLING_TIMEOUT, "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }

    doomed.kill();
    let at_kill = invoices(&database_url).len();
    let survivor = Server::start(&database_url, 1);

    let found = wait_for_invoices(&database_url, expected);
    assert_issued_once_without_gaps(&found, expected);
    eprintln!("killed after {at_kill} of {expected} invoices; the survivor issued the rest");
    survivor.kill();
    quiet.kill();
}

/// `billow invoice run --now` bills what a stopped server's customers owe at that instant, on the
/// embedded database; a second run at the same instant issues nothing more.
#[test]
fn invoice_run_bills_at_the_given_instant_on_sqlite() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("billow.db");
    let data = data.to_str().unwrap();
    let sqlite = |arguments: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_billow"));
        command
            .args(arguments)
            .args(["--data", data])
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null());
        command
    };
    let output = sqlite(&["keys", "create", "--workspace", "acme"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let key = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let mut child = sqlite(&[
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--billing-interval-seconds",
        "0",
    ])
    .env("RUST_LOG", "info")
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("serve starts").unwrap();
        if let Some((_, address)) = line.rsplit_once("listening on http://") {
            break address.trim().to_owned();
        }
    };
    // Drained, so that a full pipe never blocks the server's logging.
    std::thread::spawn(move || lines.for_each(drop));
    let server = Server { child, address };
    server.post(
        &key,
        "/api/v1/plans",
        json!({"key": "seat", "cadence": "monthly", "currency": "EUR", "prices": [
            {"key": "seat", "description": "Seat", "pricing": {"model": "per_unit", "unit_amount": "10.00"}}]}),
    );
    let customer = server.post(
        &key,
        "/api/v1/customers",
        json!({"external_id": "team", "name": "Team", "currency": "EUR", "invoicing": "per_subscription"}),
    );
    server.post(
        &key,
        "/api/v1/subscriptions",
        json!({"customer_id": customer["id"], "plan": "seat", "quantity": 2, "start": "2024-01-01T00:00:00Z"}),
    );
    server.kill();

    let run = |now: &str| {
        let output = sqlite(&["invoice", "run", "--workspace", "acme", "--now", now])
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    // January, February and March are billed in advance; March's invoice is still in its grace
    // hour at 00:30, so it is a draft.
    let report = run("2024-03-01T00:30:00Z");
    assert_eq!(report["finalized"], 2, "{report}");
    assert_eq!(report["drafted"], 1, "{report}");
    assert_eq!(report["numbers"], json!([1, 2]));
    let again = run("2024-03-01T02:00:00Z");
    assert_eq!(again["finalized"], 1, "{again}");
    assert_eq!(again["numbers"], json!([3]));
}
