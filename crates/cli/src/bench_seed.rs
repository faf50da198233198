//! Seeding for `billow bench billing-run`: how much to seed ([`SeedSizes`], two of the bench's
//! arguments), the workspace, its meter and plan, the customers and their subscriptions, a
//! period's usage, and its compaction as `billow ingest` leaves it.

use std::time::{Duration, Instant};

use anyhow::ensure;
use billow_core::Currency;
use billow_store::catalog::{MeterRecord, PlanRecord, PlanVersionRecord};
use billow_store::subscriptions::{SubscriptionRecord, SubscriptionStatus};
use billow_store::{Customer, MergeOutcome, NewEvent, Store, WorkspaceId, WorkspaceName};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;

/// The billing period every subscription starts at.
pub(crate) const PERIOD_START: &str = "2024-01-01T00:00:00Z";
/// Events per `insert_events` call (one transaction, one log chunk).
const SEED_BATCH_EVENTS: usize = 100_000;
/// Events per compaction transaction, as `billow ingest`.
const COMPACT_EVENTS_MAX: u64 = 100_000;

/// How much `billow bench billing-run` seeds: its arguments `--subscriptions` and
/// `--events-per-subscription`.
#[derive(Debug, clap::Args)]
pub(crate) struct SeedSizes {
    /// Subscriptions (one customer each).
    #[arg(long, default_value_t = 1_000)]
    pub(crate) subscriptions: u64,
    /// Usage events per subscription in the period.
    #[arg(long, default_value_t = 100)]
    pub(crate) events_per_subscription: u64,
}

pub(crate) fn customer_id(index: u64) -> String {
    format!("cus_bench_{index:07}")
}

/// The workspace, its meter and plan, and `sizes.subscriptions` customers each with a
/// subscription of 3 seats from [`PERIOD_START`]; returns the workspace and the customers' ids.
pub(crate) async fn seed_customers(
    store: &Store,
    sizes: &SeedSizes,
) -> anyhow::Result<(WorkspaceId, Vec<String>)> {
    let created: Timestamp = PERIOD_START.parse()?;
    let workspace = store
        .workspace_named_or_created(&WorkspaceName::parse("bench")?, created)
        .await?
        .id;
    store
        .insert_meter(
            &workspace,
            &MeterRecord {
                id: "mtr_bench".into(),
                key: "requests".into(),
                spec: serde_json::from_value(
                    json!({"key": "requests", "event_type": "api.requests", "aggregation": "SUM",
                    "value_property": "count", "group_by": ["project"]}),
                )?,
                created_at: created,
            },
        )
        .await?;
    let plan = PlanRecord {
        id: "plan_bench".into(),
        key: "team".into(),
        current_version_id: "pv_bench".into(),
        created_at: created,
    };
    let version = PlanVersionRecord {
        id: plan.current_version_id.clone(),
        plan_id: plan.id.clone(),
        version: 1,
        spec: serde_json::from_value(
            json!({"key": "team", "name": "Team", "cadence": "monthly", "currency": "USD", "prices": [
            {"key": "seats", "description": "Seats", "billing": "in_advance",
             "pricing": {"model": "per_unit", "unit_amount": "10.00"}},
            {"key": "requests", "description": "API requests", "meter": "requests",
             "pricing": {"model": "graduated", "tiers": [
                {"up_to": 100, "unit_amount": "0.05", "flat_amount": "1.00"},
                {"up_to": 1000, "unit_amount": "0.04"},
                {"unit_amount": "0.03"}]}}]}),
        )?,
        created_at: created,
    };
    store.insert_plan(&workspace, &plan, &version).await?;
    let usd = Currency::from_code("USD")?;
    let mut customer_ids = Vec::new();
    for index in 0..sizes.subscriptions {
        let id = customer_id(index);
        let customer = Customer {
            id: id.clone().into(),
            external_id: format!("team-{index}"),
            name: format!("Team {index}"),
            email: None,
            address: None,
            tax_ids: Vec::new(),
            currency: usd,
            time_zone: "UTC".into(),
            billing_cycle_day: 1,
            parent_id: None,
            invoicing: billow_core::scenario::Invoicing::Consolidated,
            net_days: None,
            owner: None,
        };
        store
            .insert_customer(&workspace, &customer, created)
            .await?;
        let subscription_id = format!("sub_bench_{index:07}");
        store
            .insert_subscription(
                &workspace,
                &SubscriptionRecord {
                    id: subscription_id.clone().into(),
                    customer_id: id.clone().into(),
                    plan_id: plan.id.clone(),
                    plan_version_id: version.id.clone(),
                    status: SubscriptionStatus::Active,
                    spec: serde_json::from_value(
                        json!({"id": subscription_id, "plan": version.id,
                        "start": PERIOD_START, "quantity": 3}),
                    )?,
                    created_at: created,
                },
            )
            .await?;
        customer_ids.push(id);
    }
    Ok((workspace, customer_ids))
}

/// `sizes.events_per_subscription` events of every customer spread over `[from, to)`, their ids
/// suffixed with `tag` (unique per period), stored as ingested at `ingested_at`.
pub(crate) async fn seed_events(
    store: &Store,
    workspace: &WorkspaceId,
    sizes: &SeedSizes,
    from: Timestamp,
    to: Timestamp,
    tag: &str,
    ingested_at: Timestamp,
) -> anyhow::Result<()> {
    let created = from;
    let period_micros = i64::try_from(to.duration_since(from).as_micros())?;
    let per_subscription = sizes.events_per_subscription;
    let step = period_micros / i64::try_from(per_subscription)?;
    let mut batch = Vec::with_capacity(SEED_BATCH_EVENTS);
    // In time order over the whole month, every customer's j-th event close together, as a month
    // of real traffic arrives.
    for sequence in 0..per_subscription {
        for index in 0..sizes.subscriptions {
            let offset = i64::try_from(sequence)? * step
                + i64::try_from(index % 1_000)? * (step / 1_000).max(1);
            batch.push(NewEvent {
                source: "bench".into(),
                id: format!("{index}-{sequence}{tag}"),
                event_type: "api.requests".into(),
                subject: customer_id(index),
                time: created.checked_add(SignedDuration::from_micros(offset))?,
                data: Some(format!(
                    r#"{{"count":{},"project":"prj_{}"}}"#,
                    (index + sequence) % 10 + 1,
                    sequence % 3
                )),
            });
            if batch.len() == SEED_BATCH_EVENTS {
                insert(store, workspace, &mut batch, ingested_at).await?;
            }
        }
    }
    insert(store, workspace, &mut batch, ingested_at).await?;
    Ok(())
}

/// What [`compact`] did.
pub(crate) struct Compacted {
    pub events: u64,
    pub compaction: Duration,
    pub merging: Duration,
    pub merged: MergeOutcome,
}

/// Compacts every stored log chunk and merges the subject chunks, as the server's writer and
/// `billow ingest` do.
pub(crate) async fn compact(store: &Store) -> anyhow::Result<Compacted> {
    let mut compaction = Duration::ZERO;
    let mut merging = Duration::ZERO;
    let mut compacted = 0;
    let mut merged = MergeOutcome::default();
    loop {
        let started = Instant::now();
        let moved = store.compact_events(COMPACT_EVENTS_MAX).await?;
        compaction += started.elapsed();
        if moved == 0 {
            break;
        }
        compacted += moved;
        // What the server's writer and `billow ingest` do after each compaction.
        let started = Instant::now();
        loop {
            let outcome = store.merge_event_chunks(COMPACT_EVENTS_MAX).await?;
            if outcome.subjects == 0 {
                break;
            }
            merged.chunks_replaced += outcome.chunks_replaced;
            merged.chunks_written += outcome.chunks_written;
            merged.events += outcome.events;
        }
        merging += started.elapsed();
    }
    Ok(Compacted {
        events: compacted,
        compaction,
        merging,
        merged,
    })
}

async fn insert(
    store: &Store,
    workspace: &WorkspaceId,
    batch: &mut Vec<NewEvent>,
    ingested_at: Timestamp,
) -> anyhow::Result<()> {
    if batch.is_empty() {
        return Ok(());
    }
    let outcome = store.insert_events(workspace, batch, ingested_at).await?;
    ensure!(
        outcome.duplicates == 0,
        "seeding stored {} duplicates",
        outcome.duplicates
    );
    batch.clear();
    Ok(())
}
