//! Budgets and alerts: daily or monthly spending limits, globally or per
//! user / anchor (主播) / function (功能) / model, with percentage thresholds.
//!
//! How a threshold fires:
//! - The monitor calls [`BudgetBook::on_record`] under the rollups lock right
//!   after a record is counted. Every record is therefore checked against
//!   rollups that already contain it and no other thread can count a record
//!   in between: "spent" for the record's scope and period (the day, or the
//!   sum of the month's days) is exact, and a threshold crosses exactly once
//!   per period, however many threads record at the same time.
//! - Alerts are only *queued* under the lock. They are delivered (a
//!   `tracing::warn!` plus every callback registered with
//!   [`crate::UsageMonitor::on_budget_alert`]) after the lock is released, so a
//!   callback may query the monitor.
//! - After a restart the rollups are rebuilt from the day files. The first
//!   time a budget meets a period (when it is added, queried, or the first
//!   record of that period arrives), thresholds the period had already
//!   crossed *before* count as fired: the process that crossed them has
//!   alerted. A budget added when its period is already over a threshold
//!   therefore does not alert for it (its status shows it as fired).
//! - Fleet alerts: when the budgets are evaluated on a whole fleet's spend
//!   (ai-usage-clickhouse's alert poller), [`BudgetBook::set_local_alerts`]
//!   turns the per-record check off (recording then costs one relaxed load
//!   for budgets, as without budgets) and the poller hands what it decided
//!   to [`BudgetBook::deliver`]: the same warning and callbacks. Status
//!   keeps working; thresholds reached count as fired in it.
//!
//! Money is never converted: a budget in CNY counts only costs recorded in
//! CNY. Scopes match the names as recorded (the `model` string as given, not
//! its pricing alias).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{Error, Result};
use crate::money::{Currency, Money};
use crate::record::UsageRecord;
use crate::rollups::{Bucket, GroupRef, Rollups};
use crate::zone::{month_start, Zone};

mod guard;
use guard::GuardIndex;
pub use guard::{BudgetExceeded, CallScope, FleetSpend};

/// Environment variable naming the budgets file (default `DIR/budgets.json`).
pub const BUDGETS_ENV: &str = "AI_USAGE_BUDGETS";
/// File name of the budgets file inside the records directory.
pub const BUDGETS_FILE: &str = "budgets.json";
/// Thresholds used when a budget names none: warn at 80 %, alert at 100 %.
pub const DEFAULT_THRESHOLDS: [u32; 2] = [80, 100];
/// Periods of fired thresholds remembered per budget (older ones are dropped;
/// only late back-dated records ever reach them).
const PERIODS_KEPT: usize = 4;

/// What a budget counts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum BudgetScope {
    /// Every call.
    Global,
    /// Calls of one user (`user_id`).
    User(String),
    /// Calls of one anchor (`anchor_id`, 主播).
    Anchor(String),
    /// Calls of one function (功能).
    Function(String),
    /// Calls of one model, by the name as recorded.
    Model(String),
    /// Calls carrying one tag (e.g. `team:live-ops`); a call with several
    /// tags counts once toward each.
    Tag(String),
}

impl BudgetScope {
    /// True when `r` counts towards this scope.
    pub fn matches(&self, r: &UsageRecord) -> bool {
        match self {
            BudgetScope::Global => true,
            BudgetScope::User(u) => r.user_id.as_deref() == Some(u.as_str()),
            BudgetScope::Anchor(a) => r.anchor_id.as_deref() == Some(a.as_str()),
            BudgetScope::Function(f) => r.function == *f,
            BudgetScope::Model(m) => r.model == *m,
            BudgetScope::Tag(t) => r.tags.contains(t),
        }
    }

    /// The counters of this scope in one bucket, if it has any.
    pub fn group<'b>(&self, b: &'b Bucket) -> Option<GroupRef<'b>> {
        match self {
            BudgetScope::Global => Some(GroupRef::full(&b.totals)),
            BudgetScope::User(u) => b.by_user.group(u),
            BudgetScope::Anchor(a) => b.by_anchor.group(a),
            BudgetScope::Function(f) => b.by_function.group(f),
            BudgetScope::Model(m) => b.by_model.group(m),
            BudgetScope::Tag(t) => b.by_tag.group(t),
        }
    }
}

impl std::fmt::Display for BudgetScope {
    /// `global`, `user:42`, `anchor:anchor_001`, `function:实时分析`, `model:qwen-max`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BudgetScope::Global => f.write_str("global"),
            BudgetScope::User(id) => write!(f, "user:{id}"),
            BudgetScope::Anchor(id) => write!(f, "anchor:{id}"),
            BudgetScope::Function(id) => write!(f, "function:{id}"),
            BudgetScope::Model(id) => write!(f, "model:{id}"),
            BudgetScope::Tag(id) => write!(f, "tag:{id}"),
        }
    }
}

/// The period a budget's limit applies to (local days of the monitor's zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    /// One local calendar day.
    #[serde(alias = "day")]
    Daily,
    /// One calendar month.
    #[serde(alias = "month")]
    Monthly,
}

impl BudgetPeriod {
    /// First and last local date of the period containing `date`.
    pub fn bounds(self, date: NaiveDate) -> (NaiveDate, NaiveDate) {
        match self {
            BudgetPeriod::Daily => (date, date),
            BudgetPeriod::Monthly => {
                let first = month_start(date);
                (
                    first,
                    first + chrono::Duration::days(i64::from(date.num_days_in_month()) - 1),
                )
            }
        }
    }

    /// `YYYY-MM-DD` (daily) or `YYYY-MM` (monthly) of the period containing `date`.
    pub fn label(self, date: NaiveDate) -> String {
        match self {
            BudgetPeriod::Daily => date.format("%Y-%m-%d").to_string(),
            BudgetPeriod::Monthly => date.format("%Y-%m").to_string(),
        }
    }
}

/// A spending limit with alert thresholds.
///
/// ```
/// use ai_usage_core::{Budget, BudgetPeriod, BudgetScope};
/// use ai_usage_core::{Currency, Money};
/// let b = Budget::new("每日总预算", BudgetScope::Global, BudgetPeriod::Daily, "50".parse::<Money>().unwrap(), Currency::CNY);
/// assert_eq!(b.thresholds, vec![80, 100]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    /// Unique name (adding a budget with an existing name replaces it).
    pub name: String,
    /// What is counted.
    pub scope: BudgetScope,
    /// Daily or monthly.
    pub period: BudgetPeriod,
    /// The limit per period, in `currency`; must be positive.
    pub limit: Money,
    /// Only costs in this currency count (never converted).
    pub currency: Currency,
    /// Percentages of `limit` that alert, e.g. `[80, 100]` (1..=1000).
    pub thresholds: Vec<u32>,
    /// Names of the channels (the budgets file's `"notify"` map, or a
    /// notifier's channels) its alerts are sent to; empty: the warning and
    /// callbacks only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notify: Vec<String>,
    /// Hard limit in percent of `limit` (e.g. `100`): once the period's
    /// spend reaches it, [`crate::UsageMonitor::check_budget`] refuses calls
    /// of this scope. None (the default): the budget only alerts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_at: Option<u32>,
}

impl Budget {
    /// A budget with the default thresholds (80 %, 100 %).
    pub fn new(
        name: impl Into<String>,
        scope: BudgetScope,
        period: BudgetPeriod,
        limit: Money,
        currency: Currency,
    ) -> Budget {
        Budget {
            name: name.into(),
            scope,
            period,
            limit,
            currency,
            thresholds: DEFAULT_THRESHOLDS.to_vec(),
            notify: Vec::new(),
            block_at: None,
        }
    }

    /// Refuses calls once the spend reaches `percent` of the limit.
    pub fn with_block_at(mut self, percent: u32) -> Budget {
        self.block_at = Some(percent);
        self
    }

    /// Sends the budget's alerts to the channels named `channels`.
    pub fn with_notify<S: Into<String>>(mut self, channels: impl IntoIterator<Item = S>) -> Budget {
        self.notify = channels.into_iter().map(Into::into).collect();
        self
    }

    /// Replaces the thresholds (percent of the limit).
    pub fn with_thresholds(mut self, thresholds: impl Into<Vec<u32>>) -> Budget {
        self.thresholds = thresholds.into();
        self
    }

    /// Checks the budget and sorts its thresholds; the error names the field.
    pub fn validate(&mut self) -> std::result::Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("field `name`: must not be empty".into());
        }
        if self.limit <= Money::ZERO {
            return Err(format!(
                "field `limit`: must be greater than 0, got {}",
                self.limit
            ));
        }
        if let BudgetScope::User(id)
        | BudgetScope::Anchor(id)
        | BudgetScope::Function(id)
        | BudgetScope::Model(id)
        | BudgetScope::Tag(id) = &self.scope
        {
            if id.is_empty() {
                return Err("field `scope`: the id must not be empty".into());
            }
        }
        if self.thresholds.is_empty() {
            self.thresholds = DEFAULT_THRESHOLDS.to_vec();
        }
        if let Some(t) = self.thresholds.iter().find(|t| !(1..=1000).contains(*t)) {
            return Err(format!(
                "field `thresholds`: {t} is not a percentage between 1 and 1000"
            ));
        }
        self.thresholds.sort_unstable();
        self.thresholds.dedup();
        if let Some(b) = self.block_at.filter(|b| !(1..=1000).contains(b)) {
            return Err(format!(
                "field `block_at`: {b} is not a percentage between 1 and 1000"
            ));
        }
        if self.notify.iter().any(|n| n.trim().is_empty()) {
            return Err("field `notify`: a channel name must not be empty".into());
        }
        self.notify.sort_unstable();
        self.notify.dedup();
        Ok(())
    }

    /// True when `spent` is at or above `threshold` percent of the limit.
    fn reached(&self, spent: Money, threshold: u32) -> bool {
        // Integers only: 79.9999 % must not round up to 80 %.
        spent.nanos() as i128 * 100 >= self.limit.nanos() as i128 * threshold as i128
    }

    fn percent(&self, spent: Money) -> f64 {
        if self.limit.nanos() == 0 {
            return 0.0;
        }
        (spent.nanos() as f64 * 10_000.0 / self.limit.nanos() as f64).round() / 100.0
    }
}

/// One threshold crossing, delivered once per budget, threshold and period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetAlert {
    /// The budget's name.
    pub budget: String,
    /// What the budget counts.
    pub scope: BudgetScope,
    /// Daily or monthly.
    pub period: BudgetPeriod,
    /// `YYYY-MM-DD` or `YYYY-MM`.
    pub period_label: String,
    /// The threshold crossed (percent of the limit).
    pub threshold: u32,
    /// Spent in the period, including the record that crossed (fleet
    /// alerts: the fleet's spend when the poll saw the crossing).
    pub spent: Money,
    /// The limit.
    pub limit: Money,
    /// `spent / limit` in percent (two decimals).
    pub percent: f64,
    /// Currency of `spent` and `limit`.
    pub currency: Currency,
    /// Timestamp (epoch seconds) of the record that crossed (fleet alerts:
    /// of the poll that saw the crossing).
    pub timestamp: f64,
    /// Model of the record that crossed (empty for fleet alerts: no single
    /// record crossed).
    pub model: String,
    /// Function of the record that crossed (empty for fleet alerts).
    pub function: String,
}

/// Where a budget stands in its current period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetStatus {
    /// The budget's name.
    pub name: String,
    /// What it counts.
    pub scope: BudgetScope,
    /// Daily or monthly.
    pub period: BudgetPeriod,
    /// The current period, `YYYY-MM-DD` or `YYYY-MM`.
    pub period_label: String,
    /// Spent so far in the period.
    pub spent: Money,
    /// The limit.
    pub limit: Money,
    /// `limit - spent`, never below zero.
    pub remaining: Money,
    /// `spent / limit` in percent (two decimals; above 100 when over).
    pub percent: f64,
    /// Linear projection to the end of the period: spent / elapsed time ×
    /// period length (elapsed counted as at least one hour, so the first
    /// minutes of a period do not project absurd amounts).
    pub projected_end_of_period: Money,
    /// Currency of every amount.
    pub currency: Currency,
    /// The budget's thresholds (percent).
    pub thresholds: Vec<u32>,
    /// Thresholds that have fired (or had been crossed before this process
    /// saw the period) in the current period.
    pub thresholds_fired: Vec<u32>,
    /// The hard limit (percent of `limit`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_at: Option<u32>,
    /// True while the hard limit is reached: calls of this scope are refused.
    pub refusing: bool,
}

/// A budget alert callback.
pub type AlertCallback = Arc<dyn Fn(&BudgetAlert) + Send + Sync>;

/// Fired thresholds of one period of one budget.
#[derive(Debug, Clone)]
struct PeriodState {
    first_day: NaiveDate,
    fired: Vec<u32>,
}

#[derive(Debug, Clone)]
struct Entry {
    budget: Budget,
    /// Most recently used last; at most [`PERIODS_KEPT`].
    periods: Vec<PeriodState>,
}

/// The state of `budget`'s period starting `first_day`; created on first use
/// with every threshold `spent_before` had already reached counted as fired.
fn period_state<'p>(
    budget: &Budget,
    periods: &'p mut Vec<PeriodState>,
    first_day: NaiveDate,
    spent_before: impl FnOnce() -> Money,
) -> &'p mut PeriodState {
    let pos = match periods.iter().position(|p| p.first_day == first_day) {
        Some(i) => i,
        None => {
            let before = spent_before();
            let fired = budget
                .thresholds
                .iter()
                .copied()
                .filter(|t| budget.reached(before, *t))
                .collect();
            if periods.len() >= PERIODS_KEPT {
                // Drop the oldest period; only very late records need it.
                if let Some((i, _)) = periods.iter().enumerate().min_by_key(|(_, p)| p.first_day) {
                    periods.remove(i);
                }
            }
            periods.push(PeriodState { first_day, fired });
            periods.len() - 1
        }
    };
    &mut periods[pos]
}

/// Alerts waiting for delivery and the callbacks that receive them; shared
/// with the monitor's observer so delivery happens outside the rollups lock.
#[derive(Default)]
struct Delivery {
    pending: Mutex<Vec<BudgetAlert>>,
    has_pending: AtomicBool,
    callbacks: RwLock<Vec<AlertCallback>>,
}

impl Delivery {
    fn dispatch(&self) {
        // Cheap check first: this runs after every record.
        if !self.has_pending.swap(false, Ordering::AcqRel) {
            return;
        }
        let alerts = std::mem::take(&mut *self.pending.lock());
        self.emit(&alerts);
    }

    /// The warning and the callbacks, for each alert in order.
    fn emit(&self, alerts: &[BudgetAlert]) {
        if alerts.is_empty() {
            return;
        }
        let callbacks = self.callbacks.read().clone();
        for a in alerts {
            tracing::warn!(
                budget = %a.budget,
                scope = %a.scope,
                period = %a.period_label,
                threshold = a.threshold,
                spent = %a.spent,
                limit = %a.limit,
                currency = %a.currency,
                "AI budget threshold reached: {} {}% ({}{} of {}{})",
                a.budget,
                a.threshold,
                a.currency.symbol(),
                a.spent,
                a.currency.symbol(),
                a.limit
            );
            for cb in &callbacks {
                // A panicking callback must not break recording (record never panics).
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb(a))).is_err() {
                    tracing::error!(budget = %a.budget, "a budget alert callback panicked");
                }
            }
        }
    }
}

/// The budgets of a monitor and which thresholds have fired.
#[derive(Default)]
pub struct BudgetBook {
    entries: Mutex<Vec<Entry>>,
    /// True while there are budgets and local alerts are on; false: the
    /// per-record check is one load. Written under the `entries` lock.
    active: AtomicBool,
    /// True when an outside poller alerts on these budgets (local alerts
    /// off, see [`BudgetBook::set_local_alerts`]). Written under `entries`.
    alerts_elsewhere: AtomicBool,
    delivery: Arc<Delivery>,
    /// The budgets with a hard limit, rebuilt when budgets change.
    guards: RwLock<GuardIndex>,
    /// True when `guards` is not empty: a check without hard limits is one load.
    has_guards: AtomicBool,
    /// The fleet's spend, when a refresher keeps it (fleet mode).
    fleet_spend: RwLock<Option<FleetSpend>>,
}

impl std::fmt::Debug for BudgetBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetBook")
            .field("budgets", &self.entries.lock().len())
            .field("callbacks", &self.delivery.callbacks.read().len())
            .finish()
    }
}

/// Spent in `currency` by `scope` over the local days `first..=last`.
pub fn spent_in(
    rollups: &Rollups,
    scope: &BudgetScope,
    currency: Currency,
    first: NaiveDate,
    last: NaiveDate,
) -> Money {
    rollups
        .days
        .range(first..=last)
        .filter_map(|(_, d)| scope.group(&d.day))
        .map(|g| g.cost_in(currency))
        .sum()
}

impl BudgetBook {
    /// Called under the rollups lock after each record is counted: queues an
    /// alert for every threshold this record made its budgets cross.
    pub fn on_record(
        &self,
        record: &UsageRecord,
        currency: Currency,
        date: NaiveDate,
        rollups: &Rollups,
    ) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        let mut queued = Vec::new();
        let mut entries = self.entries.lock();
        if self.alerts_elsewhere.load(Ordering::Relaxed) {
            // Switched off between the load above and the lock.
            return;
        }
        for e in entries.iter_mut() {
            if e.budget.currency != currency || !e.budget.scope.matches(record) {
                continue;
            }
            let (first, last) = e.budget.period.bounds(date);
            let scope = &e.budget.scope;
            let spent = spent_in(rollups, scope, currency, first, last);
            let state = period_state(&e.budget, &mut e.periods, first, || spent - record.cost);
            if state.fired.len() == e.budget.thresholds.len() {
                continue;
            }
            for &t in &e.budget.thresholds {
                if !state.fired.contains(&t) && e.budget.reached(spent, t) {
                    state.fired.push(t);
                    queued.push(BudgetAlert {
                        budget: e.budget.name.clone(),
                        scope: e.budget.scope.clone(),
                        period: e.budget.period,
                        period_label: e.budget.period.label(date),
                        threshold: t,
                        spent,
                        limit: e.budget.limit,
                        percent: e.budget.percent(spent),
                        currency,
                        timestamp: record.timestamp,
                        model: record.model.clone(),
                        function: record.function.clone(),
                    });
                }
            }
        }
        drop(entries);
        if !queued.is_empty() {
            self.delivery.pending.lock().extend(queued);
            self.delivery.has_pending.store(true, Ordering::Release);
        }
    }

    /// Rebuilds the hard-limit index (under the `entries` lock).
    fn reindex(&self, entries: &[Entry]) {
        let idx = GuardIndex::of(entries.iter().map(|e| &e.budget));
        self.has_guards.store(!idx.is_empty(), Ordering::Release);
        *self.guards.write() = idx;
    }

    /// True when some budget has a hard limit.
    pub fn has_hard_limits(&self) -> bool {
        self.has_guards.load(Ordering::Acquire)
    }

    /// Refuses `call` when a budget matching it is at its hard limit in
    /// the period containing `today`. Looks only at the budgets with a hard
    /// limit that match the call.
    pub fn check(
        &self,
        call: &CallScope<'_>,
        rollups: &Rollups,
        today: NaiveDate,
    ) -> std::result::Result<(), BudgetExceeded> {
        let fleet = self.fleet_spend.read();
        self.guards
            .read()
            .check(call, rollups, fleet.as_ref(), today)
    }

    /// Makes checks use the fleet's spend (until it expires); `None` goes
    /// back to this host's spend.
    pub fn set_fleet_spend(&self, spend: Option<FleetSpend>) {
        *self.fleet_spend.write() = spend;
    }

    /// Delivers queued alerts (warning + callbacks). Must be called without
    /// the rollups lock held. Cheap when nothing is queued.
    pub fn dispatch(&self) {
        self.delivery.dispatch();
    }

    /// Adds or replaces (by name) a budget; `today`'s period is initialised
    /// from `rollups` (thresholds already reached count as fired).
    fn insert(&self, budget: Budget, rollups: &Rollups, today: NaiveDate) {
        let mut entries = self.entries.lock();
        entries.retain(|e| e.budget.name != budget.name);
        let mut e = Entry {
            budget,
            periods: Vec::new(),
        };
        let (first, last) = e.budget.period.bounds(today);
        let (scope, currency) = (e.budget.scope.clone(), e.budget.currency);
        period_state(&e.budget, &mut e.periods, first, || {
            spent_in(rollups, &scope, currency, first, last)
        });
        entries.push(e);
        self.reindex(&entries);
        self.active.store(
            !self.alerts_elsewhere.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }
}

impl BudgetBook {
    /// Initialises every budget's current period again from `rollups`
    /// (once the history has loaded under budgets added while it loaded):
    /// thresholds reached count as fired, as when a budget is added.
    pub(crate) fn reseed(&self, rollups: &Rollups, today: NaiveDate) {
        let budgets: Vec<Budget> = self
            .entries
            .lock()
            .iter()
            .map(|e| e.budget.clone())
            .collect();
        // Each insert moves its budget to the end: the order is kept.
        for b in budgets {
            self.insert(b, rollups, today);
        }
    }

    /// Validates and adds `budget`, or replaces the one with the same name;
    /// `today`'s period is initialised from `rollups` (thresholds already
    /// reached count as fired). Errors (`InvalidArgument`) name the field.
    pub fn add(&self, mut budget: Budget, rollups: &Rollups, today: NaiveDate) -> Result<()> {
        budget
            .validate()
            .map_err(|message| Error::InvalidArgument {
                argument: "budget",
                message: format!("budget `{}`: {message}", budget.name),
            })?;
        {
            let entries = self.entries.lock();
            let replaces = entries.iter().any(|e| e.budget.name == budget.name);
            if !replaces && entries.len() >= MAX_BUDGETS {
                return Err(Error::InvalidArgument {
                    argument: "budget",
                    message: format!(
                        "budget `{}`: a monitor keeps at most {MAX_BUDGETS} budgets",
                        budget.name
                    ),
                });
            }
        }
        self.insert(budget, rollups, today);
        Ok(())
    }

    /// Removes the budget named `name`; false if there was none.
    pub fn remove(&self, name: &str) -> bool {
        let mut entries = self.entries.lock();
        let before = entries.len();
        entries.retain(|e| e.budget.name != name);
        self.reindex(&entries);
        if entries.is_empty() {
            self.active.store(false, Ordering::Relaxed);
        }
        entries.len() != before
    }

    /// The budgets in force, in the order they were added.
    pub fn list(&self) -> Vec<Budget> {
        self.entries
            .lock()
            .iter()
            .map(|e| e.budget.clone())
            .collect()
    }

    /// Adds an alert callback (see the module docs for when it runs).
    pub fn subscribe(&self, callback: AlertCallback) {
        self.delivery.callbacks.write().push(callback);
    }

    /// Delivers alerts decided elsewhere (e.g. on a fleet's spend) exactly as
    /// local ones: a `tracing::warn!` and every callback, in order, on the
    /// calling thread. Must be called without the rollups lock held.
    pub fn deliver(&self, alerts: &[BudgetAlert]) {
        self.delivery.emit(alerts);
    }

    /// Turns the per-record threshold check on (the default) or off. Off
    /// means an outside poller evaluates these budgets and delivers through
    /// [`BudgetBook::deliver`]: records then fire nothing (one relaxed load
    /// each), and [`BudgetBook::status`] counts every threshold reached as
    /// fired. Turned back on, each period starts over as after a restart
    /// (thresholds already reached count as fired).
    pub fn set_local_alerts(&self, on: bool) {
        let mut entries = self.entries.lock();
        let was_on = !self.alerts_elsewhere.swap(!on, Ordering::Relaxed);
        if on && !was_on {
            // The periods' fired lists are stale: rebuilt on first use.
            for e in entries.iter_mut() {
                e.periods.clear();
            }
        }
        self.active
            .store(on && !entries.is_empty(), Ordering::Relaxed);
    }

    /// True while there are budgets and local alerts are on: recording
    /// then checks thresholds (and may fire alerts) on every record.
    pub fn alerts_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// False when local alerts are off (see [`BudgetBook::set_local_alerts`]).
    pub fn local_alerts(&self) -> bool {
        !self.alerts_elsewhere.load(Ordering::Relaxed)
    }

    /// Where every budget stands in its period containing `today`, at the
    /// time `now` (epoch seconds) in `zone`.
    pub fn status(
        &self,
        rollups: &Rollups,
        zone: &Zone,
        today: NaiveDate,
        now: f64,
    ) -> Vec<BudgetStatus> {
        let mut entries = self.entries.lock();
        let elsewhere = self.alerts_elsewhere.load(Ordering::Relaxed);
        entries
            .iter_mut()
            .map(|e| {
                let (first, last) = e.budget.period.bounds(today);
                let spent = spent_in(rollups, &e.budget.scope, e.budget.currency, first, last);
                let mut fired = if elsewhere {
                    // Nothing fires here: what is reached is the poller's to alert.
                    let b = &e.budget;
                    b.thresholds
                        .iter()
                        .copied()
                        .filter(|t| b.reached(spent, *t))
                        .collect()
                } else {
                    period_state(&e.budget, &mut e.periods, first, || spent)
                        .fired
                        .clone()
                };
                fired.sort_unstable();
                let b = &e.budget;
                BudgetStatus {
                    name: b.name.clone(),
                    scope: b.scope.clone(),
                    period: b.period,
                    period_label: b.period.label(today),
                    spent,
                    limit: b.limit,
                    remaining: if spent < b.limit {
                        b.limit - spent
                    } else {
                        Money::ZERO
                    },
                    percent: b.percent(spent),
                    projected_end_of_period: project(zone, first, last, now, spent),
                    currency: b.currency,
                    thresholds: b.thresholds.clone(),
                    thresholds_fired: fired,
                    block_at: b.block_at,
                    refusing: b.block_at.is_some_and(|t| b.reached(spent, t)),
                }
            })
            .collect()
    }
}

/// Linear projection of `spent` over the days `first..=last` at time `now`.
fn project(zone: &Zone, first: NaiveDate, last: NaiveDate, now: f64, spent: Money) -> Money {
    let start = zone.day_bounds(first).0;
    let end = zone.day_bounds(last).1;
    let total = (end - start).max(1.0);
    let elapsed = (now - start).clamp(3600.0_f64.min(total), total);
    spent
        .mul_div(total.round() as i64, elapsed.round().max(1.0) as i64)
        .unwrap_or(spent)
}

/// The budgets file of a records directory: `AI_USAGE_BUDGETS` when set,
/// else `dir/budgets.json`.
pub fn budgets_path(dir: &Path) -> PathBuf {
    match std::env::var_os(BUDGETS_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => dir.join(BUDGETS_FILE),
    }
}

/// One budget as written in a budgets file: the scope is one optional key
/// (`user`, `anchor`, `function` or `model`; none = global).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBudget {
    name: String,
    period: BudgetPeriod,
    #[serde(deserialize_with = "de_limit")]
    limit: Money,
    #[serde(default)]
    currency: Currency,
    #[serde(default)]
    thresholds: Vec<u32>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    anchor: Option<String>,
    #[serde(default)]
    function: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    notify: Vec<String>,
    #[serde(default)]
    block_at: Option<u32>,
}

/// A validated file budget; validation runs inside serde so errors carry
/// the line and column of the budget.
#[derive(Deserialize)]
#[serde(try_from = "FileBudget")]
struct ValidBudget(Budget);

impl TryFrom<FileBudget> for ValidBudget {
    type Error = String;
    fn try_from(f: FileBudget) -> std::result::Result<ValidBudget, String> {
        let scopes: Vec<BudgetScope> = [
            f.user.map(BudgetScope::User),
            f.anchor.map(BudgetScope::Anchor),
            f.function.map(BudgetScope::Function),
            f.model.map(BudgetScope::Model),
            f.tag.map(BudgetScope::Tag),
        ]
        .into_iter()
        .flatten()
        .collect();
        if scopes.len() > 1 {
            return Err(format!(
                "budget `{}`: give at most one of `user`, `anchor`, `function`, `model`, `tag`",
                f.name
            ));
        }
        let mut b = Budget {
            name: f.name,
            scope: scopes.into_iter().next().unwrap_or(BudgetScope::Global),
            period: f.period,
            limit: f.limit,
            currency: f.currency,
            thresholds: f.thresholds,
            notify: f.notify,
            block_at: f.block_at,
        };
        b.validate()
            .map_err(|m| format!("budget `{}`: {m}", b.name))?;
        Ok(ValidBudget(b))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBudgets {
    budgets: Vec<ValidBudget>,
    /// Channels by name; their fields belong to the notifier (not the core).
    #[serde(default)]
    notify: BTreeMap<String, serde_json::Value>,
    /// The scheduled digest; its fields belong to the notifier too.
    #[serde(default)]
    digest: Option<serde_json::Value>,
}

/// A budgets file: its budgets and the alert channels they name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BudgetsConfig {
    /// The budgets, in file order.
    pub budgets: Vec<Budget>,
    /// The `"notify"` map: channel name → its settings as written (checked
    /// by the notifier, which knows the kinds; the core only checks that
    /// every name a budget gives is defined here).
    pub channels: BTreeMap<String, serde_json::Value>,
    /// The `"digest"` object as written (a daily or weekly report to some
    /// of the channels; checked by the notifier), if any.
    pub digest: Option<serde_json::Value>,
}

/// A limit given as a number (`50`, `12.5`) or a decimal string (`"12.50"`).
fn de_limit<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Money, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Amount {
        Number(f64),
        Text(String),
    }
    let bad =
        || serde::de::Error::custom("field `limit`: expected an amount such as 50 or \"50.00\"");
    match Amount::deserialize(d).map_err(|_| bad())? {
        Amount::Number(v) => Money::from_f64(v).ok_or_else(bad),
        Amount::Text(s) => s.parse().map_err(|_| bad()),
    }
}

/// Reads a budgets file: a JSON array of budgets, or `{"budgets": [...]}`.
///
/// ```json
/// {"budgets": [
///   {"name": "每日总预算", "period": "daily", "limit": 50, "currency": "CNY", "thresholds": [80, 100]},
///   {"name": "anchor_001 月预算", "anchor": "anchor_001", "period": "monthly", "limit": "300.00"},
///   {"name": "qwen-max", "model": "qwen-max", "period": "daily", "limit": 20}
/// ]}
/// ```
///
/// Errors name the file, the line and column, the budget and the field.
pub fn load_budgets_file(path: &Path) -> Result<Vec<Budget>> {
    load_budgets_config(path).map(|c| c.budgets)
}

/// Reads a budgets file with its `"notify"` channels (see
/// [`load_budgets_file`] for the budgets' format):
///
/// ```json
/// {"notify": {"ops": {"kind": "feishu", "url": "https://open.feishu.cn/open-apis/bot/v2/hook/…", "secret": "…"}},
///  "budgets": [{"name": "每日总预算", "period": "daily", "limit": 50, "notify": ["ops"]}]}
/// ```
pub fn load_budgets_config(path: &Path) -> Result<BudgetsConfig> {
    let io = |e| Error::Io {
        action: "cannot read budgets file",
        path: path.to_path_buf(),
        source: e,
    };
    let size = std::fs::metadata(path).map_err(io)?.len();
    if size > MAX_BUDGETS_FILE_BYTES {
        return Err(Error::Config {
            setting: "budgets file",
            message: format!(
                "{}: {size} bytes; a budgets file may have at most {MAX_BUDGETS_FILE_BYTES}",
                path.display()
            ),
        });
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    parse_budgets_config(&text, &path.display().to_string())
}

/// Most budgets a monitor keeps (and a budgets file may hold): every
/// recorded call is checked against each budget, so thousands would slow
/// recording for no real use.
pub const MAX_BUDGETS: usize = 1000;

/// Largest budgets file read (bytes); 1000 budgets take well under 1 MiB.
pub const MAX_BUDGETS_FILE_BYTES: u64 = 1 << 20;

/// Parses the text of a budgets file; `origin` names it in errors.
pub fn parse_budgets(text: &str, origin: &str) -> Result<Vec<Budget>> {
    parse_budgets_config(text, origin).map(|c| c.budgets)
}

/// Parses the text of a budgets file with its `"notify"` channels; `origin`
/// names it in errors.
pub fn parse_budgets_config(text: &str, origin: &str) -> Result<BudgetsConfig> {
    let parsed = if text.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<ValidBudget>>(text).map(|b| (b, BTreeMap::new(), None))
    } else {
        serde_json::from_str::<FileBudgets>(text).map(|f| (f.budgets, f.notify, f.digest))
    };
    let (budgets, channels, digest) = parsed.map_err(|e| {
        // serde_json appends " at line L column C"; we say it first.
        let msg = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let msg = msg.strip_suffix(&suffix).unwrap_or(&msg);
        Error::Config {
            setting: "budgets file",
            message: format!("{origin}, line {}, column {}: {msg}", e.line(), e.column()),
        }
    })?;
    let budgets: Vec<Budget> = budgets.into_iter().map(|v| v.0).collect();
    if budgets.len() > MAX_BUDGETS {
        return Err(Error::Config {
            setting: "budgets file",
            message: format!(
                "{origin}: {} budgets; at most {MAX_BUDGETS} are kept",
                budgets.len()
            ),
        });
    }
    let mut names = std::collections::HashSet::with_capacity(budgets.len());
    for b in &budgets {
        if !names.insert(b.name.as_str()) {
            return Err(Error::Config {
                setting: "budgets file",
                message: format!("{origin}: budget name `{}` is used more than once", b.name),
            });
        }
        if let Some(name) = b.notify.iter().find(|n| !channels.contains_key(*n)) {
            return Err(Error::Config {
                setting: "budgets file",
                message: format!(
                    "{origin}: budget `{}`: field `notify`: channel `{name}` is not defined in the file's \"notify\" map",
                    b.name
                ),
            });
        }
    }
    Ok(BudgetsConfig {
        budgets,
        channels,
        digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(s: &str) -> Money {
        s.parse().unwrap()
    }

    #[test]
    fn file_with_every_scope_parses() {
        let text = r#"{"budgets": [
            {"name": "total", "period": "daily", "limit": 50},
            {"name": "a1", "anchor": "anchor_001", "period": "monthly", "limit": "300.50", "thresholds": [100, 50, 50]},
            {"name": "u", "user": "42", "period": "day", "limit": 1, "currency": "usd"},
            {"name": "f", "function": "实时分析", "period": "daily", "limit": 2},
            {"name": "m", "model": "qwen-max", "period": "month", "limit": 3}
        ]}"#;
        let b = parse_budgets(text, "t.json").unwrap();
        assert_eq!(b.len(), 5);
        assert_eq!(b[0].scope, BudgetScope::Global);
        assert_eq!(b[0].thresholds, vec![80, 100]);
        assert_eq!(b[0].currency, Currency::CNY);
        assert_eq!(b[1].scope, BudgetScope::Anchor("anchor_001".into()));
        assert_eq!(b[1].limit, money("300.5"));
        assert_eq!(b[1].thresholds, vec![50, 100]);
        assert_eq!(b[1].period, BudgetPeriod::Monthly);
        assert_eq!(b[2].currency, Currency::USD);
        assert_eq!(b[3].scope, BudgetScope::Function("实时分析".into()));
        assert_eq!(b[4].scope, BudgetScope::Model("qwen-max".into()));
        let arr = parse_budgets(
            r#"[{"name": "x", "period": "daily", "limit": 5}]"#,
            "a.json",
        )
        .unwrap();
        assert_eq!(arr.len(), 1);
    }

    #[test]
    fn file_errors_name_file_line_and_field() {
        let cases = [
            ("{\"budgets\": [\n {\"name\": \"x\", \"period\": \"daily\", \"limt\": 5}\n]}", "limt", 2),
            ("{\"budgets\": [\n {\"name\": \"x\", \"period\": \"daily\",\n  \"limit\": -5}]}", "field `limit`", 3),
            ("{\"budgets\": [\n {\"name\": \"x\", \"period\": \"weekly\", \"limit\": 5}\n]}", "weekly", 2),
            ("[{\"name\": \"x\", \"period\": \"daily\", \"limit\": \"abc\"}]", "field `limit`", 1),
            ("[{\"name\": \"x\", \"period\": \"daily\", \"limit\": 1, \"thresholds\": [0]}]", "field `thresholds`", 1),
            ("[{\"name\": \"x\", \"user\": \"a\", \"anchor\": \"b\", \"period\": \"daily\", \"limit\": 1}]", "at most one", 1),
        ];
        for (text, needle, line) in cases {
            let e = parse_budgets(text, "dir/budgets.json")
                .unwrap_err()
                .to_string();
            assert!(e.contains("dir/budgets.json"), "{e}");
            assert!(e.contains(needle), "{e} should mention {needle}");
            assert!(
                e.contains(&format!("line {line},")),
                "{e} should be at line {line}"
            );
        }
        let dup = parse_budgets(
            r#"[{"name": "x", "period": "daily", "limit": 1}, {"name": "x", "period": "monthly", "limit": 1}]"#,
            "b.json",
        );
        assert!(dup.unwrap_err().to_string().contains("more than once"));
    }

    #[test]
    fn notify_channels_are_kept_raw_and_budget_names_must_exist() {
        let text = r#"{"notify": {"ops": {"kind": "slack", "url": "https://hooks.slack.com/services/T/B/X"}},
            "budgets": [{"name": "d", "period": "daily", "limit": 5, "notify": ["ops", "ops"]}]}"#;
        let c = parse_budgets_config(text, "b.json").unwrap();
        assert_eq!(c.budgets[0].notify, vec!["ops".to_string()]);
        assert_eq!(c.channels["ops"]["kind"], "slack");
        let bad = r#"{"notify": {}, "budgets": [{"name": "d", "period": "daily", "limit": 5, "notify": ["opz"]}]}"#;
        let e = parse_budgets_config(bad, "b.json").unwrap_err().to_string();
        assert!(e.contains("budget `d`") && e.contains("`opz`"), "{e}");
        // The array form has no channels to name.
        let arr = r#"[{"name": "d", "period": "daily", "limit": 5, "notify": ["ops"]}]"#;
        assert!(parse_budgets(arr, "a.json").is_err());
    }

    #[test]
    fn the_digest_object_is_kept_raw_for_the_notifier() {
        let text = r#"{"notify": {"ops": {"kind": "slack", "url": "https://hooks.slack.com/services/T/B/X"}},
            "budgets": [],
            "digest": {"schedule": "weekly", "weekday": "mon", "at": "09:00", "notify": ["ops"]}}"#;
        let c = parse_budgets_config(text, "b.json").unwrap();
        let digest = c.digest.expect("digest kept");
        assert_eq!(digest["schedule"], "weekly");
        assert_eq!(digest["notify"][0], "ops");
        assert_eq!(
            parse_budgets_config(r#"{"budgets": []}"#, "b.json")
                .unwrap()
                .digest,
            None
        );
        // Other unknown top-level fields are still errors.
        let e = parse_budgets_config(r#"{"budgets": [], "digets": {}}"#, "b.json").unwrap_err();
        assert!(e.to_string().contains("unknown field `digets`"), "{e}");
    }

    #[test]
    fn missing_file_is_an_io_error_naming_it() {
        let e = load_budgets_file(Path::new("/nonexistent/budgets.json")).unwrap_err();
        assert!(matches!(e, Error::Io { .. }));
        assert!(e.to_string().contains("/nonexistent/budgets.json"));
    }

    #[test]
    fn thresholds_use_exact_integers() {
        let b = Budget::new(
            "x",
            BudgetScope::Global,
            BudgetPeriod::Daily,
            money("10"),
            Currency::CNY,
        );
        assert!(!b.reached(money("7.999999"), 80));
        assert!(b.reached(money("8"), 80));
        assert_eq!(b.percent(money("8.5")), 85.0);
    }

    #[test]
    fn monthly_bounds_and_labels() {
        let d = NaiveDate::from_ymd_opt(2024, 2, 17).unwrap();
        assert_eq!(
            BudgetPeriod::Monthly.bounds(d),
            (
                NaiveDate::from_ymd_opt(2024, 2, 1).unwrap(),
                NaiveDate::from_ymd_opt(2024, 2, 29).unwrap()
            )
        );
        assert_eq!(BudgetPeriod::Monthly.label(d), "2024-02");
        assert_eq!(BudgetPeriod::Daily.label(d), "2024-02-17");
    }

    #[test]
    fn budget_files_have_a_count_and_size_limit_and_parse_linearly() {
        let file = |n: usize| {
            let items: Vec<String> = (0..n)
                .map(|i| format!(r#"{{"name": "b{i}", "period": "daily", "limit": 5}}"#))
                .collect();
            format!("[{}]", items.join(","))
        };
        let started = std::time::Instant::now();
        assert_eq!(
            parse_budgets(&file(MAX_BUDGETS), "b.json").unwrap().len(),
            MAX_BUDGETS
        );
        let e = parse_budgets(&file(40_000), "b.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("40000 budgets") && e.contains("at most 1000"),
            "{e}"
        );
        // 40,000 budgets took 4.65 s (names compared pairwise).
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        let dup = r#"[{"name": "x", "period": "daily", "limit": 5}, {"name": "x", "period": "daily", "limit": 6}]"#;
        assert!(parse_budgets(dup, "d.json")
            .unwrap_err()
            .to_string()
            .contains("more than once"));
        let big = tempfile::NamedTempFile::new().unwrap();
        big.as_file().set_len(MAX_BUDGETS_FILE_BYTES + 1).unwrap();
        let e = load_budgets_file(big.path()).unwrap_err().to_string();
        assert!(e.contains("at most 1048576"), "{e}");
    }

    #[test]
    fn a_book_keeps_at_most_max_budgets() {
        let book = BudgetBook::default();
        let rollups = Rollups::default();
        let today = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let budget = |i: usize| {
            Budget::new(
                format!("b{i}"),
                BudgetScope::Global,
                BudgetPeriod::Daily,
                money("5"),
                Currency::CNY,
            )
        };
        for i in 0..MAX_BUDGETS {
            book.add(budget(i), &rollups, today).unwrap();
        }
        let e = book.add(budget(MAX_BUDGETS), &rollups, today).unwrap_err();
        assert!(e.to_string().contains("at most 1000 budgets"), "{e}");
        // Replacing one by name is still allowed.
        book.add(budget(7), &rollups, today).unwrap();
    }
}
