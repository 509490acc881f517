//! GenAI metrics out: every record the monitor counts is exported over
//! OTLP/HTTP protobuf as the GenAI semantic-convention metrics
//! ([`instruments`]), to any OpenTelemetry backend or Collector.
//!
//! ```no_run
//! use ai_usage_core::UsageMonitor;
//! use ai_usage_otel::export::{OtlpExt, OtlpMetrics};
//!
//! // OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318, OTEL_SERVICE_NAME=…
//! let monitor = UsageMonitor::builder()
//!     .dir("records/ai_usage")
//!     .otlp_metrics(OtlpMetrics::from_env())
//!     .build()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! - Turned on only by this call (the CLI: `--otlp` / `AI_USAGE_OTLP=1`).
//!   It makes its own meter provider and never touches the global one, so
//!   an app with its own OpenTelemetry set-up is never exported twice
//!   behind its back.
//! - Configured by OpenTelemetry's variables: `OTEL_EXPORTER_OTLP_ENDPOINT`
//!   / `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `OTEL_EXPORTER_OTLP_HEADERS`,
//!   `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_SERVICE_NAME`,
//!   `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_SEMCONV_STABILITY_OPT_IN`.
//! - Nothing runs on the recording thread: the monitor's counting thread
//!   runs our observer, which appends a small sample to a buffer under a
//!   short lock; a thread of ours turns samples into measurements and the
//!   SDK's reader thread exports them (cumulative totals, so an export that
//!   fails after its retries is made good by the next one). A collector
//!   that is down therefore costs `record` nothing.
//! - `gen_ai.operation.name` is the record's operation tag (the receiver
//!   keeps a span's non-chat operation so), else `chat`.

mod http_client;
pub mod instruments;

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ai_usage_core::{
    Companion, CompanionContext, CompanionHandle, CompanionHealth, MonitorBuilder, RecordedCall,
};
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::{MetricExporter, Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::Resource;
use parking_lot::Mutex;
use rustc_hash::{FxHashMap, FxHasher};

use instruments::{error_type, Instruments, Semconv, SeriesAttrs, SeriesKey};

/// How often samples are handed to the SDK (its reader exports on its own
/// interval, `OTEL_METRIC_EXPORT_INTERVAL`, 60 s by default).
const DRAIN_EVERY: Duration = Duration::from_millis(100);
/// Samples held between drains; more are dropped and counted.
const MAX_PENDING: usize = 1 << 20;
/// One export's HTTP timeout.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);
/// The scope name of our meter.
pub const METER_NAME: &str = "ai-usage-monitor";

/// What to export and where (see the module docs for the variables read).
#[derive(Debug, Clone, Default)]
pub struct OtlpMetrics {
    endpoint: Option<String>,
    interval: Option<Duration>,
    user: bool,
    anchor: bool,
    session: bool,
    semconv: Option<Semconv>,
}

impl OtlpMetrics {
    /// Everything from OpenTelemetry's variables; user, anchor and session
    /// attributes off.
    pub fn from_env() -> OtlpMetrics {
        OtlpMetrics::default()
    }

    /// The full metrics URL (e.g. `http://localhost:4318/v1/metrics`),
    /// over the variables.
    pub fn endpoint(mut self, url: impl Into<String>) -> OtlpMetrics {
        self.endpoint = Some(url.into());
        self
    }

    /// The export interval, over `OTEL_METRIC_EXPORT_INTERVAL`.
    pub fn export_interval(mut self, every: Duration) -> OtlpMetrics {
        self.interval = Some(every);
        self
    }

    /// Adds `user.id` to every series (one series per user: mind the cardinality).
    pub fn with_user_id(mut self, on: bool) -> OtlpMetrics {
        self.user = on;
        self
    }

    /// Adds `ai_usage.anchor_id` to every series.
    pub fn with_anchor_id(mut self, on: bool) -> OtlpMetrics {
        self.anchor = on;
        self
    }

    /// Adds `session.id` to every series.
    pub fn with_session_id(mut self, on: bool) -> OtlpMetrics {
        self.session = on;
        self
    }

    /// The names to use, over `OTEL_SEMCONV_STABILITY_OPT_IN`.
    pub fn semconv(mut self, semconv: Semconv) -> OtlpMetrics {
        self.semconv = Some(semconv);
        self
    }
}

/// Adds the metrics export to a monitor builder.
pub trait OtlpExt {
    /// Exports every record counted from now on as GenAI metrics over
    /// OTLP/HTTP protobuf; stopped (with a last export) at the monitor's
    /// shutdown. A configuration the exporter refuses fails the build.
    fn otlp_metrics(self, metrics: OtlpMetrics) -> Self;
}

impl OtlpExt for MonitorBuilder {
    fn otlp_metrics(self, metrics: OtlpMetrics) -> MonitorBuilder {
        let buffer = Arc::new(Buffer::new(&metrics));
        let feed = Arc::clone(&buffer);
        self.observer(move |call| feed.push(call))
            .companion(MetricsCompanion { metrics, buffer })
    }
}

/// One recorded call, as the observer leaves it.
#[derive(Debug, Clone, Copy)]
struct Sample {
    series: u32,
    input: u64,
    output: u64,
    seconds: f64,
    cost: f64,
}

#[derive(Default)]
struct Pending {
    samples: Vec<Sample>,
    /// Series ids by the hash of their attribute values.
    index: FxHashMap<u64, Vec<u32>>,
    series: Vec<Arc<SeriesKey>>,
}

/// Where the recording thread leaves samples for the drain thread.
struct Buffer {
    pending: Mutex<Pending>,
    dropped: AtomicU64,
    user: bool,
    anchor: bool,
    session: bool,
}

impl Buffer {
    fn new(m: &OtlpMetrics) -> Buffer {
        Buffer {
            pending: Mutex::new(Pending::default()),
            dropped: AtomicU64::new(0),
            user: m.user,
            anchor: m.anchor,
            session: m.session,
        }
    }

    /// On the monitor's counting thread: a hash, a short lock, a push.
    fn push(&self, call: &RecordedCall<'_>) {
        let r = call.record;
        let error = (!r.success).then(|| error_type(r.error_msg.as_deref()));
        let user = self.user.then_some(r.user_id.as_deref()).flatten();
        let anchor = self.anchor.then_some(r.anchor_id.as_deref()).flatten();
        let session = self.session.then_some(r.session_id.as_deref()).flatten();
        let currency = call.currency.code();
        let operation = crate::record_operation(&r.tags);
        let mut h = FxHasher::default();
        (
            operation,
            &r.model,
            &r.function,
            &r.provider,
            &error,
            currency,
            user,
            anchor,
            session,
        )
            .hash(&mut h);
        let hash = h.finish();
        let same = |k: &SeriesKey| {
            k.operation == operation
                && k.model == r.model
                && k.function == r.function
                && k.provider == r.provider
                && k.error_type == error
                && k.currency == currency
                && k.user.as_deref() == user
                && k.anchor.as_deref() == anchor
                && k.session.as_deref() == session
        };
        let sample = |series| Sample {
            series,
            input: r.input_tokens,
            output: r.output_tokens,
            seconds: r.duration_ms / 1000.0,
            cost: r.cost.as_f64(),
        };
        let mut p = self.pending.lock();
        if p.samples.len() >= MAX_PENDING {
            drop(p);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let found = p
            .index
            .get(&hash)
            .and_then(|ids| ids.iter().copied().find(|id| same(&p.series[*id as usize])));
        let id = match found {
            Some(id) => id,
            None => {
                let id = p.series.len() as u32;
                p.series.push(Arc::new(SeriesKey {
                    operation: operation.to_owned(),
                    model: r.model.clone(),
                    function: r.function.clone(),
                    provider: r.provider.clone(),
                    error_type: error,
                    currency: currency.to_owned(),
                    user: user.map(str::to_owned),
                    anchor: anchor.map(str::to_owned),
                    session: session.map(str::to_owned),
                }));
                p.index.entry(hash).or_default().push(id);
                id
            }
        };
        p.samples.push(sample(id));
    }
}

#[derive(Debug)]
struct MetricsCompanion {
    metrics: OtlpMetrics,
    buffer: Arc<Buffer>,
}

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffer")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The resource: the SDK's (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`),
/// named `ai-usage` when neither names the service.
fn resource() -> Resource {
    let named = std::env::var_os("OTEL_SERVICE_NAME").is_some()
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    let b = Resource::builder();
    if named {
        b.build()
    } else {
        b.with_service_name("ai-usage").build()
    }
}

fn provider(m: &OtlpMetrics) -> Result<SdkMeterProvider, String> {
    let mut exporter = MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(http_client::UreqClient::new(EXPORT_TIMEOUT));
    if let Some(url) = &m.endpoint {
        exporter = exporter.with_endpoint(url.clone());
    }
    let exporter = exporter
        .build()
        .map_err(|e| format!("OTLP metrics exporter: {e}"))?;
    let mut reader = PeriodicReader::builder(exporter);
    if let Some(every) = m.interval {
        reader = reader.with_interval(every);
    }
    Ok(SdkMeterProvider::builder()
        .with_resource(resource())
        .with_reader(reader.build())
        .build())
}

impl Companion for MetricsCompanion {
    fn start(&self, _cx: CompanionContext<'_>) -> Result<Box<dyn CompanionHandle>, String> {
        let provider = provider(&self.metrics)?;
        let semconv = self.metrics.semconv.unwrap_or_else(Semconv::from_env);
        let instruments = Instruments::new(&provider.meter(METER_NAME), semconv);
        let (stop, stopped) = mpsc::channel::<()>();
        let stats = Arc::new(Stats::default());
        let buffer = Arc::clone(&self.buffer);
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("ai-usage-otel-metrics".into())
            .spawn(move || {
                let mut drain = Drain {
                    buffer,
                    instruments,
                    attrs: Vec::new(),
                    stats: thread_stats,
                };
                // Until stopped (a message, or the handle dropped).
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(DRAIN_EVERY) {
                    drain.once();
                }
                drain.once();
                // The last export: what the monitor recorded before shutdown.
                if let Err(e) = provider.shutdown() {
                    tracing::warn!(error = %e, "OTLP metrics: the last export failed");
                    drain.stats.ok.store(false, Ordering::Relaxed);
                }
            })
            .map_err(|e| format!("cannot start the OTLP metrics thread: {e}"))?;
        tracing::info!(?semconv, "exporting GenAI metrics over OTLP/HTTP");
        Ok(Box::new(Running {
            stop,
            thread: Mutex::new(Some(thread)),
            stats,
            buffer: Arc::clone(&self.buffer),
        }))
    }
}

struct Stats {
    samples: AtomicU64,
    ok: AtomicBool,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            samples: AtomicU64::new(0),
            ok: AtomicBool::new(true),
        }
    }
}

/// The drain thread's state: samples become measurements.
struct Drain {
    buffer: Arc<Buffer>,
    instruments: Instruments,
    attrs: Vec<SeriesAttrs>,
    stats: Arc<Stats>,
}

impl Drain {
    fn once(&mut self) {
        let (samples, new_series) = {
            let mut p = self.buffer.pending.lock();
            let samples = std::mem::take(&mut p.samples);
            let new: Vec<Arc<SeriesKey>> = p.series[self.attrs.len()..].to_vec();
            (samples, new)
        };
        let semconv = self.instruments.semconv;
        self.attrs
            .extend(new_series.iter().map(|k| k.attrs(semconv)));
        let i = &self.instruments;
        for s in &samples {
            let Some(a) = self.attrs.get(s.series as usize) else {
                continue;
            };
            i.tokens.record(s.input, &a.input);
            i.tokens.record(s.output, &a.output);
            i.duration.record(s.seconds, &a.duration);
            i.cost.add(s.cost, &a.cost);
        }
        self.stats
            .samples
            .fetch_add(samples.len() as u64, Ordering::Relaxed);
    }
}

struct Running {
    stop: mpsc::Sender<()>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stats: Arc<Stats>,
    buffer: Arc<Buffer>,
}

impl CompanionHandle for Running {
    fn health(&self) -> CompanionHealth {
        CompanionHealth {
            name: "otlp-metrics".into(),
            ok: self.stats.ok.load(Ordering::Relaxed),
            details: serde_json::json!({
                "records_exported": self.stats.samples.load(Ordering::Relaxed),
                "records_dropped": self.buffer.dropped.load(Ordering::Relaxed),
            }),
        }
    }

    fn stop(self: Box<Self>) {
        let _ = self.stop.send(());
        if let Some(t) = self.thread.lock().take() {
            if t.join().is_err() {
                tracing::error!("the OTLP metrics thread panicked");
            }
        }
    }
}
