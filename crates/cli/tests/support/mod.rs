//! What the process tests of billing share: the `billow` binary on SQLite or PostgreSQL, a
//! running `billow serve` spoken to over plain HTTP/1.1, and a small billing world.
//! Each test binary declares `mod support;`.

// Each test binary uses a different part of this module.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};

pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);
/// When subscriptions of [`arrange`] start.
pub const SUBSCRIPTIONS_START: &str = "2024-01-01T00:00:00Z";

/// Where a `billow` process keeps its data.
#[derive(Clone, Debug)]
pub enum Backend {
    Sqlite(PathBuf),
    Postgres(String),
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// A fresh database on the PostgreSQL test server, or `None` (said on stderr) when no server is
/// configured.
pub fn fresh_postgres() -> Option<Backend> {
    let Ok(admin_url) = std::env::var("BILLOW_TEST_DATABASE_URL") else {
        eprintln!("skipped: BILLOW_TEST_DATABASE_URL is not set (scripts/test sets it)");
        return None;
    };
    let name = format!(
        "billow_process_{}_{}",
        std::process::id(),
        jiff::Timestamp::now().as_nanosecond()
    );
    runtime().block_on(async {
        let mut admin = PgConnection::connect(&admin_url).await.unwrap();
        admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await
            .unwrap();
    });
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    Some(Backend::Postgres(format!("{base}/{name}")))
}

/// `billow ARGUMENTS` on `backend`, quiet unless `RUST_LOG` is set by the caller.
pub fn billow(backend: &Backend, arguments: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_billow"));
    command.args(arguments).stdin(Stdio::null());
    match backend {
        Backend::Sqlite(path) => {
            command.arg("--data").arg(path).env_remove("DATABASE_URL");
        }
        Backend::Postgres(url) => {
            command.env("DATABASE_URL", url);
        }
    }
    command
}

/// Runs `billow ARGUMENTS` to its end; panics with its output when it fails.
pub fn billow_output(backend: &Backend, arguments: &[&str]) -> Output {
    let output = billow(backend, arguments).output().unwrap();
    assert!(output.status.success(), "billow {arguments:?}: {output:?}");
    output
}

/// A new API key of the workspace `acme`.
pub fn api_key(backend: &Backend) -> String {
    let output = billow_output(backend, &["keys", "create", "--workspace", "acme"]);
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// `billow invoice run` (`--workspace acme` and `arguments`) to its end: its report.
pub fn invoice_run(backend: &Backend, arguments: &[&str]) -> Value {
    let mut all = vec!["invoice", "run", "--workspace", "acme"];
    all.extend_from_slice(arguments);
    let output = billow_output(backend, &all);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A running `billow serve`, killed when dropped.
pub struct Server {
    child: Child,
    address: String,
}

impl Server {
    /// `billow serve` on a free port with `options` (`--billing-interval-seconds 0`: none).
    pub fn start(backend: &Backend, options: &[&str]) -> Self {
        let mut arguments = vec!["serve", "--bind", "127.0.0.1:0"];
        arguments.extend_from_slice(options);
        let mut child = billow(backend, &arguments)
            .env("RUST_LOG", "info")
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

    /// Where it listens: `127.0.0.1:PORT`.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// `POST path` with `body`; panics unless the answer is a 2xx, whose JSON body it returns.
    pub fn post(&self, key: &str, path: &str, body: &Value) -> Value {
        let body = body.to_string();
        let mut stream = TcpStream::connect(&self.address).unwrap();
        stream.set_read_timeout(Some(PROCESS_TIMEOUT)).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        assert!((200..300).contains(&status), "POST {path}: {response}");
        serde_json::from_str(body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plan of one seat at 10.00 a month billed in advance, and `customers` customers subscribed
/// to it since [`SUBSCRIPTIONS_START`], through a server of `backend` started (without a
/// scheduler) and stopped here.
pub fn arrange(backend: &Backend, key: &str, customers: usize) {
    let server = Server::start(backend, &["--billing-interval-seconds", "0"]);
    arrange_on(&server, key, customers);
    server.kill();
}

/// [`arrange`] through a running `server`.
pub fn arrange_on(server: &Server, key: &str, customers: usize) {
    server.post(
        key,
        "/api/v1/plans",
        &json!({"key": "seat", "cadence": "monthly", "currency": "USD", "prices": [
            {"key": "seat", "description": "Seat", "pricing": {"model": "per_unit", "unit_amount": "10.00"}}]}),
    );
    for index in 0..customers {
        let customer = server.post(
            key,
            "/api/v1/customers",
            &json!({"external_id": format!("team-{index}"), "name": format!("Team {index}"), "currency": "USD"}),
        );
        server.post(
            key,
            "/api/v1/subscriptions",
            &json!({"customer_id": customer["id"], "plan": "seat", "start": SUBSCRIPTIONS_START}),
        );
    }
}

/// Invoices one customer of [`arrange`] has by today, with no grace period: one per month from
/// January 2024 to this month, each billed in advance.
pub fn months_billed_by_today() -> usize {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    usize::try_from((i32::from(today.year()) - 2024) * 12 + i32::from(today.month())).unwrap()
}
