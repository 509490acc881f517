//! Period summaries (`stats/…`) and session figures.

use crate::json::PlainJson as Json;
use ai_usage_core::UsageSummary;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::Datelike;

use crate::answers::ask;
use crate::error::{ApiError, ErrorBody};
use crate::params::{
    DailyQuery, HourlyQuery, MonthlyQuery, Params, DAYS_AGO, HOURS_AGO, MONTH, YEAR,
};
use crate::state::AppState;
use ai_usage_core::original::{self, PeriodLabel};

/// Current hour and today.
#[utoipa::path(get, path = "/api/ai_usage/stats/current", tag = "stats",
    responses((status = 200, description = "`{today: {calls, tokens, cost, currency, success_rate, by_model, by_function, …}, current_hour: {…}}`; `today.by_function` is keyed by the recorded function name (as the original)", body = serde_json::Value)))]
pub async fn stats_current(State(st): State<AppState>) -> Response {
    // Only today's groups by model and function: a full UsageSummary would
    // also build every user/anchor group only to drop them.
    let totals = st.monitor.current_totals();
    let config = st.monitor.config();
    let pricing = st.monitor.pricing();
    Json(original::current_view(
        &totals,
        &config.function_names,
        &pricing,
        config.reporting_currency,
    ))
    .into_response()
}

/// A period summary in the original's shape.
fn summary_response(st: &AppState, s: &UsageSummary, label: PeriodLabel) -> Response {
    let config = st.monitor.config();
    Json(original::summary_view(
        s,
        label,
        &config.function_names,
        &config.zone,
        config.reporting_currency,
    ))
    .into_response()
}

/// One clock hour.
#[utoipa::path(get, path = "/api/ai_usage/stats/hourly", tag = "stats",
    params(HourlyQuery),
    responses((status = 200, description = "UsageSummary of the hour, with the original's keys: `start_time`/`end_time` local ISO (epoch in `start_ts`/`end_ts`), `input_tokens`, `output_tokens`, `total_cost` (2 decimals; exact in `total_cost_exact`), `by_function` keyed by display name", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn stats_hourly(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let hours_ago = p.u32_of(&HOURS_AGO, None)?;
    let s = ask(&st.queries, move |q| q.hourly_summary(hours_ago)).await?;
    Ok(summary_response(&st, &s, PeriodLabel::Hour))
}

/// One local day.
#[utoipa::path(get, path = "/api/ai_usage/stats/daily", tag = "stats",
    params(DailyQuery),
    responses((status = 200, description = "UsageSummary of the day, as for `stats/hourly`, plus `date`", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn stats_daily(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let days_ago = p.u32_of(&DAYS_AGO, None)?;
    let s = ask(&st.queries, move |q| q.daily_summary(days_ago)).await?;
    // The day the summary covers, not a second reading of the clock.
    let date = st.monitor.zone().date_of(s.start_time);
    Ok(summary_response(&st, &s, PeriodLabel::Day(date)))
}

/// One calendar month (default: the current one).
#[utoipa::path(get, path = "/api/ai_usage/stats/monthly", tag = "stats",
    params(MonthlyQuery),
    responses((status = 200, description = "UsageSummary of the month, as for `stats/hourly`, plus `year_month`", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn stats_monthly(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let today = st.monitor.today();
    let year = p.int_of(&YEAR, Some(today.year().into()))? as i32;
    let month = p.u32_of(&MONTH, Some(today.month()))?;
    let s = ask(&st.queries, move |q| q.monthly_summary(year, month)).await?;
    Ok(summary_response(&st, &s, PeriodLabel::Month(year, month)))
}

/// One broadcast session's figures.
#[utoipa::path(get, path = "/api/ai_usage/session/{session_id}", tag = "stats",
    params(("session_id" = String, Path, description = "Session id")),
    responses((status = 200, description = "SessionSummary plus `tokens`", body = serde_json::Value),
              (status = 404, description = "Unknown session", body = ErrorBody)))]
pub async fn session(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    // The same id rule as every door's intake: 1 to 256 bytes, no
    // control characters.
    if let Err(e) = ai_usage_core::intake::check_id_text("session_id", &id) {
        return Err(ApiError::param("session_id", e.to_string()));
    }
    let sid = id.clone();
    let found = ask(&st.queries, move |q| q.session(&sid)).await?;
    found
        .map(|s| Json(original::session_view(&s)).into_response())
        .ok_or_else(|| ApiError::NotFound(format!("unknown session {id:?}")))
}
