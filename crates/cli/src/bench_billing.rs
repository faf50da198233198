//! `billow bench billing-run`: one month-end billing run over many subscriptions and their usage
//! (issue 3: "100,000 subscriptions with 10 million events in the period, under 10 seconds";
//! BENCHMARKS.md).
//!
//! On a fresh SQLite file (or a fresh PostgreSQL database made from `--database-url` and dropped
//! afterwards) the bench seeds, through the store's own API:
//! - one workspace, one meter (`SUM` of `count`, grouped by `project`);
//! - one monthly plan: a per-unit seat price billed in advance and a graduated usage price;
//! - N customers, each with one subscription (3 seats) starting at the period start;
//! - N × M events spread over January 2024, written in large batches with
//!   [`Store::insert_events`] and then compacted, as `billow ingest` does.
//!
//! Then it times ONE [`run_billing`] at a `now` after the period end with no grace period, so
//! every subscription's two invoices (its start, and the period end) are finalized, and checks
//! that exactly 2 × N invoices are numbered 1..=2N and none is left a draft.
//!
//! Where the time goes: every store method is a `tracing` span, so a layer installed here adds up
//! each one's wall time (from its creation to its close) by name. The run's loader and writer
//! tasks overlap each other and the engine, so the spans' times overlap too; the engine alone
//! (building the engine's input from the same customers' records, and `preview`) is timed
//! separately after the run.
//!
//! `--seed-cache FILE` (SQLite) keeps a copy of the seeded database, so that later runs, of this
//! binary or another, start from the same data without seeding again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use billow_billing::clock::ManualClock;
use billow_billing::world::CustomerWorld;
use billow_billing::{run_billing, Billing, BillingSettings};
use billow_store::{Database, MergeOutcome, PostgresUrl, Store, WorkspaceId, WorkspaceName};
use jiff::{SignedDuration, Timestamp};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, PgConnection};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context as LayerContext, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::bench_common::{per_second, reset_peak_rss, thousands, with_database, ProcessCpu};
use crate::bench_seed::{
    compact, customer_id, seed_customers, seed_events, SeedSizes, PERIOD_START,
};

const PERIOD_END: &str = "2024-02-01T00:00:00Z";
/// Customers whose scenario the engine is timed on alone, after the run.
const ENGINE_SAMPLE_MAX: usize = 1_000;

/// Arguments of `billow bench billing-run`.
#[derive(Debug, clap::Args)]
pub struct BillingRunBenchArgs {
    #[command(flatten)]
    sizes: SeedSizes,
    /// A PostgreSQL server whose user may create databases: the bench creates a fresh database
    /// there and drops it afterwards. Without it, a fresh SQLite file is used.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Where the SQLite file is made (and removed): the system's temporary directory unless
    /// given.
    #[arg(long, value_name = "PATH")]
    directory: Option<PathBuf>,
    /// Months of history: seeds each month's usage, then times the month-end run and a run with
    /// nothing due, month after month, and the upcoming invoice of one customer, and compares
    /// the last month with the first (a run must cost what changed, not what was ever stored).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=120))]
    months: u32,
    /// SQLite only: a copy of the seeded database, for repeating runs without seeding again.
    /// When the file exists, the run starts from a copy of it (it must have been made with the
    /// same sizes); otherwise the bench seeds as usual and saves a copy there before the run.
    #[arg(long, value_name = "FILE")]
    seed_cache: Option<PathBuf>,
}

/// Runs the benchmark.
///
/// # Errors
///
/// When a database cannot be set up, seeding or the run fails, or the run did not finalize the
/// expected invoices.
pub async fn run(args: BillingRunBenchArgs) -> anyhow::Result<()> {
    ensure!(
        args.sizes.subscriptions > 0 && args.sizes.events_per_subscription > 0,
        "sizes must be positive"
    );
    let profile = StoreProfile::install()?;
    match args.database_url.as_deref().filter(|url| !url.is_empty()) {
        None => {
            let directory = args
                .directory
                .clone()
                .unwrap_or_else(std::env::temp_dir)
                .join(format!("billow-bench-billing-{}", std::process::id()));
            std::fs::create_dir_all(&directory)
                .with_context(|| format!("could not create {}", directory.display()))?;
            let path = directory.join("billow.db");
            let cached = match &args.seed_cache {
                Some(cache) if cache.exists() => {
                    std::fs::copy(cache, &path).with_context(|| {
                        format!("could not copy the seed cache {}", cache.display())
                    })?;
                    true
                }
                _ => false,
            };
            let result = measure(
                &args,
                &Database::sqlite(&path),
                &Counter::Sqlite(path.clone()),
                &profile,
                if cached {
                    Seeding::Cached
                } else {
                    Seeding::Fresh(args.seed_cache.as_deref())
                },
            )
            .await;
            let _ = std::fs::remove_dir_all(&directory);
            result
        }
        Some(admin_url) => {
            let name = format!("billow_bench_billing_{}", std::process::id());
            let mut admin = PgConnection::connect(admin_url)
                .await
                .context("could not connect to --database-url")?;
            admin
                .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
                .await?;
            let url: PostgresUrl = admin_url.parse()?;
            let result = measure(
                &args,
                &Database::Postgres(url.with_database_name(&name)),
                &Counter::Postgres(with_database(admin_url, &name)),
                &profile,
                Seeding::Fresh(None),
            )
            .await;
            admin
                .execute(format!(r#"DROP DATABASE "{name}" WITH (FORCE)"#).as_str())
                .await?;
            result
        }
    }
}

/// Where the measured database's data comes from.
#[derive(Clone, Copy)]
enum Seeding<'a> {
    /// Seeded by this run; on SQLite, a copy saved to the given file before the run.
    Fresh(Option<&'a Path>),
    /// A copy of a seed cache: nothing to seed.
    Cached,
}

async fn measure(
    args: &BillingRunBenchArgs,
    database: &Database,
    counter: &Counter,
    profile: &StoreProfile,
    seeding: Seeding<'_>,
) -> anyhow::Result<()> {
    let backend = match database {
        Database::Sqlite { .. } => "sqlite",
        Database::Postgres { .. } => "postgres",
    };
    if args.months > 1 {
        return crate::bench_months::measure(&args.sizes, args.months, database, backend).await;
    }
    let subscriptions = args.sizes.subscriptions;
    let events = subscriptions * args.sizes.events_per_subscription;
    println!(
        "bench billing-run ({backend}): {} subscriptions, {} events per subscription = {} events in the period",
        thousands(subscriptions),
        thousands(args.sizes.events_per_subscription),
        thousands(events)
    );
    let store = Store::open(database).await?;
    store.migrate().await?;

    let seed_started = Instant::now();
    let seeded = match seeding {
        Seeding::Cached => {
            println!("seed: copied from the seed cache");
            seeded_before(&store, &args.sizes).await?
        }
        Seeding::Fresh(cache) => {
            let seeded = seed(&store, &args.sizes).await?;
            if let (Some(cache), Counter::Sqlite(path)) = (cache, counter) {
                save_seed(path, cache).await?;
            }
            seeded
        }
    };
    let seed_time = seed_started.elapsed();
    println!(
        "seed: {:.1} s ({} customers and subscriptions in {:.1} s, {} events in {:.1} s, compaction of {} events in {:.1} s)",
        seed_time.as_secs_f64(),
        thousands(subscriptions),
        seeded.customers.as_secs_f64(),
        thousands(events),
        seeded.events.as_secs_f64(),
        thousands(seeded.compacted),
        seeded.compaction.as_secs_f64(),
    );
    println!(
        "merge of subject chunks: {} chunks into {}, {} events rewritten, in {:.1} s",
        thousands(seeded.merged.chunks_replaced),
        thousands(seeded.merged.chunks_written),
        thousands(seeded.merged.events),
        seeded.merging.as_secs_f64(),
    );
    let before = Rss::read();
    println!(
        "memory before the run: peak RSS {} MiB (seeding), RSS now {} MiB",
        mib(before.peak_kib),
        mib(before.current_kib)
    );

    let now: Timestamp = PERIOD_END
        .parse::<Timestamp>()?
        .checked_add(SignedDuration::from_hours(1))?;
    let billing = Billing::new(store.clone())
        .with_clock(Arc::new(ManualClock::new(now)))
        .with_settings(BillingSettings {
            grace_period: SignedDuration::ZERO,
            interval: None,
            ..BillingSettings::default()
        });
    reset_peak_rss();
    profile.reset();
    let cpu_before = ProcessCpu::read();
    let run_started = Instant::now();
    let report = run_billing(&billing, Some(&seeded.workspace))
        .await
        .map_err(|error| anyhow::anyhow!("the billing run failed: {error}"))?;
    let run_time = run_started.elapsed();
    let cpu = ProcessCpu::read().since(&cpu_before);
    let store_times = profile.take();
    let after = Rss::read();

    let expected = 2 * subscriptions;
    let counted = counter.count().await?;
    println!(
        "run: {:.2} s for {} customers: {} finalized, {} drafted, {} failed, {} skipped",
        run_time.as_secs_f64(),
        thousands(report.customers),
        thousands(report.finalized),
        thousands(report.drafted),
        report.failed,
        report.skipped,
    );
    println!(
        "run: {} invoices/s, {} customers/s, {} events/s processed",
        thousands(per_second(report.finalized, run_time)),
        thousands(per_second(report.customers, run_time)),
        thousands(per_second(events, run_time)),
    );
    println!(
        "memory over the run: peak RSS {} MiB (the mark reset before the run), RSS after {} MiB",
        mib(after.peak_kib),
        mib(after.current_kib)
    );
    println!("process CPU over the run: {}", cpu.describe(run_time));
    store_times.print(run_time);

    let engine = engine_alone(&store, &seeded.workspace, &seeded.customer_ids, now).await?;
    let sample = u32::try_from(engine.customers.max(1))?;
    let per_customer = (engine.build + engine.preview) / sample;
    println!(
        "engine alone, {} customers: world built {} µs + preview {} µs per customer (≈ {:.2} s for all {})",
        engine.customers,
        (engine.build / sample).as_micros(),
        (engine.preview / sample).as_micros(),
        per_customer
            .saturating_mul(u32::try_from(subscriptions).unwrap_or(u32::MAX))
            .as_secs_f64(),
        thousands(subscriptions),
    );
    store.close().await;

    ensure!(
        report.failed == 0 && report.skipped == 0 && report.customers == subscriptions,
        "the run billed {} customers ({} failed, {} skipped), not {subscriptions}",
        report.customers,
        report.failed,
        report.skipped
    );
    ensure!(
        report.finalized == expected,
        "the run finalized {} invoices, not {expected}",
        report.finalized
    );
    ensure!(
        counted.finalized == expected
            && counted.distinct_numbers == expected
            && counted.min_number == 1
            && counted.max_number == expected
            && counted.drafts == 0,
        "stored: {counted:?}, expected {expected} invoices numbered 1..={expected} and no draft"
    );
    println!(
        "check: {} invoices stored finalized, numbered 1..={} without gaps, no draft (expected 2 per subscription)",
        thousands(counted.finalized),
        thousands(counted.max_number),
    );
    Ok(())
}

struct Seeded {
    workspace: WorkspaceId,
    customer_ids: Vec<String>,
    customers: Duration,
    events: Duration,
    compaction: Duration,
    compacted: u64,
    merging: Duration,
    merged: MergeOutcome,
}

/// The seeded data of a database copied from a seed cache.
async fn seeded_before(store: &Store, sizes: &SeedSizes) -> anyhow::Result<Seeded> {
    let created: Timestamp = PERIOD_START.parse()?;
    let workspace = store
        .workspace_named_or_created(&WorkspaceName::parse("bench")?, created)
        .await?
        .id;
    Ok(Seeded {
        workspace,
        customer_ids: (0..sizes.subscriptions).map(customer_id).collect(),
        customers: Duration::ZERO,
        events: Duration::ZERO,
        compaction: Duration::ZERO,
        compacted: 0,
        merging: Duration::ZERO,
        merged: MergeOutcome::default(),
    })
}

/// Copies the seeded SQLite file at `path` to `cache`: the write-ahead log is checkpointed into
/// the file first (nothing writes meanwhile), so the file alone holds the data.
async fn save_seed(path: &Path, cache: &Path) -> anyhow::Result<()> {
    let mut connection = SqliteConnectOptions::new().filename(path).connect().await?;
    connection
        .execute("PRAGMA wal_checkpoint(TRUNCATE)")
        .await?;
    connection.close().await?;
    std::fs::copy(path, cache)
        .with_context(|| format!("could not save the seed cache {}", cache.display()))?;
    println!("seed: saved to {}", cache.display());
    Ok(())
}

async fn seed(store: &Store, sizes: &SeedSizes) -> anyhow::Result<Seeded> {
    let started = Instant::now();
    let (workspace, customer_ids) = seed_customers(store, sizes).await?;
    let customers = started.elapsed();
    let events_started = Instant::now();
    seed_events(
        store,
        &workspace,
        sizes,
        PERIOD_START.parse()?,
        PERIOD_END.parse()?,
        "",
        Timestamp::now(),
    )
    .await?;
    let events = events_started.elapsed();
    let compacted = compact(store).await?;
    Ok(Seeded {
        workspace,
        customer_ids,
        customers,
        events,
        compaction: compacted.compaction,
        compacted: compacted.events,
        merging: compacted.merging,
        merged: compacted.merged,
    })
}

struct EngineTimes {
    customers: usize,
    /// Building the engine's input from the customer's records (`CustomerWorld::world`: the
    /// typed specs cloned, the world validated, the events set).
    build: Duration,
    preview: Duration,
}

/// The engine alone on the first customers' worlds, as a run builds them: each customer's
/// records loaded (not timed), the engine's input built from them with the customer's stored
/// events, then `preview`.
async fn engine_alone(
    store: &Store,
    workspace: &WorkspaceId,
    customer_ids: &[String],
    now: Timestamp,
) -> anyhow::Result<EngineTimes> {
    let billing = Billing::new(store.clone());
    let mut times = EngineTimes {
        customers: 0,
        build: Duration::ZERO,
        preview: Duration::ZERO,
    };
    for customer in customer_ids.iter().take(ENGINE_SAMPLE_MAX) {
        let world = CustomerWorld::load(&billing, workspace, customer)
            .await?
            .with_context(|| format!("no customer {customer}"))?;
        let events = store
            .usage_events(workspace, &world.subjects(), Timestamp::MIN, now)
            .await?;
        let started = Instant::now();
        let input = world.world(now, events, Vec::new())?;
        let built = Instant::now();
        let preview = billow_core::scenario::preview(&input)?;
        times.preview += built.elapsed();
        times.build += built - started;
        ensure!(
            preview.invoices.len() == 2,
            "the engine issued {} invoices for {customer}, not 2",
            preview.invoices.len()
        );
        times.customers += 1;
    }
    Ok(times)
}

/// Reads back what the run stored, with its own connection.
enum Counter {
    Sqlite(PathBuf),
    Postgres(String),
}

#[derive(Debug)]
struct Counted {
    finalized: u64,
    distinct_numbers: u64,
    min_number: u64,
    max_number: u64,
    drafts: u64,
}

const COUNT_FINALIZED: &str = "SELECT COUNT(*), COUNT(DISTINCT number), COALESCE(MIN(number), 0), \
     COALESCE(MAX(number), 0) FROM invoices WHERE status <> 'draft' AND number IS NOT NULL";
const COUNT_DRAFTS: &str = "SELECT COUNT(*) FROM invoices WHERE status = 'draft'";

impl Counter {
    async fn count(&self) -> anyhow::Result<Counted> {
        let ((finalized, distinct, min, max), (drafts,)): ((i64, i64, i64, i64), (i64,)) =
            match self {
                Self::Sqlite(path) => {
                    let mut connection = sqlite_connection(path).await?;
                    (
                        sqlx::query_as(COUNT_FINALIZED)
                            .fetch_one(&mut connection)
                            .await?,
                        sqlx::query_as(COUNT_DRAFTS)
                            .fetch_one(&mut connection)
                            .await?,
                    )
                }
                Self::Postgres(url) => {
                    let mut connection = PgConnection::connect(url).await?;
                    (
                        sqlx::query_as(COUNT_FINALIZED)
                            .fetch_one(&mut connection)
                            .await?,
                        sqlx::query_as(COUNT_DRAFTS)
                            .fetch_one(&mut connection)
                            .await?,
                    )
                }
            };
        let count = |value: i64| u64::try_from(value).unwrap_or(0);
        Ok(Counted {
            finalized: count(finalized),
            distinct_numbers: count(distinct),
            min_number: count(min),
            max_number: count(max),
            drafts: count(drafts),
        })
    }
}

async fn sqlite_connection(path: &Path) -> anyhow::Result<sqlx::SqliteConnection> {
    Ok(SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .connect()
        .await?)
}

/// Wall time of every store method (each is a `tracing` span in `billow_store`), by name: from
/// the span's creation to its close. `outermost` adds up only spans opened while no other store
/// span was open, so that nested store calls are not counted twice.
#[derive(Clone, Default)]
struct StoreProfile {
    inner: Arc<Mutex<ProfileTimes>>,
}

#[derive(Default)]
struct ProfileTimes {
    open: usize,
    outermost: Duration,
    by_name: BTreeMap<&'static str, (u64, Duration)>,
}

struct SpanStarted {
    at: Instant,
    outermost: bool,
}

impl StoreProfile {
    /// Installs the profiling layer as the process's subscriber (it sees only store spans).
    fn install() -> anyhow::Result<Self> {
        let profile = Self::default();
        let layer = profile
            .clone()
            .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
                metadata.is_span() && metadata.target().starts_with("billow_store")
            }));
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer))
            .context("could not install the profiling layer")?;
        Ok(profile)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ProfileTimes> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn reset(&self) {
        let mut times = self.lock();
        times.outermost = Duration::ZERO;
        times.by_name.clear();
    }

    fn take(&self) -> ProfileTimes {
        let mut times = self.lock();
        ProfileTimes {
            open: times.open,
            outermost: std::mem::take(&mut times.outermost),
            by_name: std::mem::take(&mut times.by_name),
        }
    }
}

impl ProfileTimes {
    fn print(&self, run: Duration) {
        let share = |time: Duration| time.as_nanos() * 100 / run.as_nanos().max(1);
        println!(
            "where the run's time goes (store calls of the loader and writer tasks, which run beside the engine: they overlap each other and the engine, so shares are of the run's wall time and can add up past 100 %): store calls {:.2} s ({} % of the run)",
            self.outermost.as_secs_f64(),
            share(self.outermost),
        );
        let mut rows: Vec<_> = self.by_name.iter().collect();
        rows.sort_by_key(|(_, (_, time))| std::cmp::Reverse(*time));
        for (name, (calls, time)) in rows {
            println!(
                "  store {name:<26} {:>9} calls {:>8.3} s {:>3} % {:>8} µs per call",
                thousands(*calls),
                time.as_secs_f64(),
                share(*time),
                time.as_micros() / u128::from((*calls).max(1)),
            );
        }
    }
}

impl<S> Layer<S> for StoreProfile
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    fn on_new_span(&self, _attributes: &Attributes<'_>, id: &Id, context: LayerContext<'_, S>) {
        let Some(span) = context.span(id) else { return };
        let outermost = {
            let mut times = self.lock();
            times.open += 1;
            times.open == 1
        };
        span.extensions_mut().insert(SpanStarted {
            at: Instant::now(),
            outermost,
        });
    }

    fn on_close(&self, id: Id, context: LayerContext<'_, S>) {
        let Some(span) = context.span(&id) else {
            return;
        };
        let Some((elapsed, outermost)) = span
            .extensions()
            .get::<SpanStarted>()
            .map(|started| (started.at.elapsed(), started.outermost))
        else {
            return;
        };
        let mut times = self.lock();
        times.open = times.open.saturating_sub(1);
        if outermost {
            times.outermost += elapsed;
        }
        let entry = times.by_name.entry(span.name()).or_default();
        entry.0 += 1;
        entry.1 += elapsed;
    }
}

struct Rss {
    peak_kib: Option<u64>,
    current_kib: Option<u64>,
}

impl Rss {
    /// `VmHWM` and `VmRSS` of this process (Linux).
    fn read() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|line| line.starts_with(name))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kib| kib.parse().ok())
        };
        Self {
            peak_kib: field("VmHWM:"),
            current_kib: field("VmRSS:"),
        }
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(|| "unknown".into(), |kib| thousands(kib / 1024))
}
