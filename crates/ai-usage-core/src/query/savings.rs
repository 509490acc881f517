//! Savings advice from real usage (the guide's 成本优化建议): what each
//! function would have cost on every other priced model of the same
//! currency, and what halving its call frequency would save.
//!
//! # Method
//!
//! For each function and currency, the calls of the last N days (rollups
//! `by_function_model`, priced calls only) are re-priced per model they used
//! with [`PricingTable::price`]. The rollups keep token sums, not single calls,
//! so a group of `n` calls is priced as `n` calls of its average size
//! (`tokens / n`, every component: input, output, cache read, cache write,
//! reasoning; cache writes at the model's cache-write rate). That is
//! exact for flat prices up to per-call rounding; for tiered prices and free
//! per-call allowances it is an approximation (calls far from the average may
//! fall in another band), flagged with `approximate: true`.
//!
//! The alternatives are the table's models of the function's currency and,
//! for a model the genai-prices catalogue in force prices (the built-in
//! snapshot, or one installed with `ai-usage pricing update`; USD models
//! mostly), the catalogue's other models of the same provider, in the same
//! currency, at their prices in force now (deprecated ones left out): like
//! is compared with like, never across currencies or providers. A model
//! priced by a LiteLLM list has no provider family here, so it gets the
//! table's alternatives only.
//!
//! The baseline is the cost actually recorded. Free models (zero list price,
//! e.g. glm-4-flash) are not offered as alternatives. Quality is not
//! considered: read the list as a price comparison.
//!
//! Advice never rests on a price nobody could check: a model whose price is
//! marked `unverified` (not found on the provider's own price page) is left
//! out of the alternatives and named in `unverified_left_out`; when the
//! function itself used such a model, its recorded cost was computed at that
//! price and `unverified_baseline` names the models, so the reader knows the
//! comparison is against an unverified price.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::money::{Currency, Money};
use crate::pricing::{ModelPrice, PricingTable, Tiers};
use crate::record::usage::TokenUsage;
use crate::rollups::{GroupStats, Rollups};

/// Savings advice over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SavingsReport {
    /// Days covered.
    pub period_days: u32,
    /// First local date `YYYY-MM-DD`.
    pub from: String,
    /// Last local date `YYYY-MM-DD`.
    pub to: String,
    /// One entry per function and currency, largest possible saving first.
    pub functions: Vec<FunctionSavings>,
    /// How the numbers are computed.
    pub method: String,
}

/// What one function costs and could cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionSavings {
    /// The function (功能).
    pub function: String,
    /// Currency of every amount of this entry.
    pub currency: Currency,
    /// Priced calls in this currency.
    pub calls: u64,
    /// Input tokens of those calls.
    pub input_tokens: u64,
    /// Output tokens of those calls.
    pub output_tokens: u64,
    /// Cost actually recorded.
    pub current_cost: Money,
    /// Models used, by cost.
    pub current_models: Vec<ModelUse>,
    /// Every other priced model of the currency that would have been cheaper,
    /// largest saving first.
    pub alternatives: Vec<Alternative>,
    /// The best alternative's saving (zero when none is cheaper).
    pub best_saving: Money,
    /// The effect of calling half as often (e.g. analysing every 2 minutes
    /// instead of every minute): half the calls, half the cost.
    pub halve_frequency: FrequencyChange,
    /// Calls of this function with unpriced models (left out above).
    pub unpriced_calls: u64,
    /// Cheaper models left out of `alternatives` because their price is
    /// unverified (canonical ids, sorted).
    pub unverified_left_out: Vec<String>,
    /// Models this function used whose price is unverified: the recorded
    /// cost (the baseline of every saving) rests on it. Sorted.
    pub unverified_baseline: Vec<String>,
}

/// One model a function used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelUse {
    /// Model as recorded.
    pub model: String,
    /// Display name.
    pub display_name: String,
    /// Calls.
    pub calls: u64,
    /// Recorded cost.
    pub cost: Money,
}

/// The function's calls re-priced on another model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alternative {
    /// Canonical model id.
    pub model: String,
    /// Display name.
    pub display_name: String,
    /// What the same calls would have cost.
    pub cost: Money,
    /// `current_cost - cost`.
    pub saving: Money,
    /// `saving / current_cost` in percent (two decimals).
    pub saving_pct: f64,
    /// True when tiers or free allowances make the average-call estimate approximate.
    pub approximate: bool,
}

/// The effect of calling a function less often.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FrequencyChange {
    /// Calls after the change.
    pub calls: u64,
    /// Cost after the change.
    pub cost: Money,
    /// The saving.
    pub saving: Money,
    /// The saving in percent.
    pub saving_pct: f64,
}

/// `part / whole` in percent with two decimals (0 when `whole` is not positive).
fn pct(part: Money, whole: Money) -> f64 {
    if whole.nanos() <= 0 {
        return 0.0;
    }
    (part.nanos() as f64 * 10_000.0 / whole.nanos() as f64).round() / 100.0
}

/// Free models (zero list price, usually rate-limited free tiers) are no
/// advice: they would top every list at 100 %.
fn is_free(p: &ModelPrice) -> bool {
    p.input.is_zero()
        && p.output.is_zero()
        && p.tiers
            .bands()
            .iter()
            .all(|b| b.input.is_zero() && b.output.is_zero())
}

/// True when pricing one average call may differ from pricing the real ones.
fn size_dependent(p: &ModelPrice) -> bool {
    !matches!(p.tiers, Tiers::Flat)
        || p.free_input_tokens_per_call > 0
        || p.free_output_tokens_per_call > 0
}

/// The cost of `g.calls` calls of `g`'s average size on `price`.
fn reprice(price: &ModelPrice, g: &GroupStats) -> Money {
    let n = g.calls.max(1);
    let avg = |v: u64| v / n;
    let (i, o, c, w, r) = (
        g.input_tokens,
        g.output_tokens,
        g.cached_input_tokens,
        g.cache_write_tokens,
        g.reasoning_tokens,
    );
    let base = TokenUsage {
        input_tokens: avg(i),
        output_tokens: avg(o),
        total_tokens: None,
        cached_input_tokens: avg(c),
        cache_write_tokens: avg(w),
        reasoning_tokens: avg(r),
        // Rollups keep no audio counts: audio is priced as text input/output.
        ..TokenUsage::default()
    };
    // Integer division leaves `v % n` tokens over; price them on top so token
    // totals are exactly those recorded (one call of the remainder, but with
    // the base call's size deciding the band).
    let rest = TokenUsage {
        input_tokens: base.input_tokens + i % n,
        output_tokens: base.output_tokens + o % n,
        total_tokens: None,
        cached_input_tokens: base.cached_input_tokens + c % n,
        cache_write_tokens: base.cache_write_tokens + w % n,
        reasoning_tokens: base.reasoning_tokens + r % n,
        ..TokenUsage::default()
    };
    let one = price.cost(&base);
    let last = price.cost(&rest);
    one.mul_div(n as i64 - 1, 1).unwrap_or(Money::ZERO) + last
}

/// Savings advice over the local days `from..=to` of `rollups`.
pub fn savings_for(
    rollups: &Rollups,
    pricing: &PricingTable,
    from: NaiveDate,
    to: NaiveDate,
) -> SavingsReport {
    // function → currency → model → counters (priced calls only).
    let mut groups: BTreeMap<&str, BTreeMap<Currency, FxHashMap<&str, GroupStats>>> =
        BTreeMap::new();
    let mut unpriced: FxHashMap<&str, u64> = FxHashMap::default();
    for (_, day) in rollups.days.range(from..=to) {
        for (function, models) in &day.by_function_model {
            for (model, g) in models.iter() {
                *unpriced.entry(function.as_str()).or_default() += g.unpriced_calls;
                let priced = g.calls - g.unpriced_calls;
                if priced == 0 {
                    continue;
                }
                // A group has one currency unless explicit costs mixed them;
                // split its calls by the share of each currency's cost then.
                for (currency, _) in g.cost.iter() {
                    let slot = groups
                        .entry(function.as_str())
                        .or_default()
                        .entry(currency)
                        .or_default()
                        .entry(model)
                        .or_default();
                    let mut part = g.clone();
                    part.calls = priced;
                    part.unpriced_calls = 0;
                    part.cost = Default::default();
                    part.cost.add(currency, g.cost.get(currency));
                    slot.merge(&part);
                }
            }
        }
    }
    let now = chrono::Utc::now();
    let mut functions = Vec::new();
    for (function, by_currency) in groups {
        for (currency, models) in by_currency {
            functions.push(function_savings(
                function,
                currency,
                &models,
                pricing,
                now,
                unpriced.get(function).copied().unwrap_or(0),
            ));
        }
    }
    functions.sort_by(|a, b| {
        b.best_saving
            .cmp(&a.best_saving)
            .then(b.current_cost.cmp(&a.current_cost))
            .then_with(|| a.function.cmp(&b.function))
    });
    SavingsReport {
        period_days: (to - from).num_days().max(0) as u32 + 1,
        from: from.format("%Y-%m-%d").to_string(),
        to: to.format("%Y-%m-%d").to_string(),
        functions,
        method: "recorded cost vs. the same calls re-priced on each other model of the same currency \
                 (the table's, and the catalogue's models of the same provider as a model it prices); \
                 each (function, model) group is priced as its call count times its average call size \
                 (exact for flat prices, approximate for tiered ones: see `approximate`); \
                 free models are not offered; halving the frequency halves calls and cost; \
                 quality is not considered"
            .into(),
    }
}

/// The models a function's calls in `currency` are re-priced on: the
/// table's models of that currency, then, for each model used that the
/// catalogue prices, the catalogue's models of its provider in that
/// currency (an id the table already lists is not repeated).
fn candidates(
    pricing: &PricingTable,
    used: &FxHashMap<&str, GroupStats>,
    currency: Currency,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<(String, ModelPrice)> {
    let mut out: Vec<(String, ModelPrice)> = pricing
        .models()
        .filter(|(_, p)| p.currency == currency)
        .map(|(id, p)| (id.to_string(), p.clone()))
        .collect();
    let mut seen: rustc_hash::FxHashSet<String> = out.iter().map(|(id, _)| id.clone()).collect();
    // Sorted, so the list does not depend on the hash map's order.
    let mut models: Vec<&str> = used.keys().copied().collect();
    models.sort_unstable();
    for m in models {
        for (id, p) in pricing.catalogue_siblings(m, now) {
            if p.currency == currency && seen.insert(id.clone()) {
                out.push((id, p));
            }
        }
    }
    out
}

fn function_savings(
    function: &str,
    currency: Currency,
    models: &FxHashMap<&str, GroupStats>,
    pricing: &PricingTable,
    now: chrono::DateTime<chrono::Utc>,
    unpriced_calls: u64,
) -> FunctionSavings {
    let mut total = GroupStats::default();
    for g in models.values() {
        total.merge(g);
    }
    let current = total.cost.get(currency);
    let mut used: Vec<ModelUse> = models
        .iter()
        .map(|(m, g)| ModelUse {
            model: (*m).to_string(),
            display_name: pricing.display_name(m),
            calls: g.calls,
            cost: g.cost.get(currency),
        })
        .collect();
    used.sort_by(|a, b| b.cost.cmp(&a.cost).then_with(|| a.model.cmp(&b.model)));
    // With a single model, "switching" to it is no advice.
    let only: Option<String> = match used.as_slice() {
        [one] => pricing
            .resolve(&one.model)
            .map(|(id, _)| id.to_string())
            .or_else(|| {
                pricing
                    .catalogue_match(None, &one.model)
                    .map(|m| m.model_id().to_string())
            }),
        _ => None,
    };
    let mut unverified_baseline: Vec<String> = models
        .keys()
        .filter_map(|m| pricing.resolve(m))
        .filter(|(_, p)| p.unverified)
        .map(|(id, _)| id.to_string())
        .collect();
    unverified_baseline.sort_unstable();
    unverified_baseline.dedup();
    let mut unverified_left_out: Vec<String> = Vec::new();
    let mut alternatives: Vec<Alternative> = candidates(pricing, models, currency, now)
        .into_iter()
        .filter(|(id, p)| Some(id) != only.as_ref() && !is_free(p))
        .filter_map(|(id, p)| {
            let cost: Money = models.values().map(|g| reprice(&p, g)).sum();
            let saving = current - cost;
            if saving <= Money::ZERO {
                return None;
            }
            if p.unverified {
                unverified_left_out.push(id);
                return None;
            }
            Some(Alternative {
                display_name: p.display_name.clone(),
                cost,
                saving,
                saving_pct: pct(saving, current),
                approximate: size_dependent(&p),
                model: id,
            })
        })
        .collect();
    unverified_left_out.sort_unstable();
    alternatives.sort_by(|a, b| b.saving.cmp(&a.saving).then_with(|| a.model.cmp(&b.model)));
    let half_cost = current.mul_div(1, 2).unwrap_or(Money::ZERO);
    FunctionSavings {
        function: function.to_string(),
        currency,
        calls: total.calls,
        input_tokens: total.input_tokens,
        output_tokens: total.output_tokens,
        current_cost: current,
        current_models: used,
        best_saving: alternatives.first().map_or(Money::ZERO, |a| a.saving),
        alternatives,
        halve_frequency: FrequencyChange {
            calls: total.calls.div_ceil(2),
            cost: half_cost,
            saving: current - half_cost,
            saving_pct: pct(current - half_cost, current),
        },
        unpriced_calls,
        unverified_left_out,
        unverified_baseline,
    }
}
