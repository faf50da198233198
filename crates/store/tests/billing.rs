//! The billing repositories, run against both backends like `store.rs`: each check is
//! an `async fn(Store)`, called once with a fresh SQLite file and once with a fresh PostgreSQL
//! database.

#[macro_use]
mod support;

use billow_core::credit::CreditGrant;
use billow_core::scenario::{DiscountSpec, InvoiceReason, PlanSpec};
use billow_core::{Currency, RoundingMode};
use billow_store::billing::{
    AdjustmentCredit, AdjustmentRecord, BillingWrites, Finalization, Finalized,
};
use billow_store::catalog::{MeterRecord, PlanRecord, PlanVersionRecord};
use billow_store::coupons::{CouponRecord, RedeemCouponError};
use billow_store::invoices::{
    CreditNoteRecord, InvoiceFilter, InvoiceRecord, InvoiceScope, InvoiceStatus,
};
use billow_store::subscriptions::{
    CustomerSpecRecord, SubscriptionChangeRecord, SubscriptionRecord, SubscriptionStatus,
};
use billow_store::{AdjustmentId, BillingStoreError, CustomerId, Store, WorkspaceId};
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde_json::json;

/// A billing core spec from its JSON.
fn typed<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
    serde_json::from_value(json).unwrap()
}

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn acme() -> WorkspaceId {
    WorkspaceId::parse("ws_acme").unwrap()
}

fn invoice(id: &str, subscription_id: &str, issued_at: &str, total_minor: i64) -> InvoiceRecord {
    InvoiceRecord {
        id: id.into(),
        number: None,
        customer_id: "cus_1".into(),
        invoice_key: subscription_id.to_owned(),
        scope: InvoiceScope::Subscription,
        subscriptions: vec![subscription_id.into()],
        plan_version_id: "pv_1".into(),
        reason: InvoiceReason::PeriodEnd,
        issued_at: at(issued_at),
        period_start: at("2024-01-01T00:00:00Z"),
        period_end: at("2024-02-01T00:00:00Z"),
        status: InvoiceStatus::Draft,
        currency: Currency::from_code("USD").unwrap(),
        rounding: RoundingMode::HalfUp,
        total_minor,
        amount_before_tax_minor: total_minor,
        lines: json!([{"number": 1, "amount": total_minor}]),
        totals: json!({"total": total_minor}),
        credit_usage: json!([]),
        created_at: at(issued_at),
        finalized_at: None,
        due_at: None,
        credited_minor: 0,
        updated_at: at(issued_at),
    }
}

fn finalized(mut record: InvoiceRecord) -> InvoiceRecord {
    record.status = InvoiceStatus::Open;
    record.finalized_at = Some(record.issued_at);
    record
}

async fn editing_a_plan_adds_a_version_and_keeps_the_old_one(store: Store) {
    let workspace = acme();
    let plan = PlanRecord {
        id: "plan_1".into(),
        key: "team".into(),
        current_version_id: "pv_1".into(),
        created_at: at("2024-01-01T00:00:00Z"),
    };
    let first = PlanVersionRecord {
        id: "pv_1".into(),
        plan_id: "plan_1".into(),
        version: 1,
        spec: typed(json!({"key": "team", "cadence": "monthly", "prices": []})),
        created_at: plan.created_at,
    };
    store.insert_plan(&workspace, &plan, &first).await.unwrap();

    let second_spec: PlanSpec = typed(json!({"key": "team", "cadence": "annual", "prices": []}));
    let version = store
        .add_plan_version(
            &workspace,
            "plan_1",
            "pv_2",
            &second_spec,
            at("2024-02-01T00:00:00Z"),
        )
        .await
        .unwrap();

    assert_eq!(version, 2);
    let loaded = store.plan(&workspace, "team").await.unwrap().unwrap();
    assert_eq!(loaded.current_version_id, "pv_2");
    let versions = store.plan_versions(&workspace, "plan_1").await.unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0], first);
    assert_eq!(versions[1].spec, second_spec);
    assert!(matches!(
        store
            .insert_plan(
                &workspace,
                &PlanRecord {
                    id: "plan_2".into(),
                    current_version_id: "pv_3".into(),
                    ..plan
                },
                &PlanVersionRecord {
                    id: "pv_3".into(),
                    plan_id: "plan_2".into(),
                    ..first
                }
            )
            .await,
        Err(BillingStoreError::Duplicate)
    ));
    let other = WorkspaceId::parse("ws_other").unwrap();
    assert_eq!(store.plan(&other, "plan_1").await.unwrap(), None);
}

async fn meters_are_unique_by_key_per_workspace(store: Store) {
    let meter = MeterRecord {
        id: "mtr_1".into(),
        key: "cpu".into(),
        spec: typed(
            json!({"key": "cpu", "event_type": "cpu", "aggregation": "SUM", "value_property": "cores"}),
        ),
        created_at: at("2024-01-01T00:00:00Z"),
    };
    store.insert_meter(&acme(), &meter).await.unwrap();
    let again = MeterRecord {
        id: "mtr_2".into(),
        ..meter.clone()
    };
    assert!(matches!(
        store.insert_meter(&acme(), &again).await,
        Err(BillingStoreError::Duplicate)
    ));
    let other = WorkspaceId::parse("ws_other").unwrap();
    store.insert_meter(&other, &again).await.unwrap();

    assert_eq!(store.meters(&acme()).await.unwrap(), vec![meter.clone()]);
    assert_eq!(store.meter(&acme(), "mtr_1").await.unwrap(), Some(meter));
}

async fn subscription_changes_are_kept_in_order(store: Store) {
    let workspace = acme();
    let subscription = SubscriptionRecord {
        id: "sub_1".into(),
        customer_id: "cus_1".into(),
        plan_id: "plan_1".into(),
        plan_version_id: "pv_1".into(),
        status: SubscriptionStatus::Active,
        spec: typed(
            json!({"id": "sub_1", "plan": "pv_1", "start": "2024-01-01T00:00:00Z", "quantity": "3"}),
        ),
        created_at: at("2024-01-01T00:00:00Z"),
    };
    store
        .insert_subscription(&workspace, &subscription)
        .await
        .unwrap();
    for (index, quantity) in [5, 7].into_iter().enumerate() {
        let change = SubscriptionChangeRecord {
            sequence: 0,
            at: at("2024-01-15T00:00:00Z"),
            spec: typed(json!({"at": "2024-01-15T00:00:00Z", "quantity": quantity})),
            created_at: at("2024-01-15T00:00:00Z"),
        };
        let sequence = store
            .add_subscription_change(
                &workspace,
                "sub_1",
                &change,
                SubscriptionStatus::Active,
                "pv_1",
            )
            .await
            .unwrap();
        assert_eq!(sequence, i64::try_from(index).unwrap() + 1);
    }
    let changes = store
        .subscription_changes(&workspace, "sub_1")
        .await
        .unwrap();
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1].spec.quantity, Some(Decimal::from(7)));
    assert_eq!(
        store.billed_customers(&workspace).await.unwrap(),
        vec!["cus_1".to_owned()]
    );
    assert_eq!(
        store.billed_workspaces().await.unwrap(),
        vec![workspace.clone()]
    );
    assert_eq!(
        store
            .subscriptions(&workspace, Some("cus_2"))
            .await
            .unwrap(),
        vec![]
    );
    let missing = SubscriptionChangeRecord {
        sequence: 0,
        at: at("2024-01-15T00:00:00Z"),
        spec: typed(json!({"at": "2024-01-15T00:00:00Z", "quantity": 1})),
        created_at: at("2024-01-15T00:00:00Z"),
    };
    assert!(matches!(
        store
            .add_subscription_change(
                &workspace,
                "sub_9",
                &missing,
                SubscriptionStatus::Active,
                "pv_1"
            )
            .await,
        Err(BillingStoreError::NotFound)
    ));
}

async fn finalizing_numbers_invoices_without_gaps_and_only_once(store: Store) {
    let workspace = acme();
    let draft = invoice("inv_1", "sub_1", "2024-02-01T00:00:00Z", 1000);
    assert!(store
        .upsert_draft_invoice(&workspace, &draft)
        .await
        .unwrap());
    let changed = InvoiceRecord {
        id: "inv_other".into(),
        total_minor: 1200,
        ..draft.clone()
    };
    assert!(store
        .upsert_draft_invoice(&workspace, &changed)
        .await
        .unwrap());
    let stored = store.invoice(&workspace, "inv_1").await.unwrap().unwrap();
    assert_eq!(stored.total_minor, 1200);

    let first = store
        .finalize_invoice(&workspace, &finalized(changed.clone()), &[])
        .await
        .unwrap();
    let again = store
        .finalize_invoice(&workspace, &finalized(changed.clone()), &[])
        .await
        .unwrap();
    let second = store
        .finalize_invoice(
            &workspace,
            &finalized(invoice("inv_2", "sub_1", "2024-03-01T00:00:00Z", 500)),
            &[],
        )
        .await
        .unwrap();

    assert_eq!(first, Finalized::Numbered(1));
    assert_eq!(again, Finalized::AlreadyFinal);
    assert_eq!(second, Finalized::Numbered(2));
    let open = store.invoice(&workspace, "inv_1").await.unwrap().unwrap();
    assert_eq!((open.number, open.status), (Some(1), InvoiceStatus::Open));
    // A finalized invoice is never replaced by a draft.
    assert!(!store
        .upsert_draft_invoice(&workspace, &draft)
        .await
        .unwrap());
    assert_eq!(
        store
            .invoice(&workspace, "inv_1")
            .await
            .unwrap()
            .unwrap()
            .total_minor,
        1200
    );
    let history = store.payment_states(&workspace, "inv_1").await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].state, "PaymentPending");
    // Another workspace has its own sequence.
    let other = WorkspaceId::parse("ws_other").unwrap();
    let numbered = store
        .finalize_invoice(
            &other,
            &finalized(invoice("inv_3", "sub_1", "2024-02-01T00:00:00Z", 1)),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(numbered, Finalized::Numbered(1));
}

async fn invoices_list_newest_first_with_filters_and_cursor(store: Store) {
    let workspace = acme();
    for (index, month) in ["02", "03", "04"].into_iter().enumerate() {
        let record = invoice(
            &format!("inv_{index}"),
            "sub_1",
            &format!("2024-{month}-01T00:00:00Z"),
            100,
        );
        store
            .finalize_invoice(&workspace, &finalized(record), &[])
            .await
            .unwrap();
    }
    store
        .upsert_draft_invoice(
            &workspace,
            &invoice("inv_9", "sub_1", "2024-05-01T00:00:00Z", 1),
        )
        .await
        .unwrap();

    let page = store
        .invoices(
            &workspace,
            &InvoiceFilter {
                status: Some(InvoiceStatus::Open),
                limit: 2,
                ..InvoiceFilter::default()
            },
        )
        .await
        .unwrap();
    let ids: Vec<&str> = page.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["inv_2", "inv_1"]);
    let next = store
        .invoices(
            &workspace,
            &InvoiceFilter {
                status: Some(InvoiceStatus::Open),
                before_id: Some("inv_1".into()),
                limit: 2,
                ..InvoiceFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].id, "inv_0");
    let march = store
        .invoices(
            &workspace,
            &InvoiceFilter {
                issued_from: Some(at("2024-03-01T00:00:00Z")),
                issued_to: Some(at("2024-04-01T00:00:00Z")),
                customer_id: Some("cus_1".into()),
                limit: 10,
                ..InvoiceFilter::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(march.len(), 1);
    assert_eq!(march[0].number, Some(2));
}

async fn credit_notes_never_exceed_the_invoice(store: Store) {
    let workspace = acme();
    let draft = invoice("inv_1", "sub_1", "2024-02-01T00:00:00Z", 1000);
    store
        .upsert_draft_invoice(&workspace, &draft)
        .await
        .unwrap();
    let note = |id: &str, total_minor| CreditNoteRecord {
        id: id.into(),
        invoice_id: "inv_1".into(),
        total_minor,
        lines: json!([]),
        reason: None,
        created_at: at("2024-02-02T00:00:00Z"),
    };
    assert!(matches!(
        store
            .insert_credit_note(&workspace, &note("cn_0", 100))
            .await,
        Err(BillingStoreError::Immutable)
    ));
    store
        .finalize_invoice(&workspace, &finalized(draft), &[])
        .await
        .unwrap();

    store
        .insert_credit_note(&workspace, &note("cn_1", 600))
        .await
        .unwrap();
    let error = store
        .insert_credit_note(&workspace, &note("cn_2", 401))
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        BillingStoreError::Exceeds {
            requested_minor: 401,
            available_minor: 400
        }
    ));
    store
        .insert_credit_note(&workspace, &note("cn_3", 400))
        .await
        .unwrap();
    assert_eq!(
        store.credit_notes(&workspace, "inv_1").await.unwrap().len(),
        2
    );
    // The refused note credited nothing: the invoice holds the two written.
    let credited = store.invoice(&workspace, "inv_1").await.unwrap().unwrap();
    assert_eq!(credited.credited_minor, 1000);
}

/// Twelve credit notes of 3.00 written at once on a 10.00 invoice: three fit, and the invoice
/// records exactly what those three credited (the row lock orders them; core adds each note).
async fn concurrent_credit_notes_never_exceed_the_invoice(store: Store) {
    const ATTEMPTS: usize = 12;
    let workspace = acme();
    let record = finalized(invoice("inv_1", "sub_1", "2024-02-01T00:00:00Z", 1000));
    store
        .finalize_invoice(&workspace, &record, &[])
        .await
        .unwrap();

    let attempts: Vec<_> = (0..ATTEMPTS)
        .map(|index| {
            let store = store.clone();
            let workspace = workspace.clone();
            tokio::spawn(async move {
                let note = CreditNoteRecord {
                    id: format!("cn_{index:02}").into(),
                    invoice_id: "inv_1".into(),
                    total_minor: 300,
                    lines: json!([]),
                    reason: None,
                    created_at: at("2024-02-02T00:00:00Z"),
                };
                store.insert_credit_note(&workspace, &note).await
            })
        })
        .collect();
    let mut written = 0;
    let mut refused = Vec::new();
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(()) => written += 1,
            Err(BillingStoreError::Exceeds {
                requested_minor,
                available_minor,
            }) => refused.push((requested_minor, available_minor)),
            Err(other) => panic!("{other:?}"),
        }
    }

    assert_eq!(written, 3);
    assert_eq!(refused, vec![(300, 100); ATTEMPTS - 3]);
    let notes = store.credit_notes(&workspace, "inv_1").await.unwrap();
    assert_eq!(notes.iter().map(|n| n.total_minor).sum::<i64>(), 900);
    let credited = store.invoice(&workspace, "inv_1").await.unwrap().unwrap();
    assert_eq!(credited.credited_minor, 900);
}

async fn a_batch_credits_negative_late_usage_within_what_is_left_on_the_invoice(store: Store) {
    // Arrange: invoice 1 (10.00) with 9.50 credited by hand; invoice 2 (5.00) void; three
    // pending negative adjustments of a canceled subscription.
    let workspace = acme();
    for (id, total_minor) in [("inv_1", 1000), ("inv_2", 500)] {
        let record = finalized(invoice(
            id,
            "sub_1",
            &format!("2024-0{}-01T00:00:00Z", &id[4..5]),
            total_minor,
        ));
        store
            .finalize_invoice(&workspace, &record, &[])
            .await
            .unwrap();
    }
    store
        .set_invoice_status(
            &workspace,
            "inv_2",
            &[InvoiceStatus::Open],
            InvoiceStatus::Void,
            at("2024-03-01T00:00:00Z"),
        )
        .await
        .unwrap();
    let note = |id: &str, invoice_id: &str, total_minor| CreditNoteRecord {
        id: id.into(),
        invoice_id: invoice_id.into(),
        total_minor,
        lines: json!([]),
        reason: None,
        created_at: at("2024-02-02T00:00:00Z"),
    };
    store
        .insert_credit_note(&workspace, &note("cn_hand", "inv_1", 950))
        .await
        .unwrap();
    for (id, source) in [("adj_1", "inv_1"), ("adj_2", "inv_1"), ("adj_3", "inv_2")] {
        let adjustment = AdjustmentRecord {
            id: id.into(),
            invoice_key: "sub_1".into(),
            source_invoice_id: source.into(),
            amount_minor: -40,
            applied_invoice_id: None,
            created_at: at("2024-02-02T00:00:00Z"),
        };
        store
            .insert_adjustment(&workspace, &adjustment)
            .await
            .unwrap();
    }
    let mut balances = store
        .credit_balances(
            &workspace,
            &["inv_1".into(), "inv_2".into(), "inv_none".into()],
        )
        .await
        .unwrap();
    balances.sort_by(|a, b| a.invoice_id.cmp(&b.invoice_id));
    let left: Vec<(&str, i64, i64, i64)> = balances
        .iter()
        .map(|b| {
            (
                b.invoice_id.as_str(),
                b.total_minor,
                b.credited_minor,
                b.available_minor(),
            )
        })
        .collect();
    assert_eq!(left, [("inv_1", 1000, 950, 50), ("inv_2", 500, 0, 0)]);

    // Act: a note that fits (48 of the 50 left), one that no longer fits (3 of the 2 then left),
    // and the void invoice's adjustment settled without a note.
    let credit = |adjustment: &str, source: &str, note| AdjustmentCredit {
        adjustment_id: adjustment.into(),
        source_invoice_id: source.into(),
        note,
    };
    let writes = BillingWrites {
        states: Vec::new(),
        seen: Vec::new(),
        credits: vec![
            credit("adj_1", "inv_1", Some(note("cn_1", "inv_1", 48))),
            credit("adj_2", "inv_1", Some(note("cn_2", "inv_1", 3))),
            credit("adj_3", "inv_2", None),
        ],
        ..BillingWrites::default()
    };
    let written = store
        .write_billing_batch(&workspace, &writes, None)
        .await
        .unwrap();

    // Assert.
    assert_eq!(written.credit_notes, 1);
    let notes: Vec<(String, i64)> = store
        .credit_notes(&workspace, "inv_1")
        .await
        .unwrap()
        .into_iter()
        .map(|n| (n.id.into_string(), n.total_minor))
        .collect();
    assert_eq!(
        notes,
        [("cn_1".to_owned(), 48), ("cn_hand".to_owned(), 950)]
    );
    let applied: Vec<(String, Option<String>)> = store
        .adjustments(&workspace, "sub_1")
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.id.into_string(), a.applied_invoice_id.map(String::from)))
        .collect();
    assert_eq!(
        applied,
        [
            ("adj_1".to_owned(), Some("inv_1".to_owned())),
            ("adj_2".to_owned(), None),
            ("adj_3".to_owned(), Some("inv_2".to_owned())),
        ]
    );
    // A settled adjustment is never credited twice, even by a note that fits.
    let twice = BillingWrites {
        credits: vec![credit("adj_1", "inv_1", Some(note("cn_1b", "inv_1", 1)))],
        ..BillingWrites::default()
    };
    let again = store
        .write_billing_batch(&workspace, &twice, None)
        .await
        .unwrap();
    assert_eq!(again.credit_notes, 0);
    assert_eq!(
        store.credit_notes(&workspace, "inv_1").await.unwrap().len(),
        2
    );
    // The invoice holds what its two notes credited, by hand and by the batch.
    let invoice = store.invoice(&workspace, "inv_1").await.unwrap().unwrap();
    assert_eq!(invoice.credited_minor, 950 + 48);
}

async fn payment_states_build_a_history_and_paid_closes_the_invoice(store: Store) {
    let workspace = acme();
    let record = finalized(invoice("inv_1", "sub_1", "2024-02-01T00:00:00Z", 1000));
    store
        .finalize_invoice(&workspace, &record, &[])
        .await
        .unwrap();

    store
        .add_payment_state(
            &workspace,
            "inv_1",
            "PaymentInProgress",
            Some("wire sent"),
            at("2024-02-03T00:00:00Z"),
        )
        .await
        .unwrap();
    store
        .add_payment_state(
            &workspace,
            "inv_1",
            "Paid",
            None,
            at("2024-02-04T00:00:00Z"),
        )
        .await
        .unwrap();

    let history = store.payment_states(&workspace, "inv_1").await.unwrap();
    let states: Vec<&str> = history.iter().map(|s| s.state.as_str()).collect();
    assert_eq!(states, ["PaymentPending", "PaymentInProgress", "Paid"]);
    assert_eq!(history[1].message.as_deref(), Some("wire sent"));
    assert_eq!(
        store
            .invoice(&workspace, "inv_1")
            .await
            .unwrap()
            .unwrap()
            .status,
        InvoiceStatus::Paid
    );
    assert!(matches!(
        store
            .set_invoice_status(
                &workspace,
                "inv_1",
                &[InvoiceStatus::Open],
                InvoiceStatus::Void,
                at("2024-03-01T00:00:00Z"),
            )
            .await,
        Err(BillingStoreError::Immutable)
    ));
    assert!(matches!(
        store
            .add_payment_state(
                &workspace,
                "inv_9",
                "Paid",
                None,
                at("2024-02-04T00:00:00Z")
            )
            .await,
        Err(BillingStoreError::NotFound)
    ));
}

async fn a_lease_is_held_by_one_holder_until_it_expires(store: Store) {
    let workspace = acme();
    let now = at("2024-02-01T00:00:00Z");
    let until = at("2024-02-01T00:01:00Z");

    assert!(store
        .acquire_billing_lease(&workspace, "cus_1", "node-a", now, until)
        .await
        .unwrap());
    assert!(!store
        .acquire_billing_lease(&workspace, "cus_1", "node-b", now, until)
        .await
        .unwrap());
    assert!(store
        .acquire_billing_lease(&workspace, "cus_2", "node-b", now, until)
        .await
        .unwrap());
    // Expired: another holder takes it over.
    let later = at("2024-02-01T00:01:00Z");
    assert!(store
        .acquire_billing_lease(
            &workspace,
            "cus_1",
            "node-b",
            later,
            at("2024-02-01T00:02:00Z")
        )
        .await
        .unwrap());
    store
        .release_billing_lease(&workspace, "cus_1", "node-b")
        .await
        .unwrap();
    assert!(store
        .acquire_billing_lease(&workspace, "cus_1", "node-a", later, until)
        .await
        .unwrap());
}

async fn adjustments_are_marked_applied_by_the_invoice_that_bills_them(store: Store) {
    let workspace = acme();
    let adjustment = billow_store::billing::AdjustmentRecord {
        id: "adj_1".into(),
        invoice_key: "sub_1".into(),
        source_invoice_id: "inv_1".into(),
        amount_minor: 250,
        applied_invoice_id: None,
        created_at: at("2024-02-10T00:00:00Z"),
    };
    store
        .insert_adjustment(&workspace, &adjustment)
        .await
        .unwrap();
    let next = finalized(invoice("inv_2", "sub_1", "2024-03-01T00:00:00Z", 1250));
    store
        .finalize_invoice(&workspace, &next, &["adj_1".into()])
        .await
        .unwrap();

    let adjustments = store.adjustments(&workspace, "sub_1").await.unwrap();
    assert_eq!(adjustments[0].applied_invoice_id.as_deref(), Some("inv_2"));
}

fn finalization(record: InvoiceRecord, replaces_draft: bool, applied: &[&str]) -> Finalization {
    Finalization {
        invoice: finalized(record).into_text(),
        replaces_draft,
        applied_adjustment_ids: applied.iter().map(|id| AdjustmentId::from(*id)).collect(),
    }
}

async fn a_batch_is_written_in_one_transaction_with_consecutive_numbers(store: Store) {
    let workspace = acme();
    // A draft stored by an earlier run, finalized by this batch under its own id.
    let draft = invoice("inv_draft", "sub_1", "2024-02-01T00:00:00Z", 1000);
    assert!(store
        .upsert_draft_invoice(&workspace, &draft)
        .await
        .unwrap());
    let adjustment = billow_store::billing::AdjustmentRecord {
        id: "adj_1".into(),
        invoice_key: "sub_2".into(),
        source_invoice_id: "inv_old".into(),
        amount_minor: 250,
        applied_invoice_id: None,
        created_at: at("2024-02-01T00:00:00Z"),
    };
    let writes = BillingWrites {
        states: Vec::new(),
        seen: Vec::new(),
        drafts: vec![invoice("inv_later", "sub_3", "2024-03-01T00:00:00Z", 700).into_text()],
        finalize: vec![
            finalization(
                InvoiceRecord {
                    total_minor: 1100,
                    ..draft.clone()
                },
                true,
                &[],
            ),
            finalization(
                invoice("inv_2", "sub_2", "2024-02-01T00:00:00Z", 2250),
                false,
                &["adj_1"],
            ),
            finalization(
                invoice("inv_3", "sub_3", "2024-02-01T00:00:00Z", 300),
                false,
                &[],
            ),
        ],
        adjustments: vec![adjustment],
        credits: vec![],
    };

    let written = store
        .write_billing_batch(&workspace, &writes, None)
        .await
        .unwrap();

    assert_eq!(written.numbers, vec![Some(1), Some(2), Some(3)]);
    assert_eq!(written.drafted, 1);
    let replaced = store
        .invoice(&workspace, "inv_draft")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (replaced.number, replaced.status, replaced.total_minor),
        (Some(1), InvoiceStatus::Open, 1100)
    );
    let third = store.invoice(&workspace, "inv_3").await.unwrap().unwrap();
    assert_eq!((third.number, third.status), (Some(3), InvoiceStatus::Open));
    let later = store
        .invoice(&workspace, "inv_later")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((later.number, later.status), (None, InvoiceStatus::Draft));
    let adjustments = store.adjustments(&workspace, "sub_2").await.unwrap();
    assert_eq!(adjustments.len(), 1);
    assert_eq!(adjustments[0].applied_invoice_id.as_deref(), Some("inv_2"));
    for id in ["inv_draft", "inv_2", "inv_3"] {
        let history = store.payment_states(&workspace, id).await.unwrap();
        assert_eq!(history.len(), 1, "{id}");
        assert_eq!(history[0].state, "PaymentPending");
        assert_eq!(history[0].at, at("2024-02-01T00:00:00Z"));
    }
    // The sequence continues after the batch.
    let next = store
        .finalize_invoice(
            &workspace,
            &finalized(invoice("inv_4", "sub_4", "2024-02-01T00:00:00Z", 1)),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(next, Finalized::Numbered(4));
    let summaries = store
        .invoice_summaries_of_customers(&workspace, &["cus_1".into()])
        .await
        .unwrap();
    assert_eq!(summaries.len(), 5);
    let summary = summaries.iter().find(|s| s.id == "inv_2").unwrap();
    assert_eq!(
        (
            summary.number,
            summary.amount_before_tax_minor,
            summary.status
        ),
        (Some(2), 2250, InvoiceStatus::Open)
    );
}

async fn a_batch_that_finds_an_invoice_already_final_uses_no_number_for_it(store: Store) {
    let workspace = acme();
    // Another run finalized sub_1's February invoice (number 1) after this run read its draft.
    let draft = invoice("inv_draft", "sub_1", "2024-02-01T00:00:00Z", 1000);
    assert!(store
        .upsert_draft_invoice(&workspace, &draft)
        .await
        .unwrap());
    assert_eq!(
        store
            .finalize_invoice(&workspace, &finalized(draft.clone()), &[])
            .await
            .unwrap(),
        Finalized::Numbered(1)
    );
    // And issued sub_2's with another id.
    assert_eq!(
        store
            .finalize_invoice(
                &workspace,
                &finalized(invoice("inv_theirs", "sub_2", "2024-02-01T00:00:00Z", 5)),
                &[],
            )
            .await
            .unwrap(),
        Finalized::Numbered(2)
    );
    let writes = BillingWrites {
        states: Vec::new(),
        seen: Vec::new(),
        drafts: vec![],
        finalize: vec![
            finalization(
                invoice("inv_a", "sub_0", "2024-02-01T00:00:00Z", 10),
                false,
                &[],
            ),
            finalization(draft.clone(), true, &[]),
            finalization(
                invoice("inv_mine", "sub_2", "2024-02-01T00:00:00Z", 9),
                false,
                &[],
            ),
            finalization(
                invoice("inv_b", "sub_3", "2024-02-01T00:00:00Z", 20),
                false,
                &[],
            ),
        ],
        adjustments: vec![],
        credits: vec![],
    };

    let written = store
        .write_billing_batch(&workspace, &writes, None)
        .await
        .unwrap();

    assert_eq!(written.numbers, vec![Some(3), None, None, Some(4)]);
    assert!(store
        .invoice(&workspace, "inv_mine")
        .await
        .unwrap()
        .is_none());
    let theirs = store
        .invoice(&workspace, "inv_theirs")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((theirs.number, theirs.total_minor), (Some(2), 5));
    let b = store.invoice(&workspace, "inv_b").await.unwrap().unwrap();
    assert_eq!(b.number, Some(4));
    let numbers: Vec<i64> = store
        .invoice_summaries_of_customers(&workspace, &["cus_1".into()])
        .await
        .unwrap()
        .into_iter()
        .filter_map(|s| s.number)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(numbers, vec![1, 2, 3, 4]);
}

async fn leases_are_taken_and_released_in_bulk(store: Store) {
    let workspace = acme();
    let now = at("2024-02-01T00:00:00Z");
    let until = at("2024-02-01T00:01:00Z");
    let ids: Vec<CustomerId> = ["cus_1", "cus_2", "cus_3"].map(CustomerId::from).to_vec();
    assert!(store
        .acquire_billing_lease(&workspace, "cus_2", "node-b", now, until)
        .await
        .unwrap());

    let held = store
        .acquire_billing_leases(&workspace, &ids, "node-a", now, until)
        .await
        .unwrap();

    assert_eq!(held, vec!["cus_1".to_owned(), "cus_3".to_owned()]);
    // Held again by the same holder (a renewal); still not cus_2.
    let again = store
        .acquire_billing_leases(&workspace, &ids, "node-a", now, until)
        .await
        .unwrap();
    assert_eq!(again, held);
    store
        .release_billing_leases(&workspace, &ids, "node-a")
        .await
        .unwrap();
    // node-b's lease on cus_2 survived node-a's release; the others are free.
    let taken = store
        .acquire_billing_leases(&workspace, &ids, "node-c", now, until)
        .await
        .unwrap();
    assert_eq!(taken, vec!["cus_1".to_owned(), "cus_3".to_owned()]);
}

fn coupon(code: &str, max_redemptions: Option<i64>) -> CouponRecord {
    CouponRecord {
        code: code.to_owned(),
        name: Some("Launch".to_owned()),
        terms: json!({"percent_off": "10", "duration": "forever"}),
        currency: None,
        max_redemptions,
        redeem_by: None,
        times_redeemed: 0,
        archived_at: None,
        created_at: at("2024-01-01T00:00:00Z"),
    }
}

fn discount(id: &str, customer_id: &str) -> CustomerSpecRecord<DiscountSpec> {
    CustomerSpecRecord {
        id: id.to_owned(),
        customer_id: customer_id.into(),
        spec: typed(
            json!({"key": id, "percent_off": "10", "duration": "forever", "start": "2024-01-01T00:00:00Z"}),
        ),
        created_at: at("2024-01-02T00:00:00Z"),
    }
}

async fn coupons_are_unique_by_code_per_workspace_and_archived_once(store: Store) {
    let workspace = acme();
    let other = WorkspaceId::parse("ws_other").unwrap();
    store
        .insert_coupon(&workspace, &coupon("LAUNCH10", None))
        .await
        .unwrap();

    let again = store
        .insert_coupon(&workspace, &coupon("LAUNCH10", Some(5)))
        .await;
    store
        .insert_coupon(&other, &coupon("LAUNCH10", Some(5)))
        .await
        .unwrap();
    let archived = store
        .archive_coupon(&workspace, "LAUNCH10", at("2024-02-01T00:00:00Z"))
        .await
        .unwrap();
    let archived_again = store
        .archive_coupon(&workspace, "LAUNCH10", at("2024-03-01T00:00:00Z"))
        .await
        .unwrap();

    assert!(
        matches!(again, Err(BillingStoreError::Duplicate)),
        "{again:?}"
    );
    assert_eq!(archived.archived_at, Some(at("2024-02-01T00:00:00Z")));
    assert_eq!(archived_again.archived_at, Some(at("2024-02-01T00:00:00Z")));
    assert_eq!(archived.terms, coupon("LAUNCH10", None).terms);
    let listed = store.coupons(&workspace, 10, None).await.unwrap();
    assert_eq!(listed.items, [archived]);
    assert!(!listed.has_more);
    let theirs = store.coupon(&other, "LAUNCH10").await.unwrap().unwrap();
    assert_eq!(theirs.max_redemptions, Some(5));
    assert_eq!(theirs.archived_at, None);
    assert!(matches!(
        store
            .archive_coupon(&workspace, "NOPE", at("2024-02-01T00:00:00Z"))
            .await,
        Err(BillingStoreError::NotFound)
    ));
}

async fn a_redemption_stores_the_discount_and_counts_it_or_says_why_not(store: Store) {
    let workspace = acme();
    let mut expiring = coupon("EARLY", None);
    expiring.redeem_by = Some(at("2024-01-15T00:00:00Z"));
    for record in [coupon("ONE", Some(1)), coupon("GONE", None), expiring] {
        store.insert_coupon(&workspace, &record).await.unwrap();
    }
    store
        .archive_coupon(&workspace, "GONE", at("2024-01-01T00:00:00Z"))
        .await
        .unwrap();
    let now = at("2024-01-20T00:00:00Z");

    store
        .redeem_coupon(&workspace, "ONE", &discount("disc_1", "cus_1"), now)
        .await
        .unwrap();
    let exhausted = store
        .redeem_coupon(&workspace, "ONE", &discount("disc_2", "cus_2"), now)
        .await;
    let archived = store
        .redeem_coupon(&workspace, "GONE", &discount("disc_3", "cus_1"), now)
        .await;
    let expired = store
        .redeem_coupon(&workspace, "EARLY", &discount("disc_4", "cus_1"), now)
        .await;
    let unknown = store
        .redeem_coupon(&workspace, "NOPE", &discount("disc_5", "cus_1"), now)
        .await;

    assert!(
        matches!(
            exhausted,
            Err(RedeemCouponError::Exhausted { max_redemptions: 1 })
        ),
        "{exhausted:?}"
    );
    assert!(
        matches!(archived, Err(RedeemCouponError::Archived)),
        "{archived:?}"
    );
    assert!(
        matches!(expired, Err(RedeemCouponError::Expired { redeem_by }) if redeem_by == at("2024-01-15T00:00:00Z")),
        "{expired:?}"
    );
    assert!(
        matches!(unknown, Err(RedeemCouponError::Unknown)),
        "{unknown:?}"
    );
    let discounts = store
        .customer_specs::<DiscountSpec>(&workspace, None)
        .await
        .unwrap();
    assert_eq!(discounts, [discount("disc_1", "cus_1")]);
    let one = store.coupon(&workspace, "ONE").await.unwrap().unwrap();
    assert_eq!(one.times_redeemed, 1);
    assert_eq!(
        store
            .coupon_redemptions(&workspace, Some("cus_1"))
            .await
            .unwrap(),
        [("disc_1".to_owned(), "ONE".to_owned())]
    );
}

/// Five coupons, two created at the same instant, listed two a page: oldest first, ties by
/// code, each page after the last code of the one before.
async fn coupons_are_listed_in_pages_oldest_first(store: Store) {
    let workspace = acme();
    let created = [
        ("D", "2024-01-01T00:00:00Z"),
        ("B", "2024-01-02T00:00:00Z"),
        ("A", "2024-01-03T00:00:00Z"),
        ("C", "2024-01-03T00:00:00Z"),
        ("E", "2024-01-04T00:00:00Z"),
    ];
    for (code, created_at) in created {
        let mut record = coupon(code, None);
        record.created_at = at(created_at);
        store.insert_coupon(&workspace, &record).await.unwrap();
    }
    store
        .insert_coupon(&WorkspaceId::parse("ws_other").unwrap(), &coupon("Z", None))
        .await
        .unwrap();

    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .coupons(&workspace, 2, after.as_deref())
            .await
            .unwrap();
        let codes: Vec<String> = page.items.iter().map(|c| c.code.clone()).collect();
        after = codes.last().cloned();
        pages.push((codes, page.has_more));
        if !page.has_more {
            break;
        }
    }
    let unknown = store.coupons(&workspace, 2, Some("Z")).await;

    let page = |codes: &[&str], has_more: bool| {
        (codes.iter().map(|c| (*c).to_owned()).collect(), has_more)
    };
    assert_eq!(
        pages,
        [
            page(&["D", "B"], true),
            page(&["A", "C"], true),
            page(&["E"], false)
        ]
    );
    assert!(
        matches!(unknown, Err(BillingStoreError::NotFound)),
        "a code of another workspace is no cursor: {unknown:?}"
    );
    let exact = store.coupons(&workspace, 5, None).await.unwrap();
    assert_eq!((exact.items.len(), exact.has_more), (5, false));
}

/// A discount is found by id in its workspace only, and the redemptions of every customer of a
/// workspace name the coupon of each redeemed discount.
async fn redeemed_discounts_name_their_coupon(store: Store) {
    let workspace = acme();
    let other = WorkspaceId::parse("ws_other").unwrap();
    store
        .insert_coupon(&workspace, &coupon("ONE", None))
        .await
        .unwrap();
    let now = at("2024-01-20T00:00:00Z");
    for (id, customer) in [("disc_1", "cus_1"), ("disc_2", "cus_2")] {
        store
            .redeem_coupon(&workspace, "ONE", &discount(id, customer), now)
            .await
            .unwrap();
    }
    store
        .insert_customer_spec(&workspace, &discount("disc_3", "cus_1"))
        .await
        .unwrap();

    let all = store.coupon_redemptions(&workspace, None).await.unwrap();
    let of_second = store
        .coupon_redemptions(&workspace, Some("cus_2"))
        .await
        .unwrap();
    let found = store
        .customer_spec::<DiscountSpec>(&workspace, "disc_3")
        .await
        .unwrap();
    let elsewhere = store
        .customer_spec::<DiscountSpec>(&other, "disc_3")
        .await
        .unwrap();
    let not_a_grant = store
        .customer_spec::<CreditGrant>(&workspace, "disc_3")
        .await
        .unwrap();

    let pair = |discount: &str, code: &str| (discount.to_owned(), code.to_owned());
    assert_eq!(all, [pair("disc_1", "ONE"), pair("disc_2", "ONE")]);
    assert_eq!(of_second, [pair("disc_2", "ONE")]);
    assert_eq!(found, Some(discount("disc_3", "cus_1")));
    assert_eq!(elsewhere, None);
    assert_eq!(not_a_grant, None);
}

/// Twelve customers redeem a coupon of three at once: three discounts, a count of three.
async fn concurrent_redemptions_never_exceed_the_maximum(store: Store) {
    const REDEMPTIONS_MAX: i64 = 3;
    const ATTEMPTS: usize = 12;
    let workspace = acme();
    store
        .insert_coupon(&workspace, &coupon("FIRST3", Some(REDEMPTIONS_MAX)))
        .await
        .unwrap();

    let attempts: Vec<_> = (0..ATTEMPTS)
        .map(|index| {
            let store = store.clone();
            let workspace = workspace.clone();
            tokio::spawn(async move {
                let record = discount(&format!("disc_{index:02}"), &format!("cus_{index:02}"));
                store
                    .redeem_coupon(&workspace, "FIRST3", &record, at("2024-01-20T00:00:00Z"))
                    .await
            })
        })
        .collect();
    let mut redeemed = 0;
    let mut exhausted = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(()) => redeemed += 1,
            Err(RedeemCouponError::Exhausted { .. }) => exhausted += 1,
            Err(other) => panic!("{other:?}"),
        }
    }

    assert_eq!(
        (redeemed, exhausted),
        (REDEMPTIONS_MAX, ATTEMPTS as i64 - REDEMPTIONS_MAX)
    );
    let coupon = store.coupon(&workspace, "FIRST3").await.unwrap().unwrap();
    assert_eq!(coupon.times_redeemed, REDEMPTIONS_MAX);
    let discounts = store
        .customer_specs::<DiscountSpec>(&workspace, None)
        .await
        .unwrap();
    assert_eq!(discounts.len() as i64, REDEMPTIONS_MAX);
}

on_both_backends!(
    editing_a_plan_adds_a_version_and_keeps_the_old_one,
    meters_are_unique_by_key_per_workspace,
    subscription_changes_are_kept_in_order,
    finalizing_numbers_invoices_without_gaps_and_only_once,
    invoices_list_newest_first_with_filters_and_cursor,
    credit_notes_never_exceed_the_invoice,
    concurrent_credit_notes_never_exceed_the_invoice,
    a_batch_credits_negative_late_usage_within_what_is_left_on_the_invoice,
    payment_states_build_a_history_and_paid_closes_the_invoice,
    a_lease_is_held_by_one_holder_until_it_expires,
    adjustments_are_marked_applied_by_the_invoice_that_bills_them,
    a_batch_is_written_in_one_transaction_with_consecutive_numbers,
    a_batch_that_finds_an_invoice_already_final_uses_no_number_for_it,
    leases_are_taken_and_released_in_bulk,
    coupons_are_unique_by_code_per_workspace_and_archived_once,
    a_redemption_stores_the_discount_and_counts_it_or_says_why_not,
    concurrent_redemptions_never_exceed_the_maximum,
    coupons_are_listed_in_pages_oldest_first,
    redeemed_discounts_name_their_coupon,
);
