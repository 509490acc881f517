//! Hard limits: budgets with `block_at` refuse calls once their period's
//! spend reaches `block_at` percent of the limit.
//!
//! [`GuardIndex`] holds only the budgets with a hard limit, by scope id, so
//! a check looks at the budgets that match the call and no other: one list
//! for global budgets, one hash lookup per id the call gives. Spend is read
//! from the rollups (or from the fleet's spend, when a refresher keeps it:
//! see [`FleetSpend`]).

use std::collections::HashMap;
use std::time::Instant;

use chrono::NaiveDate;
use serde::Serialize;

use crate::money::{Currency, Money};
use crate::rollups::Rollups;

use super::{spent_in, Budget, BudgetScope};

/// The call an application is about to make, as budgets see it. Fields not
/// given match no budget of that kind (a call without `user_id` is held by
/// global budgets but not by user budgets).
///
/// ```
/// use ai_usage_core::CallScope;
/// let call = CallScope::new().user("42").anchor("anchor_001").model("qwen-max");
/// assert_eq!(call.user_id, Some("42"));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallScope<'a> {
    /// The paying user.
    pub user_id: Option<&'a str>,
    /// The anchor (主播).
    pub anchor_id: Option<&'a str>,
    /// The function (功能).
    pub function: Option<&'a str>,
    /// The model, by the name the call records.
    pub model: Option<&'a str>,
    /// The call's tags.
    pub tags: &'a [&'a str],
}

impl<'a> CallScope<'a> {
    /// A call with no scope ids: only global budgets apply.
    pub fn new() -> CallScope<'a> {
        CallScope::default()
    }
    /// Sets the user.
    pub fn user(mut self, id: &'a str) -> Self {
        self.user_id = Some(id);
        self
    }
    /// Sets the anchor.
    pub fn anchor(mut self, id: &'a str) -> Self {
        self.anchor_id = Some(id);
        self
    }
    /// Sets the function.
    pub fn function(mut self, name: &'a str) -> Self {
        self.function = Some(name);
        self
    }
    /// Sets the model.
    pub fn model(mut self, name: &'a str) -> Self {
        self.model = Some(name);
        self
    }
    /// Sets the tags.
    pub fn tags(mut self, tags: &'a [&'a str]) -> Self {
        self.tags = tags;
        self
    }
}

/// A call refused: the budget named is at or over its hard limit.
#[derive(Debug, Clone, PartialEq, Serialize, thiserror::Error)]
#[error(
    "budget `{budget}` ({scope}) refuses the call: spent {spent} of {limit} {currency} in {period_label}, hard limit at {block_at}%"
)]
pub struct BudgetExceeded {
    /// The budget's name.
    pub budget: String,
    /// What it counts.
    pub scope: BudgetScope,
    /// The period, `YYYY-MM-DD` or `YYYY-MM`.
    pub period_label: String,
    /// Spent in the period.
    pub spent: Money,
    /// The budget's limit.
    pub limit: Money,
    /// The hard limit, in percent of `limit`.
    pub block_at: u32,
    /// Currency of the amounts.
    pub currency: Currency,
}

/// One budget with a hard limit.
#[derive(Debug, Clone)]
struct Guard {
    budget: Budget,
    block_at: u32,
}

impl Guard {
    fn blocks(&self, spent: Money) -> bool {
        spent.nanos() as i128 * 100 >= self.budget.limit.nanos() as i128 * self.block_at as i128
    }
}

/// The budgets with a hard limit, by what they count.
#[derive(Debug, Default)]
pub(super) struct GuardIndex {
    global: Vec<Guard>,
    user: HashMap<String, Vec<Guard>>,
    anchor: HashMap<String, Vec<Guard>>,
    function: HashMap<String, Vec<Guard>>,
    model: HashMap<String, Vec<Guard>>,
    tag: HashMap<String, Vec<Guard>>,
}

impl GuardIndex {
    /// The index of `budgets` (those without `block_at` are left out).
    pub(super) fn of<'b>(budgets: impl Iterator<Item = &'b Budget>) -> GuardIndex {
        let mut idx = GuardIndex::default();
        for b in budgets {
            let Some(block_at) = b.block_at else {
                continue;
            };
            let g = Guard {
                budget: b.clone(),
                block_at,
            };
            match &b.scope {
                BudgetScope::Global => idx.global.push(g),
                BudgetScope::User(id) => idx.user.entry(id.clone()).or_default().push(g),
                BudgetScope::Anchor(id) => idx.anchor.entry(id.clone()).or_default().push(g),
                BudgetScope::Function(id) => idx.function.entry(id.clone()).or_default().push(g),
                BudgetScope::Model(id) => idx.model.entry(id.clone()).or_default().push(g),
                BudgetScope::Tag(id) => idx.tag.entry(id.clone()).or_default().push(g),
            }
        }
        idx
    }

    /// True when no budget has a hard limit.
    pub(super) fn is_empty(&self) -> bool {
        self.global.is_empty()
            && self.user.is_empty()
            && self.anchor.is_empty()
            && self.function.is_empty()
            && self.model.is_empty()
            && self.tag.is_empty()
    }

    /// The first budget matching `call` that is at its hard limit.
    pub(super) fn check(
        &self,
        call: &CallScope<'_>,
        rollups: &Rollups,
        fleet: Option<&FleetSpend>,
        today: NaiveDate,
    ) -> Result<(), BudgetExceeded> {
        let lists = [
            Some(&self.global),
            call.user_id.and_then(|id| self.user.get(id)),
            call.anchor_id.and_then(|id| self.anchor.get(id)),
            call.function.and_then(|id| self.function.get(id)),
            call.model.and_then(|id| self.model.get(id)),
        ];
        let tagged = call.tags.iter().filter_map(|t| self.tag.get(*t));
        for g in lists.into_iter().flatten().chain(tagged).flatten() {
            let b = &g.budget;
            let (first, last) = b.period.bounds(today);
            let spent = fleet
                .and_then(|f| f.spent(&b.name, first))
                .unwrap_or_else(|| spent_in(rollups, &b.scope, b.currency, first, last));
            if g.blocks(spent) {
                return Err(BudgetExceeded {
                    budget: b.name.clone(),
                    scope: b.scope.clone(),
                    period_label: b.period.label(today),
                    spent,
                    limit: b.limit,
                    block_at: g.block_at,
                    currency: b.currency,
                });
            }
        }
        Ok(())
    }
}

/// The fleet's spend per budget, as a refresher last read it (fleet mode):
/// checks use it instead of this host's rollups until `valid_until`.
#[derive(Debug, Clone)]
pub struct FleetSpend {
    /// Budget name → (first day of the period, spent in it).
    by_budget: HashMap<String, (NaiveDate, Money)>,
    /// After this, checks fall back to this host's own spend.
    valid_until: Instant,
}

impl FleetSpend {
    /// `spent` per budget name and period start, valid until `valid_until`.
    pub fn new(
        spent: impl IntoIterator<Item = (String, NaiveDate, Money)>,
        valid_until: Instant,
    ) -> FleetSpend {
        FleetSpend {
            by_budget: spent
                .into_iter()
                .map(|(name, first, spent)| (name, (first, spent)))
                .collect(),
            valid_until,
        }
    }

    fn spent(&self, budget: &str, first: NaiveDate) -> Option<Money> {
        if Instant::now() > self.valid_until {
            return None;
        }
        match self.by_budget.get(budget) {
            Some((f, spent)) if *f == first => Some(*spent),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::BudgetPeriod;
    use crate::{UsageEvent, UsageMonitor};

    fn money(s: &str) -> Money {
        s.parse().unwrap()
    }

    fn monitor() -> (tempfile::TempDir, UsageMonitor) {
        let dir = tempfile::tempdir().unwrap();
        let m = UsageMonitor::builder()
            .dir(dir.path())
            .replay(false)
            .build()
            .unwrap();
        (dir, m)
    }

    #[test]
    fn a_hard_limit_refuses_at_block_at_and_only_its_scope() {
        let (_dir, m) = monitor();
        let user = |id: &str| BudgetScope::User(id.into());
        m.add_budget(
            Budget::new(
                "u42",
                user("42"),
                BudgetPeriod::Daily,
                money("10"),
                Currency::CNY,
            )
            .with_block_at(90),
        )
        .unwrap();
        // Alerts only: never refuses.
        m.add_budget(Budget::new(
            "all",
            BudgetScope::Global,
            BudgetPeriod::Daily,
            money("1"),
            Currency::CNY,
        ))
        .unwrap();
        let call = CallScope::new().user("42").model("qwen-plus");
        m.record(
            &UsageEvent::new("qwen-plus", "f")
                .user("42")
                .cost(money("8.99")),
        );
        assert_eq!(m.check_budget(&call), Ok(()));
        m.record(
            &UsageEvent::new("qwen-plus", "f")
                .user("42")
                .cost(money("0.01")),
        );
        let e = m.check_budget(&call).unwrap_err();
        assert_eq!(e.budget, "u42");
        assert_eq!(e.spent, money("9"));
        assert_eq!(e.limit, money("10"));
        assert_eq!(e.block_at, 90);
        assert!(e.to_string().contains("u42"), "{e}");
        // Another user, a call without a user, a USD cost: not held.
        assert_eq!(m.check_budget(&CallScope::new().user("7")), Ok(()));
        assert_eq!(m.check_budget(&CallScope::new()), Ok(()));
        let status = m.budget_status();
        let s = status.iter().find(|s| s.name == "u42").unwrap();
        assert!(s.refusing);
        assert_eq!(s.block_at, Some(90));
        assert!(!status.iter().find(|s| s.name == "all").unwrap().refusing);
        // Removing the budget lifts the limit.
        assert!(m.remove_budget("u42"));
        assert_eq!(m.check_budget(&call), Ok(()));
    }

    #[test]
    fn every_scope_kind_is_checked_and_only_its_own_currency_counts() {
        let (_dir, m) = monitor();
        let cases = [
            ("g", BudgetScope::Global),
            ("a", BudgetScope::Anchor("anchor_001".into())),
            ("f", BudgetScope::Function("实时分析".into())),
            ("m", BudgetScope::Model("qwen-max".into())),
        ];
        for (name, scope) in &cases {
            m.add_budget(
                Budget::new(
                    *name,
                    scope.clone(),
                    BudgetPeriod::Monthly,
                    money("5"),
                    Currency::CNY,
                )
                .with_block_at(100),
            )
            .unwrap();
        }
        let call = CallScope::new()
            .anchor("anchor_001")
            .function("实时分析")
            .model("qwen-max");
        m.record(
            &UsageEvent::new("qwen-max", "实时分析")
                .anchor("anchor_001")
                .cost_in(money("9"), Currency::USD),
        );
        assert_eq!(m.check_budget(&call), Ok(()), "USD never counts in CNY");
        m.record(&UsageEvent::new("qwen-max", "其他").cost(money("5")));
        // The global budget is reached first.
        assert_eq!(m.check_budget(&call).unwrap_err().budget, "g");
        m.remove_budget("g");
        // The model budget counts the model's calls whatever their function.
        assert_eq!(m.check_budget(&call).unwrap_err().budget, "m");
        m.remove_budget("m");
        assert_eq!(m.check_budget(&call), Ok(()));
    }

    #[test]
    fn fleet_spend_is_used_while_valid() {
        let (_dir, m) = monitor();
        m.add_budget(
            Budget::new(
                "g",
                BudgetScope::Global,
                BudgetPeriod::Daily,
                money("5"),
                Currency::CNY,
            )
            .with_block_at(100),
        )
        .unwrap();
        let today = m.today();
        let fleet = |valid: std::time::Duration| {
            FleetSpend::new(
                [("g".to_string(), today, money("6"))],
                Instant::now() + valid,
            )
        };
        m.set_fleet_budget_spend(Some(fleet(std::time::Duration::from_secs(60))));
        assert_eq!(
            m.check_budget(&CallScope::new()).unwrap_err().spent,
            money("6")
        );
        // Expired: this host's own spend (none) again.
        m.set_fleet_budget_spend(Some(fleet(std::time::Duration::ZERO)));
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(m.check_budget(&CallScope::new()), Ok(()));
    }

    #[test]
    fn block_at_is_read_from_a_budgets_file_and_checked() {
        let b = crate::budget::parse_budgets(
            r#"[{"name": "x", "period": "daily", "limit": 5, "block_at": 100}]"#,
            "b.json",
        )
        .unwrap();
        assert_eq!(b[0].block_at, Some(100));
        let e = crate::budget::parse_budgets(
            r#"[{"name": "x", "period": "daily", "limit": 5, "block_at": 0}]"#,
            "b.json",
        )
        .unwrap_err();
        assert!(e.to_string().contains("field `block_at`"), "{e}");
    }
}

#[cfg(test)]
mod tag_tests {
    use super::*;
    use crate::budget::BudgetPeriod;
    use crate::{UsageEvent, UsageMonitor};

    fn money(s: &str) -> Money {
        s.parse().unwrap()
    }

    #[test]
    fn a_multi_tag_record_counts_once_per_tag_and_once_in_totals() {
        let dir = tempfile::tempdir().unwrap();
        let m = UsageMonitor::builder()
            .dir(dir.path())
            .replay(false)
            .build()
            .unwrap();
        let tag = |name: &str, t: &str| {
            Budget::new(
                name,
                BudgetScope::Tag(t.into()),
                BudgetPeriod::Daily,
                money("10"),
                Currency::CNY,
            )
            .with_block_at(100)
        };
        m.add_budget(tag("ops", "team:live-ops")).unwrap();
        m.add_budget(tag("beta", "beta")).unwrap();
        m.add_budget(Budget::new(
            "all",
            BudgetScope::Global,
            BudgetPeriod::Daily,
            money("100"),
            Currency::CNY,
        ))
        .unwrap();
        // One record with both tags (one of them given twice), one with one.
        let both = ["team:live-ops", "beta", "team:live-ops"];
        m.record(
            &UsageEvent::new("qwen-plus", "f")
                .tags(&both)
                .cost(money("6")),
        );
        m.record(
            &UsageEvent::new("qwen-plus", "f")
                .tags(&["beta"])
                .cost(money("1")),
        );
        let status = m.budget_status();
        let spent = |name: &str| status.iter().find(|s| s.name == name).unwrap().spent;
        assert_eq!(spent("ops"), money("6"));
        assert_eq!(spent("beta"), money("7"));
        assert_eq!(spent("all"), money("7"), "once in the total");
        let call_tags = ["team:live-ops"];
        let call = CallScope::new().tags(&call_tags);
        assert!(m.check_budget(&call).is_ok());
        m.record(
            &UsageEvent::new("qwen-plus", "f")
                .tags(&["team:live-ops"])
                .cost(money("4")),
        );
        assert_eq!(m.check_budget(&call).unwrap_err().budget, "ops");
        assert!(m.check_budget(&CallScope::new().tags(&["beta"])).is_ok());
        // Tag budgets are read from a budgets file too.
        let b = crate::budget::parse_budgets(
            r#"[{"name": "t", "tag": "team:live-ops", "period": "monthly", "limit": 5}]"#,
            "b.json",
        )
        .unwrap();
        assert_eq!(b[0].scope, BudgetScope::Tag("team:live-ops".into()));
        assert_eq!(b[0].scope.to_string(), "tag:team:live-ops");
    }
}
