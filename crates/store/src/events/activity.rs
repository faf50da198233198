//! [`WriterActivity`]: whether the event writers are saturated, which compaction, merging and
//! SQLite's checkpointer yield to; each writer keeps it up to date through its [`Window`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long a writer's time is accounted for before it tells whether it is saturated.
const SATURATION_WINDOW: Duration = Duration::from_millis(100);
/// A writer is saturated when it waited for batches less than this share of a window.
const SATURATED_BELOW_WAITING: (u128, u128) = (1, 4);
/// A writer that has been waiting for a batch this long is not saturated any more.
const IDLE_AFTER: Duration = Duration::from_millis(10);

/// Whether the writers are saturated: over the last [`SATURATION_WINDOW`], they waited for
/// batches less than a [`SATURATED_BELOW_WAITING`] of the time, and none has been waiting for
/// [`IDLE_AFTER`]. Compaction, merging and SQLite's checkpointer yield to them meanwhile, within
/// bounds (the writer's `BURST_EVENTS`; `spawn_checkpointer`): every byte they write shares the
/// disk with the writers' commits, and every lock they take delays one.
#[derive(Debug)]
pub(crate) struct WriterActivity {
    epoch: Instant,
    /// The verdict of the last full window.
    busy: AtomicBool,
    /// Since when a writer waits for a batch, in µs since `epoch`; `u64::MAX` when none does.
    waiting_since_us: AtomicU64,
}

impl Default for WriterActivity {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            busy: AtomicBool::new(false),
            waiting_since_us: AtomicU64::new(u64::MAX),
        }
    }
}

impl WriterActivity {
    fn now_us(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX - 1)
    }

    /// Makes the writers look saturated, or not, until their next window closes.
    #[cfg(test)]
    pub(crate) fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Release);
    }

    /// Whether the writers are saturated now.
    pub(crate) fn saturated(&self) -> bool {
        let since = self.waiting_since_us.load(Ordering::Acquire);
        let waiting_long = since != u64::MAX
            && u128::from(self.now_us().saturating_sub(since)) >= IDLE_AFTER.as_micros();
        self.busy.load(Ordering::Acquire) && !waiting_long
    }
}

/// A writer's account of its time, a [`SATURATION_WINDOW`] at a time ([`WriterActivity`]).
pub(super) struct Window<'a> {
    activity: &'a WriterActivity,
    start: Instant,
    waited: Duration,
}

impl<'a> Window<'a> {
    pub(super) fn new(activity: &'a WriterActivity) -> Self {
        Self {
            activity,
            start: Instant::now(),
            waited: Duration::ZERO,
        }
    }

    /// Waits for `batch` (the next request), accounting for the wait.
    pub(super) async fn wait<T>(&mut self, batch: impl std::future::Future<Output = T>) -> T {
        let start = Instant::now();
        let since = u64::try_from(start.duration_since(self.activity.epoch).as_micros());
        self.activity
            .waiting_since_us
            .store(since.unwrap_or(u64::MAX - 1), Ordering::Release);
        let batch = batch.await;
        self.activity
            .waiting_since_us
            .store(u64::MAX, Ordering::Release);
        self.waited += start.elapsed();
        self.roll();
        batch
    }

    /// Closes the window once it is full: saturated when it waited less than its share.
    pub(super) fn roll(&mut self) {
        let elapsed = self.start.elapsed();
        if elapsed < SATURATION_WINDOW {
            return;
        }
        let busy = self.waited.as_micros() * SATURATED_BELOW_WAITING.1
            < elapsed.as_micros() * SATURATED_BELOW_WAITING.0;
        self.activity.busy.store(busy, Ordering::Release);
        self.start = Instant::now();
        self.waited = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window in which the writer hardly waited makes it saturated; a wait longer than
    /// [`IDLE_AFTER`] ends that at once, and a window mostly spent waiting ends it for good.
    #[tokio::test]
    async fn a_writer_is_saturated_when_it_hardly_waits() {
        let activity = WriterActivity::default();
        let mut window = Window::new(&activity);
        assert!(!activity.saturated(), "not before the first window");

        tokio::time::sleep(SATURATION_WINDOW).await;
        window.roll();
        let after_a_busy_window = activity.saturated();
        let (_, while_waiting) =
            tokio::join!(window.wait(tokio::time::sleep(IDLE_AFTER * 3)), async {
                tokio::time::sleep(IDLE_AFTER * 2).await;
                activity.saturated()
            });
        let after_a_short_wait = activity.saturated();
        window.wait(tokio::time::sleep(SATURATION_WINDOW)).await;

        assert!(after_a_busy_window, "saturated after a busy window");
        assert!(!while_waiting, "not while waiting for a batch");
        assert!(after_a_short_wait, "saturated again once a batch came");
        assert!(!activity.saturated(), "not after a window spent waiting");
    }
}
