//! Leases on the real clock, with real processes on one PostgreSQL database (skipped without
//! `BILLOW_TEST_DATABASE_URL`): a `billow invoice run --now T` killed (SIGKILL) after it claimed
//! its customers holds them for its lease's duration of real time, whatever T is. A rerun at the
//! same past T, or a run at the present after one killed at a future T, bills every customer
//! once the lease has run out (docs/billing-runs.md, "Leases on the real clock").
//!
//! The run is stopped at a known point, not raced: the test holds the row lock of the
//! workspace's invoice number sequence, which a run's write transaction takes first, so the run
//! claims its customers, reads and prices them, and then waits; the test kills it there.

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use support::{
    api_key, arrange, billow, fresh_postgres, invoice_run, months_billed_by_today, runtime,
    Backend, PROCESS_TIMEOUT,
};

const CUSTOMERS: usize = 3;
/// The lease of the killed runs, in real seconds: short, so that the tests wait little.
const LEASE_SECONDS: i64 = 2;

/// What a killed run left: its leases' expiries, and the real instants around its life.
struct KilledRun {
    locked_until: Vec<Timestamp>,
    started: Timestamp,
    killed: Timestamp,
}

fn database_url(backend: &Backend) -> &str {
    match backend {
        Backend::Postgres(url) => url,
        Backend::Sqlite(_) => unreachable!("these tests run on PostgreSQL"),
    }
}

/// A connection holding the row lock of the workspace's invoice number sequence, in an open
/// transaction; the lock goes with the connection when it is closed.
async fn lock_number_sequence(url: &str) -> PgConnection {
    let mut connection = PgConnection::connect(url).await.unwrap();
    let (workspace,): (String,) = sqlx::query_as("SELECT id FROM workspaces WHERE name = 'acme'")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO invoice_number_sequences (workspace_id, next_number) VALUES ($1, 1) \
         ON CONFLICT (workspace_id) DO NOTHING",
    )
    .bind(&workspace)
    .execute(&mut connection)
    .await
    .unwrap();
    connection.execute("BEGIN").await.unwrap();
    sqlx::query(
        "SELECT next_number FROM invoice_number_sequences WHERE workspace_id = $1 FOR UPDATE",
    )
    .bind(&workspace)
    .execute(&mut connection)
    .await
    .unwrap();
    connection
}

/// The expiries of the billing leases held now.
async fn lease_expiries(connection: &mut PgConnection) -> Vec<Timestamp> {
    let micros: Vec<(i64,)> = sqlx::query_as("SELECT locked_until FROM billing_leases")
        .fetch_all(connection)
        .await
        .unwrap();
    micros
        .into_iter()
        .map(|(us,)| Timestamp::from_microsecond(us).unwrap())
        .collect()
}

/// Waits until the run has claimed every customer, or panics if it ends first.
async fn wait_for_claims(run: &mut Child, connection: &mut PgConnection) -> Vec<Timestamp> {
    let started = Instant::now();
    loop {
        let expiries = lease_expiries(connection).await;
        if expiries.len() == CUSTOMERS {
            return expiries;
        }
        if let Some(status) = run.try_wait().unwrap() {
            panic!("the run ended ({status}) before it was stopped, holding {expiries:?}");
        }
        assert!(started.elapsed() < PROCESS_TIMEOUT, "the run never claimed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Starts `billow invoice run --now now` with short leases, stops it (SIGKILL) once it holds
/// every customer, before it writes anything.
fn killed_run(backend: &Backend, now: &str) -> KilledRun {
    let url = database_url(backend);
    runtime().block_on(async {
        let lock = lock_number_sequence(url).await;
        let mut watcher = PgConnection::connect(url).await.unwrap();
        let started = Timestamp::now();
        let mut run = billow(
            backend,
            &[
                "invoice",
                "run",
                "--workspace",
                "acme",
                "--now",
                now,
                "--billing-lease-seconds",
                &LEASE_SECONDS.to_string(),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let locked_until = wait_for_claims(&mut run, &mut watcher).await;
        run.kill().unwrap();
        run.wait().unwrap();
        let killed = Timestamp::now();
        lock.close().await.unwrap();
        let invoices: (i64,) = sqlx::query_as("SELECT count(*) FROM invoices")
            .fetch_one(&mut watcher)
            .await
            .unwrap();
        assert_eq!(invoices.0, 0, "the killed run wrote nothing");
        KilledRun {
            locked_until,
            started,
            killed,
        }
    })
}

/// Every lease of `killed` runs out `LEASE_SECONDS` of real time after its claim: between the
/// run's start and its kill, plus the lease, whatever instant the run billed at.
fn assert_leases_on_the_real_clock(killed: &KilledRun) {
    let lease = jiff::SignedDuration::from_secs(LEASE_SECONDS);
    let earliest = killed.started.checked_add(lease).unwrap();
    let latest = killed.killed.checked_add(lease).unwrap();
    for until in &killed.locked_until {
        assert!(
            earliest <= *until && *until <= latest,
            "a lease until {until}, not {LEASE_SECONDS} s of real time after a claim between \
             {} and {}",
            killed.started,
            killed.killed
        );
    }
}

/// Sleeps until every lease `killed` took has run out on the real clock: `LEASE_SECONDS` after
/// the kill at the latest (a lease stored beyond that is what `assert_leases_on_the_real_clock`
/// reports, not something to wait for).
fn wait_out_the_leases(killed: &KilledRun) {
    let lease = jiff::SignedDuration::from_secs(LEASE_SECONDS);
    let expired = killed.killed.checked_add(lease).unwrap();
    let left = expired.duration_since(Timestamp::now());
    if left.is_positive() {
        std::thread::sleep(left.unsigned_abs() + Duration::from_millis(50));
    }
}

/// A run's report: `(customers billed, skipped, finalized)`.
fn counts(report: &Value) -> (u64, u64, u64) {
    (
        report["customers"].as_u64().unwrap(),
        report["skipped"].as_u64().unwrap(),
        report["finalized"].as_u64().unwrap(),
    )
}

/// The invoice numbers a run's report lists.
fn numbers(report: &Value) -> Vec<i64> {
    serde_json::from_value(report["numbers"].clone()).unwrap()
}

#[test]
fn a_run_killed_at_a_past_instant_holds_its_customers_for_the_lease_only() {
    let Some(backend) = fresh_postgres() else {
        return;
    };
    let key = api_key(&backend);
    arrange(&backend, &key, CUSTOMERS);
    let now = "2024-03-01T00:30:00Z";
    let grace = ["--now", now, "--grace-period-seconds", "0"];

    let killed = killed_run(&backend, now);
    let at_once = invoice_run(&backend, &grace);
    let at_once_ended = Timestamp::now();
    wait_out_the_leases(&killed);
    let after_the_lease = invoice_run(&backend, &grace);

    // A rerun right after the kill skips every customer while the leases run, which it can
    // only be sure to see if it ended before they ran out (a loaded machine may start it
    // later); either way, January, February and March 2024 (billed in advance) are issued for
    // every customer once, by it or by the run after the lease.
    let customers = CUSTOMERS as u64;
    let skipped_all = (0, customers, 0);
    let billed_all = (customers, 0, 3 * customers);
    if at_once_ended < *killed.locked_until.iter().min().unwrap() {
        assert_eq!(counts(&at_once), skipped_all, "{at_once}");
    }
    assert!(
        [skipped_all, billed_all].contains(&counts(&at_once)),
        "{at_once}"
    );
    assert_eq!(counts(&after_the_lease).1, 0, "{after_the_lease}");
    assert_eq!(
        counts(&at_once).2 + counts(&after_the_lease).2,
        3 * customers,
        "{at_once} then {after_the_lease}"
    );
    let issued = [numbers(&at_once), numbers(&after_the_lease)].concat();
    assert_eq!(issued, (1..=9).collect::<Vec<i64>>());
    assert_leases_on_the_real_clock(&killed);
}

#[test]
fn a_run_killed_at_a_future_instant_holds_its_customers_for_the_lease_only() {
    let Some(backend) = fresh_postgres() else {
        return;
    };
    let key = api_key(&backend);
    arrange(&backend, &key, CUSTOMERS);

    let killed = killed_run(&backend, "2030-01-01T00:00:00Z");
    wait_out_the_leases(&killed);
    // At the present, as the scheduler of `billow serve` bills.
    let present = invoice_run(&backend, &["--grace-period-seconds", "0"]);

    let finalized = CUSTOMERS * months_billed_by_today();
    assert_eq!(
        counts(&present),
        (CUSTOMERS as u64, 0, finalized as u64),
        "{present}"
    );
    assert_leases_on_the_real_clock(&killed);
}
