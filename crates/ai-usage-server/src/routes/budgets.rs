//! Budget status, the month forecast and savings suggestions.

use crate::json::PlainJson as Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::answers::ask;
use crate::error::{ApiError, ErrorBody};
use crate::params::{DaysQuery, Params, DAYS};
use crate::state::AppState;

/// Budget status (spend vs limit, thresholds crossed, hard limits).
///
/// Each entry: `name`, `scope` (`{"kind": "global"}` or `{"kind": "anchor",
/// "id": …}`), `period`, `period_label`, `spent`, `limit`, `remaining`,
/// `percent`, `projected_end_of_period`, `currency`, `thresholds`,
/// `thresholds_fired`, `block_at` (the hard limit in percent of `limit`;
/// absent without one) and `refusing` (true while the hard limit is reached
/// and calls of the scope are refused). The dashboard draws each as a bar.
#[utoipa::path(get, path = "/api/ai_usage/budgets", tag = "budgets",
    responses((status = 200, description = "`[BudgetStatus]`: name, scope, period, period_label, spent, limit, remaining, percent, projected_end_of_period, currency, thresholds, thresholds_fired, block_at (hard limit, percent of limit; absent without one), refusing (calls of the scope are being refused)", body = serde_json::Value)))]
pub async fn budgets(State(st): State<AppState>) -> Result<Response, ApiError> {
    // This server's budgets (on the whole fleet's spend under a fleet).
    let status = ask(&st.queries, |q| q.budget_status()).await?;
    Ok(Json(status).into_response())
}

/// The month forecast.
#[utoipa::path(get, path = "/api/ai_usage/forecast", tag = "budgets",
    responses((status = 200, description = "MonthForecast", body = serde_json::Value)))]
pub async fn forecast(State(st): State<AppState>) -> Result<Response, ApiError> {
    let forecast = ask(&st.queries, |q| q.forecast()).await?;
    Ok(Json(forecast).into_response())
}

/// Savings suggestions over the last `days` days.
#[utoipa::path(get, path = "/api/ai_usage/savings", tag = "budgets",
    params(DaysQuery),
    responses((status = 200, description = "SavingsReport", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn savings(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let days = p.u32_of(&DAYS, None)?;
    let report = ask(&st.queries, move |q| q.savings(days)).await?;
    Ok(Json(report).into_response())
}
