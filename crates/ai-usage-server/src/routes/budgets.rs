//! Budget status, the month forecast and savings suggestions.

use crate::json::PlainJson as Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ErrorBody};
use crate::fleet;
use crate::params::{DaysQuery, Params, DAYS};
use crate::state::AppState;

/// Budget status (spend vs limit, thresholds crossed).
#[utoipa::path(get, path = "/api/ai_usage/budgets", tag = "budgets",
    responses((status = 200, description = "`[BudgetStatus]`", body = serde_json::Value)))]
pub async fn budgets(State(st): State<AppState>) -> Result<Response, ApiError> {
    let status = match st.fleet.clone() {
        // This server's budgets, evaluated on the whole fleet's spend.
        Some(f) => {
            let budgets = st.monitor.budgets();
            fleet::ask(move || f.budget_status(&budgets)).await?
        }
        None => st.monitor.budget_status(),
    };
    Ok(Json(status).into_response())
}

/// The month forecast.
#[utoipa::path(get, path = "/api/ai_usage/forecast", tag = "budgets",
    responses((status = 200, description = "MonthForecast", body = serde_json::Value)))]
pub async fn forecast(State(st): State<AppState>) -> Result<Response, ApiError> {
    let forecast = match st.fleet.clone() {
        Some(f) => fleet::ask(move || f.forecast()).await?,
        None => st.monitor.forecast(),
    };
    Ok(Json(forecast).into_response())
}

/// Savings suggestions over the last `days` days.
#[utoipa::path(get, path = "/api/ai_usage/savings", tag = "budgets",
    params(DaysQuery),
    responses((status = 200, description = "SavingsReport", body = serde_json::Value),
              (status = 422, description = "Invalid parameter", body = ErrorBody)))]
pub async fn savings(State(st): State<AppState>, p: Params) -> Result<Response, ApiError> {
    let days = p.u32_of(&DAYS, None)?;
    let report = match st.fleet.clone() {
        Some(f) => fleet::ask(move || f.savings(days)).await?,
        None => st.monitor.savings(days),
    };
    Ok(Json(report).into_response())
}
