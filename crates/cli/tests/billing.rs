//! Billing runs across real `billow serve` processes on one PostgreSQL database (skipped without
//! `BILLOW_TEST_DATABASE_URL`): two schedulers never issue an invoice twice and number them
//! without gaps, and a process killed in the middle of a run loses nothing, because another
//! takes over its leases when they expire.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::{Connection, PgConnection};

use support::{
    api_key, arrange_on, fresh_postgres, invoice_run, months_billed_by_today, runtime, Backend,
    Server,
};

/// How long all invoices may take to appear.
const BILLING_TIMEOUT: Duration = Duration::from_secs(180);
const CUSTOMERS: usize = 12;

/// `billow serve` on `backend` with a scheduler every `interval_seconds` (0: none), no grace
/// period and leases of 2 seconds.
fn server(backend: &Backend, interval_seconds: u32) -> Server {
    let interval = interval_seconds.to_string();
    Server::start(
        backend,
        &[
            "--billing-interval-seconds",
            &interval,
            "--grace-period-seconds",
            "0",
            "--billing-lease-seconds",
            "2",
        ],
    )
}

/// A plan of one seat billed in advance, and `CUSTOMERS` customers subscribed since 2024-01-01:
/// one invoice per customer per month from January 2024 to this month.
fn arrange(server: &Server, key: &str) -> usize {
    arrange_on(server, key, CUSTOMERS);
    CUSTOMERS * months_billed_by_today()
}

fn database_url(backend: &Backend) -> &str {
    match backend {
        Backend::Postgres(url) => url,
        Backend::Sqlite(_) => unreachable!("these tests read PostgreSQL"),
    }
}

/// Every invoice's (number, subscription, issued_at), read from the database.
fn invoices(backend: &Backend) -> Vec<(Option<i64>, String, i64)> {
    runtime().block_on(async {
        let mut connection = PgConnection::connect(database_url(backend)).await.unwrap();
        sqlx::query_as("SELECT number, invoice_key, issued_at FROM invoices ORDER BY number")
            .fetch_all(&mut connection)
            .await
            .unwrap()
    })
}

fn wait_for_invoices(backend: &Backend, expected: usize) -> Vec<(Option<i64>, String, i64)> {
    let started = Instant::now();
    loop {
        let found = invoices(backend);
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
    let Some(backend) = fresh_postgres() else {
        return;
    };
    let key = api_key(&backend);
    let first = server(&backend, 1);
    let second = server(&backend, 1);

    let expected = arrange(&first, &key);

    let found = wait_for_invoices(&backend, expected);
    // A moment more: a duplicate would show up as an extra row.
    std::thread::sleep(Duration::from_secs(2));
    let found_later = invoices(&backend);
    assert_eq!(found.len(), found_later.len());
    assert_issued_once_without_gaps(&found_later, expected);
    first.kill();
    second.kill();
}

#[test]
fn a_server_killed_mid_run_loses_nothing() {
    let Some(backend) = fresh_postgres() else {
        return;
    };
    let key = api_key(&backend);
    // The catalog goes in through a server without a scheduler, so that no run starts early.
    let quiet = server(&backend, 0);
    let expected = arrange(&quiet, &key);
    let doomed = server(&backend, 1);
    let started = Instant::now();
    while invoices(&backend).is_empty() {
        assert!(started.elapsed() < BILLING_TIMEOUT, "the run never started");
        std::thread::sleep(Duration::from_millis(20));
    }

    doomed.kill();
    let at_kill = invoices(&backend).len();
    let survivor = server(&backend, 1);

    let found = wait_for_invoices(&backend, expected);
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
    let backend = Backend::Sqlite(directory.path().join("billow.db"));
    let key = api_key(&backend);
    let server = server(&backend, 0);
    server.post(
        &key,
        "/api/v1/plans",
        &json!({"key": "seat", "cadence": "monthly", "currency": "EUR", "prices": [
            {"key": "seat", "description": "Seat", "pricing": {"model": "per_unit", "unit_amount": "10.00"}}]}),
    );
    let customer = server.post(
        &key,
        "/api/v1/customers",
        &json!({"external_id": "team", "name": "Team", "currency": "EUR", "invoicing": "per_subscription"}),
    );
    server.post(
        &key,
        "/api/v1/subscriptions",
        &json!({"customer_id": customer["id"], "plan": "seat", "quantity": 2, "start": "2024-01-01T00:00:00Z"}),
    );
    server.kill();

    let run = |now: &str| -> Value { invoice_run(&backend, &["--now", now]) };
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
