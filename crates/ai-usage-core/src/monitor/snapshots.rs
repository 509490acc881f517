//! Writing the rollup snapshot while the monitor runs: every interval (a
//! background thread) and at shutdown, so a restart (even after a kill)
//! replays only the day files' tail after the last one.
//!
//! A snapshot must hold exactly the records of the bytes it covers. Live
//! rollups also count records still queued for the writer, and (without a
//! follower) never see what other processes append; so each snapshot is
//! checked before it is written: with the rollups locked and the writer
//! flushed, the day files' bytes since the last snapshot (or the load) are
//! read, and every day's totals must equal the last snapshot's plus those
//! bytes'. If they differ, nothing is written this time (logged at debug).

use std::collections::BTreeMap;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::NaiveDate;

use crate::rollups::{GroupStats, Rollups};
use crate::storage::dayfile::ReadStats;
use crate::storage::replay::{plan_replay, replay_parts, DayFilePart, Progress};
use crate::storage::snapshot::{self, SnapshotHeader};
use crate::zone::now_timestamp;

use super::Shared;

/// What the last snapshot (or the load) covered: where the next one reads
/// from, and the day totals it must add up to.
#[derive(Debug, Clone, Default)]
pub(super) struct Baseline {
    /// Per day file: complete-line end covered.
    pub(super) ends: BTreeMap<NaiveDate, u64>,
    /// Day totals of the covered records.
    pub(super) totals: BTreeMap<NaiveDate, GroupStats>,
    /// What reading the covered bytes found.
    pub(super) read: ReadStats,
    /// Covered lines skipped for a timestamp outside the window.
    pub(super) out_of_window: u64,
}

impl Baseline {
    /// The baseline of `rollups`, which hold exactly the records up to `ends`.
    pub(super) fn of(
        rollups: &Rollups,
        ends: BTreeMap<NaiveDate, u64>,
        read: ReadStats,
        out_of_window: u64,
    ) -> Baseline {
        Baseline {
            ends,
            totals: day_totals(rollups),
            read,
            out_of_window,
        }
    }
}

fn day_totals(r: &Rollups) -> BTreeMap<NaiveDate, GroupStats> {
    r.days
        .iter()
        .map(|(d, day)| (*d, day.day.totals.clone()))
        .collect()
}

impl Shared {
    /// Writes the snapshot of the live rollups if they hold exactly the
    /// records on disk (see the module). `flush` makes every record counted
    /// so far durable (true when it could). Returns the snapshot's size.
    pub(super) fn snapshot_now(
        &self,
        flush: &dyn Fn() -> bool,
    ) -> std::result::Result<u64, String> {
        if self.load.is_loading() {
            return Err("the history is still loading".into());
        }
        if self.corrected.load(std::sync::atomic::Ordering::SeqCst) {
            // A start with corrections replays every day file anyway.
            return Err("cost corrections are counted".into());
        }
        let Some(base) = self.baseline.lock().clone() else {
            return Err("the history did not load".into());
        };
        let config = &self.config;
        // Locked: nothing is counted until the snapshot is written.
        let rollups = self.rollups.lock();
        if !flush() {
            return Err("the writer could not flush".into());
        }
        let plan = plan_replay(&config.dir, &config.zone, config.retention_days)
            .map_err(|e| e.to_string())?;
        let first_day =
            config.zone.today() - chrono::Duration::days(i64::from(config.retention_days) - 1);
        // A covered day file deleted since: its records must not outlive it.
        if let Some(day) = base
            .ends
            .keys()
            .find(|d| **d >= first_day && !plan.parts.iter().any(|p| p.day == **d))
        {
            return Err(format!("the day file of {day} is gone"));
        }
        let mut parts = Vec::with_capacity(plan.parts.len());
        for p in &plan.parts {
            let from = base.ends.get(&p.day).copied().unwrap_or(0);
            if p.to < from {
                return Err(format!("{} shrank", p.path.display()));
            }
            parts.push(DayFilePart { from, ..p.clone() });
        }
        let pricing = self.pricing.read();
        let tail = replay_parts(
            &parts,
            &config.zone,
            &pricing,
            plan.window,
            &Progress::default(),
        )
        .map_err(|e| e.to_string())?;
        let mut expected = base.totals.clone();
        for (d, day) in &tail.rollups.days {
            expected.entry(*d).or_default().merge(&day.day.totals);
        }
        expected.retain(|d, _| *d >= first_day);
        let mut live = day_totals(&rollups);
        live.retain(|d, _| *d >= first_day);
        if expected != live {
            return Err("the live rollups differ from the day files (records not yet written, or appended by a process not followed)".into());
        }
        let mut read = base.read.clone();
        read.then(&tail.stats);
        let out_of_window = base.out_of_window + tail.out_of_window;
        let header = SnapshotHeader {
            zone: snapshot::zone_identity(&config.zone),
            retention_days: config.retention_days,
            written_at: now_timestamp(),
            coverage: snapshot::coverage_of(&plan.parts, &tail.offsets),
            models: snapshot::model_decisions(&rollups, &pricing),
            read: read.clone(),
            out_of_window,
        };
        drop(pricing);
        let bytes = snapshot::write(&config.dir, &header, &rollups).map_err(|e| e.to_string())?;
        *self.baseline.lock() = Some(Baseline::of(&rollups, tail.offsets, read, out_of_window));
        Ok(bytes)
    }
}

/// The thread writing a snapshot every interval; [`SnapshotTask::stop`]
/// ends and joins it.
pub(super) struct SnapshotTask {
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl SnapshotTask {
    /// Starts the thread (`None`, logged, if the OS refuses one).
    pub(super) fn start(
        shared: &Arc<Shared>,
        interval: Duration,
        flush: Arc<dyn Fn() -> bool + Send + Sync>,
    ) -> Option<SnapshotTask> {
        let weak: Weak<Shared> = Arc::downgrade(shared);
        let (stop, wake) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("ai-usage-snapshot".into())
            .spawn(move || loop {
                match wake.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => {
                        let Some(shared) = weak.upgrade() else { return };
                        match shared.snapshot_now(&*flush) {
                            Ok(bytes) => tracing::debug!(bytes, "rollup snapshot written"),
                            Err(why) => tracing::debug!(reason = %why, "rollup snapshot skipped"),
                        }
                    }
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            });
        match spawned {
            Ok(thread) => Some(SnapshotTask { stop, thread }),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the snapshot thread");
                None
            }
        }
    }

    /// Ends the thread and waits for it (at most one snapshot in progress).
    pub(super) fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the snapshot thread panicked");
        }
    }
}
