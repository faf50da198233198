//! A billing run over several batches (the pipeline of docs/billing-runs.md): every customer is
//! billed once, numbers run 1..n without gaps across batches, a customer whose stored world the
//! engine rejects is counted as failed without holding up the others, and a second run changes
//! nothing. Leases are measured on the real clock, whatever instant a run bills at.

use std::sync::Arc;

use billow_billing::clock::ManualClock;
use billow_billing::{run_billing, Billing, BillingSettings};
use billow_core::Currency;
use billow_store::catalog::{MeterRecord, PlanRecord, PlanVersionRecord};
use billow_store::invoices::{InvoiceFilter, InvoiceStatus};
use billow_store::subscriptions::{SubscriptionRecord, SubscriptionStatus};
use billow_store::{Customer, Database, Store, WorkspaceId, WorkspaceName};
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};

const START: &str = "2024-01-01T00:00:00Z";

/// Billing settings with no grace period (a due invoice is finalized at once) and no scheduler.
fn no_grace() -> BillingSettings {
    BillingSettings {
        grace_period: SignedDuration::ZERO,
        interval: None,
        ..BillingSettings::default()
    }
}

/// The billing application over `store`, billing at `now` with [`no_grace`].
fn billing_at(store: &Store, now: Timestamp) -> Billing {
    Billing::new(store.clone())
        .with_clock(Arc::new(ManualClock::new(now)))
        .with_settings(no_grace())
}

async fn seeded(database: &Database) -> (Store, WorkspaceId) {
    let store = Store::open(database).await.unwrap();
    store.migrate().await.unwrap();
    let workspace = seed_workspace(&store, "runs").await;
    (store, workspace)
}

/// A workspace named `name` with a meter and a monthly plan of seats at 10.00 (`pv_1`).
async fn seed_workspace(store: &Store, name: &str) -> WorkspaceId {
    let created: Timestamp = START.parse().unwrap();
    let workspace = store
        .workspace_named_or_created(&WorkspaceName::parse(name).unwrap(), created)
        .await
        .unwrap()
        .id;
    store
        .insert_meter(
            &workspace,
            &MeterRecord {
                id: "mtr_1".into(),
                key: "requests".into(),
                spec: serde_json::from_value(
                    json!({"key": "requests", "event_type": "api.requests",
                    "aggregation": "SUM", "value_property": "count"}),
                )
                .unwrap(),
                created_at: created,
            },
        )
        .await
        .unwrap();
    let plan = PlanRecord {
        id: "plan_1".into(),
        key: "team".into(),
        current_version_id: "pv_1".into(),
        created_at: created,
    };
    let version = PlanVersionRecord {
        id: "pv_1".into(),
        plan_id: "plan_1".into(),
        version: 1,
        spec: serde_json::from_value(
            json!({"key": "team", "cadence": "monthly", "currency": "USD", "prices": [
            {"key": "seats", "description": "Seats",
             "pricing": {"model": "per_unit", "unit_amount": "10.00"}}]}),
        )
        .unwrap(),
        created_at: created,
    };
    store
        .insert_plan(&workspace, &plan, &version)
        .await
        .unwrap();
    workspace
}

async fn customer_with_subscription(
    store: &Store,
    workspace: &WorkspaceId,
    index: usize,
    spec: Value,
) {
    let created: Timestamp = START.parse().unwrap();
    let id = format!("cus_{index}");
    store
        .insert_customer(
            workspace,
            &Customer {
                id: id.clone().into(),
                external_id: format!("team-{index}"),
                name: format!("Team {index}"),
                email: None,
                address: None,
                tax_ids: Vec::new(),
                currency: Currency::from_code("USD").unwrap(),
                time_zone: "UTC".into(),
                billing_cycle_day: 1,
                parent_id: None,
                invoicing: billow_core::scenario::Invoicing::Consolidated,
                net_days: None,
                owner: None,
            },
            created,
        )
        .await
        .unwrap();
    store
        .insert_subscription(
            workspace,
            &SubscriptionRecord {
                id: format!("sub_{index}").into(),
                customer_id: id.into(),
                plan_id: "plan_1".into(),
                plan_version_id: "pv_1".into(),
                status: SubscriptionStatus::Active,
                spec: serde_json::from_value(spec).unwrap(),
                created_at: created,
            },
        )
        .await
        .unwrap();
}

/// Overwrites the stored spec of the subscription `id` with `text`, as a buggy version or a hand
/// edit would: past the store's typed writes.
async fn overwrite_subscription_spec(database: &Database, id: &str, text: &str) {
    execute(
        database,
        &format!("UPDATE subscriptions SET spec = '{text}' WHERE id = '{id}'"),
    )
    .await;
}

/// Runs `sql` on the database directly.
async fn execute(database: &Database, sql: &str) {
    use sqlx::{Connection, Executor};
    match database {
        Database::Sqlite { path } => {
            let url = format!("sqlite://{}", path.display());
            let mut connection = sqlx::SqliteConnection::connect(&url).await.unwrap();
            connection.execute(sql).await.unwrap();
        }
        Database::Postgres(url) => {
            let mut connection = sqlx::PgConnection::connect(&url.to_string()).await.unwrap();
            connection.execute(sql).await.unwrap();
        }
    }
}

async fn a_run_bills_every_batch_once_with_gap_free_numbers(database: Database) {
    let (store, workspace) = seeded(&database).await;
    for index in 0..6 {
        // As if written by a buggy version: customer 2's stored subscription cannot be read
        // (its start is no instant), customer 5's is one the engine rejects (a negative
        // quantity). The run must bill the others.
        let quantity = if index == 5 { -1 } else { index as i64 + 1 };
        let spec = json!({"id": format!("sub_{index}"), "plan": "pv_1", "start": START,
            "quantity": quantity});
        customer_with_subscription(&store, &workspace, index, spec).await;
    }
    overwrite_subscription_spec(
        &database,
        "sub_2",
        r#"{"id": "sub_2", "plan": "pv_1", "start": "not an instant"}"#,
    )
    .await;
    let now: Timestamp = "2024-02-01T01:00:00Z".parse().unwrap();
    let billing = billing_at(&store, now).with_settings(BillingSettings {
        customers_per_batch: 2,
        ..no_grace()
    });

    let report = run_billing(&billing, Some(&workspace)).await.unwrap();

    // Three batches: {0, 1}, {2, 3}, {4, 5}; each good customer has its start invoice and its
    // January invoice.
    assert_eq!((report.customers, report.failed, report.skipped), (4, 2, 0));
    assert_eq!(report.finalized, 8);
    let mut numbers = report.numbers.clone();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=8).collect::<Vec<i64>>());
    let invoices = store
        .invoices(
            &workspace,
            &InvoiceFilter {
                limit: 100,
                ..InvoiceFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(invoices.len(), 8);
    assert!(invoices.iter().all(|i| i.status == InvoiceStatus::Open));
    assert!(invoices
        .iter()
        .all(|i| i.customer_id != "cus_2" && i.customer_id != "cus_5"));
    // Seats in advance: customer k has k + 1 seats at 10.00, billed at its start and again on
    // February 1st for February.
    for invoice in &invoices {
        let index: i64 = invoice.customer_id["cus_".len()..].parse().unwrap();
        assert_eq!(invoice.total_minor, (index + 1) * 1000, "{}", invoice.id);
    }
    let mut stored: Vec<i64> = invoices.iter().filter_map(|i| i.number).collect();
    stored.sort_unstable();
    assert_eq!(stored, (1..=8).collect::<Vec<i64>>());

    // Nothing is due and nothing is new: the billed customers are left alone, the failed ones
    // are tried again.
    let again = run_billing(&billing, Some(&workspace)).await.unwrap();
    assert_eq!((again.customers, again.unchanged, again.failed), (0, 4, 2));
    assert_eq!(
        (again.finalized, again.drafted, again.adjustments),
        (0, 0, 0)
    );
    // The leases were released: another node may bill at once.
    let held = store
        .acquire_billing_leases(
            &workspace,
            &["cus_0".into(), "cus_2".into(), "cus_4".into()],
            "another-node",
            now,
            now.checked_add(SignedDuration::from_secs(60)).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(held.len(), 3);
    store.close().await;
}

#[tokio::test]
async fn a_run_bills_every_batch_once_with_gap_free_numbers_on_sqlite() {
    let directory = tempfile::tempdir().unwrap();
    a_run_bills_every_batch_once_with_gap_free_numbers(Database::sqlite(
        directory.path().join("billow.db"),
    ))
    .await;
}

#[tokio::test]
async fn a_run_bills_every_batch_once_with_gap_free_numbers_on_postgres() {
    let Some(database) = crate::month::postgres_database().await else {
        return;
    };
    a_run_bills_every_batch_once_with_gap_free_numbers(database).await;
}

/// Leases are taken and found expired on the lease clock (the real time), never on the instant a
/// run bills at: a run billing at a past instant takes over a lease that expired in real time,
/// and one billing at a future instant leaves alone a lease another node still holds.
async fn leases_are_measured_on_the_real_clock_not_on_the_billing_instant(database: Database) {
    let (store, workspace) = seeded(&database).await;
    for index in 0..2 {
        let spec = json!({"id": format!("sub_{index}"), "plan": "pv_1", "start": START});
        customer_with_subscription(&store, &workspace, index, spec).await;
    }
    let real: Timestamp = "2026-06-01T12:00:00Z".parse().unwrap();
    let seconds = |s: i64| SignedDuration::from_secs(s);
    // cus_0: another node is billing it, for another minute of real time.
    let live = store
        .acquire_billing_leases(
            &workspace,
            &["cus_0".into()],
            "live-node",
            real,
            real.checked_add(seconds(60)).unwrap(),
        )
        .await
        .unwrap();
    // cus_1: a run that died two minutes ago left a lease that expired a minute ago.
    let dead = store
        .acquire_billing_leases(
            &workspace,
            &["cus_1".into()],
            "dead-node",
            real.checked_sub(seconds(120)).unwrap(),
            real.checked_sub(seconds(60)).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!((live.len(), dead.len()), (1, 1));
    let run_at = |now: &str| {
        billing_at(&store, now.parse().unwrap()).with_lease_clock(Arc::new(ManualClock::new(real)))
    };

    let past = run_billing(&run_at("2024-02-01T01:00:00Z"), Some(&workspace))
        .await
        .unwrap();
    let future = run_billing(&run_at("2030-01-01T01:00:00Z"), Some(&workspace))
        .await
        .unwrap();

    // Each run bills cus_1 and skips cus_0: January and February 2024 first, then every month
    // from March 2024 to January 2030.
    assert_eq!((past.customers, past.skipped, past.finalized), (1, 1, 2));
    assert_eq!(
        (future.customers, future.skipped, future.finalized),
        (1, 1, 71)
    );
    let invoices = store
        .invoices(
            &workspace,
            &InvoiceFilter {
                limit: 100,
                ..InvoiceFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(invoices.len(), 73);
    assert!(invoices
        .iter()
        .all(|invoice| invoice.customer_id == "cus_1"));
    store.close().await;
}

#[tokio::test]
async fn leases_are_measured_on_the_real_clock_not_on_the_billing_instant_on_sqlite() {
    let directory = tempfile::tempdir().unwrap();
    leases_are_measured_on_the_real_clock_not_on_the_billing_instant(Database::sqlite(
        directory.path().join("billow.db"),
    ))
    .await;
}

#[tokio::test]
async fn leases_are_measured_on_the_real_clock_not_on_the_billing_instant_on_postgres() {
    let Some(database) = crate::month::postgres_database().await else {
        return;
    };
    leases_are_measured_on_the_real_clock_not_on_the_billing_instant(database).await;
}

/// A workspace whose run fails (its meter, which every customer of it is billed with, cannot be
/// read) does not stop the runs of the others: `run_billing` bills them, then answers the error.
async fn a_workspace_whose_run_fails_does_not_stop_the_others(database: Database) {
    let store = Store::open(&database).await.unwrap();
    store.migrate().await.unwrap();
    // Created first, so that its id sorts first and its run comes first.
    let broken = seed_workspace(&store, "broken").await;
    let healthy = seed_workspace(&store, "healthy").await;
    assert!(broken < healthy);
    let subscription = |index: usize| json!({"id": format!("sub_{index}"), "plan": "pv_1", "start": START, "quantity": 1});
    customer_with_subscription(&store, &broken, 0, subscription(0)).await;
    customer_with_subscription(&store, &healthy, 1, subscription(1)).await;
    execute(
        &database,
        &format!("UPDATE meters SET spec = '{{\"key\": 1}}' WHERE workspace_id = '{broken}'"),
    )
    .await;
    let billing = billing_at(&store, "2024-02-01T01:00:00Z".parse().unwrap());

    let error = run_billing(&billing, None).await.unwrap_err();

    assert!(error.is_unreadable_record(), "{error:?}");
    let invoices = |workspace: WorkspaceId| {
        let store = store.clone();
        async move {
            store
                .invoices(
                    &workspace,
                    &InvoiceFilter {
                        limit: 100,
                        ..InvoiceFilter::default()
                    },
                )
                .await
                .unwrap()
        }
    };
    let billed = invoices(healthy).await;
    assert_eq!(billed.len(), 2);
    assert!(billed
        .iter()
        .all(|i| i.status == InvoiceStatus::Open && i.total_minor == 1000));
    assert!(invoices(broken).await.is_empty());
    store.close().await;
}

#[tokio::test]
async fn a_workspace_whose_run_fails_does_not_stop_the_others_on_sqlite() {
    let directory = tempfile::tempdir().unwrap();
    a_workspace_whose_run_fails_does_not_stop_the_others(Database::sqlite(
        directory.path().join("billow.db"),
    ))
    .await;
}

#[tokio::test]
async fn a_workspace_whose_run_fails_does_not_stop_the_others_on_postgres() {
    let Some(database) = crate::month::postgres_database().await else {
        return;
    };
    a_workspace_whose_run_fails_does_not_stop_the_others(database).await;
}
