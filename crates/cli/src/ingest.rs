//! `billow ingest FILE`: usage events from a file, straight into the store.
//!
//! The file is NDJSON (one CloudEvent per line) or CSV (a header row naming the columns `id`,
//! `source`, `type`, `subject`, `time` and optionally `data`, a JSON object, and `specversion`).
//! Each event is checked exactly as `POST /api/v1/events` checks it
//! (`billow_server::cloud_event`), and stored with the same exactly-once guarantee: a line whose
//! (source, id) is already stored counts as a duplicate, so loading a file twice stores it once.
//! Events are written in transactions of [`BATCH_EVENTS`], each durable before the next; an
//! interrupted load is finished by running it again.
//!
//! The workspace (`--workspace NAME`) must exist, as for every other verb that names one
//! (`billow keys list|revoke`, `billow invoice run`), unless `--create-workspace` asks for it to be
//! created: events loaded into a misspelt, new workspace would never be billed. (`billow keys
//! create` does create its workspace: it is how a workspace is made, and it prints the workspace it
//! made.)
//!
//! The summary line, on standard error: accepted, duplicates, rejected with their line numbers.
//! The exit status is 1 when a line was rejected (the valid lines are stored all the same), or when
//! nothing was loaded (an unknown workspace, a file that cannot be read).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use billow_server::cloud_event::{check_event, parse_event, EventError, EventFields, Field};
use billow_store::{InsertOutcome, NewEvent, Store, WorkspaceId, WorkspaceName};
use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;
use serde_json::value::RawValue;

use crate::database::DatabaseArgs;

/// Events per transaction.
const BATCH_EVENTS: usize = 10_000;
/// Events moved per compaction transaction after the load.
const COMPACT_EVENTS_MAX: u64 = 100_000;
/// Rejected lines listed one by one; past this many, only counted.
const REJECTED_LISTED_MAX: usize = 20;

#[derive(Debug, clap::Args)]
pub struct IngestArgs {
    /// The file to load.
    file: PathBuf,
    /// The workspace the events belong to (its name). It must exist, unless
    /// --create-workspace is given: a misspelt name must not load events into a new workspace
    /// that nothing bills.
    #[arg(long, value_name = "NAME")]
    workspace: String,
    /// Create the workspace when no workspace has this name.
    #[arg(long)]
    create_workspace: bool,
    /// The file's format.
    #[arg(long, value_enum, default_value_t = Format::Ndjson)]
    format: Format,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Format {
    /// One CloudEvent JSON object per line.
    Ndjson,
    /// A header row, then one event per row.
    Csv,
}

/// What a load did.
#[derive(Debug, Default)]
struct Summary {
    outcome: InsertOutcome,
    rejected: usize,
    /// The first rejected lines: line number (1-based) and why.
    rejected_lines: Vec<(usize, String)>,
}

impl Summary {
    fn reject(&mut self, errors: &[EventError]) {
        self.rejected += 1;
        if self.rejected_lines.len() < REJECTED_LISTED_MAX {
            if let Some(first) = errors.first() {
                let reasons: Vec<String> = errors
                    .iter()
                    .map(|error| match error.field {
                        "" => error.reason.clone(),
                        field => format!("{field} {}", error.reason),
                    })
                    .collect();
                self.rejected_lines.push((first.index, reasons.join("; ")));
            }
        }
    }
}

/// Loads the file.
///
/// # Errors
///
/// When the workspace name is invalid, no workspace has it (without `--create-workspace`), the
/// file cannot be read, or the database cannot be opened or written.
pub fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let name = WorkspaceName::parse(&args.workspace).context("invalid --workspace")?;
    let database = args.database.to_database()?;
    let file = File::open(&args.file)
        .with_context(|| format!("could not open {}", args.file.display()))?;
    let length_bytes = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    let progress = ProgressBar::new(length_bytes).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{wide_bar}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {msg}",
        )
        .context("progress template")?
        .progress_chars("=> "),
    );
    let reader = BufReader::with_capacity(1 << 20, progress.wrap_read(file));
    let summary = crate::block_on(async {
        let store = Store::open(&database).await?;
        store.migrate().await?;
        let workspace = if args.create_workspace {
            store
                .workspace_named_or_created(&name, Timestamp::now())
                .await?
        } else {
            let found = store.workspace_named(&name).await?;
            let Some(workspace) = found else {
                store.close().await;
                anyhow::bail!(
                    "no workspace is named {:?}: check the name, or pass --create-workspace \
                     to create it (`billow keys create --workspace NAME` creates a workspace with \
                     its first API key)",
                    name.as_str()
                );
            };
            workspace
        };
        let mut loader = Loader {
            store: &store,
            workspace_id: &workspace.id,
            batch: Vec::with_capacity(BATCH_EVENTS),
            summary: Summary::default(),
            progress: &progress,
        };
        match args.format {
            Format::Ndjson => loader.ndjson(reader).await?,
            Format::Csv => loader.csv(reader).await?,
        }
        loader.flush().await?;
        // Into chunks per subject, so that billing reads each customer's usage cheaply.
        while store.compact_events(COMPACT_EVENTS_MAX).await? > 0 {
            // As the server's writer does after compacting: a subject's small chunks into one.
            while store.merge_event_chunks(COMPACT_EVENTS_MAX).await?.subjects > 0 {}
        }
        store.close().await;
        anyhow::Ok(loader.summary)
    })??;
    progress.finish_and_clear();
    Ok(report(&args.file, &summary))
}

fn report(file: &std::path::Path, summary: &Summary) -> ExitCode {
    let mut line = format!(
        "ingested {}: {} accepted, {} duplicates, {} rejected",
        file.display(),
        summary.outcome.inserted,
        summary.outcome.duplicates,
        summary.rejected
    );
    if !summary.rejected_lines.is_empty() {
        let numbers: Vec<String> = summary
            .rejected_lines
            .iter()
            .map(|(number, _)| number.to_string())
            .collect();
        let more = if summary.rejected > summary.rejected_lines.len() {
            ", ..."
        } else {
            ""
        };
        let lines = if numbers.len() == 1 { "line" } else { "lines" };
        line.push_str(&format!(" ({lines} {}{more})", numbers.join(", ")));
    }
    eprintln!("{line}");
    for (number, reason) in &summary.rejected_lines {
        eprintln!("  line {number}: {reason}");
    }
    if summary.rejected == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

struct Loader<'a> {
    store: &'a Store,
    workspace_id: &'a WorkspaceId,
    batch: Vec<NewEvent>,
    summary: Summary,
    progress: &'a ProgressBar,
}

impl Loader<'_> {
    async fn ndjson(&mut self, reader: impl BufRead) -> anyhow::Result<()> {
        for (index, line) in reader.lines().enumerate() {
            let number = index + 1;
            let line = line.with_context(|| format!("could not read line {number}"))?;
            if line.trim().is_empty() {
                continue;
            }
            self.take(parse_event(&line, number)).await?;
        }
        Ok(())
    }

    async fn csv(&mut self, reader: impl Read) -> anyhow::Result<()> {
        let mut csv = csv::ReaderBuilder::new().from_reader(reader);
        let headers = csv
            .headers()
            .context("could not read the CSV header")?
            .clone();
        let column = |name: &str| headers.iter().position(|header| header.trim() == name);
        let columns = CsvColumns {
            specversion: column("specversion"),
            id: column("id"),
            source: column("source"),
            event_type: column("type"),
            subject: column("subject"),
            time: column("time"),
            datacontenttype: column("datacontenttype"),
            data: column("data"),
        };
        let mut record = csv::StringRecord::new();
        // The header is line 1.
        let mut number = 1;
        while csv
            .read_record(&mut record)
            .with_context(|| format!("could not read CSV line {}", number + 1))?
        {
            number += 1;
            let event = columns.event(&record, number);
            self.take(event).await?;
        }
        Ok(())
    }

    async fn take(&mut self, event: Result<NewEvent, Vec<EventError>>) -> anyhow::Result<()> {
        match event {
            Ok(event) => self.batch.push(event),
            Err(errors) => self.summary.reject(&errors),
        }
        if self.batch.len() >= BATCH_EVENTS {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let outcome = self
            .store
            .insert_events(self.workspace_id, &self.batch, Timestamp::now())
            .await
            .context("could not store the events")?;
        self.batch.clear();
        self.summary.outcome.inserted += outcome.inserted;
        self.summary.outcome.duplicates += outcome.duplicates;
        self.progress.set_message(format!(
            "{} accepted, {} duplicates, {} rejected",
            self.summary.outcome.inserted, self.summary.outcome.duplicates, self.summary.rejected
        ));
        Ok(())
    }
}

/// Where each attribute is in a CSV row.
struct CsvColumns {
    specversion: Option<usize>,
    id: Option<usize>,
    source: Option<usize>,
    event_type: Option<usize>,
    subject: Option<usize>,
    time: Option<usize>,
    datacontenttype: Option<usize>,
    data: Option<usize>,
}

impl CsvColumns {
    fn event(
        &self,
        record: &csv::StringRecord,
        number: usize,
    ) -> Result<NewEvent, Vec<EventError>> {
        let cell = |column: Option<usize>| column.and_then(|column| record.get(column));
        let field = |column: Option<usize>| cell(column).map(Field::text);
        // A CSV file has no place for the version: 1.0 unless a column says otherwise.
        let specversion = field(self.specversion).or(Some(Field::text("1.0")));
        let data_text = cell(self.data).filter(|data| !data.trim().is_empty());
        let data: Option<&RawValue> = match data_text.map(serde_json::from_str) {
            None => None,
            Some(Ok(raw)) => Some(raw),
            Some(Err(error)) => {
                return Err(vec![EventError {
                    index: number,
                    field: "data",
                    reason: format!("is not JSON: {error}"),
                }])
            }
        };
        let fields = EventFields {
            specversion,
            id: field(self.id),
            source: field(self.source),
            event_type: field(self.event_type),
            subject: field(self.subject),
            time: field(self.time),
            datacontenttype: field(self.datacontenttype),
            data: data.map(RawValue::get),
        };
        check_event(&fields, number)
    }
}
