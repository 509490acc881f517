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
use crate::storage::snapshot::{self, SnapshotHeader};
use crate::zone::now_timestamp;

use super::snapshots::Baseline;
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
    /// Where the history came from: `"snapshot"` (the rollup snapshot
    /// plus the day files' tail after it) or `"day files"` (a full replay).
    pub source: &'static str,
    /// Why the rollup snapshot was not used, when there was one.
    pub snapshot_unused: Option<String>,
    /// Size of the snapshot loaded, or written after a full replay (bytes).
    pub snapshot_bytes: u64,
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
    from_snapshot: bool,
    snapshot_unused: Option<String>,
    snapshot_bytes: u64,
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
            source: if o.from_snapshot {
                "snapshot"
            } else {
                "day files"
            },
            snapshot_unused: o.snapshot_unused.clone(),
            snapshot_bytes: o.snapshot_bytes,
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

/// A snapshot whose tail is shorter than this is not rewritten after the
/// load (the next start replays that short tail again): rewriting costs
/// time before the history is ready.
const REWRITE_AFTER_TAIL_BYTES: u64 = 8 << 20;

/// The loader thread's work: the snapshot (if usable) and the day files'
/// tail after it, or a full replay; then a new snapshot if much was read,
/// then add to the live rollups.
fn load(shared: &Shared, plan: &ReplayPlan, pricing: &PricingTable) {
    let loading = &shared.load;
    let config = &shared.config;
    let dir = config.dir.display().to_string();
    let first_day =
        config.zone.today() - chrono::Duration::days(i64::from(config.retention_days) - 1);
    let zone = snapshot::zone_identity(&config.zone);
    // Cost corrections change costs the snapshot's coverage cannot vouch
    // for: with any, every day file is replayed and no snapshot written.
    let corrected = plan.has_adjustments();
    let (base, parts, unused) = match snapshot::load(
        &config.dir,
        &zone,
        config.retention_days,
        pricing,
        &plan.parts,
        first_day,
    ) {
        Ok(Some(_)) if corrected => {
            let why = "cost corrections (adjustments files) are present".to_owned();
            tracing::info!(reason = %why, dir, "rollup snapshot not used: replaying every day file");
            (None, Some(plan.parts.clone()), Some(why))
        }
        Ok(Some(l)) => (Some(l), None, None),
        Ok(None) => (None, Some(plan.parts.clone()), None),
        Err(why) => {
            tracing::warn!(reason = %why, dir, "rollup snapshot not used: replaying every day file");
            (None, Some(plan.parts.clone()), Some(why))
        }
    };
    let parts = match (&base, parts) {
        (Some(l), _) => l.tail.clone(),
        (None, Some(p)) => p,
        (None, None) => Vec::new(),
    };
    loading
        .files_total
        .store(parts.len() as u64, Ordering::Relaxed);
    loading.bytes_total.store(
        parts
            .iter()
            .map(|p| p.to.saturating_sub(p.from))
            .fold(0u64, u64::saturating_add),
        Ordering::Relaxed,
    );
    let replayed = replay_parts(
        &parts,
        &config.zone,
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
    let tail_bytes = replayed.stats.bytes;
    let from_snapshot = base.is_some();
    let (mut rollups, mut stats, mut out_of_window, snapshot_bytes) = match base {
        Some(l) => {
            let mut r = l.rollups;
            r.merge(&replayed.rollups);
            (r, l.header.read, l.header.out_of_window, l.bytes)
        }
        None => (replayed.rollups, ReadStats::default(), 0, 0),
    };
    stats.then(&replayed.stats);
    out_of_window += replayed.out_of_window;
    // Days that left the window since the snapshot was written.
    rollups.evict(first_day, config.zone.day_bounds(first_day).0);
    if corrected {
        // After the calls: every correction read finds its call counted.
        match plan.apply_adjustments(&mut rollups, &config.zone) {
            Ok(st) => tracing::debug!(adjustments = st.adjustments, "applied cost corrections"),
            Err(e) => tracing::warn!(error = %e, dir, "cannot read the cost corrections"),
        }
        shared.corrected.store(true, Ordering::SeqCst);
    }
    if replayed.out_of_window > 0 {
        tracing::warn!(
            lines = replayed.out_of_window,
            dir,
            "skipped day-file lines whose timestamp is outside the retention window or ahead of the clock"
        );
    }
    // Encoded now (the rollups are about to join the live ones), written
    // once the history is ready: the disk write and fsync do not delay it.
    let mut encoded = None;
    if !corrected && (!from_snapshot || tail_bytes >= REWRITE_AFTER_TAIL_BYTES) {
        let header = SnapshotHeader {
            zone,
            retention_days: config.retention_days,
            written_at: now_timestamp(),
            coverage: snapshot::coverage_of(&plan.parts, &replayed.offsets),
            models: snapshot::model_decisions(&rollups, pricing),
            read: stats.clone(),
            out_of_window,
        };
        match snapshot::encode(&config.dir, &header, &rollups) {
            Ok(bytes) => encoded = Some(bytes),
            Err(e) => tracing::warn!(error = %e, "cannot encode the rollup snapshot"),
        }
    }
    *shared.baseline.lock() = Some(Baseline::of(
        &rollups,
        replayed.offsets,
        stats.clone(),
        out_of_window,
    ));
    {
        // Lock order: rollups, then ranks.
        let mut live = shared.rollups.lock();
        live.absorb(rollups);
        // Day versions changed under the cache: rebuild on the next ranking.
        *shared.ranks.lock() = RankCache::default();
        // Budgets added while loading saw part of the history.
        shared.budgets.reseed(&live, config.zone.today());
    }
    shared
        .out_of_window
        .fetch_add(out_of_window, Ordering::Relaxed);
    if stats.records > 0 || stats.skipped_lines > 0 {
        tracing::info!(
            records = stats.records,
            skipped = stats.skipped_lines,
            from_snapshot,
            ms = loading.started.elapsed().as_millis() as u64,
            dir,
            "loaded usage history"
        );
    }
    {
        let mut o = loading.outcome.lock();
        o.from_snapshot = from_snapshot;
        o.snapshot_unused = unused;
        o.snapshot_bytes = snapshot_bytes;
    }
    loading.finish(stats, None);
    if let Some(bytes) = encoded {
        match snapshot::write_encoded(&config.dir, &bytes) {
            Ok(n) => loading.outcome.lock().snapshot_bytes = n,
            // E.g. a read-only directory: starts then replay every day file.
            Err(e) => tracing::info!(error = %e, "cannot write the rollup snapshot"),
        }
    }
}
