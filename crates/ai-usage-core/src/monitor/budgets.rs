//! Budgets of a monitor: the monitor takes the rollups lock and asks its
//! [`BudgetBook`](crate::budget::BudgetBook).

use std::sync::Arc;

use crate::budget::{budgets_path, load_budgets_file, Budget, BudgetAlert, BudgetStatus};
use crate::error::Result;
use crate::zone::now_timestamp;

use super::UsageMonitor;

impl UsageMonitor {
    /// Adds a budget, or replaces the one with the same name. Thresholds its
    /// current period has already reached count as fired (see [`Budget`]).
    ///
    /// Errors (`InvalidArgument`) name the field that is wrong.
    pub fn add_budget(&self, budget: Budget) -> Result<()> {
        let today = self.today();
        // Lock order everywhere: rollups, then the book.
        let rollups = self.rollups();
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

    /// Where every budget stands in its current period.
    pub fn budget_status(&self) -> Vec<BudgetStatus> {
        let today = self.today();
        let zone = self.zone();
        let now = now_timestamp();
        let rollups = self.rollups();
        self.shared.budgets.status(&rollups, &zone, today, now)
    }
}
