//! `billow bench ingest`: usage ingestion over HTTP, beside the naive way of storing the same
//! events, measured in the same run (BENCHMARKS.md, docs/ingestion.md).
//!
//! For each backend (SQLite always; PostgreSQL when `DATABASE_URL` names a server):
//! 1. the naive baseline: the same kind of events, with random UUIDv4 ids, written into a table
//!    keyed by (source, id), in 1,000-row transactions (SQLite: multi-row `INSERT ... ON CONFLICT
//!    DO NOTHING`, 100 rows per statement, WAL with `synchronous=FULL`; PostgreSQL: one `COPY` per
//!    transaction), on one connection;
//! 2. billow: the server started in this process on port 0 over a fresh database, and
//!    `--connections` HTTP connections each sending batches of `--batch` events to
//!    `POST /api/v1/events` and waiting for the 202. Events per second from the first request to
//!    the last answer; the peak RSS of the process over that phase (server and load generator
//!    both); then a check that exactly the events sent are stored and that a resent batch is
//!    counted as duplicates.

use crate::bench_common::{per_second, reset_peak_rss, thousands, with_database, ProcessCpu};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{ensure, Context};
use billow_server::{Application, Settings};
use billow_store::{Database, PostgresUrl, Store, WorkspaceId, WorkspaceName};
use jiff::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, QueryBuilder, Sqlite};

const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+json";
/// Rows per transaction in the baselines, as in DESIGN.md §6.
const BASELINE_TRANSACTION_ROWS: usize = 1_000;
/// Rows per multi-row INSERT in the SQLite baseline.
const BASELINE_STATEMENT_ROWS: usize = 100;

/// Arguments of `billow bench ingest`.
#[derive(Debug, clap::Args)]
pub struct IngestBenchArgs {
    /// Events sent to billow, per backend.
    #[arg(long, default_value_t = 2_000_000)]
    events: u64,
    /// Events per request.
    #[arg(long, default_value_t = 1_000)]
    batch: u64,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 8)]
    connections: u64,
    /// Rows each naive baseline writes.
    #[arg(long, default_value_t = 200_000)]
    baseline_events: u64,
    /// Distinct subjects (customers) the events name.
    #[arg(long, default_value_t = 1_000)]
    subjects: u64,
    /// A PostgreSQL server whose user may create databases: the bench creates a fresh database
    /// there and drops it afterwards. Without it, only SQLite is measured.
    #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Where the SQLite files are made (and removed): the system's temporary directory unless
    /// given. Put it on the disk you want measured.
    #[arg(long, value_name = "PATH")]
    directory: Option<PathBuf>,
    /// Skip the naive baselines.
    #[arg(long)]
    no_baseline: bool,
}

/// Runs the benchmark.
///
/// # Errors
///
/// When a database cannot be set up, the server cannot start, or a request fails.
pub async fn run(args: IngestBenchArgs) -> anyhow::Result<()> {
    ensure!(
        args.batch > 0 && args.connections > 0 && args.subjects > 0,
        "sizes must be positive"
    );
    println!(
        "bench ingest: {} events per backend, {} per request, {} connections, {} subjects, random UUIDv4 ids, ~{} bytes per event",
        args.events,
        args.batch,
        args.connections,
        args.subjects,
        EventFactory::new(0, args.subjects).body(1).len() - 2
    );
    let directory = args
        .directory
        .clone()
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("billow-bench-{}", std::process::id()));
    std::fs::create_dir_all(&directory)
        .with_context(|| format!("could not create {}", directory.display()))?;
    let result = run_backends(&args, &directory).await;
    let _ = std::fs::remove_dir_all(&directory);
    result
}

async fn run_backends(args: &IngestBenchArgs, directory: &Path) -> anyhow::Result<()> {
    if !args.no_baseline {
        let path = directory.join("naive.db");
        let rate = sqlite_baseline(&path, args).await?;
        println!(
            "sqlite   naive  : multi-row INSERT into a table keyed by (source, id), {BASELINE_TRANSACTION_ROWS}-row transactions, synchronous=FULL: {} rows/s",
            thousands(rate)
        );
    }
    let database = Database::sqlite(directory.join("billow.db"));
    let report = billow_over_http(database, args).await?;
    println!("sqlite   billow : {report}");

    let Some(admin_url) = args.database_url.as_deref().filter(|url| !url.is_empty()) else {
        println!("postgres: skipped (no DATABASE_URL)");
        return Ok(());
    };
    let name = format!("billow_bench_{}", std::process::id());
    let mut admin = PgConnection::connect(admin_url)
        .await
        .context("could not connect to DATABASE_URL")?;
    admin
        .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await?;
    let url: PostgresUrl = admin_url.parse()?;
    let url = url.with_database_name(&name);
    let result = postgres_half(&url, args).await;
    admin
        .execute(format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#).as_str())
        .await?;
    result
}

async fn postgres_half(url: &PostgresUrl, args: &IngestBenchArgs) -> anyhow::Result<()> {
    if !args.no_baseline {
        let rate = postgres_baseline(url, args).await?;
        println!(
            "postgres naive  : COPY into a table keyed by (source, id), {BASELINE_TRANSACTION_ROWS}-row transactions: {} rows/s",
            thousands(rate)
        );
    }
    let report = billow_over_http(Database::Postgres(url.clone()), args).await?;
    println!("postgres billow : {report}");
    Ok(())
}

/// The naive baseline on SQLite: a random-key B-tree insert per event.
async fn sqlite_baseline(path: &Path, args: &IngestBenchArgs) -> anyhow::Result<u64> {
    let mut connection = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await?;
    connection
        .execute(
            "CREATE TABLE naive_events (source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, \
             subject TEXT NOT NULL, time TEXT NOT NULL, data TEXT, PRIMARY KEY (source, id))",
        )
        .await?;
    let rows = baseline_rows(args);
    let started = Instant::now();
    for transaction_rows in rows.chunks(BASELINE_TRANSACTION_ROWS) {
        let mut transaction = connection.begin().await?;
        for statement_rows in transaction_rows.chunks(BASELINE_STATEMENT_ROWS) {
            let mut query: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                "INSERT INTO naive_events (source, id, type, subject, time, data) ",
            );
            query.push_values(statement_rows, |mut values, row| {
                values
                    .push_bind(&row.source)
                    .push_bind(&row.id)
                    .push_bind("cpu")
                    .push_bind(&row.subject)
                    .push_bind(&row.time)
                    .push_bind(&row.data);
            });
            query.push(" ON CONFLICT DO NOTHING");
            query.build().execute(&mut *transaction).await?;
        }
        transaction.commit().await?;
    }
    Ok(per_second(rows.len() as u64, started.elapsed()))
}

/// The naive baseline on PostgreSQL: COPY into a table whose primary key is (source, id).
async fn postgres_baseline(url: &PostgresUrl, args: &IngestBenchArgs) -> anyhow::Result<u64> {
    let admin_url = args.database_url.as_deref().unwrap_or_default();
    let name = url.database_name().unwrap_or_default();
    let mut connection = PgConnection::connect(&with_database(admin_url, name)).await?;
    connection
        .execute(
            "CREATE TABLE naive_events (source text NOT NULL, id text NOT NULL, type text NOT NULL, \
             subject text NOT NULL, time timestamptz NOT NULL, data jsonb, PRIMARY KEY (source, id))",
        )
        .await?;
    let rows = baseline_rows(args);
    let started = Instant::now();
    for transaction_rows in rows.chunks(BASELINE_TRANSACTION_ROWS) {
        let mut text = String::with_capacity(transaction_rows.len() * 200);
        for row in transaction_rows {
            text.push_str(&format!(
                "{}\t{}\tcpu\t{}\t{}\t{}\n",
                row.source, row.id, row.subject, row.time, row.data
            ));
        }
        let mut copy = connection
            .copy_in_raw("COPY naive_events (source, id, type, subject, time, data) FROM STDIN")
            .await?;
        copy.send(text.into_bytes()).await?;
        copy.finish().await?;
    }
    Ok(per_second(rows.len() as u64, started.elapsed()))
}

struct BaselineRow {
    source: String,
    id: String,
    subject: String,
    time: String,
    data: String,
}

fn baseline_rows(args: &IngestBenchArgs) -> Vec<BaselineRow> {
    let mut factory = EventFactory::new(u64::MAX, args.subjects);
    (0..args.baseline_events)
        .map(|_| {
            let (id, subject, cores) = factory.next_event();
            BaselineRow {
                source: factory.source.clone(),
                id,
                subject: format!("cus_{subject}"),
                time: factory.time.clone(),
                data: format!(r#"{{"cores":{cores},"project":"prj_{}"}}"#, subject % 7),
            }
        })
        .collect()
}

/// billow's ingestion endpoint, served in this process over `database`.
async fn billow_over_http(database: Database, args: &IngestBenchArgs) -> anyhow::Result<String> {
    let settings = Settings {
        bind: "127.0.0.1:0".parse()?,
        database: database.clone(),
    };
    let application = Application::build(settings).await?;
    let address = application.address();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    let store = Store::open(&database).await?;
    let name = WorkspaceName::parse("bench")?;
    let workspace = store
        .workspace_named_or_created(&name, Timestamp::now())
        .await?;
    let (_, secret) = store
        .create_api_key(&workspace.id, Timestamp::now())
        .await?;
    let endpoint = format!("http://{address}/api/v1/events");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(usize::try_from(args.connections)?)
        .build()?;
    let load = Load {
        client,
        endpoint,
        authorization: format!("Bearer {}", secret.expose()),
        batch: args.batch,
    };
    let requests = args.events.div_ceil(args.batch);
    // The bodies are made before the clock starts: the load generator shares the server's two
    // cores, and making 190 MB of JSON during the run would measure it instead of the server.
    let bodies = Arc::new(prepare_bodies(requests, args.batch, args.subjects));
    let bodies_mib = bodies.iter().map(String::len).sum::<usize>() / (1024 * 1024);
    reset_peak_rss();
    let cpu_before = ProcessCpu::read();
    let started = Instant::now();
    load.send_all(bodies.clone(), args.connections).await?;
    let elapsed = started.elapsed();
    let cpu = ProcessCpu::read().since(&cpu_before);
    let peak_rss_mib = peak_rss_kib().map(|kib| kib / 1024);
    let first_body = bodies.first().context("no request was sent")?.clone();
    drop(bodies);
    let sent = requests * args.batch;
    let resent = load.post(first_body).await?;
    ensure!(
        resent.duplicates == args.batch && resent.accepted == 0,
        "a resent batch was not counted as duplicates: {resent:?}"
    );
    // What a read costs while events wait in log chunks (a burst's backlog), and after.
    let read_before = one_subject_read(&store, &workspace.id).await?;
    let compaction_started = Instant::now();
    let mut compacted = 0;
    loop {
        let moved = store.compact_events(100_000).await?;
        if moved == 0 {
            break;
        }
        compacted += moved;
    }
    let compaction = compaction_started.elapsed();
    let read_after = one_subject_read(&store, &workspace.id).await?;
    let stored = count_stored(&store, &workspace.id, args.subjects).await?;
    ensure!(stored == sent, "{sent} events sent but {stored} stored");
    store.close().await;
    let _ = stop.send(());
    server.await??;
    Ok(format!(
        "POST /api/v1/events over HTTP: {} events in {:.2} s = {} events/s; peak RSS {} MiB ({} MiB of it the request bodies, made before the run); {} stored, a resent batch counted as {} duplicates; afterwards {} events left in log chunks compacted in {:.2} s (one subject's events read in {:.1?} before, {:.1?} after); process CPU over the run (load generator included): {}",
        thousands(sent),
        elapsed.as_secs_f64(),
        thousands(per_second(sent, elapsed)),
        peak_rss_mib.map_or("unknown".into(), |mib| mib.to_string()),
        bodies_mib,
        thousands(stored),
        resent.duplicates,
        thousands(compacted),
        compaction.as_secs_f64(),
        read_before,
        read_after,
        cpu.describe(elapsed),
    ))
}

/// How long reading every event of the first subject takes.
async fn one_subject_read(
    store: &Store,
    workspace_id: &WorkspaceId,
) -> anyhow::Result<std::time::Duration> {
    let started = Instant::now();
    let events = store
        .usage_events(
            workspace_id,
            &["cus_0".to_owned()],
            Timestamp::MIN,
            Timestamp::MAX,
        )
        .await?;
    ensure!(!events.is_empty(), "the first subject has events");
    Ok(started.elapsed())
}

async fn count_stored(
    store: &Store,
    workspace_id: &WorkspaceId,
    subjects: u64,
) -> anyhow::Result<u64> {
    let subjects: Vec<String> = (0..subjects)
        .map(|subject| format!("cus_{subject}"))
        .collect();
    let events = store
        .usage_events(workspace_id, &subjects, Timestamp::MIN, Timestamp::MAX)
        .await?;
    Ok(events.len() as u64)
}

#[derive(Debug)]
struct Answer {
    accepted: u64,
    duplicates: u64,
}

/// The load generator: connections each posting batches until all are sent.
#[derive(Clone)]
struct Load {
    client: reqwest::Client,
    endpoint: String,
    authorization: String,
    batch: u64,
}

impl Load {
    /// Sends every body over `connections` concurrent connections, each taking the next body
    /// not sent yet.
    async fn send_all(&self, bodies: Arc<Vec<String>>, connections: u64) -> anyhow::Result<()> {
        let next = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let load = self.clone();
            let next = next.clone();
            let bodies = bodies.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(body) = bodies.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let answer = load.post(body.clone()).await?;
                    ensure!(
                        answer.accepted == load.batch,
                        "a batch was not stored whole: {answer:?}"
                    );
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok(())
    }

    async fn post(&self, body: String) -> anyhow::Result<Answer> {
        let response = self
            .client
            .post(&self.endpoint)
            .header("content-type", BATCH_CONTENT_TYPE)
            .header("authorization", &self.authorization)
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        ensure!(
            status.as_u16() == 202,
            "POST /api/v1/events answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        let answer: serde_json::Value = serde_json::from_slice(&bytes)?;
        let count = |member: &str| answer[member].as_u64().context("a 202 without counts");
        Ok(Answer {
            accepted: count("accepted")?,
            duplicates: count("duplicates")?,
        })
    }
}

/// `requests` JSON arrays of `batch` events each, made on both cores (a factory per thread, each
/// with its own source, so that ids never collide across factories).
fn prepare_bodies(requests: u64, batch: u64, subjects: u64) -> Vec<String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let per_thread = requests.div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|thread| {
                scope.spawn(move || {
                    let mut factory = EventFactory::new(thread, subjects);
                    let count = per_thread.min(requests.saturating_sub(thread * per_thread));
                    (0..count).map(|_| factory.body(batch)).collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a body maker panicked"))
            .collect()
    })
}

/// Makes CloudEvents as a metering agent sends them: random UUIDv4 ids, the current time, a
/// subject among `subjects`, a small data object.
struct EventFactory {
    state: u64,
    subjects: u64,
    source: String,
    time: String,
}

impl EventFactory {
    fn new(connection: u64, subjects: u64) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64);
        Self {
            state: nanos ^ connection.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            subjects,
            source: format!("agent-{connection}"),
            time: format!("{:.3}", Timestamp::now()),
        }
    }

    /// splitmix64: fast, and plenty random for ids that only need to be unique.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A UUIDv4 id, a subject number and a core count.
    fn next_event(&mut self) -> (String, u64, u64) {
        let high = self.next_u64();
        let low = self.next_u64();
        let mut bytes = [0_u8; 16];
        bytes[..8].copy_from_slice(&high.to_be_bytes());
        bytes[8..].copy_from_slice(&low.to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut id = String::with_capacity(36);
        for (index, byte) in bytes.iter().enumerate() {
            if matches!(index, 4 | 6 | 8 | 10) {
                id.push('-');
            }
            id.push(char::from(HEX[usize::from(byte >> 4)]));
            id.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        let subject = low % self.subjects;
        (id, subject, high % 64 + 1)
    }

    /// A JSON array of `count` events.
    fn body(&mut self, count: u64) -> String {
        let mut body = String::with_capacity(usize::try_from(count).unwrap_or(0) * 200 + 2);
        body.push('[');
        for index in 0..count {
            if index > 0 {
                body.push(',');
            }
            let (id, subject, cores) = self.next_event();
            // Pushed piece by piece: format! per event would cost the load generator more
            // than the server spends on the event.
            body.push_str(r#"{"specversion":"1.0","id":""#);
            body.push_str(&id);
            body.push_str(r#"","source":""#);
            body.push_str(&self.source);
            body.push_str(r#"","type":"cpu","subject":"cus_"#);
            body.push_str(&subject.to_string());
            body.push_str(r#"","time":""#);
            body.push_str(&self.time);
            body.push_str(r#"","data":{"cores":"#);
            body.push_str(&cores.to_string());
            body.push_str(r#","project":"prj_"#);
            body.push_str(&(subject % 7).to_string());
            body.push_str(r#""}}"#);
        }
        body.push(']');
        body
    }
}

/// The peak resident set size of this process, in KiB (Linux `VmHWM`).
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
