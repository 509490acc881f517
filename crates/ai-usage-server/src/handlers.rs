//! Route handlers. Queries are O(groups) in core and run inline; anything
//! that touches the disk runs on the blocking pool.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path as FsPath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_usage_core::GroupStats;
use ai_usage_core::UsageMonitor;
use ai_usage_core::{main_currency, success_rate};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Datelike;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{ApiError, ErrorBody};
use crate::ingest::{self, RecordResponse, RecordedEntry};
use crate::metrics::{self, Metrics};
use crate::params::Params;

/// How long a dashboard payload is reused while no record arrives.
pub const DASHBOARD_TTL: Duration = Duration::from_secs(1);
/// Report exports allowed per [`EXPORT_WINDOW`].
pub const EXPORTS_PER_WINDOW: usize = 10;
/// The rate-limit window of report exports.
pub const EXPORT_WINDOW: Duration = Duration::from_secs(60);
/// Reports this server keeps on disk; older ones it wrote are deleted.
pub const MAX_KEPT_REPORTS: usize = 20;
/// File-name prefixes of report files (`export_report` JSON, `export_csv` CSV).
pub const REPORT_PREFIXES: [&str; 2] = ["usage_report_", "usage_daily_"];

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub(crate) monitor: Arc<UsageMonitor>,
    pub(crate) metrics: Arc<Metrics>,
    /// Bumped by the monitor observer after every record: the dashboard
    /// cache key.
    pub(crate) records_seen: Arc<AtomicU64>,
    pub(crate) dashboard_cache: Arc<Mutex<Option<CachedJson>>>,
    pub(crate) exports: Arc<Mutex<ExportBook>>,
}

/// A serialised payload and what it was computed from.
pub struct CachedJson {
    records_seen: u64,
    at: Instant,
    body: Bytes,
}

/// Recent exports (for the rate limit) and files written (for the cap).
#[derive(Default)]
pub struct ExportBook {
    recent: VecDeque<Instant>,
    written: VecDeque<PathBuf>,
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
        }
        AppState {
            monitor,
            metrics,
            records_seen,
            dashboard_cache: Arc::new(Mutex::new(None)),
            exports: Arc::new(Mutex::new(ExportBook::default())),
        }
    }
}

fn json_bytes(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

fn to_json<T: Serialize>(v: &T) -> Result<Bytes, ApiError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| ApiError::Internal(format!("cannot serialise the response: {e}")))
}

/// Runs blocking work (disk) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("background task failed: {e}")))?
}

// ---------------------------------------------------------------------------
// Stats
// ---------------------------------------------------------------------------

/// The seed's compact period figures.
#[derive(Serialize)]
struct Brief {
    calls: u64,
    tokens: u64,
    cost: ai_usage_core::Money,
    currency: ai_usage_core::Currency,
    success_rate: f64,
}

impl Brief {
    fn of(g: Option<&GroupStats>, reporting: ai_usage_core::Currency) -> Brief {
        let empty = GroupStats::default();
        let g = g.unwrap_or(&empty);
        let currency = main_currency(&g.cost, reporting);
        Brief {
            calls: g.calls,
            tokens: g.total_tokens,
            cost: g.cost.get(currency),
            currency,
            success_rate: success_rate(g),
        }
    }
}

/// Current hour and today.
#[utoipa::path(get, path = "/api/ai_usage/stats/current", tag = "stats",
    responses((status = 200, description = "`{today: {calls, tokens, cost, currency, success_rate}, current_hour: {…}}`", body = serde_json::Value)))]
pub async fn stats_current(State(st): State<AppState>) -> Response {
    // The two totals only: a full UsageSummary would also build every
    // user/anchor group only to drop them.
    let reporting = st.monitor.config().reporting_currency;
    let totals = st.monitor.current_totals();
    let today = Brief::of(Some(&totals.today), reporting);
    let current_hour = Brief::of(Some(&totals.this_hour), reporting);
    Json(json!({ "today": today, "current_hour": current_hour })).into_response()
}

/// One clock hour (`hours_ago` 0..=72).
#[utoipa::path(get, path = "/api/ai_usage/stats/hourly", tag = "stats",
    params(("hours_ago" = Option<u32>, Query, description = "Hours before the current one (default 0)", minimum = 0, maximum = 72)),
    responses((status = 200, description = "UsageSummary of the hour", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn stats_hourly(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let hours_ago = p.u32("hours_ago", 0, 0, 72)?;
    Ok(Json(st.monitor.get_hourly_summary(hours_ago)).into_response())
}

/// One local day (`days_ago` 0..=90).
#[utoipa::path(get, path = "/api/ai_usage/stats/daily", tag = "stats",
    params(("days_ago" = Option<u32>, Query, description = "Days before today (default 0)", minimum = 0, maximum = 90)),
    responses((status = 200, description = "UsageSummary of the day", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn stats_daily(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let days_ago = p.u32("days_ago", 0, 0, 90)?;
    Ok(Json(st.monitor.get_daily_summary(days_ago)).into_response())
}

/// One calendar month (default: the current one).
#[utoipa::path(get, path = "/api/ai_usage/stats/monthly", tag = "stats",
    params(("year" = Option<i32>, Query, description = "Year (default: this year)", minimum = 2000, maximum = 2100),
           ("month" = Option<u32>, Query, description = "Month (default: this month)", minimum = 1, maximum = 12)),
    responses((status = 200, description = "UsageSummary of the month", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn stats_monthly(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let today = st.monitor.today();
    let year = p.int("year", Some(today.year().into()), 2000, 2100)? as i32;
    let month = p.u32("month", today.month(), 1, 12)?;
    let s = st
        .monitor
        .get_monthly_summary(year, month)
        .map_err(|e| ApiError::param("month", e.to_string()))?;
    Ok(Json(s).into_response())
}

/// One broadcast session's figures.
#[utoipa::path(get, path = "/api/ai_usage/session/{session_id}", tag = "stats",
    params(("session_id" = String, Path, description = "Session id")),
    responses((status = 200, description = "SessionSummary", body = serde_json::Value),
              (status = 404, description = "Unknown session", body = ErrorBody)))]
pub async fn session(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if id.is_empty() || id.len() > ingest::MAX_NAME_LEN {
        return Err(ApiError::param("session_id", "must be 1..=256 bytes"));
    }
    st.monitor
        .get_session_stats(&id)
        .map(|s| Json(s).into_response())
        .ok_or_else(|| ApiError::NotFound(format!("unknown session {id:?}")))
}

/// Top users by tokens.
#[utoipa::path(get, path = "/api/ai_usage/top_users", tag = "rankings",
    params(("limit" = Option<u32>, Query, description = "Rows (default 10)", minimum = 1, maximum = 100),
           ("days" = Option<u32>, Query, description = "Days ending today (default 7)", minimum = 1, maximum = 90)),
    responses((status = 200, description = "`[{user_id, tokens, cost, currency, costs, calls, input_tokens, output_tokens}]`", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn top_users(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let limit = p.u32("limit", 10, 1, 100)?;
    let days = p.u32("days", 7, 1, 90)?;
    Ok(Json(st.monitor.get_top_users(limit as usize, days)).into_response())
}

/// Top anchors (主播) by tokens.
#[utoipa::path(get, path = "/api/ai_usage/top_anchors", tag = "rankings",
    params(("limit" = Option<u32>, Query, description = "Rows (default 10)", minimum = 1, maximum = 100),
           ("days" = Option<u32>, Query, description = "Days ending today (default 7)", minimum = 1, maximum = 90)),
    responses((status = 200, description = "`[{anchor_id, tokens, cost, …}]`", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn top_anchors(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let limit = p.u32("limit", 10, 1, 100)?;
    let days = p.u32("days", 7, 1, 90)?;
    Ok(Json(st.monitor.get_top_anchors(limit as usize, days)).into_response())
}

/// Daily cost, oldest first, one point per day.
#[utoipa::path(get, path = "/api/ai_usage/cost_trend", tag = "rankings",
    params(("days" = Option<u32>, Query, description = "Days ending today (default 7)", minimum = 1, maximum = 90)),
    responses((status = 200, description = "`[{date, cost, currency, costs, calls, tokens}]`", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn cost_trend(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let days = p.u32("days", 7, 1, 90)?;
    Ok(Json(st.monitor.get_cost_trend(days)).into_response())
}

/// The pricing table in force.
#[utoipa::path(get, path = "/api/ai_usage/models/pricing", tag = "pricing",
    responses((status = 200, description = "`{models: {id: {display_name, currency, input, output, …}}, aliases: {alias: id}}` (rates per 1K tokens)", body = serde_json::Value)))]
pub async fn models_pricing(State(st): State<AppState>) -> Result<Response, ApiError> {
    let pricing = st.monitor.pricing();
    let models: BTreeMap<&str, &ai_usage_core::ModelPrice> = pricing.models().collect();
    let aliases: BTreeMap<&str, &str> = pricing.aliases().into_iter().collect();
    let body = to_json(&json!({ "models": models, "aliases": aliases, "unit": "per 1K tokens" }))?;
    Ok(json_bytes(body))
}

/// Budget status (spend vs limit, thresholds crossed).
#[utoipa::path(get, path = "/api/ai_usage/budgets", tag = "budgets",
    responses((status = 200, description = "`[BudgetStatus]`", body = serde_json::Value)))]
pub async fn budgets(State(st): State<AppState>) -> Response {
    Json(st.monitor.budget_status()).into_response()
}

/// The month forecast.
#[utoipa::path(get, path = "/api/ai_usage/forecast", tag = "budgets",
    responses((status = 200, description = "MonthForecast", body = serde_json::Value)))]
pub async fn forecast(State(st): State<AppState>) -> Response {
    Json(st.monitor.forecast()).into_response()
}

/// Savings suggestions over the last `days` days.
#[utoipa::path(get, path = "/api/ai_usage/savings", tag = "budgets",
    params(("days" = Option<u32>, Query, description = "Days ending today (default 7)", minimum = 1, maximum = 90)),
    responses((status = 200, description = "SavingsReport", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn savings(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let days = p.u32("days", 7, 1, 90)?;
    Ok(Json(st.monitor.savings(days)).into_response())
}

// ---------------------------------------------------------------------------
// Dashboard
// ---------------------------------------------------------------------------

/// The dashboard payload: core's `DashboardData` plus budgets and savings.
#[derive(Serialize)]
struct DashboardPayload<T: Serialize, B: Serialize, S: Serialize> {
    #[serde(flatten)]
    data: T,
    budgets: B,
    savings: S,
}

/// Builds the dashboard JSON (uncached).
pub fn dashboard_json(monitor: &UsageMonitor) -> Result<Bytes, ApiError> {
    to_json(&DashboardPayload {
        data: monitor.dashboard(),
        budgets: monitor.budget_status(),
        savings: monitor.savings(7),
    })
}

/// Everything the dashboard page shows.
#[utoipa::path(get, path = "/api/ai_usage/dashboard", tag = "dashboard",
    responses((status = 200, description = "`{generated_at, date, today, month, top_users, top_anchors, cost_trend, model_distribution, function_distribution, forecast, budgets, savings}`", body = serde_json::Value)))]
pub async fn dashboard(State(st): State<AppState>) -> Result<Response, ApiError> {
    // Reused while no record arrived and it is under a second old: page
    // polls and scrapers then cost a memcpy, not a rollup walk.
    let seen = st.records_seen.load(Ordering::Acquire);
    {
        let cache = st.dashboard_cache.lock();
        if let Some(c) = cache.as_ref() {
            if c.records_seen == seen && c.at.elapsed() < DASHBOARD_TTL {
                return Ok(json_bytes(c.body.clone()));
            }
        }
    }
    let body = dashboard_json(&st.monitor)?;
    *st.dashboard_cache.lock() = Some(CachedJson {
        records_seen: seen,
        at: Instant::now(),
        body: body.clone(),
    });
    Ok(json_bytes(body))
}

// ---------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------

/// Records one call or a batch (at most 1000), validated like `record_ai_usage`.
#[utoipa::path(post, path = "/api/ai_usage/record", tag = "ingest",
    request_body(content = crate::ingest::RecordBody, description = "One record or an array of at most 1000"),
    responses((status = 200, description = "Recorded", body = RecordResponse),
              (status = 401, description = "Token required", body = ErrorBody),
              (status = 413, description = "Body over 1 MiB", body = ErrorBody),
              (status = 422, description = "Invalid record (names field and index)", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record(
    State(st): State<AppState>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body?;
    let events = ingest::parse_body(&body, ai_usage_core::now_timestamp())?;
    let records: Vec<RecordedEntry> = events
        .iter()
        .map(|e| {
            e.with_event(|ev| {
                let r = st.monitor.record(ev);
                RecordedEntry {
                    cost: r.cost,
                    currency: r.currency.unwrap_or_default(),
                    priced: r.priced.unwrap_or(true),
                    total_tokens: r.total_tokens,
                }
            })
        })
        .collect();
    tracing::debug!(records = records.len(), "records ingested over HTTP");
    Ok(Json(RecordResponse {
        success: true,
        recorded: records.len(),
        records,
    })
    .into_response())
}

/// Writes a report file (JSON or CSV) and says where to download it.
#[utoipa::path(post, path = "/api/ai_usage/export_report", tag = "reports",
    params(("days" = Option<u32>, Query, description = "Days ending today (default 7)", minimum = 1, maximum = 90),
           ("format" = Option<String>, Query, description = "`json` (default) or `csv`")),
    responses((status = 200, description = "`{success, report_path, download_url}`", body = serde_json::Value),
              (status = 401, description = "Token required", body = ErrorBody),
              (status = 422, description = "Invalid parameter", body = ErrorBody),
              (status = 429, description = "Too many exports", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export_report(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let days = p.u32("days", 7, 1, 90)?;
    let format = p.choice("format", "json", &["json", "csv"])?;
    {
        let mut book = st.exports.lock();
        let now = Instant::now();
        while book
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > EXPORT_WINDOW)
        {
            book.recent.pop_front();
        }
        if book.recent.len() >= EXPORTS_PER_WINDOW {
            return Err(ApiError::RateLimited(format!(
                "at most {EXPORTS_PER_WINDOW} report exports per {} s; try again shortly",
                EXPORT_WINDOW.as_secs()
            )));
        }
        book.recent.push_back(now);
    }
    let monitor = Arc::clone(&st.monitor);
    let path = blocking(move || {
        let r = if format == "csv" {
            monitor.export_csv(None, days)
        } else {
            monitor.export_report(None, days)
        };
        r.map_err(|e| ApiError::Internal(format!("cannot write the report: {e}")))
    })
    .await?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::Internal("the report has no file name".into()))?;
    prune_reports(&st, path.clone());
    tracing::info!(path = %path.display(), days, format, "report exported");
    Ok(Json(json!({
        "success": true,
        "report_path": path.display().to_string(),
        "download_url": format!("/api/ai_usage/download_report?path={name}"),
    }))
    .into_response())
}

/// Deletes the oldest reports this server wrote beyond [`MAX_KEPT_REPORTS`],
/// so repeated exports cannot fill the disk. Files it did not write are
/// never touched.
fn prune_reports(st: &AppState, written: PathBuf) {
    let old: Vec<PathBuf> = {
        let mut book = st.exports.lock();
        book.written.retain(|p| p != &written);
        book.written.push_back(written);
        let excess = book.written.len().saturating_sub(MAX_KEPT_REPORTS);
        book.written.drain(..excess).collect()
    };
    for p in old {
        if let Err(e) = std::fs::remove_file(&p) {
            tracing::warn!(path = %p.display(), error = %e, "could not delete an old report");
        }
    }
}

/// True for a bare report file name: `usage_report_…`/`usage_daily_…` +
/// `.json`/`.csv`, only ASCII letters, digits, `_` and `-` in between (no
/// dots, slashes, backslashes or percent signs: no traversal in any encoding).
pub fn is_report_name(name: &str) -> bool {
    let Some(rest) = REPORT_PREFIXES.iter().find_map(|p| name.strip_prefix(p)) else {
        return false;
    };
    let Some(stem) = rest
        .strip_suffix(".json")
        .or_else(|| rest.strip_suffix(".csv"))
    else {
        return false;
    };
    !stem.is_empty()
        && stem.len() <= 64
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Reads a report file the monitor wrote, refusing anything else.
fn read_report(dir: &FsPath, name: &str) -> Result<Vec<u8>, ApiError> {
    use std::io::Read;
    let not_found = || ApiError::NotFound(format!("no report named {name:?}"));
    // The name is bare (checked by the caller), so the only link that could
    // lead elsewhere is the file itself: open it without following links,
    // then check what was opened — no window between check and read.
    let canon_dir = dir.canonicalize().map_err(|_| not_found())?;
    let mut file = open_no_follow(&canon_dir.join(name)).map_err(|_| not_found())?;
    let meta = file.metadata().map_err(|_| not_found())?;
    if !meta.file_type().is_file() {
        return Err(not_found());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(|_| not_found())?;
    Ok(bytes)
}

#[cfg(unix)]
fn open_no_follow(path: &FsPath) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

#[cfg(not(unix))]
fn open_no_follow(path: &FsPath) -> std::io::Result<std::fs::File> {
    if std::fs::symlink_metadata(path)?.file_type().is_symlink() {
        return Err(std::io::Error::new(std::io::ErrorKind::NotFound, "symlink"));
    }
    std::fs::File::open(path)
}

/// Downloads a report by bare file name.
#[utoipa::path(get, path = "/api/ai_usage/download_report", tag = "reports",
    params(("path" = String, Query, description = "Bare report file name, e.g. usage_report_20251026_143022.json")),
    responses((status = 200, description = "The report file (attachment)"),
              (status = 400, description = "Not a report file name", body = ErrorBody),
              (status = 404, description = "No such report", body = ErrorBody)))]
pub async fn download_report(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let name = p
        .get("path")
        .ok_or_else(|| ApiError::param("path", "required: a report file name"))?
        .to_string();
    if !is_report_name(&name) {
        tracing::warn!(name = %name, "refused a download outside the report files");
        return Err(ApiError::BadRequest(
            "path must be a bare report file name (usage_report_….json or usage_daily_….csv)"
                .into(),
        ));
    }
    let dir = st.monitor.dir().to_path_buf();
    let n = name.clone();
    let bytes = blocking(move || read_report(&dir, &n)).await?;
    let ctype = if name.ends_with(".csv") {
        "text/csv; charset=utf-8"
    } else {
        "application/json"
    };
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{name}\""))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(ctype)),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

// ---------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------

/// Writer, replay and memory health (503 when records do not reach disk).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "MonitorHealth, ok", body = serde_json::Value),
              (status = 503, description = "MonitorHealth, not ok", body = serde_json::Value)))]
pub async fn healthz(State(st): State<AppState>) -> Response {
    let h = st.monitor.health();
    let status = if h.ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(h)).into_response()
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "ai_usage_calls_total, ai_usage_tokens_total, ai_usage_cost_total, ai_usage_call_duration_seconds, ai_usage_unpriced_calls_total", content_type = "application/openmetrics-text")))]
pub async fn metrics_text(State(st): State<AppState>) -> Result<Response, ApiError> {
    let text = st
        .metrics
        .encode()
        .map_err(|_| ApiError::Internal("cannot encode metrics".into()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        )],
        text,
    )
        .into_response())
}

/// 404 JSON for unknown routes.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route {}", uri.path()))
}

/// 405 JSON for a known path with the wrong method.
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let body = ErrorBody {
        error: "method_not_allowed".into(),
        detail: format!("{method} is not allowed on {}", uri.path()),
    };
    (StatusCode::METHOD_NOT_ALLOWED, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::is_report_name;

    #[test]
    fn report_names() {
        assert!(is_report_name("usage_report_20251026_143022.json"));
        assert!(is_report_name("usage_report_20251026_143022.csv"));
        assert!(is_report_name("usage_daily_20251026_143022_1.csv"));
        for bad in [
            "../usage_report_1.json",
            "usage_report_../../etc/passwd.json",
            "usage_report_1.json/..",
            "/etc/passwd",
            "usage_report_%2e%2e.json",
            "usage_report_a\\b.json",
            "usage_report_.json",
            "usage_2025-10-26.jsonl",
            "usage_report_1.txt",
            "usage_report_1.json.json",
        ] {
            assert!(!is_report_name(bad), "{bad}");
        }
    }
}
