//! Wiring: [`Settings`] → [`Application`] (store opened and migrated, socket bound) → serving
//! [`router`] until shutdown.

use std::future::Future;
use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use billow_billing::clock::{Clock, SystemClock};
use billow_billing::BillingSettings;
use billow_store::{Database, MigrateStoreError, OpenStoreError, Store};
use tokio::net::TcpListener;

use crate::connections::ConnectionLimits;
use crate::routes::{fallback, health};
use crate::state::AppState;
use crate::telemetry;

/// What the server needs to start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The address to listen on; port 0 picks a free port (see [`Application::port`]).
    pub bind: SocketAddr,
    /// The database to open and migrate.
    pub database: Database,
}

/// The native API's routes, the routes of the profiles `profiles` switches on, and the OpenAPI
/// document of both (the native operations finished by [`crate::openapi::finish`]).
fn parts(
    profiles: crate::profiles::Profiles,
) -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let (api_v1, document) = crate::routes::api_v1().split_for_parts();
    let (profiles, mut profiles_document) = crate::profiles::router(profiles).split_for_parts();
    // The profiles' POSTs take `Idempotency-Key` as the native API's do.
    for item in profiles_document.paths.paths.values_mut() {
        if let Some(post) = item.post.as_mut() {
            crate::openapi::declare_idempotency_key(post);
        }
    }
    let mut document = crate::openapi::finish(document);
    document.merge(profiles_document);
    (api_v1, profiles, document)
}

/// The OpenAPI document `/api/v1/openapi.json` serves with every profile on; built without a
/// server or a database (`billow openapi` prints it).
pub fn openapi_document() -> utoipa::openapi::OpenApi {
    parts(crate::profiles::Profiles::all()).2
}

/// The HTTP API, without a socket: serve it with [`Application`], or call it in tests with
/// `tower::ServiceExt::oneshot`.
pub fn router(state: AppState) -> Router {
    // Layers on the /api/v1 routes only, the last added running first: a credential is required
    // (401 otherwise), then a path or query parameter holding U+0000 is a 422, then POSTs go
    // through Idempotency-Key. `route_layer`, so that an unknown path is a 404 whether or not the
    // request has a key, and so that path parameters have their names.
    let (api_v1, profiles, document) = parts(state.profiles);
    let document = crate::openapi::DocumentJson::new(&document);
    let api_v1 = api_v1
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::idempotency::idempotent_post,
        ))
        .route_layer(axum::middleware::from_fn(
            crate::nul::refuse_nul_in_path_and_query,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_principal,
        ));
    // The profiles' POSTs take `Idempotency-Key` as the native API's do; a profile answers a
    // missing credential itself, in its platform's shape.
    let profiles = if profiles.has_routes() {
        profiles
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::idempotency::idempotent_post,
            ))
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::auth::resolve_principal,
            ))
    } else {
        profiles
    };
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(crate::metrics::metrics))
        .merge(api_v1)
        .merge(profiles)
        .fallback(crate::profiles::fallback::unrouted)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .layer(crate::limits::body_limit())
        .layer(axum::middleware::from_fn(crate::limits::limit_body_length))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::storage::track_storage,
        ))
        .layer(axum::middleware::from_fn(telemetry::request_span))
        .layer(axum::Extension(document))
        .with_state(state)
}

/// A bound server, ready to run.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    store: Store,
    clock: std::sync::Arc<dyn Clock>,
    billing: BillingSettings,
    connections: ConnectionLimits,
    profiles: crate::profiles::Profiles,
}

impl Application {
    /// Binds `settings.bind`, then opens the database (creating an SQLite file when absent) and
    /// applies pending migrations.
    ///
    /// # Errors
    ///
    /// [`BuildApplicationError`] when the address cannot be bound or the store cannot be opened or
    /// migrated.
    pub async fn build(settings: Settings) -> Result<Self, BuildApplicationError> {
        let bind_error = |source| BuildApplicationError::Bind {
            address: settings.bind,
            source,
        };
        // Bound first: a taken port fails the start before the database is touched.
        let listener = TcpListener::bind(settings.bind).await.map_err(bind_error)?;
        let address = listener.local_addr().map_err(bind_error)?;
        let store = Store::open(&settings.database).await?;
        store.migrate().await?;
        tracing::info!(database = %settings.database, "store ready");
        crate::auth::log_when_no_api_key_exists(&store).await;
        Ok(Self {
            listener,
            address,
            store,
            clock: std::sync::Arc::new(SystemClock),
            billing: BillingSettings::default(),
            connections: ConnectionLimits::default(),
            profiles: crate::profiles::Profiles::all(),
        })
    }

    /// Reads time from `clock` (a `ManualClock` in tests) instead of the system's.
    pub fn with_clock(self, clock: std::sync::Arc<dyn Clock>) -> Self {
        Self { clock, ..self }
    }

    /// Runs billing with `billing` instead of the defaults.
    pub fn with_billing(self, billing: BillingSettings) -> Self {
        Self { billing, ..self }
    }

    /// Serves connections within `connections` (timeouts, connection limit) instead of the
    /// defaults.
    pub fn with_connection_limits(self, connections: ConnectionLimits) -> Self {
        Self {
            connections,
            ..self
        }
    }

    /// Serves the platform API profiles `profiles` (all by default).
    pub fn with_profiles(self, profiles: crate::profiles::Profiles) -> Self {
        Self { profiles, ..self }
    }

    /// The port actually bound, which differs from the settings' when they asked for port 0.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// The address actually bound.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Serves until Ctrl-C (or SIGTERM on Unix), then finishes the requests in flight.
    ///
    /// # Errors
    ///
    /// When serving fails.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight and closes the
    /// store. Connections are served within the [`ConnectionLimits`].
    ///
    /// # Errors
    ///
    /// None today: a connection that fails is logged and closed, and the server goes on.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!("listening on http://{}", self.address);
        let interval = self.billing.interval;
        let state = AppState::new(self.store.clone())
            .with_clock(self.clock)
            .with_billing(self.billing)
            .with_profiles(self.profiles);
        // The billing scheduler lives as long as the server; its leases expire if it dies.
        let scheduler = interval.map(|interval| {
            tokio::spawn(billow_billing::schedule(state.billing.clone(), interval))
        });
        let app = router(state).layer(axum::middleware::from_fn_with_state(
            self.connections.body_read_timeout,
            crate::connections::limit_body_time,
        ));
        crate::connections::serve(self.listener, app, self.connections, shutdown).await;
        if let Some(scheduler) = scheduler {
            scheduler.abort();
        }
        self.store.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Completes on Ctrl-C, or on SIGTERM (what container runtimes send) on Unix.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(error.message = %error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            Err(error) => {
                tracing::error!(error.message = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down: finishing the requests in flight");
}

/// Why [`Application::build`] failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildApplicationError {
    #[error("could not listen on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    OpenStore(#[from] OpenStoreError),
    #[error(transparent)]
    MigrateStore(#[from] MigrateStoreError),
}
