//! `billow keys create --workspace NAME`: the first API key of a workspace (and the workspace);
//! `billow keys list --workspace NAME` and `billow keys revoke KEY_ID --workspace NAME`.
//!
//! The secret is printed once, on standard output, and only its SHA-256 hash is stored
//! (`billow_store::CredentialSecret`); nothing else is printed there, so that
//! `KEY=$(billow keys create --workspace acme)` captures the key alone.

use std::process::ExitCode;

use anyhow::Context;
use billow_store::{Store, Workspace, WorkspaceName};
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
    /// List a workspace's API keys (ids and display prefixes, never secrets).
    List(WorkspaceArgs),
    /// Revoke an API key: requests made with it are refused from then on.
    Revoke(RevokeArgs),
}

#[derive(Debug, clap::Args)]
struct WorkspaceArgs {
    /// The workspace's name.
    #[arg(long, value_name = "NAME")]
    workspace: String,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Debug, clap::Args)]
struct RevokeArgs {
    /// The key's id (`key_…`), as `keys list` shows it.
    #[arg(value_name = "KEY_ID")]
    key_id: String,
    #[command(flatten)]
    workspace: WorkspaceArgs,
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
        KeysCommand::List(args) => list(args),
        KeysCommand::Revoke(args) => revoke(args),
    }
}

/// Opens and migrates the database of `args`, and finds its workspace.
async fn open_workspace(args: &WorkspaceArgs) -> anyhow::Result<(Store, Workspace)> {
    let name = WorkspaceName::parse(&args.workspace).context("invalid --workspace")?;
    let store = Store::open(&args.database.to_database()?).await?;
    store.migrate().await?;
    let workspace = store
        .workspace_named(&name)
        .await?
        .with_context(|| format!("no workspace is named {:?}", name.as_str()))?;
    Ok((store, workspace))
}

fn list(args: WorkspaceArgs) -> anyhow::Result<ExitCode> {
    crate::block_on(async {
        let (store, workspace) = open_workspace(&args).await?;
        let keys = store.api_keys(&workspace.id).await?;
        store.close().await;
        println!(
            "{:<30}  {:<11}  {:<27}  revoked at",
            "id", "prefix", "created at"
        );
        for key in keys {
            let revoked_at = key.revoked_at.map(|at| at.to_string()).unwrap_or_default();
            println!(
                "{:<30}  {:<11}  {:<27}  {revoked_at}",
                key.id,
                key.prefix,
                key.created_at.to_string()
            );
        }
        anyhow::Ok(())
    })??;
    Ok(ExitCode::SUCCESS)
}

fn revoke(args: RevokeArgs) -> anyhow::Result<ExitCode> {
    crate::block_on(async {
        let (store, workspace) = open_workspace(&args.workspace).await?;
        let revoked = store
            .revoke_api_key(&workspace.id, &args.key_id, Timestamp::now())
            .await?;
        store.close().await;
        anyhow::ensure!(
            revoked,
            "workspace {} has no unrevoked key {}",
            workspace.name,
            args.key_id
        );
        eprintln!("revoked {}", args.key_id);
        anyhow::Ok(())
    })??;
    Ok(ExitCode::SUCCESS)
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
