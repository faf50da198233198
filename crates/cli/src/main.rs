//! `billow`: usage-based billing and invoicing for cloud platforms.
//!
//! A thin shell: parse the arguments, hand them to the subcommand's module, turn its outcome into
//! an exit code. `serve` and `migrate` log through `tracing` (filter `RUST_LOG`, default `info`);
//! `preview` and `bench` print their results and log nothing.

mod bench;
mod bench_billing;
mod bench_common;
mod bench_ingest;
mod bench_months;
mod bench_seed;
mod database;
mod ingest;
mod invoice;
mod keys;
mod migrate;
mod openapi;
mod preview;
mod serve;
mod telemetry;

/// mimalloc: billing runs and request handling allocate many small, short-lived objects (invoice
/// lines, traces, JSON), where it is measurably faster than the system allocator (BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::future::Future;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "billow",
    version,
    about = "Usage-based billing and invoicing for cloud platforms."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API, creating and migrating the database first when needed.
    Serve(serve::ServeArgs),
    /// Apply pending database migrations, then exit.
    Migrate(migrate::MigrateArgs),
    /// Run billing: draft, finalize and number invoices.
    Invoice(invoice::InvoiceArgs),
    /// Manage workspace API keys.
    Keys(keys::KeysArgs),
    /// Price an offline scenario file and print the invoices billow would issue (no database).
    Preview(preview::PreviewArgs),
    /// Measure billow's throughput.
    Bench(bench::BenchArgs),
    /// Load usage events from an NDJSON or CSV file into the store, exactly once per (source, id).
    Ingest(ingest::IngestArgs),
    /// Print the OpenAPI 3.1 document of the native API (`/api/v1/openapi.json`).
    Openapi(openapi::OpenApiArgs),
}

fn main() -> ExitCode {
    no_transparent_huge_pages();
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            let mut previous = error.to_string();
            for cause in error.chain().skip(1) {
                // Some errors (sqlx's among them) repeat their source in their own message.
                let message = cause.to_string();
                if !previous.ends_with(&message) {
                    eprintln!("  caused by: {message}");
                }
                previous = message;
            }
            ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process, before it allocates much.
///
/// mimalloc asks the kernel for huge pages on its memory (`madvise(MADV_HUGEPAGE)`), and the kernel
/// uses them for any large mapping where THP is `always` (Debian's default). Ingestion allocates
/// and frees request bodies, decoded events and chunk buffers at a high rate, and mimalloc gives
/// freed memory back to the kernel: every later touch of such memory then faulted in, and zeroed,
/// a whole 2 MiB page. That zeroing was about a third of the CPU time of `billow bench ingest`
/// (`perf`), and without huge pages the same binary ingests ~27 % faster with ~20 % less peak
/// memory (alternating runs of `billow bench ingest`). Best effort: a kernel that refuses leaves
/// them on.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}

fn run() -> anyhow::Result<ExitCode> {
    match Cli::parse().command {
        Command::Serve(args) => serve::run(args),
        Command::Migrate(args) => migrate::run(args),
        Command::Invoice(args) => invoice::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Preview(args) => preview::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Ingest(args) => ingest::run(args),
        Command::Openapi(args) => openapi::run(args),
    }
}

/// Runs `future` to completion on a multi-threaded runtime: only the subcommands that do I/O
/// start one.
fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    let runtime = tokio::runtime::Runtime::new().context("could not start the async runtime")?;
    Ok(runtime.block_on(future))
}
