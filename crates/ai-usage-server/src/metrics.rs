//! Prometheus metrics, fed by the monitor's observer after every record.
//!
//! When the router is built, the counters start from the monitor's
//! in-memory totals (history replayed from disk plus records made so far), so
//! they match the JSON API and survive restarts without a reset. The
//! duration histogram only covers calls recorded after that point.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use ai_usage_core::RecordedCall;
use ai_usage_core::UsageMonitor;
use ai_usage_core::NANOS_PER_UNIT;
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
// One increment per call: cannot wrap in practice, so the stock counter.
use prometheus_client::metrics::counter::Counter as CallCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// Content type of [`Metrics::encode`]'s output (OpenMetrics text, which
/// Prometheus scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A label value escaped as the text format requires (`\\`, `\"`, `\n`).
///
/// prometheus-client 0.24 writes label values verbatim, so a function name
/// with a quote or a newline (these arrive over `POST /record`) would
/// otherwise corrupt the whole exposition.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct Escaped(String);

impl Escaped {
    fn new(s: &str) -> Escaped {
        Escaped(s.to_owned())
    }
}

impl EncodeLabelValue for Escaped {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        use std::fmt::Write;
        let s = &self.0;
        if !s.contains(['\\', '"', '\n']) {
            return encoder.write_str(s);
        }
        for c in s.chars() {
            match c {
                '\\' => encoder.write_str("\\\\")?,
                '"' => encoder.write_str("\\\"")?,
                '\n' => encoder.write_str("\\n")?,
                c => encoder.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    model: Escaped,
    function: Escaped,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    model: Escaped,
    function: Escaped,
    r#type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CostLabels {
    model: Escaped,
    function: Escaped,
    currency: String,
}

/// A counter of money kept as exact integer nano-units and exposed as a
/// float of whole units (a float accumulator would drift over millions of
/// adds; a million $0.0000002 calls read exactly 0.2).
#[derive(Debug, Default)]
struct MoneyCounter(AtomicI64);

impl MoneyCounter {
    fn add_nanos(&self, nanos: i64) {
        saturating_add_i64(&self.0, nanos);
    }
}

impl TypedMetric for MoneyCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for MoneyCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let nanos = self.0.load(Ordering::Relaxed);
        let units = nanos as f64 / NANOS_PER_UNIT as f64;
        encoder.encode_counter::<NoLabelSet, _, u64>(&units, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// Adds `n` to `cell`, stopping at the type's maximum instead of wrapping
/// (the same rule as the core's token and money sums, so `/metrics` and the
/// JSON API agree even at the limit).
fn saturating_add_u64(cell: &AtomicU64, n: u64) {
    // The closure always returns Some, so the update cannot fail.
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_add(n))
    });
}

fn saturating_add_i64(cell: &AtomicI64, n: i64) {
    let _ = cell.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
        Some(v.saturating_add(n))
    });
}

/// A monotonic counter that saturates at `u64::MAX` (prometheus-client's
/// `Counter` wraps).
#[derive(Debug, Default)]
struct Counter(AtomicU64);

impl Counter {
    fn inc(&self) {
        self.inc_by(1);
    }

    fn inc_by(&self, n: u64) {
        saturating_add_u64(&self.0, n);
    }
}

impl TypedMetric for Counter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for Counter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.0.load(Ordering::Relaxed), None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// Most (model, function) label pairs exposed; later new pairs are counted
/// under `model="other",function="other"`. Names arrive over `POST /record`,
/// so without a cap a client could grow the exposition without bound.
pub const MAX_SERIES: usize = 500;

/// The label value that collects pairs beyond [`MAX_SERIES`].
pub const OTHER: &str = "other";

/// Label pairs seen, looked up by `&str` so a known pair costs no allocation.
#[derive(Debug, Default)]
struct Series {
    by_model: rustc_hash::FxHashMap<String, rustc_hash::FxHashSet<String>>,
    pairs: usize,
    capped: bool,
}

/// The server's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// (model, function) pairs given their own series so far, by model.
    series: parking_lot::Mutex<Series>,
    calls: Family<CallLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<CostLabels, MoneyCounter>,
    duration: Histogram,
    unpriced: CallCounter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let calls = Family::<CallLabels, Counter>::default();
        let tokens = Family::<TokenLabels, Counter>::default();
        let cost = Family::<CostLabels, MoneyCounter>::default();
        // 10 ms … ~82 s: LLM calls range from cache hits to long generations.
        let duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let unpriced = CallCounter::default();
        // The text encoder appends `_total` to counters.
        registry.register("ai_usage_calls", "AI calls recorded", calls.clone());
        registry.register(
            "ai_usage_tokens",
            "Tokens of recorded AI calls by type",
            tokens.clone(),
        );
        registry.register(
            "ai_usage_cost",
            "Exact cost of recorded AI calls, in each currency",
            cost.clone(),
        );
        registry.register(
            "ai_usage_call_duration_seconds",
            "Wall time of recorded AI calls",
            duration.clone(),
        );
        registry.register(
            "ai_usage_unpriced_calls",
            "Calls of models without a price (cost recorded as 0)",
            unpriced.clone(),
        );
        Metrics {
            registry,
            series: Default::default(),
            calls,
            tokens,
            cost,
            duration,
            unpriced,
        }
    }

    /// The labels for a (model, function) pair: its own, or [`OTHER`] once
    /// [`MAX_SERIES`] pairs exist.
    fn labels(&self, model: &str, function: &str) -> (Escaped, Escaped) {
        let mut series = self.series.lock();
        let known = series
            .by_model
            .get(model)
            .is_some_and(|f| f.contains(function));
        if !known && series.pairs >= MAX_SERIES {
            if !series.capped {
                series.capped = true;
                tracing::warn!(
                    max = MAX_SERIES,
                    "too many model/function pairs for metrics; counting the rest as \"other\""
                );
            }
            return (Escaped::new(OTHER), Escaped::new(OTHER));
        }
        if !known {
            series.pairs += 1;
            series
                .by_model
                .entry(model.to_owned())
                .or_default()
                .insert(function.to_owned());
        }
        (Escaped::new(model), Escaped::new(function))
    }

    /// Adds the monitor's in-memory totals (every day, function × model).
    pub fn seed_from(&self, monitor: &UsageMonitor) {
        monitor.for_each_function_model(|function, model, g| {
            let (m, f) = self.labels(model, function);
            for (status, n) in [("success", g.successful_calls), ("error", g.failed_calls())] {
                if n > 0 {
                    self.calls
                        .get_or_create(&CallLabels {
                            model: m.clone(),
                            function: f.clone(),
                            status,
                        })
                        .inc_by(n);
                }
            }
            for (kind, n) in [
                ("input", g.input_tokens),
                ("output", g.output_tokens),
                ("cached", g.cached_input_tokens),
            ] {
                self.tokens
                    .get_or_create(&TokenLabels {
                        model: m.clone(),
                        function: f.clone(),
                        r#type: kind,
                    })
                    .inc_by(n);
            }
            for (currency, amount) in g.cost.iter() {
                self.cost
                    .get_or_create(&CostLabels {
                        model: m.clone(),
                        function: f.clone(),
                        currency: currency.code().to_string(),
                    })
                    .add_nanos(amount.nanos());
            }
            self.unpriced.inc_by(g.unpriced_calls);
        });
    }

    /// Moves the cost counters by a cost correction (`ai-usage reprice`):
    /// the old cost leaves its currency, the new one enters its own. Call
    /// and token counters stay; `ai_usage_unpriced_calls_total` counts calls
    /// recorded without a price and never goes down.
    pub fn adjust(&self, a: &ai_usage_core::adjustments::Adjustment) {
        let (model, function) = self.labels(&a.model, &a.function);
        for (currency, nanos) in [
            (a.old_currency, a.old_cost.nanos().saturating_neg()),
            (a.currency, a.new_cost.nanos()),
        ] {
            self.cost
                .get_or_create(&CostLabels {
                    model: model.clone(),
                    function: function.clone(),
                    currency: currency.code().to_string(),
                })
                .add_nanos(nanos);
        }
    }

    /// Counts one recorded call (runs on the recording thread: lock-light).
    pub fn observe(&self, call: &RecordedCall<'_>) {
        let r = call.record;
        let status = if r.success { "success" } else { "error" };
        let (model, function) = self.labels(&r.model, &r.function);
        self.calls
            .get_or_create(&CallLabels {
                model: model.clone(),
                function: function.clone(),
                status,
            })
            .inc();
        // Same meaning as the record's fields: "cached" is the part of
        // "input" served from the provider's cache (so don't sum all types).
        for (kind, n) in [
            ("input", r.input_tokens),
            ("output", r.output_tokens),
            ("cached", r.cached_input_tokens),
        ] {
            let c = self.tokens.get_or_create(&TokenLabels {
                model: model.clone(),
                function: function.clone(),
                r#type: kind,
            });
            c.inc_by(n);
        }
        self.cost
            .get_or_create(&CostLabels {
                model,
                function,
                currency: call.currency.code().to_string(),
            })
            .add_nanos(r.cost.nanos());
        self.duration.observe(r.duration_ms / 1000.0);
        if !call.priced {
            self.unpriced.inc();
        }
    }

    /// The metrics in OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_usage_core::{Currency, UsageRecord};

    #[test]
    fn counters_saturate_instead_of_wrapping() {
        let m = Metrics::new();
        for _ in 0..3 {
            let r: UsageRecord = serde_json::from_value(serde_json::json!({
                "timestamp": 1.0, "model": "m", "function": "f",
                "input_tokens": u64::MAX / 2, "output_tokens": 1, "total_tokens": u64::MAX / 2 + 1,
                "cost": 9.0e12
            }))
            .expect("record");
            m.observe(&RecordedCall {
                record: &r,
                currency: Currency::CNY,
                priced: true,
            });
        }
        let text = m.encode().expect("encode");
        let input = text
            .lines()
            .find(|l| l.starts_with("ai_usage_tokens_total{") && l.contains("type=\"input\""))
            .expect("input tokens line");
        assert!(input.ends_with(&format!(" {}", u64::MAX)), "{input}");
        let cost = text
            .lines()
            .find(|l| l.starts_with("ai_usage_cost_total{"))
            .expect("cost line");
        let v: f64 = cost.rsplit(' ').next().unwrap().parse().unwrap();
        assert!(v > 0.0, "cost wrapped negative: {cost}");
    }

    #[test]
    fn sub_micro_costs_add_up_exactly() {
        let m = Metrics::new();
        let r: UsageRecord = serde_json::from_str(
            r#"{"timestamp": 1.0, "model": "text-embedding-3-small", "function": "embed",
                "input_tokens": 10, "output_tokens": 0, "total_tokens": 10, "cost": 0.0000002}"#,
        )
        .expect("record");
        for _ in 0..1000 {
            m.observe(&RecordedCall {
                record: &r,
                currency: Currency::USD,
                priced: true,
            });
        }
        let text = m.encode().expect("encode");
        let cost = text
            .lines()
            .find(|l| l.starts_with("ai_usage_cost_total{"))
            .expect("cost line");
        assert!(cost.contains("currency=\"USD\""), "{cost}");
        let v: f64 = cost.rsplit(' ').next().unwrap().parse().unwrap();
        // 1000 × 200 nano-USD, summed as integers: exactly the double of 0.0002.
        assert_eq!(v, 0.0002, "{cost}");
    }

    #[test]
    fn series_are_capped_and_nothing_is_lost() {
        let m = Metrics::new();
        let n = MAX_SERIES + 100;
        for i in 0..n {
            let r: UsageRecord = serde_json::from_value(serde_json::json!({
                "timestamp": 1.0, "model": "qwen-plus", "function": format!("f{i}"),
                "input_tokens": 10, "output_tokens": 1, "total_tokens": 11, "cost": 0.001
            }))
            .expect("record");
            m.observe(&RecordedCall {
                record: &r,
                currency: Currency::CNY,
                priced: true,
            });
        }
        let text = m.encode().expect("encode");
        let call_lines: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("ai_usage_calls_total{"))
            .collect();
        assert_eq!(
            call_lines.len(),
            MAX_SERIES + 1,
            "capped, plus the \"other\" series"
        );
        let total: f64 = call_lines
            .iter()
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert_eq!(total as usize, n, "every call still counted");
        assert!(text.contains("function=\"other\""));
    }
}
