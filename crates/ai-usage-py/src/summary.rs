//! A summary handed to Python as the keyword arguments of the package's
//! `UsageSummary` dataclass, built directly as Python objects: a day of
//! 200 users is ~50 KB of JSON, and parsing that in Python would cost more
//! than the whole query.

use std::collections::BTreeMap;

use ai_usage_core::original;
use ai_usage_core::{Costs, GroupSummary, UsageSummary};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// `{"CNY": 1.5, "USD": 0.2}`.
fn costs_dict<'py>(py: Python<'py>, costs: &Costs) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (currency, amount) in costs.iter() {
        d.set_item(currency.code(), amount.as_f64())?;
    }
    Ok(d)
}

/// One `by_*` group: the original's five keys, then ours.
fn group_dict<'py>(py: Python<'py>, g: &GroupSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("calls", g.calls)?;
    d.set_item("input_tokens", g.input_tokens)?;
    d.set_item("output_tokens", g.output_tokens)?;
    d.set_item("total_tokens", g.total_tokens)?;
    // Micro-units: exactly the original's 6 decimals.
    d.set_item("cost", g.cost.as_f64())?;
    d.set_item("currency", g.currency.code())?;
    d.set_item("costs", costs_dict(py, &g.costs)?)?;
    d.set_item("successful_calls", g.successful_calls)?;
    d.set_item("unpriced_calls", g.unpriced_calls)?;
    if let Some(name) = &g.display_name {
        d.set_item("display_name", name)?;
    }
    Ok(d)
}

fn groups_dict<'py>(
    py: Python<'py>,
    groups: &BTreeMap<String, GroupSummary>,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (key, g) in groups {
        d.set_item(key, group_dict(py, g)?)?;
    }
    Ok(d)
}

/// The keyword arguments of `UsageSummary(...)`. `total_cost` is the
/// original's (`original::total_cost`, as HTTP gives it): the main
/// currency's total rounded half-up to 2 decimals; `costs` keeps every
/// currency apart.
pub fn summary_kwargs<'py>(py: Python<'py>, s: &UsageSummary) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("period", &s.period)?;
    d.set_item("start_time", s.start_time)?;
    d.set_item("end_time", s.end_time)?;
    d.set_item("total_calls", s.total_calls)?;
    d.set_item("successful_calls", s.successful_calls)?;
    d.set_item("failed_calls", s.failed_calls)?;
    d.set_item("total_input_tokens", s.total_input_tokens)?;
    d.set_item("total_output_tokens", s.total_output_tokens)?;
    d.set_item("total_tokens", s.total_tokens)?;
    d.set_item("total_cost", original::total_cost(s))?;
    d.set_item("by_model", groups_dict(py, &s.by_model)?)?;
    d.set_item("by_function", groups_dict(py, &s.by_function)?)?;
    d.set_item("by_user", groups_dict(py, &s.by_user)?)?;
    d.set_item("by_anchor", groups_dict(py, &s.by_anchor)?)?;
    d.set_item("costs", costs_dict(py, &s.costs)?)?;
    d.set_item("unpriced_calls", s.unpriced_calls)?;
    d.set_item("success_rate", s.success_rate)?;
    d.set_item("avg_duration_ms", s.avg_duration_ms)?;
    d.set_item("p95_duration_ms", s.p95_duration_ms)?;
    Ok(d)
}
