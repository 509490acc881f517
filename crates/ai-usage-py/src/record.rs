//! `UsageRecord`: the original's record dataclass, as a Python class whose
//! instances are built in Rust (cheap enough for a record per call).

use ai_usage_core::UsageRecord;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// One recorded AI call, with the original's attributes (`cost` as a float in
/// `currency`, which is our addition).
#[pyclass(
    name = "UsageRecord",
    module = "ai_usage_monitor",
    get_all,
    set_all,
    eq
)]
#[derive(Debug, Clone, PartialEq)]
pub struct PyUsageRecord {
    /// Epoch seconds (float).
    pub timestamp: f64,
    /// Paying account.
    pub user_id: Option<String>,
    /// Streamer (主播).
    pub anchor_id: Option<String>,
    /// Broadcast session.
    pub session_id: Option<String>,
    /// Model name as recorded.
    pub model: String,
    /// App feature (功能).
    pub function: String,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Total tokens.
    pub total_tokens: u64,
    /// Cost in `currency` (exact to 1e-9 in the engine; a float here).
    pub cost: f64,
    /// Wall time in milliseconds.
    pub duration_ms: f64,
    /// False for a failed call.
    pub success: bool,
    /// Error text of a failed call.
    pub error_msg: Option<String>,
    /// Currency code of `cost` (`CNY`, `USD`, …).
    pub currency: String,
    /// Input tokens read from the provider's cache (part of `input_tokens`).
    pub cached_input_tokens: u64,
    /// Reasoning tokens (part of `output_tokens`).
    pub reasoning_tokens: u64,
    /// Input tokens written to the provider's cache (part of `input_tokens`).
    pub cache_write_tokens: u64,
    /// Audio input tokens (part of `input_tokens`).
    pub input_audio_tokens: u64,
    /// Audio input tokens read from the cache (part of `cached_input_tokens`).
    pub cached_audio_input_tokens: u64,
    /// Audio output tokens (part of `output_tokens`).
    pub output_audio_tokens: u64,
    /// Provider whose price applied (`openai`, `anthropic`, …), if given.
    pub provider: Option<String>,
    /// The provider's request id, if given.
    pub request_id: Option<String>,
}

impl From<&UsageRecord> for PyUsageRecord {
    fn from(r: &UsageRecord) -> Self {
        PyUsageRecord {
            timestamp: r.timestamp,
            user_id: r.user_id.clone(),
            anchor_id: r.anchor_id.clone(),
            session_id: r.session_id.clone(),
            model: r.model.clone(),
            function: r.function.clone(),
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
            total_tokens: r.total_tokens,
            cost: r.cost.as_f64(),
            duration_ms: r.duration_ms,
            success: r.success,
            error_msg: r.error_msg.clone(),
            currency: r.currency.unwrap_or_default().code().to_owned(),
            cached_input_tokens: r.cached_input_tokens,
            reasoning_tokens: r.reasoning_tokens,
            cache_write_tokens: r.cache_write_tokens,
            input_audio_tokens: r.input_audio_tokens,
            cached_audio_input_tokens: r.cached_audio_input_tokens,
            output_audio_tokens: r.output_audio_tokens,
            provider: r.provider.clone(),
            request_id: r.request_id.clone(),
        }
    }
}

#[pymethods]
impl PyUsageRecord {
    /// Builds a record by hand, with the original dataclass's field order;
    /// the token details, provider and request id are keyword-only.
    #[new]
    #[pyo3(signature = (timestamp, user_id, anchor_id, session_id, model, function,
        input_tokens, output_tokens, total_tokens, cost, duration_ms, success=true,
        error_msg=None, currency="CNY".to_owned(), *, cached_input_tokens=0,
        reasoning_tokens=0, cache_write_tokens=0, input_audio_tokens=0,
        cached_audio_input_tokens=0, output_audio_tokens=0, provider=None,
        request_id=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        timestamp: f64,
        user_id: Option<String>,
        anchor_id: Option<String>,
        session_id: Option<String>,
        model: String,
        function: String,
        input_tokens: u64,
        output_tokens: u64,
        total_tokens: u64,
        cost: f64,
        duration_ms: f64,
        success: bool,
        error_msg: Option<String>,
        currency: String,
        cached_input_tokens: u64,
        reasoning_tokens: u64,
        cache_write_tokens: u64,
        input_audio_tokens: u64,
        cached_audio_input_tokens: u64,
        output_audio_tokens: u64,
        provider: Option<String>,
        request_id: Option<String>,
    ) -> Self {
        PyUsageRecord {
            timestamp,
            user_id,
            anchor_id,
            session_id,
            model,
            function,
            input_tokens,
            output_tokens,
            total_tokens,
            cost,
            duration_ms,
            success,
            error_msg,
            currency,
            cached_input_tokens,
            reasoning_tokens,
            cache_write_tokens,
            input_audio_tokens,
            cached_audio_input_tokens,
            output_audio_tokens,
            provider,
            request_id,
        }
    }

    /// The record as a dict: the original's `dataclasses.asdict` keys, then
    /// `currency` and the token details, provider and request id.
    fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("timestamp", self.timestamp)?;
        d.set_item("user_id", &self.user_id)?;
        d.set_item("anchor_id", &self.anchor_id)?;
        d.set_item("session_id", &self.session_id)?;
        d.set_item("model", &self.model)?;
        d.set_item("function", &self.function)?;
        d.set_item("input_tokens", self.input_tokens)?;
        d.set_item("output_tokens", self.output_tokens)?;
        d.set_item("total_tokens", self.total_tokens)?;
        d.set_item("cost", self.cost)?;
        d.set_item("duration_ms", self.duration_ms)?;
        d.set_item("success", self.success)?;
        d.set_item("error_msg", &self.error_msg)?;
        d.set_item("currency", &self.currency)?;
        d.set_item("cached_input_tokens", self.cached_input_tokens)?;
        d.set_item("reasoning_tokens", self.reasoning_tokens)?;
        d.set_item("cache_write_tokens", self.cache_write_tokens)?;
        d.set_item("input_audio_tokens", self.input_audio_tokens)?;
        d.set_item("cached_audio_input_tokens", self.cached_audio_input_tokens)?;
        d.set_item("output_audio_tokens", self.output_audio_tokens)?;
        d.set_item("provider", &self.provider)?;
        d.set_item("request_id", &self.request_id)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        // Python's spelling of optional text: None or a quoted string.
        let opt = |v: &Option<String>| v.as_ref().map_or("None".to_owned(), |s| format!("{s:?}"));
        format!(
            "UsageRecord(timestamp={}, model={:?}, function={:?}, input_tokens={}, \
             output_tokens={}, total_tokens={}, cost={} {}, duration_ms={}, success={}, \
             user_id={}, anchor_id={}, session_id={}, error_msg={}, provider={})",
            self.timestamp,
            self.model,
            self.function,
            self.input_tokens,
            self.output_tokens,
            self.total_tokens,
            self.cost,
            self.currency,
            self.duration_ms,
            if self.success { "True" } else { "False" },
            opt(&self.user_id),
            opt(&self.anchor_id),
            opt(&self.session_id),
            opt(&self.error_msg),
            opt(&self.provider),
        )
    }
}
