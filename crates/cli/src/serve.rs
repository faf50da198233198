//! `billow serve`: the HTTP API.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use billow_server::{Application, Settings};

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
            .with_billing(args.billing.to_settings());
        application
            .run_until_stopped()
            .await
            .context("the server failed")
    })??;
    Ok(ExitCode::SUCCESS)
}
