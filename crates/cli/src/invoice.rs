//! `billow invoice run [--workspace NAME] [--now RFC3339] [--billing-lease-seconds N]`: one
//! billing run, as the scheduler inside `serve` does on its interval, then exit.
//!
//! Safe beside running servers: customers are claimed through the same database leases, and an
//! invoice is finalized (numbered) at most once.

use std::process::ExitCode;
use std::sync::Arc;

use billow_billing::clock::{Clock, ManualClock, SystemClock};
use billow_billing::{run_billing, Billing, BillingSettings};
use billow_store::{Store, WorkspaceId};
use jiff::{SignedDuration, Timestamp};

use crate::database::DatabaseArgs;

#[derive(Debug, clap::Args)]
pub struct InvoiceArgs {
    #[command(subcommand)]
    command: InvoiceCommand,
}

#[derive(Debug, clap::Subcommand)]
enum InvoiceCommand {
    /// Run billing now: draft due invoices, finalize those past the grace period, record late
    /// usage. Prints what the run did as JSON.
    Run(RunArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Only this workspace (its name); all workspaces with subscriptions by default.
    #[arg(long, value_name = "NAME")]
    workspace: Option<String>,
    /// Bill as if it were this instant (RFC 3339) instead of the system clock's. Leases are
    /// still measured on the system clock.
    #[arg(long, value_name = "RFC3339")]
    now: Option<Timestamp>,
    /// How long due invoices stay drafts, open to late usage, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    grace_period_seconds: i64,
    /// How long the run holds each customer, in real seconds; if the run dies, other runs take
    /// its customers over after it.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        value_parser = clap::value_parser!(i64).range(1..)
    )]
    billing_lease_seconds: i64,
    #[command(flatten)]
    database: DatabaseArgs,
}

/// The billing options of `billow serve`.
#[derive(Debug, clap::Args)]
pub struct BillingArgs {
    /// How often the billing scheduler runs, in seconds; 0 turns it off.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        env = "BILLOW_BILLING_INTERVAL_SECONDS"
    )]
    billing_interval_seconds: u64,
    /// How long due invoices stay drafts, open to late usage, before they are finalized.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 3600,
        env = "BILLOW_GRACE_PERIOD_SECONDS"
    )]
    grace_period_seconds: i64,
    /// How long a billing run holds a customer; a dead node's customers are taken over after it.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 60,
        env = "BILLOW_BILLING_LEASE_SECONDS"
    )]
    billing_lease_seconds: i64,
    /// The bank account that invoices' payment instructions (manual provider) name.
    #[arg(long, value_name = "TEXT", env = "BILLOW_BANK_ACCOUNT")]
    bank_account: Option<String>,
}

impl BillingArgs {
    /// The server's billing settings.
    pub fn to_settings(&self) -> BillingSettings {
        BillingSettings {
            grace_period: SignedDuration::from_secs(self.grace_period_seconds),
            lease_duration: SignedDuration::from_secs(self.billing_lease_seconds),
            interval: (self.billing_interval_seconds > 0)
                .then(|| std::time::Duration::from_secs(self.billing_interval_seconds)),
            bank_account: self
                .bank_account
                .clone()
                .unwrap_or_else(|| BillingSettings::default().bank_account),
            ..BillingSettings::default()
        }
    }
}

/// Runs an `invoice` subcommand.
///
/// # Errors
///
/// When the database cannot be opened or migrated, the workspace is unknown, or the run fails.
pub fn run(args: InvoiceArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        InvoiceCommand::Run(args) => run_once(args),
    }
}

fn run_once(args: RunArgs) -> anyhow::Result<ExitCode> {
    let database = args.database.to_database()?;
    crate::block_on(async {
        let store = Store::open(&database).await?;
        store.migrate().await?;
        let workspace = match &args.workspace {
            Some(name) => Some(workspace_named(&store, name).await?),
            None => None,
        };
        let clock: Arc<dyn Clock> = match args.now {
            Some(now) => Arc::new(ManualClock::new(now)),
            None => Arc::new(SystemClock),
        };
        let settings = BillingSettings {
            grace_period: SignedDuration::from_secs(args.grace_period_seconds),
            lease_duration: SignedDuration::from_secs(args.billing_lease_seconds),
            interval: None,
            ..BillingSettings::default()
        };
        let billing = Billing::new(store.clone())
            .with_clock(clock)
            .with_settings(settings);
        let report = run_billing(&billing, workspace.as_ref())
            .await
            .map_err(|error| anyhow::Error::new(error).context("the billing run failed"))?;
        store.close().await;
        println!("{}", serde_json::to_string_pretty(&report)?);
        anyhow::Ok(ExitCode::SUCCESS)
    })?
}

/// The id of the workspace named `name`, among those with subscriptions.
async fn workspace_named(store: &Store, name: &str) -> anyhow::Result<WorkspaceId> {
    for id in store.billed_workspaces().await? {
        let workspace = store.workspace(&id).await?;
        if workspace.is_some_and(|w| w.name.as_str() == name) {
            return Ok(id);
        }
    }
    anyhow::bail!("no workspace named {name:?} has subscriptions")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn the_lease_lasts_a_positive_number_of_seconds() {
        let cli = Cli::try_parse_from(["billow", "--billing-lease-seconds", "2"]).unwrap();
        assert_eq!(cli.run.billing_lease_seconds, 2);
        assert_eq!(
            Cli::try_parse_from(["billow"])
                .unwrap()
                .run
                .billing_lease_seconds,
            60
        );
        for refused in ["0", "-1", "soon"] {
            let argument = format!("--billing-lease-seconds={refused}");
            let error = Cli::try_parse_from(["billow", argument.as_str()])
                .unwrap_err()
                .to_string();
            assert!(error.contains("--billing-lease-seconds"), "{error}");
        }
    }

    #[test]
    fn now_is_parsed_as_an_rfc3339_instant() {
        let cli = Cli::try_parse_from(["billow", "--now", "2024-02-01T01:00:00Z"]).unwrap();
        assert_eq!(cli.run.now, Some("2024-02-01T01:00:00Z".parse().unwrap()));
        assert!(Cli::try_parse_from(["billow", "--now", "february"]).is_err());
    }
}
