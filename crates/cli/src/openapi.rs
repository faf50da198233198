//! `billow openapi`: print the OpenAPI 3.1 document of the native API, the one a server serves at
//! `/api/v1/openapi.json`, without starting one (to generate a client, or check one).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct OpenApiArgs {}

/// Writes the document as pretty-printed JSON to standard output.
///
/// # Errors
///
/// When standard output cannot be written.
pub fn run(OpenApiArgs {}: OpenApiArgs) -> anyhow::Result<ExitCode> {
    let json = billow_server::openapi_document()
        .to_pretty_json()
        .context("could not write the OpenAPI document as JSON")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{json}").context("could not write to standard output")?;
    Ok(ExitCode::SUCCESS)
}
