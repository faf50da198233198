//! The access repositories: credentials, customers and projects, idempotency keys; run
//! against both backends like `store.rs`: each check is an `async fn(Store)`, called once with a
//! fresh SQLite file and once with a fresh PostgreSQL database.

#[macro_use]
mod support;

use billow_core::Currency;
use billow_store::{
    CredentialHash, Customer, IdempotencyBegin, IdempotencyWindow, Project, Store,
    StoreCustomerError, StoredResponse, WorkspaceId, WorkspaceName,
};
use jiff::{SignedDuration, Timestamp};
use support::customer;

fn at(text: &str) -> Timestamp {
    text.parse().unwrap()
}

const NOW: &str = "2026-11-22T08:00:00Z";

async fn workspace(store: &Store, name: &str) -> WorkspaceId {
    store
        .workspace_named_or_created(&WorkspaceName::parse(name).unwrap(), at(NOW))
        .await
        .unwrap()
        .id
}

fn project(id: &str, customer_id: &str, parent_id: Option<&str>) -> Project {
    Project {
        id: id.into(),
        customer_id: customer_id.into(),
        parent_id: parent_id.map(str::to_owned).map(Into::into),
        name: id.to_owned(),
    }
}

async fn a_workspace_is_found_by_name_or_created_once(store: Store) {
    let first = workspace(&store, "Acme").await;
    let again = workspace(&store, "Acme").await;
    let other = workspace(&store, "Globex").await;

    assert_eq!(first, again);
    assert_ne!(first, other);
    assert!(first.as_str().starts_with("ws_"));
    let named = store
        .workspace_named(&WorkspaceName::parse("Acme").unwrap())
        .await
        .unwrap();
    assert_eq!(named.map(|workspace| workspace.id), Some(first));
}

async fn an_api_key_is_found_by_its_hash_until_revoked(store: Store) {
    let acme = workspace(&store, "Acme").await;
    assert!(!store.any_api_key_exists().await.unwrap());

    let (key, secret) = store.create_api_key(&acme, at(NOW)).await.unwrap();

    assert!(store.any_api_key_exists().await.unwrap());
    assert_eq!(
        store.api_key_workspace(&secret.hash()).await.unwrap(),
        Some(acme.clone())
    );
    let unknown = CredentialHash::of("bk_unknown");
    assert_eq!(store.api_key_workspace(&unknown).await.unwrap(), None);
    assert!(store.revoke_api_key(&acme, &key.id, at(NOW)).await.unwrap());
    assert_eq!(store.api_key_workspace(&secret.hash()).await.unwrap(), None);
    assert!(!store.any_api_key_exists().await.unwrap());
    let listed = store.api_keys(&acme).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revoked_at, Some(at(NOW)));
    assert_eq!(listed[0].created_at, at(NOW));
}

async fn a_customer_token_names_its_owner_until_it_expires(store: Store) {
    let acme = workspace(&store, "Acme").await;
    store
        .insert_customer(&acme, &customer("cus_1", "team-1", None), at(NOW))
        .await
        .unwrap();
    let expires_at = at("2026-11-22T09:00:00Z");

    let (token, secret) = store
        .create_customer_token(&acme, "cus_1", at(NOW), expires_at)
        .await
        .unwrap();

    assert!(secret.expose().starts_with("bct_"));
    assert_eq!(token.customer_id, "cus_1");
    let before = store
        .customer_token_owner(&secret.hash(), at("2026-11-22T08:59:59Z"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (before.workspace_id, before.customer_id.as_str()),
        (acme.clone(), "cus_1")
    );
    let after = store
        .customer_token_owner(&secret.hash(), expires_at)
        .await
        .unwrap();
    assert_eq!(after, None);
    let unknown_customer = store
        .create_customer_token(&acme, "cus_none", at(NOW), expires_at)
        .await;
    assert!(unknown_customer.is_err());
}

async fn a_customer_is_stored_and_read_back_within_its_workspace(store: Store) {
    let acme = workspace(&store, "Acme").await;
    let globex = workspace(&store, "Globex").await;
    let stored = customer("cus_1", "team-1", None);

    store
        .insert_customer(&acme, &stored, at(NOW))
        .await
        .unwrap();

    assert_eq!(
        store.customer(&acme, "cus_1").await.unwrap(),
        Some(stored.clone())
    );
    assert_eq!(
        store
            .customer_by_external_id(&acme, "team-1")
            .await
            .unwrap(),
        Some(stored)
    );
    assert_eq!(store.customer(&globex, "cus_1").await.unwrap(), None);
    assert_eq!(
        store
            .customer_by_external_id(&globex, "team-1")
            .await
            .unwrap(),
        None
    );
}

async fn constraints_are_typed_errors(store: Store) {
    let acme = workspace(&store, "Acme").await;
    let globex = workspace(&store, "Globex").await;
    store
        .insert_customer(&globex, &customer("cus_g", "g", None), at(NOW))
        .await
        .unwrap();
    store
        .insert_customer(&acme, &customer("cus_1", "team-1", None), at(NOW))
        .await
        .unwrap();

    let same_external_id = store
        .insert_customer(&acme, &customer("cus_2", "team-1", None), at(NOW))
        .await;
    let same_id = store
        .insert_customer(&acme, &customer("cus_1", "team-2", None), at(NOW))
        .await;
    let parent_elsewhere = store
        .insert_customer(&acme, &customer("cus_3", "team-3", Some("cus_g")), at(NOW))
        .await;
    let same_external_id_elsewhere = store
        .insert_customer(&globex, &customer("cus_4", "team-1", None), at(NOW))
        .await;

    assert!(matches!(
        same_external_id,
        Err(StoreCustomerError::ExternalIdTaken)
    ));
    assert!(matches!(same_id, Err(StoreCustomerError::IdTaken)));
    assert!(matches!(
        parent_elsewhere,
        Err(StoreCustomerError::UnknownParent)
    ));
    assert!(same_external_id_elsewhere.is_ok());
}

async fn customers_are_paged_in_id_order(store: Store) {
    let acme = workspace(&store, "Acme").await;
    for index in 1..=5 {
        let id = format!("cus_{index}");
        store
            .insert_customer(&acme, &customer(&id, &id, None), at(NOW))
            .await
            .unwrap();
    }

    let first = store.customers(&acme, 2, None).await.unwrap();
    let second = store.customers(&acme, 2, Some("cus_2")).await.unwrap();
    let last = store.customers(&acme, 2, Some("cus_4")).await.unwrap();

    let ids = |page: &billow_store::Page<Customer>| {
        page.items.iter().map(|c| c.id.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        (ids(&first), first.has_more),
        (vec!["cus_1".into(), "cus_2".into()], true)
    );
    assert_eq!(
        (ids(&second), second.has_more),
        (vec!["cus_3".into(), "cus_4".into()], true)
    );
    assert_eq!((ids(&last), last.has_more), (vec!["cus_5".into()], false));
}

async fn an_update_replaces_every_field_but_the_id(store: Store) {
    let acme = workspace(&store, "Acme").await;
    store
        .insert_customer(&acme, &customer("cus_1", "team-1", None), at(NOW))
        .await
        .unwrap();
    let mut changed = customer("cus_1", "team-one", None);
    changed.email = None;
    changed.address = None;
    changed.tax_ids = Vec::new();
    changed.currency = Currency::from_code("KWD").unwrap();
    changed.billing_cycle_day = 1;

    let found = store
        .update_customer(&acme, &changed, at(NOW))
        .await
        .unwrap();
    let missing = store
        .update_customer(&acme, &customer("cus_none", "x", None), at(NOW))
        .await
        .unwrap();

    assert!(found);
    assert!(!missing);
    assert_eq!(store.customer(&acme, "cus_1").await.unwrap(), Some(changed));
}

async fn projects_form_a_tree_of_one_customer(store: Store) {
    let acme = workspace(&store, "Acme").await;
    for id in ["cus_1", "cus_2"] {
        store
            .insert_customer(&acme, &customer(id, id, None), at(NOW))
            .await
            .unwrap();
    }
    let root = project("prj_1", "cus_1", None);
    let child = project("prj_2", "cus_1", Some("prj_1"));

    store.insert_project(&acme, &root, at(NOW)).await.unwrap();
    store.insert_project(&acme, &child, at(NOW)).await.unwrap();
    let foreign_parent = store
        .insert_project(&acme, &project("prj_3", "cus_2", Some("prj_1")), at(NOW))
        .await;
    let unknown_customer = store
        .insert_project(&acme, &project("prj_4", "cus_none", None), at(NOW))
        .await;

    assert!(matches!(
        foreign_parent,
        Err(StoreCustomerError::UnknownParent)
    ));
    assert!(matches!(
        unknown_customer,
        Err(StoreCustomerError::UnknownParent)
    ));
    assert_eq!(
        store.projects(&acme, "cus_1").await.unwrap(),
        vec![root, child.clone()]
    );
    assert_eq!(store.project(&acme, "prj_2").await.unwrap(), Some(child));
    assert!(store.projects(&acme, "cus_2").await.unwrap().is_empty());
}

fn window(now: &str) -> IdempotencyWindow {
    let now = at(now);
    IdempotencyWindow {
        now,
        expired_before: now - SignedDuration::from_hours(24),
        stale_before: now - SignedDuration::from_mins(5),
    }
}

async fn an_idempotency_key_is_claimed_completed_and_replayed(store: Store) {
    let acme = workspace(&store, "Acme").await;
    let response = StoredResponse {
        status: 201,
        headers: vec![("content-type".into(), "application/json".into())],
        body: b"{\"id\":\"cus_1\"}".to_vec(),
    };
    let begin = |fingerprint: &'static str, now: &'static str| {
        let store = store.clone();
        let acme = acme.clone();
        async move {
            store
                .begin_idempotent_request(&acme, "k", fingerprint, window(now))
                .await
                .unwrap()
        }
    };

    assert_eq!(begin("a", NOW).await, IdempotencyBegin::Started);
    assert_eq!(begin("a", NOW).await, IdempotencyBegin::InFlight);
    assert_eq!(begin("b", NOW).await, IdempotencyBegin::InFlight);
    store
        .complete_idempotent_request(&acme, "k", &response)
        .await
        .unwrap();
    store.abandon_idempotent_request(&acme, "k").await.unwrap();

    assert_eq!(
        begin("a", "2026-11-23T07:59:59Z").await,
        IdempotencyBegin::Completed(response)
    );
    assert_eq!(begin("b", NOW).await, IdempotencyBegin::Mismatch);
    assert_eq!(
        begin("b", "2026-11-23T08:00:01Z").await,
        IdempotencyBegin::Started
    );
}

async fn an_abandoned_or_stale_claim_is_taken_again(store: Store) {
    let acme = workspace(&store, "Acme").await;
    let begin = |key: &'static str, now: &'static str| {
        let store = store.clone();
        let acme = acme.clone();
        async move {
            store
                .begin_idempotent_request(&acme, key, "f", window(now))
                .await
                .unwrap()
        }
    };
    assert_eq!(begin("abandoned", NOW).await, IdempotencyBegin::Started);
    assert_eq!(begin("stale", NOW).await, IdempotencyBegin::Started);

    store
        .abandon_idempotent_request(&acme, "abandoned")
        .await
        .unwrap();

    assert_eq!(begin("abandoned", NOW).await, IdempotencyBegin::Started);
    assert_eq!(
        begin("stale", "2026-11-22T08:04:59Z").await,
        IdempotencyBegin::InFlight
    );
    assert_eq!(
        begin("stale", "2026-11-22T08:05:01Z").await,
        IdempotencyBegin::Started
    );
    let deleted = store
        .delete_expired_idempotency_keys(at("2026-11-22T08:05:00Z"))
        .await
        .unwrap();
    assert_eq!(deleted, 1, "the abandoned key, claimed again at NOW");
}

on_both_backends!(
    a_workspace_is_found_by_name_or_created_once,
    an_api_key_is_found_by_its_hash_until_revoked,
    a_customer_token_names_its_owner_until_it_expires,
    a_customer_is_stored_and_read_back_within_its_workspace,
    constraints_are_typed_errors,
    customers_are_paged_in_id_order,
    an_update_replaces_every_field_but_the_id,
    projects_form_a_tree_of_one_customer,
    an_idempotency_key_is_claimed_completed_and_replayed,
    an_abandoned_or_stale_claim_is_taken_again,
);
