//! State shared by every handler: the monitor, the metrics, the dashboard
//! cache, the export limiter and the ingest concurrency cap.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ai_usage_core::{UsageMonitor, UsageQueries};
use axum::body::Bytes;
use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::rate_limit::WindowLimiter;
use crate::report_files::{ReportBook, EXPORTS_PER_WINDOW, EXPORT_WINDOW};

/// Ingest requests allowed to wait on the blocking pool at once; beyond
/// this (a writer that cannot keep up) ingest answers 503 + `Retry-After`
/// instead of piling up threads.
pub const MAX_INGEST_IN_FLIGHT: usize = 64;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub(crate) monitor: Arc<UsageMonitor>,
    pub(crate) metrics: Arc<Metrics>,
    /// Bumped by the monitor observer after every record: the dashboard
    /// cache key.
    pub(crate) records_seen: Arc<AtomicU64>,
    pub(crate) dashboard_cache: Arc<Mutex<Option<CachedJson>>>,
    pub(crate) export_limit: Arc<Mutex<WindowLimiter>>,
    pub(crate) reports: Arc<Mutex<ReportBook>>,
    pub(crate) ingest_slots: Arc<Semaphore>,
    /// With protected reads, `/healthz` shows callers without the token
    /// only the status (no directory, error texts or counters).
    pub(crate) private_health: Option<crate::auth::Token>,
    /// Where every read route's answers come from: the monitor itself,
    /// or a store holding more records (e.g. the ClickHouse fleet).
    pub(crate) queries: Arc<dyn UsageQueries>,
    /// True when the answers change only with this monitor's records
    /// (the dashboard cache is then keyed on them).
    pub(crate) answers_follow_records: bool,
    /// What `/healthz` adds under `fleet`, when the answers come from a
    /// fleet store.
    pub(crate) fleet_health: Option<crate::answers::FleetHealth>,
}

/// A serialised payload and what it was computed from.
pub struct CachedJson {
    pub(crate) records_seen: u64,
    pub(crate) at: Instant,
    pub(crate) body: Bytes,
}

impl AppState {
    /// New state; subscribes the metrics and the record counter to `monitor`.
    pub fn new(monitor: Arc<UsageMonitor>) -> AppState {
        let metrics = Arc::new(Metrics::new());
        let records_seen = Arc::new(AtomicU64::new(0));
        {
            // Seed, then subscribe. Not under one lock: an observer that
            // queries the monitor would deadlock against it. A record racing
            // this start-up step may be missed by the counters.
            metrics.seed_from(&monitor);
            let m = Arc::clone(&metrics);
            let seen = Arc::clone(&records_seen);
            monitor.subscribe(move |call| {
                m.observe(call);
                seen.fetch_add(1, Ordering::Release);
            });
            let m = Arc::clone(&metrics);
            monitor.on_adjustment(move |a| m.adjust(a));
        }
        AppState {
            queries: Arc::clone(&monitor) as Arc<dyn UsageQueries>,
            answers_follow_records: true,
            fleet_health: None,
            monitor,
            metrics,
            records_seen,
            dashboard_cache: Arc::new(Mutex::new(None)),
            export_limit: Arc::new(Mutex::new(WindowLimiter::new(
                EXPORTS_PER_WINDOW,
                EXPORT_WINDOW,
            ))),
            reports: Arc::new(Mutex::new(ReportBook::default())),
            ingest_slots: Arc::new(Semaphore::new(MAX_INGEST_IN_FLIGHT)),
            private_health: None,
        }
    }

    /// The same state, with `/healthz` reduced to its status for callers
    /// without `token` (set under protected reads).
    pub fn with_private_health(mut self, token: Option<crate::auth::Token>) -> AppState {
        self.private_health = token;
        self
    }
}
