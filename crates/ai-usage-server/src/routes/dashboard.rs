//! The dashboard payload, cached briefly between records.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ai_usage_core::{QueryResult, UsageMonitor, UsageQueries};
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde::Serialize;

use crate::answers::ask;
use crate::error::ApiError;
use crate::json::{json_bytes, to_json};
use crate::state::{AppState, CachedJson};
use ai_usage_core::original;

/// How long a dashboard payload is reused while no record arrives.
pub const DASHBOARD_TTL: Duration = Duration::from_secs(1);

/// The dashboard payload: core's `DashboardData` in the original's shape
/// (see [`crate::original::dashboard_view`]) plus budgets and savings.
#[derive(Serialize)]
struct DashboardPayload<T: Serialize, B: Serialize, S: Serialize> {
    #[serde(flatten)]
    data: T,
    budgets: B,
    savings: S,
}

/// Builds the dashboard JSON (uncached) from `queries`, in the shape and
/// with the function names of `monitor`'s configuration.
fn dashboard_json(
    monitor: &UsageMonitor,
    queries: &dyn UsageQueries,
) -> QueryResult<Result<Bytes, ApiError>> {
    let config = monitor.config();
    let data = original::dashboard_view(
        &queries.dashboard()?,
        &config.function_names,
        config.reporting_currency,
    );
    Ok(to_json(&DashboardPayload {
        data,
        budgets: queries.budget_status()?,
        savings: queries.savings(7)?,
    }))
}

/// Everything the dashboard page shows.
#[utoipa::path(get, path = "/api/ai_usage/dashboard", tag = "dashboard",
    responses((status = 200, description = "`{generated_at, date, today (with cost_change_percent), month, this_month, top_users, top_anchors, cost_trend, cost_trend_7days, model_distribution and function_distribution (objects keyed by name), models_by_cost, functions_by_cost, forecast, budgets, savings}`", body = serde_json::Value)))]
pub async fn dashboard(State(st): State<AppState>) -> Result<Response, ApiError> {
    // Reused while no record arrived and it is under a second old: page
    // polls and scrapers then cost a memcpy, not a rollup walk.
    // Answers from elsewhere (a fleet) change without our records: only
    // the age counts then.
    let seen = if st.answers_follow_records {
        // Records left by `record` reach the observer that bumps this.
        st.monitor.settle();
        st.records_seen.load(Ordering::Acquire)
    } else {
        0
    };
    {
        let cache = st.dashboard_cache.lock();
        if let Some(c) = cache.as_ref() {
            if c.records_seen == seen && c.at.elapsed() < DASHBOARD_TTL {
                return Ok(json_bytes(c.body.clone()));
            }
        }
    }
    let monitor = Arc::clone(&st.monitor);
    let body = ask(&st.queries, move |q| dashboard_json(&monitor, q)).await??;
    *st.dashboard_cache.lock() = Some(CachedJson {
        records_seen: seen,
        at: Instant::now(),
        body: body.clone(),
    });
    Ok(json_bytes(body))
}
