//! `ai_usage_monitor._native`: the compiled half of the Python package
//! `ai_usage_monitor`, a drop-in for the original's module of that
//! name, running on `ai-usage-core`.
//!
//! What lives here is what must be fast or exact: recording (the GIL is
//! released while the engine works), queries (answered from the engine's
//! rollups; summaries built directly as Python objects, the rest handed over
//! as JSON text that the pure-Python layer shapes into the original's objects), pricing and token extraction. The decorator,
//! the global monitor, `atexit` and fork handling are Python
//! (`python/ai_usage_monitor/__init__.py`).
#![warn(missing_docs)]

mod monitor;
mod pricing;
mod record;
mod summary;

use pyo3::prelude::*;

/// The compiled module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<monitor::Monitor>()?;
    m.add_class::<record::PyUsageRecord>()?;
    m.add_function(wrap_pyfunction!(monitor::_mark_exiting, m)?)?;
    m.add_function(wrap_pyfunction!(pricing::calculate_cost, m)?)?;
    m.add_function(wrap_pyfunction!(pricing::model_display_name, m)?)?;
    m.add_function(wrap_pyfunction!(pricing::pricing_json, m)?)?;
    m.add_function(wrap_pyfunction!(pricing::function_names, m)?)?;
    m.add_function(wrap_pyfunction!(pricing::usage_from_json, m)?)?;
    m.add("DEFAULT_DIR", ai_usage_core::dayfile::DEFAULT_DIR)?;
    m.add("DIR_ENV", ai_usage_core::dayfile::DIR_ENV)?;
    Ok(())
}
