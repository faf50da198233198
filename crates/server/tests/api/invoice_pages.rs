//! The invoice lists (`GET /api/v1/invoices`, `GET /api/v1/customers/{id}/billing-history`) page
//! with `starting_after` and say whether another page follows (`has_more`), as every native list
//! does; `cursor`, their former name, is still taken
//! for one release, and both with different values is a 422 naming `cursor`. Over real HTTP, on
//! SQLite and PostgreSQL.

use billow_store::Database;
use serde_json::{json, Value};

use crate::billing::{customer_with_vat, metered_catalog, metered_subscription};
use crate::month::{on_both_databases, BillingApp};

/// The ids of a page's invoices, in order.
fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap_or_else(|| panic!("no data in {page}"))
        .iter()
        .map(|invoice| invoice["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A customer with a metered subscription since 2024-01-01, billed through March: three
/// finalized invoices (February 1st, March 1st, April 1st). Returns the app and the customer.
async fn three_invoices(database: Database) -> (BillingApp, String) {
    let app = BillingApp::spawn(database, "2024-01-01T00:00:00Z").await;
    metered_catalog(&app, false).await;
    let customer = customer_with_vat(&app, "paged").await;
    metered_subscription(&app, &customer).await;
    app.set_now("2024-04-01T01:00:00Z").await;
    let run = app.post("/api/v1/billing-runs", json!({})).await;
    assert_eq!(run["report"]["finalized"], 3, "{run}");
    (app, customer)
}

/// The two lists of a customer's invoices, each ready for more query parameters.
fn invoice_lists(customer: &str) -> [String; 2] {
    [
        format!("/api/v1/invoices?customer_id={customer}&"),
        format!("/api/v1/customers/{customer}/billing-history?"),
    ]
}

async fn invoice_lists_page_with_starting_after(database: Database) {
    // Arrange: every invoice, newest first, in one page.
    let (app, customer) = three_invoices(database).await;
    let lists = invoice_lists(&customer);
    for list in lists {
        let all = ids(&app.get(&format!("{list}limit=100")).await);
        assert_eq!(all.len(), 3, "{list}: {all:?}");

        // Act: two pages of two.
        let first = app.get(&format!("{list}limit=2")).await;
        let next = first["next_cursor"].as_str().unwrap().to_owned();
        let second = app
            .get(&format!("{list}limit=2&starting_after={next}"))
            .await;

        let exactly = app.get(&format!("{list}limit=3")).await;

        // Assert.
        assert_eq!(ids(&first), all[..2], "{list}");
        assert_eq!(first["has_more"], true, "{list}: {first}");
        assert_eq!(next, all[1], "{list}");
        assert_eq!(ids(&second), all[2..], "{list}");
        assert_eq!(second["has_more"], false, "{list}: {second}");
        assert_eq!(second["next_cursor"], Value::Null, "{list}");
        // A page that ends the list exactly says so: no cursor to an empty page.
        assert_eq!(ids(&exactly), all, "{list}");
        assert_eq!(exactly["has_more"], false, "{list}: {exactly}");
        assert_eq!(exactly["next_cursor"], Value::Null, "{list}: {exactly}");
    }
    app.stop().await;
}

async fn cursor_is_still_taken_for_one_release(database: Database) {
    let (app, customer) = three_invoices(database).await;
    let lists = invoice_lists(&customer);
    for list in lists {
        let all = ids(&app.get(&format!("{list}limit=100")).await);
        let after_first = &all[0];

        let by_alias = app
            .get(&format!("{list}limit=2&cursor={after_first}"))
            .await;
        let by_both = app
            .get(&format!(
                "{list}limit=2&cursor={after_first}&starting_after={after_first}"
            ))
            .await;

        assert_eq!(ids(&by_alias), all[1..], "{list}");
        assert_eq!(by_both, by_alias, "{list}: the same value under both names");
    }
    app.stop().await;
}

async fn starting_after_and_cursor_that_differ_are_a_422_naming_cursor(database: Database) {
    let (app, customer) = three_invoices(database).await;
    let all = ids(&app.get("/api/v1/invoices?limit=100").await);
    let (first, second) = (&all[0], &all[1]);
    let lists = invoice_lists(&customer);
    for list in lists {
        let path = format!("{list}starting_after={first}&cursor={second}");

        let (status, content_type, problem) = app
            .call_with_content_type(&app.key, "GET", &path, None, "application/json")
            .await;

        assert_eq!(status, 422, "{path}: {problem}");
        assert_eq!(content_type, "application/problem+json", "{path}");
        assert_eq!(
            problem["type"], "urn:billow:problem:validation",
            "{problem}"
        );
        assert_eq!(problem["status"], 422, "{problem}");
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|error| error["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["cursor"], "{problem}");
    }
    app.stop().await;
}

on_both_databases!(
    invoice_lists_page_with_starting_after,
    cursor_is_still_taken_for_one_release,
    starting_after_and_cursor_that_differ_are_a_422_naming_cursor,
);
