//! Counting off the caller's thread: `record` prices its event and leaves
//! the record here (one short lock, its strings copied into a recycled
//! slot); the monitor's counting thread then counts batches in the rollups
//! and budgets, runs the observers and hands the records to the writer.
//!
//! With budgets whose alerts fire locally, `record` counts and publishes
//! at once on the caller's thread, so that an alert fires before it returns.
//!
//! Consistency: every reader of the rollups first counts what is waiting
//! here, under the rollups lock ([`Shared::count_waiting`]), so a query made
//! after `record` returned always sees that record. The observers and the
//! writer's hand-over (the "publishing") run for every record exactly once,
//! in the order counted, by whoever publishes next: the counting thread, a
//! flush, or a recorder that finds the inbox full.

use std::cell::RefCell;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::NaiveDate;
use parking_lot::{Condvar, Mutex};

use crate::money::Currency;
use crate::record::UsageRecord;
use crate::rollups::Rollups;
use crate::storage::writer::Slot;

use super::Shared;

/// Records waiting that wake the counting thread at once (else it counts
/// what waits after [`TICK`]).
const WAKE_AT: usize = 4096;
/// Records waiting at most: past this a recorder counts and publishes the
/// waiting records itself (the back-pressure of a busy machine). Never more
/// than the writer's queue capacity, so a small queue stays a small bound.
const INBOX_CAP: usize = 16_384;
/// Longest a record waits to be published (observers, budget alerts, the
/// writer) while few records arrive.
const TICK: Duration = Duration::from_millis(20);

/// One recorded call, not yet counted.
struct Waiting {
    record: Slot,
    currency: Currency,
    priced: bool,
}

/// One counted call, not yet published.
struct Counted {
    date: NaiveDate,
    call: Waiting,
}

#[derive(Default)]
struct Inbox {
    items: Vec<Waiting>,
    /// Published records handed back, refilled in place by recorders (no
    /// allocation on the caller's thread in steady state).
    spare: Vec<Slot>,
    /// Set when the counting thread must end.
    stop: bool,
}

/// What waits between `record` and the rollups, and between the rollups
/// and the observers and writer.
pub(super) struct Handoff {
    /// Records waiting at most (see [`INBOX_CAP`]).
    cap: usize,
    /// Records waiting that wake the counting thread.
    wake_at: usize,
    inbox: Mutex<Inbox>,
    /// Wakes the counting thread.
    wake: Condvar,
    /// Counted in the rollups, not yet published (in counting order).
    counted: Mutex<Vec<Counted>>,
    /// Held while publishing, so records reach observers and the writer in
    /// the order counted and a flush can wait for a publisher at work.
    publishing: Mutex<()>,
    /// True while the counting thread runs (else `record` publishes itself).
    running: std::sync::atomic::AtomicBool,
}

impl Handoff {
    /// Records left by `record` and not yet handed to the writer.
    pub(super) fn waiting(&self) -> u64 {
        let inbox = self.inbox.lock().items.len();
        (inbox + self.counted.lock().len()) as u64
    }

    /// For a writer queue of `queue_capacity` records (none: the default).
    pub(super) fn new(queue_capacity: Option<usize>) -> Handoff {
        let cap = queue_capacity.unwrap_or(INBOX_CAP).clamp(1, INBOX_CAP);
        Handoff {
            cap,
            wake_at: WAKE_AT.min(cap.div_ceil(2)),
            inbox: Mutex::default(),
            wake: Condvar::new(),
            counted: Mutex::default(),
            publishing: Mutex::new(()),
            running: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

thread_local! {
    /// The monitors this thread is publishing for: an observer or a budget
    /// alert callback that flushes its own monitor must not publish again
    /// (it would wait for itself); another monitor it may.
    static PUBLISHING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// This thread's mark in [`PUBLISHING`], removed on drop (also when an
/// observer panics).
struct Publishing(usize);

impl Publishing {
    // `try_with`: a flush at process exit may run after this thread's
    // locals are gone; nothing can be re-entered then.
    fn mark(me: usize) -> Publishing {
        let _ = PUBLISHING.try_with(|p| p.borrow_mut().push(me));
        Publishing(me)
    }

    fn held(me: usize) -> bool {
        PUBLISHING
            .try_with(|p| p.borrow().contains(&me))
            .unwrap_or(false)
    }
}

impl Drop for Publishing {
    fn drop(&mut self) {
        let me = self.0;
        let _ = PUBLISHING.try_with(|p| p.borrow_mut().retain(|m| *m != me));
    }
}

impl Shared {
    /// On the caller's thread: leaves a copy of `record` to be counted.
    pub(super) fn leave(&self, record: &UsageRecord, currency: Currency, priced: bool) {
        let h = &self.handoff;
        let len = {
            let mut inbox = h.inbox.lock();
            let slot = match inbox.spare.pop() {
                Some(mut slot) => {
                    record.copy_into(&mut slot);
                    slot
                }
                None => Box::new(record.clone()),
            };
            inbox.items.push(Waiting {
                record: slot,
                currency,
                priced,
            });
            inbox.items.len()
        };
        if len == 1 || len == h.wake_at {
            h.wake.notify_one();
        }
        // Budgets with local alerts: counted now, so that an alert fires
        // before `record` returns (as callers of budgets expect).
        if len >= h.cap
            || !h.running.load(std::sync::atomic::Ordering::Acquire)
            || self.budgets.alerts_active()
        {
            self.settle();
        }
    }

    /// Counts every record waiting in the inbox (the rollups lock held by
    /// the caller) and leaves them to be published. Every reader of the
    /// rollups calls this first.
    pub(super) fn count_waiting(&self, rollups: &mut Rollups) {
        let items = std::mem::take(&mut self.handoff.inbox.lock().items);
        if items.is_empty() {
            return;
        }
        let mut counted = Vec::with_capacity(items.len());
        for call in items {
            let date = self.count(rollups, &call.record, call.currency, call.priced);
            counted.push(Counted { date, call });
        }
        let mut list = self.handoff.counted.lock();
        if list.is_empty() {
            *list = counted;
        } else {
            list.extend(counted);
        }
        drop(list);
        // The counting thread publishes them (the inbox lock taken first so
        // that the wake-up cannot fall between its check and its wait).
        let _sync = self.handoff.inbox.lock();
        self.handoff.wake.notify_one();
    }

    /// Counts and publishes everything waiting: after it returns, every
    /// record made before the call has been counted, seen by the observers
    /// and handed to the writer (unless this thread is publishing already,
    /// e.g. inside an observer: then only counted).
    pub(super) fn settle(&self) {
        self.settle_then(|| ());
    }

    /// [`Shared::settle`], then `then` before any later record is published
    /// (e.g. adding an observer: it sees exactly the records counted after).
    pub(super) fn settle_then(&self, then: impl FnOnce()) {
        self.count_waiting(&mut self.rollups.lock());
        let me = self as *const Shared as usize;
        if Publishing::held(me) {
            then();
            return;
        }
        let _one = self.handoff.publishing.lock();
        let _mark = Publishing::mark(me);
        loop {
            let batch = std::mem::take(&mut *self.handoff.counted.lock());
            if batch.is_empty() {
                break;
            }
            self.publish(batch);
        }
        then();
    }

    /// Observers, budget alerts and the writer for one counted batch.
    fn publish(&self, batch: Vec<Counted>) {
        let calls: Vec<(&UsageRecord, Currency, bool)> = batch
            .iter()
            .map(|c| (&*c.call.record, c.call.currency, c.call.priced))
            .collect();
        self.after_count(&calls);
        drop(calls);
        let mut slots = Vec::with_capacity(batch.len());
        match &self.writer {
            Some(w) => {
                let mut lines: Vec<(NaiveDate, Slot)> =
                    batch.into_iter().map(|c| (c.date, c.call.record)).collect();
                w.submit_owned(&mut lines, &mut slots);
            }
            None => slots.extend(batch.into_iter().map(|c| c.call.record)),
        }
        let mut inbox = self.handoff.inbox.lock();
        // Never more spare slots than records a full inbox holds.
        let room = self.handoff.cap.saturating_sub(inbox.spare.len());
        slots.truncate(room);
        inbox.spare.append(&mut slots);
    }
}

/// The running counting thread; [`CountTask::stop`] ends and joins it.
pub(super) struct CountTask {
    shared: Arc<Shared>,
    thread: JoinHandle<()>,
}

impl CountTask {
    /// Starts the thread (`None`, logged, if the OS refuses one: `record`
    /// then counts and publishes on the caller's thread, as it must).
    pub(super) fn start(shared: &Arc<Shared>) -> Option<CountTask> {
        let sh = Arc::clone(shared);
        shared
            .handoff
            .running
            .store(true, std::sync::atomic::Ordering::Release);
        let spawned = std::thread::Builder::new()
            .name("ai-usage-count".into())
            .spawn(move || {
                let h = &sh.handoff;
                let mut inbox = h.inbox.lock();
                while !inbox.stop {
                    let waiting = inbox.items.len();
                    if waiting == 0 && h.counted.lock().is_empty() {
                        h.wake.wait(&mut inbox);
                    } else if waiting < h.wake_at {
                        // A few records: let a batch gather, briefly.
                        h.wake.wait_for(&mut inbox, TICK);
                    }
                    if inbox.stop {
                        break;
                    }
                    drop(inbox);
                    sh.settle();
                    inbox = h.inbox.lock();
                }
            });
        match spawned {
            Ok(thread) => Some(CountTask {
                shared: Arc::clone(shared),
                thread,
            }),
            Err(e) => {
                shared
                    .handoff
                    .running
                    .store(false, std::sync::atomic::Ordering::Release);
                tracing::error!(error = %e, "cannot start the counting thread; counting on the recording thread");
                None
            }
        }
    }

    /// Ends the thread, then publishes what is left; later records are
    /// counted and published on the recording thread.
    pub(super) fn stop(self) {
        let h = &self.shared.handoff;
        h.running.store(false, std::sync::atomic::Ordering::Release);
        h.inbox.lock().stop = true;
        h.wake.notify_one();
        // The monitor dropped by an observer or alert callback on the
        // counting thread itself: it ends after this round.
        if self.thread.thread().id() == std::thread::current().id() {
            return;
        }
        if self.thread.join().is_err() {
            tracing::error!("the counting thread panicked");
        }
        self.shared.settle();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    use crate::{UsageEvent, UsageMonitor};

    #[test]
    fn a_query_right_after_record_sees_it() {
        let dir = tempfile::tempdir().unwrap();
        let m = UsageMonitor::builder()
            .dir(dir.path())
            .replay(false)
            .build()
            .unwrap();
        let seen = Arc::new(AtomicU64::new(0));
        let s = Arc::clone(&seen);
        m.subscribe(move |_| {
            s.fetch_add(1, Ordering::Relaxed);
        });
        // Racing the counting thread: whoever counts, every answer is whole.
        for n in 1..=3_000u64 {
            m.record(&UsageEvent::new("qwen-plus", "问答").tokens(n, 1));
            if n % 250 == 0 {
                assert_eq!(m.health().records_in_memory, n);
            }
        }
        m.settle();
        assert_eq!(
            seen.load(Ordering::Relaxed),
            3_000,
            "each record observed once"
        );
        m.flush().unwrap();
        let w = m.health().writer.unwrap();
        assert_eq!((w.enqueued, w.written), (3_000, 3_000));
    }

    #[test]
    fn an_observer_may_flush_its_own_monitor() {
        let dir = tempfile::tempdir().unwrap();
        let m = Arc::new(
            UsageMonitor::builder()
                .dir(dir.path())
                .replay(false)
                .build()
                .unwrap(),
        );
        let weak = Arc::downgrade(&m);
        let flushed = Arc::new(AtomicU64::new(0));
        let f = Arc::clone(&flushed);
        m.subscribe(move |_| {
            if let Some(m) = weak.upgrade() {
                // Publishing already on this thread: counted, not published
                // again, so it cannot wait for itself.
                m.flush().unwrap();
                f.fetch_add(1, Ordering::Relaxed);
            }
        });
        m.record(&UsageEvent::new("qwen-plus", "问答").tokens(1, 1));
        m.settle();
        assert_eq!(flushed.load(Ordering::Relaxed), 1);
        m.flush().unwrap();
        assert_eq!(m.health().writer.unwrap().written, 1);
    }
}
