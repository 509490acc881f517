//! Budgets of a monitor: the monitor takes the rollups lock and asks its
//! [`BudgetBook`](crate::budget::BudgetBook).

use std::sync::{Arc, Weak};

use crate::budget::{budgets_path, load_budgets_file, Budget, BudgetAlert, BudgetStatus};
use crate::error::Result;
use crate::zone::now_timestamp;

use super::{Shared, UsageMonitor};

impl UsageMonitor {
    /// Adds a budget, or replaces the one with the same name. Thresholds its
    /// current period has already reached count as fired (see [`Budget`]).
    ///
    /// Errors (`InvalidArgument`) name the field that is wrong. Does not
    /// wait for the history to load: once it has, every budget's period is
    /// initialised again from all of it (thresholds the history reached
    /// count as fired then).
    pub fn add_budget(&self, budget: Budget) -> Result<()> {
        let today = self.today();
        // Lock order everywhere: rollups, then the book.
        let rollups = self.shared.rollups.lock();
        self.shared.budgets.add(budget, &rollups, today)
    }

    /// Adds several budgets (stops at the first invalid one).
    pub fn add_budgets(&self, budgets: impl IntoIterator<Item = Budget>) -> Result<()> {
        budgets.into_iter().try_for_each(|b| self.add_budget(b))
    }

    /// Removes the budget named `name`; false if there was none.
    pub fn remove_budget(&self, name: &str) -> bool {
        self.shared.budgets.remove(name)
    }

    /// The budgets in force, in the order they were added.
    pub fn budgets(&self) -> Vec<Budget> {
        self.shared.budgets.list()
    }

    /// Loads `DIR/budgets.json` (or the file named by `AI_USAGE_BUDGETS`) when
    /// it exists; returns the number of budgets added (0 without a file).
    pub fn load_default_budgets(&self) -> Result<usize> {
        let path = budgets_path(self.dir());
        if !path.exists() {
            return Ok(0);
        }
        let budgets = load_budgets_file(&path)?;
        let n = budgets.len();
        self.add_budgets(budgets)?;
        tracing::info!(file = %path.display(), budgets = n, "loaded budgets");
        Ok(n)
    }

    /// Runs `callback` once for every threshold crossing, after the record
    /// that crossed is counted, on the recording thread and outside the
    /// rollups lock (it may query the monitor; keep it short). Every alert is
    /// also logged with `tracing::warn!`.
    pub fn on_budget_alert(&self, callback: impl Fn(&BudgetAlert) + Send + Sync + 'static) {
        self.shared.budgets.subscribe(Arc::new(callback));
    }

    /// Delivers alerts decided outside this monitor (e.g. on the whole
    /// fleet's spend by a ClickHouse alert poller) through its own delivery:
    /// the `tracing::warn!` and every [`UsageMonitor::on_budget_alert`]
    /// callback, on the calling thread.
    pub fn deliver_budget_alerts(&self, alerts: &[BudgetAlert]) {
        self.shared.budgets.deliver(alerts);
    }

    /// Turns the per-record budget alerts on (the default) or off, for a
    /// monitor whose budgets an outside poller evaluates on the fleet's
    /// spend. Off, records fire nothing (their cost is one relaxed load, as
    /// without budgets) and [`UsageMonitor::budget_status`] counts thresholds
    /// reached as fired.
    pub fn set_local_budget_alerts(&self, on: bool) {
        self.shared.budgets.set_local_alerts(on);
    }

    /// False when per-record budget alerts are off.
    pub fn local_budget_alerts(&self) -> bool {
        self.shared.budgets.local_alerts()
    }

    /// A handle on this monitor's budgets for a poller running beside it
    /// (it does not keep the monitor alive).
    pub fn budget_handle(&self) -> BudgetHandle {
        BudgetHandle {
            shared: Arc::downgrade(&self.shared),
        }
    }

    /// Refuses a call before it is made when a budget matching it (global,
    /// or the call's user, anchor, function or model) has reached its hard
    /// limit (`block_at`) in its current period. Reads the rollups for the
    /// matching hard-limited budgets only; without any, it is one load.
    ///
    /// ```
    /// use ai_usage_core::{Budget, BudgetPeriod, BudgetScope, CallScope, Currency, UsageEvent, UsageMonitor};
    /// let dir = tempfile::tempdir()?;
    /// let m = UsageMonitor::builder().dir(dir.path()).build()?;
    /// m.add_budget(Budget::new("u42", BudgetScope::User("42".into()), BudgetPeriod::Daily, "1".parse()?, Currency::CNY).with_block_at(100))?;
    /// assert!(m.check_budget(&CallScope::new().user("42")).is_ok());
    /// m.record(&UsageEvent::new("qwen-plus", "chat").user("42").cost("1".parse()?));
    /// let refused = m.check_budget(&CallScope::new().user("42")).unwrap_err();
    /// assert_eq!(refused.budget, "u42");
    /// assert!(m.check_budget(&CallScope::new().user("7")).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_budget(
        &self,
        call: &crate::budget::CallScope<'_>,
    ) -> std::result::Result<(), crate::budget::BudgetExceeded> {
        if !self.shared.budgets.has_hard_limits() {
            return Ok(());
        }
        let today = self.today();
        let rollups = self.rollups();
        self.shared.budgets.check(call, &rollups, today)
    }

    /// Makes [`UsageMonitor::check_budget`] use the fleet's spend (fleet
    /// mode: a refresher reads it every few seconds) until it expires.
    pub fn set_fleet_budget_spend(&self, spend: Option<crate::budget::FleetSpend>) {
        self.shared.budgets.set_fleet_spend(spend);
    }

    /// Where every budget stands in its current period.
    pub fn budget_status(&self) -> Vec<BudgetStatus> {
        let today = self.today();
        let zone = self.zone();
        let now = now_timestamp();
        let rollups = self.rollups();
        self.shared.budgets.status(&rollups, &zone, today, now)
    }
}

/// A monitor's budgets as a poller beside it sees them (e.g. the fleet
/// alert poller of ai-usage-clickhouse): the budgets in force, the switch
/// of the per-record alerts, and delivery through the monitor's warning and
/// callbacks. Cheap to clone; does nothing once the monitor is dropped.
#[derive(Clone)]
pub struct BudgetHandle {
    shared: Weak<Shared>,
}

impl std::fmt::Debug for BudgetHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetHandle")
            .field("live", &(self.shared.strong_count() > 0))
            .finish()
    }
}

impl BudgetHandle {
    /// The budgets in force (none once the monitor is gone).
    pub fn budgets(&self) -> Vec<Budget> {
        self.shared
            .upgrade()
            .map(|s| s.budgets.list())
            .unwrap_or_default()
    }

    /// [`UsageMonitor::deliver_budget_alerts`].
    pub fn deliver(&self, alerts: &[BudgetAlert]) {
        if let Some(s) = self.shared.upgrade() {
            s.budgets.deliver(alerts);
        }
    }

    /// [`UsageMonitor::set_local_budget_alerts`].
    pub fn set_local_alerts(&self, on: bool) {
        if let Some(s) = self.shared.upgrade() {
            s.budgets.set_local_alerts(on);
        }
    }

    /// Adds an alert callback, as [`UsageMonitor::on_budget_alert`] (e.g. a
    /// notifier's outbox); nothing once the monitor is gone.
    pub fn subscribe(&self, callback: crate::budget::AlertCallback) {
        if let Some(s) = self.shared.upgrade() {
            s.budgets.subscribe(callback);
        }
    }

    /// [`UsageMonitor::budget_status`] (empty once the monitor is gone).
    /// Takes the rollups lock: never call it from inside a record.
    pub fn status(&self) -> Vec<BudgetStatus> {
        let Some(s) = self.shared.upgrade() else {
            return Vec::new();
        };
        let zone = s.config.zone;
        let now = now_timestamp();
        let today = zone.date_of(now);
        s.load.wait_for_query(s.load_wait);
        let mut rollups = s.rollups.lock();
        s.count_waiting(&mut rollups);
        s.budgets.status(&rollups, &zone, today, now)
    }

    /// [`UsageMonitor::set_fleet_budget_spend`].
    pub fn set_fleet_spend(&self, spend: Option<crate::budget::FleetSpend>) {
        if let Some(s) = self.shared.upgrade() {
            s.budgets.set_fleet_spend(spend);
        }
    }

    /// The monitor's zone (whose local days make the budgets' periods).
    pub fn zone(&self) -> Option<crate::zone::Zone> {
        self.shared.upgrade().map(|s| s.config.zone)
    }
}
