//! Wiring: [`Settings`] → [`Application`] (store opened and migrated, socket bound) → serving
//! [`router`] until shutdown.

use std::future::Future;
use std::net::SocketAddr;

use axum::routing::get;
use axum::Router;
use billow_store::{Database, MigrateStoreError, OpenStoreError, Store};
use tokio::net::TcpListener;

use crate::routes::{fallback, health};
use crate::telemetry;

/// What the server needs to start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The address to listen on; port 0 picks a free port (see [`Application::port`]).
    pub bind: SocketAddr,
    /// The database to open and migrate.
    pub database: Database,
}

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Store,
}

impl AppState {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// The HTTP API, without a socket: serve it with [`Application`], or call it in tests with
/// `tower::ServiceExt::oneshot`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(fallback::route_not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .layer(axum::middleware::from_fn(telemetry::request_span))
        .with_state(state)
}

/// A bound server, ready to run.
pub struct Application {
    listener: TcpListener,
    address: SocketAddr,
    store: Store,
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
        Ok(Self {
            listener,
            address,
            store,
        })
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
    /// store.
    ///
    /// # Errors
    ///
    /// When serving fails.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!("listening on http://{}", self.address);
        let app = router(AppState::new(self.store.clone()));
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
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
