//! [`MonitorBuilder`]: settings from code or the environment, resolved once
//! into a [`MonitorConfig`] whether the monitor can write or not.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::function_names::{FunctionNames, FUNCTION_NAMES_ENV};
use crate::money::{Currency, Money};
use crate::pricing::PricingTable;
use crate::rates::DatedRates;
use crate::storage::dayfile;
use crate::storage::follow::Follower;
use crate::storage::replay::{current_adjustment_ends, current_ends, plan_replay};
use crate::storage::writer::{FsyncPolicy, QueuePolicy, Writer, WriterConfig};
use crate::zone::Zone;

use super::companion::{Companion, CompanionContext};
use super::{Parts, UsageMonitor};

/// Environment variable naming the monitor's time zone (`local`, `UTC`, `+08:00`, …).
pub const TZ_ENV: &str = "AI_USAGE_TZ";

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
    /// Exchange rates by day: a day's costs convert at its own rate (the
    /// last earlier one when it has none), before `exchange_rates`.
    pub dated_rates: DatedRates,
    /// Most models / functions / users / anchors listed in a summary (0 = all).
    pub summary_group_limit: usize,
    /// How function names are shown in the API's `by_function` groups.
    pub function_names: FunctionNames,
}

/// Builds a [`UsageMonitor`].
///
/// ```no_run
/// # fn main() -> Result<(), ai_usage_core::Error> {
/// use ai_usage_core::UsageMonitor;
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
    load_wait: Duration,
    snapshot_interval: Duration,
    reporting_currency: Currency,
    exchange_rates: Vec<(Currency, i64)>,
    dated_rates: DatedRates,
    summary_group_limit: usize,
    follow: Option<Duration>,
    function_names: FunctionNames,
    function_names_file: Option<PathBuf>,
    /// The writer's system calls (fault-injection tests replace them).
    file_io: Option<Arc<dyn crate::storage::writer::FileIo>>,
    /// Background work started after the build (e.g. a shipper).
    companions: Vec<Arc<dyn Companion>>,
    /// Subscribed once the monitor is built (after the replay).
    observers: Observers,
    /// Log a warning at build when the price catalogue is stale.
    warn_stale_catalogue: bool,
}

/// Observers given to the builder (closures: shown by count only).
#[derive(Clone, Default)]
struct Observers(Vec<super::Observer>);

impl std::fmt::Debug for Observers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} observer(s)", self.0.len())
    }
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
            load_wait: Duration::from_secs(60),
            snapshot_interval: Duration::from_secs(600),
            reporting_currency: Currency::CNY,
            exchange_rates: Vec::new(),
            dated_rates: DatedRates::default(),
            summary_group_limit: 1000,
            follow: None,
            function_names: FunctionNames::default(),
            function_names_file: None,
            file_io: None,
            companions: Vec::new(),
            observers: Observers::default(),
            warn_stale_catalogue: true,
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

    /// Whether [`build`](Self::build) logs a warning when the price
    /// catalogue in force is more than
    /// [`STALE_AFTER_DAYS`](crate::pricing::installed::STALE_AFTER_DAYS)
    /// old (default: yes; a short-lived command may turn it off and show the
    /// age where it matters).
    pub fn warn_stale_catalogue(mut self, warn: bool) -> Self {
        self.warn_stale_catalogue = warn;
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

    /// Queue capacity in records (default 65,536): the most records accepted
    /// but not yet on disk, also while the disk fails, besides at most as
    /// many again (16,384 at most) left by `record` for the counting thread.
    /// A full queue makes `record` wait (`QueuePolicy::Block`) or drop and
    /// count.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Full-queue behaviour (default: block, lossless).
    pub fn queue_policy(mut self, policy: QueuePolicy) -> Self {
        self.queue_policy = policy;
        self
    }

    /// Whether to load the day files of the retention window at start (default true).
    pub fn replay(mut self, replay: bool) -> Self {
        self.replay = replay;
        self
    }

    /// Longest a query waits for the history to load (default 60 s).
    ///
    /// The monitor records from the moment it is built; the day files of
    /// the retention window load in a background thread. Until they have,
    /// queries (summaries, rankings, budgets, reports) wait, so an answer
    /// never silently leaves history out; one that waits longer than this
    /// answers from what is loaded so far (logged once).
    /// [`UsageMonitor::health`] never waits: it shows `loading` and the
    /// progress.
    pub fn load_wait(mut self, bound: Duration) -> Self {
        self.load_wait = bound;
        self
    }

    /// How often the rollup snapshot (`rollups.snapshot` in the records
    /// directory) is written while the monitor runs (default 10 min;
    /// `Duration::ZERO`: only after the load and at shutdown). A restart,
    /// even after a kill, then replays only the day files' tail after the
    /// last one. Recording waits while one is checked and written (the
    /// rollups are locked: see docs/performance.md for the pause).
    pub fn snapshot_interval(mut self, interval: Duration) -> Self {
        self.snapshot_interval = interval;
        self
    }

    /// Reporting currency of converted totals (default CNY).
    pub fn reporting_currency(mut self, currency: Currency) -> Self {
        self.reporting_currency = currency;
        self
    }

    /// An exchange rate: one unit of `from` is `rate` units of the reporting
    /// currency (e.g. `USD`, `"7.1"`), kept to six decimals (rates are
    /// millionths; converted amounts stay nano-units). Only used for converted
    /// totals, which always say which rates they used.
    pub fn exchange_rate(mut self, from: Currency, rate: Money) -> Self {
        self.exchange_rates.retain(|(c, _)| *c != from);
        self.exchange_rates.push((from, rate.micros()));
        self
    }

    /// Exchange rates by day (e.g. from [`DatedRates::load_file`]):
    /// converted totals take each day's rate, the last earlier one for a
    /// day without, and a constant [`exchange_rate`](Self::exchange_rate)
    /// before a currency's first dated rate; they say which rates they
    /// used for which days.
    pub fn dated_rates(mut self, rates: DatedRates) -> Self {
        self.dated_rates = rates;
        self
    }

    /// Most models, functions, users and anchors listed in a summary, the biggest by tokens
    /// (default 1,000; 0 lists all). Counts and totals always cover all.
    pub fn summary_group_limit(mut self, limit: usize) -> Self {
        self.summary_group_limit = limit;
        self
    }

    /// Shows `function` as `display` in the API's `by_function` groups
    /// (added to the default table, the original's).
    pub fn function_name(mut self, function: &str, display: &str) -> Self {
        self.function_names.insert(function, display);
        self
    }

    /// Replaces the whole function display table (e.g.
    /// [`FunctionNames::empty`] to show every name as recorded).
    pub fn function_names(mut self, table: FunctionNames) -> Self {
        self.function_names = table;
        self
    }

    /// A function display table file (TOML or `.json`, `name = "display"`)
    /// merged over the table at build time (default: `AI_USAGE_FUNCTION_NAMES`).
    pub fn function_names_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.function_names_file = Some(path.into());
        self
    }

    /// Also count records other processes append to the directory: a
    /// background thread owned by the monitor looks every `interval` (at
    /// least 10 ms) and stops when the monitor is dropped or shut down.
    /// Queries never read files. For dashboards and tools that run beside
    /// the recording app; [`UsageMonitor::refresh`] looks at once.
    pub fn follow(mut self, interval: Duration) -> Self {
        self.follow = Some(interval);
        self
    }

    /// Starts `companion` once the monitor is built (its own thread, never
    /// on the recording path) and stops it at shutdown, after the writer's
    /// last flush; its state shows in [`UsageMonitor::health`]. Extension
    /// crates use it, e.g. `ai-usage-clickhouse` for
    /// `MonitorBuilder::clickhouse(..)`.
    pub fn companion(mut self, companion: impl Companion + 'static) -> Self {
        self.companions.push(Arc::new(companion));
        self
    }

    /// Runs `observer` after every record counted once the monitor is built
    /// (not for the replayed history), like [`UsageMonitor::subscribe`]:
    /// on the recording thread, so it must be short and never block.
    /// Extension crates use it with a companion, e.g. `ai-usage-otel` for
    /// its metrics export.
    pub fn observer(
        mut self,
        observer: impl Fn(&super::RecordedCall<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.observers.0.push(Arc::new(observer));
        self
    }

    /// Replaces the writer's system calls (fault-injection tests).
    #[cfg(test)]
    pub(crate) fn file_io(mut self, io: Arc<dyn crate::storage::writer::FileIo>) -> Self {
        self.file_io = Some(io);
        self
    }

    /// The settings of the monitor, resolved once: explicit values, else
    /// the environment (`AI_USAGE_DIR`, `AI_USAGE_TZ`), else defaults.
    /// `zone` is resolved by [`MonitorBuilder::resolve_zone`] (the one step
    /// that can fail).
    fn config(&self, zone: Zone) -> MonitorConfig {
        let dir = match &self.dir {
            Some(d) => d.clone(),
            None => match std::env::var(dayfile::DIR_ENV) {
                Ok(d) if !d.trim().is_empty() => PathBuf::from(d),
                _ => PathBuf::from(dayfile::DEFAULT_DIR),
            },
        };
        MonitorConfig {
            dir,
            zone,
            retention_days: self.retention_days,
            reporting_currency: self.reporting_currency,
            exchange_rates: self.exchange_rates.clone(),
            dated_rates: self.dated_rates.clone(),
            summary_group_limit: self.summary_group_limit,
            function_names: self.function_names.clone(),
        }
    }

    /// The function display table file: the explicit one, else `AI_USAGE_FUNCTION_NAMES`.
    fn function_names_path(&self) -> Option<PathBuf> {
        self.function_names_file.clone().or_else(|| {
            std::env::var(FUNCTION_NAMES_ENV)
                .ok()
                .filter(|p| !p.trim().is_empty())
                .map(PathBuf::from)
        })
    }

    /// The explicit zone, else `AI_USAGE_TZ`, else the machine's local zone.
    fn resolve_zone(&self) -> Result<Zone> {
        if let Some(z) = self.zone {
            return Ok(z);
        }
        match std::env::var(TZ_ENV) {
            Ok(z) if !z.trim().is_empty() => {
                z.parse()
                    .map_err(|e: crate::zone::ZoneParseError| Error::Config {
                        setting: TZ_ENV,
                        message: e.to_string(),
                    })
            }
            _ => Ok(Zone::Local),
        }
    }

    /// Builds the monitor: loads pricing, starts the writer (and the
    /// follower, if asked) and the background load of the retention
    /// window's history (see [`MonitorBuilder::load_wait`]). Returns without
    /// waiting for the load: records are accepted at once. Errors name the
    /// directory or file that is wrong.
    pub fn build(mut self) -> Result<UsageMonitor> {
        let companions = std::mem::take(&mut self.companions);
        let observers = std::mem::take(&mut self.observers.0);
        let mut config = self.config(self.resolve_zone()?);
        if let Some(file) = self.function_names_path() {
            config.function_names.load_file(&file)?;
        }
        let mut pricing = match self.pricing {
            Some(p) => p,
            None => PricingTable::from_env_or_builtin()?,
        };
        if let Some(file) = &self.pricing_file {
            pricing.load_file(file)?;
        }
        let dir = config.dir.clone();
        let catalogue_stamp = apply_installed_catalogue(&mut pricing, &dir);
        if self.warn_stale_catalogue && pricing.uses_catalogue() {
            pricing.catalogue_info().warn_if_stale();
        }
        // What to load is fixed before the writer starts: each day file up
        // to its length now. What is appended after is this process's own
        // records (counted live) or another's (the follower's), never both.
        let plan = if self.replay {
            Some(plan_replay(&dir, &config.zone, self.retention_days)?)
        } else {
            None
        };
        let follow = self.follow.map(|interval| {
            let (offsets, adjustment_offsets) = match &plan {
                Some(p) => (
                    p.parts.iter().map(|f| (f.day, f.to)).collect(),
                    p.adjustment_ends(),
                ),
                // Without a replay, start following at today's files' ends.
                None => (current_ends(&dir), current_adjustment_ends(&dir)),
            };
            (interval, Follower::new(offsets, adjustment_offsets))
        });
        let mut wc = WriterConfig::new(dir);
        wc.flush_interval = self.flush_interval;
        wc.fsync = self.fsync;
        wc.queue_capacity = self.queue_capacity;
        wc.queue_policy = self.queue_policy;
        wc.own_writes = follow.as_ref().map(|(_, f)| Arc::clone(&f.own));
        if let Some(io) = self.file_io {
            wc.io = io;
        }
        let writer = Writer::start(wc)?;
        let monitor = UsageMonitor::assemble(Parts {
            config,
            pricing,
            writer: Ok(writer),
            follow,
            catalogue_stamp,
            load: plan,
            load_wait: self.load_wait,
            snapshot_interval: (!self.snapshot_interval.is_zero())
                .then_some(self.snapshot_interval.max(Duration::from_secs(1))),
        });
        for o in observers {
            monitor.shared.observers.write().push(o);
        }
        let budgets = monitor.budget_handle();
        for c in companions {
            let started = {
                let pricing = monitor.pricing();
                c.start(CompanionContext {
                    dir: monitor.dir(),
                    pricing: &pricing,
                    zone: monitor.zone(),
                    budgets: &budgets,
                })
            };
            match started {
                Ok(handle) => monitor.companions.lock().push(handle),
                // Dropping the monitor stops what already started.
                Err(message) => {
                    return Err(Error::Config {
                        setting: "companion",
                        message,
                    })
                }
            }
        }
        Ok(monitor)
    }

    /// A monitor that keeps rollups but cannot write (used when the global
    /// monitor's directory is unusable, so recording still never fails).
    pub(super) fn build_in_memory(self, reason: String) -> UsageMonitor {
        let mut config = self.config(self.resolve_zone().unwrap_or_default());
        if let Some(file) = self.function_names_path() {
            // Recording must not fail here: keep the table without the file.
            if let Err(e) = config.function_names.load_file(&file) {
                tracing::warn!(error = %e, "function names file ignored");
            }
        }
        let pricing = self.pricing.unwrap_or_else(|| {
            PricingTable::from_env_or_builtin().unwrap_or_else(|_| PricingTable::builtin())
        });
        UsageMonitor::assemble(Parts {
            config,
            pricing,
            writer: Err(reason),
            follow: None,
            catalogue_stamp: None,
            load: None,
            load_wait: self.load_wait,
            snapshot_interval: None,
        })
    }
}

/// Puts the catalogue installed in `dir` (by `ai-usage pricing update`) in
/// the built-in snapshot's place, for a table that uses the catalogue;
/// returns the manifest's stamp to watch (`None`: the table does not use the
/// catalogue). A damaged install is logged and the snapshot stays.
pub(super) fn apply_installed_catalogue(
    pricing: &mut PricingTable,
    dir: &std::path::Path,
) -> Option<crate::pricing::installed::Stamp> {
    use crate::pricing::installed::CatalogueStore;
    if !pricing.uses_catalogue() {
        return None;
    }
    let store = CatalogueStore::new(dir);
    // Taken before reading: a change in between is seen at the next check.
    let stamp = store.stamp();
    match store.load_current() {
        Ok(installed) => {
            if let Some(c) = &installed {
                tracing::info!(
                    source = %c.info().source,
                    date = %c.info().date,
                    models = c.info().models,
                    "using the price catalogue installed by `pricing update`"
                );
            }
            pricing.set_installed(installed.map(Arc::new));
        }
        Err(e) => tracing::warn!(
            error = %e,
            "installed price catalogue ignored; the previous prices stay in force"
        ),
    }
    Some(stamp)
}
