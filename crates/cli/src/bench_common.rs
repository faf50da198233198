//! What the benches share: rates and thousands separators for their figures, the process's
//! peak RSS and CPU time, and the URL of a database they make on a PostgreSQL server.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// Events, rows or invoices per second.
pub(crate) fn per_second(count: u64, elapsed: Duration) -> u64 {
    let nanos = elapsed.as_nanos().max(1);
    u64::try_from(u128::from(count) * 1_000_000_000 / nanos).unwrap_or(u64::MAX)
}

/// 1234567 → "1,234,567".
pub(crate) fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut grouped = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Resets the kernel's peak-RSS mark of this process (Linux), so that the next reading covers
/// only what follows.
pub(crate) fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// `admin_url` with its database name replaced by `name`: the parsed
/// [`billow_store::PostgresUrl`] hides its password, and the benches' own connections need it.
pub(crate) fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = admin_url.split_once('?').unwrap_or((admin_url, ""));
    let authority_start = base.find("://").map_or(0, |at| at + 3);
    let authority_end = base[authority_start..]
        .find('/')
        .map_or(base.len(), |at| authority_start + at);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{}/{name}{query}", &base[..authority_end])
}

/// CPU time this process used, from `/proc/self/stat`, and its threads', from
/// `/proc/self/task/*/stat`, so that a bench can say which of them were busy (the event writer's
/// SQLite worker, the runtime's workers).
#[derive(Clone, Default)]
pub(crate) struct ProcessCpu {
    user: Duration,
    system: Duration,
    /// Per thread id: its name and its user + system time.
    threads: BTreeMap<String, (String, Duration)>,
}

/// `utime` and `stime` of a `stat` file (`/proc/PID/stat` or `/proc/PID/task/TID/stat`) and the
/// command name. Linux reports times in `USER_HZ` ticks, which is 100 on every architecture it
/// exposes to user space (`sysconf(_SC_CLK_TCK)`); zero when the file cannot be read.
fn stat_times(path: &Path) -> (String, Duration, Duration) {
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let (name, rest) = stat
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14 and stime field 15.
    let ticks = |field: usize| {
        fields
            .get(field - 3)
            .and_then(|value| value.parse::<u64>().ok())
            .map_or(Duration::ZERO, |ticks| {
                Duration::from_millis(ticks * 1_000 / TICKS_PER_SECOND)
            })
    };
    (name.to_owned(), ticks(14), ticks(15))
}

impl ProcessCpu {
    pub(crate) fn read() -> Self {
        let (_, user, system) = stat_times(Path::new("/proc/self/stat"));
        let threads = std::fs::read_dir("/proc/self/task")
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| {
                let (name, user, system) = stat_times(&entry.path().join("stat"));
                let id = entry.file_name().to_string_lossy().into_owned();
                (id, (name, user + system))
            })
            .collect();
        Self {
            user,
            system,
            threads,
        }
    }

    /// The time used since `earlier`; a thread's, for the threads alive at both readings.
    pub(crate) fn since(self, earlier: &Self) -> Self {
        let threads = self
            .threads
            .into_iter()
            .map(|(id, (name, time))| {
                let before = earlier.threads.get(&id).map_or(Duration::ZERO, |(_, t)| *t);
                (id, (name, time.saturating_sub(before)))
            })
            .collect();
        Self {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
            threads,
        }
    }

    /// `1.20 s user + 0.80 s system = 1.00 cores busy on average (tokio-rt-worker 0.71,
    /// sqlx-sqlite-worker 0.29)` over `wall`: threads of one name added up, busiest first, those
    /// below a hundredth of a core left out.
    pub(crate) fn describe(&self, wall: Duration) -> String {
        // Hundredths of a core, in integers (the workspace's lints keep floats out of arithmetic).
        let hundredths = |time: Duration| time.as_millis() * 100 / wall.as_millis().max(1);
        let busy = hundredths(self.user + self.system);
        let mut by_name: BTreeMap<&str, Duration> = BTreeMap::new();
        for (name, time) in self.threads.values() {
            *by_name.entry(name.as_str()).or_default() += *time;
        }
        let mut names: Vec<(&str, u128)> = by_name
            .into_iter()
            .map(|(name, time)| (name, hundredths(time)))
            .filter(|(_, busy)| *busy > 0)
            .collect();
        names.sort_by_key(|(_, busy)| std::cmp::Reverse(*busy));
        let threads: Vec<String> = names
            .iter()
            .map(|(name, busy)| format!("{name} {}.{:02}", busy / 100, busy % 100))
            .collect();
        format!(
            "{:.2} s user + {:.2} s system = {}.{:02} cores busy on average ({})",
            self.user.as_secs_f64(),
            self.system.as_secs_f64(),
            busy / 100,
            busy % 100,
            threads.join(", "),
        )
    }
}
