//! Prometheus metrics, fed by the monitor's observer after every record.
//!
//! When the router is built, the counters start from the monitor's
//! in-memory totals (history replayed from disk plus records made so far), so
//! they match the JSON API and survive restarts without a reset. The
//! duration histogram only covers calls recorded after that point.

use std::sync::atomic::{AtomicI64, Ordering};

use ai_usage_core::money::MICROS_PER_UNIT;
use ai_usage_core::monitor::RecordedCall;
use ai_usage_core::rollups::Rollups;
use prometheus_client::encoding::{
    EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::counter::Counter;
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

/// A counter of money kept as exact integer micro-units and exposed as a
/// float of whole units (a float accumulator would drift over millions of adds).
#[derive(Debug, Default)]
struct MoneyCounter(AtomicI64);

impl TypedMetric for MoneyCounter {
    const TYPE: MetricType = MetricType::Counter;
}

impl EncodeMetric for MoneyCounter {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let micros = self.0.load(Ordering::Relaxed);
        let units = micros as f64 / MICROS_PER_UNIT as f64;
        encoder.encode_counter::<NoLabelSet, _, u64>(&units, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// The server's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    calls: Family<CallLabels, Counter>,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<CostLabels, MoneyCounter>,
    duration: Histogram,
    unpriced: Counter,
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
        let unpriced = Counter::default();
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
            calls,
            tokens,
            cost,
            duration,
            unpriced,
        }
    }

    /// Adds the monitor's in-memory totals (every day, function × model).
    pub fn seed_from(&self, rollups: &Rollups) {
        for day in rollups.days.values() {
            for (function, models) in &day.by_function_model {
                for (model, g) in models {
                    let (m, f) = (Escaped::new(model), Escaped::new(function));
                    for (status, n) in
                        [("success", g.successful_calls), ("error", g.failed_calls())]
                    {
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
                            .0
                            .fetch_add(amount.micros(), Ordering::Relaxed);
                    }
                    self.unpriced.inc_by(g.unpriced_calls);
                }
            }
        }
    }

    /// Counts one recorded call (runs on the recording thread: lock-light).
    pub fn observe(&self, call: &RecordedCall<'_>) {
        let r = call.record;
        let status = if r.success { "success" } else { "error" };
        self.calls
            .get_or_create(&CallLabels {
                model: Escaped::new(&r.model),
                function: Escaped::new(&r.function),
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
                model: Escaped::new(&r.model),
                function: Escaped::new(&r.function),
                r#type: kind,
            });
            c.inc_by(n);
        }
        self.cost
            .get_or_create(&CostLabels {
                model: Escaped::new(&r.model),
                function: Escaped::new(&r.function),
                currency: call.currency.code().to_string(),
            })
            .0
            .fetch_add(r.cost.micros(), Ordering::Relaxed);
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
