//! The monitor: prices an event, counts it in the rollups and hands its line
//! to the writer — all on the caller's thread in about a microsecond, never
//! waiting on disk and never panicking.
//!
//! The layers below (pricing, rollups, query, budget, export, storage) never
//! know the monitor; its methods live here, grouped by concern, and delegate:
//! - `builder`: [`MonitorBuilder`] and the resolved [`MonitorConfig`];
//! - `global`: the process-wide monitor and [`record_ai_usage`];
//! - `following`: the background thread counting other processes' appends;
//! - `queries`, `budgets`, `reports`: the question-answering methods.

mod budgets;
mod builder;
mod following;
mod global;
mod queries;
mod reports;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

pub use builder::{MonitorBuilder, MonitorConfig, TZ_ENV};
pub use global::{get_usage_monitor, init_global, record_ai_usage, FlushGuard};
pub use queries::CurrentTotals;

use crate::budget::BudgetBook;
use crate::error::{Error, Result};
use crate::money::Currency;
use crate::pricing::PricingTable;
use crate::query::RankCache;
use crate::record::{UsageEvent, UsageRecord};
use crate::rollups::Rollups;
use crate::storage::dayfile::ReadStats;
use crate::storage::follow::Follower;
use crate::storage::writer::{Writer, WriterHealth};
use crate::zone::now_timestamp;
use following::FollowTask;

/// A callback run after each record is counted (see [`UsageMonitor::subscribe`]).
pub type Observer = Arc<dyn Fn(&RecordedCall<'_>) + Send + Sync>;

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
    writer: Option<Writer>,
    writer_error: Option<String>,
    follow: Mutex<Option<FollowTask>>,
    replay: ReadStats,
    replay_time: Duration,
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
    /// Present when built with [`MonitorBuilder::follow`].
    follower: Option<Follower>,
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
    rollups: Rollups,
    /// The writer, or why there is none.
    writer: std::result::Result<Writer, String>,
    /// Interval and follower, when following.
    follow: Option<(Duration, Follower)>,
    replay: ReadStats,
    replay_time: Duration,
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
    /// What the start-up replay read.
    pub replay: ReadStats,
    /// How long the replay took (ms).
    pub replay_ms: u64,
    /// Records currently in the rollups.
    pub records_in_memory: u64,
}

impl UsageMonitor {
    fn assemble(parts: Parts) -> UsageMonitor {
        let (interval, follower) = match parts.follow {
            Some((i, f)) => (Some(i), Some(f)),
            None => (None, None),
        };
        let shared = Arc::new(Shared {
            config: parts.config,
            pricing: RwLock::new(parts.pricing),
            rollups: Mutex::new(parts.rollups),
            ranks: Mutex::new(RankCache::default()),
            budgets: BudgetBook::default(),
            observers: RwLock::new(Vec::new()),
            follower,
        });
        let follow = interval.and_then(|i| FollowTask::start(&shared, i));
        let (writer, writer_error) = match parts.writer {
            Ok(w) => (Some(w), None),
            Err(e) => (None, Some(e)),
        };
        UsageMonitor {
            shared,
            writer,
            writer_error,
            follow: Mutex::new(follow),
            replay: parts.replay,
            replay_time: parts.replay_time,
        }
    }

    /// A builder for an independent monitor (own directory, zone, policies).
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder::default()
    }

    /// Records one AI call: prices it (unless it carries a cost), counts it
    /// and queues its line. Returns the finished record.
    ///
    /// Never panics and never returns an error; never waits on disk (only on a
    /// full queue, under the default lossless policy). Bad values are
    /// sanitised and logged: an empty model becomes `"unknown"`, a negative or
    /// non-finite duration 0.
    pub fn record(&self, ev: &UsageEvent<'_>) -> UsageRecord {
        let timestamp = match ev.timestamp {
            Some(t) if t.is_finite() && t > 0.0 => t,
            _ => now_timestamp(),
        };
        let model = if ev.model.trim().is_empty() {
            "unknown"
        } else {
            ev.model
        };
        let (cost, currency, priced) = {
            let pricing = self.shared.pricing.read();
            match ev.cost {
                Some(c) => (
                    c,
                    ev.currency
                        .or_else(|| pricing.currency_of(model))
                        .unwrap_or(Currency::CNY),
                    true,
                ),
                None => {
                    let q = pricing.price(model, &ev.usage);
                    (q.cost, q.currency, q.priced)
                }
            }
        };
        let duration_ms = if ev.duration_ms.is_finite() && ev.duration_ms >= 0.0 {
            ev.duration_ms
        } else {
            tracing::warn!(
                duration_ms = ev.duration_ms,
                model,
                "invalid duration recorded as 0"
            );
            0.0
        };
        let record = UsageRecord {
            // Millisecond timestamps and microsecond durations: what a usage
            // record needs, and 4–8 bytes less per line than full floats.
            timestamp: round_to(timestamp, 1e3),
            user_id: ev.user_id.map(str::to_owned),
            anchor_id: ev.anchor_id.map(str::to_owned),
            session_id: ev.session_id.map(str::to_owned),
            model: model.to_owned(),
            function: ev.function.to_owned(),
            input_tokens: ev.usage.input_tokens,
            output_tokens: ev.usage.output_tokens,
            total_tokens: ev.usage.total(),
            cost,
            duration_ms: round_to(duration_ms, 1e3),
            success: ev.success,
            error_msg: ev.error_msg.map(str::to_owned),
            cached_input_tokens: ev.usage.cached_input_tokens,
            reasoning_tokens: ev.usage.reasoning_tokens,
            currency: (currency != Currency::CNY).then_some(currency),
            priced: (!priced).then_some(false),
            request_id: ev.request_id.map(str::to_owned),
            tags: ev.tags.iter().map(|t| (*t).to_owned()).collect(),
        };
        let date = {
            let mut rollups = self.shared.rollups.lock();
            self.shared.count(&mut rollups, &record, currency, priced)
        };
        self.shared.after_count(&[(&record, currency, priced)]);
        if let Some(w) = &self.writer {
            w.submit(date, &record);
        }
        record
    }

    /// Counts at once what other processes appended since the last look
    /// (only for a monitor built with [`MonitorBuilder::follow`], whose
    /// background thread otherwise does this every interval).
    pub fn refresh(&self) {
        self.shared.refresh();
    }

    /// Runs `observer` after every later record is counted (e.g. to update
    /// Prometheus counters). It runs on the recording thread (or the
    /// follower's, for other processes' records): keep it short and never
    /// block in it.
    pub fn subscribe(&self, observer: impl Fn(&RecordedCall<'_>) + Send + Sync + 'static) {
        self.shared.observers.write().push(Arc::new(observer));
    }

    /// Waits until every record made before this call is written and
    /// fsynced. Errors when the writer has stopped or cannot write (it keeps
    /// retrying; nothing queued is dropped).
    pub fn flush(&self) -> Result<()> {
        match &self.writer {
            Some(w) => w.flush(),
            None => Err(Error::NotDurable(
                self.writer_error
                    .clone()
                    .unwrap_or_else(|| "no writer".into()),
            )),
        }
    }

    /// Stops following, flushes and stops the writer; later records are
    /// counted in memory only. Called by `Drop` too.
    pub fn shutdown(&self) -> Result<()> {
        if let Some(task) = self.follow.lock().take() {
            task.stop();
        }
        match &self.writer {
            Some(w) => w.shutdown(),
            None => Ok(()),
        }
    }

    /// Writer, replay and memory figures.
    pub fn health(&self) -> MonitorHealth {
        let writer = self.writer.as_ref().map(Writer::health);
        let ok = writer
            .as_ref()
            .is_some_and(|w| w.running && (w.last_error.is_none() || w.pending() == 0));
        MonitorHealth {
            ok,
            dir: self.shared.config.dir.display().to_string(),
            writer,
            writer_disabled: self.writer_error.clone(),
            replay: self.replay.clone(),
            replay_ms: self.replay_time.as_millis() as u64,
            records_in_memory: self.rollups().record_count(),
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

    /// The pricing table for changes at run time (register a model, an alias).
    /// Records already made keep their cost.
    pub fn pricing_mut(&self) -> RwLockWriteGuard<'_, PricingTable> {
        self.shared.pricing.write()
    }

    /// The rollups (lock held while the guard lives; queries hold it for
    /// O(groups) work only). Never reads files.
    fn rollups(&self) -> MutexGuard<'_, Rollups> {
        self.shared.rollups.lock()
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
            // A new day: drop what left the retention window.
            let keep_from = date - chrono::Duration::days(self.config.retention_days as i64 - 1);
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
