//! `billow bench ...`.

use std::process::ExitCode;

/// Arguments of `billow bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// What to measure.
    #[command(subcommand)]
    pub target: BenchTarget,
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchTarget {
    /// Invoices rated and assembled per second on one core.
    Rating {
        /// How long to measure, in seconds.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
    },
}

/// Runs `billow bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("not yet")
}
