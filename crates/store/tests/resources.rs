//! Billed resources, run against both backends like `store.rs`: stored and read back with every
//! field, paged and filtered by the instants they were alive at, quantity changes and deletions
//! with their refusals, the keys and references the table enforces, and the billing run's read
//! of many customers.

#[macro_use]
mod support;

use std::collections::BTreeMap;

use billow_core::scenario::QuantityChange;
use billow_store::resources::{
    ChangeResourceError, CheckResourceError, InsertResourceError, ResourceRecord,
};
use billow_store::{Project, Store, Workspace, WorkspaceId, WorkspaceName};
use jiff::Timestamp;
use rust_decimal::Decimal;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

fn decimal(text: &str) -> Decimal {
    Decimal::from_str_exact(text).unwrap()
}

fn acme() -> WorkspaceId {
    WorkspaceId::parse("ws_acme").unwrap()
}

/// The workspace `ws_acme` with the customers `cus_1` and `cus_2`, and the project `prj_1` of
/// `cus_1`.
async fn arrange(store: &Store) {
    for (id, name) in [("ws_acme", "Acme"), ("ws_other", "Other")] {
        let workspace = Workspace {
            id: WorkspaceId::parse(id).unwrap(),
            name: WorkspaceName::parse(name).unwrap(),
            created_at: at("2016-01-01T00:00:00Z"),
        };
        store.insert_workspace(&workspace).await.unwrap();
    }
    let now = at("2016-01-01T00:00:00Z");
    for (id, external_id) in [("cus_1", "team-1"), ("cus_2", "team-2")] {
        let customer = support::customer(id, external_id, None);
        store
            .insert_customer(&acme(), &customer, now)
            .await
            .unwrap();
    }
    let project = Project {
        id: "prj_1".into(),
        customer_id: "cus_1".into(),
        parent_id: None,
        name: "production".into(),
    };
    store.insert_project(&acme(), &project, now).await.unwrap();
}

/// An add-on of `cus_1` with every field set.
fn addon(id: &str, created_at: &str) -> ResourceRecord {
    ResourceRecord {
        id: id.into(),
        customer_id: "cus_1".into(),
        project_id: Some("prj_1".into()),
        plan_id: "plan_addon".into(),
        plan_version_id: "pv_addon_1".into(),
        quantity: decimal("1.50"),
        quantity_changes: Vec::new(),
        created_at: at(created_at),
        deleted_at: None,
        kind: Some("addon".into()),
        name: Some("postgres-standard".into()),
        dimensions: BTreeMap::from([
            ("app".into(), "api".into()),
            ("organization".into(), "acme".into()),
            ("space".into(), "default".into()),
        ]),
        external_id: Some(format!("addon-{id}")),
        inserted_at: at("2017-02-05T22:16:56.123456Z"),
    }
}

async fn a_resource_is_stored_and_read_back_with_every_field(store: Store) {
    arrange(&store).await;
    let mut resource = addon("res_1", "2016-06-01T00:00:00Z");
    resource.quantity_changes = vec![QuantityChange {
        at: at("2016-07-01T00:00:00Z"),
        quantity: decimal("2.000"),
    }];
    resource.deleted_at = Some(at("2016-08-01T12:00:00.000001Z"));

    store.insert_resource(&acme(), &resource).await.unwrap();

    let loaded = store.resource(&acme(), "res_1").await.unwrap().unwrap();
    assert_eq!(loaded, resource);
    // Decimals keep their written scale; the instants their microseconds.
    assert_eq!(loaded.quantity.to_string(), "1.50");
    assert_eq!(loaded.quantity_changes[0].quantity.to_string(), "2.000");
    let by_external_id = store
        .resource_by_external_id(&acme(), "addon-res_1")
        .await
        .unwrap();
    assert_eq!(by_external_id, Some(resource.clone()));
    let other = WorkspaceId::parse("ws_other").unwrap();
    assert_eq!(store.resource(&other, "res_1").await.unwrap(), None);
    assert_eq!(
        store
            .resource_by_external_id(&other, "addon-res_1")
            .await
            .unwrap(),
        None
    );
    let spec = loaded.to_spec();
    assert_eq!(spec.plan, "pv_addon_1");
    assert_eq!(spec.project.as_deref(), Some("prj_1"));
    assert_eq!(spec.deleted_at, resource.deleted_at);
}

async fn keys_and_references_are_typed_errors(store: Store) {
    arrange(&store).await;
    store
        .insert_resource(&acme(), &addon("res_1", "2016-06-01T00:00:00Z"))
        .await
        .unwrap();

    let same_id = ResourceRecord {
        external_id: None,
        ..addon("res_1", "2016-06-01T00:00:00Z")
    };
    let same_external_id = ResourceRecord {
        external_id: Some("addon-res_1".into()),
        ..addon("res_2", "2016-06-01T00:00:00Z")
    };
    let unknown_customer = ResourceRecord {
        customer_id: "cus_none".into(),
        project_id: None,
        ..addon("res_3", "2016-06-01T00:00:00Z")
    };
    // prj_1 is a project of cus_1, not of cus_2.
    let project_of_another_customer = ResourceRecord {
        customer_id: "cus_2".into(),
        ..addon("res_4", "2016-06-01T00:00:00Z")
    };
    let deleted_before_created = ResourceRecord {
        deleted_at: Some(at("2016-05-31T23:59:59Z")),
        ..addon("res_5", "2016-06-01T00:00:00Z")
    };

    assert!(matches!(
        store.insert_resource(&acme(), &same_id).await,
        Err(InsertResourceError::IdTaken)
    ));
    assert!(matches!(
        store.insert_resource(&acme(), &same_external_id).await,
        Err(InsertResourceError::ExternalIdTaken)
    ));
    assert!(matches!(
        store.insert_resource(&acme(), &unknown_customer).await,
        Err(InsertResourceError::UnknownCustomerOrProject)
    ));
    assert!(matches!(
        store
            .insert_resource(&acme(), &project_of_another_customer)
            .await,
        Err(InsertResourceError::UnknownCustomerOrProject)
    ));
    assert!(matches!(
        store
            .insert_resource(&acme(), &deleted_before_created)
            .await,
        Err(InsertResourceError::Invalid(
            CheckResourceError::DeletedBeforeCreated { .. }
        ))
    ));
    // Resources without an external id do not collide; a project is optional.
    for id in ["res_6", "res_7"] {
        let plain = ResourceRecord {
            external_id: None,
            project_id: None,
            customer_id: "cus_2".into(),
            ..addon(id, "2016-06-01T00:00:00Z")
        };
        store.insert_resource(&acme(), &plain).await.unwrap();
    }
}

async fn a_customers_resources_are_paged_in_id_order_and_filtered_by_lifetime(store: Store) {
    arrange(&store).await;
    let mut ids = Vec::new();
    for (index, (created_at, deleted_at)) in [
        ("2016-01-01T00:00:00Z", None),
        ("2016-03-01T00:00:00Z", Some("2016-04-01T00:00:00Z")),
        ("2016-02-01T00:00:00Z", None),
        ("2016-05-01T00:00:00Z", None),
    ]
    .into_iter()
    .enumerate()
    {
        let id = format!("res_{index}");
        let mut resource = addon(&id, created_at);
        resource.deleted_at = deleted_at.map(at);
        store.insert_resource(&acme(), &resource).await.unwrap();
        ids.push(id);
    }
    let another = ResourceRecord {
        customer_id: "cus_2".into(),
        project_id: None,
        ..addon("res_9", "2016-01-01T00:00:00Z")
    };
    store.insert_resource(&acme(), &another).await.unwrap();
    let page_ids = |page: &billow_store::Page<ResourceRecord>| -> Vec<String> {
        page.items.iter().map(|r| r.id.to_string()).collect()
    };

    let first = store
        .resources(&acme(), "cus_1", None, 3, None)
        .await
        .unwrap();
    let second = store
        .resources(&acme(), "cus_1", None, 3, Some("res_2"))
        .await
        .unwrap();
    // Alive on 2016-03-15: created before, not yet deleted; res_1 is deleted on 2016-04-01
    // and res_3 created on 2016-05-01.
    let alive = store
        .resources(&acme(), "cus_1", Some(at("2016-03-15T00:00:00Z")), 10, None)
        .await
        .unwrap();
    // The deletion instant itself is outside the lifetime, the creation instant inside.
    let at_deletion = store
        .resources(&acme(), "cus_1", Some(at("2016-04-01T00:00:00Z")), 10, None)
        .await
        .unwrap();
    let at_creation = store
        .resources(&acme(), "cus_1", Some(at("2016-05-01T00:00:00Z")), 10, None)
        .await
        .unwrap();

    assert_eq!(page_ids(&first), ["res_0", "res_1", "res_2"]);
    assert!(first.has_more);
    assert_eq!(page_ids(&second), ["res_3"]);
    assert!(!second.has_more);
    assert_eq!(page_ids(&alive), ["res_0", "res_1", "res_2"]);
    assert_eq!(page_ids(&at_deletion), ["res_0", "res_2"]);
    assert_eq!(page_ids(&at_creation), ["res_0", "res_2", "res_3"]);
    let other = WorkspaceId::parse("ws_other").unwrap();
    let elsewhere = store
        .resources(&other, "cus_1", None, 10, None)
        .await
        .unwrap();
    assert!(elsewhere.items.is_empty());
}

async fn quantity_changes_are_appended_in_time_order_within_the_lifetime(store: Store) {
    arrange(&store).await;
    store
        .insert_resource(&acme(), &addon("res_1", "2016-06-01T00:00:00Z"))
        .await
        .unwrap();

    let changed = store
        .change_resource_quantity(&acme(), "res_1", at("2016-06-10T00:00:00Z"), decimal("3"))
        .await
        .unwrap();
    let again = store
        .change_resource_quantity(&acme(), "res_1", at("2016-06-20T00:00:00Z"), decimal("0"))
        .await
        .unwrap();
    let before_creation = store
        .change_resource_quantity(&acme(), "res_1", at("2016-05-31T00:00:00Z"), decimal("1"))
        .await;
    let before_last = store
        .change_resource_quantity(&acme(), "res_1", at("2016-06-15T00:00:00Z"), decimal("1"))
        .await;
    let negative = store
        .change_resource_quantity(&acme(), "res_1", at("2016-06-25T00:00:00Z"), decimal("-1"))
        .await;
    let unknown = store
        .change_resource_quantity(
            &acme(),
            "res_none",
            at("2016-06-25T00:00:00Z"),
            decimal("1"),
        )
        .await;

    assert_eq!(changed.quantity_changes.len(), 1);
    assert_eq!(again.current_quantity(), decimal("0"));
    assert!(matches!(
        before_creation,
        Err(ChangeResourceError::Refused(
            CheckResourceError::ChangeBeforeCreated { .. }
        ))
    ));
    assert!(matches!(
        before_last,
        Err(ChangeResourceError::Refused(
            CheckResourceError::ChangeBeforeLastChange { .. }
        ))
    ));
    assert!(matches!(
        negative,
        Err(ChangeResourceError::Refused(
            CheckResourceError::NegativeQuantity { .. }
        ))
    ));
    assert!(matches!(unknown, Err(ChangeResourceError::NotFound)));
    let stored = store.resource(&acme(), "res_1").await.unwrap().unwrap();
    assert_eq!(
        stored.quantity_changes,
        [
            QuantityChange {
                at: at("2016-06-10T00:00:00Z"),
                quantity: decimal("3"),
            },
            QuantityChange {
                at: at("2016-06-20T00:00:00Z"),
                quantity: decimal("0"),
            },
        ]
    );
    assert_eq!(stored, again);
}

async fn a_resource_is_deleted_once_not_before_its_creation_or_last_change(store: Store) {
    arrange(&store).await;
    store
        .insert_resource(&acme(), &addon("res_1", "2016-06-01T00:00:00Z"))
        .await
        .unwrap();
    store
        .change_resource_quantity(&acme(), "res_1", at("2016-06-10T00:00:00Z"), decimal("2"))
        .await
        .unwrap();

    let before_creation = store
        .delete_resource(&acme(), "res_1", at("2016-05-01T00:00:00Z"))
        .await;
    let before_change = store
        .delete_resource(&acme(), "res_1", at("2016-06-09T00:00:00Z"))
        .await;
    let deleted = store
        .delete_resource(&acme(), "res_1", at("2016-07-01T00:00:00Z"))
        .await
        .unwrap();
    let twice = store
        .delete_resource(&acme(), "res_1", at("2016-08-01T00:00:00Z"))
        .await;
    let change_after = store
        .change_resource_quantity(&acme(), "res_1", at("2016-07-02T00:00:00Z"), decimal("1"))
        .await;
    let unknown = store
        .delete_resource(&acme(), "res_none", at("2016-07-01T00:00:00Z"))
        .await;

    assert!(matches!(
        before_creation,
        Err(ChangeResourceError::Refused(
            CheckResourceError::DeletedBeforeCreated { .. }
        ))
    ));
    assert!(matches!(
        before_change,
        Err(ChangeResourceError::Refused(
            CheckResourceError::DeletedBeforeLastChange { .. }
        ))
    ));
    assert_eq!(deleted.deleted_at, Some(at("2016-07-01T00:00:00Z")));
    assert!(matches!(
        twice,
        Err(ChangeResourceError::Refused(CheckResourceError::AlreadyDeleted { deleted_at }))
            if deleted_at == at("2016-07-01T00:00:00Z")
    ));
    assert!(matches!(
        change_after,
        Err(ChangeResourceError::Refused(
            CheckResourceError::ChangeAfterDeleted { .. }
        ))
    ));
    assert!(matches!(unknown, Err(ChangeResourceError::NotFound)));
    let stored = store.resource(&acme(), "res_1").await.unwrap().unwrap();
    assert_eq!(stored.deleted_at, Some(at("2016-07-01T00:00:00Z")));
    assert_eq!(stored.quantity_changes.len(), 1);
}

async fn concurrent_changes_are_all_kept(store: Store) {
    arrange(&store).await;
    store
        .insert_resource(&acme(), &addon("res_1", "2016-06-01T00:00:00Z"))
        .await
        .unwrap();

    // Every change at the same instant passes the order check; without the row lock, two of
    // them would read the same list and one append would be lost.
    let changes = (0..8).map(|index| {
        let store = store.clone();
        async move {
            store
                .change_resource_quantity(
                    &acme(),
                    "res_1",
                    at("2016-06-10T00:00:00Z"),
                    Decimal::from(index),
                )
                .await
        }
    });
    let results = futures_util::future::join_all(changes).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let stored = store.resource(&acme(), "res_1").await.unwrap().unwrap();
    assert_eq!(stored.quantity_changes.len(), 8);
}

async fn a_billing_run_reads_the_resources_of_many_customers_in_one_order(store: Store) {
    arrange(&store).await;
    let records = [
        ("res_a", "cus_2", "2016-03-01T00:00:00Z"),
        ("res_b", "cus_1", "2016-02-01T00:00:00Z"),
        ("res_c", "cus_1", "2016-01-01T00:00:00Z"),
        ("res_d", "cus_2", "2016-03-01T00:00:00Z"),
    ];
    for (id, customer_id, created_at) in records {
        let resource = ResourceRecord {
            customer_id: customer_id.into(),
            project_id: None,
            ..addon(id, created_at)
        };
        store.insert_resource(&acme(), &resource).await.unwrap();
    }
    store
        .delete_resource(&acme(), "res_b", at("2016-02-15T00:00:00Z"))
        .await
        .unwrap();

    let read = store
        .resources_of_customers(
            &acme(),
            &[
                "cus_2".into(),
                "cus_1".into(),
                "cus_none".into(),
                "cus_2".into(),
            ],
        )
        .await
        .unwrap();
    let only_one = store
        .resources_of_customers(&acme(), &["cus_2".into()])
        .await
        .unwrap();

    let ids: Vec<&str> = read.iter().map(|r| r.id.as_str()).collect();
    // By customer, then creation instant, then id; deleted resources included.
    assert_eq!(ids, ["res_c", "res_b", "res_a", "res_d"]);
    assert_eq!(read[1].deleted_at, Some(at("2016-02-15T00:00:00Z")));
    assert_eq!(only_one.len(), 2);
    assert!(store
        .resources_of_customers(&acme(), &[])
        .await
        .unwrap()
        .is_empty());
}

/// The seed's Akkeris account: the add-on at 140 a month and the dyno at 60, read back from the
/// store and priced by the billing core as the golden scenario prices its own resources (25.00
/// and 10.71 for 5 of February 2017's 28 days).
async fn stored_resources_bill_the_akkeris_february_2017_figures(store: Store) {
    arrange(&store).await;
    let golden = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scenarios/golden/akkeris-resources-february-2017.json"
    ))
    .unwrap();
    let mut scenario = billow_core::scenario::Scenario::from_json(&golden).unwrap();
    let dimensions = BTreeMap::from([
        ("app".to_owned(), "app-space".to_owned()),
        ("organization".to_owned(), "org".to_owned()),
        ("space".to_owned(), "space".to_owned()),
    ]);
    // The golden's plan keys stand for the plan versions a live workspace would pin.
    for (id, plan, kind, created_at) in [
        (
            "addon-alamo-redis",
            "alamo-redis-small",
            "addon",
            "2016-08-15T19:02:02.781Z",
        ),
        ("dyno-web", "gp2-web", "dyno", "2016-07-26T15:47:33.411Z"),
    ] {
        let resource = ResourceRecord {
            id: id.into(),
            customer_id: "cus_1".into(),
            project_id: None,
            plan_id: plan.into(),
            plan_version_id: plan.into(),
            quantity: Decimal::ONE,
            quantity_changes: Vec::new(),
            created_at: at(created_at),
            deleted_at: None,
            kind: Some(kind.into()),
            name: Some("app-space".into()),
            dimensions: dimensions.clone(),
            external_id: None,
            inserted_at: at("2017-02-05T22:16:56Z"),
        };
        store.insert_resource(&acme(), &resource).await.unwrap();
    }

    let stored = store
        .resources_of_customers(&acme(), &["cus_1".into()])
        .await
        .unwrap();
    // The store reads in creation order (the dyno first); the golden lists the add-on first,
    // and lines follow the resources' order.
    let golden_order: Vec<String> = scenario
        .world
        .resources
        .iter()
        .map(|r| r.id.clone())
        .collect();
    let mut specs: Vec<_> = stored.iter().map(ResourceRecord::to_spec).collect();
    specs.sort_by_key(|spec| golden_order.iter().position(|id| *id == spec.id));
    assert_eq!(stored[0].id, "dyno-web");
    scenario.world.resources = specs;
    let preview = billow_core::scenario::preview(&scenario.world).unwrap();

    let expect = scenario.expect.as_ref().unwrap();
    let mismatches = billow_core::scenario::check_expectations(&preview, expect);
    assert!(mismatches.is_empty(), "{mismatches:?}");
    let upcoming = &preview.upcoming[0].invoice;
    let amounts_minor: Vec<i64> = upcoming
        .lines
        .iter()
        .map(|line| line.amount.amount_minor())
        .collect();
    assert_eq!(amounts_minor, [2500, 1071]);
}

on_both_backends!(
    a_resource_is_stored_and_read_back_with_every_field,
    keys_and_references_are_typed_errors,
    a_customers_resources_are_paged_in_id_order_and_filtered_by_lifetime,
    quantity_changes_are_appended_in_time_order_within_the_lifetime,
    a_resource_is_deleted_once_not_before_its_creation_or_last_change,
    concurrent_changes_are_all_kept,
    a_billing_run_reads_the_resources_of_many_customers_in_one_order,
    stored_resources_bill_the_akkeris_february_2017_figures,
);
