//! `ModelPricing`'s classmethods and token extraction, on the engine's
//! pricing table and provider-body reader.

use std::sync::OnceLock;

use ai_usage_core::{PricingTable, TokenUsage, UsageSource};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The table `ModelPricing` answers from: `AI_USAGE_PRICING` or the built-in
/// prices, loaded once (as the original's class attributes were).
fn table() -> &'static PricingTable {
    static TABLE: OnceLock<PricingTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        PricingTable::from_env_or_builtin().unwrap_or_else(|e| {
            tracing::error!(error = %e, "pricing file unusable; using the built-in prices");
            PricingTable::builtin()
        })
    })
}

/// Cost of a call as a float in the model's currency; 0.0 for an unknown model.
#[pyfunction]
pub fn calculate_cost(model: &str, input_tokens: u64, output_tokens: u64) -> f64 {
    let usage = TokenUsage {
        input_tokens,
        output_tokens,
        ..TokenUsage::default()
    };
    table().price(model, &usage).cost.as_f64()
}

/// The display name of a model (the name itself when unknown).
#[pyfunction]
pub fn model_display_name(model: &str) -> String {
    table().display_name(model)
}

/// The model's price as JSON (`input` / `output` per 1K tokens, `currency`,
/// `display_name`, …): the table's, else the catalogue's now; `None` when
/// unknown.
#[pyfunction]
pub fn pricing_json(model: &str) -> PyResult<Option<String>> {
    let t = table();
    let found = match t.resolve(model) {
        Some((id, price)) => Some((id.to_string(), price.clone())),
        None => t.catalogue_price(model, chrono::Utc::now()),
    };
    let Some((id, price)) = found else {
        return Ok(None);
    };
    let mut v = serde_json::to_value(&price)
        .map_err(|e| PyValueError::new_err(format!("cannot serialise price: {e}")))?;
    if let Some(o) = v.as_object_mut() {
        o.insert("model".into(), id.into());
    }
    Ok(Some(v.to_string()))
}

/// Token counts and model read from a provider response body (JSON text),
/// as a dict keyed like `record_usage`'s keywords (`input_tokens`,
/// `output_tokens`, `total_tokens`, `cached_input_tokens`,
/// `reasoning_tokens`, `cache_write_tokens`, the three audio counts) plus
/// `model`; `None` when the body has no usage the engine recognises.
#[pyfunction]
pub fn usage_from_json<'py>(py: Python<'py>, body: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
    let read = py.detach(|| {
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        let u = v.token_usage()?;
        Some((u, v.response_model().map(str::to_owned)))
    });
    let Some((u, model)) = read else {
        return Ok(None);
    };
    let d = PyDict::new(py);
    // Every count by its name; the total as recorded (max of given and sum).
    for (name, n) in u.named_counts() {
        d.set_item(name, n)?;
    }
    d.set_item("total_tokens", u.total())?;
    d.set_item("model", model)?;
    Ok(Some(d))
}

/// The default function display table (`function` → display name), the one
/// the engine's API uses, so Python and Rust show the same names.
#[pyfunction]
pub fn function_names() -> Vec<(String, String)> {
    ai_usage_core::FunctionNames::default()
        .iter()
        .map(|(f, d)| (f.to_owned(), d.to_owned()))
        .collect()
}
