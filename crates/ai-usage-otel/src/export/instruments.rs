//! The GenAI semantic-convention metrics we export: names, units, bucket
//! boundaries and attributes (v1.41, or the GenAI repository's newest names
//! under `OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`).

use opentelemetry::metrics::{Counter, Histogram, Meter};
use opentelemetry::KeyValue;

/// Token counts per call, by `gen_ai.token.type`.
pub const TOKEN_USAGE: &str = "gen_ai.client.token.usage";
/// Call duration in seconds.
pub const OPERATION_DURATION: &str = "gen_ai.client.operation.duration";
/// Cost per call in the record's currency, by `currency`. Named after the
/// `gen_ai.usage.cost.*` proposal of the GenAI conventions (still open):
/// the `gen_ai.client.*` family, a counter of money.
pub const COST: &str = "gen_ai.client.cost";

/// The spec's boundaries of `gen_ai.client.token.usage`.
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// The spec's boundaries of `gen_ai.client.operation.duration` (seconds).
pub const DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// The variable that picks the names, and its value for the newest ones.
pub const SEMCONV_OPT_IN_ENV: &str = "OTEL_SEMCONV_STABILITY_OPT_IN";
/// The opt-in value for the GenAI repository's newest names.
pub const LATEST_EXPERIMENTAL: &str = "gen_ai_latest_experimental";

/// Which release's names to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Semconv {
    /// The last published release (v1.41).
    #[default]
    V1_41,
    /// The GenAI repository's newest names: the cost counter's currency is
    /// also given as `gen_ai.usage.cost.currency`, the proposal's name.
    LatestExperimental,
}

impl Semconv {
    /// From `OTEL_SEMCONV_STABILITY_OPT_IN` (a comma-separated list).
    pub fn from_env() -> Semconv {
        Semconv::from_opt_in(std::env::var(SEMCONV_OPT_IN_ENV).ok().as_deref())
    }

    /// From the opt-in list's text.
    pub fn from_opt_in(value: Option<&str>) -> Semconv {
        let latest = value.is_some_and(|v| v.split(',').any(|t| t.trim() == LATEST_EXPERIMENTAL));
        if latest {
            Semconv::LatestExperimental
        } else {
            Semconv::V1_41
        }
    }
}

/// The instruments, made once.
pub(crate) struct Instruments {
    pub tokens: Histogram<u64>,
    pub duration: Histogram<f64>,
    pub cost: Counter<f64>,
    pub semconv: Semconv,
}

impl Instruments {
    pub fn new(meter: &Meter, semconv: Semconv) -> Instruments {
        Instruments {
            tokens: meter
                .u64_histogram(TOKEN_USAGE)
                .with_unit("{token}")
                .with_description("Number of input and output tokens used.")
                .with_boundaries(TOKEN_BUCKETS.to_vec())
                .build(),
            duration: meter
                .f64_histogram(OPERATION_DURATION)
                .with_unit("s")
                .with_description("GenAI operation duration.")
                .with_boundaries(DURATION_BUCKETS.to_vec())
                .build(),
            cost: meter
                .f64_counter(COST)
                .with_unit("{currency}")
                .with_description("Cost of the calls, in the currency of the `currency` attribute.")
                .build(),
            semconv,
        }
    }
}

/// What identifies a series: the attribute values of one call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SeriesKey {
    /// `gen_ai.operation.name` (see [`crate::record_operation`]).
    pub operation: String,
    pub model: String,
    pub function: String,
    pub provider: Option<String>,
    pub error_type: Option<String>,
    pub currency: String,
    pub user: Option<String>,
    pub anchor: Option<String>,
    pub session: Option<String>,
}

/// The attribute sets of one series, built once.
pub(crate) struct SeriesAttrs {
    pub input: Vec<KeyValue>,
    pub output: Vec<KeyValue>,
    pub duration: Vec<KeyValue>,
    pub cost: Vec<KeyValue>,
}

impl SeriesKey {
    pub fn attrs(&self, semconv: Semconv) -> SeriesAttrs {
        let mut common = vec![
            KeyValue::new("gen_ai.operation.name", self.operation.clone()),
            KeyValue::new("gen_ai.request.model", self.model.clone()),
            KeyValue::new("gen_ai.response.model", self.model.clone()),
            KeyValue::new("ai_usage.function", self.function.clone()),
        ];
        if let Some(p) = &self.provider {
            common.push(KeyValue::new("gen_ai.provider.name", p.clone()));
        }
        for (name, v) in [
            ("user.id", &self.user),
            ("ai_usage.anchor_id", &self.anchor),
            ("session.id", &self.session),
        ] {
            if let Some(v) = v {
                common.push(KeyValue::new(name, v.clone()));
            }
        }
        let with = |extra: Vec<KeyValue>| {
            let mut v = common.clone();
            v.extend(extra);
            v
        };
        let mut cost = vec![KeyValue::new("currency", self.currency.clone())];
        if semconv == Semconv::LatestExperimental {
            cost.push(KeyValue::new(
                "gen_ai.usage.cost.currency",
                self.currency.clone(),
            ));
        }
        SeriesAttrs {
            input: with(vec![KeyValue::new("gen_ai.token.type", "input")]),
            output: with(vec![KeyValue::new("gen_ai.token.type", "output")]),
            duration: with(
                self.error_type
                    .iter()
                    .map(|e| KeyValue::new("error.type", e.clone()))
                    .collect(),
            ),
            cost: with(cost),
        }
    }
}

/// A low-cardinality `error.type` from a record's error text: the text
/// itself when it looks like a type name (short, no spaces), else `_OTHER`.
pub(crate) fn error_type(error_msg: Option<&str>) -> String {
    match error_msg.map(str::trim) {
        Some(e) if !e.is_empty() && e.len() <= 64 && !e.contains(char::is_whitespace) => {
            e.to_owned()
        }
        _ => "_OTHER".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semconv_opt_in_is_a_list() {
        assert_eq!(Semconv::from_opt_in(None), Semconv::V1_41);
        assert_eq!(Semconv::from_opt_in(Some("http")), Semconv::V1_41);
        assert_eq!(
            Semconv::from_opt_in(Some("http, gen_ai_latest_experimental")),
            Semconv::LatestExperimental
        );
    }

    #[test]
    fn error_types_stay_few() {
        assert_eq!(error_type(Some("RateLimitError")), "RateLimitError");
        assert_eq!(error_type(Some("connection reset by peer")), "_OTHER");
        assert_eq!(error_type(Some(&"x".repeat(65))), "_OTHER");
        assert_eq!(error_type(None), "_OTHER");
    }

    #[test]
    fn series_attributes() {
        let key = SeriesKey {
            operation: "embeddings".into(),
            model: "qwen-plus".into(),
            function: "问答".into(),
            provider: None,
            error_type: Some("timeout".into()),
            currency: "CNY".into(),
            user: Some("u1".into()),
            anchor: None,
            session: None,
        };
        let names = |v: &[KeyValue]| {
            v.iter()
                .map(|kv| kv.key.as_str().to_owned())
                .collect::<Vec<_>>()
        };
        let a = key.attrs(Semconv::V1_41);
        let op = a
            .input
            .iter()
            .find(|kv| kv.key.as_str() == "gen_ai.operation.name")
            .map(|kv| kv.value.to_string());
        assert_eq!(op.as_deref(), Some("embeddings"));
        assert!(names(&a.input).contains(&"gen_ai.token.type".to_owned()));
        assert!(names(&a.duration).contains(&"error.type".to_owned()));
        assert!(!names(&a.input).contains(&"error.type".to_owned()));
        assert!(names(&a.cost).contains(&"currency".to_owned()));
        assert!(names(&a.cost).contains(&"user.id".to_owned()));
        assert!(!names(&a.cost).contains(&"gen_ai.provider.name".to_owned()));
        let latest = key.attrs(Semconv::LatestExperimental);
        assert!(names(&latest.cost).contains(&"gen_ai.usage.cost.currency".to_owned()));
    }
}
