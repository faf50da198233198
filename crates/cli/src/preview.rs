//! `billow preview SCENARIO [--check]`.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `billow preview`.
#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// The scenario file (JSON).
    pub file: PathBuf,
    /// Compare with the file's `expect` block and exit non-zero on a difference.
    #[arg(long)]
    pub check: bool,
}

/// Runs `billow preview`.
pub fn run(args: PreviewArgs) -> anyhow::Result<ExitCode> {
    let _ = args;
    anyhow::bail!("not yet")
}
