//! The billing API's edges over HTTP: field-naming 422s from the core's validation, plan
//! versions, change previews, finalize/void/credit notes/payments, customer tokens and tenant
//! isolation, usage and upcoming invoices.

use billow_store::Database;
use jiff::Timestamp;
use serde_json::{json, Value};

use crate::month::BillingApp;

/// A plan of seats in advance (10.00) and compute in arrears (0.10 an hour, by project), a
/// customer, and its subscription of 3 seats since 2024-01-01.
async fn arranged(now: &str) -> (BillingApp, String, String) {
    let app = BillingApp::spawn(Database::sqlite("unused"), now).await;
    app.post(
        "/api/v1/meters",
        json!({"key": "compute", "event_type": "compute.hours", "aggregation": "SUM",
               "value_property": "hours", "group_by": ["project"]}),
    )
    .await;
    app.post(
        "/api/v1/plans",
        json!({"key": "team", "cadence": "monthly", "currency": "USD", "prices": [
            {"key": "seats", "description": "Seats", "pricing": {"model": "per_unit", "unit_amount": "10.00"}},
            {"key": "compute", "description": "Compute", "meter": "compute",
             "pricing": {"model": "per_unit", "unit_amount": "0.10"}}]}),
    )
    .await;
    let customer = app
        .post(
            "/api/v1/customers",
            json!({"external_id": "acme", "name": "Acme", "currency": "USD", "invoicing": "per_subscription"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let subscription = app
        .post(
            "/api/v1/subscriptions",
            json!({"customer_id": customer, "plan": "team", "quantity": 3,
                   "start": "2024-01-01T00:00:00Z"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    (app, customer, subscription)
}

/// The fields a problem's `errors` name, in order.
pub(crate) fn fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn bad_catalog_input_is_a_422_naming_the_field() {
    let (app, customer, _) = arranged("2024-01-01T00:00:00Z").await;
    let cases = [
        (
            "/api/v1/plans",
            json!({"key": "p", "cadence": "monthly", "currency": "USD", "prices": [
                {"key": "a", "pricing": {"model": "tiered", "tiers": []}}]}),
            "prices[0].pricing.model",
        ),
        (
            "/api/v1/plans",
            json!({"key": "p", "currency": "USD", "prices": [{"key": "a", "pricing": {"model": "flat", "amount": "1"}}]}),
            "cadence",
        ),
        (
            "/api/v1/plans",
            json!({"key": "p", "cadence": "monthly", "currency": "USD", "prices": [
                {"key": "a", "meter": "nope", "pricing": {"model": "per_unit", "unit_amount": "1"}}]}),
            "prices[0].meter",
        ),
        (
            "/api/v1/meters",
            json!({"key": "m", "event_type": "e", "aggregation": "AVERAGE"}),
            "aggregation",
        ),
        (
            "/api/v1/subscriptions",
            json!({"customer_id": customer, "plan": "team", "quantity": -1}),
            "quantity",
        ),
        (
            "/api/v1/subscriptions",
            json!({"customer_id": "cus_nobody", "plan": "team"}),
            "customer_id",
        ),
        (
            "/api/v1/subscriptions",
            json!({"customer_id": customer, "plan": "nope"}),
            "plan",
        ),
        (
            "/api/v1/credit-grants",
            json!({"customer_id": customer, "type": "gift", "amount": 5, "start": "2024-01-01T00:00:00Z"}),
            "type",
        ),
        (
            "/api/v1/discounts",
            json!({"customer_id": customer, "percent_off": "10", "duration": "once"}),
            "start",
        ),
        ("/api/v1/tax-rates", json!({"name": "VAT"}), "rate_percent"),
    ];
    for (path, body, field) in cases {
        let (status, problem) = app.call("POST", path, Some(body.clone())).await;
        assert_eq!(status, 422, "{path} {body}: {problem}");
        assert_eq!(problem["type"], "urn:billow:problem:validation");
        assert_eq!(fields(&problem), [field], "{path} {body}: {problem}");
    }
    let queries = [
        ("/api/v1/invoices?limit=abc".to_owned(), "limit"),
        ("/api/v1/invoices?limit=101".to_owned(), "limit"),
        ("/api/v1/invoices?status=late".to_owned(), "status"),
        ("/api/v1/invoices?from=yesterday".to_owned(), "from"),
        (
            format!("/api/v1/customers/{customer}/usage?to=2024-01-02T00:00:00Z"),
            "from",
        ),
        (
            format!("/api/v1/customers/{customer}/billing-history?limit=0"),
            "limit",
        ),
    ];
    for (path, field) in queries {
        let (status, problem) = app.call("GET", &path, None).await;
        assert_eq!(status, 422, "{path}: {problem}");
        assert_eq!(fields(&problem), [field], "{path}: {problem}");
    }
    let (status, problem) = app
        .call(
            "POST",
            "/api/v1/plans",
            Some(
                json!({"key": "team", "cadence": "monthly", "currency": "USD", "prices": [
                {"key": "a", "pricing": {"model": "flat", "amount": "1"}}]}),
            ),
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    app.stop().await;
}

#[tokio::test]
async fn a_meter_is_found_by_its_id_or_its_key() {
    let (app, _, _) = arranged("2024-01-01T00:00:00Z").await;
    let (status, by_key) = app.call("GET", "/api/v1/meters/compute", None).await;
    assert_eq!(status, 200, "{by_key}");
    assert_eq!(by_key["key"], "compute");
    assert_eq!(by_key["group_by"], json!(["project"]));
    let id = by_key["id"].as_str().unwrap();
    let (status, by_id) = app.call("GET", &format!("/api/v1/meters/{id}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(by_id, by_key);
    let (status, missing) = app.call("GET", "/api/v1/meters/nope", None).await;
    assert_eq!(status, 404, "{missing}");
}

/// The one page of a list that is never cut: `data` holds every item, nothing follows.
fn whole_page(page: &Value) -> &[Value] {
    let members: Vec<&str> = page
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(members, ["data", "has_more", "next_cursor"], "{page}");
    assert_eq!(page["has_more"], false, "{page}");
    assert_eq!(page["next_cursor"], Value::Null, "{page}");
    page["data"].as_array().unwrap()
}

#[tokio::test]
async fn catalog_subscription_and_credit_lists_answer_one_envelope_and_six_digit_instants() {
    // Created at an instant with milliseconds: every response shows microseconds.
    let (app, customer, subscription) = arranged("2024-01-02T03:04:05.678Z").await;
    let created_at = "2024-01-02T03:04:05.678000Z";
    app.post(
        &format!("/api/v1/subscriptions/{subscription}/changes"),
        json!({"quantity": 4, "at": "2024-01-10T12:00:00+01:00"}),
    )
    .await;
    let grant = app
        .post(
            "/api/v1/credit-grants",
            json!({"customer_id": customer, "type": "free", "amount": "5.00",
                   "start": "2024-01-01T00:00:00.5Z", "expiry": "2024-07-01T00:00:00Z"}),
        )
        .await;
    let discount = app
        .post(
            "/api/v1/discounts",
            json!({"customer_id": customer, "percent_off": "10", "duration": "once",
                   "start": "2024-02-01T00:00:00Z"}),
        )
        .await;
    let rate = app
        .post(
            "/api/v1/tax-rates",
            json!({"name": "VAT", "rate_percent": "19"}),
        )
        .await;

    let meters = app.get("/api/v1/meters").await;
    let meter = &whole_page(&meters)[0];
    assert_eq!(meter["key"], "compute");
    assert_eq!(meter["created_at"], created_at);
    let plans = app.get("/api/v1/plans").await;
    let plan = &whole_page(&plans)[0];
    assert_eq!(plan["key"], "team");
    assert_eq!(plan["created_at"], created_at);
    assert_eq!(plan["current_version"]["created_at"], created_at);
    assert_eq!(plan["current_version"]["prices"][0]["key"], "seats");
    assert_eq!(plan["versions"][0]["created_at"], created_at);
    let subscriptions = app
        .get(&format!("/api/v1/subscriptions?customer_id={customer}"))
        .await;
    let listed = &whole_page(&subscriptions)[0];
    assert_eq!(listed["id"], subscription.as_str());
    assert_eq!(listed["start"], "2024-01-01T00:00:00.000000Z");
    assert_eq!(listed["created_at"], created_at);
    assert_eq!(listed["quantity"], "3");
    assert_eq!(
        listed["changes"],
        json!([{"at": "2024-01-10T11:00:00.000000Z", "quantity": "4", "invoice_now": false}])
    );
    let grants = app.get("/api/v1/credit-grants").await;
    assert_eq!(whole_page(&grants), std::slice::from_ref(&grant));
    assert_eq!(grant["start"], "2024-01-01T00:00:00.500000Z");
    assert_eq!(grant["expiry"], "2024-07-01T00:00:00.000000Z");
    assert_eq!(grant["created_at"], created_at);
    assert_eq!(grant["amount"], "5.00");
    let discounts = app
        .get(&format!("/api/v1/discounts?customer_id={customer}"))
        .await;
    assert_eq!(whole_page(&discounts), std::slice::from_ref(&discount));
    assert_eq!(discount["start"], "2024-02-01T00:00:00.000000Z");
    assert_eq!(discount["created_at"], created_at);
    assert_eq!(discount["coupon"], Value::Null);
    let rates = app.get("/api/v1/tax-rates").await;
    assert_eq!(whole_page(&rates), std::slice::from_ref(&rate));
    assert_eq!(rate["created_at"], created_at);
    assert_eq!(rate["rate_percent"], "19");
    app.stop().await;
}

#[tokio::test]
async fn editing_a_plan_makes_a_version_that_only_new_subscriptions_get() {
    let (app, customer, first) = arranged("2024-01-01T00:00:00Z").await;
    let (status, plan) = app
        .call(
            "PUT",
            "/api/v1/plans/team",
            Some(json!({"cadence": "monthly", "currency": "USD", "prices": [
                {"key": "seats", "description": "Seats", "pricing": {"model": "per_unit", "unit_amount": "12.00"}}]})),
        )
        .await;
    assert_eq!(status, 200, "{plan}");
    assert_eq!(plan["current_version"]["version"], 2);
    assert_eq!(plan["versions"].as_array().unwrap().len(), 2);
    let second = app
        .post(
            "/api/v1/subscriptions",
            json!({"customer_id": customer, "plan": "team", "start": "2024-01-01T00:00:00Z"}),
        )
        .await;

    let old = app.get(&format!("/api/v1/subscriptions/{first}")).await;
    assert_eq!(old["plan_version_id"], plan["versions"][0]["id"]);
    assert_eq!(second["plan_version_id"], plan["versions"][1]["id"]);
    app.set_now("2024-01-01T01:00:00Z").await;
    app.post("/api/v1/billing-runs", json!({})).await;
    let invoices = app.get("/api/v1/invoices?status=open").await;
    let mut totals: Vec<i64> = invoices["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["total"]["amount_minor"].as_i64().unwrap())
        .collect();
    totals.sort_unstable();
    // The old subscription bills 3 × 10.00 at version 1; the new one 1 × 12.00 at version 2.
    assert_eq!(totals, [1200, 3000]);
    app.stop().await;
}

#[tokio::test]
async fn a_change_preview_shows_the_proration_without_making_the_change() {
    let (app, _customer, subscription) = arranged("2024-01-16T00:00:00Z").await;

    let preview = app
        .post(
            &format!("/api/v1/subscriptions/{subscription}/preview-change"),
            json!({"quantity": 5}),
        )
        .await;

    // From 3 to 5 seats on January 16: a credit for 16 of 31 days at 3 seats and a charge for
    // them at 5, on the next invoice (February 1).
    let invoices = preview["invoices"].as_array().unwrap();
    assert_eq!(preview["change"]["at"], "2024-01-16T00:00:00.000000Z");
    assert_eq!(preview["change"]["quantity"], "5");
    assert_eq!(
        invoices[0]["issued_at"], "2024-02-01T00:00:00.000000Z",
        "{preview}"
    );
    let lines = invoices[0]["lines"].as_array().unwrap();
    let amounts: Vec<&str> = lines
        .iter()
        .map(|line| line["amount"]["amount"].as_str().unwrap())
        .collect();
    assert!(amounts.contains(&"-15.48"), "{amounts:?}");
    assert!(amounts.contains(&"25.81"), "{amounts:?}");
    // The charge for the 16 days at 5 seats, prorated within January, instants as every native
    // response writes them.
    let charge = lines
        .iter()
        .find(|line| line["amount"]["amount"] == "25.81")
        .unwrap();
    let january_rest = json!({"start": "2024-01-16T00:00:00.000000Z",
                              "end": "2024-02-01T00:00:00.000000Z"});
    assert_eq!(charge["period"], january_rest, "{charge}");
    let proration = &charge["trace"]["proration"];
    assert_eq!(proration["interval"], january_rest, "{charge}");
    assert_eq!(
        proration["containing"],
        json!({"start": "2024-01-01T00:00:00.000000Z", "end": "2024-02-01T00:00:00.000000Z"}),
        "{charge}"
    );
    let unchanged = app
        .get(&format!("/api/v1/subscriptions/{subscription}"))
        .await;
    assert_eq!(unchanged["changes"], json!([]));

    let (status, problem) = app
        .call(
            "POST",
            &format!("/api/v1/subscriptions/{subscription}/changes"),
            Some(json!({"quantity": 5, "plan": "team"})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    let changed = app
        .post(
            &format!("/api/v1/subscriptions/{subscription}/changes"),
            json!({"cancel": "end_of_term"}),
        )
        .await;
    assert_eq!(changed["status"], "canceled");
    app.stop().await;
}

#[tokio::test]
async fn an_invoice_is_finalized_paid_credited_within_its_total_and_never_edited() {
    let (app, customer, _) = arranged("2024-01-01T00:30:00Z").await;
    app.post("/api/v1/billing-runs", json!({})).await;
    let drafts = app.get("/api/v1/invoices?status=draft").await;
    let id = drafts["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(drafts["data"][0]["number"], Value::Null);
    // A draft may still change: nothing to pay yet.
    assert_eq!(drafts["data"][0]["payment_instructions"], Value::Null);

    let finalized = app
        .post(&format!("/api/v1/invoices/{id}/finalize"), json!({}))
        .await;
    assert_eq!(finalized["number"], 1);
    assert_eq!(finalized["status"], "open");
    assert_eq!(
        finalized["payment_instructions"]["reference"], "#1",
        "{finalized}"
    );
    let (status, _) = app
        .call(
            "POST",
            &format!("/api/v1/invoices/{id}/finalize"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 409);

    // Credit notes: at most the invoice's 30.00.
    let (status, problem) = app
        .call(
            "POST",
            &format!("/api/v1/invoices/{id}/credit-notes"),
            Some(json!({"lines": [{"description": "Goodwill", "amount": "30.01"}]})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(fields(&problem), ["lines"]);
    let note = app
        .post(
            &format!("/api/v1/invoices/{id}/credit-notes"),
            json!({"lines": [{"description": "Outage", "amount": "5.00", "line": 1}], "reason": "SLA"}),
        )
        .await;
    assert_eq!(note["total"]["amount_minor"], 500);

    // Read once, so the open invoice is served from the in-memory cache from now on.
    let before = app.get(&format!("/api/v1/invoices/{id}")).await;
    assert_eq!(before["status"], "open");
    // The invoice shows what was credited, and asks for the rest.
    let amounts = |invoice: &Value| {
        ["total", "credited", "amount_due", "amount_remaining"]
            .map(|field| invoice[field]["amount_minor"].as_i64().unwrap())
    };
    assert_eq!(amounts(&before), [3000, 500, 2500, 2500], "{before}");
    assert!(
        before["payment_instructions"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Transfer 25.00 USD to "),
        "{before}"
    );
    assert_eq!(app.get(&format!("/api/v1/invoices/{id}")).await, before);

    // Manual payment: in progress, then paid, with the history.
    let (status, problem) = app
        .call(
            "POST",
            &format!("/api/v1/invoices/{id}/payments"),
            Some(json!({"state": "Refunded"})),
        )
        .await;
    assert_eq!((status, fields(&problem)), (422, vec!["state"]));
    app.post(
        &format!("/api/v1/invoices/{id}/payments"),
        json!({"state": "PaymentInProgress", "message": "wire announced"}),
    )
    .await;
    let paid = app
        .post(
            &format!("/api/v1/invoices/{id}/payments"),
            json!({"state": "Paid"}),
        )
        .await;
    assert_eq!(paid["status"], "paid");
    let after = app.get(&format!("/api/v1/invoices/{id}")).await;
    assert_eq!(
        after["status"], "paid",
        "a payment forgets the cached invoice"
    );
    assert_eq!(amounts(&after), [3000, 500, 2500, 0], "{after}");
    // Paid: nothing is owed, so no instructions to pay.
    assert_eq!(after["payment_instructions"], Value::Null, "{after}");
    let states: Vec<&str> = paid["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["PaymentPending", "PaymentInProgress", "Paid"]);
    let (status, _) = app
        .call(
            "POST",
            &format!("/api/v1/invoices/{id}/void"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 409, "a paid invoice is not voided");
    let history = app
        .get(&format!("/api/v1/customers/{customer}/billing-history"))
        .await;
    assert_eq!(history["data"][0]["status"], "paid");
    app.stop().await;
}

#[tokio::test]
async fn a_customer_token_reads_only_its_own_billing() {
    let (app, customer, subscription) = arranged("2024-01-01T02:00:00Z").await;
    let other = app
        .post(
            "/api/v1/customers",
            json!({"external_id": "other", "name": "Other", "currency": "USD", "invoicing": "per_subscription"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.post(
        "/api/v1/subscriptions",
        json!({"customer_id": other, "plan": "team", "start": "2024-01-01T00:00:00Z"}),
    )
    .await;
    app.post("/api/v1/billing-runs", json!({})).await;
    let token = app
        .post(&format!("/api/v1/customers/{customer}/tokens"), json!({}))
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let as_customer = |method: &'static str, path: String| {
        let app = &app;
        let token = token.clone();
        async move {
            app.call_as(&token, method, &path, None, "application/json")
                .await
        }
    };

    let (status, own) = as_customer("GET", "/api/v1/invoices".into()).await;
    assert_eq!(status, 200, "{own}");
    let own = own["data"].as_array().unwrap();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0]["customer_id"], customer.as_str());
    let all = app.get("/api/v1/invoices").await;
    let foreign = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["customer_id"] == other.as_str())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = as_customer("GET", format!("/api/v1/invoices/{foreign}")).await;
    assert_eq!(status, 404);
    // Also once the workspace key has read it (and the server keeps it rendered in memory).
    let read = app.get(&format!("/api/v1/invoices/{foreign}")).await;
    assert_eq!(read["customer_id"], other.as_str());
    let (status, _) = as_customer("GET", format!("/api/v1/invoices/{foreign}")).await;
    assert_eq!(
        status, 404,
        "a cached invoice is checked against the token's customer"
    );
    let (status, _) = as_customer("GET", format!("/api/v1/subscriptions/{subscription}")).await;
    assert_eq!(status, 200);
    let (status, _) = as_customer("GET", format!("/api/v1/customers/{other}/last-invoice")).await;
    assert_eq!(status, 404);
    let (status, _) =
        as_customer("GET", format!("/api/v1/customers/{customer}/last-invoice")).await;
    assert_eq!(status, 200);
    let (status, _) = as_customer("POST", "/api/v1/billing-runs".into()).await;
    assert_eq!(status, 403);
    // A list asked for another customer is that customer's 404, never the token's own list.
    for list in [
        "invoices",
        "subscriptions",
        "credit-grants",
        "discounts",
        "resources",
    ] {
        let (status, body) =
            as_customer("GET", format!("/api/v1/{list}?customer_id={other}")).await;
        assert_eq!(status, 404, "{list}: {body}");
        let (status, body) =
            as_customer("GET", format!("/api/v1/{list}?customer_id={customer}")).await;
        assert_eq!(status, 200, "{list}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn usage_totals_by_project_and_day_and_the_upcoming_invoice() {
    let (app, customer, _) = arranged("2024-01-03T12:00:00Z").await;
    app.post(
        "/api/v1/events",
        json!([
            {"specversion": "1.0", "id": "u1", "source": "k8s", "type": "compute.hours", "subject": "acme",
             "time": "2024-01-01T10:00:00Z", "data": {"hours": 2, "project": "web"}},
            {"specversion": "1.0", "id": "u2", "source": "k8s", "type": "compute.hours", "subject": "acme",
             "time": "2024-01-02T10:00:00Z", "data": {"hours": 3, "project": "web"}},
            {"specversion": "1.0", "id": "u3", "source": "k8s", "type": "compute.hours", "subject": "acme",
             "time": "2024-01-02T11:00:00Z", "data": {"hours": 4, "project": "batch"}}
        ]),
    )
    .await;

    let usage = app
        .get(&format!(
            "/api/v1/customers/{customer}/usage?meter=compute&from=2024-01-01T00:00:00Z&to=2024-01-03T00:00:00Z"
        ))
        .await;

    let compute = &usage["data"][0];
    assert_eq!(compute["meter"], "compute");
    assert_eq!(compute["quantity"], "9");
    let series: Vec<&str> = compute["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|day| day["quantity"].as_str().unwrap())
        .collect();
    assert_eq!(series, ["2", "7"]);
    let projects = compute["projects"].as_array().unwrap();
    assert!(
        projects.contains(&json!({"project": "batch", "quantity": "4"})),
        "{projects:?}"
    );
    assert!(
        projects.contains(&json!({"project": "web", "quantity": "5"})),
        "{projects:?}"
    );
    let (status, problem) = app
        .call(
            "GET",
            &format!("/api/v1/customers/{customer}/usage?from=2024-01-03T00:00:00Z&to=2024-01-01T00:00:00Z"),
            None,
        )
        .await;
    assert_eq!((status, fields(&problem)), (422, vec!["to"]));

    let upcoming = app
        .get(&format!("/api/v1/customers/{customer}/invoices/upcoming"))
        .await;
    let lines = upcoming["data"][0]["lines"].as_array().unwrap();
    let amounts: Vec<&str> = lines
        .iter()
        .map(|l| l["amount"]["amount"].as_str().unwrap())
        .collect();
    // Usage so far: web 5 hours = 0.50, batch 4 = 0.40.
    assert!(
        amounts.contains(&"0.50") && amounts.contains(&"0.40"),
        "{amounts:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn another_workspace_sees_none_of_the_billing() {
    let (app, customer, subscription) = arranged("2024-01-01T02:00:00Z").await;
    app.post("/api/v1/billing-runs", json!({})).await;
    let invoice = app.get("/api/v1/invoices").await["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let workspace = app
        .store
        .workspace_named_or_created(
            &billow_store::WorkspaceName::parse("Other").unwrap(),
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
    let (_, secret) = app
        .store
        .create_api_key(&workspace.id, jiff::Timestamp::now())
        .await
        .unwrap();
    let key = secret.expose().to_owned();

    for path in [
        format!("/api/v1/invoices/{invoice}"),
        format!("/api/v1/subscriptions/{subscription}"),
        "/api/v1/plans/team".to_owned(),
        format!("/api/v1/customers/{customer}/invoices/upcoming"),
    ] {
        let (status, body) = app
            .call_as(&key, "GET", &path, None, "application/json")
            .await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, body) = app
        .call_as(&key, "GET", "/api/v1/invoices", None, "application/json")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!([]));
    app.stop().await;
}

/// Sets up, with `key`, a plan of one unit at 0.125 billed in advance and a subscription of one
/// unit since 2024-01-01: its first invoice holds a tie at the third decimal.
async fn tie_subscription(app: &BillingApp, key: &str) -> String {
    let call = |method: &'static str, path: &'static str, body: Value| async move {
        let (status, json) = app
            .call_as(key, method, path, Some(body), "application/json")
            .await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {json}"
        );
        json
    };
    call(
        "POST",
        "/api/v1/plans",
        json!({"key": "tie", "cadence": "monthly", "currency": "USD", "prices": [
            {"key": "unit", "description": "Unit", "pricing": {"model": "per_unit", "unit_amount": "0.125"}}]}),
    )
    .await;
    let customer = call(
        "POST",
        "/api/v1/customers",
        json!({"external_id": "tie", "name": "Tie", "currency": "USD", "invoicing": "per_subscription"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    call(
        "POST",
        "/api/v1/subscriptions",
        json!({"customer_id": customer, "plan": "tie", "start": "2024-01-01T00:00:00Z"}),
    )
    .await;
    customer
}

/// The first invoice of the workspace of `key`, after a billing run.
async fn first_invoice(app: &BillingApp, key: &str) -> Value {
    let (status, run) = app
        .call_as(
            key,
            "POST",
            "/api/v1/billing-runs",
            Some(json!({})),
            "application/json",
        )
        .await;
    assert_eq!(status, 201, "{run}");
    let (status, page) = app
        .call_as(key, "GET", "/api/v1/invoices", None, "application/json")
        .await;
    assert_eq!(status, 200, "{page}");
    let invoices = page["data"].as_array().unwrap();
    assert_eq!(invoices.len(), 1, "{page}");
    invoices[0].clone()
}

async fn rounding_is_a_workspace_setting(database: Database) {
    // Arrange: two workspaces with the same subscription; the first switches to half_even.
    let app = BillingApp::spawn(database, "2024-01-01T02:00:00Z").await;
    let workspace = app
        .store
        .workspace_named_or_created(
            &billow_store::WorkspaceName::parse("Default rounding").unwrap(),
            jiff::Timestamp::now(),
        )
        .await
        .unwrap();
    let (_, secret) = app
        .store
        .create_api_key(&workspace.id, jiff::Timestamp::now())
        .await
        .unwrap();
    let other = secret.expose().to_owned();
    let customer = tie_subscription(&app, &app.key).await;
    tie_subscription(&app, &other).await;
    let defaults = app.get("/api/v1/workspace/settings").await;
    assert_eq!(
        defaults,
        json!({"rounding": "half_up", "net_days": 30, "updated_at": null})
    );

    let (status, changed) = app
        .call(
            "PATCH",
            "/api/v1/workspace/settings",
            Some(json!({"rounding": "half_even"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["rounding"], "half_even");
    assert_eq!(changed["updated_at"], "2024-01-01T02:00:00.000000Z");
    assert_eq!(app.get("/api/v1/workspace/settings").await, changed);

    // Drafts follow the setting at once.
    app.set_now("2024-01-01T00:30:00Z").await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(run["report"]["drafted"], 1, "{run}");
    let draft = &app.get("/api/v1/invoices?status=draft").await["data"][0];
    assert_eq!(draft["rounding"], "half_even", "{draft}");
    assert_eq!(draft["total"]["amount_minor"], 12, "{draft}");
    app.set_now("2024-01-01T02:00:00Z").await;

    // Act: both workspaces bill their first month.
    let even = first_invoice(&app, &app.key).await;
    let up = first_invoice(&app, &other).await;

    // Assert: 1 × 0.125 is 0.12 half-even and 0.13 half-up, to the cent.
    assert_eq!(even["status"], "open", "{even}");
    assert_eq!(even["rounding"], "half_even");
    assert_eq!(even["lines"][0]["amount"]["amount_minor"], 12, "{even}");
    assert_eq!(even["lines"][0]["trace"]["unrounded_amount"], "0.125");
    assert_eq!(even["total"]["amount_minor"], 12);
    assert_eq!(up["status"], "open", "{up}");
    assert_eq!(up["rounding"], "half_up");
    assert_eq!(up["lines"][0]["amount"]["amount_minor"], 13, "{up}");
    assert_eq!(up["total"]["amount_minor"], 13);
    let (_, other_settings) = app
        .call_as(
            &other,
            "GET",
            "/api/v1/workspace/settings",
            None,
            "application/json",
        )
        .await;
    assert_eq!(other_settings["rounding"], "half_up");

    // A finalized invoice keeps its rounding when the setting changes back.
    let (status, _) = app
        .call(
            "PATCH",
            "/api/v1/workspace/settings",
            Some(json!({"rounding": "half_up"})),
        )
        .await;
    assert_eq!(status, 200);
    let id = even["id"].as_str().unwrap();
    let again = app.get(&format!("/api/v1/invoices/{id}")).await;
    assert_eq!(again["rounding"], "half_even");
    assert_eq!(again["total"]["amount_minor"], 12);

    // Bad input: an unknown mode or field is a 422 naming it; a customer token is refused.
    for (body, field) in [
        (json!({"rounding": "half_down"}), "rounding"),
        (json!({"rounding": 1}), "rounding"),
        (json!({"rounding": "half_up", "precision": 2}), "precision"),
        (json!({"net_days": 366}), "net_days"),
        (json!({"net_days": -1}), "net_days"),
        (json!({"net_days": "30"}), "net_days"),
        (json!({"net_days": 1.5}), "net_days"),
        // Nothing is written when one field is bad: the rounding stays half-up.
        (
            json!({"rounding": "half_even", "net_days": 400}),
            "net_days",
        ),
    ] {
        let (status, problem) = app
            .call("PATCH", "/api/v1/workspace/settings", Some(body.clone()))
            .await;
        assert_eq!((status, fields(&problem)), (422, vec![field]), "{body}");
    }
    assert_eq!(
        app.get("/api/v1/workspace/settings").await["rounding"],
        "half_up"
    );
    let token = app
        .post(&format!("/api/v1/customers/{customer}/tokens"), json!({}))
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    for method in ["GET", "PATCH"] {
        let (status, problem) = app
            .call_as(
                &token,
                method,
                "/api/v1/workspace/settings",
                Some(json!({"rounding": "half_even"})),
                "application/json",
            )
            .await;
        assert_eq!(status, 403, "{method}: {problem}");
    }
    assert_eq!(
        app.get("/api/v1/workspace/settings").await["rounding"],
        "half_up"
    );
    app.stop().await;
}

#[tokio::test]
async fn rounding_is_a_workspace_setting_on_sqlite() {
    rounding_is_a_workspace_setting(Database::sqlite("unused")).await;
}

#[tokio::test]
async fn rounding_is_a_workspace_setting_on_postgres() {
    let Some(database) = crate::month::postgres_database().await else {
        return;
    };
    rounding_is_a_workspace_setting(database).await;
}

/// The one invoice of `subscription` issued at `issued_at` (RFC 3339, any precision).
async fn invoice_at(app: &BillingApp, subscription: &str, issued_at: &str) -> Value {
    let page = app
        .get(&format!("/api/v1/invoices?subscription_id={subscription}"))
        .await;
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|invoice| issued_at_is(invoice, issued_at))
        .unwrap_or_else(|| panic!("no invoice at {issued_at} in {page}"))
        .clone()
}

/// Whether `invoice` was issued at `instant` (RFC 3339, any precision).
pub(crate) fn issued_at_is(invoice: &Value, instant: &str) -> bool {
    let issued_at = invoice["issued_at"]
        .as_str()
        .unwrap_or_else(|| panic!("{invoice}"));
    issued_at.parse::<Timestamp>().unwrap() == instant.parse::<Timestamp>().unwrap()
}

/// `(kind, description, amount_minor)` of each line.
pub(crate) fn lines_of(invoice: &Value) -> Vec<(String, String, i64)> {
    invoice["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("no lines in {invoice}"))
        .iter()
        .map(|line| {
            (
                line["kind"].as_str().unwrap().to_owned(),
                line["description"].as_str().unwrap().to_owned(),
                line["amount"]["amount_minor"].as_i64().unwrap(),
            )
        })
        .collect()
}

pub(crate) fn compute_event(id: &str, subject: &str, time: &str, hours: i32) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "k8s", "type": "compute.hours",
           "subject": subject, "time": time, "data": {"hours": hours}})
}

/// The `compute` meter (SUM of `hours`) and the `metered` plan: seats at 10.00 in arrears
/// (prorated or not) and compute at 0.08 an hour.
/// A subscription of `customer` to [`metered_catalog`]'s plan since 2024-01-01; its id.
pub(crate) async fn metered_subscription(app: &BillingApp, customer: &str) -> String {
    app.post(
        "/api/v1/subscriptions",
        json!({"customer_id": customer, "plan": "metered", "start": "2024-01-01T00:00:00Z"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) async fn metered_catalog(app: &BillingApp, prorate_seats: bool) {
    app.post(
        "/api/v1/meters",
        json!({"key": "compute", "event_type": "compute.hours", "aggregation": "SUM",
               "value_property": "hours"}),
    )
    .await;
    app.post(
        "/api/v1/plans",
        json!({"key": "metered", "cadence": "monthly", "currency": "EUR", "prices": [
            {"key": "seats", "description": "Seats", "billing": "in_arrears",
             "prorate": prorate_seats,
             "pricing": {"model": "per_unit", "unit_amount": "10.00"}},
            {"key": "compute", "description": "Compute", "meter": "compute",
             "pricing": {"model": "per_unit", "unit_amount": "0.08"}}]}),
    )
    .await;
}

/// A new EUR customer taxed at 19 % VAT; returns its id.
pub(crate) async fn customer_with_vat(app: &BillingApp, external_id: &str) -> String {
    let customer = app
        .post(
            "/api/v1/customers",
            json!({"external_id": external_id, "name": external_id, "currency": "EUR", "invoicing": "per_subscription"}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    charge_vat(app, &customer, "19").await;
    customer
}

/// Makes a tax rate "VAT" of `rate_percent` and charges it to `customer` from now on.
pub(crate) async fn charge_vat(app: &BillingApp, customer: &str, rate_percent: &str) {
    let rate = app
        .post(
            "/api/v1/tax-rates",
            json!({"name": "VAT", "rate_percent": rate_percent}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = app
        .call(
            "PUT",
            &format!("/api/v1/customers/{customer}/tax-rate"),
            Some(json!({"tax_rate_id": rate})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn late_usage_is_taxed_on_the_next_invoice_or_a_standalone_one(database: Database) {
    // Arrange: VAT 19 %; seats 10.00 and compute 0.08 an hour, both in arrears; an active
    // subscription and one canceled at the end of January; January usage on both.
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    metered_catalog(&app, true).await;
    let customer = customer_with_vat(&app, "late").await;
    let mut subscriptions = Vec::new();
    for _ in 0..2 {
        subscriptions.push(metered_subscription(&app, &customer).await);
    }
    let (active, canceled) = (subscriptions[0].as_str(), subscriptions[1].as_str());
    app.post(
        &format!("/api/v1/subscriptions/{canceled}/changes"),
        json!({"cancel": "end_of_term", "at": "2024-01-20T00:00:00Z"}),
    )
    .await;
    app.post(
        "/api/v1/events",
        json!([
            compute_event("a1", active, "2024-01-10T00:00:00Z", 20),
            compute_event("b1", canceled, "2024-01-10T00:00:00Z", 5)
        ]),
    )
    .await;
    app.set_now("2024-02-01T01:00:00Z").await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(run["report"]["finalized"], 2, "{run}");
    let january = invoice_at(&app, active, "2024-02-01T00:00:00Z").await;
    // Seats 10.00 (VAT 1.90) and compute 20 × 0.08 = 1.60 (VAT 0.304 = 0.30).
    assert_eq!(january["totals"]["tax"]["amount_minor"], 220, "{january}");
    assert_eq!(january["total"]["amount_minor"], 1380);
    let last_of_canceled = invoice_at(&app, canceled, "2024-02-01T00:00:00Z").await;
    assert_eq!(last_of_canceled["reason"], "cancellation");
    let canceled_number = last_of_canceled["number"].as_i64().unwrap();

    // Act: 10 late hours (0.80 net) for January on each subscription, after finalization.
    app.set_now("2024-02-02T00:00:00Z").await;
    app.post(
        "/api/v1/events",
        json!([
            compute_event("a2", active, "2024-01-25T00:00:00Z", 10),
            compute_event("b2", canceled, "2024-01-25T00:00:00Z", 10)
        ]),
    )
    .await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(run["report"]["adjustments"], 2, "{run}");
    let workspace = app
        .store
        .workspace_named_or_created(
            &billow_store::WorkspaceName::parse("Acme").unwrap(),
            jiff::Timestamp::now(),
        )
        .await
        .unwrap()
        .id;
    for subscription in [active, canceled] {
        let recorded = app
            .store
            .adjustments(&workspace, subscription)
            .await
            .unwrap();
        assert_eq!(recorded.len(), 1, "{recorded:?}");
        // The difference before tax: 0.80, not 0.95.
        assert_eq!(recorded[0].amount_minor, 80);
    }

    // Assert (canceled): a standalone invoice holds the adjustment and its tax, numbered.
    app.set_now("2024-02-02T01:00:00Z").await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(run["report"]["finalized"], 1, "{run}");
    assert_eq!(run["report"]["adjustments"], 0, "{run}");
    let standalone = invoice_at(&app, canceled, "2024-02-02T00:00:00Z").await;
    assert_eq!(standalone["reason"], "late_usage", "{standalone}");
    assert_eq!(standalone["status"], "open");
    assert_eq!(standalone["number"], 3);
    assert_eq!(
        lines_of(&standalone),
        [
            (
                "adjustment".to_owned(),
                format!("Late usage for invoice #{canceled_number}"),
                80
            ),
            ("tax".to_owned(), "VAT 19%".to_owned(), 15),
        ]
    );
    assert_eq!(standalone["totals"]["subtotal"]["amount_minor"], 80);
    assert_eq!(standalone["totals"]["tax"]["amount_minor"], 15);
    assert_eq!(standalone["total"]["amount_minor"], 95);
    let payments = app
        .get(&format!(
            "/api/v1/invoices/{}/payments",
            standalone["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(payments["data"][0]["state"], "PaymentPending");
    let recorded = app.store.adjustments(&workspace, canceled).await.unwrap();
    assert_eq!(
        recorded[0].applied_invoice_id.as_deref(),
        standalone["id"].as_str()
    );
    let unchanged = invoice_at(&app, canceled, "2024-02-01T00:00:00Z").await;
    assert_eq!(unchanged["total"], last_of_canceled["total"]);

    // Assert (active): February's invoice bills the 0.80 as a line its VAT applies to.
    app.set_now("2024-03-01T01:00:00Z").await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(run["report"]["finalized"], 1, "{run}");
    let february = invoice_at(&app, active, "2024-03-01T00:00:00Z").await;
    let number = january["number"].as_i64().unwrap();
    assert_eq!(
        lines_of(&february),
        [
            ("recurring".to_owned(), "Seats".to_owned(), 1000),
            (
                "adjustment".to_owned(),
                format!("Late usage for invoice #{number}"),
                80
            ),
            // 1.90 on the seats and 0.152 = 0.15 on the adjustment.
            ("tax".to_owned(), "VAT 19%".to_owned(), 205),
        ]
    );
    assert_eq!(february["totals"]["subtotal"]["amount_minor"], 1080);
    assert_eq!(february["totals"]["tax"]["amount_minor"], 190 + 15);
    assert_eq!(february["total"]["amount_minor"], 1285);
    let recorded = app.store.adjustments(&workspace, active).await.unwrap();
    assert_eq!(
        recorded[0].applied_invoice_id.as_deref(),
        february["id"].as_str()
    );

    // Nothing more: no new adjustment, no second standalone invoice.
    let again = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(
        (
            &again["report"]["finalized"],
            &again["report"]["adjustments"],
            &again["report"]["drafted"]
        ),
        (&json!(0), &json!(0), &json!(0)),
        "{again}"
    );
    let all = app
        .get(&format!("/api/v1/invoices?subscription_id={canceled}"))
        .await;
    // Its last period's invoice and the standalone one (both prices bill in arrears).
    assert_eq!(all["data"].as_array().unwrap().len(), 2, "{all}");
    app.stop().await;
}

#[tokio::test]
async fn late_usage_is_taxed_on_the_next_invoice_or_a_standalone_one_on_sqlite() {
    late_usage_is_taxed_on_the_next_invoice_or_a_standalone_one(Database::sqlite("unused")).await;
}

#[tokio::test]
async fn late_usage_is_taxed_on_the_next_invoice_or_a_standalone_one_on_postgres() {
    let Some(database) = crate::month::postgres_database().await else {
        return;
    };
    late_usage_is_taxed_on_the_next_invoice_or_a_standalone_one(database).await;
}
