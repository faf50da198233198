//! A month in the life of a customer, against a real server on port 0 with a fresh database
//! (SQLite; PostgreSQL too when `BILLOW_TEST_DATABASE_URL` is set): a plan, a customer with two
//! projects, a subscription of 3 seats, usage from both projects, the clock moved past the period
//! end, a billing run, the finalized invoice's amounts to the cent and its number 1; then a late
//! event for the closed period, which lands on the next invoice as an adjustment.

use std::net::SocketAddr;
use std::sync::Arc;

use billow_billing::clock::ManualClock;
use billow_billing::BillingSettings;
use billow_server::{Application, Settings};
use billow_store::{Database, PostgresUrl, Store, WorkspaceName};
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A served application with a manual clock and an API key.
pub struct BillingApp {
    pub address: SocketAddr,
    pub key: String,
    pub clock: ManualClock,
    pub store: Store,
    _directory: TempDir,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl BillingApp {
    pub async fn spawn(database: Database, now: &str) -> Self {
        let directory = tempfile::tempdir().unwrap();
        let database = match database {
            Database::Sqlite { .. } => Database::sqlite(directory.path().join("billow.db")),
            other => other,
        };
        let store = Store::open(&database).await.unwrap();
        store.migrate().await.unwrap();
        let workspace = store
            .workspace_named_or_created(&WorkspaceName::parse("Acme").unwrap(), Timestamp::now())
            .await
            .unwrap();
        let (_, secret) = store
            .create_api_key(&workspace.id, Timestamp::now())
            .await
            .unwrap();
        let clock = ManualClock::new(now.parse().unwrap());
        let settings = Settings {
            bind: "127.0.0.1:0".parse().unwrap(),
            database,
        };
        let billing = BillingSettings {
            grace_period: SignedDuration::from_hours(1),
            interval: None,
            ..BillingSettings::default()
        };
        let application = Application::build(settings)
            .await
            .unwrap()
            .with_clock(Arc::new(clock.clone()))
            .with_billing(billing);
        let address = application.address();
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(application.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            address,
            key: secret.expose().to_owned(),
            clock,
            store,
            _directory: directory,
            shutdown,
            server,
        }
    }

    pub async fn stop(self) {
        self.shutdown.send(()).unwrap();
        self.server.await.unwrap().unwrap();
        self.store.close().await;
    }

    /// Sends one request over a new connection; returns the status and the JSON body.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.key, method, path, body, "application/json")
            .await
    }

    pub async fn call_as(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        content_type: &str,
    ) -> (u16, Value) {
        let (status, _, json) = self
            .call_with_content_type(key, method, path, body, content_type)
            .await;
        (status, json)
    }

    /// As [`BillingApp::call_as`], with the response's `Content-Type` (empty when absent).
    pub async fn call_with_content_type(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
        content_type: &str,
    ) -> (u16, String, Value) {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\n\
             Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.address,
            body.len()
        );
        let mut stream = TcpStream::connect(self.address).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
        let response_type = head
            .lines()
            .find_map(|line| {
                let (name, value) = line.split_once(':')?;
                name.eq_ignore_ascii_case("content-type")
                    .then(|| value.trim().to_owned())
            })
            .unwrap_or_default();
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()))
        };
        (status, response_type, json)
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, json) = self.call("POST", path, Some(body)).await;
        assert!((200..300).contains(&status), "POST {path}: {status} {json}");
        json
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, json) = self.call("GET", path, None).await;
        assert_eq!(status, 200, "GET {path}: {json}");
        json
    }

    pub async fn set_now(&self, now: &str) {
        self.clock.set(now.parse().unwrap());
    }
}

/// A fresh PostgreSQL database when `BILLOW_TEST_DATABASE_URL` is set.
pub async fn postgres_database() -> Option<Database> {
    let admin_url = std::env::var("BILLOW_TEST_DATABASE_URL").ok()?;
    let parsed: PostgresUrl = admin_url.parse().unwrap();
    let name = format!(
        "billow_month_{}_{}",
        std::process::id(),
        Timestamp::now().as_nanosecond()
    );
    let mut admin = PgConnection::connect(&admin_url).await.unwrap();
    admin
        .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await
        .unwrap();
    Some(Database::Postgres(parsed.with_database_name(&name)))
}

/// Runs each `async fn(Database)` as two tests, on a fresh SQLite file and on a fresh PostgreSQL
/// database (skipped when `BILLOW_TEST_DATABASE_URL` is unset):
/// `on_both_databases!(a_check, another_check);`.
macro_rules! on_both_databases {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(billow_store::Database::sqlite("unused")).await;
                }
            )*
        }

        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    let Some(database) = crate::month::postgres_database().await else {
                        return;
                    };
                    super::$check(database).await;
                }
            )*
        }
    };
}
pub(crate) use on_both_databases;

fn line<'a>(invoice: &'a Value, description: &str) -> &'a Value {
    invoice["lines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|line| line["description"] == description)
        .unwrap_or_else(|| panic!("no line {description:?} in {}", invoice["lines"]))
}

fn amount(value: &Value) -> &str {
    value["amount"].as_str().unwrap()
}

async fn a_month_in_the_life(database: Database) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    // Arrange: the catalog, a customer's subscription, usage from two projects.
    app.post(
        "/api/v1/meters",
        json!({"key": "compute", "event_type": "compute.hours", "aggregation": "SUM",
               "value_property": "hours", "group_by": ["project"]}),
    )
    .await;
    app.post(
        "/api/v1/plans",
        json!({"key": "team", "name": "Team", "cadence": "monthly", "currency": "USD", "prices": [
            {"key": "seats", "description": "Seats", "billing": "in_arrears",
             "pricing": {"model": "per_unit", "unit_amount": "10.00"}},
            {"key": "compute", "description": "Compute", "meter": "compute",
             "pricing": {"model": "graduated", "tiers": [
                {"up_to": 50, "unit_amount": "0.10"}, {"unit_amount": "0.08"}]}}
        ]}),
    )
    .await;
    let created = app
        .post(
            "/api/v1/customers",
            json!({"external_id": "acme", "name": "Acme", "currency": "USD", "invoicing": "per_subscription"}),
        )
        .await;
    let customer = created["id"].as_str().unwrap().to_owned();
    let customer = customer.as_str();
    let mut projects = Vec::new();
    for name in ["web", "batch"] {
        let project = app
            .post(
                &format!("/api/v1/customers/{customer}/projects"),
                json!({"name": name}),
            )
            .await;
        projects.push(project["id"].as_str().unwrap().to_owned());
    }
    let (web, batch) = (projects[0].as_str(), projects[1].as_str());
    let subscription = app
        .post(
            "/api/v1/subscriptions",
            json!({"customer_id": customer, "plan": "team", "quantity": 3,
                   "start": "2024-01-01T00:00:00Z"}),
        )
        .await;
    let subscription_id = subscription["id"].as_str().unwrap().to_owned();
    let events = json!([
        {"specversion": "1.0", "id": "e1", "source": "k8s", "type": "compute.hours", "subject": "acme",
         "time": "2024-01-05T10:00:00Z", "data": {"hours": 60, "project": web}},
        {"specversion": "1.0", "id": "e2", "source": "k8s", "type": "compute.hours", "subject": "acme",
         "time": "2024-01-20T10:00:00Z", "data": {"hours": 70.5, "project": batch}},
        {"specversion": "1.0", "id": "e3", "source": "k8s", "type": "compute.hours", "subject": customer,
         "time": "2024-01-21T10:00:00Z", "data": {"hours": 4.5, "project": batch}}
    ]);
    app.post("/api/v1/events", events).await;

    // Act: the period ends, the grace hour passes, billing runs.
    app.set_now("2024-02-01T00:30:00Z").await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(run["report"]["drafted"], 1, "{run}");
    let drafts = app.get("/api/v1/invoices?status=draft").await;
    assert_eq!(drafts["data"].as_array().unwrap().len(), 1);
    app.set_now("2024-02-01T01:00:00Z").await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;

    // Assert: one invoice, number 1, exact to the cent.
    assert_eq!(run["report"]["finalized"], 1, "{run}");
    let page = app
        .get(&format!(
            "/api/v1/invoices?customer_id={customer}&status=open"
        ))
        .await;
    let invoices = page["data"].as_array().unwrap();
    assert_eq!(invoices.len(), 1, "{page}");
    let invoice = &invoices[0];
    assert_eq!(invoice["number"], 1);
    assert_eq!(invoice["status"], "open");
    assert_eq!(invoice["subscription_id"], subscription_id.as_str());
    assert_eq!(invoice["issued_at"], "2024-02-01T00:00:00.000000Z");
    // batch: 75 hours = 50 × 0.10 + 25 × 0.08 = 7.00; web: 60 hours = 5.00 + 0.80 = 5.80.
    let batch_line = line(invoice, &format!("Compute ({batch})"));
    assert_eq!(amount(&batch_line["amount"]), "7.00");
    assert_eq!(batch_line["project"], batch);
    assert_eq!(batch_line["quantity"], "75.0");
    assert_eq!(
        amount(&line(invoice, &format!("Compute ({web})"))["amount"]),
        "5.80"
    );
    assert_eq!(amount(&line(invoice, "Seats")["amount"]), "30.00");
    assert_eq!(amount(&invoice["total"]), "42.80");
    assert_eq!(invoice["total"]["amount_minor"], 4280);
    assert_eq!(invoice["totals"]["by_project"][web]["amount"], "5.80");
    let id = invoice["id"].as_str().unwrap().to_owned();
    let of_web = app.get(&format!("/api/v1/invoices?project={web}")).await;
    assert_eq!(of_web["data"].as_array().unwrap().len(), 1);
    let of_nothing = app.get("/api/v1/invoices?project=prj_none").await;
    assert_eq!(of_nothing["data"], json!([]));
    let payments = app.get(&format!("/api/v1/invoices/{id}/payments")).await;
    assert_eq!(payments["data"][0]["state"], "PaymentPending");
    // Finalized invoices are immutable.
    let (status, problem) = app
        .call("POST", &format!("/api/v1/invoices/{id}/finalize"), None)
        .await;
    assert_eq!(status, 409, "{problem}");
    // Running again changes nothing.
    let again = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(again["report"]["finalized"], 0, "{again}");

    // A late event for January arrives after the invoice was finalized.
    app.set_now("2024-02-02T00:00:00Z").await;
    app.post(
        "/api/v1/events",
        json!([{"specversion": "1.0", "id": "late-1", "source": "k8s", "type": "compute.hours",
                "subject": customer, "time": "2024-01-25T00:00:00Z",
                "data": {"hours": 10, "project": web}}]),
    )
    .await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(run["report"]["adjustments"], 1, "{run}");
    let unchanged = app.get(&format!("/api/v1/invoices/{id}")).await;
    assert_eq!(amount(&unchanged["total"]), "42.80");

    // February closes: the next invoice carries the 10 late hours (10 × 0.08 = 0.80).
    app.set_now("2024-03-01T01:00:00Z").await;
    app.post("/api/v1/billing-runs", json!({})).await;
    let last = app
        .get(&format!("/api/v1/customers/{customer}/last-invoice"))
        .await;
    assert_eq!(last["number"], 2, "{last}");
    assert_eq!(last["issued_at"], "2024-03-01T00:00:00.000000Z");
    assert_eq!(amount(&line(&last, "Seats")["amount"]), "30.00");
    let adjustment = line(&last, "Late usage for invoice #1");
    assert_eq!(adjustment["kind"], "adjustment");
    assert_eq!(amount(&adjustment["amount"]), "0.80");
    assert_eq!(amount(&last["total"]), "30.80");
    let history = app
        .get(&format!("/api/v1/customers/{customer}/billing-history"))
        .await;
    let numbers: Vec<&Value> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["number"])
        .collect();
    assert_eq!(numbers, [&json!(2), &json!(1)]);
    app.stop().await;
}

#[tokio::test]
async fn a_month_in_the_life_on_sqlite() {
    a_month_in_the_life(Database::sqlite("unused")).await;
}

#[tokio::test]
async fn a_month_in_the_life_on_postgres() {
    let Some(database) = postgres_database().await else {
        return;
    };
    a_month_in_the_life(database).await;
}
