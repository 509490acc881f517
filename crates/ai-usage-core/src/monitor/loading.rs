//! Loading history in the background: the monitor records from the moment
//! it is built while a loader thread replays the day files of the retention
//! window into rollups of its own, then adds them to the live ones.
//!
//! Every record is counted once: the loader reads each day file only up to
//! the length it had before the writer started (the plan), and everything
//! after that is this process's own records (counted live) or another
//! process's (counted by the follower, which starts at the same lengths).
//!
//! Queries wait for the load, up to the monitor's bound (see
//! `MonitorBuilder::load_wait`), so they never answer from part of the
//! history without saying so; `health()` never waits and shows the progress.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use serde::Serialize;

use crate::pricing::PricingTable;
use crate::query::RankCache;
use crate::storage::dayfile::ReadStats;
use crate::storage::replay::{replay_parts, Progress, ReplayPlan};

use super::Shared;

/// Where a monitor's history came from, and how far its load is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadHealth {
    /// True while the history is still being read (queries wait for it,
    /// up to the monitor's bound; recording does not).
    pub loading: bool,
    /// Day files to read.
    pub files_total: u64,
    /// Day files read.
    pub files_done: u64,
    /// Bytes to read.
    pub bytes_total: u64,
    /// Bytes read.
    pub bytes_done: u64,
    /// `bytes_done` as a percentage of `bytes_total` (100 when done).
    pub percent: f64,
    /// Time spent loading so far, or in all (ms).
    pub ms: u64,
    /// Why the load failed, if it did (the monitor then answers from the
    /// records made since it started; the error is also logged).
    pub error: Option<String>,
}

/// The load's state, shared by the loader thread, `health()` and queries.
pub(super) struct Loading {
    done: Mutex<bool>,
    finished: Condvar,
    progress: Progress,
    files_total: AtomicU64,
    bytes_total: AtomicU64,
    started: Instant,
    /// Set once the load ends.
    outcome: Mutex<Outcome>,
    /// Queries that gave up waiting (logged once).
    gave_up: AtomicU64,
}

#[derive(Default)]
struct Outcome {
    replay: ReadStats,
    ms: Option<u64>,
    error: Option<String>,
}

impl Loading {
    /// A load over `plan` (or none: nothing to load).
    pub(super) fn new(plan: Option<&ReplayPlan>) -> Loading {
        let (files, bytes) = plan.map_or((0, 0), |p| {
            let bytes = p
                .parts
                .iter()
                .map(|f| f.to.saturating_sub(f.from))
                .fold(0u64, u64::saturating_add);
            (p.parts.len() as u64, bytes)
        });
        Loading {
            done: Mutex::new(plan.is_none()),
            finished: Condvar::new(),
            progress: Progress::default(),
            files_total: AtomicU64::new(files),
            bytes_total: AtomicU64::new(bytes),
            started: Instant::now(),
            outcome: Mutex::new(Outcome {
                ms: plan.is_none().then_some(0),
                ..Outcome::default()
            }),
            gave_up: AtomicU64::new(0),
        }
    }

    /// True until the load has ended (successfully or not).
    pub(super) fn is_loading(&self) -> bool {
        !*self.done.lock()
    }

    /// Waits until the load has ended, at most `bound`; true when it has.
    pub(super) fn wait(&self, bound: Duration) -> bool {
        let mut done = self.done.lock();
        if *done {
            return true;
        }
        let deadline = Instant::now() + bound;
        while !*done {
            if self.finished.wait_until(&mut done, deadline).timed_out() {
                break;
            }
        }
        *done
    }

    /// [`Loading::wait`] for a query: one that gives up is logged (the
    /// first only), since it answers from part of the history.
    pub(super) fn wait_for_query(&self, bound: Duration) {
        if !self.wait(bound) && self.gave_up.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                waited_ms = bound.as_millis() as u64,
                "history is still loading: answering from what is loaded so far"
            );
        }
    }

    fn finish(&self, replay: ReadStats, error: Option<String>) {
        {
            let mut o = self.outcome.lock();
            o.replay = replay;
            o.error = error;
            o.ms = Some(self.started.elapsed().as_millis() as u64);
        }
        *self.done.lock() = true;
        self.finished.notify_all();
    }

    /// Asks a running load to stop after the files it is reading.
    pub(super) fn cancel(&self) {
        self.progress.cancel.store(true, Ordering::Relaxed);
    }

    /// What the load read (all of it once done).
    pub(super) fn replay_stats(&self) -> ReadStats {
        self.outcome.lock().replay.clone()
    }

    /// The progress, never waiting.
    pub(super) fn health(&self) -> LoadHealth {
        let loading = self.is_loading();
        let o = self.outcome.lock();
        let bytes_total = self.bytes_total.load(Ordering::Relaxed);
        let bytes_done = self.progress.bytes_done.load(Ordering::Relaxed);
        let percent = if !loading || bytes_total == 0 {
            100.0
        } else {
            ((bytes_done as f64 / bytes_total as f64) * 1000.0).round() / 10.0
        };
        LoadHealth {
            loading,
            files_total: self.files_total.load(Ordering::Relaxed),
            files_done: self.progress.files_done.load(Ordering::Relaxed),
            bytes_total,
            bytes_done,
            percent: percent.min(100.0),
            ms: o
                .ms
                .unwrap_or_else(|| self.started.elapsed().as_millis() as u64),
            error: o.error.clone(),
        }
    }
}

/// Starts the loader thread over `plan`; `None` (the load then ends at once
/// with an error, logged) if the OS refuses a thread.
pub(super) fn start(
    shared: &Arc<Shared>,
    plan: ReplayPlan,
    pricing: PricingTable,
) -> Option<JoinHandle<()>> {
    let s = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("ai-usage-load".into())
        .spawn(move || load(&s, &plan, &pricing));
    match spawned {
        Ok(thread) => Some(thread),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the history loader thread");
            shared
                .load
                .finish(ReadStats::default(), Some(format!("no loader thread: {e}")));
            None
        }
    }
}

/// The loader thread's work: replay, then add to the live rollups.
fn load(shared: &Shared, plan: &ReplayPlan, pricing: &PricingTable) {
    let loading = &shared.load;
    let dir = shared.config.dir.display().to_string();
    let replayed = replay_parts(
        &plan.parts,
        &shared.config.zone,
        pricing,
        plan.window,
        &loading.progress,
    );
    if loading.progress.cancel.load(Ordering::Relaxed) {
        loading.finish(ReadStats::default(), Some("stopped before the end".into()));
        return;
    }
    let replayed = match replayed {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, dir, "cannot load the usage history");
            loading.finish(ReadStats::default(), Some(e.to_string()));
            return;
        }
    };
    if replayed.out_of_window > 0 {
        tracing::warn!(
            lines = replayed.out_of_window,
            dir,
            "skipped day-file lines whose timestamp is outside the retention window or ahead of the clock"
        );
    }
    {
        // Lock order: rollups, then ranks.
        let mut rollups = shared.rollups.lock();
        rollups.absorb(replayed.rollups);
        // Day versions changed under the cache: rebuild on the next ranking.
        *shared.ranks.lock() = RankCache::default();
    }
    shared
        .out_of_window
        .fetch_add(replayed.out_of_window, Ordering::Relaxed);
    let stats = replayed.stats;
    if stats.records > 0 || stats.skipped_lines > 0 {
        tracing::info!(
            records = stats.records,
            skipped = stats.skipped_lines,
            ms = loading.started.elapsed().as_millis() as u64,
            dir,
            "replayed usage records"
        );
    }
    loading.finish(stats, None);
}
