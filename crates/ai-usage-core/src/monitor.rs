//! The monitor: prices an event, counts it in the rollups and hands its line
//! to the writer — all on the caller's thread in about a microsecond, never
//! waiting on disk and never panicking.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use parking_lot::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::budget::BudgetBook;
use crate::error::{Error, Result};
use crate::money::{Currency, Money};
use crate::pricing::PricingTable;
use crate::record::{UsageEvent, UsageRecord};
use crate::rollups::Rollups;
use crate::storage::dayfile::{self, ReadStats};
use crate::storage::follow::Follower;
use crate::storage::replay::{current_ends, replay_dir, stored_currency, Replayed};
use crate::storage::writer::{FsyncPolicy, QueuePolicy, Writer, WriterConfig, WriterHealth};
use crate::zone::{now_timestamp, Zone};

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

/// Environment variable naming the monitor's time zone (`local`, `UTC`, an IANA
/// name such as `America/New_York`, an offset such as `+08:00`).
pub const TZ_ENV: &str = "AI_USAGE_TZ";

/// Records AI calls and answers questions about them.
///
/// Cheap to share: clone the `Arc` it usually lives in, or use the global one
/// from [`get_usage_monitor`]. Dropping a monitor flushes and stops its writer.
pub struct UsageMonitor {
    pub(crate) config: MonitorConfig,
    pricing: RwLock<PricingTable>,
    rollups: Mutex<Rollups>,
    writer: Option<Writer>,
    writer_error: Option<String>,
    pub(crate) budgets: BudgetBook,
    observers: RwLock<Vec<Observer>>,
    follower: Option<Follower>,
    replay: ReadStats,
    replay_time: Duration,
}

impl std::fmt::Debug for UsageMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsageMonitor")
            .field("dir", &self.config.dir)
            .field("zone", &self.config.zone)
            .finish_non_exhaustive()
    }
}

/// Settings of a monitor (see [`MonitorBuilder`]).
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// Records directory.
    pub dir: PathBuf,
    /// Time zone of day files and day boundaries.
    pub zone: Zone,
    /// Days of history replayed into memory at start.
    pub retention_days: u32,
    /// Reporting currency for converted totals.
    pub reporting_currency: Currency,
    /// Exchange rates into the reporting currency, as micro-units of the
    /// reporting currency per one unit of the other (e.g. USD → 7.1 CNY is
    /// `7_100_000`).
    pub exchange_rates: Vec<(Currency, i64)>,
    /// Most users / anchors listed in a summary (0 = all).
    pub summary_group_limit: usize,
}

/// Builds a [`UsageMonitor`].
///
/// ```no_run
/// # fn main() -> Result<(), ai_usage_core::error::Error> {
/// use ai_usage_core::monitor::UsageMonitor;
/// let monitor = UsageMonitor::builder().dir("records/ai_usage").timezone("+08:00".parse().unwrap()).build()?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MonitorBuilder {
    dir: Option<PathBuf>,
    zone: Option<Zone>,
    retention_days: u32,
    pricing: Option<PricingTable>,
    pricing_file: Option<PathBuf>,
    flush_interval: Duration,
    fsync: FsyncPolicy,
    queue_capacity: usize,
    queue_policy: QueuePolicy,
    replay: bool,
    reporting_currency: Currency,
    exchange_rates: Vec<(Currency, i64)>,
    summary_group_limit: usize,
    follow: Option<Duration>,
}

impl Default for MonitorBuilder {
    fn default() -> Self {
        MonitorBuilder {
            dir: None,
            zone: None,
            retention_days: 93,
            pricing: None,
            pricing_file: None,
            flush_interval: Duration::from_millis(200),
            fsync: FsyncPolicy::Interval(Duration::from_secs(1)),
            queue_capacity: 65_536,
            queue_policy: QueuePolicy::Block,
            replay: true,
            reporting_currency: Currency::CNY,
            exchange_rates: Vec::new(),
            summary_group_limit: 1000,
            follow: None,
        }
    }
}

impl MonitorBuilder {
    /// Records directory (default: `AI_USAGE_DIR`, else `records/ai_usage`).
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Time zone (default: `AI_USAGE_TZ`, else the machine's local zone).
    pub fn timezone(mut self, zone: Zone) -> Self {
        self.zone = Some(zone);
        self
    }

    /// Days replayed at start and kept in memory (default 93).
    pub fn retention_days(mut self, days: u32) -> Self {
        self.retention_days = days.max(1);
        self
    }

    /// A complete pricing table (default: built-in + `AI_USAGE_PRICING`).
    pub fn pricing(mut self, table: PricingTable) -> Self {
        self.pricing = Some(table);
        self
    }

    /// A pricing file (JSON or TOML) merged over the built-in table.
    pub fn pricing_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.pricing_file = Some(path.into());
        self
    }

    /// Longest time a record waits in memory before it is written (default 200 ms).
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// When to fsync (default: at most 1 s after a write).
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// Queue capacity in records (default 65,536).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Full-queue behaviour (default: block, lossless).
    pub fn queue_policy(mut self, policy: QueuePolicy) -> Self {
        self.queue_policy = policy;
        self
    }

    /// Whether to replay day files at start (default true).
    pub fn replay(mut self, replay: bool) -> Self {
        self.replay = replay;
        self
    }

    /// Reporting currency of converted totals (default CNY).
    pub fn reporting_currency(mut self, currency: Currency) -> Self {
        self.reporting_currency = currency;
        self
    }

    /// An exchange rate: one unit of `from` is `rate` units of the reporting
    /// currency (e.g. `USD`, `"7.1"`). Only used for converted totals, which
    /// always say which rates they used.
    pub fn exchange_rate(mut self, from: Currency, rate: Money) -> Self {
        self.exchange_rates.retain(|(c, _)| *c != from);
        self.exchange_rates.push((from, rate.micros()));
        self
    }

    /// Most users and anchors listed in a summary, the biggest by tokens
    /// (default 1,000; 0 lists all). Counts and totals always cover all.
    pub fn summary_group_limit(mut self, limit: usize) -> Self {
        self.summary_group_limit = limit;
        self
    }

    /// Also count records other processes append to the directory, looking
    /// at most once per `interval` when queried (see [`crate::storage::follow`]).
    /// For dashboards and tools that run beside the recording app.
    pub fn follow(mut self, interval: Duration) -> Self {
        self.follow = Some(interval);
        self
    }

    /// Builds the monitor: loads pricing, replays the retention window and
    /// starts the writer. Errors name the directory or file that is wrong.
    pub fn build(self) -> Result<UsageMonitor> {
        let dir = match self.dir {
            Some(d) => d,
            None => match std::env::var(dayfile::DIR_ENV) {
                Ok(d) if !d.trim().is_empty() => PathBuf::from(d),
                _ => PathBuf::from(dayfile::DEFAULT_DIR),
            },
        };
        let zone = match self.zone {
            Some(z) => z,
            None => match std::env::var(TZ_ENV) {
                Ok(z) if !z.trim().is_empty() => {
                    z.parse()
                        .map_err(|e: crate::zone::ZoneParseError| Error::Config {
                            setting: TZ_ENV,
                            message: e.to_string(),
                        })?
                }
                _ => Zone::Local,
            },
        };
        let mut pricing = match self.pricing {
            Some(p) => p,
            None => PricingTable::from_env_or_builtin()?,
        };
        if let Some(file) = &self.pricing_file {
            pricing.load_file(file)?;
        }
        let config = MonitorConfig {
            dir: dir.clone(),
            zone,
            retention_days: self.retention_days,
            reporting_currency: self.reporting_currency,
            exchange_rates: self.exchange_rates,
            summary_group_limit: self.summary_group_limit,
        };
        let started = Instant::now();
        let replayed = if self.replay {
            replay_dir(&dir, &zone, &pricing, self.retention_days)?
        } else {
            Replayed::default()
        };
        let Replayed {
            rollups,
            stats: replay,
            offsets,
        } = replayed;
        let follower = self.follow.map(|interval| {
            // Without a replay, start following at today's files' ends.
            let offsets = if self.replay {
                offsets
            } else {
                current_ends(&dir)
            };
            Follower::new(interval, offsets)
        });
        let replay_time = started.elapsed();
        if replay.records > 0 || replay.skipped_lines > 0 {
            tracing::info!(
                records = replay.records,
                skipped = replay.skipped_lines,
                ms = replay_time.as_millis() as u64,
                dir = %dir.display(),
                "replayed usage records"
            );
        }
        let mut wc = WriterConfig::new(dir);
        wc.flush_interval = self.flush_interval;
        wc.fsync = self.fsync;
        wc.queue_capacity = self.queue_capacity;
        wc.queue_policy = self.queue_policy;
        wc.own_writes = follower.as_ref().map(|f| Arc::clone(&f.own));
        let writer = Writer::start(wc)?;
        let monitor = UsageMonitor {
            config,
            pricing: RwLock::new(pricing),
            rollups: Mutex::new(rollups),
            writer: Some(writer),
            writer_error: None,
            budgets: BudgetBook::default(),
            observers: RwLock::new(Vec::new()),
            follower,
            replay,
            replay_time,
        };
        Ok(monitor)
    }

    /// A monitor that keeps rollups but cannot write (used when the global
    /// monitor's directory is unusable, so recording still never fails).
    fn build_in_memory(self, reason: String) -> UsageMonitor {
        let pricing = self.pricing.unwrap_or_else(|| {
            PricingTable::from_env_or_builtin().unwrap_or_else(|_| PricingTable::builtin())
        });
        UsageMonitor {
            config: MonitorConfig {
                dir: self
                    .dir
                    .unwrap_or_else(|| PathBuf::from(dayfile::DEFAULT_DIR)),
                zone: self.zone.unwrap_or_default(),
                retention_days: self.retention_days,
                reporting_currency: self.reporting_currency,
                exchange_rates: self.exchange_rates,
                summary_group_limit: self.summary_group_limit,
            },
            pricing: RwLock::new(pricing),
            rollups: Mutex::new(Rollups::default()),
            writer: None,
            writer_error: Some(reason),
            budgets: BudgetBook::default(),
            observers: RwLock::new(Vec::new()),
            follower: None,
            replay: ReadStats::default(),
            replay_time: Duration::ZERO,
        }
    }
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
            let pricing = self.pricing.read();
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
            let mut rollups = self.rollups.lock();
            self.count(&mut rollups, &record, currency, priced)
        };
        self.after_count(&[(&record, currency, priced)]);
        if let Some(w) = &self.writer {
            w.submit(date, &record);
        }
        record
    }

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

    /// Counts what other processes appended since the last look (only for
    /// a monitor built with [`MonitorBuilder::follow`], at most once per its
    /// interval). Queries call this by themselves.
    pub fn refresh(&self) {
        let Some(f) = &self.follower else { return };
        let today = self.config.zone.today();
        let first = today - chrono::Duration::days(self.config.retention_days as i64 - 1);
        let found = f.poll(&self.config.dir, first);
        if found.is_empty() {
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
        let calls: Vec<(&UsageRecord, Currency, bool)> =
            counted.iter().map(|(r, c, p)| (r, *c, *p)).collect();
        self.after_count(&calls);
        tracing::debug!(
            records = counted.len(),
            "counted records appended by other processes"
        );
    }

    /// Runs `observer` after every later record is counted (e.g. to update
    /// Prometheus counters). It runs on the recording thread: keep it short
    /// and never block in it.
    pub fn subscribe(&self, observer: impl Fn(&RecordedCall<'_>) + Send + Sync + 'static) {
        self.observers.write().push(Arc::new(observer));
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

    /// Flushes and stops the writer; later records are counted in memory
    /// only. Called by `Drop` too.
    pub fn shutdown(&self) -> Result<()> {
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
            dir: self.config.dir.display().to_string(),
            writer,
            writer_disabled: self.writer_error.clone(),
            replay: self.replay.clone(),
            replay_ms: self.replay_time.as_millis() as u64,
            records_in_memory: self.rollups.lock().record_count(),
        }
    }

    /// The monitor's settings.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// Records directory.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Time zone of days.
    pub fn zone(&self) -> Zone {
        self.config.zone
    }

    /// The pricing table in force (read lock; keep it short).
    pub fn pricing(&self) -> RwLockReadGuard<'_, PricingTable> {
        self.pricing.read()
    }

    /// The pricing table for changes at run time (register a model, an alias).
    /// Records already made keep their cost.
    pub fn pricing_mut(&self) -> RwLockWriteGuard<'_, PricingTable> {
        self.pricing.write()
    }

    /// The rollups (lock held while the guard lives; queries hold it for
    /// O(groups) work only).
    pub fn rollups(&self) -> MutexGuard<'_, Rollups> {
        self.refresh();
        self.rollups.lock()
    }

    /// Drops days older than the retention window from memory (files stay).
    /// Recording does this by itself when a new day begins.
    pub fn evict_expired(&self) {
        let today = self.config.zone.today();
        let keep_from = today - chrono::Duration::days(self.config.retention_days as i64 - 1);
        let cutoff = self.config.zone.day_bounds(keep_from).0;
        self.rollups.lock().evict(keep_from, cutoff);
    }
}

impl Drop for UsageMonitor {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "usage monitor could not flush at drop");
        }
    }
}

static GLOBAL: OnceLock<UsageMonitor> = OnceLock::new();

/// The global monitor, created on first use from the environment
/// (`AI_USAGE_DIR`, `AI_USAGE_PRICING`, `AI_USAGE_TZ`).
///
/// Never fails: if the directory or pricing file is unusable, the error is
/// logged and the monitor keeps counting in memory (see
/// [`UsageMonitor::health`]). Being a static, it is never dropped: flush it
/// before the program exits, with [`UsageMonitor::flush`] or the guard from
/// [`init_global`].
pub fn get_usage_monitor() -> &'static UsageMonitor {
    GLOBAL.get_or_init(|| {
        UsageMonitor::builder().build().unwrap_or_else(|e| {
            tracing::error!(error = %e, "usage monitor cannot write records; counting in memory only");
            MonitorBuilder::default().build_in_memory(e.to_string())
        })
    })
}

/// Configures the global monitor before first use and returns a guard that
/// flushes it when dropped (keep it in `main`).
///
/// Errors if the builder fails, or if the global monitor already exists.
pub fn init_global(builder: MonitorBuilder) -> Result<FlushGuard> {
    let monitor = builder.build()?;
    GLOBAL.set(monitor).map_err(|_| Error::Config {
        setting: "global monitor",
        message: "already initialised (init_global must run before the first record)".into(),
    })?;
    Ok(FlushGuard { _private: () })
}

/// Flushes the global monitor when dropped.
#[must_use = "the guard flushes the global monitor when it is dropped; keep it alive in main"]
#[derive(Debug)]
pub struct FlushGuard {
    _private: (),
}

impl FlushGuard {
    /// A guard for an already-initialised global monitor.
    pub fn new() -> FlushGuard {
        FlushGuard { _private: () }
    }
}

impl Default for FlushGuard {
    fn default() -> Self {
        FlushGuard::new()
    }
}

impl Drop for FlushGuard {
    fn drop(&mut self) {
        if let Some(m) = GLOBAL.get() {
            if let Err(e) = m.flush() {
                tracing::error!(error = %e, "could not flush usage records at exit");
            }
        }
    }
}

/// Records one call on the global monitor (the seed's `record_ai_usage`).
///
/// ```no_run
/// use ai_usage_core::{monitor::record_ai_usage, UsageEvent};
/// let rec = record_ai_usage(&UsageEvent::new("qwen-plus", "实时分析").tokens(1200, 300).duration_ms(850.0).anchor("anchor_123").session("session_456"));
/// println!("cost ¥{}", rec.cost);
/// ```
pub fn record_ai_usage(ev: &UsageEvent<'_>) -> UsageRecord {
    get_usage_monitor().record(ev)
}
