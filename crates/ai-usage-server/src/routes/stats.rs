//! Period summaries (`stats/…`) and session figures.

use ai_usage_core::GroupStats;
use ai_usage_core::{main_currency, success_rate};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::Datelike;
use serde::Serialize;
use serde_json::json;

use crate::error::{ApiError, ErrorBody};
use crate::ingest;
use crate::params::{
    DailyQuery, HourlyQuery, MonthlyQuery, Params, DAYS_AGO, HOURS_AGO, MONTH, YEAR,
};
use crate::state::AppState;

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
    // Only the two totals: a full UsageSummary would also build every
    // user/anchor group only to drop them.
    let totals = st.monitor.current_totals();
    let reporting = st.monitor.config().reporting_currency;
    let today = Brief::of(Some(&totals.today), reporting);
    let current_hour = Brief::of(Some(&totals.this_hour), reporting);
    Json(json!({ "today": today, "current_hour": current_hour })).into_response()
}

/// One clock hour.
#[utoipa::path(get, path = "/api/ai_usage/stats/hourly", tag = "stats",
    params(HourlyQuery),
    responses((status = 200, description = "UsageSummary of the hour", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn stats_hourly(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let hours_ago = p.u32_of(&HOURS_AGO, None)?;
    Ok(Json(st.monitor.get_hourly_summary(hours_ago)).into_response())
}

/// One local day.
#[utoipa::path(get, path = "/api/ai_usage/stats/daily", tag = "stats",
    params(DailyQuery),
    responses((status = 200, description = "UsageSummary of the day", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn stats_daily(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let days_ago = p.u32_of(&DAYS_AGO, None)?;
    Ok(Json(st.monitor.get_daily_summary(days_ago)).into_response())
}

/// One calendar month (default: the current one).
#[utoipa::path(get, path = "/api/ai_usage/stats/monthly", tag = "stats",
    params(MonthlyQuery),
    responses((status = 200, description = "UsageSummary of the month", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn stats_monthly(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let today = st.monitor.today();
    let year = p.int_of(&YEAR, Some(today.year().into()))? as i32;
    let month = p.u32_of(&MONTH, Some(today.month()))?;
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
        return Err(ApiError::param(
            "session_id",
            format!("must be 1..={} bytes", ingest::MAX_NAME_LEN),
        ));
    }
    st.monitor
        .get_session_stats(&id)
        .map(|s| Json(s).into_response())
        .ok_or_else(|| ApiError::NotFound(format!("unknown session {id:?}")))
}
