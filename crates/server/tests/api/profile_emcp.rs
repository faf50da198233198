//! The EMCP profile (docs/profiles/emcp.md) against a real server on both backends, over
//! invoices a billing run made: every field of the seed's two responses with its JSON type and
//! value, the `mongoose-paginate-v2` envelope on every kind of page number, errors, access.

use serde_json::{json, Value};

use crate::month::{on_both_databases, BillingApp};

const OWNER: &str = "6548a41138406c14db33b606";

/// Twelve monthly invoices of 33.00 EUR (January to December 2024, billed in advance) for
/// `team-1`, owned by [`OWNER`]; `team-2` subscribed to nothing. Returns their ids.
async fn arrange(app: &BillingApp) -> (String, String) {
    app.post(
        "/api/v1/plans",
        json!({"key": "team", "cadence": "monthly", "currency": "EUR", "prices": [
            {"key": "base", "description": "Team plan", "pricing": {"model": "flat", "amount": "33.00"}}]}),
    )
    .await;
    let team = app
        .post(
            "/api/v1/customers",
            json!({"external_id": "team-1", "name": "Team 1", "currency": "EUR", "owner": OWNER}),
        )
        .await;
    assert_eq!(team["owner"], OWNER);
    let other = app
        .post(
            "/api/v1/customers",
            json!({"external_id": "team-2", "name": "Team 2", "currency": "EUR"}),
        )
        .await;
    app.post(
        "/api/v1/subscriptions",
        json!({"customer_id": team["id"], "plan": "team", "start": "2024-01-01T00:00:00Z"}),
    )
    .await;
    app.set_now("2024-12-15T00:00:00Z").await;
    app.post("/api/v1/billing-runs", json!({})).await;
    (
        team["id"].as_str().unwrap().to_owned(),
        other["id"].as_str().unwrap().to_owned(),
    )
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

/// `2024-12-01T00:00:00.000Z`: JavaScript's `toISOString`.
fn is_javascript_iso(text: &Value) -> bool {
    let text = text.as_str().unwrap();
    text.len() == 24 && text.ends_with('Z') && text.as_bytes()[19] == b'.'
}

async fn the_last_invoice_has_every_field_of_the_seed(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    let (team, _) = arrange(&app).await;
    let native = app
        .get(&format!("/api/v1/customers/{team}/last-invoice"))
        .await;

    let last = app.get("/api/teams/team-1/last-invoice").await;
    assert_eq!(
        keys(&last),
        [
            "_id",
            "amount",
            "createdAt",
            "invoiceId",
            "invoicePdf",
            "status",
            "updatedAt",
            "user"
        ]
    );
    assert_eq!(last["_id"], native["id"]);
    assert_eq!(
        last["invoiceId"], "12",
        "billow's number while no provider id exists"
    );
    assert_eq!(last["user"], OWNER);
    assert_eq!(last["status"], "open");
    assert_eq!(
        last["amount"],
        json!(3300),
        "the total in minor units, a JSON integer"
    );
    assert!(last["amount"].is_i64());
    assert_eq!(last["invoicePdf"], Value::Null);
    assert!(is_javascript_iso(&last["createdAt"]), "{last}");
    assert!(is_javascript_iso(&last["updatedAt"]), "{last}");
    // By billow's id as by the external id.
    assert_eq!(
        app.get(&format!("/api/teams/{team}/last-invoice")).await,
        last
    );

    // Paid: the status follows, and so does updatedAt.
    app.set_now("2024-12-20T10:11:12.345Z").await;
    let id = last["_id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/invoices/{id}/payments"),
        json!({"state": "Paid"}),
    )
    .await;
    let paid = app.get("/api/teams/team-1/last-invoice").await;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["updatedAt"], "2024-12-20T10:11:12.345Z");
    assert_eq!(paid["createdAt"], last["createdAt"]);
    app.stop().await;
}

async fn the_history_pages_as_mongoose_paginate_does(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    let (team, _) = arrange(&app).await;
    let native = app
        .get(&format!(
            "/api/v1/customers/{team}/billing-history?limit=100"
        ))
        .await;
    let native_ids: Vec<&Value> = native["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|invoice| &invoice["id"])
        .collect();
    assert_eq!(native_ids.len(), 12);

    let first = app.get("/api/teams/team-1/billing-history").await;
    assert_eq!(
        keys(&first),
        [
            "docs",
            "hasNextPage",
            "hasPrevPage",
            "limit",
            "nextPage",
            "page",
            "pagingCounter",
            "prevPage",
            "totalDocs",
            "totalPages"
        ]
    );
    let docs = first["docs"].as_array().unwrap();
    assert_eq!(docs.len(), 10);
    assert_eq!(keys(&docs[0]), ["_id", "amount", "invoicePdf", "status"]);
    assert_eq!(docs[0]["amount"], json!(3300));
    assert_eq!(docs[0]["status"], "open");
    assert_eq!(docs[0]["invoicePdf"], Value::Null);
    let ids: Vec<&Value> = docs.iter().map(|doc| &doc["_id"]).collect();
    assert_eq!(ids, native_ids[..10], "newest first");
    assert_eq!(
        (
            &first["totalDocs"],
            &first["limit"],
            &first["totalPages"],
            &first["page"]
        ),
        (&json!(12), &json!(10), &json!(2), &json!(1))
    );
    assert_eq!(first["pagingCounter"], 1);
    assert_eq!(
        (&first["hasPrevPage"], &first["hasNextPage"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(
        (&first["prevPage"], &first["nextPage"]),
        (&Value::Null, &json!(2))
    );

    let second = app.get("/api/teams/team-1/billing-history?page=2").await;
    let ids: Vec<&Value> = second["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|doc| &doc["_id"])
        .collect();
    assert_eq!(ids, native_ids[10..]);
    assert_eq!(second["pagingCounter"], 11);
    assert_eq!(
        (&second["hasPrevPage"], &second["hasNextPage"]),
        (&json!(true), &json!(false))
    );
    assert_eq!(
        (&second["prevPage"], &second["nextPage"]),
        (&json!(1), &Value::Null)
    );

    // Zero and negative pages are page 1; a fraction is cut; the first of several counts.
    for page in ["0", "-4", "1.9", "%201", "1&page=2"] {
        let answer = app
            .get(&format!("/api/teams/team-1/billing-history?page={page}"))
            .await;
        assert_eq!(answer, first, "page={page}");
    }
    assert_eq!(
        app.get("/api/teams/team-1/billing-history?page=2.5").await,
        second
    );
    // Past the last page: empty, its number kept, a previous page.
    let past = app.get("/api/teams/team-1/billing-history?page=7").await;
    assert_eq!(past["docs"], json!([]));
    assert_eq!(
        (&past["page"], &past["totalPages"], &past["totalDocs"]),
        (&json!(7), &json!(2), &json!(12))
    );
    assert_eq!(past["pagingCounter"], 61);
    assert_eq!(
        (&past["prevPage"], &past["nextPage"]),
        (&json!(6), &Value::Null)
    );
    assert_eq!(
        (&past["hasPrevPage"], &past["hasNextPage"]),
        (&json!(true), &json!(false))
    );
    // Not a number: the library's NaN, which MongoDB refuses; a 400 here.
    for page in ["abc", "", "-"] {
        let (status, body) = app
            .call(
                "GET",
                &format!("/api/teams/team-1/billing-history?page={page}"),
                None,
            )
            .await;
        assert_eq!(status, 400, "page={page}: {body}");
        assert!(body["message"].as_str().unwrap().contains("page"), "{body}");
    }
    app.stop().await;
}

async fn an_empty_history_and_errors_in_emcp_shape(database: billow_store::Database) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    let (team, other) = arrange(&app).await;
    let empty = app.get("/api/teams/team-2/billing-history").await;
    assert_eq!(
        empty,
        json!({"docs": [], "totalDocs": 0, "limit": 10, "totalPages": 1, "page": 1,
               "pagingCounter": 1, "hasPrevPage": false, "hasNextPage": false,
               "prevPage": null, "nextPage": null})
    );
    let (status, body) = app
        .call("GET", "/api/teams/team-2/last-invoice", None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(keys(&body), ["message"]);
    for path in [
        "/api/teams/nobody/last-invoice",
        "/api/teams/nobody/billing-history",
        "/api/teams/a%00b/last-invoice",
    ] {
        let (status, body) = app.call("GET", path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body["message"].is_string(), "{body}");
    }
    // No credential: 401 in the same shape.
    let (status, body) = app
        .call_as(
            "bk_wrong",
            "GET",
            "/api/teams/team-1/last-invoice",
            None,
            "application/json",
        )
        .await;
    assert_eq!(status, 401);
    assert!(body["message"].is_string(), "{body}");
    // A customer token reads its own team, and no other.
    let token = app
        .post(&format!("/api/v1/customers/{team}/tokens"), json!({}))
        .await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, own) = app
        .call_as(
            &token,
            "GET",
            "/api/teams/team-1/last-invoice",
            None,
            "application/json",
        )
        .await;
    assert_eq!(status, 200, "{own}");
    assert_eq!(own["amount"], 3300);
    for path in [
        format!("/api/teams/{other}/billing-history"),
        "/api/teams/team-2/last-invoice".to_owned(),
    ] {
        let (status, body) = app
            .call_as(&token, "GET", &path, None, "application/json")
            .await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    app.stop().await;
}

on_both_databases!(
    the_last_invoice_has_every_field_of_the_seed,
    the_history_pages_as_mongoose_paginate_does,
    an_empty_history_and_errors_in_emcp_shape,
);

#[tokio::test]
async fn a_profile_switched_off_is_an_unknown_path() {
    use axum::http::Method;
    use billow_server::profiles::Profiles;
    use billow_server::AppState;

    let (store, _directory) = crate::helpers::sqlite_store().await;
    let off = billow_server::router(AppState::new(store.clone()).with_profiles(Profiles::none()));
    let response = crate::helpers::send(off, Method::GET, "/api/teams/team-1/last-invoice").await;
    assert_eq!(response.status, 404);
    assert_eq!(response.content_type(), billow_server::PROBLEM_JSON);
    let on = billow_server::router(AppState::new(store).with_profiles(Profiles::all()));
    let response = crate::helpers::send(on, Method::GET, "/api/teams/team-1/last-invoice").await;
    assert_eq!(response.status, 401, "served, and asking for a credential");
}
