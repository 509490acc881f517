//! The monitor: prices an event on the caller's thread and leaves the
//! record for its counting thread, which counts it in the rollups, runs the
//! observers and hands its line to the writer; the caller never waits on
//! disk and never panics.
//!
//! The layers below (pricing, rollups, query, budget, export, storage) never
//! know the monitor; its methods live here, grouped by concern, and delegate:
//! - `builder`: [`MonitorBuilder`] and the resolved [`MonitorConfig`];
//! - `global`: the process-wide monitor and [`record_ai_usage`];
//! - `following`: the background thread counting other processes' appends;
//! - `queries`, `budgets`, `reports`: the question-answering methods.

mod answers;
mod budgets;
mod builder;
mod companion;
mod counting;
mod exit_flush;
mod following;
mod global;
mod loading;
mod pricing_handle;
mod queries;
mod reports;
mod snapshots;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use budgets::BudgetHandle;
pub use builder::{MonitorBuilder, MonitorConfig, TZ_ENV};
pub use companion::{Companion, CompanionContext, CompanionHandle, CompanionHealth};
pub use global::{get_usage_monitor, init_global, record_ai_usage, FlushGuard};
pub use loading::LoadHealth;
pub use pricing_handle::PricingHandle;
pub use queries::CurrentTotals;

use crate::budget::BudgetBook;
use crate::error::{Error, Result};
use crate::intake::{self, TimeWindow, MAX_FUTURE_SECS};
use crate::money::{Currency, Money};
use crate::pricing::PricingTable;
use crate::query::RankCache;
use crate::record::{RecordError, UsageEvent, UsageRecord, MAX_DURATION_MS, MAX_TOKENS_PER_CALL};
use crate::rollups::Rollups;
use crate::storage::dayfile::ReadStats;
use crate::storage::follow::Follower;
use crate::storage::replay::ReplayPlan;
use crate::storage::writer::{Writer, WriterHealth};
use crate::zone::now_timestamp;
use counting::{CountTask, Handoff};
use following::FollowTask;

/// A callback run after each record is counted (see [`UsageMonitor::subscribe`]).
pub type Observer = Arc<dyn Fn(&RecordedCall<'_>) + Send + Sync>;

/// A callback run after a cost correction read from an adjustment file
/// is applied (see [`UsageMonitor::on_adjustment`]).
pub type AdjustmentObserver = Arc<dyn Fn(&crate::storage::adjustments::Adjustment) + Send + Sync>;

/// What an observer sees of one recorded call.
#[derive(Debug, Clone, Copy)]
pub struct RecordedCall<'a> {
    /// The record as written.
    pub record: &'a UsageRecord,
    /// Currency of its cost.
    pub currency: Currency,
    /// False when the model had no price.
    pub priced: bool,
}

/// Records AI calls and answers questions about them.
///
/// Cheap to share: clone the `Arc` it usually lives in, or use the global one
/// from [`get_usage_monitor`]. Dropping a monitor stops its follower, then
/// flushes and stops its writer.
pub struct UsageMonitor {
    /// What the recording thread and the follower thread both update.
    shared: Arc<Shared>,
    writer_error: Option<String>,
    /// The thread writing a rollup snapshot every interval.
    snapshots: Mutex<Option<snapshots::SnapshotTask>>,
    /// Set once shutdown has written (or tried) the final snapshot.
    shut_down: std::sync::atomic::AtomicBool,
    follow: Mutex<Option<FollowTask>>,
    /// The thread that counts and publishes what `record` leaves.
    counting: Mutex<Option<CountTask>>,
    /// The history loader thread, until it is joined.
    loader: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Records whose out-of-range values `record` clamped.
    clamped: AtomicU64,
    /// Running companions (stopped at shutdown, after the writer).
    companions: Mutex<Vec<Box<dyn CompanionHandle>>>,
}

/// The counting state of a monitor. Lock order everywhere: `rollups`, then
/// `ranks`, then the budget book.
struct Shared {
    config: MonitorConfig,
    pricing: RwLock<PricingTable>,
    rollups: Mutex<Rollups>,
    /// Merged past days for rankings (query-side, invalidated by day versions).
    ranks: Mutex<RankCache>,
    budgets: BudgetBook,
    observers: RwLock<Vec<Observer>>,
    /// Run after each cost correction the follower applies.
    adjustment_observers: RwLock<Vec<AdjustmentObserver>>,
    /// Records left by `record`, on their way to the rollups and the writer.
    handoff: Handoff,
    /// The writer (absent when the directory could not be opened).
    writer: Option<Writer>,
    /// Present when built with [`MonitorBuilder::follow`].
    follower: Option<Follower>,
    /// Day-file lines (replayed or followed) skipped because their
    /// timestamp is outside the retention window or ahead of the clock.
    out_of_window: AtomicU64,
    /// See [`Parts::catalogue_stamp`].
    catalogue_stamp: Mutex<Option<crate::pricing::installed::Stamp>>,
    /// The history load (done at once when there is nothing to load).
    load: loading::Loading,
    /// Longest a query waits for the history to load.
    load_wait: Duration,
    /// What the last snapshot (or the load) covered; `None` until loaded.
    baseline: Mutex<Option<snapshots::Baseline>>,
    /// Set once cost corrections are counted: rollups that hold them are
    /// never written as a snapshot (a start with corrections replays all).
    corrected: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for UsageMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageMonitor")
            .field("dir", &self.shared.config.dir)
            .field("zone", &self.shared.config.zone)
            .finish_non_exhaustive()
    }
}

/// What a builder hands over to make a monitor.
struct Parts {
    config: MonitorConfig,
    pricing: PricingTable,
    /// The writer, or why there is none.
    writer: std::result::Result<Writer, String>,
    /// Interval and follower, when following.
    follow: Option<(Duration, Follower)>,
    /// The installed price catalogue's manifest as last read (`None`: the
    /// table does not use the catalogue).
    catalogue_stamp: Option<crate::pricing::installed::Stamp>,
    /// The history to load in the background (none: start empty).
    load: Option<ReplayPlan>,
    /// Longest a query waits for the load.
    load_wait: Duration,
    /// How often the rollup snapshot is written (`None`: only at shutdown).
    snapshot_interval: Option<Duration>,
}

/// An id as `record` stores it: cut to [`intake::MAX_ID_LEN`] bytes.
/// Control characters are kept (trusted Rust callers; the validating doors
/// refuse them, and every table and CSV escapes them).
fn id(s: &str) -> String {
    intake::cut(s, intake::MAX_ID_LEN).to_owned()
}

fn round_to(x: f64, scale: f64) -> f64 {
    (x * scale).round() / scale
}

/// Health of a monitor: writer counters, replay figures and pricing gaps.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MonitorHealth {
    /// True when records reach disk (writer running, no unresolved error).
    pub ok: bool,
    /// Records directory.
    pub dir: String,
    /// Writer counters (absent when the monitor could not open its directory).
    pub writer: Option<WriterHealth>,
    /// Why the monitor runs without a writer, if it does.
    pub writer_disabled: Option<String>,
    /// True while the history is still loading (queries wait for it, up
    /// to the monitor's bound; see `load` for the progress).
    pub loading: bool,
    /// The history load: progress while loading, then how long it took.
    pub load: LoadHealth,
    /// What the start-up replay read (all of it once `loading` is false).
    pub replay: ReadStats,
    /// How long the replay took (ms; so far, while loading).
    pub replay_ms: u64,
    /// Records currently in the rollups.
    pub records_in_memory: u64,
    /// Records whose out-of-range values [`UsageMonitor::record`] clamped.
    pub clamped_records: u64,
    /// Day-file lines (replayed at start or followed from other processes)
    /// not counted because their timestamp lies outside the retention
    /// window or more than an hour ahead of the clock (each is logged).
    pub out_of_window_records: u64,
    /// Groups and sessions the rollups hold (bounded per day; see the
    /// README's durability section for what a flood of ids costs).
    pub rollup_groups: u64,
    /// Attached companions (e.g. a ClickHouse shipper: its lag and last
    /// error). Their trouble does not clear `ok`: records are safe on disk.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub companions: Vec<CompanionHealth>,
    /// The price catalogue in force (built-in or installed by `ai-usage
    /// pricing update`), its date, age and whether it is stale. Staleness
    /// does not clear `ok`.
    pub pricing_catalogue: crate::pricing::installed::CatalogueInfo,
}

impl UsageMonitor {
    fn assemble(parts: Parts) -> UsageMonitor {
        let (interval, follower) = match parts.follow {
            Some((i, f)) => (Some(i), Some(f)),
            None => (None, None),
        };
        let (writer, writer_error) = match parts.writer {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(e)),
        };
        let load_pricing = parts.load.as_ref().map(|_| parts.pricing.clone());
        let has_load = parts.load.is_some();
        let shared = Arc::new(Shared {
            load: loading::Loading::new(parts.load.as_ref()),
            config: parts.config,
            pricing: RwLock::new(parts.pricing),
            rollups: Mutex::new(Rollups::default()),
            ranks: Mutex::new(RankCache::default()),
            budgets: BudgetBook::default(),
            observers: RwLock::new(Vec::new()),
            adjustment_observers: RwLock::new(Vec::new()),
            handoff: Handoff::new(writer.as_ref().map(Writer::capacity)),
            writer,
            follower,
            out_of_window: AtomicU64::new(0),
            catalogue_stamp: Mutex::new(parts.catalogue_stamp),
            load_wait: parts.load_wait,
            baseline: Mutex::new(None),
            corrected: std::sync::atomic::AtomicBool::new(false),
        });
        let loader = match (parts.load, load_pricing) {
            (Some(plan), Some(pricing)) => loading::start(&shared, plan, pricing),
            _ => None,
        };
        let follow = interval.and_then(|i| FollowTask::start(&shared, i));
        let counting = CountTask::start(&shared);
        let snapshots = match (shared.writer.is_some(), parts.snapshot_interval, has_load) {
            (true, Some(interval), true) => {
                // A weak handle: the snapshot thread must not keep the
                // monitor's state (and its writer) alive.
                let weak = Arc::downgrade(&shared);
                snapshots::SnapshotTask::start(
                    &shared,
                    interval,
                    Arc::new(move || {
                        weak.upgrade()
                            .is_some_and(|s| s.writer.as_ref().is_some_and(|w| w.flush().is_ok()))
                    }),
                )
            }
            _ => None,
        };
        UsageMonitor {
            shared,
            writer_error,
            snapshots: Mutex::new(snapshots),
            shut_down: std::sync::atomic::AtomicBool::new(false),
            follow: Mutex::new(follow),
            counting: Mutex::new(counting),
            loader: Mutex::new(loader),
            clamped: AtomicU64::new(0),
            companions: Mutex::new(Vec::new()),
        }
    }

    /// A builder for an independent monitor (own directory, zone, policies).
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder::default()
    }

    /// Records one AI call: prices it (unless it carries a cost) and leaves
    /// the record to the monitor's counting thread, which counts it and
    /// queues its line. Returns the finished record. Every query made after
    /// it returns counts it (queries count what waits first). With budgets
    /// whose alerts fire locally it counts on the caller's thread, so that
    /// an alert fires before it returns.
    ///
    /// Never panics and never returns an error; never waits on disk (only on a
    /// full queue, under the default lossless policy). Bad values are
    /// sanitised, counted (`clamped_records` in [`UsageMonitor::health`]) and
    /// logged: an empty model becomes `"unknown"`; a token count above
    /// [`MAX_TOKENS_PER_CALL`](crate::MAX_TOKENS_PER_CALL) is clamped to it; a
    /// NaN, infinite or negative duration becomes 0 and one above
    /// [`MAX_DURATION_MS`](crate::MAX_DURATION_MS) that limit; a NaN,
    /// non-positive or future timestamp (over an hour ahead of the clock)
    /// becomes now (a past one is kept: back-filling from Rust is allowed
    /// here); a negative explicit cost is dropped and the call priced from
    /// the table; ids, model and function over
    /// [`MAX_ID_LEN`](crate::intake::MAX_ID_LEN) bytes are cut (control
    /// characters are kept here, refused by the validating calls); tags past
    /// [`MAX_TAGS`](crate::intake::MAX_TAGS) are dropped. Use
    /// [`UsageMonitor::record_durable`] or [`UsageMonitor::try_record`] (or
    /// [`UsageMonitor::validate`] first) to have such input refused instead.
    pub fn record(&self, ev: &UsageEvent<'_>) -> UsageRecord {
        // The clock is read only for a given timestamp (the common call has none).
        let lenient = TimeWindow {
            earliest: f64::MIN_POSITIVE,
            latest: match ev.timestamp {
                Some(_) => now_timestamp() + MAX_FUTURE_SECS,
                None => f64::INFINITY,
            },
        };
        if let Err(e) = intake::check(ev, lenient) {
            let n = self.clamped.fetch_add(1, Ordering::Relaxed);
            // The 1st, 2nd, 4th, 8th, … bad record is logged, never a flood.
            if n.is_power_of_two() || n == 0 {
                tracing::warn!(error = %e, model = ev.model, clamped = n + 1, "out-of-range usage values clamped");
            }
        }
        let (record, currency, priced) = self.build_record(ev);
        self.shared.leave(&record, currency, priced);
        record
    }

    /// Records one AI call like [`UsageMonitor::record`], but refuses bad
    /// values ([`Error::InvalidRecord`], nothing counted) and returns only
    /// once the record is written and fsynced. Callers waiting together
    /// share one fsync (group commit).
    ///
    /// Waits for room in a full queue under [`QueuePolicy::Block`](crate::QueuePolicy);
    /// under `DropNewest` a full queue is [`Error::QueueFull`] (nothing
    /// counted). [`Error::NotDurable`] means the disk failed: the record is
    /// counted and stays queued, and is written once the disk recovers (a
    /// client that retries should send the same `request_id`).
    pub fn record_durable(&self, ev: &UsageEvent<'_>) -> Result<UsageRecord> {
        let mut records = self.record_batch_durable(std::slice::from_ref(ev))?;
        records.pop().ok_or(Error::WriterStopped)
    }

    /// [`UsageMonitor::record_durable`] for many events: all are validated
    /// before any is counted, then all are written with as few syncs as
    /// possible; returns once the last one is durable.
    pub fn record_batch_durable(&self, events: &[UsageEvent<'_>]) -> Result<Vec<UsageRecord>> {
        let window = self.intake_window();
        for ev in events {
            intake::check(ev, window)?;
        }
        let w = self.writer_or_err()?;
        let mut out = Vec::with_capacity(events.len());
        let mut last_seq = 0;
        for chunk in events.chunks(w.capacity()) {
            let mut places = w.reserve(chunk.len(), true)?;
            for seq in self.count_and_queue(chunk, &mut places, &mut out) {
                last_seq = seq;
            }
        }
        if last_seq > 0 {
            w.wait_durable(last_seq)?;
        }
        Ok(out)
    }

    /// Records one AI call without ever waiting: refuses bad values
    /// ([`Error::InvalidRecord`]) and a full queue ([`Error::QueueFull`], e.g.
    /// while the disk fails) before counting anything. Does not wait for the
    /// disk either (see [`UsageMonitor::record_durable`]).
    pub fn try_record(&self, ev: &UsageEvent<'_>) -> Result<UsageRecord> {
        self.validate(ev)?;
        let w = self.writer_or_err()?;
        let mut places = w.reserve(1, false)?;
        let mut out = Vec::with_capacity(1);
        self.count_and_queue(std::slice::from_ref(ev), &mut places, &mut out);
        out.pop().ok_or(Error::WriterStopped)
    }

    /// The timestamps this monitor's validating calls accept: from the
    /// first day of its retention window to an hour ahead of the clock.
    pub fn intake_window(&self) -> TimeWindow {
        let c = &self.shared.config;
        let now = now_timestamp();
        let first = c.zone.date_of(now) - chrono::Duration::days(i64::from(c.retention_days) - 1);
        TimeWindow {
            earliest: c.zone.day_bounds(first).0,
            latest: now + MAX_FUTURE_SECS,
        }
    }

    /// Checks the intake rules ([`intake::check`]) with this monitor's
    /// window ([`UsageMonitor::intake_window`]): what `try_record` and
    /// `record_durable` refuse, for doors that then call `record`.
    pub fn validate(&self, ev: &UsageEvent<'_>) -> std::result::Result<(), RecordError> {
        intake::check(ev, self.intake_window())
    }

    fn writer_or_err(&self) -> Result<&Writer> {
        self.shared.writer.as_ref().ok_or_else(|| {
            Error::NotDurable(
                self.writer_error
                    .clone()
                    .unwrap_or_else(|| "no writer".into()),
            )
        })
    }

    /// Counts valid events and queues them in reserved places; returns their
    /// sequence numbers and pushes the records to `out`.
    fn count_and_queue(
        &self,
        events: &[UsageEvent<'_>],
        places: &mut crate::storage::writer::Reservation<'_>,
        out: &mut Vec<UsageRecord>,
    ) -> Vec<u64> {
        let built: Vec<(UsageRecord, Currency, bool)> =
            events.iter().map(|ev| self.build_record(ev)).collect();
        let dates: Vec<NaiveDate> = {
            let mut rollups = self.shared.rollups.lock();
            built
                .iter()
                .map(|(r, c, p)| self.shared.count(&mut rollups, r, *c, *p))
                .collect()
        };
        let calls: Vec<(&UsageRecord, Currency, bool)> =
            built.iter().map(|(r, c, p)| (r, *c, *p)).collect();
        self.shared.after_count(&calls);
        let seqs = built
            .iter()
            .zip(&dates)
            .filter_map(|((r, _, _), d)| places.submit(*d, r))
            .collect();
        out.extend(built.into_iter().map(|(r, _, _)| r));
        seqs
    }

    /// Prices and stamps an event, repairing out-of-range values (see
    /// [`UsageMonitor::record`]).
    #[inline]
    fn build_record(&self, ev: &UsageEvent<'_>) -> (UsageRecord, Currency, bool) {
        let timestamp = match ev.timestamp {
            None => now_timestamp(),
            Some(t) => {
                let now = now_timestamp();
                if t.is_finite() && t > 0.0 && t <= now + MAX_FUTURE_SECS {
                    t
                } else {
                    now
                }
            }
        };
        let model = if ev.model.trim().is_empty() {
            "unknown"
        } else {
            ev.model
        };
        let usage = ev.usage.map_counts(|n| n.min(MAX_TOKENS_PER_CALL));
        let provider = ev.provider.map(str::trim).filter(|p| !p.is_empty());
        let (cost, currency, priced) = {
            let pricing = self.shared.pricing.read();
            match ev.cost.filter(|c| *c >= Money::ZERO) {
                Some(c) => (
                    c,
                    ev.currency
                        .or_else(|| pricing.currency_of(model))
                        .unwrap_or(Currency::CNY),
                    true,
                ),
                None => {
                    // Catalogue prices change over time: use the call's own
                    // moment, so back-filled records get the price then.
                    let at = || {
                        chrono::DateTime::from_timestamp_micros((timestamp * 1e6) as i64)
                            .unwrap_or_else(chrono::Utc::now)
                    };
                    let q = pricing.price_when(provider, model, &usage, at);
                    (q.cost, q.currency, q.priced)
                }
            }
        };
        let duration_ms = if ev.duration_ms.is_finite() && ev.duration_ms >= 0.0 {
            ev.duration_ms.min(MAX_DURATION_MS)
        } else {
            0.0
        };
        let mut record = UsageRecord {
            // Millisecond timestamps and microsecond durations: what a usage
            // record needs, and 4–8 bytes less per line than full floats.
            timestamp: round_to(timestamp, 1e3),
            user_id: ev.user_id.map(id),
            anchor_id: ev.anchor_id.map(id),
            session_id: ev.session_id.map(id),
            model: id(model),
            function: id(ev.function),
            cost,
            duration_ms: round_to(duration_ms, 1e3),
            success: ev.success,
            error_msg: ev
                .error_msg
                .map(|e| intake::cut(e, intake::MAX_ERROR_LEN).to_owned()),
            currency: (currency != Currency::CNY).then_some(currency),
            priced: (!priced).then_some(false),
            request_id: ev.request_id.map(id),
            tags: ev
                .tags
                .iter()
                .take(intake::MAX_TAGS)
                .map(|t| id(t))
                .collect(),
            provider: provider.map(id),
            ..UsageRecord::default()
        };
        record.set_usage(&usage);
        (record, currency, priced)
    }

    /// Counts at once what other processes appended since the last look
    /// (only for a monitor built with [`MonitorBuilder::follow`], whose
    /// background thread otherwise does this every interval).
    pub fn refresh(&self) {
        self.shared.refresh();
    }

    /// Runs `observer` after every later record is counted (e.g. to update
    /// Prometheus counters). It runs on the monitor's counting thread for
    /// [`UsageMonitor::record`]'s records (within [`UsageMonitor::settle`]'s
    /// bound), on the recording thread for the validating calls' and on the
    /// follower's for other processes' records: keep it short and never
    /// block in it.
    ///
    /// It sees exactly the records counted after this call begins: those
    /// already counted (e.g. by a query that read totals to start from) are
    /// published to the earlier observers first.
    pub fn subscribe(&self, observer: impl Fn(&RecordedCall<'_>) + Send + Sync + 'static) {
        let observer: Observer = Arc::new(observer);
        self.shared
            .settle_then(|| self.shared.observers.write().push(observer));
    }

    /// Counts and publishes at once what [`UsageMonitor::record`] left:
    /// on return every record made before the call has been counted, seen
    /// by the observers and queued for the writer. The counting thread does
    /// this within about 20 ms (at once past a few thousand records), and
    /// queries count (but do not publish) by themselves; call it before
    /// reading figures an observer keeps, e.g. counters.
    pub fn settle(&self) {
        self.shared.settle();
    }

    /// Runs `observer` after each later cost correction the follower reads
    /// from an adjustment file (`ai-usage reprice` in another process) and
    /// applies, e.g. to move Prometheus cost counters by the difference.
    /// Runs on the follower's thread: keep it short.
    pub fn on_adjustment(
        &self,
        observer: impl Fn(&crate::storage::adjustments::Adjustment) + Send + Sync + 'static,
    ) {
        self.shared
            .adjustment_observers
            .write()
            .push(Arc::new(observer));
    }

    /// Waits until every record made before this call is written and
    /// fsynced. Errors when the writer has stopped or cannot write (it keeps
    /// retrying; nothing queued is dropped).
    pub fn flush(&self) -> Result<()> {
        self.shared.settle();
        match &self.shared.writer {
            Some(w) => w.flush(),
            None => Err(Error::NotDurable(
                self.writer_error
                    .clone()
                    .unwrap_or_else(|| "no writer".into()),
            )),
        }
    }

    /// Stops following, flushes and stops the writer, then stops the
    /// companions; later records are counted in memory only. Called by
    /// `Drop` too.
    pub fn shutdown(&self) -> Result<()> {
        if let Some(task) = self.snapshots.lock().take() {
            task.stop();
        }
        if let Some(loader) = self.loader.lock().take() {
            self.shared.load.cancel();
            if loader.join().is_err() {
                tracing::error!("the history loader thread panicked");
            }
        }
        let following = self.follow.lock().take().map(|task| task.stop()).is_some();
        match self.counting.lock().take() {
            Some(task) => task.stop(),
            None => self.shared.settle(),
        }
        let flushed = match &self.shared.writer {
            Some(w) => w.shutdown(),
            None => Ok(()),
        };
        if let Some(w) = &self.shared.writer {
            if !self.shut_down.swap(true, Ordering::SeqCst) {
                if following {
                    // What other processes appended since the last look.
                    self.shared.refresh();
                }
                match self.shared.snapshot_now(&|| w.health().pending() == 0) {
                    Ok(bytes) => tracing::debug!(bytes, "rollup snapshot written at shutdown"),
                    Err(why) => tracing::info!(reason = %why, "no rollup snapshot at shutdown"),
                }
            }
        }
        let companions = std::mem::take(&mut *self.companions.lock());
        for c in companions {
            c.stop();
        }
        flushed
    }

    /// Starts `companion` beside this already built monitor (as
    /// [`MonitorBuilder::companion`](crate::MonitorBuilder::companion) does at
    /// build time), e.g. once the budgets are loaded. It shows in
    /// [`UsageMonitor::health`] and stops at shutdown.
    pub fn attach(&self, companion: &dyn Companion) -> Result<()> {
        let budgets = self.budget_handle();
        let started = {
            let pricing = self.pricing();
            companion.start(CompanionContext {
                dir: self.dir(),
                pricing: &pricing,
                zone: self.zone(),
                budgets: &budgets,
            })
        };
        let handle = started.map_err(|message| Error::Config {
            setting: "companion",
            message,
        })?;
        self.companions.lock().push(handle);
        Ok(())
    }

    /// Writer, replay and memory figures.
    pub fn health(&self) -> MonitorHealth {
        let mut writer = self.shared.writer.as_ref().map(Writer::health);
        if let Some(w) = writer.as_mut() {
            // Records still on their way to the writer are accepted too.
            w.enqueued += self.shared.handoff.waiting();
        }
        let load = self.shared.load.health();
        let (records_in_memory, rollup_groups) = {
            // Never waits for the load: health shows its progress. Records
            // still waiting for the counting thread are counted first.
            let mut r = self.shared.rollups.lock();
            self.shared.count_waiting(&mut r);
            (r.record_count(), r.group_count() as u64)
        };
        let ok = writer
            .as_ref()
            .is_some_and(|w| w.running && (w.last_error.is_none() || w.pending() == 0));
        MonitorHealth {
            ok,
            dir: self.shared.config.dir.display().to_string(),
            writer,
            writer_disabled: self.writer_error.clone(),
            loading: load.loading,
            replay: self.shared.load.replay_stats(),
            replay_ms: load.ms,
            load,
            records_in_memory,
            rollup_groups,
            clamped_records: self.clamped.load(Ordering::Relaxed),
            out_of_window_records: self.shared.out_of_window.load(Ordering::Relaxed),
            companions: self.companions.lock().iter().map(|c| c.health()).collect(),
            pricing_catalogue: self.pricing().catalogue_info(),
        }
    }

    /// The monitor's settings.
    pub fn config(&self) -> &MonitorConfig {
        &self.shared.config
    }

    /// Records directory.
    pub fn dir(&self) -> &Path {
        &self.shared.config.dir
    }

    /// Time zone of days.
    pub fn zone(&self) -> crate::zone::Zone {
        self.shared.config.zone
    }

    /// The pricing table in force (read lock; keep it short).
    pub fn pricing(&self) -> RwLockReadGuard<'_, PricingTable> {
        self.shared.pricing.read()
    }

    /// Swaps in the price catalogue installed in the records directory (by
    /// `ai-usage pricing update`, or a rollback) when its manifest changed
    /// since the last look; returns true when it did. Cheap when nothing
    /// changed (one read of a small file); `serve` calls it every few seconds, so a running
    /// server prices new models without a restart. Recording is not slowed:
    /// the table is swapped under its write lock only when a change is
    /// found. A damaged install is logged and the prices in force stay.
    pub fn refresh_price_catalogue(&self) -> bool {
        let mut seen = self.shared.catalogue_stamp.lock();
        let Some(last) = seen.as_ref() else {
            return false;
        };
        let store = crate::pricing::installed::CatalogueStore::new(&self.shared.config.dir);
        let now = store.stamp();
        if &now == last {
            return false;
        }
        *seen = Some(now);
        match store.load_current() {
            Ok(installed) => {
                match &installed {
                    Some(c) => tracing::info!(
                        source = %c.info().source,
                        date = %c.info().date,
                        models = c.info().models,
                        "price catalogue updated"
                    ),
                    None => tracing::info!("price catalogue back to the built-in snapshot"),
                }
                self.shared
                    .pricing
                    .write()
                    .set_installed(installed.map(Arc::new));
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "installed price catalogue ignored; the prices in force stay");
                false
            }
        }
    }

    /// The pricing table for changes at run time (register a model, an alias).
    /// Records already made keep their cost.
    pub fn pricing_mut(&self) -> RwLockWriteGuard<'_, PricingTable> {
        self.shared.pricing.write()
    }

    /// The rollups for a query: once the history is loaded (waiting at most
    /// the monitor's load bound), with every record made so far counted
    /// (lock held while the guard lives; queries hold it for O(groups) work
    /// only). Never reads files.
    fn rollups(&self) -> MutexGuard<'_, Rollups> {
        self.shared.load.wait_for_query(self.shared.load_wait);
        let mut rollups = self.shared.rollups.lock();
        self.shared.count_waiting(&mut rollups);
        rollups
    }

    /// True while the history is still loading (see [`UsageMonitor::health`]
    /// for the progress). Recording never waits for it; queries do, up to
    /// the bound set with [`MonitorBuilder::load_wait`].
    pub fn is_loading(&self) -> bool {
        self.shared.load.is_loading()
    }

    /// Waits until the history is loaded, at most `timeout`; true when it is.
    pub fn wait_until_loaded(&self, timeout: Duration) -> bool {
        self.shared.load.wait(timeout)
    }

    /// The current local time in the monitor's zone (never the machine's),
    /// formatted with `fmt`.
    fn local_now(&self, fmt: &str) -> String {
        self.zone().local(now_timestamp()).format(fmt).to_string()
    }

    /// Drops days older than the retention window from memory (files stay).
    /// Recording does this by itself when a new day begins.
    pub fn evict_expired(&self) {
        let config = &self.shared.config;
        let today = config.zone.today();
        let keep_from = today - chrono::Duration::days(config.retention_days as i64 - 1);
        let cutoff = config.zone.day_bounds(keep_from).0;
        self.rollups().evict(keep_from, cutoff);
    }
}

impl Shared {
    /// Counts one record in the rollups and budgets (lock held by the caller).
    fn count(
        &self,
        rollups: &mut Rollups,
        record: &UsageRecord,
        currency: Currency,
        priced: bool,
    ) -> NaiveDate {
        let (date, hour) = rollups.locate(&self.config.zone, record.timestamp);
        if rollups.note_day(date) {
            // A new day: drop what left the retention window. The window
            // ends at the clock's today, never later, whatever the record
            // says (a stray future timestamp must not evict real days).
            let today = self.config.zone.date_of(now_timestamp());
            let keep_from =
                date.min(today) - chrono::Duration::days(self.config.retention_days as i64 - 1);
            let cutoff = self.config.zone.day_bounds(keep_from).0;
            rollups.evict(keep_from, cutoff);
        }
        rollups.add(record, date, hour, currency, priced);
        self.budgets.on_record(record, currency, date, rollups);
        date
    }

    /// Work after counting, outside the rollups lock: budget alerts (whose
    /// callbacks may query the monitor) and observers.
    fn after_count(&self, calls: &[(&UsageRecord, Currency, bool)]) {
        self.budgets.dispatch();
        let observers = self.observers.read();
        if observers.is_empty() {
            return;
        }
        for &(record, currency, priced) in calls {
            let call = RecordedCall {
                record,
                currency,
                priced,
            };
            for o in observers.iter() {
                o(&call);
            }
        }
    }
}

impl Drop for UsageMonitor {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "usage monitor could not flush at drop");
        }
    }
}
