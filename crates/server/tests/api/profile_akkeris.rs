//! The Akkeris profile (docs/profiles/akkeris.md) against a real server on both backends, over
//! invoices billing runs made from an account's billed resources: every field of the seed's
//! invoice with its JSON type and exact value for a closed month and for the current one, the
//! `$ref` lists, proration to a deletion by the day and by the second, organization and space
//! scopes, plural and case-folded paths, access, and errors as Akkeris writes them.

use serde_json::{json, Value};

use crate::month::{on_both_databases, BillingApp};

/// One of the account's billed resources (docs/resources.md), with a plan of its own.
struct Resource {
    plan: &'static str,
    /// The price's description: the line's and the item's.
    description: &'static str,
    /// The monthly unit price.
    price: &'static str,
    /// `day` or `second`.
    proration: &'static str,
    kind: &'static str,
    quantity: u32,
    organization: &'static str,
    /// The project's name.
    space: &'static str,
    created_at: &'static str,
    deleted_at: Option<&'static str>,
}

/// The account's billed resources.
const RESOURCES: [Resource; 7] = [
    Resource {
        plan: "gp2-web",
        description: "gp2 web dyno",
        price: "60",
        proration: "day",
        kind: "dyno",
        quantity: 1,
        organization: "akkeris",
        space: "app-space",
        created_at: "2016-07-26T15:47:33.411Z",
        deleted_at: None,
    },
    Resource {
        plan: "gp2-worker",
        description: "gp2 worker dyno",
        price: "30",
        proration: "day",
        kind: "dyno",
        quantity: 3,
        organization: "akkeris",
        space: "app-space",
        created_at: "2016-07-26T15:47:33.411Z",
        deleted_at: None,
    },
    Resource {
        plan: "alamo-redis-small",
        description: "alamo-redis:small addon",
        price: "140",
        proration: "day",
        kind: "addon",
        quantity: 1,
        organization: "akkeris",
        space: "app-space",
        created_at: "2016-08-15T19:02:02.781Z",
        deleted_at: None,
    },
    Resource {
        plan: "lang-dev",
        description: "lang:dev addon",
        price: "0",
        proration: "day",
        kind: "addon",
        quantity: 1,
        organization: "akkeris",
        space: "app-space",
        created_at: "2016-09-27T20:54:44.359Z",
        deleted_at: None,
    },
    Resource {
        plan: "memcached-small",
        description: "alamo-memcached:small addon",
        price: "20",
        proration: "day",
        kind: "addon",
        quantity: 1,
        organization: "other-org",
        space: "cache",
        created_at: "2016-11-10T08:00:00Z",
        deleted_at: None,
    },
    // Deleted on January 11th, 06:00: by the day, 11 of January's 31 days; by the second,
    // 10.25 of them.
    Resource {
        plan: "papertrail",
        description: "papertrail:basic addon",
        price: "28",
        proration: "day",
        kind: "addon",
        quantity: 1,
        organization: "akkeris",
        space: "data",
        created_at: "2016-12-01T00:00:00Z",
        deleted_at: Some("2017-01-11T06:00:00Z"),
    },
    Resource {
        plan: "postgresql-standard",
        description: "alamo-postgresql:standard database",
        price: "50",
        proration: "second",
        kind: "database",
        quantity: 1,
        organization: "other-org",
        space: "data",
        created_at: "2016-12-20T00:00:00Z",
        deleted_at: Some("2017-01-11T06:00:00Z"),
    },
];

/// What [`arrange`] made.
struct Account {
    id: String,
    /// The spaces' project ids, by name.
    spaces: Vec<(String, String)>,
    /// January 2017's invoice, as the native API answers it.
    january: Value,
}

impl Account {
    fn space(&self, name: &str) -> &str {
        &self.spaces.iter().find(|(n, _)| n == name).unwrap().1
    }
}

/// The account `akkeris` (USD, monthly from the 1st, UTC) with [`RESOURCES`], each in its
/// space (a project) with its organization and app as dimensions; a second account `bystander`
/// with an add-on of its own. A billing run on February 1st 2017 past the grace hour finalizes
/// July 2016 to January 2017; the clock then stands where the seed's invoice was read,
/// 2017-02-05T22:16:56.616Z.
async fn arrange(app: &BillingApp) -> Account {
    let customer = app
        .post(
            "/api/v1/customers",
            json!({"external_id": "akkeris", "name": "Akkeris account", "currency": "USD"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut spaces: Vec<(String, String)> = Vec::new();
    for name in ["app-space", "data", "cache"] {
        let project = app
            .post(
                &format!("/api/v1/customers/{customer}/projects"),
                json!({"name": name}),
            )
            .await;
        spaces.push((name.to_owned(), project["id"].as_str().unwrap().to_owned()));
    }
    for Resource {
        plan,
        description,
        price,
        proration,
        kind,
        quantity,
        organization,
        space,
        created_at,
        deleted_at,
    } in RESOURCES
    {
        app.post(
            "/api/v1/plans",
            json!({"key": plan, "name": plan, "cadence": "monthly", "currency": "USD",
                   "prices": [{"key": kind, "description": description, "billing": "in_arrears",
                               "proration_unit": proration,
                               "pricing": {"model": "per_unit", "unit_amount": price}}]}),
        )
        .await;
        let project = &spaces.iter().find(|(name, _)| name == space).unwrap().1;
        let resource = app
            .post(
                "/api/v1/resources",
                json!({"customer_id": customer, "plan": plan, "kind": kind, "name": "app-space",
                       "quantity": quantity, "project_id": project,
                       "dimensions": {"app": "app", "space": space, "organization": organization},
                       "created_at": created_at}),
            )
            .await;
        if let Some(deleted) = deleted_at {
            app.post(
                &format!(
                    "/api/v1/resources/{}/delete",
                    resource["id"].as_str().unwrap()
                ),
                json!({"deleted_at": deleted}),
            )
            .await;
        }
    }
    let bystander = app
        .post(
            "/api/v1/customers",
            json!({"external_id": "bystander", "name": "Bystander", "currency": "USD"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        "/api/v1/resources",
        json!({"customer_id": bystander, "plan": "alamo-redis-small", "kind": "addon",
               "name": "elsewhere", "dimensions": {"organization": "akkeris"},
               "created_at": "2016-12-01T00:00:00Z"}),
    )
    .await;

    app.set_now("2017-02-01T01:00:00Z").await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(run["report"]["finalized"], 9, "{run}");
    let invoices = app
        .get(&format!(
            "/api/v1/invoices?customer_id={customer}&limit=100"
        ))
        .await;
    let january = invoices["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|invoice| invoice["period"]["start"] == "2017-01-01T00:00:00.000000Z")
        .unwrap()
        .clone();
    app.set_now("2017-02-05T22:16:56.616Z").await;
    Account {
        id: customer,
        spaces,
        january,
    }
}

/// `GET` with the workspace key, naming the account `akkeris` unless the path names one.
async fn get(app: &BillingApp, path: &str) -> Value {
    if path.contains("account=") {
        return app.get(path).await;
    }
    let separator = if path.contains('?') { '&' } else { '?' };
    app.get(&format!("{path}{separator}account=akkeris")).await
}

/// A request with the workspace key and extra headers: its status, `Content-Type` and body (JSON,
/// or the text as a string).
async fn call_with_headers(
    app: &BillingApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n{extra}\
         Connection: close\r\n\r\n",
        app.address, app.key
    );
    let mut stream = tokio::net::TcpStream::connect(app.address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    let body = serde_json::from_str(body).unwrap_or(Value::String(body.to_owned()));
    (status, content_type, body)
}

/// The status, `Content-Type` and body of a `GET` with the workspace key.
async fn call(app: &BillingApp, path: &str) -> (u16, String, Value) {
    app.call_with_content_type(&app.key, "GET", path, None, "application/json")
        .await
}

fn item<'a>(invoice: &'a Value, description: &str) -> &'a Value {
    invoice["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["description"] == description)
        .unwrap_or_else(|| panic!("no item {description:?} in {}", invoice["items"]))
}

fn descriptions(invoice: &Value) -> Vec<&str> {
    let mut descriptions: Vec<&str> = invoice["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["description"].as_str().unwrap())
        .collect();
    descriptions.sort_unstable();
    descriptions
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// A JSON number written exactly as `text`: integers without a fraction, never float noise.
fn assert_number(value: &Value, text: &str) {
    assert!(value.is_number(), "{value} is not a number");
    assert_eq!(value.to_string(), text);
}

async fn a_closed_month_has_every_field_of_the_seed(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2016-07-01T00:00:00Z").await;
    let account = arrange(&app).await;

    let january = get(&app, "/account/invoices/2017-01-01").await;

    assert_eq!(
        keys(&january),
        [
            "addons_total",
            "charges_total",
            "created_at",
            "credits_total",
            "database_total",
            "dyno_units",
            "id",
            "items",
            "number",
            "payment_status",
            "period_end",
            "period_start",
            "platform_total",
            "state",
            "total",
            "updated_at",
            "weighted_dyno_hours"
        ]
    );
    assert_eq!(january["id"], "2017-01-01");
    assert_eq!(
        january["number"], "1483228800000",
        "the period start in epoch ms"
    );
    assert_eq!(january["state"], 1);
    assert_eq!(january["payment_status"], "Pending", "finalized, not paid");
    assert_eq!(january["period_start"], "2017-01-01T00:00:00.000Z");
    assert_eq!(january["period_end"], "2017-02-01T00:00:00.000Z");
    assert_eq!(january["created_at"], "2017-02-01T01:00:00.000Z");
    assert_eq!(january["updated_at"], "2017-02-01T01:00:00.000Z");
    // A whole month of the dynos (60 + 3 × 30), the redis, the free and the memcached add-ons;
    // papertrail by the day to January 11th (28 × 11/31 = 9.94); the database by the second
    // to January 11th 06:00 (50 × 10.25/31 = 16.53).
    assert_number(&january["addons_total"], "169.94");
    assert_number(&january["platform_total"], "150");
    assert_number(&january["database_total"], "16.53");
    assert_number(&january["charges_total"], "336.47");
    assert_number(&january["credits_total"], "0");
    assert_number(&january["total"], "336.47");
    assert_number(&january["dyno_units"], "4");
    assert_number(&january["weighted_dyno_hours"], "2976");
    // The total is the invoice's, as the core computed it.
    assert_eq!(account.january["total"]["amount"], "336.47");

    assert_eq!(
        descriptions(&january),
        [
            "alamo-memcached:small addon",
            "alamo-postgresql:standard database",
            "alamo-redis:small addon",
            "gp2 web dyno",
            "gp2 worker dyno",
            "lang:dev addon",
            "papertrail:basic addon"
        ]
    );
    let redis = item(&january, "alamo-redis:small addon");
    assert_eq!(
        keys(redis),
        [
            "app",
            "billed_price",
            "created_at",
            "deleted_at",
            "description",
            "organization",
            "price_per_unit",
            "quantity",
            "type"
        ]
    );
    assert_eq!(
        redis,
        &json!({"organization": "akkeris", "app": {"name": "app-space"},
                "description": "alamo-redis:small addon", "type": "addon", "quantity": 1,
                "price_per_unit": 140, "billed_price": 140,
                "created_at": "2016-08-15T19:02:02.781Z", "deleted_at": null})
    );
    assert_eq!(
        item(&january, "lang:dev addon"),
        &json!({"organization": "akkeris", "app": {"name": "app-space"},
                "description": "lang:dev addon", "type": "addon", "quantity": 1,
                "price_per_unit": 0, "billed_price": 0,
                "created_at": "2016-09-27T20:54:44.359Z", "deleted_at": null})
    );
    let worker = item(&january, "gp2 worker dyno");
    assert_eq!(worker["type"], "dyno");
    assert_number(&worker["quantity"], "3");
    assert_number(&worker["price_per_unit"], "30");
    assert_number(&worker["billed_price"], "90");
    let database = item(&january, "alamo-postgresql:standard database");
    assert_eq!(database["organization"], "other-org");
    assert_eq!(database["type"], "database");
    assert_eq!(database["deleted_at"], "2017-01-11T06:00:00.000Z");

    // Paid: the payment status and updated_at follow.
    app.set_now("2017-02-03T10:11:12.345Z").await;
    let id = account.january["id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/invoices/{id}/payments"),
        json!({"state": "Paid"}),
    )
    .await;
    let paid = get(&app, "/account/invoices/2017-01-01").await;
    assert_eq!(paid["payment_status"], "Paid");
    assert_eq!(paid["state"], 1);
    assert_eq!(paid["updated_at"], "2017-02-03T10:11:12.345Z");
    assert_eq!(paid["created_at"], january["created_at"]);
    assert_eq!(paid["items"], january["items"]);
    // December is still to pay.
    let december = get(&app, "/account/invoices/2016-12-01").await;
    assert_eq!(december["payment_status"], "Pending");
    assert_eq!(december["period_end"], "2017-01-01T00:00:00.000Z");
    app.stop().await;
}

async fn the_current_month_is_the_upcoming_invoice(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2016-07-01T00:00:00Z").await;
    let account = arrange(&app).await;
    let native = app
        .get(&format!(
            "/api/v1/customers/{}/invoices/upcoming",
            account.id
        ))
        .await;

    let february = get(&app, "/account/invoices/2017-02-01").await;

    // 5 of February's 28 days, by the day, as in the seed: 140 × 5/28 = 25, 60 × 5/28 = 10.71,
    // 90 × 5/28 = 16.07, 20 × 5/28 = 3.57; 4 dyno units × 24 hours × 5 days.
    assert_eq!(
        february,
        json!({
            "addons_total": 28.57,
            "database_total": 0,
            "charges_total": 55.35,
            "created_at": "2017-02-01T00:00:00.000Z",
            "credits_total": 0,
            "dyno_units": 4,
            "id": "2017-02-01",
            "number": "1485907200000",
            "payment_status": "Pending",
            "period_end": "2017-02-05T22:16:56.616Z",
            "period_start": "2017-02-01T00:00:00.000Z",
            "platform_total": 26.78,
            "state": 2,
            "total": 55.35,
            "updated_at": "2017-02-01T00:00:00.000Z",
            "weighted_dyno_hours": 480,
            "items": february["items"].clone(),
        })
    );
    assert_number(&february["addons_total"], "28.57");
    assert_number(&february["total"], "55.35");
    assert_number(&february["weighted_dyno_hours"], "480");
    assert_eq!(
        native["data"][0]["totals"]["total"]["amount"], "55.35",
        "the upcoming invoice's total"
    );
    assert_eq!(
        item(&february, "alamo-redis:small addon"),
        &json!({"organization": "akkeris", "app": {"name": "app-space"},
                "description": "alamo-redis:small addon", "type": "addon", "quantity": 1,
                "price_per_unit": 140, "billed_price": 25,
                "created_at": "2016-08-15T19:02:02.781Z", "deleted_at": null})
    );
    assert_eq!(
        item(&february, "gp2 web dyno"),
        &json!({"organization": "akkeris", "app": {"name": "app-space"},
                "description": "gp2 web dyno", "type": "dyno", "quantity": 1,
                "price_per_unit": 60, "billed_price": 10.71,
                "created_at": "2016-07-26T15:47:33.411Z", "deleted_at": null})
    );
    assert_number(&item(&february, "gp2 web dyno")["billed_price"], "10.71");
    // What was deleted in January is not on February's invoice.
    assert_eq!(
        descriptions(&february),
        [
            "alamo-memcached:small addon",
            "alamo-redis:small addon",
            "gp2 web dyno",
            "gp2 worker dyno",
            "lang:dev addon"
        ]
    );

    // The list: a $ref per month, from July 2016 to the current month, as in the seed.
    let list = get(&app, "/account/invoices").await;
    let expected: Vec<Value> = [
        "2016-07-01",
        "2016-08-01",
        "2016-09-01",
        "2016-10-01",
        "2016-11-01",
        "2016-12-01",
        "2017-01-01",
        "2017-02-01",
    ]
    .iter()
    .map(|month| json!({"$ref": format!("/account/invoices/{month}")}))
    .collect();
    assert_eq!(list, Value::Array(expected));
    // Every $ref answers.
    for reference in list.as_array().unwrap() {
        let path = reference["$ref"].as_str().unwrap();
        let invoice = get(&app, path).await;
        assert_eq!(
            path.rsplit('/').next().unwrap(),
            invoice["id"].as_str().unwrap()
        );
    }
    app.stop().await;
}

async fn a_deletion_mid_month_is_prorated_to_it_by_the_day_or_by_the_second(
    database: billow_store::Database,
) {
    let app = BillingApp::spawn(database, "2016-07-01T00:00:00Z").await;
    let account = arrange(&app).await;
    let january = get(&app, "/account/invoices/2017-01-01").await;

    // Both deleted on January 11th at 06:00. By the day, every day it touched counts whole:
    // 28 × 11/31 = 9.935… → 9.94. By the second: 50 × 10.25/31 = 16.532… → 16.53 (by the day
    // it would be 50 × 11/31 = 17.74).
    let papertrail = item(&january, "papertrail:basic addon");
    assert_number(&papertrail["billed_price"], "9.94");
    assert_number(&papertrail["price_per_unit"], "28");
    assert_eq!(papertrail["deleted_at"], "2017-01-11T06:00:00.000Z");
    let database = item(&january, "alamo-postgresql:standard database");
    assert_number(&database["billed_price"], "16.53");
    assert_number(&database["price_per_unit"], "50");
    // The same amounts as the native invoice's lines.
    let native_amount = |description: &str| {
        account.january["lines"]
            .as_array()
            .unwrap()
            .iter()
            .find(|line| line["description"] == description)
            .unwrap()["amount"]["amount"]
            .clone()
    };
    assert_eq!(native_amount("papertrail:basic addon"), "9.94");
    assert_eq!(native_amount("alamo-postgresql:standard database"), "16.53");
    // December bills them from their creation: papertrail the whole month (28), the database
    // from December 20th by the second (50 × 12/31 = 19.35).
    let december = get(&app, "/account/invoices/2016-12-01").await;
    assert_number(
        &item(&december, "papertrail:basic addon")["billed_price"],
        "28",
    );
    assert_number(
        &item(&december, "alamo-postgresql:standard database")["billed_price"],
        "19.35",
    );
    app.stop().await;
}

async fn a_scale_change_is_two_items_each_at_its_quantity(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2017-01-01T00:00:00Z").await;
    app.post(
        "/api/v1/plans",
        json!({"key": "gp2-web", "cadence": "monthly", "currency": "USD",
               "prices": [{"key": "dyno", "description": "gp2 web dyno", "billing": "in_arrears",
                           "proration_unit": "day",
                           "pricing": {"model": "per_unit", "unit_amount": "60"}}]}),
    )
    .await;
    let customer = app
        .post(
            "/api/v1/customers",
            json!({"external_id": "scaler", "name": "Scaler", "currency": "USD"}),
        )
        .await;
    let dyno = app
        .post(
            "/api/v1/resources",
            json!({"customer_id": customer["id"], "plan": "gp2-web", "kind": "dyno",
                   "name": "web-space", "dimensions": {"organization": "akkeris"},
                   "created_at": "2017-01-01T00:00:00Z"}),
        )
        .await;
    app.post(
        &format!(
            "/api/v1/resources/{}/quantity",
            dyno["id"].as_str().unwrap()
        ),
        json!({"quantity": 3, "at": "2017-01-11T00:00:00Z"}),
    )
    .await;
    let quantities_and_prices = |invoice: &Value| -> Vec<(String, String)> {
        invoice["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| {
                assert_eq!(item["created_at"], "2017-01-01T00:00:00.000Z");
                (
                    item["quantity"].to_string(),
                    item["billed_price"].to_string(),
                )
            })
            .collect()
    };
    let pair = |quantity: &str, price: &str| (quantity.to_owned(), price.to_owned());

    // In the month: 10 days at 1 (60 × 10/31 = 19.35), then January 11th to 20th at 3
    // (180 × 10/31 = 58.06); 4 dyno units over the 20 days touched.
    app.set_now("2017-01-20T12:00:00Z").await;
    let current = get(&app, "/account/invoices/2017-01-01?account=scaler").await;
    assert_eq!(current["state"], 2);
    assert_eq!(
        quantities_and_prices(&current),
        [pair("1", "19.35"), pair("3", "58.06")]
    );
    assert_number(&current["dyno_units"], "4");
    assert_number(&current["weighted_dyno_hours"], "1920");
    assert_number(&current["platform_total"], "77.41");

    // Closed: the rest of January at 3 (180 × 21/31 = 121.94).
    app.set_now("2017-02-01T01:00:00Z").await;
    app.post("/api/v1/billing-runs", json!({})).await;
    let closed = get(&app, "/account/invoices/2017-01-01?account=scaler").await;
    assert_eq!(closed["state"], 1);
    assert_eq!(
        quantities_and_prices(&closed),
        [pair("1", "19.35"), pair("3", "121.94")]
    );
    assert_number(&closed["weighted_dyno_hours"], "2976");
    assert_number(&closed["total"], "141.29");
    app.stop().await;
}

async fn organization_and_space_scopes_show_their_items_and_totals(
    database: billow_store::Database,
) {
    let app = BillingApp::spawn(database, "2016-07-01T00:00:00Z").await;
    let account = arrange(&app).await;

    // Organizations are the resources' dimension, across spaces.
    let akkeris = get(&app, "/organizations/akkeris/invoices/2017-01-01").await;
    assert_eq!(
        descriptions(&akkeris),
        [
            "alamo-redis:small addon",
            "gp2 web dyno",
            "gp2 worker dyno",
            "lang:dev addon",
            "papertrail:basic addon"
        ]
    );
    assert_number(&akkeris["charges_total"], "299.94");
    assert_number(&akkeris["total"], "299.94");
    assert_number(&akkeris["addons_total"], "149.94");
    assert_number(&akkeris["platform_total"], "150");
    assert_number(&akkeris["database_total"], "0");
    assert_number(&akkeris["dyno_units"], "4");
    assert_eq!(akkeris["id"], "2017-01-01");
    let other = get(&app, "/organizations/other-org/invoices/2017-01-01").await;
    assert_eq!(
        descriptions(&other),
        [
            "alamo-memcached:small addon",
            "alamo-postgresql:standard database"
        ]
    );
    assert_number(&other["total"], "36.53");
    assert_number(&other["database_total"], "16.53");
    assert_number(&other["dyno_units"], "0");
    assert_number(&other["weighted_dyno_hours"], "0");
    // Both organizations make the account's invoice.
    assert_eq!(account.january["total"]["amount"], "336.47");
    // The organization's months: from its first item (memcached, November) to now.
    assert_eq!(
        get(&app, "/organizations/other-org/invoices").await,
        json!([
            {"$ref": "/organizations/other-org/invoices/2016-11-01"},
            {"$ref": "/organizations/other-org/invoices/2016-12-01"},
            {"$ref": "/organizations/other-org/invoices/2017-01-01"},
            {"$ref": "/organizations/other-org/invoices/2017-02-01"}
        ])
    );
    let current = get(&app, "/organizations/other-org/invoices/2017-02-01").await;
    assert_eq!(current["state"], 2);
    assert_number(&current["total"], "3.57");

    // A space is a project, named by its name or its id.
    let data = get(&app, "/spaces/data/invoices/2017-01-01").await;
    assert_eq!(
        descriptions(&data),
        [
            "alamo-postgresql:standard database",
            "papertrail:basic addon"
        ]
    );
    assert_number(&data["total"], "26.47");
    assert_number(&data["addons_total"], "9.94");
    assert_number(&data["database_total"], "16.53");
    let by_id = get(
        &app,
        &format!("/spaces/{}/invoices/2017-01-01", account.space("data")),
    )
    .await;
    assert_eq!(by_id, data);
    assert_number(
        &get(&app, "/spaces/app-space/invoices/2017-01-01").await["total"],
        "290",
    );
    // The space's months: its resources lived in December and January only.
    assert_eq!(
        get(&app, "/spaces/data/invoices").await,
        json!([
            {"$ref": "/spaces/data/invoices/2016-12-01"},
            {"$ref": "/spaces/data/invoices/2017-01-01"}
        ])
    );
    let (status, _, body) = call(&app, "/spaces/data/invoices/2017-02-01?account=akkeris").await;
    assert_eq!(status, 404, "nothing of the space this month: {body}");
    // Another account's resources are never in this account's organization.
    let (status, _, body) = call(
        &app,
        "/organizations/akkeris/invoices/2016-11-01?account=bystander",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let theirs = get(
        &app,
        "/organizations/akkeris/invoices/2017-01-01?account=bystander",
    )
    .await;
    assert_eq!(descriptions(&theirs), ["alamo-redis:small addon"]);
    assert_number(&theirs["total"], "140");
    app.stop().await;
}

async fn paths_are_plural_or_singular_in_any_case(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2016-07-01T00:00:00Z").await;
    arrange(&app).await;
    let account = get(&app, "/account/invoices/2017-01-01").await;
    let organization = get(&app, "/organizations/akkeris/invoices/2017-01-01").await;
    let space = get(&app, "/spaces/data/invoices/2017-01-01").await;
    let organizations = get(&app, "/organizations/akkeris/invoices").await;
    let spaces = get(&app, "/spaces/data/invoices").await;

    for path in [
        "/Account/Invoices/2017-01-01",
        "/ACCOUNT/invoices/2017-01-01",
    ] {
        assert_eq!(get(&app, path).await, account, "{path}");
    }
    for path in [
        "/organization/akkeris/invoices/2017-01-01",
        "/Organization/akkeris/Invoices/2017-01-01",
        "/ORGANIZATIONS/akkeris/INVOICES/2017-01-01",
    ] {
        assert_eq!(get(&app, path).await, organization, "{path}");
    }
    for path in [
        "/space/data/invoices/2017-01-01",
        "/Spaces/data/Invoices/2017-01-01",
        "/SPACE/data/invoices/2017-01-01",
    ] {
        assert_eq!(get(&app, path).await, space, "{path}");
    }
    // Lists too; their $refs are written in Akkeris's plural forms whatever the request's.
    for path in [
        "/organization/akkeris/invoices",
        "/Organizations/akkeris/Invoices",
    ] {
        assert_eq!(get(&app, path).await, organizations, "{path}");
    }
    assert_eq!(get(&app, "/SPACE/data/INVOICES").await, spaces);
    assert_eq!(
        get(&app, "/Account/Invoices").await,
        get(&app, "/account/invoices").await
    );
    // Ids keep their case: organizations and spaces are named exactly.
    let (status, _, body) = call(&app, "/Organizations/AKKERIS/invoices?account=akkeris").await;
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = call(&app, "/spaces/DATA/invoices?account=akkeris").await;
    assert_eq!(status, 404, "{body}");
    app.stop().await;
}

async fn a_token_reads_its_account_and_a_workspace_key_names_one(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2016-07-01T00:00:00Z").await;
    let account = arrange(&app).await;
    let expected = get(&app, "/account/invoices/2017-01-01").await;
    let token = app
        .post(
            &format!("/api/v1/customers/{}/tokens", account.id),
            json!({}),
        )
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let as_token = |path: String| {
        let token = token.clone();
        let app = &app;
        async move {
            app.call_with_content_type(&token, "GET", &path, None, "application/json")
                .await
        }
    };

    // A customer token reads its own account without naming it.
    let (status, _, own) = as_token("/account/invoices/2017-01-01".to_owned()).await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own, expected);
    let (status, _, list) = as_token("/account/invoices".to_owned()).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 8);
    let (status, _, named) =
        as_token("/account/invoices/2017-01-01?account=akkeris".to_owned()).await;
    assert_eq!((status, &named), (200, &expected));
    // ... and no other: the bystander is not found, by external id or by id.
    for path in [
        "/account/invoices?account=bystander".to_owned(),
        "/account/invoices/2017-01-01?account=bystander".to_owned(),
        "/organizations/akkeris/invoices?account=bystander".to_owned(),
    ] {
        let (status, content_type, body) = as_token(path.clone()).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(content_type.starts_with("text/plain"), "{content_type}");
    }

    // A workspace key names the account: by external id, by id, or in the header.
    let (status, _, body) = call(
        &app,
        &format!("/account/invoices/2017-01-01?account={}", account.id),
    )
    .await;
    assert_eq!((status, &body), (200, &expected));
    let (status, _, body) = call_with_headers(
        &app,
        "GET",
        "/account/invoices/2017-01-01",
        &[("Billow-Account", "akkeris")],
    )
    .await;
    assert_eq!((status, &body), (200, &expected));
    let (status, _, body) = call_with_headers(
        &app,
        "GET",
        "/account/invoices/2017-01-01?account=akkeris",
        &[("Billow-Account", "bystander")],
    )
    .await;
    assert_eq!(status, 400, "two accounts named: {body}");
    // Unnamed, it is a 400 saying how to name it.
    let (status, content_type, body) = call(&app, "/account/invoices").await;
    assert_eq!(status, 400);
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    assert!(body.as_str().unwrap().contains("?account="), "{body}");
    // A space given by its project id names its account.
    let (status, _, body) = call(
        &app,
        &format!("/spaces/{}/invoices/2017-01-01", account.space("data")),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_number(&body["total"], "26.47");
    // No valid credential: 401, as text.
    let (status, content_type, body) = app
        .call_with_content_type(
            "bk_wrong",
            "GET",
            "/account/invoices?account=akkeris",
            None,
            "application/json",
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    app.stop().await;
}

async fn unknown_invoices_are_404s_written_as_akkeris_writes_them(
    database: billow_store::Database,
) {
    let app = BillingApp::spawn(database, "2016-07-01T00:00:00Z").await;
    arrange(&app).await;
    for path in [
        // Before the first month, after the current one, not a period start, not a date.
        "/account/invoices/2016-06-01",
        "/account/invoices/2017-03-01",
        "/account/invoices/2017-01-15",
        "/account/invoices/2017-02-30",
        "/account/invoices/latest",
        "/account/invoices/2017-1-01",
        // An organization without items, a space that does not exist.
        "/organizations/nobody/invoices",
        "/organizations/nobody/invoices/2017-01-01",
        "/spaces/nowhere/invoices",
        "/spaces/nowhere/invoices/2017-01-01",
        "/spaces/a%00b/invoices",
    ] {
        let (status, content_type, body) = call(&app, &format!("{path}?account=akkeris")).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            content_type.starts_with("text/plain"),
            "{path}: {content_type}"
        );
        assert!(
            body.as_str().unwrap().ends_with("not found."),
            "{path}: {body}"
        );
    }
    let (_, _, body) = call(&app, "/account/invoices/2016-06-01?account=akkeris").await;
    assert_eq!(body, "The specified invoice was not found.");
    // An unknown account.
    let (status, _, body) = call(&app, "/account/invoices?account=nobody").await;
    assert_eq!(status, 404, "{body}");
    // Other methods are refused in the same shape.
    let (status, body) = app
        .call("POST", "/account/invoices?account=akkeris", Some(json!({})))
        .await;
    assert_eq!(status, 405, "{body}");
    assert!(body.is_string(), "{body}");
    let (status, _, _) = app
        .call_with_content_type(
            &app.key,
            "DELETE",
            "/Account/Invoices/2017-01-01",
            None,
            "application/json",
        )
        .await;
    assert_eq!(status, 405);
    // A path of no profile is still the native 404.
    let (status, content_type, _) = call(&app, "/Account/Bills").await;
    assert_eq!(status, 404);
    assert_eq!(content_type, billow_server::PROBLEM_JSON);
    app.stop().await;
}

on_both_databases!(
    a_closed_month_has_every_field_of_the_seed,
    the_current_month_is_the_upcoming_invoice,
    a_deletion_mid_month_is_prorated_to_it_by_the_day_or_by_the_second,
    a_scale_change_is_two_items_each_at_its_quantity,
    organization_and_space_scopes_show_their_items_and_totals,
    paths_are_plural_or_singular_in_any_case,
    a_token_reads_its_account_and_a_workspace_key_names_one,
    unknown_invoices_are_404s_written_as_akkeris_writes_them,
);

#[tokio::test]
async fn switched_off_its_paths_are_unknown_in_any_case() {
    use axum::http::Method;
    use billow_server::profiles::Profiles;
    use billow_server::AppState;

    let (store, _directory) = crate::helpers::sqlite_store().await;
    let off = Profiles {
        akkeris: false,
        ..Profiles::all()
    };
    for path in ["/account/invoices", "/Account/Invoices"] {
        let router = billow_server::router(AppState::new(store.clone()).with_profiles(off));
        let response = crate::helpers::send(router, Method::GET, path).await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.content_type(), billow_server::PROBLEM_JSON);
        let router =
            billow_server::router(AppState::new(store.clone()).with_profiles(Profiles::all()));
        let response = crate::helpers::send(router, Method::GET, path).await;
        assert_eq!(
            response.status, 401,
            "{path}: served, and asking for a credential"
        );
    }
}
