//! Coupons over real HTTP (a server on port 0, SQLite, and PostgreSQL when
//! `BILLOW_TEST_DATABASE_URL` is set): creating, listing, archiving, the refusals of a
//! redemption, concurrent redemptions of a limited coupon, another workspace's view, and the
//! invoice of a customer who redeemed a 10 % coupon.

use billow_store::{Database, WorkspaceName};
use jiff::Timestamp;
use serde_json::{json, Value};

use crate::billing::fields;
use crate::month::{on_both_databases, BillingApp};

async fn customer(app: &BillingApp, external_id: &str, currency: &str) -> String {
    let created = app
        .post(
            "/api/v1/customers",
            json!({"external_id": external_id, "name": external_id, "currency": currency}),
        )
        .await;
    created["id"].as_str().unwrap().to_owned()
}

/// A key of a second workspace of the same server.
async fn other_workspace_key(app: &BillingApp) -> String {
    let workspace = app
        .store
        .workspace_named_or_created(&WorkspaceName::parse("Globex").unwrap(), Timestamp::now())
        .await
        .unwrap();
    let (_, secret) = app
        .store
        .create_api_key(&workspace.id, Timestamp::now())
        .await
        .unwrap();
    secret.expose().to_owned()
}

async fn coupons_are_created_listed_archived_and_private_to_their_workspace(database: Database) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    let launch = json!({"code": "LAUNCH10", "name": "Launch", "percent_off": 10,
                        "duration": "repeating", "duration_in_invoices": 3, "max_redemptions": 100});

    let (status, created) = app
        .call("POST", "/api/v1/coupons", Some(launch.clone()))
        .await;
    let (again_status, again) = app
        .call("POST", "/api/v1/coupons", Some(launch.clone()))
        .await;

    assert_eq!(status, 201, "{created}");
    assert_eq!(created["code"], "LAUNCH10");
    assert_eq!(created["percent_off"], "10");
    assert_eq!(created["amount_off"], Value::Null);
    assert_eq!(created["duration"], "repeating");
    assert_eq!(created["duration_in_invoices"], 3);
    assert_eq!(created["max_redemptions"], 100);
    assert_eq!(created["times_redeemed"], 0);
    assert_eq!(created["archived"], false);
    assert_eq!(again_status, 409, "{again}");
    assert_eq!(again["type"], "urn:billow:problem:already-exists");
    assert_eq!(fields(&again), ["code"]);
    let invalid = [
        (
            json!({"code": "a b", "percent_off": 10, "duration": "once"}),
            "code",
        ),
        (
            json!({"code": "X1", "percent_off": 150, "duration": "once"}),
            "percent_off",
        ),
        (
            json!({"code": "X1", "percent_off": 10, "amount_off": "5", "duration": "once"}),
            "percent_off",
        ),
        (
            json!({"code": "X1", "amount_off": "5", "duration": "once"}),
            "currency",
        ),
        (
            json!({"code": "X1", "amount_off": "5.001", "currency": "USD", "duration": "once"}),
            "amount_off",
        ),
        (
            json!({"code": "X1", "percent_off": 10, "duration": "repeating"}),
            "duration_in_invoices",
        ),
        (
            json!({"code": "X1", "percent_off": 10, "duration": "weekly"}),
            "duration",
        ),
        (
            json!({"code": "X1", "percent_off": 10, "duration": "once", "max_redemptions": 0}),
            "max_redemptions",
        ),
        (
            json!({"code": "X1", "percent_off": 10, "duration": "once", "redeem_by": "2023-12-31T00:00:00Z"}),
            "redeem_by",
        ),
    ];
    for (body, field) in invalid {
        let (status, problem) = app
            .call("POST", "/api/v1/coupons", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert_eq!(problem["type"], "urn:billow:problem:validation");
        assert_eq!(fields(&problem), [field], "{body}: {problem}");
    }
    let listed = app.get("/api/v1/coupons").await;
    assert_eq!(
        listed,
        json!({"data": [created], "has_more": false, "next_cursor": null})
    );
    assert_eq!(created["created_at"], "2024-01-01T00:00:00.000000Z");
    assert_eq!(created["redeem_by"], Value::Null);
    assert_eq!(app.get("/api/v1/coupons/LAUNCH10").await, created);
    // Another workspace sees none of it, and may use the same code.
    let other = other_workspace_key(&app).await;
    let (status, problem) = app
        .call_as(
            &other,
            "GET",
            "/api/v1/coupons/LAUNCH10",
            None,
            "application/json",
        )
        .await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(problem["type"], "urn:billow:problem:not-found");
    let (status, _) = app
        .call_as(
            &other,
            "POST",
            "/api/v1/coupons/LAUNCH10/archive",
            None,
            "application/json",
        )
        .await;
    assert_eq!(status, 404);
    let (status, theirs) = app
        .call_as(&other, "GET", "/api/v1/coupons", None, "application/json")
        .await;
    assert_eq!(
        (status, theirs),
        (
            200,
            json!({"data": [], "has_more": false, "next_cursor": null})
        )
    );
    let (status, _) = app
        .call_as(
            &other,
            "POST",
            "/api/v1/coupons",
            Some(launch),
            "application/json",
        )
        .await;
    assert_eq!(status, 201);
    // Archiving keeps the coupon, refuses new redemptions.
    app.set_now("2024-01-02T00:00:00Z").await;
    let archived = app
        .post("/api/v1/coupons/LAUNCH10/archive", json!({}))
        .await;
    assert_eq!(archived["archived"], true);
    assert_eq!(archived["archived_at"], "2024-01-02T00:00:00.000000Z");
    let (status, _) = app.call("GET", "/api/v1/coupons/NOPE", None).await;
    assert_eq!(status, 404);
    app.stop().await;
}

async fn a_redemption_is_refused_on_coupon_with_the_reason(database: Database) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    let dollars = customer(&app, "dollars", "USD").await;
    let coupons = [
        json!({"code": "GONE", "percent_off": 10, "duration": "once"}),
        json!({"code": "EARLY", "percent_off": 10, "duration": "once", "redeem_by": "2024-01-10T00:00:00Z"}),
        json!({"code": "ONCE", "percent_off": 10, "duration": "once", "max_redemptions": 1}),
        json!({"code": "EUR5", "amount_off": "5.00", "currency": "EUR", "duration": "forever"}),
    ];
    for coupon in coupons {
        app.post("/api/v1/coupons", coupon).await;
    }
    app.post("/api/v1/coupons/GONE/archive", json!({})).await;
    let early = app.get("/api/v1/coupons/EARLY").await;
    assert_eq!(early["redeem_by"], "2024-01-10T00:00:00.000000Z");
    let euros = app.get("/api/v1/coupons/EUR5").await;
    assert_eq!(
        (
            &euros["amount_off"],
            &euros["currency"],
            &euros["percent_off"]
        ),
        (&json!("5.00"), &json!("EUR"), &Value::Null)
    );
    app.post(
        "/api/v1/discounts",
        json!({"customer_id": dollars, "coupon": "ONCE"}),
    )
    .await;
    app.set_now("2024-01-10T00:00:00Z").await;
    let other = other_workspace_key(&app).await;
    let (_, theirs) = app
        .call_as(
            &other,
            "POST",
            "/api/v1/customers",
            Some(json!({"external_id": "x", "name": "x", "currency": "USD"})),
            "application/json",
        )
        .await;

    let cases = [
        ("NOPE", "no coupon of this workspace has this code"),
        ("GONE", "the coupon is archived"),
        (
            "EARLY",
            "the coupon could be redeemed until 2024-01-10T00:00:00Z",
        ),
        ("ONCE", "the coupon was redeemed its maximum of 1 times"),
        (
            "EUR5",
            "the coupon takes an amount in EUR off, and the customer is billed in USD",
        ),
    ];
    for (code, reason) in cases {
        let body = json!({"customer_id": dollars, "coupon": code});
        let (status, problem) = app.call("POST", "/api/v1/discounts", Some(body)).await;
        assert_eq!(status, 422, "{code}: {problem}");
        assert_eq!(
            problem["errors"],
            json!([{"field": "coupon", "reason": reason}]),
            "{code}"
        );
    }
    let (status, problem) = app
        .call(
            "POST",
            "/api/v1/discounts",
            Some(json!({"customer_id": dollars, "coupon": "EUR5", "percent_off": 5})),
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["percent_off"]),
        "{problem}"
    );
    // Another workspace's customer cannot redeem this workspace's coupon, nor the reverse.
    let body = json!({"customer_id": theirs["id"], "coupon": "ONCE"});
    let (status, problem) = app.call("POST", "/api/v1/discounts", Some(body)).await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["customer_id"]),
        "{problem}"
    );
    let body = json!({"customer_id": theirs["id"], "coupon": "EUR5"});
    let (status, problem) = app
        .call_as(
            &other,
            "POST",
            "/api/v1/discounts",
            Some(body),
            "application/json",
        )
        .await;
    assert_eq!(
        (status, fields(&problem)),
        (422, vec!["coupon"]),
        "{problem}"
    );
    let once = app.get("/api/v1/coupons/ONCE").await;
    assert_eq!(once["times_redeemed"], 1);
    let discounts = app
        .get(&format!("/api/v1/discounts?customer_id={dollars}"))
        .await;
    assert_eq!(
        discounts["data"].as_array().unwrap().len(),
        1,
        "{discounts}"
    );
    app.stop().await;
}

/// Eight customers redeem a coupon of three at the same time: three discounts, five refusals.
async fn concurrent_redemptions_stop_at_the_maximum(database: Database) {
    const ATTEMPTS: usize = 8;
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    app.post(
        "/api/v1/coupons",
        json!({"code": "FIRST3", "percent_off": 20, "duration": "once", "max_redemptions": 3}),
    )
    .await;
    let mut customers = Vec::new();
    for index in 0..ATTEMPTS {
        customers.push(customer(&app, &format!("team-{index}"), "USD").await);
    }

    let attempts = customers.iter().map(|customer_id| {
        app.call(
            "POST",
            "/api/v1/discounts",
            Some(json!({"customer_id": customer_id, "coupon": "FIRST3"})),
        )
    });
    let outcomes = futures_util::future::join_all(attempts).await;

    let created = outcomes.iter().filter(|(status, _)| *status == 201).count();
    let refused: Vec<_> = outcomes
        .iter()
        .filter(|(status, _)| *status == 422)
        .collect();
    assert_eq!((created, refused.len()), (3, ATTEMPTS - 3), "{outcomes:?}");
    for (_, problem) in refused {
        assert_eq!(fields(problem), ["coupon"], "{problem}");
    }
    let coupon = app.get("/api/v1/coupons/FIRST3").await;
    assert_eq!(coupon["times_redeemed"], 3);
    let discounts = app.get("/api/v1/discounts").await;
    assert_eq!(
        discounts["data"].as_array().unwrap().len(),
        3,
        "{discounts}"
    );
    app.stop().await;
}

/// 3 seats at 33.33: 99.99 before the discount; 10 % of it is 9.999, rounded half-up to 10.00.
async fn a_redeemed_coupon_takes_ten_percent_off_the_invoice_to_the_cent(database: Database) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    app.post(
        "/api/v1/plans",
        json!({"key": "team", "name": "Team", "cadence": "monthly", "currency": "USD", "prices": [
            {"key": "seats", "description": "Seats", "billing": "in_arrears",
             "pricing": {"model": "per_unit", "unit_amount": "33.33"}}]}),
    )
    .await;
    let customer_id = customer(&app, "acme", "USD").await;
    app.post(
        "/api/v1/subscriptions",
        json!({"customer_id": customer_id, "plan": "team", "quantity": 3,
               "start": "2024-01-01T00:00:00Z"}),
    )
    .await;
    app.post(
        "/api/v1/coupons",
        json!({"code": "LAUNCH10", "percent_off": "10", "duration": "forever"}),
    )
    .await;

    let discount = app
        .post(
            "/api/v1/discounts",
            json!({"customer_id": customer_id, "coupon": "LAUNCH10"}),
        )
        .await;
    app.set_now("2024-02-01T01:00:00Z").await;
    app.post("/api/v1/billing-runs", json!({})).await;

    assert_eq!(discount["coupon"], "LAUNCH10");
    assert_eq!(discount["customer_id"], customer_id.as_str());
    assert_eq!(discount["percent_off"], "10");
    assert_eq!(discount["duration"], "forever");
    assert_eq!(discount["start"], "2024-01-01T00:00:00.000000Z");
    let invoice = app
        .get(&format!("/api/v1/customers/{customer_id}/last-invoice"))
        .await;
    let lines = invoice["lines"].as_array().unwrap();
    let seats = lines
        .iter()
        .find(|line| line["description"] == "Seats")
        .unwrap();
    assert_eq!(seats["amount"]["amount"], "99.99", "{invoice}");
    let discounts: Vec<&Value> = lines
        .iter()
        .filter(|line| line["kind"] == "discount")
        .collect();
    assert_eq!(discounts.len(), 1, "{invoice}");
    assert_eq!(discounts[0]["amount"]["amount"], "-10.00", "{invoice}");
    assert_eq!(discounts[0]["amount"]["amount_minor"], -1000, "{invoice}");
    assert_eq!(invoice["total"]["amount"], "89.99", "{invoice}");
    assert_eq!(invoice["total"]["amount_minor"], 8999);
    app.stop().await;
}

/// Five coupons, two of them made at the same instant, listed two a page: oldest first (ties by
/// code), `next_cursor` the last code of a page and `starting_after` the next page's start; the
/// page size and the cursor are refused with a 422 naming them, as on the other native lists.
async fn coupons_are_listed_in_pages_like_the_other_native_lists(database: Database) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    let made = [
        ("SPRING", "2024-01-01T00:00:00Z"),
        ("BETA", "2024-01-02T00:00:00Z"),
        ("ALPHA", "2024-01-03T00:00:00Z"),
        ("CHARLIE", "2024-01-03T00:00:00Z"),
        ("ZULU", "2024-01-04T00:00:00Z"),
    ];
    for (code, now) in made {
        app.set_now(now).await;
        app.post(
            "/api/v1/coupons",
            json!({"code": code, "percent_off": 10, "duration": "once"}),
        )
        .await;
    }
    let other = other_workspace_key(&app).await;
    let (status, _) = app
        .call_as(
            &other,
            "POST",
            "/api/v1/coupons",
            Some(json!({"code": "THEIRS", "percent_off": 10, "duration": "once"})),
            "application/json",
        )
        .await;
    assert_eq!(status, 201);

    let mut pages = Vec::new();
    let mut path = "/api/v1/coupons?limit=2".to_owned();
    loop {
        let page = app.get(&path).await;
        let codes: Vec<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|coupon| coupon["code"].as_str().unwrap().to_owned())
            .collect();
        pages.push((
            codes.clone(),
            page["has_more"].clone(),
            page["next_cursor"].clone(),
        ));
        if page["has_more"] == json!(false) {
            break;
        }
        path = format!(
            "/api/v1/coupons?limit=2&starting_after={}",
            page["next_cursor"].as_str().unwrap()
        );
    }

    let page = |codes: &[&str], has_more: bool, next_cursor: Value| {
        (
            codes
                .iter()
                .map(|code| (*code).to_owned())
                .collect::<Vec<_>>(),
            json!(has_more),
            next_cursor,
        )
    };
    assert_eq!(
        pages,
        [
            page(&["SPRING", "BETA"], true, json!("BETA")),
            page(&["ALPHA", "CHARLIE"], true, json!("CHARLIE")),
            page(&["ZULU"], false, Value::Null),
        ]
    );
    let all = app.get("/api/v1/coupons").await;
    assert_eq!(
        all["data"].as_array().unwrap().len(),
        5,
        "10 a page by default"
    );
    assert_eq!(
        (&all["has_more"], &all["next_cursor"]),
        (&json!(false), &Value::Null)
    );
    let exact = app.get("/api/v1/coupons?limit=5").await;
    assert_eq!(
        exact["has_more"], false,
        "no more after exactly `limit` coupons"
    );
    assert_eq!(exact["data"][4]["code"], "ZULU");
    let largest = app.get("/api/v1/coupons?limit=100").await;
    assert_eq!(largest["data"].as_array().unwrap().len(), 5);
    let refusals = [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=-1", "limit"),
        ("limit=ten", "limit"),
        ("starting_after=NOPE", "starting_after"),
        ("starting_after=THEIRS", "starting_after"),
    ];
    for (query, field) in refusals {
        let (status, problem) = app
            .call("GET", &format!("/api/v1/coupons?{query}"), None)
            .await;
        assert_eq!(status, 422, "{query}: {problem}");
        assert_eq!(problem["type"], "urn:billow:problem:validation", "{query}");
        assert_eq!(fields(&problem), [field], "{query}: {problem}");
    }
    let (status, problem) = app.call("GET", "/api/v1/coupons?limit=101", None).await;
    assert_eq!(
        (status, &problem["errors"]),
        (
            422,
            &json!([{"field": "limit", "reason": "must be between 1 and 100"}])
        )
    );
    app.stop().await;
}

/// A discount redeemed from a coupon names it in the list, in its own GET and when created; a
/// discount with inline terms shows `coupon: null`.
async fn a_discount_shows_the_coupon_it_was_redeemed_from(database: Database) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    let acme = customer(&app, "acme", "USD").await;
    let globex = customer(&app, "globex", "USD").await;
    app.post(
        "/api/v1/coupons",
        json!({"code": "LAUNCH10", "percent_off": "10", "duration": "forever"}),
    )
    .await;
    app.set_now("2024-01-05T00:00:00Z").await;

    let inline = app
        .post(
            "/api/v1/discounts",
            json!({"customer_id": acme, "percent_off": "5", "duration": "once",
                   "start": "2024-01-01T00:00:00Z"}),
        )
        .await;
    let redeemed = app
        .post(
            "/api/v1/discounts",
            json!({"customer_id": acme, "coupon": "LAUNCH10"}),
        )
        .await;
    let of_globex = app
        .post(
            "/api/v1/discounts",
            json!({"customer_id": globex, "coupon": "LAUNCH10"}),
        )
        .await;

    let id = |discount: &Value| discount["id"].as_str().unwrap().to_owned();
    let expected_inline = json!({
        "coupon": null, "id": id(&inline), "customer_id": acme,
        "created_at": "2024-01-05T00:00:00.000000Z",
        "percent_off": "5", "duration": "once", "start": "2024-01-01T00:00:00.000000Z"});
    let expected_redeemed = json!({
        "coupon": "LAUNCH10", "id": id(&redeemed), "customer_id": acme,
        "created_at": "2024-01-05T00:00:00.000000Z",
        "percent_off": "10", "duration": "forever", "start": "2024-01-05T00:00:00.000000Z"});
    assert_eq!(inline, expected_inline);
    assert_eq!(redeemed, expected_redeemed);
    assert_eq!(of_globex["coupon"], "LAUNCH10");
    let of_acme = app
        .get(&format!("/api/v1/discounts?customer_id={acme}"))
        .await;
    let mut listed = of_acme["data"].as_array().unwrap().clone();
    listed.sort_by_key(|discount| discount["coupon"].is_string());
    assert_eq!(listed, [expected_inline.clone(), expected_redeemed.clone()]);
    let all = app.get("/api/v1/discounts").await;
    let coupons: Vec<(String, Value)> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|discount| (id(discount), discount["coupon"].clone()))
        .collect();
    assert_eq!(coupons.len(), 3, "{all}");
    for (discount, coupon) in [
        (id(&inline), Value::Null),
        (id(&redeemed), json!("LAUNCH10")),
        (id(&of_globex), json!("LAUNCH10")),
    ] {
        assert!(
            coupons.contains(&(discount.clone(), coupon)),
            "{discount}: {all}"
        );
    }
    assert_eq!(
        app.get(&format!("/api/v1/discounts/{}", id(&inline))).await,
        expected_inline
    );
    assert_eq!(
        app.get(&format!("/api/v1/discounts/{}", id(&redeemed)))
            .await,
        expected_redeemed
    );
    let (status, problem) = app.call("GET", "/api/v1/discounts/disc_nope", None).await;
    assert_eq!(status, 404, "{problem}");
    assert_eq!(problem["type"], "urn:billow:problem:not-found");
    // Another workspace, and another customer's token, find nothing.
    let other = other_workspace_key(&app).await;
    let (status, _) = app
        .call_as(
            &other,
            "GET",
            &format!("/api/v1/discounts/{}", id(&redeemed)),
            None,
            "application/json",
        )
        .await;
    assert_eq!(status, 404);
    let token = app
        .post(&format!("/api/v1/customers/{globex}/tokens"), json!({}))
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = app
        .call_as(
            &token,
            "GET",
            &format!("/api/v1/discounts/{}", id(&redeemed)),
            None,
            "application/json",
        )
        .await;
    assert_eq!(status, 404);
    let (status, own) = app
        .call_as(
            &token,
            "GET",
            &format!("/api/v1/discounts/{}", id(&of_globex)),
            None,
            "application/json",
        )
        .await;
    assert_eq!((status, &own["coupon"]), (200, &json!("LAUNCH10")));
    let (status, listed) = app
        .call_as(&token, "GET", "/api/v1/discounts", None, "application/json")
        .await;
    assert_eq!(status, 200);
    assert_eq!(listed["data"], json!([own]));
    app.stop().await;
}

on_both_databases!(
    coupons_are_created_listed_archived_and_private_to_their_workspace,
    a_redemption_is_refused_on_coupon_with_the_reason,
    concurrent_redemptions_stop_at_the_maximum,
    a_redeemed_coupon_takes_ten_percent_off_the_invoice_to_the_cent,
    coupons_are_listed_in_pages_like_the_other_native_lists,
    a_discount_shows_the_coupon_it_was_redeemed_from,
);
