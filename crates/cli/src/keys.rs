//! `billow keys create --workspace NAME`: the first API key of a workspace (and the workspace).
//!
//! The secret is printed once, on standard output, and only its SHA-256 hash is stored
//! (`billow_store::CredentialSecret`); nothing else is printed there, so that
//! `KEY=$(billow keys create --workspace acme)` captures the key alone.

use std::process::ExitCode;

use anyhow::Context;
use billow_store::{Store, WorkspaceName};
use jiff::Timestamp;

use crate::database::DatabaseArgs;

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Create a workspace API key and print its secret once. The workspace is created when no
    /// workspace has this name.
    Create(CreateArgs),
}

#[derive(Debug, clap::Args)]
struct CreateArgs {
    /// The workspace's name (1 to 100 characters).
    #[arg(long, value_name = "NAME")]
    workspace: String,
    #[command(flatten)]
    database: DatabaseArgs,
}

/// Runs a `keys` subcommand.
///
/// # Errors
///
/// When the workspace name is invalid, or the database cannot be opened, migrated or written.
pub fn run(args: KeysArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        KeysCommand::Create(args) => create(args),
    }
}

fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let name = WorkspaceName::parse(&args.workspace).context("invalid --workspace")?;
    let database = args.database.to_database()?;
    crate::block_on(async {
        let store = Store::open(&database).await?;
        // A key is often the first thing made on a new database: migrate as `serve` would.
        store.migrate().await?;
        let now = Timestamp::now();
        let workspace = store.workspace_named_or_created(&name, now).await?;
        let (key, secret) = store.create_api_key(&workspace.id, now).await?;
        store.close().await;
        eprintln!(
            "created API key {} ({}) for workspace {} ({}); it is shown only once:",
            key.id, key.prefix, workspace.name, workspace.id
        );
        println!("{}", secret.expose());
        anyhow::Ok(())
    })??;
    Ok(ExitCode::SUCCESS)
}
