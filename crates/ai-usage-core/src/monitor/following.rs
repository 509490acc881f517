//! Following other processes' appends on a timer: a background thread owned
//! by the monitor reads what other writers added to the day files and counts
//! it, so queries never touch files on the caller's thread.

use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::intake::{TimeWindow, MAX_FUTURE_SECS};
use crate::money::Currency;
use crate::record::UsageRecord;
use crate::storage::adjustments::Adjustment;
use crate::storage::replay::stored_currency;
use crate::zone::now_timestamp;

use super::Shared;

/// Shortest pause between two looks (a zero interval would spin).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// The running follower thread; [`FollowTask::stop`] ends and joins it.
pub(super) struct FollowTask {
    /// Dropping (or sending on) it wakes the thread and ends it.
    stop: Sender<()>,
    thread: JoinHandle<()>,
}

impl FollowTask {
    /// Starts the thread (`None`, logged, if the OS refuses a thread: the
    /// monitor then only counts other writers on [`Shared::refresh`]).
    pub(super) fn start(shared: &Arc<Shared>, interval: Duration) -> Option<FollowTask> {
        let interval = interval.max(MIN_INTERVAL);
        // Weak: the thread must not keep the monitor's state alive.
        let weak: Weak<Shared> = Arc::downgrade(shared);
        let (stop, wake) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new()
            .name("ai-usage-follow".into())
            .spawn(move || loop {
                match wake.recv_timeout(interval) {
                    Err(RecvTimeoutError::Timeout) => match weak.upgrade() {
                        Some(shared) => shared.refresh(),
                        None => return,
                    },
                    // Stop asked, or the monitor is gone.
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
                }
            });
        match spawned {
            Ok(thread) => Some(FollowTask { stop, thread }),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the follower thread");
                None
            }
        }
    }

    /// Ends the thread and waits for it (at most one look in progress).
    pub(super) fn stop(self) {
        let _ = self.stop.send(());
        if self.thread.join().is_err() {
            tracing::error!("the follower thread panicked");
        }
    }
}

impl Shared {
    /// Applies cost corrections read from the adjustment files to the
    /// rollups (calls outside `window` were never counted: skipped).
    fn apply_adjustments(&self, corrections: &[Adjustment], window: TimeWindow) {
        if corrections.is_empty() {
            return;
        }
        let mut rollups = self.rollups.lock();
        let applied: Vec<&Adjustment> = corrections
            .iter()
            .filter(|a| window.contains(a.timestamp) && rollups.adjust(&self.config.zone, a))
            .collect();
        drop(rollups);
        if !applied.is_empty() {
            self.corrected
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let observers = self.adjustment_observers.read();
        for a in &applied {
            for o in observers.iter() {
                o(a);
            }
        }
        tracing::debug!(adjustments = applied.len(), "applied cost corrections");
    }

    /// Counts what other processes appended since the last look.
    pub(super) fn refresh(&self) {
        let Some(f) = &self.follower else { return };
        // Until the records are in the rollups (not through the callbacks
        // after, which may call back into the monitor).
        let look = f.look();
        let today = self.config.zone.today();
        let first = today - chrono::Duration::days(self.config.retention_days as i64 - 1);
        // Corrections first, then the day files: the call of every
        // correction read was on disk before it, so it is counted by now or
        // in this look, before the corrections are applied.
        let corrections = f.poll_adjustments(&self.config.dir, first);
        let found = f.poll(&self.config.dir, first);
        // Lines from disk never move the rollups' "now": one outside the
        // window is skipped, counted and logged.
        let window = TimeWindow {
            earliest: self.config.zone.day_bounds(first).0,
            latest: now_timestamp() + MAX_FUTURE_SECS,
        };
        if found.is_empty() {
            self.apply_adjustments(&corrections, window);
            return;
        }
        let before = found.len();
        let found: Vec<_> = found
            .into_iter()
            .filter(|(_, r)| window.contains(r.timestamp))
            .collect();
        let skipped = (before - found.len()) as u64;
        if skipped > 0 {
            let total = self.out_of_window.fetch_add(skipped, Ordering::Relaxed) + skipped;
            tracing::warn!(
                lines = skipped,
                total,
                "skipped appended lines whose timestamp is outside the retention window or ahead of the clock"
            );
        }
        if found.is_empty() {
            self.apply_adjustments(&corrections, window);
            return;
        }
        let pricing = self.pricing.read();
        let mut cache = rustc_hash::FxHashMap::default();
        let counted: Vec<(UsageRecord, Currency, bool)> = found
            .into_iter()
            .map(|(_, r)| {
                let (c, p) = stored_currency(&r, &pricing, &mut cache);
                (r, c, p)
            })
            .collect();
        drop(pricing);
        {
            let mut rollups = self.rollups.lock();
            for (r, c, p) in &counted {
                self.count(&mut rollups, r, *c, *p);
            }
        }
        self.apply_adjustments(&corrections, window);
        drop(look);
        let calls: Vec<(&UsageRecord, Currency, bool)> =
            counted.iter().map(|(r, c, p)| (r, *c, *p)).collect();
        self.after_count(&calls);
        tracing::debug!(
            records = counted.len(),
            "counted records appended by other processes"
        );
    }
}
