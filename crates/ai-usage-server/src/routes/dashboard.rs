//! The dashboard payload, cached briefly between records.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ai_usage_core::UsageMonitor;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::Response;
use serde::Serialize;

use crate::error::ApiError;
use crate::fleet::{self, FleetError, FleetSource};
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

/// Builds the dashboard JSON (uncached).
pub fn dashboard_json(monitor: &UsageMonitor) -> Result<Bytes, ApiError> {
    let config = monitor.config();
    let data = original::dashboard_view(
        &monitor.dashboard(),
        &config.function_names,
        config.reporting_currency,
    );
    to_json(&DashboardPayload {
        data,
        budgets: monitor.budget_status(),
        savings: monitor.savings(7),
    })
}

/// The dashboard JSON from the fleet: the same payload, every part
/// (budgets: this server's definitions) from the fleet source.
fn fleet_dashboard_json(
    monitor: &UsageMonitor,
    fleet: &dyn FleetSource,
) -> Result<Result<Bytes, ApiError>, FleetError> {
    let config = monitor.config();
    let data = original::dashboard_view(
        &fleet.dashboard()?,
        &config.function_names,
        config.reporting_currency,
    );
    let budgets = fleet.budget_status(&monitor.budgets())?;
    let savings = fleet.savings(7)?;
    Ok(to_json(&DashboardPayload {
        data,
        budgets,
        savings,
    }))
}

/// Everything the dashboard page shows.
#[utoipa::path(get, path = "/api/ai_usage/dashboard", tag = "dashboard",
    responses((status = 200, description = "`{generated_at, date, today (with cost_change_percent), month, this_month, top_users, top_anchors, cost_trend, cost_trend_7days, model_distribution and function_distribution (objects keyed by name), models_by_cost, functions_by_cost, forecast, budgets, savings}`", body = serde_json::Value)))]
pub async fn dashboard(State(st): State<AppState>) -> Result<Response, ApiError> {
    // Reused while no record arrived and it is under a second old: page
    // polls and scrapers then cost a memcpy, not a rollup walk.
    // From the fleet, records arrive elsewhere: only the age counts.
    let seen = match st.fleet {
        Some(_) => 0,
        None => st.records_seen.load(Ordering::Acquire),
    };
    {
        let cache = st.dashboard_cache.lock();
        if let Some(c) = cache.as_ref() {
            if c.records_seen == seen && c.at.elapsed() < DASHBOARD_TTL {
                return Ok(json_bytes(c.body.clone()));
            }
        }
    }
    let body = match st.fleet.clone() {
        Some(f) => {
            let monitor = st.monitor.clone();
            fleet::ask(move || fleet_dashboard_json(&monitor, f.as_ref())).await??
        }
        None => dashboard_json(&st.monitor)?,
    };
    *st.dashboard_cache.lock() = Some(CachedJson {
        records_seen: seen,
        at: Instant::now(),
        body: body.clone(),
    });
    Ok(json_bytes(body))
}
