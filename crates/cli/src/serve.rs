//! `billow serve`: the HTTP API.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use billow_server::profiles::Profiles;
use billow_server::{Application, ConnectionLimits, Settings};

use crate::database::DatabaseArgs;
use crate::telemetry;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    #[command(flatten)]
    database: DatabaseArgs,
    #[command(flatten)]
    billing: crate::invoice::BillingArgs,
    #[command(flatten)]
    connections: ConnectionArgs,
    /// The platform API profiles to serve beside the native API, comma-separated: emcp,
    /// akkeris, openmeter; or all, or none (docs/profiles/).
    #[arg(long, value_name = "NAMES", env = "BILLOW_PROFILES", default_value = "all",
          value_parser = Profiles::parse)]
    profiles: Profiles,
}

/// The connection limits of `billow serve` (`billow_server::ConnectionLimits`). The defaults suit
/// a reverse proxy in front: its upstream connections idle out first (60 s is usual), and a
/// proxy sends heads and bodies at once.
#[derive(Debug, clap::Args)]
struct ConnectionArgs {
    /// Close a connection that waits this long for a request, with none in flight.
    #[arg(long, value_name = "SECONDS", env = "BILLOW_IDLE_TIMEOUT_SECONDS",
          default_value_t = ConnectionLimits::default().idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout_seconds: u64,
    /// Close a connection whose request head (request line and headers) is not complete this
    /// long after its first byte.
    #[arg(long, value_name = "SECONDS", env = "BILLOW_HEADER_READ_TIMEOUT_SECONDS",
          default_value_t = ConnectionLimits::default().header_read_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout_seconds: u64,
    /// Answer 408 and close the connection when a request's body has not arrived whole this long
    /// after its head.
    #[arg(long, value_name = "SECONDS", env = "BILLOW_BODY_READ_TIMEOUT_SECONDS",
          default_value_t = ConnectionLimits::default().body_read_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    body_read_timeout_seconds: u64,
    /// The most connections open at once; more wait in the listen backlog until one closes. Keep
    /// it below the process's file-descriptor limit (`ulimit -n`) less the database's.
    #[arg(long, value_name = "COUNT", env = "BILLOW_CONNECTIONS_MAX",
          default_value_t = ConnectionLimits::default().connections_max,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    connections_max: usize,
}

impl ConnectionArgs {
    fn to_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            body_read_timeout: Duration::from_secs(self.body_read_timeout_seconds),
            connections_max: self.connections_max,
        }
    }
}

/// Serves until Ctrl-C or SIGTERM.
///
/// # Errors
///
/// When logging cannot start, the database options are wrong, or the server cannot start or fails.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    telemetry::init()?;
    let settings = Settings {
        bind: args.bind,
        database: args.database.to_database()?,
    };
    crate::block_on(async {
        let application = Application::build(settings)
            .await
            .context("could not start the server")?
            .with_billing(args.billing.to_settings())
            .with_connection_limits(args.connections.to_limits())
            .with_profiles(args.profiles);
        application
            .run_until_stopped()
            .await
            .context("the server failed")
    })??;
    Ok(ExitCode::SUCCESS)
}
