//! Migrations that change stored rows keep them readable:
//!
//! - 0007 moves the access tables to the billing tables' convention in place: rows written in the
//!   old shape (TIMESTAMPTZ and JSONB on PostgreSQL, RFC 3339 text on SQLite) read back through
//!   the `Store` with the same values, instants to the microsecond.
//! - 0010 renames `invoices.computed_total_minor` to `amount_before_tax_minor`: an invoice
//!   written before reads back with the same amount under the new name.
//! - 0011 adds `invoices.credited_minor`: an invoice credited before reads back with the sum of
//!   its credit notes, one never credited with zero.
//! - 0015 gives every plan version without a currency the one most of its customers have (else
//!   most of its workspace's customers, else USD), and changes nothing else in its spec.

#[allow(unused_macros)]
mod support;

use std::path::Path;

use billow_store::{
    ApiKey, CredentialHash, CustomerToken, CustomerTokenOwner, Database, IdempotencyBegin,
    IdempotencyWindow, Project, Store, StoredResponse, Workspace, WorkspaceId, WorkspaceName,
};
use jiff::{SignedDuration, Timestamp};
use sqlx::migrate::Migrator;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use tempfile::TempDir;

/// The migration that converts the access tables.
const CONVERSION_VERSION: i64 = 7;

const WORKSPACE_ID: &str = "ws_old";
const API_KEY_SECRET: &str = "bk_old_live";
const REVOKED_KEY_SECRET: &str = "bk_old_revoked";
const CUSTOMER_TOKEN_SECRET: &str = "bct_old";
const IDEMPOTENCY_BODY: &[u8] = br#"{"id":"cus_old"}"#;

/// Rows as the code before 0007 wrote them. Literals, so that PostgreSQL reads each as its
/// column's type (TIMESTAMPTZ, JSONB, SMALLINT) and SQLite keeps the text; `$1` is the response
/// body, bytes on both.
fn old_shape_rows() -> Vec<String> {
    let key_hash = CredentialHash::of(API_KEY_SECRET);
    let revoked_hash = CredentialHash::of(REVOKED_KEY_SECRET);
    let token_hash = CredentialHash::of(CUSTOMER_TOKEN_SECRET);
    vec![
        format!(
            "INSERT INTO workspaces (id, name, created_at) \
             VALUES ('{WORKSPACE_ID}', 'Old Workspace', '2026-11-22T08:00:00.123456Z')"
        ),
        format!(
            "INSERT INTO api_keys (workspace_id, id, hash, prefix, created_at, revoked_at) VALUES \
             ('{WORKSPACE_ID}', 'key_live', '{}', 'bk_old_liv', '2026-11-22T08:01:00.000001Z', NULL), \
             ('{WORKSPACE_ID}', 'key_revoked', '{}', 'bk_old_rev', '1969-12-31T23:59:59.999999Z', \
              '2026-11-22T08:02:00.654321Z')",
            key_hash.as_str(),
            revoked_hash.as_str()
        ),
        // The child first in id order, so that a rebuild copying in that order meets it before
        // its parent.
        format!(
            "INSERT INTO customers (workspace_id, id, external_id, name, email, address, tax_ids, \
             currency, time_zone, billing_cycle_day, parent_id, created_at, updated_at) VALUES \
             ('{WORKSPACE_ID}', 'cus_b_parent', 'team-parent', 'Parent', NULL, NULL, '[]', 'EUR', \
              'UTC', 1, NULL, '2026-11-22T08:03:00.000000Z', '2026-11-22T08:03:00.000000Z')"
        ),
        format!(
            "INSERT INTO customers (workspace_id, id, external_id, name, email, address, tax_ids, \
             currency, time_zone, billing_cycle_day, parent_id, created_at, updated_at) VALUES \
             ('{WORKSPACE_ID}', 'cus_a_old', 'team-42', 'Team 42', 'billing@team42.example', \
              '{{\"line1\": \"Hauptstr. 1\", \"country\": \"DE\"}}', \
              '[{{\"type\": \"eu_vat\", \"value\": \"DE123456789\"}}]', 'JPY', 'Asia/Tokyo', 31, \
              'cus_b_parent', '2026-11-22T08:04:00.000123Z', '2026-11-23T09:05:06.789012Z')"
        ),
        format!(
            "INSERT INTO customer_tokens \
             (workspace_id, id, customer_id, hash, prefix, created_at, expires_at) VALUES \
             ('{WORKSPACE_ID}', 'ctok_old', 'cus_a_old', '{}', 'bct_old', \
              '2026-11-22T08:06:00.000007Z', '2026-12-22T08:06:00.500000Z')",
            token_hash.as_str()
        ),
        format!(
            "INSERT INTO projects (workspace_id, id, customer_id, parent_id, name, created_at) \
             VALUES ('{WORKSPACE_ID}', 'prj_root', 'cus_a_old', NULL, 'Root', \
              '2026-11-22T08:07:00.000000Z'), \
             ('{WORKSPACE_ID}', 'prj_child', 'cus_a_old', 'prj_root', 'Child', \
              '2026-11-22T08:07:00.000001Z')"
        ),
        format!(
            "INSERT INTO idempotency_keys (workspace_id, key, fingerprint, response_status, \
             response_headers, response_body, created_at) VALUES \
             ('{WORKSPACE_ID}', 'retry-1', 'f1ngerpr1nt', 201, \
              '[[\"content-type\", \"application/json\"], [\"location\", \"/v1/customers/cus_a_old\"]]', \
              $1, '2026-11-22T08:08:00.250000Z')"
        ),
    ]
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

/// The migrations before the conversion, read from the same files the store embeds.
async fn migrator_before_conversion(backend: &str) -> (Migrator, TempDir) {
    migrator_before(backend, CONVERSION_VERSION).await
}

/// The migrations before `version`, read from the same files the store embeds.
async fn migrator_before(backend: &str, version_before: i64) -> (Migrator, TempDir) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    let directory = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let version: i64 = name.split('_').next().unwrap().parse().unwrap();
        if version < version_before {
            std::fs::copy(&path, directory.path().join(&name)).unwrap();
        }
    }
    let migrator = Migrator::new(directory.path()).await.unwrap();
    assert!(migrator.version_exists(version_before - 1));
    assert!(!migrator.version_exists(version_before));
    (migrator, directory)
}

/// Applies the old migrations and inserts the old-shape rows on `$connection` (a macro: the
/// generic bounds of a function over both connection types would dwarf its body).
macro_rules! prepare_old_database {
    ($connection:expr, $backend:literal) => {{
        let (migrator, _directory) = migrator_before_conversion($backend).await;
        migrator.run(&mut *$connection).await.unwrap();
        for statement in old_shape_rows() {
            let query = sqlx::query(&statement);
            let query = if statement.contains("$1") {
                query.bind(IDEMPOTENCY_BODY)
            } else {
                query
            };
            query
                .execute(&mut *$connection)
                .await
                .unwrap_or_else(|error| {
                    panic!("could not insert an old-shape row: {error}\n{statement}")
                });
        }
    }};
}

/// Reads everything back through the migrated store.
async fn old_rows_read_back_equal(store: &Store) {
    let workspace_id = WorkspaceId::parse(WORKSPACE_ID).unwrap();
    let workspace = Workspace {
        id: workspace_id.clone(),
        name: WorkspaceName::parse("Old Workspace").unwrap(),
        created_at: at("2026-11-22T08:00:00.123456Z"),
    };
    assert_eq!(
        store.workspace(&workspace_id).await.unwrap(),
        Some(workspace.clone())
    );
    assert_eq!(
        store.workspace_named(&workspace.name).await.unwrap(),
        Some(workspace)
    );

    assert_eq!(
        store.api_keys(&workspace_id).await.unwrap(),
        vec![
            ApiKey {
                workspace_id: workspace_id.clone(),
                id: "key_live".to_owned(),
                prefix: "bk_old_liv".to_owned(),
                created_at: at("2026-11-22T08:01:00.000001Z"),
                revoked_at: None,
            },
            ApiKey {
                workspace_id: workspace_id.clone(),
                id: "key_revoked".to_owned(),
                prefix: "bk_old_rev".to_owned(),
                created_at: at("1969-12-31T23:59:59.999999Z"),
                revoked_at: Some(at("2026-11-22T08:02:00.654321Z")),
            },
        ]
    );
    let live = CredentialHash::of(API_KEY_SECRET);
    let revoked = CredentialHash::of(REVOKED_KEY_SECRET);
    assert_eq!(
        store.api_key_workspace(&live).await.unwrap(),
        Some(workspace_id.clone())
    );
    assert_eq!(store.api_key_workspace(&revoked).await.unwrap(), None);

    // A customer from before 0013 keeps one invoice per subscription and the workspace's terms.
    let customer = billow_store::Customer {
        invoicing: billow_core::scenario::Invoicing::PerSubscription,
        net_days: None,
        owner: None,
        ..support::customer("cus_a_old", "team-42", Some("cus_b_parent"))
    };
    assert_eq!(
        store.customer(&workspace_id, "cus_a_old").await.unwrap(),
        Some(customer.clone())
    );
    assert_eq!(
        store
            .customer_by_external_id(&workspace_id, "team-42")
            .await
            .unwrap(),
        Some(customer)
    );
    let page = store.customers(&workspace_id, 10, None).await.unwrap();
    assert_eq!(page.items.len(), 2);

    assert_eq!(
        store.projects(&workspace_id, "cus_a_old").await.unwrap(),
        vec![
            Project {
                id: "prj_child".into(),
                customer_id: "cus_a_old".into(),
                parent_id: Some("prj_root".into()),
                name: "Child".to_owned(),
            },
            Project {
                id: "prj_root".into(),
                customer_id: "cus_a_old".into(),
                parent_id: None,
                name: "Root".to_owned(),
            },
        ]
    );

    let token_created_at = at("2026-11-22T08:06:00.000007Z");
    let token_expires_at = at("2026-12-22T08:06:00.500000Z");
    assert_eq!(
        store
            .customer_tokens(&workspace_id, "cus_a_old", token_created_at)
            .await
            .unwrap(),
        vec![CustomerToken {
            workspace_id: workspace_id.clone(),
            id: "ctok_old".to_owned(),
            customer_id: "cus_a_old".into(),
            prefix: "bct_old".to_owned(),
            created_at: token_created_at,
            expires_at: token_expires_at,
        }]
    );
    // The expiry still compares to the microsecond: valid a microsecond before, not at it.
    let token = CredentialHash::of(CUSTOMER_TOKEN_SECRET);
    let just_before = token_expires_at - SignedDuration::from_micros(1);
    assert_eq!(
        store
            .customer_tokens(&workspace_id, "cus_a_old", token_expires_at)
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(
        store
            .customer_token_owner(&token, just_before)
            .await
            .unwrap(),
        Some(CustomerTokenOwner {
            workspace_id: workspace_id.clone(),
            customer_id: "cus_a_old".into(),
        })
    );

    let created_at = at("2026-11-22T08:08:00.250000Z");
    let window = IdempotencyWindow {
        now: created_at + SignedDuration::from_mins(1),
        // The key is kept when it was created exactly at the bound, forgotten a microsecond later.
        expired_before: created_at,
        stale_before: created_at,
    };
    assert_eq!(
        store
            .begin_idempotent_request(&workspace_id, "retry-1", "f1ngerpr1nt", window)
            .await
            .unwrap(),
        IdempotencyBegin::Completed(StoredResponse {
            status: 201,
            headers: vec![
                ("content-type".to_owned(), "application/json".to_owned()),
                ("location".to_owned(), "/v1/customers/cus_a_old".to_owned()),
            ],
            body: IDEMPOTENCY_BODY.to_vec(),
        })
    );
    let deleted = store
        .delete_expired_idempotency_keys(created_at + SignedDuration::from_micros(1))
        .await
        .unwrap();
    assert_eq!(deleted, 1);
}

/// The instants of the customer that the Store API does not return, as stored: microseconds
/// since the epoch.
macro_rules! stored_customer_instants {
    ($connection:expr) => {{
        let instants: (i64, i64) = sqlx::query_as(
            "SELECT created_at, updated_at FROM customers WHERE workspace_id = $1 AND id = $2",
        )
        .bind(WORKSPACE_ID)
        .bind("cus_a_old")
        .fetch_one(&mut *$connection)
        .await
        .unwrap();
        instants
    }};
}

fn expected_customer_instants() -> (i64, i64) {
    (
        at("2026-11-22T08:04:00.000123Z").as_microsecond(),
        at("2026-11-23T09:05:06.789012Z").as_microsecond(),
    )
}

#[tokio::test]
async fn sqlite_access_rows_of_the_old_shape_survive_the_conversion() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("billow.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .foreign_keys(true);
    let mut connection = SqliteConnection::connect_with(&options).await.unwrap();
    prepare_old_database!(&mut connection, "sqlite");
    connection.close().await.unwrap();

    let store = Store::open(&Database::sqlite(&path)).await.unwrap();
    store.migrate().await.unwrap();
    old_rows_read_back_equal(&store).await;
    store.close().await;

    let mut connection = SqliteConnection::connect_with(&options).await.unwrap();
    assert_eq!(
        stored_customer_instants!(&mut connection),
        expected_customer_instants()
    );
    let violations = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    assert!(violations.is_empty());
}

#[tokio::test]
async fn postgres_access_rows_of_the_old_shape_survive_the_conversion() {
    let Some(admin_url) = support::postgres_admin_url() else {
        return;
    };
    let database = support::PostgresDatabase::create(admin_url).await;
    let mut connection = database.connect().await;
    prepare_old_database!(&mut connection, "postgres");

    let store = Store::open(&database.database()).await.unwrap();
    store.migrate().await.unwrap();
    old_rows_read_back_equal(&store).await;
    store.close().await;

    assert_eq!(
        stored_customer_instants!(&mut connection),
        expected_customer_instants()
    );
    connection.close().await.unwrap();
    database.drop_database().await;
}

/// The migration that renames `invoices.computed_total_minor`.
const RENAME_VERSION: i64 = 10;

/// An open invoice as the code before 0010 wrote it: 13.80 with tax, 11.60 before tax.
const INVOICE_BEFORE_RENAME: &str = "INSERT INTO invoices (workspace_id, id, number, customer_id, \
    subscription_id, plan_version_id, reason, issued_at, period_start, period_end, status, \
    currency, total_minor, computed_total_minor, lines, totals, credit_usage, rounding, \
    created_at, finalized_at) VALUES ('ws_old', 'inv_old', 1, 'cus_old', 'sub_old', 'pv_old', \
    'period_end', 1706745600000000, 1704067200000000, 1706745600000000, 'open', 'EUR', 1380, \
    1160, '[]', '{}', '[]', 'half_up', 1706745600000000, 1706749200000000)";

/// The invoice written before 0010, read through the migrated store.
async fn invoice_reads_back_after_the_rename(store: &Store) {
    let invoice = store
        .invoice(&WorkspaceId::parse("ws_old").unwrap(), "inv_old")
        .await
        .unwrap()
        .expect("the invoice survives the rename");
    assert_eq!(
        (
            invoice.number,
            invoice.total_minor,
            invoice.amount_before_tax_minor
        ),
        (Some(1), 1380, 1160)
    );
}

/// A SQLite store whose file held the migrations before `version` and the rows `statements`
/// wrote, then was opened and migrated by the store.
async fn sqlite_migrated_from(version: i64, statements: &[&str]) -> (Store, TempDir) {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("billow.db");
    let options = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true);
    let mut connection = SqliteConnection::connect_with(&options).await.unwrap();
    let (migrator, _migrations) = migrator_before("sqlite", version).await;
    migrator.run(&mut connection).await.unwrap();
    for statement in statements {
        sqlx::query(statement)
            .execute(&mut connection)
            .await
            .unwrap();
    }
    connection.close().await.unwrap();
    let store = Store::open(&Database::sqlite(&path)).await.unwrap();
    store.migrate().await.unwrap();
    (store, directory)
}

/// The same on a fresh PostgreSQL database, which `check` reads through the store before it is
/// dropped; nothing without `BILLOW_TEST_DATABASE_URL`.
async fn on_postgres_migrated_from<F: std::future::Future<Output = ()>>(
    version: i64,
    statements: &[&str],
    check: impl FnOnce(Store) -> F,
) {
    let Some(admin_url) = support::postgres_admin_url() else {
        return;
    };
    let database = support::PostgresDatabase::create(admin_url).await;
    let mut connection = database.connect().await;
    let (migrator, _migrations) = migrator_before("postgres", version).await;
    migrator.run(&mut connection).await.unwrap();
    for statement in statements {
        sqlx::query(statement)
            .execute(&mut connection)
            .await
            .unwrap();
    }
    let store = Store::open(&database.database()).await.unwrap();
    store.migrate().await.unwrap();
    check(store.clone()).await;
    store.close().await;
    connection.close().await.unwrap();
    database.drop_database().await;
}

#[tokio::test]
async fn sqlite_invoices_keep_their_amount_before_tax_under_its_new_name() {
    let (store, _directory) = sqlite_migrated_from(RENAME_VERSION, &[INVOICE_BEFORE_RENAME]).await;
    invoice_reads_back_after_the_rename(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_invoices_keep_their_amount_before_tax_under_its_new_name() {
    on_postgres_migrated_from(
        RENAME_VERSION,
        &[INVOICE_BEFORE_RENAME],
        |store| async move {
            invoice_reads_back_after_the_rename(&store).await;
        },
    )
    .await;
}

/// The migration that adds `invoices.credited_minor`.
const CREDITED_VERSION: i64 = 11;

/// Two open invoices as the code before 0011 wrote them, the first with two credit notes (5.00
/// and 1.38).
const INVOICES_BEFORE_CREDITED: [&str; 4] = [
    "INSERT INTO invoices (workspace_id, id, number, customer_id, subscription_id, \
     plan_version_id, reason, issued_at, period_start, period_end, status, currency, total_minor, \
     amount_before_tax_minor, lines, totals, credit_usage, rounding, created_at, finalized_at) \
     VALUES ('ws_old', 'inv_credited', 1, 'cus_old', 'sub_old', 'pv_old', 'period_end', \
     1706745600000000, 1704067200000000, 1706745600000000, 'open', 'EUR', 1380, 1160, '[]', \
     '{}', '[]', 'half_up', 1706745600000000, 1706749200000000)",
    "INSERT INTO invoices (workspace_id, id, number, customer_id, subscription_id, \
     plan_version_id, reason, issued_at, period_start, period_end, status, currency, total_minor, \
     amount_before_tax_minor, lines, totals, credit_usage, rounding, created_at, finalized_at) \
     VALUES ('ws_old', 'inv_plain', 2, 'cus_old', 'sub_old', 'pv_old', 'period_end', \
     1709251200000000, 1706745600000000, 1709251200000000, 'open', 'EUR', 700, 700, '[]', \
     '{}', '[]', 'half_up', 1709251200000000, 1709254800000000)",
    "INSERT INTO credit_notes (workspace_id, id, invoice_id, total_minor, lines, reason, \
     created_at) VALUES ('ws_old', 'cn_1', 'inv_credited', 500, '[]', NULL, 1706800000000000)",
    "INSERT INTO credit_notes (workspace_id, id, invoice_id, total_minor, lines, reason, \
     created_at) VALUES ('ws_old', 'cn_2', 'inv_credited', 138, '[]', NULL, 1706900000000000)",
];

/// The invoices written before 0011, read through the migrated store.
async fn invoices_read_back_credited(store: &Store) {
    let workspace = WorkspaceId::parse("ws_old").unwrap();
    for (id, credited_minor) in [("inv_credited", 638), ("inv_plain", 0)] {
        let invoice = store
            .invoice(&workspace, id)
            .await
            .unwrap()
            .expect("the invoice survives the migration");
        assert_eq!(invoice.credited_minor, credited_minor, "{id}");
    }
}

#[tokio::test]
async fn sqlite_invoices_credited_before_0011_read_back_what_was_credited() {
    let (store, _directory) =
        sqlite_migrated_from(CREDITED_VERSION, &INVOICES_BEFORE_CREDITED).await;
    invoices_read_back_credited(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_invoices_credited_before_0011_read_back_what_was_credited() {
    on_postgres_migrated_from(
        CREDITED_VERSION,
        &INVOICES_BEFORE_CREDITED,
        |store| async move {
            invoices_read_back_credited(&store).await;
        },
    )
    .await;
}

/// The migration that gives stored plans a currency.
const CURRENCY_VERSION: i64 = 15;

/// A plan spec as the code before 0015 stored it: no currency; amounts as a JSON number with a
/// trailing zero and as strings, which must come through digit for digit.
const SPEC_BEFORE_CURRENCY: &str = r#"{"key": "team", "cadence": "monthly", "prices": [{"key": "seats", "pricing": {"model": "graduated", "tiers": [{"up_to": 10, "unit_amount": 0.10, "flat_amount": "1.50"}, {"unit_amount": "0.0800"}]}}]}"#;

/// Workspace `ws_a` has three EUR customers and two JPY ones; `ws_b` none; `ws_c` one EUR and
/// one JPY customer. The versions of `ws_a`: `pv_eur` is billed to an EUR customer only,
/// `pv_jpy_start` only to the JPY customer whose subscription started on it and moved on,
/// `pv_jpy_change` only through a change to it that was later undone, `pv_most_jpy` to two JPY
/// customers and an EUR one, `pv_unused` to nobody, and `pv_chf` names its currency already.
fn rows_before_currency() -> Vec<String> {
    let mut rows = Vec::new();
    for workspace in ["ws_a", "ws_b", "ws_c"] {
        rows.push(format!(
            "INSERT INTO workspaces (id, name, created_at) VALUES ('{workspace}', '{workspace}', 1)"
        ));
    }
    for (workspace, customer, currency) in [
        ("ws_a", "c_eur_1", "EUR"),
        ("ws_a", "c_eur_2", "EUR"),
        ("ws_a", "c_eur_3", "EUR"),
        ("ws_a", "c_jpy_1", "JPY"),
        ("ws_a", "c_jpy_2", "JPY"),
        ("ws_c", "c_jpy", "JPY"),
        ("ws_c", "c_eur", "EUR"),
    ] {
        rows.push(format!(
            "INSERT INTO customers (workspace_id, id, external_id, name, email, address, tax_ids, \
             currency, time_zone, billing_cycle_day, parent_id, created_at, updated_at) VALUES \
             ('{workspace}', '{customer}', '{customer}', '{customer}', NULL, NULL, '[]', \
              '{currency}', 'UTC', 1, NULL, 1, 1)"
        ));
    }
    let chf_spec = SPEC_BEFORE_CURRENCY.replacen('{', r#"{"currency": "CHF", "#, 1);
    for (workspace, version, spec) in [
        ("ws_a", "pv_eur", SPEC_BEFORE_CURRENCY),
        ("ws_a", "pv_jpy_start", SPEC_BEFORE_CURRENCY),
        ("ws_a", "pv_jpy_change", SPEC_BEFORE_CURRENCY),
        ("ws_a", "pv_most_jpy", SPEC_BEFORE_CURRENCY),
        ("ws_a", "pv_unused", SPEC_BEFORE_CURRENCY),
        ("ws_a", "pv_chf", &chf_spec),
        ("ws_b", "pv_lonely", SPEC_BEFORE_CURRENCY),
        ("ws_c", "pv_tie", SPEC_BEFORE_CURRENCY),
    ] {
        rows.push(format!(
            "INSERT INTO plan_versions (workspace_id, id, plan_id, version, spec, created_at) \
             VALUES ('{workspace}', '{version}', 'plan_{version}', 1, '{spec}', 1)"
        ));
    }
    // (subscription, customer, the version it started on, the version it is on now)
    for (subscription, customer, started_on, now_on) in [
        ("s_eur", "c_eur_1", "pv_eur", "pv_eur"),
        ("s_moved", "c_jpy_1", "pv_jpy_start", "pv_most_jpy"),
        ("s_undone", "c_jpy_2", "pv_most_jpy", "pv_most_jpy"),
        ("s_minority", "c_eur_3", "pv_most_jpy", "pv_most_jpy"),
    ] {
        rows.push(format!(
            "INSERT INTO subscriptions (workspace_id, id, customer_id, plan_id, plan_version_id, \
             status, spec, created_at) VALUES ('ws_a', '{subscription}', '{customer}', 'plan', \
             '{now_on}', 'active', '{{\"id\": \"{subscription}\", \"plan\": \"{started_on}\", \
             \"start\": \"2024-01-01T00:00:00Z\"}}', 1)"
        ));
    }
    for (subscription, sequence, plan) in [
        ("s_moved", 1, "pv_most_jpy"),
        ("s_undone", 1, "pv_jpy_change"),
        ("s_undone", 2, "pv_most_jpy"),
    ] {
        rows.push(format!(
            "INSERT INTO subscription_changes (workspace_id, subscription_id, sequence, at, spec, \
             created_at) VALUES ('ws_a', '{subscription}', {sequence}, {sequence}, \
             '{{\"at\": \"2024-01-0{sequence}T00:00:00Z\", \"plan\": \"{plan}\"}}', 1)"
        ));
    }
    rows.push(
        "INSERT INTO billed_resources (workspace_id, id, customer_id, project_id, plan_id, \
         plan_version_id, quantity, quantity_changes, created_at, deleted_at, kind, name, \
         dimensions, external_id, inserted_at) VALUES ('ws_a', 'res_1', 'c_jpy_2', NULL, 'plan', \
         'pv_most_jpy', '1', '[]', 1, NULL, NULL, NULL, '{}', NULL, 1)"
            .to_owned(),
    );
    rows
}

/// The versions read back through the migrated store: each with the currency the migration
/// chose, and otherwise the spec it had.
async fn plan_versions_read_back_with_a_currency(store: &Store) {
    let before: serde_json::Value = serde_json::from_str(SPEC_BEFORE_CURRENCY).unwrap();
    for (workspace, version, currency) in [
        ("ws_a", "pv_eur", "EUR"),
        ("ws_a", "pv_jpy_start", "JPY"),
        ("ws_a", "pv_jpy_change", "JPY"),
        ("ws_a", "pv_most_jpy", "JPY"),
        ("ws_a", "pv_unused", "EUR"),
        ("ws_a", "pv_chf", "CHF"),
        ("ws_b", "pv_lonely", "USD"),
        ("ws_c", "pv_tie", "EUR"),
    ] {
        let stored = store
            .plan_version(&WorkspaceId::parse(workspace).unwrap(), version)
            .await
            .unwrap()
            .expect("the plan version survives the migration");
        let mut expected = before.clone();
        expected["currency"] = serde_json::json!(currency);
        let expected: billow_core::scenario::PlanSpec = serde_json::from_value(expected).unwrap();
        assert_eq!(stored.spec, expected, "{version}");
        assert_eq!(
            stored.spec.currency.map(|c| c.code()),
            Some(currency),
            "{version}"
        );
    }
}

#[tokio::test]
async fn sqlite_plans_stored_without_a_currency_get_their_customers_currency() {
    let rows = rows_before_currency();
    let statements: Vec<&str> = rows.iter().map(String::as_str).collect();
    let (store, _directory) = sqlite_migrated_from(CURRENCY_VERSION, &statements).await;
    plan_versions_read_back_with_a_currency(&store).await;
    store.close().await;
}

#[tokio::test]
async fn postgres_plans_stored_without_a_currency_get_their_customers_currency() {
    let rows = rows_before_currency();
    let statements: Vec<&str> = rows.iter().map(String::as_str).collect();
    on_postgres_migrated_from(CURRENCY_VERSION, &statements, |store| async move {
        plan_versions_read_back_with_a_currency(&store).await;
    })
    .await;
}
