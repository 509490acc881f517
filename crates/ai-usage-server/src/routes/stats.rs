//! Period summaries (`stats/…`) and session figures.

use crate::json::PlainJson as Json;
use ai_usage_core::UsageSummary;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use chrono::Datelike;

use crate::error::{ApiError, ErrorBody};
use crate::fleet;
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
    let s = match st.fleet.clone() {
        Some(f) => fleet::ask(move || f.hourly_summary(hours_ago)).await?,
        None => st.monitor.get_hourly_summary(hours_ago),
    };
    Ok(summary_response(&st, &s, PeriodLabel::Hour))
}

/// One local day.
#[utoipa::path(get, path = "/api/ai_usage/stats/daily", tag = "stats",
    params(DailyQuery),
    responses((status = 200, description = "UsageSummary of the day, as for `stats/hourly`, plus `date`", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn stats_daily(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let days_ago = p.u32_of(&DAYS_AGO, None)?;
    let s = match st.fleet.clone() {
        Some(f) => {
            let date = st.monitor.today() - chrono::Duration::days(i64::from(days_ago));
            fleet::ask(move || f.summary_for_date(date)).await?
        }
        None => st.monitor.get_daily_summary(days_ago),
    };
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
    let s = match st.fleet.clone() {
        Some(f) => {
            if chrono::NaiveDate::from_ymd_opt(year, month, 1).is_none() {
                return Err(ApiError::param(
                    "month",
                    format!("{year}-{month} is not a month (month must be 1..=12)"),
                ));
            }
            fleet::ask(move || f.monthly_summary(year, month)).await?
        }
        None => st
            .monitor
            .get_monthly_summary(year, month)
            .map_err(|e| ApiError::param("month", e.to_string()))?,
    };
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
    let found = match st.fleet.clone() {
        Some(f) => {
            let sid = id.clone();
            fleet::ask(move || f.session(&sid)).await?
        }
        None => st.monitor.get_session_stats(&id),
    };
    found
        .map(|s| Json(original::session_view(&s)).into_response())
        .ok_or_else(|| ApiError::NotFound(format!("unknown session {id:?}")))
}
