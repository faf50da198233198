//! The database options shared by `serve` and `migrate`.

use std::path::PathBuf;

use anyhow::Context;
use billow_store::Database;

#[derive(Debug, clap::Args)]
pub struct DatabaseArgs {
    /// The SQLite data file, created (with its directory) when absent. Not used when a PostgreSQL
    /// URL is given.
    #[arg(long, value_name = "PATH", default_value = "billow.db")]
    data: PathBuf,
    /// Use the PostgreSQL database at this postgres:// URL instead of the SQLite file.
    #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl DatabaseArgs {
    /// The database these options select. An empty `DATABASE_URL` counts as unset.
    pub fn to_database(&self) -> anyhow::Result<Database> {
        match self.database_url.as_deref().filter(|url| !url.is_empty()) {
            Some(url) => Database::from_url(url).context("DATABASE_URL is not usable"),
            None => Ok(Database::sqlite(&self.data)),
        }
    }
}
