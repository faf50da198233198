//! Logging for the subcommands that run services: `tracing` events formatted to stderr.
//!
//! [`get_subscriber`] takes its sink as an argument so that a test can capture the output;
//! [`init`] installs it for the process.

use std::io::IsTerminal;

use anyhow::Context;
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The filter when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info";

/// Whether log lines carry ANSI color codes.
#[derive(Clone, Copy, Debug)]
pub enum Colors {
    Enabled,
    Disabled,
}

/// A subscriber writing human-readable lines to `sink`, keeping the events `filter` lets through.
pub fn get_subscriber<Sink>(
    filter: EnvFilter,
    sink: Sink,
    colors: Colors,
) -> impl Subscriber + Send + Sync
where
    Sink: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(sink)
        .with_ansi(matches!(colors, Colors::Enabled))
        .finish()
}

/// Logs to stderr with the filter in `RUST_LOG`, or `info`; colors only on a terminal.
///
/// # Errors
///
/// When `RUST_LOG` is set but is not a valid filter, or a subscriber is already installed.
pub fn init() -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) => EnvFilter::try_new(&directives)
            .with_context(|| format!("RUST_LOG={directives:?} is not a valid log filter"))?,
        Err(std::env::VarError::NotPresent) => EnvFilter::new(DEFAULT_FILTER),
        Err(error) => return Err(error).context("RUST_LOG is not usable"),
    };
    let colors = if std::io::stderr().is_terminal() {
        Colors::Enabled
    } else {
        Colors::Disabled
    };
    let subscriber = get_subscriber(filter, std::io::stderr, colors);
    tracing::subscriber::set_global_default(subscriber).context("could not start logging")
}
