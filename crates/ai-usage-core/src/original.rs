//! The original's payload shapes (the Python service the guide documents),
//! built over the core's results: one place for its keys and its rounding,
//! used by the HTTP server and the Python module alike.
//!
//! The core's types (`UsageSummary`, `DashboardData`, …) are the Rust API
//! and the CLI's JSON; the HTTP API and the Python package answer in the
//! original's shape, so a client of the original keeps working. Each view adds the original's keys
//! (`input_tokens`, ISO `start_time`, `this_month`, objects keyed by name,
//! …) beside ours, and keeps every value we had under one of our own names
//! where the original's key means something else:
//! - `start_time`/`end_time` are local ISO date-times; the epoch seconds are
//!   `start_ts`/`end_ts`;
//! - `total_cost` is rounded to 2 decimals and `success_rate` to 2 decimals
//!   (the original rounds both); the exact values are `total_cost_exact`
//!   and `success_rate_exact`;
//! - `by_function` is keyed by display name ([`FunctionNames`]); names that
//!   show the same are added together, and `functions` lists what was
//!   recorded. `/stats/current` is the exception, as in the original: its
//!   `today.by_function` is keyed by the recorded name.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::function_names::FunctionNames;
use crate::money::{Costs, Currency, Money};
use crate::monitor::CurrentTotals;
use crate::pricing::PricingTable;
use crate::query::{
    main_currency, success_rate, DashboardData, DistributionSlice, GroupSummary, RankEntry,
    SessionSummary, TrendPoint, UsageSummary,
};
use crate::rollups::GroupStats;
use crate::zone::Zone;

/// Local ISO date-time format of the original's `start_time`/`end_time`.
const ISO_LOCAL: &str = "%Y-%m-%dT%H:%M:%S";

/// What a period summary is labelled with besides its bounds.
#[derive(Debug, Clone, Copy)]
pub enum PeriodLabel {
    /// An hour: no extra key.
    Hour,
    /// A day: `date` (`YYYY-MM-DD`).
    Day(chrono::NaiveDate),
    /// A month: `year_month` (`YYYY-MM`).
    Month(i32, u32),
}

/// `x` rounded to 2 decimals, as the original rounds percentages.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A cost rounded to 2 decimals (half away from zero, exact), as the
/// original rounds every `total_cost`.
pub fn cost2(m: Money) -> f64 {
    m.round_dp(2).as_f64()
}

/// The original's `total_cost` of a summary: the total in the summary's
/// main currency (its only currency, else the reporting currency; never a
/// sum across currencies), rounded by [`cost2`]. HTTP and Python both give
/// this number.
pub fn total_cost(s: &UsageSummary) -> f64 {
    cost2(s.total_cost)
}

/// Epoch seconds as a local ISO date-time in `zone`.
pub fn iso_local(zone: &Zone, ts: f64) -> String {
    zone.local(ts).format(ISO_LOCAL).to_string()
}

fn to_object<T: Serialize>(v: &T) -> Map<String, Value> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => m,
        // Every type passed here is a struct: serialisation cannot fail or
        // yield a non-object. An empty object keeps the route answering.
        other => {
            tracing::error!(?other, "a payload did not serialise to an object");
            Map::new()
        }
    }
}

/// Groups keyed by recorded function name, re-keyed by display name; groups
/// that show the same are added together (the original kept only one).
pub fn by_display_name(
    groups: &BTreeMap<String, GroupSummary>,
    names: &FunctionNames,
    reporting: Currency,
) -> Map<String, Value> {
    let mut merged: BTreeMap<&str, (GroupSummary, Vec<&str>)> = BTreeMap::new();
    for (function, g) in groups {
        let shown = names.display(function);
        match merged.get_mut(shown) {
            Some((acc, recorded)) => {
                add_group(acc, g, reporting);
                recorded.push(function);
            }
            None => {
                merged.insert(shown, (g.clone(), vec![function.as_str()]));
            }
        }
    }
    merged
        .into_iter()
        .map(|(shown, (g, recorded))| {
            let mut o = to_object(&g);
            o.insert("functions".into(), json!(recorded));
            (shown.to_string(), Value::Object(o))
        })
        .collect()
}

/// Adds `g` into `acc` (saturating, as every sum in the core); the cost
/// stays in one currency (the main one of the merged costs), never a sum
/// across currencies.
fn add_group(acc: &mut GroupSummary, g: &GroupSummary, reporting: Currency) {
    acc.calls = acc.calls.saturating_add(g.calls);
    acc.input_tokens = acc.input_tokens.saturating_add(g.input_tokens);
    acc.output_tokens = acc.output_tokens.saturating_add(g.output_tokens);
    acc.total_tokens = acc.total_tokens.saturating_add(g.total_tokens);
    acc.successful_calls = acc.successful_calls.saturating_add(g.successful_calls);
    acc.cached_input_tokens = acc
        .cached_input_tokens
        .saturating_add(g.cached_input_tokens);
    acc.unpriced_calls = acc.unpriced_calls.saturating_add(g.unpriced_calls);
    acc.costs.merge(&g.costs);
    acc.currency = main_currency(&acc.costs, reporting);
    acc.cost = acc.costs.get(acc.currency);
}

/// `/stats/hourly|daily|monthly`: the summary with the original's keys.
pub fn summary_view(
    s: &UsageSummary,
    label: PeriodLabel,
    names: &FunctionNames,
    zone: &Zone,
    reporting: Currency,
) -> Value {
    let mut o = to_object(s);
    o.insert("start_ts".into(), json!(s.start_time));
    o.insert("end_ts".into(), json!(s.end_time));
    o.insert("start_time".into(), json!(iso_local(zone, s.start_time)));
    o.insert("end_time".into(), json!(iso_local(zone, s.end_time)));
    o.insert("input_tokens".into(), json!(s.total_input_tokens));
    o.insert("output_tokens".into(), json!(s.total_output_tokens));
    o.insert("total_cost".into(), json!(total_cost(s)));
    o.insert("total_cost_exact".into(), json!(s.total_cost));
    o.insert("success_rate".into(), json!(round2(s.success_rate)));
    o.insert("success_rate_exact".into(), json!(s.success_rate));
    o.insert(
        "by_function".into(),
        Value::Object(by_display_name(&s.by_function, names, reporting)),
    );
    match label {
        PeriodLabel::Hour => {}
        PeriodLabel::Day(d) => {
            o.insert("date".into(), json!(d.format("%Y-%m-%d").to_string()));
        }
        PeriodLabel::Month(y, m) => {
            o.insert("year_month".into(), json!(format!("{y:04}-{m:02}")));
        }
    }
    Value::Object(o)
}

/// The compact figures of a period (`today`, `current_hour`).
fn brief(g: &GroupStats, reporting: Currency) -> Map<String, Value> {
    let currency = main_currency(&g.cost, reporting);
    let rate = success_rate(g);
    let mut o = Map::new();
    o.insert("calls".into(), json!(g.calls));
    o.insert("tokens".into(), json!(g.total_tokens));
    o.insert("input_tokens".into(), json!(g.input_tokens));
    o.insert("output_tokens".into(), json!(g.output_tokens));
    o.insert("cost".into(), json!(g.cost.get(currency)));
    o.insert("currency".into(), json!(currency));
    o.insert("costs".into(), json!(g.cost));
    o.insert("success_rate".into(), json!(round2(rate)));
    o.insert("success_rate_exact".into(), json!(rate));
    o.insert("unpriced_calls".into(), json!(g.unpriced_calls));
    o
}

fn summaries(
    groups: &BTreeMap<String, GroupStats>,
    reporting: Currency,
) -> BTreeMap<String, GroupSummary> {
    groups
        .iter()
        .map(|(k, g)| (k.clone(), GroupSummary::from_stats(g, reporting)))
        .collect()
}

/// `by_model` with each model's display name.
fn models_view(
    groups: &BTreeMap<String, GroupSummary>,
    pricing: &PricingTable,
) -> Map<String, Value> {
    groups
        .iter()
        .map(|(model, g)| {
            let mut g = g.clone();
            g.display_name = Some(pricing.display_name(model));
            (model.clone(), Value::Object(to_object(&g)))
        })
        .collect()
}

/// `/stats/current`: today (with `by_model` and `by_function`, the latter
/// keyed by the recorded function name as the original sends it) and the
/// current hour.
pub fn current_view(
    t: &CurrentTotals,
    names: &FunctionNames,
    pricing: &PricingTable,
    reporting: Currency,
) -> Value {
    let mut today = brief(&t.today, reporting);
    today.insert("date".into(), json!(t.date.format("%Y-%m-%d").to_string()));
    today.insert(
        "by_model".into(),
        Value::Object(models_view(
            &summaries(&t.today_by_model, reporting),
            pricing,
        )),
    );
    // The original passes this one `by_function` untranslated: keyed by the
    // recorded name. Each group carries its display name beside it.
    today.insert(
        "by_function".into(),
        Value::Object(
            summaries(&t.today_by_function, reporting)
                .into_iter()
                .map(|(function, mut g)| {
                    g.display_name = Some(names.display(&function).to_string());
                    (function, Value::Object(to_object(&g)))
                })
                .collect(),
        ),
    );
    let mut hour = brief(&t.this_hour, reporting);
    hour.insert("hour".into(), json!(t.hour));
    json!({ "today": today, "current_hour": hour })
}

/// `/session/{id}`: ours plus the original's `tokens`.
pub fn session_view(s: &SessionSummary) -> Value {
    let mut o = to_object(s);
    o.insert("tokens".into(), json!(s.total_tokens));
    Value::Object(o)
}

/// `/top_users`: the original's `{period_days, top_users}`.
pub fn top_users_view(days: u32, rows: &[RankEntry]) -> Value {
    json!({ "period_days": days, "top_users": rows })
}

/// `/top_anchors` (ours; the original has no such route): shaped like
/// `/top_users`, `{period_days, top_anchors}`.
pub fn top_anchors_view(days: u32, rows: &[RankEntry]) -> Value {
    json!({ "period_days": days, "top_anchors": rows })
}

/// `/cost_trend`: the original's `{period_days, data}`.
pub fn cost_trend_view(days: u32, points: &[TrendPoint]) -> Value {
    json!({ "period_days": days, "data": points })
}

/// A distribution slice as a group of the original's `by_model`/`by_function`.
fn slice_group(s: &DistributionSlice) -> GroupSummary {
    GroupSummary {
        calls: s.calls,
        input_tokens: s.input_tokens,
        output_tokens: s.output_tokens,
        total_tokens: s.tokens,
        cost: s.cost,
        currency: s.currency,
        costs: s.costs.clone(),
        // Slices carry no success or cache counts.
        successful_calls: 0,
        cached_input_tokens: 0,
        unpriced_calls: 0,
        display_name: None,
    }
}

/// Function slices merged by display name, by cost (most first), as
/// `{name, display_name, calls, tokens, …}` rows for the page.
fn function_rows(
    slices: &[DistributionSlice],
    names: &FunctionNames,
    reporting: Currency,
) -> Vec<Value> {
    let mut merged: BTreeMap<&str, (u64, u64, u64, u64, Costs)> = BTreeMap::new();
    for s in slices {
        let e = merged.entry(names.display(&s.name)).or_default();
        e.0 += s.calls;
        e.1 += s.tokens;
        e.2 += s.input_tokens;
        e.3 += s.output_tokens;
        e.4.merge(&s.costs);
    }
    let mut rows: Vec<DistributionSlice> = merged
        .into_iter()
        .map(|(shown, (calls, tokens, input, output, costs))| {
            let currency = main_currency(&costs, reporting);
            DistributionSlice {
                name: shown.to_string(),
                display_name: shown.to_string(),
                calls,
                tokens,
                input_tokens: input,
                output_tokens: output,
                cost: costs.get(currency),
                currency,
                costs,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        b.cost
            .cmp(&a.cost)
            .then(b.calls.cmp(&a.calls))
            .then(a.name.cmp(&b.name))
    });
    rows.iter().map(|r| Value::Object(to_object(r))).collect()
}

/// `/dashboard`: ours plus the original's `this_month`, `cost_trend_7days`,
/// `today.cost_change_percent` and name-keyed distributions. Our ordered
/// slices move to `models_by_cost` and `functions_by_cost`.
pub fn dashboard_view(d: &DashboardData, names: &FunctionNames, reporting: Currency) -> Value {
    let mut o = to_object(d);
    // The original sends 0 when yesterday cost nothing; JS calls toFixed on it.
    let change = d.today.cost_change_pct.unwrap_or(0.0);
    if let Some(Value::Object(today)) = o.get_mut("today") {
        today.insert("cost_change_percent".into(), json!(change));
        today.insert("success_rate".into(), json!(round2(d.today.success_rate)));
        today.insert("success_rate_exact".into(), json!(d.today.success_rate));
    }
    if let Some(month) = o.get("month").cloned() {
        o.insert("this_month".into(), month);
    }
    if let Some(trend) = o.get("cost_trend").cloned() {
        o.insert("cost_trend_7days".into(), trend);
    }
    let models: BTreeMap<String, GroupSummary> = d
        .model_distribution
        .iter()
        .map(|s| {
            let mut g = slice_group(s);
            g.display_name = Some(s.display_name.clone());
            (s.name.clone(), g)
        })
        .collect();
    let functions: BTreeMap<String, GroupSummary> = d
        .function_distribution
        .iter()
        .map(|s| (s.name.clone(), slice_group(s)))
        .collect();
    o.insert("models_by_cost".into(), json!(d.model_distribution.clone()));
    o.insert(
        "functions_by_cost".into(),
        Value::Array(function_rows(&d.function_distribution, names, reporting)),
    );
    o.insert(
        "model_distribution".into(),
        Value::Object(
            models
                .iter()
                .map(|(k, g)| (k.clone(), Value::Object(to_object(g))))
                .collect(),
        ),
    );
    o.insert(
        "function_distribution".into(),
        Value::Object(by_display_name(&functions, names, reporting)),
    );
    Value::Object(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(calls: u64, tokens: u64, costs: &[(Currency, i64)]) -> GroupSummary {
        let mut c = Costs::default();
        for (cur, micros) in costs {
            c.add(*cur, Money::from_micros(*micros));
        }
        let currency = main_currency(&c, Currency::CNY);
        GroupSummary {
            calls,
            input_tokens: tokens,
            output_tokens: 0,
            total_tokens: tokens,
            cost: c.get(currency),
            currency,
            costs: c,
            successful_calls: calls,
            cached_input_tokens: 0,
            unpriced_calls: 0,
            display_name: None,
        }
    }

    #[test]
    fn names_that_show_the_same_are_added_not_dropped() {
        let mut groups = BTreeMap::new();
        groups.insert(
            "live_analysis".to_string(),
            group(2, 100, &[(Currency::CNY, 10_000)]),
        );
        groups.insert(
            "实时分析".to_string(),
            group(3, 50, &[(Currency::CNY, 5_000)]),
        );
        groups.insert("custom".to_string(), group(1, 7, &[(Currency::USD, 1_000)]));
        let v = by_display_name(&groups, &FunctionNames::default(), Currency::CNY);
        assert_eq!(v.len(), 2, "{v:?}");
        let rt = &v["实时分析"];
        assert_eq!(rt["calls"], 5);
        assert_eq!(rt["total_tokens"], 150);
        assert_eq!(rt["cost"], 0.015);
        assert_eq!(rt["functions"], json!(["live_analysis", "实时分析"]));
        assert_eq!(v["custom"]["currency"], "USD");
    }

    #[test]
    fn merged_currencies_are_never_added() {
        let mut acc = group(1, 1, &[(Currency::CNY, 1_000_000)]);
        add_group(
            &mut acc,
            &group(1, 1, &[(Currency::USD, 2_000_000)]),
            Currency::CNY,
        );
        assert_eq!(acc.currency, Currency::CNY);
        assert_eq!(acc.cost, Money::from_micros(1_000_000));
        assert_eq!(acc.costs.get(Currency::USD), Money::from_micros(2_000_000));
    }

    #[test]
    fn rounding_matches_the_original() {
        assert_eq!(cost2(Money::from_micros(29_515_000)), 29.52);
        assert_eq!(cost2(Money::from_micros(4_500)), 0.0);
        assert_eq!(round2(66.666_666), 66.67);
    }
}
