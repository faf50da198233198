//! `billow migrate`: apply pending migrations without serving, e.g. before a rolling deploy.

use std::process::ExitCode;

use billow_store::Store;

use crate::database::DatabaseArgs;
use crate::telemetry;

#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    database: DatabaseArgs,
}

/// Opens the database (creating an SQLite file when absent) and applies pending migrations.
///
/// # Errors
///
/// When logging cannot start, the database options are wrong, or opening or migrating fails.
pub fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    telemetry::init()?;
    let database = args.database.to_database()?;
    crate::block_on(async {
        let store = Store::open(&database).await?;
        store.migrate().await?;
        store.close().await;
        tracing::info!(%database, "migrations applied");
        anyhow::Ok(())
    })??;
    Ok(ExitCode::SUCCESS)
}
