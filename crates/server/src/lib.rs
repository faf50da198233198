//! billow's HTTP service.
//!
//! - [`router`] builds the API over an [`AppState`]: `/healthz` (liveness), `/readyz` (the
//!   database answers), and RFC 9457 problem details for every error, unknown routes included.
//! - [`ApiError`] is the one error type handlers return; it renders itself as
//!   `application/problem+json` and logs the cause of any 5xx instead of sending it.
//! - Every `/api/v1` route needs a Bearer credential ([`auth`]: [`auth::WorkspaceAuth`],
//!   [`auth::Principal`]), takes an `Idempotency-Key` on POST ([`idempotency`]), reads JSON with
//!   [`json::ApiJson`] within [`limits`], and is described in the OpenAPI 3.1 document
//!   ([`openapi`], served at `/api/v1/openapi.json`).
//! - [`Application`] binds a socket and opens and migrates the store from [`Settings`], then
//!   serves until Ctrl-C or SIGTERM within [`ConnectionLimits`] (idle, header and body timeouts,
//!   a connection limit), finishing the requests in flight, with the billing scheduler of
//!   `billow-billing` running beside it.
//!
//! ```
//! use billow_server::{Application, Settings};
//! use billow_store::Database;
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let directory = tempfile::tempdir()?;
//! let settings = Settings {
//!     bind: "127.0.0.1:0".parse()?,
//!     database: Database::sqlite(directory.path().join("billow.db")),
//! };
//! let application = Application::build(settings).await?;
//! assert_ne!(application.port(), 0);
//! // application.run_until_stopped().await?;
//! # Ok(())
//! # }
//! # tokio::runtime::Runtime::new().unwrap().block_on(example()).unwrap();
//! ```

pub mod auth;
mod connections;
mod error;
pub mod idempotency;
pub mod invoice_cache;
pub mod json;
pub mod limits;
mod metrics;
pub mod nul;
pub mod openapi;
pub mod profiles;
pub mod query;
mod routes;
mod startup;
mod state;
pub mod storage;
mod telemetry;
mod validation;
pub mod wire;

pub use connections::ConnectionLimits;
pub use error::{ApiError, ConflictProblem, FieldError, Problem, PROBLEM_JSON};
pub use routes::events::{cloud_event, IngestResponse, EVENTS_PER_REQUEST_MAX};
pub use startup::{openapi_document, router, Application, BuildApplicationError, Settings};
pub use state::AppState;
