//! Re-pricing stored calls: compares each call's effective cost (its
//! recorded cost, or its last adjustment) with the price in force now at
//! the call's own time, and plans an adjustment where they differ. Usage
//! files are only read; the plan is written by
//! [`adjustments::append_adjustments`].

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::Serialize;

use super::adjustments::{self, Adjustment};
use super::dayfile::{self, ReadStats};
use super::replay::stored_currency;
use crate::error::Result;
use crate::money::{Costs, Money};
use crate::pricing::PricingTable;

/// Which calls to re-price.
#[derive(Debug, Clone)]
pub struct RepriceScope {
    /// First day file (inclusive).
    pub from: NaiveDate,
    /// Last day file (inclusive).
    pub to: NaiveDate,
    /// Only calls that have no price yet.
    pub only_unpriced: bool,
    /// Only calls of this model (as recorded, case-insensitive).
    pub model: Option<String>,
}

/// The change re-pricing makes to one day's calls of one model.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RepriceChange {
    /// Calls whose cost changes.
    pub calls: u64,
    /// Of them, calls that had no price.
    pub newly_priced: u64,
    /// The change per currency (new minus old).
    pub delta: Costs,
}

impl RepriceChange {
    fn add(&mut self, a: &Adjustment) {
        self.calls += 1;
        self.newly_priced += (!a.old_priced) as u64;
        self.delta.add(a.old_currency, Money::ZERO - a.old_cost);
        self.delta.add(a.currency, a.new_cost);
    }
}

/// What a re-pricing would write.
#[derive(Debug, Clone, Default)]
pub struct RepricePlan {
    /// Adjustments per day file date (where they are appended).
    pub adjustments: BTreeMap<NaiveDate, Vec<Adjustment>>,
    /// Calls looked at (in the scope's days and model).
    pub calls_seen: u64,
    /// Calls in scope that the prices in force now still do not price.
    pub still_unpriced: u64,
    /// What reading the day files found.
    pub stats: ReadStats,
}

impl RepricePlan {
    /// Adjustments in the plan.
    pub fn len(&self) -> usize {
        self.adjustments.values().map(Vec::len).sum()
    }

    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The change per (day, model).
    pub fn by_day_and_model(&self) -> BTreeMap<(NaiveDate, String), RepriceChange> {
        let mut out: BTreeMap<(NaiveDate, String), RepriceChange> = BTreeMap::new();
        for (day, list) in &self.adjustments {
            for a in list {
                out.entry((*day, a.model.clone())).or_default().add(a);
            }
        }
        out
    }

    /// The change of the whole plan.
    pub fn total(&self) -> RepriceChange {
        let mut t = RepriceChange::default();
        self.adjustments.values().flatten().for_each(|a| t.add(a));
        t
    }

    /// Appends the plan to the adjustment files of `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        for (day, list) in &self.adjustments {
            adjustments::append_adjustments(dir, *day, list)?;
        }
        Ok(())
    }
}

/// Plans the adjustments that bring the calls in `scope` to the prices of
/// `pricing`, each priced at its own time. A call whose effective cost
/// already matches, or that `pricing` cannot price, gets none: running the
/// plan twice writes nothing the second time.
pub fn plan_reprice(
    dir: &Path,
    pricing: &PricingTable,
    scope: &RepriceScope,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<RepricePlan> {
    let mut plan = RepricePlan::default();
    let effective = adjustments::read_adjustments(dir, scope.from)?.effective();
    let mut known = rustc_hash::FxHashMap::default();
    let mut knowable: rustc_hash::FxHashMap<(Option<String>, String), bool> =
        rustc_hash::FxHashMap::default();
    for (day, path) in dayfile::list_day_files(dir)? {
        if day < scope.from || day > scope.to {
            continue;
        }
        let file = dayfile::day_file_name(day);
        let mut planned = Vec::new();
        let stats = dayfile::read_day_file_at(&path, |offset, r| {
            if scope
                .model
                .as_deref()
                .is_some_and(|m| !m.eq_ignore_ascii_case(&r.model))
            {
                return;
            }
            plan.calls_seen += 1;
            let (cost, currency, priced) = match effective.get(&(file.clone(), offset)) {
                Some(e) => *e,
                None => {
                    let (c, p) = stored_currency(&r, pricing, &mut known);
                    (r.cost, c, p)
                }
            };
            if scope.only_unpriced && priced {
                return;
            }
            let at = chrono::DateTime::from_timestamp_millis((r.timestamp * 1000.0) as i64)
                .unwrap_or(now);
            let key = (r.provider.clone(), r.model.clone());
            let knows = *knowable
                .entry(key)
                .or_insert_with(|| pricing.knows(r.provider.as_deref(), &r.model));
            let q = if knows {
                pricing.price_at(r.provider.as_deref(), &r.model, &r.usage(), at)
            } else {
                crate::pricing::Quote::UNPRICED
            };
            if !q.priced {
                plan.still_unpriced += (!priced) as u64;
                return;
            }
            if priced && q.cost == cost && q.currency == currency {
                return;
            }
            let source = pricing.price_source(r.provider.as_deref(), &r.model);
            planned.push(Adjustment::of(
                &file,
                offset,
                &r,
                (cost, currency, priced),
                (q.cost, q.currency),
                source,
                now,
            ));
        })?;
        plan.stats.merge(&stats);
        if !planned.is_empty() {
            plan.adjustments.insert(day, planned);
        }
    }
    Ok(plan)
}
