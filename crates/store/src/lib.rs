//! billow's persistence: SQLite (the embedded default) and PostgreSQL behind one [`Store`].
//!
//! - [`Database`] says which backend to open: an SQLite file, or a [`PostgresUrl`] (what
//!   `DATABASE_URL` holds), checked when parsed and never printed with its password.
//! - [`Store`] pools connections; [`Store::migrate`] applies the migrations embedded from
//!   `migrations/sqlite` or `migrations/postgres`; [`Store::ping`] tells whether the database
//!   answers; [`is_storage_full`] tells a write that failed for lack of disk space from any other
//!   failure.
//! - Repository functions are methods of [`Store`]. The tables keep to one convention (instants
//!   as 64-bit integer microseconds, JSON as text, `$n` placeholders), so a query is written once
//!   for both backends; only what really differs is written per backend (how a violated key is
//!   named, the usage events' exactly-once write path). [`Store::insert_workspace`] and
//!   [`Store::workspace`] for [`Workspace`]s.
//! - Access: [`ids::new_id`] (prefixed, time-ordered ids) and one id type per entity
//!   ([`CustomerId`], [`SubscriptionId`], [`InvoiceId`], ...); API keys and customer tokens stored as
//!   [`CredentialHash`]es ([`Store::create_api_key`], [`Store::api_key_workspace`],
//!   [`Store::create_customer_token`], [`Store::customer_token_owner`]); [`Customer`]s and their
//!   [`Project`] trees ([`Store::customer`], [`Store::customers`] in [`Page`]s); idempotency keys
//!   ([`Store::begin_idempotent_request`]).
//! - Usage events ([`events`], docs/ingestion.md): [`Store::insert_events`] and the group-committing
//!   [`EventWriter`] store each (source, id) once per workspace; [`Store::usage_events`] and
//!   [`Store::usage_events_ingested_after`] read them back as `billow_core::UsageEvent`s.
//! - Billing: [`catalog`] (meters, versioned plans, tax rates), [`subscriptions`] (subscriptions
//!   with their changes, credit grants, discounts), [`invoices`] (drafts, finalized invoices, credit
//!   notes, payment history) and [`billing`] (leases, gap-free finalization, late-usage
//!   adjustments), one SQL text for both backends, errors as [`BillingStoreError`].
//! - Billed resources ([`resources`], docs/resources.md): a customer's priced things with a
//!   lifetime ([`resources::ResourceRecord`]), their quantity changes and deletion, and
//!   [`Store::resources_of_customers`] for billing runs.
//!
//! SQLite files are opened in WAL mode with `synchronous=FULL` (every commit is on disk before it
//! returns), foreign keys enforced, and created (with their directory) when absent. PostgreSQL
//! connections keep `synchronous_commit` on, raising it when the server's default is off.
//!
//! ```
//! use billow_store::{Database, Store, Workspace, WorkspaceId, WorkspaceName};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let directory = tempfile::tempdir()?;
//! let store = Store::open(&Database::sqlite(directory.path().join("billow.db"))).await?;
//! store.migrate().await?;
//!
//! let workspace = Workspace {
//!     id: WorkspaceId::parse("ws_acme")?,
//!     name: WorkspaceName::parse("Acme Cloud")?,
//!     created_at: "2026-11-22T08:00:00Z".parse()?,
//! };
//! store.insert_workspace(&workspace).await?;
//! assert_eq!(store.workspace(&workspace.id).await?, Some(workspace));
//! # Ok(())
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(example()).unwrap();
//! ```

pub mod billing;
pub mod catalog;
pub mod coupons;
mod customers;
mod database;
mod durability;
pub mod events;
mod idempotency;
pub mod ids;
pub mod invoices;
mod keys;
pub mod resources;
mod sql;
mod storage_full;
mod store;
pub mod subscriptions;
mod workspaces;

pub use billing::sql::BillingStoreError;
pub use customers::{
    Address, Customer, LoadCustomerError, Page, Project, StoreCustomerError, TaxId,
    PROJECTS_PER_CUSTOMER_MAX,
};
pub use database::{Database, ParseDatabaseUrlError, PostgresUrl};
pub use events::{
    EventWriter, InsertEventsError, InsertOutcome, LoadEventsError, MergeEventsError, MergeOutcome,
    NewEvent, SubjectsUsage, UsageChunks, WriteEventsError,
};
pub use idempotency::{IdempotencyBegin, IdempotencyStoreError, IdempotencyWindow, StoredResponse};
pub use ids::{
    new_id, AdjustmentId, CreditNoteId, CustomerId, InvoiceId, MeterId, PlanId, PlanVersionId,
    ProjectId, ResourceId, SubscriptionId, TaxRateId,
};
pub use keys::{
    ApiKey, CredentialHash, CredentialKind, CredentialSecret, CustomerToken, CustomerTokenOwner,
    EnsureWorkspaceError, LoadCredentialError, StoreCredentialError, CREDENTIAL_CACHE_ENTRIES_MAX,
    CREDENTIAL_CACHE_TTL,
};
pub use storage_full::is_storage_full;
pub use store::{MigrateStoreError, OpenStoreError, PingStoreError, Store};
pub use workspaces::{
    CorruptWorkspaceRowError, InsertWorkspaceError, LoadWorkspaceError, ParseWorkspaceIdError,
    ParseWorkspaceNameError, Workspace, WorkspaceId, WorkspaceName,
};
